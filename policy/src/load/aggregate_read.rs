//! A capability of kind `aggregate_read`: Synapsor Runner 1.x's
//! `aggregate: {function, count_mode, column, selection,
//! minimum_group_size}` with `args: {}` and `visible_columns: []`, plus
//! Airlock's `min`/`max`, `group_by` and `max_groups`
//! (`crate::aggregate_read`). The keys of a read that make no sense for an
//! aggregate (`lookup`, `max_rows`, the proposal keys) are refused, each
//! with its own message.

use serde_json::Value;

use super::{Obj, PROPOSAL_ONLY_KEYS, check_identifier, join_index, type_name};
use crate::aggregate_read::{
    AggregateSpec, CountMode, DEFAULT_MAX_GROUPS, Function, MAX_GROUP_BY, MAX_GROUPS_LIMIT,
    MAX_MINIMUM_GROUP_SIZE, RESERVED_NAMES,
};
use crate::config::{Kind, MAX_SELECTION_TERMS, SelectionTerm, Target};
use crate::diagnostics::Report;

const AGGREGATE_KEYS: &[&str] = &[
    "function",
    "count_mode",
    "column",
    "selection",
    "minimum_group_size",
    // Airlock's.
    "group_by",
    "max_groups",
];

/// Parse `aggregate` for a capability of kind `kind` (`None`: the kind
/// itself was invalid). For an aggregate read, also check the
/// capability-level keys that differ from a read's; for any other kind,
/// refuse `aggregate`. `Some` only for a valid aggregate read.
pub(super) fn parse(
    r: &mut Report,
    c: &Obj,
    kind: Option<Kind>,
    target: Option<&Target>,
) -> Option<AggregateSpec> {
    if kind != Some(Kind::AggregateRead) {
        if kind.is_some() && c.has("aggregate") {
            r.error(
                c.at("aggregate"),
                "`aggregate` applies only to capabilities of kind `aggregate_read`",
                "remove it, or set \"kind\": \"aggregate_read\" (with \"args\": {} and \"visible_columns\": [])",
            );
        }
        return None;
    }
    let shape_ok = check_capability_shape(r, c);
    let Some(v) = c.get("aggregate") else {
        c.missing(
            r,
            "aggregate",
            "add \"aggregate\": {\"function\": \"count\", \"count_mode\": \"rows\", \"minimum_group_size\": 5}",
        );
        return None;
    };
    let a = Obj::open(r, &c.at("aggregate"), v, AGGREGATE_KEYS)?;
    parse_aggregate(r, &a, target).filter(|_| shape_ok)
}

/// `args` is `{}`, `visible_columns` is `[]`, and nothing of a row read or
/// a proposal is present.
fn check_capability_shape(r: &mut Report, c: &Obj) -> bool {
    let before = r.errors().count();
    match c.get("args") {
        None => c.missing(
            r,
            "args",
            "add \"args\": {}: an aggregate read takes no arguments",
        ),
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(Value::Object(_)) => r.error(
            c.at("args"),
            "an aggregate read takes no arguments: the model may not choose what is aggregated or which records count",
            "write \"args\": {}; the records counted are the reviewed `aggregate.selection`'s, in the trusted tenant",
        ),
        Some(other) => r.error(
            c.at("args"),
            format!("expected an object, found {}", type_name(other)),
            "write \"args\": {}",
        ),
    }
    match c.get("visible_columns") {
        None => c.missing(
            r,
            "visible_columns",
            "add \"visible_columns\": []: an aggregate read shows no record",
        ),
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => r.error(
            c.at("visible_columns"),
            "an aggregate read returns no columns of any record",
            "write \"visible_columns\": []; to break the result down, group it by reviewed columns with `aggregate.group_by`",
        ),
    }
    if c.has("lookup") {
        r.error(
            c.at("lookup"),
            "an aggregate read looks up no record",
            "remove `lookup`; the records aggregated are the reviewed `aggregate.selection`'s",
        );
    }
    if c.has("max_rows") {
        r.error(
            c.at("max_rows"),
            "an aggregate read returns one value (or one per reviewed group), never rows",
            "remove `max_rows`; cap a grouped aggregate with `aggregate.max_groups`",
        );
    }
    for k in PROPOSAL_ONLY_KEYS {
        if c.has(k) {
            r.error(
                c.at(k),
                format!(
                    "`{k}` applies only to proposal capabilities; an aggregate read changes nothing"
                ),
                format!("remove `{k}`"),
            );
        }
    }
    r.errors().count() == before
}

fn parse_aggregate(r: &mut Report, a: &Obj, target: Option<&Target>) -> Option<AggregateSpec> {
    let mut ok = true;
    let function = match a
        .req_string(
            r,
            "function",
            "add \"function\": \"count\", \"sum\", \"avg\", \"min\" or \"max\"",
        )
        .as_deref()
    {
        Some(f) => {
            let parsed = Function::parse(f);
            if parsed.is_none() {
                r.error(
                    a.at("function"),
                    format!("unknown aggregate function `{}`", f.escape_debug()),
                    "use \"count\", \"sum\" or \"avg\" (Synapsor Runner's), or \"min\" or \"max\" (Airlock's)",
                );
            }
            parsed
        }
        None => None,
    };
    let count_mode = parse_count_mode(r, a, function, &mut ok);
    let column = parse_column(r, a, function, count_mode, &mut ok);
    if matches!(function, Some(Function::Min | Function::Max)) {
        r.warning(
            a.at("function"),
            "`min` and `max` release one record's own value (the lowest or highest), however many records the group has",
            "prefer `avg` or `sum` unless releasing that one value was reviewed and intended",
        );
    }
    let selection = match a.get("selection") {
        Some(v) => parse_selection(r, a, v, target),
        None => Some(Vec::new()),
    };
    let minimum_group_size = if a.has("minimum_group_size") {
        a.integer(r, "minimum_group_size", 1, MAX_MINIMUM_GROUP_SIZE)
    } else {
        a.missing(
            r,
            "minimum_group_size",
            "add \"minimum_group_size\": 5: a result over fewer records is withheld",
        );
        None
    };
    if minimum_group_size == Some(1) {
        r.warning(
            a.at("minimum_group_size"),
            "a minimum group size of 1 withholds nothing: a result over one record is that record's value, and identifies it",
            "use 5 or more unless releasing single records' values was reviewed and intended",
        );
    }
    let group_by = parse_group_by(r, a, target);
    let grouped = group_by.as_ref().is_some_and(|g| !g.is_empty());
    let max_groups = match a.get("max_groups") {
        None => Some(DEFAULT_MAX_GROUPS),
        Some(_) if !grouped && group_by.is_some() => {
            r.error(
                a.at("max_groups"),
                "`max_groups` applies only to a grouped aggregate",
                "remove `max_groups`, or group the result with `group_by`",
            );
            None
        }
        Some(_) => a
            .integer(r, "max_groups", 1, u64::from(MAX_GROUPS_LIMIT))
            .map(|n| n as u32),
    };
    if !ok {
        return None;
    }
    Some(AggregateSpec {
        function: function?,
        count_mode: count_mode?,
        column: column?,
        selection: selection?,
        minimum_group_size: minimum_group_size?,
        group_by: group_by?,
        max_groups: max_groups?,
    })
}

/// `Some(None)` for a function that is not a count; `None` on error.
fn parse_count_mode(
    r: &mut Report,
    a: &Obj,
    function: Option<Function>,
    ok: &mut bool,
) -> Option<Option<CountMode>> {
    let mode = match a.string(r, "count_mode").as_deref() {
        None => None,
        Some("rows") => Some(CountMode::Rows),
        Some("non_null") => Some(CountMode::NonNull),
        Some(other) => {
            r.error(
                a.at("count_mode"),
                format!("unknown count mode `{}`", other.escape_debug()),
                "use \"rows\" (every matching record) or \"non_null\" (the records where `column` is set)",
            );
            *ok = false;
            return None;
        }
    };
    match (function, mode) {
        (Some(Function::Count), Some(m)) => Some(Some(m)),
        (Some(Function::Count), None) if !a.has("count_mode") => {
            a.missing(
                r,
                "count_mode",
                "add \"count_mode\": \"rows\" (every matching record) or \"non_null\" (the records where `column` is set)",
            );
            None
        }
        (Some(Function::Count), None) => None,
        (Some(f), Some(_)) => {
            r.error(
                a.at("count_mode"),
                format!("`count_mode` applies only to `count`, not `{}`", f.as_str()),
                "remove `count_mode`",
            );
            None
        }
        (Some(_), None) => Some(None),
        (None, _) => None,
    }
}

/// The aggregated column: none for a count of rows, required otherwise.
fn parse_column(
    r: &mut Report,
    a: &Obj,
    function: Option<Function>,
    count_mode: Option<Option<CountMode>>,
    ok: &mut bool,
) -> Option<Option<String>> {
    let column = if a.has("column") {
        let c = a.identifier(r, "column");
        if c.is_none() {
            *ok = false;
        }
        c
    } else {
        None
    };
    match (function?, count_mode?) {
        (Function::Count, Some(CountMode::Rows)) if a.has("column") => {
            r.error(
                a.at("column"),
                "a count of rows counts every matching record: it uses no column",
                "remove `column`, or set \"count_mode\": \"non_null\" to count the records where it is set",
            );
            None
        }
        (Function::Count, Some(CountMode::Rows)) => Some(None),
        (f, _) if !a.has("column") => {
            let what = if f == Function::Count {
                "count (the records where it is set)".to_owned()
            } else {
                format!("take the {} of", f.as_str())
            };
            a.missing(
                r,
                "column",
                &format!("add \"column\": the reviewed column to {what}"),
            );
            None
        }
        _ => column.map(Some),
    }
}

/// `selection: {"all": [{"column", "operator": "eq", "value"}, …]}`: 1 to
/// 8 fixed terms, string or number literals, never on the tenant or
/// principal scope key (those come from the trusted context).
fn parse_selection(
    r: &mut Report,
    a: &Obj,
    v: &Value,
    target: Option<&Target>,
) -> Option<Vec<SelectionTerm>> {
    let s = Obj::open(r, &a.at("selection"), v, &["all"])?;
    let Some(items) = s.array(r, "all") else {
        if !s.has("all") {
            s.missing(
                r,
                "all",
                "add \"all\": [{\"column\": \"status\", \"operator\": \"eq\", \"value\": \"open\"}], or remove `selection` to aggregate every record of the tenant",
            );
        }
        return None;
    };
    let mut ok = true;
    if !(1..=MAX_SELECTION_TERMS).contains(&items.len()) {
        r.error(
            s.at("all"),
            format!("a selection has 1 to {MAX_SELECTION_TERMS} terms"),
            "list the fixed `column = value` terms every aggregated record must match, or remove `selection`",
        );
        ok = false;
    }
    let authority: Vec<&str> = target
        .map(|t| {
            t.tenant_key
                .iter()
                .chain(&t.principal_scope_key)
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    let mut terms: Vec<SelectionTerm> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = join_index(&s.at("all"), i);
        let Some(parsed) = super::operation::selection_term(
            r,
            &path,
            item,
            "use \"eq\": an aggregate's records are chosen by exact equality only (ranges and patterns belong in a reviewed view)",
        ) else {
            ok = false;
            continue;
        };
        ok &= parsed.operator_ok;
        let SelectionTerm { column, value } = parsed.term;
        let column_path = parsed.column_path;
        if authority.contains(&column.as_str()) {
            r.error(
                &column_path,
                format!("`{column}` is the target's tenant or principal scope key: its value comes from the trusted context, never from the config"),
                "remove this term; every aggregate is already scoped to the trusted tenant (and principal)",
            );
            ok = false;
        } else if terms.iter().any(|x| x.column == column) {
            r.error(
                &column_path,
                format!("`{column}` appears twice in the selection"),
                "give each column one term",
            );
            ok = false;
        }
        terms.push(SelectionTerm { column, value });
    }
    ok.then_some(terms)
}

/// `group_by`: 0 to 3 distinct reviewed columns, none the tenant,
/// principal scope or primary key nor a name of the result's own.
fn parse_group_by(r: &mut Report, a: &Obj, target: Option<&Target>) -> Option<Vec<String>> {
    let Some(items) = a.array(r, "group_by") else {
        return (!a.has("group_by")).then(Vec::new);
    };
    let path = a.at("group_by");
    let mut ok = true;
    if items.len() > MAX_GROUP_BY {
        r.error(
            &path,
            format!(
                "{} group columns; an aggregate groups by at most {MAX_GROUP_BY}",
                items.len()
            ),
            "group by fewer reviewed columns: each one splits the records into smaller groups",
        );
        ok = false;
    }
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = join_index(&path, i);
        let Some(col) = item.as_str() else {
            r.error(
                &p,
                format!("expected a column name, found {}", type_name(item)),
                "write the column name as a string",
            );
            ok = false;
            continue;
        };
        if !check_identifier(r, &p, col) {
            ok = false;
            continue;
        }
        let clash = target.and_then(|t| {
            if t.tenant_key.as_deref() == Some(col) {
                Some("the tenant key: every record of a read is the trusted tenant's")
            } else if t.principal_scope_key.as_deref() == Some(col) {
                Some("the principal scope key: every record of a read is the trusted principal's")
            } else if t.primary_key == col {
                Some("the primary key: every record would be a group of its own")
            } else {
                None
            }
        });
        if let Some(why) = clash {
            r.error(
                &p,
                format!("an aggregate cannot be grouped by `{col}`, {why}"),
                "group by a reviewed business column such as a region or a status",
            );
            ok = false;
        } else if RESERVED_NAMES.contains(&col) {
            r.error(
                &p,
                format!("a group column cannot be named `{col}`: the result uses that name itself"),
                "expose the column under another name through a reviewed view",
            );
            ok = false;
        } else if out.iter().any(|c| c == col) {
            r.error(
                &p,
                format!("column `{col}` is listed twice"),
                "list each column once",
            );
            ok = false;
        } else {
            out.push(col.to_owned());
        }
    }
    ok.then_some(out)
}
