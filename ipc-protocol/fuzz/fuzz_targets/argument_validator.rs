//! Arbitrary JSON as a tool call's arguments against every capability of the
//! reference config: validation never panics, accepted arguments only hold
//! declared names, and building and verifying a change set from them never
//! panics and verifies to itself.
#![no_main]

use std::sync::OnceLock;

use airlock_policy::Config;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const REFERENCE: &str = include_str!("../../../tests/fixtures/reference/airlock.reference.json");

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| airlock_policy::load_config_str(REFERENCE).config.expect("reference config loads"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(args) = airlock_policy::strict_json::parse(data, 32) else { return };
    let cfg = config();
    let ctx = airlock_policy::context::TrustedContext {
        tenant_id: "acme".into(),
        principal: "fuzz".into(),
        source: airlock_policy::config::ContextProvider::Environment,
    };
    for cap in &cfg.capabilities {
        let Ok(valid) = airlock_policy::args::validate_args(cap, Some(&args)) else { continue };
        assert!(valid.keys().all(|k| cap.arg(k).is_some()));
        if cap.proposal.is_none() {
            continue;
        }
        let row = json!({
            "id": valid.get(&cap.lookup_arg).cloned().unwrap_or(Value::Null), "tenant_id": "acme",
            "status": "open", "late_fee_cents": 5500, "waiver_reason": null, "resolution_note": null,
            "plan_credit_cents": 0, "credit_reason": null, "status_change_reason": null,
            "updated_at": "2026-06-20T14:31:08Z"
        });
        let row = row.as_object().cloned().unwrap_or_default();
        if let Ok(cs) = airlock_policy::change_set::build(cap, &valid, &ctx, &row) {
            let verified = airlock_policy::change_set::verify(cfg, &cs, &|t| t == "acme");
            assert_eq!(verified.ok(), Some(cs));
        }
    }
});
