use std::path::Path;

use crate::Config;
use revoke_core::ConfigIssue;

/// Why configuration could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("{path}: cannot read secret file {file:?}: {error}")]
    SecretFile {
        path: String,
        file: String,
        error: String,
    },
    #[error("{path}: cannot read definition file {file:?}: {error}")]
    DefinitionFile {
        path: String,
        file: String,
        error: String,
    },
    #[error("invalid configuration:\n{}", .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

/// Loads the file (when given), then `REVOKE__SECTION__KEY` variables, then `*_file` secrets.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut b = config::Config::builder();
    if let Some(p) = path {
        if !p.exists() {
            return Err(ConfigError::Load(format!(
                "config file {} does not exist",
                p.display()
            )));
        }
        b = b.add_source(
            config::File::from(p)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    b = b.add_source(
        config::Environment::with_prefix("REVOKE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("protected.accounts")
            .with_list_parse_key("protected.domains"),
    );
    finish(b)
}

/// Loads configuration from TOML text alone (no environment), for tests and embedding.
pub fn load_str(toml: &str) -> Result<Config, ConfigError> {
    finish(
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml)),
    )
}

fn finish(b: config::ConfigBuilder<config::builder::DefaultState>) -> Result<Config, ConfigError> {
    let built = b.build().map_err(|e| ConfigError::Load(e.to_string()))?;
    let mut tree: serde_json::Value = built
        .try_deserialize()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    resolve_secret_files(&mut tree, "")?;
    read_definition_files(&mut tree)?;
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::Invalid(vec![ConfigIssue::new(
            if path == "." { "(top)".into() } else { path },
            e.inner().to_string(),
        )])
    })
}

/// Whether a key holds a secret, whose value may instead come from a `KEY_file`.
pub fn is_secret_key(key: &str) -> bool {
    [
        "password",
        "token",
        "secret",
        "secrets",
        "private_key",
        "secret_access_key",
        "secret_id",
    ]
    .iter()
    .any(|s| key.ends_with(s))
}

/// Whether a key's value may come from a `KEY_file`: every secret, and a certificate (public,
/// but a PEM block is read from a file, as Entra's `certificate_file`).
pub fn reads_from_file(key: &str) -> bool {
    is_secret_key(key) || key.ends_with("certificate")
}

/// The most a connector's `definition_file` may hold (an HTTP connector's definition: a few KiB).
pub const MAX_DEFINITION_FILE_BYTES: u64 = 1024 * 1024;

/// A connector instance may keep its definition in a file (`kind = "http"`:
/// `definition_file = "/etc/revoked/acme.yaml"`): its text is read here, at load, into
/// `definition`, and `definition_file` stays beside it (its extension picks the parser, its name
/// goes in messages), so the connector's validation stays pure. The file is no secret: secrets stay
/// in revoked.toml's `*_file` keys.
fn read_definition_files(tree: &mut serde_json::Value) -> Result<(), ConfigError> {
    let Some(serde_json::Value::Object(connectors)) = tree.get_mut("connectors") else {
        return Ok(());
    };
    for (name, section) in connectors.iter_mut() {
        let serde_json::Value::Object(map) = section else {
            continue;
        };
        let Some(file) = map.get("definition_file") else {
            continue;
        };
        let path = format!("connectors.{name}.definition_file");
        let serde_json::Value::String(file) = file.clone() else {
            return Err(ConfigError::Invalid(vec![ConfigIssue::new(
                path,
                "expected a file path string",
            )]));
        };
        if map.contains_key("definition") {
            return Err(ConfigError::Invalid(vec![ConfigIssue::new(
                path,
                "expected either definition or definition_file, found both",
            )]));
        }
        let unreadable = |error: String| ConfigError::DefinitionFile {
            path: path.clone(),
            file: file.clone(),
            error,
        };
        let len = std::fs::metadata(&file)
            .map_err(|e| unreadable(e.to_string()))?
            .len();
        if len > MAX_DEFINITION_FILE_BYTES {
            return Err(unreadable(format!(
                "{len} bytes, more than the {MAX_DEFINITION_FILE_BYTES} a definition may have"
            )));
        }
        let text = std::fs::read_to_string(&file).map_err(|e| unreadable(e.to_string()))?;
        map.insert("definition".into(), serde_json::Value::String(text));
    }
    Ok(())
}

/// `store.url`: a Postgres URL holds the database password, so it may come from `store.url_file`
/// (a systemd credential, a mounted Kubernetes Secret) like a secret. Only there: a `url` elsewhere
/// is no secret and an `url_file` there stays an unknown key.
fn is_store_url(path: &str, key: &str) -> bool {
    path == "store" && key == "url"
}

/// Replaces every `KEY_file = PATH` of a key [`reads_from_file`] (and `store.url_file`) by `KEY = <file contents without
/// trailing newline>`.
fn resolve_secret_files(v: &mut serde_json::Value, path: &str) -> Result<(), ConfigError> {
    let serde_json::Value::Object(map) = v else {
        return Ok(());
    };
    let file_keys: Vec<String> = map
        .keys()
        .filter(|k| {
            k.strip_suffix("_file")
                .is_some_and(|key| reads_from_file(key) || is_store_url(path, key))
        })
        .cloned()
        .collect();
    for fk in file_keys {
        let key = fk.trim_end_matches("_file").to_string();
        let full = if path.is_empty() {
            fk.clone()
        } else {
            format!("{path}.{fk}")
        };
        let Some(serde_json::Value::String(file)) = map.remove(&fk) else {
            return Err(ConfigError::Invalid(vec![ConfigIssue::new(
                full,
                "expected a file path string",
            )]));
        };
        let text = std::fs::read_to_string(&file).map_err(|e| ConfigError::SecretFile {
            path: full.clone(),
            file: file.clone(),
            error: e.to_string(),
        })?;
        if map.contains_key(&key) {
            return Err(ConfigError::Invalid(vec![ConfigIssue::new(
                full,
                format!("expected either {key} or {fk}, found both"),
            )]));
        }
        map.insert(
            key,
            serde_json::Value::String(text.trim_end_matches(['\n', '\r']).to_string()),
        );
    }
    for (k, child) in map.iter_mut() {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        resolve_secret_files(child, &p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_secret_key, reads_from_file};

    #[test]
    fn secret_keys_may_come_from_files() {
        for k in [
            "bind_password",
            "token",
            "session_token",
            "private_key",
            "secret_access_key",
            "secret_id",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["access_key_id", "url", "owner_tag"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn a_certificate_may_come_from_a_file_and_is_no_secret() {
        assert!(reads_from_file("certificate"));
        assert!(!is_secret_key("certificate"));
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, format!("{pem}\n")).expect("write");
        let cfg = crate::load_str(&format!(
            "[connectors.corp-entra]\nkind = \"entra\"\ncertificate_file = {:?}\n",
            path.display().to_string()
        ))
        .expect("config");
        let section = &cfg.connectors["corp-entra"];
        assert_eq!(section.params["certificate"], pem);
        assert!(!section.params.contains_key("certificate_file"));
    }

    #[test]
    fn a_connector_s_definition_file_is_read_at_load_and_named_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acme.yaml");
        std::fs::write(&path, "system: Acme\nbase_url: https://acme.example\n").expect("write");
        let file = path.display().to_string();
        let cfg = crate::load_str(&format!(
            "[connectors.acme]\nkind = \"http\"\ndefinition_file = {file:?}\n"
        ))
        .expect("config");
        let section = &cfg.connectors["acme"];
        assert_eq!(
            section.params["definition"],
            "system: Acme\nbase_url: https://acme.example\n"
        );
        assert_eq!(section.params["definition_file"], file.as_str());

        let missing = dir.path().join("gone.yaml").display().to_string();
        let err = crate::load_str(&format!(
            "[connectors.acme]\nkind = \"http\"\ndefinition_file = {missing:?}\n"
        ))
        .expect_err("a missing file");
        let text = err.to_string();
        assert!(
            text.starts_with("connectors.acme.definition_file: cannot read definition file"),
            "{text}"
        );

        let big = dir.path().join("big.yaml");
        std::fs::write(
            &big,
            vec![b'#'; (super::MAX_DEFINITION_FILE_BYTES + 1) as usize],
        )
        .expect("write");
        let err = crate::load_str(&format!(
            "[connectors.acme]\nkind = \"http\"\ndefinition_file = {:?}\n",
            big.display().to_string()
        ))
        .expect_err("too big");
        assert!(err.to_string().contains("more than the"), "{err}");

        let both = crate::load_str(&format!(
            "[connectors.acme]\nkind = \"http\"\ndefinition = \"x\"\ndefinition_file = {file:?}\n"
        ));
        assert!(both.is_err_and(|e| e.to_string().contains("found both")));
    }

    #[test]
    fn the_store_url_may_come_from_a_file_and_only_the_store_s() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store-url");
        let url = "postgres://revoked:p%40ss@db.internal:5432/revoked";
        std::fs::write(&path, format!("{url}\n")).expect("write");
        let file = path.display().to_string();
        let cfg = crate::load_str(&format!(
            "[store]\nurl_file = {file:?}\n\n[connectors.app]\nkind = \"scim\"\nurl_file = {file:?}\n"
        ))
        .expect("config");
        assert_eq!(cfg.store.url.as_deref(), Some(url));
        // A connector's `url` is no secret: its `url_file` is left as written, for the
        // connector's own validation to refuse as an unknown key.
        let section = &cfg.connectors["app"];
        assert_eq!(section.params["url_file"], file.as_str());
        assert!(!section.params.contains_key("url"));

        let both = crate::load_str(&format!(
            "[store]\nurl = \"sqlite:///x.db\"\nurl_file = {file:?}\n"
        ));
        assert!(
            both.as_ref()
                .is_err_and(|e| e.to_string().contains("store.url_file")),
            "{both:?}"
        );
    }
}
