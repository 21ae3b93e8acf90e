//! What a node revealed: the contract keeps only the accepted result, and
//! `ResultRevealed` names only the node, but the outcome is an argument of
//! the reveal extrinsic, so it can be read back from the block.

use super::client::ChainClient;
use super::error::ChainError;
use codec::{Compact, Decode};
use hydrogen_types::{AccountId, Hash, Outcome, TaskId};

/// A reveal as its extrinsic carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reveal {
    pub node: AccountId,
    pub task_id: TaskId,
    pub outcome: Outcome,
    pub nonce: Hash,
}

/// `Contracts::call`'s fields, as the runtime encodes them.
#[derive(Decode)]
struct ContractsCall {
    dest: MultiAddress,
    _value: Compact<u128>,
    _ref_time: Compact<u64>,
    _proof_size: Compact<u64>,
    _storage_deposit_limit: Option<Compact<u128>>,
    data: Vec<u8>,
}

#[derive(Decode)]
enum MultiAddress {
    Id(AccountId),
}

impl ChainClient {
    /// The reveal in extrinsic `index` of block `number` (where a
    /// `ResultRevealed` event of `contract` says one happened).
    pub async fn reveal_at(
        &self,
        contract: &AccountId,
        number: u64,
        index: u32,
    ) -> Result<Reveal, ChainError> {
        let context = || format!("cannot read extrinsic {index} of block #{number}");
        let block = self
            .api()
            .at_block(number)
            .await
            .map_err(|e| ChainError::rpc(context(), e))?;
        let extrinsics = block
            .extrinsics()
            .fetch()
            .await
            .map_err(|e| ChainError::rpc(context(), e))?;
        let extrinsic = extrinsics
            .iter()
            .nth(index as usize)
            .ok_or_else(|| ChainError::decode(context(), "no such extrinsic"))?
            .map_err(|e| ChainError::decode(context(), e))?;
        if (extrinsic.pallet_name(), extrinsic.call_name()) != ("Contracts", "call") {
            return Err(ChainError::decode(context(), "not a contract call"));
        }
        let call = ContractsCall::decode(&mut extrinsic.call_data_field_bytes())
            .map_err(|e| ChainError::decode(context(), e))?;
        let MultiAddress::Id(dest) = call.dest;
        if &dest != contract {
            return Err(ChainError::decode(context(), "a call to another contract"));
        }
        let node = extrinsic
            .address_bytes()
            .and_then(|mut bytes| MultiAddress::decode(&mut bytes).ok())
            .map(|MultiAddress::Id(node)| node)
            .ok_or_else(|| ChainError::decode(context(), "unsigned or not an account"))?;
        let (selector, args) = call.data.split_at(call.data.len().min(4));
        if selector != super::message::selector("reveal") {
            return Err(ChainError::decode(context(), "not a reveal"));
        }
        let (task_id, outcome, nonce) = <(TaskId, Outcome, Hash)>::decode(&mut &args[..])
            .map_err(|e| ChainError::decode(context(), e))?;
        Ok(Reveal {
            node,
            task_id,
            outcome,
            nonce,
        })
    }
}
