//! The AWS Organizations connector against moto_server (started by the testkit on a free port),
//! with moto's request recorder as the witness of what was sent.
//!
//! moto completes CreateAccount and CloseAccount at once and enforces no closure quota; the
//! PENDING_CLOSURE wait is unit-tested in apply.rs, and the quota is asserted on the plan here.

#![allow(clippy::unwrap_used)]

use aws_sdk_organizations::types::{OrganizationFeatureSet, Tag};
use revoke_aws::{sdk_config, AccessConfig};
use revoke_connector_aws_organizations::{
    validate, OrganizationsConfig, OrganizationsConnector, OrganizationsFactory, CLOSED_AT_TAG,
    CLOSE_ACCOUNT, CLOSURE_QUOTA, KIND, MANAGEMENT_ACCOUNT, MEMBER_ACCOUNT, MOVE_ACCOUNT,
};
use revoke_core::{
    Action, ActionKind, Connector, ConnectorFactory, Discovery, ErrorClass, JobId, Journal,
    MemoryJournal, Outcome, Phase, ProposedAction, Subject, Verdict,
};
use revoke_testkit::moto::{actions, calls_named, count_calls};
use revoke_testkit::Moto;
use serde_json::{json, Value};

const INSTANCE: &str = "aws-org";

/// moto with an organization: alice's and bob's sandboxes (tagged `owner`), a shared account
/// with no tag, and an empty OU for suspended accounts.
struct Org {
    moto: Moto,
    sdk: aws_sdk_organizations::Client,
    root: String,
    suspended_ou: String,
    alice: String,
    bob: String,
    shared: String,
}

fn access(moto: &Moto) -> Value {
    json!({
        "kind": KIND,
        "endpoint_url": moto.endpoint(),
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
    })
}

async fn create_account(
    sdk: &aws_sdk_organizations::Client,
    name: &str,
    owner: Option<&str>,
) -> String {
    let mut req = sdk
        .create_account()
        .account_name(name)
        .email(format!("{name}@aws.example.com"));
    if let Some(o) = owner {
        req = req.tags(Tag::builder().key("owner").value(o).build().unwrap());
    }
    let out = req.send().await.unwrap();
    out.create_account_status()
        .and_then(|s| s.account_id())
        .unwrap()
        .to_string()
}

async fn org() -> Org {
    let moto = Moto::start().expect("moto should start");
    let access = AccessConfig::from_table(&access(&moto)).unwrap();
    let sdk = aws_sdk_organizations::Client::new(&sdk_config(&access).await);
    sdk.create_organization()
        .feature_set(OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let roots = sdk.list_roots().send().await.unwrap();
    let root = roots.roots()[0].id().unwrap().to_string();
    let ou = sdk
        .create_organizational_unit()
        .parent_id(&root)
        .name("suspended")
        .send()
        .await
        .unwrap();
    let suspended_ou = ou.organizational_unit().unwrap().id().unwrap().to_string();
    let alice = create_account(&sdk, "sandbox-alice", Some("Alice@Example.com")).await;
    let bob = create_account(&sdk, "sandbox-bob", Some("bob@example.com")).await;
    let shared = create_account(&sdk, "shared", None).await;
    moto.clear_recording().unwrap();
    Org {
        moto,
        sdk,
        root,
        suspended_ou,
        alice,
        bob,
        shared,
    }
}

fn alice() -> Subject {
    let mut s = Subject::new("alice");
    s.email = Some("alice@example.com".into());
    s
}

impl Org {
    fn config(&self, extra: Value) -> Value {
        let mut v = access(&self.moto);
        let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) else {
            unreachable!("both are tables")
        };
        for (k, val) in e {
            m.insert(k.clone(), val.clone());
        }
        v
    }

    fn connector(&self, extra: Value) -> OrganizationsConnector {
        let v = self.config(extra);
        if let Err(issues) = validate("connectors.aws-org", &v) {
            panic!("config should be valid: {issues:?}");
        }
        OrganizationsConnector::new(INSTANCE, OrganizationsConfig::from_value(&v).unwrap())
    }

    async fn state(&self, account: &str) -> String {
        let out = self
            .sdk
            .describe_account()
            .account_id(account)
            .send()
            .await
            .unwrap();
        out.account().unwrap().state().unwrap().as_str().to_string()
    }

    async fn parent(&self, account: &str) -> String {
        let out = self
            .sdk
            .list_parents()
            .child_id(account)
            .send()
            .await
            .unwrap();
        out.parents()[0].id().unwrap().to_string()
    }

    /// Accounts closed by someone else (no `revoked:closed-at` tag): they count against the quota.
    async fn close_others(&self, n: usize, closed_at: Option<&str>) {
        self.moto.stop_recording().unwrap();
        for i in 0..n {
            let id = create_account(&self.sdk, &format!("old-{i}"), None).await;
            if let Some(t) = closed_at {
                self.sdk
                    .tag_resource()
                    .resource_id(&id)
                    .tags(Tag::builder().key(CLOSED_AT_TAG).value(t).build().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            self.sdk
                .close_account()
                .account_id(&id)
                .send()
                .await
                .unwrap();
        }
        self.moto.start_recording().unwrap();
    }

    fn mutations(&self) -> Vec<String> {
        let calls = self.moto.recorded().unwrap();
        calls
            .iter()
            .filter(|c| !c.is_read())
            .map(|c| c.action.clone())
            .collect()
    }
}

/// The planner's part, enough for these tests: the action as the engine makes it from a
/// proposal, pinned to the account discovery reported.
fn action(d: &Discovery, p: &ProposedAction) -> Action {
    Action::from_proposals(&JobId("job-1".into()), INSTANCE, d, vec![p.clone()])
        .unwrap()
        .remove(0)
}

/// A plan file edited by hand to name `account` everywhere, its pin included.
fn edited(d: &Discovery, p: &ProposedAction, account: &str) -> Action {
    let mut a = action(d, p);
    a.target = account.into();
    a.params.insert("account_id".into(), account.into());
    if let Some(pin) = a.account.as_mut() {
        pin.id = account.into();
    }
    a
}

fn of_kind<'a>(d: &'a Discovery, kind: &str) -> Vec<&'a str> {
    d.findings
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.target.as_str())
        .collect()
}

fn summaries(plan: &[ProposedAction]) -> Vec<String> {
    plan.iter()
        .map(|a| format!("{} {}: {}", a.kind, a.target, a.summary))
        .collect()
}

#[tokio::test]
async fn discovery_finds_exactly_alices_account_by_tag_and_by_mapping_and_reads_only() {
    let o = org().await;
    let c = o.connector(json!({}));
    let d = c.discover(&alice()).await.unwrap();
    assert!(d.found);
    assert_eq!(of_kind(&d, MEMBER_ACCOUNT), [o.alice.as_str()]);
    let f = d
        .findings
        .iter()
        .find(|f| f.kind == MEMBER_ACCOUNT)
        .unwrap();
    assert_eq!(f.attrs["id"], o.alice);
    assert_eq!(f.attrs["name"], "sandbox-alice");
    assert_eq!(f.attrs["email"], "sandbox-alice@aws.example.com");
    assert_eq!(f.attrs["status"], "ACTIVE");
    assert_eq!(f.attrs["parent"], o.root);
    assert_eq!(f.attrs["owned_by"], "tag");
    // The account, pinned to its id, answers to its id, name, email and ARN.
    assert_eq!(d.accounts.len(), 1, "{:?}", d.accounts);
    let acct = d.account(&o.alice).expect("alice's sandbox is reported");
    assert_eq!(
        (acct.id_kind.as_str(), acct.name.as_str()),
        ("account id", "sandbox-alice")
    );
    assert_eq!(acct.matched_by, "tag owner = Alice@Example.com");
    for i in [
        o.alice.as_str(),
        "sandbox-alice",
        "sandbox-alice@aws.example.com",
    ] {
        assert!(acct.identifiers.contains(i), "{i} in {acct:?}");
    }
    assert!(
        acct.identifiers
            .iter()
            .any(|i| i.starts_with("arn:aws:organizations::") && i.ends_with(&o.alice)),
        "{acct:?}"
    );
    // `[protected] accounts` may name it by any of them.
    for entry in [
        "SANDBOX-ALICE@aws.example.com",
        o.alice.as_str(),
        "sandbox-alice",
    ] {
        assert!(
            revoke_core::Protected::new([entry])
                .match_account(acct)
                .is_some(),
            "{entry}"
        );
    }
    let q = d.findings.iter().find(|f| f.kind == CLOSURE_QUOTA).unwrap();
    // 3 active members (the management account left out): AWS's minimum of 10 applies.
    assert_eq!(
        (
            q.attrs["limit"].as_str(),
            q.attrs["used"].as_str(),
            q.attrs["members"].as_str(),
            q.attrs["window_days"].as_str()
        ),
        ("10", "0", "3", "30")
    );

    let calls = o.moto.recorded().unwrap();
    assert_eq!(count_calls(&calls).mutations, 0, "{:?}", actions(&calls));
    // One scan: the organization, the accounts, each account's tags, alice's parent.
    assert_eq!(calls_named(&calls, "ListAccounts").count(), 1);
    assert_eq!(calls_named(&calls, "ListTagsForResource").count(), 4);
    assert_eq!(calls_named(&calls, "ListParents").count(), 1);

    // The configured mapping, with tag matching off: only the mapped account.
    let c = o.connector(json!({"owner_tag": "", "owners": {"ALICE@example.com": [o.shared]}}));
    o.moto.clear_recording().unwrap();
    let d = c.discover(&alice()).await.unwrap();
    assert_eq!(of_kind(&d, MEMBER_ACCOUNT), [o.shared.as_str()]);
    assert_eq!(d.findings[0].attrs["owned_by"], "owners");
    assert_eq!(
        d.account(&o.shared).map(|a| a.matched_by.as_str()),
        Some(format!("owners.alice@example.com = {}", o.shared).as_str())
    );
    let calls = o.moto.recorded().unwrap();
    assert_eq!(
        calls_named(&calls, "ListTagsForResource").count(),
        0,
        "no tags to read without owner_tag and with no closed account"
    );

    // Both at once, for a batch: one scan serves alice and bob.
    let c = o.connector(json!({"owners": {"alice": o.shared}}));
    o.moto.clear_recording().unwrap();
    let bob = Subject {
        email: Some("BOB@example.com".into()),
        ..Subject::new("bob")
    };
    let all = c.discover_many(&[alice(), bob]).await.unwrap();
    let mut mine = of_kind(&all[0], MEMBER_ACCOUNT);
    mine.sort();
    let mut want = vec![o.alice.as_str(), o.shared.as_str()];
    want.sort();
    assert_eq!(mine, want);
    assert_eq!(of_kind(&all[1], MEMBER_ACCOUNT), [o.bob.as_str()]);
    let calls = o.moto.recorded().unwrap();
    assert_eq!(calls_named(&calls, "ListAccounts").count(), 1);
}

#[tokio::test]
async fn an_unknown_subject_finds_nothing_and_names_are_not_patterns() {
    let o = org().await;
    let c = o.connector(json!({"owners": {"carol": o.shared}}));
    for who in ["nobody", "*)(uid=*", "../x", "*", "alice*"] {
        let mut s = Subject::new(who);
        s.email = Some(format!("{who}@example.org"));
        let d = c.discover(&s).await.unwrap();
        assert!(!d.found, "{who}: {d:?}");
        assert!(d.findings.is_empty(), "{who}");
        assert!(c.plan(&s, &d).is_empty());
    }
}

#[tokio::test]
async fn the_management_account_is_never_acted_on_even_when_tagged_as_alices() {
    let o = org().await;
    o.sdk
        .tag_resource()
        .resource_id(Moto::ACCOUNT_ID)
        .tags(
            Tag::builder()
                .key("owner")
                .value("alice@example.com")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let c =
        o.connector(json!({"owners": {"alice": Moto::ACCOUNT_ID}, "suspended_ou": o.suspended_ou}));
    o.moto.clear_recording().unwrap();
    let d = c.discover(&alice()).await.unwrap();
    assert_eq!(of_kind(&d, MANAGEMENT_ACCOUNT), [Moto::ACCOUNT_ID]);
    let m = d
        .findings
        .iter()
        .find(|f| f.kind == MANAGEMENT_ACCOUNT)
        .unwrap();
    assert_eq!(
        m.attrs["refused"],
        "the management account of the organization is never closed or moved"
    );
    let plan = c.plan(&alice(), &d);
    assert!(
        plan.iter().all(|a| a.target != Moto::ACCOUNT_ID),
        "{plan:?}"
    );
    assert_eq!(summaries(&plan).len(), 1, "alice's sandbox only");

    // An action that names it anyway (a hand-edited plan) is refused before any write.
    for (kind, params) in [
        (CLOSE_ACCOUNT, json!({})),
        (MOVE_ACCOUNT, json!({"destination": o.suspended_ou})),
    ] {
        let mut p = plan[0].clone();
        p.kind = ActionKind::from(kind);
        p.target = Moto::ACCOUNT_ID.into();
        p.account = Moto::ACCOUNT_ID.into();
        p.params
            .insert("account_id".into(), Moto::ACCOUNT_ID.into());
        if let Some(dest) = params.get("destination").and_then(Value::as_str) {
            p.params.insert("destination".into(), dest.into());
        }
        let a = action(&d, &p);
        let err = c
            .apply(&a, &a.key, &MemoryJournal::new())
            .await
            .expect_err("refused");
        assert_eq!(err.code, "management_account");
        assert_eq!(err.class, ErrorClass::Permanent);
    }
    assert_eq!(o.mutations(), Vec::<String>::new());
    assert_eq!(o.state(Moto::ACCOUNT_ID).await, "ACTIVE");
}

#[tokio::test]
async fn close_account_ends_suspended_with_one_close_and_a_rerun_sends_nothing() {
    let o = org().await;
    let c = o.connector(json!({}));
    let d = c.discover(&alice()).await.unwrap();
    let plan = c.plan(&alice(), &d);
    assert_eq!(
        summaries(&plan),
        [format!(
            "close_account {0}: close account {0} (sandbox-alice); closure quota 1 of 10 used in 30 days",
            o.alice
        )]
    );
    assert_eq!(plan[0].phase, Phase::Contain);
    assert_eq!(plan[0].account, o.alice);
    let a = action(&d, &plan[0]);

    o.moto.clear_recording().unwrap();
    let journal = MemoryJournal::new();
    assert_eq!(c.apply(&a, &a.key, &journal).await, Ok(Outcome::Done));
    assert_eq!(o.state(&o.alice).await, "SUSPENDED");
    let calls = o.moto.recorded().unwrap();
    assert_eq!(o.mutations(), ["TagResource", "CloseAccount"]);
    let close = calls_named(&calls, "CloseAccount").next().unwrap();
    assert_eq!(close.param("AccountId"), Some(o.alice.as_str()));
    assert_eq!(close.service, "organizations");
    assert_eq!(
        journal.latest("close_accepted").await.unwrap().as_deref(),
        Some(o.alice.as_str())
    );
    assert_eq!(c.verify(&a).await, Ok(Verdict::Confirmed));

    // The tag written before CloseAccount is what the quota counts.
    let d = c.discover(&alice()).await.unwrap();
    let f = d
        .findings
        .iter()
        .find(|f| f.kind == MEMBER_ACCOUNT)
        .unwrap();
    assert_eq!(f.attrs["status"], "SUSPENDED");
    let closed_at = chrono::DateTime::parse_from_rfc3339(&f.attrs["closed_at"]).unwrap();
    assert!((chrono::Utc::now() - closed_at.to_utc()).num_minutes() < 5);
    let q = d.findings.iter().find(|f| f.kind == CLOSURE_QUOTA).unwrap();
    assert_eq!(q.attrs["used"], "1");
    assert!(c.plan(&alice(), &d).is_empty(), "nothing left to do");

    // Another job's action on the same account: already done, and not one mutation.
    o.moto.clear_recording().unwrap();
    assert_eq!(
        c.apply(&a, &a.key, &MemoryJournal::new()).await,
        Ok(Outcome::AlreadyDone)
    );
    assert_eq!(o.mutations(), Vec::<String>::new());
    assert_eq!(actions(&o.moto.recorded().unwrap()), ["DescribeAccount"]);
}

#[tokio::test]
async fn over_the_quota_the_plan_moves_the_account_or_says_aws_will_refuse() {
    let o = org().await;
    // Ten closures by someone else (no tag, date unknown: counted) fill the quota of 10.
    o.close_others(10, None).await;
    let c = o.connector(json!({"suspended_ou": o.suspended_ou}));
    let d = c.discover(&alice()).await.unwrap();
    let q = d.findings.iter().find(|f| f.kind == CLOSURE_QUOTA).unwrap();
    assert_eq!(
        (q.attrs["limit"].as_str(), q.attrs["used"].as_str()),
        ("10", "10")
    );
    assert_eq!(
        summaries(&c.plan(&alice(), &d)),
        [format!(
            "move_account {0}: move account {0} (sandbox-alice) from {1} to the suspended OU {2} instead of closing it: closure quota 10 of 10 used in 30 days",
            o.alice, o.root, o.suspended_ou
        )]
    );

    let c = o.connector(json!({}));
    let d = c.discover(&alice()).await.unwrap();
    assert_eq!(
        summaries(&c.plan(&alice(), &d)),
        [format!(
            "close_account {0}: close account {0} (sandbox-alice); AWS will refuse this: closure quota 10 of 10 used in 30 days (set suspended_ou to move it instead)",
            o.alice
        )]
    );
}

#[tokio::test]
async fn closures_older_than_thirty_days_free_the_quota() {
    let o = org().await;
    // 2% scales AWS's rule down: a limit of 2 for 3 members (fewer accounts to create in moto,
    // whose CreateAccount takes a second or more).
    o.close_others(3, Some("2020-01-01T00:00:00Z")).await;
    o.close_others(1, None).await;
    let c = o.connector(json!({"suspended_ou": o.suspended_ou, "closure_quota_percent": 2}));
    let d = c.discover(&alice()).await.unwrap();
    let q = d.findings.iter().find(|f| f.kind == CLOSURE_QUOTA).unwrap();
    assert_eq!(
        (
            q.attrs["limit"].as_str(),
            q.attrs["used"].as_str(),
            q.attrs["percent"].as_str()
        ),
        ("2", "1", "2")
    );
    assert_eq!(
        summaries(&c.plan(&alice(), &d)),
        [format!(
            "close_account {0}: close account {0} (sandbox-alice); closure quota 2 of 2 used in 30 days",
            o.alice
        )]
    );
}

#[tokio::test]
async fn move_account_parks_it_in_the_suspended_ou_once() {
    let o = org().await;
    let c = o.connector(json!({"action": "move", "suspended_ou": o.suspended_ou}));
    let d = c.discover(&alice()).await.unwrap();
    assert!(
        d.findings.iter().all(|f| f.kind != CLOSURE_QUOTA),
        "no quota to count when nothing is closed"
    );
    let plan = c.plan(&alice(), &d);
    assert_eq!(
        summaries(&plan),
        [format!(
            "move_account {0}: move account {0} (sandbox-alice) from {1} to the suspended OU {2}",
            o.alice, o.root, o.suspended_ou
        )]
    );
    let a = action(&d, &plan[0]);
    o.moto.clear_recording().unwrap();
    assert_eq!(
        c.apply(&a, &a.key, &MemoryJournal::new()).await,
        Ok(Outcome::Done)
    );
    let calls = o.moto.recorded().unwrap();
    assert_eq!(o.mutations(), ["MoveAccount"]);
    let mv = calls_named(&calls, "MoveAccount").next().unwrap();
    assert_eq!(mv.param("SourceParentId"), Some(o.root.as_str()));
    assert_eq!(
        mv.param("DestinationParentId"),
        Some(o.suspended_ou.as_str())
    );
    assert_eq!(o.parent(&o.alice).await, o.suspended_ou);
    assert_eq!(c.verify(&a).await, Ok(Verdict::Confirmed));
    assert_eq!(o.state(&o.alice).await, "ACTIVE", "moved, not closed");

    o.moto.clear_recording().unwrap();
    assert_eq!(
        c.apply(&a, &a.key, &MemoryJournal::new()).await,
        Ok(Outcome::AlreadyDone)
    );
    assert_eq!(o.mutations(), Vec::<String>::new());
    let d = c.discover(&alice()).await.unwrap();
    assert!(c.plan(&alice(), &d).is_empty(), "parked already");
}

#[tokio::test]
async fn an_account_outside_the_organization_is_a_permanent_error() {
    let o = org().await;
    let c = o.connector(json!({}));
    let d = c.discover(&alice()).await.unwrap();
    let p = c.plan(&alice(), &d)[0].clone();
    let a = edited(&d, &p, "999999999999");
    let err = c
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("not in the org");
    assert_eq!(
        (err.class.name(), err.code.as_str()),
        ("permanent", "account_not_found")
    );

    // A plan file edited to name something else than an account id, or another account than
    // the one it was pinned to, is refused unsent.
    o.moto.clear_recording().unwrap();
    for bad in ["../x", "*)(uid=*"] {
        let a = edited(&d, &p, bad);
        let err = c
            .apply(&a, &a.key, &MemoryJournal::new())
            .await
            .expect_err("bad");
        assert_eq!(err.code, "bad_action");
        let mut m = p.clone();
        m.kind = ActionKind::from(MOVE_ACCOUNT);
        m.params.insert("destination".into(), bad.into());
        let a = action(&d, &m);
        let err = c
            .apply(&a, &a.key, &MemoryJournal::new())
            .await
            .expect_err("bad");
        assert_eq!(err.code, "bad_action");
    }
    let mut a = action(&d, &p);
    a.target = o.bob.clone();
    a.params.insert("account_id".into(), o.bob.clone());
    let err = c
        .apply(&a, &a.key, &MemoryJournal::new())
        .await
        .expect_err("pinned to alice's account");
    assert_eq!(err.code, "bad_action");
    assert!(err.message.contains(&o.alice), "{}", err.message);
    let err = c.verify(&a).await.expect_err("verify refuses it too");
    assert_eq!(err.code, "bad_action");
    assert_eq!(o.moto.recorded().unwrap(), vec![]);
}

#[tokio::test]
async fn check_passes_with_the_organization_and_names_a_missing_ou() {
    let o = org().await;
    assert_eq!(
        o.connector(json!({"suspended_ou": o.suspended_ou}))
            .check()
            .await,
        Ok(())
    );
    let err = o
        .connector(json!({"suspended_ou": "ou-abcd-zzzzzzzz"}))
        .check()
        .await
        .expect_err("no such OU");
    assert_eq!(err.code, "ou_not_found");
    assert_eq!(o.mutations(), Vec::<String>::new());
}

#[test]
fn the_factory_validates_purely_and_builds_without_a_call() {
    let f = OrganizationsFactory;
    assert_eq!(f.kind(), "aws-organizations");
    let bad = json!({
        "kind": KIND,
        "action": "move",
        "suspended_ou": "../x",
        "owners": {"alice": ["*)(uid=*", "111111111111"], "bob": "../x"},
        "access_key_id": "AKIA",
        "secret_access_key": 12345,
    });
    let issues: Vec<String> = f
        .validate("connectors.aws-org", &bad)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        issues,
        [
            "connectors.aws-org.secret_access_key: expected a string, found a number",
            "connectors.aws-org.suspended_ou: expected an OU id such as ou-ab12-cd34ef56, found \"../x\"",
            "connectors.aws-org.owners.alice: expected account ids of 12 digits, found \"*)(uid=*\"",
            "connectors.aws-org.owners.bob: expected account ids of 12 digits, found \"../x\"",
        ]
    );
    assert!(
        !issues.iter().any(|i| i.contains("12345")),
        "a secret is never echoed"
    );

    // Nothing listens there: build must not try.
    let ok = json!({"kind": KIND, "endpoint_url": "http://127.0.0.1:9", "suspended_ou": "ou-ab12-cd34ef56"});
    assert_eq!(f.validate("connectors.aws-org", &ok), Ok(()));
    let c = f.build("aws-org", &ok).unwrap();
    assert_eq!((c.instance(), c.kind()), ("aws-org", "aws-organizations"));
}
