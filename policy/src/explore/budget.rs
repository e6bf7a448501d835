//! Scoped Explore's privacy budgets: the decisions the executor makes over
//! what its ledger holds for one tenant and principal, when a plan asks to
//! run (reserve) and when its result asks to be released (commit).
//!
//! Three rolling 24-hour budgets (`airlock.explore.limits`): queries,
//! released cells, and distinct differencing variants per resource for
//! cohort-protected aggregates (an exact replay reuses its variant). A
//! pending reservation counts conservatively — its query, its most cells,
//! its variant — so concurrent sessions cannot overspend; one left alone
//! for [`RESERVATION_TTL_MS`] counts as released (its query stays charged).
//!
//! And the complementary-release rule: over one cohort, a release the
//! cohort's total can be derived from (a scalar total, or a grouping with
//! every group shown) and a release with suppressed groups are never both
//! given to one tenant and principal within the window, because their
//! difference is the suppressed groups.

use std::collections::BTreeMap;

use serde::Serialize;

use super::boundary::ExploreLimits;
use super::plan::Charge;

/// The rolling window every budget is counted over.
pub const WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// A reservation neither committed nor released within this counts as
/// released: its query stays charged, its cells and variant do not.
pub const RESERVATION_TTL_MS: i64 = 120 * 1000;

/// The first instant still outside the window ending at `now_ms`: charges
/// at or before it no longer count.
pub fn window_start(now_ms: i64) -> i64 {
    now_ms.saturating_sub(WINDOW_MS)
}

fn in_window(at_ms: i64, now_ms: i64) -> bool {
    at_ms > window_start(now_ms)
}

/// Whether a reservation taken at `reserved_ms` has expired at `now_ms`.
pub fn reservation_expired(reserved_ms: i64, now_ms: i64) -> bool {
    now_ms >= reserved_ms.saturating_add(RESERVATION_TTL_MS)
}

/// What one audited query counts against the budgets. Decided here when
/// the query is audited, and stored (hashed) with its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Charges {
    /// It counts as a query (it ran, or may have).
    pub query: bool,
    /// It charges its differencing variant (a cohort-protected aggregate
    /// whose result was computed).
    pub variant: bool,
    /// Cells released.
    pub cells: u64,
    /// A release its cohort's total can be derived from.
    pub complete: bool,
    /// A release of its cohort with groups withheld.
    pub suppressed: bool,
}

/// One audited query of this tenant and principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audited {
    /// When its query was charged (its reservation's time).
    pub charged_ms: i64,
    pub resource: Option<String>,
    pub variant: Option<String>,
    pub cohort: Option<String>,
    pub charges: Charges,
}

/// A reservation not yet committed or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub reserved_ms: i64,
    pub resource: String,
    pub variant: String,
    pub cohort_protected: bool,
    pub max_cells: u64,
}

/// What the ledger holds for one tenant and principal: its audited queries
/// and its pending reservations (older ones than the window may be in it;
/// they are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub audited: Vec<Audited>,
    pub pending: Vec<Pending>,
}

/// The three budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    Queries,
    Cells,
    DifferencingVariants,
}

impl Budget {
    pub fn as_str(self) -> &'static str {
        match self {
            Budget::Queries => "queries",
            Budget::Cells => "cells",
            Budget::DifferencingVariants => "differencing_variants",
        }
    }

    /// The `airlock.explore.limits` key that sets it.
    pub fn limit_key(self) -> &'static str {
        match self {
            Budget::Queries => "max_queries_per_rolling_24_hours",
            Budget::Cells => "max_extracted_cells_per_rolling_24_hours",
            Budget::DifferencingVariants => "max_differencing_variants_per_rolling_24_hours",
        }
    }
}

/// What is left of each budget (variants: of one resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Remaining {
    pub queries: u64,
    pub cells: u64,
    pub variants: u64,
}

/// A reservation was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The plan is an exact replay of a variant already charged (it costs
    /// no new variant).
    pub replay: bool,
    /// What is left once this reservation counts.
    pub remaining: Remaining,
}

/// Why a reservation was refused. No query may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `retry_after_ms`: when enough of the budget leaves the window;
    /// `None` when the plan alone needs more than the whole budget.
    Exhausted {
        budget: Budget,
        retry_after_ms: Option<u64>,
    },
    /// A scalar total over a cohort already released with suppressed groups.
    Complementary,
}

/// What a released query's result holds (as the proposer's release of it
/// computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub cells: u64,
    pub suppressed_groups: u64,
    /// Every group of the cohort is in it.
    pub complete: bool,
}

/// Why a commit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitRefusal {
    /// The result holds more cells than were reserved (a broken proposer):
    /// nothing is recorded and the reservation stands.
    MoreCellsThanReserved { reserved: u64 },
    /// The release, with what was released over its cohort in the window,
    /// would expose suppressed groups by subtraction. Nothing is released;
    /// its query ran, so [`refused_at_commit`] is charged.
    Complementary,
}

/// The in-window charges of one tenant and principal, for one resource's
/// variants.
struct Tally {
    /// When each charged query was charged.
    queries: Vec<i64>,
    /// (when, cells) of each charge of cells.
    cells: Vec<(i64, u64)>,
    /// Each differencing variant of the resource and its latest charge.
    variants: BTreeMap<String, i64>,
}

/// Whether a cohort had, in the window, a complete release and a release
/// with suppressed groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CohortSeen {
    pub complete: bool,
    pub suppressed: bool,
}

impl Window {
    fn tally(&self, resource: &str, now_ms: i64) -> Tally {
        let mut t = Tally {
            queries: Vec::new(),
            cells: Vec::new(),
            variants: BTreeMap::new(),
        };
        for a in self
            .audited
            .iter()
            .filter(|a| in_window(a.charged_ms, now_ms))
        {
            if a.charges.query {
                t.queries.push(a.charged_ms);
            }
            t.cells.push((a.charged_ms, a.charges.cells));
            if let Some(v) = a
                .variant
                .as_ref()
                .filter(|_| a.charges.variant && a.resource.as_deref() == Some(resource))
            {
                let latest = t.variants.entry(v.clone()).or_insert(a.charged_ms);
                *latest = (*latest).max(a.charged_ms);
            }
        }
        for p in self
            .pending
            .iter()
            .filter(|p| in_window(p.reserved_ms, now_ms))
        {
            t.queries.push(p.reserved_ms);
            // An expired reservation counts as released: its query only.
            if reservation_expired(p.reserved_ms, now_ms) {
                continue;
            }
            t.cells.push((p.reserved_ms, p.max_cells));
            if p.cohort_protected && p.resource == resource {
                let latest = t.variants.entry(p.variant.clone()).or_insert(p.reserved_ms);
                *latest = (*latest).max(p.reserved_ms);
            }
        }
        t
    }

    /// What is left of the budgets (variants: of `resource`).
    pub fn remaining(&self, limits: &ExploreLimits, resource: &str, now_ms: i64) -> Remaining {
        let t = self.tally(resource, now_ms);
        let cells: u64 = t.cells.iter().map(|(_, c)| *c).sum();
        Remaining {
            queries: limits
                .max_queries_per_rolling_24_hours
                .saturating_sub(t.queries.len() as u64),
            cells: limits
                .max_extracted_cells_per_rolling_24_hours
                .saturating_sub(cells),
            variants: limits
                .max_differencing_variants_per_rolling_24_hours
                .saturating_sub(t.variants.len() as u64),
        }
    }

    /// What was released over `cohort` in the window.
    pub fn cohort(&self, cohort: &str, now_ms: i64) -> CohortSeen {
        let mut seen = CohortSeen::default();
        for a in self
            .audited
            .iter()
            .filter(|a| in_window(a.charged_ms, now_ms) && a.cohort.as_deref() == Some(cohort))
        {
            seen.complete |= a.charges.complete;
            seen.suppressed |= a.charges.suppressed;
        }
        seen
    }
}

/// Milliseconds from `now_ms` until a charge made at `at_ms` (in the
/// window, so at least 1 ms) leaves the window.
fn leaves_in(at_ms: i64, now_ms: i64) -> u64 {
    u64::try_from(at_ms.saturating_add(WINDOW_MS).saturating_sub(now_ms)).unwrap_or(1)
}

/// When the `need`-th oldest of `times` leaves the window.
fn nth_leaves(mut times: Vec<i64>, need: usize, now_ms: i64) -> Option<u64> {
    times.sort_unstable();
    let at = *times.get(need.checked_sub(1)?)?;
    Some(leaves_in(at, now_ms))
}

/// Admit a reservation of `charge` for this tenant and principal, or refuse
/// it with the budget it would exceed (checked in this order: the
/// complementary rule for totals, queries, differencing variants, cells).
pub fn reserve(
    limits: &ExploreLimits,
    window: &Window,
    charge: &Charge,
    now_ms: i64,
) -> Result<Admitted, Refusal> {
    // A grouping's suppression is only known once it ran (see `commit`);
    // a total's completeness is known now, so it never runs.
    if charge.cohort_protected && charge.total && window.cohort(&charge.cohort, now_ms).suppressed {
        return Err(Refusal::Complementary);
    }
    let t = window.tally(&charge.resource, now_ms);
    let queries = t.queries.len() as u64;
    let max_queries = limits.max_queries_per_rolling_24_hours;
    if queries >= max_queries {
        return Err(Refusal::Exhausted {
            budget: Budget::Queries,
            retry_after_ms: nth_leaves(t.queries, (queries + 1 - max_queries) as usize, now_ms),
        });
    }
    let replay = charge.cohort_protected && t.variants.contains_key(&charge.variant);
    let variants = t.variants.len() as u64;
    let max_variants = limits.max_differencing_variants_per_rolling_24_hours;
    if charge.cohort_protected && !replay && variants >= max_variants {
        let latest: Vec<i64> = t.variants.values().copied().collect();
        return Err(Refusal::Exhausted {
            budget: Budget::DifferencingVariants,
            retry_after_ms: nth_leaves(latest, (variants + 1 - max_variants) as usize, now_ms),
        });
    }
    let max_cells = limits.max_extracted_cells_per_rolling_24_hours;
    let used: u64 = t.cells.iter().map(|(_, c)| *c).sum();
    if used.saturating_add(charge.max_cells) > max_cells {
        return Err(Refusal::Exhausted {
            budget: Budget::Cells,
            retry_after_ms: cells_free_at(t.cells, used, charge.max_cells, max_cells, now_ms),
        });
    }
    let mut after = window.clone();
    after.pending.push(Pending {
        reserved_ms: now_ms,
        resource: charge.resource.clone(),
        variant: charge.variant.clone(),
        cohort_protected: charge.cohort_protected,
        max_cells: charge.max_cells,
    });
    Ok(Admitted {
        replay,
        remaining: after.remaining(limits, &charge.resource, now_ms),
    })
}

/// When enough cells leave the window for `need` more to fit under `max`
/// (`None`: `need` alone exceeds `max`).
fn cells_free_at(
    mut cells: Vec<(i64, u64)>,
    used: u64,
    need: u64,
    max: u64,
    now_ms: i64,
) -> Option<u64> {
    if need > max {
        return None;
    }
    cells.sort_unstable();
    let mut left = used;
    for (at, c) in cells {
        left = left.saturating_sub(c);
        if left + need <= max {
            return Some(leaves_in(at, now_ms));
        }
    }
    None
}

/// Decide the release of a reserved plan's result: what it charges, or why
/// it may not be released.
pub fn commit(
    window: &Window,
    charge: &Charge,
    outcome: &Outcome,
    now_ms: i64,
) -> Result<Charges, CommitRefusal> {
    if outcome.cells > charge.max_cells {
        return Err(CommitRefusal::MoreCellsThanReserved {
            reserved: charge.max_cells,
        });
    }
    let protected = charge.cohort_protected;
    let complete =
        protected && outcome.suppressed_groups == 0 && (charge.total || outcome.complete);
    // A withheld total released nothing to subtract from (and a replay of
    // it must not be refused as its own complement).
    let suppressed = protected && outcome.suppressed_groups > 0 && !charge.total;
    let seen = window.cohort(&charge.cohort, now_ms);
    if (complete && seen.suppressed) || (suppressed && seen.complete) {
        return Err(CommitRefusal::Complementary);
    }
    Ok(Charges {
        query: true,
        variant: protected,
        cells: outcome.cells,
        complete,
        suppressed,
    })
}

/// What a result refused at commit charges: its query ran (and, over a
/// protected cohort, its variant was computed and the refusal itself says
/// something); nothing was released.
pub fn refused_at_commit(charge: &Charge) -> Charges {
    Charges {
        query: true,
        variant: charge.cohort_protected,
        ..Charges::default()
    }
}

/// What a released (failed, or expired) reservation charges: its query
/// may have run; nothing was released.
pub fn released() -> Charges {
    Charges {
        query: true,
        ..Charges::default()
    }
}

/// How an audited query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Released,
    /// Released with groups withheld (or all of it withheld).
    Suppressed,
    Refused,
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Released => "released",
            AuditOutcome::Suppressed => "suppressed",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Failed => "failed",
        }
    }

    /// The outcome of a committed release.
    pub fn of_release(outcome: &Outcome) -> AuditOutcome {
        if outcome.suppressed_groups > 0 {
            AuditOutcome::Suppressed
        } else {
            AuditOutcome::Released
        }
    }
}

/// The cut-off a prune may use: the requested one, or earlier, so that no
/// audited query still charged in the window leaves the ledger (the
/// budgets are counted from it). `first_charged_in_window`: the earliest
/// `charged_ms` after [`window_start`] of now.
pub fn prune_before(requested_ms: i64, first_charged_in_window: Option<i64>) -> i64 {
    first_charged_in_window.map_or(requested_ms, |first| requested_ms.min(first))
}
