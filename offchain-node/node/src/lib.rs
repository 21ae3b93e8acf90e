//! `hydrogen-node`: the program a node runner runs. It holds the node's key,
//! stakes and joins, follows the chain, runs each task it is selected for on
//! the Burn engine, commits and reveals the images' pHashes, uploads the
//! images when it is the uploader, and survives crashes: every task's state
//! lives in a redb database, written before any transaction it leads to.
//!
//! - [`cli`]: the command line; [`config`]: TOML plus `HYDROGEN_NODE_*`.
//! - [`keys`]: the key file (0600, optionally passphrase-encrypted), the
//!   SDK's [`hydrogen_sdk::keyfile`].
//! - [`daemon`]: `run`; [`watcher`]: finalized events; [`executor`]: one
//!   task's steps; [`task`]: its persisted states; [`store`]: the database.
//! - [`engine`]: the `Engine` trait and the Burn engine; [`models`]: the
//!   models directory; [`sources`]: models found there, on a mirror or at a
//!   URL (downloads, cache); [`capacity`]: GPU name and memory.
//! - [`membership`]: join, pause, resume, quit, entropy; [`status`]: the
//!   JSON status and Prometheus metrics server.

pub mod capacity;
pub mod chain;
pub mod cli;
pub mod config;
pub mod crash;
pub mod daemon;
pub mod engine;
pub mod executor;
pub use hydrogen_sdk::keyfile as keys;
pub mod membership;
pub mod models;
pub mod relay;
pub mod sources;
pub mod status;
pub mod store;
pub mod task;
pub mod watcher;
