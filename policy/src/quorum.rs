//! Multi-party approval (`approval.required_approvals`): a proposal is
//! approved when the N-th distinct approver (OS uid) approves. Each vote
//! is its own ledger event; one uid counts once; a rejection by any
//! approver is terminal.

/// What recording one more approval by `uid` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// Counted; the proposal still waits: `approvals` of `required` so far.
    Counted { approvals: u32, required: u32 },
    /// The N-th distinct approval: the proposal is approved.
    Approves,
    /// `uid` has approved this proposal already; nothing is recorded.
    Duplicate,
}

/// Judge an approval by `uid` of a proposal needing `required` distinct
/// approvals (a value below 1 counts as 1), which `prior` uids have
/// approved already.
pub fn judge_vote(required: u32, prior: &[u32], uid: u32) -> Vote {
    if prior.contains(&uid) {
        return Vote::Duplicate;
    }
    let required = required.max(1);
    let approvals = prior.len() as u32 + 1;
    if approvals >= required {
        Vote::Approves
    } else {
        Vote::Counted {
            approvals,
            required,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_approval_approves_a_proposal_without_a_quorum() {
        assert_eq!(judge_vote(1, &[], 1000), Vote::Approves);
        assert_eq!(judge_vote(0, &[], 1000), Vote::Approves);
    }

    #[test]
    fn the_nth_distinct_approver_approves_and_none_counts_twice() {
        assert_eq!(
            judge_vote(2, &[], 1000),
            Vote::Counted {
                approvals: 1,
                required: 2
            }
        );
        assert_eq!(judge_vote(2, &[1000], 1000), Vote::Duplicate);
        assert_eq!(judge_vote(2, &[1000], 1001), Vote::Approves);
        assert_eq!(
            judge_vote(3, &[1000], 1001),
            Vote::Counted {
                approvals: 2,
                required: 3
            }
        );
        assert_eq!(judge_vote(3, &[1000, 1001], 1002), Vote::Approves);
        assert_eq!(judge_vote(3, &[1000, 1001], 1001), Vote::Duplicate);
        assert_eq!(
            judge_vote(10, &[1, 2, 3, 4, 5, 6, 7, 8, 9], 10),
            Vote::Approves
        );
    }
}
