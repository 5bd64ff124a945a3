//! `intercom check`: validates the configuration, then looks for everything it names — the
//! state directory, the session, the camera (and its hardware encoder), the sound devices, the
//! GPIO lines and, on the Matrix side, the homeserver, the rooms and TURN — and prints one line a
//! finding. Every failure is a finding, never an error: `check` stays usable offline. The
//! Matrix adapter's findings (`crate::matrix::diagnose`) are of the same type.

use std::path::Path;

use crate::config::{self, Config};
use crate::error::Error;
use crate::media::{AudioEndpoint, VideoDevice};
use crate::settings::Settings;

/// How a finding bears on whether the door can work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Works, but less well than it could (no TURN server, software encoding).
    Warning,
    /// Missing: the door cannot do what the configuration asks.
    Problem,
}

impl Level {
    /// `Ok` when `ok`, else `Problem`.
    pub fn ok_if(ok: bool) -> Level {
        if ok {
            Level::Ok
        } else {
            Level::Problem
        }
    }
}

/// One finding of `intercom check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub detail: String,
}

impl Finding {
    pub fn new(level: Level, what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            level,
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Validates the configuration, then looks for everything it names. Prints one line a finding.
pub fn run(path: &Path) -> Result<(), Error> {
    let config = Config::load(path)?;
    let settings = Settings::from_config(&config)?;
    let mut findings = vec![Finding::new(
        Level::Ok,
        format!("configuration {}", path.display()),
        "valid",
    )];
    let state = &config.matrix.state_dir;
    findings.push(match std::fs::metadata(state) {
        Ok(m) if m.is_dir() => Finding::new(
            Level::Ok,
            format!("state directory {}", state.display()),
            "present",
        ),
        Ok(_) => Finding::new(
            Level::Problem,
            format!("state directory {}", state.display()),
            "is not a directory",
        ),
        Err(e) => Finding {
            level: Level::Problem,
            what: format!("state directory {}", state.display()),
            detail: format!(
                "{e} (the package creates it; or create it, owned by the service's user)"
            ),
        },
    });
    let session = crate::matrix::session_path(state);
    findings.push(Finding {
        level: Level::ok_if(session.is_file()),
        what: "Matrix session".into(),
        detail: if session.is_file() {
            format!("{} present", session.display())
        } else {
            format!(
                "{} missing: run `intercom login` as the service's user",
                session.display()
            )
        },
    });
    match &settings.rtc.media.camera {
        VideoDevice::TestPattern => {
            findings.push(Finding::new(Level::Ok, "camera", "test pattern"))
        }
        VideoDevice::Path(p) => {
            // Opens the camera, chooses as a call would, and closes it again.
            let video = settings.video;
            let plan = crate::media::v4l2::probe(p).and_then(|caps| {
                crate::media::camera::choose(
                    &caps,
                    &crate::media::v4l2::encoders(),
                    (video.width, video.height, video.fps),
                )
                .map_err(crate::media::MediaError::Unsupported)
            });
            let (ok, detail) = match &plan {
                Ok(plan) => (true, plan.reason.clone()),
                Err(e) => (false, e.to_string()),
            };
            findings.push(Finding {
                level: Level::ok_if(ok),
                what: format!("camera {}", p.display()),
                detail,
            });
            // The hardware encoder, opened and configured as a call would (a failure is a
            // warning: calls then encode in software).
            if let Ok(plan) = &plan {
                if let crate::media::camera::Encoding::Hardware { device, input } = &plan.encoding {
                    let result = crate::media::v4l2::check_encoder(
                        Path::new(device),
                        *input,
                        (plan.width, plan.height, plan.fps),
                    );
                    findings.push(Finding {
                        level: if result.is_err() {
                            Level::Warning
                        } else {
                            Level::Ok
                        },
                        what: format!("H.264 encoder {device}"),
                        detail: match result {
                            Ok(detail) => detail,
                            Err(e) => format!("{e}; calls encode in software"),
                        },
                    });
                }
            }
        }
        VideoDevice::Exec(command) => {
            let program = command.first().map_or("", String::as_str);
            let found = crate::media::source::program_exists(program);
            findings.push(Finding {
                level: Level::ok_if(found),
                what: format!("camera command {program:?}"),
                detail: if found {
                    "found (started for each call)"
                } else {
                    "not found"
                }
                .into(),
            })
        }
    }
    for (what, endpoint, capture) in [
        ("audio capture", &settings.rtc.media.capture, true),
        ("audio playback", &settings.rtc.media.playback, false),
    ] {
        findings.push(match endpoint {
            AudioEndpoint::Pcm(name) => {
                let dir = if capture {
                    alsa::Direction::Capture
                } else {
                    alsa::Direction::Playback
                };
                match crate::media::alsa::probe(name, dir) {
                    Ok(c) => Finding {
                        level: Level::Ok,
                        what: format!("{what} {name:?}"),
                        detail: format!(
                            "opens: {} Hz, {} channel(s), {:?}",
                            c.rate, c.channels, c.format
                        ),
                    },
                    Err(e) => {
                        Finding::new(Level::Problem, format!("{what} {name:?}"), e.to_string())
                    }
                }
            }
            AudioEndpoint::TestTone | AudioEndpoint::TestBursts => {
                Finding::new(Level::Ok, what, "test tone")
            }
            AudioEndpoint::Null => Finding::new(Level::Ok, what, "none (null)"),
        });
    }
    let lines = [
        ("button", config.button.as_ref().map(|b| (&b.chip, &b.line))),
        ("led", config.led.as_ref().map(|l| (&l.chip, &l.line))),
        (
            "door relay",
            config.door.as_ref().map(|d| (&d.chip, &d.line)),
        ),
    ];
    for (what, line) in lines {
        if let Some((chip, line)) = line {
            // Requested and let go at once: a line another program holds is found here.
            findings.push(match crate::gpio::probe(chip, line) {
                Ok(detail) => Finding {
                    level: Level::Ok,
                    what: format!("{what} line {line}"),
                    detail,
                },
                Err(e) => Finding::new(Level::Problem, format!("{what} line {line}"), e),
            });
        }
    }
    if session.is_file() {
        findings.extend(matrix_findings(&config.matrix));
    }
    let problems = findings
        .iter()
        .filter(|f| f.level == Level::Problem)
        .count();
    for f in &findings {
        let level = match f.level {
            Level::Problem => "MISSING",
            Level::Warning => "warning",
            Level::Ok => "ok     ",
        };
        println!("{level} {}: {}", f.what, f.detail);
    }
    if problems == 0 {
        println!("everything the configuration names is present");
        Ok(())
    } else {
        Err(Error::CheckFailed(problems))
    }
}

/// The Matrix findings (session, homeserver, rooms, TURN), asked on a runtime of their own.
fn matrix_findings(config: &config::MatrixConfig) -> Vec<Finding> {
    match crate::cli::current_thread_runtime() {
        Ok(rt) => rt.block_on(crate::matrix::diagnose(config)),
        Err(e) => vec![Finding::new(Level::Problem, "Matrix", e.to_string())],
    }
}
