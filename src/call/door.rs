//! Who may open the door, and when: the decisions behind the relay.
//!
//! - Only users on the allow list ever open the door, and only with `!open` (the whole message,
//!   any case, surrounding blanks ignored) in one of the door's rooms:
//!   - during a call: the peer of the call that is up (connecting or connected), in the call's
//!     room (`[door] call_command`, on by default);
//!   - at any time: in any of the configured rooms (`[door] room_command`, off by default).
//! - A command older than [`MAX_COMMAND_AGE`] (a sync that was held up), or whose age the
//!   homeserver did not give, is refused: a door must not open minutes after it was asked to.
//! - In an encrypted room, a command that arrived unencrypted is refused: the homeserver (or
//!   anyone with its database) can write plaintext events in any member's name.
//! - One pulse at a time: an `!open` while the relay is closed is merged into that pulse (logged,
//!   nothing posted, the pulse is not lengthened).
//! - Each opening is announced (`Output::OpenDoor`, logged by the driver with who opened it) and
//!   posted into the room as an audit line ("Door opened by @alice:example.org").
//! - A refusal is logged, naming the user. An allow-listed user is told why in the room; a
//!   stranger is told nothing, so the room learns nothing about the door's state or policy.
//!
//! The keypad (DTMF, RFC 4733 telephone-events on the call's audio, `[door] dtmf_code`): the keys
//! the peer of the call that is up presses are gathered into an entry ([`Keypad`]). An entry is
//! complete when it has as many keys as the code, or at a `#`. A complete entry opens the door
//! only if the call's peer (who answered the door's call, or whose call the door answered) is on
//! the allow list and the entry is the code; the audit line says it was the keypad ("Door opened
//! by @alice:example.org (keypad)"). Anything else is a refusal that is logged and nothing more:
//! the peer hears nothing and the room is told nothing. Keys are never logged. An entry is
//! forgotten after [`KEYPAD_GAP`] without a key and when the call ends; after
//! [`KEYPAD_ATTEMPTS`] wrong entries the keypad ignores the rest of the call.

use std::time::{Duration, Instant};

use super::{RoomId, UserId};

/// The oldest `!open` the door acts upon.
pub const MAX_COMMAND_AGE: Duration = Duration::from_secs(30);

/// The command that opens the door.
pub const OPEN_COMMAND: &str = "!open";

/// What a long press of the button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongPress {
    None,
    /// Hang up (or stop ringing) whatever call is up.
    Hangup,
    /// Open the door. Only for a button inside the house: a visitor could hold it.
    OpenDoor,
}

/// How long one opening closes the relay unless `[door] pulse` says otherwise.
pub const DEFAULT_PULSE: Duration = Duration::from_secs(2);

/// The door's rules for its relay. Set with [`super::Core::set_door_policy`]; the default has no
/// relay (nothing ever opens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorPolicy {
    /// Whether a relay is configured (`[door]`).
    pub relay: bool,
    /// How long one opening closes the relay.
    pub pulse: Duration,
    /// The peer of the call that is up may say `!open` in the call's room.
    pub call_command: bool,
    /// Any allow-listed user may say `!open` in a configured room, call or not.
    pub room_command: bool,
    pub long_press: LongPress,
    /// The keypad code that opens the door during a call (keys `0-9`, `*`, `A-D`, a `#` only
    /// last); empty: the keypad opens nothing.
    pub dtmf_code: String,
}

impl Default for DoorPolicy {
    fn default() -> Self {
        DoorPolicy {
            relay: false,
            pulse: DEFAULT_PULSE,
            call_command: true,
            room_command: false,
            long_press: LongPress::None,
            dtmf_code: String::new(),
        }
    }
}

/// A text message (`m.text`) in one of the door's rooms, from a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub room: RoomId,
    pub sender: UserId,
    /// The event's `age` as the homeserver reported it, when it did.
    pub age: Option<Duration>,
    pub body: String,
    /// Whether the message arrived encrypted.
    pub encrypted: bool,
    /// Whether the room is encrypted (its `m.room.encryption` state).
    pub room_encrypted: bool,
}

impl ReceivedMessage {
    /// Whether the message is the open command.
    pub fn is_open_command(&self) -> bool {
        self.body.trim().eq_ignore_ascii_case(OPEN_COMMAND)
    }
}

/// What the door does with an `!open`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    Open,
    /// Refused: why, and whether the sender is told (allow-listed users only).
    Refuse {
        why: String,
        tell: bool,
    },
}

/// Judges an `!open` from `msg.sender`. `call` is the room and user of the call that is up
/// (connecting or connected), if any; `rooms` are the configured rooms.
pub(super) fn judge(
    policy: &DoorPolicy,
    allow: &[UserId],
    rooms: &[RoomId],
    call: Option<(&RoomId, &UserId)>,
    msg: &ReceivedMessage,
) -> Verdict {
    if !allow.contains(&msg.sender) {
        return Verdict::Refuse {
            why: "not on the allow list".into(),
            tell: false,
        };
    }
    let refuse = |why: &str| Verdict::Refuse {
        why: why.to_owned(),
        tell: true,
    };
    if !policy.relay {
        return refuse("this door has no relay configured");
    }
    match msg.age {
        // Some homeservers omit `age`: a command that cannot be shown to be fresh may have
        // been held up by an outage, and a door must not open late.
        None => {
            return refuse(
                "the homeserver gave no age for the command, so it cannot be shown to be fresh",
            )
        }
        Some(age) if age > MAX_COMMAND_AGE => {
            return refuse(&format!(
                "the command is {} s old (at most {} s)",
                age.as_secs(),
                MAX_COMMAND_AGE.as_secs()
            ))
        }
        Some(_) => {}
    }
    // In an encrypted room, a command in the clear is one anybody with the homeserver's
    // database could have written in the sender's name.
    if msg.room_encrypted && !msg.encrypted {
        return refuse("the command was not encrypted, in an encrypted room");
    }
    let in_this_call = call.is_some_and(|(room, user)| *room == msg.room && *user == msg.sender);
    if policy.call_command && in_this_call {
        return Verdict::Open;
    }
    if policy.room_command && rooms.contains(&msg.room) {
        return Verdict::Open;
    }
    if policy.call_command {
        refuse("only during a call with the door, by the one in the call")
    } else {
        refuse("opening from Matrix is off for this door")
    }
}

/// The longest pause between two keys of one keypad entry.
pub const KEYPAD_GAP: Duration = Duration::from_secs(5);

/// Wrong keypad entries in one call after which the keypad ignores the rest of the call.
pub const KEYPAD_ATTEMPTS: u32 = 3;

/// The most keys a keypad code may have.
pub const MAX_DTMF_CODE: usize = 16;

/// The fewest keys a keypad code may have, a final `#` not counted. A key or two is a stray
/// press away from opening the door; four is the length of a bank card's PIN, and with
/// [`KEYPAD_ATTEMPTS`] tries a call, four digits leave a guess one chance in 3,333.
pub const MIN_DTMF_CODE: usize = 4;

/// Whether `key` is a DTMF key (`0-9`, `*`, `#`, `A-D`).
pub fn is_dtmf_key(key: char) -> bool {
    matches!(key, '0'..='9' | '*' | '#' | 'A'..='D')
}

/// Why `code` cannot be a keypad code, if it cannot (the empty code is valid: the keypad off):
/// keys `0-9`, `*`, `A-D`, from [`MIN_DTMF_CODE`] to [`MAX_DTMF_CODE`] of them, and `#` only
/// last. The message never repeats the code.
pub fn check_dtmf_code(code: &str) -> Result<(), String> {
    if code.chars().count() > MAX_DTMF_CODE {
        return Err(format!("expected at most {MAX_DTMF_CODE} keys"));
    }
    if let Some(bad) = code.chars().find(|c| !is_dtmf_key(*c)) {
        return Err(format!(
            "{bad:?} is not a keypad key (expected 0-9, *, A-D, and # as the last key)"
        ));
    }
    if code.find('#').is_some_and(|at| at + 1 != code.len()) {
        return Err("# ends an entry: it may only be the last key".to_owned());
    }
    if !code.is_empty() && code.trim_end_matches('#').chars().count() < MIN_DTMF_CODE {
        return Err(format!(
            "expected at least {MIN_DTMF_CODE} keys before a final #"
        ));
    }
    Ok(())
}

/// One call's keypad: the entry being typed and the wrong entries so far.
#[derive(Debug, Default)]
pub(super) struct Keypad {
    entry: String,
    last: Option<Instant>,
    wrong: u32,
}

/// What a key did to the keypad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Keyed {
    /// Part of an entry, or ignored (not a key, keypad locked).
    Nothing,
    /// A complete entry: whether it is the code.
    Entry { right: bool },
    /// A wrong entry that used up the last attempt.
    Locked,
}

impl Keypad {
    /// Adds `key`, pressed at `now`, to the entry; `code` is not empty.
    pub(super) fn key(&mut self, code: &str, now: Instant, key: char) -> Keyed {
        if self.wrong >= KEYPAD_ATTEMPTS || !is_dtmf_key(key) {
            return Keyed::Nothing;
        }
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) > KEYPAD_GAP)
        {
            self.entry.clear();
        }
        self.last = Some(now);
        self.entry.push(key);
        if key != '#' && self.entry.len() < code.len() {
            return Keyed::Nothing;
        }
        let right = self.entry == code;
        self.entry.clear();
        if right {
            return Keyed::Entry { right };
        }
        self.wrong += 1;
        if self.wrong >= KEYPAD_ATTEMPTS {
            Keyed::Locked
        } else {
            Keyed::Entry { right }
        }
    }
}

// --- the core's side: messages, keys and the relay ---------------------------------------

use super::{Output, Phase};

impl super::Core {
    pub(super) fn on_message(&mut self, now: Instant, msg: ReceivedMessage) {
        if msg.sender == self.identity.user || !msg.is_open_command() {
            return;
        }
        let call = self.call.as_ref().and_then(|c| {
            let up = matches!(c.phase, Phase::Connecting | Phase::Connected);
            c.peer.as_ref().filter(|_| up).map(|p| (&p.room, &p.user))
        });
        let verdict = judge(
            &self.door,
            &self.policy.allow,
            &self.policy.rooms,
            call,
            &msg,
        );
        match verdict {
            Verdict::Open => {
                let room = [msg.room.clone()];
                self.open_door(now, &msg.sender.0, &room);
            }
            Verdict::Refuse { why, tell } => {
                self.notice(format!(
                    "door: {OPEN_COMMAND} from {} in {} refused: {why}",
                    msg.sender.0, msg.room.0
                ));
                if tell {
                    self.emit(Output::Post {
                        room: msg.room,
                        text: format!("Door not opened: {why}."),
                    });
                }
            }
        }
    }

    /// Opens the door for `by`, posting the audit line into `rooms`; merged into a pulse that
    /// is under way.
    pub(super) fn open_door(&mut self, now: Instant, by: &str, rooms: &[RoomId]) {
        if !self.door.relay {
            self.notice(format!(
                "door: {by} would open it, but no relay is configured"
            ));
            return;
        }
        if self.door_open_until.is_some_and(|t| now < t) {
            self.notice(format!("door: already opening; {by}'s open merged into it"));
            return;
        }
        let until = now + self.door.pulse;
        self.door_open_until = Some(until);
        self.emit(Output::OpenDoor {
            by: by.to_owned(),
            until,
        });
        for room in rooms {
            self.emit(Output::Post {
                room: room.clone(),
                text: format!("Door opened by {by}"),
            });
        }
    }

    /// A key the peer of the call pressed: gathered into an entry, which opens the door when it
    /// is the code and the peer is on the allow list (see `door.rs`).
    pub(super) fn on_key(&mut self, now: Instant, key: char) {
        if self.door.dtmf_code.is_empty() {
            return;
        }
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let up = matches!(call.phase, Phase::Connecting | Phase::Connected);
        let Some(peer) = call.peer.clone().filter(|_| up) else {
            return;
        };
        let keyed = call.keypad.key(&self.door.dtmf_code, now, key);
        let right = match keyed {
            Keyed::Nothing => return,
            Keyed::Entry { right } => right,
            Keyed::Locked => false,
        };
        let who = &peer.user.0;
        if !self.policy.allow.contains(&peer.user) {
            self.notice(format!(
                "door: keypad entry from {who} refused: not on the allow list"
            ));
        } else if right {
            self.open_door(now, &format!("{who} (keypad)"), &[peer.room]);
        } else if keyed == Keyed::Locked {
            self.notice(format!(
                "door: wrong keypad code from {who}; the keypad is off for the rest of this call"
            ));
        } else {
            self.notice(format!("door: wrong keypad code from {who}"));
        }
    }
}
