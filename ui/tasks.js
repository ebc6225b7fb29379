// Task lists: the tasks workflows created (create_task) for one customer or one agent
// (GET /api/v1/tasks?customer_id= or ?agent_id=), open ones first by default, each with
// when it is due (overdue said in words), who it is for, the run that created it, and
// "Mark done" / "Reopen" (PATCH /api/v1/tasks/{id}). The customer and agent pages show one.

import { get, patch } from './api.js';
import { h, announce, fmtTime, relTime, badge } from './dom.js';
import { runHref } from './runs.js';

const PAGE = 50;

/**
 * filter: { customer_id } or { agent_id }; agents: the CRM's agents (names for assignees).
 * Returns { el, show(taskId) } — show lists every status and focuses that task's row.
 */
export function taskList({ filter, agents = [] }) {
  const byCustomer = 'customer_id' in filter;
  const agentName = Object.fromEntries(agents.map((a) => [a.id, a.name]));
  const uid = byCustomer ? `c${filter.customer_id}` : `a${filter.agent_id}`;
  const status = h('select', { id: `tasks-${uid}-status` },
    h('option', { value: 'open', selected: true }, 'open'), h('option', { value: 'done' }, 'done'), h('option', { value: '' }, 'any status'));
  const body = h('tbody');
  const table = h('table', { class: 'list compact tasks' },
    h('caption', { class: 'sr-only' }, 'Tasks, newest first'),
    h('thead', {}, h('tr', {}, ['Task', byCustomer ? 'For' : 'Customer', 'Due', 'Status', 'Created by', ''].map((c) => h('th', { scope: 'col' }, c || h('span', { class: 'sr-only' }, 'Actions'))))),
    body);
  const empty = h('p', { class: 'muted', hidden: true }, 'No task.');
  const more = h('button', { type: 'button', hidden: true, onclick: () => load(false) }, 'More tasks');
  let cursor = null;

  function row(t) {
    const overdue = t.status === 'open' && t.due_at && new Date(t.due_at) < new Date();
    const toggle = h('button', {
      type: 'button',
      'aria-label': `${t.status === 'open' ? 'Mark done' : 'Reopen'}: ${t.title}`,
      onclick: async () => {
        toggle.disabled = true;
        try {
          const out = await patch(`/api/v1/tasks/${t.id}`, { status: t.status === 'open' ? 'done' : 'open' });
          const fresh = row(out);
          tr.replaceWith(fresh);
          fresh.querySelector('button')?.focus();
          announce(out.status === 'done' ? `Task “${out.title}” marked done.` : `Task “${out.title}” reopened.`);
        } catch (e) {
          announce(`Could not change task “${t.title}”: ${e.message}`, 'error');
          toggle.disabled = false;
        }
      },
    }, t.status === 'open' ? 'Mark done' : 'Reopen');
    const tr = h('tr', { id: `task-${uid}-${t.id}`, dataset: { task: String(t.id) }, tabindex: '-1' },
      h('th', { scope: 'row' }, t.title, t.type ? h('div', { class: 'small muted' }, t.type) : null),
      h('td', {}, byCustomer
        ? (t.assignee_id != null ? h('a', { href: `#/agents/${t.assignee_id}` }, agentName[t.assignee_id] || `agent ${t.assignee_id}`) : h('span', { class: 'muted' }, 'nobody (no agent then)'))
        : h('a', { href: `#/customers/${t.customer_id}` }, `customer ${t.customer_id}`)),
      h('td', {}, t.due_at ? [fmtTime(t.due_at), h('div', { class: 'small muted' }, relTime(t.due_at))] : '—',
        overdue ? h('div', {}, badge('overdue', 'failed')) : null),
      h('td', {}, badge(t.status, t.status === 'open' ? 'waiting' : 'done'), t.done_at ? h('div', { class: 'small muted' }, fmtTime(t.done_at)) : null),
      h('td', {}, t.run_id != null ? h('a', { href: runHref({ id: t.run_id, customer_id: t.customer_id }) }, `run ${t.run_id}`) : '—',
        t.step != null ? h('span', { class: 'small muted' }, `, step ${t.step + 1}`) : null),
      h('td', { class: 'row-actions' }, toggle));
    return tr;
  }

  async function load(fresh) {
    if (fresh) { cursor = null; body.replaceChildren(); }
    const q = new URLSearchParams({ ...filter, limit: String(PAGE) });
    if (status.value) q.set('status', status.value);
    if (cursor) q.set('cursor', cursor);
    more.disabled = true;
    try {
      const out = await get(`/api/v1/tasks?${q}`);
      body.append(...out.tasks.map(row));
      cursor = out.next_cursor ?? null;
      more.hidden = !cursor;
      empty.hidden = body.children.length > 0;
      empty.textContent = status.value ? `No ${status.value} task.` : 'No task.';
      table.hidden = !empty.hidden;
    } catch (e) {
      empty.hidden = false;
      empty.textContent = `Could not load the tasks: ${e.message}`;
    } finally {
      more.disabled = false;
    }
  }
  status.addEventListener('change', () => load(true));
  const el = h('div', { class: 'task-list', 'aria-live': 'polite' },
    h('div', { class: 'field inline' }, h('label', { for: status.id }, 'Show'), status),
    table, empty, more);
  load(true);
  return {
    el,
    /** Lists tasks of every status and focuses task `id` (an activity entry's link). */
    async show(id) {
      if (status.value !== '') { status.value = ''; await load(true); }
      const tr = body.querySelector(`tr[data-task="${CSS.escape(String(id))}"]`);
      if (tr) { tr.focus(); tr.classList.add('highlight'); }
      return Boolean(tr);
    },
  };
}
