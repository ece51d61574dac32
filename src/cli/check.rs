//! `mailrules check [--profile ID] [--rcpt ADDR]`: tries every profile's
//! transport (connect, TLS, login; with --rcpt also MAIL FROM the profile's
//! sender and RCPT TO, then RSET) without sending mail, and reports per
//! profile.

use std::path::Path;

use lettre::address::Envelope;
use lettre::message::Mailbox;

use crate::config::{self, Transport, TransportOverride, texts};
use crate::load;
use crate::resolve::unknown;
use crate::transport;

use super::{CliError, ConfigSource, report};

pub fn run(
    source: &ConfigSource,
    profile: Option<&str>,
    transport_override: Option<&Path>,
    rcpt: Option<&Mailbox>,
) -> Result<u8, CliError> {
    let loaded = load::load(&source.path, source.options)?;
    let config = &loaded.config;
    let over: Option<TransportOverride> = match transport_override {
        Some(file) => Some(
            config::load_transport_override(file, source.options)
                .map_err(super::file_error("transport override", file))?,
        ),
        None => None,
    };
    let profiles: Vec<_> = match profile {
        Some(id) => vec![
            config
                .profiles
                .get(id)
                .ok_or_else(|| unknown("profile", id, config.profiles.keys()))?,
        ],
        None => config.profiles.values().collect(),
    };
    let width = profiles.iter().map(|p| p.id.len()).max().unwrap_or(0);
    let mut failed = 0;
    for profile in profiles {
        let transport = over
            .as_ref()
            .map_or(&profile.transport.value, |o| &o.transport.value);
        let account = match transport {
            Transport::Smtp(smtp) => smtp.auth.as_ref().map(|a| &a.value),
            _ => None,
        };
        let summary = texts::transport(transport);
        // The envelope the profile would use: its sender, to --rcpt.
        let envelope = rcpt.and_then(|rcpt| {
            Envelope::new(
                Some(profile.from.value.email.clone()),
                vec![rcpt.email.clone()],
            )
            .ok()
        });
        let id = &profile.id;
        match transport::check(transport, account, envelope.as_ref()) {
            Ok(outcome) => println!("ok    {id:width$}  {summary}: {outcome}"),
            Err(error) => {
                failed += 1;
                println!(
                    "FAIL  {id:width$}  {summary}: {}",
                    report::one_line(&error.to_string())
                );
                if let Some(hint) = error.hint() {
                    println!("      hint: {hint}");
                }
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
