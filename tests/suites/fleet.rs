//! Issue 18's proof — three executors (separate processes, separate socket
//! directories) on one PostgreSQL ledger, a proposer attached to each:
//! 1,000 proposals, approved through the different executors' operator
//! sockets, applied concurrently through all three, while one executor is
//! killed with SIGKILL mid-apply (after the source committed, before its
//! receipt), twice. Afterwards every approved proposal is applied exactly
//! once in the source database, no receipt is duplicated, the ledger
//! verifies and no proposal is lost; the killed executor's applies were
//! taken over by the others when their leases ran out, and answered
//! `already_applied` by the source's receipt.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use airlock_ipc::Role;
use airlock_ipc::client::{Client, ClientError};
use airlock_ipc::message::{Approve, ProposalRef, Request, Response};
use airlock_tests::databases::{
    Database, execute, migrated_ledger_database, postgres_reference, query_strings,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::proposals::{
    WAIVER, capacity_limits, invoice_row, load, read_of, record, reference_value, submit, waiver,
};
use airlock_tests::{block_on, stdout_json};
use serde_json::json;

const N: usize = 1000;
const LEASE_MS: u64 = 3_000;

fn invoice(i: usize) -> String {
    format!("INV-F{i:04}")
}

/// Apply `id` through `client`: the outcome's status, or the refusal code.
async fn apply(client: &mut Client, id: &str) -> Result<String, String> {
    match client
        .call(Request::Apply(ProposalRef {
            proposal_id: id.to_owned(),
        }))
        .await
    {
        Ok(Response::Writeback(w)) => Ok(w.status),
        Ok(other) => Err(other.type_name().to_owned()),
        Err(ClientError::Refused(body)) => Err(body.code.as_str().to_owned()),
        Err(e) => Err(format!("transport: {e}")),
    }
}

#[test]
fn three_executors_apply_a_thousand_proposals_exactly_once_through_two_kills() {
    let db = postgres_reference("airlock_fleet_source");
    let mut rows = Vec::new();
    for i in 0..N {
        rows.push(format!(
            "('{}', 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z')",
            invoice(i)
        ));
    }
    execute(
        &db,
        &format!(
            "INSERT INTO public.invoices (id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at) VALUES {}",
            rows.join(", ")
        ),
    );

    let mut config = reference_value();
    capacity_limits(&mut config);
    config["storage"] = json!({"shared_postgres": {
        "mode": "runtime_store", "url_env": "AIRLOCK_LEDGER_DATABASE_URL",
        "schema": "fleet", "apply_lease_ms": LEASE_MS
    }});
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let ledger_url =
        migrated_ledger_database("airlock_fleet_ledger", &dir.path().join("config.json"));
    let env = |fault: Option<&str>| {
        let mut e = vec![
            ("SYNAPSOR_TENANT_ID", "acme".to_owned()),
            ("REFERENCE_POSTGRES_WRITE_URL", db.write_url.clone()),
            ("AIRLOCK_LEDGER_DATABASE_URL", ledger_url.clone()),
        ];
        if let Some(f) = fault {
            e.push(("AIRLOCK_FAULT", f.to_owned()));
        }
        e
    };
    let start = |fault: Option<&str>| {
        let e = env(fault);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ExecutorProcess::start(&config, &e)
    };
    let a = start(None);
    let b = start(None);
    let mut c = start(Some("before_ledger_receipt"));
    let executors = [&a, &b, &c];

    // 1,000 honest proposals, a third through each executor's proposer
    // socket, the three at once; then each approved through the operator
    // socket of an executor other than the one that recorded it.
    let cfg = load(&config);
    let proposer_sockets: Vec<_> = executors.iter().map(|e| e.proposer_socket()).collect();
    let ids: Vec<String> = block_on(async {
        let mut tasks = Vec::new();
        for (k, sock) in proposer_sockets.into_iter().enumerate() {
            let cfg = cfg.clone();
            tasks.push(tokio::spawn(async move {
                let mut client =
                    Client::connect(&sock, Role::Proposer, "test", Duration::from_secs(10))
                        .await
                        .unwrap();
                let mut ids = Vec::new();
                for i in (k..N).step_by(3) {
                    let id = invoice(i);
                    let args = json!({"invoice_id": id, "reason": "fleet"});
                    let ev = record(
                        &mut client,
                        read_of(&cfg, WAIVER, args, &invoice_row(&id, "acme"), "acme"),
                    )
                    .await
                    .unwrap();
                    let p = submit(
                        &mut client,
                        waiver(&cfg, &id, "acme", "fleet"),
                        Some(ev.evidence_id),
                    )
                    .await
                    .unwrap();
                    ids.push((i, p.proposal_id));
                }
                ids
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        all.into_iter().map(|(_, id)| id).collect()
    });
    let operator_sockets: Vec<_> = executors.iter().map(|e| e.operator_socket()).collect();
    block_on(async {
        let mut tasks = Vec::new();
        for (k, sock) in operator_sockets.into_iter().enumerate() {
            let mine: Vec<String> = ids.iter().skip((k + 1) % 3).step_by(3).cloned().collect();
            tasks.push(tokio::spawn(async move {
                let mut client =
                    Client::connect(&sock, Role::Operator, "test", Duration::from_secs(10))
                        .await
                        .unwrap();
                for id in mine {
                    let r = client
                        .call(Request::Approve(Approve {
                            proposal_id: id,
                            note: None,
                        }))
                        .await;
                    assert!(matches!(r, Ok(Response::Decision(_))), "{r:?}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });

    // Concurrent applies: A forwards, B backwards, C from the middle; C is
    // killed by its first apply, started again with the same fault (killed
    // again), then started without it.
    let socket = |e: &ExecutorProcess| e.operator_socket();
    let (sa, sb) = (socket(&a), socket(&b));
    let forward = ids.clone();
    let backward: Vec<String> = ids.iter().rev().cloned().collect();
    let run = |sock: std::path::PathBuf, order: Vec<String>| {
        std::thread::spawn(move || {
            block_on(async move {
                let mut client =
                    Client::connect(&sock, Role::Operator, "test", Duration::from_secs(10))
                        .await
                        .unwrap();
                let mut seen: HashMap<String, usize> = HashMap::new();
                for id in &order {
                    let outcome = apply(&mut client, id).await;
                    *seen.entry(outcome.unwrap_or_else(|e| e)).or_default() += 1;
                }
                seen
            })
        })
    };
    let ta = run(sa, forward);
    let tb = run(sb, backward);
    let mut kills = 0;
    let mut c_seen: HashMap<String, usize> = HashMap::new();
    let middle: Vec<String> = ids[N / 2..].iter().chain(&ids[..N / 2]).cloned().collect();
    let mut next = 0;
    while next < middle.len() {
        let sock = c.operator_socket();
        let outcomes = block_on(async {
            let mut client =
                Client::connect(&sock, Role::Operator, "test", Duration::from_secs(10))
                    .await
                    .unwrap();
            let mut out = Vec::new();
            while next < middle.len() {
                let o = apply(&mut client, &middle[next]).await;
                next += 1;
                let died = matches!(&o, Err(e) if e.starts_with("transport"));
                out.push(o);
                if died {
                    break;
                }
            }
            (out, next)
        });
        next = outcomes.1;
        let died = outcomes
            .0
            .last()
            .is_some_and(|o| matches!(o, Err(e) if e.starts_with("transport")));
        for o in outcomes.0 {
            *c_seen.entry(o.unwrap_or_else(|e| e)).or_default() += 1;
        }
        if died {
            kills += 1;
            // Within the dead executor's lease, another executor refuses
            // the proposal it was applying.
            if kills == 1 {
                let sock = a.operator_socket();
                let id = middle[next - 1].clone();
                let probe = block_on(async move {
                    let mut client =
                        Client::connect(&sock, Role::Operator, "test", Duration::from_secs(10))
                            .await
                            .unwrap();
                    apply(&mut client, &id).await
                });
                assert_eq!(probe, Err("busy".to_owned()), "a live lease keeps A out");
            }
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !c.is_alive(),
                "C died at its fault point: {c_seen:?}\n{}",
                c.log()
            );
            c.reap();
            let e = env((kills < 2).then_some("before_ledger_receipt"));
            let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c.restart(&e);
        }
    }
    let a_seen = ta.join().unwrap();
    let b_seen = tb.join().unwrap();
    assert_eq!(kills, 2, "C was killed twice mid-apply: {c_seen:?}");

    // The killed applies' leases run out; A or B takes them over.
    let ledger = Database {
        admin_url: ledger_url.clone(),
        ..db.clone()
    };
    let count = |sql: &str| -> usize {
        query_strings(&ledger, sql)[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    };
    let applied_sql = "SELECT COUNT(DISTINCT proposal_id)::text FROM fleet.receipts WHERE status IN ('applied', 'already_applied')";
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(applied_sql) < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        count(applied_sql),
        N,
        "every approved proposal applied; A {a_seen:?} B {b_seen:?} C {c_seen:?}"
    );
    assert_eq!(
        count("SELECT COUNT(*)::text FROM fleet.proposals"),
        N,
        "no proposal lost"
    );
    // The two killed applies had committed in the source: whoever took
    // each over (the lease sweep, or an operator's apply after the lease
    // ran out) was answered `already_applied` by the source's receipt.
    assert_eq!(
        count("SELECT COUNT(*)::text FROM fleet.receipts WHERE status = 'already_applied'"),
        2,
        "A {a_seen:?} B {b_seen:?} C {c_seen:?}"
    );
    let resumed = [a.log(), b.log(), c.log()]
        .iter()
        .map(|l| {
            l.matches("took over an apply").count()
                + l.matches("resuming an apply that was interrupted").count()
        })
        .sum::<usize>();
    assert!(resumed >= 2, "the two killed applies were resumed");

    // The source: each invoice waived once, one source receipt per proposal.
    let waived = query_strings(
        &db,
        "SELECT COUNT(*)::text FROM public.invoices WHERE id LIKE 'INV-F%' AND late_fee_cents = 0 AND waiver_reason = 'fleet'",
    );
    assert_eq!(waived[0][0].as_deref(), Some("1000"));
    let receipts = query_strings(
        &db,
        "SELECT COUNT(*)::text, COUNT(DISTINCT proposal_id)::text FROM synapsor_writeback_receipts",
    );
    assert_eq!(
        (receipts[0][0].as_deref(), receipts[0][1].as_deref()),
        (Some("1000"), Some("1000"))
    );
    // The ledger: one applied receipt per proposal, and it verifies.
    let ledger_receipts = query_strings(
        &ledger,
        "SELECT COUNT(*)::text, COUNT(DISTINCT proposal_id)::text FROM fleet.receipts WHERE status IN ('applied', 'already_applied')",
    );
    assert_eq!(
        (
            ledger_receipts[0][0].as_deref(),
            ledger_receipts[0][1].as_deref()
        ),
        (Some("1000"), Some("1000"))
    );
    let out = std::process::Command::new(airlock_tests::bin("airlock"))
        .args(["ledger", "verify", "--json", "--config"])
        .arg(dir.path().join("config.json"))
        .env("AIRLOCK_LEDGER_DATABASE_URL", &ledger_url)
        .output()
        .unwrap();
    let verified = stdout_json(&out);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(out.status.code(), Some(0));
}
