//! Reviewed dependency rows (`proposal_freshness`): read when the executor
//! records a proposal (their versions go into the proposal's record),
//! re-read before every approval, and locked and re-checked inside the
//! apply transaction right after the target row's guards pass.
//!
//! The rows are found exactly as their read capabilities find them (key
//! and trusted tenant), with the source's write connection; the SQL comes
//! from `airlock_policy::freshness`.

use airlock_ipc::message::DependencyVersion;
use airlock_policy::config::{Capability, Config, Engine, Source, Target};
use airlock_policy::freshness::{
    DependencyRow, DependencyState, dependency_select, identifiers_are_safe, judge_dependency,
    lock_order,
};
use airlock_policy::secrets::redact;
use airlock_policy::statement::{BoundStatement, WriteDialect};
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::sql_update::WritePools;
use super::{Outcome, ReceiptStatus};

/// One dependency's locking SELECT, built before the apply transaction
/// (it needs the key column's type) and run inside it.
#[derive(Debug, Clone)]
pub struct LockedDependency {
    pub id: String,
    pub statement: BoundStatement,
    pub version: Option<String>,
}

fn target_of(d: &DependencyVersion) -> Target {
    Target {
        schema: d.schema.clone(),
        table: d.table.clone(),
        primary_key: d.primary_key.clone(),
        tenant_key: d.tenant_key.clone(),
        // The loader refuses a principal-scoped dependency read.
        principal_scope_key: None,
    }
}

/// The SELECT for one stored dependency, with the key column's type.
async fn statement(
    pools: &WritePools,
    conn: &mut AnyConnection,
    source_id: &str,
    engine: Engine,
    config: &Config,
    d: &DependencyVersion,
    lock: bool,
) -> Result<BoundStatement, String> {
    let target = target_of(d);
    let row = DependencyRow {
        target: &target,
        key: &d.key,
        version_column: &d.version_column,
        tenant: None,
    };
    if !identifiers_are_safe(&row) {
        return Err(format!("dependency `{}` names an unsafe identifier", d.id));
    }
    let read: &Capability = config
        .defined_capability(&d.capability)
        .filter(|c| {
            c.target.schema == target.schema
                && c.target.table == target.table
                && c.target.primary_key == target.primary_key
                && c.target.tenant_key == target.tenant_key
        })
        .ok_or_else(|| {
            format!(
                "dependency `{}`: its read capability `{}` no longer finds the recorded table",
                d.id, d.capability
            )
        })?;
    let types = pools
        .column_types(conn, source_id, engine, read)
        .await
        .map_err(|e| format!("cannot read the column types of `{}`: {e}", d.table))?;
    let column_type = |c: &str| types.get(c).cloned();
    let dialect = WriteDialect {
        engine,
        column_type: &column_type,
    };
    Ok(dependency_select(&dialect, &row, lock))
}

/// Fill in the trusted tenant (a bind without a column).
fn with_tenant(mut stmt: BoundStatement, tenant: &str) -> BoundStatement {
    for b in stmt.binds.iter_mut().filter(|b| b.column.is_none()) {
        b.value = Value::String(tenant.to_owned());
    }
    stmt
}

async fn version_of(
    conn: &mut AnyConnection,
    engine: Engine,
    stmt: &BoundStatement,
) -> Result<Option<Option<String>>, sqlx::Error> {
    let row = sqlx::query_with(
        sqlx::AssertSqlSafe(stmt.sql.clone()),
        super::sql_update::arguments(engine, stmt, &Default::default())?,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()
}

/// Read each configured dependency row of a new proposal of `cap` (its
/// key from the proposal argument the config names): the versions the
/// proposal is recorded with. `Err`: why a row could not be read or does
/// not exist; the proposal is then refused.
pub async fn capture(
    pools: &WritePools,
    config: &Config,
    cap: &Capability,
    args: &serde_json::Map<String, Value>,
    tenant: &str,
) -> Result<Vec<DependencyVersion>, String> {
    let Some(f) = config.proposal_freshness.get(&cap.name) else {
        return Ok(Vec::new());
    };
    if f.dependencies.is_empty() {
        return Ok(Vec::new());
    }
    let source = config
        .source_for(cap)
        .ok_or_else(|| format!("source `{}` is not configured", cap.source))?;
    let (mut conn, secrets) = super::sql_update::connect_reader(pools, &cap.source, source).await?;
    let mut out = Vec::new();
    for dep in &f.dependencies {
        let read = config.defined_capability(&dep.capability).ok_or_else(|| {
            format!(
                "dependency `{}`: no capability `{}`",
                dep.id, dep.capability
            )
        })?;
        let key = args.get(&dep.identity_from_arg).cloned().ok_or_else(|| {
            format!(
                "dependency `{}` needs the argument `{}`, which the proposal does not give",
                dep.id, dep.identity_from_arg
            )
        })?;
        let mut record = DependencyVersion {
            id: dep.id.clone(),
            capability: dep.capability.clone(),
            schema: read.target.schema.clone(),
            table: read.target.table.clone(),
            primary_key: read.target.primary_key.clone(),
            tenant_key: read.target.tenant_key.clone(),
            key,
            version_column: dep.version_column.clone(),
            version: None,
        };
        let stmt = statement(
            pools,
            &mut conn,
            &cap.source,
            source.engine,
            config,
            &record,
            false,
        )
        .await
        .map(|s| with_tenant(s, tenant))?;
        let found = version_of(&mut conn, source.engine, &stmt)
            .await
            .map_err(|e| {
                redact(
                    &format!("cannot read dependency `{}`: {e}", dep.id),
                    &secrets,
                )
            })?;
        match found {
            Some(v) => record.version = v,
            None => {
                return Err(format!(
                    "dependency `{}`: no row in `{}` with that key for this tenant; nothing was proposed",
                    dep.id, dep.capability
                ));
            }
        }
        out.push(record);
    }
    Ok(out)
}

/// Re-read every recorded dependency row now (before an approval, or for
/// `check_freshness`). `Err`: the source could not be read.
pub async fn check(
    pools: &WritePools,
    config: &Config,
    source_id: &str,
    source: &Source,
    deps: &[DependencyVersion],
    tenant: &str,
) -> Result<Vec<(String, DependencyState)>, String> {
    if deps.is_empty() {
        return Ok(Vec::new());
    }
    let (mut conn, secrets) = super::sql_update::connect_reader(pools, source_id, source).await?;
    let mut out = Vec::new();
    for d in deps {
        let stmt = statement(pools, &mut conn, source_id, source.engine, config, d, false)
            .await
            .map(|s| with_tenant(s, tenant))?;
        let found = version_of(&mut conn, source.engine, &stmt)
            .await
            .map_err(|e| {
                redact(
                    &format!("cannot re-read dependency `{}`: {e}", d.id),
                    &secrets,
                )
            })?;
        let state = judge_dependency(d.version.as_deref(), found.as_ref().map(|v| v.as_deref()));
        out.push((d.id.clone(), state));
    }
    Ok(out)
}

/// The locking SELECTs of an apply, in lock order (schema, table, key).
pub async fn prepare(
    pools: &WritePools,
    config: &Config,
    source_id: &str,
    source: &Source,
    deps: &[DependencyVersion],
    tenant: &str,
) -> Result<Vec<LockedDependency>, String> {
    if deps.is_empty() {
        return Ok(Vec::new());
    }
    let (mut conn, _) = super::sql_update::connect_reader(pools, source_id, source).await?;
    let mut sorted: Vec<&DependencyVersion> = deps.iter().collect();
    lock_order(&mut sorted, |d| {
        (
            d.schema.clone(),
            d.table.clone(),
            airlock_policy::change_set::scalar_text(&d.key),
        )
    });
    let mut out = Vec::new();
    for d in sorted {
        let stmt = statement(pools, &mut conn, source_id, source.engine, config, d, true)
            .await
            .map(|s| with_tenant(s, tenant))?;
        out.push(LockedDependency {
            id: d.id.clone(),
            statement: stmt,
            version: d.version.clone(),
        });
    }
    Ok(out)
}

/// Inside the apply transaction, after the target row is locked and its
/// guards hold: lock each dependency row (`FOR UPDATE`; SQLite's
/// transaction already holds the write lock) and re-check its version.
/// `Some(conflict)`: a row changed or is gone; the caller rolls back.
pub async fn lock_and_check(
    conn: &mut AnyConnection,
    engine: Engine,
    deps: &[LockedDependency],
    previous_version: Option<Value>,
) -> Result<Option<Outcome>, sqlx::Error> {
    for d in deps {
        let found = version_of(conn, engine, &d.statement).await?;
        match judge_dependency(d.version.as_deref(), found.as_ref().map(|v| v.as_deref())) {
            DependencyState::Current => {}
            state => {
                let what = if state == DependencyState::Gone {
                    "is gone"
                } else {
                    "changed"
                };
                return Ok(Some(Outcome {
                    status: ReceiptStatus::Conflict,
                    rows_affected: 0,
                    previous_version,
                    new_version: None,
                    source_database_mutated: false,
                    safe_error_code: Some("FRESHNESS_DEPENDENCY_STALE".into()),
                    detail: Some(format!(
                        "the reviewed dependency row `{}` {what} since the proposal; nothing was changed",
                        d.id
                    )),
                }));
            }
        }
    }
    Ok(None)
}
