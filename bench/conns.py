#!/usr/bin/env python3
"""Bench helper: hold many idle keep-alive TLS connections (idle; idle-plain:
without TLS), or run many concurrent uploads, against callgate; prints
READY/DONE lines for bench/run."""
import asyncio, ssl, sys

HOST, PORT = "127.0.0.1", int(sys.argv[2])

def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.set_alpn_protocols(["http/1.1"])
    return c

async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return int(head.split(b" ")[1])

async def idle(n, tls=True):
    """n connections, each having made one request, then idle until stdin closes."""
    sem, c, held = asyncio.Semaphore(200), (ctx() if tls else None), []
    async def one():
        async with sem:
            r, w = await asyncio.open_connection(HOST, PORT, ssl=c)
            w.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await read_response(r)
            held.append(w)
    await asyncio.gather(*(one() for _ in range(n)))
    print(f"READY {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

async def uploads(n, path, sig, size):
    """n concurrent uploads of `size` bytes; the body is signed by bench/run."""
    body = open(sys.argv[5], "rb").read()
    assert len(body) == size
    c, go, statuses = ctx(), asyncio.Event(), []
    async def one():
        r, w = await asyncio.open_connection(HOST, PORT, ssl=c)
        await go.wait()
        w.write(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"X-Tolq-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        statuses.append(await read_response(r))
        w.close()
    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await asyncio.sleep(0.5)
    go.set()
    await asyncio.gather(*tasks)
    print(f"DONE {sum(1 for s in statuses if s == 200)}/{n}", flush=True)

if sys.argv[1] == "idle":
    asyncio.run(idle(int(sys.argv[3])))
elif sys.argv[1] == "idle-plain":
    asyncio.run(idle(int(sys.argv[3]), tls=False))
else:
    asyncio.run(uploads(int(sys.argv[3]), sys.argv[4], sys.argv[6], int(sys.argv[7])))
