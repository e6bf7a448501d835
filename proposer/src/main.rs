//! The proposer. See `airlock-proposer --help`.

fn main() -> std::process::ExitCode {
    airlock_proposer::cli::main()
}
