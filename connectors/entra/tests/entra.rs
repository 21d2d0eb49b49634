//! The Entra connector against the Graph stand-in of crates/testkit, behind the validating
//! proxy (Microsoft's own v1.0 description, openapi-core): the plan of an odd tenant
//! (snapshot), batched discovery equal to one-by-one discovery, apply end to end and a rerun
//! that sends nothing, verify (a skipped group removal is honestly not confirmed), hostile
//! identifiers, a UPN reused after planning, a 429 storm with Retry-After, a concurrent run
//! under a tight write budget, and the token's failures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use revoke_connector_entra::{
    validate, EntraConfig, EntraConnector, DELETE_USER, DISABLE_USER, PURGE_USER, REMOVE_GROUP,
    REMOVE_LICENSE, REVOKE_SESSIONS,
};
use revoke_core::{
    Action, Connector, ConnectorError, Discovery, JobId, Journal, JournalEntry, MemoryJournal,
    Outcome, Phase, Subject, Verdict,
};
use revoke_testkit::entra::{EntraStandin, GroupKind};
use serde_json::{json, Value};

const ENTRA: &str = "corp-entra";

fn standin() -> EntraStandin {
    EntraStandin::start_validated().expect("the entra stand-in and its proxy should start")
}

fn config(e: &EntraStandin, extra: Value) -> Value {
    let mut v = json!({
        "kind": "entra",
        "tenant_id": e.tenant_id(),
        "client_id": e.client_id(),
        "client_secret": e.client_secret(),
        "token_url": e.token_url(),
        "graph_url": e.graph_url(),
    });
    if let (Some(m), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in x {
            m.insert(k.clone(), val.clone());
        }
    }
    v
}

fn connector(e: &EntraStandin, extra: Value) -> Arc<EntraConnector> {
    let v = config(e, extra);
    if let Err(issues) = validate("connectors.entra", &v) {
        panic!("config should be valid: {issues:?}");
    }
    Arc::new(
        EntraConnector::new(ENTRA, EntraConfig::from_value(&v).expect("config"))
            .expect("connector"),
    )
}

fn subject(email: &str) -> Subject {
    let mut s = Subject::new(email.split('@').next().unwrap_or(email));
    s.email = Some(email.to_string());
    s
}

/// A journal whose attempt number is set: above 1, the connector reads before it writes.
#[derive(Debug, Default, Clone)]
struct Attempt {
    n: u32,
    inner: Arc<MemoryJournal>,
}

#[async_trait]
impl Journal for Attempt {
    async fn record(&self, name: &str, value: &str) -> Result<(), ConnectorError> {
        self.inner.record(name, value).await
    }
    async fn entries(&self) -> Result<Vec<JournalEntry>, ConnectorError> {
        self.inner.entries().await
    }
    fn attempt(&self) -> u32 {
        self.n
    }
}

/// The actions of a discovery, as the planner makes them (manual ones included).
fn actions(conn: &EntraConnector, s: &Subject, d: &Discovery) -> Vec<Action> {
    Action::from_proposals(&JobId("job-1".into()), ENTRA, d, conn.plan(s, d)).expect("a valid plan")
}

/// Applies every action the connector owns, earliest phase first, each with its journal.
async fn apply_all(
    conn: &EntraConnector,
    acts: &[Action],
    journals: &BTreeMap<String, Attempt>,
) -> Vec<(String, Result<Outcome, ConnectorError>)> {
    let mut out = Vec::new();
    for phase in [Phase::Contain, Phase::Revoke, Phase::Delete] {
        for a in acts
            .iter()
            .filter(|a| a.phase == phase && a.connector == ENTRA)
        {
            let j = &journals[&a.id.0];
            out.push((
                a.target.clone() + " " + &a.kind.0,
                conn.apply(a, &a.key, j).await,
            ));
        }
    }
    out
}

/// The same journals, at another attempt.
fn next_attempt(js: &BTreeMap<String, Attempt>, n: u32) -> BTreeMap<String, Attempt> {
    js.iter()
        .map(|(k, j)| {
            (
                k.clone(),
                Attempt {
                    n,
                    inner: j.inner.clone(),
                },
            )
        })
        .collect()
}

fn journals(acts: &[Action], attempt: u32) -> BTreeMap<String, Attempt> {
    acts.iter()
        .map(|a| {
            (
                a.id.0.clone(),
                Attempt {
                    n: attempt,
                    inner: Arc::new(MemoryJournal::new()),
                },
            )
        })
        .collect()
}

/// A plan and discovery as people read them, with the stand-in's ids (deterministic).
fn render(conn: &EntraConnector, s: &Subject, d: &Discovery) -> Value {
    let accounts: Vec<Value> = d
        .accounts
        .iter()
        .map(|a| json!({"id": a.id, "name": a.name, "matched_by": a.matched_by, "identifiers": a.identifiers}))
        .collect();
    let plan: Vec<String> = conn
        .plan(s, d)
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
        .collect();
    json!({"subject": s.id, "found": d.found, "accounts": accounts, "notes": d.notes, "plan": plan})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_of_an_odd_tenant() {
    let e = standin();
    e.set_page_size(4);
    let (odd, leaver) = e.world(|w| (w.odd_tenant(), w.leaver("leaver@contoso.com")));
    let conn = connector(
        &e,
        json!({"identifiers": ["userPrincipalName", "mail", "otherMails", "proxyAddresses",
            "employeeId", "onPremisesImmutableId", "onPremisesSamAccountName"],
            "remove_auth_methods": true, "purge_deleted": true, "retention_days": 30}),
    );
    let mut guest = Subject::new("ext.user@fabrikam.com");
    guest.email = Some("ext.user@fabrikam.com".into());
    let subjects = vec![
        subject("o'brien@contoso.com"),
        subject("alias.target@contoso.com"),
        guest,
        subject("reused@contoso.com"),
        subject("many.groups@contoso.com"),
        Subject::new("SYNCED01"),
        subject("leaver@contoso.com"),
        subject("nobody@contoso.com"),
    ];
    let batched = conn.discover_many(&subjects).await.expect("discovery");
    let batched_counts = conn.counts();
    // The same discovery one by one, without $batch.
    let single = connector(
        &e,
        json!({"identifiers": ["userPrincipalName", "mail", "otherMails", "proxyAddresses",
            "employeeId", "onPremisesImmutableId", "onPremisesSamAccountName"],
            "remove_auth_methods": true, "purge_deleted": true, "retention_days": 30,
            "batch_size": 1}),
    );
    let mut one_by_one = Vec::new();
    for s in &subjects {
        one_by_one.push(single.discover(s).await.expect("discovery"));
    }
    assert_eq!(batched, one_by_one, "batched and single discovery agree");
    assert_eq!(
        batched_counts.calls,
        single.counts().calls,
        "the same reads"
    );
    assert!(
        batched_counts.round_trips * 3 < single.counts().round_trips,
        "batching saves round trips: {batched_counts:?} vs {:?}",
        single.counts()
    );
    assert!(e.mutations().is_empty(), "discovery writes nothing");

    let by_id = |d: &Discovery, id: &str| d.accounts.iter().any(|a| a.id == id);
    // The quote is doubled, found; the alias owner is not planned for the alias target.
    assert!(by_id(&batched[0], &odd.quoted));
    assert!(by_id(&batched[1], &odd.alias_target) && !by_id(&batched[1], &odd.alias_owner));
    assert!(batched[1]
        .notes
        .iter()
        .any(|n| n.contains(&odd.alias_owner) && n.contains("not planned")));
    assert!(by_id(&batched[2], &odd.guest));
    assert!(by_id(&batched[3], &odd.reused_new) && !by_id(&batched[3], &odd.reused_old));
    let many = batched[4]
        .findings
        .iter()
        .filter(|f| f.kind == "group_membership")
        .count();
    assert_eq!(many, odd.many_group_ids.len(), "every page of memberOf");
    assert!(by_id(&batched[5], &odd.synced));
    assert!(by_id(&batched[6], &leaver.user));
    assert!(!batched[7].found);
    let rendered: Vec<Value> = subjects
        .iter()
        .zip(&batched)
        .map(|(s, d)| render(&conn, s, d))
        .collect();
    insta::assert_json_snapshot!("plan_odd_tenant", rendered);
    e.assert_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_end_to_end_verify_and_a_rerun_that_sends_nothing() {
    let e = standin();
    e.set_page_size(3);
    let (l, bob) = e.world(|w| {
        let l = w.leaver("leaver@contoso.com");
        let bob = w.user("bob@contoso.com");
        w.add_member(&l.security, &bob);
        (l, bob)
    });
    let conn = connector(
        &e,
        json!({"remove_auth_methods": true, "purge_deleted": true}),
    );
    let s = subject("leaver@contoso.com");
    let d = conn.discover(&s).await.expect("discovery");
    let acts = actions(&conn, &s, &d);
    let mut manual: Vec<&str> = acts
        .iter()
        .filter(|a| a.phase == Phase::Manual)
        .map(|a| a.kind.0.as_str())
        .collect();
    manual.sort_unstable();
    assert_eq!(
        manual,
        [
            "change_dynamic_rule",
            "remove_in_active_directory",
            "remove_in_exchange",
            "remove_in_exchange",
        ],
        "one person's step per group Graph cannot change"
    );
    // Contain and revoke first; delete comes after the verdicts.
    let first = journals(&acts, 1);
    let not_delete: Vec<Action> = acts
        .iter()
        .filter(|a| a.phase != Phase::Delete)
        .cloned()
        .collect();
    let outcomes = apply_all(&conn, &not_delete, &first).await;
    let mut skipped = 0;
    for (what, o) in &outcomes {
        match o {
            Ok(Outcome::Done) => {}
            Ok(Outcome::Skipped { reason }) => {
                skipped += 1;
                assert!(
                    what.ends_with(REMOVE_GROUP) || what.ends_with(REMOVE_LICENSE),
                    "{what}: {reason}"
                );
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(
        skipped, 5,
        "four groups and the group-assigned licence: {outcomes:#?}"
    );
    let u = e.user(&l.user).expect("the leaver");
    assert!(!u.account_enabled);
    assert_eq!(u.revocations, 1);
    let groups = e.world(|w| w.groups_of(&l.user));
    for g in [&l.security, &l.unified] {
        assert!(!groups.contains(g), "removed from {g}");
    }
    for g in [&l.mail_security, &l.distribution, &l.dynamic, &l.on_prem] {
        assert!(groups.contains(g), "graph cannot change {g}");
    }
    assert!(e.world(|w| w.roles_of(&l.user)).is_empty());
    assert!(e.world(|w| w.apps_of(&l.user)).is_empty());
    let methods = e.world(|w| w.methods_of(&l.user));
    assert_eq!(
        methods.len(),
        1,
        "only the password method is left: {methods:?}"
    );
    assert_eq!(
        u.licenses
            .iter()
            .map(|x| x.sku_id.as_str())
            .collect::<Vec<_>>(),
        [l.group_sku.as_str()],
        "the direct licence is removed, the group's stays"
    );
    assert_eq!(
        e.world(|w| w.groups_of(&bob)),
        vec![l.security.clone()],
        "bob stays"
    );

    // Verify: confirmed, but the skipped group removals, which say which manual step is left.
    for a in not_delete.iter().filter(|a| a.connector == ENTRA) {
        let v = conn.verify(a).await.expect("verify");
        let kind = a.params.get("group_kind").map(String::as_str).unwrap_or("");
        if a.kind.0 == REMOVE_GROUP && !["security", "microsoft_365"].contains(&kind) {
            match v {
                Verdict::NotConfirmed { detail } => {
                    assert!(
                        detail.contains(&format!("only the manual step {ENTRA}.{}", a.target)),
                        "{detail}"
                    )
                }
                other => panic!("{}: {other:?}", a.target),
            }
        } else {
            assert_eq!(v, Verdict::Confirmed, "{} {}", a.kind, a.target);
        }
    }
    // The same verdicts read back together: each read once, in $batch requests.
    let owned: Vec<Action> = not_delete
        .iter()
        .filter(|a| a.connector == ENTRA)
        .cloned()
        .collect();
    let mut singles = Vec::new();
    for a in &owned {
        singles.push(conn.verify(a).await.expect("verify"));
    }
    e.clear_requests();
    let before = conn.counts();
    let many: Vec<Verdict> = conn
        .verify_many(&owned)
        .await
        .into_iter()
        .map(|v| v.expect("verify"))
        .collect();
    assert_eq!(
        many, singles,
        "one verdict per action, in order, as verify says"
    );
    let after = conn.counts();
    // The user, memberOf (what is left of it: 2 pages of 3), app roles, role assignments,
    // methods: 6 reads for 20 actions, in one round trip per round of pages and the objects.
    assert_eq!(owned.len(), 20);
    assert_eq!(after.calls - before.calls, 6, "{before:?} {after:?}");
    assert!(
        after.round_trips - before.round_trips <= 4,
        "{before:?} {after:?}"
    );
    assert!(e.mutations().is_empty());

    // Once the membership is gone (a person did the manual step), the verdict is confirmed:
    // the same action read against a distribution list the leaver is not in.
    let empty_dl = e.world(|w| w.group("Former DL", GroupKind::Distribution));
    let mut dl = acts
        .iter()
        .find(|a| a.kind.0 == REMOVE_GROUP && a.params.get("group_id") == Some(&l.distribution))
        .expect("the distribution list's removal")
        .clone();
    dl.params.insert("group_id".into(), empty_dl);
    assert_eq!(conn.verify(&dl).await.expect("verify"), Verdict::Confirmed);

    // The same actions again, as after a lost answer (attempt 2): nothing is sent.
    e.clear_requests();
    let again = apply_all(&conn, &not_delete, &next_attempt(&first, 2)).await;
    for (what, o) in &again {
        assert!(
            matches!(o, Ok(Outcome::AlreadyDone) | Ok(Outcome::Skipped { .. })),
            "{what}: {o:?}"
        );
    }
    assert!(e.mutations().is_empty(), "{:#?}", e.mutations());
    // A first attempt whose journal says the sessions were revoked sends nothing either.
    let sessions = acts
        .iter()
        .find(|a| a.kind.0 == REVOKE_SESSIONS)
        .expect("sessions");
    assert_eq!(
        conn.apply(sessions, &sessions.key, &first[&sessions.id.0])
            .await
            .expect("apply"),
        Outcome::AlreadyDone
    );

    // Delete, purge, and their verdicts; a second delete and purge are already done.
    let deletes: Vec<Action> = acts
        .iter()
        .filter(|a| a.phase == Phase::Delete)
        .cloned()
        .collect();
    assert_eq!(
        deletes
            .iter()
            .map(|a| a.kind.0.as_str())
            .collect::<Vec<_>>(),
        [DELETE_USER, PURGE_USER]
    );
    for (what, o) in apply_all(&conn, &deletes, &first).await {
        assert_eq!(o.expect(&what), Outcome::Done, "{what}");
    }
    assert!(e.user(&l.user).is_none() && e.world(|w| w.deleted(&l.user).is_none()));
    for a in &deletes {
        assert_eq!(conn.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
    for (what, o) in apply_all(&conn, &deletes, &first).await {
        assert_eq!(o.expect(&what), Outcome::AlreadyDone, "{what}");
    }
    // Disabling a user that is gone is done, when nobody else holds its UPN.
    let disable = acts
        .iter()
        .find(|a| a.kind.0 == DISABLE_USER)
        .expect("disable");
    assert_eq!(
        conn.apply(disable, &disable.key, &first[&disable.id.0])
            .await
            .expect("apply"),
        Outcome::AlreadyDone
    );
    e.assert_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_upn_reused_after_planning_gets_nothing() {
    let e = standin();
    let (old, g) = e.world(|w| {
        let old = w.user("reused@contoso.com");
        let g = w.group("Engineering", GroupKind::Security);
        w.add_member(&g, &old);
        (old, g)
    });
    let conn = connector(&e, json!({}));
    let s = subject("reused@contoso.com");
    let d = conn.discover(&s).await.expect("discovery");
    let acts = actions(&conn, &s, &d);
    // The leaver is deleted and the UPN given to a new hire, who joins the same group.
    let new = e.world(|w| {
        let new = w.reuse_upn(&old).expect("reused");
        w.add_member(&g, &new);
        new
    });
    e.clear_requests();
    let outcomes = apply_all(&conn, &acts, &journals(&acts, 1)).await;
    for (what, o) in &outcomes {
        if what.ends_with(DELETE_USER) {
            // The pinned user is in the deleted items: its delete holds.
            assert_eq!(o.as_ref().expect(what), &Outcome::AlreadyDone);
        } else {
            let err = o.as_ref().expect_err(what);
            assert_eq!(err.code, "identity_changed", "{what}: {err}");
            assert!(err.message.contains(&new), "{}", err.message);
        }
    }
    let newbie = e.user(&new).expect("the new hire");
    assert!(newbie.account_enabled && newbie.revocations == 0);
    assert_eq!(e.world(|w| w.groups_of(&new)), vec![g.clone()]);
    assert!(
        e.requests().iter().all(|r| !r.path.contains(&new)),
        "nothing names the new object: {:#?}",
        e.requests()
    );
    e.assert_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_match_nothing_but_themselves() {
    let e = standin();
    e.world(|w| {
        w.user("alice@contoso.com");
        w.user("o'brien@contoso.com");
    });
    let conn = connector(&e, json!({}));
    for hostile in [
        "x' or accountEnabled eq true or mail eq 'y@contoso.com",
        "alice@contoso.com' or '1' eq '1",
        "*@contoso.com",
        "../users@contoso.com",
    ] {
        let d = conn.discover(&subject(hostile)).await.expect("a no-match");
        assert!(!d.found, "{hostile}: {:?}", d.accounts);
    }
    let d = conn
        .discover(&subject("O'Brien@contoso.com"))
        .await
        .expect("found");
    assert!(d.found, "the quote doubled, the case ignored");
    let before = e.requests().len();
    let err = conn
        .discover(&subject("alice@contoso.com\nx"))
        .await
        .expect_err("refused");
    assert_eq!(err.code, "bad_identifier");
    assert_eq!(e.requests().len(), before, "nothing was sent");
    assert!(e.mutations().is_empty());
    e.assert_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_converges_with_no_early_request() {
    let e = standin();
    let ids: Vec<String> = e.world(|w| {
        let g = w.group("Engineering", GroupKind::Security);
        (0..3)
            .map(|i| {
                let u = w.user(&format!("storm{i}@contoso.com"));
                w.add_member(&g, &u);
                u
            })
            .collect()
    });
    let conn = connector(&e, json!({"delete_users": false}));
    let subjects: Vec<Subject> = (0..3)
        .map(|i| subject(&format!("storm{i}@contoso.com")))
        .collect();
    // Discovery: a batch whose parts are throttled fails as rate_limited with the wait; after
    // it, the same discovery succeeds.
    e.storm(2, 1);
    let err = conn.discover_many(&subjects).await.expect_err("throttled");
    assert_eq!(err.class.name(), "rate_limited", "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    tokio::time::sleep(err.retry_after().unwrap_or_default()).await;
    let ds = conn.discover_many(&subjects).await.expect("discovery");
    // Apply as the executor would: a rate_limited action is tried again after its wait.
    e.storm(4, 1);
    for (s, d) in subjects.iter().zip(&ds) {
        let acts = actions(&conn, s, d);
        let js = journals(&acts, 1);
        for a in acts.iter().filter(|a| a.connector == ENTRA) {
            let mut tries = 0;
            loop {
                tries += 1;
                match conn.apply(a, &a.key, &js[&a.id.0]).await {
                    Ok(_) => break,
                    Err(err) if err.class.name() == "rate_limited" && tries < 10 => {
                        tokio::time::sleep(err.retry_after().unwrap_or_default()).await;
                    }
                    Err(err) => panic!("{}: {err}", a.target),
                }
            }
        }
    }
    assert!(e.throttled() >= 6, "the storms happened: {}", e.throttled());
    assert_eq!(e.early_requests(), 0, "no call came before its Retry-After");
    for u in &ids {
        assert!(!e.user(u).expect("user").account_enabled);
        assert!(e.world(|w| w.groups_of(u)).is_empty());
    }
    e.assert_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leavers_applied_concurrently_under_a_tight_write_budget_get_no_429() {
    let e = standin();
    let n = 12;
    e.world(|w| {
        let groups: Vec<String> = (0..3)
            .map(|i| w.group(&format!("Team {i}"), GroupKind::Security))
            .collect();
        for i in 0..n {
            let u = w.user(&format!("mass{i}@contoso.com"));
            for g in &groups {
                w.add_member(g, &u);
            }
        }
    });
    // The tenant takes 10 writes per 2 s; the connector is told the same.
    e.set_write_budget(10, Duration::from_secs(2));
    let conn = connector(
        &e,
        json!({"writes_per_window": 10, "window_secs": 2, "delete_users": false}),
    );
    let subjects: Vec<Subject> = (0..n)
        .map(|i| subject(&format!("mass{i}@contoso.com")))
        .collect();
    let ds = conn.discover_many(&subjects).await.expect("discovery");
    let mut tasks = Vec::new();
    for (s, d) in subjects.into_iter().zip(ds) {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let acts = actions(&conn, &s, &d);
            let js = journals(&acts, 1);
            let mut out = Vec::new();
            for (what, o) in apply_all(&conn, &acts, &js).await {
                out.push((what, o.map_err(|e| e.to_string())));
            }
            out
        }));
    }
    for t in tasks {
        for (what, o) in t.await.expect("task") {
            assert_eq!(o, Ok(Outcome::Done), "{what}");
        }
    }
    assert_eq!(
        e.mutations().len(),
        n * 5,
        "disable, sessions, three groups each"
    );
    assert_eq!(e.throttled(), 0, "no 429");
    assert_eq!(conn.counts().throttled, 0);
    assert_eq!(e.early_requests(), 0);
    e.assert_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_bad_secret_is_auth_and_an_expired_token_is_renewed_once() {
    let e = standin();
    e.world(|w| {
        w.user("alice@contoso.com");
    });
    let conn = connector(&e, json!({"client_secret": "wrong~secret"}));
    let err = conn.check().await.expect_err("refused");
    assert_eq!(
        (err.class.name(), err.code.as_str()),
        ("auth", "unauthorized"),
        "{err}"
    );
    assert!(err.message.contains("AADSTS"), "{}", err.message);
    assert!(!err.message.contains("wrong~secret"));

    let conn = connector(&e, json!({}));
    conn.check().await.expect("the token works");
    assert_eq!(e.tokens_issued(), 1);
    conn.discover(&subject("alice@contoso.com"))
        .await
        .expect("discovery");
    assert_eq!(e.tokens_issued(), 1, "the token is kept");
    e.expire_tokens();
    let d = conn
        .discover(&subject("alice@contoso.com"))
        .await
        .expect("a new token, and the call once more");
    assert!(d.found);
    assert_eq!(e.tokens_issued(), 2);
    // The secret never reaches a Graph request.
    let secret = e.client_secret();
    assert!(e
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1.0"))
        .all(
            |r| !r.body.contains(&secret) && !r.query.clone().unwrap_or_default().contains(&secret)
        ));
    e.assert_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_signs_the_client_assertion() {
    let e = standin();
    e.world(|w| {
        w.user("alice@contoso.com");
    });
    let key = e.private_key_pem();
    // By the certificate itself, and by its thumbprint as the portal shows it.
    for extra in [
        json!({"private_key": key, "certificate": e.certificate_pem()}),
        json!({"private_key": key, "certificate_thumbprint": e.certificate_thumbprint()}),
    ] {
        let mut v = config(&e, extra);
        v.as_object_mut().map(|m| m.remove("client_secret"));
        validate("connectors.entra", &v).expect("valid");
        let conn = EntraConnector::new(ENTRA, EntraConfig::from_value(&v).expect("config"))
            .expect("connector");
        conn.check().await.expect("a token from the assertion");
        let d = conn
            .discover(&subject("alice@contoso.com"))
            .await
            .expect("discovery");
        assert!(d.found);
    }
    let token_calls: Vec<String> = e
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .map(|r| r.body)
        .collect();
    assert_eq!(token_calls.len(), 2);
    for body in &token_calls {
        assert!(body.contains("client_assertion="), "{body}");
        assert!(!body.contains("client_secret"), "{body}");
        assert!(!body.contains("PRIVATE"), "the key never leaves: {body}");
    }
    // Another certificate's thumbprint: the token endpoint refuses, classified auth.
    let mut v = config(
        &e,
        json!({"private_key": key, "certificate_thumbprint": "00".repeat(20)}),
    );
    v.as_object_mut().map(|m| m.remove("client_secret"));
    let conn = EntraConnector::new(ENTRA, EntraConfig::from_value(&v).expect("config"))
        .expect("connector");
    let err = conn.check().await.expect_err("refused");
    assert_eq!(err.class.name(), "auth", "{err}");
    // A key that is no key: refused when the connector is built, without quoting it.
    let mut v = config(
        &e,
        json!({"private_key": "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----",
            "certificate_thumbprint": e.certificate_thumbprint()}),
    );
    v.as_object_mut().map(|m| m.remove("client_secret"));
    let err = EntraConnector::new(ENTRA, EntraConfig::from_value(&v).expect("config"))
        .expect_err("refused");
    assert!(
        err.starts_with("private_key: ") && !err.contains("hunter2"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_of_one_person_are_both_planned_and_the_plan_says_why() {
    let e = standin();
    let (main, admin, other) = e.world(|w| {
        let main = w.user("dana@contoso.com");
        let admin = w.user("adm-dana@contoso.com");
        let other = w.user("erin@contoso.com");
        for (u, emp) in [(&main, "E-77"), (&admin, "E-77"), (&other, "E-78")] {
            w.get_mut(u).expect("user").employee_id = Some(emp.into());
        }
        (main, admin, other)
    });
    let conn = connector(&e, json!({}));
    let mut s = subject("dana@contoso.com");
    s.employee_id = Some("E-77".into());
    let d = conn.discover(&s).await.expect("discovery");
    let ids: Vec<&str> = d.accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [main.as_str(), admin.as_str()], "{:#?}", d.accounts);
    assert!(!ids.contains(&other.as_str()));
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("2 Entra users answer to dana")
                && n.contains("employeeId = E-77")),
        "{:?}",
        d.notes
    );
    let acts = actions(&conn, &s, &d);
    for id in [&main, &admin] {
        assert!(
            acts.iter().any(
                |a| a.kind.0 == DISABLE_USER && a.account.as_ref().is_some_and(|p| p.id == *id)
            ),
            "{id} is disabled too"
        );
    }
    e.assert_valid();
}
