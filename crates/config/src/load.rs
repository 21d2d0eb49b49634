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
    ]
    .iter()
    .any(|s| key.ends_with(s))
}

/// Replaces every `SECRET_file = PATH` by `SECRET = <file contents without trailing newline>`.
fn resolve_secret_files(v: &mut serde_json::Value, path: &str) -> Result<(), ConfigError> {
    let serde_json::Value::Object(map) = v else {
        return Ok(());
    };
    let file_keys: Vec<String> = map
        .keys()
        .filter(|k| k.strip_suffix("_file").is_some_and(is_secret_key))
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
    use super::is_secret_key;

    #[test]
    fn secret_keys_may_come_from_files() {
        for k in [
            "bind_password",
            "token",
            "session_token",
            "private_key",
            "secret_access_key",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["access_key_id", "url", "owner_tag"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
