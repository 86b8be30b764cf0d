//! The source address: in the route's `allow_ips` (its written addresses or
//! a named list's current copy), before the body is read.

use std::net::IpAddr;

use super::{Judgement, Refusal, Seen, Step};
use crate::config::{NamedLists, NotAdmitted, Route};
use crate::verify::client_ip;

pub(super) fn head(route: &Route, client: IpAddr, lists: &dyn NamedLists) -> Step {
    let Some(allow) = &route.allow_ips else {
        return Step::Off;
    };
    match allow.admits(client, lists) {
        Ok(()) => Step::Pass,
        Err(NotAdmitted::Outside) => Step::Fail(Refusal::Ip(client_ip::canonical(client))),
        Err(NotAdmitted::NoCopy(name)) => Step::Fail(Refusal::NoList(name)),
    }
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    match (&route.allow_ips, seen.client) {
        (None, _) => Judgement::Off,
        (Some(_), None) => Judgement::Unknown(
            "cannot decide without the source address: give --from ADDRESS".into(),
        ),
        (Some(a), Some(ip)) => match a.admits(ip, seen.lists) {
            Ok(()) => Judgement::Pass(format!("{ip} is in allow_ips")),
            Err(NotAdmitted::Outside) => Judgement::Fail(format!("{ip} is not in allow_ips")),
            Err(NotAdmitted::NoCopy(name)) => Judgement::Fail(format!(
                "{ip} is not in allow_ips' addresses, and list:{name} has no copy yet"
            )),
        },
    }
}

pub(super) fn describe(route: &Route) -> String {
    match &route.allow_ips {
        Some(ip) => {
            let nets: Vec<String> = (ip.nets.iter().map(|n| n.to_string()))
                .chain(ip.lists.iter().map(|l| format!("list:{l}")))
                .collect();
            let from = if ip.from_preset { " (from preset)" } else { "" };
            format!("allow {}{from}", nets.join(", "))
        }
        None => "(any source address)".into(),
    }
}
