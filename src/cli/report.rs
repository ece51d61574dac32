//! Diagnostics and errors for people (rustc style, to stderr) and for
//! machines (JSON).

use std::fmt::Write as _;

use crate::config::{Diagnostic, LoadError};

use super::CliError;

/// One diagnostic in rustc style:
///
/// ```text
/// error: unknown key `reply_too`
///   --> profiles.yaml:12:5 (profiles.billing.reply_too)
///    |
/// 12 |     reply_too: x@y.example
///    |     ^
///    = hint: known keys here: ...
/// ```
pub fn diagnostic(d: &Diagnostic) -> String {
    let mut out = format!("{}: {}\n", d.severity, one_line(&d.message));
    if let Some(at) = &d.location {
        let path = if d.path.is_empty() {
            String::new()
        } else {
            format!(" ({})", d.path)
        };
        let _ = writeln!(out, "  --> {at}{path}");
        if let Some(line) = &d.source_line {
            let number = at.line.to_string();
            let pad = " ".repeat(number.len());
            let caret_pad: String = line
                .chars()
                .take(at.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{number} | {line}");
            let _ = writeln!(out, "{pad} | {caret_pad}^");
        }
    } else if !d.path.is_empty() {
        let _ = writeln!(out, "  --> {}", d.path);
    }
    if let Some(hint) = &d.hint {
        let _ = writeln!(out, "  = hint: {}", one_line(hint));
    }
    out
}

/// Messages quote what the user wrote, which may hold line breaks or other
/// control characters: show them escaped, so that one diagnostic stays one
/// block and nothing can fake another line.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Prints a failed command's error, with its hint, to stderr.
pub fn error(error: &CliError) {
    match error {
        CliError::Failed(inner) => self::error(inner),
        CliError::Load(LoadError::Invalid { diagnostics }) => {
            for d in diagnostics {
                eprint!("{}", diagnostic(d));
            }
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!("error: the configuration has {errors} error(s)");
        }
        CliError::InvalidFile { diagnostics, .. } => {
            for d in diagnostics {
                eprint!("{}", diagnostic(d));
            }
            eprintln!("error: {error}");
        }
        other => {
            eprintln!("error: {other}");
            if let CliError::Render(render) = other
                && let Some(at) = render.location()
            {
                eprintln!("  --> {at}");
            }
            if let Some(hint) = hint(other) {
                eprintln!("  = hint: {hint}");
            }
        }
    }
}

pub(crate) fn hint(error: &CliError) -> Option<String> {
    match error {
        CliError::Resolve(e) => Some(e.hint()),
        CliError::Render(e) => e.hint(),
        CliError::Send(e) => e.hint(),
        CliError::Serve(e) => e.hint(),
        CliError::Outbox(e) => e.hint(),
        _ => None,
    }
}
