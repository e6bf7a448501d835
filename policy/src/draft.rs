//! Drafting a reviewed config from a schema's metadata (`airlock init`):
//! no row is read and nothing is guessed silently. Each chosen table gets a
//! read capability that looks one row up by its primary key, scoped by the
//! tenant key, showing every column except the sensitive ones
//! ([`crate::sensitive`]); each built-in recipe that fits a table adds a
//! proposal capability, set aside in `airlock.disabled_capabilities` when a
//! choice in it is ambiguous. The result is an ordinary config for a person
//! to review: environment-variable names only, never a URL or a secret.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::candidates::{TenantCandidate, tenant_candidates, version_kind};
use crate::identifier::Engine;
use crate::recipes::{Placement, RECIPES, Resolved};
use crate::schema_info::{SchemaInfo, TableInfo, TableKind};
use crate::sensitive::{Finding, classify};

/// How the drafted capabilities are scoped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenancy {
    /// Every row is keyed to a tenant by this column.
    Column(String),
    /// An acknowledged single-tenant database: no tenant key.
    SingleTenant,
}

/// Which tables to draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every table that can be drafted; the others are listed as skipped.
    All,
    /// Exactly these; one that cannot be drafted is an error.
    Named(Vec<String>),
}

/// A person's choices for one table (interactive `init`); `None` keeps
/// the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableChoice {
    /// The columns the model sees.
    pub visible: Option<Vec<String>>,
    /// The version column (`Some(None)`: the table has none to use).
    pub version: Option<Option<String>>,
}

/// Everything a draft needs besides the schema.
#[derive(Debug, Clone)]
pub struct DraftOptions {
    /// The source's entry name (`app`).
    pub source: String,
    /// The first part of each drafted capability's name (`app`).
    pub namespace: String,
    pub read_url_env: String,
    /// `None`: a read-only config (no proposal capabilities).
    pub write_url_env: Option<String>,
    pub tenant_id_env: String,
    pub principal_env: String,
    /// `storage.sqlite_path`.
    pub ledger_path: String,
    /// `airlock.socket_dir`, when the draft names one.
    pub socket_dir: Option<String>,
    pub tenancy: Tenancy,
    pub selection: Selection,
    pub choices: BTreeMap<String, TableChoice>,
    /// A person's answer per proposal capability: serve it or not.
    pub enable: BTreeMap<String, bool>,
}

/// A column left out of what the model sees, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hidden {
    pub column: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftedRead {
    pub table: String,
    pub capability: String,
    pub tenant_key: Option<String>,
    pub lookup_arg: String,
    pub visible: Vec<String>,
    pub hidden: Vec<Hidden>,
    /// Sensitive columns a person chose to show anyway.
    pub shown_sensitive: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftedProposal {
    pub recipe: String,
    pub capability: String,
    pub table: String,
    pub enabled: bool,
    /// Why it is left disabled (empty when enabled).
    pub review: Vec<String>,
    pub columns: Vec<Resolved>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub table: String,
    pub reason: String,
}

/// A drafted config and what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub config: Value,
    pub reads: Vec<DraftedRead>,
    pub proposals: Vec<DraftedProposal>,
    pub skipped: Vec<Skipped>,
}

/// Why nothing was drafted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    #[error("there is no table `{table}` in {schema}; its tables are: {known}")]
    UnknownTable {
        table: String,
        schema: String,
        known: String,
    },
    #[error(
        "table `{table}` has no tenant column `{column}`: pass --single-tenant if this database serves one tenant, or leave the table out"
    )]
    NoTenantKey { table: String, column: String },
    #[error(
        "no table in {schema} has a column `{column}`; name the tenant column with --tenant-column"
    )]
    UnknownTenantColumn { schema: String, column: String },
    #[error("table `{table}` cannot be drafted: {reason}")]
    CannotDraft { table: String, reason: String },
    #[error("no table of {schema} can be drafted: {why}")]
    NothingToDraft { schema: String, why: String },
}

/// The tenant column to propose: the best candidate ([`tenant_candidates`]:
/// on the most tables, then indexed on the most).
pub fn suggested_tenant(schema: &SchemaInfo) -> Option<TenantCandidate> {
    tenant_candidates(schema).into_iter().next()
}

/// Longest reason a disabled capability may carry (the loader's limit).
const MAX_REASON: usize = 500;

/// Draft a config. Every table named in `Selection::Named` must be
/// draftable, or the draft fails and names each problem.
pub fn draft(schema: &SchemaInfo, opts: &DraftOptions) -> Result<Draft, Vec<DraftError>> {
    if let Tenancy::Column(col) = &opts.tenancy
        && !schema.tables.iter().any(|t| t.column(col).is_some())
    {
        return Err(vec![DraftError::UnknownTenantColumn {
            schema: schema.schema.clone(),
            column: col.clone(),
        }]);
    }
    let (tables, mut skipped) = select(schema, opts)?;
    let mut reads = Vec::new();
    let mut capabilities = Vec::new();
    let mut names = BTreeSet::new();
    for t in &tables {
        let (read, cap) = read_capability(schema, t, opts, &mut names);
        reads.push(read);
        capabilities.push(cap);
    }
    let mut proposals = Vec::new();
    let mut disabled = Map::new();
    if opts.write_url_env.is_some() {
        for (p, cap) in proposal_capabilities(schema, &tables, opts, &mut names) {
            if !p.enabled {
                disabled.insert(p.capability.clone(), json!(reason_line(&p.review)));
            }
            proposals.push(p);
            capabilities.push(cap);
        }
    }
    if reads.is_empty() {
        let why = if skipped.is_empty() {
            "it has no tables".to_owned()
        } else {
            skipped
                .iter()
                .map(|s| format!("{}: {}", s.table, s.reason))
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(vec![DraftError::NothingToDraft {
            schema: schema.schema.clone(),
            why,
        }]);
    }
    skipped.sort_by(|a, b| a.table.cmp(&b.table));
    let mut source = Map::new();
    source.insert("engine".into(), json!(engine_name(schema.engine)));
    source.insert("read_url_env".into(), json!(opts.read_url_env));
    if let Some(w) = &opts.write_url_env {
        source.insert("write_url_env".into(), json!(w));
    }
    source.insert("statement_timeout_ms".into(), json!(3000));
    let mut config = json!({
        "version": 1,
        "mode": if opts.write_url_env.is_some() { "review" } else { "read_only" },
        "storage": {"sqlite_path": opts.ledger_path},
        "sources": {opts.source.clone(): Value::Object(source)},
        "trusted_context": {
            "provider": "environment",
            "values": {"tenant_id_env": opts.tenant_id_env, "principal_env": opts.principal_env}
        },
        "capabilities": capabilities,
    });
    let mut airlock = Map::new();
    if let Some(dir) = &opts.socket_dir {
        airlock.insert("socket_dir".into(), json!(dir));
    }
    if !disabled.is_empty() {
        airlock.insert("disabled_capabilities".into(), Value::Object(disabled));
    }
    if !airlock.is_empty() {
        config["airlock"] = Value::Object(airlock);
    }
    Ok(Draft {
        config,
        reads,
        proposals,
        skipped,
    })
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "postgres",
        Engine::Mysql => "mysql",
        Engine::Sqlite => "sqlite",
    }
}

/// The reasons, on one line the loader accepts.
fn reason_line(reasons: &[String]) -> String {
    let mut line = reasons.join("; ").replace(char::is_control, " ");
    if line.chars().count() > MAX_REASON {
        line = line.chars().take(MAX_REASON - 1).collect::<String>() + "…";
    }
    line
}

/// Why a table cannot be drafted, if it cannot.
fn unfit(t: &TableInfo, tenancy: &Tenancy) -> Option<String> {
    if t.kind == TableKind::View {
        return Some("it is a view (no primary key to look a row up by)".into());
    }
    match t.primary_key.as_slice() {
        [] => return Some("it has no primary key to look a row up by".into()),
        [pk] => {
            if let Some(f) = classify(&t.name, pk, data_type(t, pk)).first() {
                return Some(format!(
                    "its primary key `{pk}` is sensitive ({}): the model would name rows by it",
                    f.reason
                ));
            }
        }
        many => {
            return Some(format!(
                "its primary key is composite ({}); a read looks one row up by a single column",
                many.join(", ")
            ));
        }
    }
    if let Tenancy::Column(col) = tenancy {
        if t.column(col).is_none() {
            return Some(format!("it has no tenant column `{col}`"));
        }
        if t.primary_key.first() == Some(col) {
            return Some(format!(
                "its primary key is the tenant column `{col}` (one row per tenant)"
            ));
        }
    }
    None
}

fn data_type<'a>(t: &'a TableInfo, column: &str) -> &'a str {
    t.column(column).map_or("", |c| c.data_type.as_str())
}

/// The tables to draft, and those left out.
fn select<'s>(
    schema: &'s SchemaInfo,
    opts: &DraftOptions,
) -> Result<(Vec<&'s TableInfo>, Vec<Skipped>), Vec<DraftError>> {
    match &opts.selection {
        Selection::All => {
            let mut tables = Vec::new();
            let mut skipped = Vec::new();
            for t in &schema.tables {
                match unfit(t, &opts.tenancy) {
                    None => tables.push(t),
                    Some(reason) => skipped.push(Skipped {
                        table: t.name.clone(),
                        reason,
                    }),
                }
            }
            Ok((tables, skipped))
        }
        Selection::Named(names) => {
            let mut tables = Vec::new();
            let mut errors = Vec::new();
            let mut seen = BTreeSet::new();
            for name in names {
                if !seen.insert(name.as_str()) {
                    continue;
                }
                let Some(t) = schema.table(name) else {
                    errors.push(DraftError::UnknownTable {
                        table: name.clone(),
                        schema: schema.schema.clone(),
                        known: schema
                            .tables
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                    continue;
                };
                match (&opts.tenancy, unfit(t, &opts.tenancy)) {
                    (_, None) => tables.push(t),
                    (Tenancy::Column(col), Some(_)) if t.column(col).is_none() => {
                        errors.push(DraftError::NoTenantKey {
                            table: name.clone(),
                            column: col.clone(),
                        });
                    }
                    (_, Some(reason)) => errors.push(DraftError::CannotDraft {
                        table: name.clone(),
                        reason,
                    }),
                }
            }
            if errors.is_empty() {
                Ok((tables, Vec::new()))
            } else {
                Err(errors)
            }
        }
    }
}

/// `invoices` → `invoice`, `addresses` → `address`, `categories` →
/// `category`, `status` → `status`.
pub fn singular(table: &str) -> String {
    let lower = table.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix("ies")
        && !stem.is_empty()
    {
        return format!("{}y", &table[..stem.len()]);
    }
    for suffix in ["sses", "shes", "ches", "xes", "uses"] {
        if lower.ends_with(suffix) {
            return table[..table.len() - 2].to_owned();
        }
    }
    if lower.ends_with("ss") || lower.ends_with("us") || lower.ends_with("is") {
        return table.to_owned();
    }
    match lower.strip_suffix('s') {
        Some(stem) if !stem.is_empty() => table[..stem.len()].to_owned(),
        _ => table.to_owned(),
    }
}

/// A lower-case name part from an identifier (`InvoiceLines` →
/// `invoicelines`; capability names are lower case).
fn name_part(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// A name not used yet: `preferred`, else `fallback`, else `fallback_2`, ….
fn unique_name(names: &mut BTreeSet<String>, preferred: String, fallback: String) -> String {
    let mut name = preferred;
    if names.contains(&name) {
        name = fallback.clone();
    }
    let mut n = 2;
    while names.contains(&name) {
        name = format!("{fallback}_{n}");
        n += 1;
    }
    names.insert(name.clone());
    name
}

/// The sensitive findings of a column, as reasons.
fn findings(t: &TableInfo, column: &str) -> Vec<Finding> {
    classify(&t.name, column, data_type(t, column))
}

fn read_capability(
    schema: &SchemaInfo,
    t: &TableInfo,
    opts: &DraftOptions,
    names: &mut BTreeSet<String>,
) -> (DraftedRead, Value) {
    let pk = t.primary_key[0].clone();
    let tenant_key = match &opts.tenancy {
        Tenancy::Column(c) => Some(c.clone()),
        Tenancy::SingleTenant => None,
    };
    let one = singular(&t.name);
    let name = unique_name(
        names,
        format!("{}.inspect_{}", opts.namespace, name_part(&one)),
        format!("{}.inspect_{}", opts.namespace, name_part(&t.name)),
    );
    let lookup_arg = {
        let arg = format!("{}_id", name_part(&one));
        if crate::load::is_authority_name(&arg) {
            "id".to_owned()
        } else {
            arg
        }
    };
    let choice = opts.choices.get(&t.name);
    let mut hidden = Vec::new();
    let mut shown_sensitive = Vec::new();
    let mut visible = Vec::new();
    for c in &t.columns {
        let found = findings(t, &c.name);
        let keyed = c.name == pk || Some(&c.name) == tenant_key.as_ref();
        let chosen = choice.and_then(|ch| ch.visible.as_ref());
        let show = match chosen {
            Some(list) => keyed || list.contains(&c.name),
            None => keyed || found.is_empty(),
        };
        if show {
            if !found.is_empty() && !keyed {
                shown_sensitive.push(c.name.clone());
            }
            visible.push(c.name.clone());
        } else if !found.is_empty() {
            hidden.push(Hidden {
                column: c.name.clone(),
                reasons: found.into_iter().map(|f| f.reason).collect(),
            });
        } else {
            hidden.push(Hidden {
                column: c.name.clone(),
                reasons: vec!["left out by your choice".into()],
            });
        }
    }
    let arg_type = match crate::column_type::type_family(data_type(t, &pk)) {
        crate::column_type::TypeFamily::Integer => {
            json!({"type": "integer", "required": true, "description": format!("The {one}'s {pk}.")})
        }
        _ => {
            json!({"type": "string", "required": true, "max_length": 128, "description": format!("The {one}'s {pk}.")})
        }
    };
    let mut target = Map::new();
    target.insert("schema".into(), json!(schema.schema));
    target.insert("table".into(), json!(t.name));
    target.insert("primary_key".into(), json!(pk));
    let description = match &tenant_key {
        Some(tk) => {
            target.insert("tenant_key".into(), json!(tk));
            format!(
                "Look up one {one} of the current tenant by its {pk} (table {}).",
                t.name
            )
        }
        None => {
            target.insert("single_tenant_dev".into(), json!(true));
            format!("Look up one {one} by its {pk} (table {}).", t.name)
        }
    };
    let mut cap = Map::new();
    cap.insert("name".into(), json!(name));
    cap.insert("kind".into(), json!("read"));
    cap.insert("source".into(), json!(opts.source));
    cap.insert("description".into(), json!(description));
    cap.insert("target".into(), Value::Object(target));
    if tenant_key.is_none() {
        cap.insert("single_tenant_dev_ack".into(), json!(true));
    }
    cap.insert("args".into(), json!({ lookup_arg.clone(): arg_type }));
    cap.insert("lookup".into(), json!({"id_from_arg": lookup_arg}));
    cap.insert("visible_columns".into(), json!(visible));
    (
        DraftedRead {
            table: t.name.clone(),
            capability: name,
            tenant_key,
            lookup_arg,
            visible,
            hidden,
            shown_sensitive,
        },
        Value::Object(cap),
    )
}

/// The version columns of a table, best first (counter, token, timestamp).
pub fn version_columns(engine: Engine, t: &TableInfo) -> Vec<String> {
    let mut found: Vec<_> = t
        .columns
        .iter()
        .filter_map(|c| version_kind(engine, &c.name, &c.data_type).map(|k| (k, c.name.clone())))
        .collect();
    found.sort_by_key(|(k, _)| *k);
    found.into_iter().map(|(_, c)| c).collect()
}

/// A proposal's visible columns without the sensitive ones it only shows;
/// a sensitive column it writes or guards stays (the reviewer must see its
/// value) but is a reason to review the proposal first. Keys always stay.
fn screen_sensitive(
    t: &TableInfo,
    shown: &[String],
    written: &BTreeSet<String>,
    keys: &[&str],
) -> (Vec<String>, Vec<String>) {
    let mut visible = Vec::new();
    let mut review = Vec::new();
    for c in shown {
        let found = findings(t, c);
        match found.first() {
            None => visible.push(c.clone()),
            Some(_) if keys.contains(&c.as_str()) => visible.push(c.clone()),
            Some(f) if written.contains(c) => {
                review.push(format!(
                    "it writes or guards column `{c}`, which is sensitive ({}): the reviewer would see its value",
                    f.reason
                ));
                visible.push(c.clone());
            }
            Some(_) => {}
        }
    }
    (visible, review)
}

/// The proposal capabilities of every recipe that fits a chosen table.
fn proposal_capabilities(
    schema: &SchemaInfo,
    tables: &[&TableInfo],
    opts: &DraftOptions,
    names: &mut BTreeSet<String>,
) -> Vec<(DraftedProposal, Value)> {
    let tenant_key = match &opts.tenancy {
        Tenancy::Column(c) => Some(c.as_str()),
        Tenancy::SingleTenant => None,
    };
    let mut out = Vec::new();
    for recipe in RECIPES {
        let mut fits = Vec::new();
        for t in tables {
            let choice = opts.choices.get(&t.name);
            let mut map = BTreeMap::new();
            if let Some(Some(v)) = choice.and_then(|c| c.version.as_ref()) {
                map.insert("version".to_owned(), v.clone());
            }
            if let Some(None) = choice.and_then(|c| c.version.as_ref()) {
                continue;
            }
            let at = Placement {
                engine: schema.engine,
                source: &opts.source,
                schema: &schema.schema,
                context: None,
                tenant_key,
                name: None,
            };
            if let Ok(built) = crate::recipes::build(recipe, t, &map, &at) {
                fits.push((*t, built, map.contains_key("version")));
            }
        }
        let several = fits.len() > 1;
        let fitting: Vec<String> = fits.iter().map(|(t, _, _)| t.name.clone()).collect();
        for (t, built, version_chosen) in fits {
            let preferred = if several {
                format!("{}_{}", recipe.capability, name_part(&t.name))
            } else {
                recipe.capability.to_owned()
            };
            let name = unique_name(
                names,
                preferred,
                format!("{}_{}", recipe.capability, name_part(&t.name)),
            );
            let mut cap = built.capability;
            cap["name"] = json!(name);
            let mut review = Vec::new();
            if several {
                review.push(format!(
                    "recipe {} fits {} tables ({}): keep the one you mean",
                    recipe.name,
                    fitting.len(),
                    fitting.join(", ")
                ));
            }
            let versions = version_columns(schema.engine, t);
            let used_version = cap["conflict_guard"]["column"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !version_chosen && versions.len() > 1 {
                review.push(format!(
                    "table {} has {} version columns ({}); drafted with `{used_version}`: confirm the one your application changes on every write",
                    t.name,
                    versions.len(),
                    versions.join(", ")
                ));
            }
            let written: BTreeSet<String> = cap["allowed_columns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .chain(std::iter::once(used_version.clone()))
                .collect();
            let shown: Vec<String> = cap["visible_columns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let mut keys: Vec<&str> = t.primary_key.iter().map(String::as_str).collect();
            keys.extend(tenant_key);
            let (visible, concerns) = screen_sensitive(t, &shown, &written, &keys);
            review.extend(concerns);
            cap["visible_columns"] = json!(visible);
            let enabled = match opts.enable.get(&name) {
                Some(answer) => *answer,
                None => review.is_empty(),
            };
            if !enabled && review.is_empty() {
                review.push("left disabled by your choice".to_owned());
            }
            let review = if enabled { Vec::new() } else { review };
            out.push((
                DraftedProposal {
                    recipe: recipe.name.to_owned(),
                    capability: name,
                    table: t.name.clone(),
                    enabled,
                    review,
                    columns: built.columns,
                },
                cap,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_config;
    use crate::schema_info::ColumnInfo;

    fn col(name: &str, ty: &str) -> ColumnInfo {
        ColumnInfo::new(name, ty, false)
    }

    fn table(name: &str, pk: &[&str], cols: &[(&str, &str)]) -> TableInfo {
        TableInfo::new(
            name,
            cols.iter().map(|(n, t)| col(n, t)).collect(),
            pk.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    fn schema() -> SchemaInfo {
        let mut view = table("open_invoices", &[], &[("id", "text"), ("org_id", "uuid")]);
        view.kind = TableKind::View;
        SchemaInfo {
            engine: Engine::Postgres,
            schema: "public".into(),
            tables: vec![
                table(
                    "countries",
                    &["code"],
                    &[("code", "text"), ("name", "text")],
                ),
                table(
                    "customers",
                    &["id"],
                    &[
                        ("id", "bigint"),
                        ("org_id", "uuid"),
                        ("email", "text"),
                        ("date_of_birth", "date"),
                        ("status", "text"),
                        ("updated_at", "timestamp with time zone"),
                    ],
                ),
                table(
                    "invoices",
                    &["id"],
                    &[
                        ("id", "text"),
                        ("org_id", "uuid"),
                        ("status", "text"),
                        ("late_fee_cents", "bigint"),
                        ("waiver_reason", "text"),
                        ("updated_at", "timestamp with time zone"),
                    ],
                ),
                table(
                    "tickets",
                    &["id"],
                    &[
                        ("id", "text"),
                        ("org_id", "uuid"),
                        ("status", "text"),
                        ("resolution_note", "text"),
                        ("updated_at", "timestamp with time zone"),
                        ("version", "integer"),
                    ],
                ),
                table(
                    "memberships",
                    &["org_id", "user_ref"],
                    &[("org_id", "uuid"), ("user_ref", "text")],
                ),
                view,
            ],
        }
    }

    fn opts(tenancy: Tenancy, selection: Selection) -> DraftOptions {
        DraftOptions {
            source: "app".into(),
            namespace: "app".into(),
            read_url_env: "APP_READ_URL".into(),
            write_url_env: Some("APP_WRITE_URL".into()),
            tenant_id_env: "AIRLOCK_TENANT_ID".into(),
            principal_env: "AIRLOCK_PRINCIPAL".into(),
            ledger_path: "./.airlock/ledger.db".into(),
            socket_dir: None,
            tenancy,
            selection,
            choices: BTreeMap::new(),
            enable: BTreeMap::new(),
        }
    }

    fn org() -> Tenancy {
        Tenancy::Column("org_id".into())
    }

    #[test]
    fn the_suggested_tenant_is_the_best_candidate() {
        let c = suggested_tenant(&schema()).expect("org_id is a candidate");
        assert_eq!(c.column, "org_id");
        assert_eq!(c.tables.len(), 4, "{c:?}");
        let mut none = schema();
        none.tables.retain(|t| t.name == "countries");
        assert_eq!(suggested_tenant(&none), None);
    }

    #[test]
    fn singular_names() {
        for (plural, one) in [
            ("invoices", "invoice"),
            ("addresses", "address"),
            ("categories", "category"),
            ("statuses", "status"),
            ("boxes", "box"),
            ("matches", "match"),
            ("wishes", "wish"),
            ("status", "status"),
            ("analysis", "analysis"),
            ("access", "access"),
            ("s", "s"),
            ("ies", "ie"),
            ("employee_health", "employee_health"),
            ("Invoices", "Invoice"),
            ("courses", "course"),
        ] {
            assert_eq!(singular(plural), one, "{plural}");
        }
    }

    #[test]
    fn all_tables_draft_a_tenant_scoped_read_each_and_skip_the_rest_with_reasons() {
        let d = draft(&schema(), &opts(org(), Selection::All)).unwrap();
        let reads: Vec<(&str, &str)> = d
            .reads
            .iter()
            .map(|r| (r.table.as_str(), r.capability.as_str()))
            .collect();
        assert_eq!(
            reads,
            [
                ("customers", "app.inspect_customer"),
                ("invoices", "app.inspect_invoice"),
                ("tickets", "app.inspect_ticket"),
            ]
        );
        let skipped: Vec<(&str, &str)> = d
            .skipped
            .iter()
            .map(|s| (s.table.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("countries", "it has no tenant column `org_id`"),
                (
                    "memberships",
                    "its primary key is composite (org_id, user_ref); a read looks one row up by a single column"
                ),
                (
                    "open_invoices",
                    "it is a view (no primary key to look a row up by)"
                ),
            ]
        );
        let customer = &d.reads[0];
        assert_eq!(customer.visible, ["id", "org_id", "status", "updated_at"]);
        let hidden: Vec<&str> = customer.hidden.iter().map(|h| h.column.as_str()).collect();
        assert_eq!(hidden, ["email", "date_of_birth"]);
        assert!(customer.hidden.iter().all(|h| !h.reasons.is_empty()));
        assert_eq!(customer.lookup_arg, "customer_id");
        let cap = &d.config["capabilities"][0];
        assert_eq!(
            cap["target"],
            json!({"schema": "public", "table": "customers", "primary_key": "id", "tenant_key": "org_id"})
        );
        assert_eq!(cap["args"]["customer_id"]["type"], "integer");
        assert_eq!(
            d.config["capabilities"][1]["args"]["invoice_id"]["type"],
            "string"
        );
        assert_eq!(d.config["mode"], "review");
        assert_eq!(
            d.config["sources"]["app"],
            json!({"engine": "postgres", "read_url_env": "APP_READ_URL", "write_url_env": "APP_WRITE_URL", "statement_timeout_ms": 3000})
        );
        // The draft is a valid config.
        let loaded = load_config(&d.config);
        let errors: Vec<_> = loaded.report.errors().collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn recipes_that_fit_become_proposals_disabled_where_ambiguous() {
        let d = draft(&schema(), &opts(org(), Selection::All)).unwrap();
        let got: Vec<(&str, &str, bool)> = d
            .proposals
            .iter()
            .map(|p| (p.capability.as_str(), p.table.as_str(), p.enabled))
            .collect();
        assert_eq!(
            got,
            [
                ("billing.propose_late_fee_waiver", "invoices", true),
                ("support.propose_ticket_resolution", "tickets", false),
            ]
        );
        assert!(d.proposals[0].review.is_empty());
        assert_eq!(d.proposals[1].review.len(), 2);
        assert_eq!(
            d.proposals[1].review[0],
            "table tickets has 2 version columns (version, updated_at); drafted with `updated_at`: confirm the one your application changes on every write"
        );
        // The recipe writes a free-text note: sensitive, so a person looks first.
        assert!(
            d.proposals[1].review[1]
                .starts_with("it writes or guards column `resolution_note`, which is sensitive ("),
            "{:?}",
            d.proposals[1].review
        );
        assert_eq!(
            d.config["airlock"]["disabled_capabilities"],
            json!({"support.propose_ticket_resolution": d.proposals[1].review.join("; ")})
        );
        let loaded = load_config(&d.config);
        let cfg = loaded.config.expect("valid");
        assert!(cfg.capability("billing.propose_late_fee_waiver").is_some());
        assert!(
            cfg.capability("support.propose_ticket_resolution")
                .is_none()
        );
        assert_eq!(cfg.disabled.len(), 1);
    }

    #[test]
    fn a_chosen_version_column_or_a_yes_enables_an_ambiguous_proposal() {
        let mut two = schema();
        let inv = two
            .tables
            .iter_mut()
            .find(|t| t.name == "invoices")
            .unwrap();
        inv.columns.push(col("version", "integer"));
        let d = draft(
            &two,
            &opts(org(), Selection::Named(vec!["invoices".into()])),
        )
        .unwrap();
        assert!(!d.proposals[0].enabled);
        let mut o = opts(org(), Selection::Named(vec!["invoices".into()]));
        o.choices.insert(
            "invoices".into(),
            TableChoice {
                visible: None,
                version: Some(Some("version".into())),
            },
        );
        let d = draft(&two, &o).unwrap();
        assert!(d.proposals[0].enabled, "{:?}", d.proposals[0]);
        assert_eq!(
            d.config["capabilities"][1]["conflict_guard"]["column"],
            "version"
        );
        assert!(d.config.get("airlock").is_none());
        // A person's answer wins either way.
        let mut o = opts(org(), Selection::All);
        o.enable
            .insert("support.propose_ticket_resolution".into(), true);
        o.enable
            .insert("billing.propose_late_fee_waiver".into(), false);
        let d = draft(&schema(), &o).unwrap();
        assert!(d.proposals[1].enabled);
        assert!(!d.proposals[0].enabled);
        assert_eq!(d.proposals[0].review, ["left disabled by your choice"]);
        // No version column: no proposal for the table.
        let mut o = opts(org(), Selection::All);
        o.choices.insert(
            "tickets".into(),
            TableChoice {
                visible: None,
                version: Some(None),
            },
        );
        let d = draft(&schema(), &o).unwrap();
        assert_eq!(d.proposals.len(), 1);
    }

    #[test]
    fn read_only_drafts_no_proposals() {
        let mut o = opts(org(), Selection::All);
        o.write_url_env = None;
        o.socket_dir = Some("./.airlock/run".into());
        let d = draft(&schema(), &o).unwrap();
        assert!(d.proposals.is_empty());
        assert_eq!(d.config["mode"], "read_only");
        assert_eq!(d.config["airlock"], json!({"socket_dir": "./.airlock/run"}));
        assert!(d.config["sources"]["app"].get("write_url_env").is_none());
        assert!(load_config(&d.config).config.is_some());
    }

    #[test]
    fn named_tables_must_be_draftable() {
        let d = draft(
            &schema(),
            &opts(
                org(),
                Selection::Named(vec!["invoices".into(), "invoices".into()]),
            ),
        )
        .unwrap();
        assert_eq!(d.reads.len(), 1);
        assert!(d.skipped.is_empty());
        let errs = draft(
            &schema(),
            &opts(
                org(),
                Selection::Named(vec![
                    "countries".into(),
                    "nope".into(),
                    "memberships".into(),
                ]),
            ),
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "table `countries` has no tenant column `org_id`: pass --single-tenant if this database serves one tenant, or leave the table out",
                "there is no table `nope` in public; its tables are: countries, customers, invoices, tickets, memberships, open_invoices",
                "table `memberships` cannot be drafted: its primary key is composite (org_id, user_ref); a read looks one row up by a single column",
            ]
        );
    }

    #[test]
    fn single_tenant_drafts_every_keyed_table_without_a_tenant_key() {
        let d = draft(&schema(), &opts(Tenancy::SingleTenant, Selection::All)).unwrap();
        let tables: Vec<&str> = d.reads.iter().map(|r| r.table.as_str()).collect();
        assert_eq!(tables, ["countries", "customers", "invoices", "tickets"]);
        let cap = &d.config["capabilities"][0];
        assert_eq!(cap["target"]["single_tenant_dev"], true);
        assert_eq!(cap["single_tenant_dev_ack"], true);
        assert!(cap["target"].get("tenant_key").is_none());
        assert!(d.reads.iter().all(|r| r.tenant_key.is_none()));
        assert!(load_config(&d.config).config.is_some());
        let ticket = d.proposals.iter().find(|p| p.table == "tickets").unwrap();
        assert!(!ticket.enabled);
    }

    #[test]
    fn an_unknown_tenant_column_and_an_empty_schema_are_refused() {
        let errs = draft(
            &schema(),
            &opts(Tenancy::Column("tenant_id".into()), Selection::All),
        )
        .unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "no table in public has a column `tenant_id`; name the tenant column with --tenant-column"
        );
        let mut empty = schema();
        empty.tables.retain(|t| t.name == "countries");
        let errs = draft(
            &empty,
            &opts(Tenancy::Column("org_id".into()), Selection::All),
        );
        // `countries` has no org_id, so the column is unknown to the schema.
        assert!(matches!(
            errs.unwrap_err()[0],
            DraftError::UnknownTenantColumn { .. }
        ));
        empty.tables[0].columns.push(col("org_id", "uuid"));
        empty.tables[0].primary_key = vec![];
        let errs = draft(&empty, &opts(org(), Selection::All)).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "no table of public can be drafted: countries: it has no primary key to look a row up by"
        );
    }

    #[test]
    fn a_person_may_choose_the_visible_columns_and_sensitive_ones_are_reported() {
        let mut o = opts(org(), Selection::Named(vec!["customers".into()]));
        o.choices.insert(
            "customers".into(),
            TableChoice {
                visible: Some(vec!["email".into(), "status".into()]),
                version: None,
            },
        );
        let d = draft(&schema(), &o).unwrap();
        let r = &d.reads[0];
        assert_eq!(r.visible, ["id", "org_id", "email", "status"]);
        assert_eq!(r.shown_sensitive, ["email"]);
        let hidden: Vec<(&str, &str)> = r
            .hidden
            .iter()
            .map(|h| (h.column.as_str(), h.reasons[0].as_str()))
            .collect();
        assert_eq!(hidden[1], ("updated_at", "left out by your choice"));
        assert_eq!(hidden[0].0, "date_of_birth");
    }

    #[test]
    fn a_sensitive_primary_key_or_a_tenant_primary_key_is_not_drafted() {
        let mut s = schema();
        s.tables.push(table(
            "subscribers",
            &["email"],
            &[("email", "text"), ("org_id", "uuid")],
        ));
        s.tables
            .push(table("orgs", &["org_id"], &[("org_id", "uuid")]));
        let d = draft(&s, &opts(org(), Selection::All)).unwrap();
        let reasons: BTreeMap<&str, &str> = d
            .skipped
            .iter()
            .map(|k| (k.table.as_str(), k.reason.as_str()))
            .collect();
        assert!(
            reasons["subscribers"].starts_with("its primary key `email` is sensitive ("),
            "{reasons:?}"
        );
        assert_eq!(
            reasons["orgs"],
            "its primary key is the tenant column `org_id` (one row per tenant)"
        );
    }

    #[test]
    fn names_stay_unique_and_arguments_never_look_like_authority() {
        let mut s = schema();
        s.tables = vec![
            table("user", &["id"], &[("id", "text"), ("org_id", "uuid")]),
            table("users", &["id"], &[("id", "text"), ("org_id", "uuid")]),
        ];
        let d = draft(&s, &opts(org(), Selection::All)).unwrap();
        let names: Vec<(&str, &str)> = d
            .reads
            .iter()
            .map(|r| (r.capability.as_str(), r.lookup_arg.as_str()))
            .collect();
        assert_eq!(
            names,
            [("app.inspect_user", "id"), ("app.inspect_users", "id")]
        );
        let mut taken = BTreeSet::from(["a".to_owned(), "b".to_owned()]);
        assert_eq!(unique_name(&mut taken, "a".into(), "b".into()), "b_2");
        assert_eq!(unique_name(&mut taken, "a".into(), "b".into()), "b_3");
        assert_eq!(unique_name(&mut taken, "c".into(), "b".into()), "c");
        assert!(taken.contains("b_2") && taken.contains("b_3") && taken.contains("c"));
    }

    #[test]
    fn a_recipe_fitting_several_tables_is_drafted_for_each_and_left_for_review() {
        let mut s = schema();
        let mut second = s.table("invoices").unwrap().clone();
        second.name = "old_invoices".into();
        s.tables.push(second);
        let d = draft(&s, &opts(org(), Selection::All)).unwrap();
        let waivers: Vec<(&str, bool)> = d
            .proposals
            .iter()
            .filter(|p| p.recipe == "billing.late_fee_waiver")
            .map(|p| (p.capability.as_str(), p.enabled))
            .collect();
        assert_eq!(
            waivers,
            [
                ("billing.propose_late_fee_waiver_invoices", false),
                ("billing.propose_late_fee_waiver_old_invoices", false),
            ]
        );
        assert_eq!(
            d.proposals[0].review,
            [
                "recipe billing.late_fee_waiver fits 2 tables (invoices, old_invoices): keep the one you mean"
            ]
        );
        assert!(load_config(&d.config).config.is_some());
    }

    #[test]
    fn a_proposal_shows_no_sensitive_column_it_only_shows_and_waits_when_it_writes_one() {
        let t = table(
            "customers",
            &["id"],
            &[
                ("id", "text"),
                ("org_id", "uuid"),
                ("email", "text"),
                ("phone_number", "text"),
                ("status", "text"),
            ],
        );
        let shown: Vec<String> = ["id", "org_id", "email", "phone_number", "status"]
            .map(String::from)
            .to_vec();
        let written = BTreeSet::from(["phone_number".to_owned()]);
        let (visible, review) = screen_sensitive(&t, &shown, &written, &["id", "org_id"]);
        assert_eq!(visible, ["id", "org_id", "phone_number", "status"]);
        assert_eq!(review.len(), 1);
        assert!(
            review[0]
                .starts_with("it writes or guards column `phone_number`, which is sensitive ("),
            "{review:?}"
        );
        // A sensitive key stays visible and is no reason to wait.
        let (visible, review) = screen_sensitive(&t, &shown[2..3], &BTreeSet::new(), &["email"]);
        assert_eq!(visible, ["email"]);
        assert!(review.is_empty());
    }

    #[test]
    fn a_reason_is_one_line_within_the_limit() {
        let long = vec!["x".repeat(300), "y".repeat(300)];
        let line = reason_line(&long);
        assert_eq!(line.chars().count(), MAX_REASON);
        assert!(line.ends_with('…'));
        assert_eq!(reason_line(&["a\nb".into(), "c".into()]), "a b; c");
        let exact = "z".repeat(MAX_REASON);
        assert_eq!(reason_line(std::slice::from_ref(&exact)), exact);
    }
}
