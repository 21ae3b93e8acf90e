//! The node registry: who is staked, in which state, and the index that
//! selection draws from.
//!
//! An `Available` node is either *indexed* (in the selection index, by VRAM
//! class) or *warming* (waiting in a side list). A node that becomes
//! available — by joining, resuming or being released by a task — warms
//! first; warming nodes whose `eligible_at` has passed join the index only
//! when a batch of tasks is armed ([`Registry::admit_warming`]). So the
//! nodes a task draws from are fixed before the entropy that draws them
//! exists, and a node that joins or resumes must do so a warm-up period
//! ahead, without knowing which nodes will be free then.

use hydrogen_types::{
    vram_class, Error, Hash, NodeCounts, NodeInfo, NodeStatus, TaskId, Timestamp, VRAM_CLASSES,
};
use ink::prelude::string::String;
use ink::primitives::AccountId;
use ink::storage::Mapping;

pub const MAX_GPU_NAME: usize = 64;
pub const MAX_VRAM_GB: u32 = 4096;
const CLASSES: usize = VRAM_CLASSES.len();

/// A class index as a storage key (there are fewer than 256 classes).
fn key(class: usize) -> u8 {
    u8::try_from(class).unwrap_or(u8::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
#[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
pub struct Node {
    pub status: NodeStatus,
    pub stake: u128,
    pub gpu_name: String,
    pub vram_gb: u32,
    pub engine_version: u32,
    pub current_task: Option<TaskId>,
    pub missed: u8,
    /// While `Available`: whether it is in the selection index (else warming).
    pub indexed: bool,
    /// Position in its class of the index, or in the warming list.
    pub slot: u32,
    /// A kicked-out node may not join again before this time.
    pub rejoin_after: Timestamp,
    /// While warming: when it may enter the index.
    pub eligible_at: Timestamp,
    /// Open audits of tasks it revealed in; its stake is held meanwhile.
    pub disputes: u8,
}

impl Node {
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            status: self.status,
            stake: self.stake,
            gpu_name: self.gpu_name.clone(),
            vram_gb: self.vram_gb,
            engine_version: self.engine_version,
            current_task: self.current_task,
            missed: self.missed,
            rejoin_after: self.rejoin_after,
            disputes: self.disputes,
        }
    }

    fn class(&self) -> usize {
        vram_class(self.vram_gb).unwrap_or(0)
    }
}

#[ink::storage_item]
#[derive(Debug, Default)]
pub struct Registry {
    nodes: Mapping<AccountId, Node>,
    /// Entropy tickets: `blake2_256(secret)` of each node's next contribution.
    tickets: Mapping<AccountId, Hash>,
    /// Indexed nodes per VRAM class.
    class_len: [u32; CLASSES],
    class_slot: Mapping<(u8, u32), AccountId>,
    /// Warming nodes per VRAM class, and the list itself.
    warming_len: [u32; CLASSES],
    warming: Mapping<u32, AccountId>,
    warming_total: u32,
    counts: NodeCounts,
}

impl Registry {
    pub fn get(&self, id: AccountId) -> Option<Node> {
        self.nodes.get(id)
    }

    pub fn get_staked(&self, id: AccountId) -> Result<Node, Error> {
        self.get(id)
            .filter(|n| n.status != NodeStatus::Quit)
            .ok_or(Error::NotJoined)
    }

    pub fn counts(&self) -> NodeCounts {
        self.counts
    }

    pub fn ticket(&self, id: AccountId) -> Option<Hash> {
        self.tickets.get(id)
    }

    pub fn set_ticket(&mut self, id: AccountId, ticket: Hash) {
        self.tickets.insert(id, &ticket);
    }

    pub fn validate_gpu(gpu_name: &str, vram_gb: u32) -> Result<(), Error> {
        if gpu_name.is_empty()
            || gpu_name.len() > MAX_GPU_NAME
            || vram_class(vram_gb).is_none()
            || vram_gb > MAX_VRAM_GB
        {
            return Err(Error::InvalidGpu);
        }
        Ok(())
    }

    /// Moves `node` to `status`, keeping the counters, the index and the
    /// warming list in step, and stores it. A node becoming available warms.
    pub fn set_status(&mut self, id: AccountId, node: &mut Node, status: NodeStatus) {
        let was_available = node.status == NodeStatus::Available;
        if was_available && status != NodeStatus::Available {
            if node.indexed {
                self.remove_indexed(node);
            } else {
                self.remove_warming(node);
            }
        }
        if let Some(c) = self.counter(node.status) {
            *c = c.saturating_sub(1);
        }
        if let Some(c) = self.counter(status) {
            *c = c.saturating_add(1);
        }
        node.status = status;
        if !was_available && status == NodeStatus::Available {
            self.add_warming(id, node);
        }
        self.nodes.insert(id, node);
    }

    /// Stores a node without a status change.
    pub fn save(&mut self, id: AccountId, node: &Node) {
        self.nodes.insert(id, node);
    }

    fn counter(&mut self, status: NodeStatus) -> Option<&mut u32> {
        match status {
            NodeStatus::Available => Some(&mut self.counts.available),
            NodeStatus::Busy | NodeStatus::PendingPause | NodeStatus::PendingQuit => {
                Some(&mut self.counts.busy)
            }
            NodeStatus::Paused => Some(&mut self.counts.paused),
            NodeStatus::Quit => None,
        }
    }

    fn classes_for(min_vram_gb: u32) -> impl Iterator<Item = usize> {
        (0..CLASSES).filter(move |&c| VRAM_CLASSES[c] >= min_vram_gb)
    }

    /// Indexed nodes with at least `min_vram_gb`: what a draw picks from.
    pub fn eligible(&self, min_vram_gb: u32) -> u32 {
        Self::classes_for(min_vram_gb)
            .map(|c| self.class_len[c])
            .fold(0, u32::saturating_add)
    }

    /// Available nodes with at least `min_vram_gb`, warming ones included.
    pub fn capacity(&self, min_vram_gb: u32) -> u32 {
        Self::classes_for(min_vram_gb)
            .map(|c| self.class_len[c].saturating_add(self.warming_len[c]))
            .fold(0, u32::saturating_add)
    }

    /// The `index`-th indexed node with at least `min_vram_gb`, walking the
    /// classes in ascending order.
    pub fn pick(&self, min_vram_gb: u32, mut index: u32) -> Option<AccountId> {
        for c in Self::classes_for(min_vram_gb) {
            let len = self.class_len[c];
            if index < len {
                return self.class_slot.get((key(c), index));
            }
            index = index.saturating_sub(len);
        }
        None
    }

    /// Moves the warming nodes whose warm-up ended by `now` into the index.
    /// Called only while no batch is armed, before arming the next one.
    pub fn admit_warming(&mut self, now: Timestamp) {
        // Backwards, so a swap-remove only moves an entry already visited.
        let mut i = self.warming_total;
        while i > 0 {
            i = i.saturating_sub(1);
            let Some(id) = self.warming.get(i) else {
                continue;
            };
            let Some(mut node) = self.nodes.get(id) else {
                continue;
            };
            if node.eligible_at > now {
                continue;
            }
            self.remove_warming(&node);
            self.add_indexed(id, &mut node);
            self.nodes.insert(id, &node);
        }
    }

    fn add_warming(&mut self, id: AccountId, node: &mut Node) {
        let c = node.class();
        self.warming.insert(self.warming_total, &id);
        node.slot = self.warming_total;
        node.indexed = false;
        self.warming_total = self.warming_total.saturating_add(1);
        self.warming_len[c] = self.warming_len[c].saturating_add(1);
    }

    fn remove_warming(&mut self, node: &Node) {
        let last = self.warming_total.saturating_sub(1);
        if node.slot != last {
            if let Some(moved_id) = self.warming.get(last) {
                self.warming.insert(node.slot, &moved_id);
                if let Some(mut moved) = self.nodes.get(moved_id) {
                    moved.slot = node.slot;
                    self.nodes.insert(moved_id, &moved);
                }
            }
        }
        self.warming.remove(last);
        self.warming_total = last;
        let c = node.class();
        self.warming_len[c] = self.warming_len[c].saturating_sub(1);
    }

    fn add_indexed(&mut self, id: AccountId, node: &mut Node) {
        let c = node.class();
        let len = self.class_len[c];
        self.class_slot.insert((key(c), len), &id);
        self.class_len[c] = len.saturating_add(1);
        node.slot = len;
        node.indexed = true;
    }

    fn remove_indexed(&mut self, node: &Node) {
        let c = node.class();
        let len = self.class_len[c];
        let last = len.saturating_sub(1);
        if node.slot != last {
            // Swap-remove: the last node of the class takes the freed slot.
            if let Some(moved_id) = self.class_slot.get((key(c), last)) {
                self.class_slot.insert((key(c), node.slot), &moved_id);
                if let Some(mut moved) = self.nodes.get(moved_id) {
                    moved.slot = node.slot;
                    self.nodes.insert(moved_id, &moved);
                }
            }
        }
        self.class_slot.remove((key(c), last));
        self.class_len[c] = last;
    }
}
