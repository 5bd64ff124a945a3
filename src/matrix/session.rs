//! The stored Matrix session: `session.json` in the state directory.
//!
//! `intercom login` writes it once; every start of the daemon restores it, so the door stays one
//! device of its account for life (its E2EE keys live in the store beside it). The file holds the
//! access token: it is written with mode 0600, atomically (a temporary file in the same
//! directory, then a rename), and the token never appears in a `Debug` output, a log or an error.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The largest session file read: the one `intercom login` writes is a few hundred bytes.
pub const MAX_SIZE: u64 = 64 << 10;

/// What the door needs to be itself again after a restart.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The homeserver the session was opened on.
    pub homeserver: String,
    pub user_id: String,
    pub device_id: String,
    pub access_token: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("homeserver", &self.homeserver)
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

impl Session {
    /// Reads the session at `path`. A missing file means the door was never logged in.
    pub fn load(path: &Path) -> Result<Session, Error> {
        let text = match crate::files::read_to_string(path, MAX_SIZE) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Unavailable(format!(
                    "not logged in: run `intercom login` ({} is missing)",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(Error::io(
                    "cannot read the Matrix session",
                    Some(path.into()),
                    e,
                ))
            }
        };
        // serde_json's messages name the line, column and field, never the values.
        serde_json::from_str(&text).map_err(|e| {
            Error::Unavailable(format!(
                "{}: not a valid Matrix session ({e}): run `intercom login` again",
                path.display()
            ))
        })
    }

    /// Writes the session to `path`, mode 0600, replacing any file there in one rename.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let tmp = temp_path(path);
        let failed = |e| Error::io("cannot write the Matrix session", Some(path.into()), e);
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
            file.write_all(json.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename is durable only once the directory is.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            failed(e)
        })
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn session() -> Session {
        Session {
            homeserver: "https://matrix.example.org".into(),
            user_id: "@door:example.org".into(),
            device_id: "DOORDEVICE".into(),
            access_token: "syt_secret_token".into(),
        }
    }

    #[test]
    fn saves_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.json");
        session().save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Session::load(&path).unwrap(), session());
        // A second save replaces the first and leaves no temporary file behind.
        let mut other = session();
        other.device_id = "OTHER".into();
        other.save(&path).unwrap();
        assert_eq!(Session::load(&path).unwrap().device_id, "OTHER");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["session.json"]);
    }

    #[test]
    fn debug_redacts_the_token() {
        let shown = format!("{:?}", session());
        assert!(!shown.contains("syt_secret_token"), "{shown}");
        assert!(shown.contains("DOORDEVICE"), "{shown}");
    }

    #[test]
    fn errors_name_the_file_and_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.json");
        let missing = Session::load(&path).unwrap_err().to_string();
        assert!(missing.contains("intercom login"), "{missing}");
        assert!(missing.contains(&path.display().to_string()), "{missing}");

        std::fs::write(
            &path,
            r#"{"homeserver": "h", "access_token": "syt_secret_token"}"#,
        )
        .unwrap();
        let broken = Session::load(&path).unwrap_err().to_string();
        assert!(broken.contains(&path.display().to_string()), "{broken}");
        assert!(broken.contains("user_id"), "{broken}");
        assert!(!broken.contains("syt_secret_token"), "{broken}");

        let nowhere = dir.path().join("no/such/dir/session.json");
        let unwritable = session().save(&nowhere).unwrap_err().to_string();
        assert!(
            unwritable.contains("cannot write the Matrix session"),
            "{unwritable}"
        );
        assert!(unwritable.contains("no/such/dir"), "{unwritable}");
    }
}
