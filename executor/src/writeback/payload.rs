//! The `synapsor.handler-writeback.v1` payload that http and command
//! handlers receive, and the strict parsing of the receipt they answer with.
//!
//! A handler gets the executor's own verified change set (never the
//! proposer's submission) and must answer with one terminal receipt:
//!
//! ```json
//! {"status": "applied" | "already_applied" | "conflict" | "failed",
//!  "rows_affected": 1, "previous_version": "…", "new_version": "…",
//!  "safe_error_code": "VERSION_CONFLICT", "message": "…"}
//! ```
//!
//! `dry_run` is `false` on every apply the executor makes today. A handler
//! that gets `true` must run every check and change nothing, and never
//! answer `applied` (the templates answer `failed` / `DRY_RUN_OK`).
//!
//! Receipt rules (a receipt that breaks one is `HANDLER_BAD_RECEIPT`):
//! * the body is one JSON object (duplicate keys refused); `status` is
//!   required; unknown fields are ignored (room for handler-side ids);
//! * `rows_affected` is a non-negative integer; `applied` may not say 0,
//!   and `conflict` / `failed` may not say more than 0 (they changed nothing);
//! * `previous_version` / `new_version` are scalars (strings ≤ 256 chars);
//! * `safe_error_code` is 1–64 chars of `[A-Z0-9_]`; `message` ≤ 500 chars;
//! * no version or code may look like a credential (the ledger would refuse
//!   the receipt); secret-looking text in `message` is withheld;
//! * whatever a handler answers, no field of the outcome that reaches the
//!   ledger, the log or the operator (versions, code, detail) may hold one
//!   of the handler's own secrets — its URL or any part of it, its token, its
//!   signing secret, a command's arguments — in any form (as given,
//!   percent-decoded or percent-encoded): such a field is withheld and the
//!   detail says which ([`withhold_known`]);
//! * `idempotency_key`, when echoed, must be the job's key.
//!
//! Mapping to [`Outcome`]: `applied` → the source changed now
//! (`source_database_mutated: true`, rows default 1); `already_applied` →
//! the change exists, made by an earlier attempt, so *this* attempt changed
//! nothing (`source_database_mutated: false`, rows 0); `conflict` and
//! `failed` changed nothing (codes default to `HANDLER_CONFLICT` /
//! `HANDLER_FAILED`).

use airlock_policy::secrets::{classify, contains_known, find_known, find_secrets, redact};
use serde_json::{Map, Value, json};

use super::{Outcome, ReceiptStatus, WritebackJob};

/// The payload's schema version.
pub const HANDLER_SCHEMA_VERSION: &str = "synapsor.handler-writeback.v1";
/// Largest receipt body read from a handler.
pub const MAX_RECEIPT_BYTES: usize = 64 * 1024;
/// Longest `message` in a receipt.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Longest `safe_error_code` in a receipt.
pub const MAX_CODE_CHARS: usize = 64;
/// Longest string version value in a receipt.
pub const MAX_VERSION_CHARS: usize = 256;
const MAX_RECEIPT_DEPTH: usize = 16;

/// Build the payload a handler receives for `job`.
pub fn handler_payload(job: &WritebackJob, dry_run: bool) -> Value {
    let cs = &job.change_set;
    let business_object = cs
        .target
        .table
        .strip_suffix('s')
        .filter(|s| !s.is_empty())
        .unwrap_or(&cs.target.table);
    let mut guards = json!({
        "tenant": cs.guards.tenant,
        "allowed_columns": cs.guards.allowed_columns,
        "expected_version": cs.guards.expected_version,
        "transitions": cs.guards.transitions,
    });
    if let Some(hash) = &cs.guards.row_hash {
        guards["row_hash"] = json!(hash);
    }
    if let Some(p) = &cs.guards.principal {
        guards["principal"] = json!(p);
    }
    if !cs.guards.deduplication.is_empty() {
        // The identity as the row must hold it: the proposal id filled in.
        let identity: Vec<Value> = cs
            .guards
            .deduplication
            .iter()
            .map(|d| {
                json!({
                    "column": d.column,
                    "source": d.source,
                    "value": d.value.clone().unwrap_or_else(|| json!(job.proposal_id)),
                })
            })
            .collect();
        guards["deduplication"] = json!(identity);
    }
    let mut payload = json!({
        "schema_version": HANDLER_SCHEMA_VERSION,
        "writeback_job_id": job.job_id,
        "proposal_id": job.proposal_id,
        "idempotency_key": job.idempotency_key,
        "executor": job.executor,
        "dry_run": dry_run,
        "attempt": job.attempt,
        "proposal_hash": job.proposal_hash,
        "capability": job.capability,
        "change_set": {
            "scope": {
                "tenant_id": cs.tenant_id,
                "business_object": business_object,
                "object_id": cs.object_id(),
            },
            "principal": { "id": cs.principal },
            "target": cs.target,
            "before": cs.before,
            "patch": cs.patch,
            "after": cs.after,
            "guards": guards,
            "evidence": { "bundle_id": job.evidence_id },
        },
        // What the handler must do: `update`, `insert` or `delete`, of one
        // row or of the frozen set below.
        "operation": {
            "kind": cs.operation.as_str(),
            "cardinality": if cs.set.is_some() { "set" } else { "single" },
        },
    });
    let c = &mut payload["change_set"];
    if !cs.apply_time.is_empty() {
        c["apply_time"] = json!(cs.apply_time);
    }
    if let Some(set) = &cs.set {
        c["set"] = json!(set);
    }
    payload
}

/// A handler's receipt, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerReceipt {
    pub status: ReceiptStatus,
    pub rows_affected: Option<u64>,
    pub previous_version: Option<Value>,
    pub new_version: Option<Value>,
    pub safe_error_code: Option<String>,
    pub message: Option<String>,
    /// Echoed by the handler, if it chose to.
    pub idempotency_key: Option<String>,
}

/// Strictly parse a handler's receipt body. The error never quotes the body.
pub fn parse_receipt(body: &[u8]) -> Result<HandlerReceipt, String> {
    if body.len() > MAX_RECEIPT_BYTES {
        return Err(format!(
            "the receipt is over {} KiB",
            MAX_RECEIPT_BYTES / 1024
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the receipt is empty".to_owned());
    }
    let value = airlock_policy::strict_json::parse(body, MAX_RECEIPT_DEPTH)
        .map_err(|e| format!("the receipt is not valid JSON ({})", first_line(&e)))?;
    let Value::Object(obj) = value else {
        return Err("the receipt must be a JSON object".to_owned());
    };
    let status = match obj.get("status") {
        None => return Err("the receipt has no `status`".to_owned()),
        Some(Value::String(s)) => ReceiptStatus::parse(s).ok_or_else(|| {
            "`status` must be applied, already_applied, conflict or failed".to_owned()
        })?,
        Some(_) => return Err("`status` must be a string".to_owned()),
    };
    let rows_affected = match obj.get("rows_affected") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("`rows_affected` must be a non-negative integer")?,
        ),
    };
    match (status, rows_affected) {
        (ReceiptStatus::Applied, Some(0)) => {
            return Err("`applied` with `rows_affected: 0` contradicts itself".to_owned());
        }
        (ReceiptStatus::Conflict | ReceiptStatus::Failed, Some(n)) if n > 0 => {
            return Err(format!(
                "`{}` with `rows_affected: {n}` contradicts itself (it must change nothing)",
                status.as_str()
            ));
        }
        _ => {}
    }
    let previous_version = version_field(&obj, "previous_version")?;
    let new_version = version_field(&obj, "new_version")?;
    let safe_error_code = match obj.get("safe_error_code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_safe_code(s) && classify(s).is_none() => Some(s.clone()),
        Some(_) => {
            return Err(format!(
                "`safe_error_code` must be 1 to {MAX_CODE_CHARS} characters of A-Z, 0-9 and _"
            ));
        }
    };
    let message = match obj.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_MESSAGE_CHARS => Some(s.clone()),
        Some(_) => {
            return Err(format!(
                "`message` must be a string of at most {MAX_MESSAGE_CHARS} characters"
            ));
        }
    };
    let idempotency_key = match obj.get("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`idempotency_key` must be a string".to_owned()),
    };
    Ok(HandlerReceipt {
        status,
        rows_affected,
        previous_version,
        new_version,
        safe_error_code,
        message,
        idempotency_key,
    })
}

fn version_field(obj: &Map<String, Value>, key: &str) -> Result<Option<Value>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_VERSION_CHARS => Err(format!(
            "`{key}` is longer than {MAX_VERSION_CHARS} characters"
        )),
        Some(Value::String(s)) if classify(s).is_some() => Err(format!(
            "`{key}` looks like a credential; a version must be a plain value"
        )),
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Ok(Some(v.clone())),
        Some(_) => Err(format!("`{key}` must be a string, number or boolean")),
    }
}

/// `[A-Z0-9_]{1,64}`.
pub fn is_safe_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CODE_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl HandlerReceipt {
    /// The outcome this receipt stands for. `known_secrets` are scrubbed
    /// from the handler's message.
    pub fn into_outcome(self, known_secrets: &[String]) -> Outcome {
        let detail = self
            .message
            .as_deref()
            .map(|m| safe_text(m, known_secrets, MAX_MESSAGE_CHARS))
            .filter(|m| !m.is_empty());
        let (rows_affected, mutated, default_code) = match self.status {
            ReceiptStatus::Applied => (self.rows_affected.unwrap_or(1), true, None),
            ReceiptStatus::AlreadyApplied => (0, false, None),
            ReceiptStatus::Conflict => (0, false, Some("HANDLER_CONFLICT")),
            ReceiptStatus::Failed => (0, false, Some("HANDLER_FAILED")),
        };
        Outcome {
            status: self.status,
            rows_affected,
            previous_version: self.previous_version,
            new_version: self.new_version,
            source_database_mutated: mutated,
            safe_error_code: self
                .safe_error_code
                .or_else(|| default_code.map(str::to_owned)),
            detail,
        }
    }
}

/// Parse a receipt for `job` and map it, or explain why it is unusable.
/// Used by both handler kinds.
pub(crate) fn receipt_for_job(body: &[u8], job: &WritebackJob) -> Result<HandlerReceipt, String> {
    let receipt = parse_receipt(body)?;
    match &receipt.idempotency_key {
        Some(k) if *k != job.idempotency_key => Err(
            "the receipt's `idempotency_key` is not this job's; it answers another change"
                .to_owned(),
        ),
        _ => Ok(receipt),
    }
}

/// Make handler-provided text safe for the ledger and the operator: known
/// secret values become `[REDACTED]`, secret-looking words and lines are
/// withheld (so the ledger's secret detector never refuses the receipt),
/// control characters become spaces, and the result keeps at most
/// `max_chars` characters (the tail, where errors usually are).
pub fn safe_text(text: &str, known_secrets: &[String], max_chars: usize) -> String {
    let redacted = redact(text, known_secrets);
    let mut lines: Vec<String> = Vec::new();
    for line in redacted.lines() {
        let words: Vec<String> = line
            .split(' ')
            .map(|w| {
                if classify(w).is_some() {
                    "[REDACTED]".to_owned()
                } else {
                    w.to_owned()
                }
            })
            .collect();
        let line = words.join(" ");
        let line = match classify(&line) {
            Some(kind) => format!("[line withheld: it looked like {}]", kind.describe()),
            None => line,
        };
        let line: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        lines.push(line);
    }
    let joined = lines.join("\n");
    let joined = joined.trim();
    let count = joined.chars().count();
    let out = if count > max_chars {
        let tail: String = joined.chars().skip(count - max_chars).collect();
        format!("…{tail}")
    } else {
        joined.to_owned()
    };
    // The joins above could in principle assemble a pattern again.
    match classify(&out) {
        Some(kind) => format!("[withheld: it looked like {}]", kind.describe()),
        None => out,
    }
}

/// What a withheld version value becomes.
pub const WITHHELD_VALUE: &str = "[withheld: it held a handler secret or looked like a credential]";

/// The last check on everything a handler's answer put into an outcome:
/// each field (the version values, the code, the detail) that holds one of
/// the `known` secrets in any form, or looks like a credential, is withheld,
/// and the detail records which fields were. Handler modules return only
/// outcomes that went through here.
pub fn withhold_known(mut o: Outcome, known: &[String]) -> Outcome {
    let tainted = |v: &Value| !find_known(v, known).is_empty() || !find_secrets(v).is_empty();
    let mut withheld: Vec<&str> = Vec::new();
    for (name, field) in [
        ("previous_version", &mut o.previous_version),
        ("new_version", &mut o.new_version),
    ] {
        if field.as_ref().is_some_and(tainted) {
            *field = Some(Value::String(WITHHELD_VALUE.to_owned()));
            withheld.push(name);
        }
    }
    if o.safe_error_code
        .as_deref()
        .is_some_and(|c| contains_known(c, known) || classify(c).is_some())
    {
        o.safe_error_code = Some("WITHHELD".to_owned());
        withheld.push("safe_error_code");
    }
    if let Some(d) = o.detail.take() {
        let d = redact(&d, known);
        o.detail = Some(if tainted(&Value::String(d.clone())) {
            withheld.push("detail");
            "[withheld]".to_owned()
        } else {
            d
        });
    }
    if !withheld.is_empty() {
        let note = format!(
            "withheld from this receipt: {} (a handler secret or credential-like text)",
            withheld.join(", ")
        );
        o.detail = Some(match o.detail.take() {
            Some(d) if !d.is_empty() && d != "[withheld]" => format!("{d}\n{note}"),
            _ => note,
        });
    }
    o
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_field_holding_a_known_secret_is_withheld() {
        let mut known = airlock_policy::secrets::url_secrets("https://u:p%40ss99@h/x");
        known.push("TOKEN_9911".to_owned());
        let o = Outcome {
            status: ReceiptStatus::Failed,
            rows_affected: 0,
            previous_version: Some(json!("v1-p@ss99")),
            new_version: Some(json!(7)),
            source_database_mutated: false,
            safe_error_code: Some("E_TOKEN_9911".to_owned()),
            detail: Some("raw p%40ss99 decoded p@ss99".to_owned()),
        };
        let o = withhold_known(o, &known);
        assert_eq!(o.previous_version, Some(json!(WITHHELD_VALUE)));
        assert_eq!(o.new_version, Some(json!(7)));
        assert_eq!(o.safe_error_code.as_deref(), Some("WITHHELD"));
        let detail = o.detail.unwrap();
        assert!(
            !detail.contains("p@ss99") && !detail.contains("p%40ss99"),
            "{detail}"
        );
        assert!(
            detail.ends_with("withheld from this receipt: previous_version, safe_error_code (a handler secret or credential-like text)"),
            "{detail}"
        );
        // Nothing to withhold: unchanged.
        let clean = Outcome::failed("HANDLER_TIMEOUT", "no answer");
        assert_eq!(withhold_known(clean.clone(), &known), clean);
    }

    #[test]
    fn parses_minimal_and_full_receipts() {
        let r = parse_receipt(br#"{"status":"applied"}"#).unwrap();
        assert_eq!(r.status, ReceiptStatus::Applied);
        let o = r.into_outcome(&[]);
        assert!(o.source_database_mutated);
        assert_eq!(o.rows_affected, 1);

        let r = parse_receipt(
            br#"{"status":"conflict","rows_affected":0,"previous_version":"v1","new_version":7,
                "safe_error_code":"VERSION_CONFLICT","message":"row moved","extra":{"a":1}}"#,
        )
        .unwrap();
        let o = r.into_outcome(&[]);
        assert_eq!(o.status, ReceiptStatus::Conflict);
        assert!(!o.source_database_mutated);
        assert_eq!(o.safe_error_code.as_deref(), Some("VERSION_CONFLICT"));
        assert_eq!(o.new_version, Some(json!(7)));
        assert_eq!(o.detail.as_deref(), Some("row moved"));

        let o = parse_receipt(br#"{"status":"already_applied","rows_affected":1}"#)
            .unwrap()
            .into_outcome(&[]);
        assert_eq!((o.rows_affected, o.source_database_mutated), (0, false));
        let o = parse_receipt(br#"{"status":"failed"}"#)
            .unwrap()
            .into_outcome(&[]);
        assert_eq!(o.safe_error_code.as_deref(), Some("HANDLER_FAILED"));
    }

    #[test]
    fn refuses_bad_receipts() {
        for body in [
            &b""[..],
            b"  ",
            b"not json",
            b"[]",
            b"{}",
            br#"{"status":"done"}"#,
            br#"{"status":1}"#,
            br#"{"status":"applied","status":"failed"}"#,
            br#"{"status":"applied","rows_affected":-1}"#,
            br#"{"status":"applied","rows_affected":0}"#,
            br#"{"status":"conflict","rows_affected":1}"#,
            br#"{"status":"failed","safe_error_code":"lower"}"#,
            br#"{"status":"failed","safe_error_code":""}"#,
            br#"{"status":"applied","new_version":{"a":1}}"#,
            br#"{"status":"applied"} trailing"#,
            br#"{"status":"applied","new_version":"postgres://u:p@h/db"}"#,
            br#"{"status":"failed","safe_error_code":"AKIAABCDEFGHIJKLMNOPQR"}"#,
        ] {
            assert!(
                parse_receipt(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(r#"{{"status":"failed","message":"{}"}}"#, "x".repeat(501));
        assert!(parse_receipt(long.as_bytes()).is_err());
        let code = format!(
            r#"{{"status":"failed","safe_error_code":"{}"}}"#,
            "A".repeat(65)
        );
        assert!(parse_receipt(code.as_bytes()).is_err());
        let big = vec![b' '; MAX_RECEIPT_BYTES + 1];
        assert!(parse_receipt(&big).is_err());
    }

    #[test]
    fn parse_errors_do_not_quote_the_body() {
        let err = parse_receipt(br#"{"status":"hunter2-secret"}"#).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_receipt(b"hunter2-secret").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn safe_text_scrubs_and_truncates() {
        let out = safe_text(
            "boom tok3n-value at postgres://app:pw@db/x\nAuthorization: Bearer abcdefghijklmnopqrstuvwxyz\nend",
            &["tok3n-value".to_owned()],
            500,
        );
        assert!(!out.contains("tok3n-value"), "{out}");
        assert!(!out.contains("app:pw"), "{out}");
        assert!(!out.contains("abcdefghijklmnop"), "{out}");
        assert!(out.ends_with("end"), "{out}");
        let long = "a".repeat(3000) + "TAIL";
        let out = safe_text(&long, &[], 100);
        assert_eq!(out.chars().count(), 101);
        assert!(out.ends_with("TAIL"));
    }
}
