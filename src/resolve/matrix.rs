//! Every context a configuration can be asked about: administration ×
//! process × language × user (each user with enabled personal settings, plus
//! "no personal settings"), resolved with the same function `send` uses.
//! `explain --all` prints it; `plan` compares two of them.

use serde::Serialize;

use crate::config::{Config, Location, User};

use super::{Level, Resolution, TemplateSelector, resolve_for};

/// The user id shown for "no personal settings".
pub const NO_PERSONAL_SETTINGS: &str = "(no personal settings)";

/// Which situation a row is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Context {
    pub administration: String,
    pub process: String,
    pub language: String,
    pub user: String,
}

/// The outcome that matters to a reader of `explain --all` and `plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub template: String,
    pub profile: String,
    pub level: Level,
    pub from: String,
    pub reply_to: String,
    pub bcc: String,
    pub transport: String,
    /// Where each value above was set, by column name.
    #[serde(skip)]
    pub sources: Vec<(&'static str, Option<Location>)>,
}

impl Outcome {
    /// The columns compared and printed, with their values.
    pub fn columns(&self) -> [(&'static str, String); 7] {
        [
            ("template", self.template.clone()),
            ("profile", self.profile.clone()),
            ("level", self.level.to_string()),
            ("from", self.from.clone()),
            ("reply_to", self.reply_to.clone()),
            ("bcc", self.bcc.clone()),
            ("transport", self.transport.clone()),
        ]
    }

    pub fn source(&self, column: &str) -> Option<&Location> {
        self.sources
            .iter()
            .find(|(name, _)| *name == column)
            .and_then(|(_, at)| at.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub context: Context,
    /// The outcome, or why the context does not resolve.
    pub outcome: Result<Outcome, String>,
}

/// Resolves every context of `config`, sorted by context.
pub fn matrix(config: &Config) -> Vec<Row> {
    let nobody = User {
        id: NO_PERSONAL_SETTINGS.into(),
        at: config.system.at.clone(),
        name: None,
        personal: None,
    };
    let users: Vec<&User> = config
        .users
        .values()
        .filter(|u| u.personal.as_ref().is_some_and(|p| p.enabled.value))
        .chain(std::iter::once(&nobody))
        .collect();
    let mut rows = Vec::new();
    for administration in config.administrations.values() {
        for process in &config.system.processes {
            for language in &config.system.languages {
                let selector = TemplateSelector::Process {
                    process,
                    language: Some(language),
                };
                for user in &users {
                    let outcome = resolve_for(config, administration, user, &selector, None)
                        .map(|r| outcome(&r))
                        .map_err(|e| e.to_string());
                    rows.push(Row {
                        context: Context {
                            administration: administration.id.clone(),
                            process: process.clone(),
                            language: language.clone(),
                            user: user.id.clone(),
                        },
                        outcome,
                    });
                }
            }
        }
    }
    rows.sort_by(|a, b| a.context.cmp(&b.context));
    rows
}

fn outcome(r: &Resolution<'_>) -> Outcome {
    let field = |name: &str| {
        r.fields
            .iter()
            .find(|f| f.field == name)
            .expect("every field is traced")
    };
    let value_and_source = |name: &'static str| {
        let f = field(name);
        (f.value.clone(), (name, f.origin.source.clone()))
    };
    let (from, from_at) = value_and_source("from");
    let (reply_to, reply_to_at) = value_and_source("reply_to");
    let (bcc, bcc_at) = value_and_source("bcc");
    let (transport, transport_at) = value_and_source("transport");
    let level_at = r
        .levels
        .iter()
        .find(|l| l.level == r.level)
        .and_then(|l| l.source.clone());
    let template_at = match &r.template.selection {
        super::Selection::LanguageTable { tried, .. } => {
            tried.last().and_then(|t| t.source.clone())
        }
        super::Selection::Explicit => Some(r.template.template.at.clone()),
    };
    Outcome {
        template: r.template.template.id.clone(),
        profile: r.profile.id.clone(),
        level: r.level,
        from,
        reply_to,
        bcc,
        transport,
        sources: vec![
            ("template", template_at),
            ("profile", level_at.clone()),
            ("level", level_at),
            from_at,
            reply_to_at,
            bcc_at,
            transport_at,
        ],
    }
}
