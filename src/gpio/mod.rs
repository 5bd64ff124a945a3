//! The GPIO adapter (gpiocdev, the kernel's character-device API): the door's button, its LED
//! and the door's relay.
//!
//! It translates and decides nothing: each edge of the (logical, active-low aware, kernel
//! debounced) button line becomes one message to the driver loop, whose [`crate::panel::Panel`]
//! debounces again and tells presses from long presses; the LED and the relay are
//! [`OutputLine`]s the driver sets. Edges come from the kernel's edge events (interrupts), never
//! from reading the level in a loop. The synthetic button — the control socket's `ring` — is
//! always there beside it, and the chip [`SYNTHETIC_CHIP`] gives synthetic lines that drive
//! nothing and log each change, so every test runs without a Pi. A line that cannot be opened
//! (no chip, no such line, line busy, chip gone) is logged naming it and retried; the daemon
//! never exits over it.

use std::path::PathBuf;
use std::time::Duration;

use std::time::Instant;

use gpiocdev::line::{EdgeDetection, EdgeKind, Value};
use tokio::sync::mpsc;

use crate::config::{Bias, ButtonConfig, GpioLine, SYNTHETIC_CHIP};

/// How long to wait before opening a line again after it failed.
const RETRY: Duration = Duration::from_secs(5);

/// Where a configured line is: its chip's device path and offset.
pub fn resolve(chip: &str, line: &GpioLine) -> Result<(PathBuf, u32), String> {
    match line {
        GpioLine::Offset(offset) => {
            let chip_path = chip_path(chip);
            let c = gpiocdev::chip::Chip::from_path(&chip_path)
                .map_err(|e| format!("GPIO chip {}: {e}", chip_path.display()))?;
            let info = c
                .info()
                .map_err(|e| format!("GPIO chip {}: {e}", chip_path.display()))?;
            if *offset >= info.num_lines {
                return Err(format!(
                    "GPIO chip {} has lines 0 to {}, not {offset}",
                    chip_path.display(),
                    info.num_lines.saturating_sub(1)
                ));
            }
            Ok((chip_path, *offset))
        }
        GpioLine::Name(name) => gpiocdev::find_named_line(name)
            .map(|l| (l.chip, l.info.offset))
            .ok_or_else(|| format!("no GPIO line is named {name:?}")),
    }
}

fn chip_path(chip: &str) -> PathBuf {
    if chip.starts_with('/') {
        PathBuf::from(chip)
    } else {
        PathBuf::from("/dev").join(chip)
    }
}

/// Watches the button on a thread of its own; each edge is one message on `edges`: true when
/// the button went down, false when it came up. Returns when the receiver is gone.
pub fn spawn_button(config: ButtonConfig, edges: mpsc::Sender<bool>) {
    if config.chip == SYNTHETIC_CHIP {
        log::info!("button: on the synthetic chip: only `intercom ring` presses it");
        return;
    }
    std::thread::Builder::new()
        .name("gpio-button".into())
        .spawn(move || watch_button(&config, &edges))
        .expect("spawning the GPIO thread");
}

fn watch_button(config: &ButtonConfig, edges: &mpsc::Sender<bool>) {
    let mut reported = false;
    while !edges.is_closed() {
        match open_button(config) {
            Ok(req) => {
                log::info!("button: watching line {} of {}", config.line, config.chip);
                reported = false;
                loop {
                    match req.wait_edge_event(Duration::from_secs(1)) {
                        Ok(true) => match req.read_edge_event() {
                            Ok(edge) => {
                                let down = edge.kind == EdgeKind::Rising;
                                if edges.blocking_send(down).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                log::warn!("button: reading the line failed: {e}");
                                break;
                            }
                        },
                        Ok(false) if edges.is_closed() => return,
                        Ok(false) => {}
                        Err(e) => {
                            log::warn!("button: the line went away: {e}; retrying");
                            break;
                        }
                    }
                }
            }
            Err(e) if !reported => {
                log::error!(
                    "button (line {} of {}): {e}; retrying every {}s",
                    config.line,
                    config.chip,
                    RETRY.as_secs()
                );
                reported = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(RETRY);
    }
}

fn open_button(config: &ButtonConfig) -> Result<gpiocdev::Request, String> {
    let (chip, offset) = resolve(&config.chip, &config.line)?;
    let mut builder = gpiocdev::Request::builder();
    builder
        .on_chip(&chip)
        .with_consumer("intercom-button")
        .with_line(offset)
        .as_input()
        .with_edge_detection(EdgeDetection::BothEdges)
        .with_debounce_period(config.debounce);
    if config.active_low {
        builder.as_active_low();
    }
    let bias = match config.bias {
        Bias::Auto if config.active_low => Some(gpiocdev::line::Bias::PullUp),
        Bias::Auto => Some(gpiocdev::line::Bias::PullDown),
        Bias::PullUp => Some(gpiocdev::line::Bias::PullUp),
        Bias::PullDown => Some(gpiocdev::line::Bias::PullDown),
        Bias::Disabled => Some(gpiocdev::line::Bias::Disabled),
        Bias::AsIs => None,
    };
    builder.with_bias(bias);
    builder
        .request()
        .map_err(|e| format!("cannot open line {offset} of {}: {e}", chip.display()))
}

/// An output line: the LED or the relay. `set` takes the logical level (true: lit, closed).
pub trait OutputLine: Send {
    fn set(&mut self, on: bool);
}

/// Where an output line is, and what it is for (`what` names it in the log: "led", "relay").
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub what: &'static str,
    pub chip: String,
    pub line: GpioLine,
    pub active_low: bool,
}

/// The line of `config`: synthetic on [`SYNTHETIC_CHIP`], else a GPIO line (opened on first use,
/// reopened after failures).
pub fn open_output(config: OutputConfig) -> Box<dyn OutputLine> {
    if config.chip == SYNTHETIC_CHIP {
        Box::new(SyntheticLine {
            what: config.what,
            level: None,
        })
    } else {
        Box::new(GpioOutput {
            config,
            request: None,
            failed_at: None,
            level: false,
        })
    }
}

/// A line that drives nothing: each change is logged ("synthetic relay: on"), at info for the
/// relay (an opening is worth the journal) and debug for the rest.
pub struct SyntheticLine {
    what: &'static str,
    level: Option<bool>,
}

impl OutputLine for SyntheticLine {
    fn set(&mut self, on: bool) {
        if self.level == Some(on) {
            return;
        }
        self.level = Some(on);
        let state = if on { "on" } else { "off" };
        if self.what == "relay" {
            log::info!("synthetic {}: {state}", self.what);
        } else {
            log::debug!("synthetic {}: {state}", self.what);
        }
    }
}

/// A GPIO output line. Requested as an output at the level asked for; a line that cannot be
/// requested is reported once (naming chip and line) and tried again on later sets, at most
/// every [`RETRY`].
struct GpioOutput {
    config: OutputConfig,
    request: Option<gpiocdev::Request>,
    failed_at: Option<Instant>,
    level: bool,
}

impl GpioOutput {
    fn open(&self, level: bool) -> Result<gpiocdev::Request, String> {
        let c = &self.config;
        let (chip, offset) = resolve(&c.chip, &c.line)?;
        let mut builder = gpiocdev::Request::builder();
        builder
            .on_chip(&chip)
            .with_consumer(format!("intercom-{}", c.what))
            .with_line(offset)
            .as_output(if level {
                Value::Active
            } else {
                Value::Inactive
            });
        if c.active_low {
            builder.as_active_low();
        }
        builder
            .request()
            .map_err(|e| format!("cannot open line {offset} of {}: {e}", chip.display()))
    }
}

impl OutputLine for GpioOutput {
    fn set(&mut self, on: bool) {
        self.level = on;
        if let Some(req) = &self.request {
            let value = if on { Value::Active } else { Value::Inactive };
            match req.set_lone_value(value) {
                Ok(()) => return,
                Err(e) => {
                    log::warn!(
                        "{} (line {} of {}): setting it failed: {e}; reopening",
                        self.config.what,
                        self.config.line,
                        self.config.chip
                    );
                    self.request = None;
                }
            }
        }
        let now = Instant::now();
        if self
            .failed_at
            .is_some_and(|t| now.duration_since(t) < RETRY)
        {
            return;
        }
        match self.open(on) {
            Ok(req) => {
                log::info!(
                    "{}: driving line {} of {}",
                    self.config.what,
                    self.config.line,
                    self.config.chip
                );
                self.request = Some(req);
                self.failed_at = None;
            }
            Err(e) => {
                if self.failed_at.is_none() {
                    log::error!(
                        "{} (line {} of {}): {e}; retrying",
                        self.config.what,
                        self.config.line,
                        self.config.chip
                    );
                }
                self.failed_at = Some(now);
            }
        }
    }
}

/// Whether the line of `config` can be requested now (for `intercom check`): requested as an
/// input without edge detection and let go at once, so nothing is driven.
pub fn probe(chip: &str, line: &GpioLine) -> Result<String, String> {
    if chip == SYNTHETIC_CHIP {
        return Ok("synthetic (drives nothing)".to_owned());
    }
    let (path, offset) = resolve(chip, line)?;
    let mut builder = gpiocdev::Request::builder();
    builder
        .on_chip(&path)
        .with_consumer("intercom-check")
        .with_line(offset)
        .as_is();
    builder
        .request()
        .map(|_| format!("line {offset} of {}", path.display()))
        .map_err(|e| format!("cannot request line {offset} of {}: {e}", path.display()))
}

/// A GPIO chip as `intercom devices` lists it.
pub struct ChipInfo {
    pub path: PathBuf,
    pub label: String,
    pub lines: u32,
}

/// Every GPIO chip on this machine.
pub fn chips() -> Vec<ChipInfo> {
    gpiocdev::chip::chips()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|path| {
            let info = gpiocdev::chip::Chip::from_path(&path).ok()?.info().ok()?;
            Some(ChipInfo {
                path,
                label: info.label,
                lines: info.num_lines,
            })
        })
        .collect()
}

/// The named lines of the chip at `path`: offset, name, and who holds the line, if anyone.
pub fn named_lines(path: &std::path::Path) -> Vec<(u32, String, Option<String>)> {
    let Ok(chip) = gpiocdev::chip::Chip::from_path(path) else {
        return Vec::new();
    };
    let lines = chip.info().map(|i| i.num_lines).unwrap_or(0);
    (0..lines)
        .filter_map(|offset| {
            let info = chip.line_info(offset).ok()?;
            if info.name.is_empty() {
                return None;
            }
            let user = (!info.consumer.is_empty()).then(|| info.consumer.clone());
            Some((offset, info.name, user))
        })
        .collect()
}
