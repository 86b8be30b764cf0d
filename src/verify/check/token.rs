//! The URL token: one of the route's secrets in the query, compared in
//! constant time, before the body is read.

use http::Uri;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::{Judgement, Refusal, Seen, Step, TokenFailure};
use crate::config::{Route, TokenCheck};
use crate::verify::query::{self, Lookup};
use crate::verify::Checked;

pub(super) fn head(route: &Route, uri: &Uri, checked: &mut Checked) -> Step {
    let Some(token) = &route.token else {
        return Step::Off;
    };
    match check_token(token, uri.query().unwrap_or("")) {
        Ok(i) => {
            checked.token_secret = Some(i);
            Step::Pass
        }
        Err(r) => Step::Fail(r),
    }
}

/// The index of the secret the query's token matches. Every secret is
/// compared whole (constant time), so timing tells neither whether nor
/// which one matched, nor how much of one did.
fn check_token(token: &TokenCheck, query: &str) -> Result<usize, Refusal> {
    let given = match query::lookup(query, &token.param) {
        Lookup::Missing => return Err(Refusal::Token(TokenFailure::Missing)),
        Lookup::Repeated => return Err(Refusal::Token(TokenFailure::Repeated)),
        Lookup::One(v) => v,
    };
    let mut index = u32::MAX;
    for (i, s) in token.secrets.iter().enumerate() {
        index.conditional_assign(&(i as u32), same_token(s.expose(), given.as_bytes()));
    }
    match index {
        u32::MAX => Err(Refusal::Token(TokenFailure::Mismatch)),
        i => Ok(i as usize),
    }
}

/// Whether `given` is `secret`: every byte of the secret is compared,
/// whatever `given` holds and wherever it first differs, so the time taken
/// depends on the configured secret's length alone (a shorter `given` is
/// compared as if padded, and its length compared last). The bytes'
/// differences are gathered with OR, as OpenSSL's `CRYPTO_memcmp` does, and
/// only the total is looked at, behind an optimization barrier: a few
/// instructions per byte, where a SHA-256 of the given token cost ~3,400.
fn same_token(secret: &[u8], given: &[u8]) -> Choice {
    let mut differ = 0u8;
    for (i, s) in secret.iter().enumerate() {
        differ |= s ^ given.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(differ).ct_eq(&0) & (secret.len() as u64).ct_eq(&(given.len() as u64))
}

pub(super) fn explain(route: &Route, seen: &Seen<'_>) -> Judgement {
    let Some(t) = &route.token else {
        return Judgement::Off;
    };
    match check_token(t, seen.query()) {
        Ok(i) => Judgement::Pass(format!("parameter {:?} matches secret #{i}", t.param)),
        // The console never keeps a token: its capture cannot prove one.
        Err(_) if matches!(query::lookup(seen.query(), &t.param), Lookup::One(v) if v == "REDACTED") => {
            Judgement::Unknown(
                "the capture has the token REDACTED (the console never keeps it)".into(),
            )
        }
        Err(refusal) => Judgement::Fail(refusal.to_string()),
    }
}

pub(super) fn describe(route: &Route) -> String {
    match &route.token {
        Some(t) => format!(
            "query parameter {:?}, {} secret(s): {}{}",
            t.param,
            t.sources.len(),
            t.sources.join(", "),
            if route.strip_token {
                "; stripped before forwarding"
            } else {
                ""
            }
        ),
        None => "(none)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn a_token_is_the_same_only_whole() {
        let secret = b"t-0123456789abcdef";
        assert!(bool::from(same_token(secret, secret)));
        for given in [
            &b""[..],
            b"t",
            b"t-0123456789abcde",
            b"t-0123456789abcdeF",
            b"t-0123456789abcdef\0",
            b"t-0123456789abcdefg",
            b"u-0123456789abcdef",
        ] {
            assert!(!bool::from(same_token(secret, given)), "{given:?}");
        }
        // A secret ending in NUL bytes is not matched by a shorter token
        // (the padding is no wildcard).
        assert!(!bool::from(same_token(b"ab\0", b"ab")));
        assert!(bool::from(same_token(b"ab\0", b"ab\0")));
    }

    proptest::proptest! {
        /// The same answer as comparing the slices, for any two.
        #[test]
        fn same_token_is_equality(secret in proptest::collection::vec(proptest::num::u8::ANY, 0..40), given in proptest::collection::vec(proptest::num::u8::ANY, 0..40), copy in proptest::bool::ANY) {
            let given = if copy { secret.clone() } else { given };
            proptest::prop_assert_eq!(bool::from(same_token(&secret, &given)), secret == given);
        }
    }
}
