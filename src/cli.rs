//! The command line: `intercom run | check | login | devices | ring`.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{self, AudioEndpoint, Config, VideoDevice};
use crate::error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "intercom",
    version,
    about = "A door intercom: a button, a camera, a microphone and a speaker that ring a Matrix room",
    propagate_version = true
)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, value_name = "FILE", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: CommandLine,
}

#[derive(Debug, Subcommand)]
pub enum CommandLine {
    /// Run the daemon (what the systemd service starts).
    Run,
    /// Check the configuration, the state directory and the devices it names, like `nginx -t`.
    Check,
    /// Log the door's Matrix account in once and store the session in the state directory.
    Login,
    /// List the cameras, ALSA PCMs and GPIO chips this machine has.
    Devices,
    /// Press the door's button through the running daemon's control socket.
    Ring {
        /// The control socket (default: `[control] socket` of the configuration).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        CommandLine::Run => {
            let config = Config::load(&cli.config)?;
            crate::logging::init(&config.log.filter)
                .map_err(|e| Error::Unavailable(format!("cannot set up logging: {e}")))?;
            crate::daemon::run(config)
        }
        CommandLine::Check => check(&cli.config),
        CommandLine::Login => {
            Config::load(&cli.config)?;
            Err(Error::Unavailable(
                "`intercom login` is not implemented yet: the Matrix adapter is still to come"
                    .to_owned(),
            ))
        }
        CommandLine::Devices => {
            devices();
            Ok(())
        }
        CommandLine::Ring { socket } => {
            let socket = match socket {
                Some(s) => s,
                None => Config::load(&cli.config)?.control.socket,
            };
            let answer = crate::control::send(&socket, "ring")?;
            println!("{answer}");
            Ok(())
        }
    }
}

/// One finding of `intercom check`.
struct Finding {
    ok: bool,
    what: String,
    detail: String,
}

/// Validates the configuration, then looks for everything it names. Prints one line a finding.
fn check(path: &Path) -> Result<(), Error> {
    let config = Config::load(path)?;
    let mut findings = vec![Finding {
        ok: true,
        what: format!("configuration {}", path.display()),
        detail: "valid".into(),
    }];
    let state = &config.matrix.state_dir;
    findings.push(match std::fs::metadata(state) {
        Ok(m) if m.is_dir() => Finding {
            ok: true,
            what: format!("state directory {}", state.display()),
            detail: "present".into(),
        },
        Ok(_) => Finding {
            ok: false,
            what: format!("state directory {}", state.display()),
            detail: "is not a directory".into(),
        },
        Err(e) => Finding {
            ok: false,
            what: format!("state directory {}", state.display()),
            detail: format!(
                "{e} (the package creates it; or create it, owned by the service's user)"
            ),
        },
    });
    let session = crate::matrix::session_path(state);
    findings.push(Finding {
        ok: session.is_file(),
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
    match &config.camera.device {
        VideoDevice::TestPattern => findings.push(Finding {
            ok: true,
            what: "camera".into(),
            detail: "test pattern".into(),
        }),
        VideoDevice::Path(p) => findings.push(Finding {
            ok: p.exists(),
            what: format!("camera {}", p.display()),
            detail: if p.exists() { "present" } else { "not found" }.into(),
        }),
    }
    for (what, endpoint, capture) in [
        ("audio capture", &config.audio.capture, true),
        ("audio playback", &config.audio.playback, false),
    ] {
        findings.push(match endpoint {
            AudioEndpoint::Pcm(name) => {
                let dir = if capture {
                    alsa::Direction::Capture
                } else {
                    alsa::Direction::Playback
                };
                match alsa::PCM::new(name, dir, true) {
                    Ok(_) => Finding {
                        ok: true,
                        what: format!("{what} {name:?}"),
                        detail: "opens".into(),
                    },
                    Err(e) => Finding {
                        ok: false,
                        what: format!("{what} {name:?}"),
                        detail: format!("cannot open: {e}"),
                    },
                }
            }
            AudioEndpoint::TestTone => Finding {
                ok: true,
                what: what.into(),
                detail: "test tone".into(),
            },
            AudioEndpoint::Null => Finding {
                ok: true,
                what: what.into(),
                detail: "none (null)".into(),
            },
        });
    }
    let lines = [
        ("button", config.button.as_ref().map(|b| (&b.chip, &b.line))),
        (
            "door relay",
            config.door.as_ref().map(|d| (&d.chip, &d.line)),
        ),
    ];
    for (what, line) in lines {
        if let Some((chip, line)) = line {
            findings.push(match crate::gpio::resolve(chip, line) {
                Ok((path, offset)) => Finding {
                    ok: true,
                    what: format!("{what} line {line}"),
                    detail: format!("line {offset} of {}", path.display()),
                },
                Err(e) => Finding {
                    ok: false,
                    what: format!("{what} line {line}"),
                    detail: e,
                },
            });
        }
    }
    let problems = findings.iter().filter(|f| !f.ok).count();
    for f in &findings {
        println!(
            "{} {}: {}",
            if f.ok { "ok     " } else { "MISSING" },
            f.what,
            f.detail
        );
    }
    if problems == 0 {
        println!("everything the configuration names is present");
        Ok(())
    } else {
        Err(Error::CheckFailed(problems))
    }
}

fn devices() {
    println!("Cameras (V4L2):");
    let cams = crate::media::video_devices();
    if cams.is_empty() {
        println!("  none found");
    }
    for (node, name) in cams {
        println!("  {node}  {name}");
    }
    println!("  test-pattern  (built in)");
    println!("ALSA PCMs:");
    for (name, desc) in crate::media::alsa_pcms() {
        println!("  {name}  {desc}");
    }
    println!("  test-tone, null  (built in)");
    println!("GPIO chips:");
    let chips = crate::gpio::chips();
    if chips.is_empty() {
        println!("  none found");
    }
    for c in chips {
        println!("  {}  {} ({} lines)", c.path.display(), c.label, c.lines);
    }
}
