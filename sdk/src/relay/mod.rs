//! The relay's protocol, shared by the relay (`hydrogen-relay`), the node
//! daemon and apps: request signing ([`auth`]), the error answers
//! ([`ErrorBody`], [`code`]), the framed images body ([`frames`]) and
//! [`RelayClient`].
//!
//! Endpoints (all under the relay's base URL, all signed except the last
//! three; see `relay/README.md` for the full description):
//!
//! | request | who | answer |
//! |---|---|---|
//! | `PUT /v1/tasks/{id}/args` | the task's creator | 201; body hashes to `args_hash`, valid task JSON; write-once |
//! | `GET /v1/tasks/{id}/args` | creator, selected nodes | the uploaded bytes |
//! | `PUT /v1/tasks/{id}/images` | the designated uploader, task `Succeeded` | 201; [`frames`] body of PNGs whose pHashes are the result |
//! | `GET /v1/tasks/{id}/images/{n}` | creator | one PNG |
//! | `GET /v1/tasks/{id}/images` | creator | all PNGs, [`frames`] body |
//! | `GET /v1/tasks/{id}/receipt` | anyone signed | the relay's [`receipt`] for the stored images, hex |
//! | `GET /healthz`, `/readyz`, `/metrics` | anyone | liveness, readiness, Prometheus text |
//!
//! `POST` is accepted wherever `PUT` is.

pub mod auth;
mod client;
mod error;
pub mod frames;
pub mod receipt;

pub use client::RelayClient;
pub use error::{code, ErrorBody, RelayError};
