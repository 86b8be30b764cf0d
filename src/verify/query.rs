//! Query-string handling for URL tokens: find a parameter, strip it before
//! forwarding, redact it for logs. Parameter names are compared after
//! percent-decoding, as PHP and every framework decode them, so `tok%65n`
//! cannot slip a second token past the check.

use std::borrow::Cow;

/// What a query holds under one parameter name.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Not there.
    Missing,
    /// There once, with this decoded value.
    One(Cow<'a, str>),
    /// Receivers disagree on which copy wins (PHP takes the last), so a
    /// repeated parameter is refused rather than guessed at.
    Repeated,
}

/// Find the single value of `name` in `query` (without the leading `?`).
pub fn lookup<'a>(query: &'a str, name: &str) -> Lookup<'a> {
    let mut found = Lookup::Missing;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == name {
            if found != Lookup::Missing {
                return Lookup::Repeated;
            }
            found = Lookup::One(v);
        }
    }
    found
}

/// The decoded name of one raw `name=value` piece.
fn piece_name(piece: &str) -> Cow<'_, str> {
    let raw = piece.split('=').next().unwrap_or("");
    form_urlencoded::parse(raw.as_bytes())
        .next()
        .map(|(k, _)| k)
        .unwrap_or(Cow::Borrowed(""))
}

/// `query` without any `name` parameter; every other piece is kept raw and
/// in order, so the receiver sees the rest byte for byte.
pub fn strip(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter(|piece| !piece.is_empty() && piece_name(piece) != name)
        .collect::<Vec<_>>()
        .join("&")
}

/// `query` with the values of every parameter in `names` replaced by `REDACTED`.
pub fn redact<'a>(query: &'a str, names: &[String]) -> Cow<'a, str> {
    let named = |name: &str| names.iter().any(|n| n == name);
    if !query.split('&').any(|p| named(&piece_name(p))) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(set_values(query, named, "REDACTED"))
}

/// `query` with the value of every `name` parameter set to `value`
/// (form-encoded): how a queued callback gets its token back.
pub fn restore(query: &str, name: &str, value: &[u8]) -> String {
    let encoded: String = form_urlencoded::byte_serialize(value).collect();
    set_values(query, |n| n == name, &encoded)
}

/// Every piece whose decoded name `matches` gets `raw_value`; the others stay raw.
fn set_values(query: &str, matches: impl Fn(&str) -> bool, raw_value: &str) -> String {
    query
        .split('&')
        .map(|piece| {
            if matches(&piece_name(piece)) {
                format!("{}={raw_value}", piece.split('=').next().unwrap_or(""))
            } else {
                piece.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_single_parameter() {
        assert_eq!(
            lookup("a=1&token=abc&b=2", "token"),
            Lookup::One("abc".into())
        );
    }

    #[test]
    fn missing_parameter_is_missing() {
        assert_eq!(lookup("a=1&tokens=abc", "token"), Lookup::Missing);
        assert_eq!(lookup("", "token"), Lookup::Missing);
    }

    #[test]
    fn values_are_percent_and_plus_decoded() {
        assert_eq!(
            lookup("token=a%2Bb+c", "token"),
            Lookup::One("a+b c".into())
        );
    }

    #[test]
    fn repeated_parameter_is_reported_even_when_the_name_is_encoded() {
        assert_eq!(lookup("token=a&token=b", "token"), Lookup::Repeated);
        assert_eq!(lookup("token=a&tok%65n=b", "token"), Lookup::Repeated);
    }

    #[test]
    fn strip_keeps_every_other_piece_raw_and_in_order() {
        assert_eq!(strip("z=1&token=abc&a=%20x&b", "token"), "z=1&a=%20x&b");
        assert_eq!(strip("token=abc", "token"), "");
        assert_eq!(strip("tok%65n=abc&x=1", "token"), "x=1");
    }

    #[test]
    fn restore_undoes_redact() {
        let names = vec!["token".to_owned()];
        let redacted = redact("a=1&token=s3cret&b=2", &names).into_owned();
        assert_eq!(
            restore(&redacted, "token", b"s3 cret&x"),
            "a=1&token=s3+cret%26x&b=2"
        );
        assert_eq!(
            lookup(&restore(&redacted, "token", b"s3 cret&x"), "token"),
            Lookup::One("s3 cret&x".into())
        );
    }

    #[test]
    fn redact_hides_values_of_named_parameters_only() {
        let names = vec!["token".to_owned()];
        assert_eq!(
            redact("a=1&token=s3cret&b=2", &names),
            "a=1&token=REDACTED&b=2"
        );
        assert_eq!(redact("tok%65n=s3cret", &names), "tok%65n=REDACTED");
        assert_eq!(redact("token", &names), "token=REDACTED");
        assert!(matches!(redact("a=1", &names), Cow::Borrowed("a=1")));
    }
}
