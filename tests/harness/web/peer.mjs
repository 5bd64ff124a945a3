#!/usr/bin/env node
// Browser call peer for the intercom tests: matrix-js-sdk (Element Web's engine) in
// headless Chromium, driven by JSON lines.
//
//   node peer.mjs [--relay-only] [--name NAME] [--quiet]
//
// stdout carries only JSON lines:
//   {"event":"ready"}                       once the page is loaded
//   {"id":N,"ok":true,...}                  exactly one answer per command
//   {"id":N,"ok":false,"error":"..."}
//   {"event":"...",...}                     things the page observed (see README.md)
// stdin: one JSON command per line, e.g. {"id":1,"cmd":"login",...}. Commands run
// concurrently; answers come in completion order, matched by id.
// stderr: browser console (prefixed with [NAME]), page errors, diagnostics.
//   --quiet drops console.log/debug lines (matrix-js-sdk's debug logging), keeping
//   warnings and errors.
// On stdin EOF or {"cmd":"quit"}: closes the browser, removes its profile dir, exits 0.
//
// Needs dist/ (node build.mjs). Chromium: $CHROMIUM_PATH or /usr/bin/chromium.

import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, sep } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const distDir = join(here, "dist");

// ---------------------------------------------------------------- arguments

const argv = process.argv.slice(2);
let relayOnly = false;
let name = "peer";
let quiet = false;
for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--relay-only") relayOnly = true;
    else if (argv[i] === "--quiet") quiet = true;
    else if (argv[i] === "--name" && i + 1 < argv.length) name = argv[++i];
    else {
        process.stderr.write(`usage: node peer.mjs [--relay-only] [--name NAME] [--quiet]\n`);
        process.exit(2);
    }
}

// ---------------------------------------------------------------- output

function out(obj) {
    // Writes to a pipe are synchronous on Linux, so lines never interleave.
    process.stdout.write(JSON.stringify(obj) + "\n");
}
function diag(msg) {
    process.stderr.write(`[${name}] ${msg}\n`);
}

// ---------------------------------------------------------------- static server for dist/

const MIME = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".css": "text/css",
};

try {
    statSync(join(distDir, "index.html"));
    statSync(join(distDir, "page.js"));
} catch {
    diag(`${distDir} is not built: run \`node build.mjs\` in ${here}`);
    process.exit(1);
}

// A dist/ older than its sources is most likely a forgotten rebuild.
for (const src of ["page.js", "index.html"]) {
    if (statSync(join(here, src)).mtimeMs > statSync(join(distDir, "page.js")).mtimeMs) {
        diag(`warning: ${src} is newer than dist/: run \`node build.mjs\``);
    }
}

const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path === "/favicon.ico") {
        res.writeHead(204).end(); // keeps a 404 line out of the console
        return;
    }
    const file = normalize(join(distDir, path === "/" ? "index.html" : path));
    if (!file.startsWith(distDir + sep)) {
        res.writeHead(403).end();
        return;
    }
    let body;
    try {
        body = readFileSync(file);
    } catch {
        res.writeHead(404).end();
        return;
    }
    res.writeHead(200, {
        "content-type": MIME[extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store",
    });
    res.end(body);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const pageUrl =
    `http://127.0.0.1:${server.address().port}/index.html?` +
    new URLSearchParams({ name, relay_only: relayOnly ? "1" : "0" });

// ---------------------------------------------------------------- browser

const userDataDir = mkdtempSync(join(tmpdir(), "intercom-web-peer-"));
let context = null;
let page = null;
let shuttingDown = false;

async function shutdown(code) {
    if (shuttingDown) return;
    shuttingDown = true;
    try {
        await context?.close();
    } catch (e) {
        diag(`closing browser: ${e.message}`);
    }
    server.close();
    rmSync(userDataDir, { recursive: true, force: true });
    process.exit(code);
}

function browserGone(why) {
    if (shuttingDown) return;
    diag(`browser gone: ${why}`);
    out({ event: "browser_closed" });
    shutdown(1);
}

process.on("SIGTERM", () => shutdown(0));
process.on("SIGINT", () => shutdown(0));

try {
    context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
        headless: true,
        viewport: { width: 1280, height: 720 },
        args: [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            "--allow-loopback-in-peer-connection",
            "--disable-dev-shm-usage",
        ],
    });
    context.on("close", () => browserGone("context closed"));
    page = context.pages()[0] ?? (await context.newPage());
    page.on("crash", () => browserGone("page crashed"));
    page.on("close", () => browserGone("page closed"));
    page.on("console", (msg) => {
        const type = msg.type();
        if (quiet && (type === "log" || type === "debug" || type === "info")) return;
        // Prefix every line (the crypto library logs multi-line Rust tracing spans).
        const lines = msg.text().split("\n");
        process.stderr.write(lines.map((l, i) => `[${name}] ${i ? "  " : `console.${type}: `}${l}\n`).join(""));
    });
    page.on("pageerror", (err) => diag(`page error: ${err.stack || err.message}`));
    // Asynchronous observations of the page: {"event": ...} objects, printed as they come.
    await page.exposeFunction("__peerEvent", (obj) => out(obj));
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.peer?.ready === true, null, { timeout: 30_000 });
} catch (e) {
    diag(`startup failed: ${e.stack || e.message}`);
    await shutdown(1);
}

out({ event: "ready" });

// ---------------------------------------------------------------- commands

/** cmd -> window.peer method; the whole command object is passed as its argument. */
const PAGE_METHODS = {
    login: "login",
    create_room: "createRoom",
    join: "join",
    invite: "invite",
    leave: "leave",
    wait_member: "waitMember",
    place_call: "placeCall",
    auto_answer: "setAutoAnswer",
    answer: "answer",
    reject: "reject",
    hangup: "hangup",
    set_video_muted: "setVideoMuted",
    send_dtmf: "sendDtmf",
    send_text: "sendText",
    texts: "texts",
    stats: "stats",
    timings: "timings",
    calls: "listCalls",
    synthetic_media: "syntheticMedia",
    media_latency: "mediaLatency",
    version: "version",
};

/** page.evaluate errors read "page.evaluate: Error: msg\n    at ..."; keep "msg". */
function cleanError(e) {
    let msg = String(e?.message ?? e);
    msg = msg.replace(/^page\.evaluate: /, "").replace(/^(Error|TypeError|MatrixError|CallError): /, "");
    return msg.split("\n    at ")[0].trim();
}

async function run(cmd) {
    switch (cmd.cmd) {
        case "screenshot":
            if (!cmd.path) throw new Error("screenshot needs path");
            await page.screenshot({ path: cmd.path });
            return { path: cmd.path };
        case "quit":
            return {};
        default: {
            const method = PAGE_METHODS[cmd.cmd];
            if (!method) throw new Error(`unknown cmd ${JSON.stringify(cmd.cmd)}`);
            return await page.evaluate(([m, arg]) => window.peer[m](arg), [method, cmd]);
        }
    }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", async (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
        cmd = JSON.parse(line);
    } catch (e) {
        out({ id: null, ok: false, error: `bad JSON: ${e.message}` });
        return;
    }
    const id = cmd?.id ?? null;
    try {
        const result = await run(cmd);
        if (shuttingDown) return;
        out({ id, ok: true, ...result });
        if (cmd.cmd === "quit") await shutdown(0);
    } catch (e) {
        if (shuttingDown) return;
        out({ id, ok: false, error: cleanError(e) });
    }
});
rl.on("close", () => shutdown(0));
