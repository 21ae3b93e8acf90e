//! Permissions from chain state.
//!
//! Every signed request names a task; the relay reads that task with the
//! contract's `task(id)` view at the **finalized** block (tasks are never
//! removed, and their creator, arguments hash, selected nodes, result and
//! uploader never change once set), keeps it for `task_cache_ms`, and
//! applies the endpoint's rule to it. Per-request queries, rather than an
//! index of events, keep the relay stateless towards the chain: nothing to
//! rebuild after a restart or a chain reset, and a read costs about a
//! millisecond on a local node.
//!
//! A refusal is never based on the cache: the task is read again at the
//! finalized block, and if that still refuses, at the best block. When the
//! best block would allow the request, the answer is `503 behind` (retry):
//! the caller has seen a block that is not final yet, or the relay's node
//! lags. Only a task absent from the best block too is `404 task_not_found`.

use crate::api::ApiError;
use hydrogen_sdk::chain::{parse_account, ChainError, Connection, Hydrogen};
use hydrogen_sdk::types::{TaskId, TaskInfo};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The relay's view of the contract.
pub struct ChainView {
    /// The SDK's shared reconnect policy: a node that is down is retried
    /// at most every few seconds, so it does not stall every request.
    chain: Connection,
    cache: Mutex<HashMap<TaskId, (Instant, TaskInfo)>>,
    cache_for: Duration,
    /// `chain_read_seconds`, by block.
    reads: prometheus::HistogramVec,
}

/// Entries kept before the cache is pruned of expired ones.
const CACHE_PRUNE_AT: usize = 4096;

impl ChainView {
    pub async fn connect(
        rpc_url: &str,
        contract: &str,
        cache_for: Duration,
        reads: prometheus::HistogramVec,
    ) -> anyhow::Result<ChainView> {
        let address = contract;
        let contract = parse_account(contract)?;
        let chain = Connection::connect(rpc_url, contract).await?;
        // A relay for a contract that is not there would accept nothing and
        // say it is ready: refuse to start instead.
        chain
            .call(|h| async move { h.params().await })
            .await
            .map_err(|e| anyhow::anyhow!("no hydrogen contract answers at {address}: {e}"))?;
        Ok(ChainView {
            chain,
            cache: Mutex::default(),
            cache_for,
            reads,
        })
    }

    /// Task `id` if `rule` allows the request on it; see the module docs.
    pub async fn authorize(
        &self,
        id: TaskId,
        rule: impl Fn(&TaskInfo) -> Result<(), ApiError>,
    ) -> Result<TaskInfo, ApiError> {
        if let Some(task) = self.cached(id) {
            if rule(&task).is_ok() {
                return Ok(task);
            }
        }
        self.authorize_fresh(id, rule).await
    }

    /// [`authorize`](Self::authorize) on a fresh read, for requests whose
    /// permission a status change can revoke (uploads): a cached task must
    /// not allow an upload to a task that has since moved on.
    pub async fn authorize_fresh(
        &self,
        id: TaskId,
        rule: impl Fn(&TaskInfo) -> Result<(), ApiError>,
    ) -> Result<TaskInfo, ApiError> {
        let hydrogen = self.handle().await?;
        let finalized = self.read(&hydrogen, id, true).await?;
        let refusal = match &finalized {
            Some(task) => match rule(task) {
                Ok(()) => {
                    self.remember(task.clone());
                    return Ok(task.clone());
                }
                Err(refusal) => refusal,
            },
            None => ApiError::task_not_found(id),
        };
        match self.read(&hydrogen, id, false).await? {
            Some(best) if rule(&best).is_ok() => Err(ApiError::behind(id)),
            _ => Err(refusal),
        }
    }

    /// Task `id` at the finalized block, uncached (for the retention sweep).
    pub async fn finalized_task(&self, id: TaskId) -> Result<Option<TaskInfo>, ApiError> {
        let hydrogen = self.handle().await?;
        self.read(&hydrogen, id, true).await
    }

    /// Whether the chain node answers and the contract is there (a view of
    /// it runs).
    pub async fn check(&self) -> Result<(), ApiError> {
        let hydrogen = self.handle().await?;
        match hydrogen.params().await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.unavailable(e).await),
        }
    }

    async fn handle(&self) -> Result<Hydrogen, ApiError> {
        match self.chain.get().await {
            Ok(h) => Ok(h),
            Err(e) => Err(self.unavailable(e).await),
        }
    }

    async fn read(
        &self,
        hydrogen: &Hydrogen,
        id: TaskId,
        finalized: bool,
    ) -> Result<Option<TaskInfo>, ApiError> {
        let block = if finalized { "finalized" } else { "best" };
        let _timer = self.reads.with_label_values(&[block]).start_timer();
        let at = if finalized {
            match hydrogen.client().finalized_head().await {
                Ok(head) => Some(head),
                Err(e) => return Err(self.unavailable(e).await),
            }
        } else {
            None
        };
        match hydrogen.task_at(id, at).await {
            Ok(task) => Ok(task),
            Err(e) => Err(self.unavailable(e).await),
        }
    }

    /// The answer to a failed chain read. A transport failure drops the
    /// connection, so that a later request reconnects.
    async fn unavailable(&self, error: ChainError) -> ApiError {
        tracing::warn!(%error, "chain read failed");
        let error = self.chain.check::<()>(Err(error)).await.unwrap_err();
        ApiError::chain_unavailable(&error)
    }

    fn cached(&self, id: TaskId) -> Option<TaskInfo> {
        let cache = self.cache.lock().unwrap();
        let (at, task) = cache.get(&id)?;
        (at.elapsed() < self.cache_for).then(|| task.clone())
    }

    fn remember(&self, task: TaskInfo) {
        if self.cache_for.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHE_PRUNE_AT {
            let keep = self.cache_for;
            cache.retain(|_, (at, _)| at.elapsed() < keep);
        }
        cache.insert(task.id, (Instant::now(), task));
    }
}
