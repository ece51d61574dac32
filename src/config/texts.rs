//! How configured values read in `explain`, `plan` and `explain --all`,
//! worked out once when the configuration is compiled: a resolution then
//! shares these texts instead of formatting them again (a large
//! configuration resolves close to a million contexts for `plan`).

use std::sync::Arc;

use lettre::message::Mailbox;

use super::model::{
    Account, CopyToSent, Located, Login, Personal, Profile, Security, Signature, TokenSource,
    Transport, User,
};

/// The texts of one profile's or one user's personal settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Texts {
    /// ``profile `billing` `` or ``personal settings of `anna` ``.
    pub label: Arc<str>,
    pub from: Option<Arc<str>>,
    pub reply_to: Option<Arc<str>>,
    pub bcc: Option<Arc<str>>,
    pub html: Option<Arc<str>>,
    pub signature: Option<Arc<str>>,
    pub transport: Option<Arc<str>>,
    pub account: Option<Arc<str>>,
    pub copy_to_sent: Option<Arc<str>>,
}

impl Texts {
    pub fn of_profile(profile: &Profile) -> Texts {
        let auth = match &profile.transport.value {
            Transport::Smtp(smtp) => smtp.auth.as_ref(),
            _ => None,
        };
        Texts {
            label: format!("profile `{}`", profile.id).into(),
            from: Some(profile.from.value.to_string().into()),
            reply_to: profile
                .reply_to
                .as_ref()
                .map(|r| r.value.to_string().into()),
            bcc: profile.bcc.as_ref().map(|b| mailboxes(&b.value).into()),
            html: profile.html.as_ref().map(|h| h.value.to_string().into()),
            signature: profile.signature.as_ref().map(signature),
            transport: Some(transport(&profile.transport.value).into()),
            account: auth.map(|a| account(&a.value).into()),
            copy_to_sent: profile
                .copy_to_sent
                .as_ref()
                .map(|c| copy_to_sent(&c.value).into()),
        }
    }

    pub fn of_personal(personal: &Personal, user: &str) -> Texts {
        Texts {
            label: format!("personal settings of `{user}`").into(),
            from: personal.from.as_ref().map(|f| f.value.to_string().into()),
            reply_to: personal
                .reply_to
                .as_ref()
                .map(|r| r.value.to_string().into()),
            signature: personal.signature.as_ref().map(signature),
            account: personal.account.as_ref().map(|a| account(&a.value).into()),
            copy_to_sent: personal
                .copy_to_sent
                .as_ref()
                .map(|c| copy_to_sent(&c.value).into()),
            ..Texts::default()
        }
    }
}

fn mailboxes(list: &[Mailbox]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which parts a signature has (its text is shown by `preview`).
/// Which parts a signature has, and a short fingerprint of its content so
/// that `plan` sees an edited signature as a change.
fn signature(s: &Located<Signature>) -> Arc<str> {
    let parts = match (&s.value.text, &s.value.html) {
        (Some(_), Some(_)) => "text and html",
        (Some(_), None) => "text",
        (None, _) => "html",
    };
    let content = [s.value.text.as_deref(), s.value.html.as_deref()];
    let digest = content
        .iter()
        .flat_map(|part| part.unwrap_or_default().bytes().chain([0]))
        .fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
    format!("{parts} (#{digest:08x})").into()
}

/// A one-line transport summary; never contains a secret.
pub fn transport(transport: &Transport) -> String {
    match transport {
        Transport::Smtp(smtp) => {
            let security = match smtp.security {
                Security::Starttls => "STARTTLS",
                Security::Tls => "implicit TLS",
                Security::None => "no TLS",
            };
            format!("smtp {}:{} ({security})", smtp.host, smtp.port)
        }
        Transport::Sendmail(s) => format!("sendmail {}", s.command.display()),
        Transport::File(f) => format!("file {}", f.dir.display()),
    }
}

/// `user (password from env:NAME)`: where the secret is, never what it is.
pub fn account(account: &Account) -> String {
    match &account.login {
        Login::Password(secret) => format!("{} (password from {secret})", account.username),
        Login::OAuth2(source) => {
            format!("{} (XOAUTH2, {})", account.username, token_source(source))
        }
    }
}

/// Where an XOAUTH2 token comes from, with the secrets' places only.
pub fn token_source(source: &TokenSource) -> String {
    match source {
        TokenSource::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            ..
        } => format!(
            "client credentials of app `{client_id}` at {token_url}, secret from {client_secret}"
        ),
        TokenSource::RefreshToken {
            token_url,
            refresh_token,
            ..
        } => format!("refresh token from {refresh_token} at {token_url}"),
        TokenSource::Command(argv) => format!("token from the command `{}`", argv.join(" ")),
    }
}

pub fn copy_to_sent(copy: &CopyToSent) -> String {
    format!("imap {}:{} folder `{}`", copy.host, copy.port, copy.folder)
}

/// How one level of the precedence chain reads in `explain`: whose setting
/// it is and what it says, fixed by the configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelTexts {
    /// ``template `x` ``, ``administration `y` ``, `system`, ...
    pub owner: Arc<str>,
    /// ``template `x`: profile `billing` `` or ``...: no profile set``.
    pub note: Arc<str>,
}

impl LevelTexts {
    pub fn new(owner: String, profile: Option<&str>) -> LevelTexts {
        let note = match profile {
            Some(id) => format!("{owner}: profile `{id}`"),
            None => format!("{owner}: no profile set"),
        };
        LevelTexts {
            owner: owner.into(),
            note: note.into(),
        }
    }

    /// The personal level of a user: absent, disabled or set.
    pub fn for_user(user: &User) -> LevelTexts {
        match &user.personal {
            None => LevelTexts {
                owner: format!("user `{}`", user.id).into(),
                note: format!("user `{}` has no personal settings", user.id).into(),
            },
            Some(p) if !p.enabled.value => LevelTexts {
                owner: format!("personal settings of `{}`", user.id).into(),
                note: format!(
                    "personal settings of `{}` are disabled (`enabled: false`)",
                    user.id
                )
                .into(),
            },
            Some(p) => LevelTexts::new(
                format!("personal settings of `{}`", user.id),
                p.profile.as_ref().map(|id| id.value.as_str()),
            ),
        }
    }
}
