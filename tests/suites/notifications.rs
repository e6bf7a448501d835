//! Issue 15, item 2 — notifications from the executor, through the real
//! processes: the real executor posts to a real HTTP receiver on loopback
//! and appends to a real JSONL file; the real `airlock` CLI reads the
//! delivery state and sends test notifications.
//!
//! * A loopback receiver gets a correctly signed `proposal.created` within
//!   a second of the proposal (the signature checked here with `hmac`, not
//!   with the executor's code), carrying ids and names and no tenant, row
//!   value or argument; its answer decides nothing.
//! * A receiver that was down gets it after an executor restart: delivery
//!   state is in the ledger.
//! * A receiver that hangs never slows a proposal.
//! * Every proposal event notifies, through a real loop on SQLite:
//!   created, approved, applied, rejected, conflict, failed, expired.
//! * `notifications test` sends a signed test event; `status` reports.
//! * Private, link-local and metadata destinations are refused (and the
//!   same destination allowed by name is attempted: the refusal is what
//!   stopped it); a plain-http public URL and a missing variable stop the
//!   executor at start; the URL and the key never appear in any output.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock_ipc::Role;
use airlock_tests::databases::{execute, reference_config_for, sqlite_reference};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::propose_over_mcp;
use airlock_tests::proposals::{honest_proposal, load, reference_value};
use airlock_tests::receiver::{Answer, Received, Receiver, free_port};
use airlock_tests::{bin, block_on, runtime, stdout_json};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "notify-key-0123456789abcdef0123456789abcdef";
/// A path segment that stands in for the credential a chat webhook URL
/// carries: it must never be shown.
const URL_TOKEN: &str = "T0KENpathSEGMENT7f3a9";

fn ok() -> Answer {
    Answer::Status(204, String::new())
}

/// The reference config with a webhook sink and a JSONL sink.
fn config_with(sinks: Value) -> Value {
    let mut config = reference_value();
    config["notifications"] = json!({"enabled": true, "sinks": sinks});
    config
}

fn webhook(id: &str) -> Value {
    json!({"id": id, "type": "webhook", "url_env": "HOOK_URL", "signing_secret_env": "HOOK_SECRET", "timeout_ms": 1000})
}

fn jsonl() -> Value {
    json!({"id": "audit", "type": "jsonl", "path": "notifications.jsonl"})
}

fn env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SYNAPSOR_TENANT_ID", "acme".to_owned()),
        ("HOOK_URL", url.to_owned()),
        ("HOOK_SECRET", SECRET.to_owned()),
    ]
}

fn start(config: &Value, env: &[(&'static str, String)]) -> ExecutorProcess {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ExecutorProcess::start(config, &pairs)
}

/// Propose; returns the id, when the call began and when it returned.
fn propose(exec: &ExecutorProcess, config: &Value) -> (String, Instant, Instant) {
    let cfg = load(config);
    block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let began = Instant::now();
        let id = honest_proposal(&mut client, &cfg, "customer asked")
            .await
            .proposal_id;
        (id, began, Instant::now())
    })
}

/// Check the signature the way a receiver must: HMAC-SHA256, keyed with
/// the shared secret, over `<timestamp>.<exact body bytes>`, timestamp fresh.
fn assert_signed(r: &Received) {
    let ts = r.header("x-airlock-timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ts_n: u64 = ts.parse().unwrap_or_else(|_| panic!("timestamp `{ts}`"));
    assert!(now.abs_diff(ts_n) < 60, "fresh timestamp: {ts}");
    let signed = |body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("v1={hex}")
    };
    assert_eq!(r.header("x-airlock-signature"), signed(&r.body));
    // A forged body does not verify.
    assert_ne!(
        r.header("x-airlock-signature"),
        signed(&[&r.body[..], b" "].concat())
    );
}

fn jsonl_lines(exec: &ExecutorProcess) -> Vec<Value> {
    std::fs::read_to_string(exec.path().join("notifications.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Wait until the JSONL file holds `n` lines.
fn wait_for_lines(exec: &ExecutorProcess, n: usize, wait: Duration) -> Vec<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let lines = jsonl_lines(exec);
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cli_json(exec: &ExecutorProcess, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = exec.cli(&all);
    (out.status.code(), stdout_json(&out))
}

fn sink_status(exec: &ExecutorProcess, sink: &str) -> Value {
    let (code, v) = cli_json(exec, &["notifications", "status"]);
    assert_eq!(code, Some(0), "{v}");
    v["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sink"] == sink)
        .cloned()
        .unwrap_or_else(|| panic!("no sink {sink}: {v}"))
}

#[test]
fn a_loopback_receiver_gets_a_signed_proposal_created_within_a_second() {
    // The receiver's answer tries to decide: it is ignored.
    let receiver = Receiver::start(Answer::Status(200, r#"{"decision":"approved"}"#.into()));
    let config = config_with(json!([webhook("operations"), jsonl()]));
    let url = receiver.url(&format!("/hooks/{URL_TOKEN}"));
    let exec = start(&config, &env(&url));

    let (id, began, returned) = propose(&exec, &config);
    let r = receiver
        .next(Duration::from_secs(5))
        .expect("the receiver got the notification");
    let took = r.at.saturating_duration_since(returned);
    eprintln!(
        "proposal.created reached the receiver {:?} after the read+proposal calls began ({:?} after they returned; they took {:?})",
        r.at.duration_since(began),
        took,
        returned.duration_since(began)
    );
    assert!(took < Duration::from_secs(1), "within a second: {took:?}");
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/hooks/{URL_TOKEN}"));
    assert_eq!(r.header("content-type"), "application/cloudevents+json");
    assert_signed(&r);
    let body = r.json();
    assert_eq!(body["type"], "airlock.proposal.created");
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(r.header("x-airlock-event-id"), body["id"].as_str().unwrap());
    assert!(body["id"].as_str().unwrap().starts_with("ntf_"));
    let data = &body["data"];
    assert_eq!(data["proposal_id"], id.as_str());
    assert_eq!(data["capability"], "billing.propose_late_fee_waiver");
    assert_eq!(data["state"], "pending_approval");
    assert_eq!(data["required_role"], "billing_lead");
    assert_eq!(data["review"], format!("airlock proposals show {id}"));
    let text = String::from_utf8_lossy(&r.body).into_owned();
    for private in ["acme", "INV-3001", "customer asked", "5500"] {
        assert!(
            !text.contains(private),
            "`{private}` is not in a notification: {text}"
        );
    }

    // The JSONL sink has the same notification, as one line.
    let lines = wait_for_lines(&exec, 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0], body, "the same CloudEvent, same id");

    // The receiver's "approved" answer changed nothing.
    let (_, shown) = cli_json(&exec, &["proposals", "show", &id]);
    assert_eq!(
        shown["proposal"]["summary"]["state"], "pending_approval",
        "{shown}"
    );

    // A decision notifies too, with a new id.
    let (code, out) = cli_json(
        &exec,
        &["proposals", "reject", &id, "--reason", "not needed"],
    );
    assert_eq!(code, Some(0), "{out}");
    let r2 = receiver
        .next(Duration::from_secs(5))
        .expect("proposal.rejected");
    assert_signed(&r2);
    assert_eq!(r2.json()["type"], "airlock.proposal.rejected");
    assert_ne!(r2.json()["id"], body["id"]);

    let ops = sink_status(&exec, "operations");
    assert_eq!(
        (
            ops["delivered"].as_u64(),
            ops["pending"].as_u64(),
            ops["dead"].as_u64()
        ),
        (Some(2), Some(0), Some(0)),
        "{ops}"
    );
    assert_eq!(ops["active"], true);
    let audit = sink_status(&exec, "audit");
    assert_eq!(audit["delivered"], 2, "{audit}");
    assert_eq!(wait_for_lines(&exec, 2, Duration::from_secs(5)).len(), 2);

    // The URL's credential and the key are nowhere.
    let mut seen = exec.log();
    seen.push_str(&String::from_utf8_lossy(
        &std::fs::read(&exec.store).unwrap(),
    ));
    seen.push_str(&String::from_utf8_lossy(
        &exec.cli(&["notifications", "status"]).stdout,
    ));
    for secret in [SECRET, URL_TOKEN] {
        assert!(!seen.contains(secret), "`{secret}` leaked");
    }
}

#[test]
fn a_receiver_that_was_down_gets_it_after_an_executor_restart() {
    let port = free_port();
    let url = format!("http://localhost:{port}/hook");
    let config = config_with(json!([webhook("operations"), jsonl()]));
    let env = env(&url);
    let mut exec = start(&config, &env);
    let (id, _, _) = propose(&exec, &config);

    // Nothing listens: the first attempt fails and the delivery is owed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ops = loop {
        let s = sink_status(&exec, "operations");
        if s["last_error"].is_string() || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (ops["pending"].as_u64(), ops["delivered"].as_u64()),
        (Some(1), Some(0)),
        "{ops}"
    );
    let error = ops["last_error"].as_str().unwrap();
    assert!(error.contains("not delivered"), "{error}");
    assert!(
        !error.contains(&port.to_string()),
        "no URL in the error: {error}"
    );
    let line = wait_for_lines(&exec, 1, Duration::from_secs(5)).remove(0);
    assert_eq!(line["data"]["proposal_id"], id.as_str());

    // The executor stops; the receiver comes up; the executor starts again.
    exec.stop();
    let receiver = Receiver::start_on(port, ok());
    let restarted = Instant::now();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    exec.restart(&pairs);
    let r = receiver
        .next(Duration::from_secs(10))
        .expect("delivered after the restart");
    eprintln!(
        "owed notification delivered {:?} after the restart began",
        r.at.duration_since(restarted)
    );
    assert_signed(&r);
    let body = r.json();
    assert_eq!(body["type"], "airlock.proposal.created");
    assert_eq!(
        body["id"], line["id"],
        "the same notification id as before the restart"
    );
    assert_eq!(body["data"]["proposal_id"], id.as_str());
    let ops = sink_status(&exec, "operations");
    assert_eq!(
        (ops["pending"].as_u64(), ops["delivered"].as_u64()),
        (Some(0), Some(1)),
        "{ops}"
    );
    // Delivered once: no second copy arrives.
    assert!(receiver.next(Duration::from_millis(1500)).is_none());
    assert_eq!(
        jsonl_lines(&exec).len(),
        1,
        "the JSONL sink was not repeated"
    );
}

#[test]
fn a_receiver_that_hangs_never_slows_a_proposal() {
    let receiver = Receiver::start(Answer::Hang(Duration::from_secs(20)));
    let mut hook = webhook("operations");
    hook["timeout_ms"] = json!(3000);
    let config = config_with(json!([hook]));
    let exec = start(&config, &env(&receiver.url("/hook")));
    let cfg = load(&config);
    let took = block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let started = Instant::now();
        for i in 0..5 {
            honest_proposal(&mut client, &cfg, &format!("r{i}")).await;
        }
        started.elapsed()
    });
    eprintln!("5 proposals while the receiver hangs: {took:?}");
    // Had a proposal waited for its notification, this would be ≥ 15 s.
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        receiver.next(Duration::from_secs(5)).is_some(),
        "it was attempted"
    );
}

/// 200 proposals in a row on one connection, without and with a webhook
/// sink and a JSONL sink: every notification arrives once, and the cost to
/// proposals is printed (recorded in docs/benchmarks.md, not asserted).
#[test]
fn a_burst_of_proposals_is_notified_once_each() {
    const N: usize = 200;
    let time = |config: &Value, env: &[(&'static str, String)]| {
        let exec = start(config, env);
        let cfg = load(config);
        let took = block_on(async {
            let mut client = exec.client(Role::Proposer).await;
            let started = Instant::now();
            for i in 0..N {
                honest_proposal(&mut client, &cfg, &format!("r{i}")).await;
            }
            started.elapsed()
        });
        (exec, took)
    };
    let mut plain = reference_value();
    airlock_tests::proposals::capacity_limits(&mut plain);
    let (_, without) = time(&plain, &env("http://127.0.0.1:9/unused"));
    let receiver = Receiver::start(ok());
    let mut config = config_with(json!([webhook("operations"), jsonl()]));
    airlock_tests::proposals::capacity_limits(&mut config);
    let (exec, with) = time(&config, &env(&receiver.url("/hook")));
    let got = receiver.drain(Duration::from_secs(5));
    eprintln!(
        "{N} proposals (read + proposal each): {without:?} without sinks, {with:?} with a webhook and a JSONL sink"
    );
    assert_eq!(got.len(), N, "each notified");
    let ids: std::collections::BTreeSet<String> = got
        .iter()
        .map(|r| r.header("x-airlock-event-id").to_owned())
        .collect();
    assert_eq!(ids.len(), N, "once each");
    assert_eq!(wait_for_lines(&exec, N, Duration::from_secs(5)).len(), N);
}

#[test]
fn every_proposal_event_notifies_through_a_real_loop() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "notify_loop");
    let mut config = reference_config_for(&db);
    config["notifications"] = json!({"enabled": true, "sinks": [
        jsonl(),
        // Only creations of one capability.
        {"id": "waivers", "type": "jsonl", "path": "waivers.jsonl",
         "events": ["proposal.created"], "capabilities": ["billing.propose_late_fee_waiver"]},
    ]});
    let exec = ExecutorProcess::start(
        &config,
        &[
            ("APP_TENANT_ID", "acme"),
            ("APP_WRITE_URL", db.write_url.as_str()),
        ],
    );
    let propose = |capability: &str, args: Value| {
        runtime().block_on(propose_over_mcp(
            &exec.config_path,
            &exec.socket_dir,
            &db.read_url,
            capability,
            args,
        ))
    };
    let waiver = |invoice: &str| {
        propose(
            "billing.propose_late_fee_waiver",
            json!({"invoice_id": invoice, "reason": "r"}),
        )
    };
    let run = |args: &[&str]| {
        let out = exec.cli(args);
        out.status.code()
    };

    // Four proposals on the same picture of INV-3001.
    let rejected = waiver("INV-3001");
    let conflict = waiver("INV-3001");
    let failed = waiver("INV-3001");
    let applied = waiver("INV-3001");
    assert_eq!(
        run(&["proposals", "reject", &rejected, "--reason", "no"]),
        Some(0)
    );

    // A write the database refuses is a failure.
    assert_eq!(run(&["proposals", "approve", &failed, "--yes"]), Some(0));
    execute(
        &db,
        "CREATE TRIGGER refuse_writes BEFORE UPDATE ON invoices BEGIN SELECT RAISE(ABORT, 'maintenance'); END",
    );
    let code = run(&["apply", &failed]);
    assert_ne!(code, Some(0));
    execute(&db, "DROP TRIGGER refuse_writes");

    // Both approved while the row is as proposed (an approval re-reads it),
    // then the row changes under the second by the first's apply.
    assert_eq!(run(&["proposals", "approve", &applied, "--yes"]), Some(0));
    assert_eq!(run(&["proposals", "approve", &conflict, "--yes"]), Some(0));
    assert_eq!(run(&["apply", &applied]), Some(0));
    assert_eq!(run(&["apply", &conflict]), Some(4));

    let other = propose(
        "support.propose_ticket_resolution",
        json!({"ticket_id": "T-1042", "resolution_note": "done"}),
    );

    let want = [
        (&rejected, "proposal.created"),
        (&conflict, "proposal.created"),
        (&failed, "proposal.created"),
        (&applied, "proposal.created"),
        (&rejected, "proposal.rejected"),
        (&failed, "proposal.approved"),
        (&failed, "proposal.failed"),
        (&applied, "proposal.approved"),
        (&conflict, "proposal.approved"),
        (&applied, "proposal.applied"),
        (&conflict, "proposal.conflict"),
        (&other, "proposal.created"),
    ];
    let lines = wait_for_lines(&exec, want.len(), Duration::from_secs(10));
    let got: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["data"]["proposal_id"].as_str().unwrap().to_owned(),
                l["data"]["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(id, e)| ((*id).clone(), (*e).to_owned()))
        .collect();
    assert_eq!(got, want, "in ledger order");
    let states: Vec<&str> = lines
        .iter()
        .map(|l| l["data"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states[6], "failed");
    assert_eq!(states[9], "applied");
    assert_eq!(states[10], "conflict");

    // The filtered sink: only creations of waivers.
    let waivers: Vec<Value> = std::fs::read_to_string(exec.path().join("waivers.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = waivers
        .iter()
        .map(|l| l["data"]["proposal_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&rejected, &conflict, &failed, &applied]);
    assert!(
        waivers
            .iter()
            .all(|l| l["type"] == "airlock.proposal.created")
    );
}

#[test]
fn an_expiry_notifies() {
    let mut config = config_with(json!([jsonl()]));
    config["airlock"] = json!({"proposal_ttl_seconds": 1});
    let exec = start(&config, &env("http://127.0.0.1:9/unused"));
    let (id, _, _) = propose(&exec, &config);
    let lines = wait_for_lines(&exec, 2, Duration::from_secs(10));
    let events: Vec<&str> = lines
        .iter()
        .map(|l| l["data"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["proposal.created", "proposal.expired"]);
    assert_eq!(lines[1]["data"]["proposal_id"], id.as_str());
    assert_eq!(lines[1]["data"]["state"], "expired");
}

#[test]
fn notifications_test_sends_a_signed_test_event() {
    let receiver = Receiver::start(ok());
    let mut chat = webhook("chat");
    chat["format"] = json!("slack");
    chat.as_object_mut().unwrap().remove("signing_secret_env");
    let config = config_with(json!([webhook("operations"), jsonl(), chat]));
    let exec = start(&config, &env(&receiver.url(&format!("/t/{URL_TOKEN}"))));

    let (code, out) = cli_json(&exec, &["notifications", "test"]);
    assert_eq!(code, Some(0), "{out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{out}");
    assert!(results.iter().all(|r| r["delivered"] == true), "{out}");
    assert_eq!(results[0]["status"], 204);
    let got = receiver.drain(Duration::from_secs(2));
    assert_eq!(got.len(), 2, "two webhooks");
    let signed = got
        .iter()
        .find(|r| r.header("content-type") == "application/cloudevents+json")
        .unwrap();
    assert_signed(signed);
    assert_eq!(signed.json()["type"], "airlock.notification.test");
    assert_eq!(signed.json()["id"], results[0]["notification_id"]);
    assert!(
        signed.json()["data"].get("proposal_id").is_none(),
        "no data"
    );
    let slack = got
        .iter()
        .find(|r| r.header("content-type") == "application/json")
        .unwrap();
    assert!(
        slack.json()["text"]
            .as_str()
            .unwrap()
            .contains("test notification")
    );
    assert_eq!(
        slack.header("x-airlock-signature"),
        "",
        "the slack sink has no key"
    );
    let lines = jsonl_lines(&exec);
    assert_eq!(lines[0]["type"], "airlock.notification.test");
    // Not a delivery: the status counts nothing.
    assert_eq!(sink_status(&exec, "operations")["delivered"], 0);

    // One sink by id; an unknown id is refused.
    let (code, out) = cli_json(&exec, &["notifications", "test", "--sink", "audit"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["results"].as_array().unwrap().len(), 1);
    let (code, out) = cli_json(&exec, &["notifications", "test", "--sink", "nope"]);
    assert_eq!(
        (code, out["error"]["code"].as_str()),
        (Some(1), Some("not_found")),
        "{out}"
    );

    // A failing receiver: exit 1, the reason, and no URL.
    receiver.set_answer(Answer::Status(500, "boom".into()));
    let out = exec.cli(&["notifications", "test", "--sink", "operations"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOT delivered — HTTP 500"), "{text}");
    assert!(!text.contains(URL_TOKEN), "{text}");
}

#[test]
fn private_link_local_and_metadata_destinations_are_refused() {
    let test = |url: &str, sink: Value| {
        let config = config_with(json!([sink]));
        let exec = start(&config, &env(url));
        let (code, out) = cli_json(&exec, &["notifications", "test"]);
        assert_eq!(code, Some(1), "{out}");
        out["results"][0]["detail"].as_str().unwrap().to_owned()
    };
    let mut quick = webhook("operations");
    quick["timeout_ms"] = json!(500);

    for (url, class) in [
        ("https://10.255.255.1/hook", "a private address"),
        ("https://192.168.255.254/hook", "a private address"),
        ("https://[fd00::1]/hook", "a private address"),
        ("https://169.254.10.10/hook", "a link-local address"),
        (
            "https://169.254.169.254/latest/meta-data",
            "a cloud metadata address",
        ),
        (
            "https://[::ffff:169.254.169.254]/",
            "a cloud metadata address",
        ),
        ("https://0.0.0.0/hook", "an unroutable address"),
    ] {
        let detail = test(url, quick.clone());
        assert!(
            detail.starts_with("refused:") && detail.contains(class),
            "{url}: {detail}"
        );
    }

    // Control: the same private address, allowed by name, is attempted —
    // so the refusal above is what stopped it.
    let mut allowed = quick.clone();
    allowed["allow_private_destinations"] = json!(true);
    allowed["private_host_allowlist"] = json!(["10.255.255.1"]);
    let detail = test("https://10.255.255.1/hook", allowed.clone());
    assert!(!detail.contains("refused"), "{detail}");
    assert!(
        detail.contains("no answer within 500 ms") || detail.contains("not delivered"),
        "{detail}"
    );
    // Metadata stays refused even when listed.
    allowed["private_host_allowlist"] = json!(["169.254.169.254"]);
    let detail = test("https://169.254.169.254/", allowed);
    assert!(detail.contains("a cloud metadata address"), "{detail}");
}

/// Run `airlock-executor serve` expecting it to refuse to start.
fn refused_start(config: &Value, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec(config).unwrap()).unwrap();
    let mut cmd = Command::new(bin("airlock-executor"));
    cmd.args(["serve", "--config"])
        .arg(&path)
        .arg("--socket-dir")
        .arg(dir.path().join("run"))
        .arg("--store")
        .arg(dir.path().join("ledger/ledger.db"))
        .env_remove("HOOK_URL")
        .env_remove("HOOK_SECRET")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!dir.path().join("run/operator.sock").exists());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_webhook_setting_stops_the_executor_at_start() {
    let config = config_with(json!([webhook("operations")]));
    let tenant = ("SYNAPSOR_TENANT_ID", "acme");
    let err = refused_start(&config, &[tenant, ("HOOK_SECRET", SECRET)]);
    assert!(
        err.contains("notification sink `operations`") && err.contains("HOOK_URL"),
        "{err}"
    );

    let public = format!("http://hooks.example.com/{URL_TOKEN}");
    let err = refused_start(
        &config,
        &[tenant, ("HOOK_URL", &public), ("HOOK_SECRET", SECRET)],
    );
    assert!(err.contains("plain http:// is only for this host"), "{err}");
    assert!(!err.contains(URL_TOKEN), "{err}");

    let err = refused_start(&config, &[tenant, ("HOOK_URL", "http://127.0.0.1:9/h")]);
    assert!(err.contains("HOOK_SECRET"), "{err}");
    assert!(!err.contains(SECRET));

    let err = refused_start(
        &config,
        &[
            tenant,
            ("HOOK_URL", "https://user:pw@hooks.example.com/"),
            ("HOOK_SECRET", SECRET),
        ],
    );
    assert!(err.contains("user name or password"), "{err}");
    assert!(!err.contains("pw@"), "{err}");
}

#[test]
fn a_webhook_key_in_the_proposers_environment_stops_the_proposer() {
    let config = config_with(json!([webhook("operations")]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let run = |with_key: bool| {
        let mut cmd = Command::new(bin("airlock-proposer"));
        cmd.args(["serve", "--config"])
            .arg(&path)
            .arg("--socket-dir")
            .arg(dir.path().join("run"))
            .env("SYNAPSOR_TENANT_ID", "acme")
            .env_remove("HOOK_URL")
            .env_remove("HOOK_SECRET")
            .stdin(Stdio::null());
        if with_key {
            cmd.env("HOOK_SECRET", SECRET);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = run(true);
    assert!(!ok);
    assert!(
        stderr.contains("HOOK_SECRET") && stderr.contains("write authority"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "the value is never printed");
    // Control: without it, the proposer gets past that check (and stops
    // later for want of a database and an executor).
    let (_, stderr) = run(false);
    assert!(!stderr.contains("HOOK_SECRET"), "{stderr}");
}
