// The builder page: a hash router over its views (workflow list, version history and
// comparison, editor with its test panel, a workflow's results, runs, the event
// inspector, customers, teams, agents, webhook endpoints, SMS providers, the contact
// policy). Everything it shows comes from /api/v1.

import { get } from './api.js';
import { h, announce } from './dom.js';
import { renderList, renderHistory } from './list.js';
import { renderEditor } from './editor.js';
import { renderRuns } from './runs.js';
import { renderResults } from './results.js';
import { renderEndpoints, renderProviders } from './crm.js';
import { renderEvents } from './events.js';
import { renderCustomers, renderCustomer } from './customers.js';
import { renderTeams, renderAgents, renderAgent } from './teams.js';
import { renderContactPolicy } from './contact.js';

const view = document.getElementById('view');
let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '') || 'workflows';
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const { parts, params } = parseHash();
  const [name, id] = parts;
  let nav = name;
  view.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    if (name === 'new') { nav = 'editor'; cleanup = await renderEditor(view, null, params); }
    else if (name === 'edit' && id) { nav = 'editor-existing'; cleanup = await renderEditor(view, id, params); }
    else if (name === 'history' && id) { nav = 'workflows'; cleanup = await renderHistory(view, id, params); }
    else if (name === 'results' && id) { nav = 'workflows'; cleanup = await renderResults(view, id, params); }
    else if (name === 'runs') { cleanup = await renderRuns(view, params); }
    else if (name === 'events') { cleanup = await renderEvents(view, params, id); }
    else if (name === 'customers' && id) { cleanup = await renderCustomer(view, id); }
    else if (name === 'customers') { cleanup = await renderCustomers(view, params); }
    else if (name === 'teams') { cleanup = await renderTeams(view, params); }
    else if (name === 'agents' && id) { cleanup = await renderAgent(view, id); }
    else if (name === 'agents') { cleanup = await renderAgents(view, params); }
    else if (name === 'endpoints') { cleanup = await renderEndpoints(view); }
    else if (name === 'sms-providers') { cleanup = await renderProviders(view); }
    else if (name === 'contact-policy') { cleanup = await renderContactPolicy(view); }
    else { nav = 'workflows'; cleanup = await renderList(view); }
  } catch (e) {
    view.replaceChildren(h('div', { class: 'panel error-panel', role: 'alert' },
      h('h2', {}, 'Something went wrong'), h('p', {}, e.message),
      h('p', {}, h('a', { href: '#/workflows' }, 'Back to the workflows'))));
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const heading = view.querySelector('h2');
  if (heading) document.title = `${heading.textContent} · Workflow builder`;
}

window.addEventListener('hashchange', () => {
  const status = document.getElementById('status');
  if (status.dataset.kind !== 'error') status.textContent = '';
  route().then(() => { if (!view.contains(document.activeElement)) view.focus({ preventScroll: true }); });
});

route();

get('/api/v1/info').then((info) => {
  const kafka = info.kafka || {};
  const broker = kafka.embedded ? 'embedded Kafka' : `Kafka ${kafka.bootstrap_servers || ''}`;
  document.getElementById('engine-info').textContent =
    [info.version && `engine ${info.version}`, info.node_id, info.database, broker, kafka.topic]
      .filter(Boolean).join(' · ');
}).catch((e) => announce(`Engine info unavailable: ${e.message}`, 'error'));
