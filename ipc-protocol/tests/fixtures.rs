//! The golden fixtures in `fixtures/` and the reviewer's document
//! `docs/ipc-protocol.md` against the code: every fixture round-trips
//! through the strict decoder unchanged, every message type has a fixture,
//! and every message type, error code, proposal state, limit and field the
//! fixtures use is named in the document — so neither can drift from the
//! code.

// Helpers outside `#[test]` functions fail the test the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock_ipc::limits::{MAX_FRAME_BYTES, MAX_JSON_DEPTH, MAX_ROWS_PER_READ};
use airlock_ipc::message::{DecodeError, ProposalState};
use airlock_ipc::{ErrorCode, Request, RequestFrame, Response, ResponseFrame};
use airlock_policy::change_set::{ChangeSet, Violation, verify};
use airlock_policy::config::Engine;
use airlock_policy::statement::select_row;
use serde_json::{Value, json};

const DOC: &str = include_str!("../../docs/ipc-protocol.md");
const LIMITS_RS: &str = include_str!("../src/limits.rs");
const REFERENCE_CONFIG: &str =
    include_str!("../../tests/fixtures/reference/airlock.reference.json");

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// (file stem, raw bytes), sorted by name.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/ exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let stem = p
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("UTF-8 file name")
                .to_owned();
            (stem, std::fs::read(&p).expect("readable fixture"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures found in {:?}", fixtures_dir());
    out
}

fn fixture(stem: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(format!("{stem}.json")))
        .unwrap_or_else(|e| panic!("fixture {stem}.json: {e}"))
}

fn fixture_value(stem: &str) -> Value {
    serde_json::from_slice(&fixture(stem)).expect("fixture is JSON")
}

/// `request` or `response`, and the message type, from a file stem.
/// A stem may carry a variant after the type
/// (`request.submit_proposal.bounded_set`).
fn split_stem(stem: &str) -> (&str, &str) {
    let (direction, rest) = stem.split_once('.').unwrap_or_else(|| {
        panic!("fixture `{stem}` is not named <request|response>.<type>[.<variant>].json")
    });
    (direction, rest.split('.').next().unwrap_or(rest))
}

// ---------------------------------------------------------------------------
// (a) Round trip.

#[test]
fn every_fixture_round_trips_unchanged() {
    for (stem, bytes) in fixtures() {
        let expected: Value = serde_json::from_slice(&bytes).expect("fixture is JSON");
        let (direction, kind) = split_stem(&stem);
        let actual = match direction {
            "request" => {
                let frame = RequestFrame::decode(&bytes)
                    .unwrap_or_else(|(_, e)| panic!("{stem}: request does not decode: {e}"));
                assert_eq!(frame.request.type_name(), kind, "{stem}: type");
                // Encoding and decoding again is stable too.
                let again = RequestFrame::decode(&frame.encode())
                    .unwrap_or_else(|(_, e)| panic!("{stem}: re-encoded request: {e}"));
                assert_eq!(again, frame, "{stem}: encode/decode is not stable");
                frame.to_json()
            }
            "response" => {
                let frame = ResponseFrame::decode(&bytes)
                    .unwrap_or_else(|(_, e)| panic!("{stem}: response does not decode: {e}"));
                assert_eq!(frame.response.type_name(), kind, "{stem}: type");
                let again = ResponseFrame::decode(&frame.encode())
                    .unwrap_or_else(|(_, e)| panic!("{stem}: re-encoded response: {e}"));
                assert_eq!(again, frame, "{stem}: encode/decode is not stable");
                frame.to_json()
            }
            other => panic!("fixture `{stem}`: unknown prefix `{other}`"),
        };
        assert_eq!(
            actual,
            expected,
            "{stem}: re-encoding lost or added something:\n{}",
            serde_json::to_string_pretty(&actual).unwrap_or_default()
        );
    }
}

#[test]
fn fixtures_are_pretty_printed_with_two_spaces() {
    for (stem, bytes) in fixtures() {
        let value: Value = serde_json::from_slice(&bytes).expect("fixture is JSON");
        let pretty = format!(
            "{}\n",
            serde_json::to_string_pretty(&value).expect("serializable")
        );
        assert_eq!(
            String::from_utf8(bytes).expect("UTF-8"),
            pretty,
            "{stem}.json is not pretty-printed with a 2-space indent and a final newline"
        );
    }
}

// ---------------------------------------------------------------------------
// (b) Coverage of the message sets.

#[test]
fn every_message_type_has_a_fixture_and_every_fixture_a_known_type() {
    let stems: BTreeSet<String> = fixtures().into_iter().map(|(s, _)| s).collect();
    for kind in Request::TYPES {
        assert!(
            stems.contains(&format!("request.{kind}")),
            "no fixture request.{kind}.json"
        );
    }
    for kind in Response::TYPES {
        assert!(
            stems.contains(&format!("response.{kind}")),
            "no fixture response.{kind}.json"
        );
    }
    for stem in &stems {
        let (direction, kind) = split_stem(stem);
        let known = match direction {
            "request" => Request::TYPES.contains(&kind),
            "response" => Response::TYPES.contains(&kind),
            _ => false,
        };
        assert!(known, "fixture {stem}.json names no message type");
    }
}

// ---------------------------------------------------------------------------
// (c) The document names everything the code has.

/// Whether the document names `word` in backticks. An empty or blank name
/// names nothing (the document's code fences contain two backticks in a
/// row, so a bare lookup of "``" would always succeed), nor does a name
/// with a backtick of its own.
fn doc_names(word: &str) -> bool {
    !word.trim().is_empty() && !word.contains('`') && DOC.contains(&format!("`{word}`"))
}

#[test]
fn doc_names_finds_only_real_names() {
    assert!(DOC.contains("``"), "the trap this guards against exists");
    assert!(!doc_names(""));
    assert!(!doc_names(" "));
    assert!(!doc_names("`"));
    assert!(!doc_names("no_such_name_in_the_document"));
    assert!(doc_names("hello"));
    assert!(doc_names("MAX_FRAME_BYTES"));
}

#[test]
fn the_document_names_every_message_type() {
    for kind in Request::TYPES.iter().chain(Response::TYPES) {
        assert!(
            doc_names(kind),
            "docs/ipc-protocol.md does not mention `{kind}`"
        );
    }
}

#[test]
fn the_document_names_every_error_code() {
    for code in ErrorCode::ALL {
        assert!(
            doc_names(code.as_str()),
            "docs/ipc-protocol.md does not mention error code `{}`",
            code.as_str()
        );
    }
}

#[test]
fn the_document_names_every_proposal_state() {
    for state in ProposalState::ALL {
        assert!(
            doc_names(state.as_str()),
            "docs/ipc-protocol.md does not mention state `{}`",
            state.as_str()
        );
    }
}

#[test]
fn the_document_names_every_limit() {
    let names: Vec<&str> = LIMITS_RS
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub const "))
        .filter_map(|rest| rest.split(':').next())
        .map(str::trim)
        .collect();
    for expected in ["MAX_FRAME_BYTES", "MAX_JSON_DEPTH", "IDLE_TIMEOUT"] {
        assert!(
            names.contains(&expected),
            "limit extraction from limits.rs is broken (no {expected})"
        );
    }
    for name in names {
        assert!(
            doc_names(name),
            "docs/ipc-protocol.md does not mention limit `{name}`"
        );
    }
}

/// Keys whose values are data (column names, argument names, states), not
/// protocol fields.
const DATA_MAPS: &[&str] = &[
    "args", "rows", "before", "patch", "after", "details",
    // An Explore plan: the model's question, in the plan grammar of
    // `airlock_policy::explore::plan`, not protocol fields.
    "plan",
];

fn collect_field_names(v: &Value, parent: Option<&str>, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            // `stats.proposals` is a map keyed by state.
            if parent.is_some_and(|p| DATA_MAPS.contains(&p)) {
                return;
            }
            for (k, child) in map {
                out.insert(k.clone());
                if !(k == "proposals" && child.is_object()) {
                    collect_field_names(child, Some(k), out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_field_names(item, parent, out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_names_every_field_and_links_every_fixture() {
    for (stem, bytes) in fixtures() {
        let value: Value = serde_json::from_slice(&bytes).expect("fixture is JSON");
        let mut fields = BTreeSet::new();
        collect_field_names(&value, None, &mut fields);
        for field in fields {
            assert!(
                doc_names(&field),
                "docs/ipc-protocol.md does not mention field `{field}` (used in {stem}.json)"
            );
        }
        let link = format!("ipc-protocol/fixtures/{stem}.json");
        assert!(
            DOC.contains(&link),
            "docs/ipc-protocol.md does not link {link}"
        );
    }
}

// ---------------------------------------------------------------------------
// The fixtures are realistic: they are what the policy and limits produce.

#[test]
fn welcome_advertises_the_real_limits() {
    let w = fixture_value("response.welcome");
    let limits = &w["body"]["limits"];
    assert_eq!(limits["max_frame_bytes"], json!(MAX_FRAME_BYTES));
    assert_eq!(limits["max_json_depth"], json!(MAX_JSON_DEPTH));
    assert_eq!(limits["max_rows_per_read"], json!(MAX_ROWS_PER_READ));
    assert_eq!(w["body"]["protocol"], json!(airlock_ipc::PROTOCOL));
    assert_eq!(
        fixture_value("request.hello")["body"]["protocol"],
        json!(airlock_ipc::PROTOCOL)
    );
}

fn reference_config() -> airlock_policy::Config {
    airlock_policy::load_config_str(REFERENCE_CONFIG)
        .config
        .expect("the reference config loads")
}

#[test]
fn the_submitted_change_set_is_what_the_executor_would_rebuild() {
    let config = reference_config();
    let submit = fixture_value("request.submit_proposal");
    let submitted: ChangeSet =
        serde_json::from_value(submit["body"]["change_set"].clone()).expect("change set");
    let rebuilt = verify(&config, &submitted, &|t| t == "acme").expect("fixture verifies");
    assert_eq!(rebuilt, submitted);

    let recorded = fixture_value("response.proposal_recorded");
    let stored: ChangeSet =
        serde_json::from_value(recorded["body"]["change_set"].clone()).expect("change set");
    assert_eq!(stored, rebuilt);
    assert_eq!(recorded["body"]["proposal_hash"], json!(rebuilt.hash()));
    let detail = fixture_value("response.proposal");
    assert_eq!(detail["body"]["proposal_hash"], json!(rebuilt.hash()));
}

/// The reference config plus the bounded-set capability of the set fixture.
fn set_config() -> airlock_policy::Config {
    let mut v: Value = serde_json::from_str(REFERENCE_CONFIG).expect("JSON");
    v["capabilities"].as_array_mut().expect("capabilities").push(json!({
        "name": "billing.close_overdue_invoices",
        "kind": "proposal",
        "source": "app_postgres",
        "context": "local_operator",
        "target": {"schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
        "args": {"reason": {"type": "string", "required": true, "max_length": 200}},
        "visible_columns": ["id", "tenant_id", "status", "balance_cents", "version"],
        "evidence": "required",
        "max_rows": 1,
        "patch": {"status": {"fixed": "closed"}},
        "allowed_columns": ["status"],
        "conflict_guard": {"column": "version"},
        "operation": {
            "kind": "update",
            "cardinality": "set",
            "selection": {"all": [{"column": "status", "operator": "eq", "value": "overdue"}]},
            "max_rows": 10,
            "aggregate_bounds": [{"column": "balance_cents", "measure": "before", "maximum": 20000}],
            "version_advance": {"column": "version", "strategy": "integer_increment"}
        },
        "approval": {"mode": "human", "required_role": "billing_lead"}
    }));
    airlock_policy::load_config(&v)
        .config
        .expect("the set config loads")
}

#[test]
fn the_set_fixture_is_what_the_policy_freezes_and_verifies() {
    let config = set_config();
    let cap = config
        .capability("billing.close_overdue_invoices")
        .expect("capability");
    let args = airlock_policy::args::validate_args(cap, Some(&json!({"reason": "quarter close"})))
        .expect("args");
    let row = |id: &str, balance: i64, version: i64| {
        json!({"id": id, "tenant_id": "acme", "status": "overdue", "balance_cents": balance, "version": version})
            .as_object()
            .cloned()
            .expect("object")
    };
    let ctx = airlock_policy::context::TrustedContext {
        tenant_id: "acme".into(),
        principal: "support_agent_17".into(),
        source: airlock_policy::config::ContextProvider::Environment,
    };
    let built = airlock_policy::bounded_set::build(
        cap,
        &args,
        &ctx,
        &[row("INV-1", 5000, 1), row("INV-2", 10000, 2)],
    )
    .expect("the set builds");
    let frame = json!({
        "id": 12,
        "type": "submit_proposal",
        "body": {"change_set": built, "evidence_id": "ev_0f3a9c2b7d1e4f60a8b5"}
    });
    let stem = "request.submit_proposal.bounded_set";
    if std::env::var_os("AIRLOCK_WRITE_FIXTURES").is_some() {
        let text = format!("{}\n", serde_json::to_string_pretty(&frame).expect("JSON"));
        std::fs::write(fixtures_dir().join(format!("{stem}.json")), text).expect("write");
    }
    let fixture = fixture_value(stem);
    assert_eq!(fixture, frame, "regenerate with AIRLOCK_WRITE_FIXTURES=1");
    let submitted: ChangeSet =
        serde_json::from_value(fixture["body"]["change_set"].clone()).expect("change set");
    assert_eq!(
        verify(&config, &submitted, &|t| t == "acme").expect("verifies"),
        submitted
    );
}

#[test]
fn the_recorded_read_has_the_real_query_fingerprint() {
    let config = reference_config();
    let read = fixture_value("request.record_read");
    let cap = config
        .capability(read["body"]["capability"].as_str().expect("capability"))
        .expect("capability exists");
    let fingerprint = select_row(Engine::Postgres, cap, false).fingerprint();
    assert_eq!(read["body"]["query_fingerprint"], json!(fingerprint));
    let rows = read["body"]["rows"].as_array().expect("rows");
    assert!(rows.len() <= MAX_ROWS_PER_READ);
    for row in rows {
        assert_eq!(row["tenant_id"], read["body"]["context"]["tenant_id"]);
    }
}

#[test]
fn the_error_fixture_lists_the_violations_verify_reports() {
    // The forged change set the error answers: late_fee_cents altered and a
    // column outside the allowed set added (after kept consistent).
    let mut forged = fixture_value("request.submit_proposal")["body"]["change_set"].clone();
    for part in ["patch", "after"] {
        forged[part]["late_fee_cents"] = json!(5000);
        forged[part]["balance_cents"] = json!(0);
    }
    let forged: ChangeSet = serde_json::from_value(forged).expect("change set");
    let violations = verify(&reference_config(), &forged, &|t| t == "acme").expect_err("refused");

    let error = fixture_value("response.error");
    assert_eq!(error["body"]["code"], json!("policy_violation"));
    let listed: Vec<Violation> =
        serde_json::from_value(error["body"]["details"]["violations"].clone())
            .expect("details.violations has the policy crate's Violation shape");
    assert_eq!(listed, violations);
}

fn is_sha256(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…]Z`.
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    let fraction_ok = match b.get(19) {
        Some(b'Z') => b.len() == 20,
        Some(b'.') => b.len() > 21 && digits(20..b.len() - 1),
        _ => false,
    };
    b.len() >= 20
        && fraction_ok
        && b[b.len() - 1] == b'Z'
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
}

fn check_formats(v: &Value, key: Option<&str>, stem: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                check_formats(child, Some(k), stem);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| check_formats(i, key, stem)),
        Value::String(s) => match key.unwrap_or_default() {
            "proposal_id" => assert!(
                s.starts_with("wrp_") || (s == "latest" && stem == "request.show_proposal"),
                "{stem}: proposal id {s}"
            ),
            "evidence_id" => assert!(s.starts_with("ev_"), "{stem}: evidence id {s}"),
            "hash" | "proposal_hash" | "config_hash" | "query_fingerprint" => {
                assert!(is_sha256(s), "{stem}: hash {s}")
            }
            "at" | "recorded_at" | "created_at" | "expires_at" | "updated_at" => {
                assert!(is_rfc3339_utc(s), "{stem}: timestamp {s}")
            }
            _ => {}
        },
        _ => {}
    }
}

#[test]
fn ids_hashes_and_timestamps_have_their_documented_shapes() {
    for (stem, bytes) in fixtures() {
        let value: Value = serde_json::from_slice(&bytes).expect("fixture is JSON");
        check_formats(&value, None, &stem);
    }
}

// ---------------------------------------------------------------------------
// (d) Strict decoding refuses what the fixtures do not allow.

fn request_with(stem: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = fixture_value(stem);
    edit(&mut v);
    serde_json::to_vec(&v).expect("serializable")
}

fn decode_error(bytes: &[u8]) -> (Option<u64>, DecodeError) {
    match RequestFrame::decode(bytes) {
        Ok(frame) => panic!("decoded what should be refused: {frame:?}"),
        Err(e) => e,
    }
}

#[test]
fn an_unknown_body_field_is_rejected() {
    for stem in [
        "request.submit_proposal",
        "request.approve",
        "request.stats",
    ] {
        let bytes = request_with(stem, |v| v["body"]["state"] = json!("approved"));
        let (id, err) = decode_error(&bytes);
        assert_eq!(err.code(), ErrorCode::InvalidRequest, "{stem}: {err}");
        assert_eq!(id, fixture_value(stem)["id"].as_u64(), "{stem}: id kept");
    }
    // Nested too: an extra field inside the change set's guards.
    let bytes = request_with("request.submit_proposal", |v| {
        v["body"]["change_set"]["guards"]["skip_conflict_check"] = json!(true);
    });
    assert_eq!(decode_error(&bytes).1.code(), ErrorCode::InvalidRequest);
    // And in a response.
    let mut v = fixture_value("response.decision");
    v["body"]["approved_by_model"] = json!(true);
    let bytes = serde_json::to_vec(&v).expect("serializable");
    assert!(ResponseFrame::decode(&bytes).is_err());
}

#[test]
fn an_unknown_envelope_field_is_rejected() {
    let bytes = request_with("request.approve", |v| v["role"] = json!("operator"));
    let (id, err) = decode_error(&bytes);
    assert_eq!(err.code(), ErrorCode::MalformedFrame, "{err}");
    assert_eq!(id, Some(2));
}

#[test]
fn a_duplicate_key_is_rejected() {
    // In the envelope and deep in a body.
    let text = String::from_utf8(fixture("request.hello")).expect("UTF-8");
    let dup_envelope = text.replacen("\"id\": 0,", "\"id\": 0, \"id\": 7,", 1);
    assert_ne!(dup_envelope, text);
    assert_eq!(
        decode_error(dup_envelope.as_bytes()).1.code(),
        ErrorCode::MalformedFrame
    );
    let text = String::from_utf8(fixture("request.submit_proposal")).expect("UTF-8");
    let dup_body = text.replacen(
        "\"late_fee_cents\": 0,",
        "\"late_fee_cents\": 0, \"late_fee_cents\": 5000,",
        1,
    );
    assert_ne!(dup_body, text);
    assert_eq!(
        decode_error(dup_body.as_bytes()).1.code(),
        ErrorCode::MalformedFrame
    );
}

#[test]
fn hello_with_a_wrong_role_is_rejected() {
    for role in [json!("admin"), json!("Operator"), json!(""), json!(1)] {
        let bytes = request_with("request.hello", |v| v["body"]["role"] = role.clone());
        let (id, err) = decode_error(&bytes);
        assert_eq!(err.code(), ErrorCode::InvalidRequest, "{role}: {err}");
        assert_eq!(id, Some(0));
    }
}

#[test]
fn other_envelope_damage_is_rejected() {
    let unknown_type = request_with("request.approve", |v| v["type"] = json!("apply_now"));
    assert_eq!(
        decode_error(&unknown_type).1.code(),
        ErrorCode::UnknownMessage
    );
    let negative_id = request_with("request.approve", |v| v["id"] = json!(-1));
    let (id, err) = decode_error(&negative_id);
    assert_eq!((id, err.code()), (None, ErrorCode::MalformedFrame));
    let body_not_object = request_with("request.stats", |v| v["body"] = json!([]));
    assert_eq!(
        decode_error(&body_not_object).1.code(),
        ErrorCode::MalformedFrame
    );
    let mut trailing = fixture("request.stats");
    trailing.extend_from_slice(b"{}");
    assert_eq!(decode_error(&trailing).1.code(), ErrorCode::MalformedFrame);
    // A response type is not a request.
    let response_as_request = fixture("response.decision");
    assert_eq!(
        decode_error(&response_as_request).1.code(),
        ErrorCode::UnknownMessage
    );
}

// ---------------------------------------------------------------------------
// Statements of the document that are checked against the code.

#[test]
fn the_example_exchange_in_the_document_is_the_fixtures() {
    for stem in [
        "request.hello",
        "response.welcome",
        "request.submit_proposal",
        "response.proposal_recorded",
    ] {
        let text = String::from_utf8(fixture(stem)).expect("UTF-8");
        assert!(
            DOC.contains(&format!("```json\n{text}```")),
            "the example exchange in docs/ipc-protocol.md does not show {stem}.json verbatim"
        );
    }
    // "The compact `hello` is 120 bytes … `00 00 00 78`".
    let hello = RequestFrame::decode(&fixture("request.hello"))
        .expect("decodes")
        .encode();
    let framed = airlock_ipc::frame::encode(&hello).expect("small frame");
    assert_eq!(hello.len(), 120);
    assert_eq!(framed[..4], [0x00, 0x00, 0x00, 0x78]);
    assert!(DOC.contains("is 120 bytes") && DOC.contains("`00 00 00 78`"));
}

#[test]
fn nesting_is_limited_as_documented() {
    // The envelope counts as level 1: 32 levels pass, the 33rd is refused.
    let nested = |levels: usize| {
        let inner = levels - 1;
        format!(r#"{{"a":{}{}}}"#, "[".repeat(inner), "]".repeat(inner))
    };
    assert!(airlock_ipc::frame::parse_object(nested(MAX_JSON_DEPTH).as_bytes()).is_ok());
    assert!(airlock_ipc::frame::parse_object(nested(MAX_JSON_DEPTH + 1).as_bytes()).is_err());
    assert!(DOC.contains("the envelope counting as level 1"));
}

// ---------------------------------------------------------------------------
// Scoped Explore: the plan is one the executor's validation accepts, and
// the audit and budgets are what the budget decisions give for it.

/// The reference config with a Scoped Explore boundary over its invoices.
fn explore_boundary() -> airlock_policy::explore::Boundary {
    let mut v: Value = serde_json::from_str(REFERENCE_CONFIG).expect("JSON");
    v["airlock"] = json!({"explore": {
        "source": "app_postgres",
        "resources": {"invoices": {
            "schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id",
            "fields": {
                "status": {"type": "text", "uses": ["dimension", "filter"]},
                "balance_cents": {"type": "number", "uses": ["measure"], "measures": ["sum", "avg"]},
                "updated_at": {"type": "time", "uses": ["time"], "buckets": ["month"]}
            }
        }}
    }});
    airlock_policy::load_config_str(&v.to_string())
        .config
        .expect("the reference config with a boundary loads")
        .airlock
        .explore
        .expect("the boundary")
}

#[test]
fn the_explore_fixtures_are_what_validation_and_the_budgets_give() {
    use airlock_policy::explore::budget::{self, Audited, Outcome, Window};
    use airlock_policy::explore::validate_plan;
    let boundary = explore_boundary();
    let reserve = fixture_value("request.explore_reserve");
    let valid = validate_plan(&boundary, &reserve["body"]["plan"]).expect("the plan validates");
    let charge = valid.charge(&boundary);
    let limits = &boundary.limits;
    let now = 1_781_965_870_027; // 2026-06-20T14:31:10.027Z
    let admitted = budget::reserve(limits, &Window::default(), &charge, now).expect("admitted");
    let reserved = fixture_value("response.explore_reserved");
    assert_eq!(reserved["body"]["replay"], json!(admitted.replay));
    assert_eq!(reserved["body"]["remaining"], json!(admitted.remaining));

    let commit = fixture_value("request.explore_commit");
    let outcome = Outcome {
        cells: commit["body"]["cells"].as_u64().expect("cells"),
        suppressed_groups: commit["body"]["suppressed_groups"]
            .as_u64()
            .expect("suppressed_groups"),
        complete: commit["body"]["complete"].as_bool().expect("complete"),
    };
    let charges = budget::commit(&Window::default(), &charge, &outcome, now).expect("released");
    let after = Window {
        audited: vec![Audited {
            charged_ms: now,
            resource: Some(charge.resource.clone()),
            variant: Some(charge.variant.clone()),
            cohort: Some(charge.cohort.clone()),
            charges,
        }],
        pending: Vec::new(),
    };
    let committed = fixture_value("response.explore_committed");
    assert_eq!(
        committed["body"]["remaining"],
        json!(after.remaining(limits, &charge.resource, now))
    );

    // The audit's released entry is that query: its normalized plan and
    // variant, its outcome and what it released.
    let audit = fixture_value("response.explore_audit");
    let entries = audit["body"]["entries"].as_array().expect("entries");
    let released = entries
        .iter()
        .find(|e| e["outcome"] == "suppressed")
        .expect("a suppressed entry");
    assert_eq!(released["plan"], valid.normalized());
    assert_eq!(released["variant"], json!(charge.variant));
    assert_eq!(released["cells"], json!(outcome.cells));
    assert_eq!(
        released["suppressed_groups"],
        json!(outcome.suppressed_groups)
    );
}
