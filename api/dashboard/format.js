// Formatting of times, durations, sizes and statuses.

export const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled']);
export const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled'];

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local date and time, e.g. 2026-11-27 07:05:58. */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
         `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtClock(d = new Date()) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Milliseconds between two RFC 3339 times (b - a), or null. */
export function diffMs(a, b) {
  if (!a || !b) return null;
  const ms = new Date(b).getTime() - new Date(a).getTime();
  return Number.isFinite(ms) ? Math.max(0, ms) : null;
}

export function fmtDuration(ms) {
  if (ms == null || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  return `${Math.floor(m / 60)}h ${pad(m % 60)}m`;
}

export function fmtBytes(n) {
  if (n == null || !Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

/** Queue wait and run time of a job; a running job's run time counts up to now. */
export function jobTimes(job) {
  const queue = diffMs(job.created_at, job.started_at) ?? job.queue_wait_ms ?? null;
  let run = diffMs(job.started_at, job.finished_at) ?? job.run_ms ?? null;
  let live = false;
  if (run == null && job.started_at && !job.finished_at) {
    run = diffMs(job.started_at, new Date().toISOString());
    live = true;
  }
  return { queue, run, live };
}

export const statusLabel = (s) => String(s || 'unknown').replace('_', ' ');
