//! Pure resolution: `(&Config, &Request) -> Resolution`. The decision and
//! its explanation come from the same call, so `explain` can never drift
//! from what `send` does.

mod fields;
pub mod matrix;
mod template;

use std::fmt;

use serde::Serialize;

use crate::config::{
    Account, Administration, Config, CopyToSent, Located, Location, Profile, Signature, Transport,
    User, closest,
};
use lettre::message::Mailbox;

pub use fields::{FieldTrace, Origin, Shadowed, transport_text as fields_transport_text};
pub use template::{LanguageTry, Selection, TemplateChoice};

/// What is being sent, and on whose behalf.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub administration: &'a str,
    pub user: &'a str,
    pub selector: TemplateSelector<'a>,
    /// Replaces every profile's transport (staging, local tests).
    pub transport_override: Option<&'a Located<Transport>>,
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
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Template => "template",
            Level::Administration => "administration",
            Level::Personal => "personal",
            Level::System => "system",
        })
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
    pub owner: String,
    /// Where the profile is set (or where the level's settings are).
    pub source: Option<Location>,
    /// Why the level has this status, in words.
    pub note: String,
}

/// The effective values a message is composed and sent with.
#[derive(Debug, Clone)]
pub struct Effective {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub html: bool,
    pub signature: Option<Signature>,
    pub transport: Transport,
    /// The login for SMTP (from the transport, or a personal override).
    pub account: Option<Account>,
    pub copy_to_sent: Option<CopyToSent>,
}

#[derive(Debug, Clone)]
pub struct Resolution<'c> {
    pub administration: &'c Administration,
    pub user: &'c User,
    pub template: TemplateChoice<'c>,
    pub levels: [LevelTrace; 4],
    pub level: Level,
    pub profile: &'c Profile,
    pub effective: Effective,
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

pub(crate) fn unknown<'a>(
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
    transport_override: Option<&Located<Transport>>,
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
        |level, set: &Option<Located<String>>, empty_source: Location, owner: String| {
            let (profile, source) = match set {
                Some(id) => (Some(id.value.clone()), id.at.clone()),
                None => (None, empty_source),
            };
            LevelTrace {
                level,
                status: if profile.is_some() {
                    LevelStatus::Shadowed
                } else {
                    LevelStatus::Empty
                },
                note: match &profile {
                    Some(id) => format!("{owner}: profile `{id}`"),
                    None => format!("{owner}: no profile set"),
                },
                owner,
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
            owner: format!("user `{}`", user.id),
            source: Some(user.at.clone()),
            note: format!("user `{}` has no personal settings", user.id),
        },
        Some(p) if !p.enabled.value => LevelTrace {
            level: Level::Personal,
            profile: p.profile.as_ref().map(|id| id.value.clone()),
            status: LevelStatus::Disabled,
            owner: format!("personal settings of `{}`", user.id),
            source: Some(p.enabled.at.clone()),
            note: format!(
                "personal settings of `{}` are disabled (`enabled: false`)",
                user.id
            ),
        },
        Some(p) => candidate(
            Level::Personal,
            &p.profile,
            p.at.clone(),
            format!("personal settings of `{}`", user.id),
        ),
    };
    let mut levels = [
        candidate(
            Level::Template,
            &t.profile,
            t.at.clone(),
            format!("template `{}`", t.id),
        ),
        candidate(
            Level::Administration,
            &administration.profile,
            administration.at.clone(),
            format!("administration `{}`", administration.id),
        ),
        personal,
        candidate(
            Level::System,
            &config.system.profile,
            config.system.at.clone(),
            "system".into(),
        ),
    ];
    let Some(winner) = levels
        .iter_mut()
        .find(|l| l.status == LevelStatus::Shadowed)
    else {
        return Err(ResolveError::NoProfile {
            places: levels.iter().map(|l| l.note.clone()).collect(),
        });
    };
    winner.status = LevelStatus::Won;
    let (level, id) = (
        winner.level,
        winner.profile.clone().expect("a won level has a profile"),
    );
    Ok((levels, level, id))
}
