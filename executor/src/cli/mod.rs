//! The operator CLI `airlock`: a person's tool. State-changing commands go
//! through the executor's operator socket; helper commands run locally.
//!
//! Exit codes: 0 ok, 1 failure, 2 usage, 3 refused by policy, 4 conflict.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod config_cmd;
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
    };
    exit.into()
}
