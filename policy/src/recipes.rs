//! Recipes: built-in, reviewed proposal templates for common business
//! actions (a late-fee waiver, a bounded account credit, a refund review, a
//! ticket resolution, a trial extension).
//!
//! A recipe is data: the fields it needs (each a role such as `late_fee` or
//! `reason`, with the kind of column that can play it and the column names
//! it guesses first), the arguments the agent supplies, the patch, bounds,
//! transition guard and approval role. [`build`] turns a recipe, a mapping
//! of fields to columns and one table's catalog facts into a proposal
//! capability in the ordinary config format, after checking that every
//! mapped column exists and has a compatible type. The capability still has
//! to pass the config validator like any hand-written one; `airlock recipes
//! apply` runs it before writing anything.
//!
//! The recipe names and shapes follow Synapsor Runner's built-in recipes
//! (`billing.late_fee_waiver`, …), so a team moving between the two finds the
//! same starting points.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::identifier::Engine;
use crate::schema_info::{ColumnInfo, TableInfo, is_tenant_shaped};

/// What a column's declared type can hold, as far as a recipe cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeClass {
    /// Whole numbers (including `numeric(p)` / `numeric(p,0)`).
    Integer,
    Text,
    /// A date and time of day.
    Timestamp,
    Date,
    Boolean,
    /// Anything else: fractions, JSON, UUIDs, binary, user-defined types.
    Other,
}

/// Classify a type as the engine's catalog spells it (`integer`,
/// `character varying(64)`, `timestamp(6) with time zone`, `int(11)
/// unsigned`, `decimal(10,0)`, `enum('a','b')`, SQLite's declared types).
pub fn type_class(engine: Engine, data_type: &str) -> TypeClass {
    let t = data_type.trim().to_ascii_lowercase();
    if engine == Engine::Sqlite {
        return sqlite_class(&t);
    }
    if t == "tinyint(1)" {
        // MySQL's BOOLEAN.
        return TypeClass::Boolean;
    }
    let (head, params) = match t.split_once('(') {
        Some((head, rest)) => (head, rest.split(')').next().unwrap_or_default()),
        None => (t.as_str(), ""),
    };
    let word = head.split_whitespace().next().unwrap_or_default();
    match word {
        "smallint" | "integer" | "int" | "bigint" | "mediumint" | "tinyint" | "int2" | "int4"
        | "int8" => TypeClass::Integer,
        // Whole numbers only when a scale of zero is declared: an
        // unconstrained Postgres `numeric` holds fractions.
        "numeric" | "decimal" if !params.is_empty() && scale_is_zero(params) => TypeClass::Integer,
        "text" | "tinytext" | "mediumtext" | "longtext" | "varchar" | "character" | "char"
        | "citext" | "nvarchar" | "nchar" | "bpchar" | "enum" => TypeClass::Text,
        "date" => TypeClass::Date,
        "boolean" | "bool" => TypeClass::Boolean,
        w if w.starts_with("timestamp") || w.starts_with("datetime") => TypeClass::Timestamp,
        _ => TypeClass::Other,
    }
}

/// `10` or `10,0` (no scale, or a scale of zero).
fn scale_is_zero(params: &str) -> bool {
    params
        .split_once(',')
        .is_none_or(|(_, scale)| scale.trim() == "0")
}

/// SQLite's type affinity rules (in their order), then the names its
/// NUMERIC affinity covers that mean a date or time.
fn sqlite_class(t: &str) -> TypeClass {
    if t.contains("int") {
        TypeClass::Integer
    } else if ["char", "clob", "text"].iter().any(|w| t.contains(w)) {
        TypeClass::Text
    } else if t.contains("time") {
        TypeClass::Timestamp
    } else if t.contains("date") {
        TypeClass::Date
    } else if t.contains("bool") {
        TypeClass::Boolean
    } else {
        TypeClass::Other
    }
}

/// The kind of column a recipe field needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// An amount in the currency's smallest unit (cents): whole numbers.
    Money,
    /// Free text or a status word.
    Text,
    /// The conflict guard: a timestamp or an integer the executor advances.
    Version,
    /// A point in time (a date or a timestamp).
    Moment,
}

impl FieldKind {
    /// Whether a column of `class` on `engine` can play this field. SQLite
    /// has no date type: its timestamps are text, and the executor advances
    /// a text version column with `strftime`.
    pub fn accepts(self, engine: Engine, class: TypeClass) -> bool {
        let sqlite_text = engine == Engine::Sqlite && class == TypeClass::Text;
        match self {
            FieldKind::Money => class == TypeClass::Integer,
            FieldKind::Text => class == TypeClass::Text,
            FieldKind::Version => {
                matches!(class, TypeClass::Integer | TypeClass::Timestamp) || sqlite_text
            }
            FieldKind::Moment => {
                matches!(class, TypeClass::Timestamp | TypeClass::Date) || sqlite_text
            }
        }
    }

    /// What this field needs, for an error message.
    pub fn expects(self, engine: Engine) -> &'static str {
        match (self, engine) {
            (FieldKind::Money, _) => {
                "an integer column (amounts in cents; a fraction or float type does not fit the bounds)"
            }
            (FieldKind::Text, _) => "a text column (text, varchar, char)",
            (FieldKind::Version, Engine::Sqlite) => {
                "a version column: a timestamp, an integer or text"
            }
            (FieldKind::Version, _) => "a version column: a timestamp or an integer",
            (FieldKind::Moment, Engine::Sqlite) => "a date or timestamp column (or text)",
            (FieldKind::Moment, _) => "a date or timestamp column",
        }
    }

    /// A type of this kind, for a recipe's sample table.
    fn sample_type(self) -> &'static str {
        match self {
            FieldKind::Money => "integer",
            FieldKind::Text => "text",
            FieldKind::Version | FieldKind::Moment => "timestamp with time zone",
        }
    }
}

/// How a field's column is changed by a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Patch {
    /// Not changed: shown to the agent (and, for a version field, compared
    /// at apply time).
    None,
    /// Always set to this whole number.
    Fixed(i64),
    /// Set to the value of this argument.
    FromArg(&'static str),
}

/// One column a recipe needs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Field {
    /// The field's name in `--map field=column`.
    pub name: &'static str,
    pub kind: FieldKind,
    /// Optional fields are shown to the agent when the table has them.
    pub required: bool,
    /// Column names tried, in order, when the field is not mapped.
    pub guesses: &'static [&'static str],
    pub patch: Patch,
    /// What the column holds, for a person.
    pub about: &'static str,
}

/// The type of one argument the agent supplies.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgKind {
    Text { max_length: u64 },
    OneOf(&'static [&'static str]),
    WholeNumber { minimum: i64, maximum: i64 },
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ArgDef {
    pub name: &'static str,
    pub kind: ArgKind,
    pub description: &'static str,
}

/// Allowed moves of a status column: from-state → the states it may move to.
pub type Transitions = &'static [(&'static str, &'static [&'static str])];

/// One built-in recipe.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Recipe {
    /// `domain.action`, as in Synapsor Runner.
    pub name: &'static str,
    pub title: &'static str,
    /// What it does, for a person.
    pub summary: &'static str,
    /// The kind of table it fits, and the name its sample table uses.
    pub table_hint: &'static str,
    pub sample_table: &'static str,
    /// The row the agent names (`invoice` → argument `invoice_id`).
    pub object: &'static str,
    /// The capability (tool) name it writes by default.
    pub capability: &'static str,
    /// The tool description the agent reads.
    pub description: &'static str,
    pub fields: &'static [Field],
    /// The arguments besides the row's id.
    pub args: &'static [ArgDef],
    /// Field → (minimum, maximum).
    pub bounds: &'static [(&'static str, i64, i64)],
    /// The guarded field and its allowed transitions (from → to).
    pub transitions: Option<(&'static str, Transitions)>,
    pub approval_role: &'static str,
    /// What to check before real use.
    pub notes: &'static [&'static str],
}

const VERSION: Field = Field {
    name: "version",
    kind: FieldKind::Version,
    required: true,
    guesses: &[
        "updated_at",
        "version",
        "row_version",
        "lock_version",
        "modified_at",
    ],
    patch: Patch::None,
    about: "the row's version or last-update time; a proposal whose row changed since it was read is refused at apply",
};

const REASON: ArgDef = ArgDef {
    name: "reason",
    kind: ArgKind::Text { max_length: 500 },
    description: "Why, in a sentence the reviewer will read.",
};

/// The built-in recipes.
pub const RECIPES: &[Recipe] = &[
    Recipe {
        name: "billing.late_fee_waiver",
        title: "Late-fee waiver",
        summary: "Propose waiving one invoice's late fee: the fee is set to zero and the reason recorded; a billing lead approves.",
        table_hint: "an invoice or billing table",
        sample_table: "invoices",
        object: "invoice",
        capability: "billing.propose_late_fee_waiver",
        description: "Propose waiving the late fee on one invoice (sets it to 0 and records your reason). Nothing changes until a person approves.",
        fields: &[
            Field {
                name: "late_fee",
                kind: FieldKind::Money,
                required: true,
                guesses: &["late_fee_cents", "late_fee", "late_fee_amount_cents"],
                patch: Patch::Fixed(0),
                about: "the late fee in cents; set to 0",
            },
            Field {
                name: "reason",
                kind: FieldKind::Text,
                required: true,
                guesses: &[
                    "waiver_reason",
                    "late_fee_waiver_reason",
                    "fee_waiver_reason",
                ],
                patch: Patch::FromArg("reason"),
                about: "why the fee was waived",
            },
            VERSION,
            Field {
                name: "status",
                kind: FieldKind::Text,
                required: false,
                guesses: &["status", "invoice_status"],
                patch: Patch::None,
                about: "the invoice's status, shown to the agent",
            },
        ],
        args: &[REASON],
        bounds: &[("late_fee", 0, 10_000)],
        transitions: None,
        approval_role: "billing_lead",
        notes: &[
            "Try it against staging first.",
            "The bound (0 to 10000 cents) guards the column; adjust it to your policy.",
        ],
    },
    Recipe {
        name: "credits.account_credit",
        title: "Account credit (bounded)",
        summary: "Propose setting one account's credit to an amount between 0 and 10000 cents, with a reason; a billing lead approves.",
        table_hint: "an account, customer or balance table",
        sample_table: "account_credits",
        object: "account",
        capability: "credits.propose_account_credit",
        description: "Propose an account credit, in cents, for one account (it becomes the account's credit amount) with your reason. Nothing changes until a person approves.",
        fields: &[
            Field {
                name: "credit",
                kind: FieldKind::Money,
                required: true,
                guesses: &[
                    "credit_cents",
                    "account_credit_cents",
                    "plan_credit_cents",
                    "credit_amount_cents",
                ],
                patch: Patch::FromArg("credit_cents"),
                about: "the credit in cents; set to the proposed amount",
            },
            Field {
                name: "reason",
                kind: FieldKind::Text,
                required: true,
                guesses: &["credit_reason", "account_credit_reason"],
                patch: Patch::FromArg("reason"),
                about: "why the credit was given",
            },
            VERSION,
        ],
        args: &[
            ArgDef {
                name: "credit_cents",
                kind: ArgKind::WholeNumber {
                    minimum: 0,
                    maximum: 10_000,
                },
                description: "The credit in cents (0 to 10000).",
            },
            REASON,
        ],
        bounds: &[("credit", 0, 10_000)],
        transitions: None,
        approval_role: "billing_lead",
        notes: &[
            "The proposal sets the credit column to the amount; the reviewer sees the old and new value.",
            "Set the maximum (10000 cents) to your policy before real use.",
        ],
    },
    Recipe {
        name: "orders.refund_review",
        title: "Refund review",
        summary: "Propose a refund on one order: a status move (paid or shipped to refund_requested, then refunded), a bounded amount and a reason; an ops lead approves.",
        table_hint: "an orders table",
        sample_table: "orders",
        object: "order",
        capability: "orders.propose_refund_review",
        description: "Propose a refund for one order: the next status, the refund amount in cents and your reason. Only allowed status moves are accepted; nothing changes until a person approves.",
        fields: &[
            Field {
                name: "status",
                kind: FieldKind::Text,
                required: true,
                guesses: &["status", "order_status"],
                patch: Patch::FromArg("next_status"),
                about: "the order's status; moves only along the allowed transitions",
            },
            Field {
                name: "refund",
                kind: FieldKind::Money,
                required: true,
                guesses: &["refund_cents", "refund_amount_cents", "refunded_cents"],
                patch: Patch::FromArg("refund_cents"),
                about: "the refund in cents",
            },
            Field {
                name: "reason",
                kind: FieldKind::Text,
                required: true,
                guesses: &["refund_reason"],
                patch: Patch::FromArg("reason"),
                about: "why the refund is proposed",
            },
            VERSION,
            Field {
                name: "total",
                kind: FieldKind::Money,
                required: false,
                guesses: &["total_cents", "amount_cents", "order_total_cents"],
                patch: Patch::None,
                about: "the order total, shown to the agent",
            },
        ],
        args: &[
            ArgDef {
                name: "next_status",
                kind: ArgKind::OneOf(&["refund_requested", "refunded", "needs_review"]),
                description: "The order's next status.",
            },
            ArgDef {
                name: "refund_cents",
                kind: ArgKind::WholeNumber {
                    minimum: 0,
                    maximum: 100_000,
                },
                description: "The refund in cents (0 to 100000).",
            },
            REASON,
        ],
        bounds: &[("refund", 0, 100_000)],
        transitions: Some((
            "status",
            &[
                ("paid", &["refund_requested", "needs_review"]),
                ("shipped", &["refund_requested", "needs_review"]),
                ("refund_requested", &["refunded", "needs_review"]),
            ],
        )),
        approval_role: "ops_lead",
        notes: &[
            "Match the status words and the maximum refund to your order flow.",
            "Keep the payment provider's refund call outside MCP: apply through a handler if the refund must reach it.",
        ],
    },
    Recipe {
        name: "support.ticket_resolution",
        title: "Support ticket resolution",
        summary: "Propose resolving one support ticket: a status move (open to pending_review, then resolved) and a resolution note; a support lead approves.",
        table_hint: "a support ticket table",
        sample_table: "support_tickets",
        object: "ticket",
        capability: "support.propose_ticket_resolution",
        description: "Propose the next status of one support ticket with a resolution note. Only allowed status moves are accepted; nothing changes until a person approves.",
        fields: &[
            Field {
                name: "status",
                kind: FieldKind::Text,
                required: true,
                guesses: &["status", "ticket_status"],
                patch: Patch::FromArg("next_status"),
                about: "the ticket's status; moves only along the allowed transitions",
            },
            Field {
                name: "resolution",
                kind: FieldKind::Text,
                required: true,
                guesses: &["resolution_note", "resolution", "resolution_notes"],
                patch: Patch::FromArg("resolution_note"),
                about: "the resolution note",
            },
            VERSION,
            Field {
                name: "subject",
                kind: FieldKind::Text,
                required: false,
                guesses: &["subject", "title"],
                patch: Patch::None,
                about: "the ticket's subject, shown to the agent",
            },
        ],
        args: &[
            ArgDef {
                name: "next_status",
                kind: ArgKind::OneOf(&["pending_review", "resolved", "needs_human"]),
                description: "The ticket's next status.",
            },
            ArgDef {
                name: "resolution_note",
                kind: ArgKind::Text { max_length: 1000 },
                description: "What was done, for the customer record.",
            },
        ],
        bounds: &[],
        transitions: Some((
            "status",
            &[
                ("open", &["pending_review", "needs_human"]),
                ("pending_review", &["resolved", "needs_human"]),
            ],
        )),
        approval_role: "support_lead",
        notes: &[
            "Keep ticket bodies out of the visible columns if they may hold personal data.",
            "Match the status words to your ticket flow.",
        ],
    },
    Recipe {
        name: "accounts.trial_extension",
        title: "Trial extension",
        summary: "Propose a new trial end for one account, with a reason; an account admin approves after checking the date.",
        table_hint: "an account or subscription table",
        sample_table: "accounts",
        object: "account",
        capability: "accounts.propose_trial_extension",
        description: "Propose a new trial end for one account (YYYY-MM-DD HH:MM:SS in UTC, e.g. 2030-01-31 00:00:00) with your reason. Nothing changes until a person approves.",
        fields: &[
            Field {
                name: "trial_ends_at",
                kind: FieldKind::Moment,
                required: true,
                guesses: &[
                    "trial_ends_at",
                    "trial_end",
                    "trial_ends_on",
                    "trial_expires_at",
                    "trial_end_date",
                ],
                patch: Patch::FromArg("trial_ends_at"),
                about: "when the trial ends; set to the proposed date",
            },
            Field {
                name: "reason",
                kind: FieldKind::Text,
                required: true,
                guesses: &["extension_reason", "trial_extension_reason"],
                patch: Patch::FromArg("reason"),
                about: "why the trial was extended",
            },
            VERSION,
            Field {
                name: "plan",
                kind: FieldKind::Text,
                required: false,
                guesses: &["plan", "plan_name"],
                patch: Patch::None,
                about: "the account's plan, shown to the agent",
            },
        ],
        args: &[
            ArgDef {
                name: "trial_ends_at",
                kind: ArgKind::Text { max_length: 64 },
                description: "The new trial end: YYYY-MM-DD HH:MM:SS, UTC.",
            },
            REASON,
        ],
        bounds: &[],
        transitions: None,
        approval_role: "account_admin",
        notes: &[
            "A date cannot be bounded in the config: the reviewer checks the new date in the diff.",
            "Apply through a handler if trial changes must go through your billing service.",
        ],
    },
];

/// A recipe by its name (`billing.late_fee_waiver`) or the part after the
/// dot (`late_fee_waiver`).
pub fn find(name: &str) -> Option<&'static Recipe> {
    RECIPES.iter().find(|r| {
        r.name == name
            || r.name
                .split_once('.')
                .is_some_and(|(_, short)| short == name)
    })
}

impl Recipe {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The argument that carries the row's primary key.
    pub fn lookup_arg(&self) -> String {
        format!("{}_id", self.object)
    }

    /// A table this recipe fits with every default: `id` and `tenant_id`
    /// (text) and each field's first guess. `recipes show` prints the
    /// capability built on it; the tests build every recipe on it.
    pub fn sample(&self) -> TableInfo {
        let column = |name: &str, data_type: &str| ColumnInfo::new(name, data_type, false);
        let mut columns = vec![column("id", "text"), column("tenant_id", "text")];
        columns.extend(
            self.fields
                .iter()
                .map(|f| column(f.guesses[0], f.kind.sample_type())),
        );
        TableInfo::new(self.sample_table, columns, vec!["id".to_owned()])
    }
}

/// Why a recipe does not fit a table as mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    #[error("recipe {recipe} has no field `{field}`; its fields are: {known}")]
    UnknownField {
        recipe: String,
        field: String,
        known: String,
    },
    #[error(
        "field `{field}` is mapped to column `{column}`, but table `{table}` has no such column"
    )]
    MissingColumn {
        field: String,
        column: String,
        table: String,
    },
    #[error(
        "table `{table}` has no column for field `{field}` ({about}); tried {tried}; name one with --map {field}=COLUMN"
    )]
    NoColumn {
        field: String,
        about: String,
        table: String,
        tried: String,
    },
    #[error(
        "column `{column}` has type `{data_type}` and cannot be field `{field}`: it needs {expects}"
    )]
    IncompatibleType {
        field: String,
        column: String,
        data_type: String,
        expects: String,
    },
    #[error(
        "table `{table}` has no primary key a recipe can look one row up by; name the key column with --primary-key"
    )]
    NoPrimaryKey { table: String },
    #[error(
        "table `{table}` has a composite primary key ({columns}); a recipe looks one row up by a single-column key"
    )]
    CompositeKey { table: String, columns: String },
    #[error("the {key} `{column}` is not a column of table `{table}`")]
    KeyNotAColumn {
        key: &'static str,
        column: String,
        table: String,
    },
    #[error(
        "column `{column}` is the {key} and cannot be field `{field}`; map the field to another column"
    )]
    KeyColumn {
        field: String,
        column: String,
        key: &'static str,
    },
    #[error(
        "column `{column}` is used for both `{first}` and `{second}`; map each field to its own column"
    )]
    SharedColumn {
        column: String,
        first: String,
        second: String,
    },
}

/// Where the capability goes and how it is scoped.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    pub engine: Engine,
    pub source: &'a str,
    pub schema: &'a str,
    /// A named trusted context, or `None` for `trusted_context`.
    pub context: Option<&'a str>,
    /// `None`: an acknowledged single-tenant development target.
    pub tenant_key: Option<&'a str>,
    /// The capability name, or `None` for the recipe's.
    pub name: Option<&'a str>,
}

/// A field and the column it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub field: &'static str,
    pub column: String,
    pub data_type: String,
    /// Named with `--map` (else guessed from the field's default names).
    pub mapped: bool,
}

/// A capability built from a recipe, and how its fields were mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub capability: Value,
    pub columns: Vec<Resolved>,
}

/// Map the recipe's fields onto `table` (explicit `map` entries first, else
/// each field's guesses) and check each column's type; then build the
/// proposal capability. Every problem is reported, not only the first.
pub fn build(
    recipe: &Recipe,
    table: &TableInfo,
    map: &BTreeMap<String, String>,
    at: &Placement<'_>,
) -> Result<Built, Vec<RecipeError>> {
    let mut errors = Vec::new();
    let known: Vec<&str> = recipe.fields.iter().map(|f| f.name).collect();
    for field in map.keys().filter(|k| recipe.field(k).is_none()) {
        errors.push(RecipeError::UnknownField {
            recipe: recipe.name.to_owned(),
            field: field.clone(),
            known: known.join(", "),
        });
    }
    let primary_key = match table.primary_key.as_slice() {
        [] => {
            errors.push(RecipeError::NoPrimaryKey {
                table: table.name.clone(),
            });
            None
        }
        [pk] => Some(pk.as_str()),
        many => {
            errors.push(RecipeError::CompositeKey {
                table: table.name.clone(),
                columns: many.join(", "),
            });
            None
        }
    };
    let keys = [("primary key", primary_key), ("tenant key", at.tenant_key)];
    for (key, column) in keys {
        if let Some(column) = column.filter(|c| table.column(c).is_none()) {
            errors.push(RecipeError::KeyNotAColumn {
                key,
                column: column.to_owned(),
                table: table.name.clone(),
            });
        }
    }
    let resolved = resolve(recipe, table, map, at.engine, &keys, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let primary_key = primary_key.unwrap_or_default();
    Ok(Built {
        capability: capability(recipe, table, primary_key, &resolved, at),
        columns: resolved,
    })
}

/// Each field's column, checked; problems go to `errors`.
fn resolve(
    recipe: &Recipe,
    table: &TableInfo,
    map: &BTreeMap<String, String>,
    engine: Engine,
    keys: &[(&'static str, Option<&str>)],
    errors: &mut Vec<RecipeError>,
) -> Vec<Resolved> {
    let mut out: Vec<Resolved> = Vec::new();
    for field in recipe.fields {
        let column = match map.get(field.name) {
            Some(name) => match table.column(name) {
                Some(c) => Some((c, true)),
                None => {
                    errors.push(RecipeError::MissingColumn {
                        field: field.name.to_owned(),
                        column: name.clone(),
                        table: table.name.clone(),
                    });
                    continue;
                }
            },
            None => field
                .guesses
                .iter()
                .find_map(|g| table.column(g))
                .map(|c| (c, false)),
        };
        let Some((column, mapped)) = column else {
            if field.required {
                errors.push(RecipeError::NoColumn {
                    field: field.name.to_owned(),
                    about: field.about.to_owned(),
                    table: table.name.clone(),
                    tried: field.guesses.join(", "),
                });
            }
            continue;
        };
        match misfit(field, column, engine, keys, &out) {
            // An optional field found by its default name is only shown: a
            // column that does not fit it is left out, not an error.
            Some(_) if !field.required && !mapped => continue,
            Some(e) => {
                errors.push(e);
                continue;
            }
            None => {}
        }
        out.push(Resolved {
            field: field.name,
            column: column.name.clone(),
            data_type: column.data_type.clone(),
            mapped,
        });
    }
    out
}

/// Why `column` cannot play `field`, if it cannot: an incompatible type, a
/// key column, or a column an earlier field already plays.
fn misfit(
    field: &Field,
    column: &ColumnInfo,
    engine: Engine,
    keys: &[(&'static str, Option<&str>)],
    taken: &[Resolved],
) -> Option<RecipeError> {
    if !field
        .kind
        .accepts(engine, type_class(engine, &column.data_type))
    {
        return Some(RecipeError::IncompatibleType {
            field: field.name.to_owned(),
            column: column.name.clone(),
            data_type: column.data_type.clone(),
            expects: field.kind.expects(engine).to_owned(),
        });
    }
    if let Some((key, _)) = keys.iter().find(|(_, k)| *k == Some(column.name.as_str())) {
        return Some(RecipeError::KeyColumn {
            field: field.name.to_owned(),
            column: column.name.clone(),
            key,
        });
    }
    taken
        .iter()
        .find(|r| r.column == column.name)
        .map(|first| RecipeError::SharedColumn {
            column: column.name.clone(),
            first: first.field.to_owned(),
            second: field.name.to_owned(),
        })
}

fn capability(
    recipe: &Recipe,
    table: &TableInfo,
    primary_key: &str,
    resolved: &[Resolved],
    at: &Placement<'_>,
) -> Value {
    let column_of = |field: &str| {
        resolved
            .iter()
            .find(|r| r.field == field)
            .map(|r| r.column.clone())
            .unwrap_or_default()
    };
    let lookup_arg = recipe.lookup_arg();
    let mut args = Map::new();
    args.insert(
        lookup_arg.clone(),
        json!({"type": "string", "required": true, "max_length": 128, "description": format!("The {}'s id.", recipe.object)}),
    );
    for a in recipe.args {
        args.insert(a.name.to_owned(), arg_json(a));
    }
    let mut target = Map::new();
    target.insert("schema".into(), json!(at.schema));
    target.insert("table".into(), json!(table.name));
    target.insert("primary_key".into(), json!(primary_key));
    match at.tenant_key {
        Some(tk) => target.insert("tenant_key".into(), json!(tk)),
        None => target.insert("single_tenant_dev".into(), json!(true)),
    };
    let mut visible: Vec<String> = vec![primary_key.to_owned()];
    visible.extend(at.tenant_key.map(str::to_owned));
    visible.extend(resolved.iter().map(|r| r.column.clone()));
    let mut patch = Map::new();
    let mut allowed = Vec::new();
    let mut version = String::new();
    for f in recipe.fields {
        let column = column_of(f.name);
        let binding = match f.patch {
            Patch::None if f.kind == FieldKind::Version => {
                version = column;
                continue;
            }
            Patch::None => continue,
            Patch::Fixed(n) => json!({"fixed": n}),
            Patch::FromArg(arg) => json!({"from_arg": arg}),
        };
        patch.insert(column.clone(), binding);
        allowed.push(column);
    }
    let mut cap = Map::new();
    cap.insert("name".into(), json!(at.name.unwrap_or(recipe.capability)));
    cap.insert("kind".into(), json!("proposal"));
    cap.insert("description".into(), json!(recipe.description));
    cap.insert("source".into(), json!(at.source));
    if let Some(ctx) = at.context {
        cap.insert("context".into(), json!(ctx));
    }
    cap.insert("target".into(), Value::Object(target));
    if at.tenant_key.is_none() {
        cap.insert("single_tenant_dev_ack".into(), json!(true));
    }
    cap.insert("args".into(), Value::Object(args));
    cap.insert("lookup".into(), json!({"id_from_arg": lookup_arg}));
    cap.insert("visible_columns".into(), json!(visible));
    cap.insert("evidence".into(), json!("required"));
    cap.insert("max_rows".into(), json!(1));
    cap.insert("patch".into(), Value::Object(patch));
    cap.insert("allowed_columns".into(), json!(allowed));
    if !recipe.bounds.is_empty() {
        let bounds: Map<String, Value> = recipe
            .bounds
            .iter()
            .map(|(f, lo, hi)| (column_of(f), json!({"minimum": lo, "maximum": hi})))
            .collect();
        cap.insert("numeric_bounds".into(), Value::Object(bounds));
    }
    if let Some((field, moves)) = recipe.transitions {
        let allowed: Map<String, Value> = moves
            .iter()
            .map(|(from, to)| ((*from).to_owned(), json!(to)))
            .collect();
        cap.insert(
            "transition_guards".into(),
            json!({ column_of(field): {"allowed": allowed} }),
        );
    }
    cap.insert("conflict_guard".into(), json!({"column": version}));
    cap.insert(
        "approval".into(),
        json!({"mode": "human", "required_role": recipe.approval_role}),
    );
    Value::Object(cap)
}

fn arg_json(a: &ArgDef) -> Value {
    let mut v = match a.kind {
        ArgKind::Text { max_length } => {
            json!({"type": "string", "required": true, "max_length": max_length})
        }
        ArgKind::OneOf(values) => json!({"type": "string", "required": true, "enum": values}),
        ArgKind::WholeNumber { minimum, maximum } => {
            json!({"type": "integer", "required": true, "minimum": minimum, "maximum": maximum})
        }
    };
    v["description"] = json!(a.description);
    v
}

/// What a config already says about a table on a source: taken from a
/// capability on that table when there is one, else the value every
/// capability on the source agrees on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigHints {
    pub schema: Option<String>,
    pub primary_key: Option<String>,
    pub tenant_key: Option<String>,
    /// A capability on this very table is an acknowledged single-tenant
    /// target.
    pub single_tenant: bool,
    pub context: Option<String>,
}

pub fn config_hints(cfg: &Config, source: &str, table: &str) -> ConfigHints {
    let on_source: Vec<_> = cfg
        .capabilities
        .iter()
        .filter(|c| c.source == source)
        .collect();
    if let Some(c) = on_source.iter().find(|c| c.target.table == table) {
        return ConfigHints {
            schema: Some(c.target.schema.clone()),
            primary_key: Some(c.target.primary_key.clone()),
            tenant_key: c.target.tenant_key.clone(),
            single_tenant: c.target.tenant_key.is_none(),
            context: c.context.clone(),
        };
    }
    ConfigHints {
        schema: agreed(on_source.iter().map(|c| Some(&c.target.schema))),
        primary_key: None,
        tenant_key: agreed(
            on_source
                .iter()
                .filter_map(|c| c.target.tenant_key.as_ref())
                .map(Some),
        ),
        single_tenant: false,
        context: agreed(on_source.iter().map(|c| c.context.as_ref())),
    }
}

/// The one value all of `values` share (`None` counts as a value), else
/// `None`.
fn agreed<'a>(values: impl Iterator<Item = Option<&'a String>>) -> Option<String> {
    let distinct: BTreeSet<Option<&String>> = values.collect();
    match distinct.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => one.cloned(),
        _ => None,
    }
}

/// How a new capability on `table` is scoped to a tenant, when the caller
/// named neither a tenant column nor single-tenant: what the config says
/// (checked against the table), else the table's only tenant-shaped column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantChoice {
    /// From a capability already in the config.
    Config(String),
    /// The table's only tenant-shaped column (a guess to confirm).
    Guessed(String),
    /// A capability on this table is an acknowledged single-tenant target.
    SingleTenant,
}

pub fn tenant_choice(hints: &ConfigHints, table: &TableInfo) -> Option<TenantChoice> {
    if hints.single_tenant {
        return Some(TenantChoice::SingleTenant);
    }
    if let Some(tk) = hints
        .tenant_key
        .as_ref()
        .filter(|tk| table.column(tk).is_some())
    {
        return Some(TenantChoice::Config(tk.clone()));
    }
    match table
        .columns
        .iter()
        .filter(|c| is_tenant_shaped(&c.name))
        .collect::<Vec<_>>()
        .as_slice()
    {
        [only] => Some(TenantChoice::Guessed(only.name.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_config;

    const ENGINES: [Engine; 3] = [Engine::Postgres, Engine::Mysql, Engine::Sqlite];

    fn at(engine: Engine) -> Placement<'static> {
        Placement {
            engine,
            source: "app",
            schema: match engine {
                Engine::Postgres => "public",
                Engine::Mysql => "shop",
                Engine::Sqlite => "main",
            },
            context: None,
            tenant_key: Some("tenant_id"),
            name: None,
        }
    }

    fn config_with(engine: Engine, cap: &Value) -> Value {
        json!({
            "version": 1,
            "mode": "review",
            "sources": {"app": {"engine": engine.as_str(), "read_url_env": "APP_READ_URL", "write_url_env": "APP_WRITE_URL"}},
            "trusted_context": {"provider": "environment", "values": {"tenant_id_env": "APP_TENANT_ID"}},
            "contexts": {"ops": {"provider": "environment", "values": {"tenant_id_env": "APP_TENANT_ID"}}},
            "capabilities": [cap],
        })
    }

    fn recipe(name: &str) -> &'static Recipe {
        find(name).unwrap()
    }

    fn no_map() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn col(name: &str, data_type: &str) -> ColumnInfo {
        ColumnInfo::new(name, data_type, true)
    }

    fn errors(r: Result<Built, Vec<RecipeError>>) -> Vec<RecipeError> {
        r.err().unwrap_or_default()
    }

    #[test]
    fn types_are_classified_per_engine() {
        use TypeClass::*;
        for engine in [Engine::Postgres, Engine::Mysql] {
            for (t, class) in [
                ("smallint", Integer),
                ("integer", Integer),
                ("int", Integer),
                ("int(11)", Integer),
                ("bigint", Integer),
                ("bigint unsigned", Integer),
                ("int(10) unsigned", Integer),
                ("mediumint", Integer),
                ("tinyint(4)", Integer),
                ("int2", Integer),
                ("int4", Integer),
                ("INT8", Integer),
                ("numeric(12,0)", Integer),
                ("decimal(10, 0)", Integer),
                ("numeric(12)", Integer),
                ("numeric", Other),
                ("numeric(12,2)", Other),
                ("decimal(10,2)", Other),
                ("double precision", Other),
                ("real", Other),
                ("money", Other),
                ("text", Text),
                ("tinytext", Text),
                ("mediumtext", Text),
                ("longtext", Text),
                ("varchar(64)", Text),
                ("character varying(64)", Text),
                ("character varying", Text),
                ("character(3)", Text),
                ("char(36)", Text),
                ("citext", Text),
                ("nvarchar(10)", Text),
                ("nchar(2)", Text),
                ("bpchar", Text),
                ("enum('open','closed')", Text),
                ("set('a','b')", Other),
                ("timestamp with time zone", Timestamp),
                ("timestamp(6) with time zone", Timestamp),
                ("timestamp without time zone", Timestamp),
                ("timestamptz", Timestamp),
                ("timestamp(6)", Timestamp),
                ("datetime", Timestamp),
                ("datetime(6)", Timestamp),
                ("date", Date),
                ("time", Other),
                ("time with time zone", Other),
                ("boolean", Boolean),
                ("bool", Boolean),
                ("tinyint(1)", Boolean),
                (" TINYINT(1) ", Boolean),
                ("uuid", Other),
                ("jsonb", Other),
                ("", Other),
            ] {
                assert_eq!(type_class(engine, t), class, "{engine:?} {t}");
            }
        }
        for (t, class) in [
            ("INTEGER", Integer),
            ("BIGINT", Integer),
            ("tinyint(1)", Integer),
            ("TEXT", Text),
            ("VARCHAR(64)", Text),
            ("CLOB", Text),
            ("NCHAR(2)", Text),
            ("DATETIME", Timestamp),
            ("TIMESTAMP", Timestamp),
            ("DATE", Date),
            ("BOOLEAN", Boolean),
            ("NUMERIC", Other),
            ("DECIMAL(10,0)", Other),
            ("REAL", Other),
            ("BLOB", Other),
            ("", Other),
        ] {
            assert_eq!(type_class(Engine::Sqlite, t), class, "sqlite {t}");
        }
    }

    #[test]
    fn a_scale_is_zero_only_when_absent_or_zero() {
        assert!(scale_is_zero("10"));
        assert!(scale_is_zero("10,0"));
        assert!(scale_is_zero("10, 0 "));
        assert!(!scale_is_zero("10,2"));
        assert!(!scale_is_zero("10,00x"));
    }

    #[test]
    fn field_kinds_accept_compatible_types_only() {
        use FieldKind::*;
        use TypeClass::*;
        let all = [Integer, TypeClass::Text, Timestamp, Date, Boolean, Other];
        let accepted = |kind: FieldKind, engine: Engine| -> Vec<TypeClass> {
            all.into_iter()
                .filter(|c| kind.accepts(engine, *c))
                .collect()
        };
        for engine in ENGINES {
            assert_eq!(accepted(Money, engine), [Integer]);
            assert_eq!(accepted(FieldKind::Text, engine), [TypeClass::Text]);
        }
        for engine in [Engine::Postgres, Engine::Mysql] {
            assert_eq!(accepted(Version, engine), [Integer, Timestamp]);
            assert_eq!(accepted(Moment, engine), [Timestamp, Date]);
        }
        assert_eq!(
            accepted(Version, Engine::Sqlite),
            [Integer, TypeClass::Text, Timestamp]
        );
        assert_eq!(
            accepted(Moment, Engine::Sqlite),
            [TypeClass::Text, Timestamp, Date]
        );
    }

    #[test]
    fn each_field_kind_says_what_it_needs() {
        use FieldKind::*;
        let mut seen = BTreeSet::new();
        for (kind, engine, word) in [
            (Money, Engine::Postgres, "integer"),
            (FieldKind::Text, Engine::Mysql, "text"),
            (Version, Engine::Postgres, "timestamp or an integer"),
            (Version, Engine::Sqlite, "or text"),
            (Moment, Engine::Mysql, "date or timestamp column"),
            (Moment, Engine::Sqlite, "(or text)"),
        ] {
            let said = kind.expects(engine);
            assert!(said.contains(word), "{kind:?} {engine:?}: {said}");
            assert!(seen.insert(said), "{said}");
        }
        assert!(!Moment.expects(Engine::Postgres).contains("text"));
        assert!(!Version.expects(Engine::Mysql).contains("text"));
    }

    #[test]
    fn recipes_are_found_by_full_or_short_name() {
        let names: Vec<&str> = RECIPES.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "billing.late_fee_waiver",
                "credits.account_credit",
                "orders.refund_review",
                "support.ticket_resolution",
                "accounts.trial_extension",
            ]
        );
        for r in RECIPES {
            assert_eq!(find(r.name).unwrap().name, r.name);
            let short = r.name.split_once('.').unwrap().1;
            assert_eq!(find(short).unwrap().name, r.name);
        }
        for none in [
            "billing",
            "",
            "late-fee-waiver",
            "billing.late_fee",
            "x.late_fee_waiver",
        ] {
            assert!(find(none).is_none(), "{none}");
        }
    }

    #[test]
    fn every_recipe_is_consistent() {
        for r in RECIPES {
            let args: Vec<&str> = r.args.iter().map(|a| a.name).collect();
            for f in r.fields {
                assert!(!f.guesses.is_empty(), "{} {}", r.name, f.name);
                if let Patch::FromArg(a) = f.patch {
                    assert!(args.contains(&a), "{} {}", r.name, a);
                }
                assert!(f.required || f.patch == Patch::None, "{}", f.name);
            }
            assert_eq!(
                r.fields
                    .iter()
                    .filter(|f| f.kind == FieldKind::Version)
                    .count(),
                1
            );
            for (f, lo, hi) in r.bounds {
                assert!(r.field(f).is_some() && lo <= hi, "{f}");
            }
            if let Some((f, _)) = r.transitions {
                assert!(r.field(f).is_some(), "{f}");
            }
            assert!(r.field("nope").is_none());
        }
    }

    #[test]
    fn the_sample_table_has_the_keys_and_every_first_guess() {
        let r = recipe("orders.refund_review");
        let t = r.sample();
        assert_eq!(t.name, "orders");
        assert_eq!(t.primary_key, ["id"]);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "tenant_id",
                "status",
                "refund_cents",
                "refund_reason",
                "updated_at",
                "total_cents"
            ]
        );
        let types: Vec<&str> = t.columns.iter().map(|c| c.data_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "text",
                "text",
                "text",
                "integer",
                "text",
                "timestamp with time zone",
                "integer"
            ]
        );
        assert_eq!(
            recipe("accounts.trial_extension").sample().columns[2].data_type,
            "timestamp with time zone"
        );
        assert_eq!(r.lookup_arg(), "order_id");
    }

    #[test]
    fn every_recipe_on_its_sample_table_passes_the_config_validator() {
        for engine in ENGINES {
            for r in RECIPES {
                let built = build(r, &r.sample(), &no_map(), &at(engine)).unwrap();
                let loaded = load_config(&config_with(engine, &built.capability));
                let errors: Vec<_> = loaded.report.errors().collect();
                let warnings: Vec<_> = loaded.report.warnings().collect();
                assert!(errors.is_empty(), "{} {engine:?}: {errors:?}", r.name);
                assert!(warnings.is_empty(), "{} {engine:?}: {warnings:?}", r.name);
                let cfg = loaded.config.unwrap();
                let cap = cfg.capability(r.capability).unwrap();
                assert_eq!(cap.kind, crate::config::Kind::Proposal);
                let p = cap.proposal.as_ref().unwrap();
                assert_eq!(p.approval.required_role.as_deref(), Some(r.approval_role));
                assert_eq!(p.version_column(), Some("updated_at"));
                assert_eq!(cap.lookup_arg, r.lookup_arg());
                // Every column of the sample is visible; nothing else.
                let sample: Vec<String> = r.sample().columns.into_iter().map(|c| c.name).collect();
                assert_eq!(cap.visible_columns, sample, "{}", r.name);
                assert!(built.columns.iter().all(|c| !c.mapped));
                assert_eq!(built.columns.len(), r.fields.len());
            }
        }
    }

    #[test]
    fn the_late_fee_waiver_capability_is_exactly_the_reviewed_shape() {
        let r = recipe("late_fee_waiver");
        let built = build(r, &r.sample(), &no_map(), &at(Engine::Postgres)).unwrap();
        let expected = json!({
            "name": "billing.propose_late_fee_waiver",
            "kind": "proposal",
            "description": r.description,
            "source": "app",
            "target": {"schema": "public", "table": "invoices", "primary_key": "id", "tenant_key": "tenant_id"},
            "args": {
                "invoice_id": {"type": "string", "required": true, "max_length": 128, "description": "The invoice's id."},
                "reason": {"type": "string", "required": true, "max_length": 500, "description": "Why, in a sentence the reviewer will read."}
            },
            "lookup": {"id_from_arg": "invoice_id"},
            "visible_columns": ["id", "tenant_id", "late_fee_cents", "waiver_reason", "updated_at", "status"],
            "evidence": "required",
            "max_rows": 1,
            "patch": {"late_fee_cents": {"fixed": 0}, "waiver_reason": {"from_arg": "reason"}},
            "allowed_columns": ["late_fee_cents", "waiver_reason"],
            "numeric_bounds": {"late_fee_cents": {"minimum": 0, "maximum": 10000}},
            "conflict_guard": {"column": "updated_at"},
            "approval": {"mode": "human", "required_role": "billing_lead"}
        });
        assert_eq!(built.capability, expected);
        // Key order is the reviewed order too.
        let keys: Vec<&String> = built.capability.as_object().unwrap().keys().collect();
        let want: Vec<&String> = expected.as_object().unwrap().keys().collect();
        assert_eq!(keys, want);
        assert_eq!(
            built.columns[0],
            Resolved {
                field: "late_fee",
                column: "late_fee_cents".into(),
                data_type: "integer".into(),
                mapped: false
            }
        );
    }

    #[test]
    fn the_refund_review_guards_status_and_bounds_the_amount() {
        let r = recipe("orders.refund_review");
        let built = build(r, &r.sample(), &no_map(), &at(Engine::Mysql)).unwrap();
        let c = &built.capability;
        assert_eq!(
            c["transition_guards"],
            json!({"status": {"allowed": {
                "paid": ["refund_requested", "needs_review"],
                "shipped": ["refund_requested", "needs_review"],
                "refund_requested": ["refunded", "needs_review"]
            }}})
        );
        assert_eq!(
            c["numeric_bounds"],
            json!({"refund_cents": {"minimum": 0, "maximum": 100000}})
        );
        assert_eq!(
            c["args"]["refund_cents"],
            json!({"type": "integer", "required": true, "minimum": 0, "maximum": 100000, "description": "The refund in cents (0 to 100000)."})
        );
        assert_eq!(
            c["args"]["next_status"],
            json!({"type": "string", "required": true, "enum": ["refund_requested", "refunded", "needs_review"], "description": "The order's next status."})
        );
        assert_eq!(
            c["patch"],
            json!({"status": {"from_arg": "next_status"}, "refund_cents": {"from_arg": "refund_cents"}, "refund_reason": {"from_arg": "reason"}})
        );
        assert_eq!(c["target"]["schema"], "shop");
        let ticket = recipe("support.ticket_resolution");
        let built = build(ticket, &ticket.sample(), &no_map(), &at(Engine::Sqlite)).unwrap();
        assert!(built.capability.get("numeric_bounds").is_none());
        assert_eq!(
            built.capability["transition_guards"]["status"]["allowed"]["open"],
            json!(["pending_review", "needs_human"])
        );
        let trial = recipe("accounts.trial_extension");
        let built = build(trial, &trial.sample(), &no_map(), &at(Engine::Postgres)).unwrap();
        assert!(built.capability.get("transition_guards").is_none());
        assert!(built.capability.get("context").is_none());
        assert!(built.capability.get("single_tenant_dev_ack").is_none());
    }

    #[test]
    fn a_mapping_places_fields_on_the_tables_own_columns() {
        let r = recipe("credits.account_credit");
        let table = TableInfo {
            name: "customers".into(),
            columns: vec![
                col("customer_no", "bigint"),
                col("org_id", "bigint"),
                col("promo_credit", "int(11)"),
                col("credit_reason", "varchar(200)"),
                col("note", "text"),
                col("row_version", "bigint"),
            ],
            primary_key: vec!["customer_no".into()],
            ..r.sample()
        };
        let placement = Placement {
            tenant_key: Some("org_id"),
            context: Some("ops"),
            name: Some("crm.propose_goodwill_credit"),
            ..at(Engine::Mysql)
        };
        let built = build(
            r,
            &table,
            &map(&[("credit", "promo_credit"), ("reason", "note")]),
            &placement,
        )
        .unwrap();
        let c = &built.capability;
        assert_eq!(c["name"], "crm.propose_goodwill_credit");
        assert_eq!(c["context"], "ops");
        assert_eq!(
            c["target"],
            json!({"schema": "shop", "table": "customers", "primary_key": "customer_no", "tenant_key": "org_id"})
        );
        assert_eq!(
            c["patch"],
            json!({"promo_credit": {"from_arg": "credit_cents"}, "note": {"from_arg": "reason"}})
        );
        assert_eq!(c["allowed_columns"], json!(["promo_credit", "note"]));
        assert_eq!(
            c["numeric_bounds"],
            json!({"promo_credit": {"minimum": 0, "maximum": 10000}})
        );
        assert_eq!(c["conflict_guard"], json!({"column": "row_version"}));
        assert_eq!(
            c["visible_columns"],
            json!([
                "customer_no",
                "org_id",
                "promo_credit",
                "note",
                "row_version"
            ])
        );
        let mapped: Vec<(&str, bool)> = built.columns.iter().map(|r| (r.field, r.mapped)).collect();
        assert_eq!(
            mapped,
            [("credit", true), ("reason", true), ("version", false)]
        );
        let loaded = load_config(&config_with(Engine::Mysql, c));
        assert!(
            loaded.report.errors().next().is_none(),
            "{:?}",
            loaded.report
        );
    }

    #[test]
    fn a_single_tenant_target_is_acknowledged_and_warned_about() {
        let r = recipe("support.ticket_resolution");
        let placement = Placement {
            tenant_key: None,
            ..at(Engine::Postgres)
        };
        let built = build(r, &r.sample(), &no_map(), &placement).unwrap();
        let c = &built.capability;
        assert_eq!(c["target"]["single_tenant_dev"], true);
        assert!(c["target"].get("tenant_key").is_none());
        assert_eq!(c["single_tenant_dev_ack"], true);
        assert_eq!(c["visible_columns"][1], "status");
        let loaded = load_config(&config_with(Engine::Postgres, c));
        assert!(loaded.report.errors().next().is_none());
        assert!(
            loaded
                .report
                .warnings()
                .any(|w| w.path.ends_with("single_tenant_dev"))
        );
    }

    #[test]
    fn optional_fields_are_shown_only_when_the_table_has_them() {
        let r = recipe("billing.late_fee_waiver");
        let mut table = r.sample();
        table.columns.retain(|c| c.name != "status");
        let built = build(r, &table, &no_map(), &at(Engine::Postgres)).unwrap();
        assert_eq!(
            built.capability["visible_columns"],
            json!([
                "id",
                "tenant_id",
                "late_fee_cents",
                "waiver_reason",
                "updated_at"
            ])
        );
        // A later guess is used when the first is absent.
        table.columns[2].name = "late_fee".into();
        table.columns.push(col("invoice_status", "text"));
        let built = build(r, &table, &no_map(), &at(Engine::Postgres)).unwrap();
        assert_eq!(built.capability["patch"]["late_fee"], json!({"fixed": 0}));
        assert_eq!(built.capability["visible_columns"][5], "invoice_status");
        // An optional column found by name whose type does not fit (a
        // Postgres enum, say) or that is a key is left out, not an error...
        let mut enum_status = r.sample();
        enum_status.columns[5].data_type = "invoice_state".into();
        let built = build(r, &enum_status, &no_map(), &at(Engine::Postgres)).unwrap();
        assert_eq!(built.columns.len(), 3);
        assert!(
            !built.capability["visible_columns"]
                .to_string()
                .contains("status")
        );
        let mut key_status = r.sample();
        key_status.primary_key = vec!["status".into()];
        let built = build(r, &key_status, &no_map(), &at(Engine::Postgres)).unwrap();
        assert_eq!(built.capability["target"]["primary_key"], "status");
        assert_eq!(built.columns.len(), 3);
        // ...but one named with --map must fit.
        let errs = errors(build(
            r,
            &enum_status,
            &map(&[("status", "status")]),
            &at(Engine::Postgres),
        ));
        assert!(
            matches!(&errs[..], [RecipeError::IncompatibleType { field, .. }] if field == "status"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_missing_or_misfit_column_is_named_and_every_problem_is_reported() {
        let r = recipe("billing.late_fee_waiver");
        let table = TableInfo {
            columns: vec![
                col("id", "text"),
                col("tenant_id", "text"),
                col("late_fee_cents", "numeric(10,2)"),
                col("updated_at", "jsonb"),
            ],
            ..r.sample()
        };
        let errs = errors(build(
            r,
            &table,
            &map(&[("status", "state"), ("colour", "x")]),
            &at(Engine::Postgres),
        ));
        assert_eq!(
            errs,
            vec![
                RecipeError::UnknownField {
                    recipe: "billing.late_fee_waiver".into(),
                    field: "colour".into(),
                    known: "late_fee, reason, version, status".into()
                },
                RecipeError::IncompatibleType {
                    field: "late_fee".into(),
                    column: "late_fee_cents".into(),
                    data_type: "numeric(10,2)".into(),
                    expects: FieldKind::Money.expects(Engine::Postgres).into()
                },
                RecipeError::NoColumn {
                    field: "reason".into(),
                    about: "why the fee was waived".into(),
                    table: "invoices".into(),
                    tried: "waiver_reason, late_fee_waiver_reason, fee_waiver_reason".into()
                },
                RecipeError::IncompatibleType {
                    field: "version".into(),
                    column: "updated_at".into(),
                    data_type: "jsonb".into(),
                    expects: FieldKind::Version.expects(Engine::Postgres).into()
                },
                RecipeError::MissingColumn {
                    field: "status".into(),
                    column: "state".into(),
                    table: "invoices".into()
                },
            ]
        );
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown[0],
            "recipe billing.late_fee_waiver has no field `colour`; its fields are: late_fee, reason, version, status"
        );
        assert_eq!(
            shown[1],
            "column `late_fee_cents` has type `numeric(10,2)` and cannot be field `late_fee`: it needs an integer column (amounts in cents; a fraction or float type does not fit the bounds)"
        );
        assert_eq!(
            shown[2],
            "table `invoices` has no column for field `reason` (why the fee was waived); tried waiver_reason, late_fee_waiver_reason, fee_waiver_reason; name one with --map reason=COLUMN"
        );
        assert_eq!(
            shown[4],
            "field `status` is mapped to column `state`, but table `invoices` has no such column"
        );
    }

    #[test]
    fn keys_must_be_single_existing_columns_and_not_fields() {
        let r = recipe("billing.late_fee_waiver");
        let mut table = r.sample();
        table.primary_key = vec![];
        assert_eq!(
            errors(build(r, &table, &no_map(), &at(Engine::Postgres))),
            vec![RecipeError::NoPrimaryKey {
                table: "invoices".into()
            }]
        );
        table.primary_key = vec!["tenant_id".into(), "id".into()];
        let errs = errors(build(r, &table, &no_map(), &at(Engine::Postgres)));
        assert_eq!(
            errs,
            vec![RecipeError::CompositeKey {
                table: "invoices".into(),
                columns: "tenant_id, id".into()
            }]
        );
        assert!(errs[0].to_string().contains("(tenant_id, id)"));
        table.primary_key = vec!["invoice_no".into()];
        let placement = Placement {
            tenant_key: Some("org_id"),
            ..at(Engine::Postgres)
        };
        let errs = errors(build(r, &table, &no_map(), &placement));
        assert_eq!(
            errs,
            vec![
                RecipeError::KeyNotAColumn {
                    key: "primary key",
                    column: "invoice_no".into(),
                    table: "invoices".into()
                },
                RecipeError::KeyNotAColumn {
                    key: "tenant key",
                    column: "org_id".into(),
                    table: "invoices".into()
                },
            ]
        );
        assert_eq!(
            errs[1].to_string(),
            "the tenant key `org_id` is not a column of table `invoices`"
        );
        let table = r.sample();
        let errs = errors(build(
            r,
            &table,
            &map(&[("reason", "id"), ("status", "tenant_id")]),
            &at(Engine::Postgres),
        ));
        assert_eq!(
            errs,
            vec![
                RecipeError::KeyColumn {
                    field: "reason".into(),
                    column: "id".into(),
                    key: "primary key"
                },
                RecipeError::KeyColumn {
                    field: "status".into(),
                    column: "tenant_id".into(),
                    key: "tenant key"
                },
            ]
        );
        assert!(
            errs[0]
                .to_string()
                .starts_with("column `id` is the primary key")
        );
    }

    #[test]
    fn one_column_cannot_play_two_fields() {
        let r = recipe("billing.late_fee_waiver");
        let errs = errors(build(
            r,
            &r.sample(),
            &map(&[("status", "waiver_reason")]),
            &at(Engine::Postgres),
        ));
        assert_eq!(
            errs,
            vec![RecipeError::SharedColumn {
                column: "waiver_reason".into(),
                first: "reason".into(),
                second: "status".into()
            }]
        );
        assert_eq!(
            errs[0].to_string(),
            "column `waiver_reason` is used for both `reason` and `status`; map each field to its own column"
        );
        // A required field may take the column an optional field would have
        // shown by default: the optional one is then left out.
        let built = build(
            r,
            &r.sample(),
            &map(&[("reason", "status")]),
            &at(Engine::Postgres),
        )
        .unwrap();
        assert_eq!(
            built.capability["visible_columns"],
            json!(["id", "tenant_id", "late_fee_cents", "status", "updated_at"])
        );
        assert_eq!(
            built.capability["patch"]["status"],
            json!({"from_arg": "reason"})
        );
    }

    #[test]
    fn sqlite_text_timestamps_fit_but_not_elsewhere() {
        let r = recipe("accounts.trial_extension");
        let mut table = r.sample();
        for c in &mut table.columns {
            c.data_type = "TEXT".into();
        }
        assert!(build(r, &table, &no_map(), &at(Engine::Sqlite)).is_ok());
        let errs = errors(build(r, &table, &no_map(), &at(Engine::Postgres)));
        let fields: Vec<String> = errs
            .iter()
            .map(|e| match e {
                RecipeError::IncompatibleType { field, .. } => field.clone(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(fields, ["trial_ends_at", "version"]);
    }

    fn reference() -> Config {
        crate::load::load_config_str(crate::REFERENCE_CONFIG)
            .config
            .unwrap()
    }

    #[test]
    fn hints_come_from_the_same_table_first() {
        let cfg = reference();
        assert_eq!(
            config_hints(&cfg, "app_postgres", "invoices"),
            ConfigHints {
                schema: Some("public".into()),
                primary_key: Some("id".into()),
                tenant_key: Some("tenant_id".into()),
                single_tenant: false,
                context: Some("local_operator".into()),
            }
        );
        assert_eq!(
            config_hints(&cfg, "app_postgres", "payments"),
            ConfigHints {
                schema: Some("public".into()),
                primary_key: None,
                tenant_key: Some("tenant_id".into()),
                single_tenant: false,
                context: Some("local_operator".into()),
            }
        );
        assert_eq!(
            config_hints(&cfg, "elsewhere", "invoices"),
            ConfigHints::default()
        );
    }

    #[test]
    fn hints_from_other_tables_need_agreement() {
        let mut v: Value = serde_json::from_str(crate::REFERENCE_CONFIG).unwrap();
        v["capabilities"][0]["target"]["tenant_key"] = json!("org_id");
        v["capabilities"][1]["target"]["schema"] = json!("billing");
        v["capabilities"][4]
            .as_object_mut()
            .unwrap()
            .remove("context");
        v["capabilities"][2]["target"]
            .as_object_mut()
            .unwrap()
            .remove("tenant_key");
        v["capabilities"][2]["target"]["single_tenant_dev"] = json!(true);
        v["capabilities"][2]["single_tenant_dev_ack"] = json!(true);
        let cfg = load_config(&v).config.unwrap();
        assert_eq!(
            config_hints(&cfg, "app_postgres", "payments"),
            ConfigHints::default()
        );
        let same = config_hints(&cfg, "app_postgres", "customers");
        assert_eq!(same.tenant_key, None);
        assert!(same.single_tenant);
        assert_eq!(same.context, Some("local_operator".into()));
        assert_eq!(same.primary_key, Some("id".into()));
        // The tenant keys other than the odd one out still agree without it.
        v["capabilities"][0]["target"]["tenant_key"] = json!("tenant_id");
        let cfg = load_config(&v).config.unwrap();
        assert_eq!(
            config_hints(&cfg, "app_postgres", "payments").tenant_key,
            Some("tenant_id".into())
        );
    }

    #[test]
    fn agreement_is_one_distinct_value() {
        let a = "a".to_owned();
        let b = "b".to_owned();
        assert_eq!(agreed([].into_iter()), None);
        assert_eq!(agreed([Some(&a), Some(&a)].into_iter()), Some("a".into()));
        assert_eq!(agreed([Some(&a), Some(&b)].into_iter()), None);
        assert_eq!(agreed([None, Some(&a)].into_iter()), None);
        assert_eq!(agreed([None, None].into_iter()), None);
    }

    #[test]
    fn the_tenant_choice_prefers_the_config_then_the_only_tenant_shaped_column() {
        let r = recipe("billing.late_fee_waiver");
        let table = r.sample();
        let hints = ConfigHints {
            tenant_key: Some("tenant_id".into()),
            ..ConfigHints::default()
        };
        assert_eq!(
            tenant_choice(&hints, &table),
            Some(TenantChoice::Config("tenant_id".into()))
        );
        let single = ConfigHints {
            single_tenant: true,
            ..hints.clone()
        };
        assert_eq!(
            tenant_choice(&single, &table),
            Some(TenantChoice::SingleTenant)
        );
        let elsewhere = ConfigHints {
            tenant_key: Some("org_id".into()),
            ..ConfigHints::default()
        };
        assert_eq!(
            tenant_choice(&elsewhere, &table),
            Some(TenantChoice::Guessed("tenant_id".into()))
        );
        let mut two = table.clone();
        two.columns.push(col("workspace_id", "text"));
        assert_eq!(tenant_choice(&ConfigHints::default(), &two), None);
        let mut none = table;
        none.columns.retain(|c| c.name != "tenant_id");
        assert_eq!(tenant_choice(&ConfigHints::default(), &none), None);
    }
}
