//! `airlock doctor` on a healthy setup and on broken ones: every problem is
//! named with a fix, and no secret is ever printed.

use std::process::Command;

use airlock_policy::config::Engine;
use airlock_policy::db_error::SOURCE_MISCONFIGURED_MESSAGE;
use airlock_policy::statement::receipts_ddl;
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, query_strings, reference_config_for,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, propose_over_mcp, stdio_client};
use airlock_tests::{bin, block_on};
use serde_json::{Value, json};

fn doctor(config: &std::path::Path, env: &[(&str, &str)]) -> (i32, Value, String) {
    let out = Command::new(bin("airlock"))
        .args(["doctor", "--json", "--config"])
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let human = Command::new(bin("airlock"))
        .args(["doctor", "--config"])
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&human.stdout).into_owned(),
    )
}

fn status<'a>(report: &'a Value, check: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no check {check}: {report}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn a_healthy_setup_passes_and_a_broken_one_gets_fixes() {
    let db = postgres_reference("airlock_doctor");
    let exec = ExecutorProcess::start(
        &reference_config_for(&db),
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    );
    let socket_dir = exec.socket_dir.to_str().unwrap().to_owned();
    let good = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_WRITE_URL", db.write_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent"),
        ("AIRLOCK_SOCKET_DIR", socket_dir.as_str()),
    ];
    let (code, report, human) = doctor(&exec.config_path, &good);
    assert_eq!(code, 0, "{report}");
    for check in [
        "config",
        "read app",
        "write app",
        "credential split app",
        "socket directory",
        "executor",
    ] {
        assert_ne!(status(&report, check), "fail", "{check}: {report}");
    }
    // The receipt table is not there yet (the first apply creates it): a
    // warning, with the fix, and no "All checks passed".
    assert_eq!(status(&report, "write app"), "warn", "{report}");
    assert!(
        human.contains("fix: it is created on the first apply if the writer may CREATE; else run `airlock writeback migration --engine postgres`"),
        "{human}"
    );
    assert!(!human.contains("All checks passed"), "{human}");
    let warned = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "warn")
        .count();
    assert!(
        human.contains(&format!("0 check(s) failed, {warned} warned, ")),
        "{human}"
    );
    execute(
        &db,
        &format!(
            "{}; GRANT SELECT, INSERT ON public.synapsor_writeback_receipts TO synapsor_writer",
            receipts_ddl(Engine::Postgres, "public")
        ),
    );
    // Without a schema lock each capability warns; lock it (as after review).
    let (_, report, _) = doctor(&exec.config_path, &good);
    assert_eq!(
        status(&report, "schema lock billing.inspect_invoice"),
        "warn",
        "{report}"
    );
    let locked = Command::new(bin("airlock"))
        .args(["config", "lock", "--config"])
        .arg(&exec.config_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("APP_READ_URL", &db.read_url)
        .output()
        .unwrap();
    assert!(locked.status.success(), "{locked:?}");
    let (code, report, human) = doctor(&exec.config_path, &good);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        status(&report, "schema lock billing.inspect_invoice"),
        "ok",
        "{report}"
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "ok"),
        "{report}"
    );
    assert!(human.trim_end().ends_with("All checks passed."), "{human}");

    // Broken: a read URL naming no database (loopback Postgres trusts local users,
    // so the password alone would not break it), the write URL as the read URL, no executor.
    let bad_read = db
        .read_url
        .replace("synapsor_reader_password", "wrong-password-PLANTED")
        .replace("/airlock_doctor", "/airlock_doctor_missing");
    let (code, report, human) = doctor(
        &exec.config_path,
        &[
            ("APP_READ_URL", &bad_read),
            ("APP_TENANT_ID", "acme"),
            ("AIRLOCK_SOCKET_DIR", "/nonexistent/airlock"),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(status(&report, "read app"), "fail", "{report}");
    assert_eq!(status(&report, "executor"), "fail");
    assert_eq!(status(&report, "env APP_PRINCIPAL"), "warn");
    assert!(
        human.contains("fix: start it: `airlock-executor serve"),
        "{human}"
    );
    let (code, report, human) = doctor(
        &exec.config_path,
        &[
            ("APP_READ_URL", &db.write_url),
            ("APP_WRITE_URL", &db.write_url),
            ("APP_TENANT_ID", "acme"),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(status(&report, "credential split app"), "fail", "{report}");
    for text in [report.to_string(), human] {
        assert!(
            !text.contains("PLANTED")
                && !text.contains("synapsor_writer_password")
                && !text.contains("synapsor_reader_password"),
            "a secret leaked: {text}"
        );
    }
}

/// The human text and the JSON of every doctor run must be free of engine
/// internals: no SQLSTATE or error number, no position or server source line.
fn assert_no_engine_internals(report: &Value, human: &str) {
    for text in [report.to_string(), human.to_owned()] {
        for needle in [
            "at line",
            "SQLSTATE",
            "(code ",
            "(error ",
            "42703",
            "42P01",
            "42501",
            "1054",
            "1142",
            "1143",
            "error returned from database",
        ] {
            assert!(!text.contains(needle), "{needle:?} in {text}");
        }
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

fn reason(report: &Value, name: &str) -> String {
    check(report, name)["reason"].as_str().unwrap().to_owned()
}

/// A URL for `user` (password `pw`) on the host and database of `url`.
fn url_as(url: &str, user: &str, pw: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{pw}@{host}")
}

/// The proposer's and executor's environment for `db`, with `read_url` as the read URL.
fn env_for<'a>(
    db: &'a Database,
    read_url: &'a str,
    socket_dir: &'a str,
) -> [(&'a str, &'a str); 5] {
    [
        ("APP_READ_URL", read_url),
        ("APP_WRITE_URL", db.write_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent"),
        ("AIRLOCK_SOCKET_DIR", socket_dir),
    ]
}

/// Postgres: the capabilities' columns as the reader, the writer's column
/// grants, the receipt table's grants, and a reader that is a superuser,
/// owns a target, can write or bypasses RLS — each named with its fix.
#[test]
fn postgres_doctor_checks_the_real_schema_and_roles() {
    let db = postgres_reference("airlock_doctor_schema");
    let exec = ExecutorProcess::start(
        &reference_config_for(&db),
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    );
    let dir = exec.socket_dir.to_str().unwrap().to_owned();
    let run = |read_url: &str| {
        let (code, report, human) = doctor(&exec.config_path, &env_for(&db, read_url, &dir));
        assert_no_engine_internals(&report, &human);
        (code, report, human)
    };

    // Healthy: every capability and every writer grant is ok.
    let (code, report, _) = run(&db.read_url);
    assert_eq!(code, 0, "{report}");
    for name in [
        "capability billing.inspect_invoice",
        "capability billing.propose_late_fee_waiver",
        "writer grants billing.propose_late_fee_waiver",
        "writer grants support.propose_plan_credit",
        "reader privileges app",
    ] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report}");
    }

    // The writer lost UPDATE on one patched column.
    execute(
        &db,
        "REVOKE UPDATE (late_fee_cents) ON public.invoices FROM synapsor_writer",
    );
    let (code, report, human) = run(&db.read_url);
    assert_eq!(code, 1, "{report}");
    let w = check(&report, "writer grants billing.propose_late_fee_waiver");
    assert_eq!(w["status"], "fail", "{report}");
    assert!(
        reason(&report, "writer grants billing.propose_late_fee_waiver").contains(
            "capability `billing.propose_late_fee_waiver`: the write credential may not UPDATE column `late_fee_cents` of `public.invoices`"
        ),
        "{report}"
    );
    assert!(
        human.contains("GRANT UPDATE (\"late_fee_cents\") ON \"public\".\"invoices\""),
        "{human}"
    );
    assert!(!human.contains("All checks passed"), "{human}");
    execute(
        &db,
        "GRANT UPDATE (late_fee_cents) ON public.invoices TO synapsor_writer",
    );

    // The receipt table exists but the writer may not insert into it.
    execute(
        &db,
        &format!(
            "{}; GRANT SELECT ON public.synapsor_writeback_receipts TO synapsor_writer",
            receipts_ddl(Engine::Postgres, "public")
        ),
    );
    let (code, report, _) = run(&db.read_url);
    assert_eq!(code, 1, "{report}");
    assert_eq!(check(&report, "receipt grants app")["status"], "fail");
    assert!(
        reason(&report, "receipt grants app")
            .contains("lacks INSERT on `public.synapsor_writeback_receipts`"),
        "{report}"
    );
    execute(
        &db,
        "GRANT INSERT ON public.synapsor_writeback_receipts TO synapsor_writer",
    );
    let (code, report, _) = run(&db.read_url);
    assert_eq!(code, 0, "{report}");
    assert_eq!(check(&report, "write app")["status"], "ok", "{report}");

    // A column a capability reads is dropped: the reader's probe names the
    // capability and the column, and so does the writer's.
    execute(&db, "ALTER TABLE public.invoices DROP COLUMN waiver_reason");
    let (code, report, human) = run(&db.read_url);
    assert_eq!(code, 1, "{report}");
    for cap in ["billing.inspect_invoice", "billing.propose_late_fee_waiver"] {
        let name = format!("capability {cap}");
        assert_eq!(check(&report, &name)["status"], "fail", "{report}");
        assert!(
            reason(&report, &name).contains(&format!(
                "capability `{cap}`: column `waiver_reason` of `public.invoices` does not exist"
            )),
            "{report}"
        );
    }
    assert!(
        reason(&report, "writer grants billing.propose_late_fee_waiver")
            .contains("column `waiver_reason` of `public.invoices` does not exist"),
        "{report}"
    );
    assert!(human.contains("1 check(s) failed") || human.contains("check(s) failed"));
    assert_eq!(
        check(&report, "capability support.inspect_ticket")["status"],
        "ok"
    );
    execute(
        &db,
        "ALTER TABLE public.invoices ADD COLUMN waiver_reason text;
         GRANT UPDATE (waiver_reason) ON public.invoices TO synapsor_writer",
    );

    // Readers with more than SELECT, each its own role (roles are
    // cluster-wide; these names are this test's alone).
    execute(
        &db,
        "DO $r$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'airlock_doc_su') THEN CREATE ROLE airlock_doc_su LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'airlock_doc_owner') THEN CREATE ROLE airlock_doc_owner LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'airlock_doc_bypass') THEN CREATE ROLE airlock_doc_bypass LOGIN; END IF;
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'airlock_doc_writes') THEN CREATE ROLE airlock_doc_writes LOGIN; END IF;
         END $r$;
         ALTER ROLE airlock_doc_su SUPERUSER PASSWORD 'doc_pw';
         ALTER ROLE airlock_doc_owner PASSWORD 'doc_pw';
         ALTER ROLE airlock_doc_bypass BYPASSRLS PASSWORD 'doc_pw';
         ALTER ROLE airlock_doc_writes PASSWORD 'doc_pw';
         GRANT USAGE ON SCHEMA public TO airlock_doc_owner, airlock_doc_bypass, airlock_doc_writes;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO airlock_doc_owner, airlock_doc_bypass, airlock_doc_writes;
         GRANT INSERT ON public.orders TO airlock_doc_writes;
         ALTER TABLE public.customers OWNER TO airlock_doc_owner",
    );
    for (user, needles) in [
        (
            "airlock_doc_su",
            vec![
                "the read role `airlock_doc_su` is a superuser",
                "ALTER ROLE \"airlock_doc_su\" NOSUPERUSER",
            ],
        ),
        (
            "airlock_doc_owner",
            vec![
                "owns the target \"public\".\"customers\" (as `airlock_doc_owner`)",
                "ALTER TABLE \"public\".\"customers\" OWNER TO",
            ],
        ),
        (
            "airlock_doc_bypass",
            vec![
                "`airlock_doc_bypass`, which has BYPASSRLS",
                "ALTER ROLE \"airlock_doc_bypass\" NOBYPASSRLS",
            ],
        ),
        (
            "airlock_doc_writes",
            vec!["can write (INSERT, UPDATE, DELETE, TRUNCATE or TRIGGER) \"public\".\"orders\""],
        ),
    ] {
        let url = url_as(&db.read_url, user, "doc_pw");
        let (code, report, human) = run(&url);
        assert_eq!(code, 1, "{user}: {report}");
        let c = check(&report, "reader privileges app");
        assert_eq!(c["status"], "fail", "{user}: {report}");
        let text = format!(
            "{} {}",
            c["reason"].as_str().unwrap(),
            c["fix"].as_str().unwrap()
        );
        for needle in needles {
            assert!(text.contains(needle), "{user}: {needle:?} not in {text}");
        }
        assert!(!human.contains("All checks passed"), "{human}");
        assert!(!human.contains("doc_pw"), "a password leaked: {human}");
    }
    execute(
        &db,
        "ALTER TABLE public.customers OWNER TO CURRENT_USER;
         REVOKE ALL ON ALL TABLES IN SCHEMA public FROM airlock_doc_owner, airlock_doc_bypass, airlock_doc_writes;
         REVOKE ALL ON SCHEMA public FROM airlock_doc_owner, airlock_doc_bypass, airlock_doc_writes",
    );
}

/// MariaDB: the capabilities' columns as the reader, the writer's column
/// grants (an UPDATE with a false predicate, rolled back), and a reader
/// account holding write or global privileges.
#[test]
fn mariadb_doctor_checks_the_real_schema_and_grants() {
    let db = mysql_reference("airlock_doctor_my");
    let exec = ExecutorProcess::start(
        &reference_config_for(&db),
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    );
    let dir = exec.socket_dir.to_str().unwrap().to_owned();
    let name = db.name.clone();
    let run = |read_url: &str| {
        let (code, report, human) = doctor(&exec.config_path, &env_for(&db, read_url, &dir));
        assert_no_engine_internals(&report, &human);
        (code, report, human)
    };
    let hosts = ["localhost", "127.0.0.1", "%"];
    let for_hosts =
        |f: &dyn Fn(&str) -> String| hosts.iter().map(|h| f(h)).collect::<Vec<_>>().join(";");

    let (code, report, _) = run(&db.read_url);
    assert_eq!(code, 0, "{report}");
    for check_name in [
        "capability billing.inspect_invoice",
        "writer grants billing.propose_late_fee_waiver",
        "writer grants orders.propose_status_change",
        "reader privileges app",
    ] {
        assert_eq!(
            check(&report, check_name)["status"],
            "ok",
            "{check_name}: {report}"
        );
    }

    // The writer lost UPDATE on one column.
    execute(
        &db,
        &for_hosts(&|h| {
            format!(
                "REVOKE UPDATE (waiver_reason) ON `{name}`.invoices FROM 'airlock_writer'@'{h}'"
            )
        }),
    );
    let (code, report, _) = run(&db.read_url);
    assert_eq!(code, 1, "{report}");
    assert!(
        reason(&report, "writer grants billing.propose_late_fee_waiver")
            .contains("the write credential may not UPDATE column `waiver_reason` of"),
        "{report}"
    );
    execute(
        &db,
        &for_hosts(&|h| {
            format!("GRANT UPDATE (waiver_reason) ON `{name}`.invoices TO 'airlock_writer'@'{h}'")
        }),
    );
    let (code, report, _) = run(&db.read_url);
    assert_eq!(code, 0, "{report}");

    // A reader account that can write, and one with ALL on the database.
    execute(
        &db,
        &for_hosts(&|h| {
            format!(
                "CREATE USER IF NOT EXISTS 'airlock_doc_rw'@'{h}' IDENTIFIED BY 'doc_pw';
                 GRANT SELECT, INSERT ON `{name}`.* TO 'airlock_doc_rw'@'{h}';
                 CREATE USER IF NOT EXISTS 'airlock_doc_all'@'{h}' IDENTIFIED BY 'doc_pw';
                 GRANT ALL PRIVILEGES ON `{name}`.* TO 'airlock_doc_all'@'{h}'"
            )
        }),
    );
    for (user, privilege) in [
        ("airlock_doc_rw", "INSERT"),
        ("airlock_doc_all", "ALL PRIVILEGES"),
    ] {
        let (code, report, human) = run(&url_as(&db.read_url, user, "doc_pw"));
        assert_eq!(code, 1, "{user}: {report}");
        let c = check(&report, "reader privileges app");
        assert_eq!(c["status"], "fail", "{report}");
        let r = c["reason"].as_str().unwrap();
        assert!(r.contains(&format!("{privilege} on `{name}`.*")), "{r}");
        assert!(
            c["fix"]
                .as_str()
                .unwrap()
                .starts_with(&format!("REVOKE {privilege} ON `{name}`.* FROM ")),
            "{report}"
        );
        assert!(
            !human.contains("doc_pw") && !human.contains("IDENTIFIED"),
            "{human}"
        );
    }
    execute(
        &db,
        &for_hosts(&|h| {
            format!(
                "DROP USER IF EXISTS 'airlock_doc_rw'@'{h}'; DROP USER IF EXISTS 'airlock_doc_all'@'{h}'"
            )
        }),
    );

    // A dropped column: named with each capability that reads it.
    execute(&db, "ALTER TABLE invoices DROP COLUMN waiver_reason");
    let (code, report, human) = run(&db.read_url);
    assert_eq!(code, 1, "{report}");
    assert!(
        reason(&report, "capability billing.inspect_invoice").contains(&format!(
            "capability `billing.inspect_invoice`: column `waiver_reason` of `{name}.invoices` does not exist"
        )),
        "{report}"
    );
    assert!(
        reason(&report, "writer grants billing.propose_late_fee_waiver")
            .contains("column `waiver_reason`"),
        "{report}"
    );
    assert!(human.contains("check(s) failed"), "{human}");
}

/// Text a model or the ledger must never get from a misconfigured source:
/// the engine's codes, positions and messages.
fn assert_no_engine_text(text: &str) {
    for needle in [
        "42703",
        "1054",
        "at line",
        "SQLSTATE",
        "error returned from database",
        "waiver_reason\" does not exist",
        "Unknown column",
        "try again",
    ] {
        assert!(!text.contains(needle), "{needle:?} in {text}");
    }
}

/// At call time: a read whose column was dropped answers the model
/// `source_misconfigured` ("tell the operator", not "try again"), on
/// Postgres and MariaDB through the real proposer; an approved proposal
/// applied after the drop fails `SOURCE_MISCONFIGURED` in the executor's
/// own words, nothing written.
#[test]
fn a_read_or_apply_of_a_dropped_column_is_source_misconfigured() {
    for db in [
        postgres_reference("airlock_doctor_calltime"),
        mysql_reference("airlock_doctor_calltime_my"),
    ] {
        let exec = ExecutorProcess::start(
            &reference_config_for(&db),
            &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
        );
        let id = block_on(propose_over_mcp(
            &exec.config_path,
            &exec.socket_dir,
            &db.read_url,
            "billing.propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "first late payment"}),
        ));
        let out = exec.cli(&["proposals", "approve", &id, "--yes", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");

        execute(&db, "ALTER TABLE invoices DROP COLUMN waiver_reason");

        let envelope = block_on(async {
            let client = stdio_client(
                &exec.config_path,
                &exec.socket_dir,
                &agent_env(&db.read_url),
                &[],
            )
            .await;
            let (_, envelope) = call(
                &client,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-3001"}),
            )
            .await;
            client.cancel().await.unwrap();
            envelope
        });
        let engine = db.engine.as_str();
        assert_eq!(envelope["ok"], false, "{engine}: {envelope}");
        assert_eq!(
            envelope["error"]["code"], "SOURCE_MISCONFIGURED",
            "{engine}: {envelope}"
        );
        assert_eq!(
            envelope["error"]["retryable"], false,
            "{engine}: {envelope}"
        );
        assert_eq!(
            envelope["error"]["message"], SOURCE_MISCONFIGURED_MESSAGE,
            "{engine}: {envelope}"
        );
        assert_no_engine_text(&envelope.to_string());

        // The executor reads the row again when it applies the approved proposal.
        let out = exec.cli(&["apply", &id, "--json"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{engine}: {text}");
        let applied: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(applied["writeback"]["status"], "failed", "{engine}: {text}");
        assert_eq!(
            applied["writeback"]["receipt"]["safe_error_code"], "SOURCE_MISCONFIGURED",
            "{engine}: {text}"
        );
        assert!(
            text.contains("a column does not exist") && text.contains("airlock doctor"),
            "{engine}: {text}"
        );
        let shown = exec.cli(&["proposals", "show", &id, "--json"]);
        for t in [text, String::from_utf8_lossy(&shown.stdout).into_owned()] {
            assert_no_engine_text(&t);
        }
        let as_text = if db.engine == Engine::Postgres {
            "TEXT"
        } else {
            "CHAR"
        };
        let late_fee = query_strings(
            &db,
            &format!(
                "SELECT CAST(late_fee_cents AS {as_text}) FROM invoices WHERE id = 'INV-3001'"
            ),
        );
        assert_eq!(late_fee, vec![vec![Some("5500".to_owned())]], "{engine}");
    }
}
