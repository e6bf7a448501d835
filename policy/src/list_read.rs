//! List reads (Airlock's own key `list`; Synapsor Runner's reads find one
//! row by `lookup.id_from_arg`): a read capability that finds the trusted
//! tenant's rows by reviewed filters, a page at a time.
//!
//! Every decision is here and pure, so the proposer (which runs the page)
//! and the executor (which re-checks the page's evidence) evaluate the same
//! functions:
//!
//! * [`parse_call`]: the call's filter arguments, `limit` and `cursor`; a
//!   cursor that is altered, another tool's, or issued for other filter
//!   arguments is refused before any query runs;
//! * [`page_query`]: the page's statement per engine (identifiers quoted,
//!   every value bound, tenant and principal always from the trusted
//!   context), its parameters and the values bound to them; its text, and
//!   so its fingerprint, depends only on the engine, the capability, which
//!   filter arguments are present and whether a cursor is;
//! * [`next_cursor`]: the opaque cursor after a page's last row;
//! * [`row_violation`]: whether a row read satisfies every applied filter
//!   exactly (MySQL compares loosely; the proposer drops such rows);
//! * [`check_evidence`]: the executor's check of a recorded page.
//!
//! Ordering: the reviewed `order_by` columns, then the primary key
//! ascending as the tie-breaker. NULLs sort last ascending and first
//! descending on every engine. A cursor never points at a NULL: when the
//! last row of a page that has a next page holds NULL in an order-by
//! column, the page is refused ([`next_cursor`]'s error).

use std::cmp::Ordering;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::args::{ArgError, ArgErrorCode, ValidArgs, scalar_eq, validate_args};
use crate::canonical::{canonical_json, sha256_tagged};
use crate::change_set::scalar_text;
use crate::config::{ArgSpec, ArgType, Capability, Engine, StringFormat};
use crate::context::TrustedContext;
use crate::identifier::quote;
use crate::statement::{placeholder, table_name, tenant_predicate};

/// Largest `max_limit` a list read may declare (rows per page).
pub const MAX_LIMIT: u32 = 100;
/// `default_limit` when the config sets none (or `max_limit` if smaller).
pub const DEFAULT_LIMIT: u32 = 20;
/// Most `order_by` terms (the primary key is appended to them).
pub const MAX_ORDER_BY: usize = 3;
/// Most values an `in` filter's array argument may declare (`max_items`).
pub const MAX_IN_ITEMS: u32 = 50;
/// Most filters one list read may declare.
pub const MAX_FILTERS: usize = 16;
/// Longest cursor accepted, in characters.
pub const MAX_CURSOR_CHARS: usize = 2048;
/// The argument that sets the page size (added to the tool's schema).
pub const LIMIT_ARG: &str = "limit";
/// The argument that continues a listing (added to the tool's schema).
pub const CURSOR_ARG: &str = "cursor";
/// Argument names a list read adds itself; a config may not declare them.
pub const RESERVED_ARGS: [&str; 2] = [LIMIT_ARG, CURSOR_ARG];
/// The tool error code of a refused cursor.
pub const INVALID_CURSOR: &str = "invalid_cursor";
/// The tool error code of a page whose last row cannot carry a cursor.
pub const ORDER_BY_NULL: &str = "order_by_null";

/// `list`: the reviewed filters, order and page size of a list read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListSpec {
    pub filters: Vec<Filter>,
    pub order_by: Vec<OrderTerm>,
    pub max_limit: u32,
    pub default_limit: u32,
}

/// `column <op> <the value of arg>`, applied when the call gives `arg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub column: String,
    pub op: FilterOp,
    pub arg: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
}

impl FilterOp {
    pub const ALL: [FilterOp; 6] = [
        FilterOp::Eq,
        FilterOp::Gt,
        FilterOp::Gte,
        FilterOp::Lt,
        FilterOp::Lte,
        FilterOp::In,
    ];

    pub fn parse(s: &str) -> Option<FilterOp> {
        FilterOp::ALL.into_iter().find(|op| op.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "eq",
            FilterOp::Gt => "gt",
            FilterOp::Gte => "gte",
            FilterOp::Lt => "lt",
            FilterOp::Lte => "lte",
            FilterOp::In => "in",
        }
    }

    /// The SQL operator (`IN` for a set).
    pub fn sql(self) -> &'static str {
        match self {
            FilterOp::Eq => "=",
            FilterOp::Gt => ">",
            FilterOp::Gte => ">=",
            FilterOp::Lt => "<",
            FilterOp::Lte => "<=",
            FilterOp::In => "IN",
        }
    }

    /// `gt`, `gte`, `lt` or `lte`.
    pub fn is_range(self) -> bool {
        matches!(
            self,
            FilterOp::Gt | FilterOp::Gte | FilterOp::Lt | FilterOp::Lte
        )
    }

    /// Whether `ordering` (the row's value against the argument's) satisfies
    /// this comparison (`in` is never decided by an ordering).
    pub fn holds(self, ordering: Ordering) -> bool {
        match self {
            FilterOp::Eq => ordering == Ordering::Equal,
            FilterOp::Gt => ordering == Ordering::Greater,
            FilterOp::Gte => ordering != Ordering::Less,
            FilterOp::Lt => ordering == Ordering::Less,
            FilterOp::Lte => ordering != Ordering::Greater,
            FilterOp::In => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "asc" => Some(Direction::Asc),
            "desc" => Some(Direction::Desc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderTerm {
    pub column: String,
    pub direction: Direction,
}

/// What a filter's argument holds, which decides its SQL and its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    Text,
    Integer,
    Number,
    Boolean,
    Date,
    DateTime,
    TextSet,
    IntegerSet,
}

/// The kind of a (loaded) argument.
pub fn arg_kind(spec: &ArgSpec) -> ArgKind {
    match (spec.ty, spec.format) {
        (ArgType::String, Some(StringFormat::Date)) => ArgKind::Date,
        (ArgType::String, Some(StringFormat::DateTime)) => ArgKind::DateTime,
        (ArgType::String, None) => ArgKind::Text,
        (ArgType::Integer, _) => ArgKind::Integer,
        (ArgType::Number, _) => ArgKind::Number,
        (ArgType::Boolean, _) => ArgKind::Boolean,
        (ArgType::Array, _) => match spec.items.as_ref().map(|i| i.ty) {
            Some(ArgType::Integer) => ArgKind::IntegerSet,
            _ => ArgKind::TextSet,
        },
    }
}

/// Why a filter cannot take an argument of this kind (`None`: it can).
/// `eq` takes any scalar; ranges take numbers and dates; `in` takes an
/// array of reviewed values.
pub fn op_refusal(op: FilterOp, kind: ArgKind) -> Option<&'static str> {
    let set = matches!(kind, ArgKind::TextSet | ArgKind::IntegerSet);
    match op {
        FilterOp::In if !set => Some(
            "an `in` filter needs an array argument whose `items` list a reviewed `enum` (`\"type\": \"array\"`)",
        ),
        FilterOp::In => None,
        _ if set => Some("an array argument can only be used by an `in` filter"),
        FilterOp::Eq => None,
        _ if matches!(kind, ArgKind::Text | ArgKind::Boolean) => Some(
            "a range filter needs an integer or number argument, or a string argument with `format` `date` or `date-time`",
        ),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Time values.

/// A point in time for comparisons: microseconds since
/// 1970-01-01T00:00:00Z, or Postgres' ±infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Instant {
    NegInfinity,
    At(i64),
    Infinity,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `n` ASCII digits at the start of `s`, as a number.
fn digits(s: &[u8], n: usize) -> Option<i64> {
    let part = s.get(..n)?;
    part.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// `YYYY-MM-DD` at the start of `s` (a real calendar date): its day number.
fn date_prefix(s: &[u8]) -> Option<i64> {
    let (y, m, d) = (
        digits(s, 4)?,
        digits(s.get(5..)?, 2)?,
        digits(s.get(8..)?, 2)?,
    );
    let dashes = s.get(4) == Some(&b'-') && s.get(7) == Some(&b'-');
    let valid = dashes && (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m);
    valid.then(|| days_from_civil(y, m, d))
}

/// A `date` argument: exactly `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Instant> {
    let b = s.as_bytes();
    (b.len() == 10)
        .then(|| date_prefix(b))
        .flatten()
        .map(|days| Instant::At(days * MICROS_PER_DAY))
}

/// `HH:MM:SS` (or `HH:MM` when `seconds_optional`), a fraction of up to
/// `max_fraction` digits (kept to microseconds), from the start of `s`:
/// microseconds into the day and the bytes used.
fn time_of_day(s: &[u8], seconds_optional: bool, max_fraction: usize) -> Option<(i64, usize)> {
    let (h, mi) = (digits(s, 2)?, digits(s.get(3..)?, 2)?);
    if s.get(2) != Some(&b':') || h > 23 || mi > 59 {
        return None;
    }
    let mut used = 5;
    let mut sec = 0;
    if s.get(5) == Some(&b':') {
        sec = digits(s.get(6..)?, 2)?;
        used = 8;
    } else if !seconds_optional {
        return None;
    }
    if sec > 59 {
        return None;
    }
    let mut micros = 0i64;
    if used == 8 && s.get(8) == Some(&b'.') {
        let frac: Vec<u8> = s[9..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        if frac.is_empty() || frac.len() > max_fraction {
            return None;
        }
        for i in 0..6 {
            micros = micros * 10 + frac.get(i).map_or(0, |b| i64::from(b - b'0'));
        }
        used = 9 + frac.len();
    }
    Some((((h * 60 + mi) * 60 + sec) * 1_000_000 + micros, used))
}

/// A UTC offset (`Z`, `+HH:MM`; leniently also `+HH`, `+HHMM`) that is
/// all of `s`: its seconds east of UTC.
fn offset(s: &[u8], lenient: bool) -> Option<i64> {
    match s {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest.len() {
                5 if rest[2] == b':' => (digits(rest, 2)?, digits(&rest[3..], 2)?),
                4 if lenient => (digits(rest, 2)?, digits(&rest[2..], 2)?),
                2 if lenient => (digits(rest, 2)?, 0),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 60 + m) * 60;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

/// A `date-time` argument: RFC 3339 with an offset
/// (`2026-06-20T14:31:08Z`, `2026-06-20T16:31:08.5+02:00`), at most
/// microseconds, between years 1 and 9999 in UTC.
pub fn parse_date_time(s: &str) -> Option<Instant> {
    let b = s.as_bytes();
    let days = date_prefix(b)?;
    if !matches!(b.get(10), Some(b'T' | b't')) {
        return None;
    }
    let (tod, used) = time_of_day(b.get(11..)?, false, 6)?;
    let off = offset(b.get(11 + used..)?, false)?;
    let at = days * MICROS_PER_DAY + tod - off * 1_000_000;
    let (year, _, _) = civil_from_days(at.div_euclid(MICROS_PER_DAY));
    (1..=9999).contains(&year).then_some(Instant::At(at))
}

/// A time value as a database returned it: a date, a date and time
/// (`T` or a space; seconds and fraction optional; an offset optional,
/// none meaning UTC — the proposer's sessions are in UTC), or `infinity`.
pub fn parse_row_time(s: &str) -> Option<Instant> {
    match s {
        "infinity" => return Some(Instant::Infinity),
        "-infinity" => return Some(Instant::NegInfinity),
        _ => {}
    }
    let b = s.as_bytes();
    let days = date_prefix(b)?;
    if b.len() == 10 {
        return Some(Instant::At(days * MICROS_PER_DAY));
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (tod, used) = time_of_day(b.get(11..)?, true, 9)?;
    let rest = b.get(11 + used..)?;
    let off = if rest.is_empty() {
        0
    } else {
        offset(rest, true)?
    };
    Some(Instant::At(days * MICROS_PER_DAY + tod - off * 1_000_000))
}

/// `micros` as `YYYY-MM-DD<sep>HH:MM:SS.ffffff`.
fn format_micros(micros: i64, sep: char) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    let tod = micros.rem_euclid(MICROS_PER_DAY);
    let (secs, frac) = (tod / 1_000_000, tod % 1_000_000);
    format!(
        "{y:04}-{m:02}-{d:02}{sep}{:02}:{:02}:{:02}.{frac:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A `date-time` argument as bound on `engine`, in UTC: Postgres and
/// SQLite read `…Z`; MySQL's `CAST(? AS DATETIME(6))` takes no offset.
pub fn normalize_date_time(engine: Engine, s: &str) -> Option<String> {
    let Instant::At(micros) = parse_date_time(s)? else {
        return None;
    };
    Some(match engine {
        Engine::Mysql => format_micros(micros, ' '),
        Engine::Postgres | Engine::Sqlite => format!("{}Z", format_micros(micros, 'T')),
    })
}

// ---------------------------------------------------------------------------
// Argument checks (called by `args::validate_args`).

/// A string argument with a `format`: the value must be one.
pub(crate) fn check_format(spec: &ArgSpec, format: StringFormat, s: &str) -> Result<(), ArgError> {
    let (ok, what) = match format {
        StringFormat::Date => (
            parse_date(s).is_some(),
            "a date written YYYY-MM-DD, e.g. 2026-06-20",
        ),
        StringFormat::DateTime => (
            parse_date_time(s).is_some(),
            "an RFC 3339 date-time with an offset, e.g. 2026-06-20T14:31:08Z (years 1 to 9999, at most microseconds)",
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(ArgError {
            argument: spec.name.clone(),
            code: ArgErrorCode::InvalidFormat,
            message: format!("`{}` must be {what}", spec.name),
        })
    }
}

/// An array argument: 1 to `max_items` distinct values of its reviewed
/// `enum` (integers given as `2.0` are normalized to `2`).
pub(crate) fn check_array(spec: &ArgSpec, v: &Value) -> Result<Value, ArgError> {
    let err = |code, message: String| ArgError {
        argument: spec.name.clone(),
        code,
        message,
    };
    let Some(items) = &spec.items else {
        return Err(err(
            ArgErrorCode::WrongType,
            format!("`{}` is not a usable array argument", spec.name),
        ));
    };
    let allowed: Vec<String> = items.enum_values.iter().map(Value::to_string).collect();
    let Some(given) = v.as_array() else {
        return Err(err(
            ArgErrorCode::WrongType,
            format!(
                "`{}` must be an array of values from {}",
                spec.name,
                allowed.join(", ")
            ),
        ));
    };
    if given.is_empty() || given.len() > items.max_items as usize {
        return Err(err(
            ArgErrorCode::ItemCount,
            format!(
                "`{}` must list 1 to {} values; it lists {}",
                spec.name,
                items.max_items,
                given.len()
            ),
        ));
    }
    let mut out: Vec<Value> = Vec::with_capacity(given.len());
    for item in given {
        let value = match (items.ty, item) {
            (ArgType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => item.clone(),
            (ArgType::Integer, Value::Number(n))
                if n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15) =>
            {
                Value::from(n.as_f64().unwrap_or_default() as i64)
            }
            (ArgType::String, Value::String(_)) => item.clone(),
            _ => Value::Null,
        };
        if value.is_null() || !items.enum_values.iter().any(|a| scalar_eq(a, &value)) {
            let shown: String = item.to_string().chars().take(64).collect();
            return Err(err(
                ArgErrorCode::NotInEnum,
                format!(
                    "`{}` may hold only {}; {shown} is not one of them",
                    spec.name,
                    allowed.join(", ")
                ),
            ));
        }
        if out.iter().any(|o| scalar_eq(o, &value)) {
            return Err(err(
                ArgErrorCode::DuplicateItem,
                format!("`{}` lists {value} twice; list each value once", spec.name),
            ));
        }
        out.push(value);
    }
    Ok(Value::Array(out))
}

// ---------------------------------------------------------------------------
// The call.

/// A list read's call, checked: the filter arguments, the page size and
/// where the page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ListCall {
    /// The filter arguments given (validated like any tool's arguments).
    pub args: ValidArgs,
    pub limit: u32,
    /// Where the page starts: after this position (`None`: the first page).
    pub cursor: Option<Cursor>,
    /// The cursor as the call gave it (recorded with the evidence).
    pub cursor_text: Option<String>,
}

impl ListCall {
    /// What the evidence records as the read's arguments: the filter
    /// arguments, `limit` and (when given) `cursor`. [`parse_call`] reads
    /// it back to the same call.
    pub fn recorded_args(&self) -> Map<String, Value> {
        let mut out = self.args.clone();
        out.insert(LIMIT_ARG.into(), json!(self.limit));
        if let Some(c) = &self.cursor_text {
            out.insert(CURSOR_ARG.into(), json!(c));
        }
        out
    }

    /// Whether the filter `f` applies (its argument was given).
    pub fn applies(&self, f: &Filter) -> bool {
        self.args.contains_key(&f.arg)
    }
}

/// A position in a listing: the order-by values and primary key of the
/// last row of the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub after: Vec<Value>,
    pub key: Value,
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// `invalid_arguments`: what is wrong with each.
    Arguments(Vec<ArgError>),
    /// [`INVALID_CURSOR`]: why the cursor is not this listing's.
    Cursor(String),
}

/// Check a call's arguments: the declared filter arguments as any tool's,
/// `limit` (default the spec's `default_limit`, 1 to `max_limit`) and
/// `cursor` (decoded, and bound to this capability and exactly these
/// filter arguments).
pub fn parse_call(
    cap: &Capability,
    spec: &ListSpec,
    args: Option<&Value>,
) -> Result<ListCall, CallError> {
    let mut filters = match args {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(CallError::Arguments(vec![ArgError {
                argument: String::new(),
                code: ArgErrorCode::NotAnObject,
                message: "arguments must be a JSON object".into(),
            }]));
        }
    };
    let limit_value = filters.remove(LIMIT_ARG);
    let cursor_value = filters.remove(CURSOR_ARG);
    let mut errors = Vec::new();
    let checked = validate_args(cap, Some(&Value::Object(filters)));
    let limit = match check_limit(spec, limit_value.as_ref()) {
        Ok(n) => n,
        Err(e) => {
            errors.push(e);
            spec.default_limit
        }
    };
    let cursor_text = match cursor_value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errors.push(ArgError {
                argument: CURSOR_ARG.into(),
                code: ArgErrorCode::WrongType,
                message: format!(
                    "`cursor` must be a string (the `next_cursor` of the previous page), not {}",
                    json_type(&other)
                ),
            });
            None
        }
    };
    let args = match checked {
        Ok(a) if errors.is_empty() => a,
        Ok(_) => return Err(CallError::Arguments(errors)),
        Err(mut e) => {
            e.extend(errors);
            return Err(CallError::Arguments(e));
        }
    };
    let cursor = match &cursor_text {
        None => None,
        Some(text) => Some(decode_cursor(cap, spec, &args, text).map_err(CallError::Cursor)?),
    };
    Ok(ListCall {
        args,
        limit,
        cursor,
        cursor_text,
    })
}

fn check_limit(spec: &ListSpec, v: Option<&Value>) -> Result<u32, ArgError> {
    let err = |code, message: String| ArgError {
        argument: LIMIT_ARG.into(),
        code,
        message,
    };
    let n = match v {
        None | Some(Value::Null) => return Ok(spec.default_limit),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(other) => {
            return Err(err(
                ArgErrorCode::WrongType,
                format!("`limit` must be a whole number, not {}", json_type(other)),
            ));
        }
    };
    if n.fract() != 0.0 {
        return Err(err(
            ArgErrorCode::WrongType,
            format!("`limit` must be a whole number, not {n}"),
        ));
    }
    if n < 1.0 {
        return Err(err(
            ArgErrorCode::BelowMinimum,
            format!("`limit` is {n}; the minimum is 1"),
        ));
    }
    if n > f64::from(spec.max_limit) {
        return Err(err(
            ArgErrorCode::AboveMaximum,
            format!(
                "`limit` is {n}; this tool returns at most {} rows a page",
                spec.max_limit
            ),
        ));
    }
    Ok(n as u32)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Cursors: base64url of canonical JSON {"v": 1, "after": [...], "key": pk,
// "d": digest}. The digest binds the position to the capability, its order
// and the exact filter arguments; it is an integrity check, not a secret
// (anyone may compute it), and a cursor's only power is where a page of an
// already permitted listing starts.

const CURSOR_VERSION: u64 = 1;

/// The digest of a position in the listing of `cap` with `args`.
fn cursor_digest(
    cap: &Capability,
    spec: &ListSpec,
    args: &ValidArgs,
    after: &[Value],
    key: &Value,
) -> String {
    let order: Vec<Value> = spec
        .order_by
        .iter()
        .map(|t| json!([t.column, t.direction.as_str()]))
        .collect();
    let bound = json!({
        "capability": cap.name,
        "order_by": order,
        "primary_key": cap.target.primary_key,
        "args": Value::Object(args.clone()),
        "after": after,
        "key": key,
    });
    let full = sha256_tagged(canonical_json(&bound).as_bytes());
    full.trim_start_matches("sha256:")
        .chars()
        .take(32)
        .collect()
}

/// The cursor after `row`, the last row of a page with a next page.
/// Refused when an order-by value or the key is NULL (or not a scalar):
/// no position after it could be compared the same way on every engine.
pub fn next_cursor(
    cap: &Capability,
    spec: &ListSpec,
    call: &ListCall,
    row: &Map<String, Value>,
) -> Result<String, String> {
    let scalar = |col: &str| match row.get(col) {
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Some(v.clone()),
        _ => None,
    };
    let pk = &cap.target.primary_key;
    let Some(key) = scalar(pk) else {
        return Err(format!(
            "the listing cannot continue: a row's primary key `{pk}` is empty or not a plain value; ask the operator to check the capability's target"
        ));
    };
    let mut after = Vec::with_capacity(spec.order_by.len());
    for t in &spec.order_by {
        match scalar(&t.column) {
            Some(v) => after.push(v),
            None => {
                return Err(format!(
                    "the listing cannot continue past the row with {pk} `{}`: its `{}` is empty (NULL), and a page cannot start after an empty order-by value; narrow the filters so fewer rows match, or ask the operator to order this list by a column that always has a value",
                    scalar_text(&key),
                    t.column
                ));
            }
        }
    }
    let d = cursor_digest(cap, spec, &call.args, &after, &key);
    let body = json!({"v": CURSOR_VERSION, "after": after, "key": key, "d": d});
    Ok(base64url_encode(canonical_json(&body).as_bytes()))
}

const NOT_OURS: &str = "the cursor is not one this tool issued (it does not decode); pass `next_cursor` from the previous page exactly as it was given, or leave `cursor` out to start from the first page";

/// Read a cursor back, refusing one that is malformed, altered, another
/// capability's, or issued for other filter arguments.
fn decode_cursor(
    cap: &Capability,
    spec: &ListSpec,
    args: &ValidArgs,
    text: &str,
) -> Result<Cursor, String> {
    if text.is_empty() || text.chars().count() > MAX_CURSOR_CHARS {
        return Err(NOT_OURS.into());
    }
    let bytes = base64url_decode(text).ok_or_else(|| NOT_OURS.to_owned())?;
    let doc = crate::strict_json::parse(&bytes, 4).map_err(|_| NOT_OURS.to_owned())?;
    let Some(obj) = doc.as_object() else {
        return Err(NOT_OURS.into());
    };
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    let shaped = obj.len() == 4
        && obj.get("v").and_then(Value::as_u64) == Some(CURSOR_VERSION)
        && obj.get("key").is_some_and(scalar)
        && obj.get("d").is_some_and(Value::is_string)
        && obj
            .get("after")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() == spec.order_by.len() && a.iter().all(scalar));
    if !shaped {
        return Err(NOT_OURS.into());
    }
    let after = obj
        .get("after")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key = obj.get("key").cloned().unwrap_or(Value::Null);
    let expected = cursor_digest(cap, spec, args, &after, &key);
    if obj.get("d").and_then(Value::as_str) != Some(expected.as_str()) {
        return Err("the cursor does not belong to this listing: it was issued by another tool or for other filter arguments, or it was altered; repeat the call with exactly the filter arguments of the page that returned it, or leave `cursor` out to start from the first page".into());
    }
    Ok(Cursor { after, key })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// RFC 4648 base64url without padding.
pub fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The inverse of [`base64url_encode`]; `None` for any other text
/// (padding, other alphabets, non-canonical trailing bits).
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let vals: Vec<u32> = text
        .bytes()
        .map(|c| B64.iter().position(|b| *b == c).map(|p| p as u32))
        .collect::<Option<_>>()?;
    if vals.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(vals.len() * 3 / 4);
    for chunk in vals.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i)));
        let len = chunk.len() - 1;
        for i in 0..len {
            out.push((n >> (16 - 8 * i)) as u8);
        }
        // The bits after the last whole byte must be zero (one encoding per value).
        if len < 3 && n & ((1 << (24 - 8 * len)) - 1) != 0 {
            return None;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// The page statement.

/// Where one placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListParam {
    /// A filter argument (each placeholder of an `in` list, and both of a
    /// MySQL exact text comparison, name the same argument).
    Arg(String),
    /// A value of the cursor's position.
    Cursor,
    Tenant,
    Principal,
    /// The page size plus one (the row that tells whether there is more).
    Limit,
}

impl ListParam {
    /// How the evidence names it: `arg:<name>`, `cursor`,
    /// `trusted_context:tenant_id`, `trusted_context:principal`, `limit`.
    pub fn bound_from(&self) -> String {
        match self {
            ListParam::Arg(name) => format!("arg:{name}"),
            ListParam::Cursor => CURSOR_ARG.into(),
            ListParam::Tenant => "trusted_context:tenant_id".into(),
            ListParam::Principal => "trusted_context:principal".into(),
            ListParam::Limit => LIMIT_ARG.into(),
        }
    }
}

/// One page's statement, the source of each placeholder and the values to
/// bind (JSON strings and numbers, in placeholder order).
#[derive(Debug, Clone, PartialEq)]
pub struct PageQuery {
    pub sql: String,
    pub params: Vec<ListParam>,
    pub values: Vec<Value>,
}

impl PageQuery {
    /// `sha256:` of the SQL text, as for every read.
    pub fn fingerprint(&self) -> String {
        sha256_tagged(self.sql.as_bytes())
    }

    /// What the evidence records for each placeholder, in order: where its
    /// value came from and the value's JSON type (never the value).
    pub fn parameters(&self) -> Vec<(String, &'static str)> {
        self.params
            .iter()
            .zip(&self.values)
            .map(|(p, v)| (p.bound_from(), value_type(v)))
            .collect()
    }
}

/// The JSON type name the evidence records for a bound value.
pub fn value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        _ => "null",
    }
}

struct Builder {
    engine: Engine,
    params: Vec<ListParam>,
    values: Vec<Value>,
}

impl Builder {
    /// Add one placeholder bound from `p` with `v`; its SQL text.
    fn bind(&mut self, p: ListParam, v: Value) -> String {
        self.params.push(p);
        self.values.push(v);
        placeholder(self.engine, self.params.len())
    }
}

/// A value as `engine` binds it: booleans as Postgres text (cast by the
/// server to the column's type) or MySQL/SQLite 1 and 0.
fn engine_value(engine: Engine, v: &Value) -> Value {
    match (engine, v) {
        (Engine::Postgres, Value::Bool(b)) => Value::String(b.to_string()),
        (_, Value::Bool(b)) => Value::from(i64::from(*b)),
        _ => v.clone(),
    }
}

/// SQLite compares times as normalized text (`strftime`, millisecond
/// precision), so `T` or space, offsets and fractions compare correctly.
const SQLITE_TIME: &str = "strftime('%Y-%m-%d %H:%M:%f', ";

/// `column <op> value` for one applied filter.
fn filter_sql(b: &mut Builder, f: &Filter, kind: ArgKind, arg: &Value, max_items: u32) -> String {
    let e = b.engine;
    let col = quote(e, &f.column);
    let p = || ListParam::Arg(f.arg.clone());
    let op = f.op.sql();
    match kind {
        ArgKind::Date | ArgKind::DateTime => {
            let (text, pg_type, my_type) = if kind == ArgKind::Date {
                (arg.as_str().unwrap_or_default().to_owned(), "DATE", "DATE")
            } else {
                (
                    normalize_date_time(e, arg.as_str().unwrap_or_default()).unwrap_or_default(),
                    "TIMESTAMPTZ",
                    "DATETIME(6)",
                )
            };
            let ph = b.bind(p(), Value::String(text));
            match e {
                Engine::Postgres => format!("{col} {op} CAST(CAST({ph} AS TEXT) AS {pg_type})"),
                Engine::Mysql => format!("{col} {op} CAST({ph} AS {my_type})"),
                Engine::Sqlite => format!("{SQLITE_TIME}{col}) {op} {SQLITE_TIME}{ph})"),
            }
        }
        ArgKind::TextSet | ArgKind::IntegerSet => {
            // Always `max_items` placeholders (the last value repeated), so
            // the statement does not depend on how many values were given.
            let given = arg.as_array().cloned().unwrap_or_default();
            let value = |i: usize| {
                given
                    .get(i)
                    .or_else(|| given.last())
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let n = max_items as usize;
            let list: Vec<String> = (0..n).map(|i| b.bind(p(), value(i))).collect();
            let set = format!("{col} IN ({})", list.join(", "));
            if e == Engine::Mysql && kind == ArgKind::TextSet {
                let exact: Vec<String> = (0..n)
                    .map(|i| format!("CAST({} AS BINARY)", b.bind(p(), value(i))))
                    .collect();
                format!(
                    "({set} AND CAST({col} AS BINARY) IN ({}))",
                    exact.join(", ")
                )
            } else {
                set
            }
        }
        ArgKind::Text => {
            let ph = b.bind(p(), arg.clone());
            if e == Engine::Mysql {
                // Default collations ignore case and trailing spaces: also
                // compare bytes, keeping the plain `=` for the index.
                let exact = b.bind(p(), arg.clone());
                format!("({col} = {ph} AND CAST({col} AS BINARY) = CAST({exact} AS BINARY))")
            } else {
                format!("{col} = {ph}")
            }
        }
        ArgKind::Boolean => {
            let ph = b.bind(p(), engine_value(e, arg));
            format!("{col} = {ph}")
        }
        ArgKind::Integer | ArgKind::Number => {
            let ph = b.bind(p(), arg.clone());
            match (e, f.op.is_range(), kind) {
                // Postgres would infer the column's type for the value
                // (`2.5` cannot be an int4): compare in a type that holds it.
                (Engine::Postgres, true, ArgKind::Integer) => {
                    format!("{col} {op} CAST({ph} AS BIGINT)")
                }
                (Engine::Postgres, true, _) => format!("{col} {op} CAST({ph} AS NUMERIC)"),
                _ => format!("{col} {op} {ph}"),
            }
        }
    }
}

/// The position predicate: rows strictly after the cursor in the page
/// order (NULLs last ascending, first descending; the key ascending).
fn keyset_sql(b: &mut Builder, cap: &Capability, spec: &ListSpec, cursor: &Cursor) -> String {
    let e = b.engine;
    let mut parts: Vec<(String, String)> = Vec::new();
    for (t, v) in spec.order_by.iter().zip(&cursor.after) {
        let col = quote(e, &t.column);
        let after = b.bind(ListParam::Cursor, engine_value(e, v));
        let after = match t.direction {
            Direction::Asc => format!("({col} > {after} OR {col} IS NULL)"),
            Direction::Desc => format!("{col} < {after}"),
        };
        let tie = b.bind(ListParam::Cursor, engine_value(e, v));
        parts.push((after, format!("{col} = {tie}")));
    }
    let pk = quote(e, &cap.target.primary_key);
    let mut expr = format!(
        "{pk} > {}",
        b.bind(ListParam::Cursor, engine_value(e, &cursor.key))
    );
    for (after, tie) in parts.into_iter().rev() {
        expr = format!("({after} OR ({tie} AND {expr}))");
    }
    expr
}

fn order_sql(engine: Engine, cap: &Capability, spec: &ListSpec) -> String {
    let mut terms: Vec<String> = spec
        .order_by
        .iter()
        .map(|t| {
            let col = quote(engine, &t.column);
            match (engine, t.direction) {
                (Engine::Postgres, Direction::Asc) => format!("{col} ASC NULLS LAST"),
                (Engine::Postgres, Direction::Desc) => format!("{col} DESC NULLS FIRST"),
                (_, Direction::Asc) => format!("{col} IS NULL, {col} ASC"),
                (_, Direction::Desc) => format!("{col} IS NULL DESC, {col} DESC"),
            }
        })
        .collect();
    terms.push(format!("{} ASC", quote(engine, &cap.target.primary_key)));
    terms.join(", ")
}

/// The statement of one page: the capability's read columns; the applied
/// filters in config order; the trusted tenant (and principal); the
/// cursor's position; the page order; `limit + 1` rows.
pub fn page_query(
    engine: Engine,
    cap: &Capability,
    spec: &ListSpec,
    call: &ListCall,
    ctx: &TrustedContext,
) -> PageQuery {
    let mut b = Builder {
        engine,
        params: Vec::new(),
        values: Vec::new(),
    };
    let mut terms = Vec::new();
    for f in &spec.filters {
        let (Some(arg), Some(arg_spec)) = (call.args.get(&f.arg), cap.arg(&f.arg)) else {
            continue;
        };
        let max_items = arg_spec.items.as_ref().map_or(1, |i| i.max_items);
        terms.push(filter_sql(&mut b, f, arg_kind(arg_spec), arg, max_items));
    }
    if let Some(tk) = &cap.target.tenant_key {
        b.params.push(ListParam::Tenant);
        b.values.push(Value::String(ctx.tenant_id.clone()));
        terms.push(tenant_predicate(engine, tk, b.params.len()));
    }
    if let Some(pk) = &cap.target.principal_scope_key {
        b.params.push(ListParam::Principal);
        b.values.push(Value::String(ctx.principal.clone()));
        terms.push(tenant_predicate(engine, pk, b.params.len()));
    }
    if let Some(c) = &call.cursor {
        terms.push(keyset_sql(&mut b, cap, spec, c));
    }
    let cols: Vec<String> = cap
        .read_columns()
        .into_iter()
        .map(|c| quote(engine, c))
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {}",
        cols.join(", "),
        table_name(engine, cap)
    );
    if !terms.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&terms.join(" AND "));
    }
    let limit = b.bind(ListParam::Limit, json!(call.limit + 1));
    sql.push_str(&format!(
        " ORDER BY {} LIMIT {limit}",
        order_sql(engine, cap, spec)
    ));
    PageQuery {
        sql,
        params: b.params,
        values: b.values,
    }
}

// ---------------------------------------------------------------------------
// Rows against filters.

/// A number as a row holds it: a JSON number, or a decimal string
/// (`NUMERIC`/`DECIMAL` columns).
fn row_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// How a row's number compares with an argument's: exactly for integers,
/// else as doubles.
fn compare_numbers(row: &Value, arg: &Value) -> Option<Ordering> {
    let whole = |v: &Value| match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    if let (Some(a), Some(b)) = (whole(row), whole(arg)) {
        return Some(a.cmp(&b));
    }
    row_number(row)?.partial_cmp(&row_number(arg)?)
}

/// A row's boolean: `true`/`false`, or MySQL's and SQLite's `1`/`0`.
fn row_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A time value compared at `engine`'s precision (SQLite's `strftime`
/// keeps milliseconds).
fn at_precision(engine: Engine, t: Instant) -> Instant {
    match (engine, t) {
        (Engine::Sqlite, Instant::At(us)) => Instant::At((us + 500).div_euclid(1000) * 1000),
        _ => t,
    }
}

/// Whether a row's value satisfies one filter with the argument `arg`.
pub fn value_matches(
    engine: Engine,
    op: FilterOp,
    kind: ArgKind,
    row: &Value,
    arg: &Value,
) -> bool {
    match kind {
        ArgKind::TextSet => arg.as_array().is_some_and(|set| {
            matches!(row, Value::String(_) | Value::Number(_))
                && set
                    .iter()
                    .any(|a| a.as_str() == Some(scalar_text(row).as_str()))
        }),
        ArgKind::IntegerSet => arg.as_array().is_some_and(|set| {
            set.iter()
                .any(|a| compare_numbers(row, a) == Some(Ordering::Equal))
        }),
        ArgKind::Text => {
            matches!(row, Value::String(_) | Value::Number(_))
                && arg.as_str() == Some(scalar_text(row).as_str())
        }
        ArgKind::Boolean => row_bool(row).is_some() && row_bool(row) == arg.as_bool(),
        ArgKind::Integer | ArgKind::Number => {
            compare_numbers(row, arg).is_some_and(|o| op.holds(o))
        }
        ArgKind::Date | ArgKind::DateTime => {
            let parse = if kind == ArgKind::Date {
                parse_date
            } else {
                parse_date_time
            };
            let (Some(r), Some(a)) = (
                row.as_str().and_then(parse_row_time),
                arg.as_str().and_then(parse),
            ) else {
                return false;
            };
            op.holds(at_precision(engine, r).cmp(&at_precision(engine, a)))
        }
    }
}

/// The first applied filter `row` does not satisfy (or whose column it
/// does not carry), described for a message; `None` when it satisfies all.
pub fn row_violation(
    engine: Engine,
    cap: &Capability,
    spec: &ListSpec,
    call: &ListCall,
    row: &Map<String, Value>,
) -> Option<String> {
    for f in &spec.filters {
        let (Some(arg), Some(arg_spec)) = (call.args.get(&f.arg), cap.arg(&f.arg)) else {
            continue;
        };
        let what = format!("`{} {} {}`", f.column, f.op.as_str(), f.arg);
        let Some(v) = row.get(&f.column) else {
            return Some(format!("does not carry the column of the filter {what}"));
        };
        if !value_matches(engine, f.op, arg_kind(arg_spec), v, arg) {
            return Some(format!("does not satisfy the filter {what}"));
        }
    }
    None
}

// ---------------------------------------------------------------------------
// The executor's check of a recorded page.

/// Which IPC error a refused record gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request is malformed (arguments, cursor): `invalid_request`.
    InvalidRequest,
    /// It contradicts the reviewed policy: `policy_violation`.
    PolicyViolation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRefusal {
    pub kind: RefusalKind,
    pub message: String,
}

fn refuse(kind: RefusalKind, message: impl Into<String>) -> EvidenceRefusal {
    EvidenceRefusal {
        kind,
        message: message.into(),
    }
}

/// One page as a proposer recorded it: the call's arguments, the
/// statement's fingerprint, each parameter as `(position, bound_from,
/// json_type)`, and the rows.
#[derive(Debug, Clone, Copy)]
pub struct RecordedPage<'a> {
    pub args: &'a Map<String, Value>,
    pub fingerprint: &'a str,
    pub parameters: &'a [(u32, &'a str, &'a str)],
    pub rows: &'a [Map<String, Value>],
}

/// Check the evidence of one page a proposer recorded, against the
/// executor's own policy: the recorded arguments are a valid call (cursor
/// included); the fingerprint and parameters are exactly those of that
/// call's page statement; there are at most `limit` rows; each carries
/// the primary key and satisfies every applied filter. (Columns, tenant
/// and principal are checked as for every read.)
pub fn check_evidence(
    engine: Engine,
    cap: &Capability,
    spec: &ListSpec,
    ctx: &TrustedContext,
    page: RecordedPage<'_>,
) -> Result<ListCall, EvidenceRefusal> {
    use RefusalKind::{InvalidRequest, PolicyViolation};
    let call = match parse_call(cap, spec, Some(&Value::Object(page.args.clone()))) {
        Ok(c) => c,
        Err(CallError::Arguments(errs)) => {
            let msg: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
            return Err(refuse(
                InvalidRequest,
                format!(
                    "the read's arguments do not match the capability: {}",
                    msg.join("; ")
                ),
            ));
        }
        Err(CallError::Cursor(msg)) => {
            return Err(refuse(
                InvalidRequest,
                format!("the read's cursor is refused: {msg}"),
            ));
        }
    };
    let query = page_query(engine, cap, spec, &call, ctx);
    if page.fingerprint != query.fingerprint() {
        return Err(refuse(
            PolicyViolation,
            "the query fingerprint is not the reviewed page statement of this list read for the recorded arguments",
        ));
    }
    let expected = query.parameters();
    let same = page.parameters.len() == expected.len()
        && page.parameters.iter().zip(&expected).enumerate().all(
            |(i, ((pos, from, ty), (want_from, want_ty)))| {
                *pos as usize == i + 1 && from == want_from && ty == want_ty
            },
        );
    if !same {
        return Err(refuse(
            PolicyViolation,
            "the recorded parameters are not those of the page statement for the recorded arguments",
        ));
    }
    if page.rows.len() > call.limit as usize {
        return Err(refuse(
            PolicyViolation,
            format!(
                "{} rows recorded for a page of at most {} (its `limit`)",
                page.rows.len(),
                call.limit
            ),
        ));
    }
    let pk = &cap.target.primary_key;
    for (i, row) in page.rows.iter().enumerate() {
        if row.get(pk).is_none_or(Value::is_null) {
            return Err(refuse(
                PolicyViolation,
                format!("row {i} of the page does not carry its primary key `{pk}`"),
            ));
        }
        if let Some(why) = row_violation(engine, cap, spec, &call, row) {
            return Err(refuse(
                PolicyViolation,
                format!("row {i} of the page {why} of the recorded arguments"),
            ));
        }
    }
    Ok(call)
}

// ---------------------------------------------------------------------------
// What the model sees.

/// The tool's input schema: the declared filter arguments, plus `limit`
/// and `cursor`.
pub fn input_schema(cap: &Capability, spec: &ListSpec) -> Value {
    let mut schema = crate::catalog::input_schema(&cap.args);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            LIMIT_ARG.into(),
            json!({
                "type": "integer",
                "description": format!("Rows per page: 1 to {}, {} when left out.", spec.max_limit, spec.default_limit),
                "minimum": 1,
                "maximum": spec.max_limit,
                "default": spec.default_limit,
            }),
        );
        props.insert(
            CURSOR_ARG.into(),
            json!({
                "type": "string",
                "description": "The `next_cursor` of the previous page, exactly as given, with the same filter arguments; leave it out for the first page.",
                "maxLength": MAX_CURSOR_CHARS,
            }),
        );
    }
    schema
}

/// The tool's default description (before the read suffix every read gets).
pub fn describe(cap: &Capability, spec: &ListSpec) -> String {
    let mut text = format!("List {} records", cap.target.table);
    if !spec.filters.is_empty() {
        let filters: Vec<String> = spec
            .filters
            .iter()
            .map(|f| {
                format!(
                    "{} {} `{}`",
                    f.column,
                    f.op.sql().to_ascii_lowercase(),
                    f.arg
                )
            })
            .collect();
        text.push_str(&format!(
            " where {} (a filter applies only when its argument is given)",
            filters.join(", ")
        ));
    }
    let order: Vec<String> = spec
        .order_by
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t.column,
                if t.direction == Direction::Desc {
                    "descending"
                } else {
                    "ascending"
                }
            )
        })
        .chain(std::iter::once(cap.target.primary_key.clone()))
        .collect();
    text.push_str(&format!(
        ", ordered by {}. {} rows a page unless `limit` says otherwise (at most {}); when `next_cursor` is not null, pass it as `cursor` with the same arguments for the next page.",
        order.join(", then "),
        spec.default_limit,
        spec.max_limit
    ));
    text
}
