//! `airlock.explore`: the reviewed boundary of Scoped Explore (Airlock's
//! own shape; Synapsor Runner keeps its boundary in a separate generated
//! file, which Airlock does not read). Every resource, field, relationship
//! and limit is checked here, so plan validation can rely on them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Obj, check_entry_name, check_identifier, join_index, join_key, type_name};
use crate::config::{ContextSpec, Source};
use crate::diagnostics::Report;
use crate::explore::DEFAULT_MINIMUM_COHORT;
use crate::explore::boundary::{
    Boundary, ExploreLimits, FieldSpec, FieldType, NUMBER_MEASURES, Relationship, Resource,
    TIME_BUCKETS,
};

const KEYS: &[&str] = &[
    "source",
    "context",
    "minimum_cohort_size",
    "limits",
    "resources",
];
const RESOURCE_KEYS: &[&str] = &[
    "schema",
    "table",
    "primary_key",
    "tenant_key",
    "principal_scope_key",
    "label",
    "description",
    "minimum_cohort_size",
    "fields",
    "kept_out",
    "relationships",
];
const FIELD_KEYS: &[&str] = &[
    "type",
    "uses",
    "measures",
    "buckets",
    "withheld",
    "values",
    "label",
    "description",
];
const USES: &[&str] = &[
    "rows",
    "dimension",
    "filter",
    "measure",
    "count_distinct",
    "time",
];
const MAX_RESOURCES: usize = 32;
const MAX_FIELDS: usize = 128;
const MAX_VALUES: usize = 200;
const MAX_LABEL: usize = 64;
const MAX_DESCRIPTION: usize = 280;

/// The sources and contexts the config defines (and every name written,
/// valid or not, so a broken entry is not reported twice).
pub(super) struct Known<'a> {
    pub sources: &'a BTreeMap<String, Source>,
    pub contexts: &'a BTreeMap<String, ContextSpec>,
    pub written_sources: &'a BTreeSet<String>,
    pub written_contexts: &'a BTreeSet<String>,
}

pub(super) fn parse(r: &mut Report, a: &Obj, known: Known) -> Option<Boundary> {
    let v = a.get("explore")?;
    let errors_before = r.errors().count();
    let e = Obj::open(r, &a.at("explore"), v, KEYS)?;
    let source = e.req_string(
        r,
        "source",
        "add \"source\": the name of the entry in `sources` the resources are read from",
    );
    if let Some(s) = &source
        && !known.sources.contains_key(s)
        && !known.written_sources.contains(s)
    {
        r.error(
            e.at("source"),
            format!("unknown source `{}`", s.escape_debug()),
            "name an entry of `sources`",
        );
    }
    let context = e.string(r, "context");
    if let Some(c) = &context
        && !known.contexts.contains_key(c)
        && !known.written_contexts.contains(c)
    {
        r.error(
            e.at("context"),
            format!("unknown context `{}`", c.escape_debug()),
            "name an entry of `contexts`, or remove `context` to use `trusted_context`",
        );
    }
    let minimum = cohort(r, &e, DEFAULT_MINIMUM_COHORT);
    let limits = parse_limits(r, &e);
    let mut resources = BTreeMap::new();
    match e.object(r, "resources") {
        None if !e.has("resources") => e.missing(
            r,
            "resources",
            "add \"resources\": {\"tickets\": {\"schema\": …, \"table\": …, \"fields\": {…}}}",
        ),
        None => {}
        Some(map) if map.is_empty() || map.len() > MAX_RESOURCES => r.error(
            e.at("resources"),
            format!("list 1 to {MAX_RESOURCES} resources"),
            "review at least one table, and split very large boundaries",
        ),
        Some(map) => {
            for (name, v) in map {
                let p = join_key(&e.at("resources"), name);
                if !check_entry_name(r, &p, name) {
                    continue;
                }
                if let Some(res) = parse_resource(r, &p, v, minimum) {
                    resources.insert(name.clone(), res);
                }
            }
        }
    }
    check_relationships(r, &e, &resources);
    if r.errors().count() != errors_before {
        return None;
    }
    Some(Boundary {
        source: source?,
        context,
        minimum_cohort_size: minimum,
        limits,
        resources,
    })
}

fn cohort(r: &mut Report, o: &Obj, default: u32) -> u32 {
    let n = o
        .integer(r, "minimum_cohort_size", 1, 1_000)
        .map_or(default, |n| n as u32);
    if n == 1 && o.has("minimum_cohort_size") {
        r.warning(
            o.at("minimum_cohort_size"),
            "a minimum cohort of 1 releases groups of one record, which can identify a person; it also turns off differencing and complement protection",
            "keep the default of 5 unless every record may be seen on its own",
        );
    }
    n
}

fn parse_limits(r: &mut Report, e: &Obj) -> ExploreLimits {
    let mut l = ExploreLimits::default();
    let Some(v) = e.get("limits") else {
        return l;
    };
    let Some(o) = Obj::open(
        r,
        &e.at("limits"),
        v,
        &[
            "max_queries_per_rolling_24_hours",
            "max_extracted_cells_per_rolling_24_hours",
            "max_differencing_variants_per_rolling_24_hours",
            "max_rows",
            "max_groups",
            "max_top_n",
            "max_ranked_groups",
            "max_measures",
            "max_dimensions",
            "max_filters",
        ],
    ) else {
        return l;
    };
    let big = 1_000_000_000;
    let set64 = |r: &mut Report, key: &str, max: u64, slot: &mut u64| {
        if let Some(n) = o.integer(r, key, 1, max) {
            *slot = n;
        }
    };
    set64(
        r,
        "max_queries_per_rolling_24_hours",
        big,
        &mut l.max_queries_per_rolling_24_hours,
    );
    set64(
        r,
        "max_extracted_cells_per_rolling_24_hours",
        big,
        &mut l.max_extracted_cells_per_rolling_24_hours,
    );
    set64(
        r,
        "max_differencing_variants_per_rolling_24_hours",
        10_000,
        &mut l.max_differencing_variants_per_rolling_24_hours,
    );
    let set32 = |r: &mut Report, key: &str, max: u64, slot: &mut u32| {
        if let Some(n) = o.integer(r, key, 1, max) {
            *slot = n as u32;
        }
    };
    set32(r, "max_rows", 1_000, &mut l.max_rows);
    set32(r, "max_groups", 500, &mut l.max_groups);
    set32(r, "max_top_n", 100, &mut l.max_top_n);
    set32(r, "max_ranked_groups", 5_000, &mut l.max_ranked_groups);
    set32(r, "max_measures", 8, &mut l.max_measures);
    set32(r, "max_dimensions", 4, &mut l.max_dimensions);
    set32(r, "max_filters", 16, &mut l.max_filters);
    if l.max_ranked_groups < l.max_groups {
        r.error(
            o.at("max_ranked_groups"),
            "`max_ranked_groups` is smaller than `max_groups`",
            "rank at least as many groups as may be returned",
        );
    }
    l
}

fn text(r: &mut Report, o: &Obj, key: &str, max: usize) -> Option<String> {
    let s = o.string(r, key)?;
    if s.chars().count() > max || s.chars().any(char::is_control) {
        r.error(
            o.at(key),
            format!("longer than {max} characters or not one line"),
            "shorten it to one line",
        );
        return None;
    }
    Some(s)
}

fn parse_resource(r: &mut Report, path: &str, v: &Value, minimum: u32) -> Option<Resource> {
    let o = Obj::open(r, path, v, RESOURCE_KEYS)?;
    let schema = o.req_identifier(r, "schema", "add \"schema\": e.g. \"public\"");
    let table = o.req_identifier(r, "table", "add \"table\": the table or view name");
    let primary_key = o.req_identifier(r, "primary_key", "add \"primary_key\": e.g. \"id\"");
    let tenant_key = o.req_identifier(
        r,
        "tenant_key",
        "add \"tenant_key\": the column holding the tenant id; every query is scoped by it",
    );
    let principal_scope_key = o.identifier(r, "principal_scope_key");
    let label = text(r, &o, "label", MAX_LABEL);
    let description = text(r, &o, "description", MAX_DESCRIPTION);
    let minimum_cohort_size = cohort(r, &o, minimum);
    let scope: Vec<&str> = tenant_key
        .iter()
        .chain(principal_scope_key.iter())
        .map(String::as_str)
        .collect();
    let mut fields = BTreeMap::new();
    match o.object(r, "fields") {
        None if !o.has("fields") => o.missing(
            r,
            "fields",
            "add \"fields\": {\"status\": {\"type\": \"text\", \"uses\": [\"dimension\", \"filter\"]}}",
        ),
        None => {}
        Some(map) if map.is_empty() || map.len() > MAX_FIELDS => r.error(
            o.at("fields"),
            format!("list 1 to {MAX_FIELDS} fields"),
            "review at least one field",
        ),
        Some(map) => {
            for (name, fv) in map {
                let p = join_key(&o.at("fields"), name);
                if !check_identifier(r, &p, name) {
                    continue;
                }
                if scope.contains(&name.as_str()) {
                    r.error(
                        &p,
                        format!("`{name}` is the tenant or principal scope column"),
                        "remove it: every query is scoped by the trusted context, and a plan may never name the scope",
                    );
                    continue;
                }
                if let Some(f) = parse_field(r, &p, fv) {
                    if f.visible && f.dimension && minimum_cohort_size > 1 {
                        r.warning(
                            &p,
                            format!("`{name}` is both shown in rows and a dimension: rows reveal it record by record, so suppressing small groups of it protects nothing"),
                            "remove \"rows\" from its uses if its groups must stay protected",
                        );
                    }
                    fields.insert(name.clone(), f);
                }
            }
        }
    }
    let mut kept_out = Vec::new();
    if let Some(items) = o.array(r, "kept_out") {
        for (i, item) in items.iter().enumerate() {
            let p = join_index(&o.at("kept_out"), i);
            match item.as_str() {
                Some(s) if check_identifier(r, &p, s) => {
                    if fields.contains_key(s) {
                        r.error(
                            &p,
                            format!("`{s}` is both a reviewed field and kept out"),
                            "keep it out, or review it as a field, not both",
                        );
                    } else if !kept_out.iter().any(|k| k == s) {
                        kept_out.push(s.to_owned());
                    }
                }
                Some(_) => {}
                None => r.error(
                    &p,
                    format!("expected a column name, found {}", type_name(item)),
                    "write the column name as a string",
                ),
            }
        }
    }
    let mut relationships = BTreeMap::new();
    if let Some(map) = o.object(r, "relationships") {
        for (name, rv) in map {
            let p = join_key(&o.at("relationships"), name);
            if !check_identifier(r, &p, name) {
                continue;
            }
            let Some(ro) = Obj::open(r, &p, rv, &["column", "resource"]) else {
                continue;
            };
            let column = ro.req_identifier(
                r,
                "column",
                "add \"column\": the column of this resource that holds the related row's primary key",
            );
            let resource = ro.req_string(
                r,
                "resource",
                "add \"resource\": the related resource's name",
            );
            if let Some(c) = &column
                && scope.contains(&c.as_str())
            {
                r.error(
                    ro.at("column"),
                    "a relationship cannot follow the tenant or principal scope column",
                    "name the foreign-key column of the relationship",
                );
                continue;
            }
            if let (Some(column), Some(resource)) = (column, resource) {
                relationships.insert(name.clone(), Relationship { column, resource });
            }
        }
    }
    Some(Resource {
        schema: schema?,
        table: table?,
        primary_key: primary_key?,
        tenant_key: Some(tenant_key?),
        principal_scope_key,
        label,
        description,
        minimum_cohort_size,
        fields,
        kept_out,
        relationships,
    })
}

fn parse_field(r: &mut Report, path: &str, v: &Value) -> Option<FieldSpec> {
    let o = Obj::open(r, path, v, FIELD_KEYS)?;
    let ty = match o
        .req_string(r, "type", "add \"type\": \"text\", \"number\" or \"time\"")
        .as_deref()
    {
        Some("text") => Some(FieldType::Text),
        Some("number") => Some(FieldType::Number),
        Some("time") => Some(FieldType::Time),
        Some(other) => {
            r.error(
                o.at("type"),
                format!("unknown field type `{}`", other.escape_debug()),
                "use \"text\", \"number\" or \"time\"",
            );
            None
        }
        None => None,
    };
    let mut uses: BTreeSet<String> = BTreeSet::new();
    match o.array(r, "uses") {
        None if !o.has("uses") => o.missing(
            r,
            "uses",
            "add \"uses\": some of rows, dimension, filter, measure, count_distinct, time",
        ),
        None => {}
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = join_index(&o.at("uses"), i);
                match item.as_str() {
                    Some(u) if USES.contains(&u) => {
                        uses.insert(u.to_owned());
                    }
                    _ => r.error(
                        &p,
                        format!("unknown use {}", super::short(item)),
                        format!("use some of: {}", USES.join(", ")),
                    ),
                }
            }
        }
    }
    let ty = ty?;
    let has = |u: &str| uses.contains(u);
    if has("measure") && ty != FieldType::Number {
        r.error(
            o.at("uses"),
            "only number fields can be measured",
            "remove \"measure\", or set \"type\": \"number\"",
        );
    }
    if has("time") && ty != FieldType::Time {
        r.error(
            o.at("uses"),
            "only time fields can be bucketed or windowed",
            "remove \"time\", or set \"type\": \"time\"",
        );
    }
    let measures = listed(
        r,
        &o,
        "measures",
        NUMBER_MEASURES,
        has("measure"),
        &["sum", "avg"],
    );
    let buckets = listed(r, &o, "buckets", TIME_BUCKETS, has("time"), TIME_BUCKETS);
    let mut values = None;
    if let Some(items) = o.array(r, "values") {
        if items.is_empty() || items.len() > MAX_VALUES {
            r.error(
                o.at("values"),
                format!("list 1 to {MAX_VALUES} values"),
                "list the field's reviewed values",
            );
        } else if items.iter().any(|v| {
            !(v.is_string() && ty == FieldType::Text || v.is_number() && ty == FieldType::Number)
        }) {
            r.error(
                o.at("values"),
                "every value must have the field's type (strings for text, numbers for number)",
                "fix the listed values",
            );
        } else {
            values = Some(items.clone());
        }
    }
    Some(FieldSpec {
        ty,
        label: text(r, &o, "label", MAX_LABEL),
        description: text(r, &o, "description", MAX_DESCRIPTION),
        visible: has("rows"),
        dimension: has("dimension"),
        filter: has("filter"),
        measures,
        count_distinct: has("count_distinct"),
        buckets,
        withheld: o.boolean(r, "withheld").unwrap_or(false),
        values,
    })
}

/// A reviewed sub-list (`measures`, `buckets`) of `allowed`: only with its
/// use, and `default` when the use is there without the list.
fn listed(
    r: &mut Report,
    o: &Obj,
    key: &str,
    allowed: &[&str],
    used: bool,
    default: &[&str],
) -> Vec<String> {
    let Some(items) = o.array(r, key) else {
        return if used {
            default.iter().map(|s| (*s).to_owned()).collect()
        } else {
            Vec::new()
        };
    };
    if !used {
        r.error(
            o.at(key),
            format!("`{key}` without its use in `uses`"),
            "add the use, or remove the list",
        );
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) if allowed.contains(&s) => {
                if !out.iter().any(|x| x == s) {
                    out.push(s.to_owned());
                }
            }
            _ => r.error(
                join_index(&o.at(key), i),
                format!("unknown {key} entry {}", super::short(item)),
                format!("use some of: {}", allowed.join(", ")),
            ),
        }
    }
    if out.is_empty() {
        r.error(
            o.at(key),
            "must not be empty",
            format!("use some of: {}", allowed.join(", ")),
        );
    }
    out
}

/// Every relationship leads to a reviewed resource.
fn check_relationships(r: &mut Report, e: &Obj, resources: &BTreeMap<String, Resource>) {
    for (name, res) in resources {
        for (rel, spec) in &res.relationships {
            if !resources.contains_key(&spec.resource) {
                let p = join_key(
                    &join_key(&join_key(&e.at("resources"), name), "relationships"),
                    rel,
                );
                r.error(
                    join_key(&p, "resource"),
                    format!(
                        "`{}` is not a resource of this boundary",
                        spec.resource.escape_debug()
                    ),
                    "review the related table as a resource too",
                );
            }
        }
    }
}
