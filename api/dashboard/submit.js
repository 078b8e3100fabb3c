// The submit form: script, inputs (JSON, checked here first), backend (from /v1/backends),
// timeout and limits, labels, env vars, network. 201 → the new job's page; API errors are
// shown above the form and, for 422, next to the field they name.
import { api, ApiError } from './api.js';
import { h, clear } from './dom.js';
import { onBackends, backendEnabled } from './backends.js';
import { takeDraft } from './draft.js';

const EXAMPLE = `import time

def main(name="world", count=3):
    for i in range(count):
        print(f"hello {name} #{i}", flush=True)
        time.sleep(0.5)
    return {"greeted": name, "times": count}
`;

const LIMITS = [
  ['memory_mb', 'Memory (MiB)', 512],
  ['cpu_seconds', 'CPU time (s)', 60],
  ['max_processes', 'Max processes', 64],
  ['max_file_size_mb', 'Max file size (MiB)', 64],
  ['max_open_files', 'Max open files', 256],
  ['max_output_bytes', 'Max output (bytes/stream)', 1048576],
];
const KEY_RE = { labels: /^[A-Za-z0-9_.\-/]{1,128}$/, env_vars: /^[A-Za-z_][A-Za-z0-9_]*$/ };

function field(id, label, control, hint) {
  const err = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  control.setAttribute('aria-describedby', `${id}-error${hint ? ` ${id}-hint` : ''}`);
  return h('div', { class: 'field', dataset: { for: id } },
    h('label', { for: id }, label), control,
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null, err);
}

/** "k=v" lines → object; throws a message naming the line. */
function parsePairs(text, what, keyRe) {
  const out = {};
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const at = line.indexOf('=');
    const k = at < 0 ? '' : line.slice(0, at).trim();
    if (at < 0 || !keyRe.test(k)) {
      throw new Error(`${what}, line ${i + 1}: write key=value` +
        (what === 'Labels' ? ' (key: letters, digits, _ . - /)' : ' (name: letters, digits, _; not starting with a digit)'));
    }
    out[k] = line.slice(at + 1).trim();
  });
  return out;
}

export function submitView(root) {
  const draft = takeDraft();
  const script = h('textarea', { id: 'f-script', name: 'script', rows: '14', class: 'mono', spellcheck: 'false', required: true });
  script.value = draft?.script ?? EXAMPLE;
  const inputs = h('textarea', { id: 'f-inputs', name: 'inputs', rows: '5', class: 'mono', spellcheck: 'false' });
  inputs.value = draft ? JSON.stringify(draft.inputs ?? {}, null, 2) : '{\n  "name": "executord",\n  "count": 3\n}';
  const backend = h('select', { id: 'f-backend', name: 'backend' }, h('option', { value: '' }, 'service default'));
  const timeout = h('input', { id: 'f-timeout', name: 'timeout_seconds', type: 'number', min: '0.001', step: 'any', placeholder: '30', inputmode: 'decimal' });
  if (draft?.limits?.timeout_seconds) timeout.value = draft.limits.timeout_seconds;
  const limitInputs = LIMITS.map(([k, , def]) => {
    const el = h('input', { id: `f-${k}`, name: k, type: 'number', min: '1', step: '1', placeholder: String(def), inputmode: 'numeric' });
    if (draft?.limits?.[k] != null && draft.limits[k] !== def) el.value = draft.limits[k];
    return el;
  });
  const labels = h('textarea', { id: 'f-labels', name: 'labels', rows: '3', class: 'mono', spellcheck: 'false', placeholder: 'team=secops\nworkflow=triage' });
  if (draft?.labels) labels.value = Object.entries(draft.labels).map(([k, v]) => `${k}=${v}`).join('\n');
  const env = h('textarea', { id: 'f-env', name: 'env_vars', rows: '3', class: 'mono', spellcheck: 'false', placeholder: 'API_KEY=…' });
  const network = h('input', { id: 'f-network', name: 'allow_network', type: 'checkbox', checked: !!draft?.allow_network });
  const submitBtn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'f-submit' }, 'Run job');
  const formError = h('div', { class: 'alert alert-error', role: 'alert', id: 'form-error', hidden: true });
  const backendHint = h('p', { class: 'hint', id: 'f-backend-note' });

  // Which control shows an error for a field the API names ("limits.memory_mb", "labels.x").
  const controls = {
    script, inputs, backend, timeout_seconds: timeout, labels, env_vars: env, allow_network: network,
    ...Object.fromEntries(LIMITS.map(([k], i) => [`limits.${k}`, limitInputs[i]])),
  };
  const controlFor = (f) => controls[f] || controls[f.split('.')[0]] || null;

  function fieldError(control, msg) {
    const err = document.getElementById(`${control.id}-error`);
    if (!err) return;
    err.textContent = msg || '';
    err.hidden = !msg;
    if (msg) control.setAttribute('aria-invalid', 'true'); else control.removeAttribute('aria-invalid');
  }
  function clearErrors() {
    formError.hidden = true;
    Object.values(controls).forEach((c) => fieldError(c, ''));
  }

  function checkInputs() {
    const text = inputs.value.trim();
    if (!text) { fieldError(inputs, ''); return { ok: true, value: undefined }; }
    try {
      const v = JSON.parse(text);
      if (v !== null && (typeof v !== 'object' || Array.isArray(v))) {
        throw new Error(`expected an object like {"a": 1}, got ${Array.isArray(v) ? 'an array' : typeof v}`);
      }
      fieldError(inputs, '');
      return { ok: true, value: v };
    } catch (e) {
      const msg = `Inputs must be a JSON object: ${e.message}`;
      fieldError(inputs, msg);
      return { ok: false, msg };
    }
  }
  let inputsTimer = null;
  inputs.addEventListener('input', () => { clearTimeout(inputsTimer); inputsTimer = setTimeout(checkInputs, 400); });

  // Tab in the script editor indents instead of leaving the field.
  script.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab' || e.shiftKey || e.ctrlKey || e.altKey || e.metaKey) return;
    e.preventDefault();
    script.setRangeText('    ', script.selectionStart, script.selectionEnd, 'end');
  });

  function build() {
    const problems = [];
    const body = { script: script.value };
    if (!script.value.trim()) { problems.push([script, 'The script is empty.']); }
    const inp = checkInputs();
    if (!inp.ok) problems.push([inputs, inp.msg]); else if (inp.value !== undefined) body.inputs = inp.value;
    if (backend.value) body.backend = backend.value;
    if (timeout.value.trim()) {
      const t = Number(timeout.value);
      if (!(t > 0)) problems.push([timeout, 'Timeout must be a number of seconds above 0.']);
      else body.timeout_seconds = t;
    } else if (timeout.validity.badInput) problems.push([timeout, 'Timeout must be a number.']);
    const limits = {};
    LIMITS.forEach(([k, label], i) => {
      const el = limitInputs[i];
      if (el.validity.badInput) { problems.push([el, `${label} must be a whole number.`]); return; }
      if (!el.value.trim()) return;
      const n = Number(el.value);
      if (!Number.isInteger(n) || n < 1) problems.push([el, `${label} must be a whole number ≥ 1.`]);
      else limits[k] = n;
    });
    if (Object.keys(limits).length) body.limits = limits;
    for (const [el, key, what] of [[labels, 'labels', 'Labels'], [env, 'env_vars', 'Env vars']]) {
      try {
        const o = parsePairs(el.value, what, KEY_RE[key]);
        if (Object.keys(o).length) body[key] = o;
      } catch (e) { problems.push([el, e.message]); }
    }
    if (network.checked) body.allow_network = true;
    return { body, problems };
  }

  const form = h('form', { class: 'submit-form', id: 'submit-form', novalidate: true },
    formError,
    h('div', { class: 'form-grid' },
      h('div', { class: 'form-main' },
        field('f-script', 'Script (Python; main(**inputs) is called)', script),
        field('f-inputs', 'Inputs (JSON object, passed as keyword arguments)', inputs)),
      h('div', { class: 'form-side' },
        field('f-backend', 'Backend', backend),
        backendHint,
        field('f-timeout', 'Timeout (seconds)', timeout),
        h('fieldset', { class: 'limits' }, h('legend', {}, 'Limits (empty = service default)'),
          h('div', { class: 'limits-grid' }, LIMITS.map(([k, label], i) => field(`f-${k}`, label, limitInputs[i])))),
        field('f-labels', 'Labels (one key=value per line)', labels),
        field('f-env', 'Env vars (one NAME=value per line; values are never shown back)', env),
        h('div', { class: 'field check' }, network, h('label', { for: 'f-network' }, 'Allow network access')),
        h('p', { class: 'field-error', id: 'f-network-error', hidden: true }))),
    h('div', { class: 'form-actions' }, submitBtn,
      h('a', { class: 'btn btn-ghost', href: '#/' }, 'Cancel')));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    const { body, problems } = build();
    if (problems.length) {
      problems.forEach(([el, msg]) => fieldError(el, msg));
      formError.textContent = problems.length === 1 ? `Please fix: ${problems[0][1]}`
        : `Please fix ${problems.length} fields: ${problems.map((p) => p[1]).join(' ')}`;
      formError.hidden = false;
      problems[0][0].focus();
      return;
    }
    submitBtn.disabled = true;
    submitBtn.textContent = 'Submitting…';
    try {
      const job = await api('/v1/jobs', { method: 'POST', body });
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      const msg = err instanceof ApiError ? err.describe() : String(err);
      let text = `Submission refused — ${msg}`;
      if (err.status === 429) text = `The queue is full (429). Retry in ${err.retryAfter || 1} s. ${err.message}`;
      if (err.status === 0) text = msg;
      formError.textContent = text;
      formError.hidden = false;
      const c = err.field ? controlFor(err.field) : null;
      if (c) {
        fieldError(c, err.message.includes(err.field) ? err.message : `${err.field}: ${err.message}`);
        c.focus();
      }
    } finally {
      submitBtn.disabled = false;
      submitBtn.textContent = 'Run job';
    }
  });

  let backends = null, signature = '';
  const updateHint = () => {
    if (!backends) return;
    const chosen = backends.backends.find((b) => b.name === (backend.value || backends.default));
    backendHint.textContent = chosen ? (chosen.available ? chosen.note || '' : `Unavailable: ${chosen.reason}`) : '';
    backendHint.hidden = !backendHint.textContent;
  };
  const unsub = onBackends((data) => {
    backends = data;
    // Backends not enabled on this instance (--backends) are no choice at all: left out.
    const offered = data.backends.filter(backendEnabled);
    const sig = JSON.stringify([data.default, offered.map((b) => [b.name, b.available])]);
    if (sig !== signature) {          // rebuild the choices only when they change
      signature = sig;
      const keep = backend.value || draft?.backend || '';
      clear(backend,
        h('option', { value: '' }, `service default (${data.default})`),
        offered.map((b) => h('option', { value: b.name, disabled: !b.available },
          `${b.name}${b.available ? '' : ` — unavailable: ${b.reason || 'unknown'}`}`)));
      // A job run again on a backend no longer offered falls back to the default.
      backend.value = offered.some((b) => b.name === keep) ? keep : '';
    }
    updateHint();
  });
  backend.addEventListener('change', updateHint);

  clear(root,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Jobs'), ' / ', 'New job'),
    h('div', { class: 'page-head' }, h('h1', {}, draft ? 'Run again' : 'New job')),
    h('section', { class: 'card' }, form));
  (draft ? submitBtn : script).focus();

  return { title: 'New job', destroy() { unsub(); clearTimeout(inputsTimer); } };
}
