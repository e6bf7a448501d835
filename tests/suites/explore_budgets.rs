//! Issue 17: Scoped Explore's privacy budgets and query audit, kept by the
//! real executor in its ledger and driven over its real proposer socket
//! the way the proposer drives them (reserve before the query, commit or
//! release after). No source database is needed at this layer: the
//! proposer's query and release are not the executor's business; what it
//! is told about them is.
//!
//! Each defence is shown holding, and — where a configuration can switch
//! it off — the same sequence is shown succeeding without it, so the test
//! would notice the defence going missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

use airlock_ipc::Role;
use airlock_ipc::client::{Client, ClientError};
use airlock_ipc::error::{ErrorBody, ErrorCode};
use airlock_ipc::message::{
    ExploreCommit, ExploreCommitted, ExploreRelease, ExploreReserve, ExploreReserved, Request,
    Response,
};
use airlock_policy::config::{ContextProvider, Engine};
use airlock_policy::context::TrustedContext;
use airlock_tests::databases::{Database, execute, ledger_rows};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::{airlock, reference_config, runtime};
use serde_json::{Value, json};

/// The executor's environment (its default tenant; `airlock.proposers`
/// below decides what a proposer may claim).
const ENV: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "acme")];

/// The reference config with `airlock.explore` over its invoices (minimum
/// cohort 5: protected) and orders (minimum cohort 1), `limits` as given,
/// and a proposer (this test's uid 0) that may claim `acme` and `globex`.
fn config(limits: Value) -> Value {
    config_with(limits, json!({}))
}

fn config_with(limits: Value, extra_airlock: Value) -> Value {
    let mut c: Value = serde_json::from_slice(&std::fs::read(reference_config()).unwrap()).unwrap();
    let mut airlock = json!({
        "proposers": [{"uid": 0, "tenants": ["acme", "globex"]}],
        "approvers": [{"uid": 0, "roles": "*"}],
        "explore": {
            "source": "app_postgres",
            "limits": limits,
            "resources": {
                "invoices": {
                    "schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id",
                    "fields": {
                        "status": {"type": "text", "uses": ["dimension", "filter"]},
                        "balance_cents": {"type": "number", "uses": ["measure", "rows"], "measures": ["sum", "avg"]},
                        "late_fee_cents": {"type": "number", "uses": ["measure", "filter", "rows"]},
                        "updated_at": {"type": "time", "uses": ["time"], "buckets": ["month"]}
                    }
                },
                "orders": {
                    "schema": "public", "table": "orders", "primary_key": "id", "tenant_key": "tenant_id",
                    "minimum_cohort_size": 1,
                    "fields": {"status": {"type": "text", "uses": ["dimension", "filter"]}}
                }
            }
        }
    });
    for (k, v) in extra_airlock.as_object().unwrap() {
        airlock[k] = v.clone();
    }
    c["airlock"] = airlock;
    c
}

/// Invoices counted by status, the first `top_n` groups (a cohort-protected
/// grouping over every invoice; each `top_n` is another variant).
fn grouped(top_n: u32) -> Value {
    json!({
        "kind": "aggregate", "resource": "invoices",
        "measures": [{"function": "count"}],
        "dimensions": ["status"],
        "top_n": top_n
    })
}

/// A grouping over the invoices with a late fee of at least `fee`.
fn grouped_where(fee: i64) -> Value {
    json!({
        "kind": "aggregate", "resource": "invoices",
        "measures": [{"function": "count"}],
        "dimensions": ["status"],
        "where": [{"field": "late_fee_cents", "op": "gte", "value": fee}]
    })
}

/// The scalar total over the same cohort as [`grouped_where`].
fn total_where(fee: i64) -> Value {
    json!({
        "kind": "aggregate", "resource": "invoices",
        "measures": [{"function": "count"}],
        "where": [{"field": "late_fee_cents", "op": "gte", "value": fee}]
    })
}

/// Ten invoices' two amounts (a rows plan: at most 20 cells).
fn rows() -> Value {
    json!({"kind": "rows", "resource": "invoices", "select": ["balance_cents", "late_fee_cents"], "limit": 10})
}

/// Orders counted by status (no cohort protection).
fn orders(top_n: u32) -> Value {
    json!({"kind": "aggregate", "resource": "orders", "measures": [{"function": "count"}], "dimensions": ["status"], "top_n": top_n})
}

fn ctx(tenant: &str, principal: &str) -> TrustedContext {
    TrustedContext {
        tenant_id: tenant.into(),
        principal: principal.into(),
        source: ContextProvider::Environment,
    }
}

async fn proposer(exec: &ExecutorProcess) -> Client {
    exec.client(Role::Proposer).await
}

fn refusal(r: Result<Response, ClientError>) -> ErrorBody {
    match r {
        Err(ClientError::Refused(body)) => body,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn try_reserve(
    c: &mut Client,
    tenant: &str,
    principal: &str,
    plan: Value,
) -> Result<ExploreReserved, ErrorBody> {
    match c
        .call(Request::ExploreReserve(ExploreReserve {
            context: ctx(tenant, principal),
            plan,
            identity_token: None,
        }))
        .await
    {
        Ok(Response::ExploreReserved(r)) => Ok(r),
        other => Err(refusal(other)),
    }
}

async fn reserve(c: &mut Client, plan: Value) -> ExploreReserved {
    try_reserve(c, "acme", "ann", plan)
        .await
        .unwrap_or_else(|e| panic!("reserve refused: {e}"))
}

async fn try_commit(
    c: &mut Client,
    id: &str,
    cells: u64,
    suppressed_groups: u64,
    complete: bool,
) -> Result<ExploreCommitted, ErrorBody> {
    match c
        .call(Request::ExploreCommit(ExploreCommit {
            reservation_id: id.into(),
            cells,
            suppressed_groups,
            complete,
        }))
        .await
    {
        Ok(Response::ExploreCommitted(r)) => Ok(r),
        other => Err(refusal(other)),
    }
}

async fn commit(c: &mut Client, id: &str, cells: u64, suppressed: u64, complete: bool) {
    try_commit(c, id, cells, suppressed, complete)
        .await
        .unwrap_or_else(|e| panic!("commit refused: {e}"));
}

async fn release(c: &mut Client, id: &str, reason: &str) -> Result<(), ErrorBody> {
    match c
        .call(Request::ExploreRelease(ExploreRelease {
            reservation_id: id.into(),
            reason: reason.into(),
        }))
        .await
    {
        Ok(Response::ExploreReleased(_)) => Ok(()),
        other => Err(refusal(other)),
    }
}

/// A query that ran and released nothing suppressed.
async fn ask(c: &mut Client, plan: Value) -> ExploreReserved {
    let r = reserve(c, plan).await;
    commit(c, &r.reservation_id, 0, 0, false).await;
    r
}

fn assert_exhausted(e: &ErrorBody, budget: &str) {
    assert_eq!(e.code, ErrorCode::BudgetExhausted, "{e}");
    let d = e.details.as_ref().expect("details");
    assert_eq!(d["budget"], budget, "{e}");
    assert!(
        d["limit"].as_str().unwrap().starts_with("max_"),
        "names the setting: {d}"
    );
}

/// `airlock explore audit … --json` entries.
fn audit(exec: &ExecutorProcess, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["explore", "audit", "--json"];
    args.extend_from_slice(extra);
    let out = exec.cli(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    v["entries"].as_array().unwrap().clone()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ledger_db(store: &Path) -> Database {
    Database {
        engine: Engine::Sqlite,
        name: "ledger".into(),
        read_url: String::new(),
        write_url: String::new(),
        admin_url: format!("sqlite://{}", store.display()),
    }
}

fn verify(store: &Path) -> Value {
    let out = airlock(&[
        "ledger",
        "verify",
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify is not JSON ({e}): {}", text(&out)))
}

#[test]
fn the_query_budget_holds_across_connections_and_a_restart() {
    let mut exec =
        ExecutorProcess::start(&config(json!({"max_queries_per_rolling_24_hours": 3})), ENV);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        ask(&mut c, rows()).await;
        ask(&mut c, grouped(3)).await;
        // A released (failed) query is still a query.
        let r = reserve(&mut c, orders(2)).await;
        assert_eq!(r.remaining.queries, 0);
        release(&mut c, &r.reservation_id, "source_timeout")
            .await
            .unwrap();
        let e = try_reserve(&mut c, "acme", "ann", rows())
            .await
            .unwrap_err();
        assert_exhausted(&e, "queries");
        let retry = e.details.unwrap()["retry_after_ms"].as_u64().unwrap();
        assert!(
            (86_000_000..=86_400_000).contains(&retry),
            "the first query leaves the window in about 24 h: {retry}"
        );
        // A new connection (a new MCP session) starts from the same count.
        let mut fresh = proposer(&exec).await;
        let e = try_reserve(&mut fresh, "acme", "ann", orders(1))
            .await
            .unwrap_err();
        assert_exhausted(&e, "queries");
    });
    // So does a restarted executor on the same ledger.
    exec.stop();
    exec.restart(ENV);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        let e = try_reserve(&mut c, "acme", "ann", rows())
            .await
            .unwrap_err();
        assert_exhausted(&e, "queries");
        // Another principal of the tenant, and another tenant, have their own.
        reserve_as(&mut c, "acme", "bob").await;
        reserve_as(&mut c, "globex", "ann").await;
    });
    exec.stop();

    // Without the budget (a large one), the same sequence goes through.
    let open = ExecutorProcess::start(
        &config(json!({"max_queries_per_rolling_24_hours": 1000})),
        ENV,
    );
    runtime().block_on(async {
        let mut c = proposer(&open).await;
        ask(&mut c, rows()).await;
        ask(&mut c, grouped(3)).await;
        let r = reserve(&mut c, orders(2)).await;
        release(&mut c, &r.reservation_id, "source_timeout")
            .await
            .unwrap();
        reserve(&mut c, rows()).await;
    });
}

async fn reserve_as(c: &mut Client, tenant: &str, principal: &str) {
    let r = try_reserve(c, tenant, principal, rows())
        .await
        .unwrap_or_else(|e| panic!("{tenant}/{principal}: {e}"));
    assert_eq!(
        r.remaining.queries, 2,
        "{tenant}/{principal}: its own budget"
    );
}

#[test]
fn sixteen_distinct_variants_then_refused_and_an_exact_replay_still_admitted() {
    let exec = ExecutorProcess::start(&config(json!({})), ENV);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        for n in 1..=16 {
            let r = ask(&mut c, grouped(n)).await;
            assert!(!r.replay);
            assert_eq!(r.remaining.variants, 16 - u64::from(n));
        }
        let e = try_reserve(&mut c, "acme", "ann", grouped(17))
            .await
            .unwrap_err();
        assert_exhausted(&e, "differencing_variants");
        // The same question as the first, written another way: a replay.
        let same = json!({
            "top_n": 1, "dimensions": [{"field": "status"}],
            "measures": [{"function": "count"}, {"function": "count"}],
            "resource": "invoices", "kind": "aggregate"
        });
        let r = reserve(&mut c, same).await;
        assert!(r.replay, "an exact replay reuses its variant");
        assert_eq!(r.remaining.variants, 0);
        commit(&mut c, &r.reservation_id, 2, 0, false).await;
        // Other resources, plans without cohort protection, other
        // principals: not these variants.
        reserve(&mut c, orders(7)).await;
        reserve(&mut c, rows()).await;
        assert!(
            try_reserve(&mut c, "acme", "bob", grouped(17))
                .await
                .is_ok()
        );
        let e = try_reserve(&mut c, "acme", "ann", grouped(18))
            .await
            .unwrap_err();
        assert_exhausted(&e, "differencing_variants");
    });

    // The differencing attack without the budget: every variant runs.
    let open = ExecutorProcess::start(
        &config(json!({"max_differencing_variants_per_rolling_24_hours": 10000})),
        ENV,
    );
    runtime().block_on(async {
        let mut c = proposer(&open).await;
        for n in 1..=17 {
            ask(&mut c, grouped(n)).await;
        }
    });
}

#[test]
fn the_cell_budget_holds_pending_reservations_at_their_most_and_charges_what_was_released() {
    let exec = ExecutorProcess::start(
        &config(json!({"max_extracted_cells_per_rolling_24_hours": 50})),
        ENV,
    );
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        let a = reserve(&mut c, rows()).await;
        assert_eq!(a.remaining.cells, 30);
        let b = reserve(&mut c, rows()).await;
        assert_eq!(b.remaining.cells, 10);
        // Two sessions' reservations hold 40 of 50: a third 20 is refused.
        let e = try_reserve(&mut c, "acme", "ann", rows()).await.unwrap_err();
        assert_exhausted(&e, "cells");
        // The first released 4 cells: its other 16 come back.
        let done = try_commit(&mut c, &a.reservation_id, 4, 0, false)
            .await
            .unwrap();
        assert_eq!(done.remaining.cells, 26);
        let third = reserve(&mut c, rows()).await;
        assert_eq!(third.remaining.cells, 6);
        // A commit may not claim more cells than were reserved.
        let e = try_commit(&mut c, &b.reservation_id, 21, 0, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{e}");
        // A release gives back all its cells.
        release(&mut c, &b.reservation_id, "source_unavailable")
            .await
            .unwrap();
        let e = try_reserve(&mut c, "acme", "ann", rows()).await;
        assert_eq!(e.unwrap().remaining.cells, 6);
        // A plan larger than the whole budget can never run.
        let huge = json!({"kind": "rows", "resource": "invoices", "select": ["balance_cents", "late_fee_cents"], "limit": 26});
        let e = try_reserve(&mut c, "acme", "ann", huge).await.unwrap_err();
        assert_exhausted(&e, "cells");
        assert_eq!(e.details.unwrap()["retry_after_ms"], Value::Null);
    });
}

#[test]
fn eight_connections_racing_for_the_last_query_get_exactly_one() {
    for (limit, admitted) in [(5u64, 1usize), (12, 8)] {
        let exec = ExecutorProcess::start(
            &config(json!({"max_queries_per_rolling_24_hours": limit})),
            ENV,
        );
        runtime().block_on(async {
            let mut c = proposer(&exec).await;
            for _ in 0..4 {
                ask(&mut c, rows()).await;
            }
            // Eight sessions, connected first, then all asking at once.
            let mut clients = Vec::new();
            for _ in 0..8 {
                clients.push(proposer(&exec).await);
            }
            let mut tasks = tokio::task::JoinSet::new();
            for mut client in clients {
                tasks.spawn(async move { try_reserve(&mut client, "acme", "ann", rows()).await });
            }
            let (mut ok, mut refused) = (0, 0);
            while let Some(r) = tasks.join_next().await {
                match r.unwrap() {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        assert_exhausted(&e, "queries");
                        refused += 1;
                    }
                }
            }
            assert_eq!(
                (ok, refused),
                (admitted, 8 - admitted),
                "limit {limit}: {ok} admitted"
            );
        });
    }
}

#[test]
fn a_total_and_a_grouping_with_a_withheld_group_are_never_both_released() {
    let exec = ExecutorProcess::start(&config(json!({})), ENV);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        // A grouping over cohort "late fee ≥ 100" withholds a small group …
        let g = reserve(&mut c, grouped_where(100)).await;
        commit(&mut c, &g.reservation_id, 4, 1, false).await;
        // … so that cohort's total is refused before its query could run.
        let e = try_reserve(&mut c, "acme", "ann", total_where(100))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ComplementaryRelease, "{e}");
        // Another cohort's total is fine.
        let t = reserve(&mut c, total_where(200)).await;
        commit(&mut c, &t.reservation_id, 1, 0, true).await;
        // The reverse: that total was released, so a grouping of its
        // cohort that withheld a group cannot be released …
        let g2 = reserve(&mut c, grouped_where(200)).await;
        let before = g2.remaining.queries;
        let e = try_commit(&mut c, &g2.reservation_id, 4, 1, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ComplementaryRelease, "{e}");
        // … and its query stays charged.
        let next = reserve(&mut c, rows()).await;
        assert_eq!(next.remaining.queries, before - 1);
        // The same grouping withholding nothing is released.
        let g3 = reserve(&mut c, grouped_where(200)).await;
        commit(&mut c, &g3.reservation_id, 6, 0, false).await;
    });
    let entries = audit(&exec, &[]);
    let refused: Vec<&Value> = entries
        .iter()
        .filter(|e| e["reason"] == "complementary_release")
        .collect();
    assert_eq!(refused.len(), 2, "{entries:#?}");
    assert!(refused.iter().all(|e| e["outcome"] == "refused"));

    // Without cohort protection (a minimum cohort of 1, nothing withheld
    // by the release) nothing is refused: the rule is what stops it.
    let mut unprotected = config(json!({}));
    unprotected["airlock"]["explore"]["resources"]["invoices"]["minimum_cohort_size"] = json!(1);
    let open = ExecutorProcess::start(&unprotected, ENV);
    runtime().block_on(async {
        let mut c = proposer(&open).await;
        let g = reserve(&mut c, grouped_where(100)).await;
        commit(&mut c, &g.reservation_id, 4, 1, false).await;
        let t = reserve(&mut c, total_where(100)).await;
        commit(&mut c, &t.reservation_id, 1, 0, true).await;
    });
}

#[test]
fn invalid_plans_are_refused_and_audited_without_a_plan() {
    let exec = ExecutorProcess::start(&config(json!({})), ENV);
    // (plan, the plan error's code, the resource the audit keeps)
    let cases = [
        (
            json!({"kind": "aggregate", "resource": "invoices", "measures": [{"function": "count"}], "dimensions": ["waiver_reason"]}),
            "field_forbidden",
            Some("invoices"),
        ),
        (
            json!({"kind": "rows", "resource": "invoices", "sql": "SELECT * FROM invoices"}),
            "plan_invalid",
            Some("invoices"),
        ),
        (
            json!({"kind": "aggregate", "resource": "payroll", "measures": [{"function": "count"}]}),
            "resource_forbidden",
            None,
        ),
        (
            json!({"kind": "aggregate", "resource": "invoices", "measures": [{"function": "count"}], "where": [{"field": "tenant_id", "op": "eq", "value": "globex"}]}),
            "scope_forbidden",
            Some("invoices"),
        ),
    ];
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        for (plan, code, _) in &cases {
            let e = try_reserve(&mut c, "acme", "ann", plan.clone())
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::PlanRefused, "{e}");
            let d = e.details.unwrap();
            assert_eq!(d["code"], *code, "{d}");
            assert!(d["path"].is_string(), "{d}");
        }
        // Nothing was reserved: the query budget is untouched.
        assert_eq!(reserve(&mut c, rows()).await.remaining.queries, 499);
        // Too large a plan is refused before anything.
        let big = json!({"kind": "rows", "resource": "invoices", "select": ["balance_cents"], "pad": "x".repeat(17_000)});
        let e = try_reserve(&mut c, "acme", "ann", big).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge, "{e}");
    });
    let entries = audit(&exec, &[]);
    assert_eq!(entries.len(), 4, "one per refused plan: {entries:#?}");
    for (entry, (_, code, resource)) in entries.iter().rev().zip(&cases) {
        assert_eq!(entry["outcome"], "refused");
        assert_eq!(entry["reason"], format!("plan_refused:{code}"));
        assert_eq!(entry["plan"], Value::Null);
        assert_eq!(entry["variant"], Value::Null);
        assert_eq!(entry["resource"], json!(resource), "{entry}");
    }
    assert!(
        !serde_json::to_string(&entries).unwrap().contains("payroll"),
        "a made-up resource name is not kept"
    );
}

#[test]
fn without_a_boundary_explore_is_refused_and_with_one_a_foreign_tenant_is_too() {
    let mut plain = config(json!({}));
    plain["airlock"].as_object_mut().unwrap().remove("explore");
    let exec = ExecutorProcess::start(&plain, ENV);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        let e = try_reserve(&mut c, "acme", "ann", rows())
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PolicyViolation, "{e}");
        assert!(e.message.contains("airlock.explore"), "{e}");
    });
    drop(exec);

    let exec = ExecutorProcess::start(&config(json!({})), ENV);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        let e = try_reserve(&mut c, "initech", "ann", rows())
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TenantNotAllowed, "{e}");
        // A reservation is ended only by a peer that holds it.
        let e = try_commit(&mut c, "exr_00000000000000000000", 1, 0, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{e}");
        let e = release(&mut c, "exr_00000000000000000000", "source_timeout")
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{e}");
        // A release reason is a code, never free text (a row value).
        let r = reserve(&mut c, rows()).await;
        let e = release(&mut c, &r.reservation_id, "INV-3001 balance 5500")
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{e}");
        // The operator's message is refused on the proposer socket.
        let e = refusal(
            c.call(Request::ExploreAudit(
                airlock_ipc::message::ExploreAuditQuery {
                    limit: 10,
                    tenant_id: None,
                },
            ))
            .await,
        );
        assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
    });
    assert!(
        audit(&exec, &[]).is_empty(),
        "a foreign tenant's attempt is not audited under it"
    );
}

#[test]
fn every_reserve_counts_against_the_proposer_intake_limit() {
    let exec = ExecutorProcess::start(
        &config_with(
            json!({}),
            json!({"limits": {"rate_window_seconds": 3600, "evidence_per_window": 3}}),
        ),
        ENV,
    );
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        for plan in [rows(), json!({"kind": "nonsense"}), rows()] {
            let _ = try_reserve(&mut c, "acme", "ann", plan).await;
        }
        let e = try_reserve(&mut c, "acme", "ann", json!({"kind": "nonsense"}))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited, "{e}");
    });
    assert_eq!(audit(&exec, &[]).len(), 1, "only the admitted refusal");
}

#[test]
fn an_expired_reservation_cannot_be_committed_and_its_query_stays_charged() {
    let exec = ExecutorProcess::start(&config(json!({})), ENV);
    let ledger = ledger_db(&exec.store);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        let r = reserve(&mut c, grouped(5)).await;
        // Two minutes pass (the reservation is aged in the ledger file).
        execute(
            &ledger,
            &format!(
                "UPDATE explore_reservations SET reserved_ms = reserved_ms - 120000 WHERE reservation_id = '{}';",
                r.reservation_id
            ),
        );
        let e = try_commit(&mut c, &r.reservation_id, 2, 0, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Expired, "{e}");
        // Gone: a second try is unknown.
        let e = try_commit(&mut c, &r.reservation_id, 2, 0, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{e}");
        // One minute and a half is not expired (control).
        let fresh = reserve(&mut c, grouped(6)).await;
        assert_eq!(fresh.remaining.queries, 498, "the expired query counts");
        assert_eq!(
            fresh.remaining.variants, 15,
            "the expired variant does not"
        );
        execute(
            &ledger,
            &format!(
                "UPDATE explore_reservations SET reserved_ms = reserved_ms - 90000 WHERE reservation_id = '{}';",
                fresh.reservation_id
            ),
        );
        commit(&mut c, &fresh.reservation_id, 2, 0, false).await;
        // An abandoned reservation is audited by the next request.
        let abandoned = reserve(&mut c, rows()).await;
        execute(
            &ledger,
            &format!(
                "UPDATE explore_reservations SET reserved_ms = reserved_ms - 600000 WHERE reservation_id = '{}';",
                abandoned.reservation_id
            ),
        );
        reserve(&mut c, rows()).await;
    });
    let entries = audit(&exec, &[]);
    let outcomes: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("failed", "reservation_expired"),
            ("released", "-"),
            ("failed", "reservation_expired"),
        ]
    );
}

#[test]
fn the_audit_lists_normalized_plans_and_outcomes_and_the_ledger_verifies_it() {
    let mut exec = ExecutorProcess::start(&config(json!({})), ENV);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        let g = reserve(&mut c, grouped_where(100)).await;
        commit(&mut c, &g.reservation_id, 4, 1, false).await;
        let o = reserve(&mut c, orders(3)).await;
        commit(&mut c, &o.reservation_id, 6, 0, true).await;
        let r = reserve(&mut c, rows()).await;
        release(&mut c, &r.reservation_id, "source_timeout")
            .await
            .unwrap();
        let _ = try_reserve(&mut c, "acme", "ann", total_where(100)).await;
        let other = try_reserve(&mut c, "globex", "gil", orders(2))
            .await
            .unwrap();
        commit(&mut c, &other.reservation_id, 2, 0, true).await;
    });
    let entries = audit(&exec, &[]);
    let summary: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["tenant_id"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("globex", "released", "-"),
            ("acme", "refused", "complementary_release"),
            ("acme", "failed", "source_timeout"),
            ("acme", "released", "-"),
            ("acme", "suppressed", "-"),
        ],
        "newest first"
    );
    // The plan as the executor normalized it (dimensions as field refs,
    // the default top_n filled in), with what was released — and nothing
    // else: an entry has exactly these fields.
    let first = &entries[4];
    assert_eq!(
        first["plan"],
        json!({
            "resource": "invoices", "kind": "aggregate",
            "measures": [{"function": "count"}],
            "dimensions": [{"field": "status"}],
            "where": [{"field": "late_fee_cents", "op": "gte", "value": 100}],
            "top_n": 25
        })
    );
    assert_eq!(
        (first["cells"].as_u64(), first["suppressed_groups"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(first["variant"].as_str().unwrap().starts_with("sha256:"));
    // Only a reserved plan's query can have run: the complementary total
    // was refused at its reservation.
    let ran: Vec<bool> = entries
        .iter()
        .map(|e| e["query_ran"].as_bool().unwrap())
        .collect();
    assert_eq!(ran, [true, false, true, true, true]);
    for e in &entries {
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "at",
                "cells",
                "outcome",
                "plan",
                "principal",
                "query_ran",
                "reason",
                "resource",
                "suppressed_groups",
                "tenant_id",
                "variant"
            ]
        );
    }
    // Filters and the table for people.
    let globex = audit(&exec, &["--tenant", "globex"]);
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0]["principal"], "gil");
    assert_eq!(audit(&exec, &["--limit", "2"]).len(), 2);
    let out = exec.cli(&["explore", "audit"]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("OUTCOME") && table.contains("suppressed"),
        "{table}"
    );
    assert!(table.contains("plan: {"), "{table}");
    assert!(table.contains("complementary_release"), "{table}");
    let out = exec.cli(&["explore", "audit", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Every audited query is a chained record: verify is clean …
    exec.stop();
    let report = verify(&exec.store);
    assert_eq!(report["ok"], true, "{report}");
    let kinds = ledger_rows(
        &exec.store,
        "SELECT kind, CAST(COUNT(*) AS TEXT) FROM events GROUP BY kind",
    );
    assert_eq!(
        kinds,
        [vec![Some("explore_query".to_owned()), Some("5".to_owned())]]
    );

    // … and the attack it stops: deleting the audit rows (and their events
    // would break the chain) resets the budget. Someone who owns the file
    // deletes the released queries' rows; the executor then counts fewer —
    // but `ledger verify` says so.
    let copy = exec.path().join("tampered.db");
    std::fs::copy(&exec.store, &copy).unwrap();
    let tampered = ledger_db(&copy);
    execute(
        &tampered,
        "PRAGMA foreign_keys = OFF; DROP TRIGGER explore_queries_append_only_u; \
         UPDATE explore_queries SET cells = 0, suppression_release = 0 WHERE outcome = 'suppressed'; \
         CREATE TRIGGER explore_queries_append_only_u BEFORE UPDATE ON explore_queries BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;",
    );
    let report = verify(&copy);
    assert_eq!(report["ok"], false, "{report}");
    let why = report["first_break"]["reason"].as_str().unwrap();
    assert!(why.contains("explore query"), "{why}");
    let copy2 = exec.path().join("tampered2.db");
    std::fs::copy(&exec.store, &copy2).unwrap();
    execute(
        &ledger_db(&copy2),
        "PRAGMA foreign_keys = OFF; DROP TRIGGER explore_queries_append_only_d; \
         DELETE FROM explore_queries WHERE outcome = 'failed'; \
         CREATE TRIGGER explore_queries_append_only_d BEFORE DELETE ON explore_queries BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;",
    );
    let report = verify(&copy2);
    assert_eq!(report["ok"], false, "{report}");

    // The tampered ledger really does give back a budget: served by an
    // executor, the suppression it forgot no longer refuses the total.
    std::fs::copy(&copy, &exec.store).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", exec.store.display()));
    }
    exec.restart(ENV);
    runtime().block_on(async {
        let mut c = proposer(&exec).await;
        assert!(
            try_reserve(&mut c, "acme", "ann", total_where(100))
                .await
                .is_ok(),
            "the forged row changed what the executor counts"
        );
    });
}
