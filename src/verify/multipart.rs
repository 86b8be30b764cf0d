//! A multipart body accepted only in its canonical form, checked as it
//! streams: it starts with its delimiter; part headers are CRLF lines, not
//! folded, each `Name: value` with a token name, one
//! `Content-Disposition: form-data; name="…"` (and `filename="…"`) with
//! quoted values, bounded sizes; every delimiter, which PHP finds after a
//! bare LF, follows a CRLF and is followed by CRLF or `--`; nothing after
//! the close. PHP's rfc1867 parser reads other forms in ways of its own
//! (folded headers, `name='x'`, LF lines, headers past its 5 KiB line
//! pieces): callgate refuses them rather than imitate it. A header line is
//! held until it is judged, so a refused one never reaches the site. Pure.

use bytes::{Bytes, BytesMut};

/// The longest part header line, and all of one part's headers.
const MAX_LINE: usize = 4 * 1024;
const MAX_HEADERS: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Start,
    /// In a part's headers: `bytes` so far, `dispositions` seen.
    Headers { bytes: usize, dispositions: u8 },
    /// In a part's content.
    Content,
    /// After the close delimiter.
    Closed,
}

/// The checker of one multipart body.
#[derive(Debug)]
pub(crate) struct Canonical {
    /// `--` and the boundary.
    delim: Vec<u8>,
    state: State,
    held: BytesMut,
    /// The last byte sent on (whether a delimiter's LF follows a CR).
    last: u8,
}

/// Why the body is refused.
pub(crate) type Refused = &'static str;

impl Canonical {
    pub(crate) fn new(boundary: &[u8]) -> Canonical {
        Canonical {
            delim: [b"--", boundary].concat(),
            state: State::Start,
            held: BytesMut::new(),
            last: 0,
        }
    }

    /// Take in a chunk; what may be sent on now.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, Refused> {
        self.held.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        while let Some(n) = self.step()? {
            let sent = self.held.split_to(n);
            if let Some(b) = sent.last() {
                self.last = *b;
            }
            out.extend_from_slice(&sent);
        }
        Ok(out.freeze())
    }

    /// The body ended: it must have been closed.
    pub(crate) fn finish(&mut self) -> Result<Bytes, Refused> {
        match self.state {
            State::Closed => Ok(self.held.split().freeze()),
            _ => Err("a multipart body without its close delimiter"),
        }
    }

    /// How many held bytes may go now (the state advanced past them), or
    /// None to wait for more.
    fn step(&mut self) -> Result<Option<usize>, Refused> {
        match self.state {
            State::Start => self.start(),
            State::Headers { .. } => self.header_line(),
            State::Content => self.content(),
            State::Closed => match &self.held[..] {
                b"" | b"\r" => Ok(None),
                b"\r\n" => Ok(Some(2)),
                _ => Err("bytes after a multipart body's close delimiter"),
            },
        }
    }

    fn start(&mut self) -> Result<Option<usize>, Refused> {
        let first = [&self.delim[..], b"\r\n"].concat();
        if self.held.len() < first.len() {
            return match first.starts_with(&self.held) {
                true => Ok(None),
                false => Err("a multipart body that does not start with its delimiter"),
            };
        }
        if !self.held.starts_with(&first) {
            return Err("a multipart body that does not start with its delimiter");
        }
        self.state = State::Headers {
            bytes: 0,
            dispositions: 0,
        };
        Ok(Some(first.len()))
    }

    fn header_line(&mut self) -> Result<Option<usize>, Refused> {
        let State::Headers {
            bytes,
            dispositions,
        } = self.state
        else {
            return Ok(None);
        };
        let Some(end) = find(&self.held, b"\r\n") else {
            if self.held.len() > MAX_LINE || self.held.contains(&b'\n') {
                return Err("a multipart header line that is too long or not ended by CRLF");
            }
            return Ok(None);
        };
        let line = &self.held[..end];
        if line.len() > MAX_LINE || bytes + end + 2 > MAX_HEADERS {
            return Err("multipart part headers over their bound");
        }
        if line.is_empty() {
            if dispositions != 1 {
                return Err("a multipart part without exactly one Content-Disposition");
            }
            self.state = State::Content;
            return Ok(Some(2));
        }
        let disposition = header(line)?;
        self.state = State::Headers {
            bytes: bytes + end + 2,
            dispositions: dispositions + u8::from(disposition),
        };
        if dispositions + u8::from(disposition) > 1 {
            return Err("a multipart part with more than one Content-Disposition");
        }
        Ok(Some(end + 2))
    }

    /// Content goes on up to what could begin a delimiter; a delimiter
    /// must follow CRLF and be followed by CRLF or `--`.
    fn content(&mut self) -> Result<Option<usize>, Refused> {
        let lf_delim = [b"\n", &self.delim[..]].concat();
        let Some(i) = find(&self.held, &lf_delim) else {
            let keep = lf_delim.len() + 2;
            let n = self.held.len().saturating_sub(keep);
            return Ok((n > 0).then_some(n));
        };
        let before = if i == 0 { self.last } else { self.held[i - 1] };
        if before != b'\r' {
            return Err("a multipart delimiter after a bare LF");
        }
        let after = i + lf_delim.len();
        if self.held.len() < after + 2 {
            // Hold from the CR on until the delimiter's end shows.
            let n = i.saturating_sub(1);
            return Ok((n > 0).then_some(n));
        }
        self.state = match &self.held[after..after + 2] {
            b"\r\n" => State::Headers {
                bytes: 0,
                dispositions: 0,
            },
            b"--" => State::Closed,
            _ => return Err("a multipart delimiter followed by other than CRLF or --"),
        };
        Ok(Some(after + 2))
    }
}

/// One part header line: `Name: value`, the name a token, no folding, no
/// control bytes; whether it is the Content-Disposition (checked).
fn header(line: &[u8]) -> Result<bool, Refused> {
    let bad = "a multipart part header that is not `Name: value`";
    let colon = line.iter().position(|b| *b == b':').ok_or(bad)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|b| super::strict::tchar(*b)) || name.starts_with(b"--")
    {
        return Err(bad);
    }
    if value.iter().any(|b| b.is_ascii_control() && *b != b'\t') {
        return Err(bad);
    }
    if !name.eq_ignore_ascii_case(b"content-disposition") {
        return Ok(false);
    }
    disposition(value.trim_ascii())
        .then_some(true)
        .ok_or("a Content-Disposition other than form-data; name=\"…\"")
}

/// `form-data; name="…"`, optionally with `; filename="…"`, each once.
fn disposition(v: &[u8]) -> bool {
    let Some(mut rest) = v.strip_prefix(b"form-data") else {
        return false;
    };
    let (mut name, mut filename) = (false, false);
    while !rest.is_empty() {
        let Some(r) = rest.strip_prefix(b"; ") else {
            return false;
        };
        let (seen, r) = if let Some(r) = r.strip_prefix(b"name=\"") {
            (&mut name, r)
        } else if let Some(r) = r.strip_prefix(b"filename=\"") {
            (&mut filename, r)
        } else {
            return false;
        };
        let Some(end) = r.iter().position(|b| *b == b'"') else {
            return false;
        };
        if *seen || r[..end].iter().any(|b| *b == b'\\' || b.is_ascii_control()) {
            return false;
        }
        *seen = true;
        rest = &r[end + 1..];
    }
    name
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
