//! Where the ledger is: an SQLite file (one host, the default) or a
//! PostgreSQL schema shared by a fleet (`storage.shared_postgres`), and the
//! start-up check that a shared ledger is not inside a source database.
//!
//! The ledger's URL comes from the environment variable the config names,
//! never from the config; it is never printed (errors name the variable).

use std::path::Path;
use std::str::FromStr;

use airlock_policy::Config;
use airlock_policy::config::{Engine, SharedPostgres};
use anyhow::{Context, anyhow, bail};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::ledger::Ledger;

/// A PostgreSQL ledger, resolved from the config and the environment.
#[derive(Clone)]
pub struct SharedLedger {
    pub settings: SharedPostgres,
    url: String,
}

impl std::fmt::Debug for SharedLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLedger")
            .field("url_env", &self.settings.url_env)
            .field("schema", &self.settings.schema)
            .finish_non_exhaustive()
    }
}

impl SharedLedger {
    /// The config's shared ledger, if it has one; `env` reads a variable.
    pub fn from_config(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<SharedLedger>> {
        let Some(settings) = config.storage.shared_postgres.clone() else {
            return Ok(None);
        };
        let url = env(&settings.url_env).filter(|u| !u.is_empty()).ok_or_else(|| {
            anyhow!(
                "storage.shared_postgres.url_env names {}, which is not set; export the ledger database's URL in it",
                settings.url_env
            )
        })?;
        PgConnectOptions::from_str(&url).map_err(|_| {
            anyhow!(
                "{} does not hold a PostgreSQL URL (postgres://user@host:port/database)",
                settings.url_env
            )
        })?;
        Ok(Some(SharedLedger { settings, url }))
    }

    /// Open the ledger (its schema must be migrated).
    pub fn open(&self) -> anyhow::Result<Ledger> {
        Ledger::open_postgres(
            &self.url,
            &self.settings.schema,
            self.settings.lock_timeout_ms,
        )
        .with_context(|| {
            format!(
                "cannot open the ledger in schema {} of the database in {}",
                self.settings.schema, self.settings.url_env
            )
        })
    }

    /// Create or upgrade the ledger schema: (version before, after).
    pub fn migrate(&self) -> anyhow::Result<(i64, i64)> {
        Ledger::migrate_postgres(&self.url, &self.settings.schema).with_context(|| {
            format!(
                "cannot migrate the ledger in schema {} of the database in {}",
                self.settings.schema, self.settings.url_env
            )
        })
    }

    /// Grant an executor's role what it needs; returns the statements.
    pub fn grant(&self, role: &str) -> anyhow::Result<String> {
        Ok(Ledger::grant_postgres(
            &self.url,
            &self.settings.schema,
            role,
        )?)
    }

    /// Refuse a ledger that lives in a source database: a source's
    /// credentials (the proposer's read URL among them) would reach the
    /// ledger. Compared by address first (host, port, database), then —
    /// for each PostgreSQL source whose URL this process has — by asking
    /// both servers who they are (start time, port, database), which also
    /// catches two names for one server. Returns the sources it could not
    /// reach, for the log.
    pub async fn check_distinct_from_sources(
        &self,
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Vec<String>> {
        let ledger_opts = PgConnectOptions::from_str(&self.url)?;
        let mut ledger_conn = PgConnection::connect_with(&ledger_opts)
            .await
            .map_err(|_| {
                anyhow!(
                    "cannot connect to the ledger database in {}",
                    self.settings.url_env
                )
            })?;
        let ledger_id = server_identity(&mut ledger_conn).await?;
        let _ = ledger_conn.close().await;
        let mut unreachable = Vec::new();
        for (name, source) in &config.sources {
            if source.engine != Engine::Postgres {
                continue;
            }
            for var in std::iter::once(&source.read_url_env).chain(&source.write_url_env) {
                let Some(url) = env(var) else { continue };
                let Ok(opts) = PgConnectOptions::from_str(&url) else {
                    continue;
                };
                if same_address(&ledger_opts, &opts) {
                    bail!(same_database(name, var, &self.settings.url_env));
                }
                match PgConnection::connect_with(&opts).await {
                    Ok(mut c) => {
                        let id = server_identity(&mut c).await;
                        let _ = c.close().await;
                        if id.ok().as_ref() == Some(&ledger_id) {
                            bail!(same_database(name, var, &self.settings.url_env));
                        }
                    }
                    Err(_) => unreachable.push(format!("{name} ({var})")),
                }
            }
        }
        Ok(unreachable)
    }
}

fn same_database(source: &str, var: &str, ledger_var: &str) -> String {
    format!(
        "the ledger database ({ledger_var}) is source `{source}`'s database ({var}); give the ledger a database of its own, so no source credential reaches it"
    )
}

/// Host, port and database, with the local spellings of one host equal.
fn same_address(a: &PgConnectOptions, b: &PgConnectOptions) -> bool {
    let host = |o: &PgConnectOptions| match o.get_host() {
        "localhost" | "127.0.0.1" | "::1" | "[::1]" => "local".to_owned(),
        h if h.starts_with('/') => "local".to_owned(),
        h => h.to_ascii_lowercase(),
    };
    let db = |o: &PgConnectOptions| o.get_database().unwrap_or(o.get_username()).to_owned();
    host(a) == host(b) && a.get_port() == b.get_port() && db(a) == db(b)
}

/// Who a server and database are: (start time, port, database).
async fn server_identity(c: &mut PgConnection) -> anyhow::Result<(String, String, String)> {
    let row: (String, String, String) = sqlx::query_as(
        "SELECT pg_postmaster_start_time()::text, current_setting('port'), current_database()::text",
    )
    .fetch_one(&mut *c)
    .await?;
    Ok(row)
}

/// The ledger an executor serves: the shared one, or the SQLite file.
pub fn describe(store: &Path, shared: Option<&SharedLedger>) -> String {
    match shared {
        Some(s) => format!(
            "PostgreSQL schema {} (the database in {})",
            s.settings.schema, s.settings.url_env
        ),
        None => store.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(url).unwrap()
    }

    #[test]
    fn local_spellings_of_one_database_are_one_address() {
        assert!(same_address(
            &opts("postgres://a@localhost:5432/app"),
            &opts("postgres://b:pw@127.0.0.1/app")
        ));
        assert!(!same_address(
            &opts("postgres://a@localhost:5432/app"),
            &opts("postgres://a@localhost:5432/ledger")
        ));
        assert!(!same_address(
            &opts("postgres://a@localhost:5432/app"),
            &opts("postgres://a@localhost:5433/app")
        ));
        assert!(!same_address(
            &opts("postgres://a@db1/app"),
            &opts("postgres://a@db2/app")
        ));
    }
}
