//! The config loader section by section (everything before the
//! capabilities): what each valid shape loads as, and the exact path,
//! message and fix of each refusal. Expected values are written out here,
//! never computed by the loader.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use airlock_policy::config::{
    ContextProvider, IntakeLimits, Mode, NameSet, PeerId, ResultFormat, ValueSource,
};
use airlock_policy::load::{Loaded, MAX_CONFIG_BYTES};
use airlock_policy::{Config, Severity, load_config, load_config_str};
use serde_json::{Value, json};

#[path = "support/json_edit.rs"]
mod json_edit;
use json_edit::{remove, set};

/// A small valid config: one source, the environment context, one read.
fn base() -> Value {
    json!({
        "version": 1,
        "mode": "review",
        "sources": {
            "app": {"engine": "postgres", "read_url_env": "APP_READ_URL"}
        },
        "trusted_context": {
            "provider": "environment",
            "values": {"tenant_id_env": "APP_TENANT_ID"}
        },
        "capabilities": [{
            "name": "billing.inspect_invoice",
            "kind": "read",
            "source": "app",
            "target": {
                "schema": "public",
                "table": "invoices",
                "primary_key": "id",
                "tenant_key": "tenant_id"
            },
            "args": {
                "invoice_id": {"type": "string", "required": true, "max_length": 128}
            },
            "lookup": {"id_from_arg": "invoice_id"},
            "visible_columns": ["id", "tenant_id", "status"],
            "evidence": "required",
            "max_rows": 1
        }]
    })
}

/// `base()` with `value` written at the JSON pointer `at` (its parent must
/// exist).
fn with(at: &str, value: Value) -> Value {
    let mut v = base();
    set(&mut v, at, value);
    v
}

/// `base()` without the key at the JSON pointer `at`.
fn without(at: &str) -> Value {
    let mut v = base();
    remove(&mut v, at);
    v
}

fn ok(v: &Value) -> Config {
    let loaded = load_config(v);
    assert!(!loaded.report.has_errors(), "{:#?}", loaded.report);
    loaded.config.expect("a config when there are no errors")
}

/// Every error as `path | message`.
fn errors(loaded: &Loaded) -> Vec<String> {
    loaded
        .report
        .errors()
        .map(|d| format!("{} | {}", d.path, d.message))
        .collect()
}

/// The config must be refused with exactly these errors (`path | message`).
fn refused(v: &Value, expected: &[&str]) -> Loaded {
    let loaded = load_config(v);
    assert!(loaded.config.is_none(), "loaded despite {expected:?}");
    assert_eq!(errors(&loaded), expected, "{v:#}");
    loaded
}

/// The fix of the only error.
fn fix(loaded: &Loaded) -> &str {
    &loaded.report.errors().next().unwrap().fix
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded
        .report
        .warnings()
        .map(|d| format!("{} | {}", d.path, d.message))
        .collect()
}

// ---------------------------------------------------------------------------
// The document.

#[test]
fn size_limit_is_one_mebibyte_inclusive() {
    assert_eq!(MAX_CONFIG_BYTES, 1_048_576);
    let text = base().to_string();
    let pad = |n: usize| format!("{text}{}", " ".repeat(n - text.len()));
    let at_limit = load_config_str(&pad(1_048_576));
    assert!(!at_limit.report.has_errors(), "{:#?}", at_limit.report);
    assert!(at_limit.config.is_some());
    let over = load_config_str(&pad(1_048_577));
    assert!(over.config.is_none());
    assert_eq!(
        errors(&over),
        ["$ | the config is 1048577 bytes; the limit is 1048576"]
    );
    assert_eq!(
        fix(&over),
        "split unrelated capabilities into separate configs"
    );
}

#[test]
fn text_that_is_not_json_is_refused_at_the_root() {
    let loaded = load_config_str("{\"version\": 1,");
    assert!(loaded.config.is_none());
    let errs = errors(&loaded);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("$ | not valid JSON: "), "{errs:?}");
    assert!(fix(&loaded).contains("each key may appear only once"));
    // The same document as text loads.
    assert!(load_config_str(&base().to_string()).config.is_some());
}

#[test]
fn errors_come_before_warnings_each_in_document_order() {
    let mut v = base();
    set(&mut v, "/strict", json!(false));
    set(&mut v, "/cloud", json!({}));
    set(&mut v, "/version", json!(2));
    set(&mut v, "/mode", json!("shadow"));
    let loaded = load_config(&v);
    assert!(loaded.config.is_none());
    let order: Vec<(Severity, &str)> = loaded
        .report
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.path.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (Severity::Error, "$.version"),
            (Severity::Error, "$.mode"),
            (Severity::Warning, "$.strict"),
            (Severity::Warning, "$.cloud"),
        ]
    );
}

#[test]
fn warnings_alone_do_not_block() {
    let mut v = base();
    set(&mut v, "/strict", json!(false));
    set(&mut v, "/cloud", json!({"anything": 1}));
    let loaded = load_config(&v);
    assert!(loaded.config.is_some());
    assert_eq!(
        warnings(&loaded),
        [
            "$.strict | Airlock always validates strictly; `strict: false` has no effect",
            "$.cloud | Airlock ignores `cloud` settings",
        ]
    );
    // `strict: true` says nothing.
    let loaded = load_config(&with("/strict", json!(true)));
    assert!(loaded.report.diagnostics.is_empty(), "{:#?}", loaded.report);
}

#[test]
fn version_mode_and_result_format() {
    refused(
        &without("/version"),
        &["$.version | missing required field `version`"],
    );
    refused(
        &with("/version", json!("1")),
        &["$.version | unsupported config version \"1\""],
    );
    refused(
        &with("/version", json!(0)),
        &["$.version | unsupported config version 0"],
    );
    let cfg = ok(&base());
    assert_eq!(cfg.version, 1);
    assert_eq!(cfg.mode, Mode::Review);
    assert_eq!(cfg.result_format, ResultFormat::V2);

    refused(
        &without("/mode"),
        &["$.mode | missing required field `mode`"],
    );
    refused(
        &with("/mode", json!("shadow")),
        &["$.mode | mode `shadow` is not supported by Airlock"],
    );
    refused(
        &with("/mode", json!(1)),
        &["$.mode | expected a string, found a number"],
    );
    assert_eq!(ok(&with("/mode", json!("read_only"))).mode, Mode::ReadOnly);

    assert_eq!(
        ok(&with("/result_format", json!(1))).result_format,
        ResultFormat::V1
    );
    assert_eq!(
        ok(&with("/result_format", json!(2))).result_format,
        ResultFormat::V2
    );
    refused(
        &with("/result_format", json!(3)),
        &["$.result_format | unsupported result format 3"],
    );
    refused(
        &with("/strict", json!("yes")),
        &["$.strict | expected true or false, found a string"],
    );
}

#[test]
fn synapsor_runner_keys_are_refused_by_name_and_feature() {
    let l = refused(
        &with("/rate_limits", json!({"enabled": true})),
        &[
            "$.rate_limits | Synapsor Runner 1.x key $.rate_limits (per-capability rate limits) is not supported by Airlock yet",
        ],
    );
    assert_eq!(
        fix(&l),
        "Airlock cannot enforce per-capability rate limits yet, so it refuses the config rather than ignore the key; remove `rate_limits` only if this deployment may run without it"
    );
    // Runner's `mirror` (an SQLite copy synced to PostgreSQL) has no
    // Airlock equivalent: refused by name, with what to use instead.
    refused(
        &with(
            "/storage",
            json!({"shared_postgres": {"mode": "mirror", "url_env": "LEDGER_URL"}}),
        ),
        &[
            "$.storage.shared_postgres.mode | `mirror` (an SQLite ledger copied to PostgreSQL and back) is not an Airlock mode",
        ],
    );
    refused(
        &with("/capabilities/0/args/invoice_id/max_items", json!(3)),
        &[
            "$.capabilities[0].args.invoice_id.max_items | Synapsor Runner 1.x key $.capabilities[0].args.invoice_id.max_items (object-array arguments) is not supported by Airlock yet",
        ],
    );
    // Raw SQL keys keep their own refusal wherever they sit.
    refused(
        &with("/capabilities/0/sql", json!("select 1")),
        &[
            "$.capabilities[0].sql | raw SQL (`sql`) is never accepted: the model gets reviewed business tools, not queries",
        ],
    );
}

#[test]
fn unknown_keys_say_why_and_list_the_known_fields() {
    let l = refused(
        &with("/telemetry", json!(true)),
        &["$.telemetry | unknown field `telemetry`"],
    );
    assert_eq!(
        fix(&l),
        "remove it or use one of: $schema, airlock, capabilities, cloud, contexts, executors, http_security, metrics, mode, notifications, proposal_freshness, result_format, session_auth, sources, storage, strict, trusted_context, version"
    );
    // Raw SQL and inline connection keys are recognized whatever their case.
    refused(
        &with("/Where_Clause", json!("x")),
        &[
            "$.Where_Clause | raw SQL (`Where_Clause`) is never accepted: the model gets reviewed business tools, not queries",
        ],
    );
    refused(
        &with("/sources/app/PASSWORD", json!("x")),
        &[
            "$.sources.app.PASSWORD | inline connection details or secrets (`PASSWORD`) are never accepted in a reviewed config",
        ],
    );
}

#[test]
fn type_names_and_short_values_in_messages() {
    for (value, name) in [
        (json!(null), "null"),
        (json!(true), "a boolean"),
        (json!(1.5), "a number"),
        (json!("x"), "a string"),
        (json!([]), "an array"),
    ] {
        refused(
            &with("/storage", value),
            &[&format!("$.storage | expected an object, found {name}")],
        );
    }
    refused(
        &with("/storage", json!({"sqlite_path": {}})),
        &["$.storage.sqlite_path | expected a string, found an object"],
    );
    // Values longer than 40 characters are cut to 40 and marked.
    let a38 = "a".repeat(38);
    refused(
        &with("/version", json!(a38)),
        &[&format!("$.version | unsupported config version \"{a38}\"")],
    );
    let a39 = "a".repeat(39);
    refused(
        &with("/version", json!(a39)),
        &[&format!("$.version | unsupported config version \"{a39}…")],
    );
}

#[test]
fn inline_credentials_are_found_anywhere() {
    let l = refused(
        &with("/storage", json!({"sqlite_path": "postgres://u:pw@db/app"})),
        &[
            "$.storage.sqlite_path | this value looks like an inline connection string (a URL with an embedded password); a reviewed config never holds credentials",
        ],
    );
    assert!(fix(&l).contains("`*_env` field"));
    refused(
        &with(
            "/cloud",
            json!({"list": [1, {"h": "Bearer abcdefghijklmnopqrstuvwxyz"}]}),
        ),
        &[
            "$.cloud.list[1].h | this value looks like inline secret material (an HTTP authorization credential); a reviewed config never holds credentials",
        ],
    );
}

// ---------------------------------------------------------------------------
// Storage and sources.

#[test]
fn storage() {
    assert_eq!(ok(&base()).storage.sqlite_path, None);
    assert_eq!(ok(&with("/storage", json!({}))).storage.sqlite_path, None);
    assert_eq!(
        ok(&with("/storage", json!({"sqlite_path": "./l.db"})))
            .storage
            .sqlite_path
            .as_deref(),
        Some("./l.db")
    );
    let l = refused(
        &with("/storage", json!({"sqlite_path": ""})),
        &["$.storage.sqlite_path | must not be empty"],
    );
    assert_eq!(fix(&l), "give `sqlite_path` a value or remove it");
    refused(
        &with("/storage", json!({"path": "x"})),
        &["$.storage.path | unknown field `path`"],
    );
}

fn shared(v: Value) -> Value {
    with("/storage", json!({ "shared_postgres": v }))
}

#[test]
fn a_shared_postgres_ledger_in_synapsor_runners_shape() {
    use airlock_policy::config::SharedPostgres;
    // Runner's minimal runtime store: the defaults fill the rest.
    let c = ok(&shared(
        json!({"mode": "runtime_store", "url_env": "AIRLOCK_LEDGER_DATABASE_URL"}),
    ));
    assert_eq!(
        c.storage.shared_postgres,
        Some(SharedPostgres {
            url_env: "AIRLOCK_LEDGER_DATABASE_URL".into(),
            schema: "airlock_ledger".into(),
            lock_timeout_ms: 10_000,
            apply_lease_ms: 30_000,
        })
    );
    // Every key given; the bounds of the lock timeout are inclusive.
    for ms in [100, 600_000] {
        let c = ok(&shared(json!({
            "mode": "runtime_store", "url_env": "LEDGER_URL",
            "schema": "_fleet_2", "lock_timeout_ms": ms
        })));
        let p = c.storage.shared_postgres.unwrap();
        assert_eq!((p.schema.as_str(), p.lock_timeout_ms), ("_fleet_2", ms));
    }
    for ms in [1_000, 600_000] {
        let c = ok(&shared(
            json!({"mode": "runtime_store", "url_env": "LEDGER_URL", "apply_lease_ms": ms}),
        ));
        assert_eq!(c.storage.shared_postgres.unwrap().apply_lease_ms, ms);
    }
    for ms in [999, 600_001] {
        refused(
            &shared(
                json!({"mode": "runtime_store", "url_env": "LEDGER_URL", "apply_lease_ms": ms}),
            ),
            &[&format!(
                "$.storage.shared_postgres.apply_lease_ms | expected a whole number from 1000 to 600000, found {ms}"
            )],
        );
    }
    for ms in [99, 600_001] {
        refused(
            &shared(
                json!({"mode": "runtime_store", "url_env": "LEDGER_URL", "lock_timeout_ms": ms}),
            ),
            &[&format!(
                "$.storage.shared_postgres.lock_timeout_ms | expected a whole number from 100 to 600000, found {ms}"
            )],
        );
    }
    // `disabled` keeps the SQLite ledger (its url_env is still checked).
    let c = ok(&shared(
        json!({"mode": "disabled", "url_env": "LEDGER_URL"}),
    ));
    assert_eq!(c.storage.shared_postgres, None);
    refused(
        &shared(json!({"mode": "disabled", "url_env": "ledger_url"})),
        &[
            "$.storage.shared_postgres.url_env | `ledger_url` is not a valid environment variable name",
        ],
    );
    // Runner's max_entries loads, with a warning that it does nothing here.
    let l = load_config(&shared(
        json!({"mode": "runtime_store", "url_env": "LEDGER_URL", "max_entries": 5000}),
    ));
    assert!(l.config.is_some());
    assert_eq!(
        warnings(&l),
        [
            "$.storage.shared_postgres.max_entries | `max_entries` has no effect in Airlock: the ledger is not copied out and back per operation, so it has no such cap"
        ]
    );
    refused(
        &shared(json!({"mode": "runtime_store", "url_env": "LEDGER_URL", "max_entries": 99})),
        &[
            "$.storage.shared_postgres.max_entries | expected a whole number from 100 to 100000, found 99",
        ],
    );
    // A path beside a PostgreSQL ledger is not used, and says so.
    let l = load_config(&with(
        "/storage",
        json!({"sqlite_path": "./l.db", "shared_postgres": {"mode": "runtime_store", "url_env": "LEDGER_URL"}}),
    ));
    assert!(l.config.is_some());
    assert_eq!(
        warnings(&l),
        [
            "$.storage.sqlite_path | `sqlite_path` is not used: the ledger is on PostgreSQL (`shared_postgres.mode` is \"runtime_store\")"
        ]
    );
    let l = load_config(&with(
        "/storage",
        json!({"sqlite_path": "./l.db", "shared_postgres": {"mode": "disabled", "url_env": "LEDGER_URL"}}),
    ));
    assert!(warnings(&l).is_empty(), "{:?}", warnings(&l));
}

#[test]
fn shared_postgres_refusals() {
    let l = refused(
        &shared(json!({"url_env": "LEDGER_URL"})),
        &["$.storage.shared_postgres.mode | missing required field `mode`"],
    );
    assert_eq!(
        fix(&l),
        "add \"mode\": \"runtime_store\" (the ledger lives in PostgreSQL) or \"disabled\""
    );
    refused(
        &shared(json!({"mode": "runtime_store"})),
        &["$.storage.shared_postgres.url_env | missing required field `url_env`"],
    );
    let l = refused(
        &shared(json!({"mode": "replicated", "url_env": "LEDGER_URL"})),
        &["$.storage.shared_postgres.mode | unknown mode `replicated`"],
    );
    assert_eq!(fix(&l), "use \"runtime_store\" or \"disabled\"");
    refused(
        &shared(json!({"mode": "runtime_store", "url_env": "LEDGER_URL", "lease": 1})),
        &["$.storage.shared_postgres.lease | unknown field `lease`"],
    );
    // Schema names: lower-case identifiers of at most 63 bytes.
    for name in ["a", "_", "ledger_1", &"x".repeat(63)] {
        let c = ok(&shared(
            json!({"mode": "runtime_store", "url_env": "LEDGER_URL", "schema": name}),
        ));
        assert_eq!(c.storage.shared_postgres.unwrap().schema, name);
    }
    for name in [
        "Ledger",
        "1ledger",
        "led-ger",
        "led ger",
        "lédger",
        &"x".repeat(64),
    ] {
        let l = refused(
            &shared(json!({"mode": "runtime_store", "url_env": "LEDGER_URL", "schema": name})),
            &[&format!(
                "$.storage.shared_postgres.schema | `{}` is not a schema name Airlock uses",
                name.escape_debug()
            )],
        );
        assert!(fix(&l).starts_with("use lower-case letters, digits and underscores"));
    }
}

#[test]
fn sources_load_with_their_defaults() {
    let v = with(
        "/sources",
        json!({
            "app": {"engine": "postgres", "read_url_env": "APP_READ_URL"},
            "my-db_2": {
                "engine": "mysql",
                "read_url_env": "MY_READ",
                "write_url_env": "MY_WRITE",
                "statement_timeout_ms": 600000,
                "read_only": true
            },
            "lite": {"engine": "sqlite", "read_url_env": "_L1", "statement_timeout_ms": 1, "read_only": false}
        }),
    );
    let cfg = ok(&v);
    assert_eq!(
        serde_json::to_value(&cfg.sources).unwrap(),
        json!({
            "app": {
                "engine": "postgres",
                "read_url_env": "APP_READ_URL",
                "write_url_env": null,
                "statement_timeout_ms": 5000,
                "read_only": false
            },
            "lite": {
                "engine": "sqlite",
                "read_url_env": "_L1",
                "write_url_env": null,
                "statement_timeout_ms": 1,
                "read_only": false
            },
            "my-db_2": {
                "engine": "mysql",
                "read_url_env": "MY_READ",
                "write_url_env": "MY_WRITE",
                "statement_timeout_ms": 600000,
                "read_only": true
            }
        })
    );
}

#[test]
fn source_refusals() {
    let l = load_config(&without("/sources"));
    assert!(l.config.is_none());
    assert_eq!(
        errors(&l)[0],
        "$.sources | missing required field `sources`"
    );
    let l = load_config(&with("/sources", json!([])));
    assert!(l.config.is_none());
    assert_eq!(
        errors(&l)[0],
        "$.sources | expected an object, found an array"
    );
    let l = load_config(&with("/sources", json!({})));
    assert!(l.config.is_none());
    assert_eq!(errors(&l)[0], "$.sources | at least one source is required");
    refused(
        &with("/sources/app", json!("postgres")),
        &["$.sources.app | expected an object, found a string"],
    );
    refused(
        &without("/sources/app/engine"),
        &["$.sources.app.engine | missing required field `engine`"],
    );
    refused(
        &with("/sources/app/engine", json!("oracle")),
        &["$.sources.app.engine | unknown engine `oracle`"],
    );
    refused(
        &without("/sources/app/read_url_env"),
        &["$.sources.app.read_url_env | missing required field `read_url_env`"],
    );
    let l = refused(
        &with("/sources/app/write_url_env", json!("APP_READ_URL")),
        &[
            "$.sources.app.write_url_env | the read and write URLs come from the same variable, so the proposer would hold write authority",
        ],
    );
    assert!(fix(&l).contains("separate variable"));
    for t in [0, 600_001] {
        refused(
            &with("/sources/app/statement_timeout_ms", json!(t)),
            &[&format!(
                "$.sources.app.statement_timeout_ms | expected a whole number from 1 to 600000, found {t}"
            )],
        );
    }
    refused(
        &with("/sources/app/read_only", json!(1)),
        &["$.sources.app.read_only | expected true or false, found a number"],
    );
    refused(
        &with("/sources/app/dsn", json!("x")),
        &[
            "$.sources.app.dsn | inline connection details or secrets (`dsn`) are never accepted in a reviewed config",
        ],
    );
    let l = load_config(&with("/sources/app/ssl", json!(true)));
    assert!(l.config.is_some());
    assert_eq!(
        warnings(&l),
        ["$.sources.app.ssl | `ssl` is ignored; TLS settings come from the connection URL"]
    );
}

#[test]
fn env_names_are_upper_case_words_of_at_most_128() {
    let at = "/sources/app/read_url_env";
    for good in ["A", "_", "_A", "A1_B2", "Z9", &"A".repeat(128)] {
        let cfg = ok(&with(at, json!(good)));
        assert_eq!(cfg.sources["app"].read_url_env, good);
    }
    for bad in ["1A", "a", "Ab", "A-B", "A B", "ÄB", &"A".repeat(129)] {
        refused(
            &with(at, json!(bad)),
            &[&format!(
                "$.sources.app.read_url_env | `{bad}` is not a valid environment variable name"
            )],
        );
    }
    refused(
        &with(at, json!("")),
        &["$.sources.app.read_url_env | must not be empty"],
    );
    // A connection URL where a name belongs is caught by the document-wide
    // credential scan first (one finding per path).
    refused(
        &with(at, json!("postgres://db/app")),
        &[
            "$.sources.app.read_url_env | this value looks like an inline connection string (a database connection URL); a reviewed config never holds credentials",
        ],
    );
}

#[test]
fn entry_names_are_1_to_64_letters_digits_underscore_or_dash() {
    let src = json!({"engine": "postgres", "read_url_env": "APP_READ_URL"});
    let name64 = "a".repeat(64);
    for good in ["a", "Z", "0", "a-b_C9", name64.as_str()] {
        let cfg = ok(&with(
            "/sources",
            json!({ "app": src.clone(), good: src.clone() }),
        ));
        assert!(cfg.sources.contains_key(good), "{good}");
        assert_eq!(cfg.sources.len(), 2);
    }
    let name65 = "a".repeat(65);
    for (bad, path) in [
        ("", "$.sources[\"\"]".to_owned()),
        ("a.b", "$.sources[\"a.b\"]".to_owned()),
        ("a b", "$.sources[\"a b\"]".to_owned()),
        ("é", "$.sources[\"é\"]".to_owned()),
        (name65.as_str(), format!("$.sources[\"{name65}\"]")),
    ] {
        let l = load_config(&with(
            "/sources",
            json!({ "app": src.clone(), bad: src.clone() }),
        ));
        assert!(l.config.is_none());
        assert_eq!(
            errors(&l)[0],
            format!("{path} | `{bad}` is not a valid name"),
        );
        assert_eq!(fix(&l), "use 1 to 64 letters, digits, `_` or `-`");
    }
}

// ---------------------------------------------------------------------------
// Trusted contexts.

#[test]
fn environment_context_values() {
    let cfg = ok(&base());
    assert_eq!(cfg.trusted_context.provider, ContextProvider::Environment);
    assert_eq!(
        cfg.trusted_context.tenant,
        ValueSource::Env("APP_TENANT_ID".into())
    );
    assert_eq!(cfg.trusted_context.principal, ValueSource::Unset);
    assert!(cfg.contexts.is_empty());
    let cfg = ok(&with(
        "/trusted_context/values/principal_env",
        json!("APP_PRINCIPAL"),
    ));
    assert_eq!(
        cfg.trusted_context.principal,
        ValueSource::Env("APP_PRINCIPAL".into())
    );
}

#[test]
fn static_dev_context_values_warn() {
    let v = with(
        "/trusted_context",
        json!({"provider": "static_dev", "values": {"tenant_id": "acme", "principal": "alice"}}),
    );
    let l = load_config(&v);
    let cfg = l.config.as_ref().expect("static_dev loads");
    assert_eq!(cfg.trusted_context.provider, ContextProvider::StaticDev);
    assert_eq!(
        cfg.trusted_context.tenant,
        ValueSource::Static("acme".into())
    );
    assert_eq!(
        cfg.trusted_context.principal,
        ValueSource::Static("alice".into())
    );
    assert_eq!(
        warnings(&l),
        [
            "$.trusted_context.provider | static_dev fixes the tenant in the config file; use it for local development only"
        ]
    );
    let cfg = ok(&with(
        "/trusted_context",
        json!({"provider": "static_dev", "values": {"tenant_id": "t".repeat(128)}}),
    ));
    assert_eq!(
        cfg.trusted_context.tenant,
        ValueSource::Static("t".repeat(128))
    );
    assert_eq!(cfg.trusted_context.principal, ValueSource::Unset);
}

#[test]
fn context_refusals() {
    let ctx = |c: Value| with("/trusted_context", c);
    refused(
        &without("/trusted_context"),
        &["$.trusted_context | missing required field `trusted_context`"],
    );
    refused(
        &ctx(json!("environment")),
        &["$.trusted_context | expected an object, found a string"],
    );
    refused(
        &ctx(json!({"values": {"tenant_id_env": "T"}})),
        &["$.trusted_context.provider | missing required field `provider`"],
    );
    refused(
        &ctx(json!({"provider": "vault", "values": {"tenant_id_env": "T"}})),
        &[
            "$.trusted_context.provider | trusted-context provider `vault` is not supported by Airlock",
        ],
    );
    refused(
        &ctx(json!({"provider": "environment"})),
        &["$.trusted_context.values.tenant_id_env | missing required field `tenant_id_env`"],
    );
    refused(
        &ctx(json!({"provider": "environment", "values": []})),
        &["$.trusted_context.values | expected an object, found an array"],
    );
    refused(
        &ctx(json!({"provider": "environment", "values": {"tenant_id_env": "T", "role": "x"}})),
        &["$.trusted_context.values.role | unknown field `role`"],
    );
    let l = refused(
        &ctx(
            json!({"provider": "environment", "values": {"tenant_id": "acme", "tenant_id_env": "T"}}),
        ),
        &[
            "$.trusted_context.values.tenant_id | the environment provider reads `tenant_id_env`, not a literal `tenant_id`",
        ],
    );
    assert_eq!(
        fix(&l),
        "write \"tenant_id_env\": \"APP_TENANT_ID\" and set that variable for the proposer"
    );
    let l = refused(
        &ctx(
            json!({"provider": "environment", "values": {"principal": "bob", "tenant_id_env": "T"}}),
        ),
        &[
            "$.trusted_context.values.principal | the environment provider reads `principal_env`, not a literal `principal`",
        ],
    );
    assert_eq!(
        fix(&l),
        "write \"principal_env\": \"APP_PRINCIPAL\" and set that variable for the proposer"
    );
    refused(
        &ctx(
            json!({"provider": "environment", "values": {"tenant_id_env": "T", "principal_env": "p"}}),
        ),
        &["$.trusted_context.values.principal_env | `p` is not a valid environment variable name"],
    );
    refused(
        &ctx(json!({"provider": "static_dev", "values": {}})),
        &["$.trusted_context.values.tenant_id | missing required field `tenant_id`"],
    );
    for bad in ["t".repeat(129), "ac\nme".to_owned(), "a\u{7f}".to_owned()] {
        refused(
            &ctx(json!({"provider": "static_dev", "values": {"tenant_id": bad}})),
            &[
                "$.trusted_context.values.tenant_id | a tenant id must be at most 128 characters with no control characters",
            ],
        );
    }
}

/// Issue item: a valid named context must be kept, and a capability that
/// names it gets its values, not the top-level `trusted_context`.
#[test]
fn a_capability_naming_a_context_gets_that_context() {
    let mut v = base();
    set(
        &mut v,
        "/contexts",
        json!({
            "ops": {
                "provider": "environment",
                "values": {"tenant_id_env": "OPS_TENANT", "principal_env": "OPS_PRINCIPAL"}
            },
            "dev-1": {
                "provider": "static_dev",
                "values": {"tenant_id": "dev_tenant"}
            }
        }),
    );
    set(&mut v, "/capabilities/0/context", json!("ops"));
    let mut second = v["capabilities"][0].clone();
    second["name"] = json!("billing.inspect_invoice_dev");
    second["context"] = json!("dev-1");
    let mut third = v["capabilities"][0].clone();
    third["name"] = json!("billing.inspect_invoice_top");
    third.as_object_mut().unwrap().remove("context");
    v["capabilities"].as_array_mut().unwrap().push(second);
    v["capabilities"].as_array_mut().unwrap().push(third);
    let l = load_config(&v);
    assert_eq!(
        warnings(&l),
        [
            "$.contexts[\"dev-1\"].provider | static_dev fixes the tenant in the config file; use it for local development only"
        ]
    );
    let cfg = l.config.expect("loads");
    assert_eq!(
        cfg.contexts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["dev-1", "ops"]
    );
    let ctx = |name: &str| cfg.context_for(cfg.capability(name).unwrap());
    let ops = ctx("billing.inspect_invoice");
    assert_eq!(ops.tenant, ValueSource::Env("OPS_TENANT".into()));
    assert_eq!(ops.principal, ValueSource::Env("OPS_PRINCIPAL".into()));
    let dev = ctx("billing.inspect_invoice_dev");
    assert_eq!(dev.provider, ContextProvider::StaticDev);
    assert_eq!(dev.tenant, ValueSource::Static("dev_tenant".into()));
    assert_eq!(dev.principal, ValueSource::Unset);
    let top = ctx("billing.inspect_invoice_top");
    assert_eq!(top.tenant, ValueSource::Env("APP_TENANT_ID".into()));
}

#[test]
fn named_context_refusals() {
    let env = json!({"provider": "environment", "values": {"tenant_id_env": "T"}});
    refused(
        &with("/contexts", json!([env])),
        &["$.contexts | expected an object, found an array"],
    );
    refused(
        &with("/contexts", json!({"a.b": env})),
        &["$.contexts[\"a.b\"] | `a.b` is not a valid name"],
    );
    refused(
        &with(
            "/contexts",
            json!({"ops": {"provider": "environment", "values": {"tenant_id": "x", "tenant_id_env": "T"}}}),
        ),
        &[
            "$.contexts.ops.values.tenant_id | the environment provider reads `tenant_id_env`, not a literal `tenant_id`",
        ],
    );
}

// ---------------------------------------------------------------------------
// Executors and their auth.

#[test]
fn executors_load_with_their_defaults() {
    let cfg = ok(&with(
        "/executors",
        json!({
            "sql": {"type": "sql_update"},
            "hook": {"type": "http_handler", "url_env": "HOOK_URL"},
            "hook_put": {
                "type": "http_handler",
                "url_env": "HOOK_URL",
                "method": "PUT",
                "auth": {"type": "bearer_env", "token_env": "HOOK_TOKEN"},
                "signing_secret_env": "HOOK_SIGNING",
                "timeout_ms": 600000
            },
            "hook_patch": {
                "type": "http_handler",
                "url_env": "HOOK_URL",
                "method": "PATCH",
                "auth": {"bearer_env": "SHORT_TOKEN"},
                "timeout_ms": 1
            },
            "hook_post": {"type": "http_handler", "url_env": "HOOK_URL", "method": "POST"},
            "cmd": {"type": "command_handler", "command_env": "CMD_PATH"},
            "cmd_fast": {"type": "command_handler", "command_env": "CMD_PATH", "timeout_ms": 250}
        }),
    ));
    assert_eq!(
        serde_json::to_value(&cfg.executors).unwrap(),
        json!({
            "cmd": {"type": "command_handler", "command_env": "CMD_PATH", "timeout_ms": 10000},
            "cmd_fast": {"type": "command_handler", "command_env": "CMD_PATH", "timeout_ms": 250},
            "hook": {
                "type": "http_handler", "url_env": "HOOK_URL", "method": "POST",
                "token_env": null, "signing_secret_env": null, "timeout_ms": 10000
            },
            "hook_patch": {
                "type": "http_handler", "url_env": "HOOK_URL", "method": "PATCH",
                "token_env": "SHORT_TOKEN", "signing_secret_env": null, "timeout_ms": 1
            },
            "hook_post": {
                "type": "http_handler", "url_env": "HOOK_URL", "method": "POST",
                "token_env": null, "signing_secret_env": null, "timeout_ms": 10000
            },
            "hook_put": {
                "type": "http_handler", "url_env": "HOOK_URL", "method": "PUT",
                "token_env": "HOOK_TOKEN", "signing_secret_env": "HOOK_SIGNING", "timeout_ms": 600000
            },
            "sql": {"type": "sql_update"}
        })
    );
    assert!(ok(&base()).executors.is_empty());
}

#[test]
fn executor_refusals() {
    let ex = |e: Value| with("/executors", json!({ "x": e }));
    refused(
        &with("/executors", json!(["sql_update"])),
        &["$.executors | expected an object, found an array"],
    );
    refused(
        &with("/executors", json!({"a b": {"type": "sql_update"}})),
        &["$.executors[\"a b\"] | `a b` is not a valid name"],
    );
    refused(
        &ex(json!("sql_update")),
        &["$.executors.x | expected an object, found a string"],
    );
    refused(
        &ex(json!({})),
        &["$.executors.x.type | missing required field `type`"],
    );
    refused(
        &ex(json!({"type": "lambda"})),
        &["$.executors.x.type | unknown executor type `lambda`"],
    );
    for key in [
        "url_env",
        "method",
        "auth",
        "signing_secret_env",
        "timeout_ms",
        "command_env",
    ] {
        let value = if key == "timeout_ms" {
            json!(5)
        } else {
            json!("X")
        };
        let l = refused(
            &ex(json!({"type": "sql_update", key: value})),
            &[&format!(
                "$.executors.x.{key} | `{key}` does not apply to a sql_update executor"
            )],
        );
        assert_eq!(fix(&l), format!("remove `{key}`"));
    }
    refused(
        &ex(json!({"type": "http_handler", "url_env": "U", "command_env": "C"})),
        &["$.executors.x.command_env | `command_env` does not apply to a http_handler executor"],
    );
    refused(
        &ex(json!({"type": "http_handler"})),
        &["$.executors.x.url_env | missing required field `url_env`"],
    );
    refused(
        &ex(json!({"type": "http_handler", "url_env": "U", "method": "GET"})),
        &["$.executors.x.method | unsupported method `GET`"],
    );
    refused(
        &ex(json!({"type": "http_handler", "url_env": "U", "signing_secret_env": "s"})),
        &["$.executors.x.signing_secret_env | `s` is not a valid environment variable name"],
    );
    for t in [0, 600_001] {
        refused(
            &ex(json!({"type": "http_handler", "url_env": "U", "timeout_ms": t})),
            &[&format!(
                "$.executors.x.timeout_ms | expected a whole number from 1 to 600000, found {t}"
            )],
        );
    }
    for key in ["url_env", "method", "auth", "signing_secret_env"] {
        refused(
            &ex(json!({"type": "command_handler", "command_env": "C", key: "X"})),
            &[&format!(
                "$.executors.x.{key} | `{key}` does not apply to a command_handler executor"
            )],
        );
    }
    refused(
        &ex(json!({"type": "command_handler"})),
        &["$.executors.x.command_env | missing required field `command_env`"],
    );
}

#[test]
fn auth_refusals() {
    let auth = |a: Value| {
        with(
            "/executors",
            json!({"x": {"type": "http_handler", "url_env": "U", "auth": a}}),
        )
    };
    refused(
        &auth(json!("Bearer")),
        &["$.executors.x.auth | expected an object, found a string"],
    );
    refused(
        &auth(json!({"type": "basic", "token_env": "T"})),
        &["$.executors.x.auth.type | unsupported auth type `basic`"],
    );
    let l = refused(
        &auth(json!({"token_env": "T", "bearer_env": "T"})),
        &["$.executors.x.auth.bearer_env | give the token variable once"],
    );
    assert_eq!(fix(&l), "keep `token_env` and remove `bearer_env`");
    refused(
        &auth(json!({"type": "bearer_env"})),
        &["$.executors.x.auth.token_env | missing required field `token_env`"],
    );
    refused(
        &auth(json!({"token_env": "t"})),
        &["$.executors.x.auth.token_env | `t` is not a valid environment variable name"],
    );
    refused(
        &auth(json!({"bearer_env": "t"})),
        &["$.executors.x.auth.bearer_env | `t` is not a valid environment variable name"],
    );
    refused(
        &auth(json!({"token_env": "T", "scheme": "x"})),
        &["$.executors.x.auth.scheme | unknown field `scheme`"],
    );
}

// ---------------------------------------------------------------------------
// The airlock section: peers, name sets, limits.

#[test]
fn airlock_section_defaults() {
    let a = ok(&base()).airlock;
    assert_eq!(a.socket_dir, None);
    assert_eq!(a.socket_group, None);
    assert!(a.proposers.is_none());
    assert!(a.approvers.is_none());
    assert_eq!(a.proposal_ttl_seconds, 604_800);
    assert_eq!(a.limits, IntakeLimits::default());
    let a = ok(&with("/airlock", json!({}))).airlock;
    assert_eq!(a.proposal_ttl_seconds, 604_800);
    assert!(a.proposers.is_none());
    assert!(a.approvers.is_none());
    assert_eq!(
        serde_json::to_value(&a.limits).unwrap(),
        json!({
            "rate_window_seconds": 60,
            "evidence_per_window": 6000,
            "proposals_per_window": 600,
            "max_evidence_bytes": 65536,
            "max_change_set_bytes": 16384,
            "ledger_bytes_per_day": 536870912
        })
    );
}

#[test]
fn airlock_section_values() {
    let a = ok(&with(
        "/airlock",
        json!({
            "socket_dir": "/run/airlock",
            "socket_group": "airlock",
            "proposal_ttl_seconds": 31_622_400,
            "proposers": [
                {"user": "agent", "tenants": ["acme", "beta"]},
                {"uid": 4_294_967_295u64, "tenants": "*"},
                {"uid": 0, "tenants": []}
            ],
            "approvers": [
                {"user": "alice", "roles": ["billing_lead"]},
                {"uid": 1001, "roles": "*"}
            ]
        }),
    ))
    .airlock;
    assert_eq!(a.socket_dir.as_deref(), Some("/run/airlock"));
    assert_eq!(a.socket_group.as_deref(), Some("airlock"));
    assert_eq!(a.proposal_ttl_seconds, 31_622_400);
    assert_eq!(
        serde_json::to_value(&a.proposers).unwrap(),
        json!([
            {"peer": {"user": "agent"}, "tenants": {"only": ["acme", "beta"]}},
            {"peer": {"uid": 4_294_967_295u64}, "tenants": "any"},
            {"peer": {"uid": 0}, "tenants": {"only": []}}
        ])
    );
    assert_eq!(
        serde_json::to_value(&a.approvers).unwrap(),
        json!([
            {"peer": {"user": "alice"}, "roles": {"only": ["billing_lead"]}},
            {"peer": {"uid": 1001}, "roles": "any"}
        ])
    );
    let ps = a.proposers.unwrap();
    assert_eq!(ps[0].peer, PeerId::User("agent".into()));
    assert_eq!(ps[1].peer, PeerId::Uid(u32::MAX));
    assert_eq!(ps[1].tenants, NameSet::Any);
    assert_eq!(ps[2].tenants, NameSet::Only(vec![]));
    // Empty lists mean nobody else may connect (not "default").
    let a = ok(&with(
        "/airlock",
        json!({"proposers": [], "approvers": [], "proposal_ttl_seconds": 1}),
    ))
    .airlock;
    assert_eq!(a.proposers.map(|p| p.len()), Some(0));
    assert_eq!(a.approvers.map(|p| p.len()), Some(0));
    assert_eq!(a.proposal_ttl_seconds, 1);
}

/// Issue item: `"*"` is every name, a list is exactly its names, anything
/// else is refused with a clear error.
#[test]
fn name_sets_star_or_exact_names() {
    let tenants = |t: Value| {
        with(
            "/airlock",
            json!({"proposers": [{"user": "agent", "tenants": t}]}),
        )
    };
    let set = |t: Value| {
        ok(&tenants(t)).airlock.proposers.unwrap()[0]
            .tenants
            .clone()
    };
    assert_eq!(set(json!("*")), NameSet::Any);
    let n128 = "n".repeat(128);
    assert_eq!(
        set(json!(["acme", "*", n128])),
        NameSet::Only(vec!["acme".into(), "*".into(), n128.clone()])
    );
    let only = set(json!(["acme"]));
    assert!(only.contains("acme"));
    assert!(!only.contains("acme2"));
    assert!(!only.contains("ACME"));
    assert!(!only.contains("*"));
    assert!(NameSet::Any.contains("whatever"));

    let l = refused(
        &tenants(json!("acme")),
        &["$.airlock.proposers[0].tenants | expected a list of names or \"*\", found a string"],
    );
    assert_eq!(fix(&l), "write [\"acme\"] or \"*\"");
    refused(
        &tenants(json!({"acme": true})),
        &["$.airlock.proposers[0].tenants | expected a list of names or \"*\", found an object"],
    );
    refused(
        &tenants(json!("all")),
        &["$.airlock.proposers[0].tenants | expected a list of names or \"*\", found a string"],
    );
    assert_eq!(set(json!(["*x"])), NameSet::Only(vec!["*x".into()]));
    let l = refused(
        &tenants(json!(["ok", "", 7, null, "n".repeat(129)])),
        &[
            "$.airlock.proposers[0].tenants[1] | expected a non-empty name",
            "$.airlock.proposers[0].tenants[2] | expected a non-empty name",
            "$.airlock.proposers[0].tenants[3] | expected a non-empty name",
            "$.airlock.proposers[0].tenants[4] | expected a non-empty name",
        ],
    );
    assert_eq!(fix(&l), "write names as strings, e.g. [\"acme\"]");
    let l = refused(
        &with("/airlock", json!({"proposers": [{"user": "agent"}]})),
        &["$.airlock.proposers[0].tenants | missing required field `tenants`"],
    );
    assert_eq!(fix(&l), "add \"tenants\": [\"acme\"] or \"*\" for all");

    // Roles work the same way, with their own example.
    let roles = |r: Value| with("/airlock", json!({"approvers": [{"uid": 7, "roles": r}]}));
    assert_eq!(
        ok(&roles(json!("*"))).airlock.approvers.unwrap()[0].roles,
        NameSet::Any
    );
    assert_eq!(
        ok(&roles(json!(["billing_lead", "orders_lead"])))
            .airlock
            .approvers
            .unwrap()[0]
            .roles,
        NameSet::Only(vec!["billing_lead".into(), "orders_lead".into()])
    );
    let l = refused(
        &roles(json!(true)),
        &["$.airlock.approvers[0].roles | expected a list of names or \"*\", found a boolean"],
    );
    assert_eq!(fix(&l), "write [\"billing_lead\"] or \"*\"");
    let l = refused(
        &with("/airlock", json!({"approvers": [{"uid": 7}]})),
        &["$.airlock.approvers[0].roles | missing required field `roles`"],
    );
    assert_eq!(
        fix(&l),
        "add \"roles\": [\"billing_lead\"] or \"*\" for all"
    );
    let l = refused(
        &roles(json!([""])),
        &["$.airlock.approvers[0].roles[0] | expected a non-empty name"],
    );
    assert_eq!(fix(&l), "write names as strings, e.g. [\"billing_lead\"]");
}

#[test]
fn peer_refusals() {
    let peer = |p: Value| with("/airlock", json!({"proposers": [p], "approvers": [p]}));
    for p in [
        json!({"tenants": "*", "roles": "*"}),
        json!({"user": "a", "uid": 1, "tenants": "*", "roles": "*"}),
    ] {
        let v = peer(p);
        let l = load_config(&v);
        let mut errs: Vec<String> = errors(&l)
            .into_iter()
            .filter(|e| !e.contains("unknown field"))
            .collect();
        errs.sort();
        assert_eq!(
            errs,
            [
                "$.airlock.approvers[0] | name exactly one of `user` (a login name) or `uid` (a number)",
                "$.airlock.proposers[0] | name exactly one of `user` (a login name) or `uid` (a number)",
            ]
        );
    }
    let proposer = |p: Value| with("/airlock", json!({"proposers": [p]}));
    for uid in [json!(4_294_967_296u64), json!(-1), json!("1000")] {
        refused(
            &proposer(json!({"uid": uid, "tenants": "*"})),
            &[&format!(
                "$.airlock.proposers[0].uid | expected a whole number from 0 to 4294967295, found {uid}"
            )],
        );
    }
    refused(
        &proposer(json!({"user": "", "tenants": "*"})),
        &["$.airlock.proposers[0].user | must not be empty"],
    );
    refused(
        &proposer(json!({"user": "a", "tenants": "*", "roles": "*"})),
        &["$.airlock.proposers[0].roles | unknown field `roles`"],
    );
    refused(
        &with(
            "/airlock",
            json!({"approvers": [{"user": "a", "roles": "*", "tenants": "*"}]}),
        ),
        &["$.airlock.approvers[0].tenants | unknown field `tenants`"],
    );
    refused(
        &with("/airlock", json!({"proposers": ["agent"]})),
        &["$.airlock.proposers[0] | expected an object, found a string"],
    );
    refused(
        &with("/airlock", json!({"approvers": [1]})),
        &["$.airlock.approvers[0] | expected an object, found a number"],
    );
    refused(
        &with("/airlock", json!({"proposers": {"user": "a"}})),
        &["$.airlock.proposers | expected an array, found an object"],
    );
    refused(
        &with("/airlock", json!({"approvers": "*"})),
        &["$.airlock.approvers | expected an array, found a string"],
    );
}

#[test]
fn airlock_section_refusals() {
    refused(
        &with("/airlock", json!([])),
        &["$.airlock | expected an object, found an array"],
    );
    refused(
        &with("/airlock", json!({"socket": "/x"})),
        &["$.airlock.socket | unknown field `socket`"],
    );
    refused(
        &with("/airlock", json!({"socket_dir": 1})),
        &["$.airlock.socket_dir | expected a string, found a number"],
    );
    refused(
        &with("/airlock", json!({"socket_group": ""})),
        &["$.airlock.socket_group | must not be empty"],
    );
    for ttl in [0, 31_622_401] {
        refused(
            &with("/airlock", json!({"proposal_ttl_seconds": ttl})),
            &[&format!(
                "$.airlock.proposal_ttl_seconds | expected a whole number from 1 to 31622400, found {ttl}"
            )],
        );
    }
}

#[test]
fn intake_limits_each_default_on_their_own_within_bounds() {
    let limits = |l: Value| with("/airlock", json!({ "limits": l }));
    // Each key at its lowest and highest accepted value; the others keep
    // their defaults.
    let table: &[(&str, u64, u64)] = &[
        ("rate_window_seconds", 1, 86_400),
        ("evidence_per_window", 1, 1_000_000_000),
        ("proposals_per_window", 1, 1_000_000_000),
        ("max_evidence_bytes", 64, 1_048_576),
        ("max_change_set_bytes", 64, 1_048_576),
        ("ledger_bytes_per_day", 4096, 1_125_899_906_842_624),
    ];
    let defaults = json!({
        "rate_window_seconds": 60,
        "evidence_per_window": 6000,
        "proposals_per_window": 600,
        "max_evidence_bytes": 65536,
        "max_change_set_bytes": 16384,
        "ledger_bytes_per_day": 536870912
    });
    for &(key, min, max) in table {
        for n in [min, max] {
            let got = ok(&limits(json!({ key: n }))).airlock.limits;
            let mut expected = defaults.clone();
            expected[key] = json!(n);
            assert_eq!(serde_json::to_value(&got).unwrap(), expected, "{key}={n}");
        }
        for n in [min - 1, max + 1] {
            refused(
                &limits(json!({ key: n })),
                &[&format!(
                    "$.airlock.limits.{key} | expected a whole number from {min} to {max}, found {n}"
                )],
            );
        }
    }
    let all = ok(&limits(json!({
        "rate_window_seconds": 2,
        "evidence_per_window": 3,
        "proposals_per_window": 4,
        "max_evidence_bytes": 100,
        "max_change_set_bytes": 200,
        "ledger_bytes_per_day": 5000
    })))
    .airlock
    .limits;
    assert_eq!(
        all,
        IntakeLimits {
            rate_window_seconds: 2,
            evidence_per_window: 3,
            proposals_per_window: 4,
            max_evidence_bytes: 100,
            max_change_set_bytes: 200,
            ledger_bytes_per_day: 5000,
        }
    );
    assert_eq!(
        ok(&limits(json!({}))).airlock.limits,
        IntakeLimits::default()
    );
    refused(
        &limits(json!([])),
        &["$.airlock.limits | expected an object, found an array"],
    );
    refused(
        &limits(json!({"per_minute": 1})),
        &["$.airlock.limits.per_minute | unknown field `per_minute`"],
    );
}

// ---------------------------------------------------------------------------
// Names the model must not be handed (the word split behind them).

#[test]
fn argument_names_are_split_into_words_before_the_authority_check() {
    let arg = |name: &str| {
        let mut v = base();
        set(
            &mut v,
            &format!("/capabilities/0/args/{name}"),
            json!({"type": "string"}),
        );
        load_config(&v)
    };
    // Exact names from the list that contain no authority word.
    for name in [
        "limit",
        "org_id",
        "user",
        "db",
        "filter",
        "is_admin",
        "approved_by",
    ] {
        let l = arg(name);
        assert!(l.config.is_none(), "{name}");
        assert!(
            errors(&l)[0].contains("is named like authority"),
            "{name}: {:?}",
            errors(&l)
        );
    }
    // Authority words anywhere, after splitting on `_`, `.`, `-` and
    // lower-to-upper case changes (a digit counts as lower case).
    for name in [
        "TENANT",
        "Tenant_ID",
        "owner.tenant",
        "owner-tenant",
        "ownerTenant",
        "v2Table",
        "sort__column",
        "target_table",
        "Sort_Columns",
    ] {
        let l = arg(name);
        assert!(l.config.is_none(), "{name}");
        assert_eq!(
            errors(&l)[0],
            format!(
                "$.capabilities[0].args{} | argument `{name}` is named like authority or query shape; the model must never choose tenant, identity, role, table, column or SQL",
                if name.contains(['.', '-']) {
                    format!("[\"{name}\"]")
                } else {
                    format!(".{name}")
                }
            ),
            "{name}"
        );
    }
    // Names that only look close are fine.
    for name in ["tenantish", "Columnar", "xtable", "TENANTX", "note"] {
        let l = arg(name);
        let authority: Vec<_> = errors(&l)
            .into_iter()
            .filter(|e| e.contains("named like authority"))
            .collect();
        assert_eq!(authority, Vec::<String>::new(), "{name}");
    }
}

#[test]
fn capability_names_may_not_contain_forbidden_words() {
    let name = |n: &str| load_config(&with("/capabilities/0/name", json!(n)));
    for (n, word) in [
        ("billing.approveInvoice", "approve"),
        ("billing.Approve", "approve"),
        ("billing.sql_view", "sql"),
        ("grant.read", "grant"),
        ("billing.x9Commit", "commit"),
        ("billing.APPROVE", "approve"),
    ] {
        let l = name(n);
        assert_eq!(
            errors(&l),
            [format!(
                "$.capabilities[0].name | capability names may not contain `{word}`: the model must never be offered SQL, approval or commit tools"
            )],
            "{n}"
        );
    }
    for n in [
        "billing.approvedList",
        "billing.sqlite_view",
        "billing.regrant",
    ] {
        assert!(name(n).config.is_some(), "{n}");
    }
}

// ---------------------------------------------------------------------------
// The cursor's number and column-list readers.

#[test]
fn numbers_are_read_as_written() {
    let mut v = base();
    set(
        &mut v,
        "/capabilities/0/args/amount",
        json!({"type": "number", "minimum": -2.5, "maximum": 7}),
    );
    let cfg = ok(&v);
    let a = cfg.capabilities[0].arg("amount").unwrap();
    assert_eq!(a.minimum, Some(-2.5));
    assert_eq!(a.maximum, Some(7.0));
    assert_eq!(cfg.capabilities[0].arg("invoice_id").unwrap().minimum, None);
    for (bad, name) in [(json!("1"), "a string"), (json!(true), "a boolean")] {
        let mut v = base();
        set(
            &mut v,
            "/capabilities/0/args/amount",
            json!({"type": "number", "minimum": bad}),
        );
        let l = refused(
            &v,
            &[&format!(
                "$.capabilities[0].args.amount.minimum | expected a number, found {name}"
            )],
        );
        assert_eq!(fix(&l), "write a JSON number");
    }
}

#[test]
fn column_lists_are_non_empty_unique_identifiers() {
    let cols = |c: Value| with("/capabilities/0/visible_columns", c);
    assert_eq!(
        ok(&cols(json!(["id", "tenant_id", "status", "_x9"]))).capabilities[0].visible_columns,
        ["id", "tenant_id", "status", "_x9"]
    );
    let l = refused(
        &cols(json!([])),
        &["$.capabilities[0].visible_columns | must list at least one column"],
    );
    assert_eq!(fix(&l), "name the columns, e.g. [\"status\"]");
    refused(
        &cols(json!("id")),
        &["$.capabilities[0].visible_columns | expected an array, found a string"],
    );
    let l = refused(
        &cols(json!(["id", "tenant_id", 5])),
        &["$.capabilities[0].visible_columns[2] | expected a column name, found a number"],
    );
    assert_eq!(fix(&l), "write the column name as a string");
    let l = refused(
        &cols(json!(["id", "tenant_id", "id"])),
        &["$.capabilities[0].visible_columns[2] | column `id` is listed twice"],
    );
    assert_eq!(fix(&l), "list each column once");
    refused(
        &cols(json!(["id", "tenant_id", "a-b"])),
        &["$.capabilities[0].visible_columns[2] | `a-b` is not a safe SQL identifier"],
    );
}

#[test]
fn identifiers_are_read_as_written() {
    let t = ok(&base()).capabilities[0].target.clone();
    assert_eq!(
        (
            t.schema.as_str(),
            t.table.as_str(),
            t.primary_key.as_str(),
            t.tenant_key.as_deref()
        ),
        ("public", "invoices", "id", Some("tenant_id"))
    );
    refused(
        &without("/capabilities/0/target/schema"),
        &["$.capabilities[0].target.schema | missing required field `schema`"],
    );
    refused(
        &with("/capabilities/0/target/schema", json!("")),
        &["$.capabilities[0].target.schema | must not be empty"],
    );
    refused(
        &with("/capabilities/0/target/tenant_key", json!("tenant id")),
        &["$.capabilities[0].target.tenant_key | `tenant id` is not a safe SQL identifier"],
    );
}

#[test]
fn metrics_in_synapsor_runners_shape_with_the_executors_listener() {
    use airlock_policy::config::MetricsSection;
    assert_eq!(ok(&base()).metrics, MetricsSection::default());
    let c = ok(&with(
        "/metrics",
        json!({"enabled": true, "token_env": "AIRLOCK_METRICS_TOKEN"}),
    ));
    assert_eq!(
        c.metrics,
        MetricsSection {
            enabled: true,
            token_env: Some("AIRLOCK_METRICS_TOKEN".into()),
            executor_listen: None,
        }
    );
    // On loopback the executor's listener needs no token; off it, it does.
    let c = ok(&with(
        "/metrics",
        json!({"enabled": true, "executor_listen": "127.0.0.1:9465"}),
    ));
    assert_eq!(
        c.metrics.executor_listen,
        Some("127.0.0.1:9465".parse().unwrap())
    );
    assert!(c.metrics.enabled);
    let l = refused(
        &with(
            "/metrics",
            json!({"enabled": true, "executor_listen": "0.0.0.0:9465"}),
        ),
        &[
            "$.metrics.executor_listen | the executor's metrics would be served on 0.0.0.0:9465, off loopback, without a token",
        ],
    );
    assert!(fix(&l).starts_with("add \"token_env\""));
    let c = ok(&with(
        "/metrics",
        json!({"enabled": true, "executor_listen": "0.0.0.0:9465", "token_env": "T"}),
    ));
    assert_eq!(
        c.metrics.executor_listen,
        Some("0.0.0.0:9465".parse().unwrap())
    );
    let l = refused(
        &with("/metrics", json!({"executor_listen": "localhost"})),
        &["$.metrics.executor_listen | `localhost` is not an address and port"],
    );
    assert_eq!(fix(&l), "write host:port, e.g. \"127.0.0.1:9465\"");
    refused(
        &with("/metrics", json!({"enabled": "yes"})),
        &["$.metrics.enabled | expected true or false, found a string"],
    );
    refused(
        &with("/metrics", json!({"path": "/m"})),
        &["$.metrics.path | unknown field `path`"],
    );
}
