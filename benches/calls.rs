//! How fast and how cheaply a visitor's face and voice reach the phone: the door calling
//! matrix-js-sdk, against matrix-js-sdk calling matrix-js-sdk — same Synapse, same callee, same
//! run. Prints one table: medians and 90th percentiles, door and js-sdk side by side with their
//! ratio, and the target where there is one.
//!
//! - Call set-up, plain and encrypted rooms: from the press (or js-sdk's `placeCall`) to the
//!   invite seen by the callee, to the callee connected, to its first video frame decoded.
//! - Glass-to-glass video: the door's test pattern stamps each frame with its capture time (a
//!   row of black and white blocks, `src/media/synthetic.rs`); the callee's page reads the stamp
//!   off every frame its `<video>` presents and takes presentation time − stamp (one wall clock:
//!   everything runs on this machine). The js-sdk caller cannot use Chromium's fake camera
//!   (it has no stamp): both browsers get synthetic devices from the page (`synthetic_media`),
//!   a canvas that draws the same stamp, captured with `canvas.captureStream`, so both sides are
//!   measured the same way.
//! - One-way audio: the door's microphone is `test-bursts` (100 ms of 1 kHz at each whole second
//!   of the clock), the browsers' a WebAudio source doing the same. Caller → callee: the
//!   callee's page finds each burst's onset in the received audio (an AudioWorklet); callee →
//!   caller: the door logs each onset its speaker path is given ("audio onset from the peer at
//!   … ms"),
//!   the js-sdk caller's page finds them as the callee's does. Latency = onset − the whole
//!   second (so it is read modulo one second). Both measured from 1 s after the call connected,
//!   for `INTERCOM_BENCH_HOLD_MS` (default 3200) after it connected, plain room only (the room's
//!   encryption touches signalling, not media).
//! - Resources of the daemon (plain room): idle for `INTERCOM_BENCH_IDLE_SECS` (default 60), then
//!   in a 640×480@15 call for `INTERCOM_BENCH_CALL_SECS` (default 20): CPU (% of one core, from
//!   /proc/<pid>/stat) and RSS (VmRSS); and the bare H.264 encoder's CPU for the same amount of
//!   the same test pattern, encoded in this process at the bitrate a call starts with, for
//!   comparison (with the bit rate it produced, beside the one the call's viewer received):
//!   back to back, and paced at the frame rate as the call is (the ratio's reference).
//! - Binary sizes: the cross-built arm64 release binary
//!   (`target/cross/aarch64-unknown-linux-gnu/release/intercom`, or under
//!   `$INTERCOM_CROSS_TARGET_DIR`), and the native binary this bench ran.
//!
//! `cargo bench --bench calls` (inside a network namespace with only `lo`, which it sets up
//! itself, like the tests). `INTERCOM_BENCH_ROUNDS` sets the calls per cell (default 20). Run it
//! on a quiet machine: the browsers, Synapse and the door share its cores.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::browser::Browser;
use harness::door::{Door, DoorHome, DoorSettings};
use harness::procfs;
use harness::synapse::Synapse;
use intercom::media::h264::H264Encoder;
use intercom::media::synthetic::TestPattern;
use intercom::media::VideoSource;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const STAGES: [(&str, &str); 3] = [
    ("invite seen by the callee", "invite_received"),
    ("callee connected", "connected"),
    ("first video frame decoded", "first_frame"),
];
const CAMERA: (u32, u32, u32) = (640, 480, 15);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Milliseconds from the start of a call to each stage, as the callee's page saw them.
fn stages(timings: &Value, start: f64) -> Vec<f64> {
    STAGES
        .iter()
        .map(|(_, key)| {
            timings[*key]["wall_ms"]
                .as_f64()
                .map_or(f64::NAN, |t| t - start)
        })
        .collect()
}

/// The media latencies of one call (ms): video frames, caller → callee and callee → caller
/// audio onsets.
#[derive(Default)]
struct Media {
    video: Vec<f64>,
    forth: Vec<f64>,
    back: Vec<f64>,
    calls: usize,
}

impl Media {
    fn add(&mut self, other: Media) {
        self.video.extend(other.video);
        self.forth.extend(other.forth);
        self.back.extend(other.back);
        self.calls += 1;
    }
}

/// How late an onset at `t` (Unix ms) is after the whole second it belongs to.
fn onset_latency(t: f64) -> f64 {
    t - (t / 1000.0).floor() * 1000.0
}

/// The video frames and audio onsets a page measured after `from` (Unix ms).
fn page_media(latency: &Value, from: f64) -> (Vec<f64>, Vec<f64>) {
    let video = latency["video"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s[0].as_f64().unwrap_or(0.0) >= from)
        .filter_map(|s| s[1].as_f64())
        .collect();
    let audio = latency["audio"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .filter(|&t| t >= from)
        .map(onset_latency)
        .collect();
    (video, audio)
}

/// One room's worth of the world: the callee (auto-answering), the js-sdk caller and the door.
struct Bench {
    alice: Browser,
    bob: Browser,
    door: Door,
    reference_room: String,
    _home: DoorHome,
    /// Hold each call this long after it connected, to measure its media (None: don't).
    hold: Option<Duration>,
}

fn setup(synapse: &Synapse, encrypted: bool, hold: Option<Duration>) -> Bench {
    let tag = if encrypted { "e" } else { "p" };
    let door_user = synapse.register(&format!("door{tag}"));
    let alice_user = synapse.register(&format!("alice{tag}"));
    let bob_user = synapse.register(&format!("bob{tag}"));
    let mut alice = Browser::start("alice", false);
    let mut bob = Browser::start("bob", false);
    for (b, u) in [(&mut alice, &alice_user), (&mut bob, &bob_user)] {
        b.call(
            json!({"cmd": "login", "homeserver": synapse.url(), "user": u.localpart,
                      "password": u.password, "encryption": encrypted}),
        );
        b.call(json!({"cmd": "synthetic_media", "enabled": true}));
    }
    let door_room = alice
        .call(json!({"cmd": "create_room", "invite": [door_user.user_id], "encrypted": encrypted}))
        ["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reference_room = alice
        .call(json!({"cmd": "create_room", "invite": [bob_user.user_id], "encrypted": encrypted}))
        ["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.call(json!({"cmd": "join", "room_id": reference_room}));
    alice.call(
        json!({"cmd": "wait_member", "room_id": reference_room, "user_id": bob_user.user_id}),
    );
    let settings = DoorSettings {
        rooms: vec![door_room.clone()],
        allow: vec![alice_user.user_id.clone()],
        camera: (CAMERA.0, CAMERA.1),
        capture: "test-bursts",
        ..DoorSettings::default()
    };
    let home = DoorHome::new(synapse, door_user, &settings);
    let mut door = home.start();
    door.wait_notify("READY=1", WAIT, |l| l == "READY=1");
    door.clear_notes();
    alice.call(json!({"cmd": "wait_member", "room_id": door_room, "user_id": home.user.user_id}));
    alice.call(json!({"cmd": "auto_answer", "enabled": true}));
    Bench {
        alice,
        bob,
        door,
        reference_room,
        _home: home,
        hold,
    }
}

impl Bench {
    /// Waits for the callee's call to be fully up (and holds it if media is measured), hangs it
    /// up, and returns its id, timings and what its page measured.
    fn finish(&mut self) -> (String, Value, Value) {
        let incoming = self
            .alice
            .wait_event("the invite", WAIT, |e| e["event"] == "incoming");
        let call_id = incoming["call_id"].as_str().unwrap().to_owned();
        self.alice
            .wait_event("the first frame", WAIT, |e| e["event"] == "first_frame");
        let t = self
            .alice
            .call(json!({"cmd": "timings", "call_id": call_id}))["timings"]
            .clone();
        if let Some(hold) = self.hold {
            let until = t["connected"]["wall_ms"].as_f64().unwrap() + hold.as_millis() as f64;
            let left = until - wall_ms();
            if left > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(left / 1000.0));
            }
        }
        let latency = self
            .alice
            .call(json!({"cmd": "media_latency", "call_id": call_id}));
        self.alice
            .call(json!({"cmd": "hangup", "call_id": call_id}));
        self.alice
            .wait_event("the end of the call", WAIT, |e| e["event"] == "hangup");
        (call_id, t, latency)
    }

    fn door_call(&mut self) -> (Vec<f64>, Media) {
        self.door.drain_log();
        let mark = self.door.lines.len();
        let pressed = wall_ms();
        self.door.ring();
        let (_, t, latency) = self.finish();
        self.door_idle();
        let from = t["connected"]["wall_ms"].as_f64().unwrap_or(f64::MAX) + 1000.0;
        let (video, forth) = page_media(&latency, from);
        self.door.drain_log();
        let back = self.door.lines[mark..]
            .iter()
            .filter_map(|l| {
                let rest = l.split("audio onset from the peer at ").nth(1)?;
                rest.split_whitespace().next()?.parse::<f64>().ok()
            })
            .filter(|&t| t >= from)
            .map(onset_latency)
            .collect();
        (
            stages(&t, pressed),
            Media {
                video,
                forth,
                back,
                calls: 1,
            },
        )
    }

    /// Waits for the end of the door's call (its log), then for its idle status.
    fn door_idle(&mut self) {
        self.door.wait_log("call ended", WAIT);
        self.door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
        self.door.clear_notes();
    }

    fn reference_call(&mut self) -> (Vec<f64>, Media) {
        let placed = self
            .bob
            .call(json!({"cmd": "place_call", "room_id": self.reference_room, "video": true}));
        let start = placed["t_ms"].as_f64().unwrap();
        let (call_id, t, latency) = self.finish();
        self.bob
            .wait_event("the caller's end of the call", WAIT, |e| {
                e["event"] == "hangup"
            });
        let from = t["connected"]["wall_ms"].as_f64().unwrap_or(f64::MAX) + 1000.0;
        let (video, forth) = page_media(&latency, from);
        let (_, back) = page_media(
            &self
                .bob
                .call(json!({"cmd": "media_latency", "call_id": call_id})),
            from,
        );
        (
            stages(&t, start),
            Media {
                video,
                forth,
                back,
                calls: 1,
            },
        )
    }

    /// The daemon's CPU (% of one core) over `secs` from now, and then its memory.
    fn cost(&self, secs: u64) -> Cost {
        let pid = self.door.pid();
        let (cpu0, t0) = (procfs::cpu_time(pid), Instant::now());
        std::thread::sleep(Duration::from_secs(secs));
        let cpu = (procfs::cpu_time(pid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
        let mb = |field| procfs::status_kb(pid, field) as f64 / 1024.0;
        Cost {
            cpu: cpu * 100.0,
            rss: mb("VmRSS"),
            anonymous: mb("RssAnon"),
            files: mb("RssFile"),
            video_bitrate: 0,
        }
    }

    /// A door call held for `secs` of measurement (after 2 s to settle): the daemon's cost.
    fn cost_in_call(&mut self, secs: u64) -> Cost {
        self.door.ring();
        let incoming = self
            .alice
            .wait_event("the invite", WAIT, |e| e["event"] == "incoming");
        let call_id = incoming["call_id"].as_str().unwrap().to_owned();
        self.alice
            .wait_event("the first frame", WAIT, |e| e["event"] == "first_frame");
        std::thread::sleep(Duration::from_secs(2));
        let stats0 = self.alice.call(json!({"cmd": "stats", "call_id": call_id}));
        let mut cost = self.cost(secs);
        let stats = self.alice.call(json!({"cmd": "stats", "call_id": call_id}));
        let frames = |s: &Value| s["video_frames_decoded"].as_f64().unwrap_or(0.0);
        assert!(
            frames(&stats) - frames(&stats0) > secs as f64 * 10.0,
            "the door's video did not flow through the measurement: {stats0} then {stats}"
        );
        // What the viewer received over the window (its clock), in bit/s.
        let (bytes, at) = (
            |s: &Value| s["video_bytes_received"].as_f64().unwrap_or(0.0),
            |s: &Value| s["video_stats_at_ms"].as_f64().unwrap_or(0.0),
        );
        cost.video_bitrate =
            ((bytes(&stats) - bytes(&stats0)) * 8.0 / ((at(&stats) - at(&stats0)) / 1000.0)) as u32;
        self.alice
            .call(json!({"cmd": "hangup", "call_id": call_id}));
        self.alice
            .wait_event("the end of the call", WAIT, |e| e["event"] == "hangup");
        self.door_idle();
        cost
    }
}

/// What the daemon costs: CPU (% of one core) and resident memory (MB): all of it, its own
/// (anonymous) and the files it maps (its executable's code and the libraries': shared, and
/// given back by the kernel under memory pressure).
#[derive(Clone, Copy)]
struct Cost {
    cpu: f64,
    rss: f64,
    anonymous: f64,
    files: f64,
    /// The video the viewer received meanwhile (bit/s, RTP payload); 0 when not in a call.
    video_bitrate: u32,
}

/// The bare encoder's CPU (% of one core) for the test pattern at the call's size and rate,
/// aiming at `bitrate`: two seconds of frames made beforehand, encoded over and over, timed
/// alone on this thread for `secs` of video. `paced`: each frame when the frame clock says, as
/// a camera delivers them and as the call encodes them (between frames the encoder's data
/// leaves the caches, which costs it about twice the CPU of encoding back to back); otherwise
/// back to back. Returns the bit rate it produced too (bit/s).
fn bare_encoder_cpu(bitrate: u32, secs: u64, paced: bool) -> (f64, u32) {
    let (w, h, fps) = CAMERA;
    let mut pattern = TestPattern::new(w, h, fps);
    let mut frames: Vec<_> = (0..2 * fps)
        .map(|_| pattern.next_frame().unwrap())
        .collect();
    let mut encoder = H264Encoder::new(w, h, fps, bitrate).unwrap();
    let n = secs * fps as u64;
    let (cpu0, start) = (procfs::thread_cpu_time(), Instant::now());
    let mut bytes = 0;
    for i in 0..n {
        let pts = Duration::from_secs(i) / fps;
        if paced {
            std::thread::sleep((start + pts).saturating_duration_since(Instant::now()));
        }
        let frame = &mut frames[(i % (2 * fps as u64)) as usize];
        frame.pts = pts;
        bytes += encoder.encode(frame, false).unwrap().len();
    }
    let cpu = procfs::thread_cpu_time() - cpu0;
    assert!(bytes > 0, "the encoder produced nothing");
    (
        cpu.as_secs_f64() / secs as f64 * 100.0,
        (bytes as u64 * 8 / secs) as u32,
    )
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1);
    v[i]
}

/// One line of the table.
fn row(what: &str, door: &[f64], reference: Option<&[f64]>, unit: &str, target: &str) {
    let cell = |v: f64| {
        if v.is_finite() {
            format!("{v:.0} {unit}")
        } else {
            "—".to_owned()
        }
    };
    let (dm, dp) = (percentile(door, 0.5), percentile(door, 0.9));
    let (rm, rp, ratio) = match reference {
        Some(r) => {
            let (m, p) = (percentile(r, 0.5), percentile(r, 0.9));
            (cell(m), cell(p), format!("{:.2}", dm / m))
        }
        None => ("—".into(), "—".into(), "—".into()),
    };
    println!(
        "| {what} | {} | {} | {rm} | {rp} | {ratio} | {target} |",
        cell(dm),
        cell(dp)
    );
}

/// One line of the table for a single measurement.
fn single(what: &str, value: String, target: &str) {
    println!("| {what} | {value} | — | — | — | — | {target} |");
}

/// The size of a binary in MB, and whether it still has a symbol table.
fn binary(path: &std::path::Path) -> Option<String> {
    let data = std::fs::read(path).ok()?;
    let symbols = data.windows(8).any(|w| w == b".symtab\0");
    Some(format!(
        "{:.1} MB{}",
        data.len() as f64 / 1e6,
        if symbols { " (not stripped)" } else { "" }
    ))
}

fn header(rounds: usize) {
    let (model, cores) = procfs::cpu_model();
    let version = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    let js_sdk: Value = std::fs::read_to_string(
        harness::root().join("tests/harness/web/node_modules/matrix-js-sdk/package.json"),
    )
    .ok()
    .and_then(|t| serde_json::from_str(&t).ok())
    .unwrap_or_default();
    println!("\ncalls: the door (intercom {}, synthetic {}x{}@{} camera, tone-burst microphone) vs matrix-js-sdk {} calling the same matrix-js-sdk callee",
        env!("CARGO_PKG_VERSION"), CAMERA.0, CAMERA.1, CAMERA.2, js_sdk["version"].as_str().unwrap_or("?"));
    println!(
        "machine: {model}, {cores} logical CPUs; {}; {}; {}",
        version("uname", &["-sr"]),
        version("rustc", &["--version"]),
        version("/usr/bin/chromium", &["--version"]),
    );
    println!("{rounds} calls per cell, alternating; Synapse and both browsers on loopback on the same machine; both browsers use the page's synthetic camera and microphone; set-up times from the press / placeCall\n");
}

fn main() {
    if harness::netns::isolated_program() {
        return;
    }
    let rounds: usize = env_or("INTERCOM_BENCH_ROUNDS", 20);
    let idle_secs: u64 = env_or("INTERCOM_BENCH_IDLE_SECS", 60);
    let call_secs: u64 = env_or("INTERCOM_BENCH_CALL_SECS", 20);
    let hold = Duration::from_millis(env_or("INTERCOM_BENCH_HOLD_MS", 3200));
    header(rounds);
    let synapse = Synapse::start(None);
    let mut lines: Vec<Box<dyn FnOnce()>> = Vec::new();
    let mut resources = None;
    for encrypted in [false, true] {
        let room = if encrypted { "encrypted" } else { "plain" };
        let mut b = setup(&synapse, encrypted, (!encrypted).then_some(hold));
        if !encrypted {
            // Settle: the first sync's work is done by READY, the key upload maybe not.
            std::thread::sleep(Duration::from_secs(3));
            let idle = b.cost(idle_secs);
            let call = b.cost_in_call(call_secs);
            resources = Some((idle, call));
        }
        let (mut door, mut reference) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
        let (mut door_media, mut reference_media) = (Media::default(), Media::default());
        for _ in 0..rounds {
            let (t, m) = b.door_call();
            for (i, v) in t.into_iter().enumerate() {
                door[i].push(v);
            }
            door_media.add(m);
            let (t, m) = b.reference_call();
            for (i, v) in t.into_iter().enumerate() {
                reference[i].push(v);
            }
            reference_media.add(m);
        }
        for (i, (label, _)) in STAGES.iter().enumerate() {
            let (d, r) = (door[i].clone(), reference[i].clone());
            let what = format!("{room}: {label}");
            lines.push(Box::new(move || row(&what, &d, Some(&r), "ms", "")));
        }
        if !encrypted {
            let (d, r) = (door_media, reference_media);
            let n = format!(
                "{} calls; {} / {} frames",
                d.calls,
                d.video.len(),
                r.video.len()
            );
            lines.push(Box::new(move || {
                row(
                    &format!("glass-to-glass video ({n})"),
                    &d.video,
                    Some(&r.video),
                    "ms",
                    "≤ 150 ms",
                );
                row(
                    &format!(
                        "audio caller → callee ({} / {} bursts)",
                        d.forth.len(),
                        r.forth.len()
                    ),
                    &d.forth,
                    Some(&r.forth),
                    "ms",
                    "≤ 100 ms",
                );
                row(
                    &format!(
                        "audio callee → caller ({} / {} bursts)",
                        d.back.len(),
                        r.back.len()
                    ),
                    &d.back,
                    Some(&r.back),
                    "ms",
                    "≤ 100 ms",
                );
            }));
        }
        let Bench { door, .. } = b;
        assert!(door.stop(), "the door stops cleanly");
    }
    let (idle, call) = resources.unwrap();
    let (w, h, fps) = CAMERA;
    // The encoder at the target a call starts with (the viewer's feedback moves the call's),
    // for a minute of video back to back and for half a minute paced.
    let bitrate = H264Encoder::default_bitrate(w, h, fps);
    let (tight, tight_bitrate) = bare_encoder_cpu(bitrate, 60, false);
    let (bare, bare_bitrate) = bare_encoder_cpu(bitrate, 30, true);

    println!(
        "| measure | door median | door p90 | js-sdk median | js-sdk p90 | door / js-sdk | target |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for line in lines {
        line();
    }
    single(
        &format!("daemon idle ({idle_secs} s): CPU of one core"),
        format!("{:.2} %", idle.cpu),
        "≤ 0.2 %",
    );
    single("daemon idle: RSS", format!("{:.1} MB", idle.rss), "≤ 25 MB");
    single(
        "daemon idle: RSS anonymous / file-backed",
        format!("{:.1} / {:.1} MB", idle.anonymous, idle.files),
        "",
    );
    single(
        &format!(
            "daemon in a {}x{}@{} call ({call_secs} s): CPU of one core",
            CAMERA.0, CAMERA.1, CAMERA.2
        ),
        format!("{:.1} %", call.cpu),
        "",
    );
    single(
        "daemon in the call: RSS",
        format!("{:.1} MB", call.rss),
        "≤ 40 MB",
    );
    single(
        "daemon in the call: RSS anonymous / file-backed",
        format!("{:.1} / {:.1} MB", call.anonymous, call.files),
        "",
    );
    single(
        "daemon in the call: video received by the viewer",
        format!("{} kbit/s", call.video_bitrate / 1000),
        "",
    );
    single(
        "bare H.264 encoder on the same frames, back to back: CPU of one core (its bit rate)",
        format!("{tight:.1} % ({} kbit/s)", tight_bitrate / 1000),
        "",
    );
    single(
        &format!("bare H.264 encoder on the same frames, paced at {fps} fps: CPU of one core (its bit rate)"),
        format!("{bare:.1} % ({} kbit/s)", bare_bitrate / 1000),
        "",
    );
    single(
        "daemon in the call / bare encoder paced (CPU)",
        format!("{:.2}", call.cpu / bare),
        "≤ 1.3",
    );
    let cross_dir = std::env::var_os("INTERCOM_CROSS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| harness::root().join("target/cross"));
    single(
        "arm64 release binary (stripped)",
        binary(&cross_dir.join("aarch64-unknown-linux-gnu/release/intercom"))
            .unwrap_or_else(|| "not built (run cross/build)".into()),
        "",
    );
    single(
        &format!(
            "native {} binary (bench profile: the release build, not stripped)",
            std::env::consts::ARCH
        ),
        binary(std::path::Path::new(env!("CARGO_BIN_EXE_intercom")))
            .unwrap_or_else(|| "missing".into()),
        "",
    );
}
