//! The node registry: who is staked, in which state, and an index of the
//! available nodes by VRAM so selection never scans every node.

use hydrogen_types::{Error, Hash, NodeCounts, NodeInfo, NodeStatus, TaskId};
use ink::prelude::vec::Vec;
use ink::primitives::AccountId;
use ink::storage::Mapping;

/// Distinct VRAM sizes among available nodes; bounds the selection walk.
pub const MAX_VRAM_CLASSES: usize = 64;
pub const MAX_GPU_NAME: usize = 64;
pub const MAX_VRAM_GB: u32 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
#[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
pub struct Node {
    pub status: NodeStatus,
    pub stake: u128,
    pub gpu_name: Vec<u8>,
    pub vram_gb: u32,
    pub engine_version: u32,
    pub current_task: Option<TaskId>,
    pub missed: u8,
    /// Position in its VRAM class while `Available`.
    pub slot: u32,
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
        }
    }
}

#[ink::storage_item]
#[derive(Debug, Default)]
pub struct Registry {
    nodes: Mapping<AccountId, Node>,
    /// Entropy tickets: `blake2_256(secret)` of each node's next contribution.
    tickets: Mapping<AccountId, Hash>,
    /// VRAM classes (GB) with at least one available node, ascending.
    classes: Vec<u32>,
    class_len: Mapping<u32, u32>,
    class_slot: Mapping<(u32, u32), AccountId>,
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

    pub fn validate_gpu(&self, gpu_name: &[u8], vram_gb: u32) -> Result<(), Error> {
        let new_class = !self.classes.contains(&vram_gb);
        if gpu_name.is_empty()
            || gpu_name.len() > MAX_GPU_NAME
            || vram_gb == 0
            || vram_gb > MAX_VRAM_GB
            || (new_class && self.classes.len() >= MAX_VRAM_CLASSES)
        {
            return Err(Error::InvalidGpu);
        }
        Ok(())
    }

    /// Moves `node` to `status`, keeping the counters and the availability
    /// index in step, and stores it.
    pub fn set_status(&mut self, id: AccountId, node: &mut Node, status: NodeStatus) {
        let was_available = node.status == NodeStatus::Available;
        if was_available && status != NodeStatus::Available {
            self.remove_available(node);
        }
        if let Some(c) = self.counter(node.status) {
            *c = c.saturating_sub(1);
        }
        if let Some(c) = self.counter(status) {
            *c = c.saturating_add(1);
        }
        node.status = status;
        if !was_available && status == NodeStatus::Available {
            self.add_available(id, node);
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

    /// Available nodes with at least `min_vram_gb`.
    pub fn eligible(&self, min_vram_gb: u32) -> u32 {
        self.classes
            .iter()
            .filter(|&&v| v >= min_vram_gb)
            .map(|&v| self.class_len.get(v).unwrap_or(0))
            .sum()
    }

    /// The `index`-th available node with at least `min_vram_gb`, walking
    /// the classes in ascending order.
    pub fn pick(&self, min_vram_gb: u32, mut index: u32) -> Option<AccountId> {
        for &vram in self.classes.iter().filter(|&&v| v >= min_vram_gb) {
            let len = self.class_len.get(vram).unwrap_or(0);
            if index < len {
                return self.class_slot.get((vram, index));
            }
            index = index.saturating_sub(len);
        }
        None
    }

    fn add_available(&mut self, id: AccountId, node: &mut Node) {
        let vram = node.vram_gb;
        if let Err(pos) = self.classes.binary_search(&vram) {
            self.classes.insert(pos, vram);
        }
        let len = self.class_len.get(vram).unwrap_or(0);
        self.class_slot.insert((vram, len), &id);
        self.class_len.insert(vram, &len.saturating_add(1));
        node.slot = len;
    }

    fn remove_available(&mut self, node: &Node) {
        let vram = node.vram_gb;
        let len = self.class_len.get(vram).unwrap_or(0);
        let last = len.saturating_sub(1);
        if node.slot != last {
            // Swap-remove: the last node of the class takes the freed slot.
            if let Some(moved_id) = self.class_slot.get((vram, last)) {
                self.class_slot.insert((vram, node.slot), &moved_id);
                if let Some(mut moved) = self.nodes.get(moved_id) {
                    moved.slot = node.slot;
                    self.nodes.insert(moved_id, &moved);
                }
            }
        }
        self.class_slot.remove((vram, last));
        if last == 0 {
            self.class_len.remove(vram);
            if let Ok(pos) = self.classes.binary_search(&vram) {
                self.classes.remove(pos);
            }
        } else {
            self.class_len.insert(vram, &last);
        }
    }
}
