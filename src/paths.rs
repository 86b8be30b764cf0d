//! How a web server resolves a request path: Apache (+PHP-FPM) and `php -S`
//! decode percent escapes, collapse `//`, resolve dot segments, and on some
//! systems ignore letter case or a trailing dot. A leaf module: config puts
//! protected paths in this form once, verify compares requests in it.

use std::borrow::Cow;

/// The path as a server would resolve it, lower-cased: percent escapes
/// decoded until none is left (double encoding included), `\` as `/`,
/// `;params` dropped from each segment, empty and `.` segments dropped, `..`
/// resolved, trailing dots and blanks of a segment dropped. A NUL, or an
/// escape that does not decode to UTF-8, is a doubt.
pub fn canonical(path: &str) -> Result<String, &'static str> {
    let mut decoded: Cow<'_, str> = Cow::Borrowed(path);
    // Each round removes one layer; a few are plenty for any real path.
    for _ in 0..4 {
        if !decoded.contains('%') {
            break;
        }
        let next = percent_decode(&decoded)?;
        if next == decoded {
            break;
        }
        decoded = Cow::Owned(next);
    }
    if decoded.contains('%') && percent_decode(&decoded)? != decoded {
        return Err("too many layers of percent-encoding");
    }
    if decoded.contains('\0') {
        return Err("a NUL in the path");
    }
    let unified = decoded.replace('\\', "/").to_lowercase();
    let mut out: Vec<&str> = Vec::new();
    for segment in unified.split('/') {
        let segment = segment
            .split(';')
            .next()
            .unwrap_or("")
            .trim_end_matches(' ');
        match segment {
            ".." => {
                out.pop();
            }
            // Windows and some servers drop trailing dots and blanks: `x.php.` is `x.php`.
            s => match s.trim_end_matches(['.', ' ']) {
                "" => {}
                s => out.push(s),
            },
        }
    }
    let mut canon = String::with_capacity(unified.len() + 1);
    for s in &out {
        canon.push('/');
        canon.push_str(s);
    }
    if canon.is_empty() || unified.ends_with('/') {
        canon.push('/');
    }
    Ok(canon)
}

/// One layer of percent-decoding; an escape that is not two hex digits is
/// kept as written (as Apache does), bytes that are no UTF-8 are a doubt.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "a percent-escape that is not UTF-8")
}
