//! The vault connector against a real OpenBao 2.7.2 (testkit): the plan of an odd little world
//! (a snapshot), apply then rerun with 0 mutations counted in the server's audit log, verify,
//! identity pinning (a login name reused by a new entity after planning: nothing sent),
//! hostile names, a rate-limit quota's real 429s, and the rekey of a raft-backed server.

mod common;

use std::time::Duration;

use common::{actions, redact, subject, world};
use revoke_connector_vault::{
    DELETE_ENTITY, DISABLE_ENTITY, REMOVE_GROUP, REVOKE_LOGIN_TOKENS, REVOKE_TOKEN, ROTATE_ROOT_KEY,
};
use revoke_core::{
    Action, ActionKey, Connector, ConnectorError, ErrorClass, MemoryJournal, Outcome, Phase,
    Verdict,
};
use serde_json::json;

/// Applies the connector's actions in plan order (manual steps are a person's), like the
/// executor: a rate-limited answer waits its Retry-After and tries again.
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

async fn verify_all(conn: &impl Connector, acts: &[Action]) -> Vec<(String, Verdict)> {
    let mut out = Vec::new();
    for a in acts.iter().filter(|a| a.phase != Phase::Manual) {
        let v = loop {
            match conn.verify(a).await {
                Ok(v) => break v,
                Err(ConnectorError {
                    class: ErrorClass::RateLimited { retry_after },
                    ..
                }) => tokio::time::sleep(retry_after).await,
                Err(e) => panic!("verify {} {}: {e}", a.kind, a.target),
            }
        };
        out.push((a.kind.0.clone(), v));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_of_alice_is_read_only_and_reads_as_the_snapshot() {
    let w = world();
    let conn = w.connector(json!({}));
    let s = subject("alice", Some("alice@example.org"));
    let d = conn.discover(&s).await.expect("discover");
    assert!(d.found);
    assert!(
        w.mutations().is_empty(),
        "discovery is read-only: {:?}",
        w.mutations()
    );
    let acct = d.account(&w.alice).expect("alice's entity is an account");
    for id in ["alice", "alice@example.org", "alice-ci"] {
        assert!(
            acct.identifiers.contains(id),
            "{id} in {:?}",
            acct.identifiers
        );
    }
    let acts = actions(&conn, &s, &d);
    let names = w.names(&d);
    let mut text = String::new();
    for a in &acts {
        let mut params: Vec<String> = a
            .params
            .iter()
            .filter(|(k, _)| *k != "api" && *k != "title")
            .map(|(k, v)| {
                if k == "accessors" {
                    // Accessors are random: redacted, then sorted.
                    let mut list: Vec<String> = v
                        .split(',')
                        .map(|a| redact(a.to_string(), &names))
                        .collect();
                    list.sort();
                    format!("{k}={}", list.join(","))
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        params.sort();
        text.push_str(&format!(
            "{} {} {} [{}] pinned={} after={}\n  {}\n",
            a.phase,
            a.kind,
            a.target,
            params.join(" "),
            a.account.as_ref().map(|p| p.id.as_str()).unwrap_or("-"),
            a.depends_on.len(),
            a.summary
        ));
    }
    insta::assert_snapshot!("alice_plan", redact(text, &names));
    let manual = acts
        .iter()
        .find(|a| a.kind.0 == ROTATE_ROOT_KEY)
        .expect("alice held a key share: a rekey step");
    assert_eq!(manual.connector, "manual");
    assert!(manual.params["api"].contains("sys/rotate/root/init"));
    assert!(w.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_takes_everything_of_alice_and_nothing_of_bob_and_a_rerun_sends_nothing() {
    let w = world();
    let conn = w.connector(json!({}));
    let s = subject("alice", Some("alice@example.org"));
    let d = conn.discover(&s).await.expect("discover");
    let acts = actions(&conn, &s, &d);

    // Contain first: every token of the entity is refused at once, and so is a new login.
    let contain: Vec<Action> = acts
        .iter()
        .filter(|a| a.phase == Phase::Contain)
        .cloned()
        .collect();
    assert_eq!(
        contain
            .iter()
            .map(|a| a.kind.0.as_str())
            .collect::<Vec<_>>(),
        [DISABLE_ENTITY, REVOKE_LOGIN_TOKENS, REVOKE_TOKEN]
    );
    let done = apply_all(&conn, &contain).await;
    assert!(done.iter().all(|(_, o)| *o == Outcome::Done), "{done:?}");
    for l in w.alice_logins.iter().chain([&w.alice_ci]) {
        assert!(
            !w.bao.accessor_alive(&l.accessor).expect("lookup"),
            "{l:?} revoked"
        );
    }
    let (status, _) = w
        .bao
        .raw(
            "",
            "POST",
            "auth/userpass/login/alice",
            Some(json!({"password": "pw-a"})),
        )
        .expect("login answer");
    assert_eq!(status, 403, "a disabled entity's login is refused");

    let before_apply = conn.calls();
    let all = apply_all(&conn, &acts).await;
    let apply_calls = conn.calls() - before_apply;
    let done = all.iter().filter(|(_, o)| *o == Outcome::Done).count();
    let already = all
        .iter()
        .filter(|(_, o)| *o == Outcome::AlreadyDone)
        .count();
    assert_eq!((done, already), (acts.len() - 1 - 3, 3), "{all:?}");
    let muts = w.mutations();
    // One mutation per action, none twice (the contain actions' three before).
    assert_eq!(muts.len(), acts.len() - 1, "{muts:#?}");

    assert!(
        w.bao.entity(&w.alice).expect("read").is_none(),
        "alice's entity is deleted"
    );
    let ops = w.bao.group(&w.ops).expect("read").expect("ops stays");
    let members: Vec<&str> = ops["member_entity_ids"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(members.contains(&w.bob.as_str()) && members.contains(&w.boss.as_str()));
    assert!(!members.contains(&w.alice.as_str()));
    assert_eq!(
        ops["policies"],
        json!(["ops"]),
        "the group keeps its policies"
    );
    assert!(
        w.bao.accessor_alive(&w.bob_login.accessor).expect("lookup"),
        "bob untouched"
    );
    assert_eq!(
        w.bao
            .raw(w.bao.root_token(), "GET", "auth/userpass/users/alice", None)
            .expect("read")
            .0,
        404,
        "the userpass user is deleted"
    );

    let before_verify = conn.calls();
    let verdicts = verify_all(&conn, &acts).await;
    let verify_calls = conn.calls() - before_verify;
    assert!(
        verdicts.iter().all(|(_, v)| *v == Verdict::Confirmed),
        "{verdicts:?}"
    );
    let before_rerun = conn.calls();

    // The same plan again: everything is already done, nothing is sent.
    let again = apply_all(&conn, &acts).await;
    assert!(
        again.iter().all(|(_, o)| *o == Outcome::AlreadyDone),
        "{again:?}"
    );
    assert_eq!(w.mutations().len(), muts.len(), "a rerun sends no mutation");
    eprintln!(
        "alice: {} actions (3 contain applied first), {} mutations, {apply_calls} calls to apply the rest, {verify_calls} to verify all, {} to rerun all (reads only)",
        acts.len() - 1,
        muts.len(),
        conn.calls() - before_rerun
    );

    // A new plan finds only the key share (a person's step), nothing to send.
    let d2 = conn.discover(&s).await.expect("discover again");
    let acts2 = actions(&conn, &s, &d2);
    assert!(acts2.iter().all(|a| a.phase == Phase::Manual), "{acts2:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_name_reused_by_a_new_entity_after_planning_gets_nothing() {
    let w = world();
    let conn = w.connector(json!({}));
    let s = subject("alice", None);
    let d = conn.discover(&s).await.expect("discover");
    let acts = actions(&conn, &s, &d);

    // alice leaves Vault by another hand; a new alice is created and logs in: a new entity.
    let root = w.bao.root_token().to_string();
    w.bao
        .call("DELETE", &format!("identity/entity/id/{}", w.alice), None)
        .expect("old entity deleted");
    w.bao
        .call("DELETE", "auth/userpass/users/alice", None)
        .expect("user deleted");
    w.bao
        .userpass_user("userpass", "alice", "new")
        .expect("new alice");
    let new = w
        .bao
        .login_userpass("userpass", "alice", "new")
        .expect("new login");
    assert_ne!(new.entity_id, w.alice);
    let before = w.mutations().len();

    let mut codes = Vec::new();
    for a in acts.iter().filter(|a| a.phase != Phase::Manual) {
        let r = conn
            .apply(a, &ActionKey(a.key.0.clone()), &MemoryJournal::new())
            .await;
        codes.push((a.kind.0.clone(), r.map_err(|e| e.code)));
    }
    // The pinned entity is gone: its own actions are already done; what goes by the login name
    // meets the new entity and stops.
    assert!(
        codes
            .iter()
            .any(|(k, r)| k == REVOKE_LOGIN_TOKENS && *r == Err("identity_changed".to_string())),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(k, r)| k == "delete_userpass_user" && *r == Err("identity_changed".to_string())),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(k, r)| k == DISABLE_ENTITY && *r == Ok(Outcome::AlreadyDone)),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(k, r)| k == REMOVE_GROUP && *r == Ok(Outcome::AlreadyDone)),
        "{codes:?}"
    );
    // Old tokens of the deleted entity whose accessor still resolves may be revoked by
    // accessor (they are the pinned entity's); nothing touched the new alice.
    let sent: Vec<String> = w.mutations()[before..].to_vec();
    assert!(
        sent.iter()
            .all(|m| m.starts_with("update auth/token/revoke-accessor")),
        "{sent:?}"
    );
    assert!(
        w.bao.accessor_alive(&new.accessor).expect("lookup"),
        "new alice keeps her token"
    );
    let e = w
        .bao
        .entity(&new.entity_id)
        .expect("read")
        .expect("new alice's entity");
    assert_eq!(e["disabled"], false);
    assert_eq!(
        w.bao
            .raw(&root, "GET", "auth/userpass/users/alice", None)
            .expect("read")
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_match_nothing_but_themselves() {
    let w = world();
    let odd = w.bao.create_entity("odd", &[]).expect("entity");
    let odd_name = "o'brien\"x/../y*";
    w.bao
        .create_alias(&odd, &w.oidc, odd_name)
        .expect("odd alias");
    let conn = w.connector(json!({}));
    for id in [
        "../alice",
        "*",
        "alice\"",
        "alice/../bob",
        "%2e%2e%2falice",
        "ALICE*",
    ] {
        let d = conn
            .discover(&subject(id, Some(&format!("{id}@example.org"))))
            .await
            .expect("discover");
        assert!(!d.found, "{id} matched {:?}", d.accounts);
    }
    // userpass names are lowercase in Vault: a subject typed in capitals finds alice there,
    // and only there (the OIDC alias is matched exactly).
    let d = conn
        .discover(&subject("ALICE", Some("ALICE@example.org")))
        .await
        .expect("discover");
    let entities: Vec<&revoke_core::Account> = d
        .accounts
        .iter()
        .filter(|a| a.id_kind == revoke_connector_vault::ENTITY_ID)
        .collect();
    assert_eq!(
        entities.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [w.alice.as_str()]
    );
    assert_eq!(entities[0].matched_by, "alias alice on userpass/");
    let s = subject("nobody", Some(odd_name));
    let d = conn.discover(&s).await.expect("discover");
    assert_eq!(
        d.accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [odd.as_str()]
    );
    let acts = actions(&conn, &s, &d);
    let out = apply_all(&conn, &acts).await;
    assert!(out.iter().all(|(_, o)| *o == Outcome::Done), "{out:?}");
    assert!(w.bao.entity(&odd).expect("read").is_none());
    assert!(
        w.bao.entity(&w.alice).expect("read").is_some(),
        "alice untouched"
    );
    assert!(
        w.bao.entity(&w.bob).expect("read").is_some(),
        "bob untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_quota_s_real_429s_are_waited_out_and_the_run_converges() {
    let w = world();
    // A pace above the quota, so the quota answers 429 and the hold is what keeps order.
    let conn = w.connector(json!({}));
    let s = subject("alice", Some("alice@example.org"));
    let d = conn.discover(&s).await.expect("discover");
    let acts = actions(&conn, &s, &d);
    w.bao.rate_limit("everyone", 4.0, "1s").expect("quota");
    let out = apply_all(&conn, &acts).await;
    let verdicts = verify_all(&conn, &acts).await;
    w.bao.remove_rate_limit("everyone").expect("quota removed");
    assert!(out.iter().all(|(_, o)| *o == Outcome::Done), "{out:?}");
    assert!(
        verdicts.iter().all(|(_, v)| *v == Verdict::Confirmed),
        "{verdicts:?}"
    );
    assert!(conn.rate_limited() > 0, "the quota answered 429");
    assert_eq!(
        conn.early(),
        0,
        "no call left before a Retry-After had passed"
    );
    // Each action's one mutation reached the server once: a refused request changed nothing.
    assert_eq!(w.mutations().len(), acts.len() - 1, "{:#?}", w.mutations());
    eprintln!(
        "quota 4/s: {} calls, {} answered 429, 0 early",
        conn.calls(),
        conn.rate_limited()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_holder_s_rekey_works_on_a_raft_server_and_old_shares_are_refused() {
    let bao = revoke_testkit::OpenBao::start_raft(3, 2).expect("raft openbao");
    let old = bao.unseal_keys().to_vec();
    // The manual step names the API; this runs it as the remaining holders would.
    assert!(
        revoke_connector_vault::rekey_steps(revoke_connector_vault::Flavor::Openbao)
            .contains("sys/rotate/root/update")
    );
    let (status, v) = bao
        .raw(
            bao.root_token(),
            "PUT",
            "sys/rekey/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .expect("legacy rekey answer");
    assert!(
        status >= 400 && v.to_string().contains("unsupported operation"),
        "OpenBao disabled the legacy sys/rekey: {status} {v}"
    );
    let init = bao
        .call(
            "PUT",
            "sys/rotate/root/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .expect("rotate init");
    // The answer is the status itself, at the top or under `data` (as sys/rotate/root is
    // routed as a logical path).
    let field = |v: &serde_json::Value, k: &str| {
        if v[k].is_null() {
            v["data"][k].clone()
        } else {
            v[k].clone()
        }
    };
    let nonce = field(&init, "nonce")
        .as_str()
        .unwrap_or_else(|| panic!("nonce in {init}"))
        .to_string();
    let mut done = serde_json::Value::Null;
    for k in &old[1..3] {
        done = bao
            .call(
                "PUT",
                "sys/rotate/root/update",
                Some(json!({"key": k, "nonce": nonce})),
            )
            .expect("rotate update");
    }
    assert_eq!(field(&done, "complete"), true, "{done}");
    let new: Vec<String> = field(&done, "keys")
        .as_array()
        .expect("new keys")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    assert_eq!(new.len(), 3);
    bao.seal().expect("seal");
    // The leaver's old share (and any old share) no longer unseals.
    let (status, v) = bao
        .raw("", "PUT", "sys/unseal", Some(json!({"key": old[0]})))
        .expect("unseal answer");
    let refused = status >= 400 || v["sealed"] == true;
    let (status2, v2) = bao
        .raw("", "PUT", "sys/unseal", Some(json!({"key": old[1]})))
        .expect("unseal answer");
    assert!(
        refused && (status2 >= 400 || v2["sealed"] == true),
        "old shares must not unseal: {status} {v} / {status2} {v2}"
    );
    bao.call_as("", "PUT", "sys/unseal", Some(json!({"reset": true})))
        .expect("reset");
    for k in &new[..2] {
        bao.unseal(k).expect("a new share");
    }
    bao.wait_active().expect("unsealed with the new shares");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approle_logs_in_once_and_a_namespace_is_searched_alone() {
    let w = world();
    // AppRole: the connector's own role with the least-privilege policy.
    w.bao.enable_auth("approle", "approle").expect("approle");
    w.bao
        .call(
            "POST",
            "auth/approle/role/revoked",
            Some(json!({"token_policies": ["revoked"], "token_ttl": "1h"})),
        )
        .expect("role");
    let role_id = w
        .bao
        .call("GET", "auth/approle/role/revoked/role-id", None)
        .expect("role id")["data"]["role_id"]
        .as_str()
        .expect("role_id")
        .to_string();
    let secret_id = w
        .bao
        .call("POST", "auth/approle/role/revoked/secret-id", None)
        .expect("secret id")["data"]["secret_id"]
        .as_str()
        .expect("secret_id")
        .to_string();
    let mut params = w.params(json!({"role_id": role_id, "secret_id": secret_id}));
    params.as_object_mut().expect("table").remove("token");
    revoke_connector_vault::validate("connectors.vault", &params).expect("valid");
    let conn = revoke_connector_vault::VaultConnector::new(
        "vault",
        revoke_connector_vault::VaultConfig::from_value(&params).expect("typed"),
    )
    .expect("connector");
    conn.check()
        .await
        .expect("the approle's token may read sys/auth");
    let d = conn
        .discover(&subject("alice", Some("alice@example.org")))
        .await
        .expect("discover");
    assert!(d.account(&w.alice).is_some());
    assert_eq!(conn.logins(), 1, "one login, its token kept");
    assert!(
        !format!("{conn:?}").contains(&secret_id),
        "the secret id stays out of Debug"
    );

    // A namespace: its own mounts and entities; the root namespace's alice is not in it.
    w.bao
        .call("POST", "sys/namespaces/team", None)
        .expect("namespace");
    w.bao
        .call(
            "POST",
            "team/sys/auth/userpass",
            Some(json!({"type": "userpass"})),
        )
        .expect("userpass in team");
    w.bao
        .call(
            "POST",
            "team/auth/userpass/users/carol",
            Some(json!({"password": "pw"})),
        )
        .expect("carol");
    let carol = w
        .bao
        .call_as(
            "",
            "POST",
            "team/auth/userpass/login/carol",
            Some(json!({"password": "pw"})),
        )
        .expect("carol logs in")["auth"]["entity_id"]
        .as_str()
        .expect("entity")
        .to_string();
    let team = w.connector(json!({
        "token": w.bao.root_token(),
        "namespace": "team",
        "mounts": {"userpass": {"type": "userpass"}},
        "key_holders": [],
    }));
    let d = team
        .discover(&subject("carol", None))
        .await
        .expect("discover carol");
    assert_eq!(
        d.accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [carol.as_str()]
    );
    let d = team
        .discover(&subject("alice", None))
        .await
        .expect("discover alice in team");
    assert!(
        !d.found,
        "alice lives in the root namespace: {:?}",
        d.accounts
    );
    let s = subject("carol", None);
    let d = team.discover(&s).await.expect("discover");
    let out = apply_all(&team, &actions(&team, &s, &d)).await;
    assert!(out.iter().all(|(_, o)| *o == Outcome::Done), "{out:?}");
    assert!(
        w.bao
            .call("GET", &format!("team/identity/entity/id/{carol}"), None)
            .is_err(),
        "carol's entity is deleted in the namespace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_costs_one_lookup_per_mount_and_group_plus_one_per_token_in_the_cluster() {
    let w = world();
    // More tokens in the cluster that are nobody's leaver: each costs a lookup at discovery.
    for _ in 0..20 {
        w.bao.token(&["default"]).expect("a token");
    }
    let live = w
        .bao
        .call("LIST", "auth/token/accessors", None)
        .expect("list")["data"]["keys"]
        .as_array()
        .expect("keys")
        .len() as u64;
    let s = subject("alice", Some("alice@example.org"));
    let scan = w.connector(json!({}));
    scan.discover(&s).await.expect("discover");
    let quick = w.connector(json!({"scan_tokens": false}));
    quick.discover(&s).await.expect("discover");
    // sys/auth, one lookup per configured mount (2), one read per direct group (2); the scan:
    // LIST, then one lookup per live token.
    assert_eq!(quick.calls(), 1 + 2 + 2);
    assert_eq!(scan.calls(), 1 + 2 + 2 + 1 + live);
    eprintln!(
        "discovery of one leaver: {} calls without the token scan, {} with it ({live} live tokens in the cluster)",
        quick.calls(),
        scan.calls()
    );
    let many: Vec<_> = ["alice", "bob", "boss"]
        .into_iter()
        .map(|u| subject(u, None))
        .collect();
    let shared = w.connector(json!({}));
    shared.discover_many(&many).await.expect("discover many");
    eprintln!(
        "discover_many of 3 leavers: {} calls (one sys/auth and one scan shared)",
        shared.calls()
    );
    assert!(shared.calls() < 3 * (1 + 1 + live));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_scan_userpass_logins_are_revoked_by_prefix_and_verified_by_a_scan() {
    let w = world();
    let conn = w.connector(json!({"scan_tokens": false, "delete": false}));
    let s = subject("alice", Some("alice@example.org"));
    let d = conn.discover(&s).await.expect("discover");
    assert!(
        d.notes.iter().any(|n| n.contains("tokens not scanned")),
        "{:?}",
        d.notes
    );
    let acts = actions(&conn, &s, &d);
    let blind = acts
        .iter()
        .find(|a| a.kind.0 == REVOKE_LOGIN_TOKENS)
        .expect("a revoke-prefix planned blind");
    assert_eq!(blind.params["accessors"], "");
    assert!(!acts.iter().any(|a| a.kind.0 == REVOKE_TOKEN), "{acts:#?}");
    let out = apply_all(&conn, &acts).await;
    assert!(out.iter().all(|(_, o)| *o == Outcome::Done), "{out:?}");
    for l in &w.alice_logins {
        assert!(!w.bao.accessor_alive(&l.accessor).expect("lookup"));
    }
    // The token-role token is not revoked, but refused: its entity is disabled.
    assert!(w.bao.accessor_alive(&w.alice_ci.accessor).expect("lookup"));
    let (status, _) = w
        .bao
        .raw(&w.alice_ci.token, "GET", "auth/token/lookup-self", None)
        .expect("answer");
    assert_eq!(status, 403, "a disabled entity's token is refused");
    let verdicts = verify_all(&conn, &acts).await;
    assert!(
        verdicts.iter().all(|(_, v)| *v == Verdict::Confirmed),
        "{verdicts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_the_cluster_lacks_is_said_in_the_notes_and_a_stranger_is_not_found() {
    let w = world();
    let conn = w.connector(json!({
        "mounts": {
            "userpass": {"type": "userpass"},
            "corp/ldap": {"type": "ldap"},
            "oidc": {"type": "jwt", "alias": "email"},
        },
        "key_holders": [],
    }));
    let d = conn
        .discover(&subject("alice", Some("alice@example.org")))
        .await
        .expect("discover");
    assert!(d.found);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("corp/ldap/") && n.contains("not enabled")),
        "{:?}",
        d.notes
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("oidc/") && n.contains("configured as jwt")),
        "{:?}",
        d.notes
    );
    let d = conn
        .discover(&subject("stranger", Some("stranger@example.org")))
        .await
        .expect("discover");
    assert!(!d.found && d.accounts.is_empty() && d.findings.is_empty());
    assert!(w.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_delays_only_the_deletes_and_the_vault_flavor_names_sys_rekey() {
    let w = world();
    let conn = w.connector(json!({"retention_days": 30, "flavor": "vault"}));
    let s = subject("alice", Some("alice@example.org"));
    let d = conn.discover(&s).await.expect("discover");
    let acts = actions(&conn, &s, &d);
    for a in &acts {
        let want = (a.phase == Phase::Delete).then(|| Duration::from_secs(30 * 86_400));
        assert_eq!(a.grace, want, "{} {}", a.kind, a.target);
    }
    assert!(acts.iter().any(|a| a.kind.0 == DELETE_ENTITY));
    let rekey = acts
        .iter()
        .find(|a| a.kind.0 == ROTATE_ROOT_KEY)
        .expect("the rekey step");
    assert!(
        rekey.params["api"].contains("sys/rekey/init")
            && !rekey.params["api"].contains("sys/rotate/root"),
        "{}",
        rekey.params["api"]
    );
    // Switches off: no token, group, policy or delete action; the contain stays.
    let off = w.connector(json!({
        "revoke_tokens": false, "remove_groups": false, "remove_policies": false,
        "delete": false, "key_holders": [],
    }));
    let d = off.discover(&s).await.expect("discover");
    let kinds: Vec<String> = actions(&off, &s, &d)
        .into_iter()
        .map(|a| a.kind.0)
        .collect();
    assert_eq!(kinds, [DISABLE_ENTITY]);
    assert!(w.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_a_capability_is_an_auth_error_and_changes_nothing() {
    let w = world();
    let nothing = w
        .bao
        .token(&["default"])
        .expect("a token with no rights here");
    let conn = w.connector(json!({"token": nothing.token}));
    let e = conn
        .check()
        .await
        .expect_err("default may not read sys/auth");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("auth", "permission_denied"),
        "{e}"
    );
    // The policy without group updates: the group removal is refused, nothing else moves.
    let no_groups = common::POLICY.replace(
        r#"path "identity/group/id/*" { capabilities = ["read", "update"] }"#,
        r#"path "identity/group/id/*" { capabilities = ["read"] }"#,
    );
    assert_ne!(no_groups, common::POLICY);
    w.bao.put_policy("no-groups", &no_groups).expect("policy");
    let weak = w.bao.token(&["no-groups"]).expect("token");
    let conn = w.connector(json!({"token": weak.token}));
    let s = subject("alice", None);
    let d = conn.discover(&s).await.expect("discover");
    let acts = actions(&conn, &s, &d);
    let removal = acts
        .iter()
        .find(|a| a.kind.0 == REMOVE_GROUP)
        .expect("a group removal");
    let e = conn
        .apply(
            removal,
            &ActionKey(removal.key.0.clone()),
            &MemoryJournal::new(),
        )
        .await
        .expect_err("refused");
    assert_eq!(
        (e.class.name(), e.code.as_str()),
        ("auth", "permission_denied"),
        "{e}"
    );
    assert!(e.message.contains("permission denied"), "{}", e.message);
    let g = w.bao.group(&w.ops).expect("read").expect("ops");
    assert!(g["member_entity_ids"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m == w.alice.as_str()));
}

/// An RSA key pair made by openssl: the PKCS#8 private key and the SPKI public key, PEM.
fn rsa_pair() -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let key_s = key.to_str().expect("utf-8");
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key_s,
    ]);
    let public = run(&["pkey", "-in", key_s, "-pubout"]);
    (std::fs::read_to_string(&key).expect("key"), public)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_login_s_tokens_are_revoked_by_accessor_and_the_login_stays_for_others() {
    let w = world();
    let (private, public) = rsa_pair();
    let issuer = "https://idp.example.org";
    w.bao
        .enable_jwt("jwt", &public, issuer, "people", "email")
        .expect("jwt mount");
    let signer = revoke_http::jwt::Rs256::from_pkcs8_pem(&private).expect("key");
    let token_of = |email: &str| {
        let now = revoke_http::jwt::now();
        signer
            .sign(&json!({
                "iss": issuer, "aud": "openbao", "sub": email, "email": email,
                "groups": ["admins"], "iat": now, "exp": now + 600,
            }))
            .expect("signed")
    };
    // An external group fed by the token's groups claim: dana is in it by her provider.
    let role = w
        .bao
        .call("GET", "auth/jwt/role/people", None)
        .expect("role")["data"]
        .clone();
    assert_eq!(role["user_claim"], "email");
    w.bao
        .call(
            "POST",
            "auth/jwt/role/people",
            Some(json!({
                "role_type": "jwt", "user_claim": "email", "groups_claim": "groups",
                "bound_audiences": ["openbao"], "token_policies": ["default"],
            })),
        )
        .expect("groups claim");
    let ext = w
        .bao
        .call(
            "POST",
            "identity/group",
            Some(json!({"name": "idp-admins", "type": "external"})),
        )
        .expect("external group")["data"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let jwt_acc = w.bao.mount_accessor("jwt").expect("accessor");
    w.bao
        .call(
            "POST",
            "identity/group-alias",
            Some(json!({"name": "admins", "mount_accessor": jwt_acc, "canonical_id": ext})),
        )
        .expect("group alias");
    let dana: Vec<_> = (0..2)
        .map(|_| {
            w.bao
                .login_jwt("jwt", "people", &token_of("dana@example.org"))
                .expect("dana logs in")
        })
        .collect();
    let erin = w
        .bao
        .login_jwt("jwt", "people", &token_of("erin@example.org"))
        .expect("erin logs in");
    let conn = w.connector(json!({
        "mounts": {"jwt": {"type": "jwt", "alias": "email"}},
        "key_holders": [],
    }));
    let s = subject("dana", Some("dana@example.org"));
    let d = conn.discover(&s).await.expect("discover");
    assert_eq!(
        d.accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [dana[0].entity_id.as_str()]
    );
    let acts = actions(&conn, &s, &d);
    let revokes: Vec<&str> = acts
        .iter()
        .filter(|a| a.kind.0 == REVOKE_TOKEN)
        .map(|a| a.params["path"].as_str())
        .collect();
    assert_eq!(revokes, ["auth/jwt/login", "auth/jwt/login"], "{acts:#?}");
    assert!(
        !acts.iter().any(|a| a.kind.0 == REVOKE_LOGIN_TOKENS),
        "no prefix revocation on a shared login path: it would end everyone's"
    );
    // The external group: reported, never written (its members are the provider's).
    assert!(
        d.findings
            .iter()
            .any(|f| f.kind == "group_membership" && f.attrs["group_type"] == "external"),
        "{:#?}",
        d.findings
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("external group idp-admins")),
        "{:?}",
        d.notes
    );
    assert!(!acts.iter().any(|a| a.kind.0 == REMOVE_GROUP), "{acts:#?}");
    let out = apply_all(&conn, &acts).await;
    assert!(out.iter().all(|(_, o)| *o == Outcome::Done), "{out:?}");
    for l in &dana {
        assert!(!w.bao.accessor_alive(&l.accessor).expect("lookup"));
    }
    assert!(
        w.bao.accessor_alive(&erin.accessor).expect("lookup"),
        "erin keeps her token"
    );
    assert!(w.bao.entity(&erin.entity_id).expect("read").is_some());
    let again = apply_all(&conn, &acts).await;
    assert!(
        again.iter().all(|(_, o)| *o == Outcome::AlreadyDone),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_userpass_user_no_alias_ties_to_the_entity_any_more_is_left_alone() {
    let w = world();
    let conn = w.connector(json!({"key_holders": []}));
    let s = subject("alice", None);
    let d = conn.discover(&s).await.expect("discover");
    let acts = actions(&conn, &s, &d);
    let delete_user = acts
        .iter()
        .find(|a| a.kind.0 == "delete_userpass_user")
        .expect("the userpass user's delete");
    // Someone removes the alias that tied the userpass user alice to the entity.
    let alias = d
        .findings
        .iter()
        .find(|f| f.kind == "alias" && f.attrs["mount_path"] == "userpass")
        .expect("the userpass alias");
    w.bao
        .call(
            "DELETE",
            &format!("identity/entity-alias/id/{}", alias.target),
            None,
        )
        .expect("alias removed");
    let e = conn
        .apply(
            delete_user,
            &ActionKey(delete_user.key.0.clone()),
            &MemoryJournal::new(),
        )
        .await
        .expect_err("not proven to be the leaver's");
    assert_eq!(e.code, "identity_unproven", "{e}");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert_eq!(
        w.bao
            .raw(w.bao.root_token(), "GET", "auth/userpass/users/alice", None)
            .expect("read")
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_holder_without_any_login_still_gets_the_rekey_step() {
    let w = world();
    let conn = w.connector(json!({"key_holders": ["ops-lead@example.org"]}));
    let mut s = subject("frank", Some("Ops-Lead@example.org"));
    s.employee_id = Some("E-77".into());
    let d = conn.discover(&s).await.expect("discover");
    assert!(d.found, "a key holder is found by the config alone");
    assert_eq!(
        d.accounts
            .iter()
            .map(|a| (a.id.as_str(), a.id_kind.as_str()))
            .collect::<Vec<_>>(),
        [(
            "key-holder:ops-lead@example.org",
            revoke_connector_vault::KEY_HOLDER_ENTRY
        )]
    );
    let acts = actions(&conn, &s, &d);
    assert_eq!(acts.len(), 1, "{acts:#?}");
    assert_eq!(
        (
            acts[0].connector.as_str(),
            acts[0].kind.0.as_str(),
            acts[0].target.as_str()
        ),
        ("manual", ROTATE_ROOT_KEY, "vault.root_key")
    );
    assert!(w.mutations().is_empty());
}

/// Each action read back alone, then all together: the verdicts and the calls each way.
async fn side_by_side(
    conn: &revoke_connector_vault::VaultConnector,
    acts: &[Action],
) -> (Vec<Verdict>, u64, u64) {
    let before = conn.calls();
    let mut one = Vec::new();
    for a in acts {
        one.push(conn.verify(a).await.expect("verify"));
    }
    let alone = conn.calls() - before;
    let before = conn.calls();
    let many: Vec<Verdict> = conn
        .verify_many(acts)
        .await
        .into_iter()
        .map(|r| r.expect("verify_many"))
        .collect();
    let together = conn.calls() - before;
    assert_eq!(one, many, "verify_many must say what verify says");
    (many, alone, together)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_many_reads_the_entity_once_and_says_what_verify_says() {
    let w = world();
    let conn = w.connector(json!({}));
    assert!(conn.batch_verification());
    let s = subject("alice", Some("alice@example.org"));
    let d = conn.discover(&s).await.expect("discover");
    let acts: Vec<Action> = actions(&conn, &s, &d)
        .into_iter()
        .filter(|a| a.phase != Phase::Manual)
        .collect();
    let n = acts.len();

    // Nothing applied yet: nothing is confirmed, either way.
    let (v, alone0, together0) = side_by_side(&conn, &acts).await;
    assert!(
        v.iter().all(|v| matches!(v, Verdict::NotConfirmed { .. })),
        "{v:?}"
    );

    // Contain and revoke applied, the deletes not yet (as during retention).
    let early: Vec<Action> = acts
        .iter()
        .filter(|a| a.phase != Phase::Delete)
        .cloned()
        .collect();
    apply_all(&conn, &early).await;
    let (v, alone1, together1) = side_by_side(&conn, &acts).await;
    for (a, v) in acts.iter().zip(&v) {
        assert_eq!(
            a.phase != Phase::Delete,
            *v == Verdict::Confirmed,
            "{} {}: {v:?}",
            a.kind,
            a.target
        );
    }

    // Everything applied.
    apply_all(&conn, &acts).await;
    let (v, alone2, together2) = side_by_side(&conn, &acts).await;
    assert!(v.iter().all(|v| *v == Verdict::Confirmed), "{v:?}");
    assert!(together1 < alone1 && together2 < alone2);

    // bob's entity deleted while still in ops (his group removal never ran): Vault took him out
    // of the group with the entity, and both ways say so (a group read one by one, the entity's
    // absence together).
    let bob = subject("bob", None);
    let db = conn.discover(&bob).await.expect("discover bob");
    let bob_acts: Vec<Action> = actions(&conn, &bob, &db)
        .into_iter()
        .filter(|a| [REMOVE_GROUP, DELETE_ENTITY].contains(&a.kind.0.as_str()))
        .collect();
    assert_eq!(bob_acts.len(), 2, "{bob_acts:#?}");
    w.bao
        .call("DELETE", &format!("identity/entity/id/{}", w.bob), None)
        .expect("bob's entity deleted");
    let (v, _, _) = side_by_side(&conn, &bob_acts).await;
    assert!(v.iter().all(|v| *v == Verdict::Confirmed), "{v:?}");
    eprintln!(
        "verify {n} actions of one leaver, calls one by one vs verify_many: nothing applied {alone0} vs {together0}; contain and revoke applied {alone1} vs {together1}; all applied {alone2} vs {together2}"
    );
}
