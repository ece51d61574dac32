//! One SMTP connection and one message transaction on it, step by step, so
//! that a failure says how far the transaction got: only a failure before
//! the end-of-data mark was written can be retried without risking a
//! duplicate delivery.

use lettre::address::Envelope;
use lettre::transport::smtp::Error;
use lettre::transport::smtp::client::SmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

/// How far a failed transaction got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// MAIL FROM, RCPT TO or DATA failed: the server has nothing.
    Envelope,
    /// Writing the message failed before its end-of-data mark: the server
    /// cannot have accepted it.
    Body,
    /// The end-of-data mark was (or may have been) written and no reply
    /// came: the server may have accepted the message.
    AfterEndOfData,
}

#[derive(Debug)]
pub struct Failure {
    pub stage: Stage,
    pub error: Error,
}

impl Failure {
    /// The server answered (a 4xx or 5xx reply), so the connection is still
    /// in step and can be reset and reused; 421 means it is closing.
    pub fn connection_usable(&self) -> bool {
        self.error
            .status()
            .is_some_and(|code| code.to_string() != "421")
    }

    /// The connection went away under us: no reply, or 421 ("closing").
    pub fn connection_lost(&self) -> bool {
        !self.connection_usable()
    }
}

/// Sends one message on an open connection: MAIL, RCPT for each envelope
/// recipient, DATA, the message. `bytes` must not end with the CRLF that
/// the end-of-data mark supplies.
pub fn transmit(
    connection: &mut SmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<Response, Failure> {
    let at_envelope = |error| Failure {
        stage: Stage::Envelope,
        error,
    };
    // The composer encodes bodies as 7-bit; declare 8-bit content anyway
    // if some ever slips through and the server understands it.
    let mut parameters = Vec::new();
    let eight_bit = connection
        .server_info()
        .supports_feature(Extension::EightBitMime);
    if !bytes.is_ascii() && eight_bit {
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    connection
        .command(Mail::new(envelope.from().cloned(), parameters))
        .map_err(at_envelope)?;
    for recipient in envelope.to() {
        connection
            .command(Rcpt::new(recipient.clone(), Vec::new()))
            .map_err(at_envelope)?;
    }
    connection.command(Data).map_err(at_envelope)?;

    // lettre writes each item, then the end-of-data mark, then reads the
    // reply. Whether it asked for an item after the last one tells us
    // whether the body was written completely.
    let mut body_written = false;
    let parts = std::iter::once(bytes).chain(std::iter::from_fn(|| {
        body_written = true;
        None
    }));
    let result = connection.message_iter(parts);
    result.map_err(|error| Failure {
        stage: if body_written {
            Stage::AfterEndOfData
        } else {
            Stage::Body
        },
        error,
    })
}

/// Clears a refused transaction so the connection can carry the next one.
pub fn reset(connection: &mut SmtpConnection) -> bool {
    connection.command(Rset).is_ok()
}
