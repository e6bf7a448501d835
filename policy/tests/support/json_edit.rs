//! Edits of a config's JSON at a JSON pointer (`/capabilities/0/kind`),
//! shared by the config tests (`#[path = "support/json_edit.rs"] mod json_edit;`).

#![allow(dead_code)]

use serde_json::Value;

/// Write `value` at `at`; its parent must exist (an object, or an array and
/// an index).
pub fn set(v: &mut Value, at: &str, value: Value) {
    let (parent, key) = at.rsplit_once('/').unwrap();
    match v.pointer_mut(parent).unwrap_or_else(|| panic!("{at}")) {
        Value::Object(m) => {
            m.insert(key.to_owned(), value);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{at}"),
    }
}

/// Remove the key at `at`; it must exist.
pub fn remove(v: &mut Value, at: &str) {
    let (parent, key) = at.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(key))
        .unwrap_or_else(|| panic!("{at}"));
}
