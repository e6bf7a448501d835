//! Issue 18, item 1 — the ledger on PostgreSQL, through the real processes:
//! `airlock ledger migrate` creates the schema as its owner and grants an
//! executor role exactly read and append; the real executor serves
//! proposals into it; `airlock ledger verify` checks its chain; the role
//! cannot rewrite a record even where the triggers would let it; and an
//! executor refuses to start on an unmigrated schema or on a ledger that
//! lives in a source's database.

use std::process::{Command, Output, Stdio};

use airlock_ipc::Role;
use airlock_tests::databases::{
    fresh_postgres_database, postgres_admin_url, with_database, with_user,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::proposals::{honest_proposal, load, reference_value};
use airlock_tests::{bin, block_on, stdout_json};
use serde_json::{Value, json};
use sqlx::Connection;

const ROLE: &str = "airlock_fleet_executor";
const ROLE_PASSWORD: &str = "fleet-executor-test-password";

/// A fresh ledger database (dropped and created) and the executor role.
fn ledger_database(name: &str) -> String {
    let url = fresh_postgres_database(name);
    block_on(async {
        let mut c = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .unwrap();
        let role = format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'; END IF; END $$"
        );
        match sqlx::raw_sql(sqlx::AssertSqlSafe(role))
            .execute(&mut c)
            .await
        {
            Ok(_) => {}
            // The two tests create the shared role at once: the loser of
            // that race finds it made (23505 on pg_authid), which is fine.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
            Err(e) => panic!("{e}"),
        }
    });
    url
}

fn shared_config(schema: &str) -> Value {
    let mut config = reference_value();
    config["storage"] = json!({
        "shared_postgres": {"mode": "runtime_store", "url_env": "AIRLOCK_LEDGER_DATABASE_URL", "schema": schema}
    });
    config
}

/// `airlock` with the config and the ledger URL in its environment.
fn airlock_with(config_path: &std::path::Path, url: &str, args: &[&str]) -> Output {
    Command::new(bin("airlock"))
        .args(args)
        .arg("--config")
        .arg(config_path)
        .env("AIRLOCK_LEDGER_DATABASE_URL", url)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn write_config(dir: &std::path::Path, config: &Value) -> std::path::PathBuf {
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    path
}

#[test]
fn an_executor_serves_a_migrated_postgres_ledger_with_a_least_privilege_role() {
    let owner_url = ledger_database("airlock_shared_ledger_serve");
    let executor_url = with_user(&owner_url, ROLE, ROLE_PASSWORD);
    let config = shared_config("fleet_ledger");
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &config);

    // The owner migrates and grants; the second run changes nothing.
    let out = airlock_with(
        &config_path,
        &owner_url,
        &["ledger", "migrate", "--grant", ROLE, "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = stdout_json(&out);
    assert_eq!(
        (
            report["from_version"].as_i64(),
            report["to_version"].as_i64(),
            report["granted_to"].as_str()
        ),
        (Some(0), Some(7), Some(ROLE))
    );
    let out = airlock_with(&config_path, &owner_url, &["ledger", "migrate", "--json"]);
    assert_eq!(stdout_json(&out)["from_version"], 7);

    // The executor connects as the role; proposals land in PostgreSQL.
    let env = [
        ("SYNAPSOR_TENANT_ID", "acme"),
        ("AIRLOCK_LEDGER_DATABASE_URL", executor_url.as_str()),
    ];
    let exec = ExecutorProcess::start(&config, &env);
    assert!(
        exec.log()
            .contains("ledger: PostgreSQL schema fleet_ledger"),
        "{}",
        exec.log()
    );
    let cfg = load(&config);
    let ids: Vec<String> = block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(
                honest_proposal(&mut client, &cfg, &format!("reason {i}"))
                    .await
                    .proposal_id,
            );
        }
        ids
    });
    let out = exec.cli(&["proposals", "reject", &ids[0], "--reason", "no", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = exec.cli(&["proposals", "list", "--json"]);
    let listed = stdout_json(&out);
    assert_eq!(
        listed["proposals"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    // No SQLite ledger was made beside the store lock.
    assert!(!exec.store.exists());

    // The chain verifies, read by the operator CLI from PostgreSQL.
    let out = airlock_with(&config_path, &owner_url, &["ledger", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let verified = stdout_json(&out);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(
        verified["events"], 7,
        "three reads, three proposals, one rejection"
    );
    let out = airlock_with(&config_path, &owner_url, &["ledger", "stats", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stats = stdout_json(&out);
    assert_eq!(stats["proposals"]["pending_approval"], 2, "{stats}");
    assert_eq!(stats["proposals"]["rejected"], 1);
    assert_eq!(stats["events"], 7);
    assert!(stats["file_bytes"].as_u64().unwrap() > 0, "{stats}");
    // A file backup does not apply: pg_dump does, and the command says so.
    let out = airlock_with(
        &config_path,
        &owner_url,
        &[
            "ledger",
            "backup",
            "--to",
            "/tmp/never-written.db",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stdout_json(&out)["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("pg_dump --schema=fleet_ledger")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The executor's role may append but never rewrite: the privilege is
    // not there, whatever the triggers say.
    let denied = block_on(async {
        let mut c = sqlx::PgConnection::connect(&executor_url).await.unwrap();
        let mut out = Vec::new();
        for sql in [
            "UPDATE fleet_ledger.decisions SET note = 'forged'",
            "DELETE FROM fleet_ledger.events",
            "TRUNCATE fleet_ledger.receipts",
            "DROP TABLE fleet_ledger.votes",
        ] {
            out.push(
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap_err()
                    .to_string(),
            );
        }
        out
    });
    for e in &denied {
        assert!(
            e.contains("permission denied") || e.contains("must be owner"),
            "{e}"
        );
    }
    // The owner could (with the triggers lifted): verify then says so.
    block_on(async {
        let mut c = sqlx::PgConnection::connect(&owner_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(
            "ALTER TABLE fleet_ledger.decisions DISABLE TRIGGER USER; UPDATE fleet_ledger.decisions SET note = 'forged'",
        ))
        .execute(&mut c)
        .await
        .unwrap();
    });
    let out = airlock_with(&config_path, &owner_url, &["ledger", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let broken = stdout_json(&out);
    assert!(
        broken["first_break"]["reason"]
            .as_str()
            .is_some_and(|w| w.contains("does not match its event")),
        "{broken}"
    );
}

/// Start the executor and expect it to refuse: its log.
fn refused_start(config: &Value, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), config);
    let out = Command::new(bin("airlock-executor"))
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--socket-dir")
        .arg(dir.path().join("run"))
        .arg("--store")
        .arg(dir.path().join("ledger").join("ledger.db"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "the executor started");
    assert!(!dir.path().join("run").join("proposer.sock").exists());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_executor_refuses_an_unmigrated_schema_and_a_ledger_inside_a_source() {
    let owner_url = ledger_database("airlock_shared_ledger_refuse");
    let config = shared_config("not_migrated");
    let log = refused_start(
        &config,
        &[
            ("SYNAPSOR_TENANT_ID", "acme"),
            ("AIRLOCK_LEDGER_DATABASE_URL", &owner_url),
        ],
    );
    assert!(
        log.contains(
            "the ledger schema not_migrated is at version 0, not 7; run `airlock ledger migrate`"
        ),
        "{log}"
    );
    // The variable unset: named, and nothing else said about the URL.
    let log = refused_start(&config, &[("SYNAPSOR_TENANT_ID", "acme")]);
    assert!(
        log.contains(
            "storage.shared_postgres.url_env names AIRLOCK_LEDGER_DATABASE_URL, which is not set"
        ),
        "{log}"
    );

    // A migrated ledger in the database a source's write URL points at:
    // refused, though the ledger itself is fine — whichever local spelling
    // (TCP or the Unix socket) the source's URL uses.
    let config = shared_config("in_source");
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &config);
    let out = airlock_with(&config_path, &owner_url, &["ledger", "migrate", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let same_address = owner_url.replace("127.0.0.1", "localhost");
    let log = refused_start(
        &config,
        &[
            ("SYNAPSOR_TENANT_ID", "acme"),
            ("AIRLOCK_LEDGER_DATABASE_URL", &owner_url),
            ("REFERENCE_POSTGRES_WRITE_URL", &same_address),
        ],
    );
    let why = "the ledger database (AIRLOCK_LEDGER_DATABASE_URL) is source `app_postgres`'s database (REFERENCE_POSTGRES_WRITE_URL)";
    assert!(log.contains(why), "{log}");
    assert!(!log.contains("postgres://"), "no URL in the log: {log}");
    let socket = owner_url.replace("127.0.0.1:5432", "").replace(
        "postgres://postgres@",
        "postgres://postgres@%2Fvar%2Frun%2Fpostgresql",
    );
    let log = refused_start(
        &config,
        &[
            ("SYNAPSOR_TENANT_ID", "acme"),
            ("AIRLOCK_LEDGER_DATABASE_URL", &owner_url),
            ("REFERENCE_POSTGRES_READ_URL", &socket),
        ],
    );
    assert!(
        log.contains("is source `app_postgres`'s database (REFERENCE_POSTGRES_READ_URL)"),
        "{log}"
    );
    // A source in another database of the same server is fine.
    let other = with_database(&postgres_admin_url(), "postgres");
    let exec = ExecutorProcess::start(
        &config,
        &[
            ("SYNAPSOR_TENANT_ID", "acme"),
            ("AIRLOCK_LEDGER_DATABASE_URL", &owner_url),
            ("REFERENCE_POSTGRES_WRITE_URL", &other),
        ],
    );
    assert!(exec.log().contains("ledger: PostgreSQL schema in_source"));
}
