// The customers of the CRM: a search (GET /api/v1/customers?q=, by id, or by the start of
// a name or email), and one customer's page — who they are, what the workflows did to
// them (the activity feed, with the last 7 days counted), their tasks, their events with
// the inspector one click away, and the form that edits them (PUT /api/v1/customers/{id},
// only the keys that changed: the engine keeps the rest). An unknown id opens the same
// form to create the customer under the CRM's id.

import { get, put, schema } from './api.js';
import { h, announce, clearErrors, showErrors, labelled, fmtTime, badge } from './dom.js';
import { loadCrm, pickerControl } from './pickers.js';
import { activityFeed } from './activity.js';
import { taskList } from './tasks.js';
import { eventList } from './events.js';
import { teamLabel } from './teams.js';

const PAGE = 50;
/** Built-in text fields, in the form's order; their labels come from the schema. */
const TEXT = ['first_name', 'last_name', 'email', 'phone', 'country', 'language', 'timezone'];
const TIMES = ['registered_at', 'last_activity_at'];
const FLAGS = ['active', 'frozen', 'email_opt_out', 'sms_opt_out'];

const fullName = (c) => [c.first_name, c.last_name].filter(Boolean).join(' ');

export async function renderCustomers(view, params) {
  const q = h('input', { id: 'cu-q', type: 'search', value: params.get('q') || '', spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'cu-q-hint' });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Search customers' },
    h('div', { class: 'field grow' }, h('label', { for: q.id }, 'Search'), q,
      h('span', { class: 'hint', id: 'cu-q-hint' }, 'an id, or the start of a first name, last name or email')),
    h('button', { type: 'submit', class: 'primary', id: 'cu-search' }, 'Search'));
  const openId = h('input', { id: 'cu-open-id', type: 'number', min: '1', step: '1', inputmode: 'numeric' });
  const openForm = h('form', { class: 'filters', 'aria-label': 'Open a customer by id' },
    h('div', { class: 'field' }, h('label', { for: openId.id }, 'Customer id'), openId),
    h('button', { type: 'submit', id: 'cu-open' }, 'Open or create'));
  openForm.addEventListener('submit', (e) => { e.preventDefault(); if (openId.value) location.hash = `#/customers/${openId.value}`; });
  const list = h('div', { id: 'cu-list', 'aria-live': 'polite' });
  const newer = h('button', { type: 'button', id: 'cu-newer', onclick: () => turn(-1) }, '← Previous page');
  const older = h('button', { type: 'button', id: 'cu-older', onclick: () => turn(1) }, 'Next page →');
  const crm = await loadCrm();
  const agentName = Object.fromEntries((crm?.agents || []).map((a) => [a.id, a.name]));
  const teamName = Object.fromEntries((crm?.teams || []).map((t) => [t.id, t.name]));
  const cursors = [null];
  let next = null;

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const hash = q.value.trim() ? `#/customers?q=${encodeURIComponent(q.value.trim())}` : '#/customers';
    if (location.hash !== hash) history.replaceState(null, '', hash);
    cursors.length = 1;
    load();
  });

  async function turn(d) {
    if (d > 0 && next) cursors.push(next);
    else if (d < 0 && cursors.length > 1) cursors.pop();
    else return;
    await load();
    (d > 0 ? older : newer).focus();
  }

  async function load() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (q.value.trim()) query.set('q', q.value.trim());
    if (cursors[cursors.length - 1]) query.set('cursor', cursors[cursors.length - 1]);
    try {
      const out = await get(`/api/v1/customers?${query}`);
      next = out.next_cursor ?? null;
      newer.disabled = cursors.length === 1;
      older.disabled = !next;
      list.replaceChildren(out.customers.length
        ? h('table', { class: 'list' },
          h('caption', { class: 'sr-only' }, q.value.trim() ? `Customers matching “${q.value.trim()}”` : 'Customers, newest first'),
          h('thead', {}, h('tr', {}, ['Customer', 'Email', 'Country', 'Desk', 'Agent', 'Team', 'Last activity'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, out.customers.map((c) => h('tr', { dataset: { id: String(c.id) } },
            h('th', { scope: 'row' }, h('a', { href: `#/customers/${c.id}` }, fullName(c) || `customer ${c.id}`), h('span', { class: 'muted small' }, ` (${c.id})`)),
            h('td', {}, c.email || ''),
            h('td', {}, c.country || ''),
            h('td', {}, c.desk || ''),
            h('td', {}, c.agent_id != null ? h('a', { href: `#/agents/${c.agent_id}` }, agentName[c.agent_id] || `agent ${c.agent_id}`) : ''),
            h('td', {}, c.team_id != null ? teamName[c.team_id] || `team ${c.team_id}` : ''),
            h('td', {}, c.last_activity_at ? fmtTime(c.last_activity_at) : '')))))
        : h('p', { class: 'empty' }, q.value.trim() ? `No customer matches “${q.value.trim()}”.` : 'No customers yet.'));
    } catch (e) {
      newer.disabled = true;
      older.disabled = true;
      list.replaceChildren(h('p', { class: e.status === 404 ? 'muted' : 'error-text' }, e.status === 404
        ? 'This engine does not list customers: open one by its id.'
        : `Could not search: ${e.message}`));
    }
  }

  view.replaceChildren(
    h('div', { class: 'view-head' }, h('h2', {}, 'Customers')),
    h('div', { class: 'search-row' }, form, openForm),
    list,
    h('nav', { class: 'pager', 'aria-label': 'Pages of customers' }, newer, older));
  await load();
  return null;
}

export async function renderCustomer(view, id) {
  let customer = null;
  try {
    customer = await get(`/api/v1/customers/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  const [s, crm, { workflows }] = await Promise.all([schema(true), loadCrm(), get('/api/v1/workflows')]);
  const teams = crm?.teams || [];
  const agents = crm?.agents || [];
  const names = Object.fromEntries(workflows.map((w) => [w.id, w.name]));
  const title = h('h2', {}, customer ? `Customer ${id}: ${fullName(customer) || 'no name'}` : `Customer ${id}`);
  const facts = h('dl', { class: 'facts', id: 'cu-facts' });
  const showFacts = (c) => {
    const agent = agents.find((a) => a.id === c.agent_id);
    const team = teams.find((t) => t.id === c.team_id);
    facts.replaceChildren(...[
      ['Email', c.email || '—'], ['Phone', c.phone || '—'], ['Country', c.country || '—'], ['Desk', c.desk || '—'],
      ['Agent', agent ? h('a', { href: `#/agents/${agent.id}` }, agent.name) : c.agent_id != null ? `agent ${c.agent_id}` : 'none'],
      ['Team', team ? teamLabel(team) : c.team_id != null ? `team ${c.team_id}` : 'none'],
      ['Statuses', Object.keys(c.statuses || {}).length ? Object.entries(c.statuses).map(([t, v]) => [badge(`${t}: ${v}`, 'info'), ' ']) : 'none'],
      ['Account', [c.active ? 'active' : 'inactive', c.frozen ? ', frozen' : '', c.email_opt_out ? ', no email' : '', c.sms_opt_out ? ', no SMS' : ''].join('')],
    ].flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  };
  if (customer) showFacts(customer);

  const editor = customerForm({ id, customer, s, crm, onSaved: async (c, created) => {
    if (created) {
      // the page of a customer that exists: activity, tasks, events
      await renderCustomer(view, id);
      announce(`Created customer ${id}.`);
      view.querySelector('#cu-save')?.focus();
      return;
    }
    customer = c;
    title.textContent = `Customer ${id}: ${fullName(c) || 'no name'}`;
    showFacts(c);
  } });

  if (!customer) {
    view.replaceChildren(
      h('div', { class: 'view-head' }, title),
      h('p', { class: 'notice', id: 'cu-missing' }, `Customer ${id} is not in the database. Saving the form creates it under this id (as the CRM would, PUT /api/v1/customers/${id}).`),
      editor);
    return null;
  }
  const tasks = taskList({ filter: { customer_id: Number(id) }, agents });
  const activity = activityFeed({ customerId: id, workflows: names, agents, showTask: (taskId) => tasks.show(taskId) });
  view.replaceChildren(
    h('div', { class: 'view-head' }, title,
      h('a', { href: `#/runs?customer_id=${encodeURIComponent(id)}` }, 'runs'),
      h('a', { href: `#/events?customer_id=${encodeURIComponent(id)}` }, 'events')),
    facts,
    h('div', { class: 'customer-grid' },
      h('div', {},
        h('section', { class: 'panel', 'aria-labelledby': 'cu-act-title' },
          h('h3', { id: 'cu-act-title' }, 'What the workflows did'),
          h('p', { class: 'hint' }, 'Runs, status changes and assignments made by workflow steps, tasks, notes and messages, newest first. Changes written through the CRM API directly have no history here.'),
          activity.el),
        h('section', { class: 'panel', 'aria-labelledby': 'cu-tasks-title' },
          h('h3', { id: 'cu-tasks-title' }, 'Tasks'), tasks.el),
        h('section', { class: 'panel', 'aria-labelledby': 'cu-events-title' },
          h('h3', { id: 'cu-events-title' }, 'Events'),
          h('p', { class: 'hint' }, 'Open one to see why each workflow did or did not run for it.'),
          eventList(id).el)),
      editor));
  return null;
}

/** The label the schema gives customer.<key>, or the key in words. */
function labelOf(s, key) {
  return s.other_trigger.fields.find((f) => f.path === `customer.${key}`)?.label || key.replace(/_/g, ' ');
}

/** A custom field's text typed back into the type its stored value had (a new one: JSON if it parses as a number or true/false, else text). */
function customValue(text, was) {
  const t = text.trim();
  if (typeof was === 'string') return text;
  if (typeof was === 'number') return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : text;
  if (typeof was === 'boolean') return t === 'true' ? true : t === 'false' ? false : text;
  if (was !== undefined && was !== null) { try { return JSON.parse(t); } catch { return text; } }
  return /^(-?\d+(\.\d+)?|true|false)$/.test(t) ? JSON.parse(t) : text;
}

/**
 * The customer's form: built-in fields, desk, agent and team by name, a status per status
 * type, custom fields as key/value rows. Saves only what changed; every problem of a 422 is
 * shown at its field; the confirmation is shown beside the button pressed. `onSaved(customer,
 * created)` gets the customer as stored after the save.
 */
function customerForm({ id, customer, s, crm, onSaved }) {
  let base = customer || {};
  const draft = structuredClone(base);
  draft.statuses = { ...(base.statuses || {}) };
  const customRows = Object.entries(base.custom || {}).map(([k, v]) => ({ key: k, text: typeof v === 'string' ? v : JSON.stringify(v), was: v }));
  const form = h('form', { class: 'panel record-form customer-form', id: 'cu-form', novalidate: true, 'aria-labelledby': 'cu-form-title' });
  const summary = h('div', { class: 'form-summary', 'data-path': '', id: 'cu-summary' });
  const saved = h('span', { id: 'cu-saved', role: 'status', class: 'saved' });
  const customBox = h('div', { 'data-path': '/custom' });

  const text = (key) => h('div', { 'data-path': `/${key}` }, labelled(labelOf(s, key),
    h('input', { id: `cu-${key}`, type: 'text', value: draft[key] ?? '', spellcheck: 'false', oninput: (e) => { draft[key] = e.target.value; } }),
    TIMES.includes(key) ? 'RFC 3339, e.g. 2026-01-31T09:00:00Z' : null));
  const balance = h('input', { id: 'cu-balance', type: 'number', step: 'any', value: draft.balance ?? '', oninput: (e) => { draft.balance = e.target.value === '' ? undefined : Number(e.target.value); } });
  const deskField = s.other_trigger.fields.find((f) => f.path === 'customer.desk');
  const desk = pickerControl({ id: 'cu-desk', options: deskField?.options || [], value: draft.desk, label: 'Desk', set: (v) => { draft.desk = v; } });
  const select = (key, records, label) => h('select', { id: `cu-${key}`, onchange: (e) => { draft[key] = e.target.value === '' ? null : Number(e.target.value); } },
    h('option', { value: '', selected: draft[key] == null }, 'none'),
    records.map((r) => h('option', { value: String(r.id), selected: r.id === draft[key] }, label(r))),
    draft[key] != null && !records.some((r) => r.id === draft[key]) ? h('option', { value: String(draft[key]), selected: true }, `${draft[key]} (not found)`) : null);
  const flags = FLAGS.map((key) => {
    const box = h('input', { id: `cu-${key}`, type: 'checkbox', checked: Boolean(draft[key] ?? key === 'active'), onchange: (e) => { draft[key] = e.target.checked; } });
    return h('div', { class: 'checkbox', 'data-path': `/${key}` }, box, h('label', { for: box.id }, labelOf(s, key)));
  });
  const statuses = (crm?.statusTypes || []).map((t) => {
    const current = draft.statuses[t.name];
    const sel = h('select', { id: `cu-status-${t.name}`, onchange: (e) => { if (e.target.value) draft.statuses[t.name] = e.target.value; else delete draft.statuses[t.name]; } },
      current ? null : h('option', { value: '', selected: true }, 'not set'),
      t.statuses.map((st) => h('option', { value: st.name, selected: st.name === current }, st.name)));
    return h('div', { 'data-path': `/statuses/${t.name}` }, labelled(`${t.name} status`, sel));
  });

  function renderCustom() {
    customBox.replaceChildren(
      h('p', { class: 'label' }, 'Custom fields'),
      customRows.length ? h('ul', { class: 'kv-rows' }, customRows.map((row, i) => h('li', { 'data-path': `/custom/${row.key}` },
        h('input', { type: 'text', id: `cu-custom-${i}-key`, value: row.key, 'aria-label': `Custom field ${i + 1}: name`, placeholder: 'name', spellcheck: 'false', oninput: (e) => { row.key = e.target.value.trim(); } }),
        h('input', { type: 'text', id: `cu-custom-${i}-value`, value: row.text, 'aria-label': `Custom field ${i + 1}: value`, placeholder: 'value', spellcheck: 'false', oninput: (e) => { row.text = e.target.value; } }),
        h('button', { type: 'button', class: 'icon', 'aria-label': `Remove custom field ${row.key || i + 1}`, onclick: () => { customRows.splice(i, 1); renderCustom(); customBox.querySelector('button')?.focus(); } }, '✕'))))
        : h('p', { class: 'muted small' }, 'none'),
      h('button', { type: 'button', id: 'cu-custom-add', onclick: () => { customRows.push({ key: '', text: '', was: undefined }); renderCustom(); customBox.querySelector(`#cu-custom-${customRows.length - 1}-key`)?.focus(); } }, 'Add a custom field'),
      h('p', { class: 'hint' }, 'lowercase letters, digits and _; a number, true or false is stored as one. Saving replaces every custom field with these.'));
  }
  renderCustom();

  /** The keys that differ from what was read (the engine keeps the ones left out). */
  function changes() {
    const body = {};
    for (const key of [...TEXT, ...TIMES, 'balance', 'desk', 'agent_id', 'team_id', ...FLAGS]) {
      let v = draft[key];
      if (TIMES.includes(key) && v === '') v = null;
      if (v !== undefined && v !== base[key] && !(v === '' && base[key] == null)) body[key] = v;
    }
    for (const [type, name] of Object.entries(draft.statuses)) {
      if ((base.statuses || {})[type] !== name) (body.statuses ||= {})[type] = name;
    }
    const custom = Object.fromEntries(customRows.filter((r) => r.key).map((r) => [r.key, customValue(r.text, r.was)]));
    if (JSON.stringify(custom) !== JSON.stringify(base.custom || {})) body.custom = custom;
    return body;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    summary.replaceChildren();
    saved.textContent = '';
    const body = changes();
    if (!Object.keys(body).length && customer) { saved.textContent = 'Nothing changed.'; return; }
    const button = form.querySelector('#cu-save');
    button.disabled = true;
    try {
      await put(`/api/v1/customers/${encodeURIComponent(id)}`, body);
      const fresh = await get(`/api/v1/customers/${encodeURIComponent(id)}`);
      if (!customer) { await onSaved(fresh, true); return; }
      base = fresh;
      for (const row of customRows) row.was = fresh.custom?.[row.key];
      saved.textContent = `Saved: ${Object.keys(body).join(', ')}.`;
      announce(`Saved customer ${id}.`);
      onSaved(fresh, false);
    } catch (err) {
      const first = showErrors(form, err.details, { fallback: summary });
      summary.prepend(h('p', { class: 'error-text', role: 'alert' }, `Not saved: ${err.message}`));
      (first?.querySelector?.('input, select') || first)?.focus?.();
      if (!first) summary.scrollIntoView({ block: 'nearest' });
    } finally {
      button.disabled = false;
    }
  });

  form.append(
    h('h3', { id: 'cu-form-title' }, customer ? 'Edit' : 'New customer'),
    h('div', { class: 'grid2' }, TEXT.map(text), h('div', { 'data-path': '/balance' }, labelled(labelOf(s, 'balance'), balance))),
    h('div', { class: 'grid2' },
      h('div', { 'data-path': '/desk' }, h('div', { class: 'field' }, h('label', { for: 'cu-desk' }, labelOf(s, 'desk')), desk)),
      h('div', { 'data-path': '/agent_id' }, labelled('Agent', select('agent_id', crm?.agents || [], (a) => `${a.name}${a.active === false ? ' (inactive)' : ''}`))),
      h('div', { 'data-path': '/team_id' }, labelled('Team', select('team_id', crm?.teams || [], teamLabel)))),
    statuses.length ? h('div', { class: 'grid2' }, statuses) : null,
    h('div', { class: 'grid2' }, TIMES.map(text)),
    h('div', { class: 'flags' }, flags),
    customBox,
    summary,
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', id: 'cu-save' }, customer ? 'Save changes' : `Create customer ${id}`), saved));
  return form;
}
