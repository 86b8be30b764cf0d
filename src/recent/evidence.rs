//! A refused request's evidence, as the console shows it: every check's
//! verdict (the breakdown `callgate explain` prints), its headers with
//! credentials redacted and the first 4 KiB of its body.

use std::net::IpAddr;

use base64::Engine;
use http::{Method, Uri};
use serde::Serialize;

use super::{redact_headers, BODY_KEPT};
use crate::config::redact::Redactor;
use crate::config::Route;
use crate::verify::check::{Judgement, Seen};
use crate::verify::explain::explain;
use crate::verify::Signable;

/// Why a callback was refused, check by check, and what it carried.
#[derive(Debug, Serialize)]
pub(crate) struct Detail {
    pub(crate) checks: Vec<CheckLine>,
    /// As they came (after hop-by-hop removal), credentials REDACTED.
    pub(crate) headers: Vec<(String, String)>,
    /// The first [`BODY_KEPT`] bytes, as text (invalid UTF-8 replaced).
    pub(crate) body: String,
    /// The same bytes, exactly (what `callgate explain` reads back).
    pub(crate) body_base64: String,
    /// The whole body's length; more than kept means the body was cut.
    pub(crate) body_bytes: usize,
    /// False when the request was refused before its body was read.
    pub(crate) body_read: bool,
}

/// One check's verdict, as `callgate explain` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct CheckLine {
    pub(crate) check: &'static str,
    /// `pass`, `fail`, `unknown`, `skipped` or `off`.
    pub(crate) verdict: &'static str,
    pub(crate) why: String,
}

/// A refused request as it came, for [`Detail::of`].
pub(crate) struct Evidence<'a> {
    pub(crate) route: &'a Route,
    pub(crate) client: IpAddr,
    /// What the named address lists hold now.
    pub(crate) lists: &'a dyn crate::config::NamedLists,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    /// Headers, body (empty if not read), public URL, now.
    pub(crate) signable: Signable<'a>,
    pub(crate) body_read: bool,
    /// The config's secrets, hidden by value in all that is kept.
    pub(crate) redactor: &'a Redactor,
}

impl Detail {
    /// Run every check on the request, one at a time (as `callgate explain`
    /// does), and keep what the console may show of it: every secret the
    /// config holds REDACTED, in the verdicts, the headers and the body.
    pub(crate) fn of(e: &Evidence<'_>) -> Detail {
        let hide = |why: &str| e.redactor.text(why).into_owned();
        let seen = Seen {
            client: Some(e.client),
            method: e.method,
            uri: e.uri,
            req: e.signable,
            lists: e.lists,
        };
        let checks = explain(e.route, &seen)
            .checks
            .into_iter()
            .map(|(check, verdict)| match verdict {
                // Checks of the body say nothing when it was never read.
                Judgement::Fail(_) | Judgement::Pass(_) if !e.body_read && check.reads_body() => {
                    CheckLine {
                        check: check.name(),
                        verdict: "unknown",
                        why: "not reached: refused before the body was read".into(),
                    }
                }
                v => CheckLine {
                    check: check.name(),
                    verdict: v.word(),
                    why: hide(v.why()),
                },
            })
            .collect();
        let body = e.signable.body;
        let kept = e.redactor.kept(body, BODY_KEPT);
        Detail {
            checks,
            headers: redact_headers(e.signable.headers, e.redactor),
            body: String::from_utf8_lossy(&kept).into_owned(),
            body_base64: base64::engine::general_purpose::STANDARD.encode(&kept),
            body_bytes: body.len(),
            body_read: e.body_read,
        }
    }
}
