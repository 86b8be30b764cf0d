//! A real browser: Debian's headless Chromium, driven over the Chrome
//! DevTools Protocol (a WebSocket to one page): navigate, run script in the
//! page, wait for the next load, take screenshots. `.ci/run` installs
//! chromium; a machine without it fails loudly, never skips.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// One headless Chromium with one page.
pub struct Browser {
    child: Child,
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    /// Events that arrived while waiting for a command's answer.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed (apt-get install chromium; .ci/run does)")
}

/// Where screenshots go: target/console-screenshots (never committed).
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/console-screenshots
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Start Chromium headless with a fresh profile and attach to its page.
    pub async fn launch() -> Browser {
        Browser::launch_with(&[]).await
    }

    /// [`Browser::launch`] with more command-line switches (e.g.
    /// `--host-resolver-rules=MAP rebind.test 127.0.0.1`).
    pub async fn launch_with(extra: &[&str]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next()?.trim().parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "chromium did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let page_ws = page_socket(port).await;
        let path = page_ws
            .strip_prefix("ws://")
            .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap_or_else(|| panic!("not a page socket: {page_ws}"));
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
        let mut b = Browser {
            child,
            ws,
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        b.call("Page.enable", json!({})).await;
        b.call("Runtime.enable", json!({})).await;
        b
    }

    /// Send one command and return its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::Text(msg.into())).await.unwrap();
        loop {
            let v = self.read().await;
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    async fn read(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("the browser went silent")
                .expect("the browser closed")
                .unwrap();
            if let Message::Text(t) = next {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    /// Wait for the page's next load event (after a navigation or a submit).
    async fn loaded(&mut self) {
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["method"] == "Page.loadEventFired")
            {
                self.events.drain(..=i);
                return;
            }
            let v = self.read().await;
            self.events.push(v);
        }
    }

    /// Open `url` and wait until it has loaded.
    pub async fn goto(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url })).await;
        self.loaded().await;
    }

    /// Evaluate `js` in the page; its value.
    pub async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Run `js` that submits a form or follows a link, and wait for the new page.
    pub async fn submit(&mut self, js: &str) {
        self.events.clear();
        self.eval(js).await;
        self.loaded().await;
    }

    /// The page's visible text.
    pub async fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's address now.
    pub async fn location(&mut self) -> String {
        self.eval("location.href")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A full-page PNG under [`screenshot_dir`]; its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        use base64::Engine;
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Messages the page's console printed and errors it hit (a CSP
    /// violation shows up here).
    pub fn console_messages(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| {
                e["method"] == "Runtime.consoleAPICalled"
                    || e["method"] == "Runtime.exceptionThrown"
            })
            .map(|e| e.to_string())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page target's WebSocket URL, from the DevTools HTTP endpoint.
async fn page_socket(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // Chromium keeps the connection open: read by Content-Length.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        let text = loop {
            let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
                .await
                .expect("the DevTools endpoint went silent")
                .unwrap();
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                assert!(n > 0, "the DevTools endpoint closed");
                continue;
            };
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len || n == 0 {
                break text;
            }
        };
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            let list: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let page = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page");
            if let Some(ws) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                return ws.to_owned();
            }
        }
        assert!(Instant::now() < deadline, "chromium shows no page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
