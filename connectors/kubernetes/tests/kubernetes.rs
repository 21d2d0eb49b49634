//! The Kubernetes connector against the Kubernetes stand-in of crates/testkit: discovery and the
//! plan (snapshot), apply end to end and a rerun with no mutation, verify, 409 races on a shared
//! and on a sole binding converging, a binding re-created after planning, protected accounts,
//! hostile usernames, client certificates as a person's step, API Priority and Fairness 429s,
//! token Secrets read as metadata only, and paging.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use revoke_connector_kubernetes::{
    binding_path, secret_path, validate, KubernetesConfig, KubernetesConnector, BLIND_WRITE,
    DELETE_BINDING, DELETE_SERVICE_ACCOUNT, DELETE_TOKEN_SECRET, METADATA, METADATA_LIST,
    REMOVE_SUBJECT, REOWN_SERVICE_ACCOUNT, ROTATE_CA, UNBIND_SERVICE_ACCOUNT,
};
use revoke_core::{
    Action, ActionId, Connector, ConnectorError, Discovery, ErrorClass, JobId, Journal,
    MemoryJournal, Outcome, Phase, Protected, Subject, Verdict,
};
use revoke_testkit::kube::{group, service_account, user, Res};
use revoke_testkit::KubeStandin;
use serde_json::{json, Value};

const K8S: &str = "prod-k8s";
const IVAN: &str = "oidc:ivan@example.org";

fn config(k: &KubeStandin, extra: Value) -> Value {
    let mut v = json!({
        "kind": "kubernetes",
        "api_url": k.url(),
        "token": k.token(),
        "username_template": "oidc:{email}",
        "owner_annotation": "revoked.dev/owner",
        "group_subjects": ["oidc:platform"],
    });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (key, x) in e {
            m.insert(key.clone(), x.clone());
        }
    }
    v
}

fn connector(k: &KubeStandin, extra: Value) -> Arc<KubernetesConnector> {
    let v = config(k, extra);
    if let Err(issues) = validate("connectors.prod-k8s", &v) {
        panic!("config should be valid: {issues:?}");
    }
    Arc::new(
        KubernetesConnector::new(K8S, KubernetesConfig::from_value(&v).expect("config"))
            .expect("connector"),
    )
}

fn subject(email: &str) -> Subject {
    let mut s = Subject::new(email.split('@').next().unwrap_or(email));
    s.email = Some(email.to_string());
    s
}

/// ivan: cluster-admin alone (`ivan-admin`), view shared with dana (`readers`), edit in `shop`
/// alone and in `ci` shared with a ServiceAccount; the `platform` group's binding; owns the
/// ServiceAccount ci/deployer with two token Secrets (and an Opaque Secret beside them), while
/// ci/builder is dana's.
fn seed(k: &KubeStandin) {
    k.world(|w| {
        w.cluster_role_binding("ivan-admin", "cluster-admin", &[user(IVAN)]);
        w.cluster_role_binding(
            "readers",
            "view",
            &[user(IVAN), user("oidc:dana@example.org")],
        );
        w.cluster_role_binding("platform", "edit", &[group("oidc:platform")]);
        w.role_binding("shop", "ivan-edit", "edit", &[user(IVAN)]);
        w.role_binding(
            "ci",
            "pipeline",
            "edit",
            &[user(IVAN), service_account("ci", "builder")],
        );
        w.role_binding("ci", "dana", "edit", &[user("oidc:dana@example.org")]);
        w.service_account(
            "ci",
            "deployer",
            &[("revoked.dev/owner", "Ivan@example.org")],
        );
        w.service_account(
            "ci",
            "builder",
            &[("revoked.dev/owner", "dana@example.org")],
        );
        w.service_account(
            "ci",
            "ivan-like",
            &[("revoked.dev/owner", "ivan@example.org.evil")],
        );
        w.token_secret("ci", "deployer-token-a", "deployer");
        w.token_secret("ci", "deployer-token-b", "deployer");
        w.token_secret("ci", "builder-token", "builder");
        w.opaque_secret("ci", "deployer-config");
    });
}

fn actions(job: &str, d: &Discovery, conn: &KubernetesConnector, s: &Subject) -> Vec<Action> {
    Action::from_proposals(&JobId(job.to_string()), K8S, d, conn.plan(s, d))
        .expect("the proposals name discovered accounts")
        .into_iter()
        .filter(|a| a.connector == K8S)
        .collect()
}

type Journals = HashMap<ActionId, Arc<MemoryJournal>>;

/// The journal of a later attempt: an earlier one wrote blind, so this one reads first.
async fn later_attempt() -> MemoryJournal {
    let j = MemoryJournal::new();
    j.record(BLIND_WRITE, "an earlier attempt")
        .await
        .expect("journal");
    j
}

/// Applies each action as the executor would: a retryable or rate-limited error is attempted
/// again (up to 5 times), anything else is the action's result.
async fn run(
    conn: &KubernetesConnector,
    all: &[Action],
    journals: &mut Journals,
) -> Vec<(Action, Result<Outcome, ConnectorError>, u32)> {
    let mut out = Vec::new();
    for a in all {
        let j = journals
            .entry(a.id.clone())
            .or_insert_with(|| Arc::new(MemoryJournal::new()))
            .clone();
        let mut attempts = 0;
        let r = loop {
            attempts += 1;
            let r = conn.apply(a, &a.key, j.as_ref()).await;
            match &r {
                Err(e) if e.is_retryable() && attempts < 5 => continue,
                _ => break r,
            }
        };
        out.push((a.clone(), r, attempts));
    }
    out
}

fn subjects_of(k: &KubeStandin, res: Res, ns: &str, name: &str) -> Vec<String> {
    k.world(|w| w.subjects(res, ns, name))
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["kind"].as_str().unwrap_or_default(),
                s["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn exists(k: &KubeStandin, res: Res, ns: &str, name: &str) -> bool {
    k.world(|w| w.get(res, ns, name).is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_plan_snapshot() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    assert!(d.found);
    let plan: Vec<String> = conn
        .plan(&s, &d)
        .iter()
        .map(|p| {
            format!(
                "{:?} {} {} | {} | account {} | after {:?}",
                p.phase,
                p.kind.0,
                p.target,
                p.summary,
                if p.account == IVAN {
                    "ivan"
                } else {
                    "a service account"
                },
                p.after
                    .iter()
                    .map(|(k, t)| format!("{} {t}", k.0))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    // uids are random: the snapshot shows the rest.
    let findings: Vec<String> = d
        .findings
        .iter()
        .map(|f| {
            let attrs: Vec<String> = f
                .attrs
                .iter()
                .filter(|(k, _)| {
                    !k.ends_with("uid")
                        && k.as_str() != "resource_version"
                        && k.as_str() != "subjects"
                })
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{} {} {}", f.kind, f.target, attrs.join(" "))
        })
        .collect();
    let accounts: Vec<Value> = d
        .accounts
        .iter()
        .map(|a| json!({"id_kind": a.id_kind, "name": a.name, "identifiers": a.identifiers, "matched_by": a.matched_by}))
        .collect();
    insta::assert_json_snapshot!(
        "plan_ivan",
        json!({"accounts": accounts, "findings": findings, "notes": d.notes, "plan": plan})
    );
    // dana's ServiceAccount and the look-alike owner are not ivan's.
    assert!(!d
        .findings
        .iter()
        .any(|f| f.target.contains("builder") || f.target.contains("ivan-like")));
    // Someone with no binding and no ServiceAccount is not found.
    let nobody = conn
        .discover(&subject("nobody@example.org"))
        .await
        .expect("discovery");
    assert!(!nobody.found);
    assert!(k.mutations().is_empty(), "planning is read-only");
    // Secrets were read as metadata only, filtered to token Secrets.
    let secret_reads: Vec<_> = k
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/secrets"))
        .collect();
    assert!(!secret_reads.is_empty());
    for r in secret_reads {
        assert_eq!(r.accept, METADATA_LIST, "{r:?}");
        assert!(
            r.query.as_deref().is_some_and(
                |q| q.contains("fieldSelector=type%3Dkubernetes.io%2Fservice-account-token")
            ),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_end_to_end_then_a_rerun_sends_no_mutation_and_verify_confirms() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    assert_eq!(all.len(), 6, "{all:#?}");
    let mut journals = Journals::new();
    for (a, r, _) in run(&conn, &all, &mut journals).await {
        assert_eq!(r, Ok(Outcome::Done), "{} {}", a.kind, a.target);
    }
    assert!(!exists(&k, Res::ClusterRoleBinding, "", "ivan-admin"));
    assert!(!exists(&k, Res::RoleBinding, "shop", "ivan-edit"));
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "readers"),
        ["User:oidc:dana@example.org"]
    );
    assert_eq!(
        subjects_of(&k, Res::RoleBinding, "ci", "pipeline"),
        ["ServiceAccount:builder"]
    );
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "platform"),
        ["Group:oidc:platform"]
    );
    assert!(!exists(&k, Res::Secret, "ci", "deployer-token-a"));
    assert!(!exists(&k, Res::Secret, "ci", "deployer-token-b"));
    assert!(
        exists(&k, Res::Secret, "ci", "deployer-config"),
        "an Opaque Secret is not a token"
    );
    assert!(
        exists(&k, Res::Secret, "ci", "builder-token"),
        "dana's token stays"
    );
    assert!(exists(&k, Res::ServiceAccount, "ci", "deployer"));
    // Every delete carried preconditions; every PUT a resourceVersion and the uid.
    for m in k.mutations() {
        let body: Value = serde_json::from_str(&m.body).expect("json body");
        match m.method.as_str() {
            "DELETE" => {
                assert!(
                    body["preconditions"]["uid"].is_string()
                        && body["preconditions"]["resourceVersion"].is_string(),
                    "{m:?}"
                );
            }
            "PUT" => {
                assert!(
                    body["metadata"]["resourceVersion"].is_string()
                        && body["metadata"]["uid"].is_string(),
                    "{m:?}"
                );
            }
            // A first attempt's subject removal: the pinned uid and the leaver tested first.
            "PATCH" => {
                assert_eq!(m.content_type, "application/json-patch+json", "{m:?}");
                assert_eq!(body[0]["op"], "test", "{m:?}");
                assert_eq!(body[0]["path"], "/metadata/uid", "{m:?}");
                assert_eq!(body[1]["op"], "test", "{m:?}");
                assert_eq!(body[1]["value"]["name"], IVAN, "{m:?}");
                assert_eq!(body[2]["op"], "remove", "{m:?}");
            }
            other => panic!("unexpected {other}: {m:?}"),
        }
    }
    // Every binding write was a first attempt's: one call, no read of the binding first.
    let binding_calls: Vec<String> = k
        .requests()
        .iter()
        .filter(|r| r.path.contains("bindings/"))
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(binding_calls, ["DELETE", "PATCH", "PATCH", "DELETE"]);
    // The Secret was read as metadata only.
    assert!(k
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/secrets/"))
        .all(|r| r.accept == METADATA));
    for a in &all {
        assert_eq!(
            conn.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{}",
            a.target
        );
    }
    // A rerun: every effect holds, nothing is sent.
    k.clear_requests();
    for (a, r, _) in run(&conn, &all, &mut journals).await {
        assert_eq!(r, Ok(Outcome::AlreadyDone), "{} {}", a.kind, a.target);
    }
    assert!(k.mutations().is_empty(), "{:?}", k.mutations());
    // A fresh discovery finds nothing left to do but the ServiceAccount itself.
    let again = conn.discover(&s).await.expect("discovery");
    assert!(conn
        .plan(&s, &again)
        .iter()
        .all(|p| p.kind.0 != DELETE_BINDING
            && p.kind.0 != REMOVE_SUBJECT
            && p.kind.0 != DELETE_TOKEN_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_on_a_shared_binding_is_retried_after_a_fresh_read_and_keeps_the_other_writers_subject(
) {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    let readers = all
        .iter()
        .find(|a| a.target == "clusterrolebinding/readers")
        .expect("readers");
    assert_eq!(readers.kind.0, REMOVE_SUBJECT);
    // A later attempt (it reads first): another client adds carol between the connector's read
    // and its PUT.
    let path = binding_path(None, "readers");
    k.interfere("PUT", &path, |w| {
        w.add_subject(
            Res::ClusterRoleBinding,
            "",
            "readers",
            user("oidc:carol@example.org"),
        )
    });
    let j = later_attempt().await;
    let e = conn
        .apply(readers, &readers.key, &j)
        .await
        .expect_err("a conflict");
    assert_eq!(
        (e.code.as_str(), &e.class),
        ("conflict", &ErrorClass::Retryable { retry_after: None }),
        "{e}"
    );
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "readers"),
        [
            "User:oidc:ivan@example.org",
            "User:oidc:dana@example.org",
            "User:oidc:carol@example.org"
        ],
        "the stale write changed nothing"
    );
    // The executor's next attempt reads again and writes on the fresh version.
    assert_eq!(
        conn.apply(readers, &readers.key, &j).await,
        Ok(Outcome::Done)
    );
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "readers"),
        ["User:oidc:dana@example.org", "User:oidc:carol@example.org"]
    );
    let puts: Vec<_> = k
        .mutations()
        .into_iter()
        .filter(|m| m.path == path)
        .map(|m| m.status)
        .collect();
    assert_eq!(puts, [409, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_added_to_a_sole_binding_after_planning_is_kept_and_only_the_leaver_removed() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    let admin = all
        .iter()
        .find(|a| a.target == "clusterrolebinding/ivan-admin")
        .expect("ivan-admin");
    assert_eq!(admin.kind.0, DELETE_BINDING);
    // After the plan, before apply: erin joins the binding.
    k.world(|w| {
        w.add_subject(
            Res::ClusterRoleBinding,
            "",
            "ivan-admin",
            user("oidc:erin@example.org"),
        )
    });
    // And between the connector's read and its write, frank too: the first write is a 409.
    let path = binding_path(None, "ivan-admin");
    k.interfere("PUT", &path, |w| {
        w.add_subject(
            Res::ClusterRoleBinding,
            "",
            "ivan-admin",
            user("oidc:frank@example.org"),
        )
    });
    let mut journals = Journals::new();
    let out = run(&conn, std::slice::from_ref(admin), &mut journals).await;
    assert_eq!(out[0].1, Ok(Outcome::Done));
    assert_eq!(
        out[0].2, 3,
        "the planned version refused, a conflict after a read, then a fresh read"
    );
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "ivan-admin"),
        ["User:oidc:erin@example.org", "User:oidc:frank@example.org"],
        "the binding is not deleted under erin and frank"
    );
    let writes: Vec<String> = k
        .mutations()
        .iter()
        .map(|m| format!("{} {}", m.method, m.status))
        .collect();
    assert_eq!(
        writes,
        ["DELETE 409", "PUT 409", "PUT 200"],
        "the first attempt's DELETE on the planned resourceVersion changed nothing"
    );
    assert_eq!(
        conn.verify(admin).await.expect("verify"),
        Verdict::Confirmed
    );

    // A sole binding whose version moves between read and DELETE: the precondition refuses.
    let edit = all
        .iter()
        .find(|a| a.target == "rolebinding/shop/ivan-edit")
        .expect("ivan-edit");
    let path = binding_path(Some("shop"), "ivan-edit");
    k.interfere("DELETE", &path, |w| {
        let mut o = w
            .get(Res::RoleBinding, "shop", "ivan-edit")
            .cloned()
            .expect("exists");
        o["metadata"]["labels"] = json!({"touched": "yes"});
        w.update(Res::RoleBinding, "shop", "ivan-edit", o)
            .expect("a label");
    });
    let j = later_attempt().await;
    let e = conn
        .apply(edit, &edit.key, &j)
        .await
        .expect_err("a precondition conflict");
    assert_eq!(e.code, "conflict", "{e}");
    assert!(
        e.message.contains("Precondition failed: ResourceVersion"),
        "{e}"
    );
    assert!(exists(&k, Res::RoleBinding, "shop", "ivan-edit"));
    assert_eq!(conn.apply(edit, &edit.key, &j).await, Ok(Outcome::Done));
    assert!(!exists(&k, Res::RoleBinding, "shop", "ivan-edit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_recreated_after_planning_is_identity_changed_and_nothing_is_sent() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    let new_uid = k.world(|w| w.recreate(Res::ClusterRoleBinding, "", "ivan-admin"));
    let new_secret = k.world(|w| w.recreate(Res::Secret, "ci", "deployer-token-a"));
    k.clear_requests();
    // A first attempt writes without reading, on the pinned uid: the API server refuses it
    // and nothing changes (stale_plan, retryable); the next attempt reads and stops.
    let admin = all
        .iter()
        .find(|a| a.target == "clusterrolebinding/ivan-admin")
        .expect("ivan-admin");
    let e = conn
        .apply(admin, &admin.key, &MemoryJournal::new())
        .await
        .expect_err("the pinned uid is refused");
    assert_eq!(e.code, "stale_plan", "{e}");
    assert!(e.message.contains("Precondition failed: UID"), "{e}");
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "ivan-admin"),
        ["User:oidc:ivan@example.org"],
        "the re-created binding is untouched"
    );
    assert_eq!(
        k.mutations().iter().map(|m| m.status).collect::<Vec<_>>(),
        [409]
    );
    k.clear_requests();
    for a in all.iter().filter(|a| {
        a.target == "clusterrolebinding/ivan-admin" || a.target == "secret/ci/deployer-token-a"
    }) {
        let e = conn
            .apply(a, &a.key, &later_attempt().await)
            .await
            .expect_err("identity changed");
        assert_eq!(e.code, "identity_changed", "{e}");
        assert!(
            e.message.contains(&new_uid) || e.message.contains(&new_secret),
            "{e}"
        );
        assert!(e.message.contains("nothing was sent"), "{e}");
        // The pinned object is gone: verify confirms about it, and judges nothing else.
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
    assert!(k.mutations().is_empty(), "{:?}", k.mutations());
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "ivan-admin"),
        ["User:oidc:ivan@example.org"]
    );
    // An edited plan whose username is not the pinned account's sends nothing either.
    let mut edited = all
        .iter()
        .find(|a| a.target == "clusterrolebinding/readers")
        .expect("readers")
        .clone();
    edited
        .params
        .insert("username".into(), "oidc:dana@example.org".into());
    let e = conn
        .apply(&edited, &edited.key, &MemoryJournal::new())
        .await
        .expect_err("bad action");
    assert_eq!(e.code, "bad_action");
    assert!(k.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_accounts_are_matched_on_every_identifier() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let d = conn
        .discover(&subject("ivan@example.org"))
        .await
        .expect("discovery");
    let ivan = d.account(IVAN).expect("ivan's account");
    let p = Protected::new(["IVAN@example.org"]);
    assert_eq!(
        p.match_account(ivan),
        Some(("ivan@example.org", "IVAN@example.org"))
    );
    let p = Protected::new(["oidc:ivan@example.org"]);
    assert!(p.match_account(ivan).is_some());
    let sa = d
        .accounts
        .iter()
        .find(|a| a.name == "serviceaccount/ci/deployer")
        .expect("the owned ServiceAccount");
    let p = Protected::new(["system:serviceaccount:ci:deployer"]);
    assert!(p.match_account(sa).is_some());
    assert!(p.match_account(ivan).is_none());
    // Each action is on the account it touches, so protecting one leaves the other's alone.
    let s = subject("ivan@example.org");
    for a in conn.plan(&s, &d) {
        let want = if a.kind.0 == DELETE_TOKEN_SECRET {
            sa.id.as_str()
        } else {
            IVAN
        };
        assert_eq!(a.account, want, "{}", a.target);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_usernames_match_nothing_but_themselves() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    k.world(|w| {
        w.cluster_role_binding("star", "view", &[user("oidc:*")]);
        w.cluster_role_binding("dots", "view", &[user("oidc:../x")]);
    });
    let conn = connector(&k, json!({"username_template": "oidc:{id}"}));
    for (id, want) in [
        ("*", Some("clusterrolebinding/star")),
        ("../x", Some("clusterrolebinding/dots")),
        ("ivan", None),
        ("", None),
        (".*", None),
        ("ivan@example.org\u{0}", None),
    ] {
        let d = conn.discover(&Subject::new(id)).await;
        let d = match (id, d) {
            ("", Err(e)) => {
                assert_eq!(e.code, "no_username");
                continue;
            }
            (_, d) => d.expect("discovery"),
        };
        let bindings: Vec<&str> = d
            .findings
            .iter()
            .filter(|f| f.kind.ends_with("role_binding"))
            .map(|f| f.target.as_str())
            .collect();
        assert_eq!(bindings, want.into_iter().collect::<Vec<_>>(), "{id:?}");
    }
    // A case-changed username is another user in Kubernetes (the owner annotation, an email,
    // is matched with case ignored).
    let exact = connector(&k, json!({"username_template": "{id}"}));
    let d = exact
        .discover(&Subject::new("OIDC:Ivan@example.org"))
        .await
        .expect("discovery");
    assert!(!d.found, "{d:?}");
    let d = exact
        .discover(&Subject::new(IVAN))
        .await
        .expect("discovery");
    assert!(d.found);
    // Names from a plan are path segments, encoded or refused.
    let mut a = actions(
        "job-1",
        &conn.discover(&Subject::new("*")).await.expect("d"),
        &conn,
        &Subject::new("*"),
    )
    .pop()
    .expect("an action");
    a.params.insert(
        "name".into(),
        "../../api/v1/namespaces/kube-system/secrets/x".into(),
    );
    k.clear_requests();
    let e = conn
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("refused");
    assert_eq!(e.code, "bad_action", "{e}");
    assert!(k.requests().is_empty());
    assert!(k.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_users_get_a_manual_step_and_no_claim_of_revocation() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(
        &k,
        json!({"certificate_users": true, "username_template": "{username}"}),
    );
    // A certificate user with no binding at all (O=system:masters, say) still gets the step.
    let s = Subject::new("mallory");
    let d = conn.discover(&s).await.expect("discovery");
    assert!(
        d.found,
        "the cluster keeps no list of certificates: every leaver is reported"
    );
    let p = conn.plan(&s, &d);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(
        (p[0].kind.0.as_str(), p[0].phase),
        (ROTATE_CA, Phase::Manual)
    );
    let text = format!("{} {}", p[0].summary, p[0].params["instructions"]);
    for needed in [
        "cannot revoke",
        "rotate the cluster CA",
        "system:masters",
        "expirationSeconds",
    ] {
        assert!(text.contains(needed), "{needed}: {text}");
    }
    assert!(
        !text.contains("revoked the certificate") && !text.contains("certificate was revoked"),
        "{text}"
    );
    // With bindings, the step comes after their removal.
    k.world(|w| w.cluster_role_binding("mallory", "admin", &[user("mallory")]));
    let d = conn.discover(&s).await.expect("discovery");
    let p = conn.plan(&s, &d);
    let manual = p.iter().find(|x| x.phase == Phase::Manual).expect("manual");
    assert_eq!(manual.after.len(), 1);
    assert_eq!(manual.after[0].0 .0, DELETE_BINDING);
    // Without certificate_users no such step is proposed.
    let plain = connector(&k, json!({"username_template": "{username}"}));
    let d = plain.discover(&s).await.expect("discovery");
    assert!(plain.plan(&s, &d).iter().all(|x| x.phase != Phase::Manual));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_priority_and_fairness_429s_are_rate_limited_with_the_servers_wait() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    k.throttle(1, 4);
    let e = conn
        .discover(&subject("ivan@example.org"))
        .await
        .expect_err("throttled");
    assert_eq!(
        e.class,
        ErrorClass::RateLimited {
            retry_after: Duration::from_secs(4)
        },
        "{e}"
    );
    assert_eq!(e.code, "rate_limited");
    // Then it answers again.
    assert!(
        conn.discover(&subject("ivan@example.org"))
            .await
            .expect("discovery")
            .found
    );
    // A write refused by APF sends nothing else and is retried by the executor.
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let a = actions("job-1", &d, &conn, &s)
        .into_iter()
        .next()
        .expect("an action");
    k.throttle(1, 2);
    let e = conn
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("throttled");
    assert!(matches!(e.class, ErrorClass::RateLimited { .. }), "{e}");
    assert_eq!(
        conn.apply(&a, &a.key, &MemoryJournal::new()).await,
        Ok(Outcome::Done)
    );
    // A wrong token is an auth error.
    let mut bad = config(&k, json!({}));
    bad["token"] = json!("wrong");
    let conn = KubernetesConnector::new(K8S, KubernetesConfig::from_value(&bad).expect("config"))
        .expect("connector");
    let e = conn.check().await.expect_err("unauthorized");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Auth, "unauthorized")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_read_page_by_page() {
    let k = KubeStandin::start().expect("the stand-in starts");
    k.world(|w| {
        for i in 0..1_203 {
            w.role_binding(
                &format!("ns{:04}", i),
                "team",
                "edit",
                &[user("oidc:someone@example.org")],
            );
        }
        w.role_binding("zz-last", "ivan", "view", &[user(IVAN)]);
    });
    let conn = connector(&k, json!({}));
    let d = conn
        .discover(&subject("ivan@example.org"))
        .await
        .expect("discovery");
    assert!(
        d.findings
            .iter()
            .any(|f| f.target == "rolebinding/zz-last/ivan"),
        "{:?}",
        d.findings
    );
    let pages = k
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/v1/rolebindings"))
        .count();
    assert_eq!(pages, 3, "1204 bindings in pages of 500");
    assert_eq!(secret_path("a", "b"), "/api/v1/namespaces/a/secrets/b");
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// tests/python/kube_check.py with tests/kubernetes/.venv's Python (kubernetes 37.0.2 and
/// openapi-core 0.23.1).
fn kube_check(k: &KubeStandin, recorded: &std::path::Path, mode: &str) -> Value {
    let python = repo().join("tests/kubernetes/.venv/bin/python");
    assert!(
        python.exists(),
        "expected {} (python3 -m venv tests/kubernetes/.venv && tests/kubernetes/.venv/bin/pip install -r tests/kubernetes/requirements.txt)",
        python.display()
    );
    let out = std::process::Command::new(&python)
        .arg(repo().join("tests/python/kube_check.py"))
        .arg(k.url())
        .arg(k.token())
        .arg(repo().join("tests/kubernetes/kubernetes-rbac.trimmed.json"))
        .arg(recorded)
        .arg(mode)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "kube_check.py failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_clients_models_and_the_kubernetes_spec_accept_the_standin_and_the_connector() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    // The connector's requests of a whole run (discovery, apply, verify), for the request check.
    let conn = connector(&k, json!({}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    let mut journals = Journals::new();
    for (a, r, _) in run(&conn, &all, &mut journals).await {
        assert_eq!(r, Ok(Outcome::Done), "{}", a.target);
    }
    for a in &all {
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
    // kube_check.py sends every recorded body as application/json; a JSON Patch is
    // application/json-patch+json, and the description's schema for every patch type is `Patch`,
    // `type: object` (an RFC 6902 patch is a list, so the description itself would refuse every
    // JSON Patch). The PATCH requests are checked here instead: the operation and its media
    // type declared, the body an RFC 6902 list of test and remove operations.
    let (patches, others): (Vec<_>, Vec<_>) =
        k.requests().into_iter().partition(|r| r.method == "PATCH");
    assert_eq!(patches.len(), 2, "{patches:?}");
    let spec: Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/kubernetes/kubernetes-rbac.trimmed.json")).expect("spec"),
    )
    .expect("json");
    for p in &patches {
        let template = if p.path.contains("/namespaces/") {
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{name}"
        } else {
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}"
        };
        let op = &spec["paths"][template]["patch"];
        let body = op["requestBody"]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/requestBodies/"))
            .map(|name| &spec["components"]["requestBodies"][name])
            .expect("a declared PATCH body");
        assert!(
            body["content"]["application/json-patch+json"].is_object(),
            "{template}: {body:#}"
        );
        let ops: Value = serde_json::from_str(&p.body).expect("json");
        for o in ops.as_array().expect("a JSON Patch is a list") {
            let kind = o["op"].as_str().unwrap_or_default();
            assert!(["test", "remove"].contains(&kind), "{o}");
            assert!(
                o["path"].as_str().is_some_and(|p| p.starts_with('/')),
                "{o}"
            );
            assert_eq!(o.get("value").is_some(), kind == "test", "{o}");
        }
        assert_eq!(p.status, 200, "{p:?}");
    }
    let recorded: Vec<Value> = others
        .iter()
        .map(|r| json!([r.method, r.path, r.query, r.body]))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("recorded.json");
    std::fs::write(&file, serde_json::to_vec(&recorded).expect("json")).expect("written");

    let seen = kube_check(&k, &file, "full");
    assert_eq!(seen["violations"], json!([]), "{seen:#}");
    assert_eq!(seen["requests_checked"], json!(recorded.len()), "{seen:#}");
    // 404, 409 (and 429 below) are answers the description does not declare; nothing else is.
    for u in seen["undeclared"].as_array().expect("list") {
        let u = u.as_str().unwrap_or_default();
        assert!(u.ends_with(" 404") || u.ends_with(" 409"), "{u}: {seen:#}");
    }
    let steps = &seen["steps"];
    for (step, want) in [
        ("create", json!([201, "ClusterRoleBinding"])),
        ("create_again", json!([409, "AlreadyExists"])),
        ("replace", json!([200, "ClusterRoleBinding"])),
        ("replace_stale", json!([409, "Conflict"])),
        ("delete_wrong_uid", json!([409, "Conflict"])),
        ("delete_stale_rv", json!([409, "Conflict"])),
        ("delete", json!([200, "Status"])),
        ("read_gone", json!([404, "NotFound"])),
        ("delete_gone", json!([404, "NotFound"])),
    ] {
        assert_eq!(steps[step], want, "{step}: {seen:#}");
    }
    let v = &seen["seen"];
    assert_eq!(v["crbs"], json!(["platform", "readers"]), "{v:#}");
    assert_eq!(v["version_moved"], true);
    assert_eq!(v["uid_kept"], true);
    assert_eq!(v["noop_keeps_version"], true);
    assert!(v["precondition_message"]
        .as_str()
        .is_some_and(|m| m.contains("Precondition failed: UID in precondition")));
    assert_eq!(v["delete_status"], "Success");
    assert_eq!(v["gone_reason"], "NotFound");
    assert_eq!(
        v["paged"],
        json!([1, true]),
        "two bindings in pages of two: {v:#}"
    );
    assert_eq!(v["rbs"], json!(["ci/dana", "ci/pipeline"]));
    assert_eq!(
        v["token_secrets"],
        json!(["builder-token:kubernetes.io/service-account-token"])
    );
    assert_eq!(v["token_secrets_tied"], true);
    assert_eq!(
        v["metadata_only"],
        json!([
            200,
            "PartialObjectMetadataList",
            ["apiVersion", "kind", "metadata"]
        ])
    );
    assert_eq!(
        v["metadata_one"],
        json!([200, "PartialObjectMetadata", false])
    );
    assert_eq!(v["unauthorized"], json!([401, "Unauthorized"]));

    // An APF refusal, parsed by V1Status with its retryAfterSeconds.
    k.throttle(1, 3);
    let seen = kube_check(&k, &file, "throttled");
    assert_eq!(
        seen["throttled"],
        json!({"status": 429, "reason": "TooManyRequests", "retry_after_seconds": 3}),
        "{seen:#}"
    );
    assert_eq!(seen["violations"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_many_reads_the_cluster_once_for_every_subject() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    k.world(|w| {
        for i in 0..40 {
            let who = format!("oidc:leaver{i}@example.org");
            w.cluster_role_binding(&format!("leaver{i}"), "view", &[user(&who)]);
            w.role_binding(
                "shop",
                &format!("leaver{i}"),
                "edit",
                &[user(&who), user(IVAN)],
            );
        }
    });
    let conn = connector(&k, json!({}));
    let mut subjects: Vec<Subject> = (0..40)
        .map(|i| subject(&format!("leaver{i}@example.org")))
        .collect();
    subjects.push(subject("ivan@example.org"));
    k.clear_requests();
    let many = conn.discover_many(&subjects).await.expect("discovery");
    // Three lists (ClusterRoleBindings, RoleBindings, ServiceAccounts) for all 41, and one list
    // of token Secrets per owned ServiceAccount (ivan's one).
    assert_eq!(k.requests().len(), 4, "{:#?}", k.requests());
    for (s, d) in subjects.iter().zip(&many) {
        k.clear_requests();
        let one = conn.discover(s).await.expect("discovery");
        assert_eq!(&one, d, "{}", s.id);
    }
    // The user, their two bindings, and the reported `platform` group binding.
    assert_eq!(many[0].findings.len(), 4, "{:#?}", many[0].findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_shows_in_no_debug_output_or_error_and_a_bad_ca_file_is_a_config_issue() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let token = k.token();
    assert!(!format!("{conn:?}").contains(&token));
    // An error of every kind the connector returns here carries no token.
    let mut errors = Vec::new();
    k.throttle(1, 1);
    errors.push(conn.check().await.expect_err("throttled"));
    let mut bad = config(&k, json!({}));
    bad["api_url"] = json!("http://127.0.0.1:1");
    let unreachable =
        KubernetesConnector::new(K8S, KubernetesConfig::from_value(&bad).expect("config"))
            .expect("connector");
    errors.push(unreachable.check().await.expect_err("refused"));
    for e in &errors {
        assert!(!format!("{e:?} {e}").contains(&token), "{e:?}");
    }
    assert_eq!(errors[1].code, "connection", "{:?}", errors[1]);
    // A CA file that cannot be read, or holds no certificate, is refused when the connector is
    // built (no request is made).
    use revoke_core::ConnectorFactory;
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("written");
    for (path, want) in [
        (dir.path().join("missing.pem"), "cannot read"),
        (empty, "found none"),
    ] {
        let mut v = config(&k, json!({}));
        v["ca_file"] = json!(path.display().to_string());
        let e = revoke_connector_kubernetes::KubernetesFactory
            .build(K8S, &v)
            .expect_err("refused");
        assert!(e.message.contains(want), "{e:?}");
        assert_eq!(e.path, "connectors.prod-k8s");
    }
    // A real CA certificate builds.
    let ca = dir.path().join("ca.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kubernetes-ca",
        ])
        .arg("-keyout")
        .arg(dir.path().join("ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl is needed to make a test CA (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = config(&k, json!({}));
    v["ca_file"] = json!(ca.display().to_string());
    assert!(revoke_connector_kubernetes::KubernetesFactory
        .build(K8S, &v)
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_removal_rbac_forbids_as_an_escalation_is_an_auth_error_and_a_delete_still_works()
{
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    // A real API server refuses an update of a binding whose role the requester does not hold
    // unless it may `bind` that role; the stand-in authorizes nothing, so the refusal is scripted
    // with the API server's words. A delete needs no such right.
    let path = binding_path(None, "readers");
    for method in ["PATCH", "PUT"] {
        k.refuse(
            method,
            &path,
            403,
            "Forbidden",
            "clusterrolebindings.rbac.authorization.k8s.io \"readers\" is forbidden: user \"system:serviceaccount:revoked:offboarding\" (groups=[\"system:serviceaccounts\"]) is attempting to grant RBAC permissions not currently held",
        );
    }
    let readers = all
        .iter()
        .find(|a| a.target == "clusterrolebinding/readers")
        .expect("readers");
    // A first attempt (JSON Patch) and a later one (PUT): the same refusal.
    for j in [MemoryJournal::new(), later_attempt().await] {
        let e = conn
            .apply(readers, &readers.key, &j)
            .await
            .expect_err("forbidden");
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::Auth, "forbidden"));
        assert!(
            e.message.contains("attempting to grant RBAC permissions"),
            "{}",
            e.message
        );
    }
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "readers"),
        ["User:oidc:ivan@example.org", "User:oidc:dana@example.org"]
    );
    assert_eq!(
        conn.verify(readers).await.expect("verify"),
        Verdict::NotConfirmed {
            detail: format!(
                "clusterrolebinding/readers (uid {}) still names {IVAN}",
                readers.params["uid"]
            )
        }
    );
    let admin = all
        .iter()
        .find(|a| a.target == "clusterrolebinding/ivan-admin")
        .expect("ivan-admin");
    assert_eq!(
        conn.apply(admin, &admin.key, &MemoryJournal::new()).await,
        Ok(Outcome::Done)
    );
}

/// The seed plus two bindings of ivan's ServiceAccount ci/deployer: `deployer-admin` (it alone)
/// and `ci/deploy` (shared with dana's ci/builder).
fn seed_service_account_bindings(k: &KubeStandin) {
    seed(k);
    k.world(|w| {
        w.cluster_role_binding(
            "deployer-admin",
            "cluster-admin",
            &[service_account("ci", "deployer")],
        );
        w.role_binding(
            "ci",
            "deploy",
            "edit",
            &[
                service_account("ci", "deployer"),
                service_account("ci", "builder"),
            ],
        );
    });
}

fn plan_lines(conn: &KubernetesConnector, s: &Subject, d: &Discovery) -> Vec<String> {
    conn.plan(s, d)
        .iter()
        .map(|p| {
            format!(
                "{:?} {} {} | {} | after {:?}",
                p.phase,
                p.kind.0,
                p.target,
                p.summary,
                p.after
                    .iter()
                    .map(|(k, t)| format!("{} {t}", k.0))
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leavers_service_accounts_are_deleted_then_unbound_and_a_rerun_sends_nothing() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed_service_account_bindings(&k);
    let conn = connector(&k, json!({"service_account_policy": "delete"}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    insta::assert_json_snapshot!(
        "plan_ivan_service_accounts_deleted",
        json!({"notes": d.notes, "plan": plan_lines(&conn, &s, &d)})
    );
    assert!(k.mutations().is_empty(), "planning is read-only");
    let all = actions("job-sa", &d, &conn, &s);
    // 4 user bindings, the ServiceAccount, its 2 bindings; no token Secret (the controller's).
    assert_eq!(all.len(), 7, "{all:#?}");
    let sa = all
        .iter()
        .find(|a| a.kind.0 == DELETE_SERVICE_ACCOUNT)
        .expect("the ServiceAccount is deleted");
    let sa_uid = k.world(|w| {
        w.get(Res::ServiceAccount, "ci", "deployer")
            .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string))
            .expect("uid")
    });
    assert_eq!(
        sa.account.as_ref().map(|p| p.id.clone()),
        Some(sa_uid),
        "pinned to the ServiceAccount's uid"
    );
    let mut journals = Journals::new();
    for (a, r, _) in run(&conn, &all, &mut journals).await {
        assert_eq!(r, Ok(Outcome::Done), "{} {}", a.kind, a.target);
    }
    assert!(!exists(&k, Res::ServiceAccount, "ci", "deployer"));
    assert!(
        !exists(&k, Res::Secret, "ci", "deployer-token-a"),
        "the token controller deletes a deleted ServiceAccount's token Secrets"
    );
    assert!(!exists(&k, Res::ClusterRoleBinding, "", "deployer-admin"));
    assert_eq!(
        subjects_of(&k, Res::RoleBinding, "ci", "deploy"),
        ["ServiceAccount:builder"]
    );
    assert!(exists(&k, Res::ServiceAccount, "ci", "builder"));
    assert!(exists(&k, Res::Secret, "ci", "builder-token"));
    let sa_writes: Vec<_> = k
        .mutations()
        .into_iter()
        .filter(|m| m.path.contains("serviceaccounts") || m.path.contains("deploy"))
        .map(|m| format!("{} {}", m.method, m.path))
        .collect();
    assert_eq!(
        sa_writes,
        [
            "DELETE /api/v1/namespaces/ci/serviceaccounts/deployer",
            "DELETE /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/deployer-admin",
            "PUT /apis/rbac.authorization.k8s.io/v1/namespaces/ci/rolebindings/deploy",
        ]
    );
    for m in k.mutations().iter().filter(|m| m.method == "DELETE") {
        let body: Value = serde_json::from_str(&m.body).expect("json");
        assert!(body["preconditions"]["uid"].is_string(), "{m:?}");
    }
    for a in &all {
        assert_eq!(
            conn.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{}",
            a.target
        );
    }
    k.clear_requests();
    for (a, r, _) in run(&conn, &all, &mut journals).await {
        assert_eq!(r, Ok(Outcome::AlreadyDone), "{} {}", a.kind, a.target);
    }
    assert!(k.mutations().is_empty(), "{:?}", k.mutations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_recreated_or_handed_over_after_planning_is_untouched() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed_service_account_bindings(&k);
    let conn = connector(&k, json!({"service_account_policy": "delete"}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-sa2", &d, &conn, &s);
    // Someone deletes ci/deployer and creates a new one under that name (a new uid).
    let new_uid = k.world(|w| w.recreate(Res::ServiceAccount, "ci", "deployer"));
    k.clear_requests();
    let sa_actions: Vec<Action> = all
        .iter()
        .filter(|a| a.kind.0 == DELETE_SERVICE_ACCOUNT || a.kind.0 == UNBIND_SERVICE_ACCOUNT)
        .cloned()
        .collect();
    assert_eq!(sa_actions.len(), 3);
    for (a, r, _) in run(&conn, &sa_actions, &mut Journals::new()).await {
        let e = r.expect_err("refused");
        assert_eq!(e.code, "identity_changed", "{} {}: {e:?}", a.kind, a.target);
        assert!(!e.is_retryable());
    }
    assert!(k.mutations().is_empty(), "{:?}", k.mutations());
    let now = k.world(|w| {
        w.get(Res::ServiceAccount, "ci", "deployer")
            .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string))
    });
    assert_eq!(now, Some(new_uid), "the new ServiceAccount stays");
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "deployer-admin"),
        ["ServiceAccount:deployer"],
        "the new ServiceAccount's bindings stay"
    );

    // Handed to someone else after the plan: owner_changed, nothing sent.
    let k = KubeStandin::start().expect("the stand-in starts");
    seed_service_account_bindings(&k);
    let conn = connector(&k, json!({"service_account_policy": "delete"}));
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-sa3", &d, &conn, &s);
    k.world(|w| {
        let mut o = w
            .get(Res::ServiceAccount, "ci", "deployer")
            .cloned()
            .expect("sa");
        o["metadata"]["annotations"]["revoked.dev/owner"] = json!("dana@example.org");
        w.update(Res::ServiceAccount, "ci", "deployer", o)
            .expect("updated");
    });
    k.clear_requests();
    let del: Vec<Action> = all
        .iter()
        .filter(|a| a.kind.0 == DELETE_SERVICE_ACCOUNT)
        .cloned()
        .collect();
    let (_, r, _) = run(&conn, &del, &mut Journals::new())
        .await
        .pop()
        .expect("one");
    let e = r.expect_err("handed over");
    assert_eq!(
        (e.code.as_str(), &e.class),
        ("owner_changed", &ErrorClass::Conflict)
    );
    assert!(k.mutations().is_empty());
    // Its unbinding waits for a delete that will not come.
    let unbind: Vec<Action> = all
        .iter()
        .filter(|a| a.kind.0 == UNBIND_SERVICE_ACCOUNT)
        .cloned()
        .collect();
    for (_, r, _) in run(&conn, &unbind, &mut Journals::new()).await {
        assert_eq!(r.expect_err("waits").code, "service_account_exists");
    }
    assert!(k.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leavers_service_accounts_are_handed_to_reown_to_and_their_token_secrets_deleted() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed_service_account_bindings(&k);
    let conn = connector(
        &k,
        json!({"service_account_policy": "reown", "reown_to": "team-platform"}),
    );
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-reown", &d, &conn, &s);
    let kinds: Vec<&str> = all.iter().map(|a| a.kind.0.as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == REOWN_SERVICE_ACCOUNT || **k == DELETE_TOKEN_SECRET)
            .count(),
        3,
        "{kinds:?}"
    );
    assert!(!kinds.contains(&UNBIND_SERVICE_ACCOUNT));
    let mut journals = Journals::new();
    for (a, r, _) in run(&conn, &all, &mut journals).await {
        assert_eq!(r, Ok(Outcome::Done), "{} {}", a.kind, a.target);
    }
    let owner = k.world(|w| {
        w.get(Res::ServiceAccount, "ci", "deployer").and_then(|o| {
            o.pointer("/metadata/annotations/revoked.dev~1owner")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    });
    assert_eq!(owner.as_deref(), Some("team-platform"));
    assert!(!exists(&k, Res::Secret, "ci", "deployer-token-a"));
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "deployer-admin"),
        ["ServiceAccount:deployer"],
        "a handed-over ServiceAccount keeps its bindings"
    );
    let put = k
        .mutations()
        .into_iter()
        .find(|m| m.method == "PUT" && m.path.contains("serviceaccounts"))
        .expect("the ServiceAccount was put");
    let body: Value = serde_json::from_str(&put.body).expect("json");
    assert!(body["metadata"]["resourceVersion"].is_string() && body["metadata"]["uid"].is_string());
    for a in &all {
        assert_eq!(
            conn.verify(a).await.expect("verify"),
            Verdict::Confirmed,
            "{}",
            a.target
        );
    }
    k.clear_requests();
    for (a, r, _) in run(&conn, &all, &mut journals).await {
        assert_eq!(r, Ok(Outcome::AlreadyDone), "{} {}", a.kind, a.target);
    }
    assert!(k.mutations().is_empty(), "{:?}", k.mutations());
    // A fresh discovery: ivan owns nothing any more.
    let again = conn.discover(&s).await.expect("discovery");
    assert!(conn
        .plan(&s, &again)
        .iter()
        .all(|p| p.kind.0 != REOWN_SERVICE_ACCOUNT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_attempt_removes_the_leaver_in_one_call_and_a_write_in_between_is_no_conflict() {
    let k = KubeStandin::start().expect("the stand-in starts");
    seed(&k);
    let conn = connector(&k, json!({}));
    let s = subject("ivan@example.org");
    let d = conn.discover(&s).await.expect("discovery");
    let all = actions("job-1", &d, &conn, &s);
    let find = |t: &str| all.iter().find(|a| a.target == t).expect("action").clone();
    // After the plan another client appends carol to `readers` and labels it: the version
    // moved, the leaver did not.
    k.world(|w| {
        w.add_subject(
            Res::ClusterRoleBinding,
            "",
            "readers",
            user("oidc:carol@example.org"),
        );
        let mut o = w
            .get(Res::ClusterRoleBinding, "", "readers")
            .cloned()
            .expect("readers");
        o["metadata"]["labels"] = json!({"team": "data"});
        w.update(Res::ClusterRoleBinding, "", "readers", o)
            .expect("labelled");
    });
    k.clear_requests();
    let readers = find("clusterrolebinding/readers");
    assert_eq!(
        conn.apply(&readers, &readers.key, &MemoryJournal::new())
            .await,
        Ok(Outcome::Done)
    );
    let calls: Vec<String> = k
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.status))
        .collect();
    assert_eq!(calls, ["PATCH 200"], "one call: no read, no conflict");
    assert_eq!(
        subjects_of(&k, Res::ClusterRoleBinding, "", "readers"),
        ["User:oidc:dana@example.org", "User:oidc:carol@example.org"],
        "carol's subject and the label kept"
    );

    // The leaver moved (someone was put before them): the JSON Patch's test fails, nothing
    // changes, and the next attempt reads and writes on what it read.
    k.world(|w| {
        let mut o = w
            .get(Res::RoleBinding, "ci", "pipeline")
            .cloned()
            .expect("pipeline");
        let subjects = o["subjects"].as_array_mut().expect("subjects");
        subjects.insert(0, user("oidc:erin@example.org"));
        w.update(Res::RoleBinding, "ci", "pipeline", o)
            .expect("updated");
    });
    k.clear_requests();
    let pipeline = find("rolebinding/ci/pipeline");
    let j = MemoryJournal::new();
    let e = conn
        .apply(&pipeline, &pipeline.key, &j)
        .await
        .expect_err("the test fails");
    assert_eq!(e.code, "stale_plan", "{e}");
    assert!(e.is_retryable());
    assert!(e.message.contains("422"), "{e}");
    assert_eq!(
        subjects_of(&k, Res::RoleBinding, "ci", "pipeline"),
        [
            "User:oidc:erin@example.org",
            "User:oidc:ivan@example.org",
            "ServiceAccount:builder"
        ],
        "a failed JSON Patch changes nothing"
    );
    assert_eq!(
        conn.apply(&pipeline, &pipeline.key, &j).await,
        Ok(Outcome::Done)
    );
    assert_eq!(
        subjects_of(&k, Res::RoleBinding, "ci", "pipeline"),
        ["User:oidc:erin@example.org", "ServiceAccount:builder"]
    );
    let calls: Vec<String> = k
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.status))
        .collect();
    assert_eq!(calls, ["PATCH 422", "GET 200", "PUT 200"]);
    // A 429 to the blind write (APF: not handled) lets the next attempt write blind again.
    let admin = find("clusterrolebinding/ivan-admin");
    let throttled = MemoryJournal::new();
    k.throttle(1, 1);
    k.clear_requests();
    let e = conn
        .apply(&admin, &admin.key, &throttled)
        .await
        .expect_err("throttled");
    assert_eq!(e.code, "rate_limited", "{e}");
    assert_eq!(
        conn.apply(&admin, &admin.key, &throttled).await,
        Ok(Outcome::Done)
    );
    let calls: Vec<String> = k
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.status))
        .collect();
    assert_eq!(calls, ["DELETE 429", "DELETE 200"], "no read in between");
    // The first attempt recorded its blind write before sending it.
    assert!(j
        .latest(BLIND_WRITE)
        .await
        .expect("journal")
        .is_some_and(|v| v.starts_with("PATCH ")));
}
