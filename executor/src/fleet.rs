//! A fleet of executors on one PostgreSQL ledger: each holds a lease on the
//! applies it runs (`ledger::leases`), and each takes over the applies
//! whose lease expired — their executor was killed or cut off mid-apply.
//! The takeover resumes the same job with the same idempotency key, so the
//! source's receipt answers `already_applied` when the first attempt had
//! committed; the first executor's late receipt, if it ever comes, is
//! refused (fenced).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::authority::Authority;
use crate::ledger::{ApplyLease, Durability};

/// Expired leases taken over per look.
const TAKEOVER_BATCH: u32 = 8;

/// This executor's lease identity: host, pid and a random part (two
/// executors never share one, even on one host after a pid is reused).
pub fn lease_for(instance_id: &str, lease_ms: u64) -> ApplyLease {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    ApplyLease {
        holder: format!(
            "{host}/{}/{}",
            std::process::id(),
            instance_id.get(..8).unwrap_or(instance_id)
        ),
        ms: i64::try_from(lease_ms).unwrap_or(i64::MAX),
    }
}

/// How often to look for expired leases: a quarter of the lease, within
/// 250 ms to 5 s.
pub fn look_every(lease_ms: u64) -> Duration {
    Duration::from_millis((lease_ms / 4).clamp(250, 5_000))
}

pub async fn take_over_expired_forever(
    auth: Arc<Authority>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let ids = match auth
            .ledger(Durability::Deferred, |l| l.expired_leases(TAKEOVER_BATCH))
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e.message, "looking for expired apply leases failed; retrying later");
                continue;
            }
        };
        for id in ids {
            match crate::writeback::apply::take_over(&auth, &id).await {
                Ok(r) => tracing::warn!(
                    proposal_id = %id,
                    status = %r.status,
                    "took over an apply whose executor did not finish it"
                ),
                Err(e) => tracing::warn!(
                    proposal_id = %id,
                    error = %e.message,
                    "could not take over an apply; another look follows"
                ),
            }
        }
    }
}
