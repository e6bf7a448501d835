//! Bounded sets: one proposal that updates or deletes up to 100 rows a
//! reviewed selection chose (`operation.cardinality: "set"`).
//!
//! The model picks no row: the selection (fixed `column = value` terms,
//! or a reviewed list of keys) is the reviewer's, scoped by the trusted
//! tenant and principal. When a set is proposed its members are frozen —
//! each key, version and value before and after, the totals the reviewed
//! aggregate bounds cap, and a digest over all of it — and the proposal
//! hash covers them. The executor checks the members are exactly what the
//! selection matches when it takes the proposal in; apply then locks the
//! frozen members by key, in key order, never re-running the selection,
//! and one stale member aborts the whole set.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::args::{ValidArgs, scalar_eq};
use crate::canonical::hash_value;
use crate::change_set::{
    ChangeSet, ColumnValue, Guards, TargetRef, Violation, ViolationCode as V, build_row,
    check_args_and_context, patch_value, scalar_text, violation,
};
use crate::config::{Capability, Config, Measure, OperationKind, PatchValue, ProposalSpec};
use crate::context::TrustedContext;
use crate::statement::RowCheck;

/// The frozen set a proposal changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrozenSet {
    /// The reviewed cap the set was checked against.
    pub max_rows: u32,
    pub row_count: u32,
    /// Each reviewed bound with the total it had when proposed.
    pub aggregate_bounds: Vec<AggregateActual>,
    /// In primary-key order (the order apply locks them in).
    pub members: Vec<SetMember>,
    /// `sha256:` over the canonical JSON of `members`, in order.
    pub set_digest: String,
}

/// One member: its key, and the row before and after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    pub primary_key: Value,
    /// Every column the capability reads (but the key), as read; apply
    /// checks each one still holds.
    pub before: Map<String, Value>,
    /// `before` with the patch applied (empty for a delete). Columns set
    /// to the apply time keep their value before here.
    pub after: Map<String, Value>,
}

/// A reviewed aggregate bound and the set's total for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateActual {
    pub column: String,
    pub measure: Measure,
    pub maximum: f64,
    pub actual: Value,
}

/// Whether a row read for a set holds every reviewed selection term
/// exactly (and is one of the reviewed keys, if keys are listed): MySQL's
/// `=` ignores case, so the proposer drops rows it matched only loosely.
pub fn selection_matches(cap: &Capability, row: &Map<String, Value>) -> bool {
    let Some(set) = cap.proposal.as_ref().and_then(|p| p.set()) else {
        return false;
    };
    let exact = |want: &Value, got: Option<&Value>| {
        got.is_some_and(|got| match (want, got) {
            (Value::String(w), Value::String(g)) => w == g,
            (Value::String(_), _) | (_, Value::String(_)) => false,
            (w, g) => scalar_eq(w, g),
        })
    };
    set.selection
        .iter()
        .all(|t| exact(&t.value, row.get(&t.column)))
        && (set.keys.is_empty()
            || set.keys.iter().any(|k| {
                row.get(&cap.target.primary_key)
                    .is_some_and(|v| scalar_text(v) == scalar_text(k))
            }))
}

/// Build a set's change set from the rows its selection matched (as read
/// within the trusted tenant, in key order, at most `max_rows + 1`).
pub fn build(
    cap: &Capability,
    args: &ValidArgs,
    ctx: &TrustedContext,
    rows: &[Map<String, Value>],
) -> Result<ChangeSet, Vec<Violation>> {
    let Some((p, set)) = cap.proposal.as_ref().and_then(|p| p.set().map(|s| (p, s))) else {
        return Err(vec![violation(
            V::SetMismatch,
            "set",
            format!("`{}` does not change a bounded set", cap.name),
        )]);
    };
    if rows.is_empty() {
        return Err(vec![violation(
            V::SetMismatch,
            "set.members",
            "the reviewed selection matches no row of this tenant: there is nothing to change",
        )]);
    }
    if rows.len() > set.max_rows as usize {
        return Err(vec![violation(
            V::SetMismatch,
            "set.members",
            format!(
                "the reviewed selection matches more than {} rows (the reviewed `max_rows`); a set is never cut short, so nothing was proposed",
                set.max_rows
            ),
        )]);
    }
    let pk = &cap.target.primary_key;
    let read_columns = cap.read_columns();
    let mut errors = Vec::new();
    let mut members = Vec::with_capacity(rows.len());
    let mut seen: Vec<String> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let at = |path: &str| format!("set.members[{i}].{path}");
        let key = row.get(pk).cloned().unwrap_or(Value::Null);
        if !matches!(key, Value::String(_) | Value::Number(_)) {
            errors.push(violation(
                V::SetMismatch,
                at("primary_key"),
                "a member's primary key must be a string or a number",
            ));
            continue;
        }
        if seen.contains(&scalar_text(&key)) {
            errors.push(violation(
                V::SetMismatch,
                at("primary_key"),
                format!("the key {key} is a member twice"),
            ));
            continue;
        }
        seen.push(scalar_text(&key));
        if let Some(col) = read_columns.iter().find(|c| !row.contains_key(**c)) {
            errors.push(violation(
                V::MissingColumn,
                at(&format!("before.{col}")),
                format!("the member with key {key} has no column `{col}`"),
            ));
            continue;
        }
        if let Some((col, _)) = row
            .iter()
            .find(|(c, v)| !read_columns.contains(&c.as_str()) || v.is_array() || v.is_object())
        {
            errors.push(violation(
                V::UnexpectedColumn,
                at(&format!("before.{col}")),
                format!("`{col}` is not a scalar column this capability reads"),
            ));
            continue;
        }
        if !selection_matches(cap, row) {
            errors.push(violation(
                V::SetMismatch,
                at("before"),
                format!("the row with key {key} does not match the reviewed selection"),
            ));
            continue;
        }
        let one = match build_row(cap, p, args, ctx, row, key.clone()) {
            Ok(one) => one,
            Err(vs) => {
                errors.extend(vs.into_iter().map(|v| Violation {
                    path: at(&v.path),
                    ..v
                }));
                continue;
            }
        };
        let before: Map<String, Value> = row
            .iter()
            .filter(|(c, _)| *c != pk)
            .map(|(c, v)| (c.clone(), v.clone()))
            .collect();
        let after = match p.kind() {
            OperationKind::Delete => Map::new(),
            _ => {
                let mut after = before.clone();
                for (c, v) in &one.patch {
                    after.insert(c.clone(), v.clone());
                }
                after
            }
        };
        members.push(SetMember {
            primary_key: key,
            before,
            after,
        });
    }
    let aggregate_bounds = aggregates(p, &members, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let tenant = cap.target.tenant_key.as_ref().map(|col| ColumnValue {
        column: col.clone(),
        value: Value::String(ctx.tenant_id.clone()),
    });
    // What every member gets alike; a step's result is per member.
    let mut patch = Map::new();
    let mut apply_time = Vec::new();
    for (col, binding) in &p.patch {
        match binding {
            PatchValue::Fixed(_) | PatchValue::FromArg(_) => {
                if let Ok(Some(v)) = patch_value(col, binding, None, args) {
                    patch.insert(col.clone(), v);
                }
            }
            PatchValue::ApplyTime => apply_time.push(col.clone()),
            PatchValue::IncrementFromArg(_) | PatchValue::DecrementFromArg(_) => {}
        }
    }
    let set_digest = hash_value(&json!(members));
    Ok(ChangeSet {
        capability: cap.name.clone(),
        args: args.clone(),
        tenant_id: ctx.tenant_id.clone(),
        principal: ctx.principal.clone(),
        target: TargetRef {
            schema: cap.target.schema.clone(),
            table: cap.target.table.clone(),
            primary_key: ColumnValue {
                column: pk.clone(),
                value: Value::Null,
            },
        },
        before: Map::new(),
        patch,
        after: Map::new(),
        guards: Guards {
            tenant,
            allowed_columns: p.allowed_columns.clone(),
            expected_version: None,
            row_hash: None,
            transitions: Vec::new(),
            deduplication: Vec::new(),
            principal: crate::change_set::principal_guard(cap, ctx),
        },
        operation: p.kind(),
        apply_time,
        set: Some(FrozenSet {
            max_rows: set_max_rows(p),
            row_count: members.len() as u32,
            aggregate_bounds,
            members,
            set_digest,
        }),
        compensation: None,
    })
}

fn set_max_rows(p: &ProposalSpec) -> u32 {
    p.set().map_or(0, |s| s.max_rows)
}

/// A member column's value as a number for an aggregate.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of(v: &Value) -> Option<Num> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .map(|i| Num::Int(i128::from(i)))
                .or_else(|| n.as_u64().map(|u| Num::Int(i128::from(u))))
                .or_else(|| n.as_f64().map(Num::Float)),
            // Exact decimals (Postgres numeric) arrive as text.
            Value::String(s) => s.parse::<i128>().ok().map(Num::Int).or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Num::Float)
            }),
            _ => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => {
                a.checked_add(b).map_or(Num::Float(f64::INFINITY), Num::Int)
            }
            (a, b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn abs_diff(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Num::Int((a - b).abs()),
            (a, b) => Num::Float((a.as_f64() - b.as_f64()).abs()),
        }
    }

    fn to_value(self) -> Value {
        match self {
            Num::Int(i) => i64::try_from(i).map_or_else(|_| json!(i as f64), Value::from),
            Num::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        }
    }
}

/// Each reviewed bound's total over the members; a total over its
/// maximum, or a value that is not a number, is a violation.
fn aggregates(
    p: &ProposalSpec,
    members: &[SetMember],
    errors: &mut Vec<Violation>,
) -> Vec<AggregateActual> {
    let Some(set) = p.set() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (b_i, bound) in set.aggregate_bounds.iter().enumerate() {
        let mut total = Num::Int(0);
        let mut numeric = true;
        for m in members {
            let before = m.before.get(&bound.column).unwrap_or(&Value::Null);
            let after = m.after.get(&bound.column).unwrap_or(before);
            let (Some(b), Some(a)) = (Num::of(before), Num::of(after)) else {
                errors.push(violation(
                    V::InvalidValue,
                    format!("set.aggregate_bounds[{b_i}]"),
                    format!(
                        "the member with key {} holds {before} in `{}`, not a number, so the set's total cannot be bounded",
                        m.primary_key, bound.column
                    ),
                ));
                numeric = false;
                break;
            };
            let term = match bound.measure {
                Measure::Before => b,
                Measure::After => a,
                Measure::AbsoluteDelta => a.abs_diff(b),
            };
            total = total.add(term);
        }
        if !numeric {
            continue;
        }
        let actual = total.as_f64();
        if actual > bound.maximum || !actual.is_finite() {
            errors.push(violation(
                V::AggregateBound,
                format!("set.aggregate_bounds[{b_i}]"),
                format!(
                    "the set's total {} of `{}` is {}; the reviewed maximum is {}",
                    bound.measure.as_str(),
                    bound.column,
                    total.to_value(),
                    bound.maximum
                ),
            ));
            continue;
        }
        out.push(AggregateActual {
            column: bound.column.clone(),
            measure: bound.measure,
            maximum: bound.maximum,
            actual: total.to_value(),
        });
    }
    out
}

/// Re-validate a submitted set change set against the executor's config:
/// rebuild it from the submitted members' values (which the executor
/// then checks against the database, see [`judge_membership`] and
/// [`member_checks`]) and refuse any difference.
pub(crate) fn verify(
    config: &Config,
    cap: &Capability,
    p: &ProposalSpec,
    submitted: &ChangeSet,
    may_claim: &dyn Fn(&str) -> bool,
) -> Result<ChangeSet, Vec<Violation>> {
    let Some(frozen) = submitted.set.as_ref().filter(|_| p.set().is_some()) else {
        return Err(vec![violation(
            V::SetMismatch,
            "set",
            if p.set().is_some() {
                format!(
                    "`{}` changes a bounded set: the change set must carry its frozen members",
                    cap.name
                )
            } else {
                format!("`{}` changes one row, not a set", cap.name)
            },
        )]);
    };
    let mut errors = Vec::new();
    let args = check_args_and_context(cap, submitted, may_claim, &mut errors);
    if frozen.members.len() > set_max_rows(p) as usize {
        errors.push(violation(
            V::SetMismatch,
            "set.members",
            format!("a set holds at most {} members", set_max_rows(p)),
        ));
    }
    let (Some(args), true) = (args, errors.is_empty()) else {
        return Err(errors);
    };
    let ctx = TrustedContext {
        tenant_id: submitted.tenant_id.clone(),
        principal: submitted.principal.clone(),
        source: config.context_for(cap).provider,
    };
    let rows: Vec<Map<String, Value>> = frozen
        .members
        .iter()
        .map(|m| {
            let mut row = m.before.clone();
            row.insert(cap.target.primary_key.clone(), m.primary_key.clone());
            row
        })
        .collect();
    let rebuilt = build(cap, &args, &ctx, &rows)?;
    if rebuilt.hash() == submitted.hash() {
        return Ok(rebuilt);
    }
    Err(differences(submitted, &rebuilt))
}

/// Where a submitted set differs from the executor's rebuild, field by field.
fn differences(submitted: &ChangeSet, rebuilt: &ChangeSet) -> Vec<Violation> {
    let mut out = Vec::new();
    let (Some(s), Some(r)) = (&submitted.set, &rebuilt.set) else {
        return vec![violation(V::SetMismatch, "set", "the set is missing")];
    };
    for (i, (sm, rm)) in s.members.iter().zip(&r.members).enumerate() {
        if !crate::change_set::maps_equal(&sm.after, &rm.after) {
            out.push(violation(
                V::AfterMismatch,
                format!("set.members[{i}].after"),
                "after must be exactly the member's before with the reviewed patch applied",
            ));
        }
    }
    if s.aggregate_bounds != r.aggregate_bounds {
        out.push(violation(
            V::GuardMismatch,
            "set.aggregate_bounds",
            "the aggregate bounds and totals must be the reviewed config's, over the members",
        ));
    }
    if s.set_digest != r.set_digest || s.row_count != r.row_count || s.max_rows != r.max_rows {
        out.push(violation(
            V::SetMismatch,
            "set.set_digest",
            "the set's count, cap and digest must be those of its members",
        ));
    }
    let top = [
        ("target", submitted.target != rebuilt.target),
        (
            "patch",
            !crate::change_set::maps_equal(&submitted.patch, &rebuilt.patch),
        ),
        ("before", !submitted.before.is_empty()),
        ("after", !submitted.after.is_empty()),
        ("guards", submitted.guards != rebuilt.guards),
        ("operation", submitted.operation != rebuilt.operation),
        ("apply_time", submitted.apply_time != rebuilt.apply_time),
    ];
    for (path, differs) in top {
        if differs {
            out.push(violation(
                V::GuardMismatch,
                path,
                format!(
                    "`{path}` of a set must be the reviewed config's (what every member gets alike)"
                ),
            ));
        }
    }
    if out.is_empty() {
        out.push(violation(
            V::SetMismatch,
            "set",
            "the set differs from the executor's rebuild of it",
        ));
    }
    out
}

/// Whether the keys the executor's own run of the selection found now
/// (as text, in key order) are exactly the frozen members, in order.
pub fn judge_membership(cs: &ChangeSet, keys_now: &[String]) -> Result<(), Violation> {
    let Some(set) = &cs.set else {
        return Err(violation(V::SetMismatch, "set", "not a set"));
    };
    let frozen: Vec<String> = set
        .members
        .iter()
        .map(|m| scalar_text(&m.primary_key))
        .collect();
    if frozen == keys_now {
        return Ok(());
    }
    if keys_now.len() > set.max_rows as usize {
        return Err(violation(
            V::SetMismatch,
            "set.members",
            format!(
                "the reviewed selection now matches more than {} rows; nothing was recorded",
                set.max_rows
            ),
        ));
    }
    let listed = |keys: Vec<&String>| {
        keys.iter()
            .take(5)
            .map(|k| format!("`{}`", k.chars().take(64).collect::<String>()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let extra: Vec<&String> = frozen.iter().filter(|k| !keys_now.contains(k)).collect();
    let missing: Vec<&String> = keys_now.iter().filter(|k| !frozen.contains(k)).collect();
    let message = match (extra.is_empty(), missing.is_empty()) {
        (true, true) => "the members are not in primary-key order".to_owned(),
        (false, true) => format!(
            "members {} are not rows the reviewed selection matches for this tenant",
            listed(extra)
        ),
        (true, false) => format!(
            "rows {} match the reviewed selection but are not members",
            listed(missing)
        ),
        (false, false) => format!(
            "members {} are not rows the reviewed selection matches, and rows {} are missing",
            listed(extra),
            listed(missing)
        ),
    };
    Err(violation(
        V::SetMismatch,
        "set.members",
        format!("{message}; a set must be exactly what the selection matches when it is proposed"),
    ))
}

/// Member `i` as a change of one row: its key, values before and after,
/// and its version as the expected version. The executor checks, locks
/// and writes each member with the same statements as a single row.
pub fn member_change(cap: &Capability, cs: &ChangeSet, i: usize) -> Option<ChangeSet> {
    let m = cs.set.as_ref()?.members.get(i)?;
    let p = cap.proposal.as_ref()?;
    // Every patched column but those set to the apply time (a revert
    // restores those too: it lists none).
    let patch: Map<String, Value> = p
        .patch
        .iter()
        .filter(|(c, _)| !cs.apply_time.contains(c))
        .filter_map(|(c, _)| m.after.get(c).map(|v| (c.clone(), v.clone())))
        .collect();
    let expected_version = p.version_column().and_then(|col| {
        m.before.get(col).map(|v| ColumnValue {
            column: col.to_owned(),
            value: v.clone(),
        })
    });
    Some(ChangeSet {
        capability: cs.capability.clone(),
        args: cs.args.clone(),
        tenant_id: cs.tenant_id.clone(),
        principal: cs.principal.clone(),
        target: TargetRef {
            primary_key: ColumnValue {
                column: cap.target.primary_key.clone(),
                value: m.primary_key.clone(),
            },
            ..cs.target.clone()
        },
        before: m.before.clone(),
        patch,
        after: m.after.clone(),
        guards: Guards {
            expected_version,
            ..cs.guards.clone()
        },
        operation: cs.operation,
        apply_time: cs.apply_time.clone(),
        set: None,
        compensation: None,
    })
}

/// What apply checks on a locked member: its version and every value it
/// was frozen with (a member that changed in any way aborts the set).
pub fn member_checks(member: &ChangeSet) -> Vec<RowCheck> {
    let mut checks = Vec::new();
    if let Some(v) = &member.guards.expected_version {
        checks.push(RowCheck {
            label: "version".into(),
            column: v.column.clone(),
            expected: v.value.clone(),
        });
    }
    for (col, v) in &member.before {
        if !checks.iter().any(|c| c.column == *col) {
            checks.push(RowCheck {
                label: format!("before:{col}"),
                column: col.clone(),
                expected: v.clone(),
            });
        }
    }
    checks
}
