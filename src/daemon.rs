//! The driver loop: the one place that owns the runtime, the clock, signals and sd_notify.
//!
//! It feeds the sans-IO core ([`crate::call::Core`]) with inputs stamped with `Instant::now()`,
//! sleeps until the core's next deadline or the next input, and carries the core's outputs to the
//! adapters. It makes no decisions of its own about calls. Readiness, status and the watchdog go
//! to systemd from here: `READY=1` once the door can ring, `STATUS=` whenever the core says so,
//! `WATCHDOG=1` from this loop itself (so a wedged loop is restarted), `STOPPING=1` on SIGTERM,
//! after any call was hung up.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::call::{self, Core, Input, Output};
use crate::config::{self, Config};
use crate::control::{self, Command};
use crate::error::Error;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the runtime", None, e))?;
    runtime.block_on(drive(config))
}

fn policy(config: &Config) -> call::Policy {
    call::Policy {
        rooms: config
            .matrix
            .rooms
            .iter()
            .map(|r| call::RoomId(r.0.clone()))
            .collect(),
        allow: config
            .matrix
            .allow
            .iter()
            .map(|u| call::UserId(u.0.clone()))
            .collect(),
        incoming: match config.call.incoming {
            config::IncomingPolicy::AutoAnswer => call::Incoming::AutoAnswer,
            config::IncomingPolicy::Ring => call::Incoming::Ring,
            config::IncomingPolicy::Reject => call::Incoming::Reject,
        },
        ring_timeout: config.call.ring_timeout,
        max_length: config.call.max_length,
        video: config.call.video,
        press_during_call: match config.call.press_during_call {
            config::PressDuringCall::Ignore => call::PressDuringCall::Ignore,
            config::PressDuringCall::Hangup => call::PressDuringCall::Hangup,
        },
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

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        log::debug!("sd_notify failed: {e}");
    }
}

async fn drive(config: Config) -> Result<(), Error> {
    let identity = call::Identity {
        user: call::UserId(config.matrix.user.0.clone()),
        // Until the Matrix adapter restores the session, the device id is not known.
        party: call::PartyId(config.matrix.device_name.clone()),
    };
    let mut core = Core::new(policy(&config), identity, call_seed());
    let mut status = String::from("Idle");

    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Error::io("cannot watch SIGTERM", None, e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("cannot watch SIGINT", None, e))?;

    let listener = control::bind(&config.control.socket)?;
    let (requests_tx, mut requests) = mpsc::channel(8);
    tokio::spawn(control::serve(listener, requests_tx));

    let (press_tx, mut presses) = mpsc::channel(8);
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
        "intercom {} ready: {} room(s) to ring, control socket {}",
        env!("CARGO_PKG_VERSION"),
        config.matrix.rooms.len(),
        config.control.socket.display()
    );
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);

    loop {
        while let Some(output) = core.poll_output() {
            dispatch(output, &mut status);
        }
        let deadline = core.poll_timeout();
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
            () = sleep => core.handle_timeout(Instant::now()),
            Some(()) = presses.recv() => {
                log::info!("button pressed");
                core.handle_input(Instant::now(), Input::ButtonPressed);
            }
            Some(req) = requests.recv() => {
                let answer = match req.command {
                    Command::Ring => {
                        log::info!("button pressed (control socket)");
                        core.handle_input(Instant::now(), Input::ButtonPressed);
                        "ok pressed".to_owned()
                    }
                    Command::Status => format!("ok {status}"),
                };
                let _ = req.reply.send(answer);
            }
        }
    }

    log::info!("stopping");
    core.handle_input(Instant::now(), Input::Shutdown);
    while let Some(output) = core.poll_output() {
        dispatch(output, &mut status);
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("Stopping")]);
    let _ = std::fs::remove_file(&config.control.socket);
    Ok(())
}

/// Carries one output of the core to where it goes.
fn dispatch(output: Output, status: &mut String) {
    match output {
        Output::Status(s) => {
            log::info!("status: {s}");
            notify(&[NotifyState::Status(&s)]);
            *status = s;
        }
        Output::CallEnded { call, reason } => {
            log::info!(call_id = call.0.as_str(); "call ended: {reason:?}");
        }
        Output::Send { room, event } => {
            log::debug!(call_id = event.call_id.0.as_str(), room = room.0.as_str(); "to send: {:?}", event.body);
        }
        Output::Rtc { call, command } => {
            log::debug!(call_id = call.0.as_str(); "WebRTC: {command:?}");
        }
        Output::Device(command) => log::debug!("device: {command:?}"),
    }
}
