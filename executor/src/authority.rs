//! The executor's authority: its own copy of the config, the peer policy,
//! and the ledger. Handlers receive the peer's kernel-reported identity
//! alongside each request; nothing a peer sends is taken as identity.

use airlock_ipc::ErrorBody;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::transport::PeerCredentials;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use airlock_policy::Config;
use airlock_policy::statement::read_statement;
use serde_json::json;

use crate::group_commit::{CallError, LedgerThread};
use crate::ledger::{ActorIdentity, Durability, Ledger, LedgerError};
use crate::peer_auth::PeerPolicy;

/// Shared state of a running executor.
pub struct Authority {
    pub config: Config,
    /// `sha256:` of the config file's bytes.
    pub config_hash: String,
    pub peers: PeerPolicy,
    /// The ledger file (a prune never writes its archive over it or its
    /// companion files).
    pub store: std::path::PathBuf,
    /// Write pools and in-flight applies (the only write authority).
    pub writeback: crate::writeback::apply::Writeback,
    /// Each capability's reviewed SELECT fingerprint, computed once: every
    /// recorded read must carry it.
    pub query_fingerprints: HashMap<String, String>,
    /// Each proposal capability's reviewed-definition digest
    /// (`airlock_policy::binding`), computed once: recorded with every
    /// proposal, compared at approve, reject and apply.
    pub capability_digests: HashMap<String, String>,
    /// Wakes the expiry sweep to look at a newly recorded proposal's expiry.
    pub expiry_wake: tokio::sync::Notify,
    /// The notification sinks; woken after each event that may notify.
    pub notifier: crate::notify::Notifier,
    /// Per-proposer-uid intake counters (`airlock.limits`).
    pub intake_meter: crate::intake::IntakeMeter,
    /// Proposal capabilities the schema lock disabled at start, with why
    /// ([`Authority::check_schema_lock`]); set once, before serving.
    schema_lock_disabled: std::sync::OnceLock<BTreeMap<String, String>>,
    /// The issuer's token verifier (`session_auth`): every request that
    /// carries a tenant is checked against its own token again here.
    pub identity: Option<Arc<airlock_identity::Verifier>>,
    ledger: LedgerThread,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("config_hash", &self.config_hash)
            .finish()
    }
}

/// A connected peer as the kernel reported it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub creds: PeerCredentials,
    pub user: Option<String>,
}

impl Peer {
    pub fn identity(&self) -> ActorIdentity {
        ActorIdentity {
            uid: self.creds.uid,
            user: self.user.clone(),
        }
    }
}

impl Authority {
    pub fn new(
        config: Config,
        config_hash: String,
        peers: PeerPolicy,
        store: std::path::PathBuf,
        ledger: Ledger,
        notifier: crate::notify::Notifier,
    ) -> std::io::Result<Authority> {
        let query_fingerprints = config
            .capabilities
            .iter()
            .filter_map(|cap| {
                let engine = config.source_for(cap)?.engine;
                Some((cap.name.clone(), read_statement(engine, cap).fingerprint()))
            })
            .collect();
        let capability_digests = config
            .capabilities
            .iter()
            .filter(|cap| cap.kind == airlock_policy::config::Kind::Proposal)
            .map(|cap| {
                (
                    cap.name.clone(),
                    airlock_policy::binding::capability_digest(&config, cap),
                )
            })
            .collect();
        Ok(Authority {
            query_fingerprints,
            capability_digests,
            config,
            config_hash,
            peers,
            store,
            writeback: Default::default(),
            intake_meter: Default::default(),
            expiry_wake: tokio::sync::Notify::new(),
            notifier,
            schema_lock_disabled: std::sync::OnceLock::new(),
            identity: None,
            ledger: LedgerThread::spawn(ledger)?,
        })
    }

    /// Verify tokens with `verifier` (`session_auth`).
    pub fn with_identity(mut self, verifier: Option<Arc<airlock_identity::Verifier>>) -> Authority {
        self.identity = verifier;
        self
    }

    /// Under `http_claims`, the tenant and principal a proposer sends must
    /// be exactly those of the signed token it forwards, checked here with
    /// the executor's own copy of the issuer's keys: a proposer holds no
    /// signing key, so it cannot name a tenant no issuer vouched for.
    /// Without `session_auth` there is no token to check (and one sent is
    /// refused: the configs disagree).
    pub async fn check_identity(
        &self,
        tenant: &str,
        principal: &str,
        token: Option<&str>,
    ) -> Result<(), ErrorBody> {
        let refuse = |why: &str, code: &str| {
            if crate::refusal_log::admit("identity_not_verified") {
                tracing::warn!(
                    reason = code,
                    "refused: the request's identity does not verify"
                );
            }
            Err(ErrorBody::new(ErrorCode::TenantNotAllowed, why.to_owned())
                .with_details(serde_json::json!({"identity": code})))
        };
        let Some(verifier) = &self.identity else {
            return match token {
                None => Ok(()),
                Some(_) => refuse(
                    "this executor's config has no session_auth, so it cannot verify the token sent; the proposer's config differs",
                    "not_configured",
                ),
            };
        };
        let Some(token) = token else {
            return refuse(
                "this executor takes tenants only from verified tokens (session_auth), and the request carried none",
                "no_token",
            );
        };
        match verifier.verify(token).await {
            Ok(claims) if claims.tenant_id == tenant && claims.principal == principal => Ok(()),
            Ok(_) => refuse(
                "the tenant or principal sent is not the one the signed token names",
                "claims_mismatch",
            ),
            Err(airlock_identity::VerifyError::Refused(r)) => refuse(r.message(), r.code()),
            Err(airlock_identity::VerifyError::KeysUnavailable) => refuse(
                "the identity provider's keys cannot be fetched right now, so no token verifies; try again shortly",
                "keys_unavailable",
            ),
        }
    }

    /// Compare each locked proposal capability's table with the config's
    /// schema lock, reading the catalog with the source's write pool, and
    /// disable for this process's lifetime each one that drifted or could
    /// not be read (fail closed). Called once at start, before serving.
    /// Returns the disabled capabilities and why.
    pub async fn check_schema_lock(&self) -> BTreeMap<String, String> {
        use airlock_policy::config::Kind;
        use airlock_policy::drift;
        let mut live = BTreeMap::new();
        for cap in &self.config.capabilities {
            if cap.kind != Kind::Proposal
                || !self.config.airlock.schema_lock.contains_key(&cap.name)
            {
                continue;
            }
            let key = (
                cap.source.clone(),
                cap.target.schema.clone(),
                cap.target.table.clone(),
            );
            if live.contains_key(&key) {
                continue;
            }
            let columns = match self.config.source_for(cap) {
                Some(source) => {
                    self.writeback
                        .table_columns(&cap.source, source, &cap.target.schema, &cap.target.table)
                        .await
                }
                None => Err(format!("source `{}` is not configured", cap.source)),
            };
            live.insert(key, columns);
        }
        let statuses = drift::evaluate(&self.config, &live);
        let mut disabled: BTreeMap<String, String> = drift::disabled(&statuses)
            .into_iter()
            .filter(|(name, _)| {
                self.config
                    .capability(name)
                    .is_some_and(|c| c.kind == Kind::Proposal)
            })
            .collect();
        for cap in &self.config.capabilities {
            if disabled.contains_key(&cap.name) {
                continue;
            }
            if let Err(why) = self.check_write_kind(cap).await {
                disabled.insert(cap.name.clone(), why);
            }
        }
        for (capability, message) in &disabled {
            tracing::error!(capability = %capability, "{message}");
        }
        let _ = self.schema_lock_disabled.set(disabled.clone());
        disabled
    }

    /// What an INSERT or DELETE needs from its table, read from the
    /// catalog with the write credential (`policy::write_effects`): an
    /// INSERT's identity enforced by a unique constraint, a DELETE with no
    /// unacknowledged trigger or cascade. `Err`: why the capability cannot
    /// be served.
    async fn check_write_kind(
        &self,
        cap: &airlock_policy::config::Capability,
    ) -> Result<(), String> {
        use airlock_policy::config::OperationKind;
        use airlock_policy::write_effects as fx;
        let Some(p) = &cap.proposal else {
            return Ok(());
        };
        // A handler makes the change itself and owns its idempotency and
        // effects (docs/writeback.md); the catalog checks are sql_update's.
        if !matches!(
            self.config.executor_for(p).spec,
            airlock_policy::config::ExecutorSpec::SqlUpdate
        ) {
            return Ok(());
        }
        let Some(source) = self.config.source_for(cap) else {
            return Err(format!("source `{}` is not configured", cap.source));
        };
        let (schema, table) = (&cap.target.schema, &cap.target.table);
        match p.kind() {
            OperationKind::Update => Ok(()),
            OperationKind::Insert => {
                let q = fx::unique_keys_query(source.engine, schema, table);
                let rows = self
                    .writeback
                    .catalog_rows(&cap.source, source, &q, 3)
                    .await
                    .map_err(|e| format!("cannot read the unique keys of {schema}.{table} with the write credential: {e}"))?;
                let rows: Vec<(String, String, String)> = rows
                    .into_iter()
                    .map(|mut r| (r.remove(0), r.remove(0), r.remove(0)))
                    .collect();
                let columns: Vec<String> = p
                    .operation
                    .deduplication
                    .iter()
                    .map(|c| c.column.clone())
                    .collect();
                if fx::identity_enforced(&rows, &columns) {
                    Ok(())
                } else {
                    Err(format!(
                        "no PRIMARY KEY or UNIQUE constraint of {schema}.{table} enforces the insert's identity ({}), so a retried insert could add a second row. Add one, e.g. UNIQUE ({}), then restart the executor",
                        columns.join(", "),
                        columns.join(", ")
                    ))
                }
            }
            OperationKind::Delete => {
                let q = fx::delete_effects_query(source.engine, schema, table);
                let rows = self
                    .writeback
                    .catalog_rows(&cap.source, source, &q, 2)
                    .await
                    .map_err(|e| format!("cannot read the triggers and foreign keys of {schema}.{table} with the write credential, so a delete's reach cannot be proven: {e}"))?;
                let rows: Vec<(String, String)> = rows
                    .into_iter()
                    .map(|mut r| (r.remove(0), r.remove(0)))
                    .collect();
                fx::judge_delete_effects(source.engine, &rows, &p.operation)
            }
        }
    }

    /// The refusal for a capability the schema lock disabled, if it is.
    pub fn schema_drift(&self, capability: &str) -> Option<ErrorBody> {
        let message = self.schema_lock_disabled.get()?.get(capability)?;
        Some(ErrorBody::new(ErrorCode::SchemaDrift, message.clone()))
    }

    /// Run `f` on the ledger's thread; answered once the batch holding its
    /// work is committed as `durability` asks (see `group_commit`).
    pub async fn ledger<T, F>(&self, durability: Durability, f: F) -> Result<T, ErrorBody>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ledger) -> Result<T, LedgerError> + Send + 'static,
    {
        use tracing::Instrument as _;
        let span = tracing::debug_span!(
            target: airlock_proposer::telemetry::TARGET,
            "ledger",
            db.system = if self.config.storage.shared_postgres.is_some() { "postgresql" } else { "sqlite" },
            otel.kind = "client"
        );
        answer(self.ledger.call(durability, f).instrument(span).await)
    }

    /// Run `f` alone on the ledger's thread, outside any batch (see
    /// `LedgerThread::exclusive`).
    pub async fn ledger_exclusive<T, F>(&self, f: F) -> Result<T, ErrorBody>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ledger) -> Result<T, LedgerError> + Send + 'static,
    {
        answer(self.ledger.exclusive(f).await)
    }

    /// Flush the ledger's WAL (clean shutdown).
    pub async fn checkpoint(&self) {
        self.ledger.checkpoint().await;
    }
}

/// A ledger call's result as an IPC answer: the ledger's own refusals keep
/// their codes; a call that did not run is an internal error (logged).
fn answer<T>(result: Result<T, CallError>) -> Result<T, ErrorBody> {
    match result {
        Ok(value) => Ok(value),
        Err(CallError::Ledger(e)) => Err(ledger_error(e)),
        Err(e) => {
            tracing::error!(error = %e, "ledger call not run");
            Err(ErrorBody::new(
                ErrorCode::Internal,
                "internal error in the ledger; see the executor's log",
            ))
        }
    }
}

/// Map a ledger failure to the protocol's closed error set.
pub fn ledger_error(e: LedgerError) -> ErrorBody {
    match e {
        LedgerError::SecretMaterial(found) => {
            let paths: Vec<_> = found
                .iter()
                .map(|f| json!({"path": f.path, "kind": f.kind}))
                .collect();
            ErrorBody::new(
                ErrorCode::SecretMaterial,
                "refused: the data contains secret-looking material (a credential, token or key); nothing was stored",
            )
            .with_details(json!({"findings": paths}))
        }
        LedgerError::NotFound(id) => {
            ErrorBody::new(ErrorCode::NotFound, format!("no proposal {id}"))
        }
        LedgerError::InvalidState { id, state } => ErrorBody::new(
            ErrorCode::InvalidState,
            format!(
                "proposal {id} is {state}: a decision needs a pending proposal, and an apply an approved (or failed, to retry) one"
            ),
        ),
        LedgerError::Tampered { proposal_id, why } => {
            tracing::error!(proposal_id = %proposal_id, why = %why, "refused: the ledger's record of this proposal does not verify");
            ErrorBody::new(
                ErrorCode::LedgerTampered,
                format!(
                    "the ledger's record of proposal {proposal_id} does not verify ({why}); nothing was done. Run `airlock ledger verify`, keep the file for investigation and restore the ledger from a backup"
                ),
            )
        }
        LedgerError::ConfigChanged {
            proposal_id,
            recorded,
            live,
        } => {
            tracing::warn!(proposal_id = %proposal_id, recorded = %crate::log_fields::or_dash(recorded.as_deref()), live = %live, "refused: the capability changed since the proposal was recorded");
            let why = match recorded {
                Some(_) => {
                    "the capability's definition in the executor's config (its target, source or executor) changed since the proposal was recorded"
                }
                None => {
                    "the proposal was recorded before Airlock bound proposals to their capability's definition"
                }
            };
            ErrorBody::new(
                ErrorCode::ConfigChanged,
                format!(
                    "proposal {proposal_id} cannot be decided or applied: {why}, so what was reviewed is not what would run; nothing was done. Ask for a new proposal under the current config"
                ),
            )
        }
        LedgerError::Archive { path, why } => ErrorBody::new(
            ErrorCode::InvalidRequest,
            format!("the archive {path} could not be written: {why}; the ledger is unchanged"),
        ),
        LedgerError::AlreadyVoted {
            id,
            approvals,
            required,
        } => ErrorBody::new(
            ErrorCode::AlreadyVoted,
            format!(
                "you have approved proposal {id} already; it needs {required} approvals from different approvers and has {approvals}. Your vote was not counted again: ask another approver holding the required role"
            ),
        )
        .with_details(json!({"approvals": approvals, "required": required})),
        LedgerError::Leased {
            proposal_id,
            holder,
            until,
        } => ErrorBody::new(
            ErrorCode::Busy,
            format!(
                "proposal {proposal_id} is being applied by executor {holder}; nothing was started here. If that executor stopped, another executor takes the apply over after its lease ends ({until})"
            ),
        ),
        LedgerError::Fenced { proposal_id } => {
            tracing::error!(proposal_id = %proposal_id, "this executor's apply lease was taken over; its receipt was not recorded");
            ErrorBody::new(
                ErrorCode::Busy,
                format!(
                    "this executor's lease on proposal {proposal_id} ran out and another executor took the apply over; its receipt stands. See `airlock proposals show {proposal_id}`"
                ),
            )
        }
        LedgerError::Expired(id) => ErrorBody::new(
            ErrorCode::Expired,
            format!(
                "proposal {id} expired (its time to live passed before it was decided or applied); ask for a new proposal"
            ),
        ),
        other => {
            tracing::error!(error = %other, "ledger error");
            match other.storage_fault() {
                Some(fault) => ErrorBody::new(
                    ErrorCode::Internal,
                    format!(
                        "internal error in the ledger: {}; nothing was stored. Fix that, then retry",
                        fault.describe()
                    ),
                ),
                None => ErrorBody::new(
                    ErrorCode::Internal,
                    "internal error in the ledger; see the executor's log",
                ),
            }
        }
    }
}
