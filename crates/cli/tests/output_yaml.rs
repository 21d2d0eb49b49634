//! `-o yaml` says the same value as `-o json`: read back by a YAML 1.2 reader (serde-saphyr) and
//! by a YAML 1.1 one (PyYAML's safe_load, from tests/python/.venv), it equals the JSON, also for
//! strings a YAML reader would take for something else (`no`, `on`, `0123`, `1e3`, a date, a
//! leading `*`, `&` or `!`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Strings that plain YAML would mistype or refuse; each goes through import as an event id and
/// a reason, so `jobs` and `import` print them back.
const TRICKY: &[&str] = &[
    "no",
    "on",
    "off",
    "yes",
    "y",
    "n",
    "0123",
    "1e3",
    "0x1F",
    "0o17",
    "+1",
    ".5",
    "1_000",
    ".inf",
    "2026-12-05",
    "2026-12-05T10:00:00Z",
    "12:30:00",
    "~",
    "null",
    "true",
    "*alias",
    "&anchor",
    "!tag",
    "- dash",
    "key: value",
    "# not a comment",
    "---",
    "<<",
    "=",
    "'single' and \"double\"",
    "  padded  ",
    "tab\there",
    "line one\nline two",
    "line one\nline two\n",
    "ünïcödé, 日本語",
    "a long reason that runs well past eighty characters so that a folding writer would be tempted to fold it",
];

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("revoke.toml");
    std::fs::write(
        &path,
        format!("data_dir = \"{}\"\n", dir.join("data").display()),
    )
    .expect("write config");
    path
}

fn ctl(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_revokectl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("REVOKE_SERVER")
        .env_remove("RUST_LOG")
        .output()
        .expect("revokectl runs");
    assert!(
        out.status.success(),
        "revokectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The YAML read by serde-saphyr (YAML 1.2), one value per document.
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("not YAML ({e}): {text}"))
}

/// The venv's Python, where scripts/lib.sh made it (PyYAML comes with moto).
fn python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/.venv/bin/python");
    let ok = Command::new(&p)
        .args(["-c", "import yaml"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(p)
}

/// The YAML read by PyYAML's safe_load_all (YAML 1.1 types: `no` is false, `0123` octal, a
/// date a date), as JSON; a value JSON cannot say (a date) fails the test.
fn pyyaml_docs(python: &Path, text: &str) -> Vec<Value> {
    let mut child = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml\nprint(json.dumps(list(yaml.safe_load_all(sys.stdin.read()))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write yaml");
    }
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "PyYAML could not read it as JSON values: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    match json(&String::from_utf8_lossy(&out.stdout)) {
        Value::Array(docs) => docs,
        other => panic!("expected a list of documents, found {other}"),
    }
}

/// Both readers read `yaml` as the one value `expected`.
fn assert_same(what: &str, expected: &Value, yaml: &str, python: Option<&Path>) {
    let docs = yaml_docs(yaml);
    assert_eq!(docs.len(), 1, "{what}: expected one document:\n{yaml}");
    assert_eq!(&docs[0], expected, "{what}: serde-saphyr reads\n{yaml}");
    if let Some(py) = python {
        let docs = pyyaml_docs(py, yaml);
        assert_eq!(docs.len(), 1, "{what}: PyYAML found several documents");
        assert_eq!(&docs[0], expected, "{what}: PyYAML reads\n{yaml}");
    }
}

#[test]
fn yaml_reads_back_as_the_json_for_strings_yaml_would_mistype() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let python = python();
    if python.is_none() {
        eprintln!("tests/python/.venv with PyYAML is missing: only the YAML 1.2 reader checks");
    }
    let file = dir.path().join("leavers.jsonl");
    let lines: Vec<String> = TRICKY
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({
                "username": format!("user{i}"),
                "event_id": s,
                "reason": s,
                "department": s,
            })
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write import file");
    let file = file.to_str().expect("utf-8");

    let first = json(&ctl(&cfg, &["import", file, "-o", "json"]));
    assert_eq!(first.as_array().map(Vec::len), Some(TRICKY.len()));
    // Importing again adds nothing: the same answer (every line a duplicate) as JSON and YAML.
    let again_json = json(&ctl(&cfg, &["import", file, "-o", "json"]));
    let again_yaml = ctl(&cfg, &["import", file, "-o", "yaml"]);
    assert_same("import", &again_json, &again_yaml, python.as_deref());

    let jobs_json = json(&ctl(&cfg, &["jobs", "-o", "json"]));
    let jobs_yaml = ctl(&cfg, &["jobs", "-o", "yaml"]);
    assert_same("jobs", &jobs_json, &jobs_yaml, python.as_deref());
    // The strings came through as strings, each of them.
    let reasons: Vec<&str> = jobs_json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|j| j["reason"].as_str())
        .collect();
    for s in TRICKY {
        assert!(
            reasons.contains(s) || reasons.contains(&s.trim()),
            "expected the reason {s:?} among {reasons:?}"
        );
    }
    // And the text quotes them: a plain `no` would be a boolean to a YAML 1.1 reader.
    for line in jobs_yaml.lines() {
        let value = line.split_once(": ").map_or("", |(_, v)| v);
        assert!(
            !["no", "on", "0123", "1e3", "2026-12-05"].contains(&value),
            "unquoted: {line}"
        );
    }

    for args in [
        ["batches", "--all"].as_slice(),
        ["jobs", "--state", "scheduled", "--limit", "3"].as_slice(),
    ] {
        let j = json(&ctl(&cfg, &[args, &["-o", "json"]].concat()));
        let y = ctl(&cfg, &[args, &["-o", "yaml"]].concat());
        assert_same(&args.join(" "), &j, &y, python.as_deref());
    }
}

#[test]
fn token_new_yaml_keeps_the_config_block_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let yaml = ctl(
        &cfg,
        &[
            "token", "new", "--name", "ci", "--scope", "read", "-o", "yaml",
        ],
    );
    let docs = yaml_docs(&yaml);
    let v = &docs[0];
    let token = v["token"].as_str().expect("a token");
    let sha = v["sha256"].as_str().expect("a hash");
    assert_eq!(
        v["toml"].as_str(),
        Some(format!("[api.tokens.ci]\nsha256 = \"{sha}\"\nscope = \"read\"\n").as_str()),
        "{yaml}"
    );
    assert!(token.starts_with("rvk_"), "{yaml}");
    if let Some(py) = python() {
        assert_eq!(&pyyaml_docs(&py, &yaml)[0], v, "{yaml}");
    }
}

/// Apply, show, status and evidence of a real job (slapd): the applied results as a YAML stream
/// (a document per action, like `jsonl`), the recorded job as the JSON.
#[test]
fn apply_streams_yaml_documents_and_a_recorded_job_reads_back_as_the_json() {
    let env = common::Env::new(
        r#"group_placeholder_dn = "cn=nobody,ou=people,dc=example,dc=org""#,
        "",
    );
    let python = python();
    let applied = env
        .ctl(&["apply", "--user", "alice", "--auto-approve", "-o", "yaml"])
        .ok();
    assert!(
        applied.stdout.starts_with("---\n"),
        "a YAML stream begins each document with ---:\n{}",
        applied.stdout
    );
    let docs = yaml_docs(&applied.stdout);
    assert!(docs.len() >= 3, "{}", applied.stdout);
    for d in &docs {
        assert!(
            d["action_id"].is_string() && d["outcome"].is_string(),
            "{d}"
        );
    }
    if let Some(py) = &python {
        assert_eq!(pyyaml_docs(py, &applied.stdout), docs);
    }
    let job = docs[0]["job_id"].as_str().expect("a job id").to_string();
    let results: Vec<Value> = env.ctl(&["results", &job]).ok().json_lines();
    let mut streamed: Vec<&Value> = docs.iter().collect();
    streamed.sort_by_key(|d| d["action_id"].as_str().unwrap_or("").to_string());
    let mut recorded: Vec<&Value> = results.iter().collect();
    recorded.sort_by_key(|d| d["action_id"].as_str().unwrap_or("").to_string());
    assert_eq!(
        streamed.iter().map(|d| &d["action_id"]).collect::<Vec<_>>(),
        recorded.iter().map(|d| &d["action_id"]).collect::<Vec<_>>(),
        "one YAML document per action of the job"
    );

    for args in [
        vec!["show", job.as_str()],
        vec!["status", job.as_str()],
        vec!["status"],
        vec!["evidence", job.as_str()],
    ] {
        let j = json(
            &env.ctl(&[args.as_slice(), &["-o", "json"]].concat())
                .ok()
                .stdout,
        );
        let y = env
            .ctl(&[args.as_slice(), &["-o", "yaml"]].concat())
            .ok()
            .stdout;
        let mut j = j;
        let mut y_value = yaml_docs(&y).remove(0);
        // The evidence says when it was made: the one field two exports differ in.
        for v in [&mut j, &mut y_value] {
            if let Some(o) = v.as_object_mut() {
                o.remove("generated_at");
            }
        }
        assert_eq!(y_value, j, "{args:?}:\n{y}");
        if let Some(py) = &python {
            let mut p = pyyaml_docs(py, &y).remove(0);
            if let Some(o) = p.as_object_mut() {
                o.remove("generated_at");
            }
            assert_eq!(p, j, "{args:?} (PyYAML):\n{y}");
        }
    }

    // A saved plan, shown as JSON and as YAML.
    let plan_file = env.path("bob.plan");
    env.ctl(&[
        "plan",
        "--user",
        "bob",
        "-out",
        plan_file.to_str().expect("utf-8"),
        "-o",
        "json",
    ])
    .ok();
    let p = plan_file.to_str().expect("utf-8");
    let j = json(&env.ctl(&["show", p, "-o", "json"]).ok().stdout);
    let y = env.ctl(&["show", p, "-o", "yaml"]).ok().stdout;
    assert_same("show PLAN", &j, &y, python.as_deref());
}
