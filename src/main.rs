//! `ordergate-bench`: see `ordergate-bench --help`, and `cli.rs` for what
//! each command does and its exit codes.

fn main() -> std::process::ExitCode {
    ordergate_bench::cli::main()
}
