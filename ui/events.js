// The Events page: the event inspector (GET /api/v1/events/{id}) says why each workflow of
// an event's trigger did or did not run for it — the verdict recorded when the event was
// planned, the rules that failed with what they saw, the stop_after workflow that skipped
// one, the limit that held the customer back — with links to the runs it started. A
// customer's archived events (GET /api/v1/events?customer_id=) list newest first, each
// opening its inspector; the customer page shows the same list.

import { get } from './api.js';
import { h, fmtTime, badge } from './dom.js';
import { judgedRuleText, durationText, plural } from './words.js';
import { runHref } from './runs.js';

/** Each verdict in words, with the badge colour it is shown in. */
const VERDICTS = {
  matched: ['ran', 'done'],
  no_match: ['did not match', 'off'],
  skipped: ['skipped by stop_after', 'waiting'],
  limited: ['held back by its limit', 'waiting'],
  stopped: ['stopped by the cascade limit', 'failed'],
};
/** Events a page of the customer's list. */
const PAGE = 25;

const eventHref = (id) => `#/events/${encodeURIComponent(id)}`;
const customerHref = (id) => `#/customers/${encodeURIComponent(id)}`;

const sentence = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

export async function renderEvents(view, params, id) {
  const idInput = h('input', { id: 'ev-id', type: 'text', value: id || '', spellcheck: 'false', autocomplete: 'off', placeholder: 'e.g. 7d9c… or ev-1042' });
  const customerInput = h('input', { id: 'ev-customer', type: 'number', min: '1', step: '1', inputmode: 'numeric', value: params.get('customer_id') || '' });
  const byId = h('form', { class: 'filters', role: 'search', 'aria-label': 'Inspect an event by its id' },
    h('div', { class: 'field' }, h('label', { for: idInput.id }, 'Event id'), idInput),
    h('button', { type: 'submit', class: 'primary', id: 'ev-inspect' }, 'Inspect'));
  byId.addEventListener('submit', (e) => {
    e.preventDefault();
    if (idInput.value.trim()) location.hash = eventHref(idInput.value.trim());
  });
  const byCustomer = h('form', { class: 'filters', role: 'search', 'aria-label': 'List the events of a customer' },
    h('div', { class: 'field' }, h('label', { for: customerInput.id }, 'Customer id'), customerInput),
    h('button', { type: 'submit', id: 'ev-list' }, 'List their events'));
  byCustomer.addEventListener('submit', (e) => {
    e.preventDefault();
    if (customerInput.value) location.hash = `#/events?customer_id=${encodeURIComponent(customerInput.value)}`;
  });

  const body = h('div', { id: 'ev-body' });
  view.replaceChildren(
    h('div', { class: 'view-head' }, h('h2', {}, id ? `Event ${id}` : params.get('customer_id') ? `Events of customer ${params.get('customer_id')}` : 'Events')),
    h('div', { class: 'search-row' }, byId, byCustomer),
    body);
  if (id) {
    body.replaceChildren(await inspector(id));
  } else if (params.get('customer_id')) {
    const c = params.get('customer_id');
    body.replaceChildren(h('section', { class: 'panel', 'aria-labelledby': 'ev-list-title' },
      h('h3', { id: 'ev-list-title' }, 'Archived events, newest first'),
      h('p', { class: 'muted' }, h('a', { href: customerHref(c) }, `Customer ${c}`), ': open an event to see why each workflow did or did not run for it.'),
      eventList(c).el));
  } else {
    body.replaceChildren(h('p', { class: 'muted' },
      'Type an event’s id (a run shows the id of the event that started it) to see why each workflow of its trigger did or did not run, or a customer id to list their events. ',
      'Events are kept for archive.days (30 by default).'));
  }
  return null;
}

/** The inspector of one event, or what the engine said when it does not know it. */
async function inspector(id) {
  let ev;
  try {
    ev = await get(`/api/v1/events/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status !== 404) throw e;
    return h('p', { class: 'empty', id: 'ev-unknown' },
      `The engine knows no event “${id}”: it was neither archived nor planned. Check the id, or it may be older than the archive keeps.`);
  }
  const event = ev.event;
  const customerId = event?.customer_id ?? ev.runs[0]?.customer_id;
  const type = event?.type ?? ev.runs[0]?.trigger;
  const names = Object.fromEntries(ev.workflows.map((w) => [w.workflow_id, w.name]));
  const facts = [
    ['Type', type ? h('code', {}, type) : 'unknown (not archived)'],
    ['Customer', customerId != null ? h('span', {}, h('a', { href: customerHref(customerId), id: 'ev-customer-link' }, `customer ${customerId}`), ' · ',
      h('a', { href: `#/runs?customer_id=${encodeURIComponent(customerId)}` }, 'their runs')) : 'unknown'],
    ['Occurred', event?.occurred_at ? fmtTime(event.occurred_at) : '—'],
    ['Archived', ev.archived_at ? fmtTime(ev.archived_at) : 'no: the archive is off, or it was pruned'],
    ['Planned', ev.planned ? `yes, ${fmtTime(ev.planned_at)}, partition ${ev.partition}` : 'no'],
  ];
  return h('div', { class: 'inspector' },
    h('p', { class: 'lead', id: 'ev-explanation' }, sentence(ev.explanation) + '.'),
    h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    ev.planned ? h('section', { 'aria-labelledby': 'ev-wf-title' },
      h('h3', { id: 'ev-wf-title' }, `Workflows of ${type || 'its trigger'}, in priority order`),
      ev.workflows.length ? verdictTable(ev.workflows, names, customerId) : h('p', { class: 'muted' }, 'No active workflow listened to this type when it was planned.'),
      h('p', { class: 'hint' }, 'A workflow not listed was not active for this trigger when the event was planned (created or enabled later, or disabled then). Verdicts say what was decided then, whatever the workflows or the customer are now.'))
      : null,
    !ev.planned && ev.runs.length ? h('p', {}, `It started ${plural(ev.runs.length, 'run')}: `, ev.runs.map((r, i) => [i ? ', ' : '', h('a', { href: runHref(r) }, `run ${r.id} (${r.status})`)])) : null,
    h('h3', {}, 'Data'),
    event ? h('pre', { class: 'json', tabindex: '0', id: 'ev-data' }, JSON.stringify(event.data, null, 2)) : h('p', { class: 'muted' }, 'Not archived: the data is not kept.'));
}

function verdictTable(workflows, names, customerId) {
  return h('table', { class: 'list', id: 'ev-verdicts' },
    h('caption', { class: 'sr-only' }, 'The verdict for each workflow of the trigger'),
    h('thead', {}, h('tr', {}, ['Workflow', 'Verdict', 'Why', 'Runs'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, workflows.map((w) => {
      const [word, kind] = VERDICTS[w.verdict] || [w.verdict, 'off'];
      return h('tr', { dataset: { workflow: w.workflow_id, verdict: w.verdict } },
        h('th', { scope: 'row' },
          w.name ? h('a', { href: `#/edit/${encodeURIComponent(w.workflow_id)}` }, w.name) : h('span', {}, `${w.workflow_id} (deleted)`),
          h('div', { class: 'small muted' }, `version ${w.version}`)),
        h('td', {}, badge(word, kind)),
        h('td', { class: 'why' }, why(w, names)),
        h('td', {}, w.runs.length
          ? h('ul', { class: 'plain' }, w.runs.map((r) => h('li', {}, h('a', { href: runHref({ ...r, workflow_id: w.workflow_id, customer_id: customerId }) }, `run ${r.id}`), ` (${r.status})`)))
          : h('span', { class: 'muted' }, 'none'),
        h('div', { class: 'small' }, h('a', { href: `#/runs?workflow_id=${encodeURIComponent(w.workflow_id)}` }, 'all its runs'))));
    })));
}

/** Why a workflow got its verdict, in sentences. */
function why(w, names) {
  switch (w.verdict) {
    case 'matched':
      return h('p', {}, 'Its conditions held and it ran.');
    case 'no_match':
      return w.failing?.length
        ? [h('p', {}, 'Its conditions did not hold:'), h('ul', { class: 'failing' }, w.failing.map((f) => h('li', {}, judgedRuleText(f))))]
        : h('p', {}, 'Its conditions did not hold.');
    case 'skipped':
      return h('p', {}, h('a', { href: `#/edit/${encodeURIComponent(w.skipped_by)}` }, names[w.skipped_by] || w.skipped_by),
        ' matched first and has stop_after, so the workflows after it in priority order did not run.');
    case 'limited':
      return h('p', {}, `It matched, but its limit held the customer back: ${limitsText(w.limits)}.`);
    case 'stopped':
      return h('p', {}, 'It matched, but the event came from a run, and one more run would have taken that cascade past engine.max_cascade_runs.');
    default:
      return null;
  }
}

function limitsText(limits) {
  if (limits?.once_per_customer) return 'a customer enters it once, and this one had';
  if (limits?.cooldown) return `a customer enters it at most once every ${durationText(limits.cooldown)}, and this one had within that time`;
  return 'the limits of that version';
}

/**
 * A customer's archived events, newest first, a page at a time ("Older events" follows
 * next_before), each linking to its inspector. Returns { el }.
 */
export function eventList(customerId) {
  const box = h('div', { class: 'event-list', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'more', hidden: true, onclick: () => load() }, 'Older events');
  const body = h('tbody');
  let before = null;
  async function load() {
    const q = new URLSearchParams({ customer_id: String(customerId), limit: String(PAGE) });
    if (before) q.set('before', before);
    more.disabled = true;
    try {
      const out = await get(`/api/v1/events?${q}`);
      body.append(...out.events.map((e) => h('tr', { dataset: { event: e.id } },
        h('th', { scope: 'row' }, h('a', { href: eventHref(e.id), 'aria-label': `Why: event ${e.id}` }, h('code', {}, e.id))),
        h('td', {}, h('code', {}, e.type)),
        h('td', {}, fmtTime(e.occurred_at)))));
      if (!box.firstChild) {
        box.append(out.events.length
          ? h('table', { class: 'list compact' },
            h('caption', { class: 'sr-only' }, `Events of customer ${customerId}, newest first`),
            h('thead', {}, h('tr', {}, ['Event', 'Type', 'Occurred'].map((c) => h('th', { scope: 'col' }, c)))), body)
          : h('p', { class: 'muted' }, 'No archived event of this customer.'), more);
      }
      before = out.next_before ?? null;
      more.hidden = !before;
    } catch (e) {
      box.replaceChildren(h('p', { class: e.status === 404 ? 'muted' : 'error-text' }, e.status === 404
        ? 'This engine does not list a customer’s events: inspect one by its id.'
        : `Could not load the events: ${e.message}`));
    } finally {
      more.disabled = false;
    }
  }
  load();
  return { el: box };
}
