//! Command line: clap types, one file per subcommand. The only module that
//! prints. Exit codes: 0 ok, 1 a negative answer (invalid config, unknown
//! name, rejected mail), 2 usage or I/O error.

pub(crate) mod alert;
mod args;
mod batch;
mod check;
pub(crate) mod delivery;
pub(crate) mod explain;
mod explain_all;
mod outbox;
mod plan;
mod preview;
pub(crate) mod report;
pub(crate) mod request;
mod send;
mod serve;
mod test;
mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, LoadError, LoadOptions, Loaded, TransportOverride};
use crate::load;
use crate::render::{self, FileAttachment, MessageInput, RenderError};
use crate::resolve::{Request, ResolveError};
use crate::transport::SendError;

pub use args::{
    ContextArgs, ExplainArgs, ExplainFormat, Format, LogFormat, MessageArgs, PlanFormat, SendArgs,
    ServeArgs,
};

/// E-mail configuration as code: validate, explain, preview and send.
#[derive(Debug, Parser)]
#[command(name = "mailrules", version, about)]
pub struct Cli {
    /// Config file, or directory read recursively (*.yaml, *.yml).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "MAILRULES_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,
    /// Accept literal passwords in the YAML (with a warning). For local
    /// experiments only: never commit a password.
    #[arg(long, global = true)]
    pub allow_plaintext_secrets: bool,
    /// The outbox file (SQLite) of `serve`, `send --queue` and `outbox`.
    #[arg(long, global = true, env = "MAILRULES_OUTBOX", value_name = "FILE")]
    pub outbox: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the JSON Schema of a config file.
    Schema,
    /// Check the configuration: YAML, schema and references. Exit 1 when invalid.
    Validate {
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Treat warnings as errors (exit 1).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Show which template and profile a message uses, and why.
    Explain(ExplainArgs),
    /// Show which contexts a configuration change affects (like terraform
    /// plan). Exit 0 no change, 1 changes, 2 error.
    Plan {
        /// The configuration before the change: a path, or a git revision
        /// (`origin/main`, `HEAD~1`) of the repository holding --config.
        #[arg(long, value_name = "PATH|REV")]
        base: String,
        #[arg(long, value_enum, default_value = "human")]
        format: PlanFormat,
        /// Exit 0 also when contexts change (report only).
        #[arg(long)]
        exit_zero: bool,
    },
    /// Try every profile's transport without sending: connect, TLS, login.
    Check {
        /// Only this profile.
        #[arg(long, value_name = "ID")]
        profile: Option<String>,
        /// A file with one transport block that replaces every profile's.
        #[arg(long, env = "MAILRULES_TRANSPORT_OVERRIDE", value_name = "FILE")]
        transport_override: Option<PathBuf>,
        /// Also try the envelope over SMTP: MAIL FROM the profile's sender,
        /// RCPT TO this address, then RSET (nothing is sent). Shows a
        /// refused sender or recipient without sending mail.
        #[arg(long, value_name = "ADDR", value_parser = args::parse_mailbox)]
        rcpt: Option<lettre::message::Mailbox>,
    },
    /// Run config unit tests: expected resolutions and stored previews.
    Test {
        /// Test files, or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write the stored previews (.eml) anew instead of comparing.
        #[arg(long)]
        update_snapshots: bool,
    },
    /// Print the exact message that `send` would transmit.
    Preview {
        #[command(flatten)]
        context: ContextArgs,
        #[command(flatten)]
        message: MessageArgs,
        /// Also write the HTML part to this file, to look at in a browser.
        #[arg(long, value_name = "FILE")]
        html_out: Option<PathBuf>,
    },
    /// Send the message through the resolved transport, or a batch of them.
    Send(SendArgs),
    /// Send one alert of the `alerts` section. When it fails and
    /// `alerts.admin_email` is set, the administrator is mailed the error.
    /// Exit 1 when the alert was not sent.
    Alert {
        /// The alert's name under `alerts.definitions`.
        name: String,
        /// Template variables (YAML or JSON).
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// A file with one transport block that replaces every profile's.
        #[arg(long, env = "MAILRULES_TRANSPORT_OVERRIDE", value_name = "FILE")]
        transport_override: Option<PathBuf>,
    },
    /// Run as a daemon: an HTTP API that serves the configuration and
    /// reloads it when the files change, never swapping in an invalid one.
    Serve(ServeArgs),
    /// Look into and manage the outbox (--outbox FILE): list, show, retry,
    /// purge; deliver what is queued.
    Outbox {
        #[command(subcommand)]
        command: outbox::OutboxCommand,
    },
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Serve(crate::serve::ServeError),
    #[error(transparent)]
    Outbox(#[from] crate::outbox::StoreError),
    #[error("cannot read `{}`: {error}", path.display())]
    Input {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("cannot write `{}`: {error}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// A failure of a command whose exit code 1 means something else (for
    /// `plan`: "changes"): reported as the inner error, exit 2.
    #[error(transparent)]
    Failed(Box<CliError>),
    /// A file named on the command line (data, transport override) is invalid.
    #[error("{what} `{}` is invalid", path.display())]
    InvalidFile {
        what: &'static str,
        path: PathBuf,
        diagnostics: Vec<config::Diagnostic>,
    },
}

/// Errors of a file named on the command line are about that file, not
/// about the configuration.
pub(crate) fn file_error(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(LoadError) -> CliError {
    move |error| match error {
        LoadError::Invalid { diagnostics } => CliError::InvalidFile {
            what,
            path: path.to_path_buf(),
            diagnostics,
        },
        io => CliError::Load(io),
    }
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Load(LoadError::Io { .. })
            | CliError::Usage(_)
            | CliError::Serve(_)
            | CliError::Outbox(_)
            | CliError::Input { .. }
            | CliError::Output { .. }
            | CliError::Failed(_) => 2,
            _ => 1,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            report::error(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs one command; `Ok` carries the exit code of a completed command.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    if let Command::Schema = cli.command {
        print!("{}", config::schema::SCHEMA);
        return Ok(0);
    }
    // Only `outbox deliver` needs the configuration.
    if let Command::Outbox { command } = &cli.command
        && !matches!(command, outbox::OutboxCommand::Deliver { .. })
    {
        return outbox::run(cli.outbox.as_deref(), command);
    }
    let source = ConfigSource {
        path: cli.config.ok_or_else(|| {
            CliError::Usage(
                "no configuration given: pass --config PATH or set MAILRULES_CONFIG".into(),
            )
        })?,
        options: LoadOptions {
            allow_plaintext_secrets: cli.allow_plaintext_secrets,
        },
    };
    if matches!(
        cli.command,
        Command::Send(_)
            | Command::Check { .. }
            | Command::Serve(_)
            | Command::Alert { .. }
            | Command::Outbox { .. }
    ) {
        ignore_broken_connections();
    }
    match cli.command {
        Command::Schema => unreachable!("handled above"),
        Command::Validate {
            format,
            deny_warnings,
        } => validate::run(&source, format, deny_warnings),
        Command::Explain(args) => match args.context()? {
            None if args.alert.is_some() => explain::run_alert(
                &source,
                args.alert.as_deref().unwrap_or_default(),
                args.format,
                &args.expectations(),
            ),
            None => explain::run_all(&source, args.format),
            Some(context) => explain::run(&source, &context, args.format, &args.expectations()),
        },
        Command::Plan {
            base,
            format,
            exit_zero,
        } => plan::run(&source, &base, format, exit_zero),
        Command::Check {
            profile,
            transport_override,
            rcpt,
        } => check::run(
            &source,
            profile.as_deref(),
            transport_override.as_deref(),
            rcpt.as_ref(),
        ),
        Command::Test {
            paths,
            update_snapshots,
        } => test::run(&source, &paths, update_snapshots),
        Command::Preview {
            context,
            message,
            html_out,
        } => preview::run(&source, &context, &message, html_out.as_deref()),
        Command::Send(args) => match args.single()? {
            Some((context, message)) if args.queue => outbox::queue(
                &source,
                cli.outbox.as_deref(),
                &context,
                message,
                args.idempotency_key.as_deref(),
            ),
            Some((context, message)) => send::run(&source, &context, message),
            None => batch::run(&source, &args),
        },
        Command::Serve(args) => serve::run(source, &args, cli.outbox),
        Command::Outbox { command } => match command {
            outbox::OutboxCommand::Deliver {
                delivery,
                transport_override,
            } => outbox::deliver(
                &source,
                cli.outbox.as_deref(),
                &delivery,
                transport_override.as_deref(),
            ),
            other => outbox::run(cli.outbox.as_deref(), &other),
        },
        Command::Alert {
            name,
            data,
            transport_override,
        } => alert::run(
            &source,
            &name,
            data.as_deref(),
            transport_override.as_deref(),
        ),
    }
}

/// main.rs restores SIGPIPE's default (quiet end of `explain --all | head`);
/// a command that talks to servers must instead see a write to a closed
/// TLS connection as an error to classify, not be killed by it.
fn ignore_broken_connections() {
    #[cfg(unix)]
    // SAFETY: changing one signal's action before any other thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Where the configuration is and how strictly to load it.
pub struct ConfigSource {
    pub path: PathBuf,
    pub options: LoadOptions,
}

/// The loaded config and the optional transport override of a command.
pub struct Prepared {
    pub loaded: Loaded,
    pub transport_override: Option<TransportOverride>,
}

impl Prepared {
    pub fn load(
        source: &ConfigSource,
        transport_override: Option<&Path>,
    ) -> Result<Self, CliError> {
        let loaded = load::load(&source.path, source.options)?;
        // Other warnings are `validate`'s business; a plaintext password is
        // worth a word on every run.
        for warning in loaded.warnings.iter().filter(|w| w.secret_value) {
            eprint!("{}", report::diagnostic(warning));
        }
        let transport_override = match transport_override {
            Some(file) => Some(
                config::load_transport_override(file, source.options)
                    .map_err(file_error("transport override", file))?,
            ),
            None => None,
        };
        Ok(Prepared {
            loaded,
            transport_override,
        })
    }

    pub fn request<'a>(&'a self, context: &'a ContextArgs) -> Request<'a> {
        Request {
            administration: &context.administration,
            user: &context.user,
            selector: context.selector(),
            transport_override: self.transport_override.as_ref(),
        }
    }
}

/// Reads the data file and attachments named on the command line.
fn message_input(args: &MessageArgs) -> Result<MessageInput, CliError> {
    if args.to.is_empty() {
        return Err(CliError::Usage(
            "give at least one recipient: --to ADDR".into(),
        ));
    }
    // The limit a batch line and an API request get too (see render).
    let count = args.to.len() + args.cc.len();
    render::check_recipient_count(count, "--to and --cc together").map_err(CliError::Usage)?;
    let data = match &args.data {
        Some(path) => config::load_data(path).map_err(file_error("data file", path))?,
        None => serde_json::Value::Object(Default::default()),
    };
    message_input_with(args, data)
}

/// The message of `args` with template variables `data`; reads the attachments.
pub(crate) fn message_input_with(
    args: &MessageArgs,
    data: serde_json::Value,
) -> Result<MessageInput, CliError> {
    let attachments = args
        .attach
        .iter()
        .map(|path| {
            let content = render::read_attachment(path).map_err(|error| CliError::Input {
                path: path.clone(),
                error,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            Ok(FileAttachment { name, content })
        })
        .collect::<Result<_, CliError>>()?;
    Ok(MessageInput {
        to: args.to.clone(),
        cc: args.cc.clone(),
        data,
        attachments,
        date: args.date,
        message_id: args.message_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// clap checks its own definitions (conflicts, requirements) here, not
    /// only when a user happens to type the flag.
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// What clap's `requires` does not catch (it counts a flag that
    /// conflicts with a given one as present) is refused before running.
    #[test]
    fn flags_of_another_mode_are_refused() {
        let usage = |args: &[&str]| {
            let cli = super::Cli::try_parse_from(args).expect("clap accepts it");
            match super::run(cli) {
                Err(super::CliError::Usage(message)) => message,
                other => panic!("{args:?}: {other:?}"),
            }
        };
        let send = [
            "mailrules",
            "-c",
            "x",
            "send",
            "-a",
            "a",
            "-u",
            "u",
            "-p",
            "p",
            "--to",
            "t@x.example",
        ];
        for flag in ["--retries", "--concurrency", "--retry-delay", "--results"] {
            let value = if flag == "--retry-delay" { "1s" } else { "3" };
            let message = usage(&[&send[..], &[flag, value]].concat());
            assert_eq!(message, format!("{flag} goes with --batch FILE.jsonl"));
        }
        let explain = [
            "mailrules",
            "-c",
            "x",
            "explain",
            "-a",
            "a",
            "-u",
            "u",
            "-t",
            "t",
            "-l",
            "nl",
        ];
        assert!(usage(&explain).starts_with("--language goes with --process"));
    }
}
