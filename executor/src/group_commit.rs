//! Group commit: one thread owns the ledger connection. Requests queue up
//! while a commit is being fsync'd; the thread then runs every queued call
//! in one transaction (each in its own savepoint) and commits them with one
//! fsync, then answers each caller. A caller is answered only after the
//! commit that holds its work, so "durable when the reply arrives" holds for
//! every call, and concurrent callers share fsyncs instead of queueing for
//! one each.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::ledger::{Durability, Ledger, LedgerError};

/// At most this many calls share one commit (bounds a batch's latency).
const MAX_BATCH: usize = 128;

/// Hands the result of one call to its caller once the batch's commit is
/// known: the result if it committed, the commit's error if not.
type Reply = Box<dyn FnOnce(Result<(), &LedgerError>) + Send>;

struct Call {
    durability: Durability,
    run: Box<dyn FnOnce(&mut Ledger) -> Reply + Send>,
}

enum Message {
    Call(Call),
    /// Run alone on the connection, between batches and outside any
    /// transaction (a prune, which manages its own transactions).
    Exclusive(Box<dyn FnOnce(&mut Ledger) + Send>),
    /// Flush the WAL into the main file (clean shutdown), then answer.
    Checkpoint(oneshot::Sender<()>),
}

/// The sending side, held by the executor's `Authority`.
#[derive(Debug, Clone)]
pub struct LedgerThread {
    queue: mpsc::Sender<Message>,
}

/// Why a call got no result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the ledger thread has stopped")]
    Stopped,
    #[error("the ledger could not start a transaction for this call; see the executor's log")]
    NotRun,
}

impl LedgerThread {
    /// Move `ledger` onto its own thread.
    pub fn spawn(ledger: Ledger) -> std::io::Result<LedgerThread> {
        let (queue, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || serve(ledger, rx))?;
        Ok(LedgerThread { queue })
    }

    /// Run `f` on the ledger; answered after the commit that holds its work.
    pub async fn call<T, F>(&self, durability: Durability, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ledger) -> Result<T, LedgerError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run = Box::new(move |ledger: &mut Ledger| -> Reply {
            // Each call is all-or-nothing within the batch, and a panic in
            // one must not take the thread (and every other caller) down.
            let result = ledger.as_one_call(|l| {
                std::panic::catch_unwind(AssertUnwindSafe(|| f(l)))
                    .unwrap_or_else(|_| Err(LedgerError::Corrupt("a ledger call panicked".into())))
            });
            Box::new(move |committed: Result<(), &LedgerError>| {
                let answer = match committed {
                    Ok(()) => result,
                    Err(e) => Err(LedgerError::CommitFailed {
                        fault: e.storage_fault(),
                        detail: e.to_string(),
                    }),
                };
                let _ = tx.send(answer);
            })
        });
        self.queue
            .send(Message::Call(Call { durability, run }))
            .map_err(|_| CallError::Stopped)?;
        match rx.await {
            Ok(answer) => answer.map_err(CallError::Ledger),
            Err(_) => Err(CallError::NotRun),
        }
    }

    /// Run `f` alone on the ledger, outside any batch: it begins and
    /// commits its own transactions, and nothing else runs meanwhile.
    pub async fn exclusive<T, F>(&self, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ledger) -> Result<T, LedgerError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run = Box::new(move |ledger: &mut Ledger| {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(ledger)))
                .unwrap_or_else(|_| Err(LedgerError::Corrupt("a ledger call panicked".into())));
            let _ = tx.send(result);
        });
        self.queue
            .send(Message::Exclusive(run))
            .map_err(|_| CallError::Stopped)?;
        match rx.await {
            Ok(answer) => answer.map_err(CallError::Ledger),
            Err(_) => Err(CallError::NotRun),
        }
    }

    /// Checkpoint the WAL after everything queued so far.
    pub async fn checkpoint(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Message::Checkpoint(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn serve(mut ledger: Ledger, queue: mpsc::Receiver<Message>) {
    let mut next = queue.recv().ok();
    while let Some(message) = next.take() {
        let first = match message {
            Message::Call(call) => call,
            Message::Checkpoint(done) => {
                if let Err(e) = ledger.checkpoint() {
                    tracing::warn!(error = %e, "ledger checkpoint failed");
                }
                let _ = done.send(());
                next = queue.recv().ok();
                continue;
            }
            Message::Exclusive(run) => {
                run(&mut ledger);
                next = queue.recv().ok();
                continue;
            }
        };
        // Everything already queued joins this batch, up to MAX_BATCH; a
        // checkpoint request ends the batch and is handled next.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Message::Call(call)) => batch.push(call),
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let durability = batch_durability(batch.iter().map(|c| c.durability));
        if let Err(e) = ledger.begin_batch(durability) {
            // Nothing ran; dropping the calls answers each with NotRun.
            tracing::error!(error = %e, "ledger batch could not start");
            continue_after(&queue, &mut next);
            continue;
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        for call in batch {
            // SQLite rolls the whole transaction back on some errors (disk
            // full, I/O): the calls after that are not run (NotRun), rather
            // than committed one by one outside the batch.
            if !ledger.batch_open() {
                break;
            }
            replies.push((call.run)(&mut ledger));
        }
        let committed = ledger.commit_batch();
        if let Err(e) = &committed {
            tracing::error!(error = %e, "ledger batch not committed");
        }
        for reply in replies {
            reply(committed.as_ref().map(|_| ()));
        }
        continue_after(&queue, &mut next);
    }
}

/// The strictest durability any call of a batch needs.
fn batch_durability(calls: impl Iterator<Item = Durability>) -> Durability {
    calls.max().unwrap_or(Durability::Read)
}

/// Block for the next message unless one is already waiting.
fn continue_after(queue: &mpsc::Receiver<Message>, next: &mut Option<Message>) {
    if next.is_none() {
        *next = queue.recv().ok();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ledger::{ActorIdentity, NewEvidence};

    fn record_read(l: &mut Ledger, n: usize) -> Result<String, LedgerError> {
        let rows = vec![
            json!({"id": format!("row-{n}"), "tenant_id": "acme"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ];
        l.record_evidence(NewEvidence {
            capability: "billing.inspect_invoice",
            tenant_id: "acme",
            principal: "p",
            query_fingerprint: "sha256:00",
            parameters: &[],
            rows: &rows,
            actor: &ActorIdentity {
                uid: 1000,
                user: None,
            },
        })
        .map(|(id, _)| id)
    }

    fn temp_ledger(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("airlock-gc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger.db");
        (dir, path)
    }

    #[test]
    fn a_batch_is_as_durable_as_its_strictest_call() {
        use Durability::{Deferred, Now, Read};
        for (calls, want) in [
            (&[Read, Read][..], Read),
            (&[Read, Deferred, Read][..], Deferred),
            (&[Deferred, Now][..], Now),
            (&[Now, Read][..], Now),
            (&[Read, Now, Deferred][..], Now),
        ] {
            assert_eq!(batch_durability(calls.iter().copied()), want, "{calls:?}");
        }
    }

    /// Many concurrent callers, mixed durabilities, one failing call per
    /// round: every good call is stored exactly once, the failing one leaves
    /// nothing, and the hash chain verifies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_share_commits_and_failures_stay_local() {
        let (dir, path) = temp_ledger("concurrent");
        let thread = LedgerThread::spawn(Ledger::open(&path).unwrap()).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..400 {
            let t = thread.clone();
            tasks.spawn(async move {
                if n % 50 == 7 {
                    // Writes an event, then fails: its savepoint must vanish.
                    t.call(Durability::Now, move |l| {
                        record_read(l, n)?;
                        Err::<String, _>(LedgerError::NotFound("nope".into()))
                    })
                    .await
                } else {
                    let d = if n % 3 == 0 {
                        Durability::Now
                    } else {
                        Durability::Deferred
                    };
                    t.call(d, move |l| record_read(l, n)).await
                }
            });
        }
        let (mut ok, mut refused) = (std::collections::HashSet::new(), 0);
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                Ok(id) => assert!(ok.insert(id), "duplicate evidence id"),
                Err(CallError::Ledger(LedgerError::NotFound(_))) => refused += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!((ok.len(), refused), (392, 8));
        thread.checkpoint().await;
        drop(thread);
        let ledger = Ledger::open_read_only(&path).unwrap();
        let counts = ledger.counts().unwrap();
        assert_eq!((counts.evidence, counts.events), (392, 392));
        assert!(ledger.verify().unwrap().ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A commit that cannot happen (the ledger is full) answers every caller
    /// of the batch with an error and stores none of it; once there is room
    /// again the ledger goes on, its chain intact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_full_ledger_fails_the_whole_batch_and_recovers() {
        let (dir, path) = temp_ledger("full");
        let thread = LedgerThread::spawn(Ledger::open(&path).unwrap()).unwrap();
        thread
            .call(Durability::Now, |l| record_read(l, 0))
            .await
            .unwrap();
        let pages = thread
            .call(Durability::Now, |l| l.limit_pages_for_test(None))
            .await
            .unwrap();
        thread
            .call(Durability::Now, move |l| {
                l.limit_pages_for_test(Some(pages))
            })
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 1..=50 {
            let t = thread.clone();
            tasks.spawn(async move { t.call(Durability::Now, move |l| record_read(l, n)).await });
        }
        let mut failed = 0;
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                Ok(_) => {}
                Err(e) => {
                    failed += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        assert!(failed > 0, "a full ledger must refuse work");
        thread
            .call(Durability::Now, |l| l.limit_pages_for_test(Some(1 << 30)))
            .await
            .unwrap();
        thread
            .call(Durability::Now, |l| record_read(l, 99))
            .await
            .unwrap();
        thread.checkpoint().await;
        drop(thread);
        let ledger = Ledger::open_read_only(&path).unwrap();
        let counts = ledger.counts().unwrap();
        assert_eq!(counts.evidence, counts.events, "no half-written call");
        assert_eq!(
            counts.evidence,
            2 + 50 - failed,
            "every success stored, no failure"
        );
        assert!(ledger.verify().unwrap().ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
