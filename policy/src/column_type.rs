//! What kind of value a column holds, read from the type its engine's
//! catalog spells (`character varying(64)`, `bigint unsigned`,
//! `datetime(6)`, `tinyint(1)`, an SQLite declared type, …). The onboarding
//! decisions use it as a type check: a tenant key is an integer, text, UUID
//! or binary key; a version counter is an integer; a boolean cannot hold an
//! email address.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeFamily {
    Integer,
    Decimal,
    Float,
    Text,
    Uuid,
    Boolean,
    /// A date and a time of day (`timestamp…`, `datetime`).
    Timestamp,
    Date,
    /// A time of day or an interval.
    Time,
    /// Nested or free-form structure: JSON, XML, arrays.
    Structured,
    Binary,
    /// Unknown, or no declared type (SQLite).
    Other,
}

/// The family of a catalog type name (case-insensitive).
pub fn type_family(data_type: &str) -> TypeFamily {
    let t = data_type.trim().to_ascii_lowercase();
    if t.ends_with("[]") {
        return TypeFamily::Structured;
    }
    // MySQL/MariaDB spell BOOLEAN as tinyint(1).
    if t.starts_with("tinyint(1)") {
        return TypeFamily::Boolean;
    }
    let base = t.split(['(', ' ']).next().unwrap_or_default();
    match base {
        "integer" | "int" | "int2" | "int4" | "int8" | "bigint" | "smallint" | "mediumint"
        | "tinyint" | "serial" | "bigserial" | "smallserial" => TypeFamily::Integer,
        "numeric" | "decimal" | "money" | "number" => TypeFamily::Decimal,
        "text" | "varchar" | "char" | "character" | "nvarchar" | "nchar" | "citext"
        | "tinytext" | "mediumtext" | "longtext" | "clob" | "string" | "enum" | "set" => {
            TypeFamily::Text
        }
        "uuid" | "uniqueidentifier" => TypeFamily::Uuid,
        "boolean" | "bool" => TypeFamily::Boolean,
        "timestamp" | "timestamptz" | "datetime" => TypeFamily::Timestamp,
        "date" => TypeFamily::Date,
        "time" | "timetz" | "interval" => TypeFamily::Time,
        "json" | "jsonb" | "xml" => TypeFamily::Structured,
        "bytea" | "blob" | "binary" | "varbinary" | "tinyblob" | "mediumblob" | "longblob" => {
            TypeFamily::Binary
        }
        // Postgres types whose names SQLite's affinity rules would misread
        // (`point` contains "int").
        "point" | "line" | "lseg" | "box" | "path" | "polygon" | "circle" | "inet" | "cidr"
        | "macaddr" | "macaddr8" | "tsvector" | "tsquery" | "geometry" | "geography" | "bit" => {
            TypeFamily::Other
        }
        _ => sqlite_affinity(&t),
    }
}

/// SQLite's affinity rules for a declared type no list above names
/// (`unsigned big int`, `varying character(20)`, `native character`); they
/// also name the floating-point types of every engine (`real`, `float8`,
/// `double precision`).
fn sqlite_affinity(t: &str) -> TypeFamily {
    if t.contains("int") {
        TypeFamily::Integer
    } else if t.contains("char") || t.contains("clob") || t.contains("text") {
        TypeFamily::Text
    } else if t.contains("blob") {
        TypeFamily::Binary
    } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
        TypeFamily::Float
    } else {
        TypeFamily::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TypeFamily::*;

    #[test]
    fn catalog_spellings_of_each_engine_map_to_their_family() {
        for (t, f) in [
            ("integer", Integer),
            ("INT", Integer),
            ("int(11)", Integer),
            ("int2", Integer),
            ("int4", Integer),
            ("int8", Integer),
            ("bigint unsigned", Integer),
            ("smallint", Integer),
            ("mediumint", Integer),
            ("tinyint(4)", Integer),
            ("tinyint", Integer),
            ("serial", Integer),
            ("bigserial", Integer),
            ("smallserial", Integer),
            ("numeric(12,2)", Decimal),
            ("decimal(10,2)", Decimal),
            ("money", Decimal),
            ("number", Decimal),
            ("real", Float),
            ("float", Float),
            ("float4", Float),
            ("float8", Float),
            ("double precision", Float),
            ("text", Text),
            ("varchar(255)", Text),
            ("char(36)", Text),
            ("character varying(64)", Text),
            ("nvarchar(10)", Text),
            ("nchar(2)", Text),
            ("citext", Text),
            ("tinytext", Text),
            ("mediumtext", Text),
            ("longtext", Text),
            ("clob", Text),
            ("string", Text),
            ("enum('open','closed')", Text),
            ("set('a','b')", Text),
            ("uuid", Uuid),
            ("uniqueidentifier", Uuid),
            ("boolean", Boolean),
            ("bool", Boolean),
            ("tinyint(1)", Boolean),
            (" TINYINT(1) unsigned", Boolean),
            ("timestamp with time zone", Timestamp),
            ("timestamp without time zone", Timestamp),
            ("timestamp(6)", Timestamp),
            ("timestamptz", Timestamp),
            ("datetime(6)", Timestamp),
            ("DATETIME", Timestamp),
            ("date", Date),
            ("time without time zone", Time),
            ("timetz", Time),
            ("interval", Time),
            ("json", Structured),
            ("jsonb", Structured),
            ("xml", Structured),
            ("text[]", Structured),
            ("integer[]", Structured),
            ("bytea", Binary),
            ("blob", Binary),
            ("binary(16)", Binary),
            ("varbinary(32)", Binary),
            ("tinyblob", Binary),
            ("mediumblob", Binary),
            ("longblob", Binary),
            ("unsigned big int", Integer),
            ("varying character(20)", Text),
            ("native character(5)", Text),
            ("my_clob_type", Text),
            ("richtext", Text),
            ("big_blob_thing", Binary),
            ("my real", Float),
            ("floating", Float),
            ("doubled", Float),
            ("", Other),
            ("point", Other),
            ("line", Other),
            ("lseg", Other),
            ("box", Other),
            ("path", Other),
            ("polygon", Other),
            ("circle", Other),
            ("inet", Other),
            ("cidr", Other),
            ("macaddr", Other),
            ("macaddr8", Other),
            ("tsvector", Other),
            ("tsquery", Other),
            ("geometry(point,4326)", Other),
            ("geography", Other),
            ("bit(1)", Other),
            ("year", Other),
        ] {
            assert_eq!(type_family(t), f, "{t:?}");
        }
    }

    #[test]
    fn the_family_serializes_in_snake_case() {
        assert_eq!(
            serde_json::to_value(Structured).unwrap(),
            serde_json::json!("structured")
        );
    }
}
