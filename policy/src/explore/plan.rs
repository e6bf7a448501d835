//! Validating an Explore plan against the boundary.
//!
//! A plan is model input: every key is known or refused, every field is a
//! reviewed field used only as reviewed, every value has its field's type.
//! Nothing here looks at data. The result, [`ValidPlan`], is normalized
//! (filters sorted, `in` sets sorted and de-duplicated, defaults filled in)
//! so that one question asked two ways is one differencing variant.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::boundary::{Boundary, FieldSpec, FieldType, MAX_PATH_DEPTH, Resource, TIME_BUCKETS};
use crate::canonical::hash_value;

/// Most values in one `in` filter.
pub const MAX_IN_VALUES: usize = 20;
/// Longest text value in a filter.
pub const MAX_VALUE_CHARS: usize = 256;

/// Why a plan was refused (stable codes the model and the audit see).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanErrorCode {
    /// Not a plan this grammar accepts (unknown key, wrong type, SQL).
    PlanInvalid,
    /// The resource is not in the boundary.
    ResourceForbidden,
    /// The field is not reviewed for this use (or not reviewed at all).
    FieldForbidden,
    /// The relationship path is not reviewed.
    RelationshipForbidden,
    /// The plan names the tenant or principal, which only the trusted
    /// context sets.
    ScopeForbidden,
    /// A bound (`top_n`, `limit`, measures, dimensions, filters) exceeds
    /// the reviewed maximum.
    TooLarge,
}

impl PlanErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanErrorCode::PlanInvalid => "plan_invalid",
            PlanErrorCode::ResourceForbidden => "resource_forbidden",
            PlanErrorCode::FieldForbidden => "field_forbidden",
            PlanErrorCode::RelationshipForbidden => "relationship_forbidden",
            PlanErrorCode::ScopeForbidden => "scope_forbidden",
            PlanErrorCode::TooLarge => "too_large",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    pub code: PlanErrorCode,
    /// Where in the plan (`where[1].field`).
    pub path: String,
    pub message: String,
}

fn err(code: PlanErrorCode, path: &str, message: impl Into<String>) -> PlanError {
    PlanError {
        code,
        path: path.to_owned(),
        message: message.into(),
    }
}

fn invalid(path: &str, message: impl Into<String>) -> PlanError {
    err(PlanErrorCode::PlanInvalid, path, message)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Neq,
    In,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "in" => Op::In,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::In => "in",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
        }
    }

    /// The operators a field of this type may be filtered with.
    pub fn allowed_for(ty: FieldType, identifier: bool) -> &'static [Op] {
        if identifier {
            return &[Op::Eq];
        }
        match ty {
            FieldType::Text => &[Op::Eq, Op::Neq, Op::In],
            FieldType::Number => &[Op::Eq, Op::Neq, Op::In, Op::Lt, Op::Lte, Op::Gt, Op::Gte],
            FieldType::Time => &[Op::Lt, Op::Lte, Op::Gt, Op::Gte],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Asc,
    Desc,
}

/// A field of the plan's resource or, through a reviewed relationship
/// path, of a related resource. Serialized as the plan writes it:
/// `{"field": …, "relationship": "a.b"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldRef {
    /// Relationship names from the plan's resource; empty: the resource itself.
    pub path: Vec<String>,
    pub field: String,
}

impl FieldRef {
    fn write_into(&self, m: &mut Map<String, Value>) {
        m.insert("field".into(), Value::String(self.field.clone()));
        if !self.path.is_empty() {
            m.insert("relationship".into(), Value::String(self.path.join(".")));
        }
    }
}

impl Serialize for FieldRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = Map::new();
        self.write_into(&mut m);
        m.serialize(s)
    }
}

impl FieldRef {
    /// `customer.segment` or `status`.
    pub fn display(&self) -> String {
        let mut parts = self.path.clone();
        parts.push(self.field.clone());
        parts.join(".")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: FieldRef,
    pub op: Op,
    /// One value, or the sorted, de-duplicated set of an `in`.
    pub values: Vec<Value>,
}

/// As the plan writes it: `{"field", "relationship"?, "op", "value"}`.
impl Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = Map::new();
        self.field.write_into(&mut m);
        m.insert("op".into(), Value::String(self.op.as_str().to_owned()));
        let value = match (self.op, self.values.first()) {
            (Op::In, _) => Value::Array(self.values.clone()),
            (_, Some(v)) => v.clone(),
            (_, None) => Value::Null,
        };
        m.insert("value".into(), value);
        m.serialize(s)
    }
}

/// One field of a rows plan's ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderField {
    pub field: String,
    pub direction: Direction,
}

/// `[start, end)` in whole UTC days (`YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayRange {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeWindow {
    pub field: String,
    #[serde(flatten)]
    pub range: DayRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureFn {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl MeasureFn {
    fn parse(s: &str) -> Option<MeasureFn> {
        Some(match s {
            "count" => MeasureFn::Count,
            "count_distinct" => MeasureFn::CountDistinct,
            "sum" => MeasureFn::Sum,
            "avg" => MeasureFn::Avg,
            "min" => MeasureFn::Min,
            "max" => MeasureFn::Max,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MeasureFn::Count => "count",
            MeasureFn::CountDistinct => "count_distinct",
            MeasureFn::Sum => "sum",
            MeasureFn::Avg => "avg",
            MeasureFn::Min => "min",
            MeasureFn::Max => "max",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measure {
    pub function: MeasureFn,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Measure {
    /// `count`, `sum(amount_cents)`: the measure's name in results.
    pub fn label(&self) -> String {
        match &self.field {
            Some(f) => format!("{}({f})", self.function.as_str()),
            None => self.function.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeBucket {
    pub field: String,
    pub bucket: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Absolute,
    Percentage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Order {
    Measure {
        index: usize,
        direction: Direction,
    },
    TimeBucket {
        direction: Direction,
    },
    ComparisonChange {
        index: usize,
        change: Change,
        direction: Direction,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowsPlan {
    pub select: Vec<String>,
    #[serde(rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<OrderField>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregatePlan {
    pub measures: Vec<Measure>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<FieldRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_bucket: Option<TimeBucket>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
    #[serde(rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_by: Option<Order>,
    pub top_n: u32,
    /// Two periods of the comparison field, compared group by group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub field: String,
    pub ranges: [DayRange; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanBody {
    Rows(RowsPlan),
    Aggregate(AggregatePlan),
}

/// A plan that passed validation, in normal form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidPlan {
    pub resource: String,
    #[serde(flatten)]
    pub body: PlanBody,
}

/// What the executor charges a plan against the budgets (computed by the
/// same validation on both sides).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Charge {
    pub resource: String,
    /// `sha256:` of the normalized plan: an exact replay is the same variant.
    pub variant: String,
    /// `sha256:` of who is counted: the resource, filters and time ranges
    /// (not measures, dimensions, order or bounds).
    pub cohort: String,
    pub aggregate: bool,
    /// An aggregate over a resource with a minimum cohort above 1.
    pub cohort_protected: bool,
    /// The result, whenever released, is the cohort's total (no grouping).
    pub total: bool,
    /// Most cells the result can release.
    pub max_cells: u64,
}

impl ValidPlan {
    /// The plan in normal form, as JSON (what the audit records).
    pub fn normalized(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn aggregate(&self) -> Option<&AggregatePlan> {
        match &self.body {
            PlanBody::Aggregate(a) => Some(a),
            PlanBody::Rows(_) => None,
        }
    }

    pub fn rows(&self) -> Option<&RowsPlan> {
        match &self.body {
            PlanBody::Rows(r) => Some(r),
            PlanBody::Aggregate(_) => None,
        }
    }

    /// The budget charge of this plan over `boundary` (whose resource it names).
    pub fn charge(&self, boundary: &Boundary) -> Charge {
        let protected = boundary
            .resources
            .get(&self.resource)
            .is_some_and(Resource::cohort_protected);
        let (filters, window, comparison, aggregate, total, max_cells) = match &self.body {
            PlanBody::Rows(r) => (
                &r.filters,
                &r.time_window,
                None,
                false,
                false,
                u64::from(r.limit) * r.select.len() as u64,
            ),
            PlanBody::Aggregate(a) => {
                let periods = if a.comparison.is_some() { 3 } else { 1 };
                let columns = a.dimensions.len() as u64
                    + u64::from(a.time_bucket.is_some())
                    + a.measures.len() as u64 * periods;
                (
                    &a.filters,
                    &a.time_window,
                    a.comparison.as_ref(),
                    true,
                    a.dimensions.is_empty() && a.time_bucket.is_none() && a.comparison.is_none(),
                    u64::from(a.top_n) * columns,
                )
            }
        };
        let cohort = json!({
            "resource": self.resource,
            "where": filters,
            "time_window": window,
            "comparison": comparison.map(|c| &c.ranges),
        });
        Charge {
            resource: self.resource.clone(),
            variant: hash_value(&self.normalized()),
            cohort: hash_value(&cohort),
            aggregate,
            cohort_protected: aggregate && protected,
            total,
            max_cells,
        }
    }
}

/// Keys that would carry SQL, an expression or a formula.
const SQL_KEYS: &[&str] = &[
    "sql",
    "raw_sql",
    "query",
    "statement",
    "expression",
    "formula",
    "having",
    "join",
    "group_by",
];

/// Keys that would set the trusted scope.
const SCOPE_WORDS: &[&str] = &["tenant", "principal", "user", "organization", "org"];

/// Keys that would change a reviewed privacy setting.
const PRIVACY_KEYS: &[&str] = &[
    "minimum_cohort_size",
    "min_cohort",
    "minimum_group_size",
    "min_group_size",
    "cohort",
    "suppression",
    "suppress",
    "budget",
];

/// Check the keys of `obj` (at `path`) against `known`, naming what an
/// unknown key was trying to do when that is recognizable.
fn check_keys(obj: &Map<String, Value>, path: &str, known: &[&str]) -> Result<(), PlanError> {
    for key in obj.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let lower = key.to_ascii_lowercase();
        let at = join(path, key);
        if SQL_KEYS.contains(&lower.as_str()) {
            return Err(invalid(
                &at,
                "plans never carry SQL, expressions or formulas; send a typed plan built from the fields app.describe_data lists",
            ));
        }
        if lower.split('_').any(|w| SCOPE_WORDS.contains(&w)) {
            return Err(err(
                PlanErrorCode::ScopeForbidden,
                &at,
                "the tenant and principal come from the trusted context, never from a plan; remove this key",
            ));
        }
        if PRIVACY_KEYS.contains(&lower.as_str()) {
            return Err(invalid(
                &at,
                "the minimum cohort and the budgets are reviewed settings; a plan cannot change them",
            ));
        }
        let shown: String = key.chars().take(64).collect();
        return Err(invalid(
            &at,
            format!(
                "unknown key `{}`; this object takes: {}",
                shown.escape_debug(),
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    let key: String = key.chars().take(64).collect();
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, PlanError> {
    v.as_object()
        .ok_or_else(|| invalid(path, "expected a JSON object"))
}

fn string<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a str, PlanError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(path, "expected a string")),
        None => Err(invalid(path, "missing")),
    }
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, PlanError> {
    v.as_array()
        .ok_or_else(|| invalid(path, "expected a JSON array"))
}

fn count(v: Option<&Value>, path: &str, max: u32, default: u32) -> Result<u32, PlanError> {
    match v {
        None => Ok(default),
        Some(v) => match v.as_u64() {
            Some(0) | None => Err(invalid(path, "expected a whole number of at least 1")),
            Some(n) if n > u64::from(max) => Err(err(
                PlanErrorCode::TooLarge,
                path,
                format!("at most {max} (a reviewed limit)"),
            )),
            Some(n) => Ok(n as u32),
        },
    }
}

fn direction(v: Option<&Value>, path: &str) -> Result<Direction, PlanError> {
    match v {
        None => Ok(Direction::Asc),
        Some(v) => match v.as_str() {
            Some("asc") => Ok(Direction::Asc),
            Some("desc") => Ok(Direction::Desc),
            _ => Err(invalid(path, "expected \"asc\" or \"desc\"")),
        },
    }
}

/// Validate `plan` against `boundary`.
pub fn validate_plan(boundary: &Boundary, plan: &Value) -> Result<ValidPlan, PlanError> {
    let o = object(plan, "")?;
    let kind = string(o.get("kind"), "kind")
        .map_err(|_| invalid("kind", "missing: write \"kind\": \"rows\" or \"aggregate\""))?;
    let name = string(o.get("resource"), "resource")?;
    let Some(resource) = boundary.resources.get(name) else {
        let shown: String = name.chars().take(64).collect();
        return Err(err(
            PlanErrorCode::ResourceForbidden,
            "resource",
            format!(
                "`{}` is not a reviewed resource; app.describe_data lists them",
                shown.escape_debug()
            ),
        ));
    };
    let ctx = Ctx { boundary, resource };
    let body = match kind {
        "rows" => PlanBody::Rows(ctx.rows(o)?),
        "aggregate" => PlanBody::Aggregate(ctx.aggregate(o)?),
        _ => {
            return Err(invalid("kind", "expected \"rows\" or \"aggregate\""));
        }
    };
    Ok(ValidPlan {
        resource: name.to_owned(),
        body,
    })
}

struct Ctx<'a> {
    boundary: &'a Boundary,
    resource: &'a Resource,
}

/// How a field is being used, for the message when it may not be.
#[derive(Clone, Copy)]
enum Use {
    Select,
    RowFilter,
    Filter,
    Dimension,
    Measure(MeasureFn),
    Time,
}

impl Use {
    fn noun(self) -> &'static str {
        match self {
            Use::Select => "shown in rows",
            Use::RowFilter => "filtered or ordered in a rows plan",
            Use::Filter => "filtered",
            Use::Dimension => "grouped by",
            Use::Measure(_) => "measured that way",
            Use::Time => "used as a time field",
        }
    }

    fn allows(self, f: &FieldSpec) -> bool {
        match self {
            Use::Select | Use::RowFilter => f.visible,
            Use::Filter => f.filter,
            Use::Dimension => f.dimension,
            Use::Measure(MeasureFn::CountDistinct) => f.count_distinct,
            Use::Measure(m) => f.measures.iter().any(|x| x == m.as_str()),
            Use::Time => f.is_time(),
        }
    }
}

impl<'a> Ctx<'a> {
    /// The resource at the end of a relationship path.
    fn follow(&self, path: &[String], at: &str) -> Result<&'a Resource, PlanError> {
        if path.len() > MAX_PATH_DEPTH {
            return Err(err(
                PlanErrorCode::RelationshipForbidden,
                at,
                format!("relationship paths are at most {MAX_PATH_DEPTH} steps"),
            ));
        }
        let mut here = self.resource;
        for step in path {
            let next = here
                .relationships
                .get(step)
                .and_then(|r| self.boundary.resources.get(&r.resource));
            let Some(next) = next else {
                let shown: String = step.chars().take(64).collect();
                return Err(err(
                    PlanErrorCode::RelationshipForbidden,
                    at,
                    format!(
                        "`{}` is not a reviewed relationship; app.describe_data lists them",
                        shown.escape_debug()
                    ),
                ));
            };
            here = next;
        }
        Ok(here)
    }

    /// Resolve a field of `resource` for `usage`.
    fn field(
        &self,
        resource: &'a Resource,
        name: &str,
        usage: Use,
        at: &str,
    ) -> Result<&'a FieldSpec, PlanError> {
        let scoped = Some(name) == resource.tenant_key.as_deref()
            || Some(name) == resource.principal_scope_key.as_deref();
        if scoped {
            return Err(err(
                PlanErrorCode::ScopeForbidden,
                at,
                "the tenant and principal come from the trusted context and are applied to every query; a plan cannot name them",
            ));
        }
        // A kept-out field gets the same answer as a field that does not
        // exist: the model learns nothing of it.
        let Some(f) = resource.fields.get(name) else {
            let shown: String = name.chars().take(64).collect();
            return Err(err(
                PlanErrorCode::FieldForbidden,
                at,
                format!(
                    "`{}` is not a reviewed field of this resource; app.describe_data lists them",
                    shown.escape_debug()
                ),
            ));
        };
        if !usage.allows(f) {
            return Err(err(
                PlanErrorCode::FieldForbidden,
                at,
                format!("`{name}` is not reviewed to be {}", usage.noun()),
            ));
        }
        Ok(f)
    }

    /// `{"field": "...", "relationship": "a.b"}` or `"field"`.
    fn field_ref(
        &self,
        v: &Value,
        at: &str,
        usage: Use,
    ) -> Result<(FieldRef, &'a Resource, &'a FieldSpec), PlanError> {
        let (field, rel) = match v {
            Value::String(s) => (s.as_str(), None),
            Value::Object(m) => {
                check_keys(m, at, &["field", "relationship"])?;
                let field = string(m.get("field"), &join(at, "field"))?;
                let rel = match m.get("relationship") {
                    None => None,
                    Some(r) => Some(string(Some(r), &join(at, "relationship"))?),
                };
                (field, rel)
            }
            _ => return Err(invalid(at, "expected a field name or {\"field\": …}")),
        };
        let path: Vec<String> = rel
            .map(|r| r.split('.').map(str::to_owned).collect())
            .unwrap_or_default();
        if !path.is_empty() && matches!(usage, Use::Select | Use::RowFilter | Use::Time) {
            return Err(err(
                PlanErrorCode::RelationshipForbidden,
                at,
                "rows plans and time fields use the resource's own fields only",
            ));
        }
        let target = self.follow(&path, at)?;
        let spec = self.field(target, field, usage, at)?;
        let r = FieldRef {
            path,
            field: field.to_owned(),
        };
        Ok((r, target, spec))
    }

    fn filters(&self, v: Option<&Value>, usage: Use) -> Result<Vec<Filter>, PlanError> {
        let Some(v) = v else {
            return Ok(Vec::new());
        };
        let items = array(v, "where")?;
        if items.len() > self.boundary.limits.max_filters as usize {
            return Err(err(
                PlanErrorCode::TooLarge,
                "where",
                format!(
                    "at most {} filters (a reviewed limit)",
                    self.boundary.limits.max_filters
                ),
            ));
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("where[{i}]");
            let m = object(item, &at)?;
            check_keys(m, &at, &["field", "relationship", "op", "value"])?;
            let mut target = Map::new();
            for k in ["field", "relationship"] {
                if let Some(x) = m.get(k) {
                    target.insert(k.to_owned(), x.clone());
                }
            }
            let (field, res, spec) = self.field_ref(&Value::Object(target), &at, usage)?;
            let op_text = string(m.get("op"), &join(&at, "op"))?;
            let Some(op) = Op::parse(op_text) else {
                return Err(invalid(
                    &join(&at, "op"),
                    "expected one of eq, neq, in, lt, lte, gt, gte",
                ));
            };
            let allowed = Op::allowed_for(spec.ty, res.is_identifier(&field.field));
            if !allowed.contains(&op) {
                let names: Vec<&str> = allowed.iter().map(|o| o.as_str()).collect();
                return Err(err(
                    PlanErrorCode::FieldForbidden,
                    &join(&at, "op"),
                    format!(
                        "`{}` may be filtered only with {} (identifiers only with eq: a neq or in on a near-unique field would single out one record)",
                        field.display(),
                        names.join(", ")
                    ),
                ));
            }
            let value_at = join(&at, "value");
            let raw = m
                .get("value")
                .ok_or_else(|| invalid(&value_at, "missing"))?;
            let mut values = if op == Op::In {
                let list = array(raw, &value_at)?;
                if list.is_empty() || list.len() > MAX_IN_VALUES {
                    return Err(invalid(
                        &value_at,
                        format!("`in` takes 1 to {MAX_IN_VALUES} values"),
                    ));
                }
                list.iter()
                    .map(|x| typed_value(spec, x, &value_at))
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                vec![typed_value(spec, raw, &value_at)?]
            };
            values.sort_by_key(crate::canonical::canonical_json);
            values.dedup();
            out.push(Filter { field, op, values });
        }
        out.sort_by(|a, b| {
            (&a.field, a.op, canonical_list(&a.values)).cmp(&(
                &b.field,
                b.op,
                canonical_list(&b.values),
            ))
        });
        out.dedup();
        Ok(out)
    }

    fn window(&self, v: Option<&Value>, key: &str) -> Result<Option<TimeWindow>, PlanError> {
        let Some(v) = v else {
            return Ok(None);
        };
        let m = object(v, key)?;
        check_keys(m, key, &["field", "start", "end"])?;
        let field = string(m.get("field"), &join(key, "field"))?;
        self.field(self.resource, field, Use::Time, &join(key, "field"))?;
        let range = day_range(m, key)?;
        Ok(Some(TimeWindow {
            field: field.to_owned(),
            range,
        }))
    }

    fn rows(&self, o: &Map<String, Value>) -> Result<RowsPlan, PlanError> {
        check_keys(
            o,
            "",
            &[
                "kind",
                "resource",
                "select",
                "where",
                "time_window",
                "order_by",
                "limit",
            ],
        )?;
        let limits = &self.boundary.limits;
        let select_v = o
            .get("select")
            .ok_or_else(|| invalid("select", "missing: list the fields to show"))?;
        let items = array(select_v, "select")?;
        if items.is_empty() || items.len() > 32 {
            return Err(invalid("select", "list 1 to 32 fields"));
        }
        let mut select: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("select[{i}]");
            let (f, _, _) = self.field_ref(item, &at, Use::Select)?;
            if !select.contains(&f.field) {
                select.push(f.field);
            }
        }
        let filters = self.filters(o.get("where"), Use::RowFilter)?;
        let time_window = self.window(o.get("time_window"), "time_window")?;
        let mut order_by = Vec::new();
        if let Some(v) = o.get("order_by") {
            let items = array(v, "order_by")?;
            if items.len() > 3 {
                return Err(invalid("order_by", "at most 3 fields"));
            }
            for (i, item) in items.iter().enumerate() {
                let at = format!("order_by[{i}]");
                let m = object(item, &at)?;
                check_keys(m, &at, &["field", "direction"])?;
                let f = string(m.get("field"), &join(&at, "field"))?;
                self.field(self.resource, f, Use::RowFilter, &join(&at, "field"))?;
                order_by.push(OrderField {
                    field: f.to_owned(),
                    direction: direction(m.get("direction"), &at)?,
                });
            }
        }
        let limit = count(
            o.get("limit"),
            "limit",
            limits.max_rows,
            limits.max_rows.min(20),
        )?;
        Ok(RowsPlan {
            select,
            filters,
            time_window,
            order_by,
            limit,
        })
    }

    fn aggregate(&self, o: &Map<String, Value>) -> Result<AggregatePlan, PlanError> {
        check_keys(
            o,
            "",
            &[
                "kind",
                "resource",
                "measures",
                "dimensions",
                "time_bucket",
                "time_window",
                "where",
                "order_by",
                "top_n",
                "comparison",
            ],
        )?;
        let limits = &self.boundary.limits;
        let mv = o
            .get("measures")
            .ok_or_else(|| invalid("measures", "missing: e.g. [{\"function\": \"count\"}]"))?;
        let items = array(mv, "measures")?;
        if items.is_empty() {
            return Err(invalid("measures", "list at least one measure"));
        }
        if items.len() > limits.max_measures as usize {
            return Err(err(
                PlanErrorCode::TooLarge,
                "measures",
                format!(
                    "at most {} measures (a reviewed limit)",
                    limits.max_measures
                ),
            ));
        }
        let mut measures = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("measures[{i}]");
            let m = object(item, &at)?;
            check_keys(m, &at, &["function", "field"])?;
            let name = string(m.get("function"), &join(&at, "function"))?;
            let Some(function) = MeasureFn::parse(name) else {
                return Err(invalid(
                    &join(&at, "function"),
                    "expected count, count_distinct, sum, avg, min or max",
                ));
            };
            let field = match (function, m.get("field")) {
                (MeasureFn::Count, None) => None,
                (MeasureFn::Count, Some(_)) => {
                    return Err(invalid(
                        &join(&at, "field"),
                        "count counts the resource's records and takes no field",
                    ));
                }
                (_, None) => {
                    return Err(invalid(&join(&at, "field"), "this measure needs a field"));
                }
                (_, Some(f)) => {
                    let f = string(Some(f), &join(&at, "field"))?;
                    self.field(
                        self.resource,
                        f,
                        Use::Measure(function),
                        &join(&at, "field"),
                    )?;
                    Some(f.to_owned())
                }
            };
            let measure = Measure { function, field };
            if !measures.contains(&measure) {
                measures.push(measure);
            }
        }
        let mut dimensions: Vec<FieldRef> = Vec::new();
        if let Some(v) = o.get("dimensions") {
            let items = array(v, "dimensions")?;
            if items.len() > limits.max_dimensions as usize {
                return Err(err(
                    PlanErrorCode::TooLarge,
                    "dimensions",
                    format!(
                        "at most {} dimensions (a reviewed limit)",
                        limits.max_dimensions
                    ),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let (f, _, _) =
                    self.field_ref(item, &format!("dimensions[{i}]"), Use::Dimension)?;
                if !dimensions.contains(&f) {
                    dimensions.push(f);
                }
            }
        }
        let time_bucket = match o.get("time_bucket") {
            None => None,
            Some(v) => {
                let m = object(v, "time_bucket")?;
                check_keys(m, "time_bucket", &["field", "bucket"])?;
                let field = string(m.get("field"), "time_bucket.field")?;
                let spec = self.field(self.resource, field, Use::Time, "time_bucket.field")?;
                let bucket = string(m.get("bucket"), "time_bucket.bucket")?;
                if !TIME_BUCKETS.contains(&bucket) {
                    return Err(invalid(
                        "time_bucket.bucket",
                        "expected day, week, month, quarter or year",
                    ));
                }
                if !spec.buckets.iter().any(|b| b == bucket) {
                    return Err(err(
                        PlanErrorCode::FieldForbidden,
                        "time_bucket.bucket",
                        format!(
                            "`{field}` may be bucketed by {} only",
                            spec.buckets.join(", ")
                        ),
                    ));
                }
                Some(TimeBucket {
                    field: field.to_owned(),
                    bucket: bucket.to_owned(),
                })
            }
        };
        let time_window = self.window(o.get("time_window"), "time_window")?;
        let filters = self.filters(o.get("where"), Use::Filter)?;
        let comparison = match o.get("comparison") {
            None => None,
            Some(v) => {
                let m = object(v, "comparison")?;
                check_keys(m, "comparison", &["field", "ranges"])?;
                let field = string(m.get("field"), "comparison.field")?;
                self.field(self.resource, field, Use::Time, "comparison.field")?;
                let ranges = array(
                    m.get("ranges")
                        .ok_or_else(|| invalid("comparison.ranges", "missing"))?,
                    "comparison.ranges",
                )?;
                if ranges.len() != 2 {
                    return Err(invalid(
                        "comparison.ranges",
                        "a comparison has exactly two periods",
                    ));
                }
                let a = day_range(
                    object(&ranges[0], "comparison.ranges[0]")?,
                    "comparison.ranges[0]",
                )?;
                let b = day_range(
                    object(&ranges[1], "comparison.ranges[1]")?,
                    "comparison.ranges[1]",
                )?;
                if a.start < b.end && b.start < a.end {
                    return Err(invalid(
                        "comparison.ranges",
                        "the two periods overlap; compare two separate periods",
                    ));
                }
                if time_bucket.is_some() {
                    return Err(invalid(
                        "comparison",
                        "a comparison pairs whole periods; remove time_bucket",
                    ));
                }
                Some(Comparison {
                    field: field.to_owned(),
                    ranges: [a, b],
                })
            }
        };
        let order_by = match o.get("order_by") {
            None => None,
            Some(v) => Some(order(v, measures.len(), &time_bucket, &comparison)?),
        };
        let groups_cap = limits.max_top_n.min(limits.max_groups);
        let top_n = count(o.get("top_n"), "top_n", groups_cap, groups_cap)?;
        Ok(AggregatePlan {
            measures,
            dimensions,
            time_bucket,
            time_window,
            filters,
            order_by,
            top_n,
            comparison,
        })
    }
}

fn canonical_list(values: &[Value]) -> String {
    crate::canonical::canonical_json(&Value::Array(values.to_vec()))
}

fn order(
    v: &Value,
    measures: usize,
    bucket: &Option<TimeBucket>,
    comparison: &Option<Comparison>,
) -> Result<Order, PlanError> {
    let m = object(v, "order_by")?;
    let kind = string(m.get("kind"), "order_by.kind")?;
    let dir = direction(m.get("direction"), "order_by.direction")?;
    let index = |m: &Map<String, Value>| -> Result<usize, PlanError> {
        match m.get("index").and_then(Value::as_u64) {
            Some(i) if (i as usize) < measures => Ok(i as usize),
            _ => Err(invalid(
                "order_by.index",
                format!("expected the index of a measure, 0 to {}", measures - 1),
            )),
        }
    };
    match kind {
        "measure" => {
            check_keys(m, "order_by", &["kind", "index", "direction"])?;
            Ok(Order::Measure {
                index: index(m)?,
                direction: dir,
            })
        }
        "time_bucket" => {
            check_keys(m, "order_by", &["kind", "direction"])?;
            if bucket.is_none() {
                return Err(invalid("order_by", "ordering by time needs a time_bucket"));
            }
            Ok(Order::TimeBucket { direction: dir })
        }
        "comparison_change" => {
            check_keys(m, "order_by", &["kind", "index", "change", "direction"])?;
            if comparison.is_none() {
                return Err(invalid("order_by", "ordering by change needs a comparison"));
            }
            let change = match m.get("change").and_then(Value::as_str) {
                Some("absolute") | None => Change::Absolute,
                Some("percentage") => Change::Percentage,
                Some(_) => {
                    return Err(invalid(
                        "order_by.change",
                        "expected \"absolute\" or \"percentage\"",
                    ));
                }
            };
            Ok(Order::ComparisonChange {
                index: index(m)?,
                change,
                direction: dir,
            })
        }
        _ => Err(invalid(
            "order_by.kind",
            "expected \"measure\", \"time_bucket\" or \"comparison_change\"",
        )),
    }
}

/// A filter value of `spec`'s type (and reviewed domain, if any).
fn typed_value(spec: &FieldSpec, v: &Value, at: &str) -> Result<Value, PlanError> {
    match spec.ty {
        FieldType::Text => {
            let Some(s) = v.as_str() else {
                return Err(invalid(at, "expected a string"));
            };
            if s.chars().count() > MAX_VALUE_CHARS || s.chars().any(char::is_control) {
                return Err(invalid(
                    at,
                    format!("at most {MAX_VALUE_CHARS} characters, no control characters"),
                ));
            }
            if let Some(domain) = &spec.values
                && !domain.iter().any(|d| d == v)
            {
                return Err(invalid(at, "not one of the field's reviewed values"));
            }
            Ok(v.clone())
        }
        FieldType::Number => match v {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(v.clone()),
            _ => Err(invalid(at, "expected a number")),
        },
        FieldType::Time => match v.as_str() {
            Some(s) if is_day(s) => Ok(v.clone()),
            _ => Err(invalid(at, "expected a UTC date, YYYY-MM-DD")),
        },
    }
}

fn day_range(m: &Map<String, Value>, at: &str) -> Result<DayRange, PlanError> {
    check_keys(m, at, &["field", "start", "end"])?;
    let start = string(m.get("start"), &join(at, "start"))?;
    let end = string(m.get("end"), &join(at, "end"))?;
    for (k, s) in [("start", start), ("end", end)] {
        if !is_day(s) {
            return Err(invalid(
                &join(at, k),
                "expected a UTC date, YYYY-MM-DD (windows are whole days, [start, end))",
            ));
        }
    }
    if start >= end {
        return Err(invalid(at, "start must be before end"));
    }
    Ok(DayRange {
        start: start.to_owned(),
        end: end.to_owned(),
    })
}

/// `YYYY-MM-DD`, a real calendar day from year 1000 to 9999.
pub fn is_day(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1000 && (1..=days).contains(&d)
}
