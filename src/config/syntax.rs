//! What the TOML parser found, said for an operator: every bad element of
//! a list, the fix where one is known, and never a value (it may be a
//! secret written in the wrong shape).

use std::ops::Range;

use super::load::Loader;
use super::{raw, ConfigError};

/// What the parser found, every bad element of a list included: the
/// parser names the list; each element is tried alone to find which are
/// bad, those are blanked out (same length, so line:column stay true) and
/// the file read again, until an error that is not a bad element.
pub(super) fn parse_errors(loader: &Loader<'_>, text: &str, first: toml::de::Error) -> ConfigError {
    let mut errors = Vec::new();
    let mut text = text.to_owned();
    let mut e = first;
    // Bounded: each round blanks at least one element.
    for _ in 0..16 {
        let bad = e
            .span()
            .map(|span| bad_elements(&text, span))
            .unwrap_or_default();
        if bad.is_empty() {
            errors.push(loader.error(e.span(), parse_message(&text, &e)));
            break;
        }
        for (at, why) in &bad {
            errors.push(loader.error(Some(at.clone()), parse_message(&text, why)));
        }
        let ats: Vec<Range<usize>> = bad.into_iter().map(|(at, _)| at).collect();
        text = blanked(&text, &ats);
        match toml::from_str::<raw::RawConfig>(&text) {
            Ok(_) => break,
            Err(next) => e = next,
        }
    }
    ConfigError::all(errors).expect("one error at least")
}

/// The parser's message, without values, with the fix where one is known.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let mut message = without_values(e.message().trim_end());
    if message.starts_with("unknown field") {
        message.push_str(
            " (callgate refuses unknown keys: a misspelt key could silently disable a check)",
        );
    }
    if let Some(hint) = single_for_list(text, &message) {
        message.push_str(&hint);
    }
    message
}

/// The string elements of the array at `span` that the parser refuses
/// alone (the others blanked), each with its error; none when `span` is
/// not an array of strings. At most 64 elements are tried.
fn bad_elements(text: &str, span: Range<usize>) -> Vec<(Range<usize>, toml::de::Error)> {
    let Some(array) = text.get(span.clone()) else {
        return Vec::new();
    };
    if !array.starts_with('[') || !array.ends_with(']') {
        return Vec::new();
    }
    let elements: Vec<Range<usize>> = string_literals(array)
        .into_iter()
        .take(64)
        .map(|r| r.start + span.start..r.end + span.start)
        .collect();
    let mut bad = Vec::new();
    for (i, el) in elements.iter().enumerate() {
        let others: Vec<Range<usize>> = (0..elements.len())
            .filter(|j| *j != i)
            .map(|j| elements[j].clone())
            .collect();
        if let Err(e) = toml::from_str::<raw::RawConfig>(&blanked(text, &others)) {
            if e.span().is_some_and(|s| s.start == span.start) {
                bad.push((el.clone(), e));
            }
        }
    }
    bad
}

/// The `"…"` literals of an array's text (escapes honoured), as ranges.
fn string_literals(array: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut open = None;
    let mut escaped = false;
    for (i, c) in array.char_indices() {
        match (c, open) {
            ('"', None) => open = Some(i),
            ('\\', Some(_)) if !escaped => {
                escaped = true;
                continue;
            }
            ('"', Some(start)) if !escaped => {
                out.push(start..i + 1);
                open = None;
            }
            ('#', None) => return out,
            _ => {}
        }
        escaped = false;
    }
    out
}

/// `text` with each element (and the comma after it) blanked out: spaces,
/// newlines kept, so every other position stays where it was.
fn blanked(text: &str, elements: &[Range<usize>]) -> String {
    let mut out: Vec<u8> = text.as_bytes().to_vec();
    for el in elements {
        let rest = &text[el.end..];
        let gap = rest.len() - rest.trim_start().len();
        let end = match rest.trim_start().starts_with(',') {
            true => el.end + gap + 1,
            false => el.end,
        };
        for b in &mut out[el.start..end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// Tables that are lists in callgate's config (`[[route]]`): written with
/// single brackets, TOML reads a map where a list is expected.
const LIST_TABLES: [&str; 5] = [
    "route",
    "passthrough",
    "preset",
    "ip_list",
    "tls.certificate",
];

/// The hint for `[route]` written for `[[route]]`: serde says only
/// "invalid type: map, expected a sequence".
fn single_for_list(text: &str, message: &str) -> Option<String> {
    if !message.contains("expected a sequence") {
        return None;
    }
    let written = text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let name = line.strip_prefix('[')?.strip_suffix(']')?.trim();
        LIST_TABLES.contains(&name).then_some(name)
    })?;
    Some(format!(
        " (write [[{written}]], with two brackets: each {written} is one entry of a list, and [{written}] is read as a single table)"
    ))
}

/// A parser message without the string values it quotes: `invalid type:
/// string "tolq-token-…", expected a sequence` would print a secret written
/// in the wrong shape. The key and the position say where; the value is
/// the operator's to look at.
pub(super) fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        out.push_str(&rest[..at + "string ".len()]);
        let quoted = &rest[at + "string \"".len()..];
        // The literal ends at the first quote not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        match end {
            Some(i) => {
                out.push_str("(value not shown)");
                rest = &quoted[i + 1..];
            }
            None => {
                out.push_str("(value not shown)");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod value_tests {
    use super::without_values;

    #[test]
    fn quoted_strings_in_parser_messages_are_not_shown() {
        assert_eq!(
            without_values("invalid type: string \"tolq-secret\", expected a sequence"),
            "invalid type: string (value not shown), expected a sequence"
        );
        assert_eq!(
            without_values("invalid type: string \"a\\\"b\", expected x"),
            "invalid type: string (value not shown), expected x"
        );
        assert_eq!(without_values("unknown field `x`"), "unknown field `x`");
    }
}
