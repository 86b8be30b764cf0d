//! `Upstream::recording()`: a real HTTP/1.1 server on 127.0.0.1:0 that
//! stores every request it receives and answers as told.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Which connection it came on (0 for the first accepted, and so on).
    pub conn: usize,
}

#[derive(Clone)]
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static [u8],
    delay: Duration,
    /// Statuses for the next requests, before the default answer applies again.
    script: std::collections::VecDeque<StatusCode>,
    /// Close a connection that waits this long for its next request, without
    /// a word, as a receiver's keep-alive timeout does.
    keep_alive_timeout: Option<Duration>,
    /// Requests whose body contains this wait this long instead of `delay`.
    slow: Option<(&'static [u8], Duration)>,
}

/// Requests being answered now, and the most at once.
#[derive(Default)]
struct Busy {
    now: usize,
    peak: usize,
}

/// Counts a request as being answered until dropped (also when the
/// client goes away and the answer is abandoned).
struct Answering(Arc<Mutex<Busy>>);

impl Answering {
    fn start(busy: &Arc<Mutex<Busy>>) -> Answering {
        let mut b = busy.lock().unwrap();
        b.now += 1;
        b.peak = b.peak.max(b.now);
        Answering(busy.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.lock().unwrap().now -= 1;
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    answer: Arc<Mutex<Answer>>,
    busy: Arc<Mutex<Busy>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Answers 200 `ok` to everything, recording each request.
    pub async fn recording() -> Upstream {
        Upstream::recording_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// The same, on a given address (e.g. one the gateway already points at).
    pub async fn recording_on(addr: SocketAddr) -> Upstream {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Answer {
            status: StatusCode::OK,
            headers: vec![],
            body: b"ok",
            delay: Duration::ZERO,
            script: Default::default(),
            keep_alive_timeout: None,
            slow: None,
        }));
        let busy = Arc::new(Mutex::new(Busy::default()));
        let (s, a, b) = (seen.clone(), answer.clone(), busy.clone());
        let task = tokio::spawn(async move {
            for conn in 0.. {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let (s, a, b) = (s.clone(), a.clone(), b.clone());
                let mut builder = auto::Builder::new(TokioExecutor::new());
                if let Some(t) = a.lock().unwrap().keep_alive_timeout {
                    builder
                        .http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(t);
                }
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (s, a, b) = (s.clone(), a.clone(), b.clone());
                        async move {
                            let _answering = Answering::start(&b);
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let slow = a.lock().unwrap().slow.filter(|(needle, _)| {
                                body.windows(needle.len()).any(|w| w == *needle)
                            });
                            s.lock().unwrap().push(Recorded {
                                method: parts.method,
                                uri: parts.uri,
                                headers: parts.headers,
                                body,
                                conn,
                            });
                            let mut answer = a.lock().unwrap().clone();
                            if let Some(next) = a.lock().unwrap().script.pop_front() {
                                answer.status = next;
                            }
                            tokio::time::sleep(slow.map_or(answer.delay, |(_, d)| d)).await;
                            let mut resp =
                                Response::new(Full::new(Bytes::from_static(answer.body)));
                            *resp.status_mut() = answer.status;
                            for (k, v) in answer.headers {
                                resp.headers_mut().append(k, v.parse().unwrap());
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            answer,
            busy,
            task,
        }
    }

    /// Answer with this status, headers and body from now on.
    pub fn answer(
        &self,
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: &'static [u8],
    ) {
        let mut a = self.answer.lock().unwrap();
        a.status = StatusCode::from_u16(status).unwrap();
        a.headers = headers;
        a.body = body;
    }

    /// Answer the next requests with these statuses, then as before.
    pub fn script(&self, statuses: &[u16]) {
        let mut a = self.answer.lock().unwrap();
        a.script = statuses
            .iter()
            .map(|s| StatusCode::from_u16(*s).unwrap())
            .collect();
    }

    /// Close connections left idle this long (see `Answer::keep_alive_timeout`).
    pub fn keep_alive_timeout(&self, d: Duration) {
        self.answer.lock().unwrap().keep_alive_timeout = Some(d);
    }

    /// Wait this long before answering.
    pub fn delay(&self, d: Duration) {
        self.answer.lock().unwrap().delay = d;
    }

    /// Requests whose body contains `needle` wait `d` before their answer.
    pub fn delay_when(&self, needle: &'static [u8], d: Duration) {
        self.answer.lock().unwrap().slow = Some((needle, d));
    }

    /// Requests being answered now (received, answer not yet given, client
    /// still there as far as the server knows).
    pub fn answering(&self) -> usize {
        self.busy.lock().unwrap().now
    }

    /// The most requests answered at once so far.
    pub fn peak(&self) -> usize {
        self.busy.lock().unwrap().peak
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address where nothing listens (a port just released), for an upstream
/// that comes up later. Outside Linux's ephemeral range (32768-60999), so
/// no outgoing connection or port-0 listener of a parallel test takes it
/// meanwhile.
pub fn closed_port() -> SocketAddr {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize
        + std::process::id() as usize;
    (0..12_000)
        .map(|i| 20_000 + (seed + i * 7919) % 12_000)
        .find_map(|port| std::net::TcpListener::bind(("127.0.0.1", port as u16)).ok())
        .expect("a free port below the ephemeral range")
        .local_addr()
        .unwrap()
}
