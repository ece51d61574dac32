//! `mailrules outbox list|show|retry|purge|deliver` on the outbox file a
//! daemon uses (or that `send --queue` fills), and `send --queue` itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;

use crate::outbox::{self, AcceptError, Configs, State, Store, Worker, now_ms};
use crate::transport::Transports;

use super::args::DeliveryArgs;
use super::request::Request;
use super::{CliError, ConfigSource, ContextArgs, Format, MessageArgs, Prepared, report};

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List messages, oldest first, with the count of each state.
    List {
        /// Only messages in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Show one message: its state, attempts and the server's last reply.
    Show {
        /// The id `send --queue` or `POST /v1/send` answered.
        id: String,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Queue dead messages again, to be delivered at once.
    Retry {
        /// Ids of dead messages.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        ids: Vec<String>,
        /// Every dead message.
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete finished messages (sent and dead) older than --older-than.
    Purge {
        /// Only this state (`sent` or `dead`); default both.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Finished at least this long ago.
        #[arg(long, default_value = "7days", value_parser = humantime::parse_duration)]
        older_than: Duration,
    },
    /// Deliver the queued messages (needs --config), waiting for retries,
    /// until none is left queued; then print what became of them.
    Deliver {
        #[command(flatten)]
        delivery: DeliveryArgs,
        /// A file with one transport block that replaces every profile's.
        #[arg(long, env = "MAILRULES_TRANSPORT_OVERRIDE", value_name = "FILE")]
        transport_override: Option<PathBuf>,
    },
}

fn outbox_path(path: Option<&Path>) -> Result<&Path, CliError> {
    path.ok_or_else(|| {
        CliError::Usage("no outbox given: pass --outbox FILE or set MAILRULES_OUTBOX".into())
    })
}

/// `send --queue` and `outbox deliver` make the outbox when there is none.
fn open(path: Option<&Path>) -> Result<Store, CliError> {
    Ok(Store::open(outbox_path(path)?)?)
}

/// The commands that need no configuration: they read and change the file.
pub fn run(path: Option<&Path>, command: &OutboxCommand) -> Result<u8, CliError> {
    let store = Store::open_existing(outbox_path(path)?)?;
    match command {
        OutboxCommand::List {
            state,
            limit,
            format,
        } => list(&store, *state, *limit, *format),
        OutboxCommand::Show { id, format } => show(&store, id, *format),
        OutboxCommand::Retry { ids, all_dead } => retry(&store, ids, *all_dead),
        OutboxCommand::Purge { state, older_than } => {
            let states: Vec<State> = match state {
                Some(state) if !state.is_final() => {
                    return Err(CliError::Usage(format!(
                        "--state {}: only finished messages (sent, dead) are purged",
                        state.name()
                    )));
                }
                Some(state) => vec![*state],
                None => vec![State::Sent, State::Dead],
            };
            let before = now_ms().saturating_sub(outbox::ms(*older_than));
            let deleted = store.purge(&states, before)?;
            println!("purged {deleted} message(s)");
            Ok(0)
        }
        OutboxCommand::Deliver { .. } => unreachable!("deliver runs with a configuration"),
    }
}

fn list(store: &Store, state: Option<State>, limit: usize, format: Format) -> Result<u8, CliError> {
    let messages = store.list(state, limit)?;
    let counts = store.counts()?;
    if format == Format::Json {
        let counts: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(s, n)| (s.name().to_string(), (*n).into()))
            .collect();
        let body = serde_json::json!({"counts": counts, "messages": messages});
        println!("{body}");
        return Ok(0);
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.name()))
        .collect();
    println!("{}: {}", store.path().display(), summary.join(", "));
    for message in &messages {
        println!(
            "{}  {:<7}  {:>2} attempt(s)  {:<16}  {}  {}",
            message.id,
            message.state.name(),
            message.attempts,
            message.profile,
            message.accepted_at,
            message.rcpt_to.join(", ")
        );
    }
    Ok(0)
}

fn show(store: &Store, id: &str, format: Format) -> Result<u8, CliError> {
    let Some(message) = store.get(id)? else {
        eprintln!(
            "error: no message `{id}` in the outbox `{}`",
            store.path().display()
        );
        eprintln!("  = hint: `mailrules outbox list` shows the ids");
        return Ok(1);
    };
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&message).unwrap_or_default()
        );
        return Ok(0);
    }
    let value = serde_json::to_value(&message).unwrap_or_default();
    for (field, value) in value.as_object().into_iter().flatten() {
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        println!("{field:<16} {}", report::one_line(&text));
    }
    Ok(0)
}

fn retry(store: &Store, ids: &[String], all_dead: bool) -> Result<u8, CliError> {
    let ids: Vec<String> = if all_dead {
        store
            .list(Some(State::Dead), usize::MAX >> 1)?
            .into_iter()
            .map(|m| m.id)
            .collect()
    } else {
        ids.to_vec()
    };
    let mut missing = 0;
    for id in &ids {
        if store.retry(id, now_ms())? {
            println!("{id}: queued again");
        } else {
            eprintln!("error: `{id}` is not a dead message in this outbox");
            missing += 1;
        }
    }
    if missing > 0 {
        eprintln!(
            "  = hint: only dead messages are retried; `mailrules outbox list --state dead` lists them"
        );
        return Ok(1);
    }
    Ok(0)
}

/// The configuration `outbox deliver` loaded once, and its connections.
struct Loaded {
    prepared: Prepared,
    transports: Transports,
}

impl Configs for Loaded {
    fn with_current(&self, f: &mut dyn FnMut(&Prepared, &Transports, u64)) {
        f(&self.prepared, &self.transports, 0);
    }
}

/// `outbox deliver`: the daemon's workers, run until nothing is queued.
pub fn deliver(
    source: &ConfigSource,
    path: Option<&Path>,
    delivery: &DeliveryArgs,
    transport_override: Option<&Path>,
) -> Result<u8, CliError> {
    // Settings first: a refused command leaves no new outbox behind.
    let settings = delivery.settings(true)?;
    let store = Arc::new(open(path)?);
    let prepared = Prepared::load(source, transport_override)?;
    let configs = Arc::new(Loaded {
        prepared,
        transports: Transports::default(),
    });
    let (sent, retried, dead) = (
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
        Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let counters = (Arc::clone(&sent), Arc::clone(&retried), Arc::clone(&dead));
    let observer = Box::new(move |attempt: &outbox::Attempted| {
        use std::sync::atomic::Ordering::Relaxed;
        match attempt.outcome {
            "sent" => counters.0.fetch_add(1, Relaxed),
            "retry" => counters.1.fetch_add(1, Relaxed),
            _ => {
                eprintln!(
                    "error: {} {} is dead: {}",
                    attempt.id,
                    attempt.message_id,
                    attempt.error.as_deref().unwrap_or_default()
                );
                counters.2.fetch_add(1, Relaxed)
            }
        };
    });
    let worker = Worker::start(Arc::clone(&store), configs, settings, observer)?;
    worker.wait();
    let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "delivered {}, dead {}, retries {}",
        load(&sent),
        load(&dead),
        load(&retried)
    );
    Ok(if load(&dead) > 0 { 1 } else { 0 })
}

/// `send --queue`: rendered and stored, delivered later.
pub fn queue(
    source: &ConfigSource,
    path: Option<&Path>,
    context: &ContextArgs,
    message: &MessageArgs,
    idempotency_key: Option<&str>,
) -> Result<u8, CliError> {
    let store = open(path)?;
    if message.to.is_empty() {
        return Err(CliError::Usage(
            "give at least one recipient: --to ADDR".into(),
        ));
    }
    let prepared = Prepared::load(source, context.transport_override.as_deref())?;
    let data = match &message.data {
        Some(file) => {
            crate::config::load_data(file).map_err(super::file_error("data file", file))?
        }
        None => serde_json::Value::Object(Default::default()),
    };
    let request = Request {
        id: None,
        context: context.clone(),
        message: message.clone(),
        data,
    };
    let enqueued = outbox::accept(
        &store,
        &prepared,
        0,
        request,
        idempotency_key.map(str::to_string),
    )
    .map_err(|error| match error {
        AcceptError::Message(error) => error,
        AcceptError::Store(error) => CliError::Outbox(error),
    })?;
    if enqueued.duplicate {
        println!(
            "already in {} under this idempotency key: {} {} with profile `{}`, {}; nothing queued",
            store.path().display(),
            enqueued.id,
            enqueued.message_id,
            enqueued.profile,
            enqueued.state.name()
        );
    } else {
        println!(
            "queued {} {} with profile `{}` in {}",
            enqueued.id,
            enqueued.message_id,
            enqueued.profile,
            store.path().display()
        );
    }
    Ok(0)
}
