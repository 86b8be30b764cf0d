//! Where connections come from: sockets passed by systemd socket activation
//! (by their LISTEN_FDNAMES name), or bound here with SO_REUSEPORT.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use anyhow::{bail, Context};
use tokio::net::TcpListener;

use crate::config::Config;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Https,
    Http,
    Admin,
}

impl Kind {
    pub(super) const ALL: [Kind; 3] = [Kind::Https, Kind::Http, Kind::Admin];

    /// Name in `[listen]` and in LISTEN_FDNAMES.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Https => "https",
            Kind::Http => "http",
            Kind::Admin => "admin",
        }
    }

    pub(super) fn configured(self, config: &Config) -> Option<SocketAddr> {
        match self {
            Kind::Https => config.listen.https,
            Kind::Http => config.listen.http,
            Kind::Admin => config.listen.admin,
        }
    }
}

/// Listeners passed by systemd socket activation, by their LISTEN_FDNAMES name.
pub(super) fn inherited_listeners() -> anyhow::Result<HashMap<String, std::net::TcpListener>> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = HashMap::new();
    for i in 0..fds.len() {
        // Without names (an old systemd, or another supervisor) a single socket is the https one.
        let name = match names.get(i) {
            Some(n) => n.clone(),
            None if fds.len() == 1 => Kind::Https.name().to_owned(),
            None => bail!("systemd passed {} sockets without LISTEN_FDNAMES; set FileDescriptorName=https/http/admin", fds.len()),
        };
        let listener = fds
            .take_tcp_listener(i)
            .with_context(|| format!("socket {name:?} passed by systemd is not a TCP listener"))?
            .with_context(|| format!("socket {name:?} passed by systemd is missing"))?;
        out.insert(name, listener);
    }
    Ok(out)
}

/// Kernel queue of connections not yet accepted (also what max_connections leaves waiting).
const LISTEN_BACKLOG: u32 = 4096;

/// Bind with SO_REUSEPORT, so several callgate processes can share a port
/// and the kernel spreads connections over them.
pub(super) async fn bind(addr: SocketAddr, kind: Kind) -> anyhow::Result<TcpListener> {
    let bound = (|| {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    })();
    bound.with_context(|| {
        format!("cannot bind listen.{} = \"{addr}\" (in use, or a privileged port without CAP_NET_BIND_SERVICE or callgate.socket?)", kind.name())
    })
}

/// The listeners serving, as bound or passed (`listen.NAME = "ADDR"` for
/// those off loopback): what a config's trial values are judged against at
/// the start and at every reload.
static OFF_LOOPBACK: OnceLock<Vec<String>> = OnceLock::new();

/// Note which of the listeners serving are off loopback.
pub(super) fn note_serving(listeners: &[(std::net::TcpListener, Kind)]) -> anyhow::Result<()> {
    let mut off = Vec::new();
    for (listener, kind) in listeners {
        let addr = listener.local_addr()?;
        if !crate::config::trial::on_loopback(&addr) {
            off.push(format!("listen.{} = \"{addr}\"", kind.name()));
        }
    }
    let _ = OFF_LOOPBACK.set(off);
    Ok(())
}

/// Trial values (self_signed, placeholder secrets) are served only when
/// every listener is on loopback, whatever `[listen]` says (systemd may
/// pass a public socket to a config that names 127.0.0.1).
pub(super) fn trial_on_loopback_only(config: &Config) -> anyhow::Result<()> {
    let off = OFF_LOOPBACK.get().map_or(&[][..], Vec::as_slice);
    if config.trial.is_empty() || off.is_empty() {
        return Ok(());
    }
    let why = crate::config::trial::refusal(&config.trial, off);
    bail!("{}: {why}", config.path.display())
}
