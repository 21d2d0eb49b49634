//! The LDAP connector against a real OpenLDAP slapd (revoke_testkit::Slapd).

mod common;

use std::time::Duration;

use common::*;
use revoke_core::{ErrorClass, Outcome, Phase, Subject, Verdict};
use revoke_testkit::{free_port, Slapd};
use serde_json::json;

fn group(cn: &str) -> String {
    format!("cn={cn},{}", Slapd::GROUPS)
}

fn alice_groups_filter() -> String {
    format!("(|(member={ALICE})(uniqueMember={ALICE})(memberUid=alice))")
}

#[tokio::test]
async fn discovery_finds_the_account_and_groups_of_all_three_kinds_sorted() {
    let slapd = demo();
    let c = connector(&slapd, json!({}));
    let d = c.discover(&Subject::new("alice")).await.expect("discovery");
    assert!(d.found);
    assert_eq!(
        (d.connector.as_str(), d.subject.as_str()),
        (INSTANCE, "alice")
    );
    type Row = (String, String, Vec<(String, String)>);
    let got: Vec<Row> = d
        .findings
        .iter()
        .map(|f| {
            assert_eq!(
                (f.connector.as_str(), f.subject.as_str()),
                (INSTANCE, "alice")
            );
            (
                f.kind.clone(),
                f.target.clone(),
                f.attrs.clone().into_iter().collect(),
            )
        })
        .collect();
    let attrs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    let want = vec![
        (
            "account".into(),
            ALICE.into(),
            attrs(&[
                ("lock_method", "ppolicy"),
                ("locked", "false"),
                ("username", "alice"),
            ]),
        ),
        (
            "group_membership".into(),
            group("alice-only"),
            attrs(&[
                ("attribute", "member"),
                ("sole_member", "true"),
                ("value", ALICE),
            ]),
        ),
        (
            "group_membership".into(),
            group("developers"),
            attrs(&[
                ("attribute", "memberUid"),
                ("sole_member", "false"),
                ("value", "alice"),
            ]),
        ),
        (
            "group_membership".into(),
            group("engineering"),
            attrs(&[
                ("attribute", "member"),
                ("sole_member", "false"),
                ("value", ALICE),
            ]),
        ),
        (
            "group_membership".into(),
            group("vpn-users"),
            attrs(&[
                ("attribute", "uniqueMember"),
                ("sole_member", "false"),
                ("value", ALICE),
            ]),
        ),
    ];
    assert_eq!(got, want);

    // Already locked by ppolicy: discovery says so, and the plan has no lock.
    slapd
        .modify_ldif(&format!(
            "dn: {ALICE}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"
        ))
        .expect("lock by hand");
    let d = c.discover(&Subject::new("alice")).await.expect("discovery");
    assert_eq!(d.findings[0].attrs["locked"], "true");
    assert!(c
        .plan(&Subject::new("alice"), &d)
        .iter()
        .all(|p| p.kind.0 != "lock_account"));
}

#[tokio::test]
async fn a_temporary_ppolicy_lockout_is_not_taken_for_a_lock() {
    let slapd = demo();
    // A lockout after failed binds carries a real time and expires; only 000001010000Z is for good.
    slapd
        .modify_ldif(&format!(
            "dn: {ALICE}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 20240101000000Z\n"
        ))
        .expect("set a lockout time");
    let c = connector(&slapd, json!({}));
    let d = c.discover(&Subject::new("alice")).await.expect("discovery");
    assert_eq!(d.findings[0].attrs["locked"], "false");
    let actions = planned(c.as_ref(), &Subject::new("alice")).await;
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("lock"),
        Outcome::Done
    );
    let out = slapd
        .search(ALICE, "(objectClass=*)", &["pwdAccountLockedTime"])
        .expect("search");
    assert_eq!(values(&out, "pwdAccountLockedTime"), ["000001010000Z"]);
}

#[tokio::test]
async fn plan_for_alice_orders_lock_then_groups_then_delete() {
    let slapd = demo();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let alice = Subject::new("alice");
    let d = c.discover(&alice).await.expect("discovery");
    let p = c.plan(&alice, &d);
    let shape: Vec<(&str, String, Phase)> = p
        .iter()
        .map(|a| (a.kind.0.as_str(), a.target.clone(), a.phase))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("lock_account", ALICE.to_string(), Phase::Contain),
            ("remove_group_member", group("alice-only"), Phase::Revoke),
            ("remove_group_member", group("developers"), Phase::Revoke),
            ("remove_group_member", group("engineering"), Phase::Revoke),
            ("remove_group_member", group("vpn-users"), Phase::Revoke),
            ("delete_account", ALICE.to_string(), Phase::Delete),
        ]
    );
    let lock = ("lock_account".into(), ALICE.to_string());
    for a in &p[1..5] {
        assert_eq!(a.after, vec![lock.clone()], "{}", a.summary);
    }
    let everything_else: Vec<_> = p[..5]
        .iter()
        .map(|a| (a.kind.clone(), a.target.clone()))
        .collect();
    assert_eq!(p[5].after, everything_else);
    assert_eq!(d.accounts.len(), 1);
    let id = d.accounts[0].id.clone();
    assert_eq!(d.accounts[0].id_kind, "entryUUID");
    for a in &p {
        assert_eq!(a.account, id, "pinned to alice's entryUUID");
        assert_eq!(a.params["user_dn"], ALICE);
        assert_eq!(a.params["username"], "alice");
    }
    assert_eq!(p[0].summary, format!("lock {ALICE} (ppolicy)"));
    assert_eq!(
        p[3].summary,
        format!("remove alice from {} (member)", group("engineering"))
    );
    assert_eq!(p[3].params["attribute"], "member");
    assert_eq!(p[3].params["value"], ALICE);
    assert_eq!(p[2].params["value"], "alice");
    assert_eq!(p[5].summary, format!("delete {ALICE}"));

    // Without delete_entry and remove_groups, only the lock is left.
    let c = connector(&slapd, json!({"remove_groups": false}));
    let kinds: Vec<String> = c.plan(&alice, &d).into_iter().map(|a| a.kind.0).collect();
    assert_eq!(kinds, ["lock_account"]);
}

#[tokio::test]
async fn offboarding_alice_end_to_end_then_again_changes_nothing() {
    let slapd = demo();
    let url = slapd.url();
    let c = connector(
        &slapd,
        json!({"delete_entry": true, "group_placeholder_dn": Slapd::PLACEHOLDER}),
    );
    assert_eq!(
        bind_rc(&url, ALICE, ALICE_PW).await,
        0,
        "alice can bind before"
    );
    let actions = planned(c.as_ref(), &Subject::new("alice")).await;
    assert_eq!(actions.len(), 6);

    // Lock first, and check that it bites before the entry is gone.
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("lock"),
        Outcome::Done
    );
    assert_eq!(
        bind_rc(&url, ALICE, ALICE_PW).await,
        49,
        "alice cannot bind once locked"
    );
    let before_groups = slapd.op_counts().expect("counts");
    let outcomes = apply_all(c.as_ref(), &actions[1..5]).await;
    assert_eq!(outcomes, vec![Outcome::Done; 4]);
    let ops = slapd.op_counts().expect("counts").since(&before_groups);
    assert_eq!(
        (ops.compare, ops.modify, ops.search),
        (0, 4, 4),
        "per group: one pin look-up (shared by the removals in flight; these run one by one) and \
         one modify deleting the stored values; for alice-only (discovery saw her as the last \
         member) that modify also adds the placeholder"
    );
    let left = slapd
        .search(Slapd::GROUPS, &alice_groups_filter(), &["dn"])
        .expect("search");
    assert_eq!(dns(&left), Vec::<String>::new(), "alice is in no group");
    let only = slapd
        .search(&group("alice-only"), "(objectClass=*)", &["member"])
        .expect("search");
    assert_eq!(values(&only, "member"), [Slapd::PLACEHOLDER]);
    assert_eq!(
        apply(c.as_ref(), &actions[5]).await.expect("delete"),
        Outcome::Done
    );
    let gone = slapd
        .search(Slapd::PEOPLE, "(uid=alice)", &["dn"])
        .expect("search");
    assert_eq!(dns(&gone), Vec::<String>::new(), "entry deleted");
    let others = slapd
        .search(Slapd::PEOPLE, "(uid=bob)", &["dn"])
        .expect("search");
    assert_eq!(dns(&others).len(), 1, "bob untouched");

    // Everything again: already done, and nothing changed. A write goes out before its read, so
    // re-applying one action (what a retry after a lost answer does) sends one write that the
    // server refuses (the value is gone: 16; the entry is gone: 32), then reads and concludes
    // from the pinned entry; the executor itself never re-sends an action recorded as done.
    let before = slapd.op_counts().expect("counts");
    let results = slapd.mutation_results().expect("log").len();
    let again = apply_all(c.as_ref(), &actions).await;
    assert_eq!(again, vec![Outcome::AlreadyDone; 6]);
    let ops = slapd.op_counts().expect("counts").since(&before);
    let sent = slapd.mutation_results().expect("log")[results..].to_vec();
    assert!(
        sent.iter()
            .all(|(_, rc)| matches!(rc, Some(rc) if *rc != 0)),
        "every write sent again was refused, nothing changed: {sent:?}"
    );
    assert!(
        ops.mutations() <= 6,
        "at most one refused write per action: {ops:?}"
    );

    let verdicts = verify_all(c.as_ref(), &actions).await;
    assert_eq!(verdicts, vec![Verdict::Confirmed; 6]);
}

#[tokio::test]
async fn verify_says_not_confirmed_before_apply() {
    let slapd = demo();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let actions = planned(c.as_ref(), &Subject::new("alice")).await;
    for (a, v) in actions.iter().zip(verify_all(c.as_ref(), &actions).await) {
        assert!(
            matches!(v, Verdict::NotConfirmed { .. }),
            "{}: {v}",
            a.summary
        );
    }
}

#[tokio::test]
async fn injection_attempts_match_nothing_and_a_literal_name_matches_only_itself() {
    let slapd = demo();
    let c = connector(&slapd, json!({}));
    for name in [
        "*)(uid=*",
        "alice,ou=admins",
        "admin)(|(uid=*",
        "*",
        "alice)(uid=bob",
    ] {
        let d = c
            .discover(&Subject::new(name))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!d.found, "{name} found {:?}", d.findings);
        assert!(d.findings.is_empty());
    }

    // A user whose uid really is `*)(uid=*` (the = is escaped in the DN) and a group naming them.
    slapd
        .add_ldif(
            "dn: uid=*)(uid\\3D*,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: *)(uid=*\ncn: Odd\nsn: Odd\n\n\
             dn: cn=odd,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: odd\n\
             member: uid=*)(uid\\3D*,ou=people,dc=example,dc=org\nmember: uid=bob,ou=people,dc=example,dc=org\n\n\
             dn: cn=odd-posix,ou=groups,dc=example,dc=org\nobjectClass: posixGroup\ncn: odd-posix\ngidNumber: 7000\n\
             memberUid: *)(uid=*\nmemberUid: bob\n",
        )
        .expect("odd user");
    let d = c
        .discover(&Subject::new("*)(uid=*"))
        .await
        .expect("discovery");
    assert!(d.found);
    let targets: Vec<(&str, &str)> = d
        .findings
        .iter()
        .map(|f| (f.kind.as_str(), f.target.as_str()))
        .collect();
    assert_eq!(targets.len(), 3, "{targets:?}");
    assert_eq!(targets[0].0, "account");
    let out = slapd
        .search(Slapd::PEOPLE, "(uid=\\2a\\29\\28uid=\\2a)", &["dn"])
        .expect("search");
    assert_eq!(dns(&out), [targets[0].1.to_string()], "exactly that entry");
    assert_eq!(
        targets[1],
        ("group_membership", "cn=odd,ou=groups,dc=example,dc=org")
    );
    assert_eq!(
        targets[2],
        (
            "group_membership",
            "cn=odd-posix,ou=groups,dc=example,dc=org"
        )
    );
    assert_eq!(d.findings[2].attrs["value"], "*)(uid=*");

    // Removing them from the groups leaves bob in both.
    let actions = planned(c.as_ref(), &Subject::new("*)(uid=*")).await;
    assert_eq!(
        apply_all(c.as_ref(), &actions).await,
        vec![Outcome::Done; 3]
    );
    let g = slapd
        .search(
            "cn=odd,ou=groups,dc=example,dc=org",
            "(objectClass=*)",
            &["member"],
        )
        .expect("search");
    assert_eq!(
        values(&g, "member"),
        ["uid=bob,ou=people,dc=example,dc=org"]
    );
    let g = slapd
        .search(
            "cn=odd-posix,ou=groups,dc=example,dc=org",
            "(objectClass=*)",
            &["memberUid"],
        )
        .expect("search");
    assert_eq!(values(&g, "memberUid"), ["bob"]);
    assert_eq!(
        verify_all(c.as_ref(), &actions).await,
        vec![Verdict::Confirmed; 3]
    );
}

#[tokio::test]
async fn the_last_member_without_a_placeholder_is_refused_and_with_one_is_replaced() {
    let slapd = demo();
    let only = group("alice-only");
    let c = connector(&slapd, json!({}));
    let actions = planned(c.as_ref(), &Subject::new("alice")).await;
    let remove = actions
        .iter()
        .find(|a| a.target == only)
        .expect("alice-only planned");
    let err = apply(c.as_ref(), remove).await.expect_err("refused");
    assert_eq!(
        (err.class.clone(), err.code.as_str()),
        (ErrorClass::Permanent, "last_member")
    );
    assert!(
        err.message.contains(&only) && err.message.contains("group_placeholder_dn"),
        "{}",
        err.message
    );
    let g = slapd
        .search(&only, "(objectClass=*)", &["member"])
        .expect("search");
    assert_eq!(values(&g, "member"), [ALICE], "alice still in the group");

    let c = connector(&slapd, json!({"group_placeholder_dn": Slapd::PLACEHOLDER}));
    assert_eq!(
        apply(c.as_ref(), remove).await.expect("replaced"),
        Outcome::Done
    );
    let g = slapd
        .search(&only, "(objectClass=*)", &["member"])
        .expect("search");
    assert_eq!(values(&g, "member"), [Slapd::PLACEHOLDER]);
    assert_eq!(
        apply(c.as_ref(), remove).await.expect("again"),
        Outcome::AlreadyDone
    );
}

#[tokio::test]
async fn lock_by_attribute() {
    let slapd = demo();
    let c = connector(
        &slapd,
        json!({"lock_method": "attribute", "lock_attribute": "employeeType", "lock_value": "disabled"}),
    );
    let actions = planned(c.as_ref(), &Subject::new("alice")).await;
    assert_eq!(actions[0].summary, format!("lock {ALICE} (attribute)"));
    assert!(matches!(
        c.verify(&actions[0]).await.expect("verify"),
        Verdict::NotConfirmed { .. }
    ));
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("lock"),
        Outcome::Done
    );
    let out = slapd
        .search(ALICE, "(objectClass=*)", &["employeeType"])
        .expect("search");
    assert_eq!(values(&out, "employeeType"), ["disabled"]);
    let before = slapd.mutation_results().expect("log").len();
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("again"),
        Outcome::AlreadyDone
    );
    // The blind lock asserts (!(employeeType=disabled)): already locked, it is refused (122),
    // and the read that follows says so.
    assert_eq!(
        slapd.mutation_results().expect("log")[before..],
        [(format!("MOD {ALICE}"), Some(122))]
    );
    assert_eq!(
        c.verify(&actions[0]).await.expect("verify"),
        Verdict::Confirmed
    );
    let d = c.discover(&Subject::new("alice")).await.expect("discovery");
    assert_eq!(d.findings[0].attrs["locked"], "true");
    assert_eq!(d.findings[0].attrs["lock_method"], "attribute");
}

#[tokio::test]
async fn lock_by_move_then_groups_and_delete_follow_the_moved_entry() {
    let slapd = demo();
    let moved = format!("uid=alice,{}", Slapd::DISABLED);
    let c = connector(
        &slapd,
        json!({"lock_method": "move", "disabled_base_dn": Slapd::DISABLED, "delete_entry": true,
               "group_placeholder_dn": Slapd::PLACEHOLDER}),
    );
    let actions = planned(c.as_ref(), &Subject::new("alice")).await;
    assert_eq!(actions.len(), 6);
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("move"),
        Outcome::Done
    );
    let out = slapd
        .search(Slapd::SUFFIX, "(uid=alice)", &["dn"])
        .expect("search");
    assert_eq!(dns(&out), [moved.as_str()]);
    // refint rewrites member and uniqueMember in the background; wait for it as time would.
    slapd
        .search_until(
            &group("engineering"),
            "(objectClass=*)",
            &["member"],
            Duration::from_secs(5),
            |o| values(o, "member").contains(&moved),
        )
        .expect("refint rewrote engineering");

    let d = c.discover(&Subject::new("alice")).await.expect("discovery");
    assert_eq!(d.findings[0].target, moved);
    assert_eq!(d.findings[0].attrs["locked"], "true");

    let before = slapd.op_counts().expect("counts");
    assert_eq!(
        apply(c.as_ref(), &actions[0]).await.expect("again"),
        Outcome::AlreadyDone
    );
    assert_eq!(
        slapd
            .op_counts()
            .expect("counts")
            .since(&before)
            .mutations(),
        0
    );

    assert_eq!(
        apply_all(c.as_ref(), &actions[1..5]).await,
        vec![Outcome::Done; 4]
    );
    let left = slapd
        .search(
            Slapd::GROUPS,
            &format!(
                "(|(member={moved})(uniqueMember={moved})(member={ALICE})(uniqueMember={ALICE})(memberUid=alice))"
            ),
            &["dn"],
        )
        .expect("search");
    assert_eq!(
        dns(&left),
        Vec::<String>::new(),
        "no group names alice by either DN"
    );
    assert_eq!(
        apply(c.as_ref(), &actions[5]).await.expect("delete"),
        Outcome::Done
    );
    let out = slapd
        .search(Slapd::SUFFIX, "(uid=alice)", &["dn"])
        .expect("search");
    assert_eq!(dns(&out), Vec::<String>::new());

    let before = slapd.op_counts().expect("counts");
    assert_eq!(
        apply_all(c.as_ref(), &actions).await,
        vec![Outcome::AlreadyDone; 6]
    );
    assert_eq!(
        slapd
            .op_counts()
            .expect("counts")
            .since(&before)
            .mutations(),
        0
    );
    assert_eq!(
        verify_all(c.as_ref(), &actions).await,
        vec![Verdict::Confirmed; 6]
    );
}

#[tokio::test]
async fn a_wrong_bind_password_is_an_auth_error() {
    let slapd = demo();
    let c = connector(&slapd, json!({"bind_password": "not-the-password"}));
    let err = c.check().await.expect_err("wrong password");
    assert_eq!(err.class, ErrorClass::Auth);
    assert_eq!(err.code, "invalid_credentials");
    assert!(!err.message.contains("not-the-password"), "{}", err.message);
    let err = c
        .discover(&Subject::new("alice"))
        .await
        .expect_err("discovery cannot bind either");
    assert_eq!(err.class, ErrorClass::Auth);
    connector(&slapd, json!({}))
        .check()
        .await
        .expect("the right password works");
}

#[tokio::test]
async fn an_unreachable_server_is_retryable_connection() {
    let port = free_port();
    let c = build(&params(
        &format!("ldap://127.0.0.1:{port}"),
        json!({"timeout_secs": 2}),
    ));
    for err in [
        c.check().await.expect_err("nothing listens"),
        c.discover(&Subject::new("alice"))
            .await
            .expect_err("nothing listens"),
    ] {
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(err.code, "connection", "{err:?}");
    }
}

/// A TCP relay to `target` whose open connections can be cut while it keeps listening.
async fn relay(target: u16) -> (u16, tokio::sync::watch::Sender<u32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (cut, _) = tokio::sync::watch::channel(0u32);
    let cuts = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut rx = cuts.subscribe();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = rx.changed() => {}
                }
            });
        }
    });
    (port, cut)
}

#[tokio::test]
async fn a_broken_connection_is_remade() {
    let slapd = demo();
    let (port, cut) = relay(slapd.port()).await;
    let c = build(&params(&format!("ldap://127.0.0.1:{port}"), json!({})));
    assert!(
        c.discover(&Subject::new("alice"))
            .await
            .expect("first")
            .found
    );
    let binds = slapd.op_counts().expect("counts").bind;
    cut.send_modify(|n| *n += 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The cached connection is dead; the next call makes (and binds) a new one.
    let d = c
        .discover(&Subject::new("alice"))
        .await
        .expect("after the cut");
    assert!(d.found);
    assert_eq!(
        slapd.op_counts().expect("counts").bind,
        binds + 1,
        "one new bind"
    );
}

#[tokio::test]
async fn a_server_that_goes_away_is_a_retryable_connection_error() {
    let slapd = demo();
    let c = connector(&slapd, json!({}));
    c.check().await.expect("connected");
    drop(slapd);
    let err = c
        .discover(&Subject::new("alice"))
        .await
        .expect_err("server gone");
    assert!(err.is_retryable() && err.code == "connection", "{err:?}");
}

#[tokio::test]
async fn an_unknown_user_is_not_found_and_gets_no_actions() {
    let slapd = demo();
    let c = connector(&slapd, json!({"delete_entry": true}));
    let s = Subject::new("mallory");
    let d = c.discover(&s).await.expect("discovery");
    assert!(!d.found && d.findings.is_empty());
    assert!(c.plan(&s, &d).is_empty());
}

#[tokio::test]
async fn two_entries_with_one_username_are_ambiguous() {
    let slapd = demo();
    slapd
        .add_ldif(
            "dn: ou=contractors,ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: contractors\n\n\
             dn: uid=alice,ou=contractors,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: alice\ncn: A\nsn: A\n",
        )
        .expect("second alice");
    let c = connector(&slapd, json!({}));
    let err = c
        .discover(&Subject::new("alice"))
        .await
        .expect_err("ambiguous");
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Permanent, "ambiguous_user")
    );
    assert!(
        err.message.contains(ALICE) && err.message.contains("ou=contractors"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn concurrent_tasks_share_one_connection() {
    let slapd = demo();
    let c = connector(&slapd, json!({}));
    let before = slapd.op_counts().expect("counts");
    let mut tasks = Vec::new();
    for name in [
        "alice",
        "bob",
        "carol",
        "breakglass",
        "mallory",
        "alice",
        "bob",
        "carol",
    ] {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.discover(&Subject::new(name)).await
        }));
    }
    let mut found = 0;
    for t in tasks {
        found += usize::from(t.await.expect("task").expect("discovery").found);
    }
    assert_eq!(found, 7);
    assert_eq!(
        slapd.op_counts().expect("counts").since(&before).bind,
        1,
        "one bind for all"
    );
}

#[tokio::test]
async fn removals_right_after_a_move_survive_refint_catching_up() {
    // refint rewrites member values in a background task after the MODRDN has answered; removals
    // sent in that window must not leave (or let refint put back) a value naming alice.
    let slapd = demo();
    let moved = format!("uid=alice,{}", Slapd::DISABLED);
    let c = connector(
        &slapd,
        json!({"lock_method": "move", "disabled_base_dn": Slapd::DISABLED}),
    );
    let actions = planned(c.as_ref(), &Subject::new("alice")).await;
    let kept: Vec<_> = actions
        .iter()
        .filter(|a| !a.target.contains("alice-only"))
        .cloned()
        .collect();
    assert_eq!(apply_all(c.as_ref(), &kept).await, vec![Outcome::Done; 4]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let filter =
        format!("(|(member={moved})(uniqueMember={moved})(member={ALICE})(uniqueMember={ALICE})(memberUid=alice))");
    let left = slapd
        .search(Slapd::GROUPS, &filter, &["member", "uniqueMember"])
        .expect("search");
    assert_eq!(dns(&left), [group("alice-only")], "{left}");
    assert_eq!(
        verify_all(c.as_ref(), &kept).await,
        vec![Verdict::Confirmed; 4]
    );
}
