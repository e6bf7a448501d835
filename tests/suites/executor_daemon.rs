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

    let out = exec.cli(&[
        "proposals",
        "approve",
        "latest",
        "--yes",
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
