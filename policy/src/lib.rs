//! # airlock-policy
//!
//! The pure policy of Airlock: the reviewed-config model and its strict
//! validation, the capability catalog the model sees, argument validation,
//! change-set construction and verification, identifier safety, the secret
//! detector, canonical JSON hashing and the fixed SQL statements.
//!
//! This crate owns *decisions*, never *effects*: it performs no I/O, spawns
//! nothing, reads no environment (callers inject look-ups), and has no async
//! code. Both the proposer and the executor evaluate the same functions, so
//! the executor's re-validation (invariant 5) is exactly the proposer's
//! construction run again on the executor's own copy of the config.

#![forbid(unsafe_code)]

pub mod aggregate_read;
pub mod args;
pub mod binding;
pub mod bounded_set;
pub mod candidates;
pub mod canonical;
pub mod catalog;
pub mod catalog_sql;
pub mod change_set;
pub mod column_type;
pub mod compensation;
pub mod config;
pub mod config_schema;
pub mod context;
pub mod db_error;
pub mod diagnostics;
pub mod draft;
pub mod drift;
pub mod explore;
pub mod freshness;
pub mod identifier;
pub mod list_read;
pub mod load;
pub mod notify;
pub mod prune;
pub mod quorum;
pub mod recipes;
pub mod schema_info;
pub mod secrets;
pub mod sensitive;
pub mod session_auth;
pub mod statement;
pub mod strict_json;
pub mod synapsor_keys;
pub mod write_effects;

pub use config::Config;
pub use diagnostics::{Diagnostic, Report, Severity};
pub use load::{load_config, load_config_str};

/// The repository's reference config (`tests/fixtures/reference/`), which
/// the unit tests of several modules load.
#[cfg(test)]
pub(crate) const REFERENCE_CONFIG: &str =
    include_str!("../../tests/fixtures/reference/airlock.reference.json");
