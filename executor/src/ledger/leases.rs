//! A fleet's leases on applies (PostgreSQL ledgers only): an executor that
//! starts or resumes an apply holds the proposal's lease, with a fencing
//! token one higher than the last. Another executor may take the apply
//! over only once the lease has expired (its holder was killed or cut off);
//! the holder's receipt is then refused (`Fenced`), so a late holder never
//! records over the one that took over. Exactly-once still rests on the
//! source's receipt: a takeover of an apply whose write had committed is
//! answered `already_applied` there.
//!
//! Leases are operational rows beside the chain, like reservations: a
//! lease authorizes nothing, it only keeps two executors from running the
//! same job at once. A single SQLite executor needs none (the store lock
//! makes it the only one).

use super::db::Db;
use super::{Ledger, LedgerError, Timestamp};
use crate::args;

/// Who asks for a lease, and for how long.
#[derive(Debug, Clone)]
pub struct ApplyLease {
    /// This executor process (unique in the fleet).
    pub holder: String,
    pub ms: i64,
}

impl Ledger {
    /// Inside `begin_apply`'s transaction: take the proposal's lease, or
    /// refuse while another executor holds it. Returns the fencing token.
    pub(super) fn claim_lease(
        tx: &Db,
        proposal_id: &str,
        lease: &ApplyLease,
        now_ms: i64,
    ) -> Result<i64, LedgerError> {
        let held: Option<(String, i64, i64)> = tx.query_opt(
            "SELECT holder, fence, expires_ms FROM apply_leases WHERE proposal_id = ?1 FOR UPDATE",
            args![proposal_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let expires = now_ms.saturating_add(lease.ms);
        match held {
            Some((holder, _, until_ms)) if holder != lease.holder && until_ms > now_ms => {
                Err(LedgerError::Leased {
                    proposal_id: proposal_id.to_owned(),
                    holder,
                    until: Timestamp::from_ms(until_ms).text,
                })
            }
            Some((_, fence, _)) => {
                tx.execute(
                    "UPDATE apply_leases SET holder = ?2, fence = ?3, expires_ms = ?4 WHERE proposal_id = ?1",
                    args![proposal_id, lease.holder, fence + 1, expires],
                )?;
                Ok(fence + 1)
            }
            None => {
                tx.execute(
                    "INSERT INTO apply_leases (proposal_id, holder, fence, expires_ms) VALUES (?1, ?2, 1, ?3)",
                    args![proposal_id, lease.holder, expires],
                )?;
                Ok(1)
            }
        }
    }

    /// Inside `record_receipt`'s transaction: the receipt's executor must
    /// still hold the lease it started with; then the lease ends.
    pub(super) fn end_lease(
        tx: &Db,
        proposal_id: &str,
        holder: &str,
        fence: i64,
    ) -> Result<(), LedgerError> {
        let held: Option<(String, i64)> = tx.query_opt(
            "SELECT holder, fence FROM apply_leases WHERE proposal_id = ?1 FOR UPDATE",
            args![proposal_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if held.as_ref().map(|(h, f)| (h.as_str(), *f)) != Some((holder, fence)) {
            return Err(LedgerError::Fenced {
                proposal_id: proposal_id.to_owned(),
            });
        }
        tx.execute(
            "DELETE FROM apply_leases WHERE proposal_id = ?1",
            args![proposal_id],
        )?;
        Ok(())
    }

    /// Proposals whose apply lease has expired (their holder did not
    /// finish): the takeover's work, oldest first. Rows another executor
    /// is claiming right now are skipped, not waited for.
    pub fn expired_leases(&self, limit: u32) -> Result<Vec<String>, LedgerError> {
        let now = Timestamp::now().ms;
        Ok(self.conn.query_map(
            "SELECT proposal_id FROM apply_leases WHERE expires_ms <= ?1 ORDER BY expires_ms LIMIT ?2 FOR UPDATE SKIP LOCKED",
            args![now, limit],
            |r| r.get(0),
        )?)
    }
}
