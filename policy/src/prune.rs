//! Which part of the ledger a prune may move into an archive: a pure
//! decision over the ledger's events, made by the executor inside the
//! transaction that prunes (see docs/reliability.md, "Pruning").
//!
//! The ledger is one hash chain, so only a *prefix* of it can leave: the
//! pruned ledger then starts at the archived prefix's last hash, which its
//! `ledger_pruned` event records. The prefix ends before the first event
//! that must stay — an event of an unfinished proposal, or one on or after
//! the cut-off date — and never splits a proposal (or a read and the
//! proposals citing it) between the two files.

use std::collections::{BTreeMap, BTreeSet};

/// The states in which nothing can happen to a proposal any more.
pub const FINISHED_STATES: &[&str] = &["applied", "rejected", "expired", "conflict", "failed"];

/// Whether a proposal in `state` is finished: a terminal state, and no
/// apply of it in doubt (a job without its receipt, which the next apply
/// must resolve — a retry of a `failed` proposal shows `failed` meanwhile).
pub fn is_finished(state: &str, apply_in_doubt: bool) -> bool {
    !apply_in_doubt && FINISHED_STATES.contains(&state)
}

/// One ledger event, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneEvent {
    pub seq: i64,
    /// Unix milliseconds of the event's time.
    pub at_ms: i64,
    /// Set on every event of a proposal.
    pub proposal_id: Option<String>,
    /// Set on a read's event, and on a proposal's events that cite it.
    pub evidence_id: Option<String>,
}

/// Why the prefix ends where it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Every event is in the prefix.
    End,
    /// This proposal is not finished (pending, approved, or an apply in
    /// doubt): it and everything after its first event stay.
    Unfinished { proposal_id: String },
    /// The event `seq` (a proposal's last event, a read, or a prune) is on
    /// or after the cut-off: it and everything after it stay.
    Recent { seq: i64 },
}

/// What a prune would move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePlan {
    /// The last event of the prefix (0: nothing can be pruned).
    pub through_seq: i64,
    /// Events in the prefix.
    pub events: u64,
    /// Proposals in the prefix (all of each one's events are in it).
    pub proposals: u64,
    /// Reads in the prefix.
    pub reads: u64,
    pub held_by: Hold,
}

/// The longest prefix of `events` (in `seq` order, as stored) that holds
/// only finished proposals whose last event is before `before_ms`, reads
/// and prunes before it, and that ends where no proposal continues past it.
/// `finished` says whether a proposal is finished ([`is_finished`]).
pub fn plan(events: &[PruneEvent], before_ms: i64, finished: impl Fn(&str) -> bool) -> PrunePlan {
    // Each proposal's last event, and the proposals citing each read.
    let mut last: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut citing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in events {
        if let Some(p) = e.proposal_id.as_deref() {
            // In seq order: the last insert is the proposal's last event.
            last.insert(p, (e.seq, e.at_ms));
            if let Some(ev) = e.evidence_id.as_deref() {
                citing.entry(ev).or_default().insert(p);
            }
        }
    }
    // The proposal may leave: (the seq of its last event) or why not.
    let leaves = |p: &str| -> Result<i64, Hold> {
        if !finished(p) {
            return Err(Hold::Unfinished {
                proposal_id: p.to_owned(),
            });
        }
        let (seq, at) = last.get(p).copied().unwrap_or((0, i64::MAX));
        if at >= before_ms {
            return Err(Hold::Recent { seq });
        }
        Ok(seq)
    };
    let mut need = 0i64;
    let mut plan = PrunePlan {
        through_seq: 0,
        events: 0,
        proposals: 0,
        reads: 0,
        held_by: Hold::End,
    };
    let (mut seen_events, mut seen_reads) = (0u64, 0u64);
    let mut seen_proposals: BTreeSet<&str> = BTreeSet::new();
    for e in events {
        // The last event this one needs in the same file.
        let end = match (e.proposal_id.as_deref(), e.evidence_id.as_deref()) {
            (Some(p), _) => leaves(p),
            (None, _) if e.at_ms >= before_ms => Err(Hold::Recent { seq: e.seq }),
            (None, Some(ev)) => citing
                .get(ev)
                .into_iter()
                .flatten()
                .try_fold(e.seq, |end, p| leaves(p).map(|s| end.max(s))),
            (None, None) => Ok(e.seq),
        };
        let end = match end {
            Ok(end) => end,
            Err(hold) => {
                plan.held_by = hold;
                break;
            }
        };
        need = need.max(end);
        seen_events += 1;
        match (e.proposal_id.as_deref(), e.evidence_id.is_some()) {
            (Some(p), _) => {
                seen_proposals.insert(p);
            }
            (None, true) => seen_reads += 1,
            (None, false) => {}
        }
        // A cut here splits nothing: every span opened so far is closed.
        if e.seq >= need {
            plan.through_seq = e.seq;
            plan.events = seen_events;
            plan.proposals = seen_proposals.len() as u64;
            plan.reads = seen_reads;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64, at_ms: i64, proposal: Option<&str>, evidence: Option<&str>) -> PruneEvent {
        PruneEvent {
            seq,
            at_ms,
            proposal_id: proposal.map(str::to_owned),
            evidence_id: evidence.map(str::to_owned),
        }
    }

    #[test]
    fn finished_is_a_terminal_state_without_an_apply_in_doubt() {
        for s in ["applied", "rejected", "expired", "conflict", "failed"] {
            assert!(is_finished(s, false), "{s}");
            assert!(!is_finished(s, true), "{s} in doubt");
        }
        for s in ["pending_approval", "approved", "", "Applied", "xyzzy"] {
            assert!(!is_finished(s, false), "{s}");
        }
    }

    /// read ev1 (1) → proposal A (2, 3) ; read ev2 (4) → proposal B (5, 6);
    /// an uncited read (7); a prune (8).
    fn two_stories() -> Vec<PruneEvent> {
        vec![
            ev(1, 100, None, Some("ev1")),
            ev(2, 110, Some("A"), Some("ev1")),
            ev(3, 120, Some("A"), None),
            ev(4, 200, None, Some("ev2")),
            ev(5, 210, Some("B"), Some("ev2")),
            ev(6, 220, Some("B"), None),
            ev(7, 300, None, Some("ev3")),
            ev(8, 400, None, None),
        ]
    }

    #[test]
    fn everything_finished_and_old_goes() {
        let p = plan(&two_stories(), 1_000, |_| true);
        assert_eq!(
            p,
            PrunePlan {
                through_seq: 8,
                events: 8,
                proposals: 2,
                reads: 3,
                held_by: Hold::End
            }
        );
    }

    #[test]
    fn an_unfinished_proposal_holds_itself_and_its_read() {
        let p = plan(&two_stories(), 1_000, |id| id != "B");
        assert_eq!(
            p,
            PrunePlan {
                through_seq: 3,
                events: 3,
                proposals: 1,
                reads: 1,
                held_by: Hold::Unfinished {
                    proposal_id: "B".into()
                }
            }
        );
        let p = plan(&two_stories(), 1_000, |id| id != "A");
        assert_eq!(p.through_seq, 0);
        assert_eq!((p.events, p.proposals, p.reads), (0, 0, 0));
        assert_eq!(
            p.held_by,
            Hold::Unfinished {
                proposal_id: "A".into()
            }
        );
    }

    #[test]
    fn the_cut_off_is_strict_and_uses_a_proposals_last_event() {
        // B's last event is at 220: a cut-off of 220 keeps B, 221 moves it.
        let p = plan(&two_stories(), 220, |_| true);
        assert_eq!((p.through_seq, p.held_by), (3, Hold::Recent { seq: 6 }));
        let p = plan(&two_stories(), 221, |_| true);
        assert_eq!((p.through_seq, p.held_by), (6, Hold::Recent { seq: 7 }));
        // A read or a prune on the cut-off stays.
        let p = plan(&two_stories(), 300, |_| true);
        assert_eq!((p.through_seq, p.held_by), (6, Hold::Recent { seq: 7 }));
        let p = plan(&two_stories(), 400, |_| true);
        assert_eq!((p.through_seq, p.held_by), (7, Hold::Recent { seq: 8 }));
        let p = plan(&two_stories(), 401, |_| true);
        assert_eq!((p.through_seq, p.held_by), (8, Hold::End));
        // Nothing before the first event.
        let p = plan(&two_stories(), 100, |_| true);
        assert_eq!((p.through_seq, p.held_by), (0, Hold::Recent { seq: 1 }));
    }

    #[test]
    fn a_proposal_is_never_split_from_its_later_events() {
        // A (2) is interleaved with C (3, 5): the prefix can only end after 5.
        let events = vec![
            ev(1, 10, None, Some("ev1")),
            ev(2, 20, Some("A"), Some("ev1")),
            ev(3, 30, Some("C"), None),
            ev(4, 40, Some("A"), None),
            ev(5, 50, Some("C"), None),
            ev(6, 60, Some("D"), None),
        ];
        let p = plan(&events, 1_000, |id| id != "D");
        assert_eq!(
            (p.through_seq, p.events, p.proposals, p.reads),
            (5, 5, 2, 1)
        );
        // C's last event is too recent: only nothing closes before it.
        let p = plan(&events, 45, |_| true);
        assert_eq!(
            (p.through_seq, p.events, p.held_by),
            (0, 0, Hold::Recent { seq: 5 })
        );
        // A ends at 4, but C (opened at 3) is unfinished: A cannot go alone.
        let p = plan(&events, 1_000, |id| id != "C");
        assert_eq!(
            (p.through_seq, p.held_by),
            (
                0,
                Hold::Unfinished {
                    proposal_id: "C".into()
                }
            )
        );
    }

    #[test]
    fn a_read_stays_with_every_proposal_citing_it() {
        // ev1 is cited by A (2) and by B (4, 5).
        let events = vec![
            ev(1, 10, None, Some("ev1")),
            ev(2, 20, Some("A"), Some("ev1")),
            ev(3, 30, None, Some("ev9")),
            ev(4, 40, Some("B"), Some("ev1")),
            ev(5, 50, Some("B"), None),
        ];
        let p = plan(&events, 1_000, |_| true);
        assert_eq!((p.through_seq, p.reads, p.proposals), (5, 2, 2));
        // B unfinished: the read it cites stays, so everything does.
        let p = plan(&events, 1_000, |id| id != "B");
        assert_eq!(
            (p.through_seq, p.held_by),
            (
                0,
                Hold::Unfinished {
                    proposal_id: "B".into()
                }
            )
        );
        // B too recent: likewise, the hold names B's last event.
        let p = plan(&events, 45, |_| true);
        assert_eq!((p.through_seq, p.held_by), (0, Hold::Recent { seq: 5 }));
    }

    #[test]
    fn the_counts_are_those_of_the_prefix_not_of_the_events_seen() {
        // A (1, 3) closes at 3; B opens at 2 and is held at 4.
        let events = vec![
            ev(1, 10, Some("A"), None),
            ev(2, 20, Some("B"), None),
            ev(3, 30, Some("A"), None),
            ev(4, 40, None, Some("ev1")),
            ev(5, 50, Some("B"), None),
        ];
        let p = plan(&events, 45, |_| true);
        assert_eq!(
            p,
            PrunePlan {
                through_seq: 0,
                events: 0,
                proposals: 0,
                reads: 0,
                held_by: Hold::Recent { seq: 5 }
            }
        );
        let events = vec![
            ev(1, 10, Some("A"), None),
            ev(2, 20, Some("A"), None),
            ev(3, 30, None, Some("ev1")),
            ev(4, 40, Some("B"), None),
            ev(5, 50, None, Some("ev2")),
            ev(6, 60, Some("B"), None),
        ];
        let p = plan(&events, 55, |_| true);
        assert_eq!(
            p,
            PrunePlan {
                through_seq: 3,
                events: 3,
                proposals: 1,
                reads: 1,
                held_by: Hold::Recent { seq: 6 }
            }
        );
    }

    #[test]
    fn an_empty_ledger_has_nothing_to_prune() {
        let p = plan(&[], 1_000, |_| true);
        assert_eq!(
            p,
            PrunePlan {
                through_seq: 0,
                events: 0,
                proposals: 0,
                reads: 0,
                held_by: Hold::End
            }
        );
    }
}
