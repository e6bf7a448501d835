//! Principal row scope (`target.principal_scope_key`) through the real
//! processes: the proposer over MCP, the executor, the `airlock` CLI and
//! real PostgreSQL, MariaDB and SQLite databases; then a malicious proposer
//! speaking raw IPC, refused at every attempt while the executor keeps
//! serving.
//!
//! The reference invoices get an `assigned_to` column: INV-3001 and INV-3003
//! are assigned to `agent_17` (the principal the MCP client runs as),
//! INV-3002 (same tenant) to `agent_99`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use airlock_ipc::Role;
use airlock_ipc::client::Client;
use airlock_ipc::message::{ProposalState, RecordRead};
use airlock_policy::Config;
use airlock_policy::change_set::{ChangeSet, ColumnValue};
use airlock_policy::config::Engine;
use airlock_policy::context::TrustedContext;
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, query_strings, reference_config_for,
    sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, stdio_client};
use airlock_tests::proposals::{
    WAIVER, change_set, invoice_row, load, read_of, record, reference_value, refusal, submit,
};
use airlock_tests::runtime as rt;
use serde_json::{Map, Value, json};

const READ: &str = "billing.inspect_invoice";
const SCOPED: [&str; 2] = [READ, WAIVER];

/// `config` with the principal scope on the invoice read and waiver.
fn scoped(mut config: Value) -> Value {
    for cap in config["capabilities"].as_array_mut().unwrap() {
        if SCOPED.contains(&cap["name"].as_str().unwrap()) {
            cap["target"]["principal_scope_key"] = json!("assigned_to");
        }
    }
    config
}

fn prepare(db: &Database) {
    let (col, at) = match db.engine {
        Engine::Postgres => ("text", "2026-06-20 14:31:08+00"),
        Engine::Mysql => ("varchar(64) NULL", "2026-06-20 14:31:08"),
        Engine::Sqlite => ("TEXT", "2026-06-20T14:31:08Z"),
    };
    for sql in [
        format!("ALTER TABLE invoices ADD COLUMN assigned_to {col}"),
        "UPDATE invoices SET assigned_to = 'agent_17' WHERE id = 'INV-3001'".to_owned(),
        "UPDATE invoices SET assigned_to = 'agent_99', status = 'overdue', late_fee_cents = 5500 WHERE id = 'INV-3002'".to_owned(),
        format!(
            "INSERT INTO invoices (id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at, assigned_to) VALUES ('INV-3003', 'acme', 'cust_acme_1', 'overdue', 25500, 5500, NULL, '{at}', 'agent_17')"
        ),
    ] {
        execute(db, &sql);
    }
}

fn executor_for(db: &Database, config: &Value) -> ExecutorProcess {
    ExecutorProcess::start(
        config,
        &[
            ("APP_TENANT_ID", "acme"),
            ("APP_WRITE_URL", db.write_url.as_str()),
        ],
    )
}

fn late_fee(db: &Database, id: &str) -> Option<String> {
    let cast = if db.engine == Engine::Mysql {
        "CHAR"
    } else {
        "TEXT"
    };
    query_strings(
        db,
        &format!("SELECT CAST(late_fee_cents AS {cast}) FROM invoices WHERE id = '{id}'"),
    )
    .pop()
    .and_then(|r| r.into_iter().next().flatten())
}

/// An MCP answer with the asked-for id and the evidence handle blanked, so
/// answers for different ids can be compared.
fn normalized(envelope: &Value, id: &str) -> Value {
    let mut v = envelope.clone();
    if let Some(e) = v.get_mut("evidence") {
        *e = Value::Null;
    }
    if let Some(m) = v.get_mut("_meta").and_then(Value::as_object_mut) {
        m.remove("evidence");
        m.remove("evidence_id");
    }
    let text = serde_json::to_string(&v).unwrap().replace(id, "<ID>");
    serde_json::from_str(&text).unwrap()
}

/// `(ok, envelope)` of each call, over one MCP session as agent_17.
fn calls(exec: &ExecutorProcess, db: &Database, list: &[(&str, Value)]) -> Vec<Value> {
    rt().block_on(async {
        let client = stdio_client(
            &exec.config_path,
            &exec.socket_dir,
            &agent_env(&db.read_url),
            &[],
        )
        .await;
        let mut out = Vec::new();
        for (cap, args) in list {
            let tool = airlock_policy::catalog::openai_alias(cap);
            let (_, envelope) = call(&client, &tool, args.clone()).await;
            out.push(envelope);
        }
        client.cancel().await.unwrap();
        out
    })
}

fn cli(exec: &ExecutorProcess, args: &[&str]) -> Output {
    let out = exec.cli(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn apply(exec: &ExecutorProcess, id: &str) -> Value {
    let out = exec.cli(&["apply", id, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn waiver_args(id: &str) -> Value {
    json!({"invoice_id": id, "reason": "principal scope test"})
}

fn scoped_loop(db: Database) {
    prepare(&db);

    // Without the scope, agent_17 reads and proposes on agent_99's row:
    // what the scope must prevent.
    let plain = executor_for(&db, &reference_config_for(&db));
    let open = calls(
        &plain,
        &db,
        &[
            (READ, json!({"invoice_id": "INV-3002"})),
            (WAIVER, waiver_args("INV-3002")),
        ],
    );
    assert_eq!(open[0]["ok"], true, "{}", open[0]);
    assert_eq!(open[1]["ok"], true, "{}", open[1]);
    drop(plain);

    let exec = executor_for(&db, &scoped(reference_config_for(&db)));
    let answers = calls(
        &exec,
        &db,
        &[
            (READ, json!({"invoice_id": "INV-3001"})),
            (READ, json!({"invoice_id": "INV-3002"})),
            (READ, json!({"invoice_id": "INV-4040"})),
            (WAIVER, waiver_args("INV-3002")),
            (WAIVER, waiver_args("INV-4040")),
            (WAIVER, waiver_args("INV-3001")),
            (WAIVER, waiver_args("INV-3003")),
        ],
    );
    // Its own row: read.
    assert_eq!(answers[0]["ok"], true, "{}", answers[0]);
    assert_eq!(answers[0]["data"]["id"], "INV-3001");
    // Another principal's row of the same tenant: exactly a missing row.
    assert_eq!(answers[1]["ok"], false, "{}", answers[1]);
    assert_eq!(
        answers[1]["error"]["airlock_code"], "not_found",
        "{}",
        answers[1]
    );
    assert_eq!(
        normalized(&answers[1], "INV-3002"),
        normalized(&answers[2], "INV-4040"),
        "a row of another principal must look exactly like a missing one"
    );
    assert_eq!(
        answers[3]["error"]["airlock_code"], "not_found",
        "{}",
        answers[3]
    );
    assert_eq!(
        normalized(&answers[3], "INV-3002"),
        normalized(&answers[4], "INV-4040"),
    );
    assert_eq!(late_fee(&db, "INV-3002").as_deref(), Some("5500"));

    // Its own row: proposed, approved and applied with the CLI.
    assert_eq!(answers[5]["ok"], true, "{}", answers[5]);
    let own = answers[5]["proposal"]["id"].as_str().unwrap().to_owned();
    let show = cli(&exec, &["proposals", "show", &own]);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("assigned_to must be \"agent_17\" (principal scope)"),
        "{show}"
    );
    cli(&exec, &["proposals", "approve", &own, "--yes", "--json"]);
    let out = apply(&exec, &own);
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(
        out["writeback"]["job"]["principal_scope_guard"],
        json!({"column": "assigned_to", "value": "agent_17"}),
        "{out}"
    );
    assert_eq!(late_fee(&db, "INV-3001").as_deref(), Some("0"));
    let replay = cli(&exec, &["replay", "show", &own]);
    let replay = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.contains("scoped to principal assigned_to = \"agent_17\""),
        "{replay}"
    );

    // Reassigned to agent_99 between proposal and apply: a conflict, and
    // nothing changes (the version column is untouched, so only the
    // principal predicate can catch it).
    assert_eq!(answers[6]["ok"], true, "{}", answers[6]);
    let moved = answers[6]["proposal"]["id"].as_str().unwrap().to_owned();
    cli(&exec, &["proposals", "approve", &moved, "--yes", "--json"]);
    execute(
        &db,
        "UPDATE invoices SET assigned_to = 'agent_99' WHERE id = 'INV-3003'",
    );
    let out = apply(&exec, &moved);
    assert_eq!(out["writeback"]["status"], "conflict", "{out}");
    assert_eq!(
        out["writeback"]["receipt"]["source_database_mutated"], false,
        "{out}"
    );
    assert_eq!(late_fee(&db, "INV-3003").as_deref(), Some("5500"));
    // The same answer as for a row that is gone.
    let detail = out["writeback"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("no longer exists"), "{out}");
}

#[test]
fn postgres_principal_scope_end_to_end() {
    scoped_loop(postgres_reference("airlock_principal_scope"));
}

#[test]
fn mariadb_principal_scope_end_to_end() {
    scoped_loop(mysql_reference("airlock_principal_scope"));
}

#[test]
fn sqlite_principal_scope_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    scoped_loop(sqlite_reference(dir.path(), "principal_scope"));
}

// ---------------------------------------------------------------------------
// A malicious proposer (raw IPC; no source database: nothing is approved).

const ENV: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "acme")];

fn as_principal(mut read: RecordRead, principal: &str) -> RecordRead {
    read.context = TrustedContext {
        principal: principal.into(),
        ..read.context
    };
    read
}

fn row_of(id: &str, assigned_to: &str) -> Map<String, Value> {
    let mut row = invoice_row(id, "acme");
    row.insert("assigned_to".into(), json!(assigned_to));
    row
}

fn waiver_of(cfg: &Config, id: &str, principal: &str) -> ChangeSet {
    let mut cs = change_set(
        cfg,
        WAIVER,
        waiver_args(id),
        "acme",
        &row_of(id, "agent_17"),
    );
    // The support builder acts as agent_17; rebuild for another principal.
    if principal != "agent_17" {
        cs.principal = principal.into();
        cs.guards.principal = Some(ColumnValue {
            column: "assigned_to".into(),
            value: json!(principal),
        });
    }
    cs
}

struct Rogue {
    exec: ExecutorProcess,
    cfg: Config,
}

impl Rogue {
    fn new(config: Value) -> Rogue {
        Rogue {
            cfg: load(&config),
            exec: ExecutorProcess::start(&config, ENV),
        }
    }

    async fn client(&self) -> Client {
        self.exec.client(Role::Proposer).await
    }

    /// Record `id`'s read as `principal` with the row assigned to `assigned_to`.
    async fn read(&self, c: &mut Client, id: &str, principal: &str, assigned_to: &str) -> String {
        let read = read_of(
            &self.cfg,
            WAIVER,
            waiver_args(id),
            &row_of(id, assigned_to),
            "acme",
        );
        record(c, as_principal(read, principal))
            .await
            .expect("an honest read is recorded")
            .evidence_id
    }

    /// The executor still serves: an honest read and proposal of agent_17.
    async fn still_serves(&self, c: &mut Client) {
        let ev = self.read(c, "INV-3001", "agent_17", "agent_17").await;
        let p = submit(c, waiver_of(&self.cfg, "INV-3001", "agent_17"), Some(ev))
            .await
            .expect("an honest proposal is accepted");
        assert_eq!(p.state, ProposalState::PendingApproval);
    }
}

#[test]
fn a_rogue_proposer_cannot_leave_its_principal_scope() {
    let r = Rogue::new(scoped(reference_value()));
    rt().block_on(async {
        let mut c = r.client().await;
        let honest = waiver_of(&r.cfg, "INV-3001", "agent_17");
        let mut observed = Vec::new();

        // 1. The principal guard removed.
        let ev = r.read(&mut c, "INV-3001", "agent_17", "agent_17").await;
        let mut cs = honest.clone();
        cs.guards.principal = None;
        observed.push(("guard removed", refusal(submit(&mut c, cs, Some(ev)).await)));
        r.still_serves(&mut c).await;

        // 2. The guard names another principal.
        let ev = r.read(&mut c, "INV-3001", "agent_17", "agent_17").await;
        let mut cs = honest.clone();
        cs.guards.principal = Some(ColumnValue {
            column: "assigned_to".into(),
            value: json!("agent_99"),
        });
        observed.push((
            "guard of another principal",
            refusal(submit(&mut c, cs, Some(ev)).await),
        ));
        r.still_serves(&mut c).await;

        // 3. The principal column in the patch (reassign the row to itself).
        let ev = r.read(&mut c, "INV-3002", "agent_17", "agent_17").await;
        let mut cs = waiver_of(&r.cfg, "INV-3002", "agent_17");
        cs.patch.insert("assigned_to".into(), json!("agent_17"));
        cs.after.insert("assigned_to".into(), json!("agent_17"));
        observed.push((
            "principal column patched",
            refusal(submit(&mut c, cs, Some(ev)).await),
        ));
        r.still_serves(&mut c).await;

        // 4. Evidence rows of another principal.
        let read = as_principal(
            read_of(
                &r.cfg,
                WAIVER,
                waiver_args("INV-3002"),
                &row_of("INV-3002", "agent_99"),
                "acme",
            ),
            "agent_17",
        );
        observed.push((
            "evidence of another principal",
            refusal(record(&mut c, read).await),
        ));
        r.still_serves(&mut c).await;

        // 5. Evidence rows without the principal column.
        let mut read = read_of(
            &r.cfg,
            WAIVER,
            waiver_args("INV-3002"),
            &row_of("INV-3002", "agent_99"),
            "acme",
        );
        read.rows[0].remove("assigned_to");
        observed.push((
            "evidence without the principal column",
            refusal(record(&mut c, read).await),
        ));
        r.still_serves(&mut c).await;

        // 6. agent_99's honest read, submitted as agent_17's change set.
        let ev = r.read(&mut c, "INV-3002", "agent_99", "agent_99").await;
        observed.push((
            "change set of another principal than the evidence",
            refusal(submit(&mut c, waiver_of(&r.cfg, "INV-3002", "agent_17"), Some(ev)).await),
        ));
        r.still_serves(&mut c).await;

        // 7. agent_17's read, submitted as a (consistent) agent_99 change set.
        let ev = r.read(&mut c, "INV-3001", "agent_17", "agent_17").await;
        observed.push((
            "evidence of another principal than the change set",
            refusal(submit(&mut c, waiver_of(&r.cfg, "INV-3001", "agent_99"), Some(ev)).await),
        ));
        r.still_serves(&mut c).await;

        assert_eq!(
            observed,
            vec![
                ("guard removed", "policy_violation".to_owned()),
                ("guard of another principal", "policy_violation".to_owned()),
                ("principal column patched", "policy_violation".to_owned()),
                (
                    "evidence of another principal",
                    "policy_violation".to_owned()
                ),
                (
                    "evidence without the principal column",
                    "policy_violation".to_owned()
                ),
                (
                    "change set of another principal than the evidence",
                    "evidence_required".to_owned()
                ),
                (
                    "evidence of another principal than the change set",
                    "evidence_required".to_owned()
                ),
            ]
        );
    });
}

/// Without the scope the same moves succeed: a read of agent_99's row and a
/// proposal built on it are accepted from agent_17.
#[test]
fn without_the_scope_the_same_moves_are_accepted() {
    let r = Rogue::new(reference_value());
    rt().block_on(async {
        let mut c = r.client().await;
        let read = as_principal(
            read_of(
                &r.cfg,
                WAIVER,
                waiver_args("INV-3002"),
                &invoice_row("INV-3002", "acme"),
                "acme",
            ),
            "agent_17",
        );
        let ev = record(&mut c, read).await.expect("recorded").evidence_id;
        let cs = change_set(
            &r.cfg,
            WAIVER,
            waiver_args("INV-3002"),
            "acme",
            &invoice_row("INV-3002", "acme"),
        );
        assert_eq!(cs.guards.principal, None);
        let p = submit(&mut c, cs, Some(ev)).await.expect("accepted");
        assert_eq!(p.state, ProposalState::PendingApproval);
    });
}
