//! Issue 15, item 4 — the ledger's lifecycle, through the real processes:
//! the real executor, the real `airlock` CLI, the ledger file on disk.
//!
//! * `ledger stats` reports states, size, the oldest pending proposal and
//!   events per day; `ledger backup` copies a running ledger, refuses to
//!   overwrite, and an executor started on the copy verifies and serves.
//! * `ledger prune` moves finished proposals into an archive: both files
//!   verify, the ledger records the anchor, pending proposals stay, and a
//!   prune that fails (an error, or a kill) leaves the ledger as it was.
//! * Only the executor's own user or a named `ledger_admin` may prune.
//! * The expiry sweep records `expired` events.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use airlock_ipc::Role;
use airlock_ipc::message::{PruneLedger, Request};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::proposals::{honest_proposal, load, reference_value, refusal};
use airlock_tests::{airlock, block_on, stdout_json};
use serde_json::{Value, json};

const ENV: &[(&str, &str)] = &[("SYNAPSOR_TENANT_ID", "acme")];

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run the CLI against `exec` with `--json`: (exit code, stdout as JSON).
fn cli(exec: &ExecutorProcess, args: &[&str]) -> (Option<i32>, Value) {
    let mut args = args.to_vec();
    args.push("--json");
    let out = exec.cli(&args);
    (out.status.code(), stdout_json(&out))
}

/// `airlock ledger …` on a file (no socket involved): (exit code, JSON).
fn ledger(args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["ledger"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = airlock(&all);
    (out.status.code(), stdout_json(&out))
}

fn propose(exec: &ExecutorProcess, config: &Value, n: usize) -> Vec<String> {
    let cfg = load(config);
    block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(
                honest_proposal(&mut client, &cfg, &format!("reason {i}"))
                    .await
                    .proposal_id,
            );
        }
        ids
    })
}

fn reject(exec: &ExecutorProcess, id: &str) {
    let (code, out) = cli(exec, &["proposals", "reject", id, "--reason", "not needed"]);
    assert_eq!(code, Some(0), "{out}");
}

fn tomorrow() -> String {
    let today = sqlx::types::chrono::Utc::now().date_naive();
    today.succ_opt().expect("a next day").to_string()
}

fn store(exec: &ExecutorProcess) -> String {
    exec.store.to_str().unwrap().to_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn partial_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect()
}

#[test]
fn stats_and_a_backup_taken_while_the_executor_runs_restore_and_serve() {
    let config = reference_value();
    let exec = ExecutorProcess::start(&config, ENV);
    let ids = propose(&exec, &config, 3);
    reject(&exec, &ids[0]);
    let s = store(&exec);

    let (code, stats) = ledger(&["stats", "--store", &s]);
    assert_eq!(code, Some(0), "{stats}");
    assert_eq!(stats["proposals"]["pending_approval"], 2, "{stats}");
    assert_eq!(stats["proposals"]["rejected"], 1);
    assert_eq!(stats["proposals"]["applied"], 0, "every state is listed");
    assert_eq!(stats["events"], 7);
    assert_eq!(stats["oldest_pending"]["proposal_id"], ids[1].as_str());
    assert!(stats["oldest_pending"]["age_seconds"].as_i64().unwrap() < 600);
    let days = stats["events_per_day"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(days[6]["events"], 7, "today's events: {stats}");
    assert!(stats["file_bytes"].as_u64().unwrap() > 0);
    let human = airlock(&["ledger", "stats", "--store", &s]);
    assert!(
        text(&human).contains("oldest pending: wrp_"),
        "{}",
        text(&human)
    );

    // Online backup: the executor keeps running and serving.
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("ledger.bak");
    let b = backup.to_str().unwrap();
    let started = Instant::now();
    let (code, out) = ledger(&["backup", "--store", &s, "--to", b]);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["events"], 7);
    eprintln!("backup of 7 events: {took:?}");
    assert_eq!(mode(&backup), 0o600, "the copy is private");
    assert!(partial_files(dir.path()).is_empty());
    let (code, v) = ledger(&["verify", "--store", b]);
    assert_eq!((code, &v["ok"]), (Some(0), &json!(true)), "{v}");
    // Never over an existing file.
    let before = std::fs::read(&backup).unwrap();
    let (code, out) = ledger(&["backup", "--store", &s, "--to", b]);
    assert_eq!(
        (code, &out["error"]["code"]),
        (Some(1), &json!("exists")),
        "{out}"
    );
    assert_eq!(std::fs::read(&backup).unwrap(), before, "left untouched");
    // The live executor still serves.
    let (code, _) = cli(&exec, &["proposals", "list"]);
    assert_eq!(code, Some(0));

    // Restore: a new executor on the copy verifies and serves.
    let restored = ExecutorProcess::start_with_setup(&config, ENV, |d| {
        let ledger_dir = d.join("ledger");
        std::fs::create_dir_all(&ledger_dir).unwrap();
        std::fs::set_permissions(&ledger_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::copy(&backup, ledger_dir.join("ledger.db")).unwrap();
    });
    let (code, list) = cli(&restored, &["proposals", "list"]);
    assert_eq!(code, Some(0), "{list}");
    let listed: Vec<&str> = list["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["proposal_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    reject(&restored, &ids[1]);
    let (code, v) = ledger(&["verify", "--store", &store(&restored)]);
    assert_eq!((code, &v["events"]), (Some(0), &json!(8)), "{v}");
}

#[test]
fn a_prune_archives_finished_proposals_and_both_files_verify() {
    let config = reference_value();
    let mut exec = ExecutorProcess::start(&config, ENV);
    let done = propose(&exec, &config, 2);
    reject(&exec, &done[0]);
    reject(&exec, &done[1]);
    let pending = propose(&exec, &config, 1).remove(0);
    let s = store(&exec);
    let archive = exec.path().join("archive-2025.db");
    let a = archive.to_str().unwrap().to_owned();
    let before = tomorrow();

    let started = Instant::now();
    let (code, out) = cli(
        &exec,
        &["ledger", "prune", "--before", &before, "--archive", &a],
    );
    eprintln!("prune of 6 events: {:?}", started.elapsed());
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        (
            &out["events"],
            &out["proposals"],
            &out["evidence"],
            &out["first_seq"],
            &out["through_seq"]
        ),
        (&json!(6), &json!(2), &json!(2), &json!(1), &json!(6)),
        "{out}"
    );
    assert_eq!(out["held_by"]["reason"], "unfinished");
    assert_eq!(
        out["held_by"]["proposal_id"],
        pending.as_str(),
        "pending stays"
    );
    assert_eq!(out["prune_event"]["kind"], "ledger_pruned");
    assert_eq!(out["prune_event"]["seq"], 9);
    assert_eq!(mode(&archive), 0o600);

    // Both files verify, and they link up: the archive ends at the anchor
    // the ledger continues from, and names the ledger's prune event.
    let (code, v) = ledger(&["verify", "--store", &s]);
    assert_eq!(
        (code, &v["start_seq"], &v["events"]),
        (Some(0), &json!(6), &json!(3)),
        "{v}"
    );
    let (code, v) = ledger(&["verify", "--store", &a]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["head"], out["through_hash"]);
    assert_eq!(v["archive_of"]["prune_seq"], 9);
    let (code, v) = ledger(&["verify", "--store", &s, "--archive", &a]);
    assert_eq!((code, &v["linked"]), (Some(0), &json!(true)), "{v}");

    // The moved proposals are gone from the ledger, the pending one serves:
    // its first event follows the cut, and approving re-verifies its segment.
    let (_, list) = cli(&exec, &["proposals", "list"]);
    assert_eq!(list["proposals"].as_array().unwrap().len(), 1, "{list}");
    let (code, out) = cli(&exec, &["proposals", "show", &done[0]]);
    assert_eq!(
        (code, &out["error"]["code"]),
        (Some(1), &json!("not_found"))
    );
    let (code, out) = cli(&exec, &["proposals", "approve", &pending, "--yes"]);
    assert_eq!(code, Some(0), "{out}");

    // `events tail` shows the ledger from the cut on, the prune included.
    let out = exec.cli(&["events", "tail", "--json"]);
    let seqs: Vec<(u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(seqs.first().map(|s| s.0), Some(7), "{seqs:?}");
    assert!(seqs.contains(&(9, "ledger_pruned".to_owned())), "{seqs:?}");

    // Nothing more can move: no file, the ledger unchanged.
    let second = exec.path().join("archive-2.db");
    let (code, out) = cli(
        &exec,
        &[
            "ledger",
            "prune",
            "--before",
            &before,
            "--archive",
            second.to_str().unwrap(),
        ],
    );
    assert_eq!((code, &out["archive"]), (Some(0), &Value::Null), "{out}");
    assert!(!second.exists());
    // An existing archive is never overwritten.
    let kept = std::fs::read(&archive).unwrap();
    let (code, out) = cli(
        &exec,
        &["ledger", "prune", "--before", &before, "--archive", &a],
    );
    assert_eq!(
        (code, &out["error"]["code"]),
        (Some(1), &json!("exists")),
        "{out}"
    );
    assert_eq!(std::fs::read(&archive).unwrap(), kept);
    // Bad input: a clear error, nothing written.
    let out = exec.cli(&[
        "ledger",
        "prune",
        "--before",
        "last tuesday",
        "--archive",
        "/tmp/x.db",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let (code, out) = cli(
        &exec,
        &[
            "ledger",
            "prune",
            "--before",
            &before,
            "--archive",
            &format!("{s}-journal"),
        ],
    );
    assert_eq!(
        (code, &out["error"]["code"]),
        (Some(1), &json!("invalid_request")),
        "{out}"
    );

    // A restart serves the pruned ledger.
    assert!(exec.stop().success());
    exec.restart(ENV);
    let (code, v) = ledger(&["verify", "--store", &s]);
    assert_eq!(code, Some(0), "{v}");
    let (code, _) = cli(&exec, &["proposals", "show", &pending]);
    assert_eq!(code, Some(0));
}

#[test]
fn a_prune_that_fails_leaves_the_ledger_as_it_was() {
    let config = reference_value();
    let mut exec = ExecutorProcess::start(
        &config,
        &[
            ("SYNAPSOR_TENANT_ID", "acme"),
            ("AIRLOCK_FAULT", "prune_fail_before_commit"),
        ],
    );
    let ids = propose(&exec, &config, 2);
    reject(&exec, &ids[0]);
    reject(&exec, &ids[1]);
    let s = store(&exec);
    let (_, before) = ledger(&["verify", "--store", &s]);
    let archive = exec.path().join("archive.db");
    let a = archive.to_str().unwrap().to_owned();
    let date = tomorrow();

    // An error after the archive was written and before the ledger committed.
    let (code, out) = cli(
        &exec,
        &["ledger", "prune", "--before", &date, "--archive", &a],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(!archive.exists(), "the archive is removed again");
    assert!(partial_files(exec.path()).is_empty());
    let (code, after) = ledger(&["verify", "--store", &s]);
    assert_eq!(code, Some(0), "{after}");
    assert_eq!(
        (&after["events"], &after["head"]),
        (&before["events"], &before["head"])
    );
    assert_eq!(after["start_seq"], 0);

    // Killed between the archive and the ledger's commit: the ledger is as
    // it was and verifies; the complete archive is there, but verify says
    // the ledger never recorded its prune.
    assert!(exec.stop().success());
    exec.restart(&[
        ("SYNAPSOR_TENANT_ID", "acme"),
        ("AIRLOCK_FAULT", "prune_archive_written"),
    ]);
    let (code, _) = cli(
        &exec,
        &["ledger", "prune", "--before", &date, "--archive", &a],
    );
    assert_eq!(code, Some(1));
    exec.reap();
    exec.restart(ENV);
    let (code, after) = ledger(&["verify", "--store", &s]);
    assert_eq!(code, Some(0), "{after}");
    assert_eq!(
        (&after["events"], &after["head"]),
        (&before["events"], &before["head"])
    );
    let (code, v) = ledger(&["verify", "--store", &s, "--archive", &a]);
    assert_eq!((code, &v["linked"]), (Some(1), &json!(false)), "{v}");
    assert!(
        v["link"].as_str().unwrap().contains("never recorded"),
        "{v}"
    );
    // The operator removes it and prunes again.
    std::fs::remove_file(&archive).unwrap();
    let (code, out) = cli(
        &exec,
        &["ledger", "prune", "--before", &date, "--archive", &a],
    );
    assert_eq!((code, &out["events"]), (Some(0), &json!(6)), "{out}");
    let (code, v) = ledger(&["verify", "--store", &s, "--archive", &a]);
    assert_eq!((code, &v["linked"]), (Some(0), &json!(true)), "{v}");
}

#[test]
fn only_the_executors_user_or_a_named_ledger_admin_may_prune() {
    let prune_as_nobody = |roles: Value| {
        let mut config = reference_value();
        config["airlock"] = json!({
            "socket_group": "nogroup",
            "approvers": [{"uid": 0, "roles": "*"}, {"user": "nobody", "roles": roles}]
        });
        let exec = ExecutorProcess::start(&config, ENV);
        let ids = propose(&exec, &config, 1);
        reject(&exec, &ids[0]);
        let archive = exec.path().join("archive.db");
        let out = exec.cli_as(
            "nobody",
            &[
                "ledger",
                "prune",
                "--before",
                &tomorrow(),
                "--archive",
                archive.to_str().unwrap(),
                "--json",
            ],
        );
        let (_, v) = ledger(&["verify", "--store", &store(&exec)]);
        (out, archive.exists(), v)
    };
    // An approver of everything ("*") is still no ledger admin.
    let (out, archived, v) = prune_as_nobody(json!("*"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(stdout_json(&out)["error"]["code"], "role_required");
    assert!(!archived);
    assert_eq!(
        (&v["events"], &v["start_seq"]),
        (&json!(3), &json!(0)),
        "nothing moved"
    );
    // Without that refusal the same request prunes: a named ledger_admin.
    let (out, archived, v) = prune_as_nobody(json!(["ledger_admin"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(archived);
    assert_eq!((&v["events"], &v["start_seq"]), (&json!(1), &json!(3)));

    // The proposer socket cannot even ask.
    let exec = ExecutorProcess::start(&reference_value(), ENV);
    let refused = block_on(async {
        let mut client = exec.client(Role::Proposer).await;
        refusal(
            client
                .call(Request::PruneLedger(PruneLedger {
                    before: "2999-01-01T00:00:00Z".into(),
                    archive: exec.path().join("a.db").to_str().unwrap().into(),
                }))
                .await,
        )
    });
    assert_eq!(refused, "forbidden");
    assert!(!exec.path().join("a.db").exists());
}

#[test]
fn the_expiry_sweep_records_expired_events_once() {
    let mut config = reference_value();
    config["airlock"] = json!({"proposal_ttl_seconds": 1});
    let mut exec = ExecutorProcess::start(&config, ENV);
    let id = propose(&exec, &config, 1).remove(0);
    let expired_events = |exec: &ExecutorProcess| -> usize {
        let out = exec.cli(&["events", "tail", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "expired" && e["proposal_id"] == id.as_str())
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while expired_events(&exec) == 0 {
        assert!(
            Instant::now() < deadline,
            "no `expired` event:\n{}",
            exec.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, list) = cli(&exec, &["proposals", "list", "--status", "expired"]);
    assert_eq!(list["proposals"][0]["proposal_id"], id.as_str());
    let out = exec.cli(&["replay", "show", &id, "--json"]);
    assert!(text(&out).contains("\"expired\""), "{}", text(&out));
    // Once, also across a restart (the sweep at start finds nothing new).
    assert!(exec.stop().success());
    exec.restart(ENV);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(expired_events(&exec), 1);
    let (code, v) = ledger(&["verify", "--store", &store(&exec)]);
    assert_eq!(code, Some(0), "{v}");
    // An expired proposal is finished: a prune archives it with its expiry.
    let archive = exec.path().join("archive.db");
    let (code, out) = cli(
        &exec,
        &[
            "ledger",
            "prune",
            "--before",
            &tomorrow(),
            "--archive",
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(
        (code, &out["events"], &out["held_by"]["reason"]),
        (Some(0), &json!(3), &json!("end")),
        "{out}"
    );
}
