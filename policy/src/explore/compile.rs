//! Compiling a validated plan to one parameterized SELECT per engine.
//!
//! Identifiers come from the reviewed boundary only (checked by the loader,
//! quoted here); every value from the plan is a bound parameter; the
//! trusted tenant (and principal) predicate is added for the plan's
//! resource and for every related resource joined. Values compare exactly:
//! text as text (byte-wise on MySQL, whose collations ignore case), numbers
//! as numbers, days as UTC timestamps. Suppression, ranking and top-N are
//! not done in SQL: the statement returns every candidate group (at most
//! `max_ranked_groups + 1`, so a larger result is refused, not cut) and
//! [`super::release`] decides what is released.

use serde_json::Value;

use super::boundary::{Boundary, FieldType, Resource};
use super::plan::{AggregatePlan, DayRange, FieldRef, Filter, MeasureFn, Op, RowsPlan, ValidPlan};
use crate::config::Engine;
use crate::identifier::quote;

/// One bound parameter, in statement order.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// The trusted tenant id, as text.
    Tenant,
    /// The trusted principal, as text.
    Principal,
    /// A value from the plan (a string, a number, or a `YYYY-MM-DD` day).
    Value(Value),
}

/// What a result column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A selected field of a rows plan.
    Field(String),
    /// The i-th dimension's value.
    Dimension(usize),
    /// The time bucket's label.
    Bucket,
    /// The comparison period (1 or 2).
    Period,
    /// How many records the group counts.
    Cohort,
    /// The i-th measure's value.
    Measure(usize),
    /// How many non-null values the i-th measure was computed from.
    Contributors(usize),
}

impl Column {
    /// The column's alias in the statement (and key in the decoded row).
    pub fn alias(&self) -> String {
        match self {
            Column::Field(f) => format!("f_{f}"),
            Column::Dimension(i) => format!("d{i}"),
            Column::Bucket => "b".to_owned(),
            Column::Period => "p".to_owned(),
            Column::Cohort => "n".to_owned(),
            Column::Measure(i) => format!("m{i}"),
            Column::Contributors(i) => format!("c{i}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub sql: String,
    pub params: Vec<Param>,
    pub columns: Vec<Column>,
    /// Most rows the caller should read: one more than may be used, so
    /// that a larger result is detected.
    pub fetch_limit: usize,
}

impl Compiled {
    /// `sha256:` of the SQL text (no values).
    pub fn fingerprint(&self) -> String {
        crate::canonical::sha256_tagged(self.sql.as_bytes())
    }
}

struct Builder {
    engine: Engine,
    params: Vec<Param>,
}

impl Builder {
    fn push(&mut self, p: Param) -> String {
        self.params.push(p);
        match self.engine {
            Engine::Postgres => format!("${}", self.params.len()),
            Engine::Mysql | Engine::Sqlite => "?".to_owned(),
        }
    }

    fn col(&self, alias: &str, column: &str) -> String {
        format!("{alias}.{}", quote(self.engine, column))
    }

    /// `<alias>.<column>` equals the trusted value `p`, compared as text.
    fn scope(&mut self, alias: &str, column: &str, p: Param) -> String {
        let c = self.col(alias, column);
        let ph = self.push(p);
        match self.engine {
            Engine::Postgres => format!("CAST({c} AS TEXT) = {ph}"),
            Engine::Mysql => format!("CAST(CAST({c} AS CHAR) AS BINARY) = CAST({ph} AS BINARY)"),
            Engine::Sqlite => format!("CAST({c} AS TEXT) = {ph}"),
        }
    }

    /// The trusted-scope predicates of `res` under `alias`.
    fn scopes(&mut self, alias: &str, res: &Resource) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(tk) = &res.tenant_key {
            out.push(self.scope(alias, tk, Param::Tenant));
        }
        if let Some(pk) = &res.principal_scope_key {
            out.push(self.scope(alias, pk, Param::Principal));
        }
        out
    }

    /// A day (`YYYY-MM-DD`) bound as a UTC midnight timestamp.
    fn day(&mut self, day: &str) -> String {
        let ph = self.push(Param::Value(Value::String(day.to_owned())));
        match self.engine {
            Engine::Postgres => format!("CAST(CAST({ph} AS TEXT) AS TIMESTAMPTZ)"),
            Engine::Mysql => format!("CAST({ph} AS DATETIME)"),
            Engine::Sqlite => format!("datetime({ph})"),
        }
    }

    /// A time column in a comparable form.
    fn time(&self, c: &str) -> String {
        match self.engine {
            Engine::Sqlite => format!("datetime({c})"),
            Engine::Postgres | Engine::Mysql => c.to_owned(),
        }
    }

    fn range(&mut self, c: &str, r: &DayRange) -> String {
        let t = self.time(c);
        let start = self.day(&r.start);
        let end = self.day(&r.end);
        format!("({t} >= {start} AND {t} < {end})")
    }

    /// One value compared with a column of type `ty`.
    fn value(&mut self, ty: FieldType, v: &Value) -> String {
        if ty == FieldType::Time
            && let Some(day) = v.as_str()
        {
            return self.day(day);
        }
        let ph = self.push(Param::Value(v.clone()));
        match (self.engine, ty) {
            (Engine::Postgres, FieldType::Text) => format!("CAST({ph} AS TEXT)"),
            (Engine::Postgres, _) => format!("CAST(CAST({ph} AS TEXT) AS NUMERIC)"),
            (Engine::Mysql, FieldType::Text) => format!("CAST({ph} AS BINARY)"),
            _ => ph,
        }
    }

    /// A column as compared with values of type `ty`.
    fn compared(&self, c: &str, ty: FieldType) -> String {
        match (self.engine, ty) {
            (Engine::Postgres, FieldType::Text) => format!("CAST({c} AS TEXT)"),
            (Engine::Mysql, FieldType::Text) => format!("CAST({c} AS BINARY)"),
            (_, FieldType::Time) => self.time(c),
            _ => c.to_owned(),
        }
    }

    fn filter(&mut self, c: &str, ty: FieldType, f: &Filter) -> String {
        let lhs = self.compared(c, ty);
        if f.op == Op::In {
            let list: Vec<String> = f.values.iter().map(|v| self.value(ty, v)).collect();
            return format!("{lhs} IN ({})", list.join(", "));
        }
        let rhs = match f.values.first() {
            Some(v) => self.value(ty, v),
            None => "NULL".to_owned(),
        };
        let op = match f.op {
            Op::Eq | Op::In => "=",
            Op::Neq => "<>",
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Gt => ">",
            Op::Gte => ">=",
        };
        format!("{lhs} {op} {rhs}")
    }

    /// The label of `bucket` for the time column `c` (UTC; weeks start on
    /// Monday): `2026-03-02` (day, week), `2026-03`, `2026-Q1`, `2026`.
    fn bucket(&self, c: &str, bucket: &str) -> String {
        match self.engine {
            Engine::Postgres => {
                let fmt = match bucket {
                    "day" | "week" => "YYYY-MM-DD",
                    "month" => "YYYY-MM",
                    "quarter" => "YYYY-\"Q\"Q",
                    _ => "YYYY",
                };
                let unit = if bucket == "quarter" {
                    "quarter"
                } else {
                    bucket
                };
                format!("to_char(date_trunc('{unit}', {c}), '{fmt}')")
            }
            Engine::Mysql => match bucket {
                "day" => format!("DATE_FORMAT({c}, '%Y-%m-%d')"),
                "week" => format!(
                    "DATE_FORMAT(DATE_SUB(DATE({c}), INTERVAL WEEKDAY({c}) DAY), '%Y-%m-%d')"
                ),
                "month" => format!("DATE_FORMAT({c}, '%Y-%m')"),
                "quarter" => format!("CONCAT(YEAR({c}), '-Q', QUARTER({c}))"),
                _ => format!("DATE_FORMAT({c}, '%Y')"),
            },
            Engine::Sqlite => match bucket {
                "day" => format!("strftime('%Y-%m-%d', {c})"),
                "week" => format!("date({c}, 'weekday 0', '-6 days')"),
                "month" => format!("strftime('%Y-%m', {c})"),
                "quarter" => format!(
                    "strftime('%Y', {c}) || '-Q' || ((CAST(strftime('%m', {c}) AS INTEGER) + 2) / 3)"
                ),
                _ => format!("strftime('%Y', {c})"),
            },
        }
    }
}

fn table(engine: Engine, res: &Resource) -> String {
    format!(
        "{}.{}",
        quote(engine, &res.schema),
        quote(engine, &res.table)
    )
}

/// The joins a plan needs: one alias per distinct relationship path.
struct Joins<'a> {
    /// (path, alias, resource), parents before children.
    items: Vec<(Vec<String>, String, &'a Resource)>,
}

impl<'a> Joins<'a> {
    fn alias_of(&self, path: &[String]) -> &str {
        if path.is_empty() {
            return "t0";
        }
        self.items
            .iter()
            .find(|(p, _, _)| p.as_slice() == path)
            .map_or("t0", |(_, a, _)| a.as_str())
    }

    fn resource_of(&self, root: &'a Resource, path: &[String]) -> &'a Resource {
        self.items
            .iter()
            .find(|(p, _, _)| p.as_slice() == path)
            .map_or(root, |(_, _, r)| *r)
    }
}

fn joins<'a>(boundary: &'a Boundary, root: &'a Resource, refs: &[&FieldRef]) -> Joins<'a> {
    let mut items: Vec<(Vec<String>, String, &'a Resource)> = Vec::new();
    for r in refs {
        for depth in 1..=r.path.len() {
            let prefix = &r.path[..depth];
            if items.iter().any(|(p, _, _)| p.as_slice() == prefix) {
                continue;
            }
            let parent = items
                .iter()
                .find(|(p, _, _)| p.as_slice() == &prefix[..depth - 1])
                .map_or(root, |(_, _, res)| *res);
            let Some(target) = parent
                .relationships
                .get(&prefix[depth - 1])
                .and_then(|rel| boundary.resources.get(&rel.resource))
            else {
                continue;
            };
            let alias = format!("t{}", items.len() + 1);
            items.push((prefix.to_vec(), alias, target));
        }
    }
    Joins { items }
}

/// Compile `plan` (validated against `boundary`) for `engine`.
pub fn compile(engine: Engine, boundary: &Boundary, plan: &ValidPlan) -> Option<Compiled> {
    let root = boundary.resources.get(&plan.resource)?;
    let mut b = Builder {
        engine,
        params: Vec::new(),
    };
    Some(match &plan.body {
        super::plan::PlanBody::Rows(r) => rows(&mut b, root, r),
        super::plan::PlanBody::Aggregate(a) => aggregate(&mut b, boundary, root, a),
    })
}

fn field_type(res: &Resource, field: &str) -> FieldType {
    res.fields.get(field).map_or(FieldType::Text, |f| f.ty)
}

fn rows(b: &mut Builder, root: &Resource, plan: &RowsPlan) -> Compiled {
    let mut columns = Vec::new();
    let mut select = Vec::new();
    for f in &plan.select {
        let col = Column::Field(f.clone());
        select.push(format!(
            "{} AS {}",
            b.col("t0", f),
            quote(b.engine, &col.alias())
        ));
        columns.push(col);
    }
    let mut wh = b.scopes("t0", root);
    for f in &plan.filters {
        let c = b.col("t0", &f.field.field);
        wh.push(b.filter(&c, field_type(root, &f.field.field), f));
    }
    if let Some(w) = &plan.time_window {
        let c = b.col("t0", &w.field);
        wh.push(b.range(&c, &w.range));
    }
    let mut order: Vec<String> = plan
        .order_by
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                b.col("t0", &o.field),
                if o.direction == super::plan::Direction::Desc {
                    "DESC"
                } else {
                    "ASC"
                }
            )
        })
        .collect();
    order.push(format!("{} ASC", b.col("t0", &root.primary_key)));
    let mut sql = format!(
        "SELECT {} FROM {} t0",
        select.join(", "),
        table(b.engine, root)
    );
    if !wh.is_empty() {
        sql.push_str(&format!(" WHERE {}", wh.join(" AND ")));
    }
    sql.push_str(&format!(
        " ORDER BY {} LIMIT {}",
        order.join(", "),
        plan.limit
    ));
    Compiled {
        sql,
        params: std::mem::take(&mut b.params),
        columns,
        fetch_limit: plan.limit as usize,
    }
}

fn aggregate(
    b: &mut Builder,
    boundary: &Boundary,
    root: &Resource,
    plan: &AggregatePlan,
) -> Compiled {
    let refs: Vec<&FieldRef> = plan
        .dimensions
        .iter()
        .chain(plan.filters.iter().map(|f| &f.field))
        .collect();
    let j = joins(boundary, root, &refs);
    let mut columns = Vec::new();
    let mut select = Vec::new();
    let mut group = 0usize;
    let alias = |b: &Builder, c: &Column| quote(b.engine, &c.alias());
    for (i, d) in plan.dimensions.iter().enumerate() {
        let c = Column::Dimension(i);
        select.push(format!(
            "{} AS {}",
            b.col(j.alias_of(&d.path), &d.field),
            alias(b, &c)
        ));
        columns.push(c);
        group += 1;
    }
    if let Some(tb) = &plan.time_bucket {
        let c = Column::Bucket;
        let expr = b.bucket(&b.col("t0", &tb.field), &tb.bucket);
        select.push(format!("{expr} AS {}", alias(b, &c)));
        columns.push(c);
        group += 1;
    }
    if let Some(cmp) = &plan.comparison {
        let c = Column::Period;
        let col = b.col("t0", &cmp.field);
        let first = b.range(&col, &cmp.ranges[0]);
        let second = b.range(&col, &cmp.ranges[1]);
        select.push(format!(
            "CASE WHEN {first} THEN 1 WHEN {second} THEN 2 END AS {}",
            alias(b, &c)
        ));
        columns.push(c);
        group += 1;
    }
    let c = Column::Cohort;
    select.push(format!("COUNT(*) AS {}", alias(b, &c)));
    columns.push(c);
    for (i, m) in plan.measures.iter().enumerate() {
        let field = m.field.as_deref().map(|f| b.col("t0", f));
        let expr = match (m.function, &field) {
            (MeasureFn::CountDistinct, Some(f)) => format!("COUNT(DISTINCT {f})"),
            (MeasureFn::Sum, Some(f)) => format!("SUM({f})"),
            (MeasureFn::Avg, Some(f)) => format!("AVG({f})"),
            (MeasureFn::Min, Some(f)) => format!("MIN({f})"),
            (MeasureFn::Max, Some(f)) => format!("MAX({f})"),
            _ => "COUNT(*)".to_owned(),
        };
        let mc = Column::Measure(i);
        select.push(format!("{expr} AS {}", alias(b, &mc)));
        columns.push(mc);
        if let (Some(f), MeasureFn::Sum | MeasureFn::Avg | MeasureFn::Min | MeasureFn::Max) =
            (&field, m.function)
        {
            let cc = Column::Contributors(i);
            select.push(format!("COUNT({f}) AS {}", alias(b, &cc)));
            columns.push(cc);
        }
    }
    let mut from = format!("{} t0", table(b.engine, root));
    for (path, a, res) in &j.items {
        let parent_path = &path[..path.len() - 1];
        let parent_alias = j.alias_of(parent_path).to_owned();
        let parent = j.resource_of(root, parent_path);
        let Some(rel) = parent.relationships.get(&path[path.len() - 1]) else {
            continue;
        };
        let mut on = vec![format!(
            "{} = {}",
            b.col(a, &res.primary_key),
            b.col(&parent_alias, &rel.column)
        )];
        on.extend(b.scopes(a, res));
        from.push_str(&format!(
            " LEFT JOIN {} {a} ON {}",
            table(b.engine, res),
            on.join(" AND ")
        ));
    }
    let mut wh = b.scopes("t0", root);
    for f in &plan.filters {
        let res = j.resource_of(root, &f.field.path);
        let c = b.col(j.alias_of(&f.field.path), &f.field.field);
        wh.push(b.filter(&c, field_type(res, &f.field.field), f));
    }
    if let Some(w) = &plan.time_window {
        let c = b.col("t0", &w.field);
        wh.push(b.range(&c, &w.range));
    }
    // Bound after every other WHERE value: `?` parameters follow the text.
    if let Some(cmp) = &plan.comparison {
        let col = b.col("t0", &cmp.field);
        let first = b.range(&col, &cmp.ranges[0]);
        let second = b.range(&col, &cmp.ranges[1]);
        wh.push(format!("({first} OR {second})"));
    }
    let mut sql = format!("SELECT {} FROM {from}", select.join(", "));
    if !wh.is_empty() {
        sql.push_str(&format!(" WHERE {}", wh.join(" AND ")));
    }
    let periods = if plan.comparison.is_some() { 2 } else { 1 };
    let fetch_limit = (boundary.limits.max_ranked_groups as usize) * periods + 1;
    if group > 0 {
        let ordinals: Vec<String> = (1..=group).map(|i| i.to_string()).collect();
        sql.push_str(&format!(
            " GROUP BY {0} ORDER BY {0} LIMIT {fetch_limit}",
            ordinals.join(", ")
        ));
    }
    Compiled {
        sql,
        params: std::mem::take(&mut b.params),
        columns,
        fetch_limit,
    }
}
