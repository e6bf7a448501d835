//! `airlock demo`: the whole idea in one command, with no setup.
//!
//! An embedded SQLite billing database with two tenants, a reviewed config,
//! the executor and the proposer as two separate processes, and this CLI as
//! both the model's MCP client and the person who approves.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use airlock_ipc::Role;
use airlock_ipc::client::Client;
use airlock_ipc::message::{Approve, ProposalRef, Request, Response};
use serde_json::{Value, json};

use super::output::{Exit, fail, say, shell_word};
use super::proposer_session::{Launch, ProposerSession, resolve_tool, sibling};

const SCHEMA: &str = "
CREATE TABLE invoices (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  customer TEXT NOT NULL,
  status TEXT NOT NULL,
  balance_cents INTEGER NOT NULL,
  late_fee_cents INTEGER NOT NULL,
  waiver_reason TEXT,
  updated_at TEXT NOT NULL
);
INSERT INTO invoices VALUES
  ('INV-3001', 'acme',    'Acme Robotics',  'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z'),
  ('INV-3002', 'acme',    'Acme Field Ops', 'overdue', 12000, 2500, NULL, '2026-06-20T14:40:00Z'),
  ('INV-9001', 'otherco', 'OtherCo Labs',   'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z');
";

/// The demo's reviewed config. Its ledger and socket paths are absolute and
/// inside `dir`, so a kept directory works with `--config DIR/airlock.json`
/// from anywhere, after the demo has ended.
fn config(dir: &Path) -> Value {
    json!({
        "version": 1,
        "mode": "review",
        "storage": {"sqlite_path": dir.join("ledger.db")},
        "airlock": {"socket_dir": dir.join("run")},
        "sources": {"billing_db": {"engine": "sqlite", "read_url_env": "DEMO_READ_URL", "write_url_env": "DEMO_WRITE_URL", "statement_timeout_ms": 2000}},
        "trusted_context": {"provider": "environment", "values": {"tenant_id_env": "DEMO_TENANT_ID", "principal_env": "DEMO_PRINCIPAL"}},
        "capabilities": [
            {
                "name": "billing.inspect_invoice",
                "kind": "read",
                "source": "billing_db",
                "description": "Look up one invoice of the current customer account.",
                "target": {"schema": "main", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
                "args": {"invoice_id": {"type": "string", "required": true, "max_length": 64}},
                "lookup": {"id_from_arg": "invoice_id"},
                "visible_columns": ["id", "tenant_id", "customer", "status", "balance_cents", "late_fee_cents", "waiver_reason", "updated_at"]
            },
            {
                "name": "billing.propose_late_fee_waiver",
                "kind": "proposal",
                "source": "billing_db",
                "description": "Propose waiving an invoice's late fee, with a reason.",
                "target": {"schema": "main", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
                "args": {
                    "invoice_id": {"type": "string", "required": true, "max_length": 64},
                    "reason": {"type": "string", "required": true, "max_length": 500}
                },
                "lookup": {"id_from_arg": "invoice_id"},
                "visible_columns": ["id", "tenant_id", "customer", "status", "balance_cents", "late_fee_cents", "waiver_reason", "updated_at"],
                "patch": {"late_fee_cents": {"fixed": 0}, "waiver_reason": {"from_arg": "reason"}},
                "allowed_columns": ["late_fee_cents", "waiver_reason"],
                "numeric_bounds": {"late_fee_cents": {"minimum": 0, "maximum": 100000}},
                "conflict_guard": {"column": "updated_at"},
                "approval": {"mode": "human", "required_role": "billing_lead"}
            }
        ]
    })
}

async fn apply_once(
    op: &mut Client,
    proposal_id: String,
) -> Result<airlock_ipc::message::WritebackResult, String> {
    match op
        .call(Request::Apply(ProposalRef { proposal_id }))
        .await
        .map_err(|e| e.to_string())?
    {
        Response::Writeback(w) => Ok(w),
        other => Err(format!("unexpected {}", other.type_name())),
    }
}

/// Kills the spawned executor when the demo ends, however it ends.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn step(n: u32, title: &str) {
    say!("\n── {n}. {title} ──");
}

fn invoice(db: &Path, id: &str) -> Result<(i64, Option<String>, String), String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    conn.query_row(
        "SELECT late_fee_cents, waiver_reason, updated_at FROM invoices WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(|e| e.to_string())
}

fn ask(question: &str) -> bool {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok()
        && matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

pub fn run(yes: bool, keep: Option<&Path>) -> Exit {
    let temp;
    let dir: PathBuf = match keep {
        Some(d) => match prepare_keep_dir(d) {
            Ok(abs) => abs,
            Err(e) => return fail(false, "keep", &e, Exit::Failure),
        },
        None => {
            temp = std::env::temp_dir().join(format!("airlock-demo-{}", std::process::id()));
            temp.clone()
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(false, "runtime", &e.to_string(), Exit::Failure),
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = demo(&dir, yes) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted; the demo's processes were stopped".to_owned()),
        }
    });
    match (&result, keep) {
        (Ok(ids), Some(_)) => print_next_steps(&dir, ids),
        (_, None) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => {}
    }
    match result {
        Ok(_) => Exit::Ok,
        Err(e) => fail(false, "demo", &e, Exit::Failure),
    }
}

/// `--keep DIR`: a new or empty directory, made absolute (the kept config
/// names its files by absolute path). A non-empty one is refused before
/// anything is written: the demo would otherwise mix its ledger, database
/// and config with files that are not its own.
fn prepare_keep_dir(dir: &Path) -> Result<PathBuf, String> {
    let abs =
        std::path::absolute(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    match std::fs::symlink_metadata(&abs) {
        Ok(meta) if !meta.is_dir() => {
            return Err(format!(
                "--keep {}: it exists and is not a directory; give a new or empty directory",
                abs.display()
            ));
        }
        Ok(_) => {
            let mut entries = std::fs::read_dir(&abs)
                .map_err(|e| format!("--keep {}: cannot read it: {e}", abs.display()))?;
            if entries.next().is_some() {
                return Err(format!(
                    "--keep {}: the directory is not empty; give a new or empty directory (nothing was written)",
                    abs.display()
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("--keep {}: {e}", abs.display())),
    }
    private_dir(&abs).map_err(|e| format!("cannot create {}: {e}", abs.display()))?;
    Ok(abs)
}

/// The ids the demo created, for the commands printed after a kept run.
#[derive(Debug)]
struct DemoIds {
    proposal: String,
    evidence: Option<String>,
}

fn path_word(p: &Path) -> String {
    shell_word(&p.display().to_string())
}

/// After `--keep`: what is in the directory, and the exact commands that
/// use it (the executor is stopped when the demo ends).
fn print_next_steps(dir: &Path, ids: &DemoIds) {
    let bin = |name: &str| sibling(name).map_or_else(|_| name.to_owned(), |p| path_word(&p));
    let airlock = std::env::current_exe().map_or_else(|_| "airlock".to_owned(), |p| path_word(&p));
    let config = path_word(&dir.join("airlock.json"));
    let url = shell_word(&format!("sqlite://{}", dir.join("billing.db").display()));
    say!("\nKept in {}:", dir.display());
    say!(
        "  airlock.json  the reviewed config; its ledger (storage.sqlite_path) and sockets (airlock.socket_dir) are in this directory"
    );
    say!("  billing.db    the demo's SQLite database");
    say!("  ledger.db     the executor's hash-chained ledger");
    say!(
        "\nThe demo stopped its executor. Start it again on the kept ledger (it holds the write URL; leave it running):"
    );
    say!(
        "  DEMO_WRITE_URL={url} DEMO_TENANT_ID=acme {} serve --config {config}",
        bin("airlock-executor")
    );
    say!("Then, in another shell:");
    say!("  {airlock} proposals list --config {config}");
    say!(
        "  {airlock} replay show {} --config {config}",
        shell_word(&ids.proposal)
    );
    if let Some(ev) = &ids.evidence {
        say!(
            "  {airlock} evidence show {} --config {config}",
            shell_word(ev)
        );
    }
    say!(
        "  DEMO_READ_URL={url} DEMO_TENANT_ID=acme DEMO_PRINCIPAL=demo-agent {airlock} smoke call billing.inspect_invoice --args '{{\"invoice_id\": \"INV-3002\"}}' --config {config}"
    );
}

/// A directory that holds a ledger (the demo's, `start`'s `.airlock/`):
/// created 0700 (the executor refuses a ledger directory others can reach
/// and never chmods one).
pub(super) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The evidence id in a result envelope (`evidence.bundle_id`).
fn evidence_id(envelope: &Value) -> Option<String> {
    envelope["evidence"]["bundle_id"]
        .as_str()
        .map(str::to_owned)
}

async fn demo(dir: &Path, yes: bool) -> Result<DemoIds, String> {
    let executor_bin = sibling("airlock-executor")?;
    let _ = std::fs::remove_dir_all(dir.join("run"));
    private_dir(dir).map_err(|e| e.to_string())?;
    let db = dir.join("billing.db");
    let _ = std::fs::remove_file(&db);
    rusqlite::Connection::open(&db)
        .and_then(|c| c.execute_batch(SCHEMA))
        .map_err(|e| format!("cannot create the demo database: {e}"))?;
    let config_path = dir.join("airlock.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&config(dir)).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    let socket_dir = dir.join("run");
    let url = format!("sqlite://{}", db.display());
    let path = std::env::var_os("PATH").unwrap_or_default();

    say!("Airlock demo — everything lives in {}", dir.display());
    step(1, "Two processes, two authorities");
    // Both processes find the ledger and the sockets through the config
    // alone, exactly as the commands printed for a kept directory do.
    let executor = std::process::Command::new(&executor_bin)
        .args(["serve", "--config"])
        .arg(&config_path)
        .env_clear()
        .env("PATH", &path)
        .env("DEMO_WRITE_URL", &url)
        .env("DEMO_TENANT_ID", "acme")
        .env("AIRLOCK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start airlock-executor: {e}"))?;
    let guard = ChildGuard(Some(executor));
    let exec_pid = guard.0.as_ref().map_or(0, std::process::Child::id);
    for _ in 0..200 {
        if socket_dir.join("operator.sock").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The proposer gets the read URL and the trusted context — nothing else.
    let mcp = ProposerSession::start(Launch {
        config: &config_path,
        socket_dir: None,
        extra: Vec::new(),
        env: vec![
            ("PATH".into(), path.clone()),
            ("DEMO_READ_URL".into(), url.clone().into()),
            ("DEMO_TENANT_ID".into(), "acme".into()),
            ("DEMO_PRINCIPAL".into(), "demo-agent".into()),
            ("AIRLOCK_LOG".into(), "warn".into()),
        ],
    })
    .await?;
    let proposer_pid = mcp.pid();
    say!("  executor  pid {exec_pid:<7} holds the write URL, the ledger and the approval rules");
    say!(
        "  proposer  pid {proposer_pid:<7} holds only the read URL and the tenant (acme); sandboxed: no exec, no ptrace"
    );

    step(2, "What the model sees");
    let tools = mcp.tool_names().await?;
    for t in &tools {
        say!("  {t}");
    }
    say!("  (no SQL tool, no approve/apply/commit tool, no tenant argument)");

    // Each capability under the name the proposer offers it by.
    let call = |capability: &str, args: Value| {
        let name = resolve_tool(&tools, capability)
            .unwrap_or(capability)
            .to_owned();
        let mcp = &mcp;
        async move { mcp.call(&name, args).await }
    };

    step(3, "The model reads an invoice");
    let env = call("billing.inspect_invoice", json!({"invoice_id": "INV-3001"})).await?;
    say!(
        "  INV-3001: late fee {} cents, updated {}",
        env["data"]["late_fee_cents"],
        env["data"]["updated_at"]
    );
    let evidence = evidence_id(&env);
    say!(
        "  evidence recorded by the executor: {}",
        evidence.as_deref().unwrap_or("none")
    );

    step(4, "The model proposes a late-fee waiver");
    let env = call(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "first late payment in five years"}),
    )
    .await?;
    let id = env["proposal"]["id"]
        .as_str()
        .ok_or_else(|| format!("proposal failed: {env}"))?
        .to_owned();
    for (column, d) in env["proposal"]["diff"].as_object().into_iter().flatten() {
        say!("  {column}: {} → {}", d["before"], d["proposed"]);
    }
    let (fee, _, _) = invoice(&db, "INV-3001")?;
    say!(
        "  proposal {id} is pending approval; the database still says late fee {fee} (read back from SQLite)"
    );

    step(5, "Another tenant's invoice is invisible");
    let env = call("billing.inspect_invoice", json!({"invoice_id": "INV-9001"})).await?;
    say!(
        "  INV-9001 (tenant otherco): {}",
        env["error"]["message"].as_str().unwrap_or("?")
    );

    step(6, "A person approves, outside the model's reach");
    let mut op = Client::connect(
        &socket_dir.join("operator.sock"),
        Role::Operator,
        "demo",
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| e.to_string())?;
    let auto_approved = !yes && !std::io::stdin().is_terminal();
    let approve =
        yes || auto_approved || ask(&format!("  Approve {id} (waive 5500 cents on INV-3001)?"));
    if !approve {
        say!("  Not approved — nothing will change. (Run again with --yes to see the rest.)");
        mcp.close().await;
        return Ok(DemoIds {
            proposal: id,
            evidence,
        });
    }
    if auto_approved {
        say!(
            "  stdin is not a terminal, so the demo approved automatically (--yes says so explicitly)"
        );
    }
    op.call(Request::Approve(Approve {
        proposal_id: id.clone(),
        note: Some("demo approval".into()),
    }))
    .await
    .map_err(|e| e.to_string())?;
    say!(
        "  approved by OS uid {} — checked by the executor with SO_PEERCRED",
        nix::unistd::getuid()
    );

    step(7, "The executor applies it — once");
    let w = apply_once(&mut op, id.clone()).await?;
    let (fee, reason, version) = invoice(&db, "INV-3001")?;
    say!(
        "  {}: late fee now {fee}, reason {:?}, version {version}",
        w.status,
        reason.unwrap_or_default()
    );
    let w2 = apply_once(&mut op, id.clone()).await?;
    let (fee2, _, version2) = invoice(&db, "INV-3001")?;
    say!(
        "  applying again → {} (late fee {fee2}, version {}): never written twice",
        w2.status,
        if version2 == version {
            "unchanged"
        } else {
            "CHANGED"
        }
    );

    step(8, "A stale proposal is refused");
    let env = call(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3002", "reason": "goodwill"}),
    )
    .await?;
    let stale = env["proposal"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    op.call(Request::Approve(Approve {
        proposal_id: stale.clone(),
        note: None,
    }))
    .await
    .map_err(|e| e.to_string())?;
    rusqlite::Connection::open(&db)
        .and_then(|c| c.execute("UPDATE invoices SET balance_cents = 0, updated_at = '2026-11-24T09:00:00Z' WHERE id = 'INV-3002'", []))
        .map_err(|e| e.to_string())?;
    say!("  meanwhile someone else updated INV-3002");
    let w3 = apply_once(&mut op, stale.clone()).await?;
    say!(
        "  apply → {} ({}): nothing changed",
        w3.status,
        w3.receipt["safe_error_code"].as_str().unwrap_or("?")
    );

    step(9, "The replay");
    let mut evidence = evidence;
    if let Response::Replay(story) = op
        .call(Request::Replay(ProposalRef {
            proposal_id: id.clone(),
        }))
        .await
        .map_err(|e| e.to_string())?
    {
        for line in super::writeback_cmd::replay_text(&story, false).lines() {
            say!("  {line}");
        }
        // The read the proposal cites (the proposer reads the row again
        // when it builds a proposal).
        if let Some(ev) = story.proposal.evidence {
            evidence = Some(ev.evidence_id);
        }
    }

    mcp.close().await;
    drop(guard);
    say!(
        "\nSummary: the model read and proposed; a person approved; only the executor wrote — exactly once, guarded"
    );
    say!(
        "against stale data and other tenants, with every step in a hash-chained ledger. The proposer never held a write credential."
    );
    Ok(DemoIds {
        proposal: id,
        evidence,
    })
}
