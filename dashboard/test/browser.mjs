#!/usr/bin/env node
// Drives the dashboard in Debian's headless Chromium and reports what it saw.
//
//   node dashboard/test/browser.mjs --url <URL> --screenshot <PATH> [--min-samples 2] [--timeout-s 60]
//
// Prints ONE line of JSON on stdout:
//   {"state", "samples", "panels": {"<id>": {"points", "error"}}, "console_errors",
//    "page_errors", "failed_requests", "title"}
// Exit codes: 0 = ran and reached --min-samples; 1 = samples never arrived
// (JSON and screenshot still produced); 2 = the browser could not start
// (or bad arguments).
//
// Uses playwright-core only: it never downloads a browser.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const CHROMIUM = process.env.FRONTIER_CHROMIUM || '/usr/bin/chromium';
const INSTALL_HINT = "install Debian's chromium: `ops/stack up` installs it, "
  + 'or `apt-get install chromium chromium-driver`';

function usage(msg) {
  process.stderr.write(`${msg}\nusage: node dashboard/test/browser.mjs --url <URL> --screenshot <PATH> `
    + '[--min-samples 2] [--timeout-s 60]\n');
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      url: { type: 'string' },
      screenshot: { type: 'string' },
      'min-samples': { type: 'string', default: '2' },
      'timeout-s': { type: 'string', default: '60' },
    },
    strict: true,
  }));
} catch (err) {
  usage(err.message);
}
if (!args.url) usage('missing --url');
if (!args.screenshot) usage('missing --screenshot');
const minSamples = Number(args['min-samples']);
const timeoutS = Number(args['timeout-s']);
if (!Number.isInteger(minSamples) || minSamples < 0) usage('--min-samples must be a non-negative integer');
if (!Number.isFinite(timeoutS) || timeoutS <= 0) usage('--timeout-s must be a positive number');
const screenshotPath = resolve(args.screenshot);

// Never print the API key that travels in the URL fragment.
function redact(url) {
  return String(url).replace(/#.*$/, '#…');
}

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (err) {
  process.stderr.write(`browser.mjs: cannot load playwright-core (${err.message}); run \`npm ci\` in dashboard/\n`);
  process.exit(2);
}

if (!existsSync(CHROMIUM)) {
  process.stderr.write(`browser.mjs: ${CHROMIUM} not found; ${INSTALL_HINT}\n`);
  process.exit(2);
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
} catch (err) {
  process.stderr.write(`browser.mjs: cannot start ${CHROMIUM}: ${err.message}\n${INSTALL_HINT}\n`);
  process.exit(2);
}

const consoleErrors = [];
const pageErrors = [];
const failedRequests = [];

let exitCode = 1;
let report;
let closing = false;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => pageErrors.push(String(err && err.message ? err.message : err)));
  page.on('requestfailed', (req) => {
    const why = req.failure() ? req.failure().errorText : 'failed';
    // Aborting the event stream when the page closes is not a failure.
    if (closing && /ERR_ABORTED/.test(why)) return;
    failedRequests.push(`${req.method()} ${redact(req.url())}: ${why}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) {
      failedRequests.push(`${res.request().method()} ${redact(res.url())}: HTTP ${res.status()}`);
    }
  });

  const deadline = Date.now() + timeoutS * 1000;
  let reached = false;
  try {
    await page.goto(args.url, { waitUntil: 'domcontentloaded', timeout: timeoutS * 1000 });
    const left = Math.max(1, deadline - Date.now());
    await page.waitForFunction(
      (n) => Number((document.body && document.body.dataset.samples) || 0) >= n,
      minSamples,
      { timeout: left, polling: 100 },
    );
    reached = true;
  } catch (err) {
    if (!/Timeout|timeout/.test(String(err && err.message))) {
      // First line only: playwright appends a coloured call log.
      pageErrors.push(`browser.mjs: ${String(err.message).split('\n')[0]}`);
    }
  }
  await page.waitForTimeout(500);

  try {
    await mkdir(dirname(screenshotPath), { recursive: true });
    await page.screenshot({ path: screenshotPath, fullPage: true });
  } catch (err) {
    process.stderr.write(`browser.mjs: screenshot failed: ${err.message}\n`);
  }

  const seen = await page.evaluate(() => {
    const body = document.body;
    const panels = {};
    for (const el of document.querySelectorAll('[data-panel]')) {
      panels[el.dataset.panel] = {
        points: Number(el.dataset.points || 0),
        error: el.dataset.error === '1',
      };
    }
    return {
      state: body ? body.dataset.state || null : null,
      samples: Number((body && body.dataset.samples) || 0),
      panels,
      title: document.title,
    };
  }).catch((err) => {
    pageErrors.push(`browser.mjs: ${err.message}`);
    return { state: null, samples: 0, panels: {}, title: null };
  });

  report = {
    state: seen.state,
    samples: seen.samples,
    panels: seen.panels,
    console_errors: consoleErrors.slice(),
    page_errors: pageErrors.slice(),
    failed_requests: failedRequests.slice(),
    title: seen.title,
  };
  exitCode = reached && seen.samples >= minSamples ? 0 : 1;
  closing = true;
  await context.close().catch(() => {});
} catch (err) {
  process.stderr.write(`browser.mjs: browser session failed: ${err.message}\n${INSTALL_HINT}\n`);
  exitCode = 2;
  report = {
    state: null,
    samples: 0,
    panels: {},
    console_errors: consoleErrors,
    page_errors: pageErrors.concat(String(err.message)),
    failed_requests: failedRequests,
    title: null,
  };
} finally {
  closing = true;
  await browser.close().catch(() => {});
}

process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(exitCode);
