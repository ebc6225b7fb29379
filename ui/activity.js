// A customer's activity feed (GET /api/v1/customers/{id}/activity): what the workflows did
// to them, newest first, grouped by day, with a count of the last 7 days on top, so "what
// did we do to this customer this week" is read off the page. Each entry is the engine's
// one-line summary, as text, with links to what it names: the run, its workflow, the event
// that started it, the task, the agent.

import { get } from './api.js';
import { h, fmtTime, badge } from './dom.js';
import { runHref } from './runs.js';
import { plural } from './words.js';

const PAGE = 50;
const WEEK_MS = 7 * 86400000;
/** Each kind in words (one, many), and the badge colour it is shown in. */
const KINDS = {
  run: ['run', 'runs', 'info'],
  status_change: ['status change', 'status changes', 'updated'],
  assignment: ['assignment', 'assignments', 'updated'],
  task_created: ['task created', 'tasks created', 'waiting'],
  task_done: ['task done', 'tasks done', 'done'],
  note: ['note', 'notes', 'off'],
  message: ['message', 'messages', 'info'],
};

function dayLabel(iso) {
  const d = new Date(iso);
  const today = new Date();
  const start = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((start(today) - start(d)) / 86400000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return d.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
}

/**
 * ctx: { customerId, workflows: {id: name}, agents: [...], showTask(id) → Promise<bool> }.
 * Returns { el }.
 */
export function activityFeed(ctx) {
  const agentName = Object.fromEntries(ctx.agents.map((a) => [a.id, a.name]));
  const week = h('p', { class: 'week', id: 'act-week' });
  const list = h('div', { class: 'activity', id: 'act-list' });
  const more = h('button', { type: 'button', id: 'act-more', hidden: true, onclick: () => load() }, 'Older activity');
  const entries = [];
  let before = null;
  let lastDay = null;
  let ul = null;

  function links(e) {
    const out = [];
    if (e.run_id != null) out.push(h('a', { href: runHref({ id: e.run_id, workflow_id: e.workflow_id, customer_id: ctx.customerId }) }, `run ${e.run_id}${e.step != null ? `, step ${e.step + 1}` : ''}`));
    if (e.workflow_id) out.push(h('a', { href: `#/edit/${encodeURIComponent(e.workflow_id)}` }, ctx.workflows[e.workflow_id] ? `workflow “${ctx.workflows[e.workflow_id]}”` : `workflow ${e.workflow_id}`));
    if (e.event_id) out.push(h('a', { href: `#/events/${encodeURIComponent(e.event_id)}` }, 'its event (why)'));
    if (e.task_id != null) {
      out.push(h('button', {
        type: 'button', class: 'link',
        onclick: async (ev) => { if (!await ctx.showTask(e.task_id)) ev.target.textContent = `task ${e.task_id} (not in the list)`; },
      }, `task ${e.task_id}`));
    }
    if (e.agent_id != null) out.push(h('a', { href: `#/agents/${e.agent_id}` }, agentName[e.agent_id] ? `agent ${agentName[e.agent_id]}` : `agent ${e.agent_id}`));
    return out;
  }

  function entry(e) {
    const [word, , kind] = KINDS[e.kind] || [e.kind, e.kind, 'off'];
    const l = links(e);
    return h('li', { dataset: { kind: e.kind } },
      h('time', { datetime: e.at, title: fmtTime(e.at) }, new Date(e.at).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })),
      ' ', badge(word, kind), ' ',
      h('span', { class: 'summary' }, e.summary),
      // a run's or a message's status is in its summary; a task's is as it is now
      e.kind === 'task_created' && e.status ? h('span', { class: 'muted small' }, ` (now ${e.status})`) : null,
      l.length ? h('div', { class: 'small act-links' }, l.map((a, i) => [i ? ' · ' : '', a])) : null);
  }

  /** The last 7 days in counts, from the entries read so far ("at least" while older pages remain). */
  function countWeek() {
    const since = Date.now() - WEEK_MS;
    const recent = entries.filter((e) => new Date(e.at).getTime() >= since);
    const partial = before && entries.length && new Date(entries[entries.length - 1].at).getTime() >= since;
    const counts = {};
    for (const e of recent) counts[e.kind] = (counts[e.kind] || 0) + 1;
    const kinds = [...Object.keys(KINDS), ...Object.keys(counts).filter((k) => !KINDS[k])];
    const parts = kinds.filter((k) => counts[k]).map((k) => plural(counts[k], ...(KINDS[k] || [k, k])));
    week.textContent = recent.length
      ? `In the last 7 days${partial ? ' (at least)' : ''}: ${parts.join(', ')}.`
      : 'Nothing in the last 7 days.';
  }

  async function load() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (before) q.set('before', before);
    more.disabled = true;
    try {
      const out = await get(`/api/v1/customers/${encodeURIComponent(ctx.customerId)}/activity?${q}`);
      for (const e of out.activity) {
        const day = dayLabel(e.at);
        if (day !== lastDay) {
          lastDay = day;
          ul = h('ul', { class: 'act-day' });
          list.append(h('h4', {}, day), ul);
        }
        ul.append(entry(e));
        entries.push(e);
      }
      if (!entries.length) list.replaceChildren(h('p', { class: 'muted' }, 'No activity: no workflow has done anything to this customer yet.'));
      before = out.next_before ?? null;
      more.hidden = !before;
      countWeek();
    } catch (e) {
      list.append(h('p', { class: 'error-text' }, e.status === 404 ? 'No activity: the customer is not in the database.' : `Could not load the activity: ${e.message}`));
    } finally {
      more.disabled = false;
    }
  }
  load();
  return { el: h('div', { 'aria-live': 'polite' }, week, list, more) };
}
