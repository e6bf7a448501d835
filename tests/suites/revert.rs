//! Reviewed compensation (`reversibility: {"mode": "reviewed_inverse"}`,
//! `airlock revert`) end to end through the real processes on PostgreSQL,
//! MariaDB and SQLite: a reversible UPDATE and INSERT proposed over MCP by
//! the real proposer, approved and applied with the real CLI; the revert
//! recorded as a new pending proposal (nothing written), approved and
//! applied like any other, the row back to its prior values with the
//! version advanced twice, the inserted row (and only it) deleted, a row
//! changed after the forward write a terminal conflict; the refusals; and
//! rogue attempts through the raw sockets, each refused with the executor
//! still serving.

use std::process::Output;

use airlock_ipc::Role;
use airlock_ipc::message::{ProposalRef, ProposalState, Request, Revert};
use airlock_policy::change_set::{ChangeSet, Compensation};
use airlock_policy::config::{Engine, OperationKind};
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, query_strings, reference_config_for,
    sqlite_reference,
};
use airlock_tests::proposals::{honest_proposal, load, refusal, submit, waiver};
use airlock_tests::runtime as rt;
use airlock_tests::write_world::{WriteWorld, schema_of};
use serde_json::{Value, json};

const ACCOUNT: &str = "billing.propose_account_credit";
const NOTE: &str = "billing.propose_credit_note";
const DRAFT: &str = "billing.propose_draft_removal";
const WAIVER: &str = "billing.propose_late_fee_waiver";

/// The tables of this suite, their rows and the writer's grants.
fn add_tables(db: &Database) {
    let stmts: Vec<String> = match db.engine {
        Engine::Postgres => vec![
            "CREATE TABLE public.accounts (id text PRIMARY KEY, tenant_id text NOT NULL, credit_cents integer NOT NULL, note text, touched_at timestamptz, version integer NOT NULL)".into(),
            "CREATE TABLE public.credit_notes (id bigserial PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, amount_cents integer NOT NULL, request_id text NOT NULL, created_at timestamptz, UNIQUE (tenant_id, request_id))".into(),
            "CREATE TABLE public.invoice_drafts (id text PRIMARY KEY, tenant_id text NOT NULL, status text NOT NULL, version integer NOT NULL)".into(),
            "GRANT SELECT ON public.accounts, public.credit_notes, public.invoice_drafts TO synapsor_reader".into(),
            "GRANT SELECT, UPDATE ON public.accounts TO synapsor_writer".into(),
            "GRANT SELECT, INSERT, DELETE ON public.credit_notes TO synapsor_writer".into(),
            "GRANT USAGE ON SEQUENCE public.credit_notes_id_seq TO synapsor_writer".into(),
            "GRANT SELECT, DELETE ON public.invoice_drafts TO synapsor_writer".into(),
        ],
        Engine::Mysql => {
            let mut v: Vec<String> = vec![
                "CREATE TABLE accounts (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, credit_cents INT NOT NULL, note VARCHAR(200) NULL, touched_at DATETIME(6) NULL, version INT NOT NULL) ENGINE=InnoDB".into(),
                "CREATE TABLE credit_notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, customer_id VARCHAR(64) NOT NULL, amount_cents INT NOT NULL, request_id VARCHAR(128) NOT NULL, created_at DATETIME(6) NULL, UNIQUE KEY uq_request (tenant_id, request_id)) ENGINE=InnoDB".into(),
                "CREATE TABLE invoice_drafts (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, status VARCHAR(32) NOT NULL, version INT NOT NULL) ENGINE=InnoDB".into(),
            ];
            for host in ["localhost", "127.0.0.1", "%"] {
                let w = format!("'airlock_writer'@'{host}'");
                let n = &db.name;
                v.push(format!("GRANT UPDATE ON `{n}`.accounts TO {w}"));
                // DELETE: an insert's revert; TRIGGER and PROCESS: the
                // writer proves the delete reaches one row (write_kinds).
                v.push(format!(
                    "GRANT INSERT, DELETE, TRIGGER ON `{n}`.credit_notes TO {w}"
                ));
                v.push(format!(
                    "GRANT DELETE, TRIGGER ON `{n}`.invoice_drafts TO {w}"
                ));
                v.push(format!("GRANT PROCESS ON *.* TO {w}"));
            }
            v
        }
        Engine::Sqlite => vec![
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, credit_cents INTEGER NOT NULL, note TEXT, touched_at TEXT, version INTEGER NOT NULL)".into(),
            "CREATE TABLE credit_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, customer_id TEXT NOT NULL, amount_cents INTEGER NOT NULL, request_id TEXT NOT NULL, created_at TEXT, UNIQUE (tenant_id, request_id))".into(),
            "CREATE TABLE invoice_drafts (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL)".into(),
        ],
    };
    let rows = [
        "INSERT INTO accounts (id, tenant_id, credit_cents, note, touched_at, version) VALUES ('A-1', 'acme', 100, 'start', NULL, 1), ('A-2', 'acme', 100, 'start', NULL, 1), ('A-9', 'globex', 100, 'start', NULL, 1)",
        "INSERT INTO invoice_drafts (id, tenant_id, status, version) VALUES ('D-1', 'acme', 'expired', 1)",
    ];
    for sql in stmts.iter().map(String::as_str).chain(rows) {
        execute(db, sql);
    }
}

/// The reference config plus a reversible UPDATE, a reversible INSERT and
/// a (not reversible) DELETE; root holds every role, `nobody` only
/// `orders_lead`.
fn config(db: &Database) -> Value {
    let mut v = reference_config_for(db);
    let s = schema_of(db);
    let target = |table: &str| json!({"schema": s, "table": table, "primary_key": "id", "tenant_key": "tenant_id"});
    let caps = v["capabilities"].as_array_mut().unwrap();
    caps.push(json!({
        "name": ACCOUNT,
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": target("accounts"),
        "args": {
            "account_id": {"type": "string", "required": true, "max_length": 64},
            "credit_cents": {"type": "integer", "required": true, "minimum": 0, "maximum": 5000},
            "note": {"type": "string", "required": true, "max_length": 200}
        },
        "lookup": {"id_from_arg": "account_id"},
        "visible_columns": ["id", "credit_cents", "note", "touched_at", "version"],
        "patch": {
            "credit_cents": {"from_arg": "credit_cents"},
            "note": {"from_arg": "note"},
            "touched_at": {"apply_time": true}
        },
        "allowed_columns": ["credit_cents", "note", "touched_at"],
        "conflict_guard": {"column": "version"},
        "operation": {"kind": "update", "version_advance": {"column": "version", "strategy": "integer_increment"}},
        "approval": {"mode": "human", "required_role": "billing_lead"},
        "reversibility": {"mode": "reviewed_inverse"}
    }));
    caps.push(json!({
        "name": NOTE,
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
        "approval": {"mode": "human", "required_role": "billing_lead"},
        "reversibility": {"mode": "reviewed_inverse"}
    }));
    caps.push(json!({
        "name": DRAFT,
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
    v["airlock"] = json!({
        "socket_group": "nogroup",
        "approvers": [{"uid": 0, "roles": "*"}, {"user": "nobody", "roles": ["orders_lead"]}]
    });
    v
}

fn text(out: &Output) -> String {
    format!(
        "--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// The shared world, with this suite's tables and config.
struct World(WriteWorld);

impl std::ops::Deref for World {
    type Target = WriteWorld;
    fn deref(&self) -> &WriteWorld {
        &self.0
    }
}

impl World {
    fn start(db: Database) -> World {
        add_tables(&db);
        let cfg = config(&db);
        World(WriteWorld::start(db, &cfg, None))
    }

    fn approve(&self, id: &str) {
        let out = self.0.approve(id);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    /// Propose, approve and apply; the proposal id.
    fn applied(&self, capability: &str, args: Value) -> String {
        let id = self.propose(capability, args);
        self.approve(&id);
        let (code, out) = self.apply(&id);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out["writeback"]["status"], "applied", "{out}");
        id
    }

    /// `airlock revert ID --reason R --json`: (exit code, answer).
    fn revert(&self, id: &str, reason: &str) -> (Option<i32>, Value) {
        let out = self.cli(&["revert", id, "--reason", reason, "--json"]);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        )
    }

    /// Revert and expect a new pending proposal; its id.
    fn reverted(&self, id: &str, reason: &str) -> String {
        let (code, out) = self.revert(id, reason);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out["proposal"]["state"], "pending_approval", "{out}");
        out["proposal"]["proposal_id"].as_str().unwrap().to_owned()
    }

    fn show(&self, id: &str) -> Value {
        json_out(&self.cli(&["proposals", "show", id, "--json"]))["proposal"].clone()
    }

    /// credit, note, touched_at is set, version of an account.
    fn account(&self, id: &str) -> (String, Option<String>, bool, String) {
        let t = self.text();
        let rows = query_strings(
            &self.db,
            &format!(
                "SELECT CAST(credit_cents AS {t}), note, CAST(touched_at AS {t}), CAST(version AS {t}) FROM accounts WHERE id = '{id}'"
            ),
        );
        let r = &rows[0];
        (
            r[0].clone().unwrap(),
            r[1].clone(),
            r[2].is_some(),
            r[3].clone().unwrap(),
        )
    }

    fn note_ids(&self) -> Vec<String> {
        query_strings(
            &self.db,
            "SELECT request_id FROM credit_notes ORDER BY request_id",
        )
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
    }
}

fn round_trip(db: Database) {
    let w = World::start(db);

    // UPDATE: applied, with the inverse captured in its receipt.
    let fwd = w.applied(
        ACCOUNT,
        json!({"account_id": "A-1", "credit_cents": 400, "note": "goodwill"}),
    );
    assert_eq!(
        w.account("A-1"),
        ("400".into(), Some("goodwill".into()), true, "2".into())
    );
    let replay = json_out(&w.cli(&["replay", "show", &fwd, "--json"]));
    let receipts = replay.to_string();
    assert!(
        receipts.contains("\"availability\":\"available\""),
        "{replay}"
    );

    // The revert is a new pending proposal; nothing is written.
    let rev = w.reverted(&fwd, "credited the wrong account");
    assert_eq!(
        w.account("A-1"),
        ("400".into(), Some("goodwill".into()), true, "2".into())
    );
    let shown = w.show(&rev);
    let comp = &shown["change_set"]["compensation"];
    assert_eq!(comp["reverts_proposal_id"], fwd.as_str(), "{shown}");
    assert_eq!(comp["depth"], 1, "{shown}");
    assert_eq!(comp["reason"], "credited the wrong account", "{shown}");
    assert_eq!(
        shown["change_set"]["patch"],
        json!({"credit_cents": 100, "note": "start", "touched_at": null}),
        "{shown}"
    );
    assert_eq!(
        shown["change_set"]["guards"]["expected_version"]["value"], 2,
        "{shown}"
    );
    assert_eq!(
        shown["summary"]["required_role"], "billing_lead",
        "the forward's role"
    );
    assert_eq!(
        w.show(&fwd)["compensated_by"],
        json!([rev]),
        "the link both ways"
    );
    let human = w.cli(&["proposals", "show", &rev]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains(&format!("reverts:    {fwd}")),
        "{}",
        text(&human)
    );

    // Recorded like any proposal: its `proposal_recorded` event (what
    // notifications announce as `proposal.created`), by the operator.
    let events = w.cli(&["events", "tail", "--json"]);
    let recorded = String::from_utf8_lossy(&events.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| e["kind"] == "proposal_recorded" && e["proposal_id"] == rev.as_str());
    assert!(recorded, "{}", text(&events));
    assert_eq!(
        shown["proposed_by"]["uid"], 0,
        "the operator's uid: {shown}"
    );

    // One live compensation per change.
    let (code, dup) = w.revert(&fwd, "again");
    assert_eq!(code, Some(1), "{dup}");
    assert_eq!(dup["error"]["code"], "invalid_state", "{dup}");
    assert!(
        dup["error"]["message"].as_str().unwrap().contains(&rev),
        "{dup}"
    );

    // Approved and applied like any proposal: prior values, version 3.
    w.approve(&rev);
    let (code, out) = w.apply(&rev);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(out["writeback"]["receipt"]["new_version"], 3, "{out}");
    assert_eq!(
        w.account("A-1"),
        ("100".into(), Some("start".into()), false, "3".into())
    );
    let (_, again) = w.apply(&rev);
    assert_eq!(again["writeback"]["status"], "already_applied", "{again}");

    // A revert of the revert: the forward values again, version 4.
    let rev2 = w.reverted(&rev, "the first account was right after all");
    let shown = w.show(&rev2);
    assert_eq!(shown["change_set"]["compensation"]["depth"], 2, "{shown}");
    assert_eq!(
        shown["change_set"]["compensation"]["root_proposal_id"],
        fwd.as_str(),
        "{shown}"
    );
    w.approve(&rev2);
    assert_eq!(w.apply(&rev2).1["writeback"]["status"], "applied");
    assert_eq!(
        w.account("A-1"),
        ("400".into(), Some("goodwill".into()), true, "4".into())
    );

    // A row changed after the forward write: the revert's apply is a
    // terminal conflict and nothing changes.
    let fwd = w.applied(
        ACCOUNT,
        json!({"account_id": "A-2", "credit_cents": 700, "note": "promo"}),
    );
    let rev = w.reverted(&fwd, "promo withdrawn");
    w.approve(&rev);
    execute(
        &w.db,
        "UPDATE accounts SET credit_cents = 999 WHERE id = 'A-2'",
    );
    let (code, out) = w.apply(&rev);
    assert_eq!(code, Some(4), "{out}");
    assert_eq!(out["writeback"]["status"], "conflict", "{out}");
    assert_eq!(
        w.account("A-2"),
        ("999".into(), Some("promo".into()), true, "2".into())
    );
    assert_eq!(w.show(&rev)["summary"]["state"], "conflict");
    let (_, out) = w.apply(&rev);
    assert_ne!(out["writeback"]["status"], "applied", "terminal: {out}");
    assert_eq!(w.account("A-2").0, "999");

    // INSERT: the revert deletes exactly the inserted row.
    let n1 = w.applied(NOTE, json!({"customer_id": "CUS-1", "amount_cents": 1200}));
    let n2 = w.applied(NOTE, json!({"customer_id": "CUS-1", "amount_cents": 1200}));
    let mut both = vec![n1.clone(), n2.clone()];
    both.sort();
    assert_eq!(w.note_ids(), both);
    let rev = w.reverted(&n1, "duplicate credit note");
    let shown = w.show(&rev);
    assert_eq!(shown["change_set"]["operation"], "delete", "{shown}");
    assert_eq!(w.note_ids(), both, "recording the revert deletes nothing");
    w.approve(&rev);
    let (code, out) = w.apply(&rev);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(
        w.note_ids(),
        vec![n2.clone()],
        "only the reverted insert's row is gone"
    );
    // Its own revert would re-insert: unavailable, said so.
    let (code, out) = w.revert(&rev, "undo");
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(out["error"]["code"], "policy_violation", "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{out}"
    );

    // An inserted row changed since: the revert conflicts, the row stays.
    let rev = w.reverted(&n2, "not needed");
    w.approve(&rev);
    execute(
        &w.db,
        &format!("UPDATE credit_notes SET amount_cents = 1 WHERE request_id = '{n2}'"),
    );
    let (code, out) = w.apply(&rev);
    assert_eq!(code, Some(4), "{out}");
    assert_eq!(out["writeback"]["status"], "conflict", "{out}");
    assert_eq!(w.note_ids(), vec![n2]);

    w.verify_ledger();
    assert!(
        w.exec.log().contains("revert recorded"),
        "the executor logs reverts"
    );
}

#[test]
fn postgres_update_and_insert_reverts() {
    round_trip(postgres_reference("airlock_revert"));
}

#[test]
fn mariadb_update_and_insert_reverts() {
    round_trip(mysql_reference("airlock_revert"));
}

#[test]
fn sqlite_update_and_insert_reverts() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(sqlite_reference(dir.path(), "revert"));
}

// ---------------------------------------------------------------------------
// Refusals, each with a clear message and nothing recorded or written.

#[test]
fn reverts_that_cannot_be_made_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(sqlite_reference(dir.path(), "revert_refusals"));
    let fwd = w.applied(
        ACCOUNT,
        json!({"account_id": "A-1", "credit_cents": 400, "note": "goodwill"}),
    );
    let listed = |w: &World| {
        json_out(&w.cli(&["proposals", "list", "--json"]))["proposals"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = listed(&w);

    let long = "x".repeat(2001);
    let unknown = "wrp_00000000000000000000".to_owned();
    let cases: Vec<RefusalCase> = vec![
        (
            "empty reason",
            &fwd,
            "",
            Some(1),
            "invalid_request",
            "needs a reason",
        ),
        (
            "blank reason",
            &fwd,
            "   ",
            Some(1),
            "invalid_request",
            "needs a reason",
        ),
        (
            "reason too long",
            &fwd,
            &long,
            Some(1),
            "invalid_request",
            "at most 2000",
        ),
        (
            "unknown proposal",
            &unknown,
            "r",
            Some(1),
            "not_found",
            "no proposal",
        ),
    ];
    for (what, id, reason, code, err, says) in cases {
        let (got, out) = w.revert(id, reason);
        assert_eq!(got, code, "{what}: {out}");
        assert_eq!(out["error"]["code"], err, "{what}: {out}");
        assert!(
            out["error"]["message"].as_str().unwrap().contains(says),
            "{what}: {out}"
        );
    }

    // Not applied: pending, then approved but not applied.
    let pending = w.propose(
        ACCOUNT,
        json!({"account_id": "A-2", "credit_cents": 1, "note": "n"}),
    );
    let (code, out) = w.revert(&pending, "r");
    assert_eq!(
        (code, out["error"]["code"].as_str()),
        (Some(1), Some("invalid_state")),
        "{out}"
    );
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only an applied change"),
        "{out}"
    );

    // Not reversible: the reference waiver.
    let waived = w.applied(
        WAIVER,
        json!({"invoice_id": "INV-3001", "reason": "customer asked"}),
    );
    let (code, out) = w.revert(&waived, "r");
    assert_eq!(
        (code, out["error"]["code"].as_str()),
        (Some(3), Some("policy_violation")),
        "{out}"
    );
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not reversible"),
        "{out}"
    );

    // A hard DELETE.
    let deleted = w.applied(DRAFT, json!({"draft_id": "D-1"}));
    let (code, out) = w.revert(&deleted, "r");
    assert_eq!(
        (code, out["error"]["code"].as_str()),
        (Some(3), Some("policy_violation")),
        "{out}"
    );
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable: a hard DELETE cannot be restored"),
        "{out}"
    );

    // Someone else's change: `nobody` holds only orders_lead, and this
    // change's capability needs billing_lead — to revert as to approve.
    let out = w
        .exec
        .cli_as("nobody", &["revert", &fwd, "--reason", "r", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "role_required");

    // Three proposals more (the pending one and the two applied), no revert.
    assert_eq!(listed(&w), before + 3);
    assert!(w.show(&fwd)["compensated_by"].is_null());
    assert_eq!(w.account("A-1").0, "400");
    w.verify_ledger();
}

/// Load-time refusals: a reversible DELETE, handler and row-hash update,
/// and an unknown mode, each with its path and fix.
#[test]
fn a_config_cannot_declare_an_inverse_airlock_cannot_capture() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "revert_config");
    let base = config(&db);
    let cases: Vec<(&str, ConfigEdit, &str)> = vec![
        (
            "delete",
            Box::new(|v: &mut Value| {
                cap(v, DRAFT)["reversibility"] = json!({"mode": "reviewed_inverse"})
            }),
            "unavailable: a hard DELETE cannot be restored",
        ),
        (
            "mode",
            Box::new(|v: &mut Value| {
                cap(v, ACCOUNT)["reversibility"] = json!({"mode": "rollback"})
            }),
            "unknown reversibility mode `rollback`",
        ),
        (
            "row hash",
            Box::new(|v: &mut Value| {
                let c = cap(v, ACCOUNT);
                c["conflict_guard"] = json!({"weak_guard_ack": true});
                c["operation"] = json!({"kind": "update"});
            }),
            "a reversible update needs an exact version column",
        ),
        (
            "handler",
            Box::new(|v: &mut Value| {
                v["executors"] = json!({"billing_app": {"type": "command_handler", "command_env": "BILLING_COMMAND"}});
                let c = cap(v, ACCOUNT);
                c["executor"] = json!("billing_app");
                c["operation"] = json!({"kind": "update"});
            }),
            "unavailable: an app-owned handler's effects cannot be inverted",
        ),
    ];
    for (what, edit, says) in cases {
        let mut v = base.clone();
        edit(&mut v);
        let path = dir.path().join(format!("{}.json", what.replace(' ', "_")));
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let out =
            airlock_tests::airlock(&["config", "validate", "--config", path.to_str().unwrap()]);
        assert_ne!(out.status.code(), Some(0), "{what}: {}", text(&out));
        let all = text(&out);
        assert!(all.contains(says), "{what}: {all}");
        assert!(
            all.contains("reversibility") || all.contains("conflict_guard"),
            "{what}: the path: {all}"
        );
    }
    // The suite's own config loads.
    let path = dir.path().join("ok.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&base).unwrap()).unwrap();
    let out = airlock_tests::airlock(&["config", "validate", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// (what, proposal id, reason, exit code, error code, message fragment).
type RefusalCase<'a> = (&'a str, &'a String, &'a str, Option<i32>, &'a str, &'a str);

/// An edit of the suite's config.
type ConfigEdit = Box<dyn Fn(&mut Value)>;

fn cap<'a>(v: &'a mut Value, name: &str) -> &'a mut Value {
    v["capabilities"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == name)
        .unwrap()
}

// ---------------------------------------------------------------------------
// Rogue attempts through the raw sockets: each refused, nothing recorded or
// written, and the executor keeps serving.

#[test]
fn rogue_reverts_are_refused_and_the_executor_keeps_serving() {
    // On PostgreSQL: `honest_proposal` records the Postgres statement.
    let w = World::start(postgres_reference("airlock_revert_rogue"));
    let cfg = load(&config(&w.db));
    let fwd = w.applied(
        ACCOUNT,
        json!({"account_id": "A-1", "credit_cents": 400, "note": "goodwill"}),
    );
    let count = |w: &World| {
        json_out(&w.cli(&["proposals", "list", "--json"]))["proposals"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = count(&w);
    let forged = |inner: &ChangeSet| {
        let mut cs = inner.clone();
        cs.compensation = Some(Compensation {
            reverts_proposal_id: fwd.clone(),
            root_proposal_id: fwd.clone(),
            depth: 1,
            forward_operation: OperationKind::Update,
            forward_receipt_hash: None,
            reason: "forged".into(),
        });
        cs
    };

    let outcomes: Vec<(&str, String, &str)> = rt().block_on(async {
        let mut out = Vec::new();
        // 1. A proposer connection asks for a revert: forbidden.
        let mut p = w.exec.client(Role::Proposer).await;
        let got = refusal(
            p.call(Request::Revert(Revert {
                proposal_id: fwd.clone(),
                reason: "r".into(),
            }))
            .await,
        );
        out.push(("proposer sends revert", got, "forbidden"));

        // 2. A proposer submits a compensation change set it forged (an
        //    honest waiver with a `compensation` attached).
        let mut p = w.exec.client(Role::Proposer).await;
        let honest = honest_proposal(&mut p, &cfg, "honest").await;
        let got = refusal(submit(&mut p, forged(&honest.change_set), None).await);
        out.push((
            "proposer submits a forged compensation",
            got,
            "policy_violation",
        ));

        // 3. A forged inverse shaped like an insert's revert (a delete by
        //    identity of another tenant's row).
        let mut cs = forged(&waiver(&cfg, "INV-3001", "acme", "x"));
        cs.operation = OperationKind::Delete;
        cs.patch.clear();
        cs.after.clear();
        if let Some(c) = cs.compensation.as_mut() {
            c.forward_operation = OperationKind::Insert;
        }
        let got = refusal(submit(&mut p, cs, None).await);
        out.push((
            "proposer submits a forged delete-by-identity",
            got,
            "policy_violation",
        ));

        // 4. An operator names `latest` (which could change under them).
        let mut o = w.exec.client(Role::Operator).await;
        let got = refusal(
            o.call(Request::Revert(Revert {
                proposal_id: "latest".into(),
                reason: "r".into(),
            }))
            .await,
        );
        out.push(("operator reverts `latest`", got, "invalid_request"));

        // 5. A reason with terminal control characters.
        let got = refusal(
            o.call(Request::Revert(Revert {
                proposal_id: fwd.clone(),
                reason: "ok\u{1b}[2J".into(),
            }))
            .await,
        );
        out.push(("reason with control characters", got, "invalid_request"));

        // 6. Reverting a pending proposal (the honest waiver).
        let got = refusal(
            o.call(Request::Revert(Revert {
                proposal_id: honest.proposal_id.clone(),
                reason: "r".into(),
            }))
            .await,
        );
        out.push(("revert of a pending proposal", got, "invalid_state"));

        // 7. Two reverts of one change racing: exactly one is recorded.
        let mut o2 = w.exec.client(Role::Operator).await;
        let (a, b) = tokio::join!(
            o.call(Request::Revert(Revert {
                proposal_id: fwd.clone(),
                reason: "one".into()
            })),
            o2.call(Request::Revert(Revert {
                proposal_id: fwd.clone(),
                reason: "two".into()
            })),
        );
        let (ok, refused) = match (a, b) {
            (Ok(_), r @ Err(_)) | (r @ Err(_), Ok(_)) => (true, refusal(r)),
            (a, b) => panic!("exactly one of two racing reverts is recorded: {a:?} {b:?}"),
        };
        assert!(ok);
        out.push(("two racing reverts", refused, "invalid_state"));
        out
    });
    // 8. A `revert` frame with a smuggled change set: strict decoding.
    let smuggled = {
        use airlock_ipc::frame::{read_frame, write_frame};
        rt().block_on(async {
            let mut s = tokio::net::UnixStream::connect(w.exec.operator_socket()).await.unwrap();
            let hello = json!({"id": 0, "type": "hello", "body": {"protocol": airlock_ipc::PROTOCOL, "role": "operator", "client_version": "rogue"}});
            write_frame(&mut s, hello.to_string().as_bytes()).await.unwrap();
            read_frame(&mut s).await.unwrap().unwrap();
            let frame = json!({"id": 1, "type": "revert", "body": {"proposal_id": fwd, "reason": "r", "change_set": {"patch": {"credit_cents": 5000}}}});
            write_frame(&mut s, frame.to_string().as_bytes()).await.unwrap();
            let answer: Value = serde_json::from_slice(&read_frame(&mut s).await.unwrap().unwrap()).unwrap();
            answer["body"]["code"].as_str().unwrap_or_default().to_owned()
        })
    };
    let mut outcomes = outcomes;
    outcomes.push((
        "revert frame with a smuggled change set",
        smuggled,
        "invalid_request",
    ));

    let wrong: Vec<_> = outcomes
        .iter()
        .filter(|(_, got, want)| got != want)
        .collect();
    assert!(
        wrong.is_empty(),
        "refused otherwise than expected: {wrong:#?}"
    );
    assert!(outcomes.len() >= 8);

    // Recorded: the honest waiver and the one racing revert, nothing else;
    // the source is as the forward write left it.
    assert_eq!(count(&w), before + 2);
    assert_eq!(
        w.show(&fwd)["compensated_by"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        w.account("A-1"),
        ("400".into(), Some("goodwill".into()), true, "2".into())
    );
    // The executor keeps serving: an honest proposal is recorded and the
    // recorded revert approves and applies.
    let rev = w.show(&fwd)["compensated_by"][0]
        .as_str()
        .unwrap()
        .to_owned();
    w.approve(&rev);
    assert_eq!(w.apply(&rev).1["writeback"]["status"], "applied");
    assert_eq!(w.account("A-1").0, "100");
    rt().block_on(async {
        let mut p = w.exec.client(Role::Proposer).await;
        let ok = honest_proposal(&mut p, &cfg, "still serving").await;
        assert_eq!(ok.state, ProposalState::PendingApproval);
        let mut o = w.exec.client(Role::Operator).await;
        assert!(
            o.call(Request::ShowProposal(ProposalRef {
                proposal_id: ok.proposal_id
            }))
            .await
            .is_ok()
        );
    });
    w.verify_ledger();
}
