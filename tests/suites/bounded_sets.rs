//! Bounded sets end to end through the real processes on PostgreSQL,
//! MariaDB and SQLite: a set UPDATE chosen by a reviewed fixed selection, a
//! set DELETE, and a set chosen by a reviewed list of keys — proposed over
//! MCP by the real proposer, approved and applied with the real `airlock`
//! CLI, and checked in the database. Then a rogue proposer aimed at sets
//! (widened, narrowed, swapped, reordered, re-valued members, each attempt
//! re-sealed so its digest and totals are consistent), and kill -9 at every
//! step of a set's apply.

use airlock_ipc::Role;
use airlock_ipc::message::{ParamMeta, ProposalState, RecordRead};
use airlock_policy::change_set::ChangeSet;
use airlock_policy::config::{Engine, OperationKind};
use airlock_policy::statement::{LookupParam, read_statement};
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, query_strings, reference_config_for,
    sqlite_reference,
};
use airlock_tests::proposals::{context, load, record, refusal, submit};
use airlock_tests::runtime as rt;
use airlock_tests::write_world::{WriteWorld, schema_of};
use serde_json::{Map, Value, json};

const CLOSE: &str = "tickets.close_overdue";
const PURGE: &str = "sessions.purge_stale";
const REOPEN: &str = "tickets.reopen_listed";
const TIGHT: &str = "tickets.close_overdue_tight";
const CHEAP: &str = "tickets.close_overdue_cheap";
const HUNDRED: &str = "tickets.send_queued";

fn add_tables(db: &Database) {
    let stmts: Vec<String> = match db.engine {
        Engine::Postgres => vec![
            "CREATE TABLE public.tickets (id text PRIMARY KEY, tenant_id text NOT NULL, status text NOT NULL, cost_cents integer NOT NULL, close_reason text, version integer NOT NULL)".into(),
            "CREATE TABLE public.sessions (id text PRIMARY KEY, tenant_id text NOT NULL, state text NOT NULL, size integer NOT NULL, version integer NOT NULL)".into(),
            "GRANT SELECT ON public.tickets, public.sessions TO synapsor_reader".into(),
            "GRANT SELECT, UPDATE ON public.tickets TO synapsor_writer".into(),
            "GRANT SELECT, DELETE ON public.sessions TO synapsor_writer".into(),
        ],
        Engine::Mysql => {
            let mut v: Vec<String> = vec![
                "CREATE TABLE tickets (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, status VARCHAR(32) NOT NULL, cost_cents INT NOT NULL, close_reason VARCHAR(200) NULL, version INT NOT NULL) ENGINE=InnoDB".into(),
                "CREATE TABLE sessions (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, state VARCHAR(32) NOT NULL, size INT NOT NULL, version INT NOT NULL) ENGINE=InnoDB".into(),
            ];
            for host in ["localhost", "127.0.0.1", "%"] {
                let w = format!("'airlock_writer'@'{host}'");
                let n = &db.name;
                v.push(format!("GRANT UPDATE ON `{n}`.tickets TO {w}"));
                v.push(format!("GRANT DELETE, TRIGGER ON `{n}`.sessions TO {w}"));
                v.push(format!("GRANT PROCESS ON *.* TO {w}"));
            }
            v
        }
        Engine::Sqlite => vec![
            "CREATE TABLE tickets (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, status TEXT NOT NULL, cost_cents INTEGER NOT NULL, close_reason TEXT, version INTEGER NOT NULL)".into(),
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, state TEXT NOT NULL, size INTEGER NOT NULL, version INTEGER NOT NULL)".into(),
        ],
    };
    let rows = [
        // 8000 + 15000 + 2000 + 5000 = 30000 overdue for acme.
        "INSERT INTO tickets (id, tenant_id, status, cost_cents, close_reason, version) VALUES ('T-01', 'acme', 'overdue', 8000, NULL, 1), ('T-02', 'acme', 'overdue', 15000, NULL, 1), ('T-03', 'acme', 'overdue', 2000, NULL, 1), ('T-04', 'acme', 'overdue', 5000, NULL, 1), ('T-05', 'acme', 'closed', 100, NULL, 1), ('T-06', 'acme', 'OVERDUE', 100, NULL, 1), ('T-99', 'globex', 'overdue', 49000, NULL, 1)",
        "INSERT INTO sessions (id, tenant_id, state, size, version) VALUES ('S-1', 'acme', 'stale', 10, 1), ('S-2', 'acme', 'stale', 20, 1), ('S-3', 'acme', 'stale', 30, 1), ('S-4', 'acme', 'live', 40, 1), ('S-9', 'globex', 'stale', 50, 1)",
    ];
    for sql in stmts.iter().map(String::as_str).chain(rows) {
        execute(db, sql);
    }
}

/// A set UPDATE of `tickets` with `selection`, `max_rows` and a cap on
/// the total cost before.
fn close_cap(s: &str, name: &str, selection: Value, max_rows: u32, max_cost: u32) -> Value {
    json!({
        "name": name,
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": {"schema": s, "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {"reason": {"type": "string", "required": true, "max_length": 200}},
        "visible_columns": ["id", "tenant_id", "status", "cost_cents", "close_reason", "version"],
        "evidence": "required",
        "max_rows": 1,
        "patch": {"status": {"fixed": "closed"}, "close_reason": {"from_arg": "reason"}},
        "allowed_columns": ["status", "close_reason"],
        "conflict_guard": {"column": "version"},
        "operation": {
            "kind": "update",
            "cardinality": "set",
            "selection": selection,
            "max_rows": max_rows,
            "aggregate_bounds": [{"column": "cost_cents", "measure": "before", "maximum": max_cost}],
            "version_advance": {"column": "version", "strategy": "integer_increment"}
        },
        "approval": {"mode": "human", "required_role": "billing_lead"}
    })
}

fn config(db: &Database) -> Value {
    let mut v = reference_config_for(db);
    let s = schema_of(db);
    let overdue = json!({"all": [{"column": "status", "operator": "eq", "value": "overdue"}]});
    let caps = v["capabilities"].as_array_mut().unwrap();
    let mut close = close_cap(&s, CLOSE, overdue.clone(), 10, 50000);
    close["reversibility"] = json!({"mode": "reviewed_inverse"});
    caps.push(close);
    caps.push(close_cap(&s, TIGHT, overdue.clone(), 3, 50000));
    caps.push(close_cap(&s, CHEAP, overdue, 10, 10000));
    let mut reopen = close_cap(
        &s,
        REOPEN,
        json!({"all": [{"column": "status", "operator": "eq", "value": "closed"}], "keys": ["T-01", "T-03", "T-77"]}),
        5,
        50000,
    );
    reopen["patch"] =
        json!({"status": {"fixed": "reopened"}, "close_reason": {"from_arg": "reason"}});
    caps.push(reopen);
    let mut hundred = close_cap(
        &s,
        HUNDRED,
        json!({"all": [{"column": "status", "operator": "eq", "value": "queued"}]}),
        100,
        1_000_000,
    );
    hundred["patch"] = json!({"status": {"fixed": "sent"}, "close_reason": {"from_arg": "reason"}});
    caps.push(hundred);
    caps.push(json!({
        "name": PURGE,
        "kind": "proposal",
        "source": "app",
        "context": "local_operator",
        "target": {"schema": s, "table": "sessions", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {"why": {"type": "string", "required": false, "max_length": 100}},
        "visible_columns": ["id", "tenant_id", "state", "size", "version"],
        "evidence": "required",
        "max_rows": 1,
        "conflict_guard": {"column": "version"},
        "operation": {
            "kind": "delete",
            "cardinality": "set",
            "selection": {"all": [{"column": "state", "operator": "eq", "value": "stale"}]},
            "max_rows": 10,
            "aggregate_bounds": [{"column": "size", "measure": "before", "maximum": 100}]
        },
        "approval": {"mode": "human", "required_role": "billing_lead"}
    }));
    v
}

/// The shared world, with this suite's tables and config.
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
    fn start(db: Database, fault: Option<&str>) -> World {
        add_tables(&db);
        let cfg = config(&db);
        World(WriteWorld::start(db, &cfg, fault))
    }

    /// `id, status, version` of every ticket, in key order.
    fn tickets(&self) -> Vec<(String, String, String)> {
        let t = self.text();
        query_strings(
            &self.db,
            &format!("SELECT id, status, CAST(version AS {t}) FROM tickets ORDER BY id"),
        )
        .into_iter()
        .map(|r| {
            let s = |i: usize| r[i].clone().unwrap_or_default();
            (s(0), s(1), s(2))
        })
        .collect()
    }

    fn sessions(&self) -> Vec<String> {
        query_strings(&self.db, "SELECT id FROM sessions ORDER BY id")
            .into_iter()
            .map(|r| r[0].clone().unwrap_or_default())
            .collect()
    }
}

fn ticket(id: &str, status: &str, version: u32) -> (String, String, String) {
    (id.into(), status.into(), version.to_string())
}

fn bounded_sets(db: Database) {
    let w = World::start(db, None);
    let initial = w.tickets();

    // Over the row cap, or over the aggregate bound: refused, nothing recorded.
    let tight = w.call(TIGHT, json!({"reason": "cap"}));
    assert_eq!(tight["error"]["airlock_code"], "policy_refused", "{tight}");
    let msg = tight["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("more than 3 rows"), "{tight}");
    let cheap = w.call(CHEAP, json!({"reason": "cap"}));
    assert_eq!(cheap["error"]["airlock_code"], "policy_refused", "{cheap}");
    let msg = cheap["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("30000") && msg.contains("10000"), "{cheap}");

    // The set is frozen when proposed: the four overdue acme tickets, in key
    // order (not T-06, whose status is `OVERDUE`, nor globex's T-99).
    let id = w.propose(CLOSE, json!({"reason": "quarter close"}));
    let shown = w.show(&id);
    let set = &shown["proposal"]["change_set"]["set"];
    assert_eq!(set["row_count"], 4, "{shown}");
    let keys: Vec<&str> = set["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["primary_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["T-01", "T-02", "T-03", "T-04"], "{shown}");
    assert_eq!(set["aggregate_bounds"][0]["actual"], 30000, "{shown}");
    assert!(set["set_digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(w.tickets(), initial, "proposing changes nothing");
    // What a reviewer reads: each member's change and the totals.
    let text = w.cli(&["proposals", "show", &id]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Bounded set: 4 rows of at most 10"), "{text}");
    assert!(
        text.contains("total before of cost_cents: 30000 (at most 50000)"),
        "{text}"
    );
    assert!(
        text.contains("T-02.status") && text.contains("\"overdue\" → \"closed\""),
        "{text}"
    );

    // A member changed before approval: the approval is refused and the
    // proposal ends in conflict (freshness-bound approval, per member).
    execute(&w.db, "UPDATE tickets SET version = 7 WHERE id = 'T-02'");
    let refused = w.approve(&id);
    assert_ne!(
        refused.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    let shown = w.show(&id);
    assert_eq!(shown["proposal"]["summary"]["state"], "conflict", "{shown}");
    assert!(
        shown["proposal"]["summary"]["object_id"]
            .as_str()
            .is_some_and(|o| o.starts_with("set_")),
        "{shown}"
    );

    // A member changed after approval: the whole set is a conflict at
    // apply, and no member is changed.
    let id = w.propose(CLOSE, json!({"reason": "quarter close"}));
    assert_eq!(w.approve(&id).status.code(), Some(0));
    execute(
        &w.db,
        "UPDATE tickets SET cost_cents = 2001 WHERE id = 'T-03'",
    );
    let (_, out) = w.apply(&id);
    assert_eq!(out["writeback"]["status"], "conflict", "{out}");
    assert_eq!(
        out["writeback"]["receipt"]["safe_error_code"], "SET_DRIFT_CONFLICT",
        "{out}"
    );
    assert!(
        w.tickets()
            .iter()
            .filter(|t| t.0 != "T-99" && t.0 != "T-05" && t.0 != "T-06")
            .all(|t| t.1 == "overdue"),
        "no member changed: {:?}",
        w.tickets()
    );

    // Applied: every member once, in one transaction, with one receipt.
    let id = w.propose(CLOSE, json!({"reason": "quarter close"}));
    assert_eq!(w.approve(&id).status.code(), Some(0));
    let (code, out) = w.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["status"], "applied", "{out}");
    assert_eq!(out["writeback"]["receipt"]["rows_affected"], 4, "{out}");
    assert_eq!(
        w.tickets(),
        vec![
            ticket("T-01", "closed", 2),
            ticket("T-02", "closed", 8),
            ticket("T-03", "closed", 2),
            ticket("T-04", "closed", 2),
            ticket("T-05", "closed", 1),
            ticket("T-06", "OVERDUE", 1),
            ticket("T-99", "overdue", 1),
        ]
    );
    let reasons = query_strings(
        &w.db,
        "SELECT close_reason FROM tickets WHERE status = 'closed' AND id <> 'T-05'",
    );
    assert!(
        reasons
            .iter()
            .all(|r| r[0].as_deref() == Some("quarter close"))
    );
    let (code, again) = w.apply(&id);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again["writeback"]["status"], "already_applied", "{again}");
    let receipts = query_strings(
        &w.db,
        &format!("SELECT status FROM synapsor_writeback_receipts WHERE proposal_id = '{id}'"),
    );
    assert_eq!(receipts.len(), 1, "one receipt for the set");

    // Reviewed compensation: the whole set back, as its own proposal.
    let out = w.cli(&["revert", &id, "--reason", "closed by mistake", "--json"]);
    let out: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out["proposal"]["state"], "pending_approval", "{out}");
    let back = out["proposal"]["proposal_id"].as_str().unwrap().to_owned();
    assert_eq!(
        w.tickets()[0],
        ticket("T-01", "closed", 2),
        "a revert writes nothing"
    );
    assert_eq!(w.approve(&back).status.code(), Some(0));
    let (code, out) = w.apply(&back);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["receipt"]["rows_affected"], 4, "{out}");
    let t = w.tickets();
    assert_eq!(t[0], ticket("T-01", "overdue", 3));
    assert_eq!(t[1], ticket("T-02", "overdue", 9));
    assert_eq!(t[3], ticket("T-04", "overdue", 3));
    assert!(
        query_strings(&w.db, "SELECT close_reason FROM tickets WHERE id = 'T-01'")[0][0].is_none(),
        "the prior close_reason (NULL) is restored"
    );
    // And the forward set again, so the rest of the story starts closed.
    let again = w.cli(&["revert", &back, "--reason", "it was right", "--json"]);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap_or(Value::Null);
    let again = again["proposal"]["proposal_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.approve(&again).status.code(), Some(0));
    assert_eq!(w.apply(&again).1["writeback"]["status"], "applied");
    assert_eq!(w.tickets()[0], ticket("T-01", "closed", 4));

    // A reviewed list of keys (T-77 does not exist) with a fixed term.
    let id = w.propose(REOPEN, json!({"reason": "customer called"}));
    let shown = w.show(&id);
    assert_eq!(
        shown["proposal"]["change_set"]["set"]["row_count"], 2,
        "{shown}"
    );
    assert_eq!(w.approve(&id).status.code(), Some(0));
    assert_eq!(w.apply(&id).1["writeback"]["status"], "applied");
    let t = w.tickets();
    assert_eq!(t[0], ticket("T-01", "reopened", 5));
    assert_eq!(t[1], ticket("T-02", "closed", 10));
    assert_eq!(t[2], ticket("T-03", "reopened", 5));

    // A set DELETE: the three stale acme sessions, nothing else.
    let id = w.propose(PURGE, json!({}));
    assert_eq!(w.sessions().len(), 5);
    assert_eq!(w.approve(&id).status.code(), Some(0));
    let (code, out) = w.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["receipt"]["rows_affected"], 3, "{out}");
    assert_eq!(w.sessions(), ["S-4", "S-9"]);
    assert_eq!(w.apply(&id).1["writeback"]["status"], "already_applied");
    // Nothing stale is left for acme: an empty set is refused.
    let empty = w.call(PURGE, json!({}));
    assert_eq!(empty["error"]["airlock_code"], "policy_refused", "{empty}");

    w.verify_ledger();
}

#[test]
fn postgres_bounded_sets() {
    bounded_sets(postgres_reference("airlock_bounded_sets"));
}

#[test]
fn mariadb_bounded_sets() {
    bounded_sets(mysql_reference("airlock_bounded_sets"));
}

#[test]
fn sqlite_bounded_sets() {
    let dir = tempfile::tempdir().unwrap();
    bounded_sets(sqlite_reference(dir.path(), "bounded_sets"));
}

/// The largest set a config may allow: 100 members, each with a reason of
/// 200 characters, is proposed (the intake allows a set its members'
/// worth of bytes), applied once, and exactly those rows change.
#[test]
fn a_hundred_row_set_is_proposed_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(sqlite_reference(dir.path(), "bounded_sets_hundred"), None);
    execute(
        &w.db,
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 100) INSERT INTO tickets (id, tenant_id, status, cost_cents, close_reason, version) SELECT 'Q-' || printf('%03d', x), 'acme', 'queued', 10, NULL, 1 FROM g",
    );
    let reason = "r".repeat(200);
    let id = w.propose(HUNDRED, json!({"reason": reason}));
    let shown = w.show(&id);
    let bytes = shown["proposal"]["change_set"].to_string().len();
    assert!(bytes > 16 * 1024, "over one row's allowance: {bytes}");
    assert_eq!(shown["proposal"]["change_set"]["set"]["row_count"], 100);
    assert_eq!(w.approve(&id).status.code(), Some(0));
    let (code, out) = w.apply(&id);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["writeback"]["receipt"]["rows_affected"], 100, "{out}");
    let sent = query_strings(
        &w.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM tickets WHERE status = 'sent' AND version = 2",
    );
    assert_eq!(sent[0][0].as_deref(), Some("100"));
    // A 101st queued row makes the next set refused, never cut short.
    execute(
        &w.db,
        "INSERT INTO tickets (id, tenant_id, status, cost_cents, close_reason, version) SELECT 'Q-1' || printf('%02d', x), 'acme', 'queued', 10, NULL, 1 FROM (WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 101) SELECT x FROM g)",
    );
    let over = w.call(HUNDRED, json!({"reason": "again"}));
    assert_eq!(over["error"]["airlock_code"], "policy_refused", "{over}");
    assert!(
        over["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("more than 100 rows")
    );
}

// ---------------------------------------------------------------------------
// A rogue proposer aimed at sets. Each attempt alters an honest set change
// set; most then re-seal it (recompute the members' after-values, the
// totals and the digest with the policy's own builder), as a careful
// attacker would, so the executor must catch the lie against the source.

type Tamper = fn(&mut ChangeSet);
type Attempts = Vec<(&'static str, &'static str, Tamper)>;
/// A capability, its arguments, the rows its selection matches, the attempts.
type Group<'a> = (&'a str, Value, Vec<Map<String, Value>>, &'a Attempts);

fn read(
    cfg: &airlock_policy::Config,
    capability: &str,
    args: &Value,
    rows: Vec<Map<String, Value>>,
) -> RecordRead {
    let cap = cfg.capability(capability).unwrap();
    let st = read_statement(Engine::Sqlite, cap);
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
            json_type: "string".into(),
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

fn tickets_rows() -> Vec<Map<String, Value>> {
    [("T-01", 8000), ("T-02", 15000), ("T-03", 2000), ("T-04", 5000)]
        .iter()
        .map(|(id, cost)| {
            row(json!({"id": id, "tenant_id": "acme", "status": "overdue", "cost_cents": cost, "close_reason": null, "version": 1}))
        })
        .collect()
}

fn sessions_rows() -> Vec<Map<String, Value>> {
    [("S-1", 10), ("S-2", 20), ("S-3", 30)]
        .iter()
        .map(|(id, size)| {
            row(json!({"id": id, "tenant_id": "acme", "state": "stale", "size": size, "version": 1}))
        })
        .collect()
}

/// Rebuild `cs` from its (altered) members' before-values with the
/// policy's builder: consistent after-values, totals and digest.
fn reseal(cs: &mut ChangeSet) {
    let cfg = RESEAL_CFG.with(|c| c.borrow().clone()).expect("config set");
    let cap = cfg.capability(&cs.capability).unwrap();
    let args =
        airlock_policy::args::validate_args(cap, Some(&Value::Object(cs.args.clone()))).unwrap();
    let rows: Vec<Map<String, Value>> = cs
        .set
        .as_ref()
        .unwrap()
        .members
        .iter()
        .map(|m| {
            let mut r = m.before.clone();
            r.insert("id".into(), m.primary_key.clone());
            r
        })
        .collect();
    let ctx = context(&cs.tenant_id);
    // Build without the policy's own refusals where the attack needs it:
    // fall back to re-digesting by hand.
    match airlock_policy::bounded_set::build(cap, &args, &ctx, &rows) {
        Ok(rebuilt) => *cs = rebuilt,
        Err(_) => {
            let set = cs.set.as_mut().unwrap();
            set.row_count = set.members.len() as u32;
            set.set_digest = airlock_policy::canonical::hash_value(&json!(set.members));
        }
    }
}

thread_local! {
    static RESEAL_CFG: std::cell::RefCell<Option<airlock_policy::Config>> = const { std::cell::RefCell::new(None) };
}

fn member_before(cs: &mut ChangeSet, i: usize) -> &mut Map<String, Value> {
    &mut cs.set.as_mut().unwrap().members[i].before
}

#[test]
fn a_rogue_proposer_cannot_widen_swap_or_rewrite_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(sqlite_reference(dir.path(), "bounded_sets_rogue"), None);
    let cfg = load(&config(&w.db));
    RESEAL_CFG.with(|c| *c.borrow_mut() = Some(cfg.clone()));

    let updates: Attempts = vec![
        (
            "set: widened by a closed row claimed overdue",
            "policy_violation",
            |cs| {
                let set = cs.set.as_mut().unwrap();
                let mut extra = set.members[0].clone();
                extra.primary_key = json!("T-05");
                extra.before.insert("cost_cents".into(), json!(100));
                set.members.push(extra);
                reseal(cs);
            },
        ),
        (
            "set: widened by another tenant's row",
            "policy_violation",
            |cs| {
                let set = cs.set.as_mut().unwrap();
                let mut extra = set.members[0].clone();
                extra.primary_key = json!("T-99");
                extra.before.insert("tenant_id".into(), json!("globex"));
                set.members.push(extra);
                reseal(cs);
            },
        ),
        (
            "set: widened by another tenant's row claimed ours",
            "policy_violation",
            |cs| {
                let set = cs.set.as_mut().unwrap();
                let mut extra = set.members[0].clone();
                extra.primary_key = json!("T-99");
                set.members.push(extra);
                reseal(cs);
            },
        ),
        (
            "set: widened by a row matching only case-insensitively",
            "policy_violation",
            |cs| {
                let set = cs.set.as_mut().unwrap();
                let mut extra = set.members[0].clone();
                extra.primary_key = json!("T-06");
                extra.before.insert("cost_cents".into(), json!(100));
                set.members.push(extra);
                reseal(cs);
            },
        ),
        (
            "set: a member swapped for another row",
            "policy_violation",
            |cs| {
                cs.set.as_mut().unwrap().members[1].primary_key = json!("T-05");
                reseal(cs);
            },
        ),
        (
            "set: a member dropped (narrowed)",
            "policy_violation",
            |cs| {
                cs.set.as_mut().unwrap().members.remove(1);
                reseal(cs);
            },
        ),
        ("set: members out of key order", "policy_violation", |cs| {
            cs.set.as_mut().unwrap().members.swap(0, 3);
            reseal(cs);
        }),
        ("set: a member twice", "policy_violation", |cs| {
            let set = cs.set.as_mut().unwrap();
            let again = set.members[0].clone();
            set.members.push(again);
            reseal(cs);
        }),
        (
            "set: a cost understated to fit a bound",
            "policy_violation",
            |cs| {
                member_before(cs, 1).insert("cost_cents".into(), json!(1));
                reseal(cs);
            },
        ),
        ("set: a version forged", "policy_violation", |cs| {
            member_before(cs, 2).insert("version".into(), json!(9));
            reseal(cs);
        }),
        (
            "set: a member's version removed",
            "policy_violation",
            |cs| {
                member_before(cs, 2).remove("version");
                reseal(cs);
            },
        ),
        (
            "set: an unreviewed column in a member",
            "policy_violation",
            |cs| {
                member_before(cs, 0).insert("secret_notes".into(), json!("x"));
                reseal(cs);
            },
        ),
        (
            "set: a member's after rewritten",
            "policy_violation",
            |cs| {
                cs.set.as_mut().unwrap().members[0]
                    .after
                    .insert("status".into(), json!("paid"));
            },
        ),
        ("set: the total understated", "policy_violation", |cs| {
            cs.set.as_mut().unwrap().aggregate_bounds[0].actual = json!(1);
        }),
        ("set: the bound raised", "policy_violation", |cs| {
            cs.set.as_mut().unwrap().aggregate_bounds[0].maximum = 1e9;
        }),
        ("set: the digest replaced", "policy_violation", |cs| {
            cs.set.as_mut().unwrap().set_digest = format!("sha256:{}", "0".repeat(64));
        }),
        ("set: the row count understated", "policy_violation", |cs| {
            cs.set.as_mut().unwrap().row_count = 1;
        }),
        ("set: the cap raised", "policy_violation", |cs| {
            cs.set.as_mut().unwrap().max_rows = 100;
        }),
        ("set: 101 members", "policy_violation", |cs| {
            let set = cs.set.as_mut().unwrap();
            let first = set.members[0].clone();
            for i in 0..101 {
                let mut m = first.clone();
                m.primary_key = json!(format!("X-{i:03}"));
                set.members.push(m);
            }
            set.members.drain(0..4);
        }),
        ("set: the frozen set removed", "policy_violation", |cs| {
            cs.set = None;
            cs.target.primary_key.value = json!("T-01");
        }),
        ("set: submitted as a delete", "policy_violation", |cs| {
            cs.operation = OperationKind::Delete;
        }),
        ("set: a patch value altered", "policy_violation", |cs| {
            cs.patch.insert("status".into(), json!("paid"));
        }),
        (
            "set: a column outside the patch",
            "policy_violation",
            |cs| {
                cs.patch.insert("cost_cents".into(), json!(0));
            },
        ),
        ("set: for another tenant", "tenant_not_allowed", |cs| {
            cs.tenant_id = "globex".into();
        }),
    ];
    let deletes: Attempts = vec![
        (
            "set delete: widened by a live session claimed stale",
            "policy_violation",
            |cs| {
                let set = cs.set.as_mut().unwrap();
                let mut extra = set.members[0].clone();
                extra.primary_key = json!("S-4");
                set.members.push(extra);
                reseal(cs);
            },
        ),
        (
            "set delete: a member's version forged",
            "policy_violation",
            |cs| {
                member_before(cs, 0).insert("version".into(), json!(2));
                reseal(cs);
            },
        ),
        (
            "set delete: submitted as an update",
            "policy_violation",
            |cs| {
                cs.operation = OperationKind::Update;
            },
        ),
        (
            "set delete: another tenant's stale session",
            "policy_violation",
            |cs| {
                cs.set.as_mut().unwrap().members[2].primary_key = json!("S-9");
                reseal(cs);
            },
        ),
    ];
    let attempts = updates.len() + deletes.len();
    assert!(attempts >= 28, "{attempts}");

    let outcomes = rt().block_on(async {
        let mut p = w.exec.client(Role::Proposer).await;
        let mut outcomes = Vec::new();
        let groups: [Group; 2] = [
            (
                CLOSE,
                json!({"reason": "quarter close"}),
                tickets_rows(),
                &updates,
            ),
            (PURGE, json!({}), sessions_rows(), &deletes),
        ];
        for (capability, args, rows, tampers) in groups {
            let cap = cfg.capability(capability).unwrap();
            let valid = airlock_policy::args::validate_args(cap, Some(&args)).unwrap();
            let honest =
                airlock_policy::bounded_set::build(cap, &valid, &context("acme"), &rows).unwrap();
            let ev = record(&mut p, read(&cfg, capability, &args, rows.clone()))
                .await
                .unwrap()
                .evidence_id;
            for (name, expected, tamper) in tampers.iter() {
                let mut cs = honest.clone();
                tamper(&mut cs);
                assert_ne!(cs, honest, "{name}: the tamper changes something");
                // A compromised proposer also records a read that agrees
                // with its lie, where the executor lets it record one.
                let lying_rows: Vec<Map<String, Value>> = cs
                    .set
                    .iter()
                    .flat_map(|s| &s.members)
                    .map(|m| {
                        let mut r = m.before.clone();
                        r.insert("id".into(), m.primary_key.clone());
                        r
                    })
                    .collect();
                let ev = match record(&mut p, read(&cfg, capability, &args, lying_rows)).await {
                    Ok(lie) => lie.evidence_id,
                    Err(_) => ev.clone(),
                };
                let got = refusal(submit(&mut p, cs, Some(ev)).await);
                outcomes.push((name.to_string(), expected.to_string(), got));
            }
            // Evidence of another read does not vouch for the set.
            let other = record(&mut p, read(&cfg, capability, &args, rows[..1].to_vec()))
                .await
                .unwrap()
                .evidence_id;
            let got = refusal(submit(&mut p, honest.clone(), Some(other)).await);
            outcomes.push((
                format!("{capability}: evidence of fewer rows"),
                "evidence_required".into(),
                got,
            ));
            // The executor keeps serving: the honest set is accepted.
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
    assert_eq!(outcomes.len(), attempts + 2);

    // Without the executor's own run of the selection, the re-sealed
    // widening would pass the policy: the attack is real.
    let cap = cfg.capability(CLOSE).unwrap();
    let args = json!({"reason": "quarter close"});
    let valid = airlock_policy::args::validate_args(cap, Some(&args)).unwrap();
    let mut widened =
        airlock_policy::bounded_set::build(cap, &valid, &context("acme"), &tickets_rows()).unwrap();
    (updates[0].2)(&mut widened);
    assert!(
        airlock_policy::change_set::verify(&cfg, &widened, &|_| true).is_ok(),
        "the re-sealed widened set is consistent on its face"
    );

    // Only the two honest sets were recorded, and nothing was written.
    let listed = w.cli(&["proposals", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed["proposals"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_eq!(w.sessions().len(), 5);
    assert!(w.tickets().iter().all(|t| t.2 == "1"));
}

// ---------------------------------------------------------------------------
// kill -9 at every step of a set's apply: every member changes exactly
// once, and each proposal ends with one terminal receipt.

fn crash_at(point: &str, db_name: &str) {
    let mut w = World::start(postgres_reference(db_name), Some(point));
    let update = w.propose(CLOSE, json!({"reason": "crash"}));
    let delete = w.propose(PURGE, json!({}));
    assert_eq!(w.approve(&update).status.code(), Some(0));
    assert_eq!(w.approve(&delete).status.code(), Some(0));
    for (id, last) in [(&update, false), (&delete, true)] {
        let (code, out) = w.apply(id);
        assert_ne!(code, Some(0), "the apply was interrupted at {point}: {out}");
        w.restart_after_crash(!last);
    }
    let expected = if point == "after_commit_before_receipt" {
        "already_applied"
    } else {
        "applied"
    };
    for id in [&update, &delete] {
        let (code, out) = w.apply(id);
        assert_eq!(code, Some(0), "{point}: {out}");
        assert_eq!(out["writeback"]["status"], expected, "{point}: {out}");
        assert_eq!(w.apply(id).1["writeback"]["status"], "already_applied");
        let story = w.cli(&["replay", "show", id, "--json"]);
        let story: Value = serde_json::from_slice(&story.stdout).unwrap();
        let receipts = story["execution_receipts"].as_array().unwrap();
        assert_eq!(receipts.len(), 1, "{point}: one terminal receipt: {story}");
        let source = query_strings(
            &w.db,
            &format!("SELECT status FROM synapsor_writeback_receipts WHERE proposal_id = '{id}'"),
        );
        assert_eq!(source.len(), 1, "{point}: one source receipt");
    }
    assert_eq!(
        w.tickets(),
        vec![
            ticket("T-01", "closed", 2),
            ticket("T-02", "closed", 2),
            ticket("T-03", "closed", 2),
            ticket("T-04", "closed", 2),
            ticket("T-05", "closed", 1),
            ticket("T-06", "OVERDUE", 1),
            ticket("T-99", "overdue", 1),
        ],
        "{point}: every member changed exactly once"
    );
    assert_eq!(w.sessions(), ["S-4", "S-9"], "{point}");
    assert!(w.exec.stop().success());
    w.verify_ledger();
}

#[test]
fn kill_9_at_every_step_of_a_set_apply() {
    for (i, point) in [
        "before_transaction",
        "set_locked",
        "after_update_before_commit",
        "after_commit_before_receipt",
    ]
    .iter()
    .enumerate()
    {
        crash_at(point, &format!("airlock_set_crash{i}"));
    }
}
