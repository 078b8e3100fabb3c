// The API token: asked for once when a request gets 401 (a small dialog), kept in this
// tab's sessionStorage, sent as "Authorization: Bearer …", and forgettable.

const KEY = 'executord.token';
let pending = null;          // the promise of the dialog being shown, shared by all callers
const listeners = new Set();

export function getToken() {
  try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
}

function setToken(t) {
  try {
    if (t) sessionStorage.setItem(KEY, t); else sessionStorage.removeItem(KEY);
  } catch { /* storage unavailable: the token lives for this request only */ }
  listeners.forEach((fn) => fn(!!t));
}

export function forgetToken() { setToken(''); }
export function onTokenChange(fn) { listeners.add(fn); fn(!!getToken()); }

/** Shows the token dialog (once, however many requests got 401) and resolves when the user
 * has entered a token. `rejected` says the token that was sent was refused. */
export function askToken(rejected) {
  if (pending) return pending;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  const reason = document.getElementById('token-reason');
  reason.textContent = rejected
    ? 'The token was refused (401). Enter a valid API token.'
    : 'This executord requires a bearer token for its API (401).';
  error.hidden = true;
  input.value = '';
  input.removeAttribute('aria-invalid');
  pending = new Promise((resolve) => {
    const onSubmit = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) {
        error.textContent = 'Enter the token.';
        error.hidden = false;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      form.removeEventListener('submit', onSubmit);
      dialog.removeEventListener('cancel', onCancel);
      setToken(t);
      dialog.close();
      pending = null;
      resolve(t);
    };
    const onCancel = (ev) => ev.preventDefault();   // Escape must not leave the app stuck
    form.addEventListener('submit', onSubmit);
    dialog.addEventListener('cancel', onCancel);
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return pending;
}
