// Drives the lab page in headless Chromium (Debian's /usr/bin/chromium through playwright-core):
// load, add a task, toggle it, delete it, press every observability button, flush the browser's
// spans, take a screenshot. Prints one JSON line with what it saw; exit 0 only if every step
// worked. Every request that does not go to 127.0.0.1 is aborted and reported.
//
// usage: node page_test.mjs --url http://127.0.0.1:PORT/ --out DIR [--chromium /usr/bin/chromium]
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const url = arg('url');
const out = arg('out');
const executablePath = arg('chromium', '/usr/bin/chromium');
if (!url || !out) {
  console.error('usage: node page_test.mjs --url URL --out DIR [--chromium PATH]');
  process.exit(2);
}
const origin = new URL(url);
if (origin.hostname !== '127.0.0.1') {
  console.error('page_test: only http://127.0.0.1 URLs are allowed');
  process.exit(2);
}

const result = {
  url,
  steps: [],
  offHostRequests: [],
  pageErrors: [],
  cspViolations: [],
  apiRequests: [],
  otlpPosts: 0,
  screenshot: path.join(out, 'page.png'),
};

// Chromium must contact nothing but the test servers (DESIGN §6/§7).
const userDataDir = mkdtempSync(path.join(out, 'chromium-profile-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1100, height: 1000 },
  timeout: 60000,
});

let failed = null;
try {
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === '127.0.0.1' && u.port === origin.port) {
      return route.continue();
    }
    result.offHostRequests.push(route.request().url());
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(20000);
  page.on('pageerror', (err) => result.pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
      result.cspViolations.push(msg.text());
    }
  });
  page.on('request', async (req) => {
    const u = new URL(req.url());
    if (u.pathname.startsWith('/api/')) {
      const headers = await req.allHeaders();
      result.apiRequests.push({ method: req.method(), path: u.pathname + u.search, traceparent: headers.traceparent || null });
    } else if (u.pathname.startsWith('/otlp/')) {
      result.otlpPosts += 1;
    }
  });

  const step = async (name, fn) => {
    const started = Date.now();
    await fn();
    result.steps.push({ name, ms: Date.now() - started });
  };
  const statusContains = (text) =>
    page.waitForFunction((t) => document.getElementById('status').textContent.includes(t), text);

  await step('load', async () => {
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForSelector('body[data-ready="true"]');
    result.title = await page.title();
  });

  const title = 'Browser test task ' + Date.now();
  await step('add', async () => {
    await page.fill('#task-title', title);
    await page.fill('#task-description', 'added by headless Chromium');
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/tasks') && r.request().method() === 'POST'),
      page.click('#add-task'),
    ]);
    const headers = await response.request().allHeaders();
    result.post = { status: response.status(), traceparent: headers.traceparent || null, task: await response.json() };
    await page.waitForSelector(`li[data-id="${result.post.task.id}"]`);
    await statusContains('Added task #' + result.post.task.id);
  });
  const item = `li[data-id="${result.post.task.id}"]`;

  await step('toggle', async () => {
    await page.click(`${item} .toggle`);
    await page.waitForSelector(`${item}.done`);
    result.completedAfterToggle = await page.textContent('#stat-completed');
  });

  await step('delete', async () => {
    await page.click(`${item} .delete`);
    await page.waitForSelector(item, { state: 'detached' });
  });

  await step('simulate-error', async () => {
    await page.click('#btn-error');
    await statusContains('simulate-error failed');
  });
  await step('simulate-slow', async () => {
    await page.click('#btn-slow');
    await statusContains('Slow request (2 s) done');
  });
  await step('bulk-create', async () => {
    await page.click('#btn-bulk');
    await statusContains('Created 5 tasks');
  });
  await step('db-smoke', async () => {
    await page.click('#btn-smoke');
    await statusContains('DB smoke:');
  });

  result.stats = {
    total: await page.textContent('#stat-total'),
    completed: await page.textContent('#stat-completed'),
    pending: await page.textContent('#stat-pending'),
  };
  result.statusText = await page.textContent('#status');
  result.links = await page.$$eval('a[data-port]', (as) => as.map((a) => a.href));

  await step('flush', async () => {
    await page.evaluate(() => window.labTracing.flush());
  });
  await page.screenshot({ path: result.screenshot, fullPage: true });
} catch (err) {
  failed = String(err && err.stack ? err.stack : err);
} finally {
  await context.close();
}

if (!failed && result.offHostRequests.length > 0) {
  failed = 'requests to other hosts: ' + result.offHostRequests.join(', ');
}
if (!failed && result.pageErrors.length > 0) {
  failed = 'uncaught page errors: ' + result.pageErrors.join(' | ');
}
if (!failed && result.cspViolations.length > 0) {
  failed = 'Content-Security-Policy violations: ' + result.cspViolations.join(' | ');
}
result.ok = failed === null;
result.error = failed;
writeFileSync(path.join(out, 'result.json'), JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
