//! `mailrules send`: resolve, compose, deliver. Nothing is reported as sent
//! unless the transport confirmed it.

use crate::config::texts;
use crate::render;
use crate::resolve;
use crate::transport::{self, Outgoing};

use super::{CliError, ConfigSource, ContextArgs, MessageArgs, Prepared, message_input};

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
    Ok(0)
}
