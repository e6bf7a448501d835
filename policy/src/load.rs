//! Loading and strictly validating the reviewed config.
//!
//! The loader walks the JSON by hand instead of deriving `Deserialize`, so
//! that it can (a) report *every* problem in one pass, (b) name the exact
//! JSON path of each, and (c) say what to write instead. A [`Config`] is
//! returned only when there are no errors; warnings never block.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

mod aggregate_read;
mod explore;
mod freshness;
mod list_read;
mod notifications;
mod operation;
mod session_auth;
pub use notifications::MAX_SINKS as MAX_NOTIFICATION_SINKS;

use crate::config::*;
use crate::diagnostics::{Report, join_index, join_key};
use crate::identifier::is_safe_identifier;
use crate::secrets::{SecretKind, classify};

/// Largest config accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Deepest nesting accepted in a config.
pub const MAX_CONFIG_DEPTH: usize = 64;
/// Most capabilities one config may define.
pub const MAX_CAPABILITIES: usize = 512;
/// Most arguments one capability may take.
pub const MAX_ARGS: usize = 32;
/// Longest `max_length` an argument may declare.
pub const MAX_ARG_LENGTH: u64 = 1_000_000;
/// Longest model-facing description.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest statement or handler timeout, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// Keys that would smuggle raw SQL into a reviewed config.
const RAW_SQL_KEYS: &[&str] = &[
    "sql",
    "query",
    "raw_sql",
    "statement",
    "sql_template",
    "where",
    "where_clause",
    "filter_sql",
    "order_by",
    "join",
];

/// Keys that would put connection details inline instead of behind an env var.
const INLINE_CONNECTION_KEYS: &[&str] = &[
    "url",
    "read_url",
    "write_url",
    "database_url",
    "dsn",
    "connection_string",
    "connection_url",
    "uri",
    "host",
    "password",
    "token",
    "bearer_token",
    "signing_secret",
    "command",
];

/// Argument names that would hand authority (tenant, identity, role) or
/// query shape (schema, table, column, SQL) to the model.
const AUTHORITY_ARG_NAMES: &[&str] = &[
    "tenant",
    "tenant_id",
    "tenantid",
    "tenant_key",
    "org",
    "org_id",
    "organization",
    "organization_id",
    "workspace_id",
    "principal",
    "principal_id",
    "user",
    "user_id",
    "actor",
    "role",
    "roles",
    "permission",
    "permissions",
    "is_admin",
    "admin",
    "approver",
    "approved",
    "approval",
    "approved_by",
    "schema",
    "database",
    "db",
    "table",
    "table_name",
    "column",
    "columns",
    "column_name",
    "sql",
    "query",
    "statement",
    "where",
    "filter",
    "order_by",
    "limit",
];

/// Words that make an argument authority-shaped wherever they appear in its
/// name (`owner_tenant_id`, `sort_column`, `target_table`).
const AUTHORITY_WORDS: &[&str] = &[
    "tenant",
    "tenants",
    "principal",
    "schema",
    "table",
    "column",
    "columns",
    "sql",
    "role",
    "roles",
    "approver",
    "approval",
];

/// Whether a (lower-case) argument name is authority-shaped; the loader
/// refuses such an argument, and `draft` never writes one.
pub(crate) fn is_authority_name(lower: &str) -> bool {
    AUTHORITY_ARG_NAMES.contains(&lower) || lower.split('_').any(|w| AUTHORITY_WORDS.contains(&w))
}

/// Split `camelCase` and `snake_case` names into lower-case words.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '.' || c == '_' || c == '-' {
            out.push(std::mem::take(&mut cur));
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    out.push(cur);
    out.retain(|w| !w.is_empty());
    out
}

/// Words a capability name may not contain: the model would read them as
/// authority it does not have (invariant 2).
const FORBIDDEN_NAME_WORDS: &[&str] = &[
    "approve", "approval", "commit", "sql", "grant", "execute", "apply",
];

/// The result of loading: a config when there were no errors, and every
/// finding either way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Option<Config>,
    pub report: Report,
}

/// Parse and validate config text.
pub fn load_config_str(text: &str) -> Loaded {
    let mut report = Report::default();
    if text.len() > MAX_CONFIG_BYTES {
        report.error(
            "$",
            format!(
                "the config is {} bytes; the limit is {MAX_CONFIG_BYTES}",
                text.len()
            ),
            "split unrelated capabilities into separate configs",
        );
        return Loaded {
            config: None,
            report,
        };
    }
    match crate::strict_json::parse(text.as_bytes(), MAX_CONFIG_DEPTH) {
        Ok(value) => load_config(&value),
        Err(err) => {
            report.error(
                "$",
                format!("not valid JSON: {err}"),
                "fix the JSON at the line and column given; each key may appear only once per object",
            );
            Loaded {
                config: None,
                report,
            }
        }
    }
}

/// Validate an already parsed config document.
pub fn load_config(value: &Value) -> Loaded {
    let mut r = Report::default();
    scan_inline_credentials(value, "$", &mut r);
    let config = parse_config(&mut r, value);
    if let Some(c) = &config {
        check_schema_lock_targets(&mut r, c);
        check_principal_scopes(&mut r, value, c);
    }
    let config = config.map(|c| set_aside_disabled(&mut r, c));
    let config = if r.has_errors() { None } else { config };
    // Errors first, then warnings, each in document order.
    r.diagnostics
        .sort_by_key(|d| d.severity != crate::diagnostics::Severity::Error);
    Loaded { config, report: r }
}

// ---------------------------------------------------------------------------
// A small cursor over one JSON object that knows its path and its fields.

struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    /// Open `value` as an object with the given known keys; unknown keys are
    /// reported (with a specific message for raw SQL and inline credentials).
    fn open(r: &mut Report, path: &str, value: &'a Value, known: &[&str]) -> Option<Obj<'a>> {
        let Some(map) = value.as_object() else {
            r.error(
                path,
                format!("expected an object, found {}", type_name(value)),
                "write a JSON object `{ … }` here",
            );
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                unknown_key(r, path, key, known);
            }
        }
        Some(Obj {
            path: path.to_owned(),
            map,
        })
    }

    fn at(&self, key: &str) -> String {
        join_key(&self.path, key)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Each of `keys` present is an error: it "does not apply to `what`".
    fn refuse_keys(&self, r: &mut Report, keys: &[&str], what: &str) {
        for k in keys {
            if self.has(k) {
                r.error(
                    self.at(k),
                    format!("`{k}` does not apply to {what}"),
                    format!("remove `{k}`"),
                );
            }
        }
    }

    fn missing(&self, r: &mut Report, key: &str, fix: &str) {
        r.error(self.at(key), format!("missing required field `{key}`"), fix);
    }

    fn string(&self, r: &mut Report, key: &str) -> Option<String> {
        let v = self.get(key)?;
        match v.as_str() {
            Some(s) if !s.is_empty() => Some(s.to_owned()),
            Some(_) => {
                r.error(
                    self.at(key),
                    "must not be empty",
                    format!("give `{key}` a value or remove it"),
                );
                None
            }
            None => {
                r.error(
                    self.at(key),
                    format!("expected a string, found {}", type_name(v)),
                    "write a quoted string",
                );
                None
            }
        }
    }

    fn req_string(&self, r: &mut Report, key: &str, fix: &str) -> Option<String> {
        if !self.has(key) {
            self.missing(r, key, fix);
            return None;
        }
        self.string(r, key)
    }

    fn boolean(&self, r: &mut Report, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                r.error(
                    self.at(key),
                    format!("expected true or false, found {}", type_name(v)),
                    "write true or false",
                );
                None
            }
        }
    }

    fn number(&self, r: &mut Report, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        match v.as_f64() {
            Some(n) if v.is_number() => Some(n),
            _ => {
                r.error(
                    self.at(key),
                    format!("expected a number, found {}", type_name(v)),
                    "write a JSON number",
                );
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn integer(&self, r: &mut Report, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = self.get(key)?;
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                r.error(
                    self.at(key),
                    format!(
                        "expected a whole number from {min} to {max}, found {}",
                        short(v)
                    ),
                    format!("write a whole number between {min} and {max}"),
                );
                None
            }
        }
    }

    fn env_name(&self, r: &mut Report, key: &str) -> Option<String> {
        let s = self.string(r, key)?;
        check_env_name(r, &self.at(key), &s).then_some(s)
    }

    fn req_env_name(&self, r: &mut Report, key: &str, fix: &str) -> Option<String> {
        if !self.has(key) {
            self.missing(r, key, fix);
            return None;
        }
        self.env_name(r, key)
    }

    fn identifier(&self, r: &mut Report, key: &str) -> Option<String> {
        let s = self.string(r, key)?;
        check_identifier(r, &self.at(key), &s).then_some(s)
    }

    fn req_identifier(&self, r: &mut Report, key: &str, fix: &str) -> Option<String> {
        if !self.has(key) {
            self.missing(r, key, fix);
            return None;
        }
        self.identifier(r, key)
    }

    fn object(&self, r: &mut Report, key: &str) -> Option<&'a Map<String, Value>> {
        let v = self.get(key)?;
        match v.as_object() {
            Some(m) => Some(m),
            None => {
                r.error(
                    self.at(key),
                    format!("expected an object, found {}", type_name(v)),
                    "write a JSON object `{ … }`",
                );
                None
            }
        }
    }

    fn array(&self, r: &mut Report, key: &str) -> Option<&'a Vec<Value>> {
        let v = self.get(key)?;
        match v.as_array() {
            Some(a) => Some(a),
            None => {
                r.error(
                    self.at(key),
                    format!("expected an array, found {}", type_name(v)),
                    "write a JSON array `[ … ]`",
                );
                None
            }
        }
    }

    /// A non-empty array of unique safe identifiers.
    fn identifier_list(&self, r: &mut Report, key: &str) -> Option<Vec<String>> {
        let items = self.array(r, key)?;
        let path = self.at(key);
        if items.is_empty() {
            r.error(
                &path,
                "must list at least one column",
                "name the columns, e.g. [\"status\"]",
            );
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = join_index(&path, i);
            match item.as_str() {
                Some(s) if check_identifier(r, &p, s) => {
                    if out.iter().any(|c| c == s) {
                        r.error(
                            &p,
                            format!("column `{s}` is listed twice"),
                            "list each column once",
                        );
                        ok = false;
                    } else {
                        out.push(s.to_owned());
                    }
                }
                Some(_) => ok = false,
                None => {
                    r.error(
                        &p,
                        format!("expected a column name, found {}", type_name(item)),
                        "write the column name as a string",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

fn unknown_key(r: &mut Report, path: &str, key: &str, known: &[&str]) {
    let p = join_key(path, key);
    let lower = key.to_ascii_lowercase();
    if RAW_SQL_KEYS.contains(&lower.as_str()) {
        r.error(
            p,
            format!("raw SQL (`{key}`) is never accepted: the model gets reviewed business tools, not queries"),
            "describe the row with `target` (schema, table, primary_key, tenant_key), `lookup.id_from_arg` and `visible_columns`; Airlock builds the parameterized statement itself",
        );
    } else if INLINE_CONNECTION_KEYS.contains(&lower.as_str()) {
        r.error(
            p,
            format!("inline connection details or secrets (`{key}`) are never accepted in a reviewed config"),
            "put the value in an environment variable (or a systemd credential) and name the variable with a `*_env` field such as `read_url_env`, `write_url_env`, `token_env`",
        );
    } else if let Some(feature) = crate::synapsor_keys::unsupported(path, key) {
        r.error(
            &p,
            format!("Synapsor Runner 1.x key {p} ({feature}) is not supported by Airlock yet"),
            format!("Airlock cannot enforce {feature} yet, so it refuses the config rather than ignore the key; remove `{key}` only if this deployment may run without it"),
        );
    } else {
        let mut fields: Vec<&str> = known.to_vec();
        fields.sort_unstable();
        r.error(
            p,
            format!("unknown field `{key}`"),
            format!("remove it or use one of: {}", fields.join(", ")),
        );
    }
}

fn check_identifier(r: &mut Report, path: &str, s: &str) -> bool {
    if is_safe_identifier(s) {
        return true;
    }
    r.error(
        path,
        format!("`{}` is not a safe SQL identifier", s.escape_debug()),
        "use only letters, digits and underscores, starting with a letter or underscore (at most 63 characters); rename the column or create a view",
    );
    false
}

fn check_env_name(r: &mut Report, path: &str, s: &str) -> bool {
    if matches!(
        classify(s),
        Some(SecretKind::ConnectionUrl | SecretKind::UrlWithPassword)
    ) {
        r.error(
            path,
            "this looks like an inline connection string, not the name of an environment variable",
            "export the URL in an environment variable (e.g. APP_READ_URL) and write that variable's name here",
        );
        return false;
    }
    let mut bytes = s.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && s.len() <= 128;
    if !ok {
        r.error(
            path,
            format!(
                "`{}` is not a valid environment variable name",
                s.escape_debug()
            ),
            "use upper-case letters, digits and underscores, e.g. APP_READ_URL",
        );
    }
    ok
}

/// A name for a map entry (source, context, executor): short and printable.
fn check_entry_name(r: &mut Report, path: &str, name: &str) -> bool {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !ok {
        r.error(
            path,
            format!("`{}` is not a valid name", name.escape_debug()),
            "use 1 to 64 letters, digits, `_` or `-`",
        );
    }
    ok
}

/// Reject inline credentials anywhere in the document, whatever the key.
fn scan_inline_credentials(value: &Value, path: &str, r: &mut Report) {
    match value {
        Value::String(s) => {
            if let Some(kind) = classify(s) {
                let what = match kind {
                    SecretKind::ConnectionUrl | SecretKind::UrlWithPassword => {
                        "an inline connection string"
                    }
                    _ => "inline secret material",
                };
                r.error(
                    path,
                    format!("this value looks like {what} ({}); a reviewed config never holds credentials", kind.describe()),
                    "move it into an environment variable or systemd credential and reference it by name with a `*_env` field",
                );
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                scan_inline_credentials(item, &join_index(path, i), r);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                scan_inline_credentials(v, &join_key(path, k), r);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// The document.

const TOP_KEYS: &[&str] = &[
    "$schema",
    "version",
    "mode",
    "result_format",
    "strict",
    "storage",
    "sources",
    "trusted_context",
    "contexts",
    "executors",
    "capabilities",
    "cloud",
    "notifications",
    "airlock",
    "proposal_freshness",
    "metrics",
    "session_auth",
    "http_security",
];

fn parse_config(r: &mut Report, value: &Value) -> Option<Config> {
    let o = Obj::open(r, "$", value, TOP_KEYS)?;
    // `$schema` names the JSON Schema an editor checks the file with (see
    // `airlock config schema`): Airlock does not read the schema, but the
    // value must be a URL or path, a non-empty string, as the schema says.
    o.string(r, "$schema");

    let version = match o.get("version") {
        None => {
            o.missing(r, "version", "add \"version\": 1");
            None
        }
        Some(v) if v.as_u64() == Some(1) => Some(1),
        Some(v) => {
            r.error(
                o.at("version"),
                format!("unsupported config version {}", short(v)),
                "write \"version\": 1",
            );
            None
        }
    };

    let mode = match o
        .req_string(
            r,
            "mode",
            "add \"mode\": \"review\" (reads and proposals) or \"read_only\"",
        )
        .as_deref()
    {
        Some("review") => Some(Mode::Review),
        Some("read_only") => Some(Mode::ReadOnly),
        Some(other) => {
            r.error(
                o.at("mode"),
                format!("mode `{other}` is not supported by Airlock"),
                "use \"review\" (proposals need a person's approval) or \"read_only\"",
            );
            None
        }
        None => None,
    };

    let result_format = match o.get("result_format") {
        None => ResultFormat::V2,
        Some(v) if v.as_u64() == Some(1) => ResultFormat::V1,
        Some(v) if v.as_u64() == Some(2) => ResultFormat::V2,
        Some(v) => {
            r.error(
                o.at("result_format"),
                format!("unsupported result format {}", short(v)),
                "write 2 (the stable envelope) or 1",
            );
            ResultFormat::V2
        }
    };

    if o.boolean(r, "strict") == Some(false) {
        r.warning(
            o.at("strict"),
            "Airlock always validates strictly; `strict: false` has no effect",
            "remove `strict`",
        );
    }
    if o.has("cloud") {
        r.warning(
            o.at("cloud"),
            "Airlock ignores `cloud` settings",
            "remove `cloud`",
        );
    }

    let storage = parse_storage(r, &o);
    let metrics = parse_metrics(r, &o);
    let sources = parse_sources(r, &o);

    let http_security = session_auth::parse_http_security(r, &o);
    let required_scopes = http_security
        .oauth_resource
        .as_ref()
        .map(|res| res.required_scopes.clone())
        .unwrap_or_default();
    let session = session_auth::parse_session_auth(r, &o, &required_scopes);
    let session_errors = o.has("session_auth") && session.is_none();

    let trusted_context = if o.has("trusted_context") {
        o.get("trusted_context").and_then(|v| {
            parse_context(
                r,
                &o.at("trusted_context"),
                v,
                session.as_ref(),
                session_errors,
            )
        })
    } else {
        o.missing(
            r,
            "trusted_context",
            "add \"trusted_context\": {\"provider\": \"environment\", \"values\": {\"tenant_id_env\": \"APP_TENANT_ID\", \"principal_env\": \"APP_PRINCIPAL\"}}",
        );
        None
    };

    let mut contexts = BTreeMap::new();
    if let Some(map) = o.object(r, "contexts") {
        for (name, v) in map {
            let p = join_key(&o.at("contexts"), name);
            let errors_before = r.errors().count();
            if check_entry_name(r, &p, name)
                && let Some(ctx) = parse_context(r, &p, v, session.as_ref(), session_errors)
                && r.errors().count() == errors_before
            {
                contexts.insert(name.clone(), ctx);
            }
        }
    }

    check_identity_wiring(
        r,
        &o,
        trusted_context.as_ref(),
        &contexts,
        session.as_ref(),
        &http_security,
    );

    let executors = parse_executors(r, &o);
    let airlock = parse_airlock(r, &o, &sources, &contexts);

    let capabilities = parse_capabilities(r, &o, mode, &sources, &contexts, &executors);
    let capability_names = capabilities.iter().map(|c| c.name.clone()).collect();
    let notifications = notifications::parse(r, &o, &capability_names);
    let proposal_freshness = freshness::parse(r, &o, &capabilities, &executors);

    Some(Config {
        version: version?,
        mode: mode?,
        result_format,
        storage,
        metrics,
        sources,
        trusted_context: trusted_context?,
        contexts,
        executors,
        capabilities,
        disabled: Vec::new(),
        notifications,
        airlock,
        proposal_freshness,
        session_auth: session,
        http_security,
    })
}

/// `http_claims` contexts and `session_auth` come together: tokens are
/// verified only to name the tenant and principal, and every context of
/// the file takes them from the token or none does (a mix would let an
/// environment-fixed tenant stand beside verified ones). The protected
/// resource is the audience tokens are issued for.
fn check_identity_wiring(
    r: &mut Report,
    o: &Obj,
    trusted: Option<&ContextSpec>,
    contexts: &BTreeMap<String, ContextSpec>,
    session: Option<&crate::session_auth::SessionAuth>,
    http: &crate::session_auth::HttpSecurity,
) {
    let claims = |c: &ContextSpec| c.provider == ContextProvider::HttpClaims;
    if let Some(top) = trusted {
        for (name, c) in contexts {
            if claims(c) != claims(top) {
                r.error(
                    join_key(&join_key(&o.at("contexts"), name), "provider"),
                    "every trusted context takes the tenant from the verified token, or none does",
                    "use the same provider as `trusted_context` (\"http_claims\" everywhere, or no \"http_claims\" at all)",
                );
            }
        }
        if session.is_some() && !claims(top) {
            r.error(
                o.at("session_auth"),
                "`session_auth` verifies tokens whose claims name the tenant, but `trusted_context` does not take them",
                "set `trusted_context.provider` to \"http_claims\", or remove `session_auth`",
            );
        }
    }
    if let (Some(res), Some(auth)) = (&http.oauth_resource, session)
        && res.resource != auth.audience
    {
        r.error(
            o.at("http_security") + ".oauth_resource.resource",
            "the protected resource must be exactly `session_auth.audience`",
            "write the same URL in both: the MCP endpoint tokens are issued for",
        );
    }
    if http.oauth_resource.is_some() && session.is_none() && !o.has("session_auth") {
        r.error(
            o.at("http_security") + ".oauth_resource",
            "protected-resource metadata tells clients where to get tokens, but no `session_auth` verifies them",
            "add `session_auth`, or remove `oauth_resource`",
        );
    }
}

/// `metrics`: `enabled` (default false), `token_env`, and the executor's
/// listener `executor_listen` (an address; off loopback only with a token).
fn parse_metrics(r: &mut Report, o: &Obj) -> MetricsSection {
    let Some(v) = o.get("metrics") else {
        return MetricsSection::default();
    };
    let Some(m) = Obj::open(
        r,
        &o.at("metrics"),
        v,
        &["enabled", "token_env", "executor_listen"],
    ) else {
        return MetricsSection::default();
    };
    let enabled = m.boolean(r, "enabled").unwrap_or(false);
    let token_env = m.env_name(r, "token_env");
    let executor_listen = m.string(r, "executor_listen").and_then(|text| match text
        .parse::<std::net::SocketAddr>(
    ) {
        Ok(addr) => Some(addr),
        Err(_) => {
            r.error(
                m.at("executor_listen"),
                format!("`{}` is not an address and port", text.escape_debug()),
                "write host:port, e.g. \"127.0.0.1:9465\"",
            );
            None
        }
    });
    if let Some(addr) = executor_listen
        && !addr.ip().is_loopback()
        && token_env.is_none()
    {
        r.error(
            m.at("executor_listen"),
            format!("the executor's metrics would be served on {addr}, off loopback, without a token"),
            "add \"token_env\": the variable holding the bearer token scrapers send, or listen on 127.0.0.1",
        );
    }
    MetricsSection {
        enabled,
        token_env,
        executor_listen,
    }
}

fn parse_storage(r: &mut Report, o: &Obj) -> Storage {
    let Some(v) = o.get("storage") else {
        return Storage::default();
    };
    let Some(s) = Obj::open(r, &o.at("storage"), v, &["sqlite_path", "shared_postgres"]) else {
        return Storage::default();
    };
    let shared_postgres = parse_shared_postgres(r, &s);
    let sqlite_path = s.string(r, "sqlite_path");
    if sqlite_path.is_some() && shared_postgres.is_some() {
        r.warning(
            s.at("sqlite_path"),
            "`sqlite_path` is not used: the ledger is on PostgreSQL (`shared_postgres.mode` is \"runtime_store\")",
            "remove `sqlite_path`, or set `shared_postgres.mode` to \"disabled\" to keep the ledger in SQLite",
        );
    }
    Storage {
        sqlite_path,
        shared_postgres,
    }
}

/// `storage.shared_postgres`, in Synapsor Runner's shape. Only
/// `runtime_store` (the ledger lives in PostgreSQL) is a ledger Airlock
/// serves; `disabled` keeps SQLite; Runner's `mirror` (an SQLite copy
/// synced back) has no Airlock equivalent and is refused by name.
fn parse_shared_postgres(r: &mut Report, o: &Obj) -> Option<SharedPostgres> {
    let v = o.get("shared_postgres")?;
    let s = Obj::open(
        r,
        &o.at("shared_postgres"),
        v,
        &[
            "mode",
            "url_env",
            "schema",
            "lock_timeout_ms",
            "apply_lease_ms",
            "max_entries",
        ],
    )?;
    let mode = s.req_string(
        r,
        "mode",
        "add \"mode\": \"runtime_store\" (the ledger lives in PostgreSQL) or \"disabled\"",
    );
    let url_env = s.req_env_name(
        r,
        "url_env",
        "add \"url_env\": the name of the variable holding the ledger database's URL, e.g. AIRLOCK_LEDGER_DATABASE_URL",
    );
    let schema = match s.string(r, "schema") {
        None => Some(SharedPostgres::DEFAULT_SCHEMA.to_owned()),
        Some(name) if is_ledger_schema_name(&name) => Some(name),
        Some(name) => {
            r.error(
                s.at("schema"),
                format!("`{}` is not a schema name Airlock uses", name.escape_debug()),
                "use lower-case letters, digits and underscores, starting with a letter or underscore (at most 63 characters), e.g. airlock_ledger",
            );
            None
        }
    };
    let lock_timeout_ms = if s.has("lock_timeout_ms") {
        s.integer(r, "lock_timeout_ms", 100, 600_000)
    } else {
        Some(SharedPostgres::DEFAULT_LOCK_TIMEOUT_MS)
    };
    let apply_lease_ms = if s.has("apply_lease_ms") {
        s.integer(r, "apply_lease_ms", 1_000, 600_000)
    } else {
        Some(SharedPostgres::DEFAULT_APPLY_LEASE_MS)
    };
    if s.has("max_entries") {
        s.integer(r, "max_entries", 100, 100_000);
        r.warning(
            s.at("max_entries"),
            "`max_entries` has no effect in Airlock: the ledger is not copied out and back per operation, so it has no such cap",
            "remove `max_entries`",
        );
    }
    match mode.as_deref() {
        Some("runtime_store") => Some(SharedPostgres {
            url_env: url_env?,
            schema: schema?,
            lock_timeout_ms: lock_timeout_ms?,
            apply_lease_ms: apply_lease_ms?,
        }),
        Some("disabled") | None => None,
        Some("mirror") => {
            r.error(
                s.at("mode"),
                "`mirror` (an SQLite ledger copied to PostgreSQL and back) is not an Airlock mode",
                "use \"runtime_store\": Airlock's executors write the PostgreSQL ledger directly, one chain lock at a time",
            );
            None
        }
        Some(other) => {
            r.error(
                s.at("mode"),
                format!("unknown mode `{}`", other.escape_debug()),
                "use \"runtime_store\" or \"disabled\"",
            );
            None
        }
    }
}

/// A ledger schema name: a lower-case SQL identifier (so it needs no
/// quoting and reads the same in every catalog).
pub fn is_ledger_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 63
}

fn parse_sources(r: &mut Report, o: &Obj) -> BTreeMap<String, Source> {
    let mut out = BTreeMap::new();
    if !o.has("sources") {
        o.missing(r, "sources", "add \"sources\": {\"app\": {\"engine\": \"postgres\", \"read_url_env\": \"APP_READ_URL\"}}");
        return out;
    }
    let Some(map) = o.object(r, "sources") else {
        return out;
    };
    if map.is_empty() {
        r.error(
            o.at("sources"),
            "at least one source is required",
            "add a source with `engine` and `read_url_env`",
        );
    }
    for (name, v) in map {
        let path = join_key(&o.at("sources"), name);
        let errors_before = r.errors().count();
        if !check_entry_name(r, &path, name) {
            continue;
        }
        let Some(s) = Obj::open(
            r,
            &path,
            v,
            &[
                "engine",
                "read_url_env",
                "write_url_env",
                "read_only",
                "statement_timeout_ms",
                "ssl",
            ],
        ) else {
            continue;
        };
        let engine = match s.req_string(
            r,
            "engine",
            "add \"engine\": \"postgres\", \"mysql\" or \"sqlite\"",
        ) {
            Some(e) => match Engine::parse(&e) {
                Some(engine) => Some(engine),
                None => {
                    r.error(
                        s.at("engine"),
                        format!("unknown engine `{e}`"),
                        "use \"postgres\", \"mysql\" (also MariaDB) or \"sqlite\"",
                    );
                    None
                }
            },
            None => None,
        };
        let read = s.req_env_name(
            r,
            "read_url_env",
            "add \"read_url_env\": the name of the variable holding a read-only connection URL",
        );
        let write = s.env_name(r, "write_url_env");
        if let (Some(rd), Some(wr)) = (&read, &write)
            && rd == wr
        {
            r.error(
                s.at("write_url_env"),
                "the read and write URLs come from the same variable, so the proposer would hold write authority",
                "use a separate variable for the write URL, holding a different (write-capable) role",
            );
        }
        let timeout = s
            .integer(r, "statement_timeout_ms", 1, MAX_TIMEOUT_MS)
            .unwrap_or(DEFAULT_STATEMENT_TIMEOUT_MS);
        let read_only = s.boolean(r, "read_only").unwrap_or(false);
        if s.has("ssl") {
            r.warning(
                s.at("ssl"),
                "`ssl` is ignored; TLS settings come from the connection URL",
                "put sslmode/ssl-mode in the URL and remove `ssl`",
            );
        }
        if let (Some(engine), Some(read_url_env), true) =
            (engine, read, r.errors().count() == errors_before)
        {
            out.insert(
                name.clone(),
                Source {
                    engine,
                    read_url_env,
                    write_url_env: write,
                    statement_timeout_ms: timeout,
                    read_only,
                },
            );
        }
    }
    out
}

/// One trusted context. `session` is the parsed `session_auth` (for
/// `http_claims`); `session_errors` says it was present but wrong, so its
/// absence is not reported twice.
fn parse_context(
    r: &mut Report,
    path: &str,
    v: &Value,
    session: Option<&crate::session_auth::SessionAuth>,
    session_errors: bool,
) -> Option<ContextSpec> {
    let c = Obj::open(r, path, v, &["provider", "values"])?;
    let provider = match c
        .req_string(r, "provider", "add \"provider\": \"environment\"")
        .as_deref()
    {
        Some("environment") => Some(ContextProvider::Environment),
        Some("static_dev") => Some(ContextProvider::StaticDev),
        Some("http_claims") => Some(ContextProvider::HttpClaims),
        Some(other) => {
            r.error(
                c.at("provider"),
                format!("trusted-context provider `{other}` is not supported by Airlock"),
                "use \"environment\" (values from the proposer's environment), \"http_claims\" (verified tokens on HTTP) or \"static_dev\" for local development",
            );
            None
        }
        None => None,
    };
    let empty = Value::Object(Map::new());
    let values = c.get("values").unwrap_or(&empty);
    let vpath = c.at("values");
    let vals = Obj::open(
        r,
        &vpath,
        values,
        &[
            "tenant_id",
            "principal",
            "tenant_id_env",
            "principal_env",
            "tenant_id_key",
            "principal_key",
        ],
    )?;
    let provider = provider?;
    if provider != ContextProvider::HttpClaims {
        vals.refuse_keys(
            r,
            &["tenant_id_key", "principal_key"],
            "this provider (they name claims of a verified token, for \"http_claims\")",
        );
    }
    match provider {
        ContextProvider::HttpClaims => {
            vals.refuse_keys(
                r,
                &["tenant_id", "principal", "tenant_id_env", "principal_env"],
                "the http_claims provider (the tenant and principal are the verified token's claims)",
            );
            let Some(auth) = session else {
                if !session_errors {
                    r.error(
                        c.at("provider"),
                        "`http_claims` takes the tenant and principal from verified tokens, but there is no `session_auth`",
                        "add \"session_auth\": {\"provider\": \"jwt_asymmetric\", \"algorithms\": [\"RS256\"], \"jwks_url_env\": …, \"issuer\": …, \"audience\": …}",
                    );
                }
                return None;
            };
            let mut ok = true;
            for (key, claim, setting) in [
                ("tenant_id_key", &auth.tenant_claim, "tenant_claim"),
                ("principal_key", &auth.principal_claim, "principal_claim"),
            ] {
                if let Some(named) = vals.string(r, key)
                    && named != *claim
                {
                    r.error(
                        vals.at(key),
                        format!("`{key}` names another claim than `session_auth.{setting}`"),
                        format!(
                            "remove `{key}` (session_auth.{setting} decides) or make them equal"
                        ),
                    );
                    ok = false;
                }
            }
            ok.then(|| ContextSpec {
                provider: ContextProvider::HttpClaims,
                tenant: ValueSource::Claim(auth.tenant_claim.clone()),
                principal: ValueSource::Claim(auth.principal_claim.clone()),
            })
        }
        ContextProvider::Environment => {
            for k in ["tenant_id", "principal"] {
                if vals.has(k) {
                    r.error(
                        vals.at(k),
                        format!("the environment provider reads `{k}_env`, not a literal `{k}`"),
                        format!(
                            "write \"{k}_env\": \"APP_{}\" and set that variable for the proposer",
                            k.to_ascii_uppercase()
                        ),
                    );
                }
            }
            let tenant = vals.req_env_name(
                r,
                "tenant_id_env",
                "add \"tenant_id_env\": the variable that holds the tenant id, e.g. \"APP_TENANT_ID\"",
            );
            let principal = vals.env_name(r, "principal_env");
            Some(ContextSpec {
                provider: ContextProvider::Environment,
                tenant: ValueSource::Env(tenant?),
                principal: principal.map_or(ValueSource::Unset, ValueSource::Env),
            })
        }
        ContextProvider::StaticDev => {
            r.warning(
                c.at("provider"),
                "static_dev fixes the tenant in the config file; use it for local development only",
                "use the environment provider in production",
            );
            let tenant = vals.req_string(r, "tenant_id", "add \"tenant_id\": \"dev_tenant\"");
            let principal = vals.string(r, "principal");
            if let Some(t) = &tenant {
                check_tenant_value(r, &vals.at("tenant_id"), t);
            }
            Some(ContextSpec {
                provider: ContextProvider::StaticDev,
                tenant: ValueSource::Static(tenant?),
                principal: principal.map_or(ValueSource::Unset, ValueSource::Static),
            })
        }
    }
}

fn check_tenant_value(r: &mut Report, path: &str, t: &str) {
    if t.len() > 128 || t.chars().any(char::is_control) {
        r.error(
            path,
            "a tenant id must be at most 128 characters with no control characters",
            "use the tenant's plain id, e.g. \"acme\"",
        );
    }
}

fn parse_executors(r: &mut Report, o: &Obj) -> BTreeMap<String, ExecutorSpec> {
    let mut out = BTreeMap::new();
    let Some(map) = o.object(r, "executors") else {
        return out;
    };
    for (name, v) in map {
        let path = join_key(&o.at("executors"), name);
        if !check_entry_name(r, &path, name) {
            continue;
        }
        let Some(e) = Obj::open(
            r,
            &path,
            v,
            &[
                "type",
                "url_env",
                "method",
                "auth",
                "signing_secret_env",
                "timeout_ms",
                "command_env",
            ],
        ) else {
            continue;
        };
        let ty = e.req_string(
            r,
            "type",
            "add \"type\": \"sql_update\", \"http_handler\" or \"command_handler\"",
        );
        let not_for = |r: &mut Report, keys: &[&str], ty: &str| {
            e.refuse_keys(r, keys, &format!("a {ty} executor"));
        };
        let timeout = e
            .integer(r, "timeout_ms", 1, MAX_TIMEOUT_MS)
            .unwrap_or(DEFAULT_HANDLER_TIMEOUT_MS);
        let spec = match ty.as_deref() {
            Some("sql_update") => {
                not_for(
                    r,
                    &[
                        "url_env",
                        "method",
                        "auth",
                        "signing_secret_env",
                        "timeout_ms",
                        "command_env",
                    ],
                    "sql_update",
                );
                Some(ExecutorSpec::SqlUpdate)
            }
            Some("http_handler") => {
                not_for(r, &["command_env"], "http_handler");
                let url_env = e.req_env_name(
                    r,
                    "url_env",
                    "add \"url_env\": the variable holding the handler's URL",
                );
                let method = match e.string(r, "method").as_deref() {
                    None | Some("POST") => Some(HttpMethod::Post),
                    Some("PUT") => Some(HttpMethod::Put),
                    Some("PATCH") => Some(HttpMethod::Patch),
                    Some(m) => {
                        r.error(
                            e.at("method"),
                            format!("unsupported method `{m}`"),
                            "use \"POST\", \"PUT\" or \"PATCH\"",
                        );
                        None
                    }
                };
                let token_env = parse_auth(r, &e);
                let signing = e.env_name(r, "signing_secret_env");
                match (url_env, method) {
                    (Some(url_env), Some(method)) => {
                        Some(ExecutorSpec::HttpHandler(HttpHandlerSpec {
                            url_env,
                            method,
                            token_env,
                            signing_secret_env: signing,
                            timeout_ms: timeout,
                        }))
                    }
                    _ => None,
                }
            }
            Some("command_handler") => {
                not_for(
                    r,
                    &["url_env", "method", "auth", "signing_secret_env"],
                    "command_handler",
                );
                e.req_env_name(
                    r,
                    "command_env",
                    "add \"command_env\": the variable holding the handler's executable path",
                )
                .map(|command_env| {
                    ExecutorSpec::CommandHandler(CommandHandlerSpec {
                        command_env,
                        timeout_ms: timeout,
                    })
                })
            }
            Some(other) => {
                r.error(
                    e.at("type"),
                    format!("unknown executor type `{other}`"),
                    "use \"sql_update\", \"http_handler\" or \"command_handler\"",
                );
                None
            }
            None => None,
        };
        if let Some(spec) = spec {
            out.insert(name.clone(), spec);
        }
    }
    out
}

/// `auth`: `{"type": "bearer_env", "token_env": "X"}` or the short form `{"bearer_env": "X"}`.
fn parse_auth(r: &mut Report, e: &Obj) -> Option<String> {
    let v = e.get("auth")?;
    let a = Obj::open(r, &e.at("auth"), v, &["type", "token_env", "bearer_env"])?;
    match a.string(r, "type").as_deref() {
        None | Some("bearer_env") => {}
        Some(other) => {
            r.error(
                a.at("type"),
                format!("unsupported auth type `{other}`"),
                "use \"bearer_env\" with `token_env`",
            );
        }
    }
    match (a.has("token_env"), a.has("bearer_env")) {
        (true, true) => {
            r.error(
                a.at("bearer_env"),
                "give the token variable once",
                "keep `token_env` and remove `bearer_env`",
            );
            None
        }
        (true, false) => a.env_name(r, "token_env"),
        (false, true) => a.env_name(r, "bearer_env"),
        (false, false) => {
            a.missing(
                r,
                "token_env",
                "add \"token_env\": the variable holding the bearer token",
            );
            None
        }
    }
}

fn parse_peer(r: &mut Report, o: &Obj) -> Option<PeerId> {
    match (o.has("user"), o.has("uid")) {
        (true, false) => o.string(r, "user").map(PeerId::User),
        (false, true) => o
            .integer(r, "uid", 0, u64::from(u32::MAX))
            .and_then(|n| u32::try_from(n).ok())
            .map(PeerId::Uid),
        _ => {
            r.error(
                &o.path,
                "name exactly one of `user` (a login name) or `uid` (a number)",
                "write e.g. {\"user\": \"alice\", …}",
            );
            None
        }
    }
}

fn parse_name_set(r: &mut Report, o: &Obj, key: &str, example: &str) -> Option<NameSet> {
    match o.get(key) {
        None => {
            o.missing(
                r,
                key,
                &format!("add \"{key}\": [{example}] or \"*\" for all"),
            );
            None
        }
        Some(Value::String(s)) if s == "*" => Some(NameSet::Any),
        Some(Value::Array(items)) => {
            let mut names = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 128 => names.push(s.to_owned()),
                    _ => r.error(
                        join_index(&o.at(key), i),
                        "expected a non-empty name",
                        format!("write names as strings, e.g. [{example}]"),
                    ),
                }
            }
            Some(NameSet::Only(names))
        }
        Some(v) => {
            r.error(
                o.at(key),
                format!("expected a list of names or \"*\", found {}", type_name(v)),
                format!("write [{example}] or \"*\""),
            );
            None
        }
    }
}

/// `airlock.limits`: every key optional, each defaulting on its own.
fn parse_intake_limits(r: &mut Report, a: &Obj) -> IntakeLimits {
    let mut out = IntakeLimits::default();
    let Some(v) = a.get("limits") else {
        return out;
    };
    let Some(l) = Obj::open(
        r,
        &a.at("limits"),
        v,
        &[
            "rate_window_seconds",
            "evidence_per_window",
            "proposals_per_window",
            "max_evidence_bytes",
            "max_change_set_bytes",
            "ledger_bytes_per_day",
        ],
    ) else {
        return out;
    };
    let frame = 1024 * 1024;
    let mut set = |key: &str, min: u64, max: u64, field: &mut u64| {
        if let Some(n) = l.integer(r, key, min, max) {
            *field = n;
        }
    };
    let counts = 1_000_000_000;
    set(
        "rate_window_seconds",
        1,
        86_400,
        &mut out.rate_window_seconds,
    );
    set(
        "evidence_per_window",
        1,
        counts,
        &mut out.evidence_per_window,
    );
    set(
        "proposals_per_window",
        1,
        counts,
        &mut out.proposals_per_window,
    );
    set("max_evidence_bytes", 64, frame, &mut out.max_evidence_bytes);
    set(
        "max_change_set_bytes",
        64,
        frame,
        &mut out.max_change_set_bytes,
    );
    set(
        "ledger_bytes_per_day",
        4096,
        1 << 50,
        &mut out.ledger_bytes_per_day,
    );
    out
}

fn parse_airlock(
    r: &mut Report,
    o: &Obj,
    sources: &BTreeMap<String, Source>,
    contexts: &BTreeMap<String, ContextSpec>,
) -> AirlockSection {
    let mut out = AirlockSection {
        proposal_ttl_seconds: DEFAULT_PROPOSAL_TTL_SECONDS,
        ..Default::default()
    };
    let Some(v) = o.get("airlock") else {
        return out;
    };
    let Some(a) = Obj::open(
        r,
        &o.at("airlock"),
        v,
        &[
            "socket_dir",
            "socket_group",
            "proposers",
            "approvers",
            "proposal_ttl_seconds",
            "limits",
            "schema_lock",
            "disabled_capabilities",
            "explore",
        ],
    ) else {
        return out;
    };
    // A source or context written but invalid is reported once, where it is.
    let written = |key: &str| -> BTreeSet<String> {
        o.get(key)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    out.explore = explore::parse(
        r,
        &a,
        explore::Known {
            sources,
            contexts,
            written_sources: &written("sources"),
            written_contexts: &written("contexts"),
        },
    );
    out.limits = parse_intake_limits(r, &a);
    out.schema_lock = parse_schema_lock(r, &a);
    out.disabled_capabilities = parse_disabled(r, &a);
    out.socket_dir = a.string(r, "socket_dir");
    out.socket_group = a.string(r, "socket_group");
    out.proposal_ttl_seconds = a
        .integer(r, "proposal_ttl_seconds", 1, 366 * 24 * 3600)
        .unwrap_or(DEFAULT_PROPOSAL_TTL_SECONDS);
    if let Some(items) = a.array(r, "proposers") {
        let mut peers = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = join_index(&a.at("proposers"), i);
            let Some(po) = Obj::open(r, &p, item, &["user", "uid", "tenants"]) else {
                continue;
            };
            if let (Some(peer), Some(tenants)) = (
                parse_peer(r, &po),
                parse_name_set(r, &po, "tenants", "\"acme\""),
            ) {
                peers.push(ProposerPeer { peer, tenants });
            }
        }
        out.proposers = Some(peers);
    }
    if let Some(items) = a.array(r, "approvers") {
        let mut peers = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = join_index(&a.at("approvers"), i);
            let Some(ao) = Obj::open(r, &p, item, &["user", "uid", "roles"]) else {
                continue;
            };
            if let (Some(peer), Some(roles)) = (
                parse_peer(r, &ao),
                parse_name_set(r, &ao, "roles", "\"billing_lead\""),
            ) {
                peers.push(ApproverPeer { peer, roles });
            }
        }
        out.approvers = Some(peers);
    }
    out
}

/// Longest reason a disabled capability may carry.
const MAX_DISABLED_REASON: usize = 500;

/// `airlock.disabled_capabilities`: capability name → why it is not served
/// yet (a non-empty, single-line text a reviewer reads).
fn parse_disabled(r: &mut Report, a: &Obj) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(map) = a.object(r, "disabled_capabilities") else {
        return out;
    };
    for (name, v) in map {
        let p = join_key(&a.at("disabled_capabilities"), name);
        let fix = "write why it is not served yet, e.g. \"drafted by airlock init: confirm the version column\"";
        match v.as_str() {
            None => r.error(
                &p,
                format!("expected the reason as a string, found {}", type_name(v)),
                fix,
            ),
            Some(t) if t.trim().is_empty() => r.error(&p, "the reason is empty", fix),
            Some(t) if t.chars().count() > MAX_DISABLED_REASON => r.error(
                &p,
                format!("the reason is longer than {MAX_DISABLED_REASON} characters"),
                "shorten it; the review notes belong in your change request",
            ),
            Some(t) if t.chars().any(char::is_control) => r.error(
                &p,
                "the reason contains a control character (a line break, a tab…)",
                "write it on one line",
            ),
            Some(t) => {
                out.insert(name.clone(), t.to_owned());
            }
        }
    }
    out
}

/// Move the capabilities `airlock.disabled_capabilities` names out of
/// service, after they were validated like every other: the proposer lists
/// no tool for them and the executor, which loads the same file, knows no
/// such capability, so a proposal or apply for one is refused (fail closed).
/// A name that is no capability of the file is an error.
fn set_aside_disabled(r: &mut Report, mut config: Config) -> Config {
    for (name, reason) in &config.airlock.disabled_capabilities {
        let p = join_key("$.airlock.disabled_capabilities", name);
        if config.capability(name).is_none() {
            r.error(
                &p,
                format!("capability `{name}` is not defined in `capabilities`"),
                "remove the entry, or correct the name",
            );
        } else {
            r.warning(
                &p,
                format!("capability `{name}` is disabled and not served: {reason}"),
                "review it, then remove its entry from `airlock.disabled_capabilities` to serve it",
            );
        }
    }
    let (disabled, served) = std::mem::take(&mut config.capabilities)
        .into_iter()
        .partition(|c| config.airlock.disabled_capabilities.contains_key(&c.name));
    config.capabilities = served;
    config.disabled = disabled;
    config
}

const RELOCK: &str = "run `airlock config lock --config <file>` to record the live table again, and review the change";

/// `airlock.schema_lock`: per capability name, `{schema, table, columns:
/// {name: type}, fingerprint}`; the fingerprint must be the one of the
/// recorded columns.
fn parse_schema_lock(r: &mut Report, a: &Obj) -> BTreeMap<String, SchemaLockEntry> {
    let mut out = BTreeMap::new();
    let Some(map) = a.object(r, "schema_lock") else {
        return out;
    };
    for (name, v) in map {
        let p = join_key(&a.at("schema_lock"), name);
        let Some(e) = Obj::open(r, &p, v, &["schema", "table", "columns", "fingerprint"]) else {
            continue;
        };
        let schema = e.req_string(r, "schema", RELOCK);
        let table = e.req_string(r, "table", RELOCK);
        let fingerprint = e.req_string(r, "fingerprint", RELOCK);
        let mut columns = BTreeMap::new();
        let mut columns_ok = false;
        if !e.has("columns") {
            e.missing(r, "columns", RELOCK);
        } else if let Some(cols) = e.object(r, "columns") {
            columns_ok = true;
            if cols.is_empty() {
                r.error(
                    e.at("columns"),
                    "a schema lock records at least one column",
                    RELOCK,
                );
                columns_ok = false;
            }
            for (col, ty) in cols {
                match ty.as_str() {
                    Some(t) => {
                        columns.insert(col.clone(), t.to_owned());
                    }
                    None => {
                        r.error(
                            join_key(&e.at("columns"), col),
                            format!(
                                "expected the column's type as a string, found {}",
                                type_name(ty)
                            ),
                            RELOCK,
                        );
                        columns_ok = false;
                    }
                }
            }
        }
        let (Some(schema), Some(table), Some(fingerprint), true) =
            (schema, table, fingerprint, columns_ok)
        else {
            continue;
        };
        let expected = crate::drift::fingerprint(&schema, &table, &columns);
        if fingerprint != expected {
            r.error(
                e.at("fingerprint"),
                "the fingerprint does not match the recorded columns (was the lock edited by hand?)",
                RELOCK,
            );
            continue;
        }
        out.insert(
            name.clone(),
            SchemaLockEntry {
                schema,
                table,
                columns,
                fingerprint,
            },
        );
    }
    out
}

/// Every lock entry names a capability of this config and that
/// capability's target table.
fn check_schema_lock_targets(r: &mut Report, config: &Config) {
    for (name, lock) in &config.airlock.schema_lock {
        let p = join_key("$.airlock.schema_lock", name);
        match config.capability(name) {
            None => r.error(
                &p,
                format!("the schema lock names capability `{name}`, which this config does not define"),
                "remove the entry, or run `airlock config lock --config <file>` to record the current capabilities",
            ),
            Some(cap) if cap.target.schema != lock.schema || cap.target.table != lock.table => r
                .error(
                    &p,
                    format!(
                        "the schema lock records {}.{}, but capability `{name}` targets {}.{}",
                        lock.schema, lock.table, cap.target.schema, cap.target.table
                    ),
                    RELOCK,
                ),
            Some(_) => {}
        }
    }
}

/// A principal row scope narrows a tenant scope with a trusted principal:
/// the capability needs a tenant key, its context must name where the
/// principal comes from (else every caller would be the same default
/// principal), and a schema lock, if any, must record the column.
fn check_principal_scopes(r: &mut Report, value: &Value, config: &Config) {
    let items = value.get("capabilities").and_then(Value::as_array);
    for cap in &config.capabilities {
        let Some(key) = &cap.target.principal_scope_key else {
            continue;
        };
        let index = items.and_then(|items| {
            items
                .iter()
                .position(|i| i.get("name").and_then(Value::as_str) == Some(cap.name.as_str()))
        });
        let path = match index {
            Some(i) => format!("$.capabilities[{i}].target.principal_scope_key"),
            None => "$.capabilities[].target.principal_scope_key".to_owned(),
        };
        if cap.target.tenant_key.is_none() {
            r.error(
                &path,
                "a principal scope narrows the tenant scope and cannot replace it; this target has no tenant key",
                "add \"tenant_key\": the column holding the tenant id, e.g. \"tenant_id\" (and drop `single_tenant_dev`)",
            );
        }
        if config.context_for(cap).principal == ValueSource::Unset {
            let which = cap
                .context
                .as_ref()
                .map_or("`trusted_context`".to_owned(), |n| format!("context `{n}`"));
            r.error(
                &path,
                format!("the principal scope needs a trusted principal, but {which} names no principal source"),
                "add \"principal_env\": \"APP_PRINCIPAL\" (environment provider) or \"principal\" (static_dev) to that context's `values`",
            );
        }
        if let Some(lock) = config.airlock.schema_lock.get(&cap.name)
            && !lock.columns.contains_key(key)
        {
            r.error(
                &path,
                format!(
                    "`{key}` is not a column of {}.{} as the schema lock records it",
                    lock.schema, lock.table
                ),
                format!(
                    "name an existing column of that table, or add the column and then {RELOCK}"
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Capabilities.

const CAPABILITY_KEYS: &[&str] = &[
    "name",
    "kind",
    "description",
    "returns_hint",
    "source",
    "context",
    "executor",
    "target",
    "args",
    "lookup",
    "visible_columns",
    "evidence",
    "max_rows",
    "patch",
    "allowed_columns",
    "numeric_bounds",
    "transition_guards",
    "conflict_guard",
    "approval",
    "operation",
    "reversibility",
    "single_tenant_dev_ack",
    "list",
    // Kind `aggregate_read` only (`load/aggregate_read.rs`).
    "aggregate",
];

const PROPOSAL_ONLY_KEYS: &[&str] = &[
    "executor",
    "patch",
    "allowed_columns",
    "numeric_bounds",
    "transition_guards",
    "conflict_guard",
    "approval",
    "operation",
    "reversibility",
];

fn parse_capabilities(
    r: &mut Report,
    o: &Obj,
    mode: Option<Mode>,
    sources: &BTreeMap<String, Source>,
    contexts: &BTreeMap<String, ContextSpec>,
    executors: &BTreeMap<String, ExecutorSpec>,
) -> Vec<Capability> {
    let mut out = Vec::new();
    if !o.has("capabilities") {
        o.missing(
            r,
            "capabilities",
            "add \"capabilities\": [ … ] with at least one reviewed capability",
        );
        return out;
    }
    let Some(items) = o.array(r, "capabilities") else {
        return out;
    };
    if items.is_empty() {
        r.error(
            o.at("capabilities"),
            "at least one capability is required",
            "add a read capability such as `billing.inspect_invoice`",
        );
    }
    if items.len() > MAX_CAPABILITIES {
        r.error(
            o.at("capabilities"),
            format!(
                "{} capabilities; the limit is {MAX_CAPABILITIES}",
                items.len()
            ),
            "split the config",
        );
        return out;
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut aliases: BTreeSet<String> = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = join_index(&o.at("capabilities"), i);
        let written = |key: &str| -> BTreeSet<&str> {
            o.get(key)
                .and_then(Value::as_object)
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default()
        };
        let env = CapEnv {
            mode,
            written_sources: written("sources"),
            written_contexts: written("contexts"),
            sources,
            contexts,
            executors,
        };
        if let Some(cap) = parse_capability(r, &path, item, &env) {
            let alias = crate::catalog::openai_alias(&cap.name);
            if !names.insert(cap.name.clone()) {
                r.error(
                    join_key(&path, "name"),
                    format!("capability `{}` is defined twice", cap.name),
                    "give each capability a unique name",
                );
            } else if !aliases.insert(alias.clone()) {
                r.error(
                    join_key(&path, "name"),
                    format!("capability `{}` has the same OpenAI-safe alias `{alias}` as another capability", cap.name),
                    "rename one of them so their names differ in more than `.` versus `__`",
                );
            } else {
                out.push(cap);
            }
        }
    }
    out
}

struct CapEnv<'a> {
    mode: Option<Mode>,
    /// Every name written under `sources` / `contexts`, valid or not: a
    /// reference to an entry that failed validation is not reported again.
    written_sources: BTreeSet<&'a str>,
    written_contexts: BTreeSet<&'a str>,
    sources: &'a BTreeMap<String, Source>,
    contexts: &'a BTreeMap<String, ContextSpec>,
    executors: &'a BTreeMap<String, ExecutorSpec>,
}

fn parse_capability(r: &mut Report, path: &str, v: &Value, env: &CapEnv) -> Option<Capability> {
    let c = Obj::open(r, path, v, CAPABILITY_KEYS)?;
    let name = c.req_string(
        r,
        "name",
        "add \"name\": \"domain.action\", e.g. \"billing.inspect_invoice\"",
    );
    if let Some(n) = &name {
        check_capability_name(r, &c.at("name"), n);
    }
    let kind = match c
        .req_string(
            r,
            "kind",
            "add \"kind\": \"read\", \"aggregate_read\" or \"proposal\"",
        )
        .as_deref()
    {
        Some("read") => Some(Kind::Read),
        Some("proposal") => Some(Kind::Proposal),
        Some("aggregate_read") => Some(Kind::AggregateRead),
        Some(other) => {
            r.error(
                c.at("kind"),
                format!("unknown capability kind `{other}`"),
                "use \"read\", \"aggregate_read\" or \"proposal\"",
            );
            None
        }
        None => None,
    };
    let description = c.string(r, "description");
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        r.error(
            c.at("description"),
            format!("longer than {MAX_DESCRIPTION_CHARS} characters"),
            "shorten the description",
        );
    }
    let returns_hint = c.string(r, "returns_hint");

    let source_name = c.req_string(
        r,
        "source",
        "add \"source\": the name of an entry in `sources`",
    );
    let source = source_name.as_ref().and_then(|s| {
        let found = env.sources.get(s);
        if found.is_none() && !env.written_sources.contains(s.as_str()) {
            let known: Vec<&str> = env.sources.keys().map(String::as_str).collect();
            r.error(
                c.at("source"),
                format!("unknown source `{s}`"),
                format!(
                    "use one of the sources defined in `sources`: {}",
                    known.join(", ")
                ),
            );
        }
        found
    });
    let context = c.string(r, "context");
    if let Some(ctx) = &context
        && !env.contexts.contains_key(ctx)
        && !env.written_contexts.contains(ctx.as_str())
    {
        r.error(
            c.at("context"),
            format!("unknown context `{ctx}`"),
            "define it under `contexts`, or remove `context` to use `trusted_context`",
        );
    }

    let target = parse_target(r, &c);
    // An aggregate read takes no args, looks up no row and shows no
    // column: `load/aggregate_read.rs` checks its shape.
    let aggregate = aggregate_read::parse(r, &c, kind, target.as_ref().map(|(t, _)| t));
    let is_aggregate = kind == Some(Kind::AggregateRead);
    let args = if is_aggregate {
        Some(Vec::new())
    } else {
        parse_args(r, &c)
    };
    // An INSERT has no existing row to look up; a bounded set's rows are
    // chosen by its reviewed selection.
    let lookup_arg = if is_aggregate {
        Some(String::new())
    } else if c.has("list") && kind != Some(Kind::Proposal) {
        // A list read finds its rows by its reviewed filters.
        if c.has("lookup") {
            r.error(
                c.at("lookup"),
                "a list read finds its rows by `list.filters`, not by one key",
                "remove `lookup`, or remove `list` to look one row up by key",
            );
            None
        } else {
            Some(String::new())
        }
    } else if declares_set(&c) {
        if c.has("lookup") {
            r.error(
                c.at("lookup"),
                "a bounded set's rows are chosen by its reviewed `operation.selection`, not looked up by an argument",
                "remove `lookup`",
            );
            None
        } else {
            Some(String::new())
        }
    } else if declared_kind(&c) == Some(OperationKind::Insert) && !c.has("lookup") {
        Some(String::new())
    } else {
        parse_lookup(r, &c, args.as_deref())
    };
    let visible_columns = if is_aggregate {
        Some(Vec::new())
    } else if c.has("visible_columns") {
        c.identifier_list(r, "visible_columns")
    } else {
        c.missing(
            r,
            "visible_columns",
            "add \"visible_columns\": the columns the model may see, e.g. [\"id\", \"status\"]",
        );
        None
    };
    let evidence = match c.string(r, "evidence").as_deref() {
        None | Some("required") => EvidenceMode::Required,
        Some("optional") => EvidenceMode::Optional,
        Some(other) => {
            r.error(
                c.at("evidence"),
                format!("unknown evidence mode `{other}`"),
                "use \"required\" or \"optional\"",
            );
            EvidenceMode::Required
        }
    };
    let max_rows = if is_aggregate {
        1
    } else {
        c.integer(r, "max_rows", 1, u64::from(MAX_ROWS_LIMIT))
            .map_or(1, |n| n as u32)
    };
    let single_tenant_ack = c.boolean(r, "single_tenant_dev_ack").unwrap_or(false);

    // Tenant scoping (invariant 3).
    let target = target.and_then(|(t, single_tenant_dev)| {
        if t.tenant_key.is_some() {
            return Some(t);
        }
        if single_tenant_dev && single_tenant_ack {
            r.warning(
                join_key(&c.at("target"), "single_tenant_dev"),
                "this capability has no tenant key: every row of the table is in scope",
                "add `target.tenant_key` before using it with more than one tenant",
            );
            return Some(t);
        }
        if single_tenant_dev {
            r.error(
                c.at("single_tenant_dev_ack"),
                "`single_tenant_dev` without a tenant key must be acknowledged",
                "add \"single_tenant_dev_ack\": true at the capability level, or better, set `target.tenant_key`",
            );
        } else {
            r.error(
                join_key(&c.at("target"), "tenant_key"),
                "missing `tenant_key`: every read and proposal must be scoped by the trusted tenant",
                "add \"tenant_key\": the column holding the tenant id, e.g. \"tenant_id\"",
            );
        }
        None
    });

    let proposal = match kind {
        Some(Kind::Proposal) => {
            if env.mode == Some(Mode::ReadOnly) {
                r.error(
                    c.at("kind"),
                    "mode `read_only` serves no proposal capabilities",
                    "set \"mode\": \"review\" or remove this capability",
                );
            }
            parse_proposal(r, &c, args.as_deref(), target.as_ref(), source, env)
        }
        Some(Kind::Read) => {
            for k in PROPOSAL_ONLY_KEYS {
                if c.has(k) {
                    r.error(
                        c.at(k),
                        format!("`{k}` applies only to proposal capabilities"),
                        "remove it, or set \"kind\": \"proposal\"",
                    );
                }
            }
            None
        }
        Some(Kind::AggregateRead) | None => None,
    };

    let list = list_read_hook(
        r,
        &c,
        kind,
        args.as_deref(),
        target.as_ref(),
        visible_columns.as_deref(),
    );
    let kind = kind?;
    if kind == Kind::Proposal && proposal.is_none() {
        return None;
    }
    if kind == Kind::AggregateRead && aggregate.is_none() {
        return None;
    }
    if let (Some(set), Some(visible), Some(p)) = (
        proposal.as_ref().and_then(|p| p.set()),
        &visible_columns,
        &proposal,
    ) {
        check_set_columns_visible(r, &c, set, visible, p.version_column())?;
    }
    Some(Capability {
        name: name?,
        kind,
        description,
        returns_hint,
        source: source_name?,
        context,
        target: target?,
        args: args?,
        lookup_arg: lookup_arg?,
        visible_columns: visible_columns?,
        evidence,
        max_rows,
        proposal,
        list: list?,
        aggregate,
    })
}

/// `list` on a read capability (and array arguments, which only a list
/// read's `in` filter uses): `Some(None)` for a capability without `list`,
/// `None` when something is wrong (reported).
fn list_read_hook(
    r: &mut Report,
    c: &Obj,
    kind: Option<Kind>,
    args: Option<&[ArgSpec]>,
    target: Option<&Target>,
    visible: Option<&[String]>,
) -> Option<Option<crate::list_read::ListSpec>> {
    if !c.has("list") {
        let arrays: Vec<&ArgSpec> = args
            .unwrap_or_default()
            .iter()
            .filter(|a| a.ty == ArgType::Array)
            .collect();
        for a in &arrays {
            r.error(
                join_key(&join_key(&c.at("args"), &a.name), "type"),
                "array arguments are only for a list read's `in` filters",
                "use a scalar type, or add `list` to make this a list read",
            );
        }
        return arrays.is_empty().then_some(None);
    }
    if kind != Some(Kind::Read) {
        if kind.is_some() {
            r.error(
                c.at("list"),
                "`list` applies only to read capabilities",
                "remove it, or set \"kind\": \"read\"",
            );
        }
        return None;
    }
    if c.has("max_rows") {
        r.error(
            c.at("max_rows"),
            "a list read's page size is `list.max_limit`, not `max_rows`",
            "remove `max_rows`",
        );
        return None;
    }
    list_read::parse_list(r, c, args, target, visible).map(Some)
}

fn check_capability_name(r: &mut Report, path: &str, name: &str) {
    let qualified =
        name.len() <= 64 && name.contains('.') && name.split('.').all(is_safe_identifier);
    if !qualified {
        r.error(
            path,
            format!("`{}` is not a qualified capability name", name.escape_debug()),
            "write `domain.action` with letters, digits and underscores, e.g. \"billing.inspect_invoice\" (at most 64 characters)",
        );
        return;
    }
    // Clients that accept only `^[a-zA-Z0-9_-]{1,64}$` see the alias, where
    // each `.` is `__`: it must fit too.
    let alias = crate::catalog::openai_alias(name);
    if alias.len() > 64 {
        r.error(
            path,
            format!(
                "`{name}` becomes the {}-character tool name `{alias}` for clients that allow no dots; MCP clients accept at most 64",
                alias.len()
            ),
            "shorten the name: in the client-safe name each `.` counts as two characters (`__`)",
        );
        return;
    }
    if let Some(word) = words(name)
        .into_iter()
        .find(|w| FORBIDDEN_NAME_WORDS.contains(&w.as_str()))
    {
        r.error(
            path,
            format!("capability names may not contain `{word}`: the model must never be offered SQL, approval or commit tools"),
            "name what the model can actually do, e.g. `billing.propose_refund`; approval happens outside the model's reach",
        );
    }
}

fn parse_target(r: &mut Report, c: &Obj) -> Option<(Target, bool)> {
    if !c.has("target") {
        c.missing(r, "target", "add \"target\": {\"schema\": \"public\", \"table\": \"invoices\", \"primary_key\": \"id\", \"tenant_key\": \"tenant_id\"}");
        return None;
    }
    let t = Obj::open(
        r,
        &c.at("target"),
        c.get("target")?,
        &[
            "schema",
            "table",
            "primary_key",
            "tenant_key",
            "single_tenant_dev",
            "principal_scope_key",
        ],
    )?;
    let schema = t.req_identifier(r, "schema", "add \"schema\": e.g. \"public\" (Postgres), the database name (MySQL) or \"main\" (SQLite)");
    let table = t.req_identifier(r, "table", "add \"table\": the table name");
    let pk = t.req_identifier(
        r,
        "primary_key",
        "add \"primary_key\": the primary-key column",
    );
    let tenant_key = if t.has("tenant_key") {
        Some(t.identifier(r, "tenant_key")?)
    } else {
        None
    };
    let single = t.boolean(r, "single_tenant_dev").unwrap_or(false);
    if let (Some(pk), Some(tk)) = (&pk, &tenant_key)
        && pk == tk
    {
        r.error(
            t.at("tenant_key"),
            "the tenant key cannot be the primary key",
            "name the column that holds the tenant id",
        );
    }
    let principal_scope_key =
        parse_principal_scope_key(r, &t, pk.as_deref(), tenant_key.as_deref());
    Some((
        Target {
            schema: schema?,
            table: table?,
            primary_key: pk?,
            tenant_key,
            principal_scope_key,
        },
        single,
    ))
}

/// `target.principal_scope_key`: a safe column name, neither the primary
/// key nor the tenant key. (That it narrows a tenant scope, and that the
/// context names a principal, is checked with the capability.)
fn parse_principal_scope_key(
    r: &mut Report,
    t: &Obj,
    pk: Option<&str>,
    tenant_key: Option<&str>,
) -> Option<String> {
    if !t.has("principal_scope_key") {
        return None;
    }
    let key = t.identifier(r, "principal_scope_key")?;
    let clash = if pk == Some(key.as_str()) {
        Some("the primary key")
    } else if tenant_key == Some(key.as_str()) {
        Some("the tenant key")
    } else {
        None
    };
    if let Some(what) = clash {
        r.error(
            t.at("principal_scope_key"),
            format!("the principal scope key cannot be {what}"),
            "name the column that holds the principal a row is assigned to, e.g. \"assigned_to\"",
        );
        return None;
    }
    Some(key)
}

fn parse_args(r: &mut Report, c: &Obj) -> Option<Vec<ArgSpec>> {
    if !c.has("args") {
        c.missing(r, "args", "add \"args\": {\"invoice_id\": {\"type\": \"string\", \"required\": true, \"max_length\": 128}}");
        return None;
    }
    let map = c.object(r, "args")?;
    let path = c.at("args");
    // A list read may list every row of the tenant, with no filter.
    if map.is_empty() && !c.has("list") {
        r.error(
            &path,
            "at least one argument is required (the lookup id)",
            "add the id argument named by `lookup.id_from_arg`",
        );
        return None;
    }
    if map.len() > MAX_ARGS {
        r.error(
            &path,
            format!("{} arguments; the limit is {MAX_ARGS}", map.len()),
            "split the capability",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (name, v) in map {
        let p = join_key(&path, name);
        match parse_arg(r, &p, name, v) {
            Some(a) => out.push(a),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn parse_arg(r: &mut Report, path: &str, name: &str, v: &Value) -> Option<ArgSpec> {
    let mut ok = true;
    if is_authority_name(&words(name).join("_")) {
        r.error(
            path,
            format!("argument `{name}` is named like authority or query shape; the model must never choose tenant, identity, role, table, column or SQL"),
            "remove it: tenant and principal come from the trusted context, and tables and columns from `target`; name business arguments for what they are, e.g. `invoice_id`",
        );
        ok = false;
    } else if !is_safe_identifier(name) {
        r.error(
            path,
            format!("`{}` is not a valid argument name", name.escape_debug()),
            "use letters, digits and underscores, starting with a letter",
        );
        ok = false;
    }
    let a = Obj::open(
        r,
        path,
        v,
        &[
            "type",
            "description",
            "required",
            "max_length",
            "minimum",
            "maximum",
            "enum",
            "format",
            "items",
            "max_items",
        ],
    )?;
    let ty = match a
        .req_string(
            r,
            "type",
            "add \"type\": \"string\", \"number\", \"integer\" or \"boolean\"",
        )
        .as_deref()
    {
        Some("string") => Some(ArgType::String),
        Some("number") => Some(ArgType::Number),
        Some("integer") => Some(ArgType::Integer),
        Some("boolean") => Some(ArgType::Boolean),
        Some("array") => Some(ArgType::Array),
        Some(other) => {
            r.error(
                a.at("type"),
                format!("unknown argument type `{other}`"),
                "use \"string\", \"number\", \"integer\" or \"boolean\"",
            );
            None
        }
        None => None,
    };
    let description = a.string(r, "description");
    let required = a.boolean(r, "required").unwrap_or(false);
    let max_length = a.integer(r, "max_length", 1, MAX_ARG_LENGTH);
    let minimum = a.number(r, "minimum");
    let maximum = a.number(r, "maximum");
    let ty = ty?;
    // `max_items` belongs to array arguments (a list read's `in` filter);
    // elsewhere it is Synapsor Runner's object-array key, refused by name.
    if ty != ArgType::Array && a.has("max_items") {
        unknown_key(r, path, "max_items", &[]);
        ok = false;
    }
    let format = list_read::parse_format(r, &a, ty);
    let items = list_read::parse_items(r, &a, ty);
    ok &= format.is_ok() && items.is_ok();
    if max_length.is_some() && ty != ArgType::String {
        r.error(
            a.at("max_length"),
            "`max_length` applies only to string arguments",
            "remove it, or use `minimum`/`maximum` for numbers",
        );
        ok = false;
    }
    for k in ["minimum", "maximum"] {
        if a.has(k) && !matches!(ty, ArgType::Number | ArgType::Integer) {
            r.error(
                a.at(k),
                format!("`{k}` applies only to number and integer arguments"),
                format!("remove `{k}`"),
            );
            ok = false;
        }
    }
    if let (Some(lo), Some(hi)) = (minimum, maximum)
        && lo > hi
    {
        r.error(
            a.at("minimum"),
            format!("minimum {lo} is greater than maximum {hi}"),
            "swap them or fix one",
        );
        ok = false;
    }
    let enum_values = match a.array(r, "enum") {
        None => None,
        Some(items) if items.is_empty() || items.len() > 256 => {
            r.error(
                a.at("enum"),
                "an enum must list 1 to 256 values",
                "list the allowed values",
            );
            ok = false;
            None
        }
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                let fits = match ty {
                    ArgType::String => item
                        .as_str()
                        .is_some_and(|s| max_length.is_none_or(|m| s.chars().count() as u64 <= m)),
                    ArgType::Number => item.is_number(),
                    ArgType::Integer => item.is_i64() || item.is_u64(),
                    ArgType::Boolean => item.is_boolean(),
                    // Reported by `parse_items` (an array's values go under `items`).
                    ArgType::Array => true,
                };
                if !fits {
                    r.error(
                        join_index(&a.at("enum"), i),
                        format!(
                            "enum value {} does not fit the argument's type {}",
                            short(item),
                            ty.as_str()
                        ),
                        format!(
                            "write a {} value{}",
                            ty.as_str(),
                            if ty == ArgType::String {
                                " within max_length"
                            } else {
                                ""
                            }
                        ),
                    );
                    ok = false;
                }
            }
            Some(items.clone())
        }
    };
    ok.then(|| ArgSpec {
        name: name.to_owned(),
        ty,
        required,
        max_length,
        minimum,
        maximum,
        enum_values,
        description,
        format: format.ok().flatten(),
        items: items.ok().flatten(),
    })
}

fn parse_lookup(r: &mut Report, c: &Obj, args: Option<&[ArgSpec]>) -> Option<String> {
    if !c.has("lookup") {
        c.missing(
            r,
            "lookup",
            "add \"lookup\": {\"id_from_arg\": \"invoice_id\"}",
        );
        return None;
    }
    let l = Obj::open(r, &c.at("lookup"), c.get("lookup")?, &["id_from_arg"])?;
    let arg = l.req_string(
        r,
        "id_from_arg",
        "add \"id_from_arg\": the argument that carries the primary-key value",
    )?;
    let args = args?;
    match args.iter().find(|a| a.name == arg) {
        None => {
            r.error(
                l.at("id_from_arg"),
                format!("`{arg}` is not one of this capability's args"),
                "name an argument defined under `args`",
            );
            None
        }
        Some(a) if !a.required => {
            r.error(
                l.at("id_from_arg"),
                format!("the lookup argument `{arg}` must be required"),
                format!("set \"required\": true on args.{arg}"),
            );
            None
        }
        Some(a) if a.ty == ArgType::Boolean => {
            r.error(
                l.at("id_from_arg"),
                "a boolean cannot identify a row",
                "use a string or integer id argument",
            );
            None
        }
        Some(_) => Some(arg),
    }
}

/// The operation kind a capability declares, read ahead of `operation`'s
/// full validation (which other sections depend on): `None` when absent
/// or unreadable.
/// Whether a capability declares `operation.cardinality: "set"`.
fn declares_set(c: &Obj) -> bool {
    c.get("operation")
        .and_then(|o| o.get("cardinality"))
        .is_some_and(|v| v == "set")
}

/// A reviewer approves a set by what its members hold: every selection
/// column, aggregate column and the version column must be visible.
fn check_set_columns_visible(
    r: &mut Report,
    c: &Obj,
    set: &SetSpec,
    visible: &[String],
    version_column: Option<&str>,
) -> Option<()> {
    let needed = set
        .selection
        .iter()
        .map(|t| (t.column.as_str(), "selection"))
        .chain(
            set.aggregate_bounds
                .iter()
                .map(|b| (b.column.as_str(), "aggregate bound")),
        )
        .chain(version_column.map(|v| (v, "conflict guard")));
    let mut hidden: Vec<(&str, &str)> = Vec::new();
    for (col, what) in needed {
        if !visible.iter().any(|v| v == col) && !hidden.iter().any(|(c, _)| *c == col) {
            hidden.push((col, what));
        }
    }
    if hidden.is_empty() {
        return Some(());
    }
    let named: Vec<String> = hidden.iter().map(|(c, w)| format!("`{c}` ({w})")).collect();
    let quoted: Vec<String> = hidden.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    r.error(
        c.at("visible_columns"),
        format!(
            "{} not visible, so a reviewer could not see what the set's members hold",
            named.join(", ") + if hidden.len() == 1 { " is" } else { " are" }
        ),
        format!("add {} to `visible_columns`", quoted.join(", ")),
    );
    None
}

fn declared_kind(c: &Obj) -> Option<OperationKind> {
    match c.get("operation")?.get("kind")?.as_str()? {
        "update" => Some(OperationKind::Update),
        "insert" => Some(OperationKind::Insert),
        "delete" => Some(OperationKind::Delete),
        _ => None,
    }
}

fn parse_proposal(
    r: &mut Report,
    c: &Obj,
    args: Option<&[ArgSpec]>,
    target: Option<&Target>,
    source: Option<&Source>,
    env: &CapEnv,
) -> Option<ProposalSpec> {
    let kind = declared_kind(c).unwrap_or_default();
    let allowed = if c.has("allowed_columns") {
        c.identifier_list(r, "allowed_columns")
    } else if kind == OperationKind::Delete {
        Some(Vec::new())
    } else {
        c.missing(r, "allowed_columns", "add \"allowed_columns\": the only columns a proposal may change, e.g. [\"late_fee_cents\"]");
        None
    };
    let conflict_guard = match kind {
        OperationKind::Insert => {
            if c.has("conflict_guard") {
                r.warning(
                    c.at("conflict_guard"),
                    "an insert has no existing row, so `conflict_guard` is not used",
                    "remove `conflict_guard`; `operation.deduplication` guards an insert",
                );
            }
            Some(ConflictGuard::None)
        }
        OperationKind::Delete => match parse_conflict_guard(r, c) {
            Some(ConflictGuard::Column { column }) => Some(ConflictGuard::Column { column }),
            Some(_) => {
                r.error(
                    c.at("conflict_guard"),
                    "a delete needs an exact version column; a row-hash guard could remove a row changed since the proposal",
                    "write \"conflict_guard\": {\"column\": \"updated_at\"}",
                );
                None
            }
            None => None,
        },
        OperationKind::Update => parse_conflict_guard(r, c),
    };
    let version_col = match &conflict_guard {
        Some(ConflictGuard::Column { column }) => Some(column.as_str()),
        _ => None,
    };

    // The primary key, tenant key and version column are never patchable.
    if let (Some(allowed), Some(t)) = (&allowed, target) {
        for (i, col) in allowed.iter().enumerate() {
            let reserved = if *col == t.primary_key && kind != OperationKind::Insert {
                Some("the primary key")
            } else if t.tenant_key.as_deref() == Some(col) {
                Some("the tenant key")
            } else if t.principal_scope_key.as_deref() == Some(col) {
                Some("the principal scope key")
            } else if version_col == Some(col.as_str()) {
                Some("the conflict-guard column (the executor advances it)")
            } else {
                None
            };
            if let Some(what) = reserved {
                r.error(
                    join_index(&c.at("allowed_columns"), i),
                    format!("`{col}` is {what} and can never be changed by a proposal"),
                    "remove it from `allowed_columns`",
                );
            }
        }
    }
    if kind == OperationKind::Delete {
        if allowed.as_ref().is_some_and(|a| !a.is_empty()) {
            r.error(
                c.at("allowed_columns"),
                "a delete changes no column",
                "remove `allowed_columns`",
            );
        }
        c.refuse_keys(r, &["numeric_bounds", "transition_guards"], "a delete");
    }
    if kind == OperationKind::Insert {
        c.refuse_keys(
            r,
            &["transition_guards"],
            "an insert, which has no current state",
        );
    }

    let patch = if kind == OperationKind::Delete {
        match c.object(r, "patch") {
            Some(m) if !m.is_empty() => {
                r.error(
                    c.at("patch"),
                    "a delete sets no column",
                    "remove `patch` (or write {})",
                );
                None
            }
            _ => Some(Vec::new()),
        }
    } else {
        parse_patch(r, c, args, allowed.as_deref(), kind)
    };
    let patch_columns: Vec<String> = patch.iter().flatten().map(|(col, _)| col.clone()).collect();
    let operation =
        operation::parse_operation(r, c, target, &patch_columns, conflict_guard.as_ref());
    let numeric_bounds = parse_numeric_bounds(r, c, allowed.as_deref(), patch.as_deref(), args);
    let transition_guards = parse_transition_guards(r, c, patch.as_deref(), version_col);
    let approval = parse_approval(r, c);
    let reversibility = parse_reversibility(r, c);

    let executor = c.string(r, "executor");
    let uses_sql_update = match executor.as_deref() {
        None => true,
        Some(name) => match env.executors.get(name) {
            Some(spec) => matches!(spec, ExecutorSpec::SqlUpdate),
            None if name == SQL_UPDATE => true,
            None => {
                let known: Vec<&str> = env.executors.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                };
                r.error(
                    c.at("executor"),
                    format!("unknown executor `{name}`"),
                    format!("define it under `executors` (defined: {known}), or omit `executor` for the built-in sql_update"),
                );
                false
            }
        },
    };
    if uses_sql_update && let Some(s) = source {
        if s.write_url_env.is_none() {
            r.error(
                c.at("source"),
                format!("this proposal is applied by sql_update, but source `{}` has no `write_url_env`", c.get("source").and_then(Value::as_str).unwrap_or("?")),
                "add `write_url_env` to the source (a variable only the executor sees), or use an http_handler/command_handler executor",
            );
        } else if s.read_only {
            r.error(
                c.at("source"),
                "this proposal is applied by sql_update, but its source is `read_only`",
                "remove `read_only` from the source, or apply through a handler executor",
            );
        }
    }

    let (allowed_columns, patch, conflict_guard) = (allowed?, patch?, conflict_guard?);
    let operation = operation?;
    let numeric_bounds = numeric_bounds?;
    if !check_step_results(r, c, &patch, &numeric_bounds) {
        return None;
    }
    if operation.set.is_some()
        && !uses_sql_update
        && source.is_some_and(|s| s.write_url_env.is_none())
    {
        // The executor freezes a set's members by running its selection
        // itself; a handler source must give it a connection to do so.
        r.error(
            c.at("source"),
            format!(
                "a bounded set is checked by the executor against the source, but source `{}` has no `write_url_env`",
                c.get("source").and_then(Value::as_str).unwrap_or("?")
            ),
            "add `write_url_env` to the source (a credential only the executor sees; SELECT is enough when a handler applies the change)",
        );
        return None;
    }
    let reversibility = reversibility?;
    if reversibility.is_some()
        && !reversible_shape(r, c, uses_sql_update, &operation, &conflict_guard)
    {
        return None;
    }
    Some(ProposalSpec {
        executor,
        patch,
        allowed_columns,
        numeric_bounds,
        transition_guards: transition_guards?,
        conflict_guard,
        approval: approval?,
        operation,
        reversibility,
    })
}

/// `reversibility`: absent → `Some(None)`; `{"mode": "reviewed_inverse"}`
/// → `Some(Some(..))`; anything else is an error (`None`).
fn parse_reversibility(r: &mut Report, c: &Obj) -> Option<Option<Reversibility>> {
    let Some(v) = c.get("reversibility") else {
        return Some(None);
    };
    let o = Obj::open(r, &c.at("reversibility"), v, &["mode"])?;
    let mode = o.req_string(
        r,
        "mode",
        "add \"mode\": \"reviewed_inverse\", or remove `reversibility`",
    )?;
    if mode != "reviewed_inverse" {
        r.error(
            o.at("mode"),
            format!("unknown reversibility mode `{}`", mode.escape_debug()),
            "write \"mode\": \"reviewed_inverse\" (the only mode: a revert is a new proposal that needs its own approval)",
        );
        return None;
    }
    Some(Some(Reversibility::ReviewedInverse))
}

/// Whether a capability marked reversible has an inverse Airlock can
/// capture exactly (docs/writeback.md, "Reviewed compensation"): the
/// built-in sql_update executor, and an UPDATE (one row or a bounded set)
/// guarded by an exact version column or an INSERT (whose identity always has a `proposal_id`
/// component, so the created row is found exactly). Reports why not.
fn reversible_shape(
    r: &mut Report,
    c: &Obj,
    uses_sql_update: bool,
    operation: &Operation,
    guard: &ConflictGuard,
) -> bool {
    let at = c.at("reversibility");
    let kind = operation.kind;
    if !uses_sql_update {
        r.error(
            at,
            "unavailable: an app-owned handler's effects cannot be inverted by Airlock",
            "remove `reversibility`; expose a separate reviewed compensation capability that the application applies",
        );
        return false;
    }
    match (kind, guard) {
        (OperationKind::Delete, _) => {
            r.error(
                at,
                "unavailable: a hard DELETE cannot be restored (generated values, unread columns, cascades and trigger effects cannot be rebuilt)",
                "use a soft-delete UPDATE (a reviewed status or deleted_at patch) and make that reversible, or remove `reversibility`",
            );
            false
        }
        (OperationKind::Update, ConflictGuard::Column { .. }) | (OperationKind::Insert, _) => true,
        (OperationKind::Update, _) => {
            r.error(
                at,
                "a reversible update needs an exact version column: its inverse is guarded by the version the forward write left",
                "write \"conflict_guard\": {\"column\": \"version\"} (a version or timestamp column), or remove `reversibility`",
            );
            false
        }
    }
}

fn parse_conflict_guard(r: &mut Report, c: &Obj) -> Option<ConflictGuard> {
    if !c.has("conflict_guard") {
        c.missing(
            r,
            "conflict_guard",
            "add \"conflict_guard\": {\"column\": \"updated_at\"} (a version or timestamp column), so a stale proposal cannot overwrite newer data",
        );
        return None;
    }
    let g = Obj::open(
        r,
        &c.at("conflict_guard"),
        c.get("conflict_guard")?,
        &["column", "weak_guard_ack"],
    )?;
    if g.has("column") {
        return g
            .identifier(r, "column")
            .map(|column| ConflictGuard::Column { column });
    }
    if g.boolean(r, "weak_guard_ack") == Some(true) {
        r.warning(
            g.at("weak_guard_ack"),
            "a row-hash conflict guard only compares the visible columns; concurrent changes to other columns go unnoticed",
            "add a version or updated_at column and use {\"column\": \"updated_at\"}",
        );
        return Some(ConflictGuard::RowHash);
    }
    r.error(
        &g.path,
        "a conflict guard needs a `column`, or an explicit `weak_guard_ack: true` for a row-hash guard",
        "write {\"column\": \"updated_at\"}",
    );
    None
}

const PATCH_BINDINGS: &[&str] = &[
    "fixed",
    "from_arg",
    "increment_from_arg",
    "decrement_from_arg",
    "apply_time",
];

fn parse_patch(
    r: &mut Report,
    c: &Obj,
    args: Option<&[ArgSpec]>,
    allowed: Option<&[String]>,
    kind: OperationKind,
) -> Option<Vec<(String, PatchValue)>> {
    if !c.has("patch") {
        c.missing(r, "patch", "add \"patch\": {\"column\": {\"from_arg\": \"arg\"}} or {\"column\": {\"fixed\": value}}");
        return None;
    }
    let map = c.object(r, "patch")?;
    let path = c.at("patch");
    if map.is_empty() {
        r.error(
            &path,
            "a proposal must patch at least one column",
            "add a column binding",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (col, v) in map {
        let p = join_key(&path, col);
        if !check_identifier(r, &p, col) {
            ok = false;
            continue;
        }
        if let Some(allowed) = allowed
            && !allowed.contains(col)
        {
            r.error(
                &p,
                format!("patch column `{col}` is not in `allowed_columns`"),
                format!("add `{col}` to `allowed_columns` or remove it from `patch`"),
            );
            ok = false;
        }
        let Some(b) = Obj::open(r, &p, v, PATCH_BINDINGS) else {
            ok = false;
            continue;
        };
        let given: Vec<&str> = PATCH_BINDINGS
            .iter()
            .copied()
            .filter(|k| b.has(k))
            .collect();
        let binding = match given.as_slice() {
            ["fixed"] => match b.get("fixed") {
                Some(fixed) if fixed.is_array() || fixed.is_object() => {
                    r.error(
                        b.at("fixed"),
                        "a fixed value must be a string, number, boolean or null",
                        "write a scalar value",
                    );
                    None
                }
                Some(fixed) => Some(PatchValue::Fixed(fixed.clone())),
                None => None,
            },
            ["apply_time"] => match b.get("apply_time") {
                Some(Value::Bool(true)) => Some(PatchValue::ApplyTime),
                _ => {
                    r.error(
                        b.at("apply_time"),
                        "`apply_time` takes the value true",
                        "write {\"apply_time\": true}",
                    );
                    None
                }
            },
            [key @ ("from_arg" | "increment_from_arg" | "decrement_from_arg")] => {
                match (b.string(r, key), args) {
                    (Some(arg), Some(args)) => match args.iter().find(|a| a.name == arg) {
                        None => {
                            r.error(
                                b.at(key),
                                format!("`{arg}` is not one of this capability's args"),
                                "name an argument defined under `args`",
                            );
                            None
                        }
                        Some(_) if *key == "from_arg" => Some(PatchValue::FromArg(arg)),
                        Some(_) if kind == OperationKind::Insert => {
                            r.error(
                                b.at(key),
                                "an insert has no current value to add to",
                                format!("write {{\"from_arg\": \"{arg}\"}}"),
                            );
                            None
                        }
                        Some(a) => check_step_arg(r, &b.at(key), a).then(|| {
                            if *key == "increment_from_arg" {
                                PatchValue::IncrementFromArg(arg)
                            } else {
                                PatchValue::DecrementFromArg(arg)
                            }
                        }),
                    },
                    _ => None,
                }
            }
            _ => {
                r.error(
                    &p,
                    "a patch binding needs exactly one of `fixed`, `from_arg`, `increment_from_arg`, `decrement_from_arg` or `apply_time`",
                    "write {\"fixed\": 0} or {\"from_arg\": \"reason\"}",
                );
                None
            }
        };
        match binding {
            Some(binding) => out.push((col.clone(), binding)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The argument of an increment or decrement must be a bounded number, so
/// the reviewer knows the largest step one proposal can take.
fn check_step_arg(r: &mut Report, path: &str, a: &ArgSpec) -> bool {
    if !matches!(a.ty, ArgType::Number | ArgType::Integer) {
        r.error(
            path,
            format!(
                "`{}` is a {}; a step must be a number",
                a.name,
                a.ty.as_str()
            ),
            format!("make args.{} an integer or number", a.name),
        );
        return false;
    }
    if a.minimum.is_none() || a.maximum.is_none() {
        r.error(
            path,
            format!("the step argument `{}` has no minimum and maximum", a.name),
            format!(
                "add \"minimum\" and \"maximum\" to args.{}, e.g. 1 and 5000",
                a.name
            ),
        );
        return false;
    }
    true
}

/// An increment or decrement must bound its result too (`numeric_bounds`
/// with both ends), so no run of proposals walks a balance past a limit.
fn check_step_results(
    r: &mut Report,
    c: &Obj,
    patch: &[(String, PatchValue)],
    bounds: &BTreeMap<String, Bounds>,
) -> bool {
    let mut ok = true;
    for (col, binding) in patch {
        if !matches!(
            binding,
            PatchValue::IncrementFromArg(_) | PatchValue::DecrementFromArg(_)
        ) {
            continue;
        }
        let bounded = bounds
            .get(col)
            .is_some_and(|b| b.minimum.is_some() && b.maximum.is_some());
        if !bounded {
            r.error(
                join_key(&c.at("patch"), col),
                format!("`{col}` changes by a step but its result is not bounded"),
                format!(
                    "add \"numeric_bounds\": {{\"{col}\": {{\"minimum\": 0, \"maximum\": 100000}}}}"
                ),
            );
            ok = false;
        }
    }
    ok
}

fn parse_numeric_bounds(
    r: &mut Report,
    c: &Obj,
    allowed: Option<&[String]>,
    patch: Option<&[(String, PatchValue)]>,
    args: Option<&[ArgSpec]>,
) -> Option<BTreeMap<String, Bounds>> {
    let mut out = BTreeMap::new();
    let Some(map) = c.object(r, "numeric_bounds") else {
        return if c.has("numeric_bounds") {
            None
        } else {
            Some(out)
        };
    };
    let mut ok = true;
    for (col, v) in map {
        let p = join_key(&c.at("numeric_bounds"), col);
        if !check_identifier(r, &p, col) {
            ok = false;
            continue;
        }
        if allowed.is_some_and(|a| !a.contains(col)) {
            r.error(
                &p,
                format!("bounds on `{col}`, which is not in `allowed_columns`"),
                "bound only columns a proposal may change",
            );
            ok = false;
        }
        let Some(b) = Obj::open(r, &p, v, &["minimum", "maximum"]) else {
            ok = false;
            continue;
        };
        let bounds = Bounds {
            minimum: b.number(r, "minimum"),
            maximum: b.number(r, "maximum"),
        };
        if let (Some(lo), Some(hi)) = (bounds.minimum, bounds.maximum)
            && lo > hi
        {
            r.error(
                b.at("minimum"),
                format!("minimum {lo} is greater than maximum {hi}"),
                "swap them or fix one",
            );
            ok = false;
        }
        match patch
            .and_then(|p| p.iter().find(|(c, _)| c == col))
            .map(|(_, v)| v)
        {
            Some(PatchValue::Fixed(value)) => {
                let within = value.as_f64().is_some_and(|n| {
                    bounds.minimum.is_none_or(|lo| n >= lo)
                        && bounds.maximum.is_none_or(|hi| n <= hi)
                });
                if !within {
                    r.error(
                        &p,
                        format!(
                            "the fixed patch value {} for `{col}` is outside these bounds",
                            short(value)
                        ),
                        "fix the bound or the fixed value",
                    );
                    ok = false;
                }
            }
            Some(PatchValue::FromArg(arg)) => {
                if let Some(a) = args.and_then(|a| a.iter().find(|x| x.name == *arg))
                    && !matches!(a.ty, ArgType::Number | ArgType::Integer)
                {
                    r.error(
                        &p,
                        format!(
                            "`{col}` is bounded but takes argument `{arg}` of type {}",
                            a.ty.as_str()
                        ),
                        format!("make args.{arg} a number or integer"),
                    );
                    ok = false;
                }
            }
            Some(PatchValue::ApplyTime) => {
                r.error(
                    &p,
                    format!("`{col}` is set to the apply time, which is not a number"),
                    format!("remove the bounds on `{col}`"),
                );
                ok = false;
            }
            // The step argument is checked by `check_step_arg`.
            Some(PatchValue::IncrementFromArg(_) | PatchValue::DecrementFromArg(_)) | None => {}
        }
        out.insert(col.clone(), bounds);
    }
    ok.then_some(out)
}

fn parse_transition_guards(
    r: &mut Report,
    c: &Obj,
    patch: Option<&[(String, PatchValue)]>,
    version_col: Option<&str>,
) -> Option<BTreeMap<String, TransitionGuard>> {
    let mut out = BTreeMap::new();
    let Some(map) = c.object(r, "transition_guards") else {
        return if c.has("transition_guards") {
            None
        } else {
            Some(out)
        };
    };
    let mut ok = true;
    for (col, v) in map {
        let p = join_key(&c.at("transition_guards"), col);
        if !check_identifier(r, &p, col) {
            ok = false;
            continue;
        }
        let binding = patch
            .and_then(|p| p.iter().find(|(c, _)| c == col))
            .map(|(_, v)| v);
        if patch.is_some() && binding.is_none() {
            r.error(
                &p,
                format!("a transition guard on `{col}`, which the patch never sets, has no effect"),
                format!("guard a patched column, or add `{col}` to `patch`"),
            );
            ok = false;
        }
        let Some(g) = Obj::open(r, &p, v, &["from_column", "allowed"]) else {
            ok = false;
            continue;
        };
        let from_column = if g.has("from_column") {
            g.identifier(r, "from_column")
        } else {
            None
        };
        // The executor rebuilds the transition from the proposal's
        // before-image, which holds only the patched columns and the version
        // column: a state read from any other column is never there, so every
        // honest proposal would be refused.
        if let (Some(from), Some(patch)) = (from_column.as_deref(), patch)
            && !patch.iter().any(|(c, _)| c == from)
            && version_col != Some(from)
        {
            let fix = match version_col {
                Some(v) => format!(
                    "read the state from a patched column or from the version column `{v}`, or remove `from_column` to read `{col}` itself"
                ),
                None => format!(
                    "read the state from a patched column, or remove `from_column` to read `{col}` itself"
                ),
            };
            r.error(
                g.at("from_column"),
                format!("`from_column` `{from}` is neither patched by this capability nor its version column, so the executor cannot check the transition and would refuse every proposal"),
                fix,
            );
            ok = false;
        }
        let mut allowed = BTreeMap::new();
        match g.object(r, "allowed") {
            None => {
                if !g.has("allowed") {
                    g.missing(
                        r,
                        "allowed",
                        "add \"allowed\": {\"from_state\": [\"to_state\"]}",
                    );
                }
                ok = false;
            }
            Some(m) => {
                for (from, tos) in m {
                    let tp = join_key(&g.at("allowed"), from);
                    match tos.as_array() {
                        Some(list) if list.iter().all(Value::is_string) => {
                            allowed.insert(
                                from.clone(),
                                list.iter()
                                    .filter_map(|t| t.as_str().map(str::to_owned))
                                    .collect(),
                            );
                        }
                        _ => {
                            r.error(
                                tp,
                                "expected a list of target states (strings)",
                                "write e.g. [\"pending_review\"]",
                            );
                            ok = false;
                        }
                    }
                }
            }
        }
        if let Some(PatchValue::Fixed(Value::String(to))) = binding
            && !allowed.is_empty()
            && !allowed.values().any(|tos: &Vec<String>| tos.contains(to))
        {
            r.error(&p, format!("the fixed patch value `{to}` is not a target of any allowed transition, so every proposal would be refused"), "add it as a target state or change the patch");
            ok = false;
        }
        out.insert(
            col.clone(),
            TransitionGuard {
                from_column,
                allowed,
            },
        );
    }
    ok.then_some(out)
}

fn parse_approval(r: &mut Report, c: &Obj) -> Option<Approval> {
    let Some(v) = c.get("approval") else {
        return Some(Approval::default());
    };
    let a = Obj::open(
        r,
        &c.at("approval"),
        v,
        &["mode", "required_role", "required_approvals"],
    )?;
    match a.string(r, "mode").as_deref() {
        None | Some("human") => {}
        Some(other) => {
            r.error(
                a.at("mode"),
                format!("approval mode `{other}` is not supported: every proposal needs a person"),
                "write \"mode\": \"human\"",
            );
            return None;
        }
    }
    let role = a.string(r, "required_role");
    if let Some(role) = &role
        && !(role.len() <= 64
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
    {
        r.error(
            a.at("required_role"),
            format!("`{}` is not a valid role name", role.escape_debug()),
            "use letters, digits, `_`, `-` or `.`",
        );
        return None;
    }
    let required_approvals = match a.get("required_approvals") {
        None => 1,
        Some(_) => a.integer(
            r,
            "required_approvals",
            1,
            u64::from(crate::config::MAX_REQUIRED_APPROVALS),
        )? as u32,
    };
    Some(Approval {
        required_role: role,
        required_approvals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = crate::REFERENCE_CONFIG;

    #[test]
    fn reference_config_loads_unchanged() {
        let loaded = load_config_str(REFERENCE);
        assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
        let cfg = loaded.config.unwrap();
        assert_eq!(cfg.capabilities.len(), 8);
        assert_eq!(
            cfg.capabilities
                .iter()
                .filter(|c| c.kind == Kind::Proposal)
                .count(),
            4
        );
        let waiver = cfg.capability("billing.propose_late_fee_waiver").unwrap();
        let p = waiver.proposal.as_ref().unwrap();
        assert_eq!(p.version_column(), Some("updated_at"));
        assert_eq!(p.approval.required_role.as_deref(), Some("billing_lead"));
        assert_eq!(
            p.patch[0],
            (
                "late_fee_cents".to_owned(),
                PatchValue::Fixed(serde_json::json!(0))
            )
        );
        assert_eq!(
            cfg.write_authority_env_names(),
            vec!["REFERENCE_POSTGRES_WRITE_URL"]
        );
        assert_eq!(
            cfg.proposer_env_names(),
            vec![
                "REFERENCE_POSTGRES_READ_URL",
                "SYNAPSOR_PRINCIPAL",
                "SYNAPSOR_TENANT_ID"
            ]
        );
    }

    fn lock_value(schema: &str, table: &str, cols: &[(&str, &str)]) -> Value {
        let columns: BTreeMap<String, String> = cols
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        serde_json::json!({
            "schema": schema,
            "table": table,
            "columns": columns,
            "fingerprint": crate::drift::fingerprint(schema, table, &columns),
        })
    }

    fn with_lock(lock: Value) -> Loaded {
        let mut v: Value = serde_json::from_str(REFERENCE).unwrap();
        v["airlock"] = serde_json::json!({"schema_lock": lock});
        load_config(&v)
    }

    fn errors(loaded: &Loaded) -> Vec<(String, String, String)> {
        loaded
            .report
            .errors()
            .map(|d| (d.path.clone(), d.message.clone(), d.fix.clone()))
            .collect()
    }

    fn with_disabled(disabled: Value) -> Loaded {
        let mut v: Value = serde_json::from_str(REFERENCE).unwrap();
        v["airlock"] = serde_json::json!({"disabled_capabilities": disabled});
        load_config(&v)
    }

    #[test]
    fn a_disabled_capability_is_validated_but_not_served() {
        let plain = load_config_str(REFERENCE).config.unwrap();
        let all = plain.capabilities.len();
        assert!(plain.disabled.is_empty());
        let loaded = with_disabled(serde_json::json!({
            "billing.propose_late_fee_waiver": "drafted by airlock init: confirm the version column"
        }));
        assert_eq!(errors(&loaded), vec![]);
        let warned: Vec<(String, String, String)> = loaded
            .report
            .warnings()
            .map(|d| (d.path.clone(), d.message.clone(), d.fix.clone()))
            .collect();
        assert_eq!(
            warned,
            vec![(
                "$.airlock.disabled_capabilities[\"billing.propose_late_fee_waiver\"]".to_owned(),
                "capability `billing.propose_late_fee_waiver` is disabled and not served: drafted by airlock init: confirm the version column".to_owned(),
                "review it, then remove its entry from `airlock.disabled_capabilities` to serve it".to_owned(),
            )]
        );
        let cfg = loaded.config.unwrap();
        assert_eq!(cfg.capabilities.len(), all - 1);
        assert!(cfg.capability("billing.propose_late_fee_waiver").is_none());
        assert!(cfg.capability("billing.inspect_invoice").is_some());
        let names: Vec<&str> = cfg.disabled.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["billing.propose_late_fee_waiver"]);
        assert_eq!(
            cfg.defined_capability("billing.propose_late_fee_waiver")
                .map(|c| c.name.as_str()),
            Some("billing.propose_late_fee_waiver")
        );
        let every: Vec<&str> = cfg.every_capability().map(|c| c.name.as_str()).collect();
        assert_eq!(every.len(), all);
        assert_eq!(every.last(), Some(&"billing.propose_late_fee_waiver"));
    }

    #[test]
    fn a_disabled_capability_must_exist_and_carry_a_one_line_reason() {
        let cases = [
            (
                serde_json::json!({"billing.nope": "later"}),
                "capability `billing.nope` is not defined in `capabilities`",
            ),
            (
                serde_json::json!({"billing.inspect_invoice": 3}),
                "expected the reason as a string, found a number",
            ),
            (
                serde_json::json!({"billing.inspect_invoice": "  "}),
                "the reason is empty",
            ),
            (
                serde_json::json!({"billing.inspect_invoice": "a\nb"}),
                "the reason contains a control character (a line break, a tab…)",
            ),
            (
                serde_json::json!({"billing.inspect_invoice": "x".repeat(501)}),
                "the reason is longer than 500 characters",
            ),
        ];
        for (disabled, message) in cases {
            let loaded = with_disabled(disabled.clone());
            assert!(loaded.config.is_none(), "{disabled}");
            let e = errors(&loaded);
            assert_eq!(e.len(), 1, "{disabled}: {e:?}");
            assert_eq!(e[0].1, message, "{disabled}");
            assert!(
                e[0].0.starts_with("$.airlock.disabled_capabilities["),
                "{e:?}"
            );
        }
        // Exactly 500 characters is allowed.
        let ok = with_disabled(serde_json::json!({"billing.inspect_invoice": "x".repeat(500)}));
        assert_eq!(errors(&ok), vec![]);
        // Not an object.
        let loaded = with_disabled(serde_json::json!(["billing.inspect_invoice"]));
        assert_eq!(errors(&loaded)[0].0, "$.airlock.disabled_capabilities");
    }

    #[test]
    fn a_schema_lock_loads_and_an_absent_one_is_empty() {
        let plain = load_config_str(REFERENCE).config.unwrap();
        assert!(plain.airlock.schema_lock.is_empty());
        let lock = lock_value(
            "public",
            "invoices",
            &[("id", "text"), ("late_fee_cents", "integer")],
        );
        let loaded = with_lock(serde_json::json!({"billing.propose_late_fee_waiver": lock}));
        assert_eq!(errors(&loaded), vec![]);
        let cfg = loaded.config.unwrap();
        let entry = &cfg.airlock.schema_lock["billing.propose_late_fee_waiver"];
        assert_eq!(entry.schema, "public");
        assert_eq!(entry.table, "invoices");
        assert_eq!(entry.columns["late_fee_cents"], "integer");
        assert_eq!(entry.columns.len(), 2);
        assert_eq!(entry.fingerprint, lock["fingerprint"].as_str().unwrap());
        assert_eq!(cfg.airlock.schema_lock.len(), 1);
        // Empty: no entries, no errors.
        let empty = with_lock(serde_json::json!({}));
        assert!(empty.config.unwrap().airlock.schema_lock.is_empty());
    }

    #[test]
    fn a_hand_edited_lock_is_refused_with_the_relock_fix() {
        let mut lock = lock_value("public", "invoices", &[("id", "text")]);
        lock["columns"]["id"] = Value::from("bigint");
        let loaded = with_lock(serde_json::json!({"billing.inspect_invoice": lock}));
        assert!(loaded.config.is_none());
        assert_eq!(
            errors(&loaded),
            vec![(
                "$.airlock.schema_lock[\"billing.inspect_invoice\"].fingerprint".to_owned(),
                "the fingerprint does not match the recorded columns (was the lock edited by hand?)".to_owned(),
                RELOCK.to_owned()
            )]
        );
    }

    #[test]
    fn a_lock_must_name_a_capability_and_its_table() {
        let loaded = with_lock(serde_json::json!({
            "billing.gone": lock_value("public", "invoices", &[("id", "text")]),
            "billing.inspect_invoice": lock_value("public", "orders", &[("id", "text")]),
            "orders.inspect_order": lock_value("other", "orders", &[("id", "text")]),
        }));
        assert!(loaded.config.is_none());
        let errs = errors(&loaded);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].0.ends_with("[\"billing.gone\"]"), "{errs:?}");
        assert_eq!(
            errs[0].1,
            "the schema lock names capability `billing.gone`, which this config does not define"
        );
        assert_eq!(
            errs[1].1,
            "the schema lock records public.orders, but capability `billing.inspect_invoice` targets public.invoices"
        );
        assert_eq!(
            errs[2].1,
            "the schema lock records other.orders, but capability `orders.inspect_order` targets public.orders"
        );
        assert_eq!(errs[2].2, RELOCK);
    }

    #[test]
    fn malformed_lock_entries_are_each_named() {
        let good = lock_value("public", "invoices", &[("id", "text")]);
        let mut no_schema = good.clone();
        no_schema.as_object_mut().unwrap().remove("schema");
        let mut no_columns = good.clone();
        no_columns.as_object_mut().unwrap().remove("columns");
        let mut empty_columns = good.clone();
        empty_columns["columns"] = serde_json::json!({});
        let mut numeric_type = good.clone();
        numeric_type["columns"]["id"] = Value::from(7);
        let mut extra = good.clone();
        extra["sql"] = Value::from("select 1");
        let mut not_object = good.clone();
        not_object["columns"] = serde_json::json!(["id"]);
        let cases = [
            (no_schema, "schema", "missing required field `schema`"),
            (no_columns, "columns", "missing required field `columns`"),
            (
                empty_columns,
                "columns",
                "a schema lock records at least one column",
            ),
            (
                numeric_type,
                "columns.id",
                "expected the column's type as a string, found a number",
            ),
            (not_object, "columns", "expected an object, found an array"),
        ];
        for (entry, path, message) in cases {
            let loaded = with_lock(serde_json::json!({"billing.inspect_invoice": entry}));
            assert!(loaded.config.is_none(), "{path}");
            let errs = errors(&loaded);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(
                errs[0].0,
                format!("$.airlock.schema_lock[\"billing.inspect_invoice\"].{path}")
            );
            assert!(errs[0].1.starts_with(message), "{errs:?}");
        }
        let loaded = with_lock(serde_json::json!({"billing.inspect_invoice": extra}));
        assert!(loaded.config.is_none());
        let loaded = with_lock(serde_json::json!({"billing.inspect_invoice": 3}));
        assert!(loaded.config.is_none());
        let loaded = with_lock(serde_json::json!([]));
        assert!(loaded.config.is_none());
    }

    #[test]
    fn collects_every_error_not_just_the_first() {
        let mut v: Value = serde_json::from_str(REFERENCE).unwrap();
        v["capabilities"][0]["target"]["table"] = Value::from("bad table");
        v["capabilities"][1]["sql"] = Value::from("select 1");
        v["capabilities"][3]["args"]["tenant_id"] = serde_json::json!({"type": "string"});
        let loaded = load_config(&v);
        let paths: Vec<&str> = loaded.report.errors().map(|d| d.path.as_str()).collect();
        assert!(loaded.config.is_none());
        assert_eq!(
            paths,
            vec![
                "$.capabilities[0].target.table",
                "$.capabilities[1].sql",
                "$.capabilities[3].args.tenant_id"
            ]
        );
    }

    #[test]
    fn transition_guard_from_column_must_be_patched_or_the_version_column() {
        let base: Value = serde_json::from_str(REFERENCE).unwrap();
        let guard = |from: &str| {
            let mut v = base.clone();
            v["capabilities"][7]["transition_guards"]["status"]["from_column"] = Value::from(from);
            load_config(&v)
        };
        // A column neither patched nor the version column: refused, at the
        // exact path, with the fix.
        let bad = guard("customer_id");
        assert!(bad.config.is_none());
        let errors: Vec<_> = bad.report.errors().collect();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(
            errors[0].path,
            "$.capabilities[7].transition_guards.status.from_column"
        );
        assert!(
            errors[0]
                .message
                .contains("neither patched by this capability nor its version column")
        );
        assert!(errors[0].fix.contains("`updated_at`"));
        // A patched column, the guarded column itself and the version column
        // are all fine.
        for ok in ["status", "status_change_reason", "updated_at"] {
            let loaded = guard(ok);
            assert!(!loaded.report.has_errors(), "{ok}: {:#?}", loaded.report);
        }
    }
}
