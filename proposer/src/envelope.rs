//! The result envelope the model receives from every tool call.
//!
//! Version 2 (default) is one stable shape for every tool, success or not:
//! `ok`, `summary`, `action`, `kind`, `data`, `proposal`, `error`,
//! `evidence`, `source_database_changed`, `warnings` and
//! `_meta.canonical_capability`. Version 1 is the older, flatter shape:
//! the payload's fields at the top level, plus `error` and `_meta`.

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

/// Everything one call produced, before it is shaped for the wire.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub capability: String,
    pub kind: Option<Kind>,
    pub summary: String,
    pub data: Option<Value>,
    pub proposal: Option<Value>,
    pub error: Option<ToolError>,
    pub evidence: Option<Value>,
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn failed(capability: &str, kind: Option<Kind>, error: ToolError) -> Outcome {
        Outcome {
            capability: capability.to_owned(),
            kind,
            summary: error.message.clone(),
            data: None,
            proposal: None,
            error: Some(error),
            evidence: None,
            warnings: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// The envelope in the requested format.
    pub fn to_json(&self, format: ResultFormat) -> Value {
        let error = self.error.as_ref().map(|e| {
            let mut v = json!({"code": e.code, "message": e.message});
            if let Some(d) = &e.details {
                v["details"] = d.clone();
            }
            v
        });
        let meta = json!({"canonical_capability": self.capability});
        match format {
            ResultFormat::V2 => json!({
                "ok": self.ok(),
                "summary": self.summary,
                "action": self.capability,
                "kind": self.kind.map(Kind::as_str),
                "data": self.data,
                "proposal": self.proposal,
                "error": error,
                "evidence": self.evidence,
                "source_database_changed": false,
                "warnings": self.warnings,
                "_meta": meta,
            }),
            ResultFormat::V1 => {
                let mut out = Map::new();
                out.insert("ok".into(), json!(self.ok()));
                if let Some(Value::Object(d)) = &self.data {
                    out.insert("row".into(), Value::Object(d.clone()));
                }
                if let Some(Value::Object(p)) = &self.proposal {
                    out.extend(p.clone());
                }
                if let Some(ev) = self.evidence.as_ref().and_then(|e| e.get("evidence_id")) {
                    out.insert("evidence_id".into(), ev.clone());
                }
                if let Some(e) = error {
                    out.insert("error".into(), e);
                }
                out.insert("source_database_changed".into(), json!(false));
                out.insert("_meta".into(), meta);
                Value::Object(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_has_every_field_even_on_error() {
        let o = Outcome::failed(
            "billing.inspect_invoice",
            Some(Kind::Read),
            ToolError::new("not_found", "no invoice"),
        );
        let v = o.to_json(ResultFormat::V2);
        for key in [
            "ok",
            "summary",
            "action",
            "kind",
            "data",
            "proposal",
            "error",
            "evidence",
            "source_database_changed",
            "_meta",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(
            v["_meta"]["canonical_capability"],
            "billing.inspect_invoice"
        );
        assert_eq!(v["source_database_changed"], false);
    }
}
