//! The operator CLI. See `airlock --help`.

fn main() -> std::process::ExitCode {
    airlock_executor::cli::main()
}
