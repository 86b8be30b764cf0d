//! The hostile corpus: hundreds of forged, tampered and malformed requests,
//! each with its expected answer. Every case carries a unique id in its
//! body; at the end the recording upstream must hold exactly the cases that
//! were meant to pass, each once, and nothing else.

use callgate_testkit as support;

use std::collections::BTreeMap;

use callgate::crypto::{Algorithm, Encoding};
use support::raw::exchange;
use support::{sign, Client, Gateway, Upstream, Version};

const KEY: &str = "hostile-key-1f2e";
const TOKEN: &str = "Tok3n-abc_123~x-0123456789";

enum Send {
    /// Over TLS with a real client.
    Tls {
        version: Version,
        source: &'static str,
        method: http::Method,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Raw bytes on the plain-HTTP listener.
    Raw(Vec<u8>),
}

struct Case {
    id: String,
    send: Send,
    /// Acceptable statuses; the first status seen must be one of them.
    expect: &'static [u16],
    /// Whether this case (its body) must reach the upstream.
    forwarded: bool,
}

fn body(id: &str) -> Vec<u8> {
    format!("{{\"case\":\"{id}\",\"status\":\"finished\",\"id\":8462}}").into_bytes()
}

fn sig(body: &[u8]) -> String {
    sign(Algorithm::Sha1, KEY, Encoding::Hex, body)
}

struct Corpus {
    cases: Vec<Case>,
}

/// One TLS request of the corpus: the valid callback to /h (from 127.0.0.1,
/// with the token and the body's signature) until a step changes it.
#[must_use = "a case is added by .expect(status)"]
struct Tls<'c> {
    corpus: &'c mut Corpus,
    id: String,
    version: Version,
    source: &'static str,
    method: http::Method,
    path: String,
    headers: Option<Vec<(String, String)>>,
    body: Option<Vec<u8>>,
}

impl Tls<'_> {
    fn from(mut self, source: &'static str) -> Self {
        self.source = source;
        self
    }

    fn method(mut self, method: http::Method) -> Self {
        self.method = method;
        self
    }

    /// The target, query included.
    fn path(mut self, path: String) -> Self {
        self.path = path;
        self
    }

    /// The query on /h, instead of the token.
    fn query(self, query: &str) -> Self {
        self.path(format!("/h{query}"))
    }

    /// These headers instead of the signature.
    fn headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = Some(headers);
        self
    }

    /// This value as the signature.
    fn sig(self, value: String) -> Self {
        self.headers(vec![("x-sig".into(), value)])
    }

    /// One more header, beside the signature (or the headers set so far).
    fn with(mut self, name: &str, value: &str) -> Self {
        let mut headers = self
            .headers
            .take()
            .unwrap_or_else(|| vec![("x-sig".into(), sig(&body(&self.id)))]);
        headers.push((name.into(), value.into()));
        self.headers(headers)
    }

    /// This body, under the original body's signature (unless headers say otherwise).
    fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    /// The answer it must get (200: and it reaches the upstream, once).
    fn expect(self, status: u16) {
        let expect: &'static [u16] = match status {
            200 => &[200],
            403 => &[403],
            404 => &[404],
            405 => &[405],
            _ => unreachable!(),
        };
        let original = body(&self.id);
        let headers = self
            .headers
            .unwrap_or_else(|| vec![("x-sig".into(), sig(&original))]);
        self.corpus.cases.push(Case {
            send: Send::Tls {
                version: self.version,
                source: self.source,
                method: self.method,
                path: self.path,
                headers,
                body: self.body.unwrap_or(original),
            },
            id: self.id,
            expect,
            forwarded: status == 200,
        });
    }
}

impl Corpus {
    /// A case sent over TLS with `version`, to be refined and then `.expect`ed.
    fn tls(&mut self, version: Version, id: String) -> Tls<'_> {
        Tls {
            corpus: self,
            id,
            version,
            source: "127.0.0.1",
            method: http::Method::POST,
            path: format!("/h{}", q()),
            headers: None,
            body: None,
        }
    }

    fn raw(&mut self, id: String, bytes: Vec<u8>, expect: &'static [u16], forwarded: bool) {
        self.cases.push(Case {
            id,
            send: Send::Raw(bytes),
            expect,
            forwarded,
        });
    }
}

/// A named rewrite of the correct signature.
type Rewrite = (&'static str, fn(String) -> String);
/// Name, source address, extra headers, expected status.
type IpCase = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    u16,
);
/// Name, signature of a body, expected status.
type Spelling = (&'static str, fn(&[u8]) -> String, u16);

fn q() -> String {
    format!("?token={TOKEN}")
}

fn signature_tampering(c: &mut Corpus, v: Version, tag: &str) {
    let id = |s: String| format!("{tag}-sig-{s}");
    c.tls(v, id("valid".into())).expect(200);
    // One hex digit changed, at every position.
    for pos in 0..40 {
        let i = id(format!("flip{pos}"));
        let mut s: Vec<u8> = sig(&body(&i)).into_bytes();
        s[pos] = if s[pos] == b'0' { b'1' } else { b'0' };
        c.tls(v, i).sig(String::from_utf8(s).unwrap()).expect(403);
    }
    for len in [0usize, 1, 8, 20, 39] {
        let i = id(format!("trunc{len}"));
        let s = sig(&body(&i))[..len].to_owned();
        c.tls(v, i).sig(s).expect(403);
    }
    for extra in ["0", "00", "=", " 00"] {
        let i = id(format!("extended{}", extra.len()));
        let s = sig(&body(&i)) + extra;
        c.tls(v, i + extra.trim()).sig(s).expect(403);
    }
    // Accepted spellings of the right digest.
    let accepted: [Rewrite; 7] = [
        ("upper", |s| s.to_uppercase()),
        ("prefix", |s| format!("sha1={s}")),
        ("prefix-upper", |s| format!("SHA1={s}")),
        ("lead-space", |s| format!(" {s}")),
        ("trail-space", |s| format!("{s} ")),
        ("lead-tab", |s| format!("\t{s}")),
        ("mixed-case", |s| {
            s.chars()
                .enumerate()
                .map(|(i, ch)| {
                    if i % 2 == 0 {
                        ch.to_ascii_uppercase()
                    } else {
                        ch
                    }
                })
                .collect()
        }),
    ];
    for (name, f) in accepted {
        let i = id(name.into());
        let s = f(sig(&body(&i)));
        c.tls(v, i).sig(s).expect(200);
    }
    let refused: [Rewrite; 7] = [
        ("prefix-sha256", |s| format!("sha256={s}")),
        ("prefix-md5", |s| format!("md5={s}")),
        ("prefix-colon", |s| format!("sha1:{s}")),
        ("inner-space", |s| format!("{} {}", &s[..20], &s[20..])),
        ("base64", |s| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(hex::decode(s).unwrap())
        }),
        ("double-prefix", |s| format!("sha1=sha1={s}")),
        ("quoted", |s| format!("\"{s}\"")),
    ];
    for (name, f) in refused {
        let i = id(name.into());
        let s = f(sig(&body(&i)));
        c.tls(v, i).sig(s).expect(403);
    }
    // Duplicated signature headers: ambiguous, so refused even when both are right.
    let i = id("dup-same".into());
    let s = sig(&body(&i));
    c.tls(v, i)
        .headers(vec![("x-sig".into(), s.clone()), ("x-sig".into(), s)])
        .expect(403);
    let i = id("dup-mixed".into());
    let s = sig(&body(&i));
    c.tls(v, i)
        .headers(vec![("x-sig".into(), "00".repeat(20)), ("x-sig".into(), s)])
        .expect(403);
    // Signatures of something else.
    let i = id("other-key".into());
    let s = sign(Algorithm::Sha1, "not-the-key", Encoding::Hex, &body(&i));
    c.tls(v, i).sig(s).expect(403);
    let i = id("empty-body-sig".into());
    c.tls(v, i).sig(sig(b"")).expect(403);
    let i = id("sha256-digest".into());
    let s = sign(Algorithm::Sha256, KEY, Encoding::Hex, &body(&i));
    c.tls(v, i).sig(s).expect(403);
    let i = id("other-header".into());
    let s = sig(&body(&i));
    c.tls(v, i)
        .headers(vec![("x-signature".into(), s)])
        .expect(403);
    let i = id("no-header".into());
    c.tls(v, i).headers(vec![]).expect(403);
    if v == Version::H1 {
        // Header names are case-insensitive: any casing is the same header.
        for name in ["X-SIG", "x-Sig", "X-sIg"] {
            let i = id(format!("name-{name}"));
            let s = sig(&body(&i));
            c.tls(v, i).headers(vec![(name.into(), s)]).expect(200);
        }
    }
}

fn body_tampering(c: &mut Corpus, v: Version, tag: &str) {
    let template = body(&format!("{tag}-body-00"));
    for i in 0..template.len() {
        let id = format!("{tag}-body-{i:02}");
        let original = body(&id);
        let mut tampered = original.clone();
        tampered[i] ^= 0x01;
        c.tls(v, id)
            .headers(vec![("x-sig".into(), sig(&original))])
            .body(tampered)
            .expect(403);
    }
}

fn token_tampering(c: &mut Corpus, v: Version, tag: &str) {
    let id = |s: &str| format!("{tag}-tok-{s}");
    let refused = [
        ("missing", String::new()),
        ("empty", "?token=".into()),
        ("case", format!("?token={}", TOKEN.to_lowercase())),
        ("extra-char", format!("?token={TOKEN}x")),
        (
            "prefix-only",
            format!("?token={}", &TOKEN[..TOKEN.len() - 1]),
        ),
        ("duplicated", format!("?token={TOKEN}&token={TOKEN}")),
        ("bad-then-good", format!("?token=bad&token={TOKEN}")),
        ("encoded-dup", format!("?token={TOKEN}&tok%65n={TOKEN}")),
        ("name-upper", format!("?TOKEN={TOKEN}")),
        ("array", format!("?token[]={TOKEN}")),
        ("semicolon", format!("?;token={TOKEN}")),
        ("encoded-equals", format!("?token%3D{TOKEN}")),
        ("nul", format!("?token={TOKEN}%00")),
        ("plus", format!("?token={TOKEN}+")),
        // Every spelling PHP reads as `token` is the token: a second one is a repeat.
        ("plus-name", format!("?token={TOKEN}&+token=EVIL")),
        ("space-name-second", format!("?token={TOKEN}&%20token=EVIL")),
        ("nul-name", format!("?token={TOKEN}&token%00x=EVIL")),
        ("array-second", format!("?token={TOKEN}&token[]=EVIL")),
        ("array-keyed", format!("?token[a]={TOKEN}")),
        ("evil-then-nul", format!("?token%00=EVIL&token={TOKEN}")),
    ];
    for (name, query) in refused {
        c.tls(v, id(name)).query(&query).expect(403);
    }
    // PHP reads these as the one token (or as other names): they pass.
    let accepted = [
        ("space-name", format!("?%20token={TOKEN}")),
        ("spaces-name", format!("?%20%20token={TOKEN}")),
        ("nul-suffix-name", format!("?token%00junk={TOKEN}")),
        ("dot-other", format!("?token={TOKEN}&tok.en=x")),
        ("open-bracket-other", format!("?token={TOKEN}&token[=x")),
        ("plus-encoded-other", format!("?token={TOKEN}&%2btoken=x")),
    ];
    for (name, query) in accepted {
        c.tls(v, id(name)).query(&query).expect(200);
    }
    for (name, header) in [
        ("in-header", "x-token"),
        ("in-authorization", "authorization"),
    ] {
        let i = id(name);
        let s = sig(&body(&i));
        let value = if header == "authorization" {
            format!("Bearer {TOKEN}")
        } else {
            TOKEN.to_owned()
        };
        c.tls(v, i)
            .query("")
            .headers(vec![("x-sig".into(), s), (header.into(), value)])
            .expect(403);
    }
    // Percent-encoding changes nothing once decoded, as for any receiver.
    for (n, ch) in TOKEN.char_indices() {
        let encoded = format!("{}%{:02X}{}", &TOKEN[..n], ch as u32, &TOKEN[n + 1..]);
        c.tls(v, id(&format!("pct{n}")))
            .query(&format!("?token={encoded}"))
            .expect(200);
    }
    c.tls(v, id("encoded-name"))
        .query(&format!("?tok%65n={TOKEN}"))
        .expect(200);
    c.tls(v, id("among-others"))
        .query(&format!("?a=1&token={TOKEN}&b=&c"))
        .expect(200);
}

fn spoofed_verified(c: &mut Corpus, v: Version, tag: &str) {
    for (n, name) in [
        "X-Callgate-Verified",
        "x-callgate-verified",
        "X-CALLGATE-VERIFIED",
        "x-CallGate-vERIFIED",
    ]
    .iter()
    .enumerate()
    {
        let i = format!("{tag}-spoof{n}");
        let s = sig(&body(&i));
        let headers = vec![
            ("x-sig".into(), s),
            (name.to_string(), "ip,token,hmac".into()),
            (name.to_string(), "none".into()),
        ];
        c.tls(v, i).headers(headers).expect(200);
        let i = format!("{tag}-spoof{n}-forged");
        let headers = vec![
            ("x-sig".into(), "00".repeat(20)),
            (name.to_string(), "ip,token,hmac".into()),
        ];
        c.tls(v, i).headers(headers).expect(403);
    }
}

fn paths_and_methods(c: &mut Corpus, v: Version, tag: &str) {
    for (n, path) in ["/H", "/h/", "//h", "/h%2F", "/./h", "/h/..", "/hh", "/"]
        .iter()
        .enumerate()
    {
        let i = format!("{tag}-path{n}");
        c.tls(v, i).path(format!("{path}{}", q())).expect(404);
    }
    for m in [
        http::Method::GET,
        http::Method::PUT,
        http::Method::DELETE,
        http::Method::PATCH,
        http::Method::OPTIONS,
    ] {
        let i = format!("{tag}-method-{m}");
        c.tls(v, i).method(m).expect(405);
    }
}

fn ip_tricks(c: &mut Corpus, v: Version, tag: &str) {
    let cases: [IpCase; 12] = [
        ("other-source", "127.0.0.2", vec![], 403),
        (
            "xff-untrusted",
            "127.0.0.2",
            vec![("x-forwarded-for", "127.0.0.1")],
            403,
        ),
        (
            "forwarded-untrusted",
            "127.0.0.2",
            vec![("forwarded", "for=127.0.0.1")],
            403,
        ),
        (
            "real-ip-untrusted",
            "127.0.0.2",
            vec![("x-real-ip", "127.0.0.1")],
            403,
        ),
        (
            "xff-chain-untrusted",
            "127.0.0.2",
            vec![("x-forwarded-for", "127.0.0.2, 127.0.0.1")],
            403,
        ),
        (
            "trusted-proxy",
            "127.0.0.3",
            vec![("x-forwarded-for", "127.0.0.1")],
            200,
        ),
        (
            "trusted-proxy-port",
            "127.0.0.3",
            vec![("x-forwarded-for", "127.0.0.1:4711")],
            200,
        ),
        ("trusted-proxy-no-xff", "127.0.0.3", vec![], 403),
        (
            "trusted-proxy-other",
            "127.0.0.3",
            vec![("x-forwarded-for", "127.0.0.2")],
            403,
        ),
        (
            "trusted-rightmost-wins",
            "127.0.0.3",
            vec![("x-forwarded-for", "127.0.0.1, 127.0.0.2")],
            403,
        ),
        (
            "trusted-left-spoof",
            "127.0.0.3",
            vec![("x-forwarded-for", "127.0.0.2, 127.0.0.1")],
            200,
        ),
        (
            "trusted-garbage",
            "127.0.0.3",
            vec![("x-forwarded-for", "127.0.0.1, bogus")],
            403,
        ),
    ];
    for (name, source, extra, status) in cases {
        let i = format!("{tag}-ip-{name}");
        let mut headers = vec![("x-sig".to_owned(), sig(&body(&i)))];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        c.tls(v, i).from(source).headers(headers).expect(status);
    }
}

fn tolq_auto_encoding(c: &mut Corpus, v: Version, tag: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let spellings: [Spelling; 6] = [
        ("hex", |b| sig(b), 200),
        (
            "base64",
            |b| base64::engine::general_purpose::STANDARD.encode(hex::decode(sig(b)).unwrap()),
            200,
        ),
        (
            "base64-nopad",
            |b| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .encode(hex::decode(sig(b)).unwrap())
            },
            200,
        ),
        (
            "base64-mangled",
            |b| {
                format!(
                    "!{}",
                    &base64::engine::general_purpose::STANDARD.encode(hex::decode(sig(b)).unwrap())
                        [1..]
                )
            },
            403,
        ),
        (
            "sha256",
            |b| sign(Algorithm::Sha256, KEY, Encoding::Hex, b),
            403,
        ),
        ("hex-41", |b| sig(b) + "a", 403),
    ];
    let _ = b64;
    for (name, f, status) in spellings {
        let i = format!("{tag}-tolq-{name}");
        let b = body(&i);
        c.tls(v, i)
            .path("/tolq".into())
            .headers(vec![("x-tolq-signature".into(), f(&b))])
            .body(b)
            .expect(status);
    }
}

fn raw_request(id: &str, target: &str, head_extra: &str, framing: Framing) -> Vec<u8> {
    let b = body(id);
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nHost: gw\r\nX-Sig: {}\r\n{head_extra}",
        sig(&b)
    );
    let body_bytes = match framing {
        Framing::Length => {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
            b
        }
        Framing::Chunked => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            let (a, z) = b.split_at(b.len() / 2);
            [
                format!("{:x}\r\n", a.len()).as_bytes(),
                a,
                format!("\r\n{:x}\r\n", z.len()).as_bytes(),
                z,
                b"\r\n0\r\n\r\n",
            ]
            .concat()
        }
        Framing::None => b,
    };
    [head.as_bytes(), b"\r\n", &body_bytes].concat()
}

enum Framing {
    Length,
    Chunked,
    None,
}

/// What a PHP receiver would read differently from what callgate checked:
/// reserved headers in other spellings, the token or an upstream parameter
/// in a form body, an upstream URL's parameter sent by the caller.
fn php_differentials(c: &mut Corpus, v: Version, tag: &str) {
    let id = |s: &str| format!("{tag}-php-{s}");
    for (name, header, value) in [
        (
            "verified-underscore",
            "X_Callgate_Verified",
            "ip,token,hmac",
        ),
        ("verified-mixed", "x-callgate_verified", "ip,token,hmac"),
        ("assertion-underscore", "X_Callgate_Assertion", "v1;forged"),
        ("xff-underscore", "X_Forwarded_For", "84.22.114.141"),
        ("xff-mixed", "X-Forwarded_For", "84.22.114.141"),
        ("xfh-underscore", "x_forwarded_host", "admin.example"),
        ("xfp-underscore", "x_forwarded_proto", "http"),
        ("xf-port", "X-Forwarded-Port", "80"),
        ("forwarded", "Forwarded", "for=84.22.114.141"),
        ("real-ip", "X-Real-IP", "84.22.114.141"),
        ("real-ip-underscore", "X_Real_IP", "84.22.114.141"),
        ("client-ip", "Client-IP", "84.22.114.141"),
        ("true-client-ip", "True-Client-IP", "84.22.114.141"),
        ("original-url", "X-Original-URL", "/admin/delete"),
        ("rewrite-url", "X_Rewrite_URL", "/admin/delete"),
        ("method-override", "X-HTTP-Method-Override", "DELETE"),
    ] {
        let i = id(name);
        c.tls(v, i).with(header, value).expect(200);
    }
    // A second signature under a spelling PHP folds to the same header.
    let i = id("sig-underscore-twin");
    c.tls(v, i).with("x_sig", &sig(b"other")).expect(403);
    // The signature header named as hop-by-hop: it would not be forwarded.
    let i = id("connection-drops-sig");
    if v == Version::H1 {
        c.tls(v, i).with("connection", "x-sig").expect(403);
    }
    // The token in a form body: `$_REQUEST['token']` would be the body's.
    for (name, ct, form) in [
        (
            "body-token-form",
            "application/x-www-form-urlencoded",
            "token=EVIL&case=x".to_owned(),
        ),
        (
            "body-token-form-folded",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
            "+tok.en=x&%20token=EVIL".to_owned(),
        ),
        (
            "body-token-multipart",
            "multipart/form-data; boundary=XX",
            "--XX\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nEVIL\r\n--XX--\r\n"
                .to_owned(),
        ),
    ] {
        let i = id(name);
        let b = format!("{}&{form}", String::from_utf8(body(&i)).unwrap()).into_bytes();
        let headers = vec![
            ("x-sig".into(), sig(&b)),
            ("content-type".into(), ct.into()),
        ];
        c.tls(v, i).headers(headers).body(b).expect(403);
    }
    // Route /p forwards to `receiver?action=cb`: the caller may not send `action`.
    for (name, extra, status) in [
        ("upstream-param-valid", "", 200),
        ("upstream-param-other", "&act.ion=x", 200),
        ("upstream-param-plain", "&action=delete_all", 403),
        ("upstream-param-encoded", "&act%69on=delete_all", 403),
        ("upstream-param-plus", "&+action=delete_all", 403),
        ("upstream-param-array", "&action[]=delete_all", 403),
        ("upstream-param-nul", "&action%00x=delete_all", 403),
        ("upstream-param-first", "", 403),
    ] {
        let query = match name {
            "upstream-param-first" => format!("?action=x&token={TOKEN}"),
            _ => format!("?token={TOKEN}{extra}"),
        };
        c.tls(v, id(name)).path(format!("/p{query}")).expect(status);
    }
    let i = id("upstream-param-body");
    let b = format!("{}&action=delete_all", String::from_utf8(body(&i)).unwrap()).into_bytes();
    let headers = vec![
        ("x-sig".into(), sig(&b)),
        (
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ),
    ];
    c.tls(v, i)
        .path(format!("/p?token={TOKEN}"))
        .headers(headers)
        .body(b)
        .expect(403);
}

/// The callback's target on the plain listener, with the token.
fn target() -> String {
    format!("/h?token={TOKEN}")
}

/// A raw case: name, extra head lines, framing, acceptable statuses, forwarded.
type Framed = (&'static str, &'static str, Framing, &'static [u16], bool);

/// The signed callback with extra head lines: framing conflicts, smuggling
/// attempts, malformed heads, sizes.
fn raw_framed(c: &mut Corpus) {
    let huge = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let many: String = (0..120).map(|n| format!("X-H{n}: v\r\n")).collect();
    let table: Vec<Framed> = vec![
        ("valid", "", Framing::Length, &[200], true),
        ("chunked", "", Framing::Chunked, &[200], true),
        (
            "two-hosts",
            "Host: other.example\r\n",
            Framing::Length,
            &[400],
            false,
        ),
        (
            "two-cl-differ",
            "Content-Length: 3\r\n",
            Framing::Length,
            &[400],
            false,
        ),
        (
            "te-unknown",
            "Transfer-Encoding: xchunked\r\n",
            Framing::None,
            &[400, 501],
            false,
        ),
        (
            "te-gzip-chunked",
            "Transfer-Encoding: gzip\r\n",
            Framing::Chunked,
            &[501],
            false,
        ),
        (
            "te-list",
            "Transfer-Encoding: identity, chunked\r\n",
            Framing::None,
            &[400, 501],
            false,
        ),
        (
            "cl-negative",
            "Content-Length: -1\r\n",
            Framing::None,
            &[400],
            false,
        ),
        (
            "cl-hex",
            "Content-Length: 0x10\r\n",
            Framing::None,
            &[400],
            false,
        ),
        (
            "obs-fold",
            "X-Folded: a\r\n b\r\n",
            Framing::Length,
            &[400],
            false,
        ),
        (
            "space-before-colon",
            "X-Bad : v\r\n",
            Framing::Length,
            &[400],
            false,
        ),
        (
            "bad-name-char",
            "X-B(d: v\r\n",
            Framing::Length,
            &[400],
            false,
        ),
        (
            "nul-in-value",
            "X-Nul: a\0b\r\n",
            Framing::Length,
            &[400],
            false,
        ),
        ("huge-header", huge.leak(), Framing::Length, &[431], false),
        ("many-headers", many.leak(), Framing::Length, &[431], false),
    ];
    for (name, extra, framing, expect, forwarded) in table {
        let i = format!("raw-{name}");
        let bytes = raw_request(&i, &target(), extra, framing);
        c.raw(i, bytes, expect, forwarded);
    }
}

/// The signed callback with its request line rewritten: (name, from, to, statuses, forwarded).
type Rewritten = (&'static str, &'static str, String, &'static [u16], bool);

fn raw_request_lines(c: &mut Corpus) {
    let t = target();
    let table: [Rewritten; 6] = [
        ("http10", "HTTP/1.1", "HTTP/1.0".into(), &[200], true),
        (
            "version-1.2",
            "HTTP/1.1",
            "HTTP/1.2".into(),
            &[400, 505],
            false,
        ),
        ("get-with-body", "POST", "GET".into(), &[405], false),
        ("lowercase-method", "POST", "post".into(), &[405], false),
        ("absolute-form", "/h?", "http://gw/h?".into(), &[400], false),
        ("fragment", "/h?", "/h#x?".into(), &[400, 403, 404], false),
    ];
    for (name, from, to, expect, forwarded) in table {
        let i = format!("raw-{name}");
        let request = String::from_utf8(raw_request(&i, &t, "", Framing::Length)).unwrap();
        c.raw(
            i,
            request.replacen(from, &to, 1).into_bytes(),
            expect,
            forwarded,
        );
    }
}

/// Requests written out byte for byte: (name, bytes, statuses). None is forwarded.
fn raw_literal(c: &mut Corpus) {
    let t = target();
    let i = "raw-cl-plus";
    let b = body(i);
    let s = sig(&b);
    let n = b.len();
    let with_body = |head: String| [head.as_bytes(), &b].concat();
    let chunk = format!("800\r\n{}\r\n", "z".repeat(0x800)).repeat(3);
    let table: [(&str, Vec<u8>, &'static [u16]); 7] = [
        (
            i,
            with_body(format!("POST {t} HTTP/1.1\r\nHost: gw\r\nX-Sig: {s}\r\nContent-Length: +{n}\r\n\r\n")),
            &[400],
        ),
        // Fewer bytes than declared: the body read times out.
        (
            "raw-short-body",
            with_body(format!("POST {t} HTTP/1.1\r\nHost: gw\r\nX-Sig: {s}\r\nContent-Length: {}\r\n\r\n", n + 10)),
            &[408],
        ),
        // Read as chunked (empty, unsigned body): refused, and the trailing "G"
        // is never parsed as the start of another request.
        (
            "raw-cl-te-desync",
            format!("POST {t} HTTP/1.1\r\nHost: gw\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG").into_bytes(),
            &[403],
        ),
        (
            "raw-bad-chunk-size",
            format!("POST {t} HTTP/1.1\r\nHost: gw\r\nX-Sig: 00\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").into_bytes(),
            &[400],
        ),
        (
            "raw-connect",
            b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n".to_vec(),
            &[400, 405],
        ),
        (
            "raw-declared-too-big",
            format!("POST {t} HTTP/1.1\r\nHost: gw\r\nX-Sig: 00\r\nContent-Length: 5000\r\n\r\n").into_bytes(),
            &[413],
        ),
        (
            "raw-chunked-too-big",
            format!("POST {t} HTTP/1.1\r\nHost: gw\r\nX-Sig: 00\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}").into_bytes(),
            &[413],
        ),
    ];
    for (name, bytes, expect) in table {
        c.raw(name.to_owned(), bytes, expect, false);
    }
}

/// A second request behind the first on one connection is judged on its
/// own, never riding on the first; only the first (valid) one is forwarded.
fn raw_pipelines(c: &mut Corpus) {
    let t = target();
    let wrong = "/h?token=wrong";
    // Content-Length with Transfer-Encoding: hyper reads the body by
    // Transfer-Encoding and closes the connection after answering (RFC 9112
    // §6.1), so the request behind it is never read, let alone forwarded.
    let cl_and_te = [
        raw_request(
            "raw-cl-and-te",
            &t,
            "Content-Length: 5\r\n",
            Framing::Chunked,
        ),
        raw_request("raw-cl-and-te-rider", &t, "", Framing::Length),
    ];
    let pipelined = [
        raw_request("raw-pipe-first", &t, "", Framing::Length),
        raw_request("raw-pipe-second", wrong, "", Framing::Length),
    ];
    // A request inside the first one's body, past its Content-Length.
    let smuggled = [
        raw_request("raw-pipe-smuggled-te", &t, "", Framing::Length),
        raw_request("raw-pipe-smuggled-inner", wrong, "", Framing::Length),
    ];
    for (name, parts) in [
        ("raw-cl-and-te", cl_and_te),
        ("raw-pipe-first", pipelined),
        ("raw-pipe-smuggled-te", smuggled),
    ] {
        c.raw(name.to_owned(), parts.concat(), &[200], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_corpus_lets_exactly_the_valid_requests_through() {
    let up = Upstream::recording().await;
    let config = format!(
        r#"
[gateway]
max_body_bytes = 4096
trusted_proxies = ["127.0.0.3/32"]
max_header_bytes = 8192
max_headers = 50
body_read_timeout = "1s"

[[route]]
name = "h"
path = "/h"
upstream = "{0}"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}
hmac = {{ algorithm = "sha1", header = "X-Sig", encoding = "hex", secrets = ["{KEY}"] }}

[[route]]
name = "p"
path = "/p"
upstream = "{0}?action=cb"
allow_ips = ["127.0.0.1"]
token = {{ secrets = ["{TOKEN}"] }}
hmac = {{ algorithm = "sha1", header = "X-Sig", encoding = "hex", secrets = ["{KEY}"] }}

[[route]]
name = "tolq"
path = "/tolq"
upstream = "{0}"
preset = "tolq"
allow_ips = ["127.0.0.1"]
hmac = {{ secrets = ["{KEY}"] }}
"#,
        up.url("/receiver")
    );
    let gw = Gateway::start(&config);

    let mut corpus = Corpus { cases: Vec::new() };
    for (v, tag) in [(Version::H1, "h1"), (Version::H2, "h2")] {
        signature_tampering(&mut corpus, v, tag);
        body_tampering(&mut corpus, v, tag);
        token_tampering(&mut corpus, v, tag);
        spoofed_verified(&mut corpus, v, tag);
        paths_and_methods(&mut corpus, v, tag);
        ip_tricks(&mut corpus, v, tag);
        tolq_auto_encoding(&mut corpus, v, tag);
        php_differentials(&mut corpus, v, tag);
    }
    raw_framed(&mut corpus);
    raw_request_lines(&mut corpus);
    raw_literal(&mut corpus);
    raw_pipelines(&mut corpus);

    let mut ids = std::collections::HashSet::new();
    for case in &corpus.cases {
        assert!(ids.insert(case.id.clone()), "duplicate case id {}", case.id);
    }

    let mut wrong = Vec::new();
    for case in &corpus.cases {
        let got = match &case.send {
            Send::Tls {
                version,
                source,
                method,
                path,
                headers,
                body,
            } => {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let client = Client::https(gw.https.unwrap(), *version).source_ip(source);
                client
                    .request(method.clone(), path, &h, body)
                    .await
                    .status
                    .as_u16()
            }
            Send::Raw(bytes) => exchange(gw.http.unwrap(), bytes)
                .await
                .0
                .first()
                .copied()
                .unwrap_or(0),
        };
        if !case.expect.contains(&got) {
            wrong.push(format!("{}: got {got}, want {:?}", case.id, case.expect));
        }
    }

    // What reached the upstream, by case id.
    let mut arrived: BTreeMap<String, usize> = BTreeMap::new();
    for r in up.requests() {
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).expect("upstream got a body that is not a case");
        *arrived
            .entry(v["case"].as_str().unwrap().to_owned())
            .or_default() += 1;
        let verified: Vec<_> = r.headers.get_all("x-callgate-verified").iter().collect();
        assert_eq!(verified.len(), 1, "exactly one verified header");
        // No header a receiver would fold into a reserved name, but callgate's own.
        for name in r.headers.keys() {
            let folded = name.as_str().replace('_', "-");
            let ours = [
                "x-callgate-verified",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
            ];
            let reserved = callgate::config::defaults::RESERVED_HEADERS.contains(&folded.as_str())
                || folded == "x-callgate-verified"
                || folded == "x-callgate-assertion";
            assert!(
                !reserved || ours.contains(&name.as_str()),
                "{name} reached the upstream"
            );
        }
        if r.uri.path() == "/receiver" && r.uri.query().is_some_and(|q| q.starts_with("action=cb"))
        {
            let actions = r.uri.query().unwrap().matches("action").count();
            assert_eq!(
                actions, 1,
                "the upstream's action was overridden: {}",
                r.uri
            );
        }
    }
    let expected: BTreeMap<String, usize> = corpus
        .cases
        .iter()
        .filter(|c| c.forwarded)
        .map(|c| (c.id.clone(), 1))
        .collect();
    let forged_through: Vec<&String> = arrived
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let valid_lost: Vec<&String> = expected
        .keys()
        .filter(|k| arrived.get(*k) != Some(&1))
        .collect();

    println!(
        "hostile corpus: {} cases, {} valid, {} forged/malformed; forged that reached upstream: {}",
        corpus.cases.len(),
        expected.len(),
        corpus.cases.len() - expected.len(),
        forged_through.len()
    );
    readme_says_the_corpus(corpus.cases.len(), expected.len());
    assert!(
        wrong.is_empty(),
        "{} cases got the wrong answer:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        forged_through.is_empty(),
        "forged requests reached the upstream: {forged_through:?}"
    );
    assert!(
        valid_lost.is_empty(),
        "valid requests lost or duplicated: {valid_lost:?}"
    );
    assert!(
        corpus.cases.len() >= 300,
        "only {} cases",
        corpus.cases.len()
    );
}

/// README.md's figures for the corpus are the ones this test prints: a
/// case added here without the README following fails (the README once
/// said 505/127 while the test printed 527/149).
fn readme_says_the_corpus(cases: usize, valid: usize) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let sent = format!("sends {cases} forged, tampered and malformed requests");
    let through = format!("received exactly the {valid} valid ones");
    assert!(
        readme.contains(&sent) && readme.contains(&through),
        "README.md's Hostile input section must say \"{sent}\" and \"{through}\""
    );
}
