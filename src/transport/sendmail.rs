//! Hand-off to the local MTA: the message on stdin, the envelope as
//! arguments (`-i -f FROM -- RCPT...`; never `-t`, which would read the
//! recipients, and a Bcc, from the headers). The exit code says whether a
//! failure is temporary (`EX_TEMPFAIL`, 75) or permanent (anything else).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::Sendmail;

use super::{Deliver, Outgoing, Receipt, SendError};

/// sysexits.h: "temporary failure, the user is invited to retry".
const EX_TEMPFAIL: i32 = 75;

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
        let shown = self.command.display();
        let from = message
            .envelope
            .from()
            .map_or(String::new(), ToString::to_string);
        let mut child = Command::new(&self.command)
            .args(["-i", "-f", &from, "--"])
            .args(message.envelope.to().iter().map(ToString::to_string))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SendError::Local(format!("cannot run `{shown}`: {e}")))?;
        let written = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(message.bytes);
        let output = child
            .wait_with_output()
            .map_err(|e| SendError::Local(format!("`{shown}` failed: {e}")))?;
        if output.status.success() && written.is_ok() {
            return Ok(Receipt {
                reply: format!("accepted by {shown}"),
            });
        }
        let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let reply = match output.status.code() {
            Some(code) => format!("`{shown}` exited with {code}: {said}"),
            None => format!("`{shown}` was stopped by a signal: {said}"),
        };
        Err(SendError::Rejected {
            permanent: output.status.code() != Some(EX_TEMPFAIL),
            reply,
        })
    }
}
