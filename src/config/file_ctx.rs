//! One config file as the compiler sees it: locations of its nodes, paths
//! relative to it, and the values whose parsing is the same everywhere
//! (addresses, accounts, transports, copy-to-sent).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::address::parse_mailbox;
use super::compile::Diagnostics;
use super::diagnostic::{Diagnostic, Location, dotted_path, pointer_join};
use super::model::*;
use super::raw::*;
use super::source::SourceFile;

use lettre::message::Mailbox;

/// Default seconds for connecting and for each SMTP command.
const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";

/// Locations and relative paths within one file.
pub(super) struct FileCtx<'a> {
    pub(super) source: &'a SourceFile,
    pub(super) dir: PathBuf,
    /// The configuration's root directory: files it names stay inside.
    root: &'a Path,
}

impl<'a> FileCtx<'a> {
    pub(super) fn new(source: &'a SourceFile, root: &'a Path) -> Self {
        let dir = source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        FileCtx { source, dir, root }
    }

    pub(super) fn value_at(&self, pointer: &str) -> Location {
        self.source.value_at(pointer)
    }

    pub(super) fn key_at(&self, pointer: &str) -> Location {
        self.source.key_at(pointer)
    }

    pub(super) fn located<T>(&self, value: T, pointer: &str) -> Located<T> {
        Located::new(value, self.value_at(pointer))
    }

    pub(super) fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    pub(super) fn mailbox(
        &self,
        text: &str,
        pointer: &str,
        out: &mut Diagnostics,
    ) -> Option<Located<Mailbox>> {
        match parse_mailbox(text) {
            Ok(mailbox) => Some(self.located(mailbox, pointer)),
            Err(error) => {
                out.push(
                    Diagnostic::error(
                        Some(self.value_at(pointer)),
                        dotted_path(pointer),
                        error.message,
                    )
                    .with_hint(error.hint),
                );
                None
            }
        }
    }

    pub(super) fn mailboxes(
        &self,
        texts: &[String],
        pointer: &str,
        out: &mut Diagnostics,
    ) -> Vec<Mailbox> {
        texts
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                self.mailbox(text, &pointer_join(pointer, &i.to_string()), out)
                    .map(|m| m.value)
            })
            .collect()
    }

    pub(super) fn optional_id(
        &self,
        id: &Option<String>,
        pointer: &str,
    ) -> Option<Located<String>> {
        id.as_ref().map(|id| self.located(id.clone(), pointer))
    }

    pub(super) fn account(
        &self,
        raw: &RawAccount,
        pointer: &str,
        out: &mut Diagnostics,
    ) -> Located<Account> {
        let login = match (&raw.mechanism, &raw.password, &raw.token) {
            (Some(RawMechanism::Xoauth2), _, Some(token)) => {
                if raw.password.is_some() {
                    self.not_used(pointer, "password", "a password", out);
                }
                Login::OAuth2(Box::new(self.token_source(
                    token,
                    &pointer_join(pointer, "token"),
                    out,
                )))
            }
            (_, Some(password), _) => {
                if raw.token.is_some() {
                    self.not_used(pointer, "token", "a token", out);
                }
                Login::Password(self.secret(password, &pointer_join(pointer, "password"), out))
            }
            _ => unreachable!("the schema requires `password`, or `token` with xoauth2"),
        };
        self.located(
            Account {
                username: raw.username.clone(),
                login,
            },
            pointer,
        )
    }

    /// A login method given beside the one `mechanism` selects would be
    /// silently ignored: an error, so that nobody thinks it is used.
    fn not_used(&self, pointer: &str, key: &str, what: &str, out: &mut Diagnostics) {
        let at = pointer_join(pointer, key);
        let fix = if key == "token" {
            "add `mechanism: xoauth2` to log in with the token, or remove `token`"
        } else {
            "remove `password`: with `mechanism: xoauth2` the token logs in"
        };
        out.push(
            Diagnostic::error(
                Some(self.value_at(&at)),
                dotted_path(&at),
                format!("{what} is given but not used by this login"),
            )
            .with_hint(fix),
        );
    }

    fn token_source(
        &self,
        raw: &RawTokenSource,
        pointer: &str,
        out: &mut Diagnostics,
    ) -> TokenSource {
        if let Some(c) = &raw.client_credentials {
            let at = pointer_join(pointer, "client_credentials");
            self.token_url(&c.token_url, &pointer_join(&at, "token_url"), out);
            TokenSource::ClientCredentials {
                token_url: c.token_url.clone(),
                client_id: c.client_id.clone(),
                client_secret: self.secret(
                    &c.client_secret,
                    &pointer_join(&at, "client_secret"),
                    out,
                ),
                scope: c.scope.clone(),
            }
        } else if let Some(r) = &raw.refresh_token {
            let at = pointer_join(pointer, "refresh_token");
            self.token_url(&r.token_url, &pointer_join(&at, "token_url"), out);
            TokenSource::RefreshToken {
                token_url: r.token_url.clone(),
                client_id: r.client_id.clone(),
                client_secret: r
                    .client_secret
                    .as_ref()
                    .map(|s| self.secret(s, &pointer_join(&at, "client_secret"), out)),
                refresh_token: self.secret(
                    &r.refresh_token,
                    &pointer_join(&at, "refresh_token"),
                    out,
                ),
                scope: r.scope.clone(),
            }
        } else if let Some(command) = &raw.command {
            TokenSource::Command(command.clone())
        } else {
            unreachable!("the schema requires one token source")
        }
    }

    /// Client secrets and refresh tokens travel to the token endpoint:
    /// only over TLS, except to a test server on this machine.
    fn token_url(&self, url: &str, pointer: &str, out: &mut Diagnostics) {
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|prefix| {
                url.strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            });
        if !url.starts_with("https://") && !loopback {
            out.push(
                Diagnostic::error(
                    Some(self.value_at(pointer)),
                    dotted_path(pointer),
                    format!("token endpoint `{url}` is not https://"),
                )
                .with_hint("the client secret or refresh token is sent there: use the provider's https:// URL"),
            );
        }
    }

    /// Where a secret is; a warning when it cannot be found here.
    fn secret(&self, raw: &RawPassword, pointer: &str, out: &mut Diagnostics) -> Secret {
        let secret = match raw {
            RawPassword::Literal(value) => Secret::Literal(value.clone()),
            RawPassword::Reference(RawSecret {
                env: Some(name), ..
            }) => Secret::Env(name.clone()),
            RawPassword::Reference(RawSecret {
                file: Some(file), ..
            }) => Secret::File(self.path(file)),
            RawPassword::Reference(_) => unreachable!("the schema requires `env` or `file`"),
        };
        match &secret {
            Secret::Env(name) if std::env::var_os(name).is_none() => out.push(
                Diagnostic::warning(
                    Some(self.value_at(pointer)),
                    dotted_path(pointer),
                    format!("environment variable `{name}` is not set here"),
                )
                .with_hint(format!(
                    "sending with this account fails until `{name}` is set"
                )),
            ),
            Secret::File(path) if std::fs::File::open(path).is_err() => out.push(
                Diagnostic::warning(
                    Some(self.value_at(pointer)),
                    dotted_path(pointer),
                    format!("secret file `{}` cannot be read here", path.display()),
                )
                .with_hint("sending with this account fails until the file exists and is readable"),
            ),
            _ => {}
        }
        secret
    }

    pub(super) fn signature(&self, raw: &RawSignature) -> Signature {
        Signature {
            text: raw.text.clone(),
            html: raw.html.clone(),
        }
    }

    pub(super) fn transport(
        &self,
        raw: &RawTransport,
        pointer: &str,
        out: &mut Diagnostics,
    ) -> Option<Transport> {
        if let Some(smtp) = &raw.smtp {
            let pointer = pointer_join(pointer, "smtp");
            let security = match smtp.security.unwrap_or(RawSecurity::Starttls) {
                RawSecurity::Starttls => Security::Starttls,
                RawSecurity::Tls => Security::Tls,
                RawSecurity::None => Security::None,
            };
            let default_port = match security {
                Security::Starttls => 587,
                Security::Tls => 465,
                Security::None => 25,
            };
            let ca_file = smtp.ca_file.as_ref().map(|f| self.path(f));
            if let Some(ca) = &ca_file {
                self.require_pem(ca, &pointer_join(&pointer, "ca_file"), out);
            }
            return Some(Transport::Smtp(Smtp {
                host: smtp.host.clone(),
                port: smtp.port.unwrap_or(default_port),
                security,
                ca_file,
                hello_name: smtp.hello_name.clone(),
                allow_insecure: smtp.allow_insecure.unwrap_or(false),
                timeout: Duration::from_secs(
                    smtp.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS),
                ),
                auth: smtp
                    .auth
                    .as_ref()
                    .map(|a| self.account(a, &pointer_join(&pointer, "auth"), out)),
            }));
        }
        if let Some(sendmail) = &raw.sendmail {
            let command = sendmail.command.as_deref().unwrap_or(DEFAULT_SENDMAIL);
            return Some(Transport::Sendmail(Sendmail {
                command: PathBuf::from(command),
            }));
        }
        raw.file.as_ref().map(|file| {
            Transport::File(FileDrop {
                dir: self.path(&file.dir),
            })
        })
    }

    pub(super) fn copy_to_sent(
        &self,
        raw: &RawCopyToSent,
        pointer: &str,
        out: &mut Diagnostics,
    ) -> Located<CopyToSent> {
        let security = match raw.security {
            Some(RawSecurity::Starttls) => Security::Starttls,
            _ => Security::Tls,
        };
        let ca_file = raw.ca_file.as_ref().map(|f| self.path(f));
        if let Some(ca) = &ca_file {
            self.require_pem(ca, &pointer_join(pointer, "ca_file"), out);
        }
        self.located(
            CopyToSent {
                host: raw.host.clone(),
                port: raw
                    .port
                    .unwrap_or(if security == Security::Tls { 993 } else { 143 }),
                security,
                ca_file,
                account: self
                    .account(&raw.account, &pointer_join(pointer, "account"), out)
                    .value,
                folder: raw.folder.clone().unwrap_or_else(|| "Sent".into()),
                create_folder: raw.create_folder.unwrap_or(false),
            },
            pointer,
        )
    }

    /// Images for the HTML part: files inside the configuration directory.
    pub(super) fn inline_images(
        &self,
        raw: &[RawInlineImage],
        pointer: &str,
        out: &mut Diagnostics,
    ) -> Vec<InlineImage> {
        raw.iter()
            .enumerate()
            .map(|(i, image)| {
                let item = pointer_join(pointer, &i.to_string());
                let path = self.path(&image.path);
                self.require_file_inside(&path, &pointer_join(&item, "path"), out);
                InlineImage {
                    at: self.value_at(&item),
                    path,
                    cid: image.cid.clone(),
                }
            })
            .collect()
    }

    /// An attachment goes to customers: it must exist and stay inside the
    /// configuration's directory (no `../../etc/passwd`).
    pub(super) fn require_file_inside(&self, path: &Path, pointer: &str, out: &mut Diagnostics) {
        self.require_file(path, pointer, out);
        let inside = match (
            std::fs::canonicalize(path),
            std::fs::canonicalize(self.root),
        ) {
            (Ok(path), Ok(root)) => path.starts_with(root),
            _ => true, // a missing file is reported above
        };
        if !inside {
            out.push(
                Diagnostic::error(
                    Some(self.value_at(pointer)),
                    dotted_path(pointer),
                    format!(
                        "`{}` is outside the configuration directory",
                        path.display()
                    ),
                )
                .with_hint(format!(
                    "keep attachments inside `{}` (they are sent to customers)",
                    self.root.display()
                )),
            );
        }
    }

    /// A CA file must hold PEM certificates; a broken one would only show
    /// at send time as an obscure TLS error.
    pub(super) fn require_pem(&self, path: &Path, pointer: &str, out: &mut Diagnostics) {
        self.require_file(path, pointer, out);
        let Ok(text) = std::fs::read(path) else {
            return;
        };
        if !String::from_utf8_lossy(&text).contains("-----BEGIN CERTIFICATE-----") {
            out.push(
                Diagnostic::error(
                    Some(self.value_at(pointer)),
                    dotted_path(pointer),
                    format!("`{}` holds no PEM certificate", path.display()),
                )
                .with_hint("give the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)"),
            );
        }
    }

    pub(super) fn require_file(&self, path: &Path, pointer: &str, out: &mut Diagnostics) {
        if path.exists() && !path.is_file() {
            out.push(Diagnostic::error(
                Some(self.value_at(pointer)),
                dotted_path(pointer),
                format!("`{}` is not a regular file", path.display()),
            ));
        } else if !path.is_file() {
            out.push(
                Diagnostic::error(
                    Some(self.value_at(pointer)),
                    dotted_path(pointer),
                    format!("file `{}` does not exist", path.display()),
                )
                .with_hint(format!(
                    "paths are relative to the directory of this config file ({})",
                    if self.dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        &self.dir
                    }
                    .display()
                )),
            );
        }
    }
}
