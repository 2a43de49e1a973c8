// test_ui.js: drives Debian's chromium (headless, through playwright-core; no browser is ever
// downloaded) against a running tailjet's /ui/ page. Called by test_ui.py, which starts tailjet
// and checks what this prints.
//
//   node test_ui.js BASE_URL SCREENSHOT.png WEB_LOG [TOKEN_BASE_URL TOKEN]
//
// Prints one JSON object on stdout: the services the table shows, the workbench's records
// (field name -> value, and whether each is marked failed), the error shown for an invalid
// pattern, the live tail of web (lines this script appends to WEB_LOG, web's json-file log, once
// the tail is streaming), and, given a tailjet that has a token, the status and text of /ui/ without the
// token and whether the table loads with it.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [base, shot, webLog, tokenBase, token] = process.argv.slice(2);
const TIMEOUT = 30000;

async function fields(page) {
  return page.$$eval("#wb-results .record", (recs) => recs.map((r) => ({
    failed: r.classList.contains("failed"),
    line: r.querySelector(".line").textContent,
    fields: Object.fromEntries([...r.querySelectorAll("tr.field")].map((tr) =>
      [tr.dataset.name, tr.querySelector(".value").textContent])),
  })));
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tj-chromium-"));
  // A fresh profile of our own (playwright passes it as --user-data-dir).
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.TJ_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
    bypassCSP: true, // the page forbids eval; playwright's waitForFunction needs it
    timeout: TIMEOUT,
  });
  const out = {};
  try {
    const page = await ctx.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const resp = await page.goto(base + "/ui/");
    out.status = resp.status();
    await page.waitForSelector('#services tbody tr[data-service="web"]');
    await page.waitForFunction(() => [...document.querySelectorAll("#services td.rate")]
      .every((td) => td.textContent !== "…"));
    out.services = await page.$$eval("#services tbody tr[data-service]", (trs) =>
      trs.map((tr) => ({ name: tr.dataset.service, patterns: tr.children[4].textContent,
                         tags: tr.children[3].textContent, share: tr.children[2].textContent })));
    // the last failures of web, opened
    await page.click('#services tbody tr[data-service="web"] button');
    await page.waitForSelector("#services tr.fails-row .fails div.mono");
    out.web_failures = await page.$$eval("#services tr.fails-row .fails div.mono",
                                         (ds) => ds.map((d) => d.textContent));
    // the workbench
    await page.fill("#wb-pattern", "%{WORD:verb} %{URIPATH:url.path} %{INT:status:int}");
    await page.fill("#wb-lines", "GET /index.html 200\nthis line misses\nPOST /api/items 201");
    await page.click("#wb-run");
    await page.waitForSelector("#wb-results .record");
    out.records = await fields(page);
    // the live tail of web: lines appended once it streams
    await page.selectOption("#tail-service", "web");
    await page.click("#tail-start");
    await page.waitForFunction(() => document.getElementById("tail-info").textContent
      .startsWith("streaming"));
    const t0 = Date.parse("2026-12-07T10:00:00Z");
    let lines = "";
    for (let i = 0; i < 6; i++) {
      const msg = i % 3 === 2 ? "tail " + i + " misses the pattern" : "GET /tail/" + i + " 200";
      lines += JSON.stringify({ log: msg + "\n", stream: "stdout",
                                time: new Date(t0 + i).toISOString() }) + "\n";
    }
    fs.appendFileSync(webLog, lines);
    await page.waitForFunction(() => document.querySelectorAll("#tail div").length >= 6);
    out.tail = await page.$$eval("#tail div", (ds) => ds.map((d) => ({ text: d.textContent,
                                                                       failed: d.classList.contains("failed") })));
    await page.screenshot({ path: shot, fullPage: true });
    await page.click("#tail-stop");
    // an invalid pattern
    await page.fill("#wb-pattern", "%{WORD:verb} (unclosed");
    await page.click("#wb-run");
    await page.waitForSelector("#wb-error div");
    out.error = await page.$eval("#wb-error", (e) => e.textContent);
    // legacy field names, and a definition of the request's own
    await page.selectOption("#wb-ecs", "disabled");
    await page.fill("#wb-defs", "MYWORD [a-z]+");
    await page.fill("#wb-pattern", "%{COMMONAPACHELOG} %{MYWORD:extra}");
    await page.fill("#wb-lines",
                    '10.1.2.3 - - [07/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 12 tail');
    await page.click("#wb-run");
    await page.waitForSelector("#wb-results .record");
    out.legacy = await fields(page);
    await page.close();
    if (tokenBase) {
      const p2 = await ctx.newPage();
      p2.setDefaultTimeout(TIMEOUT);
      const r2 = await p2.goto(tokenBase + "/ui/");
      out.no_token = { status: r2.status(), text: await p2.textContent("body") };
      const r3 = await p2.goto(tokenBase + "/ui/?token=" + encodeURIComponent(token));
      await p2.waitForSelector("#services tbody tr[data-service]");
      out.with_token = { status: r3.status(),
                         services: await p2.$$eval("#services tbody tr[data-service]",
                                                   (trs) => trs.map((tr) => tr.dataset.service)) };
    }
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => { console.error("test_ui.js: " + (e && e.stack || e)); process.exit(1); });
