//! A request into the outbox: resolved and rendered under the serving
//! configuration (so that a request that cannot be sent is refused at
//! once, not dead-lettered later), then stored.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::request::Request;
use crate::cli::{CliError, Prepared, message_input_with};
use crate::render;
use crate::resolve;

use super::{Enqueued, Envelope, NewMessage, Store, StoreError, now_ms};

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The request cannot be sent under this configuration (unknown
    /// names, a template error, a header refused).
    #[error(transparent)]
    Message(#[from] CliError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The request's context as stored, to resolve the transport again when
/// the message is delivered.
#[derive(Serialize)]
struct StoredContext<'a> {
    administration: &'a str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a str>,
}

/// What the caller asked for; the same under a repeated idempotency key.
#[derive(Serialize)]
struct Asked<'a> {
    context: &'a StoredContext<'a>,
    to: Vec<String>,
    cc: Vec<String>,
    data: &'a serde_json::Value,
    date: Option<String>,
    message_id: Option<&'a str>,
}

/// Renders `request` under `prepared` (generation `generation`) and
/// commits it to `store`. A repeated idempotency key returns the first
/// message without rendering anything.
pub fn accept(
    store: &Store,
    prepared: &Prepared,
    generation: u64,
    request: Request,
    idempotency_key: Option<String>,
) -> Result<Enqueued, AcceptError> {
    let context = StoredContext {
        administration: &request.context.administration,
        user: &request.context.user,
        process: request.context.process.as_deref(),
        language: request.context.language.as_deref(),
        template: request.context.template.as_deref(),
    };
    let asked = Asked {
        context: &context,
        to: request.message.to.iter().map(ToString::to_string).collect(),
        cc: request.message.cc.iter().map(ToString::to_string).collect(),
        data: &request.data,
        date: request
            .message
            .date
            .map(|d| humantime::format_rfc3339(d).to_string()),
        message_id: request.message.message_id.as_deref(),
    };
    let request_hash = hex(&Sha256::digest(
        serde_json::to_vec(&asked).unwrap_or_default(),
    ));
    if let Some(key) = &idempotency_key
        && let Some(first) = store.find_key(key, &request_hash)?
    {
        return Ok(first);
    }
    let config = &prepared.loaded.config;
    let resolution =
        resolve::resolve(config, &prepared.request(&request.context)).map_err(CliError::from)?;
    let input = message_input_with(&request.message, request.data.clone())?;
    let rendered = render::render(&resolution, &input).map_err(CliError::from)?;
    let message = NewMessage {
        id: uuid::Uuid::new_v4().simple().to_string(),
        idempotency_key,
        request_hash,
        caller_id: request.id.clone(),
        message_id: rendered.message_id.clone(),
        profile: resolution.profile.id.to_string(),
        generation,
        context: serde_json::to_string(&context).unwrap_or_default(),
        envelope: Envelope::of(rendered.envelope()).to_json(),
        bcc: render::bcc_header(resolution.effective.bcc),
        body: rendered.bytes(),
    };
    Ok(store.enqueue(message, now_ms())?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
