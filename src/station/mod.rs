//! The station: everything the door decides, in one sans-IO machine.
//!
//! The station owns the call core ([`crate::call::Core`]), the panel ([`crate::panel::Panel`]:
//! button, LED, relay) and the door's status, and decides what the rest of the door does with
//! them: which room invitations to join, which messages are history, when a snapshot is posted,
//! what a device that stopped working costs, what the control socket is answered. The driver
//! (`src/daemon.rs`) only waits, stamps each [`Input`] with `now`, hands it to
//! [`Station::handle_input`], sleeps until [`Station::poll_timeout`], and carries each
//! [`Output`] to the adapter it names. Like the core, the station never reads the clock, never
//! sleeps, spawns or does I/O, and writes no log: a line worth logging is an [`Output::Log`].
//! `tests/check_sans_io.rs` holds it to the same rules as `src/call/`.
//!
//! A press, hop by hop: the GPIO adapter's edge ([`Input::ButtonEdge`]) → the panel debounces it
//! → the station hands the press to the core → the core prepares an offer
//! ([`Output::Rtc`]) and, once the WebRTC adapter made it, invites every room
//! ([`Output::Send`]) → the station follows each invite with a snapshot
//! ([`Output::PostSnapshot`]) and tells the panel the door rings (the LED blinks).
//!
//! The door's policy (who may call, ring groups, timeouts, busy, door opening, which answer
//! wins) is the core's and the station's; how a call is signalled (`m.call.*` events and one
//! WebRTC peer connection per call, today) is carried by [`Output::Send`]/[`Output::Rtc`] and
//! [`Input::SyncBatch`]/[`Input::Rtc`]. A second kind of call (MatrixRTC) adds its own inputs and
//! outputs for its signalling and reuses the same policy: see ARCHITECTURE.md, "A second kind of
//! call".

mod status;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::call::{
    self, CallEventBody, CallId, Core, DeviceCommand, DoorPolicy, Identity, Policy, ReceivedEvent,
    ReceivedMessage, RoomId, RtcCommand, RtcEvent, UserId,
};
use crate::panel::{Panel, PanelConfig, PanelOutput};

pub use status::Status;

/// What the station is configured with.
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub identity: Identity,
    /// The call core's policy: the rooms to ring, who may call, the timeouts.
    pub policy: Policy,
    /// The relay's rules.
    pub door: DoorPolicy,
    pub panel: PanelConfig,
    /// Makes the door's call ids unique across restarts (see [`Core::new`]).
    pub call_seed: String,
    /// Post a snapshot into each room the door rings.
    pub snapshots: bool,
    /// Join the rooms an allow-listed user invites the door to.
    pub accept_invites: bool,
    /// Ask the homeserver for TURN servers (and keep them fresh); false when `[turn]` is
    /// configured.
    pub turn_from_homeserver: bool,
    /// The wall-clock time the daemon started, in milliseconds since the Unix epoch: messages
    /// without an `age` are judged by their `origin_server_ts` against it.
    pub started_wall_ms: u64,
}

/// One of the door's devices, as the status line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Camera,
    Microphone,
    Speaker,
}

impl Part {
    /// What a call does without it.
    pub fn without(self) -> &'static str {
        match self {
            Part::Camera => "audio only",
            Part::Microphone => "silence sent",
            Part::Speaker => "nothing played",
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Camera => "camera",
            Part::Microphone => "microphone",
            Part::Speaker => "speaker",
        })
    }
}

/// Whether a device works, as the start-up look or a call found it. The station shows the
/// devices that do not in its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    pub part: Part,
    /// The device as configured: a path, a PCM name, a command.
    pub name: String,
    /// `None`: it works. Otherwise a word or two: "missing", "failed".
    pub problem: Option<String>,
}

impl DeviceReport {
    pub fn ok(part: Part, name: String) -> DeviceReport {
        DeviceReport {
            part,
            name,
            problem: None,
        }
    }

    pub fn failed(part: Part, name: String) -> DeviceReport {
        DeviceReport {
            part,
            name,
            problem: Some("failed".to_owned()),
        }
    }
}

/// TURN servers offered by the homeserver (`/voip/turnServer`). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServers {
    pub uris: Vec<String>,
    pub username: String,
    pub password: String,
    /// How long the credentials stay valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServers")
            .field("uris", &self.uris)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Refresh the homeserver's TURN credentials this long before they expire (at 4/5 of their
/// lifetime), but never sooner than this after the last answer.
const TURN_MIN_REFRESH: Duration = Duration::from_secs(60);
/// Ask again this long after a homeserver that offered no TURN server (it may be given one).
const TURN_NONE_RETRY: Duration = Duration::from_secs(3600);
/// Ask again this long after a failed request.
const TURN_FAILED_RETRY: Duration = Duration::from_secs(60);

/// A request on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `ring`: press the button.
    Ring,
    /// `status`: what `intercom status` shows.
    Status,
}

/// What happens to the door. Each is handed in with the `now` it happened at.
#[derive(Debug, Clone)]
pub enum Input {
    /// The button's raw level changed (true: down).
    ButtonEdge { pressed: bool },
    /// A request on the control socket; answered with an [`Output::Reply`] of the same `id`.
    Control { id: u64, request: Request },
    /// One sync batch of call events (see [`call::Input::SyncBatch`]).
    SyncBatch(Vec<ReceivedEvent>),
    /// A text message in one of the door's rooms, with its `origin_server_ts` (milliseconds)
    /// when it had one. Messages from before the daemon started are history, never acted on.
    Message {
        message: ReceivedMessage,
        origin_server_ts: Option<u64>,
    },
    /// Someone else left a room the door is in.
    MemberLeft { room: RoomId, user: UserId },
    /// Someone invited the door into a room (`inviter`: `None` when the invite does not say).
    Invited {
        room: RoomId,
        inviter: Option<UserId>,
    },
    /// A sync succeeded (`None`), or syncing failed, with why.
    Reachability(Option<String>),
    /// The configured room aliases that do not resolve, each with why (empty: all resolve).
    Unresolved(Vec<(String, String)>),
    /// A device works, or does not.
    Device(DeviceReport),
    /// The WebRTC side of a call produced something.
    Rtc { call: CallId, event: RtcEvent },
    /// The homeserver's answer to [`Output::FetchTurn`]: its TURN servers, none, or why the
    /// request failed.
    Turn(Result<Option<TurnServers>, String>),
    /// The daemon is stopping: hang up whatever is up.
    Shutdown,
}

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    /// An audit line (the door opened): logged whatever the filter, never held back.
    Audit,
}

/// A line for the log, with the call or room it is about (structured fields in the journal).
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub level: Level,
    pub text: String,
    pub call: Option<CallId>,
    pub room: Option<RoomId>,
}

/// The door's tones on its speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// An incoming call rings (ring mode).
    Ringtone,
    /// The door calls out.
    Ringback,
}

/// What the station asks the world to do, in order. Drained with [`Station::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a call event into a room.
    Send {
        room: RoomId,
        event: call::CallEvent,
    },
    /// A command for the WebRTC side of a call.
    Rtc { call: CallId, command: RtcCommand },
    /// A tone on the door's speaker, on or off.
    Tone { tone: Tone, on: bool },
    /// Set the LED (true: lit).
    Led(bool),
    /// Set the relay (true: closed, the door opening).
    Relay(bool),
    /// Post a text message into a room.
    Post { room: RoomId, text: String },
    /// Take a picture and post it into `room`, mentioning `mention`.
    PostSnapshot { room: RoomId, mention: Vec<UserId> },
    /// Join a room the door was invited to.
    JoinRoom { room: RoomId },
    /// Ask the homeserver for its TURN servers; the answer comes back as [`Input::Turn`].
    FetchTurn,
    /// Calls from now on use these TURN servers.
    IceServers(TurnServers),
    /// Answer the control-socket request `id`.
    Reply { id: u64, text: String },
    /// The status line changed (systemd's `STATUS=`).
    Status(String),
    /// A line for the log.
    Log(Log),
}

/// The station. See the module's documentation.
pub struct Station {
    core: Core,
    panel: Panel,
    status: Status,
    allow: Vec<UserId>,
    snapshots: bool,
    accept_invites: bool,
    started: Instant,
    started_wall_ms: u64,
    /// When to ask the homeserver for TURN servers again (`None`: not now, or asking).
    turn_due: Option<Instant>,
    outputs: VecDeque<Output>,
}

impl Station {
    /// A station at rest at `now` (the daemon's start: messages from before are history).
    pub fn new(config: StationConfig, now: Instant) -> Station {
        let rooms = config.policy.rooms.clone();
        let allow = config.policy.allow.clone();
        let mut core = Core::new(config.policy, config.identity, config.call_seed);
        core.set_door_policy(config.door);
        let mut station = Station {
            core,
            panel: Panel::new(config.panel, now),
            status: Status::new(rooms),
            allow,
            snapshots: config.snapshots,
            accept_invites: config.accept_invites,
            started: now,
            started_wall_ms: config.started_wall_ms,
            turn_due: None,
            outputs: VecDeque::new(),
        };
        if config.turn_from_homeserver {
            station.outputs.push_back(Output::FetchTurn);
        }
        station.settle(now);
        station
    }

    /// The status line as it is now (systemd's first `STATUS=`).
    pub fn status_line(&self) -> String {
        self.status.line()
    }

    /// Hands an input to the station.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::ButtonEdge { pressed } => self.panel.button_edge(now, pressed),
            Input::Control { id, request } => {
                let text = match request {
                    Request::Ring => {
                        self.info("button pressed (control socket)");
                        self.core.handle_input(now, call::Input::ButtonPressed);
                        "ok pressed".to_owned()
                    }
                    Request::Status => format!("ok {}", self.status.report(now)),
                };
                self.outputs.push_back(Output::Reply { id, text });
            }
            Input::SyncBatch(events) => self.core.handle_input(now, call::Input::SyncBatch(events)),
            Input::Message {
                message,
                origin_server_ts,
            } => {
                if self.is_history(now, message.age, origin_server_ts) {
                    self.log(
                        Level::Debug,
                        format!(
                            "a message from {} from before the start: not looked at",
                            message.sender.0
                        ),
                        None,
                        Some(message.room.clone()),
                    );
                } else {
                    self.core.handle_input(now, call::Input::Message(message));
                }
            }
            Input::MemberLeft { room, user } => self
                .core
                .handle_input(now, call::Input::MemberLeft { room, user }),
            Input::Invited { room, inviter } => self.on_invited(room, inviter),
            Input::Reachability(offline) => {
                match &offline {
                    Some(why) => self.warn(format!("homeserver unreachable: {why}; retrying")),
                    None if self.status.is_offline() => self.info("homeserver reachable again"),
                    None => {}
                }
                self.panel.set_online(now, offline.is_none());
                self.status.set_online(offline);
            }
            Input::Unresolved(aliases) => {
                let lines: Vec<String> = aliases
                    .iter()
                    .map(|(alias, why)| {
                        format!("{why}: room {alias} is not rung until it resolves; retrying")
                    })
                    .collect();
                for line in lines {
                    self.warn(line);
                }
                self.status.set_unresolved(&aliases);
            }
            Input::Device(report) => self.on_device(now, report),
            Input::Rtc { call, event } => self
                .core
                .handle_input(now, call::Input::Rtc { call, event }),
            Input::Turn(answer) => self.on_turn(now, answer),
            Input::Shutdown => {
                self.turn_due = None;
                self.core.handle_input(now, call::Input::Shutdown);
            }
        }
        self.settle(now);
    }

    /// Does whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.turn_due.is_some_and(|t| t <= now) {
            self.turn_due = None;
            self.outputs.push_back(Output::FetchTurn);
        }
        self.core.handle_timeout(now);
        self.panel.handle_timeout(now);
        self.settle(now);
    }

    /// The earliest instant at which [`Station::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.core.poll_timeout(),
            self.panel.poll_timeout(),
            self.turn_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing for the world to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Whether a message that arrived `age` after it was sent (or, without an age, stamped
    /// `origin_server_ts`) was sent before the daemon started. The age is the homeserver's own
    /// measure, so a clock that differs between the door and the homeserver does not matter.
    fn is_history(&self, now: Instant, age: Option<Duration>, ts: Option<u64>) -> bool {
        match (age, ts) {
            (Some(age), _) => age > now.saturating_duration_since(self.started),
            (None, Some(ts)) => ts < self.started_wall_ms,
            (None, None) => true,
        }
    }

    /// The homeserver's TURN servers reach the calls, and are asked for again before they
    /// expire; a homeserver without TURN is asked again hourly, a failure after a minute.
    fn on_turn(&mut self, now: Instant, answer: Result<Option<TurnServers>, String>) {
        let again = match answer {
            Ok(Some(turn)) => {
                self.info(format!(
                    "TURN from the homeserver: {:?}, valid for {}s",
                    turn.uris,
                    turn.ttl.as_secs()
                ));
                let again = (turn.ttl * 4 / 5).max(TURN_MIN_REFRESH);
                self.outputs.push_back(Output::IceServers(turn));
                again
            }
            Ok(None) => {
                self.info(
                    "the homeserver offers no TURN server: calls use direct connections only",
                );
                TURN_NONE_RETRY
            }
            Err(e) => {
                self.warn(format!(
                    "cannot fetch TURN credentials: {e}; retrying in a minute"
                ));
                TURN_FAILED_RETRY
            }
        };
        self.turn_due = Some(now + again);
    }

    fn on_invited(&mut self, room: RoomId, inviter: Option<UserId>) {
        let who = inviter
            .as_ref()
            .map_or("an unknown user", |u| u.0.as_str())
            .to_owned();
        let id = room.0.clone();
        if !self.accept_invites {
            self.log(
                Level::Info,
                format!("not joining {id}, invited by {who}: accept_invites is off"),
                None,
                Some(room),
            );
        } else if !inviter.is_some_and(|u| self.allow.contains(&u)) {
            self.log(
                Level::Info,
                format!("not joining {id}, invited by {who}: not on the allow list"),
                None,
                Some(room),
            );
        } else {
            self.log(
                Level::Info,
                format!("joining {id}, invited by {who}"),
                None,
                Some(room.clone()),
            );
            self.outputs.push_back(Output::JoinRoom { room });
        }
    }

    /// A device works or does not: the status shows it, and a call that is up goes on without
    /// it (a visitor who is seen but not heard can still be answered).
    fn on_device(&mut self, now: Instant, report: DeviceReport) {
        let part = format!("{} {}", report.part, report.name);
        match &report.problem {
            Some(problem) => {
                let what = format!("{part} {problem}");
                self.status
                    .set_missing(part, format!("{problem}: {}", report.part.without()));
                self.core
                    .handle_input(now, call::Input::MediaFailed { what });
            }
            None => {
                if self.status.clear_missing(&part) {
                    self.info(format!("{part} works again"));
                }
            }
        }
    }

    /// Drains the core and the panel into the station's outputs until both are quiet: the
    /// panel's presses go to the core, the core's activity to the panel, the core's opening to
    /// the relay.
    fn settle(&mut self, now: Instant) {
        loop {
            if let Some(output) = self.core.poll_output() {
                self.carry_core(now, output);
                continue;
            }
            self.panel.set_activity(now, self.core.activity());
            match self.panel.poll_output() {
                Some(PanelOutput::Led(on)) => self.outputs.push_back(Output::Led(on)),
                Some(PanelOutput::Relay(on)) => self.outputs.push_back(Output::Relay(on)),
                Some(PanelOutput::Pressed) => {
                    self.info("button pressed");
                    self.core.handle_input(now, call::Input::ButtonPressed);
                }
                Some(PanelOutput::LongPressed) => {
                    self.info("button held (long press)");
                    self.core.handle_input(now, call::Input::LongPress);
                }
                None => break,
            }
        }
        if let Some(line) = self.status.changed() {
            self.outputs.push_back(Output::Status(line));
        }
    }

    fn carry_core(&mut self, now: Instant, output: call::Output) {
        match output {
            call::Output::Send { room, event } => {
                let invite = matches!(event.body, CallEventBody::Invite { .. });
                self.log(
                    Level::Debug,
                    format!("sending {}", event.body.event_type()),
                    Some(event.call_id.clone()),
                    Some(room.clone()),
                );
                self.outputs.push_back(Output::Send {
                    room: room.clone(),
                    event,
                });
                // The door's invites go out only when it rings out: the picture follows each.
                if invite && self.snapshots {
                    self.outputs.push_back(Output::PostSnapshot {
                        room,
                        mention: self.allow.clone(),
                    });
                }
            }
            call::Output::Rtc { call, command } => {
                self.outputs.push_back(Output::Rtc { call, command })
            }
            call::Output::Device(command) => {
                let (tone, on) = match command {
                    DeviceCommand::Ringtone(on) => (Tone::Ringtone, on),
                    DeviceCommand::Ringback(on) => (Tone::Ringback, on),
                };
                self.outputs.push_back(Output::Tone { tone, on });
            }
            call::Output::Status(line) => {
                self.info(format!("status: {line}"));
                self.status.set_core(line);
            }
            call::Output::Notice(line) => self.info(line),
            call::Output::CallEnded { call, reason } => {
                self.log(
                    Level::Info,
                    format!("call ended: {reason:?}"),
                    Some(call.clone()),
                    None,
                );
                self.status.call_ended(now, &call, &reason);
            }
            call::Output::OpenDoor { by, until } => {
                self.log(Level::Audit, format!("door opened by {by}"), None, None);
                self.panel.open_door(now, until);
            }
            call::Output::Post { room, text } => {
                self.outputs.push_back(Output::Post { room, text })
            }
        }
    }

    fn info(&mut self, text: impl Into<String>) {
        self.log(Level::Info, text.into(), None, None);
    }

    fn warn(&mut self, text: impl Into<String>) {
        self.log(Level::Warn, text.into(), None, None);
    }

    fn log(&mut self, level: Level, text: String, call: Option<CallId>, room: Option<RoomId>) {
        self.outputs.push_back(Output::Log(Log {
            level,
            text,
            call,
            room,
        }));
    }
}
