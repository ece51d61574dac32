//! Template checks at load time: every part must parse, and a template with
//! `sample_data` must render from it (strict mode) without missing variables.

use crate::config::{self, Config, Diagnostic, Template};

use super::RenderError;
use super::text;

/// Diagnostics for every template of the configuration.
pub fn lint(config: &Config) -> Vec<Diagnostic> {
    config.templates.values().flat_map(lint_template).collect()
}

fn lint_template(template: &Template) -> Vec<Diagnostic> {
    let syntax: Vec<Diagnostic> = text::parts(template)
        .into_iter()
        .filter_map(|(part, source)| {
            let message = text::syntax_error(template, &part, &source.value)?;
            Some(
                Diagnostic::error(
                    Some(source.at.clone()),
                    format!("templates.{}.{part}", template.id),
                    format!("template syntax error: {message}"),
                )
                .with_hint("line numbers count from the first line of this value; see https://docs.rs/minijinja for the syntax"),
            )
        })
        .collect();
    if !syntax.is_empty() {
        return syntax;
    }
    let Some(sample) = &template.sample_data else {
        return Vec::new();
    };
    let warning = |path: String, message: String, hint: &str| {
        vec![Diagnostic::warning(Some(sample.at.clone()), path, message).with_hint(hint)]
    };
    let path = format!("templates.{}.sample_data", template.id);
    let data = match config::load_data(&sample.value) {
        Ok(data) => data,
        Err(e) => {
            return warning(
                path,
                format!("cannot use sample data: {e}"),
                "fix the sample data file",
            );
        }
    };
    let context = super::context(
        &data,
        super::Builtins {
            administration: ("sample", "Sample Administration"),
            user: ("sample", "Sample User"),
            language: template.language.as_ref().map(|l| l.value.as_str()),
        },
    );
    match text::render(template, &context, true, None) {
        Ok(_) => Vec::new(),
        Err(RenderError::MissingVariable {
            part, variable, at, ..
        }) => {
            vec![
                Diagnostic::warning(
                    at,
                    format!("templates.{}.{part}", template.id),
                    format!(
                        "template `{}` ({part}) uses `{variable}`, which sample data `{}` does not have",
                        template.id,
                        sample.value.display()
                    ),
                )
                .with_hint("add it to the sample data, or check the variable's spelling"),
            ]
        }
        Err(other) => warning(
            path,
            other.to_string(),
            "render the template with `mailrules preview` to see why",
        ),
    }
}
