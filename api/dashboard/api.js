// fetch() wrapper for the executord API: bearer token, 401 → ask for the token and retry,
// errors turned into ApiError carrying the API's {code, message, field}.
import { getToken, askToken } from './auth.js';

export class ApiError extends Error {
  constructor(status, code, message, field = null, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
  /** One line for the user: "422 invalid_field (limits.memory_mb): must be at most 65536". */
  describe() {
    if (this.status === 0) return this.message;
    let s = `${this.status} ${this.code}`;
    if (this.field) s += ` (${this.field})`;
    s += `: ${this.message}`;
    if (this.status === 429) s += ` — retry in ${this.retryAfter || 1} s`;
    return s;
  }
}

async function toError(res) {
  let code = 'http_error', message = res.statusText || 'request failed', field = null;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      field = body.error.field || null;
    }
  } catch { /* not JSON */ }
  return new ApiError(res.status, code, message, field, res.headers.get('Retry-After'));
}

/** api('/v1/jobs', {method, body, raw}) → parsed JSON (or the Response when raw). */
export async function api(path, { method = 'GET', body, raw = false } = {}) {
  for (;;) {
    const token = getToken();
    const headers = { Accept: raw ? '*/*' : 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method, headers, cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'network', `Cannot reach executord: ${e.message}`);
    }
    if (res.status === 401) {
      await res.text().catch(() => {});
      // Another request may have got a new token meanwhile: then just retry with it.
      if (getToken() === token) await askToken(!!token);
      continue;
    }
    if (!res.ok) throw await toError(res);
    if (raw) return res;
    return res.status === 204 ? null : res.json();
  }
}

export const jobPath = (id) => `/v1/jobs/${encodeURIComponent(id)}`;
