//! Scoped Explore's budgets (`airlock_policy::explore::budget`): every
//! decision the executor makes at reserve and commit, on windows written
//! out by hand, with the exact budget, retry time and charges expected.
//! The boundaries (the window's edge, a reservation's expiry, a budget
//! filled exactly) are each pinned from both sides.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_policy::explore::budget::{
    self, AuditOutcome, Audited, Budget, Charges, CohortSeen, CommitRefusal, Outcome, Pending,
    RESERVATION_TTL_MS, Refusal, Remaining, WINDOW_MS, Window,
};
use airlock_policy::explore::{Charge, ExploreLimits, validate_plan};
use airlock_policy::load_config_str;
use serde_json::json;

const NOW: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn limits(queries: u64, cells: u64, variants: u64) -> ExploreLimits {
    ExploreLimits {
        max_queries_per_rolling_24_hours: queries,
        max_extracted_cells_per_rolling_24_hours: cells,
        max_differencing_variants_per_rolling_24_hours: variants,
        ..ExploreLimits::default()
    }
}

/// Generous limits but for the one a test is about.
fn roomy() -> ExploreLimits {
    limits(1_000, 1_000_000, 1_000)
}

/// A cohort-protected grouping of `tickets` over cohort `c1`.
fn grouped(variant: &str) -> Charge {
    Charge {
        resource: "tickets".into(),
        variant: variant.into(),
        cohort: "c1".into(),
        aggregate: true,
        cohort_protected: true,
        total: false,
        max_cells: 10,
    }
}

/// A cohort-protected scalar total of `tickets` over `cohort`.
fn total(variant: &str, cohort: &str) -> Charge {
    Charge {
        cohort: cohort.into(),
        total: true,
        max_cells: 1,
        ..grouped(variant)
    }
}

/// A rows plan of `tickets` (no cohort protection).
fn rows(variant: &str, max_cells: u64) -> Charge {
    Charge {
        aggregate: false,
        cohort_protected: false,
        max_cells,
        ..grouped(variant)
    }
}

fn audited(charged_ms: i64, c: &Charge, charges: Charges) -> Audited {
    Audited {
        charged_ms,
        resource: Some(c.resource.clone()),
        variant: Some(c.variant.clone()),
        cohort: Some(c.cohort.clone()),
        charges,
    }
}

/// A released query that charged its query only.
fn query_only(charged_ms: i64) -> Audited {
    audited(charged_ms, &rows("r", 1), budget::released())
}

/// A released grouping that charged its variant and `cells`.
fn released_variant(charged_ms: i64, c: &Charge, cells: u64) -> Audited {
    audited(
        charged_ms,
        c,
        Charges {
            query: true,
            variant: true,
            cells,
            ..Charges::default()
        },
    )
}

fn pending(reserved_ms: i64, c: &Charge) -> Pending {
    Pending {
        reserved_ms,
        resource: c.resource.clone(),
        variant: c.variant.clone(),
        cohort_protected: c.cohort_protected,
        max_cells: c.max_cells,
    }
}

fn window(audited: Vec<Audited>, pending: Vec<Pending>) -> Window {
    Window { audited, pending }
}

/// Milliseconds until a charge made at `at` leaves the window.
fn leaves(at: i64) -> u64 {
    (at + WINDOW_MS - NOW) as u64
}

fn exhausted(budget: Budget, retry_after_ms: Option<u64>) -> Refusal {
    Refusal::Exhausted {
        budget,
        retry_after_ms,
    }
}

#[test]
fn names_and_limit_keys_are_the_documented_ones() {
    let all = [
        (
            Budget::Queries,
            "queries",
            "max_queries_per_rolling_24_hours",
        ),
        (
            Budget::Cells,
            "cells",
            "max_extracted_cells_per_rolling_24_hours",
        ),
        (
            Budget::DifferencingVariants,
            "differencing_variants",
            "max_differencing_variants_per_rolling_24_hours",
        ),
    ];
    for (b, name, key) in all {
        assert_eq!(b.as_str(), name);
        assert_eq!(b.limit_key(), key);
        assert_eq!(serde_json::to_value(b).unwrap(), json!(name));
    }
    for (o, name) in [
        (AuditOutcome::Released, "released"),
        (AuditOutcome::Suppressed, "suppressed"),
        (AuditOutcome::Refused, "refused"),
        (AuditOutcome::Failed, "failed"),
    ] {
        assert_eq!(o.as_str(), name);
        assert_eq!(serde_json::to_value(o).unwrap(), json!(name));
    }
    assert_eq!(WINDOW_MS, 86_400_000);
    assert_eq!(RESERVATION_TTL_MS, 120_000);
}

#[test]
fn the_window_and_a_reservations_life_end_exactly_where_documented() {
    assert_eq!(budget::window_start(NOW), NOW - 86_400_000);
    assert_eq!(budget::window_start(i64::MIN + 5), i64::MIN);
    assert!(budget::reservation_expired(NOW - 120_000, NOW));
    assert!(budget::reservation_expired(NOW - 500_000, NOW));
    assert!(!budget::reservation_expired(NOW - 119_999, NOW));
    assert!(!budget::reservation_expired(NOW, NOW));
    assert!(!budget::reservation_expired(i64::MAX, NOW));

    // A charge exactly one window old no longer counts; one a millisecond
    // younger does.
    let edge = window(vec![query_only(NOW - WINDOW_MS)], vec![]);
    assert_eq!(edge.remaining(&limits(1, 10, 1), "tickets", NOW).queries, 1);
    let inside = window(vec![query_only(NOW - WINDOW_MS + 1)], vec![]);
    assert_eq!(
        inside.remaining(&limits(1, 10, 1), "tickets", NOW).queries,
        0
    );
    // So midnight means nothing: a charge an hour old still counts after
    // any day boundary, and leaves exactly 24 h after it was made.
    let r = budget::reserve(
        &limits(1, 100, 10),
        &window(vec![query_only(NOW - HOUR)], vec![]),
        &rows("x", 1),
        NOW,
    );
    assert_eq!(r, Err(exhausted(Budget::Queries, Some(23 * HOUR as u64))));
}

#[test]
fn the_query_budget_counts_charged_queries_and_every_reservation() {
    let w = window(
        vec![
            query_only(NOW - WINDOW_MS),     // out of the window
            query_only(NOW - WINDOW_MS + 1), // in
            // Refused before running: no query charged.
            audited(NOW - HOUR, &rows("r", 1), Charges::default()),
        ],
        vec![
            // Expired: still a query (until it leaves the window).
            pending(NOW - 2 * HOUR, &rows("p1", 5)),
            pending(NOW - WINDOW_MS, &rows("p0", 5)),
            pending(NOW - 1000, &rows("p2", 5)),
        ],
    );
    assert_eq!(
        budget::reserve(&limits(3, 100, 10), &w, &rows("new", 1), NOW),
        Err(exhausted(Budget::Queries, Some(1))),
        "three queries count; the oldest leaves in 1 ms"
    );
    let ok = budget::reserve(&limits(4, 100, 10), &w, &rows("new", 1), NOW).unwrap();
    assert_eq!(
        ok.remaining,
        Remaining {
            queries: 0,
            cells: 100 - 5 - 1,
            variants: 10
        },
        "this reservation counts too; the expired one holds no cells"
    );
    assert!(!ok.replay);

    // Overspent (a lowered limit): as many must leave as are over.
    let over = window(
        vec![
            query_only(NOW - 3 * HOUR),
            query_only(NOW - 2 * HOUR),
            query_only(NOW - HOUR),
        ],
        vec![],
    );
    assert_eq!(
        budget::reserve(&limits(2, 100, 10), &over, &rows("new", 1), NOW),
        Err(exhausted(Budget::Queries, Some(leaves(NOW - 2 * HOUR))))
    );
    assert_eq!(
        budget::reserve(&limits(3, 100, 10), &over, &rows("new", 1), NOW),
        Err(exhausted(Budget::Queries, Some(leaves(NOW - 3 * HOUR))))
    );
    assert!(budget::reserve(&limits(4, 100, 10), &over, &rows("new", 1), NOW).is_ok());
}

#[test]
fn differencing_variants_count_per_resource_and_a_replay_is_free() {
    let (v1, v2) = (grouped("v1"), grouped("v2"));
    let other_resource = Charge {
        resource: "orders".into(),
        ..grouped("o1")
    };
    let w = window(
        vec![
            released_variant(NOW - 5 * HOUR, &v1, 3),
            released_variant(NOW - 4 * HOUR, &v2, 3),
            // v1 again (a replay): v1 now leaves an hour from now.
            released_variant(NOW - 23 * HOUR + 1, &v1, 3),
            released_variant(NOW - HOUR, &v1, 3),
            // Not charged: a failed query and another resource's variant.
            audited(NOW - HOUR, &grouped("failed"), budget::released()),
            released_variant(NOW - HOUR, &other_resource, 3),
            // Out of the window.
            released_variant(NOW - WINDOW_MS, &grouped("old"), 3),
        ],
        vec![],
    );
    let l = limits(100, 1_000, 2);
    assert_eq!(
        budget::reserve(&l, &w, &grouped("v3"), NOW),
        Err(exhausted(
            Budget::DifferencingVariants,
            Some(leaves(NOW - 4 * HOUR))
        )),
        "v2's last charge leaves first (v1 was charged again since)"
    );
    let replay = budget::reserve(&l, &w, &grouped("v1"), NOW).unwrap();
    assert!(replay.replay);
    assert_eq!(replay.remaining.variants, 0);
    assert_eq!(replay.remaining.queries, 100 - 7 + 1 - 1);
    // Another resource has its own variants.
    let other = budget::reserve(
        &l,
        &w,
        &Charge {
            resource: "orders".into(),
            ..grouped("o2")
        },
        NOW,
    )
    .unwrap();
    assert!(!other.replay);
    assert_eq!(other.remaining.variants, 0, "o1 and o2");
    // Plans without cohort protection charge no variant and are no replay.
    let plain = budget::reserve(&l, &w, &rows("v3", 5), NOW).unwrap();
    assert!(!plain.replay);
    assert_eq!(plain.remaining.variants, 0);
    let plain_same = budget::reserve(&l, &w, &rows("v1", 5), NOW).unwrap();
    assert!(!plain_same.replay);
    // Room for one more: a new variant is admitted and counted.
    let roomier = limits(100, 1_000, 3);
    let third = budget::reserve(&roomier, &w, &grouped("v3"), NOW).unwrap();
    assert!(!third.replay);
    assert_eq!(third.remaining.variants, 0);
    // Overspent by one: two must leave.
    assert_eq!(
        budget::reserve(&limits(100, 1_000, 1), &w, &grouped("v3"), NOW),
        Err(exhausted(
            Budget::DifferencingVariants,
            Some(leaves(NOW - HOUR))
        ))
    );
}

#[test]
fn a_pending_reservation_holds_its_variant_and_cells_until_it_expires() {
    let held = grouped("v1");
    let l = limits(100, 15, 1);
    let fresh = window(vec![], vec![pending(NOW - RESERVATION_TTL_MS + 1, &held)]);
    // Another variant: the pending one holds the only slot.
    assert_eq!(
        budget::reserve(&l, &fresh, &grouped("v2"), NOW),
        Err(exhausted(
            Budget::DifferencingVariants,
            Some(leaves(NOW - RESERVATION_TTL_MS + 1))
        ))
    );
    // The same variant is a replay of it, but its 10 cells are held.
    assert_eq!(
        budget::reserve(&l, &fresh, &grouped("v1"), NOW),
        Err(exhausted(
            Budget::Cells,
            Some(leaves(NOW - RESERVATION_TTL_MS + 1))
        ))
    );
    // A pending reservation of another resource holds no variant here.
    let elsewhere = window(
        vec![],
        vec![pending(
            NOW - 1000,
            &Charge {
                resource: "orders".into(),
                max_cells: 1,
                ..grouped("o1")
            },
        )],
    );
    assert!(budget::reserve(&l, &elsewhere, &grouped("v2"), NOW).is_ok());
    // Nor does an unprotected one.
    let unprotected = window(vec![], vec![pending(NOW - 1000, &rows("v9", 1))]);
    assert!(budget::reserve(&l, &unprotected, &grouped("v2"), NOW).is_ok());

    // Expired: as released — its query stays, its cells and variant go.
    let expired = window(vec![], vec![pending(NOW - RESERVATION_TTL_MS, &held)]);
    let ok = budget::reserve(&l, &expired, &grouped("v2"), NOW).unwrap();
    assert!(!ok.replay);
    assert_eq!(
        ok.remaining,
        Remaining {
            queries: 98,
            cells: 5,
            variants: 0
        }
    );
}

#[test]
fn the_cell_budget_holds_exactly_and_says_when_enough_frees_up() {
    let l = limits(100, 100, 100);
    let w = window(
        vec![
            audited(NOW - 3 * HOUR, &rows("a", 50), budget::released()),
            audited(
                NOW - 3 * HOUR,
                &rows("a", 50),
                Charges {
                    query: true,
                    cells: 30,
                    ..Charges::default()
                },
            ),
            audited(
                NOW - 2 * HOUR,
                &rows("b", 50),
                Charges {
                    query: true,
                    cells: 50,
                    ..Charges::default()
                },
            ),
            // Out of the window.
            audited(
                NOW - WINDOW_MS,
                &rows("c", 50),
                Charges {
                    query: true,
                    cells: 50,
                    ..Charges::default()
                },
            ),
        ],
        vec![pending(NOW - 1000, &rows("p", 10))],
    );
    // 90 used: 10 more fit exactly, 11 do not.
    let ok = budget::reserve(&l, &w, &rows("new", 10), NOW).unwrap();
    assert_eq!(ok.remaining.cells, 0);
    assert_eq!(
        budget::reserve(&l, &w, &rows("new", 11), NOW),
        Err(exhausted(Budget::Cells, Some(leaves(NOW - 3 * HOUR))))
    );
    // 40 fit once the 30 leave (60 + 40 = 100); 41 need the 50 gone too.
    assert_eq!(
        budget::reserve(&l, &w, &rows("new", 40), NOW),
        Err(exhausted(Budget::Cells, Some(leaves(NOW - 3 * HOUR))))
    );
    assert_eq!(
        budget::reserve(&l, &w, &rows("new", 41), NOW),
        Err(exhausted(Budget::Cells, Some(leaves(NOW - 2 * HOUR))))
    );
    // The whole budget: only once the reservation's cells are gone too.
    assert_eq!(
        budget::reserve(&l, &w, &rows("new", 100), NOW),
        Err(exhausted(Budget::Cells, Some(leaves(NOW - 1000))))
    );
    // More than the whole budget: never.
    assert_eq!(
        budget::reserve(&l, &w, &rows("new", 101), NOW),
        Err(exhausted(Budget::Cells, None))
    );
    assert_eq!(
        budget::reserve(&l, &Window::default(), &rows("new", 101), NOW),
        Err(exhausted(Budget::Cells, None))
    );
    assert!(budget::reserve(&l, &Window::default(), &rows("new", 100), NOW).is_ok());
}

#[test]
fn budgets_are_checked_in_a_fixed_order() {
    let suppressed = audited(
        NOW - HOUR,
        &grouped("g"),
        Charges {
            query: true,
            variant: true,
            cells: 10,
            suppressed: true,
            ..Charges::default()
        },
    );
    let w = window(vec![suppressed], vec![]);
    // Everything exhausted: the complement of a total is said first (it
    // does not go away by waiting for the query budget).
    assert_eq!(
        budget::reserve(&limits(1, 10, 1), &w, &total("t", "c1"), NOW),
        Err(Refusal::Complementary)
    );
    // Queries before variants before cells.
    assert_eq!(
        budget::reserve(&limits(1, 10, 1), &w, &grouped("g2"), NOW),
        Err(exhausted(Budget::Queries, Some(leaves(NOW - HOUR))))
    );
    assert_eq!(
        budget::reserve(&limits(2, 10, 1), &w, &grouped("g2"), NOW),
        Err(exhausted(
            Budget::DifferencingVariants,
            Some(leaves(NOW - HOUR))
        ))
    );
    assert_eq!(
        budget::reserve(&limits(2, 10, 2), &w, &grouped("g2"), NOW),
        Err(exhausted(Budget::Cells, Some(leaves(NOW - HOUR))))
    );
    assert!(budget::reserve(&limits(2, 20, 2), &w, &grouped("g2"), NOW).is_ok());
}

/// A window with one release over cohort `c1` of the given kind.
fn seen(complete: bool, suppressed: bool, at: i64) -> Window {
    window(
        vec![audited(
            at,
            &grouped("seen"),
            Charges {
                query: true,
                variant: true,
                cells: 4,
                complete,
                suppressed,
            },
        )],
        vec![],
    )
}

#[test]
fn a_total_over_a_cohort_released_with_suppression_is_refused_before_it_runs() {
    let after_suppression = seen(false, true, NOW - HOUR);
    assert_eq!(
        budget::reserve(&roomy(), &after_suppression, &total("t", "c1"), NOW),
        Err(Refusal::Complementary)
    );
    // Not over another cohort, nor a grouping (only its commit can tell),
    // nor a total without cohort protection, nor once the release left the
    // window, nor after a complete release.
    assert!(budget::reserve(&roomy(), &after_suppression, &total("t", "c2"), NOW).is_ok());
    assert!(budget::reserve(&roomy(), &after_suppression, &grouped("g"), NOW).is_ok());
    let unprotected = Charge {
        cohort_protected: false,
        ..total("t", "c1")
    };
    assert!(budget::reserve(&roomy(), &after_suppression, &unprotected, NOW).is_ok());
    assert!(
        budget::reserve(
            &roomy(),
            &seen(false, true, NOW - WINDOW_MS),
            &total("t", "c1"),
            NOW
        )
        .is_ok()
    );
    assert!(
        budget::reserve(
            &roomy(),
            &seen(true, false, NOW - HOUR),
            &total("t", "c1"),
            NOW
        )
        .is_ok()
    );
}

#[test]
fn what_a_window_saw_of_a_cohort_accumulates_over_its_releases() {
    let w = window(
        vec![
            audited(
                NOW - 2 * HOUR,
                &grouped("a"),
                Charges {
                    complete: true,
                    ..Charges::default()
                },
            ),
            audited(NOW - HOUR, &grouped("b"), Charges::default()),
            audited(
                NOW - HOUR,
                &grouped("b2"),
                Charges {
                    complete: true,
                    ..Charges::default()
                },
            ),
            audited(
                NOW - HOUR,
                &total("c", "c2"),
                Charges {
                    suppressed: true,
                    ..Charges::default()
                },
            ),
            audited(
                NOW - WINDOW_MS,
                &grouped("d"),
                Charges {
                    suppressed: true,
                    ..Charges::default()
                },
            ),
        ],
        vec![],
    );
    assert_eq!(
        w.cohort("c1", NOW),
        CohortSeen {
            complete: true,
            suppressed: false
        }
    );
    assert_eq!(
        w.cohort("c2", NOW),
        CohortSeen {
            complete: false,
            suppressed: true
        }
    );
    assert_eq!(w.cohort("c3", NOW), CohortSeen::default());
    // A refused plan's record has no cohort.
    let none = window(
        vec![Audited {
            charged_ms: NOW - HOUR,
            resource: None,
            variant: None,
            cohort: None,
            charges: Charges {
                complete: true,
                suppressed: true,
                ..Charges::default()
            },
        }],
        vec![],
    );
    assert_eq!(none.cohort("c1", NOW), CohortSeen::default());
}

fn outcome(cells: u64, suppressed_groups: u64, complete: bool) -> Outcome {
    Outcome {
        cells,
        suppressed_groups,
        complete,
    }
}

#[test]
fn a_commit_charges_what_was_released_and_marks_its_cohort() {
    let none = Window::default();
    let g = grouped("g");
    assert_eq!(
        budget::commit(&none, &g, &outcome(6, 2, false), NOW),
        Ok(Charges {
            query: true,
            variant: true,
            cells: 6,
            complete: false,
            suppressed: true
        })
    );
    assert_eq!(
        budget::commit(&none, &g, &outcome(10, 0, true), NOW),
        Ok(Charges {
            query: true,
            variant: true,
            cells: 10,
            complete: true,
            suppressed: false
        }),
        "every group shown: the total can be derived"
    );
    assert_eq!(
        budget::commit(&none, &g, &outcome(10, 0, false), NOW),
        Ok(Charges {
            query: true,
            variant: true,
            cells: 10,
            complete: false,
            suppressed: false
        }),
        "cut by top_n: neither"
    );
    // A total is complete when it released its value, whatever the
    // proposer says; withheld, it is neither.
    let t = total("t", "c1");
    assert_eq!(
        budget::commit(&none, &t, &outcome(1, 0, false), NOW),
        Ok(Charges {
            query: true,
            variant: true,
            cells: 1,
            complete: true,
            suppressed: false
        })
    );
    assert_eq!(
        budget::commit(&none, &t, &outcome(0, 1, false), NOW),
        Ok(Charges {
            query: true,
            variant: true,
            cells: 0,
            complete: false,
            suppressed: false
        })
    );
    // Without cohort protection: no variant, no cohort marks.
    let plain = Charge {
        cohort_protected: false,
        ..grouped("p")
    };
    assert_eq!(
        budget::commit(&none, &plain, &outcome(10, 1, true), NOW),
        Ok(Charges {
            query: true,
            variant: false,
            cells: 10,
            complete: false,
            suppressed: false
        })
    );
    assert_eq!(
        budget::commit(&none, &plain, &outcome(10, 0, true), NOW),
        Ok(Charges {
            query: true,
            variant: false,
            cells: 10,
            complete: false,
            suppressed: false
        })
    );
    // At most the cells reserved.
    assert_eq!(
        budget::commit(&none, &g, &outcome(11, 0, true), NOW),
        Err(CommitRefusal::MoreCellsThanReserved { reserved: 10 })
    );
}

#[test]
fn a_release_that_completes_a_complement_is_refused_at_commit() {
    let g = grouped("g");
    let t = total("t", "c1");
    let suppressed = outcome(6, 2, false);
    let complete = outcome(10, 0, true);
    // A complete release, then one with suppression (either order).
    assert_eq!(
        budget::commit(&seen(true, false, NOW - HOUR), &g, &suppressed, NOW),
        Err(CommitRefusal::Complementary)
    );
    assert_eq!(
        budget::commit(&seen(false, true, NOW - HOUR), &g, &complete, NOW),
        Err(CommitRefusal::Complementary)
    );
    assert_eq!(
        budget::commit(
            &seen(false, true, NOW - HOUR),
            &t,
            &outcome(1, 0, false),
            NOW
        ),
        Err(CommitRefusal::Complementary)
    );
    // Two of a kind are fine, as are other cohorts and releases that left
    // the window.
    assert!(budget::commit(&seen(true, false, NOW - HOUR), &g, &complete, NOW).is_ok());
    assert!(budget::commit(&seen(false, true, NOW - HOUR), &g, &suppressed, NOW).is_ok());
    let other = Charge {
        cohort: "c2".into(),
        ..grouped("g")
    };
    assert!(budget::commit(&seen(true, false, NOW - HOUR), &other, &suppressed, NOW).is_ok());
    assert!(budget::commit(&seen(true, false, NOW - WINDOW_MS), &g, &suppressed, NOW).is_ok());
    // A withheld total is no complement of anything (its replay is not
    // refused either).
    assert!(
        budget::commit(
            &seen(true, false, NOW - HOUR),
            &t,
            &outcome(0, 1, false),
            NOW
        )
        .is_ok()
    );
    // Neither complete nor suppressed: never refused.
    assert!(
        budget::commit(
            &seen(true, true, NOW - HOUR),
            &g,
            &outcome(10, 0, false),
            NOW
        )
        .is_ok()
    );
}

#[test]
fn what_refused_and_failed_queries_charge() {
    assert_eq!(
        budget::refused_at_commit(&grouped("g")),
        Charges {
            query: true,
            variant: true,
            ..Charges::default()
        }
    );
    assert_eq!(
        budget::refused_at_commit(&rows("r", 5)),
        Charges {
            query: true,
            ..Charges::default()
        }
    );
    assert_eq!(
        budget::released(),
        Charges {
            query: true,
            variant: false,
            cells: 0,
            complete: false,
            suppressed: false
        }
    );
    assert_eq!(
        AuditOutcome::of_release(&outcome(3, 1, false)),
        AuditOutcome::Suppressed
    );
    assert_eq!(
        AuditOutcome::of_release(&outcome(3, 0, true)),
        AuditOutcome::Released
    );
    assert_eq!(
        AuditOutcome::of_release(&outcome(0, 0, false)),
        AuditOutcome::Released
    );
}

#[test]
fn remaining_counts_each_budget() {
    let w = window(
        vec![
            released_variant(NOW - HOUR, &grouped("v1"), 7),
            released_variant(NOW - HOUR, &grouped("v2"), 3),
        ],
        vec![pending(NOW - 10, &grouped("v3"))],
    );
    assert_eq!(
        w.remaining(&limits(10, 100, 5), "tickets", NOW),
        Remaining {
            queries: 7,
            cells: 80,
            variants: 2
        }
    );
    assert_eq!(w.remaining(&limits(10, 100, 5), "orders", NOW).variants, 5);
    // Never below zero.
    assert_eq!(
        w.remaining(&limits(1, 5, 1), "tickets", NOW),
        Remaining {
            queries: 0,
            cells: 0,
            variants: 0
        }
    );
}

#[test]
fn a_prune_never_moves_a_charge_still_in_the_window() {
    assert_eq!(budget::prune_before(NOW, None), NOW);
    assert_eq!(budget::prune_before(NOW, Some(NOW - HOUR)), NOW - HOUR);
    assert_eq!(
        budget::prune_before(NOW - 2 * HOUR, Some(NOW - HOUR)),
        NOW - 2 * HOUR
    );
}

/// A small boundary: `tickets` (minimum cohort 5) and `notes` (1).
fn boundary() -> airlock_policy::explore::Boundary {
    let cfg = json!({
        "version": 1,
        "mode": "review",
        "sources": {"app": {"engine": "postgres", "read_url_env": "APP_READ_URL"}},
        "trusted_context": {"provider": "environment", "values": {"tenant_id_env": "APP_TENANT_ID"}},
        "capabilities": [{
            "name": "support.inspect_ticket",
            "kind": "read",
            "source": "app",
            "target": {"schema": "public", "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id"},
            "args": {"ticket_id": {"type": "string", "required": true, "max_length": 64}},
            "lookup": {"id_from_arg": "ticket_id"},
            "visible_columns": ["id", "tenant_id", "status"],
            "evidence": "required",
            "max_rows": 1
        }],
        "airlock": {"explore": {
            "source": "app",
            "resources": {
                "tickets": {
                    "schema": "public", "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id",
                    "fields": {
                        "status": {"type": "text", "uses": ["dimension", "filter"]},
                        "priority": {"type": "text", "uses": ["dimension", "filter"]}
                    }
                },
                "notes": {
                    "schema": "public", "table": "notes", "primary_key": "id", "tenant_key": "tenant_id",
                    "minimum_cohort_size": 1,
                    "fields": {"kind": {"type": "text", "uses": ["dimension", "filter"]}}
                }
            }
        }}
    });
    let loaded = load_config_str(&cfg.to_string());
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("{:?}", loaded.report));
    config.airlock.explore.unwrap()
}

#[test]
fn one_question_asked_two_ways_is_one_variant_and_a_replay() {
    let b = boundary();
    let charge = |plan: serde_json::Value| validate_plan(&b, &plan).unwrap().charge(&b);
    let first = charge(json!({
        "kind": "aggregate", "resource": "tickets",
        "measures": [{"function": "count"}],
        "dimensions": ["status"],
        "where": [{"field": "priority", "op": "in", "value": ["high", "low"]}]
    }));
    let again = charge(json!({
        "resource": "tickets", "kind": "aggregate",
        "where": [{"field": "priority", "op": "in", "value": ["low", "high", "low"]}],
        "dimensions": ["status"],
        "measures": [{"function": "count"}]
    }));
    assert_eq!(first, again);
    assert!(first.cohort_protected && !first.total);
    let w = window(vec![released_variant(NOW - HOUR, &first, 3)], vec![]);
    let admitted = budget::reserve(&limits(10, 1_000, 1), &w, &again, NOW).unwrap();
    assert!(admitted.replay);
    // A total over the same cohort shares the cohort, not the variant.
    let t = charge(json!({
        "kind": "aggregate", "resource": "tickets",
        "measures": [{"function": "count"}],
        "where": [{"field": "priority", "op": "in", "value": ["high", "low"]}]
    }));
    assert!(t.total);
    assert_eq!(t.cohort, first.cohort);
    assert_ne!(t.variant, first.variant);
    // A resource with a minimum cohort of 1 is not protected.
    let n = charge(json!({
        "kind": "aggregate", "resource": "notes", "measures": [{"function": "count"}]
    }));
    assert!(!n.cohort_protected);
    let crowded = window(vec![released_variant(NOW - HOUR, &first, 3)], vec![]);
    assert!(budget::reserve(&limits(10, 1_000, 1), &crowded, &n, NOW).is_ok());
}
