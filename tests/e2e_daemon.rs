//! The daemon as systemd runs it: sd_notify readiness, status, watchdog and stopping, the
//! control socket, and the exit codes — through the real binary, a real notify socket and a real
//! homeserver. The other end of the calls here is a plain HTTP client sending the events
//! matrix-js-sdk sends (from tests/fixtures), so every Matrix rule is seen on the wire.

mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::client::Client;
use harness::door::{DoorHome, DoorSettings};
use harness::netns::isolated;
use harness::synapse::Synapse;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn intercom(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_intercom"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// Synapse, alice (a plain client), and the door's home with alice's room.
fn setup(incoming: &'static str) -> (Synapse, Client, DoorHome, String) {
    harness::world::with_client(DoorSettings {
        incoming,
        ..DoorSettings::default()
    })
}

/// Waits until `room` holds an event for which `matches` holds; returns it.
fn wait_event(client: &Client, room: &str, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    harness::poll(what, WAIT, || {
        client.messages(room).into_iter().find(|e| matches(e))
    })
}

fn fixture(name: &str) -> Value {
    let path = harness::root().join("tests/fixtures/js-sdk-43").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn ready_watchdog_ring_answer_select_and_clean_stop() {
    if isolated!() {
        return;
    }
    let (_synapse, alice, home, room) = setup("auto-answer");
    let mut door = home.start_joined(&[(&alice, &room)]);
    door.wait_notify("a watchdog ping", WAIT, |l| l == "WATCHDOG=1");
    door.clear_notes();

    let mut seen = std::collections::HashSet::new();
    for round in 0..2 {
        let pressed = Instant::now();
        door.ring();
        door.wait_notify("calling", WAIT, |l| l == "STATUS=Calling 1 room(s)");
        let invite = wait_event(&alice, &room, "the door's invite", |e| {
            e["type"] == "m.call.invite"
                && e["sender"] == home.user.user_id.as_str()
                && !seen.contains(e["content"]["call_id"].as_str().unwrap_or(""))
        });
        println!(
            "round {round}: invite in the room {:?} after the press",
            pressed.elapsed()
        );
        let c = &invite["content"];
        assert_eq!(c["version"], "1");
        assert!(c["lifetime"].as_u64().unwrap() >= 90_000);
        assert!(c["party_id"].as_str().is_some_and(|p| !p.is_empty()));
        assert!(c["offer"]["sdp"].as_str().unwrap().contains("m=video"));
        let call_id = c["call_id"].as_str().unwrap().to_owned();
        seen.insert(call_id.clone());

        // Alice answers with js-sdk's answer (its SDP is a real browser's).
        let mut answer = fixture("m.call.answer.json")["content"].clone();
        answer["call_id"] = json!(call_id);
        alice.send(&room, "m.call.answer", &answer);
        let select = wait_event(&alice, &room, "select_answer", |e| {
            e["type"] == "m.call.select_answer" && e["content"]["call_id"] == call_id.as_str()
        });
        assert_eq!(select["content"]["selected_party_id"], answer["party_id"]);

        let mut hangup = fixture("m.call.hangup.json")["content"].clone();
        hangup["call_id"] = json!(call_id);
        hangup["party_id"] = answer["party_id"].clone(); // the answerer hangs up
        alice.send(&room, "m.call.hangup", &hangup);
        door.wait_log("call ended", WAIT);
        door.wait_notify("idle again", WAIT, |l| l == "STATUS=Idle");
        door.clear_notes();
    }
    assert!(door.stop(), "SIGTERM ends the daemon with exit 0");
}

#[test]
fn stopping_mid_call_hangs_up_first() {
    if isolated!() {
        return;
    }
    let (_synapse, alice, home, room) = setup("auto-answer");
    let door = home.start_joined(&[(&alice, &room)]);
    door.ring();
    let invite = wait_event(&alice, &room, "the invite", |e| {
        e["type"] == "m.call.invite"
    });
    let call_id = invite["content"]["call_id"].as_str().unwrap().to_owned();
    assert!(door.stop());
    let hangup = wait_event(&alice, &room, "the door's hangup", |e| {
        e["type"] == "m.call.hangup" && e["content"]["call_id"] == call_id.as_str()
    });
    assert_eq!(hangup["content"]["reason"], "user_hangup");
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    if isolated!() {
        return;
    }
    let (_synapse, _alice, home, _room) = setup("ring");
    let first = home.start_ready();
    let second = intercom(&["run"], &home.config);
    assert_eq!(second.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another intercom daemon"));
    assert!(first.stop());
}

#[test]
fn run_without_a_session_says_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[matrix]\nhomeserver = \"http://127.0.0.1:1\"\nuser = \"@door:localhost\"\nrooms = [\"!r:localhost\"]\nstate_dir = {:?}\n[control]\nsocket = {:?}\n",
            dir.path(),
            dir.path().join("control.sock")
        ),
    )
    .unwrap();
    let out = intercom(&["run"], &config);
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("intercom login"), "{stderr}");
}

#[test]
fn ring_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[matrix]\nhomeserver = \"http://127.0.0.1:1\"\nuser = \"@door:localhost\"\nrooms = [\"!r:localhost\"]\n[control]\nsocket = {:?}\n",
            dir.path().join("control.sock")
        ),
    )
    .unwrap();
    let out = intercom(&["ring"], &config);
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the intercom daemon at"),
        "{stderr}"
    );
}

#[test]
fn a_notify_socket_nobody_reads_does_not_wedge_the_loop() {
    if isolated!() {
        return;
    }
    let (_synapse, _alice, home, _room) = setup("ring");
    // A notify socket whose short queue (10 datagrams in a new namespace) nobody drains, and a
    // watchdog that pings ten times a second: the queue is full within a second.
    let socket = home.dir.path().join("deaf-notify.sock");
    let deaf = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_intercom"))
        .args(["run", "--config"])
        .arg(&home.config)
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Readiness is the one message read.
    let mut buf = [0u8; 4096];
    deaf.set_read_timeout(Some(WAIT)).unwrap();
    let n = deaf.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // Long after the queue filled up, the loop still answers.
    let filled = Instant::now() + Duration::from_secs(3);
    harness::poll("the queue to fill", WAIT, || {
        (Instant::now() > filled).then_some(())
    });
    let out = intercom(&["ring"], &home.config);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok pressed");
}

/// `intercom run` starts with the homeserver down (no `intercom check` before it any more) and a
/// room given as an alias it cannot resolve yet: it answers `status`, which says the homeserver
/// is unreachable, and rings the room as soon as the homeserver is back.
#[test]
fn starts_with_the_homeserver_down_and_rings_once_it_is_up() {
    if isolated!() {
        return;
    }
    let mut synapse = Synapse::start(None);
    let door_user = synapse.register("door");
    let alice = Client::login(&synapse, &synapse.register("alice"));
    let room = alice.create_room(&[&door_user.user_id], false);
    let alias = "#front-door:localhost";
    alice.put(
        &format!("/directory/room/{}", harness::client::encode(alias)),
        json!({ "room_id": room }),
    );
    let home = DoorHome::new(
        &synapse,
        door_user,
        &DoorSettings {
            rooms: vec![alias.to_owned()],
            allow: vec![alice.user_id.clone()],
            ..DoorSettings::default()
        },
    );
    synapse.stop();

    let mut door = home.start_ready();
    door.wait_notify("the outage in the status", WAIT, |l| {
        l.starts_with("STATUS=Idle (homeserver unreachable")
    });
    let status = door.status(WAIT);
    assert!(
        status.starts_with("Idle (homeserver unreachable"),
        "{status}"
    );

    synapse.restart();
    home.wait_joined(&alice, &room);
    door.wait_log(&format!("room alias {alias} is {room}"), WAIT);
    door.wait_notify("the door online", WAIT, |l| l == "STATUS=Idle");
    door.ring();
    let invite = wait_event(&alice, &room, "the door's invite", |e| {
        e["type"] == "m.call.invite" && e["sender"] == home.user.user_id.as_str()
    });
    assert!(invite["content"]["offer"]["sdp"]
        .as_str()
        .is_some_and(|s| s.contains("m=video")));
    assert!(door.stop());
}

/// A camera that is not there does not keep the door from starting: the status says it is
/// missing, and a press rings with an audio call.
#[test]
fn starts_without_its_camera_and_rings_audio_only() {
    if isolated!() {
        return;
    }
    let (_synapse, alice, home, room) = harness::world::with_client(DoorSettings {
        camera_device: "/dev/no-such-camera",
        ..DoorSettings::default()
    });
    let mut door = home.start_ready();
    let missing = "camera /dev/no-such-camera missing: audio only";
    door.wait_notify("the missing camera in the status", WAIT, |l| {
        l == format!("STATUS=Idle ({missing})")
    });
    assert_eq!(door.status(WAIT), format!("Idle ({missing})"));
    let report = door.status_report();
    assert!(
        report
            .lines()
            .any(|l| l == "missing: camera /dev/no-such-camera (missing: audio only)"),
        "{report}"
    );
    home.wait_joined(&alice, &room);
    door.ring();
    let invite = wait_event(&alice, &room, "the door's invite", |e| {
        e["type"] == "m.call.invite" && e["sender"] == home.user.user_id.as_str()
    });
    let sdp = invite["content"]["offer"]["sdp"].as_str().unwrap();
    assert!(sdp.contains("m=audio") && !sdp.contains("m=video"), "{sdp}");
    assert!(door.stop());
}

/// The threads of `pid` that sleep opening a FIFO nobody writes to.
fn threads_opening_a_fifo(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("wchan"))
                        .is_ok_and(|w| w.trim() == "wait_for_partner")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Opening a microphone can hang: alsa-lib's `file` plugin opens its input without regard to
/// `SND_PCM_NONBLOCK`, and a FIFO nobody writes to never opens (a `hw` device another program
/// holds blocks the same way without the flag). While it hangs, the loop still answers the
/// control socket, and the call rings once the open is given up (with silence for sound).
#[test]
fn a_hanging_microphone_does_not_stop_the_loop() {
    if isolated!() {
        return;
    }
    let (_synapse, alice, home, room) = harness::world::with_client(DoorSettings {
        capture: "hanging_mic",
        ..DoorSettings::default()
    });
    let dir = home.dir.path();
    let fifo = dir.join("mic.fifo");
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.hanging_mic {{ type file; slave.pcm \"null\"; file \"/dev/null\"; infile \"{}\"; format \"raw\" }}\n",
            fifo.display()
        ),
    )
    .unwrap();
    let alsa = format!("/usr/share/alsa/alsa.conf:{}", conf.display());
    let mut door = home.start_with_env(&[("ALSA_CONFIG_PATH", &alsa)]);
    door.wait_ready();
    home.wait_joined(&alice, &room);
    // The FIFO is made after the start, so that the call's own open is the one that hangs.
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());

    door.ring();
    harness::poll("the microphone's open to hang", WAIT, || {
        (threads_opening_a_fifo(door.pid()) > 0).then_some(())
    });
    // Nobody ever writes to the FIFO: the open still hangs while the status is asked.
    let status = door.status(WAIT);
    assert!(status.starts_with("Calling 1 room(s)"), "{status}");
    assert!(threads_opening_a_fifo(door.pid()) > 0);

    let invite = wait_event(&alice, &room, "the door's invite", |e| {
        e["type"] == "m.call.invite" && e["sender"] == home.user.user_id.as_str()
    });
    assert!(invite["content"]["offer"]["sdp"]
        .as_str()
        .is_some_and(|s| s.contains("m=audio")));
    door.wait_log("the call goes on without the microphone", WAIT);
    assert!(door.stop());
}

/// A panic anywhere ends the daemon with SIGABRT, for systemd to restart it (the release build
/// aborts; the hook makes this test build do the same): never a call or a task that dies
/// quietly while the rest runs on. `place` is where the test hook makes it panic; `ring` presses
/// the button first, for the places a call reaches.
fn a_panic_ends_the_daemon(place: &str, ring: bool) {
    use std::os::unix::process::ExitStatusExt;
    let (_synapse, alice, home, room) = harness::world::with_client(DoorSettings::default());
    let mut door = home.start_with_env(&[("INTERCOM_TEST_PANIC", place)]);
    if ring {
        door.wait_ready();
        home.wait_joined(&alice, &room);
        door.ring();
    }
    let status = door.wait_exit(WAIT);
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
    door.drain_log();
    let text = door.log_text();
    assert!(text.contains(&format!("a test panic in {place}")), "{text}");
    assert!(
        text.contains("a panic: the daemon ends here, to be restarted"),
        "{text}"
    );
}

/// The synthetic camera panics at its first frame, on the call's encoder thread.
#[test]
fn a_panicking_camera_ends_the_daemon() {
    if isolated!() {
        return;
    }
    a_panic_ends_the_daemon("camera", true);
}

/// The call's task panics as it starts (tokio would catch it and end only the task).
#[test]
fn a_panicking_call_task_ends_the_daemon() {
    if isolated!() {
        return;
    }
    a_panic_ends_the_daemon("call", true);
}

/// The sync loop panics after its first response (tokio would catch it, and the door would run
/// on without ever ringing).
#[test]
fn a_panicking_sync_loop_ends_the_daemon() {
    if isolated!() {
        return;
    }
    a_panic_ends_the_daemon("sync", false);
}
