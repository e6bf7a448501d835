//! A list read's `list` (Airlock's own key) and the argument features it
//! uses: `format` on strings, and `array` arguments with `items` and
//! `max_items` for `in` filters. The rules themselves are described in
//! `crate::list_read`; this reads them from the config, naming the path,
//! what is wrong and what to write, for each.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Obj, join_index, short, type_name};
use crate::config::{ArgSpec, ArgType, ArrayItems, StringFormat, Target};
use crate::diagnostics::Report;
use crate::list_read::{
    DEFAULT_LIMIT, Direction, Filter, FilterOp, ListSpec, MAX_FILTERS, MAX_IN_ITEMS, MAX_LIMIT,
    MAX_ORDER_BY, OrderTerm, RESERVED_ARGS, arg_kind, op_refusal,
};

const LIST_KEYS: &[&str] = &["filters", "order_by", "max_limit", "default_limit"];
const FILTER_KEYS: &[&str] = &["column", "op", "arg"];
const ORDER_KEYS: &[&str] = &["column", "direction"];
const ITEMS_KEYS: &[&str] = &["type", "enum"];

/// `args.<name>.format`: `"date"` or `"date-time"`, on a string argument.
pub(super) fn parse_format(
    r: &mut Report,
    a: &Obj,
    ty: ArgType,
) -> Result<Option<StringFormat>, ()> {
    let Some(f) = a.string(r, "format") else {
        return if a.has("format") { Err(()) } else { Ok(None) };
    };
    let format = match f.as_str() {
        "date" => StringFormat::Date,
        "date-time" => StringFormat::DateTime,
        other => {
            r.error(
                a.at("format"),
                format!("unknown format `{}`", other.escape_debug()),
                "use \"date\" (YYYY-MM-DD) or \"date-time\" (RFC 3339 with an offset, e.g. 2026-06-20T14:31:08Z)",
            );
            return Err(());
        }
    };
    if ty != ArgType::String {
        r.error(
            a.at("format"),
            "`format` applies only to string arguments",
            "remove it, or make the argument \"type\": \"string\"",
        );
        return Err(());
    }
    Ok(Some(format))
}

/// `items` and `max_items` of an `array` argument (and their absence on
/// every other type).
pub(super) fn parse_items(r: &mut Report, a: &Obj, ty: ArgType) -> Result<Option<ArrayItems>, ()> {
    if ty != ArgType::Array {
        if a.has("items") {
            r.error(
                a.at("items"),
                "`items` applies only to array arguments",
                "remove it, or make the argument \"type\": \"array\"",
            );
            return Err(());
        }
        return Ok(None);
    }
    let mut ok = true;
    if a.has("enum") {
        r.error(
            a.at("enum"),
            "an array argument lists its allowed values under `items`",
            "move the list to \"items\": {\"type\": \"string\", \"enum\": [ … ]}",
        );
        ok = false;
    }
    let max_items = if a.has("max_items") {
        a.integer(r, "max_items", 1, u64::from(MAX_IN_ITEMS))
    } else {
        a.missing(
            r,
            "max_items",
            "add \"max_items\": how many values a call may give at most (1 to 50)",
        );
        None
    };
    if !a.has("items") {
        a.missing(
            r,
            "items",
            "add \"items\": {\"type\": \"string\", \"enum\": [\"open\", \"closed\"]}: the reviewed values a call may choose from",
        );
        return Err(());
    }
    let i = Obj::open(
        r,
        &a.at("items"),
        a.get("items").unwrap_or(&Value::Null),
        ITEMS_KEYS,
    )
    .ok_or(())?;
    let item_ty = match i
        .req_string(r, "type", "add \"type\": \"string\" or \"integer\"")
        .as_deref()
    {
        Some("string") => Some(ArgType::String),
        Some("integer") => Some(ArgType::Integer),
        Some(other) => {
            r.error(
                i.at("type"),
                format!("array items of type `{}` are not supported", other.escape_debug()),
                "use \"string\" or \"integer\": an array argument picks values from a reviewed enum",
            );
            None
        }
        None => None,
    };
    let values = if i.has("enum") {
        i.array(r, "enum")
    } else {
        i.missing(
            r,
            "enum",
            "add \"enum\": the reviewed values a call may choose from, e.g. [\"open\", \"closed\"]",
        );
        None
    };
    let (item_ty, values, max_items) =
        (item_ty.ok_or(())?, values.ok_or(())?, max_items.ok_or(())?);
    if values.is_empty() || values.len() > 256 {
        r.error(
            i.at("enum"),
            "an enum must list 1 to 256 values",
            "list the allowed values",
        );
        return Err(());
    }
    for (n, v) in values.iter().enumerate() {
        let fits = match item_ty {
            ArgType::Integer => v.is_i64() || v.is_u64(),
            _ => v.is_string(),
        };
        let repeated = values[..n].contains(v);
        if !fits || repeated {
            r.error(
                join_index(&i.at("enum"), n),
                if repeated {
                    format!("enum value {} is listed twice", short(v))
                } else {
                    format!(
                        "enum value {} does not fit the items' type {}",
                        short(v),
                        item_ty.as_str()
                    )
                },
                format!("list each allowed {} value once", item_ty.as_str()),
            );
            ok = false;
        }
    }
    if max_items as usize > values.len() {
        r.error(
            a.at("max_items"),
            format!(
                "max_items {max_items} is more than the {} values of `items.enum`; a call lists each value at most once",
                values.len()
            ),
            format!("set \"max_items\" to {} or fewer", values.len()),
        );
        ok = false;
    }
    ok.then(|| ArrayItems {
        ty: item_ty,
        enum_values: values.clone(),
        max_items: max_items as u32,
    })
    .ok_or(())
    .map(Some)
}

/// `list`: filters over visible columns with arguments of a fitting kind,
/// an order of visible columns, and the page sizes. `args` and `visible`
/// are the capability's (when they loaded).
pub(super) fn parse_list(
    r: &mut Report,
    c: &Obj,
    args: Option<&[ArgSpec]>,
    target: Option<&Target>,
    visible: Option<&[String]>,
) -> Option<ListSpec> {
    let l = Obj::open(r, &c.at("list"), c.get("list")?, LIST_KEYS)?;
    let mut ok = true;
    if let Some(args) = args {
        for a in args {
            if RESERVED_ARGS.contains(&a.name.as_str()) {
                r.error(
                    super::join_key(&c.at("args"), &a.name),
                    format!("argument `{}` is reserved in a list read", a.name),
                    "rename it: a list read adds `limit` (rows per page) and `cursor` (the next page) to its tool itself",
                );
                ok = false;
            }
        }
    }
    if let Some(t) = target
        && let Some(visible) = visible
        && !visible.contains(&t.primary_key)
    {
        r.error(
            c.at("visible_columns"),
            format!("the primary key `{}` is not visible, but a list read's cursor carries it and the model sees the cursor", t.primary_key),
            format!("add \"{}\" to `visible_columns`", t.primary_key),
        );
        ok = false;
    }
    let filters = parse_filters(r, &l, args, target, visible);
    let order_by = parse_order(r, &l, visible);
    let max_limit = if l.has("max_limit") {
        l.integer(r, "max_limit", 1, u64::from(MAX_LIMIT))
            .map(|n| n as u32)
    } else {
        l.missing(
            r,
            "max_limit",
            "add \"max_limit\": the most rows one page may hold (1 to 100), e.g. 50",
        );
        None
    };
    let default_limit = match (l.get("default_limit"), max_limit) {
        (None, Some(max)) => Some(DEFAULT_LIMIT.min(max)),
        (Some(_), Some(max)) => l
            .integer(r, "default_limit", 1, u64::from(max))
            .map(|n| n as u32),
        (_, None) => None,
    };
    if let (Some(args), Some(filters)) = (args, &filters) {
        for a in args {
            if !RESERVED_ARGS.contains(&a.name.as_str()) && !filters.iter().any(|f| f.arg == a.name)
            {
                r.error(
                    super::join_key(&c.at("args"), &a.name),
                    format!("argument `{}` is used by no filter of `list.filters`", a.name),
                    "add a filter that uses it, or remove the argument: in a list read every argument filters the rows",
                );
                ok = false;
            }
        }
    }
    let spec = ListSpec {
        filters: filters?,
        order_by: order_by?,
        max_limit: max_limit?,
        default_limit: default_limit?,
    };
    ok.then_some(spec)
}

/// Whether `column` may be filtered or ordered by: visible, and for a
/// filter never the tenant or principal scope column.
fn check_column(
    r: &mut Report,
    path: &str,
    column: &str,
    what: &str,
    target: Option<&Target>,
    visible: Option<&[String]>,
) -> bool {
    if let Some(t) = target
        && what == "filter"
    {
        let scope = if t.tenant_key.as_deref() == Some(column) {
            Some("tenant key")
        } else if t.principal_scope_key.as_deref() == Some(column) {
            Some("principal scope key")
        } else {
            None
        };
        if let Some(scope) = scope {
            r.error(
                path,
                format!("`{column}` is the {scope}; a list read never filters it by an argument"),
                "remove this filter: every list read is scoped to the trusted tenant (and principal) automatically",
            );
            return false;
        }
    }
    if let Some(visible) = visible
        && !visible.iter().any(|v| v == column)
    {
        let why = if what == "filter" {
            "a filter on a hidden column would let the model learn its values by trying them"
        } else {
            "the cursor carries order-by values, and the model sees the cursor"
        };
        r.error(
            path,
            format!("`{column}` is not in `visible_columns`: {why}"),
            format!("add \"{column}\" to `visible_columns`, or {what} by a visible column"),
        );
        return false;
    }
    true
}

fn parse_filters(
    r: &mut Report,
    l: &Obj,
    args: Option<&[ArgSpec]>,
    target: Option<&Target>,
    visible: Option<&[String]>,
) -> Option<Vec<Filter>> {
    let Some(items) = l.array(r, "filters") else {
        if l.has("filters") {
            return None;
        }
        return Some(Vec::new());
    };
    if items.len() > MAX_FILTERS {
        r.error(
            l.at("filters"),
            format!("{} filters; the limit is {MAX_FILTERS}", items.len()),
            "split the capability",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: BTreeSet<(String, &'static str)> = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = join_index(&l.at("filters"), i);
        let Some(f) = Obj::open(r, &path, item, FILTER_KEYS) else {
            ok = false;
            continue;
        };
        let column = f.req_identifier(
            r,
            "column",
            "add \"column\": the visible column to compare, e.g. \"status\"",
        );
        let op = match f.req_string(
            r,
            "op",
            "add \"op\": \"eq\", \"gt\", \"gte\", \"lt\", \"lte\" or \"in\"",
        ) {
            Some(s) => match FilterOp::parse(&s) {
                Some(op) => Some(op),
                None => {
                    r.error(
                        f.at("op"),
                        format!("unknown filter op `{}`", s.escape_debug()),
                        "use \"eq\", \"gt\", \"gte\", \"lt\", \"lte\" or \"in\"",
                    );
                    None
                }
            },
            None => None,
        };
        let arg = f.req_string(
            r,
            "arg",
            "add \"arg\": the argument whose value the column is compared with",
        );
        let (Some(column), Some(op), Some(arg)) = (column, op, arg) else {
            ok = false;
            continue;
        };
        if !check_column(r, &f.at("column"), &column, "filter", target, visible) {
            ok = false;
        }
        if let Some(args) = args {
            match args.iter().find(|a| a.name == arg) {
                None => {
                    r.error(
                        f.at("arg"),
                        format!(
                            "`{}` is not one of this capability's args",
                            arg.escape_debug()
                        ),
                        "name an argument defined under `args`",
                    );
                    ok = false;
                }
                Some(a) => {
                    if let Some(why) = op_refusal(op, arg_kind(a)) {
                        r.error(
                            f.at("op"),
                            format!(
                                "`{}` cannot compare with argument `{arg}` ({}): {why}",
                                op.as_str(),
                                a.ty.as_str()
                            ),
                            "use an op that fits the argument, or change the argument's type",
                        );
                        ok = false;
                    }
                }
            }
        }
        if !seen.insert((column.clone(), op.as_str())) {
            r.error(
                &path,
                format!("a `{}` filter on `{column}` is listed twice", op.as_str()),
                "keep one of them",
            );
            ok = false;
        }
        out.push(Filter { column, op, arg });
    }
    ok.then_some(out)
}

fn parse_order(r: &mut Report, l: &Obj, visible: Option<&[String]>) -> Option<Vec<OrderTerm>> {
    let Some(items) = l.array(r, "order_by") else {
        if l.has("order_by") {
            return None;
        }
        return Some(Vec::new());
    };
    if items.len() > MAX_ORDER_BY {
        r.error(
            l.at("order_by"),
            format!(
                "{} order-by columns; the limit is {MAX_ORDER_BY}",
                items.len()
            ),
            "order by at most three columns (the primary key is always added last)",
        );
        return None;
    }
    let mut out: Vec<OrderTerm> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = join_index(&l.at("order_by"), i);
        let Some(o) = Obj::open(r, &path, item, ORDER_KEYS) else {
            ok = false;
            continue;
        };
        let column = o.req_identifier(
            r,
            "column",
            "add \"column\": a visible column, e.g. \"opened_at\"",
        );
        let direction = match o.get("direction") {
            None => Some(Direction::Asc),
            Some(Value::String(s)) if Direction::parse(s).is_some() => Direction::parse(s),
            Some(v) => {
                r.error(
                    o.at("direction"),
                    format!(
                        "unknown direction {}",
                        if v.is_string() {
                            short(v)
                        } else {
                            type_name(v).to_owned()
                        }
                    ),
                    "use \"asc\" or \"desc\"",
                );
                None
            }
        };
        let (Some(column), Some(direction)) = (column, direction) else {
            ok = false;
            continue;
        };
        if !check_column(r, &o.at("column"), &column, "order", None, visible) {
            ok = false;
        }
        if out.iter().any(|t| t.column == column) {
            r.error(
                o.at("column"),
                format!("`{column}` is ordered by twice"),
                "list each order-by column once",
            );
            ok = false;
        }
        out.push(OrderTerm { column, direction });
    }
    ok.then_some(out)
}
