//! `airlock config validate`, `airlock config schema` and `airlock tools
//! preview` on real configs.

use airlock_tests::{airlock, reference_config, stdout_json, workspace_root};
use serde_json::Value;

/// What `airlock config schema` prints, checked to be a JSON Schema.
fn printed_schema() -> (String, jsonschema::Validator) {
    let out = airlock(&["config", "schema"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    (text, validator)
}

#[test]
fn reference_config_is_valid_and_previews_eight_tools() {
    let cfg = reference_config();
    let cfg = cfg.to_str().unwrap();
    let out = airlock(&["config", "validate", "--config", cfg, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = stdout_json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["capabilities"]["read"], 4);
    assert_eq!(v["capabilities"]["proposal"], 4);

    let out = airlock(&["tools", "preview", "--config", cfg, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = stdout_json(&out);
    let tools = v["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 8);
    assert_eq!(tools.iter().filter(|t| t["kind"] == "read").count(), 4);
    assert_eq!(tools.iter().filter(|t| t["kind"] == "proposal").count(), 4);
    // The names the model sees by default: client-safe, each `.` as `__`.
    assert_eq!(v["alias_mode"], "openai");
    for t in tools {
        assert_eq!(
            t["name"],
            t["canonical"].as_str().unwrap().replace('.', "__"),
            "{t}"
        );
    }
    let waiver = tools
        .iter()
        .find(|t| t["name"] == "billing__propose_late_fee_waiver")
        .unwrap();
    assert_eq!(waiver["canonical"], "billing.propose_late_fee_waiver");
    assert_eq!(waiver["title"], "Billing: propose late fee waiver");
    assert_eq!(
        waiver["inputSchema"]["required"],
        serde_json::json!(["invoice_id", "reason"])
    );
    assert_eq!(
        waiver["inputSchema"]["properties"]["reason"]["maxLength"],
        500
    );
    assert_eq!(waiver["inputSchema"]["additionalProperties"], false);
    assert_eq!(waiver["approval_role"], "billing_lead");
    let credit = tools
        .iter()
        .find(|t| t["name"] == "support__propose_plan_credit")
        .unwrap();
    assert_eq!(
        credit["inputSchema"]["properties"]["credit_cents"],
        serde_json::json!({"type": "number", "minimum": 0, "maximum": 5000})
    );
}

#[test]
fn the_demo_runs_the_whole_loop_with_no_setup() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let out = std::process::Command::new(airlock_tests::bin("airlock"))
        .args(["demo", "--yes", "--keep"])
        .arg(&keep)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "Two processes",
        "billing.propose_late_fee_waiver",
        "pending approval; the database still says late fee 5500",
        "exists for your tenant",
        "applied: late fee now 0",
        "applying again → already_applied",
        "apply → conflict (VERSION_CONFLICT)",
        "Source database changed: yes",
    ] {
        assert!(text.contains(needle), "missing {needle:?}:\n{text}");
    }
    // The kept ledger verifies, and the demo left no process behind.
    let out = airlock_tests::airlock(&[
        "ledger",
        "verify",
        "--store",
        keep.join("ledger.db").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !keep.join("run/operator.sock").exists(),
        "the executor was stopped"
    );
    // The config the demo wrote is valid against the schema Airlock prints.
    let (_, schema) = printed_schema();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(keep.join("airlock.json")).unwrap()).unwrap();
    let errors: Vec<String> = schema
        .iter_errors(&written)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn config_schema_prints_the_checked_in_schema_and_writes_it_whole() {
    let (text, schema) = printed_schema();
    let checked_in =
        std::fs::read_to_string(workspace_root().join("docs/airlock.config.schema.json")).unwrap();
    assert!(
        text == checked_in,
        "docs/airlock.config.schema.json is not what `airlock config schema` prints; regenerate it with\n  cargo run -q -p airlock-executor --bin airlock -- config schema --output docs/airlock.config.schema.json"
    );
    assert_eq!(text, airlock_policy::config_schema::config_schema_text());

    // --output writes the same bytes, replacing an older file, and says how
    // a config refers to it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("airlock.config.schema.json");
    std::fs::write(&file, "{\"stale\": true}").unwrap();
    let out = airlock(&["config", "schema", "--output", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    assert!(
        stdout.contains(&format!("Wrote the config schema to {}", file.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"$schema\": \"./airlock.config.schema.json\""),
        "{stdout}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "no temporary file is left behind: {left:?}");

    // A config beside it that names it with `$schema` is valid for both the
    // schema and the loader.
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(reference_config()).unwrap()).unwrap();
    config.as_object_mut().unwrap().shift_insert(
        0,
        "$schema".into(),
        "./airlock.config.schema.json".into(),
    );
    assert!(schema.is_valid(&config));
    let path = dir.path().join("airlock.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let out = airlock(&[
        "config",
        "validate",
        "--config",
        path.to_str().unwrap(),
        "--json",
    ]);
    let v = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]));
    // A `$schema` that is not a reference is refused by both.
    config["$schema"] = serde_json::json!(true);
    assert!(!schema.is_valid(&config));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let out = airlock(&[
        "config",
        "validate",
        "--config",
        path.to_str().unwrap(),
        "--json",
    ]);
    let v = stdout_json(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["errors"][0]["path"], r#"$["$schema"]"#);
    assert_eq!(
        v["errors"][0]["message"],
        "expected a string, found a boolean"
    );

    // An unwritable destination: exit 1, a message naming it, nothing created.
    let missing = dir.path().join("no-such-dir/schema.json");
    let out = airlock(&["config", "schema", "--output", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot write {}", missing.display())),
        "{stderr}"
    );
    assert!(!dir.path().join("no-such-dir").exists());
}
