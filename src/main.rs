//! The `mailrules` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes
    // away (`mailrules explain --all | head`); Rust would otherwise ignore
    // SIGPIPE and turn the failed write into a panic.
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal at start-up, before
    // any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    mailrules::cli::main()
}
