//! Stores a copy of a sent message in an IMAP folder (RFC 3501 `APPEND`,
//! flagged `\Seen`), for servers such as Microsoft 365 that keep no sent
//! items for messages submitted over SMTP. Only what that takes: TLS or
//! STARTTLS, LOGIN or AUTHENTICATE XOAUTH2, CREATE, APPEND, LOGOUT.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::secret::{SecretError, read_secret};
use super::token::{TokenError, Tokens};
use crate::config::{CopyToSent, Login, Security};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Why no copy was stored.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// No connection, TLS failed, or the server went away.
    #[error("{server}: {problem}")]
    Connection { server: String, problem: String },
    /// The server refused the login.
    #[error("{server} refused the login: {reply}")]
    Login { server: String, reply: String },
    /// The server refused a command (`NO` or `BAD`).
    #[error("{server} refused {command}: {reply}")]
    Refused {
        server: String,
        command: &'static str,
        reply: String,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl ImapError {
    /// Whether trying again later may work.
    pub fn is_temporary(&self) -> bool {
        match self {
            ImapError::Connection { .. } => true,
            ImapError::Token(e) => e.is_temporary(),
            ImapError::Login { .. } | ImapError::Refused { .. } | ImapError::Secret(_) => false,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ImapError::Connection { .. } => {
                "check `copy_to_sent.host`, `port` and `security` (993 is `tls`, 143 `starttls`); a copy that cannot connect is tried 4 times (1, 2 and 4 s apart) before it is given up".into()
            }
            ImapError::Login { .. } => {
                "check `copy_to_sent.account`: the mailbox's user name and password (or token)".into()
            }
            ImapError::Refused { reply, .. } if reply.contains("TRYCREATE") => {
                "the folder does not exist: create it, or set `create_folder: true`".into()
            }
            ImapError::Refused { .. } => return None,
            ImapError::Secret(e) => e.hint(),
            ImapError::Token(e) => e.hint(),
        })
    }
}

/// One IMAP session, line by line.
struct Session {
    server: String,
    stream: BufReader<Stream>,
    next_tag: u32,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A tagged reply: `OK`, or `NO`/`BAD` with the server's text.
type Reply = Result<String, String>;

/// Appends `message` to the configured folder, flagged `\Seen`; returns
/// where it went. `tokens`: the XOAUTH2 tokens of this account, if it uses
/// them (kept by the caller so that one token serves many copies).
pub fn append(
    copy: &CopyToSent,
    tokens: Option<&Tokens>,
    message: &[u8],
) -> Result<String, ImapError> {
    let mut session = Session::open(copy)?;
    session.login(copy, tokens)?;
    let folder = quoted(&modified_utf7(&copy.folder));
    if copy.create_folder {
        // An existing folder answers NO [ALREADYEXISTS]: that is fine, and
        // any other problem shows at APPEND.
        let _ = session.command("CREATE", &format!("CREATE {folder}"))?;
    }
    let tag = session.tag();
    session.write(&format!(
        "{tag} APPEND {folder} (\\Seen) {{{}}}\r\n",
        message.len()
    ))?;
    // The server asks for the literal with `+`, or refuses right away.
    let line = session.read_line()?;
    if !line.starts_with('+') {
        return Err(session.refused("APPEND", &line));
    }
    session.write_bytes(message)?;
    session.write("\r\n")?;
    let reply = session.tagged(&tag)?;
    reply.map_err(|reply| ImapError::Refused {
        server: session.server.clone(),
        command: "APPEND",
        reply,
    })?;
    let _ = session.command("LOGOUT", "LOGOUT");
    Ok(format!("{} folder `{}`", session.server, copy.folder))
}

impl Session {
    fn open(copy: &CopyToSent) -> Result<Session, ImapError> {
        let server = format!("imap {}:{}", copy.host, copy.port);
        let connection = |problem: String| ImapError::Connection {
            server: server.clone(),
            problem,
        };
        let address = (copy.host.as_str(), copy.port)
            .to_socket_addrs()
            .map_err(|e| connection(e.to_string()))?
            .next()
            .ok_or_else(|| connection("the host name resolves to no address".into()))?;
        let tcp =
            TcpStream::connect_timeout(&address, TIMEOUT).map_err(|e| connection(e.to_string()))?;
        tcp.set_read_timeout(Some(TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| connection(e.to_string()))?;
        let stream = match copy.security {
            Security::Tls => tls(copy, tcp).map_err(connection)?,
            Security::Starttls | Security::None => Stream::Plain(tcp),
        };
        let mut session = Session {
            server: server.clone(),
            stream: BufReader::new(stream),
            next_tag: 0,
        };
        let greeting = session.read_line()?;
        if !greeting.starts_with("* OK") && !greeting.starts_with("* PREAUTH") {
            return Err(connection(format!("unexpected greeting `{greeting}`")));
        }
        if copy.security == Security::Starttls {
            session
                .command("STARTTLS", "STARTTLS")?
                .map_err(|reply| session.refused("STARTTLS", &reply))?;
            let Stream::Plain(tcp) = session.stream.into_inner() else {
                unreachable!("STARTTLS starts from a plain connection");
            };
            session.stream = BufReader::new(tls(copy, tcp).map_err(connection)?);
        }
        Ok(session)
    }

    fn login(&mut self, copy: &CopyToSent, tokens: Option<&Tokens>) -> Result<(), ImapError> {
        let user = &copy.account.username;
        let reply = match (&copy.account.login, tokens) {
            (Login::OAuth2(_), Some(tokens)) => {
                use base64::Engine as _;
                let token = tokens.get()?;
                let initial = format!("user={user}\x01auth=Bearer {token}\x01\x01");
                let encoded = base64::engine::general_purpose::STANDARD.encode(initial);
                let tag = self.tag();
                self.write(&format!("{tag} AUTHENTICATE XOAUTH2 {encoded}\r\n"))?;
                let line = self.read_line()?;
                if line.starts_with('+') {
                    // The server's error challenge: an empty line ends it.
                    self.write("\r\n")?;
                    self.tagged(&tag)?
                } else {
                    tagged_status(&line, &tag).unwrap_or_else(|| Err(line.clone()))
                }
            }
            (Login::Password(secret), _) => {
                let password = read_secret(secret)?;
                let command = format!("LOGIN {} {}", quoted(user), quoted(&password));
                self.command("LOGIN", &command)?
            }
            (Login::OAuth2(_), None) => {
                unreachable!("the caller keeps the tokens of an XOAUTH2 account")
            }
        };
        reply.map(drop).map_err(|reply| ImapError::Login {
            server: self.server.clone(),
            reply,
        })
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("m{}", self.next_tag)
    }

    /// Sends one command and waits for its tagged reply.
    fn command(&mut self, name: &'static str, text: &str) -> Result<Reply, ImapError> {
        let tag = self.tag();
        self.write(&format!("{tag} {text}\r\n"))?;
        self.tagged(&tag).map_err(|e| match e {
            ImapError::Connection { server, problem } => ImapError::Connection {
                server,
                problem: format!("{name}: {problem}"),
            },
            other => other,
        })
    }

    /// Reads until the reply tagged `tag`, skipping untagged lines.
    fn tagged(&mut self, tag: &str) -> Result<Reply, ImapError> {
        loop {
            let line = self.read_line()?;
            if let Some(reply) = tagged_status(&line, tag) {
                return Ok(reply);
            }
        }
    }

    fn read_line(&mut self) -> Result<String, ImapError> {
        let mut line = String::new();
        let read = self
            .stream
            .read_line(&mut line)
            .map_err(|e| self.lost(io_problem(&e)))?;
        if read == 0 {
            return Err(self.lost("the server closed the connection".into()));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    fn write(&mut self, text: &str) -> Result<(), ImapError> {
        self.write_bytes(text.as_bytes())
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), ImapError> {
        let stream = self.stream.get_mut();
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(|e| self.lost(io_problem(&e)))
    }

    fn lost(&self, problem: String) -> ImapError {
        ImapError::Connection {
            server: self.server.clone(),
            problem,
        }
    }

    fn refused(&self, command: &'static str, reply: &str) -> ImapError {
        ImapError::Refused {
            server: self.server.clone(),
            command,
            reply: reply.to_string(),
        }
    }
}

/// `m3 OK ...` for tag `m3`: `Ok(text)` or `Err(text)` for NO and BAD.
fn tagged_status(line: &str, tag: &str) -> Option<Reply> {
    let rest = line.strip_prefix(tag)?.strip_prefix(' ')?;
    Some(match rest.strip_prefix("OK") {
        Some(text) => Ok(text.trim().to_string()),
        None => Err(rest.to_string()),
    })
}

/// An I/O error as the reader should see it: a read past the timeout
/// surfaces as EAGAIN ("Resource temporarily unavailable").
fn io_problem(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            super::no_answer_within(TIMEOUT)
        }
        _ => error.to_string(),
    }
}

/// The TLS client: the system's roots plus the optional `ca_file`.
fn tls(copy: &CopyToSent, tcp: TcpStream) -> Result<Stream, String> {
    let mut roots = RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(certificate);
    }
    if let Some(path) = &copy.ca_file {
        let certificates = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read CA file `{}`: {e}", path.display()))?;
        for certificate in certificates {
            let certificate =
                certificate.map_err(|e| format!("CA file `{}`: {e}", path.display()))?;
            roots
                .add(certificate)
                .map_err(|e| format!("CA file `{}`: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(copy.host.clone()).map_err(|e| e.to_string())?;
    let connection = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut stream = StreamOwned::new(connection, tcp);
    // The handshake now, so that a certificate problem shows as one.
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| format!("TLS: {}", io_problem(&e)))?;
    }
    Ok(Stream::Tls(Box::new(stream)))
}

/// An IMAP quoted string.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Folder names in IMAP's modified UTF-7 (RFC 3501 §5.1.3): `Verzonden
/// items` stays as it is, `Éléments envoyés` becomes `&AMk-l&AOk-ments
/// envoy&AOk-s`.
fn modified_utf7(name: &str) -> String {
    use base64::Engine as _;
    let encode = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Vec<u8> = run.iter().flat_map(|unit| unit.to_be_bytes()).collect();
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
        out.push('&');
        out.push_str(&encoded.replace('/', ","));
        out.push('-');
        run.clear();
    };
    let mut out = String::new();
    let mut run = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            encode(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            run.extend(c.encode_utf16(&mut [0; 2]).iter());
        }
    }
    encode(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_written_in_modified_utf7() {
        assert_eq!(modified_utf7("Sent Items"), "Sent Items");
        assert_eq!(modified_utf7("A&B"), "A&-B");
        assert_eq!(
            modified_utf7("Éléments envoyés"),
            "&AMk-l&AOk-ments envoy&AOk-s"
        );
        assert_eq!(modified_utf7("台北"), "&U,BTFw-");
    }

    #[test]
    fn a_tagged_reply_is_told_from_untagged_lines() {
        assert_eq!(
            tagged_status("m2 OK [APPENDUID 1 2] done", "m2"),
            Some(Ok("[APPENDUID 1 2] done".into()))
        );
        assert_eq!(
            tagged_status("m2 NO [TRYCREATE] no folder", "m2"),
            Some(Err("NO [TRYCREATE] no folder".into()))
        );
        assert_eq!(tagged_status("* 3 EXISTS", "m2"), None);
        assert_eq!(tagged_status("m21 OK", "m2"), None);
    }
}
