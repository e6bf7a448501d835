//! The `proposal_freshness` overlay, in Synapsor Runner 1.x's shape:
//! proposal capability name → `{"approval": "required", "dependencies":
//! [{"id", "capability", "identity_from_arg", "version_column"}]}`.
//!
//! Airlock re-reads every direct-SQL proposal's target row before each
//! approval whether or not it is listed here; an entry adds reviewed
//! dependency rows, whose versions the executor captures when it records
//! the proposal, re-checks before every approval, and locks and re-checks
//! inside the apply transaction.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Obj, check_identifier, join_index, join_key, short};
use crate::config::{
    Capability, ExecutorSpec, FreshnessDependency, Kind, MAX_FRESHNESS_DEPENDENCIES,
    ProposalFreshness,
};
use crate::diagnostics::Report;

const ENTRY_KEYS: &[&str] = &["approval", "dependencies"];
const DEPENDENCY_KEYS: &[&str] = &["id", "capability", "identity_from_arg", "version_column"];

pub(super) fn parse(
    r: &mut Report,
    o: &Obj,
    capabilities: &[Capability],
    executors: &BTreeMap<String, ExecutorSpec>,
) -> BTreeMap<String, ProposalFreshness> {
    let mut out = BTreeMap::new();
    let Some(map) = o.object(r, "proposal_freshness") else {
        return out;
    };
    for (name, v) in map {
        let path = join_key(&o.at("proposal_freshness"), name);
        let errors_before = r.errors().count();
        let Some(cap) = capabilities.iter().find(|c| &c.name == name) else {
            r.error(
                &path,
                format!(
                    "`{}` is not a capability of this config",
                    name.escape_debug()
                ),
                "key each entry by the name of a proposal capability defined under `capabilities`",
            );
            continue;
        };
        let Some(spec) = cap.proposal.as_ref().filter(|_| cap.kind == Kind::Proposal) else {
            r.error(
                &path,
                format!("`{name}` is a read capability; freshness applies to proposals"),
                "key the entry by a proposal capability (kind \"proposal\")",
            );
            continue;
        };
        let handler = spec
            .executor
            .as_deref()
            .and_then(|e| executors.get(e))
            .is_some_and(|e| !matches!(e, ExecutorSpec::SqlUpdate));
        if handler {
            r.error(
                &path,
                format!(
                    "`{name}` is applied by an application handler, which Airlock cannot lock dependency rows for"
                ),
                "remove the entry, or apply the capability with the built-in `sql_update` executor",
            );
            continue;
        }
        let Some(entry) = Obj::open(r, &path, v, ENTRY_KEYS) else {
            continue;
        };
        match entry.get("approval") {
            None => entry.missing(
                r,
                "approval",
                "add \"approval\": \"required\" (every approval re-reads the rows)",
            ),
            Some(Value::String(s)) if s == "required" => {}
            Some(other) => r.error(
                entry.at("approval"),
                format!("approval must be \"required\", found {}", short(other)),
                "write \"approval\": \"required\"",
            ),
        }
        let dependencies = match entry.get("dependencies") {
            None => Vec::new(),
            Some(_) => match entry.array(r, "dependencies") {
                Some(items) => dependencies(r, &entry.at("dependencies"), items, cap, capabilities),
                None => Vec::new(),
            },
        };
        if r.errors().count() == errors_before {
            out.insert(name.clone(), ProposalFreshness { dependencies });
        }
    }
    out
}

fn dependencies(
    r: &mut Report,
    path: &str,
    items: &[Value],
    proposal: &Capability,
    capabilities: &[Capability],
) -> Vec<FreshnessDependency> {
    if items.len() > MAX_FRESHNESS_DEPENDENCIES {
        r.error(
            path,
            format!(
                "{} dependencies; at most {MAX_FRESHNESS_DEPENDENCIES} are allowed",
                items.len()
            ),
            "keep the rows the reviewer's decision really depends on",
        );
        return Vec::new();
    }
    let mut ids = BTreeSet::new();
    let mut rows = BTreeSet::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = join_index(path, i);
        let Some(d) = Obj::open(r, &p, item, DEPENDENCY_KEYS) else {
            continue;
        };
        let id = d.req_string(
            r,
            "id",
            "add \"id\": \"invoice_eligibility\" (a stable label)",
        );
        let read = d.req_string(
            r,
            "capability",
            "add \"capability\": the name of a read capability that finds the row",
        );
        let arg = d.req_string(
            r,
            "identity_from_arg",
            "add \"identity_from_arg\": the proposal argument whose value is the row's key",
        );
        let version = d.req_string(
            r,
            "version_column",
            "add \"version_column\": the row's version or updated-at column",
        );
        if let Some(id) = &id {
            let safe = id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !safe {
                r.error(
                    d.at("id"),
                    format!("`{}` is not a valid dependency id", id.escape_debug()),
                    "use at most 64 letters, digits, `_`, `-` or `.`",
                );
            } else if !ids.insert(id.clone()) {
                r.error(
                    d.at("id"),
                    format!("dependency id `{id}` is used twice"),
                    "give every dependency its own id",
                );
            }
        }
        let read_cap = read.as_ref().and_then(|name| {
            let found = capabilities.iter().find(|c| &c.name == name);
            match found {
                None => {
                    r.error(
                        d.at("capability"),
                        format!("`{}` is not a capability of this config", name.escape_debug()),
                        "name a read capability defined under `capabilities`",
                    );
                    None
                }
                Some(c) if c.name == proposal.name || c.kind != Kind::Read => {
                    r.error(
                        d.at("capability"),
                        format!("`{name}` is not a read capability"),
                        "name a read capability (kind \"read\") that finds the dependency row by its key",
                    );
                    None
                }
                Some(c) if c.list.is_some() => {
                    r.error(
                        d.at("capability"),
                        format!("`{name}` is a list read; a dependency is one row found by its key"),
                        "name a read capability with `lookup.id_from_arg`",
                    );
                    None
                }
                Some(c) if c.source != proposal.source || c.context != proposal.context => {
                    r.error(
                        d.at("capability"),
                        format!(
                            "`{name}` reads source `{}` in context `{}`, the proposal writes source `{}` in context `{}`",
                            c.source,
                            c.context.as_deref().unwrap_or("(trusted)"),
                            proposal.source,
                            proposal.context.as_deref().unwrap_or("(trusted)")
                        ),
                        "use a read capability on the proposal's own source and context (one transaction locks both)",
                    );
                    None
                }
                Some(c) if c.target.tenant_key.is_none() != proposal.target.tenant_key.is_none() => {
                    r.error(
                        d.at("capability"),
                        format!("`{name}` and the proposal disagree on tenant scope (one has a tenant key, the other not)"),
                        "give the read capability the tenant key the proposal's table has",
                    );
                    None
                }
                // Not yet: the dependency re-read would not be scoped to
                // the principal, so fail closed rather than widen it.
                Some(c) if c.target.principal_scope_key.is_some() => {
                    r.error(
                        d.at("capability"),
                        format!("`{name}` has a principal row scope, which freshness dependencies do not support yet"),
                        "name a read capability without `target.principal_scope_key`, or remove this dependency",
                    );
                    None
                }
                Some(c) => Some(c),
            }
        });
        if let Some(arg) = &arg
            && proposal.arg(arg).is_none()
        {
            r.error(
                d.at("identity_from_arg"),
                format!(
                    "`{}` is not an argument of `{}`",
                    arg.escape_debug(),
                    proposal.name
                ),
                format!(
                    "name one of the proposal's arguments: {}",
                    proposal
                        .args
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let version_ok = version
            .as_ref()
            .is_some_and(|v| check_identifier(r, &d.at("version_column"), v));
        if let (Some(read_cap), Some(arg)) = (read_cap, &arg) {
            // The same row twice would be locked twice.
            let row = (
                read_cap.target.schema.clone(),
                read_cap.target.table.clone(),
                arg.clone(),
            );
            if !rows.insert(row) {
                r.error(
                    &p,
                    format!(
                        "another dependency already names the row `{}` finds with `{arg}`",
                        read_cap.name
                    ),
                    "list each dependency row once",
                );
            }
        }
        if let (Some(id), Some(read_cap), Some(arg), Some(version), true) =
            (id, read_cap, arg, version, version_ok)
            && proposal.arg(&arg).is_some()
        {
            out.push(FreshnessDependency {
                id,
                capability: read_cap.name.clone(),
                identity_from_arg: arg,
                version_column: version,
            });
        }
    }
    out
}
