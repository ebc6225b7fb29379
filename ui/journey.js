// The parts of a step that make a journey, for the action tree editor (actions.js): a
// branch's paths (each a `when` tree and a nested list) and its `otherwise`, a split's
// paths (each a percent of the customers and a nested list, the percents adding up to
// 100), a wait's awaited event type, conditions and outcome lists, and a named webhook's
// `save` map.
// Conditions are edited with the workflow's own editor (conditions.js), offered the
// fields the engine lets them read there: in a branch, the trigger's `event.*`, the
// customer and `steps.<name>.*` of the named steps before; in a wait, the awaited event
// as `event.*`, the run's trigger as `trigger.*`, the customer and those steps.
// Nested lists are drawn by the tree editor itself (ctx.list), so one list editor serves
// every level.

import { h, confirmDialog } from './dom.js';
import { conditionsEditor, normalizeRoot } from './conditions.js';
import { withCrmOptions } from './pickers.js';
import { listPathOf, namedBefore, pointerOf } from './tree.js';

const OTHER = '__other__';
const SAVE_PREFIX = 'customer.custom.';

/** The fields of an event type: its own (event.*) and the customer's, as the schema lists them. */
export function fieldsOf(schema, type) {
  return (schema.triggers.find((t) => t.name === type) || schema.other_trigger).fields;
}

/**
 * Where an event field sits in the event's data: `event.amount` is `amount`,
 * `transaction.id` is `transaction.id`; null for the customer's fields.
 */
function dataPath(path) {
  if (path.startsWith('customer.')) return null;
  return path.startsWith('event.') ? path.slice('event.'.length) : path;
}

/** The event fields of `type`, moved under `prefix` (`trigger.`, `steps.deposit.event.`). */
function eventFieldsUnder(schema, type, prefix, labelPrefix) {
  return fieldsOf(schema, type)
    .filter((f) => dataPath(f.path) !== null)
    .map((f) => ({ ...f, path: prefix + dataPath(f.path), label: `${labelPrefix}${f.label}` }));
}

/** What earlier named steps make readable: a wait's outcome and awaited event. */
function stepFields(schema, named) {
  return named.filter(({ step }) => step.type === 'wait_for_event').flatMap(({ name, step }) => [
    { path: `steps.${name}.timed_out`, label: `${name}: timed out`, type: 'boolean' },
    ...eventFieldsUnder(schema, step.params?.event, `steps.${name}.event.`, `${name}: `),
  ]);
}

/** The fields a branch's `when` may read at `stepPath`. */
function branchFields(ctx, stepPath) {
  const { schema, crm } = ctx;
  return withCrmOptions([...fieldsOf(schema, ctx.trigger()), ...stepFields(schema, namedBefore(ctx.root(), stepPath))], crm);
}

/** The fields a wait's conditions may read at `stepPath`, awaiting `awaited`. */
function waitFields(ctx, stepPath, awaited) {
  const { schema, crm } = ctx;
  const trigger = eventFieldsUnder(schema, ctx.trigger(), 'trigger.', 'trigger: ');
  return withCrmOptions([...fieldsOf(schema, awaited), ...trigger, ...stepFields(schema, namedBefore(ctx.root(), stepPath))], crm);
}

/**
 * Makes a step's journey parts editable in place: conditions as groups (a lone rule is
 * kept lone on the way out), absent optional parts marked so that an untouched step is
 * saved as it came. Nested steps are prepared too.
 */
export function prepareStep(step) {
  const p = step.params = step.params && typeof step.params === 'object' ? step.params : {};
  if (step.type === 'branch') {
    if (!Array.isArray(p.paths) || !p.paths.length) p.paths = [newPath()];
    p.paths = p.paths.map((path) => ({ ...path, when: normalizeRoot(path?.when), actions: Array.isArray(path?.actions) ? path.actions : [] }));
    for (const path of p.paths) path.actions.forEach(prepareStep);
    if (Array.isArray(p.otherwise)) p.otherwise.forEach(prepareStep);
  } else if (step.type === 'split') {
    // a new split starts as an even A/B test; a stored one keeps its paths as they came
    if (!Array.isArray(p.paths) || !p.paths.length) p.paths = [{ percent: 50, actions: [] }, { percent: 50, actions: [] }];
    p.paths = p.paths.map((path) => ({ ...path, actions: Array.isArray(path?.actions) ? path.actions : [] }));
    for (const path of p.paths) path.actions.forEach(prepareStep);
  } else if (step.type === 'wait_for_event') {
    p.conditions = p.conditions === undefined ? { match: 'all', rules: [], __optional: true } : normalizeRoot(p.conditions);
    step.__absent = ['on_event', 'on_timeout'].filter((k) => !Array.isArray(p[k]));
    for (const k of step.__absent) p[k] = [];
    p.on_event.forEach(prepareStep);
    p.on_timeout.forEach(prepareStep);
  }
  return step;
}

const newPath = () => ({ when: { match: 'all', rules: [] }, actions: [] });

/**
 * The awaited event type of a wait: the known triggers, or another type typed in (as the
 * workflow's trigger picker offers). `set(type)` keeps it; a type picked from the list
 * also calls `redraw()` (the conditions' fields follow it). A typed one does not: a
 * redraw on blur would swallow the click that caused the blur.
 */
export function eventTypePicker({ id, value, triggers, set, redraw, describedBy, typedLabel = 'Awaited event type (typed)' }) {
  const known = triggers.some((t) => t.name === value);
  const typed = h('input', {
    id: `${id}-other`, type: 'text', value: known ? '' : value ?? '', spellcheck: 'false', hidden: known || !value,
    'aria-label': typedLabel, placeholder: 'e.g. bonus.granted',
    oninput: (e) => set(e.target.value.trim() || undefined),
  });
  const sel = h('select', {
    id, 'aria-describedby': describedBy,
    onchange: (e) => {
      if (e.target.value === OTHER) { typed.hidden = false; typed.focus(); return; }
      set(e.target.value || undefined);
      redraw();
    },
  },
  h('option', { value: '', selected: value === undefined || value === '' }, '— choose —'),
  triggers.map((t) => h('option', { value: t.name, selected: t.name === value }, `${t.label} (${t.name})`)),
  h('option', { value: OTHER, selected: !known && Boolean(value) }, 'Another event type (type its name)…'));
  return h('div', { class: 'picker' }, sel, typed);
}

/**
 * A branch's paths and otherwise, or a wait's conditions and outcomes, for the step at
 * `stepPath`. ctx: { schema, crm, trigger(), root(): the workflow's actions,
 * list(list, listPath): the nested list editor, render(focusId), idFor(path, part) }.
 */
export function journeyParts(step, stepPath, ctx) {
  if (step.type === 'branch') return branchParts(step, stepPath, ctx);
  if (step.type === 'split') return splitParts(step, stepPath, ctx);
  if (step.type === 'wait_for_event') return waitParts(step, stepPath, ctx);
  return null;
}

function conditions(ctx, { root, path, fields, label, empty }) {
  return conditionsEditor({ root: () => root, fields: () => fields, schema: ctx.schema, path, label, empty, fieldValues: true }).el;
}

/** One arm of a branch or a wait; `path` only where no control inside carries it. */
function arm(title, path, ...children) {
  return h('fieldset', { class: 'arm', 'data-path': path }, h('legend', {}, title), children);
}

function branchParts(step, stepPath, ctx) {
  const p = step.params;
  const at = pointerOf(stepPath);
  const id = (part) => ctx.idFor(stepPath, part);
  const fields = branchFields(ctx, stepPath);
  const paths = p.paths.map((path, k) => {
    const n = k + 1;
    const swap = (d) => {
      [p.paths[k], p.paths[k + d]] = [p.paths[k + d], p.paths[k]];
      ctx.render(id(`path-${k + d}-${d < 0 ? 'up' : 'down'}`));
    };
    const remove = async () => {
      if (path.actions.length && !await confirmDialog(`Remove path ${n}?`, `Path ${n} and its ${path.actions.length} step(s) are removed from the draft.`, 'Remove path')) return;
      p.paths.splice(k, 1);
      ctx.render(id('add-path'));
    };
    return arm(`Path ${n}`, `${at}/params/paths/${k}`,
      h('div', { class: 'arm-tools' },
        h('button', { type: 'button', class: 'icon', id: id(`path-${k}-up`), disabled: k === 0, 'aria-label': `Move path ${n} up`, title: 'Move up', onclick: () => swap(-1) }, '↑'),
        h('button', { type: 'button', class: 'icon', id: id(`path-${k}-down`), disabled: k === p.paths.length - 1, 'aria-label': `Move path ${n} down`, title: 'Move down', onclick: () => swap(1) }, '↓'),
        h('button', { type: 'button', class: 'danger', id: id(`path-${k}-remove`), disabled: p.paths.length === 1, 'aria-label': `Remove path ${n}`, onclick: remove }, 'Remove path')),
      conditions(ctx, {
        root: path.when, path: `${at}/params/paths/${k}/when`, fields,
        label: `Path ${n} is taken when`, empty: 'No conditions: taken whenever no earlier path is.',
      }),
      ctx.list(path.actions, listPathOf(stepPath, `paths.${k}`)));
  });
  const otherwise = Array.isArray(p.otherwise)
    ? arm('Otherwise', null,
      h('p', { class: 'hint' }, 'When no path’s conditions hold.'),
      ctx.list(p.otherwise, listPathOf(stepPath, 'otherwise')),
      h('button', {
        type: 'button', class: 'danger', id: id('remove-otherwise'),
        onclick: async () => {
          if (p.otherwise.length && !await confirmDialog('Remove otherwise?', `Its ${p.otherwise.length} step(s) are removed from the draft.`, 'Remove')) return;
          delete p.otherwise;
          ctx.render(id('add-otherwise'));
        },
      }, 'Remove otherwise'))
    : null;
  return h('div', { class: 'journey branch', 'data-path': `${at}/params/paths` },
    paths,
    h('div', { class: 'buttons' },
      h('button', { type: 'button', id: id('add-path'), onclick: () => { p.paths.push(newPath()); ctx.render(ctx.idFor(stepPath, `path-${p.paths.length - 1}-up`)); } }, 'Add path'),
      otherwise ? null : h('button', { type: 'button', id: id('add-otherwise'), onclick: () => { p.otherwise = []; ctx.render(id('remove-otherwise')); } }, 'Add otherwise')),
    otherwise);
}

/** The percents of a split's paths as numbers (NaN where one is not a whole number 0..100). */
export function splitPercents(paths) {
  return (paths || []).map((path) => {
    const v = path?.percent;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    return Number.isInteger(n) && n >= 0 && n <= 100 ? n : NaN;
  });
}

/**
 * What the percents of a split add up to, said for its sum line: { ok, text }. Not 100
 * (or a percent that is not a whole number from 0 to 100) is an error the engine refuses.
 */
export function splitSum(paths) {
  const percents = splitPercents(paths);
  const bad = percents.findIndex((n) => Number.isNaN(n));
  if (bad >= 0) return { ok: false, text: `Path ${bad + 1}: a percent is a whole number from 0 to 100.` };
  const sum = percents.reduce((a, b) => a + b, 0);
  if (sum === 100) return { ok: true, text: 'Total: 100%.' };
  return { ok: false, text: `The percents add up to ${sum}%, not 100%: ${sum < 100 ? `${100 - sum} left to give` : `${sum - 100} too many`}.` };
}

/**
 * A split's paths: each with the percent of customers it takes (a stable hash of the
 * customer, the workflow and the step picks it) and its own list; the running sum above
 * them, with an error while it is not 100. "Split evenly" shares 100 between the paths.
 */
function splitParts(step, stepPath, ctx) {
  const p = step.params;
  const at = pointerOf(stepPath);
  const id = (part) => ctx.idFor(stepPath, part);
  const sum = h('p', { id: id('split-sum'), 'aria-live': 'polite', 'data-path': `${at}/params/paths` });
  const showSum = () => {
    const { ok, text } = splitSum(p.paths);
    sum.textContent = text;
    sum.className = ok ? 'split-sum ok' : 'split-sum error-text';
    sum.dataset.ok = String(ok);
    for (const input of inputs) {
      if (ok) input.removeAttribute('aria-invalid');
      else input.setAttribute('aria-invalid', 'true');
    }
  };
  const inputs = [];
  const paths = p.paths.map((path, k) => {
    const n = k + 1;
    const swap = (d) => {
      [p.paths[k], p.paths[k + d]] = [p.paths[k + d], p.paths[k]];
      ctx.render(id(`path-${k + d}-${d < 0 ? 'up' : 'down'}`));
    };
    const remove = async () => {
      if (path.actions.length && !await confirmDialog(`Remove path ${n}?`, `Path ${n} and its ${path.actions.length} step(s) are removed from the draft.`, 'Remove path')) return;
      p.paths.splice(k, 1);
      ctx.render(id('add-path'));
    };
    const percentId = id(`path-${k}-percent`);
    const percent = h('input', {
      id: percentId, type: 'number', min: '0', max: '100', step: '1', inputmode: 'numeric', class: 'percent',
      value: path.percent === undefined ? '' : String(path.percent), 'aria-describedby': id('split-sum'),
      oninput: (e) => {
        const t = e.target.value.trim();
        if (t === '') delete path.percent;
        else path.percent = /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
        showSum();
      },
    });
    inputs.push(percent);
    return arm(`Path ${n}`, null,
      h('div', { class: 'arm-tools' },
        h('div', { class: 'field inline percent-field', 'data-path': `${at}/params/paths/${k}/percent` },
          h('label', { for: percentId }, `Path ${n} takes`), percent, h('span', { 'aria-hidden': 'true' }, '% of the customers')),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'icon', id: id(`path-${k}-up`), disabled: k === 0, 'aria-label': `Move path ${n} up`, title: 'Move up', onclick: () => swap(-1) }, '↑'),
        h('button', { type: 'button', class: 'icon', id: id(`path-${k}-down`), disabled: k === p.paths.length - 1, 'aria-label': `Move path ${n} down`, title: 'Move down', onclick: () => swap(1) }, '↓'),
        h('button', { type: 'button', class: 'danger', id: id(`path-${k}-remove`), disabled: p.paths.length === 1, 'aria-label': `Remove path ${n}`, onclick: remove }, 'Remove path')),
      ctx.list(path.actions, listPathOf(stepPath, `paths.${k}`)));
  });
  const addPath = () => {
    // the new path gets what the others leave of 100 (0 when they take it all)
    const given = splitPercents(p.paths).reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0);
    p.paths.push({ percent: Math.max(0, 100 - given), actions: [] });
    ctx.render(id(`path-${p.paths.length - 1}-percent`));
  };
  const even = () => {
    const n = p.paths.length;
    p.paths.forEach((path, k) => { path.percent = Math.floor(100 / n) + (k < 100 % n ? 1 : 0); });
    ctx.render(id('split-even'));
  };
  // the sum first: it is in sight while the first percents are typed
  const el = h('div', { class: 'journey split' },
    sum,
    paths,
    h('div', { class: 'buttons' },
      h('button', { type: 'button', id: id('add-path'), onclick: addPath }, 'Add path'),
      h('button', { type: 'button', id: id('split-even'), onclick: even }, 'Split evenly')));
  showSum();
  return el;
}

function waitParts(step, stepPath, ctx) {
  const p = step.params;
  const at = pointerOf(stepPath);
  const awaited = p.event || 'the event';
  return h('div', { class: 'journey wait' },
    arm('Conditions on the awaited event', null,
      conditions(ctx, {
        root: p.conditions, path: `${at}/params/conditions`, fields: waitFields(ctx, stepPath, p.event),
        label: 'The awaited event counts when', empty: `No conditions: any ${awaited} of the customer counts.`,
      })),
    arm(`On event: ${awaited} arrived`, null, ctx.list(p.on_event, listPathOf(stepPath, 'on_event'))),
    arm('On timeout: it did not come in time', null, ctx.list(p.on_timeout, listPathOf(stepPath, 'on_timeout'))));
}

/**
 * The `save` map of a webhook step (it needs a name): rows of customer.custom.<field> ←
 * JSON pointer into its answer. Rows are kept on the step (`__save`) until the draft is
 * built.
 */
export function saveEditor(step, stepPath, ctx) {
  const at = `${pointerOf(stepPath)}/save`;
  const id = (part) => ctx.idFor(stepPath, part);
  const rows = step.__save = step.__save || Object.entries(step.save || {}).map(([k, v]) => [k.startsWith(SAVE_PREFIX) ? k.slice(SAVE_PREFIX.length) : k, v]);
  return h('div', { class: 'kv save', role: 'group', 'aria-labelledby': id('save-label'), 'data-path': at },
    h('span', { class: 'label', id: id('save-label') }, 'Save from the answer into the customer'),
    rows.length ? h('ul', {}, rows.map((row, r) => h('li', { 'data-path': `${at}/${SAVE_PREFIX}${row[0]}` },
      h('span', { class: 'muted small' }, SAVE_PREFIX),
      h('input', { id: id(`save-${r}-field`), type: 'text', value: row[0], 'aria-label': `Save ${r + 1}: custom field`, placeholder: 'field', spellcheck: 'false', oninput: (e) => { row[0] = e.target.value.trim(); } }),
      h('span', { 'aria-hidden': 'true' }, '←'),
      h('input', { id: id(`save-${r}-pointer`), type: 'text', value: row[1], 'aria-label': `Save ${r + 1}: JSON pointer into the answer`, placeholder: '/account/id', spellcheck: 'false', oninput: (e) => { row[1] = e.target.value.trim(); } }),
      h('button', { type: 'button', class: 'icon danger', 'aria-label': `Remove save ${r + 1}`, title: 'Remove', onclick: () => { rows.splice(r, 1); ctx.render(id('save-add')); } }, '×')))) : null,
    h('button', { type: 'button', id: id('save-add'), onclick: () => { rows.push(['', '']); ctx.render(id(`save-${rows.length - 1}-field`)); } }, 'Add a field to save'),
    h('span', { class: 'hint' }, 'Only a named step keeps its answer (as steps.<name>.response); a pointer that finds nothing saves null.'));
}

/** The `save` map of rows, or undefined when there are none; problems for rows without a field. */
export function buildSave(rows, at, problems) {
  const filled = rows.filter(([k, v]) => k || v);
  if (!filled.length) return undefined;
  const out = {};
  filled.forEach(([k, v], r) => {
    if (!k) problems.push({ path: at, message: `save ${r + 1} names no custom field` });
    out[SAVE_PREFIX + k] = v;
  });
  return out;
}
