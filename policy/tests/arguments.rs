//! Argument validation boundaries (issue 19): lengths and values exactly at
//! and one past each bound, enum membership, every type, unknown and
//! missing arguments, and each error code with its message.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use airlock_policy::args::{
    ArgError, ArgErrorCode, DEFAULT_MAX_STRING_CHARS, scalar_eq, validate_args,
};
use airlock_policy::config::{ArgSpec, ArgType, Capability, EvidenceMode, Kind, Target};
use airlock_policy::{Config, load_config_str};
use serde_json::{Map, Value, json};

const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");

fn config() -> Config {
    load_config_str(REFERENCE)
        .config
        .expect("reference config loads")
}

fn spec(name: &str, ty: ArgType) -> ArgSpec {
    ArgSpec {
        name: name.into(),
        ty,
        required: false,
        max_length: None,
        minimum: None,
        maximum: None,
        enum_values: None,
        description: None,
        format: None,
        items: None,
    }
}

fn cap_of(args: Vec<ArgSpec>) -> Capability {
    Capability {
        name: "things.inspect_thing".into(),
        kind: Kind::Read,
        description: None,
        returns_hint: None,
        source: "app_postgres".into(),
        context: None,
        target: Target {
            schema: "public".into(),
            table: "things".into(),
            primary_key: "id".into(),
            tenant_key: Some("tenant_id".into()),
            principal_scope_key: None,
        },
        args,
        lookup_arg: "thing_id".into(),
        visible_columns: vec!["id".into()],
        evidence: EvidenceMode::Required,
        max_rows: 1,
        proposal: None,
        list: None,
        aggregate: None,
    }
}

fn err(argument: &str, code: ArgErrorCode, message: &str) -> ArgError {
    ArgError {
        argument: argument.into(),
        code,
        message: message.into(),
    }
}

fn one(cap: &Capability, name: &str, value: Value) -> Result<Value, Vec<ArgError>> {
    let mut args = Map::new();
    args.insert(name.into(), value);
    validate_args(cap, Some(&Value::Object(args))).map(|out| out[name].clone())
}

fn fails(cap: &Capability, name: &str, value: Value) -> ArgError {
    let mut errs = one(cap, name, value.clone()).expect_err("must be refused");
    assert_eq!(errs.len(), 1, "{value}: {errs:?}");
    errs.remove(0)
}

#[test]
fn errors_display_their_message() {
    let e = err(
        "x",
        ArgErrorCode::TooLong,
        "`x` is 5 characters; the limit is 4",
    );
    assert_eq!(e.to_string(), "`x` is 5 characters; the limit is 4");
}

#[test]
fn arguments_must_be_an_object_or_absent() {
    let cfg = config();
    let cap = cfg.capability("billing.inspect_invoice").unwrap();
    for args in [
        json!([]),
        json!(["INV-1"]),
        json!("INV-1"),
        json!(5),
        json!(true),
    ] {
        assert_eq!(
            validate_args(cap, Some(&args)),
            Err(vec![err(
                "",
                ArgErrorCode::NotAnObject,
                "arguments must be a JSON object"
            )]),
            "{args}"
        );
    }
    let missing = Err(vec![err(
        "invoice_id",
        ArgErrorCode::MissingArgument,
        "missing required argument `invoice_id` (string)",
    )]);
    assert_eq!(validate_args(cap, None), missing);
    assert_eq!(validate_args(cap, Some(&Value::Null)), missing);
    assert_eq!(validate_args(cap, Some(&json!({}))), missing);
    assert_eq!(
        validate_args(cap, Some(&json!({"invoice_id": null}))),
        missing
    );
    // A capability without arguments takes nothing.
    let none = cap_none();
    assert_eq!(validate_args(&none, None), Ok(Map::new()));
    assert_eq!(validate_args(&none, Some(&json!({}))), Ok(Map::new()));
}

fn cap_none() -> Capability {
    cap_of(vec![])
}

#[test]
fn valid_arguments_come_back_unchanged_and_only_declared_ones() {
    let cfg = config();
    let cap = cfg.capability("orders.propose_status_change").unwrap();
    let args =
        json!({"order_id": "O-1", "status": "canceled", "reason": "line 1\nline 2\r\n\tend"});
    assert_eq!(
        validate_args(cap, Some(&args)),
        Ok(args.as_object().cloned().unwrap())
    );
    // Optional arguments given as null are dropped.
    let mut opt = spec("note", ArgType::String);
    opt.required = false;
    let c = cap_of(vec![opt, spec("flag", ArgType::Boolean)]);
    assert_eq!(
        validate_args(&c, Some(&json!({"note": null}))),
        Ok(Map::new())
    );
    assert_eq!(
        validate_args(&c, Some(&json!({"note": "n", "flag": false}))),
        Ok(json!({"note": "n", "flag": false})
            .as_object()
            .cloned()
            .unwrap())
    );
}

#[test]
fn unknown_arguments_are_named_and_the_known_ones_listed() {
    let cfg = config();
    let cap = cfg.capability("orders.propose_status_change").unwrap();
    let errs = validate_args(
        cap,
        Some(&json!({"order_id": "O-1", "status": "canceled", "reason": "r", "table": "x", "sql": "y"})),
    )
    .unwrap_err();
    assert_eq!(
        errs,
        vec![
            err(
                "table",
                ArgErrorCode::UnknownArgument,
                "unknown argument `table`; this tool takes: order_id, status, reason"
            ),
            err(
                "sql",
                ArgErrorCode::UnknownArgument,
                "unknown argument `sql`; this tool takes: order_id, status, reason"
            ),
        ]
    );
    // Unknown names are echoed back at most 64 characters long.
    let at_limit = "k".repeat(64);
    let errs = validate_args(&cap_none(), Some(&json!({ at_limit.clone(): 1 }))).unwrap_err();
    assert_eq!(
        errs,
        vec![err(
            &at_limit,
            ArgErrorCode::UnknownArgument,
            &format!("unknown argument `{at_limit}`; this tool takes: ")
        )]
    );
    let long = format!("{}é", "é".repeat(64));
    let shown = format!("{}…", "é".repeat(64));
    let errs = validate_args(&cap_none(), Some(&json!({ long: 1 }))).unwrap_err();
    assert_eq!(
        errs,
        vec![err(
            &shown,
            ArgErrorCode::UnknownArgument,
            &format!("unknown argument `{shown}`; this tool takes: ")
        )]
    );
}

#[test]
fn every_problem_is_reported_unknown_first_then_in_declaration_order() {
    let cfg = config();
    let cap = cfg.capability("support.propose_plan_credit").unwrap();
    let errs = validate_args(
        cap,
        Some(&json!({"credit_cents": 5001, "customer_id": 7, "extra": 1})),
    )
    .unwrap_err();
    assert_eq!(
        errs,
        vec![
            err(
                "extra",
                ArgErrorCode::UnknownArgument,
                "unknown argument `extra`; this tool takes: customer_id, credit_cents, reason"
            ),
            err(
                "customer_id",
                ArgErrorCode::WrongType,
                "`customer_id` must be a string, not a number"
            ),
            err(
                "credit_cents",
                ArgErrorCode::AboveMaximum,
                "`credit_cents` is 5001; the maximum is 5000"
            ),
            err(
                "reason",
                ArgErrorCode::MissingArgument,
                "missing required argument `reason` (string)"
            ),
        ]
    );
}

#[test]
fn string_lengths_count_characters_up_to_the_limit() {
    let cfg = config();
    let cap = cfg.capability("orders.propose_status_change").unwrap();
    let with = |order_id: String| {
        validate_args(
            cap,
            Some(&json!({"order_id": order_id, "status": "canceled", "reason": "r"})),
        )
    };
    assert!(with("x".repeat(128)).is_ok());
    assert!(with("é".repeat(128)).is_ok(), "characters, not bytes");
    assert!(with("x".to_owned()).is_ok());
    assert!(with(String::new()).is_ok());
    assert_eq!(
        with("x".repeat(129)).unwrap_err(),
        vec![err(
            "order_id",
            ArgErrorCode::TooLong,
            "`order_id` is 129 characters; the limit is 128"
        )]
    );
    assert_eq!(
        with("é".repeat(129)).unwrap_err()[0].code,
        ArgErrorCode::TooLong
    );
}

#[test]
fn strings_without_max_length_are_limited_to_the_default() {
    assert_eq!(DEFAULT_MAX_STRING_CHARS, 4096);
    let c = cap_of(vec![spec("note", ArgType::String)]);
    assert_eq!(
        one(&c, "note", json!("a".repeat(4096))),
        Ok(json!("a".repeat(4096)))
    );
    assert_eq!(
        fails(&c, "note", json!("a".repeat(4097))),
        err(
            "note",
            ArgErrorCode::TooLong,
            "`note` is 4097 characters; the limit is 4096"
        )
    );
}

#[test]
fn control_characters_other_than_line_breaks_and_tabs_are_refused() {
    let c = cap_of(vec![spec("note", ArgType::String)]);
    for ok in ["a\nb", "a\r\nb", "\tx", "plain", "ünïcødé …", ""] {
        assert_eq!(one(&c, "note", json!(ok)), Ok(json!(ok)));
    }
    for bad in [
        "a\u{0}b",
        "\u{7}",
        "x\u{1b}[31m",
        "\u{7f}",
        "\u{85}",
        "\u{b}",
        "\u{c}",
    ] {
        assert_eq!(
            fails(&c, "note", json!(bad)),
            err(
                "note",
                ArgErrorCode::InvalidCharacters,
                "`note` contains control characters (such as NUL); send plain text"
            ),
            "{bad:?}"
        );
    }
    // Length is checked first.
    let mut short = spec("s", ArgType::String);
    short.max_length = Some(2);
    assert_eq!(
        fails(&cap_of(vec![short]), "s", json!("\u{0}\u{0}\u{0}")).code,
        ArgErrorCode::TooLong
    );
}

#[test]
fn wrong_types_name_what_was_sent() {
    let c = cap_of(vec![
        spec("s", ArgType::String),
        spec("b", ArgType::Boolean),
        spec("n", ArgType::Number),
        spec("i", ArgType::Integer),
    ]);
    let cases = [
        ("s", json!(5), "`s` must be a string, not a number"),
        ("s", json!(true), "`s` must be a string, not a boolean"),
        ("s", json!(["x"]), "`s` must be a string, not an array"),
        ("s", json!({"x": 1}), "`s` must be a string, not an object"),
        (
            "b",
            json!("true"),
            "`b` must be true or false, not a string",
        ),
        ("b", json!(1), "`b` must be true or false, not a number"),
        ("n", json!("5"), "`n` must be a number, not a string"),
        ("n", json!(false), "`n` must be a number, not a boolean"),
        ("n", json!([1]), "`n` must be a number, not an array"),
    ];
    for (name, value, message) in cases {
        assert_eq!(
            fails(&c, name, value.clone()),
            err(name, ArgErrorCode::WrongType, message),
            "{value}"
        );
    }
    let e = fails(&c, "i", json!("5"));
    assert_eq!(e.code, ArgErrorCode::WrongType);
    assert!(e.message.starts_with("`i` must be a"), "{}", e.message);
    assert!(
        e.message.ends_with("integer, not a string"),
        "{}",
        e.message
    );
    assert_eq!(one(&c, "b", json!(true)), Ok(json!(true)));
    assert_eq!(one(&c, "b", json!(false)), Ok(json!(false)));
}

#[test]
fn integers_accept_whole_numbers_only_and_normalize_them() {
    let c = cap_of(vec![spec("i", ArgType::Integer)]);
    assert_eq!(one(&c, "i", json!(5)), Ok(json!(5)));
    assert_eq!(one(&c, "i", json!(-5)), Ok(json!(-5)));
    assert_eq!(one(&c, "i", json!(0)), Ok(json!(0)));
    assert_eq!(one(&c, "i", json!(u64::MAX)), Ok(json!(u64::MAX)));
    assert_eq!(one(&c, "i", json!(i64::MIN)), Ok(json!(i64::MIN)));
    // Whole-valued floats become integers (as i64, not f64).
    let two = one(&c, "i", json!(2.0)).unwrap();
    assert_eq!(two, json!(2));
    assert!(two.is_i64());
    assert_eq!(one(&c, "i", json!(-2.0)), Ok(json!(-2)));
    assert_eq!(
        one(&c, "i", json!(8_999_999_999_999_998.0)),
        Ok(json!(8_999_999_999_999_998_i64))
    );
    // Beyond 9e15 a float is not trusted to be whole.
    for (value, shown) in [
        (json!(9.0e15), "9000000000000000"),
        (json!(1.0e16), "10000000000000000"),
        (json!(-9.0e15), "-9000000000000000"),
        (json!(2.5), "2.5"),
        (json!(-0.5), "-0.5"),
    ] {
        assert_eq!(
            fails(&c, "i", value.clone()),
            err(
                "i",
                ArgErrorCode::WrongType,
                &format!("`i` must be a whole number, not {shown}")
            ),
            "{value}"
        );
    }
}

#[test]
fn numbers_keep_their_value_as_sent() {
    let c = cap_of(vec![spec("n", ArgType::Number)]);
    assert_eq!(one(&c, "n", json!(2.5)), Ok(json!(2.5)));
    let two = one(&c, "n", json!(2.0)).unwrap();
    assert!(two.is_f64(), "a number argument is not normalized: {two}");
    assert_eq!(one(&c, "n", json!(7)), Ok(json!(7)));
    assert_eq!(one(&c, "n", json!(1.0e300)), Ok(json!(1.0e300)));
}

#[test]
fn minimum_and_maximum_are_inclusive() {
    let cfg = config();
    let cap = cfg.capability("support.propose_plan_credit").unwrap();
    let with = |cents: Value| {
        validate_args(
            cap,
            Some(&json!({"customer_id": "c", "credit_cents": cents, "reason": "r"})),
        )
        .map(|out| out["credit_cents"].clone())
    };
    for ok in [
        json!(0),
        json!(0.0),
        json!(0.5),
        json!(2500),
        json!(4999.5),
        json!(5000),
        json!(5000.0),
    ] {
        assert_eq!(with(ok.clone()), Ok(ok.clone()), "{ok}");
    }
    let cases = [
        (
            json!(-1),
            ArgErrorCode::BelowMinimum,
            "`credit_cents` is -1; the minimum is 0",
        ),
        (
            json!(-0.5),
            ArgErrorCode::BelowMinimum,
            "`credit_cents` is -0.5; the minimum is 0",
        ),
        (
            json!(5001),
            ArgErrorCode::AboveMaximum,
            "`credit_cents` is 5001; the maximum is 5000",
        ),
        (
            json!(5000.5),
            ArgErrorCode::AboveMaximum,
            "`credit_cents` is 5000.5; the maximum is 5000",
        ),
    ];
    for (value, code, message) in cases {
        assert_eq!(
            with(value.clone()),
            Err(vec![err("credit_cents", code, message)]),
            "{value}"
        );
    }
}

#[test]
fn integer_bounds_apply_to_the_normalized_value() {
    let mut i = spec("i", ArgType::Integer);
    i.minimum = Some(-3.0);
    i.maximum = Some(3.0);
    let c = cap_of(vec![i]);
    for ok in [-3, 0, 3] {
        assert_eq!(one(&c, "i", json!(ok)), Ok(json!(ok)));
    }
    assert_eq!(
        fails(&c, "i", json!(-4)),
        err(
            "i",
            ArgErrorCode::BelowMinimum,
            "`i` is -4; the minimum is -3"
        )
    );
    assert_eq!(
        fails(&c, "i", json!(4.0)),
        err(
            "i",
            ArgErrorCode::AboveMaximum,
            "`i` is 4; the maximum is 3"
        )
    );
    // Only a minimum, only a maximum.
    let mut lo = spec("lo", ArgType::Number);
    lo.minimum = Some(1.5);
    let mut hi = spec("hi", ArgType::Number);
    hi.maximum = Some(-1.5);
    let c = cap_of(vec![lo, hi]);
    assert_eq!(one(&c, "lo", json!(1.5)), Ok(json!(1.5)));
    assert_eq!(one(&c, "lo", json!(1e300)), Ok(json!(1e300)));
    assert_eq!(fails(&c, "lo", json!(1.4)).code, ArgErrorCode::BelowMinimum);
    assert_eq!(one(&c, "hi", json!(-1.5)), Ok(json!(-1.5)));
    assert_eq!(one(&c, "hi", json!(-1e300)), Ok(json!(-1e300)));
    assert_eq!(
        fails(&c, "hi", json!(-1.4)).code,
        ArgErrorCode::AboveMaximum
    );
}

#[test]
fn enum_membership_is_by_value() {
    let cfg = config();
    let cap = cfg.capability("orders.propose_status_change").unwrap();
    let with = |status: Value| {
        validate_args(
            cap,
            Some(&json!({"order_id": "O-1", "status": status, "reason": "r"})),
        )
    };
    assert!(with(json!("ready_to_ship")).is_ok());
    assert!(with(json!("canceled")).is_ok());
    for bad in [json!("shipped"), json!("Canceled"), json!("canceled ")] {
        assert_eq!(
            with(bad).unwrap_err(),
            vec![err(
                "status",
                ArgErrorCode::NotInEnum,
                "`status` must be one of \"ready_to_ship\", \"canceled\""
            )]
        );
    }
    let mut i = spec("i", ArgType::Integer);
    i.enum_values = Some(vec![json!(1), json!(2)]);
    let mut n = spec("n", ArgType::Number);
    n.enum_values = Some(vec![json!(1.5), json!(3)]);
    let mut b = spec("b", ArgType::Boolean);
    b.enum_values = Some(vec![json!(true)]);
    let c = cap_of(vec![i, n, b]);
    assert_eq!(one(&c, "i", json!(2)), Ok(json!(2)));
    assert_eq!(one(&c, "i", json!(2.0)), Ok(json!(2)));
    assert_eq!(
        fails(&c, "i", json!(3)),
        err("i", ArgErrorCode::NotInEnum, "`i` must be one of 1, 2")
    );
    assert_eq!(one(&c, "n", json!(1.5)), Ok(json!(1.5)));
    assert_eq!(one(&c, "n", json!(3.0)), Ok(json!(3.0)));
    assert_eq!(
        fails(&c, "n", json!(2.5)),
        err("n", ArgErrorCode::NotInEnum, "`n` must be one of 1.5, 3")
    );
    assert_eq!(one(&c, "b", json!(true)), Ok(json!(true)));
    assert_eq!(
        fails(&c, "b", json!(false)),
        err("b", ArgErrorCode::NotInEnum, "`b` must be one of true")
    );
}

#[test]
fn scalar_equality_compares_numbers_by_value() {
    let yes = [
        (json!(1), json!(1)),
        (json!(1), json!(1.0)),
        (json!(1.0), json!(1)),
        (json!(-3), json!(-3.0)),
        (json!(1.5), json!(1.5)),
        (json!(u64::MAX), json!(u64::MAX)),
        (json!("a"), json!("a")),
        (json!(true), json!(true)),
        (Value::Null, Value::Null),
    ];
    for (a, b) in yes {
        assert!(scalar_eq(&a, &b), "{a} == {b}");
    }
    let no = [
        (json!(1), json!(2)),
        (json!(1), json!(1.5)),
        (json!(1.5), json!(2.5)),
        // Integers that differ but round to the same f64.
        (
            json!(9_007_199_254_740_993_i64),
            json!(9_007_199_254_740_992_i64),
        ),
        (json!(1), json!("1")),
        (json!("a"), json!("b")),
        (json!(true), json!(false)),
        (json!(0), Value::Null),
        (json!(0), json!(false)),
    ];
    for (a, b) in no {
        assert!(!scalar_eq(&a, &b), "{a} != {b}");
    }
}
