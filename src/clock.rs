//! The one clock: wall time now, as a `SystemTime` or as Unix seconds or
//! milliseconds. Code that decides by the time reads it here, at its edge,
//! and hands `now` down, so the deciding code can be tested at any time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as the operating system tells it.
pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

/// Unix seconds now (0 on a clock set before 1970).
pub(crate) fn unix_secs() -> i64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix milliseconds now (0 on a clock set before 1970).
pub(crate) fn unix_ms() -> i64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_read_the_same_clock() {
        let (ms, s) = (unix_ms(), unix_secs());
        assert!(s > 1_700_000_000, "{s}");
        assert!((ms / 1000 - s).abs() <= 1, "{ms} {s}");
    }
}
