//! Honest protocol messages for the reference billing config, which tests
//! then submit as-is or tamper with.

use airlock_ipc::client::{Client, ClientError};
use airlock_ipc::message::{
    ParamMeta, ProposalRecorded, ReadRecorded, RecordRead, Request, Response, SubmitProposal,
};
use airlock_policy::Config;
use airlock_policy::args::validate_args;
use airlock_policy::change_set::{ChangeSet, build};
use airlock_policy::config::{ContextProvider, Engine};
use airlock_policy::context::TrustedContext;
use airlock_policy::statement::select_row;
use serde_json::{Map, Value, json};

pub const WAIVER: &str = "billing.propose_late_fee_waiver";
pub const PLAN_CREDIT: &str = "support.propose_plan_credit";
pub const STATUS_CHANGE: &str = "orders.propose_status_change";

/// The reference config as JSON, to be adjusted by a test.
pub fn reference_value() -> Value {
    serde_json::from_slice(&std::fs::read(crate::reference_config()).unwrap()).unwrap()
}

pub fn load(v: &Value) -> Config {
    let loaded = airlock_policy::load_config(v);
    loaded
        .config
        .unwrap_or_else(|| panic!("test config invalid: {:#?}", loaded.report))
}

pub fn context(tenant: &str) -> TrustedContext {
    TrustedContext {
        tenant_id: tenant.into(),
        principal: "agent_17".into(),
        source: ContextProvider::Environment,
    }
}

/// The seeded invoice row (visible and patched columns).
pub fn invoice_row(id: &str, tenant: &str) -> Map<String, Value> {
    json!({
        "id": id, "tenant_id": tenant, "customer_id": "cust_acme_1", "status": "overdue",
        "balance_cents": 25500, "late_fee_cents": 5500, "waiver_reason": null,
        "updated_at": "2026-06-20T14:31:08Z"
    })
    .as_object()
    .cloned()
    .unwrap()
}

/// A seeded order row (visible columns), in `status`.
pub fn order_row(id: &str, tenant: &str, status: &str) -> Map<String, Value> {
    json!({
        "id": id, "tenant_id": tenant, "customer_id": "cust_acme_1", "status": status,
        "status_change_reason": null, "updated_at": "2026-06-20T13:00:00Z"
    })
    .as_object()
    .cloned()
    .unwrap()
}

/// A seeded customer row (visible columns).
pub fn customer_row(id: &str, tenant: &str) -> Map<String, Value> {
    json!({
        "id": id, "tenant_id": tenant, "name": "Acme Robotics", "plan": "enterprise",
        "plan_credit_cents": 0, "credit_reason": null, "updated_at": "2026-06-20T10:00:00Z"
    })
    .as_object()
    .cloned()
    .unwrap()
}

/// The evidence a proposer records for reading `row` with `capability`.
pub fn read_of(
    cfg: &Config,
    capability: &str,
    args: Value,
    row: &Map<String, Value>,
    tenant: &str,
) -> RecordRead {
    let cap = cfg.capability(capability).unwrap();
    let id_arg = cap.lookup_arg.clone();
    let visible: Map<String, Value> = cap
        .read_columns()
        .iter()
        .filter_map(|c| row.get(*c).map(|v| (c.to_string(), v.clone())))
        .collect();
    RecordRead {
        capability: capability.into(),
        args: args.as_object().cloned().unwrap(),
        context: context(tenant),
        query_fingerprint: select_row(Engine::Postgres, cap, false).fingerprint(),
        parameters: vec![
            ParamMeta {
                position: 1,
                bound_from: format!("arg:{id_arg}"),
                json_type: "string".into(),
            },
            ParamMeta {
                position: 2,
                bound_from: "trusted_context:tenant_id".into(),
                json_type: "string".into(),
            },
        ],
        rows: vec![visible],
        identity_token: None,
    }
}

/// An honest change set of `capability` with `args`, built from `row` as
/// read within `tenant`.
pub fn change_set(
    cfg: &Config,
    capability: &str,
    args: Value,
    tenant: &str,
    row: &Map<String, Value>,
) -> ChangeSet {
    let cap = cfg.capability(capability).unwrap();
    let args = validate_args(cap, Some(&args)).unwrap();
    build(cap, &args, &context(tenant), row).unwrap()
}

/// An honest late-fee waiver change set for `invoice` of `tenant`.
pub fn waiver(cfg: &Config, invoice: &str, tenant: &str, reason: &str) -> ChangeSet {
    let args = json!({"invoice_id": invoice, "reason": reason});
    change_set(cfg, WAIVER, args, tenant, &invoice_row(invoice, tenant))
}

pub async fn record(client: &mut Client, read: RecordRead) -> Result<ReadRecorded, ClientError> {
    match client.call(Request::RecordRead(read)).await? {
        Response::ReadRecorded(r) => Ok(r),
        other => panic!("unexpected {}", other.type_name()),
    }
}

pub async fn submit(
    client: &mut Client,
    change_set: ChangeSet,
    evidence_id: Option<String>,
) -> Result<ProposalRecorded, ClientError> {
    match client
        .call(Request::SubmitProposal(SubmitProposal {
            change_set,
            evidence_id,
            identity_token: None,
        }))
        .await?
    {
        Response::ProposalRecorded(r) => Ok(r),
        other => panic!("unexpected {}", other.type_name()),
    }
}

/// Record the read of INV-3001 and propose its waiver, honestly.
pub async fn honest_proposal(client: &mut Client, cfg: &Config, reason: &str) -> ProposalRecorded {
    let args = json!({"invoice_id": "INV-3001", "reason": reason});
    let ev = record(
        client,
        read_of(cfg, WAIVER, args, &invoice_row("INV-3001", "acme"), "acme"),
    )
    .await
    .expect("record read");
    submit(
        client,
        waiver(cfg, "INV-3001", "acme", reason),
        Some(ev.evidence_id),
    )
    .await
    .expect("submit proposal")
}

/// The error code of a refused call.
pub fn refusal(r: Result<impl std::fmt::Debug, ClientError>) -> String {
    match r {
        Err(ClientError::Refused(body)) => body.code.as_str().to_owned(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Raise `airlock.limits` (the per-peer intake limits) far above what one
/// machine can produce, for suites that measure capacity (soak, bench) and
/// so deliberately send more than a proposer should.
pub fn capacity_limits(config: &mut Value) {
    let airlock = &mut config["airlock"];
    if !airlock.is_object() {
        *airlock = json!({});
    }
    airlock["limits"] = json!({
        "evidence_per_window": 1_000_000_000u64,
        "proposals_per_window": 1_000_000_000u64,
        "ledger_bytes_per_day": 1u64 << 50,
    });
}
