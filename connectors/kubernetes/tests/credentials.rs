//! The connector's own credentials and TLS: the Kubernetes stand-in behind a TLS front
//! (tokio-rustls) with throwaway CAs made by the openssl CLI; `ca_file` honoured (a server
//! certificate from another CA refused as `tls_untrusted`), a client certificate accepted in
//! place of a token (and its absence refused as `tls_refused`), ExecCredential plugins (a small
//! shell script: run once while its token is valid, again after expiry or a 401), a rotated
//! `token_path` read again, and the client-side rate budget.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use revoke_connector_kubernetes::{validate, KubernetesConfig, KubernetesConnector};
use revoke_core::{Connector, ErrorClass, Subject};
use revoke_testkit::kube::user;
use revoke_testkit::KubeStandin;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde_json::{json, Value};

const K8S: &str = "prod-k8s";

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed to make test certificates (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name.pem`/`name.key` in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf `name.pem`/`name.key` signed by CA `by`: a server for 127.0.0.1, or a client.
fn leaf(dir: &Path, name: &str, by: &str, server: bool) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    let ext = if server {
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
    } else {
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    };
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext written");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{by}.pem"),
            "-CAkey",
            &format!("{by}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// The cluster CA, another CA, the API server's certificate from each, a client certificate
/// from the cluster CA and one from the other.
fn pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ca(d, "cluster-ca");
    ca(d, "other-ca");
    leaf(d, "apiserver", "cluster-ca", true);
    leaf(d, "impostor", "other-ca", true);
    leaf(d, "revoked", "cluster-ca", false);
    leaf(d, "stranger", "other-ca", false);
    dir
}

/// A TLS front on a free 127.0.0.1 port passing every connection to the stand-in; with
/// `client_ca` a client certificate from it is required (the x509 authenticator).
struct Front {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Front {
    async fn start(backend: SocketAddr, dir: &Path, server: &str, client_ca: Option<&str>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = CertificateDer::pem_file_iter(dir.join(format!("{server}.pem")))
            .expect("cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("cert");
        let key = PrivateKeyDer::from_pem_file(dir.join(format!("{server}.key"))).expect("key");
        let b = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let b = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(dir.join(format!("{ca}.pem"))).expect("ca") {
                    roots.add(c.expect("ca")).expect("ca added");
                }
                b.with_client_cert_verifier(
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("verifier"),
                )
            }
            None => b.with_no_client_auth(),
        };
        let cfg = b.with_single_cert(certs, key).expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).into_fallible().await {
                        Ok(tls) => tls,
                        Err((_, mut tcp)) => {
                            // The alert is written. Under TLS 1.3 the client has sent its
                            // request already; closing with it unread would be a reset that can
                            // overtake the alert, so read to the end first (as a lingering close).
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let _ = tcp.shutdown().await;
                            let mut buf = [0u8; 4096];
                            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                            })
                            .await;
                            return;
                        }
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Front { addr, task }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }
}

fn connector(v: Value) -> KubernetesConnector {
    if let Err(issues) = validate("connectors.prod-k8s", &v) {
        panic!("config should be valid: {issues:?}");
    }
    KubernetesConnector::new(K8S, KubernetesConfig::from_value(&v).expect("config"))
        .expect("connector")
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

fn seeded() -> KubeStandin {
    let k = KubeStandin::start().expect("the stand-in starts");
    k.world(|w| {
        w.cluster_role_binding("ivan-admin", "cluster-admin", &[user("ivan")]);
    });
    k
}

fn ivan() -> Subject {
    Subject::new("ivan")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_is_the_only_root_and_another_cas_server_is_refused_as_untrusted() {
    let pki = pki();
    let d = pki.path();
    let k = seeded();
    let real = Front::start(k.addr(), d, "apiserver", None).await;
    let impostor = Front::start(k.addr(), d, "impostor", None).await;

    let trusting = |url: String, ca: &str| {
        connector(json!({
            "api_url": url, "token": k.token(), "ca_file": path(d.join(format!("{ca}.pem"))),
        }))
    };
    let conn = trusting(real.url(), "cluster-ca");
    conn.check()
        .await
        .expect("the cluster CA vouches for the API server");
    let found = conn.discover(&ivan()).await.expect("discovers over https");
    assert_eq!(found.accounts.len(), 1, "{found:?}");
    let reached = k.requests().len();

    // A server certificate from another CA: refused before any request, not retried.
    for (url, ca) in [(impostor.url(), "cluster-ca"), (real.url(), "other-ca")] {
        let e = trusting(url.clone(), ca)
            .check()
            .await
            .expect_err("an untrusted server is refused");
        assert_eq!(e.code, "tls_untrusted", "{e:?}");
        assert_eq!(e.class, ErrorClass::Auth, "{e:?}");
        assert!(e.message.contains("not trusted"), "{e}");
        assert!(!e.message.contains(&k.token()), "{e}");
    }
    // Without ca_file the system's roots hold no throwaway CA either.
    let e = connector(json!({"api_url": real.url(), "token": k.token()}))
        .check()
        .await
        .expect_err("a private CA is not among the system's roots");
    assert_eq!(e.code, "tls_untrusted", "{e:?}");
    assert_eq!(
        k.requests().len(),
        reached,
        "no refused handshake reached the API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_authenticates_in_place_of_a_token_and_its_absence_is_refused() {
    let pki = pki();
    let d = pki.path();
    let k = seeded();
    k.trust_client_certificates();
    let front = Front::start(k.addr(), d, "apiserver", Some("cluster-ca")).await;
    let with_cert = |name: &str| {
        connector(json!({
            "api_url": front.url(), "ca_file": path(d.join("cluster-ca.pem")),
            // what client_certificate_file becomes once the config layer has read it
            "client_certificate": std::fs::read_to_string(d.join(format!("{name}.pem"))).expect("pem"),
            "client_key_file": path(d.join(format!("{name}.key"))),
        }))
    };
    let conn = with_cert("revoked");
    let found = conn
        .discover(&ivan())
        .await
        .expect("authenticated by certificate");
    assert_eq!(found.accounts.len(), 1, "{found:?}");
    let reqs = k.requests();
    assert!(!reqs.is_empty());
    assert!(
        reqs.iter().all(|r| !r.authorization),
        "no bearer token was sent: {reqs:?}"
    );
    let reached = reqs.len();

    // A certificate from another CA, or none (a token alone): the handshake is refused.
    for conn in [
        with_cert("stranger"),
        connector(json!({
            "api_url": front.url(), "token": k.token(),
            "ca_file": path(d.join("cluster-ca.pem")),
        })),
    ] {
        let e = conn.check().await.expect_err("refused in the handshake");
        assert_eq!(e.code, "tls_refused", "{e:?}");
        assert_eq!(e.class, ErrorClass::Auth, "{e:?}");
    }
    assert_eq!(
        k.requests().len(),
        reached,
        "nothing refused reached the API"
    );

    // A key that does not parse is refused when the connector is built.
    std::fs::write(d.join("bad.key"), "not a key").expect("written");
    let mut v = json!({
        "api_url": front.url(),
        "client_certificate": std::fs::read_to_string(d.join("revoked.pem")).expect("pem"),
        "client_key_file": path(d.join("bad.key")),
    });
    let e = KubernetesConnector::new(K8S, KubernetesConfig::from_value(&v).expect("config"))
        .expect_err("a bad key is refused");
    assert!(e.contains("client_key_file"), "{e}");
    v["client_certificate"] = json!("not a certificate");
    v["client_key_file"] = json!(path(d.join("revoked.key")));
    let e = KubernetesConnector::new(K8S, KubernetesConfig::from_value(&v).expect("config"))
        .expect_err("no certificate is refused");
    assert!(e.contains("client_certificate"), "{e}");
}

const PLUGIN: &str = r#"#!/bin/sh
dir="$1"
echo run >> "$dir/runs"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$dir/exec-info"
printf '%s' "$CLUSTER_NAME" > "$dir/env-seen"
if [ -f "$dir/fail" ]; then echo "the SSO session has expired: run aws sso login" >&2; exit 1; fi
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}' "$(cat "$dir/token")" "$(cat "$dir/expiry")"
"#;

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_plugins_token_is_kept_until_it_expires_and_fetched_again_after_a_401() {
    let k = seeded();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("plugin.sh"), PLUGIN).expect("plugin");
    std::fs::write(d.join("token"), k.token()).expect("token");
    std::fs::write(d.join("expiry"), "2999-01-01T00:00:00Z").expect("expiry");
    let conn = connector(json!({
        "api_url": k.url(), "qps": 0,
        "exec_command": ["sh", path(d.join("plugin.sh")), path(d.to_path_buf())],
        "exec_env": {"CLUSTER_NAME": "prod"},
    }));
    for _ in 0..5 {
        conn.check().await.expect("the plugin's token is accepted");
    }
    assert_eq!(runs(d), 1, "a valid token is kept");
    assert_eq!(conn.credential_fetches(), 1);
    let info: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("exec-info")).expect("exec info written"),
    )
    .expect("KUBERNETES_EXEC_INFO is json");
    assert_eq!(
        info,
        json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
               "spec": {"interactive": false}})
    );
    assert_eq!(
        std::fs::read_to_string(d.join("env-seen")).expect("env"),
        "prod"
    );

    // The API server stops taking the token (it expired early, or was revoked): the call that
    // used the cached one is retryable, and the next one runs the plugin again.
    k.set_token("rotated-token-2");
    std::fs::write(d.join("token"), "rotated-token-2").expect("token");
    let e = conn.check().await.expect_err("401 to the cached token");
    assert_eq!(e.code, "credential_expired", "{e:?}");
    assert!(e.is_retryable(), "{e:?}");
    conn.check()
        .await
        .expect("the plugin's new token is accepted");
    assert_eq!(runs(d), 2);

    // A token the plugin just gave that is refused is an auth error, not a loop.
    k.set_token("rotated-token-3");
    let e = conn.check().await.expect_err("401 to the cached token");
    assert_eq!(e.code, "credential_expired", "{e:?}");
    let e = conn.check().await.expect_err("401 to a fresh token");
    assert_eq!(
        (e.code.as_str(), &e.class),
        ("unauthorized", &ErrorClass::Auth)
    );
    assert_eq!(runs(d), 3);

    // An expiry in the past: the plugin runs for every call.
    std::fs::write(d.join("token"), "rotated-token-3").expect("token");
    std::fs::write(d.join("expiry"), "2001-01-01T00:00:00Z").expect("expiry");
    let before = runs(d);
    for _ in 0..3 {
        conn.check().await.expect("accepted");
    }
    assert_eq!(runs(d) - before, 3, "an expired token is never reused");

    // A failing plugin: an auth error naming it and its stderr; nothing is sent.
    std::fs::write(d.join("fail"), "").expect("fail");
    let sent = k.requests().len();
    let e = conn.check().await.expect_err("the plugin failed");
    assert_eq!(
        (e.code.as_str(), &e.class),
        ("exec_plugin", &ErrorClass::Auth)
    );
    assert!(e.message.contains("aws sso login"), "{e}");
    assert_eq!(k.requests().len(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_is_read_again_after_a_401() {
    let k = seeded();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{}\n", k.token())).expect("token");
    let conn = connector(json!({"api_url": k.url(), "token_path": path(file.clone()), "qps": 0}));
    for _ in 0..3 {
        conn.check().await.expect("accepted");
    }
    assert_eq!(conn.credential_fetches(), 1, "read once a minute at most");

    // kubelet rewrites the projected token; the API server stops taking the old one.
    k.set_token("projected-2");
    std::fs::write(&file, "projected-2\n").expect("token");
    let e = conn.check().await.expect_err("401 to the copy in hand");
    assert_eq!(e.code, "credential_expired", "{e:?}");
    assert!(e.is_retryable());
    conn.check().await.expect("the rewritten file is read");
    assert_eq!(conn.credential_fetches(), 2);

    // A file that is gone is an auth error naming it.
    k.set_token("projected-3");
    std::fs::remove_file(&file).expect("removed");
    let _ = conn.check().await;
    let e = conn.check().await.expect_err("no file");
    assert_eq!(e.code, "token_file", "{e:?}");
    assert!(e.message.contains("cannot read the token file"), "{e}");
}

#[test]
fn one_credential_and_a_certificate_only_with_its_key() {
    let issues = |v: Value| match validate("connectors.k8s", &v) {
        Ok(()) => String::new(),
        Err(e) => e
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let url = "https://k8s.example.org:6443";
    assert!(issues(json!({"api_url": url})).contains("expected a credential"));
    assert!(
        issues(json!({"api_url": url, "token": "t", "exec_command": ["aws"]}))
            .contains("connectors.k8s.exec_command: expected one bearer credential")
    );
    assert!(issues(json!({"api_url": url, "client_certificate": "PEM"}))
        .contains("connectors.k8s.client_key_file: expected client_key_file"));
    assert!(issues(json!({"api_url": url, "exec_command": []})).contains("found no program"));
    assert!(
        issues(json!({"api_url": url, "token": "t", "exec_env": {"A": "b"}}))
            .contains("exec_env only beside exec_command")
    );
    assert!(
        issues(json!({"api_url": url, "token": "t", "qps": 5, "burst": 0}))
            .contains("connectors.k8s.burst")
    );
    for ok in [
        json!({"api_url": url, "token": "t"}),
        json!({"api_url": url, "token_path": "/var/run/secrets/kubernetes.io/serviceaccount/token"}),
        json!({"api_url": url, "exec_command": ["aws", "eks", "get-token"], "exec_env": {"AWS_PROFILE": "x"}}),
        json!({"api_url": url, "client_certificate": "PEM", "client_key_file": "/k.pem"}),
        json!({"api_url": url, "token": "t", "client_certificate": "PEM", "client_key_file": "/k.pem", "qps": 0}),
    ] {
        assert_eq!(issues(ok.clone()), "", "{ok}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_budget_is_shared_by_every_caller_of_an_instance() {
    let k = seeded();
    // 1 call a second, no burst: 5 concurrent jobs reserve 5 turns, waiting at most 0 + 1 + 2 +
    // 3 + 4 seconds (the time the calls take meanwhile only shortens the waits).
    let conn = Arc::new(connector(
        json!({"api_url": k.url(), "token": k.token(), "qps": 1, "burst": 1}),
    ));
    let jobs: Vec<_> = (0..5)
        .map(|_| {
            let c = conn.clone();
            tokio::spawn(async move { c.check().await })
        })
        .collect();
    for j in jobs {
        j.await.expect("joined").expect("accepted");
    }
    assert_eq!(k.requests().len(), 5);
    let waited = conn.budget_waited();
    assert!(
        waited > Duration::ZERO && waited <= Duration::from_secs(10),
        "waited {waited:?}"
    );
    // The console's connectors page says it in words, with the time waited so far.
    let budget = conn.rate_budget().expect("a budget").summary;
    assert!(
        budget.starts_with("at most 1 requests a second, bursts of 1; calls waited ")
            && !budget.contains("waited 0.0 s"),
        "{budget}"
    );
    let off = connector(json!({"api_url": k.url(), "token": k.token(), "qps": 0}));
    assert!(off.rate_budget().is_none(), "qps = 0: no budget of its own");
}
