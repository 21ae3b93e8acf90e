//! The chain client: talks to a substrate-contracts-node running the
//! `hydrogen` ink! contract over WebSocket RPC (subxt 0.51).
//!
//! - [`ChainClient`]: connect, dry-run and submit contract calls with local
//!   per-signer nonces, wait for finality, decode failures into readable errors.
//! - [`Hydrogen`]: a deployed contract with one method per message; [`msg`]
//!   builds the messages themselves.
//! - [`Connection`]: the handle long-running processes hold, reconnected
//!   after a transport failure ([`ChainError::is_transport`]) under one policy.
//! - [`ContractBundle`] and [`Hydrogen::deploy`]: instantiate a `.contract` bundle.
//! - [`BlockEvents`], [`ChainClient::contract_event_stream`]: the contract's
//!   events per finalized block, live or from a stored block number.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hydrogen_sdk::chain::ChainError> {
//! use hydrogen_sdk::chain::{keypair_from_suri, ChainClient, Hydrogen, account_of};
//! let client = ChainClient::connect("ws://127.0.0.1:9944").await?;
//! let alice = keypair_from_suri("//Alice")?;
//! let hydrogen = Hydrogen::at(client, [0u8; 32].into() /* the contract's address */);
//! let balance = hydrogen.balance_of(account_of(&alice)).await?;
//! # Ok(()) }
//! ```

mod client;
mod connection;
mod contract;
mod contracts_api;
mod deploy;
#[cfg(feature = "test-util")]
pub mod devnode;
mod error;
mod events;
mod message;
mod nonce;
mod reveals;
mod ticker;

pub use client::{
    account_of, check_ws_url, keypair_from_suri, parse_account, ss58, ChainClient, ChainConfig,
    DryRun, Included, Submitted, DEPOSIT_MARGIN_PERCENT, GAS_MARGIN_PERCENT,
};
pub use connection::{Connection, RECONNECT_EVERY};
pub use contract::{constructor_input, msg, Hydrogen};
pub use contracts_api::{StorageDeposit, Weight};
pub use deploy::{ContractBundle, Deployed};
pub use error::{ChainError, LangError, Psp22Error};
pub use events::{contract_events, BlockEvents, ContractEvent, RawEvent};
pub use message::{selector, Message};
pub use nonce::NonceManager;
pub use reveals::Reveal;
pub use subxt_signer::sr25519::Keypair;
pub use ticker::{Ticker, TICKER_SURI};
