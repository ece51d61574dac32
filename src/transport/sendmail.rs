//! Hand-off to the local MTA: the message on stdin, recipients as arguments
//! (never `-t`, which would read recipients, and a Bcc, from the headers).

use std::path::PathBuf;

use lettre::{SendmailTransport, Transport as _};

use crate::config::Sendmail;

use super::{Deliver, Outgoing, Receipt, SendError};

pub struct SendmailDeliver {
    command: PathBuf,
}

impl SendmailDeliver {
    pub fn new(sendmail: &Sendmail) -> Self {
        SendmailDeliver {
            command: sendmail.command.clone(),
        }
    }
}

impl Deliver for SendmailDeliver {
    fn deliver(&self, message: Outgoing<'_>) -> Result<Receipt, SendError> {
        SendmailTransport::new_with_command(self.command.as_os_str())
            .send_raw(message.envelope, message.bytes)
            .map(|()| Receipt {
                reply: format!("accepted by {}", self.command.display()),
            })
            .map_err(|e| SendError::Local(format!("{} failed: {e}", self.command.display())))
    }
}
