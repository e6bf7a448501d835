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
}
