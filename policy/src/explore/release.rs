//! What of a query's result is released to the model.
//!
//! Order matters and is fixed here: every candidate group is read, groups
//! below the minimum cohort are suppressed **first**, then the rest are
//! ordered and cut to `top_n`, so a suppressed group can neither appear
//! nor move another group's rank. Values of withheld fields become
//! response-local tokens. The result says whether anything was suppressed
//! and whether the release was complete (every group of the cohort shown),
//! which the executor needs for the complementary-release rule.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::boundary::{Boundary, Resource};
use super::compile::Column;
use super::plan::{AggregatePlan, Change, Direction, MeasureFn, Order, RowsPlan, ValidPlan};

/// Why a result cannot be released at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "the question has more than {max} groups, more than Airlock ranks; narrow it with a filter or a time window"
    )]
    TooManyGroups { max: u32 },
    #[error("the plan's resource is not in the boundary")]
    UnknownResource,
}

/// The outcome of one released query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Released {
    /// What the model sees.
    pub data: Value,
    /// Cells (values) released.
    pub cells: u64,
    /// Groups withheld for being smaller than the minimum cohort.
    pub suppressed_groups: u64,
    /// Every group of the cohort was released (nothing suppressed, nothing
    /// cut by `top_n`): the cohort's total can be derived from it.
    pub complete: bool,
}

/// Release `rows` (decoded by column alias) of `plan`.
pub fn release(
    boundary: &Boundary,
    plan: &ValidPlan,
    rows: &[Map<String, Value>],
) -> Result<Released, ReleaseError> {
    let res = boundary
        .resources
        .get(&plan.resource)
        .ok_or(ReleaseError::UnknownResource)?;
    match &plan.body {
        super::plan::PlanBody::Rows(r) => Ok(release_rows(res, r, rows)),
        super::plan::PlanBody::Aggregate(a) => release_aggregate(boundary, res, a, rows),
    }
}

/// Response-local opaque tokens for the values of withheld fields.
#[derive(Default)]
struct Tokens {
    by_field: BTreeMap<String, Vec<Value>>,
}

impl Tokens {
    fn token(&mut self, field: &str, v: &Value) -> Value {
        if v.is_null() {
            return Value::Null;
        }
        let seen = self.by_field.entry(field.to_owned()).or_default();
        let i = match seen.iter().position(|x| x == v) {
            Some(i) => i,
            None => {
                seen.push(v.clone());
                seen.len() - 1
            }
        };
        Value::String(format!("{field}#{}", i + 1))
    }
}

fn release_rows(res: &Resource, plan: &RowsPlan, rows: &[Map<String, Value>]) -> Released {
    let mut tokens = Tokens::default();
    let out: Vec<Value> = rows
        .iter()
        .take(plan.limit as usize)
        .map(|row| {
            let mut o = Map::new();
            for f in &plan.select {
                let v = row
                    .get(&Column::Field(f.clone()).alias())
                    .cloned()
                    .unwrap_or(Value::Null);
                let withheld = res.fields.get(f).is_some_and(|s| s.withheld);
                o.insert(f.clone(), if withheld { tokens.token(f, &v) } else { v });
            }
            Value::Object(o)
        })
        .collect();
    let cells = out.len() as u64 * plan.select.len() as u64;
    Released {
        data: json!({"rows": out}),
        cells,
        suppressed_groups: 0,
        complete: false,
    }
}

/// A JSON number from a decoded aggregate (Postgres NUMERIC and MySQL
/// DECIMAL arrive as text); averages keep four decimals.
pub fn number(v: &Value, average: bool) -> Value {
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let Some(f) = f.filter(|f| f.is_finite()) else {
        return Value::Null;
    };
    if !average && f.fract() == 0.0 && f.abs() < 9.0e15 {
        return json!(f as i64);
    }
    let rounded = (f * 10_000.0).round() / 10_000.0;
    serde_json::Number::from_f64(rounded).map_or(Value::Null, Value::Number)
}

fn count_of(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// One group of the result before ordering.
struct Group {
    key: Vec<Value>,
    bucket: Option<Value>,
    /// Per period (one, or two for a comparison): measure values.
    values: Vec<Vec<Value>>,
}

fn measures_of(plan: &AggregatePlan, row: &Map<String, Value>, minimum: u64) -> Vec<Value> {
    plan.measures
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let raw = row.get(&Column::Measure(i).alias()).unwrap_or(&Value::Null);
            let contributors = row.get(&Column::Contributors(i).alias());
            // A sum or average of fewer values than the minimum cohort
            // says too much about each of them.
            if contributors.is_some() && count_of(contributors) < minimum {
                return Value::Null;
            }
            match m.function {
                MeasureFn::Count | MeasureFn::CountDistinct => json!(count_of(Some(raw))),
                MeasureFn::Avg => number(raw, true),
                _ => number(raw, false),
            }
        })
        .collect()
}

fn release_aggregate(
    boundary: &Boundary,
    res: &Resource,
    plan: &AggregatePlan,
    rows: &[Map<String, Value>],
) -> Result<Released, ReleaseError> {
    let max = boundary.limits.max_ranked_groups;
    let periods = if plan.comparison.is_some() { 2 } else { 1 };
    if rows.len() > max as usize * periods {
        return Err(ReleaseError::TooManyGroups { max });
    }
    let minimum = u64::from(res.minimum_cohort_size);
    let grouped = !plan.dimensions.is_empty() || plan.time_bucket.is_some();
    let labels: Vec<String> = plan.measures.iter().map(|m| m.label()).collect();

    if !grouped && plan.comparison.is_none() {
        let row = rows.first().cloned().unwrap_or_default();
        if count_of(row.get(&Column::Cohort.alias())) < minimum {
            return Ok(Released {
                data: json!({"suppressed": true, "minimum_cohort_size": res.minimum_cohort_size}),
                cells: 0,
                suppressed_groups: 1,
                complete: false,
            });
        }
        let values = measures_of(plan, &row, minimum);
        let cells = values.len() as u64;
        return Ok(Released {
            data: json!({"values": named(&labels, &values)}),
            cells,
            suppressed_groups: 0,
            complete: true,
        });
    }

    // Collect groups keyed by dimension values and bucket; a comparison's
    // two periods of one key pair up.
    let mut groups: Vec<Group> = Vec::new();
    let mut suppressed: u64 = 0;
    let mut withheld_keys: Vec<Vec<Value>> = Vec::new();
    for row in rows {
        let key: Vec<Value> = (0..plan.dimensions.len())
            .map(|i| {
                row.get(&Column::Dimension(i).alias())
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect();
        let bucket = plan.time_bucket.as_ref().map(|_| {
            row.get(&Column::Bucket.alias())
                .cloned()
                .unwrap_or(Value::Null)
        });
        let period = if plan.comparison.is_some() {
            match count_of(row.get(&Column::Period.alias())) {
                2 => 1,
                _ => 0,
            }
        } else {
            0
        };
        let full_key = {
            let mut k = key.clone();
            k.extend(bucket.clone());
            k
        };
        let small = count_of(row.get(&Column::Cohort.alias())) < minimum;
        if small {
            if !withheld_keys.contains(&full_key) {
                withheld_keys.push(full_key);
            }
            continue;
        }
        let values = measures_of(plan, row, minimum);
        match groups
            .iter_mut()
            .find(|g| g.key == key && g.bucket == bucket)
        {
            Some(g) => g.values[period] = values,
            None => {
                let mut all = vec![Vec::new(); periods];
                all[period] = values;
                groups.push(Group {
                    key,
                    bucket,
                    values: all,
                });
            }
        }
    }
    // A comparison pair with a suppressed or empty side is withheld whole.
    groups.retain(|g| {
        let mut k = g.key.clone();
        k.extend(g.bucket.clone());
        let keep = !withheld_keys.contains(&k) && g.values.iter().all(|v| !v.is_empty());
        if !keep && !withheld_keys.contains(&k) {
            withheld_keys.push(k);
        }
        keep
    });
    suppressed += withheld_keys.len() as u64;

    sort_groups(&mut groups, plan);
    let truncated = groups.len() > plan.top_n as usize;
    groups.truncate(plan.top_n as usize);

    let mut tokens = Tokens::default();
    let dim_names: Vec<String> = plan.dimensions.iter().map(|d| d.display()).collect();
    let mut cells = 0u64;
    let out: Vec<Value> = groups
        .iter()
        .map(|g| {
            let mut o = Map::new();
            let mut dims = Map::new();
            for (i, d) in plan.dimensions.iter().enumerate() {
                let withheld = field_withheld(boundary, res, &d.path, &d.field);
                let v = g.key.get(i).cloned().unwrap_or(Value::Null);
                let name = &dim_names[i];
                dims.insert(
                    name.clone(),
                    if withheld { tokens.token(name, &v) } else { v },
                );
                cells += 1;
            }
            if !dims.is_empty() {
                o.insert("dimensions".into(), Value::Object(dims));
            }
            if let Some(b) = &g.bucket {
                o.insert("bucket".into(), b.clone());
                cells += 1;
            }
            if plan.comparison.is_some() {
                let (a, b) = (&g.values[0], &g.values[1]);
                o.insert("period_1".into(), named(&labels, a));
                o.insert("period_2".into(), named(&labels, b));
                let mut change = Map::new();
                for (i, l) in labels.iter().enumerate() {
                    change.insert(
                        l.clone(),
                        json!({
                            "absolute": diff(a.get(i), b.get(i)),
                            "percentage": percent(a.get(i), b.get(i)),
                        }),
                    );
                }
                o.insert("change".into(), Value::Object(change));
                cells += labels.len() as u64 * 2;
            } else {
                o.insert("values".into(), named(&labels, &g.values[0]));
                cells += labels.len() as u64;
            }
            Value::Object(o)
        })
        .collect();
    Ok(Released {
        data: json!({
            "groups": out,
            "suppressed_groups": suppressed,
            "minimum_cohort_size": res.minimum_cohort_size,
            "truncated": truncated,
        }),
        cells,
        suppressed_groups: suppressed,
        complete: suppressed == 0 && !truncated,
    })
}

fn field_withheld(boundary: &Boundary, root: &Resource, path: &[String], field: &str) -> bool {
    let mut here = root;
    for step in path {
        match here
            .relationships
            .get(step)
            .and_then(|r| boundary.resources.get(&r.resource))
        {
            Some(next) => here = next,
            None => return true,
        }
    }
    here.fields.get(field).is_none_or(|f| f.withheld)
}

fn named(labels: &[String], values: &[Value]) -> Value {
    Value::Object(labels.iter().cloned().zip(values.iter().cloned()).collect())
}

fn as_f64(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

fn diff(a: Option<&Value>, b: Option<&Value>) -> Value {
    match (as_f64(a), as_f64(b)) {
        (Some(a), Some(b)) => number(&json!(b - a), false),
        _ => Value::Null,
    }
}

/// Change from the first period to the second, in percent; null when the
/// first is zero.
fn percent(a: Option<&Value>, b: Option<&Value>) -> Value {
    match (as_f64(a), as_f64(b)) {
        (Some(a), Some(b)) if a != 0.0 => number(&json!((b - a) / a.abs() * 100.0), true),
        _ => Value::Null,
    }
}

/// Nulls sort after every value, whatever the direction.
fn cmp_values(a: Option<&Value>, b: Option<&Value>, dir: Direction) -> Ordering {
    let key = |v: Option<&Value>| -> Option<Result<f64, String>> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64().map(Ok),
            Some(Value::String(s)) => Some(Err(s.clone())),
            Some(other) => Some(Err(other.to_string())),
        }
    };
    let (ka, kb) = (key(a), key(b));
    let ord = match (&ka, &kb) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Greater,
        (Some(_), None) => return Ordering::Less,
        (Some(Ok(x)), Some(Ok(y))) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Some(Err(x)), Some(Err(y))) => x.cmp(y),
        (Some(Ok(_)), Some(Err(_))) => Ordering::Less,
        (Some(Err(_)), Some(Ok(_))) => Ordering::Greater,
    };
    if dir == Direction::Desc {
        ord.reverse()
    } else {
        ord
    }
}

fn sort_groups(groups: &mut [Group], plan: &AggregatePlan) {
    // Group keys first (the same on every engine, whatever its collation),
    // then a stable sort by the plan's order: ties keep key order.
    groups.sort_by_cached_key(|g| {
        let mut k = g.key.clone();
        k.extend(g.bucket.clone());
        crate::canonical::canonical_json(&Value::Array(k))
    });
    match plan.order_by {
        None => {}
        Some(Order::Measure { index, direction }) => groups
            .sort_by(|a, b| cmp_values(a.values[0].get(index), b.values[0].get(index), direction)),
        Some(Order::TimeBucket { direction }) => {
            groups.sort_by(|a, b| cmp_values(a.bucket.as_ref(), b.bucket.as_ref(), direction))
        }
        Some(Order::ComparisonChange {
            index,
            change,
            direction,
        }) => groups.sort_by(|a, b| {
            let c = |g: &Group| match change {
                Change::Absolute => diff(g.values[0].get(index), g.values[1].get(index)),
                Change::Percentage => percent(g.values[0].get(index), g.values[1].get(index)),
            };
            cmp_values(Some(&c(a)), Some(&c(b)), direction)
        }),
    }
}
