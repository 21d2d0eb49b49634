use std::sync::Arc;

use revoke_config::{load, load_str, ConfigError, ExposeSecret};
use revoke_core::{ConfigIssue, Connector, ConnectorFactory};

/// A factory that only validates, to check the registry side of validation.
struct NeedsUrl;

impl ConnectorFactory for NeedsUrl {
    fn kind(&self) -> &'static str {
        "dir"
    }
    fn validate(&self, path: &str, params: &serde_json::Value) -> Result<(), Vec<ConfigIssue>> {
        match params.get("url") {
            Some(serde_json::Value::String(_)) => Ok(()),
            _ => Err(vec![ConfigIssue::new(
                format!("{path}.url"),
                "expected a url string, found nothing",
            )]),
        }
    }
    fn build(&self, _: &str, _: &serde_json::Value) -> Result<Arc<dyn Connector>, ConfigIssue> {
        Err(ConfigIssue::new("", "not built in this test"))
    }
}

fn issues(e: ConfigError) -> Vec<String> {
    match e {
        ConfigError::Invalid(v) => v.into_iter().map(|i| i.to_string()).collect(),
        other => panic!("expected invalid configuration, found {other}"),
    }
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let c = load_str("[connectors.corp]\nkind = \"dir\"\nurl = \"x\"\n").expect("loads");
    assert_eq!(c.store_url(), "sqlite://.revoked/revoked.db");
    assert_eq!(c.executor.retry.max_attempts, 8);
    assert_eq!(
        c.policy("default")
            .expect("built-in default")
            .retention_days,
        30
    );
    assert!(c.policy("contractors").is_none());
    c.validate(&[&NeedsUrl]).expect("valid");
}

#[test]
fn validation_names_every_bad_key() {
    let c = load_str(
        r#"
        store.url = "mysql://x"
        [executor.retry]
        base_ms = 100
        cap_ms = 10
        [connectors.Corp]
        kind = "dir"
        [connectors.other]
        kind = "nosuch"
        [policies.default]
        connectors = ["missing"]
        manual = [{ id = "laptop", title = "Collect laptop" }, { id = "laptop", title = "" }]
        "#,
    )
    .expect("loads");
    let found = issues(c.validate(&[&NeedsUrl]).expect_err("invalid"));
    assert_eq!(
        found,
        vec![
            "store.url: expected sqlite://PATH or postgres://..., found \"mysql\"",
            "executor.retry.cap_ms: expected at least base_ms (100), found 10",
            "connectors.Corp: expected an instance name of lowercase letters, digits, '-' and '_' other than \"manual\", found \"Corp\"",
            "connectors.Corp.url: expected a url string, found nothing",
            "connectors.other.kind: expected one of dir, found \"nosuch\"",
            "policies.default.connectors: expected names of configured connectors (Corp, other), found \"missing\"",
            "policies.default.manual[1].id: expected a unique id, found \"laptop\" twice",
            "policies.default.manual[1].title: expected a title, found an empty string",
        ]
    );
}

#[test]
fn unknown_keys_and_wrong_types_name_their_path() {
    let e = load_str("[executor]\nlease_sec = 3\n").expect_err("unknown key");
    let text = e.to_string();
    assert!(
        text.contains("executor") && text.contains("lease_sec"),
        "{text}"
    );
    let e = load_str("[executor]\nconcurrency = \"many\"\n").expect_err("wrong type");
    assert!(e.to_string().contains("executor.concurrency"), "{e}");
}

#[test]
fn secrets_come_from_files_and_never_show_in_debug() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "s3cr3t-value\n").expect("write");
    let c = load_str(&format!(
        "[connectors.corp]\nkind = \"dir\"\nurl = \"x\"\nbind_password_file = {:?}\n",
        secret.display().to_string()
    ))
    .expect("loads");
    let section = &c.connectors["corp"];
    assert_eq!(section.params["bind_password"], "s3cr3t-value");
    assert!(!section.params.contains_key("bind_password_file"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cr3t-value"), "{debug}");

    let missing =
        load_str("[connectors.corp]\nkind = \"dir\"\nbind_password_file = \"/nonexistent/pw\"\n")
            .expect_err("missing secret file");
    assert!(
        missing
            .to_string()
            .starts_with("connectors.corp.bind_password_file: cannot read secret file"),
        "{missing}"
    );

    let s: revoke_config::SecretString = "x".into();
    assert_eq!(s.expose_secret(), "x");
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("revoke.toml");
    std::fs::write(
        &file,
        "[executor]\nconcurrency = 2\n[connectors.corp]\nkind = \"dir\"\nurl = \"from-file\"\n",
    )
    .expect("write");
    std::env::set_var("REVOKE__EXECUTOR__CONCURRENCY", "7");
    std::env::set_var("REVOKE__CONNECTORS__CORP__URL", "from-env");
    let c = load(Some(&file)).expect("loads");
    std::env::remove_var("REVOKE__EXECUTOR__CONCURRENCY");
    std::env::remove_var("REVOKE__CONNECTORS__CORP__URL");
    assert_eq!(c.executor.concurrency, 7);
    assert_eq!(c.connectors["corp"].params["url"], "from-env");
    let e = load(Some(&dir.path().join("absent.toml"))).expect_err("missing file");
    assert!(e.to_string().contains("does not exist"), "{e}");
}
