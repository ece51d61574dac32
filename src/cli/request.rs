//! A request as JSON: one line of a batch file, or the body of a request
//! to the daemon. It has the fields of `send`'s flags and is checked as
//! strictly as the flags are.

use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::args::{parse_date, parse_language, parse_mailbox, parse_message_id};
use super::{ContextArgs, MessageArgs};

/// A request as written. Unknown fields are errors: a misspelt `cc` must not
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
    /// The caller's reference, if it gave one.
    pub id: Option<String>,
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

/// Only the context, for `explain`: which message, not its content.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextLine {
    administration: String,
    user: String,
    process: Option<String>,
    language: Option<String>,
    template: Option<String>,
}

/// A problem with one field of a line (or with the line, `field: None`).
struct FieldProblem {
    field: Option<&'static str>,
    problem: String,
}

/// A field's problem, with the field's name in front.
fn field(name: &'static str) -> impl Fn(String) -> FieldProblem {
    move |problem| FieldProblem {
        field: Some(name),
        problem: format!("`{name}`: {problem}"),
    }
}

/// Where `"name":` starts in a line (1-based), to point at a field.
pub fn field_column(text: &str, name: &str) -> Option<usize> {
    let key = format!("\"{name}\"");
    text.match_indices(&key)
        .find(|(at, _)| text[at + key.len()..].trim_start().starts_with(':'))
        .map(|(at, _)| at + 1)
}

/// Why a line is not a valid request.
#[derive(Debug)]
pub struct Invalid {
    /// Where in the line, for JSON syntax and type errors.
    pub column: Option<usize>,
    /// The field the problem is about, as the caller wrote it (`to`, `cc[1]`).
    pub field: Option<String>,
    /// What is wrong, naming the field, and what to write.
    pub problem: String,
}

const EXAMPLE: &str =
    "{\"administration\": \"...\", \"user\": \"...\", \"process\": \"...\", \"to\": [\"...\"]}";

/// Parses one request; relative `attach` paths are taken from `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<Request, Invalid> {
    let line: Line = deserialize(text)?;
    check(line, base_dir).map_err(|p| located(text, p))
}

/// Parses a request for `explain`: the context fields only.
pub fn parse_context(text: &str) -> Result<ContextArgs, Invalid> {
    let line: ContextLine = deserialize(text)?;
    check_context(
        line.administration,
        line.user,
        line.process,
        line.language,
        line.template,
    )
    .map_err(|p| located(text, p))
}

fn located(text: &str, problem: FieldProblem) -> Invalid {
    Invalid {
        column: problem.field.and_then(|name| field_column(text, name)),
        field: problem.field.map(str::to_string),
        problem: problem.problem,
    }
}

/// A JSON object into `T`, naming the field of a type error.
fn deserialize<T: DeserializeOwned>(text: &str) -> Result<T, Invalid> {
    // serde would also take a JSON array as the fields in order: a request
    // must name its fields.
    if !text.trim_start().starts_with('{') {
        return Err(Invalid {
            column: Some(1 + text.len() - text.trim_start().len()),
            field: None,
            problem: format!("each request is one JSON object such as {EXAMPLE}"),
        });
    }
    let mut json = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let mut problem = without_position(inner);
        let mut field = None;
        if inner.is_syntax() || inner.is_eof() {
            problem.push_str(&format!(
                "; each request is one JSON object such as {EXAMPLE}"
            ));
        } else if problem.starts_with("unknown field") || problem.starts_with("missing field") {
            // The message names the field: `missing field `to``.
            field = problem.split('`').nth(1).map(str::to_string);
        } else if path != "." {
            problem = format!("`{path}`: {problem}");
            field = Some(path);
        }
        Invalid {
            column: Some(inner.column()),
            field,
            problem,
        }
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

/// The checks of the context flags: a process (with a language) or a template.
fn check_context(
    administration: String,
    user: String,
    process: Option<String>,
    language: Option<String>,
    template: Option<String>,
) -> Result<ContextArgs, FieldProblem> {
    let selector_problem = match (&process, &template, &language) {
        (None, None, _) => Some((None, "give `process` (with `language`) or `template`")),
        (Some(_), Some(_), _) => Some((Some("template"), "give `process` or `template`, not both")),
        (None, Some(_), Some(_)) => Some((
            Some("language"),
            "`language` goes with `process`: a template has its own",
        )),
        _ => None,
    };
    if let Some((field, problem)) = selector_problem {
        let problem = problem.to_string();
        return Err(FieldProblem { field, problem });
    }
    Ok(ContextArgs {
        administration,
        user,
        process,
        language: language
            .map(|l| parse_language(&l).map_err(field("language")))
            .transpose()?,
        template,
        // A run's override is loaded once, with the configuration.
        transport_override: None,
    })
}

/// The checks of the flags, for a parsed line.
fn check(line: Line, batch_dir: &Path) -> Result<Request, FieldProblem> {
    if line.to.is_empty() {
        return Err(field("to")("give at least one recipient".into()));
    }
    // Counted before the addresses are parsed: a long list is refused
    // cheaply, and by the field it is about.
    let count = line.to.len() + line.cc.len();
    crate::render::check_recipient_count(count, "`to` and `cc` together").map_err(field("to"))?;
    let mailboxes = |name: &'static str, list: &[String]| -> Result<Vec<Mailbox>, FieldProblem> {
        list.iter()
            .map(|m| parse_mailbox(m).map_err(field(name)))
            .collect()
    };
    let data = match line.data {
        None => serde_json::Value::Object(Default::default()),
        Some(object @ serde_json::Value::Object(_)) => object,
        Some(_) => {
            return Err(field("data")(
                "write the template variables as a JSON object".into(),
            ));
        }
    };
    let context = check_context(
        line.administration,
        line.user,
        line.process,
        line.language,
        line.template,
    )?;
    Ok(Request {
        id: line.id,
        context,
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

#[cfg(test)]
mod tests {
    use super::field_column;

    #[test]
    fn a_field_is_found_by_its_key_not_by_an_equal_value() {
        let line = r#"{"id": "to", "to" : ["a@example.com"]}"#;
        assert_eq!(field_column(line, "to"), Some(14));
        assert_eq!(field_column(line, "id"), Some(2));
        assert_eq!(field_column(line, "cc"), None);
    }
}
