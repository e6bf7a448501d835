//! Checking a tool result against the tool's declared `outputSchema`, and
//! against Synapsor's result envelope v2 key for key.
//!
//! The checker implements the JSON Schema keywords the proposer's schemas
//! use (`type`, `required`, `properties`, `additionalProperties`, `items`,
//! `enum`, `const`, `anyOf`, `description`) and refuses any other keyword,
//! so a schema can never pass by using something unchecked.

use serde_json::{Map, Value};

/// Every place `value` breaks `schema`, as `path: reason` (empty: valid).
pub fn violations(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, value, "$", &mut out);
    out
}

/// Panic with every violation if `value` does not match `schema`.
pub fn assert_valid(schema: &Value, value: &Value) {
    let v = violations(schema, value);
    assert!(
        v.is_empty(),
        "the result does not match the declared outputSchema:\n  {}\nresult: {value}",
        v.join("\n  ")
    );
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        other => panic!("unknown JSON Schema type {other:?}"),
    }
}

fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        panic!("a schema at {path} is not an object: {schema}");
    };
    for key in schema.keys() {
        assert!(
            matches!(
                key.as_str(),
                "type"
                    | "required"
                    | "properties"
                    | "additionalProperties"
                    | "items"
                    | "enum"
                    | "const"
                    | "anyOf"
                    | "description"
            ),
            "the schema at {path} uses `{key}`, which this checker does not implement"
        );
    }
    if let Some(ty) = schema.get("type") {
        let ok = match ty {
            Value::String(t) => type_matches(t, value),
            Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), value)),
            other => panic!("bad `type` at {path}: {other}"),
        };
        if !ok {
            out.push(format!("{path}: expected type {ty}, got {value}"));
            return;
        }
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        out.push(format!("{path}: expected {c}, got {value}"));
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        out.push(format!("{path}: {value} is not one of {options:?}"));
    }
    if let Some(Value::Array(any)) = schema.get("anyOf")
        && !any.iter().any(|s| violations(s, value).is_empty())
    {
        out.push(format!("{path}: {value} matches none of anyOf"));
    }
    if let Value::Object(obj) = value {
        check_object(schema, obj, path, out);
    }
    if let (Some(items), Value::Array(arr)) = (schema.get("items"), value) {
        for (i, v) in arr.iter().enumerate() {
            check(items, v, &format!("{path}[{i}]"), out);
        }
    }
}

fn check_object(
    schema: &Map<String, Value>,
    obj: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    if let Some(Value::Array(required)) = schema.get("required") {
        for r in required {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                out.push(format!("{path}: required key `{r}` is missing"));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in obj {
        let sub = format!("{path}.{k}");
        match props.and_then(|p| p.get(k)) {
            Some(s) => check(s, v, &sub, out),
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => out.push(format!("{sub}: not allowed")),
                Some(Value::Bool(true)) | None => {}
                Some(s) => check(s, v, &sub, out),
            },
        }
    }
}

/// Whether `code` is UPPER_SNAKE_CASE.
pub fn is_upper_snake(code: &str) -> bool {
    !code.is_empty()
        && !code.starts_with('_')
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The keys of Synapsor's result envelope v2 (Airlock adds only `warnings`).
pub const V2_KEYS: &[&str] = &[
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
];

/// Synapsor's v2 rules that hold for every envelope, success or failure:
/// every key present, `ok` the branch point, exactly one of `data` and
/// `proposal` on success and neither on failure, `error` present exactly
/// on failure with an UPPER_SNAKE_CASE code and a boolean `retryable`,
/// `evidence.bundle_id` an `ev_` handle, `_meta` naming the canonical
/// capability and the trusted context.
pub fn assert_v2_envelope(env: &Value, canonical: &str) {
    let obj = env
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {env}"));
    for key in V2_KEYS {
        assert!(obj.contains_key(*key), "`{key}` missing: {env}");
    }
    for key in obj.keys() {
        assert!(
            V2_KEYS.contains(&key.as_str()) || key == "warnings",
            "unexpected top-level key `{key}`: {env}"
        );
    }
    assert!(
        env["summary"].as_str().is_some_and(|s| !s.is_empty()),
        "{env}"
    );
    assert_eq!(env["action"], canonical, "{env}");
    assert_eq!(env["source_database_changed"], false, "{env}");
    assert_eq!(env["_meta"]["canonical_capability"], canonical, "{env}");
    for key in ["tenant_id", "principal", "provenance"] {
        assert!(env["_meta"][key].is_string(), "_meta.{key}: {env}");
    }
    match env["ok"].as_bool() {
        Some(true) => {
            assert!(env["error"].is_null(), "{env}");
            assert!(
                env["data"].is_null() != env["proposal"].is_null(),
                "exactly one of data and proposal on success: {env}"
            );
        }
        Some(false) => {
            assert!(env["data"].is_null() && env["proposal"].is_null(), "{env}");
            let e = &env["error"];
            let code = e["code"].as_str().unwrap_or_default();
            assert!(
                is_upper_snake(code),
                "error.code {code:?} is UPPER_SNAKE_CASE: {env}"
            );
            assert!(
                e["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{env}"
            );
            assert!(e["retryable"].is_boolean(), "error.retryable: {env}");
            assert_eq!(
                e["retryable"] == true,
                e["retry_after_ms"].is_u64(),
                "retry_after_ms exactly when retryable: {env}"
            );
        }
        None => panic!("`ok` is not a boolean: {env}"),
    }
    if !env["evidence"].is_null() {
        assert!(
            env["evidence"]["bundle_id"]
                .as_str()
                .is_some_and(|b| b.starts_with("ev_")),
            "{env}"
        );
        assert!(env["evidence"]["note"].is_string(), "{env}");
    }
}
