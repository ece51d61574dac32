//! `(&Resolution, input) -> Rendered`: the exact RFC 5322 message and its
//! envelope. `preview`, `send` and the file transport all use these bytes.

mod lint;
mod locale;
mod text;

use std::path::PathBuf;
use std::time::SystemTime;

use lettre::address::Envelope;
use lettre::message::header::{
    self, ContentTransferEncoding, ContentType, HeaderName, HeaderValue,
};
use lettre::message::{
    Attachment, Body as MimeBody, Mailbox, Mailboxes, Message, MultiPart, SinglePart,
};
use serde_json::{Map, Value, json};

use crate::config::InlineImage;
use crate::resolve::Resolution;

pub use lint::lint;
pub use text::Bodies;

/// The most recipients of one message: `to` and `cc` together, and with
/// the profile's `bcc` when rendering. A request's work must stay bounded
/// (added one by one, 8,000 addresses once took 20 s of CPU), and providers
/// refuse more anyway (Microsoft 365 takes at most 1,000 a message).
pub const MAX_RECIPIENTS: usize = 1000;

/// The one check of a request's recipient count, made before anything is
/// rendered: by the flags, by batch lines and API bodies, and by `render`.
/// `counted` says which fields were counted, for the error.
pub fn check_recipient_count(count: usize, counted: &str) -> Result<(), String> {
    if count > MAX_RECIPIENTS {
        return Err(format!(
            "{count} recipients ({counted}), more than the limit of {MAX_RECIPIENTS} a message; send several messages"
        ));
    }
    Ok(())
}

/// A file attached to one request.
#[derive(Debug, Clone)]
pub struct FileAttachment {
    pub name: String,
    pub content: Vec<u8>,
}

/// What a request adds to the resolved configuration.
#[derive(Debug, Clone, Default)]
pub struct MessageInput {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// Template variables (a JSON object).
    pub data: Value,
    pub attachments: Vec<FileAttachment>,
    /// Fixed Date header (reproducible previews); default: now.
    pub date: Option<SystemTime>,
    /// Fixed Message-ID (reproducible previews); default: a random id on the sender's domain.
    pub message_id: Option<String>,
}

/// A composed message.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub message: Message,
    /// The language the message is written in, after fallback.
    pub language: Option<String>,
    pub message_id: String,
    /// The rendered subject and bodies (signature and disclaimer included).
    pub bodies: Bodies,
}

impl Rendered {
    /// The copy kept in the sender's sent folder: the sent bytes with a Bcc
    /// header naming the BCC recipients, as mail clients keep it. Only this
    /// private copy shows them.
    pub fn sent_copy(&self, bcc: &[Mailbox]) -> Vec<u8> {
        let mut copy = bcc_header(bcc).into_bytes();
        copy.extend_from_slice(&self.bytes());
        copy
    }

    /// The complete message as a file holds it: CRLF line ends, the last
    /// line ended too.
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.message.formatted();
        if !bytes.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        bytes
    }

    /// MAIL FROM and every RCPT TO, BCC included.
    pub fn envelope(&self) -> &Envelope {
        self.message.envelope()
    }
}

fn mailboxes(list: &[Mailbox]) -> Mailboxes {
    list.iter().cloned().collect()
}

/// The private `Bcc:` header of a sent copy (empty without BCC): mail
/// clients keep it in the sender's own copy only. The outbox stores it
/// beside the message, to build the copy after a delivery.
pub fn bcc_header(bcc: &[Mailbox]) -> String {
    if bcc.is_empty() {
        return String::new();
    }
    let mut headers = lettre::message::header::Headers::new();
    let mailboxes: lettre::message::Mailboxes = bcc.iter().cloned().collect();
    headers.set(lettre::message::header::Bcc::from(mailboxes));
    headers.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template `{template}` ({part}) uses `{variable}`, which the data does not have")]
    MissingVariable {
        template: String,
        part: String,
        variable: String,
        at: Option<crate::config::Location>,
    },
    #[error("template `{template}` ({part}) cannot be rendered: {message}")]
    Template {
        template: String,
        part: String,
        message: String,
        at: Option<crate::config::Location>,
    },
    #[error(
        "template `{template}` renders a {header} header with a line break or control character"
    )]
    HeaderLineBreak { template: String, header: String },
    #[error("cannot read attachment `{}`: {error}", path.display())]
    Attachment {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("the message is {size} bytes, more than the profile's limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("the message has no recipient")]
    NoRecipients,
    #[error("{0}")]
    TooManyRecipients(String),
    #[error("cannot build the message: {0}")]
    Build(String),
}

impl RenderError {
    /// Where the template part that failed is written.
    pub fn location(&self) -> Option<&crate::config::Location> {
        match self {
            RenderError::MissingVariable { at, .. } | RenderError::Template { at, .. } => {
                at.as_ref()
            }
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            RenderError::MissingVariable { variable, .. } => Some(format!(
                "add `{variable}` to the data (the --data file, or a batch line's `data`), or guard it with `{{% if {variable} is defined %}}`"
            )),
            RenderError::NoRecipients => Some("name at least one recipient with --to".into()),
            RenderError::TooLarge { .. } => Some(
                "send fewer or smaller attachments, or raise the profile's `max_message_bytes` if the server accepts more".into(),
            ),
            RenderError::HeaderLineBreak { .. } => Some(
                "a header is one line: check the data for line breaks; they can never add a header"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Composes the message for a resolution.
pub fn render(resolution: &Resolution<'_>, input: &MessageInput) -> Result<Rendered, RenderError> {
    if input.to.is_empty() && input.cc.is_empty() {
        return Err(RenderError::NoRecipients);
    }
    let effective = &resolution.effective;
    // Requests were checked without the bcc; this also covers every other
    // caller (alerts, `mailrules test`), before the costly headers are built.
    let count = input.to.len() + input.cc.len() + effective.bcc.len();
    check_recipient_count(count, "`to`, `cc` and the profile's `bcc` together")
        .map_err(RenderError::TooManyRecipients)?;
    let template = resolution.template.template;
    let language = resolution.template.language.clone();
    let context = context(
        &input.data,
        Builtins {
            administration: (
                &resolution.administration.id,
                &resolution.administration.name,
            ),
            user: (
                &resolution.user.id,
                resolution
                    .user
                    .name
                    .as_deref()
                    .unwrap_or(&resolution.user.id),
            ),
            language: language.as_deref(),
        },
    );
    let bodies = text::render(template, &context, effective.html, effective.signature)?;

    let message_id = input.message_id.clone().unwrap_or_else(|| {
        format!(
            "<{}@{}>",
            uuid::Uuid::new_v4(),
            effective.from.email.domain()
        )
    });
    let mut builder = Message::builder()
        .from(effective.from.clone())
        .raw_header(text_header(
            HeaderName::new_from_ascii_str("Subject"),
            &bodies.subject,
        ))
        .message_id(Some(message_id.clone()))
        .date(input.date.unwrap_or_else(SystemTime::now));
    for (name, value) in &bodies.headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|e| RenderError::Build(format!("header `{name}`: {e}")))?;
        builder = builder.raw_header(text_header(name, value));
    }
    // Each list is set as one header: lettre's `to()` and `cc()` parse the
    // header built so far again for every address added, quadratic time.
    if !input.to.is_empty() {
        builder = builder.mailbox(header::To::from(mailboxes(&input.to)));
    }
    if !input.cc.is_empty() {
        builder = builder.mailbox(header::Cc::from(mailboxes(&input.cc)));
    }
    if let Some(reply_to) = &effective.reply_to {
        builder = builder.reply_to((*reply_to).clone());
    }
    // BCC goes in the envelope only: no Bcc header is ever written.
    let recipients = input.to.iter().chain(&input.cc).chain(effective.bcc);
    let envelope = Envelope::new(
        Some(effective.from.email.clone()),
        recipients.map(|m| m.email.clone()).collect(),
    )
    .map_err(|e| RenderError::Build(e.to_string()))?;
    builder = builder.envelope(envelope);

    let mut attachments = Vec::new();
    for attachment in &template.attachments {
        let content =
            read_attachment(&attachment.path).map_err(|error| RenderError::Attachment {
                path: attachment.path.clone(),
                error,
            })?;
        attachments.push(FileAttachment {
            name: attachment.name.clone(),
            content,
        });
    }
    attachments.extend(input.attachments.iter().cloned());

    // Images the HTML refers to by content id: the profile's (a signature
    // logo) and the template's. Without an HTML part there is nothing to show them.
    let mut images = Vec::new();
    if bodies.html.is_some() {
        for image in resolution
            .profile
            .inline_images
            .iter()
            .chain(&template.inline_images)
        {
            let content =
                read_attachment(&image.path).map_err(|error| RenderError::Attachment {
                    path: image.path.clone(),
                    error,
                })?;
            images.push((image, content));
        }
    }
    let boundary = Boundaries::new(&message_id, &bodies);
    let body = body_part(&bodies, &boundary, images);
    let message = if attachments.is_empty() {
        match body {
            Body::Single(part) => builder.singlepart(part),
            Body::Multi(part) => builder.multipart(part),
        }
    } else {
        let mixed = MultiPart::mixed().boundary(boundary.mixed.clone());
        let mut mixed = match body {
            Body::Single(part) => mixed.singlepart(part),
            Body::Multi(part) => mixed.multipart(part),
        };
        for attachment in attachments {
            mixed = mixed.singlepart(attachment_part(attachment));
        }
        builder.multipart(mixed)
    }
    .map_err(|e| RenderError::Build(e.to_string()))?;
    let size = message.formatted().len() as u64;
    let limit = resolution.profile.max_message_bytes;
    if size > limit {
        return Err(RenderError::TooLarge { size, limit });
    }
    Ok(Rendered {
        message,
        language,
        message_id,
        bodies,
    })
}

/// A text header (Subject, template headers). lettre encodes non-ASCII
/// text but leaves ASCII as it is, so a value holding `=?utf-8?q?...?=` (from
/// data, say) would be decoded by mail clients into something else. Such a
/// value is sent as base64 encoded-words in full, which every client decodes
/// back exactly.
fn text_header(name: HeaderName, value: &str) -> HeaderValue {
    if !value.contains("=?") {
        return HeaderValue::new(name, value.to_string());
    }
    use base64::Engine as _;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        // 45 bytes become 60 base64 characters: each word stays within the
        // 75 characters RFC 2047 allows.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    let encoded = words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ");
    HeaderValue::dangerous_new_pre_encoded(name, value.to_string(), encoded)
}

/// Largest file attached to a message.
pub const MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;

/// Reads an attachment: a regular file of at most [`MAX_ATTACHMENT_BYTES`].
pub fn read_attachment(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    crate::config::read_regular_file(path, MAX_ATTACHMENT_BYTES)
}

/// Template variables: the request data plus `administration`, `user` and
/// `language` (data keys of the same name win).
/// The variables every template sees besides the data: (id, name) pairs.
struct Builtins<'a> {
    administration: (&'a str, &'a str),
    user: (&'a str, &'a str),
    language: Option<&'a str>,
}

fn context(data: &Value, builtins: Builtins<'_>) -> Value {
    let mut context = match data {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    // A null in the data means "not given", as in the configuration: strict
    // mode then reports the variable by name wherever it is used (also
    // through filters and `~`), instead of printing "None".
    context.values_mut().for_each(crate::config::strip_nulls);
    context.retain(|_, v| !v.is_null());
    let builtins = [
        (
            "administration",
            json!({"id": builtins.administration.0, "name": builtins.administration.1}),
        ),
        (
            "user",
            json!({"id": builtins.user.0, "name": builtins.user.1}),
        ),
        ("language", json!(builtins.language)),
    ];
    for (key, value) in builtins {
        context.entry(key).or_insert(value);
    }
    Value::Object(context)
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

/// Multipart boundaries derived from the Message-ID, so that a preview with a
/// fixed Message-ID is byte-for-byte reproducible.
struct Boundaries {
    alternative: String,
    related: String,
    mixed: String,
}

impl Boundaries {
    /// Boundaries that occur in no body (data could hold a line that looks
    /// like one, and bodies of plain ASCII go out as 7bit, unencoded).
    fn new(message_id: &str, bodies: &Bodies) -> Self {
        let token: String = message_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(40)
            .collect();
        let bodies = [Some(&bodies.text), bodies.html.as_ref()];
        let free = |boundary: &str| bodies.iter().flatten().all(|body| !body.contains(boundary));
        (0..)
            .map(|n| {
                let token = if n == 0 {
                    token.clone()
                } else {
                    format!("{token}_{n}")
                };
                Boundaries {
                    alternative: format!("=_alt_{token}"),
                    related: format!("=_rel_{token}"),
                    mixed: format!("=_mix_{token}"),
                }
            })
            .find(|b| free(&b.alternative) && free(&b.related) && free(&b.mixed))
            .expect("a finite body leaves some boundary free")
    }
}

/// text, or alternative(text, html), or alternative(text, related(html,
/// images)) when the HTML shows inline images.
fn body_part(bodies: &Bodies, boundary: &Boundaries, images: Vec<(&InlineImage, Vec<u8>)>) -> Body {
    let text = SinglePart::plain(bodies.text.clone());
    let Some(html) = &bodies.html else {
        return Body::Single(text);
    };
    let html = SinglePart::html(html.clone());
    let alternative = MultiPart::alternative()
        .boundary(boundary.alternative.clone())
        .singlepart(text);
    if images.is_empty() {
        return Body::Multi(alternative.singlepart(html));
    }
    let mut related = MultiPart::related()
        .boundary(boundary.related.clone())
        .singlepart(html);
    for (image, content) in images {
        let mime = mime_guess::from_path(&image.path).first_or_octet_stream();
        let content_type = ContentType::parse(mime.essence_str()).unwrap_or_else(|_| {
            ContentType::parse("application/octet-stream").expect("a valid type")
        });
        let body = MimeBody::new_with_encoding(content, ContentTransferEncoding::Base64)
            .expect("base64 can encode any bytes");
        related =
            related.singlepart(Attachment::new_inline(image.cid.clone()).body(body, content_type));
    }
    Body::Multi(alternative.multipart(related))
}

fn attachment_part(attachment: FileAttachment) -> SinglePart {
    let mime = mime_guess::from_path(&attachment.name).first_or_octet_stream();
    let content_type = ContentType::parse(mime.essence_str())
        .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("a valid type"));
    // Always base64: files are binary even when they look like text.
    let body = MimeBody::new_with_encoding(attachment.content, ContentTransferEncoding::Base64)
        .expect("base64 can encode any bytes");
    Attachment::new(attachment.name).body(body, content_type)
}
