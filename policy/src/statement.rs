//! Every SQL statement Airlock sends to a source database, built from
//! reviewed identifiers only. Model-supplied values are always bound
//! parameters; identifiers were checked by the loader and are quoted here.
//!
//! Tenant comparisons cast the tenant column to text (binary-compared on
//! MySQL, whose default collations ignore case), so a numeric or UUID tenant
//! column matches the trusted tenant id exactly, while the primary-key
//! comparison stays uncast and keeps using its index.

use crate::canonical::sha256_tagged;
use crate::config::{Capability, Engine};
use crate::identifier::quote;

/// The positional parameters of a row lookup, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupParam {
    /// The value of the capability's `lookup.id_from_arg` argument.
    PrimaryKey,
    /// The trusted tenant id (as text).
    Tenant,
}

/// A statement and the order of its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<LookupParam>,
}

impl Statement {
    /// `sha256:` of the SQL text: identifies the query shape in evidence
    /// without any parameter values.
    pub fn fingerprint(&self) -> String {
        sha256_tagged(self.sql.as_bytes())
    }
}

fn placeholder(engine: Engine, n: usize) -> String {
    match engine {
        Engine::Postgres => format!("${n}"),
        Engine::Mysql | Engine::Sqlite => "?".to_owned(),
    }
}

/// `<tenant column> = <placeholder>`, compared exactly as text.
pub fn tenant_predicate(engine: Engine, column: &str, n: usize) -> String {
    let col = quote(engine, column);
    let ph = placeholder(engine, n);
    match engine {
        Engine::Postgres => format!("{col}::text = {ph}"),
        Engine::Mysql => format!("CAST(CAST({col} AS CHAR) AS BINARY) = CAST({ph} AS BINARY)"),
        Engine::Sqlite => format!("CAST({col} AS TEXT) = {ph}"),
    }
}

/// The qualified table name. SQLite's schema is the attached database name
/// (`main` for the file itself); MySQL's is the database.
pub fn table_name(engine: Engine, cap: &Capability) -> String {
    format!(
        "{}.{}",
        quote(engine, &cap.target.schema),
        quote(engine, &cap.target.table)
    )
}

/// The SELECT that reads a capability's row: its read columns, scoped by
/// primary key and tenant key. With `for_update`, the row is locked
/// (Postgres and MySQL; SQLite serializes writers per transaction instead).
pub fn select_row(engine: Engine, cap: &Capability, for_update: bool) -> Statement {
    let cols: Vec<String> = cap
        .read_columns()
        .into_iter()
        .map(|c| quote(engine, c))
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {} = {}",
        cols.join(", "),
        table_name(engine, cap),
        quote(engine, &cap.target.primary_key),
        placeholder(engine, 1)
    );
    let mut params = vec![LookupParam::PrimaryKey];
    if let Some(tk) = &cap.target.tenant_key {
        sql.push_str(" AND ");
        sql.push_str(&tenant_predicate(engine, tk, 2));
        params.push(LookupParam::Tenant);
    }
    sql.push_str(&format!(" LIMIT {}", cap.max_rows));
    if for_update && engine != Engine::Sqlite {
        sql.push_str(" FOR UPDATE");
    }
    Statement { sql, params }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_config_str;

    const REFERENCE: &str =
        include_str!("../../../shared/compat/reference-support-billing/synapsor.runner.json");

    #[test]
    fn select_is_scoped_by_key_and_tenant() {
        let cfg = load_config_str(REFERENCE).config.unwrap();
        let cap = cfg.capability("billing.inspect_invoice").unwrap();
        let pg = select_row(Engine::Postgres, cap, false);
        assert_eq!(
            pg.sql,
            "SELECT \"id\", \"tenant_id\", \"customer_id\", \"status\", \"balance_cents\", \"late_fee_cents\", \"waiver_reason\", \"updated_at\" FROM \"public\".\"invoices\" WHERE \"id\" = $1 AND \"tenant_id\"::text = $2 LIMIT 1"
        );
        assert_eq!(
            pg.params,
            vec![LookupParam::PrimaryKey, LookupParam::Tenant]
        );
        let my = select_row(Engine::Mysql, cap, true);
        assert!(my.sql.starts_with("SELECT `id`, `tenant_id`"));
        assert!(my.sql.ends_with("WHERE `id` = ? AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) LIMIT 1 FOR UPDATE"));
        assert!(pg.fingerprint().starts_with("sha256:"));
    }
}
