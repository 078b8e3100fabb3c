// Browser attacks on executord: what a web page open in a browser on the same machine can
// make that browser send to executord on 127.0.0.1 (README "API": Host and Origin checks,
// JSON-only submissions). Started by tests/e2e/run.sh, which provides:
//   EXECUTORD_BIN  the binary          E2E_ARTIFACTS  screenshots, executord logs
//   CHROMIUM_BIN   the browser (default /usr/bin/chromium)
//
// It starts the real executord twice, each time on a free 127.0.0.1 port with a fresh data
// folder: once as installed (the token it generates), once with --insecure-no-auth (the
// worst case a page could hope for: no token to guess). An attacker's web server listens on
// two other loopback origins (127.0.0.2:P, a different site, and 127.0.0.1:P, the same site
// on another port), and headless Chromium, driven by playwright-core, tries from its pages:
//   - fetch(no-cors) POST /v1/jobs with a JSON text body as text/plain, as a Blob without a
//     type, as application/x-www-form-urlencoded and as multipart/form-data (the content
//     types a page may send without a CORS preflight), and navigator.sendBeacon;
//   - real HTML forms auto-submitted to /v1/jobs: urlencoded (top level), text/plain with
//     the JSON-in-the-field-name trick (in an iframe), multipart;
//   - fetch(cors) POST with Content-Type: application/json (needs a preflight) and a GET of
//     the job list; fetch(no-cors) GET of /v1/jobs and /metrics;
//   - DNS rebinding: Chromium resolves rebind.test to 127.0.0.1 (--host-resolver-rules).
//     The browser opens http://rebind.test:PORT/ (executord's port); then a page with the
//     origin http://rebind.test:PORT — served as if rebind.test still pointed at the
//     attacker — reads and posts to that same origin, which now reaches executord.
// Every attempt must be refused by executord (403 cross_origin, 415, 421 host_not_allowed,
// 401, or 405 to a CORS preflight, after which the browser sends nothing). What executord
// answered is read from its own counters (executord_http_requests_total in /metrics)
// before and after each attack: each attack must have reached it (a test that only saw the
// browser give up would prove nothing about executord), and nothing it answered may be
// anything but a refusal. Afterwards no job exists: none in GET /v1/jobs (with the token),
// and the SQLite database holds only the one job the test then submits itself as a
// control (so the count is known to see jobs).
//
// Chromium's own Local/Private Network Access checks are switched off: they exist in some
// browsers and versions and not others, and this test is about executord's defences.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BIN = need('EXECUTORD_BIN');
const ART = need('E2E_ARTIFACTS');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const PY = '/usr/bin/python3';
const REFUSALS = new Set([401, 403, 415, 421]);

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`attacks.test: ${name} is not set (run tests/e2e/run.sh)`); process.exit(2); }
  return v;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const live = new Set();   // executord processes to kill should this script die early
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });

// ---- executord --------------------------------------------------------------------------------
async function startExecutord(label, extra) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `executord-attacks-${label}-`));
  const data = path.join(dir, 'data');
  const logFile = path.join(ART, `attacks-${label}-executord.log`);
  const log = fs.openSync(logFile, 'w');
  // The caller's EXECUTORD_* settings are not passed on: the test wants the defaults.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EXECUTORD_')));
  const proc = spawn(BIN, ['--listen', '127.0.0.1:0', '--data-dir', data, ...extra],
    { env, stdio: ['ignore', 'ignore', log] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let port = null;
  for (let i = 0; i < 300 && !port; i++) {
    if (proc.exitCode !== null) throw new Error(`executord (${label}) exited at start:\n${fs.readFileSync(logFile, 'utf8')}`);
    port = /listening on 127\.0\.0\.1:(\d+)/.exec(fs.readFileSync(logFile, 'utf8'))?.[1];
    if (!port) await sleep(100);
  }
  if (!port) throw new Error(`executord (${label}) did not listen within 30 s`);
  const tokenFile = path.join(data, 'api-token');
  const token = fs.existsSync(tokenFile) ? fs.readFileSync(tokenFile, 'utf8').trim() : null;
  return { label, proc, port: Number(port), base: `http://127.0.0.1:${port}`, token, dir, data, log };
}

async function stopExecutord(s) {
  if (s.stopped) return;
  s.stopped = true;
  if (s.proc.exitCode === null) {
    const exited = new Promise((r) => s.proc.once('exit', r));
    s.proc.kill('SIGTERM');
    await Promise.race([exited, sleep(20000)]);
    if (s.proc.exitCode === null) { s.proc.kill('SIGKILL'); await exited; }
  }
  fs.closeSync(s.log);
}

/** A request of the test itself (Node: no Origin, no Sec-Fetch-*), with the token if any. */
async function own(s, p, init = {}) {
  const headers = { ...(init.headers || {}), ...(s.token ? { Authorization: `Bearer ${s.token}` } : {}) };
  const res = await fetch(s.base + p, { ...init, headers });
  const body = await res.text();
  if (!res.ok) throw new Error(`${init.method || 'GET'} ${p} → ${res.status}: ${body}`);
  return body;
}

/** executord_http_requests_total as a Map "METHOD route code" → count; .scrape numbers
 * the readings (each is itself a GET /metrics 200, counted in the readings after it). */
async function counters(s) {
  const m = new Map();
  m.scrape = s.scrapes = (s.scrapes || 0) + 1;
  for (const line of (await own(s, '/metrics')).split('\n')) {
    const r = /^executord_http_requests_total\{method="([^"]*)",route="([^"]*)",code="(\d+)"\} (\d+)/.exec(line);
    if (r) m.set(`${r[1]} ${r[2]} ${r[3]}`, Number(r[4]));
  }
  return m;
}

/** What executord answered between two counter readings, less the test's own readings
 * (GET /metrics 200 each). */
function answered(before, after) {
  const out = [];
  for (const [k, v] of after) {
    let n = v - (before.get(k) || 0);
    if (k === 'GET /metrics 200') n -= after.scrape - before.scrape;
    if (n < 0) throw new Error(`counter ${k} went down`);
    if (n > 0) {
      const [method, route, code] = k.split(' ');
      out.push({ method, route, code: Number(code), n });
    }
  }
  return out;
}

function sqliteJobs(db) {
  const script = 'import sqlite3, sys\n' +
    'c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)\n' +
    'print("\\n".join(r[0] for r in c.execute("select id from jobs")))\n';
  return execFileSync(PY, ['-c', script, db], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

// ---- the attacker's web server ------------------------------------------------------------------
const JOB = JSON.stringify({ script: 'def main():\n    return "pwned"\n', labels: { attack: 'browser' } });

function attackerPages(target) {
  const esc = (v) => v.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  const form = (enctype, fields, extra = '') => `<!doctype html><title>form</title>
<form method="POST" action="${esc(target)}/v1/jobs" enctype="${enctype}"${extra}>
${fields.map(([n, v]) => `<input type="hidden" name="${esc(n)}" value="${esc(v)}">`).join('\n')}
</form>
<script>document.forms[0].submit()</script>`;
  // text/plain encodes "name=value\r\n": a name ending in an open string and a value
  // closing it make the body {"script":"…","labels":{"attack":"browser","pad":"="}} — a
  // valid job, if anything took text/plain as JSON.
  const jsonName = JOB.slice(0, -2) + ',"pad":"';
  return {
    '/': '<!doctype html><title>a web page</title><p>Nothing to see here.</p><iframe name="sink"></iframe>',
    '/form-urlencoded': form('application/x-www-form-urlencoded', [['script', 'def main():\n    return "pwned"\n']]),
    '/form-text-plain': `<!doctype html><title>outer</title><iframe name="sink" src="about:blank"></iframe>
<form method="POST" action="${esc(target)}/v1/jobs" enctype="text/plain" target="sink">
<input type="hidden" name="${esc(jsonName)}" value='"}}'>
</form>
<script>document.forms[0].submit()</script>`,
    '/form-multipart': form('multipart/form-data', [['script', 'def main():\n    return "pwned"\n']]),
  };
}

async function startAttacker() {
  let target = '';
  const handler = (req, res) => {
    const page = attackerPages(target)[new URL(req.url, 'http://x').pathname];
    res.writeHead(page ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(page || 'not found');
  };
  // One port on two loopback addresses: 127.0.0.2 (another site) and 127.0.0.1 (the same
  // site as executord, another port).
  for (let attempt = 0; attempt < 20; attempt++) {
    const a = http.createServer(handler);
    await new Promise((r) => a.listen(0, '127.0.0.2', r));
    const port = a.address().port;
    const b = http.createServer(handler);
    const ok = await new Promise((r) => { b.once('error', () => r(false)); b.listen(port, '127.0.0.1', () => r(true)); });
    if (ok) {
      return {
        port,
        setTarget(t) { target = t; },
        close: () => Promise.all([new Promise((r) => a.close(r)), new Promise((r) => b.close(r))]),
      };
    }
    a.close();
  }
  throw new Error('no port free on both 127.0.0.2 and 127.0.0.1');
}

// ---- the attacks --------------------------------------------------------------------------------
// Each: where the page comes from, and what it does (in the page; returns what the page saw).
function attacks(E, A) {
  const cross = `http://127.0.0.2:${A}`, sameSite = `http://127.0.0.1:${A}`;
  const noCors = (headers, bodyKind) => async (page) => page.evaluate(async ({ E, JOB, headers, bodyKind }) => {
    const body = bodyKind === 'blob' ? new Blob([JOB]) : JOB;
    try {
      const r = await fetch(`${E}/v1/jobs`, { method: 'POST', mode: 'no-cors', credentials: 'include', headers, body });
      return `fetch resolved: ${r.type} response, status ${r.status} (unreadable)`;
    } catch (e) { return `fetch rejected: ${e}`; }
  }, { E, JOB, headers, bodyKind });
  const formAt = (p) => async (page) => {
    const posted = page.waitForResponse((r) => r.url() === `${E}/v1/jobs` && r.request().method() === 'POST', { timeout: 15000 });
    await page.goto(`${p}`);
    const r = await posted;
    return `form posted ${r.request().headers()['content-type']}; the browser got HTTP ${r.status()}`;
  };
  return [
    { name: 'fetch no-cors, JSON as text/plain', from: cross, act: noCors({}, 'text') },
    { name: 'fetch no-cors, JSON as a Blob without a type', from: cross, act: noCors({}, 'blob') },
    { name: 'fetch no-cors, JSON as application/x-www-form-urlencoded', from: cross,
      act: noCors({ 'Content-Type': 'application/x-www-form-urlencoded' }, 'text') },
    { name: 'fetch no-cors, JSON as multipart/form-data', from: cross, act: noCors({ 'Content-Type': 'multipart/form-data' }, 'text') },
    { name: 'fetch no-cors, JSON as text/plain, same site (127.0.0.1, other port)', from: sameSite, act: noCors({}, 'text') },
    { name: 'navigator.sendBeacon, JSON as text/plain', from: cross,
      act: async (page) => `sendBeacon returned ${await page.evaluate(({ E, JOB }) => navigator.sendBeacon(`${E}/v1/jobs`, JOB), { E, JOB })}` },
    { name: 'HTML form, urlencoded, auto-submitted (top level)', from: cross, page: '/form-urlencoded', act: formAt(`${cross}/form-urlencoded`) },
    { name: 'HTML form, text/plain with a JSON field name, auto-submitted (iframe)', from: cross, page: '/form-text-plain',
      act: formAt(`${cross}/form-text-plain`) },
    { name: 'HTML form, multipart, auto-submitted (top level), same site', from: sameSite, page: '/form-multipart',
      act: formAt(`${sameSite}/form-multipart`) },
    { name: 'fetch cors, POST application/json (preflighted)', from: cross,
      act: async (page) => page.evaluate(async ({ E, JOB }) => {
        try {
          const r = await fetch(`${E}/v1/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JOB });
          return `fetch resolved: HTTP ${r.status} ${await r.text()}`;
        } catch (e) { return `fetch rejected: ${e}`; }
      }, { E, JOB }) },
    { name: 'fetch cors, GET /v1/jobs (read the jobs)', from: cross,
      act: async (page) => page.evaluate(async ({ E }) => {
        try { const r = await fetch(`${E}/v1/jobs`); return `fetch resolved: HTTP ${r.status} ${await r.text()}`; } catch (e) { return `fetch rejected: ${e}`; }
      }, { E }) },
    { name: 'fetch no-cors, GET /v1/jobs and /metrics (no Origin header)', from: cross,
      act: async (page) => page.evaluate(async ({ E }) => {
        const out = [];
        for (const p of ['/v1/jobs', '/metrics']) {
          try { const r = await fetch(`${E}${p}`, { mode: 'no-cors', credentials: 'include' }); out.push(`${p}: ${r.type}`); } catch (e) { out.push(`${p}: ${e}`); }
        }
        return out.join(', ');
      }, { E }) },
  ];
}

function rebindingAttacks(R) {
  const sameOrigin = (what, p, init) => ({
    name: `DNS rebinding: same-origin ${what}`, rebind: true,
    act: async (page) => page.evaluate(async ({ p, init }) => {
      try { const r = await fetch(p, init); return `HTTP ${r.status} ${(await r.text()).slice(0, 90)}`; } catch (e) { return `fetch rejected: ${e}`; }
    }, { p, init }),
    status: 421,
  });
  return [
    { name: `DNS rebinding: the browser opens ${R}/`, rebind: true, status: 421,
      act: async (page) => { const r = await page.goto(`${R}/`); return `HTTP ${r.status()} ${(await r.text()).slice(0, 90)}`; } },
    sameOrigin('GET /v1/jobs', '/v1/jobs', {}),
    sameOrigin('POST /v1/jobs, application/json', '/v1/jobs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JOB }),
    sameOrigin('GET /', '/', {}),
    sameOrigin('GET /metrics', '/metrics', {}),
    sameOrigin('GET /readyz', '/readyz', {}),
  ];
}

// ---- one run against one executord -------------------------------------------------------------
async function runAgainst(context, attacker, label, extra) {
  const s = await startExecutord(label, extra);
  const results = [];
  let failed = false;
  try {
    console.log(`# ${label}: executord on ${s.base} (${s.token ? 'generated token in the data folder' : 'NO token: --insecure-no-auth'}); ` +
      `attacker pages on http://127.0.0.2:${attacker.port} and http://127.0.0.1:${attacker.port}`);
    assert.equal(Boolean(s.token), !extra.includes('--insecure-no-auth'), 'a token exists unless --insecure-no-auth');
    attacker.setTarget(s.base);
    const R = `http://rebind.test:${s.port}`;
    const seen = [];
    const newPage = async () => {
      const page = await context.newPage();
      page.setDefaultTimeout(15000);
      page.on('response', (r) => { if (r.url().startsWith(s.base) || r.url().startsWith(R)) seen.push(`${r.request().method()} ${new URL(r.url()).pathname} → ${r.status()}`); });
      page.on('requestfailed', (r) => { if (r.url().startsWith(s.base) || r.url().startsWith(R)) seen.push(`${r.method()} ${new URL(r.url()).pathname} → failed: ${r.failure()?.errorText}`); });
      return page;
    };
    const page = await newPage();
    // DNS rebinding, simulated: the page at R is what the attacker's server returned while
    // rebind.test still resolved to it; everything else at R goes to 127.0.0.1, executord.
    // A page of its own: with request interception on, Playwright answers CORS preflights
    // itself, which would hide executord's answer from the other attacks.
    const rpage = await newPage();
    await rpage.route((u) => u.host === `rebind.test:${s.port}` && u.pathname === '/attack.html',
      (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>rebound</title><p>Same origin as the API now.</p>' }));

    let n = 0;
    for (const a of [...attacks(s.base, attacker.port), ...rebindingAttacks(R)]) {
      n++;
      seen.length = 0;
      const before = await counters(s);
      const p = a.rebind ? rpage : page;
      if (a.rebind && !a.name.includes('opens')) await p.goto(`${R}/attack.html`);
      else if (!a.rebind && !a.page) await p.goto(`${a.from}/`);
      let pageSaw;
      try {
        pageSaw = await a.act(p);
      } catch (e) {
        pageSaw = `error: ${e.message.split('\n')[0]}`;
      }
      // Beacons and form posts may still be on their way: wait until executord counted
      // something (at most 5 s), then a little more for stragglers.
      let got = [];
      for (let i = 0; i < 50; i++) {
        got = answered(before, await counters(s));
        if (got.length) break;
        await sleep(100);
      }
      await sleep(200);
      got = answered(before, await counters(s));
      const shot = path.join(ART, `attacks-${label}-${String(n).padStart(2, '0')}.png`);
      await p.screenshot({ path: shot }).catch(() => {});
      const problems = [];
      // A top-level form post lands on executord's error page, whose /favicon.ico the
      // browser then asks for: an unknown path, 404, no part of the attack.
      got = got.filter((g) => !(g.method === 'GET' && g.route === 'other' && g.code === 404));
      if (!got.length) problems.push('no request reached executord: the attack proved nothing');
      for (const g of got) {
        const ok = REFUSALS.has(g.code) || (g.method === 'OPTIONS' && g.code === 405);
        if (!ok) problems.push(`executord answered ${g.method} ${g.route} with ${g.code}: not a refusal`);
        if (a.status && g.code !== a.status) problems.push(`expected ${a.status}, executord answered ${g.method} ${g.route} with ${g.code}`);
      }
      if (got.some((g) => g.method === 'OPTIONS') && got.some((g) => g.method === 'POST')) {
        problems.push('the browser sent the POST after the preflight: the preflight was answered as if allowed');
      }
      const answeredText = got.map((g) => `${g.method} ${g.route} ${g.code}${g.n > 1 ? ` x${g.n}` : ''}`).join(', ') || 'nothing';
      results.push({ name: a.name, answered: answeredText, pageSaw, browser: seen.join('; ') });
      if (problems.length) {
        failed = true;
        console.log(`not ok - ${label}: ${a.name}\n  executord answered: ${answeredText}\n  page saw: ${pageSaw}\n  ${problems.join('\n  ')}`);
      } else {
        console.log(`ok - ${label}: ${a.name}\n    executord answered: ${answeredText}; page saw: ${pageSaw}`);
      }
    }
    await page.close();
    await rpage.close();

    // Nothing stored: the API (with the token) lists no job, then a control job of the
    // test's own shows the count does see jobs, and the database holds that one only.
    const listed = JSON.parse(await own(s, '/v1/jobs?limit=200')).jobs;
    if (listed.length) {
      failed = true;
      console.log(`not ok - ${label}: GET /v1/jobs lists ${listed.length} job(s) after the attacks: ${JSON.stringify(listed).slice(0, 500)}`);
    } else {
      console.log(`ok - ${label}: GET /v1/jobs lists no job after the attacks`);
    }
    const control = JSON.parse(await own(s, '/v1/jobs?wait=30', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ script: 'def main():\n    return "control"\n' }),
    }));
    assert.equal(control.status, 'succeeded', `the control job: ${JSON.stringify(control)}`);
    const after = JSON.parse(await own(s, '/v1/jobs?limit=200')).jobs.map((j) => j.id);
    assert.deepEqual(after, [control.id], 'the API lists the control job only');
    await stopExecutord(s);
    const inDb = sqliteJobs(path.join(s.data, 'executord.db'));
    if (inDb.length !== 1 || inDb[0] !== control.id) {
      failed = true;
      console.log(`not ok - ${label}: the database holds ${inDb.length} job(s), expected the control job only: ${inDb}`);
    } else {
      console.log(`ok - ${label}: the database holds 1 job, the test's own control job (${control.id}); the attacks created 0`);
    }
  } finally {
    await stopExecutord(s).catch(() => {});
    fs.rmSync(s.dir, { recursive: true, force: true });
  }
  return { failed, results };
}

// ---- main ------------------------------------------------------------------------------------------
fs.mkdirSync(ART, { recursive: true });
for (const f of fs.readdirSync(ART)) if (f.startsWith('attacks-')) fs.rmSync(path.join(ART, f));
const attacker = await startAttacker();
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'executord-attacks-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--host-resolver-rules=MAP rebind.test 127.0.0.1',
         '--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessSendPreflights,' +
           'PrivateNetworkAccessRespectPreflightResults,BlockInsecurePrivateNetworkRequests,HttpsUpgrades'],
  viewport: { width: 1000, height: 700 },
});
let failed = false;
const summary = [];
try {
  for (const [label, extra] of [['token', []], ['insecure-no-auth', ['--insecure-no-auth']]]) {
    const r = await runAgainst(context, attacker, label, extra);
    failed ||= r.failed;
    summary.push([label, r.results]);
  }
} catch (e) {
  failed = true;
  console.error(`not ok - ${e.stack || e}`);
} finally {
  await context.close().catch(() => {});
  await attacker.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
fs.writeFileSync(path.join(ART, 'attacks-summary.json'), JSON.stringify(summary, null, 2));
if (failed) {
  console.error(`browser attacks: FAILED; details above, screenshots and logs in ${ART}`);
  process.exit(1);
}
console.log(`browser attacks: every attempt refused and nothing stored, with the token and with --insecure-no-auth; ${ART}/attacks-summary.json`);
