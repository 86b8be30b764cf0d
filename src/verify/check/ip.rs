//! The source address: in the route's `allow_ips`, before the body is read.

use std::net::IpAddr;

use super::{Refusal, Seen, Step, Verdict};
use crate::config::Route;
use crate::verify::client_ip;

pub(super) fn head(route: &Route, client: IpAddr) -> Step {
    let Some(allow) = &route.allow_ips else {
        return Step::Off;
    };
    match client_ip::is_in(client, &allow.nets) {
        true => Step::Pass,
        false => Step::Fail(Refusal::Ip(client_ip::canonical(client))),
    }
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Verdict {
    match (&route.allow_ips, seen.client) {
        (None, _) => Verdict::Off,
        (Some(_), None) => {
            Verdict::Unknown("cannot decide without the source address: give --from ADDRESS".into())
        }
        (Some(a), Some(ip)) if client_ip::is_in(ip, &a.nets) => {
            Verdict::Pass(format!("{ip} is in allow_ips"))
        }
        (Some(_), Some(ip)) => Verdict::Fail(format!("{ip} is not in allow_ips")),
    }
}

pub(super) fn describe(route: &Route) -> String {
    match &route.allow_ips {
        Some(ip) => {
            let nets: Vec<String> = ip.nets.iter().map(|n| n.to_string()).collect();
            let from = if ip.from_preset { " (from preset)" } else { "" };
            format!("allow {}{from}", nets.join(", "))
        }
        None => "(any source address)".into(),
    }
}
