//! Mutated SDP offers into the WebRTC adapter: matrix-js-sdk's real offer (tests/fixtures/js-sdk-43,
//! a browser's H.264/VP8/VP9/AV1/Opus offer) with lines removed, repeated, reordered, cut or
//! garbled, handed to `Rtc` as a peer's offer the door answers. Each ends as an answer or as a
//! `Failed` event — never a panic, never silence — and every call closes without leaving a
//! task behind.
//!
//! Each case builds a real peer connection (its sockets, its ICE gathering, its certificate),
//! about 11 ms in a debug build, so CI runs 3 000 (32 s: 1 296 answered, 1 704 failed);
//! `INTERCOM_FUZZ_CASES` for more (100 000 by hand: 41 587 answered, 58 413 failed, no panic,
//! 27 minutes beside other builds);
//! `INTERCOM_FUZZ_SEED` the first seed, to replay a failure. In the network namespace with only
//! `lo`, as every network test.

mod harness;

use std::time::Duration;

use harness::netns::isolated;
use harness::rng::Rng;
use intercom::call::{CallId, RtcCommand, RtcEvent, SdpKind, SessionDescription, StreamPurpose};
use intercom::media::{AudioEndpoint, VideoDevice};
use intercom::rtc::{MediaSettings, Rtc, RtcSettings, VideoSettings};
use tokio::sync::mpsc;

const GARBAGE: &[&str] = &[
    "m=video 0 UDP/TLS/RTP/SAVPF",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 111 111",
    "a=rtpmap:111 opus/48000/2/9/9",
    "a=rtpmap:abc",
    "a=fmtp:96 profile-level-id=ffffff;packetization-mode=9",
    "a=ssrc:4294967295 cname:x",
    "a=ssrc-group:FID 1",
    "a=mid:",
    "a=group:BUNDLE 0 1 2 3 4 5 6 7 8 9",
    "a=fingerprint:sha-256 00",
    "a=setup:holdconn",
    "a=ice-ufrag:",
    "a=candidate:1 1 udp 1 127.0.0.1 99999 typ host",
    "a=extmap:99999 urn:x",
    "a=rtcp-fb:* nack",
    "a=msid:- -",
    "c=IN IP4",
    "b=AS:-1",
    "o=- 0 0 IN IP4",
    "v=1",
    "",
    "=",
    "a=\u{0}\u{fffd}",
];

fn mutate(rng: &mut Rng, offer: &str) -> String {
    let mut lines: Vec<String> = offer.lines().map(str::to_owned).collect();
    for _ in 0..1 + rng.below(6) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len() as u64) as usize;
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let j = rng.below(lines.len() as u64) as usize;
                lines.swap(i, j);
            }
            3 => {
                let cut = rng.below(lines[i].len() as u64 + 1) as usize;
                let kept: String = lines[i].chars().take(cut).collect();
                lines[i] = kept;
            }
            4 => lines.insert(i, GARBAGE[rng.below(GARBAGE.len() as u64) as usize].into()),
            5 => {
                // A number somewhere replaced with an absurd one.
                lines[i] = lines[i]
                    .split(' ')
                    .map(|w| {
                        if w.parse::<u64>().is_ok() && rng.below(2) == 0 {
                            "18446744073709551615".to_owned()
                        } else {
                            w.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            _ => {
                // Everything after a point dropped: a truncated offer.
                lines.truncate(i + 1);
            }
        }
    }
    let mut sdp = lines.join("\r\n");
    sdp.push_str("\r\n");
    sdp
}

#[test]
fn mutated_offers_end_in_an_answer_or_a_failure() {
    if isolated!() {
        return;
    }
    let cases: u64 = std::env::var("INTERCOM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let first: u64 = std::env::var("INTERCOM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5D9);
    let offer = harness::garbage::fixture("m.call.invite.json")["content"]["offer"]["sdp"]
        .as_str()
        .unwrap()
        .to_owned();
    let _ = intercom::logging::init("error");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (answered, failed) = runtime.block_on(async {
        let (tx, mut events) = mpsc::unbounded_channel();
        let settings = RtcSettings {
            ice_servers: Vec::new(),
            video: Some(VideoSettings::new(320, 240, 15)),
            media: MediaSettings {
                camera: VideoDevice::TestPattern,
                capture: AudioEndpoint::Null,
                playback: AudioEndpoint::Null,
                ..MediaSettings::synthetic()
            },
            receive_video: false,
        };
        let mut rtc = Rtc::new(settings, tx);
        let (mut answered, mut failed) = (0u64, 0u64);
        for seed in first..first + cases {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let sdp = mutate(&mut rng, &offer);
            let call = CallId(format!("fuzz{seed}"));
            rtc.command(
                &call,
                RtcCommand::CreateAnswer {
                    offer: SessionDescription {
                        kind: SdpKind::Offer,
                        sdp: sdp.clone(),
                        streams: vec![("s".into(), StreamPurpose::UserMedia)],
                    },
                    video: true,
                },
            );
            // The adapter answers or fails, and says which: never silence.
            let outcome = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    match events.recv().await {
                        Some((c, RtcEvent::LocalDescription(d))) if c == call => {
                            assert_eq!(d.kind, SdpKind::Answer, "seed {seed}");
                            return true;
                        }
                        Some((c, RtcEvent::Failed { .. })) if c == call => return false,
                        Some(_) => {}
                        None => panic!("seed {seed}: the adapter's channel closed"),
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: neither an answer nor a failure for\n{sdp}"));
            if outcome {
                answered += 1;
            } else {
                failed += 1;
            }
            rtc.command(&call, RtcCommand::Close);
        }
        // Every call's task ends.
        let mut live = rtc.live_calls();
        tokio::time::timeout(Duration::from_secs(20), live.wait_for(|n| *n == 0))
            .await
            .expect("every call closes")
            .unwrap();
        (answered, failed)
    });
    println!("{cases} mutated offers: {answered} answered, {failed} failed");
    assert!(
        answered > 0 && failed > 0,
        "the mutations reach both outcomes"
    );
}
