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

criterion_group!(policy, benches);
criterion_main!(policy);
