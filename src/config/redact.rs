//! Keeps literal passwords out of diagnostics. Two nets, because a broken
//! file may not parse: every shown source line has whatever follows a
//! `password:` key masked (unless it is an `{env: ...}`/`{file: ...}`
//! reference), and every text found under a `password` key in a parsed file
//! is masked wherever it appears in a diagnostic.

use serde_json::Value;

use super::diagnostic::Diagnostic;

const MASK: &str = "***";

/// Texts written where a password belongs: a literal value, or the keys and
/// values of a mapping that is not a reference.
pub fn literal_secrets(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect(value, &mut found);
    // A block scalar (`|`, `>`) spreads a value over lines, and folding
    // joins them with spaces: mask every line and every word of it too.
    let pieces: Vec<String> = found
        .iter()
        .flat_map(|secret| secret.split_whitespace())
        .filter(|word| word.chars().count() >= 3)
        .map(str::to_string)
        .collect();
    found.extend(pieces);
    found.retain(|s| !s.trim().is_empty());
    // Longest first, so that a whole value is masked before its words.
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

/// Whether line `number` (1-based) of `text` is inside a value that a
/// secret key opened on an earlier, less indented line (`password: |`, or
/// `password:` with the value on the next line). Works on files that do
/// not parse, where [`literal_secrets`] found nothing.
pub fn inside_secret_value(text: &str, number: usize) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let Some(line) = number.checked_sub(1).and_then(|i| lines.get(i)) else {
        return false;
    };
    // A key of an XOAUTH2 token source under `token:` or `refresh_token:`
    // is structure, not the value of a secret.
    let names_token_source_key = TOKEN_SOURCE_KEYS.iter().any(|key| {
        line.trim_start()
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
    });
    if names_token_source_key {
        return false;
    }
    let indent = |l: &str| l.len() - l.trim_start().len();
    let own = indent(line);
    let parent = lines[..number - 1]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty() && indent(l) < own);
    parent.is_some_and(|parent| {
        let opened = parent
            .trim_end()
            .trim_end_matches(['|', '>', '-', '+'])
            .trim_end();
        opened.strip_suffix(':').is_some_and(|before| {
            let key = before
                .rsplit(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .next()
                .unwrap_or_default();
            is_secret_key(key)
        })
    })
}

fn collect(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                // An XOAUTH2 `token:` (and its `refresh_token:` flow) holds
                // where the token comes from; its secrets sit under keys
                // of their own. Anything else there may be a pasted token.
                if holds_token_source(inner) {
                    collect(inner, found);
                } else if is_secret_key(key) {
                    password_texts(inner, found);
                } else {
                    collect(inner, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect(item, found)),
        _ => {}
    }
}

/// The keys of an XOAUTH2 token source and its flows.
const TOKEN_SOURCE_KEYS: [&str; 7] = [
    "client_credentials",
    "refresh_token",
    "command",
    "token_url",
    "client_id",
    "client_secret",
    "scope",
];

fn holds_token_source(value: &Value) -> bool {
    value.as_object().is_some_and(|map| {
        !map.is_empty()
            && map
                .keys()
                .all(|key| TOKEN_SOURCE_KEYS.contains(&key.as_str()))
    })
}

fn password_texts(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => found.push(text.clone()),
        Value::Number(n) => found.push(n.to_string()),
        Value::Object(map) => {
            for (key, inner) in map {
                if key != "env" && key != "file" {
                    found.push(key.clone());
                    password_texts(inner, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| password_texts(item, found)),
        _ => {}
    }
}

/// Masks `secrets` everywhere in `d`, and password values on its source line.
pub fn redact(d: &mut Diagnostic, secrets: &[String]) {
    let mask = |text: &str| {
        secrets.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), MASK)
        })
    };
    d.message = mask(&d.message);
    d.path = mask(&d.path);
    d.hint = d.hint.as_deref().map(mask);
    d.source_line = d
        .source_line
        .as_deref()
        .map(|line| redact_line(&mask(line)));
}

/// Whether a key names a secret (`password`, and likely misspellings such
/// as `passwd`, `pwd`, or `secret`, `token`).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    // The token endpoint's address is no secret, and hiding it would hide
    // the line of a diagnostic about it.
    key != "token_url"
        && ["pass", "pwd", "secret", "token"]
            .iter()
            .any(|word| key.contains(word))
}

/// Masks the value after each secret-looking key on a line (`password:`),
/// keeping `{env: ...}` and `{file: ...}` references.
pub fn redact_line(line: &str) -> String {
    let mut out = String::new();
    let mut copied_to = 0;
    let mut search_from = 0;
    while let Some(found) = line[search_from..].find(':') {
        let colon = search_from + found;
        search_from = colon + 1;
        let key_start = line[..colon]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        if colon < copied_to || !is_secret_key(&line[key_start..colon]) {
            continue;
        }
        let after = &line[colon + 1..];
        let value_start = colon + 1 + (after.len() - after.trim_start().len());
        let value = &line[value_start..];
        if value.is_empty() || is_reference(value) {
            continue;
        }
        let before = &line[..value_start];
        let in_flow = before.matches(['{', '[']).count() > before.matches(['}', ']']).count();
        let value_end = value_start + value_len(value, in_flow);
        out.push_str(&line[copied_to..value_start]);
        out.push_str(MASK);
        copied_to = value_end;
        search_from = search_from.max(value_end);
    }
    out.push_str(&line[copied_to..]);
    out
}

fn is_reference(value: &str) -> bool {
    let Some(inner) = value.strip_prefix('{') else {
        return false;
    };
    let inner = inner.trim_start();
    ["env", "file"].iter().any(|key| {
        inner
            .strip_prefix(key)
            .is_some_and(|after| after.trim_start().starts_with(':'))
    })
}

/// The length of the scalar or collection at the start of `value`.
fn value_len(value: &str, in_flow: bool) -> usize {
    let mut chars = value.char_indices();
    match chars.next() {
        Some((_, quote @ ('"' | '\''))) => {
            let mut escaped = false;
            for (i, c) in chars {
                if quote == '"' && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == quote && !escaped {
                    return i + 1;
                }
                escaped = false;
            }
            value.len()
        }
        Some((_, open @ ('{' | '['))) => {
            let close = if open == '{' { '}' } else { ']' };
            let mut depth = 0;
            for (i, c) in value.char_indices() {
                if c == open {
                    depth += 1;
                } else if c == close {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
            }
            value.len()
        }
        _ => {
            let comment = value.find(" #").unwrap_or(value.len());
            let end = if in_flow {
                value
                    .find([',', '}', ']'])
                    .unwrap_or(value.len())
                    .min(comment)
            } else {
                comment
            };
            value[..end].trim_end().len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_references_and_mask_literals() {
        for (line, expected) in [
            (
                "    password: {env: SMTP_PASSWORD}",
                "    password: {env: SMTP_PASSWORD}",
            ),
            (
                "    password: {file: secrets/smtp}",
                "    password: {file: secrets/smtp}",
            ),
            ("    password: Hunter2Secret", "    password: ***"),
            (
                "    password: Hunter2,Secret  # old",
                "    password: ***  # old",
            ),
            (
                "  auth: {username: u, password: Hunter2Secret}, port: 1",
                "  auth: {username: u, password: ***}, port: 1",
            ),
            (
                "  auth: {password: \"Hunter2,Secret}x\"}",
                "  auth: {password: ***}",
            ),
            ("  password: {Hunter2Secret}", "  password: ***"),
            ("  password: Hunter2Secret: x}}", "  password: ***"),
            ("  PASSWORD: 'a#b'", "  PASSWORD: ***"),
            (
                "  auth: {username: u, passwd: Hunter2Secret}",
                "  auth: {username: u, passwd: ***}",
            ),
            ("  host: smtp.example.com", "  host: smtp.example.com"),
            // found by fuzzing: multi-byte characters before a key
            ("    \u{fffd}\u{fffd}: nl", "    \u{fffd}\u{fffd}: nl"),
            ("é·password: x", "é·password: ***"),
        ] {
            assert_eq!(redact_line(line), expected, "{line}");
        }
    }

    #[test]
    fn values_below_a_secret_key_are_recognised() {
        let text = "auth:\n  username: u\n  password: |\n    Hunter2Block\n  port: 1\n";
        assert!(inside_secret_value(text, 4));
        assert!(!inside_secret_value(text, 2));
        assert!(!inside_secret_value(text, 5));
        let flow = "smtp: {auth: {password:\n       LEAKflow3 ]]}\n";
        assert!(inside_secret_value(flow, 2));
    }

    #[test]
    fn multi_line_secrets_are_masked_line_by_line() {
        let value = serde_json::json!({"password": "Hunter2 Block\nsecond line\n"});
        let secrets = literal_secrets(&value);
        assert!(secrets.contains(&"Hunter2".to_string()) && secrets.contains(&"Block".to_string()));
    }

    #[test]
    fn secrets_are_found_under_password_keys() {
        let value = serde_json::json!({
            "profiles": {"p": {"smtp": {"auth": {"username": "u", "password": "Hunter2"}}}},
            "users": {"u": {"personal": {"account": {"password": {"Braced": null, "env": "OK"}}}}},
        });
        assert_eq!(literal_secrets(&value), ["Hunter2", "Braced"]);
    }
}
