//! `finance`: the terminal dashboard and the scripting CLI, as a library the
//! binary (and the rendering benchmark) use.

pub mod api;
pub mod app;
pub mod cli;
pub mod dashboard;
pub mod keys;
pub mod session;
pub mod ui;
