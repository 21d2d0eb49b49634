//! The plan a given directory state produces, as a snapshot a reviewer reads: behaviour, not setup.

mod common;

use chrono::{DateTime, Utc};
use common::Env;
use revoke_core::{Job, JobId, PlanId, Risk, Subject};
use revoke_engine::{discover, plan_jobs, Registry};

fn job(id: &str, user: &str, risk: Risk, effective: &str) -> Job {
    Job {
        id: JobId(id.into()),
        subject: Subject::new(user),
        reason: "resignation".into(),
        effective_at: effective.parse::<DateTime<Utc>>().expect("time"),
        risk,
        source: "test".into(),
        requested_by: "hr".into(),
        policy: "default".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_for_the_sample_directory() {
    let env = Env::new(
        r#"group_placeholder_dn = "cn=nobody,ou=people,dc=example,dc=org""#,
        "",
    );
    let config = revoke_config::load(Some(&env.config)).expect("config");
    let registry = Registry::new().with(revoke_connector_ldap::LdapFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let jobs = vec![
        job("job-alice", "alice", Risk::Standard, "2026-12-01T17:00:00Z"),
        job("job-bob", "bob", Risk::High, "2026-12-15T09:00:00Z"),
        job(
            "job-breakglass",
            "breakglass",
            Risk::High,
            "2026-12-01T17:00:00Z",
        ),
    ];
    let discoveries = discover(&config, &connectors, &jobs)
        .await
        .expect("discovery");
    let created = "2026-11-23T12:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("time");
    let plan = plan_jobs(
        &config,
        &connectors,
        jobs.clone(),
        &discoveries,
        PlanId("plan-1".into()),
        created,
    )
    .expect("plan");
    // entryUUIDs are new in every directory (and the fingerprint hashes them): the snapshot names
    // each by the entry it belongs to.
    let mut text = serde_json::to_string(&plan).expect("json");
    for a in discoveries.iter().flat_map(|d| &d.accounts) {
        text = text.replace(&a.id, &format!("<{} of {}>", a.id_kind, a.name));
    }
    text = text.replace(&plan.fingerprint, "<fingerprint>");
    let redacted: serde_json::Value = serde_json::from_str(&text).expect("json");
    insta::assert_json_snapshot!(redacted);

    // The same inputs give the same plan and the same fingerprint.
    let again = plan_jobs(
        &config,
        &connectors,
        jobs,
        &discoveries,
        PlanId("plan-1".into()),
        created,
    )
    .expect("plan");
    assert_eq!(again.fingerprint, plan.fingerprint);
    assert_eq!(again, plan);
}
