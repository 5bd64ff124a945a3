#!/usr/bin/env node
// End-to-end check of the browser peer, without intercom: two peer.mjs processes
// (alice and bob) call each other through a homeserver, once in a plain room and once
// in an encrypted one, and the call's media, hangup and timings are checked.
//
//   node selftest.mjs HOMESERVER_URL USER1 PASSWORD1 USER2 PASSWORD2 [--screenshots DIR] [--relay-only] [--verbose]
//   (or SELFTEST_HS, SELFTEST_USER1, SELFTEST_PASS1, SELFTEST_USER2, SELFTEST_PASS2)
//
// The two users must exist. To keep every ICE candidate on loopback, run it (and the
// homeserver) in a network namespace with only `lo`, e.g.
//   unshare --net bash -c 'ip link set lo up; <start synapse>; node selftest.mjs ...'
// --relay-only starts both peers with --relay-only and checks that the call went through
// a TURN relay: the homeserver must then hand out TURN credentials (turn_uris,
// turn_shared_secret) for a TURN server that allows loopback peers (coturn:
// --allow-loopback-peers). --verbose keeps the peers' debug logging on stderr.
// Needs dist/ (node build.mjs). Exit status 0 when every scenario passed.

import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

const positional = [];
let screenshotDir = null;
let relayOnly = false;
let verbose = false;
for (let i = 2; i < process.argv.length; i++) {
    if (process.argv[i] === "--screenshots") screenshotDir = resolve(process.argv[++i]);
    else if (process.argv[i] === "--relay-only") relayOnly = true;
    else if (process.argv[i] === "--verbose") verbose = true;
    else positional.push(process.argv[i]);
}
const env = process.env;
const [hs, user1, pass1, user2, pass2] =
    positional.length === 5
        ? positional
        : [env.SELFTEST_HS, env.SELFTEST_USER1, env.SELFTEST_PASS1, env.SELFTEST_USER2, env.SELFTEST_PASS2];
if (!hs || !user1 || pass1 === undefined || !user2 || pass2 === undefined) {
    console.error(
        "usage: node selftest.mjs HOMESERVER_URL USER1 PASSWORD1 USER2 PASSWORD2 [--screenshots DIR] [--relay-only] [--verbose]",
    );
    process.exit(2);
}
if (screenshotDir) mkdirSync(screenshotDir, { recursive: true });

/** One peer.mjs process: send commands, await answers, await events. */
class Peer {
    constructor(name) {
        this.name = name;
        this.nextId = 1;
        this.pending = new Map(); // id -> {resolve, reject}
        this.events = []; // every event seen, in order
        this.waiters = []; // {pred, resolve}
        const args = [join(here, "peer.mjs"), "--name", name];
        if (!verbose) args.push("--quiet");
        if (relayOnly) args.push("--relay-only");
        this.proc = spawn(process.execPath, args, {
            stdio: ["pipe", "pipe", "inherit"],
        });
        this.exited = new Promise((res) => this.proc.on("exit", (code) => res(code)));
        createInterface({ input: this.proc.stdout }).on("line", (line) => this.onLine(line));
    }

    onLine(line) {
        let msg;
        try {
            msg = JSON.parse(line);
        } catch {
            throw new Error(`${this.name}: non-JSON line on stdout: ${line}`);
        }
        if (msg.event) {
            this.events.push(msg);
            this.waiters = this.waiters.filter((w) => !(w.pred(msg) && (w.resolve(msg), true)));
        } else {
            const p = this.pending.get(msg.id);
            if (!p) throw new Error(`${this.name}: answer to unknown id: ${line}`);
            this.pending.delete(msg.id);
            if (msg.ok) p.resolve(msg);
            else p.reject(new Error(`${this.name} ${p.cmd}: ${msg.error}`));
        }
    }

    cmd(cmd, fields = {}) {
        const id = this.nextId++;
        this.proc.stdin.write(JSON.stringify({ id, cmd, ...fields }) + "\n");
        return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, cmd }));
    }

    /** Resolves with the first event (already seen or future) matching `pred`. */
    event(what, pred, timeoutMs = 20_000) {
        const seen = this.events.find(pred);
        if (seen) return Promise.resolve(seen);
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms`)), timeoutMs);
            this.waiters.push({
                pred,
                resolve: (m) => {
                    clearTimeout(timer);
                    resolve(m);
                },
            });
        });
    }

    async quit() {
        if (this.proc.exitCode !== null) return this.proc.exitCode;
        this.proc.stdin.end(); // EOF is as good as {"cmd":"quit"}
        return await this.exited;
    }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(cond, msg) {
    if (!cond) throw new Error(`check failed: ${msg}`);
}

async function scenario(label, encrypted) {
    const alice = new Peer("alice");
    const bob = new Peer("bob");
    try {
        await Promise.all([alice.event("ready", (e) => e.event === "ready"), bob.event("ready", (e) => e.event === "ready")]);
        const [a, b] = await Promise.all([
            alice.cmd("login", { homeserver: hs, user: user1, password: pass1, encryption: encrypted }),
            bob.cmd("login", { homeserver: hs, user: user2, password: pass2, encryption: encrypted }),
        ]);
        console.log(`[${label}] logged in: ${a.user_id} (${a.device_id}), ${b.user_id} (${b.device_id}), ${a.turn_servers} TURN`);
        if (relayOnly) check(a.turn_servers > 0 && b.turn_servers > 0, "relay-only needs TURN servers from the homeserver");

        const { room_id } = await alice.cmd("create_room", { invite: [b.user_id], encrypted });
        const joined = await bob.cmd("join", { room_id });
        check(joined.encrypted === encrypted, `bob sees encrypted=${joined.encrypted}, expected ${encrypted}`);
        await alice.cmd("wait_member", { room_id, user_id: b.user_id });
        await bob.cmd("auto_answer", { enabled: true });
        console.log(`[${label}] room ${room_id} ready`);

        const placed = await alice.cmd("place_call", { room_id, video: true });
        const call_id = placed.call_id;
        const same = (ev) => (e) => e.event === ev && e.call_id === call_id;
        const incoming = await bob.event("incoming", same("incoming"));
        check(incoming.sender === a.user_id, `incoming sender ${incoming.sender}`);
        check(incoming.room_id === room_id, `incoming room ${incoming.room_id}`);
        const [aConn, bConn, aFrame, bFrame] = await Promise.all([
            alice.event("connected", same("connected")),
            bob.event("connected", same("connected")),
            alice.event("first_frame", same("first_frame")),
            bob.event("first_frame", same("first_frame")),
        ]);

        await sleep(2000); // let some media flow
        const [aStats, bStats] = await Promise.all([alice.cmd("stats", { call_id }), bob.cmd("stats", { call_id })]);
        for (const [who, s] of [["alice", aStats], ["bob", bStats]]) {
            console.log(`[${label}] ${who} stats: ${JSON.stringify(s)}`);
            check(s.state === "connected", `${who} state ${s.state}`);
            check(s.video_frames_decoded > 0, `${who} decoded no video frame`);
            check(s.audio_packets_received > 0, `${who} received no audio packet`);
            check(/^video\/(H264|VP8)$/i.test(s.video_codec ?? ""), `${who} video codec ${s.video_codec}`);
            check(s.selected_pair && s.selected_pair.local_type, `${who} has no selected candidate pair`);
            if (relayOnly) check(s.selected_pair.local_type === "relay", `${who} not relayed: ${s.selected_pair.local_type}`);
        }
        if (screenshotDir) {
            await alice.cmd("screenshot", { path: join(screenshotDir, `${label}-alice.png`) });
            await bob.cmd("screenshot", { path: join(screenshotDir, `${label}-bob.png`) });
        }

        await alice.cmd("hangup", { call_id });
        const [aHang, bHang] = await Promise.all([alice.event("hangup", same("hangup")), bob.event("hangup", same("hangup"))]);
        check(aHang.party === "local", `alice hangup party ${aHang.party}`);
        check(bHang.party === "remote", `bob hangup party ${bHang.party}`);
        check(bHang.reason === "user_hangup", `bob hangup reason ${bHang.reason}`);
        const after = await bob.cmd("stats", { call_id });
        check(after.state === "ended", `bob state after hangup ${after.state}`);
        check(after.video_frames_decoded >= bStats.video_frames_decoded, `bob stats after hangup ${JSON.stringify(after)}`);

        const t0 = placed.t_ms;
        console.log(
            `[${label}] timings from place_call (ms): invite at bob ${incoming.t_ms - t0}, ` +
                `connected alice ${aConn.t_ms - t0} / bob ${bConn.t_ms - t0}, ` +
                `first frame alice ${aFrame.t_ms - t0} / bob ${bFrame.t_ms - t0}; ` +
                `pair ${aStats.selected_pair.local_type}->${aStats.selected_pair.remote_type}, ` +
                `codec ${aStats.video_codec}`,
        );

        // Second call: bob rejects it.
        await bob.cmd("auto_answer", { enabled: false });
        const second = await alice.cmd("place_call", { room_id, video: true });
        const isSecond = (ev) => (e) => e.event === ev && e.call_id === second.call_id;
        await bob.event("incoming", isSecond("incoming"));
        await bob.cmd("reject", { call_id: second.call_id });
        const [aRej, bRej] = await Promise.all([
            alice.event("hangup", isSecond("hangup")),
            bob.event("hangup", isSecond("hangup")),
        ]);
        check(aRej.party === "remote" && bRej.party === "local", `reject parties ${aRej.party}/${bRej.party}`);

        // Third call: voice only, answered by command, hung up by bob.
        const third = await alice.cmd("place_call", { room_id, video: false });
        const isThird = (ev) => (e) => e.event === ev && e.call_id === third.call_id;
        const inc3 = await bob.event("incoming", isThird("incoming"));
        check(inc3.video === false, `voice call announced as video`);
        await bob.cmd("answer", { call_id: third.call_id });
        await Promise.all([alice.event("connected", isThird("connected")), bob.event("connected", isThird("connected"))]);
        await bob.cmd("hangup", { call_id: third.call_id });
        const aHang3 = await alice.event("hangup", isThird("hangup"));
        check(aHang3.party === "remote" && aHang3.reason === "user_hangup", `voice hangup ${JSON.stringify(aHang3)}`);
        console.log(`[${label}] reject and voice call ok`);

        const codes = await Promise.all([alice.quit(), bob.quit()]);
        check(codes.every((c) => c === 0), `peer exit codes ${codes}`);
    } finally {
        alice.proc.kill();
        bob.proc.kill();
    }
}

let passed = 0;
let failed = 0;
for (const [label, encrypted] of [
    ["plain", false],
    ["encrypted", true],
]) {
    try {
        await scenario(label, encrypted);
        console.log(`[${label}] PASS`);
        passed++;
    } catch (e) {
        console.log(`[${label}] FAIL: ${e.message}`);
        failed++;
    }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
