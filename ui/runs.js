// Runs per workflow and per customer: each run's steps with attempts and errors, and the
// pending delays (GET /api/v1/scheduled) with their due time. Refreshes itself.

import { get } from './api.js';
import { h, fmtTime, relTime, badge } from './dom.js';

const STATUSES = ['pending', 'running', 'waiting', 'done', 'failed'];

export async function renderRuns(view, params) {
  const { workflows } = await get('/api/v1/workflows');
  const names = Object.fromEntries(workflows.map((w) => [w.id, w.name]));
  const wfSel = h('select', { id: 'r-workflow', name: 'workflow_id' },
    h('option', { value: '' }, 'any workflow'),
    workflows.map((w) => h('option', { value: w.id, selected: w.id === params.get('workflow_id') }, w.name)));
  const wanted = params.get('workflow_id');
  if (wanted && !names[wanted]) wfSel.append(h('option', { value: wanted, selected: true }, `${wanted} (deleted)`));
  const customer = h('input', { id: 'r-customer', name: 'customer_id', type: 'number', min: '1', step: '1', inputmode: 'numeric', value: params.get('customer_id') || '' });
  const status = h('select', { id: 'r-status', name: 'status' }, h('option', { value: '' }, 'any status'),
    STATUSES.map((st) => h('option', { value: st, selected: st === params.get('status') }, st)));
  const auto = h('input', { type: 'checkbox', id: 'r-auto', checked: true });
  const list = h('div', { id: 'r-list', 'aria-live': 'polite', 'aria-busy': 'true' });
  const delays = h('div', { id: 'r-scheduled' });
  const updated = h('span', { class: 'muted small', id: 'r-updated' });

  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs' },
    h('div', { class: 'field' }, h('label', { for: wfSel.id }, 'Workflow'), wfSel),
    h('div', { class: 'field' }, h('label', { for: customer.id }, 'Customer id'), customer),
    h('div', { class: 'field' }, h('label', { for: status.id }, 'Status'), status),
    h('button', { type: 'submit', class: 'primary', id: 'r-refresh' }, 'Show runs'),
    h('div', { class: 'checkbox' }, auto, h('label', { for: auto.id }, 'Refresh every 3 s')),
    updated);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (wfSel.value) q.set('workflow_id', wfSel.value);
    if (customer.value) q.set('customer_id', customer.value);
    if (status.value) q.set('status', status.value);
    const hash = `#/runs${q.toString() ? '?' + q : ''}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
    load();
  });

  const heading = wanted ? `Runs of ${names[wanted] || wanted}` : params.get('customer_id') ? `Runs of customer ${params.get('customer_id')}` : 'Runs';
  view.replaceChildren(
    h('div', { class: 'view-head' }, h('h2', {}, heading)),
    form,
    h('div', { class: 'runs-grid' },
      h('section', { 'aria-labelledby': 'r-runs-title' }, h('h3', { id: 'r-runs-title' }, 'Runs, newest first'), list),
      h('section', { class: 'panel', 'aria-labelledby': 'r-sched-title' }, h('h3', { id: 'r-sched-title' }, 'Pending delays'), delays)));

  let busy = false;
  let last = '';
  const open = new Set();
  async function load() {
    if (busy) return;
    busy = true;
    list.setAttribute('aria-busy', 'true');
    const q = new URLSearchParams({ limit: '50' });
    if (wfSel.value) q.set('workflow_id', wfSel.value);
    if (customer.value) q.set('customer_id', customer.value);
    if (status.value) q.set('status', status.value);
    try {
      const [{ runs }, { scheduled }] = await Promise.all([get(`/api/v1/runs?${q}`), get('/api/v1/scheduled')]);
      const snapshot = JSON.stringify([runs, scheduled, q.toString()]);
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      if (snapshot === last) return;
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
      busy = false;
      list.setAttribute('aria-busy', 'false');
    }
  }

  function runItem(r, sched) {
    const steps = h('table', { class: 'list compact steps' },
      h('caption', { class: 'sr-only' }, `Steps of run ${r.id}`),
      h('thead', {}, h('tr', {}, ['#', 'Action', 'Status', 'Attempts', 'Error', 'Result', 'Finished'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, r.steps.map((st) => h('tr', { class: `step-${st.status}` },
        h('td', { class: 'num' }, String(st.index + 1)),
        h('td', {}, h('code', {}, st.type)),
        h('td', {}, badge(st.status)),
        h('td', { class: 'num' }, String(st.attempts)),
        h('td', { class: 'error-text' }, st.error || ''),
        h('td', { class: 'small' }, st.result == null ? '' : h('code', {}, JSON.stringify(st.result))),
        h('td', { class: 'small' }, fmtTime(st.finished_at))))));
    return h('li', { class: `run run-${r.status}`, dataset: { run: String(r.id) } },
      h('details', { open: open.has(String(r.id)) || undefined, dataset: { run: String(r.id) } },
        h('summary', {},
          badge(r.status), ' ',
          h('strong', {}, names[r.workflow_id] || r.workflow_id), ` v${r.workflow_version} · `,
          'customer ', h('span', { class: 'cust' }, String(r.customer_id)), ' · ',
          h('code', {}, r.trigger), ' · ', h('span', { class: 'muted' }, fmtTime(r.created_at)),
          r.steps.length ? ` · ${r.steps.filter((x) => x.status === 'done').length}/${r.steps.length} steps done` : '',
          sched ? h('span', { class: 'badge badge-waiting' }, ` resumes ${relTime(sched.due_at)}`) : null),
        h('div', { class: 'run-body' },
          r.error ? h('p', { class: 'error-text' }, `Error: ${r.error}`) : null,
          sched ? h('p', {}, `Waiting on a delay: due ${fmtTime(sched.due_at)} (${relTime(sched.due_at)}), then step ${(r.next_step ?? 0) + 1}.`) : null,
          h('p', { class: 'small muted' }, `run ${r.id} · event `, h('code', {}, r.event_id), ` · partition ${r.partition} · `,
            h('a', { href: `#/runs?customer_id=${r.customer_id}` }, `all runs of customer ${r.customer_id}`), ' · ',
            h('a', { href: `#/runs?workflow_id=${encodeURIComponent(r.workflow_id)}` }, 'all runs of this workflow')),
          r.steps.length ? steps : h('p', { class: 'muted' }, 'No step has started.'))));
  }

  await load();
  const timer = setInterval(() => { if (auto.checked && document.visibilityState === 'visible') load(); }, 3000);
  return () => clearInterval(timer);
}
