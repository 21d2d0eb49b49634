//! Identity against a real slapd loaded with a directory as odd as the world (ODD_LDIF): every
//! identifier an entry answers to finds it, every action is pinned to its entryUUID, and nothing
//! is done to an entry that merely took over a planned DN or username.

mod common;

use std::time::Duration;

use common::*;
use revoke_core::{Action, ErrorClass, Outcome, Protected, Subject, Verdict};
use revoke_testkit::{Slapd, ODD_LDIF};
use serde_json::json;

const IVAN: &str = "uid=ivan,ou=sales,ou=people,dc=example,dc=org";
const JDOE: &str = "uid=jdoe,ou=sales,ou=people,dc=example,dc=org";
const ADMIN: &str = "uid=admin,ou=admins,ou=people,dc=example,dc=org";
const KIM: &str = "uid=kim,ou=people,dc=example,dc=org";
const ZOE: &str = "cn=Zoë Contractor,ou=vendorx,ou=people,dc=example,dc=org";

fn odd() -> Slapd {
    let slapd = Slapd::start().expect("slapd starts");
    slapd.add_ldif(ODD_LDIF).expect("odd ldif loads");
    slapd
}

fn group(cn: &str) -> String {
    format!("cn={cn},{}", Slapd::GROUPS)
}

/// The values of `attr` of one entry, read as the rootdn.
fn read(slapd: &Slapd, dn: &str, attr: &str) -> Vec<String> {
    let out = slapd
        .search(dn, "(objectClass=*)", &[attr])
        .unwrap_or_default();
    values(&out, attr)
}

fn entry_uuid(slapd: &Slapd, dn: &str) -> String {
    read(slapd, dn, "entryUUID")
        .pop()
        .unwrap_or_else(|| panic!("{dn} has an entryUUID"))
}

fn exists(slapd: &Slapd, dn: &str) -> bool {
    slapd
        .search(dn, "(objectClass=*)", &["dn"])
        .map(|o| !o.trim().is_empty())
        .unwrap_or(false)
}

/// Moves an entry as an admin would (ldapmodify modrdn), keeping its RDN.
fn move_entry(slapd: &Slapd, dn: &str, rdn: &str, new_superior: &str) {
    slapd
        .modify_ldif(&format!(
            "dn: {dn}\nchangetype: modrdn\nnewrdn: {rdn}\ndeleteoldrdn: 0\nnewsuperior: {new_superior}\n"
        ))
        .expect("admin moves the entry");
}

fn new_hire(slapd: &Slapd, dn: &str, uid: &str, pw: &str) {
    slapd
        .add_ldif(&format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: New Hire\nsn: Hire\nuserPassword: {pw}\n"
        ))
        .expect("new hire added");
}

fn by<'a>(actions: &'a [Action], kind: &str, target: &str) -> &'a Action {
    actions
        .iter()
        .find(|a| a.kind.0 == kind && a.target == target)
        .unwrap_or_else(|| panic!("{kind} {target} planned: {:?}", kinds(actions)))
}

#[tokio::test]
async fn a_subject_given_as_one_identifier_is_found_by_any_attribute() {
    let slapd = odd();
    let c = connector(&slapd, json!({}));
    // (subject id, the entry, how it matched)
    let cases = [
        ("1004", JDOE, "employeeNumber = 1004"),
        ("zoe@vendorx.test", ZOE, "mail = zoe@vendorx.test"),
        ("ZOE@VendorX.test", ZOE, "mail = ZOE@VendorX.test"),
        ("kim.lee", KIM, "uid = kim.lee"),
        ("kim.lee@acme.test", KIM, "mail = kim.lee@acme.test"),
        (
            "jane.doe",
            "cn=Doe\\, Jane,ou=sales,ou=people,dc=example,dc=org",
            "uid = jane.doe",
        ),
        (
            "mixed.case",
            "uid=Mixed.Case,OU=Sales,ou=people,dc=example,dc=org",
            "uid = mixed.case",
        ),
    ];
    for (id, dn, why) in cases {
        let d = c
            .discover(&Subject::new(id))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(d.found, "{id} is found");
        assert_eq!(d.accounts.len(), 1, "{id}");
        let a = &d.accounts[0];
        assert!(revoke_core::dn::same_dn(&a.name, dn), "{id}: {}", a.name);
        assert_eq!(a.matched_by, why, "{id}");
        assert_eq!(a.id_kind, "entryUUID");
        assert_eq!(
            a.id,
            entry_uuid(&slapd, dn),
            "{id}: pinned to the entryUUID"
        );
    }

    // The explicit fields of an HR event, without a username.
    let mut hr = Subject::new("hr-event-77");
    hr.employee_id = Some("1004".into());
    let d = c.discover(&hr).await.expect("discovery");
    assert_eq!(d.accounts[0].name, JDOE);
    assert_eq!(d.accounts[0].matched_by, "employeeNumber = 1004");
    let mut hr = Subject::new("hr-event-78");
    hr.email = Some("zoe@vendorx.test".into());
    assert!(c.discover(&hr).await.expect("discovery").found);

    // Each lookup is one search per user base, all three attributes in one filter.
    let before = slapd.op_counts().expect("counts");
    c.discover(&Subject::new("1004")).await.expect("discovery");
    let ops = slapd.op_counts().expect("counts").since(&before);
    assert_eq!(ops.search, 2, "one user search, one group search: {ops:?}");
}

#[tokio::test]
async fn values_that_look_like_filters_match_nothing_by_any_attribute() {
    let slapd = odd();
    let c = connector(&slapd, json!({}));
    for id in [
        "*)(uid=*",
        "*",
        "*@*",
        "1*",
        "*)(employeeNumber=1",
        "admin)(|(mail=*",
        "\\2a",
    ] {
        let d = c
            .discover(&Subject::new(id))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(!d.found, "{id} found {:?}", d.accounts);
    }
}

#[tokio::test]
async fn two_entries_answering_through_different_attributes_are_ambiguous() {
    let slapd = odd();
    // Someone's username is another person's employee number.
    new_hire(
        &slapd,
        "uid=1004,ou=people,dc=example,dc=org",
        "1004",
        "pw-1004",
    );
    let c = connector(&slapd, json!({}));
    let err = c
        .discover(&Subject::new("1004"))
        .await
        .expect_err("ambiguous");
    assert_eq!(
        (err.class.clone(), err.code.as_str()),
        (ErrorClass::Permanent, "ambiguous_user")
    );
    assert!(
        err.message
            .contains(&format!("{JDOE} (employeeNumber = 1004)"))
            && err
                .message
                .contains("uid=1004,ou=people,dc=example,dc=org (uid = 1004)"),
        "{}",
        err.message
    );
    // A reused uid after a move: the old lena in alumni and the new hire in sales.
    let err = c
        .discover(&Subject::new("lena"))
        .await
        .expect_err("ambiguous");
    assert_eq!(err.code, "ambiguous_user");
    assert!(
        err.message.contains("ou=alumni") && err.message.contains("ou=sales"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn the_admin_entry_answers_to_every_identifier_whatever_it_was_found_by() {
    let slapd = odd();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let uuid = entry_uuid(&slapd, ADMIN);
    let mut by_employee_id = Subject::new("hr-event-1");
    by_employee_id.employee_id = Some("1".into());
    for subject in [
        Subject::new("root@acme.test"),
        Subject::new("1"),
        by_employee_id,
        Subject::new("admin"),
    ] {
        let d = c.discover(&subject).await.expect("discovery");
        assert_eq!(d.accounts.len(), 1, "{}", subject.id);
        let account = &d.accounts[0];
        assert_eq!(
            (account.id.as_str(), account.name.as_str()),
            (uuid.as_str(), ADMIN)
        );
        for entry in [
            "admin",
            "ADMIN",
            "root@acme.test",
            "Root@ACME.test",
            "1",
            ADMIN,
            "UID=admin, OU=admins, OU=people, DC=example, DC=org",
            "uid=admin,ou=Admins,ou=People,dc=Example,dc=Org",
            "uid=\\61dmin,ou=admins,ou=people,dc=example,dc=org",
            uuid.as_str(),
        ] {
            assert!(
                Protected::new([entry]).match_account(account).is_some(),
                "{} found by {}: protected.accounts = [{entry:?}] protects it; identifiers {:?}",
                ADMIN,
                subject.id,
                account.identifiers
            );
        }
        for entry in [
            "admins",
            "root",
            "uid=admin,ou=people,dc=example,dc=org",
            "10",
        ] {
            assert!(
                Protected::new([entry]).match_account(account).is_none(),
                "{entry}"
            );
        }
        // Every proposal is pinned to that account: the planner can leave out exactly these.
        let actions = actions_of(c.as_ref(), &subject, &d);
        assert_eq!(
            kinds(&actions),
            [
                ("lock_account", ADMIN),
                ("remove_group_member", group("admins").as_str()),
                ("remove_group_member", group("ops").as_str()),
                ("delete_account", ADMIN),
            ]
        );
        for a in &actions {
            let pin = a.account.as_ref().expect("pinned");
            assert_eq!((pin.id.as_str(), pin.name.as_str()), (uuid.as_str(), ADMIN));
        }
    }
}

#[tokio::test]
async fn every_uid_value_is_removed_from_memberuid_groups() {
    let slapd = odd();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let kim = Subject::new("kim");
    let d = c.discover(&kim).await.expect("discovery");
    let account = d
        .findings
        .iter()
        .find(|f| f.kind == "account")
        .expect("account");
    assert_eq!(
        account.attrs["username"], "kim",
        "the uid in the RDN comes first"
    );
    assert_eq!(account.attrs["usernames"], r#"["kim","kim.lee"]"#);
    let kimlee = d
        .findings
        .iter()
        .find(|f| f.target == group("kimlee"))
        .expect("cn=kimlee (memberUid: kim.lee) is found");
    assert_eq!(kimlee.attrs["attribute"], "memberUid");
    assert_eq!(kimlee.attrs["value"], "kim.lee");

    let actions = actions_of(c.as_ref(), &kim, &d);
    assert_eq!(
        apply_all(c.as_ref(), &actions).await,
        vec![Outcome::Done; actions.len()]
    );
    assert_eq!(read(&slapd, &group("kimlee"), "memberUid"), ["jdoe"]);
    assert_eq!(read(&slapd, &group("kim-wiki"), "member"), [JDOE]);
    assert!(!exists(&slapd, KIM));
    assert_eq!(
        verify_all(c.as_ref(), &actions).await,
        vec![Verdict::Confirmed; actions.len()]
    );
}

#[tokio::test]
async fn unique_member_values_with_a_uid_are_found_and_removed_exactly() {
    let slapd = odd();
    slapd.add_ldif(revoke_testkit::DEMO_LDIF).expect("demo too");
    let c = connector(&slapd, json!({}));
    let jdoe = Subject::new("jdoe");

    // What reading every groupOfUniqueNames costs: no extra operation, their entries.
    let before = slapd.op_counts().expect("counts");
    let d = c.discover(&jdoe).await.expect("discovery");
    let ops = slapd.op_counts().expect("counts").since(&before);
    assert_eq!(ops.search, 2, "{ops:?}");
    // jdoe's entry, the 7 groups that list jdoe, and vpn-users (demo), a groupOfUniqueNames
    // without jdoe that is read to be checked here.
    assert_eq!(ops.entries, 1 + 7 + 1, "{ops:?}");

    let vpn = d
        .findings
        .iter()
        .find(|f| f.target == group("vpn-unique"))
        .expect("cn=vpn-unique (uniqueMember with #'1'B) is found");
    assert_eq!(vpn.attrs["attribute"], "uniqueMember");
    assert_eq!(vpn.attrs["value"], format!("{JDOE}#'1'B"));
    assert!(
        d.findings.iter().all(|f| f.target != group("vpn-users")),
        "a groupOfUniqueNames without jdoe is read but not reported"
    );
    let groups: Vec<&str> = d
        .findings
        .iter()
        .filter(|f| f.kind == "group_membership")
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(
        groups,
        [
            group("kim-wiki").as_str(),
            group("kimlee").as_str(),
            group("ops").as_str(),
            group("sales").as_str(),
            group("sales-posix").as_str(),
            group("vendorx").as_str(),
            group("vpn-unique").as_str(),
        ]
    );

    let actions = actions_of(c.as_ref(), &jdoe, &d);
    let remove = by(&actions, "remove_group_member", &group("vpn-unique"));
    assert!(matches!(
        c.verify(remove).await.expect("verify"),
        Verdict::NotConfirmed { .. }
    ));
    let before = slapd.op_counts().expect("counts");
    assert_eq!(
        apply(c.as_ref(), remove).await.expect("remove"),
        Outcome::Done
    );
    let ops = slapd.op_counts().expect("counts").since(&before);
    assert_eq!(
        (ops.search, ops.modify),
        (1, 1),
        "the pin look-up, then the exact stored value (with its UID) deleted blind: {ops:?}"
    );
    let left = read(&slapd, &group("vpn-unique"), "uniqueMember");
    assert_eq!(
        left,
        [
            IVAN.to_string(),
            // slapd stores the escaped comma as \2C
            "cn=Doe\\2C Jane,ou=sales,ou=people,dc=example,dc=org#'0101'B".to_string()
        ],
        "only jdoe's exact value is gone"
    );
    assert_eq!(c.verify(remove).await.expect("verify"), Verdict::Confirmed);
    assert_eq!(
        apply(c.as_ref(), remove).await.expect("again"),
        Outcome::AlreadyDone
    );
}

#[tokio::test]
async fn odd_dns_are_matched_however_the_group_spells_them() {
    let slapd = odd();
    let c = connector(&slapd, json!({}));
    // (subject, the group, what stays in it)
    for (who, g, attr) in [
        ("jane.doe", "vpn-unique", "uniqueMember"),
        ("jane.doe", "sales", "member"),
        ("Mixed.Case", "sales", "member"),
        ("sobrien", "sales", "member"),
    ] {
        let subject = Subject::new(who);
        let actions = planned(c.as_ref(), &subject).await;
        let remove = by(&actions, "remove_group_member", &group(g));
        let before = read(&slapd, &group(g), attr);
        assert_eq!(
            apply(c.as_ref(), remove)
                .await
                .unwrap_or_else(|e| panic!("{who}: {e}")),
            Outcome::Done,
            "{who} from {g}"
        );
        let after = read(&slapd, &group(g), attr);
        assert_eq!(
            after.len() + 1,
            before.len(),
            "{who}: exactly one value removed from {g}: {after:?}"
        );
        assert_eq!(
            c.verify(remove).await.expect("verify"),
            Verdict::Confirmed,
            "{who}"
        );
    }
    assert_eq!(read(&slapd, &group("sales"), "member"), [IVAN, JDOE]);
}

#[tokio::test]
async fn an_entry_without_uid_found_by_email_is_really_locked_and_deleted() {
    let slapd = odd();
    let url = slapd.url();
    let c = connector(&slapd, json!({"delete_entry": true}));
    assert_eq!(
        bind_rc(&url, ZOE, "zoe-password").await,
        0,
        "zoë can bind before"
    );
    let zoe = Subject::new("zoe@vendorx.test");
    let actions = planned(c.as_ref(), &zoe).await;
    assert_eq!(
        kinds(&actions),
        [
            ("lock_account", ZOE),
            ("remove_group_member", group("vendorx").as_str()),
            ("delete_account", ZOE),
        ]
    );
    assert_eq!(
        actions[1].summary,
        format!("remove {ZOE} from {} (member)", group("vendorx"))
    );
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("lock"),
        Outcome::Done
    );
    assert_eq!(
        bind_rc(&url, ZOE, "zoe-password").await,
        49,
        "zoë cannot bind once locked"
    );
    assert_eq!(
        c.verify(&actions[0]).await.expect("verify"),
        Verdict::Confirmed
    );
    assert_eq!(
        apply(c.as_ref(), &actions[1]).await.expect("group"),
        Outcome::Done
    );
    assert_eq!(read(&slapd, &group("vendorx"), "member"), [JDOE]);
    assert!(matches!(
        c.verify(&actions[2]).await.expect("verify"),
        Verdict::NotConfirmed { .. }
    ));
    assert_eq!(
        apply(c.as_ref(), &actions[2]).await.expect("delete"),
        Outcome::Done
    );
    let gone = slapd
        .search(Slapd::PEOPLE, "(mail=zoe@vendorx.test)", &["dn"])
        .expect("search");
    assert!(gone.trim().is_empty(), "zoë's entry is deleted: {gone}");
    assert_eq!(
        verify_all(c.as_ref(), &actions).await,
        vec![Verdict::Confirmed; 3]
    );
    assert_eq!(
        apply_all(c.as_ref(), &actions).await,
        vec![Outcome::AlreadyDone; 3],
        "the pinned entry is gone"
    );
}

#[tokio::test]
async fn a_new_hire_at_the_planned_dn_is_never_touched() {
    // The repro: lock ran; then an admin moved the leaver's entry out of ou=people and a new hire
    // took uid=ivan,ou=sales (and its groups). The rest of the plan must touch neither.
    let slapd = odd();
    let url = slapd.url();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let old_uuid = entry_uuid(&slapd, IVAN);
    let actions = planned(c.as_ref(), &Subject::new("ivan")).await;
    assert_eq!(
        kinds(&actions),
        [
            ("lock_account", IVAN),
            ("remove_group_member", group("sales").as_str()),
            ("remove_group_member", group("sales-posix").as_str()),
            ("remove_group_member", group("vpn-unique").as_str()),
            ("delete_account", IVAN),
        ]
    );
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("lock"),
        Outcome::Done
    );

    let archived = format!("uid=ivan,{}", Slapd::DISABLED);
    move_entry(&slapd, IVAN, "uid=ivan", Slapd::DISABLED);
    new_hire(&slapd, IVAN, "ivan", "new-ivan-password");
    let new_uuid = entry_uuid(&slapd, IVAN);
    assert_ne!(new_uuid, old_uuid);
    // refint follows the move in cn=sales and cn=vpn-unique; the admin adds the new hire.
    slapd
        .search_until(
            &group("vpn-unique"),
            "(objectClass=*)",
            &["uniqueMember"],
            Duration::from_secs(5),
            |o| values(o, "uniqueMember").contains(&archived),
        )
        .expect("refint rewrote vpn-unique");
    slapd
        .search_until(
            &group("sales"),
            "(objectClass=*)",
            &["member"],
            Duration::from_secs(5),
            |o| values(o, "member").contains(&archived),
        )
        .expect("refint rewrote sales");
    slapd
        .modify_ldif(&format!(
            "dn: {}\nchangetype: modify\nadd: member\nmember: {IVAN}\n",
            group("sales")
        ))
        .expect("new hire joins sales");

    let before = slapd.mutations().expect("log").len();
    let changed = slapd.changes().expect("log").len();
    for a in [&actions[1], &actions[2], &actions[4]] {
        let err = apply(c.as_ref(), a)
            .await
            .expect_err("the planned DN or uid now names the new hire");
        assert_eq!(
            (err.class.clone(), err.code.as_str()),
            (ErrorClass::Permanent, "identity_changed"),
            "{}: {err}",
            a.summary
        );
        assert!(
            err.message.contains(&old_uuid) && err.message.contains(&new_uuid),
            "names both entries: {}",
            err.message
        );
        let err = c.verify(a).await.expect_err("verify refuses too");
        assert_eq!(err.code, "identity_changed");
    }
    // The group removals sent nothing (the shared look-up showed the entry moved); the delete
    // went out blind to the planned DN with a critical assertion on ivan's entryUUID, which the
    // new hire's entry fails: refused, nothing changed.
    assert_eq!(
        slapd.mutation_results().expect("log")[before..],
        [(format!("DEL {IVAN}"), Some(122))],
        "nothing but the refused delete was sent"
    );
    // vpn-unique lists only the leaver (at the DN it was moved to): that removal goes ahead.
    assert_eq!(
        apply(c.as_ref(), &actions[3]).await.expect("vpn"),
        Outcome::Done
    );
    assert_eq!(
        slapd.changes().expect("log")[changed..],
        [format!("MOD {}", group("vpn-unique"))]
    );

    // The new hire is intact: can bind, keeps the DN, the groups and the uid.
    assert_eq!(bind_rc(&url, IVAN, "new-ivan-password").await, 0);
    assert_eq!(entry_uuid(&slapd, IVAN), new_uuid);
    assert!(read(&slapd, &group("sales"), "member").contains(&IVAN.to_string()));
    assert!(read(&slapd, &group("sales-posix"), "memberUid").contains(&"ivan".to_string()));
    // The leaver stays locked where the admin put it.
    assert_eq!(entry_uuid(&slapd, &archived), old_uuid);
    assert_eq!(bind_rc(&url, &archived, "ivan-password").await, 49);
}

#[tokio::test]
async fn a_leaver_moved_within_the_user_base_is_deleted_where_it_is_now() {
    // The old entry moved to ou=alumni, the new hire at another DN with the same uid: the
    // delayed delete deletes the pinned entry and not the one answering to the username.
    let slapd = odd();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let actions = planned(c.as_ref(), &Subject::new("ivan")).await;
    apply_all(c.as_ref(), &actions[..4]).await;
    let alumni = "uid=ivan,ou=alumni,ou=people,dc=example,dc=org";
    let other = "uid=ivan,ou=people,dc=example,dc=org";
    let old_uuid = entry_uuid(&slapd, IVAN);
    move_entry(
        &slapd,
        IVAN,
        "uid=ivan",
        "ou=alumni,ou=people,dc=example,dc=org",
    );
    new_hire(&slapd, other, "ivan", "pw");
    let delete = &actions[4];
    assert_eq!(
        c.verify(delete).await.expect("verify"),
        Verdict::NotConfirmed {
            detail: format!("{alumni} (entryUUID {old_uuid}) still exists")
        }
    );
    let before = slapd.mutations().expect("log").len();
    assert_eq!(
        apply(c.as_ref(), delete).await.expect("delete"),
        Outcome::Done
    );
    // The blind delete of the planned DN finds nothing there (32); the pin then finds ivan in
    // ou=alumni and deletes him there, never the new hire answering to uid=ivan.
    assert_eq!(
        slapd.mutation_results().expect("log")[before..],
        [
            (format!("DEL {IVAN}"), Some(32)),
            (format!("DEL {alumni}"), Some(0))
        ]
    );
    assert!(exists(&slapd, other), "the new hire is intact");
    assert!(!exists(&slapd, alumni));
    assert_eq!(c.verify(delete).await.expect("verify"), Verdict::Confirmed);
}

#[tokio::test]
async fn after_our_own_lock_by_move_a_new_hire_at_the_old_dn_is_left_alone() {
    let slapd = odd();
    let c = connector(
        &slapd,
        json!({"lock_method": "move", "disabled_base_dn": Slapd::DISABLED, "delete_entry": true}),
    );
    let actions = planned(c.as_ref(), &Subject::new("ivan")).await;
    assert_eq!(
        apply_all(c.as_ref(), &actions[..4]).await,
        vec![Outcome::Done; 4]
    );
    let disabled = format!("uid=ivan,{}", Slapd::DISABLED);
    assert!(exists(&slapd, &disabled), "our lock moved ivan");
    new_hire(&slapd, IVAN, "ivan", "pw");
    let before = slapd.mutations().expect("log").len();
    assert_eq!(
        apply(c.as_ref(), &actions[4]).await.expect("delete"),
        Outcome::Done
    );
    assert_eq!(
        slapd.mutations().expect("log")[before..],
        [format!("DEL {disabled}")]
    );
    assert!(exists(&slapd, IVAN), "the new hire at the old DN is intact");
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("lock again"),
        Outcome::AlreadyDone,
        "the pinned entry is gone, whoever holds its old DN"
    );
    assert_eq!(
        verify_all(c.as_ref(), &actions).await,
        vec![Verdict::Confirmed; 5]
    );
}

#[tokio::test]
async fn an_entry_moved_out_of_scope_is_not_taken_for_gone() {
    let slapd = odd();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let actions = planned(c.as_ref(), &Subject::new("jdoe")).await;
    let lock = &actions[0];
    move_entry(&slapd, JDOE, "uid=jdoe", Slapd::DISABLED);
    let moved = format!("uid=jdoe,{}", Slapd::DISABLED);
    let before = slapd.mutations().expect("log").len();
    let err = apply(c.as_ref(), lock).await.expect_err("out of scope");
    assert_eq!(
        (err.class.clone(), err.code.as_str()),
        (ErrorClass::Permanent, "out_of_scope")
    );
    assert!(err.message.contains(&moved), "{}", err.message);
    // Only the blind lock of the planned DN, where nothing is any more.
    assert_eq!(
        slapd.mutation_results().expect("log")[before..],
        [(format!("MOD {JDOE}"), Some(32))]
    );
    assert!(matches!(
        c.verify(lock).await.expect("verify"),
        Verdict::NotConfirmed { .. }
    ));
    assert_eq!(bind_rc(&slapd.url(), &moved, "jdoe-password").await, 0);
}

#[tokio::test]
async fn an_entry_gone_by_its_id_is_already_done() {
    let slapd = odd();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let actions = planned(c.as_ref(), &Subject::new("kim")).await;
    slapd
        .modify_ldif(&format!("dn: {KIM}\nchangetype: delete\n"))
        .expect("deleted by hand");
    let lock = by(&actions, "lock_account", KIM);
    let delete = by(&actions, "delete_account", KIM);
    for a in [lock, delete] {
        assert_eq!(
            apply(c.as_ref(), a).await.expect("apply"),
            Outcome::AlreadyDone
        );
        assert_eq!(c.verify(a).await.expect("verify"), Verdict::Confirmed);
    }
    // A memberUid the deleted entry held, which no one else holds, is still the leaver's: removed.
    let kimlee = by(&actions, "remove_group_member", &group("kimlee"));
    assert_eq!(
        apply(c.as_ref(), kimlee).await.expect("remove"),
        Outcome::Done
    );
    assert_eq!(read(&slapd, &group("kimlee"), "memberUid"), ["jdoe"]);
}

#[tokio::test]
async fn an_entry_without_the_id_attribute_is_not_planned() {
    let slapd = odd();
    // nsUniqueId is 389 DS's id: OpenLDAP has no such attribute.
    let c = connector(&slapd, json!({"id_attribute": "nsUniqueId"}));
    let err = c
        .discover(&Subject::new("jdoe"))
        .await
        .expect_err("no id to pin to");
    assert_eq!(
        (err.class.clone(), err.code.as_str()),
        (ErrorClass::Permanent, "missing_id")
    );
    assert!(
        err.message.contains(JDOE) && err.message.contains("nsUniqueId"),
        "{}",
        err.message
    );
}
