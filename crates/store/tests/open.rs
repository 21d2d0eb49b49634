//! Opening stores: URLs, directories, re-opening a migrated database.

use revoke_store::{NewAuditEntry, StoreError};

fn entry() -> NewAuditEntry {
    NewAuditEntry {
        at: chrono::DateTime::from_timestamp(1_900_000_000, 0).expect("a valid time"),
        actor: "test".into(),
        kind: "store.opened".into(),
        job_id: None,
        action_id: None,
        data: "{}".into(),
    }
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_and_reopens() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("a/b/revoked.db");
    let url = format!("sqlite://{}", path.display());
    {
        let store = revoke_store::open(&url).await.expect("opens");
        store.append_audit(&entry()).await.expect("appends");
        assert!(
            path.exists(),
            "the database file and its directories are created"
        );
        assert!(
            dir.path().join("a/b/revoked.db-wal").exists(),
            "journal mode is WAL"
        );
    }
    // Migrations already applied: opening again neither fails nor loses data.
    let store = revoke_store::open(&url).await.expect("reopens");
    assert_eq!(store.audit_log().await.expect("reads").len(), 1);
}

#[tokio::test]
async fn sqlite_memory_store_works() {
    let store = revoke_store::open("sqlite::memory:").await.expect("opens");
    store.append_audit(&entry()).await.expect("appends");
    store.append_audit(&entry()).await.expect("appends");
    assert_eq!(store.audit_log().await.expect("reads").len(), 2);
}

#[tokio::test]
async fn unknown_url_scheme_is_a_config_error() {
    let err = revoke_store::open("mysql://localhost/x")
        .await
        .expect_err("unsupported");
    assert!(
        matches!(err, StoreError::Config(_)),
        "expected Config, got {err:?}"
    );
}

#[tokio::test]
async fn postgres_reopens_a_migrated_database() {
    let url = tokio::task::spawn_blocking(|| revoke_testkit::Postgres::shared().fresh_database())
        .await
        .expect("the testkit task finishes")
        .expect("a fresh postgres database");
    revoke_store::open(&url)
        .await
        .expect("opens")
        .append_audit(&entry())
        .await
        .expect("appends");
    let store = revoke_store::open(&url).await.expect("reopens");
    assert_eq!(store.audit_log().await.expect("reads").len(), 1);
}
