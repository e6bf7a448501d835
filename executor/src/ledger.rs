//! The ledger: an append-only SQLite database (WAL) of everything the
//! executor accepted — read evidence, proposals, decisions — with a hash
//! chain over its events that `airlock ledger verify` recomputes.
//!
//! Rows are only ever inserted. A proposal's state is derived from the rows
//! that reference it (decision, expiry), so no old row is rewritten. The
//! ledger has no unverified bytes: every column of every record row is
//! either carried in its event's payload or is one of the event's own
//! hashed columns (its time, its actor), and `verify` rebuilds each row
//! from its event and compares it column by column, requires exactly one
//! row per record event (and no row without its event), and checks the
//! schema — tables, indexes and the append-only triggers — is exactly the
//! one this build creates. Approving, rejecting and applying re-verify the
//! proposal's own segment of the chain first (`verify_segment`).
//! Secret-looking material is refused before anything is written
//! (invariant 7).
//!
//! Two exceptions, which are not records: notification delivery state
//! (`notifications`) is updated in place beside the chain; it can only
//! cause or suppress a notification, which authorizes nothing. And Scoped
//! Explore's pending reservations (`explore`) live beside the chain until
//! they end; every query they stand for is then audited as a chained
//! `explore_query` record, which is what the budgets are counted from.

use std::path::Path;

use airlock_ipc::message::{
    Actor, Decision, DependencyVersion, Event, EvidenceInfo, ParamMeta, ProposalDetail,
    ProposalState, ProposalSummary,
};
use airlock_policy::canonical::{canonical_json, sha256_tagged};
use airlock_policy::change_set::{ChangeSet, scalar_text};
use airlock_policy::prune::{PruneEvent, PrunePlan, plan as prune_plan};
use airlock_policy::quorum::Vote;
use airlock_policy::secrets::{SecretFinding, find_secrets};
use rusqlite::{Connection, OpenFlags};

use crate::args;
use db::{Db, DbError, DbRow as Row, Dialect, OptionalExt};

/// A result of the ledger's database.
type DbResult<T> = Result<T, DbError>;
use serde_json::{Map, Value, json};

pub mod db;
mod explore;
mod leases;
mod notifications;
mod pg_schema;
#[cfg(test)]
mod pg_tests;
pub use explore::{ExploreCommitted, ExploreReserved, ExploreScope};
pub use leases::ApplyLease;
pub use notifications::{Delivery, DeliveryOutcome, SinkCounts, body_for};

/// The schema version this build writes: one per migration.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// The chain's first `prev_hash`.
pub const GENESIS_HASH: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    at           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    proposal_id  TEXT,
    evidence_id  TEXT,
    actor_uid    INTEGER,
    actor_user   TEXT,
    payload      TEXT    NOT NULL,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE
);
CREATE INDEX events_proposal ON events(proposal_id);
CREATE TABLE evidence (
    evidence_id        TEXT PRIMARY KEY,
    seq                INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    capability         TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    principal          TEXT NOT NULL,
    query_fingerprint  TEXT NOT NULL,
    parameters         TEXT NOT NULL,
    rows_json          TEXT NOT NULL,
    recorded_uid       INTEGER NOT NULL,
    recorded_user      TEXT,
    recorded_at        TEXT NOT NULL
);
CREATE TABLE proposals (
    proposal_id    TEXT PRIMARY KEY,
    seq            INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    capability     TEXT NOT NULL,
    tenant_id      TEXT NOT NULL,
    object_id      TEXT NOT NULL,
    principal      TEXT NOT NULL,
    change_set     TEXT NOT NULL,
    proposal_hash  TEXT NOT NULL,
    evidence_id    TEXT REFERENCES evidence(evidence_id),
    required_role  TEXT,
    proposer_uid   INTEGER NOT NULL,
    proposer_user  TEXT,
    created_at     TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    expires_at     TEXT NOT NULL,
    expires_ms     INTEGER NOT NULL
);
CREATE INDEX proposals_created ON proposals(created_ms);
CREATE TABLE decisions (
    proposal_id  TEXT PRIMARY KEY REFERENCES proposals(proposal_id),
    seq          INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    decision     TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    uid          INTEGER NOT NULL,
    user         TEXT,
    at           TEXT NOT NULL,
    at_ms        INTEGER NOT NULL,
    note         TEXT
);
CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER events_append_only_d BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER proposals_append_only_u BEFORE UPDATE ON proposals BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER proposals_append_only_d BEFORE DELETE ON proposals BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER decisions_append_only_u BEFORE UPDATE ON decisions BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER decisions_append_only_d BEFORE DELETE ON decisions BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER evidence_append_only_u BEFORE UPDATE ON evidence BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER evidence_append_only_d BEFORE DELETE ON evidence BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#,
    r#"
CREATE TABLE jobs (
    job_id           TEXT PRIMARY KEY,
    proposal_id      TEXT NOT NULL REFERENCES proposals(proposal_id),
    seq              INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    attempt          INTEGER NOT NULL,
    executor         TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    uid              INTEGER NOT NULL,
    user             TEXT,
    started_at       TEXT NOT NULL,
    UNIQUE (proposal_id, attempt)
);
CREATE TABLE receipts (
    job_id        TEXT PRIMARY KEY REFERENCES jobs(job_id),
    proposal_id   TEXT NOT NULL REFERENCES proposals(proposal_id),
    seq           INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    status        TEXT NOT NULL CHECK (status IN ('applied', 'already_applied', 'conflict', 'failed')),
    receipt       TEXT NOT NULL,
    receipt_hash  TEXT NOT NULL,
    detail        TEXT,
    executed_at   TEXT NOT NULL
);
CREATE INDEX receipts_proposal ON receipts(proposal_id, seq);
CREATE TRIGGER jobs_append_only_u BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER jobs_append_only_d BEFORE DELETE ON jobs BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER receipts_append_only_u BEFORE UPDATE ON receipts BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER receipts_append_only_d BEFORE DELETE ON receipts BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#,
    // The capability digest each proposal was recorded under (NULL for
    // proposals recorded before this migration: they cannot be approved or
    // applied, and must be proposed again). Older rows need no rewrite:
    // their columns not in the payload are the event's own hashed columns.
    r#"
ALTER TABLE proposals ADD COLUMN capability_digest TEXT;
CREATE INDEX events_evidence ON events(evidence_id);
"#,
    // Ledger lifecycle: the expiry sweep's `expired` events and the
    // operator's `ledger_pruned` events, each with its record row.
    r#"
CREATE TABLE expirations (
    proposal_id  TEXT PRIMARY KEY REFERENCES proposals(proposal_id),
    seq          INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    expires_at   TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE TABLE prunes (
    seq           INTEGER PRIMARY KEY REFERENCES events(seq),
    cut_off       TEXT NOT NULL,
    first_seq     INTEGER NOT NULL,
    start_hash    TEXT NOT NULL,
    through_seq   INTEGER NOT NULL,
    through_hash  TEXT NOT NULL,
    events        INTEGER NOT NULL,
    proposals     INTEGER NOT NULL,
    evidence      INTEGER NOT NULL,
    archive       TEXT NOT NULL,
    uid           INTEGER NOT NULL,
    user          TEXT,
    at            TEXT NOT NULL
);
CREATE INDEX proposals_expires ON proposals(expires_ms);
-- Deleting an evidence row checks no proposal cites it: without this index
-- each check scans every proposal (a prune would be quadratic).
CREATE INDEX proposals_evidence ON proposals(evidence_id);
CREATE TRIGGER expirations_append_only_u BEFORE UPDATE ON expirations BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER expirations_append_only_d BEFORE DELETE ON expirations BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER prunes_append_only_u BEFORE UPDATE ON prunes BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER prunes_append_only_d BEFORE DELETE ON prunes BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#,
    // Notification delivery state (`ledger/notifications.rs`): operational
    // rows beside the chain, updated as deliveries are attempted. Not
    // records: a notification authorizes nothing, and the chain does not
    // cover these rows.
    r#"
CREATE TABLE notification_cursors (
    sink_id      TEXT PRIMARY KEY,
    through_seq  INTEGER NOT NULL
);
CREATE TABLE notification_deliveries (
    sink_id          TEXT NOT NULL,
    event_seq        INTEGER NOT NULL,
    notification_id  TEXT NOT NULL,
    event            TEXT NOT NULL,
    body             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL,
    next_attempt_ms  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (sink_id, event_seq)
);
CREATE INDEX notification_due ON notification_deliveries(sink_id, state, next_attempt_ms);
"#,
    // Quorum and freshness-bound approval: each approval counted towards a
    // quorum not yet reached (`approval_counted`; the N-th distinct one is
    // an `approved` decision as before), and the approvals refused because
    // the proposal's rows changed (`freshness_conflict`, terminal).
    r#"
CREATE TABLE votes (
    proposal_id  TEXT NOT NULL REFERENCES proposals(proposal_id),
    seq          INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    uid          INTEGER NOT NULL,
    user         TEXT,
    at           TEXT NOT NULL,
    note         TEXT,
    PRIMARY KEY (proposal_id, uid)
);
CREATE TABLE stale_approvals (
    proposal_id  TEXT PRIMARY KEY REFERENCES proposals(proposal_id),
    seq          INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    uid          INTEGER NOT NULL,
    user         TEXT,
    at           TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE TRIGGER votes_append_only_u BEFORE UPDATE ON votes BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER votes_append_only_d BEFORE DELETE ON votes BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER stale_approvals_append_only_u BEFORE UPDATE ON stale_approvals BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER stale_approvals_append_only_d BEFORE DELETE ON stale_approvals BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#,
    // Scoped Explore (`ledger/explore.rs`): each audited query
    // (`explore_query` events, the records the budgets are counted from),
    // and the reservations not yet committed or released — transient state
    // beside the chain, like notification deliveries: a reservation is not
    // evidence, and its query is audited when it ends.
    r#"
CREATE TABLE explore_queries (
    query_id             TEXT PRIMARY KEY,
    seq                  INTEGER NOT NULL UNIQUE REFERENCES events(seq),
    reservation_id       TEXT,
    tenant_id            TEXT NOT NULL,
    principal            TEXT NOT NULL,
    resource             TEXT,
    variant              TEXT,
    cohort               TEXT,
    plan                 TEXT,
    outcome              TEXT NOT NULL CHECK (outcome IN ('released', 'suppressed', 'refused', 'failed')),
    reason               TEXT,
    cells                INTEGER NOT NULL,
    suppressed_groups    INTEGER NOT NULL,
    charged_query        INTEGER NOT NULL,
    charged_variant      INTEGER NOT NULL,
    complete_release     INTEGER NOT NULL,
    suppression_release  INTEGER NOT NULL,
    charged_ms           INTEGER NOT NULL,
    uid                  INTEGER NOT NULL,
    user                 TEXT,
    at                   TEXT NOT NULL,
    at_ms                INTEGER NOT NULL
);
-- The budgets read one tenant and principal's last 24 hours.
CREATE INDEX explore_queries_window ON explore_queries(tenant_id, principal, charged_ms);
CREATE INDEX explore_queries_tenant ON explore_queries(tenant_id, seq);
CREATE TRIGGER explore_queries_append_only_u BEFORE UPDATE ON explore_queries BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER explore_queries_append_only_d BEFORE DELETE ON explore_queries BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE explore_reservations (
    reservation_id    TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    principal         TEXT NOT NULL,
    uid               INTEGER NOT NULL,
    user              TEXT,
    resource          TEXT NOT NULL,
    variant           TEXT NOT NULL,
    cohort            TEXT NOT NULL,
    aggregate         INTEGER NOT NULL,
    cohort_protected  INTEGER NOT NULL,
    total             INTEGER NOT NULL,
    max_cells         INTEGER NOT NULL,
    plan              TEXT NOT NULL,
    reserved_ms       INTEGER NOT NULL
);
CREATE INDEX explore_reservations_scope ON explore_reservations(tenant_id, principal);
CREATE INDEX explore_reservations_reserved ON explore_reservations(reserved_ms);
"#,
];

/// What makes a ledger file a prune archive: a copy of the `ledger_pruned`
/// event that moved its events out of the ledger (the anchor the archive
/// continues into). An executor never serves an archive.
const ARCHIVE_SQL: &str = r#"
CREATE TABLE archive_anchor (
    prune_seq   INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor_uid   INTEGER,
    actor_user  TEXT,
    payload     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE TRIGGER archive_anchor_append_only_u BEFORE UPDATE ON archive_anchor BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER archive_anchor_append_only_d BEFORE DELETE ON archive_anchor BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#;

/// The record tables, children before parents (the order a prune deletes
/// in; the reverse is the order it copies in).
const PRUNED_TABLES: &[&str] = &[
    "receipts",
    "jobs",
    "decisions",
    "votes",
    "stale_approvals",
    "expirations",
    "proposals",
    "evidence",
    "explore_queries",
    "prunes",
    "events",
];

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database error: {0}")]
    Db(#[from] DbError),
    #[error(
        "the ledger at {path} was written by a newer Airlock (schema {found}, this build knows {SCHEMA_VERSION}); upgrade airlock"
    )]
    TooNew { path: String, found: i64 },
    #[error("refused to store secret-looking material at {}", .0.iter().map(|f| format!("{} ({})", f.path, f.kind.describe())).collect::<Vec<_>>().join(", "))]
    SecretMaterial(Vec<SecretFinding>),
    #[error("no proposal {0}")]
    NotFound(String),
    #[error("proposal {id} is {state}")]
    InvalidState { id: String, state: &'static str },
    #[error("proposal {0} expired")]
    Expired(String),
    /// This uid's approval of the proposal is recorded already.
    #[error("proposal {id}: this approver has approved it already")]
    AlreadyVoted {
        id: String,
        approvals: u32,
        required: u32,
    },
    #[error("corrupt ledger row: {0}")]
    Corrupt(String),
    /// The ledger's record of this proposal does not verify: a row was
    /// added, removed or edited outside the executor.
    #[error("the ledger's record of proposal {proposal_id} does not verify: {why}")]
    Tampered { proposal_id: String, why: String },
    /// The capability's live definition is not the one the proposal was
    /// recorded under (`recorded` is `None` for proposals recorded before
    /// Airlock bound it).
    #[error("the capability of proposal {proposal_id} changed since it was proposed")]
    ConfigChanged {
        proposal_id: String,
        recorded: Option<String>,
        live: String,
    },
    /// The PostgreSQL ledger's schema is not at this build's version.
    #[error(
        "the ledger schema {schema} is at version {found}, not {SCHEMA_VERSION}; run `airlock ledger migrate` (with the schema owner's credentials)"
    )]
    NeedsMigration { schema: String, found: i64 },
    /// Another executor of the fleet holds the proposal's apply lease.
    #[error(
        "proposal {proposal_id} is being applied by executor {holder} (its lease runs until {until})"
    )]
    Leased {
        proposal_id: String,
        holder: String,
        until: String,
    },
    /// This executor's lease on the apply was taken over: its receipt is
    /// not recorded (the executor that took over records its own).
    #[error(
        "the apply lease of proposal {proposal_id} was taken over by another executor; this executor's receipt was not recorded"
    )]
    Fenced { proposal_id: String },
    /// The operation works on an SQLite ledger file only.
    #[error("this works on an SQLite ledger file; the ledger is on PostgreSQL")]
    NotSqlite,
    /// The file is a prune archive, not a ledger an executor may serve.
    #[error("{0} is a prune archive, not a ledger; serve the ledger it was pruned from")]
    IsArchive(String),
    /// The prune archive could not be written; the ledger is unchanged.
    #[error("the archive {path} could not be written: {why}; the ledger is unchanged")]
    Archive { path: String, why: String },
    /// The batch this call was part of could not be committed (e.g. the
    /// disk is full); nothing of it was stored.
    #[error("the ledger could not commit: {detail}")]
    CommitFailed {
        fault: Option<StorageFault>,
        detail: String,
    },
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError::Db(DbError::Sqlite(e))
    }
}

impl LedgerError {
    /// The disk fault behind this error, if that is what it is.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            LedgerError::Db(DbError::Sqlite(e)) => StorageFault::of(e),
            LedgerError::Db(e) => StorageFault::of_sqlstate(e.sqlstate().as_deref()),
            LedgerError::CommitFailed { fault, .. } => *fault,
            _ => None,
        }
    }
}

/// A fault of the storage under the ledger: told to callers, so an operator
/// can act without reading the executor's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    Full,
    ReadOnly,
    Io,
}

impl StorageFault {
    pub fn of(e: &rusqlite::Error) -> Option<StorageFault> {
        match e.sqlite_error_code()? {
            rusqlite::ErrorCode::DiskFull => Some(StorageFault::Full),
            rusqlite::ErrorCode::ReadOnly => Some(StorageFault::ReadOnly),
            rusqlite::ErrorCode::SystemIoFailure => Some(StorageFault::Io),
            _ => None,
        }
    }

    /// PostgreSQL's classes: 53100 disk full, 25006 read-only
    /// transaction, 58030 I/O error.
    pub fn of_sqlstate(code: Option<&str>) -> Option<StorageFault> {
        match code? {
            "53100" => Some(StorageFault::Full),
            "25006" => Some(StorageFault::ReadOnly),
            "58030" => Some(StorageFault::Io),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            StorageFault::Full => "the disk holding the ledger is full",
            StorageFault::ReadOnly => "the ledger file or its directory is read-only",
            StorageFault::Io => "the ledger's disk reported an I/O error",
        }
    }
}

/// Who acted, from SO_PEERCRED.
#[derive(Debug, Clone)]
pub struct ActorIdentity {
    pub uid: u32,
    pub user: Option<String>,
}

impl ActorIdentity {
    fn to_actor(&self) -> Actor {
        Actor {
            uid: self.uid,
            user: self.user.clone(),
        }
    }
}

/// Wall-clock time: RFC 3339 text and Unix milliseconds.
#[derive(Debug, Clone)]
pub struct Timestamp {
    pub text: String,
    pub ms: i64,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from_ms(chrono::Utc::now().timestamp_millis())
    }

    pub fn from_ms(ms: i64) -> Timestamp {
        let text = chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Timestamp { text, ms }
    }
}

pub struct NewEvidence<'a> {
    pub capability: &'a str,
    pub tenant_id: &'a str,
    pub principal: &'a str,
    pub query_fingerprint: &'a str,
    pub parameters: &'a [ParamMeta],
    pub rows: &'a [Map<String, Value>],
    pub actor: &'a ActorIdentity,
}

pub struct NewProposal<'a> {
    pub change_set: &'a ChangeSet,
    /// `airlock_policy::binding::capability_digest` of the capability as
    /// configured when the proposal is recorded.
    pub capability_digest: &'a str,
    pub evidence_id: Option<&'a str>,
    pub required_role: Option<&'a str>,
    pub ttl_ms: i64,
    pub actor: &'a ActorIdentity,
}

/// What a successful proposal insert returns.
#[derive(Debug, Clone)]
pub struct RecordedProposal {
    pub proposal_id: String,
    pub proposal_hash: String,
    pub created_at: String,
    pub expires_at: String,
}

/// What an apply request should do next.
#[derive(Debug, Clone)]
pub enum ApplyStart {
    /// Run this job: a new attempt, or (`resumed`) the in-doubt job of an
    /// apply that was interrupted before its receipt was recorded.
    Run {
        job_id: String,
        attempt: u32,
        resumed: bool,
        detail: Box<ProposalDetail>,
        /// The fencing token of this executor's apply lease (a fleet's
        /// PostgreSQL ledger); its receipt must carry it.
        fence: Option<i64>,
    },
    /// The proposal was applied already: its receipt.
    Done { receipt: Value },
}

/// A terminal receipt to record for a job.
#[derive(Debug, Clone)]
pub struct NewReceipt<'a> {
    pub job_id: &'a str,
    pub proposal_id: &'a str,
    pub status: &'a str,
    /// The `synapsor.execution-receipt.v1` object, `receipt_hash` included.
    pub receipt: &'a Value,
    /// A short, redacted note for the operator.
    pub detail: Option<&'a str>,
    /// The fencing token the job started with (`ApplyStart::Run`).
    pub fence: Option<i64>,
}

/// Everything the ledger knows about one proposal, in order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayRecord {
    pub proposal: ProposalDetail,
    pub events: Vec<Event>,
    pub jobs: Vec<Value>,
    pub receipts: Vec<Value>,
}

/// Row counts for `stats`.
#[derive(Debug, Clone)]
pub struct LedgerCounts {
    pub per_state: Vec<(String, u64)>,
    pub evidence: u64,
    pub events: u64,
}

/// The outcome of `verify`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub events: u64,
    pub head: String,
    /// The first broken link, if any: (seq, why).
    pub first_break: Option<(u64, String)>,
    /// The event the file's chain continues from: 0 (the genesis hash), or
    /// the last event of the archive a prune moved out.
    pub start_seq: u64,
    /// For a prune archive: the seq and hash of the `ledger_pruned` event
    /// that moved it out of the ledger.
    pub archive_of: Option<(u64, String)>,
}

pub struct Ledger {
    conn: Db,
    /// Process-unique salt for ids.
    id_salt: String,
    /// Ids minted for rows that are not events (reservations).
    minted: u64,
    /// The connection's current `PRAGMA synchronous` is FULL.
    sync_full: bool,
    /// A fleet executor's apply lease (PostgreSQL ledgers).
    lease: Option<ApplyLease>,
}

/// How durable a batch of ledger work must be when its callers are answered,
/// weakest first: a batch is as durable as its strictest call (`max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// Writes nothing: a look-up. A batch of only these runs on one snapshot
    /// without the fleet's chain lock (PostgreSQL: `REPEATABLE READ READ
    /// ONLY`, so a write in it fails), and on SQLite leaves `synchronous` as
    /// it is.
    Read,
    /// Written to the WAL without its own fsync (`synchronous=NORMAL`); made
    /// durable by the next `Now` commit, which always follows before any
    /// proposal citing it is acknowledged. Read evidence, job starts.
    Deferred,
    /// Fsync'd before the reply (`synchronous=FULL`): proposals, decisions,
    /// jobs, receipts.
    Now,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

/// A proposal's state, derived from the rows that reference it (nothing is
/// ever updated): its decision, its latest receipt, and its expiry. A failed
/// attempt stays `failed` (retryable: a timed-out handler may have applied
/// the change, and only a retry with the same idempotency key can tell), and
/// an apply interrupted before its receipt shows as `approved` until the
/// next apply resolves it — neither expires. An expiry is computed from the
/// clock (`?1`, now in Unix milliseconds) until the sweep records it as an
/// `expired` event; from then on the row says so whatever the clock says.
const STATE_SQL: &str = "CASE \
    WHEN d.decision = 'rejected' THEN 'rejected' \
    WHEN EXISTS (SELECT 1 FROM stale_approvals sa WHERE sa.proposal_id = p.proposal_id) THEN 'conflict' \
    WHEN r.status IN ('applied', 'already_applied') THEN 'applied' \
    WHEN r.status = 'conflict' THEN 'conflict' \
    WHEN r.status = 'failed' THEN 'failed' \
    WHEN EXISTS (SELECT 1 FROM jobs j WHERE j.proposal_id = p.proposal_id \
                 AND NOT EXISTS (SELECT 1 FROM receipts x WHERE x.job_id = j.job_id)) THEN 'approved' \
    WHEN p.expires_ms <= ?1 \
         OR EXISTS (SELECT 1 FROM expirations xe WHERE xe.proposal_id = p.proposal_id) THEN 'expired' \
    WHEN d.decision = 'approved' THEN 'approved' \
    ELSE 'pending_approval' END";

/// The proposals with their decision and latest receipt, for STATE_SQL.
const FROM_PROPOSALS: &str = "proposals p \
    LEFT JOIN decisions d ON d.proposal_id = p.proposal_id \
    LEFT JOIN receipts r ON r.seq = (SELECT MAX(seq) FROM receipts WHERE proposal_id = p.proposal_id)";

impl Ledger {
    /// Open (creating and migrating if needed) the ledger for writing.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        // Never through a symbolic link at the file's name (issue 12, F6).
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Durable when the call returns: fsync each commit (see `batch`).
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        // 1 MiB of page cache (SQLite's default is 2): the pages a write
        // touches (the chain's tail, the newest index leaves) stay cached,
        // and the operating system's page cache holds the rest. Larger
        // caches cost the executor memory for no measured apply throughput
        // (docs/benchmarks.md, "Second round").
        conn.pragma_update(None, "cache_size", -1024)?;
        let conn = Db::sqlite(conn);
        if is_archive(&conn)? {
            return Err(LedgerError::IsArchive(path.display().to_string()));
        }
        let mut ledger = Ledger {
            conn,
            id_salt: format!("{}:{}", std::process::id(), Timestamp::now().ms),
            minted: 0,
            sync_full: true,
            lease: None,
        };
        ledger.migrate(path)?;
        Ok(ledger)
    }

    /// Open the ledger in PostgreSQL schema `schema` at `url` (a fleet's
    /// shared ledger). The schema must be at this build's version
    /// (`airlock ledger migrate` creates and upgrades it; an executor never
    /// changes the schema).
    pub fn open_postgres(
        url: &str,
        schema: &str,
        lock_timeout_ms: u64,
    ) -> Result<Ledger, LedgerError> {
        let conn = Db::postgres(db::Pg::connect(url, schema, lock_timeout_ms)?);
        let version = pg_schema::version(&conn)?;
        if version != SCHEMA_VERSION {
            return Err(LedgerError::NeedsMigration {
                schema: schema.to_owned(),
                found: version,
            });
        }
        Ok(Ledger {
            conn,
            id_salt: fleet_salt(),
            minted: 0,
            sync_full: true,
            lease: None,
        })
    }

    /// Grant `role` (an executor's) what it needs on the ledger schema, and
    /// nothing more (`pg_schema::grants_sql`).
    pub fn grant_postgres(url: &str, schema: &str, role: &str) -> Result<String, LedgerError> {
        if !is_pg_role_name(role) {
            return Err(LedgerError::Corrupt(format!(
                "`{}` is not a role name (letters, digits and underscores)",
                role.escape_debug()
            )));
        }
        let sql = pg_schema::grants_sql(schema, role);
        let conn = Db::postgres(db::Pg::connect(url, schema, 60_000)?);
        conn.execute_batch(&sql)?;
        Ok(sql)
    }

    /// Create or upgrade the ledger in PostgreSQL schema `schema` (creating
    /// the schema if missing), one transaction per migration under the
    /// chain lock; returns (version before, version after).
    pub fn migrate_postgres(url: &str, schema: &str) -> Result<(i64, i64), LedgerError> {
        let conn = Db::postgres(db::Pg::connect(url, schema, 60_000)?);
        conn.execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
        let before = pg_schema::version(&conn)?;
        if before > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                path: format!("schema {schema}"),
                found: before,
            });
        }
        for sql in pg_schema::migrations(before) {
            conn.begin()?;
            if let Err(e) = conn.execute_batch(&sql) {
                let _ = conn.rollback();
                return Err(e.into());
            }
            conn.commit()?;
        }
        Ok((before, pg_schema::version(&conn)?))
    }

    /// The bytes the ledger takes: its SQLite file (pages × page size, WAL
    /// not included), or its tables and indexes in PostgreSQL.
    pub fn storage_bytes(&self) -> Result<u64, LedgerError> {
        if let Some(c) = self.conn.as_sqlite() {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            return Ok(pages.saturating_mul(size).max(0) as u64);
        }
        Ok(self.conn.one::<Option<i64>>(
            "SELECT SUM(pg_total_relation_size(c.oid))::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'",
            args![],
        )?.unwrap_or(0).max(0) as u64)
    }

    /// Take a lease on each apply this ledger starts (a fleet's executor
    /// on a PostgreSQL ledger).
    pub fn set_apply_lease(&mut self, lease: Option<ApplyLease>) {
        self.lease = lease;
    }

    /// This process's id in the fleet (unique across hosts).
    pub fn instance_id(&self) -> &str {
        &self.id_salt
    }

    /// Open an existing ledger read-only (for `ledger verify`).
    pub fn open_read_only(path: &Path) -> Result<Ledger, LedgerError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(Ledger {
            conn: Db::sqlite(conn),
            id_salt: String::new(),
            minted: 0,
            sync_full: false,
            lease: None,
        })
    }

    fn migrate(&mut self, path: &Path) -> Result<(), LedgerError> {
        let conn = self.conn.as_sqlite_mut().ok_or(LedgerError::NotSqlite)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                path: path.display().to_string(),
                found: version,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Start a batch: the group commit of `crate::group_commit`. Every
    /// ledger call until `commit_batch` runs in one transaction, each in its
    /// own savepoint, so a call that fails leaves nothing behind while the
    /// others still commit.
    pub fn begin_batch(&mut self, durability: Durability) -> Result<(), LedgerError> {
        if durability == Durability::Read {
            self.conn.begin_read()?;
            return Ok(());
        }
        let full = durability == Durability::Now;
        if let Some(conn) = self.conn.as_sqlite()
            && full != self.sync_full
        {
            // Only between transactions. The WAL keeps every frame in order,
            // so a FULL commit's fsync also covers the NORMAL ones before it.
            conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
            self.sync_full = full;
        }
        // SQLite: deferred, since this connection is the ledger's only
        // writer (the store lock), so a batch of queries need not take the
        // write lock at all. PostgreSQL: the fleet's chain lock first.
        self.conn.begin_with(!full)?;
        Ok(())
    }

    /// Run one caller's work inside a batch as a unit: all of it is kept,
    /// or (on an error) none of it.
    pub fn as_one_call<T>(
        &mut self,
        work: impl FnOnce(&mut Ledger) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        self.conn.execute_batch("SAVEPOINT call")?;
        let result = work(self);
        let end = if result.is_ok() {
            "RELEASE call"
        } else {
            "ROLLBACK TO call; RELEASE call"
        };
        // If SQLite already ended the transaction (full disk), there is no
        // savepoint left; the batch reports that when it commits.
        if self.batch_open() {
            self.conn.execute_batch(end)?;
        }
        result
    }

    /// Whether the batch's transaction is still open (SQLite ends it by
    /// itself on a full disk or an I/O error).
    pub fn batch_open(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Commit the batch (one fsync when it was begun with `Durability::Now`).
    /// If the commit fails (e.g. the disk is full) nothing of the batch is
    /// stored.
    pub fn commit_batch(&mut self) -> Result<(), LedgerError> {
        let open = !self.conn.is_autocommit();
        match self.conn.commit() {
            Ok(()) => Ok(()),
            Err(e) => {
                if open && self.conn.as_sqlite().is_some_and(|c| !c.is_autocommit()) {
                    let _ = self.conn.rollback();
                }
                let detail = e.to_string();
                Err(LedgerError::CommitFailed {
                    fault: LedgerError::Db(e).storage_fault(),
                    detail,
                })
            }
        }
    }

    /// Tests only: cap the database at `pages` pages (a full disk) and
    /// return the current page count.
    #[cfg(test)]
    pub(crate) fn limit_pages_for_test(&mut self, pages: Option<i64>) -> Result<i64, LedgerError> {
        let conn = self.conn.as_sqlite().ok_or(LedgerError::NotSqlite)?;
        if let Some(p) = pages {
            conn.query_row(&format!("PRAGMA max_page_count = {p}"), [], |_| Ok(()))?;
        }
        Ok(conn.query_row("PRAGMA page_count", [], |r| r.get(0))?)
    }

    /// Flush the WAL into the main file (on clean shutdown).
    pub fn checkpoint(&self) -> Result<(), LedgerError> {
        if let Some(conn) = self.conn.as_sqlite() {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    fn next_seq(conn: &Db) -> Result<i64, LedgerError> {
        Ok(conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM events")?
            .query_row(args![], |r| r.get(0))?)
    }

    fn new_id(salt: &str, prefix: &str, seq: i64) -> String {
        let digest = sha256_tagged(format!("{salt}:{seq}:{}", Timestamp::now().ms).as_bytes());
        format!("{prefix}_{}", &digest[7..27])
    }

    fn refuse_secrets(value: &Value) -> Result<(), LedgerError> {
        let found = find_secrets(value);
        if found.is_empty() {
            Ok(())
        } else {
            Err(LedgerError::SecretMaterial(found))
        }
    }

    /// Append one event to the chain inside `tx`; returns (seq, hash).
    fn append_event(
        tx: &Db,
        at: &Timestamp,
        kind: &str,
        proposal_id: Option<&str>,
        evidence_id: Option<&str>,
        actor: Option<&ActorIdentity>,
        payload: &Value,
    ) -> Result<(i64, String), LedgerError> {
        let (prev_seq, prev_hash): (i64, String) = tx
            .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
            .query_row(args![], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, GENESIS_HASH.to_owned()));
        let seq = prev_seq + 1;
        let payload_text = canonical_json(payload);
        let hash = ChainLink {
            prev_hash: &prev_hash,
            seq,
            at: &at.text,
            kind,
            proposal_id,
            evidence_id,
            actor_uid: actor.map(|a| a.uid),
            actor_user: actor.and_then(|a| a.user.as_deref()),
            payload: &payload_text,
        }
        .hash();
        tx.prepare_cached(
            "INSERT INTO events (seq, at, kind, proposal_id, evidence_id, actor_uid, actor_user, payload, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(args![seq, at.text, kind, proposal_id, evidence_id, actor.map(|a| a.uid), actor.and_then(|a| a.user.clone()), payload_text, prev_hash, hash],
        )?;
        Ok((seq, hash))
    }

    /// Record the evidence of one read; returns (evidence id, recorded at).
    pub fn record_evidence(
        &mut self,
        ev: NewEvidence<'_>,
    ) -> Result<(String, String), LedgerError> {
        let rows = Value::Array(ev.rows.iter().cloned().map(Value::Object).collect());
        let parameters = serde_json::to_value(ev.parameters).unwrap_or(Value::Null);
        Self::refuse_secrets(
            &json!({"rows": rows, "principal": ev.principal, "tenant_id": ev.tenant_id}),
        )?;
        let at = Timestamp::now();
        let salt = self.id_salt.clone();
        let tx = self.conn.savepoint()?;
        let next = Self::next_seq(&tx)?;
        let id = Self::new_id(&salt, "ev", next);
        let record = json!({
            "evidence_id": id,
            "capability": ev.capability,
            "tenant_id": ev.tenant_id,
            "principal": ev.principal,
            "query_fingerprint": ev.query_fingerprint,
            "parameters": parameters,
            "rows": rows,
        });
        let (seq, _) = Self::append_event(
            &tx,
            &at,
            "read_recorded",
            None,
            Some(&id),
            Some(ev.actor),
            &record,
        )?;
        tx.prepare_cached(
            "INSERT INTO evidence (evidence_id, seq, capability, tenant_id, principal, query_fingerprint, parameters, rows_json, recorded_uid, recorded_user, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(args![id, seq, ev.capability, ev.tenant_id, ev.principal, ev.query_fingerprint, canonical_json(&parameters), canonical_json(&rows), ev.actor.uid, ev.actor.user, at.text],
        )?;
        tx.commit()?;
        Ok((id, at.text))
    }

    /// Record a verified proposal as `pending_approval`.
    pub fn record_proposal(&mut self, p: NewProposal<'_>) -> Result<RecordedProposal, LedgerError> {
        self.record_bound_proposal(p, 1, &[])
    }

    /// [`Ledger::record_proposal`], with the number of distinct approvals
    /// it needs and the versions of its reviewed dependency rows. Both are
    /// in the proposal's hashed event, only when they differ from 1 and
    /// none, so other proposals' records are as before.
    pub fn record_bound_proposal(
        &mut self,
        p: NewProposal<'_>,
        required_approvals: u32,
        dependencies: &[DependencyVersion],
    ) -> Result<RecordedProposal, LedgerError> {
        let cs_value =
            serde_json::to_value(p.change_set).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        Self::refuse_secrets(&cs_value)?;
        let hash = p.change_set.hash();
        let at = Timestamp::now();
        let expires = Timestamp::from_ms(at.ms.saturating_add(p.ttl_ms));
        let object_id = p.change_set.object_id();
        let salt = self.id_salt.clone();
        let tx = self.conn.savepoint()?;
        let next = Self::next_seq(&tx)?;
        let id = Self::new_id(&salt, "wrp", next);
        let mut record = json!({
            "proposal_id": id,
            "change_set": cs_value,
            "proposal_hash": hash,
            "evidence_id": p.evidence_id,
            "required_role": p.required_role,
            "expires_at": expires.text,
            "capability_digest": p.capability_digest,
        });
        if required_approvals > 1 {
            record["required_approvals"] = json!(required_approvals);
        }
        if !dependencies.is_empty() {
            let deps = serde_json::to_value(dependencies)
                .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            Self::refuse_secrets(&deps)?;
            record["dependencies"] = deps;
        }
        let (seq, _) = Self::append_event(
            &tx,
            &at,
            "proposal_recorded",
            Some(&id),
            p.evidence_id,
            Some(p.actor),
            &record,
        )?;
        tx.prepare_cached(
            "INSERT INTO proposals (proposal_id, seq, capability, tenant_id, object_id, principal, change_set, proposal_hash, evidence_id, required_role, proposer_uid, proposer_user, created_at, created_ms, expires_at, expires_ms, capability_digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?
        .execute(args![
                id, seq, p.change_set.capability, p.change_set.tenant_id, object_id, p.change_set.principal,
                canonical_json(&cs_value), hash, p.evidence_id, p.required_role, p.actor.uid, p.actor.user,
                at.text, at.ms, expires.text, expires.ms, p.capability_digest
            ],
        )?;
        tx.commit()?;
        Ok(RecordedProposal {
            proposal_id: id,
            proposal_hash: hash,
            created_at: at.text,
            expires_at: expires.text,
        })
    }

    /// Record an approval or rejection of a pending, unexpired proposal.
    /// State is re-checked inside the transaction, so two racing approvals
    /// cannot both succeed. The proposal's segment of the chain must verify
    /// and `capability_digest` (the live capability's) must be the one it
    /// was recorded under.
    pub fn record_decision(
        &mut self,
        proposal_id: &str,
        approve: bool,
        actor: &ActorIdentity,
        note: Option<&str>,
        capability_digest: &str,
    ) -> Result<Decision, LedgerError> {
        if let Some(n) = note {
            Self::refuse_secrets(&json!({"note": n}))?;
        }
        let at = Timestamp::now();
        let tx = self.conn.savepoint()?;
        Self::check_still_pending(&tx, &at, proposal_id, capability_digest)?;
        let (required, prior) = Self::quorum_in(&tx, proposal_id)?;
        let quorum = |approvals: u32| {
            (required > 1).then_some(airlock_ipc::message::Quorum {
                approvals,
                required,
            })
        };
        let mut counted = prior.len() as u32;
        if approve {
            match airlock_policy::quorum::judge_vote(required, &prior, actor.uid) {
                Vote::Duplicate => {
                    return Err(LedgerError::AlreadyVoted {
                        id: proposal_id.to_owned(),
                        approvals: counted,
                        required,
                    });
                }
                Vote::Counted { approvals, .. } => {
                    let record = json!({"proposal_id": proposal_id, "approvals": approvals, "required_approvals": required, "note": note});
                    let (seq, _) = Self::append_event(
                        &tx,
                        &at,
                        "approval_counted",
                        Some(proposal_id),
                        None,
                        Some(actor),
                        &record,
                    )?;
                    tx.execute(
                        "INSERT INTO votes (proposal_id, seq, uid, \"user\", at, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        args![proposal_id, seq, actor.uid, actor.user, at.text, note],
                    )?;
                    tx.commit()?;
                    return Ok(Decision {
                        proposal_id: proposal_id.to_owned(),
                        state: ProposalState::PendingApproval,
                        by: actor.to_actor(),
                        at: at.text,
                        note: note.map(str::to_owned),
                        quorum: quorum(approvals),
                    });
                }
                Vote::Approves => counted += 1,
            }
        }
        let decision = if approve {
            ProposalState::Approved
        } else {
            ProposalState::Rejected
        };
        let record =
            json!({"proposal_id": proposal_id, "decision": decision.as_str(), "note": note});
        let kind = if approve { "approved" } else { "rejected" };
        let (seq, _) = Self::append_event(
            &tx,
            &at,
            kind,
            Some(proposal_id),
            None,
            Some(actor),
            &record,
        )?;
        tx.execute(
            "INSERT INTO decisions (proposal_id, seq, decision, uid, \"user\", at, at_ms, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![proposal_id, seq, decision.as_str(), actor.uid, actor.user, at.text, at.ms, note],
        )?;
        tx.commit()?;
        Ok(Decision {
            proposal_id: proposal_id.to_owned(),
            state: decision,
            by: actor.to_actor(),
            at: at.text,
            note: note.map(str::to_owned),
            quorum: quorum(counted),
        })
    }

    /// The distinct approvals a proposal needs (from its hashed record;
    /// 1 when it names none) and the uids whose approvals are counted.
    fn quorum_in(conn: &Db, proposal_id: &str) -> Result<(u32, Vec<u32>), LedgerError> {
        let required: Option<i64> = conn
            .prepare_cached(&format!(
                "SELECT {} FROM proposals p JOIN events e ON e.seq = p.seq WHERE p.proposal_id = ?1",
                json_int(conn.dialect(), "e.payload", "required_approvals")
            ))?
            .query_row(args![proposal_id], |r| r.get(0))
            .optional()?
            .flatten();
        let required = required.map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let prior = conn
            .prepare_cached("SELECT uid FROM votes WHERE proposal_id = ?1 ORDER BY seq")?
            .query_map(args![proposal_id], |r| r.get::<_, u32>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((required, prior))
    }

    /// The reviewed dependency rows recorded with a proposal (none for a
    /// proposal without `proposal_freshness`).
    fn dependencies_in(
        conn: &Db,
        proposal_id: &str,
    ) -> Result<Vec<DependencyVersion>, LedgerError> {
        let deps: Option<String> = conn
            .prepare_cached(match conn.dialect() {
                Dialect::Sqlite => "SELECT json_extract(e.payload, '$.dependencies') FROM proposals p JOIN events e ON e.seq = p.seq WHERE p.proposal_id = ?1",
                Dialect::Postgres => "SELECT (e.payload::jsonb -> 'dependencies')::text FROM proposals p JOIN events e ON e.seq = p.seq WHERE p.proposal_id = ?1",
            })?
            .query_row(args![proposal_id], |r| r.get(0))
            .optional()?
            .flatten();
        match deps {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| LedgerError::Corrupt(format!("stored dependencies: {e}"))),
        }
    }

    /// Record that an approval of a pending proposal was refused because
    /// its target or a reviewed dependency row changed: the proposal is
    /// `conflict` from now on (terminal; nothing was written to the
    /// source). Checked like a decision: the segment verifies, the state is
    /// pending, the capability is the one recorded.
    pub fn record_stale(
        &mut self,
        proposal_id: &str,
        actor: &ActorIdentity,
        detail: &str,
        capability_digest: &str,
    ) -> Result<Event, LedgerError> {
        let at = Timestamp::now();
        let tx = self.conn.savepoint()?;
        Self::check_still_pending(&tx, &at, proposal_id, capability_digest)?;
        let record = json!({"proposal_id": proposal_id, "detail": detail});
        let (seq, hash) = Self::append_event(
            &tx,
            &at,
            "freshness_conflict",
            Some(proposal_id),
            None,
            Some(actor),
            &record,
        )?;
        tx.execute(
            "INSERT INTO stale_approvals (proposal_id, seq, uid, \"user\", at, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![proposal_id, seq, actor.uid, actor.user, at.text, detail],
        )?;
        tx.commit()?;
        Ok(Event {
            seq: seq as u64,
            at: at.text,
            kind: "freshness_conflict".into(),
            proposal_id: Some(proposal_id.to_owned()),
            evidence_id: None,
            actor: Some(actor.to_actor()),
            hash,
        })
    }

    pub fn evidence(&self, evidence_id: &str) -> Result<Option<EvidenceInfo>, LedgerError> {
        Self::evidence_in(&self.conn, evidence_id)
    }

    fn evidence_in(conn: &Db, evidence_id: &str) -> Result<Option<EvidenceInfo>, LedgerError> {
        conn
            .query_row(
                "SELECT evidence_id, capability, tenant_id, principal, query_fingerprint, parameters, rows_json, recorded_uid, recorded_user, recorded_at FROM evidence WHERE evidence_id = ?1",
                args![evidence_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, u32>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, String>(9)?,
                    ))
                },
            )
            .optional()?
            .map(|(evidence_id, capability, tenant_id, principal, query_fingerprint, params_text, rows_text, uid, user, recorded_at)| {
                let parameters = serde_json::from_str(&params_text).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
                let rows: Vec<Map<String, Value>> = serde_json::from_str(&rows_text).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
                Ok(EvidenceInfo { evidence_id, capability, tenant_id, principal, query_fingerprint, parameters, rows, recorded_by: Actor { uid, user }, recorded_at })
            })
            .transpose()
    }

    fn summary_from_row(r: &Row<'_>) -> DbResult<(ProposalSummary, String)> {
        let state: String = r.get(6)?;
        Ok((
            ProposalSummary {
                proposal_id: r.get(0)?,
                capability: r.get(1)?,
                tenant_id: r.get(2)?,
                object_id: r.get(3)?,
                required_role: r.get(4)?,
                created_at: r.get(5)?,
                state: ProposalState::parse(&state).unwrap_or(ProposalState::Failed),
                expires_at: r.get(7)?,
                quorum: match r.get::<_, Option<u32>>("q_required")? {
                    Some(required) if required > 1 => Some(airlock_ipc::message::Quorum {
                        approvals: r.get("q_approvals")?,
                        required,
                    }),
                    _ => None,
                },
            },
            state,
        ))
    }

    const SUMMARY_COLUMNS: &'static str =
        "p.proposal_id, p.capability, p.tenant_id, p.object_id, p.required_role, p.created_at";

    /// Quorum progress, after every other column (read by name).
    fn quorum_columns(d: Dialect) -> String {
        format!(
            "(SELECT {} FROM events qe WHERE qe.seq = p.seq) AS q_required, \
             (SELECT COUNT(*) FROM votes qv WHERE qv.proposal_id = p.proposal_id) + (CASE WHEN d.decision = 'approved' THEN 1 ELSE 0 END) AS q_approvals",
            json_int(d, "qe.payload", "required_approvals")
        )
    }

    /// Newest first, optionally only one state.
    pub fn list(
        &self,
        status: Option<ProposalState>,
        limit: u32,
    ) -> Result<Vec<ProposalSummary>, LedgerError> {
        let now = Timestamp::now().ms;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {cols}, {STATE_SQL} AS state, p.expires_at, {quorum} FROM {FROM_PROPOSALS} \
             WHERE (?2 IS NULL OR ({STATE_SQL}) = ?2) ORDER BY p.created_ms DESC, p.seq DESC LIMIT ?3",
            cols = Self::SUMMARY_COLUMNS,
            quorum = Self::quorum_columns(self.conn.dialect())
        ))?;
        let rows = stmt.query_map(args![now, status.map(|s| s.as_str()), limit], |r| {
            Self::summary_from_row(r).map(|(s, _)| s)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The proposals built on one evidence record, oldest first.
    pub fn citing(
        &self,
        evidence_id: &str,
        limit: u32,
    ) -> Result<Vec<ProposalSummary>, LedgerError> {
        let now = Timestamp::now().ms;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {cols}, {STATE_SQL} AS state, p.expires_at, {quorum} FROM {FROM_PROPOSALS} \
             WHERE p.evidence_id = ?2 ORDER BY p.created_ms, p.seq LIMIT ?3",
            cols = Self::SUMMARY_COLUMNS,
            quorum = Self::quorum_columns(self.conn.dialect())
        ))?;
        let rows = stmt.query_map(args![now, evidence_id, limit], |r| {
            Self::summary_from_row(r).map(|(s, _)| s)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Resolve `latest` (the newest proposal) or check an id exists.
    pub fn resolve_id(&self, id_or_latest: &str) -> Result<Option<String>, LedgerError> {
        if id_or_latest == "latest" {
            return Ok(self
                .conn
                .query_row(
                    "SELECT proposal_id FROM proposals ORDER BY created_ms DESC, seq DESC LIMIT 1",
                    args![],
                    |r| r.get(0),
                )
                .optional()?);
        }
        Ok(self
            .conn
            .query_row(
                "SELECT proposal_id FROM proposals WHERE proposal_id = ?1",
                args![id_or_latest],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// One proposal with its change set, evidence and decisions.
    pub fn proposal(&self, proposal_id: &str) -> Result<Option<ProposalDetail>, LedgerError> {
        Self::proposal_in(&self.conn, proposal_id, Timestamp::now().ms)
    }

    /// `proposal`, on any connection (e.g. inside a transaction).
    fn proposal_in(
        conn: &Db,
        proposal_id: &str,
        now: i64,
    ) -> Result<Option<ProposalDetail>, LedgerError> {
        let row = conn
            .query_row(
                &format!(
                    "SELECT {cols}, {STATE_SQL} AS state, p.expires_at, p.proposal_hash, p.change_set, p.principal, p.proposer_uid, p.proposer_user, p.evidence_id, {quorum} \
                     FROM {FROM_PROPOSALS} WHERE p.proposal_id = ?2",
                    cols = Self::SUMMARY_COLUMNS,
                    quorum = Self::quorum_columns(conn.dialect())
                ),
                args![now, proposal_id],
                |r| {
                    let (summary, _) = Self::summary_from_row(r)?;
                    Ok((summary, r.get::<_, String>(8)?, r.get::<_, String>(9)?, r.get::<_, String>(10)?, r.get::<_, u32>(11)?, r.get::<_, Option<String>>(12)?, r.get::<_, Option<String>>(13)?))
                },
            )
            .optional()?;
        let Some((summary, proposal_hash, cs_text, principal, uid, user, evidence_id)) = row else {
            return Ok(None);
        };
        let change_set: ChangeSet =
            serde_json::from_str(&cs_text).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let evidence = match evidence_id {
            Some(id) => Self::evidence_in(conn, &id)?,
            None => None,
        };
        // Counted quorum approvals (`pending_approval`), then the decision.
        let mut stmt = conn.prepare_cached(
            "SELECT 'pending_approval', uid, \"user\", at, note, seq FROM votes WHERE proposal_id = ?1 \
             UNION ALL SELECT decision, uid, \"user\", at, note, seq FROM decisions WHERE proposal_id = ?1 ORDER BY 6",
        )?;
        let decisions = stmt
            .query_map(args![proposal_id], |r| {
                let d: String = r.get(0)?;
                Ok(Decision {
                    proposal_id: proposal_id.to_owned(),
                    state: ProposalState::parse(&d).unwrap_or(ProposalState::Failed),
                    by: Actor {
                        uid: r.get(1)?,
                        user: r.get(2)?,
                    },
                    at: r.get(3)?,
                    note: r.get(4)?,
                    quorum: None,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let dependencies = Self::dependencies_in(conn, proposal_id)?;
        Ok(Some(ProposalDetail {
            summary,
            proposal_hash,
            change_set,
            principal,
            proposed_by: Actor { uid, user },
            evidence,
            decisions,
            dependencies,
            compensated_by: Vec::new(),
        }))
    }

    fn event_from_row(r: &Row<'_>) -> DbResult<Event> {
        let uid: Option<u32> = r.get(5)?;
        let user: Option<String> = r.get(6)?;
        Ok(Event {
            seq: r.get::<_, i64>(0)? as u64,
            at: r.get(1)?,
            kind: r.get(2)?,
            proposal_id: r.get(3)?,
            evidence_id: r.get(4)?,
            actor: uid.map(|uid| Actor { uid, user }),
            hash: r.get(7)?,
        })
    }

    /// Events after `since`, oldest first.
    pub fn events_since(&self, since: u64, limit: u32) -> Result<Vec<Event>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at, kind, proposal_id, evidence_id, actor_uid, actor_user, hash FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(args![since as i64, limit], Self::event_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts for `stats`: proposals per state, evidence and events.
    pub fn counts(&self) -> Result<LedgerCounts, LedgerError> {
        let now = Timestamp::now().ms;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {STATE_SQL} AS state, COUNT(*) FROM {FROM_PROPOSALS} GROUP BY state"
        ))?;
        let per_state = stmt
            .query_map(args![now], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let evidence: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM evidence", args![], |r| r.get(0))?;
        let events: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM events", args![], |r| r.get(0))?;
        Ok(LedgerCounts {
            per_state,
            evidence: evidence as u64,
            events: events as u64,
        })
    }

    /// Decide how to apply `proposal_id`, and record the start of a new job.
    /// Runs as one unit on the ledger's only connection, so two callers cannot both start.
    ///
    /// The proposal's segment of the chain is verified first; anything that
    /// would run (a new or a resumed job) also needs `capability_digest`
    /// (the live capability's) to be the one the proposal was recorded under.
    pub fn begin_apply(
        &mut self,
        proposal_id: &str,
        executor: &str,
        idempotency_key: &str,
        actor: &ActorIdentity,
        capability_digest: &str,
    ) -> Result<ApplyStart, LedgerError> {
        let salt = self.id_salt.clone();
        let at = Timestamp::now();
        let lease = self.lease.as_ref();
        let tx = self.conn.savepoint()?;
        Self::verify_segment(&tx, proposal_id)?;
        let state: Option<String> = tx
            .query_row(
                &format!("SELECT {STATE_SQL} FROM {FROM_PROPOSALS} WHERE p.proposal_id = ?2"),
                args![at.ms, proposal_id],
                |r| r.get(0),
            )
            .optional()?;
        let state = state.ok_or_else(|| LedgerError::NotFound(proposal_id.to_owned()))?;
        let last_job: Option<(String, u32, Option<String>)> = tx
            .query_row(
                "SELECT j.job_id, j.attempt, r.status FROM jobs j LEFT JOIN receipts r ON r.job_id = j.job_id WHERE j.proposal_id = ?1 ORDER BY j.attempt DESC LIMIT 1",
                args![proposal_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let detail = |tx: &Db| -> Result<Box<ProposalDetail>, LedgerError> {
            Self::proposal_in(tx, proposal_id, at.ms)?
                .map(Box::new)
                .ok_or_else(|| LedgerError::NotFound(proposal_id.to_owned()))
        };
        // An apply interrupted before its receipt is resolved first, whatever the clock says.
        if let Some((job_id, attempt, None)) = &last_job {
            Self::check_digest(&tx, proposal_id, capability_digest)?;
            let d = detail(&tx)?;
            let fence = lease
                .map(|l| Self::claim_lease(&tx, proposal_id, l, at.ms))
                .transpose()?;
            tx.commit()?;
            return Ok(ApplyStart::Run {
                job_id: job_id.clone(),
                attempt: *attempt,
                resumed: true,
                detail: d,
                fence,
            });
        }
        match ProposalState::parse(&state) {
            Some(ProposalState::Approved) | Some(ProposalState::Failed) => {}
            Some(ProposalState::Applied) => {
                let receipt: String = tx.query_row(
                    "SELECT receipt FROM receipts WHERE proposal_id = ?1 AND status IN ('applied', 'already_applied') ORDER BY seq DESC LIMIT 1",
                    args![proposal_id],
                    |r| r.get(0),
                )?;
                return Ok(ApplyStart::Done {
                    receipt: serde_json::from_str(&receipt)
                        .map_err(|e| LedgerError::Corrupt(e.to_string()))?,
                });
            }
            Some(ProposalState::Expired) => {
                return Err(LedgerError::Expired(proposal_id.to_owned()));
            }
            Some(other) => {
                return Err(LedgerError::InvalidState {
                    id: proposal_id.to_owned(),
                    state: other.as_str(),
                });
            }
            None => return Err(LedgerError::Corrupt(format!("unknown state {state}"))),
        }
        Self::check_digest(&tx, proposal_id, capability_digest)?;
        let attempt = last_job.map_or(1, |(_, a, _)| a + 1);
        let next = Self::next_seq(&tx)?;
        let job_id = Self::new_id(&salt, "wbj", next);
        let record = json!({"job_id": job_id, "proposal_id": proposal_id, "attempt": attempt, "executor": executor, "idempotency_key": idempotency_key});
        let (seq, _) = Self::append_event(
            &tx,
            &at,
            "writeback_started",
            Some(proposal_id),
            None,
            Some(actor),
            &record,
        )?;
        tx.execute(
            "INSERT INTO jobs (job_id, proposal_id, seq, attempt, executor, idempotency_key, uid, \"user\", started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            args![job_id, proposal_id, seq, attempt, executor, idempotency_key, actor.uid, actor.user, at.text],
        )?;
        let d = detail(&tx)?;
        let fence = lease
            .map(|l| Self::claim_lease(&tx, proposal_id, l, at.ms))
            .transpose()?;
        tx.commit()?;
        Ok(ApplyStart::Run {
            job_id,
            attempt,
            resumed: false,
            detail: d,
            fence,
        })
    }

    /// Record the one terminal receipt of a job.
    pub fn record_receipt(&mut self, r: NewReceipt<'_>) -> Result<(), LedgerError> {
        Self::refuse_secrets(&json!({"receipt": r.receipt, "detail": r.detail}))?;
        let at = Timestamp::now();
        let tx = self.conn.savepoint()?;
        if let (Some(lease), Some(fence)) = (&self.lease, r.fence) {
            Self::end_lease(&tx, r.proposal_id, &lease.holder, fence)?;
        }
        let record = json!({"job_id": r.job_id, "proposal_id": r.proposal_id, "status": r.status, "receipt": r.receipt, "detail": r.detail});
        let (seq, _) = Self::append_event(
            &tx,
            &at,
            "writeback_finished",
            Some(r.proposal_id),
            None,
            None,
            &record,
        )?;
        let hash = r
            .receipt
            .get("receipt_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        tx.execute(
            "INSERT INTO receipts (job_id, proposal_id, seq, status, receipt, receipt_hash, detail, executed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![r.job_id, r.proposal_id, seq, r.status, canonical_json(r.receipt), hash, r.detail, at.text],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The whole story of one proposal, for `replay`.
    pub fn replay(&self, proposal_id: &str) -> Result<Option<ReplayRecord>, LedgerError> {
        let Some(proposal) = self.proposal(proposal_id)? else {
            return Ok(None);
        };
        let evidence_id = proposal.evidence.as_ref().map(|e| e.evidence_id.clone());
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, kind, proposal_id, evidence_id, actor_uid, actor_user, hash FROM events WHERE proposal_id = ?1 OR (?2 IS NOT NULL AND evidence_id = ?2 AND proposal_id IS NULL) ORDER BY seq",
        )?;
        let events = stmt
            .query_map(args![proposal_id, evidence_id], Self::event_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn.prepare("SELECT job_id, attempt, executor, idempotency_key, uid, \"user\", started_at FROM jobs WHERE proposal_id = ?1 ORDER BY attempt")?;
        let jobs = stmt
            .query_map(args![proposal_id], |r| {
                Ok(json!({
                    "job_id": r.get::<_, String>(0)?, "attempt": r.get::<_, u32>(1)?, "executor": r.get::<_, String>(2)?,
                    "idempotency_key": r.get::<_, String>(3)?, "started_by": {"uid": r.get::<_, u32>(4)?, "user": r.get::<_, Option<String>>(5)?},
                    "started_at": r.get::<_, String>(6)?,
                }))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self
            .conn
            .prepare("SELECT receipt, detail FROM receipts WHERE proposal_id = ?1 ORDER BY seq")?;
        let receipts = stmt
            .query_map(args![proposal_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .map(|row| {
                let (text, detail) = row?;
                let mut v: Value =
                    serde_json::from_str(&text).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
                if let (Some(d), Some(obj)) = (detail, v.as_object_mut()) {
                    obj.insert("detail".into(), Value::String(d));
                }
                Ok(v)
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        Ok(Some(ReplayRecord {
            proposal,
            events,
            jobs,
            receipts,
        }))
    }

    /// Recompute the hash chain; rebuild every record row from its event
    /// and compare it column by column; require exactly one row per record
    /// event and no row without its event; check the schema (tables,
    /// indexes, append-only triggers) is exactly the one this build creates.
    /// A pruned ledger's chain starts at the hash its latest `ledger_pruned`
    /// event records; an archive's at the hash its anchor records, and it
    /// must end at the anchor's last hash and hold only finished proposals.
    /// Reports the first break.
    pub fn verify(&self) -> Result<VerifyReport, LedgerError> {
        let integrity: String = match self.conn.as_sqlite() {
            Some(c) => c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?,
            None => "ok".into(),
        };
        let broken = |events: u64, head: String, seq: u64, why: String| VerifyReport {
            ok: false,
            events,
            head,
            first_break: Some((seq, why)),
            start_seq: 0,
            archive_of: None,
        };
        if integrity != "ok" {
            return Ok(broken(
                0,
                String::new(),
                0,
                format!("SQLite integrity check failed: {integrity}"),
            ));
        }
        if let Err(why) = self.check_schema()? {
            return Ok(broken(0, String::new(), 0, why));
        }
        // A file not yet migrated by an executor of this build (schema < 3).
        let legacy = self.schema_version()? < 3;
        let archive = match archive_anchor(&self.conn)? {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(why)) => return Ok(broken(0, String::new(), 0, why)),
        };
        let (start_seq, start_hash) = match &archive {
            Some(a) => (a.first_seq - 1, a.start_hash.clone()),
            None => match chain_start(&self.conn)? {
                Ok(start) => start,
                Err(why) => return Ok(broken(0, String::new(), 0, why)),
            },
        };
        let mut prev = start_hash;
        let mut expected_seq = start_seq + 1;
        let mut count = 0u64;
        let mut per_table = [0u64; RECORD_TABLES.len()];
        let mut after = i64::MIN;
        // In pages: the whole chain is never held in memory at once.
        loop {
            let page = self.conn.query_map(
                &format!(
                    "SELECT {} FROM events WHERE seq > ?1 ORDER BY seq LIMIT 4096",
                    StoredEvent::COLUMNS
                ),
                args![after],
                |r| Ok((r.get::<_, i64>(0)?, StoredEvent::from_row(r)?)),
            )?;
            if page.is_empty() {
                break;
            }
            for (seq, ev) in page {
                after = seq;
                let fail = |why: String| Ok(broken(count, prev.clone(), seq as u64, why));
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(why) => return fail(why),
                };
                if seq != expected_seq {
                    return fail(format!(
                        "expected event {expected_seq}, found {seq} (an event was removed)"
                    ));
                }
                if ev.prev_hash != prev {
                    return fail("prev_hash does not match the previous event's hash".into());
                }
                if ev.computed_hash() != ev.hash {
                    return fail(
                        "event contents do not match its hash (the event was altered)".into(),
                    );
                }
                let Some(t) = RECORD_TABLES
                    .iter()
                    .position(|t| t.kinds.contains(&ev.kind.as_str()))
                else {
                    return fail(format!("unknown event kind `{}`", ev.kind));
                };
                if let Err(why) =
                    Self::check_record(&self.conn, &RECORD_TABLES[t], &ev, true, legacy)
                {
                    return fail(why);
                }
                per_table[t] += 1;
                prev = ev.hash;
                expected_seq += 1;
                count += 1;
            }
        }
        // One row per record event (checked above), and no other rows.
        for (t, events) in RECORD_TABLES.iter().zip(per_table) {
            // An older schema lacks the newer tables (check_schema allowed it).
            if !table_exists(&self.conn, t.table)? {
                continue;
            }
            let rows: i64 = self.conn.query_row(
                &format!("SELECT COUNT(*) FROM {}", t.table),
                args![],
                |r| r.get(0),
            )?;
            if rows as u64 != events {
                let stray: Option<i64> = self
                    .conn
                    .query_row(
                        &format!(
                            "SELECT seq FROM {} WHERE seq NOT IN (SELECT seq FROM events WHERE kind IN ({})) LIMIT 1",
                            t.table,
                            t.kinds.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
                        ),
                        args![],
                        |r| r.get(0),
                    )
                    .optional()?;
                let why = match stray {
                    Some(s) => format!(
                        "a {} row points at event {s}, which is not its event (a row was added)",
                        t.what
                    ),
                    None => format!(
                        "the {} table has {rows} rows for {events} events (a row was added)",
                        t.table
                    ),
                };
                return Ok(broken(count, prev, stray.unwrap_or(0).max(0) as u64, why));
            }
        }
        if let Some(a) = &archive {
            let last = expected_seq - 1;
            if last != a.through_seq || prev != a.through_hash {
                return Ok(broken(
                    count,
                    prev,
                    last.max(0) as u64,
                    format!(
                        "the archive ends at event {last}, but its prune recorded event {} with hash {} (events were removed or added)",
                        a.through_seq, a.through_hash
                    ),
                ));
            }
            if let Some(id) = self.unfinished_proposal()? {
                return Ok(broken(
                    count,
                    prev,
                    0,
                    format!("the archive holds proposal {id}, which is not finished"),
                ));
            }
        }
        Ok(VerifyReport {
            ok: true,
            events: count,
            head: prev,
            first_break: None,
            start_seq: start_seq.max(0) as u64,
            archive_of: archive.map(|a| (a.prune_seq.max(0) as u64, a.prune_hash)),
        })
    }

    /// The schema version the ledger was migrated to.
    fn schema_version(&self) -> Result<i64, LedgerError> {
        match self.conn.as_sqlite() {
            Some(c) => Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?),
            None => Ok(pg_schema::version(&self.conn)?),
        }
    }

    /// A proposal of this file that is not finished (for archives, which
    /// must hold none): judged by its rows alone, not by the clock.
    fn unfinished_proposal(&self) -> Result<Option<String>, LedgerError> {
        let rows = self.conn.query_map(
            &format!(
                "SELECT p.proposal_id, {STATE_SQL}, EXISTS (SELECT 1 FROM jobs j WHERE j.proposal_id = p.proposal_id \
                 AND NOT EXISTS (SELECT 1 FROM receipts x WHERE x.job_id = j.job_id)) FROM {FROM_PROPOSALS} ORDER BY p.seq"
            ),
            args![i64::MIN],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?)),
        )?;
        for (id, state, in_doubt) in rows {
            if !airlock_policy::prune::is_finished(&state, in_doubt) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The hash of event `seq` in this file, if it holds that event.
    pub fn event_hash(&self, seq: u64) -> Result<Option<String>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT hash FROM events WHERE seq = ?1",
                args![seq as i64],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The ledger's schema must be exactly what this build's migrations
    /// create for its `user_version`: every table, index and append-only
    /// trigger, with the same SQL, and nothing else. `Ok(Err(why))` when
    /// it is not.
    fn check_schema(&self) -> Result<Result<(), String>, LedgerError> {
        let Some(conn) = self.conn.as_sqlite() else {
            return pg_schema::check(&self.conn);
        };
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if !(0..=SCHEMA_VERSION).contains(&version) {
            return Ok(Err(format!(
                "the ledger's schema version {version} is not one this build knows"
            )));
        }
        let reference = Connection::open_in_memory()?;
        for sql in MIGRATIONS.iter().take(version as usize) {
            reference.execute_batch(sql)?;
        }
        if is_archive(&self.conn)? {
            if version != SCHEMA_VERSION {
                return Ok(Err(format!(
                    "the archive's schema version {version} is not {SCHEMA_VERSION}"
                )));
            }
            reference.execute_batch(ARCHIVE_SQL)?;
        }
        let want = schema_of(&reference)?;
        let have = schema_of(conn)?;
        for (key, sql) in &want {
            match have.get(key) {
                None => {
                    return Ok(Err(format!(
                        "the ledger's {} `{}` is missing (the schema was changed)",
                        key.0, key.1
                    )));
                }
                Some(found) if found != sql => {
                    return Ok(Err(format!(
                        "the ledger's {} `{}` is not the one Airlock creates (the schema was changed)",
                        key.0, key.1
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(key) = have.keys().find(|k| !want.contains_key(*k)) {
            return Ok(Err(format!(
                "the ledger has an extra {} `{}` (the schema was changed)",
                key.0, key.1
            )));
        }
        Ok(Ok(()))
    }

    /// Rebuild the record row of event `ev` from the event (its payload and
    /// its own hashed columns) and compare it with the stored row, column
    /// by column. `full` also recomputes a proposal's hash from its change
    /// set (both are inside the hashed payload, so the per-proposal checks
    /// of approve and apply skip it).
    fn check_record(
        conn: &Db,
        table: &RecordTable,
        ev: &StoredEvent,
        full: bool,
        legacy: bool,
    ) -> Result<(), String> {
        let payload: Value =
            serde_json::from_str(&ev.payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        let expected = expected_row(ev, &payload, full)?;
        let sql = if legacy && table.table == "proposals" {
            LEGACY_PROPOSAL_ROW_SQL.to_owned()
        } else {
            table.row_sql(conn.dialect())
        };
        let row: Option<String> = conn
            .query_opt(&sql, args![ev.seq], |r| r.get::<_, String>(0))
            .map_err(|e| {
                format!(
                    "the {} row of event {} cannot be read: {e}",
                    table.what, ev.seq
                )
            })?;
        let Some(row) = row else {
            return Err(format!(
                "event {} has no {} row (the row was removed or moved)",
                ev.seq, table.what
            ));
        };
        let row: Value = serde_json::from_str(&row).map_err(|e| e.to_string())?;
        if row == expected || canonical_json(&row) == canonical_json(&expected) {
            return Ok(());
        }
        let column = expected
            .as_object()
            .and_then(|want| {
                want.iter()
                    .find(|(k, v)| {
                        row.get(k.as_str()).map(canonical_json) != Some(canonical_json(v))
                    })
                    .map(|(k, _)| k.clone())
            })
            .unwrap_or_else(|| "?".into());
        Err(format!(
            "the {} row's `{column}` does not match its event (the row was altered)",
            table.what
        ))
    }

    /// Verify one proposal's segment of the chain, as approve, reject and
    /// apply do before acting: every event of the proposal and its
    /// evidence's event must match its hash and link to the event before
    /// it; each must have its one record row, matching column by column;
    /// and every decision, job and receipt row of the proposal must be one
    /// of those. `Ok` when the proposal does not exist at all (the caller
    /// answers `not_found`).
    fn verify_segment(conn: &Db, proposal_id: &str) -> Result<(), LedgerError> {
        let tampered = |why: String| LedgerError::Tampered {
            proposal_id: proposal_id.to_owned(),
            why,
        };
        let mut events = conn
            .prepare_cached(&format!(
                "SELECT {} FROM events WHERE proposal_id = ?1 ORDER BY seq",
                StoredEvent::COLUMNS
            ))?
            .query_map(args![proposal_id], StoredEvent::from_row)?
            .collect::<Result<Result<Vec<_>, String>, _>>()?
            .map_err(tampered)?;
        let row: Option<(i64, Option<String>)> = conn
            .prepare_cached("SELECT seq, evidence_id FROM proposals WHERE proposal_id = ?1")?
            .query_row(args![proposal_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((row_seq, evidence_id)) = row else {
            if events.is_empty() {
                return Ok(());
            }
            return Err(tampered("its proposal row is missing".into()));
        };
        let recorded: Vec<i64> = events
            .iter()
            .filter(|e| e.kind == "proposal_recorded")
            .map(|e| e.seq)
            .collect();
        if recorded != [row_seq] {
            return Err(tampered(format!(
                "its proposal row points at event {row_seq}, which is not the proposal's one recorded event"
            )));
        }
        if let Some(ev_id) = &evidence_id {
            let mut found = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM events WHERE evidence_id = ?1 AND kind = 'read_recorded'",
                    StoredEvent::COLUMNS
                ))?
                .query_map(args![ev_id], StoredEvent::from_row)?
                .collect::<Result<Result<Vec<_>, String>, _>>()?
                .map_err(tampered)?;
            if found.len() != 1 {
                return Err(tampered(format!(
                    "its evidence has {} read events, not one",
                    found.len()
                )));
            }
            events.append(&mut found);
        }
        // The hash of the event before each of these, in one query (on
        // PostgreSQL every query is a round trip).
        let prev_hashes: std::collections::HashMap<i64, String> = conn
            .query_map(
                // One `IN` over a UNION ALL: PostgreSQL plans an `OR` of two
                // `IN`s as a scan of every event.
                "SELECT seq, hash FROM events WHERE seq IN (SELECT seq - 1 FROM events WHERE proposal_id = ?1 UNION ALL SELECT seq - 1 FROM events WHERE evidence_id = ?2 AND kind = 'read_recorded')",
                args![proposal_id, evidence_id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )?
            .into_iter()
            .collect();
        let mut start: Option<(i64, String)> = None;
        for ev in &events {
            if ev.computed_hash() != ev.hash {
                return Err(tampered(format!(
                    "event {} does not match its hash (the event was altered)",
                    ev.seq
                )));
            }
            let mut prev: Option<String> = if ev.seq == 1 {
                Some(GENESIS_HASH.to_owned())
            } else {
                prev_hashes.get(&(ev.seq - 1)).cloned()
            };
            // The first event after a prune links to the archive's last one.
            if prev.is_none() {
                if start.is_none() {
                    start = chain_start(conn)?.ok();
                }
                prev = start
                    .as_ref()
                    .filter(|(seq, _)| *seq == ev.seq - 1)
                    .map(|(_, hash)| hash.clone());
            }
            if prev.as_deref() != Some(ev.prev_hash.as_str()) {
                return Err(tampered(format!(
                    "event {} does not link to the event before it",
                    ev.seq
                )));
            }
            let Some(table) = RECORD_TABLES
                .iter()
                .find(|t| t.kinds.contains(&ev.kind.as_str()))
            else {
                return Err(tampered(format!("unknown event kind `{}`", ev.kind)));
            };
            Self::check_record(conn, table, ev, false, false).map_err(tampered)?;
        }
        // Every decision, job and receipt row of the proposal is one of the
        // rows just checked (a row added with another key points at an
        // event that is not the proposal's own). One query for the five
        // tables; a receipt is the proposal's by its own column or by its
        // job's (two indexed branches, not an `OR`, which PostgreSQL plans
        // as a scan of every receipt; `proposal_id` is NOT NULL, so the
        // second branch is exactly the rows the first does not return).
        let rows: Vec<(String, i64)> = conn.query_map(
            "SELECT 'decisions', seq FROM decisions WHERE proposal_id = ?1 \
             UNION ALL SELECT 'votes', seq FROM votes WHERE proposal_id = ?1 \
             UNION ALL SELECT 'stale_approvals', seq FROM stale_approvals WHERE proposal_id = ?1 \
             UNION ALL SELECT 'jobs', seq FROM jobs WHERE proposal_id = ?1 \
             UNION ALL SELECT 'receipts', seq FROM receipts WHERE proposal_id = ?1 \
             UNION ALL SELECT 'receipts', seq FROM receipts WHERE job_id IN (SELECT job_id FROM jobs WHERE proposal_id = ?1) AND proposal_id <> ?1",
            args![proposal_id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )?;
        for table in ["decisions", "votes", "stale_approvals", "jobs", "receipts"] {
            let Some(t) = RECORD_TABLES.iter().find(|t| t.table == table) else {
                continue;
            };
            let own: Vec<i64> = events
                .iter()
                .filter(|e| t.kinds.contains(&e.kind.as_str()))
                .map(|e| e.seq)
                .collect();
            let seqs: Vec<i64> = rows
                .iter()
                .filter(|(name, _)| name == table)
                .map(|(_, seq)| *seq)
                .collect();
            if let Some(stray) = seqs.iter().find(|s| !own.contains(s)) {
                return Err(tampered(format!(
                    "a {} row points at event {stray}, which is not its event (a row was added)",
                    t.what
                )));
            }
            if seqs.len() != own.len() {
                return Err(tampered(format!(
                    "{} {} rows for {} events",
                    seqs.len(),
                    t.what,
                    own.len()
                )));
            }
        }
        Ok(())
    }

    /// The proposal must have been recorded under `live`, the digest of the
    /// capability as configured now.
    /// Inside a decision's transaction: the proposal's segment of the chain
    /// verifies, it is still pending (not expired, decided or applied) at
    /// `at`, and the live capability is the one it was recorded under.
    fn check_still_pending(
        tx: &Db,
        at: &Timestamp,
        proposal_id: &str,
        capability_digest: &str,
    ) -> Result<(), LedgerError> {
        Self::verify_segment(tx, proposal_id)?;
        let state: Option<String> = tx
            .query_row(
                &format!("SELECT {STATE_SQL} FROM {FROM_PROPOSALS} WHERE p.proposal_id = ?2"),
                args![at.ms, proposal_id],
                |r| r.get(0),
            )
            .optional()?;
        let state = state.ok_or_else(|| LedgerError::NotFound(proposal_id.to_owned()))?;
        match ProposalState::parse(&state) {
            Some(ProposalState::PendingApproval) => {}
            Some(ProposalState::Expired) => {
                return Err(LedgerError::Expired(proposal_id.to_owned()));
            }
            Some(other) => {
                return Err(LedgerError::InvalidState {
                    id: proposal_id.to_owned(),
                    state: other.as_str(),
                });
            }
            None => return Err(LedgerError::Corrupt(format!("unknown state {state}"))),
        }
        Self::check_digest(tx, proposal_id, capability_digest)
    }

    fn check_digest(conn: &Db, proposal_id: &str, live: &str) -> Result<(), LedgerError> {
        let recorded: Option<String> = conn
            .prepare_cached("SELECT capability_digest FROM proposals WHERE proposal_id = ?1")?
            .query_row(args![proposal_id], |r| r.get(0))
            .optional()?
            .flatten();
        if recorded.as_deref() == Some(live) {
            return Ok(());
        }
        Err(LedgerError::ConfigChanged {
            proposal_id: proposal_id.to_owned(),
            recorded,
            live: live.to_owned(),
        })
    }

    /// Whether a decision on the proposal could be recorded as far as its
    /// record goes: its segment verifies and it was recorded under `live`
    /// (checked before an approval re-reads the source, so a changed
    /// config answers `config_changed`, not a source error).
    pub fn check_decidable(&self, proposal_id: &str, live: &str) -> Result<(), LedgerError> {
        Self::verify_segment(&self.conn, proposal_id)?;
        Self::check_digest(&self.conn, proposal_id, live)
    }

    /// `proposal`, after verifying the proposal's segment of the chain
    /// (`LedgerError::Tampered` when it does not verify).
    pub fn verified_proposal(
        &self,
        proposal_id: &str,
    ) -> Result<Option<ProposalDetail>, LedgerError> {
        Self::verify_segment(&self.conn, proposal_id)?;
        self.proposal(proposal_id)
    }

    /// For `airlock revert`: the proposal, after verifying its segment of
    /// the chain (its receipts included), and its newest applied receipt.
    pub fn revert_source(
        &self,
        proposal_id: &str,
    ) -> Result<Option<(ProposalDetail, Option<Value>)>, LedgerError> {
        let Some(detail) = self.verified_proposal(proposal_id)? else {
            return Ok(None);
        };
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT receipt FROM receipts WHERE proposal_id = ?1 AND status IN ('applied', 'already_applied') ORDER BY seq DESC LIMIT 1",
                args![proposal_id],
                |r| r.get(0),
            )
            .optional()?;
        let receipt = text
            .map(|t| serde_json::from_str::<Value>(&t))
            .transpose()
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        Ok(Some((detail, receipt)))
    }

    /// The compensations recorded for a proposal (`airlock revert`), oldest
    /// first: the proposals whose change set names it in
    /// `compensation.reverts_proposal_id`.
    pub fn compensations_of(&self, proposal_id: &str) -> Result<Vec<String>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT proposal_id FROM proposals WHERE {} = ?1 ORDER BY seq",
            match self.conn.dialect() {
                Dialect::Sqlite => "json_extract(change_set, '$.compensation.reverts_proposal_id')",
                Dialect::Postgres => "(change_set::jsonb #>> '{compensation,reverts_proposal_id}')",
            }
        ))?;
        let ids = stmt
            .query_map(args![proposal_id], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Record a compensation of `reverts` — unless one is already pending,
    /// approved, applied or failed (retryable), which is returned instead:
    /// one change has at most one live or completed compensation. Checked
    /// and recorded in one call, so two racing reverts cannot both pass.
    pub fn record_compensation(
        &mut self,
        p: NewProposal<'_>,
        required_approvals: u32,
        reverts: &str,
    ) -> Result<Result<RecordedProposal, (String, ProposalState)>, LedgerError> {
        for child in self.compensations_of(reverts)? {
            if let Some(d) = self.proposal(&child)?
                && matches!(
                    d.summary.state,
                    ProposalState::PendingApproval
                        | ProposalState::Approved
                        | ProposalState::Applied
                        | ProposalState::Failed
                )
            {
                return Ok(Err((child, d.summary.state)));
            }
        }
        self.record_bound_proposal(p, required_approvals, &[])
            .map(Ok)
    }
}

/// A prune, as the operator asked for it.
pub struct PruneRequest<'a> {
    /// Finished proposals whose last event is before this move.
    pub before: &'a Timestamp,
    /// The archive to create (absolute; must not exist).
    pub archive: &'a Path,
    pub actor: &'a ActorIdentity,
}

/// What a prune did.
#[derive(Debug, Clone)]
pub struct PruneOutcome {
    pub plan: PrunePlan,
    /// The archive's first event (0 when nothing moved).
    pub first_seq: i64,
    pub through_hash: Option<String>,
    /// The `ledger_pruned` event (`None` when nothing moved).
    pub event: Option<Event>,
}

/// `airlock ledger stats`: what the ledger holds and how fast it grows.
#[derive(Debug, Clone)]
pub struct LifecycleStats {
    pub counts: LedgerCounts,
    /// The oldest pending proposal: (id, created at, created ms).
    pub oldest_pending: Option<(String, String, i64)>,
    /// Events per UTC day, the last 7 days (oldest first, zeros included).
    pub events_per_day: Vec<(String, u64)>,
    /// The seq the chain continues from (0, or the last pruned event).
    pub start_seq: u64,
    pub head_seq: u64,
}

/// Removes the files it holds when dropped, unless kept: a prune's archive
/// must not outlive a prune that did not happen.
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Ledger {
    /// Record an `expired` event for each proposal whose time to live has
    /// passed (its state by the clock is `expired`) and that has none yet,
    /// with `expires_ms` after `after_ms` when given (the last sweep's
    /// time: none before it can newly expire), at most `limit` of them.
    /// Returns their ids.
    pub fn sweep_expired(
        &mut self,
        after_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<String>, LedgerError> {
        let at = Timestamp::now();
        let tx = self.conn.savepoint()?;
        let due: Vec<(String, String)> = tx
            .prepare_cached(&format!(
                "SELECT p.proposal_id, p.expires_at FROM {FROM_PROPOSALS} \
                 WHERE p.expires_ms <= ?1 AND p.expires_ms > ?2 \
                 AND NOT EXISTS (SELECT 1 FROM expirations e WHERE e.proposal_id = p.proposal_id) \
                 AND ({STATE_SQL}) = 'expired' ORDER BY p.expires_ms, p.seq LIMIT ?3"
            ))?
            .query_map(args![at.ms, after_ms.unwrap_or(i64::MIN), limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        for (id, expires_at) in &due {
            let record = json!({"proposal_id": id, "expires_at": expires_at});
            let (seq, _) = Self::append_event(&tx, &at, "expired", Some(id), None, None, &record)?;
            tx.prepare_cached(
                "INSERT INTO expirations (proposal_id, seq, expires_at, at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(args![id, seq, expires_at, at.text])?;
        }
        tx.commit()?;
        Ok(due.into_iter().map(|(id, _)| id).collect())
    }

    /// The soonest expiry after `now_ms` of any proposal (a wake-up hint
    /// for the sweep; decided proposals may be among them).
    pub fn next_expiry(&self, now_ms: i64) -> Result<Option<i64>, LedgerError> {
        Ok(self.conn.query_row(
            "SELECT MIN(expires_ms) FROM proposals WHERE expires_ms > ?1",
            args![now_ms],
            |r| r.get(0),
        )?)
    }

    /// Counts, the oldest pending proposal and the last 7 days' events.
    pub fn lifecycle_stats(&self, now: &Timestamp) -> Result<LifecycleStats, LedgerError> {
        let counts = self.counts()?;
        let oldest_pending = self
            .conn
            .query_row(
                &format!(
                    "SELECT p.proposal_id, p.created_at, p.created_ms FROM {FROM_PROPOSALS} \
                     WHERE ({STATE_SQL}) = 'pending_approval' ORDER BY p.created_ms, p.seq LIMIT 1"
                ),
                args![now.ms],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let days: Vec<String> = (0..7)
            .rev()
            .map(|d| Timestamp::from_ms(now.ms - d * 86_400_000).text[..10].to_owned())
            .collect();
        let mut per_day: std::collections::BTreeMap<String, u64> =
            days.iter().map(|d| (d.clone(), 0)).collect();
        let mut stmt = self.conn.prepare(
            "SELECT substr(at, 1, 10) AS day, COUNT(*) FROM events WHERE at >= ?1 GROUP BY day",
        )?;
        let rows = stmt.query_map(args![days[0]], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (day, n) = row?;
            if let Some(slot) = per_day.get_mut(&day) {
                *slot = n as u64;
            }
        }
        let head_seq: i64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", args![], |r| {
                    r.get(0)
                })?;
        let start_seq = chain_start(&self.conn)?.map_or(0, |(seq, _)| seq);
        Ok(LifecycleStats {
            counts,
            oldest_pending,
            events_per_day: per_day.into_iter().collect(),
            start_seq: start_seq.max(0) as u64,
            head_seq: head_seq.max(0) as u64,
        })
    }

    /// Copy the ledger, as one consistent snapshot, into `to` (a new file;
    /// SQLite's `VACUUM INTO` refuses an existing one). Works while the
    /// executor writes: the copy is read inside one read transaction.
    pub fn snapshot_into(&self, to: &Path) -> Result<(), LedgerError> {
        let target = to.to_str().ok_or_else(|| LedgerError::Archive {
            path: to.display().to_string(),
            why: "the path is not UTF-8".into(),
        })?;
        let conn = self.conn.as_sqlite().ok_or(LedgerError::NotSqlite)?;
        conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// Move the finished start of the ledger into a new archive file
    /// (docs/reliability.md, "Pruning"). Runs alone on the ledger's
    /// connection, outside any batch. First every due expiry is recorded,
    /// so the archive holds it. Then the archive — a ledger file of the
    /// prefix, plus a copy of the `ledger_pruned` event to come — is
    /// written, fsynced, verified and named; only then does one transaction
    /// delete the prefix and append that event. Any failure removes the
    /// archive and leaves the ledger as it was.
    pub fn prune(&mut self, req: PruneRequest<'_>) -> Result<PruneOutcome, LedgerError> {
        let archive_text = req.archive.display().to_string();
        Self::refuse_secrets(&json!({"archive": archive_text}))?;
        // A PostgreSQL ledger keeps its history (back it up with pg_dump).
        let conn = self.conn.as_sqlite().ok_or(LedgerError::NotSqlite)?;
        if !self.sync_full {
            conn.pragma_update(None, "synchronous", "FULL")?;
            self.sync_full = true;
        }
        while self.sweep_expired(None, 1000)?.len() == 1000 {}
        let now = Timestamp::now();
        let events = self.prune_events()?;
        let finished = self.finished_proposals(now.ms)?;
        // Explore's budgets are counted from the records of the last 24
        // hours: those stay whatever the cut-off.
        let before_ms = airlock_policy::explore::budget::prune_before(
            req.before.ms,
            self.first_explore_charge_in_window(now.ms)?,
        );
        let plan = prune_plan(&events, before_ms, |p| finished.contains(p));
        if plan.through_seq == 0 {
            return Ok(PruneOutcome {
                plan,
                first_seq: 0,
                through_hash: None,
                event: None,
            });
        }
        let (start_seq, start_hash) = chain_start(&self.conn)?.map_err(LedgerError::Corrupt)?;
        let hash_of = |seq: i64| -> Result<String, LedgerError> {
            Ok(self
                .conn
                .query_row("SELECT hash FROM events WHERE seq = ?1", args![seq], |r| {
                    r.get(0)
                })?)
        };
        let through_hash = hash_of(plan.through_seq)?;
        let head_seq: i64 = self
            .conn
            .query_row("SELECT MAX(seq) FROM events", args![], |r| r.get(0))?;
        let head_hash = hash_of(head_seq)?;
        let payload = json!({
            "cut_off": req.before.text,
            "first_seq": start_seq + 1,
            "start_hash": start_hash,
            "through_seq": plan.through_seq,
            "through_hash": through_hash,
            "events": plan.events,
            "proposals": plan.proposals,
            "evidence": plan.reads,
            "archive": archive_text,
        });
        let payload_text = canonical_json(&payload);
        let at = Timestamp::now();
        let anchor = StoredEvent {
            seq: head_seq + 1,
            at: at.text.clone(),
            kind: "ledger_pruned".into(),
            proposal_id: None,
            evidence_id: None,
            actor_uid: Some(req.actor.uid),
            actor_user: req.actor.user.clone(),
            payload: payload_text,
            prev_hash: head_hash,
            hash: String::new(),
        };
        let prune_hash = anchor.computed_hash();
        let mut archive =
            self.write_archive(req.archive, plan.through_seq, &anchor, &prune_hash)?;
        crate::writeback::fault::point("prune_archive_written");
        let event = self.remove_prefix(plan.through_seq, &at, &payload, req.actor, &prune_hash)?;
        // The ledger committed: the archive stays.
        archive.0.clear();
        Ok(PruneOutcome {
            plan,
            first_seq: start_seq + 1,
            through_hash: Some(through_hash),
            event: Some(event),
        })
    }

    /// Every event, in order, as the prune decision sees it.
    fn prune_events(&self) -> Result<Vec<PruneEvent>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at, proposal_id, evidence_id FROM events ORDER BY seq")?;
        let rows = stmt.query_map(args![], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, proposal_id, evidence_id) = row?;
            out.push(PruneEvent {
                seq,
                at_ms: ms_of(&at).map_err(LedgerError::Corrupt)?,
                proposal_id,
                evidence_id,
            });
        }
        Ok(out)
    }

    /// The ids of the finished proposals (`airlock_policy::prune::is_finished`).
    fn finished_proposals(
        &self,
        now_ms: i64,
    ) -> Result<std::collections::HashSet<String>, LedgerError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT p.proposal_id, {STATE_SQL}, EXISTS (SELECT 1 FROM jobs j WHERE j.proposal_id = p.proposal_id \
             AND NOT EXISTS (SELECT 1 FROM receipts x WHERE x.job_id = j.job_id)) FROM {FROM_PROPOSALS}"
        ))?;
        let rows = stmt.query_map(args![now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
        let mut out = std::collections::HashSet::new();
        for row in rows {
            let (id, state, in_doubt) = row?;
            if airlock_policy::prune::is_finished(&state, in_doubt) {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Write events 1‥`through` of this file (with their rows) and the
    /// anchor into a new archive at `path`: created beside it under a
    /// temporary name (0600, never over an existing file), committed,
    /// fsynced, verified, then linked to `path` (which must still not
    /// exist) and the directory fsynced. The returned guard removes the
    /// archive unless emptied.
    fn write_archive(
        &mut self,
        path: &Path,
        through: i64,
        anchor: &StoredEvent,
        prune_hash: &str,
    ) -> Result<RemoveOnDrop, LedgerError> {
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |why: String| LedgerError::Archive {
            path: path.display().to_string(),
            why,
        };
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(fail("it is not a file path".into()));
        };
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(fail(
                "a file of that name exists (an archive is never overwritten)".into(),
            ));
        }
        let tmp = dir.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| {
                // A leftover of a prune killed mid-way: never reused blindly.
                fail(format!(
                    "cannot create the temporary file {}: {e}",
                    tmp.display()
                ))
            })?;
        let mut guard = RemoveOnDrop(vec![tmp.clone()]);
        let tmp_text = tmp
            .to_str()
            .ok_or_else(|| fail("the path is not UTF-8".into()))?
            .to_owned();
        {
            let a = Connection::open_with_flags(
                &tmp,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NOFOLLOW,
            )?;
            a.pragma_update(None, "journal_mode", "DELETE")?;
            a.pragma_update(None, "synchronous", "FULL")?;
            let tx = a.unchecked_transaction()?;
            for sql in MIGRATIONS {
                tx.execute_batch(sql)?;
            }
            tx.execute_batch(ARCHIVE_SQL)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        }
        let conn = self.conn.as_sqlite_mut().ok_or(LedgerError::NotSqlite)?;
        conn.execute("ATTACH DATABASE ?1 AS archive", [&tmp_text])?;
        let copied = (|| -> Result<(), LedgerError> {
            let tx = conn.transaction()?;
            for table in PRUNED_TABLES.iter().rev() {
                tx.execute(
                    &format!(
                        "INSERT INTO archive.{table} SELECT * FROM main.{table} WHERE seq <= ?1"
                    ),
                    [through],
                )?;
            }
            tx.execute(
                "INSERT INTO archive.archive_anchor (prune_seq, at, actor_uid, actor_user, payload, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![anchor.seq, anchor.at, anchor.actor_uid, anchor.actor_user, anchor.payload, anchor.prev_hash, prune_hash],
            )?;
            tx.commit()?;
            Ok(())
        })();
        let detached = conn.execute("DETACH DATABASE archive", []);
        copied?;
        detached?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail(e.to_string()))?;
        // The same check `airlock ledger verify` makes, on the copy.
        let report = Ledger::open_read_only(&tmp)?.verify()?;
        if !report.ok || report.archive_of.as_ref().map(|(_, h)| h.as_str()) != Some(prune_hash) {
            let why = report
                .first_break
                .map_or_else(|| "it names another prune".to_owned(), |(_, w)| w);
            return Err(fail(format!("the written archive does not verify: {why}")));
        }
        std::fs::hard_link(&tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                fail("a file of that name exists (an archive is never overwritten)".into())
            } else {
                fail(e.to_string())
            }
        })?;
        guard.0.push(path.to_owned());
        let _ = std::fs::remove_file(&tmp);
        guard.0.retain(|p| p != &tmp);
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(e.to_string()))?;
        Ok(guard)
    }

    /// Append the `ledger_pruned` event and delete events 1‥`through` and
    /// their rows, in one transaction. The append-only triggers
    /// are lifted inside it and restored before it commits (SQLite's DDL is
    /// transactional): no other connection writes the ledger, and readers
    /// see the old file or the new one, never the triggers missing.
    fn remove_prefix(
        &mut self,
        through: i64,
        at: &Timestamp,
        payload: &Value,
        actor: &ActorIdentity,
        prune_hash: &str,
    ) -> Result<Event, LedgerError> {
        let tx = &self.conn;
        if tx.as_sqlite().is_none() {
            return Err(LedgerError::NotSqlite);
        }
        tx.execute_batch("BEGIN IMMEDIATE")?;
        let work = || -> Result<(i64, String), LedgerError> {
            // First the event, linked to the head (which may be pruned too).
            let (seq, hash) =
                Self::append_event(tx, at, "ledger_pruned", None, None, Some(actor), payload)?;
            if hash != prune_hash {
                return Err(LedgerError::Corrupt(
                    "the prune event is not the one its archive names".into(),
                ));
            }
            tx.execute(
                "INSERT INTO prunes (seq, cut_off, first_seq, start_hash, through_seq, through_hash, events, proposals, evidence, archive, uid, \"user\", at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                args![
                    seq, payload["cut_off"].as_str(), payload["first_seq"].as_i64(), payload["start_hash"].as_str(),
                    payload["through_seq"].as_i64(), payload["through_hash"].as_str(), payload["events"].as_i64(),
                    payload["proposals"].as_i64(), payload["evidence"].as_i64(), payload["archive"].as_str(),
                    actor.uid, actor.user, at.text
                ],
            )?;
            let triggers: Vec<(String, String)> = tx
                .prepare(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%\\_append\\_only\\_d' ESCAPE '\\' ORDER BY name",
                )?
                .query_map(args![], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (name, _) in &triggers {
                if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(LedgerError::Corrupt(format!("unexpected trigger {name}")));
                }
                tx.execute_batch(&format!("DROP TRIGGER {name}"))?;
            }
            for table in PRUNED_TABLES {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE seq <= ?1"),
                    args![through],
                )?;
            }
            // Finished deliveries of the moved events go with them (a pending
            // one stays: its body is self-contained and it is still owed).
            tx.execute(
                "DELETE FROM notification_deliveries WHERE event_seq <= ?1 AND state <> 'pending'",
                args![through],
            )?;
            for (_, sql) in &triggers {
                tx.execute_batch(sql)?;
            }
            if crate::writeback::fault::fails("prune_fail_before_commit") {
                return Err(LedgerError::Corrupt(
                    "fault injection: prune_fail_before_commit".into(),
                ));
            }
            Ok((seq, hash))
        };
        let (seq, hash) = match work() {
            Ok(done) => done,
            Err(e) => {
                let _ = tx.rollback();
                return Err(e);
            }
        };
        tx.commit()?;
        Ok(Event {
            seq: seq as u64,
            at: at.text.clone(),
            kind: "ledger_pruned".into(),
            proposal_id: None,
            evidence_id: None,
            actor: Some(actor.to_actor()),
            hash,
        })
    }
}

/// The salt of the ids an executor mints: unique across a fleet (several
/// hosts may share a pid and a start time), from the OS's randomness.
fn fleet_salt() -> String {
    crate::secret_token::random_hex(16)
        .unwrap_or_else(|_| format!("{}:{}", std::process::id(), Timestamp::now().ms))
}

pub use pg_schema::is_role_name as is_pg_role_name;

/// SQL for the integer at top-level `key` of the JSON text in `expr`.
fn json_int(d: Dialect, expr: &str, key: &str) -> String {
    match d {
        Dialect::Sqlite => format!("json_extract({expr}, '$.{key}')"),
        Dialect::Postgres => format!("(({expr})::jsonb ->> '{key}')::bigint"),
    }
}

/// Whether the file is a prune archive (it has an anchor table; archives
/// are SQLite files only).
fn is_archive(conn: &Db) -> Result<bool, LedgerError> {
    Ok(conn.dialect() == Dialect::Sqlite && table_exists(conn, "archive_anchor")?)
}

/// Whether the ledger has table `name` (an older schema lacks newer ones).
fn table_exists(conn: &Db, name: &str) -> Result<bool, LedgerError> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)"
        }
        Dialect::Postgres => {
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?1)"
        }
    };
    Ok(conn.one(sql, args![name])?)
}

/// Where a ledger's chain starts: (the seq before its first event, the
/// hash that event links to) — the genesis, or what the latest prune
/// recorded. `Ok(Err(why))` when the prune event is unreadable.
fn chain_start(conn: &Db) -> Result<Result<(i64, String), String>, LedgerError> {
    let latest: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT seq, payload FROM events WHERE kind = 'ledger_pruned' ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(args![], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((seq, payload)) = latest else {
        return Ok(Ok((0, GENESIS_HASH.to_owned())));
    };
    let p: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
    match (p["through_seq"].as_i64(), p["through_hash"].as_str()) {
        (Some(through), Some(hash)) if through > 0 && through < seq => {
            Ok(Ok((through, hash.to_owned())))
        }
        _ => Ok(Err(format!(
            "the prune event {seq} does not say where the chain continues from (the event was altered)"
        ))),
    }
}

/// An archive's anchor: the prune event that moved it out of the ledger.
struct ArchiveAnchor {
    prune_seq: i64,
    prune_hash: String,
    first_seq: i64,
    start_hash: String,
    through_seq: i64,
    through_hash: String,
}

/// The anchor of an archive (`None` for a ledger). `Some(Err(why))` when
/// it is not exactly one intact copy of a prune event.
fn archive_anchor(conn: &Db) -> Result<Option<Result<ArchiveAnchor, String>>, LedgerError> {
    if !is_archive(conn)? {
        return Ok(None);
    }
    let mut stmt = conn.prepare(
        "SELECT prune_seq, at, actor_uid, actor_user, payload, prev_hash, hash FROM archive_anchor",
    )?;
    let rows = stmt
        .query_map(args![], |r| {
            Ok(StoredEvent {
                seq: r.get(0)?,
                at: r.get(1)?,
                kind: "ledger_pruned".to_owned(),
                proposal_id: None,
                evidence_id: None,
                actor_uid: r.get(2)?,
                actor_user: r.get(3)?,
                payload: r.get(4)?,
                prev_hash: r.get(5)?,
                hash: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let [ev] = rows.as_slice() else {
        return Ok(Some(Err(format!(
            "the archive has {} anchors, not one (the anchor was removed or added)",
            rows.len()
        ))));
    };
    if ev.computed_hash() != ev.hash {
        return Ok(Some(Err(
            "the archive's anchor does not match its hash (the anchor was altered)".into(),
        )));
    }
    let p: Value = serde_json::from_str(&ev.payload).unwrap_or(Value::Null);
    let anchor = match (
        p["first_seq"].as_i64(),
        p["start_hash"].as_str(),
        p["through_seq"].as_i64(),
        p["through_hash"].as_str(),
    ) {
        (Some(first_seq), Some(start), Some(through_seq), Some(through))
            if first_seq >= 1 && first_seq <= through_seq && through_seq < ev.seq =>
        {
            ArchiveAnchor {
                prune_seq: ev.seq,
                prune_hash: ev.hash.clone(),
                first_seq,
                start_hash: start.to_owned(),
                through_seq,
                through_hash: through.to_owned(),
            }
        }
        _ => {
            return Ok(Some(Err(
                "the archive's anchor does not name the events it holds".into(),
            )));
        }
    };
    Ok(Some(Ok(anchor)))
}

/// The ledger's schema objects: (type, name) → (table, SQL).
type Schema = std::collections::BTreeMap<(String, String), (String, Option<String>)>;

fn schema_of(conn: &Connection) -> Result<Schema, LedgerError> {
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%'",
    )?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?))))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Unix milliseconds of an RFC 3339 time written by [`Timestamp`].
fn ms_of(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("`{text}` is not a time: {e}"))
}

/// The record row an event wrote, rebuilt from the event alone: its
/// payload and its own hashed columns (time, actor). Also checks the
/// event's id columns agree with its payload.
fn expected_row(ev: &StoredEvent, payload: &Value, full: bool) -> Result<Value, String> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let same = |column: &str, have: &Option<String>, want: Option<String>| {
        if *have == want {
            Ok(())
        } else {
            Err(format!(
                "event {}'s {column} does not match its payload (the event was altered)",
                ev.seq
            ))
        }
    };
    let (uid, user, at) = (ev.actor_uid, ev.actor_user.clone(), ev.at.clone());
    let p = |k: &str| payload.get(k).cloned().unwrap_or(Value::Null);
    match ev.kind.as_str() {
        "read_recorded" => {
            same("proposal_id", &ev.proposal_id, None)?;
            same("evidence_id", &ev.evidence_id, text(&p("evidence_id")))?;
            Ok(json!({
                "evidence_id": p("evidence_id"), "seq": ev.seq, "capability": p("capability"),
                "tenant_id": p("tenant_id"), "principal": p("principal"),
                "query_fingerprint": p("query_fingerprint"), "parameters": p("parameters"),
                "rows": p("rows"), "recorded_uid": uid, "recorded_user": user, "recorded_at": at,
            }))
        }
        "proposal_recorded" => {
            same("proposal_id", &ev.proposal_id, text(&p("proposal_id")))?;
            same("evidence_id", &ev.evidence_id, text(&p("evidence_id")))?;
            if full {
                let cs: ChangeSet = serde_json::from_value(p("change_set"))
                    .map_err(|e| format!("stored change set is invalid: {e}"))?;
                if payload["proposal_hash"].as_str() != Some(cs.hash().as_str()) {
                    return Err("the proposal hash does not match its change set".into());
                }
            }
            let cs = &payload["change_set"];
            let object_id = match cs.get("set") {
                Some(_) => serde_json::from_value::<ChangeSet>(cs.clone())
                    .map_err(|e| format!("stored change set is invalid: {e}"))?
                    .object_id(),
                None => scalar_text(&cs["target"]["primary_key"]["value"]),
            };
            let expires_at = text(&p("expires_at")).unwrap_or_default();
            Ok(json!({
                "proposal_id": p("proposal_id"), "seq": ev.seq, "capability": cs["capability"],
                "tenant_id": cs["tenant_id"], "object_id": object_id,
                "principal": cs["principal"], "change_set": p("change_set"),
                "proposal_hash": p("proposal_hash"), "evidence_id": p("evidence_id"),
                "required_role": p("required_role"), "proposer_uid": uid, "proposer_user": user,
                "created_ms": ms_of(&at)?, "created_at": at, "expires_ms": ms_of(&expires_at)?,
                "expires_at": expires_at, "capability_digest": p("capability_digest"),
            }))
        }
        "approved" | "rejected" => {
            same("proposal_id", &ev.proposal_id, text(&p("proposal_id")))?;
            if payload["decision"].as_str() != Some(ev.kind.as_str()) {
                return Err(format!(
                    "event {} is `{}` but its payload says otherwise (the event was altered)",
                    ev.seq, ev.kind
                ));
            }
            Ok(json!({
                "proposal_id": p("proposal_id"), "seq": ev.seq, "decision": p("decision"),
                "uid": uid, "user": user, "at_ms": ms_of(&at)?, "at": at, "note": p("note"),
            }))
        }
        "approval_counted" => {
            same("proposal_id", &ev.proposal_id, text(&p("proposal_id")))?;
            same("evidence_id", &ev.evidence_id, None)?;
            Ok(json!({
                "proposal_id": p("proposal_id"), "seq": ev.seq, "uid": uid, "user": user,
                "at": at, "note": p("note"),
            }))
        }
        "freshness_conflict" => {
            same("proposal_id", &ev.proposal_id, text(&p("proposal_id")))?;
            same("evidence_id", &ev.evidence_id, None)?;
            Ok(json!({
                "proposal_id": p("proposal_id"), "seq": ev.seq, "uid": uid, "user": user,
                "at": at, "detail": p("detail"),
            }))
        }
        "writeback_started" => {
            same("proposal_id", &ev.proposal_id, text(&p("proposal_id")))?;
            Ok(json!({
                "job_id": p("job_id"), "proposal_id": p("proposal_id"), "seq": ev.seq,
                "attempt": p("attempt"), "executor": p("executor"),
                "idempotency_key": p("idempotency_key"), "uid": uid, "user": user,
                "started_at": at,
            }))
        }
        "writeback_finished" => {
            same("proposal_id", &ev.proposal_id, text(&p("proposal_id")))?;
            let receipt_hash = payload["receipt"]
                .get("receipt_hash")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(json!({
                "job_id": p("job_id"), "proposal_id": p("proposal_id"), "seq": ev.seq,
                "status": p("status"), "receipt": p("receipt"), "receipt_hash": receipt_hash,
                "detail": p("detail"), "executed_at": at,
            }))
        }
        "expired" => {
            same("proposal_id", &ev.proposal_id, text(&p("proposal_id")))?;
            same("evidence_id", &ev.evidence_id, None)?;
            let expires_at = text(&p("expires_at")).unwrap_or_default();
            if ms_of(&expires_at)? > ms_of(&at)? {
                return Err(format!(
                    "event {} records an expiry before the proposal expired (the event was forged)",
                    ev.seq
                ));
            }
            Ok(json!({
                "proposal_id": p("proposal_id"), "seq": ev.seq, "expires_at": expires_at, "at": at,
            }))
        }
        "explore_query" => {
            same("proposal_id", &ev.proposal_id, None)?;
            same("evidence_id", &ev.evidence_id, None)?;
            // Flags are JSON booleans in the payload, 0 or 1 in the row.
            let flag = |k: &str| match p(k) {
                Value::Bool(b) => json!(i64::from(b)),
                other => other,
            };
            Ok(json!({
                "query_id": p("query_id"), "seq": ev.seq, "reservation_id": p("reservation_id"),
                "tenant_id": p("tenant_id"), "principal": p("principal"), "resource": p("resource"),
                "variant": p("variant"), "cohort": p("cohort"), "plan": p("plan"),
                "outcome": p("outcome"), "reason": p("reason"), "cells": p("cells"),
                "suppressed_groups": p("suppressed_groups"), "charged_query": flag("charged_query"),
                "charged_variant": flag("charged_variant"), "complete_release": flag("complete_release"),
                "suppression_release": flag("suppression_release"), "charged_ms": p("charged_ms"),
                "uid": uid, "user": user, "at_ms": ms_of(&at)?, "at": at,
            }))
        }
        "ledger_pruned" => {
            same("proposal_id", &ev.proposal_id, None)?;
            same("evidence_id", &ev.evidence_id, None)?;
            Ok(json!({
                "seq": ev.seq, "cut_off": p("cut_off"), "first_seq": p("first_seq"),
                "start_hash": p("start_hash"), "through_seq": p("through_seq"),
                "through_hash": p("through_hash"), "events": p("events"),
                "proposals": p("proposals"), "evidence": p("evidence"), "archive": p("archive"),
                "uid": uid, "user": user, "at": at,
            }))
        }
        other => Err(format!("unknown event kind `{other}`")),
    }
}

/// The proposals row of a ledger not yet migrated to schema 3 (read-only
/// `verify` of an older file): it has no `capability_digest` column, and
/// its payloads carry none.
const LEGACY_PROPOSAL_ROW_SQL: &str = "SELECT json_object('proposal_id', proposal_id, 'seq', seq, 'capability', capability, 'tenant_id', tenant_id, 'object_id', object_id, 'principal', principal, 'change_set', json(change_set), 'proposal_hash', proposal_hash, 'evidence_id', evidence_id, 'required_role', required_role, 'proposer_uid', proposer_uid, 'proposer_user', proposer_user, 'created_at', created_at, 'created_ms', created_ms, 'expires_at', expires_at, 'expires_ms', expires_ms, 'capability_digest', NULL) FROM proposals WHERE seq = ?1";

/// A table of record rows, written one per event of `kinds`.
struct RecordTable {
    kinds: &'static [&'static str],
    table: &'static str,
    what: &'static str,
    /// Every column of the row, as (JSON key, column, holds JSON text).
    columns: &'static [(&'static str, &'static str, bool)],
}

const RECORD_TABLES: &[RecordTable] = &[
    RecordTable {
        kinds: &["read_recorded"],
        table: "evidence",
        what: "evidence",
        columns: &[
            ("evidence_id", "evidence_id", false),
            ("seq", "seq", false),
            ("capability", "capability", false),
            ("tenant_id", "tenant_id", false),
            ("principal", "principal", false),
            ("query_fingerprint", "query_fingerprint", false),
            ("parameters", "parameters", true),
            ("rows", "rows_json", true),
            ("recorded_uid", "recorded_uid", false),
            ("recorded_user", "recorded_user", false),
            ("recorded_at", "recorded_at", false),
        ],
    },
    RecordTable {
        kinds: &["proposal_recorded"],
        table: "proposals",
        what: "proposal",
        columns: &[
            ("proposal_id", "proposal_id", false),
            ("seq", "seq", false),
            ("capability", "capability", false),
            ("tenant_id", "tenant_id", false),
            ("object_id", "object_id", false),
            ("principal", "principal", false),
            ("change_set", "change_set", true),
            ("proposal_hash", "proposal_hash", false),
            ("evidence_id", "evidence_id", false),
            ("required_role", "required_role", false),
            ("proposer_uid", "proposer_uid", false),
            ("proposer_user", "proposer_user", false),
            ("created_at", "created_at", false),
            ("created_ms", "created_ms", false),
            ("expires_at", "expires_at", false),
            ("expires_ms", "expires_ms", false),
            ("capability_digest", "capability_digest", false),
        ],
    },
    RecordTable {
        kinds: &["approved", "rejected"],
        table: "decisions",
        what: "decision",
        columns: &[
            ("proposal_id", "proposal_id", false),
            ("seq", "seq", false),
            ("decision", "decision", false),
            ("uid", "uid", false),
            ("user", "user", false),
            ("at", "at", false),
            ("at_ms", "at_ms", false),
            ("note", "note", false),
        ],
    },
    RecordTable {
        kinds: &["approval_counted"],
        table: "votes",
        what: "quorum approval",
        columns: &[
            ("proposal_id", "proposal_id", false),
            ("seq", "seq", false),
            ("uid", "uid", false),
            ("user", "user", false),
            ("at", "at", false),
            ("note", "note", false),
        ],
    },
    RecordTable {
        kinds: &["freshness_conflict"],
        table: "stale_approvals",
        what: "freshness conflict",
        columns: &[
            ("proposal_id", "proposal_id", false),
            ("seq", "seq", false),
            ("uid", "uid", false),
            ("user", "user", false),
            ("at", "at", false),
            ("detail", "detail", false),
        ],
    },
    RecordTable {
        kinds: &["writeback_started"],
        table: "jobs",
        what: "writeback job",
        columns: &[
            ("job_id", "job_id", false),
            ("proposal_id", "proposal_id", false),
            ("seq", "seq", false),
            ("attempt", "attempt", false),
            ("executor", "executor", false),
            ("idempotency_key", "idempotency_key", false),
            ("uid", "uid", false),
            ("user", "user", false),
            ("started_at", "started_at", false),
        ],
    },
    RecordTable {
        kinds: &["writeback_finished"],
        table: "receipts",
        what: "receipt",
        columns: &[
            ("job_id", "job_id", false),
            ("proposal_id", "proposal_id", false),
            ("seq", "seq", false),
            ("status", "status", false),
            ("receipt", "receipt", true),
            ("receipt_hash", "receipt_hash", false),
            ("detail", "detail", false),
            ("executed_at", "executed_at", false),
        ],
    },
    RecordTable {
        kinds: &["expired"],
        table: "expirations",
        what: "expiry",
        columns: &[
            ("proposal_id", "proposal_id", false),
            ("seq", "seq", false),
            ("expires_at", "expires_at", false),
            ("at", "at", false),
        ],
    },
    RecordTable {
        kinds: &["explore_query"],
        table: "explore_queries",
        what: "explore query",
        columns: &[
            ("query_id", "query_id", false),
            ("seq", "seq", false),
            ("reservation_id", "reservation_id", false),
            ("tenant_id", "tenant_id", false),
            ("principal", "principal", false),
            ("resource", "resource", false),
            ("variant", "variant", false),
            ("cohort", "cohort", false),
            ("plan", "plan", true),
            ("outcome", "outcome", false),
            ("reason", "reason", false),
            ("cells", "cells", false),
            ("suppressed_groups", "suppressed_groups", false),
            ("charged_query", "charged_query", false),
            ("charged_variant", "charged_variant", false),
            ("complete_release", "complete_release", false),
            ("suppression_release", "suppression_release", false),
            ("charged_ms", "charged_ms", false),
            ("uid", "uid", false),
            ("user", "user", false),
            ("at", "at", false),
            ("at_ms", "at_ms", false),
        ],
    },
    RecordTable {
        kinds: &["ledger_pruned"],
        table: "prunes",
        what: "prune",
        columns: &[
            ("seq", "seq", false),
            ("cut_off", "cut_off", false),
            ("first_seq", "first_seq", false),
            ("start_hash", "start_hash", false),
            ("through_seq", "through_seq", false),
            ("through_hash", "through_hash", false),
            ("events", "events", false),
            ("proposals", "proposals", false),
            ("evidence", "evidence", false),
            ("archive", "archive", false),
            ("uid", "uid", false),
            ("user", "user", false),
            ("at", "at", false),
        ],
    },
];

/// One event as stored.
struct StoredEvent {
    seq: i64,
    at: String,
    kind: String,
    proposal_id: Option<String>,
    evidence_id: Option<String>,
    actor_uid: Option<u32>,
    actor_user: Option<String>,
    payload: String,
    prev_hash: String,
    hash: String,
}

impl RecordTable {
    /// The row with `seq = ?1` as one JSON object, in the ledger's dialect.
    fn row_sql(&self, dialect: Dialect) -> String {
        let fields = self
            .columns
            .iter()
            .map(|(key, column, json)| match (dialect, json) {
                (Dialect::Sqlite, false) => format!("'{key}', \"{column}\""),
                (Dialect::Sqlite, true) => format!("'{key}', json(\"{column}\")"),
                (Dialect::Postgres, false) => format!("'{key}', \"{column}\""),
                (Dialect::Postgres, true) => format!("'{key}', \"{column}\"::json"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        match dialect {
            Dialect::Sqlite => format!(
                "SELECT json_object({fields}) FROM {} WHERE seq = ?1",
                self.table
            ),
            Dialect::Postgres => format!(
                "SELECT json_build_object({fields})::text FROM {} WHERE seq = ?1",
                self.table
            ),
        }
    }
}

impl StoredEvent {
    const COLUMNS: &'static str =
        "seq, at, kind, proposal_id, evidence_id, actor_uid, actor_user, payload, prev_hash, hash";

    /// `Ok(Err(why))` for a row no executor writes (an actor uid out of range).
    fn from_row(r: &Row<'_>) -> DbResult<Result<StoredEvent, String>> {
        let seq: i64 = r.get(0)?;
        let actor_uid = match r.get::<_, Option<i64>>(5)?.map(u32::try_from).transpose() {
            Ok(uid) => uid,
            Err(_) => return Ok(Err(format!("event {seq}'s actor uid is out of range"))),
        };
        Ok(Ok(StoredEvent {
            seq,
            at: r.get(1)?,
            kind: r.get(2)?,
            proposal_id: r.get(3)?,
            evidence_id: r.get(4)?,
            actor_uid,
            actor_user: r.get(6)?,
            payload: r.get(7)?,
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
        }))
    }

    /// The hash of this event's columns, its stored `prev_hash` included.
    fn computed_hash(&self) -> String {
        ChainLink {
            prev_hash: &self.prev_hash,
            seq: self.seq,
            at: &self.at,
            kind: &self.kind,
            proposal_id: self.proposal_id.as_deref(),
            evidence_id: self.evidence_id.as_deref(),
            actor_uid: self.actor_uid,
            actor_user: self.actor_user.as_deref(),
            payload: &self.payload,
        }
        .hash()
    }
}

/// One event's fields, as hashed into the chain.
#[derive(Debug, Clone, serde::Serialize)]
struct ChainLink<'a> {
    prev_hash: &'a str,
    seq: i64,
    at: &'a str,
    kind: &'a str,
    proposal_id: Option<&'a str>,
    evidence_id: Option<&'a str>,
    actor_uid: Option<u32>,
    actor_user: Option<&'a str>,
    /// Canonical JSON of the event's record.
    payload: &'a str,
}

impl ChainLink<'_> {
    /// sha256 over the canonical JSON of all fields, the previous hash included.
    fn hash(&self) -> String {
        airlock_policy::canonical::hash_serializable(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn actor() -> ActorIdentity {
        ActorIdentity {
            uid: 1000,
            user: Some("ann".into()),
        }
    }

    fn change_set() -> ChangeSet {
        serde_json::from_value(json!({
            "capability": "billing.propose_late_fee_waiver",
            "args": {"invoice_id": "INV-1", "reason": "r"},
            "tenant_id": "acme",
            "principal": "p",
            "target": {"schema": "main", "table": "invoices", "primary_key": {"column": "id", "value": "INV-1"}},
            "before": {"late_fee_cents": 5500},
            "patch": {"late_fee_cents": 0},
            "after": {"late_fee_cents": 0},
            "guards": {"tenant": {"column": "tenant_id", "value": "acme"}, "allowed_columns": ["late_fee_cents"],
                       "expected_version": null, "row_hash": "sha256:00", "transitions": []}
        }))
        .unwrap()
    }

    /// A ledger with the whole story of one applied proposal and one
    /// pending proposal: (ledger, dir, applied id, pending id).
    pub(super) fn story(name: &str) -> (Ledger, std::path::PathBuf, String, String) {
        let dir =
            std::env::temp_dir().join(format!("airlock-ledger-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (l, applied, pending) = story_on(Ledger::open(&dir.join("l.db")).unwrap());
        (l, dir, applied, pending)
    }

    /// [`story`] on any ledger: (ledger, applied id, pending id).
    pub(super) fn story_on(mut l: Ledger) -> (Ledger, String, String) {
        let rows = vec![
            json!({"id": "INV-1", "tenant_id": "acme", "late_fee_cents": 5500})
                .as_object()
                .cloned()
                .unwrap(),
        ];
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (ev, _) = l
                .record_evidence(NewEvidence {
                    capability: "billing.propose_late_fee_waiver",
                    tenant_id: "acme",
                    principal: "p",
                    query_fingerprint: "sha256:00",
                    parameters: &[],
                    rows: &rows,
                    actor: &actor(),
                })
                .unwrap();
            let p = l
                .record_proposal(NewProposal {
                    change_set: &change_set(),
                    capability_digest: "sha256:cap",
                    evidence_id: Some(&ev),
                    required_role: Some("billing"),
                    ttl_ms: 60_000,
                    actor: &actor(),
                })
                .unwrap();
            ids.push(p.proposal_id);
        }
        let (applied, pending) = (ids[0].clone(), ids[1].clone());
        l.record_decision(&applied, true, &actor(), Some("ok"), "sha256:cap")
            .unwrap();
        let ApplyStart::Run { job_id, .. } = l
            .begin_apply(&applied, "sql_update", "k", &actor(), "sha256:cap")
            .unwrap()
        else {
            panic!("runs")
        };
        let receipt = json!({"receipt_hash": "sha256:11", "status": "applied"});
        l.record_receipt(NewReceipt {
            job_id: &job_id,
            proposal_id: &applied,
            status: "applied",
            receipt: &receipt,
            detail: None,
            fence: None,
        })
        .unwrap();
        (l, applied, pending)
    }

    #[test]
    fn a_quorum_counts_each_uid_once_and_its_votes_verify() {
        let dir =
            std::env::temp_dir().join(format!("airlock-ledger-{}-quorum", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut l = Ledger::open(&dir.join("l.db")).unwrap();
        let propose = |l: &mut Ledger| {
            l.record_bound_proposal(
                NewProposal {
                    change_set: &change_set(),
                    capability_digest: "sha256:cap",
                    evidence_id: None,
                    required_role: None,
                    ttl_ms: 60_000,
                    actor: &actor(),
                },
                2,
                &[],
            )
            .unwrap()
            .proposal_id
        };
        let id = propose(&mut l);
        let ann = actor();
        let bob = ActorIdentity {
            uid: 1001,
            user: Some("bob".into()),
        };
        let first = l
            .record_decision(&id, true, &ann, None, "sha256:cap")
            .unwrap();
        assert_eq!(first.state, ProposalState::PendingApproval);
        let q = first.quorum.unwrap();
        assert_eq!((q.approvals, q.required), (1, 2));
        let shown = l.proposal(&id).unwrap().unwrap();
        assert_eq!(shown.summary.state, ProposalState::PendingApproval);
        let q = shown.summary.quorum.unwrap();
        assert_eq!((q.approvals, q.required), (1, 2));
        assert!(matches!(
            l.record_decision(&id, true, &ann, None, "sha256:cap"),
            Err(LedgerError::AlreadyVoted {
                approvals: 1,
                required: 2,
                ..
            })
        ));
        let second = l
            .record_decision(&id, true, &bob, None, "sha256:cap")
            .unwrap();
        assert_eq!(second.state, ProposalState::Approved);
        let q = l.proposal(&id).unwrap().unwrap().summary.quorum.unwrap();
        assert_eq!((q.approvals, q.required), (2, 2));
        // A stale record only lands on a pending proposal.
        assert!(matches!(
            l.record_stale(&id, &bob, "changed", "sha256:cap"),
            Err(LedgerError::InvalidState { .. })
        ));
        let other = propose(&mut l);
        l.record_stale(
            &other,
            &bob,
            "changed since the proposal: version",
            "sha256:cap",
        )
        .unwrap();
        assert_eq!(
            l.proposal(&other).unwrap().unwrap().summary.state,
            ProposalState::Conflict
        );
        assert!(matches!(
            l.record_decision(&other, true, &ann, None, "sha256:cap"),
            Err(LedgerError::InvalidState { .. })
        ));
        let report = l.verify().unwrap();
        assert!(report.ok, "{report:?}");
        Ledger::verify_segment(&l.conn, &id).unwrap();
        // A vote row copied onto another proposal breaks its segment.
        let third = propose(&mut l);
        l.conn
            .execute(
                "INSERT INTO votes (proposal_id, seq, uid, \"user\", at, note) SELECT ?1, 1, 1002, 'eve', at, NULL FROM votes LIMIT 1",
                args![&third],
            )
            .unwrap();
        assert!(matches!(
            Ledger::verify_segment(&l.conn, &third),
            Err(LedgerError::Tampered { .. })
        ));
        assert!(!l.verify().unwrap().ok);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_whole_story_verifies_and_a_forged_approval_does_not() {
        let (mut l, dir, applied, pending) = story("forged");
        let report = l.verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.events, 7);
        Ledger::verify_segment(&l.conn, &applied).unwrap();
        Ledger::verify_segment(&l.conn, &pending).unwrap();
        // The attack: a decision row for the pending proposal pointing at an
        // unrelated event makes it `approved`.
        l.conn
            .execute(
                "INSERT INTO decisions (proposal_id, seq, decision, uid, \"user\", at, at_ms, note) VALUES (?1, 1, 'approved', 1000, 'ann', '2026-01-01T00:00:00.000Z', 0, NULL)",
                args![&pending],
            )
            .unwrap();
        assert_eq!(
            l.proposal(&pending).unwrap().unwrap().summary.state,
            ProposalState::Approved,
            "the forged row really approves"
        );
        let err = l
            .begin_apply(&pending, "sql_update", "k2", &actor(), "sha256:cap")
            .unwrap_err();
        assert!(matches!(err, LedgerError::Tampered { .. }), "{err}");
        assert!(matches!(
            l.verified_proposal(&pending).unwrap_err(),
            LedgerError::Tampered { .. }
        ));
        let report = l.verify().unwrap();
        assert!(!report.ok, "{report:?}");
        // The other proposal's segment is untouched and still verifies.
        Ledger::verify_segment(&l.conn, &applied).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_changed_capability_digest_is_refused_at_decision_and_apply() {
        let (mut l, dir, _, pending) = story("digest");
        let err = l
            .record_decision(&pending, true, &actor(), None, "sha256:other")
            .unwrap_err();
        assert!(matches!(err, LedgerError::ConfigChanged { .. }), "{err}");
        l.record_decision(&pending, true, &actor(), None, "sha256:cap")
            .unwrap();
        let err = l
            .begin_apply(&pending, "sql_update", "k3", &actor(), "sha256:other")
            .unwrap_err();
        assert!(matches!(err, LedgerError::ConfigChanged { .. }), "{err}");
        assert!(l.verify().unwrap().ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_edited_column_and_every_copied_row_breaks_verify() {
        let (l, dir, _, _) = story("columns");
        let path = dir.join("l.db");
        l.checkpoint().unwrap();
        drop(l);
        let pristine = std::fs::read(&path).unwrap();
        let triggers: Vec<(String, String)> = {
            let c = Connection::open(&path).unwrap();
            let mut s = c
                .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                .unwrap();
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let attempt = |sql: &str| -> VerifyReport {
            std::fs::write(&path, &pristine).unwrap();
            let _ = std::fs::remove_file(dir.join("l.db-wal"));
            let c = Connection::open(&path).unwrap();
            let mut script = String::from("PRAGMA foreign_keys = OFF;");
            for (name, _) in &triggers {
                script.push_str(&format!("DROP TRIGGER {name};"));
            }
            script.push_str(sql);
            for (_, t) in &triggers {
                script.push_str(&format!("{t};"));
            }
            c.execute_batch(&script).unwrap();
            drop(c);
            Ledger::open_read_only(&path).unwrap().verify().unwrap()
        };
        assert!(
            attempt("SELECT 1;").ok,
            "dropping and recreating the triggers alone verifies"
        );
        for table in ["evidence", "proposals", "decisions", "jobs", "receipts"] {
            let c = Connection::open(&path).unwrap();
            let cols: Vec<(String, String)> = c
                .prepare(&format!(
                    "SELECT name, type FROM pragma_table_info('{table}')"
                ))
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            drop(c);
            for (col, ty) in &cols {
                let change = if col == "decision" {
                    "CASE decision WHEN 'approved' THEN 'rejected' ELSE 'approved' END".to_owned()
                } else if col == "status" {
                    "CASE status WHEN 'applied' THEN 'conflict' ELSE 'applied' END".to_owned()
                } else if ty == "INTEGER" {
                    format!("{col} + 1000000")
                } else {
                    format!(
                        "CASE WHEN {col} IS NULL THEN 'forged' WHEN json_valid({col}) AND substr({col}, 1, 1) = '{{' THEN json_set({col}, '$.forged', 1) WHEN json_valid({col}) AND substr({col}, 1, 1) = '[' THEN json_insert({col}, '$[#]', 1) ELSE {col} || 'x' END"
                    )
                };
                let sql = format!(
                    "UPDATE {table} SET {col} = {change} WHERE seq = (SELECT MIN(seq) FROM {table});"
                );
                let r = attempt(&sql);
                assert!(!r.ok, "editing {table}.{col} went unnoticed");
            }
            let r = attempt(&format!(
                "CREATE TEMP TABLE c AS SELECT * FROM {table} WHERE seq = (SELECT MIN(seq) FROM {table}); UPDATE c SET seq = 999; UPDATE c SET {pk} = {pk} || 'copy'; {extra} INSERT INTO {table} SELECT * FROM c;",
                pk = cols[0].0,
                extra = if table == "jobs" {
                    "UPDATE c SET attempt = attempt + 1;"
                } else {
                    ""
                }
            ));
            assert!(!r.ok, "a copied {table} row went unnoticed");
        }
        std::fs::write(&path, &pristine).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TRIGGER decisions_append_only_u;")
            .unwrap();
        let r = Ledger::open_read_only(&path).unwrap().verify().unwrap();
        assert!(!r.ok && r.first_break.unwrap().1.contains("decisions_append_only_u"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_proposal_from_before_the_binding_verifies_but_cannot_be_approved() {
        let (mut l, dir, _, _) = story("old");
        // Exactly what the schema-2 executor wrote: no digest in the payload
        // nor in the row (the column is NULL after migration 3).
        let at = Timestamp::now();
        let expires = Timestamp::from_ms(at.ms + 60_000);
        let cs = change_set();
        let record = json!({
            "proposal_id": "wrp_old", "change_set": cs, "proposal_hash": cs.hash(),
            "evidence_id": null, "required_role": null, "expires_at": expires.text,
        });
        let tx = l.conn.savepoint().unwrap();
        let (seq, _) = Ledger::append_event(
            &tx,
            &at,
            "proposal_recorded",
            Some("wrp_old"),
            None,
            Some(&actor()),
            &record,
        )
        .unwrap();
        tx.execute(
            "INSERT INTO proposals (proposal_id, seq, capability, tenant_id, object_id, principal, change_set, proposal_hash, evidence_id, required_role, proposer_uid, proposer_user, created_at, created_ms, expires_at, expires_ms) VALUES ('wrp_old', ?1, ?2, 'acme', 'INV-1', 'p', ?3, ?4, NULL, NULL, 1000, 'ann', ?5, ?6, ?7, ?8)",
            args![seq, cs.capability, canonical_json(&serde_json::to_value(&cs).unwrap()), cs.hash(), at.text, at.ms, expires.text, expires.ms],
        )
        .unwrap();
        tx.commit().unwrap();
        assert!(
            l.verify().unwrap().ok,
            "old rows are bound through their events"
        );
        let err = l
            .record_decision("wrp_old", true, &actor(), None, "sha256:cap")
            .unwrap_err();
        assert!(
            matches!(&err, LedgerError::ConfigChanged { recorded: None, .. }),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_ledger(name: &str) -> (Ledger, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("airlock-ledger-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (Ledger::open(&dir.join("l.db")).unwrap(), dir)
    }

    /// A read and a proposal on it (two events); returns the proposal id.
    fn propose(l: &mut Ledger, ttl_ms: i64) -> String {
        let rows = vec![
            json!({"id": "INV-1", "tenant_id": "acme"})
                .as_object()
                .cloned()
                .unwrap(),
        ];
        let (ev, _) = l
            .record_evidence(NewEvidence {
                capability: "billing.propose_late_fee_waiver",
                tenant_id: "acme",
                principal: "p",
                query_fingerprint: "sha256:00",
                parameters: &[],
                rows: &rows,
                actor: &actor(),
            })
            .unwrap();
        l.record_proposal(NewProposal {
            change_set: &change_set(),
            capability_digest: "sha256:cap",
            evidence_id: Some(&ev),
            required_role: None,
            ttl_ms,
            actor: &actor(),
        })
        .unwrap()
        .proposal_id
    }

    /// Approve, start and finish an apply (three events).
    fn apply(l: &mut Ledger, id: &str) {
        l.record_decision(id, true, &actor(), None, "sha256:cap")
            .unwrap();
        run_apply(l, id);
    }

    /// Start and finish the apply of an approved proposal (two events).
    fn run_apply(l: &mut Ledger, id: &str) {
        let ApplyStart::Run { job_id, .. } = l
            .begin_apply(id, "sql_update", id, &actor(), "sha256:cap")
            .unwrap()
        else {
            panic!("runs")
        };
        let receipt = json!({"receipt_hash": "sha256:11", "status": "applied"});
        l.record_receipt(NewReceipt {
            job_id: &job_id,
            proposal_id: id,
            status: "applied",
            receipt: &receipt,
            detail: None,
            fence: None,
        })
        .unwrap();
    }

    fn far_future() -> Timestamp {
        Timestamp::from_ms(Timestamp::now().ms + 86_400_000)
    }

    #[test]
    fn the_sweep_records_each_expiry_once_and_the_chain_verifies() {
        let (mut l, dir) = temp_ledger("sweep");
        let due = propose(&mut l, 1);
        let live = propose(&mut l, 60_000);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(l.sweep_expired(None, 10).unwrap(), vec![due.clone()]);
        assert!(l.sweep_expired(None, 10).unwrap().is_empty(), "once");
        // Recorded: expired whatever the clock says from now on.
        let state: String = l
            .conn
            .query_row(
                &format!("SELECT {STATE_SQL} FROM {FROM_PROPOSALS} WHERE p.proposal_id = ?2"),
                args![i64::MIN, due],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(state, "expired");
        assert_eq!(
            l.proposal(&live).unwrap().unwrap().summary.state,
            ProposalState::PendingApproval
        );
        let err = l
            .record_decision(&due, true, &actor(), None, "sha256:cap")
            .unwrap_err();
        assert!(matches!(err, LedgerError::Expired(_)), "{err}");
        let report = l.verify().unwrap();
        assert!(report.ok && report.events == 5, "{report:?}");
        // A window that ends before the expiry finds nothing.
        let (mut l2, dir2) = temp_ledger("sweep-window");
        propose(&mut l2, 1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(
            l2.sweep_expired(Some(Timestamp::now().ms), 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(l2.sweep_expired(None, 10).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir2).unwrap();
    }

    #[test]
    fn a_prune_moves_the_finished_prefix_and_both_files_verify() {
        let (mut l, dir) = temp_ledger("prune");
        let a = propose(&mut l, 60_000);
        apply(&mut l, &a);
        let b = propose(&mut l, 60_000);
        let archive = dir.join("archive.db");
        let out = l
            .prune(PruneRequest {
                before: &far_future(),
                archive: &archive,
                actor: &actor(),
            })
            .unwrap();
        assert_eq!(
            (
                out.plan.through_seq,
                out.plan.events,
                out.plan.proposals,
                out.first_seq
            ),
            (5, 5, 1, 1)
        );
        assert_eq!(
            out.plan.held_by,
            airlock_policy::prune::Hold::Unfinished {
                proposal_id: b.clone()
            }
        );
        let event = out.event.unwrap();
        assert_eq!(event.seq, 8);
        // The ledger continues from the archive's last hash …
        let report = l.verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!((report.start_seq, report.events), (5, 3));
        assert!(l.proposal(&a).unwrap().is_none(), "moved out");
        // … and B, whose read is the first event after the cut, still
        // verifies its segment and can be decided.
        l.record_decision(&b, true, &actor(), None, "sha256:cap")
            .unwrap();
        assert!(l.verify().unwrap().ok);
        // The archive verifies on its own and names the prune event.
        let arch = Ledger::open_read_only(&archive).unwrap().verify().unwrap();
        assert!(arch.ok, "{arch:?}");
        assert_eq!(arch.events, 5);
        assert_eq!(arch.head, out.through_hash.unwrap());
        assert_eq!(arch.archive_of, Some((8, event.hash)));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&archive).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // An executor never serves an archive.
        assert!(matches!(
            Ledger::open(&archive).unwrap_err(),
            LedgerError::IsArchive(_)
        ));
        // Pruning again moves nothing (B is approved, not finished).
        let again = l
            .prune(PruneRequest {
                before: &far_future(),
                archive: &dir.join("a2.db"),
                actor: &actor(),
            })
            .unwrap();
        assert_eq!(again.plan.through_seq, 0);
        assert!(again.event.is_none() && !dir.join("a2.db").exists());
        // Once B is finished, a second prune moves it and the first prune's event.
        run_apply(&mut l, &b);
        let second = dir.join("archive2.db");
        let out2 = l
            .prune(PruneRequest {
                before: &far_future(),
                archive: &second,
                actor: &actor(),
            })
            .unwrap();
        assert_eq!((out2.first_seq, out2.plan.through_seq), (6, 11));
        let arch2 = Ledger::open_read_only(&second).unwrap().verify().unwrap();
        assert!(arch2.ok, "{arch2:?}");
        let report = l.verify().unwrap();
        assert!(
            report.ok && report.start_seq == 11 && report.events == 1,
            "{report:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_prune_keeps_every_explore_charge_of_the_last_24_hours() {
        use airlock_policy::explore::{Charge, ExploreLimits};
        let (mut l, dir) = temp_ledger("prune-explore");
        let a = propose(&mut l, 60_000);
        apply(&mut l, &a);
        // The cut-off becomes the charge's millisecond, and only records
        // strictly before it move: keep the charge a few ms later.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let limits = ExploreLimits {
            max_queries_per_rolling_24_hours: 1,
            ..ExploreLimits::default()
        };
        let charge = Charge {
            resource: "tickets".into(),
            variant: "sha256:v".into(),
            cohort: "sha256:c".into(),
            aggregate: false,
            cohort_protected: false,
            total: false,
            max_cells: 5,
        };
        let scope = ExploreScope {
            tenant_id: "acme",
            principal: "p",
            actor: &actor(),
        };
        let reserved = l
            .explore_reserve(scope, &charge, &json!({"kind": "rows"}), &limits)
            .unwrap();
        let ExploreReserved::Admitted { reservation_id, .. } = reserved else {
            panic!("admitted")
        };
        l.explore_release(&actor(), &reservation_id, "source_timeout")
            .unwrap();
        // A cut-off in the future would move the audited query (the only
        // record of its charge) into the archive: it stays.
        let out = l
            .prune(PruneRequest {
                before: &far_future(),
                archive: &dir.join("archive.db"),
                actor: &actor(),
            })
            .unwrap();
        assert_eq!((out.plan.through_seq, out.plan.proposals), (5, 1));
        assert_eq!(
            out.plan.held_by,
            airlock_policy::prune::Hold::Recent { seq: 6 }
        );
        assert!(l.verify().unwrap().ok);
        assert!(matches!(
            l.explore_reserve(scope, &charge, &json!({"kind": "rows"}), &limits)
                .unwrap(),
            ExploreReserved::Refused(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_prune_that_cannot_write_its_archive_changes_nothing() {
        let (mut l, dir) = temp_ledger("prune-fail");
        let a = propose(&mut l, 60_000);
        apply(&mut l, &a);
        let before = l.verify().unwrap();
        let existing = dir.join("exists.db");
        std::fs::write(&existing, b"keep me").unwrap();
        for archive in [existing.clone(), dir.join("no-such-dir").join("a.db")] {
            let err = l
                .prune(PruneRequest {
                    before: &far_future(),
                    archive: &archive,
                    actor: &actor(),
                })
                .unwrap_err();
            assert!(matches!(err, LedgerError::Archive { .. }), "{err}");
        }
        assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
        let after = l.verify().unwrap();
        assert!(after.ok);
        assert_eq!((after.events, after.head), (before.events, before.head));
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_prefix_removed_without_a_prune_event_or_an_altered_archive_breaks_verify() {
        let (mut l, dir) = temp_ledger("prune-tamper");
        let a = propose(&mut l, 60_000);
        apply(&mut l, &a);
        propose(&mut l, 60_000);
        l.checkpoint().unwrap();
        let path = dir.join("l.db");
        let copy = dir.join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        // The attack a prune is not: the same rows deleted behind the
        // executor's back, with no `ledger_pruned` event to anchor the rest.
        let c = Connection::open(&copy).unwrap();
        let mut script = String::from("PRAGMA foreign_keys = OFF;");
        let mut restore = String::new();
        for t in PRUNED_TABLES {
            let sql: String = c
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = ?1",
                    [format!("{t}_append_only_d")],
                    |r| r.get(0),
                )
                .unwrap();
            script.push_str(&format!(
                "DROP TRIGGER {t}_append_only_d; DELETE FROM {t} WHERE seq <= 5;"
            ));
            restore.push_str(&format!("{sql};"));
        }
        c.execute_batch(&(script + &restore)).unwrap();
        drop(c);
        let r = Ledger::open_read_only(&copy).unwrap().verify().unwrap();
        assert!(!r.ok, "{r:?}");
        let why = r.first_break.unwrap().1;
        assert!(why.contains("an event was removed"), "{why}");
        // The real prune, then an archive with one event's row edited, and
        // one whose anchor was edited.
        let archive = dir.join("archive.db");
        l.prune(PruneRequest {
            before: &far_future(),
            archive: &archive,
            actor: &actor(),
        })
        .unwrap();
        let pristine = std::fs::read(&archive).unwrap();
        for edit in [
            "DROP TRIGGER events_append_only_d; DROP TRIGGER receipts_append_only_d; DELETE FROM receipts WHERE seq = 5; DELETE FROM events WHERE seq = 5;",
            "DROP TRIGGER archive_anchor_append_only_u; UPDATE archive_anchor SET payload = replace(payload, '\"through_seq\":5', '\"through_seq\":4');",
            "DROP TRIGGER archive_anchor_append_only_d; DELETE FROM archive_anchor;",
        ] {
            std::fs::write(&copy, &pristine).unwrap();
            let c = Connection::open(&copy).unwrap();
            c.execute_batch(&format!("PRAGMA foreign_keys = OFF; {edit}"))
                .unwrap();
            drop(c);
            let r = Ledger::open_read_only(&copy).unwrap().verify().unwrap();
            assert!(!r.ok, "{edit}: {r:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_are_refused_before_writing() {
        let dir = std::env::temp_dir().join(format!("airlock-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.db");
        let _ = std::fs::remove_file(&path);
        let mut ledger = Ledger::open(&path).unwrap();
        let rows = vec![
            json!({"id": "x", "note": "postgres://app:hunter2@db/prod"})
                .as_object()
                .cloned()
                .unwrap(),
        ];
        let err = ledger
            .record_evidence(NewEvidence {
                capability: "a.b",
                tenant_id: "acme",
                principal: "p",
                query_fingerprint: "sha256:00",
                parameters: &[],
                rows: &rows,
                actor: &actor(),
            })
            .unwrap_err();
        assert!(matches!(err, LedgerError::SecretMaterial(_)));
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(ledger.counts().unwrap().events, 0, "nothing was written");
        let report = ledger.verify().unwrap();
        assert!(report.ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
