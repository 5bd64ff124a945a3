//! The Matrix adapter (matrix-sdk): login, the stored session, E2EE, the sync loop, and sending.
//!
//! It translates between ruma's `m.call.*` events and the core's [`crate::call::CallEvent`]s and
//! decides nothing: which events matter, what rings and what is answered are the core's business.
//! Its boundary with the driver loop:
//!
//! - in: [`crate::call::Output::Send`] — an event to send into a room;
//! - out: [`crate::call::Input::SyncBatch`] — every call event of one sync response, in order,
//!   with `age` and whether it was encrypted; [`crate::call::Input::MemberLeft`].
//!
//! The session (access token, device id) lives in a 0600 file in the state directory, written
//! once by `intercom login`; the crypto store (SQLite) beside it. The adapter itself arrives with
//! the Matrix-calls work; until then the daemon runs without a homeserver connection.

use std::path::{Path, PathBuf};

/// The file in the state directory that holds the Matrix session.
pub fn session_path(state_dir: &Path) -> PathBuf {
    state_dir.join("session.json")
}
