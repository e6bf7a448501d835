//! The operator CLI `airlock`: a person's tool. State-changing commands go
//! through the executor's operator socket; helper commands run locally.
//!
//! Exit codes: 0 ok, 1 failure, 2 usage, 3 refused by policy, 4 conflict.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod audit;
mod config_cmd;
mod demo;
mod doctor;
mod handler_cmd;
mod ledger_cmd;
mod mcp_config;
pub mod operator;
mod output;
mod tools_cmd;
mod writeback_cmd;

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
    /// Apply an approved proposal (exactly once; exit 4 on a conflict).
    Apply {
        /// Proposal id or `latest`.
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Tell a proposal's whole story, or export it.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Receipt-table DDL and least-privilege grants for sql_update.
    #[command(subcommand)]
    Writeback(WritebackCommand),
    /// Write a starter application handler.
    #[command(subcommand)]
    Handler(HandlerCommand),
    /// Diagnose a setup: config, variables, credential split, databases, sockets, executor, handlers.
    Doctor {
        /// The reviewed config file.
        #[arg(long, default_value = crate::config_file::DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The whole loop in one command: embedded SQLite, two processes, no setup.
    Demo {
        /// Approve without asking (a non-interactive stdin also approves).
        #[arg(long)]
        yes: bool,
        /// Keep the demo's files (database, config, ledger) in this directory.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Static risk review of an MCP server's tool list (exit 0 whatever the risk).
    Audit {
        /// A built-in example tool list: dangerous-db-mcp.
        #[arg(long, value_parser = ["dangerous-db-mcp"])]
        example: Option<String>,
        /// A JSON file: an MCP tools/list result ({"tools": [...]}) or an array of tools.
        file: Option<PathBuf>,
        /// Start this MCP server (split on whitespace, no shell), call only initialize and tools/list, stop it.
        #[arg(long)]
        stdio: Option<String>,
        #[arg(long, default_value = "text", value_parser = ["text", "json", "markdown"])]
        format: String,
    },
    /// MCP client configuration for the proposer.
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  airlock completions bash > ~/.local/share/bash-completion/completions/airlock\n  airlock completions zsh > \"${fpath[1]}/_airlock\"\n  airlock completions fish > ~/.config/fish/completions/airlock.fish"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum McpCommand {
    /// Print a client snippet that launches airlock-proposer with only the read URL and trusted context (names, placeholder values).
    Config {
        #[arg(value_parser = ["claude-desktop", "claude-desktop-remote", "cursor", "vscode", "generic", "openai-agents"])]
        client: String,
        /// The reviewed config file.
        #[arg(long, default_value = crate::config_file::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Use the absolute path of airlock-proposer (next to this airlock) and of the config.
        #[arg(long)]
        absolute_paths: bool,
        /// The executor's socket directory, when it is not where this command
        /// resolves it (AIRLOCK_SOCKET_DIR, airlock.socket_dir, $XDG_RUNTIME_DIR/airlock, .airlock/run beside the config).
        #[arg(long)]
        socket_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum HandlerCommand {
    /// Write a starter handler (re-checks tenant/version, idempotent, terminal receipts).
    Template {
        /// node-fastify | python-fastapi | command
        kind: String,
        /// File to create (never overwritten).
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ReplayCommand {
    /// What the model read, what it proposed, who decided, what was applied.
    Show {
        /// Proposal id or `latest`.
        id: String,
        /// Include the rows read and the full receipts.
        #[arg(long)]
        details: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Write the replay to a file, or to stdout with `--output -` (JSON in the shared protocol shapes, or Markdown).
    Export {
        /// Proposal id or `latest`.
        id: String,
        #[arg(long, default_value = "json", value_parser = ["json", "markdown"])]
        format: String,
        #[arg(long)]
        output: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum WritebackCommand {
    /// Print the idempotency-receipt table's DDL.
    Migration {
        #[arg(long)]
        engine: String,
        /// Schema (Postgres), database (MySQL) or attached database (SQLite).
        #[arg(long)]
        schema: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print least-privilege grants for the executor's writer role.
    Grants {
        #[arg(long)]
        engine: String,
        #[arg(long)]
        writer_role: String,
        /// The reviewed config (the grants follow its proposal capabilities).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// Where to find the executor's sockets.
#[derive(Debug, Args, Clone)]
pub struct ConnArgs {
    /// Directory holding operator.sock (default: AIRLOCK_SOCKET_DIR, the config's airlock.socket_dir, $XDG_RUNTIME_DIR/airlock, .airlock/run beside the config).
    #[arg(long, global = true)]
    pub socket_dir: Option<PathBuf>,
    /// The reviewed config (used to find the socket directory; default:
    /// ./airlock.json when it exists).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// The OS user (name or uid) the executor runs as; the process at the
    /// socket must run as it (default: AIRLOCK_EXECUTOR_USER, else your own
    /// user, the `airlock` system user, or root).
    #[arg(long, global = true)]
    pub executor_user: Option<String>,
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
        /// Approve only if the proposal's hash starts with this
        /// (`sha256:` and at least 12 hex digits, as shown by `proposals
        /// show`). Required for `latest` without a confirmation prompt.
        #[arg(long, value_name = "sha256:HEX")]
        hash: Option<String>,
        /// Apply right after approving.
        #[arg(long)]
        apply: bool,
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
    #[arg(long, default_value = crate::config_file::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ToolsPreviewArgs {
    /// The reviewed config file.
    #[arg(long, default_value = crate::config_file::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Tool names: openai (the proposer's default: client-safe `billing__inspect_invoice`), canonical (`billing.inspect_invoice`) or both.
    #[arg(long, default_value = "openai", value_parser = ["canonical", "openai", "both"])]
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
            hash,
            apply,
            json,
            conn,
        }) => operator::approve(
            &conn,
            &id,
            operator::ApproveOptions {
                note,
                yes,
                hash,
                apply,
            },
            json,
        ),
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
        Command::Apply { id, json, conn } => writeback_cmd::apply(&conn, &id, json),
        Command::Demo { yes, keep } => demo::run(yes, keep.as_deref()),
        Command::Audit {
            example,
            file,
            stdio,
            format,
        } => audit::run(example, file, stdio, format),
        Command::Mcp(McpCommand::Config {
            client,
            config,
            absolute_paths,
            socket_dir,
        }) => mcp_config::print(client, config, absolute_paths, socket_dir),
        Command::Doctor { config, json } => doctor::run(&config, json),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            use std::io::Write as _;
            // Generated into memory: clap_complete panics on a failed write
            // (a closed pipe), and the CLI never panics.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "airlock", &mut script);
            let _ = std::io::stdout().lock().write_all(&script);
            Exit::Ok
        }
        Command::Handler(HandlerCommand::Template { kind, output, json }) => {
            handler_cmd::template(&kind, &output, json)
        }
        Command::Replay(ReplayCommand::Show {
            id,
            details,
            json,
            conn,
        }) => writeback_cmd::replay_show(&conn, &id, details, json),
        Command::Replay(ReplayCommand::Export {
            id,
            format,
            output,
            json,
            conn,
        }) => writeback_cmd::replay_export(&conn, &id, &format, &output, json),
        Command::Writeback(WritebackCommand::Migration {
            engine,
            schema,
            json,
        }) => writeback_cmd::migration(&engine, schema.as_deref(), json),
        Command::Writeback(WritebackCommand::Grants {
            engine,
            writer_role,
            config,
            json,
        }) => writeback_cmd::grants(&engine, &writer_role, config.as_deref(), json),
    };
    exit.into()
}
