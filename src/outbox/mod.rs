//! The durable outbox: a message accepted by `POST /v1/send` (or
//! `mailrules send --queue`) is rendered and committed to an SQLite file
//! before the caller hears about it, then delivered by workers that retry
//! temporary failures with backoff and move permanent ones to a dead
//! letter state. See docs/outbox.md.
//!
//! `store` is the storage seam; `accept` turns a request into a stored
//! message; `worker` delivers; `notice` mails the administrator about dead
//! letters.

mod accept;
mod group;
mod lock;
mod notice;
mod store;
mod worker;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use accept::{AcceptError, accept};
pub use store::{MessageView, Store, StoreError};
pub use worker::{Attempted, Configs, Worker, WorkerSettings};

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for its (next) delivery attempt.
    Queued,
    /// Handed to a transport; no outcome recorded yet.
    Sending,
    /// The server took it.
    Sent,
    /// Given up: a permanent refusal, or temporary ones past the maximum age.
    Dead,
}

impl State {
    pub const ALL: [State; 4] = [State::Queued, State::Sending, State::Sent, State::Dead];

    pub fn name(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Dead => "dead",
        }
    }

    /// Read back from the store; the store only ever writes these names.
    fn parse(text: &str) -> State {
        State::ALL
            .into_iter()
            .find(|state| state.name() == text)
            .unwrap_or(State::Queued)
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::Sent | State::Dead)
    }
}

/// A rendered message, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub idempotency_key: Option<String>,
    /// What the request asked for, to tell a repeated request from another
    /// one under the same idempotency key.
    pub request_hash: String,
    pub caller_id: Option<String>,
    pub message_id: String,
    pub profile: String,
    pub generation: u64,
    /// The request's context as JSON (`administration`, `user`, ...): the
    /// transport is resolved again at delivery, under the configuration
    /// serving then.
    pub context: String,
    pub envelope: String,
    /// The private Bcc header of the sent copy.
    pub bcc: String,
    pub body: Vec<u8>,
}

/// What the caller is told once its message is stored.
#[derive(Debug, Clone, Serialize)]
pub struct Enqueued {
    pub id: String,
    pub message_id: String,
    pub profile: String,
    pub state: State,
    /// The idempotency key was used before for this request: this is the
    /// first message, not a new one.
    pub duplicate: bool,
}

/// A message taken for one delivery attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub message_id: String,
    pub profile: String,
    pub context: String,
    pub envelope: String,
    pub bcc: String,
    pub body: Vec<u8>,
    /// Including this one.
    pub attempts: u32,
    /// When its maximum age started (ms): acceptance, or `outbox retry`.
    pub age_from: i64,
}

/// MAIL FROM and RCPT TO of a stored message (BCC included), as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
}

impl Envelope {
    pub fn of(envelope: &lettre::address::Envelope) -> Envelope {
        Envelope {
            from: envelope.from().map(ToString::to_string).unwrap_or_default(),
            to: envelope.to().iter().map(ToString::to_string).collect(),
        }
    }

    /// The store only holds envelopes written by `to_json`.
    fn parse(text: &str) -> Envelope {
        serde_json::from_str(text).unwrap_or_default()
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn to_lettre(&self) -> Result<lettre::address::Envelope, String> {
        let address = |text: &str| {
            text.parse::<lettre::Address>()
                .map_err(|e| format!("stored address `{text}`: {e}"))
        };
        let from = (!self.from.is_empty())
            .then(|| address(&self.from))
            .transpose()?;
        let to = self
            .to
            .iter()
            .map(|t| address(t))
            .collect::<Result<_, _>>()?;
        lettre::address::Envelope::new(from, to).map_err(|e| e.to_string())
    }
}

/// The longest idempotency key taken.
const MAX_KEY: usize = 255;

/// An idempotency key is 1 to 255 printable ASCII characters without
/// spaces (an invoice number, a UUID): the same rule for the API's header
/// and `send --queue --idempotency-key`.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "an idempotency key is 1 to 255 printable ASCII characters without spaces, e.g. the invoice number or a UUID".into(),
        );
    }
    Ok(())
}

/// How temporary failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    /// Wait before the first retry; doubled for each next one.
    pub first_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
    /// A message still undelivered this long after it was accepted is
    /// dead-lettered.
    pub max_age: Duration,
}

impl RetrySettings {
    /// The wait after try number `attempts` failed: exponential, capped,
    /// with jitter (between half and all of it) so that messages refused
    /// together are not all tried again at the same moment.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let doubled = self
            .first_delay
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(30));
        let capped = doubled.min(self.max_delay);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        // Divided before multiplied: `half * jitter` overflows (and
        // panics) for a huge delay; `half / 1000 * jitter` stays below
        // `half`, and loses less than a microsecond.
        let half = capped / 2;
        half + half / 1000 * jitter
    }
}

/// A duration in the store's milliseconds; one too long for that (a
/// `--max-age` of a billion years) is as good as forever.
pub fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since 1970: how the store keeps time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap_with_jitter() {
        let settings = RetrySettings {
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        };
        for (attempts, full) in [(1, 10), (2, 20), (3, 40), (4, 60), (40, 60)] {
            let delay = settings.delay_after(attempts);
            let full = Duration::from_secs(full);
            assert!(delay >= full / 2 && delay <= full, "{attempts}: {delay:?}");
        }
    }

    /// The flags bound the delays, but the arithmetic must not rely on it:
    /// it runs in the delivery worker, where a panic stops delivery.
    #[test]
    fn huge_retry_delays_do_not_overflow() {
        let settings = RetrySettings {
            first_delay: Duration::MAX,
            max_delay: Duration::MAX,
            max_age: Duration::MAX,
        };
        for attempts in [0, 1, 2, 31, 64, u32::MAX] {
            let delay = settings.delay_after(attempts);
            assert!(delay >= Duration::MAX / 2, "{attempts}: {delay:?}");
        }
    }
}
