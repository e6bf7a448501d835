//! The operator CLI `airlock`: a person's tool. State-changing commands go
//! through the executor's operator socket; helper commands run locally.
//!
//! Exit codes: 0 ok, 1 failure, 2 usage, 3 refused by policy, 4 conflict.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod config_cmd;
mod ledger_cmd;
pub mod operator;
mod output;
mod tools_cmd;

pub use output::Exit;

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "Operate Airlock: review and approve proposals, inspect the ledger, check configs."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a reviewed config.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show what the model will see.
    #[command(subcommand)]
    Tools(ToolsCommand),
    /// Review proposals: list, show, approve, reject.
    #[command(subcommand)]
    Proposals(ProposalsCommand),
    /// Follow the ledger's events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Check the ledger's integrity.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

/// Where to find the executor's sockets.
#[derive(Debug, Args, Clone)]
pub struct ConnArgs {
    /// Directory holding operator.sock (default: AIRLOCK_SOCKET_DIR, the config's airlock.socket_dir, $XDG_RUNTIME_DIR/airlock, ./.airlock/run).
    #[arg(long, global = true)]
    pub socket_dir: Option<PathBuf>,
    /// The reviewed config (used to find the socket directory).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ProposalsCommand {
    /// List proposals, newest first.
    List {
        /// Only this status: pending_approval, approved, rejected, expired, applied, conflict, failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show one proposal as a readable diff (ID or `latest`).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Approve a pending proposal (asks on a terminal unless --yes).
    Approve {
        id: String,
        /// A note recorded with the approval.
        #[arg(long)]
        note: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Reject a pending proposal.
    Reject {
        id: String,
        /// Why (recorded in the ledger).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print the latest events; with --follow, keep printing new ones.
    Tail {
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Recompute the hash chain and report the first broken link (exit 1 if broken).
    Verify {
        /// The ledger file.
        #[arg(long)]
        store: Option<PathBuf>,
        /// Or: the config whose ledger to check.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config and explain every problem (exit 0 valid, 1 invalid, 2 usage).
    Validate(ConfigArgs),
}

#[derive(Debug, Subcommand)]
enum ToolsCommand {
    /// List the MCP tools the proposer will offer, with their argument schemas.
    Preview(ToolsPreviewArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The reviewed config file.
    #[arg(long)]
    pub config: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ToolsPreviewArgs {
    /// The reviewed config file.
    #[arg(long)]
    pub config: PathBuf,
    /// Tool names: canonical (`billing.inspect_invoice`), openai (`billing__inspect_invoice`) or both.
    #[arg(long, default_value = "canonical", value_parser = ["canonical", "openai", "both"])]
    pub alias_mode: String,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return code.into();
        }
    };
    let exit = match cli.command {
        Command::Config(ConfigCommand::Validate(args)) => config_cmd::validate(&args),
        Command::Tools(ToolsCommand::Preview(args)) => tools_cmd::preview(&args),
        Command::Proposals(ProposalsCommand::List { status, json, conn }) => {
            operator::list(&conn, status.as_deref(), json)
        }
        Command::Proposals(ProposalsCommand::Show { id, json, conn }) => {
            operator::show(&conn, &id, json)
        }
        Command::Proposals(ProposalsCommand::Approve {
            id,
            note,
            yes,
            json,
            conn,
        }) => operator::approve(&conn, &id, note, yes, json),
        Command::Proposals(ProposalsCommand::Reject {
            id,
            reason,
            json,
            conn,
        }) => operator::reject(&conn, &id, reason, json),
        Command::Events(EventsCommand::Tail { follow, json, conn }) => {
            operator::events_tail(&conn, follow, json)
        }
        Command::Ledger(LedgerCommand::Verify {
            store,
            config,
            json,
        }) => ledger_cmd::verify(store.as_deref(), config.as_deref(), json),
    };
    exit.into()
}
