//! Resource limits at the executor's edges (issue 12, items 7–10), each
//! against the real executor as a separate process:
//!
//! - a connect flood of refused peers writes a bounded log, with a summary
//!   line accounting for every refusal that was not logged;
//! - proposer connections have their own budget: with the proposer socket
//!   full, the operator CLI still answers;
//! - a client that stops reading is disconnected after `WRITE_TIMEOUT`,
//!   freeing its connection slot;
//! - per-peer rate, daily volume and size limits on evidence and proposals
//!   (`airlock.limits`), with specific error codes, nothing stored beyond
//!   the limit, and service again once the window has passed; the MCP
//!   proposer turns them into a clear tool error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use airlock_ipc::Role;
use airlock_ipc::client::{Client, ClientError};
use airlock_ipc::error::ErrorCode;
use airlock_ipc::frame::{read_frame, write_frame};
use airlock_ipc::limits::{MAX_CONNECTIONS_PER_UID, WRITE_TIMEOUT};
use airlock_tests::databases::{ledger_rows, reference_config_for, sqlite_reference};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{agent_env, call, stdio_client};
use airlock_tests::proposals::{
    WAIVER, honest_proposal, invoice_row, load, read_of, record, reference_value, submit, waiver,
};
use serde_json::{Value, json};
use tokio::net::UnixStream;

const ENV: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "acme")];

use airlock_tests::runtime as rt;

/// Enough descriptors for a few hundred connections held at once.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(8192);
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}

fn count(store: &Path, table: &str) -> u64 {
    ledger_rows(
        store,
        &format!("SELECT CAST(count(*) AS TEXT) FROM {table}"),
    )[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

fn refused_code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (ErrorCode, String, Value) {
    match r {
        Err(ClientError::Refused(b)) => (b.code, b.message, b.details.unwrap_or(Value::Null)),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn hello_frame(role: &str) -> Vec<u8> {
    json!({"id": 1, "type": "hello", "body": {"protocol": airlock_ipc::PROTOCOL, "role": role, "client_version": "resource-limits"}})
        .to_string()
        .into_bytes()
}

// ---------------------------------------------------------------------------
// Item 7: refusal logging is rate-limited.

/// 5,000 connections from a uid that may not use the proposer socket. Each
/// is refused; the log grows by a few KB, not by one line per refusal, and
/// the summary lines account for every refusal that was not logged.
#[test]
fn a_flood_of_refused_connections_writes_a_bounded_log() {
    const N: usize = 5_000;
    const BOUND: usize = 100 * 1024;
    raise_fd_limit();
    let mut config = reference_value();
    // The test runs as root; only uid 65534 may be a proposer, so every
    // connection of ours to proposer.sock is refused as unauthorized.
    config["airlock"] = json!({"proposers": [{"uid": 65534, "tenants": ["acme"]}]});
    let mut exec = ExecutorProcess::start(&config, ENV);
    let before = exec.log().len();
    let socket = exec.proposer_socket();
    let started = Instant::now();
    let refused = rt().block_on(async {
        let mut set = tokio::task::JoinSet::new();
        let mut refused = 0usize;
        for i in 0..N {
            if set.len() >= 64 {
                refused += set.join_next().await.unwrap().unwrap();
            }
            let socket = socket.clone();
            set.spawn(async move {
                let mut s = UnixStream::connect(&socket).await.unwrap();
                // The refusal comes before anything is read from us.
                let answer = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut s))
                    .await
                    .unwrap_or_else(|_| panic!("connection {i}: no answer"));
                let body: Value = serde_json::from_slice(&answer.unwrap().unwrap()).unwrap();
                usize::from(body["body"]["code"] == "unauthorized_peer")
            });
        }
        while let Some(r) = set.join_next().await {
            refused += r.unwrap();
        }
        refused
    });
    let flood = started.elapsed();
    assert_eq!(refused, N, "every connection is refused as unauthorized");

    // The summary comes when the window ends (≤ 30 s), even with no new refusal.
    let deadline = Instant::now() + Duration::from_secs(45);
    let summaries = loop {
        let log = exec.log()[before..].to_owned();
        let sums: Vec<u64> = log
            .lines()
            .filter(|l| l.contains("similar refusals (unauthorized_peer)"))
            .map(|l| {
                let after = l.split("suppressed ").nth(1).unwrap();
                after.split(' ').next().unwrap().parse().unwrap()
            })
            .collect();
        let logged = log
            .lines()
            .filter(|l| l.contains("refused: peer not authorized"))
            .count() as u64;
        if logged + sums.iter().sum::<u64>() == N as u64 {
            break (log, logged, sums);
        }
        assert!(
            Instant::now() < deadline,
            "the summary lines do not account for all {N} refusals after 45 s:\n{}",
            &log[..log.len().min(4000)]
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let (log, logged, sums) = summaries;
    let line_len = log
        .lines()
        .find(|l| l.contains("refused: peer not authorized"))
        .expect("the first refusals are logged")
        .len()
        + 1;
    let unlimited = N * line_len;
    eprintln!(
        "flood of {N} refused connections in {} ms: log grew {} bytes ({logged} refusal lines, {} summary line(s) counting {} more); one line per refusal would be {unlimited} bytes",
        flood.as_millis(),
        log.len(),
        sums.len(),
        sums.iter().sum::<u64>()
    );
    assert!(
        log.len() < BOUND,
        "the log grew by {} bytes (bound {BOUND})",
        log.len()
    );
    // Without the limiter the same flood writes one line per refusal: far
    // over the bound. (Non-vacuous: every refusal is accounted for above.)
    assert!(
        unlimited > 5 * BOUND,
        "{unlimited} bytes would not show the limiter"
    );
    assert!(logged <= 20, "{logged} refusal lines logged");
    // The executor still serves its operator.
    let out = exec.cli(&["proposals", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(exec.is_alive());
}

// ---------------------------------------------------------------------------
// Item 8: separate connection budgets.

/// The proposer socket filled to its limit (the laptop default: proposer and
/// operator are the same uid) cannot make the operator CLI answer `busy`.
#[test]
fn a_full_proposer_socket_does_not_make_the_operator_cli_busy() {
    raise_fd_limit();
    let mut exec = ExecutorProcess::start(&reference_value(), ENV);
    let socket = exec.proposer_socket();
    let rt = rt();
    let held = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..MAX_CONNECTIONS_PER_UID + 16 {
            let path = socket.clone();
            set.spawn(async move {
                Client::connect(&path, Role::Proposer, "hold", Duration::from_secs(30)).await
            });
        }
        let mut held = Vec::new();
        let mut busy = 0;
        while let Some(r) = set.join_next().await {
            match r.unwrap() {
                Ok(c) => held.push(c),
                Err(ClientError::Refused(b)) if b.code == ErrorCode::Busy => busy += 1,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        assert_eq!(held.len(), MAX_CONNECTIONS_PER_UID);
        assert_eq!(busy, 16);
        // The proposer socket is full: one more proposer is refused `busy`.
        let extra =
            Client::connect(&socket, Role::Proposer, "extra", Duration::from_secs(10)).await;
        assert_eq!(refused_code(extra).0, ErrorCode::Busy);
        held
    });
    // The operator CLI (same uid) is served while the proposers are held.
    let out = exec.cli(&["proposals", "list", "--json"]);
    assert!(
        out.status.success(),
        "operator CLI failed while the proposer socket was full:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed["proposals"].is_array(), "{listed}");
    // And an operator connection from a library client too.
    rt.block_on(async {
        let c = Client::connect(
            &exec.operator_socket(),
            Role::Operator,
            "op",
            Duration::from_secs(10),
        )
        .await;
        assert!(c.is_ok(), "{:?}", c.err());
    });
    drop(held);
    assert!(exec.is_alive());
}

// ---------------------------------------------------------------------------
// Item 9: clients that stop reading.

/// The per-uid maximum of clients, each pipelining requests without end and
/// never reading an answer. Once every one of them is stuck (the executor's
/// answers fill its socket buffer, so it stops reading, so their writes
/// block), a new connection is `busy`: the attack holds every slot. Within
/// `WRITE_TIMEOUT` + a margin the executor closes them all and serves again.
#[test]
fn clients_that_stop_reading_are_closed_after_the_write_timeout() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    raise_fd_limit();
    let mut exec = ExecutorProcess::start(&reference_value(), ENV);
    let socket = exec.proposer_socket();
    let rt = rt();
    rt.block_on(async {
        let mut readers = Vec::new();
        let mut writers = tokio::task::JoinSet::new();
        let sent = Arc::new(AtomicUsize::new(0));
        for _ in 0..MAX_CONNECTIONS_PER_UID {
            let mut s = UnixStream::connect(&socket).await.unwrap();
            write_frame(&mut s, &hello_frame("proposer")).await.unwrap();
            let welcome: Value =
                serde_json::from_slice(&read_frame(&mut s).await.unwrap().unwrap()).unwrap();
            assert_eq!(welcome["type"], "welcome", "{welcome}");
            let (rd, mut wr) = s.into_split();
            readers.push(rd);
            let sent = Arc::clone(&sent);
            writers.spawn(async move {
                // Each answered with an error frame; nothing touches the ledger.
                for n in 2u64.. {
                    let req = json!({"id": n, "type": "no_such_message", "body": {}});
                    if write_frame(&mut wr, req.to_string().as_bytes()).await.is_err() {
                        return Instant::now(); // the executor closed the connection
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                unreachable!()
            });
        }
        // Stuck: no request of any client gets through for a whole second.
        let mut last = usize::MAX;
        let stuck_since = loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = sent.load(Ordering::Relaxed);
            if now == last {
                break Instant::now();
            }
            last = now;
        };
        let during = Client::connect(&socket, Role::Proposer, "during", Duration::from_secs(5)).await;
        assert_eq!(
            refused_code(during).0,
            ErrorCode::Busy,
            "the stuck clients hold every slot of this uid"
        );
        // Every stuck connection is closed by the executor (their writes fail).
        let limit = WRITE_TIMEOUT + Duration::from_secs(5);
        let mut closed_after = Vec::new();
        while let Ok(Some(done)) = tokio::time::timeout_at(
            (stuck_since + limit).into(),
            writers.join_next(),
        )
        .await
        {
            closed_after.push(done.unwrap().saturating_duration_since(stuck_since));
        }
        assert_eq!(
            closed_after.len(),
            MAX_CONNECTIONS_PER_UID,
            "only {} of {MAX_CONNECTIONS_PER_UID} stuck connections closed within {limit:?}",
            closed_after.len()
        );
        let slowest = closed_after.iter().max().copied().unwrap_or_default();
        // Their slots are free: a new client is served at once.
        Client::connect(&socket, Role::Proposer, "after", Duration::from_secs(5))
            .await
            .expect("a slot is free again");
        drop(readers);
        eprintln!(
            "{MAX_CONNECTIONS_PER_UID} non-reading clients ({} requests sent before they got stuck): all closed within {} ms of getting stuck (WRITE_TIMEOUT {WRITE_TIMEOUT:?})",
            sent.load(Ordering::Relaxed),
            slowest.as_millis()
        );
    });
    assert!(exec.log().contains("did not read its answer within"));
    assert!(exec.is_alive());
}

// ---------------------------------------------------------------------------
// Item 10: per-peer limits on what reaches the ledger.

fn limited(limits: Value) -> Value {
    let mut config = reference_value();
    config["airlock"] = json!({ "limits": limits });
    config
}

/// Evidence and proposals per window: the next one is `rate_limited` with a
/// retry hint, nothing beyond the limit is stored, and after the window the
/// same peer is served again.
#[test]
fn evidence_and_proposals_are_rate_limited_per_peer() {
    const WINDOW: u64 = 4;
    let config = limited(json!({
        "rate_window_seconds": WINDOW, "evidence_per_window": 5, "proposals_per_window": 2
    }));
    let cfg = load(&config);
    let exec = ExecutorProcess::start(&config, ENV);
    let store = exec.store.clone();
    let read = || {
        let args = json!({"invoice_id": "INV-3001", "reason": "r"});
        read_of(&cfg, WAIVER, args, &invoice_row("INV-3001", "acme"), "acme")
    };
    rt().block_on(async {
        // Evidence: 5 admitted, the 6th (another connection, same uid) refused.
        let mut a = exec.client(Role::Proposer).await;
        let mut b = exec.client(Role::Proposer).await;
        let start = Instant::now();
        for _ in 0..5 {
            record(&mut a, read()).await.expect("within the limit");
        }
        let (code, msg, details) = refused_code(record(&mut b, read()).await);
        assert_eq!(code, ErrorCode::RateLimited, "{msg}");
        assert!(
            msg.contains("evidence_per_window") && msg.contains("retry in"),
            "{msg}"
        );
        let retry = details["retry_after_ms"].as_u64().unwrap();
        assert!(retry > 0 && retry <= WINDOW * 1000, "{details}");
        assert_eq!(details["limit"], "evidence_per_window");
        assert_eq!(
            count(&store, "evidence"),
            5,
            "nothing beyond the limit is stored"
        );

        // After the window: served again. Proposals: 2 admitted, the 3rd refused.
        tokio::time::sleep(Duration::from_millis(retry + 100)).await;
        assert!(start.elapsed() >= Duration::from_secs(WINDOW));
        let mut ids = Vec::new();
        for i in 0..3 {
            let reason = format!("limit {i}");
            let ev = record(&mut a, read()).await.expect("a new window");
            let r = submit(
                &mut a,
                waiver(&cfg, "INV-3001", "acme", &reason),
                Some(ev.evidence_id),
            )
            .await;
            if i < 2 {
                ids.push(r.expect("within the limit").proposal_id);
            } else {
                let (code, msg, details) = refused_code(r);
                assert_eq!(code, ErrorCode::RateLimited, "{msg}");
                assert_eq!(details["limit"], "proposals_per_window");
            }
        }
        assert_eq!(
            count(&store, "proposals"),
            2,
            "nothing beyond the limit is stored"
        );
        // The window passes again: the same peer proposes again.
        let (_, _, details) =
            refused_code(submit(&mut b, waiver(&cfg, "INV-3001", "acme", "again"), None).await);
        let retry = details["retry_after_ms"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(retry + 100)).await;
        let p = honest_proposal(&mut b, &cfg, "after the window").await;
        assert!(p.proposal_id.starts_with("wrp_"));
        assert_eq!(count(&store, "proposals"), 3);
    });
}

/// The daily volume: once a peer's ledger bytes for the day are used up,
/// further evidence is `rate_limited` (limit `ledger_bytes_per_day`) with a
/// retry hint of up to a day, and nothing more is stored.
#[test]
fn the_daily_ledger_volume_per_peer_is_bounded() {
    let config = limited(json!({"ledger_bytes_per_day": 8192}));
    let cfg = load(&config);
    let exec = ExecutorProcess::start(&config, ENV);
    rt().block_on(async {
        let mut c = exec.client(Role::Proposer).await;
        let mut stored = 0;
        let refusal = loop {
            let args = json!({"invoice_id": "INV-3001", "reason": "r"});
            match record(
                &mut c,
                read_of(&cfg, WAIVER, args, &invoice_row("INV-3001", "acme"), "acme"),
            )
            .await
            {
                Ok(_) => stored += 1,
                Err(e) => break refused_code::<()>(Err(e)),
            }
            assert!(stored < 100, "the daily volume never ran out");
        };
        let (code, msg, details) = refusal;
        assert_eq!(code, ErrorCode::RateLimited, "{msg}");
        assert_eq!(details["limit"], "ledger_bytes_per_day");
        assert!(details["retry_after_ms"].as_u64().unwrap() > 23 * 3600 * 1000);
        // Each small read is charged 2 × its JSON + 2 KiB: a handful fit.
        assert!((2..=6).contains(&stored), "{stored} stored");
        assert_eq!(count(&exec.store, "evidence"), stored);
    });
}

/// Evidence and change sets over their configured size are refused as
/// `too_large` before anything else, nothing is stored, and the same peer
/// is not charged for them.
#[test]
fn oversize_evidence_and_change_sets_are_refused_as_too_large() {
    let config = limited(json!({"max_evidence_bytes": 1024, "max_change_set_bytes": 2048}));
    let cfg = load(&config);
    let exec = ExecutorProcess::start(&config, ENV);
    rt().block_on(async {
        let mut c = exec.client(Role::Proposer).await;
        let mut row = invoice_row("INV-3001", "acme");
        row.insert("customer_id".into(), json!("c".repeat(2000)));
        let args = json!({"invoice_id": "INV-3001", "reason": "r"});
        let (code, msg, details) =
            refused_code(record(&mut c, read_of(&cfg, WAIVER, args, &row, "acme")).await);
        assert_eq!(code, ErrorCode::TooLarge, "{msg}");
        assert!(
            msg.contains("max_evidence_bytes") && msg.contains("at most 1024"),
            "{msg}"
        );
        assert_eq!(details["max_bytes"], 1024);
        assert!(details["bytes"].as_u64().unwrap() > 2000);
        assert_eq!(count(&exec.store, "evidence"), 0);

        // Larger than any honest change set of this capability (a tampering
        // client can send anything): the size is checked before all else.
        let mut big = waiver(&cfg, "INV-3001", "acme", "r");
        big.args.insert("reason".into(), json!("x".repeat(3000)));
        let (code, msg, _) = refused_code(submit(&mut c, big, None).await);
        assert_eq!(code, ErrorCode::TooLarge, "{msg}");
        assert!(msg.contains("max_change_set_bytes"), "{msg}");
        assert_eq!(count(&exec.store, "proposals"), 0);

        // Honest sizes still pass.
        honest_proposal(&mut c, &cfg, "small enough").await;
        assert_eq!(count(&exec.store, "proposals"), 1);
    });
}

/// Through the real MCP proposer: once the executor rate-limits the agent's
/// uid, the tool answers a clear `rate_limited` error with the retry hint.
#[test]
fn the_mcp_proposer_reports_rate_limits_as_a_clear_tool_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "limits");
    let mut config = reference_config_for(&db);
    config["airlock"] = json!({"limits": {"evidence_per_window": 2, "rate_window_seconds": 3600}});
    let exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
    let env = agent_env(&db.read_url);
    rt().block_on(async {
        let client = stdio_client(&exec.config_path, &exec.socket_dir, &env, &[]).await;
        let args = json!({"invoice_id": "INV-3001"});
        for _ in 0..2 {
            let (_, e) = call(&client, "billing__inspect_invoice", args.clone()).await;
            assert_eq!(e["ok"], true, "{e}");
        }
        let (result, e) = call(&client, "billing__inspect_invoice", args.clone()).await;
        assert_eq!(result.is_error, Some(true), "{e}");
        assert_eq!(e["ok"], false, "{e}");
        assert_eq!(e["error"]["code"], "RATE_LIMITED", "{e}");
        assert_eq!(e["error"]["airlock_code"], "rate_limited", "{e}");
        assert_eq!(e["error"]["retryable"], true, "{e}");
        assert!(e["error"]["retry_after_ms"].as_u64().unwrap() > 0, "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("retry") && msg.contains("evidence_per_window"),
            "{msg}"
        );
        assert!(
            e["error"]["details"]["retry_after_ms"].as_u64().unwrap() > 0,
            "{e}"
        );
        client.cancel().await.unwrap();
    });
    assert_eq!(count(&exec.store, "evidence"), 2);
}

/// Through the real MCP proposer: evidence over the configured size is the
/// tool error `too_large`, naming the limit; nothing is stored.
#[test]
fn the_mcp_proposer_reports_oversize_evidence_as_a_clear_tool_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "too_large");
    let mut config = reference_config_for(&db);
    config["airlock"] = json!({"limits": {"max_evidence_bytes": 64}});
    let exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
    let env = agent_env(&db.read_url);
    rt().block_on(async {
        let client = stdio_client(&exec.config_path, &exec.socket_dir, &env, &[]).await;
        let (result, e) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(result.is_error, Some(true), "{e}");
        assert_eq!(e["error"]["code"], "TOO_LARGE", "{e}");
        assert_eq!(e["error"]["retryable"], false, "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("max_evidence_bytes") && msg.contains("at most 64"),
            "{msg}"
        );
        client.cancel().await.unwrap();
    });
    assert_eq!(count(&exec.store, "evidence"), 0);
}

/// `airlock.limits` is validated like the rest of the config: a bad value
/// names its path and the accepted range; unknown keys are refused.
#[test]
fn limits_config_is_validated_with_clear_errors() {
    for (limits, path, want) in [
        (
            json!({"evidence_per_window": 0}),
            "$.airlock.limits.evidence_per_window",
            "from 1",
        ),
        (
            json!({"max_evidence_bytes": 2_000_000}),
            "$.airlock.limits.max_evidence_bytes",
            "1048576",
        ),
        (
            json!({"proposals_per_minute": 5}),
            "$.airlock.limits.proposals_per_minute",
            "",
        ),
    ] {
        let loaded = airlock_policy::load_config(&limited(limits.clone()));
        assert!(loaded.config.is_none(), "{limits} accepted");
        let errors: Vec<_> = loaded.report.errors().collect();
        assert!(
            errors
                .iter()
                .any(|d| d.path == path && d.message.contains(want)),
            "{limits}: {errors:#?}"
        );
    }
    let defaults = load(&reference_value()).airlock.limits;
    assert_eq!(defaults, airlock_policy::config::IntakeLimits::default());
}
