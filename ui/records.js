// A page of CRM records managed by hand: a list, and one form that creates or edits a
// record (POST, or PUT by id), with Delete after a confirmation. Every API problem lands
// next to the field its JSON pointer names (or above the buttons). The webhook endpoint,
// SMS provider, team and agent pages are each one spec of it.

import { get, post, put, del } from './api.js';
import { h, announce, confirmDialog, clearErrors, showErrors, labelled } from './dom.js';

/** Every record of a paged CRM list. */
export async function all(path, key) {
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
 * One records page. spec: { title, path, key, noun, intro, columns: [[heading, (r, records) => node]],
 * fields(record, draft, records) → [elements], body(draft, record) → API body,
 * blank(record?) → draft, rowTools?(record, reload) → [elements], editId?: the id of the
 * record whose form opens at once (a link from elsewhere: "#/agents?edit=3") }
 */
export async function recordsPage(view, spec) {
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
          spec.columns.map(([, cell], i) => (i === 0 ? h('th', { scope: 'row' }, cell(r, records)) : h('td', {}, cell(r, records)))),
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
      ...spec.fields(editing, draft, records),
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
      await reload(); // first: the form's pickers may list the record just saved (a parent team)
      renderForm();
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
  const opened = spec.editId != null && records.find((r) => String(r.id) === String(spec.editId));
  if (opened) edit(opened);
  else renderForm();
}

/** A text input bound to draft[key], inside a block whose data-path is `/key`. */
export function textField(draft, key, label, attrs = {}, hint) {
  const input = h('input', { id: `rec-${key}`, type: 'text', value: draft[key] ?? '', spellcheck: 'false', ...attrs, oninput: (e) => { draft[key] = e.target.value; } });
  return h('div', { 'data-path': `/${key}` }, labelled(label, input, hint));
}
