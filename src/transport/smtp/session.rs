//! One SMTP connection and one message transaction on it, step by step, so
//! that a failure says how far the transaction got: only a failure before
//! the message was written can be retried without risking a duplicate
//! delivery.

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
    /// The message and its end-of-data mark were (or may have been)
    /// written: unless the server replied, it may have accepted it.
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
/// recipient, DATA, the message. `bytes` has CRLF line ends and must not
/// end with the CRLF that the end-of-data mark supplies.
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
    send_envelope(connection, envelope, parameters).map_err(at_envelope)?;
    connection.command(Data).map_err(at_envelope)?;

    // Once the end-of-data mark may have gone out, a lost connection leaves
    // the outcome unknown; only a reply (4xx, 5xx) says it was refused.
    match std::str::from_utf8(bytes) {
        // One write for message and end mark: lettre's own path writes
        // them apart, and the small second write then waits for the
        // server's delayed ACK (Nagle), about 40 ms per message.
        Ok(text) => connection.command(Content(text)),
        Err(_) => connection.message(bytes),
    }
    .map_err(|error| Failure {
        stage: Stage::AfterEndOfData,
        error,
    })
}

/// The message as DATA carries it: dot-stuffed (a line starting with `.`
/// gets a second one) and ended with the end-of-data mark. `text` has CRLF
/// line ends and no final CRLF (the mark supplies it).
struct Content<'a>(&'a str);

impl std::fmt::Display for Content<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.starts_with('.') {
            f.write_str(".")?;
        }
        let mut lines = self.0.split("\r\n.");
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for rest in lines {
            f.write_str("\r\n..")?;
            f.write_str(rest)?;
        }
        f.write_str("\r\n.\r\n")
    }
}

/// MAIL FROM, then RCPT TO for each envelope recipient.
fn send_envelope(
    connection: &mut SmtpConnection,
    envelope: &Envelope,
    parameters: Vec<MailParameter>,
) -> Result<(), Error> {
    connection.command(Mail::new(envelope.from().cloned(), parameters))?;
    for recipient in envelope.to() {
        connection.command(Rcpt::new(recipient.clone(), Vec::new()))?;
    }
    Ok(())
}

/// MAIL FROM and RCPT TO without DATA, then RSET: nothing is sent.
pub fn try_envelope(connection: &mut SmtpConnection, envelope: &Envelope) -> Result<(), Error> {
    send_envelope(connection, envelope, Vec::new())?;
    connection.command(Rset).map(drop)
}

/// Clears a refused transaction so the connection can carry the next one.
pub fn reset(connection: &mut SmtpConnection) -> bool {
    connection.command(Rset).is_ok()
}

/// `AUTH XOAUTH2` with the token as the initial response (RFC 4954 and
/// Google's/Microsoft's XOAUTH2). A server that refuses it first sends a
/// 334 with a JSON error; the client answers with an empty line and the
/// refusal (535) follows, which is what the caller sees. lettre's own
/// XOAUTH2 gives up at the 334 and loses that reply.
pub fn xoauth2(connection: &mut SmtpConnection, user: &str, token: &str) -> Result<(), Error> {
    use base64::Engine as _;
    let initial = format!("user={user}\x01auth=Bearer {token}\x01\x01");
    let encoded = base64::engine::general_purpose::STANDARD.encode(initial);
    let response = connection.command(Line(&format!("AUTH XOAUTH2 {encoded}")))?;
    if response.has_code(334) {
        connection.command(Line(""))?;
    }
    Ok(())
}

/// One command line as written, ended by CRLF.
struct Line<'a>(&'a str);

impl std::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\r\n", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Content;

    #[test]
    fn lines_starting_with_a_dot_are_stuffed_and_the_end_mark_follows() {
        let text = ".first\r\nplain\r\n.\r\n..two\r\nend.";
        assert_eq!(
            Content(text).to_string(),
            "..first\r\nplain\r\n..\r\n...two\r\nend.\r\n.\r\n"
        );
    }

    #[test]
    fn a_message_without_dots_is_unchanged_but_for_the_end_mark() {
        assert_eq!(Content("a\r\nb").to_string(), "a\r\nb\r\n.\r\n");
    }
}
