//! What became of each request: one JSON line per request in the results
//! file (flushed as it completes, so an interrupted batch still tells what
//! went out), and the summary at the end.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::super::{CliError, report};
use super::request::Invalid;
use crate::transport::SendError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The server (or MTA, or pickup directory) took the message.
    Sent,
    /// Not sent; `temporary` says whether sending it again later may work.
    Failed,
    /// The connection broke after the whole message was sent: it may have
    /// arrived. Check before sending it again.
    Unknown,
}

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
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The server's final reply (or the MTA's exit, or the file written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The template part that failed to render (file:line:column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_at: Option<String>,
    pub attempts: u32,
}

impl Outcome {
    pub fn new(line: usize, id: String) -> Outcome {
        Outcome {
            line,
            column: None,
            id,
            status: Status::Failed,
            temporary: None,
            message_id: None,
            profile: None,
            reply: None,
            error: None,
            hint: None,
            template_at: None,
            attempts: 0,
        }
    }

    /// A line that is not a valid request.
    pub fn invalid(line: usize, id: String, invalid: Invalid) -> Outcome {
        let mut outcome = Outcome::new(line, id);
        outcome.column = invalid.column;
        outcome.temporary = Some(false);
        outcome.error = Some(invalid.problem);
        outcome
    }

    pub fn fail(&mut self, error: &CliError) {
        let send_error = match error {
            CliError::Send(send) => Some(send),
            _ => None,
        };
        self.status = match send_error {
            Some(SendError::Uncertain(_)) => Status::Unknown,
            _ => Status::Failed,
        };
        if self.status == Status::Failed {
            self.temporary = Some(send_error.is_some_and(SendError::is_temporary));
        }
        if let Some(SendError::Rejected { reply, .. }) = send_error {
            self.reply = Some(reply.clone());
        }
        self.error = Some(report::one_line(&error.to_string()));
        self.hint = report::hint(error);
        if let CliError::Render(render) = error {
            self.template_at = render.location().map(ToString::to_string);
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
        match outcome.status {
            Status::Sent => self.sent += 1,
            Status::Failed => self.failed += 1,
            Status::Unknown => self.unknown += 1,
        }
        if outcome.status != Status::Sent && self.shown.len() < FAILURES_SHOWN {
            let column = outcome.column.map(|c| format!(":{c}")).unwrap_or_default();
            let mut text = format!(
                "{}{column} ({}): {}",
                outcome.line,
                report::one_line(&outcome.id),
                report::one_line(outcome.error.as_deref().unwrap_or_default())
            );
            if let Some(at) = &outcome.template_at {
                text.push_str(&format!("\n  --> {at}"));
            }
            if let Some(hint) = &outcome.hint {
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
