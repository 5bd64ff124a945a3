//! The daemon's errors. Each says what failed and on what; `main` alone turns them into exit
//! codes. Peer behaviour is never an error (see `call`).

use std::fmt;
use std::path::PathBuf;

use crate::config::ConfigError;

#[derive(Debug)]
pub enum Error {
    /// The configuration is unusable (exit 78, EX_CONFIG: systemd does not restart).
    Config(ConfigError),
    /// An I/O operation on a named thing failed.
    Io {
        what: String,
        path: Option<PathBuf>,
        source: std::io::Error,
    },
    /// Something the command needs is not there (no daemon to talk to, not logged in).
    Unavailable(String),
    /// The homeserver, or the Matrix client talking to it, failed: says what was attempted, on
    /// which homeserver, user or room, and the reason.
    Matrix(String),
    /// `intercom check` found problems; they were already printed.
    CheckFailed(usize),
}

impl Error {
    pub fn io(what: impl Into<String>, path: Option<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            path,
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Io {
                what,
                path: Some(p),
                source,
            } => write!(f, "{what} {}: {source}", p.display()),
            Error::Io {
                what,
                path: None,
                source,
            } => write!(f, "{what}: {source}"),
            Error::Unavailable(s) | Error::Matrix(s) => f.write_str(s),
            Error::CheckFailed(n) => write!(f, "{n} problem(s) found"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
