//! The capability catalog: the MCP tools the model sees.
//!
//! Exactly one tool per capability (plus its OpenAI-safe alias when asked):
//! never SQL, approval, apply or commit tools (invariant 2). Each tool's
//! input schema is derived from the capability's reviewed `args` and nothing
//! else, with `additionalProperties: false`.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::{ArgSpec, ArgType, Capability, Config, Kind, PatchValue};

/// Which tool names to expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AliasMode {
    /// `billing.inspect_invoice`.
    Canonical,
    /// `billing__inspect_invoice` (OpenAI tool names allow no dots).
    Openai,
    /// Both names, routed to the same capability.
    Both,
}

impl AliasMode {
    pub fn parse(s: &str) -> Option<AliasMode> {
        match s {
            "canonical" => Some(AliasMode::Canonical),
            "openai" => Some(AliasMode::Openai),
            "both" => Some(AliasMode::Both),
            _ => None,
        }
    }
}

/// The OpenAI-safe alias of a canonical capability name.
pub fn openai_alias(name: &str) -> String {
    name.replace('.', "__")
}

/// One MCP tool definition.
#[derive(Debug, Clone, Serialize)]
pub struct ToolDef {
    /// The name the model calls.
    pub name: String,
    /// The capability it routes to.
    pub canonical: String,
    pub kind: Kind,
    pub description: String,
    #[serde(rename = "inputSchema")]
    pub input_schema: Value,
}

/// All tools for one config and alias mode, with name → capability lookup.
#[derive(Debug, Clone)]
pub struct Catalog {
    tools: Vec<ToolDef>,
}

impl Catalog {
    pub fn new(config: &Config, mode: AliasMode) -> Catalog {
        let mut tools = Vec::new();
        for cap in &config.capabilities {
            let required_role = cap
                .proposal
                .as_ref()
                .and_then(|p| p.approval.required_role.as_deref());
            let base = ToolDef {
                name: cap.name.clone(),
                canonical: cap.name.clone(),
                kind: cap.kind,
                description: describe(cap, required_role),
                input_schema: input_schema(&cap.args),
            };
            match mode {
                AliasMode::Canonical => tools.push(base),
                AliasMode::Openai => tools.push(ToolDef {
                    name: openai_alias(&cap.name),
                    ..base
                }),
                AliasMode::Both => {
                    let alias = ToolDef {
                        name: openai_alias(&cap.name),
                        ..base.clone()
                    };
                    tools.push(base);
                    tools.push(alias);
                }
            }
        }
        Catalog { tools }
    }

    pub fn tools(&self) -> &[ToolDef] {
        &self.tools
    }

    /// The canonical capability name for a tool name the model called.
    pub fn resolve(&self, tool_name: &str) -> Option<&str> {
        self.tools
            .iter()
            .find(|t| t.name == tool_name)
            .map(|t| t.canonical.as_str())
    }
}

/// JSON Schema of a capability's arguments.
pub fn input_schema(args: &[ArgSpec]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for a in args {
        let mut p = Map::new();
        p.insert("type".into(), json!(a.ty.as_str()));
        if let Some(d) = &a.description {
            p.insert("description".into(), json!(d));
        }
        if let Some(m) = a.max_length {
            p.insert("maxLength".into(), json!(m));
        }
        if a.ty == ArgType::String && a.max_length.is_none() {
            p.insert(
                "maxLength".into(),
                json!(crate::args::DEFAULT_MAX_STRING_CHARS),
            );
        }
        if let Some(m) = a.minimum {
            p.insert("minimum".into(), number(m));
        }
        if let Some(m) = a.maximum {
            p.insert("maximum".into(), number(m));
        }
        if let Some(e) = &a.enum_values {
            p.insert("enum".into(), Value::Array(e.clone()));
        }
        properties.insert(a.name.clone(), Value::Object(p));
        if a.required {
            required.push(json!(a.name));
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// Whole numbers print as integers (`5000`, not `5000.0`).
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn describe(cap: &Capability, required_role: Option<&str>) -> String {
    let object = &cap.target.table;
    let mut text = match &cap.description {
        Some(d) => d.clone(),
        None => match cap.kind {
            Kind::Read => format!("Look up one {object} record by `{}`.", cap.lookup_arg),
            Kind::Proposal => format!(
                "Propose a change to one {object} record, found by `{}`.",
                cap.lookup_arg
            ),
        },
    };
    match cap.kind {
        Kind::Read => {
            text.push_str(&format!(
                " Read-only; scoped to your tenant. Returns: {}.",
                cap.visible_columns.join(", ")
            ));
        }
        Kind::Proposal => {
            if let Some(p) = &cap.proposal {
                let sets: Vec<String> = p
                    .patch
                    .iter()
                    .map(|(col, v)| match v {
                        PatchValue::Fixed(value) => format!("{col} = {value}"),
                        PatchValue::FromArg(arg) => format!("{col} from `{arg}`"),
                    })
                    .collect();
                text.push_str(&format!(" Would set: {}.", sets.join(", ")));
            }
            text.push_str(" This does NOT change the database: it records a proposal that a person must approve");
            if let Some(role) = required_role {
                text.push_str(&format!(" (role {role})"));
            }
            text.push_str(" before a separate process applies it.");
        }
    }
    if let Some(hint) = &cap.returns_hint {
        text.push(' ');
        text.push_str(hint);
    }
    text
}
