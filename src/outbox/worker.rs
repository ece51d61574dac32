//! Delivery from the outbox: one dispatcher thread claims due messages,
//! as many per profile as its `throttle` allows (and no faster than its
//! rate), and hands each to a thread of its own that delivers it under the
//! serving configuration and writes the outcome back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::cli::delivery::CopyReport;
use crate::cli::{Prepared, report, request};
use crate::config::Throttle;
use crate::resolve;
use crate::transport::{Outgoing, SendError, Transports};

use super::store::Finish;
use super::{Claimed, Envelope, RetrySettings, Store, ms, now_ms};

/// The configuration deliveries run under: the daemon's serving
/// generation, or the one loaded by `mailrules outbox deliver`.
pub trait Configs: Send + Sync + 'static {
    /// Runs `f` with the serving configuration, its transports and its
    /// generation number; one delivery sees one configuration throughout.
    fn with_current(&self, f: &mut dyn FnMut(&Prepared, &Transports, u64));
}

#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub retry: RetrySettings,
    /// At most one summary of dead letters to `alerts.admin_email` this often.
    pub admin_notice_interval: Duration,
    /// Stop once nothing is queued or being sent (`mailrules outbox deliver`).
    pub until_empty: bool,
}

/// One delivery try, for the caller's metrics and log.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub id: String,
    pub message_id: String,
    pub profile: String,
    pub transport: Option<String>,
    /// `sent`, `retry` or `dead`.
    pub outcome: &'static str,
    pub attempts: u32,
    pub error: Option<String>,
    pub seconds: f64,
}

type Observer = Box<dyn Fn(&Attempted) + Send + Sync>;

/// The delivering half of the outbox, running until stopped.
pub struct Worker {
    shared: Arc<Shared>,
    dispatcher: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held while this worker delivers: one deliverer per outbox.
    _lock: super::lock::DeliveryLock,
}

struct Shared {
    store: Arc<Store>,
    configs: Arc<dyn Configs>,
    settings: WorkerSettings,
    observer: Observer,
    stopping: AtomicBool,
    /// A message was dead-lettered since the dispatcher last looked: the
    /// administrator's summary may be due.
    died: AtomicBool,
    /// What the dispatcher waits on `wake` for: a delivery finishing or a
    /// new message.
    flight: Mutex<Flight>,
    wake: Condvar,
}

#[derive(Default)]
struct Flight {
    /// Messages in delivery, by profile.
    by_profile: HashMap<String, u32>,
    /// Something happened since the dispatcher last looked; kept under
    /// the lock so that a wake-up between two looks is not lost.
    woken: bool,
}

impl Flight {
    fn idle(&self) -> bool {
        self.by_profile.values().all(|n| *n == 0)
    }
}

/// The longest the dispatcher sleeps: messages queued by another process
/// (`mailrules send --queue`) are noticed within this.
const LONGEST_SLEEP: Duration = Duration::from_secs(1);

impl Worker {
    /// Queues again what a crash left in delivery, then starts delivering.
    pub fn start(
        store: Arc<Store>,
        configs: Arc<dyn Configs>,
        settings: WorkerSettings,
        observer: Observer,
    ) -> Result<Worker, super::StoreError> {
        // Before recovering: another deliverer's messages in delivery are
        // not ours to send again.
        let lock = super::lock::DeliveryLock::take(store.path())?;
        for (id, message_id) in store.recover(now_ms())? {
            tracing::warn!(
                id,
                message_id,
                "delivery state unknown after a restart (the message was handed to its transport, no outcome recorded): sending it again with the same Message-ID"
            );
        }
        let shared = Arc::new(Shared {
            store,
            configs,
            settings,
            observer,
            stopping: AtomicBool::new(false),
            died: AtomicBool::new(false),
            flight: Mutex::new(Flight::default()),
            wake: Condvar::new(),
        });
        let dispatching = Arc::clone(&shared);
        let dispatcher = std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || dispatch(&dispatching))
            .map_err(super::StoreError::Thread)?;
        Ok(Worker {
            shared,
            dispatcher: Mutex::new(Some(dispatcher)),
            _lock: lock,
        })
    }

    /// A message was queued: look now rather than at the next tick.
    pub fn wake(&self) {
        self.shared.wake_dispatcher();
    }

    /// Claims nothing more and waits for the deliveries in flight.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake_dispatcher();
        self.join_dispatcher();
    }

    /// Waits until the dispatcher ends by itself (`until_empty`).
    pub fn wait(&self) {
        self.join_dispatcher();
    }

    fn join_dispatcher(&self) {
        let dispatcher = self
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(dispatcher) = dispatcher {
            let _ = dispatcher.join();
        }
    }
}

/// Per profile: when the next message may start, under its rate.
type NextStart = HashMap<String, Instant>;

fn dispatch(shared: &Arc<Shared>) {
    let mut next_start = NextStart::new();
    let mut notices = super::notice::Notices::new(&shared.store);
    while !shared.stopping.load(Ordering::SeqCst) {
        let mut sleep = LONGEST_SLEEP;
        match start_due(shared, &mut next_start) {
            Ok(wait) => sleep = sleep.min(wait),
            Err(error) => tracing::error!(error = %error, "outbox: cannot claim messages"),
        }
        notices.send_due(
            shared.configs.as_ref(),
            shared.settings.admin_notice_interval,
            shared.died.swap(false, Ordering::SeqCst),
        );
        if shared.settings.until_empty && is_empty(shared) {
            break;
        }
        let mut flight = shared.flight();
        if !flight.woken && !shared.stopping.load(Ordering::SeqCst) {
            flight = shared
                .wake
                .wait_timeout(flight, sleep)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        flight.woken = false;
    }
    // Deliveries in flight finish; their outcomes are recorded.
    let mut flight = shared.flight();
    while !flight.idle() {
        flight = shared.wake.wait(flight).unwrap_or_else(|e| e.into_inner());
    }
    drop(flight);
    notices.send_due(
        shared.configs.as_ref(),
        shared.settings.admin_notice_interval,
        shared.died.swap(false, Ordering::SeqCst),
    );
}

fn is_empty(shared: &Shared) -> bool {
    shared.flight().idle() && matches!(shared.store.next_due(), Ok(None))
}

/// Starts every due message its profile has room for. Returns how long
/// the dispatcher may sleep before a message or a rate slot falls due (a
/// profile without room is woken by its deliveries finishing).
fn start_due(
    shared: &Arc<Shared>,
    next_start: &mut NextStart,
) -> Result<Duration, super::StoreError> {
    let now = now_ms();
    let mut sleep = match shared.store.next_due_after(now)? {
        Some(due) => Duration::from_millis((due - now).max(1) as u64),
        None => LONGEST_SLEEP,
    };
    for profile in shared.store.due_profiles(now)? {
        let throttle = throttle_of(shared.configs.as_ref(), &profile);
        let busy = shared
            .flight()
            .by_profile
            .get(&profile)
            .copied()
            .unwrap_or(0);
        let mut room = throttle.concurrency.saturating_sub(busy) as usize;
        if let Some(per_minute) = throttle.per_minute {
            let spacing = Duration::from_secs(60) / per_minute.max(1);
            let at = next_start
                .entry(profile.clone())
                .or_insert_with(Instant::now);
            let now = Instant::now();
            if *at > now {
                sleep = sleep.min(*at - now);
                continue;
            }
            room = room.min(1);
            if room == 1 {
                *at = now + spacing;
                sleep = sleep.min(spacing);
            }
        }
        if room == 0 {
            continue;
        }
        for claimed in shared.store.claim(&profile, room, now)? {
            start(shared, claimed);
        }
    }
    Ok(sleep)
}

fn throttle_of(configs: &dyn Configs, profile: &str) -> Throttle {
    let mut throttle = Throttle::default();
    configs.with_current(&mut |prepared, _, _| {
        if let Some(found) = prepared.loaded.config.profiles.get(profile) {
            throttle = found.throttle;
        }
    });
    throttle
}

fn start(shared: &Arc<Shared>, claimed: Claimed) {
    *shared
        .flight()
        .by_profile
        .entry(claimed.profile.clone())
        .or_default() += 1;
    let delivering = Arc::clone(shared);
    let profile = claimed.profile.clone();
    let spawned = std::thread::Builder::new()
        .name("outbox-send".into())
        .spawn(move || {
            let profile = claimed.profile.clone();
            deliver_and_record(&delivering, claimed);
            delivering.finished(&profile);
        });
    if let Err(error) = spawned {
        // The message stays `sending` and is queued again at the next start.
        tracing::error!(error = %error, "outbox: cannot start a delivery thread");
        shared.finished(&profile);
    }
}

impl Shared {
    fn flight(&self) -> std::sync::MutexGuard<'_, Flight> {
        self.flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_dispatcher(&self) {
        self.flight().woken = true;
        self.wake.notify_all();
    }

    fn finished(&self, profile: &str) {
        let mut flight = self.flight();
        if let Some(n) = flight.by_profile.get_mut(profile) {
            *n = n.saturating_sub(1);
        }
        flight.woken = true;
        drop(flight);
        self.wake.notify_all();
    }
}

/// The outcome of one try.
enum Tried {
    Sent {
        reply: String,
    },
    Failed {
        error: String,
        reply: Option<String>,
        temporary: bool,
        /// The message may have arrived (the connection broke after it was
        /// handed over): retried with the same Message-ID, and counted.
        uncertain: bool,
    },
}

/// One try under the serving configuration: deliver, record the outcome,
/// then store the sent copy if the profile keeps one. The outcome is
/// committed before the copy: a copy that hangs (an IMAP server that does
/// not answer) must not leave a delivered message `sending`, to be sent
/// again after a crash.
fn deliver_and_record(shared: &Shared, claimed: Claimed) {
    let started = Instant::now();
    let mut tried_under_a_config = false;
    shared
        .configs
        .with_current(&mut |prepared, transports, generation| {
            tried_under_a_config = true;
            let (tried, transport, copy) = attempt(prepared, transports, generation, &claimed);
            record(shared, &claimed, &tried, transport, copy.is_some(), started);
            if let Some(copy) = copy {
                store_copy(shared, transports, &claimed, &copy);
            }
        });
    if !tried_under_a_config {
        let tried = Tried::Failed {
            error: "no configuration to deliver with".into(),
            reply: None,
            temporary: true,
            uncertain: false,
        };
        record(shared, &claimed, &tried, None, false, started);
    }
}

/// Commits the outcome of a try (retrying the commit itself while the
/// disk refuses it: the server's answer must not be lost) and reports it.
fn record(
    shared: &Shared,
    claimed: &Claimed,
    tried: &Tried,
    transport: Option<String>,
    copy_due: bool,
    started: Instant,
) {
    let now = now_ms();
    let finish = decide(
        tried,
        claimed,
        transport.clone(),
        copy_due,
        shared.settings.retry,
        now,
    );
    let (outcome, error) = match &finish {
        Finish::Sent { .. } => ("sent", None),
        Finish::Retry { error, .. } => ("retry", Some(error.clone())),
        Finish::Dead { error, .. } => ("dead", Some(error.clone())),
    };
    if let Tried::Failed {
        uncertain: true, ..
    } = tried
    {
        tracing::warn!(
            id = claimed.id,
            message_id = claimed.message_id,
            "delivery state unknown (the connection broke after the message was handed over): it is sent again with the same Message-ID"
        );
    }
    commit_outcome(shared, &claimed.id, finish, now);
    if outcome == "dead" {
        // After the commit: the summary must find this message.
        shared.died.store(true, Ordering::SeqCst);
    }
    (shared.observer)(&Attempted {
        id: claimed.id.clone(),
        message_id: claimed.message_id.clone(),
        profile: claimed.profile.clone(),
        transport,
        outcome,
        attempts: claimed.attempts,
        error,
        seconds: started.elapsed().as_secs_f64(),
    });
}

/// How long to wait before committing an outcome again (a full disk, a
/// locked file).
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// Commits `finish`, trying again while the store refuses: a message the
/// server took and that stays `sending` would be sent again at the next
/// start. Only a stop gives up (then the next start counts it uncertain).
fn commit_outcome(shared: &Shared, id: &str, finish: Finish, now: i64) {
    loop {
        match shared.store.finish(id, finish.clone(), now) {
            Ok(()) => return,
            Err(error) if shared.stopping.load(Ordering::SeqCst) => {
                tracing::error!(id, error = %error, "outbox: cannot record a delivery; stopping, so it counts as uncertain at the next start");
                return;
            }
            Err(error) => {
                tracing::error!(id, error = %error, "outbox: cannot record a delivery; trying again");
                std::thread::sleep(RECORD_RETRY);
            }
        }
    }
}

/// Stores the sent copy and records how that went; it never changes the
/// message's own state.
fn store_copy(
    shared: &Shared,
    transports: &Transports,
    claimed: &Claimed,
    copy: &crate::config::CopyToSent,
) {
    let mut message = claimed.bcc.clone().into_bytes();
    message.extend_from_slice(&claimed.body);
    let report = CopyReport::of(transports.store_copy(copy, &message));
    if let Some(error) = &report.error {
        tracing::warn!(
            id = claimed.id,
            message_id = claimed.message_id,
            error,
            "sent, but its copy was not stored"
        );
    }
    if let Err(error) =
        shared
            .store
            .record_copy(&claimed.id, report.status, report.error.as_deref())
    {
        tracing::error!(id = claimed.id, error = %error, "outbox: cannot record the copy");
    }
}

/// What to record after a try: sent; a temporary failure retried after
/// the backoff, unless that is past the maximum age; or dead.
fn decide(
    tried: &Tried,
    claimed: &Claimed,
    transport: Option<String>,
    copy_due: bool,
    retry: RetrySettings,
    now: i64,
) -> Finish {
    match tried {
        Tried::Sent { reply } => Finish::Sent {
            reply: reply.clone(),
            transport: transport.unwrap_or_default(),
            // Stored next, after this commit.
            copy: copy_due.then(|| ("pending".to_string(), None)),
        },
        Tried::Failed {
            error,
            reply,
            temporary: true,
            uncertain,
        } => {
            // The last try falls at the deadline itself: a message lives
            // its whole --max-age, not only until a retry would pass it.
            let deadline = claimed.age_from.saturating_add(ms(retry.max_age));
            if now < deadline {
                let next_at = now.saturating_add(ms(retry.delay_after(claimed.attempts)));
                return Finish::Retry {
                    next_at: next_at.min(deadline),
                    error: error.clone(),
                    reply: reply.clone(),
                    uncertain: *uncertain,
                    transport,
                };
            }
            Finish::Dead {
                error: format!(
                    "expired: not delivered within {} of being accepted ({} attempts); last error: {error}",
                    humantime::format_duration(retry.max_age),
                    claimed.attempts
                ),
                reply: reply.clone(),
                transport,
            }
        }
        Tried::Failed { error, reply, .. } => Finish::Dead {
            error: error.clone(),
            reply: reply.clone(),
            transport,
        },
    }
}

/// Resolves the message's transport under the serving configuration and
/// hands the stored bytes to it. Returns the outcome, the transport used
/// and, once sent, where its copy goes if the profile keeps one.
fn attempt(
    prepared: &Prepared,
    transports: &Transports,
    generation: u64,
    claimed: &Claimed,
) -> (Tried, Option<String>, Option<crate::config::CopyToSent>) {
    let failed = |error: String, temporary: bool| Tried::Failed {
        error,
        reply: None,
        temporary,
        uncertain: false,
    };
    let context = match request::parse_context(&claimed.context) {
        Ok(context) => context,
        Err(invalid) => return (failed(invalid.problem, false), None, None),
    };
    let config = &prepared.loaded.config;
    let resolution = match resolve::resolve(config, &prepared.request(&context)) {
        Ok(resolution) => resolution,
        // The configuration may be fixed before the message expires.
        Err(error) => {
            let error =
                format!("cannot resolve its transport under generation {generation}: {error}");
            return (failed(error, true), None, None);
        }
    };
    let transport = crate::config::texts::transport(&resolution.effective.transport);
    let envelope = match Envelope::parse(&claimed.envelope).to_lettre() {
        Ok(envelope) => envelope,
        Err(error) => return (failed(error, false), Some(transport), None),
    };
    let sent = transports
        .for_effective(&resolution.effective)
        .and_then(|deliver| {
            deliver.deliver(Outgoing {
                envelope: &envelope,
                bytes: &claimed.body,
                message_id: &claimed.message_id,
            })
        });
    let tried = match sent {
        Ok(receipt) => Tried::Sent {
            reply: receipt.reply,
        },
        Err(error) => Tried::Failed {
            reply: match &error {
                SendError::Rejected { reply, .. } => Some(reply.clone()),
                _ => None,
            },
            temporary: error.is_temporary() || matches!(error, SendError::Uncertain(_)),
            uncertain: matches!(error, SendError::Uncertain(_)),
            error: report::one_line(&error.to_string()),
        },
    };
    let copy = match tried {
        Tried::Sent { .. } => resolution.effective.copy_to_sent.map(|c| c.into_owned()),
        Tried::Failed { .. } => None,
    };
    (tried, Some(transport), copy)
}
