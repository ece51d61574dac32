//! What `GET /metrics` shows, in the Prometheus text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::live::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    profile: String,
    /// `smtp host:port (security)`, `sendmail COMMAND` or `file DIR`.
    transport: String,
    /// `sent`, `failed` or `unknown` (no reply after the message was written).
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    /// `queued`, `sending`, `sent` or `dead`.
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    outcome: String,
}

pub struct Metrics {
    registry: Registry,
    messages: Family<MessageLabels, Counter>,
    send_seconds: Histogram,
    reloads: Family<ReloadLabels, Counter>,
    reload_success: Gauge,
    generation: Gauge,
    outbox: Family<StateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mailrules");
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "messages",
            "Messages handed to a transport, by profile, transport and status",
            messages.clone(),
        );
        // 5 ms to about 41 s: a local relay to a slow provider with retries.
        let send_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "send_duration_seconds",
            "Time from request to the transport's answer",
            send_seconds.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by outcome (applied, rejected, unchanged)",
            reloads.clone(),
        );
        // Each outcome from zero, so that a rate over them works from the start.
        for outcome in ["applied", "rejected", "unchanged"] {
            let _ = reloads
                .get_or_create(&ReloadLabels {
                    outcome: outcome.into(),
                })
                .get();
        }
        let reload_success = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "1 when the last reload was applied or unchanged, 0 when it was rejected",
            reload_success.clone(),
        );
        reload_success.set(1);
        let generation = Gauge::default();
        registry.register(
            "config_generation",
            "The number of the configuration generation serving",
            generation.clone(),
        );
        generation.set(1);
        let outbox = Family::<StateLabels, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Messages in the outbox, by state (with --outbox)",
            outbox.clone(),
        );
        Metrics {
            registry,
            messages,
            send_seconds,
            reloads,
            reload_success,
            generation,
            outbox,
        }
    }
}

impl Metrics {
    pub fn message(&self, profile: &str, transport: &str, status: &str, seconds: f64) {
        self.messages
            .get_or_create(&MessageLabels {
                profile: profile.into(),
                transport: transport.into(),
                status: status.into(),
            })
            .inc();
        self.send_seconds.observe(seconds);
    }

    pub fn reload(&self, outcome: &Outcome) {
        self.reloads
            .get_or_create(&ReloadLabels {
                outcome: outcome.name().into(),
            })
            .inc();
        match outcome {
            Outcome::Applied { generation, .. } => {
                self.reload_success.set(1);
                self.generation.set(*generation as i64);
            }
            Outcome::Unchanged { .. } => {
                self.reload_success.set(1);
            }
            Outcome::Rejected { .. } => {
                self.reload_success.set(0);
            }
        }
    }

    /// The outbox's counts, taken when the metrics are read.
    pub fn outbox(&self, counts: &[(crate::outbox::State, u64)]) {
        for (state, count) in counts {
            self.outbox
                .get_or_create(&StateLabels {
                    state: state.name().into(),
                })
                .set(*count as i64);
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
