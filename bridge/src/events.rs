//! `GET /v1/tasks/{id}/events`: a task's progress as Server-Sent Events.
//!
//! The chain's events for the task (from [`Client::updates`], in block
//! order: `queued`, `node_selected`, `committed`, `revealed`, `succeeded`,
//! `uploaded`) followed by one terminal event from the bridge's record:
//! `completed` (with the image URLs), `aborted`, `cancelled` or `failed`.
//! Before the terminal event the stream reads on until the chain event that
//! settled the task, so the order holds even when the bridge recorded the
//! outcome before the event stream caught up.
//!
//! [`Client::updates`]: hydrogen_sdk::app::Client::updates

use crate::store::TaskState;
use crate::Shared;
use futures::{Stream, StreamExt, TryStreamExt};
use hydrogen_sdk::app::{PendingTask, TaskUpdate};
use hydrogen_sdk::chain::{ss58, ChainError};
use hydrogen_sdk::types::Event;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_wrapper::SyncStream;
use tokio::sync::mpsc;
use warp::reply::Response;
use warp::Reply;

/// One event of the stream; the SSE event's name is its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskEvent {
    /// `queued`, `node_selected`, `committed`, `revealed`, `succeeded`,
    /// `uploaded`, then one of `completed`, `aborted`, `cancelled`, `failed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The bridge's task id.
    pub id: String,
    /// The chain's task id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<u64>,
    /// The finalized block of a chain event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    /// The node a `node_selected`, `revealed` or `uploaded` event is about;
    /// the uploader for `succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why a task aborted, failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `completed`: the images' URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// `succeeded` and `completed`: each image's pHash, hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result: Vec<String>,
}

impl TaskEvent {
    fn new(kind: &str, id: &str, task_id: Option<u64>) -> TaskEvent {
        TaskEvent {
            kind: kind.into(),
            id: id.into(),
            task_id,
            block: None,
            node: None,
            error: None,
            images: Vec::new(),
            result: Vec::new(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        TaskState::parse(&self.kind).is_some_and(TaskState::is_final)
    }
}

/// The SSE event for one of the task's chain events, if it is one the
/// stream reports.
fn of_update(id: &str, update: &TaskUpdate) -> Option<TaskEvent> {
    let task_id = update.event.task_id();
    let (kind, node, result) = match &update.event {
        Event::TaskCreated { .. } => ("queued", None, None),
        Event::NodeSelected { node, .. } => ("node_selected", Some(node), None),
        Event::CommitmentsReady { .. } => ("committed", None, None),
        Event::ResultRevealed { node, .. } => ("revealed", Some(node), None),
        Event::TaskSucceeded {
            uploader, result, ..
        } => ("succeeded", Some(uploader), Some(result)),
        Event::ResultsUploaded { node, .. } => ("uploaded", Some(node), None),
        _ => return None,
    };
    let mut event = TaskEvent::new(kind, id, task_id);
    event.block = Some(update.block_number);
    event.node = node.map(ss58);
    if let Some(result) = result {
        event.result = result
            .chunks(hydrogen_sdk::types::PHASH_BYTES)
            .map(hex::encode)
            .collect();
    }
    Some(event)
}

/// Whether `event` is the chain event that settles a task in `state`.
fn settles(state: TaskState, event: &Event) -> bool {
    match state {
        TaskState::Completed => matches!(event, Event::ResultsUploaded { .. }),
        TaskState::Aborted | TaskState::Cancelled => matches!(event, Event::TaskAborted { .. }),
        _ => false,
    }
}

type Updates = Pin<Box<dyn Stream<Item = Result<TaskUpdate, ChainError>> + Send>>;

/// The SSE answer for task `id`.
pub(crate) fn reply(shared: Arc<Shared>, id: String, base: String) -> Response {
    let (tx, rx) = mpsc::channel::<warp::sse::Event>(64);
    tokio::spawn(async move {
        if let Err(e) = produce(&shared, &id, &base, &tx).await {
            tracing::debug!(id, error = format!("{e:#}"), "event stream ended");
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let events = warp::sse::keep_alive()
        .interval(Duration::from_secs(15))
        .stream(events)
        .into_stream();
    warp::sse::reply(SyncStream::new(events)).into_response()
}

async fn produce(
    shared: &Shared,
    id: &str,
    base: &str,
    tx: &mpsc::Sender<warp::sse::Event>,
) -> anyhow::Result<()> {
    let mut sequence = 0u64;
    let mut send = |event: TaskEvent| {
        sequence += 1;
        let sse = warp::sse::Event::default()
            .event(event.kind.clone())
            .id(sequence.to_string())
            .json_data(&event);
        async move {
            tx.send(sse?)
                .await
                .map_err(|_| anyhow::anyhow!("the client left"))
        }
    };
    let mut updates: Option<Updates> = None;
    // Where to follow from after the event stream broke: the block after
    // the last one seen (a block's events arrive together).
    let mut resume_from: Option<u64> = None;
    loop {
        let row = shared
            .store
            .task(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("task {id} is gone"))?;
        if updates.is_none() {
            if let (Some(task_id), Some(created_in), Some(client)) =
                (row.task_id, row.created_in, shared.client.get())
            {
                let pending = PendingTask {
                    task_id,
                    created_in,
                };
                match client.updates(&pending, resume_from).await {
                    Ok(stream) => updates = Some(Box::pin(stream)),
                    Err(e) => tracing::debug!(id, error = %e, "no event stream yet"),
                }
            }
        }
        if row.state.is_final() {
            // Read on to the chain event that settled it (briefly), so the
            // terminal event comes last.
            if let Some(stream) = updates.as_mut() {
                let until = Instant::now() + Duration::from_secs(10);
                while let Ok(Some(Ok(update))) =
                    tokio::time::timeout_at(until.into(), stream.next()).await
                {
                    if let Some(event) = of_update(id, &update) {
                        send(event).await?;
                    }
                    if settles(row.state, &update.event) {
                        break;
                    }
                }
            }
            let mut last = TaskEvent::new(row.state.as_str(), id, row.task_id);
            last.error = row.error.clone();
            if row.state == TaskState::Completed {
                let count = shared.store.image_count(id).await?;
                last.images = (0..count)
                    .map(|n| format!("{base}/v1/tasks/{id}/images/{n}"))
                    .collect();
                last.result = row.phashes();
            }
            send(last).await?;
            return Ok(());
        }
        if shared.stopping.load(Ordering::SeqCst) || tx.is_closed() {
            return Ok(());
        }
        let tick = tokio::time::sleep(Duration::from_millis(500));
        match updates.as_mut() {
            Some(stream) => {
                tokio::select! {
                    next = stream.next() => match next {
                        Some(Ok(update)) => {
                            resume_from = Some(update.block_number + 1);
                            if let Some(event) = of_update(id, &update) {
                                send(event).await?;
                            }
                        }
                        // The stream broke: the store's state still ends the
                        // stream; events in the gap are lost.
                        Some(Err(e)) => {
                            tracing::debug!(id, error = %e, "chain event stream failed");
                            updates = None;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        None => {
                            updates = None;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    },
                    _ = tick => {}
                }
            }
            None => tick.await,
        }
    }
}
