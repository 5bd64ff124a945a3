// The browser side of the test peer: a Matrix client (matrix-js-sdk, the engine of
// Element Web) that places and answers legacy 1:1 VoIP calls (m.call.*) with
// Chromium's fake camera and microphone.
//
// peer.mjs drives it: it calls the async methods of `window.peer` through
// `page.evaluate`, and receives asynchronous observations through the function
// `window.__peerEvent(obj)` it exposes before the page loads.
//
// Query parameters: `relay_only=1` (ICE transport policy "relay", i.e. forceTURN),
// `name=...` (shown in the status line).

import * as sdk from "matrix-js-sdk";
import { CallErrorCode, CallState, createNewMatrixCall } from "matrix-js-sdk/lib/webrtc/call.js";
import { CallEventHandlerEvent } from "matrix-js-sdk/lib/webrtc/callEventHandler.js";

const params = new URLSearchParams(location.search);
const RELAY_ONLY = params.get("relay_only") === "1";
const NAME = params.get("name") || "peer";

const remoteVideo = document.getElementById("remote");
const localVideo = document.getElementById("local");
const statusLine = document.getElementById("status");

/** Default for every wait below; a command may pass `timeout_ms`. */
const DEFAULT_TIMEOUT_MS = 30_000;

let client = null;
let autoAnswer = false;
/** With auto-answer on: answer only calls from this user (null: from anyone). */
let autoAnswerFrom = null;
/** callId -> record, see track(). Ended calls stay, so their stats and timings remain readable. */
const calls = new Map();
/** The call whose video the page shows (the most recent one). */
let shownCall = null;

function emit(event, fields = {}) {
    const obj = { event, ...fields };
    if (typeof window.__peerEvent === "function") {
        window.__peerEvent(obj);
    } else {
        console.warn("no __peerEvent binding, dropped", JSON.stringify(obj));
    }
}

function setStatus() {
    const parts = [NAME, client?.getUserId() ?? "logged out"];
    if (RELAY_ONLY) parts.push("relay-only");
    if (shownCall) parts.push(`${shownCall.call.callId}: ${shownCall.call.state}`);
    statusLine.textContent = parts.join(" | ");
}

function now() {
    return { wall_ms: Date.now(), perf_ms: performance.now() };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` (may be async; a truthy result ends the wait) every 20 ms. */
async function waitFor(what, check, timeoutMs = DEFAULT_TIMEOUT_MS) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(20);
    }
}

function requireClient() {
    if (!client) throw new Error("not logged in");
    return client;
}

function requireCall(callId) {
    const rec = calls.get(callId);
    if (!rec) throw new Error(`unknown call ${callId}`);
    return rec;
}

// ---------------------------------------------------------------- calls

/**
 * Starts following a call (outgoing or incoming) once: events, first frame, video display.
 * Idempotent; returns the record.
 */
function track(call) {
    let rec = calls.get(call.callId);
    if (rec) return rec;
    rec = {
        call,
        t: {}, // name -> {wall_ms, perf_ms}
        lastStats: null, // snapshot taken when the call ends (its peer connection is closed then)
        framePoll: null,
    };
    calls.set(call.callId, rec);
    call.on(sdk.CallEvent.Error, (err) => {
        emit("call_error", { call_id: call.callId, code: err?.code ?? null, message: String(err?.message ?? err) });
    });
    call.on(sdk.CallEvent.FeedsChanged, () => showCall(rec));
    startFramePoll(rec);
    showCall(rec);
    return rec;
}

function onCallState(call, state) {
    const rec = track(call);
    emit("call_state", { call_id: call.callId, state });
    if (state === CallState.Connected && !rec.t.connected) {
        rec.t.connected = now();
        emit("connected", { call_id: call.callId, t_ms: rec.t.connected.wall_ms });
    }
    if (state === CallState.Ended) {
        rec.t.ended = now();
        // The SDK closes the peer connection right after this (after an await), so
        // start a last getStats() now: `stats` on an ended call returns it.
        if (call.peerConn) {
            collectStats(call.peerConn).then(
                (s) => (rec.lastStats = s),
                () => {},
            );
        }
    }
    if (rec === shownCall || state !== CallState.Ended) showCall(rec);
    setStatus();
}

function onHangup(call) {
    const rec = track(call);
    stopFramePoll(rec);
    rec.stopMeasuring?.();
    rec.stopMeasuring = null;
    emit("hangup", {
        call_id: call.callId,
        reason: call.hangupReason ?? null,
        party: call.hangupParty ?? null,
    });
    if (rec === shownCall) {
        remoteVideo.srcObject = null;
        localVideo.srcObject = null;
    }
    setStatus();
}

/** Shows this call's remote video full-size and its local video small. */
function showCall(rec) {
    if (rec.call.state === CallState.Ended) return;
    shownCall = rec;
    const remote = rec.call.remoteUsermediaFeed?.stream ?? null;
    const local = rec.call.localUsermediaFeed?.stream ?? null;
    if (remoteVideo.srcObject !== remote) {
        remoteVideo.srcObject = remote;
        if (remote) {
            remoteVideo.play().catch((e) => e.name !== "AbortError" && console.warn("remote video play():", e.message));
            if (synthetic) startMeasuring(rec, remote);
            // Time the first frame actually presented by the <video> element.
            remoteVideo.requestVideoFrameCallback?.(() => {
                if (!rec.t.first_frame_rendered) rec.t.first_frame_rendered = now();
            });
        }
    }
    if (localVideo.srcObject !== local) {
        localVideo.srcObject = local;
        if (local) localVideo.play().catch(() => {});
    }
    setStatus();
}

/**
 * Polls getStats() every 20 ms until the first remote video frame has been decoded,
 * then emits `first_frame` (a decoded frame, whether or not the <video> painted it yet).
 */
function startFramePoll(rec) {
    let busy = false;
    rec.framePoll = setInterval(async () => {
        const pc = rec.call.peerConn;
        if (busy || !pc || rec.t.first_frame) return;
        busy = true;
        try {
            const s = await collectStats(pc);
            if (s.video_frames_decoded > 0 && !rec.t.first_frame) {
                rec.t.first_frame = now();
                stopFramePoll(rec);
                emit("first_frame", {
                    call_id: rec.call.callId,
                    t_ms: rec.t.first_frame.wall_ms,
                    video_codec: s.video_codec,
                    frame_width: s.frame_width,
                    frame_height: s.frame_height,
                });
            }
        } catch {
            // peer connection closed under us: the hangup stops the poll
        } finally {
            busy = false;
        }
    }, 20);
}

function stopFramePoll(rec) {
    if (rec.framePoll) clearInterval(rec.framePoll);
    rec.framePoll = null;
}

/** The numbers the tests look at, from RTCPeerConnection.getStats(); missing ones are 0/null. */
async function collectStats(pc) {
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));

    let videoIn = null;
    let audioIn = null;
    let videoOut = null;
    let audioOut = null;
    let selectedPair = null;
    let fallbackPair = null;
    const better = (a, b, key) => (!a || (b[key] ?? 0) > (a[key] ?? 0) ? b : a);
    for (const s of byId.values()) {
        const kind = s.kind ?? s.mediaType;
        if (s.type === "inbound-rtp" && kind === "video") videoIn = better(videoIn, s, "framesDecoded");
        if (s.type === "inbound-rtp" && kind === "audio") audioIn = better(audioIn, s, "packetsReceived");
        if (s.type === "outbound-rtp" && kind === "video") videoOut = better(videoOut, s, "framesEncoded");
        if (s.type === "outbound-rtp" && kind === "audio") audioOut = better(audioOut, s, "packetsSent");
        if (s.type === "transport" && s.selectedCandidatePairId) selectedPair = byId.get(s.selectedCandidatePairId);
        if (s.type === "candidate-pair" && s.state === "succeeded" && (s.nominated || s.selected)) {
            fallbackPair ??= s;
        }
    }
    const pair = selectedPair ?? fallbackPair;
    const local = pair ? byId.get(pair.localCandidateId) : null;
    const remote = pair ? byId.get(pair.remoteCandidateId) : null;
    const addr = (c) => (c ? `${c.address ?? c.ip}:${c.port}` : null);
    const codec = (rtp) => (rtp?.codecId ? (byId.get(rtp.codecId)?.mimeType ?? null) : null);

    return {
        video_frames_decoded: videoIn?.framesDecoded ?? 0,
        video_packets_received: videoIn?.packetsReceived ?? 0,
        video_bytes_received: videoIn?.bytesReceived ?? 0,
        // When the inbound video's numbers were taken (ms, the page's clock): rates between two
        // samples need it.
        video_stats_at_ms: videoIn?.timestamp ?? 0,
        video_codec: codec(videoIn),
        frame_width: videoIn?.frameWidth ?? 0,
        frame_height: videoIn?.frameHeight ?? 0,
        frames_per_second: videoIn?.framesPerSecond ?? 0,
        audio_packets_received: audioIn?.packetsReceived ?? 0,
        audio_codec: codec(audioIn),
        audio_level: audioIn?.audioLevel ?? 0,
        audio_energy: audioIn?.totalAudioEnergy ?? 0,
        video_frames_encoded: videoOut?.framesEncoded ?? 0,
        video_frames_sent: videoOut?.framesSent ?? 0,
        video_codec_sent: codec(videoOut),
        audio_packets_sent: audioOut?.packetsSent ?? 0,
        selected_pair: pair
            ? {
                  local_type: local?.candidateType ?? null,
                  remote_type: remote?.candidateType ?? null,
                  local_address: addr(local),
                  remote_address: addr(remote),
                  protocol: local?.protocol ?? null,
              }
            : null,
    };
}

// ---------------------------------------------------------------- synthetic media (benchmark)
//
// `synthetic_media {enabled: true}` makes getUserMedia (which matrix-js-sdk's MediaHandler calls)
// return synthetic devices instead of Chromium's fake ones: a 640x480@15 canvas that carries the
// same capture-time stamp as the door's test pattern (src/media/synthetic.rs: 24x2 square cells
// along the top, a sync byte, the low 32 bits of the capture time in Unix ms, a check byte), and
// a WebAudio microphone that plays 100 ms of 1 kHz at each whole second of the wall clock, as the
// door's `test-bursts` does. It also measures what comes in: the stamp of every remote video
// frame presented (latency = presentation wall time − stamp) and the onset of every remote tone
// burst (wall time at which the sample reached the page's audio graph). `media_latency` returns
// them.

const STAMP_COLUMNS = 24;
const STAMP_ROWS = 2;
const STAMP_SYNC = [1, 0, 1, 1, 0, 0, 1, 0];

let synthetic = false;
const synth = { ctx: null, mic: null, canvas: null, video: null, timer: null };

// Both processors label each 128-sample block with wall-clock times (Date.now() is there in the
// audio worklet scope), never going back: a microphone's block ends now, a received block starts
// now (as if played from now).
const WORKLET = `
function labeler(endsNow) {
    let prevEnd = 0;
    return (n) => {
        const dur = (n * 1000) / sampleRate;
        let start = endsNow ? Date.now() - dur : Date.now();
        if (start < prevEnd) start = prevEnd;
        prevEnd = start + dur;
        return start;
    };
}
class Bursts extends AudioWorkletProcessor {
    constructor() { super(); this.label = labeler(true); this.phase = 0; }
    process(_inputs, outputs) {
        const out = outputs[0];
        const n = out[0].length;
        const start = this.label(n);
        for (let k = 0; k < n; k++) {
            const t = start + (k * 1000) / sampleRate;
            let v = 0;
            if (((t % 1000) + 1000) % 1000 < 100) {
                v = 0.5 * Math.sin(this.phase);
                this.phase += (2 * Math.PI * 1000) / sampleRate;
            } else {
                this.phase = 0;
            }
            for (const ch of out) ch[k] = v;
        }
        return true;
    }
}
class Onsets extends AudioWorkletProcessor {
    constructor() { super(); this.label = labeler(false); this.quiet = 0; }
    process(inputs) {
        const ch = inputs[0] && inputs[0][0];
        const n = ch ? ch.length : 128;
        const start = this.label(n);
        if (!ch) { this.quiet += n; return true; }
        for (let k = 0; k < n; k++) {
            const a = Math.abs(ch[k]);
            if (a >= 4000 / 32767) {
                if (this.quiet >= sampleRate / 10) this.port.postMessage(start + (k * 1000) / sampleRate);
                this.quiet = 0;
            } else if (a < 1000 / 32767) {
                this.quiet++;
            }
        }
        return true;
    }
}
registerProcessor("bursts", Bursts);
registerProcessor("onsets", Onsets);
`;

async function audioContext() {
    if (!synth.ctx) {
        const ctx = new AudioContext({ sampleRate: 48000 });
        const url = URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" }));
        await ctx.audioWorklet.addModule(url);
        await ctx.resume();
        synth.ctx = ctx;
    }
    return synth.ctx;
}

async function syntheticAudioTrack() {
    const ctx = await audioContext();
    if (!synth.mic) {
        const bursts = new AudioWorkletNode(ctx, "bursts", { numberOfInputs: 0, outputChannelCount: [1] });
        const dest = ctx.createMediaStreamDestination();
        bursts.connect(dest);
        synth.mic = dest.stream;
    }
    // js-sdk stops the tracks it was given when the call ends: each call gets its own clone.
    return synth.mic.getAudioTracks()[0].clone();
}

function drawSyntheticFrame() {
    const c = synth.canvas;
    const g = c.getContext("2d");
    const colours = ["#ebebeb", "#d2d210", "#10d2d2", "#10d210", "#d210d2", "#d21010", "#1010d2", "#101010"];
    const shift = Math.floor(Date.now() / 66) * 4;
    const bar = c.width / 8;
    for (let i = 0; i < 9; i++) {
        g.fillStyle = colours[i % 8];
        g.fillRect(((i * bar + shift) % (c.width + bar)) - bar, 0, bar + 1, c.height);
    }
    const ms = Date.now() % 2 ** 32;
    let check = 0;
    for (let b = 0; b < 4; b++) check = (check + Math.floor(ms / 2 ** (8 * b)) % 256) % 256;
    check ^= 0xa5;
    const cells = [...STAMP_SYNC];
    for (let i = 31; i >= 0; i--) cells.push(Math.floor(ms / 2 ** i) % 2);
    for (let i = 7; i >= 0; i--) cells.push((check >> i) & 1);
    const cell = Math.max(1, Math.floor(c.width / STAMP_COLUMNS));
    cells.forEach((on, i) => {
        g.fillStyle = on ? "#ffffff" : "#000000";
        g.fillRect((i % STAMP_COLUMNS) * cell, Math.floor(i / STAMP_COLUMNS) * cell, cell, cell);
    });
}

function syntheticVideoTrack() {
    if (!synth.canvas) {
        synth.canvas = document.createElement("canvas");
        synth.canvas.width = 640;
        synth.canvas.height = 480;
        drawSyntheticFrame();
        synth.video = synth.canvas.captureStream(15);
        synth.timer = setInterval(drawSyntheticFrame, 1000 / 15);
    }
    return synth.video.getVideoTracks()[0].clone();
}

const realGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (constraints) => {
    if (!synthetic) return realGetUserMedia(constraints);
    const tracks = [];
    if (constraints?.audio) tracks.push(await syntheticAudioTrack());
    if (constraints?.video) tracks.push(syntheticVideoTrack());
    return new MediaStream(tracks);
};

/** The stamp in the top rows of an RGBA strip `w` wide: the low 32 bits of Unix ms, or null. */
function readStamp(rgba, w) {
    const cell = Math.max(1, Math.floor(w / STAMP_COLUMNS));
    const from = Math.floor(cell / 4);
    const to = Math.max(Math.floor((cell * 3) / 4), from + 1);
    const bits = [];
    for (let i = 0; i < STAMP_COLUMNS * STAMP_ROWS; i++) {
        const cx = (i % STAMP_COLUMNS) * cell;
        const cy = Math.floor(i / STAMP_COLUMNS) * cell;
        let sum = 0;
        let n = 0;
        for (let y = cy + from; y < cy + to; y++) {
            for (let x = cx + from; x < cx + to; x++) {
                const o = (y * w + x) * 4;
                sum += 0.299 * rgba[o] + 0.587 * rgba[o + 1] + 0.114 * rgba[o + 2];
                n++;
            }
        }
        bits.push(sum / n >= 128 ? 1 : 0);
    }
    if (STAMP_SYNC.some((b, i) => bits[i] !== b)) return null;
    let value = 0;
    for (let i = 8; i < 40; i++) value = value * 2 + bits[i];
    let check = 0;
    for (let i = 40; i < 48; i++) check = check * 2 + bits[i];
    let sum = 0;
    for (let b = 0; b < 4; b++) sum = (sum + (Math.floor(value / 2 ** (8 * b)) % 256)) % 256;
    return (sum ^ 0xa5) === check ? value : null;
}

/** Starts measuring the remote media of `rec` (shown in the remote <video>). */
function startMeasuring(rec, stream) {
    rec.latency ??= { video: [], audio: [], unreadable_frames: 0 };
    const lat = rec.latency;
    if (remoteVideo.requestVideoFrameCallback) {
        const canvas = document.createElement("canvas");
        const g = canvas.getContext("2d", { willReadFrequently: true });
        const onFrame = (nowPerf, meta) => {
            if (remoteVideo.srcObject !== stream || rec.call.state === CallState.Ended) return;
            const wall = Date.now() + ((meta.expectedDisplayTime ?? nowPerf) - performance.now());
            const w = meta.width || remoteVideo.videoWidth;
            const strip = STAMP_ROWS * Math.max(1, Math.floor(w / STAMP_COLUMNS));
            if (w > 0) {
                canvas.width = w;
                canvas.height = strip;
                g.drawImage(remoteVideo, 0, 0, w, strip, 0, 0, w, strip);
                const value = readStamp(g.getImageData(0, 0, w, strip).data, w);
                if (value === null) lat.unreadable_frames++;
                else if (lat.video.length < 100_000) {
                    lat.video.push([wall, (((wall - value) % 2 ** 32) + 2 ** 32) % 2 ** 32]);
                }
            }
            remoteVideo.requestVideoFrameCallback(onFrame);
        };
        remoteVideo.requestVideoFrameCallback(onFrame);
    }
    if (stream.getAudioTracks().length) {
        audioContext().then((ctx) => {
            const source = ctx.createMediaStreamSource(stream);
            const onsets = new AudioWorkletNode(ctx, "onsets", { numberOfInputs: 1, numberOfOutputs: 1 });
            const mute = ctx.createGain();
            mute.gain.value = 0;
            source.connect(onsets).connect(mute).connect(ctx.destination);
            onsets.port.onmessage = (e) => lat.audio.length < 100_000 && lat.audio.push(e.data);
            rec.stopMeasuring = () => {
                source.disconnect();
                onsets.disconnect();
                mute.disconnect();
            };
        }, (e) => console.error("audio measurement:", e));
    }
}

// ---------------------------------------------------------------- client

async function login({ homeserver, user, password, encryption = false, timeout_ms }) {
    if (client) throw new Error("already logged in");
    if (!homeserver || !user || password === undefined) throw new Error("login needs homeserver, user, password");

    // A throwaway client only for POST /login (MatrixClient.login* are deprecated).
    const anon = sdk.createClient({ baseUrl: homeserver });
    const res = await anon.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: `intercom test peer (${NAME})`,
    });

    const c = sdk.createClient({
        baseUrl: homeserver,
        accessToken: res.access_token,
        userId: res.user_id,
        deviceId: res.device_id,
        // Without this the SDK adds a public STUN server when the homeserver has no TURN.
        fallbackICEServerAllowed: false,
        forceTURN: RELAY_ONLY,
    });
    if (!c.supportsVoip()) throw new Error("matrix-js-sdk says this browser does not support VoIP");
    if (encryption) {
        // In-memory crypto store; fetches dist/pkg/matrix_sdk_crypto_wasm_bg.wasm.
        await c.initRustCrypto({ useIndexedDB: false });
    }

    let lastSync = null;
    c.on(sdk.ClientEvent.Sync, (state) => {
        if (state !== lastSync) emit("sync", { state });
        lastSync = state;
    });
    // MatrixCall events are re-emitted by the client for every call it creates,
    // with the call as an argument: this also sees the states an incoming call goes
    // through before CallEventHandlerEvent.Incoming fires.
    c.on(sdk.CallEvent.State, (state, _old, call) => {
        if (call?.callId) onCallState(call, state);
    });
    c.on(sdk.CallEvent.Hangup, (call) => {
        if (call?.callId) onHangup(call);
    });
    c.on(CallEventHandlerEvent.Incoming, (call) => {
        const rec = track(call);
        rec.t.invite_received = now();
        emit("incoming", {
            call_id: call.callId,
            room_id: call.roomId,
            sender: call.getOpponentMember()?.userId ?? null,
            video: call.type === "video",
            t_ms: rec.t.invite_received.wall_ms,
        });
        if (autoAnswer && (!autoAnswerFrom || autoAnswerFrom === call.getOpponentMember()?.userId)) {
            rec.t.answered = now();
            call.answer(true, true).catch((e) => console.error("auto-answer failed:", e));
        }
    });

    const synced = new Promise((resolve) => {
        const onSync = (state) => {
            if (state === sdk.SyncState.Prepared || state === sdk.SyncState.Syncing) {
                c.off(sdk.ClientEvent.Sync, onSync);
                resolve();
            }
        };
        c.on(sdk.ClientEvent.Sync, onSync);
    });
    client = c;
    setStatus();
    await c.startClient({ initialSyncLimit: 0 });
    await Promise.race([
        synced,
        sleep(timeout_ms ?? DEFAULT_TIMEOUT_MS).then(() => {
            throw new Error("timed out waiting for the first sync");
        }),
    ]);
    // startClient() fetches TURN credentials in the background; have them before any call.
    await c.checkTurnServers();
    return { user_id: res.user_id, device_id: res.device_id, turn_servers: c.getTurnServers().length };
}

/** Waits until we are joined to the room and, if it is encrypted, our crypto knows that. */
async function waitJoinedAndReady(roomId, timeoutMs) {
    const c = requireClient();
    const room = await waitFor(
        `join of ${roomId}`,
        () => {
            const r = c.getRoom(roomId);
            return r?.getMyMembership() === "join" ? r : null;
        },
        timeoutMs,
    );
    // The sync that brings our join also brings the room's current state, so the
    // m.room.encryption state event (if any) is in the store by now.
    const encrypted = room.hasEncryptionStateEvent();
    const crypto = c.getCrypto();
    if (encrypted && crypto) {
        // The call invite is encrypted only once the crypto layer has seen that state too.
        await waitFor(`crypto to know ${roomId} is encrypted`, () => crypto.isEncryptionEnabledInRoom(roomId), timeoutMs);
    }
    return encrypted;
}

async function createRoom({ invite = [], encrypted = false, preset, name, timeout_ms }) {
    const c = requireClient();
    const opts = {
        preset: preset ?? (invite.length === 1 ? "trusted_private_chat" : "private_chat"),
        invite,
        is_direct: invite.length === 1,
        initial_state: [],
    };
    if (name) opts.name = name;
    if (encrypted) {
        opts.initial_state.push({
            type: "m.room.encryption",
            state_key: "",
            content: { algorithm: "m.megolm.v1.aes-sha2" },
        });
    }
    const { room_id } = await c.createRoom(opts);
    // Calls need the room (and its members) in the client's store.
    await waitJoinedAndReady(room_id, timeout_ms);
    return { room_id };
}

async function join({ room_id, timeout_ms }) {
    const c = requireClient();
    await c.joinRoom(room_id);
    const encrypted = await waitJoinedAndReady(room_id, timeout_ms);
    return { room_id, encrypted };
}

async function invite({ room_id, user_id }) {
    await requireClient().invite(room_id, user_id);
    return {};
}

async function leave({ room_id }) {
    await requireClient().leave(room_id);
    return {};
}

/** Sends a text message (encrypted in an encrypted room). */
async function sendText({ room_id, body }) {
    const { event_id } = await requireClient().sendTextMessage(room_id, body);
    return { event_id };
}

/** The text messages and notices of a room's live timeline, decrypted where they can be. */
async function texts({ room_id }) {
    const room = requireClient().getRoom(room_id);
    const events = room?.getLiveTimeline().getEvents() ?? [];
    await Promise.all(events.map((e) => requireClient().decryptEventIfNeeded(e)));
    return {
        texts: events
            .filter((e) => e.getType() === "m.room.message")
            .map((e) => ({
                sender: e.getSender(),
                msgtype: e.getContent().msgtype ?? null,
                body: e.getContent().body ?? null,
                encrypted: e.isEncrypted(),
            })),
    };
}

async function waitMember({ room_id, user_id, membership = "join", timeout_ms }) {
    const c = requireClient();
    await waitFor(
        `${user_id} to be ${membership} in ${room_id}`,
        () => c.getRoom(room_id)?.getMember(user_id)?.membership === membership,
        timeout_ms,
    );
    return {};
}

async function placeCall({ room_id, video = true, invitee }) {
    const c = requireClient();
    if (!c.getRoom(room_id)) throw new Error(`unknown room ${room_id}`);
    // With an invitee, the invite names its callee (as a 1:1 call to one user does).
    const call = invitee ? createNewMatrixCall(c, room_id, { invitee }) : c.createCall(room_id);
    if (!call) throw new Error("createCall returned null (no WebRTC?)");
    const rec = track(call);
    rec.t.placed = now();
    if (video) await call.placeVideoCall();
    else await call.placeVoiceCall();
    return { call_id: call.callId, t_ms: rec.t.placed.wall_ms };
}

async function answer({ call_id, audio = true, video = true }) {
    const rec = requireCall(call_id);
    rec.t.answered = now();
    await rec.call.answer(audio, video);
    return {};
}

async function reject({ call_id }) {
    requireCall(call_id).call.reject();
    return {};
}

async function hangup({ call_id, reason }) {
    requireCall(call_id).call.hangup(reason ?? CallErrorCode.UserHangup, false);
    return {};
}

async function setVideoMuted({ call_id, muted }) {
    // Unmuting video on a voice call upgrades it: js-sdk adds a video track and renegotiates
    // (m.call.negotiate).
    const now_muted = await requireCall(call_id).call.setLocalVideoMuted(Boolean(muted));
    return { muted: now_muted };
}

async function sendDtmf({ call_id, keys, timeout_ms }) {
    // One key at a time through js-sdk's sendDtmfDigit, as a dial pad sends them: insertDTMF
    // replaces whatever is still queued, so each key waits until the previous one has played
    // out (its tonechange event with the empty tone).
    const call = requireCall(call_id).call;
    const dtmf = call.peerConn
        ?.getSenders()
        .find((s) => s.track?.kind === "audio" && s.dtmf)?.dtmf;
    if (!dtmf) throw new Error("the call has no audio sender with DTMF");
    if (!dtmf.canInsertDTMF) throw new Error("canInsertDTMF is false: no telephone-event negotiated");
    for (const key of String(keys)) {
        let played = false;
        const onTone = (e) => {
            if (e.tone === "") played = true;
        };
        dtmf.addEventListener("tonechange", onTone);
        try {
            call.sendDtmfDigit(key);
            await waitFor(`key ${key} to be sent`, () => played, timeout_ms);
        } finally {
            dtmf.removeEventListener("tonechange", onTone);
        }
    }
    return { can_insert_dtmf: true };
}

async function stats({ call_id }) {
    const rec = requireCall(call_id);
    const call = rec.call;
    let s = null;
    if (call.peerConn && call.peerConn.connectionState !== "closed") s = await collectStats(call.peerConn);
    s ??= rec.lastStats;
    s ??= await collectStats({ getStats: async () => new Map() }); // all zeros
    // Whether this end has a live camera in the call (sent or not: the answer decides).
    const camera = call.localUsermediaFeed?.stream?.getVideoTracks().some((t) => t.readyState === "live") ?? false;
    return { state: call.state, camera, ...s };
}

async function timings({ call_id }) {
    const rec = requireCall(call_id);
    return { direction: rec.call.direction ?? null, timings: rec.t };
}

async function listCalls() {
    return {
        calls: [...calls.values()].map((r) => ({
            call_id: r.call.callId,
            room_id: r.call.roomId,
            direction: r.call.direction ?? null,
            state: r.call.state,
            hangup_reason: r.call.hangupReason ?? null,
            hangup_party: r.call.hangupParty ?? null,
        })),
    };
}

window.peer = {
    login,
    createRoom,
    join,
    invite,
    leave,
    waitMember,
    placeCall,
    answer,
    reject,
    hangup,
    setVideoMuted,
    sendDtmf,
    sendText,
    texts,
    stats,
    timings,
    listCalls,
    async syntheticMedia({ enabled = true }) {
        synthetic = !!enabled;
        if (synthetic) await audioContext();
        return { enabled: synthetic };
    },
    async mediaLatency({ call_id }) {
        return requireCall(call_id).latency ?? { video: [], audio: [], unreadable_frames: 0 };
    },
    async version() {
        return { user_agent: navigator.userAgent };
    },
    async setAutoAnswer({ enabled = true, from = null }) {
        autoAnswer = !!enabled;
        autoAnswerFrom = from;
        return { enabled: autoAnswer };
    },
    ready: true,
};
setStatus();
