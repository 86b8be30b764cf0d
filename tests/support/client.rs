//! A real TLS client (rustls) speaking HTTP/1.1 or h2, optionally from
//! another loopback source address such as 127.0.0.2.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use super::gateway::test_cert;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    H1,
    H2,
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// ALPN protocol the server chose.
    pub alpn: Option<Vec<u8>>,
    /// TLS version negotiated, when over TLS.
    pub tls_version: Option<rustls::ProtocolVersion>,
}

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub version: Version,
    pub source: Option<IpAddr>,
    pub tls: bool,
    /// Offer only TLS 1.2 in the handshake.
    pub tls12_only: bool,
    /// Certificates trusted besides the test certificate.
    pub extra_roots: Vec<Vec<u8>>,
    /// Bytes written right after connecting (a PROXY protocol header).
    pub preamble: Option<Vec<u8>>,
    /// Offer no ALPN protocol at all (old TLS clients, `curl --no-alpn`).
    pub no_alpn: bool,
}

impl Client {
    /// HTTPS to `addr` with the given HTTP version (negotiated by ALPN).
    pub fn https(addr: SocketAddr, version: Version) -> Client {
        Client {
            addr,
            version,
            source: None,
            tls: true,
            tls12_only: false,
            extra_roots: Vec::new(),
            preamble: None,
            no_alpn: false,
        }
    }

    /// Plain HTTP/1.1 to `addr`.
    pub fn http(addr: SocketAddr) -> Client {
        Client {
            addr,
            version: Version::H1,
            source: None,
            tls: false,
            tls12_only: false,
            extra_roots: Vec::new(),
            preamble: None,
            no_alpn: false,
        }
    }

    /// Connect from this local address (e.g. 127.0.0.2).
    pub fn source_ip(mut self, ip: &str) -> Client {
        self.source = Some(ip.parse().unwrap());
        self
    }

    /// Write these bytes first, e.g. a PROXY protocol header.
    pub fn preamble(mut self, bytes: Vec<u8>) -> Client {
        self.preamble = Some(bytes);
        self
    }

    /// Also trust this certificate (DER).
    pub fn trust(mut self, der: Vec<u8>) -> Client {
        self.extra_roots.push(der);
        self
    }

    /// A TLS connection kept open for several requests (HTTP/1.1 keep-alive or h2).
    pub async fn session(&self) -> Session {
        let stream = self.tls_connect().await;
        let peer_cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c[0].to_vec());
        let io = TokioIo::new(stream);
        let sender = match self.version {
            Version::H1 => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                Sender::H1(sender)
            }
            Version::H2 => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .unwrap();
                tokio::spawn(conn);
                Sender::H2(sender)
            }
        };
        Session {
            sender,
            authority: format!("localhost:{}", self.addr.port()),
            peer_cert,
        }
    }

    pub async fn tls_connect(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = self.connect().await;
        let mut config = client_config(self.version, self.tls12_only, &self.extra_roots);
        if self.no_alpn {
            Arc::make_mut(&mut config).alpn_protocols.clear();
        }
        TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake")
    }

    /// An h2 connection that sends nothing but PINGs (every 100 ms, as a
    /// keep-alive does); the handle ends when the server closes it.
    pub async fn h2_pinging(&self) -> tokio::task::JoinHandle<()> {
        let io = TokioIo::new(self.tls_connect().await);
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(std::time::Duration::from_millis(100))
            .keep_alive_while_idle(true)
            .handshake::<_, Full<Bytes>>(io)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _sender = sender;
            let _ = conn.await;
        })
    }

    /// Offer no ALPN protocol (HTTP/1.1 is then implied).
    pub fn no_alpn(mut self) -> Client {
        self.no_alpn = true;
        self
    }

    /// Offer only TLS 1.2.
    pub fn tls12(mut self) -> Client {
        self.tls12_only = true;
        self
    }

    pub async fn post(&self, path_and_query: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.request(Method::POST, path_and_query, headers, body)
            .await
    }

    /// One request on a fresh connection.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let authority = format!("localhost:{}", self.addr.port());
        let uri = match self.version {
            Version::H1 => path_and_query.to_owned(),
            Version::H2 => format!("https://{authority}{path_and_query}"),
        };
        let mut req = Request::builder().method(method).uri(uri);
        if self.version == Version::H1 {
            req = req.header("host", &authority);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        if !self.tls {
            let tcp = self.connect().await;
            return send(TokioIo::new(tcp), self.version, req, None).await;
        }
        let stream = self.tls_connect().await;
        let session = stream.get_ref().1;
        let alpn = session.alpn_protocol().map(|p| p.to_vec());
        let tls_version = session.protocol_version();
        let mut reply = send(TokioIo::new(stream), self.version, req, alpn).await;
        reply.tls_version = tls_version;
        reply
    }

    /// Raw bytes over this client's connection (TLS when it is an https
    /// client): what no well-behaved client would send. Returns every
    /// status seen and the text, as [`super::raw::exchange`] does.
    pub async fn raw(&self, bytes: &[u8]) -> (Vec<u16>, String) {
        if self.tls {
            super::raw::talk(self.tls_connect().await, bytes).await
        } else {
            super::raw::talk(self.connect().await, bytes).await
        }
    }

    pub async fn connect(&self) -> TcpStream {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .unwrap();
        if let Some(src) = self.source {
            socket.bind(SocketAddr::new(src, 0)).unwrap();
        }
        let mut tcp = socket
            .connect(self.addr)
            .await
            .expect("connect to callgate");
        tcp.set_nodelay(true).unwrap();
        if let Some(bytes) = &self.preamble {
            tokio::io::AsyncWriteExt::write_all(&mut tcp, bytes)
                .await
                .unwrap();
        }
        tcp
    }
}

async fn send<IO>(
    io: TokioIo<IO>,
    version: Version,
    req: Request<Full<Bytes>>,
    alpn: Option<Vec<u8>>,
) -> Reply
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let resp = match version {
        Version::H1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            sender.send_request(req).await.expect("HTTP/1.1 response")
        }
        Version::H2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            sender.send_request(req).await.expect("h2 response")
        }
    };
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        alpn,
        tls_version: None,
    }
}

/// Trusts only the test certificate; offers exactly one ALPN protocol.
pub fn client_config(
    version: Version,
    tls12_only: bool,
    extra_roots: &[Vec<u8>],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in extra_roots {
        roots.add(CertificateDer::from(der.clone())).unwrap();
    }
    roots
        .add(CertificateDer::from(test_cert().cert_der.clone()))
        .unwrap();
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![match version {
        Version::H1 => b"http/1.1".to_vec(),
        Version::H2 => b"h2".to_vec(),
    }];
    Arc::new(config)
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One open connection for many requests.
pub struct Session {
    sender: Sender,
    authority: String,
    /// The certificate the server presented (DER).
    pub peer_cert: Option<Vec<u8>>,
}

impl Session {
    /// POST on this connection; Err when the connection failed.
    pub async fn post(
        &mut self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let mut req = Request::builder().method(Method::POST);
        req = match self.sender {
            Sender::H1(_) => req.uri(path_and_query).header("host", &self.authority),
            Sender::H2(_) => req.uri(format!("https://{}{path_and_query}", self.authority)),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
            Sender::H2(s) => s.send_request(req).await,
        }
        .map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            alpn: None,
            tls_version: None,
        })
    }
}

/// The leaf certificate a TLS server at `addr` presents to a client asking
/// for `name` and trusting only `roots` (DER); the handshake's error if it
/// fails (an unknown issuer, no certificate for the name).
pub async fn presented_certificate(
    addr: SocketAddr,
    name: &str,
    roots: &[&[u8]],
) -> Result<Vec<u8>, String> {
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store.add(CertificateDer::from(der.to_vec())).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}
