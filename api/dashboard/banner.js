// The page-wide problem banner (e.g. executord unreachable), shown until the next success.
const problems = new Map();

function render() {
  const el = document.getElementById('banner');
  const msgs = [...problems.values()];
  el.textContent = msgs.join(' · ');
  el.hidden = msgs.length === 0;
}

export function reportProblem(source, err) {
  const msg = err && typeof err.describe === 'function' ? err.describe() : String(err?.message || err);
  problems.set(source, msg);
  render();
}

export function clearProblem(source) {
  if (problems.delete(source)) render();
}
