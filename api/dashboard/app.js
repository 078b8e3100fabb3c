// executord dashboard: hash routing between the job list (#/), a job (#/jobs/<id>) and the
// submit form (#/new); the backends panel and token controls live in the header.
import { h, clear } from './dom.js';
import { startBackends } from './backends.js';
import { forgetToken, onTokenChange } from './auth.js';
import { listView } from './jobs-list.js';
import { jobView } from './job-view.js';
import { submitView } from './submit.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const main = document.getElementById('view');
let current = null;

function notFound(root, path) {
  clear(root, h('div', { class: 'card empty-state' },
    h('h1', {}, 'Not found'),
    h('p', {}, 'There is no page at ', h('code', {}, `#${path}`), '.'),
    h('a', { href: '#/', class: 'btn' }, 'Back to jobs')));
  return { title: 'Not found', destroy() {} };
}

function route() {
  const path = location.hash.replace(/^#/, '') || '/';
  current?.destroy();
  main.replaceChildren();
  let m, nav = '';
  if (path === '/' || path === '/jobs') { current = listView(main); nav = 'list'; }
  else if (path === '/new') { current = submitView(main); nav = 'new'; }
  else if ((m = /^\/jobs\/([^/]+)$/.exec(path)) && UUID.test(m[1])) { current = jobView(main, m[1]); nav = 'list'; }
  else current = notFound(main, path);
  document.title = `${current.title} · executord`;
  document.querySelectorAll('[data-nav]').forEach((a) => {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  window.scrollTo(0, 0);
}

const tokenStatus = document.getElementById('token-status');
onTokenChange((has) => { tokenStatus.hidden = !has; });
document.getElementById('forget-token').addEventListener('click', () => {
  forgetToken();
  // The next request gets 401 and asks again; make that happen now.
  route();
});

window.addEventListener('hashchange', route);
startBackends();
route();
