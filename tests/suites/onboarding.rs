//! `airlock inspect` on realistic schemas (tests/fixtures/onboarding/) on
//! PostgreSQL, MariaDB and SQLite, with the real `airlock` binary: the
//! tenant key and version columns are found, every planted sensitive
//! column is flagged with a reason and no plain one is, the posture of a
//! SELECT-only reader differs from a writer's, triggers and cascading
//! foreign keys are reported, and bad input is a clear error that never
//! shows the URL.

use std::process::{Command, Output};

use airlock_policy::config::Engine;
use airlock_tests::onboarding::{self, Fixture, OnboardingDb, PASSWORD, planted};
use airlock_tests::{bin, block_on};
use serde_json::Value;
use sqlx::Connection;

/// `airlock inspect --from-env ONB_URL [extra…]` with only PATH and ONB_URL
/// in its environment.
fn inspect(url: &str, extra: &[&str]) -> Output {
    Command::new(bin("airlock"))
        .args(["inspect", "--from-env", "ONB_URL"])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ONB_URL", url)
        .output()
        .unwrap()
}

fn all_text(out: &Output) -> String {
    format!(
        "--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `--json` report, checked to be a success that never shows the URL
/// or its password.
fn inspect_json(url: &str) -> Value {
    let out = inspect(url, &["--json"]);
    let text = all_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains(PASSWORD) && !text.contains(url), "{text}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["ok"], true, "{v}");
    v
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["schema"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no table {name}"))
}

fn column<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {}", t["name"]))
}

/// Every planted sensitive column is flagged with its category and a
/// reason; no plain column is.
fn check_sensitive(report: &Value, fixture: Fixture) {
    let planted = planted();
    let found = report["sensitive_columns"].as_array().unwrap();
    let flagged = |t: &str, c: &str| found.iter().find(|s| s["table"] == t && s["column"] == c);
    for p in planted[fixture.as_str()]["sensitive"].as_array().unwrap() {
        let (t, c) = (p["table"].as_str().unwrap(), p["column"].as_str().unwrap());
        let s = flagged(t, c).unwrap_or_else(|| panic!("{t}.{c} is not flagged"));
        let findings = s["findings"].as_array().unwrap();
        assert!(
            findings.iter().any(
                |f| f["category"] == p["category"] && !f["reason"].as_str().unwrap().is_empty()
            ),
            "{t}.{c}: {s}"
        );
    }
    for p in planted[fixture.as_str()]["not_sensitive"]
        .as_array()
        .unwrap()
    {
        let (t, c) = (p["table"].as_str().unwrap(), p["column"].as_str().unwrap());
        column(table(report, t), c);
        assert!(flagged(t, c).is_none(), "{t}.{c} is flagged");
    }
}

/// What every engine must report on the SaaS schema read by the reader.
fn check_saas(db: &OnboardingDb, r: &Value) {
    assert_eq!(r["engine"], db.engine.as_str());
    let tables = r["schema"]["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 31, "30 tables and a view");
    assert_eq!(table(r, "open_invoices")["kind"], "view");
    assert_eq!(table(r, "invoices")["kind"], "table");

    // Keys, constraints, nullability.
    let invoices = table(r, "invoices");
    assert_eq!(strings(&invoices["primary_key"]), ["id"]);
    assert!(
        invoices["unique"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| strings(u) == ["org_id", "number"]),
        "{invoices}"
    );
    assert_eq!(column(invoices, "notes")["nullable"], true);
    assert_eq!(column(invoices, "status")["nullable"], false);
    let lines = table(r, "invoice_lines");
    let fk = lines["foreign_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["references_table"] == "invoices")
        .unwrap();
    assert_eq!(strings(&fk["columns"]), ["invoice_id"]);
    assert_eq!(strings(&fk["references_columns"]), ["id"]);
    assert_eq!(fk["on_delete"], "cascade");
    assert!(
        table(r, "users")["indexes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| strings(&i["columns"]) == ["org_id", "email"] && i["unique"] == true),
        "{}",
        table(r, "users")
    );

    // The tenant key: org_id on 27 of 30 tables, best first.
    let t = &r["tenant_candidates"][0];
    assert_eq!(t["column"], "org_id", "{}", r["tenant_candidates"]);
    assert_eq!(t["tables"].as_array().unwrap().len(), 27);
    assert_eq!(t["of_tables"], 30);
    assert_eq!(strings(&t["references"]), ["organizations"]);
    if db.engine == Engine::Mysql {
        // InnoDB indexes every foreign-key column.
        assert_eq!(t["indexed"].as_array().unwrap().len(), 27, "{t}");
    } else {
        assert_eq!(
            strings(&t["not_indexed"]),
            ["feature_flags", "usage_records"]
        );
    }
    assert!(
        t["evidence"]
            .as_str()
            .unwrap()
            .starts_with("on 27 of 30 tables, indexed on "),
        "{t}"
    );

    // Version columns, each table's best first.
    let versions = r["version_candidates"].as_array().unwrap();
    let first = |table: &str| {
        versions
            .iter()
            .find(|v| v["table"] == table)
            .map(|v| (v["column"].as_str().unwrap(), v["kind"].as_str().unwrap()))
    };
    assert_eq!(first("invoices"), Some(("version", "counter")));
    assert_eq!(first("subscriptions"), Some(("lock_version", "counter")));
    assert_eq!(first("projects"), Some(("row_version", "counter")));
    assert_eq!(first("integrations"), Some(("etag", "token")));
    assert_eq!(first("feature_flags"), Some(("updated_at", "timestamp")));
    assert_eq!(first("credits"), None);
    assert_eq!(first("open_invoices"), None);

    check_sensitive(r, Fixture::Saas);

    // Cascading foreign keys, by the table a write would set them off on.
    let effects = r["write_effects"].as_array().unwrap();
    let effect = |t: &str| effects.iter().find(|e| e["table"] == t);
    let customers = effect("customers").unwrap();
    let mut children: Vec<&str> = customers["cascades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["table"].as_str().unwrap())
        .collect();
    children.sort_unstable();
    assert_eq!(
        children,
        ["contacts", "customer_addresses", "payment_methods"]
    );
    let set_null = &effect("payment_methods").unwrap()["cascades"][0];
    assert_eq!(set_null["table"], "payments");
    assert_eq!(set_null["on_delete"], "set null");
    assert!(effect("credits").is_none());
}

fn check_reader_posture(db: &OnboardingDb, p: &Value) {
    assert_eq!(p["select_only"], true, "{p}");
    assert_eq!(p["can_write"], false, "{p}");
    assert_eq!(p["superuser"], false, "{p}");
    assert_eq!(p["bypass_rls"], false, "{p}");
    assert!(p["findings"].as_array().unwrap().is_empty(), "{p}");
    match db.engine {
        Engine::Postgres => assert_eq!(p["role"], db.reader.as_str()),
        Engine::Mysql => assert!(
            p["role"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}@", db.reader)),
            "{p}"
        ),
        Engine::Sqlite => {
            assert!(p["role"].is_null());
            assert_eq!(p["url_read_only"], true);
        }
    }
}

/// The human output: the sections in order and the key lines.
fn check_human(db: &OnboardingDb) {
    let out = inspect(&db.read_url, &[]);
    let text = all_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        !text.contains(PASSWORD) && !text.contains(&db.read_url),
        "{text}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut at = 0;
    for section in [
        "Tables",
        "Tenant-key candidates",
        "Version-column candidates",
        "Sensitive columns",
        "Triggers and cascading foreign keys",
        "Role posture",
    ] {
        let found = stdout[at..]
            .find(&format!("\n{section}"))
            .unwrap_or_else(|| panic!("no section {section} after byte {at}: {stdout}"));
        at += found + 1;
    }
    for line in [
        "  1. org_id (",
        "on 27 of 30 tables, indexed on ",
        "  invoices: version (",
        "  customers.dob (date): date_of_birth: the name contains \"dob\": a date of birth",
        "  employees.ssn_last4 (",
        "  payments.card_pan (",
        "  SELECT-only: yes",
        "(catalog only; no business row was read)",
    ] {
        assert!(stdout.contains(line), "missing {line:?}:\n{stdout}");
    }
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("invoices "))
        .unwrap_or_else(|| panic!("{stdout}"));
    for flag in ["tenant:org_id", "version:version", "sensitive:1"] {
        assert!(row.contains(flag), "{row}");
    }
}

#[test]
fn postgres_saas_schema() {
    let db = onboarding::postgres("airlock_onb_inspect_pg", Fixture::Saas);
    let r = inspect_json(&db.read_url);
    check_saas(&db, &r);
    let p = &r["posture"];
    check_reader_posture(&db, p);
    assert_eq!(
        strings(&p["rls_tables"]),
        ["customers", "employee_health", "employees"]
    );
    assert_eq!(table(&r, "customers")["row_level_security"], true);
    assert_eq!(table(&r, "invoices")["row_level_security"], false);
    assert!(strings(&p["owns_tables"]).is_empty());
    let invoices = r["write_effects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["table"] == "invoices")
        .unwrap();
    assert_eq!(
        strings(&invoices["triggers"]),
        ["invoices_touch_updated_at"]
    );
    assert_eq!(
        column(table(&r, "customers"), "org_id")["data_type"],
        "uuid"
    );

    // The writer: can write, bypasses RLS, owns `credits`.
    let w = inspect_json(&db.write_url);
    let p = &w["posture"];
    assert_eq!(p["role"], db.writer.as_str());
    assert_eq!(p["select_only"], false, "{p}");
    assert_eq!(p["can_write"], true, "{p}");
    assert_eq!(p["bypass_rls"], true, "{p}");
    assert_eq!(p["superuser"], false, "{p}");
    assert_eq!(strings(&p["owns_tables"]), ["credits"]);
    assert!(
        strings(&p["writable_tables"]).contains(&"invoices".to_owned()),
        "{p}"
    );
    let reasons: Vec<&str> = p["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("BYPASSRLS")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("owns the target")),
        "{reasons:?}"
    );

    check_human(&db);
    let human = String::from_utf8_lossy(&inspect(&db.read_url, &[]).stdout).into_owned();
    assert!(
        human.contains("  RLS enabled on: customers, employee_health, employees"),
        "{human}"
    );
    assert!(human.contains("  BYPASSRLS: no"), "{human}");
    assert!(human.contains("  invoices: triggers invoices_touch_updated_at; invoice_lines(invoice_id) on delete cascade"), "{human}");

    // Metadata only: inspect scans no business table. The same counters
    // move when the reader does read one (the control).
    let scans = || {
        block_on(async {
            use sqlx::Row;
            let mut c = sqlx::PgConnection::connect(&db.admin_url).await.unwrap();
            let n: i64 = sqlx::query(
                "SELECT CAST(COALESCE(SUM(seq_scan + COALESCE(idx_scan, 0)), 0) AS bigint) FROM pg_stat_user_tables WHERE schemaname = 'public'",
            )
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0);
            n
        })
    };
    let settle = || std::thread::sleep(std::time::Duration::from_millis(700));
    settle();
    let before = scans();
    inspect_json(&db.read_url);
    settle();
    assert_eq!(scans(), before, "inspect scanned a business table");
    block_on(async {
        let mut c = sqlx::PgConnection::connect(&db.read_url).await.unwrap();
        sqlx::raw_sql("SELECT count(*) FROM public.invoices")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    settle();
    assert!(scans() > before, "the control read was not counted");

    // Another schema: named, and a missing one is a clear error.
    let out = inspect(&db.read_url, &["--schema", "no_such_schema", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["error"]["code"], "no_schema");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no schema `no_such_schema`"),
        "{v}"
    );
}

#[test]
fn mariadb_saas_schema() {
    let db = onboarding::mysql("airlock_onb_insp_my", Fixture::Saas);
    let r = inspect_json(&db.read_url);
    check_saas(&db, &r);
    let p = &r["posture"];
    check_reader_posture(&db, p);
    // MariaDB's JSON is longtext with a json_valid check: reported as json.
    assert_eq!(
        column(table(&r, "integrations"), "settings")["data_type"],
        "json"
    );
    // Triggers are hidden from an account without the TRIGGER privilege,
    // and the posture says so.
    assert!(strings(&table(&r, "invoices")["triggers"]).is_empty());
    assert!(
        strings(&p["notes"])
            .iter()
            .any(|n| n.contains("TRIGGER privilege")),
        "{p}"
    );

    // The writer (with TRIGGER) sees the trigger, and is no reader.
    let w = inspect_json(&db.write_url);
    assert_eq!(
        strings(&table(&w, "invoices")["triggers"]),
        ["invoices_touch_updated_at"]
    );
    let p = &w["posture"];
    assert_eq!(p["select_only"], false, "{p}");
    assert_eq!(p["can_write"], true, "{p}");
    assert_eq!(p["superuser"], false, "{p}");
    let finding = &p["findings"][0];
    let reason = finding["reason"].as_str().unwrap();
    for privilege in ["INSERT", "UPDATE", "DELETE", "TRIGGER"] {
        assert!(reason.contains(privilege), "{reason}");
    }
    assert!(reason.contains("`airlock_onb_insp_my`.*"), "{reason}");
    assert!(finding["fix"].as_str().unwrap().starts_with("REVOKE "));

    check_human(&db);

    // A URL without a database needs --schema.
    let bare = db.read_url.trim_end_matches("/airlock_onb_insp_my");
    let out = inspect(bare, &[]);
    let text = all_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the URL names no database"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    let out = inspect(bare, &["--schema", "airlock_onb_insp_my", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_text(&out));
}

#[test]
fn sqlite_saas_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = onboarding::sqlite(dir.path(), "saas", Fixture::Saas);
    let before = std::fs::read(dir.path().join("saas.db")).unwrap();
    let r = inspect_json(&db.read_url);
    check_saas(&db, &r);
    check_reader_posture(&db, &r["posture"]);
    let invoices = r["write_effects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["table"] == "invoices")
        .unwrap();
    assert_eq!(
        strings(&invoices["triggers"]),
        ["invoices_touch_updated_at"]
    );
    // SQLite keeps date-times as text: `updated_at TEXT` still counts.
    assert_eq!(
        column(table(&r, "invoices"), "updated_at")["data_type"],
        "text"
    );
    // An INTEGER PRIMARY KEY is the rowid: never null.
    assert_eq!(column(table(&r, "invoices"), "id")["nullable"], false);

    // Without mode=ro, this OS user can write the file: not SELECT-only.
    let w = inspect_json(&db.write_url);
    let p = &w["posture"];
    assert_eq!(p["url_read_only"], false, "{p}");
    assert_eq!(p["file_writable"], true, "{p}");
    assert_eq!(p["can_write"], true, "{p}");
    assert_eq!(p["select_only"], false, "{p}");
    assert!(
        p["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("?mode=ro"),
        "{p}"
    );
    check_human(&db);
    // Nothing was written: not a byte, no journal left behind.
    assert_eq!(std::fs::read(dir.path().join("saas.db")).unwrap(), before);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["saas.db"]);
    // A plain path works too; only `main` can be inspected.
    let path = dir.path().join("saas.db");
    let r = inspect_json(path.to_str().unwrap());
    assert_eq!(r["engine"], "sqlite");
    let out = inspect(&db.read_url, &["--schema", "aux"]);
    let text = all_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("one database, `main`"), "{text}");
}

#[test]
fn single_tenant_schemas_have_no_tenant_candidate() {
    let dir = tempfile::tempdir().unwrap();
    for db in [
        onboarding::postgres("airlock_onb_inspect_single", Fixture::Single),
        onboarding::mysql("airlock_onb_insp_single", Fixture::Single),
        onboarding::sqlite(dir.path(), "single", Fixture::Single),
    ] {
        let r = inspect_json(&db.read_url);
        assert_eq!(
            r["schema"]["tables"].as_array().unwrap().len(),
            6,
            "{:?}",
            db.engine
        );
        assert!(
            r["tenant_candidates"].as_array().unwrap().is_empty(),
            "{:?}: {}",
            db.engine,
            r["tenant_candidates"]
        );
        let versions: Vec<(&str, &str)> = r["version_candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["table"].as_str().unwrap(), v["column"].as_str().unwrap()))
            .collect();
        for want in [
            ("products", "version"),
            ("orders", "updated_at"),
            ("inventory", "updated_at"),
        ] {
            assert!(versions.contains(&want), "{:?}: {versions:?}", db.engine);
        }
        check_sensitive(&r, Fixture::Single);
        check_reader_posture(&db, &r["posture"]);
        let human = String::from_utf8_lossy(&inspect(&db.read_url, &[]).stdout).into_owned();
        assert!(
            human.contains("  none: no tenant-shaped column"),
            "{:?}: {human}",
            db.engine
        );
    }
}

#[test]
fn bad_input_is_a_clear_error_without_the_url() {
    let secret = "s3cret-PLANTED-9c1";
    let run = |value: Option<&str>, json: bool| {
        let mut cmd = Command::new(bin("airlock"));
        cmd.args(["inspect", "--from-env", "ONB_URL"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        if json {
            cmd.arg("--json");
        }
        if let Some(v) = value {
            cmd.env("ONB_URL", v);
        }
        let out = cmd.output().unwrap();
        let text = all_text(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(!text.contains(secret), "{text}");
        if let Some(v) = value {
            assert!(!text.contains(v), "{text}");
        }
        if json {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["ok"], false);
            assert!(out.stderr.is_empty(), "{text}");
            (
                v["error"]["code"].as_str().unwrap().to_owned(),
                v["error"]["message"].as_str().unwrap().to_owned(),
            )
        } else {
            (
                String::new(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, msg) = run(None, true);
    assert_eq!(code, "missing_env");
    assert!(msg.contains("ONB_URL is not set"), "{msg}");
    let (code, msg) = run(Some(&format!("https://u:{secret}@example.test/db")), true);
    assert_eq!(code, "bad_url");
    assert!(
        msg.contains("ONB_URL does not hold a database URL"),
        "{msg}"
    );
    // Nothing listens on port 9 of loopback.
    let (code, msg) = run(Some(&format!("postgres://u:{secret}@127.0.0.1:9/db")), true);
    assert_eq!(code, "connect");
    assert!(
        msg.starts_with("cannot connect to postgres with the URL in ONB_URL"),
        "{msg}"
    );
    let (_, msg) = run(Some(&format!("mysql://u:{secret}@127.0.0.1:9/db")), false);
    assert!(
        msg.starts_with("airlock: cannot connect to mysql with the URL in ONB_URL"),
        "{msg}"
    );
    // A wrong password is named as such, without the password.
    let admin = airlock_tests::databases::mysql_admin_url();
    let wrong = airlock_tests::databases::with_user(&admin, "root", secret);
    let (code, msg) = run(Some(&wrong), true);
    assert_eq!(code, "connect");
    assert!(msg.contains("authentication failed"), "{msg}");
    // SQLite: a missing file is not created.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let (code, msg) = run(Some(&format!("sqlite://{}", missing.display())), true);
    assert_eq!(code, "connect");
    assert!(msg.contains("no database file there"), "{msg}");
    assert!(!missing.exists());
}
