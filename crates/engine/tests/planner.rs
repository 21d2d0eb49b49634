//! The planner's safety rules, independent of any vendor: protected accounts are recognised by
//! every identifier they answer to and cost only their own actions; every action is pinned to the
//! account it touches; a subject's later phases depend on its earlier ones. Ends with a property
//! test over random plans run by the real executor on a SQLite store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use revoke_core::{
    Account, Action, ActionKey, ActionKind, Connector, ConnectorError, Discovery, Job, JobId,
    Journal, Outcome, Phase, Plan, PlanId, ProposedAction, Risk, Subject, Verdict,
};
use revoke_engine::{plan_jobs, Connectors, EngineError, Executor};
use revoke_store::{ActionState, SqliteStore, Store};

/// One proposal of the fake connector: (kind, target, phase, account id, afters by index).
#[derive(Debug, Clone)]
struct Prop {
    kind: &'static str,
    target: String,
    phase: Phase,
    account: String,
    after: Vec<usize>,
}

/// A connector whose discovery and plan are given, and whose apply answers from a script and
/// records the order of calls.
#[derive(Debug, Default)]
struct Fake {
    name: String,
    /// subject id -> (accounts, proposals)
    world: BTreeMap<String, (Vec<Account>, Vec<Prop>)>,
    /// targets whose apply fails for good
    failing: BTreeSet<String>,
    calls: Arc<Mutex<Vec<(String, String)>>>,
    /// whether it takes client jobs
    clients: bool,
}

#[async_trait]
impl Connector for Fake {
    fn instance(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn discover(&self, subject: &Subject) -> Result<Discovery, ConnectorError> {
        let mut d = Discovery::not_found(&self.name, &subject.id);
        if let Some((accounts, _)) = self.world.get(&subject.id) {
            d.found = true;
            d.accounts = accounts.clone();
        }
        if self.clients {
            d.notes
                .push("drive 0AB has no organizer of ours: not scanned".into());
        }
        Ok(d)
    }
    fn plan(&self, subject: &Subject, _: &Discovery) -> Vec<ProposedAction> {
        let Some((_, props)) = self.world.get(&subject.id) else {
            return vec![];
        };
        props
            .iter()
            .map(|p| ProposedAction {
                kind: ActionKind::from(p.kind),
                target: p.target.clone(),
                params: BTreeMap::new(),
                phase: p.phase,
                after: p
                    .after
                    .iter()
                    .map(|i| (ActionKind::from(props[*i].kind), props[*i].target.clone()))
                    .collect(),
                summary: format!("{} {}", p.kind, p.target),
                account: p.account.clone(),
                delay: None,
            })
            .collect()
    }
    async fn apply(
        &self,
        action: &Action,
        _: &ActionKey,
        _: &dyn Journal,
    ) -> Result<Outcome, ConnectorError> {
        self.calls
            .lock()
            .expect("lock")
            .push((action.connector.clone(), action.target.clone()));
        if self.failing.contains(&action.target) {
            return Err(ConnectorError::permanent("denied", "scripted failure"));
        }
        Ok(Outcome::Done)
    }
    async fn verify(&self, _: &Action) -> Result<Verdict, ConnectorError> {
        Ok(Verdict::Confirmed)
    }
    fn takes_client_jobs(&self) -> bool {
        self.clients
    }
}

fn job(subject: &str, risk: Risk) -> Job {
    Job {
        id: JobId(format!("job-{subject}")),
        subject: Subject::new(subject),
        reason: "left".into(),
        effective_at: Utc::now() - chrono::Duration::days(60),
        risk,
        source: "test".into(),
        requested_by: "test".into(),
        policy: "default".into(),
    }
}

fn config(protected: &[&str], extra: &str) -> revoke_config::Config {
    let list: Vec<String> = protected.iter().map(|p| format!("{p:?}")).collect();
    revoke_config::load_str(&format!(
        "[protected]\naccounts = [{}]\n[executor.retry]\nbase_ms = 5\ncap_ms = 10\nmax_attempts = 2\n{extra}\n",
        list.join(", ")
    ))
    .expect("config")
}

fn prop(kind: &'static str, target: &str, phase: Phase, account: &str, after: &[usize]) -> Prop {
    Prop {
        kind,
        target: target.into(),
        phase,
        account: account.into(),
        after: after.to_vec(),
    }
}

/// dana's directory: her own account, and the service user `admin` she owns, which answers to
/// its DN, an email and an employee number too.
fn dana() -> Fake {
    let own = Account::new(
        "uuid-dana",
        "entryUUID",
        "uid=dana,ou=people,dc=acme,dc=test",
    )
    .answers_to(["dana", "dana@example.org"]);
    let admin = Account::new(
        "uuid-admin",
        "entryUUID",
        "uid=admin,ou=admins,ou=people,dc=acme,dc=test",
    )
    .answers_to(["admin", "root@acme.test", "1"])
    .matched_by("tag owner = dana@example.org");
    Fake {
        name: "dir".into(),
        world: BTreeMap::from([(
            "dana@example.org".to_string(),
            (
                vec![own, admin],
                vec![
                    prop("lock", "dana", Phase::Contain, "uuid-dana", &[]),
                    prop("revoke", "dana/g1", Phase::Revoke, "uuid-dana", &[]),
                    prop("delete", "dana", Phase::Delete, "uuid-dana", &[]),
                    prop("rotate", "admin/key", Phase::Transfer, "uuid-admin", &[]),
                    // dana's own action that waits for admin's rotation
                    prop(
                        "notify",
                        "dana/after-rotate",
                        Phase::Revoke,
                        "uuid-dana",
                        &[3],
                    ),
                ],
            ),
        )]),
        ..Default::default()
    }
}

fn plan_for(fake: Fake, protected: &[&str], subject: &str) -> Result<Plan, EngineError> {
    let fake = Arc::new(fake);
    let connectors: Connectors = [(fake.name.clone(), fake.clone() as Arc<dyn Connector>)].into();
    let jobs = vec![job(subject, Risk::High)];
    let discoveries: Vec<Discovery> = futures_block(&fake, &jobs);
    plan_jobs(
        &config(protected, ""),
        &connectors,
        jobs,
        &discoveries,
        PlanId("p".into()),
        Utc::now(),
    )
}

fn futures_block(fake: &Arc<Fake>, jobs: &[Job]) -> Vec<Discovery> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    jobs.iter()
        .map(|j| rt.block_on(fake.discover(&j.subject)).expect("discover"))
        .collect()
}

fn targets(p: &Plan) -> BTreeSet<String> {
    p.actions.iter().map(|a| a.target.clone()).collect()
}

#[test]
fn a_protected_account_is_matched_on_every_identifier_and_costs_only_its_own_actions() {
    let everyone: BTreeSet<String> = ["dana", "dana/g1", "dana/after-rotate", "admin/key"]
        .into_iter()
        .map(String::from)
        .collect();
    let all = targets(&plan_for(dana(), &[], "dana@example.org").expect("plan"));
    assert_eq!(all, everyone, "unprotected, everything is planned");
    // The service user, named by any identifier it answers to, in any spelling.
    for entry in [
        "admin",
        "ADMIN",
        "root@ACME.test",
        "1",
        "uuid-admin",
        "UID=admin, OU=admins, OU=people, DC=acme, DC=test",
    ] {
        let p = plan_for(dana(), &[entry], "dana@example.org").expect("plan");
        assert_eq!(
            targets(&p),
            ["dana", "dana/g1"].into_iter().map(String::from).collect(),
            "{entry}: only admin's rotation and what waits for it are left out"
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.message.contains("protected account uid=admin")
                    && n.message.contains("left out 1 action(s)")
                    && n.message.contains("1 more that depend on them")),
            "{entry}: {:?}",
            p.notes
        );
        assert!(
            p.actions
                .iter()
                .all(|a| a.account.as_ref().is_some_and(|pin| pin.id == "uuid-dana")),
            "every action left is pinned to dana"
        );
    }
    // A near miss protects nothing.
    for entry in [
        "admins",
        "root",
        "uid=admin,ou=people,dc=acme,dc=test",
        "11",
    ] {
        let p = plan_for(dana(), &[entry], "dana@example.org").expect("plan");
        assert_eq!(targets(&p), everyone, "{entry}");
        assert!(p.notes.is_empty(), "{entry}: {:?}", p.notes);
    }
    // dana herself, by the email her account answers to: everything of hers goes; admin's
    // rotation (its own account) stays but nothing of dana's.
    let p = plan_for(dana(), &["DANA"], "dana@example.org").expect("plan");
    assert_eq!(
        targets(&p),
        ["admin/key"].into_iter().map(String::from).collect()
    );
}

#[test]
fn actions_are_pinned_to_the_discovered_account() {
    let p = plan_for(dana(), &[], "dana@example.org").expect("plan");
    let pin = |t: &str| {
        p.actions
            .iter()
            .find(|a| a.target == t)
            .and_then(|a| a.account.clone())
            .expect("pinned")
    };
    assert_eq!(pin("admin/key").id, "uuid-admin");
    assert_eq!(pin("admin/key").id_kind, "entryUUID");
    assert_eq!(pin("dana").name, "uid=dana,ou=people,dc=acme,dc=test");
    // The identity is part of the snapshot: an account re-created under the same name makes
    // the plan's fingerprint differ.
    let mut other = dana();
    other.world.get_mut("dana@example.org").expect("dana").0[0].id = "uuid-new-hire".into();
    if let Some(props) = other.world.get_mut("dana@example.org").map(|w| &mut w.1) {
        for p in props.iter_mut().filter(|p| p.account == "uuid-dana") {
            p.account = "uuid-new-hire".into();
        }
    }
    let q = plan_for(other, &[], "dana@example.org").expect("plan");
    assert_ne!(p.fingerprint, q.fingerprint);
    assert!(p
        .snapshot
        .diff(&q.snapshot)
        .iter()
        .any(|c| c.to_string().contains("uuid-dana -> uuid-new-hire")));
}

#[test]
fn a_proposal_that_names_no_discovered_account_is_a_broken_contract() {
    let mut f = dana();
    f.world.get_mut("dana@example.org").expect("dana").1[1].account = "someone".into();
    match plan_for(f, &[], "dana@example.org") {
        Err(EngineError::Contract { connector, message }) => {
            assert_eq!(connector, "dir");
            assert!(message.contains("\"someone\""), "{message}");
        }
        other => panic!("expected a contract error, found {other:?}"),
    }
}

/// A client's shares in `drive` (which takes client jobs) and an account named like the client in
/// `dir` (which does not, and would plan a delete if asked).
fn client_world() -> Connectors {
    let world = |clients: bool, name: &str, kind: &'static str| {
        let acct = Account::new(format!("{name}-perm-7"), "permission", "bob@clientco.test")
            .answers_to(["bob@clientco.test"]);
        Arc::new(Fake {
            name: name.into(),
            world: BTreeMap::from([(
                "clientco.test".to_string(),
                (
                    vec![acct],
                    vec![prop(
                        kind,
                        "file-1/perm-7",
                        Phase::Revoke,
                        &format!("{name}-perm-7"),
                        &[],
                    )],
                ),
            )]),
            clients,
            ..Default::default()
        }) as Arc<dyn Connector>
    };
    [
        ("drive".to_string(), world(true, "drive", "remove_share")),
        ("dir".to_string(), world(false, "dir", "delete")),
    ]
    .into()
}

fn client_job(domain: &str) -> Job {
    Job {
        subject: Subject::client(revoke_core::ClientDomain::parse(domain).expect("domain")),
        ..job(domain, Risk::Standard)
    }
}

#[tokio::test]
async fn a_client_job_goes_only_to_connectors_that_take_client_jobs_and_the_plan_names_the_rest() {
    let connectors = client_world();
    let cfg = config(
        &[],
        r#"[policies.default]
manual = [
  { id = "collect-laptop", title = "Collect laptop" },
  { id = "confirm-client", title = "Tell the client", for = "clients" },
  { id = "record", title = "Record it", for = "all" },
]"#,
    );
    let jobs = vec![client_job("ClientCo.test")];
    let found = revoke_engine::discover(&cfg, &connectors, &jobs)
        .await
        .expect("discover");
    assert_eq!(
        found
            .iter()
            .map(|d| d.connector.as_str())
            .collect::<Vec<_>>(),
        ["drive"],
        "only the connector taking client jobs is asked"
    );
    let plan = plan_jobs(
        &cfg,
        &connectors,
        jobs,
        &found,
        PlanId("p".into()),
        Utc::now(),
    )
    .expect("plan");
    let kinds: Vec<(&str, &str)> = plan
        .actions
        .iter()
        .map(|a| (a.connector.as_str(), a.kind.0.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("drive", "remove_share"),
            ("manual", "manual_step"),
            ("manual", "manual_step")
        ]
    );
    let steps: Vec<&str> = plan
        .actions
        .iter()
        .filter(|a| a.connector == "manual")
        .map(|a| a.target.as_str())
        .collect();
    assert_eq!(
        steps,
        ["confirm-client", "record"],
        "a person's steps are not a client's"
    );
    assert_eq!(plan.jobs[0].subject.id, "clientco.test");
    let note = plan
        .notes
        .iter()
        .find(|n| n.connector.as_deref() == Some("dir"))
        .expect("a note for the instance not searched");
    assert!(
        note.message.starts_with("not searched: dir (fake)"),
        "{}",
        note.message
    );
    // What the connector found and left alone reaches the plan under its name.
    let said: Vec<(Option<&str>, &str)> = plan
        .notes
        .iter()
        .map(|n| (n.connector.as_deref(), n.message.as_str()))
        .collect();
    assert!(
        said.contains(&(
            Some("drive"),
            "drive 0AB has no organizer of ours: not scanned"
        )),
        "{said:?}"
    );
}

/// A connector's step for a person (a distribution list only Exchange can change) is a manual
/// action: never sent to the connector, awaiting acknowledgement after the run, left out with
/// its account when that account is protected, and done once a person acknowledges it.
#[tokio::test]
async fn a_connector_s_manual_step_waits_for_a_person_and_is_never_sent() {
    let erin =
        Account::new("oid-erin", "object id", "erin@example.org").answers_to(["erin@example.org"]);
    let shared = Account::new("oid-desk", "object id", "desk@example.org")
        .answers_to(["desk@example.org", "helpdesk@example.org"])
        .matched_by("manager = erin@example.org");
    let fake = Arc::new(Fake {
        name: "entra".into(),
        world: BTreeMap::from([(
            "erin@example.org".to_string(),
            (
                vec![erin, shared],
                vec![
                    prop("disable", "oid-erin", Phase::Contain, "oid-erin", &[]),
                    prop("remove_member", "g-dl", Phase::Revoke, "oid-erin", &[]),
                    prop(
                        "remove_in_exchange",
                        "g-dl",
                        Phase::Manual,
                        "oid-erin",
                        &[1],
                    ),
                    prop(
                        "remove_in_exchange",
                        "g-desk",
                        Phase::Manual,
                        "oid-desk",
                        &[],
                    ),
                ],
            ),
        )]),
        ..Default::default()
    });
    let connectors: Connectors = [("entra".to_string(), fake.clone() as Arc<dyn Connector>)].into();
    // the shared mailbox answers to an alias only; protected by that alias
    let cfg = config(&["helpdesk@example.org"], "");
    let jobs = vec![job("erin@example.org", Risk::High)];
    let found = revoke_engine::discover(&cfg, &connectors, &jobs)
        .await
        .expect("discover");
    let plan = plan_jobs(
        &cfg,
        &connectors,
        jobs,
        &found,
        PlanId("p".into()),
        Utc::now(),
    )
    .expect("plan");
    let manual: Vec<&Action> = plan.actions.iter().filter(|a| a.is_manual()).collect();
    assert_eq!(
        manual.iter().map(|a| a.target.as_str()).collect::<Vec<_>>(),
        ["entra.g-dl"],
        "the protected account's step is left out with it"
    );
    let step = manual[0];
    let removal = plan
        .actions
        .iter()
        .find(|a| a.kind.0 == "remove_member")
        .expect("removal");
    assert_eq!(step.depends_on, vec![removal.id.clone()]);
    assert_eq!(step.phase, Phase::Manual);
    assert_eq!(step.not_before, None, "a person may act at once");

    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("db").display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("store"));
    let exec = Executor::new(store.clone(), connectors.clone(), &cfg, "t");
    exec.record(&plan).await.expect("record");
    exec.run_plan(&plan.id).await.expect("run");
    let calls = fake.calls.lock().expect("lock").clone();
    assert_eq!(
        calls,
        [
            ("entra".to_string(), "oid-erin".to_string()),
            ("entra".to_string(), "g-dl".to_string())
        ],
        "only the connector's own actions are sent"
    );
    let state_of = |records: &[revoke_store::ActionRecord], id: &revoke_core::ActionId| {
        records
            .iter()
            .find(|r| &r.action.id == id)
            .map(|r| r.state)
            .expect("recorded")
    };
    let records = store.actions(&plan.id).await.expect("actions");
    assert_eq!(state_of(&records, &step.id), ActionState::AwaitingAck);
    store
        .acknowledge(&step.job_id, &step.id, "it-desk", Utc::now())
        .await
        .expect("acknowledge");
    let records = store.actions(&plan.id).await.expect("actions");
    assert!(state_of(&records, &step.id).is_success());
    assert_eq!(fake.calls.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn a_client_job_on_our_own_domain_or_with_no_connector_taking_it_is_refused() {
    let cfg = revoke_config::load_str("[protected]\ndomains = [\"Corp.test\"]\n").expect("config");
    let connectors = client_world();
    for ours in ["corp.test", "eu.corp.test"] {
        match revoke_engine::discover(&cfg, &connectors, &[client_job(ours)]).await {
            Err(EngineError::ProtectedDomain { domain, protected }) => {
                assert_eq!((domain.as_str(), protected.as_str()), (ours, "Corp.test"));
            }
            other => panic!("{ours}: expected a refusal, got {other:?}"),
        }
    }
    // a look-alike of ours is someone else's domain
    let ok = revoke_engine::discover(&cfg, &connectors, &[client_job("notcorp.test")]).await;
    assert!(ok.is_ok(), "{ok:?}");
    let only_dir: Connectors = [("dir".to_string(), client_world()["dir"].clone())].into();
    match revoke_engine::discover(&cfg, &only_dir, &[client_job("clientco.test")]).await {
        Err(e @ EngineError::NoClientConnector { .. }) => {
            assert!(e.to_string().contains("(dir)"), "{e}");
        }
        other => panic!("expected no client connector, got {other:?}"),
    }
    let bad = revoke_config::load_str("[protected]\ndomains = [\"*\"]\n")
        .expect("parses")
        .validate(&[])
        .expect_err("bad domain");
    assert!(bad.to_string().contains("protected.domains[0]"), "{bad}");
}

#[test]
fn later_phases_depend_on_every_earlier_phase_of_the_subject() {
    let p = plan_for(dana(), &[], "dana@example.org").expect("plan");
    let id = |t: &str| {
        p.actions
            .iter()
            .find(|a| a.target == t)
            .map(|a| a.id.clone())
            .expect(t)
    };
    let deps = |t: &str| -> BTreeSet<String> {
        p.actions
            .iter()
            .find(|a| a.target == t)
            .map(|a| a.depends_on.iter().map(|d| d.0.clone()).collect())
            .expect(t)
    };
    // contain: dana; transfer: admin/key; revoke: dana/g1, dana/after-rotate; delete: dana
    assert!(deps("admin/key").contains(&id("dana").0));
    assert!(deps("dana/g1").contains(&id("admin/key").0));
    let delete = p
        .actions
        .iter()
        .find(|a| a.phase == Phase::Delete)
        .expect("delete");
    let d: BTreeSet<String> = delete.depends_on.iter().map(|x| x.0.clone()).collect();
    assert!(d.contains(&id("dana/g1").0) && d.contains(&id("dana/after-rotate").0));
}

/// Two connectors: their phases are independent by default, chained under
/// `phase_order = "across_connectors"`.
#[test]
fn the_policy_can_order_phases_across_connectors() {
    let mk = |name: &str| Fake {
        name: name.into(),
        world: BTreeMap::from([(
            "eve".to_string(),
            (
                vec![Account::new(format!("{name}-eve"), "id", "eve")],
                vec![
                    prop("lock", "eve", Phase::Contain, &format!("{name}-eve"), &[]),
                    prop(
                        "revoke",
                        "eve/g",
                        Phase::Revoke,
                        &format!("{name}-eve"),
                        &[],
                    ),
                ],
            ),
        )]),
        ..Default::default()
    };
    let (a, b) = (Arc::new(mk("a")), Arc::new(mk("b")));
    let connectors: Connectors = [
        ("a".to_string(), a.clone() as Arc<dyn Connector>),
        ("b".to_string(), b.clone() as Arc<dyn Connector>),
    ]
    .into();
    let jobs = vec![job("eve", Risk::High)];
    let mut discoveries = futures_block(&a, &jobs);
    discoveries.extend(futures_block(&b, &jobs));
    for (extra, crosses) in [
        ("", false),
        (
            "[policies.default]\nphase_order = \"across_connectors\"\n",
            true,
        ),
    ] {
        let p = plan_jobs(
            &config(&[], extra),
            &connectors,
            jobs.clone(),
            &discoveries,
            PlanId("p".into()),
            Utc::now(),
        )
        .expect("plan");
        let revoke_a = p
            .actions
            .iter()
            .find(|a| a.connector == "a" && a.phase == Phase::Revoke)
            .expect("revoke in a");
        let lock_b = p
            .actions
            .iter()
            .find(|a| a.connector == "b" && a.phase == Phase::Contain)
            .expect("lock in b");
        assert_eq!(revoke_a.depends_on.contains(&lock_b.id), crosses, "{extra}");
    }
}

// ---------------------------------------------------------------------------------------------
// Property: random subjects, accounts, identifiers, protected lists and failures.

const POOL: [&str; 12] = [
    "admin",
    "root@acme.test",
    "1",
    "svc-build",
    "dana",
    "dana@example.org",
    "uid=admin,ou=admins,dc=acme,dc=test",
    "uid=dana,ou=people,dc=acme,dc=test",
    "ivan",
    "1004",
    "zoe@vendorx.test",
    "arn:aws:iam::111122223333:user/admin",
];

/// The same identifier as an operator might write it in the protected list.
fn respell(id: &str, rng: &mut StdRng) -> String {
    match rng.random_range(0..3) {
        0 => id.to_uppercase(),
        1 if id.contains("=") => id.replace(',', ", ").to_uppercase(),
        _ => format!(" {id} "),
    }
}

struct World {
    fakes: Vec<Arc<Fake>>,
    jobs: Vec<Job>,
    protected: Vec<String>,
    /// canonical identifiers the protected list names (written independently of the planner)
    protected_ids: BTreeSet<String>,
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase().replace(", ", ",")
}

fn random_world(seed: u64) -> World {
    let mut rng = StdRng::seed_from_u64(seed);
    let phases = [
        Phase::Contain,
        Phase::Transfer,
        Phase::Revoke,
        Phase::Delete,
    ];
    let subjects: Vec<String> = (0..rng.random_range(1..4))
        .map(|i| format!("s{i}"))
        .collect();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut fakes = Vec::new();
    for c in 0..rng.random_range(1..4) {
        let name = format!("c{c}");
        let mut fake = Fake {
            name: name.clone(),
            calls: calls.clone(),
            ..Default::default()
        };
        for s in &subjects {
            if rng.random_bool(0.2) {
                continue;
            }
            let accounts: Vec<Account> = (0..rng.random_range(1..4))
                .map(|a| {
                    let ids: Vec<&str> = (0..rng.random_range(0..3))
                        .map(|_| POOL[rng.random_range(0..POOL.len())])
                        .collect();
                    Account::new(format!("{name}-{s}-a{a}"), "id", format!("{s}-a{a}"))
                        .answers_to(ids)
                })
                .collect();
            let mut props: Vec<Prop> = Vec::new();
            for i in 0..rng.random_range(1..9) {
                let after: Vec<usize> = (0..i).filter(|_| rng.random_bool(0.2)).collect();
                let account = accounts[rng.random_range(0..accounts.len())].id.clone();
                props.push(Prop {
                    kind: "act",
                    target: format!("{s}-t{i}"),
                    phase: phases[rng.random_range(0..phases.len())],
                    account,
                    after,
                });
                if rng.random_bool(0.15) {
                    fake.failing.insert(format!("{s}-t{i}"));
                }
            }
            fake.world.insert(s.clone(), (accounts, props));
        }
        fakes.push(Arc::new(fake));
    }
    let n = rng.random_range(0..3);
    let chosen: Vec<&str> = (0..n)
        .map(|_| POOL[rng.random_range(0..POOL.len())])
        .collect();
    World {
        protected: chosen.iter().map(|p| respell(p, &mut rng)).collect(),
        protected_ids: chosen.iter().map(|p| norm(p)).collect(),
        jobs: subjects.iter().map(|s| job(s, Risk::High)).collect(),
        fakes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_protected_account_is_touched_and_no_phase_runs_before_the_earlier_ones_succeeded() {
    let mut ran = 0usize;
    for seed in 0..60u64 {
        let w = random_world(seed);
        let connectors: Connectors = w
            .fakes
            .iter()
            .map(|f| (f.name.clone(), f.clone() as Arc<dyn Connector>))
            .collect();
        let protected: Vec<&str> = w.protected.iter().map(String::as_str).collect();
        let config = config(&protected, "[policies.default]\nretention_days = 0\n");
        let discoveries = revoke_engine::discover(&config, &connectors, &w.jobs)
            .await
            .expect("discover");
        let plan = plan_jobs(
            &config,
            &connectors,
            w.jobs.clone(),
            &discoveries,
            PlanId(format!("p{seed}")),
            Utc::now(),
        );
        let plan = match plan {
            Ok(p) => p,
            Err(EngineError::UnknownSubject { .. }) => continue,
            Err(e) => panic!("seed {seed}: {e}"),
        };
        // 1. No action targets an account any of whose identifiers is protected, and every
        //    action of an unprotected account is planned unless it depends on a left-out one.
        let accounts: BTreeMap<(String, String), Account> = w
            .fakes
            .iter()
            .flat_map(|f| {
                f.world.values().flat_map(move |(accts, _)| {
                    accts
                        .iter()
                        .map(move |a| ((f.name.clone(), a.id.clone()), a.clone()))
                })
            })
            .collect();
        let is_protected = |a: &Account| {
            a.all_identifiers()
                .any(|i| w.protected_ids.contains(&norm(i)))
        };
        for a in &plan.actions {
            let pin = a.account.as_ref().expect("pinned");
            let acct = &accounts[&(a.connector.clone(), pin.id.clone())];
            assert!(
                !is_protected(acct),
                "seed {seed}: {} touches protected {}",
                a.id,
                pin.id
            );
        }
        for f in &w.fakes {
            for (s, (accts, props)) in &f.world {
                let mut out: BTreeSet<usize> = BTreeSet::new();
                loop {
                    let before = out.len();
                    for (i, p) in props.iter().enumerate() {
                        let acct = accts.iter().find(|a| a.id == p.account).expect("account");
                        if is_protected(acct) || p.after.iter().any(|j| out.contains(j)) {
                            out.insert(i);
                        }
                    }
                    if out.len() == before {
                        break;
                    }
                }
                for (i, p) in props.iter().enumerate() {
                    let planned = plan
                        .actions
                        .iter()
                        .any(|a| a.connector == f.name && a.target == p.target);
                    assert_eq!(
                        planned,
                        !out.contains(&i),
                        "seed {seed}: {} {s} {} planned={planned}",
                        f.name,
                        p.target
                    );
                }
            }
        }
        // 2. Run it: no later-phase action of a subject is sent before every earlier-phase
        //    action of that subject (in that connector) succeeded.
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("store"));
        let exec = Executor::new(store.clone(), connectors.clone(), &config, "prop");
        exec.record(&plan).await.expect("record");
        exec.run_plan(&plan.id).await.expect("run");
        let calls = w.fakes[0].calls.lock().expect("lock").clone();
        let records = store.actions(&plan.id).await.expect("actions");
        let state: BTreeMap<(String, String), ActionState> = records
            .iter()
            .map(|r| {
                (
                    (r.action.connector.clone(), r.action.target.clone()),
                    r.state,
                )
            })
            .collect();
        for (i, (c, t)) in calls.iter().enumerate() {
            let a = plan
                .actions
                .iter()
                .find(|a| &a.connector == c && &a.target == t)
                .expect("called action is planned");
            for b in plan
                .actions
                .iter()
                .filter(|b| b.connector == a.connector && b.job_id == a.job_id && b.phase < a.phase)
            {
                let called_before = calls[..i]
                    .iter()
                    .any(|(c2, t2)| c2 == &b.connector && t2 == &b.target);
                assert!(
                    called_before && state[&(b.connector.clone(), b.target.clone())].is_success(),
                    "seed {seed}: {} ({}) ran though {} ({}) had not succeeded before it",
                    a.target,
                    a.phase,
                    b.target,
                    b.phase
                );
            }
            ran += 1;
        }
        // and a failed action blocks every later phase of its subject
        for r in &records {
            if r.state == ActionState::Failed {
                for later in records.iter().filter(|x| {
                    x.action.connector == r.action.connector
                        && x.action.job_id == r.action.job_id
                        && x.action.phase > r.action.phase
                        && x.action.phase <= Phase::Delete
                }) {
                    assert_eq!(
                        later.state,
                        ActionState::Blocked,
                        "seed {seed}: {} after failed {}",
                        later.action.target,
                        r.action.target
                    );
                }
            }
        }
    }
    assert!(ran > 100, "the property saw real runs ({ran} calls)");
}
