//! The checked, immutable configuration. Every value that `explain` may show
//! carries the location it was written at.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;

use super::diagnostic::Location;
use super::texts::{LevelTexts, Texts};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub at: Location,
}

impl<T> Located<T> {
    pub fn new(value: T, at: Location) -> Self {
        Located { value, at }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub system: System,
    pub profiles: BTreeMap<String, Profile>,
    pub administrations: BTreeMap<String, Administration>,
    pub users: BTreeMap<String, User>,
    pub templates: BTreeMap<String, Template>,
    pub alerts: Option<Alerts>,
}

#[derive(Debug, Clone)]
pub struct System {
    pub at: Location,
    pub profile: Option<Located<String>>,
    pub default_language: Located<String>,
    pub languages: Vec<String>,
    pub processes: Vec<String>,
    pub level_texts: LevelTexts,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub id: String,
    pub at: Location,
    pub description: Option<String>,
    pub transport: Located<Transport>,
    pub from: Located<Mailbox>,
    pub reply_to: Option<Located<Mailbox>>,
    pub bcc: Option<Located<Vec<Mailbox>>>,
    pub html: Option<Located<bool>>,
    pub signature: Option<Located<Signature>>,
    pub copy_to_sent: Option<Located<CopyToSent>>,
    /// Images for the HTML part (a logo in the signature).
    pub inline_images: Vec<InlineImage>,
    /// Largest message this profile sends.
    pub max_message_bytes: u64,
    /// How fast the outbox delivers through this profile.
    pub throttle: Throttle,
    /// How these values read in explanations.
    pub texts: Texts,
}

/// Limits for the outbox's workers: providers throttle (Microsoft 365
/// allows 30 messages a minute per mailbox), and a burst past the limit is
/// refused and retried later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Messages of this profile in delivery at once.
    pub concurrency: u32,
    /// Messages of this profile started per minute; `None`: no limit.
    pub per_minute: Option<u32>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            concurrency: 4,
            per_minute: None,
        }
    }
}

/// An image the HTML part refers to as `cid:<cid>`.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineImage {
    pub at: Location,
    pub path: PathBuf,
    pub cid: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Smtp(Smtp),
    Sendmail(Sendmail),
    File(FileDrop),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connect, then STARTTLS; never continues without TLS.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption.
    None,
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::Starttls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub ca_file: Option<PathBuf>,
    pub hello_name: Option<String>,
    /// `security: none` was allowed explicitly.
    pub allow_insecure: bool,
    pub timeout: Duration,
    pub auth: Option<Located<Account>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sendmail {
    pub command: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileDrop {
    pub dir: PathBuf,
}

/// A login: user name plus how it proves itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub username: String,
    pub login: Login,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Login {
    /// AUTH PLAIN or LOGIN with a password.
    Password(Secret),
    /// AUTH XOAUTH2 with an OAuth 2.0 access token (boxed: it is large,
    /// and most logins are passwords).
    OAuth2(Box<TokenSource>),
}

/// Where an XOAUTH2 access token comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// The app-only flow (Microsoft 365): the app's id and secret.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: String,
    },
    /// A long-lived refresh token exchanged for access tokens (Gmail,
    /// delegated Microsoft 365).
    RefreshToken {
        token_url: String,
        client_id: String,
        client_secret: Option<Secret>,
        refresh_token: Secret,
        scope: Option<String>,
    },
    /// A program that prints a token: program, then arguments.
    Command(Vec<String>),
}

/// Where a secret comes from. Its value is read only when sending, so it
/// is not part of the configuration; the one exception, a literal allowed
/// by --allow-plaintext-secrets, is never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
    Literal(String),
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "env:{name}"),
            Secret::File(path) => write!(f, "file:{}", path.display()),
            Secret::Literal(_) => f.write_str("a literal in the config"),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub text: Option<String>,
    pub html: Option<String>,
}

/// A `--transport-override` file: every message goes through `transport`,
/// and its copy to `copy_to_sent` (none without it).
#[derive(Debug, Clone)]
pub struct TransportOverride {
    pub transport: Located<Transport>,
    pub copy_to_sent: Option<Located<CopyToSent>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CopyToSent {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub ca_file: Option<PathBuf>,
    pub account: Account,
    pub folder: String,
    pub create_folder: bool,
}

#[derive(Debug, Clone)]
pub struct Administration {
    pub id: String,
    pub at: Location,
    pub name: String,
    pub profile: Option<Located<String>>,
    pub default_language: Option<Located<String>>,
    /// language -> process -> template id; each table located at its language key
    pub languages: BTreeMap<String, Located<BTreeMap<String, Located<String>>>>,
    pub level_texts: LevelTexts,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub at: Location,
    pub name: Option<String>,
    pub personal: Option<Personal>,
    pub level_texts: LevelTexts,
}

/// A user's personal settings; they count only while `enabled` is true.
#[derive(Debug, Clone)]
pub struct Personal {
    pub at: Location,
    pub enabled: Located<bool>,
    pub profile: Option<Located<String>>,
    pub from: Option<Located<Mailbox>>,
    pub reply_to: Option<Located<Mailbox>>,
    pub signature: Option<Located<Signature>>,
    pub account: Option<Located<Account>>,
    pub copy_to_sent: Option<Located<CopyToSent>>,
    /// How these values read in explanations.
    pub texts: Texts,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub id: String,
    pub at: Location,
    pub description: Option<String>,
    pub process: Option<Located<String>>,
    pub language: Option<Located<String>>,
    pub profile: Option<Located<String>>,
    pub subject: Located<String>,
    pub text: Option<Located<String>>,
    pub html: Option<Located<String>>,
    pub disclaimer: Option<Signature>,
    pub attachments: Vec<Attachment>,
    /// Example data `validate` renders the template with (never sent).
    pub sample_data: Option<Located<PathBuf>>,
    /// Extra headers (`X-...`, `List-Unsubscribe`, ...): name -> value template.
    pub headers: Vec<(String, Located<String>)>,
    /// Images for the HTML part.
    pub inline_images: Vec<InlineImage>,
    pub level_texts: LevelTexts,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub at: Location,
    /// Resolved against the directory of the file that names it.
    pub path: PathBuf,
    /// The name the recipient sees.
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Alerts {
    pub at: Location,
    pub profile: Option<Located<String>>,
    pub admin_email: Option<Located<Mailbox>>,
    pub definitions: BTreeMap<String, AlertDefinition>,
}

#[derive(Debug, Clone)]
pub struct AlertDefinition {
    pub at: Location,
    pub recipients: Vec<Mailbox>,
    pub template: Located<String>,
    pub language: Option<Located<String>>,
}
