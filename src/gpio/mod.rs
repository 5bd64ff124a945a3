//! The GPIO adapter (gpiocdev, the kernel's character-device API): the door's button.
//!
//! It translates and decides nothing: a debounced rising edge of the (logical, active-low aware)
//! button line becomes one "pressed" message to the driver loop. The synthetic button — the
//! control socket's `ring` — is always there beside it, so every test runs without a Pi.
//! A line that cannot be opened (no chip, line busy, chip gone) is logged and retried; the
//! daemon never exits over it.

use std::path::PathBuf;
use std::time::Duration;

use gpiocdev::line::EdgeDetection;
use tokio::sync::mpsc;

use crate::config::{ButtonConfig, GpioLine};

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

/// Watches the button on a thread of its own; each press is one message on `presses`.
/// Returns when the receiver is gone.
pub fn spawn_button(config: ButtonConfig, presses: mpsc::Sender<()>) {
    std::thread::Builder::new()
        .name("gpio-button".into())
        .spawn(move || watch_button(&config, &presses))
        .expect("spawning the GPIO thread");
}

fn watch_button(config: &ButtonConfig, presses: &mpsc::Sender<()>) {
    let mut reported = false;
    while !presses.is_closed() {
        match open_button(config) {
            Ok(req) => {
                log::info!("button: watching line {} of {}", config.line, config.chip);
                reported = false;
                loop {
                    match req.wait_edge_event(Duration::from_secs(1)) {
                        Ok(true) => match req.read_edge_event() {
                            Ok(_) => {
                                if presses.blocking_send(()).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                log::warn!("button: reading the line failed: {e}");
                                break;
                            }
                        },
                        Ok(false) if presses.is_closed() => return,
                        Ok(false) => {}
                        Err(e) => {
                            log::warn!("button: the line went away: {e}; retrying");
                            break;
                        }
                    }
                }
            }
            Err(e) if !reported => {
                log::error!("button: {e}; retrying every {}s", RETRY.as_secs());
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
        .with_edge_detection(EdgeDetection::RisingEdge)
        .with_debounce_period(config.debounce);
    if config.active_low {
        builder.as_active_low();
    }
    builder
        .request()
        .map_err(|e| format!("cannot open line {offset} of {}: {e}", chip.display()))
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
