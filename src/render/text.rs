//! Template text -> rendered subject and bodies (minijinja, strict mode),
//! with the signature and disclaimer placed after the body.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value;

use crate::config::{Located, Signature, Template};

use super::RenderError;

/// The rendered texts of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bodies {
    pub subject: String,
    /// Extra headers from the template, rendered: (name, value).
    pub headers: Vec<(String, String)>,
    pub text: String,
    /// `None` when the profile sends plain text only or the template has no HTML.
    pub html: Option<String>,
}

/// Renders `template` with `context`; `html` is the profile's HTML switch.
pub fn render(
    template: &Template,
    context: &Value,
    html: bool,
    signature: Option<&Signature>,
) -> Result<Bodies, RenderError> {
    let subject = header_value(template, "Subject", "subject", &template.subject, context)?;
    let headers = template
        .headers
        .iter()
        .map(|(name, value)| {
            let rendered =
                header_value(template, name, &format!("headers.{name}"), value, context)?;
            Ok((name.clone(), rendered))
        })
        .collect::<Result<_, RenderError>>()?;
    let text_body = match &template.text {
        Some(text) => Some(render_part(template, "text", text, context)?),
        None => None,
    };
    let html_body = match &template.html {
        Some(source) => Some(render_part(template, "html", source, context)?),
        None => None,
    };
    let disclaimer = template.disclaimer.as_ref();
    let text = match (text_body, &html_body) {
        (Some(text), _) => text,
        (None, Some(html)) => html_to_text(html),
        (None, None) => unreachable!("the schema requires `text` or `html`"),
    };
    let text = append_text(&text, signature, disclaimer);
    let html = match html_body {
        Some(body) if html => Some(append_html(&body, signature, disclaimer)),
        _ => None,
    };
    Ok(Bodies {
        subject: subject.trim().to_string(),
        headers,
        text,
        html,
    })
}

/// A header value from a template: one line, no control characters (data
/// must never be able to add a header).
fn header_value(
    template: &Template,
    header: &str,
    part: &str,
    source: &Located<String>,
    context: &Value,
) -> Result<String, RenderError> {
    let value = render_part(template, part, source, context)?;
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(RenderError::HeaderLineBreak {
            template: template.id.clone(),
            header: header.to_string(),
        });
    }
    Ok(value)
}

/// The parts of a template that are rendered: (name, source).
pub fn parts(template: &Template) -> Vec<(String, &Located<String>)> {
    let mut parts = vec![("subject".to_string(), &template.subject)];
    parts.extend(template.text.as_ref().map(|t| ("text".to_string(), t)));
    parts.extend(template.html.as_ref().map(|h| ("html".to_string(), h)));
    parts.extend(
        template
            .headers
            .iter()
            .map(|(name, value)| (format!("headers.{name}"), value)),
    );
    parts
}

/// Parses one part without rendering it: a syntax error, if any.
pub fn syntax_error(template: &Template, part: &str, source: &str) -> Option<String> {
    let mut env = environment();
    env.add_template_owned(format!("{}.{part}", template.id), source.to_string())
        .err()
        .map(|e| describe(&e))
}

/// Instructions one template part may execute: a runaway loop ends with
/// an error instead of hanging the sender.
const FUEL: u64 = 5_000_000;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // `debug()` would print the whole template state into a customer's mail.
    env.remove_global("debug");
    env.add_filter("amount", super::locale::amount);
    env.add_filter("date", super::locale::date);
    env.set_formatter(format_value);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// Prints a value into a message. Strict about what a customer would see:
/// `null` ("None"), whole lists or mappings, and control characters other
/// than tab and line breaks are errors, not text.
fn format_value(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let refuse = |what: &str| {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("a template prints {what}"),
        ))
    };
    match value.kind() {
        ValueKind::None | ValueKind::Undefined => return refuse("a null value (\"None\")"),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            return refuse("a whole list or mapping; print one of its fields");
        }
        _ => {}
    }
    if let Some(text) = value.as_str()
        && text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return refuse("text with control characters");
    }
    minijinja::escape_formatter(out, state, value)
}

fn render_part(
    template: &Template,
    part: &str,
    located: &Located<String>,
    context: &Value,
) -> Result<String, RenderError> {
    let mut env = environment();
    let name = format!("{}.{part}", template.id);
    let source = located.value.as_str();
    let at = Some(located.at.clone());
    let error = |error: minijinja::Error| RenderError::Template {
        template: template.id.clone(),
        part: part.to_string(),
        message: describe(&error),
        at: at.clone(),
    };
    env.add_template(&name, source).map_err(error)?;
    let compiled = env.get_template(&name).map_err(error)?;
    compiled.render(context).map_err(|e| {
        // Strict mode says "undefined value" without a name: find which
        // variable the data lacks, so the error can name it.
        let missing = (e.kind() == minijinja::ErrorKind::UndefinedError)
            .then(|| {
                compiled
                    .undeclared_variables(true)
                    .into_iter()
                    .filter(|variable| !has_path(context, variable))
                    .min()
            })
            .flatten();
        match missing {
            Some(variable) => RenderError::MissingVariable {
                template: template.id.clone(),
                part: part.to_string(),
                variable,
                at: at.clone(),
            },
            None => error(e),
        }
    })
}

/// Whether `context` holds `a.b.c`. Names the template defines itself are
/// not reported by minijinja, so everything asked for must come from data.
fn has_path(context: &Value, dotted: &str) -> bool {
    let mut value = context;
    for key in dotted.split('.') {
        match value.get(key) {
            Some(inner) => value = inner,
            None => return BUILTINS.contains(&dotted),
        }
    }
    true
}

/// Globals minijinja provides itself.
const BUILTINS: &[&str] = &["range", "dict", "namespace", "debug", "loop"];

/// minijinja's message without its own "(in name:line)", which names the
/// internal template; the caller gives the YAML location instead.
fn describe(error: &minijinja::Error) -> String {
    let what = error
        .detail()
        .map_or_else(|| error.kind().to_string(), str::to_string);
    match error.line() {
        Some(line) => format!("{what} (line {line} of the value)"),
        None => what,
    }
}

fn append_text(
    body: &str,
    signature: Option<&Signature>,
    disclaimer: Option<&Signature>,
) -> String {
    let mut text = body.trim_end().to_string();
    if let Some(sig) = signature.and_then(|s| s.text.as_deref()) {
        // "-- " on its own line is the standard signature separator.
        text.push_str("\n\n-- \n");
        text.push_str(sig.trim_end());
    }
    if let Some(disclaimer) = disclaimer.and_then(|d| d.text.as_deref()) {
        text.push_str("\n\n");
        text.push_str(disclaimer.trim_end());
    }
    text.push('\n');
    text
}

fn append_html(
    body: &str,
    signature: Option<&Signature>,
    disclaimer: Option<&Signature>,
) -> String {
    let mut html = body.trim_end().to_string();
    for (part, class) in [(signature, "signature"), (disclaimer, "disclaimer")] {
        let Some(part) = part else { continue };
        let fragment = match (&part.html, &part.text) {
            (Some(html), _) => html.trim_end().to_string(),
            (None, Some(text)) => text_to_html(text),
            (None, None) => continue,
        };
        html.push_str(&format!("\n<div class=\"{class}\">{fragment}</div>"));
    }
    html.push('\n');
    html
}

/// Plain text escaped into HTML, line breaks kept.
fn text_to_html(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|line| {
            line.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        })
        .collect::<Vec<_>>()
        .join("<br>\n")
}

fn html_to_text(html: &str) -> String {
    html2text::from_read(html.as_bytes(), 78).unwrap_or_else(|_| html.to_string())
}
