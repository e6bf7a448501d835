//! Validating the model's tool arguments against a capability's reviewed
//! `args`. Every failure names the argument and says exactly what is wrong,
//! so the model can correct itself.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{ArgSpec, ArgType, Capability};

/// Longest string argument when the config declares no `max_length`.
pub const DEFAULT_MAX_STRING_CHARS: u64 = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgErrorCode {
    NotAnObject,
    UnknownArgument,
    MissingArgument,
    WrongType,
    TooLong,
    NotInEnum,
    BelowMinimum,
    AboveMaximum,
    InvalidCharacters,
    /// A string argument with a `format` that the value does not have.
    InvalidFormat,
    /// An array argument with no values, or more than `max_items`.
    ItemCount,
    /// An array argument listing a value twice.
    DuplicateItem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgError {
    pub argument: String,
    pub code: ArgErrorCode,
    pub message: String,
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Validated arguments: only declared names, types checked, optional
/// arguments given as `null` dropped, whole-valued integers normalized.
pub type ValidArgs = Map<String, Value>;

/// Check `args` (the tool call's `arguments`, absent = `{}`) against `cap`.
pub fn validate_args(cap: &Capability, args: Option<&Value>) -> Result<ValidArgs, Vec<ArgError>> {
    let empty = Map::new();
    let map = match args {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(vec![ArgError {
                argument: String::new(),
                code: ArgErrorCode::NotAnObject,
                message: "arguments must be a JSON object".into(),
            }]);
        }
    };
    let mut errors = Vec::new();
    let mut out = Map::new();
    for key in map.keys() {
        if cap.arg(key).is_none() {
            let known: Vec<&str> = cap.args.iter().map(|a| a.name.as_str()).collect();
            errors.push(ArgError {
                argument: truncate(key),
                code: ArgErrorCode::UnknownArgument,
                message: format!(
                    "unknown argument `{}`; this tool takes: {}",
                    truncate(key),
                    known.join(", ")
                ),
            });
        }
    }
    for spec in &cap.args {
        match map.get(&spec.name) {
            None | Some(Value::Null) => {
                if spec.required {
                    errors.push(ArgError {
                        argument: spec.name.clone(),
                        code: ArgErrorCode::MissingArgument,
                        message: format!(
                            "missing required argument `{}` ({})",
                            spec.name,
                            spec.ty.as_str()
                        ),
                    });
                }
            }
            Some(v) => match check_value(spec, v) {
                Ok(v) => {
                    out.insert(spec.name.clone(), v);
                }
                Err(e) => errors.push(e),
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn check_value(spec: &ArgSpec, v: &Value) -> Result<Value, ArgError> {
    let err = |code, message: String| ArgError {
        argument: spec.name.clone(),
        code,
        message,
    };
    let value = match spec.ty {
        ArgType::String => {
            let Some(s) = v.as_str() else {
                return Err(err(
                    ArgErrorCode::WrongType,
                    format!("`{}` must be a string, not {}", spec.name, kind(v)),
                ));
            };
            let limit = spec.max_length.unwrap_or(DEFAULT_MAX_STRING_CHARS);
            let len = s.chars().count() as u64;
            if len > limit {
                return Err(err(
                    ArgErrorCode::TooLong,
                    format!("`{}` is {len} characters; the limit is {limit}", spec.name),
                ));
            }
            if s.chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                return Err(err(
                    ArgErrorCode::InvalidCharacters,
                    format!(
                        "`{}` contains control characters (such as NUL); send plain text",
                        spec.name
                    ),
                ));
            }
            if let Some(format) = spec.format {
                crate::list_read::check_format(spec, format, s)?;
            }
            v.clone()
        }
        ArgType::Array => crate::list_read::check_array(spec, v)?,
        ArgType::Boolean => {
            if !v.is_boolean() {
                return Err(err(
                    ArgErrorCode::WrongType,
                    format!("`{}` must be true or false, not {}", spec.name, kind(v)),
                ));
            }
            v.clone()
        }
        ArgType::Number | ArgType::Integer => {
            let Some(n) = v.as_f64().filter(|_| v.is_number()) else {
                return Err(err(
                    ArgErrorCode::WrongType,
                    format!(
                        "`{}` must be a {}, not {}",
                        spec.name,
                        spec.ty.as_str(),
                        kind(v)
                    ),
                ));
            };
            let value = if spec.ty == ArgType::Integer {
                if v.is_i64() || v.is_u64() {
                    v.clone()
                } else if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Value::from(n as i64)
                } else {
                    return Err(err(
                        ArgErrorCode::WrongType,
                        format!("`{}` must be a whole number, not {n}", spec.name),
                    ));
                }
            } else {
                v.clone()
            };
            if let Some(min) = spec.minimum
                && n < min
            {
                return Err(err(
                    ArgErrorCode::BelowMinimum,
                    format!("`{}` is {n}; the minimum is {min}", spec.name),
                ));
            }
            if let Some(max) = spec.maximum
                && n > max
            {
                return Err(err(
                    ArgErrorCode::AboveMaximum,
                    format!("`{}` is {n}; the maximum is {max}", spec.name),
                ));
            }
            value
        }
    };
    if let Some(allowed) = &spec.enum_values
        && !allowed.iter().any(|a| scalar_eq(a, &value))
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(err(
            ArgErrorCode::NotInEnum,
            format!("`{}` must be one of {}", spec.name, list.join(", ")),
        ));
    }
    Ok(value)
}

/// Equality of JSON scalars, with numbers compared by value (`1` == `1.0`).
pub fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Echo at most 64 characters of a model-supplied name back.
fn truncate(s: &str) -> String {
    if s.chars().count() > 64 {
        format!("{}…", s.chars().take(64).collect::<String>())
    } else {
        s.to_owned()
    }
}
