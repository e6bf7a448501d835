//! List reads end to end on PostgreSQL, MariaDB and SQLite: the real
//! proposer (over stdio, driven by a real MCP client) pages through the
//! trusted tenant's rows of a `tickets` table by reviewed filters, and the
//! real executor records each page's evidence after checking it against
//! its own policy.
//!
//! The table holds 27 rows of tenant `acme` (among them `T-26`, whose
//! customer differs from `C-1` only in case, and `T-27`, whose status is
//! `OPEN`, which MariaDB's default collation would both match loosely) and
//! six rows of tenant `globex`. Each engine must return exactly the
//! expected rows in exactly the expected order, page after page, never a
//! row of `globex`; every filter kind (text equality, a numeric range, a
//! time range with an offset, an enum set) filters exactly; a tampered
//! cursor, and a cursor reused with other filter arguments, are refused
//! before any query runs (the table is renamed first: a query would fail
//! with `source_misconfigured`); each page's evidence is in the ledger with
//! its row keys and its statement's fingerprint. A rogue proposer on the
//! executor's socket cannot record a page with a forged fingerprint, rows
//! that violate the filters, or more rows than the limit; the honest page
//! next to each forgery is accepted.

use airlock_ipc::Role;
use airlock_ipc::message::{ParamMeta, RecordRead};
use airlock_policy::Config;
use airlock_policy::config::{Capability, Engine};
use airlock_policy::list_read::{ListSpec, page_query, parse_call};
use airlock_tests::databases::{
    Database, execute, ledger_rows, mysql_reference, postgres_reference, query_strings,
    reference_config_for, sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{McpClient, agent_env, call, stdio_client};
use airlock_tests::proposals::{context, load, record, refusal};
use airlock_tests::runtime as rt;
use airlock_tests::write_world::schema_of;
use serde_json::{Map, Value, json};

const LIST: &str = "support.list_tickets";
const TOOL: &str = "support__list_tickets";
const BY_CLOSING: &str = "support.list_tickets_by_closing";

/// One seeded row: (id, tenant, customer, status, priority, opened_at in
/// minutes after 2026-01-01T00:00:00Z).
type Seed = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    i64,
);

fn seeds() -> Vec<Seed> {
    let mut rows: Vec<Seed> = Vec::new();
    const IDS: [&str; 25] = [
        "T-01", "T-02", "T-03", "T-04", "T-05", "T-06", "T-07", "T-08", "T-09", "T-10", "T-11",
        "T-12", "T-13", "T-14", "T-15", "T-16", "T-17", "T-18", "T-19", "T-20", "T-21", "T-22",
        "T-23", "T-24", "T-25",
    ];
    for (n, id) in IDS.iter().enumerate() {
        let i = n as i64 + 1;
        let customer = if i % 5 == 0 { "C-2" } else { "C-1" };
        let status = ["open", "pending", "closed"][(i % 3) as usize];
        // Pairs of rows share an opening time: the key breaks the tie.
        rows.push((id, "acme", customer, status, i % 10, (i / 2) * 360));
    }
    rows.push(("T-26", "acme", "c-1", "open", 5, 2000));
    rows.push(("T-27", "acme", "C-1", "OPEN", 5, 2100));
    for (n, id) in ["G-01", "G-02", "G-03", "G-04", "G-05", "G-06"]
        .iter()
        .enumerate()
    {
        rows.push((id, "globex", "C-1", "open", 9, n as i64 * 700 + 5));
    }
    rows
}

/// A closed ticket closed an hour after it opened; the others are NULL.
fn closed_at(status: &str, opened: i64) -> Option<i64> {
    (status == "closed").then_some(opened + 60)
}

/// `minutes` after 2026-01-01T00:00:00Z as `YYYY-MM-DD HH:MM:SS`.
fn timestamp(minutes: i64) -> String {
    let (day, rest) = (minutes / 1440, minutes % 1440);
    format!(
        "2026-01-{:02} {:02}:{:02}:00",
        day + 1,
        rest / 60,
        rest % 60
    )
}

fn add_table(db: &Database) {
    let create = match db.engine {
        Engine::Postgres => {
            "CREATE TABLE public.tickets (id text PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, status text NOT NULL, priority integer NOT NULL, opened_at timestamptz NOT NULL, closed_at timestamptz)"
        }
        Engine::Mysql => {
            "CREATE TABLE tickets (id VARCHAR(16) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, customer_id VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, priority INT NOT NULL, opened_at DATETIME(6) NOT NULL, closed_at DATETIME(6) NULL) ENGINE=InnoDB"
        }
        Engine::Sqlite => {
            "CREATE TABLE tickets (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, customer_id TEXT NOT NULL, status TEXT NOT NULL, priority INTEGER NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT)"
        }
    };
    execute(db, create);
    if db.engine == Engine::Postgres {
        execute(db, "GRANT SELECT ON public.tickets TO synapsor_reader");
    }
    let values: Vec<String> = seeds()
        .iter()
        .map(|(id, tenant, customer, status, priority, minutes)| {
            // Postgres reads the wall clock as UTC with an explicit zone;
            // SQLite keeps ISO 8601 text with `T` and `Z`.
            let at = |minutes: i64| match db.engine {
                Engine::Postgres => format!("'{}+00'", timestamp(minutes)),
                Engine::Mysql => format!("'{}'", timestamp(minutes)),
                Engine::Sqlite => format!("'{}Z'", timestamp(minutes).replace(' ', "T")),
            };
            let closed = closed_at(status, *minutes).map_or("NULL".to_owned(), at);
            format!(
                "('{id}', '{tenant}', '{customer}', '{status}', {priority}, {}, {closed})",
                at(*minutes)
            )
        })
        .collect();
    execute(
        db,
        &format!(
            "INSERT INTO tickets (id, tenant_id, customer_id, status, priority, opened_at, closed_at) VALUES {}",
            values.join(", ")
        ),
    );
}

fn config(db: &Database) -> Value {
    let mut v = reference_config_for(db);
    v["capabilities"].as_array_mut().unwrap().push(json!({
        "name": LIST,
        "kind": "read",
        "source": "app",
        "context": "local_operator",
        "description": "List the support tickets of your tenant.",
        "target": {"schema": schema_of(db), "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {
            "customer_id": {"type": "string", "max_length": 64},
            "min_priority": {"type": "integer", "minimum": 0, "maximum": 10},
            "opened_after": {"type": "string", "format": "date-time"},
            "statuses": {"type": "array", "items": {"type": "string", "enum": ["open", "pending", "closed"]}, "max_items": 3}
        },
        "list": {
            "filters": [
                {"column": "customer_id", "op": "eq", "arg": "customer_id"},
                {"column": "priority", "op": "gte", "arg": "min_priority"},
                {"column": "opened_at", "op": "gte", "arg": "opened_after"},
                {"column": "status", "op": "in", "arg": "statuses"}
            ],
            "order_by": [{"column": "opened_at", "direction": "desc"}],
            "max_limit": 50,
            "default_limit": 20
        },
        "visible_columns": ["id", "customer_id", "status", "priority", "opened_at"]
    }));
    // Ordered by a column that is NULL for most rows.
    v["capabilities"].as_array_mut().unwrap().push(json!({
        "name": BY_CLOSING,
        "kind": "read",
        "source": "app",
        "context": "local_operator",
        "target": {"schema": schema_of(db), "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {},
        "list": {"order_by": [{"column": "closed_at"}], "max_limit": 50},
        "visible_columns": ["id", "status", "closed_at"]
    }));
    v
}

/// The ids of acme's rows that `keep` selects, newest first, then by id:
/// what every engine must list, in this order.
fn expected(keep: impl Fn(&Seed) -> bool) -> Vec<&'static str> {
    let mut rows: Vec<Seed> = seeds()
        .into_iter()
        .filter(|r| r.1 == "acme")
        .filter(|r| keep(r))
        .collect();
    rows.sort_by(|a, b| b.5.cmp(&a.5).then(a.0.cmp(b.0)));
    rows.into_iter().map(|r| r.0).collect()
}

struct World {
    exec: ExecutorProcess,
    db: Database,
    cfg: Config,
}

impl World {
    fn cap(&self) -> (&Capability, &ListSpec) {
        let cap = self.cfg.capability(LIST).unwrap();
        (cap, cap.list.as_ref().unwrap())
    }

    /// The fingerprint the policy gives the page of `args` on this engine.
    fn fingerprint(&self, args: &Value) -> String {
        let (cap, spec) = self.cap();
        let call = parse_call(cap, spec, Some(args)).unwrap();
        page_query(self.db.engine, cap, spec, &call, &context("acme")).fingerprint()
    }

    fn evidence(&self, id: &str) -> Value {
        let out = self.exec.cli(&["evidence", "show", id, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(v["ok"], true, "{v}");
        v["evidence"].clone()
    }

    fn evidence_count(&self) -> usize {
        ledger_rows(
            &self.exec.store,
            "SELECT CAST(COUNT(*) AS TEXT) FROM evidence",
        )[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }
}

fn ids(envelope: &Value) -> Vec<String> {
    envelope["data"]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {envelope}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Call the list tool with `args` (and `cursor`).
async fn list(client: &McpClient, args: &Value, cursor: Option<&str>) -> Value {
    let mut a = args.clone();
    if let Some(c) = cursor {
        a["cursor"] = json!(c);
    }
    call(client, TOOL, a).await.1
}

/// Page through the listing of `args` with `limit`; every page's envelope.
async fn pages(client: &McpClient, args: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = list(client, args, cursor.as_deref()).await;
        assert_eq!(page["ok"], true, "{page}");
        cursor = page["data"]["next_cursor"].as_str().map(str::to_owned);
        out.push(page);
        if cursor.is_none() || out.len() > 10 {
            return out;
        }
    }
}

fn all_ids(pages: &[Value]) -> Vec<String> {
    pages.iter().flat_map(ids).collect()
}

fn list_reads(db: Database) {
    add_table(&db);
    let v = config(&db);
    let cfg = load(&v);
    let exec = ExecutorProcess::start(
        &v,
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    );
    let w = World { exec, db, cfg };
    let engine = w.db.engine;

    // MariaDB's default collation really is loose: without Airlock's exact
    // comparisons `C-1` and `open` would match `c-1` and `OPEN`.
    let loose = query_strings(
        &w.db,
        "SELECT id FROM tickets WHERE tenant_id = 'acme' AND (customer_id = 'C-1' AND status = 'open') ORDER BY id",
    );
    let loose: Vec<&str> = loose.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(
        loose.contains(&"T-26") && loose.contains(&"T-27"),
        engine == Engine::Mysql,
        "{engine:?}: {loose:?}"
    );

    // What an operator previews is what the model gets.
    let out = airlock_tests::airlock(&[
        "tools",
        "preview",
        "--config",
        w.exec.config_path.to_str().unwrap(),
    ]);
    let preview = String::from_utf8_lossy(&out.stdout);
    for line in [
        "  support__list_tickets  [list read: returns up to 50 tenant-scoped rows a page]",
        "      opened_after: string, format date-time",
        "      statuses: array, 1 to 3 of \"open\", \"pending\", \"closed\"",
        "      limit: integer, 1..=50, default 20",
        "      cursor: string, the next_cursor of the previous page",
    ] {
        assert!(
            preview.lines().any(|l| l == line),
            "{line:?} not in:\n{preview}"
        );
    }

    rt().block_on(async {
        let client = stdio_client(&w.exec.config_path, &w.exec.socket_dir, &agent_env(&w.db.read_url), &[]).await;

        // The tool the model sees: filters, limit and cursor.
        let tools = client.list_all_tools().await.unwrap();
        let tool = tools.iter().find(|t| t.name == TOOL).expect("the list tool is served");
        let props = tool.input_schema.get("properties").and_then(Value::as_object).unwrap();
        let names: Vec<&str> = props.keys().map(String::as_str).collect();
        assert_eq!(names, ["customer_id", "min_priority", "opened_after", "statuses", "limit", "cursor"]);

        // 1. Customer C-1, 10 a page: 21 rows in 3 pages, exactly, in order.
        let by_customer = json!({"customer_id": "C-1", "limit": 10});
        let got = pages(&client, &by_customer).await;
        let want = expected(|r| r.2 == "C-1");
        assert_eq!(want.len(), 21);
        assert_eq!(&want[..4], ["T-24", "T-22", "T-23", "T-21"], "the expectation itself: newest first, ties by id");
        assert_eq!(got.len(), 3, "{engine:?}: {got:#?}");
        assert_eq!(got.iter().map(|p| ids(p).len()).collect::<Vec<_>>(), [10, 10, 1]);
        assert_eq!(all_ids(&got), want, "{engine:?}");
        assert!(!all_ids(&got).iter().any(|id| id.starts_with("G-")));
        assert!(!all_ids(&got).contains(&"T-26".to_owned()), "exact text equality on {engine:?}");
        for (i, page) in got.iter().enumerate() {
            assert_eq!(page["data"]["limit"], 10);
            assert_eq!(page["data"]["next_cursor"].is_string(), i < 2, "{page}");
            assert_eq!(page["kind"], "read");
            assert_eq!(page["source_database_changed"], false);
            let rows = page["data"]["rows"].as_array().unwrap();
            for row in rows {
                let keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
                assert_eq!(keys, ["id", "customer_id", "status", "priority", "opened_at"], "visible columns only");
            }
            let more = if i < 2 { "yes" } else { "no" };
            assert_eq!(
                page["summary"],
                format!("Listed {} tickets record{} (tenant acme); more: {more}. Source database changed: no.", rows.len(), if rows.len() == 1 { "" } else { "s" })
            );
        }
        // Each page's evidence is in the ledger: its rows' keys and tenant,
        // and its statement's fingerprint (page 1 has no cursor).
        let first_fp = w.fingerprint(&by_customer);
        let later_fp = w.fingerprint(&json!({"customer_id": "C-1", "limit": 10, "cursor": got[0]["data"]["next_cursor"]}));
        assert_ne!(first_fp, later_fp);
        for (i, page) in got.iter().enumerate() {
            let id = page["evidence"]["bundle_id"].as_str().expect("evidence recorded");
            let ev = w.evidence(id);
            let fp = if i == 0 { &first_fp } else { &later_fp };
            assert_eq!(ev["capability"], LIST);
            assert_eq!(&ev["query_fingerprint"], fp);
            assert_eq!(&page["evidence"]["query_fingerprint"], fp);
            let recorded: Vec<&str> = ev["rows"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
            assert_eq!(recorded, ids(page), "page {i}");
            assert!(ev["rows"].as_array().unwrap().iter().all(|r| r["tenant_id"] == "acme"));
            let from: Vec<&str> = ev["parameters"].as_array().unwrap().iter().map(|p| p["bound_from"].as_str().unwrap()).collect();
            assert_eq!(from.first(), Some(&"arg:customer_id"));
            assert_eq!(from.last(), Some(&"limit"));
            assert_eq!(from.contains(&"cursor"), i > 0);
        }

        // 2. Every acme row, the default page size (20): 27 rows in 2 pages.
        let got = pages(&client, &json!({})).await;
        assert_eq!(all_ids(&got), expected(|_| true), "{engine:?}");
        assert_eq!(got[0]["data"]["limit"], 20);
        assert_eq!(got.len(), 2);

        // 3. A numeric range.
        let got = pages(&client, &json!({"min_priority": 7, "limit": 4})).await;
        assert_eq!(all_ids(&got), expected(|r| r.4 >= 7), "{engine:?}");
        assert_eq!(got.len(), 2);

        // 4. A time range given with an offset: 2026-01-03T02:00+02:00 is
        // 2026-01-03T00:00Z (2880 minutes), inclusive.
        let got = pages(&client, &json!({"opened_after": "2026-01-03T02:00:00+02:00", "limit": 10})).await;
        let want = expected(|r| r.5 >= 2880);
        assert!(want.contains(&"T-16") && !want.contains(&"T-15"), "{want:?}");
        assert_eq!(all_ids(&got), want, "{engine:?}");

        // 5. A set of reviewed statuses: `OPEN` is not `open`.
        let got = pages(&client, &json!({"statuses": ["open", "pending"], "limit": 10})).await;
        let want = expected(|r| r.3 == "open" || r.3 == "pending");
        assert!(want.contains(&"T-26") && !want.contains(&"T-27"));
        assert_eq!(all_ids(&got), want, "{engine:?}");

        // 6. Everything at once, one page.
        let all = json!({"customer_id": "C-1", "min_priority": 2, "opened_after": "2026-01-02T00:00:00Z", "statuses": ["pending", "closed"]});
        let got = pages(&client, &all).await;
        assert_eq!(got.len(), 1);
        let want = expected(|r| r.2 == "C-1" && r.4 >= 2 && r.5 >= 1440 && (r.3 == "pending" || r.3 == "closed"));
        assert!(!want.is_empty());
        assert_eq!(all_ids(&got), want, "{engine:?}");

        // An empty page is an answer, not an error.
        let none = list(&client, &json!({"customer_id": "C-404"}), None).await;
        assert_eq!(none["ok"], true, "{none}");
        assert_eq!(none["data"], json!({"rows": [], "next_cursor": null, "limit": 20}));

        // Arguments the tool refuses before any query.
        let refused = list(&client, &json!({"limit": 51}), None).await;
        assert_eq!(refused["error"]["airlock_code"], "invalid_arguments", "{refused}");
        let refused = list(&client, &json!({"statuses": ["OPEN"]}), None).await;
        assert_eq!(refused["error"]["airlock_code"], "invalid_arguments", "{refused}");

        // Cursors: the page-1 cursor of customer C-1.
        let first = list(&client, &by_customer, None).await;
        let cursor = first["data"]["next_cursor"].as_str().unwrap().to_owned();
        let before = w.evidence_count();
        // Rename the table: from here on any query fails as misconfigured,
        // so an `invalid_cursor` answer proves no query ran.
        execute(&w.db, "ALTER TABLE tickets RENAME TO tickets_away");
        let control = list(&client, &by_customer, Some(&cursor)).await;
        assert_eq!(control["error"]["airlock_code"], "source_misconfigured", "{control}");
        let other_args = list(&client, &json!({"customer_id": "C-2", "limit": 10}), Some(&cursor)).await;
        assert_eq!(other_args["error"]["airlock_code"], "invalid_cursor", "{other_args}");
        assert!(other_args["error"]["message"].as_str().unwrap().contains("does not belong to this listing"));
        let mut tampered = cursor.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let refused = list(&client, &by_customer, Some(&tampered)).await;
        assert_eq!(refused["error"]["airlock_code"], "invalid_cursor", "{refused}");
        let refused = list(&client, &by_customer, Some("not-a-cursor")).await;
        assert_eq!(refused["error"]["airlock_code"], "invalid_cursor", "{refused}");
        assert_eq!(w.evidence_count(), before, "nothing was read, nothing recorded");
        execute(&w.db, "ALTER TABLE tickets_away RENAME TO tickets");
        let resumed = list(&client, &by_customer, Some(&cursor)).await;
        assert_eq!(ids(&resumed), expected(|r| r.2 == "C-1")[10..20]);

        // NULLs sort last ascending on every engine: the 8 closed tickets
        // by closing time, then the 19 others by key.
        let closing = "support__list_tickets_by_closing";
        let all = call(&client, closing, json!({"limit": 30})).await.1;
        let mut want: Vec<Seed> = seeds().into_iter().filter(|r| r.1 == "acme").collect();
        want.sort_by(|a, b| {
            let (x, y) = (closed_at(a.3, a.5), closed_at(b.3, b.5));
            x.is_none().cmp(&y.is_none()).then(x.cmp(&y)).then(a.0.cmp(b.0))
        });
        let want: Vec<&str> = want.iter().map(|r| r.0).collect();
        assert_eq!(ids(&all), want, "{engine:?}");
        assert_eq!(&want[..2], ["T-02", "T-05"]);
        assert_eq!(&want[8..10], ["T-01", "T-03"]);
        assert!(all["data"]["next_cursor"].is_null());
        // A page that ends on a NULL with more to come cannot carry a
        // cursor: it is refused, not cut short.
        let first = call(&client, closing, json!({"limit": 5})).await.1;
        assert_eq!(ids(&first), want[..5], "{engine:?}");
        let cursor = first["data"]["next_cursor"].as_str().unwrap().to_owned();
        let second = call(&client, closing, json!({"limit": 5, "cursor": cursor})).await.1;
        assert_eq!(second["ok"], false, "{second}");
        assert_eq!(second["error"]["airlock_code"], "order_by_null", "{second}");
        assert!(
            second["error"]["message"].as_str().unwrap().contains("its `closed_at` is empty (NULL)"),
            "{second}"
        );

        client.cancel().await.unwrap();
    });

    rogue(&w);
}

/// A rogue proposer's `record_read`s of a list page, each next to the
/// honest record it differs from.
fn rogue(w: &World) {
    let engine = w.db.engine;
    let args = json!({"customer_id": "C-1", "min_priority": 7, "limit": 2});
    let (cap, spec) = w.cap();
    let call = parse_call(cap, spec, Some(&args)).unwrap();
    let page = page_query(engine, cap, spec, &call, &context("acme"));
    let row = |id: &str, priority: i64| -> Map<String, Value> {
        json!({"id": id, "customer_id": "C-1", "status": "open", "priority": priority, "opened_at": "2026-01-02T00:00:00Z", "tenant_id": "acme"})
            .as_object()
            .cloned()
            .unwrap()
    };
    let honest = |rows: Vec<Map<String, Value>>| RecordRead {
        capability: LIST.into(),
        args: call.recorded_args(),
        context: context("acme"),
        query_fingerprint: page.fingerprint(),
        parameters: page
            .parameters()
            .into_iter()
            .enumerate()
            .map(|(i, (bound_from, json_type))| ParamMeta {
                position: i as u32 + 1,
                bound_from,
                json_type: json_type.into(),
            })
            .collect(),
        rows,
        identity_token: None,
    };
    let two = vec![row("T-19", 9), row("T-17", 7)];
    rt().block_on(async {
        let mut p = w.exec.client(Role::Proposer).await;
        // Control: the honest page is recorded.
        record(&mut p, honest(two.clone()))
            .await
            .expect("the honest page is recorded");

        // A forged fingerprint: the statement of other filters.
        let mut forged = honest(two.clone());
        forged.query_fingerprint = w.fingerprint(&json!({"customer_id": "C-1", "limit": 2}));
        assert_eq!(refusal(record(&mut p, forged).await), "policy_violation");
        // ... and its control: those filters' own page is accepted.
        let looser =
            parse_call(cap, spec, Some(&json!({"customer_id": "C-1", "limit": 2}))).unwrap();
        let mut other = honest(two.clone());
        other.args = looser.recorded_args();
        let q = page_query(engine, cap, spec, &looser, &context("acme"));
        other.query_fingerprint = q.fingerprint();
        other.parameters = q
            .parameters()
            .into_iter()
            .enumerate()
            .map(|(i, (bound_from, json_type))| ParamMeta {
                position: i as u32 + 1,
                bound_from,
                json_type: json_type.into(),
            })
            .collect();
        record(&mut p, other.clone())
            .await
            .expect("the looser page is its own honest page");

        // Rows that violate a filter: priority 3 under `min_priority` 7 —
        // accepted without that filter (the looser page), refused with it.
        let mut low = other.clone();
        low.rows = vec![row("T-13", 3)];
        record(&mut p, low)
            .await
            .expect("no priority filter: priority 3 is fine");
        assert_eq!(
            refusal(record(&mut p, honest(vec![row("T-13", 3)])).await),
            "policy_violation"
        );
        // A customer that differs only in case.
        let mut case = row("T-26", 9);
        case.insert("customer_id".into(), json!("c-1"));
        assert_eq!(
            refusal(record(&mut p, honest(vec![case])).await),
            "policy_violation"
        );

        // More rows than the limit: three for a page of two (the same three
        // are a page of three).
        let three = vec![row("T-19", 9), row("T-17", 7), row("T-09", 9)];
        assert_eq!(
            refusal(record(&mut p, honest(three.clone())).await),
            "policy_violation"
        );
        let bigger = parse_call(
            cap,
            spec,
            Some(&json!({"customer_id": "C-1", "min_priority": 7, "limit": 3})),
        )
        .unwrap();
        let mut ok3 = honest(three);
        ok3.args = bigger.recorded_args();
        let q3 = page_query(engine, cap, spec, &bigger, &context("acme"));
        ok3.query_fingerprint = q3.fingerprint();
        assert_eq!(
            q3.parameters(),
            page.parameters(),
            "only the limit's value differs"
        );
        record(&mut p, ok3)
            .await
            .expect("three rows for a page of three");

        // Another tenant's row, and a forged cursor.
        let mut theirs = row("G-01", 9);
        theirs.insert("tenant_id".into(), json!("globex"));
        assert_eq!(
            refusal(record(&mut p, honest(vec![theirs])).await),
            "policy_violation"
        );
        let mut cursor = honest(vec![]);
        cursor.args.insert("cursor".into(), json!("eyJ2IjoxfQ"));
        assert_eq!(refusal(record(&mut p, cursor).await), "invalid_request");
        // The parameters of another statement.
        let mut params = honest(two.clone());
        params.parameters.reverse();
        assert_eq!(refusal(record(&mut p, params).await), "policy_violation");
        // Still serving: the honest page again.
        record(&mut p, honest(two)).await.expect("still recorded");
    });
}

#[test]
fn postgres_list_reads() {
    list_reads(postgres_reference("airlock_list_reads"));
}

#[test]
fn mariadb_list_reads() {
    list_reads(mysql_reference("airlock_list_reads"));
}

#[test]
fn sqlite_list_reads() {
    let dir = tempfile::tempdir().unwrap();
    list_reads(sqlite_reference(dir.path(), "list_reads"));
}
