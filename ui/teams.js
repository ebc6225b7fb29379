// The teams and agents of the CRM, by hand (the CRM data API underneath): teams with their
// parent and desk, agents with their team, manager and whether they take work; and one
// agent's page with their task list. What is created here is what the editor's pickers
// offer ("assign to agent", "assign to team"), so a fresh database can be set up from the
// page alone.

import { get, put, schema } from './api.js';
import { h, announce, badge, labelled } from './dom.js';
import { all, recordsPage, textField } from './records.js';
import { pickerControl } from './pickers.js';
import { taskList } from './tasks.js';

/** The desks the schema offers for customer.desk (sales and retention by default). */
async function desks() {
  const s = await schema();
  const field = [...s.triggers.flatMap((t) => t.fields), ...s.other_trigger.fields].find((f) => f.path === 'customer.desk');
  return field?.options?.length ? field.options : [{ label: 'sales', value: 'sales' }, { label: 'retention', value: 'retention' }];
}

/** A select of records by name, with "none" (or "choose") first; `set` gets the id or null. */
function recordSelect({ id, records, value, set, none }) {
  return h('select', { id, onchange: (e) => set(e.target.value === '' ? null : Number(e.target.value)) },
    h('option', { value: '', selected: value == null }, none),
    records.map((r) => h('option', { value: String(r.id), selected: r.id === value }, `${r.name} (${r.id})`)));
}

export const teamLabel = (t) => (t ? `${t.name} · ${t.desk} desk` : '');

export async function renderTeams(view, params) {
  const deskOptions = await desks();
  const agents = await all('/api/v1/agents', 'agents');
  return recordsPage(view, {
    title: 'Teams',
    path: '/api/v1/teams',
    key: 'teams',
    noun: 'team',
    intro: 'Teams form a tree (a parent team holds its sub-teams) and belong to a desk. "Assign to team" and round-robin pick among the active agents of a team and its sub-teams.',
    deleteNote: 'A team with agents or sub-teams cannot be deleted: move them first.',
    editId: params.get('edit'),
    columns: [
      ['Name', (r) => h('span', {}, r.name, h('span', { class: 'muted small' }, ` (${r.id})`))],
      ['Parent', (r, teams) => (r.parent_id == null ? h('span', { class: 'muted' }, '—') : teams.find((t) => t.id === r.parent_id)?.name ?? `team ${r.parent_id}`)],
      ['Desk', (r) => r.desk],
      ['Agents', (r) => {
        const mine = agents.filter((a) => a.team_id === r.id);
        return mine.length ? h('span', {}, mine.map((a, i) => [i ? ', ' : '', h('a', { href: `#/agents/${a.id}` }, a.name)])) : h('span', { class: 'muted' }, 'none');
      }],
    ],
    blank: (r) => ({ name: r?.name ?? '', parent_id: r?.parent_id ?? null, desk: r?.desk ?? 'sales' }),
    fields(editing, draft, teams) {
      const parent = recordSelect({
        id: 'rec-parent_id', records: teams.filter((t) => t.id !== editing?.id), value: draft.parent_id,
        none: 'none (a top-level team)', set: (v) => { draft.parent_id = v; },
      });
      const desk = pickerControl({
        id: 'rec-desk', options: deskOptions, value: draft.desk, label: 'Desk',
        set: (v) => { draft.desk = v ?? ''; },
      });
      return [
        textField(draft, 'name', 'Name', { required: true, placeholder: 'Retention EU' }),
        h('div', { 'data-path': '/parent_id' }, labelled('Parent team', parent, 'a team may not be its own ancestor')),
        h('div', { 'data-path': '/desk' }, h('div', { class: 'field' }, h('label', { for: 'rec-desk' }, 'Desk'), desk)),
      ];
    },
    body: (draft) => ({ name: draft.name.trim(), parent_id: draft.parent_id, desk: draft.desk || 'sales' }),
  });
}

export async function renderAgents(view, params) {
  const teams = await all('/api/v1/teams', 'teams');
  const teamOf = (id) => teams.find((t) => t.id === id);
  return recordsPage(view, {
    title: 'Agents',
    path: '/api/v1/agents',
    key: 'agents',
    noun: 'agent',
    intro: 'Agents take customers and tasks. An inactive agent keeps their customers but is left out of round-robin and "assign to agent" warns about them.',
    deleteNote: 'Their tasks and customers keep the agent id. An agent who manages others cannot be deleted.',
    editId: params.get('edit'),
    columns: [
      ['Name', (r) => h('a', { href: `#/agents/${r.id}` }, r.name)],
      ['Email', (r) => r.email || h('span', { class: 'muted' }, '—')],
      ['Team', (r) => (teamOf(r.team_id) ? teamLabel(teamOf(r.team_id)) : `team ${r.team_id} (not found)`)],
      ['Active', (r) => (r.active ? badge('active', 'done') : badge('inactive', 'off'))],
    ],
    blank: (r) => ({ name: r?.name ?? '', email: r?.email ?? '', team_id: r?.team_id ?? null, manager_id: r?.manager_id ?? null, active: r ? Boolean(r.active) : true }),
    fields(editing, draft, agents) {
      if (!teams.length) {
        return [h('p', { class: 'notice' }, 'An agent belongs to a team: ', h('a', { href: '#/teams' }, 'add a team first'), '.')];
      }
      const team = h('select', { id: 'rec-team_id', onchange: (e) => { draft.team_id = e.target.value === '' ? null : Number(e.target.value); } },
        h('option', { value: '', selected: draft.team_id == null }, '— choose —'),
        teams.map((t) => h('option', { value: String(t.id), selected: t.id === draft.team_id }, teamLabel(t))));
      const manager = recordSelect({
        id: 'rec-manager_id', records: agents.filter((a) => a.id !== editing?.id), value: draft.manager_id,
        none: 'none', set: (v) => { draft.manager_id = v; },
      });
      const active = h('input', { id: 'rec-active', type: 'checkbox', checked: draft.active, onchange: (e) => { draft.active = e.target.checked; } });
      return [
        textField(draft, 'name', 'Name', { required: true, placeholder: 'Ana Costa' }),
        textField(draft, 'email', 'Email', { type: 'text', inputmode: 'email', placeholder: 'ana@broker.example' }),
        h('div', { 'data-path': '/team_id' }, labelled('Team', team)),
        h('div', { 'data-path': '/manager_id' }, labelled('Manager', manager)),
        h('div', { class: 'checkbox', 'data-path': '/active' }, active, h('label', { for: active.id }, 'Active: takes customers and round-robin turns')),
      ];
    },
    body: (draft) => ({ name: draft.name.trim(), email: draft.email.trim(), team_id: draft.team_id, manager_id: draft.manager_id, active: draft.active }),
    rowTools: (r, reload) => h('button', {
      type: 'button', 'aria-label': `${r.active ? 'Deactivate' : 'Activate'} ${r.name}`,
      onclick: async () => {
        try {
          const { id, ...rest } = r;
          await put(`/api/v1/agents/${id}`, { ...rest, active: !r.active });
          announce(`${r.name} is now ${r.active ? 'inactive' : 'active'}.`);
          await reload();
          document.querySelector(`#rec-list tr[data-id="${id}"] button`)?.focus();
        } catch (e) {
          announce(`Could not change ${r.name}: ${e.message}`, 'error');
        }
      },
    }, r.active ? 'Deactivate' : 'Activate'),
  });
}

/** One agent: who they are, and their tasks (open ones first), each can be marked done. */
export async function renderAgent(view, id) {
  const [agent, teams] = await Promise.all([get(`/api/v1/agents/${encodeURIComponent(id)}`), all('/api/v1/teams', 'teams')]);
  const agents = await all('/api/v1/agents', 'agents');
  const team = teams.find((t) => t.id === agent.team_id);
  const manager = agents.find((a) => a.id === agent.manager_id);
  const tasks = taskList({ filter: { agent_id: agent.id }, agents });
  view.replaceChildren(
    h('div', { class: 'view-head' },
      h('h2', {}, `Agent: ${agent.name}`),
      agent.active ? badge('active', 'done') : badge('inactive', 'off'),
      h('a', { class: 'button', href: `#/agents?edit=${agent.id}` }, 'Edit'),
      h('a', { href: '#/agents' }, 'All agents')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Email'), h('dd', {}, agent.email || '—'),
      h('dt', {}, 'Team'), h('dd', {}, team ? h('a', { href: `#/teams?edit=${team.id}` }, teamLabel(team)) : `team ${agent.team_id}`),
      h('dt', {}, 'Manager'), h('dd', {}, manager ? h('a', { href: `#/agents/${manager.id}` }, manager.name) : '—'),
      h('dt', {}, 'Id'), h('dd', {}, String(agent.id))),
    h('section', { class: 'panel', 'aria-labelledby': 'agent-tasks-title' },
      h('h3', { id: 'agent-tasks-title' }, 'Tasks'),
      h('p', { class: 'hint' }, 'The tasks workflows created for this agent’s customers while they were assigned to them, newest first.'),
      tasks.el));
  return null;
}
