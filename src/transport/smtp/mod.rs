//! SMTP with lettre's client: STARTTLS (required, never a plaintext
//! fallback), implicit TLS or none; rustls with system roots plus an
//! optional CA file. Connections are kept open between messages (a pool),
//! and a kept connection that the server closed while idle is replaced,
//! with one retry, only when the message cannot have reached the server.

mod session;

use std::sync::Mutex;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use crate::config::{Account, Login, Security, Smtp};

use super::token::Tokens;
use super::{Deliver, Outgoing, Receipt, SendError, read_secret};
use session::{Failure, Stage};

/// Idle connections kept per transport: more than any batch runs at once.
const MAX_IDLE: usize = 64;

/// How the client logs in.
enum LoginWith {
    /// AUTH PLAIN or LOGIN, whichever the server offers.
    Password(Credentials),
    /// AUTH XOAUTH2 with a token from `tokens`.
    XOauth2 { user: String, tokens: Tokens },
}

pub struct SmtpDeliver {
    server: String,
    host: String,
    port: u16,
    security: Security,
    tls: Option<TlsParameters>,
    hello_name: ClientId,
    timeout: Duration,
    login: Option<LoginWith>,
    idle: Mutex<Vec<SmtpConnection>>,
    /// The server's permanent refusal of the login, once it came.
    login_refused: Mutex<Option<String>>,
}

impl SmtpDeliver {
    pub fn new(smtp: &Smtp, account: Option<&Account>) -> Result<Self, SendError> {
        let tls = match smtp.security {
            Security::None => None,
            Security::Starttls | Security::Tls => Some(tls_parameters(smtp)?),
        };
        let login = match account {
            Some(Account {
                username,
                login: Login::Password(secret),
            }) => Some(LoginWith::Password(Credentials::new(
                username.clone(),
                read_secret(secret)?,
            ))),
            Some(Account {
                username,
                login: Login::OAuth2(source),
            }) => Some(LoginWith::XOauth2 {
                user: username.clone(),
                tokens: Tokens::new(source.as_ref().clone(), smtp.timeout),
            }),
            None => None,
        };
        Ok(SmtpDeliver {
            server: format!("{}:{}", smtp.host, smtp.port),
            host: smtp.host.clone(),
            port: smtp.port,
            security: smtp.security,
            tls,
            hello_name: smtp
                .hello_name
                .clone()
                .map_or_else(ClientId::default, ClientId::Domain),
            timeout: smtp.timeout,
            login,
            idle: Mutex::new(Vec::new()),
            login_refused: Mutex::new(None),
        })
    }

    /// A new connection: TCP (and TLS for `tls`), EHLO, STARTTLS for
    /// `starttls`, then the login. An XOAUTH2 token is had first, so that
    /// no connection waits on the token endpoint.
    fn open(&self) -> Result<SmtpConnection, SendError> {
        let token = match &self.login {
            Some(LoginWith::XOauth2 { tokens, .. }) => Some(tokens.get()?),
            _ => None,
        };
        let wrapper = match self.security {
            Security::Tls => self.tls.as_ref(),
            Security::Starttls | Security::None => None,
        };
        let mut connection = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello_name,
            wrapper,
            None,
        )
        .map_err(|e| self.classify(&e))?;
        if let (Security::Starttls, Some(tls)) = (self.security, &self.tls) {
            // lettre fails when the server does not offer STARTTLS: no
            // silent plaintext downgrade.
            if let Err(error) = connection.starttls(tls, &self.hello_name) {
                connection.abort();
                return Err(self.classify(&error));
            }
        }
        let logged_in = match (&self.login, token) {
            (Some(LoginWith::Password(credentials)), _) => connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .map(drop)
                .map_err(|e| self.classify(&e)),
            (Some(LoginWith::XOauth2 { .. }), _)
                if !connection
                    .server_info()
                    .supports_auth_mechanism(Mechanism::Xoauth2) =>
            {
                Err(SendError::Local(format!(
                    "{}: the server does not offer AUTH XOAUTH2; log in with a password (`mechanism: password`) or use the provider's OAuth-capable host",
                    self.server
                )))
            }
            (Some(LoginWith::XOauth2 { user, tokens }), Some(token)) => {
                session::xoauth2(&mut connection, user, &token).map_err(|e| {
                    match self.classify(&e) {
                        SendError::Rejected {
                            permanent: true,
                            reply,
                        } => {
                            tokens.forget();
                            SendError::TokenRefused { reply }
                        }
                        other => other,
                    }
                })
            }
            _ => Ok(()),
        };
        if let Err(error) = logged_in {
            connection.abort();
            if let SendError::Rejected {
                permanent: true,
                reply,
            }
            | SendError::TokenRefused { reply } = &error
                && let Ok(mut refused) = self.login_refused.lock()
            {
                *refused = Some(reply.clone());
            }
            return Err(error);
        }
        Ok(connection)
    }

    /// A new connection, unless the server refused this login for good
    /// earlier in the run: logging in again and again with a wrong
    /// password gets accounts locked.
    fn connect(&self) -> Result<SmtpConnection, SendError> {
        let refused = self.login_refused.lock().ok().and_then(|r| r.clone());
        if let Some(reply) = refused {
            return Err(match self.login {
                Some(LoginWith::XOauth2 { .. }) => SendError::TokenRefused { reply },
                _ => SendError::Rejected {
                    permanent: true,
                    reply,
                },
            });
        }
        self.open()
    }

    /// A kept connection, if one is idle.
    fn take_idle(&self) -> Option<SmtpConnection> {
        self.idle.lock().ok()?.pop()
    }

    fn keep(&self, connection: SmtpConnection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(connection);
        }
    }

    /// Sends on `connection`; keeps it for the next message when the
    /// server is still in step with us.
    fn send_on(
        &self,
        mut connection: SmtpConnection,
        message: Outgoing<'_>,
    ) -> Result<Receipt, Failure> {
        // lettre ends DATA with "\r\n.\r\n"; that first CRLF ends our last
        // line, so the server stores exactly the bytes preview shows.
        let bytes = message.bytes.strip_suffix(b"\r\n").unwrap_or(message.bytes);
        match session::transmit(&mut connection, message.envelope, bytes) {
            Ok(response) => {
                self.keep(connection);
                Ok(Receipt {
                    reply: format!(
                        "{} {}",
                        response.code(),
                        response.message().collect::<Vec<_>>().join(" ")
                    ),
                })
            }
            Err(failure) => {
                if failure.connection_usable() && session::reset(&mut connection) {
                    self.keep(connection);
                } else {
                    connection.abort();
                }
                Err(failure)
            }
        }
    }

    /// Connects, negotiates TLS and logs in (when an account is set), then
    /// quits: nothing is sent. With `envelope`, also tries MAIL FROM and
    /// RCPT TO, then RSET: the server's verdict on sender and recipient.
    pub fn check(&self, envelope: Option<&lettre::address::Envelope>) -> Result<(), SendError> {
        let mut connection = self.connect()?;
        if let Some(envelope) = envelope {
            let tried = session::try_envelope(&mut connection, envelope);
            if let Err(error) = tried {
                connection.abort();
                return Err(self.classify(&error));
            }
        }
        connection.quit().map(drop).map_err(|e| self.classify(&e))
    }
}

impl Drop for SmtpDeliver {
    /// Says goodbye on the kept connections, as a polite client does.
    fn drop(&mut self) {
        if let Ok(idle) = self.idle.get_mut() {
            for mut connection in idle.drain(..) {
                let _ = connection.quit();
            }
        }
    }
}

fn tls_parameters(smtp: &Smtp) -> Result<TlsParameters, SendError> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            SendError::Local(format!("cannot read CA file `{}`: {e}", path.display()))
        })?;
        let certificate = Certificate::from_pem(&pem).map_err(|e| {
            SendError::Local(format!(
                "CA file `{}` is not a PEM certificate: {e}",
                path.display()
            ))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| SendError::Local(format!("cannot set up TLS: {e}")))
}

impl Deliver for SmtpDeliver {
    fn deliver(&self, message: Outgoing<'_>) -> Result<Receipt, SendError> {
        let fail = |failure: Failure| self.describe(failure);
        if let Some(kept) = self.take_idle() {
            match self.send_on(kept, message) {
                // The server closed the kept connection (idle timeout,
                // restart) before it could have the message: one retry on
                // a new connection.
                Err(failure)
                    if failure.connection_lost() && failure.stage != Stage::AfterEndOfData => {}
                result => return result.map_err(fail),
            }
        }
        let connection = self.connect()?;
        self.send_on(connection, message).map_err(fail)
    }
}

impl SmtpDeliver {
    /// A failed transaction as the caller sees it: `Uncertain` when the
    /// message went out and no reply came.
    fn describe(&self, failure: Failure) -> SendError {
        match failure.stage {
            // A reply, even 421, says the message was not taken.
            Stage::AfterEndOfData if failure.error.status().is_none() => {
                SendError::Uncertain(format!(
                    "{}: the whole message was sent but no reply came ({}); the server may have accepted it, so it was not sent again",
                    self.server,
                    describe_chain(&failure.error)
                ))
            }
            _ => self.classify(&failure.error),
        }
    }

    /// A server reply becomes `Rejected` with its code and text; everything
    /// else is a connection problem, described with its whole cause chain.
    fn classify(&self, error: &lettre::transport::smtp::Error) -> SendError {
        use std::error::Error as _;
        match error.status() {
            Some(code) if error.is_permanent() || error.is_transient() => SendError::Rejected {
                permanent: error.is_permanent(),
                reply: match error.source() {
                    Some(text) => format!("{code} {text}"),
                    None => code.to_string(),
                },
            },
            // A read timeout surfaces as EAGAIN ("Resource temporarily
            // unavailable"): say what it means.
            _ if timed_out(error) => SendError::Connection(format!(
                "{}: {}",
                self.server,
                super::no_answer_within(self.timeout)
            )),
            _ => SendError::Connection(format!("{}: {}", self.server, describe_chain(error))),
        }
    }
}

fn timed_out(error: &lettre::transport::smtp::Error) -> bool {
    use std::error::Error as _;
    let mut cause = error.source();
    while let Some(inner) = cause {
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        {
            return true;
        }
        cause = inner.source();
    }
    false
}

/// lettre's message includes the first cause; this adds the deeper ones.
fn describe_chain(error: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let mut message = error.to_string();
    let mut cause = error.source().and_then(|first| first.source());
    while let Some(inner) = cause {
        message.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    message
}
