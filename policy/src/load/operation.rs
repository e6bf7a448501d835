//! A proposal capability's `operation`, in Synapsor Runner 1.x's shape:
//! `kind` (`update`, `insert` or `delete`), `cardinality`, `deduplication`
//! (INSERT) and `version_advance` (UPDATE), plus Airlock's
//! `acknowledge_effects` (DELETE). Absent, it is a single-row UPDATE, as
//! it always was.

use serde_json::Value;

use super::{Obj, check_identifier, join_index, join_key, type_name};
use crate::config::{
    AggregateBound, ConflictGuard, DedupComponent, DedupSource, MAX_AGGREGATE_BOUNDS,
    MAX_SELECTION_TERMS, MAX_SET_ROWS, Measure, Operation, OperationKind, SelectionTerm, SetSpec,
    Target, VersionStrategy,
};
use crate::diagnostics::Report;

const OPERATION_KEYS: &[&str] = &[
    "kind",
    "cardinality",
    "deduplication",
    "version_advance",
    "acknowledge_effects",
    // Bounded sets (`cardinality: "set"`); `batch` is known and refused.
    "selection",
    "max_rows",
    "aggregate_bounds",
    "batch",
];

/// Most columns in one de-duplication identity (Runner's limit).
pub const MAX_DEDUP_COMPONENTS: usize = 8;

/// Parse `operation`. `patch_columns` are the columns the patch sets;
/// `conflict_guard` is the capability's, if it has one.
pub(super) fn parse_operation(
    r: &mut Report,
    c: &Obj,
    target: Option<&Target>,
    patch_columns: &[String],
    conflict_guard: Option<&ConflictGuard>,
) -> Option<Operation> {
    let Some(v) = c.get("operation") else {
        return Some(Operation::default());
    };
    let o = Obj::open(r, &c.at("operation"), v, OPERATION_KEYS)?;
    let kind = match o
        .req_string(
            r,
            "kind",
            "add \"kind\": \"update\", \"insert\" or \"delete\"",
        )?
        .as_str()
    {
        "update" => OperationKind::Update,
        "insert" => OperationKind::Insert,
        "delete" => OperationKind::Delete,
        other => {
            r.error(
                o.at("kind"),
                format!("unknown operation kind `{}`", other.escape_debug()),
                "use \"update\", \"insert\" or \"delete\"",
            );
            return None;
        }
    };
    let mut ok = true;
    let mut set = None;
    match o.string(r, "cardinality").as_deref() {
        None | Some("single") => {
            for key in ["selection", "max_rows", "aggregate_bounds", "batch"] {
                if o.has(key) {
                    r.error(
                        o.at(key),
                        format!("`{key}` applies only to a bounded set (`cardinality: \"set\"`)"),
                        format!("remove `{key}`"),
                    );
                    ok = false;
                }
            }
        }
        Some("set") => {
            set = parse_set(r, &o, kind, conflict_guard);
            ok &= set.is_some();
        }
        Some(other) => {
            r.error(
                o.at("cardinality"),
                format!("unknown cardinality `{}`", other.escape_debug()),
                "use \"single\" or \"set\"",
            );
            ok = false;
        }
    }

    let version_advance = if o.has("version_advance") {
        if kind != OperationKind::Update {
            r.error(
                o.at("version_advance"),
                format!(
                    "`version_advance` applies only to an update, not to {}",
                    kind.as_str()
                ),
                "remove `version_advance`",
            );
            ok = false;
            None
        } else {
            let a = parse_version_advance(r, &o, conflict_guard);
            ok &= a.is_some();
            a
        }
    } else {
        None
    };

    let deduplication = match (kind, o.has("deduplication")) {
        (OperationKind::Insert, true) => {
            let d = parse_deduplication(r, &o, target, patch_columns);
            ok &= d.is_some();
            d.unwrap_or_default()
        }
        (OperationKind::Insert, false) => {
            o.missing(r, "deduplication", "add \"deduplication\": {\"components\": [{\"column\": \"request_id\", \"source\": \"proposal_id\"}]} over columns a PRIMARY KEY or UNIQUE constraint covers, so a retried insert cannot add a second row");
            ok = false;
            Vec::new()
        }
        (_, true) => {
            r.error(
                o.at("deduplication"),
                format!(
                    "`deduplication` applies only to an insert, not to {}",
                    kind.as_str()
                ),
                "remove `deduplication`",
            );
            ok = false;
            Vec::new()
        }
        (_, false) => Vec::new(),
    };

    let (mut triggers, mut cascades) = (Vec::new(), Vec::new());
    if o.has("acknowledge_effects") {
        if kind == OperationKind::Delete {
            match parse_acknowledged(r, &o) {
                Some((t, c)) => (triggers, cascades) = (t, c),
                None => ok = false,
            }
        } else {
            r.error(
                o.at("acknowledge_effects"),
                format!(
                    "`acknowledge_effects` applies only to a delete, not to {}",
                    kind.as_str()
                ),
                "remove `acknowledge_effects`",
            );
            ok = false;
        }
    }
    ok.then_some(Operation {
        kind,
        version_advance,
        deduplication,
        acknowledged_triggers: triggers,
        acknowledged_cascades: cascades,
        set,
    })
}

/// `cardinality: "set"`: a bounded-set UPDATE or DELETE, in Runner's
/// shape (`selection.all`, `max_rows`, `aggregate_bounds`) plus Airlock's
/// `selection.keys`.
fn parse_set(
    r: &mut Report,
    o: &Obj,
    kind: OperationKind,
    conflict_guard: Option<&ConflictGuard>,
) -> Option<SetSpec> {
    let mut ok = true;
    if kind == OperationKind::Insert {
        r.error(
            o.at("cardinality"),
            "batch inserts (`cardinality: \"set\"` with `kind: \"insert\"`) are not supported by this version of Airlock",
            "propose one row per proposal with a single-row insert, or apply the batch through an http_handler or command_handler executor",
        );
        return None;
    }
    if o.has("batch") {
        r.error(
            o.at("batch"),
            "`batch` belongs to batch inserts, which this version of Airlock does not support",
            "remove `batch`; a set UPDATE or DELETE is chosen by `selection`",
        );
        ok = false;
    }
    let max_rows = match o.get("max_rows") {
        Some(_) => o
            .integer(r, "max_rows", 1, u64::from(MAX_SET_ROWS))
            .map(|n| n as u32),
        None => {
            o.missing(
                r,
                "max_rows",
                &format!("add \"max_rows\": the most rows one proposal may change (1 to {MAX_SET_ROWS}); a selection matching more is refused"),
            );
            None
        }
    };
    let (selection, keys) = parse_selection(r, o).unzip();
    let bounds = parse_aggregate_bounds(r, o, kind);
    match (kind, conflict_guard) {
        (_, Some(ConflictGuard::Column { .. })) => {}
        (_, None) => ok = false,
        (_, Some(_)) => {
            r.error(
                o.at("cardinality"),
                "a bounded set needs an exact version column, so one stale member can abort the whole set",
                "write \"conflict_guard\": {\"column\": \"version\"}",
            );
            ok = false;
        }
    }
    if kind == OperationKind::Update
        && !o
            .get("version_advance")
            .and_then(|v| v.get("strategy"))
            .is_some_and(|s| s == "integer_increment")
    {
        r.error(
            o.at("version_advance"),
            "a set UPDATE must advance an integer version by one, so every member's change is detectable",
            "add \"version_advance\": {\"column\": \"version\", \"strategy\": \"integer_increment\"}",
        );
        ok = false;
    }
    let (selection, keys, max_rows, aggregate_bounds) = (selection?, keys?, max_rows?, bounds?);
    if let Some(n) = keys.len().checked_sub(max_rows as usize).filter(|n| *n > 0) {
        r.error(
            join_key(&o.at("selection"), "keys"),
            format!(
                "{} keys but `max_rows` is {max_rows} ({n} too many)",
                keys.len()
            ),
            "list at most `max_rows` keys, or raise `max_rows`",
        );
        return None;
    }
    ok.then_some(SetSpec {
        selection,
        keys,
        max_rows,
        aggregate_bounds,
    })
}

fn parse_selection(r: &mut Report, o: &Obj) -> Option<(Vec<SelectionTerm>, Vec<Value>)> {
    let Some(v) = o.get("selection") else {
        o.missing(r, "selection", "add \"selection\": {\"all\": [{\"column\": \"status\", \"operator\": \"eq\", \"value\": \"overdue\"}]}: the reviewed rows the set is chosen from");
        return None;
    };
    let s = Obj::open(r, &o.at("selection"), v, &["all", "keys"])?;
    if !s.has("all") && !s.has("keys") {
        r.error(
            o.at("selection"),
            "a selection needs `all` (fixed equality terms) or `keys` (reviewed primary-key values)",
            "add \"all\": [{\"column\": \"status\", \"operator\": \"eq\", \"value\": \"overdue\"}]",
        );
        return None;
    }
    let mut ok = true;
    let mut terms: Vec<SelectionTerm> = Vec::new();
    if let Some(items) = s.array(r, "all") {
        if !(1..=MAX_SELECTION_TERMS).contains(&items.len()) {
            r.error(
                s.at("all"),
                format!("a selection has 1 to {MAX_SELECTION_TERMS} terms"),
                "list the fixed `column = value` terms every member must match",
            );
            ok = false;
        }
        for (i, item) in items.iter().enumerate() {
            let path = join_index(&s.at("all"), i);
            let Some(term) = selection_term(
                r,
                &path,
                item,
                "use \"eq\": a set is chosen by exact equality only (ranges and patterns belong to an app-owned executor)",
            ) else {
                ok = false;
                continue;
            };
            ok &= term.operator_ok;
            if terms.iter().any(|x| x.column == term.term.column) {
                r.error(
                    &term.column_path,
                    format!("`{}` appears twice in the selection", term.term.column),
                    "give each column one term",
                );
                ok = false;
            }
            terms.push(term.term);
        }
    }
    let mut keys: Vec<Value> = Vec::new();
    if let Some(items) = s.array(r, "keys") {
        if items.is_empty() {
            r.error(
                s.at("keys"),
                "`keys` is empty",
                "list the reviewed primary-key values, or remove `keys`",
            );
            ok = false;
        }
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(_) | Value::Number(_) if !keys.contains(item) => {
                    keys.push(item.clone())
                }
                Value::String(_) | Value::Number(_) => {
                    r.error(
                        join_index(&s.at("keys"), i),
                        "this key is listed twice",
                        "list each key once",
                    );
                    ok = false;
                }
                other => {
                    r.error(
                        join_index(&s.at("keys"), i),
                        format!(
                            "a key must be a string or a number, found {}",
                            type_name(other)
                        ),
                        "write the primary-key value",
                    );
                    ok = false;
                }
            }
        }
    }
    ok.then_some((terms, keys))
}

fn parse_aggregate_bounds(
    r: &mut Report,
    o: &Obj,
    kind: OperationKind,
) -> Option<Vec<AggregateBound>> {
    let Some(items) = o.array(r, "aggregate_bounds") else {
        if !o.has("aggregate_bounds") {
            o.missing(r, "aggregate_bounds", "add \"aggregate_bounds\": [{\"column\": \"balance_cents\", \"measure\": \"before\", \"maximum\": 50000}]: a set needs at least one cap on what it adds up to");
        }
        return None;
    };
    if !(1..=MAX_AGGREGATE_BOUNDS).contains(&items.len()) {
        r.error(
            o.at("aggregate_bounds"),
            format!("a set has 1 to {MAX_AGGREGATE_BOUNDS} aggregate bounds"),
            "cap the total of at least one numeric column, e.g. {\"column\": \"balance_cents\", \"measure\": \"before\", \"maximum\": 50000}",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = join_index(&o.at("aggregate_bounds"), i);
        let Some(b) = Obj::open(r, &path, item, &["column", "measure", "maximum"]) else {
            ok = false;
            continue;
        };
        let column = b.req_identifier(r, "column", "add \"column\": a numeric column");
        let measure = match b
            .req_string(
                r,
                "measure",
                "add \"measure\": \"before\", \"after\" or \"absolute_delta\"",
            )
            .as_deref()
        {
            Some("before") => Some(Measure::Before),
            Some("after" | "absolute_delta") if kind == OperationKind::Delete => {
                r.error(
                    b.at("measure"),
                    "a deleted row has no value after, so a set DELETE can only bound `before`",
                    "write \"measure\": \"before\"",
                );
                None
            }
            Some("after") => Some(Measure::After),
            Some("absolute_delta") => Some(Measure::AbsoluteDelta),
            Some(other) => {
                r.error(
                    b.at("measure"),
                    format!("unknown measure `{}`", other.escape_debug()),
                    "use \"before\", \"after\" or \"absolute_delta\"",
                );
                None
            }
            None => None,
        };
        let maximum = match b.get("maximum") {
            Some(_) => b.number(r, "maximum").filter(|m| {
                let fine = m.is_finite() && *m >= 0.0;
                if !fine {
                    r.error(
                        b.at("maximum"),
                        "the maximum must be a number of at least 0",
                        "write the largest total the reviewer accepts",
                    );
                }
                fine
            }),
            None => {
                b.missing(
                    r,
                    "maximum",
                    "add \"maximum\": the largest total the reviewer accepts",
                );
                None
            }
        };
        match (column, measure, maximum) {
            (Some(column), Some(measure), Some(maximum)) => out.push(AggregateBound {
                column,
                measure,
                maximum,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn parse_version_advance(
    r: &mut Report,
    o: &Obj,
    conflict_guard: Option<&ConflictGuard>,
) -> Option<VersionStrategy> {
    let a = Obj::open(
        r,
        &o.at("version_advance"),
        o.get("version_advance")?,
        &["column", "strategy"],
    )?;
    let column = a.req_identifier(r, "column", "add \"column\": the conflict-guard column");
    let strategy = match a
        .req_string(
            r,
            "strategy",
            "add \"strategy\": \"integer_increment\", \"timestamp\" or \"database_generated\"",
        )?
        .as_str()
    {
        "integer_increment" => VersionStrategy::IntegerIncrement,
        "timestamp" => VersionStrategy::Timestamp,
        "database_generated" => VersionStrategy::DatabaseGenerated,
        other => {
            r.error(
                a.at("strategy"),
                format!("unknown version strategy `{}`", other.escape_debug()),
                "use \"integer_increment\", \"timestamp\" or \"database_generated\"",
            );
            return None;
        }
    };
    let column = column?;
    match conflict_guard {
        Some(ConflictGuard::Column { column: guard }) if *guard == column => Some(strategy),
        Some(ConflictGuard::Column { column: guard }) => {
            r.error(
                a.at("column"),
                format!("`{column}` is not the conflict-guard column `{guard}`"),
                format!("write \"column\": \"{guard}\": the version that advances is the one the guard compares"),
            );
            None
        }
        _ => {
            r.error(
                a.at("column"),
                "a version can only advance with a conflict-guard column",
                format!("add \"conflict_guard\": {{\"column\": \"{column}\"}}"),
            );
            None
        }
    }
}

fn parse_deduplication(
    r: &mut Report,
    o: &Obj,
    target: Option<&Target>,
    patch_columns: &[String],
) -> Option<Vec<DedupComponent>> {
    let d = Obj::open(
        r,
        &o.at("deduplication"),
        o.get("deduplication")?,
        &["components"],
    )?;
    let items = match d.array(r, "components") {
        Some(items) if (1..=MAX_DEDUP_COMPONENTS).contains(&items.len()) => items,
        Some(_) => {
            r.error(
                d.at("components"),
                format!("a de-duplication identity has 1 to {MAX_DEDUP_COMPONENTS} columns"),
                "list the columns of the PRIMARY KEY or UNIQUE constraint that identifies a proposal's row",
            );
            return None;
        }
        None => {
            if !d.has("components") {
                d.missing(r, "components", "add \"components\": [{\"column\": \"request_id\", \"source\": \"proposal_id\"}]");
            }
            return None;
        }
    };
    let mut out: Vec<DedupComponent> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = join_index(&d.at("components"), i);
        let Some(comp) = Obj::open(r, &path, item, &["column", "source", "fixed"]) else {
            ok = false;
            continue;
        };
        let column = comp.req_identifier(r, "column", "add \"column\": a column of the identity");
        let source = comp.req_string(
            r,
            "source",
            "add \"source\": \"proposal_id\", \"trusted_tenant\" or \"fixed\"",
        );
        let (Some(column), Some(source)) = (column, source) else {
            ok = false;
            continue;
        };
        let source = match source.as_str() {
            "proposal_id" => DedupSource::ProposalId,
            "trusted_tenant" => {
                let tenant_key = target.and_then(|t| t.tenant_key.as_deref());
                if tenant_key != Some(column.as_str()) {
                    r.error(
                        comp.at("column"),
                        format!("`trusted_tenant` fills the tenant key, and `{column}` is not it"),
                        match tenant_key {
                            Some(tk) => format!("write \"column\": \"{tk}\""),
                            None => "set `target.tenant_key`".to_owned(),
                        },
                    );
                    ok = false;
                }
                DedupSource::TrustedTenant
            }
            "fixed" => match comp.get("fixed") {
                Some(v) if !(v.is_array() || v.is_object() || v.is_null()) => {
                    DedupSource::Fixed(v.clone())
                }
                Some(_) => {
                    r.error(
                        comp.at("fixed"),
                        "a fixed identity value must be a string, number or boolean",
                        "write a scalar value",
                    );
                    ok = false;
                    continue;
                }
                None => {
                    comp.missing(
                        r,
                        "fixed",
                        "add \"fixed\": the reviewed value of this column",
                    );
                    ok = false;
                    continue;
                }
            },
            "item_field" => {
                r.error(
                    comp.at("source"),
                    "`item_field` identities belong to batch inserts, which this version of Airlock does not support",
                    "use \"proposal_id\", \"trusted_tenant\" or \"fixed\"",
                );
                ok = false;
                continue;
            }
            other => {
                r.error(
                    comp.at("source"),
                    format!("unknown identity source `{}`", other.escape_debug()),
                    "use \"proposal_id\", \"trusted_tenant\" or \"fixed\"",
                );
                ok = false;
                continue;
            }
        };
        if comp.has("fixed") && !matches!(source, DedupSource::Fixed(_)) {
            r.error(
                comp.at("fixed"),
                "`fixed` applies only to `source: \"fixed\"`",
                "remove `fixed`",
            );
            ok = false;
        }
        if out.iter().any(|c| c.column == column) {
            r.error(
                comp.at("column"),
                format!("`{column}` appears twice in the identity"),
                "list each column once",
            );
            ok = false;
        } else if patch_columns.contains(&column) {
            // The model's arguments must not choose the identity.
            r.error(
                comp.at("column"),
                format!("`{column}` is set by the patch, so the model would choose the identity"),
                format!(
                    "remove `{column}` from `patch` and `allowed_columns`; the executor fills it"
                ),
            );
            ok = false;
        }
        out.push(DedupComponent { column, source });
    }
    if ok && !out.iter().any(|c| c.source == DedupSource::ProposalId) {
        r.error(
            d.at("components"),
            "the identity has no `proposal_id` column, so two approved proposals would collide on one row",
            "add {\"column\": \"request_id\", \"source\": \"proposal_id\"} (a column under the same UNIQUE constraint)",
        );
        ok = false;
    }
    ok.then_some(out)
}

fn parse_acknowledged(r: &mut Report, o: &Obj) -> Option<(Vec<String>, Vec<String>)> {
    let a = Obj::open(
        r,
        &o.at("acknowledge_effects"),
        o.get("acknowledge_effects")?,
        &["triggers", "cascades"],
    )?;
    let triggers = if a.has("triggers") {
        a.identifier_list(r, "triggers")?
    } else {
        Vec::new()
    };
    let mut cascades = Vec::new();
    let mut ok = true;
    if let Some(items) = a.array(r, "cascades") {
        for (i, item) in items.iter().enumerate() {
            let path = join_index(&a.at("cascades"), i);
            match item.as_str().and_then(|s| s.split_once('.')) {
                Some((schema, table))
                    if check_identifier(r, &path, schema) & check_identifier(r, &path, table) =>
                {
                    cascades.push(format!("{schema}.{table}"));
                }
                Some(_) => ok = false,
                None => {
                    r.error(
                        &path,
                        "expected \"schema.table\": the table whose foreign key cascades from this one",
                        "write e.g. \"public.invoice_lines\"",
                    );
                    ok = false;
                }
            }
        }
    } else if a.has("cascades") {
        ok = false;
    }
    ok.then_some((triggers, cascades))
}

/// One term of a fixed selection, as parsed.
pub(super) struct ParsedTerm {
    pub term: SelectionTerm,
    /// The path of its `column`, for errors about it.
    pub column_path: String,
    /// Its operator is `eq` (else an error was reported; the term is still
    /// returned so later checks report what else is wrong with it).
    pub operator_ok: bool,
}

/// One `{"column", "operator": "eq", "value"}` term of a fixed selection
/// (a bounded set's or an aggregate read's); `None` once a missing column or
/// value is reported. `eq_only` is the fix for another operator.
pub(super) fn selection_term(
    r: &mut Report,
    path: &str,
    item: &Value,
    eq_only: &str,
) -> Option<ParsedTerm> {
    let t = Obj::open(r, path, item, &["column", "operator", "value"])?;
    let column = t.req_identifier(r, "column", "add \"column\": a reviewed column");
    let operator_ok = match t
        .req_string(r, "operator", "add \"operator\": \"eq\"")
        .as_deref()
    {
        Some("eq") => true,
        Some(other) => {
            r.error(
                t.at("operator"),
                format!("unknown selection operator `{}`", other.escape_debug()),
                eq_only,
            );
            false
        }
        None => false,
    };
    let value = match t.get("value") {
        Some(v @ (Value::String(_) | Value::Number(_))) => Some(v.clone()),
        Some(v) => {
            r.error(
                t.at("value"),
                format!(
                    "a selection value must be a string or a number, found {}",
                    type_name(v)
                ),
                "write the reviewed literal as a string or a number (booleans and null are not supported)",
            );
            None
        }
        None => {
            t.missing(r, "value", "add \"value\": the reviewed literal");
            None
        }
    };
    Some(ParsedTerm {
        term: SelectionTerm {
            column: column?,
            value: value?,
        },
        column_path: t.at("column"),
        operator_ok,
    })
}
