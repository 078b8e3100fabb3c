// Small shared pieces: status badge, label chips.
import { h } from './dom.js';
import { statusLabel } from './format.js';

export function statusBadge(status, big = false) {
  return h('span', {
    class: `badge status-${/^[a-z_]+$/.test(status) ? status : 'unknown'}${big ? ' badge-big' : ''}`,
    dataset: { status },
  }, statusLabel(status));
}

export function labelChips(labels) {
  const entries = Object.entries(labels || {});
  if (!entries.length) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'chips' },
    entries.map(([k, v]) => h('span', { class: 'chip', title: `${k}=${v}` },
      h('span', { class: 'chip-key' }, k), '=', h('span', { class: 'chip-val' }, v))));
}
