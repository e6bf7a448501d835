//! `airlock-proposer serve`: the MCP server an agent talks to. The entry
//! point of the `airlock-proposer` binary, which both the `airlock-proposer`
//! and the `airlock-executor` packages build (`cargo install --path` either
//! of them installs all three programs). The sandbox needs this to be the
//! first code the process runs: Landlock goes on while the process has one
//! thread, before the async runtime starts any.
//!
//! stdout carries only the MCP protocol (stdio transport); logs go to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::server::McpServer;
use crate::stdio_front::StdioFront;
use crate::tools::{Proposer, Settings};
use airlock_ipc::transport::{PROPOSER_SOCKET, locate_socket_dir};
use airlock_policy::catalog::AliasMode;
use airlock_policy::config::ResultFormat;
use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};
use rmcp::ServiceExt;

#[derive(Debug, Parser)]
#[command(
    name = "airlock-proposer",
    version,
    about = "The Airlock proposer: reviewed, read-and-propose MCP tools. Holds no write authority."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the reviewed tools over MCP (stdio by default).
    #[command(
        after_help = "Examples:\n  airlock-proposer serve --config /etc/airlock/config.json\n  AIRLOCK_PROPOSER_MCP_TOKEN=... airlock-proposer serve --config airlock.json --transport streamable-http --listen 127.0.0.1:8766 --auth-token-env AIRLOCK_PROPOSER_MCP_TOKEN\n\nMCP clients usually start it themselves: `airlock mcp config <client>` prints their snippet."
    )]
    Serve(Box<ServeArgs>),
    /// Debug aid: install the sandbox, try each forbidden call, report, exit.
    #[command(hide = true)]
    SandboxCheck,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The reviewed config file.
    #[arg(long)]
    config: PathBuf,
    /// Directory holding the executor's proposer.sock.
    #[arg(long)]
    socket_dir: Option<PathBuf>,
    /// The OS user (name or uid) the executor runs as; the process at the
    /// socket must run as it (default: AIRLOCK_EXECUTOR_USER, else your
    /// own user, the `airlock` system user, or root).
    #[arg(long)]
    executor_user: Option<String>,
    /// stdio (for clients that spawn the proposer) or streamable-http.
    #[arg(long, default_value = "stdio", value_parser = ["stdio", "streamable-http"])]
    transport: String,
    /// Address for streamable-http.
    #[arg(long, default_value = "127.0.0.1:8766")]
    listen: SocketAddr,
    /// Environment variable holding the bearer token for streamable-http.
    #[arg(long)]
    auth_token_env: Option<String>,
    /// During a token rotation: the variable holding the previous bearer
    /// token, still accepted beside the active one until you remove it.
    #[arg(long, requires = "auth_token_env")]
    previous_auth_token_env: Option<String>,
    /// Serve streamable-http without a token (loopback addresses only).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Tool names: openai (the default: client-safe `billing__inspect_invoice`,
    /// each `.` as `__`, which every MCP client accepts), canonical
    /// (`billing.inspect_invoice`) or both.
    #[arg(long, default_value = "openai", value_parser = ["canonical", "openai", "both"])]
    alias_mode: String,
    /// Result envelope version (default: the config's result_format, else 2).
    #[arg(long, value_parser = ["1", "2"])]
    result_format: Option<String>,
    /// DEBUGGING ONLY: no sandbox at all (no Landlock, no seccomp filter,
    /// stays dumpable).
    #[arg(long)]
    no_sandbox: bool,
    /// Start even where the kernel cannot fully enforce the Landlock file
    /// sandbox (logged as an error); seccomp and the rest still apply.
    #[arg(long)]
    allow_weaker_sandbox: bool,
    /// Log format on stderr (json: one object per line, the access log too).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Export OpenTelemetry traces (OTLP over HTTP, JSON) to this collector
    /// URL, e.g. http://127.0.0.1:4318/v1/traces: one trace per tool call,
    /// joined by the executor's spans. Off by default.
    #[arg(long, value_name = "URL")]
    otel_traces_endpoint: Option<String>,
}

/// The whole `airlock-proposer` program: parse the arguments, serve, exit.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let (log_format, otel_traces_endpoint) = match &cli.command {
        Command::Serve(args) => (args.log_format.clone(), args.otel_traces_endpoint.clone()),
        _ => ("text".to_owned(), None),
    };
    let mut telemetry = match crate::telemetry::init(&crate::telemetry::TelemetryOptions {
        service: "airlock-proposer",
        log_format: &log_format,
        default_filter: "info,rmcp=warn",
        ansi: false,
        otel_traces_endpoint: otel_traces_endpoint.as_deref(),
    }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("airlock-proposer: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => run(*args, &mut telemetry),
        Command::SandboxCheck => sandbox_check(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlock-proposer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sandbox_check() -> anyhow::Result<()> {
    crate::sandbox::make_non_dumpable()?;
    restrict_files(&[], false, false)?;
    crate::sandbox::install().map_err(|e| anyhow!("cannot install the sandbox: {e}"))?;
    let mut all_refused = true;
    for r in crate::sandbox::self_check() {
        all_refused &= r.refused;
        eprintln!(
            "{:<20} {}  {}",
            r.syscall,
            if r.refused { "refused" } else { "ALLOWED" },
            r.detail
        );
    }
    if all_refused {
        Ok(())
    } else {
        bail!("some forbidden calls were allowed")
    }
}

fn run(args: ServeArgs, telemetry: &mut crate::telemetry::Telemetry) -> anyhow::Result<()> {
    // Before any secret is read: no core dumps, no same-user ptrace or
    // /proc/<pid>/mem of this process.
    if !args.no_sandbox {
        crate::sandbox::make_non_dumpable()?;
    }
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read config {}", args.config.display()))?;
    let loaded = airlock_policy::load_config_str(&text);
    let Some(config) = loaded.config else {
        let errors: Vec<String> = loaded
            .report
            .errors()
            .map(|d| format!("  {}: {}", d.path, d.message))
            .collect();
        bail!(
            "config {} is invalid:\n{}\nrun `airlock config validate --config {}` for fixes",
            args.config.display(),
            errors.join("\n"),
            args.config.display()
        );
    };
    let result_format = match args.result_format.as_deref() {
        Some("1") => ResultFormat::V1,
        Some(_) => ResultFormat::V2,
        None => config.result_format,
    };
    let alias_mode = AliasMode::parse(&args.alias_mode).unwrap_or(AliasMode::Openai);
    let (socket_dir, socket_dir_from) = locate_socket_dir(
        args.socket_dir.as_deref(),
        |k| std::env::var(k).ok(),
        config.airlock.socket_dir.as_deref(),
        args.config.parent(),
    );
    // Absolute now, against the directory the client started us in, so
    // that every message names the exact file that was tried.
    let socket_dir = std::path::absolute(&socket_dir).with_context(|| {
        format!(
            "cannot resolve the socket directory {}",
            socket_dir.display()
        )
    })?;
    // Verified identities (`session_auth`): each request's signed token
    // names the tenant, so the transport is HTTP and no static token or
    // unauthenticated mode stands beside it.
    let verifier = match &config.session_auth {
        None => None,
        Some(auth) => {
            if args.transport != "streamable-http" {
                bail!(
                    "this config takes the tenant and principal from each request's verified token (trusted_context.provider \"http_claims\"): serve it with --transport streamable-http"
                );
            }
            if args.auth_token_env.is_some() || args.insecure_no_auth {
                bail!(
                    "session_auth verifies every request's signed token: remove --auth-token-env / --insecure-no-auth (a static token names no tenant)"
                );
            }
            let url = std::env::var(&auth.jwks_url_env)
                .ok()
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| {
                    anyhow!(
                        "session_auth.jwks_url_env names {}, which is not set: set it to your issuer's JWKS URL",
                        auth.jwks_url_env
                    )
                })?;
            Some(Arc::new(
                airlock_identity::Verifier::new(auth.clone(), url.trim().to_owned()).map_err(
                    |e| anyhow!("session_auth.jwks_url_env ({}): {e}", auth.jwks_url_env),
                )?,
            ))
        }
    };
    let http_security = config.http_security.clone();
    let token = match (
        &args.transport[..],
        &args.auth_token_env,
        args.insecure_no_auth,
    ) {
        _ if verifier.is_some() => None,
        ("streamable-http", Some(var), _) => {
            let read = |var: &str| {
                std::env::var(var)
                    .ok()
                    .filter(|t| t.len() >= 16)
                    .ok_or_else(|| {
                        anyhow!(
                            "the bearer token variable {var} is not set or shorter than 16 characters"
                        )
                    })
            };
            let mut tokens = vec![read(var)?];
            if let Some(previous) = &args.previous_auth_token_env {
                tokens.push(read(previous)?);
                tracing::warn!(
                    variable = %previous,
                    "token rotation: the previous bearer token is still accepted; remove --previous-auth-token-env once every client has the new one"
                );
            }
            Some(tokens)
        }
        ("streamable-http", None, true) if args.listen.ip().is_loopback() => {
            tracing::warn!(
                address = %args.listen,
                "INSECURE: --insecure-no-auth serves MCP on {} WITHOUT a bearer token: EVERY local OS user (and every process on this machine) can call the tools, read what they read and create proposals as this proposer's tenant; use --auth-token-env NAME instead",
                args.listen
            );
            None
        }
        ("streamable-http", None, true) => {
            bail!("--insecure-no-auth is only allowed on a loopback --listen address")
        }
        ("streamable-http", None, false) => bail!(
            "streamable-http needs a bearer token: pass --auth-token-env NAME (a variable holding at least 16 characters), or --insecure-no-auth on loopback"
        ),
        _ => None,
    };

    // Metrics (config `metrics`): on the HTTP transport only, with the
    // scrapers' own token; off loopback a token is required.
    let metrics_token = match (&args.transport[..], config.metrics.enabled) {
        ("streamable-http", true) => match &config.metrics.token_env {
            Some(var) => Some(Some(
                std::env::var(var)
                    .ok()
                    .filter(|t| t.len() >= 16)
                    .ok_or_else(|| {
                        anyhow!("metrics.token_env names {var}, which is not set or shorter than 16 characters")
                    })?,
            )),
            None if args.listen.ip().is_loopback() => Some(None),
            None => bail!(
                "metrics are enabled on {}, off loopback, without a token: set metrics.token_env (METRICS_AUTH_REQUIRED)",
                args.listen
            ),
        },
        _ => None,
    };
    let settings = Settings {
        alias_mode,
        result_format,
        executor_socket: socket_dir.join(PROPOSER_SOCKET),
        executor_socket_from: socket_dir_from.describe(),
        executor_identity: airlock_ipc::client::ExpectedServer::resolve(
            args.executor_user.as_deref(),
            |k| std::env::var(k).ok(),
        )
        .map_err(|e| anyhow!(e))?,
    };
    let prepared = Proposer::prepare(config, settings, |k| std::env::var(k).ok())?;
    // Over stdio one client sends one call at a time, and each call waits on
    // the database and the executor: one thread serves it, and no call pays
    // for waking another worker (most of a call's CPU was such wake-ups,
    // `docs/benchmarks.md`). HTTP serves many sessions on every core, sized
    // now: once the file sandbox is on, the cgroup CPU quota cannot be read.
    let mut runtime = if args.transport == "streamable-http" {
        let workers = std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1);
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    // Landlock restricts the calling thread and the threads it starts: put it
    // on now, while this is the only thread, before the runtime starts any.
    if !args.no_sandbox {
        restrict_files(
            &prepared.sqlite_files(),
            verifier.is_some() || telemetry.needs_tls_roots(),
            args.allow_weaker_sandbox,
        )?;
    }
    // The exporter's thread starts after Landlock (so it inherits it) and
    // before seccomp, which covers every thread.
    telemetry.start_traces().map_err(|e| anyhow!(e))?;
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Pools are created (lazily, without connecting) inside the runtime.
    let mut proposer = {
        let _entered = runtime.enter();
        prepared.start()?
    };
    // The schema lock is checked once, with the read connection, before the
    // tools are offered: a drifted capability is not offered this lifetime.
    runtime.block_on(proposer.check_schema_lock());
    let proposer = Arc::new(proposer);
    let result = runtime.block_on(async move {
        let http_listener = if args.transport == "streamable-http" {
            Some(tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?)
        } else {
            None
        };
        // Everything the process needs is open or known: lock it down.
        if args.no_sandbox {
            tracing::warn!("SANDBOX DISABLED (--no-sandbox): no Landlock, no seccomp, dumpable: this proposer can exec programs, ptrace, open other processes' /proc/<pid>/mem and write files; use only for debugging");
        } else {
            crate::sandbox::install().map_err(|e| anyhow!("cannot install the sandbox: {e}"))?;
        }
        let offered = proposer
            .catalog()
            .tools()
            .iter()
            .filter(|t| !proposer.is_disabled(&t.canonical))
            .count();
        tracing::info!(tools = offered, transport = %args.transport, "airlock-proposer ready");
        match http_listener {
            Some(listener) => {
                tracing::info!(address = %args.listen, "serving MCP at http://{}/mcp", args.listen);
                let metrics = metrics_token
                    .map(crate::observability::MetricsEndpoint::install)
                    .transpose()
                    .context("cannot start the metrics recorder")?;
                let auth = match verifier {
                    Some(verifier) => {
                        // A wrong URL or an unreachable issuer is reported
                        // now, not by the first request.
                        verifier.prefetch().await.map_err(|e| anyhow!("cannot fetch the issuer's keys (session_auth.jwks_url_env): {e}"))?;
                        crate::http::HttpAuth::Verified(Arc::new(crate::http_identity::IdentityGate::new(verifier, &http_security)))
                    }
                    None => match token {
                        Some(tokens) => crate::http::HttpAuth::Static(tokens),
                        None => crate::http::HttpAuth::None,
                    },
                };
                crate::http::serve(proposer, listener, auth, metrics, shutdown_signal()).await.context("HTTP server failed")
            }
            None => {
                // rmcp speaks through the front, which answers or drops the lines rmcp mishandles.
                let (front, pipes) = StdioFront::start();
                let result = match McpServer::new(proposer).serve(pipes).await {
                    Ok(service) => tokio::select! {
                        r = service.waiting() => r.map(drop).context("MCP session ended with an error"),
                        _ = shutdown_signal() => return Ok(()),
                    },
                    Err(e) => Err(e).context("MCP initialization over stdio failed"),
                };
                // rmcp has dropped its pipes: let its last answers reach stdout.
                let _ = tokio::time::timeout(Duration::from_secs(5), front.finish()).await;
                result
            }
        }
    });
    // A blocking read of stdin cannot be cancelled (tokio::io::stdin): do not
    // wait for the client's next line or EOF to exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// The Landlock file sandbox, or the refusal to start without it.
fn restrict_files(
    sqlite_files: &[PathBuf],
    tls_roots: bool,
    allow_weaker: bool,
) -> anyhow::Result<()> {
    use crate::sandbox;
    let mut policy = sandbox::FilePolicy::for_proposer(sqlite_files)?;
    if tls_roots {
        policy = policy.with_tls_roots();
    }
    let got = sandbox::restrict_files(&policy)?;
    if let Some(warning) = sandbox::judge_file_sandbox(&got, allow_weaker)? {
        tracing::error!("{warning}");
    }
    let reads: Vec<String> = policy
        .rules
        .iter()
        .map(|r| r.path.display().to_string())
        .collect();
    tracing::debug!(reads = %reads.join(", "), file_sandbox = ?got, "file sandbox on: read-only access to these paths, no writes");
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
