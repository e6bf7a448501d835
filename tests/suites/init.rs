//! `airlock init` and `airlock start` with the real binaries, on real
//! PostgreSQL, MariaDB and SQLite databases:
//!
//! * on the 30-table SaaS schema, `init --yes` drafts a config that
//!   validates, offers one read tool per table with the tenant key, hides
//!   every planted sensitive column, names variables and never a URL, and
//!   serves through a real MCP client without showing a sensitive value;
//! * on the single-tenant schema it refuses without `--single-tenant` and
//!   drafts with it;
//! * refusals are clear and write nothing; the interactive path works in a
//!   real terminal (a pty from `script`);
//! * `start` takes a newcomer from a database URL to an applied proposal,
//!   timed (docs/getting-started.md records the figure).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlock_policy::config::Engine;
use airlock_tests::databases::{Database, mysql_reference, postgres_reference, sqlite_reference};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{call, stdio_client};
use airlock_tests::onboarding::{self, Fixture, OnboardingDb, PASSWORD, planted};
use airlock_tests::{bin, block_on};
use serde_json::{Value, json};
use sqlx::Connection;

/// Run `airlock` in `dir` with exactly PATH and `env`.
fn airlock_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin("airlock"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

async fn exec_sql(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The tables of the SaaS fixture that carry `org_id` (from `inspect`).
fn tenant_tables(db: &OnboardingDb) -> BTreeSet<String> {
    let out = airlock_in(
        Path::new("/"),
        &["inspect", "--from-env", "ONB_URL", "--json"],
        &[("ONB_URL", &db.read_url)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    json_of(&out)["schema"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "table")
        .filter(|t| {
            t["columns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "org_id")
        })
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The planted sensitive columns of a fixture: (table, column).
fn sensitive(fixture: Fixture) -> BTreeSet<(String, String)> {
    planted()[fixture.as_str()]["sensitive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["table"].as_str().unwrap().to_owned(),
                p["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const ORG: &str = "0b9d6c3e-5f41-4c2a-9d7e-1a2b3c4d5e6f";

/// The SaaS check on one engine: draft, validate, preview, serve.
fn saas(db: &OnboardingDb) {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ONB_URL", db.read_url.as_str())];
    let out = airlock_in(
        dir.path(),
        &[
            "init",
            "--from-env",
            "ONB_URL",
            "--output",
            "airlock.json",
            "--yes",
            "--json",
        ],
        &env,
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        !all.contains(PASSWORD) && !all.contains(&db.read_url),
        "{all}"
    );
    let report = json_of(&out);
    assert_eq!(report["tenant_key"], "org_id", "{report}");
    let file = std::fs::read_to_string(dir.path().join("airlock.json")).unwrap();
    // Variable names only: never the URL, its password or its host part.
    assert!(!file.contains(PASSWORD) && !file.contains("://"), "{file}");
    let config: Value = serde_json::from_str(&file).unwrap();
    assert_eq!(config["sources"]["app"]["read_url_env"], "ONB_URL");
    assert_eq!(config["sources"]["app"]["write_url_env"], "ONB_WRITE_URL");
    assert_eq!(
        config["sources"]["app"]["engine"],
        db.engine.as_str(),
        "{config}"
    );

    let validate = airlock_in(
        dir.path(),
        &["config", "validate", "--config", "airlock.json"],
        &[],
    );
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));

    // One read tool per table with the tenant key, and no sensitive column.
    let preview = airlock_in(
        dir.path(),
        &["tools", "preview", "--config", "airlock.json", "--json"],
        &[],
    );
    assert_eq!(preview.status.code(), Some(0), "{}", text(&preview));
    let preview = json_of(&preview);
    let caps = config["capabilities"].as_array().unwrap();
    let table_of = |name: &str| -> String {
        caps.iter().find(|c| c["name"] == name).unwrap()["target"]["table"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let tools = preview["tools"].as_array().unwrap();
    let read_tables: Vec<String> = tools
        .iter()
        .filter(|t| t["kind"] == "read")
        .map(|t| table_of(t["canonical"].as_str().unwrap()))
        .collect();
    let expected = tenant_tables(db);
    assert_eq!(expected.len(), 27, "{expected:?}");
    assert_eq!(read_tables.len(), expected.len(), "{read_tables:?}");
    assert_eq!(
        read_tables.iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    let planted = sensitive(Fixture::Saas);
    let mut checked = 0;
    for t in tools {
        let table = table_of(t["canonical"].as_str().unwrap());
        for c in names(&t["visible_columns"]) {
            assert!(
                !planted.contains(&(table.clone(), c.clone())),
                "{table}.{c} is visible to the model through {}",
                t["name"]
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
    // Every drafted capability, served or disabled, is locked.
    let lock = config["airlock"]["schema_lock"].as_object().unwrap();
    assert_eq!(lock.len(), caps.len());

    // It serves: a real MCP client reads a user and sees no sensitive value.
    block_on(exec_sql(
        &db.admin_url,
        &format!(
            "INSERT INTO organizations (id, name, slug, status) VALUES ('{ORG}', 'Acme', 'acme', 'active');
             INSERT INTO users (id, org_id, email, given_name, family_name, password_hash, status, last_login_ip)
               VALUES (1, '{ORG}', 'ada@secret.example', 'Adaline', 'Secretname', 'pbkdf2-SECRETHASH', 'active', '203.0.113.9');"
        ),
    ));
    let exec = ExecutorProcess::start(&config, &[("AIRLOCK_TENANT_ID", ORG)]);
    block_on(async {
        let client = stdio_client(
            &exec.config_path,
            &exec.socket_dir,
            &[
                ("ONB_URL", db.read_url.as_str()),
                ("AIRLOCK_TENANT_ID", ORG),
                ("AIRLOCK_PRINCIPAL", "agent_1"),
            ],
            &[],
        )
        .await;
        let listed: BTreeSet<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        let previewed: BTreeSet<String> = tools
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, previewed);
        // `users`: the argument is `id` (`user_id` reads as authority).
        let (_, envelope) = call(&client, "app__inspect_user", json!({"id": 1})).await;
        assert_eq!(envelope["ok"], true, "{envelope}");
        let row = envelope["data"].to_string();
        for secret in [
            "Adaline",
            "Secretname",
            "secret.example",
            "SECRETHASH",
            "203.0.113",
        ] {
            assert!(!row.contains(secret), "{secret} reached the model: {row}");
        }
        assert_eq!(envelope["data"]["status"], "active", "{envelope}");
        assert_eq!(envelope["data"]["org_id"], ORG, "{envelope}");
        // Another tenant's row is not there for this tenant.
        let (_, other) = call(&client, "app__inspect_user", json!({"id": 2})).await;
        assert_eq!(other["error"]["code"], "NOT_FOUND_IN_TENANT", "{other}");
        client.cancel().await.unwrap();
    });
    drop(exec);

    // Control: the same tool with the sensitive columns visible leaks them,
    // so the check above would catch a draft that did not hide them.
    let mut leaky = config.clone();
    for c in leaky["capabilities"].as_array_mut().unwrap() {
        if c["name"] == "app.inspect_user" {
            c["visible_columns"] = json!(["id", "org_id", "email", "family_name", "status"]);
        }
    }
    let exec = ExecutorProcess::start(&leaky, &[("AIRLOCK_TENANT_ID", ORG)]);
    block_on(async {
        let client = stdio_client(
            &exec.config_path,
            &exec.socket_dir,
            &[
                ("ONB_URL", db.read_url.as_str()),
                ("AIRLOCK_TENANT_ID", ORG),
                ("AIRLOCK_PRINCIPAL", "agent_1"),
            ],
            &[],
        )
        .await;
        let (_, envelope) = call(&client, "app__inspect_user", json!({"id": 1})).await;
        assert_eq!(
            envelope["data"]["email"], "ada@secret.example",
            "{envelope}"
        );
        assert_eq!(envelope["data"]["family_name"], "Secretname", "{envelope}");
        client.cancel().await.unwrap();
    });
}

#[test]
fn init_drafts_the_saas_schema_on_postgres() {
    saas(&onboarding::postgres("airlock_init_saas", Fixture::Saas));
}

#[test]
fn init_drafts_the_saas_schema_on_mariadb() {
    saas(&onboarding::mysql("airlock_init_saas", Fixture::Saas));
}

#[test]
fn init_drafts_the_saas_schema_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    saas(&onboarding::sqlite(dir.path(), "init_saas", Fixture::Saas));
}

/// The single-tenant schema: no tenant key, so `init` refuses until told
/// `--single-tenant`, then drafts every keyed table without sensitive columns.
fn single(db: &OnboardingDb) {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ONB_URL", db.read_url.as_str())];
    let refused = airlock_in(
        dir.path(),
        &[
            "init",
            "--from-env",
            "ONB_URL",
            "--output",
            "airlock.json",
            "--yes",
        ],
        &env,
    );
    let all = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{all}");
    assert!(
        all.contains("looks like a tenant key") && all.contains("--single-tenant"),
        "{all}"
    );
    assert!(!dir.path().join("airlock.json").exists());

    let out = airlock_in(
        dir.path(),
        &[
            "init",
            "--from-env",
            "ONB_URL",
            "--output",
            "airlock.json",
            "--yes",
            "--single-tenant",
            "--json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("airlock.json")).unwrap())
            .unwrap();
    let validate = airlock_in(
        dir.path(),
        &["config", "validate", "--config", "airlock.json"],
        &[],
    );
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    let planted = sensitive(Fixture::Single);
    let caps = config["capabilities"].as_array().unwrap();
    assert!(!caps.is_empty());
    for c in caps {
        assert_eq!(c["target"]["single_tenant_dev"], true, "{c}");
        assert_eq!(c["single_tenant_dev_ack"], true, "{c}");
        let table = c["target"]["table"].as_str().unwrap().to_owned();
        for col in names(&c["visible_columns"]) {
            assert!(
                !planted.contains(&(table.clone(), col.clone())),
                "{table}.{col}"
            );
        }
    }
    let reads: BTreeSet<String> = caps
        .iter()
        .filter(|c| c["kind"] == "read")
        .map(|c| c["target"]["table"].as_str().unwrap().to_owned())
        .collect();
    for t in ["customers", "orders", "products", "staff"] {
        assert!(reads.contains(t), "{t} not drafted: {reads:?}");
    }
}

#[test]
fn init_drafts_the_single_tenant_schema_on_postgres() {
    single(&onboarding::postgres(
        "airlock_init_single",
        Fixture::Single,
    ));
}

#[test]
fn init_drafts_the_single_tenant_schema_on_mariadb() {
    single(&onboarding::mysql("airlock_init_single", Fixture::Single));
}

#[test]
fn init_drafts_the_single_tenant_schema_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    single(&onboarding::sqlite(
        dir.path(),
        "init_single",
        Fixture::Single,
    ));
}

/// Every refusal is specific, never shows the URL, and writes nothing.
#[test]
fn init_refuses_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = onboarding::sqlite(dir.path(), "init_refusals", Fixture::Saas);
    let env = [("ONB_URL", db.read_url.as_str())];
    let init = |extra: &[&str]| {
        let mut args = vec!["init", "--from-env", "ONB_URL", "--output", "out.json"];
        args.extend_from_slice(extra);
        airlock_in(dir.path(), &args, &env)
    };
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["--yes", "--tables", "invoices,countries"],
            1,
            "table `countries` has no tenant column `org_id`: pass --single-tenant",
        ),
        (
            &["--yes", "--tables", "nope"],
            1,
            "there is no table `nope` in main",
        ),
        (
            &["--yes", "--tenant-column", "tenant_id"],
            1,
            "no table in main has a column `tenant_id`",
        ),
        (
            &[],
            2,
            "the draft asks its questions in a terminal; pass --yes to take the defaults",
        ),
        (
            &["--yes", "--tenant-column", "org_id", "--single-tenant"],
            2,
            "--tenant-column and --single-tenant contradict each other",
        ),
    ];
    for (extra, code, message) in cases {
        let out = init(extra);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {all}");
        assert!(all.contains(message), "{extra:?}: {all}");
        assert!(!all.contains(&db.read_url), "{all}");
        assert!(!dir.path().join("out.json").exists(), "{extra:?}");
    }
    // The variable is unset.
    let out = airlock_in(
        dir.path(),
        &[
            "init",
            "--from-env",
            "ONB_URL",
            "--output",
            "out.json",
            "--yes",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("ONB_URL is not set"), "{}", text(&out));

    // A named table without the tenant key is drafted once single-tenant.
    let out = init(&["--yes", "--tables", "countries", "--single-tenant"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written = std::fs::read_to_string(dir.path().join("out.json")).unwrap();
    // An existing file is refused and left as it was; --force replaces it.
    let out = init(&["--yes", "--tables", "invoices"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.json")).unwrap(),
        written
    );
    let out = init(&["--yes", "--tables", "invoices", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let replaced: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out.json")).unwrap())
            .unwrap();
    assert_eq!(replaced["capabilities"][0]["name"], "app.inspect_invoice");
    assert_eq!(
        replaced["capabilities"][0]["target"]["tenant_key"],
        "org_id"
    );
}

/// The interactive path, in a real terminal: `script` gives `airlock init`
/// a pty and the keys are typed into it.
#[test]
fn init_asks_in_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = onboarding::sqlite(dir.path(), "init_tty", Fixture::Saas);
    let cmd = format!(
        "{} init --from-env ONB_URL --output tty.json --tables tickets",
        bin("airlock").display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("ONB_URL", &db.read_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    // Each answer waits for its prompt to be drawn.
    let keys: [&[u8]; 8] = [
        b"\r",     // tenant column: org_id (the first candidate)
        b"y",      // review each table's columns: yes
        b" \r",    // tickets' columns: toggle the first optional one off
        b"\x1b[B", // version column: down to the second candidate…
        b"\r",     // …and take it
        b"y",      // serve the ticket-resolution proposal: yes
        b"\r",     // write tty.json: yes (the default)
        b"",
    ];
    for k in keys {
        std::thread::sleep(Duration::from_millis(400));
        stdin.write_all(k).unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("tty.json"))
            .unwrap_or_else(|e| panic!("{e}: {all}")),
    )
    .unwrap();
    let caps = config["capabilities"].as_array().unwrap();
    let read = &caps[0];
    assert_eq!(read["name"], "app.inspect_ticket", "{config}");
    let visible = names(&read["visible_columns"]);
    // The first optional column of tickets was toggled off; keys stay.
    assert!(visible.contains(&"id".to_owned()) && visible.contains(&"org_id".to_owned()));
    // tickets: id, org_id, customer_id, subject, …: customer_id was toggled off.
    assert!(!visible.contains(&"customer_id".to_owned()), "{visible:?}");
    assert!(visible.contains(&"subject".to_owned()), "{visible:?}");
    assert!(
        !visible.contains(&"resolution_note".to_owned()),
        "{visible:?}"
    );
    let proposal = caps
        .iter()
        .find(|c| c["name"] == "support.propose_ticket_resolution")
        .unwrap_or_else(|| panic!("{config}"));
    // The second version candidate (counter first, then the timestamp).
    assert_eq!(
        proposal["conflict_guard"]["column"], "updated_at",
        "{proposal}"
    );
    // Served: the person said yes, so it is not left disabled.
    assert!(
        config["airlock"].get("disabled_capabilities").is_none(),
        "{config}"
    );
}

/// A database of the reference example for `engine`, with the reader's URL
/// read-only for SQLite (the same file as the writer's).
fn reference(engine: Engine, dir: &Path) -> Database {
    match engine {
        Engine::Postgres => postgres_reference("airlock_newcomer"),
        Engine::Mysql => mysql_reference("airlock_newcomer"),
        Engine::Sqlite => {
            let mut db = sqlite_reference(dir, "newcomer");
            db.read_url = format!("{}?mode=ro", db.read_url);
            db
        }
    }
}

async fn late_fee(url: &str, engine: Engine) -> i64 {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    let table = if engine == Engine::Postgres {
        "public.invoices"
    } else {
        "invoices"
    };
    let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT late_fee_cents FROM {table} WHERE id = 'INV-3001'"
    )))
    .fetch_one(&mut c)
    .await
    .unwrap();
    row.0
}

/// The newcomer's run, timed: a database URL → `airlock start --yes` → a
/// read and a proposal through a real MCP client → approve and apply with
/// the CLI → `start --stop`.
fn newcomer(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let db = reference(engine, dir.path());
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let env = [
        ("NC_READ_URL", db.read_url.as_str()),
        ("NC_WRITE_URL", db.write_url.as_str()),
        ("AIRLOCK_TENANT_ID", "acme"),
        ("AIRLOCK_PRINCIPAL", "newcomer"),
    ];
    let started = Instant::now();
    let out = airlock_in(
        &project,
        &["start", "--from-env", "NC_READ_URL", "--yes", "--json"],
        &env,
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        !all.contains(&db.read_url) && !all.contains(&db.write_url),
        "{all}"
    );
    let report = json_of(&out);
    assert_eq!(report["drafted"], true, "{report}");
    let pid = report["executor_pid"].as_u64().unwrap();
    let socket_dir = project.join(".airlock/run");
    assert_eq!(report["socket_dir"], socket_dir.display().to_string());
    assert!(socket_dir.join("operator.sock").exists());
    let tools = names(&report["tools"]);
    assert!(
        tools.contains(&"billing.propose_late_fee_waiver".to_owned()),
        "{tools:?}"
    );

    // A second start finds the running executor and starts no other.
    let again = airlock_in(
        &project,
        &["start", "--from-env", "NC_READ_URL", "--yes", "--json"],
        &env,
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let again = json_of(&again);
    assert_eq!(again["drafted"], false);
    assert_eq!(again["executor_pid"].as_u64(), Some(pid));

    let config = project.join("airlock.json");
    let proposal_id = block_on(async {
        let client = stdio_client(
            &config,
            &socket_dir,
            &[
                ("NC_READ_URL", db.read_url.as_str()),
                ("AIRLOCK_TENANT_ID", "acme"),
                ("AIRLOCK_PRINCIPAL", "newcomer"),
            ],
            &[],
        )
        .await;
        let (_, read) = call(
            &client,
            "app__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(read["ok"], true, "{read}");
        assert_eq!(read["data"]["late_fee_cents"], 5500, "{read}");
        let (_, proposed) = call(
            &client,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "first order; customer asked nicely"}),
        )
        .await;
        assert_eq!(proposed["ok"], true, "{proposed}");
        client.cancel().await.unwrap();
        proposed["proposal"]["id"].as_str().unwrap().to_owned()
    });
    let first_proposal = started.elapsed();

    let approve = airlock_in(
        &project,
        &[
            "proposals",
            "approve",
            &proposal_id,
            "--yes",
            "--apply",
            "--json",
        ],
        &env,
    );
    assert_eq!(approve.status.code(), Some(0), "{}", text(&approve));
    assert_eq!(block_on(late_fee(&db.admin_url, engine)), 0);
    let applied = started.elapsed();

    let stop = airlock_in(&project, &["start", "--stop", "--json"], &[]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    assert_eq!(json_of(&stop)["stopped"].as_u64(), Some(pid));
    let gone = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
    {
        assert!(Instant::now() < gone, "the executor is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop_again = airlock_in(&project, &["start", "--stop"], &[]);
    assert_eq!(stop_again.status.code(), Some(1), "{}", text(&stop_again));

    eprintln!(
        "newcomer run on {}: first proposal {} ms after `airlock start`, applied {} ms",
        engine.as_str(),
        first_proposal.as_millis(),
        applied.as_millis()
    );
    assert!(first_proposal < Duration::from_secs(300));
}

#[test]
fn newcomer_reaches_an_applied_proposal_on_postgres() {
    newcomer(Engine::Postgres);
}

#[test]
fn newcomer_reaches_an_applied_proposal_on_mariadb() {
    newcomer(Engine::Mysql);
}

#[test]
fn newcomer_reaches_an_applied_proposal_on_sqlite() {
    newcomer(Engine::Sqlite);
}

/// A capability `airlock.disabled_capabilities` names is not served: the
/// executor, which loads the same file, refuses its evidence and its
/// proposals whatever a proposer sends. Without the entry, the same honest
/// messages are accepted (so the refusal is the entry's doing).
#[test]
fn a_disabled_capability_is_refused_by_the_executor() {
    use airlock_ipc::Role;
    use airlock_tests::proposals::{
        WAIVER, honest_proposal, invoice_row, load, read_of, record, reference_value, submit,
        waiver,
    };
    let env: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "acme")];
    let served = reference_value();
    let cfg = load(&served);
    let mut disabled = served.clone();
    disabled["airlock"] =
        json!({"disabled_capabilities": {WAIVER: "drafted by airlock init: review the fee bound"}});
    let loaded = load(&disabled);
    assert!(loaded.capability(WAIVER).is_none());
    assert_eq!(loaded.disabled.len(), 1);

    let exec = ExecutorProcess::start(&disabled, env);
    block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let args = json!({"invoice_id": "INV-3001", "reason": "please"});
        let read = read_of(&cfg, WAIVER, args, &invoice_row("INV-3001", "acme"), "acme");
        let unknown = |r: Result<_, airlock_ipc::client::ClientError>| match r {
            Err(airlock_ipc::client::ClientError::Refused(body)) => {
                format!("{}: {}", body.code.as_str(), body.message)
            }
            other => panic!("expected a refusal, got {other:?}"),
        };
        let expected = format!("unknown capability `{WAIVER}`");
        let refused = unknown(record(&mut client, read).await.map(|_| ()));
        assert!(refused.ends_with(&expected), "{refused}");
        let change = waiver(&cfg, "INV-3001", "acme", "please");
        let refused = unknown(submit(&mut client, change, None).await.map(|_| ()));
        assert_eq!(
            refused,
            "policy_violation: the change set breaks the reviewed policy: capability: no capability of that name in the executor's config"
        );
    });
    let listed = exec.cli(&["proposals", "list", "--json"]);
    assert_eq!(
        json_of(&listed)["proposals"],
        json!([]),
        "{}",
        text(&listed)
    );
    drop(exec);

    let exec = ExecutorProcess::start(&served, env);
    block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let recorded = honest_proposal(&mut client, &cfg, "please").await;
        assert!(recorded.proposal_id.starts_with("wrp_"));
    });
}
