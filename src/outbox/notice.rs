//! The administrator's summary of dead letters: when messages are
//! dead-lettered and `alerts.admin_email` is set, one mail lists them,
//! through the alerts profile (or the system profile), at most once per
//! interval. Without an admin address they are only logged (and listed by
//! the API and `mailrules outbox list --state dead`).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::alert::{AdminNotice, mail_admin};

use super::store::DeadNotice;
use super::worker::Configs;
use super::{Store, now_ms};

/// Messages listed in one summary; the rest are counted.
const LISTED: usize = 50;

pub(super) struct Notices {
    store: Arc<Store>,
    /// When the last summary went (or failed to go), ms.
    last: Option<i64>,
    /// Dead letters may be waiting for a summary: at the start (a summary
    /// a restart cut short), after a death, and while sending fails.
    pending: bool,
}

impl Notices {
    pub fn new(store: &Arc<Store>) -> Notices {
        Notices {
            store: Arc::clone(store),
            last: store.last_admin_notice().ok().flatten(),
            pending: true,
        }
    }

    /// Sends a summary if dead letters are waiting (`died`: one more since
    /// the last call) and the interval has passed since the last one.
    pub fn send_due(&mut self, configs: &dyn Configs, interval: Duration, died: bool) {
        self.pending |= died;
        let now = now_ms();
        if !self.pending
            || self
                .last
                .is_some_and(|last| now.saturating_sub(last) < super::ms(interval))
        {
            return;
        }
        let dead = match self.store.unnotified_dead() {
            Ok(dead) if !dead.is_empty() => dead,
            Ok(_) => {
                self.pending = false;
                return;
            }
            Err(error) => {
                tracing::error!(error = %error, "outbox: cannot read the dead letters");
                return;
            }
        };
        let mut notice = AdminNotice::NotConfigured;
        configs.with_current(&mut |prepared, transports, _| {
            let subject = format!(
                "[mailrules] {} message(s) could not be delivered",
                dead.len()
            );
            notice = mail_admin(
                prepared,
                transports,
                &subject,
                &summary(&dead, self.store.path()),
                false,
            );
        });
        self.last = Some(now);
        let ids: Vec<String> = dead.iter().map(|d| d.id.clone()).collect();
        match notice {
            AdminNotice::Notified { to, profile, .. } => {
                tracing::info!(
                    to,
                    profile,
                    messages = dead.len(),
                    "administrator told about dead letters"
                );
                self.pending = false;
                if let Err(error) = self.store.mark_notified(&ids, now) {
                    tracing::error!(error = %error, "outbox: cannot record the administrator's notice");
                }
            }
            AdminNotice::Failed { to, error } => {
                tracing::warn!(
                    to,
                    error,
                    "cannot tell the administrator about dead letters; trying again later"
                );
            }
            AdminNotice::NotConfigured => {
                // Logged once per message when it died; nothing to send.
                self.pending = false;
                let _ = self.store.mark_notified(&ids, now);
            }
        }
    }
}

fn summary(dead: &[DeadNotice], outbox: &std::path::Path) -> String {
    let mut body = format!(
        "mailrules gave up on {} message(s) in the outbox `{}`.\n\
         Each is kept there with the server's reply: `mailrules outbox show ID`;\n\
         `mailrules outbox retry ID` queues one again.\n\n",
        dead.len(),
        outbox.display()
    );
    for message in dead.iter().take(LISTED) {
        let _ = writeln!(
            body,
            "- {} {} (profile `{}`, to {})\n  {}",
            message.id,
            message.message_id,
            message.profile,
            message.to.join(", "),
            message.reason
        );
    }
    if dead.len() > LISTED {
        let _ = writeln!(body, "... and {} more", dead.len() - LISTED);
    }
    body
}
