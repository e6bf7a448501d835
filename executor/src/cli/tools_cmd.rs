//! `airlock tools preview`: exactly what the model will and will not get.

use airlock_policy::catalog::{AliasMode, Catalog};
use airlock_policy::config::{Config, Kind};
use serde_json::{Value, json};

use super::ToolsPreviewArgs;
use super::output::{Exit, fail, print_json, say};
use crate::config_file::resolve_and_read;

/// What the proposer never offers, whatever the config says.
const NEVER_EXPOSED: &[&str] = &[
    "raw SQL or generic query tools",
    "approve, reject or apply tools (approval happens on the operator socket, by a person)",
    "commit, transaction or schema tools",
    "database credentials, handler tokens or the write URL",
    "tenant, principal or role arguments (they come from the trusted context)",
];

pub fn preview(args: &ToolsPreviewArgs) -> Exit {
    let (config_path, loaded) = match resolve_and_read(args.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            return fail(
                args.json,
                "config_unreadable",
                &e.to_string(),
                Exit::Failure,
            );
        }
    };
    let Some(cfg) = loaded.config else {
        let n = loaded.report.errors().count();
        let msg = format!(
            "{} is not a valid config ({n} error{}); run `airlock config validate --config {}` for details",
            config_path.display(),
            if n == 1 { "" } else { "s" },
            config_path.display()
        );
        return fail(args.json, "invalid_config", &msg, Exit::Failure);
    };
    let mode = AliasMode::parse(&args.alias_mode).unwrap_or(AliasMode::Openai);
    let catalog = Catalog::new(&cfg, mode);
    if args.json {
        let tools: Vec<Value> = catalog.tools().iter().map(|t| tool_json(&cfg, t)).collect();
        print_json(&json!({
            "ok": true,
            "alias_mode": args.alias_mode,
            "tools": tools,
            "explore": explore_json(&cfg, &catalog),
            "disabled": disabled_json(&cfg),
            "never_exposed": NEVER_EXPOSED,
        }));
        return Exit::Ok;
    }
    say!(
        "The model will see {} tool{} ({} names):\n",
        catalog.tools().len(),
        if catalog.tools().len() == 1 { "" } else { "s" },
        args.alias_mode
    );
    for t in catalog.tools() {
        let Some(cap) = cfg.capability(&t.canonical) else {
            continue;
        };
        let what = match cap.kind {
            Kind::Read => match &cap.list {
                Some(spec) => format!(
                    "list read: returns up to {} tenant-scoped rows a page",
                    spec.max_limit
                ),
                None => "read: returns one tenant-scoped row".to_owned(),
            },
            Kind::AggregateRead => match cap.aggregate.as_ref().map(|a| a.minimum_group_size) {
                Some(min) if min > 1 => format!(
                    "aggregate read: returns one reviewed aggregate, never rows; fewer than {min} records are withheld"
                ),
                _ => "aggregate read: returns one reviewed aggregate, never rows; minimum group size 1 withholds nothing".to_owned(),
            },
            Kind::Proposal => {
                let role = cap
                    .proposal
                    .as_ref()
                    .and_then(|p| p.approval.required_role.clone())
                    .unwrap_or_else(|| "any approver".into());
                format!(
                    "proposal: records a change for a person ({role}) to approve; changes nothing"
                )
            }
        };
        say!("  {}  [{what}]", t.name);
        for a in &cap.args {
            let mut facts = vec![a.ty.as_str().to_owned()];
            if a.required {
                facts.push("required".into());
            }
            if let Some(m) = a.max_length {
                facts.push(format!("≤ {m} chars"));
            }
            match (a.minimum, a.maximum) {
                (Some(lo), Some(hi)) => facts.push(format!("{lo}..={hi}")),
                (Some(lo), None) => facts.push(format!("≥ {lo}")),
                (None, Some(hi)) => facts.push(format!("≤ {hi}")),
                (None, None) => {}
            }
            if let Some(e) = &a.enum_values {
                facts.push(format!(
                    "one of {}",
                    e.iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(f) = a.format {
                facts.push(format!("format {}", f.as_str()));
            }
            if let Some(items) = &a.items {
                facts.push(format!(
                    "1 to {} of {}",
                    items.max_items,
                    items
                        .enum_values
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            say!("      {}: {}", a.name, facts.join(", "));
        }
        if let Some(spec) = &cap.list {
            say!(
                "      limit: integer, 1..={}, default {}",
                spec.max_limit,
                spec.default_limit
            );
            say!("      cursor: string, the next_cursor of the previous page");
        }
        match &cap.aggregate {
            Some(a) => say!(
                "      returns: {}",
                airlock_policy::aggregate_read::what(cap, a)
            ),
            None => say!("      returns: {}", cap.visible_columns.join(", ")),
        }
    }
    if let Some(b) = &cfg.airlock.explore {
        say!(
            "\nScoped Explore (airlock.explore): typed plans, never SQL, over {} reviewed resource{}:",
            b.resources.len(),
            if b.resources.len() == 1 { "" } else { "s" }
        );
        for canonical in [
            airlock_policy::explore::DESCRIBE_TOOL,
            airlock_policy::explore::EXPLORE_TOOL,
        ] {
            say!("  {}", catalog.names_for(canonical).join(" / "));
        }
        for (id, r) in &b.resources {
            say!(
                "      {id}: {} field{}, {} kept out, minimum cohort {}",
                r.fields.len(),
                if r.fields.len() == 1 { "" } else { "s" },
                r.kept_out.len(),
                r.minimum_cohort_size
            );
        }
        say!(
            "      budgets per tenant and principal, 24 h: {} queries, {} cells, {} differencing variants per resource (kept by the executor)",
            b.limits.max_queries_per_rolling_24_hours,
            b.limits.max_extracted_cells_per_rolling_24_hours,
            b.limits.max_differencing_variants_per_rolling_24_hours
        );
    }
    if !cfg.disabled.is_empty() {
        say!("\nDisabled until reviewed (in the config, not served):");
        for (name, reason) in &cfg.airlock.disabled_capabilities {
            say!("  {name}: {reason}");
        }
        say!("  Serve one after review: remove its entry from airlock.disabled_capabilities.");
    }
    say!("\nThe model will never get:");
    for n in NEVER_EXPOSED {
        say!("  - {n}");
    }
    Exit::Ok
}

/// Scoped Explore's two tools and boundary, when the config has one.
fn explore_json(cfg: &Config, catalog: &Catalog) -> Value {
    let Some(b) = &cfg.airlock.explore else {
        return Value::Null;
    };
    let names: Vec<String> = [
        airlock_policy::explore::DESCRIBE_TOOL,
        airlock_policy::explore::EXPLORE_TOOL,
    ]
    .iter()
    .flat_map(|t| catalog.names_for(t))
    .collect();
    json!({
        "tools": names,
        "resources": b.resources.iter().map(|(id, r)| json!({
            "id": id,
            "fields": r.fields.keys().collect::<Vec<_>>(),
            "kept_out": r.kept_out.len(),
            "minimum_cohort_size": r.minimum_cohort_size,
        })).collect::<Vec<_>>(),
        "limits": b.limits,
    })
}

/// The capabilities `airlock.disabled_capabilities` keeps out of service.
fn disabled_json(cfg: &Config) -> Value {
    cfg.airlock
        .disabled_capabilities
        .iter()
        .map(|(name, reason)| json!({"capability": name, "reason": reason}))
        .collect()
}

fn tool_json(cfg: &Config, t: &airlock_policy::catalog::ToolDef) -> Value {
    let cap = cfg.capability(&t.canonical);
    let role = cap
        .and_then(|c| c.proposal.as_ref())
        .and_then(|p| p.approval.required_role.clone());
    let visible = cap.map(|c| c.visible_columns.clone()).unwrap_or_default();
    json!({
        "name": t.name,
        "canonical": t.canonical,
        "title": t.title,
        "kind": t.kind,
        "description": t.description,
        "inputSchema": t.input_schema,
        "approval_role": role,
        "visible_columns": visible,
        "aggregate": cap.and_then(|c| c.aggregate.as_ref()),
    })
}
