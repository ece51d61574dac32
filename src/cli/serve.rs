//! `mailrules serve`: flags into settings, logging set up, then the daemon.

use std::path::PathBuf;

use crate::serve::{self, OutboxSettings, ServeError, Settings, WatchSettings};

use super::args::{LogFormat, ServeArgs};
use super::{CliError, ConfigSource};

pub fn run(
    source: ConfigSource,
    args: &ServeArgs,
    outbox: Option<PathBuf>,
) -> Result<u8, CliError> {
    let outbox = match outbox {
        Some(path) => Some(OutboxSettings {
            path,
            worker: args.delivery.settings(false)?,
        }),
        None => None,
    };
    start_logging(args.log_format);
    let settings = Settings {
        listen: args.listen,
        token: args.token.clone(),
        transport_override: args.transport_override.clone(),
        watch: WatchSettings {
            mode: args.watch,
            debounce: args.debounce,
            poll_interval: args.poll_interval,
        },
        recheck: (!args.recheck_interval.is_zero()).then_some(args.recheck_interval),
        outbox,
    };
    match serve::run(source, settings) {
        Ok(()) => Ok(0),
        // An invalid configuration is reported as `validate` reports it.
        Err(ServeError::Load(error)) => Err(CliError::Load(error)),
        Err(error) => Err(CliError::Serve(error)),
    }
}

/// Logs go to stderr; stdout carries only the listening address.
pub(super) fn start_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAILRULES_LOG")
        // notify reports its own housekeeping (a watch on a replaced
        // directory) at info: noise for an operator.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,notify=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
