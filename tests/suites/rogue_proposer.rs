//! A compromised proposer: a client that holds the proposer socket's access
//! and speaks `airlock.ipc.v1` perfectly, trying everything it must not be
//! able to do. Each attempt is its own test (a libtest-mimic harness, so
//! `--list` and filters work) against its own executor, and must be refused
//! with a specific code — or, where harmless, be accepted as a plain
//! `pending_approval` proposal that still needs a person. After every
//! attempt the harness checks that:
//!
//! - the observed outcome is the expected one;
//! - the ledger holds no proposal in any state but `pending_approval`, and a
//!   refused attempt left no proposal, evidence or event beyond the honest
//!   ones the test recorded itself before the attempt;
//! - the executor is alive and still serves an honest proposer (a read is
//!   recorded and a proposal built from it is `pending_approval`).
//!
//! There is no source database in this suite: the reference config points
//! at Postgres, but nothing here is approved, so nothing can be applied.
//! "The source database is unchanged" is therefore exactly "no proposal is
//! approved or applied", which the ledger check covers.
//!
//! When the run ends the suite writes a summary table (attempt, expected,
//! observed, result) to stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use airlock_ipc::Role;
use airlock_ipc::client::{Client, ClientError};
use airlock_ipc::error::ErrorCode;
use airlock_ipc::frame::{read_frame, write_frame};
use airlock_ipc::limits::{
    FRAME_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_CONNECTIONS_PER_UID, MAX_LIST_ITEMS,
};
use airlock_ipc::message::{
    Approve, Empty, ListProposals, ProposalRecorded, ProposalRef, ProposalState, ProposalSummary,
    ReadRecorded, RecordRead, Request, RequestFrame, Response, ResponseFrame, SubmitProposal,
};
use airlock_policy::Config;
use airlock_policy::change_set::{ChangeSet, ViolationCode, verify};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::proposals::{
    PLAN_CREDIT, STATUS_CHANGE, WAIVER, change_set, customer_row, honest_proposal, invoice_row,
    load, order_row, read_of, record, reference_value, submit, waiver,
};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// The executor's environment: its proposers may claim tenant `acme` only.
const ENV: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "acme")];
/// An executor whose proposers may claim any tenant (used to seed another
/// tenant's records before restarting with [`ENV`]).
const ANY_TENANT: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "")];
/// How long to wait for any one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    raise_fd_limit();
    let args = Arguments::from_args();
    let conclusion = libtest_mimic::run(&args, trials());
    if !args.list {
        print_table();
    }
    conclusion.exit_code()
}

// ---------------------------------------------------------------------------
// The attempts.

fn trials() -> Vec<Trial> {
    // The slow ones first, so they overlap with the rest.
    let mut t = vec![
        attempt(
            "slow_loris::hello_one_byte_every_500ms",
            format!(
                "closed within {} s (handshake timeout + 3 s); others served",
                (HANDSHAKE_TIMEOUT + Duration::from_secs(3)).as_secs()
            ),
            ENV,
            |cx| slow_loris(cx, false, HANDSHAKE_TIMEOUT),
        ),
        attempt(
            "slow_loris::frame_body_one_byte_every_500ms",
            format!(
                "closed within {} s (frame timeout + 3 s); others served",
                (FRAME_TIMEOUT + Duration::from_secs(3)).as_secs()
            ),
            ENV,
            |cx| slow_loris(cx, true, FRAME_TIMEOUT),
        ),
        attempt(
            "flood::a_thousand_connections_at_once",
            format!("bounded: ≤{MAX_CONNECTIONS_PER_UID} held, rest busy or closed; serves after"),
            ENV,
            flood,
        ),
        attempt(
            "race::two_identical_submissions_at_once",
            "both pending (distinct ids), or one refused",
            ENV,
            race,
        ),
    ];
    t.extend(operator_message_trials());
    t.extend(approval_claim_trials());
    t.extend(tampered_change_set_trials());

    // Bounds and transition guards on the other proposal capabilities.
    for (name, credit) in [
        ("bounds::plan_credit_above_its_maximum", 6000),
        ("bounds::plan_credit_below_its_minimum", -1),
    ] {
        t.push(attempt(
            name,
            "policy_violation",
            ENV,
            move |cx| async move { plan_credit_out_of_bounds(&cx, credit).await },
        ));
    }
    t.push(attempt(
        "transition::processing_order_to_canceled",
        "policy_violation",
        ENV,
        |cx| async move { canceled_from_processing(&cx, false).await },
    ));
    t.push(attempt(
        "transition::processing_order_claimed_paid_in_the_before_image",
        "policy_violation",
        ENV,
        |cx| async move { canceled_from_processing(&cx, true).await },
    ));

    // Other tenants.
    t.push(attempt(
        "tenant::record_a_read_for_another_tenant",
        "tenant_not_allowed",
        ENV,
        |cx| async move {
            let read = cx.invoice_read("INV-9001", "otherco");
            Verdict::seen(seen(record(&mut cx.proposer().await, read).await))
        },
    ));
    t.push(attempt(
        "tenant::propose_for_another_tenant",
        "tenant_not_allowed",
        ENV,
        |cx| async move {
            let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
            cx.mark_baseline().await;
            let cs = waiver(&cx.cfg, "INV-9001", "otherco", "r");
            Verdict::seen(cx.submit(cs, Some(ev)).await)
        },
    ));
    t.push(attempt(
        "tenant::evidence_rows_of_another_tenant",
        "policy_violation",
        ENV,
        |cx| async move {
            let mut read = cx.invoice_read("INV-3001", "acme");
            read.rows[0].insert("tenant_id".into(), json!("otherco"));
            Verdict::seen(seen(record(&mut cx.proposer().await, read).await))
        },
    ));
    t.push(attempt(
        "tenant::evidence_recorded_for_another_tenant",
        "evidence_required",
        ANY_TENANT,
        |cx| async move {
            let ev = cx.evidence(cx.invoice_read("INV-3001", "otherco")).await;
            cx.restart_as_acme();
            cx.mark_baseline().await;
            Verdict::seen(cx.submit(cx.waiver("r"), Some(ev)).await)
        },
    ));

    // Evidence: missing, forged, of another row, table or read.
    t.push(attempt(
        "evidence::foreign_query_fingerprint",
        "policy_violation",
        ENV,
        |cx| async move {
            let mut read = cx.invoice_read("INV-3001", "acme");
            read.query_fingerprint = format!("sha256:{}", "ab".repeat(32));
            Verdict::seen(seen(record(&mut cx.proposer().await, read).await))
        },
    ));
    t.push(attempt(
        "evidence::a_column_the_capability_never_reads",
        "policy_violation",
        ENV,
        |cx| async move {
            let mut read = cx.invoice_read("INV-3001", "acme");
            read.rows[0].insert("password_hash".into(), json!("x"));
            Verdict::seen(seen(record(&mut cx.proposer().await, read).await))
        },
    ));
    t.push(attempt(
        "evidence::proposal_without_evidence",
        "evidence_required",
        ENV,
        |cx| async move { Verdict::seen(cx.submit(cx.waiver("r"), None).await) },
    ));
    t.push(attempt(
        "evidence::forged_evidence_id",
        "evidence_required",
        ENV,
        |cx| async move {
            let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
            cx.mark_baseline().await;
            // Same shape as a real id, one digit changed.
            let forged = format!(
                "{}{}",
                &ev[..ev.len() - 1],
                if ev.ends_with('0') { '1' } else { '0' }
            );
            Verdict::seen(cx.submit(cx.waiver("r"), Some(forged)).await)
        },
    ));
    t.push(attempt(
        "evidence::evidence_of_another_row",
        "evidence_required",
        ENV,
        |cx| async move {
            let ev = cx.evidence(cx.invoice_read("INV-3002", "acme")).await;
            cx.mark_baseline().await;
            Verdict::seen(cx.submit(cx.waiver("r"), Some(ev)).await)
        },
    ));
    t.push(attempt(
        "evidence::evidence_of_another_table",
        "evidence_required",
        ENV,
        |cx| async move {
            // An order whose id happens to be the invoice's: only the table differs.
            let ev = cx.evidence(cx.order_read("INV-3001", "paid")).await;
            cx.mark_baseline().await;
            Verdict::seen(cx.submit(cx.waiver("r"), Some(ev)).await)
        },
    ));
    t.push(attempt(
        "evidence::same_evidence_for_a_second_proposal",
        "pending_approval",
        ENV,
        |cx| async move {
            let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
            let mut p = cx.proposer().await;
            let first = submit(&mut p, cx.waiver("first"), Some(ev.clone()))
                .await
                .unwrap();
            cx.mark_baseline().await;
            let second = submit(&mut p, cx.waiver("second"), Some(ev)).await;
            if let Ok(second) = &second {
                assert_ne!(second.proposal_id, first.proposal_id);
            }
            Verdict::seen(seen(second)).with_proposals(1)
        },
    ));
    for (name, before, version) in [
        (
            "before_image::late_fee_differs_from_the_evidence",
            ("late_fee_cents", json!(9999)),
            false,
        ),
        (
            "before_image::version_differs_from_the_evidence",
            ("updated_at", json!("2026-06-21T00:00:00Z")),
            true,
        ),
    ] {
        t.push(attempt(
            name,
            "policy_violation",
            ENV,
            move |cx| async move {
                let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
                cx.mark_baseline().await;
                let mut cs = cx.waiver("r");
                let (col, v) = before;
                cs.before.insert(col.into(), v.clone());
                if !cs.patch.contains_key(col) {
                    cs.after.insert(col.into(), v.clone());
                }
                if version {
                    cs.guards.expected_version.as_mut().unwrap().value = v;
                }
                assert_passes_policy(&cx.cfg, &cs);
                Verdict::seen(cx.submit(cs, Some(ev)).await)
            },
        ));
    }
    t.push(attempt(
        "secret::a_token_in_a_proposed_value",
        "secret_material",
        ENV,
        |cx| async move {
            let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
            cx.mark_baseline().await;
            let cs = cx.waiver("token ghp_abcdefghijklmnopqrstuvwxyz0123");
            Verdict::seen(cx.submit(cs, Some(ev)).await)
        },
    ));
    t.push(attempt(
        "sql::a_value_is_stored_verbatim_as_data",
        "pending_approval",
        ENV,
        sql_in_a_value,
    ));

    // Forged and foreign proposal ids.
    for (name, id) in [
        (
            "ids::status_of_a_made_up_proposal_id",
            "wrp_00000000000000000000",
        ),
        ("ids::status_of_an_id_carrying_sql", "wrp_' OR '1'='1"),
    ] {
        t.push(attempt(name, "not_found", ENV, move |cx| async move {
            cx.honest_proposal("an existing proposal").await;
            cx.mark_baseline().await;
            Verdict::seen(cx.status(id).await)
        }));
    }
    t.push(attempt(
        "ids::status_of_another_tenants_proposal",
        "not_found",
        ANY_TENANT,
        |cx| async move {
            let ev = cx.evidence(cx.invoice_read("INV-9001", "otherco")).await;
            let theirs = submit(
                &mut cx.proposer().await,
                waiver(&cx.cfg, "INV-9001", "otherco", "r"),
                Some(ev),
            )
            .await
            .unwrap();
            cx.restart_as_acme();
            cx.mark_baseline().await;
            Verdict::seen(cx.status(&theirs.proposal_id).await)
        },
    ));

    // Replays.
    t.push(attempt(
        "replay::an_old_submit_frame_on_a_new_connection",
        "pending_approval",
        ENV,
        replay_submit,
    ));
    t.push(attempt(
        "replay::an_operator_approve_frame_on_the_proposer_socket",
        "forbidden",
        ENV,
        |cx| async move {
            let pending = cx.honest_proposal("approve me").await;
            cx.mark_baseline().await;
            // The bytes the operator CLI sends after its hello.
            let approve = Request::Approve(Approve {
                proposal_id: pending.proposal_id,
                note: None,
            });
            Verdict::seen(
                cx.send_and_expect_close(
                    RequestFrame {
                        id: 1,
                        request: approve,
                        traceparent: None,
                    }
                    .encode(),
                )
                .await,
            )
        },
    ));

    t.extend(framing_trials());
    t.extend(handshake_trials());
    t
}

/// Every request type the proposer socket must refuse, derived from the
/// protocol's own role mapping ([`Request::allowed_for`]) over every type
/// ([`Request::TYPES`]): a new operator message is covered automatically.
fn operator_message_trials() -> Vec<Trial> {
    let cfg = load(&reference_value());
    let mut trials = Vec::new();
    for kind in Request::TYPES {
        match sample_request(&cfg, kind, "wrp_placeholder") {
            Some(r) if r.allowed_for(Role::Proposer) => {}
            Some(_) => trials.push(attempt(
                &format!("forbidden::{kind}_on_the_proposer_socket"),
                "forbidden",
                ENV,
                move |cx| async move {
                    let pending = cx.honest_proposal("a proposal the rogue wants decided").await;
                    cx.mark_baseline().await;
                    let request = sample_request(&cx.cfg, kind, &pending.proposal_id).unwrap();
                    Verdict::seen(cx.send_and_expect_close(RequestFrame { id: 9, request, traceparent: None }.encode()).await)
                },
            )),
            None => trials.push(Trial::test(
                format!("forbidden::{kind}_has_a_sample_request"),
                move || {
                    Err(Failed::from(format!(
                        "no sample body decodes as `{kind}`: add one to `sample_request` so the suite can check which socket accepts it"
                    )))
                },
            )),
        }
    }
    trials
}

/// A request of type `kind` that decodes: the first sample body that fits.
fn sample_request(cfg: &Config, kind: &str, proposal_id: &str) -> Option<Request> {
    let bodies = [
        json!({}),
        json!({"proposal_id": proposal_id}),
        json!({"proposal_id": proposal_id, "reason": "the agent decided"}),
        json!({"since": 0}),
        json!({"evidence_id": "ev_placeholder"}),
        json!({"before": "2999-01-01T00:00:00Z", "archive": "/tmp/airlock-rogue-archive.db"}),
        json!({"protocol": airlock_ipc::PROTOCOL, "role": "proposer", "client_version": "rogue"}),
        json!({"context": {"tenant_id": "acme", "principal": "p", "source": "environment"}, "plan": {"kind": "rows"}}),
        json!({"reservation_id": "exr_placeholder", "cells": 0, "suppressed_groups": 0, "complete": false}),
        json!({"reservation_id": "exr_placeholder", "reason": "source_timeout"}),
        json!({"limit": 10}),
        serde_json::to_value(read_of(
            cfg,
            WAIVER,
            json!({"invoice_id": "INV-3001", "reason": "r"}),
            &invoice_row("INV-3001", "acme"),
            "acme",
        ))
        .unwrap(),
        serde_json::to_value(SubmitProposal {
            change_set: waiver(cfg, "INV-3001", "acme", "r"),
            evidence_id: None,
            identity_token: None,
        })
        .unwrap(),
    ];
    bodies.into_iter().find_map(|body| {
        let frame = json!({"id": 1, "type": kind, "body": body}).to_string();
        RequestFrame::decode(frame.as_bytes())
            .ok()
            .map(|f| f.request)
    })
}

/// Asserting an approval or a state anywhere in `submit_proposal`: the strict
/// decoder knows no such field.
fn approval_claim_trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    for (name, key, value) in [
        ("state_approved", "state", json!("approved")),
        ("state_applied", "state", json!("applied")),
        ("approved_true", "approved", json!(true)),
        ("own_proposal_id", "proposal_id", json!("wrp_mine")),
        (
            "approval_object",
            "approval",
            json!({"status": "approved", "by": "billing_lead"}),
        ),
    ] {
        trials.push(attempt(
            &format!("approval_claim::{name}_beside_the_change_set"),
            "invalid_request",
            ENV,
            move |cx| async move {
                let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
                cx.mark_baseline().await;
                let mut body = json!({"change_set": cx.waiver("r"), "evidence_id": ev});
                body[key] = value;
                Verdict::seen(cx.submit_raw(body).await)
            },
        ));
    }
    type JsonTamper = fn(&mut Value);
    let inside: [(&str, &str, JsonTamper); 7] = [
        ("approval_inside_the_change_set", "invalid_request", |cs| {
            cs["approval"] = json!({"status": "approved"});
        }),
        (
            "writeback_applied_inside_the_change_set",
            "invalid_request",
            |cs| {
                cs["writeback"] = json!({"status": "applied"});
            },
        ),
        (
            "state_approved_inside_the_change_set",
            "invalid_request",
            |cs| {
                cs["state"] = json!("approved");
            },
        ),
        ("approved_true_inside_the_guards", "invalid_request", |cs| {
            cs["guards"]["approved"] = json!(true);
        }),
        ("approved_true_inside_the_target", "invalid_request", |cs| {
            cs["target"]["approved"] = json!(true);
        }),
        (
            "change_set_replaced_by_approved_true",
            "invalid_request",
            |cs| {
                *cs = json!({"approved": true});
            },
        ),
        // Arguments are an open map, so this one reaches the policy check.
        ("approved_true_as_an_argument", "policy_violation", |cs| {
            cs["args"]["approved"] = json!(true);
        }),
    ];
    for (name, expected, tamper) in inside {
        trials.push(attempt(
            &format!("approval_claim::{name}"),
            expected,
            ENV,
            move |cx| async move {
                let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
                cx.mark_baseline().await;
                let mut cs = serde_json::to_value(cx.waiver("r")).unwrap();
                tamper(&mut cs);
                Verdict::seen(
                    cx.submit_raw(json!({"change_set": cs, "evidence_id": ev}))
                        .await,
                )
            },
        ));
    }
    trials
}

/// Honest evidence, a tampered change set: only the change set is at fault.
fn tampered_change_set_trials() -> Vec<Trial> {
    type Tamper = fn(&mut ChangeSet);
    let tampers: [(&str, &str, Tamper); 14] = [
        (
            "policy::patch_a_column_outside_allowed_columns",
            "policy_violation",
            |cs| {
                cs.patch.insert("balance_cents".into(), json!(0));
                cs.after.insert("balance_cents".into(), json!(0));
            },
        ),
        ("policy::alter_a_fixed_value", "policy_violation", |cs| {
            cs.patch.insert("late_fee_cents".into(), json!(1));
            cs.after.insert("late_fee_cents".into(), json!(1));
        }),
        ("policy::target_another_table", "policy_violation", |cs| {
            cs.target.table = "customers".into();
        }),
        ("policy::target_another_schema", "policy_violation", |cs| {
            cs.target.schema = "pg_catalog".into();
        }),
        (
            "policy::target_another_key_column",
            "policy_violation",
            |cs| {
                cs.target.primary_key.column = "customer_id".into();
            },
        ),
        ("policy::drop_the_version_guard", "policy_violation", |cs| {
            cs.guards.expected_version = None;
        }),
        (
            "policy::widen_the_allowed_columns_guard",
            "policy_violation",
            |cs| {
                cs.guards.allowed_columns.push("balance_cents".into());
            },
        ),
        (
            "policy::submit_under_another_proposal_capability",
            "policy_violation",
            |cs| {
                cs.capability = STATUS_CHANGE.into();
            },
        ),
        (
            "policy::submit_under_a_read_capability",
            "policy_violation",
            |cs| {
                cs.capability = "billing.inspect_invoice".into();
            },
        ),
        (
            "policy::argument_over_its_length_limit",
            "policy_violation",
            |cs| {
                let long = json!("x".repeat(501));
                cs.args.insert("reason".into(), long.clone());
                cs.patch.insert("waiver_reason".into(), long.clone());
                cs.after.insert("waiver_reason".into(), long);
            },
        ),
        (
            "tenant::claim_another_tenant_in_the_tenant_guard",
            "policy_violation",
            |cs| {
                cs.guards.tenant.as_mut().unwrap().value = json!("otherco");
            },
        ),
        (
            "sql::smuggle_sql_into_the_table_name",
            "policy_violation",
            |cs| {
                cs.target.table = "invoices; DROP TABLE invoices".into();
            },
        ),
        (
            "sql::smuggle_sql_into_a_column_name",
            "policy_violation",
            |cs| {
                let col = "waiver_reason = 'x', balance_cents = 0 --";
                cs.patch.insert(col.into(), json!("x"));
                cs.after.insert(col.into(), json!("x"));
            },
        ),
        // A key no read ever returned, so no evidence can match it.
        (
            "sql::smuggle_sql_into_the_key_value",
            "evidence_required",
            |cs| {
                let key = json!("INV-3001' OR '1'='1");
                cs.args.insert("invoice_id".into(), key.clone());
                cs.target.primary_key.value = key;
            },
        ),
    ];
    tampers
        .into_iter()
        .map(|(name, expected, tamper)| {
            attempt(name, expected, ENV, move |cx| async move {
                let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
                cx.mark_baseline().await;
                let mut cs = cx.waiver("r");
                tamper(&mut cs);
                Verdict::seen(cx.submit(cs, Some(ev)).await)
            })
        })
        .collect()
}

fn framing_trials() -> Vec<Trial> {
    let mut trials = vec![attempt(
        "frame::header_announcing_2_mib",
        "frame_too_large",
        ENV,
        |cx| async move {
            let mut s = cx.raw_hello().await;
            s.write_all(&(2u32 * 1024 * 1024).to_be_bytes())
                .await
                .unwrap();
            let seen = frame_seen(answer(&mut s).await);
            assert!(
                closed(&mut s).await,
                "the connection is closed after the refusal"
            );
            Verdict::seen(seen)
        },
    )];
    for (name, bytes) in [
        ("malformed_json", b"{not json".to_vec()),
        (
            "duplicate_keys",
            br#"{"id":1,"type":"proposal_status","type":"approve","body":{"proposal_id":"wrp_x"}}"#
                .to_vec(),
        ),
        (
            "duplicate_keys_in_the_body",
            br#"{"id":1,"type":"approve","body":{"proposal_id":"a","proposal_id":"b"}}"#.to_vec(),
        ),
        (
            "non_utf8",
            b"{\"id\":1,\"type\":\"\xff\",\"body\":{}}".to_vec(),
        ),
        (
            "deep_nesting",
            format!(
                "{{\"id\":1,\"type\":\"proposal_status\",\"body\":{{\"x\":{}{}}}}}",
                "[".repeat(100),
                "]".repeat(100)
            )
            .into_bytes(),
        ),
    ] {
        trials.push(attempt(
            &format!("frame::{name}"),
            "malformed_frame",
            ENV,
            move |cx| async move { Verdict::seen(cx.send_and_expect_close(bytes).await) },
        ));
    }
    trials.push(attempt(
        "frame::truncated_frame",
        "closed without an answer",
        ENV,
        |cx| async move {
            let mut s = cx.raw_hello().await;
            s.write_all(&100u32.to_be_bytes()).await.unwrap();
            s.write_all(b"{\"id\":").await.unwrap();
            s.shutdown().await.unwrap();
            Verdict::seen(frame_seen(answer(&mut s).await))
        },
    ));
    trials.push(attempt(
        "frame::unknown_message_type",
        "unknown_message",
        ENV,
        |cx| async move {
            let mut s = cx.raw_hello().await;
            send_json(&mut s, &json!({"id": 3, "type": "drop_table", "body": {}})).await;
            Verdict::seen(frame_seen(answer(&mut s).await))
        },
    ));
    trials
}

fn handshake_trials() -> Vec<Trial> {
    let hello = |protocol: &str, role: &str| json!({"id": 1, "type": "hello", "body": {"protocol": protocol, "role": role, "client_version": "rogue"}});
    let mut trials = Vec::new();
    for (name, expected, first) in [
        (
            "handshake::an_old_protocol_version",
            "unsupported_version",
            hello("airlock.ipc.v0", "proposer"),
        ),
        (
            "handshake::operator_role_on_the_proposer_socket",
            "role_mismatch",
            hello(airlock_ipc::PROTOCOL, "operator"),
        ),
        (
            "handshake::a_request_before_hello",
            "handshake_required",
            json!({"id": 1, "type": "proposal_status", "body": {"proposal_id": "wrp_x"}}),
        ),
    ] {
        trials.push(attempt(name, expected, ENV, move |cx| async move {
            let mut s = cx.raw().await;
            send_json(&mut s, &first).await;
            let seen = frame_seen(answer(&mut s).await);
            assert!(
                closed(&mut s).await,
                "the connection is closed after the refusal"
            );
            Verdict::seen(seen)
        }));
    }
    trials.push(attempt(
        "handshake::hello_twice",
        "handshake_required",
        ENV,
        move |cx| async move {
            let again = hello(airlock_ipc::PROTOCOL, "proposer")
                .to_string()
                .into_bytes();
            Verdict::seen(cx.send_and_expect_close(again).await)
        },
    ));
    trials
}

async fn plan_credit_out_of_bounds(cx: &Ctx, credit: i64) -> Verdict {
    let args = json!({"customer_id": "cust_acme_1", "credit_cents": 100, "reason": "r"});
    let row = customer_row("cust_acme_1", "acme");
    let ev = cx
        .evidence(read_of(&cx.cfg, PLAN_CREDIT, args.clone(), &row, "acme"))
        .await;
    cx.mark_baseline().await;
    let mut cs = change_set(&cx.cfg, PLAN_CREDIT, args, "acme", &row);
    cs.args.insert("credit_cents".into(), json!(credit));
    cs.patch.insert("plan_credit_cents".into(), json!(credit));
    cs.after.insert("plan_credit_cents".into(), json!(credit));
    Verdict::seen(cx.submit(cs, Some(ev)).await)
}

/// O-1002 is `processing`, which may only become `ready_to_ship`. The rogue
/// asks for `canceled`; with `lie`, it also claims the order was `paid` in
/// the before-image, which passes the policy check on its own — only the
/// comparison with the recorded evidence can catch it.
async fn canceled_from_processing(cx: &Ctx, lie: bool) -> Verdict {
    let ev = cx.evidence(cx.order_read("O-1002", "processing")).await;
    cx.mark_baseline().await;
    let args = json!({"order_id": "O-1002", "status": "ready_to_ship", "reason": "r"});
    let row = order_row("O-1002", "acme", "processing");
    let mut cs = change_set(&cx.cfg, STATUS_CHANGE, args, "acme", &row);
    for map in [&mut cs.args, &mut cs.patch, &mut cs.after] {
        map.insert("status".into(), json!("canceled"));
    }
    cs.guards.transitions[0].to = json!("canceled");
    if lie {
        cs.before.insert("status".into(), json!("paid"));
        cs.guards.transitions[0].from = json!("paid");
        assert_passes_policy(&cx.cfg, &cs);
    } else {
        let violations = verify(&cx.cfg, &cs, &|t| t == "acme").unwrap_err();
        assert!(
            violations
                .iter()
                .any(|v| v.code == ViolationCode::TransitionNotAllowed),
            "{violations:?}"
        );
    }
    Verdict::seen(cx.submit(cs, Some(ev)).await)
}

/// The tampering is invisible to the policy alone: whatever refuses it is
/// the comparison with the evidence.
fn assert_passes_policy(cfg: &Config, cs: &ChangeSet) {
    if let Err(v) = verify(cfg, cs, &|t| t == "acme") {
        panic!("the tampered change set should pass the policy check on its own: {v:?}");
    }
}

/// SQL in a value is data: values are bound parameters, never spliced, so
/// this is a plain pending proposal carrying the text verbatim.
async fn sql_in_a_value(cx: Rc<Ctx>) -> Verdict {
    let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
    cx.mark_baseline().await;
    let reason = "'; DROP TABLE invoices; --";
    let r = submit(&mut cx.proposer().await, cx.waiver(reason), Some(ev)).await;
    if let Ok(p) = &r {
        assert_eq!(p.change_set.patch["waiver_reason"], json!(reason));
        let mut op = cx.operator().await;
        let show = Request::ShowProposal(ProposalRef {
            proposal_id: p.proposal_id.clone(),
        });
        match op.call(show).await.unwrap() {
            Response::Proposal(d) => {
                assert_eq!(d.change_set.patch["waiver_reason"], json!(reason));
                assert_eq!(d.change_set.args["reason"], json!(reason));
            }
            other => panic!("{other:?}"),
        }
    }
    Verdict::seen(seen(r)).with_proposals(1)
}

/// The bytes of an honest submit, sent again on a new connection: a second,
/// separate pending proposal (the person sees both), never a shortcut.
async fn replay_submit(cx: Rc<Ctx>) -> Verdict {
    let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
    cx.mark_baseline().await;
    let frame = RequestFrame {
        id: 3,
        request: Request::SubmitProposal(SubmitProposal {
            change_set: cx.waiver("replayed"),
            evidence_id: Some(ev),
            identity_token: None,
        }),
        traceparent: None,
    }
    .encode();
    let mut ids = Vec::new();
    let mut last = String::new();
    for _ in 0..2 {
        let mut s = cx.raw_hello().await;
        write_frame(&mut s, &frame).await.unwrap();
        let a = answer(&mut s).await;
        if let Some(ResponseFrame {
            response: Response::ProposalRecorded(p),
            ..
        }) = &a
        {
            ids.push(p.proposal_id.clone());
        }
        last = frame_seen(a);
    }
    assert_eq!(ids.len(), 2, "the original was accepted, so was the replay");
    assert_ne!(ids[0], ids[1], "a replay is a separate proposal");
    Verdict::seen(last).with_proposals(2)
}

async fn race(cx: Rc<Ctx>) -> Verdict {
    let ev = cx.evidence(cx.invoice_read("INV-3001", "acme")).await;
    cx.mark_baseline().await;
    let cs = cx.waiver("raced");
    let (mut a, mut b) = (cx.proposer().await, cx.proposer().await);
    let (ra, rb) = tokio::join!(
        submit(&mut a, cs.clone(), Some(ev.clone())),
        submit(&mut b, cs, Some(ev))
    );
    match (ra, rb) {
        (Ok(x), Ok(y)) => {
            let distinct = x.proposal_id != y.proposal_id;
            let pending = [x.state, y.state] == [ProposalState::PendingApproval; 2];
            Verdict::judged(
                format!(
                    "both {}/{}, {} ids",
                    x.state.as_str(),
                    y.state.as_str(),
                    if distinct { "distinct" } else { "SAME" }
                ),
                distinct && pending,
            )
            .with_proposals(2)
        }
        (Ok(x), Err(e)) | (Err(e), Ok(x)) => Verdict::judged(
            format!(
                "one {}, one {}",
                x.state.as_str(),
                seen::<ReadRecorded>(Err(e))
            ),
            x.state == ProposalState::PendingApproval,
        )
        .with_proposals(1),
        (Err(x), Err(y)) => Verdict::judged(
            format!(
                "both refused: {}, {}",
                seen::<ReadRecorded>(Err(x)),
                seen::<ReadRecorded>(Err(y))
            ),
            false,
        ),
    }
}

/// 1,000 connections opened at once. The executor holds at most its per-uid
/// limit (every one of ours shares our uid) and answers the rest `busy` or
/// closes them; once they are gone it serves again at once.
async fn flood(cx: Rc<Ctx>) -> Verdict {
    const N: usize = 1000;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..N {
        let path = cx.proposer_socket.clone();
        set.spawn(async move {
            Client::connect(&path, Role::Proposer, "flood", Duration::from_secs(30)).await
        });
    }
    let (mut held, mut busy, mut closed, mut other) = (Vec::new(), 0, 0, Vec::new());
    while let Some(joined) = set.join_next().await {
        match joined.unwrap() {
            Ok(c) => held.push(c),
            Err(ClientError::Refused(b)) if b.code == ErrorCode::Busy => busy += 1,
            Err(
                ClientError::NotRunning { .. }
                | ClientError::Unreachable { .. }
                | ClientError::Closed
                | ClientError::Frame(_),
            ) => closed += 1,
            Err(e) => other.push(e.to_string()),
        }
    }
    // While they are held, one more is refused too.
    let extra = Client::connect(
        &cx.proposer_socket,
        Role::Proposer,
        "one more",
        ANSWER_TIMEOUT,
    )
    .await;
    let extra_refused = extra.is_err();
    let held_count = held.len();
    drop(held);
    let released = Instant::now();
    let served_after = loop {
        match Client::connect(&cx.proposer_socket, Role::Proposer, "after", ANSWER_TIMEOUT).await {
            Ok(_) => break Some(released.elapsed()),
            Err(_) if released.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => break None,
        }
    };
    let ok = (1..=MAX_CONNECTIONS_PER_UID).contains(&held_count)
        && held_count + busy + closed == N
        && extra_refused
        && served_after.is_some();
    let mut observed = format!("{held_count} held, {busy} busy, {closed} closed");
    if !other.is_empty() {
        observed.push_str(&format!(", {} other ({})", other.len(), other[0]));
    }
    if !extra_refused {
        observed.push_str(", one more accepted while full");
    }
    match served_after {
        Some(d) => observed.push_str(&format!("; served {} ms after release", d.as_millis())),
        None => observed.push_str("; NOT served within 5 s of release"),
    }
    Verdict::judged(observed, ok)
}

/// A client that trickles one byte every 500 ms: of its `hello` (before the
/// handshake), or, `after_hello`, of a frame's body after announcing 100
/// bytes. The executor must cut it off within `limit` + 3 s of its first
/// byte, while an honest client on another connection is served promptly.
async fn slow_loris(cx: Rc<Ctx>, after_hello: bool, limit: Duration) -> Verdict {
    let (stream, burst, bytes) = if after_hello {
        let mut body =
            json!({"id": 2, "type": "proposal_status", "body": {"proposal_id": "wrp_slow"}})
                .to_string();
        while body.len() < 100 {
            body.insert(body.len() - 1, ' ');
        }
        let mut bytes = 100u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(body.as_bytes());
        (cx.raw_hello().await, 4, bytes)
    } else {
        let hello = json!({"id": 1, "type": "hello", "body": {"protocol": airlock_ipc::PROTOCOL, "role": "proposer", "client_version": "slow-loris"}});
        let body = hello.to_string().into_bytes();
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        (cx.raw().await, 0, bytes)
    };
    let honest = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let start = Instant::now();
        cx.honest_proposal("served during a slow-loris").await;
        start.elapsed()
    };
    let (cut_off, served_in) = tokio::join!(trickle(stream, burst, bytes), honest);
    let grace = limit + Duration::from_secs(3);
    let observed = match cut_off {
        Some(d) => format!(
            "closed after {:.1} s; honest client served in {} ms meanwhile",
            d.as_secs_f64(),
            served_in.as_millis()
        ),
        None => format!(
            "still open after 30 s; honest client served in {} ms meanwhile",
            served_in.as_millis()
        ),
    };
    let ok = cut_off.is_some_and(|d| d <= grace) && served_in < Duration::from_secs(2);
    Verdict::judged(observed, ok).with_proposals(1)
}

/// Send `burst` bytes at once, then the rest one per 500 ms, until the
/// executor closes the connection: how long after the first byte it did
/// (`None`: not within 30 s).
async fn trickle(stream: UnixStream, burst: usize, bytes: Vec<u8>) -> Option<Duration> {
    let (mut rd, mut wr) = stream.into_split();
    let start = Instant::now();
    let writer = async move {
        if wr.write_all(&bytes[..burst]).await.is_ok() {
            for b in &bytes[burst..] {
                if wr.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        // Keep the write half open: only the executor may end this.
        std::future::pending::<()>().await;
    };
    let reader = async move {
        // An answer (the "too slow" refusal) may come first; then the end.
        while let Ok(Some(_)) = read_frame(&mut rd).await {}
        start.elapsed()
    };
    let closed = async {
        tokio::select! {
            d = reader => d,
            () = writer => unreachable!(),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), closed)
        .await
        .ok()
}

// ---------------------------------------------------------------------------
// One executor per attempt, and the checks every attempt ends with.

/// One attempt's executor and what the attempt honestly recorded before it
/// attacked.
struct Ctx {
    exec: RefCell<ExecutorProcess>,
    proposer_socket: PathBuf,
    operator_socket: PathBuf,
    cfg: Config,
    baseline: Cell<Counts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    events: u64,
    evidence: u64,
    proposals: u64,
}

/// What an attempt observed.
struct Verdict {
    observed: String,
    /// For observations that are not a single code: whether it is as expected.
    judged: Option<bool>,
    /// Pending proposals the attempt created after its baseline (honest or harmless).
    new_proposals: u64,
}

impl Verdict {
    /// An outcome to compare with the expected one.
    fn seen(observed: String) -> Verdict {
        Verdict {
            observed,
            judged: None,
            new_proposals: 0,
        }
    }

    fn judged(observed: String, ok: bool) -> Verdict {
        Verdict {
            observed,
            judged: Some(ok),
            new_proposals: 0,
        }
    }

    fn with_proposals(mut self, n: u64) -> Verdict {
        self.new_proposals = n;
        self
    }
}

impl Ctx {
    fn start(env: &[(&str, &str)]) -> Ctx {
        let exec = ExecutorProcess::start(&reference_value(), env);
        Ctx {
            proposer_socket: exec.proposer_socket(),
            operator_socket: exec.operator_socket(),
            exec: RefCell::new(exec),
            cfg: load(&reference_value()),
            baseline: Cell::new(Counts::default()),
        }
    }

    /// Restart the executor (same ledger) so its proposers may claim `acme` only.
    fn restart_as_acme(&self) {
        let mut exec = self.exec.borrow_mut();
        exec.stop();
        exec.restart(ENV);
    }

    async fn proposer(&self) -> Client {
        Client::connect(
            &self.proposer_socket,
            Role::Proposer,
            "rogue",
            ANSWER_TIMEOUT,
        )
        .await
        .expect("a proposer connection")
    }

    async fn operator(&self) -> Client {
        Client::connect(
            &self.operator_socket,
            Role::Operator,
            "test",
            ANSWER_TIMEOUT,
        )
        .await
        .expect("an operator connection")
    }

    /// A raw connection to the proposer socket, before `hello`.
    async fn raw(&self) -> UnixStream {
        UnixStream::connect(&self.proposer_socket).await.unwrap()
    }

    /// A raw connection that has said hello as a proposer.
    async fn raw_hello(&self) -> UnixStream {
        let mut s = self.raw().await;
        send_json(&mut s, &json!({"id": 0, "type": "hello", "body": {"protocol": airlock_ipc::PROTOCOL, "role": "proposer", "client_version": "rogue"}})).await;
        let welcome = answer(&mut s).await.expect("welcome");
        assert_eq!(welcome.response.type_name(), "welcome");
        s
    }

    /// Send `bytes` as one frame after hello; the answer, and the connection
    /// must then be closed.
    async fn send_and_expect_close(&self, bytes: Vec<u8>) -> String {
        let mut s = self.raw_hello().await;
        write_frame(&mut s, &bytes).await.unwrap();
        let seen = frame_seen(answer(&mut s).await);
        assert!(
            closed(&mut s).await,
            "the connection is closed after `{seen}`"
        );
        seen
    }

    /// A `submit_proposal` frame with this body, sent raw after hello.
    async fn submit_raw(&self, body: Value) -> String {
        let mut s = self.raw_hello().await;
        send_json(
            &mut s,
            &json!({"id": 7, "type": "submit_proposal", "body": body}),
        )
        .await;
        let a = answer(&mut s).await;
        if let Some(f) = &a {
            assert_eq!(f.id, 7, "the answer echoes the request id");
        }
        frame_seen(a)
    }

    async fn submit(&self, cs: ChangeSet, evidence_id: Option<String>) -> String {
        seen(submit(&mut self.proposer().await, cs, evidence_id).await)
    }

    async fn status(&self, proposal_id: &str) -> String {
        let r = self
            .proposer()
            .await
            .call(Request::ProposalStatus(ProposalRef {
                proposal_id: proposal_id.into(),
            }))
            .await;
        seen(r)
    }

    /// Record an honest read; its evidence id.
    async fn evidence(&self, read: RecordRead) -> String {
        record(&mut self.proposer().await, read)
            .await
            .expect("an honest read is recorded")
            .evidence_id
    }

    /// An honest read and proposal of INV-3001.
    async fn honest_proposal(&self, reason: &str) -> ProposalRecorded {
        let p = honest_proposal(&mut self.proposer().await, &self.cfg, reason).await;
        assert_eq!(p.state, ProposalState::PendingApproval);
        p
    }

    fn waiver(&self, reason: &str) -> ChangeSet {
        waiver(&self.cfg, "INV-3001", "acme", reason)
    }

    fn invoice_read(&self, id: &str, tenant: &str) -> RecordRead {
        let args = json!({"invoice_id": id, "reason": "r"});
        read_of(&self.cfg, WAIVER, args, &invoice_row(id, tenant), tenant)
    }

    fn order_read(&self, id: &str, status: &str) -> RecordRead {
        let args = json!({"order_id": id, "status": "ready_to_ship", "reason": "r"});
        let row = order_row(id, "acme", status);
        read_of(&self.cfg, STATUS_CHANGE, args, &row, "acme")
    }

    /// The ledger as the operator sees it.
    async fn ledger(&self) -> (Counts, Vec<ProposalSummary>, Vec<(String, u64)>) {
        let mut op = self.operator().await;
        let stats = match op.call(Request::Stats(Empty {})).await.unwrap() {
            Response::Stats(s) => s,
            other => panic!("{other:?}"),
        };
        let list = Request::ListProposals(ListProposals {
            status: None,
            limit: Some(MAX_LIST_ITEMS),
        });
        let items = match op.call(list).await.unwrap() {
            Response::Proposals(p) => p.items,
            other => panic!("{other:?}"),
        };
        let counts = Counts {
            events: stats.events,
            evidence: stats.evidence,
            proposals: items.len() as u64,
        };
        (counts, items, stats.proposals.into_iter().collect())
    }

    /// What the ledger holds now counts as the attempt's honest setup.
    async fn mark_baseline(&self) {
        self.baseline.set(self.ledger().await.0);
    }

    /// Nothing approved or applied; a refused attempt wrote nothing at all.
    async fn check_ledger(&self, new_proposals: u64) {
        let (now, items, per_state) = self.ledger().await;
        for p in &items {
            assert_eq!(
                p.state,
                ProposalState::PendingApproval,
                "proposal {} is {}",
                p.proposal_id,
                p.state.as_str()
            );
        }
        for (state, n) in &per_state {
            assert!(
                state == ProposalState::PendingApproval.as_str() || *n == 0,
                "{n} proposal(s) are {state}"
            );
        }
        let base = self.baseline.get();
        if new_proposals == 0 {
            assert_eq!(now, base, "a refused attempt left nothing in the ledger");
        } else {
            assert_eq!(
                now.proposals,
                base.proposals + new_proposals,
                "only the attempt's own pending proposals were added"
            );
        }
    }

    /// The executor is alive and an honest proposer is served.
    async fn check_still_serving(&self) {
        {
            let mut exec = self.exec.borrow_mut();
            assert!(exec.is_alive(), "the executor died:\n{}", exec.log());
        }
        self.honest_proposal("an honest proposal afterwards").await;
    }
}

/// One attempt as a trial: its own executor, the attempt, then the common
/// checks; its row goes into the summary table whatever happens.
fn attempt<F, Fut>(
    name: &str,
    expected: impl Into<String>,
    env: &'static [(&'static str, &'static str)],
    run: F,
) -> Trial
where
    F: FnOnce(Rc<Ctx>) -> Fut + Send + 'static,
    Fut: Future<Output = Verdict>,
{
    let name = name.to_owned();
    let expected = expected.into();
    Trial::test(name.clone(), move || {
        let observed = RefCell::new(None);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let cx = Rc::new(Ctx::start(env));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let verdict = run(Rc::clone(&cx)).await;
                observed.replace(Some(verdict.observed.clone()));
                let as_expected = verdict.judged.unwrap_or(verdict.observed == expected);
                assert!(
                    as_expected,
                    "expected {expected}, observed {}",
                    verdict.observed
                );
                cx.check_ledger(verdict.new_proposals).await;
                cx.check_still_serving().await;
            });
        }));
        let result = result.map_err(|panic| {
            Failed::from(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "the attempt panicked".to_owned()),
            )
        });
        ROWS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Row {
                attempt: name,
                expected,
                observed: observed
                    .into_inner()
                    .unwrap_or_else(|| "(no outcome)".to_owned()),
                ok: result.is_ok(),
            });
        result
    })
}

// ---------------------------------------------------------------------------
// Raw frames and outcomes.

async fn send_json(s: &mut UnixStream, v: &Value) {
    write_frame(s, v.to_string().as_bytes()).await.unwrap();
}

/// The next answer; `None` when the executor closed the connection instead.
async fn answer(s: &mut UnixStream) -> Option<ResponseFrame> {
    let body = tokio::time::timeout(ANSWER_TIMEOUT, read_frame(s))
        .await
        .expect("an answer, or the end of the connection, in time")
        .ok()??;
    Some(ResponseFrame::decode(&body).expect("executor answers are well-formed"))
}

/// After a refusal the connection must be closed by the executor.
async fn closed(s: &mut UnixStream) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(5), read_frame(s)).await,
        Ok(Ok(None) | Err(_))
    )
}

/// An answer as the table shows it: an error's code, a proposal's state,
/// else the response type.
fn frame_seen(frame: Option<ResponseFrame>) -> String {
    match frame.map(|f| f.response) {
        None => "closed without an answer".to_owned(),
        Some(Response::Error(e)) => e.code.as_str().to_owned(),
        Some(Response::ProposalRecorded(p)) => p.state.as_str().to_owned(),
        Some(other) => other.type_name().to_owned(),
    }
}

/// A client call's outcome as the table shows it.
fn seen<T: Seen>(r: Result<T, ClientError>) -> String {
    match r {
        Ok(v) => v.seen(),
        Err(ClientError::Refused(body)) => body.code.as_str().to_owned(),
        Err(e) => format!("client error: {e}"),
    }
}

trait Seen {
    fn seen(&self) -> String;
}

impl Seen for ProposalRecorded {
    fn seen(&self) -> String {
        self.state.as_str().to_owned()
    }
}

impl Seen for ReadRecorded {
    fn seen(&self) -> String {
        "read_recorded".to_owned()
    }
}

impl Seen for Response {
    fn seen(&self) -> String {
        match self {
            Response::ProposalStatus(s) => format!("proposal_status: {}", s.state.as_str()),
            other => other.type_name().to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------
// The summary table.

struct Row {
    attempt: String,
    expected: String,
    observed: String,
    ok: bool,
}

static ROWS: Mutex<Vec<Row>> = Mutex::new(Vec::new());

fn print_table() {
    use std::io::Write;
    let mut rows = std::mem::take(&mut *ROWS.lock().unwrap_or_else(PoisonError::into_inner));
    if rows.is_empty() {
        return;
    }
    rows.sort_by(|a, b| a.attempt.cmp(&b.attempt));
    let width = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .chain([title.chars().count()])
            .max()
            .unwrap_or(0)
    };
    let (wa, we, wo) = (
        width(|r| &r.attempt, "attempt"),
        width(|r| &r.expected, "expected"),
        width(|r| &r.observed, "observed"),
    );
    let mut out = format!(
        "\nrogue proposer: {} attempts\n{:<wa$}  {:<we$}  {:<wo$}  result\n{}\n",
        rows.len(),
        "attempt",
        "expected",
        "observed",
        "-".repeat(wa + we + wo + 12)
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<wa$}  {:<we$}  {:<wo$}  {}\n",
            r.attempt,
            r.expected,
            r.observed,
            if r.ok { "ok" } else { "FAILED" }
        ));
    }
    let _ = std::io::stderr().write_all(out.as_bytes());
}

/// 1,000 connections need as many descriptors; raise the soft limit if low.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(8192);
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}
