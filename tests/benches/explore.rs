//! `app.explore_data` over a real MCP client (rmcp, stdio) against the raw
//! aggregate SQL it compiles to, on PostgreSQL: what Explore adds to a
//! grouped count (validation and compilation, the executor's reservation
//! and commit with their ledger writes, suppression, the MCP round trip).
//!
//! `cargo bench -p airlock-tests --bench explore` (env `EXPLORE_BENCH_N`,
//! default 300 calls after 50 warm-up). Prints a JSON report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::disallowed_macros)] // a bench prints its results to stdout

use std::time::{Duration, Instant};

use airlock_policy::config::Engine;
use airlock_policy::explore::compile::{Param, compile};
use airlock_policy::explore::validate_plan;
use airlock_tests::databases::{execute, postgres_reference, reference_config_for};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, stdio_client};
use serde_json::{Value, json};
use sqlx::Connection;

fn p50_p99(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn main() {
    let n: usize = std::env::var("EXPLORE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let warm = 50;
    let db = postgres_reference("airlock_bench_explore");
    execute(
        &db,
        "CREATE TABLE bx_tickets (id text PRIMARY KEY, tenant_id text NOT NULL, status text NOT NULL, amount_cents integer NOT NULL)",
    );
    execute(&db, "GRANT SELECT ON bx_tickets TO synapsor_reader");
    execute(
        &db,
        "INSERT INTO bx_tickets SELECT 'T-' || g, CASE WHEN g % 10 = 0 THEN 'globex' ELSE 'acme' END, (ARRAY['open','pending','closed'])[1 + g % 3], g FROM generate_series(1, 5000) g",
    );
    let mut cfg = reference_config_for(&db);
    cfg["airlock"] = json!({"explore": {
        "source": "app", "context": "local_operator",
        "limits": {"max_queries_per_rolling_24_hours": 1_000_000, "max_extracted_cells_per_rolling_24_hours": 1_000_000_000},
        "resources": {"tickets": {"schema": "public", "table": "bx_tickets", "primary_key": "id", "tenant_key": "tenant_id",
            "fields": {"status": {"type": "text", "uses": ["dimension", "filter"]}, "amount_cents": {"type": "number", "uses": ["measure"]}}}}
    }});
    let plan = json!({"kind": "aggregate", "resource": "tickets",
        "measures": [{"function": "count"}, {"function": "sum", "field": "amount_cents"}], "dimensions": ["status"]});
    let config = airlock_policy::load_config(&cfg).config.unwrap();
    let boundary = config.airlock.explore.clone().unwrap();
    let compiled = compile(
        Engine::Postgres,
        &boundary,
        &validate_plan(&boundary, &plan).unwrap(),
    )
    .unwrap();
    let exec = ExecutorProcess::start(&cfg, &[("APP_TENANT_ID", "acme")]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The raw SQL, on one read-only connection with the proposer's session.
    let raw = rt.block_on(async {
        use std::str::FromStr;
        let opts = sqlx::postgres::PgConnectOptions::from_str(&db.read_url)
            .unwrap()
            .options([("default_transaction_read_only", "on"), ("TimeZone", "UTC")]);
        let mut conn = sqlx::PgConnection::connect_with(&opts).await.unwrap();
        let mut out = Vec::new();
        for i in 0..warm + n {
            let t = Instant::now();
            let mut q = sqlx::query::<sqlx::Postgres>(sqlx::AssertSqlSafe(compiled.sql.clone()));
            for p in &compiled.params {
                q = match p {
                    Param::Tenant => q.bind("acme"),
                    Param::Principal => q.bind("agent_17"),
                    Param::Value(v) => q.bind(v.as_str().unwrap_or_default().to_owned()),
                };
            }
            let rows = q.fetch_all(&mut conn).await.unwrap();
            assert_eq!(rows.len(), 3);
            if i >= warm {
                out.push(t.elapsed());
            }
        }
        out
    });

    // The same question through app.explore_data.
    let via_mcp = rt.block_on(async {
        let client = stdio_client(
            &exec.config_path,
            &exec.socket_dir,
            &agent_env(&db.read_url),
            &[],
        )
        .await;
        let mut out = Vec::new();
        for i in 0..warm + n {
            let t = Instant::now();
            let (_, env) = call(&client, "app__explore_data", plan.clone()).await;
            let e = t.elapsed();
            assert_eq!(env["ok"], true, "{env}");
            if i >= warm {
                out.push(e);
            }
        }
        client.cancel().await.unwrap();
        out
    });
    let (raw50, raw99) = p50_p99(raw);
    let (mcp50, mcp99) = p50_p99(via_mcp);
    let report: Value = json!({
        "calls": n,
        "raw_sql_us": {"p50": raw50, "p99": raw99},
        "explore_data_us": {"p50": mcp50, "p99": mcp99},
        "overhead_p50_us": mcp50 - raw50,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
