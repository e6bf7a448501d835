//! The drift lock (issue 14, item 5) on real PostgreSQL, MariaDB and SQLite:
//! the catalog queries of `policy::catalog_sql` run against each engine with
//! the least-privilege reader, and a locked capability whose table drifts is
//! disabled by the proposer, the executor and reported by `doctor`.

use std::path::Path;
use std::process::Command;

use airlock_ipc::Role;
use airlock_policy::catalog::openai_alias;
use airlock_policy::catalog_sql::{column_from_row, columns_query};
use airlock_policy::config::Engine;
use airlock_policy::schema_info::ColumnInfo;
use airlock_policy::statement::select_row;
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, reference_config_for, sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, stdio_client};
use airlock_tests::proposals::{
    WAIVER, invoice_row, load, read_of, record, refusal, submit, waiver,
};
use airlock_tests::{bin, block_on};
use serde_json::{Value, json};
use sqlx::{Connection, Row};

/// The live columns of `schema.table`, read with `url` through sqlx's `Any`
/// driver (as the operator CLI does) using the pinned catalog query.
fn live_columns(engine: Engine, url: &str, schema: &str, table: &str) -> Vec<ColumnInfo> {
    block_on(async {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
        let q = columns_query(engine);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q.sql));
        for v in q.bind_values(schema, table) {
            query = query.bind(v.to_owned());
        }
        query
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{engine:?} catalog query: {e}"))
            .iter()
            .map(|r| {
                column_from_row(
                    &r.try_get::<String, _>(0).unwrap(),
                    &r.try_get::<String, _>(1).unwrap(),
                    &r.try_get::<String, _>(2).unwrap(),
                )
                .unwrap()
            })
            .collect()
    })
}

fn col(name: &str, data_type: &str, nullable: bool) -> ColumnInfo {
    ColumnInfo {
        name: name.into(),
        data_type: data_type.into(),
        nullable,
    }
}

/// A table with a spread of types, created as admin; read as the reader.
fn catalog_probe(db: &Database, schema: &str) -> Vec<ColumnInfo> {
    let ddl = match db.engine {
        Engine::Postgres => {
            "CREATE TABLE public.drift_probe (id BIGINT PRIMARY KEY, Email VARCHAR(64) NOT NULL, \
             amount NUMERIC(10,2), seen_at TIMESTAMPTZ, note TEXT); \
             ALTER TABLE public.drift_probe DROP COLUMN note; \
             ALTER TABLE public.drift_probe ADD COLUMN flags INTEGER NOT NULL DEFAULT 0; \
             GRANT SELECT ON public.drift_probe TO synapsor_reader"
        }
        Engine::Mysql => {
            "CREATE TABLE drift_probe (id BIGINT UNSIGNED PRIMARY KEY, Email VARCHAR(64) NOT NULL, \
             amount DECIMAL(10,2), seen_at DATETIME NULL, flags INT NOT NULL DEFAULT 0)"
        }
        Engine::Sqlite => {
            "CREATE TABLE drift_probe (id INTEGER PRIMARY KEY, Email VARCHAR(64) NOT NULL, \
             amount NUMERIC(10,2), seen_at TEXT, flags INT NOT NULL DEFAULT 0)"
        }
    };
    execute(db, ddl);
    live_columns(db.engine, &db.read_url, schema, "drift_probe")
}

#[test]
fn catalog_queries_read_columns_in_order_on_every_engine() {
    let pg = postgres_reference("airlock_drift_catalog");
    assert_eq!(
        catalog_probe(&pg, "public"),
        vec![
            col("id", "bigint", false),
            col("email", "character varying(64)", false),
            col("amount", "numeric(10,2)", true),
            col("seen_at", "timestamp with time zone", true),
            col("flags", "integer", false),
        ],
        "dropped columns are skipped, the order is the table's"
    );
    // A table that does not exist (or another schema) has no columns.
    assert!(live_columns(Engine::Postgres, &pg.read_url, "other", "drift_probe").is_empty());

    let my = mysql_reference("airlock_drift_catalog");
    let got = catalog_probe(&my, "airlock_drift_catalog");
    let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "Email", "amount", "seen_at", "flags"]);
    // MariaDB spells `bigint(20) unsigned`, MySQL 8 `bigint unsigned`.
    assert!(
        got[0].data_type.starts_with("bigint") && got[0].data_type.ends_with(" unsigned"),
        "{got:?}"
    );
    assert!(!got[0].nullable);
    assert_eq!(got[1], col("Email", "varchar(64)", false));
    assert_eq!(got[2], col("amount", "decimal(10,2)", true));
    assert_eq!(got[3], col("seen_at", "datetime", true));
    assert!(
        got[4].data_type.starts_with("int") && !got[4].nullable,
        "{got:?}"
    );
    assert!(
        live_columns(
            Engine::Mysql,
            &my.read_url,
            "information_schema_x",
            "drift_probe"
        )
        .is_empty()
    );

    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_reference(dir.path(), "drift_catalog");
    assert_eq!(
        catalog_probe(&lite, "main"),
        vec![
            col("id", "integer", true),
            col("Email", "varchar(64)", false),
            col("amount", "numeric(10,2)", true),
            col("seen_at", "text", true),
            col("flags", "int", false),
        ]
    );
    assert!(live_columns(Engine::Sqlite, &lite.read_url, "main", "no_such_table").is_empty());
}

const INSPECT: &str = "billing.inspect_invoice";

/// Run the operator CLI with exactly `env` (plus PATH); exit code and the
/// `--json` document.
fn airlock_json(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let out = Command::new(bin("airlock"))
        .args(args)
        .arg("--json")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

fn lock(config: &Path, db: &Database, caps: &[&str]) -> (i32, Value) {
    let mut args = vec!["config", "lock", "--config", config.to_str().unwrap()];
    for c in caps {
        args.extend(["--capability", c]);
    }
    airlock_json(&args, &[("APP_READ_URL", &db.read_url)])
}

/// The `schema lock <capability>` checks of `airlock doctor`, by capability.
fn doctor_locks(config: &Path, db: &Database) -> Vec<(String, String, String, String)> {
    let (_, report) = airlock_json(
        &["doctor", "--config", config.to_str().unwrap()],
        &[("APP_READ_URL", &db.read_url)],
    );
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let name = c["check"].as_str()?.strip_prefix("schema lock ")?;
            Some((
                name.to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
                c["fix"].as_str().unwrap().to_owned(),
            ))
        })
        .collect()
}

fn assert_doctor_all_ok(config: &Path, db: &Database) {
    let checks = doctor_locks(config, db);
    assert_eq!(checks.len(), 8, "{checks:?}");
    assert!(checks.iter().all(|c| c.1 == "ok"), "{checks:?}");
}

fn read_config(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

async fn tool_names(client: &airlock_tests::mcp::McpClient) -> Vec<String> {
    client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

/// A drifted invoices table disables both billing capabilities everywhere:
/// doctor FAILs with the fix, a restarted executor refuses the waiver
/// proposal with `schema_drift`, and a proposer started now does not offer
/// the billing tools and refuses a call with `SCHEMA_DRIFT`. Other tables'
/// capabilities keep working.
fn assert_disabled(exec: &mut ExecutorProcess, db: &Database, expect: &str) {
    let env = [
        ("APP_TENANT_ID", "acme"),
        ("APP_WRITE_URL", db.write_url.as_str()),
    ];
    // doctor
    let checks = doctor_locks(&exec.config_path, db);
    for (name, status, reason, fix) in &checks {
        if name.starts_with("billing.") {
            assert_eq!(status, "fail", "{checks:?}");
            assert!(reason.contains(expect), "{reason} lacks {expect}");
            assert!(
                fix.contains(&format!(
                    "airlock config lock --config {} --capability {name}",
                    exec.config_path.display()
                )),
                "{fix}"
            );
        } else {
            assert_eq!(status, "ok", "{checks:?}");
        }
    }
    // executor: checked at start
    exec.stop();
    exec.restart(&env);
    assert!(
        exec.log().contains(&format!(
            "capability `{WAIVER}` is disabled by the schema lock: table "
        )) && exec.log().contains(expect),
        "{}",
        exec.log()
    );
    let cfg = load(&read_config(&exec.config_path));
    let refused = block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let args = json!({"invoice_id": "INV-3001", "reason": "drift"});
        let mut read = read_of(&cfg, WAIVER, args, &invoice_row("INV-3001", "acme"), "acme");
        read.query_fingerprint =
            select_row(db.engine, cfg.capability(WAIVER).unwrap(), false).fingerprint();
        let ev = record(&mut client, read)
            .await
            .expect("reads are still recorded");
        submit(
            &mut client,
            waiver(&cfg, "INV-3001", "acme", "drift"),
            Some(ev.evidence_id),
        )
        .await
    });
    assert_eq!(refusal(refused), "schema_drift");
    // proposer: checked at start with the read connection
    block_on(async {
        let client = stdio_client(
            &exec.config_path,
            &exec.socket_dir,
            &agent_env(&db.read_url),
            &[],
        )
        .await;
        let names = tool_names(&client).await;
        assert!(!names.contains(&openai_alias(INSPECT)), "{names:?}");
        assert!(!names.contains(&openai_alias(WAIVER)), "{names:?}");
        assert!(
            names.contains(&openai_alias("orders.inspect_order")),
            "{names:?}"
        );
        let (_, env) = call(
            &client,
            &openai_alias(INSPECT),
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["ok"], false, "{env}");
        assert_eq!(env["error"]["code"], "SCHEMA_DRIFT", "{env}");
        assert_eq!(env["error"]["airlock_code"], "schema_drift", "{env}");
        let message = env["error"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{message}");
        assert!(message.contains("airlock config lock"), "{message}");
        // Another table's tool still reads.
        let (_, env) = call(
            &client,
            &openai_alias("orders.inspect_order"),
            json!({"order_id": "ORD-4001"}),
        )
        .await;
        assert_ne!(env["error"]["code"], "SCHEMA_DRIFT", "{env}");
        client.cancel().await.unwrap();
    });
}

/// After a relock, everything serves again: doctor ok, the executor
/// accepts the proposal the proposer makes over MCP.
fn assert_enabled(exec: &mut ExecutorProcess, db: &Database) {
    let env = [
        ("APP_TENANT_ID", "acme"),
        ("APP_WRITE_URL", db.write_url.as_str()),
    ];
    assert_doctor_all_ok(&exec.config_path, db);
    exec.stop();
    exec.restart(&env);
    block_on(async {
        let client = stdio_client(
            &exec.config_path,
            &exec.socket_dir,
            &agent_env(&db.read_url),
            &[],
        )
        .await;
        let names = tool_names(&client).await;
        assert!(names.contains(&openai_alias(WAIVER)), "{names:?}");
        let (_, env) = call(
            &client,
            &openai_alias(WAIVER),
            json!({"invoice_id": "INV-3001", "reason": "relocked"}),
        )
        .await;
        assert_eq!(env["ok"], true, "{env}");
        client.cancel().await.unwrap();
    });
}

fn relock_billing(exec: &ExecutorProcess, db: &Database, expect_change: &str) {
    let (code, out) = lock(&exec.config_path, db, &[INSPECT, WAIVER]);
    assert_eq!(code, 0, "{out}");
    let caps = out["capabilities"].as_array().unwrap();
    assert_eq!(caps.len(), 2, "{out}");
    for c in caps {
        assert_eq!(c["status"], "relocked", "{out}");
        let changes: Vec<&str> = c["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(changes, [expect_change], "{out}");
    }
}

/// Lock → ok; a dropped column, a type change and a new tenant-shaped
/// column each disable the table's capabilities in doctor, the executor
/// and the proposer; relocking after review enables them again.
fn lifecycle(db: &Database) {
    let (t_drop, t_retype, t_tenant, retyped_to) = match db.engine {
        Engine::Postgres => (
            "ALTER TABLE public.invoices DROP COLUMN customer_id",
            "ALTER TABLE public.invoices ALTER COLUMN balance_cents TYPE bigint",
            "ALTER TABLE public.invoices ADD COLUMN org_id text",
            "bigint",
        ),
        Engine::Mysql => (
            "ALTER TABLE invoices DROP COLUMN customer_id",
            "ALTER TABLE invoices MODIFY balance_cents BIGINT NOT NULL",
            "ALTER TABLE invoices ADD COLUMN org_id VARCHAR(64) NULL",
            "bigint",
        ),
        Engine::Sqlite => (
            "ALTER TABLE invoices DROP COLUMN customer_id",
            "ALTER TABLE invoices DROP COLUMN balance_cents; ALTER TABLE invoices ADD COLUMN balance_cents TEXT",
            "ALTER TABLE invoices ADD COLUMN org_id TEXT",
            "text",
        ),
    };
    let env = [
        ("APP_TENANT_ID", "acme"),
        ("APP_WRITE_URL", db.write_url.as_str()),
    ];
    let mut exec = ExecutorProcess::start(&reference_config_for(db), &env);
    let path = exec.config_path.clone();

    // No lock yet: doctor warns for each capability, nothing is disabled.
    let checks = doctor_locks(&path, db);
    assert_eq!(checks.len(), 8, "{checks:?}");
    assert!(
        checks
            .iter()
            .all(|c| c.1 == "warn" && c.2.starts_with("no schema lock")),
        "{checks:?}"
    );

    // Lock every capability: the file keeps everything else and now loads with the lock.
    let before = read_config(&path);
    let (code, out) = lock(&path, db, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["capabilities"].as_array().unwrap().len(), 8, "{out}");
    assert!(
        out["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "locked"),
        "{out}"
    );
    let after = read_config(&path);
    let mut without = after.clone();
    without["airlock"]
        .as_object_mut()
        .unwrap()
        .remove("schema_lock");
    if without["airlock"].as_object().unwrap().is_empty() && before.get("airlock").is_none() {
        without.as_object_mut().unwrap().remove("airlock");
    }
    assert_eq!(without, before, "only the lock was added");
    let entry = &after["airlock"]["schema_lock"][WAIVER];
    assert_eq!(entry["table"], "invoices");
    assert_eq!(entry["columns"].as_object().unwrap().len(), 8, "{entry}");
    assert!(
        entry["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_enabled(&mut exec, db);

    // 1. A dropped column.
    execute(db, t_drop);
    assert_disabled(&mut exec, db, "column `customer_id` vanished");
    // Relocking is refused while the capabilities still use the column…
    let (code, out) = lock(&path, db, &[INSPECT, WAIVER]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["error"]["code"], "capability_mismatch", "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("uses column `customer_id`"),
        "{out}"
    );
    assert_eq!(read_config(&path), after, "nothing was written");
    // …so the reviewer changes them first, then relocks.
    let mut reviewed = read_config(&path);
    for cap in reviewed["capabilities"].as_array_mut().unwrap() {
        if cap["name"] == INSPECT || cap["name"] == WAIVER {
            cap["visible_columns"]
                .as_array_mut()
                .unwrap()
                .retain(|c| c != "customer_id");
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&reviewed).unwrap()).unwrap();
    let dropped = if db.engine == Engine::Mysql {
        "- customer_id varchar(64)"
    } else {
        "- customer_id text"
    };
    relock_billing(&exec, db, dropped);
    assert_enabled(&mut exec, db);

    // 2. A type change.
    execute(db, t_retype);
    assert_disabled(&mut exec, db, "column `balance_cents` changed type ");
    assert!(
        doctor_locks(&path, db)
            .iter()
            .any(|c| c.2.contains(&format!(" → {retyped_to}"))),
        "the new type is named"
    );
    let (code, out) = lock(&path, db, &[INSPECT, WAIVER]);
    assert_eq!(code, 0, "{out}");
    let change = out["capabilities"][0]["changes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        change.starts_with("~ balance_cents ") && change.contains(&format!(" → {retyped_to}")),
        "{change}"
    );
    assert_enabled(&mut exec, db);

    // 3. A new tenant-shaped column.
    execute(db, t_tenant);
    assert_disabled(&mut exec, db, "new tenant-shaped column `org_id`");
    let (code, out) = lock(&path, db, &[INSPECT, WAIVER]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out["capabilities"][0]["changes"][0]
            .as_str()
            .unwrap()
            .starts_with("+ org_id "),
        "{out}"
    );
    assert_enabled(&mut exec, db);
}

#[test]
fn drift_lifecycle_on_postgres() {
    lifecycle(&postgres_reference("airlock_drift_lifecycle"));
}

#[test]
fn drift_lifecycle_on_mariadb() {
    lifecycle(&mysql_reference("airlock_drift_lifecycle"));
}

#[test]
fn drift_lifecycle_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(&sqlite_reference(dir.path(), "drift_lifecycle"));
}

/// `airlock config lock` without `--json`, its refusals (each specific,
/// nothing written, no secret printed) and a stale entry it replaces.
#[test]
fn config_lock_reports_changes_and_refuses_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "drift_lock_cli");
    let path = dir.path().join("airlock.json");
    let mut config = reference_config_for(&db);
    // A stale entry (a capability that is gone) makes the config invalid…
    let columns = json!({"id": "text"});
    let stale = json!({
        "schema": "main", "table": "invoices", "columns": columns,
        "fingerprint": airlock_policy::drift::fingerprint(
            "main",
            "invoices",
            &serde_json::from_value(columns.clone()).unwrap(),
        ),
    });
    config["airlock"] = json!({"schema_lock": {"billing.gone": stale}});
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let validate = Command::new(bin("airlock"))
        .args(["config", "validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(validate.status.code(), Some(1), "{validate:?}");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(bin("airlock"))
            .args(["config", "lock", "--config"])
            .arg(&path)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let original = std::fs::read(&path).unwrap();

    // Refusals: nothing is written.
    let out = run(&[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("APP_READ_URL (the read URL of source `app`) is not set"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    let out = run(
        &["--capability", "billing.nope"],
        &[("APP_READ_URL", &db.read_url)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the config has no capability `billing.nope`"),
        "{out:?}"
    );
    let bad = "postgres://reader:PLANTED-s3cret-pw@127.0.0.1:1/none";
    let mut pg_config = config.clone();
    pg_config["sources"]["app"]["engine"] = json!("postgres");
    for cap in pg_config["capabilities"].as_array_mut().unwrap() {
        cap["target"]["schema"] = json!("public");
    }
    pg_config["airlock"] = json!({});
    let pg_path = dir.path().join("pg.json");
    std::fs::write(&pg_path, serde_json::to_vec_pretty(&pg_config).unwrap()).unwrap();
    let out = Command::new(bin("airlock"))
        .args(["config", "lock", "--json", "--config"])
        .arg(&pg_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("APP_READ_URL", bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"source_unavailable\""), "{text}");
    assert!(
        !text.contains("PLANTED-s3cret-pw"),
        "the password leaked: {text}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "nothing was written"
    );

    // Lock one capability: the stale entry is dropped, the output names it.
    let out = run(
        &["--capability", INSPECT],
        &[("APP_READ_URL", &db.read_url)],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("locked billing.inspect_invoice (main.invoices, 8 columns, sha256:"),
        "{text}"
    );
    assert!(
        text.contains("removed the lock of `billing.gone` (no such capability)"),
        "{text}"
    );
    assert!(text.contains("Wrote the schema lock into"), "{text}");
    let locked = read_config(&path);
    let names: Vec<&String> = locked["airlock"]["schema_lock"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names, [INSPECT]);
    let validate = Command::new(bin("airlock"))
        .args(["config", "validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(validate.status.code(), Some(0), "{validate:?}");

    // Lock another: the first entry is kept as it was; a relock prints its changes.
    let out = run(&["--capability", WAIVER], &[("APP_READ_URL", &db.read_url)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let both = read_config(&path);
    assert_eq!(
        both["airlock"]["schema_lock"][INSPECT],
        locked["airlock"]["schema_lock"][INSPECT]
    );
    assert!(both["airlock"]["schema_lock"][WAIVER].is_object());
    execute(&db, "ALTER TABLE invoices ADD COLUMN memo TEXT");
    let out = run(&[], &[("APP_READ_URL", &db.read_url)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("relocked billing.inspect_invoice (main.invoices, 9 columns"),
        "{text}"
    );
    assert!(text.contains("    + memo text"), "{text}");
    assert!(
        text.contains("unchanged orders.inspect_order")
            || text.contains("locked orders.inspect_order"),
        "{text}"
    );
    assert_eq!(
        read_config(&path)["airlock"]["schema_lock"]
            .as_object()
            .unwrap()
            .len(),
        8
    );
}
