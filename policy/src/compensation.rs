//! Reviewed compensation (`reversibility: {"mode": "reviewed_inverse"}`).
//!
//! When the executor applies a change of a reversible capability, it
//! computes the change's inverse with [`inverse`] and records it in the
//! applied receipt, in the same ledger transaction. `airlock revert` turns
//! that captured inverse into a new proposal ([`for_revert`]), which needs
//! its own approval; at apply, [`check_applicable`] re-checks it against the
//! live config. Nothing here reads or writes anything.
//!
//! - UPDATE: the inverse restores exactly the patched (and apply-time)
//!   columns to their before-values, guarded by the version the forward
//!   write left and by the values it wrote. The version advances again.
//! - INSERT: the inverse deletes exactly the created row, found by the
//!   tenant and the full de-duplication identity with the forward
//!   proposal's id, guarded by the values the insert wrote.
//! - DELETE, handlers, and the inverse of an insert's inverse: unavailable.

use serde_json::{Map, Value};

use crate::bounded_set::{FrozenSet, SetMember};
use crate::change_set::{ChangeSet, ColumnValue, Compensation, Guards};
use crate::config::{
    Capability, ConflictGuard, DedupSource, OperationKind, PatchValue, Reversibility,
};

/// The longest chain of reverts of reverts (Synapsor Runner's cap).
pub const MAX_DEPTH: u32 = 16;
/// The longest reason a revert may carry, in characters.
pub const MAX_REASON_CHARS: usize = 2_000;

/// Why no inverse can be captured or proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The capability has no `reversibility`.
    NotReversible,
    /// The capability is applied by an application handler.
    AppHandler,
    /// The change was a hard DELETE.
    HardDelete,
    /// The forward UPDATE left no known version to guard the inverse by.
    NoNewVersion,
    /// A patched column has no before-value in the forward change set.
    MissingBefore(String),
    /// The change is itself the deletion of an inserted row; re-inserting
    /// it is not a reviewed operation.
    InverseOfInsert,
    /// The chain of reverts is already [`MAX_DEPTH`] long.
    DepthLimit,
    /// The change is a set and the capability changes one row, or the
    /// other way round.
    CardinalityChanged,
}

impl Unavailable {
    /// A stable code for receipts and refusals.
    pub fn code(&self) -> &'static str {
        match self {
            Unavailable::NotReversible => "NOT_REVERSIBLE",
            Unavailable::AppHandler => "APP_OWNED_HANDLER",
            Unavailable::HardDelete => "HARD_DELETE",
            Unavailable::NoNewVersion => "NO_NEW_VERSION",
            Unavailable::MissingBefore(_) => "MISSING_BEFORE_VALUE",
            Unavailable::InverseOfInsert => "INVERSE_OF_INSERT",
            Unavailable::DepthLimit => "LINEAGE_DEPTH_LIMIT",
            Unavailable::CardinalityChanged => "CARDINALITY_CHANGED",
        }
    }

    /// What an operator reads.
    pub fn describe(&self) -> String {
        match self {
            Unavailable::NotReversible => "the capability is not reversible (add `reversibility: {\"mode\": \"reviewed_inverse\"}` to it for future changes; changes applied before were captured without an inverse)".to_owned(),
            Unavailable::AppHandler => "unavailable: the change was applied by an application handler, whose effects Airlock cannot invert; use the application's own reviewed compensation capability".to_owned(),
            Unavailable::HardDelete => "unavailable: a hard DELETE cannot be restored; use a soft-delete UPDATE (a reviewed status or deleted_at patch) for changes that may need undoing".to_owned(),
            Unavailable::NoNewVersion => "unavailable: the forward write left no known version to guard the inverse by".to_owned(),
            Unavailable::MissingBefore(col) => format!("unavailable: the forward change set has no before-value for `{col}`"),
            Unavailable::InverseOfInsert => "unavailable: this change deleted the row a reviewed insert created; re-inserting it is not a reviewed operation (propose the insert again)".to_owned(),
            Unavailable::DepthLimit => format!("unavailable: the chain of reverts is already {MAX_DEPTH} long"),
            Unavailable::CardinalityChanged => "unavailable: the change is a bounded set and the capability changes one row, or the other way round".to_owned(),
        }
    }
}

/// The inverse of `forward` (proposal `forward_id`), applied under `cap`
/// by the built-in sql_update executor when `sql_update` is true, as it is
/// captured when the forward change is applied. `new_version` is the
/// version the forward write left (an UPDATE's receipt `new_version`).
pub fn inverse(
    cap: &Capability,
    sql_update: bool,
    forward_id: &str,
    forward: &ChangeSet,
    new_version: Option<&Value>,
) -> Result<ChangeSet, Unavailable> {
    let Some(p) = cap
        .proposal
        .as_ref()
        .filter(|p| p.reversibility == Some(Reversibility::ReviewedInverse))
    else {
        return Err(Unavailable::NotReversible);
    };
    if !sql_update {
        return Err(Unavailable::AppHandler);
    }
    let (root, depth) = match &forward.compensation {
        Some(c) => (c.root_proposal_id.clone(), c.depth.saturating_add(1)),
        None => (forward_id.to_owned(), 1),
    };
    if depth > MAX_DEPTH {
        return Err(Unavailable::DepthLimit);
    }
    let compensation = Some(Compensation {
        reverts_proposal_id: forward_id.to_owned(),
        root_proposal_id: root,
        depth,
        forward_operation: forward.operation,
        forward_receipt_hash: None,
        reason: String::new(),
    });
    let guards = |expected_version, deduplication| Guards {
        tenant: forward.guards.tenant.clone(),
        allowed_columns: p.allowed_columns.clone(),
        expected_version,
        row_hash: None,
        transitions: Vec::new(),
        deduplication,
        principal: forward.guards.principal.clone(),
    };
    if forward.set.is_some() != p.set().is_some() {
        return Err(Unavailable::CardinalityChanged);
    }
    if let Some(set) = &forward.set {
        return set_inverse(p, forward, set, guards(None, Vec::new()), compensation);
    }
    match forward.operation {
        OperationKind::Delete if forward.compensation.is_some() => {
            Err(Unavailable::InverseOfInsert)
        }
        OperationKind::Delete => Err(Unavailable::HardDelete),
        OperationKind::Update => {
            let version = match (&forward.guards.expected_version, new_version) {
                (Some(v), Some(new)) if !new.is_null() => ColumnValue {
                    column: v.column.clone(),
                    value: new.clone(),
                },
                _ => return Err(Unavailable::NoNewVersion),
            };
            let mut before = Map::new();
            let mut patch = Map::new();
            let mut apply_time = Vec::new();
            for col in forward.patch.keys().chain(&forward.apply_time) {
                match forward.before.get(col) {
                    Some(prior) => {
                        patch.insert(col.clone(), prior.clone());
                    }
                    // A revert stamped no time it could restore: the time
                    // its own revert sets is the apply time again, as the
                    // capability's patch does.
                    None if is_apply_time(p, col) => apply_time.push(col.clone()),
                    None => return Err(Unavailable::MissingBefore(col.clone())),
                }
                // What the forward wrote; an apply-time value is not known,
                // and the version guards it.
                if let Some(written) = forward.patch.get(col) {
                    before.insert(col.clone(), written.clone());
                }
            }
            before.insert(version.column.clone(), version.value.clone());
            let mut after = before.clone();
            for (k, v) in &patch {
                after.insert(k.clone(), v.clone());
            }
            Ok(ChangeSet {
                capability: forward.capability.clone(),
                args: forward.args.clone(),
                tenant_id: forward.tenant_id.clone(),
                principal: forward.principal.clone(),
                target: forward.target.clone(),
                before,
                patch,
                after,
                guards: guards(Some(version), Vec::new()),
                operation: OperationKind::Update,
                apply_time,
                set: None,
                compensation,
            })
        }
        OperationKind::Insert => {
            // The created row's full identity: the proposal id filled in.
            let identity: Vec<_> = forward
                .guards
                .deduplication
                .iter()
                .map(|d| {
                    let mut d = d.clone();
                    if d.value.is_none() {
                        d.value = Some(Value::String(forward_id.to_owned()));
                    }
                    d
                })
                .collect();
            // The values the insert wrote: the reviewed state the row must
            // still have to be deleted.
            let mut before = forward.after.clone();
            for d in &identity {
                if let Some(v) = &d.value {
                    before.insert(d.column.clone(), v.clone());
                }
            }
            Ok(ChangeSet {
                capability: forward.capability.clone(),
                args: forward.args.clone(),
                tenant_id: forward.tenant_id.clone(),
                principal: forward.principal.clone(),
                target: forward.target.clone(),
                before,
                patch: Map::new(),
                after: Map::new(),
                guards: guards(None, identity),
                operation: OperationKind::Delete,
                apply_time: Vec::new(),
                set: None,
                compensation,
            })
        }
    }
}

/// A set UPDATE's inverse: the same members, each restoring its patched
/// (and apply-time) columns to its frozen before-value, guarded by the
/// version the forward write left (one more: sets advance by one) and by
/// the values it wrote. One stale member aborts the whole revert.
fn set_inverse(
    p: &crate::config::ProposalSpec,
    forward: &ChangeSet,
    set: &FrozenSet,
    guards: Guards,
    compensation: Option<Compensation>,
) -> Result<ChangeSet, Unavailable> {
    if forward.operation != OperationKind::Update {
        return Err(Unavailable::HardDelete);
    }
    let Some(version) = p.version_column() else {
        return Err(Unavailable::NoNewVersion);
    };
    let restored: Vec<&String> = p.patch.iter().map(|(c, _)| c).collect();
    let mut members = Vec::with_capacity(set.members.len());
    for m in &set.members {
        // The row as the forward write left it: what it wrote, its
        // version one more; an apply-time value is not known (the version
        // guards it), so it is left out.
        let mut before = m.after.clone();
        for col in &forward.apply_time {
            before.remove(col);
        }
        let next = m
            .before
            .get(version)
            .and_then(Value::as_i64)
            .and_then(|v| v.checked_add(1))
            .ok_or(Unavailable::NoNewVersion)?;
        before.insert(version.to_owned(), Value::from(next));
        let mut after = before.clone();
        for col in &restored {
            match m.before.get(*col) {
                Some(prior) => {
                    after.insert((*col).clone(), prior.clone());
                }
                None => return Err(Unavailable::MissingBefore((*col).clone())),
            }
        }
        members.push(SetMember {
            primary_key: m.primary_key.clone(),
            before,
            after,
        });
    }
    let set_digest = crate::canonical::hash_value(&serde_json::json!(members));
    Ok(ChangeSet {
        capability: forward.capability.clone(),
        args: forward.args.clone(),
        tenant_id: forward.tenant_id.clone(),
        principal: forward.principal.clone(),
        target: forward.target.clone(),
        before: Map::new(),
        patch: Map::new(),
        after: Map::new(),
        guards,
        operation: OperationKind::Update,
        apply_time: Vec::new(),
        set: Some(FrozenSet {
            max_rows: set.max_rows,
            row_count: members.len() as u32,
            // The bounds reviewed the forward change; the revert restores
            // exactly the values that were reviewed then.
            aggregate_bounds: Vec::new(),
            members,
            set_digest,
        }),
        compensation,
    })
}

/// Whether the capability's patch sets `col` to the apply time.
fn is_apply_time(p: &crate::config::ProposalSpec, col: &str) -> bool {
    p.patch
        .iter()
        .any(|(c, b)| c == col && *b == PatchValue::ApplyTime)
}

/// Whether `cs` deletes the row a reviewed insert created: it is located
/// by its identity, not by its primary key.
pub fn locates_by_identity(cs: &ChangeSet) -> bool {
    cs.operation == OperationKind::Delete
        && cs
            .compensation
            .as_ref()
            .is_some_and(|c| c.forward_operation == OperationKind::Insert)
}

/// A revert's reason: not blank, at most [`MAX_REASON_CHARS`] characters
/// of plain text (newlines allowed).
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err("a revert needs a reason (--reason \"…\"): it is shown to the approvers and kept in the ledger".to_owned());
    }
    if reason.chars().count() > MAX_REASON_CHARS
        || reason.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(format!(
            "a revert's reason must be at most {MAX_REASON_CHARS} characters of plain text"
        ));
    }
    Ok(())
}

/// The proposal `airlock revert` records: the captured inverse with the
/// operator's reason and the hash of the receipt it was captured in.
pub fn for_revert(captured: &ChangeSet, reason: &str, forward_receipt_hash: &str) -> ChangeSet {
    let mut cs = captured.clone();
    if let Some(c) = cs.compensation.as_mut() {
        c.reason = reason.to_owned();
        c.forward_receipt_hash = Some(forward_receipt_hash.to_owned());
    }
    cs
}

/// Re-check a compensation change set against the live capability before
/// it is recorded or applied: the capability is still reversible and
/// applied by sql_update, and the change set writes only what its inverse
/// may — the same row of the same table, only the capability's patched
/// (or apply-time) columns, with an exact version guard; or, for an
/// insert's inverse, a delete by the capability's identity columns.
pub fn check_applicable(cap: &Capability, sql_update: bool, cs: &ChangeSet) -> Result<(), String> {
    let Some(comp) = &cs.compensation else {
        return Err("not a compensation".to_owned());
    };
    let Some(p) = cap.proposal.as_ref() else {
        return Err(Unavailable::NotReversible.describe());
    };
    if p.reversibility != Some(Reversibility::ReviewedInverse) {
        return Err(Unavailable::NotReversible.describe());
    }
    if !sql_update {
        return Err(Unavailable::AppHandler.describe());
    }
    if cs.set.is_some() != p.set().is_some() {
        return Err("the revert's set does not match the capability's cardinality".to_owned());
    }
    // A column the capability patches (and allows): all a revert may write.
    let patchable =
        |c: &String| p.patch.iter().any(|(pc, _)| pc == c) && p.allowed_columns.contains(c);
    if let Some(set) = &cs.set {
        let version = p.version_column();
        let fits = comp.forward_operation == OperationKind::Update
            && cs.operation == OperationKind::Update
            && cs.patch.is_empty()
            && cs.apply_time.is_empty()
            && !set.members.is_empty()
            && set.members.len() <= set.max_rows as usize
            && set.members.iter().all(|m| {
                version.is_some_and(|v| m.before.get(v).is_some_and(Value::is_i64))
                    && m.after
                        .iter()
                        .all(|(c, v)| m.before.get(c) == Some(v) || patchable(c))
            });
        if !fits {
            return Err(
                "the revert of a set must restore only the capability's patched columns of its members, each guarded by its version".to_owned(),
            );
        }
    }
    if comp.depth == 0 || comp.depth > MAX_DEPTH {
        return Err(format!(
            "the revert's lineage depth {} is not 1 to {MAX_DEPTH}",
            comp.depth
        ));
    }
    if cs.capability != cap.name
        || cs.target.schema != cap.target.schema
        || cs.target.table != cap.target.table
        || cs.target.primary_key.column != cap.target.primary_key
    {
        return Err("the revert's target is not the capability's table and key".to_owned());
    }
    match (p.kind(), comp.forward_operation, cs.operation) {
        (OperationKind::Update, OperationKind::Update, OperationKind::Update)
            if cs.set.is_some() =>
        {
            Ok(())
        }
        (OperationKind::Update, OperationKind::Update, OperationKind::Update) => {
            if (cs.patch.is_empty() && cs.apply_time.is_empty())
                || !cs.patch.keys().all(patchable)
                || !cs.apply_time.iter().all(|c| is_apply_time(p, c))
            {
                return Err("the revert restores a column the capability does not patch".to_owned());
            }
            let version_ok = matches!(
                (&p.conflict_guard, &cs.guards.expected_version),
                (ConflictGuard::Column { column }, Some(v)) if *column == v.column
            );
            if !version_ok {
                return Err(
                    "the revert is not guarded by the capability's version column".to_owned(),
                );
            }
            Ok(())
        }
        (OperationKind::Insert, OperationKind::Insert, OperationKind::Delete) => {
            let same_identity = cs.guards.deduplication.len() == p.operation.deduplication.len()
                && cs
                    .guards
                    .deduplication
                    .iter()
                    .zip(&p.operation.deduplication)
                    .all(|(d, c)| {
                        let expected = match &c.source {
                            DedupSource::Fixed(f) => f.clone(),
                            DedupSource::ProposalId => {
                                Value::String(comp.reverts_proposal_id.clone())
                            }
                            DedupSource::TrustedTenant => Value::String(cs.tenant_id.clone()),
                        };
                        d.column == c.column && d.value.as_ref() == Some(&expected)
                    });
            if !same_identity || !cs.patch.is_empty() {
                return Err(
                    "the revert does not delete by the capability's full identity".to_owned(),
                );
            }
            Ok(())
        }
        _ => Err(format!(
            "the revert of an {} does not fit the capability's {} operation",
            comp.forward_operation.as_str(),
            p.kind().as_str()
        )),
    }
}
