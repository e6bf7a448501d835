//! The secret detector and redaction (`policy/src/secrets.rs`), pinned
//! with literal inputs and literal expected outputs: every detector's
//! positive and negative cases and their boundaries, the URL-password
//! helpers, the percent codecs, the forms a known secret takes and the
//! exact redacted text.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use airlock_policy::secrets::{
    SecretFinding, SecretKind, classify, contains_known, find_known, find_secrets,
    is_secret_field_name, percent_decode, percent_encode, redact, secret_forms, url_password,
    url_secrets,
};
use serde_json::json;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn assert_kinds(cases: &[(&str, Option<SecretKind>)]) {
    for (s, want) in cases {
        assert_eq!(classify(s), *want, "classify({s:?})");
    }
}

#[test]
fn each_kind_is_described_in_words() {
    let table = [
        (
            SecretKind::UrlWithPassword,
            "a URL with an embedded password",
        ),
        (SecretKind::ConnectionUrl, "a database connection URL"),
        (
            SecretKind::AuthorizationHeader,
            "an HTTP authorization credential",
        ),
        (SecretKind::PrivateKey, "a private key"),
        (SecretKind::ProviderToken, "an API token"),
        (
            SecretKind::SecretFieldName,
            "a value under a secret-named field",
        ),
    ];
    for (kind, words) in table {
        assert_eq!(kind.describe(), words, "{kind:?}");
    }
    assert_eq!(
        serde_json::to_string(&SecretKind::AuthorizationHeader).unwrap(),
        "\"authorization_header\""
    );
}

#[test]
fn ordinary_text_is_not_a_secret() {
    assert_kinds(&[
        ("", None),
        ("customer requested review", None),
        (
            "Waive the late fee; see https://example.invalid/tickets/42",
            None,
        ),
        ("2026-06-20T14:31:08Z", None),
        ("INV-3001", None),
    ]);
}

#[test]
fn a_pem_private_key_needs_both_markers() {
    assert_kinds(&[
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
            Some(SecretKind::PrivateKey),
        ),
        (
            "x -----BEGIN PRIVATE KEY----- y",
            Some(SecretKind::PrivateKey),
        ),
        ("-----BEGIN CERTIFICATE-----\nMIIB", None),
        ("my PRIVATE KEY is in the vault", None),
        // The key wins over anything else in the same string.
        (
            "-----BEGIN EC PRIVATE KEY----- postgres://u:p@h/d",
            Some(SecretKind::PrivateKey),
        ),
    ]);
}

#[test]
fn any_scheme_with_user_and_password_is_a_credential_url() {
    let url = Some(SecretKind::UrlWithPassword);
    assert_kinds(&[
        ("postgres://app:hunter2@db:5432/x", url),
        ("https://user:pw@example.invalid/", url),
        ("HTTPS://USER:PW@EXAMPLE.INVALID/", url),
        ("see ftp://a:b@files.example/x", url),
        ("git+ssh://git:tok@host/repo", url),
        ("x.y-z://u:p@h", url),
        // The last `@` ends the user info.
        ("https://u:p@x@h/", url),
        // An empty password is still user:password.
        ("https://u:@h/", url),
    ]);
}

#[test]
fn a_url_without_a_password_in_its_authority_is_not_one() {
    assert_kinds(&[
        // No scheme before `://`, or it does not end in a scheme character.
        ("://u:pw@host", None),
        ("see ://u:pw@host", None),
        ("a,://u:pw@host", None),
        // User without password.
        ("https://user@host/", None),
        // The `:` is after the `@`: a port, not a password.
        ("https://a@b:8080", None),
        // `user:pw@` outside the authority.
        ("https://host/a:b@c", None),
        ("https://host?q=a:b@c", None),
        ("https://host#a:b@c", None),
        ("https://host a:b@c", None),
    ]);
}

#[test]
fn a_database_url_is_a_connection_url_even_without_a_password() {
    let db = Some(SecretKind::ConnectionUrl);
    assert_kinds(&[
        ("postgres://db.internal/app", db),
        ("postgresql://h/d", db),
        ("mysql://root@127.0.0.1/test", db),
        ("mariadb://h/d", db),
        ("sqlite:///var/lib/app.db", db),
        ("sqlite:app.db", db),
        ("mssql://h", db),
        ("sqlserver://h", db),
        ("mongodb://h", db),
        ("mongodb+srv://cluster.example", db),
        ("redis://cache:6379", db),
        ("amqp://broker", db),
        ("POSTGRES://DB/APP", db),
        ("  \tredis://h", db),
    ]);
}

#[test]
fn a_bare_database_scheme_is_not_a_connection_url() {
    assert_kinds(&[
        ("postgres://", None),
        ("sqlite:", None),
        ("postgres:// is the scheme we use", None),
        ("sqlite: a file-based database", None),
        // Longer than a scheme, but does not start with one.
        ("postgresql is our database", None),
    ]);
}

#[test]
fn every_provider_prefix_with_sixteen_token_characters_is_a_token() {
    // Exactly the minimum: the prefix and 16 token characters.
    for token in [
        "ghp_abcdefghijklmnop",
        "gho_abcdefghijklmnop",
        "ghs_abcdefghijklmnop",
        "ghu_abcdefghijklmnop",
        "github_pat_abcdefghijklmnop",
        "glpat-abcdefghijklmnop",
        "xoxb-abcdefghijklmnop",
        "xoxp-abcdefghijklmnop",
        "xoxa-abcdefghijklmnop",
        "sk-abcdefghijklmnop",
        "sk_live_abcdefghijklmnop",
        "rk_live_abcdefghijklmnop",
        "AKIAABCDEFGHIJKLMNOP",
        "ASIAABCDEFGHIJKLMNOP",
        "AIzaabcdefghijklmnop",
        "npm_abcdefghijklmnop",
        "pypi-abcdefghijklmnop",
        // Every token character.
        "sk-a_b-c.d=e+f/ghij",
    ] {
        assert_eq!(classify(token), Some(SecretKind::ProviderToken), "{token}");
        // One character fewer is not enough.
        let short = &token[..token.len() - 1];
        assert_eq!(classify(short), None, "{short}");
    }
    assert_kinds(&[
        ("sk-", None),
        // Prefixes are case-sensitive.
        ("GHP_abcdefghijklmnop", None),
        ("akiaabcdefghijklmnop", None),
    ]);
}

#[test]
fn a_token_is_found_after_a_quote_comma_or_other_punctuation() {
    // Fail closed: a token is a token wherever a word may start, and
    // whatever follows it. (Before the fix, `token=…`, `(…)`, `key:…` and a
    // token followed by `;` or `)` went undetected.)
    let t = Some(SecretKind::ProviderToken);
    assert_kinds(&[
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123", t),
        ("\"ghp_abcdefghijklmnop\"", t),
        ("'ghp_abcdefghijklmnop'", t),
        ("a,ghp_abcdefghijklmnop", t),
        ("[\"ghp_abcdefghijklmnop\"]", t),
        ("token=ghp_abcdefghijklmnop", t),
        ("export GITHUB_TOKEN=ghp_abcdefghijklmnop", t),
        ("key:sk-abcdefghijklmnop", t),
        ("(AKIAABCDEFGHIJKLMNOP)", t),
        ("{npm_abcdefghijklmnop}", t),
        ("<pypi-abcdefghijklmnop>", t),
        ("`glpat-abcdefghijklmnop`", t),
        ("x-sk-abcdefghijklmnop", t),
        ("ghp_abcdefghijklmnop;", t),
        ("ghp_abcdefghijklmnop!", t),
        ("first ghp_abcdefghijklmnop then", t),
        // Not enough token characters before the punctuation.
        ("token=ghp_abcdefghijklmno;", None),
        ("(sk-abcdefghijklmno)", None),
    ]);
}

#[test]
fn a_prefix_inside_a_word_is_not_a_token() {
    assert_kinds(&[
        ("ask-me-anything-please-and-thank-you", None),
        ("risk-abcdefghijklmnopqrstuvwxyz", None),
        ("MYAKIAABCDEFGHIJKLMNOP", None),
        ("x9ghp_abcdefghijklmnopqrstuvwxyz", None),
    ]);
}

#[test]
fn a_bearer_or_basic_credential_is_an_authorization_header() {
    let h = Some(SecretKind::AuthorizationHeader);
    assert_kinds(&[
        ("Authorization: Bearer abcdefghijklmnop", h),
        ("Basic dXNlcjpwYXNzd29yZDEyMzQ=", h),
        ("BEARER  abcdefghijklmnop", h),
        ("Basic\tabcdefghijklmnop", h),
        ("x,Bearer abcdefghijklmnop", h),
        // After a quote, before a quote or a comma.
        ("Bearer \"abcdefghijklmnop\"", h),
        ("Bearer 'abcdefghijklmnop'", h),
        ("{\"Authorization\":\"Bearer abcdefghijklmnop\"}", h),
        ("Authorization: Bearer abcdefghijklmnop, next", h),
        // Not only the first occurrence counts.
        (
            "bearer of bad news; Authorization: Bearer abcdefghijklmnop",
            h,
        ),
        ("basic plan; Basic abcdefghijklmnop", h),
    ]);
    // A provider token is named as such, even after `Bearer`.
    assert_kinds(&[(
        "Authorization: Bearer ghp_abcdefghijklmnop",
        Some(SecretKind::ProviderToken),
    )]);
}

#[test]
fn bearer_and_basic_in_ordinary_text_are_not_credentials() {
    assert_kinds(&[
        ("bearer of bad news", None),
        ("Bearer abcdefghijklmno", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("basic plan", None),
        // No whitespace after the scheme word.
        ("basic_authentication_disabled_flag", None),
        ("Bearerabcdefghijklmnopqrstuvwxyz", None),
    ]);
}

#[test]
fn secret_field_names() {
    for key in [
        "password",
        "db_password",
        "DB_PASSWORD",
        "passwd",
        "secret",
        "client-secret",
        "api_key",
        "api-key",
        "apiKey",
        "private_key",
        "access-token",
        "refresh_token",
        "auth_token",
        "Bearer",
        "Authorization",
        "credentials",
        "client_secret",
    ] {
        assert!(is_secret_field_name(key), "{key}");
    }
    for key in [
        "", "name", "status", "token", "key", "pass", "auth", "author", "api", "private",
    ] {
        assert!(!is_secret_field_name(key), "{key}");
    }
}

fn finding(path: &str, kind: SecretKind) -> SecretFinding {
    SecretFinding {
        path: path.to_owned(),
        kind,
    }
}

#[test]
fn find_secrets_reports_paths_and_kinds() {
    let v = json!({
        "note": "hello",
        "password": "",
        "api_key": "x",
        "passwords": ["a", "", 7],
        "token": "postgres://u:p@h/d",
        "secret": "ghp_abcdefghijklmnop",
        "my-key": "redis://cache",
        "n": 5,
        "b": true,
        "z": null,
        "db_password": 12
    });
    assert_eq!(
        find_secrets(&v),
        vec![
            finding("$.api_key", SecretKind::SecretFieldName),
            finding("$.passwords[0]", SecretKind::SecretFieldName),
            finding("$.token", SecretKind::UrlWithPassword),
            // What the value looks like wins over the field name.
            finding("$.secret", SecretKind::ProviderToken),
            finding("$[\"my-key\"]", SecretKind::ConnectionUrl),
        ]
    );
    assert_eq!(
        find_secrets(&json!("Bearer abcdefghijklmnop")),
        vec![finding("$", SecretKind::AuthorizationHeader)]
    );
    assert_eq!(find_secrets(&json!("hello")), vec![]);
    assert_eq!(
        find_secrets(&json!({"note": "fine", "list": ["ok"]})),
        vec![]
    );
    assert_eq!(
        find_secrets(&json!([{"x": ["-----BEGIN PRIVATE KEY-----"]}])),
        vec![finding("$[0].x[0]", SecretKind::PrivateKey)]
    );
}

#[test]
fn url_password_takes_the_password_as_written() {
    let cases: [(&str, Option<&str>); 12] = [
        ("postgres://app:hunter2@db:5432/x", Some("hunter2")),
        ("https://u:p%40ss@h/", Some("p%40ss")),
        ("https://u:@h/", Some("")),
        ("https://u:p:q@h", Some("p:q")),
        ("https://u:p@x@h/", Some("p@x")),
        ("https://u:pw@h?x=1", Some("pw")),
        ("https://u:pw@h#frag", Some("pw")),
        ("https://u@h/", None),
        ("https://h/", None),
        ("https://h/path:x@y", None),
        ("https://h?q=a:b@c", None),
        ("no scheme u:p@h", None),
    ];
    for (url, want) in cases {
        assert_eq!(url_password(url).as_deref(), want, "{url}");
    }
}

#[test]
fn url_secrets_are_the_url_and_both_forms_of_its_password() {
    assert_eq!(
        url_secrets("https://u:p%40ss%2Fw0rd@h/apply"),
        strings(&[
            "https://u:p%40ss%2Fw0rd@h/apply",
            "p@ss/w0rd",
            "p%40ss%2Fw0rd"
        ])
    );
    // Nothing to decode: the password once.
    assert_eq!(
        url_secrets("postgres://app:hunter2@db/x"),
        strings(&["postgres://app:hunter2@db/x", "hunter2"])
    );
    // Not decodable: as written only.
    assert_eq!(
        url_secrets("https://u:bad%zz@h"),
        strings(&["https://u:bad%zz@h", "bad%zz"])
    );
    assert_eq!(url_secrets("https://h/"), strings(&["https://h/"]));
}

#[test]
fn percent_decode_decodes_escapes_and_refuses_bad_ones() {
    let cases: [(&str, Option<&str>); 11] = [
        ("", Some("")),
        ("plain", Some("plain")),
        ("a%41b", Some("aAb")),
        ("p%40ss%2Fw0rd", Some("p@ss/w0rd")),
        ("a%2f", Some("a/")),
        ("s%C3%A9cret%21", Some("s\u{e9}cret!")),
        ("x%zz", None),
        ("x%4", None),
        ("x%", None),
        ("x%C3", None),
        ("x%FFy", None),
    ];
    for (s, want) in cases {
        assert_eq!(percent_decode(s).as_deref(), want, "{s}");
    }
}

#[test]
fn percent_encode_keeps_only_unreserved_bytes() {
    let cases = [
        ("", ""),
        ("AZaz09-._~", "AZaz09-._~"),
        ("a b@c", "a%20b%40c"),
        ("p@ss/w0rd", "p%40ss%2Fw0rd"),
        ("\u{e9}!", "%C3%A9%21"),
        ("%", "%25"),
    ];
    for (s, want) in cases {
        assert_eq!(percent_encode(s), want, "{s}");
    }
}

#[test]
fn secret_forms_are_every_distinct_form_of_at_least_four_bytes_longest_first() {
    assert_eq!(
        secret_forms(&strings(&["p@ss/w0rd"])),
        strings(&["p%40ss%2fw0rd", "p%40ss%2Fw0rd", "p@ss/w0rd"])
    );
    assert_eq!(
        secret_forms(&strings(&["p%40ss"])),
        strings(&["p%2540ss", "p%40ss", "p@ss"])
    );
    // All forms equal: once.
    assert_eq!(secret_forms(&strings(&["abcd"])), strings(&["abcd"]));
    // Three bytes are too short, four are enough.
    assert_eq!(secret_forms(&strings(&["abc"])), strings(&[]));
    // Bytes, not characters: `é!` is three bytes; its encodings are longer.
    assert_eq!(
        secret_forms(&strings(&["\u{e9}!"])),
        strings(&["%c3%a9%21", "%C3%A9%21"])
    );
    // Not decodable: as written and encoded.
    assert_eq!(
        secret_forms(&strings(&["x%zz"])),
        strings(&["x%25zz", "x%zz"])
    );
    assert_eq!(
        secret_forms(&strings(&["abcd", "abcdefgh", "abcd"])),
        strings(&["abcdefgh", "abcd"])
    );
    assert_eq!(secret_forms(&[]), strings(&[]));
}

#[test]
fn redact_leaves_short_secrets_and_redacts_from_four_bytes() {
    // A 3-byte secret that does appear is left alone ...
    assert_eq!(redact("pin 123 here", &strings(&["123"])), "pin 123 here");
    // ... one of exactly 4 bytes is redacted.
    assert_eq!(
        redact("pin 1234 here", &strings(&["1234"])),
        "pin [REDACTED] here"
    );
    assert_eq!(
        redact("pin 123 and code 4567", &strings(&["123", "4567"])),
        "pin 123 and code [REDACTED]"
    );
}

#[test]
fn redact_replaces_every_occurrence_of_every_form() {
    assert_eq!(
        redact("a s3cr3t b s3cr3t c", &strings(&["s3cr3t"])),
        "a [REDACTED] b [REDACTED] c"
    );
    // The longer secret first, so no tail of it survives.
    assert_eq!(
        redact(
            "x secret-extended y secret z",
            &strings(&["secret", "secret-extended"])
        ),
        "x [REDACTED] y [REDACTED] z"
    );
    let secrets = url_secrets("https://u:p%40ss%2Fw0rd@hooks.example/apply");
    assert_eq!(
        redact(
            "POST https://u:p%40ss%2Fw0rd@hooks.example/apply: p@ss/w0rd p%40ss%2fw0rd",
            &secrets
        ),
        "POST [REDACTED]: [REDACTED] [REDACTED]"
    );
    assert_eq!(redact("nothing here", &secrets), "nothing here");
    assert_eq!(redact("nothing here", &[]), "nothing here");
    assert_eq!(redact("", &strings(&["abcd"])), "");
}

#[test]
fn contains_known_checks_every_form_of_four_bytes_or_more() {
    let secrets = strings(&["p@ss/w0rd"]);
    assert!(contains_known("x p@ss/w0rd y", &secrets));
    assert!(contains_known("x p%40ss%2Fw0rd y", &secrets));
    assert!(contains_known("x p%40ss%2fw0rd y", &secrets));
    assert!(!contains_known("x p@ss y", &secrets));
    assert!(!contains_known("pin 123", &strings(&["123"])));
    assert!(contains_known("pin 1234", &strings(&["1234"])));
    assert!(!contains_known("anything", &[]));
}

#[test]
fn find_known_names_each_string_and_key_holding_a_secret() {
    let secrets = strings(&["abcd"]);
    let v = json!({
        "a": {"deep": ["x", "has abcd", 4, {"ok": "fine"}]},
        "key abcd": "abcd",
        "n": {"inner abcd": {"abcd": "abcd"}},
        "my-key": "%61bcd abcd",
        "plain": "abc"
    });
    assert_eq!(
        find_known(&v, &secrets),
        strings(&["$.a.deep[1]", "$ (a key)", "$.n (a key)", "$[\"my-key\"]"])
    );
    assert_eq!(find_known(&json!("has abcd"), &secrets), strings(&["$"]));
    assert_eq!(find_known(&json!("nothing"), &secrets), strings(&[]));
    assert_eq!(
        find_known(&json!(["abcd"]), &strings(&["abc"])),
        strings(&[])
    );
    assert_eq!(
        find_known(&json!(["abcd", null, true]), &secrets),
        strings(&["$[0]"])
    );
}
