//! `airlock-executor serve`: the privileged half of Airlock. The entry point
//! of the `airlock-executor` binary, which both the `airlock-executor` and the
//! `airlock-proposer` packages build (`cargo install --path` either of them
//! installs all three programs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "airlock-executor",
    version,
    about = "The Airlock executor: the only writer, the enforcer of approval."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the proposer and operator sockets until SIGTERM/SIGINT.
    #[command(
        after_help = "Examples:\n  airlock-executor serve --config /etc/airlock/config.json --store /var/lib/airlock/ledger.db --socket-dir /run/airlock\n  airlock-executor serve --config airlock.json --log-format json"
    )]
    Serve {
        /// The reviewed config file.
        #[arg(long)]
        config: PathBuf,
        /// The ledger (SQLite); default: the config's storage.sqlite_path, else .airlock/ledger.db beside the config.
        #[arg(long)]
        store: Option<PathBuf>,
        /// Directory for proposer.sock and operator.sock.
        #[arg(long)]
        socket_dir: Option<PathBuf>,
        /// Log format on stderr.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
}

/// The whole `airlock-executor` program: parse the arguments, serve, exit.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let Command::Serve {
        config,
        store,
        socket_dir,
        log_format,
    } = cli.command;
    init_logging(&log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("airlock-executor: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::daemon::serve(crate::daemon::ServeOptions {
        config,
        store,
        socket_dir,
    })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("airlock-executor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
