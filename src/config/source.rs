//! A loaded config file: its path, text and node positions, and the
//! locations of nodes built from them.

use std::path::PathBuf;
use std::sync::Arc;

use super::diagnostic::Location;
use super::yaml::{Position, Positions};

#[derive(Debug)]
pub struct SourceFile {
    pub path: Arc<PathBuf>,
    pub text: String,
    pub positions: Positions,
    /// Literal passwords written in this file, to keep out of diagnostics.
    pub secrets: Vec<String>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Self {
        SourceFile {
            path: Arc::new(path),
            text,
            positions: Positions::default(),
            secrets: Vec::new(),
        }
    }

    /// Where the value at `pointer` starts.
    pub fn value_at(&self, pointer: &str) -> Location {
        self.location(self.positions.value(pointer))
    }

    /// Where the key of the value at `pointer` starts (the value's position
    /// for sequence items and the document root).
    pub fn key_at(&self, pointer: &str) -> Location {
        self.location(self.positions.key(pointer))
    }

    fn location(&self, position: Option<Position>) -> Location {
        let Position { line, column } = position.unwrap_or(Position { line: 1, column: 1 });
        Location::new(self.path.clone(), line, column)
    }

    /// The text of a 1-based line, for showing it under a diagnostic.
    pub fn line(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }
}
