// Runs per workflow, customer, status and time range: each run's steps with attempts and
// errors, retry and cancel (one run, or every run the filter matches), "test with this
// run's event", and the pending delays (GET /api/v1/scheduled) with their due time.
// Pages of 50 go back in time with the list's cursor; the current page refreshes itself.
// An open run shows where each step sits in a journey (its path), what a branch or a wait
// decided, and the flow diagram of its workflow version with the way the run went.

import { get, post, schema } from './api.js';
import { h, announce, confirmDialog, fmtTime, relTime, badge } from './dom.js';
import { drawFlow } from './flow.js';
import { labelOf } from './tree.js';
import { heldText } from './sentences.js';

const STATUSES = ['pending', 'running', 'waiting', 'done', 'failed', 'cancelled', 'held_out'];
/** Runs a page: small enough to read, and the refresh stays cheap. */
export const PAGE = 50;

/**
 * The runs view showing one run opened: filtered by its workflow and customer (so it is on
 * the first page unless they have more than 50 newer runs), `open` naming the run.
 */
export function runHref(run) {
  const q = new URLSearchParams();
  if (run.workflow_id) q.set('workflow_id', run.workflow_id);
  if (run.customer_id != null) q.set('customer_id', String(run.customer_id));
  q.set('open', String(run.id));
  return `#/runs?${q}`;
}

/** An RFC 3339 time as the value of a datetime-local input (local time, minutes). */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value (local time) as RFC 3339 UTC, or '' when empty or invalid. */
function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/**
 * What a branch, a split or a wait decided, or what a contact cap did to a message (skipped
 * it, or holds it until its period has room), from its step's result; null for other steps.
 */
function outcome(st) {
  const r = st.result;
  if (!r || typeof r !== 'object') return null;
  const held = heldText(st);
  if (held) return held;
  if (st.type === 'split' && 'path' in r) return `took path ${Number(r.path) + 1} of the split`;
  if (st.type === 'branch' && 'path' in r) return r.path === 'otherwise' ? 'took otherwise' : `took path ${Number(r.path) + 1}`;
  if (st.type === 'wait_for_event') {
    if (r.waiting_for) return `waiting for ${r.waiting_for}${r.until ? ` until ${fmtTime(r.until)}` : ''}`;
    if (r.timed_out === true) return 'timed out: went on timeout';
    if (r.timed_out === false) return `${r.event_type || 'the event'} arrived: went on event`;
  }
  return null;
}

/** Where a waiting run waits and what comes next: an event (or its timeout), or a delay. */
function waitingText(r, sched) {
  const due = `${fmtTime(sched.due_at)} (${relTime(sched.due_at)})`;
  const wait = r.steps.find((st) => st.status === 'waiting' && st.result?.waiting_for);
  if (wait?.result.waiting_for === 'contact_cap') {
    const cap = String(wait.result.cap || '').replace(/^contact cap:\s*/, '');
    return `Waiting at step ${labelOf(wait.path)}: its message is held by the contact cap${cap ? ` (${cap})` : ''} until ${due}; then it is sent if the cap has room.`;
  }
  return wait
    ? `Waiting at step ${labelOf(wait.path)} for ${wait.result.waiting_for} until ${due}, then on event or on timeout.`
    : `Waiting: due ${due}, then step ${(r.next_step ?? 0) + 1}.`;
}

/** The definitions of workflow versions ("id@version"), read once each: a version never changes. */
const definitions = new Map();
function definitionOf(id, version) {
  const key = `${id}@${version}`;
  if (!definitions.has(key)) {
    definitions.set(key, get(`/api/v1/workflows/${encodeURIComponent(id)}/versions?limit=1000`)
      .then(({ versions }) => versions.find((v) => v.version === version)?.definition ?? null)
      .catch(() => { definitions.delete(key); return null; }));
  }
  return definitions.get(key);
}

export async function renderRuns(view, params) {
  const [{ workflows }, s] = await Promise.all([get('/api/v1/workflows'), schema()]);
  const labels = Object.fromEntries(s.actions.map((a) => [a.type, a.label]));
  const names = Object.fromEntries(workflows.map((w) => [w.id, w.name]));
  const wfSel = h('select', { id: 'r-workflow', name: 'workflow_id' },
    h('option', { value: '' }, 'any workflow'),
    workflows.map((w) => h('option', { value: w.id, selected: w.id === params.get('workflow_id') }, w.name)));
  const wanted = params.get('workflow_id');
  if (wanted && !names[wanted]) wfSel.append(h('option', { value: wanted, selected: true }, `${wanted} (deleted)`));
  const customer = h('input', { id: 'r-customer', name: 'customer_id', type: 'number', min: '1', step: '1', inputmode: 'numeric', value: params.get('customer_id') || '' });
  const status = h('select', { id: 'r-status', name: 'status' }, h('option', { value: '' }, 'any status'),
    STATUSES.map((st) => h('option', { value: st, selected: st === params.get('status') }, st)));
  const since = h('input', { id: 'r-since', name: 'since', type: 'datetime-local', value: toLocalInput(params.get('since')), 'aria-describedby': 'r-time-hint' });
  const until = h('input', { id: 'r-until', name: 'until', type: 'datetime-local', value: toLocalInput(params.get('until')), 'aria-describedby': 'r-time-hint' });
  const auto = h('input', { type: 'checkbox', id: 'r-auto', checked: true });
  const list = h('div', { id: 'r-list', 'aria-live': 'polite', 'aria-busy': 'true' });
  const delays = h('div', { id: 'r-scheduled' });
  const updated = h('span', { class: 'muted small', id: 'r-updated' });
  const pageInfo = h('span', { id: 'r-page', class: 'muted' });
  const newerBtn = h('button', { type: 'button', id: 'r-newer', onclick: () => turn(-1) }, '← Newer runs');
  const olderBtn = h('button', { type: 'button', id: 'r-older', onclick: () => turn(1) }, 'Older runs →');
  const retryAll = h('button', { type: 'button', id: 'r-retry-all', 'aria-describedby': 'r-bulk-hint', onclick: () => bulk('retry') }, 'Retry the failed runs of this filter');
  const cancelAll = h('button', { type: 'button', class: 'danger', id: 'r-cancel-all', 'aria-describedby': 'r-bulk-hint', onclick: () => bulk('cancel') }, 'Cancel the waiting and failed runs of this filter');
  const bulkHint = h('p', { class: 'hint', id: 'r-bulk-hint' });

  // The cursors of the pages shown so far: [null (newest), next_cursor of page 1, ...].
  const cursors = [null];
  if (params.get('cursor')) cursors.push(params.get('cursor'));
  let nextCursor = null;

  /** The filter as the form holds it: the list's query and the bulk body share it. */
  function filter() {
    const f = {};
    if (wfSel.value) f.workflow_id = wfSel.value;
    if (customer.value) f.customer_id = customer.value;
    if (status.value) f.status = status.value;
    const s = fromLocalInput(since.value);
    const u = fromLocalInput(until.value);
    if (s) f.since = s;
    if (u) f.until = u;
    return f;
  }

  function syncHash() {
    const q = new URLSearchParams(filter());
    const cursor = cursors[cursors.length - 1];
    if (cursor) q.set('cursor', cursor);
    const hash = `#/runs${q.toString() ? '?' + q : ''}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  function syncBulk() {
    // POST /runs/retry|cancel filter by workflow, status and time only: with a customer
    // in the filter they would act on other customers' runs too, so they are not offered.
    const byCustomer = Boolean(customer.value);
    retryAll.disabled = byCustomer;
    cancelAll.disabled = byCustomer;
    bulkHint.textContent = byCustomer
      ? 'Acting on many runs at once filters by workflow, status and time, not by customer: clear the customer id to use these.'
      : 'Every run of the workflow, status and time range above, not only this page; at most 1000 a click.';
  }

  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs' },
    h('div', { class: 'field' }, h('label', { for: wfSel.id }, 'Workflow'), wfSel),
    h('div', { class: 'field' }, h('label', { for: customer.id }, 'Customer id'), customer),
    h('div', { class: 'field' }, h('label', { for: status.id }, 'Status'), status),
    h('div', { class: 'field' }, h('label', { for: since.id }, 'Created from'), since),
    h('div', { class: 'field' }, h('label', { for: until.id }, 'Created before'), until),
    h('button', { type: 'submit', class: 'primary', id: 'r-refresh' }, 'Show runs'),
    h('div', { class: 'checkbox' }, auto, h('label', { for: auto.id }, 'Refresh every 3 s')),
    updated,
    h('p', { class: 'hint', id: 'r-time-hint' }, 'times are in this browser’s time zone'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    cursors.length = 1; // a new filter starts at the newest run
    syncHash();
    syncBulk();
    load(true);
  });
  customer.addEventListener('input', syncBulk);

  const heading = wanted ? `Runs of ${names[wanted] || wanted}` : params.get('customer_id') ? `Runs of customer ${params.get('customer_id')}` : 'Runs';
  view.replaceChildren(
    h('div', { class: 'view-head' }, h('h2', {}, heading)),
    form,
    h('div', { class: 'bulk', role: 'group', 'aria-label': 'Act on every run of the filter' }, retryAll, cancelAll, bulkHint),
    h('div', { class: 'runs-grid' },
      h('section', { 'aria-labelledby': 'r-runs-title' },
        h('h3', { id: 'r-runs-title' }, 'Runs, newest first'),
        list,
        h('nav', { class: 'pager', 'aria-label': 'Pages of runs' }, newerBtn, pageInfo, olderBtn)),
      h('section', { class: 'panel', 'aria-labelledby': 'r-sched-title' }, h('h3', { id: 'r-sched-title' }, 'Pending delays'), delays)));
  syncBulk();

  async function turn(d) {
    if (d > 0) {
      if (!nextCursor) return;
      cursors.push(nextCursor);
    } else {
      if (cursors.length === 1) return;
      cursors.pop();
    }
    syncHash();
    await load(true);
    const same = d > 0 ? olderBtn : newerBtn;
    if (!same.disabled) same.focus();
    else list.querySelector('summary')?.focus();
  }

  async function bulk(kind) {
    const f = filter();
    delete f.customer_id;
    const what = [
      f.workflow_id ? `of “${names[f.workflow_id] || f.workflow_id}”` : 'of every workflow',
      f.status ? `with status ${f.status}` : null,
      f.since ? `created from ${fmtTime(f.since)}` : null,
      f.until ? `created before ${fmtTime(f.until)}` : null,
    ].filter(Boolean).join(', ');
    const ok = kind === 'retry'
      ? await confirmDialog('Retry failed runs?', `Every failed run ${what} goes on from its failed step (steps already done are not repeated). At most 1000 at a time.`, 'Retry them')
      : await confirmDialog('Cancel runs?', `Every waiting or failed run ${what} is cancelled; waiting delays are dropped. At most 1000 at a time.`, 'Cancel them');
    if (!ok) return;
    try {
      const out = await post(`/api/v1/runs/${kind}`, f);
      announce(kind === 'retry'
        ? `${out.affected} failed run${out.affected === 1 ? '' : 's'} queued for retry.`
        : `${out.affected} run${out.affected === 1 ? '' : 's'} cancelled.`);
      await load(true);
    } catch (e) {
      announce(`Could not ${kind} the runs: ${e.message}`, 'error');
    }
  }

  async function act(kind, run) {
    if (kind === 'cancel' && !await confirmDialog(`Cancel run ${run.id}?`,
      `Run ${run.id} of “${names[run.workflow_id] || run.workflow_id}” for customer ${run.customer_id} stops for good${run.status === 'waiting' ? '; its delay is dropped' : ''}.`, 'Cancel run')) return;
    try {
      const out = await post(`/api/v1/runs/${encodeURIComponent(run.id)}/${kind}`);
      announce(kind === 'retry'
        ? `Run ${out.id} is ${out.status}: it goes on from step ${(out.next_step ?? 0) + 1}.`
        : `Run ${out.id} is ${out.status}.`);
      open.add(String(run.id));
      await load(true);
      list.querySelector(`details[data-run="${CSS.escape(String(run.id))}"] > summary`)?.focus();
    } catch (e) {
      announce(`Could not ${kind} run ${run.id}: ${e.message}`, 'error');
    }
  }

  let last = '';
  const open = new Set(params.get('open') ? [params.get('open')] : []);
  // Loads run one after another: the 3 s refresh is skipped while one is under way, a
  // load the user asked for (new filter, another page, after retry) waits its turn.
  let chain = Promise.resolve();
  let pending = 0;
  function load(force = false) {
    if (pending && !force) return chain;
    pending++;
    chain = chain.then(() => fetchAndShow(force)).finally(() => { pending--; });
    return chain;
  }

  async function fetchAndShow(force) {
    list.setAttribute('aria-busy', 'true');
    const q = new URLSearchParams({ ...filter(), limit: String(PAGE) });
    const cursor = cursors[cursors.length - 1];
    if (cursor) q.set('cursor', cursor);
    try {
      const [{ runs, next_cursor }, { scheduled }] = await Promise.all([get(`/api/v1/runs?${q}`), get('/api/v1/scheduled')]);
      nextCursor = next_cursor ?? null;
      const first = (cursors.length - 1) * PAGE;
      pageInfo.textContent = runs.length ? `runs ${first + 1}–${first + runs.length}` : cursors.length > 1 ? 'no older runs' : '';
      newerBtn.disabled = cursors.length === 1;
      olderBtn.disabled = !nextCursor;
      const snapshot = JSON.stringify([runs, scheduled, q.toString()]);
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      if (snapshot === last && !force) return;
      last = snapshot;
      const focusedRun = document.activeElement?.closest?.('#r-list details')?.dataset.run;
      for (const d of list.querySelectorAll('details[open]')) open.add(d.dataset.run);
      for (const d of list.querySelectorAll('details:not([open])')) open.delete(d.dataset.run);
      const byRun = new Map(scheduled.map((s) => [s.run_id, s]));
      list.replaceChildren(runs.length ? h('ul', { class: 'runs' }, runs.map((r) => runItem(r, byRun.get(r.id)))) : h('p', { class: 'empty' }, 'No runs match.'));
      if (focusedRun) list.querySelector(`details[data-run="${CSS.escape(focusedRun)}"] > summary`)?.focus();
      const mine = scheduled.filter((s) => (!customer.value || String(s.customer_id) === customer.value) && (!wfSel.value || runs.some((r) => r.id === s.run_id)));
      delays.replaceChildren(mine.length
        ? h('table', { class: 'list compact' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Customer'), h('th', { scope: 'col' }, 'Due'), h('th', { scope: 'col' }, 'Claimed by'))),
          h('tbody', {}, mine.map((s) => h('tr', {},
            h('td', {}, h('code', {}, String(s.run_id))),
            h('td', {}, h('a', { href: `#/runs?customer_id=${s.customer_id}` }, String(s.customer_id))),
            h('td', {}, fmtTime(s.due_at), h('div', { class: 'small muted' }, relTime(s.due_at))),
            h('td', {}, s.claimed_by ? `${s.claimed_by} until ${fmtTime(s.claimed_until)}` : '—')))))
        : h('p', { class: 'muted' }, 'No delayed chain is waiting.'));
    } catch (e) {
      list.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Could not load runs: ${e.message}`));
    } finally {
      list.setAttribute('aria-busy', 'false');
    }
  }

  function runItem(r, sched) {
    const steps = h('table', { class: 'list compact steps' },
      h('caption', { class: 'sr-only' }, `Steps of run ${r.id}`),
      h('thead', {}, h('tr', {}, ['Step', 'Action', 'Status', 'Attempts', 'Error', 'Result', 'Finished'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, r.steps.map((st) => h('tr', { class: `step-${st.status}`, dataset: { path: st.path ?? String(st.index) } },
        h('td', { class: 'num step-path' }, labelOf(st.path ?? String(st.index))),
        h('td', {}, h('code', {}, st.type), outcome(st) ? h('div', { class: 'small step-outcome' }, outcome(st)) : null),
        h('td', {}, badge(st.status)),
        h('td', { class: 'num' }, String(st.attempts)),
        h('td', { class: 'error-text' }, st.error || ''),
        h('td', { class: 'small' }, st.result == null ? '' : h('code', {}, JSON.stringify(st.result))),
        h('td', { class: 'small' }, fmtTime(st.finished_at))))));
    const tools = [
      r.status === 'failed' ? h('button', { type: 'button', class: 'primary', 'aria-label': `Retry run ${r.id}`, onclick: () => act('retry', r) }, 'Retry') : null,
      ['waiting', 'failed'].includes(r.status) ? h('button', { type: 'button', class: 'danger', 'aria-label': `Cancel run ${r.id}`, onclick: () => act('cancel', r) }, 'Cancel') : null,
      // The editor loads the run's event (GET /runs/{id}) into its test panel.
      names[r.workflow_id] ? h('a', { class: 'button', href: `#/edit/${encodeURIComponent(r.workflow_id)}?test_run=${encodeURIComponent(r.id)}`, 'aria-label': `Test with the event of run ${r.id}` }, 'Test with this run’s event') : null,
    ].filter(Boolean);
    // The diagram of the run's workflow version, drawn once the run is opened.
    const flow = h('div', { class: 'run-flow' });
    const drawRun = () => definitionOf(r.workflow_id, r.workflow_version).then((def) => {
      flow.replaceChildren(def ? drawFlow(def, { labels, run: r }) : h('p', { class: 'muted' }, 'The definition of this version could not be read.'));
    });
    const details = h('details', { open: open.has(String(r.id)) || undefined, dataset: { run: String(r.id) } },
      h('summary', {},
        badge(r.status), ' ',
        h('strong', {}, names[r.workflow_id] || r.workflow_id), ` v${r.workflow_version} · `,
        'customer ', h('span', { class: 'cust' }, String(r.customer_id)), ' · ',
        h('code', {}, r.trigger), ' · ', h('span', { class: 'muted' }, fmtTime(r.created_at)),
        r.steps.length ? ` · ${r.steps.filter((x) => x.status === 'done').length}/${r.steps.length} steps done` : '',
        r.status === 'held_out' ? h('span', { class: 'muted' }, ' · held out: performs nothing') : null,
        r.goal_reached_at ? [' · ', h('span', { class: 'badge badge-goal', title: fmtTime(r.goal_reached_at) }, `goal reached ${relTime(r.goal_reached_at)}`)] : null,
        sched ? h('span', { class: 'badge badge-waiting' }, ` resumes ${relTime(sched.due_at)}`) : null),
      h('div', { class: 'run-body' },
        tools.length ? h('div', { class: 'buttons run-tools' }, tools) : null,
        r.error ? h('p', { class: 'error-text' }, `Error: ${r.error}`) : null,
        sched ? h('p', {}, waitingText(r, sched)) : null,
        h('p', { class: 'small muted' }, `run ${r.id} · event `, h('code', {}, r.event_id), ' (',
          h('a', { href: `#/events/${encodeURIComponent(r.event_id)}`, 'aria-label': `Why: inspect event ${r.event_id} of run ${r.id}` }, 'why'),
          `) · partition ${r.partition} · `, h('a', { href: `#/customers/${r.customer_id}` }, `customer ${r.customer_id}`), ' · ',
          h('a', { href: `#/runs?customer_id=${r.customer_id}` }, `all runs of customer ${r.customer_id}`), ' · ',
          h('a', { href: `#/runs?workflow_id=${encodeURIComponent(r.workflow_id)}` }, 'all runs of this workflow')),
        r.goal_reached_at ? h('p', { class: 'small' }, `The workflow’s goal was reached ${fmtTime(r.goal_reached_at)}.`) : null,
        r.steps.length ? steps : h('p', { class: 'muted' }, r.status === 'held_out' ? 'Held out of the workflow (its holdout): no step runs; it is counted against the treated customers on the Results page.' : 'No step has started.'),
        flow));
    details.addEventListener('toggle', () => { if (details.open) drawRun(); });
    if (details.open) drawRun();
    return h('li', { class: `run run-${r.status}`, dataset: { run: String(r.id) } }, details);
  }

  await load();
  // A link to one run (runHref) lands on it.
  if (params.get('open')) list.querySelector(`details[data-run="${CSS.escape(params.get('open'))}"] > summary`)?.focus();
  const timer = setInterval(() => { if (auto.checked && document.visibilityState === 'visible') load(); }, 3000);
  return () => clearInterval(timer);
}
