//! Argument groups shared by `explain`, `preview` and `send`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use lettre::message::Mailbox;

use crate::resolve::TemplateSelector;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// `plan` output: for people, for machines, for a pull-request comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

/// `explain` can also write CSV (with `--all`, one row per context).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    Human,
    Json,
    Csv,
}

/// Who sends what: the request context.
#[derive(Debug, Clone, Args)]
#[group(skip)]
#[command(group = clap::ArgGroup::new("selector").required(true).args(["process", "template"]))]
pub struct ContextArgs {
    /// Administration (company) the message is sent for.
    #[arg(long, short = 'a')]
    pub administration: String,
    /// User on whose behalf the message is sent.
    #[arg(long, short = 'u')]
    pub user: String,
    /// Business process, e.g. `sales_invoice`; the language table picks the template.
    #[arg(long, short = 'p')]
    pub process: Option<String>,
    /// Language of the message, e.g. `nl` or `nl-BE` (falls back to `nl`,
    /// then the defaults). Only with --process: a template has its own language.
    #[arg(long, short = 'l', requires = "process", conflicts_with = "template", value_parser = parse_language)]
    pub language: Option<String>,
    /// Use this template instead of the language table.
    #[arg(long, short = 't')]
    pub template: Option<String>,
    /// A file with one `smtp`, `sendmail` or `file` block that replaces every
    /// profile's transport (staging, local tests); who sends what is unchanged.
    #[arg(long, env = "MAILRULES_TRANSPORT_OVERRIDE", value_name = "FILE")]
    pub transport_override: Option<PathBuf>,
}

impl ContextArgs {
    pub fn selector(&self) -> TemplateSelector<'_> {
        match (&self.template, &self.process) {
            (Some(template), _) => TemplateSelector::Template(template),
            (None, Some(process)) => TemplateSelector::Process {
                process,
                language: self.language.as_deref(),
            },
            (None, None) => unreachable!("clap requires --process or --template"),
        }
    }
}

/// The message flags that `send --batch` replaces.
const MESSAGE_FLAGS: [&str; 6] = ["to", "cc", "data", "attach", "date", "message_id"];

/// What the message carries beyond the configuration.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    /// Recipient (repeatable, at least one): `name@example.com` or `Name <name@example.com>`.
    #[arg(long, value_parser = parse_mailbox)]
    pub to: Vec<Mailbox>,
    /// Visible copy recipient (repeatable).
    #[arg(long, value_parser = parse_mailbox)]
    pub cc: Vec<Mailbox>,
    /// YAML or JSON file with the template variables.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Attach a file (repeatable).
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Fixed Date header, RFC 3339 in UTC (`2026-12-01T09:00:00Z`), for reproducible output.
    #[arg(long, value_parser = parse_date)]
    pub date: Option<std::time::SystemTime>,
    /// Fixed Message-ID (`<id@domain>`), for reproducible output.
    #[arg(long, value_parser = parse_message_id)]
    pub message_id: Option<String>,
}

pub(super) fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    crate::config::parse_mailbox(text).map_err(|e| format!("{}; {}", e.message, e.hint))
}

pub(super) fn parse_date(text: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339(text).map_err(|e| format!("{e}; write e.g. 2026-12-01T09:00:00Z"))
}

/// The longest Message-ID taken: the file transport names a message's
/// file after it, and file names end at 255 bytes.
const MAX_MESSAGE_ID: usize = 200;

/// `<left@right>`: both sides non-empty, printable ASCII, one `@`, no
/// brackets inside, at most 200 characters.
pub(super) fn parse_message_id(text: &str) -> Result<String, String> {
    if text.len() > MAX_MESSAGE_ID {
        return Err(format!(
            "at most {MAX_MESSAGE_ID} characters; write it as `<unique-part@domain>`"
        ));
    }
    let inner = text.strip_prefix('<').and_then(|t| t.strip_suffix('>'));
    let valid = inner.is_some_and(|inner| {
        let parts: Vec<&str> = inner.split('@').collect();
        parts.len() == 2
            && parts.iter().all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_graphic() && !"<>".contains(c))
            })
    });
    if valid {
        Ok(text.to_string())
    } else {
        Err("write it as `<unique-part@domain>`".into())
    }
}

/// A language tag such as `nl` or `nl-BE` (the schema's pattern).
pub(super) fn parse_language(text: &str) -> Result<String, String> {
    let mut parts = text.split('-');
    let primary = parts.next().unwrap_or_default();
    let valid = (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts
            .all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if valid {
        Ok(text.to_string())
    } else {
        Err("write a language tag such as `nl`, `en` or `nl-BE`".into())
    }
}

/// A request context where another mode (`explain --all`, `send
/// --batch`) can stand in for it: clap leaves every field optional, and
/// `complete` says what is missing.
#[derive(Debug, Clone, Args)]
pub struct OptionalContextArgs {
    /// Administration (company) the message is sent for.
    #[arg(long, short = 'a')]
    pub administration: Option<String>,
    /// User on whose behalf the message is sent.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Business process, e.g. `sales_invoice`; the language table picks the template.
    #[arg(long, short = 'p', conflicts_with = "template")]
    pub process: Option<String>,
    /// Language of the message (with --process).
    #[arg(long, short = 'l', value_parser = parse_language)]
    pub language: Option<String>,
    /// Use this template instead of the language table.
    #[arg(long, short = 't')]
    pub template: Option<String>,
    /// A file with one `smtp`, `sendmail` or `file` block that replaces every
    /// profile's transport.
    #[arg(long, env = "MAILRULES_TRANSPORT_OVERRIDE", value_name = "FILE")]
    pub transport_override: Option<PathBuf>,
}

/// The context flags that `explain --all` and `send --batch` replace.
const CONTEXT_FLAGS: [&str; 5] = ["administration", "user", "process", "template", "language"];

impl OptionalContextArgs {
    /// The context, or what `command` needs (`instead`: the other mode).
    pub fn complete(&self, command: &str, instead: &str) -> Result<ContextArgs, super::CliError> {
        let needs =
            |what: &str| super::CliError::Usage(format!("{command} needs {what} (or {instead})"));
        let administration = self
            .administration
            .clone()
            .ok_or_else(|| needs("--administration"))?;
        let user = self.user.clone().ok_or_else(|| needs("--user"))?;
        if self.process.is_none() && self.template.is_none() {
            return Err(needs("--process or --template"));
        }
        // Checked here, not by clap: `requires` counts as met when
        // --process conflicts with a given --template.
        if self.language.is_some() && self.process.is_none() {
            return Err(super::CliError::Usage(
                "--language goes with --process: a template has its own language".into(),
            ));
        }
        Ok(ContextArgs {
            administration,
            user,
            process: self.process.clone(),
            language: self.language.clone(),
            template: self.template.clone(),
            transport_override: self.transport_override.clone(),
        })
    }
}

/// `explain`: one context (like preview and send), or `--all` of them.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub context: OptionalContextArgs,
    /// Every context instead: administration × process × language × user
    /// (each user with enabled personal settings, plus none), one row each.
    #[arg(long, conflicts_with_all = CONTEXT_FLAGS)]
    pub all: bool,
    /// An alert of the `alerts` section instead of a message context.
    #[arg(long, value_name = "NAME", conflicts_with_all = CONTEXT_FLAGS, conflicts_with = "all")]
    pub alert: Option<String>,
    /// Exit 1 unless the winning profile is this one.
    #[arg(long, value_name = "ID", conflicts_with = "all")]
    pub expect_profile: Option<String>,
    /// Exit 1 unless the effective sender is this address.
    #[arg(long, value_name = "ADDR", conflicts_with = "all")]
    pub expect_from: Option<String>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: ExplainFormat,
}

impl ExplainArgs {
    /// The one context to explain; `None` for `--all` and `--alert`.
    pub fn context(&self) -> Result<Option<ContextArgs>, super::CliError> {
        if self.all || self.alert.is_some() {
            return Ok(None);
        }
        self.context.complete("explain", "--all").map(Some)
    }

    pub fn expectations(&self) -> super::explain::Expectations {
        super::explain::Expectations {
            profile: self.expect_profile.clone(),
            from: self.expect_from.clone(),
        }
    }
}

/// `send`: one message from flags (like preview), or `--batch` of them.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub context: OptionalContextArgs,
    #[command(flatten)]
    pub message: MessageArgs,
    /// Send every request of a JSON Lines file (one JSON object per line,
    /// with the fields of the flags above: see docs/batch.md).
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = CONTEXT_FLAGS, conflicts_with_all = MESSAGE_FLAGS)]
    pub batch: Option<PathBuf>,
    /// Where the batch writes one result line per request; it must not
    /// exist yet. Default: the batch file's name with `.results.jsonl`.
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Messages of a batch in flight at once (connections per server) [default: 8].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: Option<u16>,
    /// Retries of a batch message after a temporary failure (a 4xx reply,
    /// or no connection); never after a 5xx or once the whole message was
    /// sent [default: 2].
    #[arg(long)]
    pub retries: Option<u32>,
    /// Wait before a batch message's first retry; doubled for each next
    /// one [default: 2s; 10ms to 1day].
    #[arg(long, value_parser = parse_batch_retry_delay)]
    pub retry_delay: Option<std::time::Duration>,
    /// Store the message in the outbox (--outbox FILE) instead of sending
    /// it now; a daemon on that outbox, or `mailrules outbox deliver`,
    /// delivers it.
    #[arg(long, conflicts_with = "batch")]
    pub queue: bool,
    /// With --queue: a key naming this request (an invoice number). Queuing
    /// again with the same key returns the first message, not a second one.
    #[arg(long, value_name = "KEY", value_parser = parse_idempotency_key)]
    pub idempotency_key: Option<String>,
}

impl SendArgs {
    /// The single message's context and content; `None` for `--batch`.
    pub fn single(&self) -> Result<Option<(ContextArgs, &MessageArgs)>, super::CliError> {
        if self.idempotency_key.is_some() && !self.queue {
            return Err(super::CliError::Usage(
                "--idempotency-key goes with --queue".into(),
            ));
        }
        if self.batch.is_some() {
            return Ok(None);
        }
        // clap's `requires` is satisfied when the required flag conflicts
        // with one given (--batch with --to), so these are checked here.
        let batch_only = [
            ("--results", self.results.is_some()),
            ("--concurrency", self.concurrency.is_some()),
            ("--retries", self.retries.is_some()),
            ("--retry-delay", self.retry_delay.is_some()),
        ];

        if let Some((flag, _)) = batch_only.iter().find(|(_, given)| *given) {
            return Err(super::CliError::Usage(format!(
                "{flag} goes with --batch FILE.jsonl"
            )));
        }
        let context = self.context.complete("send", "--batch")?;
        Ok(Some((context, &self.message)))
    }
}

/// `serve`: where to listen and how to watch.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the HTTP API. Beyond loopback it needs --token. Port 0
    /// picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8625", value_name = "ADDR:PORT", value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,
    /// Where the API's bearer token is: `env:NAME` or `file:PATH`.
    #[arg(long, env = "MAILRULES_TOKEN_REF", value_name = "env:NAME|file:PATH", value_parser = parse_secret_reference)]
    pub token: Option<crate::config::Secret>,
    /// A file with one transport block that replaces every profile's
    /// (read again at each reload).
    #[arg(long, env = "MAILRULES_TRANSPORT_OVERRIDE", value_name = "FILE")]
    pub transport_override: Option<PathBuf>,
    /// How file changes are noticed: OS events, polling (network file
    /// systems), or not at all (SIGHUP and POST /v1/reload only).
    #[arg(long, value_enum, default_value = "native")]
    pub watch: crate::serve::WatchMode,
    /// Quiet period after the last file event before reloading (10ms to 1min).
    #[arg(long, default_value = "200ms", value_parser = parse_debounce)]
    pub debounce: Duration,
    /// How often --watch poll looks at the files (100ms to 1h).
    #[arg(long, default_value = "2s", value_parser = parse_poll_interval)]
    pub poll_interval: Duration,
    /// How often the files are compared with what serves, in case a file
    /// event was lost; 0 turns it off (else 100ms to 1day).
    #[arg(long, default_value = "30s", value_parser = parse_recheck_interval)]
    pub recheck_interval: Duration,
    /// Log lines on stderr as text or as JSON (one object a line). The
    /// level comes from MAILRULES_LOG (default `info`).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

fn parse_idempotency_key(text: &str) -> Result<String, String> {
    crate::outbox::check_idempotency_key(text).map(|()| text.to_string())
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A duration flag's value within `min..=max`; `range` says the allowed
/// values in the error. Every duration flag is bounded: zero or a tiny
/// interval makes a thread spin a CPU, and a huge one overflows the
/// arithmetic done on it (and is a typo anyway).
fn parse_bounded(
    text: &str,
    min: Duration,
    max: Duration,
    range: &str,
) -> Result<Duration, String> {
    let value = humantime::parse_duration(text).map_err(|e| format!("{e}; write {range}"))?;
    if value < min || value > max {
        return Err(format!("out of range: write {range}"));
    }
    Ok(value)
}

fn parse_debounce(text: &str) -> Result<Duration, String> {
    let range = "a duration from 10ms to 1min";
    parse_bounded(text, Duration::from_millis(10), MINUTE, range)
}

fn parse_poll_interval(text: &str) -> Result<Duration, String> {
    let range = "a duration from 100ms to 1h";
    parse_bounded(text, Duration::from_millis(100), HOUR, range)
}

/// 0 turns the recheck off; otherwise as often as polling may look.
fn parse_recheck_interval(text: &str) -> Result<Duration, String> {
    let range = "0 (off), or a duration from 100ms to 1day";
    match humantime::parse_duration(text) {
        Ok(Duration::ZERO) => Ok(Duration::ZERO),
        _ => parse_bounded(text, Duration::from_millis(100), DAY, range),
    }
}

/// The outbox's waits between tries: at least 100ms, because a server that
/// refuses at once must not be hammered; at most a day, because a message
/// waiting longer between tries is better dead-lettered by --max-age.
fn parse_retry_delay(text: &str) -> Result<Duration, String> {
    let range = "a duration from 100ms to 1day (at least 100ms: a server that refuses at once must not be hammered)";
    parse_bounded(text, Duration::from_millis(100), DAY, range)
}

/// A batch retries a few times only (--retries), so shorter waits are fine.
fn parse_batch_retry_delay(text: &str) -> Result<Duration, String> {
    let range = "a duration from 10ms to 1day";
    parse_bounded(text, Duration::from_millis(10), DAY, range)
}

fn parse_max_age(text: &str) -> Result<Duration, String> {
    let range = "a duration from 1s to 365days";
    parse_bounded(text, Duration::from_secs(1), 365 * DAY, range)
}

fn parse_admin_notice_interval(text: &str) -> Result<Duration, String> {
    let range = "a duration from 1s to 7days";
    parse_bounded(text, Duration::from_secs(1), 7 * DAY, range)
}

/// How the outbox delivers: `serve --outbox` and `outbox deliver`.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Wait before a queued message's first retry after a temporary
    /// failure; doubled for each next one, with jitter (100ms to 1day).
    #[arg(long, default_value = "30s", value_parser = parse_retry_delay)]
    pub retry_delay: Duration,
    /// The longest wait between two tries of a queued message (100ms to 1day).
    #[arg(long, default_value = "30m", value_parser = parse_retry_delay)]
    pub retry_max_delay: Duration,
    /// A queued message not delivered this long after it was accepted is
    /// moved to the dead letters (1s to 365days).
    #[arg(long, default_value = "2days", value_parser = parse_max_age)]
    pub max_age: Duration,
    /// At most one summary of dead letters to `alerts.admin_email` this
    /// often (1s to 7days).
    #[arg(long, default_value = "15m", value_parser = parse_admin_notice_interval)]
    pub admin_notice_interval: Duration,
}

impl DeliveryArgs {
    pub fn settings(
        &self,
        until_empty: bool,
    ) -> Result<crate::outbox::WorkerSettings, super::CliError> {
        if self.retry_delay >= self.max_age {
            return Err(super::CliError::Usage(format!(
                "--retry-delay ({}) is not shorter than --max-age ({}): a message would expire before its first retry",
                humantime::format_duration(self.retry_delay),
                humantime::format_duration(self.max_age)
            )));
        }
        Ok(crate::outbox::WorkerSettings {
            retry: crate::outbox::RetrySettings {
                first_delay: self.retry_delay,
                max_delay: self.retry_max_delay.max(self.retry_delay),
                max_age: self.max_age,
            },
            admin_notice_interval: self.admin_notice_interval,
            until_empty,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `127.0.0.1:8625`, `[::1]:8625` or `localhost:8625` (the first address
/// the name resolves to).
fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let hint = "write ADDRESS:PORT, e.g. 127.0.0.1:8625";
    let mut addresses = text.to_socket_addrs().map_err(|e| format!("{e}; {hint}"))?;
    addresses
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address; {hint}"))
}

/// `env:NAME` or `file:PATH`: where a secret is, never the secret itself.
pub fn parse_secret_reference(text: &str) -> Result<crate::config::Secret, String> {
    use crate::config::Secret;
    match text.split_once(':') {
        Some(("env", name)) if !name.is_empty() => Ok(Secret::Env(name.into())),
        Some(("file", path)) if !path.is_empty() => Ok(Secret::File(path.into())),
        _ => Err(
            "write where the token is: `env:NAME` or `file:PATH` (never the token itself)".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Both bounds are taken; a value just below, just above and far above
    /// is refused with the range in the message.
    fn check(parse: fn(&str) -> Result<Duration, String>, [min, max, below, above]: [&str; 4]) {
        assert!(parse(min).is_ok(), "{min}");
        assert!(parse(max).is_ok(), "{max}");
        for out in [below, above, "4000000000000d"] {
            let error = parse(out).expect_err(out);
            assert!(error.contains(min) && error.contains(max), "{out}: {error}");
        }
    }

    #[test]
    fn duration_flags_take_their_range_and_refuse_beyond_it() {
        check(super::parse_debounce, ["10ms", "1min", "9ms", "61s"]);
        check(super::parse_poll_interval, ["100ms", "1h", "99ms", "61min"]);
        check(
            super::parse_recheck_interval,
            ["100ms", "1day", "1ns", "25h"],
        );
        check(super::parse_retry_delay, ["100ms", "1day", "99ms", "25h"]);
        check(
            super::parse_batch_retry_delay,
            ["10ms", "1day", "9ms", "25h"],
        );
        check(super::parse_max_age, ["1s", "365days", "999ms", "366days"]);
        check(
            super::parse_admin_notice_interval,
            ["1s", "7days", "0s", "8days"],
        );
        // 0 turns the recheck off.
        assert_eq!(super::parse_recheck_interval("0"), Ok(Duration::ZERO));
    }
}
