//! Delivery: one small trait, one implementation per transport kind.
//! Transports get finished bytes and an envelope; they never compose.

mod file;
mod secret;
mod sendmail;
mod smtp;

use lettre::address::Envelope;

use crate::config::Transport;
use crate::resolve::Effective;

pub use secret::{SecretError, read_secret};

/// A composed message ready to go.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub envelope: &'a Envelope,
    pub bytes: &'a [u8],
    pub message_id: &'a str,
}

/// What the receiving side said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The server's final reply, the MTA's exit, or the file written.
    pub reply: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The server answered with a 4xx (try again later) or 5xx (do not retry).
    #[error("the server refused ({}): {reply}", if *permanent { "permanent" } else { "temporary, try again later" })]
    Rejected { permanent: bool, reply: String },
    /// No answer: connection, TLS or timeout problems.
    #[error("{0}")]
    Connection(String),
    #[error("{0}")]
    Local(String),
}

impl SendError {
    pub fn hint(&self) -> Option<String> {
        match self {
            SendError::Secret(e) => Some(e.hint()),
            SendError::Rejected { reply, .. } if reply.starts_with("535") => {
                Some("the server refused the login: check the account's user name and password".into())
            }
            SendError::Connection(message) if message.contains("certificate") || message.contains("tls") => Some(
                "check `security` (starttls for port 587, tls for 465) and, for a private server, `ca_file`".into(),
            ),
            _ => None,
        }
    }
}

/// Sends one message.
pub trait Deliver {
    fn deliver(&self, message: Outgoing<'_>) -> Result<Receipt, SendError>;
}

/// The transport a resolution selected, with its account.
pub fn connect(effective: &Effective) -> Result<Box<dyn Deliver>, SendError> {
    Ok(match effective.transport.as_ref() {
        Transport::Smtp(smtp) => {
            Box::new(smtp::SmtpDeliver::new(smtp, effective.account.as_deref())?)
        }
        Transport::Sendmail(s) => Box::new(sendmail::SendmailDeliver::new(s)),
        Transport::File(f) => Box::new(file::FileDeliver::new(f)),
    })
}
