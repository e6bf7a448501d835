//! Scoped Explore end to end on PostgreSQL, MariaDB and SQLite, through a
//! real MCP client (rmcp over stdio) and the real proposer and executor:
//! `app.describe_data` then `app.explore_data` answer grouped counts with
//! small groups withheld, and every attack of issue 17's battery is
//! refused or charged — each call records, in the executor's audit,
//! whether a source query ran. The source tables' checksums are the same
//! after every analytics path (reads change nothing).
//!
//! Budgets across sessions, proposer restarts and races are in
//! `explore_budgets` on one engine; here they are charged through MCP.

use airlock_policy::config::Engine;
use airlock_tests::databases::{
    Database, execute, mysql_reference, postgres_reference, query_strings, reference_config_for,
    sqlite_reference,
};
use airlock_tests::mcp::{McpClient, agent_env, call, stdio_client};
use airlock_tests::runtime as rt;
use airlock_tests::write_world::{WriteWorld, schema_of};
use serde_json::{Value, json};

const DESCRIBE: &str = "app__describe_data";
const EXPLORE: &str = "app__explore_data";

fn add_tables(db: &Database) {
    let (text, ts) = match db.engine {
        Engine::Postgres => ("text", "timestamptz"),
        Engine::Mysql => ("VARCHAR(64)", "DATETIME"),
        Engine::Sqlite => ("TEXT", "TEXT"),
    };
    let mut stmts = vec![
        format!(
            "CREATE TABLE ex_customers (id {text} PRIMARY KEY, tenant_id {text} NOT NULL, segment {text} NOT NULL, email {text})"
        ),
        format!(
            "CREATE TABLE ex_tickets (id {text} PRIMARY KEY, tenant_id {text} NOT NULL, customer_id {text} NOT NULL, status {text} NOT NULL, priority INTEGER NOT NULL, amount_cents INTEGER NOT NULL, opened_at {ts} NOT NULL, diagnosis {text} NOT NULL, email {text})"
        ),
    ];
    if db.engine == Engine::Postgres {
        stmts.push("GRANT SELECT ON ex_customers, ex_tickets TO synapsor_reader".into());
    }
    // acme: 7 open, 6 pending, 2 closed (a group below 5); globex: 20
    // closed, which acme must never count.
    let customers = [
        "('C-1', 'acme', 'smb', 'a@acme.test')",
        "('C-2', 'acme', 'smb', 'b@acme.test')",
        "('C-3', 'acme', 'ent', 'c@acme.test')",
        "('G-1', 'globex', 'smb', 'g@globex.test')",
    ];
    let mut tickets = Vec::new();
    let mut n = 0;
    for (status, count) in [("open", 7), ("pending", 6), ("closed", 2)] {
        for i in 0..count {
            n += 1;
            let customer = ["C-1", "C-2", "C-3"][n % 3];
            let month = if i % 2 == 0 { "01" } else { "02" };
            tickets.push(format!(
                "('T-{n:02}', 'acme', '{customer}', '{status}', {}, {}, '2026-{month}-{:02} 10:00:00', 'dx{}', 'p{n}@x.test')",
                1 + n % 3,
                100 * n,
                1 + i,
                n % 2
            ));
        }
    }
    for i in 0..20 {
        tickets.push(format!(
            "('G-{i:02}', 'globex', 'G-1', 'closed', 3, 99999, '2026-01-15 10:00:00', 'dx0', 'x@globex.test')"
        ));
    }
    stmts.push(format!(
        "INSERT INTO ex_customers (id, tenant_id, segment, email) VALUES {}",
        customers.join(", ")
    ));
    stmts.push(format!(
        "INSERT INTO ex_tickets (id, tenant_id, customer_id, status, priority, amount_cents, opened_at, diagnosis, email) VALUES {}",
        tickets.join(", ")
    ));
    for sql in &stmts {
        execute(db, sql);
    }
}

fn boundary(db: &Database, limits: Value) -> Value {
    let s = schema_of(db);
    json!({
        "source": "app",
        "context": "local_operator",
        "limits": limits,
        "resources": {
            "tickets": {
                "schema": s, "table": "ex_tickets", "primary_key": "id", "tenant_key": "tenant_id",
                "label": "Support tickets",
                "fields": {
                    "id": {"type": "text", "uses": ["rows"]},
                    "status": {"type": "text", "uses": ["rows", "dimension", "filter"], "values": ["open", "pending", "closed"]},
                    "priority": {"type": "number", "uses": ["dimension", "filter", "measure"]},
                    "amount_cents": {"type": "number", "uses": ["measure", "filter"]},
                    "opened_at": {"type": "time", "uses": ["rows", "time", "filter"]},
                    "customer_id": {"type": "text", "uses": ["count_distinct", "filter"]},
                    "diagnosis": {"type": "text", "uses": ["dimension"], "withheld": true}
                },
                "kept_out": ["email"],
                "relationships": {"customer": {"column": "customer_id", "resource": "customers"}}
            },
            "customers": {
                "schema": s, "table": "ex_customers", "primary_key": "id", "tenant_key": "tenant_id",
                "fields": {"segment": {"type": "text", "uses": ["dimension", "filter"]}},
                "kept_out": ["email"]
            }
        }
    })
}

fn config(db: &Database, limits: Value) -> Value {
    let mut v = reference_config_for(db);
    v["airlock"] = json!({"explore": boundary(db, limits)});
    v
}

/// A checksum of the two source tables: every row, as text, in key order.
fn checksum(db: &Database) -> Vec<Vec<Option<String>>> {
    let cast = if db.engine == Engine::Mysql {
        "CHAR"
    } else {
        "TEXT"
    };
    let mut out = query_strings(
        db,
        &format!(
            "SELECT id, tenant_id, status, CAST(priority AS {cast}), CAST(amount_cents AS {cast}), CAST(opened_at AS {cast}), diagnosis FROM ex_tickets ORDER BY id"
        ),
    );
    out.extend(query_strings(
        db,
        "SELECT id, tenant_id, segment FROM ex_customers ORDER BY id",
    ));
    out
}

struct World {
    w: WriteWorld,
    client: McpClient,
    /// The runtime the client's transport runs on, for the whole test.
    rt: tokio::runtime::Runtime,
}

impl World {
    fn start(db: Database, limits: Value) -> World {
        add_tables(&db);
        let cfg = config(&db, limits);
        let w = WriteWorld::start(db, &cfg, None);
        let rt = rt();
        let client = rt.block_on(stdio_client(
            &w.exec.config_path,
            &w.exec.socket_dir,
            &agent_env(&w.db.read_url),
            &[],
        ));
        World { w, client, rt }
    }

    fn call(&self, tool: &str, args: Value) -> Value {
        self.rt.block_on(call(&self.client, tool, args)).1
    }

    fn explore(&self, plan: Value) -> Value {
        self.call(EXPLORE, plan)
    }

    /// The newest audit entries (`airlock explore audit --json`).
    fn audit(&self, limit: usize) -> Vec<Value> {
        let out = self
            .w
            .cli(&["explore", "audit", "--limit", &limit.to_string(), "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["entries"].as_array().cloned().unwrap_or_default()
    }

    /// The plan was refused with `code` and no source query ran (the
    /// audit's newest entry says so).
    fn refused_before_query(&self, plan: Value, code: &str) -> Value {
        let before = self.audit(1000).len();
        let env = self.explore(plan.clone());
        assert_eq!(env["ok"], false, "{plan}: {env}");
        assert_eq!(env["error"]["airlock_code"], code, "{plan}: {env}");
        let audit = self.audit(1000);
        assert_eq!(audit.len(), before + 1, "every call is audited: {plan}");
        assert_eq!(audit[0]["outcome"], "refused", "{}", audit[0]);
        assert_eq!(
            audit[0]["query_ran"], false,
            "no source query ran: {}",
            audit[0]
        );
        env
    }

    fn stop(self) {
        self.rt.block_on(self.client.cancel()).unwrap();
    }
}

fn grouped_by_status() -> Value {
    json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": ["status"]})
}

fn end_to_end(db: Database) {
    let engine = db.engine;
    let world = World::start(db, json!({}));
    let before = checksum(&world.w.db);

    // The operator sees the two tools and the boundary before the model does.
    let preview = airlock_tests::airlock(&[
        "tools",
        "preview",
        "--config",
        world.w.exec.config_path.to_str().unwrap(),
        "--json",
    ]);
    let preview: Value = serde_json::from_slice(&preview.stdout).unwrap();
    assert_eq!(
        preview["explore"]["tools"],
        json!(["app__describe_data", "app__explore_data"])
    );
    assert_eq!(preview["explore"]["resources"][1]["id"], "tickets");
    assert_eq!(preview["explore"]["resources"][1]["kept_out"], 1);

    // describe_data: the reviewed catalog, without kept-out names or scope.
    let d = world.call(DESCRIBE, json!({}));
    assert_eq!(d["ok"], true, "{d}");
    let text = d["data"].to_string();
    assert!(
        text.contains("\"tickets\"") && text.contains("\"segment\""),
        "{text}"
    );
    assert!(
        !text.contains("email") && !text.contains("tenant_id") && !text.contains("ex_tickets"),
        "{text}"
    );

    // A grouped count: `closed` has 2 records and is withheld; globex's 20
    // closed tickets are never counted.
    let g = world.explore(grouped_by_status());
    assert_eq!(g["ok"], true, "{g}");
    assert_eq!(
        g["data"]["groups"],
        json!([
            {"dimensions": {"status": "open"}, "values": {"count": 7}},
            {"dimensions": {"status": "pending"}, "values": {"count": 6}},
        ]),
        "{engine:?}"
    );
    assert_eq!(g["data"]["suppressed_groups"], 1);
    let audit = world.audit(1);
    assert_eq!(audit[0]["outcome"], "suppressed");
    assert_eq!(audit[0]["query_ran"], true);
    assert_eq!(audit[0]["suppressed_groups"], 1);
    assert!(
        !audit[0].to_string().contains("dx0"),
        "the audit holds no row values"
    );

    // The suppressed-total subtraction: the complementary total over the
    // same cohort is refused before it runs.
    world.refused_before_query(
        json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}]}),
        "complementary_release",
    );
    // A total over another cohort is fine.
    let open = world.explore(json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}, {"function": "sum", "field": "amount_cents"}],
        "where": [{"field": "status", "op": "eq", "value": "open"}]}));
    assert_eq!(
        open["data"]["values"],
        json!({"count": 7, "sum(amount_cents)": 2800}),
        "{open}"
    );

    // The same records as a complete grouping would give the suppressed
    // group away by subtraction: refused after the query, nothing released.
    let complete = world.explore(json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": ["diagnosis"]}));
    assert_eq!(
        complete["error"]["airlock_code"], "complementary_release",
        "{complete}"
    );
    assert!(complete["data"].is_null());
    assert_eq!(world.audit(1)[0]["query_ran"], true);

    // Time buckets, a relationship, a withheld dimension, a comparison,
    // rows; each over its own cohort (a filter or window of its own).
    let monthly = world.explore(json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}],
        "time_window": {"field": "opened_at", "start": "2026-01-01", "end": "2026-03-01"},
        "time_bucket": {"field": "opened_at", "bucket": "month"}, "order_by": {"kind": "time_bucket", "direction": "asc"}}));
    assert_eq!(
        monthly["data"]["groups"],
        json!([{"bucket": "2026-01", "values": {"count": 8}}, {"bucket": "2026-02", "values": {"count": 7}}]),
        "{monthly}"
    );
    let by_segment = world.explore(json!({"kind": "aggregate", "resource": "tickets",
        "measures": [{"function": "count"}, {"function": "count_distinct", "field": "customer_id"}],
        "dimensions": [{"field": "segment", "relationship": "customer"}], "where": [{"field": "priority", "op": "gte", "value": 1}]}));
    assert_eq!(
        by_segment["data"]["groups"],
        json!([
            {"dimensions": {"customer.segment": "ent"}, "values": {"count": 5, "count_distinct(customer_id)": 1}},
            {"dimensions": {"customer.segment": "smb"}, "values": {"count": 10, "count_distinct(customer_id)": 2}},
        ]),
        "{by_segment}"
    );
    let withheld = world.explore(json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": ["diagnosis"],
        "where": [{"field": "amount_cents", "op": "gte", "value": 0}]}));
    let wt = withheld["data"].to_string();
    assert!(
        wt.contains("diagnosis#1") && !wt.contains("dx0") && !wt.contains("dx1"),
        "{wt}"
    );
    let cmp = world.explore(json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": ["status"],
        "comparison": {"field": "opened_at", "ranges": [{"start": "2026-01-01", "end": "2026-02-01"}, {"start": "2026-02-01", "end": "2026-03-01"}]},
        "where": [{"field": "status", "op": "in", "value": ["open", "pending"]}]}));
    // open: 4 in January, 3 in February (below 5: the pair is withheld);
    // pending: 3 and 3, withheld too.
    assert_eq!(cmp["data"]["groups"], json!([]), "{cmp}");
    assert_eq!(cmp["data"]["suppressed_groups"], 2);
    let rows = world.explore(json!({"kind": "rows", "resource": "tickets", "select": ["id", "status"],
        "where": [{"field": "status", "op": "eq", "value": "closed"}], "order_by": [{"field": "opened_at", "direction": "desc"}], "limit": 5}));
    assert_eq!(
        rows["data"]["rows"],
        json!([{"id": "T-15", "status": "closed"}, {"id": "T-14", "status": "closed"}]),
        "{rows}"
    );

    // The attack battery: each refused with no source query.
    let attacks: Vec<(Value, &str)> = vec![
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "sql": "SELECT count(*) FROM ex_tickets"}),
            "plan_invalid",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "tenant_id": "globex"}),
            "scope_forbidden",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "where": [{"field": "tenant_id", "op": "eq", "value": "globex"}]}),
            "scope_forbidden",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": ["email"]}),
            "field_forbidden",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "where": [{"field": "email", "op": "eq", "value": "p1@x.test"}]}),
            "field_forbidden",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count_distinct", "field": "email"}]}),
            "field_forbidden",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": [{"field": "email", "relationship": "customer"}]}),
            "field_forbidden",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": [{"field": "segment", "relationship": "buyer"}]}),
            "relationship_forbidden",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": ["status"], "top_n": 26}),
            "too_large",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": ["status"], "minimum_cohort_size": 1}),
            "plan_invalid",
        ),
        // The tracker: two large counts differing by one neq / in on a near-unique field.
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "where": [{"field": "status", "op": "eq", "value": "open"}, {"field": "customer_id", "op": "neq", "value": "C-1"}]}),
            "field_forbidden",
        ),
        (
            json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "where": [{"field": "customer_id", "op": "in", "value": ["C-2", "C-3"]}]}),
            "field_forbidden",
        ),
        // Rows plans reading out a cohort-protected grouped field.
        (
            json!({"kind": "rows", "resource": "tickets", "select": ["id", "diagnosis"]}),
            "field_forbidden",
        ),
        (
            json!({"kind": "rows", "resource": "tickets", "select": ["id"], "where": [{"field": "diagnosis", "op": "eq", "value": "dx1"}]}),
            "field_forbidden",
        ),
        (
            json!({"kind": "rows", "resource": "customers", "select": ["segment"]}),
            "field_forbidden",
        ),
    ];
    for (plan, code) in attacks {
        world.refused_before_query(plan, code);
    }

    // Overlapping relative windows are separate variants, each charged.
    let w = |end: &str| {
        json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}],
        "time_window": {"field": "opened_at", "start": "2026-01-01", "end": end}})
    };
    let a = world.explore(w("2026-02-01"));
    let b = world.explore(w("2026-02-02"));
    let left = |e: &Value| e["data"]["budget_remaining"]["variants"].as_u64().unwrap();
    assert_eq!(
        left(&a),
        left(&b) + 1,
        "the overlapping window cost a variant: {a} {b}"
    );
    let replay = world.explore(w("2026-02-02"));
    assert_eq!(
        left(&replay),
        left(&b),
        "an exact replay reuses its variant"
    );

    assert_eq!(checksum(&world.w.db), before, "reads change nothing");
    world.w.verify_ledger();
    world.stop();
}

#[test]
fn explore_on_postgres() {
    end_to_end(postgres_reference("airlock_explore"));
}

#[test]
fn explore_on_mariadb() {
    end_to_end(mysql_reference("airlock_explore"));
}

#[test]
fn explore_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    end_to_end(sqlite_reference(dir.path(), "explore"));
}

/// An exhausted budget stays exhausted for a new MCP session, which is a
/// new proposer process; and eight sessions racing for the last query
/// unit get exactly one answer.
fn budgets_hold_across_sessions_and_races(db: Database) {
    let world = World::start(db, json!({"max_queries_per_rolling_24_hours": 4}));
    let q = json!({"kind": "aggregate", "resource": "tickets", "measures": [{"function": "count"}], "dimensions": ["status"]});
    for _ in 0..3 {
        assert_eq!(world.explore(q.clone())["ok"], true);
    }
    // Eight new sessions (eight proposer processes) race for the last unit.
    let (cfg, sock, url) = (
        world.w.exec.config_path.clone(),
        world.w.exec.socket_dir.clone(),
        world.w.db.read_url.clone(),
    );
    let answers: Vec<Value> = world.rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(stdio_client(&cfg, &sock, &agent_env(&url), &[]).await);
        }
        let calls = clients.iter().map(|c| call(c, EXPLORE, q.clone()));
        let out: Vec<Value> = futures_join(calls).await;
        for c in clients {
            c.cancel().await.unwrap();
        }
        out
    });
    let ok = answers.iter().filter(|a| a["ok"] == true).count();
    assert_eq!(ok, 1, "exactly one session got the last unit: {answers:?}");
    for a in answers.iter().filter(|a| a["ok"] != true) {
        assert_eq!(a["error"]["airlock_code"], "budget_exhausted", "{a}");
    }
    // Still exhausted for a fresh session (a new proposer process).
    let fresh = world.rt.block_on(async {
        let c = stdio_client(&cfg, &sock, &agent_env(&url), &[]).await;
        let (_, e) = call(&c, EXPLORE, q.clone()).await;
        c.cancel().await.unwrap();
        e
    });
    assert_eq!(
        fresh["error"]["airlock_code"], "budget_exhausted",
        "{fresh}"
    );
    world.stop();
}

#[test]
fn budgets_hold_across_sessions_and_races_on_postgres() {
    budgets_hold_across_sessions_and_races(postgres_reference("airlock_explore_budget"));
}

#[test]
fn budgets_hold_across_sessions_and_races_on_mariadb() {
    budgets_hold_across_sessions_and_races(mysql_reference("airlock_explore_budget"));
}

#[test]
fn budgets_hold_across_sessions_and_races_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    budgets_hold_across_sessions_and_races(sqlite_reference(dir.path(), "explore_budget"));
}

async fn futures_join<F: std::future::Future<Output = (rmcp::model::CallToolResult, Value)>>(
    calls: impl Iterator<Item = F>,
) -> Vec<Value> {
    let handles: Vec<_> = calls.map(Box::pin).collect();
    let mut out = Vec::new();
    // Start them all before awaiting any: poll concurrently.
    let joined = join_all(handles).await;
    for (_, e) in joined {
        out.push(e);
    }
    out
}

async fn join_all<F: std::future::Future + Unpin>(mut futs: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut results: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if results[i].is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    Poll::Ready(v) => results[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}
