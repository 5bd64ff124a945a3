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

pub mod bitrate;
mod candidates;
mod door;
mod events;
mod policy;
mod timers;

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
pub use policy::{Incoming, Policy, PressDuringCall};
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
    /// Close the door's relay for one pulse; `by` is who opened it (for the log).
    OpenDoor { by: String },
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

/// Commands for the door's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCommand {
    /// Start (warm up) the camera and microphone.
    StartMedia,
    StopMedia,
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
    call: Option<Call>,
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

#[derive(Debug)]
struct Call {
    /// The id WebRTC commands and `CallEnded` use: the door's own for calls it places, the
    /// caller's for calls it answers.
    id: CallId,
    phase: Phase,
    /// Outgoing only: the rooms rung.
    legs: Vec<Leg>,
    peer: Option<Peer>,
    /// Outgoing, before an answer is chosen: candidates per (call id, user, party).
    unchosen: HashMap<(CallId, UserId, PartyId), Vec<Candidate>>,
    /// The peer's candidates that wait for the remote description.
    pending_remote: Vec<Candidate>,
    remote_description_set: bool,
    /// Incoming only: the caller's offer, kept while ringing.
    offer: Option<SessionDescription>,
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

impl Call {
    fn new(id: CallId, phase: Phase) -> Call {
        Call {
            id,
            phase,
            legs: Vec::new(),
            peer: None,
            unchosen: HashMap::new(),
            pending_remote: Vec::new(),
            remote_description_set: false,
            offer: None,
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

    fn live_leg(&self, ev: &ReceivedEvent) -> Option<usize> {
        self.legs
            .iter()
            .position(|l| l.live && l.call_id == ev.event.call_id && l.room == ev.room)
    }

    fn knows(&self, call_id: &CallId) -> bool {
        self.id == *call_id
            || self.legs.iter().any(|l| l.call_id == *call_id)
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

    // --- the button ----------------------------------------------------------------------------

    fn on_press(&mut self, now: Instant) {
        // Presses close together are one (a mashed button). The window is kept across a call
        // that a press ends, and forgotten when a call ends otherwise: a visitor pressing again
        // after a quick "no" calls again.
        let merged = self
            .last_press
            .is_some_and(|t| now.saturating_duration_since(t) < PRESS_MERGE);
        if !merged {
            match self.call.as_ref().map(|c| c.phase) {
                None => self.start_outgoing(now),
                Some(Phase::RingingIn) => self.answer(now),
                // Presses while ringing out are ignored: the visitor is already calling.
                Some(Phase::Preparing | Phase::RingingOut | Phase::Answering) => {}
                Some(Phase::Connecting | Phase::Connected) => match self.policy.press_during_call {
                    PressDuringCall::Ignore => {}
                    PressDuringCall::Hangup => self.hang_up(HangupReason::UserHangup),
                },
            }
        }
        self.last_press = Some(now);
    }

    fn start_outgoing(&mut self, now: Instant) {
        if self.policy.rooms.is_empty() {
            self.status("No room to ring".to_owned());
            return;
        }
        self.next_call += 1;
        let id = CallId(format!("{}{}", self.call_seed, self.next_call));
        let mut call = Call::new(id.clone(), Phase::Preparing);
        call.legs = self
            .policy
            .rooms
            .iter()
            .enumerate()
            .map(|(i, room)| Leg {
                room: room.clone(),
                call_id: CallId(format!("{}r{i}", id.0)),
                live: true,
            })
            .collect();
        self.call = Some(call);
        self.emit(Output::Device(DeviceCommand::StartMedia));
        self.emit(Output::Rtc {
            call: id,
            command: RtcCommand::CreateOffer {
                video: self.policy.video,
            },
        });
        self.emit(Output::Device(DeviceCommand::Ringback(true)));
        self.status(format!("Calling {} room(s)", self.policy.rooms.len()));
        self.timers
            .set(Timer::RingOut, now + self.policy.ring_timeout);
    }

    // --- the door's relay ----------------------------------------------------------------------

    fn on_message(&mut self, now: Instant, msg: ReceivedMessage) {
        if msg.sender == self.identity.user || !msg.is_open_command() {
            return;
        }
        let call = self.call.as_ref().and_then(|c| {
            let up = matches!(c.phase, Phase::Connecting | Phase::Connected);
            c.peer.as_ref().filter(|_| up).map(|p| (&p.room, &p.user))
        });
        let verdict = door::judge(
            &self.door,
            &self.policy.allow,
            &self.policy.rooms,
            call,
            &msg,
        );
        match verdict {
            door::Verdict::Open => {
                let room = [msg.room.clone()];
                self.open_door(now, &msg.sender.0, &room);
            }
            door::Verdict::Refuse { why, tell } => {
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
    fn open_door(&mut self, now: Instant, by: &str, rooms: &[RoomId]) {
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
        self.door_open_until = Some(now + self.door.pulse);
        self.emit(Output::OpenDoor { by: by.to_owned() });
        for room in rooms {
            self.emit(Output::Post {
                room: room.clone(),
                text: format!("Door opened by {by}"),
            });
        }
    }

    // --- sync batches --------------------------------------------------------------------------

    fn on_batch(&mut self, now: Instant, events: Vec<ReceivedEvent>) {
        let settled: HashSet<CallId> = events
            .iter()
            .filter(|e| {
                matches!(
                    e.event.body,
                    CallEventBody::Hangup { .. }
                        | CallEventBody::Reject
                        | CallEventBody::Answer { .. }
                        | CallEventBody::SelectAnswer { .. }
                )
            })
            .map(|e| e.event.call_id.clone())
            .collect();
        for ev in events {
            // Our own echo: the same user and the same party (a user may call themself).
            if ev.sender == self.identity.user && ev.event.party_id == self.identity.party {
                continue;
            }
            if matches!(ev.event.body, CallEventBody::Invite { .. }) {
                if settled.contains(&ev.event.call_id) {
                    self.remember(ev.event.call_id.clone());
                    continue;
                }
                self.on_invite(now, ev);
            } else {
                self.on_event(now, ev);
            }
        }
    }

    fn on_invite(&mut self, now: Instant, ev: ReceivedEvent) {
        let CallEventBody::Invite {
            offer,
            lifetime,
            invitee,
        } = &ev.event.body
        else {
            return;
        };
        if self.is_ended(&ev.event.call_id)
            || self
                .call
                .as_ref()
                .is_some_and(|c| c.knows(&ev.event.call_id))
        {
            return;
        }
        // Addressed to the door: by name, or to a room where the door is the only other member
        // (how Element places a 1:1 call); an invite to a larger room is for anyone in it.
        let for_us = match invitee {
            Some(u) if *u != self.identity.user => return,
            Some(_) => true,
            None => ev.members.is_some_and(|n| n <= 2),
        };
        // Liveness: age at receipt plus time since (zero: the batch is handled as it arrives).
        // Without an age (some homeservers omit it) nothing shows the invite is fresh: one held
        // up by an outage must not ring, so it is refused.
        let left = ev.age.map(|age| lifetime.saturating_sub(age));
        let unusable = match left {
            None => Some("the homeserver gave no age, so it cannot be shown to be fresh"),
            Some(left) if left <= RING_GRACE => Some("it is stale"),
            Some(_) if offer.sdp.len() > MAX_SDP || offer.kind != SdpKind::Offer => {
                Some("its offer is not usable")
            }
            Some(_) => None,
        };
        let (Some(left), None) = (left, unusable) else {
            self.notice(format!(
                "ignored an invite from {} in {}: {}",
                ev.sender.0,
                ev.room.0,
                unusable.unwrap_or_default()
            ));
            self.remember(ev.event.call_id.clone());
            return;
        };
        if !self.policy.may_call(&ev.sender) {
            // Nobody outside the allow-list gets a frame: reject a call addressed to the door;
            // an invite to the whole room is left to the others in it (a reject would end it
            // for everyone).
            if for_us {
                self.send(&ev.room, ev.event.call_id.clone(), CallEventBody::Reject);
            }
            self.notice(format!(
                "refused a call from {} in {}: not on the allow list{}",
                ev.sender.0,
                ev.room.0,
                if for_us {
                    ""
                } else {
                    " (the invite is for the whole room: left to its other members)"
                }
            ));
            self.remember(ev.event.call_id.clone());
            return;
        }
        if let Some(call) = &self.call {
            let glare_leg = call
                .legs
                .iter()
                .find(|l| l.live && l.room == ev.room)
                .map(|l| l.call_id.clone());
            match (call.phase, glare_leg) {
                // Glare while preparing: drop ours, take theirs (spec, "Glare").
                (Phase::Preparing, Some(_)) => {
                    self.replace_outgoing(false);
                    self.take_incoming(now, &ev, left, true);
                }
                // Glare after our invite went out: the lesser call id survives.
                (Phase::RingingOut, Some(ours)) => {
                    if ev.event.call_id < ours {
                        self.replace_outgoing(true);
                        self.take_incoming(now, &ev, left, true);
                    } else {
                        self.send(
                            &ev.room,
                            ev.event.call_id.clone(),
                            CallEventBody::Hangup {
                                reason: HangupReason::UserHangup,
                            },
                        );
                        self.remember(ev.event.call_id.clone());
                    }
                }
                // Busy.
                _ => {
                    self.notice(format!(
                        "busy: a call from {} in {} was not taken",
                        ev.sender.0, ev.room.0
                    ));
                    if for_us {
                        self.send(
                            &ev.room,
                            ev.event.call_id.clone(),
                            CallEventBody::Hangup {
                                reason: HangupReason::UserBusy,
                            },
                        );
                    }
                    self.remember(ev.event.call_id.clone());
                }
            }
            return;
        }
        match self.policy.incoming {
            Incoming::Reject => {
                if for_us {
                    self.send(&ev.room, ev.event.call_id.clone(), CallEventBody::Reject);
                }
                self.notice(format!(
                    "refused a call from {} in {}: the configuration rejects incoming calls",
                    ev.sender.0, ev.room.0
                ));
                self.remember(ev.event.call_id.clone());
            }
            Incoming::AutoAnswer => self.take_incoming(now, &ev, left, true),
            Incoming::Ring => self.take_incoming(now, &ev, left, false),
        }
    }

    /// Ends the door's outgoing call in favour of an incoming one (glare). `announce`: hang up
    /// the rooms that already have the door's invite.
    fn replace_outgoing(&mut self, announce: bool) {
        if announce {
            self.send_to_live_legs(|| CallEventBody::Hangup {
                reason: HangupReason::UserHangup,
            });
        }
        let Some(call) = self.call.take() else { return };
        self.emit(Output::Rtc {
            call: call.id.clone(),
            command: RtcCommand::Close,
        });
        self.emit(Output::Device(DeviceCommand::Ringback(false)));
        self.emit(Output::CallEnded {
            call: call.id.clone(),
            reason: EndReason::Replaced,
        });
        self.remember_call(&call);
        self.timers.clear();
    }

    /// Takes an incoming call: answers it now, or rings until a press.
    fn take_incoming(&mut self, now: Instant, ev: &ReceivedEvent, left: Duration, answer: bool) {
        let CallEventBody::Invite { offer, .. } = &ev.event.body else {
            return;
        };
        let mut call = Call::new(ev.event.call_id.clone(), Phase::RingingIn);
        call.peer = Some(Peer {
            user: ev.sender.clone(),
            party: ev.event.party_id.clone(),
            room: ev.room.clone(),
            call_id: ev.event.call_id.clone(),
        });
        call.offer = Some(offer.clone());
        call.polite = true;
        self.call = Some(call);
        if answer {
            self.answer(now);
        } else {
            self.emit(Output::Device(DeviceCommand::Ringtone(true)));
            self.status(format!("Ringing: {} is calling", ev.sender.0));
            // Ring until the ring timeout, but never past the invite's lifetime.
            let until = left.min(self.policy.ring_timeout);
            self.timers.set(Timer::RingIn, now + until);
        }
    }

    /// Answers the incoming call that is ringing.
    fn answer(&mut self, now: Instant) {
        let video = self.policy.video;
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Some(offer) = call.offer.take() else {
            return;
        };
        call.phase = Phase::Answering;
        call.remote_description_set = true;
        let id = call.id.clone();
        let pending = std::mem::take(&mut call.pending_remote);
        let who = call
            .peer
            .as_ref()
            .map(|p| p.user.0.clone())
            .unwrap_or_default();
        self.timers.cancel(Timer::RingIn);
        self.emit(Output::Device(DeviceCommand::Ringtone(false)));
        self.emit(Output::Device(DeviceCommand::StartMedia));
        self.emit(Output::Rtc {
            call: id.clone(),
            command: RtcCommand::CreateAnswer { offer, video },
        });
        if !pending.is_empty() {
            self.emit(Output::Rtc {
                call: id,
                command: RtcCommand::AddRemoteCandidates(pending),
            });
        }
        self.status(format!("Answering {who}"));
        self.timers.set(Timer::Connect, now + CONNECT_TIMEOUT);
    }

    /// Every event but an invite.
    fn on_event(&mut self, now: Instant, ev: ReceivedEvent) {
        let Some(call) = self.call.as_ref() else {
            if matches!(
                ev.event.body,
                CallEventBody::Hangup { .. } | CallEventBody::Reject
            ) {
                // An invite for it may still arrive late: it must not ring.
                self.remember(ev.event.call_id.clone());
            }
            return;
        };
        let from_peer = call.is_from_peer(&ev);
        let leg = call.live_leg(&ev);
        let phase = call.phase;
        // Nobody outside the allow list gets a frame: while the door's call rings, what others
        // in a rung room send (an answer, a reject, candidates; their hangups never count) is
        // not looked at, so the answer chosen is always an allow-listed user's.
        if phase == Phase::RingingOut && leg.is_some() && !self.policy.may_call(&ev.sender) {
            if let CallEventBody::Answer { .. } | CallEventBody::Reject = ev.event.body {
                self.notice(format!(
                    "ignored {} from {} in {}: not on the allow list",
                    ev.event.body.event_type(),
                    ev.sender.0,
                    ev.room.0
                ));
            }
            return;
        }
        match &ev.event.body {
            CallEventBody::Invite { .. } => {}
            CallEventBody::Answer { answer } => match (phase, leg) {
                (Phase::RingingOut, Some(leg)) if answer.kind == SdpKind::Answer => {
                    self.on_first_answer(now, &ev, leg, answer.clone());
                }
                // Someone else answered the call that rings here.
                (Phase::RingingIn, _)
                    if call
                        .peer
                        .as_ref()
                        .is_some_and(|p| p.call_id == ev.event.call_id) =>
                {
                    self.finish(EndReason::AnsweredElsewhere);
                }
                _ => {}
            },
            CallEventBody::Candidates { candidates } => {
                let candidates: Vec<Candidate> =
                    candidates.iter().take(MAX_CANDIDATES).cloned().collect();
                if from_peer {
                    self.on_remote_candidates(candidates);
                } else if phase == Phase::RingingOut && leg.is_some() {
                    let call = self.call.as_mut().unwrap();
                    let key = (
                        ev.event.call_id.clone(),
                        ev.sender.clone(),
                        ev.event.party_id.clone(),
                    );
                    if call.unchosen.len() < MAX_BUFFERED_PARTIES
                        || call.unchosen.contains_key(&key)
                    {
                        let buffered = call.unchosen.entry(key).or_default();
                        let room = MAX_CANDIDATES.saturating_sub(buffered.len());
                        buffered.extend(candidates.into_iter().take(room));
                    }
                }
            }
            CallEventBody::SelectAnswer { selected_party_id } => {
                // Only the caller selects; the door is the callee when it has a peer that
                // invited it (a call it did not place).
                let we_are_callee = call.legs.is_empty();
                if from_peer && we_are_callee && *selected_party_id != self.identity.party {
                    self.finish(EndReason::AnsweredElsewhere);
                }
            }
            CallEventBody::Reject => {
                if let (Phase::RingingOut, Some(leg)) = (phase, leg) {
                    // Spec: the caller selects the reject like an answer (js-sdk does not, and
                    // does not need to). Only this room is done; the others still ring.
                    let room = ev.room.clone();
                    let call_id = ev.event.call_id.clone();
                    self.send(
                        &room,
                        call_id,
                        CallEventBody::SelectAnswer {
                            selected_party_id: ev.event.party_id.clone(),
                        },
                    );
                    let call = self.call.as_mut().unwrap();
                    call.legs[leg].live = false;
                    if call.legs.iter().all(|l| !l.live) {
                        self.finish(EndReason::Rejected);
                    }
                } else if phase == Phase::RingingIn
                    && call
                        .peer
                        .as_ref()
                        .is_some_and(|p| p.call_id == ev.event.call_id)
                {
                    // Another callee declined the call that rings here: it is over for all.
                    self.finish(EndReason::AnsweredElsewhere);
                }
                // A reject after an answer was chosen is disregarded (spec).
            }
            CallEventBody::Hangup { reason } => {
                // Before an answer is chosen, a would-be callee's hangup is ignored: other
                // devices may still answer (js-sdk does the same).
                if from_peer {
                    let reason = reason.clone();
                    self.finish(EndReason::Hangup {
                        reason,
                        remote: true,
                    });
                }
            }
            CallEventBody::Negotiate {
                description,
                lifetime,
            } => {
                let fresh = ev.age.unwrap_or_default() < *lifetime;
                let up = matches!(phase, Phase::Connecting | Phase::Connected);
                if from_peer && fresh && up && description.sdp.len() <= MAX_SDP {
                    self.on_negotiate(description.clone());
                }
            }
            CallEventBody::SdpStreamMetadataChanged { .. } => {
                // The door shows nothing of the peer's streams; nothing changes for it.
            }
        }
    }

    fn on_first_answer(
        &mut self,
        now: Instant,
        ev: &ReceivedEvent,
        leg: usize,
        answer: SessionDescription,
    ) {
        let call = self.call.as_mut().unwrap();
        let chosen = &call.legs[leg];
        let peer = Peer {
            user: ev.sender.clone(),
            party: ev.event.party_id.clone(),
            room: chosen.room.clone(),
            call_id: chosen.call_id.clone(),
        };
        let key = (peer.call_id.clone(), peer.user.clone(), peer.party.clone());
        let buffered = call.unchosen.remove(&key).unwrap_or_default();
        call.unchosen.clear();
        call.peer = Some(peer.clone());
        call.phase = Phase::Connecting;
        call.remote_description_set = true;
        for (i, l) in call.legs.iter_mut().enumerate() {
            if i != leg {
                l.live = false;
            }
        }
        let others: Vec<(RoomId, CallId)> = call
            .legs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leg)
            .map(|(_, l)| (l.room.clone(), l.call_id.clone()))
            .collect();
        let id = call.id.clone();
        self.emit(Output::Rtc {
            call: id.clone(),
            command: RtcCommand::SetRemoteDescription(answer),
        });
        let buffered = self.admit(buffered);
        if !buffered.is_empty() {
            self.emit(Output::Rtc {
                call: id,
                command: RtcCommand::AddRemoteCandidates(buffered),
            });
        }
        self.send(
            &peer.room,
            peer.call_id.clone(),
            CallEventBody::SelectAnswer {
                selected_party_id: peer.party.clone(),
            },
        );
        // The ring group: the other rooms stop ringing.
        for (room, call_id) in others {
            self.send(
                &room,
                call_id,
                CallEventBody::Hangup {
                    reason: HangupReason::UserHangup,
                },
            );
        }
        self.emit(Output::Device(DeviceCommand::Ringback(false)));
        self.status(format!("Connecting to {}", peer.user.0));
        self.timers.cancel(Timer::RingOut);
        self.timers.set(Timer::Connect, now + CONNECT_TIMEOUT);
        self.timers
            .set(Timer::MaxLength, now + self.policy.max_length);
    }

    fn on_remote_candidates(&mut self, candidates: Vec<Candidate>) {
        let candidates = self.admit(candidates);
        let call = self.call.as_mut().unwrap();
        if candidates.is_empty() {
            return;
        }
        if call.remote_description_set {
            let id = call.id.clone();
            self.emit(Output::Rtc {
                call: id,
                command: RtcCommand::AddRemoteCandidates(candidates),
            });
        } else {
            let room = MAX_CANDIDATES.saturating_sub(call.pending_remote.len());
            call.pending_remote
                .extend(candidates.into_iter().take(room));
        }
    }

    /// The peer's candidates that the call may use (see `candidates.rs`); what is dropped is
    /// logged once a call.
    fn admit(&mut self, candidates: Vec<Candidate>) -> Vec<Candidate> {
        let Some(call) = self.call.as_mut() else {
            return Vec::new();
        };
        let admission = call.admitted.admit(candidates);
        if !admission.dropped.is_empty() && !call.told_dropped {
            call.told_dropped = true;
            let who = call
                .peer
                .as_ref()
                .map(|p| p.user.0.clone())
                .unwrap_or_default();
            let why: Vec<String> = admission
                .dropped
                .iter()
                .map(|(why, n)| format!("{n} {}", why.as_str()))
                .collect();
            self.notice(format!(
                "dropped ICE candidates from {who}: {} (further drops in this call are not logged)",
                why.join(", ")
            ));
        }
        admission.used
    }

    /// The peer renegotiates (or answers the door's renegotiation). The callee is polite.
    fn on_negotiate(&mut self, description: SessionDescription) {
        let call = self.call.as_mut().unwrap();
        match description.kind {
            SdpKind::Offer => {
                if call.negotiating && !call.polite {
                    return; // the impolite party ignores a colliding offer
                }
                call.negotiating = false;
            }
            SdpKind::Answer => {
                if !call.negotiating {
                    return;
                }
                call.negotiating = false;
            }
        }
        let id = call.id.clone();
        self.emit(Output::Rtc {
            call: id,
            command: RtcCommand::SetRemoteDescription(description),
        });
    }

    // --- the WebRTC side -----------------------------------------------------------------------

    fn on_rtc(&mut self, now: Instant, id: CallId, event: RtcEvent) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.id != id {
            return;
        }
        match event {
            RtcEvent::LocalDescription(sdp) => self.on_local_description(now, sdp),
            RtcEvent::LocalCandidates(candidates) => {
                let first = call.local_queue.is_empty();
                call.local_queue
                    .extend(candidates.into_iter().filter(|c| !c.candidate.is_empty()));
                if call.may_send_candidates && first {
                    self.timers
                        .set(Timer::CandidateFlush, now + CANDIDATE_BATCH);
                }
            }
            RtcEvent::GatheringComplete => {
                call.gathering_done = true;
                if call.may_send_candidates {
                    self.flush_candidates();
                }
            }
            RtcEvent::Connection(state) => self.on_connection(now, state),
            RtcEvent::Failed { .. } => self.hang_up(HangupReason::UnknownError),
            RtcEvent::Dtmf(key) => self.on_key(now, key),
        }
    }

    /// A key the peer of the call pressed: gathered into an entry, which opens the door when it
    /// is the code and the peer is on the allow list (see `door.rs`).
    fn on_key(&mut self, now: Instant, key: char) {
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
            door::Keyed::Nothing => return,
            door::Keyed::Entry { right } => right,
            door::Keyed::Locked => false,
        };
        let who = &peer.user.0;
        if !self.policy.allow.contains(&peer.user) {
            self.notice(format!(
                "door: keypad entry from {who} refused: not on the allow list"
            ));
        } else if right {
            self.open_door(now, &format!("{who} (keypad)"), &[peer.room]);
        } else if keyed == door::Keyed::Locked {
            self.notice(format!(
                "door: wrong keypad code from {who}; the keypad is off for the rest of this call"
            ));
        } else {
            self.notice(format!("door: wrong keypad code from {who}"));
        }
    }

    fn on_local_description(&mut self, now: Instant, sdp: SessionDescription) {
        let call = self.call.as_mut().unwrap();
        match (call.phase, sdp.kind) {
            (Phase::Preparing, SdpKind::Offer) => {
                call.phase = Phase::RingingOut;
                call.may_send_candidates = true;
                let lifetime = self.policy.invite_lifetime();
                self.send_to_live_legs(|| CallEventBody::Invite {
                    offer: sdp.clone(),
                    lifetime,
                    invitee: None,
                });
                self.flush_candidates();
            }
            (Phase::Answering, SdpKind::Answer) => {
                call.phase = Phase::Connecting;
                call.may_send_candidates = true;
                let peer = call.peer.clone().unwrap();
                self.send(
                    &peer.room,
                    peer.call_id,
                    CallEventBody::Answer { answer: sdp },
                );
                self.flush_candidates();
                self.status(format!("Connecting to {}", peer.user.0));
                self.timers
                    .set(Timer::MaxLength, now + self.policy.max_length);
            }
            (Phase::Connecting | Phase::Connected, kind) => {
                // Renegotiation: the door's own offer (an ICE restart), or its answer to the
                // peer's offer.
                if kind == SdpKind::Offer {
                    call.negotiating = true;
                }
                let peer = call.peer.clone().unwrap();
                self.send(
                    &peer.room,
                    peer.call_id,
                    CallEventBody::Negotiate {
                        description: sdp,
                        lifetime: NEGOTIATE_LIFETIME,
                    },
                );
            }
            _ => {}
        }
    }

    fn on_connection(&mut self, now: Instant, state: ConnectionState) {
        let call = self.call.as_mut().unwrap();
        match state {
            ConnectionState::Connected => {
                if matches!(call.phase, Phase::Connecting | Phase::Connected) {
                    call.phase = Phase::Connected;
                    let who = call
                        .peer
                        .as_ref()
                        .map(|p| p.user.0.clone())
                        .unwrap_or_default();
                    self.timers.cancel(Timer::Connect);
                    self.status(format!("In call with {who}"));
                }
            }
            ConnectionState::Disconnected => {
                if call.phase == Phase::Connected && self.timers.at(Timer::Connect).is_none() {
                    self.timers.set(Timer::Connect, now + RECONNECT_GRACE);
                }
            }
            ConnectionState::Failed => {
                if matches!(
                    call.phase,
                    Phase::Connecting | Phase::Connected | Phase::Answering
                ) {
                    self.hang_up(HangupReason::IceFailed);
                }
            }
            ConnectionState::Connecting => {}
        }
    }

    // --- sending -------------------------------------------------------------------------------

    /// Sends what is queued of the local candidates, and the end of candidates once gathering
    /// is done (spec: clients must send it; js-sdk sometimes does not, so the door never waits
    /// for the peer's).
    fn flush_candidates(&mut self) {
        self.timers.cancel(Timer::CandidateFlush);
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if !call.may_send_candidates {
            return;
        }
        let mut batch = std::mem::take(&mut call.local_queue);
        if call.gathering_done && !call.end_of_candidates_sent {
            call.end_of_candidates_sent = true;
            batch.push(Candidate {
                candidate: String::new(),
                sdp_mid: None,
                sdp_m_line_index: None,
            });
        }
        if batch.is_empty() {
            return;
        }
        if let Some(peer) = call.peer.clone() {
            self.send(
                &peer.room,
                peer.call_id,
                CallEventBody::Candidates { candidates: batch },
            );
        } else {
            self.send_to_live_legs(|| CallEventBody::Candidates {
                candidates: batch.clone(),
            });
        }
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

    /// Sends one event to each room the door still rings (outgoing calls whose invite went out).
    fn send_to_live_legs(&mut self, body: impl Fn() -> CallEventBody) {
        let Some(call) = &self.call else { return };
        if call.phase == Phase::Preparing {
            return; // no invite went out: nobody to tell
        }
        let legs: Vec<(RoomId, CallId)> = call
            .legs
            .iter()
            .filter(|l| l.live)
            .map(|l| (l.room.clone(), l.call_id.clone()))
            .collect();
        for (room, call_id) in legs {
            self.send(&room, call_id, body());
        }
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

    // --- ending --------------------------------------------------------------------------------

    /// The door ends the call, telling whoever needs telling.
    fn hang_up(&mut self, reason: HangupReason) {
        let Some(call) = &self.call else { return };
        match call.phase {
            Phase::Preparing | Phase::RingingOut => {
                self.send_to_live_legs(|| CallEventBody::Hangup {
                    reason: reason.clone(),
                });
            }
            // Ringing here: stop; the caller's own timeout ends it there.
            Phase::RingingIn => {}
            // Our answer has not gone out: a reject is what a caller that has seen no answer
            // listens to (js-sdk ignores hangups from callees it has not chosen).
            Phase::Answering => {
                if let Some(peer) = call.peer.clone() {
                    self.send(&peer.room, peer.call_id, CallEventBody::Reject);
                }
            }
            Phase::Connecting | Phase::Connected => {
                if let Some(peer) = call.peer.clone() {
                    self.send(
                        &peer.room,
                        peer.call_id,
                        CallEventBody::Hangup {
                            reason: reason.clone(),
                        },
                    );
                }
            }
        }
        self.finish(EndReason::Hangup {
            reason,
            remote: false,
        });
    }

    /// Tears the call down locally; whatever had to be sent was sent by the caller of this.
    fn finish(&mut self, reason: EndReason) {
        let Some(call) = self.call.take() else { return };
        self.timers.clear();
        self.last_press = None;
        self.emit(Output::Rtc {
            call: call.id.clone(),
            command: RtcCommand::Close,
        });
        match call.phase {
            Phase::Preparing | Phase::RingingOut => {
                self.emit(Output::Device(DeviceCommand::Ringback(false)))
            }
            Phase::RingingIn => self.emit(Output::Device(DeviceCommand::Ringtone(false))),
            _ => {}
        }
        if call.phase != Phase::RingingIn {
            self.emit(Output::Device(DeviceCommand::StopMedia));
        }
        self.emit(Output::CallEnded {
            call: call.id.clone(),
            reason,
        });
        self.remember_call(&call);
        self.status("Idle".to_owned());
    }

    fn remember_call(&mut self, call: &Call) {
        self.remember(call.id.clone());
        for leg in &call.legs {
            self.remember(leg.call_id.clone());
        }
        if let Some(p) = &call.peer {
            self.remember(p.call_id.clone());
        }
    }

    fn remember(&mut self, call_id: CallId) {
        if self.ended.contains(&call_id) {
            return;
        }
        if self.ended.len() == REMEMBERED_CALLS {
            self.ended.pop_front();
        }
        self.ended.push_back(call_id);
    }

    fn is_ended(&self, call_id: &CallId) -> bool {
        self.ended.contains(call_id)
    }
}
