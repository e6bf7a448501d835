//! The executor daemon. See `airlock-executor --help`.

fn main() -> std::process::ExitCode {
    airlock_executor::daemon_cli::main()
}
