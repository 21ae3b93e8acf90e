//! The bridge's database: API keys (hashed), tasks and their images, through
//! sqlx's `Any` driver so that one code path serves SQLite (the default,
//! `sqlite://<data dir>/bridge.db?mode=rwc`) and Postgres (`postgres://...`).
//!
//! Queries are built at run time (no compile-time checked macros, so no
//! database is needed to build). Numbers the `Any` driver cannot carry
//! (`u128` balances) are stored as decimal text; flags as 0/1 integers; ids
//! are random text, so no auto-increment syntax is needed. The schema is
//! created by [`Store::open`] (`CREATE TABLE IF NOT EXISTS`).
//!
//! # Paying for nothing twice
//!
//! A task row is written in state `submitting` *before* `create_task` is
//! sent, with the latest finalized block then, and moves to `created` with
//! the chain's task id once it is in a block. A row left `submitting` by a
//! bridge that stopped ([`Store::interrupted`]) is never submitted again:
//! the bridge looks for its `TaskCreated` event after that block
//! (`hydrogen_sdk::app::Client::find_created`) and follows the task if it
//! was created, or fails the row and gives the quota back if it was not.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::{SystemTime, UNIX_EPOCH};

/// The message a task interrupted while submitting ends with when it has
/// no block to search from (a row written before rows recorded one).
pub const INTERRUPTED: &str = "bridge stopped while submitting; check the account's tasks";

/// Where a task is, as the bridge records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// The row is written; `create_task` is being sent.
    Submitting,
    /// The task is on chain and its fee escrowed; arguments not yet on the relay.
    Created,
    /// The arguments are on the relay; the network runs the task.
    Uploaded,
    /// The images are downloaded, verified and stored.
    Completed,
    /// The network ended the task without images (refunded as the contract rules).
    Aborted,
    /// The bridge could not carry the task through; `error` says why.
    Failed,
    /// Cancelled by its creator while queued.
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::Submitting,
        TaskState::Created,
        TaskState::Uploaded,
        TaskState::Completed,
        TaskState::Aborted,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Submitting => "submitting",
            TaskState::Created => "created",
            TaskState::Uploaded => "uploaded",
            TaskState::Completed => "completed",
            TaskState::Aborted => "aborted",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// No more changes: the task's outcome is recorded.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Aborted | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// An API key's record; the key itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// Most tasks the key may create; `None` for no limit.
    pub quota_tasks: Option<i64>,
    /// Most fees (in the token's smallest unit) the key may spend; `None` for no limit.
    pub quota_tokens: Option<u128>,
    pub used_tasks: i64,
    pub used_tokens: u128,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub revoked: bool,
}

/// What an `Authorization` header's key turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    Valid(ApiKey),
    Revoked,
    Unknown,
}

/// Which quota a task would exceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("this API key may create {quota} tasks and has created {used}")]
    Tasks { quota: i64, used: i64 },
    #[error(
        "this API key may spend {quota} and has spent {used}; the task's fee {fee} would exceed it"
    )]
    Tokens { quota: u128, used: u128, fee: u128 },
    #[error("unknown or revoked API key")]
    NoKey,
}

/// One task as the bridge records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The bridge's id (random; also the capability in image URLs).
    pub id: String,
    pub api_key_id: String,
    /// The task's canonical JSON, as uploaded to the relay.
    pub args: String,
    pub fee: u128,
    /// The chain's task id, once `create_task` is in a block.
    pub task_id: Option<u64>,
    /// The block that created it (where following its events starts); while
    /// `submitting`, the latest finalized block before `create_task` was
    /// sent (the creating block comes after it).
    pub created_in: Option<u64>,
    pub state: TaskState,
    pub error: Option<String>,
    /// The accepted result, hex: 8 pHash bytes per image.
    pub result: Option<String>,
    /// The selected nodes (SS58).
    pub nodes: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TaskRow {
    /// The row of a task about to be submitted.
    /// The row of a task about to be submitted, `after` the latest finalized block.
    pub fn submitting(api_key_id: &str, args: String, fee: u128, after: u64) -> TaskRow {
        let now = now_ms();
        TaskRow {
            id: format!("task_{}", random_hex(16)),
            api_key_id: api_key_id.into(),
            args,
            fee,
            task_id: None,
            created_in: Some(after),
            state: TaskState::Submitting,
            error: None,
            result: None,
            nodes: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Per image, its pHash as 16 hex digits.
    pub fn phashes(&self) -> Vec<String> {
        let Some(result) = &self.result else {
            return Vec::new();
        };
        result
            .as_bytes()
            .chunks(2 * hydrogen_sdk::types::PHASH_BYTES)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }
}

/// The database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// The bridge instance whose leases this handle takes and renews.
    owner: String,
    /// How long the leases it takes last ([`LEASE`] unless changed).
    lease: std::time::Duration,
}

/// How long a bridge's claim on a task lasts without renewal, by default: a
/// bridge renews its claims every third of it ([`Store::renew_leases`]);
/// another bridge takes over a task whose lease ran out (its bridge died).
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

const FINAL_STATES: &str = "('completed', 'aborted', 'failed', 'cancelled')";

/// The Postgres advisory lock held while the schema is created (any fixed
/// number; this one spells "hydrogen" in ASCII).
const MIGRATION_LOCK: i64 = 0x6879_6472_6f67_656e;

impl Store {
    /// Connects to `url` (`sqlite://...` or `postgres://...`) and creates the
    /// tables that are missing.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !postgres && !url.starts_with("sqlite:") {
            anyhow::bail!("unsupported database URL {url:?}: use sqlite://... or postgres://...");
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 8 } else { 4 })
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", redact(url)))?;
        let store = Store {
            pool,
            lease: LEASE,
            owner: new_instance_id(),
        };
        store.migrate(postgres).await?;
        Ok(store)
    }

    async fn migrate(&self, postgres: bool) -> anyhow::Result<()> {
        let blob = if postgres { "BYTEA" } else { "BLOB" };
        let statements = [
            "CREATE TABLE IF NOT EXISTS api_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                key_sha256 TEXT NOT NULL UNIQUE,
                quota_tasks BIGINT,
                quota_tokens TEXT,
                used_tasks BIGINT NOT NULL DEFAULT 0,
                used_tokens TEXT NOT NULL DEFAULT '0',
                created_at BIGINT NOT NULL,
                revoked BIGINT NOT NULL DEFAULT 0
            )"
            .to_owned(),
            "CREATE TABLE IF NOT EXISTS tasks (
                id TEXT PRIMARY KEY,
                api_key_id TEXT NOT NULL REFERENCES api_keys(id),
                args TEXT NOT NULL,
                fee TEXT NOT NULL,
                task_id BIGINT,
                created_in BIGINT,
                state TEXT NOT NULL,
                error TEXT,
                result TEXT,
                nodes TEXT NOT NULL DEFAULT '',
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                owner TEXT,
                lease_until BIGINT
            )"
            .to_owned(),
            "CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state)".to_owned(),
            "CREATE INDEX IF NOT EXISTS tasks_key ON tasks (api_key_id, created_at)".to_owned(),
            format!(
                "CREATE TABLE IF NOT EXISTS images (
                    task TEXT NOT NULL REFERENCES tasks(id),
                    idx BIGINT NOT NULL,
                    png {blob} NOT NULL,
                    PRIMARY KEY (task, idx)
                )"
            ),
        ];
        // Columns added after the first release, for databases made before.
        let added = [("owner", "TEXT"), ("lease_until", "BIGINT")];
        if !postgres {
            for sql in statements {
                sqlx::query(&sql).execute(&self.pool).await?;
            }
            for (column, kind) in added {
                let probe = format!("SELECT {column} FROM tasks LIMIT 0");
                if sqlx::query(&probe).execute(&self.pool).await.is_err() {
                    let sql = format!("ALTER TABLE tasks ADD COLUMN {column} {kind}");
                    sqlx::query(&sql).execute(&self.pool).await?;
                }
            }
            return Ok(());
        }
        // Postgres: bridges started together on one database (replicas)
        // would race in `CREATE TABLE IF NOT EXISTS` (a duplicate key in
        // `pg_type`), so the schema is created in one transaction under an
        // advisory lock, one bridge at a time.
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "SELECT 1 AS locked FROM pg_advisory_xact_lock({MIGRATION_LOCK})"
        ))
        .execute(&mut *tx)
        .await?;
        for sql in statements {
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        for (column, kind) in added {
            let sql = format!("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS {column} {kind}");
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The same database, taking and renewing leases as `owner` (a bridge
    /// instance id that outlives restarts, so a restarted bridge takes its
    /// own tasks back at once; by default a random one per open).
    pub fn with_owner(mut self, owner: &str) -> Store {
        self.owner = owner.to_owned();
        self
    }

    /// The same database, taking leases of `lease` (and renewing them a
    /// third as often): shorter notices a dead bridge sooner, at the cost of
    /// more writes.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Store {
        self.lease = lease;
        self
    }

    /// How long the leases this handle takes last.
    pub fn lease(&self) -> std::time::Duration {
        self.lease
    }

    /// The instance id this handle leases tasks as.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// When a lease taken now runs out.
    fn lease_until(&self) -> i64 {
        now_ms() + self.lease.as_millis() as i64
    }

    /// Whether the database answers.
    pub async fn check(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- API keys ----

    /// Creates a key; returns its record and the key itself, which is not
    /// stored and cannot be shown again.
    pub async fn create_key(
        &self,
        name: &str,
        quota_tasks: Option<i64>,
        quota_tokens: Option<u128>,
    ) -> anyhow::Result<(ApiKey, String)> {
        let secret = format!("hyd_{}", random_hex(24));
        let key = ApiKey {
            id: format!("key_{}", random_hex(6)),
            name: name.into(),
            quota_tasks,
            quota_tokens,
            used_tasks: 0,
            used_tokens: 0,
            created_at: now_ms(),
            revoked: false,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_sha256, quota_tasks, quota_tokens, used_tasks, \
             used_tokens, created_at, revoked) VALUES ($1, $2, $3, $4, $5, 0, '0', $6, 0)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(hash_key(&secret))
        .bind(key.quota_tasks)
        .bind(key.quota_tokens.map(|q| q.to_string()))
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok((key, secret))
    }

    pub async fn keys(&self) -> anyhow::Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!("{KEY_COLUMNS} ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_of).collect()
    }

    pub async fn key(&self, id: &str) -> anyhow::Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("{KEY_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_of).transpose()
    }

    /// Revokes a key; `false` when there is no such key.
    pub async fn revoke_key(&self, id: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE api_keys SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The key `secret` names, by its hash.
    pub async fn authenticate(&self, secret: &str) -> anyhow::Result<KeyLookup> {
        let row = sqlx::query(&format!("{KEY_COLUMNS} WHERE key_sha256 = $1"))
            .bind(hash_key(secret))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row.as_ref().map(key_of).transpose()? {
            None => KeyLookup::Unknown,
            Some(key) if key.revoked => KeyLookup::Revoked,
            Some(key) => KeyLookup::Valid(key),
        })
    }

    /// Counts one task and `fee` against the key's quotas, or says which
    /// quota it would exceed. A compare-and-set on the counters, retried, so
    /// concurrent tasks of one key never overspend, on SQLite and Postgres.
    pub async fn reserve(&self, key_id: &str, fee: u128) -> anyhow::Result<Result<(), QuotaError>> {
        loop {
            let Some(key) = self.key(key_id).await? else {
                return Ok(Err(QuotaError::NoKey));
            };
            if key.revoked {
                return Ok(Err(QuotaError::NoKey));
            }
            if let Some(quota) = key.quota_tasks {
                if key.used_tasks >= quota {
                    return Ok(Err(QuotaError::Tasks {
                        quota,
                        used: key.used_tasks,
                    }));
                }
            }
            let spent = key.used_tokens.saturating_add(fee);
            if let Some(quota) = key.quota_tokens {
                if spent > quota {
                    return Ok(Err(QuotaError::Tokens {
                        quota,
                        used: key.used_tokens,
                        fee,
                    }));
                }
            }
            if self.swap_usage(&key, key.used_tasks + 1, spent).await? {
                return Ok(Ok(()));
            }
        }
    }

    /// Gives back a reservation whose task was never paid for (the chain
    /// refused `create_task`).
    pub async fn release(&self, key_id: &str, fee: u128) -> anyhow::Result<()> {
        loop {
            let Some(key) = self.key(key_id).await? else {
                return Ok(());
            };
            let tasks = (key.used_tasks - 1).max(0);
            if self
                .swap_usage(&key, tasks, key.used_tokens.saturating_sub(fee))
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Gives `refunded` tokens back to the key's token quota (the task still
    /// counts): a cancelled or aborted task's refund was not spent.
    pub async fn credit(&self, key_id: &str, refunded: u128) -> anyhow::Result<()> {
        loop {
            let Some(key) = self.key(key_id).await? else {
                return Ok(());
            };
            let tokens = key.used_tokens.saturating_sub(refunded);
            if self.swap_usage(&key, key.used_tasks, tokens).await? {
                return Ok(());
            }
        }
    }

    async fn swap_usage(&self, key: &ApiKey, tasks: i64, tokens: u128) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET used_tasks = $1, used_tokens = $2 \
             WHERE id = $3 AND used_tasks = $4 AND used_tokens = $5",
        )
        .bind(tasks)
        .bind(tokens.to_string())
        .bind(&key.id)
        .bind(key.used_tasks)
        .bind(key.used_tokens.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- Tasks ----

    /// Records a task about to be submitted (state `submitting`).
    pub async fn insert_task(&self, row: &TaskRow) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO tasks (id, api_key_id, args, fee, task_id, created_in, state, error, \
             result, nodes, created_at, updated_at, owner, lease_until) \
             VALUES ($1, $2, $3, $4, NULL, $5, $6, NULL, NULL, '', $7, $8, $9, $10)",
        )
        .bind(&row.id)
        .bind(&row.api_key_id)
        .bind(&row.args)
        .bind(row.fee.to_string())
        .bind(row.created_in.map(|b| b as i64))
        .bind(row.state.as_str())
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(&self.owner)
        .bind(self.lease_until())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `submitting` → `created`: the chain's task id and creation block.
    pub async fn set_created(
        &self,
        id: &str,
        task_id: u64,
        created_in: u64,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET state = 'created', task_id = $1, created_in = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'submitting'",
        )
        .bind(task_id as i64)
        .bind(created_in as i64)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a task that is not final yet to `state` (with `error`, if any);
    /// `false` when the task is already final (or absent). `created` and
    /// `submitting` are set only by [`insert_task`](Self::insert_task) and
    /// [`set_created`](Self::set_created).
    pub async fn set_state(
        &self,
        id: &str,
        state: TaskState,
        error: Option<&str>,
    ) -> anyhow::Result<bool> {
        anyhow::ensure!(
            !matches!(state, TaskState::Submitting | TaskState::Created),
            "a task cannot move back to {}",
            state.as_str()
        );
        self.move_state(id, state, error, &format!("state NOT IN {FINAL_STATES}"))
            .await
    }

    /// Records the selected nodes (SS58).
    pub async fn set_nodes(&self, id: &str, nodes: &[String]) -> anyhow::Result<()> {
        sqlx::query("UPDATE tasks SET nodes = $1, updated_at = $2 WHERE id = $3")
            .bind(nodes.join(","))
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a completed task's images and result, then marks it
    /// `completed`, in one transaction.
    pub async fn complete(
        &self,
        id: &str,
        result: &[u8],
        nodes: &[String],
        images: &[Vec<u8>],
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE tasks SET state = 'completed', result = $1, nodes = $2, error = NULL, \
             updated_at = $3 WHERE id = $4 AND state NOT IN {FINAL_STATES}"
        ))
        .bind(hex::encode(result))
        .bind(nodes.join(","))
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for (i, png) in images.iter().enumerate() {
            sqlx::query("INSERT INTO images (task, idx, png) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(i as i64)
                .bind(png.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn task(&self, id: &str) -> anyhow::Result<Option<TaskRow>> {
        let row = sqlx::query(&format!("{TASK_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(task_of).transpose()
    }

    /// A key's tasks, newest first.
    pub async fn tasks_of(&self, key_id: &str, limit: i64) -> anyhow::Result<Vec<TaskRow>> {
        let sql =
            format!("{TASK_COLUMNS} WHERE api_key_id = $1 ORDER BY created_at DESC, id LIMIT $2");
        self.fetch_tasks(sqlx::query(&sql).bind(key_id).bind(limit))
            .await
    }

    /// The newest `limit` tasks of every key.
    pub async fn recent_tasks(&self, limit: i64) -> anyhow::Result<Vec<TaskRow>> {
        let sql = format!("{TASK_COLUMNS} ORDER BY created_at DESC, id LIMIT $1");
        self.fetch_tasks(sqlx::query(&sql).bind(limit)).await
    }

    /// The rows `query` (a `SELECT` of [`TASK_COLUMNS`]) finds.
    async fn fetch_tasks<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> anyhow::Result<Vec<TaskRow>> {
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(task_of).collect()
    }

    /// Tasks in `created` or `uploaded` this bridge may carry on with, oldest
    /// first: its own, unowned ones, and those whose bridge's lease ran out.
    /// Take one with [`Store::claim`] before driving it.
    pub async fn resumable(&self) -> anyhow::Result<Vec<TaskRow>> {
        let sql = format!(
            "{TASK_COLUMNS} WHERE state IN ('created', 'uploaded') \
             AND (owner IS NULL OR owner = $1 OR lease_until < $2) ORDER BY created_at, id"
        );
        self.fetch_tasks(sqlx::query(&sql).bind(&self.owner).bind(now_ms()))
            .await
    }

    /// Tasks still `submitting` that no live bridge is sending, oldest
    /// first: this bridge's own written before `started_ms` (its previous
    /// run's), unowned ones written before then, and any whose bridge's
    /// lease ran out. Take one with [`Store::claim`] before settling it.
    pub async fn interrupted(&self, started_ms: i64) -> anyhow::Result<Vec<TaskRow>> {
        let sql = format!(
            "{TASK_COLUMNS} WHERE state = 'submitting' \
             AND (((owner IS NULL OR owner = $1) AND updated_at < $2) OR lease_until < $3) \
             ORDER BY created_at, id"
        );
        let query = sqlx::query(&sql)
            .bind(&self.owner)
            .bind(started_ms)
            .bind(now_ms());
        self.fetch_tasks(query).await
    }

    /// Takes task `id` (not final) for this bridge: `true` when it is now
    /// this bridge's (it was unowned, already its own, or its bridge's lease
    /// ran out); `false` when a live bridge holds it or it is final.
    pub async fn claim(&self, id: &str) -> anyhow::Result<bool> {
        let now = now_ms();
        let done = sqlx::query(&format!(
            "UPDATE tasks SET owner = $1, lease_until = $2 WHERE id = $3 \
             AND state NOT IN {FINAL_STATES} \
             AND (owner IS NULL OR owner = $1 OR lease_until < $4)"
        ))
        .bind(&self.owner)
        .bind(self.lease_until())
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends the leases of every unfinished task this bridge holds; call
    /// every third of [`Store::lease`].
    pub async fn renew_leases(&self) -> anyhow::Result<u64> {
        let done = sqlx::query(&format!(
            "UPDATE tasks SET lease_until = $1 WHERE owner = $2 AND state NOT IN {FINAL_STATES}"
        ))
        .bind(self.lease_until())
        .bind(&self.owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The chain task ids recorded for tasks created after block `after`:
    /// those an interrupted task's search must not claim.
    pub async fn task_ids_after(&self, after: u64) -> anyhow::Result<Vec<u64>> {
        let rows =
            sqlx::query("SELECT task_id FROM tasks WHERE task_id IS NOT NULL AND created_in > $1")
                .bind(after as i64)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("task_id")? as u64))
            .collect()
    }

    /// `submitting` → `failed` with `error`; `false` when the row had
    /// moved on (another bridge recovered it first).
    pub async fn fail_submitting(&self, id: &str, error: &str) -> anyhow::Result<bool> {
        self.move_state(id, TaskState::Failed, Some(error), "state = 'submitting'")
            .await
    }

    /// Sets task `id`'s state (and error) where `only_if` (SQL on the row)
    /// holds: `true` when it did.
    async fn move_state(
        &self,
        id: &str,
        state: TaskState,
        error: Option<&str>,
        only_if: &str,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE tasks SET state = $1, error = $2, updated_at = $3 WHERE id = $4 AND {only_if}"
        ))
        .bind(state.as_str())
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Image `index` of a task (PNG bytes).
    pub async fn image(&self, id: &str, index: usize) -> anyhow::Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT png FROM images WHERE task = $1 AND idx = $2")
            .bind(id)
            .bind(index as i64)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get::<Vec<u8>, _>("png")?),
            None => None,
        })
    }

    /// How many images a task has stored.
    pub async fn image_count(&self, id: &str) -> anyhow::Result<usize> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM images WHERE task = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? as usize)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

const KEY_COLUMNS: &str = "SELECT id, name, quota_tasks, quota_tokens, used_tasks, used_tokens, \
                           created_at, revoked FROM api_keys";
const TASK_COLUMNS: &str = "SELECT id, api_key_id, args, fee, task_id, created_in, state, error, \
                            result, nodes, created_at, updated_at FROM tasks";

fn key_of(row: &AnyRow) -> anyhow::Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        quota_tasks: row.try_get("quota_tasks")?,
        quota_tokens: row
            .try_get::<Option<String>, _>("quota_tokens")?
            .map(|q| q.parse())
            .transpose()?,
        used_tasks: row.try_get("used_tasks")?,
        used_tokens: row.try_get::<String, _>("used_tokens")?.parse()?,
        created_at: row.try_get("created_at")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
    })
}

fn task_of(row: &AnyRow) -> anyhow::Result<TaskRow> {
    let state: String = row.try_get("state")?;
    let nodes: String = row.try_get("nodes")?;
    Ok(TaskRow {
        id: row.try_get("id")?,
        api_key_id: row.try_get("api_key_id")?,
        args: row.try_get("args")?,
        fee: row.try_get::<String, _>("fee")?.parse()?,
        task_id: row.try_get::<Option<i64>, _>("task_id")?.map(|v| v as u64),
        created_in: row
            .try_get::<Option<i64>, _>("created_in")?
            .map(|v| v as u64),
        state: TaskState::parse(&state)
            .ok_or_else(|| anyhow::anyhow!("unknown task state {state:?} in the database"))?,
        error: row.try_get("error")?,
        result: row.try_get("result")?,
        nodes: nodes
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// SHA-256 of an API key, hex: what the database holds instead of the key.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("randomness from the operating system");
    hex::encode(buf)
}

/// A fresh bridge instance id (`bridge_` and 16 hex digits).
pub fn new_instance_id() -> String {
    format!("bridge_{}", random_hex(8))
}

/// Now, in Unix milliseconds (the unit of the rows' times).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        // Only a password is hidden: `postgres://user@host/db` has none.
        (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The store's scenarios run on SQLite and on a real PostgreSQL server:
    // bridge/tests/store.rs.

    #[test]
    fn database_passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://bridge:secret@db:5432/hydrogen"),
            "postgres://bridge:***@db:5432/hydrogen"
        );
        assert_eq!(redact("sqlite:///tmp/b.db"), "sqlite:///tmp/b.db");
        assert_eq!(
            redact("postgres://bridge@127.0.0.1:5432/hydrogen"),
            "postgres://bridge@127.0.0.1:5432/hydrogen"
        );
    }
}
