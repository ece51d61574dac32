//! Field resolution: the winning profile supplies every field; a user's
//! enabled personal overrides replace some of them, but only when the
//! profile came from the personal or system level (DESIGN.md §2).

use serde::Serialize;

use crate::config::{
    Account, Config, Located, Location, Personal, Profile, Security, Signature, Transport, User,
};

use super::{Effective, Level, LevelStatus, LevelTrace};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    /// In words: ``profile `billing` ``, ``personal settings of `anna` ``, `default`.
    pub what: String,
    /// The level of the precedence chain it came from, if any.
    pub level: Option<Level>,
    pub source: Option<Location>,
}

/// A value that lost to the effective one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shadowed {
    pub value: String,
    pub origin: Origin,
    /// Set for personal overrides that did not apply, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

/// One effective field with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldTrace {
    pub field: &'static str,
    pub value: String,
    pub origin: Origin,
    pub shadowed: Vec<Shadowed>,
}

struct Candidate {
    value: String,
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
    user: &'c User,
    personal: Option<&'c Personal>,
    /// `None` when personal overrides apply, else why not.
    personal_blocked: Option<String>,
    transport_override: Option<&'c Located<Transport>>,
}

pub(super) fn resolve(
    config: &Config,
    user: &User,
    levels: &[LevelTrace; 4],
    level: Level,
    winner: &Profile,
    transport_override: Option<&Located<Transport>>,
) -> (Effective, Vec<FieldTrace>) {
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
        user,
        personal: user.personal.as_ref(),
        personal_blocked,
        transport_override,
    };
    // The personal settings whose overrides apply here, if any.
    let applied = personal.filter(|_| sources.personal_blocked.is_none());

    let effective = Effective {
        from: applied
            .and_then(|p| p.from.clone())
            .map(|f| f.value)
            .unwrap_or_else(|| winner.from.value.clone()),
        reply_to: applied
            .and_then(|p| p.reply_to.clone())
            .or_else(|| winner.reply_to.clone())
            .map(|r| r.value),
        bcc: winner
            .bcc
            .as_ref()
            .map(|b| b.value.clone())
            .unwrap_or_default(),
        html: winner.html.as_ref().is_none_or(|h| h.value),
        signature: applied
            .and_then(|p| p.signature.clone())
            .or_else(|| winner.signature.clone())
            .map(|s| s.value),
        transport: transport_override
            .unwrap_or(&winner.transport)
            .value
            .clone(),
        account: match transport_override {
            Some(over) => smtp_auth(&over.value).map(|a| a.value.clone()),
            None => applied
                .and_then(|p| p.account.clone())
                .or_else(|| smtp_auth(&winner.transport.value).cloned())
                .map(|a| a.value),
        },
        copy_to_sent: applied
            .and_then(|p| p.copy_to_sent.clone())
            .or_else(|| winner.copy_to_sent.clone())
            .map(|c| c.value),
    };
    let fields = vec![
        sources.trace(
            "from",
            |p| Some(located_text(&p.from)),
            |p| p.from.as_ref().map(located_text),
            "-",
        ),
        sources.trace(
            "reply_to",
            |p| p.reply_to.as_ref().map(located_text),
            |p| p.reply_to.as_ref().map(located_text),
            "(none)",
        ),
        sources.trace(
            "bcc",
            |p| p.bcc.as_ref().map(|b| (join(&b.value), b.at.clone())),
            |_| None,
            "(none)",
        ),
        sources.trace(
            "html",
            |p| p.html.as_ref().map(|h| (h.value.to_string(), h.at.clone())),
            |_| None,
            "true",
        ),
        sources.trace(
            "signature",
            |p| p.signature.as_ref().map(signature_text),
            |p| p.signature.as_ref().map(signature_text),
            "(none)",
        ),
        sources.trace_transport(),
        sources.trace_account(),
        sources.trace(
            "copy_to_sent",
            |p| {
                p.copy_to_sent
                    .as_ref()
                    .map(|c| (copy_text(&c.value), c.at.clone()))
            },
            |p| {
                p.copy_to_sent
                    .as_ref()
                    .map(|c| (copy_text(&c.value), c.at.clone()))
            },
            "(none)",
        ),
    ];
    (effective, fields)
}

impl Sources<'_> {
    /// Traces a field that a profile sets and (optionally) personal settings override.
    fn trace(
        &self,
        field: &'static str,
        from_profile: impl Fn(&Profile) -> Option<(String, Location)>,
        from_personal: impl Fn(&Personal) -> Option<(String, Location)>,
        default: &str,
    ) -> FieldTrace {
        let mut candidates = Vec::new();
        if let Some(personal) = self.personal
            && let Some((value, at)) = from_personal(personal)
        {
            candidates.push(Candidate {
                value,
                origin: Origin {
                    what: format!("personal settings of `{}`", self.user.id),
                    level: Some(Level::Personal),
                    source: Some(at),
                },
                blocked: self.personal_blocked.clone(),
                eligible: true,
            });
        }
        candidates.extend(self.profile_candidates(from_profile));
        pick(field, candidates, default)
    }

    fn profile_candidates(
        &self,
        from_profile: impl Fn(&Profile) -> Option<(String, Location)>,
    ) -> Vec<Candidate> {
        std::iter::once(self.winner)
            .chain(self.lower.iter().copied())
            .filter_map(|(level, profile)| {
                from_profile(profile).map(|(value, at)| Candidate {
                    value,
                    origin: Origin {
                        what: format!("profile `{}`", profile.id),
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
            value: value(&over.value).unwrap_or_else(|| "(none)".into()),
            origin: Origin {
                what: "transport override".into(),
                level: None,
                source: Some(over.at.clone()),
            },
            blocked: None,
            eligible: true,
        })
    }

    fn trace_transport(&self) -> FieldTrace {
        let mut candidates: Vec<Candidate> = self
            .override_candidate(|t| Some(transport_text(t)))
            .into_iter()
            .collect();
        candidates.extend(self.profile_candidates(|p| {
            Some((transport_text(&p.transport.value), p.transport.at.clone()))
        }));
        pick("transport", candidates, "-")
    }

    fn trace_account(&self) -> FieldTrace {
        let account_of = |t: &Transport| smtp_auth(t).map(|a| account_text(&a.value));
        let mut candidates: Vec<Candidate> =
            self.override_candidate(account_of).into_iter().collect();
        let personal = self
            .personal
            .and_then(|p| p.account.as_ref())
            .map(|a| Candidate {
                value: account_text(&a.value),
                origin: Origin {
                    what: format!("personal settings of `{}`", self.user.id),
                    level: Some(Level::Personal),
                    source: Some(a.at.clone()),
                },
                blocked: self.personal_blocked.clone(),
                eligible: true,
            });
        candidates.extend(personal);
        candidates.extend(self.profile_candidates(|p| {
            smtp_auth(&p.transport.value).map(|a| (account_text(&a.value), a.at.clone()))
        }));
        pick("account", candidates, "(none)")
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
            default.to_string(),
            Origin {
                what: "default (no profile sets it)".into(),
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

fn located_text(m: &Located<lettre::message::Mailbox>) -> (String, Location) {
    (m.value.to_string(), m.at.clone())
}

fn join(list: &[lettre::message::Mailbox]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn signature_text(s: &Located<Signature>) -> (String, Location) {
    let text = match (&s.value.text, &s.value.html) {
        (Some(_), Some(_)) => "text and html",
        (Some(_), None) => "text",
        (None, _) => "html",
    };
    (text.to_string(), s.at.clone())
}

/// A one-line transport summary; never contains a secret.
pub fn transport_text(transport: &Transport) -> String {
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
fn account_text(account: &Account) -> String {
    format!("{} (password from {})", account.username, account.password)
}

fn copy_text(copy: &crate::config::CopyToSent) -> String {
    format!("imap {}:{} folder `{}`", copy.host, copy.port, copy.folder)
}
