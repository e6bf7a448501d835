//! Proposer-role requests: recording read evidence and taking in proposals.
//!
//! Nothing submitted is trusted (invariant 5): the change set is rebuilt and
//! compared with the executor's own policy, the tenant is bound to what this
//! peer may claim, the evidence must be this peer's read of this row, ids
//! are assigned here, and only the executor's rebuilt change set is stored.

use airlock_ipc::ErrorBody;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::limits::{MAX_PARAMS_PER_READ, MAX_ROWS_PER_READ};
use airlock_ipc::message::{
    ProposalRecorded, ProposalRef, ProposalState, ProposalStatus, ReadRecorded, RecordRead,
    SubmitProposal,
};
use airlock_policy::args::{scalar_eq, validate_args};
use airlock_policy::change_set::{
    ViolationCode, principal_in_scope, scalar_text, tenant_matches, verify,
};
use airlock_policy::config::{EvidenceMode, IntakeLimits, Kind, Mode, OperationKind};
use airlock_policy::context::is_valid_context_value;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use airlock_policy::config::MAX_SET_ROWS;

use crate::authority::{Authority, Peer};
use crate::ledger::{Durability, NewEvidence, NewProposal};

/// What a proposer adds to the ledger, metered per peer uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    Evidence,
    /// A change set of `rows` rows: one, or a bounded set's members (at
    /// most 100), each allowed `max_change_set_bytes`.
    Proposal {
        rows: u64,
    },
}

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Per-peer-uid counters for `airlock.limits`: a count per rate window for
/// each kind of intake, and the ledger bytes charged per 24 hours. Fixed
/// windows, starting with a uid's first request after the previous one
/// ended; only uids allowed on the proposer socket ever get an entry.
#[derive(Debug, Default)]
pub struct IntakeMeter {
    peers: Mutex<HashMap<u32, PeerMeter>>,
}

#[derive(Debug)]
struct PeerMeter {
    window_started: Instant,
    evidence: u64,
    proposals: u64,
    day_started: Instant,
    day_bytes: u64,
}

impl IntakeMeter {
    /// Admit one `what` of `payload` bytes from `uid`, or refuse with
    /// `too_large` (not counted) or `rate_limited` (with a retry hint).
    /// An admitted request counts even if it is refused later on.
    pub fn admit(
        &self,
        limits: &IntakeLimits,
        uid: u32,
        what: Intake,
        payload: u64,
    ) -> Result<(), ErrorBody> {
        self.admit_at(limits, uid, what, payload, Instant::now())
    }

    fn admit_at(
        &self,
        limits: &IntakeLimits,
        uid: u32,
        what: Intake,
        payload: u64,
        now: Instant,
    ) -> Result<(), ErrorBody> {
        let (noun, max_bytes, max_key, per_window, count_key) = match what {
            Intake::Evidence => (
                "evidence",
                limits.max_evidence_bytes,
                "max_evidence_bytes",
                limits.evidence_per_window,
                "evidence_per_window",
            ),
            Intake::Proposal { rows } => (
                "change set",
                limits
                    .max_change_set_bytes
                    .saturating_mul(rows.clamp(1, u64::from(MAX_SET_ROWS))),
                "max_change_set_bytes",
                limits.proposals_per_window,
                "proposals_per_window",
            ),
        };
        if payload > max_bytes {
            return Err(ErrorBody::new(
                ErrorCode::TooLarge,
                format!(
                    "the {noun} is {payload} bytes as JSON; at most {max_bytes} are accepted (`airlock.limits.{max_key}`, per row of a bounded set). Nothing was stored: send fewer rows or shorter values, or ask the operator to raise the limit"
                ),
            )
            .with_details(json!({"limit": max_key, "max_bytes": max_bytes, "bytes": payload})));
        }
        let window = Duration::from_secs(limits.rate_window_seconds);
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let m = peers.entry(uid).or_insert(PeerMeter {
            window_started: now,
            evidence: 0,
            proposals: 0,
            day_started: now,
            day_bytes: 0,
        });
        if now.duration_since(m.window_started) >= window {
            (m.window_started, m.evidence, m.proposals) = (now, 0, 0);
        }
        if now.duration_since(m.day_started) >= DAY {
            (m.day_started, m.day_bytes) = (now, 0);
        }
        let count = match what {
            Intake::Evidence => m.evidence,
            Intake::Proposal { .. } => m.proposals,
        };
        let cost = IntakeLimits::ledger_cost(payload);
        let refused = if count >= per_window {
            Some((
                (m.window_started + window).saturating_duration_since(now),
                count_key,
                format!(
                    "this peer (uid {uid}) already sent {count} {}s in this {} s window, the most `airlock.limits.{count_key}` allows",
                    match what {
                        Intake::Evidence => "evidence record",
                        Intake::Proposal { .. } => "proposal",
                    },
                    limits.rate_window_seconds
                ),
            ))
        } else if m.day_bytes.saturating_add(cost) > limits.ledger_bytes_per_day {
            Some((
                (m.day_started + DAY).saturating_duration_since(now),
                "ledger_bytes_per_day",
                format!(
                    "this peer (uid {uid}) has used {} of its {} ledger bytes for this 24-hour period (`airlock.limits.ledger_bytes_per_day`)",
                    m.day_bytes, limits.ledger_bytes_per_day
                ),
            ))
        } else {
            None
        };
        if let Some((retry_after, key, why)) = refused {
            drop(peers);
            if crate::refusal_log::admit("rate_limited") {
                tracing::warn!(uid, limit = key, "refused: intake rate limit reached");
            }
            let retry_ms = u64::try_from(retry_after.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            return Err(ErrorBody::new(
                ErrorCode::RateLimited,
                format!(
                    "rate limited: {why}. Nothing was stored; retry in {} s",
                    retry_ms.div_ceil(1000)
                ),
            )
            .with_details(json!({"limit": key, "retry_after_ms": retry_ms})));
        }
        match what {
            Intake::Evidence => m.evidence += 1,
            Intake::Proposal { .. } => m.proposals += 1,
        }
        m.day_bytes = m.day_bytes.saturating_add(cost);
        Ok(())
    }
}

/// Size of `value` as JSON, without keeping the text.
pub(crate) fn json_len<T: serde::Serialize>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, value) {
        Ok(()) => c.0,
        Err(_) => u64::MAX,
    }
}

pub async fn record_read(
    auth: &Authority,
    peer: &Peer,
    req: RecordRead,
) -> Result<ReadRecorded, ErrorBody> {
    auth.intake_meter.admit(
        &auth.config.airlock.limits,
        peer.creds.uid,
        Intake::Evidence,
        json_len(&req.rows),
    )?;
    let invalid = |m: String| Err(ErrorBody::new(ErrorCode::InvalidRequest, m));
    let Some(cap) = auth.config.capability(&req.capability) else {
        return invalid(format!(
            "unknown capability `{}`",
            req.capability.chars().take(64).collect::<String>()
        ));
    };
    let ctx = &req.context;
    if !is_valid_context_value(&ctx.tenant_id) || !is_valid_context_value(&ctx.principal) {
        return invalid("the trusted context's tenant and principal must be 1 to 128 characters without control characters".into());
    }
    if !auth.peers.may_claim(peer.creds.uid, &ctx.tenant_id) {
        return Err(tenant_refused(peer));
    }
    auth.check_identity(
        &ctx.tenant_id,
        &ctx.principal,
        req.identity_token.as_deref(),
    )
    .await?;
    if let Some(spec) = &cap.list {
        // A list read's page: the expected statement, parameters, row
        // count and filters follow from its recorded arguments.
        check_list_page(auth, cap, spec, &req)?;
    } else {
        if let Err(errs) = validate_args(cap, Some(&serde_json::Value::Object(req.args.clone()))) {
            return Err(ErrorBody::new(
                ErrorCode::InvalidRequest,
                "the read's arguments do not match the capability",
            )
            .with_details(json!(errs)));
        }
        if auth.query_fingerprints.get(&cap.name) != Some(&req.query_fingerprint) {
            return Err(ErrorBody::new(
                ErrorCode::PolicyViolation,
                "the query fingerprint is not the reviewed statement of this capability",
            ));
        }
        // An aggregate read records its released result, never member
        // rows: exactly its group columns and values (or the suppression
        // marker). No row carries a tenant column; the tenant was checked
        // with `may_claim` above and is bound into the reviewed statement.
        if let Some(spec) = &cap.aggregate
            && let Err(why) = airlock_policy::aggregate_read::check_evidence_rows(spec, &req.rows)
        {
            return Err(ErrorBody::new(
                ErrorCode::PolicyViolation,
                format!("the evidence is not this aggregate's released result: {why}"),
            ));
        }
        if req.rows.len() > MAX_ROWS_PER_READ.min(cap.read_row_cap() as usize)
            || req.parameters.len() > MAX_PARAMS_PER_READ
        {
            return invalid(format!(
                "at most {} rows for this capability",
                cap.read_row_cap()
            ));
        }
    }
    let allowed = cap.read_columns();
    let member_rows = if cap.aggregate.is_some() {
        &[][..]
    } else {
        &req.rows[..]
    };
    for row in member_rows {
        if let Some(col) = row.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ErrorBody::new(
                ErrorCode::PolicyViolation,
                format!(
                    "column `{}` is not one this capability reads",
                    col.chars().take(64).collect::<String>()
                ),
            ));
        }
        if let Some(tk) = &cap.target.tenant_key
            && !row
                .get(tk)
                .is_some_and(|v| tenant_matches(v, &ctx.tenant_id))
        {
            return Err(ErrorBody::new(
                ErrorCode::PolicyViolation,
                "every evidence row must carry the tenant column with the trusted tenant; a row of another tenant cannot be recorded",
            ));
        }
        if !principal_in_scope(cap, row, &ctx.principal) {
            return Err(ErrorBody::new(
                ErrorCode::PolicyViolation,
                "every evidence row must carry the principal scope column with the trusted principal; a row of another principal cannot be recorded",
            ));
        }
    }
    let actor = peer.identity();
    let (evidence_id, recorded_at) = auth
        .ledger(Durability::Deferred, move |l| {
            l.record_evidence(NewEvidence {
                capability: &req.capability,
                tenant_id: &req.context.tenant_id,
                principal: &req.context.principal,
                query_fingerprint: &req.query_fingerprint,
                parameters: &req.parameters,
                rows: &req.rows,
                actor: &actor,
            })
        })
        .await?;
    Ok(ReadRecorded {
        evidence_id,
        recorded_at,
    })
}

/// The executor's own check of one page of a list read
/// (`airlock_policy::list_read::check_evidence`), on its own config.
fn check_list_page(
    auth: &Authority,
    cap: &airlock_policy::config::Capability,
    spec: &airlock_policy::list_read::ListSpec,
    req: &RecordRead,
) -> Result<(), ErrorBody> {
    use airlock_policy::list_read::{RecordedPage, RefusalKind, check_evidence};
    let Some(engine) = auth.config.source_for(cap).map(|s| s.engine) else {
        return Err(ErrorBody::new(
            ErrorCode::InvalidRequest,
            "the capability's source is not configured",
        ));
    };
    let parameters: Vec<(u32, &str, &str)> = req
        .parameters
        .iter()
        .map(|p| (p.position, p.bound_from.as_str(), p.json_type.as_str()))
        .collect();
    let page = RecordedPage {
        args: &req.args,
        fingerprint: &req.query_fingerprint,
        parameters: &parameters,
        rows: &req.rows,
    };
    check_evidence(engine, cap, spec, &req.context, page)
        .map(drop)
        .map_err(|r| {
            let code = match r.kind {
                RefusalKind::InvalidRequest => ErrorCode::InvalidRequest,
                RefusalKind::PolicyViolation => ErrorCode::PolicyViolation,
            };
            ErrorBody::new(code, r.message)
        })
}

pub(crate) fn tenant_refused(peer: &Peer) -> ErrorBody {
    if crate::refusal_log::admit("tenant_not_allowed") {
        tracing::warn!(uid = peer.creds.uid, pid = %crate::log_fields::or_dash(peer.creds.pid), "refused: tenant not claimable by this peer");
    }
    ErrorBody::new(
        ErrorCode::TenantNotAllowed,
        "this connection may not act for that tenant (see `airlock.proposers` in the config)",
    )
}

pub async fn submit_proposal(
    auth: &Authority,
    peer: &Peer,
    req: SubmitProposal,
) -> Result<ProposalRecorded, ErrorBody> {
    if auth.config.mode != Mode::Review {
        return Err(ErrorBody::new(
            ErrorCode::PolicyViolation,
            "the executor's config is read_only: it accepts no proposals",
        ));
    }
    let uid = peer.creds.uid;
    // A set's allowance grows with its members (at most 100, checked
    // against the capability's `max_rows` by `verify` next).
    let rows = req
        .change_set
        .set
        .as_ref()
        .map_or(1, |s| s.members.len() as u64);
    auth.intake_meter.admit(
        &auth.config.airlock.limits,
        uid,
        Intake::Proposal { rows },
        json_len(&req.change_set),
    )?;
    let verified = match verify(&auth.config, &req.change_set, &|t| {
        auth.peers.may_claim(uid, t)
    }) {
        Ok(cs) => cs,
        Err(violations) => {
            if violations
                .iter()
                .any(|v| v.code == ViolationCode::TenantNotClaimable)
            {
                return Err(tenant_refused(peer));
            }
            if crate::refusal_log::admit("policy_violation") {
                tracing::warn!(uid, count = violations.len(), first = %crate::log_fields::or_dash(violations.first().and_then(|v| serde_json::to_value(v.code).ok()).and_then(|c| c.as_str().map(str::to_owned))), "proposal refused by policy");
            }
            let summary: Vec<String> = violations.iter().take(3).map(ToString::to_string).collect();
            return Err(ErrorBody::new(
                ErrorCode::PolicyViolation,
                format!(
                    "the change set breaks the reviewed policy: {}",
                    summary.join("; ")
                ),
            )
            .with_details(json!({"violations": violations})));
        }
    };
    auth.check_identity(
        &verified.tenant_id,
        &verified.principal,
        req.identity_token.as_deref(),
    )
    .await?;
    let Some(cap) = auth
        .config
        .capability(&verified.capability)
        .filter(|c| c.kind == Kind::Proposal)
    else {
        return Err(ErrorBody::new(
            ErrorCode::Internal,
            "verified capability vanished",
        ));
    };
    if let Some(refusal) = auth.schema_drift(&cap.name) {
        if crate::refusal_log::admit("schema_drift") {
            tracing::warn!(uid, capability = %cap.name, "proposal refused: the schema lock disabled the capability");
        }
        return Err(refusal);
    }
    let required_role = cap
        .proposal
        .as_ref()
        .and_then(|p| p.approval.required_role.clone());

    // Evidence: this peer's recorded read of this very row.
    match (&req.evidence_id, cap.evidence) {
        (None, EvidenceMode::Required) => {
            return Err(ErrorBody::new(
                ErrorCode::EvidenceRequired,
                "this capability requires the evidence id of the read the proposal was built from",
            ));
        }
        (None, EvidenceMode::Optional) => {}
        (Some(id), _) => {
            let id = id.clone();
            let evidence = auth
                .ledger(Durability::Read, move |l| l.evidence(&id))
                .await?;
            // This peer's record for this capability, tenant and principal.
            let own_record = |ev: &airlock_ipc::message::EvidenceInfo| {
                ev.capability == cap.name
                    && ev.tenant_id == verified.tenant_id
                    && ev.principal == verified.principal
                    && ev.recorded_by.uid == uid
            };
            if let Some(set) = &verified.set {
                // A set's evidence is this peer's read of the selection:
                // exactly the members' keys.
                let mut members: Vec<String> = set
                    .members
                    .iter()
                    .map(|m| scalar_text(&m.primary_key))
                    .collect();
                members.sort();
                let ours = evidence.as_ref().is_some_and(|ev| {
                    let mut read: Vec<String> = ev
                        .rows
                        .iter()
                        .map(|r| {
                            r.get(&cap.target.primary_key)
                                .map(scalar_text)
                                .unwrap_or_default()
                        })
                        .collect();
                    read.sort();
                    own_record(ev) && read == members
                });
                if !ours {
                    return Err(ErrorBody::new(
                        ErrorCode::EvidenceRequired,
                        "the evidence id is unknown, or is not this connection's read of exactly these members",
                    ));
                }
            } else if verified.operation == OperationKind::Insert {
                // An insert reads no row: its evidence is this peer's
                // record of the request, with no rows.
                let ours = evidence
                    .as_ref()
                    .is_some_and(|ev| own_record(ev) && ev.rows.is_empty());
                if !ours {
                    return Err(ErrorBody::new(
                        ErrorCode::EvidenceRequired,
                        "the evidence id is unknown, or is not this connection's record of this insert request",
                    ));
                }
            } else {
                let object_id = &verified.target.primary_key;
                let row = evidence.as_ref().and_then(|ev| {
                    let same_target = auth.config.capability(&ev.capability).is_some_and(|c| {
                        c.target.schema == cap.target.schema && c.target.table == cap.target.table
                    });
                    // Under a principal scope, the read must also be the same
                    // principal's, and the row still in that principal's scope.
                    let principal_ok = cap.target.principal_scope_key.is_none()
                        || ev.principal == verified.principal;
                    let ours = ev.tenant_id == verified.tenant_id
                        && ev.recorded_by.uid == uid
                        && principal_ok;
                    ev.rows.iter().filter(|_| ours && same_target).find(|r| {
                        r.get(&object_id.column)
                            .is_some_and(|v| scalar_text(v) == scalar_text(&object_id.value))
                    })
                });
                let Some(row) = row.filter(|r| principal_in_scope(cap, r, &verified.principal))
                else {
                    return Err(ErrorBody::new(
                        ErrorCode::EvidenceRequired,
                        "the evidence id is unknown, or is not this connection's read of this row",
                    ));
                };
                // The before-image is what the person reviews and what
                // transition guards were checked against: it must be the
                // row that was read.
                if let Some((col, _)) = verified
                    .before
                    .iter()
                    .find(|(col, v)| row.get(*col).is_some_and(|seen| !scalar_eq(seen, v)))
                {
                    return Err(ErrorBody::new(
                        ErrorCode::PolicyViolation,
                        format!(
                            "the change set's before-image does not match the evidence: `{col}` was read with another value"
                        ),
                    ));
                }
            }
        }
    }

    // A set: the executor runs the reviewed selection itself and checks
    // the members are exactly what it matches, each as frozen.
    if verified.set.is_some() {
        match crate::writeback::apply::check_set(auth, cap, &verified).await {
            Ok(crate::writeback::sql_update::SetCheck::Exact) => {}
            Ok(crate::writeback::sql_update::SetCheck::Refused(why)) => {
                if crate::refusal_log::admit("set_mismatch") {
                    tracing::warn!(uid, capability = %cap.name, "set proposal refused: members differ from the source");
                }
                return Err(ErrorBody::new(
                    ErrorCode::PolicyViolation,
                    format!("the set breaks the reviewed policy: {why}"),
                ));
            }
            Err(why) => {
                return Err(ErrorBody::new(
                    ErrorCode::SourceUnavailable,
                    format!("the set's rows could not be checked ({why}); nothing was recorded"),
                ));
            }
        }
    }

    let ttl_ms = (auth.config.airlock.proposal_ttl_seconds as i64).saturating_mul(1000);
    let actor = peer.identity();
    let evidence_id = req.evidence_id.clone();
    let cs = verified.clone();
    let role = required_role.clone();
    // What the approval will be bound to besides the change set: the
    // capability's reviewed definition (target, source, executor) now.
    let Some(digest) = auth.capability_digests.get(&cap.name).cloned() else {
        return Err(ErrorBody::new(
            ErrorCode::Internal,
            "the capability's reviewed-definition digest is missing",
        ));
    };
    // `proposal_freshness`: the versions of the reviewed dependency rows
    // now, read by the executor itself (never taken from the proposer),
    // recorded with the proposal and re-checked at approval and apply.
    let dependencies = crate::writeback::apply::capture_dependencies(
        auth,
        cap,
        &verified.args,
        &verified.tenant_id,
    )
    .await
    .map_err(|why| {
        ErrorBody::new(
            ErrorCode::SourceUnavailable,
            format!("the proposal's reviewed dependency rows could not be read ({why}); nothing was recorded"),
        )
    })?;
    let required_approvals = cap
        .proposal
        .as_ref()
        .map_or(1, |p| p.approval.required_approvals);
    let recorded = auth
        .ledger(Durability::Now, move |l| {
            l.record_bound_proposal(
                NewProposal {
                    change_set: &cs,
                    capability_digest: &digest,
                    evidence_id: evidence_id.as_deref(),
                    required_role: role.as_deref(),
                    ttl_ms,
                    actor: &actor,
                },
                required_approvals,
                &dependencies,
            )
        })
        .await?;
    tracing::info!(proposal_id = %recorded.proposal_id, capability = %verified.capability, uid, "proposal recorded, pending approval");
    // The expiry sweep may be asleep past this proposal's expiry.
    auth.expiry_wake.notify_one();
    auth.notifier.wake();
    Ok(ProposalRecorded {
        proposal_id: recorded.proposal_id,
        state: ProposalState::PendingApproval,
        proposal_hash: recorded.proposal_hash,
        change_set: verified,
        evidence_id: req.evidence_id,
        created_at: recorded.created_at,
        expires_at: recorded.expires_at,
    })
}

/// A proposer may see the state of proposals of tenants it may claim; any
/// other id is indistinguishable from a missing one.
pub async fn proposal_status(
    auth: &Authority,
    peer: &Peer,
    req: ProposalRef,
) -> Result<ProposalStatus, ErrorBody> {
    // With `session_auth` a tenant is only what a signed token names, and a
    // status question carries no token: it is answered as for an unknown id,
    // so a proposer cannot read the state of another tenant's proposal.
    if auth.identity.is_some() {
        return Err(ErrorBody::new(ErrorCode::NotFound, "no such proposal"));
    }
    let id = req.proposal_id.clone();
    let detail = auth
        .ledger(Durability::Read, move |l| l.proposal(&id))
        .await?;
    match detail {
        Some(d) if auth.peers.may_claim(peer.creds.uid, &d.summary.tenant_id) => {
            let updated_at = d
                .decisions
                .last()
                .map_or(d.summary.created_at.clone(), |x| x.at.clone());
            Ok(ProposalStatus {
                proposal_id: d.summary.proposal_id,
                state: d.summary.state,
                updated_at,
            })
        }
        _ => Err(ErrorBody::new(ErrorCode::NotFound, "no such proposal")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn small() -> IntakeLimits {
        IntakeLimits {
            rate_window_seconds: 10,
            evidence_per_window: 3,
            proposals_per_window: 2,
            max_evidence_bytes: 1000,
            max_change_set_bytes: 500,
            ledger_bytes_per_day: 20_000,
        }
    }

    #[test]
    fn counts_per_uid_and_kind_and_renews_with_the_window() {
        let (m, l, t0) = (IntakeMeter::default(), small(), Instant::now());
        for _ in 0..3 {
            m.admit_at(&l, 7, Intake::Evidence, 10, t0).unwrap();
        }
        let e = m.admit_at(&l, 7, Intake::Evidence, 10, t0).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.details.unwrap()["retry_after_ms"], 10_000);
        // Proposals and other uids have their own counts.
        m.admit_at(&l, 7, Intake::Proposal { rows: 1 }, 10, t0)
            .unwrap();
        m.admit_at(&l, 8, Intake::Evidence, 10, t0).unwrap();
        let later = t0 + Duration::from_secs(10);
        m.admit_at(&l, 7, Intake::Evidence, 10, later).unwrap();
    }

    #[test]
    fn too_large_is_refused_without_counting() {
        let (m, l, t0) = (IntakeMeter::default(), small(), Instant::now());
        for _ in 0..5 {
            let e = m
                .admit_at(&l, 7, Intake::Proposal { rows: 1 }, 501, t0)
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::TooLarge);
        }
        m.admit_at(&l, 7, Intake::Proposal { rows: 1 }, 500, t0)
            .unwrap();
    }

    #[test]
    fn a_set_may_be_as_large_as_its_members_allow_up_to_a_hundred() {
        let (m, mut l, t0) = (IntakeMeter::default(), small(), Instant::now());
        l.ledger_bytes_per_day = u64::MAX;
        let admit = |rows, bytes| m.admit_at(&l, 7, Intake::Proposal { rows }, bytes, t0);
        admit(3, 1500).unwrap();
        assert_eq!(admit(3, 1501).unwrap_err().code, ErrorCode::TooLarge);
        // No member counts as one; more than 100 as 100.
        assert_eq!(admit(0, 501).unwrap_err().code, ErrorCode::TooLarge);
        admit(1000, 50_000).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(admit(1000, 50_001).unwrap_err().code, ErrorCode::TooLarge);
    }

    #[test]
    fn the_daily_byte_budget_holds_across_windows() {
        let (m, l, t0) = (IntakeMeter::default(), small(), Instant::now());
        // Each 1000-byte evidence costs 4048 bytes: four fit in 20,000.
        let mut admitted = 0;
        for w in 0..10u64 {
            let at = t0 + Duration::from_secs(10 * w);
            if m.admit_at(&l, 7, Intake::Evidence, 1000, at).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 4);
        let e = m
            .admit_at(&l, 7, Intake::Evidence, 1000, t0 + Duration::from_secs(200))
            .unwrap_err();
        assert_eq!(e.details.unwrap()["limit"], "ledger_bytes_per_day");
        m.admit_at(&l, 7, Intake::Evidence, 1000, t0 + DAY).unwrap();
    }
}
