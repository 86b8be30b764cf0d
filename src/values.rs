//! Refuse by value: a protected action's value (a route upstream's query
//! value such as `tolq_callback`, or a protected script's path such as
//! `tolq/callback.php`) found anywhere the site could read it. Whatever a
//! receiver's parser makes of names, separators and content types, it can
//! only dispatch to the action if the value reaches it, so callgate looks
//! for the value itself, under every decoding a server or PHP applies:
//! percent-decoding (and `%uXXXX`) to a fixed depth, `+`, JSON's `\uXXXX`
//! and `\/`, and case folding (ASCII, plus the Unicode letters that fold
//! to ASCII ones). A value matches as a whole token: the bytes either side
//! are not ASCII letters or digits. Bodies are judged as they stream
//! ([`ValueScan`]): a rolling window, holding back only the last bytes,
//! which could still be the start of a match. Pure: no I/O.

use bytes::Bytes;

/// Decoding passes after the raw reading (`%2525255F` is `_` after four).
const DEPTH: usize = 4;

/// The most raw bytes one decoded character can take at [`DEPTH`]
/// (`%25252541` is 9; `%255Cu0041` is 10), with room to spare.
const PER_CHAR: usize = 16;

/// The protected values of one pass-through, lower case.
#[derive(Debug, Clone, Default)]
pub(crate) struct Values {
    tokens: std::sync::Arc<[Vec<u8>]>,
    /// Raw bytes that can hold one encoded value and a boundary either side.
    window: usize,
    /// Some value holds a blank: `+` decodes to one.
    plus: bool,
}

impl Values {
    pub(crate) fn new(values: &[String]) -> Values {
        let mut tokens: Vec<Vec<u8>> = values
            .iter()
            .map(|v| v.to_lowercase().into_bytes())
            .filter(|v| !v.is_empty())
            .collect();
        tokens.sort();
        tokens.dedup();
        let longest = tokens.iter().map(Vec::len).max().unwrap_or(0);
        Values {
            plus: tokens.iter().any(|t| t.contains(&b' ')),
            tokens: tokens.into(),
            window: PER_CHAR * (longest + 4),
        }
    }

    /// The values, for `callgate check`.
    pub(crate) fn shown(&self) -> Vec<String> {
        self.tokens
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The value `raw` carries under some decoding, if any (all of `raw`
    /// is known: its end is a boundary).
    pub(crate) fn found_in(&self, raw: &[u8]) -> Option<String> {
        match self.scan(raw, true) {
            Scan::Found(v) => Some(v),
            Scan::Clear | Scan::Undecided => None,
        }
    }

    fn scan(&self, raw: &[u8], end: bool) -> Scan {
        let mut undecided = false;
        let mut layer = fold(raw);
        for depth in 0..=DEPTH {
            match self.in_layer(&layer, end) {
                Scan::Found(v) => return Scan::Found(v),
                Scan::Undecided => undecided = true,
                Scan::Clear => {}
            }
            let Some(next) = decode(&layer, end, self.plus).filter(|_| depth < DEPTH) else {
                break;
            };
            layer = fold(&next);
        }
        if undecided {
            Scan::Undecided
        } else {
            Scan::Clear
        }
    }

    /// One decoded layer: a whole-token match, one that touches the layer's
    /// end (unless that is the `end` of the data, the next byte decides), or
    /// none.
    fn in_layer(&self, layer: &[u8], end: bool) -> Scan {
        let mut undecided = false;
        for t in self.tokens.iter() {
            let mut from = 0;
            while let Some(i) = find(&layer[from..], t).map(|i| i + from) {
                let after = i + t.len();
                if left_bound(layer, i) {
                    match layer.get(after) {
                        None if !end => undecided = true,
                        None => return Scan::Found(String::from_utf8_lossy(t).into_owned()),
                        Some(b) if !b.is_ascii_alphanumeric() => {
                            return Scan::Found(String::from_utf8_lossy(t).into_owned())
                        }
                        Some(_) => {}
                    }
                }
                from = i + 1;
            }
        }
        if undecided {
            Scan::Undecided
        } else {
            Scan::Clear
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Scan {
    Clear,
    Found(String),
    /// A match that touches the end of what is known.
    Undecided,
}

fn left_bound(layer: &[u8], i: usize) -> bool {
    i == 0 || !layer[i - 1].is_ascii_alphanumeric()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// ASCII lower case, and the Unicode letters whose case mapping is ASCII
/// (`K` Kelvin sign, `ſ` long s, dotted and dotless i) as their ASCII
/// letter: `mb_strtolower` and friends would make them so.
fn fold(raw: &[u8]) -> Vec<u8> {
    if !raw.iter().any(|b| matches!(b, 0xC4 | 0xC5 | 0xE2)) {
        return raw.to_ascii_lowercase();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let folded = match &raw[i..] {
            [0xE2, 0x84, 0xAA, ..] => Some((b'k', 3)),
            [0xC5, 0xBF, ..] => Some((b's', 2)),
            [0xC4, 0xB0 | 0xB1, ..] => Some((b'i', 2)),
            _ => None,
        };
        match folded {
            Some((b, n)) => {
                out.push(b);
                i += n;
            }
            None => {
                out.push(raw[i].to_ascii_lowercase());
                i += 1;
            }
        }
    }
    out
}

/// One pass of every decoding: `%XX`, `%uXXXX`, `+` as a blank (when a
/// value holds a blank: elsewhere `+` and a blank bound a token alike),
/// JSON's `\uXXXX` and `\/`. Unless `end`, an escape cut by the end of the
/// data is left out (its meaning is not known yet). None: nothing decodes,
/// the layer is the last. Only the bytes that may start an escape are
/// looked at; the runs between them are copied whole.
fn decode(s: &[u8], end: bool, plus: bool) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut copied = 0;
    for i in memchr::memchr3_iter(b'%', b'+', b'\\', s) {
        if i < copied {
            continue;
        }
        let rest = &s[i..];
        let (decoded, used): (Option<char>, usize) = match rest {
            [b'%' | b'\\', b'u', a, b, c, d, ..] if hexes(&[*a, *b, *c, *d]) => {
                (char::from_u32(hex(&rest[2..6])), 6)
            }
            [b'%', h, l, ..] if hexes(&[*h, *l]) => (Some(char::from(hex(&rest[1..3]) as u8)), 3),
            [b'\\', b'/', ..] => (Some('/'), 2),
            [b'+', ..] if plus => (Some(' '), 1),
            [b'%' | b'\\', ..] if !end && could_be_escape(rest) => {
                out.extend_from_slice(&s[copied..i]);
                return Some(out);
            }
            _ => continue,
        };
        out.extend_from_slice(&s[copied..i]);
        match decoded {
            // `%XX` is a byte, UTF-8 or not.
            Some(c) if used == 3 => out.push(c as u32 as u8),
            Some(c) => push_char(&mut out, c),
            None => push_char(&mut out, '\u{FFFD}'),
        }
        copied = i + used;
    }
    if copied == 0 {
        return None;
    }
    out.extend_from_slice(&s[copied..]);
    Some(out)
}

fn hexes(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_hexdigit)
}

/// Whether `rest`, which reaches the end of the data, may be the start of
/// an escape whose next bytes have not come yet.
fn could_be_escape(rest: &[u8]) -> bool {
    match rest {
        [b'%'] | [b'\\'] => true,
        [b'%', b'u', tail @ ..] | [b'\\', b'u', tail @ ..] => tail.len() < 4 && hexes(tail),
        [b'%', h] => h.is_ascii_hexdigit(),
        _ => false,
    }
}

/// Hex digits (checked by the caller) as a number.
fn hex(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |n, d| n * 16 + char::from(*d).to_digit(16).unwrap_or(0))
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// A protected value in a streamed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundValue(pub(crate) String);

/// The scanner of one request body: it keeps the last `window` bytes
/// already sent as context, and holds back the last `window` bytes
/// received, which could still begin or end a match.
#[derive(Debug)]
pub(crate) struct ValueScan {
    values: Values,
    buf: Vec<u8>,
    /// Bytes of `buf` already sent on (the context before what is held).
    sent: usize,
}

impl ValueScan {
    pub(crate) fn new(values: Values) -> Option<ValueScan> {
        (!values.is_empty()).then(|| ValueScan {
            values,
            buf: Vec::new(),
            sent: 0,
        })
    }

    /// Take in a chunk; what may be sent on now.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, FoundValue> {
        self.buf.extend_from_slice(chunk);
        if let Scan::Found(v) = self.values.scan(&self.buf, false) {
            return Err(FoundValue(v));
        }
        let hold_from = self.buf.len().saturating_sub(self.values.window);
        let release = hold_from.max(self.sent);
        let out = Bytes::copy_from_slice(&self.buf[self.sent..release]);
        self.sent = release;
        // Keep one window of context before what is held.
        let drop = self.sent.saturating_sub(self.values.window);
        if drop > 0 {
            self.buf.drain(..drop);
            self.sent -= drop;
        }
        Ok(out)
    }

    /// The body ended: judge what is held, with the end as a boundary.
    pub(crate) fn finish(&mut self) -> Result<Bytes, FoundValue> {
        if let Some(v) = self.values.found_in(&self.buf) {
            return Err(FoundValue(v));
        }
        let out = Bytes::copy_from_slice(&self.buf[self.sent..]);
        self.buf.clear();
        self.sent = 0;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
