//! Delivery: one small trait, one implementation per transport kind.
//! Transports get finished bytes and an envelope; they never compose.

mod file;
mod imap;
mod secret;
mod sendmail;
mod smtp;
mod token;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::address::Envelope;

use crate::config::{Account, CopyToSent, Login, TokenSource, Transport};
use token::Tokens;

use crate::resolve::Effective;
use smtp::SmtpDeliver;

pub use imap::ImapError;
pub use secret::{SecretError, read_secret};
pub use token::TokenError;

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

/// How every transport (SMTP, IMAP, the token endpoint) words a read
/// that ran past its limit: the OS says EAGAIN, libraries "timeout: global".
fn no_answer_within(limit: Duration) -> String {
    format!("timed out: no answer within {} s", limit.as_secs_f64())
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
    /// The connection failed after the whole message was sent: it may have
    /// been delivered. Never retried automatically.
    #[error("{0}")]
    Uncertain(String),
    #[error("{0}")]
    Local(String),
    /// No XOAUTH2 token could be had from its source.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The server refused the XOAUTH2 login (the token was issued, but it
    /// does not open this mailbox).
    #[error("the server refused the XOAUTH2 login (permanent): {reply}")]
    TokenRefused { reply: String },
}

impl SendError {
    /// Whether the same message may be sent again later: a 4xx reply or a
    /// connection problem. Never for a 5xx, nor when the message may have
    /// arrived already.
    pub fn is_temporary(&self) -> bool {
        match self {
            SendError::Rejected { permanent, .. } => !permanent,
            SendError::Connection(_) => true,
            SendError::Token(e) => e.is_temporary(),
            SendError::Secret(_)
            | SendError::Uncertain(_)
            | SendError::Local(_)
            | SendError::TokenRefused { .. } => false,
        }
    }

    /// What to check, for the failures mail admins meet again and again.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            SendError::Secret(e) => return Some(e.hint()),
            SendError::Rejected { reply, .. } => rejection_hint(reply)?,
            SendError::Connection(message) => connection_hint(message)?,
            SendError::Uncertain(_) => {
                "look for the Message-ID in the recipient's mailbox or the server's log before sending it again"
            }
            SendError::Local(_) => return None,
            SendError::Token(e) => return Some(e.hint()),
            SendError::TokenRefused { .. } => {
                "the token was issued but the server does not accept it for this login: `username` must be the mailbox the token is for; for Microsoft 365 app-only, the app needs SMTP.SendAsApp with admin consent, an Exchange service principal (New-ServicePrincipal) and FullAccess or SendAs on the mailbox; for Gmail, the token needs the scope https://mail.google.com/"
            }
        };
        Some(hint.to_string())
    }
}

fn rejection_hint(reply: &str) -> Option<&'static str> {
    let has = |code: &str| reply.contains(code);
    Some(if has("5.7.139") {
        "SMTP AUTH is disabled for this Microsoft 365 tenant or mailbox: enable Authenticated SMTP for the mailbox (or the tenant), or use OAuth"
    } else if has("5.7.60") || has("5.2.252") || reply.contains("SendAsDenied") {
        "the login has no right to send as this sender: grant it Send As on the sender's mailbox, or send from the login's own address"
    } else if reply.starts_with("535") {
        "the server refused the login: check the account's user name and password"
    } else if reply.starts_with("530") {
        "the server wants a login: add `auth:` to the profile (over STARTTLS or TLS)"
    } else if reply.starts_with('4') {
        "a temporary refusal: the same message may be sent again later"
    } else {
        return None;
    })
}

fn connection_hint(message: &str) -> Option<&'static str> {
    let message = message.to_ascii_lowercase();
    Some(if message.contains("certificate") {
        "the server's certificate is not trusted: for a private server, add its CA as `ca_file`"
    } else if message.contains("tls")
        || message.contains("corrupt")
        || message.contains("invalidcontenttype")
    {
        "the TLS mode may not match the port: `security: starttls` for port 587, `security: tls` for port 465"
    } else if message.contains("timed out") || message.contains("temporarily unavailable") {
        "no answer in time: on port 465 the server waits for TLS first (`security: tls`); otherwise check the host, port and firewall"
    } else if message.contains("refused") {
        "nothing listens there: check `host` and `port`"
    } else {
        return None;
    })
}

/// Sends one message. Shared by the workers of a batch.
pub trait Deliver: Send + Sync {
    fn deliver(&self, message: Outgoing<'_>) -> Result<Receipt, SendError>;
}

/// Checks that a transport can be used, without sending anything: SMTP
/// connects, negotiates TLS and logs in (and, given an envelope, tries
/// MAIL FROM and RCPT TO, then resets); sendmail's command is an
/// executable file; a file transport's directory can be written.
pub fn check(
    transport: &Transport,
    account: Option<&Account>,
    envelope: Option<&Envelope>,
) -> Result<String, SendError> {
    match transport {
        Transport::Smtp(smtp) => {
            SmtpDeliver::new(smtp, account)?.check(envelope)?;
            let mut outcome = match account {
                Some(Account {
                    username,
                    login: Login::OAuth2(_),
                }) => format!("connected, XOAUTH2 login `{username}` accepted (token obtained)"),
                Some(account) => format!("connected, login `{}` accepted", account.username),
                None => "connected (no login configured)".into(),
            };
            if let Some(envelope) = envelope {
                let from = envelope.from().map(ToString::to_string).unwrap_or_default();
                let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
                outcome.push_str(&format!(
                    ", MAIL FROM <{from}> and RCPT TO <{}> accepted (reset: nothing sent)",
                    to.join(">, <")
                ));
            }
            Ok(outcome)
        }
        Transport::Sendmail(s) => {
            use std::os::unix::fs::PermissionsExt;
            let executable = std::fs::metadata(&s.command)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if executable {
                Ok(format!("`{}` is executable", s.command.display()))
            } else {
                Err(SendError::Local(format!(
                    "`{}` is not an executable file",
                    s.command.display()
                )))
            }
        }
        Transport::File(f) => {
            let probe = f
                .dir
                .join(format!(".mailrules-check-{}", uuid::Uuid::new_v4()));
            let writable = std::fs::create_dir_all(&f.dir)
                .and_then(|()| std::fs::write(&probe, b""))
                .and_then(|()| std::fs::remove_file(&probe));
            writable
                .map(|()| format!("`{}` is writable", f.dir.display()))
                .map_err(|e| {
                    SendError::Local(format!("cannot write to `{}`: {e}", f.dir.display()))
                })
        }
    }
}

/// The transport a resolution selected, with its account.
pub fn connect(effective: &Effective) -> Result<Arc<dyn Deliver>, SendError> {
    Ok(match effective.transport.as_ref() {
        Transport::Smtp(smtp) => Arc::new(SmtpDeliver::new(smtp, effective.account.as_deref())?),
        Transport::Sendmail(s) => Arc::new(sendmail::SendmailDeliver::new(s)),
        Transport::File(f) => Arc::new(file::FileDeliver::new(f)),
    })
}

/// One transport per distinct transport and login, kept for a whole batch
/// so that its SMTP connections are reused from message to message (and
/// the XOAUTH2 tokens of `copy_to_sent` accounts from copy to copy).
#[derive(Default)]
pub struct Transports {
    opened: Mutex<Vec<OpenTransport>>,
    imap_tokens: Mutex<Vec<(Account, Arc<Tokens>)>>,
}

/// How often a failed copy is tried again, and after how long: a copy
/// never delays or repeats the send, which is done by then.
const COPY_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// What became of the copy of a sent message.
#[derive(Debug)]
pub struct CopyOutcome {
    /// Where the copy went, or why it did not.
    pub stored: Result<String, ImapError>,
    pub attempts: u32,
}

struct OpenTransport {
    transport: Transport,
    account: Option<Account>,
    deliver: Arc<dyn Deliver>,
}

impl Transports {
    pub fn for_effective(&self, effective: &Effective) -> Result<Arc<dyn Deliver>, SendError> {
        let account = effective.account.as_deref();
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let known = opened
            .iter()
            .find(|o| o.transport == *effective.transport && o.account.as_ref() == account);
        if let Some(known) = known {
            return Ok(Arc::clone(&known.deliver));
        }
        let deliver = connect(effective)?;
        opened.push(OpenTransport {
            transport: effective.transport.clone().into_owned(),
            account: account.cloned(),
            deliver: Arc::clone(&deliver),
        });
        Ok(deliver)
    }

    /// Stores `message` (the sent bytes, plus their private Bcc header) in
    /// the copy's IMAP folder, trying again after temporary failures.
    pub fn store_copy(&self, copy: &CopyToSent, message: &[u8]) -> CopyOutcome {
        let tokens = match &copy.account.login {
            Login::OAuth2(source) => Some(self.imap_tokens(&copy.account, source)),
            Login::Password(_) => None,
        };
        let mut attempts = 0;
        let mut delays = COPY_RETRY_DELAYS.iter();
        loop {
            attempts += 1;
            let stored = imap::append(copy, tokens.as_deref(), message);
            match (&stored, delays.next()) {
                (Err(error), Some(delay)) if error.is_temporary() => std::thread::sleep(*delay),
                _ => return CopyOutcome { stored, attempts },
            }
        }
    }

    fn imap_tokens(&self, account: &Account, source: &TokenSource) -> Arc<Tokens> {
        let mut known = self.imap_tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, tokens)) = known.iter().find(|(a, _)| a == account) {
            return Arc::clone(tokens);
        }
        let tokens = Arc::new(Tokens::new(source.clone(), Duration::from_secs(30)));
        known.push((account.clone(), Arc::clone(&tokens)));
        tokens
    }
}
