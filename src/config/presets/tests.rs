use super::*;

/// The files under presets/, by name.
fn files_on_disk() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/presets");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn every_file_under_presets_is_built_in_under_its_own_name() {
    let mut built_in: Vec<String> = Preset::all().map(|p| p.name().to_owned()).collect();
    let count = built_in.len();
    built_in.sort();
    built_in.dedup();
    assert_eq!(built_in.len(), count, "two built-in presets share a name");
    assert_eq!(built_in, files_on_disk());
    assert!(count >= 60, "{count} presets");
}

#[test]
fn every_built_in_preset_names_its_documentation_and_test_vector() {
    for p in Preset::all() {
        let (docs, vector) = p.source();
        assert!(docs.starts_with("https://"), "{}: docs {docs:?}", p.name());
        assert!(
            vector.contains("tests/") || vector.contains("src/"),
            "{}: vector {vector:?}",
            p.name()
        );
        assert!(!p.summary().is_empty(), "{}", p.name());
    }
}

#[test]
fn a_preset_written_back_reads_the_same() {
    for p in Preset::all() {
        let file: PresetFile = toml::from_str(p.text()).unwrap();
        let again = toml::to_string(&file).unwrap();
        let def = PresetFile::parse(&again).unwrap();
        assert_eq!(def.defaults, p.defaults(), "{}", p.name());
    }
}

fn refusal(text: &str) -> String {
    PresetFile::parse(text).expect_err(text)
}

const GOOD: &str = r#"
name = "acme-corp"
[hmac]
algorithm = "sha256"
header = "X-Acme-Signature"
encoding = "hex"
"#;

#[test]
fn an_operators_preset_resolves_with_the_models_defaults() {
    let def = PresetFile::parse(GOOD).unwrap();
    let h = def.defaults.hmac.unwrap();
    assert_eq!(h.header, "x-acme-signature");
    assert_eq!(h.scheme, Scheme::PLAIN);
    assert_eq!(def.defaults.dedupe_window, None);
}

#[test]
fn a_preset_that_is_not_well_formed_is_refused_with_the_key_named() {
    assert!(refusal(&format!("{GOOD}colour = \"red\"")).contains("unknown field"));
    assert!(refusal(&GOOD.replace("acme-corp", "Acme Corp")).contains("name"));
    assert!(refusal(&GOOD.replace("X-Acme-Signature", "X Acme")).contains("hmac.header"));
    assert!(refusal(&format!("{GOOD}claims = \"sometimes\"")).contains("hmac.claims"));
    assert!(refusal(&format!("{GOOD}claims = \"prefixed\"")).contains("hmac.prefix"));
    assert!(refusal(&format!(
        "{GOOD}claims = \"fields\"\nsignature_field = \"v1\""
    ))
    .contains("timestamp_field"));
    assert!(
        refusal(&format!("{GOOD}signed = \"{{timestamp}}.{{body}}\"")).contains("timestamp_header")
    );
    assert!(refusal(&format!("{GOOD}signed = \"{{body}}{{body}}\"")).contains("hmac.signed"));
    // A timestamp read but not signed would prove nothing.
    assert!(
        refusal(&format!("{GOOD}timestamp_header = \"x-acme-time\"")).contains("does not sign it")
    );
    assert!(refusal(&format!(
        "{GOOD}signed = \"{{id}}.{{timestamp}}.{{body}}\"\ntimestamp_header = \"t\""
    ))
    .contains("id_header"));
    assert!(refusal(&GOOD.replace(
        "name = \"acme-corp\"",
        "name = \"acme-corp\"\ndedupe_window = \"90days\""
    ))
    .contains("30 days"));
    assert!(refusal(&GOOD.replace(
        "name = \"acme-corp\"",
        "name = \"acme-corp\"\nhandshake = \"telepathy\""
    ))
    .contains("handshake"));
    assert!(refusal("name = \"nothing\"\n").contains("checks nothing"));
    let both = format!(
        "{GOOD}\n[signature]\nalgorithm = \"ed25519\"\nheader = \"x-sig\"\nencoding = \"hex\"\n"
    );
    assert!(refusal(&both).contains("not both"));
    let pk = "name = \"pk\"\n[signature]\nalgorithm = \"ed448\"\nheader = \"x-sig\"\nencoding = \"hex\"\n";
    assert!(refusal(pk).contains("signature.algorithm"));
    let pk = pk.replace("ed448", "ed25519") + "signed = \"{timestamp}:{body}\"\n";
    assert!(refusal(&pk).contains("signature.timestamp_header"));
}

#[test]
fn the_same_definition_given_again_is_the_same_preset() {
    let a = Preset::define(PresetFile::parse(GOOD).unwrap());
    let b = Preset::define(PresetFile::parse(GOOD).unwrap());
    assert!(std::ptr::eq(a.0, b.0));
}
