//! Checks the slapd stand-in against the real slapd: demo data, memberof, refint, ppolicy, op counts

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use revoke_testkit::{OpCounts, Slapd, DEMO_LDIF, ODD_LDIF};

const ALICE: &str = "uid=alice,ou=people,dc=example,dc=org";

fn demo() -> Slapd {
    let slapd = Slapd::start().expect("slapd should start");
    slapd
        .add_ldif(DEMO_LDIF)
        .expect("the demo ldif should load");
    slapd
}

fn whoami(slapd: &Slapd, dn: &str, pw: &str) -> std::process::Output {
    std::process::Command::new("ldapwhoami")
        .args(["-x", "-H", &slapd.url(), "-D", dn, "-w", pw])
        .output()
        .expect("ldapwhoami should run")
}

#[test]
fn demo_loads_and_memberof_is_maintained() {
    let slapd = demo();
    let alice = slapd
        .search(
            Slapd::PEOPLE,
            "(uid=alice)",
            &["mail", "employeeNumber", "memberOf"],
        )
        .unwrap();
    assert!(alice.contains(&format!("dn: {ALICE}")), "{alice}");
    assert!(alice.contains("mail: alice@example.org"), "{alice}");
    assert!(alice.contains("employeeNumber: 1001"), "{alice}");
    assert!(
        alice.contains("memberOf: cn=engineering,ou=groups,dc=example,dc=org"),
        "{alice}"
    );
    assert!(
        alice.contains("memberOf: cn=alice-only,ou=groups,dc=example,dc=org"),
        "{alice}"
    );
    // memberof only tracks groupOfNames/member: no memberOf for vpn-users (uniqueMember) or developers (memberUid)
    assert!(!alice.contains("vpn-users"), "{alice}");

    let users = slapd
        .search(Slapd::PEOPLE, "(objectClass=inetOrgPerson)", &["uid"])
        .unwrap();
    for uid in ["alice", "bob", "carol", "breakglass"] {
        assert!(
            users.contains(&format!("uid: {uid}\n")),
            "{uid} missing: {users}"
        );
    }
    assert!(
        !users.contains("nobody"),
        "the placeholder must not look like a user: {users}"
    );
    let dev = slapd
        .search(
            Slapd::GROUPS,
            "(cn=developers)",
            &["gidNumber", "memberUid"],
        )
        .unwrap();
    assert!(
        dev.contains("gidNumber: 5000") && dev.contains("memberUid: bob"),
        "{dev}"
    );

    slapd
        .modify_ldif(&format!(
            "dn: cn=engineering,{}\nchangetype: modify\ndelete: member\nmember: {ALICE}\n",
            Slapd::GROUPS
        ))
        .unwrap();
    let alice = slapd
        .search(ALICE, "(objectClass=*)", &["memberOf"])
        .unwrap();
    assert!(!alice.contains("cn=engineering"), "{alice}");
}

#[test]
fn deleting_a_user_removes_it_from_groups_via_refint() {
    let slapd = demo();
    slapd
        .modify_ldif(&format!("dn: {ALICE}\nchangetype: delete\n"))
        .unwrap();
    let groups = slapd
        .search_until(
            Slapd::GROUPS,
            "(objectClass=*)",
            &["member", "uniqueMember"],
            Duration::from_secs(10),
            |out| !out.contains(ALICE),
        )
        .unwrap();
    assert!(
        groups.contains("member: uid=bob,ou=people,dc=example,dc=org"),
        "{groups}"
    );
    assert!(
        groups.contains("uniqueMember: uid=carol,ou=people,dc=example,dc=org"),
        "{groups}"
    );
    let only = slapd
        .search(
            &format!("cn=alice-only,{}", Slapd::GROUPS),
            "(objectClass=*)",
            &["member"],
        )
        .unwrap();
    assert!(
        only.contains(&format!("member: {}", Slapd::PLACEHOLDER)),
        "refint_nothing placeholder expected: {only}"
    );
    // memberUid is a plain uid, not a DN: refint leaves posixGroup alone
    let dev = slapd
        .search(Slapd::GROUPS, "(cn=developers)", &["memberUid"])
        .unwrap();
    assert!(dev.contains("memberUid: alice"), "{dev}");
}

#[test]
fn moving_a_user_renames_it_in_groups() {
    let slapd = demo();
    slapd
        .modify_ldif(&format!("dn: uid=carol,{}\nchangetype: modrdn\nnewrdn: uid=carol\ndeleteoldrdn: 1\nnewsuperior: {}\n", Slapd::PEOPLE, Slapd::DISABLED))
        .unwrap();
    let moved = format!("uniqueMember: uid=carol,{}", Slapd::DISABLED);
    slapd
        .search_until(
            Slapd::GROUPS,
            "(cn=vpn-users)",
            &["uniqueMember"],
            Duration::from_secs(10),
            |out| out.contains(&moved),
        )
        .unwrap();
    assert_eq!(
        slapd.mutations().unwrap(),
        vec![format!("MODRDN uid=carol,{}", Slapd::PEOPLE)]
    );
}

#[test]
fn ppolicy_locked_time_makes_bind_fail_with_49() {
    let slapd = demo();
    let before = whoami(&slapd, ALICE, "alice-password");
    assert!(before.status.success(), "bind before locking: {before:?}");
    let wrong = whoami(&slapd, ALICE, "wrong");
    assert_eq!(wrong.status.code(), Some(49), "{wrong:?}");

    slapd
        .modify_ldif(&format!("dn: {ALICE}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"))
        .unwrap();
    let after = whoami(&slapd, ALICE, "alice-password");
    assert_eq!(
        after.status.code(),
        Some(49),
        "bind after locking: {after:?}"
    );
    let attrs = slapd.search(ALICE, "(objectClass=*)", &["+"]).unwrap();
    assert!(
        attrs.contains("pwdAccountLockedTime: 000001010000Z"),
        "{attrs}"
    );
    // other users are unaffected
    assert!(whoami(
        &slapd,
        "uid=bob,ou=people,dc=example,dc=org",
        "bob-password"
    )
    .status
    .success());

    slapd
        .modify_ldif(&format!(
            "dn: {ALICE}\nchangetype: modify\ndelete: pwdAccountLockedTime\n"
        ))
        .unwrap();
    assert!(
        whoami(&slapd, ALICE, "alice-password").status.success(),
        "unlocking restores binds"
    );
}

#[test]
fn op_counts_count_exactly() {
    let slapd = demo();
    let initial = slapd.op_counts().unwrap();
    // the base entries come from slapadd, the demo from one ldapadd connection
    assert_eq!(
        initial,
        OpCounts {
            bind: 1,
            add: 8,
            ..OpCounts::default()
        }
    );
    assert!(slapd.mutations().unwrap().is_empty());

    for round in 0..20 {
        let before = slapd.op_counts().unwrap();
        for i in 0..3 {
            slapd
                .modify_ldif(&format!("dn: {ALICE}\nchangetype: modify\nreplace: description\ndescription: round {round} change {i}\n"))
                .unwrap();
        }
        // read right away: no waiting, slapd logs each request before answering it
        let delta = slapd.op_counts().unwrap().since(&before);
        assert_eq!(
            delta,
            OpCounts {
                bind: 3,
                modify: 3,
                ..OpCounts::default()
            },
            "round {round}"
        );
    }

    let before = slapd.op_counts().unwrap();
    slapd
        .modify_ldif(&format!(
            "dn: uid=bob,{}\nchangetype: delete\n",
            Slapd::PEOPLE
        ))
        .unwrap();
    let _ = slapd.search(Slapd::PEOPLE, "(uid=carol)", &[]).unwrap();
    let delta = slapd.op_counts().unwrap().since(&before);
    assert_eq!(
        delta,
        OpCounts {
            bind: 2,
            search: 1,
            delete: 1,
            entries: 1,
            ..OpCounts::default()
        }
    );
    assert_eq!(delta.mutations(), 1);

    let mutations = slapd.mutations().unwrap();
    assert_eq!(mutations.len(), 61, "{mutations:?}");
    assert_eq!(mutations[0], format!("MOD {ALICE}"));
    assert_eq!(mutations[60], format!("DEL uid=bob,{}", Slapd::PEOPLE));
    // refint's internal modifications of the groups are not client operations and are not counted
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slapd.op_counts().unwrap().since(&before).modify, 0);
}

#[test]
fn failed_requests_are_counted_and_errors_are_readable() {
    let slapd = Slapd::start().unwrap();
    let before = slapd.op_counts().unwrap();
    let err = slapd
        .modify_ldif(&format!(
            "dn: uid=ghost,{}\nchangetype: delete\n",
            Slapd::PEOPLE
        ))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("ldapmodify exited with exit status: 32"),
        "{msg}"
    );
    assert_eq!(slapd.op_counts().unwrap().since(&before).delete, 1);
    assert_eq!(
        slapd.mutations().unwrap(),
        vec![format!("DEL uid=ghost,{}", Slapd::PEOPLE)]
    );
}

#[test]
fn two_at_once_use_different_ports_and_drop_cleans_up() {
    let a = Slapd::start().unwrap();
    let b = Slapd::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.url(), format!("ldap://127.0.0.1:{}", a.port()));
    a.add_ldif(DEMO_LDIF).unwrap();
    assert!(
        b.search(Slapd::PEOPLE, "(uid=alice)", &[])
            .unwrap()
            .is_empty(),
        "b is a separate directory"
    );
    assert!(a.log().contains("slapd starting"));

    let dir = a.dir().to_path_buf();
    let port = a.port();
    drop(a);
    assert!(!dir.exists(), "the temp dir is removed");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "slapd is stopped"
    );
}

#[test]
fn many_in_parallel() {
    let handles: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(|| {
                let s = demo();
                assert!(s
                    .search(Slapd::PEOPLE, "(uid=bob)", &["uid"])
                    .unwrap()
                    .contains("uid: bob"));
                s.port()
            })
        })
        .collect();
    let mut ports: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 6);
}

#[test]
fn the_odd_directory_loads_alone_and_after_the_demo() {
    for with_demo in [false, true] {
        let slapd = if with_demo {
            demo()
        } else {
            Slapd::start().unwrap()
        };
        slapd.add_ldif(ODD_LDIF).expect("the odd ldif should load");
        let people = slapd
            .search(
                Slapd::PEOPLE,
                "(objectClass=inetOrgPerson)",
                &["entryUUID", "uid"],
            )
            .unwrap();
        let dns: Vec<&str> = people.lines().filter(|l| l.starts_with("dn")).collect();
        let ids = people
            .lines()
            .filter(|l| l.starts_with("entryUUID: "))
            .count();
        assert_eq!(ids, dns.len(), "every entry has an entryUUID: {people}");
        assert_eq!(dns.len(), if with_demo { 14 } else { 10 }, "{people}");
        // Zoë's DN is not ASCII, so ldapsearch prints it base64 (dn::); she has no uid.
        let zoe = slapd
            .search(Slapd::PEOPLE, "(mail=zoe@vendorx.test)", &["uid", "cn"])
            .unwrap();
        assert!(zoe.starts_with("dn:: "), "{zoe}");
        assert!(!zoe.contains("uid:"), "{zoe}");
        let kim = slapd
            .search(Slapd::PEOPLE, "(uid=kim.lee)", &["uid"])
            .unwrap();
        assert!(
            kim.contains("uid: kim\n") && kim.contains("uid: kim.lee\n"),
            "{kim}"
        );
        // Two entries answer to uid=lena: the old one moved to alumni and the new hire.
        let lena = slapd.search(Slapd::PEOPLE, "(uid=lena)", &["dn"]).unwrap();
        assert_eq!(lena.matches("dn: ").count(), 2, "{lena}");
    }
}

#[test]
fn unique_member_with_a_uid_is_not_matched_by_a_dn_equality_filter() {
    // The fact the LDAP connector works around: (uniqueMember=<dn>) misses "<dn>#'1'B".
    let slapd = Slapd::start().unwrap();
    slapd.add_ldif(ODD_LDIF).unwrap();
    let jdoe = "uid=jdoe,ou=sales,ou=people,dc=example,dc=org";
    let by_dn = slapd
        .search(Slapd::GROUPS, &format!("(uniqueMember={jdoe})"), &["dn"])
        .unwrap();
    assert!(!by_dn.contains("vpn-unique"), "{by_dn}");
    let with_uid = slapd
        .search(
            Slapd::GROUPS,
            &format!("(uniqueMember={jdoe}#'1'B)"),
            &["dn"],
        )
        .unwrap();
    assert!(with_uid.contains("cn=vpn-unique"), "{with_uid}");
    let ivan = slapd
        .search(
            Slapd::GROUPS,
            "(uniqueMember=uid=ivan,ou=sales,ou=people,dc=example,dc=org)",
            &["dn"],
        )
        .unwrap();
    assert!(ivan.contains("cn=vpn-unique"), "{ivan}");
}

#[test]
fn op_counts_count_the_entries_searches_return() {
    let slapd = demo();
    for round in 0..10 {
        let before = slapd.op_counts().unwrap();
        let _ = slapd
            .search(Slapd::PEOPLE, "(objectClass=inetOrgPerson)", &["uid"])
            .unwrap();
        let _ = slapd
            .search(Slapd::PEOPLE, "(uid=nobody-here)", &["uid"])
            .unwrap();
        let delta = slapd.op_counts().unwrap().since(&before);
        assert_eq!((delta.search, delta.entries), (2, 4), "round {round}");
    }
}
