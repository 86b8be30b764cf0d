//! Public-key signatures end to end: keys made and requests signed by
//! openssl (an implementation independent of callgate's ring), verified by
//! the gateway for the Discord (Ed25519, raw hex key), Telnyx (Ed25519, PEM
//! file, `timestamp|body`) and SendGrid (ECDSA P-256, base64 SPKI) presets
//! and Standard Webhooks v1a (Ed25519, `whpk_` key, `id.timestamp.body`)
//! presets and for routes naming ECDSA P-384, RSA PKCS#1 and RSA-PSS
//! themselves; and `callgate sign --private-key` signing as those providers.

use callgate_testkit as support;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use support::{Client, Gateway, Upstream, Version};

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A private key file made by `gen`, and its public key as DER (SPKI).
/// openssl's arguments for an ECDSA key pair on each curve.
const P256: &[&str] = &[
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
];
const P384: &[&str] = &[
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-384",
];

fn keypair(dir: &Path, name: &str, gen: &[&str]) -> Vec<u8> {
    let key = format!("{name}.pem");
    let mut args: Vec<&str> = gen.to_vec();
    args.extend(["-out", &key]);
    openssl(dir, &args);
    openssl(dir, &["pkey", "-in", &key, "-pubout", "-outform", "DER"])
}

/// `message` signed with `name`'s key: Ed25519 raw, else a digest signature.
fn sign(dir: &Path, name: &str, message: &[u8], digest: &[&str]) -> Vec<u8> {
    std::fs::write(dir.join("msg.bin"), message).unwrap();
    let key = format!("{name}.pem");
    match digest.is_empty() {
        true => openssl(
            dir,
            &[
                "pkeyutl", "-sign", "-inkey", &key, "-rawin", "-in", "msg.bin",
            ],
        ),
        false => {
            let mut args = vec!["dgst"];
            args.extend(digest);
            args.extend(["-sign", &key, "msg.bin"]);
            openssl(dir, &args)
        }
    }
}

fn now() -> String {
    support::now().to_string()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_made_by_openssl_pass_and_anything_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ed = keypair(d, "ed", &["genpkey", "-algorithm", "ed25519"]);
    keypair(d, "tx", &["genpkey", "-algorithm", "ed25519"]);
    let ec = keypair(d, "ec", P256);
    let ec384 = keypair(d, "ec384", P384);
    let rsa = keypair(
        d,
        "rsa",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
    );
    keypair(d, "other", &["genpkey", "-algorithm", "ed25519"]);
    let tx_pem = d.join("tx.pub.pem");
    std::fs::write(&tx_pem, openssl(d, &["pkey", "-in", "tx.pem", "-pubout"])).unwrap();
    let up = Upstream::recording().await;
    let route = |name: &str, preset: &str, sig: String| {
        format!("[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\n{preset}\nsignature = {{ {sig} }}\n\n", up.url(&format!("/{name}")))
    };
    let text = [
        // Discord shows its application key as 32 raw bytes in hex.
        route("discord", "preset = \"discord\"", format!("public_keys = [\"{}\"]", hex::encode(&ed[ed.len() - 32..]))),
        route("telnyx", "preset = \"telnyx\"", format!("public_keys = [\"file:{}\"]", tx_pem.display())),
        // SendGrid shows a base64 SubjectPublicKeyInfo.
        route("sendgrid", "preset = \"sendgrid\"", format!("public_keys = [\"{}\"]", b64(&ec))),
        route("p384", "", format!("algorithm = \"ecdsa-p384-sha384\", header = \"x-sig\", public_keys = [\"{}\"]", b64(&ec384))),
        route("pkcs1", "", format!("algorithm = \"rsa-pkcs1-sha256\", header = \"x-sig\", encoding = \"hex\", public_keys = [\"{}\"]", hex::encode(&rsa))),
        route("pss", "", format!("algorithm = \"rsa-pss-sha256\", header = \"x-sig\", public_keys = [\"{}\"]", b64(&rsa))),
        // Standard Webhooks shows its Ed25519 public key as whpk_<base64>.
        route("swv1a", "preset = \"standard-webhooks-v1a\"", format!("public_keys = [\"whpk_{}\"]", b64(&ed[ed.len() - 32..]))),
    ]
    .concat();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"type":1,"id":"42"}"#;
    let ts = now();
    let stamped = |sep: &str| [ts.as_bytes(), sep.as_bytes(), body].concat();
    let pss = [
        "-sha256",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:32",
    ];
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "discord",
            vec![
                (
                    "x-signature-ed25519".into(),
                    hex::encode(sign(d, "ed", &stamped(""), &[])),
                ),
                ("x-signature-timestamp".into(), ts.clone()),
            ],
        ),
        (
            "telnyx",
            vec![
                (
                    "telnyx-signature-ed25519".into(),
                    b64(&sign(d, "tx", &stamped("|"), &[])),
                ),
                ("telnyx-timestamp".into(), ts.clone()),
            ],
        ),
        (
            "sendgrid",
            vec![
                (
                    "x-twilio-email-event-webhook-signature".into(),
                    b64(&sign(d, "ec", &stamped(""), &["-sha256"])),
                ),
                ("x-twilio-email-event-webhook-timestamp".into(), ts.clone()),
            ],
        ),
        (
            "p384",
            vec![("x-sig".into(), b64(&sign(d, "ec384", body, &["-sha384"])))],
        ),
        (
            "pkcs1",
            vec![(
                "x-sig".into(),
                hex::encode(sign(d, "rsa", body, &["-sha256"])),
            )],
        ),
        (
            "pss",
            vec![("x-sig".into(), b64(&sign(d, "rsa", body, &pss)))],
        ),
        (
            // id.timestamp.body; entries space-separated, an HMAC one ignored.
            "swv1a",
            vec![
                (
                    "webhook-id".into(),
                    "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".into(),
                ),
                ("webhook-timestamp".into(), ts.clone()),
                (
                    "webhook-signature".into(),
                    format!(
                        "v1,AAAA v1a,{}",
                        b64(&sign(
                            d,
                            "ed",
                            &[b"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.", stamped(".").as_slice()]
                                .concat(),
                            &[]
                        ))
                    ),
                ),
            ],
        ),
    ];
    for (name, headers) in &cases {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = c.post(&format!("/{name}"), &h, body).await;
        assert_eq!(r.status, 200, "{name}: {}", gw.log());
        let tampered = c
            .post(&format!("/{name}"), &h, br#"{"type":1,"id":"43"}"#)
            .await;
        assert_eq!(tampered.status, 403, "{name}: another body");
    }
    // Signed by another key: refused.
    let wrong = hex::encode(sign(d, "other", &stamped(""), &[]));
    let r = c
        .post(
            "/discord",
            &[
                ("x-signature-ed25519", &wrong),
                ("x-signature-timestamp", &ts),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 403);
    // An old timestamp, though signed: refused.
    let old = (ts.parse::<i64>().unwrap() - 3600).to_string();
    let old_sig = hex::encode(sign(d, "ed", &[old.as_bytes(), body].concat(), &[]));
    let r = c
        .post(
            "/discord",
            &[
                ("x-signature-ed25519", &old_sig),
                ("x-signature-timestamp", &old),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(up.count(), 7, "exactly the seven good ones");
    assert!(up
        .requests()
        .iter()
        .all(|r| r.headers["x-callgate-verified"] == "hmac"));
}

#[test]
fn a_key_of_the_wrong_kind_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callgate.toml");
    std::fs::write(
        &path,
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"d\"\npath = \"/d\"\nupstream = \"http://127.0.0.1:9/\"\npreset = \"discord\"\nsignature = { public_keys = [\"abcd\"] }\n",
    )
    .unwrap();
    let (code, _, err) =
        support::gateway::run_cli(&["check", "--config", path.to_str().unwrap()], b"", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("not a ed25519 public key"), "{err}");
}

/// `callgate sign --preset NAME --private-key SPEC` signs as a public-key
/// provider does (keys made by openssl), so a provider can be simulated with
/// curl: what it prints passes the gateway; an HMAC secret for such a preset
/// is refused with the flag to use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_with_a_private_key_makes_what_the_gateway_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ed = keypair(d, "ed", &["genpkey", "-algorithm", "ed25519"]);
    let ec = keypair(d, "ec", P256);
    let up = Upstream::recording().await;
    let route = |name: &str, key: String| {
        format!("[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\npreset = \"{name}\"\nsignature = {{ public_keys = [\"{key}\"] }}\n\n", up.url(&format!("/{name}")))
    };
    let raw_ed = b64(&ed[ed.len() - 32..]);
    let text = [
        route("discord", raw_ed.clone()),
        route("telnyx", raw_ed.clone()),
        route("sendgrid", b64(&ec)),
        route("standard-webhooks-v1a", format!("whpk_{raw_ed}")),
    ]
    .concat();
    let gw = Gateway::start(&text);
    let c = Client::https(gw.https.unwrap(), Version::H1);
    let body = br#"{"type":1,"id":"signed-by-callgate-sign"}"#;
    for (name, key) in [
        ("discord", "ed"),
        ("telnyx", "ed"),
        ("sendgrid", "ec"),
        ("standard-webhooks-v1a", "ed"),
    ] {
        let spec = format!("file:{}", d.join(format!("{key}.pem")).display());
        let (code, out, err) = support::gateway::run_cli(
            &["sign", "--preset", name, "--private-key", &spec],
            body,
            &[],
        );
        assert_eq!(code, 0, "{name}: {err}");
        let lines: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once(": ")).collect();
        assert!(lines.len() >= 2, "{name}: {out}");
        let r = c.post(&format!("/{name}"), &lines, body).await;
        assert_eq!(r.status, 200, "{name}: {out}\n{}", gw.log());
    }
    assert_eq!(up.count(), 4);
    let (code, _, err) = support::gateway::run_cli(
        &[
            "sign",
            "--preset",
            "discord",
            "--secret",
            "a-secret-of-sixteen-bytes",
        ],
        body,
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--private-key"), "{err}");
}
