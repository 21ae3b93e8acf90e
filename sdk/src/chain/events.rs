//! The contract's events: `Contracts::ContractEmitted` records whose first
//! topic is [`hydrogen_types::EVENT_SIGNATURE_TOPIC`], decoded into
//! [`hydrogen_types::Event`]; per finalized block, and as a stream.

use super::client::{ChainClient, ChainConfig};
use super::error::ChainError;
use codec::Decode;
use futures::Stream;
use hydrogen_types::{AccountId, Event, TaskId, EVENT_SIGNATURE_TOPIC};
use subxt::error::BlocksError;
use subxt::events::Phase;

/// One runtime event, copied out of its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub pallet: String,
    pub name: String,
    /// The SCALE-encoded event fields.
    pub fields: Vec<u8>,
    pub topics: Vec<[u8; 32]>,
    /// The extrinsic that emitted it, if any.
    pub extrinsic_index: Option<u32>,
}

impl RawEvent {
    pub(crate) fn from_subxt(event: &subxt::events::Event<'_, ChainConfig>) -> Self {
        RawEvent {
            pallet: event.pallet_name().into(),
            name: event.event_name().into(),
            fields: event.field_bytes().to_vec(),
            topics: event.topics().iter().map(|t| t.0).collect(),
            extrinsic_index: match event.phase() {
                Phase::ApplyExtrinsic(i) => Some(i),
                _ => None,
            },
        }
    }

    /// This event as a Hydrogen event of `contract`: `None` when it is another
    /// pallet's event, another contract's, or another kind of contract event
    /// (PSP22 `Transfer`/`Approval`).
    pub fn hydrogen_event(&self, contract: &AccountId) -> Result<Option<Event>, ChainError> {
        if self.pallet != "Contracts" || self.name != "ContractEmitted" {
            return Ok(None);
        }
        if self.topics.first() != Some(&EVENT_SIGNATURE_TOPIC) {
            return Ok(None);
        }
        let input = &mut &self.fields[..];
        let (emitter, data) = <(AccountId, Vec<u8>)>::decode(input)
            .map_err(|e| ChainError::decode("Contracts::ContractEmitted", e))?;
        if &emitter != contract {
            return Ok(None);
        }
        let input = &mut &data[..];
        let event = Event::decode(input).map_err(|e| ChainError::decode("a Hydrogen event", e))?;
        // The carrier's topic fields follow: (task, node, creator).
        <(Option<TaskId>, Option<AccountId>, Option<AccountId>)>::decode(input)
            .map_err(|e| ChainError::decode("a Hydrogen event's topic fields", e))?;
        if !input.is_empty() {
            return Err(ChainError::decode(
                "a Hydrogen event",
                format!("{} bytes left over", input.len()),
            ));
        }
        Ok(Some(event))
    }
}

/// The Hydrogen events of `contract` among `events`, in order.
pub fn contract_events<'a>(
    contract: &AccountId,
    events: impl IntoIterator<Item = &'a RawEvent>,
) -> Result<Vec<Event>, ChainError> {
    let mut out = Vec::new();
    for event in events {
        if let Some(e) = event.hydrogen_event(contract)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// A Hydrogen event and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractEvent {
    pub block_number: u64,
    /// Index of the emitting extrinsic in its block.
    pub extrinsic_index: Option<u32>,
    pub event: Event,
}

/// The Hydrogen events of one finalized block (possibly none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEvents {
    pub block_number: u64,
    pub block_hash: [u8; 32],
    pub events: Vec<ContractEvent>,
}

impl ChainClient {
    /// The Hydrogen events `contract` emitted in finalized block `number`.
    pub async fn contract_events_at(
        &self,
        contract: &AccountId,
        number: u64,
    ) -> Result<BlockEvents, ChainError> {
        let finalized = self.finalized_number().await?;
        if number > finalized {
            return Err(ChainError::rpc(
                format!("cannot read the events of block #{number}"),
                format!("it is not finalized yet (finalized: #{finalized})"),
            ));
        }
        self.events_of_finalized(contract, number).await
    }

    /// [`contract_events_at`](Self::contract_events_at) for a block known to be finalized.
    async fn events_of_finalized(
        &self,
        contract: &AccountId,
        number: u64,
    ) -> Result<BlockEvents, ChainError> {
        let context = || format!("cannot read the events of block #{number}");
        let block = self
            .api()
            .at_block(number)
            .await
            .map_err(|e| ChainError::rpc(context(), e))?;
        let all = block
            .events()
            .fetch()
            .await
            .map_err(|e| ChainError::rpc(context(), e))?;
        let mut events = Vec::new();
        for event in all.iter() {
            let raw = RawEvent::from_subxt(&event.map_err(|e| ChainError::decode("an event", e))?);
            if let Some(event) = raw.hydrogen_event(contract)? {
                events.push(ContractEvent {
                    block_number: number,
                    extrinsic_index: raw.extrinsic_index,
                    event,
                });
            }
        }
        Ok(BlockEvents {
            block_number: number,
            block_hash: block.block_hash().0,
            events,
        })
    }

    /// Every finalized block from `from` on (or, with `None`, from the first
    /// block finalized after this call) with `contract`'s Hydrogen events,
    /// one item per block and without gaps, so a watcher can store the last
    /// block it handled and resume from the next. A restart of the chain node
    /// only pauses the stream (see [`connect`](Self::connect)); it ends after
    /// any other error: start a new one from the next unhandled block.
    pub async fn contract_event_stream(
        &self,
        contract: AccountId,
        from: Option<u64>,
    ) -> Result<impl Stream<Item = Result<BlockEvents, ChainError>> + Send + 'static, ChainError>
    {
        let blocks = self
            .api()
            .stream_blocks()
            .await
            .map_err(|e| ChainError::rpc("cannot subscribe to finalized blocks", e))?;
        let finalized = self.finalized_number().await?;
        let next = from.unwrap_or(finalized + 1);
        let state = Follow {
            client: self.clone(),
            contract,
            blocks,
            next,
            finalized,
        };
        Ok(futures::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            loop {
                if state.next <= state.finalized {
                    let item = state
                        .client
                        .events_of_finalized(&state.contract, state.next)
                        .await;
                    state.next += 1;
                    let state = item.is_ok().then_some(state);
                    return Some((item, state));
                }
                match state.blocks.next().await {
                    None => return None,
                    // The connection dropped: the block stream subscribes
                    // again once the client is back, and the blocks
                    // finalized in between are read by number above.
                    Some(Err(BlocksError::CannotGetBlockHeader(e)))
                        if e.is_disconnected_will_reconnect() =>
                    {
                        tracing::debug!(error = %e, "finalized block stream dropped; following on");
                    }
                    Some(Err(e)) => {
                        return Some((
                            Err(ChainError::rpc("finalized block stream failed", e)),
                            None,
                        ))
                    }
                    Some(Ok(block)) => state.finalized = state.finalized.max(block.number()),
                }
            }
        }))
    }
}

struct Follow {
    client: ChainClient,
    contract: AccountId,
    blocks: subxt::client::Blocks<ChainConfig>,
    next: u64,
    finalized: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::Encode;
    use hydrogen_types::NodeStatus;

    fn emitted(contract: AccountId, topic: [u8; 32], data: Vec<u8>) -> RawEvent {
        RawEvent {
            pallet: "Contracts".into(),
            name: "ContractEmitted".into(),
            fields: (contract, data).encode(),
            topics: vec![topic, [9; 32]],
            extrinsic_index: Some(1),
        }
    }

    #[test]
    fn decodes_hydrogen_events_of_our_contract_only() {
        let ours = AccountId::from([1u8; 32]);
        let event = Event::NodeStatusChanged {
            node: [2; 32].into(),
            status: NodeStatus::Available,
        };
        let data = (&event, event.task_id(), event.node(), event.creator()).encode();
        let raw = emitted(ours, EVENT_SIGNATURE_TOPIC, data);
        assert_eq!(raw.hydrogen_event(&ours).unwrap(), Some(event.clone()));
        assert_eq!(raw.hydrogen_event(&[3; 32].into()).unwrap(), None);

        // A PSP22 Transfer from the same contract has another signature topic.
        let transfer = emitted(
            ours,
            [0xaa; 32],
            (None::<AccountId>, Some(AccountId::from([2u8; 32])), 5u128).encode(),
        );
        assert_eq!(transfer.hydrogen_event(&ours).unwrap(), None);

        let other_pallet = RawEvent {
            pallet: "Balances".into(),
            ..raw.clone()
        };
        assert_eq!(other_pallet.hydrogen_event(&ours).unwrap(), None);

        let events = contract_events(&ours, [&raw, &transfer, &raw]).unwrap();
        assert_eq!(events, vec![event.clone(), event]);
    }

    #[test]
    fn malformed_hydrogen_event_is_an_error() {
        let ours = AccountId::from([1u8; 32]);
        assert!(emitted(ours, EVENT_SIGNATURE_TOPIC, vec![200])
            .hydrogen_event(&ours)
            .is_err());
        let mut data = (
            Event::EntropyContributed {
                node: [0; 32].into(),
            },
            None::<TaskId>,
            Some(AccountId::from([0u8; 32])),
            None::<AccountId>,
        )
            .encode();
        data.push(0);
        assert!(emitted(ours, EVENT_SIGNATURE_TOPIC, data)
            .hydrogen_event(&ours)
            .is_err());
    }
}
