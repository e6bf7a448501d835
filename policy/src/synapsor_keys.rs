//! Synapsor Runner 1.x config keys that Airlock does not support yet.
//!
//! Airlock reads Synapsor Runner's reviewed-config format. A 1.x config may
//! carry keys for features Airlock does not have; each is refused by name
//! and feature, not as an "unknown field", so that an operator moving a
//! config over learns which protection or behaviour would be missing. None
//! is ignored: a key that narrows what the model may do (a row
//! scope, rate limits) would be dropped silently if it were.

/// Where a key sits, as a path shape: array indexes become `[]`, the names
/// of map entries (sources, contexts, executors, arguments, patched
/// columns) become `*`.
const UNSUPPORTED: &[(&str, &str, &str)] = &[
    ("$", "contracts", "portable capability contracts"),
    ("$", "policies", "policy auto-approval and limits"),
    ("$", "approvals", "the auto-approval switch"),
    ("$", "operator_identity", "verified operator identity"),
    ("$", "rate_limits", "per-capability rate limits"),
    ("$", "graduated_trust", "graduated-trust recommendations"),
    ("$", "governance", "cloud-linked governance"),
    (
        "$",
        "generated_authority",
        "the generation-lock drift check",
    ),
    ("$", "supervised_worker", "supervised automatic apply"),
    ("$", "production_explore", "scoped production Explore"),
    ("$.sources.*", "pool", "connection pool settings"),
    ("$.sources.*", "receipts", "receipt-table placement"),
    (
        "$.sources.*",
        "database_scope",
        "database-enforced row scope",
    ),
    ("$.sources.*", "credential_scope", "per-tenant credentials"),
    (
        "$.trusted_context",
        "tenant_binding",
        "tenant binding rules",
    ),
    (
        "$.trusted_context",
        "principal_binding",
        "principal binding rules",
    ),
    ("$.contexts.*", "tenant_binding", "tenant binding rules"),
    (
        "$.contexts.*",
        "principal_binding",
        "principal binding rules",
    ),
    (
        "$.capabilities[]",
        "protected_read",
        "protected analytical reads",
    ),
    ("$.capabilities[]", "kept_out_fields", "kept-out fields"),
    (
        "$.capabilities[]",
        "model_withheld_fields",
        "model-withheld fields",
    ),
    (
        "$.capabilities[]",
        "execution",
        "supervised-worker execution",
    ),
    (
        "$.capabilities[]",
        "writeback",
        "per-capability writeback mode",
    ),
    (
        "$.capabilities[]",
        "contract_provenance",
        "contract pinning",
    ),
    (
        "$.capabilities[].args.*",
        "max_items",
        "object-array arguments",
    ),
    (
        "$.capabilities[].args.*",
        "fields",
        "object-array arguments",
    ),
    ("$.capabilities[].approval", "policy", "policy approval"),
    (
        "$.capabilities[].patch.*",
        "from_item",
        "set-write item bindings",
    ),
];

/// Objects whose keys are names the config chooses, not fields.
const NAMED_ENTRIES: &[&str] = &[
    "sources",
    "contexts",
    "executors",
    "args",
    "patch",
    "numeric_bounds",
    "transition_guards",
];

/// The feature of a Synapsor Runner 1.x key Airlock does not support, when
/// `key` inside the object at `path` is one.
pub fn unsupported(path: &str, key: &str) -> Option<&'static str> {
    let shape = shape(path);
    UNSUPPORTED
        .iter()
        .find(|(at, name, _)| *at == shape && *name == key)
        .map(|(_, _, feature)| *feature)
}

/// `$.capabilities[3].args.invoice_id` → `$.capabilities[].args.*`.
fn shape(path: &str) -> String {
    let mut shaped = String::new();
    let mut entry_name_next = false;
    for (i, segment) in path.split('.').enumerate() {
        if i > 0 {
            shaped.push('.');
        }
        let (name, indexed) = match segment.split_once('[') {
            Some((name, _)) => (name, true),
            None => (segment, false),
        };
        shaped.push_str(if entry_name_next { "*" } else { name });
        if indexed {
            shaped.push_str("[]");
        }
        // An entry's own name is never a section name (a source called
        // `patch` does not make the next segment a name).
        entry_name_next = !entry_name_next && NAMED_ENTRIES.contains(&name);
    }
    shaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shaped_by_index_and_entry_name() {
        assert_eq!(shape("$"), "$");
        assert_eq!(shape("$.storage"), "$.storage");
        assert_eq!(shape("$.sources.app_db"), "$.sources.*");
        assert_eq!(shape("$.contexts.ops"), "$.contexts.*");
        assert_eq!(shape("$.capabilities[12]"), "$.capabilities[]");
        assert_eq!(shape("$.capabilities[0].target"), "$.capabilities[].target");
        assert_eq!(
            shape("$.capabilities[3].args.invoice_id"),
            "$.capabilities[].args.*"
        );
        assert_eq!(
            shape("$.capabilities[3].patch.status"),
            "$.capabilities[].patch.*"
        );
        assert_eq!(
            shape("$.capabilities[3].numeric_bounds.fee.x"),
            "$.capabilities[].numeric_bounds.*.x"
        );
        assert_eq!(
            shape("$.capabilities[3].transition_guards.status"),
            "$.capabilities[].transition_guards.*"
        );
        assert_eq!(shape("$.executors.billing"), "$.executors.*");
        // Only the segment right after a named-entry object is a name.
        assert_eq!(shape("$.sources.a.pool"), "$.sources.*.pool");
        assert_eq!(shape("$.sources.patch.pool"), "$.sources.*.pool");
        assert_eq!(shape("$.sources.args[2]"), "$.sources.*[]");
        assert_eq!(
            shape("$.airlock.proposers[1].tenants"),
            "$.airlock.proposers[].tenants"
        );
    }

    #[test]
    fn each_key_is_unsupported_only_where_synapsor_puts_it() {
        assert_eq!(unsupported("$", "notifications"), None, "supported");
        assert_eq!(
            unsupported("$.capabilities[4]", "operation"),
            None,
            "supported"
        );
        assert_eq!(
            unsupported("$.sources.app_db", "receipts"),
            Some("receipt-table placement")
        );
        assert_eq!(
            unsupported("$.capabilities[0].approval", "policy"),
            Some("policy approval")
        );
        // Supported now: quorum and freshness load.
        assert_eq!(
            unsupported("$.capabilities[0].approval", "required_approvals"),
            None
        );
        assert_eq!(unsupported("$", "proposal_freshness"), None);
        // Supported now: aggregate reads.
        assert_eq!(unsupported("$.capabilities[0]", "aggregate"), None);
        assert_eq!(
            unsupported("$.capabilities[0].target", "principal_scope_key"),
            None,
            "supported"
        );
        assert_eq!(
            unsupported("$.capabilities[0].args.items", "fields"),
            Some("object-array arguments")
        );
        assert_eq!(
            unsupported("$.capabilities[0].patch.status", "from_item"),
            Some("set-write item bindings")
        );
        assert_eq!(
            unsupported("$.contexts.ops", "tenant_binding"),
            Some("tenant binding rules")
        );
        // The same names elsewhere are plain unknown fields.
        assert_eq!(unsupported("$.capabilities[0]", "notifications"), None);
        assert_eq!(unsupported("$", "operation"), None);
        assert_eq!(unsupported("$.sources", "receipts"), None);
        assert_eq!(unsupported("$.capabilities[0].target", "operation"), None);
        assert_eq!(unsupported("$", "telemetry"), None);
    }

    #[test]
    fn every_entry_is_reachable_and_listed_once() {
        for (i, (at, key, feature)) in UNSUPPORTED.iter().enumerate() {
            assert!(!feature.is_empty());
            assert!(
                UNSUPPORTED[..i].iter().all(|(a, k, _)| (a, k) != (at, key)),
                "{at} {key} listed twice"
            );
            // A concrete path of that shape finds the entry.
            let concrete = at.replace("[]", "[0]").replace(".*", ".x");
            assert_eq!(unsupported(&concrete, key), Some(*feature), "{at} {key}");
        }
    }
}
