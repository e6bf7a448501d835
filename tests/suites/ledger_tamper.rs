//! Issue 12, items 2 and 3, through the real processes: the real executor,
//! the real proposer over MCP, the real `airlock` CLI, a real SQLite source.
//!
//! * Someone with the ledger file adds, copies or edits record rows (with
//!   the append-only triggers dropped and recreated, as an attacker who
//!   owns the file would): `airlock ledger verify` fails on every one, and
//!   approve / apply refuse a proposal whose record does not verify
//!   (`ledger_tampered`) and write nothing.
//! * Someone edits the config between a proposal and its approval or apply
//!   (retargets the capability at another table): approve and apply refuse
//!   (`config_changed`) and nothing is written in either table.

use std::path::{Path, PathBuf};
use std::process::Output;

use airlock_policy::config::Engine;
use airlock_tests::databases::{
    Database, execute, ledger_rows, query_strings, reference_config_for, sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::propose_over_mcp;
use airlock_tests::{airlock, block_on};
use serde_json::{Value, json};

const WAIVER: &str = "billing.propose_late_fee_waiver";

/// A real executor on a real SQLite source, with its ledger in `exec.store`.
struct Stack {
    exec: ExecutorProcess,
    db: Database,
    env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn start(config: impl FnOnce(&Database) -> Value) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("airlock-tamper-src-")
            .tempdir()
            .unwrap();
        let db = sqlite_reference(dir.path(), "billing");
        let env = vec![
            ("APP_TENANT_ID", "acme".to_owned()),
            ("APP_WRITE_URL", db.write_url.clone()),
        ];
        let cfg = config(&db);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let exec = ExecutorProcess::start(&cfg, &pairs);
        Stack {
            exec,
            db,
            env,
            _dir: dir,
        }
    }

    fn restart(&mut self) {
        let pairs: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.exec.restart(&pairs);
    }

    /// Propose a late-fee waiver over MCP (the proposer gets only the read URL).
    fn propose(&self, invoice: &str, reason: &str) -> String {
        block_on(propose_over_mcp(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &self.db.read_url,
            WAIVER,
            json!({"invoice_id": invoice, "reason": reason}),
        ))
    }

    /// The CLI with `--json`: (exit code, stdout as JSON).
    fn cli(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.exec.cli(&args);
        (out.status.code(), json_of(&out))
    }

    fn approve(&self, id: &str) -> (Option<i32>, Value) {
        self.cli(&["proposals", "approve", id, "--yes"])
    }

    fn show(&self, id: &str) -> Value {
        let (code, out) = self.cli(&["proposals", "show", id]);
        assert_eq!(code, Some(0), "{out}");
        out["proposal"].clone()
    }

    /// (late_fee_cents, waiver_reason, updated_at) of a row of `table`.
    fn row(&self, table: &str, id: &str) -> Vec<Option<String>> {
        query_strings(
            &self.db,
            &format!(
                "SELECT CAST(late_fee_cents AS TEXT), waiver_reason, updated_at FROM {table} WHERE id = '{id}'"
            ),
        )
        .pop()
        .unwrap_or_default()
    }

    /// Receipts in the source database (none if the table was never created).
    fn source_receipts(&self) -> usize {
        let exists = query_strings(
            &self.db,
            "SELECT name FROM sqlite_master WHERE name = 'synapsor_writeback_receipts'",
        );
        if exists.is_empty() {
            return 0;
        }
        query_strings(&self.db, "SELECT status FROM synapsor_writeback_receipts").len()
    }

    fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.exec.config_path).unwrap()).unwrap()
    }

    fn write_config(&self, v: &Value) {
        std::fs::write(
            &self.exec.config_path,
            serde_json::to_vec_pretty(v).unwrap(),
        )
        .unwrap();
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `airlock ledger verify --store <path> --json`: (exit code, report).
fn verify(store: &Path) -> (Option<i32>, Value) {
    let out = airlock(&[
        "ledger",
        "verify",
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]);
    (out.status.code(), json_of(&out))
}

fn assert_verifies(store: &Path, what: &str) {
    let (code, report) = verify(store);
    assert_eq!(code, Some(0), "{what}: {report}");
    assert_eq!(report["ok"], true, "{what}: {report}");
}

fn assert_broken(store: &Path, what: &str) -> String {
    let (code, report) = verify(store);
    assert_eq!(
        code,
        Some(1),
        "{what} went unnoticed by `ledger verify`: {report}"
    );
    assert_eq!(report["ok"], false, "{what}: {report}");
    report["first_break"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The append-only triggers as the ledger holds them: (name, SQL).
fn triggers(store: &Path) -> Vec<(String, String)> {
    ledger_rows(
        store,
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
    )
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect()
}

/// Change the ledger as someone who owns the file would: foreign keys off,
/// every append-only trigger dropped, `sql`, every trigger recreated with
/// its exact original SQL.
fn tamper(store: &Path, sql: &str) {
    let mut script = String::from("PRAGMA foreign_keys = OFF;\n");
    let trig = triggers(store);
    for (name, _) in &trig {
        script.push_str(&format!("DROP TRIGGER {name};\n"));
    }
    script.push_str(sql);
    script.push('\n');
    for (_, t) in &trig {
        script.push_str(&format!("{t};\n"));
    }
    let file = Database {
        engine: Engine::Sqlite,
        name: "ledger".into(),
        read_url: String::new(),
        write_url: String::new(),
        admin_url: format!("sqlite://{}", store.display()),
    };
    execute(&file, &script);
}

/// A value of the same kind that differs from the column's current one and
/// passes the table's CHECK constraints: numbers move, JSON gains a member,
/// text gains a character, NULL becomes text.
fn changed(column: &str, ty: &str) -> String {
    match (column, ty) {
        ("decision", _) => {
            "CASE decision WHEN 'approved' THEN 'rejected' ELSE 'approved' END".into()
        }
        ("status", _) => "CASE status WHEN 'applied' THEN 'conflict' ELSE 'applied' END".into(),
        ("outcome", _) => {
            "CASE outcome WHEN 'released' THEN 'suppressed' ELSE 'released' END".into()
        }
        (_, "INTEGER") => format!("{column} + 1000000"),
        _ => format!(
            "CASE WHEN {column} IS NULL THEN 'forged' \
             WHEN json_valid({column}) AND substr({column}, 1, 1) = '{{' THEN json_set({column}, '$.forged', 1) \
             WHEN json_valid({column}) AND substr({column}, 1, 1) = '[' THEN json_insert({column}, '$[#]', 1) \
             ELSE {column} || 'x' END"
        ),
    }
}

const RECORD_TABLES: &[(&str, &str)] = &[
    ("evidence", "evidence_id"),
    ("proposals", "proposal_id"),
    ("decisions", "proposal_id"),
    ("jobs", "job_id"),
    ("receipts", "job_id"),
    ("explore_queries", "query_id"),
];

/// The reference config with a Scoped Explore boundary over its invoices.
fn with_explore(db: &Database) -> Value {
    let mut v = reference_config_for(db);
    v["airlock"] = json!({"explore": {
        "source": "app",
        "resources": {"invoices": {
            "schema": "main", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id",
            "fields": {"status": {"type": "text", "uses": ["dimension", "filter"]}}
        }}
    }});
    v
}

/// One Scoped Explore query, reserved and committed over the proposer
/// socket: an `explore_query` record.
fn explore_query(s: &Stack) {
    use airlock_ipc::Role;
    use airlock_ipc::message::{ExploreCommit, ExploreReserve, Request, Response};
    use airlock_policy::config::ContextProvider;
    use airlock_policy::context::TrustedContext;
    block_on(async {
        let mut c = s.exec.client(Role::Proposer).await;
        let reserved = c
            .call(Request::ExploreReserve(ExploreReserve {
                context: TrustedContext {
                    tenant_id: "acme".into(),
                    principal: "support_agent_17".into(),
                    source: ContextProvider::Environment,
                },
                plan: json!({"kind": "aggregate", "resource": "invoices", "measures": [{"function": "count"}], "dimensions": ["status"]}),
                identity_token: None,
            }))
            .await
            .unwrap();
        let Response::ExploreReserved(r) = reserved else {
            panic!("{reserved:?}")
        };
        let committed = c
            .call(Request::ExploreCommit(ExploreCommit {
                reservation_id: r.reservation_id,
                cells: 4,
                suppressed_groups: 1,
                complete: false,
            }))
            .await
            .unwrap();
        assert!(
            matches!(committed, Response::ExploreCommitted(_)),
            "{committed:?}"
        );
    });
}

/// A ledger with every kind of record row: one proposal applied (evidence,
/// proposal, decision, job, receipt), one rejected, one pending, one
/// Scoped Explore query. Returns the stopped stack and the ids (applied,
/// rejected, pending).
fn full_ledger() -> (Stack, [String; 3]) {
    let mut s = Stack::start(with_explore);
    let applied = s.propose("INV-3001", "customer requested review");
    let (code, out) = s.approve(&applied);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = s.cli(&["apply", &applied]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    let rejected = s.propose("INV-3001", "second thoughts");
    let (code, out) = s.cli(&["proposals", "reject", &rejected, "--reason", "no"]);
    assert_eq!(code, Some(0), "{out}");
    let pending = s.propose("INV-3001", "still waiting");
    explore_query(&s);
    s.exec.stop();
    (s, [applied, rejected, pending])
}

#[test]
fn verify_fails_on_every_edited_column_every_copied_row_and_a_missing_trigger() {
    let (s, _) = full_ledger();
    let work = s.exec.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let copy = work.join("ledger.db");
    let pristine = s.exec.store.clone();
    assert_verifies(&pristine, "the ledger as the executor left it");
    let fresh = || -> PathBuf {
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
        }
        std::fs::copy(&pristine, &copy).unwrap();
        copy.clone()
    };

    // The harness itself (triggers dropped and recreated, nothing else) keeps
    // a ledger that verifies: every failure below is the edit's.
    tamper(&fresh(), "SELECT 1;");
    assert_verifies(&copy, "triggers dropped and recreated, nothing else");

    let mut edits = 0;
    for (table, key) in RECORD_TABLES {
        let columns: Vec<(String, String)> = ledger_rows(
            &pristine,
            &format!("SELECT name, type FROM pragma_table_info('{table}')"),
        )
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
        assert!(columns.len() >= 8, "{table}: {columns:?}");
        for (column, ty) in &columns {
            tamper(
                &fresh(),
                &format!(
                    "UPDATE {table} SET {column} = {} WHERE seq = (SELECT MIN(seq) FROM {table});",
                    changed(column, ty)
                ),
            );
            assert_broken(&copy, &format!("editing {table}.{column}"));
            edits += 1;
        }
        // A copied row with a new key, pointing at an event that does not
        // exist, and at an existing event of another kind.
        let bump = if *table == "jobs" {
            "UPDATE c SET attempt = attempt + 1;"
        } else {
            ""
        };
        for seq in [
            "(SELECT MAX(seq) + 1 FROM events)".to_owned(),
            format!("(SELECT MIN(seq) FROM events WHERE seq NOT IN (SELECT seq FROM {table}))"),
        ] {
            tamper(
                &fresh(),
                &format!(
                    "CREATE TEMP TABLE c AS SELECT * FROM {table} WHERE seq = (SELECT MIN(seq) FROM {table});\n\
                     UPDATE c SET {key} = {key} || '_copy', seq = {seq};\n{bump}\n\
                     INSERT INTO {table} SELECT * FROM c;"
                ),
            );
            let n: usize = ledger_rows(
                &copy,
                &format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}"),
            )[0][0]
                .as_deref()
                .unwrap()
                .parse()
                .unwrap();
            let before: usize = ledger_rows(
                &pristine,
                &format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}"),
            )[0][0]
                .as_deref()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(n, before + 1, "the copy of a {table} row was inserted");
            assert_broken(&copy, &format!("a copied {table} row (seq {seq})"));
        }
    }
    assert_eq!(
        edits,
        11 + 17 + 8 + 9 + 8 + 22,
        "every column of every record table"
    );

    // An append-only trigger dropped (and not recreated), or recreated
    // with other SQL: the ledger is no longer append-only.
    let file = Database {
        engine: Engine::Sqlite,
        name: "ledger".into(),
        read_url: String::new(),
        write_url: String::new(),
        admin_url: format!("sqlite://{}", fresh().display()),
    };
    execute(&file, "DROP TRIGGER decisions_append_only_u;");
    let why = assert_broken(&copy, "a dropped trigger");
    assert!(why.contains("decisions_append_only_u"), "{why}");
    execute(
        &file,
        "CREATE TRIGGER decisions_append_only_u BEFORE UPDATE ON decisions WHEN 0 BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;",
    );
    let why = assert_broken(&copy, "a trigger that never fires");
    assert!(why.contains("decisions_append_only_u"), "{why}");
}

#[test]
fn apply_refuses_a_forged_approval_and_writes_nothing() {
    let s = Stack::start(reference_config_for);
    let before = s.row("invoices", "INV-3001");
    assert_eq!(before[0].as_deref(), Some("5500"));
    let id = s.propose("INV-3001", "customer requested review");
    assert_eq!(s.show(&id)["summary"]["state"], "pending_approval");

    // The attack: a plain INSERT of a decision row pointing at an unrelated
    // event (the proposal's evidence read). No trigger stops an INSERT.
    let evidence_seq = ledger_rows(
        &s.exec.store,
        "SELECT CAST(MIN(seq) AS TEXT) FROM events WHERE kind = 'read_recorded'",
    )[0][0]
        .clone()
        .unwrap();
    let forged = format!(
        "INSERT INTO decisions (proposal_id, seq, decision, uid, user, at, at_ms, note) \
         VALUES ('{id}', {evidence_seq}, 'approved', 0, 'root', '2026-01-01T00:00:00.000Z', 1767225600000, 'lgtm');"
    );
    let file = Database {
        engine: Engine::Sqlite,
        name: "ledger".into(),
        read_url: String::new(),
        write_url: String::new(),
        admin_url: format!("sqlite://{}", s.exec.store.display()),
    };
    execute(&file, &forged);
    // The attack is real: the executor's own state machine now calls the
    // never-approved proposal approved, by root.
    let shown = s.show(&id);
    assert_eq!(shown["summary"]["state"], "approved", "{shown}");
    assert_eq!(shown["decisions"][0]["by"]["uid"], 0, "{shown}");

    let (code, out) = s.cli(&["apply", &id]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "ledger_tampered", "{out}");
    let msg = out["error"]["message"].as_str().unwrap();
    assert!(msg.contains("airlock ledger verify"), "{msg}");
    assert!(msg.contains(&id), "{msg}");
    assert_eq!(s.row("invoices", "INV-3001"), before, "nothing was written");
    assert_eq!(s.source_receipts(), 0, "no receipt in the source");
    assert_eq!(
        ledger_rows(&s.exec.store, "SELECT CAST(COUNT(*) AS TEXT) FROM jobs")[0][0].as_deref(),
        Some("0"),
        "no job was started"
    );
    let why = assert_broken(&s.exec.store, "the forged approval");
    assert!(why.contains("decision"), "{why}");
    // Without a text flag the CLI says the same to a person.
    let out = s.exec.cli(&["apply", &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ledger_tampered") && err.contains("does not verify"),
        "{err}"
    );

    // Control: with the forged row gone the same proposal verifies, is
    // approved by a person and applies — so only the forgery was refused.
    tamper(
        &s.exec.store,
        &format!("DELETE FROM decisions WHERE proposal_id = '{id}';"),
    );
    assert_verifies(&s.exec.store, "the forged row removed");
    let (code, out) = s.approve(&id);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = s.cli(&["apply", &id]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(s.row("invoices", "INV-3001")[0].as_deref(), Some("0"));
}

#[test]
fn approve_and_apply_refuse_edited_rows_of_the_proposal() {
    let s = Stack::start(reference_config_for);
    let before = s.row("invoices", "INV-3001");
    let id = s.propose("INV-3001", "customer requested review");

    // An edited proposal row (a later expiry; `show` would display it).
    tamper(
        &s.exec.store,
        &format!(
            "UPDATE proposals SET expires_ms = expires_ms + 86400000 WHERE proposal_id = '{id}';"
        ),
    );
    let (code, out) = s.approve(&id);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "ledger_tampered", "{out}");
    assert_eq!(s.show(&id)["summary"]["state"], "pending_approval");
    assert_broken(&s.exec.store, "an edited expires_ms");
    // Put it back: the record verifies and the approval goes through.
    tamper(
        &s.exec.store,
        &format!(
            "UPDATE proposals SET expires_ms = expires_ms - 86400000 WHERE proposal_id = '{id}';"
        ),
    );
    assert_verifies(&s.exec.store, "expires_ms restored");
    let (code, out) = s.approve(&id);
    assert_eq!(code, Some(0), "{out}");

    // An edited decision (who approved): apply refuses and writes nothing.
    tamper(
        &s.exec.store,
        &format!("UPDATE decisions SET uid = 4242 WHERE proposal_id = '{id}';"),
    );
    assert_eq!(s.show(&id)["decisions"][0]["by"]["uid"], 4242);
    let (code, out) = s.cli(&["apply", &id]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "ledger_tampered", "{out}");
    assert_eq!(s.row("invoices", "INV-3001"), before, "nothing was written");
    assert_eq!(s.source_receipts(), 0);
}

/// The reference config with `invoices_archive`, a copy of `invoices`, in
/// the source.
fn with_archive(db: &Database) -> Value {
    execute(
        db,
        "CREATE TABLE invoices_archive AS SELECT * FROM invoices;",
    );
    reference_config_for(db)
}

/// Point the waiver capability at `table`.
fn retarget(s: &Stack, table: &str) -> Value {
    let mut cfg = s.config();
    let cap = cfg["capabilities"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == WAIVER)
        .unwrap();
    cap["target"]["table"] = json!(table);
    s.write_config(&cfg);
    cfg
}

#[test]
fn a_config_edit_between_approval_and_apply_is_refused() {
    let mut s = Stack::start(with_archive);
    let original = s.config();
    let id = s.propose("INV-3001", "customer requested review");
    let (code, out) = s.approve(&id);
    assert_eq!(code, Some(0), "{out}");
    let (live, archived) = (
        s.row("invoices", "INV-3001"),
        s.row("invoices_archive", "INV-3001"),
    );
    assert_eq!(live[0].as_deref(), Some("5500"));
    assert_eq!(archived, live);

    // The reviewer's mistake (or an attacker's edit): retarget, restart.
    s.exec.stop();
    let cfg = retarget(&s, "invoices_archive");
    s.restart();
    // The attack is real: the approved change set names `invoices`, the
    // live capability — which apply used to take the table from — names
    // `invoices_archive`, where the same key and tenant exist.
    let shown = s.show(&id);
    assert_eq!(shown["summary"]["state"], "approved");
    assert_eq!(shown["change_set"]["target"]["table"], "invoices");
    let live_target = cfg["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == WAIVER)
        .unwrap()["target"]["table"]
        .clone();
    assert_eq!(live_target, "invoices_archive");

    let (code, out) = s.cli(&["apply", &id]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "config_changed", "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("new proposal"),
        "{out}"
    );
    assert_eq!(
        s.row("invoices", "INV-3001"),
        live,
        "nothing written in invoices"
    );
    assert_eq!(
        s.row("invoices_archive", "INV-3001"),
        archived,
        "nothing written in invoices_archive"
    );
    assert_eq!(s.source_receipts(), 0);

    // Control: the reviewed config back, the same approval applies, to the
    // table that was shown.
    s.exec.stop();
    s.write_config(&original);
    s.restart();
    let (code, out) = s.cli(&["apply", &id]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(s.row("invoices", "INV-3001")[0].as_deref(), Some("0"));
    assert_eq!(s.row("invoices_archive", "INV-3001"), archived);
    assert_verifies(&s.exec.store, "after the whole story");
}

#[test]
fn a_config_edit_between_proposal_and_approval_is_refused() {
    let mut s = Stack::start(with_archive);
    let id = s.propose("INV-3001", "customer requested review");
    let other = s.propose("INV-3001", "to be rejected");
    s.exec.stop();
    retarget(&s, "invoices_archive");
    s.restart();
    assert_eq!(
        s.show(&id)["change_set"]["target"]["table"],
        "invoices",
        "the proposal was made on invoices; the live config names invoices_archive"
    );

    let (code, out) = s.approve(&id);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "config_changed", "{out}");
    assert_eq!(s.show(&id)["summary"]["state"], "pending_approval");
    let (code, out) = s.cli(&["proposals", "reject", &other, "--reason", "no"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"]["code"], "config_changed", "{out}");

    // A proposal made under the new config is bound to it and can be approved.
    let fresh = s.propose("INV-3001", "made under the new config");
    assert_eq!(
        s.show(&fresh)["change_set"]["target"]["table"],
        "invoices_archive"
    );
    let (code, out) = s.approve(&fresh);
    assert_eq!(code, Some(0), "{out}");
    assert_verifies(&s.exec.store, "refusals leave nothing behind");
}

#[test]
fn a_ledger_from_before_schema_3_verifies_migrates_and_stays_bound() {
    let dir = tempfile::Builder::new()
        .prefix("airlock-tamper-old-")
        .tempdir()
        .unwrap();
    let store = dir.path().join("ledger.db");
    let dump = std::fs::read_to_string(
        airlock_tests::workspace_root().join("tests/fixtures/ledger/schema2-demo.sql"),
    )
    .unwrap();
    block_on(async {
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&store)
            .create_if_missing(true);
        let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
            .execute(&mut c)
            .await
            .unwrap();
    });
    let version = |p: &Path| {
        ledger_rows(
            p,
            "SELECT CAST(user_version AS TEXT) FROM pragma_user_version",
        )[0][0]
            .clone()
    };
    assert_eq!(version(&store).as_deref(), Some("2"));
    assert_verifies(&store, "an old ledger, not migrated");
    // An executor of this build migrates it (no old row is rewritten) …
    drop(airlock_executor::ledger::Ledger::open(&store).unwrap());
    assert_eq!(
        version(&store),
        Some(airlock_executor::ledger::SCHEMA_VERSION.to_string())
    );
    assert_verifies(&store, "the old ledger, migrated");
    // … and its old rows are bound too: the columns their payloads never
    // carried are checked against their events' own time and actor.
    for edit in [
        "UPDATE decisions SET uid = uid + 1;",
        "UPDATE proposals SET created_ms = created_ms + 1;",
        "UPDATE jobs SET user = 'mallory';",
        "UPDATE receipts SET executed_at = '2020-01-01T00:00:00.000Z';",
        "UPDATE evidence SET recorded_uid = 4242 WHERE seq = (SELECT MIN(seq) FROM evidence);",
    ] {
        let copy = dir.path().join("copy.db");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
        }
        std::fs::copy(&store, &copy).unwrap();
        tamper(&copy, edit);
        assert_broken(&copy, edit);
    }
}
