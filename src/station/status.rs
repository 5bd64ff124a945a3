//! The door's status: the line systemd shows (`STATUS=`) and what `intercom status` reports.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::call::{CallId, EndReason, RoomId};

/// The status line systemd shows (and the control socket's `status` answers): the core's state,
/// whether the homeserver is reachable, and what is missing, e.g.
/// `Idle (camera /dev/video0 missing: audio only)`.
#[derive(Debug, Default)]
pub struct Status {
    /// The configured rooms, as the core rings them.
    rooms: Vec<RoomId>,
    /// Whether a sync ever succeeded.
    reached: bool,
    /// When the last call ended, and how (for `intercom status`).
    last_call: Option<(Instant, String)>,
    core: String,
    offline: Option<String>,
    /// What does not work, by what it is ("camera /dev/video0", "room #door:example.org"),
    /// with what that costs ("missing: audio only").
    missing: BTreeMap<String, String>,
    shown: String,
}

impl Status {
    pub fn new(rooms: Vec<RoomId>) -> Status {
        Status {
            rooms,
            ..Status::default()
        }
    }

    pub fn line(&self) -> String {
        let notes: Vec<String> = self
            .offline
            .iter()
            .map(|why| format!("homeserver unreachable: {why}"))
            .chain(
                self.missing
                    .iter()
                    .map(|(part, cost)| format!("{part} {cost}")),
            )
            .collect();
        if notes.is_empty() {
            self.state().to_owned()
        } else {
            format!("{} ({})", self.state(), notes.join("; "))
        }
    }

    fn state(&self) -> &str {
        if self.core.is_empty() {
            "Idle"
        } else {
            &self.core
        }
    }

    pub fn set_core(&mut self, line: String) {
        self.core = line;
    }

    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    pub fn set_online(&mut self, offline: Option<String>) {
        self.reached |= offline.is_none();
        self.offline = offline;
    }

    /// The aliases that do not resolve replace those that did not before.
    pub fn set_unresolved(&mut self, aliases: &[(String, String)]) {
        self.missing.retain(|part, _| !part.starts_with("room "));
        for (alias, _) in aliases {
            self.missing
                .insert(format!("room {alias}"), "unresolved: not rung".to_owned());
        }
    }

    pub fn set_missing(&mut self, part: String, cost: String) {
        self.missing.insert(part, cost);
    }

    /// Whether `part` was missing.
    pub fn clear_missing(&mut self, part: &str) -> bool {
        self.missing.remove(part).is_some()
    }

    /// The line, when it changed since it was last asked.
    pub fn changed(&mut self) -> Option<String> {
        let line = self.line();
        if line == self.shown {
            return None;
        }
        self.shown.clone_from(&line);
        Some(line)
    }

    /// The control socket's answer to `status` (`intercom status` shows it): the status line,
    /// then a `key: value` line each for the state, the homeserver, the rooms, the last call and
    /// what is missing.
    pub fn report(&self, now: Instant) -> String {
        let homeserver = match (&self.offline, self.reached) {
            (Some(why), _) => format!("unreachable ({why}); retrying"),
            (None, true) => "reachable".to_owned(),
            (None, false) => "not reached yet".to_owned(),
        };
        let rooms: Vec<&str> = self.rooms.iter().map(|r| r.0.as_str()).collect();
        let last_call = match &self.last_call {
            Some((at, how)) => format!(
                "{how}; ended {}s ago",
                now.saturating_duration_since(*at).as_secs()
            ),
            None => "none since the daemon started".to_owned(),
        };
        let mut missing: Vec<String> = self
            .offline
            .iter()
            .map(|_| "the homeserver".to_owned())
            .collect();
        if rooms.is_empty() {
            missing.push("a room to ring".to_owned());
        }
        missing.extend(
            self.missing
                .iter()
                .map(|(part, cost)| format!("{part} ({cost})")),
        );
        let lines = [
            self.line(),
            format!("state: {}", self.state()),
            format!("homeserver: {homeserver}"),
            format!("rooms: {}", rooms.join(", ")),
            format!("last call: {last_call}"),
            format!(
                "missing: {}",
                if missing.is_empty() {
                    "nothing".to_owned()
                } else {
                    missing.join(", ")
                }
            ),
        ];
        // One line each, whatever a reason or a peer's name holds.
        lines
            .map(|l| l.replace(|c: char| c.is_control(), " "))
            .join("\n")
    }

    /// Remembers how a call ended, with the last state it reached (who answered, if anyone).
    pub fn call_ended(&mut self, now: Instant, call: &CallId, reason: &EndReason) {
        let how = match reason {
            EndReason::Hangup { reason, remote } => format!(
                "hung up by {} ({})",
                if *remote {
                    "the other side"
                } else {
                    "the door"
                },
                reason.as_str()
            ),
            EndReason::Rejected => "rejected".to_owned(),
            EndReason::AnsweredElsewhere => "answered elsewhere".to_owned(),
            EndReason::NoAnswer => "no answer".to_owned(),
            EndReason::Replaced => "replaced by the peer's call".to_owned(),
            EndReason::PeerLeft => "the peer left the room".to_owned(),
        };
        let last = format!("{}: {how} (last state: {})", call.0, self.state());
        self.last_call = Some((now, last));
    }
}
