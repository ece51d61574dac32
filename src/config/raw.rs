//! One config file as written, deserialized from the checked JSON value.
//! These types mirror `schemas/mailrules.schema.json`; only `compile` turns
//! them into the [`Config`](super::Config) the rest of the program sees.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub system: Option<RawSystem>,
    #[serde(default)]
    pub profiles: BTreeMap<String, RawProfile>,
    #[serde(default)]
    pub administrations: BTreeMap<String, RawAdministration>,
    #[serde(default)]
    pub users: BTreeMap<String, RawUser>,
    #[serde(default)]
    pub templates: BTreeMap<String, RawTemplate>,
    pub alerts: Option<RawAlerts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSystem {
    pub profile: Option<String>,
    pub default_language: String,
    pub languages: Vec<String>,
    pub processes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub username: String,
    pub mechanism: Option<RawMechanism>,
    /// With `mechanism: password` (the default); the schema requires it.
    pub password: Option<RawPassword>,
    /// With `mechanism: xoauth2`; the schema requires it.
    pub token: Option<RawTokenSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawMechanism {
    Password,
    Xoauth2,
}

/// Exactly one of the three (the schema says so).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenSource {
    pub client_credentials: Option<RawClientCredentials>,
    pub refresh_token: Option<RawRefreshToken>,
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: RawPassword,
    pub scope: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRefreshToken {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Option<RawPassword>,
    pub refresh_token: RawPassword,
    pub scope: Option<String>,
}

/// A reference; a literal only gets here with --allow-plaintext-secrets.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum RawPassword {
    Reference(RawSecret),
    Literal(String),
}

impl std::fmt::Debug for RawPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawPassword::Reference(r) => r.fmt(f),
            RawPassword::Literal(_) => f.write_str("Literal(***)"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignature {
    pub text: Option<String>,
    pub html: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawSecurity {
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: String,
    pub port: Option<u16>,
    pub security: Option<RawSecurity>,
    pub ca_file: Option<String>,
    pub hello_name: Option<String>,
    pub allow_insecure: Option<bool>,
    pub timeout_seconds: Option<u64>,
    pub auth: Option<RawAccount>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSendmail {
    pub command: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileDrop {
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCopyToSent {
    pub host: String,
    pub port: Option<u16>,
    pub security: Option<RawSecurity>,
    pub ca_file: Option<String>,
    pub account: RawAccount,
    pub folder: Option<String>,
    pub create_folder: Option<bool>,
}

/// The transport keys of a profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransport {
    pub smtp: Option<RawSmtp>,
    pub sendmail: Option<RawSendmail>,
    pub file: Option<RawFileDrop>,
}

/// A `--transport-override` file: the transport keys and `copy_to_sent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransportOverride {
    pub smtp: Option<RawSmtp>,
    pub sendmail: Option<RawSendmail>,
    pub file: Option<RawFileDrop>,
    pub copy_to_sent: Option<RawCopyToSent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub description: Option<String>,
    pub smtp: Option<RawSmtp>,
    pub sendmail: Option<RawSendmail>,
    pub file: Option<RawFileDrop>,
    pub from: String,
    pub reply_to: Option<String>,
    pub bcc: Option<Vec<String>>,
    pub html: Option<bool>,
    pub signature: Option<RawSignature>,
    pub copy_to_sent: Option<RawCopyToSent>,
    #[serde(default)]
    pub inline_images: Vec<RawInlineImage>,
    pub max_message_bytes: Option<u64>,
    pub throttle: Option<RawThrottle>,
}

/// How fast the outbox may deliver through a profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThrottle {
    pub concurrency: Option<u32>,
    pub per_minute: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInlineImage {
    pub path: String,
    pub cid: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdministration {
    pub name: String,
    pub profile: Option<String>,
    pub default_language: Option<String>,
    #[serde(default)]
    pub languages: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPersonal {
    pub enabled: bool,
    pub profile: Option<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub signature: Option<RawSignature>,
    pub account: Option<RawAccount>,
    pub copy_to_sent: Option<RawCopyToSent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: Option<String>,
    pub personal: Option<RawPersonal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttachment {
    pub path: String,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    pub description: Option<String>,
    pub process: Option<String>,
    pub language: Option<String>,
    pub profile: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub disclaimer: Option<RawSignature>,
    #[serde(default)]
    pub attachments: Vec<RawAttachment>,
    pub sample_data: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub inline_images: Vec<RawInlineImage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    pub recipients: Vec<String>,
    pub template: String,
    pub language: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub profile: Option<String>,
    pub admin_email: Option<String>,
    #[serde(default)]
    pub definitions: BTreeMap<String, RawAlert>,
}
