//! The result envelope the model receives from every tool call.
//!
//! Version 2 (default) is Synapsor Runner's result envelope v2, key for key:
//! `ok`, `summary`, `action`, `kind`, `data`, `proposal`, `error`,
//! `evidence: {bundle_id, note}`, `source_database_changed` and
//! `_meta: {tenant_id, principal, provenance, canonical_capability}`; a
//! proposal is `{id, state, target, diff: {column: {before, proposed}},
//! approval_required, writeback: {mode, operation, applied}, next}`; an
//! error is `{code, message, retryable}` with a code from Synapsor's safe
//! set where the meaning matches ([`SAFE_CODES`]). Airlock's extra detail
//! (guards, hashes, expiry, the approver's role, our own error code,
//! warnings) rides along under additional keys, never instead of these.
//!
//! Version 1 is Synapsor's legacy shape: `status`, `action`,
//! `business_object`/`target`, `data`, `trusted_context`, `diff`,
//! `evidence_bundle_id` on success; `{ok: false, code, error}` on failure.
//!
//! [`output_schema`] is the JSON Schema each tool declares for its result.

use std::borrow::Cow;

use airlock_policy::config::{Kind, ResultFormat};
use serde_json::{Map, Value, json};

/// A tool error the model can act on: a stable code and a safe message.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError {
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ToolError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ToolError {
        ToolError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> ToolError {
        self.details = Some(details);
        self
    }
}

/// How long a model should wait before retrying a transient failure.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 1000;

/// Airlock's error codes and the v2 code each is shown as, with whether a
/// retry may succeed. Codes with a Synapsor equivalent use it; the others
/// are ours, uppercased. A code not listed here is shown uppercased and not
/// retryable.
pub const SAFE_CODES: &[(&str, &str, bool)] = &[
    ("not_found", "NOT_FOUND_IN_TENANT", false),
    ("invalid_arguments", "INVALID_ARGUMENT", false),
    ("policy_refused", "POLICY_VIOLATION", false),
    ("unknown_tool", "CAPABILITY_NOT_FOUND", false),
    ("source_timeout", "TEMPORARILY_UNAVAILABLE", true),
    ("source_unavailable", "TEMPORARILY_UNAVAILABLE", true),
    ("executor_unavailable", "TEMPORARILY_UNAVAILABLE", true),
    ("internal", "INTERNAL", false),
    ("rate_limited", "RATE_LIMITED", true),
    ("too_large", "TOO_LARGE", false),
    ("source_misconfigured", "SOURCE_MISCONFIGURED", false),
    ("outcome_unknown", "OUTCOME_UNKNOWN", false),
    ("executor_untrusted", "EXECUTOR_UNTRUSTED", false),
    ("refused_by_executor", "REFUSED_BY_EXECUTOR", false),
    ("schema_drift", "SCHEMA_DRIFT", false),
    // Scoped Explore: Synapsor Runner's codes.
    ("plan_invalid", "EXPLORE_PLAN_INVALID", false),
    ("resource_forbidden", "EXPLORE_RESOURCE_FORBIDDEN", false),
    ("field_forbidden", "EXPLORE_FIELD_FORBIDDEN", false),
    (
        "relationship_forbidden",
        "EXPLORE_RELATIONSHIP_FORBIDDEN",
        false,
    ),
    ("scope_forbidden", "EXPLORE_SCOPE_FORBIDDEN", false),
    ("budget_exhausted", "EXPLORE_PRIVACY_BUDGET_EXHAUSTED", true),
    (
        "complementary_release",
        "EXPLORE_COMPLEMENTARY_RELEASE",
        false,
    ),
    ("too_many_groups", "EXPLORE_RESPONSE_TOO_LARGE", false),
];

/// What the model is shown for one error: the v2 code, whether to retry
/// and, for a retryable error, after how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeCode {
    pub code: Cow<'static, str>,
    pub retryable: bool,
    pub retry_after_ms: Option<u64>,
}

/// The v2 code of `e` ([`SAFE_CODES`]). An executor refusal is shown by
/// its meaning: a policy refusal as `POLICY_VIOLATION`, a busy or stopping
/// executor as `TEMPORARILY_UNAVAILABLE`.
pub fn safe_code(e: &ToolError) -> SafeCode {
    let detail = |key: &str| e.details.as_ref().and_then(|d| d.get(key));
    let (code, retryable): (Cow<'static, str>, bool) =
        match (e.code, detail("code").and_then(Value::as_str)) {
            ("refused_by_executor", Some("policy_violation" | "tenant_not_allowed")) => {
                ("POLICY_VIOLATION".into(), false)
            }
            ("refused_by_executor", Some("busy" | "shutting_down")) => {
                ("TEMPORARILY_UNAVAILABLE".into(), true)
            }
            (ours, _) => match SAFE_CODES.iter().find(|(o, _, _)| *o == ours) {
                Some((_, theirs, retry)) => (Cow::Borrowed(*theirs), *retry),
                None => (Cow::Owned(ours.to_ascii_uppercase()), false),
            },
        };
    let retry_after_ms = retryable.then(|| {
        detail("retry_after_ms")
            .and_then(Value::as_u64)
            .filter(|ms| *ms > 0)
            .unwrap_or(DEFAULT_RETRY_AFTER_MS)
    });
    SafeCode {
        code,
        retryable,
        retry_after_ms,
    }
}

/// The v1 code of `e`: Synapsor's legacy name where there is one
/// (`ROW_NOT_FOUND`, `MCP_TOOL_NOT_FOUND`), else ours uppercased.
pub fn v1_code(e: &ToolError) -> String {
    match e.code {
        "not_found" => "ROW_NOT_FOUND".to_owned(),
        "unknown_tool" => "MCP_TOOL_NOT_FOUND".to_owned(),
        other => other.to_ascii_uppercase(),
    }
}

/// The trusted context a call ran with (never from the model).
#[derive(Debug, Clone, PartialEq)]
pub struct CallContext {
    pub tenant_id: String,
    pub principal: String,
    /// `environment` or `static_dev`.
    pub provenance: &'static str,
}

/// The evidence the executor recorded for a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// `ev_…`.
    pub bundle_id: String,
    pub query_fingerprint: String,
}

/// What the model may do about evidence (Synapsor's wording).
pub const EVIDENCE_NOTE: &str =
    "audit/replay handle; you do not need to act on it during this turn";

/// How an approved proposal is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritebackMode {
    /// The executor's guarded single-row UPDATE (`sql_update`).
    DirectUpdate,
    /// An application handler (`http_handler`, `command_handler`).
    AppHandler,
}

impl WritebackMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WritebackMode::DirectUpdate => "direct_update",
            WritebackMode::AppHandler => "app_handler",
        }
    }
}

/// A recorded proposal, as the model is told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalView {
    /// `wrp_…`.
    pub id: String,
    /// The executor's state name (`pending_approval`, …).
    pub state: String,
    pub table: String,
    pub object_id: String,
    pub tenant_id: String,
    /// Column, value before, proposed value (in patch order).
    pub diff: Vec<(String, Value, Value)>,
    pub writeback: WritebackMode,
    /// The executor entry that applies it (`sql_update` or a handler's name).
    pub executor: String,
    pub required_role: Option<String>,
    pub guards: Value,
    pub proposal_hash: String,
    pub created_at: String,
    pub expires_at: String,
}

impl ProposalView {
    /// Synapsor's state name: a proposal waiting for a person is `review_required`.
    pub fn state_v2(&self) -> &str {
        match self.state.as_str() {
            "pending_approval" => "review_required",
            other => other,
        }
    }

    pub fn approval_required(&self) -> bool {
        self.state == "pending_approval"
    }

    fn diff_json(&self) -> Value {
        Value::Object(
            self.diff
                .iter()
                .map(|(col, before, proposed)| {
                    (col.clone(), json!({"before": before, "proposed": proposed}))
                })
                .collect(),
        )
    }

    fn next(&self) -> String {
        let who = match &self.required_role {
            Some(role) => format!("A person with role {role}"),
            None => "A person".to_owned(),
        };
        format!(
            "{who} must approve this outside this model-facing tool surface; nothing is committed yet."
        )
    }

    fn approval_json(&self) -> Value {
        json!({"mode": "human", "required_role": self.required_role})
    }

    fn to_v2(&self) -> Value {
        json!({
            "id": self.id,
            "state": self.state_v2(),
            "target": format!("{}:{}", self.table, self.object_id),
            "diff": self.diff_json(),
            "approval_required": self.approval_required(),
            "writeback": {
                "mode": self.writeback.as_str(),
                "operation": "update",
                "applied": false,
            },
            "next": self.next(),
            "approval": self.approval_json(),
            "guards": self.guards,
            "proposal_hash": self.proposal_hash,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        })
    }
}

/// Everything one call produced, before it is shaped for the wire.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub capability: String,
    pub kind: Option<Kind>,
    pub summary: String,
    /// The read's row (or `{rows: [...]}`); `None` for proposals and failures.
    pub data: Option<Value>,
    /// The business object a read returned: table and id.
    pub object: Option<(String, String)>,
    pub proposal: Option<ProposalView>,
    pub error: Option<ToolError>,
    pub evidence: Option<Evidence>,
    /// The trusted context, when the tool exists.
    pub context: Option<CallContext>,
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn failed(
        capability: &str,
        kind: Option<Kind>,
        context: Option<&CallContext>,
        error: ToolError,
    ) -> Outcome {
        Outcome {
            capability: capability.to_owned(),
            kind,
            summary: error.message.clone(),
            data: None,
            object: None,
            proposal: None,
            error: Some(error),
            evidence: None,
            context: context.cloned(),
            warnings: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// The envelope in the requested format.
    pub fn to_json(&self, format: ResultFormat) -> Value {
        match format {
            ResultFormat::V2 => self.to_v2(),
            ResultFormat::V1 => self.to_v1(),
        }
    }

    fn meta(&self) -> Value {
        let mut meta = Map::new();
        if let Some(c) = &self.context {
            meta.insert("tenant_id".into(), json!(c.tenant_id));
            meta.insert("principal".into(), json!(c.principal));
            meta.insert("provenance".into(), json!(c.provenance));
        }
        meta.insert("canonical_capability".into(), json!(self.capability));
        Value::Object(meta)
    }

    fn to_v2(&self) -> Value {
        let error = self.error.as_ref().map(|e| {
            let safe = safe_code(e);
            let mut v = json!({
                "code": safe.code,
                "message": e.message,
                "retryable": safe.retryable,
            });
            if let Some(ms) = safe.retry_after_ms {
                v["retry_after_ms"] = json!(ms);
            }
            v["airlock_code"] = json!(e.code);
            if let Some(d) = &e.details {
                v["details"] = d.clone();
            }
            v
        });
        let ok = self.ok();
        json!({
            "ok": ok,
            "summary": self.summary,
            "action": self.capability,
            "kind": self.kind.map(Kind::as_str),
            "data": if ok { self.data.clone() } else { None },
            "proposal": if ok { self.proposal.as_ref().map(ProposalView::to_v2) } else { None },
            "error": error,
            "evidence": self.evidence.as_ref().map(|e| json!({
                "bundle_id": e.bundle_id,
                "note": EVIDENCE_NOTE,
                "query_fingerprint": e.query_fingerprint,
            })),
            "source_database_changed": false,
            "warnings": self.warnings,
            "_meta": self.meta(),
        })
    }

    fn to_v1(&self) -> Value {
        let mut out = Map::new();
        if let Some(e) = &self.error {
            out.insert("ok".into(), json!(false));
            out.insert("code".into(), json!(v1_code(e)));
            out.insert("error".into(), json!(e.message));
            if let Some(ms) = safe_code(e).retry_after_ms {
                out.insert("retry_after_ms".into(), json!(ms));
            }
            if let Some(d) = &e.details {
                out.insert("details".into(), d.clone());
            }
            out.insert("_meta".into(), self.meta());
            return Value::Object(out);
        }
        let context = self.context.as_ref().map(|c| {
            json!({"tenant_id": c.tenant_id, "principal": c.principal, "provenance": c.provenance})
        });
        let evidence = self.evidence.as_ref().map(|e| json!(e.bundle_id));
        match &self.proposal {
            Some(p) => {
                out.insert("status".into(), json!(p.state_v2()));
                out.insert("action".into(), json!(self.capability));
                out.insert("proposal_id".into(), json!(p.id));
                out.insert("proposal_hash".into(), json!(p.proposal_hash));
                out.insert(
                    "target".into(),
                    json!({"type": p.table, "id": p.object_id, "tenant_id": p.tenant_id}),
                );
                out.insert("diff".into(), p.diff_json());
                out.insert("evidence_bundle_id".into(), json!(evidence));
                out.insert("approval".into(), p.approval_json());
                out.insert("approval_required".into(), json!(p.approval_required()));
                out.insert(
                    "writeback".into(),
                    json!({"status": "not_applied", "mode": "trusted_worker_required", "executor": p.executor}),
                );
                out.insert("guards".into(), p.guards.clone());
                out.insert("created_at".into(), json!(p.created_at));
                out.insert("expires_at".into(), json!(p.expires_at));
            }
            None => {
                out.insert("status".into(), json!("ok"));
                out.insert("action".into(), json!(self.capability));
                if let Some((table, id)) = &self.object {
                    out.insert("business_object".into(), json!({"type": table, "id": id}));
                }
                out.insert("data".into(), self.data.clone().unwrap_or(Value::Null));
                out.insert("trusted_context".into(), json!(context));
                out.insert("evidence_bundle_id".into(), json!(evidence));
            }
        }
        out.insert("source_database_changed".into(), json!(false));
        out.insert("source_database_mutated".into(), json!(false));
        if !self.warnings.is_empty() {
            out.insert("warnings".into(), json!(self.warnings));
        }
        out.insert("_meta".into(), self.meta());
        Value::Object(out)
    }
}

/// The JSON Schema of the result of tool `canonical` (of kind `kind`) in
/// `format`: what `tools/list` declares as its `outputSchema`. Uses only
/// `type`, `required`, `properties`, `additionalProperties`, `items`,
/// `enum`, `const` and `anyOf`.
pub fn output_schema(canonical: &str, kind: Kind, format: ResultFormat) -> Value {
    let string = json!({"type": "string"});
    let meta = json!({
        "type": "object",
        "required": ["canonical_capability"],
        "properties": {
            "tenant_id": string,
            "principal": string,
            "provenance": {"enum": ["environment", "static_dev"]},
            "canonical_capability": {"const": canonical},
        },
    });
    if format == ResultFormat::V1 {
        return json!({
            "type": "object",
            "required": ["_meta"],
            "properties": {
                "ok": {"const": false},
                "status": string,
                "action": {"const": canonical},
                "code": string,
                "error": string,
                "source_database_changed": {"const": false},
                "_meta": meta,
            },
        });
    }
    let nullable = |schema: Value| json!({"anyOf": [{"type": "null"}, schema]});
    let proposal = json!({
        "type": "object",
        "required": ["id", "state", "target", "diff", "approval_required", "writeback", "next"],
        "properties": {
            "id": string,
            "state": string,
            "target": string,
            "diff": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["before", "proposed"],
                },
            },
            "approval_required": {"type": "boolean"},
            "writeback": {
                "type": "object",
                "required": ["mode", "applied"],
                "properties": {
                    "mode": {"enum": ["direct_update", "app_handler"]},
                    "operation": {"const": "update"},
                    "applied": {"type": "boolean"},
                },
            },
            "next": string,
        },
    });
    let error = json!({
        "type": "object",
        "required": ["code", "message", "retryable"],
        "properties": {
            "code": string,
            "message": string,
            "retryable": {"type": "boolean"},
            "retry_after_ms": {"type": "integer"},
            "airlock_code": string,
        },
    });
    let evidence = json!({
        "type": "object",
        "required": ["bundle_id"],
        "properties": {"bundle_id": string, "note": string, "query_fingerprint": string},
    });
    let (data, proposal) = match kind {
        Kind::Read => (nullable(json!({"type": "object"})), json!({"type": "null"})),
        Kind::Proposal => (json!({"type": "null"}), nullable(proposal)),
        Kind::AggregateRead => (
            nullable(airlock_policy::aggregate_read::data_schema()),
            json!({"type": "null"}),
        ),
    };
    json!({
        "type": "object",
        "required": [
            "ok", "summary", "action", "kind", "data", "proposal", "error",
            "evidence", "source_database_changed", "_meta",
        ],
        "properties": {
            "ok": {"type": "boolean"},
            "summary": string,
            "action": {"const": canonical},
            "kind": {"const": kind.as_str()},
            "data": data,
            "proposal": proposal,
            "error": nullable(error),
            "evidence": nullable(evidence),
            "source_database_changed": {"const": false},
            "warnings": {"type": "array", "items": string},
            "_meta": meta,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> CallContext {
        CallContext {
            tenant_id: "acme".into(),
            principal: "agent_17".into(),
            provenance: "environment",
        }
    }

    fn proposal() -> ProposalView {
        ProposalView {
            id: "wrp_1".into(),
            state: "pending_approval".into(),
            table: "invoices".into(),
            object_id: "INV-3001".into(),
            tenant_id: "acme".into(),
            diff: vec![
                ("late_fee_cents".into(), json!(5500), json!(0)),
                ("waiver_reason".into(), Value::Null, json!("r")),
            ],
            writeback: WritebackMode::DirectUpdate,
            executor: "sql_update".into(),
            required_role: Some("billing_lead".into()),
            guards: json!({"allowed_columns": ["late_fee_cents"]}),
            proposal_hash: "sha256:abc".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-08T00:00:00Z".into(),
        }
    }

    fn proposed() -> Outcome {
        Outcome {
            capability: "billing.propose_late_fee_waiver".into(),
            kind: Some(Kind::Proposal),
            summary: "Proposal wrp_1 recorded.".into(),
            data: None,
            object: None,
            proposal: Some(proposal()),
            error: None,
            evidence: Some(Evidence {
                bundle_id: "ev_1".into(),
                query_fingerprint: "sha256:q".into(),
            }),
            context: Some(context()),
            warnings: Vec::new(),
        }
    }

    fn read() -> Outcome {
        Outcome {
            capability: "billing.inspect_invoice".into(),
            kind: Some(Kind::Read),
            summary: "invoices record `INV-3001` (tenant acme).".into(),
            data: Some(json!({"id": "INV-3001", "late_fee_cents": 5500})),
            object: Some(("invoices".into(), "INV-3001".into())),
            proposal: None,
            error: None,
            evidence: Some(Evidence {
                bundle_id: "ev_2".into(),
                query_fingerprint: "sha256:q".into(),
            }),
            context: Some(context()),
            warnings: vec!["w".into()],
        }
    }

    fn failed(code: &'static str, details: Option<Value>) -> Outcome {
        let mut e = ToolError::new(code, "no invoice");
        e.details = details;
        Outcome::failed(
            "billing.inspect_invoice",
            Some(Kind::Read),
            Some(&context()),
            e,
        )
    }

    const V2_KEYS: [&str; 11] = [
        "ok",
        "summary",
        "action",
        "kind",
        "data",
        "proposal",
        "error",
        "evidence",
        "source_database_changed",
        "warnings",
        "_meta",
    ];

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    fn sorted(mut k: Vec<&str>) -> Vec<&str> {
        k.sort_unstable();
        k
    }

    #[test]
    fn v2_read_has_exactly_synapsors_keys_and_values() {
        let v = read().to_json(ResultFormat::V2);
        assert_eq!(keys(&v), sorted(V2_KEYS.to_vec()));
        assert_eq!(v["ok"], true);
        assert_eq!(v["action"], "billing.inspect_invoice");
        assert_eq!(v["kind"], "read");
        assert_eq!(v["data"]["late_fee_cents"], 5500);
        assert_eq!(v["proposal"], Value::Null);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(
            v["evidence"],
            json!({"bundle_id": "ev_2", "note": EVIDENCE_NOTE, "query_fingerprint": "sha256:q"})
        );
        assert_eq!(v["source_database_changed"], false);
        assert_eq!(v["warnings"], json!(["w"]));
        assert_eq!(
            v["_meta"],
            json!({"tenant_id": "acme", "principal": "agent_17", "provenance": "environment", "canonical_capability": "billing.inspect_invoice"})
        );
    }

    #[test]
    fn v2_proposal_has_synapsors_proposal_shape() {
        let v = proposed().to_json(ResultFormat::V2);
        assert_eq!(keys(&v), sorted(V2_KEYS.to_vec()));
        assert_eq!(v["ok"], true);
        assert_eq!(v["kind"], "proposal");
        assert_eq!(v["data"], Value::Null);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(
            v["proposal"],
            json!({
                "id": "wrp_1",
                "state": "review_required",
                "target": "invoices:INV-3001",
                "diff": {
                    "late_fee_cents": {"before": 5500, "proposed": 0},
                    "waiver_reason": {"before": null, "proposed": "r"},
                },
                "approval_required": true,
                "writeback": {"mode": "direct_update", "operation": "update", "applied": false},
                "next": "A person with role billing_lead must approve this outside this model-facing tool surface; nothing is committed yet.",
                "approval": {"mode": "human", "required_role": "billing_lead"},
                "guards": {"allowed_columns": ["late_fee_cents"]},
                "proposal_hash": "sha256:abc",
                "created_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-08T00:00:00Z",
            })
        );
        assert_eq!(v["evidence"]["bundle_id"], "ev_1");
        assert_eq!(v["_meta"]["tenant_id"], "acme");
    }

    #[test]
    fn a_proposal_in_another_state_keeps_its_name_and_needs_no_approval() {
        let mut o = proposed();
        let p = o.proposal.as_mut().unwrap();
        p.state = "approved".into();
        p.required_role = None;
        p.writeback = WritebackMode::AppHandler;
        let v = o.to_json(ResultFormat::V2);
        assert_eq!(v["proposal"]["state"], "approved");
        assert_eq!(v["proposal"]["approval_required"], false);
        assert_eq!(v["proposal"]["writeback"]["mode"], "app_handler");
        assert_eq!(
            v["proposal"]["next"],
            "A person must approve this outside this model-facing tool surface; nothing is committed yet."
        );
        assert_eq!(v["proposal"]["approval"]["required_role"], Value::Null);
    }

    #[test]
    fn v2_failure_nulls_data_and_proposal_and_maps_the_code() {
        let mut o = failed("not_found", Some(json!({"x": 1})));
        // Even if a payload was set, a failure shows neither.
        o.data = Some(json!({"id": 1}));
        o.proposal = Some(proposal());
        let v = o.to_json(ResultFormat::V2);
        assert_eq!(keys(&v), sorted(V2_KEYS.to_vec()));
        assert_eq!(v["ok"], false);
        assert_eq!(v["summary"], "no invoice");
        assert_eq!(v["data"], Value::Null);
        assert_eq!(v["proposal"], Value::Null);
        assert_eq!(v["evidence"], Value::Null);
        assert_eq!(
            v["error"],
            json!({"code": "NOT_FOUND_IN_TENANT", "message": "no invoice", "retryable": false, "airlock_code": "not_found", "details": {"x": 1}})
        );
        assert_eq!(v["_meta"]["principal"], "agent_17");
    }

    #[test]
    fn an_unknown_tool_has_only_the_canonical_name_in_meta() {
        let o = Outcome::failed(
            "db.execute_sql",
            None,
            None,
            ToolError::new("unknown_tool", "no such tool"),
        );
        let v = o.to_json(ResultFormat::V2);
        assert_eq!(
            v["_meta"],
            json!({"canonical_capability": "db.execute_sql"})
        );
        assert_eq!(v["kind"], Value::Null);
        assert_eq!(v["error"]["code"], "CAPABILITY_NOT_FOUND");
    }

    #[test]
    fn every_airlock_code_maps_as_the_table_says() {
        for (ours, theirs, retry) in SAFE_CODES {
            let s = safe_code(&ToolError::new(ours, "m"));
            assert_eq!((s.code.as_ref(), s.retryable), (*theirs, *retry), "{ours}");
            assert_eq!(
                s.retry_after_ms,
                retry.then_some(DEFAULT_RETRY_AFTER_MS),
                "{ours}"
            );
            assert!(
                theirs.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{theirs}"
            );
        }
        let pairs: Vec<(&str, &str, bool)> = SAFE_CODES.to_vec();
        assert!(pairs.contains(&("source_misconfigured", "SOURCE_MISCONFIGURED", false)));
        assert!(pairs.contains(&("not_found", "NOT_FOUND_IN_TENANT", false)));
        assert!(pairs.contains(&("source_timeout", "TEMPORARILY_UNAVAILABLE", true)));
        // Not in the table: uppercased, not retryable.
        let s = safe_code(&ToolError::new("something_new", "m"));
        assert_eq!(
            s,
            SafeCode {
                code: "SOMETHING_NEW".into(),
                retryable: false,
                retry_after_ms: None
            }
        );
    }

    #[test]
    fn executor_refusals_map_by_meaning() {
        let refused = |code: &str| {
            safe_code(
                &ToolError::new("refused_by_executor", "m").with_details(json!({"code": code})),
            )
        };
        for c in ["policy_violation", "tenant_not_allowed"] {
            assert_eq!(refused(c).code, "POLICY_VIOLATION", "{c}");
            assert!(!refused(c).retryable);
        }
        for c in ["busy", "shutting_down"] {
            assert_eq!(refused(c).code, "TEMPORARILY_UNAVAILABLE", "{c}");
            assert_eq!(refused(c).retry_after_ms, Some(DEFAULT_RETRY_AFTER_MS));
        }
        assert_eq!(refused("config_changed").code, "REFUSED_BY_EXECUTOR");
        assert!(!refused("config_changed").retryable);
        // The executor's code matters only for a refusal.
        let other =
            safe_code(&ToolError::new("internal", "m").with_details(json!({"code": "busy"})));
        assert_eq!(other.code, "INTERNAL");
    }

    #[test]
    fn rate_limits_carry_the_executors_wait() {
        let e = ToolError::new("rate_limited", "m").with_details(json!({"retry_after_ms": 2500}));
        assert_eq!(safe_code(&e).retry_after_ms, Some(2500));
        let v = failed("rate_limited", e.details.clone()).to_json(ResultFormat::V2);
        assert_eq!(v["error"]["retry_after_ms"], 2500);
        assert_eq!(v["error"]["retryable"], true);
        // A zero or missing wait falls back to the default.
        let zero = ToolError::new("rate_limited", "m").with_details(json!({"retry_after_ms": 0}));
        assert_eq!(
            safe_code(&zero).retry_after_ms,
            Some(DEFAULT_RETRY_AFTER_MS)
        );
        let v = failed("not_found", None).to_json(ResultFormat::V2);
        assert!(v["error"].get("retry_after_ms").is_none(), "{v}");
    }

    #[test]
    fn v1_read_proposal_and_error_are_synapsors_legacy_shapes() {
        let v = read().to_json(ResultFormat::V1);
        assert_eq!(
            v,
            json!({
                "status": "ok",
                "action": "billing.inspect_invoice",
                "business_object": {"type": "invoices", "id": "INV-3001"},
                "data": {"id": "INV-3001", "late_fee_cents": 5500},
                "trusted_context": {"tenant_id": "acme", "principal": "agent_17", "provenance": "environment"},
                "evidence_bundle_id": "ev_2",
                "source_database_changed": false,
                "source_database_mutated": false,
                "warnings": ["w"],
                "_meta": {"tenant_id": "acme", "principal": "agent_17", "provenance": "environment", "canonical_capability": "billing.inspect_invoice"},
            })
        );
        let v = proposed().to_json(ResultFormat::V1);
        assert_eq!(v["status"], "review_required");
        assert_eq!(v["proposal_id"], "wrp_1");
        assert_eq!(v["proposal_hash"], "sha256:abc");
        assert_eq!(
            v["target"],
            json!({"type": "invoices", "id": "INV-3001", "tenant_id": "acme"})
        );
        assert_eq!(
            v["diff"]["late_fee_cents"],
            json!({"before": 5500, "proposed": 0})
        );
        assert_eq!(v["evidence_bundle_id"], "ev_1");
        assert_eq!(v["approval_required"], true);
        assert_eq!(v["approval"]["required_role"], "billing_lead");
        assert_eq!(
            v["writeback"],
            json!({"status": "not_applied", "mode": "trusted_worker_required", "executor": "sql_update"})
        );
        assert_eq!(v["expires_at"], "2026-01-08T00:00:00Z");
        assert_eq!(v["source_database_mutated"], false);
        assert!(v.get("warnings").is_none() && v.get("ok").is_none(), "{v}");

        let v = failed("not_found", None).to_json(ResultFormat::V1);
        assert_eq!(
            v,
            json!({"ok": false, "code": "ROW_NOT_FOUND", "error": "no invoice", "_meta": {"tenant_id": "acme", "principal": "agent_17", "provenance": "environment", "canonical_capability": "billing.inspect_invoice"}})
        );
        let v =
            failed("rate_limited", Some(json!({"retry_after_ms": 7}))).to_json(ResultFormat::V1);
        assert_eq!(v["code"], "RATE_LIMITED");
        assert_eq!(v["retry_after_ms"], 7);
        assert_eq!(v["details"]["retry_after_ms"], 7);
    }

    #[test]
    fn the_client_docs_list_every_code_mapping() {
        let doc = include_str!("../../docs/mcp-clients.md");
        for (ours, theirs, retry) in SAFE_CODES {
            let row = format!(
                "| `{theirs}` | `{ours}` | {} |",
                if *retry { "yes" } else { "no" }
            );
            assert!(doc.contains(&row), "docs/mcp-clients.md lacks {row}");
        }
        assert!(doc.contains(EVIDENCE_NOTE));
    }

    #[test]
    fn v1_codes_use_synapsors_legacy_names() {
        let code = |c: &'static str| v1_code(&ToolError::new(c, "m"));
        assert_eq!(code("not_found"), "ROW_NOT_FOUND");
        assert_eq!(code("unknown_tool"), "MCP_TOOL_NOT_FOUND");
        assert_eq!(code("invalid_arguments"), "INVALID_ARGUMENTS");
        assert_eq!(code("source_misconfigured"), "SOURCE_MISCONFIGURED");
    }

    #[test]
    fn output_schemas_pin_the_kind_and_the_canonical_name() {
        let read = output_schema("a.read", Kind::Read, ResultFormat::V2);
        assert_eq!(read["type"], "object");
        assert_eq!(read["properties"]["kind"], json!({"const": "read"}));
        assert_eq!(read["properties"]["action"], json!({"const": "a.read"}));
        assert_eq!(read["properties"]["proposal"], json!({"type": "null"}));
        assert_eq!(
            read["properties"]["_meta"]["properties"]["canonical_capability"],
            json!({"const": "a.read"})
        );
        let required: Vec<&str> = read["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            sorted(required),
            sorted(
                V2_KEYS
                    .iter()
                    .copied()
                    .filter(|k| *k != "warnings")
                    .collect()
            )
        );
        let prop = output_schema("a.propose", Kind::Proposal, ResultFormat::V2);
        assert_eq!(prop["properties"]["kind"], json!({"const": "proposal"}));
        assert_eq!(prop["properties"]["data"], json!({"type": "null"}));
        assert_eq!(
            prop["properties"]["proposal"]["anyOf"][1]["required"],
            json!([
                "id",
                "state",
                "target",
                "diff",
                "approval_required",
                "writeback",
                "next"
            ])
        );
        let agg = output_schema("a.total", Kind::AggregateRead, ResultFormat::V2);
        assert_eq!(
            agg["properties"]["kind"],
            json!({"const": "aggregate_read"})
        );
        assert_eq!(agg["properties"]["proposal"], json!({"type": "null"}));
        assert_eq!(
            agg["properties"]["data"]["anyOf"][1],
            airlock_policy::aggregate_read::data_schema()
        );
        let v1 = output_schema("a.read", Kind::Read, ResultFormat::V1);
        assert_eq!(v1["type"], "object");
        assert_eq!(v1["required"], json!(["_meta"]));
        assert_eq!(v1["properties"]["action"], json!({"const": "a.read"}));
    }
}
