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
    let waiver = tools
        .iter()
        .find(|t| t["name"] == "billing.propose_late_fee_waiver")
        .unwrap();
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
        .find(|t| t["name"] == "support.propose_plan_credit")
        .unwrap();
    assert_eq!(
        credit["inputSchema"]["properties"]["credit_cents"],
        serde_json::json!({"type": "number", "minimum": 0, "maximum": 5000})
    );
}
