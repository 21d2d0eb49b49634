//! Checks the PostgreSQL stand-in: start, fresh databases, cleanup

#![allow(clippy::unwrap_used)]

use revoke_testkit::Postgres;

fn select_one(url: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-d", url, "-c", "select 1"])
        .output()
        .expect("psql should run");
    assert!(out.status.success(), "psql against {url}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn shared_cluster_gives_fresh_databases() {
    let pg = Postgres::shared();
    assert!(pg.url().starts_with("postgres://postgres@127.0.0.1:"));
    let a = pg.fresh_database().unwrap();
    let b = pg.fresh_database().unwrap();
    assert_ne!(a, b);
    assert_eq!(select_one(&a), "1");
    assert_eq!(select_one(&b), "1");
    assert_eq!(select_one(&pg.url()), "1");
    // isolation: a table in a is not in b
    assert_eq!(select_one(&a), "1");
    std::process::Command::new("psql")
        .args(["-X", "-q", "-d", &a, "-c", "create table t (x int)"])
        .status()
        .unwrap();
    let b_tables = pg
        .psql(
            b.rsplit('/').next().unwrap(),
            "select count(*) from pg_tables where tablename = 't'",
        )
        .unwrap();
    assert_eq!(b_tables.trim(), "0");
}

#[test]
fn shared_is_one_cluster_and_parallel_creates_work() {
    let port = Postgres::shared().port();
    let handles: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| Postgres::shared().fresh_database().unwrap()))
        .collect();
    let mut urls: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for url in &urls {
        assert!(url.contains(&format!(":{port}/")), "{url}");
    }
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 8);
}

#[test]
fn own_cluster_is_stopped_and_removed_on_drop() {
    let pg = Postgres::start().unwrap();
    let url = pg.fresh_database().unwrap();
    assert_eq!(select_one(&url), "1");
    let dir = pg.dir().to_path_buf();
    let port = pg.port();
    assert_ne!(port, Postgres::shared().port());
    drop(pg);
    assert!(!dir.exists(), "the data dir is removed");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "postgres is stopped"
    );
}
