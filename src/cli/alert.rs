//! `mailrules alert NAME`: sends one alert of the `alerts` section. When it
//! fails and `alerts.admin_email` is set, the administrator gets one mail
//! with the alert's name, the error and the time, through the alerts
//! profile, or through the system profile when the alerts profile is the
//! broken part. Shared with the daemon's `POST /v1/alerts/{name}`.

use std::time::SystemTime;

use lettre::message::{Mailbox, Message, SinglePart};
use serde::Serialize;

use crate::config::Profile;
use crate::render::{self, MessageInput};
use crate::resolve::{self, alert::AlertParties};
use crate::transport::{Outgoing, SendError, Transports};

use super::delivery::{self, Delivery, RetryPolicy, Status};
use super::{CliError, ConfigSource, Prepared, report};

/// What became of an alert, and of the administrator's notice if it failed.
#[derive(Debug, Serialize)]
pub struct AlertOutcome {
    pub alert: String,
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Set when the alert failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminNotice>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AdminNotice {
    /// The administrator was mailed, through `profile`.
    Notified {
        to: String,
        profile: String,
        reply: String,
    },
    /// Mailing the administrator failed too.
    Failed { to: String, error: String },
    /// No `alerts.admin_email`: the error is only reported here.
    NotConfigured,
}

pub fn run(
    source: &ConfigSource,
    name: &str,
    data: Option<&std::path::Path>,
    transport_override: Option<&std::path::Path>,
) -> Result<u8, CliError> {
    let prepared = Prepared::load(source, transport_override)?;
    let data = match data {
        Some(path) => {
            crate::config::load_data(path).map_err(super::file_error("data file", path))?
        }
        None => serde_json::Value::Object(Default::default()),
    };
    let outcome = send(&prepared, &Transports::default(), name, data);
    let delivery = &outcome.delivery;
    if delivery.status == Status::Sent {
        println!(
            "alert `{name}` sent {} with profile `{}`: {}",
            delivery.message_id.as_deref().unwrap_or_default(),
            delivery.profile.as_deref().unwrap_or_default(),
            delivery.reply.as_deref().unwrap_or_default()
        );
        return Ok(0);
    }
    eprintln!(
        "error: alert `{name}` was not sent: {}",
        delivery.error.as_deref().unwrap_or_default()
    );
    if let Some(hint) = &delivery.hint {
        eprintln!("  = hint: {hint}");
    }
    match &outcome.admin {
        Some(AdminNotice::Notified { to, profile, .. }) => {
            eprintln!("the administrator ({to}) was notified through profile `{profile}`");
        }
        Some(AdminNotice::Failed { to, error }) => {
            eprintln!("error: notifying the administrator ({to}) failed too: {error}");
        }
        Some(AdminNotice::NotConfigured) => {
            eprintln!("no `alerts.admin_email` is set: the error is only reported here");
        }
        None => {}
    }
    Ok(1)
}

/// Sends alert `name` with template variables `data`; on failure, tells
/// the administrator if one is configured.
pub fn send(
    prepared: &Prepared,
    transports: &Transports,
    name: &str,
    data: serde_json::Value,
) -> AlertOutcome {
    let mut delivery = Delivery::new();
    let result = try_send(prepared, transports, name, data, &mut delivery);
    // A name that is no alert is the caller's mistake, told to the caller
    // only: it must not let anyone mail the administrator at will.
    let declared = prepared
        .loaded
        .config
        .alerts
        .as_ref()
        .is_some_and(|alerts| alerts.definitions.contains_key(name));
    let admin = match result {
        Ok(()) => None,
        Err(error) if !declared => {
            delivery.fail(&error);
            None
        }
        Err(error) => {
            delivery.fail(&error);
            // No connection, no login secret, no answer: the alerts
            // profile's transport is the broken part, and the notice goes
            // through the system profile. A reply refusing the alert (an
            // unknown recipient, a refused login or sender) may be about
            // this alert only: the alerts profile is tried first, and the
            // system profile after it if it refuses the notice too.
            let profile_broken = matches!(
                &error,
                CliError::Send(send) if !matches!(send, SendError::Rejected { .. })
            );
            Some(notify_admin(
                prepared,
                transports,
                name,
                &error,
                profile_broken,
            ))
        }
    };
    AlertOutcome {
        alert: name.to_string(),
        delivery,
        admin,
    }
}

fn try_send(
    prepared: &Prepared,
    transports: &Transports,
    name: &str,
    data: serde_json::Value,
    delivery: &mut Delivery,
) -> Result<(), CliError> {
    let config = &prepared.loaded.config;
    let parties = AlertParties::of(config);
    let Some(parties) = parties.as_ref() else {
        return Err(CliError::Usage(
            "the configuration has no `alerts` section: declare the alert under `alerts.definitions`".into(),
        ));
    };
    let (resolution, definition) =
        resolve::alert::resolve_alert(config, parties, name, prepared.transport_override.as_ref())?;
    let input = MessageInput {
        to: definition.recipients.clone(),
        cc: Vec::new(),
        data,
        attachments: Vec::new(),
        date: None,
        message_id: None,
    };
    let rendered = render::render(&resolution, &input)?;
    delivery::transmit(
        transports,
        &resolution,
        &rendered,
        RetryPolicy::ONCE,
        delivery,
    )
}

/// Mails the administrator about a failed alert: through the alerts
/// profile first unless it is the broken part, then the system profile.
fn notify_admin(
    prepared: &Prepared,
    transports: &Transports,
    name: &str,
    error: &CliError,
    alerts_profile_broken: bool,
) -> AdminNotice {
    let body = format!(
        "The alert `{name}` could not be sent.\n\nAlert: {name}\nTime: {}\nError: {}\n{}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        report::one_line(&error.to_string()),
        report::hint(error)
            .map(|h| format!("Hint: {h}\n"))
            .unwrap_or_default()
    );
    let subject = format!("[mailrules] alert `{name}` failed");
    mail_admin(prepared, transports, &subject, &body, alerts_profile_broken)
}

/// Mails `alerts.admin_email`, if set: through the alerts profile (unless
/// `skip_alerts_profile`), then through the system profile. Shared with
/// the outbox's dead-letter summary.
pub(crate) fn mail_admin(
    prepared: &Prepared,
    transports: &Transports,
    subject: &str,
    body: &str,
    skip_alerts_profile: bool,
) -> AdminNotice {
    let config = &prepared.loaded.config;
    let Some(alerts) = &config.alerts else {
        return AdminNotice::NotConfigured;
    };
    let Some(admin) = &alerts.admin_email else {
        return AdminNotice::NotConfigured;
    };
    let system = config.system.profile.as_ref().map(|p| p.value.as_str());
    let alerts_profile = alerts.profile.as_ref().map(|p| p.value.as_str()).or(system);
    let mut profiles: Vec<&str> = Vec::new();
    if !skip_alerts_profile {
        profiles.extend(alerts_profile);
    }
    profiles.extend(system.filter(|s| !profiles.contains(s)));
    let mut last_error = "no profile to send it with".to_string();
    for id in profiles {
        let Some(profile) = config.profiles.get(id) else {
            continue;
        };
        match send_notice(prepared, transports, profile, &admin.value, subject, body) {
            Ok(reply) => {
                return AdminNotice::Notified {
                    to: admin.value.to_string(),
                    profile: id.to_string(),
                    reply,
                };
            }
            Err(error) => last_error = report::one_line(&error.to_string()),
        }
    }
    AdminNotice::Failed {
        to: admin.value.to_string(),
        error: last_error,
    }
}

/// A plain text mail through `profile`, outside any template.
fn send_notice(
    prepared: &Prepared,
    transports: &Transports,
    profile: &Profile,
    to: &Mailbox,
    subject: &str,
    body: &str,
) -> Result<String, SendError> {
    let effective = resolve::of_profile(profile, prepared.transport_override.as_ref());
    let message_id = format!(
        "<{}@{}>",
        uuid::Uuid::new_v4(),
        effective.from.email.domain()
    );
    let message = Message::builder()
        .from(effective.from.clone())
        .to(to.clone())
        .subject(subject)
        .message_id(Some(message_id.clone()))
        // A single text/plain part: MIME-Version, Content-Type with its
        // charset and the transfer encoding, as clients expect.
        .singlepart(SinglePart::plain(body.to_string()))
        .map_err(|e| SendError::Local(format!("cannot compose the notice: {e}")))?;
    let deliver = transports.for_effective(&effective)?;
    let bytes = message.formatted();
    deliver
        .deliver(Outgoing {
            envelope: message.envelope(),
            bytes: &bytes,
            message_id: &message_id,
        })
        .map(|receipt| receipt.reply)
}
