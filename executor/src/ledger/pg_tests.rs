//! The ledger on PostgreSQL (the server at `AIRLOCK_TEST_POSTGRES_URL`,
//! which `tests/run.sh` starts): the same story as on SQLite, the schema
//! exactly the catalog, append-only enforced by the server, and one linear
//! chain from several connections at once — with the chain lock, and (to
//! show the test can fail) not without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_policy::explore::budget::{self, Outcome, Refusal};
use airlock_policy::explore::{Charge, ExploreLimits};

use super::db::{Db, Pg};
use super::tests::{actor, story_on};
use super::*;

fn url() -> String {
    std::env::var("AIRLOCK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh ledger schema, dropped when the fixture is.
struct Schema(String);

impl Schema {
    fn new(name: &str) -> Schema {
        let s = Schema(format!("t_ledger_{}_{name}", std::process::id()));
        s.admin(&format!("DROP SCHEMA IF EXISTS {} CASCADE", s.0));
        s
    }

    /// Run `sql` as the test's superuser, in the schema.
    fn admin(&self, sql: &str) {
        let db = Db::postgres(Pg::connect(&url(), &self.0, 10_000).unwrap());
        db.execute_batch(sql).unwrap();
    }

    fn try_admin(&self, sql: &str) -> Result<(), DbError> {
        let db = Db::postgres(Pg::connect(&url(), &self.0, 10_000).unwrap());
        db.execute_batch(sql)
    }

    fn migrated(name: &str) -> (Schema, Ledger) {
        let s = Schema::new(name);
        assert_eq!(
            Ledger::migrate_postgres(&url(), &s.0).unwrap(),
            (0, SCHEMA_VERSION)
        );
        let l = s.open();
        (s, l)
    }

    fn open(&self) -> Ledger {
        Ledger::open_postgres(&url(), &self.0, 10_000).unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(pg) = Pg::connect(&url(), &self.0, 10_000) {
            let _ = Db::postgres(pg)
                .execute_batch(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0));
        }
    }
}

#[test]
fn a_migrated_schema_is_exactly_the_catalog_and_migrating_again_changes_nothing() {
    let (s, l) = Schema::migrated("catalog");
    let have = pg_schema::describe(&l.conn).unwrap().join("\n") + "\n";
    if std::env::var_os("AIRLOCK_WRITE_PG_CATALOG").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ledger/pg_catalog.txt");
        std::fs::write(path, &have).unwrap();
    }
    assert_eq!(
        have,
        pg_schema::CATALOG,
        "the PostgreSQL ledger schema changed: regenerate src/ledger/pg_catalog.txt with AIRLOCK_WRITE_PG_CATALOG=1 cargo test -p airlock-executor --lib pg_tests"
    );
    assert_eq!(
        Ledger::migrate_postgres(&url(), &s.0).unwrap(),
        (SCHEMA_VERSION, SCHEMA_VERSION)
    );
    assert!(l.verify().unwrap().ok);
}

#[test]
fn an_unmigrated_schema_is_refused_with_the_command_that_fixes_it() {
    let s = Schema::new("bare");
    s.admin(&format!("CREATE SCHEMA {}", s.0));
    let err = Ledger::open_postgres(&url(), &s.0, 10_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the ledger schema {} is at version 0, not {SCHEMA_VERSION}; run `airlock ledger migrate` (with the schema owner's credentials)",
            s.0
        )
    );
}

#[test]
fn the_whole_story_runs_and_verifies_on_postgres() {
    let (s, l) = Schema::migrated("story");
    let (mut l, applied, pending) = story_on(l);
    let report = l.verify().unwrap();
    assert!(report.ok, "{report:?}");
    // evidence ×2, proposals ×2, approval, job, receipt
    assert_eq!(report.events, 7);
    let detail = l.proposal(&applied).unwrap().unwrap();
    assert_eq!(detail.summary.state, ProposalState::Applied);
    assert_eq!(detail.decisions.len(), 1);
    assert_eq!(detail.decisions[0].by.user.as_deref(), Some("ann"));
    assert_eq!(
        l.proposal(&pending).unwrap().unwrap().summary.state,
        ProposalState::PendingApproval
    );
    let listed = l.list(Some(ProposalState::PendingApproval), 10).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|p| p.proposal_id.as_str())
            .collect::<Vec<_>>(),
        [pending.as_str()]
    );
    assert_eq!(l.list(None, 10).unwrap().len(), 2);
    // A second apply answers with the receipt, not a second job.
    assert!(matches!(
        l.begin_apply(&applied, "sql_update", "k", &actor(), "sha256:cap")
            .unwrap(),
        ApplyStart::Done { .. }
    ));
    let replay = l.replay(&applied).unwrap().unwrap();
    assert_eq!((replay.jobs.len(), replay.receipts.len()), (1, 1));
    let events = l.events_since(0, 100).unwrap();
    assert_eq!(events.len(), 7);
    assert_eq!(events[2].kind, "read_recorded");
    let counts = l.counts().unwrap();
    assert_eq!((counts.events, counts.evidence), (7, 2));
    // A decision under another capability digest is refused.
    l.record_decision(&pending, false, &actor(), None, "sha256:other")
        .unwrap_err();
    let stats = l.lifecycle_stats(&Timestamp::now()).unwrap();
    assert_eq!(stats.head_seq, 7);
    // Reopened (a new connection, as another executor): the same ledger.
    drop(l);
    let again = s.open();
    assert!(again.verify().unwrap().ok);
    assert_eq!(
        again.proposal(&applied).unwrap().unwrap().summary.state,
        ProposalState::Applied
    );
}

#[test]
fn the_server_refuses_to_update_delete_or_truncate_a_record_and_verify_sees_what_the_owner_forces()
{
    let (s, l) = Schema::migrated("append");
    let (l, applied, _) = story_on(l);
    for sql in [
        "UPDATE events SET kind = 'approved' WHERE seq = 1",
        "DELETE FROM receipts",
        "TRUNCATE receipts CASCADE",
        "UPDATE decisions SET note = 'forged'",
    ] {
        let err = s.try_admin(sql).unwrap_err();
        assert!(
            err.to_string().contains("the ledger is append-only"),
            "{sql}: {err}"
        );
    }
    assert!(l.verify().unwrap().ok);
    // The schema's owner can lift the rule; the chain then tells.
    s.admin(&format!(
        "ALTER TABLE decisions DISABLE TRIGGER USER; UPDATE decisions SET note = 'forged' WHERE proposal_id = '{applied}'"
    ));
    let report = l.verify().unwrap();
    assert!(!report.ok);
    assert!(
        report
            .first_break
            .as_ref()
            .unwrap()
            .1
            .contains("does not match its event"),
        "{report:?}"
    );
    // …and the disabled trigger is itself a schema change.
    s.admin("UPDATE decisions SET note = 'ok'; ALTER TABLE decisions ENABLE TRIGGER USER");
    assert!(l.verify().unwrap().ok);
}

#[test]
fn a_changed_schema_fails_verify() {
    let (s, l) = Schema::migrated("drift");
    s.admin("CREATE INDEX extra ON events(kind)");
    let report = l.verify().unwrap();
    assert!(!report.ok);
    assert_eq!(
        report.first_break.unwrap().1,
        "the ledger has an extra index CREATE INDEX extra ON events USING btree (kind) (the schema was changed)"
    );
    s.admin("DROP INDEX extra; DROP TRIGGER receipts_append_only ON receipts");
    let report = l.verify().unwrap();
    assert!(!report.ok);
    assert!(
        report.first_break.unwrap().1.starts_with(
            "the ledger's trigger CREATE TRIGGER receipts_append_only BEFORE DELETE OR UPDATE ON receipts"
        ),
    );
}

/// `threads` connections each record `per` pieces of evidence at once.
fn race(s: &Schema, threads: usize, per: usize, lock: bool) -> Vec<Result<(), LedgerError>> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut l = s.open();
            l.conn.set_chain_lock_for_test(lock);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut out = Vec::new();
                for _ in 0..per {
                    let r = (|| {
                        l.begin_batch(Durability::Now)?;
                        let done = l.as_one_call(record_one_evidence);
                        match done {
                            Ok(_) => l.commit_batch(),
                            Err(e) => {
                                let _ = l.conn.rollback();
                                Err(e)
                            }
                        }
                    })();
                    out.push(r);
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

#[test]
fn several_executors_append_one_linear_chain_and_without_the_lock_they_collide() {
    let (s, l) = Schema::migrated("fleet");
    let results = race(&s, 4, 40, true);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let report = l.verify().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 160);
    // Without the chain lock the same writers pick the same next seq: the
    // server refuses the duplicates (the chain never forks), but writes fail.
    let results = race(&s, 4, 40, false);
    assert!(
        results.iter().any(Result::is_err),
        "four unlocked writers never collided"
    );
    assert!(l.verify().unwrap().ok);
}

#[test]
fn explore_budgets_are_kept_in_the_postgres_ledger() {
    let (s, mut l) = Schema::migrated("explore");
    let limits = ExploreLimits {
        max_queries_per_rolling_24_hours: 2,
        ..ExploreLimits::default()
    };
    let a = actor();
    let scope = ExploreScope {
        tenant_id: "acme",
        principal: "ann",
        actor: &a,
    };
    let charge = |variant: &str| Charge {
        resource: "tickets".into(),
        variant: variant.into(),
        cohort: "sha256:cohort".into(),
        aggregate: true,
        cohort_protected: true,
        total: false,
        max_cells: 10,
    };
    let plan = json!({"kind": "aggregate", "resource": "tickets"});
    let ExploreReserved::Admitted { reservation_id, .. } = l
        .explore_reserve(scope, &charge("a"), &plan, &limits)
        .unwrap()
    else {
        panic!("admitted")
    };
    let committed = l
        .explore_commit(
            &a,
            &reservation_id,
            &Outcome {
                cells: 3,
                suppressed_groups: 1,
                complete: true,
            },
            &limits,
        )
        .unwrap();
    assert!(
        matches!(committed, ExploreCommitted::Released { .. }),
        "{committed:?}"
    );
    let ExploreReserved::Admitted { reservation_id, .. } = l
        .explore_reserve(scope, &charge("b"), &plan, &limits)
        .unwrap()
    else {
        panic!("admitted")
    };
    assert!(
        l.explore_release(&a, &reservation_id, "source_unavailable")
            .unwrap()
    );
    // Another connection (another executor) sees the budget spent.
    let mut other = s.open();
    assert!(matches!(
        other
            .explore_reserve(scope, &charge("c"), &plan, &limits)
            .unwrap(),
        ExploreReserved::Refused(Refusal::Exhausted {
            budget: budget::Budget::Queries,
            ..
        })
    ));
    let audit = other.explore_audit(10, Some("acme")).unwrap();
    assert_eq!(
        audit.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>(),
        ["refused", "failed", "suppressed"]
    );
    assert!(other.verify().unwrap().ok);
}

#[test]
fn an_apply_lease_keeps_a_second_executor_out_until_it_expires_and_fences_the_first() {
    let (s, l) = Schema::migrated("lease");
    let (mut first, _, pending) = story_on(l);
    first
        .record_decision(&pending, true, &actor(), None, "sha256:cap")
        .unwrap();
    let lease = |holder: &str| ApplyLease {
        holder: holder.into(),
        ms: 300,
    };
    first.set_apply_lease(Some(lease("host-a/1/aaaa")));
    let mut second = s.open();
    second.set_apply_lease(Some(lease("host-b/2/bbbb")));

    let ApplyStart::Run {
        job_id,
        fence,
        resumed,
        ..
    } = first
        .begin_apply(&pending, "sql_update", "k2", &actor(), "sha256:cap")
        .unwrap()
    else {
        panic!("runs")
    };
    assert_eq!((fence, resumed), (Some(1), false));
    // While the lease runs, the other executor starts nothing.
    let held = second
        .begin_apply(&pending, "sql_update", "k2", &actor(), "sha256:cap")
        .unwrap_err();
    assert!(
        matches!(&held, LedgerError::Leased { holder, .. } if holder == "host-a/1/aaaa"),
        "{held:?}"
    );
    assert!(second.expired_leases(10).unwrap().is_empty());
    // The first executor goes quiet; its lease runs out and is taken over.
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(
        second.expired_leases(10).unwrap(),
        std::slice::from_ref(&pending)
    );
    let ApplyStart::Run {
        job_id: resumed_job,
        fence: taken,
        resumed,
        ..
    } = second
        .begin_apply(&pending, "sql_update", "k2", &actor(), "sha256:cap")
        .unwrap()
    else {
        panic!("resumes")
    };
    assert_eq!(
        (resumed_job.as_str(), taken, resumed),
        (job_id.as_str(), Some(2), true)
    );
    let receipt = json!({"receipt_hash": "sha256:22", "status": "applied"});
    let late = first
        .record_receipt(NewReceipt {
            job_id: &job_id,
            proposal_id: &pending,
            status: "applied",
            receipt: &receipt,
            detail: None,
            fence,
        })
        .unwrap_err();
    assert!(matches!(late, LedgerError::Fenced { .. }), "{late:?}");
    second
        .record_receipt(NewReceipt {
            job_id: &job_id,
            proposal_id: &pending,
            status: "already_applied",
            receipt: &receipt,
            detail: None,
            fence: taken,
        })
        .unwrap();
    assert!(second.expired_leases(10).unwrap().is_empty());
    let replay = second.replay(&pending).unwrap().unwrap();
    assert_eq!((replay.jobs.len(), replay.receipts.len()), (1, 1));
    assert_eq!(replay.proposal.summary.state, ProposalState::Applied);
    assert!(second.verify().unwrap().ok);
}

#[test]
fn a_writer_that_times_out_on_the_chain_lock_fails_that_batch_and_recovers() {
    let (s, holder) = Schema::migrated("lock_timeout");
    let mut waiter = Ledger::open_postgres(&url(), &s.0, 200).unwrap();
    // Another executor holds the chain lock (a batch in progress).
    holder.conn.begin().unwrap();
    let started = std::time::Instant::now();
    let err = waiter.begin_batch(Durability::Now).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(err.to_string().contains("lock timeout"), "{err}");
    holder.conn.commit().unwrap();
    // The failed start left nothing open: the next batch runs and commits.
    waiter.begin_batch(Durability::Now).unwrap();
    waiter.as_one_call(record_one_evidence).unwrap();
    waiter.commit_batch().unwrap();
    assert_eq!(waiter.verify().unwrap().events, 1);
}

/// A look-up (`Durability::Read`) does not wait for the chain lock another
/// executor holds, where a write does; and it cannot write: its transaction
/// is read-only, so a mislabelled write fails instead of bypassing the lock.
#[test]
fn a_look_up_runs_beside_a_held_chain_lock_and_cannot_write() {
    let (s, mut holder) = Schema::migrated("read_batch");
    holder.begin_batch(Durability::Now).unwrap();
    let (id, _) = holder.as_one_call(record_one_evidence).unwrap();
    holder.commit_batch().unwrap();
    let mut reader = Ledger::open_postgres(&url(), &s.0, 200).unwrap();
    // Another executor is in the middle of a batch: it holds the chain lock.
    holder.conn.begin().unwrap();
    let started = std::time::Instant::now();
    reader.begin_batch(Durability::Read).unwrap();
    let seen = reader.as_one_call(|l| l.evidence(&id)).unwrap();
    reader.commit_batch().unwrap();
    assert!(seen.is_some(), "the look-up sees the committed evidence");
    assert!(started.elapsed() < std::time::Duration::from_millis(150));
    // The same look-up as a writing batch waits for the lock (and here
    // times out after 200 ms): the lock is really held.
    let err = reader.begin_batch(Durability::Deferred).unwrap_err();
    assert!(err.to_string().contains("lock timeout"), "{err}");
    // A write inside a look-up batch fails and leaves nothing.
    reader.begin_batch(Durability::Read).unwrap();
    let write = reader.as_one_call(record_one_evidence);
    assert!(write.is_err(), "a read-only batch refused the append");
    let _ = reader.commit_batch();
    holder.conn.commit().unwrap();
    assert_eq!(reader.verify().unwrap().events, 1);
}

/// One minimal evidence record (the chain tests only need an append).
fn record_one_evidence(l: &mut Ledger) -> Result<(String, String), LedgerError> {
    l.record_evidence(NewEvidence {
        capability: "c",
        tenant_id: "acme",
        principal: "p",
        query_fingerprint: "sha256:00",
        parameters: &[],
        rows: &[],
        actor: &actor(),
    })
}
