//! `mailrules send --batch FILE.jsonl`: many messages under one loaded
//! config, sent by a few workers that share the transports (and so reuse
//! SMTP connections). A failed message never stops the others; each
//! request gets one line in the results file, written as it completes.

mod results;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::transport::Transports;

use super::delivery::{self, RetryPolicy};
use super::request::{self, Invalid};
use super::{CliError, ConfigSource, Prepared, SendArgs};
use results::{Outcome, ResultsFile};

pub fn run(source: &ConfigSource, args: &SendArgs) -> Result<u8, CliError> {
    let batch = args.batch.as_deref().expect("batch::run is for --batch");
    let prepared = Prepared::load(source, args.context.transport_override.as_deref())?;
    let text = std::fs::read_to_string(batch).map_err(|error| CliError::Input {
        path: batch.to_path_buf(),
        error,
    })?;
    // A byte order mark, as some Windows tools write, is not JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let batch_dir = batch.parent().unwrap_or(Path::new("."));
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .filter(|(_, line)| !line.trim().is_empty())
        .collect();
    let first_use = first_use_of_ids(&lines);
    let results_path = args
        .results
        .clone()
        .unwrap_or_else(|| default_results_path(batch));
    if same_file(&results_path, batch) {
        return Err(CliError::Usage(format!(
            "--results names the batch file `{}` itself: give the results their own file",
            batch.display()
        )));
    }
    let mut results = ResultsFile::create(&results_path)?;

    let policy = RetryPolicy {
        retries: args.retries.unwrap_or(2),
        first_delay: args.retry_delay.unwrap_or(Duration::from_secs(2)),
    };
    let shared = Shared {
        batch_dir,
        prepared: &prepared,
        transports: Transports::default(),
        policy,
    };
    let progress = progress_bar(lines.len());
    let next = AtomicUsize::new(0);
    let (done, outcomes) = mpsc::channel::<Outcome>();
    let mut tally = results::Tally::default();
    std::thread::scope(|scope| -> Result<(), CliError> {
        for _ in 0..usize::from(args.concurrency.unwrap_or(8))
            .min(lines.len())
            .max(1)
        {
            let done = done.clone();
            let (next, lines, first_use, shared) = (&next, &lines, &first_use, &shared);
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(number, text)) = lines.get(index) else {
                        break;
                    };
                    let outcome = shared.handle(number, text, first_use[index]);
                    if done.send(outcome).is_err() {
                        break; // the writer stopped: the results file failed
                    }
                }
            });
        }
        drop(done);
        for outcome in outcomes {
            progress.inc(1);
            tally.add(&outcome);
            results.write(&outcome)?;
        }
        Ok(())
    })?;
    progress.finish_and_clear();
    tally.report(batch, &results_path);
    Ok(if tally.all_sent() { 0 } else { 1 })
}

/// For each line, the earlier line with the same id, if any: a repeated
/// id is most likely the same invoice twice.
fn first_use_of_ids(lines: &[(usize, &str)]) -> Vec<Option<usize>> {
    let mut seen = std::collections::HashMap::new();
    lines
        .iter()
        .map(|&(number, text)| {
            let id = request::id_of(number, text);
            seen.get(&id).copied().or_else(|| {
                seen.insert(id, number);
                None
            })
        })
        .collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `invoices.jsonl` → `invoices.results.jsonl`, beside it.
fn default_results_path(batch: &Path) -> PathBuf {
    let stem = batch
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    batch.with_file_name(format!("{stem}.results.jsonl"))
}

/// A bar on a terminal; nothing when stderr is a file or a pipe.
fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} sent or failed, {eta} left")
    {
        bar.set_style(style);
    }
    bar
}

/// What every worker uses.
struct Shared<'a> {
    batch_dir: &'a Path,
    prepared: &'a Prepared,
    transports: Transports,
    policy: RetryPolicy,
}

impl Shared<'_> {
    /// One line from text to outcome: parse, resolve, render, deliver (with
    /// retries of temporary failures). `duplicate_of`: an earlier line with
    /// the same id.
    fn handle(&self, number: usize, text: &str, duplicate_of: Option<usize>) -> Outcome {
        if let Some(first) = duplicate_of {
            let problem = format!(
                "the `id` is also on line {first}: not sent, so that one request cannot go out twice; give each request its own id"
            );
            let invalid = Invalid {
                column: request::field_column(text, "id"),
                field: Some("id".into()),
                problem,
            };
            return Outcome::invalid(number, request::id_of(number, text), invalid);
        }
        let request = match request::parse(text, self.batch_dir) {
            Ok(request) => request,
            Err(invalid) => return Outcome::invalid(number, request::id_of(number, text), invalid),
        };
        let id = request
            .id
            .clone()
            .unwrap_or_else(|| format!("line-{number}"));
        let delivery = delivery::deliver(self.prepared, &self.transports, request, self.policy);
        let column = delivery
            .field
            .as_deref()
            .and_then(|name| request::field_column(text, name));
        Outcome {
            line: number,
            column,
            id,
            delivery,
        }
    }
}
