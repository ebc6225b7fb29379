// The action tree editor: a workflow's steps as nested lists (a branch's paths and
// otherwise, a split's paths, a wait's outcomes), one form per step built from the
// action's param schema in GET /api/v1/schema: durations as number + unit, webhook
// headers as key/value rows, webhook body as JSON text; a branch's, a split's and a
// wait's own parts, and a webhook's `save`, come from journey.js. Steps are added,
// removed, moved up and down and moved to any other list ("Move to…"); any may carry a
// name. A step's JSON stays editable as an advanced fallback. Edits `actions` in place;
// `buildActions` turns the form state into what the API takes, and gives an untouched
// workflow back as it came.
// Ids and data-path follow the step's place: step "0.on_event.1" has ids a-0-on_event-1-*
// and the pointer /actions/0/params/on_event/1; the workflow's own steps stay a-<i>-*.

import { h, confirmDialog } from './dom.js';
import { actionOptions, pickerControl } from './pickers.js';
import { cleanConditions } from './conditions.js';
import { allLists, blocks, childPath, labelOf, pathOf, pointerOf } from './tree.js';
import { buildSave, eventTypePicker, journeyParts, prepareStep, saveEditor } from './journey.js';

const UNITS = ['minutes', 'hours', 'days'];
const NUMBER_RE = /^\s*-?\d+(\.\d+)?\s*$/;
const LONG_TEXT = new Set(['body', 'text']);
/** Param types journey.js draws (a branch's paths and otherwise, a wait's conditions and outcomes). */
const NESTED = new Set(['conditions', 'actions', 'paths']);
/** Params journey.js draws whatever type the schema gives them (a split's paths). */
const OWN_PARAMS = { branch: ['paths', 'otherwise'], split: ['paths'] };
const drawnByJourney = (type, p) => NESTED.has(p.type) || Boolean(OWN_PARAMS[type]?.includes(p.name));
const idFor = (path, part) => `a-${path.replace(/\./g, '-')}-${part}`;
/** The ids of a list's "new action" select and button; the workflow's own list keeps its old ones. */
const addIds = (listPath) => (listPath === ''
  ? ['add-action-type', 'add-action']
  : [`add-action-type-${listPath.replace(/\./g, '-')}`, `add-action-${listPath.replace(/\./g, '-')}`]);

const isDelayLike = (a) => a.params.length === 3 && UNITS.every((u) => a.params.some((p) => p.name === u));

function durationOf(v) {
  if (v && typeof v === 'object') {
    for (const u of UNITS) if (u in v) return { n: v[u], unit: u };
  }
  return { n: '', unit: 'days' };
}

export function actionsEditor(ctx) {
  // ctx: { actions: () => [...], schema, crm: the records pickers offer (pickers.js) or null,
  //   trigger: () => the workflow's trigger (what journey conditions read as event.*) }
  const el = h('div', { class: 'actions-editor' });
  const catalogue = ctx.schema.actions;
  const byType = Object.fromEntries(catalogue.map((a) => [a.type, a]));
  ctx.actions().forEach(prepareStep);
  const parts = { schema: ctx.schema, crm: ctx.crm, trigger: ctx.trigger, root: ctx.actions, list: listView, render, idFor };

  function render(focusId) {
    const active = focusId || document.activeElement?.id;
    el.replaceChildren(listView(ctx.actions(), ''));
    if (active) document.getElementById(active)?.focus();
  }

  /** One list of steps with its "new action" controls; nested lists are drawn by the journey parts. */
  function listView(list, listPath) {
    const [selId, btnId] = addIds(listPath);
    const where = labelOf(listPath);
    const addSel = h('select', { id: selId }, catalogue.map((a) => h('option', { value: a.type }, a.label)));
    return h('div', { class: 'action-tree' },
      list.length
        ? h('ol', { class: 'action-list', 'data-path': pointerOf(listPath) }, list.map((a, i) => h('li', {}, actionForm(a, list, i, listPath))))
        : h('p', { class: 'muted', 'data-path': pointerOf(listPath) }, where ? 'No steps here yet.' : 'No actions yet: a workflow needs at least one.'),
      h('div', { class: 'add-action' },
        h('label', { for: addSel.id }, where ? `New action in step ${where}` : 'New action'), addSel,
        h('button', {
          type: 'button', id: btnId, 'aria-label': where ? `Add action to step ${where}` : null,
          onclick: () => {
            list.push(prepareStep({ type: addSel.value, params: {} }));
            render(idFor(childPath(listPath, list.length - 1), 'type'));
          },
        }, 'Add action')));
  }

  function actionForm(action, list, i, listPath) {
    const path = childPath(listPath, i);
    const at = pointerOf(path);
    const spec = byType[action.type];
    const n = labelOf(path);
    const typeSel = h('select', {
      id: idFor(path, 'type'),
      onchange: async (e) => {
        const nested = blocks(action).reduce((k, b) => k + (b.list?.length || 0), 0);
        if (nested && !await confirmDialog(`Change step ${n}?`, `Its ${nested} nested step(s) are removed from the draft.`, 'Change it')) {
          e.target.value = action.type;
          return;
        }
        const next = byType[e.target.value];
        const keep = {};
        for (const p of next?.params || []) if (p.name in action.params && !drawnByJourney(e.target.value, p)) keep[p.name] = action.params[p.name];
        action.type = e.target.value;
        action.params = keep;
        for (const k of ['__raw', '__absent', '__headers']) delete action[k];
        if (action.type !== 'webhook') { delete action.save; delete action.__save; }
        prepareStep(action);
        render(idFor(path, 'type'));
      },
    }, catalogue.map((a) => h('option', { value: a.type, selected: a.type === action.type }, a.label)));
    if (!spec) typeSel.prepend(h('option', { value: action.type, selected: true }, `${action.type} (unknown)`));
    const move = (d) => {
      [list[i], list[i + d]] = [list[i + d], list[i]];
      const to = childPath(listPath, i + d);
      render(idFor(to, d < 0 ? 'up' : 'down'));
      if (!document.getElementById(idFor(to, d < 0 ? 'up' : 'down'))) document.getElementById(idFor(to, 'type'))?.focus();
    };
    const rules = (spec?.rules || []).map((r) => h('p', { class: 'hint' },
      r.rule === 'exactly_one' ? `Give exactly one of: ${r.params.join(', ')}.` : r.rule === 'at_least_one' ? `Give at least one of: ${r.params.join(', ')}.` : `${r.rule}: ${r.params.join(', ')}`));
    const simple = spec ? spec.params.filter((p) => !drawnByJourney(action.type, p)) : [];
    return h('section', { class: `action action-${action.type}`, 'data-path': at, 'aria-labelledby': idFor(path, 'heading') },
      h('div', { class: 'action-head' },
        h('h4', { id: idFor(path, 'heading') }, `Step ${n}`),
        h('label', { for: typeSel.id, class: 'sr-only' }, `Action type of step ${n}`),
        h('div', { 'data-path': `${at}/type` }, typeSel),
        nameInput(action, path),
        h('span', { class: 'spacer' }),
        h('div', { class: 'step-tools' },
          h('button', { type: 'button', class: 'icon', id: idFor(path, 'up'), disabled: i === 0, 'aria-label': `Move step ${n} up`, title: 'Move up', onclick: () => move(-1) }, '↑'),
          h('button', { type: 'button', class: 'icon', id: idFor(path, 'down'), disabled: i === list.length - 1, 'aria-label': `Move step ${n} down`, title: 'Move down', onclick: () => move(1) }, '↓'),
          moveTo(action, list, i, listPath),
          h('button', {
            type: 'button', class: 'danger', id: idFor(path, 'remove'), 'aria-label': `Remove step ${n}`,
            onclick: () => { list.splice(i, 1); render(list.length ? idFor(childPath(listPath, Math.min(i, list.length - 1)), 'type') : addIds(listPath)[0]); },
          }, 'Remove'))),
      spec?.description ? h('p', { class: 'hint' }, spec.description, spec.external ? ' (external: delivered through the outbox, retried)' : '') : null,
      h('div', { class: 'params', 'data-path': `${at}/params` },
        spec ? (isDelayLike(spec) ? delayInput(action, path) : simple.map((p) => paramInput(action, path, p))) : rawParams(action, path),
        rules),
      action.type === 'webhook' ? saveEditor(action, path, parts) : null,
      journeyParts(action, path, parts),
      advanced(action, list, i, path));
  }

  /** "Move to…": the step goes to the end of another list (not one inside itself). */
  function moveTo(action, list, i, listPath) {
    const path = childPath(listPath, i);
    const targets = allLists(ctx.actions()).filter((l) => l.path !== listPath && !l.path.startsWith(`${path}.`));
    if (!targets.length) return null;
    return h('select', {
      id: idFor(path, 'move-to'), 'aria-label': `Move step ${labelOf(path)} to another list`,
      onchange: (e) => {
        const target = targets.find((l) => l.path === e.target.value);
        if (!target) return;
        list.splice(i, 1);
        target.list.push(action);
        render(idFor(pathOf(ctx.actions(), action), 'type'));
      },
    }, h('option', { value: '', selected: true }, 'Move to…'),
    targets.map((l) => h('option', { value: l.path }, l.path === '' ? 'the workflow’s own list' : `step ${labelOf(l.path)}`)));
  }

  /** The step's name, beside its type: snake_case, what later steps read as steps.<name>.* */
  function nameInput(action, path) {
    const id = idFor(path, 'name');
    const required = action.type === 'wait_for_event';
    // No redraw as it is typed: the fields that read steps.<name> are offered at the next one.
    return h('div', { class: 'step-name', 'data-path': `${pointerOf(path)}/name` },
      h('label', { for: id, class: 'sr-only' }, `Name of step ${labelOf(path)} (${required ? 'required' : 'optional'})`),
      h('input', {
        id, type: 'text', value: action.name ?? '', spellcheck: 'false', pattern: '[a-z][a-z0-9_]*',
        placeholder: required ? 'name (required)' : 'name (optional)',
        title: 'snake_case, e.g. deposit; later steps read what it did as steps.<name>.*',
        oninput: (e) => { const v = e.target.value.trim(); if (v) action.name = v; else delete action.name; },
      }));
  }

  /** The step as JSON, edited and applied whole: for what the form does not offer. */
  function advanced(action, list, i, path) {
    const id = idFor(path, 'json');
    const text = h('textarea', { id, rows: 6, class: 'code', spellcheck: 'false' });
    const error = h('p', { class: 'error-text', id: `${id}-error`, role: 'alert', hidden: true });
    const apply = () => {
      let step;
      try {
        step = JSON.parse(text.value);
      } catch (e) {
        error.textContent = `not valid JSON: ${e.message}`;
        error.hidden = false;
        return;
      }
      if (!step || typeof step !== 'object' || Array.isArray(step) || typeof step.type !== 'string') {
        error.textContent = 'expected a step: {"type": ..., "params": {...}}';
        error.hidden = false;
        return;
      }
      list[i] = prepareStep(step);
      render(idFor(path, 'type'));
    };
    const details = h('details', { class: 'advanced' },
      h('summary', {}, 'Advanced: this step as JSON'),
      h('label', { for: id, class: 'sr-only' }, `Step ${labelOf(path)} as JSON`), text, error,
      h('button', { type: 'button', id: `${id}-apply`, onclick: apply }, 'Apply JSON'));
    details.addEventListener('toggle', () => {
      if (details.open) text.value = JSON.stringify(buildStep(action, path, []), null, 2);
    });
    return details;
  }

  function setParam(action, name, v) {
    if (v === '' || v === undefined) delete action.params[name];
    else action.params[name] = v;
  }

  function durationControls(step, name, get, set, label, hint, path) {
    const cur = durationOf(get());
    const num = h('input', {
      id: idFor(step, `p-${name}-n`), type: 'number', min: '1', step: '1', value: cur.n === '' ? '' : String(cur.n), inputmode: 'numeric',
      'aria-label': `${label}: amount`,
    });
    const unit = h('select', { id: idFor(step, `p-${name}-unit`), 'aria-label': `${label}: unit` },
      UNITS.map((u) => h('option', { value: u, selected: u === cur.unit }, u)));
    const update = () => {
      const t = num.value.trim();
      set(t === '' ? undefined : { [unit.value]: NUMBER_RE.test(t) ? Number(t) : t });
    };
    num.addEventListener('input', update);
    unit.addEventListener('change', update);
    return h('div', { class: 'field', 'data-path': path },
      h('span', { class: 'label', id: idFor(step, `p-${name}-label`) }, label),
      h('div', { class: 'duration', role: 'group', 'aria-labelledby': idFor(step, `p-${name}-label`) }, num, unit),
      hint ? h('span', { class: 'hint' }, hint) : null);
  }

  function delayInput(action, step) {
    return durationControls(step, 'delay', () => action.params, (v) => { action.params = v || {}; },
      'Wait', 'persisted: survives restarts', `${pointerOf(step)}/params/${Object.keys(action.params)[0] || 'minutes'}`);
  }

  function paramInput(action, step, p) {
    const path = `${pointerOf(step)}/params/${p.name}`;
    const id = idFor(step, `p-${p.name}`);
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
    if (action.type === 'wait_for_event' && p.name === 'event') {
      return wrap(eventTypePicker({ id, value: v, triggers: ctx.schema.triggers, describedBy: described, set: (x) => setParam(action, p.name, x), redraw: () => render(id) }));
    }
    switch (p.type) {
      case 'duration':
        return durationControls(step, p.name, () => v, (x) => setParam(action, p.name, x), label, p.description, path);
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

  function rawParams(action, step) {
    const id = idFor(step, 'raw');
    action.__raw = action.__raw || { __all: JSON.stringify(action.params, null, 2) };
    return h('div', { class: 'field', 'data-path': `${pointerOf(step)}/params` },
      h('label', { for: id }, 'params (JSON)'),
      h('textarea', { id, rows: 3, class: 'code', value: action.__raw.__all, oninput: (e) => { action.__raw.__all = e.target.value; } }));
  }

  render();
  return { el, render };
}

/** The API form of the tree, and local problems (unparseable JSON) with their paths. */
export function buildActions(actions) {
  const problems = [];
  return { actions: buildList(actions, '', problems), problems };
}

function buildList(list, listPath, problems) {
  return list.map((a, i) => buildStep(a, childPath(listPath, i), problems));
}

/** One step as the API takes it; a journey's nested lists and conditions built in turn. */
function buildStep(a, path, problems) {
  const at = pointerOf(path);
  let params = { ...a.params };
  if (a.__raw) {
    for (const [name, text] of Object.entries(a.__raw)) {
      const where = name === '__all' ? `${at}/params` : `${at}/params/${name}`;
      if (name !== '__all') delete params[name];
      if (text.trim() === '') { if (name === '__all') params = {}; continue; }
      try {
        const parsed = JSON.parse(text);
        if (name === '__all') params = parsed; else params[name] = parsed;
      } catch (e) {
        problems.push({ path: where, message: `not valid JSON: ${e.message}` });
      }
    }
  }
  if (a.__headers) {
    for (const [name, rows] of Object.entries(a.__headers)) {
      const filled = rows.filter(([k, v]) => k.trim() || v.trim());
      if (!filled.length) { delete params[name]; continue; }
      const obj = {};
      filled.forEach(([k, v], r) => {
        if (!k.trim()) problems.push({ path: `${at}/params/${name}`, message: `header ${r + 1} has no name` });
        obj[k.trim()] = v;
      });
      params[name] = obj;
    }
  }
  if (a.type === 'branch' && Array.isArray(params.paths)) {
    params.paths = params.paths.map(({ when, actions, ...rest }, k) => ({
      ...rest, when: cleanConditions(when), actions: buildList(actions, `${path}.paths.${k}`, problems),
    }));
    if (Array.isArray(params.otherwise)) params.otherwise = buildList(params.otherwise, `${path}.otherwise`, problems);
  }
  if (a.type === 'split' && Array.isArray(params.paths)) {
    params.paths = params.paths.map(({ actions, ...rest }, k) => ({ ...rest, actions: buildList(actions, `${path}.paths.${k}`, problems) }));
  }
  if (a.type === 'wait_for_event') {
    // Conditions and outcomes the step came without stay out while they are empty.
    const c = params.conditions;
    if (c?.__optional && !c.rules.length) delete params.conditions;
    else if (c) params.conditions = cleanConditions(c);
    for (const k of ['on_event', 'on_timeout']) {
      if (!Array.isArray(params[k])) continue;
      if (!params[k].length && a.__absent?.includes(k)) delete params[k];
      else params[k] = buildList(params[k], `${path}.${k}`, problems);
    }
  }
  // The step's own keys beside type and params (name, on_error, transactional, save) go
  // back as they came; keys starting with __ are the form's, `save` is rebuilt once edited.
  const kept = Object.fromEntries(Object.entries(a).filter(([k]) => !k.startsWith('__') && k !== 'type' && k !== 'params' && !(k === 'save' && a.__save)));
  const out = { type: a.type, ...kept, params };
  if (a.__save) {
    const save = buildSave(a.__save, `${at}/save`, problems);
    if (save) out.save = save;
  }
  return out;
}
