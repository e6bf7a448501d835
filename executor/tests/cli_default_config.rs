//! Without `--config`, the CLI uses `./airlock.json` when it exists, and
//! says exactly what to do when it does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn airlock(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(dir)
        .env_remove("AIRLOCK_SOCKET_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap()
}

fn reference() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/reference/airlock.reference.json"),
    )
    .unwrap()
}

#[test]
fn without_airlock_json_every_config_command_says_to_pass_one() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["config", "validate"][..],
        &["tools", "preview"],
        &["mcp", "config", "cursor"],
    ] {
        let out = airlock(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(
                "no --config given and no airlock.json in this directory; pass the reviewed config with --config PATH"
            ),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // doctor reports it as its failed config check.
    let out = airlock(dir.path(), &["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no --config given and no airlock.json"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // --json: the failure once, on stdout only.
    let out = airlock(dir.path(), &["config", "validate", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "config_unreadable");
}

#[test]
fn airlock_json_in_the_working_directory_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("airlock.json"), reference()).unwrap();
    let out = airlock(dir.path(), &["config", "validate"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("OK: airlock.json is a valid reviewed config"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = airlock(dir.path(), &["tools", "preview", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let out = airlock(dir.path(), &["mcp", "config", "cursor"]);
    assert_eq!(out.status.code(), Some(0));
    let snippet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        snippet["mcpServers"]["airlock"]["args"],
        serde_json::json!(["serve", "--config", "airlock.json"])
    );

    // Operator commands find the socket through ./airlock.json too: its
    // airlock.socket_dir, relative to the config.
    let mut cfg: serde_json::Value = serde_json::from_str(&reference()).unwrap();
    cfg["airlock"] = serde_json::json!({"socket_dir": "sockets-here"});
    std::fs::write(
        dir.path().join("airlock.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let out = airlock(dir.path(), &["proposals", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sockets-here/operator.sock"), "{stderr}");
}

#[test]
fn commands_with_an_optional_config_say_what_is_missing_or_use_airlock_json() {
    let dir = tempfile::tempdir().unwrap();
    // Neither the flag nor ./airlock.json: a usage error naming both.
    let out = airlock(
        dir.path(),
        &[
            "writeback",
            "grants",
            "--engine",
            "postgres",
            "--writer-role",
            "w",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("pass --config FILE (there is no ./airlock.json here)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = airlock(dir.path(), &["ledger", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "name the ledger with --store FILE or --config FILE (no ./airlock.json here)"
        )
    );

    // With ./airlock.json: grants follow its capabilities, and the ledger
    // looked for is its storage.sqlite_path.
    let mut cfg: serde_json::Value = serde_json::from_str(&reference()).unwrap();
    cfg["storage"] = serde_json::json!({"sqlite_path": "state/ledger-here.db"});
    std::fs::write(
        dir.path().join("airlock.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let out = airlock(
        dir.path(),
        &[
            "writeback",
            "grants",
            "--engine",
            "postgres",
            "--writer-role",
            "w",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("GRANT UPDATE ("));
    let out = airlock(dir.path(), &["ledger", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("state/ledger-here.db"),
        "{v}"
    );

    // doctor reads ./airlock.json too (its first check is the config's).
    let out = airlock(dir.path(), &["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["checks"][0]["check"], "config", "{v}");
    assert_ne!(v["checks"][0]["status"], "fail", "{v}");
}
