use super::*;

fn check(body: &[u8], chunk: usize) -> Result<(), Refused> {
    let mut c = Canonical::new(b"XyZ");
    let mut out = Vec::new();
    for piece in body.chunks(chunk) {
        out.extend_from_slice(&c.feed(piece)?);
    }
    out.extend_from_slice(&c.finish()?);
    assert_eq!(out, body, "what passes is the body, unchanged");
    Ok(())
}

fn part(headers: &str, value: &str) -> String {
    format!("--XyZ\r\n{headers}\r\n\r\n{value}\r\n")
}

const CD: &str = "Content-Disposition: form-data; name=\"action\"";

#[test]
fn canonical_forms_pass_in_any_chunking() {
    let bodies = [
        format!("{}--XyZ--\r\n", part(CD, "view")),
        format!(
            "{}{}--XyZ--",
            part("Content-Disposition: form-data; name=\"a\"", "1"),
            part(
                "Content-Disposition: form-data; name=\"f\"; filename=\"a b.txt\"\r\nContent-Type: text/plain",
                "line one\r\n-- XyZ and --XyZ mid-line\n-- and \r\n--Xy"
            )
        ),
        format!("{}--XyZ--\r\n", part(CD, &"x".repeat(100_000))),
    ];
    for body in &bodies {
        for chunk in [1, 2, 3, 7, 64, 100_000] {
            assert_eq!(check(body.as_bytes(), chunk), Ok(()), "{chunk} {body:.200}");
        }
    }
}

/// The part headers PHP's rfc1867 parser reads in ways of its own.
#[test]
fn non_canonical_part_headers_are_refused() {
    let long = format!("X-Pad: {}", "p".repeat(5 * 1024));
    let many: String = (0..200)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(360)))
        .collect();
    let bad = [
        part(
            "Content-Disposition: form-data;\r\n name=\"action\"",
            "tolq_callback",
        ),
        part(
            "Content-Disposition: form-data;\r\n\tname=\"action\"",
            "tolq_callback",
        ),
        part(
            "Content-Disposition: form-data; name=\"a\"\r\nname=\"action\"",
            "tolq_callback",
        ),
        part(
            "Content-Disposition: form-data; name='action'",
            "tolq_callback",
        ),
        part(
            "Content-Disposition: form-data; name=action x",
            "tolq_callback",
        ),
        part(
            "Content-Disposition: form-data; name=\"action\"x",
            "tolq_callback",
        ),
        part(
            "Content-Disposition: form-data; name=\"action\"\0x",
            "tolq_callback",
        ),
        part(
            "X-A: 1\r\n--XyZ: x\r\nContent-Disposition: form-data; name=\"action\"",
            "tolq_callback",
        ),
        format!("--XyZ\r\n{CD}\n\r\ntolq_callback\r\n"),
        part(&format!("{many}{CD}"), "tolq_callback"),
        part(&format!("{long}\r\n{CD}"), "tolq_callback"),
        part(&format!("{CD}\r\n{CD}"), "tolq_callback"),
        part("Content-Type: text/plain", "tolq_callback"),
        part("Content-Disposition: form-data; name=\"a\\\"b\"", "x"),
        part("Content-Disposition: attachment; name=\"action\"", "x"),
        format!("preamble\r\n{}", part(CD, "x")),
        part(
            CD,
            "x\n--XyZ\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\nx",
        ),
        format!("{}--XyZx\r\n", part(CD, "x")),
    ];
    for body in &bad {
        let body = format!("{body}--XyZ--\r\n");
        for chunk in [1, 5, 100_000] {
            assert!(
                check(body.as_bytes(), chunk).is_err(),
                "{chunk} {body:.300}"
            );
        }
    }
    // Nothing after the close, and the close itself.
    let ok = part(CD, "x");
    assert!(check(format!("{ok}--XyZ--\r\n{ok}").as_bytes(), 1000).is_err());
    assert!(check(ok.as_bytes(), 1000).is_err());
}

#[test]
fn a_refused_header_line_is_never_sent() {
    let mut c = Canonical::new(b"XyZ");
    let body = "--XyZ\r\nContent-Disposition: form-data; name='action'\r\n\r\ntolq_callback\r\n--XyZ--\r\n";
    let mut sent = Vec::new();
    for piece in body.as_bytes().chunks(4) {
        match c.feed(piece) {
            Ok(out) => sent.extend_from_slice(&out),
            Err(_) => break,
        }
    }
    assert_eq!(sent, b"--XyZ\r\n");
}
