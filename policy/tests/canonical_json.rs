//! Canonical JSON and hashing pinned to literal bytes and digests: key order
//! by UTF-8 bytes, separators, string and number forms, lowercase hex.
//! Every expected digest was computed independently (`printf '%s' TEXT |
//! sha256sum`) from the literal canonical text beside it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use airlock_policy::canonical::{
    canonical_json, hash_serializable, hash_value, hex, sha256_tagged,
};
use serde::Serialize;
use serde_json::{Value, json};

/// Text, its canonical form, and `sha256:` of that form.
const CASES: &[(&str, &str, &str)] = &[
    (
        "null",
        "null",
        "sha256:74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
    ),
    (
        "[ ]",
        "[]",
        "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    (
        "{ }",
        "{}",
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    ),
    (
        r#"{ "b" : 1, "a" : [ 1, 2 ] }"#,
        r#"{"a":[1,2],"b":1}"#,
        "sha256:94a786c3662bc7beeb598efa7d8cb58d7bea25d6c275ea9785a0230ff1f8c2ba",
    ),
    (
        r#"{"é": "\"\\\n\u001f\/", "b": -1.5, "aa": [true, false, null], "a": "x",
            "_": {}, "B": [], "": 0}"#,
        r#"{"":0,"B":[],"_":{},"a":"x","aa":[true,false,null],"b":-1.5,"é":"\"\\\n\u001f/"}"#,
        "sha256:54d5d63e3c03b5576e9fac64dffcd638e5e55c7ed05eece164ed2e6f3360b23b",
    ),
];

#[test]
fn canonical_bytes_and_digests_are_pinned() {
    for (text, canonical, digest) in CASES {
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(canonical_json(&v), *canonical, "{text}");
        assert_eq!(hash_value(&v), *digest, "{text}");
        assert_eq!(sha256_tagged(canonical.as_bytes()), *digest, "{text}");
    }
}

#[test]
fn separators_sit_between_elements_only() {
    assert_eq!(canonical_json(&json!([1])), "[1]");
    assert_eq!(canonical_json(&json!([1, 2, 3])), "[1,2,3]");
    assert_eq!(canonical_json(&json!([[], [[]], {}])), "[[],[[]],{}]");
    assert_eq!(canonical_json(&json!({"k": 1})), r#"{"k":1}"#);
    assert_eq!(
        canonical_json(&json!({"c": 3, "b": 2, "a": 1})),
        r#"{"a":1,"b":2,"c":3}"#
    );
    assert_eq!(
        canonical_json(&json!({"z": {"y": [1, {"x": 0, "w": null}]}, "a": [{}]})),
        r#"{"a":[{}],"z":{"y":[1,{"w":null,"x":0}]}}"#
    );
}

#[test]
fn scalars_are_written_as_serde_json_writes_them() {
    let cases = [
        (json!(true), "true"),
        (json!(false), "false"),
        (json!(0), "0"),
        (json!(-7), "-7"),
        (json!(i64::MIN), "-9223372036854775808"),
        (json!(u64::MAX), "18446744073709551615"),
        (json!(1.0), "1.0"),
        (json!(-0.5), "-0.5"),
        (json!(1e300), "1e+300"),
        (json!("tab\there"), r#""tab\there""#),
        (json!("ü/<>&"), r#""ü/<>&""#),
        (json!("\u{7f}\u{0}"), "\"\u{7f}\\u0000\""),
    ];
    for (v, want) in cases {
        assert_eq!(canonical_json(&v), want, "{v:?}");
    }
    // Keys are escaped like strings.
    assert_eq!(canonical_json(&json!({"a\"b": 1})), r#"{"a\"b":1}"#);
}

#[test]
fn keys_sort_by_utf8_bytes_not_by_char_class() {
    // 'Z' (0x5a) < '_' (0x5f) < 'a' (0x61) < '~' (0x7e) < 'é' (0xc3 0xa9) < '😀' (0xf0 ..)
    let v = json!({"😀": 6, "é": 5, "~": 4, "a": 3, "_": 2, "Z": 1, "a0": 7, "": 0});
    assert_eq!(
        canonical_json(&v),
        r#"{"":0,"Z":1,"_":2,"a":3,"a0":7,"~":4,"é":5,"😀":6}"#
    );
}

#[test]
fn sha256_and_hex_are_pinned() {
    assert_eq!(
        sha256_tagged(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_tagged(b"abc"),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(hex(&[]), "");
    assert_eq!(hex(&[0x00]), "00");
    assert_eq!(
        hex(&[0x0f, 0xf0, 0xff, 0x1a, 0xa1, 0x5c, 0x09]),
        "0ff0ff1aa15c09"
    );
    let all: Vec<u8> = (0..=255).collect();
    let h = hex(&all);
    assert_eq!(h.len(), 512);
    assert!(h.starts_with("000102030405060708090a0b0c0d0e0f10111213"));
    assert!(h.ends_with("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"));
}

#[derive(Serialize)]
struct Record {
    name: &'static str,
    tags: Vec<&'static str>,
    id: u32,
}

#[test]
fn hash_serializable_hashes_the_canonical_form() {
    let r = Record {
        name: "n",
        tags: vec!["x", "y"],
        id: 7,
    };
    // printf '%s' '{"id":7,"name":"n","tags":["x","y"]}' | sha256sum
    assert_eq!(
        hash_serializable(&r),
        "sha256:03ac9f3f25b7eecd06ac7e093271e172bd69eb64460820c44fa8a48bbe49b2b5"
    );
    // A type serde_json cannot represent (non-string map keys) hashes `null`.
    let bad: BTreeMap<Vec<u8>, u8> = BTreeMap::from([(vec![1], 1)]);
    assert_eq!(
        hash_serializable(&bad),
        "sha256:74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
    );
}
