//! The capability catalog: the MCP tools the model sees.
//!
//! Exactly one tool per capability (plus its OpenAI-safe alias when asked):
//! never SQL, approval, apply or commit tools (invariant 2). Each tool's
//! input schema is derived from the capability's reviewed `args` and nothing
//! else, with `additionalProperties: false`.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::{ArgSpec, ArgType, Capability, Config, Kind, OperationKind, PatchValue};

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

/// A tool's human-readable title: `billing.propose_late_fee_waiver` is
/// "Billing: propose late fee waiver" (the part before the last `.` is the
/// area, underscores are spaces, the first letter is upper case).
pub fn title(name: &str) -> String {
    let spaced = |s: &str| s.replace(['_', '.'], " ");
    let text = match name.rsplit_once('.') {
        Some((area, action)) => format!("{}: {}", spaced(area), spaced(action)),
        None => spaced(name),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// One MCP tool definition.
#[derive(Debug, Clone, Serialize)]
pub struct ToolDef {
    /// The name the model calls.
    pub name: String,
    /// The capability it routes to.
    pub canonical: String,
    /// A human-readable title (MCP `title`), from the canonical name.
    pub title: String,
    pub kind: Kind,
    pub description: String,
    #[serde(rename = "inputSchema")]
    pub input_schema: Value,
}

/// All tools for one config and alias mode, with name → capability lookup.
#[derive(Debug, Clone)]
pub struct Catalog {
    tools: Vec<ToolDef>,
    mode: AliasMode,
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
                title: title(&cap.name),
                kind: cap.kind,
                description: describe(cap, required_role),
                input_schema: match &cap.list {
                    Some(spec) => crate::list_read::input_schema(cap, spec),
                    None => input_schema(&cap.args),
                },
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
        Catalog { tools, mode }
    }

    pub fn tools(&self) -> &[ToolDef] {
        &self.tools
    }

    /// The names a fixed tool (such as Scoped Explore's) is served under
    /// in this catalog's alias mode.
    pub fn names_for(&self, canonical: &str) -> Vec<String> {
        match self.mode {
            AliasMode::Canonical => vec![canonical.to_owned()],
            AliasMode::Openai => vec![openai_alias(canonical)],
            AliasMode::Both => vec![canonical.to_owned(), openai_alias(canonical)],
        }
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
        if let Some(f) = a.format {
            p.insert("format".into(), json!(f.as_str()));
        }
        if let Some(items) = &a.items {
            p.insert(
                "items".into(),
                json!({"type": items.ty.as_str(), "enum": items.enum_values}),
            );
            p.insert("minItems".into(), json!(1));
            p.insert("maxItems".into(), json!(items.max_items));
            p.insert("uniqueItems".into(), json!(true));
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
            Kind::Read => match &cap.list {
                Some(spec) => crate::list_read::describe(cap, spec),
                None => format!("Look up one {object} record by `{}`.", cap.lookup_arg),
            },
            Kind::AggregateRead => match &cap.aggregate {
                Some(a) => format!("Return {}.", crate::aggregate_read::what(cap, a)),
                None => format!("Return one reviewed aggregate over {object} records."),
            },
            Kind::Proposal => match cap.proposal.as_ref().map(|p| (p.kind(), p.set())) {
                Some((kind, Some(set))) => format!(
                    "Propose {} every {object} record a reviewed rule selects (at most {}, chosen by the rule, not by you).",
                    if kind == OperationKind::Delete {
                        "removing"
                    } else {
                        "changing"
                    },
                    set.max_rows
                ),
                Some((OperationKind::Insert, _)) => {
                    format!("Propose adding one new {object} record.")
                }
                Some((OperationKind::Delete, _)) => format!(
                    "Propose removing one {object} record, found by `{}`.",
                    cap.lookup_arg
                ),
                _ => format!(
                    "Propose a change to one {object} record, found by `{}`.",
                    cap.lookup_arg
                ),
            },
        },
    };
    match cap.kind {
        Kind::AggregateRead => {
            if let Some(a) = &cap.aggregate {
                text.push_str(&crate::aggregate_read::describe_suffix(cap, a));
            }
        }
        Kind::Read => {
            let scope = if cap.target.principal_scope_key.is_some() {
                "your tenant and to records assigned to you"
            } else {
                "your tenant"
            };
            text.push_str(&format!(
                " Read-only; scoped to {scope}. Returns: {}.",
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
                        PatchValue::IncrementFromArg(arg) => format!("{col} + `{arg}`"),
                        PatchValue::DecrementFromArg(arg) => format!("{col} - `{arg}`"),
                        PatchValue::ApplyTime => format!("{col} = the apply time"),
                    })
                    .collect();
                if !sets.is_empty() {
                    text.push_str(&format!(" Would set: {}.", sets.join(", ")));
                }
            }
            if cap.target.principal_scope_key.is_some() {
                text.push_str(" Only records assigned to you.");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Config {
        crate::load_config_str(crate::REFERENCE_CONFIG)
            .config
            .unwrap_or_else(|| panic!("reference config loads"))
    }

    fn names(catalog: &Catalog) -> Vec<&str> {
        catalog.tools().iter().map(|t| t.name.as_str()).collect()
    }

    const CANONICAL: [&str; 8] = [
        "support.inspect_ticket",
        "support.propose_ticket_resolution",
        "support.inspect_customer_account",
        "support.propose_plan_credit",
        "billing.inspect_invoice",
        "billing.propose_late_fee_waiver",
        "orders.inspect_order",
        "orders.propose_status_change",
    ];
    const OPENAI: [&str; 8] = [
        "support__inspect_ticket",
        "support__propose_ticket_resolution",
        "support__inspect_customer_account",
        "support__propose_plan_credit",
        "billing__inspect_invoice",
        "billing__propose_late_fee_waiver",
        "orders__inspect_order",
        "orders__propose_status_change",
    ];

    #[test]
    fn alias_modes_parse_from_their_exact_names() {
        assert_eq!(AliasMode::parse("canonical"), Some(AliasMode::Canonical));
        assert_eq!(AliasMode::parse("openai"), Some(AliasMode::Openai));
        assert_eq!(AliasMode::parse("both"), Some(AliasMode::Both));
        for bad in ["", "Canonical", "OPENAI", "both ", "all", "none"] {
            assert_eq!(AliasMode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn openai_aliases_replace_every_dot() {
        assert_eq!(
            openai_alias("billing.inspect_invoice"),
            "billing__inspect_invoice"
        );
        assert_eq!(openai_alias("a.b.c"), "a__b__c");
        assert_eq!(openai_alias("nodots"), "nodots");
    }

    #[test]
    fn titles_are_readable_forms_of_the_canonical_name() {
        assert_eq!(
            title("billing.propose_late_fee_waiver"),
            "Billing: propose late fee waiver"
        );
        assert_eq!(title("support.inspect_ticket"), "Support: inspect ticket");
        assert_eq!(title("crm_eu.accounts.lookup"), "Crm eu accounts: lookup");
        assert_eq!(title("nodots_here"), "Nodots here");
        assert_eq!(title("ünicode.x"), "Ünicode: x");
        assert_eq!(title(""), "");
        let cfg = reference();
        for t in Catalog::new(&cfg, AliasMode::Both).tools() {
            assert_eq!(t.title, title(&t.canonical), "{}", t.name);
        }
    }

    #[test]
    fn each_mode_lists_exactly_the_reviewed_tools_in_config_order() {
        let cfg = reference();
        let canonical = Catalog::new(&cfg, AliasMode::Canonical);
        assert_eq!(names(&canonical), CANONICAL);
        let openai = Catalog::new(&cfg, AliasMode::Openai);
        assert_eq!(names(&openai), OPENAI);
        let both = Catalog::new(&cfg, AliasMode::Both);
        let interleaved: Vec<&str> = CANONICAL
            .iter()
            .zip(OPENAI.iter())
            .flat_map(|(c, o)| [*c, *o])
            .collect();
        assert_eq!(names(&both), interleaved);
        let twice: Vec<&str> = CANONICAL.iter().flat_map(|c| [*c, *c]).collect();
        for (catalog, expected) in [
            (&canonical, CANONICAL.to_vec()),
            (&openai, CANONICAL.to_vec()),
            (&both, twice),
        ] {
            let routed: Vec<&str> = catalog
                .tools()
                .iter()
                .map(|t| t.canonical.as_str())
                .collect();
            assert_eq!(routed, expected);
            for t in catalog.tools() {
                let kind = if t.canonical.contains(".inspect_") {
                    Kind::Read
                } else {
                    Kind::Proposal
                };
                assert_eq!(t.kind, kind, "{}", t.name);
            }
        }
    }

    #[test]
    fn resolve_routes_only_the_exposed_names() {
        let cfg = reference();
        let canonical = Catalog::new(&cfg, AliasMode::Canonical);
        let openai = Catalog::new(&cfg, AliasMode::Openai);
        let both = Catalog::new(&cfg, AliasMode::Both);
        for (c, o) in CANONICAL.iter().zip(OPENAI.iter()) {
            assert_eq!(canonical.resolve(c), Some(*c));
            assert_eq!(canonical.resolve(o), None);
            assert_eq!(openai.resolve(o), Some(*c));
            assert_eq!(openai.resolve(c), None);
            assert_eq!(both.resolve(c), Some(*c));
            assert_eq!(both.resolve(o), Some(*c));
        }
        for unknown in [
            "",
            "billing",
            "billing.apply",
            "execute_sql",
            "BILLING.INSPECT_INVOICE",
        ] {
            assert_eq!(both.resolve(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn reference_descriptions_are_exact() {
        let cfg = reference();
        let catalog = Catalog::new(&cfg, AliasMode::Both);
        let description = |name: &str| {
            catalog
                .tools()
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.description.clone())
                .unwrap()
        };
        assert_eq!(
            description("billing.inspect_invoice"),
            "Look up one invoices record by `invoice_id`. Read-only; scoped to your tenant. Returns: id, tenant_id, customer_id, status, balance_cents, late_fee_cents, waiver_reason, updated_at."
        );
        let waiver = "Propose a change to one invoices record, found by `invoice_id`. Would set: late_fee_cents = 0, waiver_reason from `reason`. This does NOT change the database: it records a proposal that a person must approve (role billing_lead) before a separate process applies it.";
        assert_eq!(description("billing.propose_late_fee_waiver"), waiver);
        assert_eq!(description("billing__propose_late_fee_waiver"), waiver);
        assert_eq!(
            description("support.propose_ticket_resolution"),
            "Propose a change to one support_tickets record, found by `ticket_id`. Would set: status = \"pending_review\", resolution_note from `resolution_note`. This does NOT change the database: it records a proposal that a person must approve (role support_lead) before a separate process applies it."
        );
    }

    #[test]
    fn configured_descriptions_hints_and_no_role() {
        let cfg = reference();
        let mut read = cfg.capability("orders.inspect_order").cloned().unwrap();
        read.description = Some("Find an order.".into());
        read.returns_hint = Some("Amounts are in cents.".into());
        assert_eq!(
            describe(&read, None),
            "Find an order. Read-only; scoped to your tenant. Returns: id, tenant_id, customer_id, status, status_change_reason, updated_at. Amounts are in cents."
        );
        let mut proposal = cfg
            .capability("orders.propose_status_change")
            .cloned()
            .unwrap();
        proposal.returns_hint = Some("Check the order first.".into());
        assert_eq!(
            describe(&proposal, None),
            "Propose a change to one orders record, found by `order_id`. Would set: status from `status`, status_change_reason from `reason`. This does NOT change the database: it records a proposal that a person must approve before a separate process applies it. Check the order first."
        );
        proposal.proposal = None;
        proposal.description = Some("Change an order.".into());
        assert_eq!(
            describe(&proposal, Some("lead")),
            "Change an order. This does NOT change the database: it records a proposal that a person must approve (role lead) before a separate process applies it. Check the order first."
        );
        // Without a required role in the config, the catalog names none.
        let mut cfg = cfg;
        for cap in &mut cfg.capabilities {
            if let Some(p) = cap.proposal.as_mut() {
                p.approval.required_role = None;
            }
        }
        let catalog = Catalog::new(&cfg, AliasMode::Canonical);
        let waiver = catalog
            .tools()
            .iter()
            .find(|t| t.name == "billing.propose_late_fee_waiver")
            .unwrap();
        assert!(
            waiver
                .description
                .ends_with("a person must approve before a separate process applies it."),
            "{}",
            waiver.description
        );
    }

    #[test]
    fn reference_input_schemas_are_exact() {
        let cfg = reference();
        let catalog = Catalog::new(&cfg, AliasMode::Canonical);
        let schema = |name: &str| {
            catalog
                .tools()
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.input_schema.clone())
                .unwrap()
        };
        let credit = schema("support.propose_plan_credit");
        assert_eq!(
            credit,
            json!({
                "type": "object",
                "properties": {
                    "customer_id": {"type": "string", "maxLength": 128},
                    "credit_cents": {"type": "number", "minimum": 0, "maximum": 5000},
                    "reason": {"type": "string", "maxLength": 500}
                },
                "required": ["customer_id", "credit_cents", "reason"],
                "additionalProperties": false
            })
        );
        assert!(credit["properties"]["credit_cents"]["minimum"].is_u64());
        assert!(credit["properties"]["credit_cents"]["maximum"].is_u64());
        assert_eq!(
            schema("billing.inspect_invoice"),
            json!({
                "type": "object",
                "properties": {"invoice_id": {"type": "string", "maxLength": 128}},
                "required": ["invoice_id"],
                "additionalProperties": false
            })
        );
    }

    fn arg(name: &str, ty: ArgType) -> ArgSpec {
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

    #[test]
    fn input_schemas_carry_every_declared_constraint_and_nothing_else() {
        let mut note = arg("note", ArgType::String);
        note.description = Some("Why.".into());
        let mut short = arg("code", ArgType::String);
        short.max_length = Some(8);
        short.required = true;
        short.enum_values = Some(vec![json!("a"), json!("b")]);
        let mut count = arg("count", ArgType::Integer);
        count.minimum = Some(-3.0);
        count.maximum = Some(0.5);
        let flag = arg("flag", ArgType::Boolean);
        let mut amount = arg("amount", ArgType::Number);
        amount.required = true;
        assert_eq!(
            input_schema(&[note, short, count, flag, amount]),
            json!({
                "type": "object",
                "properties": {
                    "note": {"type": "string", "description": "Why.", "maxLength": 4096},
                    "code": {"type": "string", "maxLength": 8, "enum": ["a", "b"]},
                    "count": {"type": "integer", "minimum": -3, "maximum": 0.5},
                    "flag": {"type": "boolean"},
                    "amount": {"type": "number"}
                },
                "required": ["code", "amount"],
                "additionalProperties": false
            })
        );
        assert_eq!(
            input_schema(&[]),
            json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
        );
    }

    #[test]
    fn whole_bounds_print_as_integers_up_to_9e15() {
        let int = |n: i64| {
            let v = number(n as f64);
            assert!(v.is_i64(), "{n} prints as an integer: {v}");
            assert_eq!(v, json!(n));
        };
        int(0);
        int(5000);
        int(-3);
        int(8_999_999_999_999_998);
        let float = |n: f64| {
            let v = number(n);
            assert!(v.is_f64(), "{n} prints as a float: {v}");
            assert_eq!(v, json!(n));
        };
        float(0.5);
        float(-2.5);
        float(9.0e15);
        float(-9.0e15);
        float(1.0e16);
    }
}
