//! Soak/load (issue 8, item 4): several real proposer processes submit
//! proposals concurrently over MCP against Postgres while an operator loop
//! approves and applies them continuously. At the end:
//!
//! * zero lost or duplicated proposals: the ledger holds exactly the
//!   proposals whose submission was acknowledged, each once;
//! * zero double-applies: every applied proposal has exactly one terminal
//!   receipt in the ledger and one receipt row in the source database, and
//!   its invoice row was updated exactly once, with the proposal's values;
//! * `airlock ledger verify` passes;
//! * memory is flat (see [`assert_flat`]).
//!
//! A second, short test starts several applies at once on a database that
//! has no receipt table yet (what the soak's operator connections do at its
//! start): each must apply.
//!
//! CI runs 30 seconds. The long local run (figures in docs/reliability.md):
//!
//! ```text
//! AIRLOCK_SOAK_SECONDS=600 AIRLOCK_SOAK_PROPOSALS=0 \
//!   cargo test -p airlock-tests --test soak -- --nocapture
//! ```
//!
//! Settings (environment): `AIRLOCK_SOAK_SECONDS` (default 30),
//! `AIRLOCK_SOAK_PROPOSERS` (default 8), `AIRLOCK_SOAK_PROPOSALS` (most
//! proposals per proposer, default 1000; 0 = until the time is up),
//! `AIRLOCK_SOAK_APPLIERS` (concurrent operator connections, default 2),
//! `AIRLOCK_SOAK_BACKLOG` (how many proposals the proposers may be ahead of
//! the operator, default 500),
//! `AIRLOCK_SOAK_ROWS` (invoices to propose on; default enough for the run).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_ipc::Role;
use airlock_ipc::message::{Approve, ProposalRef, ProposalState, Request, Response};
use airlock_tests::databases::{
    Database, execute, ledger_rows, postgres_admin_url, postgres_reference, query_strings,
    reference_config_for,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{McpClient, call};
use rmcp::ServiceExt;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::mpsc;

const DB: &str = "airlock_soak";
/// The waiver tool, by the client-safe name the model sees by default.
const TOOL: &str = "billing__propose_late_fee_waiver";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        Err(_) => default,
    }
}

#[derive(Debug, Clone)]
struct Settings {
    seconds: u64,
    proposers: usize,
    /// Most proposals per proposer (`usize::MAX` = until the time is up).
    per_proposer: usize,
    appliers: usize,
    /// How far the proposers may run ahead of the operator.
    backlog: usize,
    rows: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let seconds = env_usize("AIRLOCK_SOAK_SECONDS", 30).max(5) as u64;
        let proposers = env_usize("AIRLOCK_SOAK_PROPOSERS", 8).max(1);
        let per_proposer = match env_usize("AIRLOCK_SOAK_PROPOSALS", 1000) {
            0 => usize::MAX,
            n => n,
        };
        let appliers = env_usize("AIRLOCK_SOAK_APPLIERS", 2).max(1);
        let backlog = env_usize("AIRLOCK_SOAK_BACKLOG", 500).max(1);
        // Each proposal takes its own invoice, so applies never conflict.
        let needed = proposers
            .saturating_mul(per_proposer)
            .min(seconds as usize * 300);
        let rows = env_usize("AIRLOCK_SOAK_ROWS", needed.max(10_000));
        Settings {
            seconds,
            proposers,
            per_proposer,
            appliers,
            backlog,
            rows,
        }
    }
}

fn invoice_id(n: usize) -> String {
    format!("INV-S-{n:06}")
}

fn reason_for(invoice: &str) -> String {
    format!("soak waiver {invoice}")
}

/// The reference database plus `rows` overdue invoices of tenant acme, and
/// a trigger that counts every UPDATE of every invoice row.
fn prepare_database(rows: usize) -> Database {
    let db = postgres_reference(DB);
    execute(
        &db,
        &format!(
            "INSERT INTO invoices (id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at)
             SELECT 'INV-S-' || lpad(g::text, 6, '0'), 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z'
             FROM generate_series(1, {rows}) AS g;
             CREATE TABLE invoice_updates (id text PRIMARY KEY, n integer NOT NULL);
             CREATE FUNCTION count_invoice_update() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
               BEGIN
                 -- Named in full: the writer's session pins search_path to pg_catalog, pg_temp.
                 INSERT INTO public.invoice_updates VALUES (NEW.id, 1) ON CONFLICT (id) DO UPDATE SET n = invoice_updates.n + 1;
                 RETURN NEW;
               END $$;
             CREATE TRIGGER invoice_updated AFTER UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION count_invoice_update();
             ANALYZE invoices;"
        ),
    );
    db
}

/// Drops the soak database when the test ends, however it ends.
struct DropDatabase;

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut c = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{DB}\" WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await
                    .map(drop)
                })
        })
        .join();
    }
}

/// A stdio proposer process and its pid (for RSS sampling).
async fn spawn_proposer(exec: &ExecutorProcess, env: &[(&str, &str)]) -> (McpClient, u32) {
    let cmd = tokio::process::Command::new(airlock_tests::bin("airlock-proposer")).configure(|c| {
        c.arg("serve")
            .arg("--config")
            .arg(&exec.config_path)
            .arg("--socket-dir")
            .arg(&exec.socket_dir);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            c.env(k, v);
        }
        c.stderr(Stdio::inherit());
    });
    let transport = TokioChildProcess::new(cmd).expect("spawn airlock-proposer");
    let pid = transport.id().expect("the proposer's pid");
    let client = ().serve(transport).await.expect("MCP initialize");
    (client, pid)
}

/// VmRSS of `pid` in KiB (0 if it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One RSS sample: seconds since start, executor KiB, each proposer's KiB.
#[derive(Debug, Clone)]
struct Sample {
    at: f64,
    executor: u64,
    proposers: Vec<u64>,
}

/// Memory is flat when, for every process, the highest RSS of the last
/// third of the load phase is at most 1.5× the highest RSS of its first
/// third, after a warm-up (the first 20% of the samples) in which pools,
/// caches and allocator arenas fill. Maxima, not single samples, so one
/// sample caught mid-burst does not decide; 1.5× because a leak in a soak
/// grows with the work done (the last third does as much work as the first
/// and would add as much again), while a flat process only wobbles by
/// allocator noise of a few percent. The long local run (10 minutes) is
/// where a slow leak shows; CI catches a fast one.
fn assert_flat(samples: &[Sample], proposers: usize) -> Vec<String> {
    let warm = samples.len() / 5;
    let steady = &samples[warm..];
    assert!(steady.len() >= 6, "too few RSS samples: {}", samples.len());
    let third = steady.len() / 3;
    let (first, last) = (&steady[..third], &steady[steady.len() - third..]);
    let mut lines = Vec::new();
    let mut check = |name: String, get: &dyn Fn(&Sample) -> u64| {
        let first_max = first.iter().map(get).max().unwrap_or(0);
        let last_max = last.iter().map(get).max().unwrap_or(0);
        let peak = samples.iter().map(get).max().unwrap_or(0);
        let ratio = last_max as f64 / first_max.max(1) as f64;
        lines.push(format!(
            "{name:<12} first-third max {:>7.1} MiB, last-third max {:>7.1} MiB (×{ratio:.3}), peak {:>7.1} MiB",
            first_max as f64 / 1024.0,
            last_max as f64 / 1024.0,
            peak as f64 / 1024.0
        ));
        assert!(first_max > 0, "{name}: no RSS was sampled");
        assert!(
            ratio <= 1.5,
            "{name}: memory grew from {first_max} KiB to {last_max} KiB (×{ratio:.2}) over the soak"
        );
    };
    check("executor".into(), &|s: &Sample| s.executor);
    for p in 0..proposers {
        check(format!("proposer {p}"), &|s: &Sample| s.proposers[p]);
    }
    lines
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// What one proposer task did.
#[derive(Debug, Default)]
struct ProposerReport {
    /// (invoice, proposal id) of acknowledged submissions.
    recorded: Vec<(String, String)>,
    /// (invoice, envelope) of failed submissions.
    failed: Vec<(String, Value)>,
    latencies: Vec<Duration>,
    ran_out_of_rows: bool,
}

/// What one operator task did.
#[derive(Debug, Default)]
struct OperatorReport {
    applied: Vec<String>,
    failed: Vec<(String, String)>,
    approve_latencies: Vec<Duration>,
    apply_latencies: Vec<Duration>,
    first_apply: Option<Instant>,
    last_apply: Option<Instant>,
}

async fn operator(
    exec_socket: std::path::PathBuf,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<String>>>,
) -> OperatorReport {
    let mut report = OperatorReport::default();
    let mut op = airlock_ipc::client::Client::connect(
        &exec_socket,
        Role::Operator,
        "soak-operator",
        Duration::from_secs(30),
    )
    .await
    .expect("operator connects");
    loop {
        let next = queue.lock().await.recv().await;
        let Some(id) = next else { break };
        let t = Instant::now();
        match op
            .call(Request::Approve(Approve {
                proposal_id: id.clone(),
                note: None,
            }))
            .await
        {
            Ok(Response::Decision(d)) if d.state == ProposalState::Approved => {}
            other => {
                report.failed.push((id, format!("approve: {other:?}")));
                continue;
            }
        }
        report.approve_latencies.push(t.elapsed());
        let t = Instant::now();
        match op
            .call(Request::Apply(ProposalRef {
                proposal_id: id.clone(),
            }))
            .await
        {
            Ok(Response::Writeback(w)) if w.status == "applied" => {
                report.apply_latencies.push(t.elapsed());
                let now = Instant::now();
                report.first_apply.get_or_insert(now);
                report.last_apply = Some(now);
                report.applied.push(id);
            }
            other => report.failed.push((id, format!("apply: {other:?}"))),
        }
    }
    report
}

#[test]
fn soak_proposers_and_operator_lose_nothing_and_apply_once() {
    let s = Settings::from_env();
    eprintln!("SOAK settings: {s:?}");
    let _drop = DropDatabase;
    let setup = Instant::now();
    let db = prepare_database(s.rows);
    let mut config = reference_config_for(&db);
    // The soak sends far more than a proposer's default intake limits allow.
    airlock_tests::proposals::capacity_limits(&mut config);
    let mut exec = ExecutorProcess::start(
        &config,
        &[
            ("APP_TENANT_ID", "acme"),
            ("APP_WRITE_URL", db.write_url.as_str()),
        ],
    );
    let proposer_env = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent_17"),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let proposers: Vec<(Arc<McpClient>, u32)> = (0..s.proposers)
        .map(|_| {
            let (c, pid) = rt.block_on(spawn_proposer(&exec, &proposer_env));
            (Arc::new(c), pid)
        })
        .collect();
    eprintln!(
        "SOAK setup: {} invoices, executor and {} proposers up in {:.1?}",
        s.rows,
        s.proposers,
        setup.elapsed()
    );

    // RSS sampling, every 1/120 of the run (at least every 250 ms).
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let start = Instant::now();
    let sampler = {
        let stop = Arc::clone(&stop_sampling);
        let samples = Arc::clone(&samples);
        let exec_pid = exec.pid();
        let pids: Vec<u32> = proposers.iter().map(|(_, p)| *p).collect();
        let every = Duration::from_millis((s.seconds * 1000 / 120).max(250));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                samples.lock().unwrap().push(Sample {
                    at: start.elapsed().as_secs_f64(),
                    executor: rss_kib(exec_pid),
                    proposers: pids.iter().map(|p| rss_kib(*p)).collect(),
                });
                std::thread::sleep(every);
            }
        })
    };

    // The operator: approves and applies whatever was proposed, continuously.
    // A bounded backlog: proposers run ahead of the operator by at most
    // this many proposals, so the final drain (and CI time) stays bounded.
    let (tx, rx) = mpsc::channel::<String>(s.backlog);
    let queue = Arc::new(tokio::sync::Mutex::new(rx));
    let operators: Vec<_> = (0..s.appliers)
        .map(|_| rt.spawn(operator(exec.operator_socket(), Arc::clone(&queue))))
        .collect();

    // The proposers: each takes every n-th invoice, one proposal per invoice.
    let deadline = start + Duration::from_secs(s.seconds);
    let tasks: Vec<_> = proposers
        .iter()
        .enumerate()
        .map(|(p, (client, _))| {
            let client = Arc::clone(client);
            let tx = tx.clone();
            let s = s.clone();
            rt.spawn(async move {
                let mut report = ProposerReport::default();
                let mut n = p + 1;
                while Instant::now() < deadline && report.recorded.len() < s.per_proposer {
                    if n > s.rows {
                        report.ran_out_of_rows = true;
                        break;
                    }
                    let invoice = invoice_id(n);
                    n += s.proposers;
                    let t = Instant::now();
                    let (_, e) = call(
                        &client,
                        TOOL,
                        json!({"invoice_id": invoice, "reason": reason_for(&invoice)}),
                    )
                    .await;
                    report.latencies.push(t.elapsed());
                    match e["proposal"]["id"].as_str() {
                        Some(id) if e["ok"] == true => {
                            report.recorded.push((invoice, id.to_owned()));
                            let _ = tx.send(id.to_owned()).await;
                        }
                        _ => report.failed.push((invoice, e)),
                    }
                }
                report
            })
        })
        .collect();
    drop(tx);
    let reports: Vec<ProposerReport> = tasks.into_iter().map(|t| rt.block_on(t).unwrap()).collect();
    let submit_secs = start.elapsed().as_secs_f64();
    // Memory is judged over the load phase.
    stop_sampling.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let samples = samples.lock().unwrap().clone();

    // Let the operator finish the backlog (bounded).
    let drain = Instant::now();
    let ops: Vec<OperatorReport> = operators
        .into_iter()
        .map(|o| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(120), o)
                    .await
                    .expect("the operator drains the backlog within 2 minutes")
                    .unwrap()
            })
        })
        .collect();
    let drain_secs = drain.elapsed().as_secs_f64();

    // Figures.
    let recorded: Vec<(String, String)> = reports.iter().flat_map(|r| r.recorded.clone()).collect();
    let failed: Vec<&(String, Value)> = reports.iter().flat_map(|r| &r.failed).collect();
    let mut latencies: Vec<Duration> = reports.iter().flat_map(|r| r.latencies.clone()).collect();
    latencies.sort();
    let applied: Vec<String> = ops.iter().flat_map(|o| o.applied.clone()).collect();
    let op_failed: Vec<&(String, String)> = ops.iter().flat_map(|o| &o.failed).collect();
    let mut apply_lat: Vec<Duration> = ops.iter().flat_map(|o| o.apply_latencies.clone()).collect();
    apply_lat.sort();
    let mut approve_lat: Vec<Duration> = ops
        .iter()
        .flat_map(|o| o.approve_latencies.clone())
        .collect();
    approve_lat.sort();
    let first_apply = ops.iter().filter_map(|o| o.first_apply).min();
    let last_apply = ops.iter().filter_map(|o| o.last_apply).max();
    let apply_secs = match (first_apply, last_apply) {
        (Some(a), Some(b)) => (b - a).as_secs_f64().max(0.001),
        _ => 0.0,
    };
    let per_proposer: Vec<usize> = reports.iter().map(|r| r.recorded.len()).collect();
    eprintln!(
        "SOAK load: {} proposers for {submit_secs:.1} s: {} proposals acknowledged ({:.1}/s; per proposer {per_proposer:?}), {} failed; proposal tools/call p50 {:.1?} p99 {:.1?} max {:.1?}",
        s.proposers,
        recorded.len(),
        recorded.len() as f64 / submit_secs,
        failed.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    eprintln!(
        "SOAK operator: {} connections approved and applied {} ({:.1} applies/s over {apply_secs:.1} s; backlog drained in {drain_secs:.1} s after the proposers stopped), {} failed; approve p50 {:.1?} p99 {:.1?}; apply p50 {:.1?} p99 {:.1?}",
        s.appliers,
        applied.len(),
        applied.len() as f64 / apply_secs.max(0.001),
        op_failed.len(),
        percentile(&approve_lat, 0.5),
        percentile(&approve_lat, 0.99),
        percentile(&apply_lat, 0.5),
        percentile(&apply_lat, 0.99),
    );
    let step = (samples.len() / 12).max(1);
    for smp in samples.iter().step_by(step) {
        eprintln!(
            "SOAK rss t={:>6.1}s executor {:>7.1} MiB, proposers {:?} MiB",
            smp.at,
            smp.executor as f64 / 1024.0,
            smp.proposers
                .iter()
                .map(|k| (*k as f64 / 102.4).round() / 10.0)
                .collect::<Vec<_>>()
        );
    }

    assert!(!recorded.is_empty(), "the soak made no proposals");
    // Every acknowledged proposal went to the operator; each was applied or failed.
    assert_eq!(applied.len() + op_failed.len(), recorded.len());

    // Zero lost, zero duplicated: the ledger holds exactly the acknowledged proposals.
    let store = exec.store.clone();
    let ledger: Vec<(String, String)> =
        ledger_rows(&store, "SELECT proposal_id, object_id FROM proposals")
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect();
    assert_eq!(
        ledger.len(),
        recorded.len(),
        "ledger proposal count equals acknowledged submissions"
    );
    let ledger_map: BTreeMap<String, String> = ledger.iter().cloned().collect();
    let recorded_map: BTreeMap<String, String> = recorded
        .iter()
        .map(|(inv, id)| (id.clone(), inv.clone()))
        .collect();
    assert_eq!(ledger_map.len(), ledger.len(), "no proposal id twice");
    assert_eq!(
        ledger_map, recorded_map,
        "the same proposals, for the same invoices"
    );
    let objects: BTreeSet<&String> = ledger.iter().map(|(_, o)| o).collect();
    assert_eq!(
        objects.len(),
        ledger.len(),
        "no invoice proposed twice (no duplicate)"
    );

    // Zero double-applies: one terminal receipt per applied proposal, in the
    // ledger and in the source, and exactly one UPDATE of each applied row.
    let ledger_receipts = ledger_rows(
        &store,
        "SELECT proposal_id, status FROM receipts ORDER BY proposal_id",
    );
    let applied_set: BTreeSet<String> = applied.iter().cloned().collect();
    let failed_set: BTreeSet<String> = op_failed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(applied_set.len(), applied.len());
    assert_eq!(
        ledger_receipts.len(),
        applied.len() + failed_set.len(),
        "one ledger receipt per apply"
    );
    for r in &ledger_receipts {
        let id = r[0].as_deref().unwrap();
        if applied_set.contains(id) {
            assert_eq!(r[1].as_deref(), Some("applied"), "{r:?}");
        } else {
            assert!(failed_set.contains(id), "a receipt for no apply: {r:?}");
            assert_eq!(r[1].as_deref(), Some("failed"), "{r:?}");
        }
    }
    let source_receipts = query_strings(
        &db,
        "SELECT proposal_id, status, idempotency_key, job_id, result_hash, CAST(completed_at IS NOT NULL AS TEXT) FROM synapsor_writeback_receipts",
    );
    assert_eq!(
        source_receipts.len(),
        applied.len(),
        "source receipts equal applies"
    );
    for r in &source_receipts {
        let id = r[0].as_deref().unwrap();
        assert!(
            applied_set.contains(id),
            "receipt for an unapplied proposal: {r:?}"
        );
        let object = ledger_map.get(id).map(String::as_str).unwrap_or_default();
        assert_eq!(r[1].as_deref(), Some("applied"), "{r:?}");
        assert_eq!(
            r[2].as_deref(),
            Some(format!("{id}:{object}").as_str()),
            "{r:?}"
        );
        assert!(r[3].as_deref().unwrap().starts_with("wbj_"), "{r:?}");
        assert!(r[4].as_deref().unwrap().starts_with("sha256:"), "{r:?}");
        assert_eq!(r[5].as_deref(), Some("true"), "{r:?}");
    }
    let rows = query_strings(
        &db,
        "SELECT CAST(count(*) AS TEXT),
                CAST(count(*) FILTER (WHERE i.late_fee_cents = 0 AND i.waiver_reason = 'soak waiver ' || i.id) AS TEXT),
                CAST(count(*) FILTER (WHERE u.n = 1) AS TEXT)
         FROM invoices i JOIN synapsor_writeback_receipts r ON r.idempotency_key = r.proposal_id || ':' || i.id
         LEFT JOIN invoice_updates u ON u.id = i.id",
    );
    let n = applied.len().to_string();
    assert_eq!(
        rows[0],
        vec![Some(n.clone()), Some(n.clone()), Some(n.clone())],
        "every applied row holds its proposal's values and was updated exactly once"
    );
    let totals = query_strings(
        &db,
        "SELECT CAST(COALESCE(sum(n), 0) AS TEXT), CAST(count(*) AS TEXT) FROM invoice_updates",
    );
    assert_eq!(
        totals[0],
        vec![Some(n.clone()), Some(n.clone())],
        "no other row was updated, none twice"
    );
    let untouched = query_strings(
        &db,
        "SELECT CAST(count(*) AS TEXT) FROM invoices WHERE id LIKE 'INV-S-%' AND late_fee_cents = 5500 AND waiver_reason IS NULL",
    );
    assert_eq!(
        untouched[0][0].as_deref(),
        Some((s.rows - applied.len()).to_string().as_str()),
        "invoices not applied are untouched"
    );

    // The ledger verifies, before and after a clean stop.
    let stats = rt.block_on(async {
        let mut op = exec.client(Role::Operator).await;
        match op
            .call(Request::Stats(airlock_ipc::message::Empty {}))
            .await
            .unwrap()
        {
            Response::Stats(st) => st,
            other => panic!("{other:?}"),
        }
    });
    assert!(exec.stop().success());
    let t = Instant::now();
    let out = airlock_tests::airlock(&[
        "ledger",
        "verify",
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]);
    let report = airlock_tests::stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"].as_u64(), Some(stats.events));
    eprintln!(
        "SOAK ledger: {} events ({} evidence, proposals by state {:?}), verified in {:.1?}; {} source receipts; {} rows updated once each",
        stats.events,
        stats.evidence,
        stats.proposals,
        t.elapsed(),
        source_receipts.len(),
        n
    );

    // Memory is flat.
    for line in assert_flat(&samples, s.proposers) {
        eprintln!("SOAK memory {line}");
    }
    // Nothing failed: every submission was acknowledged, every apply applied.
    assert!(
        failed.is_empty(),
        "failed submissions: {:#?}",
        &failed[..failed.len().min(5)]
    );
    assert!(
        op_failed.is_empty(),
        "failed approvals/applies: {:#?}",
        &op_failed[..op_failed.len().min(5)]
    );

    if reports.iter().any(|r| r.ran_out_of_rows) {
        eprintln!("SOAK note: some proposers ran out of invoices; raise AIRLOCK_SOAK_ROWS");
    }
    for (c, _) in proposers {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = rt.block_on(c.cancel());
        }
    }
}

/// The first applies on a database that has no receipt table yet, all at
/// once (what the soak's operator connections do at its start): each must
/// apply. Five rounds, each on a fresh receipt table (dropped by the test,
/// executor restarted so it looks again).
#[test]
fn concurrent_first_applies_on_a_fresh_database_all_apply() {
    const DB: &str = "airlock_soak_first_applies";
    const ROUNDS: usize = 5;
    const AT_ONCE: usize = 8;
    struct Drop2;
    impl Drop for Drop2 {
        fn drop(&mut self) {
            let _ = std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let mut c = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{DB}\" WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await
                        .map(drop)
                    })
            })
            .join();
        }
    }
    let _drop = Drop2;
    let db = postgres_reference(DB);
    execute(
        &db,
        &format!(
            "INSERT INTO invoices (id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at)
             SELECT 'INV-S-' || lpad(g::text, 6, '0'), 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z'
             FROM generate_series(1, {}) AS g",
            ROUNDS * AT_ONCE
        ),
    );
    let exec_env = [
        ("APP_TENANT_ID", "acme"),
        ("APP_WRITE_URL", db.write_url.as_str()),
    ];
    let mut exec = ExecutorProcess::start(&reference_config_for(&db), &exec_env);
    let proposer_env = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent_17"),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let mut failures = Vec::new();
    let mut retry = Vec::new();
    for round in 0..ROUNDS {
        if round > 0 {
            execute(&db, "DROP TABLE synapsor_writeback_receipts");
            assert!(exec.stop().success());
            exec.restart(&exec_env);
        }
        let ids: Vec<String> = rt.block_on(async {
            let (client, _) = spawn_proposer(&exec, &proposer_env).await;
            let mut ids = Vec::new();
            for i in 0..AT_ONCE {
                let invoice = invoice_id(round * AT_ONCE + i + 1);
                let (_, e) = call(
                    &client,
                    TOOL,
                    json!({"invoice_id": invoice, "reason": reason_for(&invoice)}),
                )
                .await;
                ids.push(e["proposal"]["id"].as_str().unwrap().to_owned());
            }
            client.cancel().await.unwrap();
            let mut op = exec.client(Role::Operator).await;
            for id in &ids {
                let r = op
                    .call(Request::Approve(Approve {
                        proposal_id: id.clone(),
                        note: None,
                    }))
                    .await;
                assert!(matches!(r, Ok(Response::Decision(_))), "{r:?}");
            }
            ids
        });
        let outcomes: Vec<(String, String)> = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for id in ids {
                let socket = exec.operator_socket();
                set.spawn(async move {
                    let mut op = airlock_ipc::client::Client::connect(
                        &socket,
                        Role::Operator,
                        "first-applies",
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
                    let r = op
                        .call(Request::Apply(ProposalRef {
                            proposal_id: id.clone(),
                        }))
                        .await;
                    let outcome = match r {
                        Ok(Response::Writeback(w)) => match w.receipt["safe_error_code"].as_str() {
                            Some(code) => {
                                format!("{} {code}: {}", w.status, w.detail.unwrap_or_default())
                            }
                            None => w.status,
                        },
                        other => format!("{other:?}"),
                    };
                    (id, outcome)
                });
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r.unwrap());
            }
            out
        });
        for (id, outcome) in outcomes {
            if outcome != "applied" {
                failures.push(format!("round {round}: {id}: {outcome}"));
                retry.push(id);
            }
        }
    }
    // A failed apply changed nothing and stays retryable: applying again works.
    rt.block_on(async {
        let mut op = exec.client(Role::Operator).await;
        for id in &retry {
            let r = op
                .call(Request::Apply(ProposalRef {
                    proposal_id: id.clone(),
                }))
                .await;
            assert!(
                matches!(&r, Ok(Response::Writeback(w)) if w.status == "applied"),
                "retrying {id}: {r:?}"
            );
        }
    });
    let once = query_strings(
        &db,
        "SELECT CAST(count(*) AS TEXT) FROM invoices WHERE id LIKE 'INV-S-%' AND late_fee_cents = 0",
    );
    assert_eq!(
        once[0][0].as_deref(),
        Some((ROUNDS * AT_ONCE).to_string().as_str()),
        "after retries every proposal is applied"
    );
    let receipts = query_strings(
        &db,
        "SELECT CAST(count(*) AS TEXT) FROM synapsor_writeback_receipts",
    );
    eprintln!(
        "SOAK first applies: {ROUNDS} rounds of {AT_ONCE} concurrent first applies; {} failed (each applied when retried): {failures:#?}; receipts in the last round: {:?}",
        failures.len(),
        receipts[0][0]
    );
    assert!(
        failures.is_empty(),
        "concurrent first applies must all apply (two connections race to create the receipt table): {failures:#?}"
    );
}
