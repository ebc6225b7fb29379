// The test panel's event as a form built from the schema: the envelope (id, customer_id,
// occurred_at) and one input per field the trigger's payload has (`event.*` of GET
// /api/v1/schema, typed: numbers, options, true/false, times), plus rows for any other key
// of `data` (a nested `transaction`, a custom field) as JSON. The form edits an envelope
// object in place: what it does not touch stays exactly as it was, so form → JSON → form
// gives back the same event (the raw JSON is the panel's "Advanced" view of it).

import { h } from './dom.js';

/**
 * A control for one value of a schema field ({type, options}). `set(v)` gets the typed
 * value, or undefined when the control is emptied. A value the control cannot show as
 * typed (an object, a number in a text field) is shown and read as JSON.
 */
export function fieldInput({ id, field, value, set, describedBy }) {
  const opts = field.options?.length ? field.options
    : field.type === 'boolean' ? [{ label: 'true', value: true }, { label: 'false', value: false }] : null;
  if (opts) {
    const known = opts.findIndex((o) => o.value === value);
    return h('select', {
      id, 'aria-describedby': describedBy,
      onchange: (e) => { const v = e.target.value; if (v !== 'kept') set(v === '' ? undefined : opts[Number(v)].value); },
    },
    h('option', { value: '', selected: value === undefined }, '(not set)'),
    opts.map((o, i) => h('option', { value: String(i), selected: i === known }, o.label === String(o.value) ? o.label : `${o.label} (${o.value})`)),
    value !== undefined && known < 0 ? h('option', { value: 'kept', selected: true }, `${JSON.stringify(value)} (not listed)`) : null);
  }
  if (field.type === 'number' && (value === undefined || typeof value === 'number')) {
    return h('input', {
      id, type: 'number', step: 'any', value: value ?? '', inputmode: 'decimal', 'aria-describedby': describedBy,
      oninput: (e) => set(e.target.value === '' ? undefined : Number(e.target.value)),
    });
  }
  const asJson = value !== undefined && typeof value !== 'string';
  return h('input', {
    id, type: 'text', spellcheck: 'false', 'aria-describedby': describedBy,
    value: asJson ? JSON.stringify(value) : value ?? '',
    placeholder: field.type === 'datetime' ? 'RFC 3339, e.g. 2026-01-31T09:00:00Z' : null,
    oninput: (e) => {
      const t = e.target.value;
      if (t === '') return set(undefined);
      if (asJson || field.type === 'any') {
        try { return set(JSON.parse(t)); } catch { /* not JSON: the text itself */ }
      }
      return set(t);
    },
  });
}

/** Reads and writes `obj` at a dotted path ("transaction.id"), creating objects on the way. */
const at = (obj, path) => path.split('.').reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj);
function put(obj, path, v) {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (!o[k] || typeof o[k] !== 'object') o[k] = {};
    o = o[k];
  }
  if (v === undefined) delete o[keys[keys.length - 1]];
  else o[keys[keys.length - 1]] = v;
}

/**
 * fields(): the trigger's `event.*` fields from the schema; changed(): called after every
 * edit. Returns { el, value() → the envelope, set(envelope), show(on) } — show(false)
 * empties the form (the raw JSON is being edited) so no hidden control holds an error.
 */
export function eventForm({ fields, changed }) {
  let ev = { data: {} };
  let shown = true;
  const el = h('div', { class: 'event-form' });
  const edit = (fn) => (v) => { fn(v); changed(); };

  function render() {
    if (!shown) return el.replaceChildren();
    if (!ev.data || typeof ev.data !== 'object' || Array.isArray(ev.data)) ev.data = {};
    const schemaFields = fields().filter((f) => f.path.startsWith('event.'));
    const known = new Set(schemaFields.map((f) => f.path.slice('event.'.length).split('.')[0]));
    const row = (path, label, control, hint) => h('div', { class: 'field', 'data-path': path },
      h('label', { for: control.id }, label), control, hint ? h('span', { class: 'hint' }, hint) : null);
    const others = Object.keys(ev.data).filter((k) => !known.has(k));
    const newKey = h('input', { id: 't-ev-new-key', type: 'text', spellcheck: 'false', placeholder: 'name', 'aria-label': 'Name of a new data field' });
    const add = () => {
      const k = newKey.value.trim();
      if (!k || k in ev.data) { newKey.focus(); return; }
      ev.data[k] = '';
      changed();
      render();
      el.querySelector(`#${CSS.escape(`t-ev-data-${k}`)}`)?.focus();
    };
    newKey.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); add(); } });
    el.replaceChildren(
      h('div', { class: 'grid2' },
        row('/event/id', 'Event id', fieldInput({ id: 't-ev-id', field: { type: 'string' }, value: ev.id, set: edit((v) => { ev.id = v; }) })),
        row('/event/customer_id', 'Customer id', fieldInput({ id: 't-ev-customer_id', field: { type: 'number' }, value: ev.customer_id, set: edit((v) => { ev.customer_id = v; }) }))),
      row('/event/occurred_at', 'Occurred at', fieldInput({ id: 't-ev-occurred_at', field: { type: 'datetime' }, value: ev.occurred_at, set: edit((v) => { ev.occurred_at = v; }) }),
        'empty: now; limits and send windows are judged at this time'),
      h('p', { class: 'small' }, 'Type ', h('code', { id: 't-ev-type' }, ev.type ?? '?'), ' (another type: in the JSON, under Advanced)'),
      h('fieldset', { class: 'data-fields' }, h('legend', {}, 'Data (event.*)'),
        schemaFields.length ? h('div', { class: 'grid2' }, schemaFields.map((f) => {
          const key = f.path.slice('event.'.length);
          return row(`/event/data/${key.replace(/\./g, '/')}`, f.label, fieldInput({
            id: `t-ev-data-${key}`, field: f, value: at(ev.data, key), set: edit((v) => put(ev.data, key, v)),
          }));
        })) : h('p', { class: 'hint' }, 'The schema lists no payload field for this trigger.'),
        others.map((k) => h('div', { class: 'field other-data', 'data-path': `/event/data/${k}` },
          h('label', { for: `t-ev-data-${k}` }, h('code', {}, k)),
          h('div', { class: 'inline' },
            fieldInput({ id: `t-ev-data-${k}`, field: { type: 'any' }, value: ev.data[k], set: edit((v) => { ev.data[k] = v ?? ''; }) }),
            h('button', { type: 'button', class: 'icon', 'aria-label': `Remove data field ${k}`, onclick: () => { delete ev.data[k]; changed(); render(); newKey.focus(); } }, '✕')))),
        h('div', { class: 'inline add-data' }, newKey, h('button', { type: 'button', id: 't-ev-add', onclick: add }, 'Add a data field')),
        h('p', { class: 'hint' }, 'Other fields are read as JSON when they parse (numbers, true/false, objects), else as text.')));
  }

  return {
    el,
    value: () => ev,
    set(v) { ev = v; render(); },
    show(on) { shown = on; render(); },
  };
}
