//! The providers' own signing libraries (tests/signers: PyPI's
//! standardwebhooks, svix, twilio and slack_sdk; npm's
//! @octokit/webhooks-methods and stripe), run as real signers. `.ci/run`
//! installs them; a machine without them fails loudly, never skips.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn dir() -> PathBuf {
    PathBuf::from(format!("{}/tests/signers", crate::ROOT))
}

/// The header lines `provider`'s library sends with `body`.
/// Python: standard-webhooks, svix, twilio, slack. Node: github, stripe.
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs a provider's library signs, each a flag of its script"
)]
pub fn sign(
    provider: &str,
    secret: &str,
    id: &str,
    ts: i64,
    url: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let ts = ts.to_string();
    let mut cmd = match provider {
        "github" | "stripe" => {
            let mut c = Command::new("node");
            c.arg("sign.mjs");
            c
        }
        _ => {
            let mut c = Command::new("python3");
            c.arg("sign.py");
            c
        }
    };
    let mut child = cmd
        .args([provider, secret, id, &ts, url])
        .current_dir(dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node and python3 run the providers' signers (bash .ci/run installs them)");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{provider}'s signing library failed (install: python3 -m pip install -r tests/signers/requirements.txt; npm ci --prefix tests/signers): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `callgate sign --preset`: callgate playing a provider that publishes no
/// signing library. Unset parts are left to `sign`'s defaults.
pub struct CliSigner<'a> {
    preset: &'a str,
    secret: &'a str,
    timestamp: Option<i64>,
    id: Option<&'a str>,
    url: Option<&'a str>,
}

/// A `callgate sign --preset PRESET --secret SECRET` run, to be refined.
pub fn cli<'a>(preset: &'a str, secret: &'a str) -> CliSigner<'a> {
    CliSigner {
        preset,
        secret,
        timestamp: None,
        id: None,
        url: None,
    }
}

impl<'a> CliSigner<'a> {
    /// `--timestamp`.
    pub fn timestamp(mut self, ts: i64) -> Self {
        self.timestamp = Some(ts);
        self
    }

    /// `--id`.
    pub fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }

    /// `--url`.
    pub fn url(mut self, url: Option<&'a str>) -> Self {
        self.url = url;
        self
    }

    /// The header lines it prints for `body`, as (name, value).
    pub fn headers(&self, body: &[u8]) -> Vec<(String, String)> {
        let ts = self.timestamp.map(|t| t.to_string());
        let mut args = vec!["sign", "--preset", self.preset, "--secret", self.secret];
        for (flag, value) in [
            ("--timestamp", ts.as_deref()),
            ("--id", self.id),
            ("--url", self.url),
        ] {
            if let Some(v) = value {
                args.extend([flag, v]);
            }
        }
        let (code, out, err) = crate::gateway::run_cli(&args, body, &[]);
        assert_eq!(code, 0, "callgate sign: {err}");
        out.lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}
