//! The command line: `intercom run | check | login | devices | ring | status`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::error::Error;
use crate::matrix::Level;
use crate::media::{AudioEndpoint, VideoDevice};
use crate::settings::Settings;

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
    ///
    /// The password is read from `--password-file`, or asked for on the terminal (not echoed),
    /// or read as one line from standard input when that is not a terminal. It is never stored.
    ///
    /// Run it as the service's user (`sudo -u intercom intercom login`): it refuses to make files
    /// in a state directory that belongs to another user. It refuses, too, when the state
    /// directory holds the stores of an earlier login without its session, unless told to
    /// discard them.
    Login {
        /// A file whose first line is the password.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Remove the stores (and the end-to-end encryption keys) an earlier login left in the
        /// state directory without a session.
        #[arg(long)]
        discard_store: bool,
    },
    /// List the cameras, ALSA PCMs and GPIO chips this machine has.
    Devices,
    /// Press the door's button through the running daemon's control socket.
    Ring {
        /// The control socket (default: `[control] socket` of the configuration).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Ask the running daemon how the door is: its state, the homeserver, the rooms it rings,
    /// the last call, and what is missing.
    Status {
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
            let settings = Settings::from_config(&config)?;
            crate::logging::init(&config.log.filter)
                .map_err(|e| Error::Unavailable(format!("cannot set up logging: {e}")))?;
            crate::daemon::run(config, settings)
        }
        CommandLine::Check => check(&cli.config),
        CommandLine::Login {
            password_file,
            discard_store,
        } => login(&cli.config, password_file.as_deref(), discard_store),
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
        CommandLine::Status { socket } => {
            let socket = match socket {
                Some(s) => s,
                None => Config::load(&cli.config)?.control.socket,
            };
            let answer = crate::control::send(&socket, "status")?;
            // `ok <status line>`, then one `key: value` line each; a daemon that answers with
            // the status line alone has that shown as its state.
            let mut lines = answer.lines();
            let first = lines.next().unwrap_or_default();
            let rest: Vec<&str> = lines.collect();
            if rest.is_empty() {
                println!("state: {}", first.strip_prefix("ok ").unwrap_or(first));
            }
            for line in rest {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// One finding of `intercom check`.
struct Finding {
    ok: bool,
    /// Not a problem, but worth a line of its own (no TURN server).
    warning: bool,
    what: String,
    detail: String,
}

impl Default for Finding {
    fn default() -> Self {
        Finding {
            ok: true,
            warning: false,
            what: String::new(),
            detail: String::new(),
        }
    }
}

/// Validates the configuration, then looks for everything it names. Prints one line a finding.
fn check(path: &Path) -> Result<(), Error> {
    let config = Config::load(path)?;
    let settings = Settings::from_config(&config)?;
    let mut findings = vec![Finding {
        ok: true,
        what: format!("configuration {}", path.display()),
        detail: "valid".into(),
        ..Finding::default()
    }];
    let state = &config.matrix.state_dir;
    findings.push(match std::fs::metadata(state) {
        Ok(m) if m.is_dir() => Finding {
            ok: true,
            what: format!("state directory {}", state.display()),
            detail: "present".into(),
            ..Finding::default()
        },
        Ok(_) => Finding {
            ok: false,
            what: format!("state directory {}", state.display()),
            detail: "is not a directory".into(),
            ..Finding::default()
        },
        Err(e) => Finding {
            ok: false,
            what: format!("state directory {}", state.display()),
            detail: format!(
                "{e} (the package creates it; or create it, owned by the service's user)"
            ),
            ..Finding::default()
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
        ..Finding::default()
    });
    match &settings.rtc.media.camera {
        VideoDevice::TestPattern => findings.push(Finding {
            ok: true,
            what: "camera".into(),
            detail: "test pattern".into(),
            ..Finding::default()
        }),
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
                ok,
                what: format!("camera {}", p.display()),
                detail,
                ..Finding::default()
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
                        ok: true,
                        warning: result.is_err(),
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
                ok: found,
                what: format!("camera command {program:?}"),
                detail: if found {
                    "found (started for each call)"
                } else {
                    "not found"
                }
                .into(),
                ..Finding::default()
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
                        ok: true,
                        what: format!("{what} {name:?}"),
                        detail: format!(
                            "opens: {} Hz, {} channel(s), {:?}",
                            c.rate, c.channels, c.format
                        ),
                        ..Finding::default()
                    },
                    Err(e) => Finding {
                        ok: false,
                        what: format!("{what} {name:?}"),
                        detail: e.to_string(),
                        ..Finding::default()
                    },
                }
            }
            AudioEndpoint::TestTone | AudioEndpoint::TestBursts => Finding {
                ok: true,
                what: what.into(),
                detail: "test tone".into(),
                ..Finding::default()
            },
            AudioEndpoint::Null => Finding {
                ok: true,
                what: what.into(),
                detail: "none (null)".into(),
                ..Finding::default()
            },
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
                    ok: true,
                    what: format!("{what} line {line}"),
                    detail,
                    ..Finding::default()
                },
                Err(e) => Finding {
                    ok: false,
                    what: format!("{what} line {line}"),
                    detail: e,
                    ..Finding::default()
                },
            });
        }
    }
    if session.is_file() {
        findings.extend(matrix_findings(&config.matrix));
    }
    let problems = findings.iter().filter(|f| !f.ok).count();
    for f in &findings {
        let level = match (f.ok, f.warning) {
            (false, _) => "MISSING",
            (true, true) => "warning",
            (true, false) => "ok     ",
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
    let diagnoses = match current_thread_runtime() {
        Ok(rt) => rt.block_on(crate::matrix::diagnose(config)),
        Err(e) => {
            return vec![Finding {
                ok: false,
                what: "Matrix".into(),
                detail: e.to_string(),
                ..Finding::default()
            }]
        }
    };
    diagnoses
        .into_iter()
        .map(|d| Finding {
            ok: d.level != Level::Problem,
            warning: d.level == Level::Warning,
            what: d.what,
            detail: d.detail,
        })
        .collect()
}

fn current_thread_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the runtime", None, e))
}

/// `intercom login`: checks it may (its user owns the state directory; no session, no earlier
/// stores unless `discard_store`), asks for the password, logs in once, stores the session.
fn login(path: &Path, password_file: Option<&Path>, discard_store: bool) -> Result<(), Error> {
    let config = Config::load(path)?;
    // Warnings (an earlier store discarded, the SDK's own) on stderr; the chatter stays quiet,
    // and so does the SDK's report of a failed request, which the error below says better.
    let _ = crate::logging::init("warn,matrix_sdk::http_client=off");
    owns_state_dir(&config.matrix.state_dir)?;
    crate::matrix::prepare_login(&config.matrix, discard_store)?;
    let password = read_password(password_file, &config.matrix.user.0)?;
    let session =
        current_thread_runtime()?.block_on(crate::matrix::login(&config.matrix, &password))?;
    println!(
        "logged in as {} (device {}); the session is in {}",
        session.user_id,
        session.device_id,
        crate::matrix::session_path(&config.matrix.state_dir).display()
    );
    Ok(())
}

/// Refuses to log in as one user into another user's state directory: `sudo intercom login`
/// made a session and stores the service (another user) could not read, and it restarted in a
/// loop. A state directory not made yet is made by this user.
fn owns_state_dir(state: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(state) else {
        return Ok(());
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me {
        return Ok(());
    }
    let owner = user_name(meta.uid());
    Err(Error::Unavailable(format!(
        "{} belongs to {owner} (uid {}), but this runs as {} (uid {me}): the session and keys would be {}'s, which the service cannot read. Run it as the directory's owner: `sudo -u {owner} intercom login`",
        state.display(),
        meta.uid(),
        user_name(me),
        user_name(me),
    )))
}

/// The name of user `uid`, or the number when it has none.
fn user_name(uid: u32) -> String {
    let mut buffer = vec![0u8; 4096];
    // SAFETY: a zeroed passwd is a valid value to be filled in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: the buffer and its length agree; the strings returned point into the buffer,
    // which outlives their use below.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return uid.to_string();
    }
    // SAFETY: getpwuid_r succeeded: pw_name is a NUL-terminated string in the buffer.
    unsafe { std::ffi::CStr::from_ptr(entry.pw_name) }
        .to_string_lossy()
        .into_owned()
}

/// The password: the first line of `file`; else asked on the terminal without echo; else one
/// line of standard input. Never from the configuration.
fn read_password(file: Option<&Path>, user: &str) -> Result<String, Error> {
    let password = if let Some(file) = file {
        let text = crate::files::read_to_string(file, crate::files::MAX_SECRET_SIZE)
            .map_err(|e| Error::io("cannot read the password file", Some(file.into()), e))?;
        text.lines().next().unwrap_or_default().to_owned()
    } else if std::io::stdin().is_terminal() {
        prompt_without_echo(&format!("Password for {user}: "))
            .map_err(|e| Error::io("cannot read the password from", Some("/dev/tty".into()), e))?
    } else {
        use std::io::{BufRead, Read};
        let limit = crate::files::MAX_SECRET_SIZE;
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_line(&mut line)
            .map_err(|e| Error::io("cannot read the password from standard input", None, e))?;
        if line.len() as u64 > limit {
            return Err(Error::io(
                "cannot read the password from standard input",
                None,
                crate::files::too_large(limit),
            ));
        }
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err(Error::Unavailable(
            "no password given: nothing to log in with".into(),
        ));
    }
    Ok(password)
}

/// Asks on the terminal with echo turned off (`stty -echo`), and turns it back on afterwards.
fn prompt_without_echo(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let stty = |arg: &str| -> std::io::Result<()> {
        let status = std::process::Command::new("stty")
            .arg(arg)
            .stdin(tty.try_clone()?)
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "`stty {arg}` failed ({status})"
            )))
        }
    };
    (&tty).write_all(prompt.as_bytes())?;
    stty("-echo")?;
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let restored = stty("echo");
    (&tty).write_all(b"\n")?;
    read?;
    restored?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn devices() {
    println!("Cameras (V4L2):");
    let cams = crate::media::video_devices();
    if cams.is_empty() {
        println!("  none found");
    }
    for (node, name) in cams {
        println!("  {node}  {name}");
        for line in crate::media::describe_camera(&node) {
            println!("      {line}");
        }
    }
    println!("  test-pattern  (built in)");
    let (capture, playback) = crate::media::alsa_pcms();
    println!("ALSA capture PCMs ([audio] capture):");
    for (name, desc) in capture {
        println!("  {name}  {desc}");
    }
    println!("  test-tone, null  (built in)");
    println!("ALSA playback PCMs ([audio] playback):");
    for (name, desc) in playback {
        println!("  {name}  {desc}");
    }
    println!("  null  (built in)");
    println!("GPIO chips:");
    let chips = crate::gpio::chips();
    if chips.is_empty() {
        println!("  none found");
    }
    for c in chips {
        println!("  {}  {} ({} lines)", c.path.display(), c.label, c.lines);
        for (offset, name, consumer) in crate::gpio::named_lines(&c.path) {
            match consumer {
                Some(user) => println!("    {offset:>3}  {name}  (used by {user})"),
                None => println!("    {offset:>3}  {name}"),
            }
        }
    }
}
