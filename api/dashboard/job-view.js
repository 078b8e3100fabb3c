// One job: status, timings, result, error, live stdout/stderr, usage, limits, labels,
// script and inputs; Cancel while queued or running; "Run again" pre-fills the form.
import { api, jobPath, ApiError } from './api.js';
import { h, clear } from './dom.js';
import { poller } from './poll.js';
import { FINAL, fmtTime, fmtDuration, fmtBytes, jobTimes } from './format.js';
import { statusBadge, labelChips } from './badges.js';
import { LogTail } from './log-tail.js';
import { setDraft } from './draft.js';

const USAGE_LABELS = {
  wall_ms: 'Wall time', cpu_user_ms: 'CPU user', cpu_system_ms: 'CPU system', max_rss_kb: 'Max RSS',
  memory_peak_bytes: 'Memory peak', cgroup_cpu_ms: 'Cgroup CPU', oom_kills: 'OOM kills',
};
const LIMIT_LABELS = {
  timeout_seconds: 'Timeout', memory_mb: 'Memory', cpu_seconds: 'CPU time', max_processes: 'Processes',
  max_file_size_mb: 'File size', max_open_files: 'Open files', max_output_bytes: 'Output per stream',
};
const USAGE_FMT = {
  wall_ms: (v) => fmtDuration(v), cpu_user_ms: (v) => fmtDuration(v), cpu_system_ms: (v) => fmtDuration(v),
  cgroup_cpu_ms: (v) => fmtDuration(v), max_rss_kb: (v) => fmtBytes(v * 1024),
  memory_peak_bytes: (v) => fmtBytes(v),
};
const LIMIT_FMT = {
  timeout_seconds: (v) => `${v} s`, memory_mb: (v) => `${v} MiB`, cpu_seconds: (v) => `${v} s`,
  max_file_size_mb: (v) => `${v} MiB`, max_output_bytes: (v) => fmtBytes(v),
};

function kv(rows, id) {
  return h('dl', { class: 'kv', id },
    rows.filter(Boolean).map(([k, v, cls]) => [h('dt', {}, k), h('dd', { class: cls || null }, v)]));
}

function objectRows(obj, fmts, labels) {
  return Object.entries(obj || {}).map(([k, v]) => [
    labels[k] || k.replace(/_/g, ' '),
    fmts[k] && typeof v === 'number' ? fmts[k](v) : typeof v === 'object' ? JSON.stringify(v) : String(v),
    'mono',
  ]);
}

function card(title, id, ...body) {
  return h('section', { class: 'card', id }, h('h2', { class: 'card-title' }, title), ...body);
}

export function jobView(root, id) {
  let job = null;
  let alive = true;
  const tails = [new LogTail(id, 'stdout'), new LogTail(id, 'stderr')];

  const badgeSlot = h('span', { id: 'job-status' });
  const cancelBtn = h('button', { type: 'button', class: 'btn btn-danger', id: 'cancel-job', hidden: true }, 'Cancel job');
  const againBtn = h('button', { type: 'button', class: 'btn', id: 'run-again', hidden: true }, 'Run again');
  const actionMsg = h('div', { class: 'alert', role: 'status', id: 'job-action-msg', hidden: true });
  const errorBox = h('div', { class: 'alert alert-error', role: 'alert', id: 'job-load-error', hidden: true });
  const overview = h('div', { id: 'job-overview' });
  const errorSlot = h('div', { id: 'job-error-slot' });
  const resultSlot = h('div', { id: 'job-result-slot' });
  const sideSlot = h('div', { class: 'side', id: 'job-side' });
  const sourceSlot = h('div', { id: 'job-source-slot' });

  cancelBtn.addEventListener('click', async () => {
    cancelBtn.disabled = true;
    actionMsg.hidden = true;
    try {
      update(await api(`${jobPath(id)}/cancel`, { method: 'POST' }));
      showMsg('Cancel requested.', 'info');
    } catch (e) {
      showMsg(e instanceof ApiError && e.code === 'job_finished'
        ? 'The job had already finished.' : `Cancel failed — ${e.describe ? e.describe() : e}`, 'error');
    } finally {
      cancelBtn.disabled = false;
      refresh.now();
    }
  });
  againBtn.addEventListener('click', () => {
    if (!job) return;
    setDraft(job);
    location.hash = '#/new';
  });

  function showMsg(text, kind) {
    actionMsg.className = `alert alert-${kind}`;
    actionMsg.textContent = text;
    actionMsg.hidden = false;
  }

  clear(root,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Jobs'), ' / ',
      h('span', { class: 'mono' }, id)),
    h('div', { class: 'page-head' },
      h('div', { class: 'title-line' }, h('h1', {}, 'Job'), h('span', { class: 'mono job-id', id: 'job-id' }, id), badgeSlot),
      h('div', { class: 'actions' }, againBtn, cancelBtn)),
    actionMsg, errorBox,
    h('div', { class: 'job-grid' },
      h('div', { class: 'main-col' },
        card('Overview', 'card-overview', overview),
        errorSlot,
        resultSlot,
        card('Output', 'card-output', h('div', { class: 'logs' }, tails.map((t) => t.el))),
        sourceSlot),
      sideSlot));

  function update(j) {
    const firstTime = !job;
    job = j;
    document.title = `${j.status} · job ${id.slice(0, 8)} · executord`;
    clear(badgeSlot, statusBadge(j.status, true));
    const final = FINAL.has(j.status);
    cancelBtn.hidden = final;
    if (final && actionMsg.classList.contains('alert-info')) actionMsg.hidden = true;
    againBtn.hidden = false;
    const t = jobTimes(j);
    clear(overview, kv([
      ['Backend', j.backend, 'mono'],
      ['Created', fmtTime(j.created_at)],
      ['Started', fmtTime(j.started_at)],
      ['Finished', fmtTime(j.finished_at)],
      ['Queue wait', fmtDuration(t.queue)],
      ['Run time', `${fmtDuration(t.run)}${t.live ? ' (running)' : ''}`],
      ['Exit code', j.exit_code ?? '—', 'mono'],
      j.signal != null ? ['Signal', String(j.signal), 'mono'] : null,
      ['Network', j.allow_network ? 'allowed' : 'none'],
      ['Env vars', j.env_vars?.length ? j.env_vars.join(', ') : '—', 'mono'],
    ], 'job-kv'));

    if (j.error) {
      const kind = j.error.type === 'Cancelled' ? 'neutral' : j.status === 'timed_out' ? 'warn' : 'error';
      clear(errorSlot, card(j.status === 'cancelled' ? 'Cancelled' : 'Error', 'card-error',
        h('div', { class: 'error-head' },
          h('span', { class: `badge badge-${kind}`, id: 'error-type' }, j.error.type)),
        h('pre', { class: `error-message msg-${kind}`, id: 'error-message' }, j.error.message ?? ''),
        j.error.traceback
          ? [h('h3', { class: 'sub' }, 'Traceback'), h('pre', { class: 'traceback', id: 'error-traceback' }, j.error.traceback)]
          : null));
      errorSlot.firstChild.dataset.kind = kind;
    } else clear(errorSlot);

    if (j.status === 'succeeded') {
      clear(resultSlot, card('Result', 'card-result',
        h('pre', { class: 'json', id: 'job-result' }, JSON.stringify(j.result, null, 2))));
    } else clear(resultSlot);

    tails[0].setTruncated(j.stdout_truncated);
    tails[1].setTruncated(j.stderr_truncated);

    clear(sideSlot,
      card('Labels', 'card-labels', h('div', { id: 'job-labels' }, labelChips(j.labels))),
      card('Usage', 'card-usage', j.usage ? kv(objectRows(j.usage, USAGE_FMT, USAGE_LABELS), 'job-usage')
        : h('p', { class: 'muted' }, final ? 'not measured' : 'available when the job ends')),
      card('Limits', 'card-limits', kv(objectRows(j.limits, LIMIT_FMT, LIMIT_LABELS), 'job-limits')));

    if (firstTime) {
      clear(sourceSlot,
        h('details', { class: 'card', id: 'card-script', open: true },
          h('summary', { class: 'card-title' }, 'Script'), h('pre', { class: 'code' }, j.script ?? '')),
        h('details', { class: 'card', id: 'card-inputs' },
          h('summary', { class: 'card-title' }, 'Inputs'),
          h('pre', { class: 'json' }, JSON.stringify(j.inputs ?? {}, null, 2))));
    }
  }

  const refresh = poller(async () => {
    try {
      const j = await api(jobPath(id));
      if (!alive) return false;
      errorBox.hidden = true;
      update(j);
      const done = await Promise.all(tails.map((t) => t.step()));
      if (!alive) return false;
      return !(FINAL.has(j.status) && done.every(Boolean));
    } catch (e) {
      if (!alive) return false;
      errorBox.textContent = e instanceof ApiError && e.status === 404
        ? 'No such job (it may have been deleted or expired).'
        : `Could not load the job — ${e.describe ? e.describe() : e}`;
      errorBox.hidden = false;
      return !(e instanceof ApiError && e.status === 404);
    }
  }, 600);

  return { title: `Job ${id.slice(0, 8)}`, destroy() { alive = false; refresh.stop(); } };
}
