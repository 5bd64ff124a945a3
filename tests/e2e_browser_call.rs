//! The reference call: two matrix-js-sdk peers in headless Chromium call each other through
//! real Synapse (with coturn wired in), and each decodes the other's video and hears its audio.
//! Later tests and benchmarks of the door are measured against exactly this.

mod harness;

use std::time::Duration;

use harness::browser::Browser;
use harness::coturn::Coturn;
use harness::netns::{isolated, isolated_as, test_name};
use harness::synapse::Synapse;
use serde_json::{json, Value};

const CONNECT: Duration = Duration::from_secs(30);

fn two_browsers_call(encrypted: bool) {
    let coturn = Coturn::start();
    let synapse = Synapse::start(Some(&coturn.synapse_settings()));
    let alice = synapse.register("alice");
    let bob = synapse.register("bob");

    let mut a = Browser::start("alice", false);
    let mut b = Browser::start("bob", false);
    for (browser, user) in [(&mut a, &alice), (&mut b, &bob)] {
        browser.call(json!({
            "cmd": "login", "homeserver": synapse.url(), "user": user.localpart,
            "password": user.password, "encryption": encrypted,
        }));
    }
    let room = a
        .call(json!({"cmd": "create_room", "invite": [bob.user_id], "encrypted": encrypted}))
        ["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.call(json!({"cmd": "join", "room_id": room}));
    a.call(json!({"cmd": "wait_member", "room_id": room, "user_id": bob.user_id}));
    b.call(json!({"cmd": "auto_answer", "enabled": true}));

    let call_id = a.call(json!({"cmd": "place_call", "room_id": room, "video": true}))["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let incoming = b.wait_event("the invite", CONNECT, |e| e["event"] == "incoming");
    assert_eq!(incoming["call_id"], call_id.as_str());
    assert_eq!(incoming["sender"], alice.user_id.as_str());

    let is_frame = |e: &Value| e["event"] == "first_frame";
    a.wait_event("alice's first remote frame", CONNECT, is_frame);
    b.wait_event("bob's first remote frame", CONNECT, is_frame);

    for browser in [&mut a, &mut b] {
        let stats = browser.wait_stats(&call_id, "video and audio flowing", CONNECT, |s| {
            s["video_frames_decoded"].as_u64().unwrap_or(0) > 10
                && s["audio_packets_received"].as_u64().unwrap_or(0) > 10
        });
        let codec = stats["video_codec"].as_str().unwrap_or("");
        assert!(
            codec.contains("H264") || codec.contains("VP8") || codec.contains("VP9"),
            "{stats}"
        );
        assert!(stats["frame_width"].as_u64().unwrap_or(0) > 0, "{stats}");
        let pair = &stats["selected_pair"];
        // Inside the namespace every candidate is loopback.
        assert!(
            pair["local_address"]
                .as_str()
                .unwrap_or("")
                .starts_with("127.")
                || pair["local_address"] == "::1",
            "{stats}"
        );
    }

    a.call(json!({"cmd": "hangup", "call_id": call_id}));
    let ended = b.wait_event("bob to see the hangup", CONNECT, |e| e["event"] == "hangup");
    assert_eq!(ended["party"], "remote", "{ended}");
    a.wait_event("alice's own hangup", CONNECT, |e| e["event"] == "hangup");
}

#[test]
fn two_browsers_call_in_a_plain_room() {
    if isolated!() {
        return;
    }
    two_browsers_call(false);
}

#[test]
fn two_browsers_call_in_an_encrypted_room() {
    if isolated!() {
        return;
    }
    two_browsers_call(true);
}

/// The harness's own guard: a network test re-runs itself by name inside its namespace, and a
/// name that matches no test (a typo, a renamed function) must fail the test, not pass it
/// having run nothing.
#[test]
fn a_namespace_rerun_that_runs_no_test_fails() {
    if std::env::var_os("INTERCOM_TEST_NETNS").is_some() {
        return;
    }
    let outcome = std::panic::catch_unwind(|| isolated_as("no_test_has_this_name"));
    let message = match outcome {
        Ok(_) => panic!("the re-run of a name that matches no test passed"),
        Err(e) => e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default(),
    };
    assert!(
        message.contains("must run exactly one test, `no_test_has_this_name`"),
        "{message}"
    );
}

/// `isolated!()` re-runs the test by the name `test_name!()` derives, so that no name is typed
/// by hand: it must be exactly what `cargo test -- --exact` matches, in a module too.
#[test]
fn the_name_a_network_test_reruns_by_is_its_own() {
    assert_eq!(test_name!(), "the_name_a_network_test_reruns_by_is_its_own");
    assert_eq!(in_a_module::name(), "in_a_module::name");
}

mod in_a_module {
    pub fn name() -> &'static str {
        super::test_name!()
    }
}
