// The job list: GET /v1/jobs with status and label filters, cursor pagination (next and
// previous, via a stack of the cursors seen), refreshed every 2 s on the same page. Each
// row shows the list form's result preview (its first 256 bytes), never a whole result.
import { api, ApiError } from './api.js';
import { h, clear } from './dom.js';
import { poller } from './poll.js';
import { STATUSES, fmtTime, fmtDuration, fmtBytes, jobTimes, fmtClock, statusLabel } from './format.js';
import { statusBadge, labelChips } from './badges.js';

const LABEL_RE = /^([A-Za-z0-9_.\-/]{1,128})[=:](.*)$/;

// Kept across visits to the list, so coming back from a job page keeps filters and page.
const state = { status: '', label: '', limit: 25, cursors: [null], auto: true };

/** "team=secops" or "team:secops" → "team:secops" (the API's form), or null if malformed. */
export function labelParam(text) {
  const m = LABEL_RE.exec(text.trim());
  return m ? `${m[1]}:${m[2]}` : null;
}

export function listView(root) {
  let gen = 0;            // answers for an older query are dropped
  let nextCursor = null;

  const statusSel = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'All statuses'),
    STATUSES.map((s) => h('option', { value: s }, statusLabel(s))));
  statusSel.value = state.status;
  const labelIn = h('input', {
    id: 'filter-label', name: 'label', type: 'text', placeholder: 'key=value',
    spellcheck: 'false', autocomplete: 'off', value: state.label,
    'aria-describedby': 'filter-label-error',
  });
  const labelErr = h('span', { id: 'filter-label-error', class: 'field-error inline', hidden: true });
  const limitSel = h('select', { id: 'filter-limit', name: 'limit' },
    [10, 25, 50, 100, 200].map((n) => h('option', { value: String(n) }, String(n))));
  limitSel.value = String(state.limit);
  const autoChk = h('input', { id: 'auto-refresh', type: 'checkbox', checked: state.auto });
  const updated = h('span', { class: 'muted small', id: 'list-updated' }, '');
  const errorBox = h('div', { class: 'alert alert-error', role: 'alert', id: 'list-error', hidden: true });
  const tbody = h('tbody', { id: 'jobs-tbody' });
  const prevBtn = h('button', { type: 'button', class: 'btn btn-small', id: 'page-prev' }, '← Newer');
  const nextBtn = h('button', { type: 'button', class: 'btn btn-small', id: 'page-next' }, 'Older →');
  const pageInfo = h('span', { class: 'muted small', id: 'page-info' });

  const applyFilters = () => {
    const raw = labelIn.value.trim();
    let label = '';
    if (raw) {
      if (!labelParam(raw)) {
        labelErr.textContent = 'Write the label as key=value (key: letters, digits, _ . - /).';
        labelErr.hidden = false;
        labelIn.setAttribute('aria-invalid', 'true');
        return;
      }
      label = raw;
    }
    labelErr.hidden = true;
    labelIn.removeAttribute('aria-invalid');
    state.status = statusSel.value;
    state.label = label;
    state.limit = Number(limitSel.value);
    state.cursors = [null];
    load();
  };

  const filterForm = h('form', {
    class: 'toolbar', id: 'filters', role: 'search',
    onsubmit: (e) => { e.preventDefault(); applyFilters(); },
  },
    h('div', { class: 'field-inline' }, h('label', { for: 'filter-status' }, 'Status'), statusSel),
    h('div', { class: 'field-inline' }, h('label', { for: 'filter-label' }, 'Label'), labelIn,
      h('button', { type: 'submit', class: 'btn btn-small', id: 'filter-apply' }, 'Apply'),
      h('button', {
        type: 'button', class: 'btn btn-small btn-ghost', id: 'filter-clear',
        onclick: () => { statusSel.value = ''; labelIn.value = ''; applyFilters(); },
      }, 'Clear')),
    labelErr,
    h('div', { class: 'spacer' }),
    h('div', { class: 'field-inline' }, h('label', { for: 'filter-limit' }, 'Per page'), limitSel),
    h('div', { class: 'field-inline' }, autoChk, h('label', { for: 'auto-refresh' }, 'Auto-refresh')),
    updated,
  );
  statusSel.addEventListener('change', applyFilters);
  limitSel.addEventListener('change', applyFilters);
  autoChk.addEventListener('change', () => { state.auto = autoChk.checked; if (state.auto) load(); });
  prevBtn.addEventListener('click', () => { if (state.cursors.length > 1) { state.cursors.pop(); load(); } });
  nextBtn.addEventListener('click', () => { if (nextCursor) { state.cursors.push(nextCursor); load(); } });

  clear(root,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Jobs'),
      h('a', { class: 'btn btn-primary', href: '#/new' }, '+ New job')),
    h('section', { class: 'card' },
      filterForm,
      errorBox,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'jobs', id: 'jobs-table' },
          h('thead', {}, h('tr', {},
            ['Job', 'Status', 'Backend', 'Labels', 'Created', 'Queue wait', 'Run time', 'Outcome', 'Result']
              .map((t) => h('th', { scope: 'col' }, t)))),
          tbody)),
      h('div', { class: 'pager' }, prevBtn, pageInfo, nextBtn)));

  function row(job) {
    const t = jobTimes(job);
    const href = `#/jobs/${job.id}`;
    const outcome = job.error
      ? h('span', { class: `outcome-error outcome-${job.status}`, title: job.error.message || '' }, job.error.type)
      : job.status === 'succeeded'
        ? h('span', { class: 'outcome-ok' }, job.exit_code === 0 || job.exit_code == null ? 'ok' : `exit ${job.exit_code}`)
        : h('span', { class: 'muted' }, '—');
    const result = job.result_preview == null
      ? h('span', { class: 'muted' }, '—')
      : h('span', { class: 'result-preview', title: `${fmtBytes(job.result_bytes)} of JSON` },
        job.result_truncated ? `${job.result_preview}…` : job.result_preview);
    return h('tr', {
      dataset: { jobId: job.id, status: job.status },
      class: 'job-row',
      onclick: (e) => { if (!e.target.closest('a')) location.hash = href; },
    },
      h('td', { class: 'mono' }, h('a', { href, title: job.id }, job.id.slice(0, 8))),
      h('td', {}, statusBadge(job.status)),
      h('td', {}, job.backend),
      h('td', { class: 'labels-cell' }, labelChips(job.labels)),
      h('td', { class: 'nowrap', title: job.created_at }, fmtTime(job.created_at)),
      h('td', { class: 'num' }, fmtDuration(t.queue)),
      h('td', { class: `num${t.live ? ' live' : ''}` }, fmtDuration(t.run)),
      h('td', {}, outcome),
      h('td', { class: 'result-cell' }, result));
  }

  async function load() {
    const my = ++gen;
    const q = new URLSearchParams({ limit: String(state.limit) });
    if (state.status) q.set('status', state.status);
    if (state.label) q.set('label', labelParam(state.label));
    const cursor = state.cursors[state.cursors.length - 1];
    if (cursor) q.set('cursor', cursor);
    try {
      const page = await api(`/v1/jobs?${q}`);
      if (my !== gen) return;
      errorBox.hidden = true;
      nextCursor = page.next_cursor;
      clear(tbody, page.jobs.length
        ? page.jobs.map(row)
        : h('tr', { class: 'empty-row' }, h('td', { colspan: '9' },
          state.status || state.label ? 'No jobs match these filters.' : 'No jobs yet.')));
      const n = state.cursors.length;
      pageInfo.textContent = `Page ${n} · ${page.jobs.length} job${page.jobs.length === 1 ? '' : 's'}`;
      prevBtn.disabled = n <= 1;
      nextBtn.disabled = !nextCursor;
      updated.textContent = `Updated ${fmtClock()}`;
    } catch (e) {
      if (my !== gen) return;
      errorBox.textContent = `Could not load jobs — ${e instanceof ApiError ? e.describe() : e}`;
      errorBox.hidden = false;
    }
  }

  // Manual actions (filters, pages) call load() at once; the poller only when auto is on.
  const refresh = poller(async () => { if (state.auto || gen === 0) await load(); }, 2000);

  return { title: 'Jobs', destroy() { gen++; refresh.stop(); } };
}
