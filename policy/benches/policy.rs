//! Micro-benchmarks of the pure policy work on every call: loading the
//! reviewed config (proposer and executor start-up), argument validation
//! (every tool call), building a change set (every proposal, in the
//! proposer), re-verifying it (every proposal, in the executor), the
//! canonical hash, and the secret scan the ledger runs on every record.
//!
//! `cargo bench -p airlock-policy --bench policy`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use airlock_policy::args::validate_args;
use airlock_policy::canonical::{canonical_json, hash_value};
use airlock_policy::change_set::{build, verify};
use airlock_policy::config::ContextProvider;
use airlock_policy::context::TrustedContext;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const WAIVER: &str = "billing.propose_late_fee_waiver";

/// The repository's reference config (`tests/fixtures/reference/`).
const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");

fn context() -> TrustedContext {
    TrustedContext {
        tenant_id: "acme".into(),
        principal: "agent_17".into(),
        source: ContextProvider::Environment,
    }
}

fn invoice_row() -> serde_json::Map<String, Value> {
    json!({
        "id": "INV-3001", "tenant_id": "acme", "customer_id": "cust_acme_1", "status": "overdue",
        "balance_cents": 25500, "late_fee_cents": 5500, "waiver_reason": null,
        "updated_at": "2026-06-20T14:31:08Z"
    })
    .as_object()
    .cloned()
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let text = REFERENCE;
    c.bench_function("config/load reference config", |b| {
        b.iter(|| {
            let loaded = airlock_policy::load_config_str(black_box(text));
            assert!(loaded.config.is_some());
            loaded
        })
    });

    let config = airlock_policy::load_config_str(text)
        .config
        .expect("the reference config loads");
    let cap = config.capability(WAIVER).expect("waiver capability");
    let raw_args = json!({"invoice_id": "INV-3001", "reason": "customer requested review"});
    c.bench_function("args/validate_args (waiver)", |b| {
        b.iter(|| validate_args(cap, Some(black_box(&raw_args))).unwrap())
    });

    let args = validate_args(cap, Some(&raw_args)).unwrap();
    let ctx = context();
    let row = invoice_row();
    c.bench_function("change_set/build (waiver)", |b| {
        b.iter(|| build(cap, black_box(&args), &ctx, black_box(&row)).unwrap())
    });

    let cs = build(cap, &args, &ctx, &row).unwrap();
    c.bench_function("change_set/verify (executor re-validation)", |b| {
        b.iter(|| verify(&config, black_box(&cs), &|t| t == "acme").unwrap())
    });

    c.bench_function("change_set/hash (canonical sha256)", |b| {
        b.iter(|| black_box(&cs).hash())
    });
    let value = serde_json::to_value(&cs).unwrap();
    c.bench_function("canonical/canonical_json (change set)", |b| {
        b.iter(|| canonical_json(black_box(&value)))
    });
    c.bench_function("canonical/hash_value (change set)", |b| {
        b.iter(|| hash_value(black_box(&value)))
    });
    // The ledger refuses secret material in every record it writes.
    c.bench_function("secrets/find_secrets (change set)", |b| {
        b.iter(|| {
            let found = airlock_policy::secrets::find_secrets(black_box(&value));
            assert!(found.is_empty());
            found
        })
    });
}

/// Scoped Explore: what every `app.explore_data` call does in policy, in
/// the proposer (validate, compile) and again in the executor (validate,
/// charge), and the release of a 3-group result.
fn explore(c: &mut Criterion) {
    use airlock_policy::config::Engine;
    use airlock_policy::explore::{compile::compile, release::release, validate_plan};
    let mut v: Value = serde_json::from_str(REFERENCE).unwrap();
    v["airlock"] = json!({"explore": {
        "source": "app_postgres",
        "resources": {
            "tickets": {"schema": "public", "table": "tickets", "primary_key": "id", "tenant_key": "tenant_id",
                "fields": {
                    "status": {"type": "text", "uses": ["dimension", "filter"], "values": ["open", "pending", "closed"]},
                    "amount_cents": {"type": "number", "uses": ["measure", "filter"]},
                    "opened_at": {"type": "time", "uses": ["time", "filter"]},
                    "customer_id": {"type": "text", "uses": ["count_distinct"]}
                },
                "relationships": {"customer": {"column": "customer_id", "resource": "customers"}}},
            "customers": {"schema": "public", "table": "customers", "primary_key": "id", "tenant_key": "tenant_id",
                "fields": {"segment": {"type": "text", "uses": ["dimension"]}}}
        }
    }});
    let config = airlock_policy::load_config(&v)
        .config
        .expect("the boundary loads");
    let boundary = config.airlock.explore.clone().expect("a boundary");
    let plan = json!({"kind": "aggregate", "resource": "tickets",
        "measures": [{"function": "count"}, {"function": "sum", "field": "amount_cents"}],
        "dimensions": ["status", {"field": "segment", "relationship": "customer"}],
        "time_window": {"field": "opened_at", "start": "2026-01-01", "end": "2026-04-01"},
        "where": [{"field": "amount_cents", "op": "gte", "value": 100}],
        "order_by": {"kind": "measure", "index": 0, "direction": "desc"}, "top_n": 10});
    c.bench_function("explore/validate_plan + compile (grouped, joined)", |b| {
        b.iter(|| {
            let p = validate_plan(&boundary, black_box(&plan)).unwrap();
            compile(Engine::Postgres, &boundary, &p).unwrap()
        })
    });
    c.bench_function("explore/validate_plan + charge (executor)", |b| {
        b.iter(|| {
            validate_plan(&boundary, black_box(&plan))
                .unwrap()
                .charge(&boundary)
        })
    });
    let valid = validate_plan(&boundary, &plan).unwrap();
    let rows: Vec<serde_json::Map<String, Value>> = ["closed", "open", "pending"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"d0": s, "d1": "smb", "n": 4 + i * 3, "m0": 4 + i * 3, "m1": "12345", "c1": 4 + i * 3})
                .as_object()
                .cloned()
                .unwrap()
        })
        .collect();
    c.bench_function("explore/release (3 groups, one suppressed)", |b| {
        b.iter(|| release(&boundary, &valid, black_box(&rows)).unwrap())
    });
}

criterion_group!(policy, benches, explore);
criterion_main!(policy);
