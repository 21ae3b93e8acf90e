//! The node's database (redb, one file, every write an fsynced transaction):
//! the task records, the entropy secrets, the last chain block handled and
//! the operator's counters. Whatever must survive `kill -9` goes through here
//! before the chain hears of it.

use crate::task::TaskRecord;
use hydrogen_sdk::types::{Hash, TaskId};
use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// What the chain decided for this node, by task (from finalized events).
const VERDICTS: TableDefinition<u64, &[u8]> = TableDefinition::new("verdicts");

const CONTRACT: &str = "contract";
const LAST_BLOCK: &str = "last_block";
const ENTROPY: &str = "entropy";
const COUNTERS: &str = "counters";
const GENERATING: &str = "generating";

#[derive(Debug, thiserror::Error)]
#[error("task database: {0}")]
pub struct StoreError(String);

impl StoreError {
    fn from(e: impl std::fmt::Display) -> Self {
        StoreError(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The entropy ticket secrets. `pending` is the next secret, stored before
/// the transaction that publishes its ticket is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entropy {
    pub current: Option<Hash>,
    pub pending: Option<Hash>,
}

/// What the operator sees in `status` and the metrics. Chain outcomes are
/// counted from finalized events, once per block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Tasks this node computed a result for (images or an invalid-arguments vote).
    pub tasks_run: u64,
    /// Tasks that ended in a local fault (missing model, engine failure).
    pub local_faults: u64,
    pub paid: u64,
    pub slashed: u64,
    pub missed: u64,
    pub kicked_out: u64,
    /// Tokens earned, in the token's smallest unit.
    pub earnings: u128,
    pub entropy_contributions: u64,
}

/// What the chain decided for this node on one task, from its finalized
/// events. (A struct, not a tagged enum: serde cannot read a `u128` back
/// through an internally tagged enum.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub verdict: VerdictKind,
    /// Paid, or slashed from the stake, in the token's smallest unit.
    #[serde(default)]
    pub amount: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Paid,
    Slashed,
    /// Counted as silent on the task.
    Missed,
}

impl Verdict {
    pub fn paid(amount: u128) -> Verdict {
        Verdict {
            verdict: VerdictKind::Paid,
            amount,
        }
    }

    pub fn slashed(amount: u128) -> Verdict {
        Verdict {
            verdict: VerdictKind::Slashed,
            amount,
        }
    }

    pub fn missed() -> Verdict {
        Verdict {
            verdict: VerdictKind::Missed,
            amount: 0,
        }
    }
}

/// One task as the web UI lists it: its record without the arguments or
/// the secret nonce, and the chain's verdict for this node, if any yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentTask {
    pub id: TaskId,
    /// The record's state (`settled`, `aborted`, `committed`...).
    pub state: String,
    /// Why it was aborted, for `aborted`.
    pub detail: Option<String>,
    /// Commit deadline (ms since the epoch).
    pub deadline: u64,
    /// What this node computed: `images` or `invalid_args`, once generated.
    pub result: Option<String>,
    /// Images kept for upload.
    pub images: u32,
    pub verdict: Option<Verdict>,
}

impl RecentTask {
    fn of(record: TaskRecord, verdict: Option<Verdict>) -> RecentTask {
        use crate::task::{StoredOutcome, TaskState};
        RecentTask {
            id: record.id,
            state: record.state.name().to_owned(),
            detail: match record.state {
                TaskState::Aborted(why) => Some(why),
                _ => None,
            },
            deadline: record.deadline,
            result: record.outcome.map(|o| {
                match o {
                    StoredOutcome::Images(_) => "images",
                    StoredOutcome::InvalidArgs => "invalid_args",
                }
                .to_owned()
            }),
            images: record.images,
            verdict,
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) `dir/node.redb`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
        let path = dir.join("node.redb");
        let db = Database::create(&path).map_err(|e| {
            StoreError(format!(
                "{}: {e} (is another hydrogen-node running on this data_dir?)",
                path.display()
            ))
        })?;
        let txn = db.begin_write().map_err(StoreError::from)?;
        txn.open_table(TASKS).map_err(StoreError::from)?;
        txn.open_table(META).map_err(StoreError::from)?;
        txn.open_table(VERDICTS).map_err(StoreError::from)?;
        txn.commit().map_err(StoreError::from)?;
        Ok(Store { db: Arc::new(db) })
    }

    /// Binds the database to `contract`. A database made for another
    /// contract is refused: its tasks and secrets mean nothing there.
    pub fn bind_contract(&self, contract: &str) -> Result<()> {
        match self.meta::<String>(CONTRACT)? {
            Some(bound) if bound != contract => Err(StoreError(format!(
                "this data_dir belongs to contract {bound}, not {contract}; use another data_dir"
            ))),
            Some(_) => Ok(()),
            None => self.put_meta(CONTRACT, &contract.to_owned()),
        }
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        let table = txn.open_table(META).map_err(StoreError::from)?;
        let value = table.get(key).map_err(StoreError::from)?;
        value
            .map(|v| serde_json::from_slice(v.value()).map_err(StoreError::from))
            .transpose()
    }

    fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.write(|w| w.put_meta(key, value))
    }

    /// Runs `f` in one write transaction, committed (and fsynced) when it returns Ok.
    pub fn write<T>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let value = {
            let mut writer = Writer { txn: &txn };
            f(&mut writer)?
        };
        txn.commit().map_err(StoreError::from)?;
        Ok(value)
    }

    pub fn task(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        let table = txn.open_table(TASKS).map_err(StoreError::from)?;
        let value = table.get(id).map_err(StoreError::from)?;
        value
            .map(|v| serde_json::from_slice(v.value()).map_err(StoreError::from))
            .transpose()
    }

    /// Every task record, oldest first.
    pub fn tasks(&self) -> Result<Vec<TaskRecord>> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        let table = txn.open_table(TASKS).map_err(StoreError::from)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(StoreError::from)? {
            let (_, v) = entry.map_err(StoreError::from)?;
            out.push(serde_json::from_slice(v.value()).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    /// The `limit` newest tasks (by id), newest first, with their verdicts.
    pub fn recent_tasks(&self, limit: usize) -> Result<Vec<RecentTask>> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        let tasks = txn.open_table(TASKS).map_err(StoreError::from)?;
        let verdicts = txn.open_table(VERDICTS).map_err(StoreError::from)?;
        let mut out = Vec::new();
        for entry in tasks.iter().map_err(StoreError::from)?.rev().take(limit) {
            let (id, v) = entry.map_err(StoreError::from)?;
            let record: TaskRecord = serde_json::from_slice(v.value()).map_err(StoreError::from)?;
            let verdict = verdicts
                .get(id.value())
                .map_err(StoreError::from)?
                .map(|v| serde_json::from_slice(v.value()).map_err(StoreError::from))
                .transpose()?;
            out.push(RecentTask::of(record, verdict));
        }
        Ok(out)
    }

    /// The unfinished tasks, oldest first.
    pub fn open_tasks(&self) -> Result<Vec<TaskRecord>> {
        Ok(self
            .tasks()?
            .into_iter()
            .filter(|t| !t.state.is_terminal())
            .collect())
    }

    pub fn put_task(&self, record: &TaskRecord) -> Result<()> {
        self.write(|w| w.put_task(record))
    }

    pub fn last_block(&self) -> Result<Option<u64>> {
        self.meta(LAST_BLOCK)
    }

    pub fn entropy(&self) -> Result<Entropy> {
        Ok(self.meta(ENTROPY)?.unwrap_or_default())
    }

    pub fn put_entropy(&self, entropy: &Entropy) -> Result<()> {
        self.put_meta(ENTROPY, entropy)
    }

    /// The task whose generation is under way: recorded before the engine
    /// starts and cleared when it returns. Found set when that task comes up
    /// again, it means the process died while generating it (the kernel's
    /// OOM killer, an engine abort), and trying again would die again.
    pub fn generating(&self) -> Result<Option<TaskId>> {
        Ok(self.meta::<Option<TaskId>>(GENERATING)?.flatten())
    }

    pub fn set_generating(&self, task: Option<TaskId>) -> Result<()> {
        self.put_meta(GENERATING, &task)
    }

    pub fn counters(&self) -> Result<Counters> {
        Ok(self.meta(COUNTERS)?.unwrap_or_default())
    }

    /// Applies `f` to the counters in one transaction.
    pub fn count(&self, f: impl FnOnce(&mut Counters)) -> Result<()> {
        self.write(|w| w.count(f))
    }
}

/// Writes inside one transaction of [`Store::write`].
pub struct Writer<'a> {
    txn: &'a redb::WriteTransaction,
}

impl Writer<'_> {
    pub fn put_task(&mut self, record: &TaskRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(StoreError::from)?;
        let mut table = self.txn.open_table(TASKS).map_err(StoreError::from)?;
        table
            .insert(record.id, bytes.as_slice())
            .map_err(StoreError::from)?;
        Ok(())
    }

    pub fn task(&mut self, id: TaskId) -> Result<Option<TaskRecord>> {
        let table = self.txn.open_table(TASKS).map_err(StoreError::from)?;
        let value = table.get(id).map_err(StoreError::from)?;
        value
            .map(|v| serde_json::from_slice(v.value()).map_err(StoreError::from))
            .transpose()
    }

    fn put_meta<T: Serialize>(&mut self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(StoreError::from)?;
        let mut table = self.txn.open_table(META).map_err(StoreError::from)?;
        table
            .insert(key, bytes.as_slice())
            .map_err(StoreError::from)?;
        Ok(())
    }

    fn get_meta<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        let table = self.txn.open_table(META).map_err(StoreError::from)?;
        let value = table.get(key).map_err(StoreError::from)?;
        value
            .map(|v| serde_json::from_slice(v.value()).map_err(StoreError::from))
            .transpose()
    }

    /// Records the chain's verdict for this node on `task` (the latest wins).
    pub fn put_verdict(&mut self, task: TaskId, verdict: &Verdict) -> Result<()> {
        let bytes = serde_json::to_vec(verdict).map_err(StoreError::from)?;
        let mut table = self.txn.open_table(VERDICTS).map_err(StoreError::from)?;
        table
            .insert(task, bytes.as_slice())
            .map_err(StoreError::from)?;
        Ok(())
    }

    pub fn set_last_block(&mut self, block: u64) -> Result<()> {
        self.put_meta(LAST_BLOCK, &block)
    }

    pub fn count(&mut self, f: impl FnOnce(&mut Counters)) -> Result<()> {
        let mut counters: Counters = self.get_meta(COUNTERS)?.unwrap_or_default();
        f(&mut counters);
        self.put_meta(COUNTERS, &counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{TaskRecord, TaskState};

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.bind_contract("5Contract").unwrap();
            let mut record = TaskRecord::selected(7, 1_000);
            store.put_task(&record).unwrap();
            record.state = TaskState::Settled;
            store
                .write(|w| {
                    w.put_task(&TaskRecord::selected(8, 2_000))?;
                    w.set_last_block(42)?;
                    w.count(|c| c.paid += 1)
                })
                .unwrap();
            store
                .put_entropy(&Entropy {
                    current: Some([1; 32]),
                    pending: None,
                })
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(store.bind_contract("5Other").is_err());
        store.bind_contract("5Contract").unwrap();
        assert_eq!(store.task(7).unwrap().unwrap().state, TaskState::Selected);
        assert_eq!(store.open_tasks().unwrap().len(), 2);
        assert_eq!(store.last_block().unwrap(), Some(42));
        assert_eq!(store.counters().unwrap().paid, 1);
        assert_eq!(store.entropy().unwrap().current, Some([1; 32]));
    }

    #[test]
    fn recent_tasks_are_newest_first_with_verdicts_and_no_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for id in 1..=5 {
            let mut record = TaskRecord::selected(id, 1_000 * id);
            record.nonce = Some(hex::encode([7u8; 32]));
            record.args = Some("{\"prompt\":\"secret-ish\"}".into());
            if id == 2 {
                record.state = TaskState::Aborted("model missing".into());
            }
            store.put_task(&record).unwrap();
        }
        store
            .write(|w| {
                w.put_verdict(4, &Verdict::paid(5))?;
                w.put_verdict(3, &Verdict::missed())
            })
            .unwrap();
        let recent = store.recent_tasks(4).unwrap();
        let ids: Vec<_> = recent.iter().map(|t| t.id).collect();
        assert_eq!(ids, [5, 4, 3, 2]);
        assert_eq!(recent[1].verdict, Some(Verdict::paid(5)));
        assert_eq!(recent[2].verdict, Some(Verdict::missed()));
        assert_eq!(recent[3].state, "aborted");
        assert_eq!(recent[3].detail.as_deref(), Some("model missing"));
        let json = serde_json::to_string(&recent).unwrap();
        assert!(
            !json.contains("0707") && !json.contains("secret-ish"),
            "{json}"
        );
        assert!(json.contains(r#""verdict":"paid","amount":5"#), "{json}");
    }
}
