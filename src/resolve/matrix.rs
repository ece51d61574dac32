//! Every context a configuration can be asked about: administration ×
//! process × language × user (each user with enabled personal settings, plus
//! "no personal settings"), resolved with the same function `send` uses.
//! `explain --all` prints it; `plan` compares two of them.

use std::sync::Arc;

use serde::Serialize;

use crate::config::texts::LevelTexts;
use crate::config::{Config, Location, User};

use super::{Level, Resolution, TemplateSelector, resolve_for};

/// The user id shown for "no personal settings".
pub const NO_PERSONAL_SETTINGS: &str = "(no personal settings)";

/// Which situation a row is about. Shared strings: a large configuration
/// has close to a million rows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Context {
    pub administration: Arc<str>,
    pub process: Arc<str>,
    pub language: Arc<str>,
    pub user: Arc<str>,
}

/// How many values an [`Outcome`] has.
pub const COLUMNS: usize = 11;

/// The outcome that matters to a reader of `explain --all` and `plan`:
/// every effective field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub template: String,
    pub profile: String,
    pub level: Level,
    pub from: Arc<str>,
    pub reply_to: Arc<str>,
    pub bcc: Arc<str>,
    pub transport: Arc<str>,
    pub account: Arc<str>,
    pub html: Arc<str>,
    pub signature: Arc<str>,
    pub copy_to_sent: Arc<str>,
    /// Where each value above was set, by column name.
    #[serde(skip)]
    pub sources: Vec<(&'static str, Option<Location>)>,
}

impl Outcome {
    /// The columns compared and printed, with their values.
    pub fn columns(&self) -> [(&'static str, &str); COLUMNS] {
        [
            ("template", &self.template),
            ("profile", &self.profile),
            ("level", self.level.as_str()),
            ("from", &self.from),
            ("reply_to", &self.reply_to),
            ("bcc", &self.bcc),
            ("transport", &self.transport),
            ("account", &self.account),
            ("html", &self.html),
            ("signature", &self.signature),
            ("copy_to_sent", &self.copy_to_sent),
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
    /// The outcome, or why the context does not resolve; shared between
    /// the rows of users who get the same one.
    pub outcome: Result<Arc<Outcome>, Arc<str>>,
}

/// Most contexts `explain --all` and `plan` take on: about 5 s and a few
/// GB on one core. A configuration with more is refused up front instead of
/// running out of memory.
pub const MAX_CONTEXTS: usize = 5_000_000;

/// A configuration with more than [`MAX_CONTEXTS`] contexts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the configuration has {0} contexts (administrations × processes × languages × users with personal settings); at most {MAX_CONTEXTS} are resolved at once"
)]
pub struct TooManyContexts(pub usize);

/// How many contexts [`matrix`] resolves.
pub fn contexts(config: &Config) -> usize {
    let users = 1 + config
        .users
        .values()
        .filter(|u| u.personal.as_ref().is_some_and(|p| p.enabled.value))
        .count();
    [
        config.administrations.len(),
        config.system.processes.len(),
        config.system.languages.len(),
        users,
    ]
    .iter()
    .fold(1usize, |total, n| total.saturating_mul(*n))
}

/// Resolves every context of `config`, in context order.
pub fn matrix(config: &Config) -> Result<Vec<Row>, TooManyContexts> {
    let count = contexts(config);
    if count > MAX_CONTEXTS {
        return Err(TooManyContexts(count));
    }
    let mut nobody = User {
        id: NO_PERSONAL_SETTINGS.into(),
        at: config.system.at.clone(),
        name: None,
        personal: None,
        level_texts: Default::default(),
    };
    nobody.level_texts = LevelTexts::for_user(&nobody);
    // Generated in sorted order (administrations and users are sorted maps;
    // "(no personal settings)" sorts before every id), so no sort is needed.
    let mut users: Vec<&User> = config
        .users
        .values()
        .filter(|u| u.personal.as_ref().is_some_and(|p| p.enabled.value))
        .collect();
    users.insert(0, &nobody);
    let user_ids: Vec<Arc<str>> = users.iter().map(|u| Arc::from(u.id.as_str())).collect();
    let mut processes = config.system.processes.clone();
    processes.sort();
    let mut languages = config.system.languages.clone();
    languages.sort();
    let mut rows = Vec::new();
    for administration in config.administrations.values() {
        let administration_id: Arc<str> = Arc::from(administration.id.as_str());
        for process in &processes {
            let process_id: Arc<str> = Arc::from(process.as_str());
            for language in &languages {
                let language_id: Arc<str> = Arc::from(language.as_str());
                let selector = TemplateSelector::Process {
                    process,
                    language: Some(language),
                };
                // The user matters only when neither the template nor the
                // administration pins the profile (and for "no profile at
                // all"): otherwise every user gets the "no personal
                // settings" outcome, as resolution ignores personal settings
                // then. Resolving it once saves most of the work.
                let baseline = resolve_for(config, administration, &nobody, &selector, None);
                let shared = match &baseline {
                    Ok(r) if matches!(r.level, Level::Template | Level::Administration) => {
                        Some(Ok(Arc::new(outcome(r))))
                    }
                    Err(e @ super::ResolveError::NoTemplate { .. }) => {
                        Some(Err(Arc::from(e.to_string())))
                    }
                    _ => None,
                };
                for (user, user_id) in users.iter().zip(&user_ids) {
                    let outcome = match &shared {
                        Some(shared) => shared.clone(),
                        None => resolve_for(config, administration, user, &selector, None)
                            .map(|r| Arc::new(outcome(&r)))
                            .map_err(|e| Arc::from(e.to_string())),
                    };
                    rows.push(Row {
                        context: Context {
                            administration: administration_id.clone(),
                            process: process_id.clone(),
                            language: language_id.clone(),
                            user: user_id.clone(),
                        },
                        outcome,
                    });
                }
            }
        }
    }
    Ok(rows)
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
    let (account, account_at) = value_and_source("account");
    let (html, html_at) = value_and_source("html");
    let (signature, signature_at) = value_and_source("signature");
    let (copy_to_sent, copy_to_sent_at) = value_and_source("copy_to_sent");
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
        account,
        html,
        signature,
        copy_to_sent,
        sources: vec![
            ("template", template_at),
            ("profile", level_at.clone()),
            ("level", level_at),
            from_at,
            reply_to_at,
            bcc_at,
            transport_at,
            account_at,
            html_at,
            signature_at,
            copy_to_sent_at,
        ],
    }
}
