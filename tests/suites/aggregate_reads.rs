//! Named aggregate reads end to end on PostgreSQL, MariaDB and SQLite: the
//! real proposer driven by a real MCP client (rmcp over stdio), the real
//! executor recording evidence, a real database seeded for two tenants.
//!
//! Per engine: a count of rows, a count of non-null values, a sum, an
//! average, a minimum and a maximum — each released with exactly the
//! trusted tenant's number, although another tenant has many more rows
//! that would change every one of them; a grouped count that withholds its
//! small group and says only how many; an ungrouped count over fewer rows
//! than the minimum withheld with no value and no count; too many groups
//! refused; a misconfigured aggregate answered with the same safe message
//! as a read. The source table is unchanged after every call, and every
//! call's evidence is the released result, never a member row or id.
//!
//! Then a rogue proposer over IPC: member rows, unknown columns, group rows
//! for an ungrouped aggregate, too many groups, another tenant and another
//! statement's fingerprint are refused, next to the honest records the
//! executor accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use airlock_ipc::Role;
use airlock_ipc::message::{ParamMeta, RecordRead};
use airlock_policy::config::Engine;
use airlock_policy::db_error::SOURCE_MISCONFIGURED_MESSAGE;
use airlock_policy::statement::{LookupParam, read_statement, select_row};
use airlock_tests::databases::{
    Database, execute, ledger_rows, mysql_reference, postgres_reference, query_strings,
    reference_config_for, sqlite_reference,
};
use airlock_tests::mcp::{McpClient, agent_env, call, stdio_client};
use airlock_tests::proposals::{context, load, record, refusal};
use airlock_tests::runtime as rt;
use airlock_tests::schema::{assert_v2_envelope, assert_valid};
use airlock_tests::write_world::{WriteWorld, schema_of};
use serde_json::{Map, Value, json};

const COUNT_OPEN: &str = "cases.count_open";
const COUNT_NOTED: &str = "cases.count_noted";
const SUM_OPEN: &str = "cases.sum_open_amount";
const AVG_RATING: &str = "cases.average_open_rating";
const MIN_OPEN: &str = "cases.lowest_open_amount";
const MAX_OPEN: &str = "cases.highest_open_amount";
const BY_REGION: &str = "cases.open_by_region";
const ESCALATED: &str = "cases.count_escalated";
const BY_STATUS: &str = "cases.count_by_status";
const MISSING_COLUMN: &str = "cases.sum_missing_column";
const TEXT_MIN: &str = "cases.lowest_region";
/// Postgres only: an aggregate over a view that outlasts the statement timeout.
const SLOW: &str = "cases.count_slowly";

/// The `cases` table and its rows. Tenant `acme`: 13 open cases (north 6,
/// south 5, east 2), amounts 100…1300 cents, ratings 4.00 but one 5.00,
/// notes on the first 7; one `OPEN` case (another spelling, never an
/// `open` one); 3 escalated and 1 closed case. Tenant `globex`: 40 open
/// cases in the north with amounts of 1 and 1,000,000 cents, and 10
/// escalated ones — enough to change every acme number if they counted.
fn add_table(db: &Database) {
    let create: Vec<String> = match db.engine {
        Engine::Postgres => vec![
            "CREATE TABLE public.cases (id text PRIMARY KEY, tenant_id text NOT NULL, region text NOT NULL, status text NOT NULL, amount_cents integer NOT NULL, rating numeric(6,2) NOT NULL, note text)".into(),
            "GRANT SELECT ON public.cases TO synapsor_reader".into(),
            // Longer than the source's 3 s statement timeout.
            "CREATE VIEW public.slow_cases AS SELECT c.* FROM public.cases c, pg_sleep(5) AS s".into(),
            "GRANT SELECT ON public.slow_cases TO synapsor_reader".into(),
        ],
        // The default collation ignores case: `OPEN` = `open` to a plain `=`.
        Engine::Mysql => vec![
            "CREATE TABLE cases (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, region VARCHAR(32) NOT NULL, status VARCHAR(32) NOT NULL, amount_cents INT NOT NULL, rating DECIMAL(6,2) NOT NULL, note VARCHAR(200) NULL) ENGINE=InnoDB".into(),
        ],
        // NOCASE: `OPEN` = `open` to a plain `=` here too.
        Engine::Sqlite => vec![
            "CREATE TABLE cases (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, region TEXT NOT NULL, status TEXT NOT NULL COLLATE NOCASE, amount_cents INTEGER NOT NULL, rating NUMERIC NOT NULL, note TEXT)".into(),
        ],
    };
    let mut rows: Vec<String> = Vec::new();
    for i in 1..=13 {
        let region = match i {
            1..=6 => "north",
            7..=11 => "south",
            _ => "east",
        };
        let rating = if i == 13 { "5.00" } else { "4.00" };
        let note = if i <= 7 { "'called back'" } else { "NULL" };
        rows.push(format!(
            "('A-{i:02}', 'acme', '{region}', 'open', {}, {rating}, {note})",
            100 * i
        ));
    }
    rows.push("('A-14', 'acme', 'north', 'OPEN', 99999, 1.00, 'shouting')".into());
    for i in 15..=17 {
        rows.push(format!(
            "('A-{i}', 'acme', 'west', 'escalated', 500, 3.00, NULL)"
        ));
    }
    rows.push("('A-18', 'acme', 'north', 'closed', 700, 2.00, NULL)".into());
    for i in 1..=40 {
        let amount = if i % 2 == 0 { 1 } else { 1_000_000 };
        rows.push(format!(
            "('G-{i:02}', 'globex', 'north', 'open', {amount}, 1.00, 'g')"
        ));
    }
    for i in 41..=50 {
        rows.push(format!(
            "('G-{i}', 'globex', 'north', 'escalated', 5, 1.00, NULL)"
        ));
    }
    let insert = format!(
        "INSERT INTO cases (id, tenant_id, region, status, amount_cents, rating, note) VALUES {}",
        rows.join(", ")
    );
    for sql in create.iter().chain(std::iter::once(&insert)) {
        execute(db, sql);
    }
}

fn aggregate_cap(s: &str, name: &str, aggregate: Value) -> Value {
    json!({
        "name": name,
        "kind": "aggregate_read",
        "source": "app",
        "context": "local_operator",
        "target": {"schema": s, "table": "cases", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {},
        "visible_columns": [],
        "evidence": "required",
        "aggregate": aggregate
    })
}

fn open() -> Value {
    json!({"all": [{"column": "status", "operator": "eq", "value": "open"}]})
}

fn config(db: &Database) -> Value {
    let mut v = reference_config_for(db);
    let s = schema_of(db);
    let column = |f: &str, col: &str| json!({"function": f, "column": col, "selection": open(), "minimum_group_size": 5});
    let caps = v["capabilities"].as_array_mut().unwrap();
    caps.extend([
        aggregate_cap(
            &s,
            COUNT_OPEN,
            json!({"function": "count", "count_mode": "rows", "selection": open(), "minimum_group_size": 5}),
        ),
        aggregate_cap(
            &s,
            COUNT_NOTED,
            json!({"function": "count", "count_mode": "non_null", "column": "note", "selection": open(), "minimum_group_size": 5}),
        ),
        aggregate_cap(&s, SUM_OPEN, column("sum", "amount_cents")),
        aggregate_cap(&s, AVG_RATING, column("avg", "rating")),
        aggregate_cap(&s, MIN_OPEN, column("min", "amount_cents")),
        aggregate_cap(&s, MAX_OPEN, column("max", "amount_cents")),
        aggregate_cap(
            &s,
            BY_REGION,
            json!({"function": "count", "count_mode": "rows", "selection": open(), "minimum_group_size": 5, "group_by": ["region"], "max_groups": 10}),
        ),
        aggregate_cap(
            &s,
            ESCALATED,
            json!({"function": "count", "count_mode": "rows", "selection": {"all": [{"column": "status", "operator": "eq", "value": "escalated"}]}, "minimum_group_size": 5}),
        ),
        aggregate_cap(
            &s,
            BY_STATUS,
            json!({"function": "count", "count_mode": "rows", "minimum_group_size": 1, "group_by": ["status"], "max_groups": 2}),
        ),
        aggregate_cap(&s, MISSING_COLUMN, column("sum", "no_such_column")),
        aggregate_cap(&s, TEXT_MIN, column("min", "region")),
    ]);
    if db.engine == Engine::Postgres {
        let mut slow = aggregate_cap(
            &s,
            SLOW,
            json!({"function": "count", "count_mode": "rows", "minimum_group_size": 5}),
        );
        slow["target"]["table"] = json!("slow_cases");
        caps.push(slow);
    }
    v
}

/// Every cell of `cases` as text, in key order: what "unchanged" means.
fn checksum(w: &WriteWorld) -> Vec<Vec<Option<String>>> {
    let t = w.text();
    query_strings(
        &w.db,
        &format!(
            "SELECT id, tenant_id, region, status, CAST(amount_cents AS {t}), CAST(rating AS {t}), note FROM cases ORDER BY id"
        ),
    )
}

/// One MCP session and what it learned from `tools/list`.
struct Session<'a> {
    w: &'a WriteWorld,
    client: McpClient,
    /// Tool name → output schema.
    schemas: BTreeMap<String, Value>,
    before: Vec<Vec<Option<String>>>,
}

impl Session<'_> {
    /// Call the aggregate read `capability` as the model would (no
    /// arguments): the envelope, checked against the declared output
    /// schema and Synapsor's v2 rules, with the source unchanged.
    async fn call(&self, capability: &str) -> Value {
        let tool = airlock_policy::catalog::openai_alias(capability);
        let (result, env) = call(&self.client, &tool, json!({})).await;
        assert_valid(&self.schemas[&tool], &env);
        assert_v2_envelope(&env, capability);
        assert_eq!(result.is_error, Some(env["ok"] != true), "{env}");
        assert_eq!(env["kind"], "aggregate_read", "{env}");
        assert_eq!(env["_meta"]["tenant_id"], "acme", "{env}");
        assert_eq!(
            checksum(self.w),
            self.before,
            "{capability}: a read changed the source"
        );
        env
    }

    /// A released or withheld result: its data, with evidence whose rows
    /// are exactly `evidence_rows` — never a member row or id.
    async fn released(&self, capability: &str, evidence_rows: Value) -> Value {
        let env = self.call(capability).await;
        assert_eq!(env["ok"], true, "{env}");
        assert_eq!(env["data"]["member_rows_included"], false, "{env}");
        let id = env["evidence"]["bundle_id"].as_str().unwrap().to_owned();
        let out = self.w.cli(&["evidence", "show", &id, "--json"]);
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ev = &shown["evidence"];
        assert_eq!(ev["capability"], capability, "{shown}");
        assert_eq!(ev["tenant_id"], "acme", "{shown}");
        assert_eq!(ev["rows"], evidence_rows, "{capability}: {shown}");
        assert_eq!(
            ev["query_fingerprint"], env["evidence"]["query_fingerprint"],
            "{shown}"
        );
        let recorded = ev["rows"].to_string();
        for member in [
            "A-",
            "G-",
            "tenant_id",
            "amount_cents",
            "called back",
            "cohort",
        ] {
            assert!(
                !recorded.contains(member),
                "{capability}: {member} in {recorded}"
            );
        }
        env
    }
}

fn aggregate_reads(db: Database) {
    add_table(&db);
    let cfg = config(&db);
    let w = WriteWorld::start(db, &cfg, None);
    let before = checksum(&w);
    assert_eq!(before.len(), 68);
    let engine = w.db.engine;
    rt().block_on(async {
        let client = stdio_client(
            &w.exec.config_path,
            &w.exec.socket_dir,
            &agent_env(&w.db.read_url),
            &[],
        )
        .await;

        // tools/list: no arguments, a declared result, read-only.
        let tools = client.list_all_tools().await.unwrap();
        let mut schemas = BTreeMap::new();
        for t in &tools {
            let schema = Value::Object((**t.output_schema.as_ref().unwrap()).clone());
            if schema["properties"]["kind"]["const"] == "aggregate_read" {
                assert_eq!(
                    Value::Object((*t.input_schema).clone()),
                    json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false}),
                    "{}",
                    t.name
                );
                let description = t.description.as_deref().unwrap_or_default();
                assert!(
                    description.contains("Returns one reviewed aggregate, never records")
                        && description.contains("withheld"),
                    "{description}"
                );
                let hints = t.annotations.as_ref().unwrap();
                assert_eq!(hints.read_only_hint, Some(true), "{}", t.name);
                assert_eq!(hints.destructive_hint, Some(false), "{}", t.name);
            }
            schemas.insert(t.name.to_string(), schema);
        }
        let count_open = tools
            .iter()
            .find(|t| t.name == "cases__count_open")
            .unwrap();
        assert_eq!(
            count_open.description.as_deref(),
            Some(
                "Return the number of cases records where status = \"open\". Read-only; scoped to your tenant. Returns one reviewed aggregate, never records: a result of fewer than 5 records is withheld (no value, no count)."
            )
        );
        let s = Session {
            w: &w,
            client,
            schemas,
            before,
        };

        // Each function, only the trusted tenant's rows, only exact
        // `open` (not `OPEN`).
        let env = s.released(COUNT_OPEN, json!([{"value": 13}])).await;
        assert_eq!(
            env["data"],
            json!({"function": "count", "column": null, "suppressed": false, "minimum_group_size": 5, "value": 13, "member_rows_included": false})
        );
        assert_eq!(
            env["summary"],
            "The number of cases records where status = \"open\": 13 (tenant acme). Source database changed: no."
        );
        let id = env["evidence"]["bundle_id"].as_str().unwrap();
        let shown: Value =
            serde_json::from_slice(&w.cli(&["evidence", "show", id, "--json"]).stdout).unwrap();
        let bound: Vec<&str> = shown["evidence"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["bound_from"].as_str().unwrap())
            .collect();
        assert_eq!(
            bound,
            ["reviewed:selection.all[0]", "trusted_context:tenant_id"]
        );
        let cap = load(&cfg);
        assert_eq!(
            shown["evidence"]["query_fingerprint"],
            read_statement(engine, cap.capability(COUNT_OPEN).unwrap()).fingerprint()
        );

        let env = s.released(COUNT_NOTED, json!([{"value": 7}])).await;
        assert_eq!(env["data"]["value"], 7);
        assert_eq!(env["data"]["column"], "note");
        let env = s.released(SUM_OPEN, json!([{"value": 9100}])).await;
        assert_eq!(env["data"]["value"], 9100, "{env}");
        assert_eq!(env["data"]["function"], "sum");
        let env = s.released(AVG_RATING, json!([{"value": 4.0769}])).await;
        assert_eq!(env["data"]["value"], 4.0769, "53/13 rounded: {env}");
        let env = s.released(MIN_OPEN, json!([{"value": 100}])).await;
        assert_eq!(env["data"]["value"], 100, "{env}");
        let env = s.released(MAX_OPEN, json!([{"value": 1300}])).await;
        assert_eq!(env["data"]["value"], 1300, "{env}");

        // Grouped: the east (2 cases) is withheld and only counted.
        let env = s
            .released(
                BY_REGION,
                json!([{"region": "north", "value": 6}, {"region": "south", "value": 5}]),
            )
            .await;
        assert_eq!(
            env["data"],
            json!({
                "function": "count", "column": null, "minimum_group_size": 5, "member_rows_included": false,
                "group_by": ["region"],
                "groups": [{"region": "north", "value": 6}, {"region": "south", "value": 5}],
                "suppressed_groups": 1
            })
        );
        assert_eq!(
            env["summary"],
            "The number of cases records where status = \"open\", per region: 2 groups released, 1 withheld (fewer than 5 records each) (tenant acme). Source database changed: no."
        );
        assert!(!env.to_string().contains("east"), "{env}");

        // Three escalated acme cases: withheld — although with globex's
        // ten they would be thirteen.
        let env = s.released(ESCALATED, json!([{"suppressed": true}])).await;
        assert_eq!(
            env["data"],
            json!({"function": "count", "column": null, "suppressed": true, "minimum_group_size": 5, "value": null, "member_rows_included": false})
        );
        assert_eq!(
            env["summary"],
            "The number of cases records where status = \"escalated\": withheld: fewer than 5 records match (tenant acme). Source database changed: no."
        );

        // More groups than reviewed: refused, nothing cut short, no evidence.
        let env = s.call(BY_STATUS).await;
        assert_eq!(env["ok"], false, "{env}");
        assert_eq!(env["error"]["code"], "POLICY_VIOLATION", "{env}");
        assert!(
            env["error"]["message"]
                .as_str()
                .unwrap()
                .contains("more than 2 groups"),
            "{env}"
        );
        assert!(env["evidence"].is_null());

        // A missing column and a text column: the read's safe message.
        for broken in [MISSING_COLUMN, TEXT_MIN] {
            let env = s.call(broken).await;
            assert_eq!(env["ok"], false, "{env}");
            assert_eq!(env["error"]["code"], "SOURCE_MISCONFIGURED", "{env}");
            assert_eq!(
                env["error"]["message"], SOURCE_MISCONFIGURED_MESSAGE,
                "{env}"
            );
            assert_eq!(env["error"]["retryable"], false);
        }
        // A statement timeout: the read's safe, retryable answer.
        if engine == Engine::Postgres {
            let env = s.call(SLOW).await;
            assert_eq!(env["ok"], false, "{env}");
            assert_eq!(env["error"]["airlock_code"], "source_timeout", "{env}");
            assert_eq!(env["error"]["code"], "TEMPORARILY_UNAVAILABLE", "{env}");
            assert_eq!(env["error"]["retryable"], true, "{env}");
            assert_eq!(
                env["error"]["message"],
                "the database did not answer within 3000 ms; try again"
            );
        }
        s.client.cancel().await.unwrap();
    });
    // Every released result was recorded; the refused and broken ones not.
    let recorded = ledger_rows(
        &w.exec.store,
        "SELECT capability, rows_json FROM evidence ORDER BY seq",
    );
    let caps: Vec<&str> = recorded.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(
        caps,
        [
            COUNT_OPEN,
            COUNT_NOTED,
            SUM_OPEN,
            AVG_RATING,
            MIN_OPEN,
            MAX_OPEN,
            BY_REGION,
            ESCALATED
        ]
    );
    w.verify_ledger();
}

#[test]
fn postgres_aggregate_reads() {
    aggregate_reads(postgres_reference("airlock_aggregate_reads"));
}

#[test]
fn mariadb_aggregate_reads() {
    aggregate_reads(mysql_reference("airlock_aggregate_reads"));
}

#[test]
fn sqlite_aggregate_reads() {
    let dir = tempfile::tempdir().unwrap();
    aggregate_reads(sqlite_reference(dir.path(), "aggregate_reads"));
}

// ---------------------------------------------------------------------------
// A rogue proposer recording aggregate evidence over IPC.

fn rows(v: Value) -> Vec<Map<String, Value>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().cloned().unwrap())
        .collect()
}

/// What an honest proposer records for one call of `capability`.
fn read(
    cfg: &airlock_policy::Config,
    capability: &str,
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
                LookupParam::Selection(i) => format!("reviewed:selection.all[{i}]"),
                LookupParam::Tenant => "trusted_context:tenant_id".into(),
                other => panic!("unexpected parameter {other:?}"),
            },
            json_type: "string".into(),
        })
        .collect();
    RecordRead {
        capability: capability.into(),
        args: Map::new(),
        context: context("acme"),
        query_fingerprint: st.fingerprint(),
        parameters,
        rows,
        identity_token: None,
    }
}

fn evidence_count(w: &WriteWorld) -> usize {
    ledger_rows(&w.exec.store, "SELECT evidence_id FROM evidence").len()
}

#[test]
fn a_rogue_proposer_cannot_record_member_rows_as_aggregate_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "aggregate_reads_rogue");
    add_table(&db);
    let cfg_value = config(&db);
    let cfg = load(&cfg_value);
    let w = WriteWorld::start(db, &cfg_value, None);
    let member =
        json!([{"id": "A-01", "tenant_id": "acme", "region": "north", "amount_cents": 100}]);
    let attempts: Vec<(&str, RecordRead, &str)> = vec![
        (
            "member rows for a count",
            read(&cfg, COUNT_OPEN, rows(member.clone())),
            "policy_violation",
        ),
        (
            "member rows for a grouped count",
            read(&cfg, BY_REGION, rows(member)),
            "policy_violation",
        ),
        (
            "the value with an unknown column",
            read(
                &cfg,
                COUNT_OPEN,
                rows(json!([{"value": 13, "customer": "Acme"}])),
            ),
            "policy_violation",
        ),
        (
            "the value with the record count",
            read(&cfg, SUM_OPEN, rows(json!([{"value": 9100, "cohort": 13}]))),
            "policy_violation",
        ),
        (
            "group rows for an ungrouped aggregate",
            read(
                &cfg,
                COUNT_OPEN,
                rows(json!([{"region": "north", "value": 6}, {"region": "south", "value": 5}])),
            ),
            "policy_violation",
        ),
        (
            "more groups than max_groups",
            read(
                &cfg,
                BY_REGION,
                (0..11)
                    .map(|i| {
                        json!({"region": format!("r{i}"), "value": 5})
                            .as_object()
                            .cloned()
                            .unwrap()
                    })
                    .collect(),
            ),
            "policy_violation",
        ),
        (
            "a withheld group's marker",
            read(&cfg, BY_REGION, rows(json!([{"suppressed": true}]))),
            "policy_violation",
        ),
        (
            "a group column of another capability",
            read(
                &cfg,
                BY_REGION,
                rows(json!([{"status": "open", "value": 13}])),
            ),
            "policy_violation",
        ),
        (
            "a value as text",
            read(&cfg, SUM_OPEN, rows(json!([{"value": "9100"}]))),
            "policy_violation",
        ),
        (
            "another tenant",
            RecordRead {
                context: context("globex"),
                ..read(&cfg, COUNT_OPEN, rows(json!([{"value": 40}])))
            },
            "tenant_not_allowed",
        ),
        (
            "a row statement's fingerprint",
            RecordRead {
                query_fingerprint: select_row(
                    Engine::Sqlite,
                    cfg.capability(COUNT_OPEN).unwrap(),
                    false,
                )
                .fingerprint(),
                ..read(&cfg, COUNT_OPEN, rows(json!([{"value": 13}])))
            },
            "policy_violation",
        ),
        (
            "a model argument",
            RecordRead {
                args: json!({"status": "closed"}).as_object().cloned().unwrap(),
                ..read(&cfg, COUNT_OPEN, rows(json!([{"value": 13}])))
            },
            "invalid_request",
        ),
    ];
    let before = evidence_count(&w);
    let outcomes = rt().block_on(async {
        let mut p = w.exec.client(Role::Proposer).await;
        let mut outcomes = Vec::new();
        for (name, req, expected) in attempts {
            outcomes.push((name, expected, refusal(record(&mut p, req).await)));
        }
        // The control: the honest records of the same capabilities are
        // accepted on the same connection.
        for (capability, honest) in [
            (COUNT_OPEN, json!([{"value": 13}])),
            (ESCALATED, json!([{"suppressed": true}])),
            (
                BY_REGION,
                json!([{"region": "north", "value": 6}, {"region": "south", "value": 5}]),
            ),
            (BY_REGION, json!([])),
        ] {
            let ok = record(&mut p, read(&cfg, capability, rows(honest.clone()))).await;
            assert!(
                ok.is_ok_and(|r| r.evidence_id.starts_with("ev_")),
                "{capability} {honest}"
            );
        }
        outcomes
    });
    let wrong: Vec<_> = outcomes.iter().filter(|(_, e, g)| e != g).collect();
    assert!(
        wrong.is_empty(),
        "refused otherwise than expected: {wrong:#?}"
    );
    assert_eq!(outcomes.len(), 12);
    assert_eq!(
        evidence_count(&w),
        before + 4,
        "only the honest records are in the ledger"
    );
    let stored = ledger_rows(&w.exec.store, "SELECT rows_json FROM evidence");
    for r in stored {
        let text = r[0].clone().unwrap_or_default();
        assert!(
            !text.contains("A-01") && !text.contains("tenant_id"),
            "{text}"
        );
    }
    w.verify_ledger();
}
