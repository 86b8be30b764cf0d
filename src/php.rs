//! How PHP reads what callgate forwards: the receivers behind callgate are
//! often PHP, so what callgate checks is compared the way PHP will read it.
//! A leaf module: config folds configured names with it once, verify and the
//! header rewriting compare with it per request.

use std::borrow::Cow;

/// A parameter name as PHP registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PhpName {
    /// The variable's name: `$_GET[base]`.
    pub(crate) base: String,
    /// `base[...]`: PHP makes it an array.
    pub(crate) array: bool,
}

/// How PHP (8.x, `php_register_variable_ex`) names a decoded parameter;
/// None where PHP drops it (an empty name, or one starting with `[`).
pub(crate) fn php_name(decoded: &str) -> Option<PhpName> {
    php_base(decoded).map(|(base, array)| PhpName {
        base: base.into_owned(),
        array,
    })
}

/// [`php_name`] as (base, array), the base borrowed when the name is its
/// own: most names hold none of the bytes PHP treats specially, and every
/// query parameter of every callback comes through here, so the common
/// case is neither rebuilt char by char nor copied.
pub(crate) fn php_base(decoded: &str) -> Option<(Cow<'_, str>, bool)> {
    if !decoded
        .bytes()
        .any(|b| matches!(b, b' ' | b'.' | b'[' | b'\0'))
    {
        return (!decoded.is_empty()).then_some((Cow::Borrowed(decoded), false));
    }
    rebuilt(decoded).map(|n| (Cow::Owned(n.base), n.array))
}

/// PHP's naming, char by char: leading spaces skipped, cut at NUL, ` ` and
/// `.` folded to `_`, and `[` read as an index or written as `_`.
fn rebuilt(decoded: &str) -> Option<PhpName> {
    let name = decoded.trim_start_matches(' ');
    // The C string ends at the first NUL.
    let name = name.split('\0').next().unwrap_or("");
    let fold = |c: char| if c == ' ' || c == '.' { '_' } else { c };
    let Some(open) = name.find('[') else {
        return non_empty(name.chars().map(fold).collect(), false);
    };
    let base: String = name[..open].chars().map(fold).collect();
    if base.is_empty() {
        return None;
    }
    if name[open + 1..].contains(']') {
        return non_empty(base, true);
    }
    // A `[` without its `]` is no index: PHP writes it as `_`, and folds
    // ` `, `.` and `[` in the rest.
    let rest = name[open + 1..]
        .chars()
        .map(|c| if c == '[' { '_' } else { fold(c) });
    non_empty(base + "_" + &rest.collect::<String>(), false)
}

fn non_empty(base: String, array: bool) -> Option<PhpName> {
    (!base.is_empty()).then_some(PhpName { base, array })
}

/// The name PHP gives a parameter configured as `name` (`api.key` is
/// `api_key` to PHP): what a request's names are compared with.
pub(crate) fn folded(name: &str) -> String {
    folded_ref(name).into_owned()
}

/// [`folded`], borrowed when `name` is its own PHP name (a configured name
/// folded already, say): no copy per request.
pub(crate) fn folded_ref(name: &str) -> Cow<'_, str> {
    php_base(name).map_or(Cow::Borrowed(name), |(base, _)| base)
}

/// A header name as PHP's `$_SERVER` (and CGI) sees it: case does not
/// matter, and every character other than a letter or digit is `_` (`-`,
/// `_`, `.`). `X_Callgate_Verified`, `X.Callgate.Verified` and
/// `x-callgate-verified` are one header to PHP, and the later one wins.
pub(crate) fn same_header(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| header_byte(x) == header_byte(y))
}

/// A header name's byte as PHP reads it: a letter or digit in lower case,
/// anything else `_`.
pub(crate) fn header_byte(c: u8) -> u8 {
    match c.is_ascii_alphanumeric() {
        true => c.to_ascii_lowercase(),
        false => b'_',
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The shortcut for plain names gives what the rebuild gives, for
        /// names with and without the bytes PHP treats specially.
        #[test]
        fn the_shortcut_names_as_the_rebuild_does(name in "(\\PC|[ .\\[\\]\\x00]){0,12}") {
            prop_assert_eq!(php_name(&name), rebuilt(&name));
        }
    }

    /// What PHP 8.2's parse_str() makes of each name (checked against
    /// `php -r 'parse_str(...)'`; tests/hostile/hostile.rs proves it on `php -S`).
    #[test]
    fn names_fold_as_php_registers_them() {
        let cases: &[(&str, Option<(&str, bool)>)] = &[
            ("token", Some(("token", false))),
            ("  token", Some(("token", false))),
            ("token\0x", Some(("token", false))),
            ("token[]", Some(("token", true))),
            ("token[a][b", Some(("token", true))),
            ("z[]]", Some(("z", true))),
            ("api.key", Some(("api_key", false))),
            ("api key", Some(("api_key", false))),
            ("api[key", Some(("api_key", false))),
            ("a[b.c", Some(("a_b_c", false))),
            ("a[b c", Some(("a_b_c", false))),
            ("a[.b", Some(("a__b", false))),
            ("t[o[k", Some(("t_o_k", false))),
            ("x[", Some(("x_", false))),
            ("t.o[k]", Some(("t_o", true))),
            ("a]b", Some(("a]b", false))),
            ("token ", Some(("token_", false))),
            ("\ttoken", Some(("\ttoken", false))),
            ("+token", Some(("+token", false))),
            ("[y", None),
            ("\0token", None),
            ("   ", None),
            ("", None),
        ];
        for (raw, want) in cases {
            let got = php_name(raw).map(|n| (n.base, n.array));
            let want = want.map(|(b, a)| (b.to_owned(), a));
            assert_eq!(got, want, "{raw:?}");
        }
    }

    #[test]
    fn header_names_fold_underscore_and_case() {
        assert!(same_header("X_Callgate_Verified", "x-callgate-verified"));
        assert!(same_header("x-forwarded_for", "X-Forwarded-For"));
        assert!(!same_header("x-forwarded-fo", "x-forwarded-for"));
        assert!(same_header("x-forwarded.for", "x-forwarded-for"));
        assert!(same_header("X.Callgate.Verified", "x-callgate-verified"));
        assert!(same_header("x.callgate-verified", "x-callgate-verified"));
        assert!(!same_header("x-callgate-verifiec", "x-callgate-verified"));
    }
}
