//! A proposal capability's `operation`, in Synapsor Runner 1.x's shape:
//! `kind` (`update`, `insert` or `delete`), `cardinality`, `deduplication`
//! (INSERT) and `version_advance` (UPDATE), plus Airlock's
//! `acknowledge_effects` (DELETE). Absent, it is a single-row UPDATE, as
//! it always was.

use super::{Obj, check_identifier, join_index};
use crate::config::{
    ConflictGuard, DedupComponent, DedupSource, Operation, OperationKind, Target, VersionStrategy,
};
use crate::diagnostics::Report;

const OPERATION_KEYS: &[&str] = &[
    "kind",
    "cardinality",
    "deduplication",
    "version_advance",
    "acknowledge_effects",
    // Runner's bounded-set keys: known, refused below until sets land.
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
            r.error(
                o.at("cardinality"),
                "bounded set writes are not supported by this version of Airlock",
                "propose one row per proposal, or apply the set through an http_handler or command_handler executor",
            );
            ok = false;
        }
        Some(other) => {
            r.error(
                o.at("cardinality"),
                format!("unknown cardinality `{}`", other.escape_debug()),
                "use \"single\"",
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
    })
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
