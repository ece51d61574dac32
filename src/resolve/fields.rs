//! Field resolution: the winning profile supplies every field; a user's
//! enabled personal overrides replace some of them, but only when the
//! profile came from the personal or system level.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use crate::config::texts;
use crate::config::{
    Account, Config, CopyToSent, Located, Location, Personal, Profile, Transport,
    TransportOverride, User,
};

use super::{Effective, Level, LevelStatus, LevelTrace};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    /// In words: ``profile `billing` ``, ``personal settings of `anna` ``, `default`.
    pub what: Arc<str>,
    /// The level of the precedence chain it came from, if any.
    pub level: Option<Level>,
    pub source: Option<Location>,
}

/// A value that lost to the effective one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shadowed {
    pub value: Arc<str>,
    pub origin: Origin,
    /// Set for personal overrides that did not apply, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

/// One effective field with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldTrace {
    pub field: &'static str,
    pub value: Arc<str>,
    pub origin: Origin,
    pub shadowed: Vec<Shadowed>,
}

struct Candidate {
    value: Arc<str>,
    origin: Origin,
    /// Why this candidate may not be used (a personal override that does not apply).
    blocked: Option<String>,
    /// False for the profiles of levels that lost: their values are shown
    /// as shadowed but can never become the effective value.
    eligible: bool,
}

/// The people and profiles a field's value may come from.
struct Sources<'c> {
    winner: (Level, &'c Profile),
    /// The profiles of the levels that lost, with their levels.
    lower: Vec<(Level, &'c Profile)>,
    personal: Option<&'c Personal>,
    /// `None` when personal overrides apply, else why not.
    personal_blocked: Option<String>,
    transport_override: Option<&'c TransportOverride>,
}

pub(super) fn resolve<'c>(
    config: &'c Config,
    user: &'c User,
    levels: &[LevelTrace; 4],
    level: Level,
    winner: &'c Profile,
    transport_override: Option<&TransportOverride>,
) -> (Effective<'c>, Vec<FieldTrace>) {
    let lower = levels
        .iter()
        .filter(|l| l.status == LevelStatus::Shadowed)
        .filter_map(|l| Some((l.level, config.profiles.get(l.profile.as_ref()?)?)))
        .collect();
    let personal = user.personal.as_ref().filter(|p| p.enabled.value);
    let personal_blocked = match (user.personal.as_ref(), level) {
        (Some(p), _) if !p.enabled.value => {
            Some(format!("personal settings of `{}` are disabled", user.id))
        }
        (_, Level::Template | Level::Administration) => Some(format!(
            "profile pinned by {}",
            levels[level as usize].owner
        )),
        _ => None,
    };
    let sources = Sources {
        winner: (level, winner),
        lower,
        personal: user.personal.as_ref(),
        personal_blocked,
        transport_override,
    };
    // The personal settings whose overrides apply here, if any.
    let applied = personal.filter(|_| sources.personal_blocked.is_none());

    let effective = Effective {
        from: applied
            .and_then(|p| p.from.as_ref())
            .map_or(&winner.from.value, |f| &f.value),
        reply_to: applied
            .and_then(|p| p.reply_to.as_ref())
            .or(winner.reply_to.as_ref())
            .map(|r| &r.value),
        bcc: winner.bcc.as_ref().map_or(&[], |b| b.value.as_slice()),
        html: winner.html.as_ref().is_none_or(|h| h.value),
        signature: applied
            .and_then(|p| p.signature.as_ref())
            .or(winner.signature.as_ref())
            .map(|s| &s.value),
        transport: match transport_override {
            Some(over) => Cow::Owned(over.transport.value.clone()),
            None => Cow::Borrowed(&winner.transport.value),
        },
        account: match transport_override {
            Some(over) => smtp_auth(&over.transport.value).map(|a| Cow::Owned(a.value.clone())),
            None => applied
                .and_then(|p| p.account.as_ref())
                .or_else(|| smtp_auth(&winner.transport.value))
                .map(|a| Cow::Borrowed(&a.value)),
        },
        // An override sends elsewhere (a test server, a staging relay): a
        // copy in the real sent folder would record mail that never left.
        // The override file names its own folder, or there is no copy.
        copy_to_sent: match transport_override {
            Some(over) => over
                .copy_to_sent
                .as_ref()
                .map(|c| Cow::Owned(c.value.clone())),
            None => applied
                .and_then(|p| p.copy_to_sent.as_ref())
                .or(winner.copy_to_sent.as_ref())
                .map(|c| Cow::Borrowed(&c.value)),
        },
    };
    let text = |t: &Option<Arc<str>>, at: Option<&Location>| Some((t.clone()?, at?.clone()));
    let fields = vec![
        sources.trace(
            "from",
            |p| text(&p.texts.from, Some(&p.from.at)),
            |p| text(&p.texts.from, p.from.as_ref().map(|f| &f.at)),
            "-",
        ),
        sources.trace(
            "reply_to",
            |p| text(&p.texts.reply_to, p.reply_to.as_ref().map(|r| &r.at)),
            |p| text(&p.texts.reply_to, p.reply_to.as_ref().map(|r| &r.at)),
            "(none)",
        ),
        sources.trace(
            "bcc",
            |p| text(&p.texts.bcc, p.bcc.as_ref().map(|b| &b.at)),
            |_| None,
            "(none)",
        ),
        sources.trace(
            "html",
            |p| text(&p.texts.html, p.html.as_ref().map(|h| &h.at)),
            |_| None,
            "true",
        ),
        sources.trace(
            "signature",
            |p| text(&p.texts.signature, p.signature.as_ref().map(|s| &s.at)),
            |p| text(&p.texts.signature, p.signature.as_ref().map(|s| &s.at)),
            "(none)",
        ),
        sources.trace_transport(),
        sources.trace_account(),
        sources.trace_copy_to_sent(),
    ];
    (effective, fields)
}

/// A text and where its value is written.
type Text = Option<(Arc<str>, Location)>;

impl Sources<'_> {
    /// Traces a field that a profile sets and (optionally) personal settings override.
    fn trace(
        &self,
        field: &'static str,
        from_profile: impl Fn(&Profile) -> Text,
        from_personal: impl Fn(&Personal) -> Text,
        default: &str,
    ) -> FieldTrace {
        let mut candidates = Vec::new();
        if let Some(personal) = self.personal
            && let Some((value, at)) = from_personal(personal)
        {
            candidates.push(self.personal_candidate(personal, value, at));
        }
        candidates.extend(self.profile_candidates(from_profile));
        pick(field, candidates, default)
    }

    fn personal_candidate(&self, personal: &Personal, value: Arc<str>, at: Location) -> Candidate {
        Candidate {
            value,
            origin: Origin {
                what: personal.texts.label.clone(),
                level: Some(Level::Personal),
                source: Some(at),
            },
            blocked: self.personal_blocked.clone(),
            eligible: true,
        }
    }

    fn profile_candidates(&self, from_profile: impl Fn(&Profile) -> Text) -> Vec<Candidate> {
        std::iter::once(self.winner)
            .chain(self.lower.iter().copied())
            .filter_map(|(level, profile)| {
                from_profile(profile).map(|(value, at)| Candidate {
                    value,
                    origin: Origin {
                        what: profile.texts.label.clone(),
                        level: Some(level),
                        source: Some(at),
                    },
                    blocked: None,
                    eligible: profile.id == self.winner.1.id,
                })
            })
            .collect()
    }

    fn override_candidate(
        &self,
        value: impl Fn(&Transport) -> Option<String>,
    ) -> Option<Candidate> {
        let over = self.transport_override?;
        Some(Candidate {
            value: value(&over.transport.value)
                .unwrap_or_else(|| "(none)".into())
                .into(),
            origin: Origin {
                what: Arc::from("transport override"),
                level: None,
                source: Some(over.transport.at.clone()),
            },
            blocked: None,
            eligible: true,
        })
    }

    fn trace_transport(&self) -> FieldTrace {
        let mut candidates: Vec<Candidate> = self
            .override_candidate(|t| Some(texts::transport(t)))
            .into_iter()
            .collect();
        candidates.extend(
            self.profile_candidates(|p| Some((p.texts.transport.clone()?, p.transport.at.clone()))),
        );
        pick("transport", candidates, "-")
    }

    fn trace_account(&self) -> FieldTrace {
        let account_of = |t: &Transport| smtp_auth(t).map(|a| texts::account(&a.value));
        let mut candidates: Vec<Candidate> =
            self.override_candidate(account_of).into_iter().collect();
        if let Some(personal) = self.personal
            && let (Some(value), Some(account)) = (&personal.texts.account, &personal.account)
        {
            candidates.push(self.personal_candidate(personal, value.clone(), account.at.clone()));
        }
        candidates.extend(self.profile_candidates(|p| {
            let at = &smtp_auth(&p.transport.value)?.at;
            Some((p.texts.account.clone()?, at.clone()))
        }));
        pick("account", candidates, "(none)")
    }

    /// Like the personal fields, but a transport override turns it off.
    fn trace_copy_to_sent(&self) -> FieldTrace {
        let copy = |c: &Option<Arc<str>>, at: Option<&Located<CopyToSent>>| {
            Some((c.clone()?, at?.at.clone()))
        };
        let mut candidates = Vec::new();
        if let Some(over) = self.transport_override {
            let (value, at) = match &over.copy_to_sent {
                Some(copy) => (texts::copy_to_sent(&copy.value).into(), &copy.at),
                None => (Arc::from("(none)"), &over.transport.at),
            };
            candidates.push(Candidate {
                value,
                origin: Origin {
                    what: Arc::from("transport override"),
                    level: None,
                    source: Some(at.clone()),
                },
                blocked: None,
                eligible: true,
            });
        }
        if let Some(personal) = self.personal
            && let Some((value, at)) =
                copy(&personal.texts.copy_to_sent, personal.copy_to_sent.as_ref())
        {
            candidates.push(self.personal_candidate(personal, value, at));
        }
        candidates.extend(
            self.profile_candidates(|p| copy(&p.texts.copy_to_sent, p.copy_to_sent.as_ref())),
        );
        pick("copy_to_sent", candidates, "(none)")
    }
}

/// The first usable candidate wins; the others are shadowed or ignored.
fn pick(field: &'static str, candidates: Vec<Candidate>, default: &str) -> FieldTrace {
    let winner = candidates
        .iter()
        .position(|c| c.eligible && c.blocked.is_none());
    let mut shadowed = Vec::new();
    let mut chosen = None;
    for (i, candidate) in candidates.into_iter().enumerate() {
        if Some(i) == winner {
            chosen = Some(candidate);
        } else {
            shadowed.push(Shadowed {
                value: candidate.value,
                origin: candidate.origin,
                ignored: candidate.blocked,
            });
        }
    }
    let (value, origin) = match chosen {
        Some(c) => (c.value, c.origin),
        None => (
            Arc::from(default),
            Origin {
                // A lower level's profile may set it: it does not count.
                what: Arc::from(if shadowed.is_empty() {
                    "default (no profile sets it)"
                } else {
                    "default (the winning profile does not set it)"
                }),
                level: None,
                source: None,
            },
        ),
    };
    FieldTrace {
        field,
        value,
        origin,
        shadowed,
    }
}

fn smtp_auth(transport: &Transport) -> Option<&Located<Account>> {
    match transport {
        Transport::Smtp(smtp) => smtp.auth.as_ref(),
        _ => None,
    }
}

/// The values of one profile as it stands, without a precedence chain:
/// for a plain message such as the administrator's alert notice.
pub fn of_profile<'c>(
    profile: &'c Profile,
    transport_override: Option<&'c TransportOverride>,
) -> Effective<'c> {
    let transport: &'c Transport =
        transport_override.map_or(&profile.transport.value, |o| &o.transport.value);
    Effective {
        from: &profile.from.value,
        reply_to: None,
        bcc: &[],
        html: false,
        signature: None,
        transport: Cow::Borrowed(transport),
        account: smtp_auth(transport).map(|a| Cow::Borrowed(&a.value)),
        copy_to_sent: None,
    }
}
