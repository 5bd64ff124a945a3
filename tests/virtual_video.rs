//! The door's video pacing and keyframe throttle (`call::video`) and what a failed part of a
//! call's media costs (`call::media`), on virtual time: the rules the WebRTC adapter's call task
//! carries out, without a peer connection or an encoder.

use std::time::{Duration, Instant};

use intercom::call::media::{on_media_failure, MediaPart, OnFailure};
use intercom::call::video::{Encoded, Next, Verdict, VideoPacer, KEYFRAME_MIN_INTERVAL};

const MS: Duration = Duration::from_millis(1);

fn frame(keyframe: bool, requested: bool, captured: Instant) -> Encoded {
    Encoded {
        requested_keyframe: requested,
        keyframe,
        empty: false,
        captured,
    }
}

/// A pull pacer at 15 fps that has warmed up, is connected and has sent its first keyframe
/// (captured at the returned instant).
fn connected_pull(t: Instant) -> VideoPacer {
    let mut p = VideoPacer::pull(15);
    assert_eq!(p.warm_up(), Next::Encode { keyframe: true });
    assert_eq!(p.encoded(frame(true, true, t), false), Verdict::Withhold);
    p.connected();
    assert_eq!(p.next(t, false), Next::Encode { keyframe: true });
    assert!(matches!(
        p.encoded(frame(true, true, t), true),
        Verdict::Send { .. }
    ));
    p.sent(true, t);
    p
}

#[test]
fn the_warm_up_frame_is_not_sent_and_the_first_frame_once_connected_is_a_keyframe() {
    let t = Instant::now();
    let mut p = VideoPacer::pull(15);
    assert_eq!(p.warm_up(), Next::Encode { keyframe: true });
    // The encoder is busy with the warm-up frame: a tick drops its frame.
    assert_eq!(p.next(t, true), Next::Dropped);
    assert_eq!(p.encoded(frame(true, true, t), false), Verdict::Withhold);
    p.connected();
    // At once, not at the next tick.
    assert_eq!(p.next(t + MS, false), Next::Encode { keyframe: true });
    // The encoder answered with a delta frame: it does not go first, and a keyframe is asked
    // for again.
    assert_eq!(
        p.encoded(frame(false, true, t + MS), true),
        Verdict::Withhold
    );
    assert_eq!(p.next(t + 2 * MS, false), Next::Encode { keyframe: true });
    assert_eq!(
        p.encoded(frame(true, true, t + 2 * MS), true),
        Verdict::Send {
            duration: Duration::from_secs(1) / 15
        }
    );
    p.sent(true, t + 2 * MS);
    assert!(!p.keyframes().awaiting());
    // Then deltas on the clock.
    assert_eq!(p.next(t + 70 * MS, true), Next::Encode { keyframe: false });
}

#[test]
fn a_keyframe_request_soon_after_a_keyframe_waits_for_the_interval() {
    let t = Instant::now();
    let mut p = connected_pull(t);
    p.keyframe_requested();
    // 100 ms after the last keyframe: not now, and the ticks in between carry deltas.
    assert_eq!(p.next(t + 100 * MS, false), Next::Nothing);
    assert_eq!(p.next(t + 133 * MS, true), Next::Encode { keyframe: false });
    assert_eq!(
        p.encoded(frame(false, false, t + 133 * MS), true),
        Verdict::Send { duration: 133 * MS }
    );
    p.sent(false, t + 133 * MS);
    assert_eq!(p.next(t + 134 * MS, false), Next::Nothing);
    // The first tick at or past the interval carries the keyframe.
    assert_eq!(p.next(t + 466 * MS, true), Next::Encode { keyframe: false });
    p.encoded(frame(false, false, t + 466 * MS), true);
    assert_eq!(
        p.next(t + KEYFRAME_MIN_INTERVAL + 33 * MS, true),
        Next::Encode { keyframe: true }
    );
    assert!(!p.keyframes().wanted());
}

#[test]
fn a_viewer_that_keeps_asking_gets_a_keyframe_at_most_every_interval() {
    let t0 = Instant::now();
    let mut p = connected_pull(t0);
    let mut keyframes = vec![t0];
    let tick = Duration::from_secs(1) / 15;
    let mut now = t0;
    let mut next_tick = t0 + tick;
    // A PLI every 40 ms for 5 s, the frame clock between them; the encoder answers at once.
    while now < t0 + Duration::from_secs(5) {
        now += 40 * MS;
        p.keyframe_requested();
        let mut jobs = vec![p.next(now, false)];
        while next_tick <= now {
            jobs.push(p.next(next_tick, true));
            next_tick += tick;
        }
        for job in jobs {
            if let Next::Encode { keyframe } = job {
                if keyframe {
                    keyframes.push(now);
                }
                if let Verdict::Send { .. } = p.encoded(frame(keyframe, keyframe, now), true) {
                    p.sent(keyframe, now);
                }
            }
        }
    }
    for pair in keyframes.windows(2) {
        assert!(
            pair[1] - pair[0] >= KEYFRAME_MIN_INTERVAL,
            "keyframes {:?} apart",
            pair[1] - pair[0]
        );
    }
    // And the requests are carried out, not ignored: about one every interval.
    assert!(keyframes.len() >= 9, "{} keyframes in 5 s", keyframes.len());
}

#[test]
fn a_busy_encoder_drops_the_ticks_frame_and_takes_the_next() {
    let t = Instant::now();
    let mut p = connected_pull(t);
    assert_eq!(p.next(t + 66 * MS, true), Next::Encode { keyframe: false });
    assert_eq!(p.next(t + 133 * MS, true), Next::Dropped);
    // A keyframe request while busy waits for the frame to come back.
    p.keyframe_requested();
    assert_eq!(p.next(t + 600 * MS, false), Next::Nothing);
    p.encoded(frame(false, false, t + 66 * MS), true);
    assert_eq!(p.next(t + 600 * MS, false), Next::Encode { keyframe: true });
}

#[test]
fn frames_last_from_one_capture_to_the_next() {
    let t = Instant::now();
    let mut p = connected_pull(t);
    for (i, at) in [70u32, 130, 210].into_iter().enumerate() {
        let captured = t + at * MS;
        assert_eq!(p.next(captured, true), Next::Encode { keyframe: false });
        let before = [0u32, 70, 130][i];
        assert_eq!(
            p.encoded(frame(false, false, captured), true),
            Verdict::Send {
                duration: (at - before) * MS
            }
        );
        p.sent(false, captured);
    }
}

#[test]
fn frames_rate_control_skipped_or_made_before_the_connection_are_not_sent() {
    let t = Instant::now();
    let mut p = connected_pull(t);
    assert_eq!(p.next(t + 66 * MS, true), Next::Encode { keyframe: false });
    let skipped = Encoded {
        empty: true,
        ..frame(false, false, t + 66 * MS)
    };
    assert_eq!(p.encoded(skipped, true), Verdict::Withhold);
    assert_eq!(p.next(t + 133 * MS, true), Next::Encode { keyframe: false });
    // The connection failed meanwhile: nothing goes out.
    assert_eq!(
        p.encoded(frame(false, false, t + 133 * MS), false),
        Verdict::Withhold
    );
}

#[test]
fn a_source_that_keeps_its_pace_is_only_asked_for_keyframes_and_not_too_often() {
    let t = Instant::now();
    let mut p = VideoPacer::push(30);
    assert!(!p.ticks(), "the frame clock does not drive a push source");
    assert_eq!(p.warm_up(), Next::Encode { keyframe: true });
    p.connected();
    assert_eq!(p.next(t, false), Next::Encode { keyframe: true });
    // Its frames come as they come; a delta before the first keyframe is held back.
    assert_eq!(
        p.encoded(frame(false, false, t + 10 * MS), true),
        Verdict::Withhold
    );
    // Asked again only once the interval since the last request has passed.
    assert_eq!(p.next(t + 10 * MS, false), Next::Nothing);
    assert_eq!(
        p.next(t + KEYFRAME_MIN_INTERVAL, false),
        Next::Encode { keyframe: true }
    );
    assert!(matches!(
        p.encoded(frame(true, true, t + 520 * MS), true),
        Verdict::Send { .. }
    ));
    p.sent(true, t + 520 * MS);
    // A request 2 s later, but 100 ms after a keyframe the camera sent on its own: not yet.
    assert!(matches!(
        p.encoded(frame(true, false, t + 1900 * MS), true),
        Verdict::Send { .. }
    ));
    p.sent(true, t + 1900 * MS);
    p.keyframe_requested();
    assert_eq!(p.next(t + 2000 * MS, false), Next::Nothing);
    assert_eq!(
        p.next(t + 2400 * MS, false),
        Next::Encode { keyframe: true }
    );
}

#[test]
fn a_stopped_source_gets_no_more_jobs() {
    let t = Instant::now();
    let mut p = connected_pull(t);
    p.stop();
    assert!(p.stopped() && !p.ticks());
    p.keyframe_requested();
    assert_eq!(p.next(t + Duration::from_secs(1), false), Next::Nothing);
    assert_eq!(p.next(t + Duration::from_secs(1), true), Next::Nothing);
}

#[test]
fn a_call_goes_on_without_a_failed_camera_microphone_or_peer_video() {
    for part in [
        MediaPart::Camera,
        MediaPart::Microphone,
        MediaPart::PeerVideo,
    ] {
        assert_eq!(on_media_failure(part), OnFailure::GoOnWithout, "{part:?}");
    }
}
