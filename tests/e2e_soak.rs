//! Endurance: many calls in a row with one door daemon, alternating door → matrix-js-sdk (a
//! press; the browser answers) and matrix-js-sdk → door (the door answers by itself), each with
//! media both ways, hung up by either side in turn — with faults in between: Synapse restarted
//! while the door is idle, the browser killed mid-call, and a burst of 50 garbage and stranger
//! `m.call.*` events. No call may fail, and the daemon must not grow: its open file descriptors
//! (but its HTTP connections to Synapse) after the last call are those after a call of the same
//! kind from call 10 on (call 12 of 20), and in a run of 100 calls or more its resident memory too
//! (within 1 MB).
//!
//! `INTERCOM_SOAK_CALLS` sets the number of calls (default 20, what `cargo test` runs; at least
//! 18). The long run, by hand:
//! `INTERCOM_SOAK_CALLS=200 cargo test --profile bench --test e2e_soak -- --nocapture`.

mod harness;

use std::time::{Duration, Instant};

use harness::browser::Browser;
use harness::client::Client;
use harness::door::{Door, DoorSettings};
use harness::netns::isolated;
use harness::procfs;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// The resource comparison starts from the first call after this one that is of the same kind
/// as the last (the kinds cycle every four calls: direction × who hangs up). Same kinds, because
/// the daemon's footprint after a call depends on its kind: after a call the browser hung up it
/// holds one more descriptor and some megabytes until the next call.
const BASELINE: usize = 10;
/// Resident memory may differ this much between the baseline and the end...
const RSS_SLACK_KB: i64 = 1024;
/// ...in a run of at least this many calls. Over CI's 20 calls the daemon's resident memory still
/// creeps up while caches warm (SQLite's page caches among them), a few hundred kB to over a
/// megabyte in a debug build, so a short run cannot tell warming from a leak: it prints the
/// figures, and asserts the open file descriptors.
const RSS_CHECKED_FROM: usize = 100;

/// The faults, by call number modulo 10: each happens before the baseline (warming up whatever
/// it needs) and again after it, and every ten calls in a long run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    SynapseRestart,
    Garbage,
    BrowserKilled,
}

fn fault_after(call: usize) -> Option<Fault> {
    match call % 10 {
        2 => Some(Fault::SynapseRestart),
        4 => Some(Fault::Garbage),
        6 => Some(Fault::BrowserKilled),
        _ => None,
    }
}

struct Soak {
    w: harness::world::BrowserWorld,
    door: Door,
    /// Alice's second device, a plain HTTP client, and mallory (not on the allow list).
    alice_http: Client,
    mallory: Client,
    browsers_started: usize,
    /// The daemon's open file descriptors when idle before the first call (see [`unpooled`]).
    idle_fds: usize,
    hs_port: u16,
    last_press: Option<Instant>,
}

impl Soak {
    /// Presses the door's button. The door merges presses less than 1.5 s apart into one (a
    /// visitor mashing the button), and no event tells when that time is over: a press that
    /// follows a press (one that hung up) waits for it.
    fn press(&mut self) {
        if let Some(last) = self.last_press {
            let merge = Duration::from_millis(1600);
            if last.elapsed() < merge {
                std::thread::sleep(merge - last.elapsed());
            }
        }
        self.door.ring();
        self.last_press = Some(Instant::now());
    }

    fn door_id(&self) -> String {
        self.w.home.user.user_id.clone()
    }

    /// Alice answers only the door's calls (a stranger's invites for the room must not be
    /// answered).
    fn alice_answers_the_door(&mut self) {
        let door = self.door_id();
        self.w
            .alice
            .call(json!({"cmd": "auto_answer", "enabled": true, "from": door}));
    }

    /// Starts one call, either way, and waits until media flows both ways in the browser.
    /// Returns the call id.
    fn connect(&mut self, door_calls: bool) -> String {
        let door = self.door_id();
        let call_id = if door_calls {
            self.press();
            let incoming = self.w.alice.wait_event("the door's invite", WAIT, |e| {
                e["event"] == "incoming" && e["sender"] == door.as_str()
            });
            incoming["call_id"].as_str().unwrap().to_owned()
        } else {
            self.w.alice.call(
                json!({"cmd": "place_call", "room_id": self.w.room, "video": true,
                             "invitee": door}),
            )["call_id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        self.w
            .alice
            .wait_event("the door's first frame", WAIT, |e| {
                e["event"] == "first_frame" && e["call_id"] == call_id.as_str()
            });
        let stats = self
            .w
            .alice
            .wait_stats(&call_id, "media both ways", WAIT, |s: &Value| {
                // Over a second of audio both ways: Chromium's fake microphone beeps once a
                // second, and the door must hear a beep.
                s["video_frames_decoded"].as_u64().unwrap_or(0) >= 1
                    && s["audio_packets_received"].as_u64().unwrap_or(0) > 60
                    && s["audio_packets_sent"].as_u64().unwrap_or(0) > 60
            });
        assert!(
            stats["video_codec"].as_str().unwrap_or("").contains("H264"),
            "{stats}"
        );
        self.door
            .wait_notify("in call", WAIT, |l| l.starts_with("STATUS=In call with"));
        call_id
    }

    /// One whole call: connected, media checked both ways, hung up by `door_hangs_up`'s side.
    fn call(&mut self, n: usize, door_calls: bool, door_hangs_up: bool) {
        let call_id = self.connect(door_calls);
        if door_hangs_up {
            // press_during_call = "hangup"
            self.press();
        } else {
            self.w
                .alice
                .call(json!({"cmd": "hangup", "call_id": call_id}));
        }
        let media = self.door.wait_log("call media:", WAIT);
        let rms: f64 = media
            .rsplit("rms=")
            .next()
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(rms > 0.0, "call {n}: the door heard nothing: {media}");
        let ended = self.door.wait_log("call ended", WAIT);
        assert!(
            ended.contains(&format!("remote: {}", !door_hangs_up)),
            "call {n}: {ended}"
        );
        let hangup = self
            .w
            .alice
            .wait_event("alice's end of the call", WAIT, |e| {
                e["event"] == "hangup" && e["call_id"] == call_id.as_str()
            });
        let party = if door_hangs_up { "remote" } else { "local" };
        assert_eq!(hangup["party"], party, "call {n}: {hangup}");
        self.idle();
    }

    /// Waits for the door to be idle and the call's media released (closing a peer connection
    /// finishes after the status changes; the memory is measured after that), then for no more
    /// descriptors open than before the first call; at most 10 s.
    fn idle(&mut self) {
        self.door
            .wait_notify("idle", WAIT, |l| l.starts_with("STATUS=Idle"));
        self.door.clear_notes();
        self.door.wait_log("media released: no call left", WAIT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while unpooled(&procfs::open_fds_described(self.door.pid(), self.hs_port)) > self.idle_fds
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.door.drain_log();
    }

    fn synapse_restart(&mut self) {
        self.w.synapse.stop();
        self.door.wait_log("homeserver unreachable", WAIT);
        self.w.synapse.restart();
        self.door.wait_log("homeserver reachable again", WAIT);
        self.door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
        self.door.clear_notes();
    }

    fn garbage(&mut self) {
        let door = self.door_id();
        self.w.alice.call(
            json!({"cmd": "invite", "room_id": self.w.room, "user_id": self.mallory.user_id}),
        );
        self.mallory.join(&self.w.room);
        self.door.drain_log();
        let burst = harness::garbage::burst(&self.alice_http, &self.mallory, &door);
        burst.send(&self.w.room);
        harness::poll("the door's reject of the last invite", WAIT, || {
            self.alice_http
                .messages(&self.w.room)
                .into_iter()
                .find(|e| {
                    e["type"] == "m.call.reject" && e["content"]["call_id"] == burst.last.as_str()
                })
        });
        self.mallory.leave(&self.w.room);
        let rejects = self
            .alice_http
            .messages(&self.w.room)
            .into_iter()
            .filter(|e| {
                e["sender"] == door.as_str()
                    && e["type"] == "m.call.reject"
                    && burst
                        .for_door
                        .iter()
                        .any(|id| e["content"]["call_id"] == id.as_str())
            })
            .count();
        assert_eq!(
            rejects,
            burst.for_door.len(),
            "one reject per stranger's call"
        );
        let lines = self.door.drain_log();
        for status in [
            "status: Ringing",
            "status: Answering",
            "status: Connecting",
            "status: In call",
        ] {
            assert!(
                !lines.iter().any(|l| l.contains(status)),
                "{status} during the garbage: {lines:?}"
            );
        }
    }

    fn kill_browser_mid_call(&mut self) {
        self.connect(true);
        // The browser dies: no hangup; only the media path tells.
        let fresh = self.fresh_browser();
        drop(std::mem::replace(&mut self.w.alice, fresh));
        let ended = self.door.wait_log("call ended", WAIT);
        assert!(ended.contains("IceFailed"), "{ended}");
        self.idle();
    }

    /// A new browser for alice, logged in, answering the door. (Started before the old one is
    /// dropped, so the swap is instant.)
    fn fresh_browser(&mut self) -> Browser {
        self.browsers_started += 1;
        let mut b = Browser::start(&format!("alice-{}", self.browsers_started), false);
        b.call(json!({"cmd": "login", "homeserver": self.w.synapse.url(),
                   "user": self.w.alice_user.localpart,
                   "password": self.w.alice_user.password, "encryption": false}));
        let door = self.door_id();
        b.call(json!({"cmd": "auto_answer", "enabled": true, "from": door}));
        b
    }
}

/// Descriptors the SQLite stores may hold at most: four stores (state, crypto, event cache,
/// media), each with its writer and up to `STORE_POOL` pooled readers, each open on the database
/// and its write-ahead log, plus one shared-memory index a store.
const STORE_FDS_MAX: usize = 4 * ((1 + intercom::matrix::STORE_POOL) * 2 + 1);

/// How many of `fds` (from [`procfs::open_fds_described`], which leaves out the HTTP client's
/// pooled connections to Synapse) are not the SQLite stores' pooled ones either.
fn unpooled(fds: &[String]) -> usize {
    fds.iter().filter(|d| !procfs::is_store_file(d)).count()
}

#[test]
fn soak() {
    if isolated!() {
        return;
    }
    let calls: usize = std::env::var("INTERCOM_SOAK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    assert!(
        calls >= BASELINE + 8,
        "INTERCOM_SOAK_CALLS must be at least 18"
    );
    let t0 = Instant::now();
    let settings = DoorSettings {
        incoming: "auto-answer",
        press_during_call: "hangup",
        ..DoorSettings::default()
    };
    let mut w = harness::world::with_browser(false, None, false, settings);
    let mut door = w.home.start();
    door.wait_notify("READY=1", WAIT, |l| l == "READY=1");
    w.alice
        .call(json!({"cmd": "wait_member", "room_id": w.room, "user_id": w.home.user.user_id}));
    let alice_http = Client::login(&w.synapse, &w.alice_user);
    let mallory = Client::login(&w.synapse, &w.synapse.register("mallory"));
    // The daemon's HTTP connections to Synapse come and go with its client's pool: not counted.
    let hs_port: u16 = w
        .synapse
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let idle_fds = unpooled(&procfs::open_fds_described(door.pid(), hs_port));
    let mut soak = Soak {
        w,
        door,
        alice_http,
        mallory,
        browsers_started: 0,
        idle_fds,
        hs_port,
        last_press: None,
    };
    soak.alice_answers_the_door();

    let pid = soak.door.pid();
    let mut baseline = None;
    for n in 1..=calls {
        let door_calls = n % 2 == 1;
        let door_hangs_up = (n / 2) % 2 == 1;
        soak.call(n, door_calls, door_hangs_up);
        let (rss, fds) = (
            procfs::rss_kb(pid),
            procfs::open_fds_described(pid, hs_port),
        );
        println!(
            "call {n:3} ({}, {} hung up): rss {rss} kB (anonymous {} kB, files {} kB), {} fds, {:?}",
            if door_calls {
                "door → browser"
            } else {
                "browser → door"
            },
            if door_hangs_up { "door" } else { "browser" },
            procfs::status_kb(pid, "RssAnon"),
            procfs::status_kb(pid, "RssFile"),
            fds.len(),
            t0.elapsed()
        );
        if n >= BASELINE && n % 4 == calls % 4 && baseline.is_none() {
            baseline = Some((n, rss, fds.clone()));
        }
        if n == BASELINE {
            println!("  after call {BASELINE}: {rss} kB, {} fds", fds.len());
        }
        if n < calls {
            match fault_after(n) {
                Some(Fault::SynapseRestart) => soak.synapse_restart(),
                Some(Fault::Garbage) => soak.garbage(),
                Some(Fault::BrowserKilled) => soak.kill_browser_mid_call(),
                None => {}
            }
            if let Some(f) = fault_after(n) {
                println!("  after call {n}: {f:?} ({:?})", t0.elapsed());
            }
        }
    }
    let (rss, fds) = (
        procfs::rss_kb(pid),
        procfs::open_fds_described(pid, hs_port),
    );
    let (base, base_rss, base_fds) = baseline.unwrap();
    println!(
        "soak: {calls} calls in {:?}; after call {base}: {base_rss} kB, {} fds; after call {calls}: {rss} kB, {} fds",
        t0.elapsed(),
        base_fds.len(),
        fds.len()
    );
    // The SQLite stores' pooled connections may open as reads overlap, up to the pool's bound;
    // everything else must be as it was after the baseline call.
    let stores: Vec<&String> = fds.iter().filter(|d| procfs::is_store_file(d)).collect();
    assert!(
        stores.len() <= STORE_FDS_MAX,
        "{} descriptors on the SQLite stores, more than their pools allow ({STORE_FDS_MAX}):\n{}",
        stores.len(),
        fds.join("\n")
    );
    assert_eq!(
        unpooled(&fds),
        unpooled(&base_fds),
        "open file descriptors changed; after call {base}:\n{}\nafter call {calls}:\n{}",
        base_fds.join("\n"),
        fds.join("\n")
    );
    if calls >= RSS_CHECKED_FROM {
        assert!(
            rss as i64 - base_rss as i64 <= RSS_SLACK_KB,
            "resident memory grew from {base_rss} kB to {rss} kB"
        );
    } else {
        println!(
            "soak: resident memory {:+} kB from call {base} to call {calls} (bounded only in runs of {RSS_CHECKED_FROM} calls or more)",
            rss as i64 - base_rss as i64
        );
    }
    let Soak { door, .. } = soak;
    assert!(door.stop(), "the door stops cleanly");
}
