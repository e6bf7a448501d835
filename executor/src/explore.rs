//! Scoped Explore over IPC: the proposer reserves the budgets a plan needs
//! before its query runs, then commits what the release holds or releases
//! the reservation; the operator lists the query audit.
//!
//! Nothing the proposer sends is trusted: the plan is validated again
//! against the executor's own boundary (so the audit and the budgets
//! describe the plan as the executor normalized it), the tenant is bound
//! to what this peer may claim, and a reservation can be ended only by the
//! peer uid that took it. The budgets themselves are
//! `airlock_policy::explore::budget`'s decisions over the ledger
//! (`ledger/explore.rs`).

use airlock_ipc::ErrorBody;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::message::{
    Empty, ExploreAudit, ExploreAuditQuery, ExploreBudgets, ExploreCommit, ExploreCommitted,
    ExploreRelease, ExploreReserve, ExploreReserved,
};
use airlock_policy::context::is_valid_context_value;
use airlock_policy::explore::budget::{Budget, CommitRefusal, Outcome, Refusal, Remaining};
use airlock_policy::explore::{Boundary, MAX_PLAN_BYTES, validate_plan};
use serde_json::json;

use crate::authority::{Authority, Peer};
use crate::intake::{Intake, json_len};
use crate::ledger::{self, Durability, ExploreScope};

/// Most audit entries one `explore_audit` returns.
pub const MAX_AUDIT_ENTRIES: u32 = 1000;
/// Longest reservation id accepted (the executor's are 24 characters).
const MAX_RESERVATION_ID: usize = 64;

fn boundary(auth: &Authority) -> Result<&Boundary, ErrorBody> {
    auth.config.airlock.explore.as_ref().ok_or_else(|| {
        ErrorBody::new(
            ErrorCode::PolicyViolation,
            "this executor's config has no `airlock.explore` boundary, so it serves no Scoped Explore queries; add the reviewed boundary to the executor's config and restart it",
        )
    })
}

fn budgets(r: Remaining) -> ExploreBudgets {
    ExploreBudgets {
        queries: r.queries,
        cells: r.cells,
        variants: r.variants,
    }
}

fn invalid(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorCode::InvalidRequest, message)
}

/// A stable reason code (`source_timeout`): what the audit may record of
/// a proposer's words, and never a row value.
fn is_reason_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_reservation_id(id: &str) -> Result<(), ErrorBody> {
    if id.is_empty() || id.len() > MAX_RESERVATION_ID {
        return Err(invalid(format!(
            "`reservation_id` must be 1 to {MAX_RESERVATION_ID} characters: the id `explore_reserved` returned"
        )));
    }
    Ok(())
}

fn unknown_reservation() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotFound,
        "no such reservation: it is unknown, another connection's, or already committed or released. Reserve again before running the query",
    )
}

/// The answer to a refused reservation.
fn refusal_error(refusal: Refusal) -> ErrorBody {
    match refusal {
        Refusal::Exhausted {
            budget,
            retry_after_ms,
        } => {
            let what = match budget {
                Budget::Queries => "queries",
                Budget::Cells => "released cells",
                Budget::DifferencingVariants => {
                    "distinct questions (differencing variants) about this resource"
                }
            };
            let when = match retry_after_ms {
                Some(ms) => format!("retry in {} s", ms.div_ceil(1000)),
                None => "this plan alone could release more cells than the whole budget; ask for fewer rows, groups or fields".to_owned(),
            };
            ErrorBody::new(
                ErrorCode::BudgetExhausted,
                format!(
                    "the Scoped Explore budget of {what} for this tenant and principal is used up for the rolling 24 hours (`airlock.explore.limits.{}`); no query ran: {when}",
                    budget.limit_key()
                ),
            )
            .with_details(json!({
                "budget": budget.as_str(),
                "limit": budget.limit_key(),
                "retry_after_ms": retry_after_ms,
            }))
        }
        Refusal::Complementary => complementary(
            "a total over this cohort cannot be released: a grouping of the same cohort with withheld small groups was released in the last 24 hours, and the total minus the shown groups would reveal the withheld ones; no query ran",
        ),
    }
}

fn complementary(message: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::ComplementaryRelease, message)
}

pub async fn explore_reserve(
    auth: &Authority,
    peer: &Peer,
    req: ExploreReserve,
) -> Result<ExploreReserved, ErrorBody> {
    let boundary = boundary(auth)?;
    let ctx = &req.context;
    if !is_valid_context_value(&ctx.tenant_id) || !is_valid_context_value(&ctx.principal) {
        return Err(invalid(
            "the trusted context's tenant and principal must be 1 to 128 characters without control characters",
        ));
    }
    if !auth.peers.may_claim(peer.creds.uid, &ctx.tenant_id) {
        return Err(crate::intake::tenant_refused(peer));
    }
    auth.check_identity(
        &ctx.tenant_id,
        &ctx.principal,
        req.identity_token.as_deref(),
    )
    .await?;
    let bytes = json_len(&req.plan);
    if bytes > MAX_PLAN_BYTES as u64 {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!(
                "the plan is {bytes} bytes as JSON; at most {MAX_PLAN_BYTES} are accepted. Nothing was stored: ask a smaller question"
            ),
        )
        .with_details(json!({"max_bytes": MAX_PLAN_BYTES, "bytes": bytes})));
    }
    // Every reserve may add an audit record: it is metered like evidence.
    auth.intake_meter.admit(
        &auth.config.airlock.limits,
        peer.creds.uid,
        Intake::Evidence,
        bytes,
    )?;
    let actor = peer.identity();
    let (tenant, principal) = (ctx.tenant_id.clone(), ctx.principal.clone());
    let valid = match validate_plan(boundary, &req.plan) {
        Ok(v) => v,
        Err(e) => {
            // The resource only if it is a reviewed one: the audit keeps
            // nothing the model made up.
            let resource = req
                .plan
                .get("resource")
                .and_then(|r| r.as_str())
                .filter(|r| boundary.resources.contains_key(*r))
                .map(str::to_owned);
            let reason = format!("plan_refused:{}", e.code.as_str());
            auth.ledger(Durability::Deferred, move |l| {
                l.explore_refuse(
                    ExploreScope {
                        tenant_id: &tenant,
                        principal: &principal,
                        actor: &actor,
                    },
                    resource.as_deref(),
                    &reason,
                )
            })
            .await?;
            return Err(ErrorBody::new(
                ErrorCode::PlanRefused,
                format!("the plan was refused at `{}`: {}", e.path, e.message),
            )
            .with_details(json!({"code": e.code.as_str(), "path": e.path})));
        }
    };
    let charge = valid.charge(boundary);
    let plan = valid.normalized();
    let limits = boundary.limits.clone();
    let reserved = auth
        .ledger(Durability::Deferred, move |l| {
            l.explore_reserve(
                ExploreScope {
                    tenant_id: &tenant,
                    principal: &principal,
                    actor: &actor,
                },
                &charge,
                &plan,
                &limits,
            )
        })
        .await?;
    match reserved {
        ledger::ExploreReserved::Admitted {
            reservation_id,
            admitted,
        } => Ok(ExploreReserved {
            reservation_id,
            replay: admitted.replay,
            remaining: budgets(admitted.remaining),
        }),
        ledger::ExploreReserved::Refused(refusal) => {
            if crate::refusal_log::admit("explore_budget") {
                tracing::info!(uid = peer.creds.uid, refusal = ?refusal, "explore reservation refused");
            }
            Err(refusal_error(refusal))
        }
    }
}

pub async fn explore_commit(
    auth: &Authority,
    peer: &Peer,
    req: ExploreCommit,
) -> Result<ExploreCommitted, ErrorBody> {
    let boundary = boundary(auth)?;
    check_reservation_id(&req.reservation_id)?;
    // More suppressed groups than Airlock ever reads is no result of ours.
    let most_groups = 2 * u64::from(boundary.limits.max_ranked_groups);
    if req.suppressed_groups > most_groups {
        return Err(invalid(format!(
            "`suppressed_groups` is at most {most_groups} (twice `max_ranked_groups`)"
        )));
    }
    let outcome = Outcome {
        cells: req.cells,
        suppressed_groups: req.suppressed_groups,
        complete: req.complete,
    };
    let limits = boundary.limits.clone();
    let actor = peer.identity();
    let id = req.reservation_id.clone();
    let committed = auth
        .ledger(Durability::Now, move |l| {
            l.explore_commit(&actor, &id, &outcome, &limits)
        })
        .await?;
    match committed {
        ledger::ExploreCommitted::Released { remaining, .. } => Ok(ExploreCommitted {
            remaining: budgets(remaining),
        }),
        ledger::ExploreCommitted::Refused(CommitRefusal::MoreCellsThanReserved { reserved }) => {
            Err(invalid(format!(
                "the release holds {} cells, more than the {reserved} reserved for this plan; nothing was recorded",
                req.cells
            )))
        }
        ledger::ExploreCommitted::Refused(CommitRefusal::Complementary) => Err(complementary(
            "this result cannot be released: with what was released over the same cohort in the last 24 hours (a complete total or grouping on one side, withheld small groups on the other), subtracting one from the other would reveal the withheld groups. Nothing was released; the query is charged",
        )),
        ledger::ExploreCommitted::Expired => Err(ErrorBody::new(
            ErrorCode::Expired,
            format!(
                "the reservation expired ({} s without a commit or release); nothing may be released. Its query is charged; reserve again",
                airlock_policy::explore::budget::RESERVATION_TTL_MS / 1000
            ),
        )),
        ledger::ExploreCommitted::Unknown => Err(unknown_reservation()),
    }
}

pub async fn explore_release(
    auth: &Authority,
    peer: &Peer,
    req: ExploreRelease,
) -> Result<Empty, ErrorBody> {
    boundary(auth)?;
    check_reservation_id(&req.reservation_id)?;
    if !is_reason_code(&req.reason) {
        return Err(invalid(
            "`reason` must be a code of 1 to 64 lowercase letters, digits and underscores (e.g. `source_timeout`)",
        ));
    }
    let actor = peer.identity();
    let ExploreRelease {
        reservation_id,
        reason,
    } = req;
    let released = auth
        .ledger(Durability::Deferred, move |l| {
            l.explore_release(&actor, &reservation_id, &reason)
        })
        .await?;
    if released {
        Ok(Empty::default())
    } else {
        Err(unknown_reservation())
    }
}

pub async fn explore_audit(
    auth: &Authority,
    req: ExploreAuditQuery,
) -> Result<ExploreAudit, ErrorBody> {
    if !(1..=MAX_AUDIT_ENTRIES).contains(&req.limit) {
        return Err(invalid(format!("`limit` must be 1 to {MAX_AUDIT_ENTRIES}")));
    }
    if let Some(t) = &req.tenant_id
        && !is_valid_context_value(t)
    {
        return Err(invalid(
            "`tenant_id` must be 1 to 128 characters without control characters",
        ));
    }
    let entries = auth
        .ledger(Durability::Deferred, move |l| {
            l.explore_audit(req.limit, req.tenant_id.as_deref())
        })
        .await?;
    Ok(ExploreAudit { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_a_short_code_and_nothing_else() {
        assert!(is_reason_code("source_timeout"));
        assert!(is_reason_code("too_many_groups"));
        assert!(is_reason_code("e5"));
        for bad in [
            "",
            "Source",
            "a b",
            "x-y",
            "ACME-1234 leaked",
            &"a".repeat(65),
        ] {
            assert!(!is_reason_code(bad), "{bad}");
        }
        assert!(is_reason_code(&"a".repeat(64)));
    }
}
