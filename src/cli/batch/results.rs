//! What became of each request: one JSON line per request in the results
//! file (flushed as it completes, so an interrupted batch still tells what
//! went out), and the summary at the end.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::super::delivery::{Delivery, Status};
use super::super::request::Invalid;
use super::super::{CliError, report};

/// One line of the results file.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// Line of the batch file.
    pub line: usize,
    /// Column in that line: where the JSON parser stopped, or the field
    /// the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub id: String,
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl Outcome {
    /// A line that is not a valid request.
    pub fn invalid(line: usize, id: String, invalid: Invalid) -> Outcome {
        Outcome {
            line,
            column: invalid.column,
            id,
            delivery: Delivery::invalid(invalid.problem, invalid.field),
        }
    }
}

/// The results file: created new, so that a second run of the same batch
/// cannot overwrite the record of the first.
pub struct ResultsFile {
    path: PathBuf,
    out: BufWriter<File>,
}

impl ResultsFile {
    pub fn create(path: &Path) -> Result<ResultsFile, CliError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|error| {
                if error.kind() == std::io::ErrorKind::AlreadyExists {
                    CliError::Usage(format!(
                        "the results file `{}` exists: it records an earlier run of this batch. Move it away (or pass --results NEW-FILE); send again only what it lists as failed",
                        path.display()
                    ))
                } else {
                    CliError::Output {
                        path: path.to_path_buf(),
                        error,
                    }
                }
            })?;
        Ok(ResultsFile {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    pub fn write(&mut self, outcome: &Outcome) -> Result<(), CliError> {
        let line = serde_json::to_string(outcome).expect("an outcome serializes");
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|error| CliError::Output {
                path: self.path.clone(),
                error,
            })
    }
}

/// Counts for the summary, and the first few failures to show.
#[derive(Default)]
pub struct Tally {
    sent: usize,
    failed: usize,
    unknown: usize,
    shown: Vec<String>,
}

/// Failures printed on stderr; the rest are in the results file.
const FAILURES_SHOWN: usize = 10;

impl Tally {
    pub fn add(&mut self, outcome: &Outcome) {
        let delivery = &outcome.delivery;
        match delivery.status {
            Status::Sent => self.sent += 1,
            Status::Failed => self.failed += 1,
            Status::Unknown => self.unknown += 1,
        }
        if delivery.status != Status::Sent && self.shown.len() < FAILURES_SHOWN {
            let column = outcome.column.map(|c| format!(":{c}")).unwrap_or_default();
            let mut text = format!(
                "{}{column} ({}): {}",
                outcome.line,
                report::one_line(&outcome.id),
                report::one_line(delivery.error.as_deref().unwrap_or_default())
            );
            if let Some(at) = &delivery.template_at {
                text.push_str(&format!("\n  --> {at}"));
            }
            if let Some(hint) = &delivery.hint {
                text.push_str(&format!("\n  = hint: {hint}"));
            }
            self.shown.push(text);
        }
    }

    pub fn all_sent(&self) -> bool {
        self.failed == 0 && self.unknown == 0
    }

    pub fn report(&self, batch: &Path, results: &Path) {
        for failure in &self.shown {
            eprintln!("error: {}:{failure}", batch.display());
        }
        let not_shown = self.failed + self.unknown - self.shown.len();
        if not_shown > 0 {
            eprintln!("… and {not_shown} more failure(s), listed in the results file");
        }
        let unknown = if self.unknown > 0 {
            format!(", {} unknown (may have arrived)", self.unknown)
        } else {
            String::new()
        };
        println!(
            "batch: {} sent, {} failed{unknown}; results in {}",
            self.sent,
            self.failed,
            results.display()
        );
    }
}
