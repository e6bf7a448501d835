//! # airlock-executor
//!
//! The executor is the only Airlock process that holds write credentials
//! and handler tokens, the only writer of the ledger, and the enforcer of
//! human approval. It also hosts the operator CLI `airlock`.
//!
//! It must never take authority from what a proposer sends: every proposal
//! is re-verified against the executor's own config, the tenant is bound to
//! what the connecting peer may claim, ids and states are assigned here, and
//! approval is accepted only from authorized OS identities on the operator
//! socket.

#![forbid(unsafe_code)]

pub mod authority;
pub mod cli;
pub mod config_file;
pub mod connection;
pub mod daemon;
pub mod daemon_cli;
pub mod explore;
pub mod fleet;
pub mod group_commit;
pub mod hardening;
pub mod intake;
pub mod ledger;
pub mod ledger_location;
pub mod lifecycle;
pub mod log_fields;
pub mod metrics_endpoint;
pub mod notify;
pub mod peer_auth;
pub mod refusal_log;
pub mod revert;
pub mod review;
pub mod secret_token;
pub mod secure_path;
pub mod writeback;
