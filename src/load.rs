//! The one loader every command uses: the configuration checks of
//! [`config::load`] plus the template checks of [`render::lint`]. What
//! `validate` accepts is exactly what `explain`, `preview` and `send` run.

use std::path::Path;

use crate::config::{self, Diagnostic, LoadError, LoadOptions, Loaded};
use crate::render;

pub fn load(path: &Path, options: LoadOptions) -> Result<Loaded, LoadError> {
    let mut loaded = config::load(path, options)?;
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
