//! The Google Workspace stand-in cross-checked with Google's own Python client
//! (google-api-python-client 2.202.0, built from the discovery documents it ships, through Prism
//! with the same documents converted to Swagger; google-auth's service-account credentials fetch
//! the tokens from the stand-in's `/token` with their own RFC 7523 assertion): every endpoint the
//! connector uses, each answer checked against its method's response schema
//! (tests/python/google_check.py), then what the stand-in holds afterwards, and how Google's
//! client reads a 403 rate-limit answer.

use std::path::PathBuf;
use std::process::Command;

use revoke_testkit::google::{GoogleStandin, DRIVE_APP_ID, FOLDER};
use revoke_testkit::moto::python_dir;
use revoke_testkit::Prism;
use serde_json::{json, Value};

fn python() -> PathBuf {
    let python = python_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "expected {} (run: tests/python/.venv/bin/pip install -r tests/python/requirements.txt)",
        python.display()
    );
    python
}

struct Stack {
    g: GoogleStandin,
    prism: Prism,
    key: tempfile::NamedTempFile,
}

impl Stack {
    fn start() -> Stack {
        let g = GoogleStandin::start().expect("the google stand-in should start");
        let prism = g.prism().expect("prism should start in front of it");
        let key = tempfile::NamedTempFile::new().expect("a key file");
        std::fs::write(key.path(), g.service_account_key()).expect("the key is written");
        Stack { g, prism, key }
    }

    /// Runs google_check.py in `mode` with `args` after the URL and the key file; its JSON
    fn check(&self, mode: &str, args: &[&str]) -> Value {
        let out = Command::new(python())
            .arg(python_dir().join("google_check.py"))
            .arg(mode)
            .arg(self.prism.rest_url())
            .arg(self.key.path())
            .args(args)
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "google_check.py {mode} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
        assert_eq!(
            seen["problems"],
            json!([]),
            "answers that break the discovery documents' schemas"
        );
        assert_eq!(
            self.prism.errors(),
            Vec::<String>::new(),
            "prism found requests or answers that break Google's descriptions"
        );
        seen
    }
}

struct Ids {
    alice: String,
    archive: String,
    eng: String,
    sales: String,
}

/// An admin, the archive owner; alice with an alias, an employee id, 2SV, two grants, an app
/// password, two groups, an admin role, a licence and 45 Drive files of 1 KiB.
fn seed(g: &GoogleStandin) -> Ids {
    g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        let archive = w.user("archive@example.com");
        let alice = w.user("alice.smith@example.com");
        w.edit(&alice, |u| {
            u.aliases = vec!["alice@example.com".into()];
            u.employee_ids = vec!["E1001".into()];
            u.two_sv = true;
            u.backup_codes = 10;
            u.licences
                .insert(("Google-Apps".into(), "1010020027".into()));
            u.drive_files = 45;
            u.drive_bytes = 45 * 1024;
        });
        w.grant(&alice, "1234567890-abc.apps.googleusercontent.com", "Slack");
        w.grant(&alice, "9876543210-xyz.apps.googleusercontent.com", "Zoom");
        w.asp(&alice, "Thunderbird");
        let eng = w.group("eng@example.com", "Engineering");
        let sales = w.group("sales@example.com", "Sales");
        w.add_member(&eng, &alice);
        w.add_member(&sales, &alice);
        let helpdesk = w.role("_HELP_DESK_ADMIN_ROLE", false);
        w.assign(&helpdesk, &alice);
        w.transfer_polls = 2;
        Ids {
            alice,
            archive,
            eng,
            sales,
        }
    })
}

#[test]
fn googles_python_client_reads_and_offboards_through_every_endpoint_the_connector_uses() {
    let s = Stack::start();
    let ids = seed(&s.g);
    let seen = s.check(
        "all",
        &[
            "admin@example.com",
            "alice.smith@example.com",
            "archive@example.com",
            "alice@example.com",
            "E1001",
            "Google-Apps/1010020027",
        ],
    );

    // Discovery, as Google's client parsed it.
    assert_eq!(seen["user"]["id"], ids.alice.as_str());
    assert_eq!(seen["user"]["primaryEmail"], "alice.smith@example.com");
    assert_eq!(seen["user"]["aliases"], json!(["alice@example.com"]));
    assert_eq!(seen["user"]["suspended"], false);
    assert_eq!(seen["user"]["isEnrolledIn2Sv"], true);
    assert_eq!(
        seen["user"]["externalIds"],
        json!([{"type": "organization", "value": "E1001"}])
    );
    assert_eq!(seen["by_employee_id"], json!([ids.alice]));
    assert_eq!(seen["by_email_query"], json!([ids.alice]));
    assert_eq!(
        seen["groups"],
        json!(["eng@example.com", "sales@example.com"])
    );
    for m in seen["members"].as_array().expect("members") {
        assert_eq!(
            m,
            &json!({"id": ids.alice, "type": "USER", "role": "MEMBER", "status": "ACTIVE"})
        );
    }
    assert_eq!(
        seen["tokens"],
        json!([
            "1234567890-abc.apps.googleusercontent.com",
            "9876543210-xyz.apps.googleusercontent.com"
        ])
    );
    assert_eq!(seen["asps"].as_array().map(Vec::len), Some(1));
    assert!(
        seen["asps"][0].is_i64(),
        "codeId is an int32: {}",
        seen["asps"]
    );
    assert_eq!(seen["roles"], json!(["_HELP_DESK_ADMIN_ROLE"]));
    assert_eq!(
        seen["licence"],
        json!({"productId": "Google-Apps", "skuId": "1010020027", "userId": "alice.smith@example.com"})
    );
    assert_eq!(seen["transfers_before"], 0);
    assert_eq!(
        seen["drive"],
        json!({"files": 45, "bytes": 45 * 1024, "pages": 3})
    );

    // Gmail while alice is active; the second create of the same address is Google's 409.
    assert_eq!(seen["vacation_before"], json!({"enableAutoReply": false}));
    assert_eq!(seen["vacation_after"]["enableAutoReply"], true);
    assert_eq!(seen["vacation_after"]["responseSubject"], "I have left");
    assert_eq!(seen["forwarding_before"], json!({"enabled": false}));
    assert_eq!(seen["forwarding_addresses_before"], json!([]));
    assert_eq!(
        seen["forwarding_address"],
        json!({"forwardingEmail": "archive@example.com", "verificationStatus": "accepted"})
    );
    assert_eq!(seen["forwarding_address_again"]["status"], 409);
    assert_eq!(
        seen["forwarding_address_again"]["reasons"],
        json!(["alreadyExists"])
    );
    assert_eq!(
        seen["forwarding_after"],
        json!({"enabled": true, "emailAddress": "archive@example.com", "disposition": "leaveInInbox"})
    );
    assert_eq!(seen["other_mailbox"]["status"], 403);

    // The transfer: inProgress, then completed on the second read; the list finds that one.
    let transfer = &seen["transfer"];
    assert_eq!(
        transfer["statuses"],
        json!(["inProgress", "inProgress", "completed"])
    );
    assert_eq!(transfer["applications"], json!(["completed"]));
    assert_eq!(
        transfer["params"],
        json!([{"key": "PRIVACY_LEVEL", "value": ["PRIVATE", "SHARED"]}])
    );
    assert_eq!(seen["transfers_after"], json!([transfer["id"]]));

    // Contain and revoke; Gmail refuses a suspended user; each removal again is a 404.
    assert_eq!(seen["suspended"], true);
    let g = &seen["gmail_when_suspended"];
    assert_eq!(
        (g["status"].as_u64(), g["reasons"].clone()),
        (Some(400), json!(["failedPrecondition"]))
    );
    for (what, message) in [
        ("token", "Resource Not Found: clientId"),
        ("asp", "Resource Not Found: codeId"),
        ("member", "Resource Not Found: memberKey"),
        ("role_assignment", "Resource Not Found: roleAssignmentId"),
        (
            "licence",
            "User does not have a license for specified sku and product",
        ),
    ] {
        let r = &seen["gone"][what];
        assert_eq!(r["status"], 404, "{what}: {r}");
        assert_eq!(r["message"], message, "{what}: {r}");
        assert_eq!(r["reasons"], json!(["notFound"]), "{what}: {r}");
        assert_eq!(r["retried_by_google_client"], false, "{what}: {r}");
    }
    assert_eq!(seen["tokens_after"], json!([]));
    assert_eq!(seen["groups_after"], json!([]));
    assert_eq!(seen["user_after_delete"]["status"], 404);
    assert_eq!(
        seen["user_after_delete"]["message"],
        "Resource Not Found: userKey"
    );

    // What the stand-in holds now, and what reached it.
    assert!(s.g.user(&ids.alice).is_none(), "alice is deleted");
    s.g.world(|w| {
        assert!(w.groups[&ids.eng].members.is_empty());
        assert!(w.groups[&ids.sales].members.is_empty());
        assert!(w.role_assignments.is_empty());
        let archive = &w.users[&ids.archive];
        assert_eq!((archive.drive_files, archive.drive_bytes), (45, 45 * 1024));
        let t: Vec<_> = w.transfers.values().collect();
        assert_eq!(t.len(), 1, "one transfer");
        assert_eq!(t[0].applications[0]["applicationId"], DRIVE_APP_ID);
    });
    let reqs = s.g.requests();
    // google-auth fetched three tokens (admin, the leaver's Gmail, the leaver's Drive), each
    // once, with an assertion the stand-in verified; Gmail and Drive answered the leaver only.
    let tokens: Vec<_> = reqs.iter().filter(|r| r.path == "/token").collect();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    assert!(tokens.iter().all(|r| r.status == 200), "{tokens:?}");
    assert_eq!(s.g.tokens_issued(), 3);
    let subjects: std::collections::BTreeSet<_> = reqs
        .iter()
        .filter(|r| {
            r.status < 300 && (r.path.starts_with("/gmail/") || r.path.starts_with("/drive/"))
        })
        .map(|r| r.subject.clone())
        .collect();
    assert_eq!(
        subjects,
        [Some("alice.smith@example.com".to_owned())].into()
    );
    // The writes, in the order sent (Gmail before the suspension, the licence after the
    // transfer); 204s for the deletes, signOut and invalidate.
    let writes: Vec<String> =
        s.g.mutations()
            .iter()
            .filter(|r| r.status < 300)
            .map(|r| {
                let mut shape = r
                    .path
                    .replace(&ids.alice, "ALICE")
                    .replace(&ids.eng, "ENG")
                    .replace(&ids.sales, "SALES");
                if shape.contains("/asps/") || shape.contains("/roleassignments/") {
                    shape = format!("{}/ID", shape.rsplit_once('/').map_or("", |(a, _)| a));
                }
                format!("{} {shape} {}", r.method, r.status)
            })
            .collect();
    assert_eq!(
        writes,
        [
            "PUT /gmail/v1/users/alice.smith%40example.com/settings/vacation 200",
            "POST /gmail/v1/users/alice.smith%40example.com/settings/forwardingAddresses 200",
            "PUT /gmail/v1/users/alice.smith%40example.com/settings/autoForwarding 200",
            "POST /admin/datatransfer/v1/transfers 200",
            "PUT /admin/directory/v1/users/ALICE 200",
            "POST /admin/directory/v1/users/ALICE/signOut 204",
            "POST /admin/directory/v1/users/ALICE/verificationCodes/invalidate 204",
            "DELETE /admin/directory/v1/users/ALICE/tokens/1234567890-abc.apps.googleusercontent.com 204",
            "DELETE /admin/directory/v1/users/ALICE/tokens/9876543210-xyz.apps.googleusercontent.com 204",
            "DELETE /admin/directory/v1/users/ALICE/asps/ID 204",
            "DELETE /admin/directory/v1/groups/ENG/members/ALICE 204",
            "DELETE /admin/directory/v1/groups/SALES/members/ALICE 204",
            "DELETE /admin/directory/v1/customer/my_customer/roleassignments/ID 204",
            "DELETE /apps/licensing/v1/product/Google-Apps/sku/1010020027/user/alice.smith%40example.com 204",
            "DELETE /admin/directory/v1/users/ALICE 204",
        ],
        "{writes:#?}"
    );
}

#[test]
fn googles_python_client_reads_a_403_rate_limit_as_one_to_retry() {
    let s = Stack::start();
    seed(&s.g);
    for reason in [
        "userRateLimitExceeded",
        "rateLimitExceeded",
        "quotaExceeded",
    ] {
        s.g.rate_storm(1, reason);
    }
    let seen = s.check("storm", &["admin@example.com"]);
    let refused = seen["refused"].as_array().expect("refusals");
    let read: Vec<(u64, Value, bool)> = refused
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap_or(0),
                r["reasons"].clone(),
                r["retried_by_google_client"] == true,
            )
        })
        .collect();
    // Google's client retries the first two itself; quotaExceeded (Directory: too many
    // concurrent requests) it hands back. The connector classifies all three as rate_limited,
    // with its backoff (docs/connectors/google-workspace.md, "Rate limits").
    assert_eq!(
        read,
        [
            (403, json!(["userRateLimitExceeded"]), true),
            (403, json!(["rateLimitExceeded"]), true),
            (403, json!(["quotaExceeded"]), false),
        ]
    );
    assert_eq!(seen["then"], "admin@example.com");
}

/// A stand-in and Prism of its own: one Python run per Prism, so no pooled connection of the
/// recorder in front of Prism sits idle across a Python start-up (see requests-gtest.md: Node
/// closes idle keep-alive connections after 5 s, and a reuse racing that close was a 502 once)
#[test]
fn googles_python_client_reads_a_403_of_a_non_admin_as_final() {
    let s = Stack::start();
    seed(&s.g);
    s.g.world(|w| {
        let id = w.find("admin@example.com").map(|u| u.id.clone());
        if let Some(id) = id {
            w.edit(&id, |u| u.is_admin = false);
        }
    });
    // A 403 that is not a rate limit (the admin is no longer one) is not one to retry.
    let seen = s.check("storm", &["admin@example.com"]);
    assert_eq!(seen["then"], Value::Null);
    let refused = seen["refused"].as_array().expect("refusals");
    assert_eq!(refused.len(), 4);
    for r in refused {
        assert_eq!(r["status"], 403, "{r}");
        assert_eq!(r["reasons"], json!(["forbidden"]), "{r}");
        assert_eq!(r["message"], "Not Authorized to access this resource/api");
        assert_eq!(r["retried_by_google_client"], false, "{r}");
    }
}

/// Mobile devices, 2-step verification, a shared drive's membership and the archive move, with
/// Google's client: the admin lists, reads and account-wipes alice's phone, turns her 2SV off and
/// removes her from the shared drive (`useDomainAdminAccess`); the archive owner finds the folder
/// the transfer gave it, moves it into the drive and stamps it.
#[test]
fn googles_python_client_wipes_a_device_turns_2sv_off_and_archives_into_a_shared_drive() {
    let s = Stack::start();
    let (alice, phone, drive, folder) = s.g.world(|w| {
        let admin = w.user("admin@example.com");
        w.edit(&admin, |u| u.is_admin = true);
        let archive = w.user("archive@example.com");
        let alice = w.user("alice@example.com");
        w.edit(&alice, |u| u.two_sv = true);
        let phone = w.mobile_device(&alice, "Pixel 8", "ANDROID");
        w.mobile_device(&archive, "iPhone", "IOS_SYNC");
        let drive = w.shared_drive("Leavers archive");
        w.drive_member(&drive, &archive, "organizer");
        w.drive_member(&drive, &alice, "writer");
        let folder = w.file(&archive, "alice@example.com");
        w.edit_file(&folder, |f| f.mime_type = FOLDER.to_owned());
        let inside = w.file(&archive, "notes");
        w.edit_file(&inside, |f| f.parents = vec![folder.clone()]);
        w.share(&inside, "user", "lee@clientco.test", "reader");
        w.share(&inside, "domain", "clientco.test", "reader");
        // A file of the drive shared on its own with the client (beside the drive's members).
        let sheet = w.drive_file(&drive, "Client sheet");
        w.share(&sheet, "user", "lee@clientco.test", "commenter");
        w.drive_file(&drive, "Plain");
        (alice, phone, drive, folder)
    });
    let seen = s.check(
        "drive",
        &[
            "admin@example.com",
            "alice@example.com",
            "archive@example.com",
            "alice@example.com",
            "Leavers archive",
        ],
    );
    assert_eq!(
        seen["devices"],
        json!([{"resourceId": phone, "email": ["alice@example.com"], "type": "ANDROID", "status": "APPROVED"}])
    );
    assert_eq!(seen["devices_after"], json!(["ACCOUNT_WIPING"]));
    assert_eq!(seen["device_gone"]["status"], 404);
    assert_eq!(seen["device_gone"]["reasons"], json!(["notFound"]));
    assert_eq!(
        (&seen["two_sv_before"], &seen["two_sv_after"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(seen["two_sv_again"]["status"], 400);
    assert_eq!(seen["user_id"], alice.as_str());

    assert_eq!(seen["drive_id"], drive.as_str());
    assert_eq!(
        seen["drive_members"],
        json!([
            ["alice@example.com", "writer"],
            ["archive@example.com", "organizer"]
        ])
    );
    assert_eq!(seen["member"]["emailAddress"], "alice@example.com");
    assert_eq!(seen["member_gone"]["status"], 404);
    assert_eq!(seen["member_gone"]["reasons"], json!(["notFound"]));
    assert_eq!(seen["drive_without_admin_access"]["status"], 404);

    // What a client job's scan reads: archive's own files with their permissions (before the
    // move), the drive's files that have shares of their own, and those shares.
    assert_eq!(
        seen["own_file_grantees"],
        json!([
            "archive@example.com",
            "archive@example.com",
            "clientco.test",
            "lee@clientco.test"
        ])
    );
    assert_eq!(seen["augmented"], json!(["Client sheet"]));
    assert_eq!(
        seen["inherited_get"],
        json!([{"permissionType": "member", "role": "organizer", "inherited": true, "inheritedFrom": drive}]),
        "a drive member read on one of its files"
    );
    let grantees = seen["augmented_grantees"].as_array().expect("grantees");
    assert!(
        grantees.contains(&json!(["lee@clientco.test", [false]])),
        "{grantees:?}"
    );
    assert!(
        grantees.contains(&json!(["archive@example.com", [true]])),
        "the drive's organizer shows on the file as inherited: {grantees:?}"
    );

    assert_eq!(seen["folders_found"], 1);
    assert_eq!(seen["folder_id"], folder.as_str());
    assert_eq!(
        seen["moved"],
        json!({"parents": [drive], "driveId": drive, "appProperties": {"revokedLeaverId": alice, "retainUntil": "2027-12-05"}})
    );
    assert_eq!(seen["archived"], json!([folder]));
    assert_eq!(seen["folder"]["driveId"], drive.as_str());
    assert_eq!(seen["folder_without_all_drives"]["status"], 404);

    s.g.world(|w| {
        assert_eq!(
            w.mobile_devices[&phone].actions,
            ["admin_account_wipe"],
            "one wipe, of the account only"
        );
        assert!(w
            .mobile_devices
            .values()
            .filter(|d| d.resource_id != phone)
            .all(|d| d.actions.is_empty()));
        assert!(!w.users[&alice].two_sv);
        let members: Vec<_> = w.drives[&drive]
            .permissions
            .iter()
            .map(|p| p.email.clone())
            .collect();
        assert_eq!(members, [Some("archive@example.com".to_owned())]);
        // The folder and what is in it belong to the drive now.
        assert!(w
            .files
            .values()
            .all(|f| f.drive_id.as_deref() == Some(drive.as_str()) && f.owner.is_none()));
    });
}
