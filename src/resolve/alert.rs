//! Alerts in the precedence chain: the alert's template is level 1, the
//! `alerts` section's profile stands where an administration's would
//! (level 2), alerts have no personal settings (level 3), and the system
//! profile is level 4. So an empty `alerts.profile` falls back to the
//! system profile, and `explain --alert` reads like any explanation.

use crate::config::texts::LevelTexts;
use crate::config::{Administration, AlertDefinition, Config, TransportOverride, User};

use super::{Resolution, ResolveError, TemplateSelector, resolve_for, unknown};

/// The stand-ins for an administration and a user that an alert is sent
/// for. Built from the `alerts` section; the resolution borrows them.
pub struct AlertParties {
    administration: Administration,
    user: User,
}

impl AlertParties {
    pub fn of(config: &Config) -> Option<AlertParties> {
        let alerts = config.alerts.as_ref()?;
        let profile = alerts.profile.as_ref().map(|p| p.value.as_str());
        Some(AlertParties {
            administration: Administration {
                id: "alerts".into(),
                at: alerts.at.clone(),
                name: "alerts".into(),
                profile: alerts.profile.clone(),
                default_language: None,
                languages: Default::default(),
                level_texts: LevelTexts::new("the `alerts` section".into(), profile),
            },
            user: User {
                id: "alerts".into(),
                at: alerts.at.clone(),
                name: Some("mailrules alerts".into()),
                personal: None,
                level_texts: LevelTexts::new("alerts (no personal settings)".into(), None),
            },
        })
    }
}

/// The resolution of alert `name`, and its definition.
pub fn resolve_alert<'c>(
    config: &'c Config,
    parties: &'c AlertParties,
    name: &str,
    transport_override: Option<&TransportOverride>,
) -> Result<(Resolution<'c>, &'c AlertDefinition), ResolveError> {
    let definition = config
        .alerts
        .as_ref()
        .and_then(|alerts| alerts.definitions.get(name))
        .ok_or_else(|| {
            let known = config.alerts.iter().flat_map(|a| a.definitions.keys());
            unknown("alert", name, known)
        })?;
    let selector = TemplateSelector::Template(&definition.template.value);
    let mut resolution = resolve_for(
        config,
        &parties.administration,
        &parties.user,
        &selector,
        transport_override,
    )?;
    if let Some(language) = &definition.language {
        resolution.template.language = Some(language.value.clone());
    }
    Ok((resolution, definition))
}
