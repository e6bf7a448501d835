//! What a tool call does, independent of the MCP transport: validate the
//! arguments, read the one scoped row, record evidence with the executor,
//! and (for proposals) build the change set and submit it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use airlock_ipc::message::{
    ParamMeta, ProposalRecorded, RecordRead, Request, Response, SubmitProposal,
};
use airlock_policy::Config;
use airlock_policy::args::validate_args;
use airlock_policy::catalog::{AliasMode, Catalog};
use airlock_policy::change_set::{build, principal_in_scope, scalar_text, tenant_matches};
use airlock_policy::config::{
    Capability, ContextProvider, ExecutorSpec, Kind, OperationKind, ResultFormat,
};
use airlock_policy::context::{ContextError, TrustedContext, resolve_context};
use airlock_policy::db_error::{SOURCE_MISCONFIGURED, SOURCE_MISCONFIGURED_MESSAGE};
use airlock_policy::drift;
use airlock_policy::statement::{LookupParam, Statement, read_statement};
use serde_json::{Map, Value, json};

use crate::credentials::{CredentialError, check_no_write_authority, read_urls};
use crate::envelope::{CallContext, Evidence, Outcome, ProposalView, ToolError, WritebackMode};
use crate::executor_link::{ExecutorLink, LinkError};
use crate::source::{SourceError, SourceOptions, SourcePool};

mod aggregate;
mod list;

/// The tool error code of a capability the schema lock disabled.
pub const SCHEMA_DRIFT: &str = "schema_drift";

/// Why the proposer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(
        "refusing to start: the trusted context of `{capability}` cannot be resolved: {source}"
    )]
    Context {
        capability: String,
        source: ContextError,
    },
    #[error("refusing to start: source `{name}`: {source}")]
    Source { name: String, source: SourceError },
}

/// Settings chosen on the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub alias_mode: AliasMode,
    pub result_format: ResultFormat,
    /// Absolute, so messages name the exact file.
    pub executor_socket: PathBuf,
    /// Which setting chose the socket's directory, for messages.
    pub executor_socket_from: &'static str,
    /// Who may be listening there (checked before anything is sent).
    pub executor_identity: airlock_ipc::client::ExpectedServer,
}

/// One capability, ready to serve.
#[derive(Debug)]
struct Prepared {
    context: TrustedContext,
    /// Shared, so that a call acting for a verified identity borrows it
    /// instead of copying it.
    statement: Arc<Statement>,
    /// The verified token `context` came from (`http_claims`), sent to the
    /// executor with every request that records something.
    identity_token: Option<Arc<str>>,
}

/// Who one HTTP call acts for, from its verified bearer token
/// (`trusted_context.provider: "http_claims"`).
#[derive(Debug, Clone)]
pub struct CallIdentity {
    pub context: TrustedContext,
    pub token: Arc<str>,
}

/// The context a capability starts with: resolved now, or for
/// `http_claims` an empty one that no call can use (every call brings its
/// verified identity; see [`Proposer::call_as`]).
fn start_context(
    spec: &airlock_policy::config::ContextSpec,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<TrustedContext, ContextError> {
    if spec.provider == ContextProvider::HttpClaims {
        return Ok(TrustedContext {
            tenant_id: String::new(),
            principal: String::new(),
            source: ContextProvider::HttpClaims,
        });
    }
    resolve_context(spec, env)
}

impl Prepared {
    /// The trusted context as `_meta` shows it.
    fn call_context(&self) -> CallContext {
        CallContext {
            tenant_id: self.context.tenant_id.clone(),
            principal: self.context.principal.clone(),
            provenance: match self.context.source {
                ContextProvider::Environment => "environment",
                ContextProvider::StaticDev => "static_dev",
                ContextProvider::HttpClaims => "http_claims",
            },
        }
    }
}

/// The proposer's state: reviewed tools, resolved trusted context, read
/// pools and the link to the executor. Holds no write authority.
pub struct Proposer {
    config: Config,
    catalog: Catalog,
    result_format: ResultFormat,
    prepared: HashMap<String, Prepared>,
    sources: HashMap<String, SourcePool>,
    link: ExecutorLink,
    executor_socket_from: &'static str,
    /// Capabilities the schema lock disabled at start, with the operator's
    /// message ([`Proposer::check_schema_lock`]).
    disabled: HashMap<String, String>,
    /// Scoped Explore, when the config has a boundary.
    explore: Option<crate::explore::ExploreState>,
}

impl std::fmt::Debug for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposer")
            .field("tools", &self.catalog.tools().len())
            .finish()
    }
}

/// A proposer whose configuration, credentials and trusted context are
/// checked, before any pool exists (see [`Proposer::prepare`]).
pub struct PreparedProposer {
    config: Config,
    settings: Settings,
    prepared: HashMap<String, Prepared>,
    sources: HashMap<String, SourceOptions>,
    explore: Option<crate::explore::ExploreState>,
}

impl std::fmt::Debug for PreparedProposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedProposer")
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl PreparedProposer {
    /// The SQLite database files the sources open (as configured).
    pub fn sqlite_files(&self) -> Vec<PathBuf> {
        self.sources
            .values()
            .filter_map(|s| s.sqlite_file().map(std::path::Path::to_path_buf))
            .collect()
    }

    /// Build the (lazy) read pools. Must be called inside a Tokio runtime.
    pub fn start(self) -> Result<Proposer, StartError> {
        let PreparedProposer {
            config,
            settings,
            prepared,
            sources,
            explore,
        } = self;
        let mut pools = HashMap::new();
        for (name, options) in sources {
            let pool = options
                .connect_lazy()
                .map_err(|source| StartError::Source {
                    name: name.clone(),
                    source,
                })?;
            pools.insert(name, pool);
        }
        let catalog = Catalog::new(&config, settings.alias_mode);
        Ok(Proposer {
            catalog,
            result_format: settings.result_format,
            prepared,
            sources: pools,
            link: ExecutorLink::new(settings.executor_socket, settings.executor_identity, 4),
            executor_socket_from: settings.executor_socket_from,
            config,
            disabled: HashMap::new(),
            explore,
        })
    }
}

impl Proposer {
    /// Check the credential split, resolve trusted contexts and build the
    /// (lazy) read pools. `env` reads the proposer's environment. Must be
    /// called inside a Tokio runtime; [`Proposer::prepare`] and
    /// [`PreparedProposer::start`] split it around the file sandbox.
    pub fn new(
        config: Config,
        settings: Settings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Proposer, StartError> {
        Proposer::prepare(config, settings, env)?.start()
    }

    /// Everything [`Proposer::new`] does that needs no runtime: check the
    /// credential split, resolve trusted contexts, parse the sources' URLs.
    pub fn prepare(
        config: Config,
        settings: Settings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<PreparedProposer, StartError> {
        check_no_write_authority(&config, |k| env(k).is_some())?;
        let urls = read_urls(&config, &env)?;
        let mut sources = HashMap::new();
        for (name, source) in &config.sources {
            let url = urls.get(name).map(String::as_str).unwrap_or_default();
            let options = SourceOptions::parse(source.engine, url, source.statement_timeout_ms)
                .map_err(|source| StartError::Source {
                    name: name.clone(),
                    source,
                })?;
            sources.insert(name.clone(), options);
        }
        let mut prepared = HashMap::new();
        for cap in &config.capabilities {
            let context = start_context(config.context_for(cap), &env).map_err(|source| {
                StartError::Context {
                    capability: cap.name.clone(),
                    source,
                }
            })?;
            let engine = config
                .sources
                .get(&cap.source)
                .map(|s| s.engine)
                .unwrap_or(airlock_policy::config::Engine::Postgres);
            prepared.insert(
                cap.name.clone(),
                Prepared {
                    context,
                    statement: Arc::new(read_statement(engine, cap)),
                    identity_token: None,
                },
            );
        }
        let explore = match &config.airlock.explore {
            None => None,
            Some(boundary) => {
                let context =
                    start_context(config.explore_context(boundary), &env).map_err(|source| {
                        StartError::Context {
                            capability: airlock_policy::explore::EXPLORE_TOOL.to_owned(),
                            source,
                        }
                    })?;
                Some(crate::explore::ExploreState {
                    boundary: boundary.clone(),
                    context,
                })
            }
        };
        Ok(PreparedProposer {
            config,
            settings,
            prepared,
            sources,
            explore,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn result_format(&self) -> ResultFormat {
        self.result_format
    }

    pub fn executor_socket(&self) -> &std::path::Path {
        self.link.socket()
    }

    /// Readiness (`/readyz`): each source answers a query, and the executor
    /// answers on its socket (a status question about no proposal: the
    /// executor reads its ledger to say `not_found`). Each component with
    /// whether it is ready, a stable code, and how long it took.
    pub async fn readiness(&self) -> Vec<crate::observability::Component> {
        use crate::observability::Component;
        let mut out = Vec::new();
        for (name, pool) in &self.sources {
            let started = std::time::Instant::now();
            let r = pool.warm_up().await;
            out.push(Component::new(
                format!("source:{name}"),
                r.is_ok(),
                if r.is_ok() {
                    "ok"
                } else {
                    "SOURCE_UNAVAILABLE"
                },
                started,
            ));
        }
        let started = std::time::Instant::now();
        let probe =
            airlock_ipc::message::Request::ProposalStatus(airlock_ipc::message::ProposalRef {
                proposal_id: "wrp_readiness_probe".into(),
            });
        let (ok, code) = match self.link.call(probe, true).await {
            Ok(_) => (true, "ok"),
            Err(crate::executor_link::LinkError::Refused(body))
                if body.code == airlock_ipc::error::ErrorCode::NotFound =>
            {
                (true, "ok")
            }
            Err(crate::executor_link::LinkError::Refused(_)) => (false, "EXECUTOR_ERROR"),
            Err(_) => (false, "EXECUTOR_UNAVAILABLE"),
        };
        out.push(Component::new("executor".into(), ok, code, started));
        out
    }

    /// Open one connection per source now (before the sandbox, and for checks).
    pub async fn warm_up(&self) -> Vec<(String, SourceError)> {
        let mut failures = Vec::new();
        for (name, pool) in &self.sources {
            if let Err(e) = pool.warm_up().await {
                failures.push((name.clone(), e));
            }
        }
        failures
    }

    /// Compare every locked capability's table with the config's schema
    /// lock (`airlock.schema_lock`), reading the catalog with the read
    /// connection, and disable, for the life of the process, each one that
    /// drifted or whose table could not be read (fail closed). Returns the
    /// disabled capabilities and why; each is also logged.
    pub async fn check_schema_lock(&mut self) -> BTreeMap<String, String> {
        let mut live = BTreeMap::new();
        for key in drift::locked_targets(&self.config) {
            let (source, schema, table) = &key;
            let columns = match self.sources.get(source) {
                Some(pool) => pool
                    .table_columns(schema, table)
                    .await
                    .map_err(|e| e.to_string()),
                None => Err(format!("source `{source}` is not configured")),
            };
            live.insert(key, columns);
        }
        let disabled = drift::disabled(&drift::evaluate(&self.config, &live));
        for (capability, message) in &disabled {
            tracing::error!(capability = %capability, "{message}");
        }
        self.disabled = disabled.clone().into_iter().collect();
        disabled
    }

    /// Whether the schema lock disabled this capability (canonical name).
    pub fn is_disabled(&self, capability: &str) -> bool {
        self.disabled.contains_key(capability)
    }

    /// Whether Scoped Explore's two tools are served.
    pub fn explore_enabled(&self) -> bool {
        self.explore.is_some()
    }

    pub(crate) fn link(&self) -> &ExecutorLink {
        &self.link
    }

    pub(crate) fn source_engine(&self, source: &str) -> Option<airlock_policy::config::Engine> {
        self.sources.get(source).map(SourcePool::engine)
    }

    /// Run a compiled Explore statement on `source`; a failure is shown as
    /// a read failure is.
    pub(crate) async fn run_explore_query(
        &self,
        source: &str,
        sql: &str,
        values: &[Value],
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, ToolError> {
        let Some(pool) = self.sources.get(source) else {
            return Err(ToolError::new("internal", "the source is not configured"));
        };
        let timeout = self
            .config
            .sources
            .get(source)
            .map_or(0, |s| s.statement_timeout_ms);
        pool.fetch_values(sql, values, max_rows)
            .await
            .map_err(|e| match e {
                SourceError::Timeout { .. } => ToolError::new(
                    "source_timeout",
                    format!("the database did not answer within {timeout} ms; try again"),
                ),
                SourceError::Misconfigured { .. } => {
                    tracing::warn!(error = %e, "explore query misconfigured");
                    ToolError::new(SOURCE_MISCONFIGURED, SOURCE_MISCONFIGURED_MESSAGE)
                }
                other => {
                    tracing::warn!(error = %other, "explore query failed");
                    ToolError::new(
                        "source_unavailable",
                        "the database could not be read right now; try again shortly",
                    )
                }
            })
    }

    /// Whether every call must bring a verified identity
    /// (`trusted_context.provider: "http_claims"`).
    pub fn needs_verified_identity(&self) -> bool {
        self.config.trusted_context.provider == ContextProvider::HttpClaims
    }

    /// Serve one tool call with the configured trusted context.
    pub async fn call(&self, tool: &str, arguments: Option<&Map<String, Value>>) -> Outcome {
        self.call_as(tool, arguments, None).await
    }

    /// Serve one tool call; `identity` (from the HTTP request's verified
    /// token) replaces the trusted context, and is required when the config
    /// takes the context from tokens.
    pub async fn call_as(
        &self,
        tool: &str,
        arguments: Option<&Map<String, Value>>,
        identity: Option<&CallIdentity>,
    ) -> Outcome {
        if self.needs_verified_identity() && identity.is_none() {
            // Fail closed: the HTTP front verifies every request first, so
            // this is reached only by a wiring mistake.
            return Outcome::failed(
                &tool.chars().take(64).collect::<String>(),
                None,
                None,
                ToolError::new(
                    "unauthenticated",
                    "this server takes the tenant from a verified bearer token, and the call had none",
                ),
            );
        }
        if let (Some(t), Some(state)) = (crate::explore::tool_of(tool), &self.explore) {
            return self.explore_call(state, t, arguments, identity).await;
        }
        let Some(name) = self.catalog.resolve(tool) else {
            let shown: String = tool.chars().take(64).collect();
            return Outcome::failed(
                &shown,
                None,
                None,
                ToolError::new(
                    "unknown_tool",
                    format!("there is no tool `{shown}`; call tools/list for the reviewed tools"),
                ),
            );
        };
        let (Some(cap), Some(prep)) = (self.config.capability(name), self.prepared.get(name))
        else {
            return Outcome::failed(
                name,
                None,
                None,
                ToolError::new("internal", "the tool is not ready"),
            );
        };
        let acting_as;
        let prep = match identity {
            Some(who) => {
                acting_as = Prepared {
                    context: who.context.clone(),
                    statement: Arc::clone(&prep.statement),
                    identity_token: Some(Arc::clone(&who.token)),
                };
                &acting_as
            }
            None => prep,
        };
        if let Some(message) = self.disabled.get(name) {
            return Outcome::failed(
                name,
                Some(cap.kind),
                Some(&prep.call_context()),
                ToolError::new(
                    SCHEMA_DRIFT,
                    format!(
                        "This tool is disabled: {message} Retrying will not help; tell the operator."
                    ),
                ),
            );
        }
        let args_value = arguments.map(|m| Value::Object(m.clone()));
        if let Some(spec) = &cap.list {
            return self.list(cap, prep, spec, args_value.as_ref()).await;
        }
        let args = match validate_args(cap, args_value.as_ref()) {
            Ok(a) => a,
            Err(errs) => {
                let first = errs
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Outcome::failed(
                    name,
                    Some(cap.kind),
                    Some(&prep.call_context()),
                    ToolError::new("invalid_arguments", first).with_details(json!(errs)),
                );
            }
        };
        match cap.kind {
            Kind::Read => self.read(cap, prep, args).await,
            Kind::Proposal => self.propose(cap, prep, args).await,
            Kind::AggregateRead => self.aggregate(cap, prep, args).await,
        }
    }

    /// Run the capability's statement; rows of another tenant (or, under a
    /// principal scope, of another principal) are dropped even if the
    /// database returned them (defence in depth).
    async fn fetch(
        &self,
        cap: &Capability,
        prep: &Prepared,
        args: &Map<String, Value>,
    ) -> Result<Vec<Map<String, Value>>, ToolError> {
        let Some(pool) = self.sources.get(&cap.source) else {
            return Err(ToolError::new("internal", "the source is not configured"));
        };
        let key = args.get(&cap.lookup_arg).cloned().unwrap_or(Value::Null);
        let tenant = prep
            .statement
            .params
            .contains(&LookupParam::Tenant)
            .then_some(prep.context.tenant_id.as_str());
        let principal = prep
            .statement
            .params
            .contains(&LookupParam::Principal)
            .then_some(prep.context.principal.as_str());
        let rows = pool
            .fetch_scoped_rows(
                &prep.statement,
                &key,
                tenant,
                principal,
                cap.max_rows as usize,
            )
            .await
            .map_err(|e| self.source_failure(cap, e))?;
        // Defence in depth, and exactness: MySQL compares loosely ("7abc" = 7)
        // and case-insensitively, so keep only the row whose key is exactly
        // the one asked for, of exactly the trusted tenant.
        let wanted = scalar_text(&key);
        Ok(rows
            .into_iter()
            .filter(|row| {
                row.get(&cap.target.primary_key)
                    .is_some_and(|v| scalar_text(v) == wanted)
            })
            .filter(|row| Self::in_trusted_scope(cap, prep, row))
            .collect())
    }

    /// Whether a row read is the trusted tenant's (and, under a principal
    /// scope, the trusted principal's), whatever the database returned.
    fn in_trusted_scope(cap: &Capability, prep: &Prepared, row: &Map<String, Value>) -> bool {
        cap.target.tenant_key.as_ref().is_none_or(|tk| {
            row.get(tk)
                .is_some_and(|v| tenant_matches(v, &prep.context.tenant_id))
        }) && principal_in_scope(cap, row, &prep.context.principal)
    }

    /// A failed source read as a tool error: the cause of a misconfiguration
    /// goes to the operator's log, the model learns only what to do.
    fn source_failure(&self, cap: &Capability, e: SourceError) -> ToolError {
        match e {
            SourceError::Misconfigured { .. } => {
                // The cause (which table or column, which grant) is for the
                // operator's log; the model only learns it cannot be retried.
                tracing::warn!(capability = %cap.name, error = %e, "read misconfigured");
                ToolError::new(SOURCE_MISCONFIGURED, SOURCE_MISCONFIGURED_MESSAGE)
            }
            SourceError::Timeout { .. } => ToolError::new(
                "source_timeout",
                format!(
                    "the database did not answer within {} ms; try again",
                    self.timeout_ms(cap)
                ),
            ),
            other => {
                tracing::warn!(capability = %cap.name, error = %other, "read failed");
                ToolError::new(
                    "source_unavailable",
                    "the database could not be read right now; try again shortly",
                )
            }
        }
    }

    fn timeout_ms(&self, cap: &Capability) -> u64 {
        self.config
            .sources
            .get(&cap.source)
            .map_or(0, |s| s.statement_timeout_ms)
    }

    fn params_meta(cap: &Capability, prep: &Prepared, args: &Map<String, Value>) -> Vec<ParamMeta> {
        prep.statement
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (bound_from, json_type) = match p {
                    LookupParam::PrimaryKey => (
                        format!("arg:{}", cap.lookup_arg),
                        json_type(args.get(&cap.lookup_arg)),
                    ),
                    LookupParam::Tenant => ("trusted_context:tenant_id".to_owned(), "string"),
                    LookupParam::Principal => ("trusted_context:principal".to_owned(), "string"),
                    LookupParam::Selection(i) => {
                        let value = airlock_policy::aggregate_read::reviewed_selection(cap)
                            .get(usize::from(*i))
                            .map(|t| &t.value);
                        (format!("reviewed:selection.all[{i}]"), json_type(value))
                    }
                    LookupParam::SetKey(i) => {
                        let value = cap
                            .proposal
                            .as_ref()
                            .and_then(|p| p.set())
                            .and_then(|s| s.keys.get(usize::from(*i)));
                        (format!("reviewed:selection.keys[{i}]"), json_type(value))
                    }
                };
                ParamMeta {
                    position: i as u32 + 1,
                    bound_from,
                    json_type: json_type.to_owned(),
                }
            })
            .collect()
    }

    /// Record evidence; `Ok(None)` when the executor is not reachable.
    async fn record(
        &self,
        cap: &Capability,
        prep: &Prepared,
        args: &Map<String, Value>,
        rows: Vec<Map<String, Value>>,
    ) -> Result<Option<String>, ToolError> {
        let req = Request::RecordRead(RecordRead {
            capability: cap.name.clone(),
            args: args.clone(),
            context: prep.context.clone(),
            query_fingerprint: prep.statement.fingerprint(),
            parameters: Self::params_meta(cap, prep, args),
            rows,
            identity_token: prep.identity_token.as_deref().map(str::to_owned),
        });
        match self.link.call(req, true).await {
            Ok(Response::ReadRecorded(r)) => Ok(Some(r.evidence_id)),
            Ok(other) => Err(ToolError::new(
                "internal",
                format!("unexpected executor answer `{}`", other.type_name()),
            )),
            Err(LinkError::Refused(e)) => Err(refused(&e, false)),
            Err(LinkError::Untrusted(msg)) => Err(ToolError::new("executor_untrusted", msg)),
            Err(_) => Ok(None),
        }
    }

    /// The columns the model may see.
    fn visible(cap: &Capability, row: &Map<String, Value>) -> Map<String, Value> {
        cap.visible_columns
            .iter()
            .filter_map(|c| row.get(c).map(|v| (c.clone(), v.clone())))
            .collect()
    }

    /// What the evidence records: the visible columns plus the tenant column
    /// (and principal scope column), so the executor can check every
    /// recorded row is the trusted tenant's (and principal's).
    fn evidence_row(cap: &Capability, row: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Self::visible(cap, row);
        if let Some(tk) = &cap.target.tenant_key
            && let Some(v) = row.get(tk)
        {
            out.insert(tk.clone(), v.clone());
        }
        if let Some(pk) = &cap.target.principal_scope_key
            && let Some(v) = row.get(pk)
        {
            out.insert(pk.clone(), v.clone());
        }
        out
    }

    fn not_found(cap: &Capability, args: &Map<String, Value>) -> ToolError {
        let id = args
            .get(&cap.lookup_arg)
            .map(scalar_text)
            .unwrap_or_default();
        ToolError::new(
            "not_found",
            format!(
                "no `{}` record with id `{id}` exists for your tenant",
                cap.target.table
            ),
        )
    }

    async fn read(&self, cap: &Capability, prep: &Prepared, args: Map<String, Value>) -> Outcome {
        let ctx = prep.call_context();
        let fail = |e: ToolError| Outcome::failed(&cap.name, Some(Kind::Read), Some(&ctx), e);
        let rows = match self.fetch(cap, prep, &args).await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let visible: Vec<Map<String, Value>> = rows.iter().map(|r| Self::visible(cap, r)).collect();
        let mut warnings = Vec::new();
        let recorded = rows.iter().map(|r| Self::evidence_row(cap, r)).collect();
        let evidence = match self.record(cap, prep, &args, recorded).await {
            Ok(Some(id)) => Some(Evidence {
                bundle_id: id,
                query_fingerprint: prep.statement.fingerprint(),
            }),
            Ok(None) => {
                warnings.push("evidence was not recorded: the Airlock executor is not running; reads still work, proposals will not".to_owned());
                None
            }
            Err(e) => return fail(e),
        };
        let mut outcome = if visible.is_empty() {
            fail(Self::not_found(cap, &args))
        } else {
            let id = args
                .get(&cap.lookup_arg)
                .map(scalar_text)
                .unwrap_or_default();
            let data = if cap.max_rows == 1 {
                visible.into_iter().next().map(Value::Object)
            } else {
                Some(json!({"rows": visible}))
            };
            Outcome {
                capability: cap.name.clone(),
                kind: Some(Kind::Read),
                summary: format!(
                    "Read {} record `{id}` (tenant {}). Source database changed: no.",
                    cap.target.table, prep.context.tenant_id
                ),
                data,
                object: Some((cap.target.table.clone(), id)),
                proposal: None,
                error: None,
                evidence: None,
                context: Some(ctx.clone()),
                warnings: Vec::new(),
            }
        };
        outcome.evidence = evidence;
        outcome.warnings = warnings;
        outcome
    }

    async fn propose(
        &self,
        cap: &Capability,
        prep: &Prepared,
        args: Map<String, Value>,
    ) -> Outcome {
        let ctx = prep.call_context();
        let fail = |e: ToolError| Outcome::failed(&cap.name, Some(Kind::Proposal), Some(&ctx), e);
        if let Some(set) = cap.proposal.as_ref().and_then(|p| p.set()) {
            return match self.propose_set(cap, prep, set, &args).await {
                Ok((change_set, evidence_id)) => {
                    self.submit(cap, prep, change_set, evidence_id).await
                }
                Err(e) => fail(e),
            };
        }
        let inserts = cap
            .proposal
            .as_ref()
            .is_some_and(|p| p.kind() == OperationKind::Insert);
        // An insert reads no row: there is none yet.
        let row = if inserts {
            Map::new()
        } else {
            let rows = match self.fetch(cap, prep, &args).await {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            let Some(row) = rows.into_iter().next() else {
                return fail(Self::not_found(cap, &args));
            };
            row
        };
        let change_set = match build(cap, &args, &prep.context, &row) {
            Ok(cs) => cs,
            Err(violations) => return fail(policy_refused(violations)),
        };
        let read: Vec<Map<String, Value>> = if inserts { Vec::new() } else { vec![row] };
        let evidence_id = match self.record(cap, prep, &args, read).await {
            Ok(Some(id)) => id,
            Ok(None) => return fail(executor_down(self)),
            Err(e) => return fail(e),
        };
        self.submit(cap, prep, change_set, evidence_id).await
    }

    /// A bounded set: read the rows the reviewed selection matches (one
    /// more than the cap at most), keep exact matches, freeze them into a
    /// change set and record the read as evidence.
    async fn propose_set(
        &self,
        cap: &Capability,
        prep: &Prepared,
        set: &airlock_policy::config::SetSpec,
        args: &Map<String, Value>,
    ) -> Result<(airlock_policy::change_set::ChangeSet, String), ToolError> {
        let Some(pool) = self.sources.get(&cap.source) else {
            return Err(ToolError::new("internal", "the source is not configured"));
        };
        let scoped = |p: LookupParam| prep.statement.params.contains(&p);
        let rows = pool
            .fetch_set_rows(
                &prep.statement,
                set,
                scoped(LookupParam::Tenant).then_some(prep.context.tenant_id.as_str()),
                scoped(LookupParam::Principal).then_some(prep.context.principal.as_str()),
                set.max_rows as usize + 1,
            )
            .await
            .map_err(|e| self.source_failure(cap, e))?;
        if rows.len() > set.max_rows as usize {
            return Err(ToolError::new(
                "policy_refused",
                format!(
                    "this change cannot be proposed: the reviewed selection matches more than {} rows of your tenant (the reviewed cap); a set is never cut short, so nothing was proposed",
                    set.max_rows
                ),
            ));
        }
        let rows: Vec<Map<String, Value>> = rows
            .into_iter()
            .filter(|row| Self::in_trusted_scope(cap, prep, row))
            .filter(|row| airlock_policy::bounded_set::selection_matches(cap, row))
            .collect();
        let change_set = airlock_policy::bounded_set::build(cap, args, &prep.context, &rows)
            .map_err(policy_refused)?;
        let recorded = rows.iter().map(|r| Self::evidence_row(cap, r)).collect();
        match self.record(cap, prep, args, recorded).await? {
            Some(id) => Ok((change_set, id)),
            None => Err(executor_down(self)),
        }
    }

    /// Send a built change set to the executor and describe the proposal.
    async fn submit(
        &self,
        cap: &Capability,
        prep: &Prepared,
        change_set: airlock_policy::change_set::ChangeSet,
        evidence_id: String,
    ) -> Outcome {
        let ctx = prep.call_context();
        let fail = |e: ToolError| Outcome::failed(&cap.name, Some(Kind::Proposal), Some(&ctx), e);
        let inserts = change_set.operation == OperationKind::Insert;
        let req = Request::SubmitProposal(SubmitProposal {
            change_set,
            evidence_id: Some(evidence_id.clone()),
            identity_token: prep.identity_token.as_deref().map(str::to_owned),
        });
        let recorded = match self.link.call(req, false).await {
            Ok(Response::ProposalRecorded(r)) => r,
            Ok(other) => {
                return fail(ToolError::new(
                    "internal",
                    format!("unexpected executor answer `{}`", other.type_name()),
                ));
            }
            Err(LinkError::Refused(e)) => return fail(refused(&e, true)),
            Err(LinkError::Lost) => {
                return fail(ToolError::new(
                    "outcome_unknown",
                    "the executor connection was lost while submitting; the proposal may or may not have been recorded — a person can check with `airlock proposals list`; do not resubmit blindly",
                ));
            }
            Err(LinkError::Unavailable(_)) => return fail(executor_down(self)),
            Err(LinkError::Untrusted(msg)) => {
                return fail(ToolError::new("executor_untrusted", msg));
            }
        };
        let spec = cap.proposal.as_ref();
        let role = spec.and_then(|p| p.approval.required_role.clone());
        let (executor, writeback) = match spec.map(|p| self.config.executor_for(p)) {
            Some(e) if !matches!(e.spec, ExecutorSpec::SqlUpdate) => {
                (e.name.to_owned(), WritebackMode::AppHandler)
            }
            Some(e) => (e.name.to_owned(), WritebackMode::DirectUpdate),
            None => (
                airlock_policy::config::SQL_UPDATE.to_owned(),
                WritebackMode::DirectUpdate,
            ),
        };
        let object_id = match &recorded.change_set.set {
            Some(set) => format!("set of {} rows", set.row_count),
            None if inserts => "(new row)".to_owned(),
            None => scalar_text(&recorded.change_set.target.primary_key.value),
        };
        Outcome {
            capability: cap.name.clone(),
            kind: Some(Kind::Proposal),
            summary: format!(
                "Created proposal {} for {} `{object_id}`: pending approval by a person{}. Source database changed: no.",
                recorded.proposal_id,
                cap.target.table,
                role.as_deref()
                    .map_or(String::new(), |r| format!(" with role {r}"))
            ),
            data: None,
            object: None,
            proposal: Some(proposal_view(
                &recorded,
                &cap.target.table,
                object_id,
                role,
                writeback,
                executor,
            )),
            error: None,
            evidence: Some(Evidence {
                bundle_id: evidence_id,
                query_fingerprint: prep.statement.fingerprint(),
            }),
            context: Some(ctx.clone()),
            warnings: Vec::new(),
        }
    }
}

/// The policy refused to build a change: every reason, in one message.
fn policy_refused(violations: Vec<airlock_policy::change_set::Violation>) -> ToolError {
    let msg = violations
        .iter()
        .map(|v| v.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    ToolError::new(
        "policy_refused",
        format!("this change cannot be proposed: {msg}"),
    )
    .with_details(json!(violations))
}

/// The executor refused a request: a tool error the model can act on. Rate
/// and size limits get codes of their own (wait and retry; send less);
/// every other refusal is `refused_by_executor` with the executor's code.
pub(crate) fn refused(e: &airlock_ipc::ErrorBody, with_details: bool) -> ToolError {
    use airlock_ipc::error::ErrorCode;
    match e.code {
        ErrorCode::RateLimited => {
            let retry_after_ms = e
                .details
                .as_ref()
                .and_then(|d| d.get("retry_after_ms"))
                .and_then(Value::as_u64);
            ToolError::new(
                "rate_limited",
                format!(
                    "the executor's per-agent limit was reached, nothing was recorded; wait and retry later. Executor: {}",
                    e.message
                ),
            )
            .with_details(json!({"code": e.code, "retry_after_ms": retry_after_ms}))
        }
        ErrorCode::TooLarge => ToolError::new(
            "too_large",
            format!(
                "the executor refused the record as too large, nothing was recorded. Executor: {}",
                e.message
            ),
        )
        .with_details(json!({"code": e.code, "details": e.details})),
        _ if with_details => ToolError::new("refused_by_executor", e.message.clone())
            .with_details(json!({"code": e.code, "details": e.details})),
        _ => ToolError::new("refused_by_executor", e.message.clone())
            .with_details(json!({"code": e.code})),
    }
}

fn executor_down(p: &Proposer) -> ToolError {
    ToolError::new(
        "executor_unavailable",
        format!(
            "proposals need the Airlock executor, which is not running (no socket at {}, the directory from {}); ask an operator to start `airlock-executor serve`, or to set AIRLOCK_SOCKET_DIR in this MCP client's configuration to the executor's socket directory",
            p.executor_socket().display(),
            p.executor_socket_from
        ),
    )
}

fn json_type(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::String(_)) => "string",
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => "integer",
        Some(Value::Number(_)) => "number",
        Some(Value::Bool(_)) => "boolean",
        _ => "null",
    }
}

/// The proposal part of the envelope: the exact diff and what happens next.
fn proposal_view(
    r: &ProposalRecorded,
    table: &str,
    object_id: String,
    required_role: Option<String>,
    writeback: WritebackMode,
    executor: String,
) -> ProposalView {
    let cs = &r.change_set;
    ProposalView {
        id: r.proposal_id.clone(),
        state: r.state.as_str().to_owned(),
        table: table.to_owned(),
        object_id,
        tenant_id: cs.tenant_id.clone(),
        diff: cs.diff(),
        writeback,
        executor,
        required_role,
        guards: serde_json::to_value(&cs.guards).unwrap_or(Value::Null),
        proposal_hash: r.proposal_hash.clone(),
        created_at: r.created_at.clone(),
        expires_at: r.expires_at.clone(),
    }
}
