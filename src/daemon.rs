//! The driver loop: the one place that owns the runtime, the clock, signals and sd_notify.
//!
//! It is a pump: it waits for the next input or the station's next deadline, stamps the input
//! with `Instant::now()`, hands it to the sans-IO station ([`crate::station::Station`]: the call
//! core, the panel, the status), and carries each of the station's outputs to the adapter it
//! names. It makes no decision of its own: it changes only when an I/O source changes.
//! Readiness, status and the watchdog go to systemd from here: `READY=1` once the door can ring,
//! `STATUS=` whenever the station says so,
//! `WATCHDOG=1` from this loop itself (so a wedged loop is restarted), `STOPPING=1` on SIGTERM,
//! after any call was hung up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::call::{self, RtcCommand};
use crate::config::{self, Config};
use crate::control::{self, Command};
use crate::error::Error;
use crate::gpio::{self, OutputLine};
use crate::matrix::{self, Matrix, MatrixEvent};
use crate::media::speaker::Ringer;
use crate::media::tones::ToneKind;
use crate::rtc::{IceServer, Rtc};
use crate::settings::Settings;
use crate::station::{self, Input, Level, Output, Request, Station, StationConfig};

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

/// What taking a snapshot needs.
struct Snapshots {
    camera: crate::media::VideoDevice,
    video: crate::media::VideoSettings,
}

impl Snapshots {
    /// Takes a picture off the loop's thread, then posts it into `room`, mentioning `mention`.
    fn post(&self, matrix: &Arc<Matrix>, room: call::RoomId, mention: Vec<call::UserId>) {
        let (camera, video) = (self.camera.clone(), self.video);
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
    let started_wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut station = Station::new(
        StationConfig {
            identity: identity.clone(),
            policy,
            door: settings.door.clone(),
            panel: settings.panel,
            call_seed: call_seed(),
            snapshots: settings.snapshot_mentions.is_some(),
            accept_invites: config.matrix.accept_invites,
            turn_from_homeserver: config.turn.is_none(),
            started_wall_ms,
        },
        Instant::now(),
    );
    let mut lines = Lines::open(&settings);
    let snapshots = Snapshots {
        camera: settings.rtc.media.camera.clone(),
        video: settings.video,
    };

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
    // `[turn]`, when configured, is the one TURN server; otherwise the station asks the
    // homeserver for its own (`Output::FetchTurn`) and keeps them fresh.
    let (turn_tx, mut turn_answers) = mpsc::channel(1);
    if let Some(turn) = &config.turn {
        rtc.set_ice_servers(vec![configured_turn(turn)?]);
    }

    let (edges_tx, mut edges) = mpsc::channel(8);
    if let Some(button) = config.button.clone() {
        crate::gpio::spawn_button(button, edges_tx);
    } else {
        drop(edges_tx);
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
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&station.status_line()),
    ]);
    // Start-up (the first sync, the stores) freed more than the idle door will ever hold again.
    crate::memory::give_back_free_pages();

    let mut outlets = Outlets {
        turn_answers: turn_tx,
        matrix: &matrix,
        snapshots: &snapshots,
        ringer: &ringer,
        lines: &mut lines,
        replies: std::collections::HashMap::new(),
        next_request: 0,
    };
    loop {
        while let Some(output) = station.poll_output() {
            outlets.carry(output, &mut rtc);
        }
        let sleep = async {
            match station.poll_timeout() {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                notify(&[NotifyState::Watchdog]);
                continue;
            }
            () = sleep => {
                station.handle_timeout(Instant::now());
                continue;
            }
            Some(event) = matrix_events.recv() => match event {
                MatrixEvent::Batch(events) => Input::SyncBatch(events),
                MatrixEvent::MemberLeft { room, user } => Input::MemberLeft { room, user },
                MatrixEvent::Message { message, origin_server_ts } => {
                    Input::Message { message, origin_server_ts }
                }
                MatrixEvent::Invited { room, inviter } => Input::Invited { room, inviter },
                MatrixEvent::Online => Input::Reachability(None),
                MatrixEvent::Offline(why) => Input::Reachability(Some(why)),
                MatrixEvent::Unresolved(aliases) => Input::Unresolved(aliases),
            },
            Some(report) = device_reports.recv() => Input::Device(report),
            Some((call, event)) = rtc_events.recv() => Input::Rtc { call, event },
            Some(answer) = turn_answers.recv() => Input::Turn(answer),
            Some(pressed) = edges.recv() => Input::ButtonEdge { pressed },
            Some(req) = requests.recv() => {
                let request = match req.command {
                    Command::Ring => Request::Ring,
                    Command::Status => Request::Status,
                };
                let id = outlets.next_request;
                outlets.next_request += 1;
                outlets.replies.insert(id, req.reply);
                Input::Control { id, request }
            }
        };
        station.handle_input(Instant::now(), input);
    }

    log::info!("stopping");
    station.handle_input(Instant::now(), Input::Shutdown);
    while let Some(output) = station.poll_output() {
        // No picture after the door stopped.
        if !matches!(output, Output::PostSnapshot { .. }) {
            outlets.carry(output, &mut rtc);
        }
    }
    // The door stays shut and the light goes out with the daemon.
    if let Some(relay) = &mut outlets.lines.relay {
        relay.set(false);
    }
    if let Some(led) = &mut outlets.lines.led {
        led.set(false);
    }
    drop(outlets);
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

/// Where the station's outputs go.
struct Outlets<'a> {
    /// Where the homeserver's answers about TURN go (back to the station).
    turn_answers: mpsc::Sender<Result<Option<matrix::TurnServers>, String>>,
    matrix: &'a Arc<Matrix>,
    snapshots: &'a Snapshots,
    ringer: &'a Ringer,
    lines: &'a mut Lines,
    /// The control-socket requests waiting for their reply, by the id the station was given.
    replies: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<String>>,
    next_request: u64,
}

impl Outlets<'_> {
    /// Carries one output of the station to the adapter it is for.
    fn carry(&mut self, output: Output, rtc: &mut Rtc) {
        match output {
            Output::Send { room, event } => self.matrix.send(room, event),
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
            Output::Tone { tone, on } => {
                log::debug!("device: {tone:?} {}", if on { "on" } else { "off" });
                let kind = match tone {
                    station::Tone::Ringtone => ToneKind::Ringtone,
                    station::Tone::Ringback => ToneKind::Ringback,
                };
                self.ringer.set(kind, on);
            }
            Output::Led(on) => {
                if let Some(led) = &mut self.lines.led {
                    led.set(on);
                }
            }
            Output::Relay(on) => {
                if let Some(relay) = &mut self.lines.relay {
                    relay.set(on);
                }
            }
            Output::Post { room, text } => self.matrix.post_text(room, text),
            Output::PostSnapshot { room, mention } => {
                self.snapshots.post(self.matrix, room, mention)
            }
            Output::JoinRoom { room } => self.matrix.join(room),
            Output::FetchTurn => {
                // Holds the adapter only while asking, so that shutdown can take it back to
                // flush it.
                let (matrix, answers) = (Arc::downgrade(self.matrix), self.turn_answers.clone());
                tokio::spawn(async move {
                    let Some(matrix) = matrix.upgrade() else {
                        return;
                    };
                    let answer = matrix.turn_servers().await.map_err(|e| e.to_string());
                    drop(matrix);
                    let _ = answers.send(answer).await;
                });
            }
            Output::IceServers(turn) => rtc.set_ice_servers(vec![IceServer {
                urls: turn.uris,
                username: Some(turn.username),
                credential: Some(turn.password),
            }]),
            Output::Reply { id, text } => {
                if let Some(reply) = self.replies.remove(&id) {
                    let _ = reply.send(text);
                }
            }
            Output::Status(line) => notify(&[NotifyState::Status(&line)]),
            Output::Log(line) => write_log(line),
        }
    }
}

/// Writes one of the station's log lines, with its call id and room as structured fields.
fn write_log(line: station::Log) {
    let level = match line.level {
        Level::Debug => log::Level::Debug,
        Level::Info | Level::Audit => log::Level::Info,
        Level::Warn => log::Level::Warn,
    };
    let target = if line.level == Level::Audit {
        crate::logging::AUDIT
    } else {
        module_path!()
    };
    let text = line.text;
    match (line.call, line.room) {
        (Some(call), Some(room)) => {
            log::log!(target: target, level, call_id = call.0.as_str(), room = room.0.as_str(); "{text}")
        }
        (Some(call), None) => log::log!(target: target, level, call_id = call.0.as_str(); "{text}"),
        (None, Some(room)) => log::log!(target: target, level, room = room.0.as_str(); "{text}"),
        (None, None) => log::log!(target: target, level, "{text}"),
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
