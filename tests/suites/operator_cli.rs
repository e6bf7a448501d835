//! Operator commands end to end, with the real binaries: a kept demo
//! directory reused through its config, `airlock evidence show` on evidence a
//! real read recorded, and `airlock smoke call` through a real proposer.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlock_tests::databases::{postgres_reference, reference_config_for};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::{bin, stdout_json};
use serde_json::Value;

fn text(out: &Output) -> String {
    format!(
        "--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run one command line the demo printed, exactly as printed, through a
/// shell started in `/` (not the demo's directory) with a bare environment.
fn run_printed(line: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(line)
        .current_dir("/")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .expect("run bash")
}

/// The printed line that contains `needle` (leading spaces removed).
fn printed<'a>(stdout: &'a str, needle: &str) -> &'a str {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("the demo printed no line with {needle:?}:\n{stdout}"))
}

/// The evidence id of a result envelope (`evidence.bundle_id`).
fn envelope_evidence(envelope: &Value) -> String {
    envelope["evidence"]["bundle_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no evidence id in {envelope}"))
        .to_owned()
}

/// Stops the restarted executor (the process group of the shell that
/// started it) however the test ends.
struct Killer(std::process::Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn a_kept_demo_directory_works_through_its_config_after_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("kept demo");
    // No --yes, stdin not a terminal: the demo approves and says so.
    let out = Command::new(bin("airlock"))
        .args(["demo", "--keep"])
        .arg(&keep)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("stdin is not a terminal, so the demo approved automatically"),
        "{stdout}"
    );
    assert!(stdout.contains("applied: late fee now 0"), "{stdout}");

    // The kept config names the ledger and the sockets by absolute path inside DIR.
    let config: Value =
        serde_json::from_slice(&std::fs::read(keep.join("airlock.json")).unwrap()).unwrap();
    assert_eq!(
        config["storage"]["sqlite_path"],
        keep.join("ledger.db").to_str().unwrap()
    );
    assert_eq!(
        config["airlock"]["socket_dir"],
        keep.join("run").to_str().unwrap()
    );
    assert!(
        !keep.join("run/operator.sock").exists(),
        "the demo stopped its executor"
    );

    // The printed restart command, run as printed, serves the kept ledger.
    let restart = printed(&stdout, " serve --config ");
    assert!(restart.contains("DEMO_WRITE_URL="), "{restart}");
    let log = tmp.path().join("executor.log");
    let child = Command::new("bash")
        .arg("-c")
        .arg(restart)
        .current_dir("/")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _executor = Killer(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !keep.join("run/operator.sock").exists() {
        assert!(
            Instant::now() < deadline,
            "the restarted executor made no socket:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // `proposals list`, as printed: both demo proposals, from the kept ledger.
    let replay_line = printed(&stdout, " replay show wrp_");
    let proposal = replay_line
        .split_whitespace()
        .find(|w| w.starts_with("wrp_"))
        .unwrap()
        .to_owned();
    let out = run_printed(printed(&stdout, " proposals list --config "));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains(&proposal), "{list}");
    assert!(
        list.contains("applied") && list.contains("conflict"),
        "{list}"
    );

    // `replay show`, as printed: the demo's applied proposal.
    let out = run_printed(replay_line);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let replay = String::from_utf8_lossy(&out.stdout);
    assert!(
        replay.contains(&format!("Replay of {proposal} [applied]")),
        "{replay}"
    );
    assert!(replay.contains("Source database changed: yes"), "{replay}");

    // `evidence show`, as printed: the read the proposal cites.
    let out = run_printed(printed(&stdout, " evidence show ev_"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let evidence = String::from_utf8_lossy(&out.stdout);
    assert!(evidence.contains("Cited by (1):"), "{evidence}");
    assert!(evidence.contains(&proposal), "{evidence}");
    assert!(evidence.contains("id=\"INV-3001\""), "{evidence}");

    // `smoke call`, as printed: a read through a real proposer on the kept setup.
    let out = run_printed(printed(&stdout, " smoke call "));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let envelope = stdout_json(&out);
    assert_eq!(envelope["ok"], true, "{envelope}");
    assert_eq!(envelope["data"]["id"], "INV-3002", "{envelope}");
}

#[test]
fn demo_keep_refuses_a_directory_that_is_not_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "my own file").unwrap();
    let out = Command::new(bin("airlock"))
        .args(["demo", "--yes", "--keep"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    // Nothing was added, nothing was changed.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["notes.txt"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "my own file"
    );

    // A file where the directory should be is refused too.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = Command::new(bin("airlock"))
        .args(["demo", "--yes", "--keep"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a directory"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

/// `airlock smoke call` against `exec`, as an operator whose shell holds the
/// read URL, the trusted context — and the write URL, which must not reach
/// the proposer (it refuses to start when it sees one).
fn smoke(exec: &ExecutorProcess, db_read: &str, db_write: &str, tool: &str, args: &str) -> Output {
    Command::new(bin("airlock"))
        .args(["smoke", "call", tool, "--args", args, "--config"])
        .arg(&exec.config_path)
        .arg("--socket-dir")
        .arg(&exec.socket_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_READ_URL", db_read)
        .env("APP_WRITE_URL", db_write)
        .env("APP_TENANT_ID", "acme")
        .env("APP_PRINCIPAL", "agent_17")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn evidence_show(exec: &ExecutorProcess, id: &str, json: bool) -> Output {
    let mut args = vec!["evidence", "show", id];
    if json {
        args.push("--json");
    }
    exec.cli(&args)
}

#[test]
fn smoke_call_and_evidence_show_on_a_real_read() {
    let db = postgres_reference("airlock_h4_operator_cli");
    let exec = ExecutorProcess::start(
        &reference_config_for(&db),
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    );
    let (read, write) = (db.read_url.as_str(), db.write_url.as_str());

    // A read, by the dotted name: the envelope the model sees, ok.
    let out = smoke(
        &exec,
        read,
        write,
        "billing.inspect_invoice",
        r#"{"invoice_id": "INV-3001"}"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not passed to the proposer") && stderr.contains("APP_WRITE_URL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(write),
        "the write URL's value is never shown"
    );
    let envelope = stdout_json(&out);
    assert_eq!(envelope["ok"], true, "{envelope}");
    assert_eq!(envelope["data"]["id"], "INV-3001", "{envelope}");
    assert_eq!(envelope["data"]["tenant_id"], "acme", "{envelope}");
    let read_evidence = envelope_evidence(&envelope);

    // The same capability by its client-safe alias.
    let out = smoke(
        &exec,
        read,
        write,
        "billing__inspect_invoice",
        r#"{"invoice_id": "INV-3002"}"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout_json(&out)["data"]["id"], "INV-3002");

    // A bad argument: non-zero, and the error envelope on stdout.
    let out = smoke(
        &exec,
        read,
        write,
        "billing.inspect_invoice",
        r#"{"invoice_id": 42}"#,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let envelope = stdout_json(&out);
    assert_eq!(envelope["ok"], false, "{envelope}");
    assert!(envelope["error"]["code"].is_string(), "{envelope}");
    assert!(envelope["data"].is_null(), "{envelope}");
    // Another tenant's row: the same kind of refusal, nothing read.
    let out = smoke(
        &exec,
        read,
        write,
        "billing.inspect_invoice",
        r#"{"invoice_id": "INV-9001"}"#,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(stdout_json(&out)["ok"], false);

    // Usage errors: a tool the proposer does not offer, arguments that are not an object.
    let out = smoke(&exec, read, write, "billing.drop_table", "{}");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("offers no tool `billing.drop_table`"),
        "{}",
        text(&out)
    );
    let out = smoke(&exec, read, write, "billing.inspect_invoice", "[1]");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // A proposer that cannot start (no read URL): a clear failure, not a hang.
    let out = Command::new(bin("airlock"))
        .args(["smoke", "call", "billing.inspect_invoice", "--config"])
        .arg(&exec.config_path)
        .arg("--socket-dir")
        .arg(&exec.socket_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_TENANT_ID", "acme")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("APP_READ_URL"), "{stderr}");
    assert!(stderr.contains("did not start an MCP session"), "{stderr}");

    // evidence show on the read: what the executor recorded, cited by nothing yet.
    let out = evidence_show(&exec, &read_evidence, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = stdout_json(&out);
    assert_eq!(shown["ok"], true);
    let ev = &shown["evidence"];
    assert_eq!(ev["evidence_id"], read_evidence.as_str());
    assert_eq!(ev["capability"], "billing.inspect_invoice");
    assert_eq!(ev["tenant_id"], "acme");
    assert_eq!(ev["principal"], "agent_17");
    assert_eq!(ev["rows"].as_array().unwrap().len(), 1, "{ev}");
    assert_eq!(ev["rows"][0]["id"], "INV-3001");
    assert_eq!(ev["rows"][0]["late_fee_cents"], 5500);
    assert_eq!(shown["cited_by"], serde_json::json!([]));

    // A proposal: its evidence is cited by it.
    let out = smoke(
        &exec,
        read,
        write,
        "billing.propose_late_fee_waiver",
        r#"{"invoice_id": "INV-3001", "reason": "first late fee"}"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let proposal = stdout_json(&out)["proposal"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = exec.cli(&["proposals", "show", &proposal, "--json"]);
    let cited = stdout_json(&out)["proposal"]["evidence"]["evidence_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the proposal cites evidence: {}", text(&out)))
        .to_owned();
    let out = evidence_show(&exec, &cited, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = stdout_json(&out);
    let cited_by = shown["cited_by"].as_array().unwrap();
    assert_eq!(cited_by.len(), 1, "{shown}");
    assert_eq!(cited_by[0]["proposal_id"], proposal.as_str());
    assert_eq!(cited_by[0]["state"], "pending_approval");

    // The human form says the same.
    let out = evidence_show(&exec, &cited, false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout);
    for needle in [
        format!("Evidence {cited}  billing.propose_late_fee_waiver"),
        "tenant:     acme".to_owned(),
        "principal:  agent_17".to_owned(),
        "arg:invoice_id".to_owned(),
        "id=\"INV-3001\"".to_owned(),
        "Cited by (1):".to_owned(),
        format!("{proposal}  [pending_approval]"),
    ] {
        assert!(human.contains(&needle), "missing {needle:?}:\n{human}");
    }

    // An unknown id: a clear error and a non-zero exit, in both forms.
    let out = evidence_show(&exec, "ev_does_not_exist", false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no evidence `ev_does_not_exist`"),
        "{}",
        text(&out)
    );
    let out = evidence_show(&exec, "ev_does_not_exist", true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = stdout_json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "not_found");
}

#[test]
fn evidence_show_without_an_executor_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(bin("airlock"))
        .args(["evidence", "show", "ev_x", "--socket-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("executor is not running"),
        "{}",
        text(&out)
    );
}
