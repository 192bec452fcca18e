//! The `lesioneval` binary: parse, call the library, print. See `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
