//! `ordergate`: see `ordergate --help`, and `cli.rs` for what each command
//! does and its exit codes.

fn main() -> std::process::ExitCode {
    ordergate::cli::main()
}
