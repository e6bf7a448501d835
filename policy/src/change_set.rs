//! Change sets: the exact, guarded description of one proposed row change.
//!
//! [`build`] turns (capability, validated args, trusted context, current row)
//! into a change set. [`verify`] is what the executor runs on a change set it
//! receives: it rebuilds the change set from the submitted arguments and
//! before-image with its *own* config and reports every field where the
//! submission differs — so a forged patch, an altered fixed value, a foreign
//! table or an unclaimable tenant can never pass (invariant 5). The executor
//! then stores its rebuilt copy, never the submitted one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::args::{ValidArgs, scalar_eq, validate_args};
use crate::canonical::{hash_serializable, hash_value};
use crate::config::{
    Capability, Config, ConflictGuard, DedupSource, Engine, Kind, OperationKind, PatchValue,
    ProposalSpec, VersionStrategy,
};
use crate::context::{TrustedContext, is_valid_context_value};
use crate::identifier::is_safe_identifier;

/// A column and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnValue {
    pub column: String,
    pub value: Value,
}

/// The one row a change set targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    pub schema: String,
    pub table: String,
    pub primary_key: ColumnValue,
}

/// A state transition a guard allowed at proposal time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub column: String,
    pub from: Value,
    pub to: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guards {
    /// Tenant column and value; `None` only for acknowledged single-tenant targets.
    pub tenant: Option<ColumnValue>,
    pub allowed_columns: Vec<String>,
    /// Version column and the value it must still have at apply time.
    pub expected_version: Option<ColumnValue>,
    /// Weak guard: hash of the row's read columns at proposal time.
    pub row_hash: Option<String>,
    pub transitions: Vec<Transition>,
    /// INSERT: the identity a source unique constraint enforces, column by
    /// column. A `proposal_id` component has no value here: the executor
    /// fills in the proposal's id when it applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deduplication: Vec<DedupValue>,
    /// Principal row scope: the principal scope key and the trusted
    /// principal the row must still be assigned to at apply time. Absent
    /// (and left out of the hash) for capabilities without the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<ColumnValue>,
}

/// One column of an INSERT's de-duplication identity and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupValue {
    pub column: String,
    /// `proposal_id`, `trusted_tenant` or `fixed`.
    pub source: String,
    /// `None` for `proposal_id` (known only once the proposal is recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// One proposed change of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSet {
    pub capability: String,
    pub args: Map<String, Value>,
    pub tenant_id: String,
    pub principal: String,
    pub target: TargetRef,
    /// Patched columns (and the version column) as they were read.
    pub before: Map<String, Value>,
    pub patch: Map<String, Value>,
    /// `before` with `patch` applied.
    pub after: Map<String, Value>,
    pub guards: Guards,
    /// What the change does to the row; absent for an UPDATE (so the
    /// hashes of update proposals are what they always were).
    #[serde(default, skip_serializing_if = "OperationKind::is_update")]
    pub operation: OperationKind,
    /// Columns set to the time the executor applies the change (their
    /// values are not known before; `before` holds what they were).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apply_time: Vec<String>,
    /// A bounded set: its frozen members (keys, versions, values before
    /// and after), aggregates and digest. Absent for one row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<crate::bounded_set::FrozenSet>,
}

impl ChangeSet {
    /// The proposal hash: sha256 of the canonical JSON of the change set.
    pub fn hash(&self) -> String {
        hash_serializable(self)
    }

    /// Column, before, after: what the proposal changes, for a person. A
    /// delete shows each column it read going to null; a column set to the
    /// apply time shows the text `(apply time)`; a set shows each member's
    /// changed columns as `<key>.<column>`.
    pub fn diff(&self) -> Vec<(String, Value, Value)> {
        let cs = self;
        if let Some(set) = &cs.set {
            // Member by member: `<key>.<column>`.
            return set
                .members
                .iter()
                .flat_map(|m| {
                    let key = scalar_text(&m.primary_key);
                    m.before.iter().filter_map(move |(col, b)| {
                        let after = if cs.operation == OperationKind::Delete {
                            Some(Value::Null)
                        } else if cs.apply_time.contains(col) {
                            Some(Value::from("(apply time)"))
                        } else {
                            m.after.get(col).filter(|a| *a != b).cloned()
                        };
                        after.map(|a| (format!("{key}.{col}"), b.clone(), a))
                    })
                })
                .collect();
        }
        let before = |col: &str| cs.before.get(col).cloned().unwrap_or(Value::Null);
        if cs.operation == OperationKind::Delete {
            return cs
                .before
                .iter()
                .map(|(col, v)| (col.clone(), v.clone(), Value::Null))
                .collect();
        }
        cs.patch
            .iter()
            .map(|(col, after)| (col.clone(), before(col), after.clone()))
            .chain(
                cs.apply_time
                    .iter()
                    .map(|col| (col.clone(), before(col), Value::from("(apply time)"))),
            )
            .collect()
    }

    /// What the change is about, as text (the ledger's `object_id` and the
    /// idempotency key's suffix): the row's key, or `set_` and the first 8
    /// hex digits of a set's digest (Synapsor Runner's form). An insert has no key yet: `null`,
    /// as it always was (its identity holds the proposal id).
    pub fn object_id(&self) -> String {
        match &self.set {
            Some(set) => format!(
                "set_{}",
                set.set_digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(8)
                    .collect::<String>()
            ),
            None => scalar_text(&self.target.primary_key.value),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    UnknownCapability,
    NotAProposal,
    InvalidArgument,
    InvalidContext,
    TenantNotClaimable,
    TenantMismatch,
    TargetMismatch,
    ColumnNotAllowed,
    MissingColumn,
    UnexpectedColumn,
    FixedValueAltered,
    PatchValueMismatch,
    AfterMismatch,
    NumericBound,
    TransitionNotAllowed,
    GuardMismatch,
    MissingVersion,
    InvalidValue,
    /// Every patched column already holds its proposed value.
    NoChange,
    /// A bounded set is empty, over its cap, or not what the reviewed
    /// selection matches (a widened, narrowed or swapped member).
    SetMismatch,
    /// A set's total is over a reviewed aggregate bound.
    AggregateBound,
    /// The row is not the trusted principal's, or the principal guard is
    /// not the principal scope key with the claimed principal.
    PrincipalMismatch,
}

/// One reason a change set is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violation {
    pub code: ViolationCode,
    /// Where in the change set (`patch.status`, `guards.tenant`…).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

pub(crate) fn violation(
    code: ViolationCode,
    path: impl Into<String>,
    message: impl Into<String>,
) -> Violation {
    Violation {
        code,
        path: path.into(),
        message: message.into(),
    }
}

/// Does a row's tenant value equal the trusted tenant id? Numeric tenant
/// columns compare by their decimal text.
pub fn tenant_matches(row_value: &Value, tenant_id: &str) -> bool {
    match row_value {
        Value::String(s) => s == tenant_id,
        Value::Number(n) => n.to_string() == tenant_id,
        _ => false,
    }
}

/// The principal guard a change of `cap`'s row carries for `ctx`: the
/// principal scope key with the trusted principal (`None` without a
/// principal scope). Also the value a guarded INSERT must write into that
/// column.
pub fn principal_guard(cap: &Capability, ctx: &TrustedContext) -> Option<ColumnValue> {
    cap.target
        .principal_scope_key
        .as_ref()
        .map(|col| ColumnValue {
            column: col.clone(),
            value: Value::String(ctx.principal.clone()),
        })
}

/// Whether `row` is in the trusted principal's scope: always without a
/// principal scope key; else its principal column must equal the trusted
/// principal exactly, as text (as the SQL predicate compares it).
pub fn principal_in_scope(cap: &Capability, row: &Map<String, Value>, principal: &str) -> bool {
    cap.target
        .principal_scope_key
        .as_ref()
        .is_none_or(|col| row.get(col).is_some_and(|v| tenant_matches(v, principal)))
}

/// Build the change set for a proposal from the current row.
///
/// `row` holds the columns of [`Capability::read_columns`] as read within
/// the trusted tenant (empty for an INSERT, which reads no row). Guards
/// that the row or arguments already violate (transitions, numeric
/// bounds) are refused here, before anything is sent.
pub fn build(
    cap: &Capability,
    args: &ValidArgs,
    ctx: &TrustedContext,
    row: &Map<String, Value>,
) -> Result<ChangeSet, Vec<Violation>> {
    let Some(p) = cap.proposal.as_ref().filter(|_| cap.kind == Kind::Proposal) else {
        return Err(vec![violation(
            ViolationCode::NotAProposal,
            "capability",
            format!("`{}` is not a proposal capability", cap.name),
        )]);
    };
    if p.set().is_some() {
        return Err(vec![violation(
            ViolationCode::SetMismatch,
            "set",
            format!(
                "`{}` changes a bounded set: it is built from the rows its selection matched",
                cap.name
            ),
        )]);
    }
    let object_id = match p.kind() {
        OperationKind::Insert => Value::Null,
        _ => args.get(&cap.lookup_arg).cloned().unwrap_or(Value::Null),
    };
    build_row(cap, p, args, ctx, row, object_id)
}

/// The change of one row keyed `object_id` (for a bounded set: one member).
pub(crate) fn build_row(
    cap: &Capability,
    p: &ProposalSpec,
    args: &ValidArgs,
    ctx: &TrustedContext,
    row: &Map<String, Value>,
    object_id: Value,
) -> Result<ChangeSet, Vec<Violation>> {
    let mut errors = Vec::new();
    let kind = p.kind();

    let tenant = match &cap.target.tenant_key {
        Some(col) => {
            let ours = row
                .get(col)
                .is_some_and(|v| tenant_matches(v, &ctx.tenant_id));
            if kind != OperationKind::Insert && !ours {
                errors.push(violation(
                    ViolationCode::TenantMismatch,
                    "guards.tenant",
                    "the row does not belong to the trusted tenant",
                ));
            }
            Some(ColumnValue {
                column: col.clone(),
                value: Value::String(ctx.tenant_id.clone()),
            })
        }
        None => None,
    };

    let principal = principal_guard(cap, ctx);
    if kind != OperationKind::Insert && !principal_in_scope(cap, row, &ctx.principal) {
        errors.push(violation(
            ViolationCode::PrincipalMismatch,
            "guards.principal",
            "the row is not in the trusted principal's scope",
        ));
    }

    let mut before = Map::new();
    let mut patch = Map::new();
    let mut apply_time = Vec::new();
    for (col, binding) in &p.patch {
        if kind != OperationKind::Insert {
            match row.get(col) {
                Some(v) => {
                    before.insert(col.clone(), v.clone());
                }
                None => errors.push(violation(
                    ViolationCode::MissingColumn,
                    format!("before.{col}"),
                    format!("the current row has no column `{col}`"),
                )),
            }
        }
        match patch_value(col, binding, row.get(col), args) {
            Ok(Some(value)) => {
                patch.insert(col.clone(), value);
            }
            Ok(None) => apply_time.push(col.clone()),
            Err(v) => errors.push(v),
        }
    }
    if kind == OperationKind::Delete {
        // What the reviewer sees being removed: the row as read.
        for col in cap.read_columns() {
            if let Some(v) = row.get(col)
                && col != cap.target.primary_key
            {
                before.insert(col.to_owned(), v.clone());
            }
        }
    }

    // A proposal that changes nothing would ask a person to approve nothing.
    if kind == OperationKind::Update
        && apply_time.is_empty()
        && patch
            .iter()
            .all(|(col, v)| before.get(col).is_some_and(|b| scalar_eq(b, v)))
    {
        errors.push(violation(
            ViolationCode::NoChange,
            "patch",
            "the proposal changes nothing: every patched column already holds its proposed value",
        ));
    }

    let expected_version = match &p.conflict_guard {
        ConflictGuard::Column { column } => match row.get(column) {
            Some(Value::Null) | None => {
                errors.push(violation(
                    ViolationCode::MissingVersion,
                    format!("before.{column}"),
                    format!("the row's conflict-guard column `{column}` is empty, so a stale change could not be detected"),
                ));
                None
            }
            Some(v) => {
                if p.operation.version_advance == Some(VersionStrategy::IntegerIncrement)
                    && !(v.is_i64() || v.is_u64())
                {
                    errors.push(violation(
                        ViolationCode::InvalidValue,
                        format!("before.{column}"),
                        format!("the version column `{column}` holds {v}, not an integer, so it cannot advance by one"),
                    ));
                }
                before.insert(column.clone(), v.clone());
                Some(ColumnValue {
                    column: column.clone(),
                    value: v.clone(),
                })
            }
        },
        ConflictGuard::RowHash | ConflictGuard::None => None,
    };
    let row_hash = matches!(p.conflict_guard, ConflictGuard::RowHash).then(|| row_hash(cap, row));

    check_numeric_bounds(p, &patch, &mut errors);
    let transitions = check_transitions(p, row, &patch, &mut errors);

    if !errors.is_empty() {
        return Err(errors);
    }
    let deduplication = dedup_values(p, ctx);
    let after = match kind {
        OperationKind::Update => {
            let mut after = before.clone();
            for (k, v) in &patch {
                after.insert(k.clone(), v.clone());
            }
            after
        }
        OperationKind::Insert => {
            // The new row as far as it is known before apply: the patch,
            // the tenant, and every identity value but the proposal id.
            let mut after = patch.clone();
            for g in tenant.iter().chain(&principal) {
                after.insert(g.column.clone(), g.value.clone());
            }
            for d in &deduplication {
                if let Some(v) = &d.value {
                    after.insert(d.column.clone(), v.clone());
                }
            }
            after
        }
        OperationKind::Delete => Map::new(),
    };
    Ok(ChangeSet {
        capability: cap.name.clone(),
        args: args.clone(),
        tenant_id: ctx.tenant_id.clone(),
        principal: ctx.principal.clone(),
        target: TargetRef {
            schema: cap.target.schema.clone(),
            table: cap.target.table.clone(),
            primary_key: ColumnValue {
                column: cap.target.primary_key.clone(),
                value: object_id,
            },
        },
        before,
        patch,
        after,
        guards: Guards {
            tenant,
            allowed_columns: p.allowed_columns.clone(),
            expected_version,
            row_hash,
            transitions,
            principal,
            deduplication,
        },
        operation: kind,
        apply_time,
        set: None,
    })
}

/// The value a patch binding gives a column: `Ok(None)` for the apply
/// time, which only the executor knows. Increments and decrements start
/// from the row's current value and stay exact for integers.
pub fn patch_value(
    col: &str,
    binding: &PatchValue,
    current: Option<&Value>,
    args: &ValidArgs,
) -> Result<Option<Value>, Violation> {
    let step = |arg: &str, sign: i64| -> Result<Option<Value>, Violation> {
        let n = args.get(arg).unwrap_or(&Value::Null);
        let cur = current.unwrap_or(&Value::Null);
        let exact = match (cur.as_i64(), n.as_i64()) {
            (Some(a), Some(b)) => Some(b.checked_mul(sign).and_then(|d| a.checked_add(d))),
            _ => None,
        };
        let value = match exact {
            Some(Some(sum)) => Some(Value::from(sum)),
            Some(None) => None,
            None => match (cur.as_f64(), n.as_f64()) {
                (Some(a), Some(b)) => {
                    serde_json::Number::from_f64(a + b * sign as f64).map(Value::Number)
                }
                _ => {
                    return Err(violation(
                        ViolationCode::InvalidValue,
                        format!("patch.{col}"),
                        format!("`{col}` holds {cur}, not a number, so it cannot change by a step"),
                    ));
                }
            },
        };
        value.map(Some).ok_or_else(|| {
            violation(
                ViolationCode::NumericBound,
                format!("patch.{col}"),
                format!("`{col}` would overflow"),
            )
        })
    };
    match binding {
        PatchValue::Fixed(v) => Ok(Some(v.clone())),
        PatchValue::FromArg(arg) => Ok(Some(args.get(arg).cloned().unwrap_or(Value::Null))),
        PatchValue::IncrementFromArg(arg) => step(arg, 1),
        PatchValue::DecrementFromArg(arg) => step(arg, -1),
        PatchValue::ApplyTime => Ok(None),
    }
}

fn check_numeric_bounds(p: &ProposalSpec, patch: &Map<String, Value>, errors: &mut Vec<Violation>) {
    for (col, bounds) in &p.numeric_bounds {
        if let Some(v) = patch.get(col) {
            let n = v.as_f64();
            let within = n.is_some_and(|n| {
                bounds.minimum.is_none_or(|lo| n >= lo) && bounds.maximum.is_none_or(|hi| n <= hi)
            });
            if !within {
                let range = match (bounds.minimum, bounds.maximum) {
                    (Some(lo), Some(hi)) => format!("from {lo} to {hi}"),
                    (Some(lo), None) => format!("at least {lo}"),
                    (None, Some(hi)) => format!("at most {hi}"),
                    (None, None) => "a number".to_owned(),
                };
                errors.push(violation(
                    ViolationCode::NumericBound,
                    format!("patch.{col}"),
                    format!("`{col}` would be {v}; it must be {range}"),
                ));
            }
        }
    }
}

fn check_transitions(
    p: &ProposalSpec,
    row: &Map<String, Value>,
    patch: &Map<String, Value>,
    errors: &mut Vec<Violation>,
) -> Vec<Transition> {
    let mut transitions = Vec::new();
    for (col, guard) in &p.transition_guards {
        let Some(to) = patch.get(col) else { continue };
        let from_col = guard.from_column.as_deref().unwrap_or(col);
        let from = row.get(from_col).cloned().unwrap_or(Value::Null);
        let allowed = from
            .as_str()
            .and_then(|f| guard.allowed.get(f))
            .is_some_and(|tos| to.as_str().is_some_and(|t| tos.iter().any(|x| x == t)));
        if allowed {
            transitions.push(Transition {
                column: col.clone(),
                from,
                to: to.clone(),
            });
        } else {
            let options = from
                .as_str()
                .and_then(|f| guard.allowed.get(f))
                .map(|tos| tos.join(", "));
            let hint = match options {
                Some(o) if !o.is_empty() => format!("from {from} it may only move to: {o}"),
                _ => format!("no change of `{col}` is allowed while `{from_col}` is {from}"),
            };
            errors.push(violation(
                ViolationCode::TransitionNotAllowed,
                format!("patch.{col}"),
                format!("`{col}` cannot move from {from} to {to}; {hint}"),
            ));
        }
    }
    transitions
}

/// An INSERT's identity values from the reviewed components.
fn dedup_values(p: &ProposalSpec, ctx: &TrustedContext) -> Vec<DedupValue> {
    p.operation
        .deduplication
        .iter()
        .map(|c| {
            let (source, value) = match &c.source {
                DedupSource::ProposalId => ("proposal_id", None),
                DedupSource::TrustedTenant => {
                    ("trusted_tenant", Some(Value::String(ctx.tenant_id.clone())))
                }
                DedupSource::Fixed(v) => ("fixed", Some(v.clone())),
            };
            DedupValue {
                column: c.column.clone(),
                source: source.to_owned(),
                value,
            }
        })
        .collect()
}

/// Weak conflict guard: hash of the row's read columns, in a fixed order.
pub fn row_hash(cap: &Capability, row: &Map<String, Value>) -> String {
    let cols: Map<String, Value> = cap
        .read_columns()
        .into_iter()
        .map(|c| (c.to_owned(), row.get(c).cloned().unwrap_or(Value::Null)))
        .collect();
    hash_value(&Value::Object(cols))
}

pub(crate) fn is_tagged_sha256(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Re-validate a submitted change set against `config` (invariant 5).
///
/// `may_claim` says whether the submitting peer may act for a tenant. On
/// success the executor's own rebuilt change set is returned; on failure,
/// every violation found.
pub fn verify(
    config: &Config,
    submitted: &ChangeSet,
    may_claim: &dyn Fn(&str) -> bool,
) -> Result<ChangeSet, Vec<Violation>> {
    use ViolationCode as V;
    let Some(cap) = config.capability(&submitted.capability) else {
        return Err(vec![violation(
            V::UnknownCapability,
            "capability",
            "no capability of that name in the executor's config",
        )]);
    };
    if cap.kind != Kind::Proposal {
        return Err(vec![violation(
            V::NotAProposal,
            "capability",
            format!(
                "`{}` is a read capability; it cannot propose changes",
                cap.name
            ),
        )]);
    }
    let Some(p) = &cap.proposal else {
        return Err(vec![violation(
            V::NotAProposal,
            "capability",
            "not a proposal capability",
        )]);
    };
    if p.set().is_some() || submitted.set.is_some() {
        return crate::bounded_set::verify(config, cap, p, submitted, may_claim);
    }
    let mut errors = Vec::new();
    let args = check_args_and_context(cap, submitted, may_claim, &mut errors);

    // The before-image may hold only the patched columns and the version
    // column (a delete: the columns it read; an insert: nothing).
    let version_col = p.version_column();
    let read_columns = cap.read_columns();
    for (col, v) in &submitted.before {
        let expected = match p.kind() {
            OperationKind::Update => {
                p.patch.iter().any(|(c, _)| c == col) || version_col == Some(col.as_str())
            }
            OperationKind::Delete => {
                read_columns.contains(&col.as_str()) && *col != cap.target.primary_key
            }
            OperationKind::Insert => false,
        };
        if !is_safe_identifier(col) {
            errors.push(violation(
                V::UnexpectedColumn,
                "before",
                "unsafe column name in before",
            ));
        } else if !expected {
            errors.push(violation(
                V::UnexpectedColumn,
                format!("before.{col}"),
                match p.kind() {
                    OperationKind::Insert => "an insert has no before-image".to_owned(),
                    _ => format!("`{col}` is neither patched nor the version column"),
                },
            ));
        }
        if v.is_array() || v.is_object() {
            errors.push(violation(
                V::InvalidValue,
                format!("before.{col}"),
                "column values must be scalars",
            ));
        }
    }
    let (Some(args), true) = (args, errors.is_empty()) else {
        return Err(errors);
    };

    // Rebuild from the executor's config, the validated args and the claimed before-image.
    let mut row = submitted.before.clone();
    row.insert(
        cap.target.primary_key.clone(),
        args.get(&cap.lookup_arg).cloned().unwrap_or(Value::Null),
    );
    if let Some(tk) = &cap.target.tenant_key {
        row.insert(tk.clone(), Value::String(submitted.tenant_id.clone()));
    }
    if let Some(pk) = &cap.target.principal_scope_key {
        row.insert(pk.clone(), Value::String(submitted.principal.clone()));
    }
    let ctx = TrustedContext {
        tenant_id: submitted.tenant_id.clone(),
        principal: submitted.principal.clone(),
        source: config.context_for(cap).provider,
    };
    let mut rebuilt = build(cap, &args, &ctx, &row)?;
    if matches!(p.conflict_guard, ConflictGuard::RowHash) {
        match &submitted.guards.row_hash {
            Some(h) if is_tagged_sha256(h) => rebuilt.guards.row_hash = Some(h.clone()),
            _ => errors.push(violation(
                V::GuardMismatch,
                "guards.row_hash",
                "a row-hash guard must be `sha256:` and 64 hex digits",
            )),
        }
    }

    if submitted.target != rebuilt.target {
        errors.push(violation(
            V::TargetMismatch,
            "target",
            format!(
                "the target must be {}.{} keyed by {} = the `{}` argument",
                rebuilt.target.schema,
                rebuilt.target.table,
                rebuilt.target.primary_key.column,
                cap.lookup_arg
            ),
        ));
    }
    for (col, v) in &submitted.patch {
        match p.patch.iter().find(|(c, _)| c == col) {
            None if !p.allowed_columns.contains(col) => {
                errors.push(violation(
                    V::ColumnNotAllowed,
                    format!("patch.{col}"),
                    format!("`{col}` is not an allowed column"),
                ));
            }
            None => errors.push(violation(
                V::ColumnNotAllowed,
                format!("patch.{col}"),
                format!("`{col}` is not set by this capability's patch"),
            )),
            Some((_, PatchValue::Fixed(fixed))) if !scalar_eq(fixed, v) => {
                errors.push(violation(
                    V::FixedValueAltered,
                    format!("patch.{col}"),
                    format!("`{col}` is fixed to {fixed} by the reviewed config"),
                ));
            }
            Some((_, PatchValue::ApplyTime)) => errors.push(violation(
                V::PatchValueMismatch,
                format!("patch.{col}"),
                format!("`{col}` is set to the apply time by the executor, never by a value"),
            )),
            Some((_, binding)) if !rebuilt.patch.get(col).is_some_and(|r| scalar_eq(r, v)) => {
                let rule = match binding {
                    PatchValue::IncrementFromArg(arg) => {
                        format!("its value before plus the `{arg}` argument")
                    }
                    PatchValue::DecrementFromArg(arg) => {
                        format!("its value before minus the `{arg}` argument")
                    }
                    PatchValue::FromArg(arg) => format!("the `{arg}` argument"),
                    _ => "the reviewed value".to_owned(),
                };
                errors.push(violation(
                    V::PatchValueMismatch,
                    format!("patch.{col}"),
                    format!("`{col}` must equal {rule}"),
                ));
            }
            Some(_) => {}
        }
    }
    for col in rebuilt.patch.keys() {
        if !submitted.patch.contains_key(col) {
            errors.push(violation(
                V::MissingColumn,
                format!("patch.{col}"),
                format!("the patch must set `{col}`"),
            ));
        }
    }
    if !maps_equal(&submitted.after, &rebuilt.after) {
        errors.push(violation(
            V::AfterMismatch,
            "after",
            "after must be exactly before with the patch applied",
        ));
    }
    if submitted.guards.tenant != rebuilt.guards.tenant {
        errors.push(violation(
            V::TenantMismatch,
            "guards.tenant",
            "the tenant guard must be the tenant key with the claimed tenant id",
        ));
    }
    if submitted.guards.principal != rebuilt.guards.principal {
        errors.push(violation(
            V::PrincipalMismatch,
            "guards.principal",
            "the principal guard must be the principal scope key with the claimed principal",
        ));
    }
    if submitted.guards.allowed_columns != rebuilt.guards.allowed_columns {
        errors.push(violation(
            V::GuardMismatch,
            "guards.allowed_columns",
            "allowed columns must equal the reviewed config's",
        ));
    }
    if submitted.guards.expected_version != rebuilt.guards.expected_version {
        errors.push(violation(
            V::GuardMismatch,
            "guards.expected_version",
            "the expected version must be the version column's value in before",
        ));
    }
    if submitted.guards.transitions != rebuilt.guards.transitions {
        errors.push(violation(
            V::GuardMismatch,
            "guards.transitions",
            "transitions must match the config's transition guards",
        ));
    }
    if submitted.guards.deduplication != rebuilt.guards.deduplication {
        errors.push(violation(
            V::GuardMismatch,
            "guards.deduplication",
            "the de-duplication identity must be the reviewed config's, with the trusted tenant",
        ));
    }
    if submitted.operation != rebuilt.operation {
        errors.push(violation(
            V::GuardMismatch,
            "operation",
            format!(
                "this capability's operation is {}",
                rebuilt.operation.as_str()
            ),
        ));
    }
    if submitted.apply_time != rebuilt.apply_time {
        errors.push(violation(
            V::GuardMismatch,
            "apply_time",
            "the columns set to the apply time must be the reviewed config's",
        ));
    }
    if errors.is_empty() {
        Ok(rebuilt)
    } else {
        Err(errors)
    }
}

/// The submitted arguments against the capability, and the claimed
/// tenant and principal against the context rules and this peer.
pub(crate) fn check_args_and_context(
    cap: &Capability,
    submitted: &ChangeSet,
    may_claim: &dyn Fn(&str) -> bool,
    errors: &mut Vec<Violation>,
) -> Option<ValidArgs> {
    use ViolationCode as V;
    let args = match validate_args(cap, Some(&Value::Object(submitted.args.clone()))) {
        Ok(a) => Some(a),
        Err(errs) => {
            errors.extend(errs.into_iter().map(|e| {
                violation(
                    V::InvalidArgument,
                    format!("args.{}", e.argument),
                    e.message,
                )
            }));
            None
        }
    };
    if !is_valid_context_value(&submitted.tenant_id)
        || !is_valid_context_value(&submitted.principal)
    {
        errors.push(violation(V::InvalidContext, "tenant_id", "tenant and principal must be non-empty, at most 128 characters, without control characters"));
    } else if !may_claim(&submitted.tenant_id) {
        errors.push(violation(
            V::TenantNotClaimable,
            "tenant_id",
            "this proposer connection may not act for that tenant",
        ));
    }
    args
}

pub(crate) fn maps_equal(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| scalar_eq(v, w)))
}

/// Context for the `synapsor.change-set.v1` export that the change set
/// itself does not carry.
#[derive(Debug, Clone)]
pub struct ExportMeta<'a> {
    pub proposal_id: &'a str,
    pub source_id: &'a str,
    pub engine: Engine,
    pub evidence_bundle_id: &'a str,
    pub query_fingerprint: &'a str,
    pub evidence_items: Vec<Value>,
    /// `pending` | `approved` | `rejected` | `canceled`.
    pub approval_status: &'a str,
    pub required_role: Option<&'a str>,
    /// `not_applied` | `pending_worker` | `applied` | `conflict` | `failed` | `canceled`.
    pub writeback_status: &'a str,
    pub source_database_mutated: bool,
    pub principal_source: &'a str,
    pub created_at: &'a str,
}

/// Export a change set in the `synapsor.change-set.v1` shape (field names
/// and meaning of Synapsor Runner's golden object).
pub fn export_v1(cs: &ChangeSet, meta: &ExportMeta) -> Value {
    let source_kind = match meta.engine {
        Engine::Postgres => "external_postgres",
        Engine::Mysql => "external_mysql",
        Engine::Sqlite => "external_sqlite",
    };
    let business_object = cs
        .target
        .table
        .strip_suffix('s')
        .filter(|s| !s.is_empty())
        .unwrap_or(&cs.target.table);
    let mut approval = json!({ "status": meta.approval_status });
    if let Some(role) = meta.required_role {
        approval["required_role"] = json!(role);
    }
    let mut out = json!({
        "schema_version": "synapsor.change-set.v1",
        "proposal_id": meta.proposal_id,
        "proposal_version": 1,
        "action": cs.capability,
        "mode": "review_required",
        "principal": { "id": cs.principal, "source": meta.principal_source },
        "scope": {
            "tenant_id": cs.tenant_id,
            "business_object": business_object,
            "object_id": cs.object_id(),
        },
        "source": {
            "kind": source_kind,
            "source_id": meta.source_id,
            "schema": cs.target.schema,
            "table": cs.target.table,
            "primary_key": cs.target.primary_key,
        },
        "before": cs.before,
        "patch": cs.patch,
        "after": cs.after,
        "guards": {
            "tenant": cs.guards.tenant,
            "allowed_columns": cs.guards.allowed_columns,
            "expected_version": cs.guards.expected_version.clone()
                .unwrap_or(ColumnValue { column: "_row_hash".into(), value: json!(cs.guards.row_hash) }),
        },
        "evidence": {
            "bundle_id": meta.evidence_bundle_id,
            "query_fingerprint": meta.query_fingerprint,
            "items": meta.evidence_items,
        },
        "approval": approval,
        "writeback": { "status": meta.writeback_status, "mode": "trusted_worker_required" },
        "source_database_mutated": meta.source_database_mutated,
        "integrity": { "proposal_hash": cs.hash() },
        "created_at": meta.created_at,
    });
    // The principal row scope held, only for principal-scoped changes.
    if let Some(p) = &cs.guards.principal {
        out["guards"]["principal"] = json!(p);
    }
    out
}

/// A scalar as plain text (strings unquoted).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
