//! `apply`: run an approved proposal's writeback exactly once and record
//! its one terminal receipt.
//!
//! Order: authorize the peer (same role as for approval) → the ledger starts
//! a job (or resumes the in-doubt job of an interrupted apply, or answers
//! that the proposal is applied already) → the configured executor runs →
//! the receipt is recorded. A crash between any two steps is resolved by
//! applying again: the idempotency key makes the source side answer
//! `already_applied`, and the in-doubt job gets that receipt.

use std::collections::HashSet;
use std::sync::Mutex;

use airlock_ipc::ErrorBody;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::message::{
    DependencyFreshness, Freshness, FreshnessReport, ProposalDetail, ProposalState, WritebackResult,
};
use airlock_policy::change_set::scalar_text;
use airlock_policy::compensation;
use airlock_policy::config::{ExecutorSpec, Kind};
use airlock_policy::freshness::DependencyState;
use airlock_policy::statement::RowFreshness;

use super::credentials::read_secret;
use super::http_handler::HttpSecrets;
use super::receipt::{job_json, receipt_json};
use super::sql_update::WritePools;
use super::{
    Outcome, ReceiptStatus, WritebackJob, command_handler, fault, http_handler, sql_update,
};
use crate::authority::{Authority, Peer};
use crate::ledger::{ActorIdentity, ApplyStart, Durability, NewReceipt, Timestamp};

/// The executor's writeback machinery.
#[derive(Debug, Default)]
pub struct Writeback {
    pools: WritePools,
    /// Proposals being applied right now: one apply per proposal at a time.
    in_flight: Mutex<HashSet<String>>,
}

/// Removes the proposal from `in_flight` when the apply ends, however it ends.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.id);
        }
    }
}

impl Writeback {
    /// The live columns of a capability's table, read with the source's
    /// write pool (see `WritePools::table_columns`).
    pub async fn table_columns(
        &self,
        source_id: &str,
        source: &airlock_policy::config::Source,
        schema: &str,
        table: &str,
    ) -> Result<Vec<airlock_policy::schema_info::ColumnInfo>, String> {
        self.pools
            .table_columns(source_id, source, schema, table)
            .await
    }

    /// A catalog query's rows, read with the source's write pool (see
    /// `WritePools::catalog_rows`).
    pub async fn catalog_rows(
        &self,
        source_id: &str,
        source: &airlock_policy::config::Source,
        query: &airlock_policy::write_effects::CatalogQuery,
        columns: usize,
    ) -> Result<Vec<Vec<String>>, String> {
        self.pools
            .catalog_rows(source_id, source, query, columns)
            .await
    }
}

/// The proposal capability a stored proposal was made with, from the
/// executor's live config; gone (or no longer a proposal): `config_changed`.
fn proposal_capability<'a>(
    auth: &'a Authority,
    detail: &ProposalDetail,
    so: &str,
) -> Result<&'a airlock_policy::config::Capability, ErrorBody> {
    auth.config
        .capability(&detail.summary.capability)
        .filter(|c| c.kind == Kind::Proposal)
        .ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::ConfigChanged,
                format!("the proposal's capability is no longer in the executor's config; {so}"),
            )
        })
}

/// For a row-hash guard: the recorded read of the proposal's very row.
fn evidence_row(detail: &ProposalDetail) -> Option<&serde_json::Map<String, serde_json::Value>> {
    let pk = &detail.change_set.target.primary_key;
    detail.evidence.as_ref().and_then(|e| {
        e.rows.iter().find(|r| {
            r.get(&pk.column)
                .is_some_and(|v| scalar_text(v) == scalar_text(&pk.value))
        })
    })
}

/// `check_freshness`: the proposal's target row re-read now and judged
/// against its guards. A source that cannot be read is an `unavailable`
/// answer, not an error: the reviewer learns that nothing is known.
pub async fn freshness(
    auth: &Authority,
    detail: &ProposalDetail,
) -> Result<FreshnessReport, ErrorBody> {
    let cap = proposal_capability(auth, detail, "its row cannot be checked")?;
    let result = match auth.config.source_for(cap) {
        Some(source) if targets_the_stored_row(cap, &detail.change_set) => {
            sql_update::freshness(
                &auth.writeback.pools,
                &cap.source,
                source,
                cap,
                &detail.change_set,
                evidence_row(detail),
            )
            .await
        }
        Some(_) => Err("the capability now targets another table, key or tenant column".to_owned()),
        None => Err(format!("source `{}` is not configured", cap.source)),
    };
    let (mut freshness, mut changed, mut detail_text) = match result {
        Ok(RowFreshness::Current) => (Freshness::Current, Vec::new(), None),
        Ok(RowFreshness::Changed(labels)) => (Freshness::Changed, labels, None),
        Ok(RowFreshness::Gone) => (Freshness::Gone, Vec::new(), None),
        Err(why) => (Freshness::Unavailable, Vec::new(), Some(why)),
    };
    // The reviewed dependency rows, re-read the same way.
    let mut dependencies = Vec::new();
    if !detail.dependencies.is_empty() {
        let checked = match auth.config.source_for(cap) {
            Some(source) => {
                super::dependencies::check(
                    &auth.writeback.pools,
                    &auth.config,
                    &cap.source,
                    source,
                    &detail.dependencies,
                    &detail.change_set.tenant_id,
                )
                .await
            }
            None => Err(format!("source `{}` is not configured", cap.source)),
        };
        match checked {
            Ok(states) => {
                for (id, state) in states {
                    let f = match state {
                        DependencyState::Current => Freshness::Current,
                        DependencyState::Changed => Freshness::Changed,
                        DependencyState::Gone => Freshness::Gone,
                    };
                    if f != Freshness::Current {
                        changed.push(format!("dependency:{id}"));
                        if freshness == Freshness::Current {
                            freshness = Freshness::Changed;
                        }
                    }
                    dependencies.push(DependencyFreshness { id, freshness: f });
                }
            }
            Err(why) => {
                for d in &detail.dependencies {
                    dependencies.push(DependencyFreshness {
                        id: d.id.clone(),
                        freshness: Freshness::Unavailable,
                    });
                }
                if freshness == Freshness::Current {
                    freshness = Freshness::Unavailable;
                    detail_text = Some(why);
                }
            }
        }
    }
    Ok(FreshnessReport {
        proposal_id: detail.summary.proposal_id.clone(),
        freshness,
        changed,
        detail: detail_text,
        checked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        dependencies,
    })
}

/// Whether approvals of this proposal are bound to a live re-read of its
/// rows: every proposal whose source the executor holds a write
/// credential for, and every proposal with reviewed dependency rows. A
/// source without `write_url_env` (an application handler's), or whose
/// write credential the executor was not given, cannot be re-read, and
/// its proposals are approved as before.
pub fn approval_rereads(auth: &Authority, detail: &ProposalDetail) -> bool {
    // The executor holds a write connection when the source names a write
    // URL variable and the executor has its value; without one it could
    // not apply a direct-SQL proposal either.
    let holds_writer = auth
        .config
        .capability(&detail.summary.capability)
        .and_then(|cap| auth.config.source_for(cap))
        .and_then(|s| s.write_url_env.as_deref())
        .is_some_and(|env| read_secret(env).is_ok());
    holds_writer || !detail.dependencies.is_empty()
}

/// The reviewed dependency rows a new proposal of `cap` depends on, read
/// now (`proposal_freshness`); none when the capability lists none.
pub async fn capture_dependencies(
    auth: &Authority,
    cap: &airlock_policy::config::Capability,
    args: &serde_json::Map<String, serde_json::Value>,
    tenant: &str,
) -> Result<Vec<airlock_ipc::message::DependencyVersion>, String> {
    super::dependencies::capture(&auth.writeback.pools, &auth.config, cap, args, tenant).await
}

/// Check a proposed set against the source with the executor's own
/// connection (see [`super::sql_update::check_set_now`]).
pub async fn check_set(
    auth: &Authority,
    cap: &airlock_policy::config::Capability,
    cs: &airlock_policy::change_set::ChangeSet,
) -> Result<super::sql_update::SetCheck, String> {
    let Some(source) = auth.config.sources.get(&cap.source) else {
        return Err(format!("source `{}` is not configured", cap.source));
    };
    super::sql_update::check_set_now(&auth.writeback.pools, &cap.source, source, cap, cs).await
}

fn state_after(status: ReceiptStatus) -> ProposalState {
    match status {
        ReceiptStatus::Applied | ReceiptStatus::AlreadyApplied => ProposalState::Applied,
        ReceiptStatus::Conflict => ProposalState::Conflict,
        ReceiptStatus::Failed => ProposalState::Failed,
    }
}

pub async fn apply(
    auth: &Authority,
    peer: &Peer,
    proposal_id: &str,
) -> Result<WritebackResult, ErrorBody> {
    run(auth, Some(peer), peer.identity(), proposal_id).await
}

/// Take over an apply whose lease expired (a fleet executor was killed or
/// cut off mid-apply): the job an authorized operator started is resumed
/// with its idempotency key, recorded as this executor's act. Only applies
/// that hold a lease — started by an authorized apply — are ever taken over.
pub async fn take_over(auth: &Authority, proposal_id: &str) -> Result<WritebackResult, ErrorBody> {
    let actor = ActorIdentity {
        uid: nix::unistd::geteuid().as_raw(),
        user: Some("airlock-executor (takeover)".into()),
    };
    run(auth, None, actor, proposal_id).await
}

/// `peer` is `None` for a takeover (no role check: the apply it resumes
/// was authorized when it started).
async fn run(
    auth: &Authority,
    peer: Option<&Peer>,
    actor: ActorIdentity,
    proposal_id: &str,
) -> Result<WritebackResult, ErrorBody> {
    if proposal_id == "latest" {
        return Err(ErrorBody::new(
            ErrorCode::InvalidRequest,
            "apply needs the proposal's id; look it up with show_proposal (the CLI does this for `latest`)",
        ));
    }
    let started = std::time::Instant::now();
    let id = proposal_id.to_owned();
    // Not yet trusted: `begin_apply` verifies the proposal's segment of the
    // chain (and its capability digest) before any job starts, and this
    // look-up's fields are used only to refuse early.
    let detail = auth
        .ledger(Durability::Read, move |l| l.proposal(&id))
        .await?
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "no such proposal"))?;
    let role = detail.summary.required_role.as_deref();
    if let Some(peer) = peer
        && !auth.peers.may_approve(peer.creds.uid, role)
    {
        tracing::warn!(
            uid = peer.creds.uid,
            proposal_id,
            "apply refused: peer lacks the required role"
        );
        return Err(ErrorBody::new(
            ErrorCode::RoleRequired,
            format!(
                "applying this proposal needs the `{}` role (see `airlock.approvers`)",
                role.unwrap_or("approver")
            ),
        ));
    }
    // Only what was approved runs: the capability's live definition must be
    // the one the proposal was recorded under (the ledger compares the
    // digests when the job starts), and the live target must be the stored
    // change set's target.
    let digest = crate::review::live_capability_digest(auth, &detail)?;
    let cap = proposal_capability(auth, &detail, "it cannot be applied")?;
    if let Some(refusal) = auth.schema_drift(&cap.name) {
        tracing::warn!(proposal_id, capability = %cap.name, "apply refused: the schema lock disabled the capability");
        return Err(refusal);
    }
    if !targets_the_stored_row(cap, &detail.change_set) {
        tracing::warn!(
            proposal_id,
            "apply refused: the capability's target differs from the stored change set's"
        );
        return Err(ErrorBody::new(
            ErrorCode::ConfigChanged,
            format!(
                "proposal {proposal_id} targets {}.{} but its capability now targets {}.{} (or another key or tenant column); nothing was done. Ask for a new proposal under the current config",
                detail.change_set.target.schema,
                detail.change_set.target.table,
                cap.target.schema,
                cap.target.table
            ),
        ));
    }
    let Some(spec) = &cap.proposal else {
        return Err(ErrorBody::new(
            ErrorCode::Internal,
            "proposal capability without proposal settings",
        ));
    };
    let Some(source) = auth.config.source_for(cap) else {
        return Err(ErrorBody::new(
            ErrorCode::Internal,
            "the capability's source is not configured",
        ));
    };
    // A compensation (`airlock revert`) was authored by the executor, not
    // verified from a proposer's submission: it is re-checked against the
    // live capability here, before anything starts.
    if detail.change_set.compensation.is_some() {
        let sql = matches!(auth.config.executor_for(spec).spec, ExecutorSpec::SqlUpdate);
        if let Err(why) = compensation::check_applicable(cap, sql, &detail.change_set) {
            tracing::warn!(proposal_id, why = %why, "apply refused: the compensation no longer fits its capability");
            return Err(ErrorBody::new(
                ErrorCode::ConfigChanged,
                format!("revert {proposal_id} cannot be applied: {why}; nothing was done"),
            ));
        }
    }

    let wb = &auth.writeback;
    // The dependency rows' locking statements, built before the job starts:
    // a source that cannot be read starts nothing.
    let locked = super::dependencies::prepare(
        &wb.pools,
        &auth.config,
        &cap.source,
        source,
        &detail.dependencies,
        &detail.change_set.tenant_id,
    )
    .await
    .map_err(|why| {
        ErrorBody::new(
            ErrorCode::SourceUnavailable,
            format!("the proposal's dependency rows cannot be prepared for locking ({why}); nothing was done. Retry when the source is reachable"),
        )
    })?;
    {
        let mut set = wb
            .in_flight
            .lock()
            .map_err(|_| ErrorBody::new(ErrorCode::Internal, "internal error"))?;
        if !set.insert(proposal_id.to_owned()) {
            return Err(ErrorBody::new(
                ErrorCode::Busy,
                "this proposal is being applied right now; wait for that apply to finish",
            ));
        }
    }
    let _guard = InFlight {
        set: &wb.in_flight,
        id: proposal_id.to_owned(),
    };

    let executor = auth.config.executor_for(spec);
    let idempotency_key = format!("{proposal_id}:{}", detail.change_set.object_id());
    let (id, key, name, actor) = (
        proposal_id.to_owned(),
        idempotency_key.clone(),
        executor.name.to_owned(),
        actor,
    );
    let looked_up = started.elapsed();
    // The job start needs no fsync of its own: exactly-once rests on the
    // idempotency key (the receipt in the source database, or the handler's
    // own check), not on this row. It is durable with the receipt's commit;
    // if a power loss takes both, the next apply starts a new job and is
    // answered `already_applied` by the source or handler.
    let start = auth
        .ledger(Durability::Deferred, move |l| {
            l.begin_apply(&id, &name, &key, &actor, &digest)
        })
        .await?;
    let job_recorded = started.elapsed();
    let (job_id, attempt, resumed, detail, fence) = match start {
        ApplyStart::Done { receipt } => {
            return Ok(WritebackResult {
                proposal_id: proposal_id.to_owned(),
                state: ProposalState::Applied,
                status: ReceiptStatus::AlreadyApplied.as_str().to_owned(),
                job: None,
                receipt,
                detail: Some("already applied earlier; nothing was run again".into()),
            });
        }
        ApplyStart::Run {
            job_id,
            attempt,
            resumed,
            detail,
            fence,
        } => (job_id, attempt, resumed, detail, fence),
    };
    if resumed {
        tracing::warn!(proposal_id, job_id = %job_id, "resuming an apply that was interrupted before its receipt");
    }
    let job = WritebackJob {
        job_id,
        proposal_id: proposal_id.to_owned(),
        idempotency_key,
        attempt,
        proposal_hash: detail.proposal_hash.clone(),
        capability: cap.name.clone(),
        executor: executor.name.to_owned(),
        source_id: cap.source.clone(),
        engine: source.engine,
        evidence_id: detail.evidence.as_ref().map(|e| e.evidence_id.clone()),
        change_set: detail.change_set.clone(),
        dependencies: locked,
    };
    tracing::info!(proposal_id, job_id = %job.job_id, attempt, executor = executor.name, "applying");

    let read_row = evidence_row(&detail);
    let outcome = match executor.spec {
        ExecutorSpec::SqlUpdate => {
            sql_update::apply(&wb.pools, &cap.source, source, cap, &job, read_row).await
        }
        ExecutorSpec::HttpHandler(h) => match http_secrets(h) {
            Ok(secrets) => http_handler::run(h, executor.name, &secrets, &job).await,
            Err(e) => Outcome::failed("HANDLER_SECRET_MISSING", e.to_string()),
        },
        ExecutorSpec::CommandHandler(c) => match read_secret(&c.command_env) {
            Ok(command) => command_handler::run(c, executor.name, &command, &job).await,
            Err(e) => Outcome::failed("HANDLER_COMMAND_MISSING", e.to_string()),
        },
    };
    let executed = started.elapsed();
    fault::point("before_ledger_receipt");

    let inverse = capture_inverse(cap, executor.spec, &job, &outcome);
    let outcome = withhold_secrets(outcome);
    let executed_at = Timestamp::now().text;
    let receipt = receipt_json(&job, &outcome, &executed_at, inverse.as_ref());
    let (pid, jid, status, r, d) = (
        proposal_id.to_owned(),
        job.job_id.clone(),
        outcome.status.as_str(),
        receipt.clone(),
        outcome.detail.clone(),
    );
    auth.ledger(Durability::Now, move |l| {
        l.record_receipt(NewReceipt {
            job_id: &jid,
            proposal_id: &pid,
            status,
            receipt: &r,
            detail: d.as_deref(),
            fence,
        })
    })
    .await?;
    auth.notifier.wake();
    // Where an apply's time went, for operators and benchmarks (µs since
    // the request: proposal looked up, job start durable, change executed,
    // receipt durable).
    let us = |d: std::time::Duration| d.as_micros() as u64;
    tracing::info!(
        proposal_id,
        status,
        code = %crate::log_fields::or_dash(outcome.safe_error_code.as_deref()),
        looked_up_us = us(looked_up),
        job_recorded_us = us(job_recorded),
        executed_us = us(executed),
        receipt_recorded_us = us(started.elapsed()),
        "writeback finished"
    );
    let lease_expires = Timestamp::from_ms(Timestamp::now().ms + 60_000).text;
    Ok(WritebackResult {
        proposal_id: proposal_id.to_owned(),
        state: state_after(outcome.status),
        status: status.to_owned(),
        job: Some(job_json(&job, &lease_expires)),
        receipt,
        detail: outcome.detail,
    })
}

/// The inverse of an applied change of a reversible capability, as the
/// receipt records it (`inverse`): the compensation change set
/// `airlock revert` will propose, or why there is none. `None` for other
/// capabilities and for outcomes that changed nothing.
fn capture_inverse(
    cap: &airlock_policy::config::Capability,
    spec: &ExecutorSpec,
    job: &WritebackJob,
    outcome: &Outcome,
) -> Option<serde_json::Value> {
    cap.proposal.as_ref()?.reversibility?;
    if !matches!(
        outcome.status,
        ReceiptStatus::Applied | ReceiptStatus::AlreadyApplied
    ) {
        return None;
    }
    let sql = matches!(spec, ExecutorSpec::SqlUpdate);
    let unavailable = |code: &str, detail: String| serde_json::json!({"schema_version": INVERSE_SCHEMA, "availability": "unavailable", "reason_code": code, "detail": detail});
    Some(
        match compensation::inverse(
            cap,
            sql,
            &job.proposal_id,
            &job.change_set,
            outcome.new_version.as_ref(),
        ) {
            Ok(cs) => match serde_json::to_value(&cs) {
                // The ledger refuses secret-looking material in a receipt,
                // which must be recorded: such an inverse is not kept.
                Ok(v) if airlock_policy::secrets::find_secrets(&v).is_empty() => {
                    serde_json::json!({"schema_version": INVERSE_SCHEMA, "availability": "available", "change_set": v})
                }
                _ => unavailable(
                    "SECRET_MATERIAL",
                    "unavailable: the inverse held secret-looking material and was not kept".into(),
                ),
            },
            Err(u) => unavailable(u.code(), u.describe()),
        },
    )
}

/// `schema_version` of a receipt's `inverse`.
pub const INVERSE_SCHEMA: &str = "airlock.inverse.v1";

/// Whether the live capability writes the row the stored change set names:
/// same schema, table, key column, tenant column and principal scope column.
pub(crate) fn targets_the_stored_row(
    cap: &airlock_policy::config::Capability,
    cs: &airlock_policy::change_set::ChangeSet,
) -> bool {
    cap.target.schema == cs.target.schema
        && cap.target.table == cs.target.table
        && cap.target.primary_key == cs.target.primary_key.column
        && cap.target.tenant_key.as_deref() == cs.guards.tenant.as_ref().map(|t| t.column.as_str())
        && cap.target.principal_scope_key.as_deref()
            == cs.guards.principal.as_ref().map(|p| p.column.as_str())
}

/// The ledger refuses secret-looking material; a receipt must still be
/// recorded (the change may have been made), so withhold such values here.
fn withhold_secrets(mut o: Outcome) -> Outcome {
    let looks_secret = |v: &serde_json::Value| !airlock_policy::secrets::find_secrets(v).is_empty();
    for v in [&mut o.previous_version, &mut o.new_version]
        .into_iter()
        .flatten()
    {
        if looks_secret(v) {
            *v = serde_json::Value::String("[withheld: looked like a credential]".into());
        }
    }
    if let Some(d) = &o.detail
        && looks_secret(&serde_json::Value::String(d.clone()))
    {
        o.detail = Some("[withheld: the detail looked like it contained a credential]".into());
    }
    if o.safe_error_code
        .as_ref()
        .is_some_and(|c| looks_secret(&serde_json::Value::String(c.clone())))
    {
        o.safe_error_code = Some("WITHHELD".into());
    }
    o
}

fn http_secrets(
    h: &airlock_policy::config::HttpHandlerSpec,
) -> Result<HttpSecrets, super::credentials::CredentialError> {
    Ok(HttpSecrets {
        url: read_secret(&h.url_env)?,
        token: h.token_env.as_deref().map(read_secret).transpose()?,
        signing_secret: h
            .signing_secret_env
            .as_deref()
            .map(read_secret)
            .transpose()?,
    })
}
