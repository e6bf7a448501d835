//! Micro-benchmarks of the ledger's durable inserts (SQLite, WAL,
//! synchronous=FULL: one fsync per commit) in a temporary directory on the
//! same disk as the system temp dir: one read's evidence, and one proposal
//! (with the evidence of its read, as the proposer submits it).
//!
//! `cargo bench -p airlock-executor --bench ledger`
//! (set TMPDIR to measure another disk). The PostgreSQL group writes to the
//! server at AIRLOCK_TEST_POSTGRES_URL (default: the loopback one).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use airlock_executor::ledger::{
    ActorIdentity, ApplyStart, Ledger, NewEvidence, NewProposal, NewReceipt,
};
use airlock_ipc::message::ParamMeta;
use airlock_policy::args::validate_args;
use airlock_policy::change_set::build;
use airlock_policy::config::{ContextProvider, Engine};
use airlock_policy::context::TrustedContext;
use airlock_policy::statement::select_row;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

const READ: &str = "billing.inspect_invoice";
const WAIVER: &str = "billing.propose_late_fee_waiver";

/// The repository's reference config (`tests/fixtures/reference/`).
const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");

fn reference_config() -> airlock_policy::Config {
    airlock_policy::load_config_str(REFERENCE)
        .config
        .expect("the reference config loads")
}

fn invoice_row() -> Map<String, Value> {
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
    let config = reference_config();
    let dir = tempfile::Builder::new()
        .prefix("airlock-ledger-bench-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("ledger.db");
    let mut ledger = Ledger::open(&path).unwrap();
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&path).unwrap().uid()
    };
    let actor = ActorIdentity {
        uid,
        user: Some("bench".into()),
    };
    let params = vec![
        ParamMeta {
            position: 1,
            bound_from: "arg:invoice_id".into(),
            json_type: "string".into(),
        },
        ParamMeta {
            position: 2,
            bound_from: "trusted_context:tenant_id".into(),
            json_type: "string".into(),
        },
    ];
    let row = invoice_row();
    let visible = |name: &str| -> Vec<Map<String, Value>> {
        let cap = config.capability(name).unwrap();
        vec![
            cap.read_columns()
                .iter()
                .filter_map(|c| row.get(*c).map(|v| (c.to_string(), v.clone())))
                .collect(),
        ]
    };
    let read_rows = visible(READ);
    let waiver_rows = visible(WAIVER);
    let read_fp =
        select_row(Engine::Postgres, config.capability(READ).unwrap(), false).fingerprint();
    let waiver_cap = config.capability(WAIVER).unwrap();
    let waiver_fp = select_row(Engine::Postgres, waiver_cap, false).fingerprint();
    let ctx = TrustedContext {
        tenant_id: "acme".into(),
        principal: "agent_17".into(),
        source: ContextProvider::Environment,
    };
    let args = validate_args(
        waiver_cap,
        Some(&json!({"invoice_id": "INV-3001", "reason": "customer requested review"})),
    )
    .unwrap();
    let cs = build(waiver_cap, &args, &ctx, &row).unwrap();
    let role = waiver_cap
        .proposal
        .as_ref()
        .and_then(|p| p.approval.required_role.clone());

    let digest = airlock_policy::binding::capability_digest(&config, waiver_cap);
    // One waiver proposal with its evidence; returns the proposal's id.
    let propose = |l: &mut Ledger, cs: &_| -> String {
        let (ev, _) = l
            .record_evidence(NewEvidence {
                capability: WAIVER,
                tenant_id: "acme",
                principal: "agent_17",
                query_fingerprint: &waiver_fp,
                parameters: &params,
                rows: &waiver_rows,
                actor: &actor,
            })
            .unwrap();
        l.record_proposal(NewProposal {
            change_set: cs,
            capability_digest: &digest,
            evidence_id: Some(&ev),
            required_role: role.as_deref(),
            ttl_ms: 86_400_000,
            actor: &actor,
        })
        .unwrap()
        .proposal_id
    };
    // A proposal's whole story: proposed, approved, applied (job start and
    // receipt); each decision and job start re-verifies its chain segment.
    let whole_story = |l: &mut Ledger| -> String {
        let id = propose(l, &cs);
        l.record_decision(&id, true, &actor, None, &digest).unwrap();
        let ApplyStart::Run { job_id, .. } = l
            .begin_apply(&id, "sql_update", &id, &actor, &digest)
            .unwrap()
        else {
            panic!("a new apply runs")
        };
        let receipt = json!({"receipt_hash": "sha256:00", "status": "applied"});
        l.record_receipt(NewReceipt {
            job_id: &job_id,
            proposal_id: &id,
            status: "applied",
            receipt: &receipt,
            detail: None,
            fence: None,
        })
        .unwrap();
        id
    };
    // The three writes, on a ledger of either engine.
    let mut writes = |group: &str, samples: usize, l: &mut Ledger| {
        let mut g = c.benchmark_group(group);
        g.sample_size(samples);
        g.bench_function("record_evidence (one read)", |b| {
            b.iter(|| {
                l.record_evidence(NewEvidence {
                    capability: READ,
                    tenant_id: "acme",
                    principal: "agent_17",
                    query_fingerprint: &read_fp,
                    parameters: &params,
                    rows: black_box(&read_rows),
                    actor: &actor,
                })
                .unwrap()
            })
        });
        g.bench_function("record_evidence + record_proposal (one proposal)", |b| {
            b.iter(|| propose(l, black_box(&cs)))
        });
        // One apply's ledger work on a proposal: approve, start the job,
        // record its receipt (each re-verifies the proposal's chain segment).
        g.bench_function("approve + begin_apply + record_receipt (one apply)", |b| {
            b.iter(|| whole_story(l))
        });
        g.finish();
    };
    writes("ledger (WAL, synchronous=FULL)", 50, &mut ledger);
    // The same writes on a PostgreSQL ledger (a fleet's; the server at
    // AIRLOCK_TEST_POSTGRES_URL, in a schema of its own, dropped after):
    // each call its own transaction — the chain lock, a durable commit.
    let url = std::env::var("AIRLOCK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let schema = format!("bench_ledger_{}", std::process::id());
    Ledger::migrate_postgres(&url, &schema).unwrap();
    let mut pg = Ledger::open_postgres(&url, &schema, 10_000).unwrap();
    writes("ledger on PostgreSQL (synchronous_commit=on)", 30, &mut pg);
    drop(pg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut c)
            .await
            .unwrap();
    });
    // Reads on a ledger of a fixed size (STORIES whole stories: evidence,
    // proposal, approval, job start, receipt — 5 events each), so runs and
    // builds compare: the whole-ledger verify, and one proposal's lookup
    // with and without its chain-segment verification (what approve and
    // apply add).
    const STORIES: usize = 2_000;
    let fixed = dir.path().join("fixed.db");
    let mut fixed_ledger = Ledger::open(&fixed).unwrap();
    fixed_ledger
        .begin_batch(airlock_executor::ledger::Durability::Deferred)
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..STORIES {
        ids.push(whole_story(&mut fixed_ledger));
    }
    fixed_ledger.commit_batch().unwrap();
    let middle = ids[STORIES / 2].clone();
    let mut g = c.benchmark_group("ledger reads (2,000 stories, 10,000 events)");
    g.sample_size(10);
    g.bench_function("verify (whole ledger)", |b| {
        b.iter(|| assert!(fixed_ledger.verify().unwrap().ok))
    });
    g.sample_size(100);
    g.bench_function("proposal (one lookup)", |b| {
        b.iter(|| fixed_ledger.proposal(black_box(&middle)).unwrap().unwrap())
    });
    g.bench_function("verified_proposal (lookup + segment verify)", |b| {
        b.iter(|| {
            fixed_ledger
                .verified_proposal(black_box(&middle))
                .unwrap()
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(ledger, benches);
criterion_main!(ledger);
