//! Hydrogen SDK: the protocol's off-chain half and the clients built on it.
//!
//! The on-chain vocabulary (events, errors, statuses, consensus rules) is
//! re-exported from [`hydrogen_types`] as [`types`].

pub use hydrogen_types as types;

pub mod app;
pub mod chain;
pub mod keyfile;
pub mod phash;
pub mod relay;
pub mod task;
