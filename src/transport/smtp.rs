//! SMTP with lettre: STARTTLS (required, never a plaintext fallback),
//! implicit TLS or none; rustls with system roots plus an optional CA file.

use lettre::SmtpTransport;
use lettre::Transport as _;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use crate::config::{Account, Security, Smtp};

use super::{Deliver, Outgoing, Receipt, SendError, read_secret};

pub struct SmtpDeliver {
    transport: SmtpTransport,
    server: String,
}

impl SmtpDeliver {
    pub fn new(smtp: &Smtp, account: Option<&Account>) -> Result<Self, SendError> {
        let tls = match smtp.security {
            Security::None => Tls::None,
            Security::Starttls => Tls::Required(tls_parameters(smtp)?),
            Security::Tls => Tls::Wrapper(tls_parameters(smtp)?),
        };
        let mut builder = SmtpTransport::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(smtp.timeout));
        if let Some(name) = &smtp.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        if let Some(account) = account {
            let password = read_secret(&account.password)?;
            builder = builder
                .credentials(Credentials::new(account.username.clone(), password))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(SmtpDeliver {
            transport: builder.build(),
            server: format!("{}:{}", smtp.host, smtp.port),
        })
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

impl SmtpDeliver {
    /// Connects, negotiates TLS and logs in (when an account is set), then
    /// quits: nothing is sent.
    pub fn check(&self) -> Result<(), SendError> {
        match self.transport.test_connection() {
            Ok(true) => Ok(()),
            Ok(false) => Err(SendError::Connection(format!(
                "{}: the server closed the connection",
                self.server
            ))),
            Err(error) => Err(classify(&self.server, &error)),
        }
    }
}

impl Deliver for SmtpDeliver {
    fn deliver(&self, message: Outgoing<'_>) -> Result<Receipt, SendError> {
        // lettre ends DATA with "\r\n.\r\n"; that first CRLF ends our last
        // line, so the server stores exactly the bytes preview shows.
        let bytes = message.bytes.strip_suffix(b"\r\n").unwrap_or(message.bytes);
        match self.transport.send_raw(message.envelope, bytes) {
            Ok(response) => Ok(Receipt {
                reply: format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ),
            }),
            Err(error) => Err(classify(&self.server, &error)),
        }
    }
}

/// A server reply becomes `Rejected` with its code and text; everything
/// else is a connection problem, described with its whole cause chain.
fn classify(server: &str, error: &lettre::transport::smtp::Error) -> SendError {
    use std::error::Error as _;
    match error.status() {
        Some(code) if error.is_permanent() || error.is_transient() => SendError::Rejected {
            permanent: error.is_permanent(),
            reply: match error.source() {
                Some(text) => format!("{code} {text}"),
                None => code.to_string(),
            },
        },
        _ => {
            // lettre's message includes the first cause; add the deeper ones.
            let mut message = format!("{server}: {error}");
            let mut cause = error.source().and_then(|first| first.source());
            while let Some(inner) = cause {
                message.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            SendError::Connection(message)
        }
    }
}
