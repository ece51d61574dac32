//! The configuration the daemon serves, and how it is replaced. A new
//! generation is built completely (files, schema, semantics, templates,
//! transport override) before one atomic swap; a request takes the current
//! generation once and keeps it to the end, so it never sees two configs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::{ConfigSource, Prepared};
use crate::config::{self, Diagnostic, LoadError};
use crate::load;
use crate::transport::Transports;

use super::metrics::Metrics;

/// One loaded configuration, numbered from 1 in the order applied.
pub struct Generation {
    pub number: u64,
    /// SHA-256 over the configuration files (paths and contents).
    pub hash: String,
    pub loaded_at: SystemTime,
    pub prepared: Prepared,
    /// Open connections of this generation's transports. Replaced by a
    /// forced reload even when the files are unchanged, so that rotated
    /// secrets are read again and a refused login is tried anew.
    pub transports: ArcSwap<Transports>,
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A file event, after the quiet period.
    Watch,
    /// The periodic content check found the files changed.
    Recheck,
    /// SIGHUP.
    Signal,
    /// `POST /v1/reload`.
    Api,
}

impl Trigger {
    /// Asked for by an operator: always loads, and renews the connections.
    fn name(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Recheck => "recheck",
            Trigger::Signal => "signal",
            Trigger::Api => "api",
        }
    }

    fn is_forced(self) -> bool {
        matches!(self, Trigger::Signal | Trigger::Api)
    }
}

/// The named result of a reload.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The new configuration is serving.
    Applied { generation: u64, hash: String },
    /// The new configuration is invalid; `serving` keeps serving.
    Rejected {
        serving: u64,
        /// Of the files that were rejected (none when they could not be
        /// read), to report them only once.
        rejected_hash: Option<String>,
        diagnostics: Vec<Diagnostic>,
    },
    /// The files hold what is already serving.
    Unchanged { generation: u64, hash: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Unchanged { .. } => "unchanged",
        }
    }
}

/// The last reload, for `GET /v1/config`.
#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    pub trigger: Trigger,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The serving generation and the machinery to replace it.
pub struct Live {
    source: ConfigSource,
    transport_override: Option<PathBuf>,
    current: ArcSwap<Generation>,
    last_reload: Mutex<Option<LastReload>>,
    /// One reload at a time: the watcher, SIGHUP and the API may ask at once.
    reloading: Mutex<()>,
    metrics: Arc<Metrics>,
}

/// Files read and hashed, not yet checked.
struct Candidate {
    texts: Vec<(PathBuf, String)>,
    root: PathBuf,
    hash: String,
}

impl Live {
    /// Loads the first generation; an invalid configuration is an error,
    /// so that the daemon does not start.
    pub fn start(
        source: ConfigSource,
        transport_override: Option<PathBuf>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LoadError> {
        let candidate = read(&source.path, transport_override.as_deref())?;
        let prepared = prepare(&source, transport_override.as_deref(), &candidate)?;
        let first = generation(1, candidate.hash, prepared);
        Ok(Live {
            source,
            transport_override,
            current: ArcSwap::from_pointee(first),
            last_reload: Mutex::new(None),
            reloading: Mutex::new(()),
            metrics,
        })
    }

    /// The generation serving now; keep it for the whole request.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    pub fn last_reload(&self) -> Option<LastReload> {
        self.last_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a reload would tell something new: the files differ from
    /// what serves and from what was last rejected (reported already), or
    /// they are back to what serves after a rejection (the reload then
    /// records `unchanged` and clears the alert). The periodic check.
    pub fn changed_on_disk(&self) -> bool {
        let Ok(candidate) = read(&self.source.path, self.transport_override.as_deref()) else {
            // Unreadable files are a change worth a reload and its report,
            // unless that report was given already.
            return !matches!(
                self.last_reload().map(|r| r.outcome),
                Some(Outcome::Rejected {
                    rejected_hash: None,
                    ..
                })
            );
        };
        let last_rejected = matches!(
            self.last_reload().map(|r| r.outcome),
            Some(Outcome::Rejected { .. })
        );
        if candidate.hash == self.current().hash {
            return last_rejected;
        }
        !self.was_rejected(&candidate.hash)
    }

    fn was_rejected(&self, hash: &str) -> bool {
        matches!(
            self.last_reload().map(|r| r.outcome),
            Some(Outcome::Rejected { rejected_hash: Some(rejected), .. }) if rejected == hash
        )
    }

    /// Builds a new generation from the files and swaps it in if it is
    /// valid. Blocking: run it off the async workers.
    pub fn reload(&self, trigger: Trigger) -> Outcome {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        let outcome = match read(&self.source.path, self.transport_override.as_deref()) {
            Err(error) => rejected(&current, None, error),
            Ok(candidate) if candidate.hash == current.hash && !trigger.is_forced() => {
                Outcome::Unchanged {
                    generation: current.number,
                    hash: candidate.hash,
                }
            }
            Ok(candidate) if candidate.hash == current.hash => {
                // A forced reload of the same files: re-check them (a secret
                // may have gone), then start afresh with the connections.
                match prepare(&self.source, self.transport_override.as_deref(), &candidate) {
                    Ok(_) => {
                        current.transports.store(Arc::default());
                        Outcome::Unchanged {
                            generation: current.number,
                            hash: candidate.hash,
                        }
                    }
                    Err(error) => rejected(&current, Some(candidate.hash), error),
                }
            }
            Ok(candidate) => {
                match prepare(&self.source, self.transport_override.as_deref(), &candidate) {
                    Ok(prepared) => {
                        let next = generation(current.number + 1, candidate.hash, prepared);
                        let outcome = Outcome::Applied {
                            generation: next.number,
                            hash: next.hash.clone(),
                        };
                        self.current.store(Arc::new(next));
                        outcome
                    }
                    Err(error) => rejected(&current, Some(candidate.hash), error),
                }
            }
        };
        let mut last = self.last_reload.lock().unwrap_or_else(|e| e.into_inner());
        let reported_already = matches!(
            (&outcome, last.as_ref().map(|l| &l.outcome)),
            (
                Outcome::Rejected { rejected_hash: now, .. },
                Some(Outcome::Rejected { rejected_hash: before, .. }),
            ) if now == before
        );
        if !reported_already || trigger.is_forced() {
            log(trigger, &outcome);
        }
        self.metrics.reload(&outcome);
        *last = Some(LastReload {
            at: SystemTime::now(),
            trigger,
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// One log event per reload; a rejection carries every diagnostic.
fn log(trigger: Trigger, outcome: &Outcome) {
    match outcome {
        Outcome::Applied { generation, hash } => {
            tracing::info!(trigger = trigger.name(), generation, hash = %hash, "configuration applied");
        }
        Outcome::Unchanged { generation, .. } => {
            tracing::info!(
                trigger = trigger.name(),
                generation,
                "configuration unchanged"
            );
        }
        Outcome::Rejected {
            serving,
            diagnostics,
            ..
        } => {
            // The errors only: warnings (unset secrets, send-as) would
            // bury the reason; GET /v1/config lists them all.
            let errors: Vec<String> = diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(crate::cli::report::diagnostic)
                .collect();
            tracing::error!(
                trigger = trigger.name(),
                serving,
                errors = %errors.concat(),
                warnings = diagnostics.len() - errors.len(),
                "configuration rejected; the previous one keeps serving"
            );
        }
    }
}

pub fn rfc3339<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*at))
}

fn generation(number: u64, hash: String, prepared: Prepared) -> Generation {
    Generation {
        number,
        hash,
        loaded_at: SystemTime::now(),
        prepared,
        transports: ArcSwap::default(),
    }
}

fn rejected(current: &Generation, hash: Option<String>, error: LoadError) -> Outcome {
    let mut diagnostics = match error {
        LoadError::Invalid { diagnostics } => diagnostics,
        // A file that vanished between listing and reading (a checkout in
        // progress) is reported like any other problem with the files.
        io => vec![Diagnostic::error(None, "", io.to_string()).with_hint(
            "the files are read again on their next change; fix the file or its permissions",
        )],
    };
    // The errors are why it was rejected: they come first, the warnings
    // (unset secrets, send-as) after them.
    diagnostics.sort_by_key(|d| !d.is_error());
    Outcome::Rejected {
        serving: current.number,
        rejected_hash: hash,
        diagnostics,
    }
}

/// The configuration files and their hash, which covers the transport
/// override file too: an edited override is a change to apply.
fn read(path: &Path, transport_override: Option<&Path>) -> Result<Candidate, LoadError> {
    let (texts, root) = config::read_files(path)?;
    let mut hasher = Sha256::new();
    if let Some(file) = transport_override {
        // Unreadable: hashed as empty; loading it reports the problem.
        let text = config::read_regular_file(file, 1 << 20).unwrap_or_default();
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(&text);
    }
    for (file, text) in &texts {
        let relative = file.strip_prefix(&root).unwrap_or(file);
        // Lengths first, so that no two different file sets hash alike.
        let name = relative.to_string_lossy();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    let hash = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Candidate { texts, root, hash })
}

/// The complete check `validate` does, plus the transport override.
fn prepare(
    source: &ConfigSource,
    transport_override: Option<&Path>,
    candidate: &Candidate,
) -> Result<Prepared, LoadError> {
    let loaded = load::load_texts(candidate.texts.clone(), &candidate.root, source.options)?;
    let transport_override = transport_override
        .map(|file| config::load_transport_override(file, source.options))
        .transpose()?;
    Ok(Prepared {
        loaded,
        transport_override,
    })
}
