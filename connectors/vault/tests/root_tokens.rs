//! Root tokens a leaving key holder may hold, against a real raft-backed OpenBao 2.7.2: a root
//! token made with the cluster's unseal shares (`sys/generate-root-token`) carries no entity, so
//! only the key holder's plan can end it. Found, revoked by accessor in contain (with the tokens
//! created under it), a rerun sends nothing, the connector's own token is never touched, and a
//! leaver who held no share gets no root-token action.

mod common;

use std::collections::BTreeSet;

use common::{actions, subject};
use revoke_connector_vault::{
    VaultConfig, VaultConnector, DISABLE_ENTITY, REVIEW_ROOT_TOKENS, REVOKE_ROOT_TOKEN, ROOT_TOKEN,
    ROTATE_ROOT_KEY,
};
use revoke_core::{
    Action, ActionKey, Connector, ConnectorError, ErrorClass, MemoryJournal, Outcome, Phase,
    Verdict,
};
use revoke_testkit::openbao::Login;
use revoke_testkit::OpenBao;
use serde_json::{json, Value};

/// Everything, for the test's own calls once the initial root token is revoked (its policy is
/// not `root`, so no plan lists it).
const ADMIN: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;

fn connector(bao: &OpenBao, token: &str, extra: Value) -> VaultConnector {
    let mut params = json!({
        "kind": "vault",
        "address": bao.address(),
        "token": token,
        "mounts": {"userpass": {"type": "userpass"}},
        "key_holders": ["alice"],
    });
    if let (Some(m), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
        if token.is_empty() {
            m.remove("token");
        }
    }
    revoke_connector_vault::validate("connectors.vault", &params).expect("valid config");
    VaultConnector::new(
        "vault",
        VaultConfig::from_value(&params).expect("typed config"),
    )
    .expect("connector")
}

fn alive(bao: &OpenBao, admin: &Login, accessor: &str) -> bool {
    let (status, _) = bao
        .raw(
            &admin.token,
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({ "accessor": accessor })),
        )
        .expect("lookup answer");
    status == 200
}

async fn apply_all(conn: &impl Connector, acts: &[Action]) -> Vec<(String, Outcome)> {
    let mut out = Vec::new();
    for a in acts.iter().filter(|a| a.phase != Phase::Manual) {
        let journal = MemoryJournal::new();
        let key = ActionKey(a.key.0.clone());
        let outcome = loop {
            match conn.apply(a, &key, &journal).await {
                Ok(o) => break o,
                Err(ConnectorError {
                    class: ErrorClass::RateLimited { retry_after },
                    ..
                }) => tokio::time::sleep(retry_after).await,
                Err(e) => panic!("{} {}: {e}", a.kind, a.target),
            }
        };
        out.push((a.kind.0.clone(), outcome));
    }
    out
}

fn roots_found(d: &revoke_core::Discovery) -> BTreeSet<String> {
    d.findings
        .iter()
        .filter(|f| f.kind == ROOT_TOKEN)
        .map(|f| f.target.clone())
        .collect()
}

fn kinds<'a>(acts: &'a [Action], kind: &str) -> Vec<&'a Action> {
    acts.iter().filter(|a| a.kind.0 == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_holder_s_root_tokens_are_revoked_by_accessor_and_the_connector_s_own_token_stays() {
    let bao = OpenBao::start_raft(3, 2).expect("raft openbao");
    let keys = bao.unseal_keys().to_vec();
    let initial = bao
        .call("GET", "auth/token/lookup-self", None)
        .expect("the initial root token")["data"]["accessor"]
        .as_str()
        .expect("its accessor")
        .to_string();
    bao.put_policy("admin", ADMIN).expect("admin policy");
    let admin = bao.orphan_token(&["admin"]).expect("admin token");
    bao.put_policy("revoked", common::POLICY).expect("policy");
    let me = bao
        .orphan_token(&["revoked"])
        .expect("the connector's token");
    bao.enable_auth("userpass", "userpass").expect("userpass");
    for (u, pw) in [("alice", "pw-a"), ("bob", "pw-b")] {
        bao.userpass_user("userpass", u, pw).expect("user");
    }
    let alice_login = bao
        .login_userpass("userpass", "alice", "pw-a")
        .expect("alice logs in");
    let bob_login = bao
        .login_userpass("userpass", "bob", "pw-b")
        .expect("bob logs in");

    // Two key holders make a root token with their shares; someone creates a token under it.
    let generated = bao.generate_root(&keys[1..3]).expect("a generated root");
    let lookup = bao
        .call_as(&generated.token, "GET", "auth/token/lookup-self", None)
        .expect("the new root token works");
    assert_eq!(lookup["data"]["policies"], json!(["root"]));
    assert_eq!(lookup["data"]["entity_id"], "");
    let child = bao
        .call_as(
            &generated.token,
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"]})),
        )
        .expect("a child token")["auth"]["accessor"]
        .as_str()
        .expect("its accessor")
        .to_string();

    let conn = connector(&bao, &me.token, json!({}));

    // bob held no share: his plan has no root-token action, and no note about them.
    let bob = subject("bob", None);
    let d = conn.discover(&bob).await.expect("discover bob");
    assert!(roots_found(&d).is_empty(), "{d:#?}");
    assert!(!d.notes.iter().any(|n| n.contains("root token")), "{d:#?}");
    let bob_acts = actions(&conn, &bob, &d);
    assert!(
        bob_acts
            .iter()
            .all(|a| a.kind.0 != REVOKE_ROOT_TOKEN && a.kind.0 != REVIEW_ROOT_TOKENS),
        "{bob_acts:#?}"
    );

    // alice held one: both root tokens are found (the initial one too), each revoked by
    // accessor in contain, pinned to the key holder's entry.
    let alice = subject("alice", None);
    let d = conn.discover(&alice).await.expect("discover alice");
    assert_eq!(
        roots_found(&d),
        BTreeSet::from([initial.clone(), generated.accessor.clone()]),
        "{d:#?}"
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("2 root token(s)")
                && n.contains("non-orphan token created under it")),
        "the plan says who else loses a root token: {:#?}",
        d.notes
    );
    let acts = actions(&conn, &alice, &d);
    let roots = kinds(&acts, REVOKE_ROOT_TOKEN);
    assert_eq!(roots.len(), 2, "{acts:#?}");
    for a in &roots {
        assert_eq!(a.phase, Phase::Contain);
        assert_eq!(
            a.account.as_ref().map(|p| p.id.as_str()),
            Some("key-holder:alice")
        );
    }
    assert!(kinds(&acts, REVIEW_ROOT_TOKENS).is_empty());
    assert_eq!(kinds(&acts, ROTATE_ROOT_KEY).len(), 1);
    assert!(
        bao.mutations_of(&me.accessor).expect("audit").is_empty(),
        "planning sends nothing"
    );

    // In one batch, only the key holder's discovery carries them (one scan for both).
    let both = conn
        .discover_many(&[bob.clone(), alice.clone()])
        .await
        .expect("discover both");
    assert!(roots_found(&both[0]).is_empty(), "{:#?}", both[0]);
    assert_eq!(roots_found(&both[1]), roots_found(&d));

    // A connector running with a root token never lists its own.
    let as_root = connector(&bao, &generated.token, json!({}));
    let d_root = as_root.discover(&alice).await.expect("discover as root");
    assert_eq!(
        roots_found(&d_root),
        BTreeSet::from([initial.clone()]),
        "{d_root:#?}"
    );
    assert!(d_root.notes.iter().any(|n| n.contains("own token")));

    // A connector whose token is not an orphan (created under the initial root token) could die
    // with it: the root tokens go to a person, named. So does `root_tokens = "manual"`.
    let child_of_root = bao.token(&["revoked"]).expect("a non-orphan token");
    for (conn2, why) in [
        (
            connector(&bao, &child_of_root.token, json!({})),
            "is not an orphan",
        ),
        (
            connector(&bao, &me.token, json!({"root_tokens": "manual"})),
            "root_tokens = \"manual\"",
        ),
    ] {
        let d2 = conn2.discover(&alice).await.expect("discover");
        let a2 = actions(&conn2, &alice, &d2);
        assert!(kinds(&a2, REVOKE_ROOT_TOKEN).is_empty(), "{a2:#?}");
        let step = kinds(&a2, REVIEW_ROOT_TOKENS);
        assert_eq!(step.len(), 1, "{a2:#?}");
        assert_eq!(step[0].phase, Phase::Manual);
        assert!(
            step[0].summary.contains(&initial)
                && step[0].summary.contains(&generated.accessor)
                && step[0].summary.contains(why),
            "{}",
            step[0].summary
        );
    }
    // Apply checks its own token again: the plan made with an orphan token, applied by a
    // connector whose token is not one, or is that root token itself, sends nothing.
    let planned = roots
        .iter()
        .find(|a| a.params["accessor"] == generated.accessor)
        .expect("the generated root token's action");
    let key = ActionKey(planned.key.0.clone());
    let risky = connector(&bao, &child_of_root.token, json!({}));
    let err = risky
        .apply(planned, &key, &MemoryJournal::new())
        .await
        .expect_err("refused");
    assert_eq!(err.code, "own_token_at_risk", "{err}");
    let err = as_root
        .apply(planned, &key, &MemoryJournal::new())
        .await
        .expect_err("refused");
    assert_eq!(err.code, "own_token", "{err}");
    for acc in [&child_of_root.accessor, &generated.accessor] {
        let revokes: Vec<_> = bao
            .requests_of(acc)
            .expect("audit")
            .into_iter()
            .filter(|r| r.path.starts_with("auth/token/revoke"))
            .collect();
        assert!(revokes.is_empty(), "{revokes:#?}");
    }
    assert!(alive(&bao, &admin, &generated.accessor));

    // An AppRole login's token is an orphan: a connector logging in with one revokes them.
    bao.enable_auth("approle", "approle").expect("approle");
    bao.call(
        "POST",
        "auth/approle/role/revoked",
        Some(json!({"token_policies": ["revoked"], "token_ttl": "1h"})),
    )
    .expect("role");
    let role_id = bao
        .call("GET", "auth/approle/role/revoked/role-id", None)
        .expect("role id")["data"]["role_id"]
        .clone();
    let secret_id = bao
        .call("POST", "auth/approle/role/revoked/secret-id", None)
        .expect("secret id")["data"]["secret_id"]
        .clone();
    let approle = connector(
        &bao,
        "",
        json!({"role_id": role_id, "secret_id": secret_id}),
    );
    let d_app = approle.discover(&alice).await.expect("discover");
    let a_app = actions(&approle, &alice, &d_app);
    assert_eq!(kinds(&a_app, REVOKE_ROOT_TOKEN).len(), 2, "{a_app:#?}");
    assert_eq!(approle.logins(), 1);

    // `ignore`: not looked for.
    let ignoring = connector(&bao, &me.token, json!({"root_tokens": "ignore"}));
    let d3 = ignoring.discover(&alice).await.expect("discover");
    assert!(roots_found(&d3).is_empty());

    // Apply: both root tokens and the token created under one are gone; the connector's token,
    // the admin's orphan token and bob's login stay.
    let done = apply_all(&conn, &acts).await;
    assert!(done.iter().all(|(_, o)| *o == Outcome::Done), "{done:?}");
    assert!(done.iter().any(|(k, _)| k == DISABLE_ENTITY), "{done:?}");
    for acc in [&initial, &generated.accessor, &child, &alice_login.accessor] {
        assert!(!alive(&bao, &admin, acc), "{acc} must be revoked");
    }
    for acc in [&me.accessor, &admin.accessor, &bob_login.accessor] {
        assert!(alive(&bao, &admin, acc), "{acc} must stay");
    }
    let (status, _) = bao
        .raw(&generated.token, "GET", "auth/token/lookup-self", None)
        .expect("an answer");
    assert_eq!(status, 403, "the generated root token is refused");
    let sent = bao.mutations_of(&me.accessor).expect("audit");
    let revokes = sent
        .iter()
        .filter(|r| r.path == "auth/token/revoke-accessor")
        .count();
    // Two root tokens; no other token of alice's is revoked one by one (her login goes by prefix).
    assert_eq!(revokes, 2, "{sent:#?}");

    // Rerun: everything is already done, nothing sent; verify confirms.
    let again = apply_all(&conn, &acts).await;
    assert!(
        again.iter().all(|(_, o)| *o == Outcome::AlreadyDone),
        "{again:?}"
    );
    assert_eq!(
        bao.mutations_of(&me.accessor).expect("audit").len(),
        sent.len(),
        "a rerun sends nothing"
    );
    let applied: Vec<Action> = acts
        .iter()
        .filter(|a| a.phase != Phase::Manual)
        .cloned()
        .collect();
    for (a, v) in applied.iter().zip(conn.verify_many(&applied).await) {
        assert_eq!(
            v.expect("verify"),
            Verdict::Confirmed,
            "{} {}",
            a.kind,
            a.target
        );
    }
    // A new plan: no root token lives, and the plan says it looked.
    let d4 = conn.discover(&alice).await.expect("discover again");
    assert!(roots_found(&d4).is_empty());
    assert!(d4
        .notes
        .iter()
        .any(|n| n.contains("no root token lives in the cluster")));
}
