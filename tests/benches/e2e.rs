//! End-to-end benchmark: spawns the real `airlock-executor` and
//! `airlock-proposer` (and the `airlock` CLI), drives them with a real MCP
//! client (rmcp) over stdio and Streamable HTTP against the reference billing
//! database on local PostgreSQL and on SQLite, and prints every figure of
//! DESIGN.md §7 / issue 7 next to its budget, then a JSON summary.
//!
//! ```sh
//! cargo bench -p airlock-tests --bench e2e
//! AIRLOCK_BENCH_ENGINES=sqlite AIRLOCK_BENCH_READS=1000 AIRLOCK_BENCH_SKIP_GROWTH=1 \
//!     cargo bench -p airlock-tests --bench e2e        # a quick run
//! ```
//!
//! Knobs (environment variables, defaults in brackets):
//! `AIRLOCK_BENCH_ENGINES` [postgres,sqlite], `AIRLOCK_BENCH_COLD_RUNS` [30],
//! `AIRLOCK_BENCH_READS` [5000] (stdio reads, raw SELECTs, raw-client reads),
//! `AIRLOCK_BENCH_HTTP_READS` [5000], `AIRLOCK_BENCH_HTTP_SESSIONS` [8],
//! `AIRLOCK_BENCH_HTTP_CALLS` [1000] (per session), `AIRLOCK_BENCH_HTTP_RAW_READS` [300],
//! `AIRLOCK_BENCH_HTTP_RAW_CALLS` [50] (per session; the raw client reads each
//! response stream to its end, which the server delays, so these are small), `AIRLOCK_BENCH_PROPOSALS`
//! [1000], `AIRLOCK_BENCH_PROPOSERS` [4], `AIRLOCK_BENCH_PROPOSALS_EACH` [250],
//! `AIRLOCK_BENCH_APPROVES` [50], `AIRLOCK_BENCH_APPLIES` [1000],
//! `AIRLOCK_BENCH_APPLY_CLIENTS` [4], `AIRLOCK_BENCH_CLI_APPLIES` [50], `AIRLOCK_BENCH_SKIP_GROWTH` [unset],
//! `AIRLOCK_BENCH_GROWTH_EVIDENCE` [100000], `AIRLOCK_BENCH_GROWTH_PROPOSALS`
//! [10000], `AIRLOCK_BENCH_GROWTH_READS` [2000], `AIRLOCK_BENCH_GROWTH_PROPOSALS_N`
//! [300], `AIRLOCK_BENCH_GROWTH_APPROVES` [30], `AIRLOCK_BENCH_FLEET` [1,2,3:
//! executor counts on one PostgreSQL ledger; 0 skips; `AIRLOCK_BENCH_ENGINES=` runs it
//! alone], `AIRLOCK_BENCH_FLEET_APPLIES`
//! [1000], `AIRLOCK_BENCH_JSON` [unset: a file to write the JSON summary to as well].
//!
//! Only loopback traffic; every loop is bounded by these counts.

#![allow(clippy::disallowed_macros)] // a bench prints its results to stdout

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_executor::ledger::{ActorIdentity, Ledger, NewEvidence, NewProposal};
use airlock_ipc::Role;
use airlock_ipc::client::Client;
use airlock_ipc::message::{Approve, ParamMeta, ProposalRef, RecordRead, Request, Response};
use airlock_policy::Config;
use airlock_policy::config::Engine;
use airlock_policy::statement::{LookupParam, select_row};
use airlock_tests::bin;
use airlock_tests::databases::{
    Database, execute, postgres_reference, query_strings, reference_config_for, sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{HttpProposer, McpClient};
use airlock_tests::proposals::{context, invoice_row, load, waiver};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Map, Value, json};
use sqlx::Connection;

const TOKEN: &str = "bench-bearer-token-0123456789";
const READ_TOOL: &str = "billing.inspect_invoice";
const PROPOSAL_TOOL: &str = "billing.propose_late_fee_waiver";
/// The names the model calls them by (client-safe, the proposer's default).
const READ_TOOL_NAME: &str = "billing__inspect_invoice";
const PROPOSAL_TOOL_NAME: &str = "billing__propose_late_fee_waiver";
const INVOICE: &str = "INV-3001";
const TENANT: &str = "acme";
const PRINCIPAL: &str = "agent_17";
const PG_DB: &str = "airlock_bench_reference";

// ---------------------------------------------------------------- settings

#[derive(Debug, Clone)]
struct Settings {
    engines: Vec<Engine>,
    cold_runs: usize,
    reads: usize,
    http_reads: usize,
    http_raw_reads: usize,
    http_raw_calls: usize,
    http_sessions: usize,
    http_calls: usize,
    proposals: usize,
    proposers: usize,
    proposals_each: usize,
    approves: usize,
    applies: usize,
    apply_clients: usize,
    cli_applies: usize,
    insert_applies: usize,
    set_applies: usize,
    growth: bool,
    growth_evidence: usize,
    growth_proposals: usize,
    growth_reads: usize,
    growth_proposals_n: usize,
    growth_approves: usize,
    fleet: Vec<usize>,
    fleet_applies: usize,
    json_path: Option<PathBuf>,
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a non-negative integer")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let engines = std::env::var("AIRLOCK_BENCH_ENGINES")
            .unwrap_or_else(|_| "postgres,sqlite".into())
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "postgres" => Engine::Postgres,
                "sqlite" => Engine::Sqlite,
                other => {
                    panic!("AIRLOCK_BENCH_ENGINES: unknown engine `{other}` (postgres, sqlite)")
                }
            })
            .collect();
        Settings {
            engines,
            cold_runs: env_usize("AIRLOCK_BENCH_COLD_RUNS", 30).max(1),
            reads: env_usize("AIRLOCK_BENCH_READS", 5000).max(1),
            http_reads: env_usize("AIRLOCK_BENCH_HTTP_READS", 5000).max(1),
            http_raw_reads: env_usize("AIRLOCK_BENCH_HTTP_RAW_READS", 300).max(1),
            http_raw_calls: env_usize("AIRLOCK_BENCH_HTTP_RAW_CALLS", 50).max(1),
            http_sessions: env_usize("AIRLOCK_BENCH_HTTP_SESSIONS", 8).max(1),
            http_calls: env_usize("AIRLOCK_BENCH_HTTP_CALLS", 1000).max(1),
            proposals: env_usize("AIRLOCK_BENCH_PROPOSALS", 1000).max(1),
            proposers: env_usize("AIRLOCK_BENCH_PROPOSERS", 4).max(1),
            proposals_each: env_usize("AIRLOCK_BENCH_PROPOSALS_EACH", 250).max(1),
            approves: env_usize("AIRLOCK_BENCH_APPROVES", 50).max(1),
            applies: env_usize("AIRLOCK_BENCH_APPLIES", 1000).max(1),
            apply_clients: env_usize("AIRLOCK_BENCH_APPLY_CLIENTS", 4).max(1),
            cli_applies: env_usize("AIRLOCK_BENCH_CLI_APPLIES", 50).max(1),
            insert_applies: env_usize("AIRLOCK_BENCH_INSERT_APPLIES", 500).max(1),
            set_applies: env_usize("AIRLOCK_BENCH_SET_APPLIES", 10).max(1),
            growth: std::env::var_os("AIRLOCK_BENCH_SKIP_GROWTH").is_none(),
            growth_evidence: env_usize("AIRLOCK_BENCH_GROWTH_EVIDENCE", 100_000),
            growth_proposals: env_usize("AIRLOCK_BENCH_GROWTH_PROPOSALS", 10_000),
            growth_reads: env_usize("AIRLOCK_BENCH_GROWTH_READS", 2000).max(1),
            growth_proposals_n: env_usize("AIRLOCK_BENCH_GROWTH_PROPOSALS_N", 300).max(1),
            growth_approves: env_usize("AIRLOCK_BENCH_GROWTH_APPROVES", 30).max(1),
            fleet: std::env::var("AIRLOCK_BENCH_FLEET")
                .unwrap_or_else(|_| "1,2,3".into())
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "0")
                .map(|s| {
                    s.parse()
                        .unwrap_or_else(|_| panic!("AIRLOCK_BENCH_FLEET: `{s}` is not a count"))
                })
                .collect(),
            fleet_applies: env_usize("AIRLOCK_BENCH_FLEET_APPLIES", 1000).max(1),
            json_path: std::env::var_os("AIRLOCK_BENCH_JSON").map(PathBuf::from),
        }
    }
}

// ------------------------------------------------------------- statistics

#[derive(Debug, Clone, Copy)]
struct Stats {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    mean: f64,
    max: f64,
}

/// Percentiles (nearest rank) in microseconds.
fn stats(samples: &[Duration]) -> Stats {
    assert!(!samples.is_empty(), "no samples");
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let rank = ((q * us.len() as f64).ceil() as usize).clamp(1, us.len());
        us[rank - 1]
    };
    Stats {
        n: us.len(),
        p50: pick(0.50),
        p90: pick(0.90),
        p99: pick(0.99),
        mean: us.iter().sum::<f64>() / us.len() as f64,
        max: us[us.len() - 1],
    }
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

// ---------------------------------------------------------------- report

#[derive(Debug, Clone, Copy)]
enum Budget {
    AtMost(f64),
    AtLeast(f64),
}

#[derive(Debug, Clone)]
struct Figure {
    engine: String,
    name: String,
    value: Option<f64>,
    unit: &'static str,
    detail: String,
    budget: Option<Budget>,
}

impl Figure {
    fn met(&self) -> Option<bool> {
        match (self.budget, self.value) {
            (Some(Budget::AtMost(b)), Some(v)) => Some(v <= b),
            (Some(Budget::AtLeast(b)), Some(v)) => Some(v >= b),
            _ => None,
        }
    }

    fn budget_text(&self) -> String {
        match self.budget {
            Some(Budget::AtMost(b)) => format!("≤ {} {}", fmt_num(b), self.unit),
            Some(Budget::AtLeast(b)) => format!("≥ {} {}", fmt_num(b), self.unit),
            None => String::new(),
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[derive(Debug, Default)]
struct Report {
    figures: Vec<Figure>,
}

impl Report {
    fn add(
        &mut self,
        engine: &str,
        name: &str,
        value: f64,
        unit: &'static str,
        detail: String,
        budget: Option<Budget>,
    ) {
        let f = Figure {
            engine: engine.to_owned(),
            name: name.to_owned(),
            value: Some(value),
            unit,
            detail,
            budget,
        };
        eprintln!(
            "  [{engine}] {name}: {} {unit} {}",
            fmt_num(value),
            f.detail
        );
        self.figures.push(f);
    }

    /// A latency figure: p50 in ms with p90/p99 in the detail.
    fn latency(&mut self, engine: &str, name: &str, s: Stats, budget_ms: Option<f64>) {
        self.add(
            engine,
            name,
            ms(s.p50),
            "ms",
            format!(
                "p50 {:.3} p90 {:.3} p99 {:.3} mean {:.3} max {:.3} ms, n={}",
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.mean),
                ms(s.max),
                s.n
            ),
            budget_ms.map(Budget::AtMost),
        );
    }

    fn missing(
        &mut self,
        engine: &str,
        name: &str,
        why: &str,
        budget: Option<Budget>,
        unit: &'static str,
    ) {
        eprintln!("  [{engine}] {name}: not measured ({why})");
        self.figures.push(Figure {
            engine: engine.to_owned(),
            name: name.to_owned(),
            value: None,
            unit,
            detail: why.to_owned(),
            budget,
        });
    }

    fn print_table(&self) {
        println!();
        println!(
            "{:<8} {:<58} {:>12} {:<6} {:<14} {:<8} detail",
            "engine", "figure", "value", "unit", "budget", "met"
        );
        println!("{}", "-".repeat(130));
        for f in &self.figures {
            let value = f.value.map_or("n/a".to_owned(), fmt_num);
            let met = match f.met() {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "",
            };
            println!(
                "{:<8} {:<58} {:>12} {:<6} {:<14} {:<8} {}",
                f.engine,
                f.name,
                value,
                f.unit,
                f.budget_text(),
                met,
                f.detail
            );
        }
        println!();
    }

    fn to_json(&self, machine: &Value, settings: &Settings, loads: &[String]) -> Value {
        let figures: Vec<Value> = self
            .figures
            .iter()
            .map(|f| {
                json!({
                    "engine": f.engine,
                    "figure": f.name,
                    "value": f.value,
                    "unit": f.unit,
                    "budget": f.budget_text(),
                    "met": f.met(),
                    "detail": f.detail,
                })
            })
            .collect();
        json!({
            "bench": "airlock e2e",
            "machine": machine,
            "settings": format!("{settings:?}"),
            "load_average": loads,
            "figures": figures,
        })
    }
}

// ----------------------------------------------------------------- machine

fn read_to_string(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn loadavg() -> String {
    read_to_string("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine_info() -> Value {
    let meminfo = read_to_string("/proc/meminfo");
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu = read_to_string("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory_mib": mem_kb / 1024,
        "kernel": read_to_string("/proc/sys/kernel/osrelease").trim(),
    })
}

/// Peak resident set size (VmHWM) of a live process, in MiB.
fn vm_hwm_mib(pid: u32) -> Option<f64> {
    read_to_string(&format!("/proc/{pid}/status"))
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// CPU time (every thread, exited ones included) a live process has used,
/// in µs, as (user, system): fields 14 and 15 of /proc/<pid>/stat, in
/// clock ticks of `getconf CLK_TCK`.
fn cpu_us(pid: u32) -> Option<(f64, f64)> {
    stat_cpu_us(&read_to_string(&format!("/proc/{pid}/stat")))
}

/// CPU time of a process's live threads named `comm` (e.g. the executor's
/// `ledger` thread), in µs, as (user, system).
fn thread_cpu_us(pid: u32, comm: &str) -> Option<(f64, f64)> {
    let mut total = (0.0, 0.0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        if read_to_string(&dir.join("comm").display().to_string()).trim() != comm {
            continue;
        }
        let (u, s) = stat_cpu_us(&read_to_string(&dir.join("stat").display().to_string()))?;
        total = (total.0 + u, total.1 + s);
    }
    Some(total)
}

/// (user, system) µs from the text of a `stat` file.
fn stat_cpu_us(stat: &str) -> Option<(f64, f64)> {
    static TICK_US: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let tick_us = *TICK_US.get_or_init(|| {
        let hz: f64 = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0);
        1e6 / hz
    });
    // The command name may hold spaces; the fields after it do not.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime * tick_us, stime * tick_us))
}

/// CPU per call of `calls` while `work` runs, of the proposer and of the
/// executor, each as (user, system) µs. Both processes settle for 100 ms
/// before and after, so work done after an answer (evidence committed in
/// the background) is counted.
type CpuSplit = (f64, f64);
/// The third split is the executor's `ledger` thread alone (part of the
/// executor's).
fn cpu_per_call(
    proposer: u32,
    executor: u32,
    calls: usize,
    work: impl FnOnce(),
) -> (CpuSplit, CpuSplit, CpuSplit) {
    let settle = || std::thread::sleep(Duration::from_millis(100));
    let sample = || {
        (
            cpu_us(proposer).unwrap(),
            cpu_us(executor).unwrap(),
            thread_cpu_us(executor, "ledger").unwrap_or_default(),
        )
    };
    settle();
    let (p0, e0, l0) = sample();
    work();
    settle();
    let (p1, e1, l1) = sample();
    let n = calls.max(1) as f64;
    let per = |a: (f64, f64), b: (f64, f64)| ((b.0 - a.0) / n, (b.1 - a.1) / n);
    (per(p0, p1), per(e0, e1), per(l0, l1))
}

/// (anonymous, file-backed) resident MiB of a process now.
fn rss_split_mib(pid: u32) -> (f64, f64) {
    let status = read_to_string(&format!("/proc/{pid}/status"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// write(4 KiB) + fsync in `dir`, the disk cost under each durable commit.
fn fsync_probe(dir: &Path, n: usize) -> (Stats, Stats) {
    let path = dir.join("fsync-probe.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = vec![0x5au8; 4096];
    let mut full = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    for _ in 0..n {
        f.write_all(&block).unwrap();
        let t = Instant::now();
        f.sync_all().unwrap();
        full.push(t.elapsed());
        f.write_all(&block).unwrap();
        let t = Instant::now();
        f.sync_data().unwrap();
        data.push(t.elapsed());
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    (stats(&full), stats(&data))
}

// ------------------------------------------------------------------ stack

/// The executor's environment: trusted tenant and the write credential.
fn executor_env(db: &Database) -> [(&'static str, &str); 2] {
    [
        ("APP_TENANT_ID", TENANT),
        ("APP_WRITE_URL", db.write_url.as_str()),
    ]
}

/// One engine: its database, a running executor on its config, and the
/// proposer environment (read URL and trusted context only).
struct Stack {
    engine: Engine,
    label: &'static str,
    db: Database,
    config: Config,
    exec: ExecutorProcess,
    env: Vec<(&'static str, String)>,
    _sqlite_dir: Option<tempfile::TempDir>,
}

impl Stack {
    fn new(engine: Engine) -> Stack {
        let (db, sqlite_dir) = match engine {
            Engine::Postgres => (postgres_reference(PG_DB), None),
            Engine::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("airlock-bench-sqlite-")
                    .tempdir()
                    .unwrap();
                (sqlite_reference(dir.path(), "reference"), Some(dir))
            }
            Engine::Mysql => panic!("the e2e bench covers postgres and sqlite"),
        };
        let mut value = reference_config_for(&db);
        // Measures capacity: far above a proposer's default intake limits.
        airlock_tests::proposals::capacity_limits(&mut value);
        add_write_kinds(&db, &mut value);
        let config = load(&value);
        let exec = ExecutorProcess::start(&value, &executor_env(&db));
        let env = vec![
            ("APP_READ_URL", db.read_url.clone()),
            ("APP_TENANT_ID", TENANT.to_owned()),
            ("APP_PRINCIPAL", PRINCIPAL.to_owned()),
        ];
        Stack {
            engine,
            label: match engine {
                Engine::Postgres => "postgres",
                Engine::Sqlite => "sqlite",
                Engine::Mysql => "mysql",
            },
            db,
            config,
            exec,
            env,
            _sqlite_dir: sqlite_dir,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn proposer_log(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.exec.path().join("proposer.log"))
            .unwrap()
    }

    /// The std command line of a stdio proposer (env cleared but PATH).
    fn proposer_command(&self) -> Command {
        let mut c = Command::new(bin("airlock-proposer"));
        c.arg("serve")
            .arg("--config")
            .arg(&self.exec.config_path)
            .arg("--socket-dir")
            .arg(&self.exec.socket_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// Spawn a stdio proposer with the rmcp client; returns the client and
    /// the child's pid once `initialize` has completed.
    async fn stdio(&self) -> (McpClient, u32) {
        let cmd = tokio::process::Command::from(self.proposer_command());
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(self.proposer_log())
            .spawn()
            .expect("spawn airlock-proposer");
        let pid = transport.id().expect("pid");
        let client = ().serve(transport).await.expect("MCP initialize over stdio");
        (client, pid)
    }

    fn http(&self) -> HttpProposer {
        let mut env = self.env();
        env.push(("MCP_TOKEN", TOKEN));
        HttpProposer::start(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &env,
            &["--auth-token-env", "MCP_TOKEN"],
        )
    }

    fn ledger_bytes(&self) -> u64 {
        let base = self.exec.store.display().to_string();
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{base}{s}")).ok())
            .map(|m| m.len())
            .sum()
    }
}

// ------------------------------------------------------------- MCP calls

fn read_args() -> Map<String, Value> {
    json!({"invoice_id": INVOICE}).as_object().cloned().unwrap()
}

fn proposal_args(seq: usize) -> Map<String, Value> {
    json!({"invoice_id": INVOICE, "reason": format!("customer requested review, bench #{seq}")})
        .as_object()
        .cloned()
        .unwrap()
}

/// One tools/call; panics unless the envelope says ok. Returns the envelope.
async fn call_ok(client: &McpClient, tool: &str, args: Map<String, Value>) -> Value {
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool}: {e}"));
    let env = result
        .structured_content
        .unwrap_or_else(|| panic!("{tool}: no structured content"));
    assert_eq!(env["ok"], true, "{tool}: {env}");
    env
}

async fn timed_reads(client: &McpClient, n: usize) -> Vec<Duration> {
    for _ in 0..20.min(n) {
        let env = call_ok(client, READ_TOOL_NAME, read_args()).await;
        assert!(env["evidence"]["bundle_id"].is_string(), "{env}");
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let env = call_ok(client, READ_TOOL_NAME, read_args()).await;
        out.push(t.elapsed());
        debug_assert!(env["evidence"]["bundle_id"].is_string());
    }
    out
}

/// Proposals with their ids, each durable in the ledger when it returns.
async fn timed_proposals(
    client: &McpClient,
    n: usize,
    seq0: usize,
) -> (Vec<Duration>, Vec<String>) {
    let mut out = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let env = call_ok(client, PROPOSAL_TOOL_NAME, proposal_args(seq0 + i)).await;
        out.push(t.elapsed());
        ids.push(
            env["proposal"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no proposal id: {env}"))
                .to_owned(),
        );
    }
    (out, ids)
}

// ------------------------------------------------------- raw stdio client

/// A proposer driven by hand-written JSON-RPC lines (no MCP client library).
struct RawStdio {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    line: String,
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"airlock-bench-raw","version":"0"}}}"#;

impl RawStdio {
    /// Spawn and initialize; returns the client and spawn→initialize time.
    fn start(stack: &Stack) -> (RawStdio, Duration) {
        let mut cmd = stack.proposer_command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stack.proposer_log());
        let t = Instant::now();
        let mut child = cmd.spawn().expect("spawn airlock-proposer");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdin.write_all(INITIALIZE.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let elapsed = t.elapsed();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("initialize answer is not JSON ({e}): {line}"));
        assert!(v["result"]["serverInfo"].is_object(), "{v}");
        stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
            .unwrap();
        stdin.flush().unwrap();
        (
            RawStdio {
                child,
                stdin,
                stdout,
                next_id: 1,
                line,
            },
            elapsed,
        )
    }

    fn call(&mut self, tool: &str, args: &Map<String, Value>) -> &str {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}});
        let mut bytes = serde_json::to_vec(&req).unwrap();
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).unwrap();
        self.stdin.flush().unwrap();
        self.line.clear();
        self.stdout.read_line(&mut self.line).unwrap();
        &self.line
    }

    fn close(mut self) {
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

// -------------------------------------------------------- raw HTTP client

/// A Streamable HTTP session driven with plain reqwest (no MCP library).
struct RawHttp {
    http: reqwest::Client,
    url: String,
    session: String,
    next_id: u64,
}

fn sse_json(body: &str, id: u64) -> Value {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no JSON-RPC answer {id} in: {body}"))
}

impl RawHttp {
    async fn connect(url: &str) -> RawHttp {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = http
            .post(url)
            .bearer_auth(TOKEN)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(INITIALIZE)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "initialize: {}", resp.status());
        let session = resp
            .headers()
            .get("mcp-session-id")
            .expect("mcp-session-id header")
            .to_str()
            .unwrap()
            .to_owned();
        let body = resp.text().await.unwrap();
        let init = sse_json(&body, 0);
        assert!(init["result"]["serverInfo"].is_object(), "{init}");
        let resp = http
            .post(url)
            .bearer_auth(TOKEN)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "initialized: {}", resp.status());
        RawHttp {
            http,
            url: url.to_owned(),
            session,
            next_id: 1,
        }
    }

    async fn call(&mut self, tool: &str, args: &Map<String, Value>) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}});
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(TOKEN)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-06-18")
            .body(serde_json::to_vec(&req).unwrap())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "tools/call: {}", resp.status());
        let body = resp.text().await.unwrap();
        sse_json(&body, id)
    }
}

// ------------------------------------------------------- raw SELECT (sqlx)

/// The capability's SELECT on one persistent connection with the proposer's
/// session settings (read-only, statement timeout), timed per statement.
async fn raw_select(stack: &Stack, n: usize) -> (Stats, Option<Stats>) {
    let cap = stack.config.capability(READ_TOOL).unwrap();
    let st = select_row(stack.engine, cap, false);
    let timeout_ms = stack
        .config
        .sources
        .get(&cap.source)
        .map_or(3000, |s| s.statement_timeout_ms);
    let binds: Vec<&str> = st
        .params
        .iter()
        .map(|p| match p {
            LookupParam::PrimaryKey => INVOICE,
            LookupParam::Tenant => TENANT,
            // The benchmarked capability has no principal scope and is no set.
            LookupParam::Principal | LookupParam::Selection(_) | LookupParam::SetKey(_) => "unused",
        })
        .collect();
    let warm = 200.min(n);
    let mut samples = Vec::with_capacity(n);
    match stack.engine {
        Engine::Postgres => {
            use std::str::FromStr;
            let opts = sqlx::postgres::PgConnectOptions::from_str(&stack.db.read_url)
                .unwrap()
                .application_name("airlock-bench-raw")
                .options([
                    ("statement_timeout", timeout_ms.to_string()),
                    ("default_transaction_read_only", "on".to_owned()),
                ]);
            let mut conn = sqlx::PgConnection::connect_with(&opts).await.unwrap();
            for i in 0..warm + n {
                let t = Instant::now();
                let mut q = sqlx::query::<sqlx::Postgres>(sqlx::AssertSqlSafe(st.sql.clone()));
                for b in &binds {
                    q = q.bind(*b);
                }
                let rows = q.fetch_all(&mut conn).await.unwrap();
                let e = t.elapsed();
                assert_eq!(rows.len(), 1);
                if i >= warm {
                    samples.push(e);
                }
            }
            // The round trip a pool's test_before_acquire ping adds.
            let mut pings = Vec::with_capacity(n);
            for i in 0..warm + n {
                let t = Instant::now();
                conn.ping().await.unwrap();
                if i >= warm {
                    pings.push(t.elapsed());
                }
            }
            (stats(&samples), Some(stats(&pings)))
        }
        Engine::Sqlite => {
            use std::str::FromStr;
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&stack.db.read_url)
                .unwrap()
                .read_only(true)
                .create_if_missing(false)
                .busy_timeout(Duration::from_millis(timeout_ms))
                .pragma("query_only", "ON");
            let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
            for i in 0..warm + n {
                let t = Instant::now();
                let mut q = sqlx::query::<sqlx::Sqlite>(sqlx::AssertSqlSafe(st.sql.clone()));
                for b in &binds {
                    q = q.bind(*b);
                }
                let rows = q.fetch_all(&mut conn).await.unwrap();
                let e = t.elapsed();
                assert_eq!(rows.len(), 1);
                if i >= warm {
                    samples.push(e);
                }
            }
            let mut pings = Vec::with_capacity(n);
            for i in 0..warm + n {
                let t = Instant::now();
                conn.ping().await.unwrap();
                if i >= warm {
                    pings.push(t.elapsed());
                }
            }
            (stats(&samples), Some(stats(&pings)))
        }
        Engine::Mysql => unreachable!(),
    }
}

/// The evidence record a read sends, sent directly over IPC (no MCP, no
/// database): what the executor's ledger adds to every read.
async fn ipc_record_read(stack: &Stack, n: usize) -> Stats {
    let cap = stack.config.capability(READ_TOOL).unwrap();
    let st = select_row(stack.engine, cap, false);
    let row = invoice_row(INVOICE, TENANT);
    let visible: Map<String, Value> = cap
        .read_columns()
        .iter()
        .filter_map(|c| row.get(*c).map(|v| (c.to_string(), v.clone())))
        .collect();
    let req = RecordRead {
        capability: READ_TOOL.into(),
        args: read_args(),
        context: context(TENANT),
        query_fingerprint: st.fingerprint(),
        parameters: params_meta(),
        rows: vec![visible],
        identity_token: None,
    };
    let mut client = Client::connect(
        &stack.exec.proposer_socket(),
        Role::Proposer,
        "bench",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 50 {
        let t = Instant::now();
        match client.call(Request::RecordRead(req.clone())).await {
            Ok(Response::ReadRecorded(_)) => {}
            other => panic!("record_read: {other:?}"),
        }
        if i >= 50 {
            samples.push(t.elapsed());
        }
    }
    stats(&samples)
}

fn params_meta() -> Vec<ParamMeta> {
    vec![
        ParamMeta {
            position: 1,
            bound_from: "arg:invoice_id".into(),
            json_type: "string".into(),
        },
        ParamMeta {
            position: 2,
            bound_from: "trusted_context:tenant_id".into(),
            json_type: "string".into(),
        },
    ]
}

// ------------------------------------------------------------ CLI approve

fn approve_latency(stack: &Stack, ids: &[String]) -> Stats {
    let mut samples = Vec::with_capacity(ids.len());
    for id in ids {
        let t = Instant::now();
        let out = stack.exec.cli(&["proposals", "approve", id, "--yes"]);
        samples.push(t.elapsed());
        assert!(
            out.status.success(),
            "approve {id}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stats(&samples)
}

// --------------------------------------------------- executor cold start

/// Stop the stack's executor, then time `n` starts (spawn → an operator
/// `hello` answered) of a fresh executor process on the same ledger;
/// restart the stack's executor afterwards.
fn executor_cold_start(stack: &mut Stack, n: usize) -> Stats {
    stack.exec.stop();
    let mut samples = Vec::with_capacity(n);
    let rt = current_thread();
    for _ in 0..n {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stack.exec.path().join("executor-cold.log"))
            .unwrap();
        let t = Instant::now();
        let mut child = Command::new(bin("airlock-executor"))
            .arg("serve")
            .arg("--config")
            .arg(&stack.exec.config_path)
            .arg("--socket-dir")
            .arg(&stack.exec.socket_dir)
            .arg("--store")
            .arg(&stack.exec.store)
            .env_remove("AIRLOCK_SOCKET_DIR")
            .env("APP_TENANT_ID", TENANT)
            .env("APP_WRITE_URL", &stack.db.write_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let socket = stack.exec.operator_socket();
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready = rt.block_on(async {
            loop {
                if let Ok(c) =
                    Client::connect(&socket, Role::Operator, "bench", Duration::from_secs(5)).await
                {
                    drop(c);
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_micros(250)).await;
            }
        });
        let elapsed = t.elapsed();
        assert!(ready, "the executor did not answer on {}", socket.display());
        samples.push(elapsed);
        terminate(&mut child);
    }
    stack.exec.restart(&executor_env(&stack.db));
    stats(&samples)
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------- ledger filler

/// Fill a stopped executor's ledger through the executor's own Ledger API:
/// `evidence` read-evidence rows, of which `proposals` are the reads behind
/// as many pending proposals (realistic rows, change sets and ids).
///
/// The rows are written to a copy of the (checkpointed) ledger in a
/// scratch directory — `AIRLOCK_BENCH_FILL_DIR`, else /dev/shm — and the
/// file is copied back: the same rows through the same API, without paying
/// 110,000 fsyncs of the filler itself (not what is measured).
fn fill_ledger(stack: &Stack, evidence: usize, proposals: usize) -> Duration {
    let t = Instant::now();
    let scratch_root = std::env::var_os("AIRLOCK_BENCH_FILL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    let scratch = tempfile::Builder::new()
        .prefix("airlock-bench-fill-")
        .tempdir_in(&scratch_root)
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let work = scratch.path().join("ledger.db");
    let wal = format!("{}-wal", stack.exec.store.display());
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the ledger was not checkpointed: {wal} holds frames"
    );
    std::fs::copy(&stack.exec.store, &work).unwrap();
    let mut ledger = Ledger::open(&work).expect("open the ledger");
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&stack.exec.store).unwrap().uid()
    };
    let actor = ActorIdentity {
        uid,
        user: (uid == 0).then(|| "root".to_owned()),
    };
    let read_cap = stack.config.capability(READ_TOOL).unwrap();
    let waiver_cap = stack.config.capability(PROPOSAL_TOOL).unwrap();
    let read_fp = select_row(stack.engine, read_cap, false).fingerprint();
    let waiver_fp = select_row(stack.engine, waiver_cap, false).fingerprint();
    let role = waiver_cap
        .proposal
        .as_ref()
        .and_then(|p| p.approval.required_role.clone());
    let ttl_ms = (stack.config.airlock.proposal_ttl_seconds as i64).saturating_mul(1000);
    let digest = airlock_policy::binding::capability_digest(&stack.config, waiver_cap);
    let params = params_meta();
    let row = invoice_row(INVOICE, TENANT);
    let visible = |cap: &airlock_policy::config::Capability| -> Map<String, Value> {
        cap.read_columns()
            .iter()
            .filter_map(|c| row.get(*c).map(|v| (c.to_string(), v.clone())))
            .collect()
    };
    let read_rows = vec![visible(read_cap)];
    let waiver_rows = vec![visible(waiver_cap)];
    let every = evidence
        .checked_div(proposals)
        .map_or(usize::MAX, |n| n.max(1));
    let mut made = 0;
    for i in 0..evidence {
        let is_proposal = made < proposals && i % every == every - 1;
        let (cap_name, fp, rows) = if is_proposal {
            (PROPOSAL_TOOL, &waiver_fp, &waiver_rows)
        } else {
            (READ_TOOL, &read_fp, &read_rows)
        };
        let (ev_id, _) = ledger
            .record_evidence(NewEvidence {
                capability: cap_name,
                tenant_id: TENANT,
                principal: PRINCIPAL,
                query_fingerprint: fp,
                parameters: &params,
                rows,
                actor: &actor,
            })
            .expect("record evidence");
        if is_proposal {
            let cs = waiver(
                &stack.config,
                INVOICE,
                TENANT,
                &format!("customer requested review, filler #{made}"),
            );
            ledger
                .record_proposal(NewProposal {
                    change_set: &cs,
                    capability_digest: &digest,
                    evidence_id: Some(&ev_id),
                    required_role: role.as_deref(),
                    ttl_ms,
                    actor: &actor,
                })
                .expect("record proposal");
            made += 1;
        }
    }
    ledger.checkpoint().expect("checkpoint");
    drop(ledger);
    std::fs::copy(&work, &stack.exec.store).unwrap();
    // Flush the copy now: otherwise the kernel writes its 180 MiB back while
    // the "full" figures are measured, which is the filler's cost, not ours.
    std::fs::File::open(&stack.exec.store)
        .and_then(|f| f.sync_all())
        .unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", stack.exec.store.display()));
    }
    t.elapsed()
}

// ----------------------------------------------------------------- phases

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Proposer cold start: spawn → `initialize` result, with rmcp and raw.
fn cold_start(stack: &Stack, runs: usize) -> (Stats, Stats) {
    let rt = current_thread();
    let mut with_rmcp = Vec::with_capacity(runs);
    let mut raw = Vec::with_capacity(runs);
    // One unmeasured start warms the page cache for the binary.
    let (c, _) = RawStdio::start(stack);
    c.close();
    for _ in 0..runs {
        rt.block_on(async {
            let t = Instant::now();
            let (client, _) = stack.stdio().await;
            with_rmcp.push(t.elapsed());
            client.cancel().await.unwrap();
        });
        let (c, e) = RawStdio::start(stack);
        raw.push(e);
        c.close();
    }
    (stats(&with_rmcp), stats(&raw))
}

fn run_engine(settings: &Settings, report: &mut Report, engine: Engine) {
    let stack = Stack::new(engine);
    let e = stack.label;
    eprintln!("== {e}: executor at {}", stack.exec.path().display());

    // Disk under the ledger.
    let (fsync, fdatasync) = fsync_probe(stack.exec.path(), 500);
    report.latency(
        e,
        "disk fsync (4 KiB write + fsync, ledger dir)",
        fsync,
        None,
    );
    report.latency(
        e,
        "disk fdatasync (4 KiB write + fdatasync)",
        fdatasync,
        None,
    );

    // Cold start.
    let (cold, cold_raw) = cold_start(&stack, settings.cold_runs);
    report.add(
        e,
        "proposer cold start → initialize, rmcp client (median)",
        ms(cold.p50),
        "ms",
        format!("p90 {:.2} ms, n={}", ms(cold.p90), cold.n),
        Some(Budget::AtMost(20.0)),
    );
    report.add(
        e,
        "proposer cold start → initialize, raw JSON-RPC (median)",
        ms(cold_raw.p50),
        "ms",
        format!("p90 {:.2} ms, n={}", ms(cold_raw.p90), cold_raw.n),
        Some(Budget::AtMost(20.0)),
    );

    let rt = current_thread();
    // Raw SELECT first (same statement and session settings).
    let (raw, ping) = rt.block_on(raw_select(&stack, settings.reads));
    report.latency(e, "raw SELECT, sqlx, one persistent connection", raw, None);
    if let Some(p) = ping {
        report.latency(e, "raw connection ping (round trip, sqlx)", p, None);
    }
    let ipc = rt.block_on(ipc_record_read(&stack, 2000.min(settings.reads)));
    report.latency(
        e,
        "IPC record_read alone (evidence durable in ledger)",
        ipc,
        None,
    );

    // Reads over stdio with the rmcp client.
    let (stdio_stats, stdio_hwm, prop_stats, prop_ids, bytes_per_proposal) = rt.block_on(async {
        let (client, pid) = stack.stdio().await;
        let reads = timed_reads(&client, settings.reads).await;
        let s = stats(&reads);
        // Proposals, each durable in the ledger when its call returns.
        let _ = timed_proposals(&client, 20, 0).await;
        let before = stack.ledger_bytes();
        let (lat, ids) = timed_proposals(&client, settings.proposals, 100).await;
        let after = stack.ledger_bytes();
        let hwm = vm_hwm_mib(pid);
        client.cancel().await.unwrap();
        let per = (after.saturating_sub(before)) as f64 / settings.proposals as f64;
        (s, hwm, stats(&lat), ids, per)
    });
    report.latency(
        e,
        "read tools/call over stdio, rmcp client",
        stdio_stats,
        None,
    );
    report.add(
        e,
        "read overhead over raw SELECT, stdio rmcp (p50)",
        ms(stdio_stats.p50 - raw.p50),
        "ms",
        format!("p99 diff {:.3} ms", ms(stdio_stats.p99 - raw.p99)),
        Some(Budget::AtMost(0.3)),
    );

    // Same reads with a raw JSON-RPC client (separates rmcp client cost).
    let (mut rawc, _) = RawStdio::start(&stack);
    let args = read_args();
    for _ in 0..20 {
        rawc.call(READ_TOOL_NAME, &args);
    }
    let mut raw_reads = Vec::with_capacity(settings.reads);
    let raw_pid = rawc.child.id();
    let exec_pid = stack.exec.pid();
    let (read_cpu_p, read_cpu_e, read_cpu_l) =
        cpu_per_call(raw_pid, exec_pid, settings.reads, || {
            for _ in 0..settings.reads {
                let t = Instant::now();
                let line = rawc.call(READ_TOOL_NAME, &args);
                raw_reads.push(t.elapsed());
                debug_assert!(line.contains("\"ok\":true"));
            }
        });
    // Proposals from the same raw client: their CPU, without a client
    // library's in either process.
    let raw_props = settings.proposals;
    let (prop_cpu_p, prop_cpu_e, prop_cpu_l) = cpu_per_call(raw_pid, exec_pid, raw_props, || {
        for i in 0..raw_props {
            let line = rawc.call(PROPOSAL_TOOL_NAME, &proposal_args(2_000_000 + i));
            assert!(line.contains("\"ok\":true"), "{line}");
        }
    });
    let raw_hwm = vm_hwm_mib(raw_pid);
    let pair_exec_hwm = vm_hwm_mib(exec_pid);
    let (raw_anon, raw_file) = rss_split_mib(raw_pid);
    let (exec_anon, exec_file) = rss_split_mib(exec_pid);
    rawc.close();
    let cpu_note = |p: CpuSplit, x: CpuSplit, l: CpuSplit, n: usize| {
        format!(
            "proposer {:.0} (user {:.0}, system {:.0}) + executor {:.0} (user {:.0}, system {:.0}; its ledger thread {:.0}: user {:.0}, system {:.0}) µs, {n} calls, raw JSON-RPC stdio client (client CPU not counted)",
            p.0 + p.1,
            p.0,
            p.1,
            x.0 + x.1,
            x.0,
            x.1,
            l.0 + l.1,
            l.0,
            l.1
        )
    };
    let total = |p: CpuSplit, x: CpuSplit| p.0 + p.1 + x.0 + x.1;
    report.add(
        e,
        "CPU per read call, proposer + executor",
        total(read_cpu_p, read_cpu_e),
        "µs",
        cpu_note(read_cpu_p, read_cpu_e, read_cpu_l, settings.reads),
        Some(Budget::AtMost(145.0)),
    );
    report.add(
        e,
        "CPU per proposal call, proposer + executor",
        total(prop_cpu_p, prop_cpu_e),
        "µs",
        cpu_note(prop_cpu_p, prop_cpu_e, prop_cpu_l, raw_props),
        Some(Budget::AtMost(415.0)),
    );
    if let (Some(p), Some(x)) = (raw_hwm, pair_exec_hwm) {
        report.add(
            e,
            "peak RSS of the pair after stdio reads and proposals (VmHWM)",
            p + x,
            "MiB",
            format!("proposer {p:.1} + executor {x:.1} MiB; resident at the end: proposer {raw_anon:.1} anonymous + {raw_file:.1} file-backed, executor {exec_anon:.1} + {exec_file:.1} MiB"),
            Some(Budget::AtMost(23.0)),
        );
    }
    let raw_reads = stats(&raw_reads);
    report.latency(
        e,
        "read tools/call over stdio, raw JSON-RPC client",
        raw_reads,
        None,
    );
    report.add(
        e,
        "read overhead over raw SELECT, stdio raw client (p50)",
        ms(raw_reads.p50 - raw.p50),
        "ms",
        format!("p99 diff {:.3} ms", ms(raw_reads.p99 - raw.p99)),
        Some(Budget::AtMost(0.3)),
    );

    // Proposals.
    report.latency(
        e,
        "proposal tools/call over stdio (durable), rmcp",
        prop_stats,
        Some(2.0),
    );
    let disk_note = format!(
        "disk fsync p50 {:.3} ms; each proposal = 2 ledger commits (evidence + proposal)",
        ms(fsync.p50)
    );
    report.add(
        e,
        "proposal p50 / disk fsync p50",
        prop_stats.p50 / fsync.p50,
        "x",
        disk_note,
        None,
    );
    report.add(
        e,
        "ledger bytes per proposal with its evidence (WAL+db growth)",
        bytes_per_proposal,
        "B",
        format!("over {} proposals", settings.proposals),
        None,
    );
    // Durable: every returned id is in the ledger file.
    {
        let ledger = Ledger::open_read_only(&stack.exec.store).unwrap();
        for id in &prop_ids {
            assert!(
                ledger.proposal(id).unwrap().is_some(),
                "proposal {id} is not in the ledger"
            );
        }
    }

    // Streamable HTTP: latency on one session, throughput on N sessions.
    let http = stack.http();
    let mrt = multi_thread();
    let (http_lat, http_raw_lat) = mrt.block_on(async {
        let client = http.client(Some(TOKEN)).await;
        let lat = stats(&timed_reads(&client, settings.http_reads).await);
        client.cancel().await.unwrap();
        let mut raw = RawHttp::connect(&http.url).await;
        let args = read_args();
        for _ in 0..20 {
            raw.call(READ_TOOL_NAME, &args).await;
        }
        let mut samples = Vec::with_capacity(settings.http_raw_reads);
        for _ in 0..settings.http_raw_reads {
            let t = Instant::now();
            let v = raw.call(READ_TOOL_NAME, &args).await;
            samples.push(t.elapsed());
            debug_assert_eq!(v["result"]["structuredContent"]["ok"], true);
        }
        (lat, stats(&samples))
    });
    report.latency(
        e,
        "read tools/call over Streamable HTTP, rmcp client",
        http_lat,
        None,
    );
    report.latency(
        e,
        "read tools/call over Streamable HTTP, raw reqwest (body to end)",
        http_raw_lat,
        None,
    );

    let sessions = settings.http_sessions;
    let calls = settings.http_calls;
    let raw_calls = settings.http_raw_calls;
    let url = http.url.clone();
    let (tput_rmcp, tput_raw) = mrt.block_on(async {
        // rmcp clients.
        let mut clients = Vec::new();
        for _ in 0..sessions {
            clients.push(Arc::new(http.client(Some(TOKEN)).await));
        }
        for c in &clients {
            call_ok(c, READ_TOOL_NAME, read_args()).await;
        }
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in &clients {
            let c = Arc::clone(c);
            tasks.spawn(async move {
                for _ in 0..calls {
                    call_ok(&c, READ_TOOL_NAME, read_args()).await;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let rmcp_rate = (sessions * calls) as f64 / t.elapsed().as_secs_f64();
        for c in clients {
            if let Ok(c) = Arc::try_unwrap(c) {
                let _ = c.cancel().await;
            }
        }
        // Raw reqwest sessions.
        let mut raws = Vec::new();
        for _ in 0..sessions {
            raws.push(RawHttp::connect(&url).await);
        }
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut r in raws {
            tasks.spawn(async move {
                let args = read_args();
                for _ in 0..raw_calls {
                    let v = r.call(READ_TOOL_NAME, &args).await;
                    assert_eq!(v["result"]["structuredContent"]["ok"], true, "{v}");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let raw_rate = (sessions * raw_calls) as f64 / t.elapsed().as_secs_f64();
        (rmcp_rate, raw_rate)
    });
    report.add(
        e,
        &format!("HTTP read throughput, {sessions} sessions, rmcp clients"),
        tput_rmcp,
        "calls/s",
        format!(
            "{} calls; client, proposer, executor and database share {} cores",
            sessions * calls,
            num_cores()
        ),
        Some(Budget::AtLeast(5000.0)),
    );
    report.add(
        e,
        &format!("HTTP read throughput, {sessions} sessions, raw reqwest (body to end)"),
        tput_raw,
        "calls/s",
        format!("{} calls", sessions * raw_calls),
        Some(Budget::AtLeast(5000.0)),
    );
    let http_hwm = vm_hwm_mib(http.pid());
    drop(http);

    // Concurrent proposers (separate processes) into one executor.
    let proposers = settings.proposers;
    let each = settings.proposals_each;
    let (rate, conc_lat, conc_hwm) = mrt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..proposers {
            let (c, pid) = stack.stdio().await;
            call_ok(&c, PROPOSAL_TOOL_NAME, proposal_args(0)).await;
            clients.push((Arc::new(c), pid));
        }
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (k, (c, _)) in clients.iter().enumerate() {
            let c = Arc::clone(c);
            tasks.spawn(async move {
                let mut lat = Vec::with_capacity(each);
                for i in 0..each {
                    let t = Instant::now();
                    call_ok(
                        &c,
                        PROPOSAL_TOOL_NAME,
                        proposal_args(1_000_000 * (k + 1) + i),
                    )
                    .await;
                    lat.push(t.elapsed());
                }
                lat
            });
        }
        let mut all = Vec::new();
        while let Some(r) = tasks.join_next().await {
            all.extend(r.unwrap());
        }
        let rate = (proposers * each) as f64 / t.elapsed().as_secs_f64();
        let hwm = clients
            .iter()
            .filter_map(|(_, pid)| vm_hwm_mib(*pid))
            .fold(0.0, f64::max);
        for (c, _) in clients {
            if let Ok(c) = Arc::try_unwrap(c) {
                let _ = c.cancel().await;
            }
        }
        (rate, stats(&all), hwm)
    });
    report.add(
        e,
        &format!("proposals/s, {proposers} proposer processes, one executor"),
        rate,
        "prop/s",
        format!(
            "{} proposals; per-call p50 {:.3} p99 {:.3} ms",
            proposers * each,
            ms(conc_lat.p50),
            ms(conc_lat.p99)
        ),
        None,
    );

    // Peak RSS after the load.
    let proposer_hwm = [stdio_hwm, raw_hwm, http_hwm, Some(conc_hwm)]
        .into_iter()
        .flatten()
        .fold(0.0, f64::max);
    report.add(
        e,
        "proposer peak RSS (VmHWM, max of stdio/HTTP/concurrent)",
        proposer_hwm,
        "MiB",
        format!(
            "stdio reads+proposals {:.1}, stdio raw reads {:.1}, HTTP ({sessions} sessions) {:.1}, proposal load {:.1} MiB",
            stdio_hwm.unwrap_or(0.0),
            raw_hwm.unwrap_or(0.0),
            http_hwm.unwrap_or(0.0),
            conc_hwm
        ),
        Some(Budget::AtMost(20.0)),
    );
    match vm_hwm_mib(stack.exec.pid()) {
        Some(v) => report.add(
            e,
            "executor peak RSS (VmHWM) after the load",
            v,
            "MiB",
            String::new(),
            Some(Budget::AtMost(30.0)),
        ),
        None => report.missing(
            e,
            "executor peak RSS (VmHWM) after the load",
            "/proc status unreadable",
            Some(Budget::AtMost(30.0)),
            "MiB",
        ),
    }

    // CLI approve, whole process.
    let n = settings.approves.min(prop_ids.len());
    let approve = approve_latency(&stack, &prop_ids[..n]);
    report.latency(
        e,
        "`airlock proposals approve ID --yes`, whole process",
        approve,
        Some(20.0),
    );

    // Apply: approved proposals → guarded writeback → receipts.
    apply_phase(settings, report, &stack);
    write_kinds_phase(settings, report, &stack);
}

/// Insert `n` overdue invoices of the trusted tenant (ids `<prefix>000001`…)
/// so every apply changes a row of its own (one row would conflict after
/// its first apply: the version column moves).
fn insert_invoices(stack: &Stack, prefix: &str, n: usize) -> Vec<String> {
    insert_invoices_into(&stack.db, prefix, n)
}

fn insert_invoices_into(db: &Database, prefix: &str, n: usize) -> Vec<String> {
    let cols = "id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at";
    let sql = match db.engine {
        Engine::Postgres => format!(
            "INSERT INTO invoices ({cols}) SELECT '{prefix}' || lpad(g::text, 6, '0'), 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z' FROM generate_series(1, {n}) g"
        ),
        Engine::Sqlite => format!(
            "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) INSERT INTO invoices ({cols}) SELECT '{prefix}' || printf('%06d', x), 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z' FROM g"
        ),
        Engine::Mysql => unreachable!(),
    };
    execute(db, &sql);
    (1..=n).map(|i| format!("{prefix}{i:06}")).collect()
}

/// Propose a waiver for each invoice over MCP, `procs` proposer processes
/// at once; returns the proposal ids in the order of `invoices`.
async fn propose_each(stack: &Stack, invoices: &[String], procs: usize) -> Vec<String> {
    let chunk = invoices.len().div_ceil(procs.max(1)).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for (k, part) in invoices.chunks(chunk).enumerate() {
        let (client, _) = stack.stdio().await;
        let part = part.to_vec();
        tasks.spawn(async move {
            let mut ids = Vec::with_capacity(part.len());
            for inv in &part {
                let args =
                    json!({"invoice_id": inv, "reason": format!("late fee waived for {inv}")});
                let env = call_ok(
                    &client,
                    PROPOSAL_TOOL_NAME,
                    args.as_object().cloned().unwrap(),
                )
                .await;
                ids.push(env["proposal"]["id"].as_str().unwrap().to_owned());
            }
            let _ = client.cancel().await;
            (k, ids)
        });
    }
    let mut parts = Vec::new();
    while let Some(r) = tasks.join_next().await {
        parts.push(r.unwrap());
    }
    parts.sort_by_key(|(k, _)| *k);
    parts.into_iter().flat_map(|(_, ids)| ids).collect()
}

async fn operator_at(socket: &Path) -> Client {
    Client::connect(socket, Role::Operator, "bench", Duration::from_secs(30))
        .await
        .unwrap()
}

/// Approve over the operator socket (not timed: approval is a person's step).
async fn approve_ipc(stack: &Stack, ids: &[String]) {
    approve_at(&stack.exec.operator_socket(), ids).await;
}

async fn approve_at(socket: &Path, ids: &[String]) {
    let mut op = operator_at(socket).await;
    for id in ids {
        match op
            .call(Request::Approve(Approve {
                proposal_id: id.clone(),
                note: None,
            }))
            .await
        {
            Ok(Response::Decision(_)) => {}
            other => panic!("approve {id}: {other:?}"),
        }
    }
}

/// `airlock apply ID --json`, whole process, on each id; each must apply.
fn cli_apply_latency(stack: &Stack, ids: &[String]) -> Stats {
    let mut samples = Vec::with_capacity(ids.len());
    for id in ids {
        let t = Instant::now();
        let out = stack.exec.cli(&["apply", id, "--json"]);
        samples.push(t.elapsed());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert!(
            out.status.success() && v.to_string().contains("\"applied\""),
            "apply {id}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stats(&samples)
}

/// Apply each approved proposal over `clients` operator connections at
/// once. Returns (applies/s, per-apply latency, outcome counts).
async fn apply_batch(
    stack: &Stack,
    ids: &[String],
    clients: usize,
) -> (f64, Stats, BTreeMap<String, usize>) {
    apply_batch_at(&[stack.exec.operator_socket()], ids, clients).await
}

/// [`apply_batch`] through several executors: connection `c` goes to
/// `sockets[c % sockets.len()]`.
async fn apply_batch_at(
    sockets: &[PathBuf],
    ids: &[String],
    clients: usize,
) -> (f64, Stats, BTreeMap<String, usize>) {
    let chunk = ids.len().div_ceil(clients.max(1)).max(1);
    let mut ops = Vec::new();
    for c in 0..ids.chunks(chunk).len() {
        ops.push(operator_at(&sockets[c % sockets.len()]).await);
    }
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (mut op, part) in ops.into_iter().zip(ids.chunks(chunk)) {
        let part = part.to_vec();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(part.len());
            let mut outcomes = Vec::with_capacity(part.len());
            for id in part {
                let t = Instant::now();
                let outcome = match op
                    .call(Request::Apply(ProposalRef {
                        proposal_id: id.clone(),
                    }))
                    .await
                {
                    Ok(Response::Writeback(w)) => match &w.detail {
                        Some(d) if w.status != "applied" => format!("{}: {d}", w.status),
                        _ => w.status.clone(),
                    },
                    other => panic!("apply {id}: {other:?}"),
                };
                lat.push(t.elapsed());
                outcomes.push(outcome);
            }
            (lat, outcomes)
        });
    }
    let mut all = Vec::new();
    let mut counts = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        let (lat, outcomes) = r.unwrap();
        all.extend(lat);
        for o in outcomes {
            *counts.entry(o).or_insert(0) += 1;
        }
    }
    let rate = ids.len() as f64 / t.elapsed().as_secs_f64();
    (rate, stats(&all), counts)
}

fn apply_phase(settings: &Settings, report: &mut Report, stack: &Stack) {
    let e = stack.label;
    let n = settings.applies;
    let cli_n = settings.cli_applies;
    // SQLite too: its applies take the write lock with BEGIN IMMEDIATE and
    // wait for it, so concurrent applies queue instead of failing.
    let clients = settings.apply_clients;
    let invoices = insert_invoices(stack, "INV-A", 1 + n + cli_n);
    let rt = multi_thread();
    let ids = rt.block_on(async {
        let ids = propose_each(stack, &invoices, settings.proposers).await;
        approve_ipc(stack, &ids).await;
        ids
    });
    // One apply first: a source's first apply creates the receipt table (a
    // deployment would have run `airlock writeback migration`).
    let (warm, rest) = ids.split_at(1);
    let (_, _, outcomes) = rt.block_on(apply_batch(stack, warm, 1));
    assert_eq!(outcomes.get("applied"), Some(&1), "{outcomes:?}");
    let (batch, cli_ids) = rest.split_at(n);
    let (rate, lat, outcomes) = rt.block_on(apply_batch(stack, batch, clients));
    assert_eq!(
        outcomes.get("applied").copied(),
        Some(batch.len()),
        "every apply applies: {outcomes:?}"
    );
    report.add(
        e,
        &format!("applies/s, {clients} operator connection(s) (approved → receipt)"),
        rate,
        "apply/s",
        format!(
            "{} applies, each a guarded UPDATE + receipt; per-apply p50 {:.3} p99 {:.3} ms",
            batch.len(),
            ms(lat.p50),
            ms(lat.p99)
        ),
        (stack.engine == Engine::Postgres).then_some(Budget::AtLeast(1000.0)),
    );
    let cli = cli_apply_latency(stack, cli_ids);
    report.latency(
        e,
        "`airlock apply ID --json`, whole process",
        cli,
        Some(20.0),
    );
    // The rows really changed, exactly once each.
    let changed = query_strings(
        &stack.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM invoices WHERE id LIKE 'INV-A%' AND late_fee_cents = 0",
    );
    assert_eq!(
        changed[0][0].as_deref(),
        Some((1 + n + cli_n).to_string().as_str()),
        "every applied invoice is waived"
    );
}

const INSERT_TOOL_NAME: &str = "billing__propose_credit_note";
const SET_TOOL_NAME: &str = "billing__close_overdue_tickets";
/// Members of each benchmarked set.
const SET_ROWS: usize = 100;

/// The INSERT and bounded-set capabilities of the write-kinds phase, and
/// their tables.
fn add_write_kinds(db: &Database, value: &mut Value) {
    let (schema, stmts): (&str, Vec<&str>) = match db.engine {
        Engine::Postgres => (
            "public",
            vec![
                "CREATE TABLE public.bench_credit_notes (id bigserial PRIMARY KEY, tenant_id text NOT NULL, amount_cents integer NOT NULL, memo text NOT NULL, request_id text NOT NULL, UNIQUE (tenant_id, request_id))",
                "CREATE TABLE public.bench_tickets (id text PRIMARY KEY, tenant_id text NOT NULL, status text NOT NULL, cost_cents integer NOT NULL, version integer NOT NULL)",
                "CREATE INDEX ON public.bench_tickets (tenant_id, status)",
                "GRANT SELECT ON public.bench_credit_notes, public.bench_tickets TO synapsor_reader",
                "GRANT SELECT, INSERT ON public.bench_credit_notes TO synapsor_writer",
                "GRANT USAGE ON SEQUENCE public.bench_credit_notes_id_seq TO synapsor_writer",
                "GRANT SELECT, UPDATE ON public.bench_tickets TO synapsor_writer",
            ],
        ),
        _ => (
            "main",
            vec![
                "CREATE TABLE bench_credit_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, amount_cents INTEGER NOT NULL, memo TEXT NOT NULL, request_id TEXT NOT NULL, UNIQUE (tenant_id, request_id))",
                "CREATE TABLE bench_tickets (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, status TEXT NOT NULL, cost_cents INTEGER NOT NULL, version INTEGER NOT NULL)",
                "CREATE INDEX bench_tickets_status ON bench_tickets (tenant_id, status)",
            ],
        ),
    };
    for sql in stmts {
        execute(db, sql);
    }
    let target = |table: &str| json!({"schema": schema, "table": table, "primary_key": "id", "tenant_key": "tenant_id"});
    let caps = value["capabilities"].as_array_mut().unwrap();
    caps.push(json!({
        "name": "billing.propose_credit_note",
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": target("bench_credit_notes"),
        "args": {
            "amount_cents": {"type": "integer", "required": true, "minimum": 1, "maximum": 5000},
            "memo": {"type": "string", "required": true, "max_length": 200}
        },
        "visible_columns": ["id", "tenant_id", "amount_cents", "memo", "request_id"],
        "evidence": "required",
        "max_rows": 1,
        "patch": {"amount_cents": {"from_arg": "amount_cents"}, "memo": {"from_arg": "memo"}},
        "allowed_columns": ["amount_cents", "memo"],
        "operation": {"kind": "insert", "deduplication": {"components": [
            {"column": "tenant_id", "source": "trusted_tenant"},
            {"column": "request_id", "source": "proposal_id"}
        ]}},
        "approval": {"mode": "human", "required_role": "billing_lead"}
    }));
    caps.push(json!({
        "name": "billing.close_overdue_tickets",
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": target("bench_tickets"),
        "args": {"reason": {"type": "string", "required": true, "max_length": 200}},
        "visible_columns": ["id", "tenant_id", "status", "cost_cents", "version"],
        "evidence": "required",
        "max_rows": 1,
        "patch": {"status": {"fixed": "closed"}},
        "allowed_columns": ["status"],
        "conflict_guard": {"column": "version"},
        "operation": {
            "kind": "update",
            "cardinality": "set",
            "selection": {"all": [{"column": "status", "operator": "eq", "value": "overdue"}]},
            "max_rows": SET_ROWS,
            "aggregate_bounds": [{"column": "cost_cents", "measure": "before", "maximum": 1_000_000}],
            "version_advance": {"column": "version", "strategy": "integer_increment"}
        },
        "approval": {"mode": "human", "required_role": "billing_lead"}
    }));
}

/// Applies/s of guarded INSERTs (each one new row and its receipt), and
/// the apply of a 100-row bounded set (lock 100 members in key order,
/// check each, 100 guarded UPDATEs, one receipt), one set at a time.
fn write_kinds_phase(settings: &Settings, report: &mut Report, stack: &Stack) {
    let e = stack.label;
    let rt = multi_thread();
    let n = settings.insert_applies;
    let ids = rt.block_on(async {
        let (client, _) = stack.stdio().await;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let args = json!({"amount_cents": 100 + (i % 4000), "memo": format!("goodwill {i}")});
            let env = call_ok(
                &client,
                INSERT_TOOL_NAME,
                args.as_object().cloned().unwrap(),
            )
            .await;
            ids.push(env["proposal"]["id"].as_str().unwrap().to_owned());
        }
        let _ = client.cancel().await;
        approve_ipc(stack, &ids).await;
        ids
    });
    let clients = settings.apply_clients;
    let (rate, lat, outcomes) = rt.block_on(apply_batch(stack, &ids, clients));
    assert_eq!(outcomes.get("applied").copied(), Some(n), "{outcomes:?}");
    report.add(
        e,
        &format!("INSERT applies/s, {clients} operator connection(s)"),
        rate,
        "apply/s",
        format!(
            "{n} applies, each one guarded INSERT + receipt; per-apply p50 {:.3} p99 {:.3} ms",
            ms(lat.p50),
            ms(lat.p99)
        ),
        None,
    );
    let rows = query_strings(
        &stack.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM bench_credit_notes",
    );
    assert_eq!(
        rows[0][0].as_deref(),
        Some(n.to_string().as_str()),
        "one row per insert"
    );

    // Sets: one at a time, since each closes every overdue row it finds.
    let rounds = settings.set_applies;
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let sql = match stack.engine {
            Engine::Postgres => format!(
                "INSERT INTO bench_tickets (id, tenant_id, status, cost_cents, version) SELECT 'S{round:03}-' || lpad(g::text, 4, '0'), 'acme', 'overdue', 100, 1 FROM generate_series(1, {SET_ROWS}) g"
            ),
            _ => format!(
                "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {SET_ROWS}) INSERT INTO bench_tickets (id, tenant_id, status, cost_cents, version) SELECT 'S{round:03}-' || printf('%04d', x), 'acme', 'overdue', 100, 1 FROM g"
            ),
        };
        execute(&stack.db, &sql);
        let elapsed = rt.block_on(async {
            let (client, _) = stack.stdio().await;
            let args = json!({"reason": format!("round {round}")});
            let env = call_ok(&client, SET_TOOL_NAME, args.as_object().cloned().unwrap()).await;
            let _ = client.cancel().await;
            let id = env["proposal"]["id"].as_str().unwrap().to_owned();
            approve_ipc(stack, std::slice::from_ref(&id)).await;
            let t = Instant::now();
            let (_, _, outcomes) = apply_batch(stack, std::slice::from_ref(&id), 1).await;
            let elapsed = t.elapsed();
            assert_eq!(outcomes.get("applied"), Some(&1), "{outcomes:?}");
            elapsed
        });
        samples.push(elapsed);
    }
    let closed = query_strings(
        &stack.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM bench_tickets WHERE status = 'closed' AND version = 2",
    );
    assert_eq!(
        closed[0][0].as_deref(),
        Some((rounds * SET_ROWS).to_string().as_str()),
        "every member closed exactly once"
    );
    let st = stats(&samples);
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / rounds.max(1) as f64;
    report.add(
        e,
        &format!("{SET_ROWS}-row set applies/s, one at a time"),
        1.0 / mean,
        "apply/s",
        format!(
            "{rounds} sets of {SET_ROWS} members; per-set apply p50 {:.3} p99 {:.3} ms ({:.0} rows/s)",
            ms(st.p50),
            ms(st.p99),
            SET_ROWS as f64 / mean
        ),
        None,
    );
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The figures that must stay flat as the ledger grows.
struct GrowthPoint {
    cold: Stats,
    exec_cold: Stats,
    read: Stats,
    proposal: Stats,
    approve: Stats,
    apply: Stats,
}

fn growth_point(settings: &Settings, stack: &mut Stack, prefix: &str) -> GrowthPoint {
    let exec_cold = executor_cold_start(stack, 10);
    let (cold, _) = cold_start(stack, settings.cold_runs);
    let rt = current_thread();
    let (read, proposal) = rt.block_on(async {
        let (client, _) = stack.stdio().await;
        let read = stats(&timed_reads(&client, settings.growth_reads).await);
        let _ = timed_proposals(&client, 10, 0).await;
        let (lat, _) = timed_proposals(&client, settings.growth_proposals_n, 10).await;
        client.cancel().await.unwrap();
        (read, stats(&lat))
    });
    // Approve and apply, whole process, on proposals for rows of their own.
    let invoices = insert_invoices(stack, prefix, settings.growth_approves);
    let ids = rt.block_on(propose_each(stack, &invoices, 1));
    let approve = approve_latency(stack, &ids);
    let apply = cli_apply_latency(stack, &ids);
    GrowthPoint {
        cold,
        exec_cold,
        read,
        proposal,
        approve,
        apply,
    }
}

fn growth(settings: &Settings, report: &mut Report, engine: Engine) {
    let mut stack = Stack::new(engine);
    let e = stack.label;
    eprintln!(
        "== {e}: ledger growth (fresh executor at {})",
        stack.exec.path().display()
    );
    let empty = growth_point(settings, &mut stack, "INV-E");
    stack.exec.stop();
    let before = std::fs::metadata(&stack.exec.store).map_or(0, |m| m.len());
    eprintln!(
        "   filling the ledger with {} evidence rows and {} proposals …",
        settings.growth_evidence, settings.growth_proposals
    );
    let took = fill_ledger(&stack, settings.growth_evidence, settings.growth_proposals);
    let after = std::fs::metadata(&stack.exec.store).map_or(0, |m| m.len());
    let rows = settings.growth_evidence.max(1) as f64;
    report.add(
        e,
        "ledger bytes per recorded evidence row (filler, mixed)",
        (after.saturating_sub(before)) as f64 / rows,
        "B",
        format!(
            "{} evidence + {} proposals → {:.1} MiB in {:.1} s",
            settings.growth_evidence,
            settings.growth_proposals,
            (after.saturating_sub(before)) as f64 / 1048576.0,
            took.as_secs_f64()
        ),
        None,
    );
    stack.exec.restart(&executor_env(&stack.db));
    let full = growth_point(settings, &mut stack, "INV-F");
    let pairs: [(&str, Stats, Stats); 6] = [
        ("proposer cold start median", empty.cold, full.cold),
        (
            "executor cold start median (spawn → operator hello)",
            empty.exec_cold,
            full.exec_cold,
        ),
        ("read tools/call p50 (stdio, rmcp)", empty.read, full.read),
        (
            "proposal tools/call p50 (stdio, rmcp)",
            empty.proposal,
            full.proposal,
        ),
        (
            "CLI approve p50 (whole process)",
            empty.approve,
            full.approve,
        ),
        ("CLI apply p50 (whole process)", empty.apply, full.apply),
    ];
    for (name, a, b) in pairs {
        let ratio = b.p50 / a.p50;
        report.add(
            e,
            &format!("growth: {name}, full/empty"),
            ratio,
            "x",
            format!(
                "empty {:.3} ms → {}k evidence/{}k proposals {:.3} ms (p99 {:.3} → {:.3})",
                ms(a.p50),
                settings.growth_evidence / 1000,
                settings.growth_proposals / 1000,
                ms(b.p50),
                ms(a.p99),
                ms(b.p99)
            ),
            Some(Budget::AtMost(1.2)),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // (and would run this whole program): only run when asked to bench.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") && std::env::var_os("AIRLOCK_BENCH_FORCE").is_none() {
        eprintln!(
            "e2e bench: this is a benchmark, not a test; run it with `cargo bench -p airlock-tests --bench e2e`"
        );
        return;
    }
    let settings = Settings::from_env();
    let mut machine = machine_info();
    eprintln!("airlock e2e bench on {machine}; settings {settings:?}");
    // Build the binaries once, up front.
    let _ = bin("airlock-proposer");
    let mut loads = vec![format!("start: {}", loadavg())];
    let mut report = Report::default();
    for engine in settings.engines.clone() {
        run_engine(&settings, &mut report, engine);
        if settings.growth {
            growth(&settings, &mut report, engine);
        }
        loads.push(format!("after {}: {}", engine.as_str(), loadavg()));
    }
    // Needs PostgreSQL whatever the engines (`AIRLOCK_BENCH_ENGINES=` with
    // nothing runs the fleet phase alone).
    if !settings.fleet.is_empty() {
        fleet_phase(&settings, &mut report);
        loads.push(format!("after the fleet: {}", loadavg()));
    }
    report.print_table();
    if let Some(pg) = postgres_version(&settings) {
        machine["postgres"] = json!(pg);
    }
    let summary = report.to_json(&machine, &settings, &loads);
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    if let Some(path) = &settings.json_path {
        std::fs::write(path, serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
    }
}

// ------------------------------------------------------------------ fleet

/// Applies/s on a PostgreSQL source with the ledger on PostgreSQL too, with
/// 1, 2 and 3 executors (separate processes) sharing it: each run proposes
/// `fleet_applies` waivers (one per row) over IPC through the executors'
/// proposer sockets, approves them, then applies them through
/// `apply_clients` operator connections per executor at once.
fn fleet_phase(settings: &Settings, report: &mut Report) {
    use airlock_tests::proposals::{read_of, record, submit, waiver};
    let db = postgres_reference("airlock_bench_fleet_source");
    let mut value = reference_config_for(&db);
    airlock_tests::proposals::capacity_limits(&mut value);
    value["storage"] = json!({"shared_postgres": {
        "mode": "runtime_store", "url_env": "AIRLOCK_LEDGER_DATABASE_URL", "schema": "bench"
    }});
    let cfg = load(&value);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&value).unwrap()).unwrap();
    let n = settings.fleet_applies;
    let per = settings.apply_clients;
    for &k in &settings.fleet {
        let ledger_url = airlock_tests::databases::migrated_ledger_database(
            "airlock_bench_ledger",
            &config_path,
        );
        let env = [
            ("APP_TENANT_ID", TENANT),
            ("APP_WRITE_URL", db.write_url.as_str()),
            ("AIRLOCK_LEDGER_DATABASE_URL", ledger_url.as_str()),
        ];
        let executors: Vec<ExecutorProcess> = (0..k)
            .map(|_| ExecutorProcess::start(&value, &env))
            .collect();
        let prefix = format!("INV-K{k}-");
        let invoices = insert_invoices_into(&db, &prefix, n + 1);
        let rt = multi_thread();
        let ids: Vec<String> = rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for (x, e) in executors.iter().enumerate() {
                let sock = e.proposer_socket();
                let (cfg, mine): (Config, Vec<String>) = (
                    cfg.clone(),
                    invoices.iter().skip(x).step_by(k).cloned().collect(),
                );
                tasks.spawn(async move {
                    let mut c =
                        Client::connect(&sock, Role::Proposer, "bench", Duration::from_secs(30))
                            .await
                            .unwrap();
                    let mut ids = Vec::new();
                    for inv in mine {
                        let args = json!({"invoice_id": inv, "reason": "fleet bench"});
                        let row = airlock_tests::proposals::invoice_row(&inv, TENANT);
                        let ev = record(&mut c, read_of(&cfg, PROPOSAL_TOOL, args, &row, TENANT))
                            .await
                            .unwrap();
                        let p = submit(
                            &mut c,
                            waiver(&cfg, &inv, TENANT, "fleet bench"),
                            Some(ev.evidence_id),
                        )
                        .await
                        .unwrap();
                        ids.push(p.proposal_id);
                    }
                    ids
                });
            }
            let mut ids = Vec::new();
            while let Some(r) = tasks.join_next().await {
                ids.extend(r.unwrap());
            }
            ids
        });
        let sockets: Vec<PathBuf> = executors.iter().map(|e| e.operator_socket()).collect();
        rt.block_on(approve_at(&sockets[0], &ids));
        // The source's first apply creates its receipt table.
        let (warm, batch) = ids.split_at(1);
        let (_, _, outcomes) = rt.block_on(apply_batch_at(&sockets[..1], warm, 1));
        assert_eq!(outcomes.get("applied"), Some(&1), "{outcomes:?}");
        let (rate, lat, counts) = rt.block_on(apply_batch_at(&sockets, batch, k * per));
        assert_eq!(counts.get("applied"), Some(&batch.len()), "{counts:?}");
        let changed = query_strings(
            &db,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM invoices WHERE id LIKE '{prefix}%' AND late_fee_cents = 0"
            ),
        );
        assert_eq!(changed[0][0].as_deref(), Some((n + 1).to_string().as_str()));
        report.add(
            "postgres",
            &format!(
                "applies/s, ledger on PostgreSQL, {k} executor(s) × {per} operator connections"
            ),
            rate,
            "apply/s",
            format!(
                "{} applies; per-apply p50 {:.3} p99 {:.3} ms",
                batch.len(),
                ms(lat.p50),
                ms(lat.p99)
            ),
            (k == 1).then_some(Budget::AtLeast(1000.0)),
        );
        drop(executors);
    }
}

fn postgres_version(settings: &Settings) -> Option<String> {
    if !settings.engines.contains(&Engine::Postgres) && settings.fleet.is_empty() {
        return None;
    }
    current_thread().block_on(async {
        let mut c = sqlx::PgConnection::connect(&airlock_tests::databases::postgres_admin_url())
            .await
            .ok()?;
        let v: (String,) = sqlx::query_as("SELECT version()")
            .fetch_one(&mut c)
            .await
            .ok()?;
        Some(v.0)
    })
}
