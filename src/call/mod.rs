//! The sans-IO call core: the call state machine and the door's policy.
//!
//! Everything here is a pure function of its inputs. The driver loop feeds it [`Input`]s together
//! with the current [`Instant`], asks it for the next deadline with [`Core::poll_timeout`], calls
//! [`Core::handle_timeout`] when that deadline passes, and drains [`Output`]s with
//! [`Core::poll_output`]. The core never reads the clock, never sleeps, never spawns and never
//! does I/O, and it imports no runtime, Matrix, WebRTC or device crate (a test enforces this):
//! that is what lets every rule below be tested on virtual time, in microseconds.
//!
//! Peer behaviour — a hangup, a reject, a timeout, an ICE failure, glare — is an [`Output`]
//! (ultimately [`Output::CallEnded`]), never an error: nothing a peer sends can make the core fail.
//!
//! The rules follow the Matrix VoIP module (spec v1, MSC2746, MSC3077) and, where matrix-js-sdk
//! (Element's engine) departs from it, what interoperates with it; each rule names its reason.
//! The door is in at most one call at a time. A press rings every configured room at once, each
//! room with a call id of its own (js-sdk keys calls by call id alone), and the first answer wins.
//!
//! The files, by what happens to a call: this one holds the vocabulary (inputs, outputs, ids), the
//! call's state (`ActiveCall`: its phase, which `Side` the door is on with what only that side
//! has, the peer) and the core's entry points; `outgoing.rs` a press ringing the rooms and the
//! first answer; `incoming.rs` an invite and answering it; `signalling.rs` the events of a call in
//! progress; `connection.rs` what the WebRTC side reports; `door.rs` who opens the door;
//! `ending.rs` how a call ends. `policy.rs`, `timers.rs`, `candidates.rs`, `bitrate.rs` and
//! `events.rs` are the pieces they share. `bitrate.rs`, `video.rs` (frame pacing, the keyframe
//! throttle) and `media.rs` (what a failed camera or microphone costs) are decisions the WebRTC
//! adapter's call task asks for.

pub mod bitrate;
mod candidates;
mod connection;
mod door;
mod ending;
mod events;
mod incoming;
pub mod media;
mod outgoing;
mod policy;
mod signalling;
mod timers;
pub mod video;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

pub use candidates::{judge as judge_candidate, Dropped, MAX_REMOTE_CANDIDATES};
pub use door::{
    check_dtmf_code, is_dtmf_key, DoorPolicy, LongPress, ReceivedMessage, DEFAULT_PULSE,
    KEYPAD_ATTEMPTS, KEYPAD_GAP, MAX_COMMAND_AGE, MAX_DTMF_CODE, OPEN_COMMAND,
};
pub use events::{
    CallEvent, CallEventBody, Candidate, HangupReason, ReceivedEvent, SdpKind, SessionDescription,
    StreamPurpose, VERSION,
};
pub use policy::{Incoming, Offered, Policy, PressDuringCall};
use timers::{Timer, Timers};

/// An opaque call id (`call_id` of the VoIP events).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub String);

/// An opaque room id. Never parsed: room version 12 ids have no server part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomId(pub String);

/// A Matrix user id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

/// A `party_id`: for the door, its device id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartyId(pub String);

/// Who the door is on Matrix.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: UserId,
    pub party: PartyId,
}

/// What happens to the core. Each is handed in with the `now` it happened at.
#[derive(Debug, Clone)]
pub enum Input {
    /// The door's button was pressed (the GPIO adapter's hardware filter debounces bounces; the
    /// core merges presses in time, so that a mashed button is one press).
    ButtonPressed,
    /// One whole sync batch of call events, in timeline order (see [`Core::handle_input`]).
    SyncBatch(Vec<ReceivedEvent>),
    /// The WebRTC side of a call produced something.
    Rtc { call: CallId, event: RtcEvent },
    /// A device the call needs failed (camera, microphone, speaker).
    MediaFailed { what: String },
    /// A user left a room (membership changed away from `join`).
    MemberLeft { room: RoomId, user: UserId },
    /// The daemon is shutting down: hang up whatever is up.
    Shutdown,
    /// A text message in one of the door's rooms (`!open`; see `door.rs`).
    Message(ReceivedMessage),
    /// The button was held for the long-press time ([`DoorPolicy::long_press`]).
    LongPress,
}

/// What the door is doing, in the broad strokes its LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Idle,
    /// Calling out, or being called (ringing in, answering).
    Ringing,
    /// Answered: connecting or connected.
    InCall,
}

/// What the WebRTC adapter reports.
#[derive(Debug, Clone)]
pub enum RtcEvent {
    /// A local offer or answer, ready to send. Offers after the call is up are renegotiations
    /// (an ICE restart); answers after it is up answer the peer's renegotiation.
    LocalDescription(SessionDescription),
    /// Local ICE candidates as they are gathered.
    LocalCandidates(Vec<Candidate>),
    /// Local gathering finished.
    GatheringComplete,
    /// The peer connection's state changed.
    Connection(ConnectionState),
    /// A command failed (bad remote SDP, no codec in common, ...).
    Failed { reason: String },
    /// The peer pressed a key (DTMF, an RFC 4733 telephone-event): `0-9`, `*`, `#`, `A-D`,
    /// reported once per press.
    Dtmf(char),
}

/// The peer connection's aggregate state, as the core needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
}

/// What the core asks the world to do. Drained with [`Core::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a call event into a room.
    Send { room: RoomId, event: CallEvent },
    /// A command for the WebRTC side of a call.
    Rtc { call: CallId, command: RtcCommand },
    /// A command for the door's devices.
    Device(DeviceCommand),
    /// A one-line status for systemd (`STATUS=`) and the log.
    Status(String),
    /// A decision worth a line in the log that changes no status: a stranger refused, a stale
    /// invite ignored, a second caller told the door is busy.
    Notice(String),
    /// A call is over.
    CallEnded { call: CallId, reason: EndReason },
    /// Close the door's relay until `until` (one pulse: the core owns its length and merges an
    /// open asked for during one); `by` is who opened it (for the audit log).
    OpenDoor { by: String, until: Instant },
    /// Post a text message into a room (the audit line of an opening, a refusal's reason).
    Post { room: RoomId, text: String },
}

/// Commands for the WebRTC adapter. They arrive in the order they must be carried out.
#[derive(Debug, Clone, PartialEq)]
pub enum RtcCommand {
    /// Create the peer connection with the door's tracks and make an offer.
    CreateOffer { video: bool },
    /// Create the peer connection, apply the remote offer and make an answer.
    CreateAnswer {
        offer: SessionDescription,
        video: bool,
    },
    /// Apply a remote description. An answer completes the door's offer; an offer (the peer's
    /// renegotiation) is answered, and the answer reported as a `LocalDescription`.
    SetRemoteDescription(SessionDescription),
    /// Add remote candidates (only ever after the remote description). An empty `candidate` is
    /// the peer's end of candidates.
    AddRemoteCandidates(Vec<Candidate>),
    /// Tear the peer connection down.
    Close,
}

/// Commands for the door's devices. (The camera and microphone are opened by the WebRTC
/// adapter with each call's peer connection, `RtcCommand::CreateOffer`/`CreateAnswer`, and
/// closed with it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCommand {
    /// The ringtone on the door's speaker (incoming call, ring mode).
    Ringtone(bool),
    /// The ringback tone while the door calls out.
    Ringback(bool),
}

/// Why a call ended, from the door's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// One side hung up; `remote` tells which.
    Hangup { reason: HangupReason, remote: bool },
    /// Every room the door rang rejected the call.
    Rejected,
    /// Another party's answer was selected, or someone else answered the call that rang here.
    AnsweredElsewhere,
    /// Nobody answered in time (ringing out), or the ringing call expired (ringing in).
    NoAnswer,
    /// Lost the glare race: the peer's call replaced the door's.
    Replaced,
    /// The peer left the room.
    PeerLeft,
}

/// How long presses are merged into one: a visitor mashing the button places one call.
const PRESS_MERGE: Duration = Duration::from_millis(1500);
/// An invite needs this much lifetime left to ring (js-sdk's grace; the spec's "long enough").
const RING_GRACE: Duration = Duration::from_secs(3);
/// Local candidates that arrive after the first batch are grouped for this long.
const CANDIDATE_BATCH: Duration = Duration::from_millis(100);
/// How long the door waits for media to connect after an answer, or to come back after it
/// was lost, before hanging up with `ice_failed`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const RECONNECT_GRACE: Duration = Duration::from_secs(4);
/// The `lifetime` of the door's negotiate offers.
const NEGOTIATE_LIFETIME: Duration = Duration::from_secs(60);
/// Bounds on what a peer can make the core keep.
const MAX_SDP: usize = 256 * 1024;
const MAX_CANDIDATES: usize = 200;
const MAX_BUFFERED_PARTIES: usize = 16;
const REMEMBERED_CALLS: usize = 256;

/// The core of the door: every call it is in and every rule it follows.
pub struct Core {
    policy: Policy,
    identity: Identity,
    call: Option<ActiveCall>,
    timers: Timers,
    outputs: VecDeque<Output>,
    /// Remote and local call ids that are over: late events for them are ignored.
    ended: VecDeque<CallId>,
    last_press: Option<Instant>,
    next_call: u64,
    call_seed: String,
    door: DoorPolicy,
    /// The end of the relay's current pulse: an `!open` before it is merged into it.
    door_open_until: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Calling out: waiting for the local offer.
    Preparing,
    /// Calling out: invites sent, waiting for the first answer.
    RingingOut,
    /// Called, in ring mode: waiting for a press.
    RingingIn,
    /// Answering: waiting for the local answer.
    Answering,
    /// Answered (by us or them): media connecting.
    Connecting,
    Connected,
}

/// One room the door rings, with the call id used there.
#[derive(Debug)]
struct Leg {
    room: RoomId,
    call_id: CallId,
    live: bool,
}

/// The other side, once known.
#[derive(Debug, Clone)]
struct Peer {
    user: UserId,
    party: PartyId,
    room: RoomId,
    call_id: CallId,
}

/// Which side of the call the door is on, with what only that side has.
#[derive(Debug)]
enum Side {
    /// The door called out: the rooms it rings, and, until an answer is chosen, the candidates
    /// of each would-be callee by (call id, user, party).
    Caller {
        legs: Vec<Leg>,
        unchosen: HashMap<(CallId, UserId, PartyId), Vec<Candidate>>,
    },
    /// The door was called: the caller's offer, kept while ringing (taken by the answer).
    Callee { offer: Option<SessionDescription> },
}

/// The call the door is in (at most one).
#[derive(Debug)]
struct ActiveCall {
    /// The id WebRTC commands and `CallEnded` use: the door's own for calls it places, the
    /// caller's for calls it answers.
    id: CallId,
    phase: Phase,
    side: Side,
    peer: Option<Peer>,
    /// The peer's candidates that wait for the remote description.
    pending_remote: Vec<Candidate>,
    remote_description_set: bool,
    /// Local candidates not yet sent, and whether sending may start (invite or answer sent).
    local_queue: Vec<Candidate>,
    may_send_candidates: bool,
    gathering_done: bool,
    end_of_candidates_sent: bool,
    /// The door has a negotiate offer out.
    negotiating: bool,
    /// The door is the polite party (the callee, or the replaced caller).
    polite: bool,
    /// The keys the peer pressed (see `door.rs`).
    keypad: door::Keypad,
    /// The peer's candidates handed to WebRTC so far (see `candidates.rs`).
    admitted: candidates::Admitted,
    /// Whether dropped candidates were logged in this call (once is enough).
    told_dropped: bool,
}

impl ActiveCall {
    fn new(id: CallId, phase: Phase, side: Side) -> ActiveCall {
        ActiveCall {
            id,
            phase,
            side,
            peer: None,
            pending_remote: Vec::new(),
            remote_description_set: false,
            local_queue: Vec::new(),
            may_send_candidates: false,
            gathering_done: false,
            end_of_candidates_sent: false,
            negotiating: false,
            polite: false,
            keypad: door::Keypad::default(),
            admitted: candidates::Admitted::default(),
            told_dropped: false,
        }
    }

    /// Whether `event` is from the chosen peer of this call.
    fn is_from_peer(&self, ev: &ReceivedEvent) -> bool {
        self.peer.as_ref().is_some_and(|p| {
            p.call_id == ev.event.call_id
                && p.room == ev.room
                && p.user == ev.sender
                && p.party == ev.event.party_id
        })
    }

    /// The rooms the door rings (none when it was called).
    fn legs(&self) -> &[Leg] {
        match &self.side {
            Side::Caller { legs, .. } => legs,
            Side::Callee { .. } => &[],
        }
    }

    fn is_caller(&self) -> bool {
        matches!(self.side, Side::Caller { .. })
    }

    fn live_leg(&self, ev: &ReceivedEvent) -> Option<usize> {
        self.legs()
            .iter()
            .position(|l| l.live && l.call_id == ev.event.call_id && l.room == ev.room)
    }

    fn knows(&self, call_id: &CallId) -> bool {
        self.id == *call_id
            || self.legs().iter().any(|l| l.call_id == *call_id)
            || self.peer.as_ref().is_some_and(|p| p.call_id == *call_id)
    }
}

impl Core {
    /// A core for `identity`, following `policy`. `call_seed` makes the door's call ids unique
    /// across restarts (the driver passes something random); it must start with a letter, so
    /// that the door's ids sort after js-sdk's (which start with a digit) and the door yields
    /// in glare, which is the only outcome that connects with Element.
    pub fn new(policy: Policy, identity: Identity, call_seed: impl Into<String>) -> Core {
        let mut call_seed = call_seed.into();
        if !call_seed.starts_with(|c: char| c.is_ascii_alphabetic()) {
            call_seed.insert(0, 'd');
        }
        Core {
            policy,
            identity,
            call: None,
            timers: Timers::default(),
            outputs: VecDeque::new(),
            ended: VecDeque::new(),
            last_press: None,
            next_call: 0,
            call_seed,
            door: DoorPolicy::default(),
            door_open_until: None,
        }
    }

    /// Sets the rules of the door's relay (by default there is none: nothing opens).
    pub fn set_door_policy(&mut self, door: DoorPolicy) {
        self.door = door;
    }

    /// What the door is doing, for its LED.
    pub fn activity(&self) -> Activity {
        match self.call.as_ref().map(|c| c.phase) {
            None => Activity::Idle,
            Some(Phase::Preparing | Phase::RingingOut | Phase::RingingIn | Phase::Answering) => {
                Activity::Ringing
            }
            Some(Phase::Connecting | Phase::Connected) => Activity::InCall,
        }
    }

    /// Hands an input to the core.
    ///
    /// A sync batch is judged as a whole first: an invite whose call is hung up, rejected,
    /// answered or has an answer selected anywhere in the same batch never rings (spec, "Call
    /// event liveness"). Then its events are handled in order.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::ButtonPressed => self.on_press(now),
            Input::SyncBatch(events) => self.on_batch(now, events),
            Input::Rtc { call, event } => self.on_rtc(now, call, event),
            // A failed device costs the call that device, not the call: a visitor who is seen
            // but not heard (or heard but not seen) can still be answered. The adapters go on
            // without it (silence sent, audio only, nothing played).
            Input::MediaFailed { what } => {
                if self.call.is_some() {
                    self.notice(format!("{what}: the call goes on without it"));
                }
            }
            Input::MemberLeft { room, user } => {
                let left = self
                    .call
                    .as_ref()
                    .and_then(|c| c.peer.as_ref())
                    .is_some_and(|p| p.room == room && p.user == user);
                if left {
                    self.finish(EndReason::PeerLeft);
                }
            }
            Input::Shutdown => self.hang_up(HangupReason::UserHangup),
            Input::Message(msg) => self.on_message(now, msg),
            Input::LongPress => match self.door.long_press {
                LongPress::None => {}
                LongPress::Hangup => self.hang_up(HangupReason::UserHangup),
                LongPress::OpenDoor => {
                    let rooms = self.policy.rooms.clone();
                    self.open_door(now, "the button (long press)", &rooms);
                }
            },
        }
    }

    /// The earliest instant at which [`Core::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::RingOut => {
                    self.send_to_live_legs(|| CallEventBody::Hangup {
                        reason: HangupReason::InviteTimeout,
                    });
                    self.finish(EndReason::NoAnswer);
                }
                Timer::RingIn => self.finish(EndReason::NoAnswer),
                Timer::MaxLength => self.hang_up(HangupReason::UserHangup),
                Timer::Connect => self.hang_up(HangupReason::IceFailed),
                Timer::CandidateFlush => self.flush_candidates(),
            }
        }
    }

    /// The next thing for the world to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// True when no call is in any stage.
    pub fn is_idle(&self) -> bool {
        self.call.is_none()
    }

    fn send(&mut self, room: &RoomId, call_id: CallId, body: CallEventBody) {
        self.emit(Output::Send {
            room: room.clone(),
            event: CallEvent {
                call_id,
                party_id: self.identity.party.clone(),
                body,
            },
        });
    }

    fn emit(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    fn status(&mut self, line: String) {
        self.emit(Output::Status(line));
    }

    fn notice(&mut self, line: String) {
        self.emit(Output::Notice(line));
    }
}
