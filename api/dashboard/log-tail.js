// Follows one output stream of a job: GET /v1/jobs/{id}/logs?stream=S&offset=N returns the
// raw bytes from N on, with X-Output-Bytes (total so far) and X-Job-Status. Bytes are decoded
// as UTF-8 across chunk boundaries and appended as text nodes (never parsed as HTML).
import { api, jobPath } from './api.js';
import { h } from './dom.js';
import { FINAL, fmtBytes } from './format.js';

export class LogTail {
  constructor(jobId, stream) {
    this.jobId = jobId;
    this.stream = stream;
    this.offset = 0;
    this.total = 0;
    this.done = false;
    this.decoder = new TextDecoder('utf-8');
    this.pre = h('pre', { class: `log log-${stream}`, id: `log-${stream}`, tabindex: '0', 'aria-label': stream });
    this.empty = h('span', { class: 'log-empty' }, 'no output yet');
    this.pre.append(this.empty);
    this.size = h('span', { class: 'muted small', id: `log-${stream}-size` }, '0 B');
    this.liveDot = h('span', { class: 'live-dot', title: 'following live', hidden: true });
    this.truncated = h('span', { class: 'badge badge-warn', hidden: true }, 'truncated');
    this.el = h('section', { class: 'log-pane', dataset: { stream } },
      h('div', { class: 'log-head' },
        h('h3', {}, stream), this.liveDot, this.size, this.truncated),
      this.pre);
  }

  append(text) {
    if (!text) return;
    if (this.empty) { this.empty.remove(); this.empty = null; }
    const pre = this.pre;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
    pre.append(document.createTextNode(text));
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  setTruncated(t) { this.truncated.hidden = !t; }

  /** Fetches what is new; returns true once the stream is complete (the job is final and
   * everything has been read). */
  async step() {
    if (this.done) return true;
    for (let round = 0; round < 50; round++) {
      const res = await api(`${jobPath(this.jobId)}/logs?stream=${this.stream}&offset=${this.offset}`, { raw: true });
      const buf = new Uint8Array(await res.arrayBuffer());
      const total = Number(res.headers.get('X-Output-Bytes'));
      const status = res.headers.get('X-Job-Status');
      this.offset += buf.byteLength;
      if (Number.isFinite(total)) this.total = Math.max(total, this.offset);
      this.append(this.decoder.decode(buf, { stream: true }));
      this.size.textContent = fmtBytes(this.offset);
      const final = FINAL.has(status);
      this.liveDot.hidden = final;
      if (final && (buf.byteLength === 0 || this.offset >= this.total)) {
        this.append(this.decoder.decode());
        this.done = true;
        if (this.empty) this.empty.textContent = 'no output';
        return true;
      }
      if (buf.byteLength === 0 || this.offset >= this.total) return false;   // caught up
    }
    return false;
  }
}
