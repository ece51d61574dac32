//! Config unit tests (`mailrules test`): YAML files of cases, each a request
//! context with the resolution it must give and, optionally, a stored
//! preview (`.eml`) the rendered message must equal byte for byte. The
//! format is documented in `docs/testing.md`.

mod read;

pub use read::read;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::config::{self, Config, Location, Transport, parse_mailbox, same_address};
use crate::render::{self, MessageInput};
use crate::resolve::{self, Request, Resolution, TemplateSelector};

/// Largest stored preview read back (a message with attachments at their limit).
const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;

/// The Date of every stored preview, so that snapshots are stable.
pub const SNAPSHOT_DATE: &str = "2026-01-01T09:00:00Z";

/// One test file, read and checked for shape.
#[derive(Debug)]
pub struct TestFile {
    pub path: PathBuf,
    pub cases: Vec<Case>,
}

#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub at: Location,
    pub administration: String,
    pub user: String,
    pub process: Option<String>,
    pub language: Option<String>,
    pub template: Option<String>,
    /// Expected values by field, each with where the test file states it.
    pub expect: Vec<(String, Value, Location)>,
    pub preview: Option<Preview>,
}

#[derive(Debug)]
pub struct Preview {
    pub to: Vec<String>,
    pub data: Option<PathBuf>,
    pub snapshot: PathBuf,
    pub at: Location,
}

/// A problem with a test file itself (exit 2), with its place.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {message}")]
pub struct TestFileError {
    pub location: String,
    pub message: String,
}

/// What a case found.
#[derive(Debug)]
pub enum Finding {
    /// An expected value differs.
    Mismatch {
        field: String,
        expected: String,
        got: String,
        at: Location,
    },
    /// The context does not resolve or render.
    Error { message: String, at: Location },
    /// The rendered preview differs from the stored one: a unified diff.
    SnapshotDiffers { diff: String, at: Location },
    /// No stored preview yet.
    SnapshotMissing { path: PathBuf, at: Location },
    /// `--update-snapshots` wrote the preview.
    SnapshotWritten { path: PathBuf },
    /// The run cannot go on as asked (a snapshot cannot be written): exit 2.
    Fatal { message: String },
}

impl Finding {
    pub fn is_failure(&self) -> bool {
        !matches!(self, Finding::SnapshotWritten { .. })
    }
}

/// Runs one case against a configuration.
pub fn run_case(config: &Config, case: &Case, update_snapshots: bool) -> Vec<Finding> {
    let selector = match (&case.template, &case.process) {
        (Some(template), _) => TemplateSelector::Template(template),
        (None, Some(process)) => TemplateSelector::Process {
            process,
            language: case.language.as_deref(),
        },
        (None, None) => unreachable!("checked when reading"),
    };
    let request = Request {
        administration: &case.administration,
        user: &case.user,
        selector,
        transport_override: None,
    };
    let resolution = match resolve::resolve(config, &request) {
        Ok(r) => r,
        Err(e) => {
            return vec![Finding::Error {
                message: format!("{e} ({})", e.hint()),
                at: case.at.clone(),
            }];
        }
    };
    let mut findings: Vec<Finding> = case
        .expect
        .iter()
        .filter_map(|(field, expected, at)| compare(&resolution, field, expected, at))
        .collect();
    if let Some(preview) = &case.preview {
        findings.extend(check_preview(&resolution, preview, update_snapshots));
    }
    findings
}

fn compare(r: &Resolution<'_>, field: &str, expected: &Value, at: &Location) -> Option<Finding> {
    let e = &r.effective;
    let (matches, got) = match field {
        "template" => text_equal(expected, &r.template.template.id),
        "profile" => text_equal(expected, &r.profile.id),
        "level" => text_equal(expected, &r.level.to_string()),
        "from" => (address_equal(expected, Some(e.from)), e.from.to_string()),
        "reply_to" => (
            address_equal(expected, e.reply_to),
            e.reply_to
                .as_ref()
                .map_or("(none)".into(), ToString::to_string),
        ),
        "bcc" => {
            // Domains compare without case: lower-case them on both sides.
            let key = |m: &lettre::message::Mailbox| {
                format!(
                    "{}@{}",
                    m.email.user(),
                    m.email.domain().to_ascii_lowercase()
                )
            };
            let got: Vec<String> = e.bcc.iter().map(key).collect();
            let wanted: Vec<String> = match expected {
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|a| parse_mailbox(a).ok())
                    .map(|m| key(&m))
                    .collect(),
                Value::String(one) => parse_mailbox(one)
                    .map(|m| vec![key(&m)])
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            (wanted == got, format!("[{}]", got.join(", ")))
        }
        "transport_host" => {
            let host = match e.transport.as_ref() {
                Transport::Smtp(smtp) => smtp.host.clone(),
                Transport::Sendmail(_) => "sendmail".into(),
                Transport::File(_) => "file".into(),
            };
            text_equal(expected, &host)
        }
        _ => unreachable!("checked when reading"),
    };
    (!matches).then(|| Finding::Mismatch {
        field: field.to_string(),
        expected: shown(expected),
        got,
        at: at.clone(),
    })
}

fn text_equal(expected: &Value, got: &str) -> (bool, String) {
    (expected.as_str() == Some(got), got.to_string())
}

/// An expected address matches on the address, and on the display name when
/// the expectation gives one; `null` expects no address.
fn address_equal(expected: &Value, got: Option<&lettre::message::Mailbox>) -> bool {
    match (expected, got) {
        (Value::Null, None) => true,
        (Value::String(text), Some(got)) => parse_mailbox(text).is_ok_and(|want| {
            same_address(&want.email, &got.email) && (want.name.is_none() || want.name == got.name)
        }),
        _ => false,
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn check_preview(r: &Resolution<'_>, preview: &Preview, update: bool) -> Vec<Finding> {
    let error = |message: String| {
        vec![Finding::Error {
            message,
            at: preview.at.clone(),
        }]
    };
    let to = match preview
        .to
        .iter()
        .map(|a| parse_mailbox(a))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(to) => to,
        Err(e) => return error(e.message),
    };
    let data = match &preview.data {
        Some(path) => match config::load_data(path) {
            Ok(data) => data,
            Err(config::LoadError::Invalid { diagnostics }) => {
                let first = diagnostics.first().map_or(String::new(), |d| {
                    let at = d
                        .location
                        .as_ref()
                        .map_or(String::new(), |at| format!("{at}: "));
                    format!("{at}{}", d.message)
                });
                return error(format!(
                    "data file `{}` is invalid: {first}",
                    path.display()
                ));
            }
            Err(e) => return error(format!("data file `{}`: {e}", path.display())),
        },
        None => Value::Object(Default::default()),
    };
    let stem = preview
        .snapshot
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let input = MessageInput {
        to,
        data,
        date: Some(snapshot_date()),
        message_id: Some(format!("<{stem}@mailrules.test>")),
        ..Default::default()
    };
    let rendered = match render::render(r, &input) {
        Ok(rendered) => String::from_utf8_lossy(&rendered.bytes()).into_owned(),
        Err(e) => return error(e.to_string()),
    };
    let stored = match config::read_regular_file(&preview.snapshot, MAX_SNAPSHOT_BYTES) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                return error(format!(
                    "stored preview `{}` is not text",
                    preview.snapshot.display()
                ));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return error(format!(
                "cannot read stored preview `{}`: {e}",
                preview.snapshot.display()
            ));
        }
    };
    if update && stored.as_deref() != Some(rendered.as_str()) {
        let written = preview
            .snapshot
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&preview.snapshot, &rendered));
        return match written {
            Ok(()) => vec![Finding::SnapshotWritten {
                path: preview.snapshot.clone(),
            }],
            Err(e) => vec![Finding::Fatal {
                message: format!("cannot write `{}`: {e}", preview.snapshot.display()),
            }],
        };
    }
    match stored {
        Some(stored) if stored == rendered => Vec::new(),
        Some(stored) => vec![Finding::SnapshotDiffers {
            diff: unified_diff(&stored, &rendered, &preview.snapshot),
            at: preview.at.clone(),
        }],
        None => vec![Finding::SnapshotMissing {
            path: preview.snapshot.clone(),
            at: preview.at.clone(),
        }],
    }
}

fn snapshot_date() -> SystemTime {
    humantime::parse_rfc3339(SNAPSHOT_DATE)
        .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(0))
}

fn unified_diff(stored: &str, rendered: &str, path: &Path) -> String {
    // CRLF is what is stored; a diff reads better without the CRs.
    let stored = stored.replace("\r\n", "\n");
    let rendered = rendered.replace("\r\n", "\n");
    // A bounded time: a huge changed attachment must not stall the run.
    similar::TextDiff::configure()
        .timeout(Duration::from_secs(2))
        .diff_lines(&stored, &rendered)
        .unified_diff()
        .context_radius(2)
        .header(&format!("{} (stored)", path.display()), "rendered now")
        .to_string()
}
