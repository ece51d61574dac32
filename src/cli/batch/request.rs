//! One line of a batch file: a JSON object with the fields of `send`'s
//! flags, checked as strictly as the flags are.

use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use serde::Deserialize;

use super::super::args::{parse_date, parse_language, parse_mailbox, parse_message_id};
use super::super::{ContextArgs, MessageArgs};

/// A line as written. Unknown fields are errors: a misspelt `cc` must not
/// quietly drop a recipient.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: Option<String>,
    administration: String,
    user: String,
    process: Option<String>,
    language: Option<String>,
    template: Option<String>,
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    /// Template variables, inline.
    data: Option<serde_json::Value>,
    /// Files to attach; relative paths are taken from the batch file's directory.
    #[serde(default)]
    attach: Vec<PathBuf>,
    date: Option<String>,
    message_id: Option<String>,
}

/// A checked request, ready to resolve and render.
#[derive(Debug)]
pub struct Request {
    pub id: String,
    pub context: ContextArgs,
    pub message: MessageArgs,
    pub data: serde_json::Value,
}

/// The caller's id for a line, or `line-N` when it gave none.
pub fn id_of(line_number: usize, text: &str) -> String {
    #[derive(Deserialize)]
    struct OnlyId {
        id: Option<String>,
    }
    let object = text.trim_start().starts_with('{');
    object
        .then(|| serde_json::from_str::<OnlyId>(text).ok())
        .flatten()
        .and_then(|l| l.id)
        .unwrap_or_else(|| format!("line-{line_number}"))
}

/// Prefixes a field's problem with its name.
fn field(name: &'static str) -> impl Fn(String) -> String {
    move |problem| format!("`{name}`: {problem}")
}

/// Why a line is not a valid request.
#[derive(Debug)]
pub struct Invalid {
    /// Where in the line, for JSON syntax and type errors.
    pub column: Option<usize>,
    /// What is wrong, naming the field, and what to write.
    pub problem: String,
}

/// Parses one line.
pub fn parse(line_number: usize, text: &str, batch_dir: &Path) -> Result<Request, Invalid> {
    // serde would also take a JSON array as the fields in order: a line
    // must name its fields.
    if !text.trim_start().starts_with('{') {
        return Err(Invalid {
            column: Some(1 + text.len() - text.trim_start().len()),
            problem: "each line is one JSON object such as {\"administration\": \"...\", \"user\": \"...\", \"process\": \"...\", \"to\": [\"...\"]}".into(),
        });
    }
    let line: Line = serde_json::from_str(text).map_err(|e| {
        let mut problem = without_position(&e);
        if e.is_syntax() || e.is_eof() {
            problem.push_str("; each line is one JSON object such as {\"administration\": \"...\", \"user\": \"...\", \"process\": \"...\", \"to\": [\"...\"]}");
        }
        Invalid {
            column: Some(e.column()),
            problem,
        }
    })?;
    check(line, line_number, batch_dir).map_err(|problem| Invalid {
        column: None,
        problem,
    })
}

/// serde_json appends "at line 1 column N"; the column is reported apart.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

/// The checks of the flags, for a parsed line.
fn check(line: Line, line_number: usize, batch_dir: &Path) -> Result<Request, String> {
    if line.to.is_empty() {
        return Err("`to`: give at least one recipient".into());
    }
    let mailboxes = |name: &'static str, list: &[String]| -> Result<Vec<Mailbox>, String> {
        list.iter()
            .map(|m| parse_mailbox(m).map_err(field(name)))
            .collect()
    };
    let selector_problem = match (&line.process, &line.template, &line.language) {
        (None, None, _) => Some("give `process` (with `language`) or `template`"),
        (Some(_), Some(_), _) => Some("give `process` or `template`, not both"),
        (None, Some(_), Some(_)) => Some("`language` goes with `process`: a template has its own"),
        _ => None,
    };
    if let Some(problem) = selector_problem {
        return Err(problem.into());
    }
    let data = match line.data {
        None => serde_json::Value::Object(Default::default()),
        Some(object @ serde_json::Value::Object(_)) => object,
        Some(_) => return Err("`data`: write the template variables as a JSON object".into()),
    };
    Ok(Request {
        id: line.id.unwrap_or_else(|| format!("line-{line_number}")),
        context: ContextArgs {
            administration: line.administration,
            user: line.user,
            process: line.process,
            language: line
                .language
                .map(|l| parse_language(&l).map_err(field("language")))
                .transpose()?,
            template: line.template,
            // The batch's override is loaded once, with the configuration.
            transport_override: None,
        },
        message: MessageArgs {
            to: mailboxes("to", &line.to)?,
            cc: mailboxes("cc", &line.cc)?,
            data: None,
            attach: line.attach.iter().map(|p| batch_dir.join(p)).collect(),
            date: line
                .date
                .map(|d| parse_date(&d).map_err(field("date")))
                .transpose()?,
            message_id: line
                .message_id
                .map(|m| parse_message_id(&m).map_err(field("message_id")))
                .transpose()?,
        },
        data,
    })
}
