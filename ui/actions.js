// The action chain editor: one form per action, built from the action's param schema in
// GET /api/v1/schema (reorder, add, remove; durations as number + unit; webhook headers as
// key/value rows; webhook body as JSON text). Edits `actions` in place; `buildActions`
// turns the form state into what the API takes.

import { h } from './dom.js';
import { actionOptions, pickerControl } from './pickers.js';

const UNITS = ['minutes', 'hours', 'days'];
const NUMBER_RE = /^\s*-?\d+(\.\d+)?\s*$/;
const LONG_TEXT = new Set(['body', 'text']);
const idFor = (i, part) => `a-${i}-${part}`;

const isDelayLike = (a) => a.params.length === 3 && UNITS.every((u) => a.params.some((p) => p.name === u));

function durationOf(v) {
  if (v && typeof v === 'object') {
    for (const u of UNITS) if (u in v) return { n: v[u], unit: u };
  }
  return { n: '', unit: 'days' };
}

export function actionsEditor(ctx) {
  // ctx: { actions: () => [...], schema, crm: the records pickers offer (pickers.js) or null }
  const el = h('div', { class: 'actions-editor' });
  const catalogue = ctx.schema.actions;
  const byType = Object.fromEntries(catalogue.map((a) => [a.type, a]));

  function render(focusId) {
    const active = focusId || document.activeElement?.id;
    const actions = ctx.actions();
    const addSel = h('select', { id: 'add-action-type' }, catalogue.map((a) => h('option', { value: a.type }, a.label)));
    el.replaceChildren(
      actions.length
        ? h('ol', { class: 'action-list', 'data-path': '/actions' }, actions.map((a, i) => h('li', {}, actionForm(a, i, actions))))
        : h('p', { class: 'muted', 'data-path': '/actions' }, 'No actions yet: a workflow needs at least one.'),
      h('div', { class: 'add-action' },
        h('label', { for: addSel.id }, 'New action'), addSel,
        h('button', {
          type: 'button', id: 'add-action',
          onclick: () => {
            actions.push({ type: addSel.value, params: {} });
            render(idFor(actions.length - 1, 'type'));
          },
        }, 'Add action')));
    if (active) document.getElementById(active)?.focus();
  }

  function actionForm(action, i, actions) {
    const spec = byType[action.type];
    const n = i + 1;
    const typeSel = h('select', {
      id: idFor(i, 'type'),
      onchange: (e) => {
        const next = byType[e.target.value];
        const keep = {};
        for (const p of next?.params || []) if (p.name in action.params) keep[p.name] = action.params[p.name];
        action.type = e.target.value;
        action.params = keep;
        delete action.__raw;
        render(idFor(i, 'type'));
      },
    }, catalogue.map((a) => h('option', { value: a.type, selected: a.type === action.type }, a.label)));
    if (!spec) typeSel.prepend(h('option', { value: action.type, selected: true }, `${action.type} (unknown)`));
    const move = (d) => {
      [actions[i], actions[i + d]] = [actions[i + d], actions[i]];
      render(idFor(i + d, d < 0 ? 'up' : 'down'));
      if (!document.getElementById(idFor(i + d, d < 0 ? 'up' : 'down'))) document.getElementById(idFor(i + d, 'type'))?.focus();
    };
    const rules = (spec?.rules || []).map((r) => h('p', { class: 'hint' },
      r.rule === 'exactly_one' ? `Give exactly one of: ${r.params.join(', ')}.` : r.rule === 'at_least_one' ? `Give at least one of: ${r.params.join(', ')}.` : `${r.rule}: ${r.params.join(', ')}`));
    return h('section', { class: 'action', 'data-path': `/actions/${i}`, 'aria-labelledby': idFor(i, 'heading') },
      h('div', { class: 'action-head' },
        h('h4', { id: idFor(i, 'heading') }, `Step ${n}`),
        h('label', { for: typeSel.id, class: 'sr-only' }, `Action type of step ${n}`),
        h('div', { 'data-path': `/actions/${i}/type` }, typeSel),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'icon', id: idFor(i, 'up'), disabled: i === 0, 'aria-label': `Move step ${n} up`, title: 'Move up', onclick: () => move(-1) }, '↑'),
        h('button', { type: 'button', class: 'icon', id: idFor(i, 'down'), disabled: i === actions.length - 1, 'aria-label': `Move step ${n} down`, title: 'Move down', onclick: () => move(1) }, '↓'),
        h('button', {
          type: 'button', class: 'danger', id: idFor(i, 'remove'), 'aria-label': `Remove step ${n}`,
          onclick: () => { actions.splice(i, 1); render(actions.length ? idFor(Math.min(i, actions.length - 1), 'type') : 'add-action-type'); },
        }, 'Remove')),
      spec?.description ? h('p', { class: 'hint' }, spec.description, spec.external ? ' (external: delivered through the outbox, retried)' : '') : null,
      h('div', { class: 'params', 'data-path': `/actions/${i}/params` },
        spec ? (isDelayLike(spec) ? delayInput(action, i) : spec.params.map((p) => paramInput(action, i, p))) : rawParams(action, i),
        rules));
  }

  function setParam(action, name, v) {
    if (v === '' || v === undefined) delete action.params[name];
    else action.params[name] = v;
  }

  function durationControls(i, name, get, set, label, hint, path) {
    const cur = durationOf(get());
    const num = h('input', {
      id: idFor(i, `p-${name}-n`), type: 'number', min: '1', step: '1', value: cur.n === '' ? '' : String(cur.n), inputmode: 'numeric',
      'aria-label': `${label}: amount`,
    });
    const unit = h('select', { id: idFor(i, `p-${name}-unit`), 'aria-label': `${label}: unit` },
      UNITS.map((u) => h('option', { value: u, selected: u === cur.unit }, u)));
    const update = () => {
      const t = num.value.trim();
      set(t === '' ? undefined : { [unit.value]: NUMBER_RE.test(t) ? Number(t) : t });
    };
    num.addEventListener('input', update);
    unit.addEventListener('change', update);
    return h('div', { class: 'field', 'data-path': path },
      h('span', { class: 'label', id: idFor(i, `p-${name}-label`) }, label),
      h('div', { class: 'duration', role: 'group', 'aria-labelledby': idFor(i, `p-${name}-label`) }, num, unit),
      hint ? h('span', { class: 'hint' }, hint) : null);
  }

  function delayInput(action, i) {
    return durationControls(i, 'delay', () => action.params, (v) => { action.params = v || {}; },
      'Wait', 'persisted: survives restarts', `/actions/${i}/params/${Object.keys(action.params)[0] || 'minutes'}`);
  }

  function paramInput(action, i, p) {
    const path = `/actions/${i}/params/${p.name}`;
    const id = idFor(i, `p-${p.name}`);
    const label = `${p.name.replace(/_/g, ' ')}${p.required ? ' (required)' : ''}`;
    const hint = [p.description, p.default !== undefined ? `default ${JSON.stringify(p.default)}` : null].filter(Boolean).join('; ');
    const v = action.params[p.name];
    const wrap = (control) => h('div', { class: 'field', 'data-path': path },
      h('label', { for: id }, label), control, hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null);
    const described = hint ? `${id}-hint` : null;
    // A team, agent, status, endpoint or provider: picked by name from the CRM's records.
    const options = actionOptions(ctx.crm, action.type, p.name, action.params);
    if (options?.length) {
      return wrap(pickerControl({
        id, options, value: v, label, describedBy: described, numeric: p.type === 'id' || p.type === 'integer',
        set: (x) => {
          setParam(action, p.name, x);
          if (action.type === 'set_status' && p.name === 'type') render(id); // its statuses follow
        },
      }));
    }
    switch (p.type) {
      case 'duration':
        return durationControls(i, p.name, () => v, (x) => setParam(action, p.name, x), label, p.description, path);
      case 'boolean':
        return wrap(h('select', { id, 'aria-describedby': described, onchange: (e) => setParam(action, p.name, e.target.value === '' ? undefined : e.target.value === 'true') },
          h('option', { value: '', selected: v === undefined }, '— choose —'),
          h('option', { value: 'true', selected: v === true }, 'true'),
          h('option', { value: 'false', selected: v === false }, 'false')));
      case 'id':
      case 'integer':
        return wrap(h('input', {
          id, type: 'text', inputmode: 'numeric', value: v === undefined ? '' : String(v), 'aria-describedby': described,
          placeholder: p.default !== undefined ? String(p.default) : '',
          oninput: (e) => { const t = e.target.value.trim(); setParam(action, p.name, NUMBER_RE.test(t) ? Number(t) : t); },
        }));
      // A journey's nested conditions and actions are edited as JSON for now.
      case 'conditions':
      case 'actions':
      case 'paths':
      case 'json': {
        action.__raw = action.__raw || {};
        if (!(p.name in action.__raw)) action.__raw[p.name] = v === undefined ? '' : JSON.stringify(v, null, 2);
        return wrap(h('textarea', {
          id, rows: 4, spellcheck: 'false', class: 'code', 'aria-describedby': described, value: action.__raw[p.name],
          oninput: (e) => { action.__raw[p.name] = e.target.value; },
        }));
      }
      case 'headers': {
        action.__headers = action.__headers || {};
        const rows = action.__headers[p.name] = action.__headers[p.name] || Object.entries(v || {});
        const list = h('div', { class: 'kv', role: 'group', 'aria-labelledby': `${id}-label`, 'data-path': path },
          h('span', { class: 'label', id: `${id}-label` }, `${label}`),
          rows.length ? h('ul', {}, rows.map((row, r) => h('li', {},
            h('input', { id: `${id}-${r}-k`, type: 'text', value: row[0], 'aria-label': `Header ${r + 1} name`, placeholder: 'X-Header', oninput: (e) => { row[0] = e.target.value; } }),
            h('input', { id: `${id}-${r}-v`, type: 'text', value: row[1], 'aria-label': `Header ${r + 1} value`, placeholder: 'value (template)', oninput: (e) => { row[1] = e.target.value; } }),
            h('button', { type: 'button', class: 'icon danger', 'aria-label': `Remove header ${r + 1}`, title: 'Remove', onclick: () => { rows.splice(r, 1); render(`${id}-add`); } }, '×')))) : null,
          h('button', { type: 'button', id: `${id}-add`, onclick: () => { rows.push(['', '']); render(`${id}-${rows.length - 1}-k`); } }, 'Add header'),
          hint ? h('span', { class: 'hint' }, hint) : null);
        return list;
      }
      case 'template':
        if (LONG_TEXT.has(p.name)) {
          return wrap(h('textarea', { id, rows: 2, 'aria-describedby': described, value: v ?? '', oninput: (e) => setParam(action, p.name, e.target.value) }));
        }
        // fall through
      default:
        return wrap(h('input', {
          id, type: p.type === 'url' ? 'url' : 'text', value: v ?? '', 'aria-describedby': described, spellcheck: p.type === 'template' ? 'true' : 'false',
          oninput: (e) => setParam(action, p.name, e.target.value),
        }));
    }
  }

  function rawParams(action, i) {
    const id = idFor(i, 'raw');
    action.__raw = action.__raw || { __all: JSON.stringify(action.params, null, 2) };
    return h('div', { class: 'field', 'data-path': `/actions/${i}/params` },
      h('label', { for: id }, 'params (JSON)'),
      h('textarea', { id, rows: 3, class: 'code', value: action.__raw.__all, oninput: (e) => { action.__raw.__all = e.target.value; } }));
  }

  render();
  return { el, render };
}

/** The API form of the chain, and local problems (unparseable JSON) with their paths. */
export function buildActions(actions) {
  const problems = [];
  const out = actions.map((a, i) => {
    let params = { ...a.params };
    if (a.__raw) {
      for (const [name, text] of Object.entries(a.__raw)) {
        const path = name === '__all' ? `/actions/${i}/params` : `/actions/${i}/params/${name}`;
        if (name !== '__all') delete params[name];
        if (text.trim() === '') { if (name === '__all') params = {}; continue; }
        try {
          const parsed = JSON.parse(text);
          if (name === '__all') params = parsed; else params[name] = parsed;
        } catch (e) {
          problems.push({ path, message: `not valid JSON: ${e.message}` });
        }
      }
    }
    if (a.__headers) {
      for (const [name, rows] of Object.entries(a.__headers)) {
        const filled = rows.filter(([k, v]) => k.trim() || v.trim());
        if (!filled.length) { delete params[name]; continue; }
        const obj = {};
        filled.forEach(([k, v], r) => {
          if (!k.trim()) problems.push({ path: `/actions/${i}/params/${name}`, message: `header ${r + 1} has no name` });
          obj[k.trim()] = v;
        });
        params[name] = obj;
      }
    }
    // The step's own keys beside type and params (name, on_error, transactional) go back
    // as they came; keys starting with __ are the form's.
    const kept = Object.fromEntries(Object.entries(a).filter(([k]) => !k.startsWith('__') && k !== 'type' && k !== 'params'));
    return { type: a.type, ...kept, params };
  });
  return { actions: out, problems };
}
