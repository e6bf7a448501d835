//! Operator-role requests: listing and showing proposals, approving and
//! rejecting them, reading events and stats. Only reachable on the operator
//! socket; approval additionally requires the capability's role (invariant 6).

use crate::ledger::Durability;
use airlock_ipc::ErrorBody;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::limits::{MAX_LIST_ITEMS, MAX_NOTE_CHARS};
use airlock_ipc::message::{
    Approve, Decision, Events, EventsSince, EvidenceRecord, EvidenceRef, Freshness, ListProposals,
    ProposalDetail, ProposalRef, ProposalState, Proposals, Reject, ReplayStory, StatsReport,
};

use crate::authority::{Authority, Peer};

async fn resolve(auth: &Authority, id: &str) -> Result<String, ErrorBody> {
    let wanted = id.to_owned();
    auth.ledger(Durability::Read, move |l| l.resolve_id(&wanted))
        .await?
        .ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::NotFound,
                format!("no proposal `{}`", id.chars().take(64).collect::<String>()),
            )
        })
}

pub async fn list(auth: &Authority, req: ListProposals) -> Result<Proposals, ErrorBody> {
    let limit = req.limit.unwrap_or(50).clamp(1, MAX_LIST_ITEMS);
    let items = auth
        .ledger(Durability::Read, move |l| l.list(req.status, limit))
        .await?;
    Ok(Proposals { items })
}

/// `check_freshness`: re-read the proposal's row now (see
/// `writeback::apply::freshness`).
pub async fn freshness(
    auth: &Authority,
    req: ProposalRef,
) -> Result<airlock_ipc::message::FreshnessReport, ErrorBody> {
    let detail = show(auth, req).await?;
    crate::writeback::apply::freshness(auth, &detail).await
}

pub async fn show(auth: &Authority, req: ProposalRef) -> Result<ProposalDetail, ErrorBody> {
    let id = resolve(auth, &req.proposal_id).await?;
    auth.ledger(Durability::Read, move |l| {
        let Some(mut d) = l.proposal(&id)? else {
            return Ok(None);
        };
        d.compensated_by = l.compensations_of(&id)?;
        Ok(Some(d))
    })
    .await?
    .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "no such proposal"))
}

fn check_note(note: Option<&str>) -> Result<(), ErrorBody> {
    match note {
        Some(n)
            if n.chars().count() > MAX_NOTE_CHARS
                || n.chars().any(|c| c.is_control() && c != '\n') =>
        {
            Err(ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!(
                    "a note or reason must be at most {MAX_NOTE_CHARS} characters of plain text"
                ),
            ))
        }
        _ => Ok(()),
    }
}

async fn decide(
    auth: &Authority,
    peer: &Peer,
    id: &str,
    approve: bool,
    note: Option<String>,
) -> Result<Decision, ErrorBody> {
    check_note(note.as_deref())?;
    // A decision names exactly the proposal the person saw: never `latest`,
    // which could change between showing and deciding.
    if id == "latest" {
        return Err(ErrorBody::new(
            ErrorCode::InvalidRequest,
            "approve and reject need the proposal's id; look it up with show_proposal (the CLI does this for `latest`)",
        ));
    }
    let id = resolve(auth, id).await?;
    let lookup = id.clone();
    // The role and capability read here are trusted only because
    // `record_decision` verifies the proposal's segment of the chain (its
    // required role included) in the same transaction that records the
    // decision: a tampered row is refused there (`ledger_tampered`) before
    // anything is written, so verifying here too would only repeat it.
    let detail = auth
        .ledger(Durability::Read, move |l| l.proposal(&lookup))
        .await?
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "no such proposal"))?;
    let role = detail.summary.required_role.as_deref();
    if !auth.peers.may_approve(peer.creds.uid, role) {
        tracing::warn!(uid = peer.creds.uid, proposal_id = %id, role = %crate::log_fields::or_dash(role), "decision refused: peer lacks the required role");
        let msg = match role {
            Some(r) => format!(
                "approving or rejecting this proposal needs the `{r}` role, which your OS user does not hold (see `airlock.approvers`)"
            ),
            None => "your OS user is not an approver (see `airlock.approvers`)".to_owned(),
        };
        return Err(ErrorBody::new(ErrorCode::RoleRequired, msg));
    }
    let digest = live_capability_digest(auth, &detail)?;
    let actor = peer.identity();
    if approve {
        // One approver counts once: refused before the rows are re-read
        // (the ledger refuses it again when recording).
        if let Some(q) = detail.summary.quorum
            && detail
                .decisions
                .iter()
                .any(|d| d.by.uid == peer.creds.uid && d.state == ProposalState::PendingApproval)
        {
            return Err(crate::authority::ledger_error(
                crate::ledger::LedgerError::AlreadyVoted {
                    id: id.clone(),
                    approvals: q.approvals,
                    required: q.required,
                },
            ));
        }
        approval_freshness(auth, &detail, &actor, &digest).await?;
    }
    let decision = auth
        .ledger(Durability::Now, move |l| {
            l.record_decision(&id, approve, &actor, note.as_deref(), &digest)
        })
        .await?;
    auth.notifier.wake();
    tracing::info!(proposal_id = %decision.proposal_id, state = decision.state.as_str(), uid = peer.creds.uid, "proposal decided");
    Ok(decision)
}

/// Freshness-bound approval: before an approval is recorded, the
/// proposal's target row and its reviewed dependency rows are re-read. A
/// changed (or gone) row makes the proposal a terminal `conflict` (an
/// event in the ledger; nothing is written to the source) and the approval
/// is refused with `stale`; a source that cannot be read refuses the
/// approval with `source_unavailable` and the proposal stays pending.
async fn approval_freshness(
    auth: &Authority,
    detail: &ProposalDetail,
    actor: &crate::ledger::ActorIdentity,
    digest: &str,
) -> Result<(), ErrorBody> {
    if detail.summary.state != ProposalState::PendingApproval
        || !crate::writeback::apply::approval_rereads(auth, detail)
    {
        // Not pending: the ledger answers with the state. Not re-readable:
        // an application handler's source without a write connection.
        return Ok(());
    }
    let id = detail.summary.proposal_id.clone();
    let (pid, dg) = (id.clone(), digest.to_owned());
    auth.ledger(Durability::Read, move |l| l.check_decidable(&pid, &dg))
        .await?;
    let report = crate::writeback::apply::freshness(auth, detail).await?;
    match report.freshness {
        Freshness::Current => Ok(()),
        Freshness::Unavailable => {
            tracing::warn!(proposal_id = %id, "approval refused: the proposal's rows could not be re-read");
            Err(ErrorBody::new(
                ErrorCode::SourceUnavailable,
                format!(
                    "proposal {id} was not approved: its rows could not be re-read to check they are still what was reviewed ({}). It is still pending; retry when the source is reachable",
                    report.detail.as_deref().unwrap_or("source unavailable")
                ),
            ))
        }
        Freshness::Changed | Freshness::Gone => {
            let what = if report.freshness == Freshness::Gone {
                "the target row is gone".to_owned()
            } else {
                format!("changed since the proposal: {}", report.changed.join(", "))
            };
            let (pid, actor, d, dg) = (id.clone(), actor.clone(), what.clone(), digest.to_owned());
            auth.ledger(Durability::Now, move |l| {
                l.record_stale(&pid, &actor, &d, &dg)
            })
            .await?;
            auth.notifier.wake();
            tracing::warn!(proposal_id = %id, what = %what, "approval refused: the proposal is stale; recorded as conflict");
            Err(ErrorBody::new(
                ErrorCode::Stale,
                format!(
                    "proposal {id} was not approved: {what}. It is now a terminal conflict and nothing was written; ask for a new proposal from a fresh read"
                ),
            )
            .with_details(serde_json::json!({"changed": report.changed, "state": "conflict"})))
        }
    }
}

/// The digest of the proposal's capability as the executor's config defines
/// it now (`airlock_policy::binding`); `config_changed` when the capability
/// is gone or is no longer a proposal capability.
pub fn live_capability_digest(
    auth: &Authority,
    detail: &ProposalDetail,
) -> Result<String, ErrorBody> {
    auth.capability_digests
        .get(&detail.summary.capability)
        .cloned()
        .ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::ConfigChanged,
                format!(
                    "proposal {} cannot be decided or applied: its capability `{}` is no longer a proposal capability in the executor's config; nothing was done. Ask for a new proposal under the current config",
                    detail.summary.proposal_id, detail.summary.capability
                ),
            )
        })
}

pub async fn approve(auth: &Authority, peer: &Peer, req: Approve) -> Result<Decision, ErrorBody> {
    decide(auth, peer, &req.proposal_id, true, req.note).await
}

pub async fn reject(auth: &Authority, peer: &Peer, req: Reject) -> Result<Decision, ErrorBody> {
    if req.reason.trim().is_empty() {
        return Err(ErrorBody::new(
            ErrorCode::InvalidRequest,
            "a rejection needs a reason",
        ));
    }
    decide(auth, peer, &req.proposal_id, false, Some(req.reason)).await
}

pub async fn events(auth: &Authority, req: EventsSince) -> Result<Events, ErrorBody> {
    let limit = req.limit.unwrap_or(100).clamp(1, MAX_LIST_ITEMS);
    let items = auth
        .ledger(Durability::Read, move |l| l.events_since(req.since, limit))
        .await?;
    let next_cursor = items.last().map_or(req.since, |e| e.seq);
    Ok(Events { items, next_cursor })
}

pub async fn stats(auth: &Authority, connections: u64) -> Result<StatsReport, ErrorBody> {
    let counts = auth.ledger(Durability::Read, |l| l.counts()).await?;
    Ok(StatsReport {
        proposals: counts.per_state.into_iter().collect(),
        evidence: counts.evidence,
        events: counts.events,
        connections,
    })
}

pub async fn replay(auth: &Authority, req: ProposalRef) -> Result<ReplayStory, ErrorBody> {
    let id = resolve(auth, &req.proposal_id).await?;
    let record = auth
        .ledger(Durability::Read, move |l| {
            let Some(mut r) = l.replay(&id)? else {
                return Ok(None);
            };
            r.proposal.compensated_by = l.compensations_of(&id)?;
            Ok(Some(r))
        })
        .await?
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "no such proposal"))?;
    Ok(ReplayStory {
        proposal: record.proposal,
        events: record.events,
        jobs: record.jobs,
        receipts: record.receipts,
    })
}

/// One evidence record and the proposals that cite it.
pub async fn evidence(auth: &Authority, req: EvidenceRef) -> Result<EvidenceRecord, ErrorBody> {
    let id = req.evidence_id;
    let shown: String = id.chars().take(64).collect();
    let record = auth
        .ledger(Durability::Read, move |l| match l.evidence(&id)? {
            Some(evidence) => Ok(Some(EvidenceRecord {
                cited_by: l.citing(&id, MAX_LIST_ITEMS)?,
                evidence,
            })),
            None => Ok(None),
        })
        .await?;
    record.ok_or_else(|| {
        ErrorBody::new(
            ErrorCode::NotFound,
            format!("no evidence `{shown}` in this executor's ledger"),
        )
    })
}
