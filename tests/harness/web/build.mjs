// Builds the browser test peer into dist/: `node build.mjs`.
//
// - page.js (+ matrix-js-sdk and its Rust crypto bindings) is bundled by esbuild into
//   dist/page.js as an ES module. It must stay ESM: the crypto package locates its
//   WebAssembly file with `new URL("./pkg/matrix_sdk_crypto_wasm_bg.wasm", import.meta.url)`
//   and fetches it when `initRustCrypto()` runs, so the .wasm is copied to
//   dist/pkg/ next to the bundle (served as application/wasm by peer.mjs).
// - index.html is copied as is.
//
// Idempotent: dist/ is wiped and rebuilt every time.

import * as esbuild from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

// matrix-js-sdk depends on the crypto package; resolve it the way the bundle does
// (its package.json "exports" does not expose package.json, so go via node_modules).
const require = createRequire(join(here, "node_modules", "matrix-js-sdk", "package.json"));
let cryptoPkgDir;
try {
    cryptoPkgDir = dirname(require.resolve("@matrix-org/matrix-sdk-crypto-wasm/pkg/matrix_sdk_crypto_wasm_bg.wasm"));
} catch {
    // "exports" hides sub-paths: fall back to the conventional layout.
    cryptoPkgDir = join(here, "node_modules", "@matrix-org", "matrix-sdk-crypto-wasm", "pkg");
}
const wasmName = "matrix_sdk_crypto_wasm_bg.wasm";

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "pkg"), { recursive: true });

const result = await esbuild.build({
    entryPoints: [join(here, "page.js")],
    outfile: join(dist, "page.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    sourcemap: "linked",
    // matrix-js-sdk's package.json has a "browser" entry (lib/browser-index.js); esbuild's
    // browser platform picks it. No minification: stack traces in stderr stay readable.
    minify: false,
    logLevel: "warning",
    define: { "process.env.NODE_ENV": '"production"' },
});
if (result.errors.length) process.exit(1);

cpSync(join(cryptoPkgDir, wasmName), join(dist, "pkg", wasmName));
cpSync(join(here, "index.html"), join(dist, "index.html"));

console.error(`built ${dist}`);
