//! `revert` (operator only): propose the reviewed compensation of an
//! applied change (docs/writeback.md, "Reviewed compensation").
//!
//! The executor records a new pending proposal whose change set is the
//! inverse it captured in the forward change's applied receipt, with the
//! operator's reason. It writes nothing to the source and approves
//! nothing: the new proposal needs its own approval (the forward
//! capability's role and quorum) and is applied with `apply`, which
//! re-checks it against the live config and guards it by version.

use airlock_ipc::ErrorBody;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::message::{ProposalRecorded, ProposalState, Revert};
use airlock_policy::change_set::ChangeSet;
use airlock_policy::compensation::{self, Unavailable};
use airlock_policy::config::{ExecutorSpec, Kind, Mode, OperationKind};

use crate::authority::{Authority, Peer};
use crate::ledger::{Durability, NewProposal};

pub async fn revert(
    auth: &Authority,
    peer: &Peer,
    req: Revert,
) -> Result<ProposalRecorded, ErrorBody> {
    compensation::check_reason(&req.reason)
        .map_err(|why| ErrorBody::new(ErrorCode::InvalidRequest, why))?;
    if req.proposal_id == "latest" {
        return Err(ErrorBody::new(
            ErrorCode::InvalidRequest,
            "revert needs the applied proposal's id; look it up with show_proposal (the CLI does this for `latest`)",
        ));
    }
    if auth.config.mode == Mode::ReadOnly {
        return Err(ErrorBody::new(
            ErrorCode::PolicyViolation,
            "the executor's config is read_only: it accepts no proposals, reverts included",
        ));
    }
    let id = req.proposal_id.clone();
    let shown: String = id.chars().take(64).collect();
    let (forward, receipt) = auth
        .ledger(Durability::Read, move |l| l.revert_source(&id))
        .await?
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, format!("no proposal `{shown}`")))?;
    let forward_id = forward.summary.proposal_id.clone();
    // Reverting a change is deciding about it: the same role as approving
    // and applying it.
    let role = forward.summary.required_role.as_deref();
    if !auth.peers.may_approve(peer.creds.uid, role) {
        tracing::warn!(uid = peer.creds.uid, proposal_id = %forward_id, "revert refused: peer lacks the required role");
        return Err(ErrorBody::new(
            ErrorCode::RoleRequired,
            match role {
                Some(r) => format!(
                    "reverting this change needs the `{r}` role of its capability, which your OS user does not hold (see `airlock.approvers`)"
                ),
                None => "your OS user is not an approver (see `airlock.approvers`)".to_owned(),
            },
        ));
    }
    if forward.summary.state != ProposalState::Applied {
        return Err(ErrorBody::new(
            ErrorCode::InvalidState,
            format!(
                "proposal {forward_id} is {}: only an applied change can be reverted",
                forward.summary.state.as_str()
            ),
        ));
    }
    let unavailable = |u: Unavailable| {
        ErrorBody::new(
            ErrorCode::PolicyViolation,
            format!("proposal {forward_id} cannot be reverted: {}", u.describe()),
        )
    };
    let cap = auth
        .config
        .capability(&forward.summary.capability)
        .filter(|c| c.kind == Kind::Proposal)
        .ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::ConfigChanged,
                format!("proposal {forward_id}'s capability is no longer in the executor's config; it cannot be reverted"),
            )
        })?;
    let Some(spec) = &cap.proposal else {
        return Err(ErrorBody::new(
            ErrorCode::Internal,
            "proposal capability without proposal settings",
        ));
    };
    let sql = matches!(auth.config.executor_for(spec).spec, ExecutorSpec::SqlUpdate);
    if forward.change_set.operation == OperationKind::Delete
        && forward.change_set.compensation.is_none()
    {
        return Err(unavailable(Unavailable::HardDelete));
    }
    if !sql {
        return Err(unavailable(Unavailable::AppHandler));
    }
    if spec.reversibility.is_none() {
        return Err(unavailable(Unavailable::NotReversible));
    }
    if let Some(refusal) = auth.schema_drift(&cap.name) {
        return Err(refusal);
    }
    let (captured, receipt_hash) = captured_inverse(&forward_id, receipt.as_ref())?;
    compensation::check_applicable(cap, sql, &captured).map_err(|why| {
        ErrorBody::new(
            ErrorCode::ConfigChanged,
            format!("proposal {forward_id} cannot be reverted: {why}"),
        )
    })?;
    if !crate::writeback::apply::targets_the_stored_row(cap, &captured) {
        return Err(ErrorBody::new(
            ErrorCode::ConfigChanged,
            format!(
                "proposal {forward_id} cannot be reverted: its capability now targets another table, key or tenant column"
            ),
        ));
    }
    let cs = compensation::for_revert(&captured, &req.reason, &receipt_hash);
    let Some(digest) = auth.capability_digests.get(&cap.name).cloned() else {
        return Err(ErrorBody::new(
            ErrorCode::Internal,
            "the capability's reviewed-definition digest is missing",
        ));
    };
    let ttl_ms = (auth.config.airlock.proposal_ttl_seconds as i64).saturating_mul(1000);
    let required_role = spec.approval.required_role.clone();
    let required_approvals = spec.approval.required_approvals;
    let actor = peer.identity();
    let (stored, reverts) = (cs.clone(), forward_id.clone());
    let recorded = auth
        .ledger(Durability::Now, move |l| {
            l.record_compensation(
                NewProposal {
                    change_set: &stored,
                    capability_digest: &digest,
                    evidence_id: None,
                    required_role: required_role.as_deref(),
                    ttl_ms,
                    actor: &actor,
                },
                required_approvals,
                &reverts,
            )
        })
        .await?;
    let recorded = match recorded {
        Ok(r) => r,
        Err((child, state)) => {
            return Err(ErrorBody::new(
                ErrorCode::InvalidState,
                format!(
                    "proposal {forward_id} already has a compensation: {child} ({}); one change is reverted at most once (revert {child} instead to undo the revert)",
                    state.as_str()
                ),
            )
            .with_details(serde_json::json!({"compensation": child, "state": state.as_str()})));
        }
    };
    tracing::info!(proposal_id = %recorded.proposal_id, reverts = %forward_id, uid = peer.creds.uid, "revert recorded, pending approval");
    auth.expiry_wake.notify_one();
    auth.notifier.wake();
    Ok(ProposalRecorded {
        proposal_id: recorded.proposal_id,
        state: ProposalState::PendingApproval,
        proposal_hash: recorded.proposal_hash,
        change_set: cs,
        evidence_id: None,
        created_at: recorded.created_at,
        expires_at: recorded.expires_at,
    })
}

/// The inverse the forward change's applied receipt holds, and that
/// receipt's hash.
fn captured_inverse(
    forward_id: &str,
    receipt: Option<&serde_json::Value>,
) -> Result<(ChangeSet, String), ErrorBody> {
    let refuse = |why: String| {
        ErrorBody::new(
            ErrorCode::PolicyViolation,
            format!("proposal {forward_id} cannot be reverted: {why}"),
        )
    };
    let Some(receipt) = receipt else {
        return Err(refuse("it has no applied receipt".into()));
    };
    let Some(inverse) = receipt.get("inverse") else {
        return Err(refuse(
            "no inverse was captured when it was applied (its capability was not reversible then)"
                .into(),
        ));
    };
    if inverse.get("availability").and_then(|v| v.as_str()) != Some("available") {
        let detail = inverse
            .get("detail")
            .and_then(|v| v.as_str())
            .unwrap_or("unavailable");
        return Err(refuse(detail.to_owned()));
    }
    let cs: ChangeSet = inverse
        .get("change_set")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .filter(|cs: &ChangeSet| {
            cs.compensation
                .as_ref()
                .is_some_and(|c| c.reverts_proposal_id == forward_id)
        })
        .ok_or_else(|| refuse("its captured inverse cannot be read".into()))?;
    let hash = receipt
        .get("receipt_hash")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    Ok((cs, hash))
}
