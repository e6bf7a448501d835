//! The write vocabulary beyond a single-row UPDATE of fixed or argument
//! values, end to end through the real processes on PostgreSQL, MariaDB and
//! SQLite: a guarded INSERT whose identity a source unique constraint
//! enforces, a guarded hard DELETE by key, tenant and exact version (and
//! refused when a trigger or cascade would widen it), and an UPDATE that adds
//! a bounded step to a balance, stamps the apply time and advances an
//! integer version. Each is proposed over MCP by the real proposer, approved
//! and applied with the real `airlock` CLI, and checked in the database.

use airlock_ipc::Role;
use airlock_ipc::message::{ParamMeta, ProposalState, RecordRead};
use airlock_policy::change_set::ChangeSet;
use airlock_policy::config::{Engine, OperationKind};
use airlock_policy::statement::{LookupParam, select_row};
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, reference_config_for, sqlite_reference,
};
use airlock_tests::proposals::{change_set, context, load, record, refusal, submit};
use airlock_tests::runtime as rt;
use airlock_tests::write_world::{WriteWorld, schema_of};
use serde_json::{Map, Value, json};

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

/// The shared world, with this suite's tables and config and an approve
/// that must succeed.
struct World(WriteWorld);

impl std::ops::Deref for World {
    type Target = WriteWorld;
    fn deref(&self) -> &WriteWorld {
        &self.0
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut WriteWorld {
        &mut self.0
    }
}

impl World {
    fn start(db: Database) -> World {
        World::start_with_fault(db, None)
    }

    /// With `AIRLOCK_FAULT=<point>`: the executor kills itself (as kill -9
    /// would) when an apply reaches that point.
    fn start_with_fault(db: Database, fault: Option<&str>) -> World {
        add_tables(&db);
        let cfg = config(&db);
        World(WriteWorld::start(db, &cfg, fault))
    }

    fn approve(&self, id: &str) {
        let out = self.0.approve(id);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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
    // A version changed after approval is a conflict at apply and nothing
    // is removed (before approval, the approval itself is refused: the
    // quorum_freshness suite).
    let id = w.propose("billing.propose_draft_removal", json!({"draft_id": "D-2"}));
    w.approve(&id);
    execute(
        &w.db,
        "UPDATE invoice_drafts SET version = 2 WHERE id = 'D-2'",
    );
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

// ---------------------------------------------------------------------------
// A rogue proposer aimed at the new write kinds: change sets built honestly,
// then altered, submitted over the proposer socket as a compromised proposer
// would. Every one is refused, nothing is recorded or written, and the
// executor keeps serving an honest proposal afterwards.

type Tamper = fn(&mut ChangeSet);

/// (what the attempt is, the refusal code expected, the alteration).
type Attempts = Vec<(&'static str, &'static str, Tamper)>;

/// The evidence a proposer records for `capability` with `rows` (what the
/// real proposer sends: the capability's statement fingerprint and params).
fn read(
    cfg: &airlock_policy::Config,
    engine: Engine,
    capability: &str,
    args: &Value,
    rows: Vec<Map<String, Value>>,
) -> RecordRead {
    let cap = cfg.capability(capability).unwrap();
    let st = select_row(engine, cap, false);
    let parameters = st
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| ParamMeta {
            position: i as u32 + 1,
            bound_from: match p {
                LookupParam::PrimaryKey => format!("arg:{}", cap.lookup_arg),
                LookupParam::Tenant => "trusted_context:tenant_id".into(),
                LookupParam::Principal => "trusted_context:principal".into(),
                LookupParam::Selection(i) => format!("reviewed:selection.all[{i}]"),
                LookupParam::SetKey(i) => format!("reviewed:selection.keys[{i}]"),
            },
            json_type: match p {
                LookupParam::PrimaryKey if cap.lookup_arg.is_empty() => "null".into(),
                _ => "string".into(),
            },
        })
        .collect();
    RecordRead {
        capability: capability.into(),
        args: args.as_object().cloned().unwrap(),
        context: context("acme"),
        query_fingerprint: st.fingerprint(),
        parameters,
        rows,
        identity_token: None,
    }
}

fn row(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn a_rogue_proposer_cannot_widen_an_insert_a_delete_or_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(sqlite_reference(dir.path(), "write_kinds_rogue"));
    let cfg = load(&config(&w.db));
    let engine = Engine::Sqlite;
    let note_args = json!({"customer_id": "CUS-1001", "amount_cents": 1200});
    let draft = row(json!({"id": "D-1", "tenant_id": "acme", "status": "expired", "version": 1}));
    let wallet = row(
        json!({"id": "W-1", "tenant_id": "acme", "balance_cents": 1000, "last_topup_at": null, "version": 1}),
    );
    let topup_args = json!({"wallet_id": "W-1", "amount_cents": 300});

    let inserts: Attempts = vec![
        (
            "insert: a forged tenant in the identity",
            "policy_violation",
            |cs| {
                cs.guards.deduplication[0].value = Some(json!("globex"));
            },
        ),
        (
            "insert: an identity component removed",
            "policy_violation",
            |cs| {
                cs.guards.deduplication.pop();
            },
        ),
        (
            "insert: the proposal id chosen by the proposer",
            "policy_violation",
            |cs| {
                cs.guards.deduplication[1].value = Some(json!("wrp_chosen"));
            },
        ),
        ("insert: the identity emptied", "policy_violation", |cs| {
            cs.guards.deduplication.clear();
        }),
        ("insert: submitted as an update", "policy_violation", |cs| {
            cs.operation = OperationKind::Update;
        }),
        ("insert: submitted as a delete", "policy_violation", |cs| {
            cs.operation = OperationKind::Delete;
        }),
        (
            "insert: a before-image invented",
            "policy_violation",
            |cs| {
                cs.before.insert("amount_cents".into(), json!(1));
            },
        ),
        ("insert: into another tenant", "tenant_not_allowed", |cs| {
            cs.tenant_id = "globex".into();
            cs.guards.tenant.as_mut().unwrap().value = json!("globex");
            cs.guards.deduplication[0].value = Some(json!("globex"));
            cs.after.insert("tenant_id".into(), json!("globex"));
        }),
        (
            "insert: the tenant column in the patch",
            "policy_violation",
            |cs| {
                cs.patch.insert("tenant_id".into(), json!("globex"));
                cs.after.insert("tenant_id".into(), json!("globex"));
            },
        ),
        (
            "insert: the identity column in the patch",
            "policy_violation",
            |cs| {
                cs.patch.insert("request_id".into(), json!("wrp_old"));
                cs.after.insert("request_id".into(), json!("wrp_old"));
            },
        ),
        (
            "insert: a value for the apply-time column",
            "policy_violation",
            |cs| {
                cs.patch
                    .insert("created_at".into(), json!("1999-01-01T00:00:00Z"));
                cs.after
                    .insert("created_at".into(), json!("1999-01-01T00:00:00Z"));
            },
        ),
        (
            "insert: the apply-time column dropped",
            "policy_violation",
            |cs| {
                cs.apply_time.clear();
            },
        ),
        ("insert: a primary key chosen", "policy_violation", |cs| {
            cs.target.primary_key.value = json!(1);
        }),
        (
            "insert: an amount over the argument's maximum",
            "policy_violation",
            |cs| {
                cs.args.insert("amount_cents".into(), json!(999_999));
                cs.patch.insert("amount_cents".into(), json!(999_999));
                cs.after.insert("amount_cents".into(), json!(999_999));
            },
        ),
        (
            "insert: a column outside allowed_columns",
            "policy_violation",
            |cs| {
                cs.patch.insert("id".into(), json!(7));
                cs.after.insert("id".into(), json!(7));
            },
        ),
    ];
    let deletes: Attempts = vec![
        ("delete: without a version", "policy_violation", |cs| {
            cs.guards.expected_version = None;
        }),
        ("delete: submitted as an update", "policy_violation", |cs| {
            cs.operation = OperationKind::Update;
        }),
        (
            "delete: another tenant in the tenant guard",
            "policy_violation",
            |cs| {
                cs.guards.tenant.as_mut().unwrap().value = json!("globex");
            },
        ),
        (
            "delete: a version the evidence never saw",
            "policy_violation",
            |cs| {
                cs.guards.expected_version.as_mut().unwrap().value = json!(99);
                cs.before.insert("version".into(), json!(99));
            },
        ),
        (
            "delete: another key than the one read",
            "evidence_required",
            |cs| {
                cs.args.insert("draft_id".into(), json!("D-2"));
                cs.target.primary_key.value = json!("D-2");
            },
        ),
        ("delete: a patch smuggled in", "policy_violation", |cs| {
            cs.patch.insert("status".into(), json!("kept"));
        }),
    ];
    let steps: Attempts = vec![
        (
            "step: a result larger than before plus the argument",
            "policy_violation",
            |cs| {
                cs.patch.insert("balance_cents".into(), json!(1500));
                cs.after.insert("balance_cents".into(), json!(1500));
            },
        ),
        (
            "step: a lying before-image under the bound",
            "policy_violation",
            |cs| {
                cs.before.insert("balance_cents".into(), json!(0));
                cs.patch.insert("balance_cents".into(), json!(300));
                cs.after.insert("balance_cents".into(), json!(300));
            },
        ),
        ("step: submitted as a delete", "policy_violation", |cs| {
            cs.operation = OperationKind::Delete;
        }),
        (
            "step: the apply time replaced by a value",
            "policy_violation",
            |cs| {
                cs.apply_time.clear();
                cs.patch
                    .insert("last_topup_at".into(), json!("1999-01-01T00:00:00Z"));
                cs.after
                    .insert("last_topup_at".into(), json!("1999-01-01T00:00:00Z"));
            },
        ),
    ];

    let attempts = inserts.len() + deletes.len() + steps.len();
    assert!(attempts >= 25, "{attempts}");
    let outcomes = rt().block_on(async {
        let mut p = w.exec.client(Role::Proposer).await;
        let mut outcomes = Vec::new();
        let groups: [(&str, Value, Map<String, Value>, &Attempts); 3] = [
            (
                "billing.propose_credit_note",
                note_args.clone(),
                Map::new(),
                &inserts,
            ),
            (
                "billing.propose_draft_removal",
                json!({"draft_id": "D-1"}),
                draft.clone(),
                &deletes,
            ),
            (
                "billing.propose_wallet_topup",
                topup_args.clone(),
                wallet.clone(),
                &steps,
            ),
        ];
        for (capability, args, current, tampers) in groups {
            let rows = if current.is_empty() {
                vec![]
            } else {
                vec![current.clone()]
            };
            let ev = record(&mut p, read(&cfg, engine, capability, &args, rows))
                .await
                .unwrap()
                .evidence_id;
            let honest = change_set(&cfg, capability, args.clone(), "acme", &current);
            for (name, expected, tamper) in tampers.iter() {
                let mut cs = honest.clone();
                tamper(&mut cs);
                assert_ne!(cs, honest, "{name}: the tamper changes something");
                let got = refusal(submit(&mut p, cs, Some(ev.clone())).await);
                outcomes.push((name.to_string(), expected.to_string(), got));
            }
            // The executor keeps serving: the honest change set is accepted.
            let ok = submit(&mut p, honest, Some(ev)).await.unwrap();
            assert_eq!(ok.state, ProposalState::PendingApproval, "{capability}");
        }
        outcomes
    });
    let wrong: Vec<_> = outcomes.iter().filter(|(_, e, g)| e != g).collect();
    assert!(
        wrong.is_empty(),
        "refused with other codes than expected: {wrong:#?}"
    );
    assert_eq!(outcomes.len(), attempts);
    // Only the three honest proposals were recorded, and nothing was written.
    let listed = w.cli(&["proposals", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed["proposals"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    assert!(w.rows("SELECT request_id FROM credit_notes").is_empty());
    assert_eq!(w.rows("SELECT id FROM invoice_drafts").len(), 4);
    assert_eq!(
        w.rows("SELECT CAST(balance_cents AS TEXT) FROM wallets WHERE id = 'W-1'")[0][0].as_deref(),
        Some("1000")
    );
}

// ---------------------------------------------------------------------------
// kill -9 at every step of an insert's and a delete's apply: the source
// changes exactly once and each proposal ends with one terminal receipt.

fn crash_at(point: &str, db_name: &str) {
    let mut w = World::start_with_fault(postgres_reference(db_name), Some(point));
    let insert = w.propose(
        "billing.propose_credit_note",
        json!({"customer_id": "CUS-1001", "amount_cents": 700}),
    );
    let delete = w.propose("billing.propose_draft_removal", json!({"draft_id": "D-1"}));
    w.approve(&insert);
    w.approve(&delete);
    for (id, last) in [(&insert, false), (&delete, true)] {
        let (code, out) = w.apply(id);
        assert_ne!(code, Some(0), "the apply was interrupted at {point}: {out}");
        w.restart_after_crash(!last);
    }
    let expected = if point == "after_commit_before_receipt" {
        "already_applied"
    } else {
        "applied"
    };
    for id in [&insert, &delete] {
        let (code, out) = w.apply(id);
        assert_eq!(code, Some(0), "{point}: {out}");
        assert_eq!(out["writeback"]["status"], expected, "{point}: {out}");
        assert_eq!(w.apply(id).1["writeback"]["status"], "already_applied");
        let story = w.cli(&["replay", "show", id, "--json"]);
        let story: Value = serde_json::from_slice(&story.stdout).unwrap();
        let receipts = story["execution_receipts"].as_array().unwrap();
        assert_eq!(receipts.len(), 1, "{point}: one terminal receipt: {story}");
        assert_eq!(receipts[0]["status"], expected);
        let source = w.rows(&format!(
            "SELECT status FROM synapsor_writeback_receipts WHERE proposal_id = '{id}'"
        ));
        assert_eq!(source.len(), 1, "{point}: one source receipt");
    }
    let notes = w.rows(&format!(
        "SELECT customer_id FROM credit_notes WHERE request_id = '{insert}'"
    ));
    assert_eq!(notes.len(), 1, "{point}: exactly one row inserted");
    assert_eq!(w.rows("SELECT request_id FROM credit_notes").len(), 1);
    assert!(
        w.rows("SELECT id FROM invoice_drafts WHERE id = 'D-1'")
            .is_empty()
    );
    assert_eq!(
        w.rows("SELECT id FROM invoice_drafts").len(),
        3,
        "{point}: only D-1 went"
    );
    assert!(w.exec.stop().success());
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
fn kill_9_before_the_transaction() {
    crash_at("before_transaction", "airlock_wk_crash1");
}

#[test]
fn kill_9_after_the_write_before_commit() {
    crash_at("after_update_before_commit", "airlock_wk_crash2");
}

#[test]
fn kill_9_after_commit_before_the_ledger_receipt() {
    crash_at("after_commit_before_receipt", "airlock_wk_crash3");
}
