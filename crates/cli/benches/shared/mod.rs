//! The directory the LDAP benches share: N leavers, each in one groupOfNames, one
//! groupOfUniqueNames and one posixGroup of 50 to 500 members (sizes cycling 50, 140, 230, 320,
//! 410, 500; members shuffled, so a batch of leavers touches many groups), and each group also
//! lists one stayer.

#![allow(dead_code)]

use std::fmt::Write as _;

use revoke_testkit::Slapd;

pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";
/// Group sizes in leavers, cycled (mean 275); each group also lists one stayer.
pub const SIZES: [usize; 6] = [50, 140, 230, 320, 410, 500];

pub fn leaver(i: usize) -> String {
    format!("uid=leaver{i:05},{PEOPLE}")
}

/// For each group kind, the groups as lists of leavers: a deterministic shuffle of the
/// leavers cut into groups of `SIZES`.
pub fn groups(leavers: usize) -> [Vec<Vec<usize>>; 3] {
    let kind = |k: u64| {
        let mut order: Vec<usize> = (0..leavers).collect();
        order.sort_by_key(|&i| (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15 ^ k) >> 17);
        let mut out = Vec::new();
        let mut rest = order.as_slice();
        let mut n = 0;
        while !rest.is_empty() {
            let take = SIZES[n % SIZES.len()].min(rest.len());
            let (g, tail) = rest.split_at(take);
            out.push(g.to_vec());
            rest = tail;
            n += 1;
        }
        out
    };
    [kind(1), kind(2), kind(3)]
}

pub fn directory(leavers: usize, groups: &[Vec<Vec<usize>>; 3]) -> String {
    let mut ldif = String::new();
    for i in 0..leavers {
        let _ = write!(
            ldif,
            "dn: {}\nobjectClass: inetOrgPerson\nuid: leaver{i:05}\ncn: Leaver {i}\nsn: {i}\nuserPassword: pw{i}\n\n",
            leaver(i)
        );
    }
    let _ = write!(ldif, "dn: uid=stayer,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: stayer\ncn: Stayer\nsn: Stayer\n\n");
    for (g, members) in groups[0].iter().enumerate() {
        let _ = writeln!(ldif, "dn: cn=names-{g},{GROUPS}\nobjectClass: groupOfNames\ncn: names-{g}\nmember: uid=stayer,{PEOPLE}");
        for &i in members {
            let _ = writeln!(ldif, "member: {}", leaver(i));
        }
        ldif.push('\n');
    }
    for (g, members) in groups[1].iter().enumerate() {
        let _ = writeln!(ldif, "dn: cn=unique-{g},{GROUPS}\nobjectClass: groupOfUniqueNames\ncn: unique-{g}\nuniqueMember: uid=stayer,{PEOPLE}");
        for &i in members {
            let _ = writeln!(ldif, "uniqueMember: {}", leaver(i));
        }
        ldif.push('\n');
    }
    for (g, members) in groups[2].iter().enumerate() {
        let _ = writeln!(ldif, "dn: cn=posix-{g},{GROUPS}\nobjectClass: posixGroup\ncn: posix-{g}\ngidNumber: {}\nmemberUid: stayer", 6000 + g);
        for &i in members {
            let _ = writeln!(ldif, "memberUid: leaver{i:05}");
        }
        ldif.push('\n');
    }
    ldif
}

/// No leaver entry left, every group listing only the stayer.
pub fn clean(slapd: &Slapd, groups: usize) -> anyhow::Result<()> {
    let people = slapd.search(PEOPLE, "(uid=leaver*)", &["dn"])?;
    anyhow::ensure!(people.trim().is_empty(), "leavers left: {:.300}", people);
    let out = slapd.search(
        GROUPS,
        "(objectClass=*)",
        &["member", "uniqueMember", "memberUid"],
    )?;
    let values = out
        .lines()
        .filter(|l| {
            l.starts_with("member:")
                || l.starts_with("uniqueMember:")
                || l.starts_with("memberUid:")
        })
        .count();
    anyhow::ensure!(
        values == groups,
        "expected only the stayer in each of {groups} groups, found {values} member values"
    );
    Ok(())
}

/// The job of leaver `i`, effective at `effective` (long ago in the benches: retention is over,
/// so every phase, the delete included, runs at once).
pub fn job(i: usize, effective: chrono::DateTime<chrono::Utc>) -> revoke_core::Job {
    revoke_core::Job {
        id: revoke_core::JobId(format!("job-{i:05}")),
        subject: revoke_core::Subject::new(format!("leaver{i:05}")),
        reason: "bench".into(),
        effective_at: effective,
        risk: revoke_core::Risk::Standard,
        source: "bench".into(),
        requested_by: "bench".into(),
        policy: "default".into(),
    }
}

/// The number of leavers: `-- --leavers N`, else 1,000 under `cargo bench` and 20 for the smoke
/// pass under `cargo test --benches`.
pub fn leavers_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    args.iter()
        .position(|a| a == "--leavers")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full { 1000 } else { 20 })
}

/// The `[connectors.dir]` table of an LDAP instance on `url`, bound as the test slapd's root with
/// the password in the file `pw`, over this directory.
pub fn ldap_connector_toml(url: &str, pw: &std::path::Path) -> String {
    format!(
        r#"[connectors.dir]
kind = "ldap"
url = "{url}"
bind_dn = "{root}"
bind_password_file = "{pw}"
user_base_dn = "{PEOPLE}"
group_base_dn = "{GROUPS}"
user_object_class = "inetOrgPerson"
delete_entry = true
"#,
        root = Slapd::ROOT_DN,
        pw = pw.display()
    )
}

/// `BENCH_SQL_LOG=FILE`: every statement the store sends, with its time (sqlx's own log), for
/// finding where the engine's time per action goes.
pub fn sql_log_from_env() -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os("BENCH_SQL_LOG") {
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(std::fs::File::create(path)?))
            .with_env_filter(tracing_subscriber::EnvFilter::new("sqlx::query=debug"))
            .init();
    }
    Ok(())
}
