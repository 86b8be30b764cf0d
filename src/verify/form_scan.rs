//! A front controller's protected parameter in a form body, found while the
//! body streams to the site: nothing is buffered whole. The scanner holds
//! back only the field (urlencoded) or line (multipart) it cannot judge yet,
//! so a protected `name=value` is never sent: the request is cut before
//! those bytes, and PHP, which parses `$_POST` only once the whole body has
//! arrived, never sees them. Chunk boundaries do not matter. Pure: no I/O.

use bytes::{Bytes, BytesMut};

use super::protect::{field_matches, names};
use super::strict::Media;

/// A protected parameter (or a field too odd to judge) in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found(pub(crate) String);

/// The longest field name or multipart header line held to judge it; a
/// longer one that could still be protected is refused.
const MAX_HELD: usize = 64 * 1024;

/// Which form PHP would parse.
#[derive(Debug)]
enum Form {
    /// `&` or `;` separated fields; `skipping`: the current field's name is
    /// judged harmless, the rest of it goes on unseen.
    UrlEncoded { skipping: bool },
    /// Lines: `Content-Disposition` headers name the fields.
    Multipart(Part),
}

#[derive(Debug)]
enum Part {
    /// Between lines, or in one that does not name a field.
    Lines { skipping_line: bool },
    /// A protected field's part, held from its header line on until the
    /// next delimiter line decides its value.
    Held { names: Vec<String> },
}

/// The scanner of one request body.
#[derive(Debug)]
pub(crate) struct FormScan {
    rules: std::sync::Arc<[(String, String)]>,
    form: Form,
    held: BytesMut,
    /// The longest protected value, raw: a longer one cannot decode to it.
    max_value: usize,
}

impl FormScan {
    /// A scanner for a body PHP would parse into `$_POST`, or None.
    pub(crate) fn new(
        rules: std::sync::Arc<[(String, String)]>,
        headers: &http::HeaderMap,
    ) -> Option<FormScan> {
        // The one media type the strict grammar reads (anything else was refused).
        let form = match super::strict::media(headers).ok()? {
            Media::UrlEncoded => Form::UrlEncoded { skipping: false },
            Media::Multipart(_) => Form::Multipart(Part::Lines {
                skipping_line: false,
            }),
            Media::Other => return None,
        };
        let max_value = rules.iter().map(|(_, v)| v.len()).max()?;
        Some(FormScan {
            rules,
            form,
            held: BytesMut::new(),
            max_value: 3 * max_value + 2,
        })
    }

    /// Take in a chunk; what may be sent on now.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, Found> {
        self.held.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        match self.form {
            Form::UrlEncoded { .. } => self.fields(&mut out)?,
            Form::Multipart(_) => self.lines(&mut out)?,
        }
        Ok(out.freeze())
    }

    /// The body ended: judge what is held.
    pub(crate) fn finish(&mut self) -> Result<Bytes, Found> {
        let rest = self.held.split().freeze();
        match &self.form {
            Form::UrlEncoded { skipping: false } => self.judge(&rest)?,
            Form::Multipart(Part::Held { names }) => self.judge_part(names, &rest)?,
            _ => {}
        }
        Ok(rest)
    }

    fn fields(&mut self, out: &mut BytesMut) -> Result<(), Found> {
        while let Some(i) = self.held.iter().position(|b| *b == b'&' || *b == b';') {
            let field = self.held.split_to(i + 1);
            if self.form_skipping() {
                self.form = Form::UrlEncoded { skipping: false };
            } else {
                self.judge(&field[..i])?;
            }
            out.extend_from_slice(&field);
        }
        if self.form_skipping() {
            out.extend_from_slice(&self.held.split());
            return Ok(());
        }
        let Some(eq) = self.held.iter().position(|b| *b == b'=') else {
            return self.bounded();
        };
        let protected = self.protected_name(&self.held[..eq]);
        if !protected || self.held.len() - eq - 1 > self.max_value {
            self.form = Form::UrlEncoded { skipping: true };
            out.extend_from_slice(&self.held.split());
        }
        Ok(())
    }

    fn form_skipping(&self) -> bool {
        matches!(self.form, Form::UrlEncoded { skipping: true })
    }

    fn lines(&mut self, out: &mut BytesMut) -> Result<(), Found> {
        loop {
            match &self.form {
                Form::Multipart(Part::Held { names }) => {
                    let names = names.clone();
                    match self.part_end() {
                        Some(end) => {
                            let part = self.held.split_to(end);
                            self.judge_part(&names, &part)?;
                            out.extend_from_slice(&part);
                            self.form = Form::Multipart(Part::Lines {
                                skipping_line: false,
                            });
                        }
                        None if self.held.len() > MAX_HELD + self.max_value => {
                            // Too long a value to be the protected one.
                            out.extend_from_slice(&self.held.split());
                            self.form = Form::Multipart(Part::Lines {
                                skipping_line: true,
                            });
                            return Ok(());
                        }
                        None => return Ok(()),
                    }
                }
                Form::Multipart(Part::Lines { skipping_line }) => {
                    let skipping = *skipping_line;
                    let Some(nl) = self.held.iter().position(|b| *b == b'\n') else {
                        return self.partial_line(out);
                    };
                    let line = self.held.split_to(nl + 1);
                    let named = (!skipping)
                        .then(|| self.protected_disposition(&line))
                        .flatten();
                    match named {
                        Some(names) => {
                            // Keep the header line with the part it opens.
                            let mut held = BytesMut::from(&line[..]);
                            held.extend_from_slice(&self.held.split());
                            self.held = held;
                            self.form = Form::Multipart(Part::Held { names });
                        }
                        None => {
                            out.extend_from_slice(&line);
                            self.form = Form::Multipart(Part::Lines {
                                skipping_line: false,
                            });
                        }
                    }
                }
                Form::UrlEncoded { .. } => return Ok(()),
            }
        }
    }

    /// An unfinished line: sent on once its start shows it names no field.
    fn partial_line(&mut self, out: &mut BytesMut) -> Result<(), Found> {
        let skipping = matches!(
            self.form,
            Form::Multipart(Part::Lines {
                skipping_line: true
            })
        );
        let start = trim_start(&self.held);
        const HEADER: &[u8] = b"content-disposition";
        let could_be =
            start.len() < HEADER.len() || start[..HEADER.len()].eq_ignore_ascii_case(HEADER);
        if skipping || !could_be {
            out.extend_from_slice(&self.held.split());
            self.form = Form::Multipart(Part::Lines {
                skipping_line: true,
            });
            return Ok(());
        }
        self.bounded()
    }

    /// Where the held part ends: the start of the next line beginning `--`.
    fn part_end(&self) -> Option<usize> {
        let first = self.held.iter().position(|b| *b == b'\n')? + 1;
        self.held[first..]
            .windows(3)
            .position(|w| w == b"\n--")
            .map(|i| first + i + 1)
    }

    /// A held part: its value is what follows the blank line after its
    /// headers, without the line break before the delimiter.
    fn judge_part(&self, names: &[String], part: &[u8]) -> Result<(), Found> {
        let value = match find(part, b"\r\n\r\n")
            .map(|i| i + 4)
            .or_else(|| find(part, b"\n\n").map(|i| i + 2))
        {
            Some(start) => &part[start..],
            None => return Ok(()),
        };
        let value = value.strip_suffix(b"\n").unwrap_or(value);
        let value = value.strip_suffix(b"\r").unwrap_or(value);
        let value = String::from_utf8_lossy(value).to_lowercase();
        match self
            .rules
            .iter()
            .find(|(n, v)| names.contains(n) && *v == value)
        {
            Some((n, v)) => Err(Found(format!("{n}={v}"))),
            None => Ok(()),
        }
    }

    /// A `Content-Disposition` line naming a protected field: its names.
    fn protected_disposition(&self, line: &[u8]) -> Option<Vec<String>> {
        let names: Vec<String> = super::disposition_names(&String::from_utf8_lossy(line))
            .into_iter()
            .flat_map(|n| names(n.as_bytes()))
            .filter(|n| self.rules.iter().any(|(r, _)| r == n))
            .collect();
        (!names.is_empty()).then_some(names)
    }

    fn judge(&self, field: &[u8]) -> Result<(), Found> {
        match field_matches(&self.rules, field) {
            Some(p) => Err(Found(p)),
            None => Ok(()),
        }
    }

    fn protected_name(&self, raw: &[u8]) -> bool {
        names(raw)
            .iter()
            .any(|n| self.rules.iter().any(|(r, _)| r == n))
    }

    /// Holding on: refused past the bound (no real form has such a name).
    fn bounded(&self) -> Result<(), Found> {
        if self.held.len() > MAX_HELD {
            return Err(Found("a field name longer than 64 KiB".into()));
        }
        Ok(())
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> std::sync::Arc<[(String, String)]> {
        vec![("action".to_owned(), "tolq_callback".to_owned())].into()
    }

    fn scan(ct: &str, body: &[u8], chunk: usize) -> Result<Vec<u8>, Found> {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", ct.parse().unwrap());
        let mut s = FormScan::new(rules(), &h).unwrap();
        let mut out = Vec::new();
        for c in body.chunks(chunk) {
            out.extend_from_slice(&s.feed(c)?);
        }
        out.extend_from_slice(&s.finish()?);
        assert_eq!(out, body, "what passes is the body, unchanged");
        Ok(out)
    }

    const URLENC: &str = "application/x-www-form-urlencoded";
    const MULTI: &str = "multipart/form-data; boundary=XyZ";

    #[test]
    fn urlencoded_fields_in_any_chunking() {
        for chunk in [1, 2, 3, 7, 1000] {
            assert!(scan(URLENC, b"a=1&action=tolq_callback&b=2", chunk).is_err());
            assert!(scan(URLENC, b"a=1;action=tolq%5Fcallback", chunk).is_err());
            assert!(scan(URLENC, b"action[]=TOLQ_CALLBACK", chunk).is_err());
            assert!(scan(URLENC, b"a=1&action=view&b=tolq_callback", chunk).is_ok());
            assert!(scan(URLENC, b"action=tolq_callbacks", chunk).is_ok());
        }
    }

    #[test]
    fn a_protected_field_is_never_released() {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", URLENC.parse().unwrap());
        let mut s = FormScan::new(rules(), &h).unwrap();
        let sent = s.feed(b"x=1&action=tolq_call").unwrap();
        assert_eq!(&sent[..], b"x=1&");
        assert!(s.feed(b"back&").is_err());
    }

    #[test]
    fn multipart_fields_in_any_chunking() {
        let hit = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\ntolq_callback\r\n--XyZ--\r\n";
        let miss = b"--XyZ\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\nview\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\ntolq_callback\r\n--XyZ--\r\n";
        for chunk in [1, 2, 5, 13, 1000] {
            assert!(scan(MULTI, hit, chunk).is_err(), "chunk {chunk}");
            assert!(scan(MULTI, miss, chunk).is_ok(), "chunk {chunk}");
        }
    }

    #[test]
    fn a_large_upload_streams() {
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', 1 << 20));
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let mut h = http::HeaderMap::new();
        h.insert("content-type", MULTI.parse().unwrap());
        let mut s = FormScan::new(rules(), &h).unwrap();
        let mut sent = 0;
        for c in body.chunks(16 * 1024) {
            sent += s.feed(c).unwrap().len();
        }
        assert!(sent + 64 >= body.len(), "held back {}", body.len() - sent);
    }
}
