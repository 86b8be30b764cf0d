//! Secrets hidden by value: every secret the config holds (URL tokens,
//! verify tokens, HMAC keys, the console password, the assertion key, the
//! queue database's password, the ACME store key), collected once when the
//! config is loaded (a reload builds a new one), is replaced by `REDACTED`
//! wherever it would appear in what callgate shows of a request: a target,
//! a header's name or value, a reason, a body excerpt. Under any parameter
//! or header name, and in the encodings a sender may have used: raw,
//! percent-encoded (once or more, `+` for space or not, any mix of escaped
//! and plain bytes), or escaped in a JSON string. Pure: no I/O.
//!
//! Secrets shorter than [`MIN_REDACTED_BYTES`] are not hidden by value
//! (they would match ordinary text); the loader warns about them.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use aho_corasick::AhoCorasick;

/// What a hidden value is shown as.
pub(crate) const REDACTED: &str = "REDACTED";

/// Secrets shorter than this are not searched for.
pub(crate) const MIN_REDACTED_BYTES: usize = 4;

/// How many times a target is percent-decoded, at most, looking for a
/// secret encoded more than once.
const DECODINGS: usize = 3;

/// The config's secrets, for hiding them by value.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// How many secrets (long enough, no duplicates).
    count: usize,
    /// The shortest form searched for. Every view of a text (its decodings,
    /// its escapes undone) is no longer than the text, so a shorter text
    /// holds no secret, and is not looked at (a method, most names).
    shortest: usize,
    /// Every secret and its whole hex and base64 forms, matched in one
    /// linear pass, ASCII case ignored; None when there are none.
    search: Option<AhoCorasick>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.count)
    }
}

impl Redactor {
    /// A redactor hiding each of `secrets` (those long enough).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Redactor {
        let mut secrets: Vec<Box<[u8]>> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_REDACTED_BYTES)
            .map(Box::from)
            .collect();
        secrets.sort_unstable();
        secrets.dedup();
        let patterns: Vec<Vec<u8>> = secrets.iter().flat_map(|s| forms(s)).collect();
        let search = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&patterns)
            .ok()
            .filter(|_| !patterns.is_empty());
        Redactor {
            count: secrets.len(),
            shortest: patterns.iter().map(Vec::len).min().unwrap_or(usize::MAX),
            search,
        }
    }

    /// How many secrets it hides.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The first `max` bytes of `bytes` with every secret hidden: hidden
    /// first, then cut, so a secret across the cut is hidden whole rather
    /// than shown up to it.
    pub(crate) fn kept<'a>(&self, bytes: &'a [u8], max: usize) -> Cow<'a, [u8]> {
        match self.bytes(bytes) {
            Cow::Borrowed(b) => Cow::Borrowed(&b[..b.len().min(max)]),
            Cow::Owned(mut hidden) => {
                hidden.truncate(max);
                Cow::Owned(hidden)
            }
        }
    }

    /// `bytes` with every secret, raw or encoded, replaced by `REDACTED`.
    pub(crate) fn bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let spans = self.spans(bytes);
        if spans.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        for span in spans {
            out.extend_from_slice(&bytes[at..span.start]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = span.end;
        }
        out.extend_from_slice(&bytes[at..]);
        Cow::Owned(out)
    }

    /// [`Redactor::bytes`] for text (a cut inside a character shows as U+FFFD).
    pub(crate) fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// A header as shown: a credential header's value is `REDACTED`
    /// whatever it holds; any other's, as text with secrets hidden.
    pub(crate) fn header(&self, name: &str, value: &[u8]) -> (String, String) {
        let shown = match is_credential_header(name) {
            true => REDACTED.to_owned(),
            false => String::from_utf8_lossy(&self.bytes(value)).into_owned(),
        };
        (self.text(name).into_owned(), shown)
    }

    /// The raw ranges of `raw` that hold a secret, in order, merged.
    /// Bounded: the raw text, at most [`DECODINGS`] percent-decodings of it
    /// (`+` as space and not), each also with JSON escapes undone, and the
    /// raw text with JSON escapes or HTML character references undone; each
    /// view is one linear pass.
    fn spans(&self, raw: &[u8]) -> Vec<Range<usize>> {
        let mut spans = Vec::new();
        let Some(search) = &self.search else {
            return spans;
        };
        if raw.len() < self.shortest.max(MIN_REDACTED_BYTES) {
            return spans;
        }
        spans.extend(find_all(search, raw));
        let escaped = |b: u8| raw.contains(&b);
        if escaped(b'%') || escaped(b'+') {
            // `+` as space is a second reading only when there is a `+`.
            let readings: &[bool] = match escaped(b'+') {
                true => &[false, true],
                false => &[false],
            };
            for &plus in readings {
                let mut view = View::identity(raw);
                for _ in 0..DECODINGS {
                    let Some(next) = view.percent_decoded(plus) else {
                        break;
                    };
                    view = next;
                    self.spans_in(&view, &mut spans);
                    if let Some(json) = view
                        .bytes
                        .contains(&b'\\')
                        .then(|| view.json_unescaped())
                        .flatten()
                    {
                        self.spans_in(&json, &mut spans);
                    }
                }
            }
        }
        if escaped(b'\\') {
            if let Some(view) = View::identity(raw).json_unescaped() {
                self.spans_in(&view, &mut spans);
            }
        }
        if escaped(b'&') {
            if let Some(view) = View::identity(raw).html_unescaped() {
                self.spans_in(&view, &mut spans);
            }
        }
        merge(spans)
    }

    /// Every secret found in a decoded view, as raw ranges.
    fn spans_in(&self, view: &View, spans: &mut Vec<Range<usize>>) {
        if let Some(search) = &self.search {
            spans.extend(find_all(search, &view.bytes).map(|r| view.at[r.start]..view.at[r.end]));
        }
    }
}

/// What is searched for a secret: itself, its hex, its base64 and base64url
/// (unpadded: the padded form holds it). Case is ignored when matching.
fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret);
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let mut out = vec![secret.to_vec(), hex.into_bytes(), b64.into_bytes()];
    if url.as_bytes() != out[2] {
        out.push(url.into_bytes());
    }
    out
}

/// Whether a header's name says it carries a credential: its value is
/// never shown. Names are folded first (lower case; `_`, `-` and `.` are
/// one separator, or none): `X_Api_Key`, `x-api-key` and `xapikey` are one
/// name. The common credential headers (Authorization, Proxy-Authorization,
/// Cookie, Set-Cookie, X-Api-Key, X-Auth-Token, X-Access-Token, X-CSRF-Token,
/// X-JWT, X-Gitlab-Token, …) all contain one of the words below.
///
/// Signature headers (`X-Hub-Signature-256`, `Stripe-Signature`, …) are
/// shown: a signature is a code for one message, not a key, and `callgate
/// explain` needs it to say why a captured refusal failed.
pub(crate) fn is_credential_header(name: &str) -> bool {
    const PARTS: &[&str] = &[
        "auth",
        "token",
        "secret",
        "key",
        "passw",
        "pwd",
        "cookie",
        "session",
        "jwt",
        "credential",
        "bearer",
        "csrf",
        "xsrf",
        "private",
    ];
    let folded: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    PARTS.iter().any(|p| folded.contains(p))
}

/// Where any pattern occurs in `hay` (overlapping occurrences too): linear
/// in `hay` and the matches.
fn find_all<'a>(search: &'a AhoCorasick, hay: &'a [u8]) -> impl Iterator<Item = Range<usize>> + 'a {
    search.find_overlapping_iter(hay).map(|m| m.range())
}

/// Sorted, overlapping or touching ranges made one.
fn merge(mut spans: Vec<Range<usize>>) -> Vec<Range<usize>> {
    spans.sort_unstable_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for r in spans {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Bytes decoded from a raw text, each with where it starts in the raw
/// text: `at[i]` for byte `i`, and `at[len]` is the raw text's end.
struct View {
    bytes: Vec<u8>,
    at: Vec<usize>,
}

impl View {
    fn identity(raw: &[u8]) -> View {
        View {
            bytes: raw.to_vec(),
            at: (0..=raw.len()).collect(),
        }
    }

    /// One more percent-decoding (and `+` as space when `plus`); None when
    /// it changes nothing.
    fn percent_decoded(&self, plus: bool) -> Option<View> {
        let src = &self.bytes;
        let mut out = View {
            bytes: Vec::with_capacity(src.len()),
            at: Vec::with_capacity(src.len() + 1),
        };
        let mut changed = false;
        let mut i = 0;
        while i < src.len() {
            out.at.push(self.at[i]);
            let escape = (src[i] == b'%')
                .then(|| Some(hex(*src.get(i + 1)?)? << 4 | hex(*src.get(i + 2)?)?))
                .flatten();
            match (escape, src[i]) {
                (Some(b), _) => {
                    out.bytes.push(b);
                    i += 3;
                    changed = true;
                }
                (None, b'+') if plus => {
                    out.bytes.push(b' ');
                    i += 1;
                    changed = true;
                }
                (None, b) => {
                    out.bytes.push(b);
                    i += 1;
                }
            }
        }
        out.at.push(self.at[src.len()]);
        changed.then_some(out)
    }

    /// JSON string escapes (`\/`, `\"`, `\\`, `\n`…, `\uXXXX`) undone;
    /// None when there are none.
    fn json_unescaped(&self) -> Option<View> {
        self.unescaped(json_escape)
    }

    /// HTML character references (`&#84;`, `&#x54;`, `&lt;` `&gt;` `&amp;`
    /// `&quot;` `&apos;`) undone; None when there are none.
    fn html_unescaped(&self) -> Option<View> {
        self.unescaped(html_reference)
    }

    /// Every escape `escape` reads at a position undone (each decoded byte
    /// keeps the position of its escape); None when there are none.
    fn unescaped(&self, escape: fn(&[u8]) -> Option<(Decoded, usize)>) -> Option<View> {
        let src = &self.bytes;
        let mut out = View {
            bytes: Vec::with_capacity(src.len()),
            at: Vec::with_capacity(src.len() + 1),
        };
        let mut changed = false;
        let mut i = 0;
        while i < src.len() {
            let (decoded, used) = escape(&src[i..]).unwrap_or_else(|| {
                let mut one = [0; 4];
                one[0] = src[i];
                (Decoded { bytes: one, len: 1 }, 1)
            });
            changed |= used > 1;
            for b in &decoded.bytes[..decoded.len] {
                out.at.push(self.at[i]);
                out.bytes.push(*b);
            }
            i += used;
        }
        out.at.push(self.at[src.len()]);
        changed.then_some(out)
    }
}

/// The HTML character reference at the start of `s`, decoded, and its length.
fn html_reference(s: &[u8]) -> Option<(Decoded, usize)> {
    if s.first() != Some(&b'&') {
        return None;
    }
    let end = s.iter().take(12).position(|&b| b == b';')?;
    let name = std::str::from_utf8(&s[1..end]).ok()?;
    let code = match name {
        "lt" => '<' as u32,
        "gt" => '>' as u32,
        "amp" => '&' as u32,
        "quot" => '"' as u32,
        "apos" => '\'' as u32,
        _ => match name.strip_prefix('#')? {
            n if n.starts_with(['x', 'X']) => u32::from_str_radix(&n[1..], 16).ok()?,
            n => n.parse().ok()?,
        },
    };
    let mut bytes = [0; 4];
    let len = char::from_u32(code)?.encode_utf8(&mut bytes).len();
    Some((Decoded { bytes, len }, end + 1))
}

/// Up to four decoded bytes.
struct Decoded {
    bytes: [u8; 4],
    len: usize,
}

/// The JSON escape at the start of `s`, decoded, and its length.
fn json_escape(s: &[u8]) -> Option<(Decoded, usize)> {
    if s.first() != Some(&b'\\') {
        return None;
    }
    let simple = match *s.get(1)? {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 8,
        b'f' => 12,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let hex4 = std::str::from_utf8(s.get(2..6)?).ok()?;
            let c = char::from_u32(u32::from_str_radix(hex4, 16).ok()?)?;
            let mut bytes = [0; 4];
            let len = c.encode_utf8(&mut bytes).len();
            return Some((Decoded { bytes, len }, 6));
        }
        _ => return None,
    };
    Some((
        Decoded {
            bytes: [simple, 0, 0, 0],
            len: 1,
        },
        2,
    ))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests;
