//! `mailrules preview`: the exact bytes `send` would transmit, on stdout;
//! the envelope (which holds the BCC) and the language as notes on stderr.

use std::io::Write;
use std::path::Path;

use crate::render;
use crate::resolve;

use super::{CliError, ConfigSource, ContextArgs, MessageArgs, Prepared, message_input};

pub fn run(
    source: &ConfigSource,
    context: &ContextArgs,
    message: &MessageArgs,
    html_out: Option<&Path>,
) -> Result<u8, CliError> {
    let prepared = Prepared::load(source, context.transport_override.as_deref())?;
    let resolution = resolve::resolve(&prepared.loaded.config, &prepared.request(context))?;
    let rendered = render::render(&resolution, &message_input(message)?)?;
    let envelope = rendered.envelope();
    eprintln!(
        "envelope: from {} to {}",
        envelope
            .from()
            .map_or("<>".to_string(), ToString::to_string),
        envelope
            .to()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(path) = html_out {
        let Some(html) = &rendered.bodies.html else {
            return Err(CliError::Usage(
                "the message has no HTML part (the template has no `html`, or the profile has `html: false`)".into(),
            ));
        };
        std::fs::write(path, html).map_err(|error| CliError::Output {
            path: path.to_path_buf(),
            error,
        })?;
        eprintln!("html: written to {}", path.display());
    }
    if let Some(language) = &rendered.language {
        eprintln!("language: {language}");
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = stdout.write_all(&rendered.bytes());
    Ok(0)
}
