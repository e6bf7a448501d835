//! The typed reviewed config (compatible with Synapsor Runner's
//! `synapsor.runner.json` version 1, plus Airlock's own `airlock` section).
//!
//! Values of these types only come out of [`crate::load`], which has already
//! checked every rule, so the rest of the code can rely on them: identifiers
//! are safe, references resolve, proposal capabilities have a patch, allowed
//! columns and a conflict guard.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::identifier::Engine;

/// Default per-statement timeout when a source sets none.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5_000;
/// Default handler timeout.
pub const DEFAULT_HANDLER_TIMEOUT_MS: u64 = 10_000;
/// How long a proposal may wait for approval and apply by default.
pub const DEFAULT_PROPOSAL_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// Hard cap on `max_rows`: capabilities look rows up by primary key.
pub const MAX_ROWS_LIMIT: u32 = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub version: u32,
    pub mode: Mode,
    pub result_format: ResultFormat,
    pub storage: Storage,
    pub sources: BTreeMap<String, Source>,
    pub trusted_context: ContextSpec,
    pub contexts: BTreeMap<String, ContextSpec>,
    pub executors: BTreeMap<String, ExecutorSpec>,
    /// The capabilities served: every capability of the file except those
    /// `airlock.disabled_capabilities` names.
    pub capabilities: Vec<Capability>,
    /// Capabilities validated like the others but not served (named in
    /// `airlock.disabled_capabilities`): no tool, no proposal, no apply.
    pub disabled: Vec<Capability>,
    /// Where the executor sends notifications of proposal events.
    pub notifications: crate::notify::Notifications,
    pub airlock: AirlockSection,
    /// `metrics`: Prometheus metrics of the HTTP proposer and the executor.
    pub metrics: MetricsSection,
    /// `session_auth`: how the HTTP proposer and the executor verify the
    /// signed tokens that name the tenant and principal
    /// (`trusted_context.provider: "http_claims"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_auth: Option<crate::session_auth::SessionAuth>,
    /// `http_security`: the HTTP proposer's protected-resource metadata and
    /// per-principal request limit.
    pub http_security: crate::session_auth::HttpSecurity,
    /// `proposal_freshness`: proposal capability name → its dependencies.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proposal_freshness: BTreeMap<String, ProposalFreshness>,
}

impl Config {
    /// Find a served capability by its canonical name.
    pub fn capability(&self, name: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.name == name)
    }

    /// Every capability the file defines: the served ones, then the
    /// disabled ones. For tools that edit the file (locks, recipes), never
    /// for serving.
    pub fn every_capability(&self) -> impl Iterator<Item = &Capability> {
        self.capabilities.iter().chain(&self.disabled)
    }

    /// Find a capability the file defines, served or disabled.
    pub fn defined_capability(&self, name: &str) -> Option<&Capability> {
        self.every_capability().find(|c| c.name == name)
    }

    /// The trusted-context spec a capability uses (its named context, or the
    /// top-level `trusted_context`).
    pub fn context_for(&self, cap: &Capability) -> &ContextSpec {
        cap.context
            .as_ref()
            .and_then(|name| self.contexts.get(name))
            .unwrap_or(&self.trusted_context)
    }

    /// The trusted-context spec Scoped Explore uses (its named context, or
    /// the top-level `trusted_context`).
    pub fn explore_context(&self, boundary: &crate::explore::Boundary) -> &ContextSpec {
        boundary
            .context
            .as_ref()
            .and_then(|name| self.contexts.get(name))
            .unwrap_or(&self.trusted_context)
    }

    /// The source a capability reads from. Present for every loaded config.
    pub fn source_for(&self, cap: &Capability) -> Option<&Source> {
        self.sources.get(&cap.source)
    }

    /// The executor that applies a proposal capability: the named entry of
    /// `executors`, else the built-in `sql_update`.
    pub fn executor_for(&self, proposal: &ProposalSpec) -> ExecutorRef<'_> {
        match proposal
            .executor
            .as_deref()
            .and_then(|n| self.executors.get_key_value(n))
        {
            Some((name, spec)) => ExecutorRef { name, spec },
            None => ExecutorRef {
                name: SQL_UPDATE,
                spec: &ExecutorSpec::SqlUpdate,
            },
        }
    }

    /// Every environment variable that carries write authority: write URLs,
    /// handler URLs, tokens, signing secrets and commands (and notification
    /// webhooks' URLs and keys). The proposer
    /// refuses to start if any of them is set (invariant 1).
    pub fn write_authority_env_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for source in self.sources.values() {
            names.extend(source.write_url_env.as_deref());
        }
        for spec in self.executors.values() {
            match spec {
                ExecutorSpec::SqlUpdate => {}
                ExecutorSpec::HttpHandler(h) => {
                    names.push(&h.url_env);
                    names.extend(h.token_env.as_deref());
                    names.extend(h.signing_secret_env.as_deref());
                }
                ExecutorSpec::CommandHandler(c) => names.push(&c.command_env),
            }
        }
        // A notification webhook's URL and key: no write authority, but a
        // holder could send reviewers forged notices, so only the executor
        // may hold them.
        for sink in &self.notifications.sinks {
            if let crate::notify::SinkKind::Webhook(w) = &sink.kind {
                names.push(&w.url_env);
                names.extend(w.signing_secret_env.as_deref());
            }
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Environment variables the proposer legitimately needs: read URLs and
    /// trusted-context variables.
    pub fn proposer_env_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .sources
            .values()
            .map(|s| s.read_url_env.as_str())
            .collect();
        for ctx in std::iter::once(&self.trusted_context).chain(self.contexts.values()) {
            names.extend(ctx.env_names());
        }
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Name of the built-in executor that applies a guarded single-row UPDATE.
pub const SQL_UPDATE: &str = "sql_update";

/// A resolved reference to the executor of a proposal capability.
#[derive(Debug, Clone, Copy)]
pub struct ExecutorRef<'a> {
    pub name: &'a str,
    pub spec: &'a ExecutorSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only read capabilities are served.
    ReadOnly,
    /// Reads and proposals; every proposal needs a person's approval.
    Review,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ResultFormat {
    V1,
    V2,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Storage {
    /// The executor's ledger path, relative to the config file's directory
    /// unless absolute.
    pub sqlite_path: Option<String>,
    /// The ledger on PostgreSQL, shared by a fleet of executors
    /// (`shared_postgres` with `mode: "runtime_store"`); `None`: SQLite.
    pub shared_postgres: Option<SharedPostgres>,
}

/// `metrics` (Synapsor Runner's shape, plus `executor_listen`): a
/// Prometheus endpoint at `/metrics` of the HTTP proposer, and the
/// executor's own on `executor_listen`. Off unless `enabled`; behind the
/// bearer token in `token_env` (required off loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSection {
    pub enabled: bool,
    pub token_env: Option<String>,
    /// Where the executor serves its metrics (`host:port`); none: the
    /// executor serves none.
    pub executor_listen: Option<std::net::SocketAddr>,
}

/// `storage.shared_postgres` (Synapsor Runner's shape): where a fleet's
/// shared ledger lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedPostgres {
    /// The environment variable holding the ledger database's URL (never
    /// the URL itself).
    pub url_env: String,
    /// The PostgreSQL schema holding the ledger's tables.
    pub schema: String,
    /// How long a ledger write waits for the fleet's chain lock.
    pub lock_timeout_ms: u64,
    /// How long a lease on an apply lasts: another executor takes over an
    /// apply whose holder has not finished it within this time (killed or
    /// cut off), and the holder's late receipt is then refused (fenced).
    pub apply_lease_ms: u64,
}

impl SharedPostgres {
    pub const DEFAULT_SCHEMA: &'static str = "airlock_ledger";
    pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 10_000;
    pub const DEFAULT_APPLY_LEASE_MS: u64 = 30_000;
}

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub engine: Engine,
    pub read_url_env: String,
    pub write_url_env: Option<String>,
    pub statement_timeout_ms: u64,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextProvider {
    /// Values come from environment variables of the process.
    Environment,
    /// Values are written in the config (development only; warns).
    StaticDev,
    /// Values are the claims of the signed token each HTTP request carries
    /// (`session_auth`), verified by the proposer and again by the executor.
    HttpClaims,
}

/// Where one trusted-context value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    Env(String),
    Static(String),
    /// A claim of the request's verified token (`http_claims`).
    Claim(String),
    Unset,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContextSpec {
    pub provider: ContextProvider,
    pub tenant: ValueSource,
    pub principal: ValueSource,
}

impl ContextSpec {
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        [&self.tenant, &self.principal]
            .into_iter()
            .filter_map(|v| match v {
                ValueSource::Env(name) => Some(name.as_str()),
                _ => None,
            })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecutorSpec {
    SqlUpdate,
    HttpHandler(HttpHandlerSpec),
    CommandHandler(CommandHandlerSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HttpMethod {
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpHandlerSpec {
    pub url_env: String,
    pub method: HttpMethod,
    pub token_env: Option<String>,
    pub signing_secret_env: Option<String>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandHandlerSpec {
    pub command_env: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Read,
    Proposal,
    /// One reviewed aggregate over the tenant's rows, never the rows
    /// (`crate::aggregate_read`).
    AggregateRead,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Proposal => "proposal",
            Kind::AggregateRead => "aggregate_read",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub schema: String,
    pub table: String,
    pub primary_key: String,
    /// `None` only for an acknowledged single-tenant development target.
    pub tenant_key: Option<String>,
    /// Principal row scope (Synapsor Runner's `principal_scope_key`): the
    /// column that must equal the trusted principal, AND-ed with the tenant
    /// scope on every read, proposal and write. Never set without
    /// `tenant_key`. Left out of the serialized form when unset, so existing
    /// capability digests do not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_scope_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgType {
    String,
    Number,
    Integer,
    Boolean,
    /// A list of reviewed enum values (`items`), for a list read's `in` filter.
    Array,
}

impl ArgType {
    pub fn as_str(self) -> &'static str {
        match self {
            ArgType::String => "string",
            ArgType::Number => "number",
            ArgType::Integer => "integer",
            ArgType::Boolean => "boolean",
            ArgType::Array => "array",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ArgSpec {
    pub name: String,
    pub ty: ArgType,
    pub required: bool,
    pub max_length: Option<u64>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub enum_values: Option<Vec<Value>>,
    pub description: Option<String>,
    /// `format` of a string argument: a date or an RFC 3339 date-time.
    /// Left out of the serialized form when unset (capability digests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<StringFormat>,
    /// An array argument's `items` and `max_items`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<ArrayItems>,
}

/// The `format` of a string argument, checked at call time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StringFormat {
    /// `YYYY-MM-DD`, a real calendar date.
    #[serde(rename = "date")]
    Date,
    /// RFC 3339 with an offset: `2026-06-20T14:31:08Z`, `…+02:00`.
    #[serde(rename = "date-time")]
    DateTime,
}

impl StringFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            StringFormat::Date => "date",
            StringFormat::DateTime => "date-time",
        }
    }
}

/// What an array argument holds: 1 to `max_items` distinct values of a
/// reviewed `enum` (strings or integers).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArrayItems {
    pub ty: ArgType,
    pub enum_values: Vec<Value>,
    pub max_items: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceMode {
    Required,
    Optional,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchValue {
    Fixed(Value),
    FromArg(String),
    /// The column's current value plus the argument (`increment_from_arg`).
    IncrementFromArg(String),
    /// The column's current value minus the argument (`decrement_from_arg`).
    DecrementFromArg(String),
    /// The time the executor applies the change (`apply_time: true`).
    ApplyTime,
}

/// What a proposal capability does to its table (`operation.kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Change one existing row (the default, and the only kind before `operation`).
    #[default]
    Update,
    /// Add one new row.
    Insert,
    /// Remove one existing row.
    Delete,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Update => "update",
            OperationKind::Insert => "insert",
            OperationKind::Delete => "delete",
        }
    }

    pub fn is_update(&self) -> bool {
        *self == OperationKind::Update
    }
}

/// How the version column advances when an UPDATE is applied
/// (`operation.version_advance.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStrategy {
    /// `version + 1`; the version must be an integer.
    IntegerIncrement,
    /// The apply time.
    Timestamp,
    /// A trigger or default of the database advances it; the executor does not set it.
    DatabaseGenerated,
}

/// Where one column of an INSERT's de-duplication identity gets its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupSource {
    /// The proposal's id, filled in by the executor when it applies.
    ProposalId,
    /// The trusted tenant id.
    TrustedTenant,
    /// A reviewed literal.
    Fixed(Value),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DedupComponent {
    pub column: String,
    pub source: DedupSource,
}

/// The write a proposal capability makes: its kind and the guards that
/// kind needs. Absent from the config: a single-row UPDATE, as before.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Operation {
    pub kind: OperationKind,
    /// `None`: the version advances by its value's type (integer `+ 1`,
    /// anything else the apply time), as before `version_advance` existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_advance: Option<VersionStrategy>,
    /// INSERT only: the identity a source PRIMARY KEY or UNIQUE constraint enforces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deduplication: Vec<DedupComponent>,
    /// DELETE only: triggers firing on DELETE that a reviewer acknowledged by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acknowledged_triggers: Vec<String>,
    /// DELETE only: tables whose foreign keys cascade (or set null/default)
    /// from this one, acknowledged by `schema.table`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acknowledged_cascades: Vec<String>,
    /// `cardinality: "set"`: the reviewed selection, row cap and aggregate
    /// bounds of a bounded-set UPDATE or DELETE. `None`: one row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<SetSpec>,
}

/// Most terms in a set's fixed selection (Runner's limit).
pub const MAX_SELECTION_TERMS: usize = 8;
/// Most rows a bounded set may hold (Runner's limit).
pub const MAX_SET_ROWS: u32 = 100;
/// Most aggregate bounds on one set (Runner's limit).
pub const MAX_AGGREGATE_BOUNDS: usize = 8;

/// A bounded set: which rows (chosen by the reviewer, never by the model),
/// how many at most, and how much they may add up to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetSpec {
    /// `selection.all`: every term must hold (`column = value`, exactly).
    pub selection: Vec<SelectionTerm>,
    /// `selection.keys` (Airlock's): a reviewed list of primary-key values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<Value>,
    /// A rejection threshold, never a LIMIT: a selection matching more
    /// rows is refused before anything is recorded.
    pub max_rows: u32,
    pub aggregate_bounds: Vec<AggregateBound>,
}

/// `column = value`, a reviewed literal (string or number).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectionTerm {
    pub column: String,
    pub value: Value,
}

/// What an aggregate bound adds up over the set's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// The column's values as read.
    Before,
    /// The column's values once the change is applied.
    After,
    /// `|after - before|`, member by member.
    AbsoluteDelta,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Before => "before",
            Measure::After => "after",
            Measure::AbsoluteDelta => "absolute_delta",
        }
    }
}

/// The total of `measure` over `column` may not exceed `maximum`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateBound {
    pub column: String,
    pub measure: Measure,
    pub maximum: f64,
}

impl Operation {
    pub fn is_default(&self) -> bool {
        *self == Operation::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransitionGuard {
    /// The column whose current value is the "from" state (default: the
    /// guarded column itself).
    pub from_column: Option<String>,
    /// from-state → the states it may move to.
    pub allowed: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConflictGuard {
    /// A version column (timestamp or integer) compared at apply time.
    Column { column: String },
    /// An acknowledged weak guard: a hash of the visible row.
    RowHash,
    /// No existing row to guard: an INSERT.
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// `None`: any configured approver may approve.
    pub required_role: Option<String>,
    /// How many distinct approvers (OS uids) must approve (1..=10, Synapsor
    /// Runner's `approval.required_approvals`). Serialized only when not 1,
    /// so the capability digest of a config without it does not change.
    #[serde(skip_serializing_if = "is_one")]
    pub required_approvals: u32,
}

impl Default for Approval {
    fn default() -> Self {
        Approval {
            required_role: None,
            required_approvals: 1,
        }
    }
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// Most distinct approvals a capability may require.
pub const MAX_REQUIRED_APPROVALS: u32 = 10;

/// `proposal_freshness.<capability>`: the proposal's target row, and the
/// reviewed dependency rows listed here, are re-read before every approval
/// and locked and re-checked at apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProposalFreshness {
    /// In config order; at most [`MAX_FRESHNESS_DEPENDENCIES`].
    pub dependencies: Vec<FreshnessDependency>,
}

/// One reviewed dependency row: the row the read capability `capability`
/// finds with the value of the proposal argument `identity_from_arg`, whose
/// `version_column` must not change between the proposal and the apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreshnessDependency {
    pub id: String,
    pub capability: String,
    pub identity_from_arg: String,
    pub version_column: String,
}

/// Most dependencies one proposal capability may declare.
pub const MAX_FRESHNESS_DEPENDENCIES: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct ProposalSpec {
    pub executor: Option<String>,
    /// Column → binding, in config order.
    pub patch: Vec<(String, PatchValue)>,
    pub allowed_columns: Vec<String>,
    pub numeric_bounds: BTreeMap<String, Bounds>,
    pub transition_guards: BTreeMap<String, TransitionGuard>,
    pub conflict_guard: ConflictGuard,
    pub approval: Approval,
    /// Absent for a single-row UPDATE, so existing capabilities' digests
    /// (and the approvals bound to them) do not change.
    #[serde(skip_serializing_if = "Operation::is_default")]
    pub operation: Operation,
    /// `reversibility: {"mode": "reviewed_inverse"}` (Synapsor Runner's
    /// opt-in): the executor captures the change's inverse with its
    /// receipt, so an operator may propose a reviewed compensation
    /// (`airlock revert`). Absent — and left out of the capability digest,
    /// so existing approvals stay bound — when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversibility: Option<Reversibility>,
}

/// How a reversible capability's changes are undone (`reversibility.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reversibility {
    /// A new proposal with the inverse change, approved like any other.
    ReviewedInverse,
}

impl ProposalSpec {
    pub fn kind(&self) -> OperationKind {
        self.operation.kind
    }

    /// The bounded set this capability writes, if it writes one.
    pub fn set(&self) -> Option<&SetSpec> {
        self.operation.set.as_ref()
    }

    /// The version column, if the conflict guard is a column.
    pub fn version_column(&self) -> Option<&str> {
        match &self.conflict_guard {
            ConflictGuard::Column { column } => Some(column),
            ConflictGuard::RowHash | ConflictGuard::None => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Capability {
    pub name: String,
    pub kind: Kind,
    pub description: Option<String>,
    pub returns_hint: Option<String>,
    pub source: String,
    pub context: Option<String>,
    pub target: Target,
    /// Arguments in config order.
    pub args: Vec<ArgSpec>,
    pub lookup_arg: String,
    pub visible_columns: Vec<String>,
    pub evidence: EvidenceMode,
    pub max_rows: u32,
    /// Present exactly when `kind` is `Proposal`.
    pub proposal: Option<ProposalSpec>,
    /// A list read (`list`): rows found by reviewed filters, a page at a
    /// time, instead of one row by `lookup`. Left out of the serialized
    /// form when unset, so existing capability digests do not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<crate::list_read::ListSpec>,
    /// Present exactly when `kind` is `AggregateRead` (then `args` and
    /// `visible_columns` are empty and `lookup_arg` is `""`). Left out of
    /// the serialized form otherwise, so existing digests do not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<crate::aggregate_read::AggregateSpec>,
}

impl Capability {
    pub fn arg(&self, name: &str) -> Option<&ArgSpec> {
        self.args.iter().find(|a| a.name == name)
    }

    /// The most rows one read of this capability returns: its `max_rows`,
    /// or a bounded set's cap.
    pub fn read_row_cap(&self) -> u32 {
        if let Some(a) = &self.aggregate {
            return a.max_evidence_rows();
        }
        self.proposal
            .as_ref()
            .and_then(|p| p.set())
            .map_or(self.max_rows, |s| s.max_rows.max(self.max_rows))
    }

    /// Columns a row read must fetch: visible columns, plus, for proposals,
    /// the patched and version columns (so the before-image is exact), the
    /// primary key, tenant key and principal scope key (and, for an
    /// aggregate read, the columns its statement names). Deduplicated, in a
    /// stable order.
    pub fn read_columns(&self) -> Vec<&str> {
        let mut cols: Vec<&str> = Vec::new();
        for c in &self.visible_columns {
            if !cols.contains(&c.as_str()) {
                cols.push(c);
            }
        }
        let mut extra: Vec<&str> = vec![&self.target.primary_key];
        extra.extend(self.target.tenant_key.as_deref());
        extra.extend(self.target.principal_scope_key.as_deref());
        if let Some(a) = &self.aggregate {
            extra.extend(a.columns());
        }
        if let Some(p) = &self.proposal {
            extra.extend(p.patch.iter().map(|(c, _)| c.as_str()));
            extra.extend(p.version_column());
            extra.extend(
                p.transition_guards
                    .values()
                    .filter_map(|g| g.from_column.as_deref()),
            );
        }
        for c in extra {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        cols
    }
}

/// Airlock's own settings (ignored by other runners).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AirlockSection {
    pub socket_dir: Option<String>,
    /// Group that owns the socket directory and sockets, so configured
    /// peers other than the executor's own user can reach them.
    pub socket_group: Option<String>,
    /// `None`: only the executor's own uid may connect as a proposer.
    pub proposers: Option<Vec<ProposerPeer>>,
    /// `None`: only the executor's own uid may approve, holding every role.
    pub approvers: Option<Vec<ApproverPeer>>,
    pub proposal_ttl_seconds: u64,
    /// Per-proposer-uid limits on what reaches the ledger (`airlock.limits`).
    pub limits: IntakeLimits,
    /// The drift lock (`airlock.schema_lock`): per capability name, the
    /// reviewed columns of its target. Empty when the config has none.
    pub schema_lock: BTreeMap<String, SchemaLockEntry>,
    /// Capabilities left out of service until a person reviews them
    /// (`airlock.disabled_capabilities`): name → why.
    pub disabled_capabilities: BTreeMap<String, String>,
    /// The reviewed boundary of Scoped Explore (`airlock.explore`); `None`:
    /// the two Explore tools are not served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explore: Option<crate::explore::Boundary>,
}

/// The reviewed shape of one capability's table (`airlock.schema_lock.<name>`):
/// every column and its type as the catalog spelled it when `airlock config
/// lock` ran, and the `sha256:` fingerprint of that record
/// (`crate::drift::fingerprint`), which the loader checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaLockEntry {
    pub schema: String,
    pub table: String,
    pub columns: BTreeMap<String, String>,
    pub fingerprint: String,
}

/// How much one proposer uid may add to the ledger (`airlock.limits`).
/// Each limit is enforced per peer uid, across all its connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntakeLimits {
    /// The window the two counts below are measured in.
    pub rate_window_seconds: u64,
    /// Most `record_read`s (evidence records) per window.
    pub evidence_per_window: u64,
    /// Most `submit_proposal`s per window.
    pub proposals_per_window: u64,
    /// Largest evidence (its rows as JSON) one `record_read` may carry.
    pub max_evidence_bytes: u64,
    /// Largest change set (as JSON) one `submit_proposal` may carry.
    pub max_change_set_bytes: u64,
    /// Ledger bytes per 24 hours: each record is charged twice its payload
    /// (the record row and its event hold a copy each) plus 2 KiB, at least
    /// what it takes on disk (measured: 5,186 bytes for a proposal with its
    /// evidence, which are charged about 6,000).
    pub ledger_bytes_per_day: u64,
}

impl IntakeLimits {
    /// Bytes one record of `payload` bytes is charged against
    /// `ledger_bytes_per_day`: about what it occupies in the ledger.
    pub fn ledger_cost(payload: u64) -> u64 {
        payload.saturating_mul(2).saturating_add(2048)
    }
}

impl Default for IntakeLimits {
    fn default() -> IntakeLimits {
        IntakeLimits {
            rate_window_seconds: 60,
            evidence_per_window: 6_000,
            proposals_per_window: 600,
            max_evidence_bytes: 64 * 1024,
            max_change_set_bytes: 16 * 1024,
            ledger_bytes_per_day: 512 * 1024 * 1024,
        }
    }
}

/// An OS identity, by user name or numeric uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerId {
    User(String),
    Uid(u32),
}

/// A set of names, or every name (`"*"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSet {
    Any,
    Only(Vec<String>),
}

impl NameSet {
    pub fn contains(&self, name: &str) -> bool {
        match self {
            NameSet::Any => true,
            NameSet::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProposerPeer {
    pub peer: PeerId,
    pub tenants: NameSet,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApproverPeer {
    pub peer: PeerId,
    pub roles: NameSet,
}
