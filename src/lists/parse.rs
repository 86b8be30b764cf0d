//! A published list's document → its ranges, and the sanity every copy
//! must pass before it may replace the last good one. Pure.

use ipnet::IpNet;

use crate::config::ip_list::ListFormat;

/// The most ranges a list may hold: more is not a provider's senders.
pub(crate) const MAX_RANGES: usize = 10_000;
/// The most IPv4 addresses a list's ranges may cover together: a /8's
/// worth (Zoom's whole list, the widest built in, covers about 600,000).
pub(crate) const MAX_V4_COVERED: u128 = 1 << 24;
/// The most IPv6 addresses: a /16's worth (GitHub's widest is a /29).
pub(crate) const MAX_V6_COVERED: u128 = 1 << 112;

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
    #[error("the list's {family} ranges together cover as many addresses as a /{as_wide_as} ({covered}), more than a {bound}'s worth: that is not a provider's senders")]
    TooWide {
        family: &'static str,
        as_wide_as: u32,
        covered: u128,
        bound: &'static str,
    },
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
    not_too_wide(&nets)?;
    Ok(nets)
}

/// The ranges judged as a whole: merged, they are not every address, nor
/// more than [`MAX_V4_COVERED`] or [`MAX_V6_COVERED`] addresses.
fn not_too_wide(nets: &[IpNet]) -> Result<(), Unusable> {
    let merged = IpNet::aggregate(&nets.to_vec());
    if let Some(all) = merged.iter().find(|n| n.prefix_len() == 0) {
        return Err(Unusable::Everyone(*all));
    }
    let (mut v4, mut v6) = (0u128, 0u128);
    for n in &merged {
        // prefix_len ≥ 1 here: each term is at most 2^127.
        let size = 1u128 << (n.max_prefix_len() - n.prefix_len());
        match n {
            IpNet::V4(_) => v4 += size,
            IpNet::V6(_) => v6 = v6.saturating_add(size),
        }
    }
    let wide = |family, bits: u32, covered: u128, bound| Unusable::TooWide {
        family,
        as_wide_as: bits - (127 - covered.leading_zeros()),
        covered,
        bound,
    };
    if v4 > MAX_V4_COVERED {
        return Err(wide("IPv4", 32, v4, "/8"));
    }
    if v6 > MAX_V6_COVERED {
        return Err(wide("IPv6", 128, v6, "/16"));
    }
    Ok(())
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
    fn an_entry_with_leading_zeros_is_refused_as_the_config_refuses_it() {
        for e in ["010.0.0.0/24", "10.0.0.010", "1.2.3.04/32"] {
            assert!(
                matches!(checked(&[e.to_owned()]), Err(Unusable::BadEntry(_))),
                "{e}"
            );
        }
        assert!(checked(&["10.0.0.0/24".to_owned(), "2001:db8::/32".to_owned()]).is_ok());
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

    #[test]
    fn ranges_that_together_cover_too_much_are_refused() {
        let f = json("webhook_ips");
        for (doc, why) in [
            (
                &br#"{"webhook_ips":["0.0.0.0/1","128.0.0.0/1"]}"#[..],
                "every address",
            ),
            (br#"{"webhook_ips":["::/1","8000::/1"]}"#, "every address"),
            (br#"{"webhook_ips":["0.0.0.0/1"]}"#, "as a /1 (2147483648)"),
            (
                br#"{"webhook_ips":["10.0.0.0/8","11.0.0.0/32"]}"#,
                "more than a /8's worth",
            ),
            (
                br#"{"webhook_ips":["2001::/16","2002::/16"]}"#,
                "IPv6 ranges together cover as many addresses as a /15",
            ),
        ] {
            let e = ranges(&f, doc).unwrap_err().to_string();
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(doc));
        }
        let halves = b"0.0.0.0/1\n128.0.0.0/2\n192.0.0.0/2\n";
        assert!(matches!(
            ranges(&ListFormat::Lines, halves),
            Err(Unusable::Everyone(_))
        ));
        // Exactly a /8's worth, and a /16 of IPv6, are still a list.
        assert!(ranges(
            &f,
            br#"{"webhook_ips":["10.0.0.0/9","11.0.0.0/9","2001::/16"]}"#
        )
        .is_ok());
    }

    #[test]
    fn the_real_github_stripe_and_zoom_lists_fit_well_within_the_bounds() {
        let github = br#"{"hooks":["192.30.252.0/22","185.199.108.0/22","140.82.112.0/20","143.55.64.0/20","2a0a:a440::/29","2606:50c0::/32"]}"#;
        assert_eq!(ranges(&json("hooks"), github).unwrap().len(), 6);
        let stripe = br#"{"WEBHOOKS":["3.18.12.63","3.130.192.231","13.235.14.237","13.235.122.149","18.211.135.69","35.154.171.200","52.15.183.38","54.88.130.119","54.88.130.237","54.187.174.169","54.187.205.235","54.187.216.72"]}"#;
        assert_eq!(ranges(&json("WEBHOOKS"), stripe).unwrap().len(), 12);
        // Zoom.txt as published (its widest entries are /16s).
        let zoom = ZOOM.join("\n");
        let nets = ranges(&ListFormat::Lines, zoom.as_bytes()).unwrap();
        let covered: u128 = nets.iter().map(|n| 1u128 << (32 - n.prefix_len())).sum();
        assert!(covered * 16 < MAX_V4_COVERED, "{covered}");
    }

    const ZOOM: &[&str] = &[
        "3.7.35.0/25",
        "3.235.82.0/23",
        "3.235.96.0/23",
        "4.34.125.128/25",
        "4.35.64.128/25",
        "8.5.128.0/23",
        "15.220.80.0/24",
        "15.220.81.0/25",
        "18.254.23.128/25",
        "18.254.61.0/25",
        "20.203.158.80/28",
        "20.203.190.192/26",
        "50.239.202.0/23",
        "50.239.204.0/24",
        "52.61.100.128/25",
        "64.125.62.0/24",
        "64.211.144.0/24",
        "64.224.32.0/19",
        "65.39.152.0/24",
        "69.174.57.0/24",
        "69.174.108.0/22",
        "101.36.167.0/24",
        "101.36.170.0/23",
        "103.122.166.0/23",
        "111.33.115.0/25",
        "111.33.181.0/25",
        "115.110.154.192/26",
        "115.114.56.192/26",
        "115.114.115.0/26",
        "115.114.131.0/26",
        "120.29.148.0/24",
        "121.244.146.0/27",
        "134.224.0.0/16",
        "137.66.128.0/17",
        "144.195.0.0/16",
        "147.124.96.0/19",
        "149.137.0.0/17",
        "156.45.0.0/17",
        "159.124.0.0/16",
        "160.1.56.128/25",
        "161.199.136.0/22",
        "162.12.232.0/22",
        "162.255.36.0/22",
        "165.254.88.0/23",
        "166.108.64.0/18",
        "168.140.0.0/17",
        "170.114.0.0/16",
        "173.231.80.0/20",
        "192.204.12.0/22",
        "198.251.128.0/17",
        "202.177.207.128/27",
        "203.200.219.128/27",
        "204.80.104.0/21",
        "204.141.28.0/22",
        "206.247.0.0/16",
        "207.226.132.0/24",
        "209.9.211.0/24",
        "209.9.215.0/24",
        "213.19.144.0/24",
        "213.19.153.0/24",
        "213.244.140.0/24",
        "221.122.63.0/24",
        "221.122.64.0/24",
        "221.122.88.64/27",
        "221.122.88.128/25",
        "221.122.89.128/25",
        "221.123.139.192/27",
    ];
}
