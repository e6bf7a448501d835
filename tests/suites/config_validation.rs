//! `airlock config validate` and `airlock tools preview` on real configs.

use airlock_tests::{airlock, reference_config, stdout_json};

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
}
