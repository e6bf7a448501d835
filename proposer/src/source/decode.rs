//! Database values → typed JSON, per engine, without panics.
//!
//! Postgres values arrive in the binary wire format and are decoded here
//! from their bytes (dispatching on the column's type: enums, domains and
//! arrays by kind, built-ins by `TypeInfo::name()`); MySQL/MariaDB values go
//! through sqlx's decoders chosen by type name; SQLite values are decoded by
//! their runtime storage class. The mapping table is in the module docs of
//! [`crate::source`].

use serde_json::{Map, Number, Value};
use sqlx::mysql::MySqlRow;
use sqlx::mysql::types::MySqlTime;
use sqlx::postgres::{PgRow, PgTypeInfo, PgTypeKind, PgValueFormat};
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::{Column, Decode, Row, Sqlite, TypeInfo, ValueRef};

use chrono::{Datelike, Timelike};

/// A value that could not be turned into JSON: the column, its type name
/// and why.
#[derive(Debug)]
pub(crate) struct DecodeFailure {
    pub column: String,
    pub type_name: String,
    pub detail: String,
}

/// Nesting limit for domains over arrays over domains…
const MAX_TYPE_DEPTH: u8 = 8;
/// Postgres arrays have at most 6 dimensions.
const MAX_ARRAY_DIMS: i32 = 6;

// ---------------------------------------------------------------------------
// Shared formatting
// ---------------------------------------------------------------------------

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, with `=` padding).
pub(crate) fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(BASE64[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// A finite float as a JSON number; NaN and infinities as the strings
/// `"NaN"`, `"Infinity"`, `"-Infinity"` (JSON has no such numbers).
pub(crate) fn float_value(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".to_owned()),
        None if f > 0.0 => Value::String("Infinity".to_owned()),
        None => Value::String("-Infinity".to_owned()),
    }
}

/// A single-precision float by its shortest decimal form (so `0.1::real`
/// reads as `0.1`, not `0.10000000149011612`).
fn float32_value(f: f32) -> Value {
    if !f.is_finite() {
        return float_value(f64::from(f));
    }
    match f.to_string().parse::<f64>() {
        Ok(d) => float_value(d),
        Err(_) => float_value(f64::from(f)),
    }
}

/// `.ffffff` with trailing zeros removed; empty for a whole second.
fn fraction(micros: u32) -> String {
    if micros == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// (year, month, day) of a day count relative to 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's algorithm, total over i64 day counts in range).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// `YYYY-MM-DD`; years outside 0..=9999 use ISO 8601 expanded form
/// (`-0044`, `+12345`; year 0 is 1 BC).
fn date_string(y: i64, m: u32, d: u32) -> String {
    if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}")
    } else if y < 0 {
        format!("-{:04}-{m:02}-{d:02}", y.unsigned_abs())
    } else {
        format!("+{y}-{m:02}-{d:02}")
    }
}

fn time_string(h: u64, m: u32, s: u32, micros: u32) -> String {
    format!("{h:02}:{m:02}:{s:02}{}", fraction(micros))
}

fn naive_datetime_string(dt: &NaiveDateTime) -> String {
    let micros = dt.nanosecond() / 1000;
    format!(
        "{}T{}",
        date_string(i64::from(dt.year()), dt.month(), dt.day()),
        time_string(
            u64::from(dt.hour()),
            dt.minute(),
            dt.second(),
            micros.min(999_999)
        )
    )
}

// ---------------------------------------------------------------------------
// Postgres (binary wire format)
// ---------------------------------------------------------------------------

/// Days from 1970-01-01 to Postgres' epoch 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Decode every column of a Postgres row.
pub(crate) fn pg_row(row: &PgRow) -> Result<Map<String, Value>, DecodeFailure> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_info();
        let fail = |detail: String| DecodeFailure {
            column: col.name().to_owned(),
            type_name: ty.name().to_owned(),
            detail,
        };
        let raw = row.try_get_raw(i).map_err(|e| fail(e.to_string()))?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let bytes = raw.as_bytes().map_err(|e| fail(e.to_string()))?;
            match raw.format() {
                PgValueFormat::Binary => pg_binary(ty, bytes, 0).map_err(fail)?,
                // Only simple (unprepared) queries return text; we never
                // send those, but text is at least faithful as text.
                PgValueFormat::Text => Value::String(utf8(bytes).map_err(fail)?),
            }
        };
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| "the value is not valid UTF-8".to_owned())
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!(
                "truncated value: needed {n} more bytes, {} left",
                self.buf.len()
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn finish(&self) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected trailing bytes", self.buf.len()))
        }
    }
}

fn exact<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    <[u8; N]>::try_from(bytes)
        .map_err(|_| format!("expected {N} bytes, the server sent {}", bytes.len()))
}

/// One Postgres value in binary format, by its type.
fn pg_binary(ty: &PgTypeInfo, bytes: &[u8], depth: u8) -> Result<Value, String> {
    if depth > MAX_TYPE_DEPTH {
        return Err("the type nests domains and arrays too deeply".to_owned());
    }
    match ty.kind() {
        // An enum's binary form is its label.
        PgTypeKind::Enum(_) => return utf8(bytes).map(Value::String),
        // A domain is sent in its base type's format.
        PgTypeKind::Domain(base) => return pg_binary(base, bytes, depth + 1),
        PgTypeKind::Array(elem) => return pg_array(elem, bytes, depth + 1),
        PgTypeKind::Simple | PgTypeKind::Pseudo => {}
        PgTypeKind::Composite(_) | PgTypeKind::Range(_) => {
            return Err(unsupported());
        }
    }
    match ty.name() {
        "BOOL" => Ok(Value::Bool(exact::<1>(bytes)?[0] != 0)),
        "INT2" => Ok(Value::from(i16::from_be_bytes(exact(bytes)?))),
        "INT4" => Ok(Value::from(i32::from_be_bytes(exact(bytes)?))),
        "INT8" => Ok(Value::from(i64::from_be_bytes(exact(bytes)?))),
        "OID" => Ok(Value::from(u32::from_be_bytes(exact(bytes)?))),
        "FLOAT4" => Ok(float32_value(f32::from_be_bytes(exact(bytes)?))),
        "FLOAT8" => Ok(float_value(f64::from_be_bytes(exact(bytes)?))),
        "NUMERIC" => pg_numeric(bytes).map(Value::String),
        "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "UNKNOWN" | "XML" => utf8(bytes).map(Value::String),
        "\"CHAR\"" => Ok(Value::String(pg_single_char(bytes))),
        "JSON" => json_text(&utf8(bytes)?),
        "JSONB" => {
            let mut r = Reader::new(bytes);
            match r.u8()? {
                1 => json_text(&utf8(r.rest())?),
                v => Err(format!("unknown jsonb format version {v}")),
            }
        }
        "JSONPATH" => {
            let mut r = Reader::new(bytes);
            match r.u8()? {
                1 => utf8(r.rest()).map(Value::String),
                v => Err(format!("unknown jsonpath format version {v}")),
            }
        }
        "BYTEA" => Ok(Value::String(base64(bytes))),
        "UUID" => Ok(Value::String(uuid_string(&exact::<16>(bytes)?))),
        "DATE" => Ok(Value::String(pg_date(i32::from_be_bytes(exact(bytes)?)))),
        "TIME" => pg_time(i64::from_be_bytes(exact(bytes)?)).map(Value::String),
        "TIMETZ" => pg_timetz(bytes).map(Value::String),
        "TIMESTAMP" => Ok(Value::String(pg_timestamp(
            i64::from_be_bytes(exact(bytes)?),
            false,
        ))),
        "TIMESTAMPTZ" => Ok(Value::String(pg_timestamp(
            i64::from_be_bytes(exact(bytes)?),
            true,
        ))),
        "INTERVAL" => pg_interval(bytes).map(Value::String),
        "INET" | "CIDR" => pg_inet(bytes).map(Value::String),
        "MACADDR" => Ok(Value::String(hex_colon(&exact::<6>(bytes)?))),
        "MACADDR8" => Ok(Value::String(hex_colon(&exact::<8>(bytes)?))),
        "BIT" | "VARBIT" => pg_bits(bytes).map(Value::String),
        "VOID" => Ok(Value::Null),
        other if other.eq_ignore_ascii_case("citext") => utf8(bytes).map(Value::String),
        _ => Err(unsupported()),
    }
}

fn unsupported() -> String {
    "Airlock has no faithful JSON form for this type".to_owned()
}

fn json_text(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("the stored JSON does not parse: {e}"))
}

/// Postgres' one-byte `"char"`: the character, or `\ooo` for a non-ASCII
/// byte, as Postgres prints it; the zero byte is the empty string.
fn pg_single_char(bytes: &[u8]) -> String {
    match bytes.first() {
        None | Some(0) => String::new(),
        Some(b) if b.is_ascii() => char::from(*b).to_string(),
        Some(b) => format!("\\{b:03o}"),
    }
}

fn uuid_string(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// NUMERIC → its exact decimal text, as Postgres prints it (display scale
/// kept: `12.50` stays `12.50`).
fn pg_numeric(bytes: &[u8]) -> Result<String, String> {
    const POS: u16 = 0x0000;
    const NEG: u16 = 0x4000;
    const NAN: u16 = 0xC000;
    const PINF: u16 = 0xD000;
    const NINF: u16 = 0xF000;

    let mut r = Reader::new(bytes);
    let ndigits = r.i16()?;
    let weight = i64::from(r.i16()?);
    let sign = r.u16()?;
    let dscale = i64::from(r.u16()?);
    match sign {
        NAN => return Ok("NaN".to_owned()),
        PINF => return Ok("Infinity".to_owned()),
        NINF => return Ok("-Infinity".to_owned()),
        POS | NEG => {}
        other => return Err(format!("unknown numeric sign {other:#06x}")),
    }
    let ndigits = usize::try_from(ndigits).map_err(|_| "negative digit count".to_owned())?;
    let mut digits = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        let d = r.i16()?;
        if !(0..10_000).contains(&d) {
            return Err(format!("numeric digit {d} out of range"));
        }
        digits.push(d);
    }
    r.finish()?;
    let digit = |i: i64| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };

    let mut out = String::new();
    if sign == NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut i = weight + 1;
        while (frac.len() as i64) < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(usize::try_from(dscale).unwrap_or(0));
        out.push_str(&frac);
    }
    Ok(out)
}

fn pg_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        d => {
            let (y, m, dd) = civil_from_days(i64::from(d) + PG_EPOCH_DAYS);
            date_string(y, m, dd)
        }
    }
}

/// Microseconds since midnight → `HH:MM:SS[.f]` (Postgres allows `24:00:00`).
fn pg_time(micros: i64) -> Result<String, String> {
    if !(0..=MICROS_PER_DAY).contains(&micros) {
        return Err(format!("time of day out of range ({micros} µs)"));
    }
    let secs = micros / 1_000_000;
    Ok(time_string(
        (secs / 3600) as u64,
        ((secs / 60) % 60) as u32,
        (secs % 60) as u32,
        (micros % 1_000_000) as u32,
    ))
}

/// TIMETZ → `HH:MM:SS[.f]+HH:MM` (`:SS` added for a sub-minute offset).
fn pg_timetz(bytes: &[u8]) -> Result<String, String> {
    let mut r = Reader::new(bytes);
    let micros = r.i64()?;
    // Postgres stores the zone as seconds *west* of UTC.
    let zone = r.i32()?;
    r.finish()?;
    let offset = -i64::from(zone);
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let mut out = format!(
        "{}{sign}{:02}:{:02}",
        pg_time(micros)?,
        abs / 3600,
        (abs / 60) % 60
    );
    if abs % 60 != 0 {
        out.push_str(&format!(":{:02}", abs % 60));
    }
    Ok(out)
}

/// Microseconds since 2000-01-01 → `YYYY-MM-DDTHH:MM:SS[.f]`, with `Z` for
/// TIMESTAMPTZ (Postgres sends those in UTC).
fn pg_timestamp(micros: i64, utc: bool) -> String {
    match micros {
        i64::MAX => "infinity".to_owned(),
        i64::MIN => "-infinity".to_owned(),
        us => {
            let day = us.div_euclid(MICROS_PER_DAY);
            let in_day = us.rem_euclid(MICROS_PER_DAY);
            let (y, m, d) = civil_from_days(day + PG_EPOCH_DAYS);
            let secs = in_day / 1_000_000;
            format!(
                "{}T{}{}",
                date_string(y, m, d),
                time_string(
                    (secs / 3600) as u64,
                    ((secs / 60) % 60) as u32,
                    (secs % 60) as u32,
                    (in_day % 1_000_000) as u32
                ),
                if utc { "Z" } else { "" }
            )
        }
    }
}

/// INTERVAL → ISO 8601 duration the way Postgres' `intervalstyle =
/// iso_8601` prints it: each field carries its own sign (`P1Y2M3DT4H5M6.5S`,
/// `P-1D`, `PT0S`).
fn pg_interval(bytes: &[u8]) -> Result<String, String> {
    let mut r = Reader::new(bytes);
    let micros = r.i64()?;
    let days = r.i32()?;
    let months = r.i32()?;
    r.finish()?;
    if micros == 0 && days == 0 && months == 0 {
        return Ok("PT0S".to_owned());
    }
    let mut out = String::from("P");
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        out.push_str(&format!("{years}Y"));
    }
    if months != 0 {
        out.push_str(&format!("{months}M"));
    }
    if days != 0 {
        out.push_str(&format!("{days}D"));
    }
    if micros != 0 {
        out.push('T');
        let hours = micros / 3_600_000_000;
        let rest = micros % 3_600_000_000;
        let minutes = rest / 60_000_000;
        let sec_micros = rest % 60_000_000;
        if hours != 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes != 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if sec_micros != 0 {
            let sign = if sec_micros < 0 { "-" } else { "" };
            let abs = sec_micros.unsigned_abs();
            out.push_str(&format!(
                "{sign}{}{}S",
                abs / 1_000_000,
                fraction((abs % 1_000_000) as u32)
            ));
        }
    }
    Ok(out)
}

/// INET/CIDR → `addr` or `addr/bits` as Postgres prints them.
fn pg_inet(bytes: &[u8]) -> Result<String, String> {
    let mut r = Reader::new(bytes);
    let family = r.u8()?;
    let bits = r.u8()?;
    let is_cidr = r.u8()? != 0;
    let len = r.u8()?;
    let addr = r.take(usize::from(len))?;
    r.finish()?;
    let (text, max) = match family {
        2 => (std::net::Ipv4Addr::from(exact::<4>(addr)?).to_string(), 32),
        3 => (
            std::net::Ipv6Addr::from(exact::<16>(addr)?).to_string(),
            128,
        ),
        f => return Err(format!("unknown address family {f}")),
    };
    if is_cidr || bits != max {
        Ok(format!("{text}/{bits}"))
    } else {
        Ok(text)
    }
}

/// BIT/VARBIT → a string of `0` and `1`.
fn pg_bits(bytes: &[u8]) -> Result<String, String> {
    let mut r = Reader::new(bytes);
    let nbits = usize::try_from(r.i32()?).map_err(|_| "negative bit length".to_owned())?;
    let data = r.rest();
    if data.len() < nbits.div_ceil(8) {
        return Err("truncated bit string".to_owned());
    }
    Ok((0..nbits)
        .map(|i| {
            let byte = data.get(i / 8).copied().unwrap_or(0);
            if byte & (0x80 >> (i % 8)) != 0 {
                '1'
            } else {
                '0'
            }
        })
        .collect())
}

/// A (possibly multi-dimensional) array → nested JSON arrays. Lower bounds
/// other than 1 are not represented (JSON arrays start at 0).
fn pg_array(elem: &PgTypeInfo, bytes: &[u8], depth: u8) -> Result<Value, String> {
    let mut r = Reader::new(bytes);
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let _elem_oid = r.u32()?;
    if ndim == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    if !(1..=MAX_ARRAY_DIMS).contains(&ndim) {
        return Err(format!("array with {ndim} dimensions"));
    }
    let mut dims = Vec::new();
    let mut total: usize = 1;
    for _ in 0..ndim {
        let len = usize::try_from(r.i32()?).map_err(|_| "negative array length".to_owned())?;
        let _lower_bound = r.i32()?;
        total = total
            .checked_mul(len)
            .filter(|t| *t <= bytes.len())
            .ok_or_else(|| "array length exceeds the value's size".to_owned())?;
        dims.push(len);
    }
    let mut items = Vec::with_capacity(total);
    for _ in 0..total {
        let len = r.i32()?;
        if len < 0 {
            items.push(Value::Null);
        } else {
            let len = usize::try_from(len).map_err(|_| "bad element length".to_owned())?;
            items.push(pg_binary(elem, r.take(len)?, depth)?);
        }
    }
    r.finish()?;
    let mut items = items.into_iter();
    Ok(nest(&mut items, &dims))
}

fn nest(items: &mut impl Iterator<Item = Value>, dims: &[usize]) -> Value {
    match dims.split_first() {
        None => items.next().unwrap_or(Value::Null),
        Some((len, [])) => Value::Array(items.take(*len).collect()),
        Some((len, rest)) => Value::Array((0..*len).map(|_| nest(items, rest)).collect()),
    }
}

// ---------------------------------------------------------------------------
// MySQL / MariaDB
// ---------------------------------------------------------------------------

/// Decode every column of a MySQL/MariaDB row.
pub(crate) fn mysql_row(row: &MySqlRow) -> Result<Map<String, Value>, DecodeFailure> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let type_name = col.type_info().name();
        let raw = row.try_get_raw(i).map_err(|e| DecodeFailure {
            column: col.name().to_owned(),
            type_name: type_name.to_owned(),
            detail: e.to_string(),
        })?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            mysql_value(row, i, type_name).map_err(|detail| DecodeFailure {
                column: col.name().to_owned(),
                type_name: type_name.to_owned(),
                detail,
            })?
        };
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

fn mysql_value(row: &MySqlRow, i: usize, type_name: &str) -> Result<Value, String> {
    match type_name {
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR"
        | "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" => mysql_integer(row, i),
        // BIT(n) arrives as big-endian bytes; sqlx folds them into a u64.
        "BIT" => row
            .try_get_unchecked::<u64, _>(i)
            .map(Value::from)
            .map_err(|e| e.to_string()),
        "FLOAT" => row
            .try_get::<f32, _>(i)
            .map(float32_value)
            .map_err(|e| e.to_string()),
        "DOUBLE" => row
            .try_get::<f64, _>(i)
            .map(float_value)
            .map_err(|e| e.to_string()),
        // DECIMAL travels as its exact decimal text in both protocols.
        "DECIMAL" => {
            let text = row
                .try_get_unchecked::<String, _>(i)
                .map_err(|e| e.to_string())?;
            if is_decimal_text(&text) {
                Ok(Value::String(text))
            } else {
                Err("the server sent a DECIMAL that is not a decimal number".to_owned())
            }
        }
        "DATE" => row
            .try_get::<NaiveDate, _>(i)
            .map(|d| Value::String(date_string(i64::from(d.year()), d.month(), d.day())))
            .map_err(|e| e.to_string()),
        // The session time zone is +00:00, so TIMESTAMP values are UTC;
        // DATETIME is a wall-clock value with no zone and gets no `Z`.
        "TIMESTAMP" => row
            .try_get::<DateTime<Utc>, _>(i)
            .map(|t| Value::String(format!("{}Z", naive_datetime_string(&t.naive_utc()))))
            .map_err(|e| e.to_string()),
        "DATETIME" => row
            .try_get::<DateTime<Utc>, _>(i)
            .map(|t| Value::String(naive_datetime_string(&t.naive_utc())))
            .map_err(|e| e.to_string()),
        "TIME" => row
            .try_get::<MySqlTime, _>(i)
            .map(|t| {
                // Not `t.is_negative()`: in sqlx 0.9 it returns the opposite.
                let sign = if t.sign().is_negative() { "-" } else { "" };
                Value::String(format!(
                    "{sign}{}",
                    time_string(
                        u64::from(t.hours()),
                        u32::from(t.minutes()),
                        u32::from(t.seconds()),
                        t.microseconds()
                    )
                ))
            })
            .map_err(|e| e.to_string()),
        "JSON" => row
            .try_get::<Json<Value>, _>(i)
            .map(|j| j.0)
            .map_err(|e| e.to_string()),
        // Text and binary strings share wire types: a non-binary collation
        // means text; the `binary` collation means bytes (base64).
        "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET"
        | "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            match row.try_get::<String, _>(i) {
                Ok(s) => Ok(Value::String(s)),
                Err(_) => row
                    .try_get::<Vec<u8>, _>(i)
                    .map(|b| Value::String(base64(&b)))
                    .map_err(|e| e.to_string()),
            }
        }
        _ => row
            .try_get::<String, _>(i)
            .map(Value::String)
            .map_err(|_| unsupported()),
    }
}

fn mysql_integer(row: &MySqlRow, i: usize) -> Result<Value, String> {
    match row.try_get::<i64, _>(i) {
        Ok(v) => Ok(Value::from(v)),
        Err(_) => row
            .try_get::<u64, _>(i)
            .map(Value::from)
            .map_err(|e| e.to_string()),
    }
}

fn is_decimal_text(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let mut dots = 0;
    !body.is_empty()
        && body.chars().all(|c| {
            if c == '.' {
                dots += 1;
                dots == 1
            } else {
                c.is_ascii_digit()
            }
        })
}

// ---------------------------------------------------------------------------
// SQLite (dynamic typing: the value's storage class decides)
// ---------------------------------------------------------------------------

/// Decode every column of a SQLite row.
pub(crate) fn sqlite_row(row: &SqliteRow) -> Result<Map<String, Value>, DecodeFailure> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let fail = |type_name: &str, detail: String| DecodeFailure {
            column: col.name().to_owned(),
            type_name: type_name.to_owned(),
            detail,
        };
        let raw = row
            .try_get_raw(i)
            .map_err(|e| fail(col.type_info().name(), e.to_string()))?;
        if raw.is_null() {
            out.insert(col.name().to_owned(), Value::Null);
            continue;
        }
        let class = raw.type_info().name().to_owned();
        let value = match class.as_str() {
            "INTEGER" => <i64 as Decode<Sqlite>>::decode(raw).map(Value::from),
            "REAL" => <f64 as Decode<Sqlite>>::decode(raw).map(float_value),
            "BLOB" => <Vec<u8> as Decode<Sqlite>>::decode(raw).map(|b| Value::String(base64(&b))),
            _ => <String as Decode<Sqlite>>::decode(raw).map(Value::String),
        }
        .map_err(|e| fail(&class, e.to_string()))?;
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0x00, 0xff, 0x10]), "AP8Q");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(PG_EPOCH_DAYS), (2000, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(pg_date(0), "2000-01-01");
        assert_eq!(pg_date(i32::MAX), "infinity");
        assert_eq!(date_string(-44, 3, 15), "-0044-03-15");
        assert_eq!(date_string(12345, 1, 1), "+12345-01-01");
    }

    #[test]
    fn timestamps_trim_fraction() {
        // 2026-06-20T14:31:08Z
        let day = 20_624 - PG_EPOCH_DAYS; // days since 2000-01-01
        let us = day * MICROS_PER_DAY + (14 * 3600 + 31 * 60 + 8) * 1_000_000;
        assert_eq!(pg_timestamp(us, true), "2026-06-20T14:31:08Z");
        assert_eq!(pg_timestamp(us + 120_000, false), "2026-06-20T14:31:08.12");
        assert_eq!(pg_timestamp(-1, true), "1999-12-31T23:59:59.999999Z");
        assert_eq!(pg_timestamp(i64::MIN, true), "-infinity");
        assert_eq!(pg_time(MICROS_PER_DAY).unwrap(), "24:00:00");
        assert!(pg_time(-1).is_err());
    }

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(ndigits.to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(dscale.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_are_exact_text() {
        assert_eq!(
            pg_numeric(&numeric(2, 0, 0, 2, &[12, 5000])).unwrap(),
            "12.50"
        );
        assert_eq!(
            pg_numeric(&numeric(7, 4, 0, 6, &[12, 3456, 7890, 1234, 5678, 0, 100])).unwrap(),
            "123456789012345678.000001"
        );
        assert_eq!(pg_numeric(&numeric(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(pg_numeric(&numeric(0, 0, 0, 3, &[])).unwrap(), "0.000");
        assert_eq!(
            pg_numeric(&numeric(1, -1, 0x4000, 1, &[5000])).unwrap(),
            "-0.5"
        );
        assert_eq!(
            pg_numeric(&numeric(1, -2, 0, 6, &[1200])).unwrap(),
            "0.000012"
        );
        assert_eq!(pg_numeric(&numeric(1, 2, 0, 0, &[1])).unwrap(), "100000000");
        assert_eq!(pg_numeric(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(pg_numeric(&numeric(2, 0, 0, 0, &[1])).is_err());
        assert!(pg_numeric(&numeric(1, 0, 0, 0, &[10_000])).is_err());
    }

    #[test]
    fn intervals_in_iso_8601() {
        let iv = |micros: i64, days: i32, months: i32| {
            let mut b = Vec::new();
            b.extend(micros.to_be_bytes());
            b.extend(days.to_be_bytes());
            b.extend(months.to_be_bytes());
            pg_interval(&b).unwrap()
        };
        assert_eq!(iv(0, 0, 0), "PT0S");
        assert_eq!(
            iv(((4 * 60 + 5) * 60 + 6) * 1_000_000 + 500_000, 3, 14),
            "P1Y2M3DT4H5M6.5S"
        );
        assert_eq!(iv(0, -1, 0), "P-1D");
        assert_eq!(iv(-1_500_000, 0, 0), "PT-1.5S");
    }

    #[test]
    fn floats_and_decimals() {
        assert_eq!(float32_value(0.1), serde_json::json!(0.1));
        assert_eq!(float_value(f64::NAN), serde_json::json!("NaN"));
        assert_eq!(
            float_value(f64::NEG_INFINITY),
            serde_json::json!("-Infinity")
        );
        assert!(is_decimal_text("-12.50"));
        assert!(is_decimal_text("7"));
        assert!(!is_decimal_text("1.2.3"));
        assert!(!is_decimal_text("-"));
        assert!(!is_decimal_text("1e5"));
    }

    #[test]
    fn arrays_nest_by_dimension() {
        let mut items = (1..=4).map(Value::from);
        assert_eq!(
            nest(&mut items, &[2, 2]),
            serde_json::json!([[1, 2], [3, 4]])
        );
    }

    #[test]
    fn truncated_values_are_errors_not_panics() {
        assert!(pg_interval(&[0, 1]).is_err());
        assert!(pg_inet(&[2, 32, 0, 4, 1]).is_err());
        assert!(pg_timetz(&[]).is_err());
        assert!(pg_bits(&[0, 0, 0, 9, 0xff]).is_err());
        assert!(exact::<8>(&[1, 2, 3]).is_err());
    }
}
