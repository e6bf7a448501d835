//! Arbitrary JSON as a Scoped Explore plan against a boundary of three
//! related resources: validation never panics; an accepted plan compiles on
//! every engine with one tenant parameter per table read and every value
//! bound; its normal form validates to the same variant; and releasing any
//! rows for it never panics.
#![no_main]

use std::sync::OnceLock;

use airlock_policy::config::Engine;
use airlock_policy::explore::compile::{Param, compile};
use airlock_policy::explore::{Boundary, validate_plan};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const REFERENCE: &str = include_str!("../../../tests/fixtures/reference/airlock.reference.json");

fn boundary() -> &'static Boundary {
    static B: OnceLock<Boundary> = OnceLock::new();
    B.get_or_init(|| {
        let mut v: Value = serde_json::from_str(REFERENCE).expect("reference JSON");
        v["airlock"] = json!({"explore": {"source": "app_postgres", "resources": {
            "tickets": {"schema": "public", "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id",
                "principal_scope_key": "agent",
                "fields": {
                    "id": {"type": "text", "uses": ["rows"]},
                    "status": {"type": "text", "uses": ["rows", "dimension", "filter"], "values": ["open", "closed"]},
                    "amount": {"type": "number", "uses": ["measure", "filter", "dimension"], "measures": ["sum", "avg", "min", "max"]},
                    "opened_at": {"type": "time", "uses": ["rows", "time", "filter"]},
                    "customer_id": {"type": "text", "uses": ["count_distinct", "filter"]},
                    "secret": {"type": "text", "uses": ["dimension"], "withheld": true}
                },
                "kept_out": ["email"],
                "relationships": {"customer": {"column": "customer_id", "resource": "customers"}}},
            "customers": {"schema": "public", "table": "customers", "primary_key": "id", "tenant_key": "tenant_id",
                "fields": {"segment": {"type": "text", "uses": ["dimension", "filter"]}},
                "relationships": {"account": {"column": "account_id", "resource": "accounts"}}},
            "accounts": {"schema": "public", "table": "accounts", "primary_key": "id", "tenant_key": "tenant_id",
                "fields": {"tier": {"type": "text", "uses": ["dimension"]}}}
        }}});
        airlock_policy::load_config(&v)
            .config
            .and_then(|c| c.airlock.explore)
            .expect("the fuzz boundary loads")
    })
}

fuzz_target!(|data: &[u8]| {
    // A plan, or `[plan, rows]` to release hostile decoded rows too.
    let Ok(input) = airlock_policy::strict_json::parse(data, 32) else { return };
    let (plan, rows) = match &input {
        Value::Array(a) if a.len() == 2 => (a[0].clone(), a[1].clone()),
        _ => (input.clone(), Value::Null),
    };
    let b = boundary();
    let Ok(valid) = validate_plan(b, &plan) else { return };
    for engine in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
        let c = compile(engine, b, &valid).expect("an accepted plan compiles");
        let tables = 1 + c.sql.matches("LEFT JOIN").count();
        let tenants = c.params.iter().filter(|p| **p == Param::Tenant).count();
        assert_eq!(tenants, tables, "{}", c.sql);
        let placeholders = match engine {
            Engine::Postgres => c.sql.matches('$').count(),
            _ => c.sql.matches('?').count(),
        };
        assert_eq!(placeholders, c.params.len(), "{}", c.sql);
        assert!(!c.sql.contains("email"));
    }
    let again = validate_plan(b, &valid.normalized()).expect("the normal form is a valid plan");
    assert_eq!(again.charge(b), valid.charge(b));
    // Any decoded rows, including hostile ones, release without panicking.
    let rows: Vec<Map<String, Value>> = rows
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    let _ = airlock_policy::explore::release::release(b, &valid, &rows);
});
