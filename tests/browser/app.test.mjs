// The app example in a real browser: two headless Chromium pages on one server port. Page A gets
// the Greeter's reply over gRPC-Web; a chat line typed in page A appears in page B over WebSocket,
// whose connections negotiated permessage-deflate.
//
// Run from tests/browser: `npm ci && node --test`. Builds the example with cargo, starts it on
// 127.0.0.1:0, reads the URL it prints, and always stops it. CHROMIUM overrides /usr/bin/chromium.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const WAIT_MS = 15_000;

// Chromium flags that work headless in containers, as root, without network side traffic.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Builds the example and returns the path of its binary, as cargo reports it. */
function buildApp() {
  const output = execFileSync(
    "cargo",
    // --all-features: the same build as `cargo test --all-features`, so nothing is compiled twice.
    ["build", "--quiet", "--all-features", "--example", "app", "--message-format=json-render-diagnostics"],
    { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 << 20 },
  );
  for (const line of output.split("\n").reverse()) {
    if (!line.startsWith("{")) continue;
    const message = JSON.parse(line);
    if (message.reason === "compiler-artifact" && message.target?.name === "app" && message.executable) {
      return message.executable;
    }
  }
  throw new Error("cargo did not report the app example's executable");
}

/** Starts the server on a free port; resolves with the process and the URL it prints. */
function startApp(binary) {
  const server = spawn(binary, ["127.0.0.1:0"], {
    cwd: repo,
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server printed no URL in time")), WAIT_MS);
    server.once("exit", (code) => reject(new Error(`server exited early with ${code}`)));
    createInterface({ input: server.stdout }).on("line", (line) => {
      const match = line.match(/listening on (http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve({ server, url: match[1] + "/" });
      }
    });
  });
}

/** Stops the server with SIGTERM (its graceful shutdown), SIGKILL if it lingers. */
async function stopApp(server) {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server.once("exit", resolve));
  server.kill("SIGTERM");
  const timer = setTimeout(() => server.kill("SIGKILL"), WAIT_MS);
  await exited;
  clearTimeout(timer);
}

test("greeting over gRPC-Web and chat over WebSocket between two pages", { timeout: 240_000 }, async () => {
  const binary = buildApp();
  const { server, url } = await startApp(binary);
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: CHROMIUM_ARGS,
      timeout: WAIT_MS * 2,
    });
    // Two contexts: two independent "tabs" with their own connections.
    const pageA = await (await browser.newContext()).newPage();
    const pageB = await (await browser.newContext()).newPage();
    for (const page of [pageA, pageB]) {
      page.setDefaultTimeout(WAIT_MS);
      page.on("pageerror", (error) => console.error("page error:", error));
      await page.goto(url);
      await page.locator("#status", { hasText: "connected" }).waitFor();
    }

    await pageA.fill("#name", "Ada");
    await pageA.click("#greet");
    await pageA.locator("#greeting", { hasText: "Hello Ada" }).waitFor();
    assert.equal(await pageA.textContent("#greeting"), "Hello Ada");

    await pageA.fill("#chat-input", "hi from page A");
    await pageA.click("#chat-send");
    await pageB.locator("#chat-log li", { hasText: "Ada: hi from page A" }).waitFor();
    const lines = await pageB.locator("#chat-log li").allTextContents();
    assert.ok(lines.includes("Ada: hi from page A"), JSON.stringify(lines));

    // Both pages' WebSockets negotiated permessage-deflate (RFC 7692), which Chromium offers on
    // every connection and the server accepts by default.
    for (const page of [pageA, pageB]) {
      const extensions = await page.evaluate(() => socket.extensions);
      assert.match(extensions, /^permessage-deflate/, `Sec-WebSocket-Extensions: ${extensions}`);
    }
    // A line long enough to be compressed both ways (over the server's 64-byte threshold).
    const long = "compressible chat line ".repeat(12).trim();
    await pageA.fill("#chat-input", long);
    await pageA.click("#chat-send");
    await pageB.locator("#chat-log li", { hasText: long }).waitFor();
  } finally {
    await browser?.close().catch(() => {});
    await stopApp(server);
  }
});
