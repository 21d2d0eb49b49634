//! The department a webhook carries reaches the batch view: signed Standard Webhooks deliveries
//! (our schema, `data.department`) held by the blast-radius guard are counted by department in
//! `GET /api/v1/batches/{id}`, against the real `revoked` binary.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use revoke_testkit::Slapd;
use serde_json::json;

#[test]
fn held_webhooks_are_counted_by_the_department_they_carry() {
    let slapd = Slapd::start().unwrap();
    // The guard lets the first job through and holds the next four, in one batch.
    let setup = Setup::new(&slapd, None, "[guard]\nmax_jobs = 1\nwindow_secs = 3600\n");
    let d = Daemon::start(&setup.config, &setup.dir.path().join("revoked.log"));
    let c = client();
    for (n, department) in [
        (1, Some("Sales")),
        (2, Some("  Sales ")),
        (3, Some("Finance")),
        (4, None),
        (5, Some("")),
    ] {
        let mut data = json!({
            "employee_id": format!("E{n}"),
            "effective_at": "2099-01-01T00:00:00Z",
        });
        if let Some(dep) = department {
            data["department"] = json!(dep);
        }
        let (status, answer) = c.deliver(&d, &Delivery::termination(data), WEBHOOK_SECRET);
        assert_eq!(status, 202, "{answer}");
    }
    let batches = c.get_json(&d, "/api/v1/batches");
    let batches = batches.as_array().unwrap();
    assert_eq!(batches.len(), 1, "{batches:?}");
    let id = batches[0]["batch_id"].as_str().unwrap();
    let detail = c.get_json(&d, &format!("/api/v1/batches/{id}"));
    assert_eq!(
        detail["by_department"],
        json!({ "Sales": 1, "Finance": 1, "unknown": 2 }),
        "{detail}"
    );
    assert!(d.terminate().success());
}
