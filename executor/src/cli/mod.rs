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
mod evidence_cmd;
mod explore_cmd;
mod handler_cmd;
mod init_cmd;
pub mod inspect;
mod ledger_cmd;
mod mcp_config;
mod notifications_cmd;
pub mod operator;
mod output;
mod proposer_session;
mod recipes_cmd;
mod review_ui;
pub mod schema_lock_cmd;
mod smoke;
mod start_cmd;
mod tools_cmd;
mod writeback_cmd;

pub use output::Exit;

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "Operate Airlock: review and approve proposals, inspect the ledger, check configs.",
    after_help = "Examples:\n  airlock config validate --config airlock.json\n  airlock proposals list --status pending_approval\n  airlock proposals approve latest --yes --hash sha256:3f9c1a7e5b2d --apply\n\nWithout --config, commands use ./airlock.json when it exists. `airlock <command> --help` shows each command's examples."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a reviewed config, or print its JSON Schema.
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
    /// Check, measure, back up and prune the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// What the executor's notification sinks delivered; send a signed test notification.
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Apply an approved proposal (exactly once; exit 4 on a conflict).
    #[command(
        after_help = "Examples:\n  airlock apply wrp_3f9c1a7e5b2d4c8019e6\n  airlock apply latest --json\n  airlock apply --all-approved --capability billing.propose_late_fee_waiver --max 20\n\nWith --all-approved, every approved proposal (oldest first) is applied on its own: a conflict or failure of one does not stop the others. Exit 0 when all applied (or there was nothing to do), 4 when some conflicted, 1 when some failed or were refused."
    )]
    Apply {
        /// Proposal id or `latest`.
        #[arg(
            required_unless_present = "all_approved",
            conflicts_with = "all_approved"
        )]
        id: Option<String>,
        /// Apply every approved proposal, oldest first, each on its own.
        #[arg(long)]
        all_approved: bool,
        /// With --all-approved: only proposals of this capability.
        #[arg(long, requires = "all_approved")]
        capability: Option<String>,
        /// With --all-approved: only proposals of this tenant.
        #[arg(long, requires = "all_approved")]
        tenant: Option<String>,
        /// With --all-approved: apply at most N proposals.
        #[arg(long, requires = "all_approved", value_parser = clap::value_parser!(u32).range(1..))]
        max: Option<u32>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Propose the reviewed compensation of an applied change (a new proposal that needs its own approval).
    #[command(
        after_help = "Examples:\n  airlock revert wrp_3f9c1a7e5b2d4c8019e6 --reason \"waived on the wrong invoice\"\n  airlock proposals approve latest && airlock apply latest\n\nOnly for changes of capabilities with `reversibility: {\"mode\": \"reviewed_inverse\"}`: the executor captured the change's inverse when it applied it. The revert writes nothing: approve and apply it like any proposal (its capability's role and quorum). Exit 0 when recorded, 3 when refused (not reversible, hard DELETE, handler, role), 1 otherwise (not applied, already reverted, bad reason)."
    )]
    Revert {
        /// The applied proposal's id, or `latest`.
        id: String,
        /// Why (shown to the approvers and kept in the ledger).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// A local web review UI: pending proposals, diffs and freshness, approve/reject/apply, replay, ledger status.
    #[command(
        after_help = "Examples:\n  airlock review\n  airlock review --listen 127.0.0.1:8767 --no-open --config airlock.json\n  ssh -L 8767:127.0.0.1:8767 ops-host airlock review --no-open   # then open the printed link locally\n\nLoopback only. It prints a one-time sign-in link; the browser acts as you on the operator socket, so the executor's approver list and each capability's required_role still decide."
    )]
    Review {
        /// Loopback address and port to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8767")]
        listen: std::net::SocketAddr,
        /// Do not try to open a browser; just print the sign-in link.
        #[arg(long)]
        no_open: bool,
        /// The ledger file whose hash chain the Ledger page verifies (default: the config's).
        #[arg(long)]
        store: Option<PathBuf>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Tell a proposal's whole story, or export it.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Inspect what a read recorded: the rows the model saw, and the proposals built on them.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Scoped Explore: the query audit (normalized plans and outcomes, never row values).
    #[command(subcommand)]
    Explore(ExploreCommand),
    /// Call one tool through a real proposer, as the model would.
    #[command(subcommand)]
    Smoke(SmokeCommand),
    /// Receipt-table DDL and least-privilege grants for sql_update.
    #[command(subcommand)]
    Writeback(WritebackCommand),
    /// Write a starter application handler.
    #[command(subcommand)]
    Handler(HandlerCommand),
    /// Built-in proposal templates (late-fee waiver, account credit, refund review, ticket resolution, trial extension); add one to a config.
    #[command(subcommand)]
    Recipes(RecipesCommand),
    /// Describe a database from its catalog: tables, keys, tenant and version candidates, sensitive columns, the role's posture.
    #[command(
        after_help = "Examples:\n  airlock inspect --from-env APP_READ_URL\n  airlock inspect --from-env APP_READ_URL --schema billing --json\n\nMetadata only: it reads the catalog, never a business row. VAR holds the database URL (the read credential); it is never printed."
    )]
    Inspect {
        /// The environment variable holding the database URL (postgres://, mysql://, mariadb:// or sqlite:).
        #[arg(long, value_name = "VAR")]
        from_env: String,
        /// The Postgres schema (default: the role's current schema, usually public), MySQL/MariaDB database (default: the URL's) or SQLite database (main).
        #[arg(long)]
        schema: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Draft a reviewed config from a database's catalog: a read tool per table, sensitive columns hidden, recipes as proposals, a schema lock.
    #[command(
        after_help = "Examples:\n  airlock init --from-env APP_READ_URL --output airlock.json\n  airlock init --from-env APP_READ_URL --output airlock.json --yes\n  airlock init --from-env APP_READ_URL --output airlock.json --tables invoices,tickets --tenant-column org_id --yes\n\nMetadata only: it reads the catalog, never a business row. The file names environment variables, never a URL or secret. In a terminal it asks which tables, which tenant column, which columns the model sees and which proposals to serve; --yes takes the defaults (sensitive columns hidden, ambiguous proposals disabled for review)."
    )]
    Init(InitCli),
    /// The laptop path: draft a config (or use ./airlock.json), start the executor in the background, print the MCP client snippet.
    #[command(
        after_help = "Examples:\n  airlock start --from-env DATABASE_URL\n  airlock start --from-env DATABASE_URL --yes --client cursor\n  airlock start --stop\n\nEverything lives beside the config in .airlock/: the ledger, the sockets, the executor's log and pid file. An existing config is used as it is (move it away to draft again). The executor gets this shell's environment: set the write URL variable the config names before proposals are applied."
    )]
    Start(StartCli),
    /// Diagnose a setup: config, variables, credential split, databases, sockets, executor, handlers.
    #[command(
        after_help = "Examples:\n  airlock doctor --config /etc/airlock/config.json\n  airlock doctor --json                   # ./airlock.json"
    )]
    Doctor {
        /// The reviewed config file (default: ./airlock.json when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The whole loop in one command: embedded SQLite, two processes, no setup.
    #[command(after_help = "Examples:\n  airlock demo\n  airlock demo --yes --keep ./airlock-demo")]
    Demo {
        /// Approve without asking (a non-interactive stdin also approves).
        #[arg(long)]
        yes: bool,
        /// Keep the demo's files (database, config, ledger) in this directory.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Static risk review of an MCP server's tool list (exit 0 whatever the risk).
    #[command(
        after_help = "Examples:\n  airlock audit --example dangerous-db-mcp\n  airlock audit --stdio \"npx -y @modelcontextprotocol/server-postgres postgres://localhost/db\" --format markdown"
    )]
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
    #[command(
        after_help = "Examples:\n  airlock mcp config claude-desktop --config airlock.json --absolute-paths\n  airlock mcp config cursor"
    )]
    Config {
        #[arg(value_parser = ["claude-desktop", "claude-desktop-remote", "cursor", "vscode", "generic", "openai-agents"])]
        client: String,
        /// The reviewed config file (default: ./airlock.json when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
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
enum RecipesCommand {
    /// List the built-in recipes.
    #[command(after_help = "Examples:\n  airlock recipes list\n  airlock recipes list --json")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one recipe: its fields, arguments, bounds, transitions and the capability it writes.
    #[command(
        after_help = "Examples:\n  airlock recipes show billing.late_fee_waiver\n  airlock recipes show refund_review --json"
    )]
    Show {
        /// The recipe's name (`billing.late_fee_waiver`) or the part after the dot.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a recipe's proposal capability to a config, after checking the table's columns (read with the source's read URL; catalog only).
    #[command(
        after_help = "Examples:\n  airlock recipes apply billing.late_fee_waiver --table invoices --config airlock.json\n  airlock recipes apply credits.account_credit --table customers --map credit=promo_credit_cents --map reason=note --dry-run"
    )]
    Apply {
        /// The recipe's name (`billing.late_fee_waiver`) or the part after the dot.
        name: String,
        /// The table (or view) the capability changes.
        #[arg(long)]
        table: String,
        /// Put a recipe field on a column: FIELD=COLUMN (repeatable; `recipes show` lists the fields).
        #[arg(long = "map", value_name = "FIELD=COLUMN", value_parser = recipes_cmd::parse_map)]
        map: Vec<(String, String)>,
        /// The reviewed config file to add it to (default: ./airlock.json when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The config's source holding the table (default: its only source).
        #[arg(long)]
        source: Option<String>,
        /// Schema (Postgres), database (MySQL) or attached database (SQLite); default: what the config's capabilities on the source use, else public / the URL's database / main.
        #[arg(long)]
        schema: Option<String>,
        /// The single-column key rows are looked up by (default: the config's, else `id`).
        #[arg(long)]
        primary_key: Option<String>,
        /// The tenant column (default: the one the config's capabilities on the source use, else the table's only tenant-shaped column).
        #[arg(long, conflicts_with = "single_tenant")]
        tenant_column: Option<String>,
        /// The table has no tenant column: a single-tenant development target (validation warns).
        #[arg(long)]
        single_tenant: bool,
        /// The capability's name (default: the recipe's, e.g. billing.propose_late_fee_waiver).
        #[arg(long = "name", value_name = "CAPABILITY")]
        capability: Option<String>,
        /// Check and print the capability; do not write the config.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum HandlerCommand {
    /// Write a starter handler (update, insert, delete and bounded sets; re-checks tenant/version, idempotent, terminal receipts).
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
    #[command(after_help = "Examples:\n  airlock replay show latest --details")]
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
    #[command(
        after_help = "Examples:\n  airlock replay export latest --output replay.json\n  airlock replay export wrp_3f9c1a7e5b2d4c8019e6 --format markdown --output -"
    )]
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
enum EvidenceCommand {
    /// One evidence record: capability, tenant, principal, when, the columns and rows the model read, and the proposals that cite it.
    Show {
        /// An `ev_…` id (from a tool result, `proposals show` or `events tail`).
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ExploreCommand {
    /// The Scoped Explore queries the executor audited, newest first: when, tenant, principal, resource, outcome (released, suppressed, refused, failed), why, cells released, groups withheld, and the normalized plan.
    #[command(
        after_help = "Examples:\n  airlock explore audit\n  airlock explore audit --tenant acme --limit 50\n  airlock explore audit --json | jq '.entries[] | select(.outcome == \"refused\")'"
    )]
    Audit {
        /// How many entries, newest first (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Only this tenant's queries.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum SmokeCommand {
    /// Spawn airlock-proposer (next to this airlock) over stdio with the config and, from your environment, only its read URLs and trusted context; call TOOL; print the result envelope the model sees (exit 0 when it is ok, 1 when not).
    Call {
        /// The tool: its dotted name (`billing.inspect_invoice`) or its client-safe alias (`billing__inspect_invoice`).
        tool: String,
        /// The tool's arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// The proposer's tool names: canonical, openai or both (default: the proposer's own default).
        #[arg(long, value_parser = ["canonical", "openai", "both"])]
        alias_mode: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum WritebackCommand {
    /// Print the idempotency-receipt table's DDL.
    #[command(
        after_help = "Examples:\n  airlock writeback migration --engine postgres --schema public | psql \"$ADMIN_URL\""
    )]
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
    #[command(
        after_help = "Examples:\n  airlock writeback grants --engine postgres --writer-role airlock_writer --config airlock.json | psql \"$ADMIN_URL\""
    )]
    Grants {
        #[arg(long)]
        engine: String,
        #[arg(long)]
        writer_role: String,
        /// The reviewed config (the grants follow its proposal capabilities;
        /// default: ./airlock.json when it exists).
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
    #[command(
        after_help = "Examples:\n  airlock proposals list --status pending_approval\n  airlock proposals list --socket-dir /run/airlock --json"
    )]
    List {
        /// Only this status: pending_approval, approved, rejected, expired, applied, conflict, failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show one proposal as a readable diff (ID or `latest`), with its row re-read now: still current, or changed since the proposal.
    #[command(
        after_help = "Examples:\n  airlock proposals show latest\n  airlock proposals show wrp_3f9c1a7e5b2d4c8019e6 --json"
    )]
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Re-read a proposal's row and its reviewed dependency rows now and check them (exit 0 still current, 4 changed or gone, 1 could not re-read).
    #[command(
        name = "check-freshness",
        after_help = "Exit codes:\n  0  current: every guard holds and every dependency row is at its recorded version\n  4  changed or gone: approving now makes the proposal a conflict\n  1  a row could not be re-read (no write URL, source down); an approval would be refused\n\nExamples:\n  airlock proposals check-freshness latest\n  airlock proposals check-freshness wrp_3f9c1a7e5b2d4c8019e6 --json"
    )]
    CheckFreshness {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Approve a pending proposal (asks on a terminal unless --yes).
    #[command(
        after_help = "Examples:\n  airlock proposals approve wrp_3f9c1a7e5b2d4c8019e6 --note \"checked with finance\"\n  airlock proposals approve latest --yes --hash sha256:3f9c1a7e5b2d --apply"
    )]
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
    #[command(
        after_help = "Examples:\n  airlock proposals reject latest --reason \"wrong invoice\""
    )]
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
    #[command(after_help = "Examples:\n  airlock events tail --follow")]
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
enum NotificationsCommand {
    /// Each sink: delivered, pending and given-up notifications, the last error.
    #[command(
        after_help = "Examples:\n  airlock notifications status\n  airlock notifications status --json"
    )]
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Send a signed test notification (it carries no data) now; exit 1 unless every sink took it.
    #[command(
        after_help = "Examples:\n  airlock notifications test\n  airlock notifications test --sink operations --json"
    )]
    Test {
        /// Only this sink (default: every active sink).
        #[arg(long)]
        sink: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// Which ledger file: `--store`, or the one `--config` names.
#[derive(Debug, Args)]
struct LedgerFileArgs {
    /// The ledger file.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Or: the config whose ledger to use (default: ./airlock.json when it
    /// exists).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Recompute the hash chain and report the first broken link (exit 1 if broken).
    #[command(
        after_help = "Examples:\n  sudo -u airlock airlock ledger verify --store /var/lib/airlock/ledger.db\n  airlock ledger verify --config airlock.json --json"
    )]
    Verify {
        #[command(flatten)]
        ledger: LedgerFileArgs,
        /// Also verify this prune archive and that the ledger records the
        /// prune that moved it out.
        #[arg(long)]
        archive: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Proposals per state, file size, the oldest pending proposal, events per day (read-only).
    #[command(
        after_help = "Examples:\n  airlock ledger stats --store /var/lib/airlock/ledger.db\n  airlock ledger stats --config airlock.json --json"
    )]
    Stats {
        #[command(flatten)]
        ledger: LedgerFileArgs,
        #[arg(long)]
        json: bool,
    },
    /// Copy the ledger consistently while the executor runs; the copy (mode 0600, never over an existing file) is verified before it is named.
    #[command(
        after_help = "Examples:\n  sudo -u airlock airlock ledger backup --store /var/lib/airlock/ledger.db --to /var/backups/airlock/ledger-2026-03-01.db\n  airlock ledger backup --config airlock.json --to ledger.bak --json"
    )]
    Backup {
        /// The backup file to create (must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        ledger: LedgerFileArgs,
        #[arg(long)]
        json: bool,
    },
    /// Create or upgrade the shared PostgreSQL ledger's schema (storage.shared_postgres), as the schema's owner; --grant gives an executor role exactly what it needs.
    #[command(
        after_help = "Examples:\n  AIRLOCK_LEDGER_DATABASE_URL=postgres://ledger_owner@db/airlock airlock ledger migrate --config airlock.json --grant airlock_executor\n  airlock ledger migrate --config airlock.json --json\n\nExecutors never change the schema: each refuses to start on a ledger schema of another version. Run this once per upgrade, before the executors restart."
    )]
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
        /// The role executors connect as: granted read and append on the records, nothing more.
        #[arg(long, value_name = "ROLE")]
        grant: Option<String>,
    },
    /// Move finished proposals whose last event is before DATE into a new archive file (done by the executor; exit 3 if you may not).
    #[command(
        after_help = "Examples:\n  airlock ledger prune --before 2026-01-01 --archive /var/lib/airlock/archive-2025.db\n  airlock ledger prune --before 2026-01-01T00:00:00Z --archive archive.db --json\n\nOnly the executor's own OS user, or an approver whose roles list `ledger_admin`, may prune. Pending and approved proposals never move."
    )]
    Prune {
        /// A day (2026-01-01, midnight UTC) or an RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        before: String,
        /// The archive file the executor creates (must not exist).
        #[arg(long, value_name = "FILE")]
        archive: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config and explain every problem (exit 0 valid, 1 invalid, 2 usage).
    #[command(
        after_help = "Examples:\n  airlock config validate --config /etc/airlock/config.json\n  airlock config validate --json          # ./airlock.json"
    )]
    Validate(ConfigArgs),
    /// Print the JSON Schema (draft 2020-12) of the reviewed config, for editors: point a config's "$schema" at it.
    #[command(
        after_help = "Examples:\n  airlock config schema --output airlock.config.schema.json\n  airlock config schema > airlock.config.schema.json\n\nThen write \"$schema\": \"./airlock.config.schema.json\" at the top of the config. `airlock config validate` still checks what a schema cannot (references between entries, naming rules, inline secrets)."
    )]
    Schema {
        /// Write the schema to this file (replacing it) instead of printing it.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Record each capability's live table (columns and types, read from the catalog with the read URL) as the config's schema lock (`airlock.schema_lock`).
    #[command(
        after_help = "A capability whose table later loses a locked column, changes a locked column's type or gains a tenant-shaped column is disabled by the proposer and the executor at start; `airlock doctor` reports it. Review the schema change, lock again, review the config diff and restart.\n\nExamples:\n  APP_READ_URL=postgres://reader@db/app airlock config lock --config airlock.json\n  airlock config lock --config airlock.json --capability billing.waive_late_fee --json"
    )]
    Lock(ConfigLockArgs),
}

/// How `init` and `start` draft a config.
#[derive(Debug, Args)]
pub struct DraftFlags {
    /// The Postgres schema, MySQL/MariaDB database or SQLite database to draft from (default: the URL's).
    #[arg(long)]
    schema: Option<String>,
    /// Only these tables (comma-separated); each must have the tenant column (or pass --single-tenant).
    #[arg(long, value_delimiter = ',', value_name = "T,…")]
    tables: Vec<String>,
    /// The column that keys every row to a tenant (default: the best candidate inspect finds).
    #[arg(long, value_name = "COLUMN")]
    tenant_column: Option<String>,
    /// The database serves one tenant: no tenant key (capabilities are acknowledged single-tenant).
    #[arg(long)]
    single_tenant: bool,
    /// `review` (reads and proposals) or `read_only` (reads only).
    #[arg(long, default_value = "review", value_parser = ["review", "read_only"])]
    mode: String,
    /// The variable the executor reads the writer's URL from (default: VAR with READ → WRITE, or NAME_WRITE_URL).
    #[arg(long, value_name = "VAR")]
    write_from_env: Option<String>,
    /// The trusted-context variable naming the tenant.
    #[arg(long, default_value = "AIRLOCK_TENANT_ID", value_name = "VAR")]
    tenant_env: String,
    /// The trusted-context variable naming the principal.
    #[arg(long, default_value = "AIRLOCK_PRINCIPAL", value_name = "VAR")]
    principal_env: String,
    /// The source's name in the config.
    #[arg(long, default_value = "app")]
    source: String,
    /// The first part of each tool's name (default: the source's name).
    #[arg(long)]
    namespace: Option<String>,
    /// Take the defaults without asking (scripts, CI).
    #[arg(long)]
    yes: bool,
    #[arg(long)]
    json: bool,
}

impl DraftFlags {
    fn into_init(self, from_env: String, output: PathBuf, force: bool) -> init_cmd::InitArgs {
        init_cmd::InitArgs {
            from_env,
            output,
            schema: self.schema,
            tables: self.tables,
            tenant_column: self.tenant_column,
            single_tenant: self.single_tenant,
            read_only: self.mode == "read_only",
            write_env: self.write_from_env,
            tenant_env: self.tenant_env,
            principal_env: self.principal_env,
            source: self.source,
            namespace: self.namespace,
            yes: self.yes,
            force,
            json: self.json,
        }
    }
}

#[derive(Debug, Args)]
pub struct InitCli {
    /// The environment variable holding the read-only database URL (postgres://, mysql://, mariadb:// or sqlite:).
    #[arg(long, value_name = "VAR")]
    from_env: String,
    #[command(flatten)]
    draft: DraftFlags,
    /// The config file to write (refused if it exists, unless --force).
    #[arg(long)]
    output: PathBuf,
    /// Replace an existing --output file.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct StartCli {
    /// Stop the executor `airlock start` launched for this config.
    #[arg(long, conflicts_with_all = ["from_env", "yes"])]
    stop: bool,
    /// The environment variable holding the read-only database URL.
    #[arg(long, value_name = "VAR", required_unless_present = "stop")]
    from_env: Option<String>,
    #[command(flatten)]
    draft: DraftFlags,
    /// The config to use, or to draft when it does not exist.
    #[arg(long, default_value = "airlock.json")]
    config: PathBuf,
    /// The MCP client to print the snippet for.
    #[arg(long, default_value = "claude-desktop", value_parser = ["claude-desktop", "cursor", "vscode", "generic", "openai-agents"])]
    client: String,
}

#[derive(Debug, Args)]
pub struct ConfigLockArgs {
    /// The reviewed config file to update (default: ./airlock.json when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Lock only this capability (repeatable; default: every capability).
    #[arg(long = "capability", value_name = "NAME")]
    pub capabilities: Vec<String>,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
enum ToolsCommand {
    /// List the MCP tools the proposer will offer, with their argument schemas.
    #[command(
        after_help = "Examples:\n  airlock tools preview --config airlock.json\n  airlock tools preview --alias-mode both --json"
    )]
    Preview(ToolsPreviewArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The reviewed config file (default: ./airlock.json when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ToolsPreviewArgs {
    /// The reviewed config file (default: ./airlock.json when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tool names: openai (the proposer's default: client-safe `billing__inspect_invoice`), canonical (`billing.inspect_invoice`) or both.
    #[arg(long, default_value = "openai", value_parser = ["canonical", "openai", "both"])]
    pub alias_mode: String,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// Whether the arguments ask for JSON output (`--json` before any `--`).
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|a| a != "--").any(|a| a == "--json")
}

/// A clap error as one plain-text message: the error line and its tips,
/// without the usage block (`--help` shows that).
fn usage_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = text.split("\n\nUsage:").next().unwrap_or(&text);
    text.trim().trim_start_matches("error: ").to_owned()
}

/// Run the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                // --help, --version: not a failure.
                let _ = e.print();
                return Exit::Ok.into();
            }
            // A usage error of a `--json` command is a JSON failure like
            // any other: once, on stdout, nothing on stderr.
            if wants_json(std::env::args_os().skip(1)) {
                return output::fail(true, "usage", &usage_message(&e), Exit::Usage).into();
            }
            let _ = e.print();
            return Exit::Usage.into();
        }
    };
    let exit = match cli.command {
        Command::Config(ConfigCommand::Validate(args)) => config_cmd::validate(&args),
        Command::Config(ConfigCommand::Schema { output }) => config_cmd::schema(output.as_deref()),
        Command::Config(ConfigCommand::Lock(args)) => {
            schema_lock_cmd::lock(&schema_lock_cmd::LockArgs {
                config: args.config.as_deref(),
                capabilities: &args.capabilities,
                json: args.json,
            })
        }
        Command::Tools(ToolsCommand::Preview(args)) => tools_cmd::preview(&args),
        Command::Proposals(ProposalsCommand::List { status, json, conn }) => {
            operator::list(&conn, status.as_deref(), json)
        }
        Command::Proposals(ProposalsCommand::Show { id, json, conn }) => {
            operator::show(&conn, &id, json)
        }
        Command::Proposals(ProposalsCommand::CheckFreshness { id, json, conn }) => {
            operator::freshness(&conn, &id, json)
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
            ledger,
            archive,
            json,
        }) => ledger_cmd::verify(
            ledger.store.as_deref(),
            ledger.config.as_deref(),
            archive.as_deref(),
            json,
        ),
        Command::Ledger(LedgerCommand::Migrate { config, grant }) => {
            ledger_cmd::migrate(config.config.as_deref(), grant.as_deref(), config.json)
        }
        Command::Ledger(LedgerCommand::Stats { ledger, json }) => {
            ledger_cmd::stats(ledger.store.as_deref(), ledger.config.as_deref(), json)
        }
        Command::Ledger(LedgerCommand::Backup { to, ledger, json }) => {
            ledger_cmd::backup(&to, ledger.store.as_deref(), ledger.config.as_deref(), json)
        }
        Command::Ledger(LedgerCommand::Prune {
            before,
            archive,
            json,
            conn,
        }) => ledger_cmd::prune(&conn, &before, &archive, json),
        Command::Notifications(NotificationsCommand::Status { json, conn }) => {
            notifications_cmd::status(&conn, json)
        }
        Command::Notifications(NotificationsCommand::Test { sink, json, conn }) => {
            notifications_cmd::test(&conn, sink, json)
        }
        Command::Revert {
            id,
            reason,
            json,
            conn,
        } => operator::revert(&conn, &id, reason, json),
        Command::Apply {
            id: Some(id),
            json,
            conn,
            ..
        } => writeback_cmd::apply(&conn, &id, json),
        Command::Apply {
            id: None,
            capability,
            tenant,
            max,
            json,
            conn,
            ..
        } => writeback_cmd::apply_all_approved(
            &conn,
            &writeback_cmd::ApprovedFilter {
                capability,
                tenant,
                max,
            },
            json,
        ),
        Command::Review {
            listen,
            no_open,
            store,
            conn,
        } => review_ui::run(review_ui::ReviewOptions {
            listen,
            no_open,
            store,
            conn,
        }),
        Command::Evidence(EvidenceCommand::Show { id, json, conn }) => {
            evidence_cmd::show(&conn, &id, json)
        }
        Command::Explore(ExploreCommand::Audit {
            limit,
            tenant,
            json,
            conn,
        }) => explore_cmd::audit(&conn, limit, tenant, json),
        Command::Smoke(SmokeCommand::Call {
            tool,
            args,
            alias_mode,
            conn,
        }) => smoke::call(&conn, &tool, &args, alias_mode.as_deref()),
        Command::Demo { yes, keep } => demo::run(yes, keep.as_deref()),
        Command::Init(a) => init_cmd::run(&a.draft.into_init(a.from_env, a.output, a.force)),
        Command::Start(a) => start_cmd::run(&start_cmd::StartArgs {
            init: a
                .draft
                .into_init(a.from_env.unwrap_or_default(), a.config, false),
            client: a.client,
            stop: a.stop,
        }),
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
        Command::Doctor { config, json } => doctor::run(config.as_deref(), json),
        Command::Inspect {
            from_env,
            schema,
            json,
        } => inspect::run(&from_env, schema.as_deref(), json),
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
        Command::Recipes(RecipesCommand::List { json }) => recipes_cmd::list(json),
        Command::Recipes(RecipesCommand::Show { name, json }) => recipes_cmd::show(&name, json),
        Command::Recipes(RecipesCommand::Apply {
            name,
            table,
            map,
            config,
            source,
            schema,
            primary_key,
            tenant_column,
            single_tenant,
            capability,
            dry_run,
            json,
        }) => recipes_cmd::apply(&recipes_cmd::ApplyArgs {
            recipe: name,
            table,
            map,
            config,
            source,
            schema,
            primary_key,
            tenant_column,
            single_tenant,
            name: capability,
            dry_run,
            json,
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn json_is_wanted_only_when_given_before_a_double_dash() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(wants_json(
            args(&["proposals", "list", "--json"]).into_iter()
        ));
        assert!(!wants_json(args(&["proposals", "list"]).into_iter()));
        assert!(!wants_json(args(&["audit", "--", "--json"]).into_iter()));
        assert!(!wants_json(
            args(&["config", "validate", "--jsonx"]).into_iter()
        ));
    }

    #[test]
    fn a_usage_message_is_the_error_without_the_usage_block() {
        let e = Cli::try_parse_from(["airlock", "proposals", "list", "--json", "--bogus"])
            .err()
            .map(|e| usage_message(&e))
            .unwrap_or_default();
        assert!(e.starts_with("unexpected argument '--bogus' found"), "{e}");
        assert!(!e.contains("Usage:"), "{e}");
        assert!(!e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn the_main_commands_show_examples_in_their_help() {
        let mut cli = Cli::command();
        cli.build();
        for path in [
            &[][..],
            &["config", "validate"],
            &["tools", "preview"],
            &["proposals", "list"],
            &["proposals", "approve"],
            &["apply"],
            &["replay", "export"],
            &["doctor"],
            &["inspect"],
            &["writeback", "grants"],
            &["mcp", "config"],
            &["recipes", "list"],
            &["recipes", "show"],
            &["recipes", "apply"],
        ] {
            let mut cmd = &cli;
            for name in path {
                cmd = cmd
                    .find_subcommand(name)
                    .unwrap_or_else(|| unreachable!("{name}"));
            }
            let help = cmd
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            let invocation = format!("airlock {}", path.join(" "));
            assert!(
                help.starts_with("Examples:\n") && help.contains(invocation.trim_end()),
                "{path:?}: {help}"
            );
        }
    }
}
