//! How fast a visitor's face reaches the phone: the door calling matrix-js-sdk, against
//! matrix-js-sdk calling matrix-js-sdk — same Synapse, same callee, same run — in plain and
//! encrypted rooms. Prints a table of medians and 90th percentiles, and the ratios.
//!
//! `cargo bench --bench calls` (inside a network namespace with only `lo`, which it sets up
//! itself, like the tests). `INTERCOM_BENCH_ROUNDS` sets the calls per cell (default 20).

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::browser::Browser;
use harness::door::{Door, DoorHome, DoorSettings};
use harness::synapse::Synapse;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const STAGES: [(&str, &str); 3] = [
    ("invite seen by the callee", "invite_received"),
    ("callee connected", "connected"),
    ("first video frame decoded", "first_frame"),
];

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

/// One room's worth of the world: the callee (auto-answering), the js-sdk caller and the door.
struct Bench {
    alice: Browser,
    bob: Browser,
    door: Door,
    reference_room: String,
    _home: DoorHome,
}

fn setup(synapse: &Synapse, encrypted: bool) -> Bench {
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
        camera: (640, 480),
        ..DoorSettings::default()
    };
    let home = DoorHome::new(synapse, door_user, &settings);
    let mut door = home.start();
    door.wait_notify("READY=1", WAIT, |l| l == "READY=1");
    alice.call(json!({"cmd": "wait_member", "room_id": door_room, "user_id": home.user.user_id}));
    alice.call(json!({"cmd": "auto_answer", "enabled": true}));
    Bench {
        alice,
        bob,
        door,
        reference_room,
        _home: home,
    }
}

impl Bench {
    /// Waits for the callee's call to be fully up, hangs it up, and returns its timings.
    fn finish(&mut self) -> Value {
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
        self.alice
            .call(json!({"cmd": "hangup", "call_id": call_id}));
        self.alice
            .wait_event("the end of the call", WAIT, |e| e["event"] == "hangup");
        t
    }

    fn door_call(&mut self) -> Vec<f64> {
        let pressed = wall_ms();
        self.door.ring();
        let t = self.finish();
        self.door.wait_notify("idle", WAIT, |l| l == "STATUS=Idle");
        self.door.clear_notes();
        stages(&t, pressed)
    }

    fn reference_call(&mut self) -> Vec<f64> {
        let placed = self
            .bob
            .call(json!({"cmd": "place_call", "room_id": self.reference_room, "video": true}));
        let start = placed["t_ms"].as_f64().unwrap();
        let t = self.finish();
        self.bob
            .wait_event("the caller's end of the call", WAIT, |e| {
                e["event"] == "hangup"
            });
        stages(&t, start)
    }
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

fn main() {
    if harness::netns::isolated("bench") {
        return;
    }
    let rounds: usize = std::env::var("INTERCOM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let synapse = Synapse::start(None);
    println!("\ncalls: door (intercom, synthetic 640x480@15 camera) vs matrix-js-sdk 43 calling the same matrix-js-sdk callee");
    println!("{rounds} calls per cell, alternating; Synapse 1.163.2 and Chromium on loopback; times from the press / placeCall\n");
    println!(
        "| room | stage | door median | door p90 | js-sdk median | js-sdk p90 | door / js-sdk |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for encrypted in [false, true] {
        let mut b = setup(&synapse, encrypted);
        let (mut door, mut reference) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
        for _ in 0..rounds {
            for (i, v) in b.door_call().into_iter().enumerate() {
                door[i].push(v);
            }
            for (i, v) in b.reference_call().into_iter().enumerate() {
                reference[i].push(v);
            }
        }
        for (i, (label, _)) in STAGES.iter().enumerate() {
            let (dm, rm) = (percentile(&door[i], 0.5), percentile(&reference[i], 0.5));
            println!(
                "| {} | {label} | {dm:.0} ms | {:.0} ms | {rm:.0} ms | {:.0} ms | {:.2} |",
                if encrypted { "encrypted" } else { "plain" },
                percentile(&door[i], 0.9),
                percentile(&reference[i], 0.9),
                dm / rm
            );
        }
        let Bench { door, .. } = b;
        assert!(door.stop(), "the door stops cleanly");
    }
}
