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
}
