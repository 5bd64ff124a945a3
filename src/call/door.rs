//! Who may open the door, and when: the decisions behind the relay.
//!
//! - Only users on the allow list ever open the door, and only with `!open` (the whole message,
//!   any case, surrounding blanks ignored) in one of the door's rooms:
//!   - during a call: the peer of the call that is up (connecting or connected), in the call's
//!     room (`[door] call_command`, on by default);
//!   - at any time: in any of the configured rooms (`[door] room_command`, off by default).
//! - A command older than [`MAX_COMMAND_AGE`] (a sync that was held up) is refused: a door must
//!   not open minutes after it was asked to.
//! - One pulse at a time: an `!open` while the relay is closed is merged into that pulse (logged,
//!   nothing posted, the pulse is not lengthened).
//! - Each opening is announced (`Output::OpenDoor`, logged by the driver with who opened it) and
//!   posted into the room as an audit line ("Door opened by @alice:example.org").
//! - A refusal is logged, naming the user. An allow-listed user is told why in the room; a
//!   stranger is told nothing, so the room learns nothing about the door's state or policy.

use std::time::Duration;

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
}

impl Default for DoorPolicy {
    fn default() -> Self {
        DoorPolicy {
            relay: false,
            pulse: Duration::from_secs(2),
            call_command: true,
            room_command: false,
            long_press: LongPress::None,
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
    if let Some(age) = msg.age.filter(|a| *a > MAX_COMMAND_AGE) {
        return refuse(&format!(
            "the command is {} s old (at most {} s)",
            age.as_secs(),
            MAX_COMMAND_AGE.as_secs()
        ));
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
