//! One task's events out of the contract's per-block event stream.

use crate::chain::{BlockEvents, ChainError};
use crate::types::{Event, TaskId};
use futures::{Stream, StreamExt};

/// One of a task's events, in a finalized block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskUpdate {
    pub block_number: u64,
    /// The extrinsic that emitted it (see [`ChainClient::reveal_at`]).
    ///
    /// [`ChainClient::reveal_at`]: crate::chain::ChainClient::reveal_at
    pub extrinsic_index: Option<u32>,
    pub event: Event,
}

/// The task an event is about, if it is about one.
pub fn task_id_of(event: &Event) -> Option<TaskId> {
    event.task_id()
}

/// `task_id`'s events from `blocks`, flattened in order. An error ends the stream.
pub(crate) fn of_task(
    task_id: TaskId,
    blocks: impl Stream<Item = Result<BlockEvents, ChainError>> + Send + 'static,
) -> impl Stream<Item = Result<TaskUpdate, ChainError>> + Send + 'static {
    blocks.flat_map(move |block| {
        let updates: Vec<Result<TaskUpdate, ChainError>> = match block {
            Ok(block) => block
                .events
                .into_iter()
                .filter(|e| task_id_of(&e.event) == Some(task_id))
                .map(|e| {
                    Ok(TaskUpdate {
                        block_number: e.block_number,
                        extrinsic_index: e.extrinsic_index,
                        event: e.event,
                    })
                })
                .collect(),
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(updates)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ContractEvent;

    fn block(number: u64, events: Vec<Event>) -> Result<BlockEvents, ChainError> {
        Ok(BlockEvents {
            block_number: number,
            block_hash: [0; 32],
            events: events
                .into_iter()
                .map(|event| ContractEvent {
                    block_number: number,
                    extrinsic_index: Some(1),
                    event,
                })
                .collect(),
        })
    }

    #[tokio::test]
    async fn keeps_only_the_tasks_events_in_order() {
        let ready = |task_id| Event::CommitmentsReady { task_id };
        let other = Event::EntropyContributed {
            node: [1; 32].into(),
        };
        let blocks = futures::stream::iter(vec![
            block(5, vec![ready(1), ready(2), other]),
            block(6, vec![]),
            block(7, vec![ready(2)]),
        ]);
        let got: Vec<_> = of_task(2, blocks)
            .map(|u| u.map(|u| u.block_number))
            .collect()
            .await;
        let got: Vec<u64> = got.into_iter().map(|r| r.expect("no error")).collect();
        assert_eq!(got, vec![5, 7]);
    }
}
