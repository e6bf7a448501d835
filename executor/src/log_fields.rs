//! How an optional log field is written: its value, or `-` — never Rust's
//! `Some(…)`/`None`, so text and JSON logs read the same and parse simply.

use std::fmt::Display;

/// `value` or `-`, for a `%` (Display) log field.
pub fn or_dash<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::or_dash;

    #[test]
    fn absent_is_a_dash_and_present_is_the_value() {
        assert_eq!(or_dash(None::<&str>), "-");
        assert_eq!(or_dash(Some("POLICY_VIOLATION")), "POLICY_VIOLATION");
        assert_eq!(or_dash(Some(42)), "42");
    }
}
