//! `--json`: a failure is one JSON object on stdout and nothing on stderr,
//! whatever failed (the executor, the arguments, the config, a file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

fn airlock(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(dir)
        .env_remove("AIRLOCK_SOCKET_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap()
}

/// The one JSON failure on stdout (every JSON value in it is counted).
fn the_one_failure(args: &[&str], out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.stderr.is_empty(),
        "{args:?}: stderr must be empty, got: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {stdout}"));
    assert_eq!(
        values.len(),
        1,
        "{args:?}: exactly one JSON object: {stdout}"
    );
    let v = values.into_iter().next().unwrap();
    assert_eq!(v["ok"], false, "{args:?}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{args:?}: {v}"
    );
    v
}

#[test]
fn every_kind_of_failure_prints_one_json_object_on_stdout_only() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("no-executor-here");
    std::fs::create_dir(&sockets).unwrap();
    let sockets = sockets.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 6] = [
        // The executor is not running.
        (
            &["proposals", "list", "--json", "--socket-dir", sockets],
            1,
            "executor_not_running",
        ),
        (
            &["apply", "latest", "--json", "--socket-dir", sockets],
            1,
            "executor_not_running",
        ),
        // clap's own usage errors, when --json was asked for.
        (&["proposals", "list", "--json", "--bogus"], 2, "usage"),
        (&["proposals", "reject", "latest", "--json"], 2, "usage"),
        // The command's own usage error.
        (
            &["replay", "export", "latest", "--output", "-", "--json"],
            2,
            "usage",
        ),
        // A file that is not there.
        (
            &["ledger", "verify", "--store", "missing.db", "--json"],
            1,
            "not_found",
        ),
    ];
    for (args, code, error) in cases {
        let out = airlock(dir.path(), args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let v = the_one_failure(args, &out);
        assert_eq!(v["error"]["code"], error, "{args:?}: {v}");
    }
    // The clap message, plain: the error and its tip, no usage block.
    let out = airlock(dir.path(), &["proposals", "reject", "latest", "--json"]);
    let v = the_one_failure(&[], &out);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("--reason <REASON>"), "{message}");
    assert!(
        !message.contains("Usage:") && !message.contains('\u{1b}'),
        "{message}"
    );
    // Without --json the same usage error stays clap's, on stderr.
    let out = airlock(dir.path(), &["proposals", "reject", "latest"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage:"));
}
