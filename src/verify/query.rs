//! Query strings and form bodies as the receiver reads them. Parameter
//! names are compared the way PHP builds `$_GET` and `$_POST` ([`crate::php::php_name`]):
//! percent-decoded, leading blanks dropped, `.` and ` ` folded to `_`, cut at
//! NUL, `name[...]` the array `name`. So `tok%65n`, `+token`, `token%00x`
//! and `token[]` are all the token to callgate, as they are to PHP, and
//! cannot slip a second token past the check.

use std::borrow::Cow;

use crate::php::{folded, folded_ref, php_base};

/// What a query holds under one parameter name.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Not there.
    Missing,
    /// There once, with this decoded value.
    One(Cow<'a, str>),
    /// Receivers disagree on which copy wins (PHP takes the last, and makes
    /// `name[]` an array), so a repeated or array parameter is refused
    /// rather than guessed at.
    Repeated,
}

/// Whether a decoded parameter name is `name` (already [`folded`]) to PHP.
fn is_named(decoded: &str, name: &str) -> bool {
    php_base(decoded).is_some_and(|(base, _)| base == name)
}

/// Find the single value of `name` in `query` (without the leading `?`).
pub fn lookup<'a>(query: &'a str, name: &str) -> Lookup<'a> {
    let name = folded_ref(name);
    let mut found = Lookup::Missing;
    for (k, v) in parse(query) {
        match php_base(&k) {
            Some((base, array)) if base == name => {
                if array || found != Lookup::Missing {
                    return Lookup::Repeated;
                }
                found = Lookup::One(v);
            }
            _ => {}
        }
    }
    found
}

/// What `form_urlencoded::parse` yields for `query`, with less work: a
/// piece holding neither `%` nor `+` decodes to its own bytes (the query is
/// UTF-8 already), so only the others are decoded. The URL token's lookup
/// runs on every callback's query.
fn parse(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|piece| {
        if piece.bytes().any(|b| b == b'%' || b == b'+') {
            let mut decoded = form_urlencoded::parse(piece.as_bytes());
            // A piece without `&` that is not empty: one pair.
            return decoded.next().unwrap_or_default();
        }
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        (Cow::Borrowed(k), Cow::Borrowed(v))
    })
}

/// The first of `names` (each already [`folded`]) that appears in a query
/// or form body, under any spelling PHP folds to it.
pub fn first_named<'n>(params: &[u8], names: &'n [String]) -> Option<&'n str> {
    // No name to find (an upstream URL without a query): nothing to decode.
    if names.is_empty() {
        return None;
    }
    form_urlencoded::parse(params).find_map(|(k, _)| {
        let (base, _) = php_base(&k)?;
        names.iter().find(|want| **want == base).map(String::as_str)
    })
}

/// The decoded name of one raw `name=value` piece.
fn piece_name(piece: &str) -> Cow<'_, str> {
    let raw = piece.split('=').next().unwrap_or("");
    form_urlencoded::parse(raw.as_bytes())
        .next()
        .map(|(k, _)| k)
        .unwrap_or(Cow::Borrowed(""))
}

/// `query` without any `name` parameter, in every spelling PHP folds to it;
/// every other piece is kept raw and in order, so the receiver sees the
/// rest byte for byte.
pub fn strip(query: &str, name: &str) -> String {
    let name = folded_ref(name);
    query
        .split('&')
        .filter(|piece| !piece.is_empty() && !is_named(&piece_name(piece), &name))
        .collect::<Vec<_>>()
        .join("&")
}

/// `query` with the values of every parameter in `names` (in any spelling
/// PHP folds to one of them) replaced by `REDACTED`.
pub fn redact<'a>(query: &'a str, names: &[String]) -> Cow<'a, str> {
    let names: Vec<String> = names.iter().map(|n| folded(n)).collect();
    let named = |name: &str| names.iter().any(|n| is_named(name, n));
    if !query.split('&').any(|p| named(&piece_name(p))) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len() + 8);
    redact_folded_into(query, &names, &mut out);
    Cow::Owned(out)
}

/// [`redact`] appended to `out`, for names already [`folded`]: the
/// request log line and the console's record make one string per request,
/// and nothing else.
pub(crate) fn redact_folded_into(query: &str, folded_names: &[String], out: &mut String) {
    let named = |name: &str| folded_names.iter().any(|n| is_named(name, n));
    set_values_into(query, named, "REDACTED", out);
}

/// `query` with the value of every `name` parameter set to `value`
/// (form-encoded): how a queued callback gets its token back.
pub fn restore(query: &str, name: &str, value: &[u8]) -> String {
    let encoded: String = form_urlencoded::byte_serialize(value).collect();
    let name = folded(name);
    set_values(query, |n| is_named(n, &name), &encoded)
}

/// Every piece whose decoded name `matches` gets `raw_value`; the others stay raw.
fn set_values(query: &str, matches: impl Fn(&str) -> bool, raw_value: &str) -> String {
    let mut out = String::with_capacity(query.len() + raw_value.len());
    set_values_into(query, matches, raw_value, &mut out);
    out
}

/// [`set_values`] appended to `out`.
fn set_values_into(query: &str, matches: impl Fn(&str) -> bool, raw_value: &str, out: &mut String) {
    for (i, piece) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match matches(&piece_name(piece)) {
            true => {
                out.push_str(piece.split('=').next().unwrap_or(""));
                out.push('=');
                out.push_str(raw_value);
            }
            false => out.push_str(piece),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The shortcut parses every query as form_urlencoded does.
        #[test]
        fn parse_yields_what_form_urlencoded_yields(q in "([a-z=&+%. \\[\\]]|%[0-9a-fA-F]{2}|%|é){0,24}") {
            let ours: Vec<_> = parse(&q).collect();
            let theirs: Vec<_> = form_urlencoded::parse(q.as_bytes()).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

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
    fn every_php_spelling_of_the_token_is_the_token() {
        for q in [
            "token=a&+token=b",
            "token=a&%20token=b",
            "token=a&token%00x=b",
            "token=a&token[]=b",
            "token[]=a",
            "token=a&tok%65n=b",
        ] {
            assert_eq!(lookup(q, "token"), Lookup::Repeated, "{q}");
        }
        assert_eq!(lookup("api.key=a&api_key=b", "api_key"), Lookup::Repeated);
        assert_eq!(lookup("api%20key=a", "api.key"), Lookup::One("a".into()));
        assert_eq!(lookup("%2btoken=a", "token"), Lookup::Missing);
    }

    #[test]
    fn strip_and_redact_catch_every_spelling() {
        assert_eq!(strip("a=1&+token=x&token%00y=z&b=2", "token"), "a=1&b=2");
        let names = vec!["api_key".to_owned()];
        assert_eq!(
            redact("api.key=s&api%20key=t&x=1", &names),
            "api.key=REDACTED&api%20key=REDACTED&x=1"
        );
    }

    #[test]
    fn first_named_finds_folded_names_in_forms() {
        let names = vec!["action".to_owned(), "token".to_owned()];
        assert_eq!(first_named(b"a=1&acti.on=x", &names), None);
        assert_eq!(first_named(b"a=1&+action=x", &names), Some("action"));
        assert_eq!(first_named(b"token[x]=1", &names), Some("token"));
        assert_eq!(first_named(b"x=token", &names), None);
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
        for q in [
            "a=1&token=s3cret&b=2",
            "tok%65n=s3cret",
            "token",
            "a=1",
            "&&token=x&",
        ] {
            let mut out = String::new();
            redact_folded_into(q, &names, &mut out);
            assert_eq!(out, redact(q, &names), "{q}");
        }
    }
}
