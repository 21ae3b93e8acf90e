//! Off-chain tests of the contract: a harness driving it as several
//! accounts, per-message tests, and a property test against a reference model.

mod attacks;
mod messages;
mod model;
mod selection;

use crate::beacon::blake2_256;
use crate::Hydrogen;
use hydrogen_types::{
    commitment_preimage, Error, Event, Hash, Outcome, Params, TaskId, TaskType,
    EVENT_SIGNATURE_TOPIC, UNIT,
};
use ink::env::{test, DefaultEnvironment as Env};
use ink::primitives::AccountId;
use std::collections::HashMap;

pub const OWNER: u8 = 100;
pub const CONTRACT: u8 = 200;
pub const STAKE: u128 = 400 * UNIT;
pub const FEE: u128 = 25 * UNIT;
pub const TIMEOUT: u64 = 60_000;

pub fn acct(n: u8) -> AccountId {
    AccountId::from([n; 32])
}

pub fn params() -> Params {
    Params {
        timeout_ms: TIMEOUT,
        required_stake: STAKE,
        // Most tests are not about the warm-up; `selection.rs` is.
        warmup_ms: 0,
        ..Params::default()
    }
}

/// A pHash result of `images` images, all bytes `b`.
pub fn phash(images: u8, b: u8) -> Outcome {
    Outcome::Images(vec![b; usize::from(images) * 8])
}

pub struct Net {
    pub c: Hydrogen,
    /// Next ticket secret index per node.
    tickets: HashMap<AccountId, u64>,
    nonces: HashMap<(TaskId, AccountId), (Outcome, Hash)>,
    seen_events: usize,
}

fn secret(node: AccountId, k: u64) -> Hash {
    let mut input = node.0.to_vec();
    input.extend_from_slice(&k.to_le_bytes());
    blake2_256(&input)
}

impl Net {
    /// A fresh contract with `supply` minted to the owner. Call inside an
    /// `#[ink::test]` or `test::run_test`, which reset the engine.
    pub fn new() -> Self {
        Self::with(params())
    }

    pub fn with(params: Params) -> Self {
        test::set_callee::<Env>(acct(CONTRACT));
        test::set_caller::<Env>(acct(OWNER));
        test::set_block_timestamp::<Env>(1_000);
        let c = Hydrogen::new(params, 1_000_000 * UNIT).expect("valid params");
        Net {
            c,
            tickets: HashMap::new(),
            nonces: HashMap::new(),
            seen_events: 0,
        }
    }

    pub fn at(&self, ms: u64) {
        test::set_block_timestamp::<Env>(ms);
    }

    pub fn now(&self) -> u64 {
        ink::env::block_timestamp::<Env>()
    }

    pub fn as_(&mut self, who: AccountId) -> &mut Hydrogen {
        test::set_caller::<Env>(who);
        &mut self.c
    }

    pub fn balance(&self, who: AccountId) -> u128 {
        use psp22::PSP22;
        self.c.balance_of(who)
    }

    pub fn fund(&mut self, who: AccountId, amount: u128) {
        self.as_(acct(OWNER)).mint(who, amount).unwrap();
    }

    pub fn ticket(&self, node: AccountId) -> Hash {
        blake2_256(&secret(node, self.tickets.get(&node).copied().unwrap_or(0)))
    }

    pub fn join(&mut self, node: AccountId, vram: u32) -> Result<(), Error> {
        let ticket = self.ticket(node);
        self.as_(node).join("RTX 4090".into(), vram, 1, ticket)
    }

    /// Funds and joins each node.
    pub fn nodes(&mut self, ids: &[u8], vram: u32) {
        for &n in ids {
            self.fund(acct(n), STAKE);
            self.join(acct(n), vram).unwrap();
        }
    }

    pub fn contribute(&mut self, node: AccountId) -> Result<(), Error> {
        let k = self.tickets.get(&node).copied().unwrap_or(0);
        let next = blake2_256(&secret(node, k + 1));
        let result = self.as_(node).contribute_entropy(secret(node, k), next);
        if result.is_ok() {
            self.tickets.insert(node, k + 1);
        }
        result
    }

    pub fn create(&mut self, creator: AccountId, images: u8, fee: u128) -> Result<TaskId, Error> {
        self.as_(creator)
            .create_task(TaskType::StableDiffusion, [7; 32], 0, images, fee)
    }

    /// Funds `creator`, creates a task and has the armed batch's designated
    /// nodes contribute, so it starts.
    pub fn started_task(&mut self, creator: AccountId, images: u8) -> TaskId {
        self.fund(creator, FEE);
        let id = self.create(creator, images, FEE).unwrap();
        self.ripen();
        id
    }

    /// The armed batch's designated contributors reveal their secrets.
    pub fn ripen(&mut self) {
        for node in self.c.entropy_contributors() {
            self.contribute(node).unwrap();
        }
    }

    pub fn selected(&self, id: TaskId) -> Vec<AccountId> {
        self.c.task(id).unwrap().nodes.into_iter().collect()
    }

    pub fn commit(&mut self, id: TaskId, node: AccountId, outcome: Outcome) -> Result<(), Error> {
        let nonce = blake2_256(&[node.0.as_slice(), &id.to_le_bytes(), b"nonce"].concat());
        let c = blake2_256(&commitment_preimage(id, &node, &outcome, &nonce));
        let result = self.as_(node).commit(id, c);
        if result.is_ok() {
            self.nonces.insert((id, node), (outcome, nonce));
        }
        result
    }

    pub fn reveal(&mut self, id: TaskId, node: AccountId) -> Result<(), Error> {
        let (outcome, nonce) = self
            .nonces
            .get(&(id, node))
            .cloned()
            .expect("committed through the harness");
        self.as_(node).reveal(id, outcome, nonce)
    }

    /// Hydrogen events emitted since the last call.
    pub fn events(&mut self) -> Vec<Event> {
        let all: Vec<_> = test::recorded_events().collect();
        let new = all[self.seen_events..]
            .iter()
            .filter(|e| {
                e.topics.first().map(|t| t.as_slice()) == Some(EVENT_SIGNATURE_TOPIC.as_slice())
            })
            .map(|e| {
                <Event as ink::scale::Decode>::decode(&mut &e.data[..])
                    .expect("event decodes as hydrogen_types::Event")
            })
            .collect();
        self.seen_events = all.len();
        new
    }
}
