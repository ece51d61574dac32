//! `mailrules send`: resolve, compose, deliver. Nothing is reported as sent
//! unless the transport confirmed it.

use crate::config::texts;
use crate::render;
use crate::resolve;
use crate::transport::{self, CopyOutcome, Outgoing, Transports};

use super::{CliError, ConfigSource, ContextArgs, MessageArgs, Prepared, message_input, report};

pub fn run(
    source: &ConfigSource,
    context: &ContextArgs,
    message: &MessageArgs,
) -> Result<u8, CliError> {
    let prepared = Prepared::load(source, context.transport_override.as_deref())?;
    let resolution = resolve::resolve(&prepared.loaded.config, &prepared.request(context))?;
    let rendered = render::render(&resolution, &message_input(message)?)?;
    let deliver = transport::connect(&resolution.effective)?;
    let bytes = rendered.bytes();
    let receipt = deliver.deliver(Outgoing {
        envelope: rendered.envelope(),
        bytes: &bytes,
        message_id: &rendered.message_id,
    })?;
    println!(
        "sent {} with profile `{}` via {}: {}",
        rendered.message_id,
        resolution.profile.id,
        texts::transport(&resolution.effective.transport),
        receipt.reply
    );
    if let Some(copy) = &resolution.effective.copy_to_sent {
        let message = rendered.sent_copy(resolution.effective.bcc);
        report_copy(&Transports::default().store_copy(copy, &message));
    }
    Ok(0)
}

/// The copy's fate, after the send's: a failed copy is a warning, since
/// the message went out (exit 0).
fn report_copy(outcome: &CopyOutcome) {
    let tries = match outcome.attempts {
        1 => String::new(),
        n => format!(" (attempt {n})"),
    };
    match &outcome.stored {
        Ok(place) => println!("copy stored in {place}{tries}"),
        Err(error) => {
            eprintln!(
                "warning: the message was sent, but its copy was not stored after {} attempt(s): {}",
                outcome.attempts,
                report::one_line(&error.to_string())
            );
            if let Some(hint) = error.hint() {
                eprintln!("  = hint: {hint}");
            }
        }
    }
}
