//! The ledger's lifecycle inside the executor: the expiry sweep, and the
//! operator's prune (`prune_ledger`, operator socket only).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airlock_ipc::ErrorBody;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::message::{PruneHold, PruneLedger, PruneReport};
use airlock_policy::prune::Hold;
use tokio::sync::watch;

use crate::authority::{Authority, Peer};
use crate::ledger::{Durability, PruneRequest, Timestamp};
use crate::peer_auth::LEDGER_ADMIN_ROLE;

/// Proposals marked per ledger call: a sweep of many never holds the
/// ledger thread (and so intake) for long.
const SWEEP_BATCH: u32 = 500;
/// The longest the sweep sleeps (it wakes sooner for a proposal due sooner).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Record `expired` events for proposals whose time to live passed: at
/// start, then when the next proposal is due and at least every minute.
/// The state shown between sweeps is already `expired` (computed from the
/// clock); the sweep makes it a ledger event that outlives a clock change
/// and that a prune can archive. Its writes are `Deferred` (no fsync of
/// their own): one lost to a power cut is simply recorded again at start.
pub async fn sweep_expired_forever(auth: Arc<Authority>, mut shutdown: watch::Receiver<bool>) {
    // Proposals due before the last complete sweep began are recorded.
    let mut after: Option<i64> = None;
    loop {
        let started = Timestamp::now().ms;
        let mut complete = true;
        loop {
            match auth
                .ledger(Durability::Deferred, move |l| {
                    l.sweep_expired(after, SWEEP_BATCH)
                })
                .await
            {
                Ok(ids) => {
                    if !ids.is_empty() {
                        tracing::info!(count = ids.len(), "proposals expired");
                        auth.notifier.wake();
                    }
                    if ids.len() < SWEEP_BATCH as usize {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "the expiry sweep failed; retrying later");
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            after = Some(started);
        }
        // Sleep until the next proposal is due (at most a minute); a new
        // proposal wakes this to look again.
        loop {
            let now = Timestamp::now().ms;
            let next = auth
                .ledger(Durability::Read, move |l| l.next_expiry(now))
                .await
                .ok()
                .flatten();
            let wait = next.map_or(SWEEP_EVERY, |due| {
                Duration::from_millis(due.saturating_sub(now).saturating_add(50).max(0) as u64)
                    .clamp(Duration::from_millis(100), SWEEP_EVERY)
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => break,
                _ = auth.expiry_wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// `prune_ledger`: move the finished start of the ledger into a new archive.
pub async fn prune(
    auth: &Authority,
    peer: &Peer,
    req: PruneLedger,
) -> Result<PruneReport, ErrorBody> {
    if !auth.peers.may_prune(peer.creds.uid) {
        tracing::warn!(
            uid = peer.creds.uid,
            "prune refused: peer is neither the executor's user nor a ledger_admin"
        );
        return Err(ErrorBody::new(
            ErrorCode::RoleRequired,
            format!(
                "pruning the ledger needs the executor's own OS user or an approver whose roles list `{LEDGER_ADMIN_ROLE}` by name (see `airlock.approvers`); nothing was done"
            ),
        ));
    }
    req.check_archive_path()
        .map_err(|e| ErrorBody::new(ErrorCode::InvalidRequest, e))?;
    let before = chrono::DateTime::parse_from_rfc3339(&req.before)
        .map(|t| Timestamp::from_ms(t.timestamp_millis()))
        .map_err(|e| {
            ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!("`before` must be an RFC 3339 time such as 2026-01-01T00:00:00Z: {e}"),
            )
        })?;
    let archive = PathBuf::from(&req.archive);
    if is_store_file(&auth.store, &archive) {
        return Err(ErrorBody::new(
            ErrorCode::InvalidRequest,
            "the archive must not be the ledger or one of its companion files (-wal, -shm, -journal, .lock); choose another name",
        ));
    }
    let actor = peer.identity();
    let (archive_for_ledger, before_for_ledger) = (archive.clone(), before.clone());
    let outcome = auth
        .ledger_exclusive(move |l| {
            l.prune(PruneRequest {
                before: &before_for_ledger,
                archive: &archive_for_ledger,
                actor: &actor,
            })
        })
        .await?;
    let plan = &outcome.plan;
    tracing::info!(
        uid = peer.creds.uid,
        events = plan.events,
        proposals = plan.proposals,
        through_seq = plan.through_seq,
        archive = %archive.display(),
        "ledger pruned"
    );
    let held_by = match &plan.held_by {
        Hold::End => PruneHold {
            reason: "end".into(),
            proposal_id: None,
            seq: None,
        },
        Hold::Unfinished { proposal_id } => PruneHold {
            reason: "unfinished".into(),
            proposal_id: Some(proposal_id.clone()),
            seq: None,
        },
        Hold::Recent { seq } => PruneHold {
            reason: "recent".into(),
            proposal_id: None,
            seq: Some(*seq as u64),
        },
    };
    Ok(PruneReport {
        archive: outcome.event.as_ref().map(|_| req.archive.clone()),
        before: before.text,
        events: plan.events,
        proposals: plan.proposals,
        evidence: plan.reads,
        first_seq: outcome.first_seq.max(0) as u64,
        through_seq: plan.through_seq.max(0) as u64,
        through_hash: outcome.through_hash,
        prune_event: outcome.event,
        held_by,
    })
}

/// Whether `path` is the ledger or a file SQLite or the executor keeps
/// beside it (`<store>-wal`, `<store>.lock`, …): same directory (after
/// resolving links) and a name that starts with the ledger's.
fn is_store_file(store: &Path, path: &Path) -> bool {
    let dir = |p: &Path| {
        p.parent()
            .and_then(|d| std::fs::canonicalize(d).ok())
            .or_else(|| p.parent().map(Path::to_owned))
    };
    let (Some(store_name), Some(name)) = (store.file_name(), path.file_name()) else {
        return true;
    };
    dir(store) == dir(path)
        && name
            .to_string_lossy()
            .starts_with(store_name.to_string_lossy().as_ref())
}
