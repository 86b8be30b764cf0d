//! PROXY protocol v1/v2 (HAProxy, AWS NLB): the balancer in front of callgate
//! prefixes each connection with the client's real address. Parsing is done
//! by the `ppp` crate; this module only decides and reads exactly the header.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::v1;
use ppp::v2;
use ppp::{HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Largest header accepted: v1 is at most 107 bytes; v2 TLVs from real
/// balancers (AWS NLB, GCP) stay far below this.
pub const MAX_HEADER: usize = 1024;
const V1_SIGNATURE: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// Pause before peeking again at a header that arrived in pieces.
const PARTIAL_RETRY: Duration = Duration::from_millis(5);

/// What the first bytes of a connection hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A header of `len` bytes; `source` is None for LOCAL (the balancer's
    /// own health check) or an UNKNOWN/unix family.
    Complete {
        /// The header's length: the connection's own bytes start after it.
        len: usize,
        /// The client the balancer names.
        source: Option<SocketAddr>,
    },
    /// Not a PROXY header: the connection must be closed.
    Invalid(String),
}

/// Parse the start of a connection.
pub fn parse(buf: &[u8]) -> Parsed {
    let could_be = |sig: &[u8]| {
        let n = buf.len().min(sig.len());
        buf[..n] == sig[..n]
    };
    if !could_be(V1_SIGNATURE) && !could_be(V2_SIGNATURE) {
        return Parsed::Invalid("no PROXY protocol header".into());
    }
    let result = HeaderResult::parse(buf);
    // A v1 header ends at its first CRLF: past it, "incomplete" means broken.
    if result.is_incomplete()
        && buf.starts_with(V1_SIGNATURE)
        && buf.windows(2).any(|w| w == b"\r\n")
    {
        return Parsed::Invalid("bad PROXY v1 header".into());
    }
    if result.is_incomplete() {
        return if buf.len() >= MAX_HEADER {
            Parsed::Invalid(format!("PROXY header longer than {MAX_HEADER} bytes"))
        } else {
            Parsed::Incomplete
        };
    }
    match result {
        HeaderResult::V1(Ok(h)) => Parsed::Complete {
            len: h.header.len(),
            source: match h.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            },
        },
        HeaderResult::V2(Ok(h)) => Parsed::Complete {
            len: h.len(),
            source: match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            },
        },
        HeaderResult::V1(Err(e)) => Parsed::Invalid(format!("bad PROXY v1 header: {e}")),
        HeaderResult::V2(Err(e)) => Parsed::Invalid(format!("bad PROXY v2 header: {e}")),
    }
}

/// Read the PROXY header off `tcp`, leaving every byte after it unread for
/// TLS or HTTP. Returns the client address it names, if any.
pub(super) async fn read_header(
    tcp: &mut TcpStream,
    within: Duration,
) -> Result<Option<SocketAddr>, String> {
    let read = async {
        let mut buf = vec![0u8; MAX_HEADER];
        loop {
            let n = tcp.peek(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed before a PROXY header".to_owned());
            }
            match parse(&buf[..n]) {
                Parsed::Incomplete => tokio::time::sleep(PARTIAL_RETRY).await,
                Parsed::Invalid(why) => return Err(why),
                Parsed::Complete { len, source } => {
                    tcp.read_exact(&mut buf[..len])
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(source);
                }
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| "no PROXY header in time".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_tcp4_gives_the_client_and_the_exact_length() {
        let head = b"PROXY TCP4 84.22.114.141 10.0.0.1 55555 443\r\n";
        let mut buf = head.to_vec();
        buf.extend_from_slice(b"\x16\x03\x01rest-of-tls");
        assert_eq!(
            parse(&buf),
            Parsed::Complete {
                len: head.len(),
                source: Some("84.22.114.141:55555".parse().unwrap())
            }
        );
    }

    #[test]
    fn v1_tcp6_and_unknown() {
        let p = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 443\r\n");
        assert!(
            matches!(p, Parsed::Complete { source: Some(s), .. } if s.ip().to_string() == "2001:db8::1")
        );
        assert!(matches!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Complete { source: None, .. }
        ));
    }

    #[test]
    fn v2_proxy_and_local() {
        let header = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (
                "84.22.114.141:4000".parse::<SocketAddr>().unwrap(),
                "10.0.0.1:443".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        let mut buf = header.clone();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&buf),
            Parsed::Complete {
                len: header.len(),
                source: Some("84.22.114.141:4000".parse().unwrap())
            }
        );
        let local = v2::Builder::new(
            v2::Version::Two | v2::Command::Local,
            v2::AddressFamily::Unspecified | v2::Protocol::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(
            parse(&local),
            Parsed::Complete {
                len: local.len(),
                source: None
            }
        );
    }

    #[test]
    fn partial_headers_wait_for_more() {
        assert_eq!(parse(b"PROX"), Parsed::Incomplete);
        assert_eq!(
            parse(b"PROXY TCP4 84.22.114.141 10.0.0.1 5"),
            Parsed::Incomplete
        );
        assert_eq!(parse(b"\r\n\r\n\0"), Parsed::Incomplete);
    }

    #[test]
    fn anything_else_is_refused_at_once() {
        for start in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01\x02\x00",
            b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n",
            b"POST",
        ] {
            assert!(matches!(parse(start), Parsed::Invalid(_)), "{start:?}");
        }
    }

    #[test]
    fn a_broken_v1_line_is_refused_without_waiting() {
        assert!(matches!(
            parse(b"PROXY TCP4 84.22.114.141 nonsense\r\nPOST / HTTP/1.1\r\n"),
            Parsed::Invalid(_)
        ));
    }

    #[test]
    fn an_endless_header_is_refused() {
        let mut buf = b"PROXY TCP4 ".to_vec();
        buf.resize(MAX_HEADER, b'1');
        assert!(matches!(parse(&buf), Parsed::Invalid(_)));
    }
}
