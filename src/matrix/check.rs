//! What `intercom check` finds on the Matrix side: the stored session, the homeserver, the rooms
//! and TURN.
//!
//! It may run while the daemon does, and as another user (root): so it never opens the daemon's
//! SQLite stores, and restores the session into a client with memory stores instead, which only
//! asks questions of the homeserver and uploads nothing. Every failure is a finding, never an
//! error: `check` stays usable offline.

use std::collections::HashSet;
use std::time::Duration;

use matrix_sdk::ruma::api::client::membership::joined_rooms;

use super::{
    build_client, describe, resolve, restore, session_path, store_path, turn_servers, Session,
};
use crate::check::{Finding, Level};
use crate::config::MatrixConfig;

/// How long `check` waits for each answer of the homeserver.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

fn finding(level: Level, what: impl Into<String>, detail: impl Into<String>) -> Finding {
    Finding::new(level, what, detail)
}

/// Looks at the session of `config` and asks the homeserver about it. Call it when the session
/// file exists (its absence is the caller's finding).
pub async fn diagnose(config: &MatrixConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let session = match Session::load(&session_path(&config.state_dir)) {
        Ok(s) => s,
        Err(e) => {
            out.push(finding(Level::Problem, "Matrix session", e.to_string()));
            return out;
        }
    };
    if session.homeserver != config.homeserver.0 || session.user_id != config.user.0 {
        out.push(finding(
            Level::Problem,
            "Matrix session",
            format!(
                "for {} on {}, but the configuration names {} on {}: run `intercom login` again",
                session.user_id, session.homeserver, config.user, config.homeserver.0
            ),
        ));
        return out;
    }
    let store = store_path(&config.state_dir);
    out.push(if store.is_dir() {
        finding(
            Level::Ok,
            format!("Matrix store {}", store.display()),
            "present",
        )
    } else {
        finding(
            Level::Problem,
            format!("Matrix store {}", store.display()),
            "missing: the device's encryption keys are gone; run `intercom login` again",
        )
    });
    let client = match build_client(&session.homeserver, None, CHECK_TIMEOUT).await {
        Ok(c) => c,
        Err(e) => {
            out.push(finding(Level::Problem, "Matrix client", e.to_string()));
            return out;
        }
    };
    if let Err(e) = restore(&client, &session).await {
        out.push(finding(Level::Problem, "Matrix session", e.to_string()));
        return out;
    }
    out.push(finding(
        Level::Ok,
        "Matrix session",
        format!(
            "restores {} (device {})",
            session.user_id, session.device_id
        ),
    ));

    let homeserver = format!("homeserver {}", session.homeserver);
    match client.whoami().await {
        Ok(me)
            if me
                .device_id
                .as_deref()
                .is_some_and(|d| d.as_str() != session.device_id) =>
        {
            out.push(finding(
                Level::Problem,
                homeserver,
                format!(
                    "the session's token belongs to device {:?}, not {}: run `intercom login` again",
                    me.device_id, session.device_id
                ),
            ));
            return out;
        }
        Ok(me) => out.push(finding(
            Level::Ok,
            homeserver,
            format!("answers and accepts the session of {}", me.user_id),
        )),
        Err(e) => {
            out.push(finding(Level::Problem, homeserver, describe(&e)));
            return out;
        }
    }

    let joined: Result<HashSet<String>, String> = client
        .send(joined_rooms::v3::Request::new())
        .await
        .map(|r| r.joined_rooms.iter().map(|r| r.to_string()).collect())
        .map_err(|e| describe(&e));
    for room in &config.rooms {
        let what = format!("room {room}");
        let id = match resolve(&client, room).await {
            Ok(id) => id,
            Err(e) => {
                out.push(finding(Level::Problem, what, e.to_string()));
                continue;
            }
        };
        let shown = if id.0 == room.0 {
            String::new()
        } else {
            format!(" ({})", id.0)
        };
        out.push(match &joined {
            Ok(set) if set.contains(&id.0) => finding(Level::Ok, what, format!("joined{shown}")),
            Ok(_) => finding(
                Level::Problem,
                what,
                format!(
                    "not joined{shown}: invite {} from an account on the allow list, or join it",
                    session.user_id
                ),
            ),
            Err(e) => finding(
                Level::Problem,
                what,
                format!("cannot list the joined rooms: {e}"),
            ),
        });
    }

    out.push(match turn_servers(&client).await {
        Ok(Some(t)) => finding(
            Level::Ok,
            "TURN",
            format!(
                "{} server(s) from the homeserver: {}",
                t.uris.len(),
                t.uris.join(", ")
            ),
        ),
        Ok(None) => finding(
            Level::Warning,
            "TURN",
            "the homeserver offers none: calls between different networks may fail without [turn]",
        ),
        Err(e) => finding(Level::Warning, "TURN", e.to_string()),
    });
    out
}
