// Follows one output stream of a job through its windows: GET /v1/jobs/{id}/logs?stream=S&offset=N
// returns at most 1 MiB of raw bytes from N on, with X-Next-Offset (where to go on),
// X-Window-Truncated (more is stored), X-Output-Bytes (total so far) and X-Job-Status. Bytes
// are decoded as UTF-8 across windows and appended as text nodes (never parsed as HTML). The
// pane keeps the last SHOWN_MAX bytes: a longer output is shown from its tail, and says how
// much came before.
import { api, jobPath } from './api.js';
import { h } from './dom.js';
import { FINAL, fmtBytes } from './format.js';

const SHOWN_MAX = 2 * 1024 * 1024;
const WINDOWS_PER_STEP = 8;   // then the page polls again, so one step never runs long

export class LogTail {
  constructor(jobId, stream) {
    this.jobId = jobId;
    this.stream = stream;
    this.offset = 0;       // the next byte to fetch
    this.total = 0;        // stored so far, as the last answer said
    this.skipped = 0;      // bytes before the first one shown
    this.shown = [];       // [text node, bytes] in order, for trimming from the front
    this.shownBytes = 0;
    this.done = false;
    this.decoder = new TextDecoder('utf-8');
    this.pre = h('pre', { class: `log log-${stream}`, id: `log-${stream}`, tabindex: '0', 'aria-label': stream });
    this.empty = h('span', { class: 'log-empty' }, 'no output yet');
    this.pre.append(this.empty);
    this.size = h('span', { class: 'muted small', id: `log-${stream}-size` }, '0 B');
    this.liveDot = h('span', { class: 'live-dot', title: 'following live', hidden: true });
    this.truncated = h('span', { class: 'badge badge-warn', hidden: true }, 'truncated');
    this.skippedNote = h('span', { class: 'muted small', id: `log-${stream}-skipped`, hidden: true });
    this.el = h('section', { class: 'log-pane', dataset: { stream } },
      h('div', { class: 'log-head' },
        h('h3', {}, stream), this.liveDot, this.size, this.truncated, this.skippedNote),
      this.pre);
  }

  append(text, bytes) {
    if (!text && !bytes) return;
    if (this.empty) { this.empty.remove(); this.empty = null; }
    const pre = this.pre;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
    const node = document.createTextNode(text);
    pre.append(node);
    this.shown.push([node, bytes]);
    this.shownBytes += bytes;
    while (this.shownBytes > SHOWN_MAX && this.shown.length > 1) {
      const [old, n] = this.shown.shift();
      old.remove();
      this.shownBytes -= n;
      this.skip(n);
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  skip(n) {
    this.skipped += n;
    this.skippedNote.textContent = `first ${fmtBytes(this.skipped)} not shown`;
    this.skippedNote.hidden = false;
  }

  setTruncated(t) { this.truncated.hidden = !t; }

  /** Fetches what is new; returns true once the stream is complete (the job is final and
   * everything has been read). */
  async step() {
    if (this.done) return true;
    for (let round = 0; round < WINDOWS_PER_STEP; round++) {
      // Far behind the end: jump to the part the pane would keep anyway (what it shows
      // goes too, so that it shows one piece of the stream).
      if (this.total - this.offset > SHOWN_MAX) {
        for (const [node, n] of this.shown.splice(0)) { node.remove(); this.skip(n); }
        this.shownBytes = 0;
        this.skip(this.total - SHOWN_MAX - this.offset);
        this.offset = this.total - SHOWN_MAX;
        this.decoder = new TextDecoder('utf-8');
      }
      const res = await api(`${jobPath(this.jobId)}/logs?stream=${this.stream}&offset=${this.offset}`, { raw: true });
      const buf = new Uint8Array(await res.arrayBuffer());
      const total = Number(res.headers.get('X-Output-Bytes'));
      const next = Number(res.headers.get('X-Next-Offset'));
      const more = res.headers.get('X-Window-Truncated') === 'true';
      const status = res.headers.get('X-Job-Status');
      this.offset = Number.isFinite(next) ? next : this.offset + buf.byteLength;
      if (Number.isFinite(total)) this.total = Math.max(total, this.offset);
      this.append(this.decoder.decode(buf, { stream: true }), buf.byteLength);
      this.size.textContent = fmtBytes(this.total);
      const final = FINAL.has(status);
      this.liveDot.hidden = final;
      if (final && !more) {
        this.append(this.decoder.decode(), 0);
        this.done = true;
        if (this.empty) this.empty.textContent = 'no output';
        return true;
      }
      if (!more) return false;   // caught up with a running job
    }
    return false;
  }
}
