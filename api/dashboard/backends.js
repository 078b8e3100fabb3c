// The header panel: each backend, whether it is available (and why not / its caveat) and
// the warm pool's state. Refreshed every 5 s; the submit form reads the same data.
// A backend the operator did not enable (--backends; `enabled: false`) is shown as
// "not enabled", in grey: a choice of the instance, not a fault.
import { api } from './api.js';
import { h, clear } from './dom.js';
import { poller } from './poll.js';
import { reportProblem, clearProblem } from './banner.js';

let latest = null;
const subscribers = new Set();

export function onBackends(fn) {
  subscribers.add(fn);
  if (latest) fn(latest);
  return () => subscribers.delete(fn);
}

function poolSummary(state) {
  if (!state) return null;
  const parts = [];
  if (state.ready != null && state.size != null) parts.push(`${state.ready}/${state.size} ready`);
  if (state.busy != null) parts.push(`${state.busy} busy`);
  if (state.cold_starts) parts.push(`${state.cold_starts} cold`);
  if (state.failures) parts.push(`${state.failures} failures`);
  return parts.join(' · ');
}

function poolState(state) {
  if (!state) return '';
  if (state.available === false) return 'down';
  if (state.ready > 0) return 'ready';
  if (state.busy > 0) return 'busy';
  return 'empty';
}

/** Whether jobs may name this backend here (servers without the field enable all). */
export function backendEnabled(b) {
  return b.enabled !== false;
}

function render(data) {
  const list = document.getElementById('backends-list');
  clear(list, data.backends.map((b) => {
    const enabled = backendEnabled(b);
    const avail = !enabled ? 'not enabled' : b.available ? 'available' : 'unavailable';
    const detail = !enabled ? null : b.available ? b.note : b.reason;
    const state = enabled && b.state ? poolState(b.state) : '';
    const title = [
      `${b.name}: ${avail}`,
      enabled ? detail : b.reason || 'not enabled on this instance (--backends)',
      b.state?.last_failure ? `last failure: ${b.state.last_failure}` : null,
      b.state?.caveat,
    ].filter(Boolean).join('\n');
    return h('div', {
      class: `backend ${!enabled ? 'is-off' : b.available ? 'is-up' : 'is-down'}${enabled && b.note ? ' has-note' : ''}`,
      dataset: { backend: b.name, enabled: String(enabled), available: String(!!b.available), state },
      title,
    },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('span', { class: 'backend-name' }, b.name),
      b.name === data.default ? h('span', { class: 'tag' }, 'default') : null,
      h('span', { class: 'backend-avail' }, avail),
      state ? h('span', { class: `pool-state pool-${state}` }, state) : null,
      state ? h('span', { class: 'backend-stats' }, poolSummary(b.state)) : null,
      detail ? h('span', { class: 'backend-detail' }, detail) : null,
    );
  }));
}

export function startBackends() {
  return poller(async () => {
    try {
      latest = await api('/v1/backends');
      clearProblem('backends');
      render(latest);
      subscribers.forEach((fn) => fn(latest));
    } catch (e) {
      reportProblem('backends', e);
    }
  }, 5000);
}
