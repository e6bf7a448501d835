//! Guarded, exactly-once writeback (invariant 8): after a person approves,
//! the executor — and only the executor — makes exactly the approved change,
//! once, and records one terminal receipt.
//!
//! Three executors share one contract: `sql_update` (a guarded single-row
//! UPDATE with an idempotency receipt in the same transaction),
//! `http_handler` and `command_handler` (the application applies the change
//! and answers with a terminal receipt, keyed by the same idempotency key).

use airlock_policy::change_set::ChangeSet;
use airlock_policy::config::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod apply;
pub mod command_handler;
pub mod credentials;
pub mod dependencies;
pub mod fault;
pub mod http_handler;
pub mod payload;
pub mod receipt;
pub mod receipt_table;
pub mod sql_update;

/// One attempt to apply one approved proposal.
#[derive(Debug, Clone, Serialize)]
pub struct WritebackJob {
    /// `wbj_…`, new for every attempt.
    pub job_id: String,
    pub proposal_id: String,
    /// `<proposal_id>:<object_id>`: the same for every attempt at the same
    /// proposal, so a retried or crashed apply is recognised downstream.
    pub idempotency_key: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub proposal_hash: String,
    pub capability: String,
    pub executor: String,
    pub source_id: String,
    pub engine: Engine,
    pub evidence_id: Option<String>,
    /// The executor's own verified change set, as stored in the ledger.
    pub change_set: ChangeSet,
    /// The reviewed dependency rows `sql_update` locks and re-checks in
    /// its transaction (`proposal_freshness`); never sent to handlers.
    #[serde(skip)]
    pub dependencies: Vec<dependencies::LockedDependency>,
}

/// The terminal statuses of a writeback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// The change was made now.
    Applied,
    /// The change had already been made (a retry or a crash-restart).
    AlreadyApplied,
    /// The row changed since the proposal (or is gone): nothing was changed.
    Conflict,
    /// The change could not be made; nothing is known to have changed.
    Failed,
}

impl ReceiptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Applied => "applied",
            ReceiptStatus::AlreadyApplied => "already_applied",
            ReceiptStatus::Conflict => "conflict",
            ReceiptStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ReceiptStatus> {
        [
            ReceiptStatus::Applied,
            ReceiptStatus::AlreadyApplied,
            ReceiptStatus::Conflict,
            ReceiptStatus::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What one writeback attempt produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub status: ReceiptStatus,
    pub rows_affected: u64,
    pub previous_version: Option<Value>,
    pub new_version: Option<Value>,
    pub source_database_mutated: bool,
    /// A stable, safe code for failures and conflicts (`VERSION_CONFLICT`,
    /// `HANDLER_TIMEOUT`, `HANDLER_HTTP_500`…).
    pub safe_error_code: Option<String>,
    /// A short, redacted explanation for the operator (never a secret).
    pub detail: Option<String>,
}

impl Outcome {
    /// A failure that changed nothing.
    pub fn failed(code: &str, detail: impl Into<String>) -> Outcome {
        Outcome {
            status: ReceiptStatus::Failed,
            rows_affected: 0,
            previous_version: None,
            new_version: None,
            source_database_mutated: false,
            safe_error_code: Some(code.to_owned()),
            detail: Some(detail.into()),
        }
    }
}
