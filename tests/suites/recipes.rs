//! `airlock recipes`: the built-in proposal templates, listed, shown and
//! applied to a config against real tables on PostgreSQL, MariaDB and
//! SQLite. Each applied capability validates, is offered by a real proposer
//! over MCP and can propose; two of them go all the way to an applied
//! change through the real executor. A recipe that does not fit its table
//! is refused with the column named and the config untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlock_policy::catalog::openai_alias;
use airlock_policy::config::Engine;
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, query_strings, reference_config_for,
    sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, stdio_client};
use airlock_tests::{airlock, bin, runtime, stdout_json};
use serde_json::{Value, json};

/// Tables the reference database lacks: an accounts table with a trial end
/// and an integer version, refund columns on orders, and a legacy invoices
/// table whose late fee holds fractions and that has no waiver reason.
fn add_recipe_tables(db: &Database) {
    let sql = match db.engine {
        Engine::Postgres => {
            "CREATE TABLE public.accounts (id text PRIMARY KEY, tenant_id text NOT NULL, plan text NOT NULL, \
               trial_ends_at timestamptz NOT NULL, extension_reason text, row_version integer NOT NULL);
             INSERT INTO public.accounts VALUES ('A-1', 'acme', 'trial', '2026-07-01T00:00:00Z', NULL, 1),
                                                ('A-9', 'otherco', 'trial', '2026-07-01T00:00:00Z', NULL, 1);
             ALTER TABLE public.orders ADD COLUMN total_cents integer NOT NULL DEFAULT 9900,
               ADD COLUMN refund_cents integer NOT NULL DEFAULT 0, ADD COLUMN refund_reason text;
             CREATE TABLE public.legacy_invoices (id text PRIMARY KEY, tenant_id text NOT NULL,
               late_fee_cents numeric(10,2) NOT NULL, note text, updated_at timestamptz NOT NULL);
             GRANT SELECT ON public.accounts, public.legacy_invoices TO synapsor_reader, synapsor_writer;
             GRANT UPDATE (trial_ends_at, extension_reason, row_version) ON public.accounts TO synapsor_writer;
             GRANT UPDATE (refund_cents, refund_reason) ON public.orders TO synapsor_writer;"
                .to_owned()
        }
        Engine::Mysql => {
            let mut s = "CREATE TABLE accounts (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, plan VARCHAR(64) NOT NULL, \
               trial_ends_at DATETIME(6) NOT NULL, extension_reason TEXT, row_version INT NOT NULL);
             INSERT INTO accounts VALUES ('A-1', 'acme', 'trial', '2026-07-01 00:00:00', NULL, 1),
                                         ('A-9', 'otherco', 'trial', '2026-07-01 00:00:00', NULL, 1);
             ALTER TABLE orders ADD COLUMN total_cents INT NOT NULL DEFAULT 9900,
               ADD COLUMN refund_cents INT NOT NULL DEFAULT 0, ADD COLUMN refund_reason TEXT;
             CREATE TABLE legacy_invoices (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL,
               late_fee_cents DECIMAL(10,2) NOT NULL, note TEXT, updated_at TIMESTAMP(6) NOT NULL);"
                .to_owned();
            for host in ["localhost", "127.0.0.1", "%"] {
                s.push_str(&format!(
                    "GRANT UPDATE (trial_ends_at, extension_reason, row_version) ON `{0}`.accounts TO 'airlock_writer'@'{host}';
                     GRANT UPDATE (refund_cents, refund_reason) ON `{0}`.orders TO 'airlock_writer'@'{host}';",
                    db.name
                ));
            }
            s
        }
        Engine::Sqlite => "CREATE TABLE accounts (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, plan TEXT NOT NULL, \
               trial_ends_at TEXT NOT NULL, extension_reason TEXT, row_version INTEGER NOT NULL);
             INSERT INTO accounts VALUES ('A-1', 'acme', 'trial', '2026-07-01 00:00:00', NULL, 1),
                                         ('A-9', 'otherco', 'trial', '2026-07-01 00:00:00', NULL, 1);
             ALTER TABLE orders ADD COLUMN total_cents INTEGER NOT NULL DEFAULT 9900;
             ALTER TABLE orders ADD COLUMN refund_cents INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE orders ADD COLUMN refund_reason TEXT;
             CREATE TABLE legacy_invoices (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
               late_fee_cents REAL NOT NULL, note TEXT, updated_at TEXT NOT NULL);"
            .to_owned(),
    };
    execute(db, &sql);
}

/// The reference config for `db` with its read capabilities only, written
/// to `dir/airlock.json` in the compact one-capability-per-line layout a
/// person might keep.
fn base_config(db: &Database, dir: &Path) -> PathBuf {
    let mut v = reference_config_for(db);
    v["capabilities"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["kind"] == "read");
    let caps: Vec<String> = v["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("    {c}"))
        .collect();
    v["capabilities"] = json!("@CAPS@");
    let text = serde_json::to_string_pretty(&v)
        .unwrap()
        .replace("\"@CAPS@\"", &format!("[\n{}\n  ]", caps.join(",\n")));
    let path = dir.join("airlock.json");
    std::fs::write(&path, text).unwrap();
    path
}

/// `airlock <args>` with the source's read URL (and nothing else of
/// ours) in its environment.
fn airlock_with_read_url(db: &Database, args: &[&str]) -> Output {
    Command::new(bin("airlock"))
        .args(args)
        .env_remove("APP_WRITE_URL")
        .env("APP_READ_URL", &db.read_url)
        .output()
        .expect("spawn airlock")
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn apply_ok(db: &Database, config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["recipes", "apply"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config.to_str().unwrap(), "--json"]);
    let out = airlock_with_read_url(db, &all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = stdout_json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["written"], true, "{v}");
    v
}

fn cast(db: &Database) -> &'static str {
    if db.engine == Engine::Mysql {
        "CHAR"
    } else {
        "TEXT"
    }
}

/// Every recipe applied to a matching table of `db`, validated, offered by
/// a real proposer, proposed through; the late-fee waiver and the trial
/// extension approved and applied by the real executor.
fn every_recipe_end_to_end(db: Database) {
    add_recipe_tables(&db);
    let dir = tempfile::tempdir().unwrap();
    let config = base_config(&db, dir.path());
    let before = std::fs::read_to_string(&config).unwrap();

    let late = apply_ok(
        &db,
        &config,
        &["billing.late_fee_waiver", "--table", "invoices"],
    );
    assert_eq!(late["tenant_key"], "tenant_id");
    assert_eq!(late["capability"]["context"], "local_operator");
    assert_eq!(
        late["capability"]["patch"],
        json!({"late_fee_cents": {"fixed": 0}, "waiver_reason": {"from_arg": "reason"}})
    );
    // The file keeps its own layout: only the new capability's lines differ.
    let after = std::fs::read_to_string(&config).unwrap();
    let cut = before.rfind("\n  ]").unwrap();
    assert!(after.starts_with(&before[..cut]), "{after}");
    assert!(after.ends_with(&before[cut..]), "{after}");

    apply_ok(
        &db,
        &config,
        &["credits.account_credit", "--table", "customers"],
    );
    let refund = apply_ok(&db, &config, &["refund_review", "--table", "orders"]);
    assert_eq!(
        refund["capability"]["visible_columns"],
        json!([
            "id",
            "tenant_id",
            "status",
            "refund_cents",
            "refund_reason",
            "updated_at",
            "total_cents"
        ])
    );
    apply_ok(
        &db,
        &config,
        &[
            "support.ticket_resolution",
            "--table",
            "support_tickets",
            "--map",
            "resolution=resolution_note",
        ],
    );
    let trial = apply_ok(
        &db,
        &config,
        &["accounts.trial_extension", "--table", "accounts"],
    );
    assert_eq!(
        trial["capability"]["conflict_guard"],
        json!({"column": "row_version"})
    );
    // No capability on `accounts` yet: the tenant key and schema come from
    // the source's other capabilities.
    assert_eq!(
        trial["tenant_key_from"],
        "from the config's capabilities on this source"
    );

    let out = airlock(&[
        "config",
        "validate",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ]);
    let v = stdout_json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["capabilities"],
        json!({"read": 4, "proposal": 5, "disabled": 0})
    );

    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let exec = ExecutorProcess::start(
        &cfg,
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    );
    let rt = runtime();
    let ids = rt.block_on(async {
        let client =
            stdio_client(&exec.config_path, &exec.socket_dir, &agent_env(&db.read_url), &[]).await;
        let tools: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        let calls = [
            ("billing.propose_late_fee_waiver", json!({"invoice_id": "INV-3001", "reason": "first late payment in three years"})),
            ("credits.propose_account_credit", json!({"account_id": "cust_acme_1", "credit_cents": 2500, "reason": "outage credit"})),
            ("orders.propose_refund_review", json!({"order_id": "O-1001", "next_status": "refund_requested", "refund_cents": 1200, "reason": "damaged in transit"})),
            ("support.propose_ticket_resolution", json!({"ticket_id": "T-1042", "next_status": "pending_review", "resolution_note": "fee waiver proposed"})),
            ("accounts.propose_trial_extension", json!({"account_id": "A-1", "trial_ends_at": "2030-01-31 00:00:00", "reason": "pilot needs two more weeks"})),
        ];
        let mut ids = Vec::new();
        for (cap, args) in calls {
            let tool = openai_alias(cap);
            assert!(tools.contains(&tool), "{tool} not offered: {tools:?}");
            let (_, env) = call(&client, &tool, args).await;
            assert_eq!(env["ok"], true, "{cap}: {env}");
            ids.push(env["proposal"]["id"].as_str().unwrap().to_owned());
        }
        // The bound holds: a credit above the recipe's maximum is refused.
        let (_, env) = call(
            &client,
            &openai_alias("credits.propose_account_credit"),
            json!({"account_id": "cust_acme_1", "credit_cents": 10001, "reason": "too much"}),
        )
        .await;
        assert_eq!(env["ok"], false, "{env}");
        // And the transition guard: a processing order cannot be refunded.
        let (_, env) = call(
            &client,
            &openai_alias("orders.propose_refund_review"),
            json!({"order_id": "O-1002", "next_status": "refunded", "refund_cents": 1, "reason": "x"}),
        )
        .await;
        assert_eq!(env["ok"], false, "{env}");
        client.cancel().await.unwrap();
        ids
    });
    for id in [&ids[0], &ids[4]] {
        let out = exec.cli(&["proposals", "approve", id, "--yes", "--apply", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let c = cast(&db);
    let invoice = query_strings(
        &db,
        &format!(
            "SELECT CAST(late_fee_cents AS {c}), waiver_reason FROM invoices WHERE id = 'INV-3001'"
        ),
    );
    assert_eq!(
        invoice,
        [[
            Some("0".to_owned()),
            Some("first late payment in three years".to_owned())
        ]]
    );
    let account = query_strings(
        &db,
        &format!(
            "SELECT CAST(trial_ends_at AS {c}), extension_reason, CAST(row_version AS {c}) FROM accounts WHERE id = 'A-1'"
        ),
    );
    assert!(
        account[0][0].as_deref().unwrap().starts_with("2030-01-31"),
        "{account:?}"
    );
    assert_eq!(account[0][1].as_deref(), Some("pilot needs two more weeks"));
    assert_eq!(
        account[0][2].as_deref(),
        Some("2"),
        "the integer version advanced"
    );
    // The other tenant's row is untouched, and nothing else was applied.
    let other = query_strings(
        &db,
        "SELECT extension_reason FROM accounts WHERE id = 'A-9'",
    );
    assert_eq!(other, [[None]]);
    let order = query_strings(
        &db,
        &format!("SELECT status, CAST(refund_cents AS {c}) FROM orders WHERE id = 'O-1001'"),
    );
    assert_eq!(order, [[Some("paid".to_owned()), Some("0".to_owned())]]);
}

#[test]
fn postgres_every_recipe_applies_validates_and_proposes() {
    every_recipe_end_to_end(postgres_reference("airlock_recipes_e2e"));
}

#[test]
fn mariadb_every_recipe_applies_validates_and_proposes() {
    every_recipe_end_to_end(mysql_reference("airlock_recipes_e2e"));
}

#[test]
fn sqlite_every_recipe_applies_validates_and_proposes() {
    let dir = tempfile::tempdir().unwrap();
    every_recipe_end_to_end(sqlite_reference(dir.path(), "recipes_e2e"));
}

/// Run a refused `recipes apply` and check the config file is byte for
/// byte what it was; returns stderr.
fn refused(db: &Database, config: &Path, args: &[&str], code: i32) -> String {
    let before = std::fs::read(config).unwrap();
    let mut all = vec!["recipes", "apply"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config.to_str().unwrap()]);
    let out = airlock_with_read_url(db, &all);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    assert_eq!(std::fs::read(config).unwrap(), before, "the config changed");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains(&db.read_url), "{err}");
    assert!(!err.contains("password"), "{err}");
    err
}

fn misfits_are_refused_and_the_config_is_untouched(db: Database) {
    add_recipe_tables(&db);
    let dir = tempfile::tempdir().unwrap();
    let config = base_config(&db, dir.path());
    let cfg = config.to_str().unwrap();

    // Missing columns: a ticket table has no refund or refund reason.
    let err = refused(
        &db,
        &config,
        &["orders.refund_review", "--table", "support_tickets"],
        1,
    );
    assert!(
        err.contains("recipe orders.refund_review does not fit table"),
        "{err}"
    );
    assert!(err.contains("has no column for field `refund`"), "{err}");
    assert!(
        err.contains("tried refund_cents, refund_amount_cents, refunded_cents"),
        "{err}"
    );
    assert!(err.contains("has no column for field `reason`"), "{err}");
    assert!(err.contains("unchanged"), "{err}");

    // An incompatible type, and a mapped column that does not exist.
    let err = refused(
        &db,
        &config,
        &[
            "billing.late_fee_waiver",
            "--table",
            "legacy_invoices",
            "--map",
            "reason=waiver_note",
        ],
        1,
    );
    assert!(
        err.contains("column `late_fee_cents` has type `")
            && err.contains("cannot be field `late_fee`: it needs an integer column"),
        "{err}"
    );
    assert!(
        err.contains("field `reason` is mapped to column `waiver_note`, but table `legacy_invoices` has no such column"),
        "{err}"
    );

    // A table that is not there.
    let err = refused(
        &db,
        &config,
        &["billing.late_fee_waiver", "--table", "no_such_table"],
        1,
    );
    assert!(err.contains("no_such_table was not found"), "{err}");

    // A capability name the validator refuses: nothing is written, and the
    // validator's own finding is shown.
    let err = refused(
        &db,
        &config,
        &[
            "billing.late_fee_waiver",
            "--table",
            "invoices",
            "--name",
            "billing.approve_fee",
        ],
        1,
    );
    assert!(err.contains("would not validate"), "{err}");
    assert!(err.contains("$.capabilities[4].name"), "{err}");

    // A name that already exists.
    apply_ok(
        &db,
        &config,
        &["billing.late_fee_waiver", "--table", "invoices"],
    );
    let err = refused(&db, &config, &["late_fee_waiver", "--table", "invoices"], 1);
    assert!(
        err.contains("already has a capability named billing.propose_late_fee_waiver; choose another name with --name"),
        "{err}"
    );

    // Without the read URL the columns cannot be checked: refused, by name.
    let before = std::fs::read(&config).unwrap();
    let out = Command::new(bin("airlock"))
        .args([
            "recipes",
            "apply",
            "ticket_resolution",
            "--table",
            "support_tickets",
            "--config",
            cfg,
            "--json",
        ])
        .env_remove("APP_READ_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["code"], "read_url_missing", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("APP_READ_URL is not set")
    );
    assert_eq!(std::fs::read(&config).unwrap(), before);

    // --json refusals carry every problem.
    let out = airlock_with_read_url(
        &db,
        &[
            "recipes",
            "apply",
            "refund_review",
            "--table",
            "support_tickets",
            "--config",
            cfg,
            "--json",
        ],
    );
    let v = stdout_json(&out);
    assert_eq!(v["error"]["code"], "recipe_mismatch", "{v}");
    assert_eq!(v["error"]["problems"].as_array().unwrap().len(), 2, "{v}");

    // A dry run checks everything and writes nothing.
    let before = std::fs::read(&config).unwrap();
    let out = airlock_with_read_url(
        &db,
        &[
            "recipes",
            "apply",
            "ticket_resolution",
            "--table",
            "support_tickets",
            "--config",
            cfg,
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("Dry run:"), "{shown}");
    assert!(
        shown.contains("support.propose_ticket_resolution"),
        "{shown}"
    );
    assert_eq!(std::fs::read(&config).unwrap(), before);
}

#[test]
fn postgres_misfits_are_refused_and_the_config_is_untouched() {
    misfits_are_refused_and_the_config_is_untouched(postgres_reference("airlock_recipes_misfit"));
}

#[test]
fn mariadb_misfits_are_refused_and_the_config_is_untouched() {
    misfits_are_refused_and_the_config_is_untouched(mysql_reference("airlock_recipes_misfit"));
}

#[test]
fn sqlite_misfits_are_refused_and_the_config_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    misfits_are_refused_and_the_config_is_untouched(sqlite_reference(dir.path(), "recipes_misfit"));
}

#[test]
fn list_and_show_describe_every_recipe() {
    let names = [
        "billing.late_fee_waiver",
        "credits.account_credit",
        "orders.refund_review",
        "support.ticket_resolution",
        "accounts.trial_extension",
    ];
    let out = airlock(&["recipes", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&out.stdout);
    for n in names {
        assert!(shown.contains(n), "{shown}");
    }
    assert!(shown.contains("Late-fee waiver") && shown.contains("Account credit (bounded)"));

    let v = stdout_json(&airlock(&["recipes", "list", "--json"]));
    let listed: Vec<&str> = v["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, names);
    assert_eq!(
        v["recipes"][2]["capability"],
        "orders.propose_refund_review"
    );
    assert_eq!(v["recipes"][2]["approval_role"], "ops_lead");

    let out = airlock(&["recipes", "show", "billing.late_fee_waiver"]);
    assert_eq!(out.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&out.stdout);
    for line in [
        "billing.late_fee_waiver — Late-fee waiver",
        "late_fee_cents, late_fee, late_fee_amount_cents",
        "set to 0",
        "Bound:       late_fee stays between 0 and 10000",
        "\"required_role\": \"billing_lead\"",
    ] {
        assert!(shown.contains(line), "{line}\n{shown}");
    }
    let v = stdout_json(&airlock(&["recipes", "show", "trial_extension", "--json"]));
    assert_eq!(v["recipe"]["name"], "accounts.trial_extension");
    assert_eq!(v["example"]["name"], "accounts.propose_trial_extension");
    assert_eq!(
        v["example"]["patch"]["trial_ends_at"],
        json!({"from_arg": "trial_ends_at"})
    );

    let out = airlock(&["recipes", "show", "bogus", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["code"], "unknown_recipe");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("billing.late_fee_waiver")
    );
}
