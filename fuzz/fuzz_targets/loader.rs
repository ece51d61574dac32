//! Any bytes as a config file: the loader (YAML, schema, compile, checks,
//! template lint) must answer with a configuration or diagnostics, never
//! panic, hang or run out of memory.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let files = vec![(PathBuf::from("fuzz.yaml"), text)];
    let _ = mailrules::load::load_texts(files, Path::new("/nonexistent-fuzz-root"), Default::default());
});
