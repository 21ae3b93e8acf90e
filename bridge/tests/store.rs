//! The store's scenarios, each on SQLite (a temporary file) and on a real
//! PostgreSQL server (started by the test; skipped when the server is not
//! installed, unless `HYDROGEN_REQUIRE_CHAIN=1`): keys stored hashed, quotas
//! (concurrent reservations included), tasks moving forward only with their
//! images, what a restart resumes or fails, and bridges opening one
//! database together.

#[path = "support/postgres.rs"]
mod postgres;

use hydrogen_bridge::store::{hash_key, KeyLookup, QuotaError, TaskRow};
use hydrogen_bridge::{Store, TaskState};
use postgres::Postgres;

/// A database for one scenario.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(Postgres),
}

impl Db {
    fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    /// `None` (skip) when PostgreSQL is not installed.
    async fn postgres() -> Option<Db> {
        Postgres::start().await.map(Db::Postgres)
    }

    fn url(&self) -> String {
        match self {
            Db::Sqlite(dir) => format!("sqlite://{}/bridge.db?mode=rwc", dir.path().display()),
            Db::Postgres(server) => server.url(),
        }
    }

    async fn open(&self) -> Store {
        Store::open(&self.url()).await.unwrap()
    }

    /// Everything the database keeps: SQLite's file, or PostgreSQL's dump.
    fn contents(&self) -> Vec<u8> {
        match self {
            Db::Sqlite(dir) => std::fs::read(dir.path().join("bridge.db")).unwrap(),
            Db::Postgres(server) => server.dump().into_bytes(),
        }
    }
}

/// Each scenario as two tests, `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::Db::sqlite()).await;
                }
            )*
        }
        mod postgres_server {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(db) = super::Db::postgres().await {
                        super::$name(&db).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    keys_are_stored_hashed_and_authenticate,
    quotas_count_tasks_and_tokens_and_releases_give_back,
    a_task_moves_forward_only_and_keeps_its_images,
    on_restart_submitting_is_listed_for_recovery_and_the_others_resume,
    a_live_bridges_tasks_are_its_own_until_its_lease_runs_out,
    a_database_of_the_first_release_gains_the_lease_columns,
    bridges_opening_together_create_the_schema_once,
);

async fn keys_are_stored_hashed_and_authenticate(db: &Db) {
    let store = db.open().await;
    let (key, secret) = store.create_key("app", Some(3), None).await.unwrap();
    assert!(secret.starts_with("hyd_") && secret.len() > 40);
    assert_eq!(
        store.authenticate(&secret).await.unwrap(),
        KeyLookup::Valid(key.clone())
    );
    assert_eq!(
        store.authenticate("hyd_nope").await.unwrap(),
        KeyLookup::Unknown
    );
    store.close().await;
    let contents = db.contents();
    let contains = |needle: &[u8]| contents.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(secret.as_bytes()), "the key is not stored");
    assert!(contains(hash_key(&secret).as_bytes()), "its hash is");

    // Reopened (the schema is there already).
    let store = db.open().await;
    assert!(store.revoke_key(&key.id).await.unwrap());
    assert!(!store.revoke_key("key_none").await.unwrap());
    assert_eq!(
        store.authenticate(&secret).await.unwrap(),
        KeyLookup::Revoked
    );
    let keys = store.keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].quota_tasks, keys[0].quota_tokens, keys[0].revoked),
        (Some(3), None, true)
    );
    assert_eq!(keys[0].created_at, key.created_at);
    store.close().await;
}

async fn quotas_count_tasks_and_tokens_and_releases_give_back(db: &Db) {
    let store = db.open().await;
    let (key, _) = store.create_key("app", Some(2), Some(100)).await.unwrap();
    store.reserve(&key.id, 60).await.unwrap().unwrap();
    assert_eq!(
        store.reserve(&key.id, 50).await.unwrap(),
        Err(QuotaError::Tokens {
            quota: 100,
            used: 60,
            fee: 50
        })
    );
    store.reserve(&key.id, 40).await.unwrap().unwrap();
    assert_eq!(
        store.reserve(&key.id, 0).await.unwrap(),
        Err(QuotaError::Tasks { quota: 2, used: 2 })
    );
    store.release(&key.id, 40).await.unwrap();
    let key = store.key(&key.id).await.unwrap().unwrap();
    assert_eq!((key.used_tasks, key.used_tokens), (1, 60));

    // Concurrent reservations never overspend.
    let (key, _) = store.create_key("many", None, Some(10)).await.unwrap();
    let tries: Vec<_> = (0..25)
        .map(|_| {
            let (store, id) = (store.clone(), key.id.clone());
            tokio::spawn(async move { store.reserve(&id, 1).await.unwrap().is_ok() })
        })
        .collect();
    let mut granted = 0;
    for t in tries {
        granted += usize::from(t.await.unwrap());
    }
    assert_eq!(granted, 10);
    let key = store.key(&key.id).await.unwrap().unwrap();
    assert_eq!((key.used_tasks, key.used_tokens), (10, 10));

    // Fees beyond 64 bits are kept exactly.
    let (unlimited, _) = store.create_key("free", None, None).await.unwrap();
    store
        .reserve(&unlimited.id, u128::MAX / 2)
        .await
        .unwrap()
        .unwrap();
    let got = store.key(&unlimited.id).await.unwrap().unwrap();
    assert_eq!((got.used_tasks, got.used_tokens), (1, u128::MAX / 2));
    store.revoke_key(&unlimited.id).await.unwrap();
    assert_eq!(
        store.reserve(&unlimited.id, 1).await.unwrap(),
        Err(QuotaError::NoKey)
    );
    assert_eq!(
        store.reserve("key_none", 1).await.unwrap(),
        Err(QuotaError::NoKey)
    );
    store.close().await;
}

async fn a_task_moves_forward_only_and_keeps_its_images(db: &Db) {
    let store = db.open().await;
    let (key, _) = store.create_key("app", None, None).await.unwrap();
    let fee = 3 * hydrogen_sdk::types::UNIT + 1;
    let row = TaskRow::submitting(&key.id, "{\"prompt\":\"x\"}".into(), fee, 5);
    store.insert_task(&row).await.unwrap();
    assert_eq!(store.task(&row.id).await.unwrap().unwrap(), row);

    // Chain ids use the full 64 bits.
    let (task_id, created_in) = (u64::MAX - 1, 7);
    assert!(store
        .set_created(&row.id, task_id, created_in)
        .await
        .unwrap());
    assert!(!store.set_created(&row.id, 43, 8).await.unwrap(), "once");
    assert!(store
        .set_state(&row.id, TaskState::Created, None)
        .await
        .is_err());
    assert!(store
        .set_state(&row.id, TaskState::Uploaded, None)
        .await
        .unwrap());
    let nodes = vec!["5Node1".to_owned(), "5Node2".to_owned()];
    store.set_nodes(&row.id, &nodes).await.unwrap();
    let got = store.task(&row.id).await.unwrap().unwrap();
    assert_eq!(
        (got.task_id, got.created_in, got.state, got.fee),
        (Some(task_id), Some(created_in), TaskState::Uploaded, fee)
    );
    assert_eq!(got.nodes, nodes);

    // Every byte value, NUL and invalid UTF-8 included, comes back as stored.
    let images = vec![vec![1u8, 2, 3], vec![0u8; 1000], (0..=255u8).collect()];
    let result = [0xabu8; 24];
    assert!(store
        .complete(&row.id, &result, &nodes, &images)
        .await
        .unwrap());
    assert!(
        !store
            .complete(&row.id, &result, &nodes, &images)
            .await
            .unwrap(),
        "a final task does not change"
    );
    assert!(!store
        .set_state(&row.id, TaskState::Failed, Some("late"))
        .await
        .unwrap());
    let got = store.task(&row.id).await.unwrap().unwrap();
    assert_eq!(got.state, TaskState::Completed);
    assert_eq!(got.error, None);
    assert_eq!(got.phashes(), vec!["abababababababab"; 3]);
    assert_eq!(store.image_count(&row.id).await.unwrap(), 3);
    for (i, image) in images.iter().enumerate() {
        assert_eq!(store.image(&row.id, i).await.unwrap().as_ref(), Some(image));
    }
    assert_eq!(store.image(&row.id, 3).await.unwrap(), None);
    assert_eq!(store.image_count("task_none").await.unwrap(), 0);

    // A failed task keeps its error.
    let other = TaskRow::submitting(&key.id, "{}".into(), 1, 0);
    store.insert_task(&other).await.unwrap();
    assert!(store
        .set_state(&other.id, TaskState::Failed, Some("no nodes"))
        .await
        .unwrap());
    let got = store.task(&other.id).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.error.as_deref(), got.task_id),
        (TaskState::Failed, Some("no nodes"), None)
    );
    assert_eq!(store.task("task_none").await.unwrap(), None);
    assert_eq!(store.tasks_of(&key.id, 10).await.unwrap().len(), 2);
    assert_eq!(store.tasks_of(&key.id, 1).await.unwrap().len(), 1);
    store.close().await;
}

async fn on_restart_submitting_is_listed_for_recovery_and_the_others_resume(db: &Db) {
    // The bridge keeps its instance id across restarts.
    let store = db.open().await.with_owner("bridge_a");
    let (key, _) = store.create_key("app", None, None).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let row = TaskRow::submitting(&key.id, "{}".into(), 1, 0);
        store.insert_task(&row).await.unwrap();
        ids.push(row.id);
    }
    store.set_created(&ids[1], 1, 1).await.unwrap();
    store.set_created(&ids[2], 2, 1).await.unwrap();
    store
        .set_state(&ids[2], TaskState::Uploaded, None)
        .await
        .unwrap();
    store.set_created(&ids[3], 3, 1).await.unwrap();
    store
        .set_state(&ids[3], TaskState::Aborted, Some("timeout"))
        .await
        .unwrap();
    store.close().await;

    // The bridge restarts: the row left submitting is listed for recovery
    // (rows written after the restart are not), the others resume.
    let store = db.open().await.with_owner("bridge_a");
    let restarted = hydrogen_bridge::store::now_ms() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let late = TaskRow::submitting(&key.id, "{}".into(), 1, 0);
    store.insert_task(&late).await.unwrap();
    let interrupted: Vec<String> = store
        .interrupted(restarted)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(interrupted, vec![ids[0].clone()]);
    // Tasks 1..=3 were created in block 1: a search after block 0 skips them.
    let mut recorded = store.task_ids_after(0).await.unwrap();
    recorded.sort();
    assert_eq!(recorded, vec![1, 2, 3]);
    assert!(store.task_ids_after(1).await.unwrap().is_empty());
    assert!(store
        .fail_submitting(&ids[0], "never created")
        .await
        .unwrap());
    // Only once, and never a row that moved on.
    assert!(!store.fail_submitting(&ids[0], "again").await.unwrap());
    assert!(!store.fail_submitting(&ids[1], "created").await.unwrap());
    let failed = store.task(&ids[0]).await.unwrap().unwrap();
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.error.as_deref(), Some("never created"));
    assert_eq!(failed.task_id, None);
    let mut got: Vec<_> = store
        .resumable()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.task_id, r.state))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![
            (Some(1), TaskState::Created),
            (Some(2), TaskState::Uploaded),
        ]
    );
    assert!(store.interrupted(restarted).await.unwrap().is_empty());
    store.close().await;
}

async fn a_live_bridges_tasks_are_its_own_until_its_lease_runs_out(db: &Db) {
    let lease = std::time::Duration::from_millis(600);
    let a = db.open().await.with_owner("bridge_a").with_lease(lease);
    let b = db.open().await.with_owner("bridge_b").with_lease(lease);
    let (key, _) = a.create_key("app", None, None).await.unwrap();
    let sending = TaskRow::submitting(&key.id, "{}".into(), 1, 0);
    a.insert_task(&sending).await.unwrap();
    let carried = TaskRow::submitting(&key.id, "{}".into(), 1, 0);
    a.insert_task(&carried).await.unwrap();
    assert!(a.set_created(&carried.id, 9, 1).await.unwrap());
    let ids = |rows: Vec<TaskRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let later = hydrogen_bridge::store::now_ms() + 10_000;

    // B started after A wrote both, but A is alive: neither is B's to take.
    assert!(ids(b.interrupted(later).await.unwrap()).is_empty());
    assert!(ids(b.resumable().await.unwrap()).is_empty());
    assert!(!b.claim(&carried.id).await.unwrap());
    assert!(a.claim(&carried.id).await.unwrap(), "its own, again");

    // A renews while it lives...
    for _ in 0..3 {
        tokio::time::sleep(lease / 3).await;
        assert_eq!(a.renew_leases().await.unwrap(), 2);
    }
    assert!(!b.claim(&carried.id).await.unwrap());
    // ...and dies: once its lease ran out, B takes both over, once.
    tokio::time::sleep(lease + lease / 3).await;
    assert_eq!(
        ids(b.interrupted(later).await.unwrap()),
        vec![sending.id.clone()]
    );
    assert_eq!(ids(b.resumable().await.unwrap()), vec![carried.id.clone()]);
    assert!(b.claim(&carried.id).await.unwrap());
    assert!(b.claim(&sending.id).await.unwrap());
    assert!(!a.claim(&carried.id).await.unwrap(), "B holds it now");
    assert_eq!(a.renew_leases().await.unwrap(), 0, "A holds nothing");
    // A final task is nobody's to take.
    assert!(b
        .fail_submitting(&sending.id, "never created")
        .await
        .unwrap());
    assert!(!b.claim(&sending.id).await.unwrap());
    a.close().await;
    b.close().await;
}

async fn a_database_of_the_first_release_gains_the_lease_columns(db: &Db) {
    // The tasks table as the first release made it, with a row in it.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url()).await.unwrap();
    for sql in [
        "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, \
         key_sha256 TEXT NOT NULL UNIQUE, quota_tasks BIGINT, quota_tokens TEXT, \
         used_tasks BIGINT NOT NULL DEFAULT 0, used_tokens TEXT NOT NULL DEFAULT '0', \
         created_at BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0)",
        "CREATE TABLE tasks (id TEXT PRIMARY KEY, api_key_id TEXT NOT NULL REFERENCES \
         api_keys(id), args TEXT NOT NULL, fee TEXT NOT NULL, task_id BIGINT, created_in BIGINT, \
         state TEXT NOT NULL, error TEXT, result TEXT, nodes TEXT NOT NULL DEFAULT '', \
         created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
        "INSERT INTO api_keys (id, name, key_sha256, created_at) VALUES ('key_old', 'old', 'x', 1)",
        "INSERT INTO tasks (id, api_key_id, args, fee, task_id, created_in, state, created_at, \
         updated_at) VALUES ('task_old', 'key_old', '{}', '1', 4, 2, 'uploaded', 1, 1)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = db.open().await.with_owner("bridge_new");
    let old: Vec<String> = store
        .resumable()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        old,
        vec!["task_old".to_string()],
        "unowned: anyone's to resume"
    );
    assert!(store.claim("task_old").await.unwrap());
    let row = TaskRow::submitting("key_old", "{}".into(), 1, 0);
    store.insert_task(&row).await.unwrap();
    assert_eq!(store.renew_leases().await.unwrap(), 2);
    store.close().await;
    // Opening it again changes nothing.
    db.open().await.close().await;
}

async fn bridges_opening_together_create_the_schema_once(db: &Db) {
    // Replicas started at once on one database: the first creates the
    // tables, the others find them; none fails.
    for _ in 0..3 {
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let url = db.url();
                tokio::spawn(async move { Store::open(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for open in opens {
            stores.push(open.await.unwrap().unwrap());
        }
        for store in stores {
            store.check().await.unwrap();
            store.close().await;
        }
    }
}
