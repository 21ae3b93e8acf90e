//! One contract handle for a long-running process, with one reconnect
//! policy: what the node daemon, the relay and the app client all hold.
//!
//! [`ChainClient`] rides out a chain node restart by itself, for up to its
//! reconnect window. A [`Connection`] covers what that gives up on: a node
//! down for longer, or a first connection that failed. After a call fails in
//! transport ([`ChainError::is_transport`]) the handle is dropped, and the
//! next call connects anew; while the node stays unreachable, a new attempt
//! is made at most every [`RECONNECT_EVERY`], and calls in between fail at
//! once with the last attempt's error instead of each waiting on a connect.

use super::client::ChainClient;
use super::contract::Hydrogen;
use super::error::ChainError;
use crate::types::{AccountId, TaskId, TaskInfo};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Connection attempts after a failed one are at least this far apart.
pub const RECONNECT_EVERY: Duration = Duration::from_secs(5);

/// A lazily (re)connected [`Hydrogen`] handle; see the module docs.
pub struct Connection {
    url: String,
    contract: AccountId,
    view_origin: Option<AccountId>,
    finality_timeout: Option<Duration>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<Hydrogen>,
    /// When the last attempt failed, and why.
    failed: Option<(Instant, String)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("contract", &super::ss58(&self.contract))
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A handle to the contract at `contract` on the node at `url`; the
    /// first call connects.
    pub fn new(url: &str, contract: AccountId) -> Self {
        Connection {
            url: url.to_owned(),
            contract,
            view_origin: None,
            finality_timeout: None,
            state: Mutex::default(),
        }
    }

    /// [`new`](Self::new), then connects now, so that a wrong URL is
    /// reported at start rather than at the first call.
    pub async fn connect(url: &str, contract: AccountId) -> Result<Self, ChainError> {
        let connection = Connection::new(url, contract);
        connection.get().await?;
        Ok(connection)
    }

    /// Views run as `origin` (see [`Hydrogen::with_view_origin`]).
    pub fn with_view_origin(mut self, origin: AccountId) -> Self {
        self.view_origin = Some(origin);
        self
    }

    /// See [`ChainClient::with_finality_timeout`].
    pub fn with_finality_timeout(mut self, timeout: Duration) -> Self {
        self.finality_timeout = Some(timeout);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn contract(&self) -> AccountId {
        self.contract
    }

    /// The contract handle, connecting first if there is none.
    pub async fn get(&self) -> Result<Hydrogen, ChainError> {
        let mut state = self.state.lock().await;
        if let Some(h) = &state.current {
            return Ok(h.clone());
        }
        if let Some((at, reason)) = &state.failed {
            if at.elapsed() < RECONNECT_EVERY {
                return Err(ChainError::Connect {
                    url: self.url.clone(),
                    reason: reason.clone(),
                });
            }
        }
        match ChainClient::connect(&self.url).await {
            Ok(client) => {
                let client = match self.finality_timeout {
                    Some(timeout) => client.with_finality_timeout(timeout),
                    None => client,
                };
                let mut h = Hydrogen::at(client, self.contract);
                if let Some(origin) = self.view_origin {
                    h = h.with_view_origin(origin);
                }
                *state = State {
                    current: Some(h.clone()),
                    failed: None,
                };
                Ok(h)
            }
            Err(e) => {
                let reason = match &e {
                    ChainError::Connect { reason, .. } => reason.clone(),
                    other => other.to_string(),
                };
                state.failed = Some((Instant::now(), reason));
                Err(e)
            }
        }
    }

    /// Passes `result` through, dropping the handle first when it failed in
    /// transport, so that the next [`get`](Self::get) reconnects.
    pub async fn check<T>(&self, result: Result<T, ChainError>) -> Result<T, ChainError> {
        if let Err(e) = &result {
            if e.is_transport() {
                self.state.lock().await.current = None;
            }
        }
        result
    }

    /// Task `id`'s record at the best block; `None` for an id never issued.
    pub async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, ChainError> {
        self.call(|h| async move { h.task(id).await }).await
    }

    /// Runs `f` on the handle, then [`check`](Self::check)s its result.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, ChainError>
    where
        F: FnOnce(Hydrogen) -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let h = self.get().await?;
        let result = f(h).await;
        self.check(result).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_dead_node_is_retried_at_most_every_few_seconds() {
        // A "node" that hangs up on every connection, counting them.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        let connection = Connection::new(&url, AccountId::from([1; 32]));
        let first = connection.get().await.unwrap_err();
        assert!(matches!(first, ChainError::Connect { .. }), "{first}");
        assert!(first.is_transport());
        let tried = accepted.load(Ordering::SeqCst);
        assert!(tried >= 1);
        // Within RECONNECT_EVERY the next calls fail with the same cause
        // without touching the network.
        for _ in 0..3 {
            let again = connection.call(|h| async move { h.params().await }).await;
            assert_eq!(again.unwrap_err().to_string(), first.to_string());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), tried);
    }
}
