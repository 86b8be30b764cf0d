//! `[queue] url` for PostgreSQL, read the way libpq's strict modes read it,
//! and safe by default: without `sslmode` the connection is `verify-full`
//! (TLS, the chain and the host name checked), so a man in the middle who
//! answers 'N' to the TLS request gets no plaintext and no password.
//! `prefer` and `allow`, which fall back to plaintext on that answer, are
//! refused; `disable` must be written. `sslrootcert` names extra roots (a
//! PEM file; `system`: none beyond the system's). Nothing here ever echoes the URL: it may hold a
//! password.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// What TLS the queue database connection demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plaintext, said explicitly.
    Disable,
    /// TLS; the certificate checked only against `sslrootcert` when given.
    Require,
    /// TLS and the chain, not the host name.
    VerifyCa,
    /// TLS, the chain and the host name (the default).
    VerifyFull,
}

/// Whose roots the server's chain must lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    /// The system's (no sslrootcert, or `sslrootcert=system`).
    System,
    /// These too, from `sslrootcert=PATH` (beside the system's).
    File {
        path: PathBuf,
        certs: Vec<CertificateDer<'static>>,
    },
}

/// The queue database's TLS, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgTls {
    pub(crate) mode: SslMode,
    pub(crate) roots: Roots,
}

impl PgTls {
    /// For `check`.
    pub(crate) fn describe(&self) -> String {
        let mode = match self.mode {
            SslMode::Disable => "sslmode=disable (plaintext)",
            SslMode::Require => "sslmode=require",
            SslMode::VerifyCa => "sslmode=verify-ca",
            SslMode::VerifyFull => "sslmode=verify-full",
        };
        match (&self.roots, self.mode) {
            (_, SslMode::Disable) => mode.to_owned(),
            (Roots::System, _) => format!("{mode}, system roots"),
            (Roots::File { path, .. }, _) => {
                format!("{mode}, system roots and {}", path.display())
            }
        }
    }
}

/// Split the URL into what tokio-postgres reads (the TLS parameters taken
/// out) and its TLS settings. Errors name the parameter and the fix, never
/// the URL.
pub(crate) fn parse(url: &str) -> Result<(String, PgTls), String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("it must be a postgres:// URL")?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.matches('@').count() > 1 {
        return Err(
            "its user or password holds a raw '@': percent-encode it as %40 (and ':' as %3A, '/' as %2F)"
                .into(),
        );
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut mode, mut root) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(v.to_owned()),
            "sslrootcert" => root = Some(percent_decode(v)?),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslnegotiation" => {
                return Err(format!(
                    "{k} is not supported: callgate checks the server with sslmode and sslrootcert, and logs in with the URL's user and password"
                ))
            }
            _ => kept.push(pair),
        }
    }
    let mode = match mode.as_deref() {
        None | Some("verify-full") => SslMode::VerifyFull,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("require") => SslMode::Require,
        Some("disable") => SslMode::Disable,
        Some("prefer" | "allow") => return Err(
            "sslmode=prefer and allow fall back to plaintext when a man in the middle answers that TLS is off (and can ask for the password in clear): write verify-full (the default), verify-ca, require, or disable on a trusted network".into(),
        ),
        Some(_) => {
            return Err(
                "sslmode must be verify-full (default), verify-ca, require or disable".into(),
            )
        }
    };
    let roots = match root.as_deref() {
        None | Some("system") => Roots::System,
        Some(path) => Roots::File {
            path: PathBuf::from(path),
            certs: read_roots(Path::new(path))?,
        },
    };
    let url = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok((url, PgTls { mode, roots }))
}

/// The PEM certificates of an `sslrootcert` file (bounded: a CA bundle, not
/// a disk).
fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    const MAX_BYTES: u64 = 1 << 20;
    let shown = path.display();
    let pem = crate::trusted::read_named(path, MAX_BYTES)
        .map_err(|e| format!("sslrootcert {shown}: {e} (give a CA bundle of at most 1 MiB)"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("sslrootcert {shown} holds no PEM certificate"));
    }
    Ok(certs)
}

fn percent_decode(v: &str) -> Result<String, String> {
    crate::paths::percent_decode(v).map_err(|e| format!("sslrootcert: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sslmode_is_verify_full_and_the_tls_parameters_are_taken_out() {
        let (url, tls) = parse("postgres://u:p@db.internal/q?application_name=cg").unwrap();
        assert_eq!(url, "postgres://u:p@db.internal/q?application_name=cg");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        let (url, tls) = parse("postgres://u@db/q?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgres://u@db/q", SslMode::VerifyCa)
        );
        assert_eq!(tls.roots, Roots::System);
        assert_eq!(
            parse("postgresql://h/q?sslmode=disable").unwrap().1.mode,
            SslMode::Disable
        );
        assert_eq!(
            parse("postgres://h/q?sslmode=require").unwrap().1.mode,
            SslMode::Require
        );
    }

    #[test]
    fn modes_that_fall_back_to_plaintext_are_refused_without_echoing_the_url() {
        for url in [
            "postgres://u:hunter2@h/q?sslmode=prefer",
            "postgres://u:hunter2@h/q?sslmode=allow",
            "postgres://u:hunter2@h/q?sslmode=bogus",
            "postgres://u:hun@ter2@h/q",
            "postgres://u:hunter2@h/q?sslcert=/x",
            "postgres://u:hunter2@h/q?sslrootcert=/nonexistent/hunter2-root.pem",
        ] {
            let err = parse(url).unwrap_err();
            assert!(
                !err.contains("hunter2") || err.contains("hunter2-root"),
                "{err}"
            );
            assert!(!err.contains("ter2@"), "{err}");
        }
    }

    #[test]
    fn sslrootcert_must_hold_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here").unwrap();
        let err = parse(&format!("postgres://h/q?sslrootcert={}", empty.display())).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let ca = rcgen::generate_simple_self_signed(vec!["db".to_owned()]).unwrap();
        let good = dir.path().join("root.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        let (_, tls) = parse(&format!("postgres://h/q?sslrootcert={}", good.display())).unwrap();
        assert!(matches!(tls.roots, Roots::File { ref certs, .. } if certs.len() == 1));
    }
}
