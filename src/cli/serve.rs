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
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAILRULES_LOG")
        // notify reports its own housekeeping (a watch on a replaced
        // directory) at info: noise for an operator.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,notify=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // The HTTP client's debug and trace output holds the raw bytes of the
    // token endpoint's requests and answers (the client secret, the access
    // token): it is dropped whatever MAILRULES_LOG says. A filter applied
    // after the user's, not a `ureq=warn` directive added to it: a more
    // specific directive (`ureq_proto::client=trace`, or a span's
    // `[send]=trace`) would win over that one.
    let http_client_quiet = tracing_subscriber::filter::filter_fn(|metadata| {
        *metadata.level() <= tracing::Level::WARN || !is_http_client(metadata.target())
    });
    match format {
        LogFormat::Text => builder.finish().with(http_client_quiet).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(http_client_quiet)
            .init(),
    }
}

/// The crates of ureq, which fetches OAuth 2.0 tokens: they trace the raw
/// bytes of every request and answer.
const HTTP_CLIENT_TARGETS: [&str; 2] = ["ureq", "ureq_proto"];

/// Whether `target` (`ureq_proto::client::flow`, …) is in one of them.
fn is_http_client(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or_default();
    HTTP_CLIENT_TARGETS.contains(&krate)
}
