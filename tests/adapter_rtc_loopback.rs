//! The WebRTC adapter against itself: two `Rtc`s in one process (the door offers, the "peer"
//! answers), their signalling carried by the test, in a network namespace with only `lo`.
//! Media really flows: the peer hears the door's tone and receives its H.264, the door hears the
//! peer's tone. A raw webrtc peer renegotiates (plain and with an ICE restart). Failures are
//! events, and a hundred closes leave no task, thread or socket behind.

mod harness;

use std::time::{Duration, Instant};

use harness::netns::isolated;
use intercom::call::{
    CallId, Candidate, ConnectionState, RtcCommand, RtcEvent, SdpKind, SessionDescription,
    StreamPurpose,
};
use intercom::media::{AudioEndpoint, VideoDevice};
use intercom::rtc::{CallStats, IceServer, MediaSettings, Rtc, RtcSettings, VideoSettings};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    // Warnings of the adapter and of webrtc go to stderr (RUST_LOG overrides).
    let _ = intercom::logging::init("warn");
    // The daemon's kind of runtime: everything must work on one thread.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn settings(video: bool) -> RtcSettings {
    RtcSettings {
        ice_servers: Vec::new(),
        video: video.then_some(VideoSettings::new(640, 480, 15)),
        media: MediaSettings {
            camera: VideoDevice::TestPattern,
            capture: AudioEndpoint::TestTone,
            playback: AudioEndpoint::Null,
            ..MediaSettings::synthetic()
        },
        receive_video: false,
    }
}

/// The other end: the same adapter, but taking the door's video (the door itself takes none).
fn viewer(video: bool) -> RtcSettings {
    RtcSettings {
        receive_video: true,
        ..settings(video)
    }
}

/// One side of a call: its adapter, its events, and what the test saw of them.
struct Side {
    name: &'static str,
    rtc: Rtc,
    events: mpsc::UnboundedReceiver<(CallId, RtcEvent)>,
    call: CallId,
    has_call: bool,
    state: Option<ConnectionState>,
    descriptions: Vec<SessionDescription>,
    candidates: Vec<Candidate>,
    gathering_complete: bool,
}

impl Side {
    fn new(name: &'static str, settings: RtcSettings, call: &CallId) -> Side {
        let (tx, events) = mpsc::unbounded_channel();
        Side {
            name,
            rtc: Rtc::new(settings, tx),
            events,
            call: call.clone(),
            has_call: false,
            state: None,
            descriptions: Vec::new(),
            candidates: Vec::new(),
            gathering_complete: false,
        }
    }

    fn command(&mut self, command: RtcCommand) {
        if matches!(
            command,
            RtcCommand::CreateOffer { .. } | RtcCommand::CreateAnswer { .. }
        ) {
            self.has_call = true;
        }
        self.rtc.command(&self.call.clone(), command);
    }

    fn stats(&self) -> CallStats {
        self.rtc.stats(&self.call).expect("the call is open")
    }

    /// Records `event` and returns what the other side must be told, if anything.
    fn take(&mut self, event: RtcEvent, video: bool, other_has_call: bool) -> Option<RtcCommand> {
        match event {
            RtcEvent::LocalDescription(desc) => {
                assert_eq!(desc.streams.len(), 1, "{}: {:?}", self.name, desc.streams);
                assert_eq!(desc.streams[0].1, StreamPurpose::UserMedia);
                // Both tracks are in the one stream the metadata names.
                let msid = format!("a=msid:{} ", desc.streams[0].0);
                let tracks = desc.sdp.lines().filter(|l| l.starts_with(&msid)).count();
                // The door's video goes one way: the viewer's answer sends none back.
                let door = self.name == "door";
                assert_eq!(
                    tracks,
                    if video && door { 2 } else { 1 },
                    "{}: {}",
                    self.name,
                    desc.sdp
                );
                let video_direction = desc
                    .sdp
                    .split("m=")
                    .find(|m| m.starts_with("video"))
                    .and_then(|m| {
                        ["sendonly", "recvonly", "sendrecv", "inactive"]
                            .into_iter()
                            .find(|d| m.contains(&format!("a={d}")))
                    });
                let expected = match (video, door) {
                    (false, _) => None,
                    (true, true) => Some("sendonly"),
                    (true, false) => Some("recvonly"),
                };
                assert_eq!(video_direction, expected, "{}: {}", self.name, desc.sdp);
                self.descriptions.push(desc.clone());
                Some(match (desc.kind, other_has_call) {
                    (SdpKind::Offer, false) => RtcCommand::CreateAnswer { offer: desc, video },
                    _ => RtcCommand::SetRemoteDescription(desc),
                })
            }
            RtcEvent::LocalCandidates(c) => {
                assert!(
                    !self.descriptions.is_empty(),
                    "{}: candidates before the description",
                    self.name
                );
                for candidate in &c {
                    // Inside the namespace the only address is loopback.
                    assert!(
                        candidate.candidate.contains(" 127.0.0.1 "),
                        "{}: {candidate:?}",
                        self.name
                    );
                    assert!(candidate.sdp_mid.as_deref().is_some_and(|m| !m.is_empty()));
                }
                self.candidates.extend(c.iter().cloned());
                Some(RtcCommand::AddRemoteCandidates(c))
            }
            RtcEvent::GatheringComplete => {
                self.gathering_complete = true;
                None
            }
            RtcEvent::Dtmf(key) => {
                panic!("{}: a key {key:?} from a peer that sends none", self.name)
            }
            RtcEvent::Connection(state) => {
                assert_ne!(state, ConnectionState::Failed, "{}", self.name);
                assert_ne!(self.state, Some(state), "{}: reported twice", self.name);
                self.state = Some(state);
                None
            }
            RtcEvent::Failed { reason } => panic!("{}: {reason}", self.name),
        }
    }
}

/// Carries each side's events to the other until `done` holds; panics after `DEADLINE`.
async fn pump(
    door: &mut Side,
    peer: &mut Side,
    video: bool,
    mut done: impl FnMut(&Side, &Side) -> bool,
) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // The counters have no event of their own: they are looked at every 20 ms.
    let mut look = tokio::time::interval(Duration::from_millis(20));
    while !done(door, peer) {
        tokio::select! {
            Some((call, event)) = door.events.recv() => {
                assert_eq!(call, door.call);
                let peer_has_call = peer.has_call;
                if let Some(command) = door.take(event, video, peer_has_call) {
                    peer.command(command);
                }
            }
            Some((call, event)) = peer.events.recv() => {
                assert_eq!(call, peer.call);
                let door_has_call = door.has_call;
                if let Some(command) = peer.take(event, video, door_has_call) {
                    door.command(command);
                }
            }
            _ = look.tick() => {}
            _ = tokio::time::sleep_until(deadline) => panic!(
                "not done after {DEADLINE:?}: door {:?} {:?}, peer {:?} {:?}",
                door.state, door.rtc.stats(&door.call), peer.state, peer.rtc.stats(&peer.call)
            ),
        }
    }
}

fn proc_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Threads, open descriptors and tokio tasks of this process.
fn resources() -> (u64, usize, usize) {
    (
        proc_status("Threads:"),
        open_fds(),
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    )
}

/// Waits until every call task of `rtcs` is gone, then until threads, descriptors and tokio
/// tasks are back to `baseline` (a thread's exit is not an event the test can await).
async fn assert_all_closed(rtcs: &[&Rtc], baseline: (u64, usize, usize)) {
    for rtc in rtcs {
        let mut live = rtc.live_calls();
        tokio::time::timeout(DEADLINE, live.wait_for(|n| *n == 0))
            .await
            .expect("call tasks end after Close")
            .unwrap();
    }
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let now = resources();
        if now.0 <= baseline.0 && now.1 <= baseline.1 && now.2 <= baseline.2 {
            return;
        }
        assert!(
            Instant::now() < until,
            "threads, descriptors and tasks {now:?}, before the calls {baseline:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn door_calls_peer_and_media_flows() {
    if isolated!() {
        return;
    }
    runtime().block_on(async {
        let baseline = resources();
        let rss_before = proc_status("VmRSS:");
        let call = CallId("call-1".to_owned());
        let mut door = Side::new("door", settings(true), &call);
        let mut peer = Side::new("peer", viewer(true), &call);

        let start = Instant::now();
        door.command(RtcCommand::CreateOffer { video: true });
        let mut connected_at = (None, None);
        pump(&mut door, &mut peer, true, |d, p| {
            if d.state == Some(ConnectionState::Connected) && connected_at.0.is_none() {
                connected_at.0 = Some(start.elapsed());
            }
            if p.state == Some(ConnectionState::Connected) && connected_at.1.is_none() {
                connected_at.1 = Some(start.elapsed());
            }
            connected_at.0.is_some() && connected_at.1.is_some()
        })
        .await;
        let (door_connected, peer_connected) = (connected_at.0.unwrap(), connected_at.1.unwrap());

        // Media both ways: the peer hears the door's tone and gets its video (the first packet a
        // keyframe), the door hears the peer's tone and answers its keyframe request.
        pump(&mut door, &mut peer, true, |d, p| {
            let (ds, ps) = (d.stats(), p.stats());
            ps.remote_audio.samples >= 48_000
                && ps.video_packets_received >= 100
                && ds.remote_audio.samples >= 48_000
                && ds.keyframes_sent >= 2
        })
        .await;
        let (ds, ps) = (door.stats(), peer.stats());
        assert!(ps.remote_audio.rms > 0.05, "peer heard {:?}", ps.remote_audio);
        assert!(ds.remote_audio.rms > 0.05, "door heard {:?}", ds.remote_audio);
        assert_eq!(ps.first_video_keyframe, Some(true), "{ps:?}");
        assert!(ps.video_bytes_received > 20_000, "{ps:?}");
        assert!(ds.keyframe_requests >= 1, "{ds:?}");
        assert!(door.gathering_complete && peer.gathering_complete);
        assert!(door.descriptions[0].kind == SdpKind::Offer);
        assert!(peer.descriptions[0].kind == SdpKind::Answer);
        assert!(ds.connected && ps.connected);

        // A steady-state window: CPU and memory of both ends while media flows.
        let (cpu0, stats0, t0) = (cpu_time(), door.stats(), Instant::now());
        let window = Duration::from_secs(3);
        pump(&mut door, &mut peer, true, |_, _| t0.elapsed() >= window).await;
        let (cpu1, stats1, elapsed) = (cpu_time(), door.stats(), t0.elapsed());
        let rss_during = proc_status("VmRSS:");
        let frames = stats1.video_frames_encoded - stats0.video_frames_encoded;
        let per_frame = (stats1.video_encode_time - stats0.video_encode_time) / frames as u32;
        let cpu = (cpu1 - cpu0).as_secs_f64() / elapsed.as_secs_f64() * 100.0;
        println!(
            "MEASURED connect: door {door_connected:?}, peer {peer_connected:?} (door's own count {:?}); \
             both ends in one process: RSS {} kB before, {} kB during (+{} kB), CPU {cpu:.0} % of one core; \
             640x480@15 H.264: {frames} frames in {elapsed:?}, {per_frame:?} per frame to encode, \
             {} dropped; peer received {} video packets, {} bytes in all",
            ds.time_to_connect,
            rss_before,
            rss_during,
            rss_during - rss_before,
            stats1.video_frames_dropped,
            ps.video_packets_received,
            ps.video_bytes_received,
        );
        assert!(door_connected < Duration::from_secs(5), "{door_connected:?}");
        // The frame clock is 15 fps and frames are not lost to a slow encoder.
        assert!(frames >= 40, "{frames} frames in {elapsed:?}");

        door.command(RtcCommand::Close);
        peer.command(RtcCommand::Close);
        assert!(door.rtc.stats(&call).is_none());
        assert_all_closed(&[&door.rtc, &peer.rtc], baseline).await;
    });
}

#[test]
fn audio_only_call() {
    if isolated!() {
        return;
    }
    runtime().block_on(async {
        let call = CallId("call-audio".to_owned());
        // The door could send video, but this call is a voice call.
        let mut door = Side::new("door", settings(true), &call);
        let mut peer = Side::new("peer", viewer(false), &call);
        door.command(RtcCommand::CreateOffer { video: false });
        pump(&mut door, &mut peer, false, |_, p| {
            p.rtc
                .stats(&p.call)
                .is_some_and(|s| s.remote_audio.samples >= 24_000)
        })
        .await;
        let (ds, ps) = (door.stats(), peer.stats());
        assert!(ps.remote_audio.rms > 0.05, "{ps:?}");
        assert_eq!(ps.video_packets_received, 0);
        assert_eq!(ds.video_frames_encoded, 0, "no encoder for a voice call");
        assert!(!door.descriptions[0].sdp.contains("m=video"));
        door.command(RtcCommand::Close);
        peer.command(RtcCommand::Close);
        let mut live = door.rtc.live_calls();
        tokio::time::timeout(DEADLINE, live.wait_for(|n| *n == 0))
            .await
            .unwrap()
            .unwrap();
    });
}

#[test]
fn failures_are_events() {
    if isolated!() {
        return;
    }
    runtime().block_on(async {
        let (tx, mut events) = mpsc::unbounded_channel();
        let mut rtc = Rtc::new(settings(true), tx);
        async fn failed(
            rtc: &mut Rtc,
            events: &mut mpsc::UnboundedReceiver<(CallId, RtcEvent)>,
            call: &CallId,
            command: RtcCommand,
        ) -> (CallId, String) {
            rtc.command(call, command);
            loop {
                let (id, event) = tokio::time::timeout(DEADLINE, events.recv())
                    .await
                    .expect("an event")
                    .unwrap();
                if let RtcEvent::Failed { reason } = event {
                    return (id, reason);
                }
            }
        }

        // A command for a call that has no peer connection.
        let ghost = CallId("ghost".to_owned());
        let (id, reason) = failed(
            &mut rtc,
            &mut events,
            &ghost,
            RtcCommand::AddRemoteCandidates(Vec::new()),
        )
        .await;
        assert_eq!(id, ghost);
        assert!(reason.contains("no peer connection"), "{reason}");

        // An offer that is not SDP.
        let bad = CallId("bad-offer".to_owned());
        let garbage = SessionDescription {
            kind: SdpKind::Offer,
            sdp: "this is not SDP".to_owned(),
            streams: Vec::new(),
        };
        let (id, reason) = failed(
            &mut rtc,
            &mut events,
            &bad,
            RtcCommand::CreateAnswer {
                offer: garbage.clone(),
                video: true,
            },
        )
        .await;
        assert_eq!(id, bad);
        assert!(reason.contains("offer"), "{reason}");
        rtc.command(&bad, RtcCommand::Close);

        // A garbage answer to a good offer; then a second CreateOffer on the same call.
        let call = CallId("bad-answer".to_owned());
        rtc.command(&call, RtcCommand::CreateOffer { video: true });
        let answer = SessionDescription {
            kind: SdpKind::Answer,
            ..garbage
        };
        let (_, reason) = failed(
            &mut rtc,
            &mut events,
            &call,
            RtcCommand::SetRemoteDescription(answer),
        )
        .await;
        assert!(reason.contains("answer"), "{reason}");
        let (_, reason) = failed(
            &mut rtc,
            &mut events,
            &call,
            RtcCommand::CreateOffer { video: false },
        )
        .await;
        assert!(reason.contains("already"), "{reason}");
        // Unusable remote candidates are skipped, not failures; the call is still there.
        rtc.command(
            &call,
            RtcCommand::AddRemoteCandidates(vec![Candidate {
                candidate: "candidate:garbage".to_owned(),
                sdp_mid: Some("0".to_owned()),
                sdp_m_line_index: Some(0),
            }]),
        );
        assert!(rtc.stats(&call).is_some());

        // A camera that cannot be opened makes an audio call: the offer has no video.
        let mut v4l2 = settings(true);
        v4l2.media.camera = VideoDevice::Path("/dev/video9".into());
        let (tx2, mut events2) = mpsc::unbounded_channel();
        let mut rtc2 = Rtc::new(v4l2, tx2);
        rtc2.set_ice_servers(vec![IceServer::default()]);
        let camera = CallId("camera".to_owned());
        rtc2.command(&camera, RtcCommand::CreateOffer { video: true });
        let (_, event) = events2.recv().await.unwrap();
        match event {
            RtcEvent::LocalDescription(desc) => {
                assert!(desc.sdp.contains("m=audio"), "{}", desc.sdp);
                assert!(!desc.sdp.contains("m=video"), "{}", desc.sdp);
            }
            other => panic!("{other:?}"),
        }
        rtc2.command(&camera, RtcCommand::Close);

        rtc.command(&call, RtcCommand::Close);
        for r in [&rtc, &rtc2] {
            let mut live = r.live_calls();
            tokio::time::timeout(DEADLINE, live.wait_for(|n| *n == 0))
                .await
                .unwrap()
                .unwrap();
        }
    });
}

#[test]
fn repeated_calls_leak_nothing() {
    if isolated!() {
        return;
    }
    runtime().block_on(async {
        let (tx, _events) = mpsc::unbounded_channel();
        let warm = Rtc::new(settings(true), tx);
        drop(warm);
        let mut baseline = None;
        let rounds = 20;
        let start = Instant::now();
        for i in 0..rounds {
            let call = CallId(format!("soak-{i}"));
            let video = i % 2 == 0;
            let mut door = Side::new("door", settings(true), &call);
            let mut peer = Side::new("peer", viewer(true), &call);
            door.command(RtcCommand::CreateOffer { video });
            pump(&mut door, &mut peer, video, |d, p| {
                d.state == Some(ConnectionState::Connected)
                    && p.rtc
                        .stats(&p.call)
                        .is_some_and(|s| s.audio_packets_received > 0)
            })
            .await;
            door.command(RtcCommand::Close);
            peer.command(RtcCommand::Close);
            let rtcs = [&door.rtc, &peer.rtc];
            match baseline {
                // The first round's leftovers (lazily started runtime parts) are the baseline.
                None => {
                    for rtc in rtcs {
                        let mut live = rtc.live_calls();
                        live.wait_for(|n| *n == 0).await.unwrap();
                    }
                    baseline = Some(resources());
                }
                Some(b) => assert_all_closed(&rtcs, b).await,
            }
        }
        println!(
            "MEASURED {rounds} calls set up, connected and closed in {:?}; threads, fds and tasks \
             {:?} at the end, {:?} after the first",
            start.elapsed(),
            resources(),
            baseline.unwrap()
        );
    });
}

/// A peer made directly with webrtc, for what `Rtc` never does on its own: offer mid-call.
mod raw {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use rtc::peer_connection::configuration::media_engine::MediaEngine;
    use tokio::sync::mpsc;
    use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
    use webrtc::peer_connection::{
        PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
        RTCPeerConnectionIceEvent, RTCPeerConnectionState, SettingEngineBuilder,
    };

    pub enum Event {
        Candidate(RTCIceCandidateInit),
        State(RTCPeerConnectionState),
    }

    struct Handler {
        events: mpsc::UnboundedSender<Event>,
        video_packets: Arc<AtomicU64>,
    }

    #[async_trait::async_trait]
    impl PeerConnectionEventHandler for Handler {
        async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
            let _ = self
                .events
                .send(Event::Candidate(event.candidate.to_json().unwrap()));
        }

        async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
            let _ = self.events.send(Event::State(state));
        }

        async fn on_track(&self, track: Arc<dyn TrackRemote>) {
            let video = track.kind().await == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video;
            let count = Arc::clone(&self.video_packets);
            tokio::spawn(async move {
                while let Some(event) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(_) = event {
                        if video {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    }

    pub struct RawPeer {
        pub pc: Arc<dyn PeerConnection>,
        pub events: mpsc::UnboundedReceiver<Event>,
        pub video_packets: Arc<AtomicU64>,
    }

    impl RawPeer {
        pub async fn new() -> RawPeer {
            let mut media_engine = MediaEngine::default();
            media_engine.register_default_codecs().unwrap();
            let (tx, events) = mpsc::unbounded_channel();
            let video_packets = Arc::new(AtomicU64::new(0));
            let pc = PeerConnectionBuilder::new()
                .with_media_engine(media_engine)
                .with_setting_engine(
                    SettingEngineBuilder::new()
                        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                        .build(),
                )
                .with_handler(Arc::new(Handler {
                    events: tx,
                    video_packets: Arc::clone(&video_packets),
                }))
                .with_udp_addrs(vec!["127.0.0.1:0"])
                .build()
                .await
                .unwrap();
            RawPeer {
                pc: Arc::new(pc),
                events,
                video_packets,
            }
        }

        pub fn video_packets(&self) -> u64 {
            self.video_packets.load(Ordering::Relaxed)
        }
    }
}

#[test]
fn peer_renegotiates_and_restarts_ice() {
    use webrtc::peer_connection::{RTCPeerConnectionState, RTCSdpType, RTCSessionDescription};

    if isolated!() {
        return;
    }
    runtime().block_on(async {
        let call = CallId("call-negotiate".to_owned());
        let (tx, mut events) = mpsc::unbounded_channel();
        let mut door = Rtc::new(settings(true), tx);
        let mut peer = raw::RawPeer::new().await;
        let mut door_answers = Vec::new();
        let mut door_candidates = 0;
        let mut door_state = None;

        // Carries signalling between the door and the raw peer until `done`.
        macro_rules! pump {
            ($done:expr) => {{
                let deadline = tokio::time::Instant::now() + DEADLINE;
                let mut look = tokio::time::interval(Duration::from_millis(20));
                while !$done(&door_state, &peer) {
                    tokio::select! {
                        Some((_, event)) = events.recv() => match event {
                            RtcEvent::LocalDescription(desc) => {
                                assert_eq!(desc.streams.len(), 1);
                                let sdp = match desc.kind {
                                    SdpKind::Offer => RTCSessionDescription::offer(desc.sdp.clone()),
                                    SdpKind::Answer => RTCSessionDescription::answer(desc.sdp.clone()),
                                }
                                .unwrap();
                                peer.pc.set_remote_description(sdp).await.unwrap();
                                if desc.kind == SdpKind::Offer {
                                    let answer = peer.pc.create_answer(None).await.unwrap();
                                    peer.pc.set_local_description(answer.clone()).await.unwrap();
                                    door.command(&call, RtcCommand::SetRemoteDescription(SessionDescription {
                                        kind: SdpKind::Answer,
                                        sdp: answer.sdp,
                                        streams: Vec::new(),
                                    }));
                                } else {
                                    door_answers.push(desc);
                                }
                            }
                            RtcEvent::LocalCandidates(candidates) => {
                                for c in candidates {
                                    door_candidates += 1;
                                    peer.pc
                                        .add_ice_candidate(webrtc::peer_connection::RTCIceCandidateInit {
                                            candidate: c.candidate,
                                            sdp_mid: c.sdp_mid,
                                            sdp_mline_index: c.sdp_m_line_index,
                                            ..Default::default()
                                        })
                                        .await
                                        .unwrap();
                                }
                            }
                            RtcEvent::Connection(state) => door_state = Some(state),
                            RtcEvent::GatheringComplete => {}
                            RtcEvent::Failed { reason } => panic!("door: {reason}"),
                            RtcEvent::Dtmf(key) => panic!("door: a key {key:?} from a peer that sends none"),
                        },
                        Some(event) = peer.events.recv() => match event {
                            raw::Event::Candidate(c) => door.command(&call, RtcCommand::AddRemoteCandidates(vec![Candidate {
                                candidate: c.candidate,
                                sdp_mid: c.sdp_mid,
                                sdp_m_line_index: c.sdp_mline_index,
                            }])),
                            raw::Event::State(state) => {
                                assert_ne!(state, RTCPeerConnectionState::Failed);
                            }
                        },
                        _ = look.tick() => {}
                        _ = tokio::time::sleep_until(deadline) => panic!(
                            "not done after {DEADLINE:?}: door {door_state:?}, {} video packets",
                            peer.video_packets()
                        ),
                    }
                }
            }};
        }

        door.command(&call, RtcCommand::CreateOffer { video: true });
        pump!(|s: &Option<ConnectionState>, p: &raw::RawPeer| {
            *s == Some(ConnectionState::Connected) && p.video_packets() >= 20
        });

        // The peer renegotiates (js-sdk does, to add or change a stream): the door answers.
        let offer = peer.pc.create_offer(None).await.unwrap();
        peer.pc.set_local_description(offer.clone()).await.unwrap();
        door.command(
            &call,
            RtcCommand::SetRemoteDescription(SessionDescription {
                kind: SdpKind::Offer,
                sdp: offer.sdp,
                streams: Vec::new(),
            }),
        );
        let before = peer.video_packets();
        pump!(|_: &Option<ConnectionState>, p: &raw::RawPeer| {
            !door_answers.is_empty() && p.video_packets() >= before + 30
        });
        assert_eq!(door_answers[0].kind, SdpKind::Answer);
        assert_eq!(
            peer.pc.remote_description().await.unwrap().sdp_type,
            RTCSdpType::Answer
        );

        // And again with an ICE restart (what a peer does after its network changed): the door
        // answers with new credentials, gathers again, and media keeps flowing.
        let candidates_before = door_candidates;
        peer.pc.restart_ice().await.unwrap();
        let offer = peer.pc.create_offer(None).await.unwrap();
        peer.pc.set_local_description(offer.clone()).await.unwrap();
        door.command(
            &call,
            RtcCommand::SetRemoteDescription(SessionDescription {
                kind: SdpKind::Offer,
                sdp: offer.sdp,
                streams: Vec::new(),
            }),
        );
        let before = peer.video_packets();
        pump!(|s: &Option<ConnectionState>, p: &raw::RawPeer| {
            door_answers.len() == 2
                && *s == Some(ConnectionState::Connected)
                && p.video_packets() >= before + 30
        });
        let ufrag = |sdp: &str| {
            sdp.lines()
                .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
                .map(str::to_owned)
        };
        assert_ne!(
            ufrag(&door_answers[0].sdp),
            ufrag(&door_answers[1].sdp),
            "the restart's answer has new ICE credentials"
        );
        println!(
            "MEASURED renegotiation: door candidates {candidates_before} before the ICE restart, {door_candidates} after; restart answer candidate lines: {:?}",
            door_answers[1].sdp.lines().filter(|l| l.contains("candidate")).collect::<Vec<_>>()
        );

        door.command(&call, RtcCommand::Close);
        peer.pc.close().await.unwrap();
        let mut live = door.live_calls();
        tokio::time::timeout(DEADLINE, live.wait_for(|n| *n == 0))
            .await
            .unwrap()
            .unwrap();
    });
}

#[test]
fn turn_server_gives_relay_candidates() {
    use hmac::{Hmac, Mac};
    use sha1::Sha1;

    if isolated!() {
        return;
    }
    let coturn = harness::coturn::Coturn::start();
    // TURN REST credentials, as Synapse's /voip/turnServer hands them out.
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let username = format!("{expiry}:door");
    let mut mac = Hmac::<Sha1>::new_from_slice(coturn.secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    // 20 bytes: 27 base64 characters and one padding.
    let credential = harness::base64_unpadded(&mac.finalize().into_bytes()) + "=";
    runtime().block_on(async {
        let call = CallId("call-turn".to_owned());
        let mut door = Side::new("door", settings(false), &call);
        door.rtc.set_ice_servers(vec![IceServer {
            urls: vec![format!("turn:127.0.0.1:{}?transport=udp", coturn.port)],
            username: Some(username),
            credential: Some(credential),
        }]);
        let mut peer = Side::new("peer", viewer(false), &call);
        door.command(RtcCommand::CreateOffer { video: false });
        pump(&mut door, &mut peer, false, |d, p| {
            d.gathering_complete && p.state == Some(ConnectionState::Connected)
        })
        .await;
        let relay: Vec<_> = door
            .candidates
            .iter()
            .filter(|c| c.candidate.contains(" typ relay "))
            .collect();
        assert!(!relay.is_empty(), "{:?}", door.candidates);
        println!("MEASURED TURN: {relay:?}");
        door.command(RtcCommand::Close);
        peer.command(RtcCommand::Close);
        let mut live = door.rtc.live_calls();
        tokio::time::timeout(DEADLINE, live.wait_for(|n| *n == 0))
            .await
            .unwrap()
            .unwrap();
    });
}
