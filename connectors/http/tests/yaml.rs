//! YAML definitions: the same table as TOML (so the same struct, the same pure validation and
//! the same field paths), YAML's type traps never changing a value silently, duplicate keys and
//! alias bombs refused, secrets only through `*_file`, and `definition_file` in an instance
//! table (its text read by the config layer at load into `definition`).

use revoke_connector_http::{
    merged, parse_definition, parse_toml, parse_yaml, validate, HttpConnector, KIND,
};
use serde_json::{json, Value};

const SCIM_TOML: &str = include_str!("fixtures/scim.toml");
const SCIM_YAML: &str = include_str!("fixtures/scim.yaml");

/// An instance table as the config layer hands it over: `definition_file` kept, its text in
/// `definition`, the instance's own keys (base_url, auth) beside them.
fn instance(file: &str, text: &str) -> Value {
    json!({
        "kind": KIND,
        "definition_file": file,
        "definition": text,
        "base_url": "https://scim.example.com/scim/v2",
        "auth": {"type": "bearer", "token": "t"},
    })
}

fn issues(v: &Value) -> Vec<(String, String)> {
    validate("connectors.app", v)
        .expect_err("refused")
        .into_iter()
        .map(|i| (i.path, i.message))
        .collect()
}

#[test]
fn the_yaml_fixture_is_the_toml_fixture() {
    let y = parse_yaml(SCIM_YAML).expect("parses");
    let t = parse_toml(SCIM_TOML).expect("parses");
    assert_eq!(y, t);
    let v = instance("/etc/revoked/scim.yaml", SCIM_YAML);
    validate("connectors.app", &v).unwrap_or_else(|e| panic!("{e:#?}"));
    let c = HttpConnector::from_params("app", &v).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        c.definition().definition_file.as_deref(),
        Some("/etc/revoked/scim.yaml")
    );
    // The instance's keys win over the file's (auth here), as over a recipe's.
    let m = merged("connectors.app", &v).expect("merged");
    assert_eq!(m["auth"]["type"], json!("bearer"));
    assert!(m.get("definition").is_none());
    // .yml too, and .toml by the same key.
    validate("connectors.app", &instance("d.yml", SCIM_YAML)).expect("yml");
    validate("connectors.app", &instance("d.toml", SCIM_TOML)).expect("toml");
}

#[test]
fn a_problem_in_yaml_is_named_by_the_same_field_path_as_in_toml() {
    let bad_yaml = SCIM_YAML.replace("result: retry", "result: fine");
    let bad_toml = SCIM_TOML.replacen("result = \"retry\"", "result = \"fine\"", 1);
    let y = issues(&instance("d.yaml", &bad_yaml));
    let t = issues(&instance("d.toml", &bad_toml));
    assert!(
        y.iter().any(
            |(p, m)| p == "connectors.app.resources.user.actions[0].outcomes[4].result"
                && m.contains("found \"fine\"")
        ),
        "{y:#?}"
    );
    assert_eq!(y[0], t[0]);
    // A structural problem (an unknown key) too.
    let y = issues(&instance(
        "d.yaml",
        &SCIM_YAML.replace("id_kind: SCIM id", "id_kind: SCIM id\n    colour: blue"),
    ));
    assert!(
        y.iter()
            .any(|(p, m)| p.starts_with("connectors.app") && m.contains("colour")),
        "{y:#?}"
    );
}

/// The traps: YAML 1.1 booleans, leading zeros, exponents, dates, sexagesimal numbers, null.
#[test]
fn yaml_type_traps_never_change_a_value_silently() {
    let v = parse_yaml(
        "a: no\nb: on\nc: yes\nd: off\ne: 0123\nf: 1e3\ng: 2024-01-01\nh: 1:20\ni: 0x1F\nj: 1_000\nk: NO\nl: true\nm: 7\nn: '0123'\n",
    )
    .expect("parses");
    assert_eq!(
        v,
        json!({
            // YAML 1.1's booleans stay the words written (Norway's country code stays "NO")
            "a": "no", "b": "on", "c": "yes", "d": "off", "k": "NO",
            // a leading zero is kept: an id 0123 is never the number 123 (nor octal 83)
            "e": "0123",
            // an exponent is a number, as in TOML: where a string is wanted it is refused below
            "f": 1000.0,
            // no timestamp type, no sexagesimal (YAML 1.1 read 1:20 as 80)
            "g": "2024-01-01", "h": "1:20",
            "i": 31,
            "j": "1_000",
            "l": true, "m": 7, "n": "0123",
        })
    );
    // In a definition: a query value written 1e3, a header written 0x1F, a bool written no:
    // refused by the definition's own types, each named by its path, never converted.
    let base = SCIM_YAML.replace(
        "      query: {filter: 'userName eq \"{{subject.username}}\"'}",
        "      query: {filter: 'userName eq \"{{subject.username}}\"', count: 1e3}",
    );
    let i = issues(&instance("d.yaml", &base));
    assert!(
        i.iter().any(
            |(p, m)| p.starts_with("connectors.app.resources.user.discover[0]")
                && m.contains("expected a string")
        ),
        "{i:#?}"
    );
    let i = issues(&instance(
        "d.yaml",
        &format!("client_jobs: no\n{SCIM_YAML}"),
    ));
    assert!(
        i.iter().any(|(_, m)| m.contains("expected a boolean")),
        "{i:#?}"
    );
    // A predicate compares against the value as written: `equals: 0123` is the string "0123".
    let y = SCIM_YAML.replace(
        "{path: $.active, equals: false}",
        "{path: $.active, equals: 0123}",
    );
    let p = parse_yaml(&y).expect("parses");
    assert_eq!(
        p["resources"]["user"]["state"]["disabled"]["equals"],
        json!("0123")
    );
}

#[test]
fn duplicate_keys_merge_keys_several_documents_and_unknown_tags_are_refused() {
    for (text, want) in [
        ("system: A\nsystem: B\n", "duplicate"),
        ("x: &x {a: 1}\ny:\n  <<: *x\n  b: 2\n", "merge"),
        ("system: A\n---\nsystem: B\n", ""),
        ("system: !secret A\n", ""),
        ("- a\n- b\n", "mapping"),
    ] {
        let e = parse_yaml(text).expect_err(text);
        // Where: the parser's line and column (but for the shape of the whole file).
        assert!(want == "mapping" || e.contains("at line "), "{text:?}: {e}");
        assert!(!e.contains("Options"), "a library hint leaked: {e}");
        assert!(e.to_lowercase().contains(want), "{text:?}: {e}");
    }
}

#[test]
fn an_alias_bomb_is_refused_by_the_budget_not_expanded() {
    // Nine levels of ten aliases each: 10^9 strings if expanded.
    let mut y = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..=9 {
        let p = format!("*a{}", i - 1);
        y.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            std::iter::repeat_n(p.as_str(), 10)
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let e = parse_yaml(&y).expect_err("a bomb");
    assert!(
        e.to_lowercase().contains("budget") || e.to_lowercase().contains("alias"),
        "{e}"
    );
    // A few aliases (outcome lists shared by actions) are fine.
    let ok = "common: &c [{status: [404], result: already_done}]\nx: *c\ny: *c\n";
    assert_eq!(
        parse_yaml(ok).expect("fine")["y"][0]["result"],
        json!("already_done")
    );
    // A file larger than the cap is refused before parsing.
    let big = format!("system: \"{}\"\n", "x".repeat(2 * 1024 * 1024));
    assert!(parse_yaml(&big).expect_err("too big").contains("at most"));
}

#[test]
fn a_secret_written_in_a_yaml_definition_is_refused_and_not_echoed() {
    let y = SCIM_YAML.replace(
        "client_secret_file: /run/secrets/scim",
        "client_secret: hunter2-very-secret",
    );
    let i = issues(&instance("d.yaml", &y));
    assert_eq!(i.len(), 1, "{i:#?}");
    assert_eq!(i[0].0, "connectors.app.definition_file.auth.client_secret");
    assert!(!i[0].1.contains("hunter2"), "{}", i[0].1);
}

#[test]
fn definition_file_needs_its_text_one_source_and_a_known_extension() {
    // Not loaded through the config layer: the path alone.
    let mut v = instance("/etc/revoked/d.yaml", SCIM_YAML);
    v.as_object_mut().expect("table").remove("definition");
    let i = issues(&v);
    assert_eq!(i[0].0, "connectors.app.definition_file");
    assert!(i[0].1.contains("read at load"), "{}", i[0].1);
    // A recipe and a file.
    let mut v = instance("d.yaml", SCIM_YAML);
    v["recipe"] = json!("mattermost");
    assert!(issues(&v)[0].1.contains("one of recipe or definition_file"));
    // Text inline without a file.
    let v = json!({"kind": KIND, "definition": SCIM_YAML});
    assert_eq!(issues(&v)[0].0, "connectors.app.definition");
    // An extension that is neither.
    let i = issues(&instance("d.json", SCIM_YAML));
    assert!(i[0].1.contains(".toml, .yaml or .yml"), "{}", i[0].1);
    assert!(parse_definition("x.YAML", SCIM_YAML).is_ok());
    // The file's auth with a *_file key and none in the instance: the config layer reads
    // *_file only in revoked.toml, so the auth belongs there.
    let mut v = instance("d.yaml", SCIM_YAML);
    v.as_object_mut().expect("table").remove("auth");
    let i = issues(&v);
    assert!(
        i.iter()
            .any(|(p, m)| p == "connectors.app.definition_file" && m.contains("instance table")),
        "{i:#?}"
    );
}

/// Every ```yaml block of docs/connectors/http.md is a definition: checked as the instance
/// `[connectors.doc]` naming it as its definition_file (base_url and auth in the instance, as in
/// revoked.toml), the way the docs test checks the ```toml blocks.
#[test]
fn every_yaml_example_in_the_http_doc_is_a_valid_definition() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/connectors/http.md"
    ))
    .expect("the doc");
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in doc.lines() {
        match (&mut open, line.trim()) {
            (None, "```yaml") => open = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                open = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(!blocks.is_empty(), "no yaml block in the doc");
    for b in &blocks {
        let mut v = instance("/etc/revoked/doc.yaml", b);
        v["base_url"] = json!("https://assets.example.com");
        validate("connectors.doc", &v).unwrap_or_else(|e| panic!("{e:#?}\n{b}"));
    }
}
