//! How web servers may read a request path. Apache (with mod_php or
//! php-fpm) and `php -S` do not agree with each other, nor with RFC 3986, on
//! what a path means: how often escapes are decoded, whether `\` separates,
//! whether `;params` are cut, whether trailing blanks and dots count. So
//! callgate does not pick one reading: [`readings`] gives every reading a
//! server could make, and the caller refuses if any of them reaches a
//! protected thing. A leaf module: config reads protected paths with it
//! once, verify compares requests with it.

/// One reading of a path: its segments, lower-case, empty ones dropped,
/// dot segments not yet resolved (the walk over them is the caller's, so
/// that each step of it can be judged).
pub(crate) type Reading = Vec<String>;

/// Percent-decoding layers looked through; a path with more is a doubt.
const MAX_DECODINGS: usize = 4;

/// Every reading of `path` a server could make: the raw path and each
/// percent-decoding depth, each with `\` as `/` or not, `;params` cut from
/// each segment or kept, trailing blanks and dots trimmed or kept. A NUL, an
/// escape that does not decode to UTF-8, or more than four layers of
/// escapes is a doubt (`Err`): the caller refuses.
pub(crate) fn readings(path: &str) -> Result<Vec<Reading>, &'static str> {
    let mut layers = vec![path.to_lowercase()];
    loop {
        let last = &layers[layers.len() - 1];
        if !last.contains('%') {
            break;
        }
        let next = percent_decode(last)?.to_lowercase();
        if next == *last {
            break;
        }
        if layers.len() > MAX_DECODINGS {
            return Err("too many layers of percent-encoding");
        }
        layers.push(next);
    }
    if layers.iter().any(|l| l.contains('\0')) {
        return Err("a NUL in the path");
    }
    let mut out: Vec<Reading> = Vec::new();
    for layer in &layers {
        for flags in 0..8u8 {
            let reading = read(layer, flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
            if !out.contains(&reading) {
                out.push(reading);
            }
        }
    }
    Ok(out)
}

/// The segments of a configured path (`/tolq/callback.php`, `/admin/`),
/// decoded once and lower-cased, and whether it names a directory.
pub(crate) fn configured(path: &str) -> (Vec<String>, bool) {
    let decoded = percent_decode(path).unwrap_or_else(|_| path.to_owned());
    let segments = read(&decoded.to_lowercase(), false, false, false)
        .into_iter()
        .filter(|s| s != ".")
        .collect();
    (segments, path.ends_with('/'))
}

/// One reading of one decoding layer.
fn read(layer: &str, backslash: bool, params: bool, trim: bool) -> Reading {
    let unified;
    let layer = if backslash && layer.contains('\\') {
        unified = layer.replace('\\', "/");
        &unified
    } else {
        layer
    };
    layer
        .split('/')
        .map(|s| {
            if params {
                s.split(';').next().unwrap_or("")
            } else {
                s
            }
        })
        .map(|s| if trim { trimmed(s) } else { s })
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A segment as Windows-like servers read it: trailing blanks and dots
/// dropped (`x.php.` is `x.php`), the dot segments themselves kept.
fn trimmed(segment: &str) -> &str {
    let s = segment.trim_end_matches(' ');
    if s == "." || s == ".." {
        return s;
    }
    s.trim_end_matches(['.', ' '])
}

/// Whether a segment looks like a dot segment without being exactly one
/// (`..;`, `.. `, `...`): some server may resolve it, another not.
pub(crate) fn dot_like(segment: &str) -> bool {
    segment != "."
        && segment != ".."
        && segment.starts_with('.')
        && segment
            .split(';')
            .next()
            .unwrap_or("")
            .trim_end_matches([' ', '\t'])
            .bytes()
            .all(|b| b == b'.')
}

/// One layer of percent-decoding; an escape that is not two hex digits is
/// kept as written (as Apache does), bytes that are no UTF-8 are a doubt.
pub(crate) fn percent_decode(s: &str) -> Result<String, &'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn has(path: &str, want: &[&str]) -> bool {
        readings(path).unwrap().iter().any(|r| r == want)
    }

    #[test]
    fn each_layer_and_spelling_is_a_reading() {
        assert!(has(
            "/tolq/callback.php/..;/",
            &["tolq", "callback.php", "..;"]
        ));
        assert!(has(
            "/tolq/callback.php/..;/",
            &["tolq", "callback.php", ".."]
        ));
        assert!(has("/%252e%252e/x", &["%2e%2e", "x"]));
        assert!(has("/%252e%252e/x", &["..", "x"]));
        assert!(has("/a%5c..%5cb", &["a", "..", "b"]));
        assert!(has("/a%5c..%5cb", &["a\\..\\b"]));
        assert!(has("/x.php.%20", &["x.php"]));
        assert!(has("/TOLQ//Callback.PHP", &["tolq", "callback.php"]));
    }

    #[test]
    fn doubts() {
        assert!(readings("/x%00").is_err());
        assert!(readings("/%C0%AE").is_err());
        assert!(readings("/%2525252525252e").is_err());
    }

    #[test]
    fn dot_like_segments() {
        for s in ["..;", "..;x", ".. ", "...", ". ", ".;a"] {
            assert!(dot_like(s), "{s}");
        }
        for s in [".", "..", ".htaccess", "a..", "x"] {
            assert!(!dot_like(s), "{s}");
        }
    }
}
