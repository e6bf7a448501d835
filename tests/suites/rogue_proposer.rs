//! A rogue proposer: a client with the proposer socket that speaks the
//! protocol and tries forbidden things. Each attempt must be refused with a
//! specific code, nothing written to the ledger, and the executor still
//! serving others.

use std::time::Duration;

use airlock_ipc::Role;
use airlock_ipc::client::Client;
use airlock_ipc::frame::{read_frame, write_frame};
use airlock_ipc::message::{Approve, Empty, ListProposals, Request, Response, ResponseFrame};
use airlock_ipc::transport::{IpcStream, connect};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::proposals::{
    WAIVER, invoice_row, load, read_of, record, reference_value, refusal, submit, waiver,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const ENV: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "acme")];

/// One way a rogue proposer alters an honest change set.
type Tamper = dyn Fn(&mut airlock_policy::change_set::ChangeSet);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Events and proposals in the ledger, via the operator socket.
async fn ledger_counts(exec: &ExecutorProcess) -> (u64, u64) {
    let mut op = exec.client(Role::Operator).await;
    let stats = match op.call(Request::Stats(Empty {})).await.unwrap() {
        Response::Stats(s) => s,
        other => panic!("{other:?}"),
    };
    let proposals = match op
        .call(Request::ListProposals(ListProposals {
            status: None,
            limit: Some(1000),
        }))
        .await
        .unwrap()
    {
        Response::Proposals(p) => p.items.len() as u64,
        other => panic!("{other:?}"),
    };
    (stats.events, proposals)
}

/// A raw connection that has said hello as a proposer.
async fn raw_proposer(exec: &ExecutorProcess) -> IpcStream {
    let mut s = connect(&exec.proposer_socket()).await.unwrap();
    send_json(&mut s, &json!({"id": 1, "type": "hello", "body": {"protocol": "airlock.ipc.v1", "role": "proposer", "client_version": "rogue"}})).await;
    let welcome = answer(&mut s).await.expect("welcome");
    assert_eq!(welcome.response.type_name(), "welcome");
    s
}

async fn send_json(s: &mut IpcStream, v: &Value) {
    write_frame(s, v.to_string().as_bytes()).await.unwrap();
}

async fn answer(s: &mut IpcStream) -> Option<ResponseFrame> {
    let body = tokio::time::timeout(Duration::from_secs(15), read_frame(s))
        .await
        .expect("answer in time")
        .ok()??;
    Some(ResponseFrame::decode(&body).expect("executor answers are well-formed"))
}

fn error_code(frame: &ResponseFrame) -> &'static str {
    match &frame.response {
        Response::Error(e) => e.code.as_str(),
        other => panic!("expected an error, got {}", other.type_name()),
    }
}

/// After a refusal the connection must be closed by the executor.
async fn closed(s: &mut IpcStream) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(5), read_frame(s)).await,
        Ok(Ok(None)) | Ok(Err(_))
    )
}

#[test]
fn every_forbidden_attempt_is_refused_and_nothing_is_written() {
    let exec = ExecutorProcess::start(&reference_value(), ENV);
    let cfg = load(&reference_value());
    let rt = rt();
    rt.block_on(async {
        let before = ledger_counts(&exec).await;
        assert_eq!(before, (0, 0));
        let mut results: Vec<(String, String, String)> = Vec::new();
        let mut expect = |what: &str, expected: &str, observed: String| {
            results.push((what.to_owned(), expected.to_owned(), observed));
        };

        // Operator messages on the proposer socket: forbidden, connection closed.
        let mut p = exec.client(Role::Proposer).await;
        let r = p.call(Request::Approve(Approve { proposal_id: "wrp_anything".into(), note: None })).await;
        expect("approve on the proposer socket", "forbidden", refusal(r));
        let mut p = exec.client(Role::Proposer).await;
        let r = p.call(Request::ListProposals(ListProposals { status: None, limit: None })).await;
        expect("list on the proposer socket", "forbidden", refusal(r));
        let mut p = exec.client(Role::Proposer).await;
        let r = p.call(Request::Stats(Empty {})).await;
        expect("stats on the proposer socket", "forbidden", refusal(r));

        let mut p = exec.client(Role::Proposer).await;
        let honest_read = read_of(&cfg, WAIVER, json!({"invoice_id": "INV-3001", "reason": "r"}), &invoice_row("INV-3001", "acme"), "acme");

        // Other tenants.
        let r = record(&mut p, read_of(&cfg, WAIVER, json!({"invoice_id": "INV-9001", "reason": "r"}), &invoice_row("INV-9001", "otherco"), "otherco")).await;
        expect("record a read for another tenant", "tenant_not_allowed", refusal(r));
        let r = submit(&mut p, waiver(&cfg, "INV-9001", "otherco", "r"), None).await;
        expect("propose for another tenant", "tenant_not_allowed", refusal(r));
        let mut read = honest_read.clone();
        read.rows[0].insert("tenant_id".into(), json!("otherco"));
        expect("evidence rows of another tenant", "policy_violation", refusal(record(&mut p, read).await));

        // Evidence that is not the reviewed statement, or not this row.
        let mut read = honest_read.clone();
        read.query_fingerprint = "sha256:".to_owned() + &"ab".repeat(32);
        expect("evidence with a foreign query fingerprint", "policy_violation", refusal(record(&mut p, read).await));
        let mut read = honest_read.clone();
        read.rows[0].insert("password_hash".into(), json!("x"));
        expect("evidence with a column the capability never reads", "policy_violation", refusal(record(&mut p, read).await));
        expect("proposal without evidence", "evidence_required", refusal(submit(&mut p, waiver(&cfg, "INV-3001", "acme", "r"), None).await));
        let r = submit(&mut p, waiver(&cfg, "INV-3001", "acme", "r"), Some("ev_forged0000000000000".into())).await;
        expect("proposal with a forged evidence id", "evidence_required", refusal(r));

        // Tampered change sets (evidence is honest, so only the change set is at fault).
        let ev = record(&mut p, honest_read.clone()).await.unwrap().evidence_id;
        let (events_after_read, _) = ledger_counts(&exec).await;
        let tampered: Vec<(&str, Box<Tamper>)> = vec![
            ("patch a column outside allowed_columns", Box::new(|cs| { cs.patch.insert("balance_cents".into(), json!(0)); })),
            ("alter a fixed value", Box::new(|cs| { cs.patch.insert("late_fee_cents".into(), json!(1)); cs.after.insert("late_fee_cents".into(), json!(1)); })),
            ("target another table", Box::new(|cs| cs.target.table = "customers".into())),
            ("target another schema", Box::new(|cs| cs.target.schema = "pg_catalog".into())),
            ("target another key column", Box::new(|cs| cs.target.primary_key.column = "customer_id".into())),
            ("smuggle SQL into an identifier", Box::new(|cs| cs.target.table = "invoices; DROP TABLE invoices".into())),
            ("claim another tenant in the tenant guard", Box::new(|cs| cs.guards.tenant.as_mut().unwrap().value = json!("otherco"))),
            ("drop the version guard", Box::new(|cs| cs.guards.expected_version = None)),
            ("submit under another proposal capability", Box::new(|cs| cs.capability = "orders.propose_status_change".into())),
            ("argument over its length limit", Box::new(|cs| { cs.args.insert("reason".into(), json!("x".repeat(501))); })),
        ];
        for (what, tamper) in tampered {
            let mut cs = waiver(&cfg, "INV-3001", "acme", "r");
            tamper(&mut cs);
            expect(what, "policy_violation", refusal(submit(&mut p, cs, Some(ev.clone())).await));
        }
        let r = submit(&mut p, waiver(&cfg, "INV-3001", "acme", "token ghp_abcdefghijklmnopqrstuvwxyz0123"), Some(ev.clone())).await;
        expect("a secret in a proposed value", "secret_material", refusal(r));

        // Asserted ids and states are not part of the contract at all.
        let mut raw = raw_proposer(&exec).await;
        let cs = serde_json::to_value(waiver(&cfg, "INV-3001", "acme", "r")).unwrap();
        for (what, body) in [
            ("assert an approved state", json!({"change_set": cs, "evidence_id": ev, "state": "approved"})),
            ("assert a proposal id", json!({"change_set": cs, "evidence_id": ev, "proposal_id": "wrp_mine"})),
            ("approve via a change-set field", json!({"change_set": {"approved": true}, "evidence_id": ev})),
        ] {
            send_json(&mut raw, &json!({"id": 7, "type": "submit_proposal", "body": body})).await;
            let a = answer(&mut raw).await.expect("an answer");
            assert_eq!(a.id, 7, "the response echoes the request id");
            expect(what, "invalid_request", error_code(&a).to_owned());
        }

        // Broken framing: answered once, then the connection is closed.
        let mut raw = raw_proposer(&exec).await;
        raw.write_all(&(2u32 * 1024 * 1024).to_be_bytes()).await.unwrap();
        let a = answer(&mut raw).await.unwrap();
        expect("a 2 MiB frame header", "frame_too_large", error_code(&a).to_owned());
        assert!(closed(&mut raw).await);
        for (what, bytes) in [
            ("malformed JSON", b"{not json".to_vec()),
            ("duplicate keys", br#"{"id":1,"type":"stats","type":"approve","body":{}}"#.to_vec()),
            ("non-UTF-8", b"{\"id\":1,\"type\":\"\xff\",\"body\":{}}".to_vec()),
            ("deep nesting", format!("{{\"id\":1,\"type\":\"stats\",\"body\":{{\"x\":{}{}}}}}", "[".repeat(100), "]".repeat(100)).into_bytes()),
        ] {
            let mut raw = raw_proposer(&exec).await;
            write_frame(&mut raw, &bytes).await.unwrap();
            let a = answer(&mut raw).await.unwrap();
            expect(what, "malformed_frame", error_code(&a).to_owned());
            assert!(closed(&mut raw).await, "{what}: connection closed");
        }
        let mut raw = raw_proposer(&exec).await;
        raw.write_all(&100u32.to_be_bytes()).await.unwrap();
        raw.write_all(b"{\"id\":").await.unwrap();
        drop(raw); // truncated frame: the executor just drops the connection

        // Handshake abuse.
        let mut s = connect(&exec.proposer_socket()).await.unwrap();
        send_json(&mut s, &json!({"id": 1, "type": "hello", "body": {"protocol": "airlock.ipc.v0", "role": "proposer", "client_version": "old"}})).await;
        expect("an old protocol version", "unsupported_version", error_code(&answer(&mut s).await.unwrap()).to_owned());
        let mut s = connect(&exec.proposer_socket()).await.unwrap();
        send_json(&mut s, &json!({"id": 1, "type": "hello", "body": {"protocol": "airlock.ipc.v1", "role": "operator", "client_version": "x"}})).await;
        expect("claim the operator role on the proposer socket", "role_mismatch", error_code(&answer(&mut s).await.unwrap()).to_owned());
        let mut s = connect(&exec.proposer_socket()).await.unwrap();
        send_json(&mut s, &json!({"id": 1, "type": "stats", "body": {}})).await;
        expect("a request before hello", "handshake_required", error_code(&answer(&mut s).await.unwrap()).to_owned());
        let mut raw = raw_proposer(&exec).await;
        send_json(&mut raw, &json!({"id": 2, "type": "hello", "body": {"protocol": "airlock.ipc.v1", "role": "proposer", "client_version": "x"}})).await;
        expect("hello twice", "handshake_required", error_code(&answer(&mut raw).await.unwrap()).to_owned());
        let mut raw = raw_proposer(&exec).await;
        send_json(&mut raw, &json!({"id": 3, "type": "drop_table", "body": {}})).await;
        expect("an unknown message type", "unknown_message", error_code(&answer(&mut raw).await.unwrap()).to_owned());

        // The summary table, then the verdicts.
        let mut table = format!("{:<52} {:<20} {}\n", "attempt", "expected", "observed");
        for (what, expected, observed) in &results {
            table.push_str(&format!("{what:<52} {expected:<20} {observed}\n"));
        }
        std::io::Write::write_all(&mut std::io::stderr(), table.as_bytes()).unwrap();
        for (what, expected, observed) in &results {
            assert_eq!(observed, expected, "{what}");
        }

        // Nothing but the one honest read was written; the executor still serves.
        let after = ledger_counts(&exec).await;
        assert_eq!(after, (events_after_read, 0), "only the honest evidence is in the ledger");
        let mut p = exec.client(Role::Proposer).await;
        let ok = submit(&mut p, waiver(&cfg, "INV-3001", "acme", "legit"), Some(ev)).await.expect("an honest proposal still works");
        assert_eq!(ok.state, airlock_ipc::message::ProposalState::PendingApproval);
    });
}

#[test]
fn a_flood_of_connections_is_bounded_and_the_executor_keeps_serving() {
    let exec = ExecutorProcess::start(&reference_value(), ENV);
    let rt = rt();
    rt.block_on(async {
        let mut held = Vec::new();
        let mut busy = 0;
        for _ in 0..300 {
            match connect(&exec.proposer_socket()).await {
                Ok(mut s) => {
                    // A refused connection is answered at once; an accepted one waits for hello.
                    match tokio::time::timeout(Duration::from_millis(50), read_frame(&mut s)).await
                    {
                        Ok(Ok(Some(body))) => {
                            let f = ResponseFrame::decode(&body).unwrap();
                            assert_eq!(error_code(&f), "busy");
                            busy += 1;
                        }
                        _ => held.push(s),
                    }
                }
                Err(_) => busy += 1,
            }
        }
        assert!(
            busy > 0,
            "the per-uid connection limit must refuse some of 300 connections"
        );
        assert!(held.len() <= airlock_ipc::limits::MAX_CONNECTIONS_PER_UID);
        drop(held);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut c = Client::connect(
            &exec.proposer_socket(),
            Role::Proposer,
            "t",
            Duration::from_secs(10),
        )
        .await
        .expect("serving after the flood");
        let r = c
            .call(Request::ProposalStatus(airlock_ipc::message::ProposalRef {
                proposal_id: "wrp_none".into(),
            }))
            .await;
        assert_eq!(refusal(r), "not_found");
    });
}
