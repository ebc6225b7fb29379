// The pages that manage where external actions go: webhook endpoints (a workflow's
// `"endpoint": "<name>"`: fixing the URL here fixes every workflow using it, and a
// retried run) and SMS providers (send_sms goes through the one active provider).
// A list, and one form that creates or edits; every API problem lands next to its field.
// An endpoint's secret is write-only: the API never returns it, only `has_secret`.

import { get, post, put, del } from './api.js';
import { h, announce, confirmDialog, clearErrors, showErrors, labelled, badge } from './dom.js';

/** Every record of a paged CRM list. */
async function all(path, key) {
  const out = [];
  let cursor = null;
  for (let n = 0; n < 100; n++) {
    const q = new URLSearchParams({ limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const body = await get(`${path}?${q}`);
    out.push(...(body?.[key] || Object.values(body || {}).find(Array.isArray) || []));
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/**
 * One records page. spec: { title, path, key, noun, intro, columns: [[heading, (r) => node]],
 * fields(record, draft) → [elements], body(draft, record) → API body, blank() → draft,
 * rowTools?(record, reload) → [elements] }
 */
async function recordsPage(view, spec) {
  let records = await all(spec.path, spec.key);
  let editing = null; // the record being edited, or null for a new one
  let draft = spec.blank();
  const form = h('form', { class: 'panel record-form', id: 'rec-form', novalidate: true, 'aria-labelledby': 'rec-form-title' });
  const tableBox = h('div', { id: 'rec-list' });

  function renderTable() {
    tableBox.replaceChildren(records.length
      ? h('table', { class: 'list' },
        h('caption', { class: 'sr-only' }, spec.title),
        h('thead', {}, h('tr', {}, spec.columns.map(([c]) => h('th', { scope: 'col' }, c)), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', {}, records.map((r) => h('tr', { dataset: { id: String(r.id) } },
          spec.columns.map(([, cell], i) => (i === 0 ? h('th', { scope: 'row' }, cell(r)) : h('td', {}, cell(r)))),
          h('td', { class: 'row-actions' },
            h('button', { type: 'button', 'aria-label': `Edit ${r.name}`, onclick: () => edit(r) }, 'Edit'),
            spec.rowTools ? spec.rowTools(r, reload) : null,
            h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${r.name}`, onclick: () => remove(r) }, 'Delete'))))))
      : h('p', { class: 'empty' }, `No ${spec.noun}s yet: add the first one with the form.`));
  }

  function renderForm(focus = false) {
    clearErrors(form);
    const summary = h('div', { class: 'form-summary', 'data-path': '', id: 'rec-summary' });
    form.replaceChildren(
      h('h3', { id: 'rec-form-title' }, editing ? `Edit ${spec.noun} “${editing.name}”` : `New ${spec.noun}`),
      ...spec.fields(editing, draft),
      summary,
      h('div', { class: 'buttons' },
        h('button', { type: 'submit', class: 'primary', id: 'rec-save' }, editing ? 'Save changes' : `Add ${spec.noun}`),
        editing ? h('button', { type: 'button', id: 'rec-new', onclick: () => { editing = null; draft = spec.blank(); renderForm(true); } }, `New ${spec.noun} instead`) : null));
    if (focus) form.querySelector('input')?.focus();
  }

  async function reload() {
    records = await all(spec.path, spec.key);
    renderTable();
  }

  function edit(r) {
    editing = r;
    draft = spec.blank(r);
    renderForm(true);
  }

  async function remove(r) {
    const ok = await confirmDialog(`Delete ${spec.noun}?`, `“${r.name}” is deleted. ${spec.deleteNote || ''}`, 'Delete');
    if (!ok) return;
    try {
      await del(`${spec.path}/${encodeURIComponent(r.id)}`);
      announce(`Deleted ${r.name}.`);
      if (editing?.id === r.id) { editing = null; draft = spec.blank(); renderForm(); }
      await reload();
    } catch (e) {
      announce(`Could not delete ${r.name}: ${e.message}`, 'error');
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const save = form.querySelector('#rec-save');
    save.disabled = true;
    try {
      const body = spec.body(draft, editing);
      const out = editing ? await put(`${spec.path}/${encodeURIComponent(editing.id)}`, body) : await post(spec.path, body);
      announce(`${editing ? 'Saved' : 'Added'} ${spec.noun} ${out.name}.`);
      editing = null;
      draft = spec.blank();
      renderForm();
      await reload();
      tableBox.querySelector(`tr[data-id="${CSS.escape(String(out.id))}"] button`)?.focus();
    } catch (err) {
      const summary = form.querySelector('#rec-summary');
      const first = showErrors(form, err.details, { fallback: summary });
      summary.prepend(h('p', { class: 'error-text', role: 'alert' }, `Not saved: ${err.message}`));
      (first?.querySelector?.('input, select') || first)?.focus?.();
    } finally {
      save.disabled = false;
    }
  });

  view.replaceChildren(
    h('div', { class: 'view-head' }, h('h2', {}, spec.title)),
    h('p', { class: 'muted' }, spec.intro),
    h('div', { class: 'records-grid' }, h('section', { 'aria-label': spec.title }, tableBox), form));
  renderTable();
  renderForm();
}

/** A text input bound to draft[key], inside a block whose data-path is `/key`. */
function textField(draft, key, label, attrs = {}, hint) {
  const input = h('input', { id: `rec-${key}`, type: 'text', value: draft[key] ?? '', spellcheck: 'false', ...attrs, oninput: (e) => { draft[key] = e.target.value; } });
  return h('div', { 'data-path': `/${key}` }, labelled(label, input, hint));
}

export function renderEndpoints(view) {
  return recordsPage(view, {
    title: 'Webhook endpoints',
    path: '/api/v1/webhook-endpoints',
    key: 'webhook_endpoints',
    noun: 'endpoint',
    intro: 'A webhook action names an endpoint ("endpoint": "slack_notification"); its URL and signing secret live here, so a fixed URL serves every workflow, and a retried run, at once. Deliveries are signed with the secret (Standard Webhooks).',
    deleteNote: 'Workflows that name it fail their webhook step until an endpoint of that name exists again.',
    columns: [
      ['Name', (r) => h('code', {}, r.name)],
      ['URL', (r) => h('span', { class: 'url' }, r.url)],
      ['Secret', (r) => (r.has_secret ? badge('set', 'done') : badge('none', 'off'))],
    ],
    blank: (r) => ({ name: r?.name ?? '', url: r?.url ?? '', secret: '', clearSecret: false }),
    fields(editing, draft) {
      const secret = h('input', {
        id: 'rec-secret', type: 'password', autocomplete: 'new-password', value: '', spellcheck: 'false',
        placeholder: editing?.has_secret ? 'set: leave empty to keep it' : 'none',
        oninput: (e) => { draft.secret = e.target.value; },
      });
      const clear = editing?.has_secret ? h('input', { id: 'rec-clear-secret', type: 'checkbox', onchange: (e) => { draft.clearSecret = e.target.checked; secret.disabled = e.target.checked; } }) : null;
      return [
        textField(draft, 'name', 'Name', { required: true, placeholder: 'slack_notification' }, 'what workflows write as "endpoint"'),
        textField(draft, 'url', 'URL', { type: 'url', required: true, placeholder: 'https://hooks.example.com/…' }),
        h('div', { 'data-path': '/secret' },
          labelled('Signing secret', secret, editing
            ? `write-only: never shown; ${editing.has_secret ? 'one is set, typing a new one replaces it' : 'none is set'}`
            : 'write-only: never shown again; optional')),
        clear ? h('div', { class: 'checkbox' }, clear, h('label', { for: clear.id }, 'Remove the secret (deliveries go unsigned)')) : null,
      ].filter(Boolean);
    },
    body(draft, editing) {
      const body = { name: draft.name.trim(), url: draft.url.trim() };
      // Absent keeps the stored secret, null removes it, a string replaces it.
      if (draft.clearSecret) body.secret = null;
      else if (draft.secret !== '') body.secret = draft.secret;
      else if (!editing) delete body.secret;
      return body;
    },
  });
}

export function renderProviders(view) {
  return recordsPage(view, {
    title: 'SMS providers',
    path: '/api/v1/sms-providers',
    key: 'sms_providers',
    noun: 'provider',
    intro: 'send_sms goes through the one active provider. Activating one deactivates the one before, in the same change.',
    deleteNote: 'With no active provider, send_sms steps fail until one is activated.',
    columns: [
      ['Name', (r) => h('span', {}, r.name)],
      ['URL', (r) => h('span', { class: 'url' }, r.url)],
      ['Active', (r) => (r.active ? badge('active', 'done') : badge('inactive', 'off'))],
    ],
    blank: (r) => ({ name: r?.name ?? '', url: r?.url ?? '', active: r ? Boolean(r.active) : false }),
    fields(editing, draft) {
      const active = h('input', { id: 'rec-active', type: 'checkbox', checked: draft.active, onchange: (e) => { draft.active = e.target.checked; } });
      return [
        textField(draft, 'name', 'Name', { required: true, placeholder: 'twilio' }),
        textField(draft, 'url', 'URL', { type: 'url', required: true, placeholder: 'https://sms.example.com/send' }),
        h('div', { class: 'checkbox', 'data-path': '/active' }, active, h('label', { for: active.id }, 'Active: send_sms uses this one (the active one before is deactivated)')),
      ];
    },
    body: (draft) => ({ name: draft.name.trim(), url: draft.url.trim(), active: draft.active }),
    rowTools: (r, reload) => (r.active ? null : h('button', {
      type: 'button', 'aria-label': `Make ${r.name} the active provider`,
      onclick: async () => {
        try {
          await put(`/api/v1/sms-providers/${encodeURIComponent(r.id)}`, { name: r.name, url: r.url, active: true });
          announce(`${r.name} is now the active SMS provider.`);
          await reload();
          document.querySelector(`#rec-list tr[data-id="${CSS.escape(String(r.id))}"] button`)?.focus();
        } catch (e) {
          announce(`Could not activate ${r.name}: ${e.message}`, 'error');
        }
      },
    }, 'Make active')),
  });
}
