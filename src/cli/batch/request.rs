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
    check(line, line_number, batch_dir).map_err(|p| Invalid {
        column: p.field.and_then(|name| field_column(text, name)),
        problem: p.problem,
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
fn check(line: Line, line_number: usize, batch_dir: &Path) -> Result<Request, FieldProblem> {
    if line.to.is_empty() {
        return Err(field("to")("give at least one recipient".into()));
    }
    let mailboxes = |name: &'static str, list: &[String]| -> Result<Vec<Mailbox>, FieldProblem> {
        list.iter()
            .map(|m| parse_mailbox(m).map_err(field(name)))
            .collect()
    };
    let selector_problem = match (&line.process, &line.template, &line.language) {
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
    let data = match line.data {
        None => serde_json::Value::Object(Default::default()),
        Some(object @ serde_json::Value::Object(_)) => object,
        Some(_) => {
            return Err(field("data")(
                "write the template variables as a JSON object".into(),
            ));
        }
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
