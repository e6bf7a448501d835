//! The executor daemon as a real process: proposals in over the proposer
//! socket, decisions by the real `airlock` CLI, the ledger checked on disk.

use std::process::{Command, Output};
use std::time::Duration;

use airlock_ipc::Role;
use airlock_ipc::message::{ProposalRef, ProposalState, Request, Response};
use airlock_tests::airlock;
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::proposals::{honest_proposal, load, reference_value};
use serde_json::{Value, json};

const ENV: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "acme")];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Start an executor on the reference config and create one honest proposal.
fn executor_with_proposal(config: &Value) -> (ExecutorProcess, String) {
    let exec = ExecutorProcess::start(config, ENV);
    let cfg = load(config);
    let id = rt().block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        honest_proposal(&mut client, &cfg, "customer requested review")
            .await
            .proposal_id
    });
    (exec, id)
}

#[test]
fn proposal_lifecycle_through_the_real_cli() {
    let (exec, id) = executor_with_proposal(&reference_value());
    assert!(id.starts_with("wrp_"), "{id}");

    let out = exec.cli(&["proposals", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let list = json_out(&out);
    assert_eq!(list["proposals"][0]["proposal_id"], id.as_str());
    assert_eq!(list["proposals"][0]["state"], "pending_approval");

    let out = exec.cli(&["proposals", "show", "latest"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("late_fee_cents") && shown.contains("5500 → 0"),
        "{shown}"
    );
    assert!(
        shown.contains("updated_at must still be \"2026-06-20T14:31:08Z\""),
        "{shown}"
    );
    assert!(shown.contains("needs role: billing_lead"), "{shown}");

    let hash = json_out(&exec.cli(&["proposals", "show", "latest", "--json"]))["proposal"]
        ["proposal_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = exec.cli(&[
        "proposals",
        "approve",
        "latest",
        "--yes",
        "--hash",
        &hash[..19],
        "--note",
        "ok by ops",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let d = json_out(&out);
    assert_eq!(d["decision"]["state"], "approved");
    assert_eq!(
        d["decision"]["by"]["uid"], 0,
        "the approver is who the kernel says connected"
    );
    assert_eq!(d["decision"]["by"]["user"], "root");

    // Twice, or rejecting after approval: specific refusals, exit 1.
    let out = exec.cli(&["proposals", "approve", &id, "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_out(&out)["error"]["code"], "invalid_state");
    let out = exec.cli(&[
        "proposals",
        "reject",
        &id,
        "--reason",
        "changed my mind",
        "--json",
    ]);
    assert_eq!(json_out(&out)["error"]["code"], "invalid_state");

    // The proposer sees the state, never the decision's authority.
    let state = rt().block_on(async {
        let mut c = exec.client(Role::Proposer).await;
        match c
            .call(Request::ProposalStatus(ProposalRef {
                proposal_id: id.clone(),
            }))
            .await
            .unwrap()
        {
            Response::ProposalStatus(s) => s.state,
            other => panic!("{other:?}"),
        }
    });
    assert_eq!(state, ProposalState::Approved);

    let out = exec.cli(&["events", "tail", "--json"]);
    let kinds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["read_recorded", "proposal_recorded", "approved"]);

    let out = airlock(&[
        "ledger",
        "verify",
        "--store",
        exec.store.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json_out(&out)["events"], 3);
}

#[test]
fn a_rejected_proposal_cannot_be_approved() {
    let (exec, id) = executor_with_proposal(&reference_value());
    let out = exec.cli(&[
        "proposals",
        "reject",
        &id,
        "--reason",
        "not this month",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json_out(&out)["decision"]["state"], "rejected");
    let out = exec.cli(&["proposals", "approve", &id, "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = json_out(&out);
    assert_eq!(err["error"]["code"], "invalid_state");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rejected")
    );
    let out = exec.cli(&["proposals", "list", "--status", "rejected", "--json"]);
    assert_eq!(json_out(&out)["proposals"].as_array().unwrap().len(), 1);
}

#[test]
fn an_expired_proposal_cannot_be_approved() {
    let mut config = reference_value();
    config["airlock"] = json!({"proposal_ttl_seconds": 1});
    let (exec, id) = executor_with_proposal(&config);
    std::thread::sleep(Duration::from_millis(1300));
    let out = exec.cli(&["proposals", "approve", &id, "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "expired");
    let out = exec.cli(&["proposals", "list", "--status", "expired", "--json"]);
    assert_eq!(json_out(&out)["proposals"][0]["proposal_id"], id.as_str());
}

#[test]
fn approval_from_another_os_user_is_refused_by_uid() {
    // `nobody` can reach the operator socket (socket group) and is an
    // approver, but only for support: the billing proposal needs billing_lead.
    let mut config = reference_value();
    config["airlock"] = json!({
        "socket_group": "nogroup",
        "approvers": [{"uid": 0, "roles": "*"}, {"user": "nobody", "roles": ["support_lead"]}]
    });
    let (exec, id) = executor_with_proposal(&config);
    let out = exec.cli_as("nobody", &["proposals", "approve", &id, "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = json_out(&out);
    assert_eq!(err["error"]["code"], "role_required");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("billing_lead")
    );
    let out = exec.cli(&[
        "proposals",
        "list",
        "--status",
        "pending_approval",
        "--json",
    ]);
    assert_eq!(
        json_out(&out)["proposals"][0]["proposal_id"],
        id.as_str(),
        "still pending"
    );

    // A uid that is no approver at all is refused before a byte is read.
    let mut config = reference_value();
    config["airlock"] = json!({
        "socket_group": "nogroup",
        "approvers": [{"uid": 0, "roles": "*"}, {"user": "daemon", "roles": "*"}]
    });
    let (exec, id) = executor_with_proposal(&config);
    let out = exec.cli_as("nobody", &["proposals", "approve", &id, "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "unauthorized_peer");
    assert!(
        exec.log().contains("refused: peer not authorized"),
        "refusals are logged"
    );
    let out = exec.cli(&["proposals", "show", &id, "--json"]);
    assert_eq!(
        json_out(&out)["proposal"]["summary"]["state"],
        "pending_approval"
    );

    // Without a socket group, another user cannot even reach the socket.
    let (exec, _) = executor_with_proposal(&reference_value());
    let out = exec.cli_as("nobody", &["proposals", "list", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "executor_unreachable");
}

#[test]
fn ledger_verify_detects_a_changed_byte_in_the_file() {
    let (mut exec, _) = executor_with_proposal(&reference_value());
    assert!(exec.stop().success());
    let store = exec.store.to_str().unwrap().to_owned();
    let out = airlock(&["ledger", "verify", "--store", &store]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let mut bytes = std::fs::read(&exec.store).unwrap();
    let needle = b"customer requested review";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the reason is in the ledger file");
    bytes[at] = b'C';
    std::fs::write(&exec.store, &bytes).unwrap();

    let out = airlock(&["ledger", "verify", "--store", &store, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json_out(&out);
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["first_break"]["seq"], 2,
        "the proposal event is the first broken link: {report}"
    );
    let human = text(&airlock(&["ledger", "verify", "--store", &store]));
    assert!(
        human.contains("BROKEN") && human.contains("event 2"),
        "{human}"
    );
}

#[test]
fn one_executor_per_store_and_stale_sockets_are_reclaimed() {
    let (mut exec, id) = executor_with_proposal(&reference_value());
    // A second executor on the same store refuses to start.
    let out = Command::new(airlock_tests::bin("airlock-executor"))
        .args([
            "serve",
            "--config",
            exec.config_path.to_str().unwrap(),
            "--store",
            exec.store.to_str().unwrap(),
        ])
        .args([
            "--socket-dir",
            exec.path().join("other-run").to_str().unwrap(),
        ])
        .env("SYNAPSOR_TENANT_ID", "acme")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("already serving the ledger"),
        "{}",
        text(&out)
    );
    assert!(exec.is_alive());

    // kill -9 leaves stale sockets; a restart reclaims them and keeps the ledger.
    let _ = Command::new("kill")
        .args(["-KILL", &exec.pid().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!exec.is_alive());
    assert!(
        exec.proposer_socket().exists(),
        "the socket file outlives a killed executor"
    );
    exec.reap();
    exec.restart(ENV);
    assert!(exec.log().contains("removed a stale socket"));
    let out = exec.cli(&["proposals", "show", &id, "--json"]);
    assert_eq!(
        json_out(&out)["proposal"]["summary"]["state"],
        "pending_approval",
        "nothing lost"
    );

    // SIGTERM: clean exit, sockets removed, ledger verifies.
    assert!(exec.stop().success());
    assert!(!exec.proposer_socket().exists() && !exec.operator_socket().exists());
    let out = airlock(&["ledger", "verify", "--store", exec.store.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The CLI says how to start the executor when it is not running.
    let out = exec.cli(&["proposals", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("airlock-executor serve --config"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_executor_is_not_dumpable_so_a_same_uid_process_cannot_read_its_secrets() {
    // Both processes run as `nobody`: root could read anything anyway.
    let dir = tempfile::Builder::new()
        .prefix("airlock-dump-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, serde_json::to_vec(&reference_value()).unwrap()).unwrap();
    let _ = Command::new("chown")
        .args(["-R", "nobody:nogroup", dir.path().to_str().unwrap()])
        .status();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(airlock_tests::bin("airlock-executor"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--socket-dir",
            dir.path().join("run").to_str().unwrap(),
        ])
        .env("SYNAPSOR_TENANT_ID", "acme")
        .env(
            "REFERENCE_POSTGRES_WRITE_URL",
            "postgres://writer:s3cret-planted@127.0.0.1/x",
        )
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !dir.path().join("run/operator.sock").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "executor (as nobody) did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let environ = format!("/proc/{}/environ", child.id());
    let peek = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            "cat",
            &environ,
        ])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !peek.status.success(),
        "a same-uid process read the executor's environment"
    );
    assert!(!String::from_utf8_lossy(&peek.stdout).contains("s3cret-planted"));
    assert!(
        String::from_utf8_lossy(&peek.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&peek.stderr)
    );
}

#[test]
fn events_tail_follow_prints_new_events_as_they_happen() {
    use std::io::{BufRead, BufReader};
    let exec = ExecutorProcess::start(&reference_value(), ENV);
    let mut follower = Command::new(airlock_tests::bin("airlock"))
        .args(["events", "tail", "--follow", "--json", "--socket-dir"])
        .arg(&exec.socket_dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cfg = load(&reference_value());
    rt().block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        honest_proposal(&mut client, &cfg, "follow me").await;
    });
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("followed events arrive");
        kinds.push(
            serde_json::from_str::<Value>(&line).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(kinds, ["read_recorded", "proposal_recorded"]);
}

/// Approve `latest` without a prompt and check what happened to P1 and P2.
fn states(exec: &ExecutorProcess) -> Vec<(String, String)> {
    let list = json_out(&exec.cli(&["proposals", "list", "--json"]));
    list["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["proposal_id"].as_str().unwrap().to_owned(),
                p["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn approve_latest_without_a_prompt_needs_the_hash_of_the_reviewed_proposal() {
    let exec = ExecutorProcess::start(&reference_value(), ENV);
    let cfg = load(&reference_value());
    let p = rt().block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        honest_proposal(&mut client, &cfg, "customer requested review").await
    });
    let pending = || states(&exec).iter().all(|(_, s)| s == "pending_approval");

    // `latest --yes` alone: refused before anything is sent, naming --hash.
    let out = exec.cli(&["proposals", "approve", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--hash sha256:"), "{}", text(&out));
    // A non-interactive stdin (no prompt) is the same as --yes.
    let out = exec.cli(&["proposals", "approve", "latest", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "hash_required");
    assert!(pending(), "nothing was approved");

    // A malformed or too-short prefix is a usage error.
    for bad in ["sha256:abc", &p.proposal_hash[7..], "sha256:zzzzzzzzzzzzzz"] {
        let out = exec.cli(&["proposals", "approve", "latest", "--yes", "--hash", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(
            text(&out).contains("at least") || text(&out).contains("12 to 64"),
            "{}",
            text(&out)
        );
    }
    // A well-formed but wrong hash: refused, nothing approved.
    let wrong = format!("sha256:{}", "0".repeat(16));
    assert!(!p.proposal_hash.starts_with(&wrong));
    let out = exec.cli(&[
        "proposals",
        "approve",
        "latest",
        "--yes",
        "--hash",
        &wrong,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "hash_mismatch");
    assert!(pending(), "nothing was approved");
    // Also with an explicit id.
    let out = exec.cli(&[
        "proposals",
        "approve",
        &p.proposal_id,
        "--yes",
        "--hash",
        &wrong,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("does not start with"), "{}", text(&out));
    assert!(pending(), "nothing was approved");

    // The right prefix (12 hex digits, upper case accepted): approved.
    let right = format!("sha256:{}", p.proposal_hash[7..19].to_ascii_uppercase());
    let out = exec.cli(&[
        "proposals",
        "approve",
        "latest",
        "--yes",
        "--hash",
        &right,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        json_out(&out)["decision"]["proposal_id"],
        p.proposal_id.as_str()
    );
    assert_eq!(
        states(&exec),
        [(p.proposal_id.clone(), "approved".to_owned())]
    );
}

#[test]
fn approve_latest_with_the_hash_of_an_older_proposal_never_approves_the_newer_one() {
    let exec = ExecutorProcess::start(&reference_value(), ENV);
    let cfg = load(&reference_value());
    // The person reviews P1 and notes its hash; P2 arrives before they approve.
    let (p1, p2) = rt().block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let p1 = honest_proposal(&mut client, &cfg, "first, reviewed").await;
        let p2 = honest_proposal(&mut client, &cfg, "second, never reviewed").await;
        (p1, p2)
    });
    assert_ne!(p1.proposal_hash, p2.proposal_hash);
    // The race is real: `latest` now names P2, which is what an unguarded
    // `approve latest --yes` would have approved.
    let shown = json_out(&exec.cli(&["proposals", "show", "latest", "--json"]));
    assert_eq!(
        shown["proposal"]["summary"]["proposal_id"],
        p2.proposal_id.as_str()
    );

    let out = exec.cli(&[
        "proposals",
        "approve",
        "latest",
        "--yes",
        "--hash",
        &p1.proposal_hash[..23],
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&p2.proposal_id) && said.contains("does not start with"),
        "{said}"
    );
    let states = states(&exec);
    assert!(
        states.iter().all(|(_, s)| s == "pending_approval"),
        "neither proposal was approved: {states:?}"
    );
    let events = exec.cli(&["events", "tail", "--json"]);
    assert!(!String::from_utf8_lossy(&events.stdout).contains("\"approved\""));
}

#[test]
fn control_and_bidi_characters_are_escaped_in_human_output_and_exact_in_json() {
    use airlock_tests::proposals::{WAIVER, change_set, invoice_row, read_of, record, submit};
    let exec = ExecutorProcess::start(&reference_value(), ENV);
    let cfg = load(&reference_value());
    // What the database held (the before-image), what the agent wrote (the
    // reason) and the principal: a screen clear, a right-to-left override,
    // an isolate, a newline forging a line, a carriage return, DEL, C1 CSI.
    let stored = "\u{1b}[2J\u{1b}]0;pwned\u{7}old\rnote\u{7f}\u{9b}31m";
    let reason = "fine\u{202e}gnp.exe\u{2066}\n  Decision:   approved by root (uid 0)\u{2028}";
    let principal = "agent\u{202e}71\u{200f}";
    let raw = [
        "\u{1b}", "\u{202e}", "\u{2066}", "\u{2028}", "\u{200f}", "\r", "\u{7f}", "\u{9b}", "\u{7}",
    ];
    let id = rt().block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let mut row = invoice_row("INV-3001", "acme");
        row.insert("waiver_reason".into(), Value::from(stored));
        let args = json!({"invoice_id": "INV-3001", "reason": reason});
        let ev = record(
            &mut client,
            read_of(&cfg, WAIVER, args.clone(), &row, "acme"),
        )
        .await
        .expect("record read");
        let mut cs = change_set(&cfg, WAIVER, args, "acme", &row);
        cs.principal = principal.into();
        submit(&mut client, cs, Some(ev.evidence_id))
            .await
            .expect("submit proposal")
            .proposal_id
    });

    // JSON stays exact: the hostile bytes really reach the CLI.
    let shown = json_out(&exec.cli(&["proposals", "show", &id, "--json"]));
    let cs = &shown["proposal"]["change_set"];
    assert_eq!(cs["before"]["waiver_reason"], stored);
    assert_eq!(cs["patch"]["waiver_reason"], reason);
    assert_eq!(shown["proposal"]["principal"], principal);

    let check = |what: &str, out: &Output| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        for r in raw {
            assert!(
                !stdout.contains(r),
                "{what}: raw {r:?} on stdout:\n{stdout:?}"
            );
        }
        assert!(
            !stdout.contains("\n  Decision:   approved"),
            "{what}: a forged line:\n{stdout}"
        );
        stdout.into_owned()
    };
    let out = exec.cli(&["proposals", "show", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let human = check("show", &out);
    for visible in [
        "\\u{1b}[2J",
        "\\u{202e}gnp.exe\\u{2066}\\n  Decision:",
        "\\r",
        "\\u{7f}\\u{9b}31m",
        "agent\\u{202e}71\\u{200f}",
    ] {
        assert!(human.contains(visible), "show lacks {visible}:\n{human}");
    }
    check("list", &exec.cli(&["proposals", "list"]));
    check("replay", &exec.cli(&["replay", "show", &id, "--details"]));
    check("events", &exec.cli(&["events", "tail"]));
    // The approve prompt shows the same diff, escaped.
    let out = exec.cli(&["proposals", "approve", &id, "--yes", "--note", "checked"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let approve = check("approve", &out);
    assert!(approve.contains("agent\\u{202e}71\\u{200f}"), "{approve}");
    assert!(approve.contains("\\u{1b}[2J"), "{approve}");
}
