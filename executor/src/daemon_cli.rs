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
        /// Export OpenTelemetry traces (OTLP over HTTP, JSON) to this
        /// collector URL, e.g. http://127.0.0.1:4318/v1/traces; a proposer's
        /// request joins the proposer's trace. Off by default.
        #[arg(long, value_name = "URL")]
        otel_traces_endpoint: Option<String>,
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
        otel_traces_endpoint,
    } = cli.command;
    let mut telemetry =
        match airlock_proposer::telemetry::init(&airlock_proposer::telemetry::TelemetryOptions {
            service: "airlock-executor",
            log_format: &log_format,
            default_filter: "info",
            // Colour only on a terminal: journald and log files get plain text.
            ansi: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            otel_traces_endpoint: otel_traces_endpoint.as_deref(),
        }) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("airlock-executor: {e}");
                return ExitCode::from(2);
            }
        };
    if let Err(e) = telemetry.start_traces() {
        eprintln!("airlock-executor: {e}");
        return ExitCode::FAILURE;
    }
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
