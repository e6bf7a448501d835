//! The fault suite (issue 8, item 3): the real processes under the faults
//! an operator will meet — the source database dropping its connections or
//! refusing new ones, the executor restarting under connected proposers,
//! the ledger's disk filling up or turning read-only, and `kill -9` of the
//! executor in the middle of proposal intake. Each test checks the caller
//! gets a clear answer while the fault lasts, that service comes back by
//! itself, and that nothing is lost or half-written (`ledger verify`).
//!
//! Postgres is shared with other suites and the machine, so the server is
//! never restarted: a "restart" is every backend of the test's own database
//! being terminated, and "down" is that database refusing connections.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airlock_ipc::Role;
use airlock_ipc::client::ClientError;
use airlock_ipc::message::{Empty, Request, Response};
use airlock_tests::block_on;
use airlock_tests::databases::{
    Database, ledger_rows, postgres_admin_url, postgres_reference, query_strings,
    reference_config_for,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{HttpProposer, McpClient, call, stdio_client};
use airlock_tests::proposals::{
    WAIVER, invoice_row, load, read_of, record, reference_value, submit, waiver,
};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use sqlx::Connection;

const TOKEN: &str = "fault-suite-bearer-token-0123456789";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// Run SQL on the server's maintenance database (not the test database,
/// which may be refusing connections); returns the first column of each row.
fn server_sql(sql: &str) -> Vec<Option<String>> {
    use sqlx::Row;
    let sql = sql.to_owned();
    block_on(async move {
        let mut c = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .expect("connect to the Postgres server as admin");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<Option<String>, _>(0).unwrap())
            .collect()
    })
}

/// Terminate every backend of `db` (what a server restart does to them);
/// returns how many were terminated.
fn terminate_backends(db: &str) -> usize {
    server_sql(&format!(
        "SELECT CAST(pg_terminate_backend(pid) AS TEXT) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    ))
    .len()
}

fn proposer_backends(db: &str) -> usize {
    server_sql(&format!(
        "SELECT CAST(pid AS TEXT) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'airlock-proposer'"
    ))
    .len()
}

/// Drops the test database when the test ends, however it ends (and lets
/// connections in again first, in case the test stopped while they were refused).
struct DropDatabase(&'static str);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        // Never panic here: this may run while a failed test unwinds.
        let name = self.0;
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut c = sqlx::PgConnection::connect(&postgres_admin_url())
                    .await
                    .ok()?;
                for sql in [
                    format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"),
                    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ] {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut c)
                        .await;
                }
                Some(())
            })
        })
        .join();
    }
}

/// The executor on `db`'s reference config, and the proposer's environment.
struct Stack {
    exec: ExecutorProcess,
    db: Database,
    exec_env: Vec<(&'static str, String)>,
}

impl Stack {
    fn new(db: Database, config: Value) -> Stack {
        Stack::with_setup(db, config, |_| {})
    }

    fn with_setup(db: Database, config: Value, setup: impl FnOnce(&Path)) -> Stack {
        let exec_env = vec![
            ("APP_TENANT_ID", "acme".to_owned()),
            ("APP_WRITE_URL", db.write_url.clone()),
        ];
        let env: Vec<(&str, &str)> = exec_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let exec = ExecutorProcess::start_with_setup(&config, &env, setup);
        Stack { exec, db, exec_env }
    }

    fn proposer_env(&self) -> Vec<(&str, &str)> {
        vec![
            ("APP_READ_URL", self.db.read_url.as_str()),
            ("APP_TENANT_ID", "acme"),
            ("APP_PRINCIPAL", "agent_17"),
        ]
    }

    async fn stdio(&self) -> McpClient {
        stdio_client(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &self.proposer_env(),
            &[],
        )
        .await
    }

    fn restart(&mut self) {
        let env: Vec<(&str, &str)> = self
            .exec_env
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        self.exec.restart(&env);
    }

    fn verify_ledger(&self) -> Value {
        let out = airlock_tests::airlock(&[
            "ledger",
            "verify",
            "--store",
            self.exec.store.to_str().unwrap(),
            "--json",
        ]);
        let report = airlock_tests::stdout_json(&out);
        assert_eq!(out.status.code(), Some(0), "ledger verify: {report}");
        assert_eq!(report["ok"], true, "{report}");
        report
    }

    fn cli_json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.exec.cli(&all);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
                json!({"unparsed_stdout": String::from_utf8_lossy(&out.stdout), "stderr": String::from_utf8_lossy(&out.stderr)})
            }),
        )
    }
}

fn read_args() -> Value {
    json!({"invoice_id": "INV-3001"})
}

async fn read(client: &McpClient) -> Value {
    call(client, "billing__inspect_invoice", read_args())
        .await
        .1
}

async fn propose(client: &McpClient, reason: &str) -> Value {
    call(
        client,
        &airlock_policy::catalog::openai_alias(WAIVER),
        json!({"invoice_id": "INV-3001", "reason": reason}),
    )
    .await
    .1
}

/// `n` reads at once on one session (so several pooled connections are used).
async fn reads_at_once(client: &McpClient, n: usize) -> Vec<Value> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let peer = client.peer().clone();
        set.spawn(async move {
            let params = CallToolRequestParams::new("billing__inspect_invoice")
                .with_arguments(read_args().as_object().cloned().unwrap());
            let r = peer
                .call_tool(params)
                .await
                .expect("tools/call answers at the protocol level");
            r.structured_content.expect("envelope")
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

/// Airlock's own code of a failed call (the envelope's `error.code` is the
/// Synapsor-compatible one it maps to).
fn code(envelope: &Value) -> &str {
    envelope["error"]["airlock_code"].as_str().unwrap_or("")
}

/// A read that failed because of the source must say so plainly.
fn assert_source_unavailable(envelope: &Value) {
    assert_eq!(envelope["ok"], false, "{envelope}");
    assert_eq!(code(envelope), "source_unavailable", "{envelope}");
    let message = envelope["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("database could not be read right now"),
        "{envelope}"
    );
    assert!(
        !message.contains("synapsor_reader_password"),
        "no credential in errors"
    );
}

/// Poll reads until `rounds` consecutive rounds of `n` concurrent reads all
/// succeed; returns how long recovery took. Fails after `limit`.
async fn recovers_within(client: &McpClient, n: usize, limit: Duration, what: &str) -> Duration {
    let start = Instant::now();
    let mut good_rounds = 0;
    let mut last = Vec::new();
    let mut recovered_at = None;
    while good_rounds < 3 {
        assert!(
            start.elapsed() < limit + Duration::from_secs(10),
            "{what}: reads did not recover within {limit:?}; last answers: {last:?}"
        );
        last = reads_at_once(client, n).await;
        if last.iter().all(|e| e["ok"] == true) {
            recovered_at.get_or_insert(start.elapsed());
            good_rounds += 1;
        } else {
            for e in &last {
                if e["ok"] != true {
                    assert_source_unavailable(e);
                }
            }
            assert!(
                good_rounds == 0,
                "{what}: reads failed again after recovering (a stuck or flapping pool): {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let took = recovered_at.unwrap();
    assert!(
        took <= limit,
        "{what}: reads recovered only after {took:?} (limit {limit:?})"
    );
    took
}

/// (a) The source database "restarts" under a live session: the backends
/// are terminated, then the database refuses connections for a moment.
#[test]
fn source_database_restart_mid_session_recovers_with_clear_errors() {
    const DB: &str = "airlock_fault_source";
    let _drop = DropDatabase(DB);
    let db = postgres_reference(DB);
    let mut config = reference_config_for(&db);
    // A short timeout keeps the "database refuses connections" wait short.
    config["sources"]["app"]["statement_timeout_ms"] = json!(1000);
    let stack = Stack::new(db, config);
    rt().block_on(async {
        let client = stack.stdio().await;
        for e in reads_at_once(&client, 8).await {
            assert_eq!(e["ok"], true, "{e}");
            assert!(e["evidence"]["bundle_id"].is_string(), "{e}");
        }
        let pooled = proposer_backends(DB);
        assert!(pooled >= 1, "the proposer holds pooled connections");

        // 1. Every backend terminated (what a server restart does to them).
        let killed = terminate_backends(DB);
        assert!(killed >= pooled, "terminated {killed} of {pooled} backends");
        let first = reads_at_once(&client, 8).await;
        let (ok, failed): (Vec<&Value>, Vec<&Value>) = first.iter().partition(|e| e["ok"] == true);
        for e in &failed {
            assert_source_unavailable(e);
        }
        for e in &ok {
            assert_eq!(e["data"]["late_fee_cents"], 5500, "{e}");
        }
        let took = recovers_within(&client, 8, Duration::from_secs(5), "after terminate").await;
        eprintln!(
            "FAULT source-terminate: {pooled} pooled backends terminated; next 8 reads: {} ok, {} source_unavailable; all reads ok again after {took:?}",
            ok.len(),
            failed.len()
        );

        // 2. The database refuses connections for a moment.
        server_sql(&format!("ALTER DATABASE \"{DB}\" ALLOW_CONNECTIONS false"));
        terminate_backends(DB);
        let t = Instant::now();
        let down = read(&client).await;
        let waited = t.elapsed();
        assert_source_unavailable(&down);
        assert!(
            waited < Duration::from_secs(10),
            "the error comes within the acquire limit, not after a hang ({waited:?})"
        );
        let proposal = propose(&client, "while the database is down").await;
        assert_source_unavailable(&proposal);
        // Every read while it stays down is answered promptly, never hangs.
        let down_since = Instant::now();
        let mut answered = 0;
        while down_since.elapsed() < Duration::from_millis(1500) {
            let t = Instant::now();
            for e in reads_at_once(&client, 4).await {
                assert_source_unavailable(&e);
                answered += 1;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "a read hung while the database was down");
        }
        server_sql(&format!("ALTER DATABASE \"{DB}\" ALLOW_CONNECTIONS true"));
        let took = recovers_within(&client, 8, Duration::from_secs(5), "after refusing").await;
        eprintln!(
            "FAULT source-refusing: first read answered source_unavailable after {waited:?} ({}); {answered} more reads in 1.5 s all source_unavailable; reads ok again {took:?} after connections were allowed",
            down["error"]["message"].as_str().unwrap_or("")
        );

        // Proposals work again, and the failed one left nothing behind.
        let ok = propose(&client, "after the database came back").await;
        assert_eq!(ok["proposal"]["state"], "review_required", "{ok}");
        client.cancel().await.unwrap();
    });
    let (_, list) = stack.cli_json(&["proposals", "list"]);
    assert_eq!(
        list["proposals"].as_array().unwrap().len(),
        1,
        "only the proposal made after recovery: {list}"
    );
    stack.verify_ledger();
}

/// (b) SIGTERM and restart of the executor while a stdio and an HTTP
/// proposer session stay open.
#[test]
fn executor_restart_under_connected_proposers_loses_nothing() {
    const DB: &str = "airlock_fault_exec_restart";
    let _drop = DropDatabase(DB);
    let db = postgres_reference(DB);
    let config = reference_config_for(&db);
    let mut stack = Stack::new(db, config);
    let mut http_env = stack.proposer_env();
    http_env.push(("MCP_TOKEN", TOKEN));
    let http = HttpProposer::start(
        &stack.exec.config_path,
        &stack.exec.socket_dir,
        &http_env,
        &["--auth-token-env", "MCP_TOKEN"],
    );
    let rt = rt();
    let stdio = rt.block_on(stack.stdio());
    let web = rt.block_on(http.client(Some(TOKEN)));
    let mut before = Vec::new();
    rt.block_on(async {
        // Use every one of the proposer's executor connections before the restart.
        for i in 0..6 {
            let e = read(&stdio).await;
            assert!(e["evidence"]["bundle_id"].is_string(), "{e}");
            let p = propose(&stdio, &format!("before restart {i}")).await;
            assert_eq!(p["proposal"]["state"], "review_required", "{p}");
            before.push(p["proposal"]["id"].as_str().unwrap().to_owned());
        }
        let (_, p) = call(
            &web,
            "support__propose_ticket_resolution",
            json!({"ticket_id": "T-1042", "resolution_note": "before restart (http)"}),
        )
        .await;
        assert_eq!(p["proposal"]["state"], "review_required", "{p}");
        before.push(p["proposal"]["id"].as_str().unwrap().to_owned());
    });

    assert!(stack.exec.stop().success(), "SIGTERM: a clean exit");
    rt.block_on(async {
        // While it is down: reads still answer (without evidence), proposals fail clearly.
        let e = read(&stdio).await;
        assert_eq!(e["ok"], true, "{e}");
        assert_eq!(e["evidence"], Value::Null, "{e}");
        let p = propose(&stdio, "while the executor is down").await;
        assert_eq!(code(&p), "executor_unavailable", "{p}");
    });

    stack.restart();
    // First thing after the restart: proposals, enough to use every pooled
    // executor connection of each proposer. (transport, note, envelope)
    let mut after = Vec::new();
    let mut failed: Vec<(&str, String, Value)> = Vec::new();
    rt.block_on(async {
        for i in 0..8 {
            let note = format!("after restart {i}");
            let p = propose(&stdio, &note).await;
            match p["proposal"]["id"].as_str() {
                Some(id) => after.push(id.to_owned()),
                None => failed.push(("stdio", note, p)),
            }
        }
        for i in 0..4 {
            let note = format!("after restart (http) {i}");
            let (_, p) = call(
                &web,
                "support__propose_ticket_resolution",
                json!({"ticket_id": "T-1042", "resolution_note": note}),
            )
            .await;
            match p["proposal"]["id"].as_str() {
                Some(id) => after.push(id.to_owned()),
                None => failed.push(("http", note, p)),
            }
        }
        for client in [&stdio, &web] {
            for _ in 0..4 {
                let e = read(client).await;
                assert!(
                    e["evidence"]["bundle_id"].is_string(),
                    "reads record evidence again: {e}"
                );
            }
        }
    });
    let (_, list) = stack.cli_json(&["proposals", "list"]);
    let listed: BTreeSet<String> = list["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["proposal_id"].as_str().unwrap().to_owned())
        .collect();
    for id in before.iter().chain(&after) {
        assert!(listed.contains(id), "{id} is still listed: {list}");
    }
    assert_eq!(
        listed.len(),
        before.len() + after.len(),
        "nothing else was recorded (a failed submission left nothing): {list}"
    );
    let failures: Vec<String> = failed
        .iter()
        .map(|(transport, note, e)| {
            format!(
                "{transport} {note:?} -> {}: {}",
                code(e),
                e["error"]["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    eprintln!(
        "FAULT executor-restart: {} proposals before and {} after the restart, all listed; {} failed after the restart (none of them recorded): {failures:#?}",
        before.len(),
        after.len(),
        failed.len()
    );
    // A proposal made before the restart is still decidable and applies once.
    let (code_, out) = stack.cli_json(&["proposals", "approve", &before[0], "--yes", "--apply"]);
    assert_eq!(code_, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(
        query_strings(
            &stack.db,
            "SELECT CAST(late_fee_cents AS TEXT) FROM invoices WHERE id = 'INV-3001'"
        )[0][0]
            .as_deref(),
        Some("0")
    );
    rt.block_on(async {
        stdio.cancel().await.unwrap();
        web.cancel().await.unwrap();
    });
    stack.verify_ledger();
    assert!(
        failed.is_empty(),
        "every proposal after the restart must succeed: none of these reached an executor (none is in the ledger), yet the proposer answered: {failures:#?}"
    );
}

/// Undoes `chattr +i` on drop, so the temporary directory can be removed.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: Vec<PathBuf>) -> Immutable {
        for p in &paths {
            assert!(p.exists(), "{} exists", p.display());
            let out = Command::new("chattr").arg("+i").arg(p).output().unwrap();
            assert!(
                out.status.success(),
                "chattr +i {} (the test needs root and a filesystem with inode flags, e.g. ext4): {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Immutable(paths)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(p).status();
        }
    }
}

/// Unmounts the small filesystem on drop, then removes the executor's
/// temporary directory (whose own cleanup cannot remove a mount point).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success())
            || Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status()
                .is_ok_and(|s| s.success());
        if unmounted && let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The ledger's storage faults: the same checks for a full disk and a
/// read-only ledger. `break_it` makes writes fail, `mend` undoes it.
fn ledger_storage_fault(
    stack: &mut Stack,
    what: &str,
    break_it: &dyn Fn(&Stack) -> Box<dyn std::any::Any>,
    log_needle: &str,
    cause_needle: &str,
) {
    let rt = rt();
    let client = rt.block_on(stack.stdio());
    let (first, second) = rt.block_on(async {
        let a = propose(&client, "before the fault").await;
        let b = propose(&client, "also before the fault").await;
        assert_eq!(a["proposal"]["state"], "review_required", "{a}");
        assert_eq!(b["proposal"]["state"], "review_required", "{b}");
        (
            a["proposal"]["id"].as_str().unwrap().to_owned(),
            b["proposal"]["id"].as_str().unwrap().to_owned(),
        )
    });
    let events_before = stats(&stack.exec)["events"].as_u64().unwrap();

    let fault = break_it(stack);
    let (read_env, proposal_env) = rt.block_on(async {
        (
            read(&client).await,
            propose(&client, "during the fault").await,
        )
    });
    // The caller gets a clear refusal, never a success that was not recorded.
    for (kind, e) in [("read", &read_env), ("proposal", &proposal_env)] {
        assert_eq!(
            e["ok"], false,
            "{what}: a {kind} whose evidence cannot be recorded fails: {e}"
        );
        assert_eq!(code(e), "refused_by_executor", "{what} {kind}: {e}");
        assert_eq!(
            e["error"]["details"]["code"], "internal",
            "{what} {kind}: {e}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains("ledger"),
            "{what} {kind}: the message names the ledger: {e}"
        );
    }
    let (code_, approve) = stack.cli_json(&["proposals", "approve", &first, "--yes"]);
    assert_eq!(code_, Some(1), "{what}: approve fails: {approve}");
    assert_eq!(approve["error"]["code"], "internal", "{what}: {approve}");
    assert!(
        approve["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(cause_needle),
        "{what}: the operator is told the cause ({cause_needle:?}): {approve}"
    );
    // Still serving what needs no write, still alive.
    assert!(stack.exec.is_alive(), "{what}: the executor did not crash");
    let (code_, shown) = stack.cli_json(&["proposals", "show", &first]);
    assert_eq!(
        code_,
        Some(0),
        "{what}: reads of the ledger still work: {shown}"
    );
    assert_eq!(shown["proposal"]["summary"]["state"], "pending_approval");
    assert!(
        stack.exec.log().contains(log_needle),
        "{what}: the executor's log says why ({log_needle:?}):\n{}",
        stack.exec.log()
    );
    drop(fault);

    // Mended: everything works again, nothing of the failed attempts remains.
    let events_mended = stats(&stack.exec)["events"].as_u64().unwrap();
    assert_eq!(
        events_mended, events_before,
        "{what}: the failed writes left no events"
    );
    let after = rt.block_on(propose(&client, "after the fault"));
    assert_eq!(
        after["proposal"]["state"], "review_required",
        "{what}: {after}"
    );
    let (code_, out) = stack.cli_json(&["proposals", "approve", &first, "--yes", "--apply"]);
    assert_eq!(code_, Some(0), "{what}: {out}");
    assert_eq!(out["writeback"]["status"], "applied", "{what}: {out}");
    let (code_, _) = stack.cli_json(&["proposals", "reject", &second, "--reason", "test"]);
    assert_eq!(code_, Some(0));
    stack.verify_ledger();
    // A restart finds the same ledger.
    assert!(stack.exec.stop().success());
    let report = stack.verify_ledger();
    stack.restart();
    let (_, list) = stack.cli_json(&["proposals", "list"]);
    assert_eq!(
        list["proposals"].as_array().unwrap().len(),
        3,
        "{what}: {list}"
    );
    eprintln!(
        "FAULT {what}: read and proposal refused with `{}`; approve refused (internal); executor alive; after mending: proposal, approve+apply ok, ledger verify ok ({} events)",
        proposal_env["error"]["message"].as_str().unwrap_or(""),
        report["events"]
    );
    rt.block_on(client.cancel()).unwrap();
}

/// The executor's `stats`, from the operator socket.
fn stats(exec: &ExecutorProcess) -> Value {
    block_on(async {
        let mut op = exec.client(Role::Operator).await;
        match op.call(Request::Stats(Empty {})).await.unwrap() {
            Response::Stats(s) => json!({"events": s.events, "proposals": s.proposals}),
            other => panic!("{other:?}"),
        }
    })
}

/// (c1) The ledger's filesystem is full: writes fail clearly, the executor
/// stays up, and after space is freed everything works and verifies.
#[test]
fn ledger_disk_full_is_a_clear_error_and_nothing_is_corrupted() {
    const DB: &str = "airlock_fault_disk_full";
    let _drop = DropDatabase(DB);
    let db = postgres_reference(DB);
    let config = reference_config_for(&db);
    let mut mounted = None;
    let mut stack = Stack::with_setup(db, config, |dir| {
        let ledger_dir = dir.join("ledger");
        std::fs::create_dir_all(&ledger_dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=2m,mode=0700",
                "airlock-fault-tmpfs",
            ])
            .arg(&ledger_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a 2 MiB tmpfs for the ledger needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        mounted = Some(Mounted(ledger_dir));
    });
    let filler = stack.exec.store.with_file_name("filler");
    let fill = {
        let filler = filler.clone();
        move |_: &Stack| -> Box<dyn std::any::Any> {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0u8; 4096];
            let mut written = 0usize;
            while f.write_all(&chunk).is_ok() {
                written += chunk.len();
                assert!(written < 64 << 20, "the small filesystem never filled up");
            }
            let _ = f.sync_all();
            struct Freed(PathBuf);
            impl Drop for Freed {
                fn drop(&mut self) {
                    let _ = std::fs::remove_file(&self.0);
                }
            }
            Box::new(Freed(filler.clone()))
        }
    };
    ledger_storage_fault(
        &mut stack,
        "ledger disk full",
        &fill,
        "database or disk is full",
        "the disk holding the ledger is full",
    );
    assert!(stack.exec.stop().success());
    drop(mounted);
    drop(stack);
}

/// (c2) The ledger's files turn read-only (`chattr +i`, which binds root
/// too): writes fail clearly, the executor stays up, and after the flag is
/// removed everything works and verifies. (The `-shm` index is left alone:
/// SQLite maps it into memory, and an immutable shared mapping faults with
/// SIGBUS in any process — that is not a state a read-only disk produces.)
#[test]
fn ledger_read_only_is_a_clear_error_and_nothing_is_corrupted() {
    const DB: &str = "airlock_fault_read_only";
    let _drop = DropDatabase(DB);
    let db = postgres_reference(DB);
    let config = reference_config_for(&db);
    let mut stack = Stack::new(db, config);
    let store = stack.exec.store.clone();
    let freeze = move |_: &Stack| -> Box<dyn std::any::Any> {
        let wal = PathBuf::from(format!("{}-wal", store.display()));
        Box::new(Immutable::set(vec![store.clone(), wal]))
    };
    ledger_storage_fault(
        &mut stack,
        "ledger read-only",
        &freeze,
        "disk I/O error",
        "I/O error",
    );
}

fn count(store: &Path, sql: &str) -> u64 {
    ledger_rows(store, sql)[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// No record row without its event and no event without its row.
fn assert_no_half_rows(store: &Path) {
    for (what, sql) in [
        (
            "proposal rows without their event",
            "SELECT CAST(count(*) AS TEXT) FROM proposals p LEFT JOIN events e ON e.seq = p.seq AND e.kind = 'proposal_recorded' AND e.proposal_id = p.proposal_id WHERE e.seq IS NULL",
        ),
        (
            "proposal events without their row",
            "SELECT CAST(count(*) AS TEXT) FROM events e LEFT JOIN proposals p ON p.seq = e.seq WHERE e.kind = 'proposal_recorded' AND p.seq IS NULL",
        ),
        (
            "evidence rows without their event",
            "SELECT CAST(count(*) AS TEXT) FROM evidence v LEFT JOIN events e ON e.seq = v.seq AND e.kind = 'read_recorded' WHERE e.seq IS NULL",
        ),
        (
            "evidence events without their row",
            "SELECT CAST(count(*) AS TEXT) FROM events e LEFT JOIN evidence v ON v.seq = e.seq WHERE e.kind = 'read_recorded' AND v.seq IS NULL",
        ),
    ] {
        assert_eq!(count(store, sql), 0, "{what}");
    }
}

/// reason → proposal ids in the ledger.
fn ledger_reasons(store: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in ledger_rows(
        store,
        "SELECT proposal_id, json_extract(change_set, '$.args.reason') FROM proposals",
    ) {
        out.entry(row[1].clone().unwrap_or_default())
            .or_default()
            .push(row[0].clone().unwrap());
    }
    out
}

fn kill_9(exec: &mut ExecutorProcess) {
    let _ = Command::new("kill")
        .args(["-KILL", &exec.pid().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while exec.is_alive() {
        assert!(Instant::now() < deadline, "the executor survived kill -9");
        std::thread::sleep(Duration::from_millis(10));
    }
    exec.reap();
}

/// One round of (d1): `clients` connections submit as fast as they can
/// until `kill_after` are acknowledged, then the executor is killed.
/// Returns (reason, Ok(proposal id) | Err(how the submission failed)).
fn submit_until_killed(
    exec: &mut ExecutorProcess,
    rt: &tokio::runtime::Runtime,
    round: usize,
    clients: usize,
    kill_after: usize,
) -> Vec<(String, Result<String, String>)> {
    let cfg = Arc::new(load(&reference_value()));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let cfg = Arc::clone(&cfg);
            let acknowledged = Arc::clone(&acknowledged);
            let socket = exec.proposer_socket();
            rt.spawn(async move {
                let mut client = airlock_ipc::client::Client::connect(
                    &socket,
                    Role::Proposer,
                    "fault-suite",
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
                let mut outcomes = Vec::new();
                for n in 0..5_000 {
                    let reason = format!("kill9 r{round} c{c} n{n}");
                    let args = json!({"invoice_id": "INV-3001", "reason": reason});
                    let read =
                        read_of(&cfg, WAIVER, args, &invoice_row("INV-3001", "acme"), "acme");
                    let Ok(ev) = record(&mut client, read).await else {
                        break; // nothing submitted: the executor is gone
                    };
                    let change_set = waiver(&cfg, "INV-3001", "acme", &reason);
                    match submit(&mut client, change_set, Some(ev.evidence_id)).await {
                        Ok(r) => {
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                            outcomes.push((reason, Ok(r.proposal_id)));
                        }
                        Err(ClientError::Refused(e)) => {
                            outcomes.push((reason, Err(format!("refused: {}", e.code.as_str()))));
                            break;
                        }
                        Err(e) => {
                            outcomes.push((reason, Err(format!("lost: {e}"))));
                            break;
                        }
                    }
                }
                outcomes
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.load(Ordering::Relaxed) < kill_after {
        assert!(Instant::now() < deadline, "submissions did not get going");
        std::thread::sleep(Duration::from_millis(2));
    }
    kill_9(exec);
    handles
        .into_iter()
        .flat_map(|h| rt.block_on(h).unwrap())
        .collect()
}

/// (d1) kill -9 while 16 proposer connections submit as fast as they can,
/// three times: every acknowledged proposal is in the ledger, every
/// proposal in the ledger was submitted once, and the ones in flight at the
/// kill are whole or absent.
#[test]
fn kill_9_during_intake_leaves_each_proposal_whole_or_absent() {
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 3;
    let env = [("SYNAPSOR_TENANT_ID", "acme")];
    let mut exec = ExecutorProcess::start(&reference_value(), &env);
    let rt = rt();
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        outcomes.extend(submit_until_killed(&mut exec, &rt, round, CLIENTS, 100));
        exec.restart(&env);
        assert!(
            exec.log().contains("removed a stale socket"),
            "the restart reclaims the killed executor's sockets"
        );
    }

    let ledger = ledger_reasons(&exec.store);
    let mut acked = 0;
    let (mut unknown_recorded, mut unknown_absent) = (0, 0);
    for (reason, outcome) in &outcomes {
        let found = ledger.get(reason).cloned().unwrap_or_default();
        assert!(found.len() <= 1, "{reason} recorded twice: {found:?}");
        match outcome {
            Ok(id) => {
                acked += 1;
                assert_eq!(
                    found,
                    std::slice::from_ref(id),
                    "acknowledged {reason} must be in the ledger"
                );
            }
            Err(how) => {
                assert!(
                    how.starts_with("lost:"),
                    "{reason}: only connection loss is expected: {how}"
                );
                if found.is_empty() {
                    unknown_absent += 1;
                } else {
                    unknown_recorded += 1;
                }
            }
        }
    }
    let submitted: BTreeSet<&String> = outcomes.iter().map(|(r, _)| r).collect();
    for reason in ledger.keys() {
        assert!(
            submitted.contains(reason),
            "{reason} in the ledger was never submitted"
        );
    }
    assert_eq!(
        ledger.values().map(Vec::len).sum::<usize>(),
        acked + unknown_recorded,
        "the ledger holds exactly the acknowledged proposals plus in-flight ones that committed"
    );
    assert!(unknown_absent + unknown_recorded <= CLIENTS * ROUNDS);
    assert_no_half_rows(&exec.store);
    let out = airlock_tests::airlock(&[
        "ledger",
        "verify",
        "--store",
        exec.store.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And it keeps serving.
    let cfg = load(&reference_value());
    rt.block_on(async {
        let mut p = exec.client(Role::Proposer).await;
        let r = airlock_tests::proposals::honest_proposal(&mut p, &cfg, "after kill -9").await;
        assert!(r.proposal_id.starts_with("wrp_"));
    });
    eprintln!(
        "FAULT kill-9 intake (IPC): {ROUNDS} rounds of {CLIENTS} connections, each killed after 100 acknowledged; {acked} acknowledged, all in the ledger; {} in flight at the kills: {unknown_recorded} recorded whole, {unknown_absent} absent; 0 duplicates, 0 half rows, ledger verify ok",
        unknown_recorded + unknown_absent
    );
}

/// (d2) The same through real proposers: each MCP answer says which —
/// success (recorded), `executor_unavailable` (never sent, not recorded)
/// or `outcome_unknown` (in flight; the ledger then has it whole or not at all).
#[test]
fn kill_9_during_mcp_proposals_each_answer_tells_the_truth() {
    const DB: &str = "airlock_fault_kill9_mcp";
    const PROPOSERS: usize = 4;
    let _drop = DropDatabase(DB);
    let db = postgres_reference(DB);
    let config = reference_config_for(&db);
    let mut stack = Stack::new(db, config);
    let rt = rt();
    let clients: Vec<Arc<McpClient>> = (0..PROPOSERS)
        .map(|_| Arc::new(rt.block_on(stack.stdio())))
        .collect();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(p, client)| {
            let client = Arc::clone(client);
            let acknowledged = Arc::clone(&acknowledged);
            rt.spawn(async move {
                let mut outcomes: Vec<(String, Value)> = Vec::new();
                for n in 0..2_000 {
                    let reason = format!("mcp kill9 p{p} n{n}");
                    let e = propose(&client, &reason).await;
                    let ok = e["ok"] == true;
                    outcomes.push((reason, e));
                    if ok {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    } else {
                        break;
                    }
                }
                outcomes
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.load(Ordering::Relaxed) < 40 {
        assert!(Instant::now() < deadline, "proposals did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    kill_9(&mut stack.exec);
    let outcomes: Vec<(String, Value)> = handles
        .into_iter()
        .flat_map(|h| rt.block_on(h).unwrap())
        .collect();
    stack.restart();
    let ledger = ledger_reasons(&stack.exec.store);
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for (reason, e) in &outcomes {
        let found = ledger.get(reason).cloned().unwrap_or_default();
        assert!(found.len() <= 1, "{reason} recorded twice: {found:?}");
        let label = if e["ok"] == true {
            let id = e["proposal"]["id"].as_str().unwrap();
            assert_eq!(
                found,
                [id.to_owned()],
                "{reason}: answered ok, must be in the ledger"
            );
            "ok (recorded)".to_owned()
        } else {
            match code(e) {
                "executor_unavailable" => {
                    assert!(
                        found.is_empty(),
                        "{reason}: `executor_unavailable` but recorded: {e}"
                    );
                    "executor_unavailable (not recorded)".to_owned()
                }
                "outcome_unknown" => {
                    assert!(
                        e["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains("may or may not"),
                        "{e}"
                    );
                    format!(
                        "outcome_unknown ({})",
                        if found.is_empty() {
                            "ledger: absent"
                        } else {
                            "ledger: recorded whole"
                        }
                    )
                }
                other => panic!("{reason}: unexpected answer `{other}` after kill -9: {e}"),
            }
        };
        *tally.entry(label).or_default() += 1;
    }
    for reason in ledger.keys() {
        assert!(
            outcomes.iter().any(|(r, _)| r == reason),
            "{reason} in the ledger was never submitted"
        );
    }
    assert_no_half_rows(&stack.exec.store);
    stack.verify_ledger();
    // The proposers carry on by themselves against the restarted executor.
    rt.block_on(async {
        for (i, c) in clients.iter().enumerate() {
            let mut last = Value::Null;
            for _ in 0..5 {
                last = propose(c, &format!("after the restart {i}")).await;
                if last["ok"] == true {
                    break;
                }
            }
            assert_eq!(last["ok"], true, "proposer {i} works again: {last}");
        }
    });
    eprintln!(
        "FAULT kill-9 intake (MCP, {PROPOSERS} proposers): {tally:?}; 0 duplicates, 0 half rows, ledger verify ok"
    );
    for c in clients {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = rt.block_on(c.cancel());
        }
    }
}
