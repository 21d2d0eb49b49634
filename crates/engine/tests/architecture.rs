//! Architecture invariants that a test can check: core and engine name no vendor SDK, HTTP
//! client or SQL driver (docs/ARCHITECTURE.md).

const FORBIDDEN: &[&str] = &[
    "octocrab",
    "aws-",
    "ldap3",
    "reqwest",
    "hyper",
    "sqlx",
    "axum",
    "revoke-connector-",
];

fn direct_dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = line.split_once(['=', '.']) {
                if !name.trim().is_empty() && !name.starts_with('#') {
                    out.push(name.trim().to_string());
                }
            }
        }
    }
    out
}

#[test]
fn core_and_engine_name_no_vendor() {
    for crate_dir in ["../core", "."] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(crate_dir)
            .join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path).expect("manifest");
        let deps = direct_dependencies(&manifest);
        assert!(
            deps.contains(&"serde".to_string()),
            "the parser found the dependencies of {}: {deps:?}",
            path.display()
        );
        let bad: Vec<_> = deps
            .iter()
            .filter(|d| FORBIDDEN.iter().any(|f| d.starts_with(f)))
            .collect();
        assert!(bad.is_empty(), "{} depends on {bad:?}", path.display());
    }
}
