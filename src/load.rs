//! The one loader every command uses: the configuration checks of
//! [`config::load`] plus the template checks of [`render::lint`]. What
//! `validate` accepts is exactly what `explain`, `preview` and `send` run.

use std::path::{Path, PathBuf};

use crate::config::{self, Diagnostic, LoadError, LoadOptions, Loaded};
use crate::render;

pub fn load(path: &Path, options: LoadOptions) -> Result<Loaded, LoadError> {
    lint(config::load(path, options)?)
}

/// [`load`] for texts already in memory (tests, fuzzing).
pub fn load_texts(
    texts: Vec<(PathBuf, String)>,
    root: &Path,
    options: LoadOptions,
) -> Result<Loaded, LoadError> {
    lint(config::load_texts(texts, root, options)?)
}

fn lint(mut loaded: Loaded) -> Result<Loaded, LoadError> {
    let mut found = render::lint(&loaded.config);
    loaded.annotate(&mut found);
    if found.iter().any(Diagnostic::is_error) {
        let mut diagnostics = std::mem::take(&mut loaded.warnings);
        diagnostics.extend(found);
        return Err(LoadError::Invalid { diagnostics });
    }
    loaded.warnings.extend(found);
    Ok(loaded)
}
