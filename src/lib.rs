//! `intercom`: a door intercom daemon that rings Matrix rooms. See ARCHITECTURE.md for the map.

pub mod call;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod error;
pub mod files;
pub mod gpio;
pub mod logging;
pub mod matrix;
pub mod media;
pub mod memory;
pub mod panel;
pub mod panics;
pub mod rtc;
pub mod settings;
pub mod station;

pub use error::Error;
