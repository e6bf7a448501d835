//! The writeback job and execution receipt as exported objects, in the
//! field names and meaning of `synapsor.writeback-job.v1` and
//! `synapsor.execution-receipt.v1`.

use airlock_policy::canonical::hash_value;
use airlock_policy::config::Engine;
use serde_json::{Value, json};

use super::sql_update::RUNNER_ID;
use super::{Outcome, WritebackJob};

/// The `synapsor.writeback-job.v1` object for a job.
pub fn job_json(job: &WritebackJob, lease_expires_at: &str) -> Value {
    let cs = &job.change_set;
    let conflict_guard = match (&cs.guards.expected_version, &cs.guards.row_hash) {
        (Some(v), _) => json!({"kind": "column", "column": v.column, "expected_value": v.value}),
        (None, Some(h)) => json!({"kind": "row_hash", "expected_hash": h}),
        (None, None) => json!({"kind": "none"}),
    };
    let mut job_v1 = json!({
        "schema_version": "synapsor.writeback-job.v1",
        "writeback_job_id": job.job_id,
        "proposal_id": job.proposal_id,
        "proposal_version": 1,
        "proposal_hash": job.proposal_hash,
        "runner_scope": {"project_id": job.capability.split('.').next().unwrap_or("airlock"), "source_id": job.source_id},
        "engine": job.engine.as_str(),
        "operation": match cs.set {
            Some(_) => format!("set_{}", cs.operation.as_str()),
            None => format!("single_row_{}", cs.operation.as_str()),
        },
        "target": {"schema": cs.target.schema, "table": cs.target.table, "primary_key": cs.target.primary_key},
        "tenant_guard": cs.guards.tenant,
        "allowed_columns": cs.guards.allowed_columns,
        "patch": cs.patch,
        "conflict_guard": conflict_guard,
        "idempotency_key": job.idempotency_key,
        "lease": {"lease_id": format!("lease_{}", job.job_id.trim_start_matches("wbj_")), "attempt": job.attempt, "expires_at": lease_expires_at},
    });
    // The principal scope the job holds, only for principal-scoped changes.
    if let (Some(p), Some(obj)) = (&cs.guards.principal, job_v1.as_object_mut()) {
        obj.insert("principal_scope_guard".into(), json!(p));
    }
    // A bounded set's frozen members, as Runner's `frozen_set`.
    if let (Some(set), Some(obj)) = (&cs.set, job_v1.as_object_mut()) {
        obj.insert("frozen_set".into(), json!(set));
    }
    job_v1
}

/// The `synapsor.execution-receipt.v1` object for an outcome, with its
/// `receipt_hash` (sha256 of the canonical receipt without the hash).
pub fn receipt_json(job: &WritebackJob, outcome: &Outcome, executed_at: &str) -> Value {
    let mut r = json!({
        "schema_version": "synapsor.execution-receipt.v1",
        "writeback_job_id": job.job_id,
        "proposal_id": job.proposal_id,
        "runner_id": RUNNER_ID,
        "status": outcome.status.as_str(),
        "rows_affected": outcome.rows_affected,
        "idempotency_key": job.idempotency_key,
        "previous_version": outcome.previous_version,
        "new_version": outcome.new_version,
        "source_database_mutated": outcome.source_database_mutated,
        "executed_at": executed_at,
    });
    if let (Some(code), Some(obj)) = (&outcome.safe_error_code, r.as_object_mut()) {
        obj.insert("safe_error_code".into(), Value::String(code.clone()));
    }
    let hash = hash_value(&r);
    if let Some(obj) = r.as_object_mut() {
        obj.insert("receipt_hash".into(), Value::String(hash));
    }
    r
}

/// The `result_hash` of a source receipt row: `sha256:` of the canonical
/// JSON `{"job_id", "status", "version"}` (`version` left out when there is
/// none), the fields Synapsor Runner hashes into its `result_hash`. Binds the
/// row to the job and the version it wrote.
pub fn result_hash(job_id: &str, status: &str, version: Option<&Value>) -> String {
    let mut v = json!({"job_id": job_id, "status": status});
    if let (Some(version), Some(obj)) = (version, v.as_object_mut()) {
        obj.insert("version".into(), version.clone());
    }
    hash_value(&v)
}

/// `external_postgres` / `external_mysql` / `external_sqlite`.
pub fn source_kind(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "external_postgres",
        Engine::Mysql => "external_mysql",
        Engine::Sqlite => "external_sqlite",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_policy::canonical::sha256_tagged;

    /// The hash is of the JSON text Synapsor Runner hashes
    /// (`JSON.stringify({job_id, status, version})`), keys in that order.
    #[test]
    fn result_hash_is_sha256_of_job_status_and_version() {
        assert_eq!(
            result_hash("wbj_1", "applied", Some(&json!(7))),
            sha256_tagged(br#"{"job_id":"wbj_1","status":"applied","version":7}"#)
        );
        assert_eq!(
            result_hash(
                "wbj_1",
                "applied",
                Some(&json!("2026-06-21T09:14:02.123456Z"))
            ),
            sha256_tagged(
                br#"{"job_id":"wbj_1","status":"applied","version":"2026-06-21T09:14:02.123456Z"}"#
            )
        );
        assert_eq!(
            result_hash("wbj_1", "applied", None),
            sha256_tagged(br#"{"job_id":"wbj_1","status":"applied"}"#)
        );
        // Each field counts: another job, status or version is another hash.
        let h = result_hash("wbj_1", "applied", Some(&json!(7)));
        assert_ne!(h, result_hash("wbj_2", "applied", Some(&json!(7))));
        assert_ne!(h, result_hash("wbj_1", "conflict", Some(&json!(7))));
        assert_ne!(h, result_hash("wbj_1", "applied", Some(&json!(8))));
        assert!(h.len() <= 128, "fits Synapsor's varchar(128)");
    }
}
