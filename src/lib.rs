//! mailrules: e-mail configuration as code for business applications.
//!
//! Data flow for a send: disk -> [`config::Config`] -> [`resolve::Resolution`]
//! -> [`render::Rendered`] -> [`transport`] -> receipt. Only `cli` prints.

pub mod cli;
pub mod config;
pub mod load;
pub mod outbox;
pub mod plan;
pub mod render;
pub mod resolve;
pub mod serve;
pub mod testing;
pub mod transport;
