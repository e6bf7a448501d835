//! Detecting and redacting secret material.
//!
//! The ledger refuses to store anything that looks like a credential
//! (invariant 7), and every output path scrubs known secret values. The
//! detector reports *where* and *what kind*, never the value itself.

use serde::Serialize;
use serde_json::Value;

use crate::diagnostics::{join_index, join_key};

/// Why a value looks like a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// `scheme://user:password@host`.
    UrlWithPassword,
    /// A database connection URL (`postgres://…`, `mysql://…`).
    ConnectionUrl,
    /// `Bearer <token>` / `Basic <token>`.
    AuthorizationHeader,
    /// PEM private key block.
    PrivateKey,
    /// A token with a well-known provider prefix (`ghp_`, `sk-`, `xoxb-`, `AKIA`…).
    ProviderToken,
    /// A non-empty string under a key named like a secret (`password`, `api_key`…).
    SecretFieldName,
}

impl SecretKind {
    pub fn describe(self) -> &'static str {
        match self {
            SecretKind::UrlWithPassword => "a URL with an embedded password",
            SecretKind::ConnectionUrl => "a database connection URL",
            SecretKind::AuthorizationHeader => "an HTTP authorization credential",
            SecretKind::PrivateKey => "a private key",
            SecretKind::ProviderToken => "an API token",
            SecretKind::SecretFieldName => "a value under a secret-named field",
        }
    }
}

/// One secret-looking value: its JSON path and kind (never the value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretFinding {
    pub path: String,
    pub kind: SecretKind,
}

const DB_SCHEMES: &[&str] = &[
    "postgres://",
    "postgresql://",
    "mysql://",
    "mariadb://",
    "sqlite://",
    "sqlite:",
    "mssql://",
    "sqlserver://",
    "mongodb://",
    "mongodb+srv://",
    "redis://",
    "amqp://",
];

const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "sk-",
    "sk_live_",
    "rk_live_",
    "AKIA",
    "ASIA",
    "AIza",
    "npm_",
    "pypi-",
];

const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "private_key",
    "access_token",
    "refresh_token",
    "auth_token",
    "bearer",
    "authorization",
    "credential",
    "client_secret",
];

/// Classify a single string.
pub fn classify(s: &str) -> Option<SecretKind> {
    if s.contains("-----BEGIN") && s.contains("PRIVATE KEY") {
        return Some(SecretKind::PrivateKey);
    }
    if let Some(kind) = url_kind(s) {
        return Some(kind);
    }
    if has_provider_token(s) {
        return Some(SecretKind::ProviderToken);
    }
    if has_authorization_credential(s) {
        return Some(SecretKind::AuthorizationHeader);
    }
    None
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '=' | '+' | '/')
}

/// A provider prefix followed by at least 16 token characters, wherever a
/// word may start: at the beginning or after any character that is not a
/// letter or digit (a space, a quote, a comma, `=`, `(`, `:`…). What follows
/// the token (a quote, `;`, `)`…) does not hide it.
fn has_provider_token(s: &str) -> bool {
    s.split(|c: char| !is_token_char(c)).any(|run| {
        // `run` is ASCII (token characters only), so byte offsets are chars.
        (0..run.len()).any(|i| {
            let starts_word = i == 0 || !run.as_bytes()[i - 1].is_ascii_alphanumeric();
            starts_word
                && TOKEN_PREFIXES
                    .iter()
                    .any(|p| run[i..].starts_with(p) && run.len() - i >= p.len() + 16)
        })
    })
}

/// `Bearer`/`Basic`, whitespace, then (after any opening quotes) at least 16
/// token characters; every occurrence is checked, not only the first.
fn has_authorization_credential(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    ["bearer", "basic"].into_iter().any(|scheme| {
        lower.match_indices(scheme).any(|(pos, _)| {
            let rest = &s[pos + scheme.len()..];
            let token =
                rest.trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
            let run = token
                .split(|c: char| !is_token_char(c))
                .next()
                .unwrap_or("");
            rest.starts_with(char::is_whitespace) && run.len() >= 16
        })
    })
}

fn url_kind(s: &str) -> Option<SecretKind> {
    let lower = s.to_ascii_lowercase();
    // Any scheme://user:pass@ is a credential, whatever the scheme.
    if let Some(idx) = lower.find("://") {
        let scheme = &lower[..idx];
        let scheme_ok = !scheme.is_empty()
            && scheme
                .bytes()
                .rev()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
                .count()
                > 0;
        let rest = &s[idx + 3..];
        let authority = rest.split(['/', '?', '#', ' ']).next().unwrap_or("");
        if scheme_ok
            && let Some(at) = authority.rfind('@')
            && authority[..at].contains(':')
        {
            return Some(SecretKind::UrlWithPassword);
        }
    }
    let trimmed = lower.trim_start();
    if DB_SCHEMES.iter().any(|scheme| {
        trimmed.starts_with(scheme)
            && trimmed.len() > scheme.len()
            && !trimmed[scheme.len()..].starts_with(' ')
    }) {
        return Some(SecretKind::ConnectionUrl);
    }
    None
}

/// True if `key` names secret material (`db_password`, `apiKey`, `Authorization`…).
pub fn is_secret_field_name(key: &str) -> bool {
    let lower = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEY_PARTS.iter().any(|part| lower.contains(part))
}

/// Every secret-looking value inside `value`, with its JSON path.
pub fn find_secrets(value: &Value) -> Vec<SecretFinding> {
    let mut out = Vec::new();
    walk(value, "$", None, &mut out);
    out
}

fn walk(value: &Value, path: &str, key: Option<&str>, out: &mut Vec<SecretFinding>) {
    match value {
        Value::String(s) => {
            if let Some(kind) = classify(s) {
                out.push(SecretFinding {
                    path: path.to_owned(),
                    kind,
                });
            } else if key.is_some_and(is_secret_field_name) && !s.is_empty() {
                out.push(SecretFinding {
                    path: path.to_owned(),
                    kind: SecretKind::SecretFieldName,
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &join_index(path, i), key, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, &join_key(path, k), Some(k), out);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The password of `scheme://user:password@host/...`, still percent-encoded.
pub fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pw) = userinfo.split_once(':')?;
    Some(pw.to_owned())
}

/// What to redact for a connection URL: the URL itself and its password,
/// percent-encoded as written and decoded as the server receives it.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    if let Some(pw) = url_password(url) {
        out.extend(percent_decode(&pw).filter(|d| *d != pw));
        out.push(pw);
    }
    out
}

/// `%XX` sequences decoded; `None` when the result is not UTF-8 or a `%`
/// is not followed by two hex digits.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Every byte outside `A-Z a-z 0-9 - . _ ~` as `%XX` (upper-case hex), as a
/// URL component encoder writes it.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The forms a known secret may take in someone else's text: as given,
/// percent-decoded (a URL password as the server received it) and
/// percent-encoded (upper- and lower-case hex), longest first, without
/// duplicates or values shorter than 4 bytes.
pub fn secret_forms(secrets: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for secret in secrets {
        let encoded = percent_encode(secret);
        let candidates = [
            Some(secret.clone()),
            percent_decode(secret),
            Some(encoded.to_ascii_lowercase()),
            Some(encoded),
        ];
        for form in candidates.into_iter().flatten() {
            if form.len() >= 4 && !out.contains(&form) {
                out.push(form);
            }
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// Replace every occurrence of each known secret value in `text`, in each
/// of its [`secret_forms`], with `[REDACTED]`. Values shorter than 4 bytes
/// are ignored (they would shred ordinary text and are not meaningful
/// secrets).
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secret_forms(secrets) {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "[REDACTED]");
        }
    }
    out
}

/// Whether `text` holds a known secret in any of its [`secret_forms`].
pub fn contains_known(text: &str, secrets: &[String]) -> bool {
    secret_forms(secrets)
        .iter()
        .any(|s| text.contains(s.as_str()))
}

/// The JSON path of every string and every object key inside `value` that
/// holds a known secret (in any of its forms). Paths, never values.
pub fn find_known(value: &Value, secrets: &[String]) -> Vec<String> {
    fn walk(value: &Value, path: &str, forms: &[String], out: &mut Vec<String>) {
        let has = |s: &str| forms.iter().any(|f| s.contains(f.as_str()));
        match value {
            Value::String(s) if has(s) => out.push(path.to_owned()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &join_index(path, i), forms, out);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    if has(k) {
                        out.push(format!("{path} (a key)"));
                    } else {
                        walk(v, &join_key(path, k), forms, out);
                    }
                }
            }
            _ => {}
        }
    }
    let forms = secret_forms(secrets);
    let mut out = Vec::new();
    if !forms.is_empty() {
        walk(value, "$", &forms, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detects_each_kind() {
        let cases = [
            (
                "postgres://app:hunter2@db:5432/x",
                SecretKind::UrlWithPassword,
            ),
            (
                "https://user:pw@example.invalid/",
                SecretKind::UrlWithPassword,
            ),
            ("postgres://db.internal/app", SecretKind::ConnectionUrl),
            ("mysql://root@127.0.0.1/test", SecretKind::ConnectionUrl),
            (
                "Authorization: Bearer abcdefghijklmnopqrstuvwxyz",
                SecretKind::AuthorizationHeader,
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
                SecretKind::PrivateKey,
            ),
            (
                "token ghp_abcdefghijklmnopqrstuvwxyz0123",
                SecretKind::ProviderToken,
            ),
            ("AKIAABCDEFGHIJKLMNOP", SecretKind::ProviderToken),
        ];
        for (s, kind) in cases {
            assert_eq!(classify(s), Some(kind), "{s}");
        }
    }

    #[test]
    fn ordinary_business_text_passes() {
        for s in [
            "customer requested review",
            "Waive the late fee; see https://example.invalid/tickets/42",
            "bearer of bad news",
            "sk-",
            "INV-3001",
            "2026-06-20T14:31:08Z",
            "ask-me-anything-please-and-thank-you",
        ] {
            assert_eq!(classify(s), None, "{s}");
        }
    }

    #[test]
    fn finds_paths_not_values() {
        let v = json!({"a": {"db_password": "x1"}, "list": ["ok", "postgres://u:p@h/d"], "n": 5});
        let found = find_secrets(&v);
        assert_eq!(
            found,
            vec![
                SecretFinding {
                    path: "$.a.db_password".into(),
                    kind: SecretKind::SecretFieldName
                },
                SecretFinding {
                    path: "$.list[1]".into(),
                    kind: SecretKind::UrlWithPassword
                },
            ]
        );
        let text = serde_json::to_string(&found).unwrap();
        assert!(!text.contains("x1") && !text.contains("u:p"));
    }

    #[test]
    fn redacts_known_values() {
        // "con" (3 bytes) appears and is too short to redact; "s3cr3t" is not.
        let out = redact(
            "connect postgres://w:s3cr3t@h failed",
            &["s3cr3t".into(), "con".into()],
        );
        assert_eq!(out, "connect postgres://w:[REDACTED]@h failed");
        // Exactly the minimum, 4 bytes, is redacted.
        let out = redact("connect postgres://w:s3cr3t@h failed", &["w:s3".into()]);
        assert_eq!(out, "connect postgres://[REDACTED]cr3t@h failed");
    }

    #[test]
    fn a_url_password_is_redacted_encoded_and_decoded() {
        let url = "https://u:p%40ss%2Fw0rd@hooks.example/apply";
        let secrets = url_secrets(url);
        assert!(secrets.contains(&"p%40ss%2Fw0rd".to_owned()));
        assert!(secrets.contains(&"p@ss/w0rd".to_owned()));
        for echoed in ["p@ss/w0rd", "p%40ss%2Fw0rd", "p%40ss%2fw0rd"] {
            let out = redact(&format!("auth failed for {echoed}!"), &secrets);
            assert_eq!(out, "auth failed for [REDACTED]!", "{echoed}");
        }
        // And the other way: a secret known decoded, echoed encoded.
        let out = redact("key=s%C3%A9cret%21", &["s\u{e9}cret!".into()]);
        assert_eq!(out, "key=[REDACTED]");
        assert!(contains_known("x p@ss/w0rd y", &secrets));
        assert!(!contains_known("nothing here", &secrets));
    }

    #[test]
    fn finds_known_values_in_every_string_and_key() {
        let secrets = url_secrets("https://u:p%40ss@h/");
        let v = json!({
            "ok": "fine",
            "data": {"nested": ["x", {"k": "has p@ss inside"}]},
            "p%40ss": 1,
            "n": 5
        });
        assert_eq!(
            find_known(&v, &secrets),
            vec!["$.data.nested[1].k".to_owned(), "$ (a key)".to_owned()]
        );
        assert!(find_known(&json!({"a": "b"}), &secrets).is_empty());
        assert!(percent_decode("%zz").is_none());
        assert_eq!(percent_encode("a b@c"), "a%20b%40c");
    }
}
