//! One request from resolution to the transport's answer, and the record
//! of what became of it. Shared by `send --batch` (a line of the results
//! file) and the daemon's `POST /v1/send` (the response).

use std::time::Duration;

use serde::Serialize;

use crate::render::{self, RenderError, Rendered};
use crate::resolve::{self, Resolution, ResolveError};
use crate::transport::{CopyOutcome, Outgoing, SendError, Transports};

use super::request::Request;
use super::{CliError, Prepared, message_input_with, report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The server (or MTA, or pickup directory) took the message.
    Sent,
    /// Not sent; `temporary` says whether sending it again later may work.
    Failed,
    /// The connection broke after the whole message was sent: it may have
    /// arrived. Check before sending it again.
    Unknown,
}

/// What became of one request.
#[derive(Debug, Serialize)]
pub struct Delivery {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The server's final reply (or the MTA's exit, or the file written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The template part that failed to render (file:line:column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_at: Option<String>,
    pub attempts: u32,
    /// The copy in the sender's sent folder (`copy_to_sent`), once sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyReport>,
    /// The request field an error is about, to point at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// How it was sent (`smtp host:port (STARTTLS)`), for metrics and logs.
    #[serde(skip)]
    pub transport: Option<String>,
}

/// What became of the copy of a sent message. A failed copy does not make
/// the send fail: the message went out.
#[derive(Debug, Serialize)]
pub struct CopyReport {
    /// `stored` or `failed`.
    pub status: &'static str,
    /// `imap host:port folder `Sent Items``, when stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub attempts: u32,
}

impl CopyReport {
    pub fn of(outcome: CopyOutcome) -> CopyReport {
        match outcome.stored {
            Ok(place) => CopyReport {
                status: "stored",
                stored_in: Some(place),
                error: None,
                hint: None,
                attempts: outcome.attempts,
            },
            Err(error) => CopyReport {
                status: "failed",
                stored_in: None,
                error: Some(report::one_line(&error.to_string())),
                hint: error.hint(),
                attempts: outcome.attempts,
            },
        }
    }
}

/// How temporary failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub retries: u32,
    pub first_delay: Duration,
}

impl RetryPolicy {
    pub const ONCE: RetryPolicy = RetryPolicy {
        retries: 0,
        first_delay: Duration::ZERO,
    };
}

impl Delivery {
    pub(crate) fn new() -> Delivery {
        Delivery {
            status: Status::Failed,
            temporary: None,
            message_id: None,
            profile: None,
            reply: None,
            error: None,
            hint: None,
            template_at: None,
            attempts: 0,
            copy: None,
            field: None,
            transport: None,
        }
    }

    /// A request that is not valid: nothing was tried.
    pub fn invalid(problem: String, field: Option<String>) -> Delivery {
        Delivery {
            temporary: Some(false),
            error: Some(problem),
            field,
            ..Delivery::new()
        }
    }

    pub(crate) fn fail(&mut self, error: &CliError) {
        let send_error = match error {
            CliError::Send(send) => Some(send),
            _ => None,
        };
        self.status = match send_error {
            Some(SendError::Uncertain(_)) => Status::Unknown,
            _ => Status::Failed,
        };
        if self.status == Status::Failed {
            self.temporary = Some(send_error.is_some_and(SendError::is_temporary));
        }
        if let Some(SendError::Rejected { reply, .. }) = send_error {
            self.reply = Some(reply.clone());
        }
        self.error = Some(report::one_line(&error.to_string()));
        self.hint = report::hint(error);
        if let CliError::Render(render) = error {
            self.template_at = render.location().map(ToString::to_string);
        }
        self.field = field_of(error).map(str::to_string);
    }
}

/// Resolves, renders and delivers one request under `prepared`, retrying
/// temporary failures as `policy` says.
pub fn deliver(
    prepared: &Prepared,
    transports: &Transports,
    request: Request,
    policy: RetryPolicy,
) -> Delivery {
    let mut delivery = Delivery::new();
    if let Err(error) = try_deliver(prepared, transports, request, policy, &mut delivery) {
        delivery.fail(&error);
    }
    delivery
}

fn try_deliver(
    prepared: &Prepared,
    transports: &Transports,
    request: Request,
    policy: RetryPolicy,
    delivery: &mut Delivery,
) -> Result<(), CliError> {
    let resolution =
        resolve::resolve(&prepared.loaded.config, &prepared.request(&request.context))?;
    delivery.profile = Some(resolution.profile.id.to_string());
    let input = message_input_with(&request.message, request.data)?;
    let rendered = render::render(&resolution, &input)?;
    transmit(transports, &resolution, &rendered, policy, delivery)
}

/// Hands a rendered message to its transport (retrying as `policy`
/// says), then stores its copy when the profile keeps one.
pub(crate) fn transmit(
    transports: &Transports,
    resolution: &Resolution<'_>,
    rendered: &Rendered,
    policy: RetryPolicy,
    delivery: &mut Delivery,
) -> Result<(), CliError> {
    delivery.profile = Some(resolution.profile.id.to_string());
    delivery.transport = Some(crate::config::texts::transport(
        &resolution.effective.transport,
    ));
    delivery.message_id = Some(rendered.message_id.clone());
    let deliver = transports.for_effective(&resolution.effective)?;
    let bytes = rendered.bytes();
    let message = Outgoing {
        envelope: rendered.envelope(),
        bytes: &bytes,
        message_id: &rendered.message_id,
    };
    let mut delay = policy.first_delay;
    loop {
        delivery.attempts += 1;
        match deliver.deliver(message) {
            Ok(receipt) => {
                delivery.status = Status::Sent;
                delivery.reply = Some(receipt.reply);
                if let Some(copy) = &resolution.effective.copy_to_sent {
                    let message = rendered.sent_copy(resolution.effective.bcc);
                    delivery.copy = Some(CopyReport::of(transports.store_copy(copy, &message)));
                }
                return Ok(());
            }
            Err(error) if error.is_temporary() && delivery.attempts <= policy.retries => {
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2);
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// The field of a request that an error is about, to point at it.
pub(crate) fn field_of(error: &CliError) -> Option<&'static str> {
    match error {
        CliError::Resolve(ResolveError::Unknown { what, .. }) => Some(what),
        CliError::Resolve(ResolveError::NoTemplate { .. }) => Some("process"),
        CliError::Render(RenderError::MissingVariable { .. }) => Some("data"),
        CliError::Input { .. } => Some("attach"),
        _ => None,
    }
}
