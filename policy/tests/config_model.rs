//! The config model's own decisions (`policy/src/config.rs`): look-ups,
//! the executor and context a capability resolves to, the environment
//! variables that carry write authority or that the proposer needs, the
//! columns a row read fetches, intake costs and `NameSet` membership.
//! Configs are written out literally here, not loaded, so these tests pin
//! the model itself.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use airlock_policy::Config;
use airlock_policy::config::{
    AirlockSection, Approval, ArgSpec, ArgType, Bounds, Capability, CommandHandlerSpec,
    ConflictGuard, ContextProvider, ContextSpec, DEFAULT_HANDLER_TIMEOUT_MS,
    DEFAULT_PROPOSAL_TTL_SECONDS, DEFAULT_STATEMENT_TIMEOUT_MS, Engine, EvidenceMode, ExecutorSpec,
    HttpHandlerSpec, HttpMethod, IntakeLimits, Kind, MAX_ROWS_LIMIT, Mode, NameSet, PatchValue,
    ProposalSpec, ResultFormat, SQL_UPDATE, Source, Storage, Target, TransitionGuard, ValueSource,
};
use serde_json::json;

fn env(name: &str) -> ValueSource {
    ValueSource::Env(name.to_owned())
}

fn ctx(tenant: ValueSource, principal: ValueSource) -> ContextSpec {
    ContextSpec {
        provider: ContextProvider::Environment,
        tenant,
        principal,
    }
}

fn source(read: &str, write: Option<&str>) -> Source {
    Source {
        engine: Engine::Postgres,
        read_url_env: read.to_owned(),
        write_url_env: write.map(str::to_owned),
        statement_timeout_ms: 3_000,
        read_only: false,
    }
}

fn arg(name: &str, ty: ArgType) -> ArgSpec {
    ArgSpec {
        name: name.to_owned(),
        ty,
        required: true,
        max_length: None,
        minimum: None,
        maximum: None,
        enum_values: None,
        description: None,
        format: None,
        items: None,
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn read_cap(name: &str, source: &str, context: Option<&str>) -> Capability {
    Capability {
        name: name.to_owned(),
        kind: Kind::Read,
        description: None,
        returns_hint: None,
        source: source.to_owned(),
        context: context.map(str::to_owned),
        target: Target {
            schema: "public".to_owned(),
            table: "tickets".to_owned(),
            primary_key: "id".to_owned(),
            tenant_key: Some("tenant_id".to_owned()),
            principal_scope_key: None,
        },
        args: vec![
            arg("ticket_id", ArgType::String),
            arg("Note", ArgType::String),
        ],
        lookup_arg: "ticket_id".to_owned(),
        visible_columns: strs(&["subject", "status", "subject", "id"]),
        evidence: EvidenceMode::Required,
        max_rows: 1,
        proposal: None,
        list: None,
        aggregate: None,
    }
}

fn proposal(executor: Option<&str>, guard: ConflictGuard) -> ProposalSpec {
    let mut transition_guards = BTreeMap::new();
    transition_guards.insert(
        "status".to_owned(),
        TransitionGuard {
            from_column: Some("state_before".to_owned()),
            allowed: BTreeMap::from([("open".to_owned(), strs(&["resolved"]))]),
        },
    );
    transition_guards.insert(
        "priority".to_owned(),
        TransitionGuard {
            from_column: None,
            allowed: BTreeMap::new(),
        },
    );
    ProposalSpec {
        executor: executor.map(str::to_owned),
        patch: vec![
            ("status".to_owned(), PatchValue::Fixed(json!("resolved"))),
            (
                "resolution_note".to_owned(),
                PatchValue::FromArg("note".to_owned()),
            ),
            ("subject".to_owned(), PatchValue::FromArg("s".to_owned())),
        ],
        allowed_columns: strs(&["status", "resolution_note", "subject"]),
        numeric_bounds: BTreeMap::from([(
            "priority".to_owned(),
            Bounds {
                minimum: Some(0.0),
                maximum: Some(5.0),
            },
        )]),
        transition_guards,
        conflict_guard: guard,
        approval: Approval::default(),
        operation: airlock_policy::config::Operation::default(),
        reversibility: None,
    }
}

fn proposal_cap(name: &str, p: ProposalSpec) -> Capability {
    Capability {
        kind: Kind::Proposal,
        proposal: Some(p),
        ..read_cap(name, "main_db", None)
    }
}

fn config() -> Config {
    let http = ExecutorSpec::HttpHandler(HttpHandlerSpec {
        url_env: "HOOK_URL".to_owned(),
        method: HttpMethod::Post,
        token_env: Some("HOOK_TOKEN".to_owned()),
        signing_secret_env: Some("HOOK_SIGNING".to_owned()),
        timeout_ms: DEFAULT_HANDLER_TIMEOUT_MS,
    });
    let bare_http = ExecutorSpec::HttpHandler(HttpHandlerSpec {
        url_env: "BARE_URL".to_owned(),
        method: HttpMethod::Put,
        token_env: None,
        signing_secret_env: None,
        timeout_ms: 1,
    });
    let command = ExecutorSpec::CommandHandler(CommandHandlerSpec {
        command_env: "APPLY_CMD".to_owned(),
        timeout_ms: 1,
    });
    Config {
        notifications: Default::default(),
        proposal_freshness: Default::default(),
        metrics: Default::default(),
        session_auth: None,
        http_security: Default::default(),
        version: 1,
        mode: Mode::Review,
        result_format: ResultFormat::V1,
        storage: Storage::default(),
        sources: BTreeMap::from([
            (
                "main_db".to_owned(),
                source("MAIN_READ", Some("MAIN_WRITE")),
            ),
            ("replica".to_owned(), source("REPLICA_READ", None)),
            // Shares its variables with `main_db`: named once.
            (
                "alias_db".to_owned(),
                source("MAIN_READ", Some("MAIN_WRITE")),
            ),
        ]),
        trusted_context: ctx(env("TENANT"), env("PRINCIPAL")),
        contexts: BTreeMap::from([
            (
                "ops".to_owned(),
                ContextSpec {
                    provider: ContextProvider::StaticDev,
                    tenant: ValueSource::Static("acme".to_owned()),
                    principal: env("OPS_PRINCIPAL"),
                },
            ),
            ("same".to_owned(), ctx(env("TENANT"), ValueSource::Unset)),
        ]),
        executors: BTreeMap::from([
            ("hook".to_owned(), http),
            ("bare".to_owned(), bare_http),
            ("cmd".to_owned(), command),
            ("builtin".to_owned(), ExecutorSpec::SqlUpdate),
        ]),
        capabilities: vec![
            read_cap("support.inspect_ticket", "main_db", Some("ops")),
            read_cap("support.inspect_other", "replica", Some("missing")),
            proposal_cap(
                "support.propose_resolution",
                proposal(
                    Some("hook"),
                    ConflictGuard::Column {
                        column: "updated_at".to_owned(),
                    },
                ),
            ),
            proposal_cap(
                "support.propose_weak",
                proposal(Some("nowhere"), ConflictGuard::RowHash),
            ),
            read_cap("support.inspect_unsourced", "gone", None),
        ],
        disabled: vec![],
        airlock: AirlockSection::default(),
    }
}

#[test]
fn defaults_and_limits_are_the_documented_numbers() {
    assert_eq!(DEFAULT_STATEMENT_TIMEOUT_MS, 5_000);
    assert_eq!(DEFAULT_HANDLER_TIMEOUT_MS, 10_000);
    assert_eq!(DEFAULT_PROPOSAL_TTL_SECONDS, 604_800);
    assert_eq!(MAX_ROWS_LIMIT, 100);
    assert_eq!(SQL_UPDATE, "sql_update");
    assert_eq!(
        IntakeLimits::default(),
        IntakeLimits {
            rate_window_seconds: 60,
            evidence_per_window: 6_000,
            proposals_per_window: 600,
            max_evidence_bytes: 65_536,
            max_change_set_bytes: 16_384,
            ledger_bytes_per_day: 536_870_912,
        }
    );
}

#[test]
fn a_capability_is_found_by_its_exact_name_only() {
    let cfg = config();
    let cap = cfg.capability("support.inspect_other").unwrap();
    assert_eq!(cap.name, "support.inspect_other");
    assert_eq!(cap.source, "replica");
    assert_eq!(
        cfg.capability("support.propose_weak").unwrap().name,
        "support.propose_weak"
    );
    for missing in [
        "",
        "support",
        "support.inspect",
        "Support.Inspect_Ticket",
        "support.inspect_ticket ",
        "nope",
    ] {
        assert!(cfg.capability(missing).is_none(), "{missing:?}");
    }
}

#[test]
fn a_capability_uses_its_named_context_else_the_trusted_context() {
    let cfg = config();
    let named = cfg.context_for(cfg.capability("support.inspect_ticket").unwrap());
    assert_eq!(named.provider, ContextProvider::StaticDev);
    assert_eq!(named.tenant, ValueSource::Static("acme".to_owned()));
    assert_eq!(named.principal, env("OPS_PRINCIPAL"));
    // A name that is not in `contexts`, and no name at all: the top level.
    for name in ["support.inspect_other", "support.propose_resolution"] {
        let spec = cfg.context_for(cfg.capability(name).unwrap());
        assert_eq!(spec.provider, ContextProvider::Environment, "{name}");
        assert_eq!(spec.tenant, env("TENANT"), "{name}");
        assert_eq!(spec.principal, env("PRINCIPAL"), "{name}");
    }
}

#[test]
fn a_capability_reads_from_its_named_source() {
    let cfg = config();
    let src = cfg
        .source_for(cfg.capability("support.inspect_other").unwrap())
        .unwrap();
    assert_eq!(src.read_url_env, "REPLICA_READ");
    assert_eq!(src.write_url_env, None);
    let src = cfg
        .source_for(cfg.capability("support.inspect_ticket").unwrap())
        .unwrap();
    assert_eq!(src.read_url_env, "MAIN_READ");
    assert_eq!(src.write_url_env.as_deref(), Some("MAIN_WRITE"));
    assert!(
        cfg.source_for(cfg.capability("support.inspect_unsourced").unwrap())
            .is_none()
    );
}

#[test]
fn a_proposal_uses_its_named_executor_else_the_built_in_sql_update() {
    let cfg = config();
    let named = cfg.executor_for(&proposal(Some("hook"), ConflictGuard::RowHash));
    assert_eq!(named.name, "hook");
    match named.spec {
        ExecutorSpec::HttpHandler(h) => {
            assert_eq!(h.url_env, "HOOK_URL");
            assert_eq!(h.method, HttpMethod::Post);
        }
        other => panic!("expected the http handler, got {other:?}"),
    }
    let cmd = cfg.executor_for(&proposal(Some("cmd"), ConflictGuard::RowHash));
    assert_eq!(cmd.name, "cmd");
    assert!(matches!(cmd.spec, ExecutorSpec::CommandHandler(c) if c.command_env == "APPLY_CMD"));
    for executor in [None, Some("nowhere"), Some("Hook"), Some("")] {
        let r = cfg.executor_for(&proposal(executor, ConflictGuard::RowHash));
        assert_eq!(r.name, "sql_update", "{executor:?}");
        assert!(matches!(r.spec, ExecutorSpec::SqlUpdate), "{executor:?}");
    }
}

#[test]
fn write_authority_is_every_write_handler_token_secret_and_command_variable() {
    let cfg = config();
    assert_eq!(
        cfg.write_authority_env_names(),
        vec![
            "APPLY_CMD",
            "BARE_URL",
            "HOOK_SIGNING",
            "HOOK_TOKEN",
            "HOOK_URL",
            "MAIN_WRITE"
        ]
    );
    let mut bare = config();
    bare.sources.clear();
    bare.executors.clear();
    assert!(bare.write_authority_env_names().is_empty());
}

#[test]
fn the_proposer_needs_read_urls_and_context_variables_only() {
    let cfg = config();
    assert_eq!(
        cfg.proposer_env_names(),
        vec![
            "MAIN_READ",
            "OPS_PRINCIPAL",
            "PRINCIPAL",
            "REPLICA_READ",
            "TENANT"
        ]
    );
    let mut bare = config();
    bare.sources.clear();
    bare.contexts.clear();
    bare.trusted_context = ctx(ValueSource::Static("t".to_owned()), ValueSource::Unset);
    assert!(bare.proposer_env_names().is_empty());
}

#[test]
fn a_context_names_only_its_environment_variables() {
    let cases = [
        (ctx(env("T"), env("P")), vec!["T", "P"]),
        (ctx(env("T"), ValueSource::Unset), vec!["T"]),
        (
            ctx(ValueSource::Static("x".to_owned()), env("P")),
            vec!["P"],
        ),
        (
            ctx(ValueSource::Static("x".to_owned()), ValueSource::Unset),
            vec![],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(spec.env_names().collect::<Vec<_>>(), want, "{spec:?}");
    }
}

#[test]
fn kinds_and_argument_types_have_their_config_spelling() {
    assert_eq!(Kind::Read.as_str(), "read");
    assert_eq!(Kind::Proposal.as_str(), "proposal");
    let types = [
        (ArgType::String, "string"),
        (ArgType::Number, "number"),
        (ArgType::Integer, "integer"),
        (ArgType::Boolean, "boolean"),
    ];
    for (ty, name) in types {
        assert_eq!(ty.as_str(), name);
    }
}

#[test]
fn the_version_column_is_the_column_guard_only() {
    let column = proposal(
        None,
        ConflictGuard::Column {
            column: "updated_at".to_owned(),
        },
    );
    assert_eq!(column.version_column(), Some("updated_at"));
    assert_eq!(
        proposal(None, ConflictGuard::RowHash).version_column(),
        None
    );
}

#[test]
fn an_argument_is_found_by_its_exact_name_only() {
    let cap = read_cap("c", "main_db", None);
    assert_eq!(cap.arg("ticket_id").unwrap().name, "ticket_id");
    assert_eq!(cap.arg("Note").unwrap().name, "Note");
    for missing in ["", "note", "ticket", "ticket_id2", "TICKET_ID"] {
        assert!(cap.arg(missing).is_none(), "{missing:?}");
    }
}

#[test]
fn a_read_fetches_visible_columns_then_keys_deduplicated() {
    let cap = read_cap("c", "main_db", None);
    assert_eq!(
        cap.read_columns(),
        vec!["subject", "status", "id", "tenant_id"]
    );
    let mut single_tenant = read_cap("c", "main_db", None);
    single_tenant.target.tenant_key = None;
    single_tenant.visible_columns = strs(&["subject"]);
    assert_eq!(single_tenant.read_columns(), vec!["subject", "id"]);
}

#[test]
fn a_proposal_also_fetches_patched_version_and_from_columns() {
    let cfg = config();
    let guarded = cfg.capability("support.propose_resolution").unwrap();
    assert_eq!(
        guarded.read_columns(),
        vec![
            "subject",
            "status",
            "id",
            "tenant_id",
            "resolution_note",
            "updated_at",
            "state_before"
        ]
    );
    let weak = cfg.capability("support.propose_weak").unwrap();
    assert_eq!(
        weak.read_columns(),
        vec![
            "subject",
            "status",
            "id",
            "tenant_id",
            "resolution_note",
            "state_before"
        ]
    );
}

#[test]
fn a_record_costs_twice_its_payload_plus_two_kib_saturating() {
    let cases = [
        (0, 2_048),
        (1, 2_050),
        (100, 2_248),
        (65_536, 133_120),
        (u64::MAX / 2 - 1_024, u64::MAX - 1),
        (u64::MAX / 2, u64::MAX),
        (u64::MAX, u64::MAX),
    ];
    for (payload, cost) in cases {
        assert_eq!(IntakeLimits::ledger_cost(payload), cost, "{payload}");
    }
}

#[test]
fn any_contains_every_name() {
    for name in ["", "*", "acme", "ACME", "x y", "\u{e9}"] {
        assert!(NameSet::Any.contains(name), "{name:?}");
    }
}

#[test]
fn only_contains_exactly_the_listed_names() {
    let set = NameSet::Only(strs(&["acme", "globex"]));
    assert!(set.contains("acme"));
    assert!(set.contains("globex"));
    for name in [
        "", "ACME", "Acme", "acm", "acme2", " acme", "acme ", "glob", "*", "initech",
    ] {
        assert!(!set.contains(name), "{name:?}");
    }
    // A listed `*` is a name like any other, not a wildcard.
    let star = NameSet::Only(strs(&["*"]));
    assert!(star.contains("*"));
    assert!(!star.contains("acme"));
    assert!(!star.contains(""));
    // The empty list contains nothing, not even the empty name.
    let empty = NameSet::Only(vec![]);
    for name in ["", "*", "acme"] {
        assert!(!empty.contains(name), "{name:?}");
    }
    // An empty name matches only itself.
    let blank = NameSet::Only(strs(&[""]));
    assert!(blank.contains(""));
    assert!(!blank.contains("acme"));
}
