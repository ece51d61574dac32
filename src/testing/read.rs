//! Reading a test file: its shape checked, with the place of every part.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::yaml::{self, Positions};
use crate::config::{self, Location, parse_mailbox};

use super::{Case, Preview, TestFile, TestFileError};

pub(super) const EXPECTABLE: [&str; 7] = [
    "template",
    "profile",
    "level",
    "from",
    "reply_to",
    "bcc",
    "transport_host",
];
const CASE_KEYS: [&str; 8] = [
    "name",
    "administration",
    "user",
    "process",
    "language",
    "template",
    "expect",
    "preview",
];

/// Reads a test file.
pub fn read(path: &Path) -> Result<TestFile, TestFileError> {
    let file_error = |message: String| TestFileError {
        location: path.display().to_string(),
        message,
    };
    let bytes = config::read_regular_file(path, config::MAX_FILE_BYTES)
        .map_err(|e| file_error(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| file_error("not UTF-8 text".into()))?;
    let document = yaml::parse(&text).map_err(|e| TestFileError {
        location: format!(
            "{}:{}:{}",
            path.display(),
            e.position.line,
            e.position.column
        ),
        message: e.message,
    })?;
    let reader = Reader {
        path,
        positions: &document.positions,
    };
    let Some(cases) = document.value.get("cases").and_then(Value::as_array) else {
        return Err(reader.error("", "a test file has a `cases:` list"));
    };
    if let Some(unknown) = document
        .value
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "cases"))
    {
        return Err(reader.error(
            &format!("/{unknown}"),
            &format!("unknown key `{unknown}`; a test file has `cases:`"),
        ));
    }
    if cases.is_empty() {
        return Err(reader.error(
            "/cases",
            "`cases` is empty: a test file that tests nothing is a mistake",
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let cases = cases
        .iter()
        .enumerate()
        .map(|(i, case)| reader.case(&format!("/cases/{i}"), case, dir))
        .collect::<Result<_, _>>()?;
    Ok(TestFile {
        path: path.to_path_buf(),
        cases,
    })
}

struct Reader<'a> {
    path: &'a Path,
    positions: &'a Positions,
}

impl Reader<'_> {
    fn at(&self, pointer: &str) -> Location {
        let position = self
            .positions
            .key(pointer)
            .unwrap_or(yaml::Position { line: 1, column: 1 });
        Location::new(
            std::sync::Arc::new(self.path.to_path_buf()),
            position.line,
            position.column,
        )
    }

    fn error(&self, pointer: &str, message: &str) -> TestFileError {
        TestFileError {
            location: self.at(pointer).to_string(),
            message: message.to_string(),
        }
    }

    fn text(
        &self,
        case: &Value,
        pointer: &str,
        key: &str,
        required: bool,
    ) -> Result<Option<String>, TestFileError> {
        match case.get(key) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(self.error(
                &format!("{pointer}/{key}"),
                &format!("`{key}` must be text"),
            )),
        }
    }

    fn case(&self, pointer: &str, case: &Value, dir: &Path) -> Result<Case, TestFileError> {
        let Some(object) = case.as_object() else {
            return Err(self.error(pointer, "a case is a mapping"));
        };
        if let Some(unknown) = object.keys().find(|k| !CASE_KEYS.contains(&k.as_str())) {
            return Err(self.error(
                &format!("{pointer}/{unknown}"),
                &format!(
                    "unknown key `{unknown}`; a case has {}",
                    CASE_KEYS.join(", ")
                ),
            ));
        }
        let expect = match case.get("expect") {
            None => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(field, value)| {
                    let at = self.at(&format!("{pointer}/expect/{field}"));
                    if EXPECTABLE.contains(&field.as_str()) {
                        check_expectation(field, value).map_err(|message| TestFileError {
                            location: at.to_string(),
                            message,
                        })?;
                        Ok((field.clone(), value.clone(), at))
                    } else {
                        Err(TestFileError {
                            location: at.to_string(),
                            message: format!(
                                "cannot expect `{field}`; expectable: {}",
                                EXPECTABLE.join(", ")
                            ),
                        })
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(self.error(&format!("{pointer}/expect"), "`expect` is a mapping"));
            }
        };
        let preview = match case.get("preview") {
            None => None,
            Some(preview) => Some(self.preview(&format!("{pointer}/preview"), preview, dir)?),
        };
        let process = self.text(case, pointer, "process", false)?;
        let template = self.text(case, pointer, "template", false)?;
        if process.is_some() == template.is_some() {
            return Err(self.error(pointer, "a case names either `process` or `template`"));
        }
        if template.is_some() && case.get("language").is_some() {
            return Err(self.error(
                &format!("{pointer}/language"),
                "`language` goes with `process`; a template has its own language",
            ));
        }
        Ok(Case {
            name: self.text(case, pointer, "name", true)?.unwrap_or_default(),
            at: self.at(pointer),
            administration: self
                .text(case, pointer, "administration", true)?
                .unwrap_or_default(),
            user: self.text(case, pointer, "user", true)?.unwrap_or_default(),
            process,
            language: self.text(case, pointer, "language", false)?,
            template,
            expect,
            preview,
        })
    }

    fn preview(
        &self,
        pointer: &str,
        preview: &Value,
        dir: &Path,
    ) -> Result<Preview, TestFileError> {
        if let Some(unknown) = preview.as_object().and_then(|o| {
            o.keys()
                .find(|k| !["to", "data", "snapshot"].contains(&k.as_str()))
        }) {
            return Err(self.error(
                &format!("{pointer}/{unknown}"),
                &format!("unknown key `{unknown}`; `preview` has to, data, snapshot"),
            ));
        }
        let to = match preview.get("to") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) if many.iter().all(Value::is_string) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => {
                return Err(self.error(
                    pointer,
                    "`preview` needs `to`: an address or a list of them",
                ));
            }
        };
        let path = |key: &str, required: bool| -> Result<Option<PathBuf>, TestFileError> {
            Ok(self
                .text(preview, pointer, key, required)?
                .map(|p| dir.join(p)))
        };
        let snapshot = self
            .text(preview, pointer, "snapshot", true)?
            .expect("required");
        let inside = Path::new(&snapshot)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside || !snapshot.ends_with(".eml") {
            return Err(self.error(
                &format!("{pointer}/snapshot"),
                "`snapshot` is an `.eml` file in the test file's directory or below it (no `..`, not absolute)",
            ));
        }
        Ok(Preview {
            to,
            data: path("data", false)?,
            snapshot: dir.join(snapshot),
            at: self.at(pointer),
        })
    }
}

/// An expected value of the right kind: text, a level, an address (or
/// null for "none"), a list of addresses.
fn check_expectation(field: &str, value: &Value) -> Result<(), String> {
    let address = |v: &Value| match v {
        Value::String(text) => parse_mailbox(text).map(|_| ()).map_err(|e| e.message),
        _ => Err(format!("`{field}` expects an address")),
    };
    match (field, value) {
        ("level", Value::String(level))
            if ["template", "administration", "personal", "system"].contains(&level.as_str()) =>
        {
            Ok(())
        }
        ("level", _) => Err("`level` is one of template, administration, personal, system".into()),
        ("from", v) => address(v),
        ("reply_to", Value::Null) => Ok(()),
        ("reply_to", v) => address(v),
        ("bcc", Value::Array(items)) => items.iter().try_for_each(address),
        ("bcc", v) => address(v),
        (_, Value::String(_)) => Ok(()),
        _ => Err(format!("`{field}` expects text")),
    }
}
