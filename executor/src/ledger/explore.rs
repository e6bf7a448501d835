//! Scoped Explore's budgets and query audit in the ledger.
//!
//! Every query a proposer asked to run ends as one chained `explore_query`
//! record (released, suppressed, refused or failed, with what it charged),
//! and the budgets are counted from those records: they survive restarts,
//! new sessions and midnight, and `ledger verify` covers them. Until a
//! reserved query ends, its reservation waits in `explore_reservations`
//! beside the chain. Each operation here is one ledger call, run alone on
//! the ledger's only writer connection (`group_commit`), so the budget
//! check and the insert that spends it cannot interleave with another
//! session's: of two reserves racing for the last unit, one sees the
//! other's reservation. The decisions themselves are
//! `airlock_policy::explore::budget`'s.

use super::DbResult;
use super::db::{Db as Connection, DbRow, OptionalExt};
use crate::args;
use airlock_ipc::message::ExploreAuditEntry;
use airlock_policy::canonical::canonical_json;
use airlock_policy::explore::budget::{
    self, Admitted, AuditOutcome, Audited, Charges, CommitRefusal, Outcome, Pending, Refusal,
    Remaining, Window,
};
use airlock_policy::explore::{Charge, ExploreLimits};
use serde_json::{Value, json};

use super::{ActorIdentity, Ledger, LedgerError, Timestamp};

/// Expired reservations audited per ledger call (the rest wait for the
/// next call; each one's charge is already counted as a query).
const SWEEP_BATCH: u32 = 100;

/// Whether a source query ran for an audited plan: only a reserved plan
/// may run, and the proposer gives a reservation back before its query
/// only when its own check of the plan failed (`config_mismatch`,
/// `internal`).
fn query_ran(reserved: bool, reason: Option<&str>) -> bool {
    reserved && !matches!(reason, Some("config_mismatch" | "internal"))
}

/// Who a query is charged to.
#[derive(Debug, Clone, Copy)]
pub struct ExploreScope<'a> {
    pub tenant_id: &'a str,
    pub principal: &'a str,
    pub actor: &'a ActorIdentity,
}

/// What a reserve came to.
#[derive(Debug, Clone)]
pub enum ExploreReserved {
    Admitted {
        reservation_id: String,
        admitted: Admitted,
    },
    /// Refused (and audited as `refused`); no query may run.
    Refused(Refusal),
}

/// What a commit came to.
#[derive(Debug, Clone)]
pub enum ExploreCommitted {
    /// Audited as `released` or `suppressed`; the result may be released.
    Released {
        outcome: AuditOutcome,
        remaining: Remaining,
    },
    /// Refused (audited as `refused`, its query charged); nothing may be
    /// released.
    Refused(CommitRefusal),
    /// It expired first (audited as `failed`); nothing may be released.
    Expired,
    /// No reservation of this id belongs to this peer.
    Unknown,
}

/// One audit record to append.
struct NewAudit<'a> {
    reservation_id: Option<&'a str>,
    tenant_id: &'a str,
    principal: &'a str,
    resource: Option<&'a str>,
    variant: Option<&'a str>,
    cohort: Option<&'a str>,
    plan: Option<&'a Value>,
    outcome: AuditOutcome,
    reason: Option<&'a str>,
    suppressed_groups: u64,
    charges: Charges,
    charged_ms: i64,
    actor: &'a ActorIdentity,
}

/// How a reservation ends: what its audit record says and charges.
struct Ending<'a> {
    outcome: AuditOutcome,
    reason: Option<&'a str>,
    suppressed_groups: u64,
    charges: Charges,
}

impl<'a> Ending<'a> {
    /// Its query did not run, failed, or was never ended: only the query
    /// is charged.
    fn failed(reason: &'a str) -> Ending<'a> {
        Ending {
            outcome: AuditOutcome::Failed,
            reason: Some(reason),
            suppressed_groups: 0,
            charges: budget::released(),
        }
    }
}

/// A reservation as stored.
struct Reservation {
    reservation_id: String,
    tenant_id: String,
    principal: String,
    actor: ActorIdentity,
    charge: Charge,
    plan: Value,
    reserved_ms: i64,
}

const RESERVATION_COLUMNS: &str = "reservation_id, tenant_id, principal, uid, \"user\", resource, variant, cohort, aggregate, cohort_protected, total, max_cells, plan, reserved_ms";

impl Reservation {
    fn from_row(r: &DbRow<'_>) -> DbResult<Result<Reservation, String>> {
        let plan_text: String = r.get(12)?;
        let plan = match serde_json::from_str(&plan_text) {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("a reservation's plan is not JSON: {e}"))),
        };
        Ok(Ok(Reservation {
            reservation_id: r.get(0)?,
            tenant_id: r.get(1)?,
            principal: r.get(2)?,
            actor: ActorIdentity {
                uid: r.get(3)?,
                user: r.get(4)?,
            },
            charge: Charge {
                resource: r.get(5)?,
                variant: r.get(6)?,
                cohort: r.get(7)?,
                aggregate: r.get(8)?,
                cohort_protected: r.get(9)?,
                total: r.get(10)?,
                max_cells: u64::try_from(r.get::<_, i64>(11)?).unwrap_or(u64::MAX),
            },
            plan,
            reserved_ms: r.get(13)?,
        }))
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Ledger {
    /// Append one `explore_query` event and its record row.
    fn append_audit(
        conn: &Connection,
        salt: &str,
        at: &Timestamp,
        a: NewAudit<'_>,
    ) -> Result<String, LedgerError> {
        let next = Self::next_seq(conn)?;
        let id = Self::new_id(salt, "exq", next);
        let record = json!({
            "query_id": id,
            "reservation_id": a.reservation_id,
            "tenant_id": a.tenant_id,
            "principal": a.principal,
            "resource": a.resource,
            "variant": a.variant,
            "cohort": a.cohort,
            "plan": a.plan,
            "outcome": a.outcome.as_str(),
            "reason": a.reason,
            "cells": a.charges.cells,
            "suppressed_groups": a.suppressed_groups,
            "charged_query": a.charges.query,
            "charged_variant": a.charges.variant,
            "complete_release": a.charges.complete,
            "suppression_release": a.charges.suppressed,
            "charged_ms": a.charged_ms,
        });
        Self::refuse_secrets(&record)?;
        let (seq, _) = Self::append_event(
            conn,
            at,
            "explore_query",
            None,
            None,
            Some(a.actor),
            &record,
        )?;
        conn.prepare_cached(
            "INSERT INTO explore_queries (query_id, seq, reservation_id, tenant_id, principal, resource, variant, cohort, plan, outcome, reason, cells, suppressed_groups, charged_query, charged_variant, complete_release, suppression_release, charged_ms, uid, \"user\", at, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
        )?
        .execute(args![
            id,
            seq,
            a.reservation_id,
            a.tenant_id,
            a.principal,
            a.resource,
            a.variant,
            a.cohort,
            a.plan.map(canonical_json),
            a.outcome.as_str(),
            a.reason,
            to_i64(a.charges.cells),
            to_i64(a.suppressed_groups),
            a.charges.query,
            a.charges.variant,
            a.charges.complete,
            a.charges.suppressed,
            a.charged_ms,
            a.actor.uid,
            a.actor.user,
            at.text,
            at.ms,
        ])?;
        Ok(id)
    }

    /// The budgets' view of one tenant and principal at `now_ms`: their
    /// charged queries in the window and their pending reservations.
    fn explore_window(
        conn: &Connection,
        tenant_id: &str,
        principal: &str,
        now_ms: i64,
    ) -> Result<Window, LedgerError> {
        // Records that charged no query (refused before running) charge
        // nothing at all; they are left out here.
        let audited = conn
            .prepare_cached(
                "SELECT charged_ms, resource, variant, cohort, charged_query, charged_variant, cells, complete_release, suppression_release FROM explore_queries WHERE tenant_id = ?1 AND principal = ?2 AND charged_ms > ?3 AND charged_query = 1",
            )?
            .query_map(
                args![tenant_id, principal, budget::window_start(now_ms)],
                |r| {
                    Ok(Audited {
                        charged_ms: r.get(0)?,
                        resource: r.get(1)?,
                        variant: r.get(2)?,
                        cohort: r.get(3)?,
                        charges: Charges {
                            query: r.get(4)?,
                            variant: r.get(5)?,
                            cells: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                            complete: r.get(7)?,
                            suppressed: r.get(8)?,
                        },
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let pending = conn
            .prepare_cached(
                "SELECT reserved_ms, resource, variant, cohort_protected, max_cells FROM explore_reservations WHERE tenant_id = ?1 AND principal = ?2",
            )?
            .query_map(args![tenant_id, principal], |r| {
                Ok(Pending {
                    reserved_ms: r.get(0)?,
                    resource: r.get(1)?,
                    variant: r.get(2)?,
                    cohort_protected: r.get(3)?,
                    max_cells: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(u64::MAX),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Window { audited, pending })
    }

    fn reservation(conn: &Connection, id: &str) -> Result<Option<Reservation>, LedgerError> {
        conn.prepare_cached(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM explore_reservations WHERE reservation_id = ?1"
        ))?
        .query_row(args![id], Reservation::from_row)
        .optional()?
        .transpose()
        .map_err(LedgerError::Corrupt)
    }

    /// End a reservation with its audit record: the two in one call, so a
    /// query is audited exactly once.
    fn end_reservation(
        conn: &Connection,
        salt: &str,
        at: &Timestamp,
        r: &Reservation,
        end: Ending<'_>,
        actor: &ActorIdentity,
    ) -> Result<(), LedgerError> {
        Self::append_audit(
            conn,
            salt,
            at,
            NewAudit {
                reservation_id: Some(&r.reservation_id),
                tenant_id: &r.tenant_id,
                principal: &r.principal,
                resource: Some(&r.charge.resource),
                variant: Some(&r.charge.variant),
                cohort: Some(&r.charge.cohort),
                plan: Some(&r.plan),
                outcome: end.outcome,
                reason: end.reason,
                suppressed_groups: end.suppressed_groups,
                charges: end.charges,
                // The query was charged when it was reserved.
                charged_ms: r.reserved_ms,
                actor,
            },
        )?;
        conn.prepare_cached("DELETE FROM explore_reservations WHERE reservation_id = ?1")?
            .execute(args![&r.reservation_id])?;
        Ok(())
    }

    /// Audit the reservations that expired (at most a batch), as released:
    /// `failed`, `reservation_expired`, their query charged.
    fn sweep_expired_reservations(
        conn: &Connection,
        salt: &str,
        at: &Timestamp,
    ) -> Result<(), LedgerError> {
        let due = conn
            .prepare_cached(&format!(
                "SELECT {RESERVATION_COLUMNS} FROM explore_reservations WHERE reserved_ms <= ?1 ORDER BY reserved_ms LIMIT ?2"
            ))?
            .query_map(
                args![
                    at.ms.saturating_sub(budget::RESERVATION_TTL_MS),
                    SWEEP_BATCH
                ],
                Reservation::from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        for r in due {
            let r = r.map_err(LedgerError::Corrupt)?;
            if budget::reservation_expired(r.reserved_ms, at.ms) {
                let actor = r.actor.clone();
                Self::end_reservation(
                    conn,
                    salt,
                    at,
                    &r,
                    Ending::failed("reservation_expired"),
                    &actor,
                )?;
            }
        }
        Ok(())
    }

    /// Reserve the budgets `charge` needs (its plan, normalized, is `plan`),
    /// or refuse and audit the refusal.
    pub fn explore_reserve(
        &mut self,
        scope: ExploreScope<'_>,
        charge: &Charge,
        plan: &Value,
        limits: &ExploreLimits,
    ) -> Result<ExploreReserved, LedgerError> {
        Self::refuse_secrets(
            &json!({"plan": plan, "tenant_id": scope.tenant_id, "principal": scope.principal}),
        )?;
        let at = Timestamp::now();
        let salt = self.id_salt.clone();
        self.minted += 1;
        let reservation_id = Self::new_id(&salt, "exr", to_i64(self.minted));
        let tx = self.conn.savepoint()?;
        Self::sweep_expired_reservations(&tx, &salt, &at)?;
        let window = Self::explore_window(&tx, scope.tenant_id, scope.principal, at.ms)?;
        let result = match budget::reserve(limits, &window, charge, at.ms) {
            Ok(admitted) => {
                tx.prepare_cached(&format!(
                    "INSERT INTO explore_reservations ({RESERVATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ))?
                .execute(args![
                    reservation_id,
                    scope.tenant_id,
                    scope.principal,
                    scope.actor.uid,
                    scope.actor.user,
                    charge.resource,
                    charge.variant,
                    charge.cohort,
                    charge.aggregate,
                    charge.cohort_protected,
                    charge.total,
                    to_i64(charge.max_cells),
                    canonical_json(plan),
                    at.ms,
                ])?;
                ExploreReserved::Admitted {
                    reservation_id,
                    admitted,
                }
            }
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::Exhausted { budget, .. } => {
                        format!("budget_exhausted:{}", budget.as_str())
                    }
                    Refusal::Complementary => "complementary_release".to_owned(),
                };
                Self::append_audit(
                    &tx,
                    &salt,
                    &at,
                    NewAudit {
                        reservation_id: None,
                        tenant_id: scope.tenant_id,
                        principal: scope.principal,
                        resource: Some(&charge.resource),
                        variant: Some(&charge.variant),
                        cohort: Some(&charge.cohort),
                        plan: Some(plan),
                        outcome: AuditOutcome::Refused,
                        reason: Some(&reason),
                        suppressed_groups: 0,
                        charges: Charges::default(),
                        charged_ms: at.ms,
                        actor: scope.actor,
                    },
                )?;
                ExploreReserved::Refused(refusal)
            }
        };
        tx.commit()?;
        Ok(result)
    }

    /// Audit a plan refused before any budget was looked at (it did not
    /// validate): no normalized plan, the resource only if it is a
    /// reviewed one.
    pub fn explore_refuse(
        &mut self,
        scope: ExploreScope<'_>,
        resource: Option<&str>,
        reason: &str,
    ) -> Result<(), LedgerError> {
        let at = Timestamp::now();
        let salt = self.id_salt.clone();
        let tx = self.conn.savepoint()?;
        Self::append_audit(
            &tx,
            &salt,
            &at,
            NewAudit {
                reservation_id: None,
                tenant_id: scope.tenant_id,
                principal: scope.principal,
                resource,
                variant: None,
                cohort: None,
                plan: None,
                outcome: AuditOutcome::Refused,
                reason: Some(reason),
                suppressed_groups: 0,
                charges: Charges::default(),
                charged_ms: at.ms,
                actor: scope.actor,
            },
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Commit reservation `id` of peer `actor` with the result `outcome`.
    pub fn explore_commit(
        &mut self,
        actor: &ActorIdentity,
        id: &str,
        outcome: &Outcome,
        limits: &ExploreLimits,
    ) -> Result<ExploreCommitted, LedgerError> {
        let at = Timestamp::now();
        let salt = self.id_salt.clone();
        let tx = self.conn.savepoint()?;
        let Some(r) = Self::reservation(&tx, id)?.filter(|r| r.actor.uid == actor.uid) else {
            return Ok(ExploreCommitted::Unknown);
        };
        let result = if budget::reservation_expired(r.reserved_ms, at.ms) {
            Self::end_reservation(
                &tx,
                &salt,
                &at,
                &r,
                Ending::failed("reservation_expired"),
                actor,
            )?;
            ExploreCommitted::Expired
        } else {
            let window = Self::explore_window(&tx, &r.tenant_id, &r.principal, at.ms)?;
            match budget::commit(&window, &r.charge, outcome, at.ms) {
                Ok(charges) => {
                    let released = AuditOutcome::of_release(outcome);
                    Self::end_reservation(
                        &tx,
                        &salt,
                        &at,
                        &r,
                        Ending {
                            outcome: released,
                            reason: None,
                            suppressed_groups: outcome.suppressed_groups,
                            charges,
                        },
                        actor,
                    )?;
                    let after = Self::explore_window(&tx, &r.tenant_id, &r.principal, at.ms)?;
                    ExploreCommitted::Released {
                        outcome: released,
                        remaining: after.remaining(limits, &r.charge.resource, at.ms),
                    }
                }
                // A broken proposer: nothing recorded, the reservation
                // stands (and expires if never ended).
                Err(refusal @ CommitRefusal::MoreCellsThanReserved { .. }) => {
                    return Ok(ExploreCommitted::Refused(refusal));
                }
                Err(refusal @ CommitRefusal::Complementary) => {
                    Self::end_reservation(
                        &tx,
                        &salt,
                        &at,
                        &r,
                        Ending {
                            outcome: AuditOutcome::Refused,
                            reason: Some("complementary_release"),
                            suppressed_groups: outcome.suppressed_groups,
                            charges: budget::refused_at_commit(&r.charge),
                        },
                        actor,
                    )?;
                    ExploreCommitted::Refused(refusal)
                }
            }
        };
        Self::sweep_expired_reservations(&tx, &salt, &at)?;
        tx.commit()?;
        Ok(result)
    }

    /// Release reservation `id` of peer `actor`: its query did not run or
    /// failed (`reason`). Audited as `failed`; only its query stays
    /// charged. `false`: no such reservation of this peer.
    pub fn explore_release(
        &mut self,
        actor: &ActorIdentity,
        id: &str,
        reason: &str,
    ) -> Result<bool, LedgerError> {
        let at = Timestamp::now();
        let salt = self.id_salt.clone();
        let tx = self.conn.savepoint()?;
        let Some(r) = Self::reservation(&tx, id)?.filter(|r| r.actor.uid == actor.uid) else {
            return Ok(false);
        };
        Self::end_reservation(&tx, &salt, &at, &r, Ending::failed(reason), actor)?;
        Self::sweep_expired_reservations(&tx, &salt, &at)?;
        tx.commit()?;
        Ok(true)
    }

    /// The newest `limit` audited queries, of `tenant_id` if given.
    pub fn explore_audit(
        &self,
        limit: u32,
        tenant_id: Option<&str>,
    ) -> Result<Vec<ExploreAuditEntry>, LedgerError> {
        const COLUMNS: &str = "at, tenant_id, principal, resource, variant, plan, outcome, reason, cells, suppressed_groups, reservation_id";
        // Two statements, so that each walks its index newest first.
        let mut stmt = match tenant_id {
            Some(_) => self.conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM explore_queries WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2"
            ))?,
            None => self.conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM explore_queries WHERE ?1 IS NULL ORDER BY seq DESC LIMIT ?2"
            ))?,
        };
        let rows = stmt.query_map(args![tenant_id, limit], |r| {
            Ok((
                ExploreAuditEntry {
                    at: r.get(0)?,
                    tenant_id: r.get(1)?,
                    principal: r.get(2)?,
                    resource: r.get(3)?,
                    variant: r.get(4)?,
                    plan: None,
                    outcome: r.get(6)?,
                    reason: r.get(7)?,
                    cells: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
                    suppressed_groups: u64::try_from(r.get::<_, i64>(9)?).unwrap_or(0),
                    query_ran: query_ran(
                        r.get::<_, Option<String>>(10)?.is_some(),
                        r.get::<_, Option<String>>(7)?.as_deref(),
                    ),
                },
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut entry, plan) = row?;
            entry.plan = plan
                .map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(|e| LedgerError::Corrupt(format!("an audited plan is not JSON: {e}")))?;
            out.push(entry);
        }
        Ok(out)
    }

    /// The earliest charge still in the window (a prune must not move it).
    pub(super) fn first_explore_charge_in_window(
        &self,
        now_ms: i64,
    ) -> Result<Option<i64>, LedgerError> {
        Ok(self.conn.query_row(
            "SELECT MIN(charged_ms) FROM explore_queries WHERE charged_ms > ?1 AND charged_query = 1",
            args![budget::window_start(now_ms)],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn temp_ledger(name: &str) -> (Ledger, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("airlock-explore-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (Ledger::open(&dir.join("ledger.db")).unwrap(), dir)
    }

    fn actor(uid: u32) -> ActorIdentity {
        ActorIdentity {
            uid,
            user: Some("alice".into()),
        }
    }

    fn charge(variant: &str, total: bool) -> Charge {
        Charge {
            resource: "tickets".into(),
            variant: variant.into(),
            cohort: "sha256:cohort".into(),
            aggregate: true,
            cohort_protected: true,
            total,
            max_cells: 10,
        }
    }

    fn reserve(l: &mut Ledger, c: &Charge, limits: &ExploreLimits) -> ExploreReserved {
        let a = actor(1000);
        let plan = json!({"kind": "aggregate", "resource": "tickets", "v": c.variant});
        l.explore_reserve(
            ExploreScope {
                tenant_id: "acme",
                principal: "ann",
                actor: &a,
            },
            c,
            &plan,
            limits,
        )
        .unwrap()
    }

    fn admitted(r: ExploreReserved) -> String {
        match r {
            ExploreReserved::Admitted { reservation_id, .. } => reservation_id,
            other => panic!("refused: {other:?}"),
        }
    }

    fn outcome(cells: u64, suppressed_groups: u64, complete: bool) -> Outcome {
        Outcome {
            cells,
            suppressed_groups,
            complete,
        }
    }

    /// (outcome, reason, charged_query) of every audited query, oldest first.
    fn audit(l: &Ledger) -> Vec<(String, Option<String>, bool)> {
        l.conn
            .prepare("SELECT outcome, reason, charged_query FROM explore_queries ORDER BY seq")
            .unwrap()
            .query_map(args![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_ending_is_audited_once_and_the_chain_covers_it() {
        let (mut l, dir) = temp_ledger("story");
        let limits = ExploreLimits::default();
        let lim = limits.clone();
        // A grouping released with a withheld group …
        let g = admitted(reserve(&mut l, &charge("g", false), &limits));
        let c = l
            .explore_commit(&actor(1000), &g, &outcome(6, 1, false), &lim)
            .unwrap();
        assert!(
            matches!(
                c,
                ExploreCommitted::Released {
                    outcome: AuditOutcome::Suppressed,
                    remaining: Remaining {
                        queries: 499,
                        cells: 19_994,
                        variants: 15
                    }
                }
            ),
            "{c:?}"
        );
        // … so its total is refused before it runs, and audited.
        assert!(matches!(
            reserve(&mut l, &charge("t", true), &limits),
            ExploreReserved::Refused(Refusal::Complementary)
        ));
        // Another peer uid cannot end a reservation; its own can, once.
        let r = admitted(reserve(&mut l, &charge("g2", false), &limits));
        assert!(
            !l.explore_release(&actor(1001), &r, "source_timeout")
                .unwrap()
        );
        assert!(matches!(
            l.explore_commit(&actor(1001), &r, &outcome(1, 0, true), &lim)
                .unwrap(),
            ExploreCommitted::Unknown
        ));
        assert!(
            l.explore_release(&actor(1000), &r, "source_timeout")
                .unwrap()
        );
        assert!(
            !l.explore_release(&actor(1000), &r, "source_timeout")
                .unwrap()
        );
        // More cells than reserved: nothing recorded, the reservation stands.
        let big = admitted(reserve(&mut l, &charge("g3", false), &limits));
        assert!(matches!(
            l.explore_commit(&actor(1000), &big, &outcome(11, 0, true), &lim)
                .unwrap(),
            ExploreCommitted::Refused(CommitRefusal::MoreCellsThanReserved { reserved: 10 })
        ));
        // A complete grouping over the cohort: refused at commit, charged.
        assert!(matches!(
            l.explore_commit(&actor(1000), &big, &outcome(10, 0, true), &lim)
                .unwrap(),
            ExploreCommitted::Refused(CommitRefusal::Complementary)
        ));
        // An invalid plan.
        let a = actor(1000);
        l.explore_refuse(
            ExploreScope {
                tenant_id: "acme",
                principal: "ann",
                actor: &a,
            },
            None,
            "plan_refused:plan_invalid",
        )
        .unwrap();
        // An expired reservation is audited by the next call, and cannot
        // be committed.
        let old = admitted(reserve(&mut l, &charge("g4", false), &limits));
        l.conn
            .execute(
                "UPDATE explore_reservations SET reserved_ms = reserved_ms - 120000 WHERE reservation_id = ?1",
                args![&old],
            )
            .unwrap();
        assert!(matches!(
            l.explore_commit(&actor(1000), &old, &outcome(1, 0, false), &lim)
                .unwrap(),
            ExploreCommitted::Expired
        ));
        let swept = admitted(reserve(&mut l, &charge("g5", false), &limits));
        l.conn
            .execute(
                "UPDATE explore_reservations SET reserved_ms = reserved_ms - 120000 WHERE reservation_id = ?1",
                args![&swept],
            )
            .unwrap();
        admitted(reserve(&mut l, &charge("g6", false), &limits));
        let expect: Vec<(String, Option<String>, bool)> = vec![
            ("suppressed".into(), None, true),
            (
                "refused".into(),
                Some("complementary_release".into()),
                false,
            ),
            ("failed".into(), Some("source_timeout".into()), true),
            ("refused".into(), Some("complementary_release".into()), true),
            (
                "refused".into(),
                Some("plan_refused:plan_invalid".into()),
                false,
            ),
            ("failed".into(), Some("reservation_expired".into()), true),
            ("failed".into(), Some("reservation_expired".into()), true),
        ];
        assert_eq!(audit(&l), expect);
        let entries = l.explore_audit(1000, Some("acme")).unwrap();
        assert_eq!(entries.len(), 7);
        assert_eq!(entries[0].reason.as_deref(), Some("reservation_expired"));
        assert_eq!(entries[6].outcome, "suppressed");
        assert_eq!(entries[6].cells, 6);
        assert_eq!(entries[6].suppressed_groups, 1);
        assert_eq!(entries[6].plan.as_ref().unwrap()["v"], "g");
        assert!(entries[2].plan.is_none() && entries[2].resource.is_none());
        assert_eq!(l.explore_audit(2, None).unwrap().len(), 2);
        assert!(l.explore_audit(10, Some("other")).unwrap().is_empty());
        // Everything audited is in the chain.
        let report = l.verify().unwrap();
        assert!(report.ok && report.events == 7, "{report:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_last_unit_is_taken_once_and_budgets_outlive_the_connection() {
        let (mut l, dir) = temp_ledger("last");
        let limits = ExploreLimits {
            max_queries_per_rolling_24_hours: 2,
            ..ExploreLimits::default()
        };
        let first = admitted(reserve(&mut l, &charge("a", false), &limits));
        admitted(reserve(&mut l, &charge("b", false), &limits));
        assert!(matches!(
            reserve(&mut l, &charge("c", false), &limits),
            ExploreReserved::Refused(Refusal::Exhausted {
                budget: budget::Budget::Queries,
                ..
            })
        ));
        // Released, its query stays charged.
        assert!(
            l.explore_release(&actor(1000), &first, "source_unavailable")
                .unwrap()
        );
        assert!(matches!(
            reserve(&mut l, &charge("c", false), &limits),
            ExploreReserved::Refused(Refusal::Exhausted { .. })
        ));
        // A new connection to the same file counts the same.
        let path = dir.join("ledger.db");
        drop(l);
        let mut again = Ledger::open(&path).unwrap();
        assert!(matches!(
            reserve(&mut again, &charge("c", false), &limits),
            ExploreReserved::Refused(Refusal::Exhausted { .. })
        ));
        assert!(again.verify().unwrap().ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_edited_or_added_audit_row_breaks_verify() {
        let (mut l, dir) = temp_ledger("tamper");
        let limits = ExploreLimits::default();
        let g = admitted(reserve(&mut l, &charge("g", false), &limits));
        l.explore_commit(&actor(1000), &g, &outcome(6, 1, false), &limits)
            .unwrap();
        assert!(l.verify().unwrap().ok);
        let columns: Vec<String> = l
            .conn
            .prepare("SELECT name FROM pragma_table_info('explore_queries')")
            .unwrap()
            .query_map(args![], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(columns.len(), 22);
        // As someone who owns the file would.
        l.conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for column in &columns {
            let edit = match column.as_str() {
                "outcome" => "outcome = 'released'".to_owned(),
                "plan" => "plan = json_set(plan, '$.forged', 1)".to_owned(),
                "seq" | "cells" | "suppressed_groups" | "charged_ms" | "uid" | "at_ms" => {
                    format!("{column} = {column} + 1")
                }
                "charged_query"
                | "charged_variant"
                | "complete_release"
                | "suppression_release" => format!("{column} = 1 - {column}"),
                _ => format!("{column} = COALESCE({column}, '') || 'x'"),
            };
            l.conn
                .execute_batch(&format!(
                    "SAVEPOINT t; DROP TRIGGER explore_queries_append_only_u; UPDATE explore_queries SET {edit};"
                ))
                .unwrap();
            let report = l.verify().unwrap();
            assert!(!report.ok, "editing {column} went unnoticed");
            l.conn.execute_batch("ROLLBACK TO t; RELEASE t;").unwrap();
            assert!(l.verify().unwrap().ok, "{column}: rolled back");
        }
        // A copied row (a forged charge or release) breaks it too.
        l.conn
            .execute_batch(
                "CREATE TEMP TABLE c AS SELECT * FROM explore_queries; UPDATE c SET query_id = query_id || '_copy', seq = seq + 1; INSERT INTO explore_queries SELECT * FROM c;",
            )
            .unwrap();
        assert!(!l.verify().unwrap().ok, "a copied row went unnoticed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
