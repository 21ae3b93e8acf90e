//! The daemon's connection to the chain: one [`Hydrogen`] handle, replaced
//! by a fresh connection after a transport failure. The SDK's client rides
//! out a chain node restart by itself; this covers what it gives up on (a
//! node down longer than its reconnect window, a first connection that
//! failed). Callers retry on their next round.

use hydrogen_sdk::chain::{ChainClient, ChainError, Hydrogen};
use hydrogen_sdk::types::{AccountId, TaskId, TaskInfo};
use std::time::Duration;
use tokio::sync::Mutex;

/// Whether `error` says nothing about the call itself, only that the
/// connection failed: worth reconnecting and trying again.
pub fn is_transport(error: &ChainError) -> bool {
    match error {
        ChainError::Connect { .. } | ChainError::Rpc { .. } | ChainError::Timeout { .. } => true,
        // The pool's answer was lost with the connection.
        ChainError::Rejected { reason, .. } => {
            let reason = reason.to_lowercase();
            ["closed", "restart", "connection", "background task"]
                .iter()
                .any(|s| reason.contains(s))
        }
        _ => false,
    }
}

pub struct Chain {
    url: String,
    contract: AccountId,
    me: AccountId,
    current: Mutex<Option<Hydrogen>>,
}

impl Chain {
    pub fn new(url: &str, contract: AccountId, me: AccountId) -> Self {
        Chain {
            url: url.to_owned(),
            contract,
            me,
            current: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The contract handle, connecting first if needed. Views run as this node.
    pub async fn get(&self) -> Result<Hydrogen, ChainError> {
        let mut current = self.current.lock().await;
        if let Some(h) = current.as_ref() {
            return Ok(h.clone());
        }
        let client = ChainClient::connect(&self.url)
            .await?
            .with_finality_timeout(Duration::from_secs(60));
        let h = Hydrogen::at(client, self.contract).with_view_origin(self.me);
        *current = Some(h.clone());
        Ok(h)
    }

    /// Drops the connection when `result` failed in transport, so the next
    /// [`get`](Self::get) reconnects.
    pub async fn check<T>(&self, result: Result<T, ChainError>) -> Result<T, ChainError> {
        if let Err(e) = &result {
            if is_transport(e) {
                *self.current.lock().await = None;
            }
        }
        result
    }

    /// The task's record on chain, `None` when there is no such task.
    pub async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, ChainError> {
        self.call(|h| async move { h.task(id).await }).await
    }

    /// Runs `f` on the handle, reconnecting on the next call after a transport failure.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, ChainError>
    where
        F: FnOnce(Hydrogen) -> Fut,
        Fut: std::future::Future<Output = Result<T, ChainError>>,
    {
        let h = match self.get().await {
            Ok(h) => h,
            Err(e) => return Err(e),
        };
        let result = f(h).await;
        self.check(result).await
    }
}
