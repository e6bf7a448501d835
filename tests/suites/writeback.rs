//! Guarded, exactly-once writeback through the real processes: a proposal
//! made over MCP, approved and applied with the real CLI, checked in the
//! real database — on Postgres, MariaDB and SQLite, with least-privilege
//! roles, under conflicts, refusals, retries and kill -9 at each step.

use std::process::Output;
use std::time::Duration;

use airlock_policy::config::Engine;
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, query_strings, reference_config_for,
    sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, propose_over_mcp, stdio_client};
use serde_json::{Value, json};

use airlock_tests::runtime as rt;

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

struct Loop {
    exec: ExecutorProcess,
    db: Database,
    exec_env: Vec<(&'static str, String)>,
}

impl Loop {
    fn new(db: Database, config: Value, fault: Option<&str>) -> Loop {
        let mut exec_env = vec![
            ("APP_TENANT_ID", "acme".to_owned()),
            ("APP_WRITE_URL", db.write_url.clone()),
        ];
        if let Some(f) = fault {
            exec_env.push(("AIRLOCK_FAULT", f.to_owned()));
        }
        let env: Vec<(&str, &str)> = exec_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let exec = ExecutorProcess::start(&config, &env);
        Loop { exec, db, exec_env }
    }

    fn restart_without_fault(&mut self) {
        self.exec.reap();
        self.exec_env.retain(|(k, _)| *k != "AIRLOCK_FAULT");
        let env: Vec<(&str, &str)> = self
            .exec_env
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        self.exec.restart(&env);
    }

    /// Propose with `capability`'s tool over MCP (the proposer gets only
    /// the read URL).
    fn propose(&self, capability: &str, args: Value) -> String {
        rt().block_on(propose_over_mcp(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &self.db.read_url,
            capability,
            args,
        ))
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.exec.cli(args)
    }

    fn approve(&self, id: &str) {
        let out = self.cli(&["proposals", "approve", id, "--yes", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn apply(&self, id: &str) -> (Option<i32>, Value) {
        let out = self.cli(&["apply", id, "--json"]);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        )
    }

    fn invoice(&self, id: &str) -> Vec<Option<String>> {
        let cast = if self.db.engine == Engine::Postgres {
            "TEXT"
        } else if self.db.engine == Engine::Mysql {
            "CHAR"
        } else {
            "TEXT"
        };
        query_strings(&self.db, &format!("SELECT CAST(late_fee_cents AS {cast}), waiver_reason, CAST(updated_at AS {cast}), tenant_id FROM invoices WHERE id = '{id}'"))
            .pop()
            .unwrap_or_default()
    }

    fn source_receipts(&self, key_prefix: &str) -> usize {
        query_strings(&self.db, &format!("SELECT status FROM synapsor_writeback_receipts WHERE idempotency_key LIKE '{key_prefix}%'")).len()
    }
}

/// The whole loop on one engine: propose → approve → apply → applied once;
/// apply again → already_applied, no second write; replay tells the story.
fn full_loop(db: Database) {
    let config = reference_config_for(&db);
    let l = Loop::new(db, config, None);
    let before = l.invoice("INV-3001");
    assert_eq!(before[0].as_deref(), Some("5500"));

    let id = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "customer requested review"}),
    );
    assert_eq!(l.invoice("INV-3001"), before, "proposing changes nothing");

    // Not yet approved: refused, nothing written.
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "invalid_state");
    assert_eq!(l.invoice("INV-3001"), before);

    l.approve(&id);
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(out["writeback"]["state"], "applied");
    let receipt = &out["writeback"]["receipt"];
    assert_eq!(receipt["schema_version"], "synapsor.execution-receipt.v1");
    assert_eq!(receipt["rows_affected"], 1);
    assert_eq!(receipt["source_database_mutated"], true);
    assert_eq!(receipt["idempotency_key"], format!("{id}:INV-3001"));
    assert!(
        receipt["receipt_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(
        out["writeback"]["job"]["schema_version"],
        "synapsor.writeback-job.v1"
    );
    let after = l.invoice("INV-3001");
    assert_eq!(after[0].as_deref(), Some("0"));
    assert_eq!(after[1].as_deref(), Some("customer requested review"));
    assert_ne!(after[2], before[2], "the version column advanced");
    assert_eq!(l.source_receipts(&id), 1);

    // A repeated apply: already_applied, and nothing is written again.
    let (code, again) = l.apply(&id);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again["writeback"]["status"], "already_applied");
    assert_eq!(l.invoice("INV-3001"), after);
    assert_eq!(l.source_receipts(&id), 1);

    // Other rows and the other tenant are untouched.
    assert_eq!(l.invoice("INV-9001")[0].as_deref(), Some("5500"));

    let out = l.cli(&["replay", "show", &id]);
    let story = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{story}");
    for needle in [
        "The model read 1 row",
        "late_fee_cents: 5500 → 0",
        "Approved by root",
        "via sql_update",
        "Receipt: applied",
        "Source database changed: yes",
    ] {
        assert!(story.contains(needle), "missing {needle:?} in:\n{story}");
    }
    let export = l.exec.path().join("replay.json");
    let out = l.cli(&[
        "replay",
        "export",
        &id,
        "--format",
        "json",
        "--output",
        export.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    assert_eq!(
        exported["change_set"]["schema_version"],
        "synapsor.change-set.v1"
    );
    assert_eq!(exported["change_set"]["approval"]["status"], "approved");
    assert_eq!(exported["change_set"]["writeback"]["status"], "applied");
    assert_eq!(
        exported["execution_receipts"].as_array().unwrap().len(),
        1,
        "exactly one terminal receipt"
    );
    assert_eq!(
        exported["writeback_jobs"][0]["schema_version"],
        "synapsor.writeback-job.v1"
    );
    assert_eq!(
        exported["writeback_jobs"][0]["idempotency_key"],
        format!("{id}:INV-3001")
    );
    // `--output -`: the same document on stdout, and nothing else there.
    let out = l.cli(&["replay", "export", &id, "--format", "json", "--output", "-"]);
    assert_eq!(out.status.code(), Some(0));
    let streamed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(streamed, exported);
    // (The CLI runs in this test's working directory.)
    assert!(!std::path::Path::new("-").exists(), "no file named `-`");
    let out = l.cli(&["replay", "export", &id, "--output", "-", "--json"]);
    // With --json the refusal is the one JSON object on stdout.
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.is_empty(), "{out:?}");
    let refusal: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refusal["error"]["code"], "usage", "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("leave out --json"),
        "{refusal}"
    );
    let md = l.exec.path().join("replay.md");
    let out = l.cli(&[
        "replay",
        "export",
        &id,
        "--format",
        "markdown",
        "--output",
        md.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        std::fs::read_to_string(&md)
            .unwrap()
            .starts_with("# Airlock replay")
    );
    let out = airlock_tests::airlock(&[
        "ledger",
        "verify",
        "--store",
        l.exec.store.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn postgres_full_loop_exactly_once() {
    full_loop(postgres_reference("airlock_wb_loop"));
}

#[test]
fn mariadb_full_loop_exactly_once() {
    full_loop(mysql_reference("airlock_wb_loop"));
}

#[test]
fn sqlite_full_loop_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    full_loop(sqlite_reference(dir.path(), "wb_loop"));
    drop(dir);
}

/// Applies of different rows at once, each from its own `airlock apply`
/// process (its own operator connection): every one is applied exactly once.
/// On SQLite this needs `BEGIN IMMEDIATE` (a deferred transaction's lock
/// upgrade fails at once with "database is locked" under contention).
fn concurrent_applies(db: Database) {
    const ROWS: usize = 8;
    let ids: Vec<String> = (1..=ROWS).map(|n| format!("INV-50{n:02}")).collect();
    for id in &ids {
        execute(
            &db,
            &format!(
                "INSERT INTO invoices (id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at) VALUES ('{id}', 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z')"
            ),
        );
    }
    let l = Loop::new(db.clone(), reference_config_for(&db), None);
    let proposals: Vec<String> = ids
        .iter()
        .map(|invoice| {
            let id = l.propose(
                "billing.propose_late_fee_waiver",
                json!({"invoice_id": invoice, "reason": "concurrent"}),
            );
            l.approve(&id);
            id
        })
        .collect();
    let outcomes: Vec<(Option<i32>, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = proposals.iter().map(|id| s.spawn(|| l.apply(id))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (code, out) in &outcomes {
        assert_eq!(*code, Some(0), "{out}");
        assert_eq!(out["writeback"]["status"], "applied", "{out}");
    }
    for (invoice, id) in ids.iter().zip(&proposals) {
        assert_eq!(l.invoice(invoice)[0].as_deref(), Some("0"), "{invoice}");
        assert_eq!(l.source_receipts(id), 1, "{invoice}");
    }
}

#[test]
fn sqlite_concurrent_applies_all_land_once() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_applies(sqlite_reference(dir.path(), "concurrent"));
    drop(dir);
}

#[test]
fn postgres_concurrent_applies_all_land_once() {
    concurrent_applies(postgres_reference("airlock_wb_concurrent"));
}

#[test]
fn least_privilege_roles_really_are_least() {
    let db = postgres_reference("airlock_wb_roles");
    rt().block_on(async {
        use sqlx::Connection;
        let mut writer = sqlx::PgConnection::connect(&db.write_url).await.unwrap();
        let err = sqlx::query("UPDATE invoices SET balance_cents = 0 WHERE id = 'INV-3001'")
            .execute(&mut writer)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        sqlx::query("UPDATE invoices SET late_fee_cents = late_fee_cents WHERE id = 'INV-3001'")
            .execute(&mut writer)
            .await
            .expect("allowed column");
        let mut reader = sqlx::PgConnection::connect(&db.read_url).await.unwrap();
        let err = sqlx::query("UPDATE invoices SET late_fee_cents = 0")
            .execute(&mut reader)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
    });
}

#[test]
fn a_stale_row_is_a_conflict_and_nothing_changes() {
    let db = postgres_reference("airlock_wb_conflict");
    let l = Loop::new(db.clone(), reference_config_for(&db), None);
    let id = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
    );
    l.approve(&id);
    // Someone else changes the row after the proposal.
    execute(
        &db,
        "UPDATE invoices SET late_fee_cents = 7000, updated_at = now() WHERE id = 'INV-3001'",
    );
    let changed = l.invoice("INV-3001");
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(4), "conflict exits 4: {out}");
    assert_eq!(out["writeback"]["status"], "conflict");
    assert_eq!(
        out["writeback"]["receipt"]["safe_error_code"],
        "VERSION_CONFLICT"
    );
    assert_eq!(
        out["writeback"]["receipt"]["source_database_mutated"],
        false
    );
    assert_eq!(l.invoice("INV-3001"), changed, "nothing changed");
    assert_eq!(l.source_receipts(&id), 0);
    // A conflict is final: applying again is refused.
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "invalid_state");
}

#[test]
fn a_row_moved_to_another_tenant_is_a_conflict() {
    let db = postgres_reference("airlock_wb_tenant");
    let l = Loop::new(db.clone(), reference_config_for(&db), None);
    let id = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
    );
    l.approve(&id);
    execute(
        &db,
        "UPDATE invoices SET tenant_id = 'otherco' WHERE id = 'INV-3001'",
    );
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(4), "{out}");
    assert_eq!(
        out["writeback"]["receipt"]["safe_error_code"],
        "ROW_NOT_FOUND"
    );
    assert_eq!(
        l.invoice("INV-3001")[0].as_deref(),
        Some("5500"),
        "the other tenant's row is untouched"
    );
}

#[test]
fn rejected_and_expired_proposals_are_never_applied() {
    let db = postgres_reference("airlock_wb_refused");
    let mut config = reference_config_for(&db);
    config["airlock"] = json!({"proposal_ttl_seconds": 2});
    let l = Loop::new(db, config, None);
    let rejected = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
    );
    let out = l.cli(&["proposals", "reject", &rejected, "--reason", "no"]);
    assert_eq!(out.status.code(), Some(0));
    let (code, out) = l.apply(&rejected);
    assert_eq!(
        (code, out["error"]["code"].as_str()),
        (Some(1), Some("invalid_state")),
        "{out}"
    );
    let expired = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
    );
    l.approve(&expired);
    std::thread::sleep(Duration::from_millis(2200));
    let (code, out) = l.apply(&expired);
    assert_eq!(
        (code, out["error"]["code"].as_str()),
        (Some(1), Some("expired")),
        "{out}"
    );
    assert_eq!(
        l.invoice("INV-3001")[0].as_deref(),
        Some("5500"),
        "neither was applied"
    );
    let receipts_table = query_strings(
        &l.db,
        "SELECT CAST(to_regclass('synapsor_writeback_receipts') AS TEXT)",
    );
    assert_eq!(
        receipts_table[0][0], None,
        "no writeback ever started, so not even the receipt table exists"
    );
}

#[test]
fn approve_with_apply_and_other_proposal_kinds() {
    let db = postgres_reference("airlock_wb_kinds");
    let l = Loop::new(db.clone(), reference_config_for(&db), None);
    let id = l.propose(
        "orders.propose_status_change",
        json!({"order_id": "O-1001", "status": "canceled", "reason": "customer asked"}),
    );
    let out = l.cli(&["proposals", "approve", &id, "--yes", "--apply", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_out(&out)["writeback"]["status"], "applied");
    let row = query_strings(
        &db,
        "SELECT status, status_change_reason FROM orders WHERE id = 'O-1001'",
    );
    assert_eq!(
        row[0],
        vec![
            Some("canceled".to_owned()),
            Some("customer asked".to_owned())
        ]
    );
    let id = l.propose(
        "support.propose_plan_credit",
        json!({"customer_id": "cust_acme_1", "credit_cents": 1200, "reason": "goodwill"}),
    );
    l.approve(&id);
    assert_eq!(l.apply(&id).1["writeback"]["status"], "applied");
    let row = query_strings(
        &db,
        "SELECT CAST(plan_credit_cents AS TEXT) FROM customers WHERE id = 'cust_acme_1'",
    );
    assert_eq!(row[0][0].as_deref(), Some("1200"));
}

/// kill -9 the executor at `point` during an apply, restart, apply again:
/// the row changes exactly once and the ledger ends with one terminal receipt.
fn crash_at(point: &str, db_name: &str) {
    let db = postgres_reference(db_name);
    // Count every UPDATE of the invoice, whoever makes it. The trigger runs
    // in the writer's session, whose search_path is pinned to `pg_catalog,
    // pg_temp`: like any trigger on a target table, it names its table in full.
    execute(
        &db,
        "CREATE TABLE invoice_updates (n integer NOT NULL); INSERT INTO invoice_updates VALUES (0);
         CREATE FUNCTION count_invoice_update() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN UPDATE public.invoice_updates SET n = n + 1; RETURN NEW; END $$;
         CREATE TRIGGER invoice_updated AFTER UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION count_invoice_update();",
    );
    let mut l = Loop::new(db.clone(), reference_config_for(&db), Some(point));
    let id = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "crash test"}),
    );
    l.approve(&id);
    let (code, out) = l.apply(&id);
    assert_ne!(code, Some(0), "the apply was interrupted at {point}: {out}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!l.exec.is_alive(), "the executor died at {point}");

    l.restart_without_fault();
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(0), "{point}: {out}");
    let status = out["writeback"]["status"].as_str().unwrap().to_owned();
    let expected = if point == "after_commit_before_receipt" || point == "before_ledger_receipt" {
        "already_applied"
    } else {
        "applied"
    };
    assert_eq!(status, expected, "{point}: {out}");
    assert_eq!(l.invoice("INV-3001")[0].as_deref(), Some("0"));
    let updates = query_strings(&db, "SELECT CAST(n AS TEXT) FROM invoice_updates");
    assert_eq!(
        updates[0][0].as_deref(),
        Some("1"),
        "{point}: the row was changed exactly once"
    );
    assert_eq!(l.source_receipts(&id), 1);
    // One more apply changes nothing.
    assert_eq!(l.apply(&id).1["writeback"]["status"], "already_applied");
    let out = l.cli(&["replay", "show", &id, "--json"]);
    let story = json_out(&out);
    let receipts = story["execution_receipts"].as_array().unwrap();
    assert_eq!(
        receipts.len(),
        1,
        "{point}: exactly one terminal receipt: {story}"
    );
    assert_eq!(receipts[0]["status"], expected);
    assert!(l.exec.stop().success());
    let out = airlock_tests::airlock(&[
        "ledger",
        "verify",
        "--store",
        l.exec.store.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn crash_before_the_transaction() {
    crash_at("before_transaction", "airlock_wb_crash1");
}

#[test]
fn crash_after_the_update_before_commit() {
    crash_at("after_update_before_commit", "airlock_wb_crash2");
}

#[test]
fn crash_after_commit_before_the_ledger_receipt() {
    crash_at("after_commit_before_receipt", "airlock_wb_crash3");
}

#[test]
fn writeback_helpers_print_ddl_and_least_privilege_grants() {
    let out = airlock_tests::airlock(&["writeback", "migration", "--engine", "postgres"]);
    let ddl = String::from_utf8_lossy(&out.stdout);
    assert!(
        ddl.contains("CREATE TABLE IF NOT EXISTS \"public\".\"synapsor_writeback_receipts\""),
        "{ddl}"
    );
    let cfg = airlock_tests::reference_config();
    let out = airlock_tests::airlock(&[
        "writeback",
        "grants",
        "--engine",
        "postgres",
        "--writer-role",
        "synapsor_writer",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let grants = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{grants}");
    assert!(grants.contains("GRANT UPDATE (\"late_fee_cents\", \"updated_at\", \"waiver_reason\") ON \"public\".\"invoices\" TO \"synapsor_writer\";"), "{grants}");
    assert!(
        !grants.contains("balance_cents"),
        "never a column outside allowed_columns: {grants}"
    );
}

// ---------------------------------------------------------------------------
// The receipt table is Synapsor Runner's: a database prepared for Synapsor
// Runner (its exact DDL, created by the administrator) and a least-privilege
// writer that cannot alter it.

/// Synapsor Runner 1.x's receipt table, exactly as its MySQL example seed
/// creates it (examples/mcp-mysql-orders/seed/001_schema.sql).
const SYNAPSOR_MYSQL_RECEIPTS: &str = "CREATE TABLE IF NOT EXISTS synapsor_writeback_receipts (
  idempotency_key varchar(255) PRIMARY KEY,
  job_id varchar(255) UNIQUE NOT NULL,
  proposal_id varchar(512) NOT NULL,
  status varchar(64) NOT NULL,
  result_hash varchar(128),
  created_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  completed_at timestamp(6) NULL
)";

/// The same on Postgres (examples/mcp-postgres-billing/seed/001_schema.sql).
const SYNAPSOR_POSTGRES_RECEIPTS: &str =
    "CREATE TABLE IF NOT EXISTS public.synapsor_writeback_receipts (
  idempotency_key text PRIMARY KEY,
  job_id text UNIQUE NOT NULL,
  proposal_id text NOT NULL,
  status text NOT NULL,
  result_hash text,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
)";

/// Replace the reference database's receipt table with Synapsor Runner's,
/// created by the administrator; the writer gets Synapsor's grants on it
/// (SELECT, INSERT, UPDATE) and no CREATE or ALTER anywhere.
fn with_synapsor_receipts(db: &Database) {
    match db.engine {
        Engine::Mysql => {
            execute(db, "DROP TABLE IF EXISTS synapsor_writeback_receipts");
            execute(db, SYNAPSOR_MYSQL_RECEIPTS);
            for host in ["localhost", "127.0.0.1", "%"] {
                execute(
                    db,
                    &format!(
                        "GRANT SELECT, INSERT, UPDATE ON `{}`.synapsor_writeback_receipts TO 'airlock_writer'@'{host}'",
                        db.name
                    ),
                );
            }
        }
        Engine::Postgres => {
            execute(
                db,
                &format!(
                    "REVOKE CREATE ON SCHEMA public FROM synapsor_writer; {SYNAPSOR_POSTGRES_RECEIPTS};
                     GRANT SELECT, INSERT, UPDATE ON public.synapsor_writeback_receipts TO synapsor_writer"
                ),
            );
        }
        Engine::Sqlite => unreachable!("Synapsor Runner serves Postgres and MySQL"),
    }
}

/// The writer's own attempt to alter the receipt table (to add a column,
/// as a richer receipt would need): refused.
fn writer_cannot_alter_receipts(db: &Database) -> String {
    rt().block_on(async {
        sqlx::any::install_default_drivers();
        use sqlx::Connection;
        let mut w = sqlx::AnyConnection::connect(&db.write_url).await.unwrap();
        sqlx::raw_sql("ALTER TABLE synapsor_writeback_receipts ADD COLUMN previous_version text")
            .execute(&mut w)
            .await
            .expect_err("the writer must not be able to alter the receipt table")
            .to_string()
    })
}

/// One source receipt row as text: job_id, proposal_id, status,
/// result_hash, created_at and completed_at set.
fn source_receipt(db: &Database, key: &str) -> Vec<Option<String>> {
    let yes = |c: &str| match db.engine {
        Engine::Postgres => format!("CAST({c} IS NOT NULL AS TEXT)"),
        _ => format!("CASE WHEN {c} IS NOT NULL THEN 'true' ELSE 'false' END"),
    };
    let rows = query_strings(
        db,
        &format!(
            "SELECT job_id, proposal_id, status, result_hash, {}, {} FROM synapsor_writeback_receipts WHERE idempotency_key = '{key}'",
            yes("created_at"),
            yes("completed_at")
        ),
    );
    assert_eq!(rows.len(), 1, "one source receipt for {key}: {rows:?}");
    rows.into_iter().next().unwrap()
}

/// On Synapsor Runner's table: an apply interrupted after its commit is
/// answered `already_applied` from the source receipt (looked up by
/// idempotency key) after a restart; a plain apply lands and a repeat is
/// `already_applied`; a receipt Synapsor Runner wrote is honoured too.
fn synapsor_receipts_loop(db: Database) {
    with_synapsor_receipts(&db);
    let denied = writer_cannot_alter_receipts(&db);
    assert!(
        denied.contains("denied") || denied.contains("must be owner"),
        "{denied}"
    );
    let mut l = Loop::new(
        db.clone(),
        reference_config_for(&db),
        Some("after_commit_before_receipt"),
    );
    let before = l.invoice("INV-3001");
    let id = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "synapsor table"}),
    );
    l.approve(&id);
    let (code, out) = l.apply(&id);
    assert_ne!(code, Some(0), "interrupted after the commit: {out}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!l.exec.is_alive(), "the executor died after its commit");
    let after = l.invoice("INV-3001");
    assert_eq!(after[0].as_deref(), Some("0"), "the change was committed");
    let key = format!("{id}:INV-3001");
    let row = source_receipt(&l.db, &key);
    assert!(row[0].as_deref().unwrap().starts_with("wbj_"), "{row:?}");
    assert_eq!(row[1].as_deref(), Some(id.as_str()));
    assert_eq!(row[2].as_deref(), Some("applied"));
    let hash = row[3].as_deref().unwrap();
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{row:?}");
    assert_eq!(row[4].as_deref(), Some("true"), "created_at defaulted");
    assert_eq!(row[5].as_deref(), Some("true"), "completed_at set");

    // After the restart the ledger has no receipt: the source answers.
    l.restart_without_fault();
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "already_applied", "{out}");
    let receipt = &out["writeback"]["receipt"];
    assert_eq!(receipt["source_database_mutated"], false);
    assert_eq!(receipt["writeback_job_id"], row[0].as_deref().unwrap());
    // The versions live in the ledger's receipt: the one the proposal was
    // built on, and the row's version now, which result_hash shows is the
    // one the recorded job wrote.
    assert!(receipt["previous_version"].is_string(), "{receipt}");
    assert!(receipt["new_version"].is_string(), "{receipt}");
    assert_ne!(receipt["previous_version"], receipt["new_version"]);
    assert_eq!(l.invoice("INV-3001"), after, "nothing written again");
    assert_ne!(after[2], before[2]);
    assert_eq!(source_receipt(&l.db, &key), row, "the receipt is unchanged");

    // A plain apply on the same table, then a repeat.
    let id2 = l.propose(
        "orders.propose_status_change",
        json!({"order_id": "O-1001", "status": "canceled", "reason": "synapsor table"}),
    );
    l.approve(&id2);
    let (code, out) = l.apply(&id2);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    let (code, out) = l.apply(&id2);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "already_applied", "{out}");
    assert_eq!(
        source_receipt(&l.db, &format!("{id2}:O-1001"))[2].as_deref(),
        Some("applied")
    );

    // A receipt Synapsor Runner wrote for the key: honoured, nothing
    // written, and no new version claimed (its result_hash is not ours).
    let id3 = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3002", "reason": "written by the other product"}),
    );
    execute(
        &l.db,
        &format!(
            "INSERT INTO synapsor_writeback_receipts (idempotency_key, job_id, proposal_id, status, result_hash, completed_at) VALUES ('{id3}:INV-3002', 'job_synapsor_1', '{id3}', 'applied', 'sha256:existing', CURRENT_TIMESTAMP)"
        ),
    );
    let untouched = l.invoice("INV-3002");
    l.approve(&id3);
    let (code, out) = l.apply(&id3);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "already_applied", "{out}");
    assert!(
        out["writeback"]["receipt"]["new_version"].is_null(),
        "{out}"
    );
    assert_eq!(l.invoice("INV-3002"), untouched);
    assert!(l.exec.stop().success());
}

#[test]
fn mariadb_synapsor_receipts_table_and_least_privilege_writer() {
    synapsor_receipts_loop(mysql_reference("airlock_wb_synapsor"));
}

#[test]
fn postgres_synapsor_receipts_table_and_least_privilege_writer() {
    synapsor_receipts_loop(postgres_reference("airlock_wb_synapsor"));
}

/// A receipt table of another shape — Airlock's own 13-column table from
/// before, or one without job_id — is refused before anything is written,
/// with the missing columns named and the fix; the fix works.
fn another_shape_is_refused(db: Database, ddl: &str, missing: &str) {
    execute(&db, "DROP TABLE IF EXISTS synapsor_writeback_receipts");
    execute(&db, ddl);
    if db.engine == Engine::Mysql {
        for host in ["localhost", "127.0.0.1", "%"] {
            execute(
                &db,
                &format!(
                    "GRANT SELECT, INSERT ON `{}`.synapsor_writeback_receipts TO 'airlock_writer'@'{host}'",
                    db.name
                ),
            );
        }
    }
    let l = Loop::new(db.clone(), reference_config_for(&db), None);
    let before = l.invoice("INV-3001");
    let id = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "shape"}),
    );
    l.approve(&id);
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["writeback"]["status"], "failed", "{out}");
    let receipt = &out["writeback"]["receipt"];
    assert_eq!(
        receipt["safe_error_code"], "RECEIPT_TABLE_UNTRUSTED",
        "{out}"
    );
    assert_eq!(receipt["source_database_mutated"], false);
    let detail = out["writeback"]["detail"].as_str().unwrap_or_default();
    let schema = match db.engine {
        Engine::Mysql => db.name.clone(),
        _ => "main".to_owned(),
    };
    for needle in [
        "does not have the columns of Synapsor Runner's receipt table",
        missing,
        &format!(
            "airlock writeback migration --engine {} --schema {schema}",
            db.engine.as_str()
        ),
    ] {
        assert!(detail.contains(needle), "missing {needle:?} in {detail}");
    }
    assert_eq!(l.invoice("INV-3001"), before, "nothing was written");
    assert!(
        query_strings(
            &db,
            "SELECT idempotency_key FROM synapsor_writeback_receipts"
        )
        .is_empty(),
        "no receipt was written"
    );
    // Doctor reports the same.
    let socket_dir = l.exec.socket_dir.to_str().unwrap().to_owned();
    let out = std::process::Command::new(airlock_tests::bin("airlock"))
        .args(["doctor", "--json", "--config"])
        .arg(&l.exec.config_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs([
            ("APP_READ_URL", db.read_url.as_str()),
            ("APP_WRITE_URL", db.write_url.as_str()),
            ("APP_TENANT_ID", "acme"),
            ("APP_PRINCIPAL", "agent"),
            ("AIRLOCK_SOCKET_DIR", socket_dir.as_str()),
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let check = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == "receipt table app"))
        .unwrap_or_else(|| panic!("no receipt table check: {report}"));
    assert_eq!(check["status"], "fail", "{report}");
    assert!(
        check["reason"].as_str().unwrap().contains(missing),
        "{report}"
    );

    // The fix: the table from `airlock writeback migration` (moved aside
    // here by dropping it); `failed` is retryable.
    let out = airlock_tests::airlock(&[
        "writeback",
        "migration",
        "--engine",
        db.engine.as_str(),
        "--schema",
        &schema,
        "--json",
    ]);
    let ddl = json_out(&out)["sql"].as_str().unwrap().to_owned();
    execute(&db, "DROP TABLE synapsor_writeback_receipts");
    execute(&db, &ddl);
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(l.invoice("INV-3001")[0].as_deref(), Some("0"));
}

/// Airlock's receipt table before it took Synapsor Runner's columns.
const OLD_AIRLOCK_MYSQL_RECEIPTS: &str = "CREATE TABLE synapsor_writeback_receipts (
  idempotency_key VARCHAR(255) PRIMARY KEY, proposal_id TEXT NOT NULL, writeback_job_id TEXT NOT NULL,
  runner_id TEXT NOT NULL, status TEXT NOT NULL, rows_affected INTEGER NOT NULL, target_table TEXT NOT NULL,
  object_id TEXT NOT NULL, tenant_id TEXT, previous_version TEXT, new_version TEXT, proposal_hash TEXT NOT NULL,
  executed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))";

#[test]
fn mariadb_receipts_table_of_another_shape_is_refused() {
    another_shape_is_refused(
        mysql_reference("airlock_wb_shape"),
        OLD_AIRLOCK_MYSQL_RECEIPTS,
        "missing: [job_id, result_hash, created_at, completed_at]",
    );
}

#[test]
fn sqlite_receipts_table_without_job_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    another_shape_is_refused(
        sqlite_reference(dir.path(), "shape"),
        "CREATE TABLE synapsor_writeback_receipts (idempotency_key TEXT PRIMARY KEY, proposal_id TEXT NOT NULL, status TEXT NOT NULL, result_hash TEXT, created_at TEXT, completed_at TEXT)",
        "missing: [job_id]; unexpected: []",
    );
    drop(dir);
}

/// `check_freshness` follows the row: current right after the proposal,
/// changed once someone else writes it (and then `apply` agrees: conflict),
/// gone once the row moves to another tenant, unavailable without the write
/// URL — through the real CLI (`proposals show`, `proposals
/// check-freshness`), on every engine.
fn freshness(db: Database) {
    let now = match db.engine {
        Engine::Postgres => "now()",
        Engine::Mysql => "CURRENT_TIMESTAMP(6)",
        Engine::Sqlite => "'2026-12-01T00:00:00Z'",
    };
    let mut l = Loop::new(db.clone(), reference_config_for(&db), None);
    let id = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "r"}),
    );
    let check = |l: &Loop| {
        let out = l.cli(&["proposals", "check-freshness", &id, "--json"]);
        (out.status.code(), json_out(&out))
    };
    let out = l.cli(&["proposals", "show", &id, "--json"]);
    let shown = json_out(&out);
    assert_eq!(shown["freshness"]["freshness"], "current", "{shown}");
    assert_eq!(shown["freshness"]["changed"], json!([]));
    let text = String::from_utf8_lossy(&l.cli(&["proposals", "show", &id]).stdout).into_owned();
    assert!(text.contains("Freshness:  still current"), "{text}");
    let (code, v) = check(&l);
    assert_eq!(code, Some(0), "{v}");

    // Someone else writes the row: the fee and the version column change.
    execute(
        &db,
        &format!(
            "UPDATE invoices SET late_fee_cents = 7000, updated_at = {now} WHERE id = 'INV-3001'"
        ),
    );
    let (code, v) = check(&l);
    assert_eq!(code, Some(4), "{v}");
    assert_eq!(v["freshness"]["freshness"], "changed", "{v}");
    assert_eq!(
        v["freshness"]["changed"],
        json!(["version", "before:late_fee_cents"]),
        "{v}"
    );
    let text = String::from_utf8_lossy(&l.cli(&["proposals", "show", &id]).stdout).into_owned();
    assert!(
        text.contains("CHANGED since the proposal")
            && text.contains("version, before:late_fee_cents"),
        "{text}"
    );

    // The row moves to another tenant: gone, for this proposal's tenant.
    execute(
        &db,
        "UPDATE invoices SET tenant_id = 'otherco' WHERE id = 'INV-3001'",
    );
    let (code, v) = check(&l);
    assert_eq!(code, Some(4), "{v}");
    assert_eq!(v["freshness"]["freshness"], "gone", "{v}");

    // Approving re-reads the row too (freshness-bound approval): the gone
    // row refuses the approval and the proposal is a terminal conflict,
    // which apply agrees with.
    let out = l.cli(&["proposals", "approve", &id, "--yes", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_out(&out)["error"]["code"], "stale");
    let (code, out) = l.apply(&id);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "invalid_state");
    // A finished proposal's row is not re-read.
    let shown = json_out(&l.cli(&["proposals", "show", &id, "--json"]));
    assert_eq!(shown["freshness"], Value::Null, "{shown}");

    // Without the write URL the executor cannot re-read: unavailable, exit 1.
    let id2 = l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3002", "reason": "r"}),
    );
    l.exec.stop();
    l.exec_env.retain(|(k, _)| *k != "APP_WRITE_URL");
    let env: Vec<(&str, &str)> = l.exec_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    l.exec.restart(&env);
    let out = l.cli(&["proposals", "check-freshness", &id2, "--json"]);
    let v = json_out(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["freshness"]["freshness"], "unavailable", "{v}");
    let detail = v["freshness"]["detail"].as_str().unwrap();
    assert!(detail.contains("APP_WRITE_URL"), "{detail}");
    assert!(!detail.contains(&db.write_url), "{detail}");
}

#[test]
fn freshness_follows_the_row_on_postgres() {
    freshness(postgres_reference("airlock_wb_fresh"));
}

#[test]
fn freshness_follows_the_row_on_mariadb() {
    freshness(mysql_reference("airlock_wb_fresh"));
}

#[test]
fn freshness_follows_the_row_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    freshness(sqlite_reference(dir.path(), "wb_fresh"));
}

/// `apply --all-approved`: every approved proposal the filters take, oldest
/// first, each on its own; a conflict does not stop the others; a rerun
/// applies only what is still approved.
#[test]
fn apply_all_approved_isolates_conflicts_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "all_approved");
    let l = Loop::new(db.clone(), reference_config_for(&db), None);
    let waiver = || {
        l.propose(
            "billing.propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "r"}),
        )
    };
    let ticket = |id: &str| {
        l.propose(
            "support.propose_ticket_resolution",
            json!({"ticket_id": id, "resolution_note": "done"}),
        )
    };
    let first_waiver = waiver();
    let t1 = ticket("T-1042");
    let t2 = ticket("T-1043");
    let second_waiver = waiver();
    let pending = ticket("T-1042");
    for id in [&first_waiver, &t1, &t2, &second_waiver] {
        l.approve(id);
    }
    let all = |extra: &[&str]| {
        let mut args = vec!["apply", "--all-approved", "--json"];
        args.extend_from_slice(extra);
        let out = l.cli(&args);
        (out.status.code(), json_out(&out))
    };
    let ids = |v: &Value| -> Vec<(String, String)> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["proposal_id"].as_str().unwrap().to_owned(),
                    r["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pair = |id: &str, status: &str| (id.to_owned(), status.to_owned());

    // Another tenant's filter takes nothing.
    let (code, out) = all(&["--tenant", "otherco"]);
    assert_eq!((code, ids(&out)), (Some(0), vec![]), "{out}");
    // One capability, oldest first.
    let (code, out) = all(&["--capability", "support.propose_ticket_resolution"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ids(&out), [pair(&t1, "applied"), pair(&t2, "applied")]);
    // At most one: the oldest waiver.
    let (code, out) = all(&["--max", "1"]);
    assert_eq!(
        (code, ids(&out)),
        (Some(0), vec![pair(&first_waiver, "applied")]),
        "{out}"
    );
    // The rest: the second waiver's row changed under it.
    let (code, out) = all(&[]);
    assert_eq!(code, Some(4), "a conflict exits 4: {out}");
    assert_eq!(ids(&out), [pair(&second_waiver, "conflict")]);
    assert_eq!(
        (out["applied"].as_u64(), out["conflicts"].as_u64()),
        (Some(0), Some(1))
    );
    // Nothing is left: a rerun does nothing and succeeds.
    let (code, out) = all(&[]);
    assert_eq!((code, ids(&out)), (Some(0), vec![]), "{out}");
    let human = l.cli(&["apply", "--all-approved"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("No approved proposal to apply."));
    // The pending one was never applied.
    let (_, shown) = {
        let out = l.cli(&["proposals", "show", &pending, "--json"]);
        (out.status.code(), json_out(&out))
    };
    assert_eq!(shown["proposal"]["summary"]["state"], "pending_approval");
    // The flags belong together.
    let out = l.cli(&["apply", "wrp_x", "--all-approved"]);
    assert_eq!(out.status.code(), Some(2));
    let out = l.cli(&["apply", "--max", "2"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Once the waiver is applied, the same waiver changes nothing: the model
/// is told so, and no proposal is recorded (issue 16, item 4).
#[test]
fn a_proposal_that_changes_nothing_is_refused_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "no_change");
    let l = Loop::new(db.clone(), reference_config_for(&db), None);
    let args = json!({"invoice_id": "INV-3001", "reason": "r"});
    let id = l.propose("billing.propose_late_fee_waiver", args.clone());
    l.approve(&id);
    assert_eq!(l.apply(&id).0, Some(0));
    let envelope = rt().block_on(async {
        let client = stdio_client(
            &l.exec.config_path,
            &l.exec.socket_dir,
            &agent_env(&db.read_url),
            &[],
        )
        .await;
        let tool = airlock_policy::catalog::openai_alias("billing.propose_late_fee_waiver");
        let (_, envelope) = call(&client, &tool, args).await;
        client.cancel().await.unwrap();
        envelope
    });
    assert_eq!(envelope["ok"], false, "{envelope}");
    let message = envelope["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the proposal changes nothing"),
        "{message}"
    );
    assert_eq!(envelope["proposal"], Value::Null);
    let out = l.cli(&["proposals", "list", "--json"]);
    assert_eq!(
        json_out(&out)["proposals"].as_array().unwrap().len(),
        1,
        "no second proposal"
    );
    // A different reason is a change, and may be proposed.
    l.propose(
        "billing.propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "another"}),
    );
}
