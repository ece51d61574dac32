//! The `mailrules` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    mailrules::cli::main()
}
