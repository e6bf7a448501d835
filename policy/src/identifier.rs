//! SQL identifier safety and engine-specific quoting.
//!
//! Identifiers in the reviewed config (schema, table, columns) are the only
//! names that ever reach SQL text; everything model-supplied is a bound
//! parameter. We accept only `[A-Za-z_][A-Za-z0-9_]*` (at most 63 bytes, the
//! Postgres limit) and quote them anyway, so a reserved word is still safe.

use serde::{Deserialize, Serialize};

/// Longest identifier accepted (Postgres truncates beyond 63 bytes).
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// The database engines a source may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Postgres,
    Mysql,
    Sqlite,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
            Engine::Sqlite => "sqlite",
        }
    }

    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "postgres" | "postgresql" => Some(Engine::Postgres),
            "mysql" | "mariadb" => Some(Engine::Mysql),
            "sqlite" => Some(Engine::Sqlite),
            _ => None,
        }
    }
}

/// True if `s` is a safe SQL identifier: `[A-Za-z_][A-Za-z0-9_]*`, 1..=63 bytes.
pub fn is_safe_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    s.len() <= MAX_IDENTIFIER_LEN && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Quote a (previously validated) identifier for `engine`.
///
/// Safe identifiers contain no quote characters, so quoting cannot be
/// escaped; the quotes only protect reserved words such as `order`.
pub fn quote(engine: Engine, ident: &str) -> String {
    debug_assert!(is_safe_identifier(ident));
    match engine {
        Engine::Postgres | Engine::Sqlite => format!("\"{ident}\""),
        Engine::Mysql => format!("`{ident}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["id", "_x", "tenant_id", "A1", "updated_at"] {
            assert!(is_safe_identifier(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long = "a".repeat(64);
        for bad in [
            "", "1a", "a-b", "a b", "a;drop", "\"x\"", "`x`", "a.b", "é", "x\0", &long,
        ] {
            assert!(!is_safe_identifier(bad), "{bad:?}");
        }
    }

    #[test]
    fn quotes_per_engine() {
        assert_eq!(quote(Engine::Postgres, "order"), "\"order\"");
        assert_eq!(quote(Engine::Mysql, "order"), "`order`");
        assert_eq!(quote(Engine::Sqlite, "order"), "\"order\"");
    }

    #[test]
    fn engine_names_round_trip() {
        for (engine, name) in [
            (Engine::Postgres, "postgres"),
            (Engine::Mysql, "mysql"),
            (Engine::Sqlite, "sqlite"),
        ] {
            assert_eq!(engine.as_str(), name);
            assert_eq!(Engine::parse(name), Some(engine));
        }
        assert_eq!(Engine::parse("postgresql"), Some(Engine::Postgres));
        assert_eq!(Engine::parse("mariadb"), Some(Engine::Mysql));
        for bad in [
            "", "Postgres", "POSTGRES", "pg", "psql", "MySQL", "maria", "sqlite3", "sql", " mysql",
        ] {
            assert_eq!(Engine::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn identifier_boundaries_are_exact() {
        // Length: 1 to 63 bytes.
        assert!(is_safe_identifier("a"));
        assert!(is_safe_identifier("_"));
        assert!(is_safe_identifier(&"a".repeat(63)));
        assert!(is_safe_identifier(&format!("_{}", "9".repeat(62))));
        assert!(!is_safe_identifier(&"a".repeat(64)));
        assert!(!is_safe_identifier(&"_".repeat(64)));
        assert!(!is_safe_identifier(&format!("a{}", "b".repeat(200))));
        // First byte: a letter or underscore, never a digit or other byte.
        for ok in ["Z", "z", "A_", "_9", "__", "a_1_B", "Zz09_"] {
            assert!(is_safe_identifier(ok), "{ok}");
        }
        for bad in ["9", "0a", "$a", "-a", " a", "éa", "\u{0}a"] {
            assert!(!is_safe_identifier(bad), "{bad:?}");
        }
        // Later bytes: letters, digits, underscores only.
        for bad in [
            "a-", "a ", "a$", "a\u{e9}", "a\n", "a'", "a\"", "a`", "a;", "a9-",
        ] {
            assert!(!is_safe_identifier(bad), "{bad:?}");
        }
    }

    #[test]
    fn quoting_wraps_the_whole_name() {
        assert_eq!(quote(Engine::Postgres, "a_1"), "\"a_1\"");
        assert_eq!(quote(Engine::Mysql, "Tenant_ID"), "`Tenant_ID`");
        assert_eq!(quote(Engine::Sqlite, "_"), "\"_\"");
    }
}
