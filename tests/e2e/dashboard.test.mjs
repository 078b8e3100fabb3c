// End-to-end test of the executord dashboard in headless Chromium (playwright-core, the
// system's Chromium). Started by tests/e2e/run.sh, which provides:
//   E2E_BASE_URL   the running executord (started with --api-token-file)
//   E2E_TOKEN      its API token
//   E2E_ARTIFACTS  where the screenshots go (NN-step.png; NN-step-FAILED.png on failure)
//   CHROMIUM_BIN   the browser (default /usr/bin/chromium)
//
// Each step runs in order and ends with a screenshot. Any console error, uncaught
// exception, failed request, HTTP error response or JS dialog (alert) fails the step, except
// the HTTP statuses a step provokes on purpose (and then it checks they really happened).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = need('E2E_BASE_URL');
const TOKEN = need('E2E_TOKEN');
const ART = need('E2E_ARTIFACTS');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const RUN = Math.random().toString(36).slice(2, 8);        // tags this run's jobs
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`dashboard.test: ${name} is not set (run tests/e2e/run.sh)`); process.exit(2); }
  return v;
}

// ---- the API, from the test's side (cross-checks and fixtures) ----------------------------
async function apiCall(method, p, body) {
  const res = await fetch(BASE + p, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p} → ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

// ---- browser and the problem watchers --------------------------------------------------------
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'executord-e2e-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(15000);

let allowed = new Set();          // HTTP statuses the current step provokes on purpose
const provoked = [];              // [status, "METHOD url"] seen among the allowed ones
const problems = [];
let closing = false;
page.on('console', (msg) => {
  if (closing || msg.type() !== 'error') return;
  const m = /status of (\d{3})/.exec(msg.text());
  if (m && allowed.has(Number(m[1]))) return;
  problems.push(`console error: ${msg.text()} (${msg.location()?.url || 'no location'})`);
});
page.on('pageerror', (e) => { if (!closing) problems.push(`uncaught exception in the page: ${e.message}`); });
page.on('requestfailed', (r) => {
  if (!closing) problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
});
page.on('response', (r) => {
  if (closing || r.status() < 400) return;
  const what = `${r.request().method()} ${r.url()}`;
  if (allowed.has(r.status())) provoked.push([r.status(), what]);
  else problems.push(`HTTP ${r.status()} for ${what}`);
});
page.on('dialog', async (d) => {
  problems.push(`unexpected JavaScript dialog (${d.type()}): ${d.message()} — page content was executed`);
  await d.dismiss().catch(() => {});
});
const posts = [];
page.on('request', (r) => { if (r.method() === 'POST') posts.push(r.url()); });

// ---- the step harness -------------------------------------------------------------------------
fs.mkdirSync(ART, { recursive: true });
let stepNo = 0;
let shotNo = 0;
let failed = false;

async function shot(name) {
  const file = path.join(ART, `${String(++shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true }).catch((e) => console.error(`  (screenshot failed: ${e.message})`));
  return file;
}

async function step(name, opts, fn) {
  if (typeof opts === 'function') { fn = opts; opts = {}; }
  stepNo++;
  allowed = new Set(opts.allow || []);
  provoked.length = 0;
  const t0 = Date.now();
  try {
    await fn();
    await page.waitForTimeout(200);      // let late console messages of this step arrive
    if (problems.length) throw new Error(`the page reported problems:\n    ${problems.join('\n    ')}`);
    await shot(name);
    console.log(`ok ${stepNo} - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed = true;
    const file = await shot(`${name}-FAILED`);
    console.error(`not ok ${stepNo} - ${name}\n  ${String(e.stack || e).split('\n').join('\n  ')}\n  screenshot: ${file}`);
    throw e;
  } finally {
    allowed = new Set();
    problems.length = 0;
  }
}

// ---- page helpers -----------------------------------------------------------------------------
/** page.waitForFunction, failing with a message that says what was awaited. */
async function until(what, fn, arg = null, timeout = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for: ${what}${/Timeout/.test(e.message) ? '' : ` (${e.message})`}`);
  }
}

const text = async (sel) => (await page.locator(sel).textContent()) ?? '';

async function waitStatus(status, timeout = 30000) {
  await page.waitForFunction((s) => document.querySelector('#job-status .badge')?.dataset.status === s,
    status, { timeout }).catch(async () => {
    const now = await page.locator('#job-status .badge').getAttribute('data-status').catch(() => 'none');
    throw new Error(`the job page did not show status "${status}" within ${timeout} ms (it shows "${now}")`);
  });
}

async function openForm() {
  await page.click('nav.mainnav a[data-nav="new"]');
  await page.waitForSelector('#submit-form');
  // the backend choices come from GET /v1/backends
  await until('the backend choices from GET /v1/backends', () => document.querySelectorAll('#f-backend option').length > 1);
}

async function fillForm({ script, inputs = '{}', labels = '', timeout = '', backend = '' }) {
  await page.fill('#f-script', script);
  await page.fill('#f-inputs', inputs);
  await page.fill('#f-labels', labels);
  await page.fill('#f-timeout', timeout);
  await page.selectOption('#f-backend', backend);
}

async function submitAndOpenJob() {
  await page.click('#f-submit');
  await page.waitForURL(new RegExp(`#/jobs/${UUID}$`)).catch(async () => {
    const err = await page.locator('#form-error').textContent().catch(() => '');
    throw new Error(`submitting did not open the new job's page (form error: ${err || 'none'})`);
  });
  const id = new RegExp(`#/jobs/(${UUID})$`).exec(page.url())[1];
  await page.waitForSelector('#job-status .badge');
  assert.equal(await text('#job-id'), id, 'the job page shows the job id');
  return id;
}

async function listIds() {
  return page.$$eval('#jobs-tbody tr.job-row', (rows) => rows.map((r) => r.dataset.jobId));
}

/** Waits until the list shows exactly `want` (ids in this order) among the given ids. */
async function waitListed(predicate, description, timeout = 10000) {
  const t0 = Date.now();
  let ids = [];
  while (Date.now() - t0 < timeout) {
    ids = await listIds();
    if (predicate(ids)) return ids;
    await page.waitForTimeout(150);
  }
  throw new Error(`the job list never showed ${description}; it shows ${JSON.stringify(ids)}`);
}

// ---- the scenario -----------------------------------------------------------------------------
const LIVE_SCRIPT = `import time

def main(n):
    for i in range(n):
        print(f"line {i}", flush=True)
        time.sleep(0.3)
    return {"total": n, "ok": True, "squares": [i * i for i in range(4)]}
`;
const FAIL_SCRIPT = `def helper(x):
    raise ValueError(f"boom {x}")

def main(x):
    print("about to fail", flush=True)
    helper(x)
`;
const SLOW_SCRIPT = `import time

def main():
    print("started", flush=True)
    time.sleep(120)
    return "should never get here"
`;
const XSS_SCRIPT = `import sys

def main():
    print("<img src=x onerror=alert(1)>", flush=True)
    print("<script>alert(2)</script>", file=sys.stderr, flush=True)
    return "<b>bold</b><img src=y onerror=alert(3)>"
`;
const ids = {};

try {
  await step('token-prompt', { allow: [401] }, async () => {
    await page.goto(`${BASE}/`);
    await page.locator('#token-dialog').waitFor({ state: 'visible' });
    assert.match(await text('#token-reason'), /requires a bearer token/);
    await shot('token-dialog');
    // a wrong token is refused and the dialog asks again
    await page.fill('#token-input', 'not-the-token');
    await page.click('#token-submit');
    await until('the dialog to say the wrong token was refused', () => /refused/.test(document.getElementById('token-reason').textContent)
      && document.getElementById('token-dialog').open);
    await page.fill('#token-input', TOKEN);
    await page.click('#token-submit');
    await page.locator('#token-dialog').waitFor({ state: 'hidden' });
    await page.waitForSelector('#jobs-tbody tr');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('executord.token')), TOKEN,
      'the token is kept in sessionStorage');
    await page.locator('#token-status').waitFor({ state: 'visible' });
    assert.ok(provoked.some(([s, w]) => s === 401 && w.includes('/v1/')), 'a 401 from /v1 was seen');
    assert.match(await text('#jobs-tbody'), /No jobs yet/);
  });

  await step('backends-panel', async () => {
    const api = await apiCall('GET', '/v1/backends');
    await page.waitForSelector('#backends-list .backend');
    for (const b of api.backends) {
      const chip = page.locator(`#backends-list .backend[data-backend="${b.name}"]`);
      assert.equal(await chip.count(), 1, `the backends panel lists ${b.name}`);
      assert.equal(typeof b.enabled, 'boolean', `GET /v1/backends says whether ${b.name} is enabled`);
      assert.equal(await chip.getAttribute('data-enabled'), String(b.enabled), `${b.name} enabled`);
      assert.equal(await chip.getAttribute('data-available'), String(b.available), `${b.name} availability`);
      const t = await chip.textContent();
      assert.equal(await chip.locator('.backend-avail').textContent(),
        !b.enabled ? 'not enabled' : b.available ? 'available' : 'unavailable',
        `${b.name} says whether it is enabled and available`);
      const cls = await chip.getAttribute('class');
      if (!b.enabled) {
        // not enabled (--backends) is the operator's choice, not a fault: grey, not red
        assert.match(cls, /\bis-off\b/, `${b.name} is shown as not enabled`);
        assert.doesNotMatch(cls, /\bis-down\b/, `${b.name} is not shown as broken`);
        assert.match(await chip.getAttribute('title'), /--backends/, `${b.name} says how to enable it`);
      } else if (!b.available) {
        assert.ok(t.includes(b.reason), `${b.name} shows why it is unavailable`);
      }
      if (b.note) assert.ok(t.includes(b.note), `${b.name} shows its note`);
      if (b.name === api.default) assert.match(t, /default/, `${b.name} is marked as the default`);
      if (b.state && b.state.size != null) {
        assert.match(t, new RegExp(`\\d+/${b.state.size} ready`), `${b.name} shows the pool's ready count`);
        assert.match(t, /\d+ busy/, `${b.name} shows the pool's busy count`);
        assert.match(await chip.getAttribute('data-state'), /^(ready|busy|empty|down)$/, 'pool state');
      }
    }
    assert.equal(await page.locator('#backends-list .backend').count(), api.backends.length);
    // run.sh starts executord with the default --backends (pool,ephemeral): direct is listed,
    // not enabled
    assert.equal(api.backends.find((b) => b.name === 'direct')?.enabled, false, 'direct is not enabled by default');
  });

  await step('form-backend-choices', async () => {
    const api = await apiCall('GET', '/v1/backends');
    await openForm();
    const options = await page.$$eval('#f-backend option', (os) => os.map((o) => ({ value: o.value, disabled: o.disabled })));
    assert.equal(options[0].value, '', 'the first choice is the service default');
    assert.deepEqual(options.slice(1).map((o) => o.value), api.backends.filter((b) => b.enabled).map((b) => b.name),
      'the form offers the enabled backends only');
    for (const b of api.backends.filter((x) => x.enabled)) {
      assert.equal(options.find((o) => o.value === b.name).disabled, !b.available, `${b.name} can be picked iff available`);
    }
  });

  await step('form-client-validation', async () => {
    await openForm();
    const before = posts.length;
    await fillForm({ script: LIVE_SCRIPT, inputs: '{"n": 10,' });
    await page.click('#f-submit');
    await page.locator('#f-inputs-error').waitFor({ state: 'visible' });
    assert.match(await text('#f-inputs-error'), /Inputs must be a JSON object/);
    assert.match(await text('#form-error'), /Inputs must be a JSON object/);
    assert.equal(await page.getAttribute('#f-inputs', 'aria-invalid'), 'true');
    await page.fill('#f-inputs', '[1, 2]');
    await page.click('#f-submit');
    await until('the inputs error to say an array is not an object', () => /got an array/.test(document.getElementById('f-inputs-error').textContent));
    await page.fill('#f-labels', 'no equals sign here');
    await page.fill('#f-inputs', '{}');
    await page.click('#f-submit');
    await page.locator('#f-labels-error').waitFor({ state: 'visible' });
    assert.match(await text('#f-labels-error'), /key=value/);
    assert.equal(posts.length, before, 'nothing was sent while the form was invalid');
    assert.match(page.url(), /#\/new$/);
  });

  await step('form-server-422', { allow: [422] }, async () => {
    await fillForm({ script: LIVE_SCRIPT, inputs: '{"n": 1}' });
    await page.fill('#f-memory_mb', '999999');
    await page.click('#f-submit');
    await page.locator('#form-error').waitFor({ state: 'visible' });
    await until('the form error to show the 422', () => /422/.test(document.getElementById('form-error').textContent));
    const msg = await text('#form-error');
    assert.match(msg, /422 invalid_field \(limits\.memory_mb\)/, `the 422 names the field: ${msg}`);
    assert.equal(await page.getAttribute('#f-memory_mb', 'aria-invalid'), 'true', 'the field is marked');
    assert.match(await text('#f-memory_mb-error'), /limits\.memory_mb/);
    assert.ok(provoked.some(([s, w]) => s === 422 && /POST .*\/v1\/jobs$/.test(w)), 'the 422 came from POST /v1/jobs');
    assert.match(page.url(), /#\/new$/, 'still on the form');
    await page.fill('#f-memory_mb', '');
  });

  await step('live-job-running', async () => {
    await fillForm({ script: LIVE_SCRIPT, inputs: '{"n": 10}', labels: `suite=e2e\nkind=ok\nrun=${RUN}`, timeout: '60' });
    ids.ok = await submitAndOpenJob();
    // stdout must appear while the job is still running: some lines, not all of them yet
    await page.waitForFunction(() => {
      const s = document.querySelector('#job-status .badge')?.dataset.status;
      const out = document.getElementById('log-stdout')?.textContent || '';
      return s === 'running' && out.includes('line 1') && !out.includes('line 9');
    }, null, { timeout: 20000 }).catch(async () => {
      throw new Error(`never saw stdout lines while the job was running (status ${await page.locator('#job-status .badge').getAttribute('data-status')}, ` +
        `stdout ${JSON.stringify(await text('#log-stdout'))})`);
    });
    assert.equal(await page.locator('#cancel-job').isVisible(), true, 'Cancel is offered while running');
  });

  await step('live-job-succeeded', async () => {
    await waitStatus('succeeded');
    await page.waitForSelector('#job-result');
    assert.deepEqual(JSON.parse(await text('#job-result')), { total: 10, ok: true, squares: [0, 1, 4, 9] });
    await until('all 10 stdout lines', () => (document.getElementById('log-stdout').textContent.match(/line \d/g) || []).length === 10);
    const out = await text('#log-stdout');
    assert.equal(out, Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join(''), 'stdout complete, in order, once');
    assert.equal(await page.locator('#cancel-job').isVisible(), false, 'no Cancel once finished');
    const labels = await text('#job-labels');
    for (const l of ['suite=e2e', 'kind=ok', `run=${RUN}`]) assert.ok(labels.includes(l), `label ${l} shown`);
    const kv = await text('#job-kv');
    assert.match(kv, /Queue wait/);
    assert.match(kv, /Run time\d/);
    assert.match(await text('#job-limits'), /Timeout60 s/, 'the limits show the timeout asked for');
    assert.match(await text('#job-usage'), /Wall time/);
    const api = await apiCall('GET', `/v1/jobs/${ids.ok}`);
    assert.equal(api.status, 'succeeded');
  });

  await step('failing-job-error', async () => {
    await openForm();
    await fillForm({ script: FAIL_SCRIPT, inputs: '{"x": 42}', labels: `suite=e2e\nkind=fail\nrun=${RUN}` });
    ids.fail = await submitAndOpenJob();
    await waitStatus('failed');
    await page.waitForSelector('#error-type');
    assert.equal(await text('#error-type'), 'SandboxExecutionError');
    assert.equal(await text('#error-message'), 'ValueError: boom 42');
    const tb = await text('#error-traceback');
    assert.match(tb, /Traceback/);
    assert.match(tb, /in helper/);
    assert.match(tb, /raise ValueError/);
    assert.equal(await page.locator('#job-result').count(), 0, 'no result for a failed job');
    await until('stdout "about to fail"', () => document.getElementById('log-stdout').textContent.includes('about to fail'));
  });

  await step('list-shows-jobs', async () => {
    await page.click('nav.mainnav a[data-nav="list"]');
    await page.waitForSelector('#jobs-table');
    const got = await waitListed((l) => l.includes(ids.ok) && l.includes(ids.fail), 'both jobs');
    assert.ok(got.indexOf(ids.fail) < got.indexOf(ids.ok), 'newest first');
    const row = page.locator(`tr[data-job-id="${ids.ok}"]`);
    assert.equal(await row.getAttribute('data-status'), 'succeeded');
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[0], ids.ok.slice(0, 8));
    assert.equal(cells[1], 'succeeded');
    assert.equal(cells[2], (await apiCall('GET', `/v1/jobs/${ids.ok}`)).backend);
    assert.match(cells[3], /kind=ok/);
    assert.match(cells[4], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, 'created time');
    assert.match(cells[5], /\d+ ms|\d+\.\d+ s/, 'queue wait');
    assert.match(cells[6], /\d+(\.\d+)? s/, 'run time of a ~3 s job');
    assert.equal(await page.locator(`tr[data-job-id="${ids.fail}"] td`).nth(7).textContent(), 'SandboxExecutionError');
    assert.equal(cells[8], '{"total":10,"ok":true,"squares":[0,1,4,9]}', 'the result preview (all of a small result)');
    assert.equal(await page.locator(`tr[data-job-id="${ids.fail}"] td`).nth(8).textContent(), '—');
  });

  await step('list-filter-status', async () => {
    await page.selectOption('#filter-status', 'succeeded');
    await waitListed((l) => l.includes(ids.ok) && !l.includes(ids.fail), 'the succeeded job only');
    const statuses = await page.$$eval('#jobs-tbody tr.job-row', (r) => r.map((x) => x.dataset.status));
    assert.ok(statuses.every((s) => s === 'succeeded'), `only succeeded rows: ${statuses}`);
    await page.selectOption('#filter-status', 'failed');
    await waitListed((l) => l.includes(ids.fail) && !l.includes(ids.ok), 'the failed job only');
    // the 2 s auto-refresh keeps the filter
    const before = await text('#list-updated');
    await until('an auto-refresh of the list (its "Updated" time changing)', (b) => document.getElementById('list-updated').textContent !== b, before, 6000);
    assert.deepEqual(await listIds(), [ids.fail], 'still filtered after an auto-refresh');
    assert.equal(await page.inputValue('#filter-status'), 'failed');
    await page.selectOption('#filter-status', '');
  });

  await step('list-filter-label', async () => {
    await page.fill('#filter-label', 'kind=ok');
    await page.click('#filter-apply');
    await waitListed((l) => l.length === 1 && l[0] === ids.ok, 'only the kind=ok job');
    await page.fill('#filter-label', 'kind:fail');       // the API's own key:value form works too
    await page.click('#filter-apply');
    await waitListed((l) => l.length === 1 && l[0] === ids.fail, 'only the kind=fail job');
    await page.fill('#filter-label', `run=${RUN}`);
    await page.click('#filter-apply');
    await waitListed((l) => l.length === 2, 'both jobs of this run');
    await page.fill('#filter-label', 'kind=nothing-has-this');
    await page.click('#filter-apply');
    await until('"No jobs match" for a label nothing has', () => /No jobs match/.test(document.getElementById('jobs-tbody').textContent));
    await page.fill('#filter-label', 'not a label');
    await page.click('#filter-apply');
    await page.locator('#filter-label-error').waitFor({ state: 'visible' });
    assert.match(await text('#filter-label-error'), /key=value/);
    await page.click('#filter-clear');
    await waitListed((l) => l.includes(ids.ok) && l.includes(ids.fail), 'all jobs again');
  });

  await step('list-pagination', async () => {
    const made = [];
    for (let i = 0; i < 12; i++) {
      const j = await apiCall('POST', '/v1/jobs', { script: `def main():\n    return ${i}\n`, labels: { page: RUN, i: String(i) } });
      made.push(j.id);
    }
    await page.fill('#filter-label', `page=${RUN}`);
    await page.click('#filter-apply');
    await page.selectOption('#filter-limit', '10');
    const first = await waitListed((l) => l.length === 10, '10 jobs on page 1');
    assert.deepEqual(first, made.slice(2).reverse(), 'page 1: the 10 newest, newest first');
    assert.equal(await page.isDisabled('#page-prev'), true, 'no newer page on page 1');
    assert.equal(await page.isDisabled('#page-next'), false, 'an older page exists');
    await page.click('#page-next');
    const second = await waitListed((l) => l.length === 2, 'the 2 oldest on page 2');
    assert.deepEqual(second, made.slice(0, 2).reverse());
    assert.match(await text('#page-info'), /Page 2/);
    await shot('list-page-2');
    assert.equal(await page.isDisabled('#page-next'), true, 'page 2 is the last');
    // auto-refresh stays on page 2
    const before = await text('#list-updated');
    await until('an auto-refresh of the list (its "Updated" time changing)', (b) => document.getElementById('list-updated').textContent !== b, before, 6000);
    assert.deepEqual(await listIds(), second, 'still page 2 after an auto-refresh');
    await page.click('#page-prev');
    await waitListed((l) => l.length === 10 && l[0] === made[11], 'page 1 again');
    await page.click('#filter-clear');
    await page.selectOption('#filter-limit', '25');
  });

  await step('cancel-running-job', async () => {
    await openForm();
    await fillForm({ script: SLOW_SCRIPT, labels: `suite=e2e\nkind=slow\nrun=${RUN}`, timeout: '300' });
    ids.slow = await submitAndOpenJob();
    await waitStatus('running');
    await until('stdout "started" of the running job', () => document.getElementById('log-stdout').textContent.includes('started'), null, 20000);
    await shot('cancel-before');
    await page.locator('#cancel-job').waitFor({ state: 'visible' });
    await page.click('#cancel-job');
    await waitStatus('cancelled', 15000);
    await page.waitForSelector('#error-type');
    assert.equal(await text('#error-type'), 'Cancelled');
    await page.locator('#cancel-job').waitFor({ state: 'hidden' });
    const api = await apiCall('GET', `/v1/jobs/${ids.slow}`);
    assert.equal(api.status, 'cancelled');
    assert.ok(api.finished_at, 'the job has ended');
    assert.ok(new Date(api.finished_at) - new Date(api.started_at) < 60000, 'killed well before its 120 s sleep');
  });

  await step('html-output-is-text', async () => {
    await openForm();
    await fillForm({ script: XSS_SCRIPT, labels: `html=<i>italic</i>\nrun=${RUN}` });
    ids.xss = await submitAndOpenJob();
    await waitStatus('succeeded');
    await until('stderr to show the text "<script>alert(2)</script>" verbatim', () => document.getElementById('log-stderr').textContent.includes('</script>'));
    await until('stdout to show the text "<img src=x onerror=alert(1)>" verbatim', () => document.getElementById('log-stdout').textContent.includes('onerror'));
    assert.equal(await text('#log-stdout'), '<img src=x onerror=alert(1)>\n', 'stdout shown verbatim');
    assert.equal(await text('#log-stderr'), '<script>alert(2)</script>\n', 'stderr shown verbatim');
    assert.equal(JSON.parse(await text('#job-result')), '<b>bold</b><img src=y onerror=alert(3)>', 'result shown verbatim');
    assert.match(await text('#job-labels'), /html=<i>italic<\/i>/, 'label shown verbatim');
    for (const sel of ['#log-stdout *:not(.log-empty)', '#log-stderr *:not(.log-empty)', '#job-result *', '#main img, #view img', '#view script', '#job-labels i', '#view b']) {
      assert.equal(await page.locator(sel).count(), 0, `no element parsed from job data: ${sel}`);
    }
    await shot('html-job-page');
    await page.click('nav.mainnav a[data-nav="list"]');
    await waitListed((l) => l.includes(ids.xss), 'the HTML job');
    assert.equal(await page.locator('#jobs-tbody i').count(), 0, 'label HTML not rendered in the list');
    assert.match(await text(`tr[data-job-id="${ids.xss}"]`), /html=<i>italic<\/i>/);
  });

  await step('large-output-in-windows', async () => {
    // 5 MiB of numbered lines: the pane pages through 1 MiB windows and keeps the last 2 MiB.
    const script = "import sys\ndef main():\n    sys.stdout.write(''.join(f'{i:07d}\\n' for i in range(655360)))\n" +
      "    return 'x' * 1000\n";
    let job = await apiCall('POST', '/v1/jobs?wait=60', { script, limits: { max_output_bytes: 8 << 20 }, labels: { big: RUN } });
    while (!['succeeded', 'failed', 'timed_out', 'cancelled'].includes(job.status)) job = await apiCall('GET', `/v1/jobs/${job.id}?wait=30`);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.equal(job.stdout_bytes, 5 << 20);
    await page.goto(`${BASE}/#/jobs/${job.id}`);
    await until('the stdout pane to reach the end of 5 MiB', () => (document.getElementById('log-stdout')?.textContent || '').endsWith('0655359\n'), null, 30000);
    const out = await page.evaluate(() => document.getElementById('log-stdout').textContent);
    const first = 655360 - (2 << 20) / 8;
    assert.equal(out.length, 2 << 20, 'the last 2 MiB shown');
    assert.ok(out.startsWith(`${String(first).padStart(7, '0')}\n${String(first + 1).padStart(7, '0')}\n`), out.slice(0, 40));
    assert.equal(await text('#log-stdout-skipped'), 'first 3.0 MiB not shown');
    assert.equal(await text('#log-stdout-size'), '5.0 MiB');
    await page.click('nav.mainnav a[data-nav="list"]');
    await page.fill('#filter-label', `big=${RUN}`);
    await page.click('#filter-apply');
    await waitListed((l) => l.length === 1 && l[0] === job.id, 'the large-output job');
    const preview = await page.locator(`tr[data-job-id="${job.id}"] td`).nth(8).textContent();
    assert.equal(preview, `"${'x'.repeat(255)}…`, 'the first 256 bytes of the result, marked as cut');
    await page.click('#filter-clear');
  });

  await step('forget-token', { allow: [401] }, async () => {
    await page.click('#forget-token');
    await page.locator('#token-dialog').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('executord.token')), null, 'token forgotten');
    await shot('token-asked-again');
    await page.fill('#token-input', TOKEN);
    await page.click('#token-submit');
    await page.locator('#token-dialog').waitFor({ state: 'hidden' });
    await waitListed((l) => l.includes(ids.ok) && l.includes(ids.xss), 'the jobs again');
    assert.ok(provoked.some(([s]) => s === 401), 'the forgotten token led to a 401');
  });

  // a last quiet period: the polling pages must not produce errors on their own
  await step('idle-no-errors', async () => {
    await page.goto(`${BASE}/#/jobs/${ids.ok}`);
    await waitStatus('succeeded');
    await page.waitForTimeout(2500);
  });
} catch {
  // reported by step()
} finally {
  closing = true;
  await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}

if (failed) {
  console.error(`dashboard e2e: FAILED at step ${stepNo}; screenshots in ${ART}`);
  process.exit(1);
}
console.log(`dashboard e2e: all ${stepNo} steps passed; screenshots in ${ART}`);
