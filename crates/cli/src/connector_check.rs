//! `revokectl connector check FILE`: validates an HTTP connector definition (a recipe or a
//! whole definition, TOML, or YAML for a file ending in .yaml/.yml) without any network, and with `--connect --subject X` dry-runs its
//! discovery read-only against the live system and prints what matched and why, and what a plan
//! would do. Nothing is written anywhere, on the system or locally.

use anyhow::{bail, Context as _};
use revoke_connector_http::{
    check_file_secrets, merged, parse_definition, parse_toml, validate, Definition, HttpConnector,
};
use revoke_core::{Connector, Subject};
use serde_json::Value;

/// The arguments of `connector check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The definition: a recipe (connectors/http/recipes/NAME.toml) or a whole definition
    /// (TOML; YAML when the name ends in .yaml or .yml)
    pub file: std::path::PathBuf,
    /// Also run discovery against the system (read-only); needs --subject, and base_url and
    /// auth in the file (secrets through *_file) or --base-url
    #[arg(long, requires = "subject")]
    pub connect: bool,
    /// The person to look for (a username, an email or an employee id)
    #[arg(long)]
    pub subject: Option<String>,
    /// The person's email, when --subject is not one
    #[arg(long)]
    pub email: Option<String>,
    /// The person's employee id
    #[arg(long)]
    pub employee_id: Option<String>,
    /// The base URL, when the file (a recipe) has none
    #[arg(long)]
    pub base_url: Option<String>,
}

const SECRETS: &[&str] = &["token", "password", "client_secret", "secret"];

/// Replaces each `auth.<secret>_file` by the secret: read from the file when `read`, else a
/// placeholder (validation only looks at the shape).
fn resolve_secret_files(v: &mut Value, read: bool) -> anyhow::Result<()> {
    let Some(auth) = v.get_mut("auth").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for k in SECRETS {
        let fk = format!("{k}_file");
        if let Some(path) = auth.remove(&fk) {
            let Some(path) = path.as_str() else {
                bail!("auth.{fk}: expected a file path");
            };
            let secret = if read {
                std::fs::read_to_string(path)
                    .with_context(|| format!("auth.{fk}: cannot read {path:?}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string()
            } else {
                "(read from the file at run time)".to_string()
            };
            auth.insert((*k).to_string(), Value::String(secret));
        }
    }
    Ok(())
}

pub async fn run(args: CheckArgs) -> anyhow::Result<u8> {
    let path = args.file.display().to_string();
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {path}"))?;
    let yaml = matches!(
        args.file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml")
    );
    let mut v = if yaml {
        parse_definition(&path, &text).map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        parse_toml(&text).map_err(|e| anyhow::anyhow!("{path}: not TOML: {e}"))?
    };
    // Issues are named by their field path inside the file (`resources.user.actions[0].phase`).
    let mut issues = check_file_secrets("", &v);
    resolve_secret_files(&mut v, args.connect)?;
    if let Some(b) = &args.base_url {
        v["base_url"] = Value::String(b.clone());
    }
    let no_base = v.get("base_url").is_none();
    if no_base && !args.connect {
        // A recipe: the instance gives base_url.
        v["base_url"] = Value::String("https://instance.invalid".into());
    }
    if let Err(more) = validate("", &v) {
        issues.extend(more);
    }
    if !issues.is_empty() {
        outln!("{path}: {} problem(s)", issues.len());
        for i in &issues {
            outln!("  - {}: {}", i.path.trim_start_matches('.'), i.message);
        }
        return Ok(1);
    }
    let merged = merged(&path, &v).map_err(|e| anyhow::anyhow!("{e}"))?;
    let def = Definition::from_value(&merged).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    outln!("{path}: a valid definition of {}", def.system);
    if no_base {
        outln!("  base_url: not in the file (the instance gives it)");
    }
    for rn in def.resource_order() {
        let r = &def.resources[rn];
        let within = r
            .within
            .as_deref()
            .map(|p| format!(" (within {p})"))
            .unwrap_or_default();
        outln!(
            "  resource {rn}{within}: {} discovery request(s), {} match rule(s), read by id: {}",
            r.discover.len(),
            r.match_rules.len(),
            if r.read.is_some() {
                "yes"
            } else {
                "no (writes are not read first)"
            }
        );
        for a in &r.actions {
            let after = if a.after.is_empty() {
                String::new()
            } else {
                format!(" after {}", a.after.join(", "))
            };
            outln!("    {} {}{after}", a.phase, a.name);
        }
    }
    if !args.connect {
        return Ok(0);
    }
    let Some(id) = args.subject else {
        bail!("--connect needs --subject");
    };
    let mut subject = Subject::new(&id);
    subject.email = args.email.or_else(|| id.contains('@').then(|| id.clone()));
    subject.employee_id = args.employee_id;
    let conn = HttpConnector::from_params("check", &v).map_err(|issues| {
        anyhow::anyhow!(
            "{}",
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let d = conn
        .discover(&subject)
        .await
        .map_err(|e| anyhow::anyhow!("discovery failed: {e}"))?;
    outln!(
        "discovery of {id} (read-only, {} request(s)): {} account(s)",
        conn.calls(),
        d.accounts.len()
    );
    for a in &d.accounts {
        outln!(
            "  account {} ({} {}): {}",
            a.name,
            a.id_kind,
            a.id,
            a.matched_by
        );
        if !a.identifiers.is_empty() {
            outln!(
                "    answers to: {}",
                a.identifiers.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    for f in &d.findings {
        outln!(
            "  found {} {} ({})",
            f.kind,
            f.target,
            f.attrs.get("matched_by").cloned().unwrap_or_default()
        );
    }
    for n in &d.notes {
        outln!("  note: {n}");
    }
    let proposals = conn.plan(&subject, &d);
    outln!("a plan would hold {} action(s):", proposals.len());
    for p in &proposals {
        outln!(
            "  {} {} {}: {}",
            p.phase.as_str(),
            p.kind.0,
            p.target,
            p.summary
        );
    }
    debug_assert_eq!(conn.mutations(), 0);
    Ok(0)
}
