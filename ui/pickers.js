// Pickers by name for what action params and condition values point at in the CRM:
// teams, agents, status types and statuses, webhook endpoints and SMS providers (from
// the CRM data API, read afresh each time the editor opens, so a record created a
// minute ago is offered without a restart). The workflow keeps what its JSON uses (an
// id, or a name); the picker only shows names. A value not in the lists stays possible,
// typed in ("Another value…"): the engine warns about unknown targets, it does not refuse
// them, since they may be created later.

import { get } from './api.js';
import { h, announce } from './dom.js';

/** Pages read per list; past this the picker still offers "Another value…". */
const MAX_PAGES = 10;
const OTHER = '__other__';

/** Every record of a CRM list (`{<items>: [...], next_cursor}`), [] when it is absent. */
async function all(path) {
  const out = [];
  let cursor = null;
  for (let n = 0; n < MAX_PAGES; n++) {
    const q = new URLSearchParams({ limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    let body;
    try {
      body = await get(`${path}?${q}`);
    } catch (e) {
      if (e.status === 404 || e.status === 405) return out; // an engine without this list
      throw e;
    }
    const items = Object.values(body || {}).find(Array.isArray) || [];
    out.push(...items);
    cursor = body?.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/**
 * The CRM's records the pickers offer: { teams, agents, endpoints, providers, statusTypes },
 * or null when they cannot be read (the editor then takes typed ids and names).
 */
export async function loadCrm() {
  try {
    return await readCrm();
  } catch (e) {
    announce(`Teams, agents and endpoints could not be read (${e.message}): type ids and names.`, 'error');
    return null;
  }
}

async function readCrm() {
  const [teams, agents, endpoints, providers, types] = await Promise.all([
    all('/api/v1/teams'), all('/api/v1/agents'), all('/api/v1/webhook-endpoints'), all('/api/v1/sms-providers'), all('/api/v1/status-types'),
  ]);
  const statusTypes = await Promise.all(types.map(async (t) => ({
    name: t.name,
    statuses: Array.isArray(t.statuses) ? t.statuses : await all(`/api/v1/status-types/${encodeURIComponent(t.name)}/statuses`),
  })));
  return { teams, agents, endpoints, providers, statusTypes };
}

const teamLabel = (t) => `${t.name}${t.desk ? ` · ${t.desk} desk` : ''}`;
const agentLabel = (a) => `${a.name}${a.email ? ` <${a.email}>` : ''}${a.active === false ? ' (inactive)' : ''}`;

/**
 * The options ({label, value}) an action param picks from, or null when it is free
 * text. `params` are the action's current params (set_status's statuses follow its type).
 */
export function actionOptions(crm, actionType, param, params) {
  if (!crm) return null;
  switch (param) {
    case 'team_id':
      return crm.teams.map((t) => ({ label: teamLabel(t), value: t.id }));
    case 'agent_id':
      return crm.agents.map((a) => ({ label: agentLabel(a), value: a.id }));
    case 'endpoint':
      return crm.endpoints.map((e) => ({ label: e.name, value: e.name, hint: e.url }));
    case 'provider':
      return crm.providers.map((p) => ({ label: `${p.name}${p.active ? ' (active)' : ''}`, value: p.name }));
    default:
  }
  if (actionType === 'set_status') {
    if (param === 'type') return crm.statusTypes.map((t) => ({ label: t.name, value: t.name }));
    const type = crm.statusTypes.find((t) => t.name === params.type);
    const statuses = type ? type.statuses : crm.statusTypes.flatMap((t) => t.statuses.map((s) => ({ ...s, name: `${s.name} (${t.name})` })));
    if (param === 'status') return type ? statuses.map((s) => ({ label: s.name, value: s.name })) : null;
    if (param === 'status_id') return statuses.map((s) => ({ label: s.name, value: s.id }));
  }
  return null;
}

/**
 * The trigger's fields, with the teams and agents as options of the fields holding their
 * ids (customer.team_id, customer.agent_id, call.agent_id, ...), so a rule picks them by
 * name. Status fields already carry their options in the schema.
 */
export function withCrmOptions(fields, crm) {
  if (!crm) return fields;
  const teams = crm.teams.map((t) => ({ label: teamLabel(t), value: t.id }));
  const agents = crm.agents.map((a) => ({ label: agentLabel(a), value: a.id }));
  return fields.map((f) => {
    if (f.options?.length) return f;
    const last = f.path.split('.').pop();
    if (last === 'team_id' && teams.length) return { ...f, options: teams };
    if (['agent_id', 'manager_id', 'assignee_id'].includes(last) && agents.length) return { ...f, options: agents };
    return f;
  });
}

/**
 * A select of `options` for one param, with "Another value…" to type one that is not
 * listed (shown at once when the current value is not in the list). `set(v)` gets the
 * option's value (an id stays a number) or the typed text (digits become a number when
 * `numeric`). Returns the element holding both controls; the select has `id`.
 */
export function pickerControl({ id, options, value, set, numeric, describedBy, label }) {
  const known = options.findIndex((o) => o.value === value);
  const typed = value !== undefined && value !== '' && known < 0;
  const other = h('input', {
    id: `${id}-other`, type: 'text', value: typed ? String(value) : '', spellcheck: 'false', hidden: !typed,
    'aria-label': `${label}: another value`, placeholder: numeric ? 'an id' : 'a name',
    oninput: (e) => {
      const t = e.target.value.trim();
      set(t === '' ? undefined : numeric && /^\d+$/.test(t) ? Number(t) : t);
    },
  });
  const sel = h('select', {
    id, 'aria-describedby': describedBy,
    onchange: (e) => {
      const v = e.target.value;
      other.hidden = v !== OTHER;
      if (v === OTHER) { other.focus(); other.dispatchEvent(new Event('input')); return; }
      set(v === '' ? undefined : options[Number(v)].value);
    },
  },
  h('option', { value: '', selected: value === undefined || value === '' }, '— choose —'),
  options.map((o, i) => h('option', { value: String(i), selected: i === known, title: o.hint || null },
    o.label === String(o.value) ? o.label : `${o.label} (${o.value})`)),
  h('option', { value: OTHER, selected: typed }, typed ? `${value} (not found: type it below)` : 'Another value (type it)…'));
  return h('div', { class: 'picker' }, sel, other);
}
