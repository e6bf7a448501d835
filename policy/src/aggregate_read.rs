//! Named aggregate reads (`kind: "aggregate_read"`): one reviewed number —
//! or one per reviewed group — over the trusted tenant's rows, never the
//! rows themselves.
//!
//! The config shape is Synapsor Runner 1.x's: `args: {}`,
//! `visible_columns: []` and `aggregate: {function, count_mode, column,
//! selection, minimum_group_size}` with `count`, `sum` and `avg`. Airlock
//! adds the functions `min` and `max`, `group_by` (up to three reviewed
//! columns) and `max_groups`. The model chooses nothing: the function, the
//! column, the fixed equality selection and the grouping are the
//! reviewer's, the tenant (and principal) the trusted context's.
//!
//! Everything here is pure: the statement per engine ([`statement`]), the
//! suppression decision over the rows it returned ([`release`]), and the
//! executor's check of the evidence a proposer records for one call
//! ([`check_evidence_rows`]).
//!
//! **Suppression.** A result computed from fewer than `minimum_group_size`
//! records is withheld: no value and no count. The records a result is
//! computed from are `COUNT(*)` for a count of rows, and `COUNT(column)` —
//! the records that contribute a value — for every other function (both
//! must reach the minimum; the second is never larger than the first). A
//! grouped read releases only the groups at or above the minimum, in
//! group-value order, and says how many it withheld, never which. A grouped
//! read with more groups than `max_groups` is refused, never cut short.
//! Suppression stops single-record disclosure from one result; it does not
//! stop differencing between two reviewed capabilities over the same rows.

use std::cmp::Ordering;

use serde::Serialize;
use serde_json::{Map, Number, Value, json};

use crate::config::{Capability, Engine, SelectionTerm};
use crate::identifier::quote;
use crate::statement::{LookupParam, Statement, placeholder, table_name, tenant_predicate};

/// Most columns a grouped aggregate may group by (Airlock's limit).
pub const MAX_GROUP_BY: usize = 3;
/// `max_groups` when a grouped aggregate sets none.
pub const DEFAULT_MAX_GROUPS: u32 = 50;
/// The largest `max_groups` a reviewer may set.
pub const MAX_GROUPS_LIMIT: u32 = 500;
/// The largest `minimum_group_size` (Synapsor Runner's limit).
pub const MAX_MINIMUM_GROUP_SIZE: u64 = 1_000_000;
/// Decimal places an average is rounded to.
pub const AVG_DECIMALS: usize = 4;

/// The statement's column of records per group (`COUNT(*)`).
pub const COHORT: &str = "cohort";
/// The statement's column of contributing records per group (`COUNT(column)`).
pub const CONTRIBUTORS: &str = "contributors";
/// The aggregate itself, in the statement and in every released row.
pub const VALUE: &str = "value";
/// The evidence row of a withheld ungrouped result: `{"suppressed": true}`.
pub const SUPPRESSED: &str = "suppressed";
/// Names a group column may not have: the statement's and the result's own.
pub const RESERVED_NAMES: [&str; 4] = [COHORT, CONTRIBUTORS, VALUE, SUPPRESSED];

/// The reviewed aggregate function (`aggregate.function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    Count,
    Sum,
    Avg,
    /// Airlock's: the lowest value.
    Min,
    /// Airlock's: the highest value.
    Max,
}

impl Function {
    pub fn parse(s: &str) -> Option<Function> {
        match s {
            "count" => Some(Function::Count),
            "sum" => Some(Function::Sum),
            "avg" => Some(Function::Avg),
            "min" => Some(Function::Min),
            "max" => Some(Function::Max),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Function::Count => "count",
            Function::Sum => "sum",
            Function::Avg => "avg",
            Function::Min => "min",
            Function::Max => "max",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Function::Count => "COUNT",
            Function::Sum => "SUM",
            Function::Avg => "AVG",
            Function::Min => "MIN",
            Function::Max => "MAX",
        }
    }
}

/// What a count counts (`aggregate.count_mode`, count only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CountMode {
    /// Every matching record: `COUNT(*)`.
    Rows,
    /// The matching records where `column` is set: `COUNT(column)`.
    NonNull,
}

/// A capability's reviewed aggregate. Built only by the loader, which
/// guarantees: `column` is set exactly when the function is not a count
/// of rows; `count_mode` exactly for a count; every identifier is safe;
/// `group_by` holds 0 to [`MAX_GROUP_BY`] distinct columns, none the
/// tenant, principal or primary key nor a [`RESERVED_NAMES`] name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateSpec {
    pub function: Function,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_mode: Option<CountMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `selection.all`: every term must hold (`column = value`, exactly).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub selection: Vec<SelectionTerm>,
    pub minimum_group_size: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Most groups one read may have (released or withheld); used only
    /// with `group_by`.
    pub max_groups: u32,
}

impl AggregateSpec {
    pub fn is_grouped(&self) -> bool {
        !self.group_by.is_empty()
    }

    /// Every column the statement names: selection, group and aggregated
    /// columns, deduplicated, in that order.
    pub fn columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let all = self
            .selection
            .iter()
            .map(|t| t.column.as_str())
            .chain(self.group_by.iter().map(String::as_str))
            .chain(self.column.as_deref());
        for c in all {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// The most rows one read fetches: one more group than allowed (so an
    /// excess is seen and refused), or the single row of an ungrouped read.
    pub fn fetch_limit(&self) -> usize {
        if self.is_grouped() {
            self.max_groups as usize + 1
        } else {
            1
        }
    }

    /// The most rows one call's evidence holds: each released group, or
    /// the one value (or suppression marker).
    pub fn max_evidence_rows(&self) -> u32 {
        if self.is_grouped() {
            self.max_groups
        } else {
            1
        }
    }

    /// The aggregate expression: `COUNT(*)` for a count of rows, else the
    /// function over the column.
    fn expression(&self, col: impl Fn(&str) -> String) -> String {
        match &self.column {
            Some(c) => format!("{}({})", self.function.sql(), col(c)),
            None => "COUNT(*)".to_owned(),
        }
    }
}

/// A column of the aggregated table as the statement names it. SQLite
/// reads an unqualified double-quoted name that is no column as a string
/// literal: `SUM("no_such_column")` would be a silent 0 and `GROUP BY`
/// one constant group. Qualified with its table, a missing column is the
/// error it should be.
fn column_ref(engine: Engine, cap: &Capability, column: &str) -> String {
    match engine {
        Engine::Sqlite => format!(
            "{}.{}",
            quote(engine, &cap.target.table),
            quote(engine, column)
        ),
        Engine::Postgres | Engine::Mysql => quote(engine, column),
    }
}

/// The reviewed selection terms a statement binds as
/// [`LookupParam::Selection`]: a bounded set's or an aggregate's.
pub fn reviewed_selection(cap: &Capability) -> &[SelectionTerm] {
    if let Some(a) = &cap.aggregate {
        return &a.selection;
    }
    cap.proposal
        .as_ref()
        .and_then(|p| p.set())
        .map_or(&[], |s| s.selection.as_slice())
}

/// `column = <value>`, exactly: MySQL's default collations ignore case and
/// trailing spaces, so a text value is compared byte for byte there; a
/// SQLite column may declare `NOCASE`, so the comparison names `BINARY`.
/// (A bounded set can drop loosely matched rows after reading them; an
/// aggregate never sees its rows, so the statement must be exact.)
fn selection_predicate(engine: Engine, col: &str, value: &Value, n: usize) -> String {
    let ph = placeholder(engine, n);
    match (engine, value.is_string()) {
        (Engine::Mysql, true) => format!("CAST({col} AS BINARY) = CAST({ph} AS BINARY)"),
        (Engine::Sqlite, true) => format!("{col} = {ph} COLLATE BINARY"),
        _ => format!("{col} = {ph}"),
    }
}

/// The statement of an aggregate read:
///
/// ```text
/// SELECT <group columns>, COUNT(*) AS cohort[, COUNT(<column>) AS contributors],
///        <FN>(<column>) AS value
/// FROM <table> WHERE <selection terms> AND <tenant> [AND <principal>]
/// [GROUP BY <group columns> LIMIT <max_groups + 1>]
/// ```
///
/// Every value bound is the reviewer's (selection) or the trusted
/// context's (tenant, principal).
pub fn statement(engine: Engine, cap: &Capability, spec: &AggregateSpec) -> Statement {
    let q = |c: &str| quote(engine, c);
    let col = |c: &str| column_ref(engine, cap, c);
    let groups: Vec<String> = spec.group_by.iter().map(|c| col(c)).collect();
    let mut select: Vec<String> = match engine {
        // A qualified name keeps its column's name in the result.
        Engine::Sqlite => spec
            .group_by
            .iter()
            .map(|c| format!("{} AS {}", col(c), q(c)))
            .collect(),
        Engine::Postgres | Engine::Mysql => groups.clone(),
    };
    select.push(format!("COUNT(*) AS {}", q(COHORT)));
    if let Some(c) = &spec.column {
        select.push(format!("COUNT({}) AS {}", col(c), q(CONTRIBUTORS)));
    }
    select.push(format!("{} AS {}", spec.expression(col), q(VALUE)));
    let mut params = Vec::new();
    let mut terms = Vec::new();
    for (i, t) in spec.selection.iter().enumerate() {
        params.push(LookupParam::Selection(i as u8));
        terms.push(selection_predicate(
            engine,
            &col(&t.column),
            &t.value,
            params.len(),
        ));
    }
    if let Some(tk) = &cap.target.tenant_key {
        params.push(LookupParam::Tenant);
        terms.push(tenant_predicate(engine, tk, params.len()));
    }
    if let Some(pk) = &cap.target.principal_scope_key {
        params.push(LookupParam::Principal);
        terms.push(tenant_predicate(engine, pk, params.len()));
    }
    let mut sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        table_name(engine, cap)
    );
    if !terms.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&terms.join(" AND "));
    }
    if spec.is_grouped() {
        sql.push_str(&format!(
            " GROUP BY {} LIMIT {}",
            groups.join(", "),
            spec.fetch_limit()
        ));
    }
    Statement { sql, params }
}

/// What one read releases.
#[derive(Debug, Clone, PartialEq)]
pub enum Released {
    /// Ungrouped: the value, or `None` when it is withheld.
    Scalar(Option<Value>),
    /// Grouped: the released groups (each group column and `value`), in
    /// group-value order, and how many groups were withheld.
    Groups {
        groups: Vec<Map<String, Value>>,
        withheld: u32,
    },
}

/// Why a read's rows release nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseError {
    /// More groups than the reviewed `max_groups`: refused, never cut short.
    TooManyGroups { max_groups: u32 },
    /// A released aggregate is not a number (`min` or `max` over a text
    /// column, a NaN): the capability needs a numeric column.
    NotNumeric,
    /// The rows are not the statement's shape.
    Malformed(String),
}

impl std::fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReleaseError::TooManyGroups { max_groups } => write!(
                f,
                "the reviewed grouping has more than {max_groups} groups (the reviewed `max_groups`); an aggregate is never cut short, so nothing was released"
            ),
            ReleaseError::NotNumeric => {
                write!(
                    f,
                    "the aggregate is not a number: its column is not numeric"
                )
            }
            ReleaseError::Malformed(why) => write!(f, "unexpected aggregate rows: {why}"),
        }
    }
}

/// Decide what the rows of [`statement`] release (see the module's
/// suppression rules). No rows at all, for an ungrouped read, is a count
/// of zero records: withheld.
pub fn release(
    spec: &AggregateSpec,
    rows: &[Map<String, Value>],
) -> Result<Released, ReleaseError> {
    if !spec.is_grouped() {
        return match rows {
            [] => Ok(Released::Scalar(None)),
            [row] => Ok(Released::Scalar(release_one(spec, row)?)),
            _ => Err(ReleaseError::Malformed(
                "an ungrouped aggregate returned more than one row".to_owned(),
            )),
        };
    }
    if rows.len() > spec.max_groups as usize {
        return Err(ReleaseError::TooManyGroups {
            max_groups: spec.max_groups,
        });
    }
    let mut groups = Vec::new();
    let mut withheld = 0u32;
    for row in rows {
        let mut group = Map::new();
        for col in &spec.group_by {
            match row.get(col) {
                Some(v) if !(v.is_array() || v.is_object()) => {
                    group.insert(col.clone(), v.clone());
                }
                _ => {
                    return Err(ReleaseError::Malformed(format!(
                        "a group has no scalar `{col}`"
                    )));
                }
            }
        }
        match release_one(spec, row)? {
            Some(value) => {
                group.insert(VALUE.to_owned(), value);
                groups.push(group);
            }
            None => withheld += 1,
        }
    }
    groups.sort_by(|a, b| compare_groups(&spec.group_by, a, b));
    Ok(Released::Groups { groups, withheld })
}

/// One row's value, or `None` when its records are too few.
fn release_one(
    spec: &AggregateSpec,
    row: &Map<String, Value>,
) -> Result<Option<Value>, ReleaseError> {
    let cohort = count(row, COHORT)?;
    let contributors = match spec.column {
        Some(_) => Some(count(row, CONTRIBUTORS)?),
        None => None,
    };
    let min = spec.minimum_group_size;
    if cohort < min || contributors.is_some_and(|c| c < min) {
        return Ok(None);
    }
    let raw = row
        .get(VALUE)
        .ok_or_else(|| ReleaseError::Malformed("a row has no `value`".to_owned()))?;
    aggregate_number(raw, spec.function)
        .map(Some)
        .ok_or(ReleaseError::NotNumeric)
}

/// A record count as the database returned it (an integer, or a decimal
/// string for engines that widen counts).
fn count(row: &Map<String, Value>, key: &str) -> Result<u64, ReleaseError> {
    let v = row.get(key);
    v.and_then(Value::as_u64)
        .or_else(|| {
            v.and_then(Value::as_str)
                .and_then(|s| s.trim().parse().ok())
        })
        .ok_or_else(|| ReleaseError::Malformed(format!("`{key}` is not a record count")))
}

/// An aggregate as a JSON number: decimal strings (Postgres NUMERIC,
/// MySQL DECIMAL) become numbers, an average is rounded to
/// [`AVG_DECIMALS`] places, and a whole number is an integer whatever the
/// engine returned (`2500`, never `2500.0`), so every engine gives the
/// same JSON. `None` for anything else (text, null, NaN, infinities).
pub fn aggregate_number(v: &Value, function: Function) -> Option<Value> {
    let text = match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => return Some(v.clone()),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    if let Ok(i) = text.parse::<i64>() {
        return Some(json!(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(json!(u));
    }
    let mut f: f64 = text.parse().ok().filter(|f: &f64| f.is_finite())?;
    if function == Function::Avg {
        // Formatting rounds the exact binary value; parsing it back gives
        // the nearest double, which prints as the short decimal.
        f = format!("{f:.AVG_DECIMALS$}").parse().ok()?;
    }
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Some(json!(f as i64));
    }
    Number::from_f64(f).map(Value::Number)
}

/// Group order: by each group column in turn; null first, then booleans,
/// numbers (by value) and strings (by bytes).
fn compare_groups(group_by: &[String], a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
    group_by
        .iter()
        .map(|c| compare_scalars(a.get(c), b.get(c)))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

fn compare_scalars(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
        },
        (Some(Value::String(x)), Some(Value::String(y))) => x.as_bytes().cmp(y.as_bytes()),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Released {
    /// What the model is shown (`data`). Ungrouped, Synapsor Runner's
    /// shape: `{function, column, suppressed, minimum_group_size, value,
    /// member_rows_included: false}` (`value` null when withheld). Grouped,
    /// Airlock's: `group_by`, `groups` and `suppressed_groups` in place of
    /// `suppressed` and `value`.
    pub fn data(&self, spec: &AggregateSpec) -> Value {
        let mut data = json!({
            "function": spec.function.as_str(),
            "column": spec.column,
            "minimum_group_size": spec.minimum_group_size,
            "member_rows_included": false,
        });
        match self {
            Released::Scalar(value) => {
                data[SUPPRESSED] = json!(value.is_none());
                data[VALUE] = value.clone().unwrap_or(Value::Null);
            }
            Released::Groups { groups, withheld } => {
                data["group_by"] = json!(spec.group_by);
                data["groups"] = json!(groups);
                data["suppressed_groups"] = json!(withheld);
            }
        }
        data
    }

    /// What the evidence records: the released rows (group columns and
    /// `value`), or `{"suppressed": true}` for a withheld ungrouped result.
    /// Never a member row, an id or a record count.
    pub fn evidence_rows(&self) -> Vec<Map<String, Value>> {
        let one = |k: &str, v: Value| {
            let mut m = Map::new();
            m.insert(k.to_owned(), v);
            vec![m]
        };
        match self {
            Released::Scalar(Some(v)) => one(VALUE, v.clone()),
            Released::Scalar(None) => one(SUPPRESSED, Value::Bool(true)),
            Released::Groups { groups, .. } => groups.clone(),
        }
    }

    /// Whether nothing at all was released.
    pub fn is_withheld(&self) -> bool {
        match self {
            Released::Scalar(v) => v.is_none(),
            Released::Groups { groups, .. } => groups.is_empty(),
        }
    }
}

/// The JSON Schema of [`Released::data`], for the tool's `outputSchema`
/// (the envelope's keywords only: `type`, `required`, `properties`,
/// `additionalProperties`, `items`, `enum`, `const`, `anyOf`).
pub fn data_schema() -> Value {
    let number = json!({"type": "number"});
    let scalar = json!({"type": ["string", "number", "boolean", "null"]});
    json!({
        "type": "object",
        "required": ["function", "column", "minimum_group_size", "member_rows_included"],
        "properties": {
            "function": {"enum": ["count", "sum", "avg", "min", "max"]},
            "column": {"type": ["string", "null"]},
            "minimum_group_size": {"type": "integer"},
            "member_rows_included": {"const": false},
            "suppressed": {"type": "boolean"},
            "value": {"anyOf": [{"type": "null"}, number]},
            "group_by": {"type": "array", "items": {"type": "string"}},
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [VALUE],
                    "properties": {"value": number},
                    "additionalProperties": scalar,
                },
            },
            "suppressed_groups": {"type": "integer"},
        },
        "additionalProperties": false,
    })
}

/// The executor's check of the rows a proposer records as one call's
/// evidence: for an ungrouped aggregate exactly one row, `{"value": <number>}`
/// or `{"suppressed": true}`; for a grouped one at most `max_groups` rows,
/// each exactly the group columns (scalars) and a numeric `value`, no
/// group twice. Anything else — a member row, an id, a count, a column of
/// another capability — is refused with the reason.
pub fn check_evidence_rows(
    spec: &AggregateSpec,
    rows: &[Map<String, Value>],
) -> Result<(), String> {
    let shown = |k: &str| k.chars().take(64).collect::<String>();
    if !spec.is_grouped() {
        let [row] = rows else {
            return Err(format!(
                "an ungrouped aggregate's evidence is exactly one row (its value, or {{\"suppressed\": true}}), not {}",
                rows.len()
            ));
        };
        if let Some(k) = row.keys().find(|k| *k != VALUE && *k != SUPPRESSED) {
            return Err(format!(
                "column `{}` is not part of an aggregate's result (`value` or `suppressed`)",
                shown(k)
            ));
        }
        let value_ok = row.len() == 1 && row.get(VALUE).is_some_and(Value::is_number);
        let withheld_ok = row.len() == 1 && row.get(SUPPRESSED) == Some(&Value::Bool(true));
        return if value_ok || withheld_ok {
            Ok(())
        } else {
            Err("an ungrouped aggregate's evidence row is {\"value\": <number>} or {\"suppressed\": true}".to_owned())
        };
    }
    if rows.len() > spec.max_groups as usize {
        return Err(format!(
            "{} rows, but this aggregate releases at most {} groups",
            rows.len(),
            spec.max_groups
        ));
    }
    let mut seen: Vec<Vec<&Value>> = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(k) = row
            .keys()
            .find(|k| *k != VALUE && !spec.group_by.iter().any(|g| g == *k))
        {
            return Err(format!(
                "column `{}` is not a group column or `value` of this aggregate (withheld groups are never recorded)",
                shown(k)
            ));
        }
        if !row.get(VALUE).is_some_and(Value::is_number) {
            return Err("every released group carries a numeric `value`".to_owned());
        }
        let mut key = Vec::with_capacity(spec.group_by.len());
        for g in &spec.group_by {
            match row.get(g) {
                Some(v) if !(v.is_array() || v.is_object()) => key.push(v),
                _ => {
                    return Err(format!(
                        "every released group carries its scalar group column `{g}`"
                    ));
                }
            }
        }
        if seen.contains(&key) {
            return Err("a group is recorded twice".to_owned());
        }
        seen.push(key);
    }
    Ok(())
}

/// What the aggregate computes, in words, e.g. `the sum of balance_cents
/// over invoices records where status = "overdue", per region`.
pub fn what(cap: &Capability, spec: &AggregateSpec) -> String {
    let table = &cap.target.table;
    let col = spec.column.as_deref().unwrap_or_default();
    let mut text = match (spec.function, spec.count_mode) {
        (Function::Count, Some(CountMode::NonNull)) => {
            format!("the number of {table} records with a {col}")
        }
        (Function::Count, _) => format!("the number of {table} records"),
        (Function::Sum, _) => format!("the sum of {col} over {table} records"),
        (Function::Avg, _) => format!("the average {col} of {table} records"),
        (Function::Min, _) => format!("the lowest {col} among {table} records"),
        (Function::Max, _) => format!("the highest {col} among {table} records"),
    };
    if !spec.selection.is_empty() {
        let terms: Vec<String> = spec
            .selection
            .iter()
            .map(|t| format!("{} = {}", t.column, t.value))
            .collect();
        text.push_str(" where ");
        text.push_str(&terms.join(" and "));
    }
    if spec.is_grouped() {
        text.push_str(", per ");
        text.push_str(&spec.group_by.join(" and "));
    }
    text
}

/// The sentence the tool description ends with: read-only, the scope, one
/// aggregate and never records, what is withheld.
pub fn describe_suffix(cap: &Capability, spec: &AggregateSpec) -> String {
    let scope = if cap.target.principal_scope_key.is_some() {
        "your tenant and to records assigned to you"
    } else {
        "your tenant"
    };
    let min = spec.minimum_group_size;
    let unit = if spec.is_grouped() { "group" } else { "result" };
    let withheld = if min > 1 {
        format!("a {unit} of fewer than {min} records is withheld (no value, no count)")
    } else {
        format!("no {unit} is withheld for being small (minimum group size 1)")
    };
    let groups = if spec.is_grouped() {
        format!(" one value per group, at most {} groups;", spec.max_groups)
    } else {
        String::new()
    };
    format!(
        " Read-only; scoped to {scope}. Returns one reviewed aggregate, never records:{groups} {withheld}."
    )
}
