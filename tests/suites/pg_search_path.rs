//! Edge review F4: on PostgreSQL the read credential must not become write
//! authority through the writer's `search_path` or the receipt table.
//!
//! Where the read role may `CREATE` in a schema the writer resolves names in
//! (`public` for everyone up to PostgreSQL 14; here the test grants it, as an
//! operator might), it can (a) plant a function the writer's SQL would call
//! with write rights, or (b) create the receipt table before the executor
//! does and plant a receipt, so a real apply answers `already_applied` and
//! writes nothing. Each test first shows its plant is live (what the writer
//! would do without the defence), then runs the real executor, proposer and
//! CLI against the real database.

use std::process::{Command, Output};

use airlock_policy::config::Engine;
use airlock_policy::statement::{receipt_lookup, receipts_ddl};
use airlock_tests::databases::{
    Database, execute, postgres_reference, query_strings, reference_config_for,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::propose_over_mcp;
use airlock_tests::{bin, block_on};
use serde_json::{Value, json};
use sqlx::Connection;

const WAIVER: &str = "billing.propose_late_fee_waiver";

fn start(db: &Database) -> ExecutorProcess {
    ExecutorProcess::start(
        &reference_config_for(db),
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    )
}

/// Propose a waiver of `invoice` over MCP; the proposer gets the read URL only.
fn propose(exec: &ExecutorProcess, db: &Database, invoice: &str, reason: &str) -> String {
    block_on(propose_over_mcp(
        &exec.config_path,
        &exec.socket_dir,
        &db.read_url,
        WAIVER,
        json!({"invoice_id": invoice, "reason": reason}),
    ))
}

fn approve_and_apply(exec: &ExecutorProcess, id: &str) -> (Option<i32>, Value) {
    let out = exec.cli(&["proposals", "approve", id, "--yes", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    apply(exec, id)
}

fn apply(exec: &ExecutorProcess, id: &str) -> (Option<i32>, Value) {
    let out = exec.cli(&["apply", id, "--json"]);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "apply printed no JSON:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        }),
    )
}

/// `(late_fee_cents, waiver_reason, tenant_id)` of an invoice, read as the admin.
fn invoice(db: &Database, id: &str) -> Vec<Option<String>> {
    query_strings(
        db,
        &format!(
            "SELECT CAST(late_fee_cents AS TEXT), waiver_reason, tenant_id FROM public.invoices WHERE id = '{id}'"
        ),
    )
    .pop()
    .unwrap()
}

/// Run SQL as the read role (the proposer's credential).
fn as_reader(db: &Database, sql: &str) -> Result<(), String> {
    block_on(async {
        let mut c = sqlx::PgConnection::connect(&db.read_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

fn doctor(exec: &ExecutorProcess, db: &Database) -> (i32, Value, String) {
    let socket_dir = exec.socket_dir.to_str().unwrap().to_owned();
    let env = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_WRITE_URL", db.write_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent"),
        ("AIRLOCK_SOCKET_DIR", socket_dir.as_str()),
    ];
    let run = |json: bool| -> Output {
        let mut cmd = Command::new(bin("airlock"));
        cmd.arg("doctor");
        if json {
            cmd.arg("--json");
        }
        cmd.arg("--config")
            .arg(&exec.config_path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(true);
    let human = run(false);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        }),
        String::from_utf8_lossy(&human.stdout).into_owned(),
    )
}

fn doctor_check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

/// (a) The reader plants `public.to_json(timestamptz)`, an exact-type match
/// that beats `pg_catalog.to_json(anyelement)` for the writer's version
/// read-back, and makes it change another tenant's row.
#[test]
fn a_function_planted_by_the_reader_never_runs_with_write_rights() {
    let db = postgres_reference("airlock_sp_function");
    execute(&db, "GRANT CREATE ON SCHEMA public TO synapsor_reader");
    // The reader itself cannot write the other tenant's row...
    let denied = as_reader(
        &db,
        "UPDATE public.invoices SET late_fee_cents = 0 WHERE id = 'INV-9001'",
    )
    .unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");
    // ...so it plants a function the writer will call.
    as_reader(
        &db,
        "CREATE FUNCTION public.to_json(v timestamptz) RETURNS json LANGUAGE plpgsql AS $$
         BEGIN
           UPDATE public.invoices SET late_fee_cents = 0, waiver_reason = 'planted by the reader'
            WHERE id = 'INV-9001';
           RETURN pg_catalog.to_json(v);
         END $$",
    )
    .unwrap();
    let other_before = invoice(&db, "INV-9001");
    assert_eq!(other_before[0].as_deref(), Some("5500"));
    assert_eq!(other_before[2].as_deref(), Some("otherco"));

    // The plant is live: the writer's version read-back as it was before the
    // fix, run by the writer role with its default search_path, calls it.
    let pre_fix_read_back = "SELECT to_json(\"updated_at\") #>> '{}' FROM \"public\".\"invoices\" WHERE \"id\" = $1 AND \"tenant_id\"::text = $2";
    let run_as_writer = |pin: bool| {
        block_on(async {
            let mut w = sqlx::PgConnection::connect(&db.write_url).await.unwrap();
            if pin {
                sqlx::raw_sql("SET search_path = pg_catalog, pg_temp")
                    .execute(&mut w)
                    .await
                    .unwrap();
            }
            sqlx::query(pre_fix_read_back)
                .bind("INV-3001")
                .bind("acme")
                .fetch_one(&mut w)
                .await
                .unwrap();
        })
    };
    run_as_writer(false);
    let hijacked = invoice(&db, "INV-9001");
    assert_eq!(
        (hijacked[0].as_deref(), hijacked[1].as_deref()),
        (Some("0"), Some("planted by the reader")),
        "without the defence the planted function runs with the writer's rights"
    );
    // Restore the other tenant's row; the pinned search_path alone stops it.
    execute(
        &db,
        "UPDATE public.invoices SET late_fee_cents = 5500, waiver_reason = NULL WHERE id = 'INV-9001'",
    );
    run_as_writer(true);
    assert_eq!(invoice(&db, "INV-9001"), other_before);

    // The real apply: applied, and the planted function never ran.
    let exec = start(&db);
    let id = propose(&exec, &db, "INV-3001", "customer requested review");
    let (code, out) = approve_and_apply(&exec, &id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(invoice(&db, "INV-3001")[0].as_deref(), Some("0"));
    assert_eq!(
        invoice(&db, "INV-9001"),
        other_before,
        "the other tenant's row is unchanged: the writer never called the reader's function"
    );
    // A second apply on the same pooled connection: still not called.
    execute(
        &db,
        "INSERT INTO public.invoices (id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at) VALUES ('INV-5001', 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z')",
    );
    let id = propose(&exec, &db, "INV-5001", "second");
    let (code, out) = approve_and_apply(&exec, &id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(invoice(&db, "INV-9001"), other_before);
}

/// (b) The reader creates the receipt table before the executor does and
/// plants a receipt for a proposal it just made.
#[test]
fn a_receipt_table_planted_by_the_reader_is_refused() {
    let db = postgres_reference("airlock_sp_receipts");
    execute(&db, "GRANT CREATE ON SCHEMA public TO synapsor_reader");
    let exec = start(&db);
    let id = propose(&exec, &db, "INV-3001", "customer requested review");
    let key = format!("{id}:INV-3001");
    as_reader(
        &db,
        &format!(
            "{};
             GRANT SELECT, INSERT ON public.synapsor_writeback_receipts TO synapsor_writer;
             INSERT INTO public.synapsor_writeback_receipts
               (idempotency_key, job_id, proposal_id, status, result_hash)
             VALUES ('{key}', 'wbj_planted', '{id}', 'applied', 'sha256:planted')",
            receipts_ddl(Engine::Postgres, "public")
        ),
    )
    .unwrap();
    // The plant is live: the writer's own receipt look-up finds the planted
    // receipt, which is what made the executor answer already_applied.
    let planted = block_on(async {
        use sqlx::Row;
        let mut w = sqlx::PgConnection::connect(&db.write_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(receipt_lookup(
            Engine::Postgres,
            "public",
        )))
        .bind(key.clone())
        .fetch_optional(&mut w)
        .await
        .unwrap()
        .map(|r| r.get::<String, _>(1))
    });
    assert_eq!(planted.as_deref(), Some("applied"));

    let before = invoice(&db, "INV-3001");
    let (code, out) = approve_and_apply(&exec, &id);
    assert_eq!(code, Some(1), "{out}");
    let receipt = &out["writeback"]["receipt"];
    assert_eq!(out["writeback"]["status"], "failed", "{out}");
    assert_eq!(
        receipt["safe_error_code"], "RECEIPT_TABLE_UNTRUSTED",
        "{out}"
    );
    assert_eq!(receipt["source_database_mutated"], false);
    let detail = out["writeback"]["detail"]
        .as_str()
        .or(receipt["detail"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| out.to_string());
    for needle in [
        "owned by `synapsor_reader`",
        "not by the writer `synapsor_writer`",
        "nothing was written",
    ] {
        assert!(detail.contains(needle), "missing {needle:?} in {detail}");
    }
    assert_eq!(invoice(&db, "INV-3001"), before, "nothing was written");

    // Doctor names the table and the reader's CREATE on public.
    let (code, report, human) = doctor(&exec, &db);
    assert_eq!(code, 1, "{report}");
    let receipts = doctor_check(&report, "receipt table app");
    assert_eq!(receipts["status"], "fail", "{report}");
    assert!(
        receipts["reason"]
            .as_str()
            .unwrap()
            .contains("owned by `synapsor_reader`"),
        "{report}"
    );
    assert!(
        human.contains("REVOKE CREATE ON SCHEMA \"public\" FROM \"synapsor_reader\""),
        "{human}"
    );

    // A table of the wrong shape, even the administrator's, is refused too.
    execute(
        &db,
        "DROP TABLE public.synapsor_writeback_receipts;
         REVOKE CREATE ON SCHEMA public FROM synapsor_reader;
         CREATE TABLE public.synapsor_writeback_receipts (idempotency_key text PRIMARY KEY, status text, previous_version text, new_version text);
         GRANT SELECT, INSERT ON public.synapsor_writeback_receipts TO synapsor_writer",
    );
    // `failed` is retryable: the same proposal is applied again.
    let (code, out) = apply(&exec, &id);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        out["writeback"]["receipt"]["safe_error_code"], "RECEIPT_TABLE_UNTRUSTED",
        "{out}"
    );
    assert!(
        out.to_string().contains(
            "does not have the columns of Synapsor Runner's receipt table (missing: [job_id text, proposal_id text, result_hash text, created_at timestamp with time zone, completed_at timestamp with time zone]; unexpected: [previous_version text, new_version text])"
        ),
        "{out}"
    );
    assert!(
        out.to_string()
            .contains("airlock writeback migration --engine postgres --schema public"),
        "{out}"
    );
    assert_eq!(invoice(&db, "INV-3001"), before);

    // The administrator creates it as documented (`airlock writeback
    // grants`): a superuser-owned table is trusted and the apply lands.
    execute(
        &db,
        &format!(
            "DROP TABLE public.synapsor_writeback_receipts; {};
             GRANT SELECT, INSERT ON public.synapsor_writeback_receipts TO synapsor_writer",
            receipts_ddl(Engine::Postgres, "public")
        ),
    );
    let (code, out) = apply(&exec, &id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(invoice(&db, "INV-3001")[0].as_deref(), Some("0"));
    let (_, report, _) = doctor(&exec, &db);
    assert_eq!(
        doctor_check(&report, "reader privileges app")["status"],
        "ok",
        "{report}"
    );
    assert!(
        !report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "receipt table app"),
        "{report}"
    );
}

/// Doctor fails when the reader can create objects on the writer's search
/// path (a target schema, or a schema only the writer's own path names) or
/// in the database, or can write any table — each with the fix.
#[test]
fn doctor_fails_when_the_reader_could_plant_or_write() {
    let db = postgres_reference("airlock_sp_doctor");
    let exec = start(&db);
    let (_, report, _) = doctor(&exec, &db);
    let ok = doctor_check(&report, "reader privileges app");
    assert_eq!(ok["status"], "ok", "{report}");
    assert!(
        ok["reason"].as_str().unwrap().contains("synapsor_reader"),
        "{report}"
    );

    // CREATE on the target schema (public), as on PostgreSQL ≤ 14.
    execute(&db, "GRANT CREATE ON SCHEMA public TO synapsor_reader");
    let (code, report, human) = doctor(&exec, &db);
    assert_eq!(code, 1, "{report}");
    let c = doctor_check(&report, "reader privileges app");
    assert_eq!(c["status"], "fail", "{report}");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("can create objects in schema `public`"),
        "{report}"
    );
    assert!(
        human.contains("fix: REVOKE CREATE ON SCHEMA \"public\" FROM \"synapsor_reader\""),
        "{human}"
    );
    execute(&db, "REVOKE CREATE ON SCHEMA public FROM synapsor_reader");

    // CREATE on a schema only the writer's own search_path names.
    execute(
        &db,
        "CREATE SCHEMA app_ext;
         GRANT USAGE, CREATE ON SCHEMA app_ext TO synapsor_reader;
         ALTER ROLE synapsor_writer IN DATABASE airlock_sp_doctor SET search_path = app_ext, public",
    );
    let (code, report, human) = doctor(&exec, &db);
    assert_eq!(code, 1, "{report}");
    assert!(
        doctor_check(&report, "reader privileges app")["reason"]
            .as_str()
            .unwrap()
            .contains("schema `app_ext`"),
        "{report}"
    );
    assert!(
        human.contains("REVOKE CREATE ON SCHEMA \"app_ext\" FROM \"synapsor_reader\""),
        "{human}"
    );
    execute(&db, "REVOKE CREATE ON SCHEMA app_ext FROM synapsor_reader");

    // CREATE on the database (a schema named after the writer is on its path as "$user").
    execute(
        &db,
        "GRANT CREATE ON DATABASE airlock_sp_doctor TO synapsor_reader",
    );
    let (code, report, human) = doctor(&exec, &db);
    assert_eq!(code, 1, "{report}");
    assert!(
        human.contains("REVOKE CREATE ON DATABASE \"airlock_sp_doctor\" FROM \"synapsor_reader\""),
        "{human}"
    );
    execute(
        &db,
        "REVOKE CREATE ON DATABASE airlock_sp_doctor FROM synapsor_reader",
    );

    // Any write privilege: INSERT on one table.
    execute(&db, "GRANT INSERT ON public.invoices TO synapsor_reader");
    let (code, report, human) = doctor(&exec, &db);
    assert_eq!(code, 1, "{report}");
    let c = doctor_check(&report, "reader privileges app");
    assert_eq!(c["status"], "fail", "{report}");
    assert!(
        c["reason"].as_str().unwrap().contains(
            "can write (INSERT, UPDATE, DELETE, TRUNCATE or TRIGGER) \"public\".\"invoices\""
        ),
        "{report}"
    );
    assert!(
        human.contains("REVOKE INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER ON \"public\".\"invoices\" FROM \"synapsor_reader\""),
        "{human}"
    );
    execute(&db, "REVOKE INSERT ON public.invoices FROM synapsor_reader");
    let (_, report, _) = doctor(&exec, &db);
    assert_eq!(
        doctor_check(&report, "reader privileges app")["status"],
        "ok",
        "{report}"
    );
    for secret in ["synapsor_writer_password", "synapsor_reader_password"] {
        assert!(!report.to_string().contains(secret), "a secret leaked");
    }
}

/// The executor's writer connections to `db`, as backend pids.
fn writer_backends(db: &Database) -> Vec<Option<String>> {
    query_strings(
        db,
        &format!(
            "SELECT CAST(pid AS TEXT) FROM pg_stat_activity WHERE usename = 'synapsor_writer' AND datname = '{}' ORDER BY pid",
            db.name
        ),
    )
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect()
}

/// A pooled writer connection is reused while its search_path is the pinned
/// one (the check replaces the ping: no reconnect, no extra round trip), and
/// closed — never reused — once something changed it for the session (here
/// a trigger of the table's owner calling set_config).
#[test]
fn a_pooled_writer_connection_whose_search_path_changed_is_not_reused() {
    let db = postgres_reference("airlock_sp_pool");
    execute(
        &db,
        "INSERT INTO public.invoices (id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at) VALUES
           ('INV-5001', 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z'),
           ('INV-5002', 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z'),
           ('INV-5003', 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '2026-06-20T14:31:08Z')",
    );
    let exec = start(&db);
    let id = propose(&exec, &db, "INV-3001", "first");
    let (code, out) = approve_and_apply(&exec, &id);
    assert_eq!(code, Some(0), "{out}");
    let first = writer_backends(&db);
    assert_eq!(first.len(), 1, "one pooled writer connection: {first:?}");
    let id = propose(&exec, &db, "INV-5001", "second");
    let (code, out) = approve_and_apply(&exec, &id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        writer_backends(&db),
        first,
        "the pinned connection is reused"
    );

    // The table owner's trigger changes the session's search_path.
    execute(
        &db,
        "CREATE FUNCTION public.loosen_search_path() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_catalog.set_config('search_path', 'public', false); RETURN NEW; END $$;
         CREATE TRIGGER loosen AFTER UPDATE ON public.invoices FOR EACH ROW EXECUTE FUNCTION public.loosen_search_path();",
    );
    let id = propose(&exec, &db, "INV-5002", "third");
    let (code, out) = approve_and_apply(&exec, &id);
    assert_eq!(code, Some(0), "{out}");
    execute(&db, "DROP TRIGGER loosen ON public.invoices");
    let loosened = writer_backends(&db);
    // The next apply does not get that connection back.
    let id = propose(&exec, &db, "INV-5003", "fourth");
    let (code, out) = approve_and_apply(&exec, &id);
    assert_eq!(code, Some(0), "{out}");
    let after = writer_backends(&db);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(
        after, loosened,
        "the connection whose search_path changed was closed, not reused"
    );
}
