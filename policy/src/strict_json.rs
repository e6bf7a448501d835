//! Strict JSON parsing: duplicate object keys and excessive nesting are
//! errors, not "last one wins". Used for configs (a reviewer must never read
//! one value while Airlock uses another) and for IPC frames.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parse `bytes` as exactly one JSON value, refusing duplicate keys, nesting
/// deeper than `max_depth`, invalid UTF-8 and trailing data.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue {
        depth: 0,
        max_depth,
    }
    .deserialize(&mut de)
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// A JSON value that refuses duplicate keys and excessive nesting.
struct StrictValue {
    depth: usize,
    max_depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= self.max_depth {
            return Err(serde::de::Error::custom(format!(
                "nested deeper than {} levels",
                self.max_depth
            )));
        }
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= self.max_depth {
            return Err(serde::de::Error::custom(format!(
                "nested deeper than {} levels",
                self.max_depth
            )));
        }
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key `{}`",
                    key.chars().take(64).collect::<String>()
                )));
            }
            let v = map.next_value_seed(StrictValue {
                depth: self.depth + 1,
                max_depth: self.max_depth,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::{Value, json};

    #[test]
    fn refuses_duplicates_and_depth() {
        assert!(
            parse(br#"{"a":1,"b":{"c":1,"c":2}}"#, 8)
                .unwrap_err()
                .contains("duplicate key `c`")
        );
        assert!(
            parse(b"[[[[1]]]]", 3)
                .unwrap_err()
                .contains("nested deeper than 3")
        );
        assert_eq!(parse(br#"{"a":[1,2]}"#, 8).unwrap()["a"][1], 2);
    }

    fn ok(text: &str) -> Value {
        parse(text.as_bytes(), 8).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn scalars_keep_their_value() {
        assert_eq!(ok("true"), Value::Bool(true));
        assert_eq!(ok("false"), Value::Bool(false));
        assert_eq!(ok("null"), Value::Null);
        assert_eq!(ok(r#""abc""#), Value::String("abc".into()));
        // An escape makes serde_json copy the string (another visitor path).
        assert_eq!(ok(r#""a\"b\u00e9""#), Value::String("a\"bé".into()));
        assert_eq!(ok(r#""""#), Value::String(String::new()));
    }

    #[test]
    fn numbers_keep_their_value_and_kind() {
        let cases: [(&str, Value); 12] = [
            ("0", json!(0)),
            ("1", json!(1)),
            ("-1", json!(-1)),
            ("-0", json!(-0.0)),
            ("9223372036854775807", json!(i64::MAX)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("18446744073709551615", json!(u64::MAX)),
            ("1.5", json!(1.5)),
            ("-2.25", json!(-2.25)),
            ("1e3", json!(1000.0)),
            ("-1.5E-2", json!(-0.015)),
            ("2.5e+1", json!(25.0)),
        ];
        for (text, want) in cases {
            let got = ok(text);
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), want.to_string(), "{text}");
        }
        assert_eq!(ok("-1").as_i64(), Some(-1));
        assert_eq!(ok("-9223372036854775808").as_i64(), Some(i64::MIN));
        assert_eq!(ok("18446744073709551615").as_u64(), Some(u64::MAX));
        assert!(ok("1.0").is_f64());
        // Beyond u64 / below i64: a float, not an error and not null.
        assert_eq!(ok("18446744073709551616"), json!(18446744073709551616.0));
        assert_eq!(ok("-9223372036854775809"), json!(-9223372036854775809.0));
        // Out of f64 range: refused.
        assert!(parse(b"1e999", 8).is_err());
        assert!(parse(b"-1e999", 8).is_err());
    }

    #[test]
    fn nested_values_are_kept_exactly() {
        let text = r#"{"n":-3,"f":-0.5,"u":7,"b":false,"s":"x","z":null,"a":[-1,2.5,"y",true,null,{}],"o":{"k":[]}}"#;
        assert_eq!(
            ok(text),
            json!({"n": -3, "f": -0.5, "u": 7, "b": false, "s": "x", "z": null,
                   "a": [-1, 2.5, "y", true, null, {}], "o": {"k": []}})
        );
        // Key order is kept (preserve_order), so the text round-trips.
        assert_eq!(ok(text).to_string(), text);
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_level() {
        let e = parse(br#"{"a":1,"a":1}"#, 8).unwrap_err();
        assert!(e.starts_with("duplicate key `a`"), "{e}");
        let e = parse(br#"[{"x":{"k":[],"k":{}}}]"#, 8).unwrap_err();
        assert!(e.starts_with("duplicate key `k`"), "{e}");
        // Only the first 64 characters of a long key are echoed.
        let key = "k".repeat(100);
        let e = parse(format!(r#"{{"{key}":1,"{key}":2}}"#).as_bytes(), 8).unwrap_err();
        assert!(
            e.starts_with(&format!("duplicate key `{}`", "k".repeat(64))),
            "{e}"
        );
        // Keys differing only by an escape are the same key.
        assert!(parse(br#"{"a":1,"\u0061":2}"#, 8).is_err());
        // Distinct keys, and equal keys in sibling objects, are fine.
        assert_eq!(
            ok(r#"{"a":{"k":1},"b":{"k":2},"A":3}"#),
            json!({"a": {"k": 1}, "b": {"k": 2}, "A": 3})
        );
    }

    #[test]
    fn depth_limit_is_exact() {
        // Containers nested exactly `max_depth` deep are accepted ...
        assert_eq!(parse(b"[[1]]", 2).unwrap(), json!([[1]]));
        assert_eq!(
            parse(br#"{"a":{"b":1}}"#, 2).unwrap(),
            json!({"a": {"b": 1}})
        );
        assert_eq!(parse(br#"[{"a":[]}]"#, 3).unwrap(), json!([{"a": []}]));
        // ... one more is refused, for arrays and objects alike.
        let e = parse(b"[[[1]]]", 2).unwrap_err();
        assert!(e.starts_with("nested deeper than 2 levels"), "{e}");
        let e = parse(br#"{"a":{"b":{}}}"#, 2).unwrap_err();
        assert!(e.starts_with("nested deeper than 2 levels"), "{e}");
        let e = parse(br#"[{"a":[[]]}]"#, 3).unwrap_err();
        assert!(e.starts_with("nested deeper than 3 levels"), "{e}");
        let e = parse(br#"{"a":[{"b":[]}]}"#, 3).unwrap_err();
        assert!(e.starts_with("nested deeper than 3 levels"), "{e}");
        // Depth 0 allows only scalars; depth 1 one flat container.
        assert_eq!(parse(b"5", 0).unwrap(), json!(5));
        assert!(parse(b"[]", 0).is_err());
        assert!(parse(b"{}", 0).is_err());
        assert_eq!(parse(b"[1,2]", 1).unwrap(), json!([1, 2]));
        assert_eq!(parse(br#"{"a":1}"#, 1).unwrap(), json!({"a": 1}));
        assert!(parse(b"[[]]", 1).is_err());
        assert!(parse(br#"{"a":{}}"#, 1).is_err());
        // Siblings do not add up: width is not depth.
        assert_eq!(parse(b"[[1],[2],[3]]", 2).unwrap(), json!([[1], [2], [3]]));
        assert_eq!(
            parse(br#"{"a":[],"b":{},"c":[]}"#, 2).unwrap(),
            json!({"a": [], "b": {}, "c": []})
        );
    }

    #[test]
    fn refuses_trailing_data_bad_utf8_and_non_json() {
        for bad in [
            &b"1 2"[..],
            b"{} {}",
            b"[1]x",
            b"",
            b"   ",
            b"\"\xff\"",
            b"{\"a\":1,}",
            b"[1,]",
            b"NaN",
            b"Infinity",
            b"01",
            b"'a'",
            b"{a:1}",
        ] {
            assert!(parse(bad, 8).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // Surrounding whitespace is not trailing data.
        assert_eq!(parse(b" \n[1] \t", 8).unwrap(), json!([1]));
    }
}
