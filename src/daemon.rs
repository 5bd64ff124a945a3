//! The driver loop: the one place that owns the runtime, the clock, signals and sd_notify.
//!
//! It feeds the sans-IO core ([`crate::call::Core`]) with inputs stamped with `Instant::now()`,
//! sleeps until the core's next deadline or the next input, and carries the core's outputs to the
//! adapters. It makes no decisions of its own about calls. Readiness, status and the watchdog go
//! to systemd from here: `READY=1` once the door can ring, `STATUS=` whenever the core says so,
//! `WATCHDOG=1` from this loop itself (so a wedged loop is restarted), `STOPPING=1` on SIGTERM,
//! after any call was hung up.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::call::{self, CallEventBody, Core, Input, Output, RtcCommand};
use crate::config::{self, Config};
use crate::control::{self, Command};
use crate::error::Error;
use crate::gpio::{self, OutputLine};
use crate::matrix::{self, Matrix, MatrixEvent};
use crate::media::speaker::Ringer;
use crate::media::tones::ToneKind;
use crate::panel::{Panel, PanelOutput};
use crate::rtc::{IceServer, Rtc};
use crate::settings::Settings;

/// Runs the daemon until SIGTERM or SIGINT, with the components `settings` describes (made from
/// `config`).
pub fn run(config: Config, settings: Settings) -> Result<(), Error> {
    crate::memory::limit_arenas();
    crate::panics::install();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the runtime", None, e))?;
    runtime.block_on(drive(config, settings))
}

/// The door's output lines, those configured.
struct Lines {
    led: Option<Box<dyn OutputLine>>,
    relay: Option<Box<dyn OutputLine>>,
}

impl Lines {
    fn open(settings: &Settings) -> Lines {
        Lines {
            led: settings.led.clone().map(gpio::open_output),
            relay: settings.relay.clone().map(gpio::open_output),
        }
    }
}

/// What posting a snapshot when the door rings needs.
struct Snapshots {
    camera: crate::media::VideoDevice,
    video: crate::media::VideoSettings,
    mention: Vec<call::UserId>,
}

impl Snapshots {
    /// Takes a picture off the loop's thread, then posts it into `room`.
    fn post(&self, matrix: &Arc<Matrix>, room: call::RoomId) {
        let (camera, video) = (self.camera.clone(), self.video);
        let mention = self.mention.clone();
        let matrix = Arc::downgrade(matrix);
        tokio::spawn(async move {
            let jpeg =
                tokio::task::spawn_blocking(move || crate::media::snapshot(&camera, &video)).await;
            match jpeg {
                Ok(Ok(still)) => {
                    log::info!(
                        "snapshot for {}: {}x{}, {}",
                        room.0,
                        still.width,
                        still.height,
                        if still.from_call {
                            "from the call's camera stream"
                        } else {
                            "camera opened for it"
                        }
                    );
                    if let Some(matrix) = matrix.upgrade() {
                        matrix.post_snapshot(
                            room,
                            still.jpeg,
                            (still.width, still.height),
                            mention,
                        );
                    }
                }
                Ok(Err(e)) => log::warn!("no snapshot for {}: {e}", room.0),
                Err(e) => log::warn!("no snapshot for {}: {e}", room.0),
            }
        });
    }
}

/// A seed for call ids that differs between runs, from the clock and the process id.
fn call_seed() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{:x}{:x}-", nanos & 0xffff_ffff_ffff, std::process::id())
}

/// Tells systemd `state`, without ever blocking the loop: a notify socket nobody reads (a full
/// queue) must not wedge the door. What cannot be sent at once is dropped and logged.
fn notify(state: &[NotifyState]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message: String = state.iter().map(|s| format!("{s}\n")).collect();
    if let Err(e) = send_notify(&path, message.as_bytes()) {
        log::debug!("sd_notify {:?} not sent: {e}", message.trim_end());
    }
}

fn send_notify(path: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    let bytes = path.as_bytes();
    let address = match bytes.strip_prefix(b"@") {
        // An abstract socket (systemd may use one).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    socket.send_to_addr(message, &address)?;
    Ok(())
}

async fn drive(config: Config, settings: Settings) -> Result<(), Error> {
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Error::io("cannot watch SIGTERM", None, e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("cannot watch SIGINT", None, e))?;

    let (listener, socket_file) = control::bind(&config.control.socket)?;
    let (requests_tx, mut requests) = mpsc::channel(8);
    tokio::spawn(control::serve(listener, requests_tx));

    // The session must be there (`intercom login`); the homeserver need not answer yet: the
    // sync loop keeps trying, and the door rings as soon as it can.
    let matrix = Arc::new(matrix::connect(&config.matrix).await?);
    let identity = matrix.identity();
    let mut policy = settings.policy.clone();
    policy.rooms = matrix.rooms();
    let mut core = Core::new(policy, identity.clone(), call_seed());
    core.set_door_policy(settings.door.clone());
    let mut status = Status::default();
    let mut panel = Panel::new(settings.panel, Instant::now());
    let mut lines = Lines::open(&settings);
    let snapshots = settings.snapshot_mentions.clone().map(|mention| Snapshots {
        camera: settings.rtc.media.camera.clone(),
        video: settings.video,
        mention,
    });

    let (matrix_tx, mut matrix_events) = mpsc::channel(64);
    matrix.spawn_sync(matrix_tx);

    let (rtc_tx, mut rtc_events) = mpsc::unbounded_channel();
    let rtc_settings = settings.rtc.clone();
    // What works is looked at now, off the loop, and again by every call: the door starts with
    // whatever it has, and its status says what is missing.
    let (devices_tx, mut device_reports) = mpsc::unbounded_channel();
    {
        let (media, video, devices) = (
            rtc_settings.media.clone(),
            config.call.video,
            devices_tx.clone(),
        );
        let looked = std::thread::Builder::new()
            .name("device-look".to_owned())
            .spawn(move || {
                for report in crate::media::look_at_devices(&media, video) {
                    let _ = devices.send(report);
                }
            });
        if let Err(e) = looked {
            log::warn!("cannot look at the devices: {e}");
        }
    }
    let mut rtc = Rtc::new(rtc_settings, rtc_tx);
    rtc.report_devices(devices_tx);
    // The speaker's owner lives as long as the daemon; calls reach the same one.
    let ringer = Ringer::new(
        &settings.rtc.media.playback,
        &settings.ringtone,
        &settings.ringback,
    );
    let (turn_tx, mut turn_updates) = mpsc::channel(1);
    match &config.turn {
        Some(turn) => rtc.set_ice_servers(vec![configured_turn(turn)?]),
        None => {
            tokio::spawn(refresh_turn(Arc::downgrade(&matrix), turn_tx));
        }
    }

    let (press_tx, mut edges) = mpsc::channel(8);
    if let Some(button) = config.button.clone() {
        crate::gpio::spawn_button(button, press_tx);
    } else {
        drop(press_tx);
        log::info!("no [button] configured: only `intercom ring` presses the button");
    }

    // Ping at half the watchdog interval, as systemd recommends.
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    log::info!(
        "intercom {} ready as {} (device {}): {} room(s) to ring, control socket {}",
        env!("CARGO_PKG_VERSION"),
        identity.user.0,
        identity.party.0,
        config.matrix.rooms.len(),
        config.control.socket.display()
    );
    notify(&[NotifyState::Ready, NotifyState::Status(&status.line())]);
    // Start-up (the first sync, the stores) freed more than the idle door will ever hold again.
    crate::memory::give_back_free_pages();

    loop {
        let now = Instant::now();
        loop {
            if let Some(output) = core.poll_output() {
                let out = Outlets {
                    matrix: &matrix,
                    snapshots: snapshots.as_ref(),
                    ringer: &ringer,
                };
                dispatch(output, &out, &mut rtc, &mut status, &mut panel, now);
                continue;
            }
            panel.set_activity(now, core.activity());
            match panel.poll_output() {
                Some(PanelOutput::Led(on)) => {
                    if let Some(led) = &mut lines.led {
                        led.set(on);
                    }
                }
                Some(PanelOutput::Relay(on)) => {
                    if let Some(relay) = &mut lines.relay {
                        relay.set(on);
                    }
                }
                Some(PanelOutput::Pressed) => {
                    log::info!("button pressed");
                    core.handle_input(now, Input::ButtonPressed);
                }
                Some(PanelOutput::LongPressed) => {
                    log::info!("button held (long press)");
                    core.handle_input(now, Input::LongPress);
                }
                None => break,
            }
        }
        // Before waiting: a changed status reaches systemd now, not at the next event.
        if status.changed() {
            notify(&[NotifyState::Status(&status.line())]);
        }
        let deadline = [core.poll_timeout(), panel.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[NotifyState::Watchdog]),
            () = sleep => {
                let now = Instant::now();
                core.handle_timeout(now);
                panel.handle_timeout(now);
            }
            Some(event) = matrix_events.recv() => match event {
                MatrixEvent::Batch(events) => {
                    core.handle_input(Instant::now(), Input::SyncBatch(events));
                }
                MatrixEvent::MemberLeft { room, user } => {
                    core.handle_input(Instant::now(), Input::MemberLeft { room, user });
                }
                MatrixEvent::Message(message) => {
                    core.handle_input(Instant::now(), Input::Message(message));
                }
                MatrixEvent::Online => {
                    status.set_online(None);
                    panel.set_online(Instant::now(), true);
                }
                MatrixEvent::Offline(why) => {
                    status.set_online(Some(why));
                    panel.set_online(Instant::now(), false);
                }
                MatrixEvent::Unresolved(aliases) => {
                    status.missing.retain(|part, _| !part.starts_with("room "));
                    for (alias, why) in aliases {
                        log::warn!("{why}: room {alias} is not rung until it resolves; retrying");
                        status.missing.insert(format!("room {alias}"), "unresolved: not rung".to_owned());
                    }
                }
            },
            Some(report) = device_reports.recv() => {
                let part = format!("{} {}", report.part, report.name);
                match &report.problem {
                    Some(problem) => {
                        let what = format!("{part} {problem}");
                        status.missing.insert(part, format!("{problem}: {}", report.part.without()));
                        core.handle_input(Instant::now(), Input::MediaFailed { what });
                    }
                    None => {
                        if status.missing.remove(&part).is_some() {
                            log::info!("{part} works again");
                        }
                    }
                }
            }
            Some((call, event)) = rtc_events.recv() => {
                core.handle_input(Instant::now(), Input::Rtc { call, event });
            }
            Some(servers) = turn_updates.recv() => rtc.set_ice_servers(servers),
            Some(down) = edges.recv() => panel.button_edge(Instant::now(), down),
            Some(req) = requests.recv() => {
                let answer = match req.command {
                    Command::Ring => {
                        log::info!("button pressed (control socket)");
                        core.handle_input(Instant::now(), Input::ButtonPressed);
                        "ok pressed".to_owned()
                    }
                    Command::Status => {
                        format!("ok {}", status.report(&matrix.rooms(), Instant::now()))
                    }
                };
                let _ = req.reply.send(answer);
            }
        }
    }

    log::info!("stopping");
    core.handle_input(Instant::now(), Input::Shutdown);
    while let Some(output) = core.poll_output() {
        let out = Outlets {
            matrix: &matrix,
            snapshots: None,
            ringer: &ringer,
        };
        dispatch(
            output,
            &out,
            &mut rtc,
            &mut status,
            &mut panel,
            Instant::now(),
        );
    }
    // The door stays shut and the light goes out with the daemon.
    if let Some(relay) = &mut lines.relay {
        relay.set(false);
    }
    if let Some(led) = &mut lines.led {
        led.set(false);
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("Stopping")]);
    drop(rtc);
    // The hangup must reach the homeserver before the process ends.
    match Arc::try_unwrap(matrix) {
        Ok(matrix) => matrix.close(Duration::from_secs(5)).await,
        Err(_) => log::warn!("could not flush the Matrix send queues: a TURN request is under way"),
    }
    socket_file.remove();
    Ok(())
}

/// The status line systemd shows (and the control socket's `status` answers): the core's,
/// whether the homeserver is reachable, and what is missing, e.g.
/// `Idle (camera /dev/video0 missing: audio only)`.
#[derive(Default)]
struct Status {
    /// Whether a sync ever succeeded.
    reached: bool,
    /// When the last call ended, and how (for `intercom status`).
    last_call: Option<(Instant, String)>,
    core: String,
    offline: Option<String>,
    /// What does not work, by what it is ("camera /dev/video0", "room #door:example.org"),
    /// with what that costs ("missing: audio only").
    missing: std::collections::BTreeMap<String, String>,
    shown: String,
}

impl Status {
    fn line(&self) -> String {
        let core = if self.core.is_empty() {
            "Idle"
        } else {
            &self.core
        };
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
            core.to_owned()
        } else {
            format!("{core} ({})", notes.join("; "))
        }
    }

    fn set_online(&mut self, offline: Option<String>) {
        self.reached |= offline.is_none();
        match &offline {
            Some(why) => log::warn!("homeserver unreachable: {why}; retrying"),
            None if self.offline.is_some() => log::info!("homeserver reachable again"),
            None => {}
        }
        self.offline = offline;
    }

    /// Whether the line changed since it was last asked.
    fn changed(&mut self) -> bool {
        let line = self.line();
        if line == self.shown {
            return false;
        }
        self.shown = line;
        true
    }
}

impl Status {
    /// The control socket's answer to `status` (`intercom status` shows it): the status line,
    /// then a `key: value` line each for the state, the homeserver, the rooms, the last call and
    /// what is missing.
    fn report(&self, rooms: &[call::RoomId], now: Instant) -> String {
        let state = if self.core.is_empty() {
            "Idle"
        } else {
            &self.core
        };
        let homeserver = match (&self.offline, self.reached) {
            (Some(why), _) => format!("unreachable ({why}); retrying"),
            (None, true) => "reachable".to_owned(),
            (None, false) => "not reached yet".to_owned(),
        };
        let rooms: Vec<&str> = rooms.iter().map(|r| r.0.as_str()).collect();
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
            format!("state: {state}"),
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
    fn call_ended(&mut self, now: Instant, call: &call::CallId, reason: &call::EndReason) {
        let how = match reason {
            call::EndReason::Hangup { reason, remote } => format!(
                "hung up by {} ({})",
                if *remote {
                    "the other side"
                } else {
                    "the door"
                },
                reason.as_str()
            ),
            call::EndReason::Rejected => "rejected".to_owned(),
            call::EndReason::AnsweredElsewhere => "answered elsewhere".to_owned(),
            call::EndReason::NoAnswer => "no answer".to_owned(),
            call::EndReason::Replaced => "replaced by the peer's call".to_owned(),
            call::EndReason::PeerLeft => "the peer left the room".to_owned(),
        };
        let last = format!("{}: {how} (last state: {})", call.0, self.core);
        self.last_call = Some((now, last));
    }
}

/// Where the core's outputs for Matrix go.
struct Outlets<'a> {
    matrix: &'a Arc<Matrix>,
    snapshots: Option<&'a Snapshots>,
    ringer: &'a Ringer,
}

/// Carries one output of the core to the adapter it is for.
fn dispatch(
    output: Output,
    out: &Outlets,
    rtc: &mut Rtc,
    status: &mut Status,
    panel: &mut Panel,
    now: Instant,
) {
    match output {
        Output::OpenDoor { by } => {
            // Audit lines: logged whatever the filter, never held back.
            if panel.open_door(now) {
                log::info!(target: crate::logging::AUDIT, "door opened by {by}");
            } else {
                log::info!(target: crate::logging::AUDIT, "door: {by}'s open merged into the pulse under way");
            }
        }
        Output::Post { room, text } => out.matrix.post_text(room, text),
        Output::Status(s) => {
            log::info!("status: {s}");
            status.core = s;
        }
        Output::Notice(line) => log::info!("{line}"),
        Output::CallEnded { call, reason } => {
            log::info!(call_id = call.0.as_str(); "call ended: {reason:?}");
            status.call_ended(now, &call, &reason);
        }
        Output::Send { room, event } => {
            log::debug!(call_id = event.call_id.0.as_str(), room = room.0.as_str();
                "sending {}", event.body.event_type());
            let invite = matches!(event.body, CallEventBody::Invite { .. });
            out.matrix.send(room.clone(), event);
            // The door's invites go out only when it rings out: the picture follows each.
            if let (true, Some(snapshots)) = (invite, out.snapshots) {
                snapshots.post(out.matrix, room);
            }
        }
        Output::Rtc { call, command } => {
            if command == RtcCommand::Close {
                if let Some(stats) = rtc.stats(&call) {
                    log::info!(call_id = call.0.as_str();
                        "call media: {} video frames sent, {} video packets received, {} audio packets sent, {} received; remote audio: {} samples, rms={:.4}",
                        stats.video_frames_sent, stats.video_packets_received, stats.audio_packets_sent, stats.audio_packets_received,
                        stats.remote_audio.samples, stats.remote_audio.rms);
                }
            }
            rtc.command(&call, command);
        }
        Output::Device(command) => {
            log::debug!("device: {command:?}");
            match command {
                call::DeviceCommand::Ringtone(on) => out.ringer.set(ToneKind::Ringtone, on),
                call::DeviceCommand::Ringback(on) => out.ringer.set(ToneKind::Ringback, on),
                // The call's task opens and closes the microphone and the speaker's sink.
                call::DeviceCommand::StartMedia | call::DeviceCommand::StopMedia => {}
            }
        }
    }
}

/// The `[turn]` section as an ICE server; its credential is read from its file.
fn configured_turn(turn: &config::TurnConfig) -> Result<IceServer, Error> {
    let credential = match &turn.credential_file {
        Some(path) => Some(
            crate::files::read_to_string(path, crate::files::MAX_SECRET_SIZE)
                .map_err(|e| {
                    Error::io(
                        "cannot read the TURN credential file",
                        Some(path.clone()),
                        e,
                    )
                })?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    Ok(IceServer {
        urls: turn.uris.clone(),
        username: turn.username.clone(),
        credential,
    })
}

/// Keeps the homeserver's TURN credentials fresh: fetched at start, refreshed before their
/// lifetime runs out, retried after failures (429 included) without end.
async fn refresh_turn(matrix: Weak<Matrix>, updates: mpsc::Sender<Vec<IceServer>>) {
    loop {
        // Held only while asking, so that shutdown can take the adapter back to flush it.
        let Some(strong) = matrix.upgrade() else {
            return;
        };
        let answer = strong.turn_servers().await;
        drop(strong);
        let wait = match answer {
            Ok(Some(turn)) => {
                log::info!(
                    "TURN from the homeserver: {:?}, valid for {}s",
                    turn.uris,
                    turn.ttl.as_secs()
                );
                let server = IceServer {
                    urls: turn.uris,
                    username: Some(turn.username),
                    credential: Some(turn.password),
                };
                if updates.send(vec![server]).await.is_err() {
                    return;
                }
                (turn.ttl * 4 / 5).max(Duration::from_secs(60))
            }
            Ok(None) => {
                log::info!(
                    "the homeserver offers no TURN server: calls use direct connections only"
                );
                Duration::from_secs(3600)
            }
            Err(e) => {
                log::warn!("cannot fetch TURN credentials: {e}; retrying in a minute");
                Duration::from_secs(60)
            }
        };
        tokio::time::sleep(wait).await;
    }
}
