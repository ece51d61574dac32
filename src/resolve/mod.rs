//! Pure resolution: `(&Config, &Request) -> Resolution`. The decision and
//! its explanation come from the same call, so `explain` can never drift
//! from what `send` does.

pub mod alert;
mod fields;
pub mod matrix;
mod template;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::config::texts::LevelTexts;
use crate::config::{
    Account, Administration, Config, CopyToSent, Located, Location, Profile, Signature, Transport,
    TransportOverride, User, closest,
};
use lettre::message::Mailbox;

pub use fields::{FieldTrace, Origin, Shadowed, of_profile};
pub use template::{LanguageTry, Selection, TemplateChoice};

/// What is being sent, and on whose behalf.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub administration: &'a str,
    pub user: &'a str,
    pub selector: TemplateSelector<'a>,
    /// Replaces every profile's transport (staging, local tests).
    pub transport_override: Option<&'a TransportOverride>,
}

#[derive(Debug, Clone)]
pub enum TemplateSelector<'a> {
    Template(&'a str),
    Process {
        process: &'a str,
        language: Option<&'a str>,
    },
}

/// The four places a profile can come from, highest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Template,
    Administration,
    Personal,
    System,
}

impl Level {
    /// 1 (template) to 4 (system), as the precedence chain numbers them.
    pub fn number(self) -> usize {
        self as usize + 1
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Template => "template",
            Level::Administration => "administration",
            Level::Personal => "personal",
            Level::System => "system",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelStatus {
    /// This level's profile was used.
    Won,
    /// Nothing set here; resolution fell through.
    Empty,
    /// Personal settings exist but are not enabled.
    Disabled,
    /// A profile is set here, but a higher level won.
    Shadowed,
}

/// One level of the precedence chain as resolution saw it.
#[derive(Debug, Clone, Serialize)]
pub struct LevelTrace {
    pub level: Level,
    pub profile: Option<String>,
    pub status: LevelStatus,
    /// Whose setting this level is: ``template `x` ``, ``administration `y` ``.
    pub owner: Arc<str>,
    /// Where the profile is set (or where the level's settings are).
    pub source: Option<Location>,
    /// Why the level has this status, in words.
    pub note: Arc<str>,
}

/// The effective values a message is composed and sent with, borrowed from
/// the configuration (and the transport override).
#[derive(Debug, Clone)]
pub struct Effective<'c> {
    pub from: &'c Mailbox,
    pub reply_to: Option<&'c Mailbox>,
    pub bcc: &'c [Mailbox],
    pub html: bool,
    pub signature: Option<&'c Signature>,
    /// Borrowed, or copied from a transport override.
    pub transport: Cow<'c, Transport>,
    /// The login for SMTP (from the transport, or a personal override).
    pub account: Option<Cow<'c, Account>>,
    pub copy_to_sent: Option<Cow<'c, CopyToSent>>,
}

#[derive(Debug, Clone)]
pub struct Resolution<'c> {
    pub administration: &'c Administration,
    pub user: &'c User,
    pub template: TemplateChoice<'c>,
    pub levels: [LevelTrace; 4],
    pub level: Level,
    pub profile: &'c Profile,
    pub effective: Effective<'c>,
    /// Every effective field with its source and what it shadowed.
    pub fields: Vec<FieldTrace>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown {what} `{name}`")]
    Unknown {
        what: &'static str,
        name: String,
        hint: String,
    },
    #[error(
        "no template for process `{process}` in administration `{administration}`; tried languages: {}",
        tried.join(", ")
    )]
    NoTemplate {
        administration: String,
        process: String,
        tried: Vec<String>,
    },
    #[error("no profile: {}", places.join("; "))]
    NoProfile { places: Vec<String> },
}

impl ResolveError {
    pub fn hint(&self) -> String {
        match self {
            ResolveError::Unknown { hint, .. } => hint.clone(),
            ResolveError::NoTemplate {
                administration,
                process,
                tried,
            } => format!(
                "add `{process}: <template>` under `administrations.{administration}.languages.{}`",
                tried.first().map_or("<language>", String::as_str)
            ),
            ResolveError::NoProfile { .. } => {
                "set `system.profile` so that every message has a profile to fall back to".into()
            }
        }
    }
}

pub fn unknown<'a>(
    what: &'static str,
    name: &str,
    known: impl Iterator<Item = &'a String>,
) -> ResolveError {
    let known: Vec<&String> = known.collect();
    let hint = match closest(name, &known) {
        Some(close) => format!("did you mean `{close}`?"),
        None => format!(
            "known: {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    ResolveError::Unknown {
        what,
        name: name.to_string(),
        hint,
    }
}

/// Resolves which template and profile a request uses, and every field.
pub fn resolve<'c>(
    config: &'c Config,
    request: &Request<'_>,
) -> Result<Resolution<'c>, ResolveError> {
    let administration = config
        .administrations
        .get(request.administration)
        .ok_or_else(|| {
            unknown(
                "administration",
                request.administration,
                config.administrations.keys(),
            )
        })?;
    let user = config
        .users
        .get(request.user)
        .ok_or_else(|| unknown("user", request.user, config.users.keys()))?;
    resolve_for(
        config,
        administration,
        user,
        &request.selector,
        request.transport_override,
    )
}

/// [`resolve`] for an administration and user already looked up (the user
/// may be one that is not in the configuration, such as "no personal
/// settings" in [`matrix`]).
pub fn resolve_for<'a>(
    config: &'a Config,
    administration: &'a Administration,
    user: &'a User,
    selector: &TemplateSelector<'_>,
    transport_override: Option<&TransportOverride>,
) -> Result<Resolution<'a>, ResolveError> {
    let template = template::select(config, administration, selector)?;
    let (levels, level, profile_id) = profile_levels(config, administration, user, &template)?;
    let profile = &config.profiles[&profile_id];
    let (effective, fields) =
        fields::resolve(config, user, &levels, level, profile, transport_override);
    Ok(Resolution {
        administration,
        user,
        template,
        levels,
        level,
        profile,
        effective,
        fields,
    })
}

type Levels = ([LevelTrace; 4], Level, String);

/// The precedence chain: the first non-empty level wins.
fn profile_levels(
    config: &Config,
    administration: &Administration,
    user: &User,
    template: &TemplateChoice<'_>,
) -> Result<Levels, ResolveError> {
    let candidate =
        |level, set: &Option<Located<String>>, empty_source: &Location, texts: &LevelTexts| {
            let (profile, source) = match set {
                Some(id) => (Some(id.value.clone()), id.at.clone()),
                None => (None, empty_source.clone()),
            };
            LevelTrace {
                level,
                status: if profile.is_some() {
                    LevelStatus::Shadowed
                } else {
                    LevelStatus::Empty
                },
                owner: texts.owner.clone(),
                note: texts.note.clone(),
                profile,
                source: Some(source),
            }
        };
    let t = template.template;
    let personal = match &user.personal {
        None => LevelTrace {
            level: Level::Personal,
            profile: None,
            status: LevelStatus::Empty,
            owner: user.level_texts.owner.clone(),
            note: user.level_texts.note.clone(),
            source: Some(user.at.clone()),
        },
        Some(p) if !p.enabled.value => LevelTrace {
            level: Level::Personal,
            profile: p.profile.as_ref().map(|id| id.value.clone()),
            status: LevelStatus::Disabled,
            owner: user.level_texts.owner.clone(),
            note: user.level_texts.note.clone(),
            source: Some(p.enabled.at.clone()),
        },
        Some(p) => candidate(Level::Personal, &p.profile, &p.at, &user.level_texts),
    };
    let mut levels = [
        candidate(Level::Template, &t.profile, &t.at, &t.level_texts),
        candidate(
            Level::Administration,
            &administration.profile,
            &administration.at,
            &administration.level_texts,
        ),
        personal,
        candidate(
            Level::System,
            &config.system.profile,
            &config.system.at,
            &config.system.level_texts,
        ),
    ];
    let Some(winner) = levels
        .iter_mut()
        .find(|l| l.status == LevelStatus::Shadowed)
    else {
        return Err(ResolveError::NoProfile {
            places: levels.iter().map(|l| l.note.to_string()).collect(),
        });
    };
    winner.status = LevelStatus::Won;
    let (level, id) = (
        winner.level,
        winner.profile.clone().expect("a won level has a profile"),
    );
    Ok((levels, level, id))
}
