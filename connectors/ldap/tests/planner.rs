//! The LDAP connector under the engine's planner: a protected entry is left out by any
//! identifier it answers to, whatever identifier the job names, and nothing else is.

use chrono::Utc;
use revoke_connector_ldap::LdapFactory;
use revoke_core::{Job, JobId, PlanId, Risk, Subject};
use revoke_engine::{discover, plan_jobs, Registry};
use revoke_testkit::{Slapd, ODD_LDIF};

const ADMIN: &str = "uid=admin,ou=admins,ou=people,dc=example,dc=org";
const JDOE: &str = "uid=jdoe,ou=sales,ou=people,dc=example,dc=org";

fn job(id: &str, subject: Subject) -> Job {
    Job {
        id: JobId(id.into()),
        subject,
        reason: "left".into(),
        effective_at: Utc::now(),
        risk: Risk::High,
        source: "test".into(),
        requested_by: "hr".into(),
        policy: "default".into(),
    }
}

async fn plan(slapd: &Slapd, protected: &str, jobs: Vec<Job>) -> revoke_core::Plan {
    let config = revoke_config::load_str(&format!(
        r#"[protected]
accounts = [{protected:?}]
[policies.default]
[connectors.corp-ldap]
kind = "ldap"
url = "{url}"
bind_dn = "{root}"
bind_password = "{pw}"
user_base_dn = "{people}"
group_base_dn = "{groups}"
delete_entry = true
"#,
        url = slapd.url(),
        root = Slapd::ROOT_DN,
        pw = Slapd::ROOT_PW,
        people = Slapd::PEOPLE,
        groups = Slapd::GROUPS,
    ))
    .expect("config");
    let registry = Registry::new().with(LdapFactory);
    registry.validate(&config).expect("valid");
    let connectors = registry.build(&config).expect("connectors");
    let discoveries = discover(&config, &connectors, &jobs)
        .await
        .expect("discovery");
    plan_jobs(
        &config,
        &connectors,
        jobs,
        &discoveries,
        PlanId("plan-1".into()),
        Utc::now(),
    )
    .expect("plan")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protected_entry_is_left_out_whatever_identifier_names_it() {
    let slapd = Slapd::start().expect("slapd");
    slapd.add_ldif(ODD_LDIF).expect("odd ldif");
    let mut by_employee_id = Subject::new("hr-event-1");
    by_employee_id.employee_id = Some("1".into());
    let mut by_email = Subject::new("hr-event-2");
    by_email.email = Some("root@acme.test".into());
    for protected in [
        "admin",
        "root@acme.test",
        "1",
        "UID=admin, OU=admins, OU=people, DC=example, DC=org",
    ] {
        let jobs = vec![
            job("job-email", Subject::new("root@acme.test")),
            job("job-employee-id", by_employee_id.clone()),
            job("job-hr-email", by_email.clone()),
            job("job-one", Subject::new("1")),
            job("job-jdoe", Subject::new("jdoe")),
        ];
        let p = plan(&slapd, protected, jobs).await;
        assert!(
            p.actions
                .iter()
                .all(|a| a.target != ADMIN
                    && a.account.as_ref().is_some_and(|pin| pin.name != ADMIN)),
            "protected.accounts = [{protected:?}] leaves out every action on {ADMIN}: {:?}",
            p.actions.iter().map(|a| &a.summary).collect::<Vec<_>>()
        );
        let notes: Vec<&str> = p.notes.iter().map(|n| n.message.as_str()).collect();
        assert_eq!(notes.len(), 4, "one note per job naming admin: {notes:?}");
        for n in &notes {
            // named by the entry, or by the subject's identifier where that is what is listed
            assert!(n.contains("left out 4 action(s)"), "{n}");
        }
        // jdoe's own actions are all there, pinned to jdoe's entry.
        let jdoe: Vec<_> = p
            .actions
            .iter()
            .filter(|a| a.job_id.0 == "job-jdoe")
            .collect();
        assert_eq!(jdoe.len(), 1 + 7 + 1, "lock, 7 groups, delete");
        assert!(jdoe
            .iter()
            .all(|a| a.account.as_ref().is_some_and(|pin| pin.name == JDOE)));
    }
}
