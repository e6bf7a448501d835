//! `app.describe_data`: the paged catalog of what may be asked. It shows
//! reviewed names, labels, types, uses and (unless withheld) value
//! domains; never physical schema names, kept-out fields (only how many),
//! row values or the trusted scope.

use serde_json::{Map, Value, json};

use super::boundary::{Boundary, FieldSpec, Resource};

/// Resources per page.
pub const PAGE: usize = 5;

/// Why a describe request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescribeError {
    #[error("{0}")]
    Invalid(String),
}

fn uses(f: &FieldSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if f.visible {
        out.push("rows");
    }
    if f.dimension {
        out.push("dimension");
    }
    if f.filter {
        out.push("filter");
    }
    if !f.measures.is_empty() {
        out.push("measure");
    }
    if f.count_distinct {
        out.push("count_distinct");
    }
    if f.is_time() {
        out.push("time");
    }
    out
}

fn field(name: &str, f: &FieldSpec, res: &Resource) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(name));
    o.insert("type".into(), json!(f.ty.as_str()));
    if let Some(l) = &f.label {
        o.insert("label".into(), json!(l));
    }
    if let Some(d) = &f.description {
        o.insert("description".into(), json!(d));
    }
    o.insert("uses".into(), json!(uses(f)));
    let ops: Vec<&str> = super::plan::Op::allowed_for(f.ty, res.is_identifier(name))
        .iter()
        .map(|o| o.as_str())
        .collect();
    if f.visible || f.filter {
        o.insert("filter_operators".into(), json!(ops));
    }
    if !f.measures.is_empty() {
        o.insert("measures".into(), json!(f.measures));
    }
    if f.is_time() {
        o.insert("buckets".into(), json!(f.buckets));
    }
    if f.withheld {
        o.insert("withheld".into(), json!(true));
    } else if let Some(values) = &f.values {
        o.insert("values".into(), json!(values));
    }
    Value::Object(o)
}

fn resource(boundary: &Boundary, id: &str, res: &Resource) -> Value {
    let fields: Vec<Value> = res.fields.iter().map(|(n, f)| field(n, f, res)).collect();
    let relationships: Vec<Value> = res
        .relationships
        .iter()
        .map(|(name, r)| {
            let target = boundary.resources.get(&r.resource);
            let mut o = json!({
                "id": name,
                "target_resource": r.resource,
                "cardinality": "many_to_one",
            });
            if let Some(l) = target.and_then(|t| t.label.as_ref()) {
                o["target_label"] = json!(l);
            }
            o
        })
        .collect();
    let mut o = json!({
        "id": id,
        "fields": fields,
        "relationships": relationships,
        "kept_out_field_count": res.kept_out.len(),
        "minimum_cohort_size": res.minimum_cohort_size,
        "maximum_rows": boundary.limits.max_rows,
        "maximum_groups": boundary.limits.max_groups,
        "max_top_n": boundary.limits.max_top_n,
    });
    if let Some(l) = &res.label {
        o["label"] = json!(l);
    }
    if let Some(d) = &res.description {
        o["description"] = json!(d);
    }
    o
}

/// The catalog page for `input` (`{"resource"?, "cursor"?}`).
pub fn describe(boundary: &Boundary, input: &Map<String, Value>) -> Result<Value, DescribeError> {
    for k in input.keys() {
        if k != "resource" && k != "cursor" {
            let shown: String = k.chars().take(64).collect();
            return Err(DescribeError::Invalid(format!(
                "unknown argument `{}`; app.describe_data takes resource and cursor",
                shown.escape_debug()
            )));
        }
    }
    let ids: Vec<&String> = match input.get("resource") {
        None => boundary.resources.keys().collect(),
        Some(Value::String(r)) => match boundary.resources.get_key_value(r) {
            Some((id, _)) => vec![id],
            None => {
                return Err(DescribeError::Invalid(
                    "not a reviewed resource; call app.describe_data without arguments to list them"
                        .into(),
                ));
            }
        },
        Some(_) => return Err(DescribeError::Invalid("`resource` must be a string".into())),
    };
    let start = match input.get("cursor") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(n) if (n as usize) < ids.len().max(1) => n as usize,
            _ => {
                return Err(DescribeError::Invalid(
                    "`cursor` must be a next_cursor this tool returned".into(),
                ));
            }
        },
    };
    let page: Vec<Value> = ids
        .iter()
        .skip(start)
        .take(PAGE)
        .filter_map(|id| {
            boundary
                .resources
                .get(*id)
                .map(|r| resource(boundary, id, r))
        })
        .collect();
    let next = (start + PAGE < ids.len()).then_some(start + PAGE);
    Ok(json!({
        "resources": page,
        "next_cursor": next,
        "raw_sql_available": false,
        "time": {"timezone": "UTC", "window": "[start, end) in whole days, YYYY-MM-DD", "week_starts_on": "Monday"},
        "plans": {
            "rows": {"kind": "rows", "resource": "<id>", "select": ["<field with use rows>"], "where": [{"field": "<field>", "op": "eq", "value": "<value>"}], "order_by": [{"field": "<field>", "direction": "desc"}], "limit": 20},
            "aggregate": {"kind": "aggregate", "resource": "<id>", "measures": [{"function": "count"}], "dimensions": [{"field": "<dimension>", "relationship": "<optional relationship id>"}], "time_bucket": {"field": "<time field>", "bucket": "month"}, "time_window": {"field": "<time field>", "start": "2026-01-01", "end": "2026-04-01"}, "order_by": {"kind": "measure", "index": 0, "direction": "desc"}, "top_n": 10},
            "comparison": {"comparison": {"field": "<time field>", "ranges": [{"start": "2026-01-01", "end": "2026-04-01"}, {"start": "2026-04-01", "end": "2026-07-01"}]}, "order_by": {"kind": "comparison_change", "index": 0, "change": "absolute", "direction": "desc"}},
        },
    }))
}
