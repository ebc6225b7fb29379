// The test panel's customer: one from the database — searched by id, name or email
// (GET /api/v1/customers?q=), or its id typed — which the dry run reads as stored now; or a
// typed snapshot, a form of the schema's `customer.*` fields (status fields by name, with
// their options; custom fields as JSON), edited in place like the event form so its raw
// JSON round-trips.

import { get } from './api.js';
import { h } from './dom.js';
import { fieldInput } from './eventform.js';

const fullName = (c) => [c.first_name, c.last_name].filter(Boolean).join(' ') || `customer ${c.id}`;

/**
 * The stored customer's controls. storedId(id) is called when the chosen id changes.
 * Returns { el, input (the id input), describe() (says who the id is), set(id) }.
 */
export function storedCustomer({ storedId }) {
  const input = h('input', { id: 't-customer-id', type: 'number', min: '1', step: '1', value: '1', inputmode: 'numeric', 'aria-describedby': 't-customer-info' });
  const info = h('p', { class: 'hint', id: 't-customer-info', 'aria-live': 'polite' });
  const search = h('input', { id: 't-customer-search', type: 'search', spellcheck: 'false', autocomplete: 'off', placeholder: 'name, email or id' });
  const results = h('ul', { class: 'picks', id: 't-customer-results' });
  let timer = null;

  /**
   * What the database holds under the id, in one line, or that it holds nothing. Asked as a
   * search by id (the list answers an unknown id with no row, where GET /customers/{id}
   * would answer 404).
   */
  async function describe() {
    const id = input.value;
    if (!id) { info.textContent = ''; return; }
    try {
      const { customers } = await get(`/api/v1/customers?${new URLSearchParams({ q: id, limit: '1' })}`);
      if (input.value !== id) return;
      const c = customers.find((x) => String(x.id) === id);
      info.textContent = c
        ? [fullName(c), c.email, c.country, c.desk && `${c.desk} desk`].filter(Boolean).join(' · ')
        : `Customer ${id} is not in the database: the dry run sees only its id.`;
    } catch (e) {
      if (input.value === id) info.textContent = e.status === 404 ? '' : `Could not read customer ${id}: ${e.message}`;
    }
  }
  function chosen() {
    storedId(Number(input.value) || null);
    clearTimeout(timer);
    timer = setTimeout(describe, 250);
  }
  input.addEventListener('input', chosen);

  async function find() {
    const q = search.value.trim();
    if (!q) return;
    results.replaceChildren(h('li', { class: 'muted' }, 'Searching…'));
    try {
      const { customers } = await get(`/api/v1/customers?${new URLSearchParams({ q, limit: '10' })}`);
      results.replaceChildren(...(customers.length
        ? customers.map((c) => h('li', {}, h('button', {
          type: 'button', class: 'link', 'aria-label': `Use customer ${c.id}: ${fullName(c)}`,
          onclick: () => { input.value = String(c.id); chosen(); results.replaceChildren(); input.focus(); },
        }, `${fullName(c)} (${c.id})`), c.email ? h('span', { class: 'muted small' }, ` ${c.email}`) : null))
        : [h('li', { class: 'muted' }, `No customer matches “${q}”.`)]));
    } catch (e) {
      results.replaceChildren(h('li', { class: 'muted' }, e.status === 404
        ? 'This engine cannot search customers: type the id.'
        : `Could not search: ${e.message}`));
    }
  }
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); find(); } });

  const el = h('div', { class: 'stored-customer' },
    h('div', { class: 'field' }, h('label', { for: search.id }, 'Find a customer'),
      h('div', { class: 'inline' }, search, h('button', { type: 'button', id: 't-customer-find', onclick: find }, 'Find'))),
    results,
    h('div', { class: 'field', 'data-path': '/customer_id' }, h('label', { for: input.id }, 'Customer id'), input, info));
  return { el, input, describe, set(id) { input.value = String(id); chosen(); } };
}

/**
 * The typed snapshot as a form: a row per key it has (labelled and typed from the schema's
 * customer.* fields; other keys as JSON), "Add a field" for the rest. fields(): the schema's
 * customer fields; changed(): after every edit. Returns { el, value(), set(obj), show(on) }.
 */
export function typedCustomer({ fields, changed }) {
  let snap = {};
  let shown = true;
  const el = h('div', { class: 'typed-customer' });

  function render() {
    if (!shown) return el.replaceChildren();
    const byKey = new Map(fields().filter((f) => f.path.startsWith('customer.')).map((f) => [f.path.slice('customer.'.length), f]));
    const missing = [...byKey.keys()].filter((k) => !(k in snap));
    const adder = h('select', { id: 't-cu-add', 'aria-label': 'Add a customer field' },
      h('option', { value: '' }, 'Add a field…'),
      missing.map((k) => h('option', { value: k }, `${byKey.get(k).label} (${k})`)),
      h('option', { value: '__custom__' }, 'A custom field (type its name)…'));
    const custom = h('input', { id: 't-cu-add-name', type: 'text', hidden: true, spellcheck: 'false', placeholder: 'custom field name', 'aria-label': 'Name of the custom field' });
    const add = (k) => {
      if (!k || k in snap) return;
      const f = byKey.get(k);
      snap[k] = f?.options?.length ? f.options[0].value : f?.type === 'boolean' ? false : f?.type === 'number' ? 0 : '';
      changed();
      render();
      el.querySelector(`#${CSS.escape(`t-cu-${k}`)}`)?.focus();
    };
    adder.addEventListener('change', () => {
      if (adder.value === '__custom__') { custom.hidden = false; custom.focus(); } else add(adder.value);
    });
    custom.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); add(custom.value.trim()); } });
    el.replaceChildren(
      h('div', { class: 'grid2' }, Object.keys(snap).map((k) => {
        const f = byKey.get(k) || { type: 'any', label: k };
        return h('div', { class: 'field', 'data-path': `/customer/${k}` },
          h('label', { for: `t-cu-${k}` }, f.label),
          h('div', { class: 'inline' },
            fieldInput({ id: `t-cu-${k}`, field: f, value: snap[k], set: (v) => { if (v === undefined) delete snap[k]; else snap[k] = v; changed(); } }),
            h('button', { type: 'button', class: 'icon', 'aria-label': `Remove ${f.label}`, onclick: () => { delete snap[k]; changed(); render(); adder.focus(); } }, '✕')));
      })),
      h('div', { class: 'inline' }, adder, custom),
      h('p', { class: 'hint' }, 'The fields customer.* reads; status fields by name (retention_status). Fields left out are missing, as for a customer without them.'));
  }

  return {
    el,
    value: () => snap,
    set(v) { snap = v && typeof v === 'object' && !Array.isArray(v) ? v : {}; render(); },
    show(on) { shown = on; render(); },
  };
}
