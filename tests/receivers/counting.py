"""A receiver that counts: how many callbacks it got, how many it held at
once (the peak), answering after DELAY seconds with the status in MODE.

    python3 counting.py PORT
    POST /anything        a callback: counted, answered after the delay
    POST /_mode?status=503&delay=0.5   change how it answers
    GET  /_stats          {"count": N, "peak": P, "ok": K}
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

lock = threading.Lock()
state = {"count": 0, "ok": 0, "now": 0, "peak": 0, "status": 200, "delay": 0.0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            body = json.dumps({k: state[k] for k in ("count", "peak", "ok")}).encode()
        self.answer(200, body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        url = urlparse(self.path)
        if url.path == "/_mode":
            q = parse_qs(url.query)
            with lock:
                state["status"] = int(q.get("status", ["200"])[0])
                state["delay"] = float(q.get("delay", ["0"])[0])
            return self.answer(200, b"{}")
        with lock:
            state["count"] += 1
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            status, delay = state["status"], state["delay"]
        time.sleep(delay)
        with lock:
            state["now"] -= 1
            if status < 300:
                state["ok"] += 1
        self.answer(status, b"{}")


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
