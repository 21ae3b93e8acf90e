//! What the daemon needs from the relay, as a trait so the state machine's
//! unit tests can run without one; [`RelayClient`] is the implementation.

use hydrogen_sdk::relay::{RelayClient, RelayError};
use hydrogen_sdk::types::{Receipt, TaskId};
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Relay: Send + Sync {
    /// The task's uploaded arguments, as uploaded.
    fn fetch_args(&self, task: TaskId) -> BoxFuture<'_, Result<Vec<u8>, RelayError>>;
    /// Uploads the PNGs of a task this node is the uploader of.
    fn upload_images<'a>(
        &'a self,
        task: TaskId,
        pngs: &'a [Vec<u8>],
    ) -> BoxFuture<'a, Result<(), RelayError>>;
    /// The relay's receipt for the task's stored images (`None`: it signs none).
    fn receipt(&self, task: TaskId) -> BoxFuture<'_, Result<Option<Receipt>, RelayError>>;
}

impl Relay for RelayClient {
    fn fetch_args(&self, task: TaskId) -> BoxFuture<'_, Result<Vec<u8>, RelayError>> {
        Box::pin(RelayClient::fetch_args(self, task))
    }

    fn upload_images<'a>(
        &'a self,
        task: TaskId,
        pngs: &'a [Vec<u8>],
    ) -> BoxFuture<'a, Result<(), RelayError>> {
        Box::pin(RelayClient::upload_images(self, task, pngs))
    }

    fn receipt(&self, task: TaskId) -> BoxFuture<'_, Result<Option<Receipt>, RelayError>> {
        Box::pin(RelayClient::receipt(self, task))
    }
}
