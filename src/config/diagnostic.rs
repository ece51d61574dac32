//! Config problems as collected diagnostics: where (file:line:column and the
//! path in the document), what, and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// A position in a config file. Lines and columns are 1-based, columns count
/// characters (not bytes), like editors do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: Arc<PathBuf>, line: usize, column: usize) -> Self {
        Location { file, line, column }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Location", 3)?;
        s.serialize_field("file", &self.file.display().to_string())?;
        s.serialize_field("line", &self.line)?;
        s.serialize_field("column", &self.column)?;
        s.end()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Where the offending node is; `None` only for problems of the whole
    /// configuration (for example "no file has a `system` section").
    pub location: Option<Location>,
    /// Dotted path in the document, e.g. `profiles.billing.smtp.port`.
    pub path: String,
    pub message: String,
    /// How to fix it, when that can be worked out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The text of the offending line, for showing it with a caret.
    #[serde(skip)]
    pub source_line: Option<String>,
    /// The offending value is a secret written in the clear: the line is
    /// shown with the value masked.
    #[serde(skip)]
    pub secret_value: bool,
    /// JSON pointer of the offending node (schema errors), for pruning.
    #[serde(skip)]
    pub pointer: Option<String>,
}

impl Diagnostic {
    pub fn error(
        location: Option<Location>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location,
            path: path.into(),
            message: message.into(),
            hint: None,
            source_line: None,
            secret_value: false,
            pointer: None,
        }
    }

    pub fn warning(
        location: Option<Location>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(location, path, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Marks the value at the location as a secret not to be shown.
    pub fn with_secret_value(mut self) -> Self {
        self.secret_value = true;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Turns a JSON pointer (`/profiles/billing/from`) into the dotted path shown
/// to users (`profiles.billing.from`).
pub fn dotted_path(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Appends one segment to a JSON pointer, escaping it as RFC 6901 says.
pub fn pointer_join(pointer: &str, segment: &str) -> String {
    format!(
        "{pointer}/{}",
        segment.replace('~', "~0").replace('/', "~1")
    )
}
