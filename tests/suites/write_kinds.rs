//! The write vocabulary beyond a single-row UPDATE of fixed or argument
//! values, end to end through the real processes on PostgreSQL, MariaDB and
//! SQLite: a guarded INSERT whose identity a source unique constraint
//! enforces, a guarded hard DELETE by key, tenant and exact version (and
//! refused when a trigger or cascade would widen it), and an UPDATE that adds
//! a bounded step to a balance, stamps the apply time and advances an
//! integer version. Each is proposed over MCP by the real proposer, approved
//! and applied with the real `airlock` CLI, and checked in the database.

use std::process::Output;

use airlock_policy::config::Engine;
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, query_strings, reference_config_for,
    sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, propose_over_mcp, stdio_client};
use airlock_tests::runtime as rt;
use serde_json::{Value, json};

/// The extra tables, rows and grants on `db` (as its administrator).
fn add_tables(db: &Database) {
    let stmts: Vec<String> = match db.engine {
        Engine::Postgres => vec![
            "CREATE TABLE public.credit_notes (id bigserial PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, amount_cents integer NOT NULL, request_id text NOT NULL, created_at timestamptz, UNIQUE (tenant_id, request_id))".into(),
            "CREATE TABLE public.plain_notes (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL, request_id text NOT NULL)".into(),
            "CREATE TABLE public.invoice_drafts (id text PRIMARY KEY, tenant_id text NOT NULL, status text NOT NULL, version integer NOT NULL)".into(),
            "CREATE TABLE public.wallets (id text PRIMARY KEY, tenant_id text NOT NULL, balance_cents integer NOT NULL, last_topup_at timestamptz, version integer NOT NULL)".into(),
            "GRANT SELECT ON public.credit_notes, public.plain_notes, public.invoice_drafts, public.wallets TO synapsor_reader".into(),
            "GRANT SELECT, INSERT ON public.credit_notes, public.plain_notes TO synapsor_writer".into(),
            "GRANT USAGE ON SEQUENCE public.credit_notes_id_seq, public.plain_notes_id_seq TO synapsor_writer".into(),
            "GRANT SELECT, DELETE ON public.invoice_drafts TO synapsor_writer".into(),
            "GRANT SELECT, UPDATE ON public.wallets TO synapsor_writer".into(),
        ],
        Engine::Mysql => {
            let mut v: Vec<String> = vec![
                "CREATE TABLE credit_notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, customer_id VARCHAR(64) NOT NULL, amount_cents INT NOT NULL, request_id VARCHAR(128) NOT NULL, created_at DATETIME(6) NULL, UNIQUE KEY uq_request (tenant_id, request_id)) ENGINE=InnoDB".into(),
                "CREATE TABLE plain_notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, body TEXT NOT NULL, request_id VARCHAR(128) NOT NULL) ENGINE=InnoDB".into(),
                "CREATE TABLE invoice_drafts (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, status VARCHAR(32) NOT NULL, version INT NOT NULL) ENGINE=InnoDB".into(),
                "CREATE TABLE wallets (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, balance_cents INT NOT NULL, last_topup_at DATETIME(6) NULL, version INT NOT NULL) ENGINE=InnoDB".into(),
            ];
            for host in ["localhost", "127.0.0.1", "%"] {
                let w = format!("'airlock_writer'@'{host}'");
                let n = &db.name;
                v.push(format!("GRANT INSERT ON `{n}`.credit_notes TO {w}"));
                v.push(format!("GRANT INSERT ON `{n}`.plain_notes TO {w}"));
                // TRIGGER: the writer must see the table's triggers to prove a
                // delete reaches one row; PROCESS: InnoDB's foreign-key catalog.
                v.push(format!(
                    "GRANT DELETE, TRIGGER ON `{n}`.invoice_drafts TO {w}"
                ));
                v.push(format!("GRANT PROCESS ON *.* TO {w}"));
                v.push(format!("GRANT UPDATE ON `{n}`.wallets TO {w}"));
            }
            v
        }
        Engine::Sqlite => vec![
            "CREATE TABLE credit_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, customer_id TEXT NOT NULL, amount_cents INTEGER NOT NULL, request_id TEXT NOT NULL, created_at TEXT, UNIQUE (tenant_id, request_id))".into(),
            "CREATE TABLE plain_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, body TEXT NOT NULL, request_id TEXT NOT NULL)".into(),
            "CREATE TABLE invoice_drafts (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL)".into(),
            "CREATE TABLE wallets (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, balance_cents INTEGER NOT NULL, last_topup_at TEXT, version INTEGER NOT NULL)".into(),
        ],
    };
    let rows = [
        "INSERT INTO invoice_drafts (id, tenant_id, status, version) VALUES ('D-1', 'acme', 'expired', 1), ('D-2', 'acme', 'expired', 1), ('D-3', 'acme', 'expired', 1), ('D-9', 'globex', 'expired', 1)",
        "INSERT INTO wallets (id, tenant_id, balance_cents, last_topup_at, version) VALUES ('W-1', 'acme', 1000, NULL, 1), ('W-9', 'globex', 50, NULL, 1)",
    ];
    for sql in stmts.iter().map(String::as_str).chain(rows) {
        execute(db, sql);
    }
}

/// A DELETE trigger on `invoice_drafts` (it changes nothing else; what
/// matters is that the executor cannot prove that).
fn add_delete_trigger(db: &Database) {
    let stmts: &[&str] = match db.engine {
        Engine::Postgres => &[
            "CREATE FUNCTION public.keep_draft_audit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN OLD; END$$",
            "CREATE TRIGGER audit_draft_delete BEFORE DELETE ON public.invoice_drafts FOR EACH ROW EXECUTE FUNCTION public.keep_draft_audit()",
        ],
        Engine::Mysql => &[
            "CREATE TRIGGER audit_draft_delete BEFORE DELETE ON invoice_drafts FOR EACH ROW SET @airlock_audit = OLD.id",
        ],
        Engine::Sqlite => &[
            "CREATE TRIGGER audit_draft_delete BEFORE DELETE ON invoice_drafts BEGIN SELECT 1; END",
        ],
    };
    for sql in stmts {
        execute(db, sql);
    }
}

fn schema_of(db: &Database) -> String {
    match db.engine {
        Engine::Postgres => "public".to_owned(),
        Engine::Mysql => db.name.clone(),
        Engine::Sqlite => "main".to_owned(),
    }
}

/// The reference config plus the four capabilities of this suite.
fn config(db: &Database) -> Value {
    let mut v = reference_config_for(db);
    let s = schema_of(db);
    let target = |table: &str| json!({"schema": s, "table": table, "primary_key": "id", "tenant_key": "tenant_id"});
    let caps = v["capabilities"].as_array_mut().unwrap();
    caps.push(json!({
        "name": "billing.propose_credit_note",
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": target("credit_notes"),
        "args": {
            "customer_id": {"type": "string", "required": true, "max_length": 64},
            "amount_cents": {"type": "integer", "required": true, "minimum": 1, "maximum": 5000}
        },
        "visible_columns": ["id", "customer_id", "amount_cents"],
        "patch": {
            "customer_id": {"from_arg": "customer_id"},
            "amount_cents": {"from_arg": "amount_cents"},
            "created_at": {"apply_time": true}
        },
        "allowed_columns": ["customer_id", "amount_cents", "created_at"],
        "operation": {"kind": "insert", "deduplication": {"components": [
            {"column": "tenant_id", "source": "trusted_tenant"},
            {"column": "request_id", "source": "proposal_id"}
        ]}},
        "approval": {"mode": "human"}
    }));
    caps.push(json!({
        "name": "billing.propose_plain_note",
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": target("plain_notes"),
        "args": {"body": {"type": "string", "required": true, "max_length": 200}},
        "visible_columns": ["id", "body"],
        "patch": {"body": {"from_arg": "body"}},
        "allowed_columns": ["body"],
        "operation": {"kind": "insert", "deduplication": {"components": [
            {"column": "request_id", "source": "proposal_id"}
        ]}}
    }));
    caps.push(json!({
        "name": "billing.propose_draft_removal",
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": target("invoice_drafts"),
        "args": {"draft_id": {"type": "string", "required": true, "max_length": 64}},
        "lookup": {"id_from_arg": "draft_id"},
        "visible_columns": ["id", "status", "version"],
        "conflict_guard": {"column": "version"},
        "operation": {"kind": "delete"}
    }));
    caps.push(json!({
        "name": "billing.propose_wallet_topup",
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": target("wallets"),
        "args": {
            "wallet_id": {"type": "string", "required": true, "max_length": 64},
            "amount_cents": {"type": "integer", "required": true, "minimum": 1, "maximum": 500}
        },
        "lookup": {"id_from_arg": "wallet_id"},
        "visible_columns": ["id", "balance_cents", "last_topup_at", "version"],
        "patch": {
            "balance_cents": {"increment_from_arg": "amount_cents"},
            "last_topup_at": {"apply_time": true}
        },
        "allowed_columns": ["balance_cents", "last_topup_at"],
        "numeric_bounds": {"balance_cents": {"minimum": 0, "maximum": 1500}},
        "conflict_guard": {"column": "version"},
        "operation": {"kind": "update", "version_advance": {"column": "version", "strategy": "integer_increment"}}
    }));
    v
}

struct World {
    exec: ExecutorProcess,
    db: Database,
    env: Vec<(&'static str, String)>,
}

impl World {
    fn start(db: Database) -> World {
        add_tables(&db);
        let env = vec![
            ("APP_TENANT_ID", "acme".to_owned()),
            ("APP_WRITE_URL", db.write_url.clone()),
        ];
        let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let exec = ExecutorProcess::start(&config(&db), &e);
        World { exec, db, env }
    }

    fn restart(&mut self) {
        self.exec.stop();
        let e: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.exec.restart(&e);
    }

    fn propose(&self, capability: &str, args: Value) -> String {
        rt().block_on(propose_over_mcp(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &self.db.read_url,
            capability,
            args,
        ))
    }

    /// The tool's whole answer, for refusals.
    fn call(&self, capability: &str, args: Value) -> Value {
        rt().block_on(async {
            let client = stdio_client(
                &self.exec.config_path,
                &self.exec.socket_dir,
                &agent_env(&self.db.read_url),
                &[],
            )
            .await;
            let tool = airlock_policy::catalog::openai_alias(capability);
            let (_, envelope) = call(&client, &tool, args).await;
            client.cancel().await.unwrap();
            envelope
        })
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

    fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        query_strings(&self.db, sql)
    }

    fn text(&self) -> &'static str {
        if self.db.engine == Engine::Mysql {
            "CHAR"
        } else {
            "TEXT"
        }
    }
}

fn cell(rows: &[Vec<Option<String>>], r: usize, c: usize) -> Option<&str> {
    rows.get(r)
        .and_then(|row| row.get(c))
        .and_then(|v| v.as_deref())
}

fn write_kinds(db: Database) {
    let mut w = World::start(db);
    let t = w.text();

    // INSERT: one new row, identified by tenant and proposal id.
    let id = w.propose(
        "billing.propose_credit_note",
        json!({"customer_id": "CUS-1001", "amount_cents": 1200}),
    );
    assert!(
        w.rows("SELECT request_id FROM credit_notes").is_empty(),
        "proposing inserts nothing"
    );
    let shown = w.cli(&["proposals", "show", &id, "--json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        shown["proposal"]["change_set"]["operation"], "insert",
        "{shown}"
    );
    assert_eq!(
        shown["proposal"]["change_set"]["after"]["tenant_id"], "acme",
        "{shown}"
    );
    w.approve(&id);
    let (code, out) = w.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    let notes = w.rows(&format!(
        "SELECT tenant_id, customer_id, CAST(amount_cents AS {t}), request_id, CAST(created_at AS {t}) FROM credit_notes"
    ));
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(cell(&notes, 0, 0), Some("acme"));
    assert_eq!(cell(&notes, 0, 1), Some("CUS-1001"));
    assert_eq!(cell(&notes, 0, 2), Some("1200"));
    assert_eq!(
        cell(&notes, 0, 3),
        Some(id.as_str()),
        "the identity is the proposal id"
    );
    assert!(
        cell(&notes, 0, 4).is_some(),
        "created_at holds the apply time"
    );
    let (code, again) = w.apply(&id);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again["writeback"]["status"], "already_applied", "{again}");
    assert_eq!(
        w.rows("SELECT request_id FROM credit_notes").len(),
        1,
        "exactly one row"
    );
    // The same request again is another proposal, so another row.
    let id2 = w.propose(
        "billing.propose_credit_note",
        json!({"customer_id": "CUS-1001", "amount_cents": 1200}),
    );
    w.approve(&id2);
    assert_eq!(w.apply(&id2).1["writeback"]["status"], "applied");
    assert_eq!(w.rows("SELECT request_id FROM credit_notes").len(), 2);

    // An insert whose identity no unique constraint enforces is not served.
    let refused = w.call("billing.propose_plain_note", json!({"body": "hello"}));
    assert_eq!(refused["ok"], false, "{refused}");
    let msg = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("UNIQUE"), "{refused}");
    assert!(w.rows("SELECT body FROM plain_notes").is_empty());

    // UPDATE by a bounded step, stamping the apply time, integer version.
    let id = w.propose(
        "billing.propose_wallet_topup",
        json!({"wallet_id": "W-1", "amount_cents": 300}),
    );
    w.approve(&id);
    let (code, out) = w.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["receipt"]["new_version"], 2, "{out}");
    let wallet = w.rows(&format!(
        "SELECT CAST(balance_cents AS {t}), CAST(version AS {t}), CAST(last_topup_at AS {t}) FROM wallets WHERE id = 'W-1'"
    ));
    assert_eq!(cell(&wallet, 0, 0), Some("1300"));
    assert_eq!(cell(&wallet, 0, 1), Some("2"));
    assert!(cell(&wallet, 0, 2).is_some());
    // The result is bounded too: 1300 + 300 > 1500.
    let over = w.call(
        "billing.propose_wallet_topup",
        json!({"wallet_id": "W-1", "amount_cents": 300}),
    );
    assert_eq!(over["ok"], false, "{over}");
    assert_eq!(over["error"]["airlock_code"], "policy_refused", "{over}");
    // Another tenant's wallet is not found.
    let theirs = w.call(
        "billing.propose_wallet_topup",
        json!({"wallet_id": "W-9", "amount_cents": 10}),
    );
    assert_eq!(theirs["error"]["airlock_code"], "not_found", "{theirs}");

    // DELETE by key, tenant and exact version.
    let id = w.propose("billing.propose_draft_removal", json!({"draft_id": "D-1"}));
    assert_eq!(
        w.rows("SELECT id FROM invoice_drafts WHERE id = 'D-1'")
            .len(),
        1
    );
    w.approve(&id);
    let (code, out) = w.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert!(
        w.rows("SELECT id FROM invoice_drafts WHERE id = 'D-1'")
            .is_empty()
    );
    assert_eq!(w.apply(&id).1["writeback"]["status"], "already_applied");
    assert_eq!(
        w.rows("SELECT id FROM invoice_drafts").len(),
        3,
        "only D-1 went"
    );
    // A stale version is a conflict and nothing is removed.
    let id = w.propose("billing.propose_draft_removal", json!({"draft_id": "D-2"}));
    execute(
        &w.db,
        "UPDATE invoice_drafts SET version = 2 WHERE id = 'D-2'",
    );
    w.approve(&id);
    let (code, out) = w.apply(&id);
    assert_eq!(out["writeback"]["status"], "conflict", "{code:?} {out}");
    assert_eq!(
        w.rows("SELECT id FROM invoice_drafts WHERE id = 'D-2'")
            .len(),
        1
    );
    // Another tenant's draft looks missing.
    let theirs = w.call("billing.propose_draft_removal", json!({"draft_id": "D-9"}));
    assert_eq!(theirs["error"]["airlock_code"], "not_found", "{theirs}");

    // A DELETE trigger added after approval: refused at apply, row kept.
    let id = w.propose("billing.propose_draft_removal", json!({"draft_id": "D-3"}));
    w.approve(&id);
    add_delete_trigger(&w.db);
    let (_, out) = w.apply(&id);
    assert_eq!(out["writeback"]["status"], "failed", "{out}");
    assert_eq!(
        out["writeback"]["receipt"]["safe_error_code"], "DELETE_EFFECTS_UNACKNOWLEDGED",
        "{out}"
    );
    assert_eq!(
        w.rows("SELECT id FROM invoice_drafts WHERE id = 'D-3'")
            .len(),
        1
    );
    // And after a restart the capability is not served at all.
    w.restart();
    let refused = w.call("billing.propose_draft_removal", json!({"draft_id": "D-2"}));
    assert_eq!(refused["ok"], false, "{refused}");
    let msg = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("audit_draft_delete"), "{refused}");

    let out = airlock_tests::airlock(&[
        "ledger",
        "verify",
        "--store",
        w.exec.store.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn postgres_insert_delete_and_step_updates() {
    write_kinds(postgres_reference("airlock_write_kinds"));
}

#[test]
fn mariadb_insert_delete_and_step_updates() {
    write_kinds(mysql_reference("airlock_write_kinds"));
}

#[test]
fn sqlite_insert_delete_and_step_updates() {
    let dir = tempfile::tempdir().unwrap();
    write_kinds(sqlite_reference(dir.path(), "write_kinds"));
}
