//! Typed messages of `airlock.ipc.v1`.
//!
//! A frame is `{"id": <u64>, "type": "<message type>", "body": {…}}`. The
//! client picks `id`; every response echoes it. Bodies are decoded into the
//! struct of their `type` with unknown fields rejected. Which role may send
//! which request is part of the contract ([`Request::allowed_for`]); the
//! executor enforces it.

use std::collections::BTreeMap;

use airlock_policy::change_set::ChangeSet;
use airlock_policy::context::TrustedContext;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ErrorBody, ErrorCode};
use crate::frame::{FrameError, parse_object};

/// The two roles, one per socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The MCP server: records reads and submits proposals.
    Proposer,
    /// A person's CLI: lists, approves, rejects.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Proposer => "proposer",
            Role::Operator => "operator",
        }
    }
}

/// Lifecycle of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    PendingApproval,
    Approved,
    Rejected,
    Expired,
    Applied,
    Conflict,
    Failed,
}

impl ProposalState {
    pub const ALL: &'static [ProposalState] = &[
        ProposalState::PendingApproval,
        ProposalState::Approved,
        ProposalState::Rejected,
        ProposalState::Expired,
        ProposalState::Applied,
        ProposalState::Conflict,
        ProposalState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::PendingApproval => "pending_approval",
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
            ProposalState::Expired => "expired",
            ProposalState::Applied => "applied",
            ProposalState::Conflict => "conflict",
            ProposalState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ProposalState> {
        ProposalState::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
    }
}

// ---------------------------------------------------------------------------
// Request bodies.

/// First message on every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Must be [`crate::PROTOCOL`].
    pub protocol: String,
    /// Must match the socket: `proposer` on proposer.sock, `operator` on operator.sock.
    pub role: Role,
    pub client_version: String,
}

/// How one bound parameter of a read was supplied — never its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamMeta {
    /// 1-based position in the statement.
    pub position: u32,
    /// `arg:<name>` or `trusted_context:tenant_id`.
    pub bound_from: String,
    /// JSON type of the bound value.
    pub json_type: String,
}

/// Proposer: record the evidence of one read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRead {
    pub capability: String,
    pub args: Map<String, Value>,
    pub context: TrustedContext,
    /// `sha256:` of the SQL text that was run.
    pub query_fingerprint: String,
    pub parameters: Vec<ParamMeta>,
    /// The visible columns of the rows returned (at most `MAX_ROWS_PER_READ`).
    pub rows: Vec<Map<String, Value>>,
    /// The signed token the request's tenant and principal come from
    /// (`http_claims` only); the executor verifies it again. Never logged
    /// or recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<String>,
}

/// Proposer: submit a change set for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitProposal {
    pub change_set: ChangeSet,
    /// The evidence of the read the change set was built from.
    pub evidence_id: Option<String>,
    /// The signed token the request's tenant and principal come from
    /// (`http_claims` only); the executor verifies it again. Never logged
    /// or recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<String>,
}

/// Proposer or operator: one proposal by id (operators may also say `latest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalRef {
    pub proposal_id: String,
}

/// Operator: one evidence record by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRef {
    pub evidence_id: String,
}

/// Operator: list proposals, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListProposals {
    #[serde(default)]
    pub status: Option<ProposalState>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Operator: approve a pending proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    pub proposal_id: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Operator: reject a pending proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    pub proposal_id: String,
    pub reason: String,
}

/// Operator: propose the reviewed compensation of an applied change of a
/// reversible capability (`airlock revert`). The executor records a new
/// pending proposal whose change set is the inverse it captured when it
/// applied `proposal_id`; it writes nothing to the source and approves
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revert {
    /// The applied proposal to undo (its `wrp_…` id; never `latest`).
    pub proposal_id: String,
    /// Why: shown to the approvers and kept in the change set.
    pub reason: String,
}

/// Operator: ledger events after a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSince {
    /// Return events with `seq` greater than this (0 = from the start).
    pub since: u64,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Operator: move the finished start of the ledger into a new archive file
/// (docs/reliability.md, "Pruning"). Only the executor's own OS user, or
/// an approver holding the `ledger_admin` role by name, may send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneLedger {
    /// RFC 3339 time: finished proposals whose last event is before it move.
    pub before: String,
    /// Absolute path of the archive to create (the executor writes it, as
    /// its own OS user, mode 0600); it must not exist.
    pub archive: String,
}

/// The longest `archive` path a prune accepts, in bytes (Linux's PATH_MAX).
pub const MAX_ARCHIVE_PATH_BYTES: usize = 4096;

impl PruneLedger {
    /// The request's shape, before the executor looks at the ledger or the
    /// file system: `archive` is an absolute path of plain components (no
    /// `.` or `..`, no NUL) within [`MAX_ARCHIVE_PATH_BYTES`], naming a file.
    pub fn check_archive_path(&self) -> Result<(), String> {
        let a = &self.archive;
        if a.len() > MAX_ARCHIVE_PATH_BYTES {
            return Err(format!(
                "the archive path is longer than {MAX_ARCHIVE_PATH_BYTES} bytes"
            ));
        }
        if !a.starts_with('/') || a.ends_with('/') {
            return Err("the archive must be an absolute path to a file".to_owned());
        }
        if a.contains('\0') {
            return Err("the archive path contains a NUL byte".to_owned());
        }
        if a.split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(
                "the archive path must not contain empty, `.` or `..` components".to_owned(),
            );
        }
        Ok(())
    }
}

/// Proposer: reserve the budgets one Scoped Explore plan needs, before
/// its query runs. The executor validates the plan against its own
/// boundary, charges a query and (for a new cohort-protected variant) a
/// differencing variant, and holds the plan's most cells until commit or
/// release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreReserve {
    pub context: TrustedContext,
    /// The plan as the model sent it (at most
    /// `airlock_policy::explore::MAX_PLAN_BYTES` as JSON).
    pub plan: Value,
    /// The signed token the request's tenant and principal come from
    /// (`http_claims` only); the executor verifies it again. Never logged
    /// or recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<String>,
}

/// Proposer: the reserved plan's query ran; this is what its release
/// would contain. The executor refuses a release that, with what this
/// tenant and principal were already shown, would expose a suppressed
/// group by subtraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreCommit {
    pub reservation_id: String,
    /// Cells the release holds (at most what was reserved).
    pub cells: u64,
    /// Groups suppressed for being below the minimum cohort.
    pub suppressed_groups: u64,
    /// Every group of the cohort is in the release.
    pub complete: bool,
}

/// Proposer: the reserved plan's query did not run or failed; nothing of
/// the reservation is charged but the query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreRelease {
    pub reservation_id: String,
    /// Why (`source_unavailable`, `source_timeout`, `too_many_groups`, …).
    pub reason: String,
}

/// Operator: the most recent Explore query audit entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreAuditQuery {
    /// 1 to 1000.
    pub limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// A request with no fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

// ---------------------------------------------------------------------------
// Response bodies.

/// The peer as the kernel reported it (SO_PEERCRED at connect time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerInfo {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub user: Option<String>,
}

/// Limits the executor enforces, advertised in `welcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsInfo {
    pub max_frame_bytes: u64,
    pub max_json_depth: u64,
    pub max_rows_per_read: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    pub protocol: String,
    pub role: Role,
    pub server_version: String,
    pub peer: PeerInfo,
    /// `sha256:` of the executor's config file: a proposer whose own config
    /// hashes differently knows its proposals may be refused.
    pub config_hash: String,
    pub limits: LimitsInfo,
}

/// What is left of a tenant and principal's Explore budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreBudgets {
    pub queries: u64,
    pub cells: u64,
    /// Differencing variants left for the plan's resource.
    pub variants: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreReserved {
    pub reservation_id: String,
    /// The plan is an exact replay of a variant already charged.
    pub replay: bool,
    pub remaining: ExploreBudgets,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreCommitted {
    pub remaining: ExploreBudgets,
}

/// One Explore query as the ledger audits it: the normalized plan and the
/// outcome, never a row value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreAuditEntry {
    pub at: String,
    pub tenant_id: String,
    pub principal: String,
    pub resource: Option<String>,
    /// `sha256:` of the normalized plan (`None` for a plan refused as invalid).
    pub variant: Option<String>,
    /// The normalized plan (`None` for a plan refused as invalid).
    pub plan: Option<Value>,
    /// `released`, `suppressed` (released with groups withheld, or all
    /// withheld), `refused` or `failed`.
    pub outcome: String,
    /// Why it was refused or failed (a stable code).
    pub reason: Option<String>,
    pub cells: u64,
    pub suppressed_groups: u64,
    /// A source query ran for it: the plan was reserved and not given back
    /// before its query (true also for an expired reservation, whose query
    /// may have run). False for every plan refused at reservation.
    pub query_ran: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreAudit {
    pub entries: Vec<ExploreAuditEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRecorded {
    pub evidence_id: String,
    pub recorded_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalRecorded {
    pub proposal_id: String,
    pub state: ProposalState,
    pub proposal_hash: String,
    /// The executor's own change set, as stored.
    pub change_set: ChangeSet,
    pub evidence_id: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

/// An OS identity that acted (from SO_PEERCRED, never from a message field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub uid: u32,
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalSummary {
    pub proposal_id: String,
    pub capability: String,
    pub tenant_id: String,
    pub object_id: String,
    pub state: ProposalState,
    pub required_role: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    /// Approvals so far of the distinct approvals the capability requires
    /// (`approval.required_approvals`); absent when it requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Quorum>,
}

/// Quorum progress: `approvals` distinct approvers of `required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quorum {
    pub approvals: u32,
    pub required: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalStatus {
    pub proposal_id: String,
    pub state: ProposalState,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposals {
    pub items: Vec<ProposalSummary>,
}

/// An approval or rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub proposal_id: String,
    /// `approved` or `rejected`; `pending_approval` for an approval that
    /// was counted towards a quorum not yet reached.
    pub state: ProposalState,
    pub by: Actor,
    pub at: String,
    pub note: Option<String>,
    /// The quorum after this decision (absent when one approval suffices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Quorum>,
}

/// Evidence as recorded by the executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceInfo {
    pub evidence_id: String,
    pub capability: String,
    pub tenant_id: String,
    pub principal: String,
    pub query_fingerprint: String,
    pub parameters: Vec<ParamMeta>,
    pub rows: Vec<Map<String, Value>>,
    pub recorded_by: Actor,
    pub recorded_at: String,
}

/// One evidence record and the proposals that cite it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRecord {
    pub evidence: EvidenceInfo,
    /// The proposals built on this read, oldest first.
    pub cited_by: Vec<ProposalSummary>,
}

/// Whether a proposal's target row still is what the proposal was built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// Every guard still holds: the version and the before-values match.
    Current,
    /// Some guard no longer holds (`changed` names them).
    Changed,
    /// The row is gone, or belongs to another tenant now.
    Gone,
    /// The row could not be re-read (`detail` says why); nothing is known.
    Unavailable,
}

/// Answers `check_freshness`: the target row re-read now with the
/// executor's own connection, checked against the proposal's guards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessReport {
    pub proposal_id: String,
    pub freshness: Freshness,
    /// The guards that failed: `version`, `before:<col>`, `from:<col>`,
    /// `row:<col>`. Empty unless `changed`.
    pub changed: Vec<String>,
    /// Why the row could not be re-read (`unavailable` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the row was re-read (RFC 3339, UTC).
    pub checked_at: String,
    /// Each reviewed dependency row (`proposal_freshness`), re-read too;
    /// absent when the proposal has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DependencyFreshness>,
}

/// One dependency row re-read by `check_freshness`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyFreshness {
    pub id: String,
    /// `current`, `changed` (another version), `gone` or `unavailable`.
    pub freshness: Freshness,
}

/// A reviewed dependency row of a proposal, as the executor found it when
/// it recorded the proposal (`proposal_freshness`): where it is, and its
/// version then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyVersion {
    pub id: String,
    /// The read capability the row is found through.
    pub capability: String,
    pub schema: String,
    pub table: String,
    pub primary_key: String,
    pub tenant_key: Option<String>,
    /// The row's key (the proposal argument's value).
    pub key: Value,
    pub version_column: String,
    /// The version as text (`None`: SQL NULL).
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalDetail {
    pub summary: ProposalSummary,
    pub proposal_hash: String,
    pub change_set: ChangeSet,
    pub principal: String,
    pub proposed_by: Actor,
    pub evidence: Option<EvidenceInfo>,
    pub decisions: Vec<Decision>,
    /// The reviewed dependency rows and their versions at proposal time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DependencyVersion>,
    /// The compensations (`airlock revert`) recorded for this proposal,
    /// oldest first (the other direction of the link is the change set's
    /// `compensation.reverts_proposal_id`). Filled by `show_proposal` and
    /// `replay`; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compensated_by: Vec<String>,
}

/// One ledger event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub seq: u64,
    pub at: String,
    /// `read_recorded`, `proposal_recorded`, `approved`, `rejected`, …
    pub kind: String,
    pub proposal_id: Option<String>,
    pub evidence_id: Option<String>,
    pub actor: Option<Actor>,
    /// This event's link in the hash chain.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    pub items: Vec<Event>,
    /// Pass as `since` to continue.
    pub next_cursor: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsReport {
    /// Proposal count per state.
    pub proposals: BTreeMap<String, u64>,
    pub evidence: u64,
    pub events: u64,
    pub connections: u64,
}

/// Where a prune stopped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneHold {
    /// `end` (nothing was left behind), `unfinished` (`proposal_id` is not
    /// finished) or `recent` (event `seq` is on or after `before`).
    pub reason: String,
    pub proposal_id: Option<String>,
    pub seq: Option<u64>,
}

/// The outcome of a `prune_ledger`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneReport {
    /// The archive written; `None` when nothing could be pruned (then no
    /// file was created and the ledger is unchanged).
    pub archive: Option<String>,
    pub before: String,
    /// Events, proposals and reads moved into the archive.
    pub events: u64,
    pub proposals: u64,
    pub evidence: u64,
    /// The archive's first and last event (0 when nothing moved).
    pub first_seq: u64,
    pub through_seq: u64,
    /// The hash of the archive's last event: the ledger continues from it.
    pub through_hash: Option<String>,
    /// The `ledger_pruned` event that records the prune in the ledger.
    pub prune_event: Option<Event>,
    pub held_by: PruneHold,
}

/// The outcome of an `apply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritebackResult {
    pub proposal_id: String,
    /// The proposal's state afterwards (`applied`, `conflict` or `failed`).
    pub state: ProposalState,
    /// This apply's outcome: `applied`, `already_applied`, `conflict` or `failed`.
    pub status: String,
    /// The `synapsor.writeback-job.v1` object of this attempt (absent when
    /// the proposal had been applied already and nothing ran).
    pub job: Option<Value>,
    /// The `synapsor.execution-receipt.v1` object.
    pub receipt: Value,
    /// A short, redacted note for the operator.
    pub detail: Option<String>,
}

/// Everything the ledger holds about one proposal, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayStory {
    pub proposal: ProposalDetail,
    /// The proposal's events (and its evidence's), oldest first.
    pub events: Vec<Event>,
    /// Writeback attempts: job id, attempt, executor, idempotency key, who started it, when.
    pub jobs: Vec<Value>,
    /// Terminal receipts (`synapsor.execution-receipt.v1`, plus `detail`).
    pub receipts: Vec<Value>,
}

/// Operator: send a test notification (it carries no data) to one sink,
/// or to every active sink when `sink` is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestNotification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
}

/// One sink's answer to a test notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkTest {
    pub sink: String,
    /// `webhook` or `jsonl`.
    pub kind: String,
    pub notification_id: String,
    pub delivered: bool,
    /// The webhook's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What happened, without the URL or the key.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationTestReport {
    pub results: Vec<SinkTest>,
}

/// One configured sink and its deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkStatus {
    pub sink: String,
    /// `webhook` or `jsonl`.
    pub kind: String,
    /// Whether it receives notifications (the section and the sink are enabled).
    pub active: bool,
    pub pending: u64,
    pub delivered: u64,
    /// Given up after the sink's last attempt.
    pub dead: u64,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<String>,
    pub oldest_pending_at: Option<String>,
    /// The last ledger event this sink has looked at.
    pub through_seq: Option<u64>,
}

/// Answers `notification_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationStatus {
    /// The config's `notifications.enabled`.
    pub enabled: bool,
    pub sinks: Vec<SinkStatus>,
}

// ---------------------------------------------------------------------------
// The message sets.

macro_rules! message_set {
    (
        $(#[$meta:meta])*
        $name:ident { $( $variant:ident($ty:ty) = $tag:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        // One message exists per request in flight; boxing buys nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name { $( $variant($ty) ),* }

        impl $name {
            /// Every `type` of this set, for documentation coverage.
            pub const TYPES: &'static [&'static str] = &[$($tag),*];

            /// This message's `type`.
            pub fn type_name(&self) -> &'static str {
                match self { $( $name::$variant(_) => $tag ),* }
            }

            fn body(&self) -> Value {
                let body = match self { $( $name::$variant(b) => serde_json::to_value(b) ),* };
                body.unwrap_or(Value::Null)
            }

            fn from_parts(kind: &str, body: Value) -> Result<Self, DecodeError> {
                match kind {
                    $( $tag => serde_json::from_value::<$ty>(body)
                        .map($name::$variant)
                        .map_err(|e| DecodeError::Invalid(format!("{}: {e}", $tag))), )*
                    other => Err(DecodeError::UnknownType(other.chars().take(64).collect())),
                }
            }
        }
    };
}

message_set! {
    /// Everything a client may send.
    Request {
        Hello(Hello) = "hello",
        RecordRead(RecordRead) = "record_read",
        SubmitProposal(SubmitProposal) = "submit_proposal",
        ProposalStatus(ProposalRef) = "proposal_status",
        ListProposals(ListProposals) = "list_proposals",
        ShowProposal(ProposalRef) = "show_proposal",
        Approve(Approve) = "approve",
        Reject(Reject) = "reject",
        EventsSince(EventsSince) = "events",
        Stats(Empty) = "stats",
        Apply(ProposalRef) = "apply",
        Replay(ProposalRef) = "replay",
        ShowEvidence(EvidenceRef) = "show_evidence",
        CheckFreshness(ProposalRef) = "check_freshness",
        PruneLedger(PruneLedger) = "prune_ledger",
        NotificationStatus(Empty) = "notification_status",
        TestNotification(TestNotification) = "test_notification",
        Revert(Revert) = "revert",
        ExploreReserve(ExploreReserve) = "explore_reserve",
        ExploreCommit(ExploreCommit) = "explore_commit",
        ExploreRelease(ExploreRelease) = "explore_release",
        ExploreAudit(ExploreAuditQuery) = "explore_audit",
    }
}

message_set! {
    /// Everything the executor may answer.
    Response {
        Welcome(Welcome) = "welcome",
        ReadRecorded(ReadRecorded) = "read_recorded",
        ProposalRecorded(ProposalRecorded) = "proposal_recorded",
        ProposalStatus(ProposalStatus) = "proposal_status",
        Proposals(Proposals) = "proposals",
        Proposal(ProposalDetail) = "proposal",
        Decision(Decision) = "decision",
        Events(Events) = "events",
        Stats(StatsReport) = "stats",
        Writeback(WritebackResult) = "writeback",
        Replay(ReplayStory) = "replay",
        Evidence(EvidenceRecord) = "evidence",
        Freshness(FreshnessReport) = "freshness",
        Pruned(PruneReport) = "pruned",
        NotificationStatus(NotificationStatus) = "notification_status",
        NotificationTest(NotificationTestReport) = "notification_test",
        ExploreReserved(ExploreReserved) = "explore_reserved",
        ExploreCommitted(ExploreCommitted) = "explore_committed",
        ExploreReleased(Empty) = "explore_released",
        ExploreAudit(ExploreAudit) = "explore_audit",
        Error(ErrorBody) = "error",
    }
}

impl Request {
    /// Whether a connection of `role` may send this request (`hello` is
    /// allowed once, before anything else, on either socket).
    pub fn allowed_for(&self, role: Role) -> bool {
        match self {
            Request::Hello(_) => true,
            Request::RecordRead(_)
            | Request::SubmitProposal(_)
            | Request::ProposalStatus(_)
            | Request::ExploreReserve(_)
            | Request::ExploreCommit(_)
            | Request::ExploreRelease(_) => role == Role::Proposer,
            Request::ListProposals(_)
            | Request::ShowProposal(_)
            | Request::Approve(_)
            | Request::Reject(_)
            | Request::EventsSince(_)
            | Request::Stats(_)
            | Request::Apply(_)
            | Request::Replay(_)
            | Request::ShowEvidence(_)
            | Request::CheckFreshness(_)
            | Request::PruneLedger(_)
            | Request::NotificationStatus(_)
            | Request::TestNotification(_)
            | Request::Revert(_)
            | Request::ExploreAudit(_) => role == Role::Operator,
        }
    }
}

/// Why a frame could not become a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Frame(String),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("invalid message: {0}")]
    Invalid(String),
}

impl DecodeError {
    /// The protocol error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Frame(_) => ErrorCode::MalformedFrame,
            DecodeError::UnknownType(_) => ErrorCode::UnknownMessage,
            DecodeError::Invalid(_) => ErrorCode::InvalidRequest,
        }
    }
}

impl From<FrameError> for DecodeError {
    fn from(e: FrameError) -> Self {
        DecodeError::Frame(e.to_string())
    }
}

/// Whether `s` is a W3C trace-context `traceparent` (version 00):
/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower case,
/// neither id all zeros.
pub fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// Split a frame body into (id, type, body, traceparent), strictly. Only
/// requests may carry a `traceparent` (`with_trace`).
#[allow(clippy::type_complexity)]
fn envelope(
    bytes: &[u8],
    with_trace: bool,
) -> Result<(u64, String, Value, Option<String>), (Option<u64>, DecodeError)> {
    let mut map = parse_object(bytes).map_err(|e| (None, e.into()))?;
    let id = map.get("id").and_then(Value::as_u64);
    let fail = |msg: &str| (id, DecodeError::Frame(msg.to_owned()));
    for key in map.keys() {
        if !(matches!(key.as_str(), "id" | "type" | "body") || (with_trace && key == "traceparent"))
        {
            return Err(fail(&format!(
                "unknown envelope field `{}`",
                key.chars().take(64).collect::<String>()
            )));
        }
    }
    let id = id.ok_or_else(|| fail("`id` must be a non-negative integer"))?;
    let kind = match map.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err(fail("`type` must be a string")),
    };
    let body = map.remove("body").ok_or_else(|| fail("missing `body`"))?;
    if !body.is_object() {
        return Err(fail("`body` must be an object"));
    }
    let traceparent = match map.remove("traceparent") {
        None => None,
        Some(Value::String(t)) if is_traceparent(&t) => Some(t),
        Some(_) => {
            return Err(fail(
                "`traceparent` must be a W3C trace-context traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
            ));
        }
    };
    Ok((id, kind, body, traceparent))
}

/// A request with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFrame {
    pub id: u64,
    pub request: Request,
    /// The W3C `traceparent` of the caller's span, when it exports traces:
    /// the executor's spans join the same trace. Carries no authority.
    pub traceparent: Option<String>,
}

impl RequestFrame {
    /// Decode strictly; on failure, the id (if it could be read) and why.
    pub fn decode(bytes: &[u8]) -> Result<RequestFrame, (Option<u64>, DecodeError)> {
        let (id, kind, body, traceparent) = envelope(bytes, true)?;
        let request = Request::from_parts(&kind, body).map_err(|e| (Some(id), e))?;
        Ok(RequestFrame {
            id,
            request,
            traceparent,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"id": self.id, "type": self.request.type_name(), "body": self.request.body()});
        if let Some(t) = &self.traceparent {
            v["traceparent"] = Value::String(t.clone());
        }
        v
    }

    pub fn encode(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }
}

/// A response with the id of the request it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFrame {
    pub id: u64,
    pub response: Response,
}

impl ResponseFrame {
    pub fn decode(bytes: &[u8]) -> Result<ResponseFrame, (Option<u64>, DecodeError)> {
        let (id, kind, body, _) = envelope(bytes, false)?;
        let response = Response::from_parts(&kind, body).map_err(|e| (Some(id), e))?;
        Ok(ResponseFrame { id, response })
    }

    pub fn error(id: u64, body: ErrorBody) -> ResponseFrame {
        ResponseFrame {
            id,
            response: Response::Error(body),
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({"id": self.id, "type": self.response.type_name(), "body": self.response.body()})
    }

    pub fn encode(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who may send what, written out independently of `allowed_for`:
    /// (type, proposer may send it, operator may send it).
    const ROLE_TABLE: &[(&str, bool, bool)] = &[
        ("hello", true, true),
        ("record_read", true, false),
        ("submit_proposal", true, false),
        ("proposal_status", true, false),
        ("list_proposals", false, true),
        ("show_proposal", false, true),
        ("approve", false, true),
        ("reject", false, true),
        ("events", false, true),
        ("stats", false, true),
        ("apply", false, true),
        ("replay", false, true),
        ("show_evidence", false, true),
        ("check_freshness", false, true),
        ("prune_ledger", false, true),
        ("notification_status", false, true),
        ("test_notification", false, true),
        ("revert", false, true),
        ("explore_reserve", true, false),
        ("explore_commit", true, false),
        ("explore_release", true, false),
        ("explore_audit", false, true),
    ];

    /// The golden request of `kind` from `fixtures/`.
    fn request(kind: &str) -> Request {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(format!("request.{kind}.json"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let frame = RequestFrame::decode(&bytes).unwrap_or_else(|(_, e)| panic!("{kind}: {e}"));
        assert_eq!(frame.request.type_name(), kind);
        frame.request
    }

    #[test]
    fn the_role_table_is_every_request_type_exactly_once() {
        let listed: Vec<&str> = ROLE_TABLE.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(
            listed,
            Request::TYPES,
            "same types, same order, no duplicates"
        );
        let unique: std::collections::BTreeSet<&str> = listed.iter().copied().collect();
        assert_eq!(unique.len(), ROLE_TABLE.len());
    }

    #[test]
    fn allowed_for_is_the_role_table() {
        for (kind, proposer, operator) in ROLE_TABLE {
            let req = request(kind);
            assert_eq!(
                req.allowed_for(Role::Proposer),
                *proposer,
                "{kind} as proposer"
            );
            assert_eq!(
                req.allowed_for(Role::Operator),
                *operator,
                "{kind} as operator"
            );
        }
        // Only `hello` is open to both roles; every other type to exactly one.
        let both: Vec<&str> = ROLE_TABLE
            .iter()
            .filter(|(_, p, o)| *p && *o)
            .map(|(t, _, _)| *t)
            .collect();
        assert_eq!(both, ["hello"]);
    }

    #[test]
    fn role_wire_names() {
        assert_eq!(Role::Proposer.as_str(), "proposer");
        assert_eq!(Role::Operator.as_str(), "operator");
        for (role, name) in [(Role::Proposer, "proposer"), (Role::Operator, "operator")] {
            assert_eq!(serde_json::to_value(role).unwrap(), Value::from(name));
        }
    }

    const STATES: &[(ProposalState, &str)] = &[
        (ProposalState::PendingApproval, "pending_approval"),
        (ProposalState::Approved, "approved"),
        (ProposalState::Rejected, "rejected"),
        (ProposalState::Expired, "expired"),
        (ProposalState::Applied, "applied"),
        (ProposalState::Conflict, "conflict"),
        (ProposalState::Failed, "failed"),
    ];

    #[test]
    fn proposal_state_wire_names_and_parse() {
        let listed: Vec<ProposalState> = STATES.iter().map(|(s, _)| *s).collect();
        assert_eq!(listed, ProposalState::ALL);
        for (state, name) in STATES {
            assert_eq!(state.as_str(), *name);
            assert_eq!(ProposalState::parse(name), Some(*state), "{name}");
            assert_eq!(serde_json::to_value(state).unwrap(), Value::from(*name));
        }
        for bad in ["", "Approved", "pending", "approved ", "xyzzy"] {
            assert_eq!(ProposalState::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decode_errors_map_to_their_codes_and_messages() {
        let frame = DecodeError::from(FrameError::Empty);
        assert_eq!(frame, DecodeError::Frame("empty frame".into()));
        assert_eq!(frame.code(), ErrorCode::MalformedFrame);
        let unknown = DecodeError::UnknownType("nope".into());
        assert_eq!(unknown.code(), ErrorCode::UnknownMessage);
        assert_eq!(unknown.to_string(), "unknown message type `nope`");
        let invalid = DecodeError::Invalid("approve: x".into());
        assert_eq!(invalid.code(), ErrorCode::InvalidRequest);
        assert_eq!(invalid.to_string(), "invalid message: approve: x");
    }

    #[test]
    fn request_frames_encode_to_their_envelope() {
        let frame = RequestFrame {
            id: 6,
            request: Request::Stats(Empty {}),
            traceparent: None,
        };
        assert_eq!(
            String::from_utf8(frame.encode()).unwrap(),
            r#"{"id":6,"type":"stats","body":{}}"#
        );
        assert_eq!(RequestFrame::decode(&frame.encode()).unwrap(), frame);
        let approve = RequestFrame {
            id: 1,
            request: Request::Approve(Approve {
                proposal_id: "wrp_1".into(),
                note: None,
            }),
            traceparent: None,
        };
        assert_eq!(
            String::from_utf8(approve.encode()).unwrap(),
            r#"{"id":1,"type":"approve","body":{"proposal_id":"wrp_1","note":null}}"#
        );
    }

    #[test]
    fn traceparents_are_exactly_w3c_version_00() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_traceparent(good));
        assert!(is_traceparent(
            "00-00000000000000000000000000000001-0000000000000001-00"
        ));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9/2b7-01",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn a_request_may_carry_a_traceparent_and_a_response_may_not() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let frame = RequestFrame {
            id: 6,
            request: Request::Stats(Empty {}),
            traceparent: Some(t.into()),
        };
        assert_eq!(
            String::from_utf8(frame.encode()).unwrap(),
            format!(r#"{{"id":6,"type":"stats","body":{{}},"traceparent":"{t}"}}"#)
        );
        assert_eq!(RequestFrame::decode(&frame.encode()).unwrap(), frame);
        let bad = br#"{"id":6,"type":"stats","body":{},"traceparent":"00-x"}"#;
        let (id, err) = RequestFrame::decode(bad).unwrap_err();
        assert_eq!(id, Some(6));
        assert!(
            matches!(err, DecodeError::Frame(ref m) if m.starts_with("`traceparent` must be")),
            "{err:?}"
        );
        let not_string = br#"{"id":6,"type":"stats","body":{},"traceparent":1}"#;
        assert!(RequestFrame::decode(not_string).is_err());
        let response = format!(r#"{{"id":6,"type":"stats","body":{{}},"traceparent":"{t}"}}"#);
        let (_, err) = ResponseFrame::decode(response.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Frame("unknown envelope field `traceparent`".into())
        );
    }

    #[test]
    fn prune_ledger_encodes_strictly() {
        let frame = RequestFrame {
            id: 9,
            request: Request::PruneLedger(PruneLedger {
                before: "2026-01-01T00:00:00Z".into(),
                archive: "/var/lib/airlock/archive-2025.db".into(),
            }),
            traceparent: None,
        };
        assert_eq!(
            String::from_utf8(frame.encode()).unwrap(),
            r#"{"id":9,"type":"prune_ledger","body":{"before":"2026-01-01T00:00:00Z","archive":"/var/lib/airlock/archive-2025.db"}}"#
        );
        assert_eq!(RequestFrame::decode(&frame.encode()).unwrap(), frame);
        for bad in [
            r#"{"id":1,"type":"prune_ledger","body":{"before":"2026-01-01T00:00:00Z"}}"#,
            r#"{"id":1,"type":"prune_ledger","body":{"archive":"/a"}}"#,
            r#"{"id":1,"type":"prune_ledger","body":{"before":"x","archive":"/a","force":true}}"#,
            r#"{"id":1,"type":"prune_ledger","body":{"before":1,"archive":"/a"}}"#,
        ] {
            let (id, e) = RequestFrame::decode(bad.as_bytes()).unwrap_err();
            assert_eq!(
                (id, e.code()),
                (Some(1), ErrorCode::InvalidRequest),
                "{bad}"
            );
        }
    }

    #[test]
    fn pruned_encodes_every_field() {
        let report = PruneReport {
            archive: Some("/a.db".into()),
            before: "2026-01-01T00:00:00.000Z".into(),
            events: 7,
            proposals: 2,
            evidence: 2,
            first_seq: 1,
            through_seq: 7,
            through_hash: Some("sha256:aa".into()),
            prune_event: None,
            held_by: PruneHold {
                reason: "unfinished".into(),
                proposal_id: Some("wrp_1".into()),
                seq: None,
            },
        };
        let frame = ResponseFrame {
            id: 3,
            response: Response::Pruned(report),
        };
        assert_eq!(
            String::from_utf8(frame.encode()).unwrap(),
            r#"{"id":3,"type":"pruned","body":{"archive":"/a.db","before":"2026-01-01T00:00:00.000Z","events":7,"proposals":2,"evidence":2,"first_seq":1,"through_seq":7,"through_hash":"sha256:aa","prune_event":null,"held_by":{"reason":"unfinished","proposal_id":"wrp_1","seq":null}}}"#
        );
        assert_eq!(ResponseFrame::decode(&frame.encode()).unwrap(), frame);
    }

    #[test]
    fn an_archive_path_is_an_absolute_plain_file_path() {
        let check = |archive: &str| {
            PruneLedger {
                before: "2026-01-01T00:00:00Z".into(),
                archive: archive.into(),
            }
            .check_archive_path()
        };
        for good in ["/a", "/var/lib/airlock/archive-2025.db", "/a/.b/c..d/e.f"] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        let longest = format!("/{}", "a".repeat(MAX_ARCHIVE_PATH_BYTES - 1));
        assert_eq!(check(&longest), Ok(()));
        assert_eq!(
            check(&format!("{longest}a")).unwrap_err(),
            "the archive path is longer than 4096 bytes"
        );
        for relative in ["", "a", "./a", "a/b", "/", "/a/"] {
            assert_eq!(
                check(relative).unwrap_err(),
                "the archive must be an absolute path to a file",
                "{relative:?}"
            );
        }
        assert_eq!(
            check("/a\0b").unwrap_err(),
            "the archive path contains a NUL byte"
        );
        for odd in ["//a", "/a//b", "/./a", "/a/../b", "/a/..", "/a/./b"] {
            assert_eq!(
                check(odd).unwrap_err(),
                "the archive path must not contain empty, `.` or `..` components",
                "{odd:?}"
            );
        }
    }

    #[test]
    fn response_frames_encode_to_their_envelope() {
        let frame = ResponseFrame::error(7, ErrorBody::new(ErrorCode::Busy, "later"));
        assert_eq!(
            String::from_utf8(frame.encode()).unwrap(),
            r#"{"id":7,"type":"error","body":{"code":"busy","message":"later"}}"#
        );
        assert_eq!(ResponseFrame::decode(&frame.encode()).unwrap(), frame);
    }
}
