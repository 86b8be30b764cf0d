//! Replay protection: the keys of signed bytes (`verify/replay.rs`), which
//! the proxy claims in the store before delivering (`proxy/replay.rs`); a
//! copy within `dedupe_window` is answered, not delivered again.

use super::{Judgement, Seen};
use crate::config::{Delivery, Route};
use crate::verify::replay;

/// What a copy seen before is answered.
fn answered(route: &Route) -> u16 {
    match route.delivery {
        Delivery::Queue => route.ack_status.as_u16(),
        Delivery::Direct => 200,
    }
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    let Some(window) = route.dedupe_window else {
        return Judgement::Off;
    };
    let keys = replay::keys(route, &seen.req);
    Judgement::Pass(format!(
        "{} key(s) claimed ({}); the store decides: a copy seen within {} is answered {}, not delivered again",
        keys.len(),
        replay::describe(route),
        humantime::format_duration(window),
        answered(route)
    ))
}

pub(super) fn describe(route: &Route) -> String {
    match route.dedupe_window {
        Some(w) => format!(
            "window {}, key: {}; a redelivery is answered {}, not delivered again",
            humantime::format_duration(w),
            replay::describe(route),
            answered(route)
        ),
        None => "off (dedupe_window = \"0\" or none): every copy is delivered".into(),
    }
}
