//! YAML text -> one JSON value plus the position of every node.
//!
//! This is the only place that parses YAML. The schema check and the typed
//! model both read the [`Document::value`] built here, so they can never
//! disagree about what a scalar means. Rules applied (documented in
//! `docs/config.md`):
//! - YAML 1.2 core schema: only `true`/`false` are booleans, `yes`/`on` stay
//!   text; quoted scalars are always text.
//! - duplicate keys, merge keys (`<<`), non-text keys, custom tags and more
//!   than one document per file are errors;
//! - the whole document, aliases expanded, may cost at most [`MAX_COST`]
//!   (one unit per node plus one per 64 bytes of text), so a "billion
//!   laughs" file, or one long string aliased many times, fails fast;
//! - nesting is limited to [`MAX_DEPTH`] levels (config files need a handful).

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

use super::diagnostic::pointer_join;

/// Upper bound on the size of a document after alias expansion, in units of
/// one node or 64 bytes of text.
pub const MAX_COST: usize = 1_000_000;

/// Upper bound on nesting (mappings and sequences within each other).
pub const MAX_DEPTH: usize = 64;

/// The cost of a scalar: itself plus its text.
fn scalar_cost(text: &str) -> usize {
    1 + text.len() / 64
}

/// A parsed YAML document.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    pub positions: Positions,
}

/// 1-based line and column of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Position {
    fn from(marker: Marker) -> Self {
        Position {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

/// Where a node sits: its key (for mapping values) and its value.
#[derive(Debug, Clone, Copy)]
pub struct NodePosition {
    pub key: Option<Position>,
    pub value: Position,
}

/// Positions of nodes by JSON pointer (`/profiles/billing/from`).
#[derive(Debug, Default)]
pub struct Positions {
    nodes: HashMap<String, NodePosition>,
    /// The text as written of plain scalars that became numbers, booleans
    /// or null, so that an error can say exactly what to quote.
    typed_scalars: HashMap<String, String>,
}

impl Positions {
    /// The position of the node at `pointer`, or of its nearest ancestor that
    /// has one (nodes copied by an alias only have the alias's position).
    pub fn find(&self, pointer: &str) -> Option<NodePosition> {
        let mut pointer = pointer;
        loop {
            if let Some(found) = self.nodes.get(pointer) {
                return Some(*found);
            }
            let cut = pointer.rfind('/')?;
            pointer = &pointer[..cut];
        }
    }

    /// Position of the key of the node at `pointer` (falls back to the value).
    pub fn key(&self, pointer: &str) -> Option<Position> {
        self.find(pointer)
            .map(|node| node.key.unwrap_or(node.value))
    }

    /// Position of the value at `pointer`.
    pub fn value(&self, pointer: &str) -> Option<Position> {
        self.find(pointer).map(|node| node.value)
    }

    /// Whether a node was written at exactly `pointer`.
    pub fn has(&self, pointer: &str) -> bool {
        self.nodes.contains_key(pointer)
    }

    /// How a number, boolean or null at `pointer` was written (`0123`, `yes`).
    pub fn written(&self, pointer: &str) -> Option<&str> {
        self.typed_scalars.get(pointer).map(String::as_str)
    }
}

/// Why a YAML text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub position: Position,
    /// JSON pointer of the node, when the problem belongs to one.
    pub pointer: String,
    pub message: String,
    pub hint: Option<String>,
}

impl YamlError {
    fn at(marker: Marker, pointer: &str, message: impl Into<String>, hint: Option<&str>) -> Self {
        YamlError {
            position: marker.into(),
            pointer: pointer.to_string(),
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }
}

/// Parses one YAML document. An empty text (or only comments) gives `Null`.
pub fn parse(text: &str) -> Result<Document, YamlError> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| {
            let hint = error
                .info()
                .contains("tab")
                .then_some("YAML indents with spaces only: replace the tab with spaces");
            YamlError::at(
                *error.marker(),
                "",
                format!("invalid YAML: {}", error.info()),
                hint,
            )
        })?;
        builder.event(event, span)?;
    }
    Ok(Document {
        value: builder.root.unwrap_or(Value::Null),
        positions: builder.positions,
    })
}

/// A container being filled.
#[derive(Debug)]
enum Frame {
    Sequence {
        pointer: String,
        items: Vec<Value>,
        anchor: usize,
        nodes: usize,
    },
    Mapping {
        pointer: String,
        entries: Map<String, Value>,
        key_positions: HashMap<String, Marker>,
        /// The key read, waiting for its value.
        pending_key: Option<String>,
        anchor: usize,
        nodes: usize,
    },
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
    positions: Positions,
    /// Anchored values with their costs, for alias expansion.
    anchors: HashMap<usize, (Value, usize)>,
    total_cost: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let start = span.start;
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(YamlError::at(
                        start,
                        "",
                        "a config file holds one YAML document, this is the second",
                        Some("move each `---` document into a file of its own"),
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.is_key_next() {
                    return self.key(&text, style, start);
                }
                let pointer = self.child_pointer(start);
                let value = scalar(&text, style, tag.as_deref())
                    .map_err(|(message, hint)| YamlError::at(start, &pointer, message, hint))?;
                let cost = scalar_cost(&text);
                self.count(cost, start, &pointer)?;
                if !value.is_string() {
                    self.positions
                        .typed_scalars
                        .insert(pointer, text.to_string());
                }
                self.finish(value, cost, anchor)?;
            }
            Event::Alias(anchor) => {
                if self.is_key_next() {
                    return Err(non_text_key(start, &self.parent_pointer()));
                }
                let pointer = self.child_pointer(start);
                let Some((value, nodes)) = self.anchors.get(&anchor).cloned() else {
                    return Err(YamlError::at(start, &pointer, "unknown alias", None));
                };
                self.count(nodes, start, &pointer)?;
                self.finish(value, nodes, 0)?;
            }
            Event::SequenceStart(anchor, _) => {
                if self.is_key_next() {
                    return Err(non_text_key(start, &self.parent_pointer()));
                }
                let pointer = self.child_pointer(start);
                self.count(1, start, &pointer)?;
                self.check_depth(start, &pointer)?;
                self.stack.push(Frame::Sequence {
                    pointer,
                    items: Vec::new(),
                    anchor,
                    nodes: 1,
                });
            }
            Event::MappingStart(anchor, _) => {
                if self.is_key_next() {
                    return Err(non_text_key(start, &self.parent_pointer()));
                }
                let pointer = self.child_pointer(start);
                self.count(1, start, &pointer)?;
                self.check_depth(start, &pointer)?;
                self.stack.push(Frame::Mapping {
                    pointer,
                    entries: Map::new(),
                    key_positions: HashMap::new(),
                    pending_key: None,
                    anchor,
                    nodes: 1,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor, nodes) = match self.stack.pop() {
                    Some(Frame::Sequence {
                        items,
                        anchor,
                        nodes,
                        ..
                    }) => (Value::Array(items), anchor, nodes),
                    Some(Frame::Mapping {
                        entries,
                        anchor,
                        nodes,
                        ..
                    }) => (Value::Object(entries), anchor, nodes),
                    None => return Ok(()),
                };
                self.finish(value, nodes, anchor)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn is_key_next(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Mapping {
                pending_key: None,
                ..
            })
        )
    }

    fn parent_pointer(&self) -> String {
        match self.stack.last() {
            Some(Frame::Sequence { pointer, .. } | Frame::Mapping { pointer, .. }) => {
                pointer.clone()
            }
            None => String::new(),
        }
    }

    /// Records a key of the current mapping.
    fn key(&mut self, text: &str, style: ScalarStyle, start: Marker) -> Result<(), YamlError> {
        let Some(Frame::Mapping {
            pointer,
            key_positions,
            pending_key,
            ..
        }) = self.stack.last_mut()
        else {
            unreachable!("is_key_next checked that a mapping is open");
        };
        if text == "<<" && style == ScalarStyle::Plain {
            return Err(YamlError::at(
                start,
                pointer,
                "merge keys (`<<`) are not supported",
                Some(
                    "write the keys out in full; YAML 1.2 has no merge keys and tools disagree on them",
                ),
            ));
        }
        if let Some(first) = key_positions.get(text) {
            let first = Position::from(*first);
            return Err(YamlError::at(
                start,
                &pointer_join(pointer, text),
                format!(
                    "duplicate key `{text}` (first defined at line {}, column {})",
                    first.line, first.column
                ),
                Some("remove one of the two; YAML would silently keep only one of them"),
            ));
        }
        key_positions.insert(text.to_string(), start);
        *pending_key = Some(text.to_string());
        Ok(())
    }

    /// The pointer of the node starting now; records its position.
    fn child_pointer(&mut self, start: Marker) -> String {
        let (pointer, key) = match self.stack.last() {
            Some(Frame::Sequence { pointer, items, .. }) => {
                (pointer_join(pointer, &items.len().to_string()), None)
            }
            Some(Frame::Mapping {
                pointer,
                pending_key: Some(key),
                key_positions,
                ..
            }) => (
                pointer_join(pointer, key),
                key_positions.get(key).copied().map(Position::from),
            ),
            _ => (String::new(), None),
        };
        self.positions.nodes.insert(
            pointer.clone(),
            NodePosition {
                key,
                value: start.into(),
            },
        );
        pointer
    }

    fn count(&mut self, cost: usize, start: Marker, pointer: &str) -> Result<(), YamlError> {
        self.total_cost += cost;
        if self.total_cost > MAX_COST {
            return Err(YamlError::at(
                start,
                pointer,
                "this document is too large once its aliases are expanded",
                Some("write the values out instead of repeating large aliases"),
            ));
        }
        Ok(())
    }

    fn check_depth(&self, start: Marker, pointer: &str) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::at(
                start,
                pointer,
                format!("nesting deeper than {MAX_DEPTH} levels"),
                Some("flatten the structure; no setting nests this deep"),
            ));
        }
        Ok(())
    }

    /// A node is complete: remember its anchor and hand it to its parent.
    fn finish(&mut self, value: Value, nodes: usize, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), nodes));
        }
        match self.stack.last_mut() {
            Some(Frame::Sequence {
                items,
                nodes: parent_nodes,
                ..
            }) => {
                items.push(value);
                *parent_nodes += nodes;
            }
            Some(Frame::Mapping {
                entries,
                pending_key,
                nodes: parent_nodes,
                ..
            }) => {
                let key = pending_key.take().expect("a value follows its key");
                entries.insert(key, value);
                *parent_nodes += nodes;
            }
            None => self.root = Some(value),
        }
        Ok(())
    }
}

fn non_text_key(start: Marker, pointer: &str) -> YamlError {
    YamlError::at(
        start,
        pointer,
        "only plain text keys are supported",
        Some("use a text key such as `name:`"),
    )
}

type ScalarError = (String, Option<&'static str>);

/// Resolves a scalar by the YAML 1.2 core schema.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, ScalarError> {
    if let Some(tag) = tag {
        if tag.is_yaml_core_schema() && tag.suffix == "str" {
            return Ok(Value::String(text.to_string()));
        }
        return Err((
            format!("tag `{}{}` is not supported", tag.handle, tag.suffix),
            Some("remove the tag; quote the value to make it text"),
        ));
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => number(text)?.unwrap_or_else(|| Value::String(text.to_string())),
    })
}

fn number(text: &str) -> Result<Option<Value>, ScalarError> {
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let integer = if let Some(hex) = text.strip_prefix("0x") {
        digits(hex, 16).then(|| i64::from_str_radix(hex, 16))
    } else if let Some(octal) = text.strip_prefix("0o") {
        digits(octal, 8).then(|| i64::from_str_radix(octal, 8))
    } else {
        digits(unsigned, 10).then(|| text.parse::<i64>())
    };
    if let Some(parsed) = integer {
        return parsed.map(|n| Some(Value::Number(n.into()))).map_err(|_| {
            (
                format!("the number `{text}` is too large"),
                Some("quote it if it is meant as text"),
            )
        });
    }
    if matches!(
        unsigned,
        ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN"
    ) {
        return Err((
            format!("`{text}` is not a usable number"),
            Some("quote it if it is meant as text"),
        ));
    }
    if is_float(unsigned)
        && let Ok(float) = text.parse::<f64>()
    {
        // `587.0` is the integer 587, as JSON Schema counts it too.
        if float.fract() == 0.0 && float.abs() < 9.0e15 {
            return Ok(Some(Value::Number((float as i64).into())));
        }
        return Ok(Number::from_f64(float).map(Value::Number));
    }
    Ok(None)
}

/// `[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?` or `\.[0-9]+(...)?` (YAML 1.2 core).
fn is_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = all_digits(whole)
        && fraction.is_none_or(all_digits)
        && !(whole.is_empty() && fraction.is_none_or(str::is_empty));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(text: &str) -> Value {
        parse(text).expect("valid YAML").value
    }

    fn error(text: &str) -> YamlError {
        parse(text).expect_err("invalid YAML")
    }

    #[test]
    fn scalars_follow_the_yaml_1_2_core_schema() {
        assert_eq!(
            value(
                "a: yes\nb: on\nc: true\nd: ~\ne: 0123\nf: '0123'\ng: 0x1F\nh: 1.5\ni: 1.2.3\nj:\n"
            ),
            json!({"a": "yes", "b": "on", "c": true, "d": null, "e": 123, "f": "0123",
                   "g": 31, "h": 1.5, "i": "1.2.3", "j": null})
        );
    }

    #[test]
    fn positions_point_at_keys_and_values() {
        let doc = parse("profiles:\n  billing:\n    from: a@b.example\n").unwrap();
        let from = doc.positions.find("/profiles/billing/from").unwrap();
        assert_eq!(from.key, Some(Position { line: 3, column: 5 }));
        assert_eq!(
            from.value,
            Position {
                line: 3,
                column: 11
            }
        );
    }

    #[test]
    fn sequence_items_have_positions() {
        let doc = parse("bcc:\n  - a@b.example\n  - c@d.example\n").unwrap();
        assert_eq!(
            doc.positions.value("/bcc/1"),
            Some(Position { line: 3, column: 5 })
        );
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let e = error("a: 1\nb: 2\na: 3\n");
        assert_eq!(e.position, Position { line: 3, column: 1 });
        assert!(
            e.message.contains("first defined at line 1, column 1"),
            "{}",
            e.message
        );
    }

    #[test]
    fn merge_keys_are_rejected() {
        let e = error("base: &b {x: 1}\nother:\n  <<: *b\n");
        assert!(e.message.contains("merge keys"), "{}", e.message);
        assert_eq!(e.position.line, 3);
    }

    #[test]
    fn aliases_are_expanded() {
        assert_eq!(
            value("a: &x [1, 2]\nb: *x\n"),
            json!({"a": [1, 2], "b": [1, 2]})
        );
    }

    #[test]
    fn alias_bombs_stop_early() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(error(&text).message.contains("too large"));
    }

    #[test]
    fn long_strings_aliased_many_times_stop_early() {
        let long = "x".repeat(1_000_000);
        let aliases = vec!["*s"; 20_000].join(", ");
        let e = error(&format!("a: &s \"{long}\"\nb: [{aliases}]\n"));
        assert!(e.message.contains("too large"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("a:\n  {}y\n", "- ".repeat(100_000));
        assert!(error(&text).message.contains("nesting deeper than 64"));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = error("a: [1, 2\nb: 3\n");
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
        assert!(e.position.line >= 1);
    }

    #[test]
    fn second_documents_are_rejected() {
        assert!(
            error("a: 1\n---\nb: 2\n")
                .message
                .contains("one YAML document")
        );
    }

    #[test]
    fn custom_tags_are_rejected_but_str_is_text() {
        assert_eq!(value("a: !!str 0123\n"), json!({"a": "0123"}));
        assert!(error("a: !secret x\n").message.contains("not supported"));
    }

    #[test]
    fn empty_text_is_null() {
        assert_eq!(value("# only a comment\n"), Value::Null);
    }
}
