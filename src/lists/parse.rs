//! A published list's document → its ranges, and the sanity every copy
//! must pass before it may replace the last good one. Pure.

use ipnet::IpNet;

use crate::config::ip_list::ListFormat;

/// The most ranges a list may hold: more is not a provider's senders.
pub(crate) const MAX_RANGES: usize = 10_000;

/// Why a document (fetched or stored) is not a usable list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Unusable {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("no array of strings at {0:?}")]
    NoArray(String),
    #[error("entry {0:?} is not an address or CIDR")]
    BadEntry(String),
    #[error("the list is empty")]
    Empty,
    #[error("the list holds {0}, which is every address")]
    Everyone(IpNet),
    #[error("the list holds {0} ranges, more than {MAX_RANGES}")]
    TooMany(usize),
}

/// The ranges a document names, checked: none is every address, at least
/// one, at most [`MAX_RANGES`]. Sorted and deduplicated.
pub(crate) fn ranges(format: &ListFormat, doc: &[u8]) -> Result<Vec<IpNet>, Unusable> {
    let entries = match format {
        ListFormat::Json { path } => json_entries(path, doc)?,
        ListFormat::Lines => String::from_utf8_lossy(doc)
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
    };
    checked(&entries)
}

/// Entries (as text) → ranges, with the sanity rules.
pub(crate) fn checked(entries: &[String]) -> Result<Vec<IpNet>, Unusable> {
    if entries.len() > MAX_RANGES {
        return Err(Unusable::TooMany(entries.len()));
    }
    let mut nets = Vec::with_capacity(entries.len());
    for e in entries {
        let net = crate::config::raw::parse_cidr(e)
            .map_err(|_| Unusable::BadEntry(e.chars().take(64).collect()))?;
        if net.prefix_len() == 0 {
            return Err(Unusable::Everyone(net));
        }
        nets.push(net.trunc());
    }
    if nets.is_empty() {
        return Err(Unusable::Empty);
    }
    nets.sort();
    nets.dedup();
    Ok(nets)
}

fn json_entries(path: &[String], doc: &[u8]) -> Result<Vec<String>, Unusable> {
    let value: serde_json::Value =
        serde_json::from_slice(doc).map_err(|e| Unusable::NotJson(e.to_string()))?;
    let mut at = &value;
    for key in path {
        at = at
            .get(key)
            .ok_or_else(|| Unusable::NoArray(path.join(".")))?;
    }
    let array = at
        .as_array()
        .ok_or_else(|| Unusable::NoArray(path.join(".")))?;
    array
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Unusable::NoArray(path.join(".")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(path: &str) -> ListFormat {
        ListFormat::Json {
            path: path.split('.').map(str::to_owned).collect(),
        }
    }

    #[test]
    fn github_meta_and_stripe_documents_read() {
        let meta = br#"{"verifiable_password_authentication":false,"hooks":["192.30.252.0/22","185.199.108.0/22","2a0a:a440::/29"],"web":["1.2.3.4/32"]}"#;
        let got = ranges(&json("hooks"), meta).unwrap();
        assert_eq!(got.len(), 3);
        assert!(!got.contains(&"1.2.3.4/32".parse().unwrap()));
        let stripe = br#"{"WEBHOOKS":["3.18.12.63","3.130.192.231"]}"#;
        let got = ranges(&json("WEBHOOKS"), stripe).unwrap();
        assert_eq!(
            got,
            vec![
                "3.18.12.63/32".parse::<IpNet>().unwrap(),
                "3.130.192.231/32".parse().unwrap()
            ]
        );
    }

    #[test]
    fn lines_skip_blanks_and_comments() {
        let doc = b"# Zoom\n3.7.35.0/25\n\n 2407:30c0::/32 # v6\n";
        assert_eq!(ranges(&ListFormat::Lines, doc).unwrap().len(), 2);
    }

    #[test]
    fn absurd_and_broken_lists_are_refused() {
        let f = json("hooks");
        assert_eq!(ranges(&f, br#"{"hooks":[]}"#), Err(Unusable::Empty));
        assert!(matches!(
            ranges(&f, br#"{"hooks":["10.0.0.0/8","0.0.0.0/0"]}"#),
            Err(Unusable::Everyone(_))
        ));
        assert!(matches!(
            ranges(&f, br#"{"hooks":["::/0"]}"#),
            Err(Unusable::Everyone(_))
        ));
        assert!(matches!(ranges(&f, b"<html>"), Err(Unusable::NotJson(_))));
        assert!(matches!(
            ranges(&f, br#"{"web":["1.2.3.4"]}"#),
            Err(Unusable::NoArray(_))
        ));
        assert!(matches!(
            ranges(&f, br#"{"hooks":"1.2.3.4"}"#),
            Err(Unusable::NoArray(_))
        ));
        assert!(matches!(
            ranges(&f, br#"{"hooks":["1.2.3.4",5]}"#),
            Err(Unusable::NoArray(_))
        ));
        assert!(matches!(
            ranges(&f, br#"{"hooks":["example.com"]}"#),
            Err(Unusable::BadEntry(_))
        ));
        let many: Vec<String> = (0..=MAX_RANGES)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        assert_eq!(checked(&many), Err(Unusable::TooMany(MAX_RANGES + 1)));
        assert!(matches!(
            ranges(&ListFormat::Lines, b"0.0.0.0/0\n"),
            Err(Unusable::Everyone(_))
        ));
    }
}
