//! The capability digest: what a proposal's approval is bound to besides its
//! change set.
//!
//! Apply writes with the executor's live config (the source's write
//! credential, the executor, the statements built from the capability). A
//! config edit between recording and apply — another table, key column,
//! tenant key, executor or source — would turn an approved change into a
//! different write. The executor stores [`capability_digest`] with every
//! proposal (inside the ledger's hash chain) and refuses to approve, reject
//! or apply when the live capability's digest differs (`config_changed`).

use serde_json::{Value, json};

use crate::canonical::hash_value;
use crate::config::{Capability, Config};

/// Version tag of the digest's input, so a future change of what is bound
/// never compares equal with an older digest by accident.
pub const DIGEST_VERSION: &str = "airlock.capability-digest.v1";

/// The canonical description of everything in `config` that decides what
/// applying a proposal of `cap` writes, and where: the capability (minus
/// the text only the model reads: its description, `returns` hint and
/// argument descriptions), its source (engine, the *names* of its URL
/// variables, read-only flag — never a URL or a secret) and its executor
/// (name and specification, which names variables, never values).
pub fn capability_definition(config: &Config, cap: &Capability) -> Value {
    let mut capability = serde_json::to_value(cap).unwrap_or(Value::Null);
    if let Some(obj) = capability.as_object_mut() {
        obj.remove("description");
        obj.remove("returns_hint");
        if let Some(args) = obj.get_mut("args").and_then(Value::as_array_mut) {
            for arg in args.iter_mut().filter_map(Value::as_object_mut) {
                arg.remove("description");
            }
        }
    }
    let source = config.source_for(cap).map(|s| {
        json!({
            "id": cap.source,
            "engine": s.engine,
            "read_url_env": s.read_url_env,
            "write_url_env": s.write_url_env,
            "read_only": s.read_only,
        })
    });
    let executor = cap.proposal.as_ref().map(|p| {
        let e = config.executor_for(p);
        json!({"name": e.name, "spec": e.spec})
    });
    let mut definition = json!({
        "digest": DIGEST_VERSION,
        "capability": capability,
        "source": source,
        "executor": executor,
    });
    // Only when configured, so existing digests do not change: the rows a
    // proposal's approval and apply depend on, with the read capabilities'
    // targets they are found through.
    if let Some(f) = config.proposal_freshness.get(&cap.name) {
        let dependencies: Vec<Value> = f
            .dependencies
            .iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "capability": d.capability,
                    "identity_from_arg": d.identity_from_arg,
                    "version_column": d.version_column,
                    "target": config.defined_capability(&d.capability).map(|c| &c.target),
                })
            })
            .collect();
        definition["freshness"] = json!({"dependencies": dependencies});
    }
    definition
}

/// sha256 (`sha256:<hex>`) of the canonical JSON of [`capability_definition`].
pub fn capability_digest(config: &Config, cap: &Capability) -> String {
    hash_value(&capability_definition(config, cap))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn reference() -> Value {
        serde_json::from_str(crate::REFERENCE_CONFIG).unwrap()
    }

    fn digest_of(v: &Value, cap: &str) -> String {
        let cfg = crate::load_config_str(&v.to_string()).config.unwrap();
        capability_digest(&cfg, cfg.capability(cap).unwrap())
    }

    const WAIVER: &str = "billing.propose_late_fee_waiver";

    fn waiver_index(v: &Value) -> usize {
        v["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["name"] == WAIVER)
            .unwrap()
    }

    #[test]
    fn the_write_target_is_bound_and_model_text_is_not() {
        let base = reference();
        let d0 = digest_of(&base, WAIVER);
        assert!(d0.starts_with("sha256:"));
        assert_eq!(d0, digest_of(&base, WAIVER), "deterministic");
        let i = waiver_index(&base);

        let mut table = base.clone();
        table["capabilities"][i]["target"]["table"] = json!("invoices_archive");
        assert_ne!(digest_of(&table, WAIVER), d0, "another table");

        let mut tenant = base.clone();
        tenant["capabilities"][i]["target"]["tenant_key"] = json!("customer_id");
        assert_ne!(digest_of(&tenant, WAIVER), d0, "another tenant key");

        let mut write_env = base.clone();
        let src = base["capabilities"][i]["source"]
            .as_str()
            .unwrap()
            .to_owned();
        write_env["sources"][&src]["write_url_env"] = json!("OTHER_WRITE_URL");
        assert_ne!(digest_of(&write_env, WAIVER), d0, "another write URL");

        let mut text = base.clone();
        text["capabilities"][i]["description"] = json!("A reworded description.");
        assert_eq!(digest_of(&text, WAIVER), d0, "model-facing text only");
    }

    /// The reference `billing.inspect_invoice` (a read: no executor), its
    /// definition written out in canonical form, and that text's sha256
    /// (computed independently of this crate).
    const INSPECT_DEFINITION: &str = r#"{"capability":{"args":[{"enum_values":null,"max_length":128,"maximum":null,"minimum":null,"name":"invoice_id","required":true,"ty":"string"}],"context":"local_operator","evidence":"required","kind":"read","lookup_arg":"invoice_id","max_rows":1,"name":"billing.inspect_invoice","proposal":null,"source":"app_postgres","target":{"primary_key":"id","schema":"public","table":"invoices","tenant_key":"tenant_id"},"visible_columns":["id","tenant_id","customer_id","status","balance_cents","late_fee_cents","waiver_reason","updated_at"]},"digest":"airlock.capability-digest.v1","executor":null,"source":{"engine":"postgres","id":"app_postgres","read_only":false,"read_url_env":"REFERENCE_POSTGRES_READ_URL","write_url_env":"REFERENCE_POSTGRES_WRITE_URL"}}"#;
    const INSPECT_DIGEST: &str =
        "sha256:43f12ce68938244cdc621419cf8d3d5cecad106ea70632e642a994c37127d8e4";

    /// The reference late-fee waiver (a proposal, built-in executor).
    const WAIVER_DEFINITION: &str = r#"{"capability":{"args":[{"enum_values":null,"max_length":128,"maximum":null,"minimum":null,"name":"invoice_id","required":true,"ty":"string"},{"enum_values":null,"max_length":500,"maximum":null,"minimum":null,"name":"reason","required":true,"ty":"string"}],"context":"local_operator","evidence":"required","kind":"proposal","lookup_arg":"invoice_id","max_rows":1,"name":"billing.propose_late_fee_waiver","proposal":{"allowed_columns":["late_fee_cents","waiver_reason"],"approval":{"required_role":"billing_lead"},"conflict_guard":{"column":"updated_at","kind":"column"},"executor":null,"numeric_bounds":{"late_fee_cents":{"maximum":10000.0,"minimum":0.0}},"patch":[["late_fee_cents",{"fixed":0}],["waiver_reason",{"from_arg":"reason"}]],"transition_guards":{}},"source":"app_postgres","target":{"primary_key":"id","schema":"public","table":"invoices","tenant_key":"tenant_id"},"visible_columns":["id","tenant_id","customer_id","status","balance_cents","late_fee_cents","waiver_reason","updated_at"]},"digest":"airlock.capability-digest.v1","executor":{"name":"sql_update","spec":{"type":"sql_update"}},"source":{"engine":"postgres","id":"app_postgres","read_only":false,"read_url_env":"REFERENCE_POSTGRES_READ_URL","write_url_env":"REFERENCE_POSTGRES_WRITE_URL"}}"#;
    const WAIVER_DIGEST: &str =
        "sha256:c2756d2b474a70d867c781b44e9437d1324bcf31abe4c2bcad89ecb4630819ff";

    #[test]
    fn definitions_and_digests_are_pinned() {
        let cfg = crate::load_config_str(crate::REFERENCE_CONFIG)
            .config
            .unwrap();
        for (name, definition, digest) in [
            (
                "billing.inspect_invoice",
                INSPECT_DEFINITION,
                INSPECT_DIGEST,
            ),
            (WAIVER, WAIVER_DEFINITION, WAIVER_DIGEST),
        ] {
            let cap = cfg.capability(name).unwrap();
            let def = capability_definition(&cfg, cap);
            let want: Value = serde_json::from_str(definition).unwrap();
            assert_eq!(def, want, "{name}");
            assert_eq!(crate::canonical::canonical_json(&def), definition, "{name}");
            assert_eq!(capability_digest(&cfg, cap), digest, "{name}");
        }
    }
}
