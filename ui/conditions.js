// The condition tree editor: nested all/any groups, `not`, and rules whose field picker,
// operator list and value input follow the field schema of the chosen trigger.
// It edits a condition tree in place (the workflow's `conditions`, or a journey's: a
// branch path's `when`, a wait's `conditions`); every control carries the JSON pointer of
// the value it edits (data-path) so API errors land next to it, and its id is made from
// that pointer, so several trees on one page never share an id.

import { h, newId } from './dom.js';

const NO_VALUE = new Set(['is_empty', 'is_not_empty']);
const LIST_OPS = new Set(['in', 'not_in']);
const NUMERIC_OPS = new Set(['gt', 'gte', 'lt', 'lte', 'between']);
const CUSTOM = '__custom__';
const NUMBER_RE = /^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$/;
/** The operators that may compare a field with another field (journey conditions only). */
const FIELD_OPS = new Set(['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'contains', 'not_contains', 'starts_with', 'ends_with']);

const idFor = (path, part) => 'c' + path.replace(/\//g, '-') + '-' + part;
const isGroup = (n) => n && typeof n === 'object' && 'match' in n;
const isNot = (n) => n && typeof n === 'object' && 'not' in n;
/** A rule value that names another field: `{"field": "trigger.transaction.id"}`. */
const isFieldRef = (v) => Boolean(v) && typeof v === 'object' && !Array.isArray(v) && typeof v.field === 'string';

/**
 * A group root (a single rule or a not at the root is the same as a group of one). A lone
 * node is marked, so that cleanConditions gives it back as it came while it stays alone:
 * loading and saving a workflow unchanged keeps its JSON.
 */
export function normalizeRoot(conditions) {
  if (!conditions || typeof conditions !== 'object' || Object.keys(conditions).length === 0) return { match: 'all', rules: [] };
  if (isGroup(conditions)) return { match: conditions.match, rules: conditions.rules || [] };
  return { match: 'all', rules: [conditions], __lone: true };
}

/**
 * ctx: { root: () => group, fields: () => [{path,label,type,options?}], schema,
 *   path?: the tree's JSON pointer (default /conditions), label?: what the root group
 *   decides, empty?: what no rule means, fieldValues?: rules may compare with another
 *   field (journey conditions) }
 * Returns { el, render(focusId?) }.
 */
export function conditionsEditor(ctx) {
  const el = h('div', { class: 'conditions' });
  const s = ctx.schema;
  const rootPath = ctx.path || '/conditions';
  const opLabel = Object.fromEntries(s.operators.map((o) => [o.name, o.label]));

  function fieldInfo(path) {
    return ctx.fields().find((f) => f.path === path) || null;
  }
  function typeOf(path) {
    return fieldInfo(path)?.type || 'any';
  }
  function opsFor(path) {
    return s.operators_by_type[typeOf(path)] || s.operators_by_type.any;
  }

  function render(focusId) {
    const active = focusId || document.activeElement?.id;
    el.replaceChildren(renderGroup(ctx.root(), rootPath, null));
    if (active) document.getElementById(active)?.focus();
  }

  function coerce(text, path, op) {
    const type = typeOf(path);
    if ((type === 'number' || (type === 'any' && NUMERIC_OPS.has(op))) && NUMBER_RE.test(text)) return Number(text);
    return text;
  }

  function defaultValue(path, op) {
    if (NO_VALUE.has(op)) return undefined;
    if (LIST_OPS.has(op)) return [];
    if (op === 'between') return ['', ''];
    if (typeOf(path) === 'boolean') return true;
    return '';
  }

  // --- nodes ---------------------------------------------------------------------------

  function renderNode(node, path, parent) {
    if (isGroup(node)) return renderGroup(node, path, parent);
    if (isNot(node)) return renderNot(node, path, parent);
    return renderRule(node, path, parent);
  }

  function nodeButtons(node, path, parent, what) {
    if (!parent) return [];
    const buttons = [];
    if (parent.index > 0) buttons.push(h('button', { type: 'button', class: 'icon', id: idFor(path, 'up'), 'aria-label': `Move ${what} up`, title: 'Move up', onclick: () => { parent.move(-1); render(idFor(parent.siblingPath(-1), 'up')); } }, '↑'));
    if (parent.index < parent.count - 1) buttons.push(h('button', { type: 'button', class: 'icon', id: idFor(path, 'down'), 'aria-label': `Move ${what} down`, title: 'Move down', onclick: () => { parent.move(1); render(idFor(parent.siblingPath(1), 'down')); } }, '↓'));
    if (!parent.isNot) buttons.push(h('button', { type: 'button', id: idFor(path, 'negate'), 'aria-label': `Negate ${what} (NOT)`, onclick: () => { parent.replace({ not: node }); render(idFor(path, 'unnot')); } }, 'NOT'));
    buttons.push(h('button', { type: 'button', class: 'danger', id: idFor(path, 'remove'), 'aria-label': `Remove ${what}`, onclick: () => { parent.remove(); render(parent.focusAfterRemove); } }, 'Remove'));
    return buttons;
  }

  function childOps(group, groupPath, i) {
    const rulesPath = `${groupPath}/rules`;
    return {
      index: i,
      count: group.rules.length,
      siblingPath: (d) => `${rulesPath}/${i + d}`,
      move(d) { const r = group.rules; [r[i], r[i + d]] = [r[i + d], r[i]]; },
      replace(n) { group.rules[i] = n; },
      remove() { group.rules.splice(i, 1); },
      focusAfterRemove: idFor(groupPath, 'add-rule'),
    };
  }

  function renderGroup(group, path, parent) {
    group.rules = group.rules || [];
    const depthLabel = parent ? 'Group' : 'Conditions';
    const matchSel = h('select', {
      id: idFor(path, 'match'),
      onchange: (e) => { group.match = e.target.value; },
    },
    h('option', { value: 'all', selected: group.match === 'all' }, 'ALL of these hold (and)'),
    h('option', { value: 'any', selected: group.match === 'any' }, 'ANY of these holds (or)'));
    const list = h('ol', { class: 'children' },
      group.rules.map((child, i) => h('li', {}, renderNode(child, `${path}/rules/${i}`, childOps(group, path, i)))));
    const addRule = h('button', {
      type: 'button', id: idFor(path, 'add-rule'),
      onclick: () => {
        const first = ctx.fields()[0]?.path || 'event.x';
        const op = opsFor(first)[0];
        const rule = { field: first, operator: op };
        const v = defaultValue(first, op);
        if (v !== undefined) rule.value = v;
        group.rules.push(rule);
        render(idFor(`${path}/rules/${group.rules.length - 1}`, 'field'));
      },
    }, parent ? 'Add rule to this group' : 'Add rule');
    const addGroup = h('button', {
      type: 'button', id: idFor(path, 'add-group'),
      onclick: () => {
        group.rules.push({ match: group.match === 'all' ? 'any' : 'all', rules: [] });
        render(idFor(`${path}/rules/${group.rules.length - 1}`, 'match'));
      },
    }, 'Add group');
    return h('fieldset', { class: parent ? 'group' : 'group root', 'data-path': path },
      h('legend', { class: parent ? null : 'sr-only' }, depthLabel),
      h('div', { class: 'group-head' },
        h('label', { for: matchSel.id }, parent ? 'This group is true when' : ctx.label || 'The workflow runs when'),
        matchSel,
        h('span', { class: 'spacer' }),
        nodeButtons(group, path, parent, 'group')),
      group.rules.length ? list : h('p', { class: 'muted small' }, parent ? 'An empty group is always true.' : ctx.empty || 'No conditions: the workflow runs on every event of its trigger.'),
      h('div', { class: 'group-tools' }, addRule, addGroup));
  }

  function renderNot(node, path, parent) {
    const inner = {
      index: 0, count: 1, isNot: true, siblingPath: () => path,
      move() {},
      replace(n) { node.not = n; },
      remove() { parent.remove(); },
      focusAfterRemove: parent?.focusAfterRemove,
    };
    const unwrap = h('button', {
      type: 'button', id: idFor(path, 'unnot'), 'aria-label': 'Remove the NOT (keep what it negates)',
      onclick: () => { parent.replace(node.not); render(idFor(path, 'negate')); },
    }, 'Remove NOT');
    return h('div', { class: 'not', 'data-path': path, role: 'group', 'aria-label': 'NOT: true when the following is false' },
      h('div', { class: 'not-head' }, h('strong', {}, 'NOT'), h('span', { class: 'muted small' }, ' true when the following is false'), h('span', { class: 'spacer' }), unwrap,
        parent ? h('button', { type: 'button', class: 'danger', id: idFor(path, 'remove'), 'aria-label': 'Remove this NOT and what it negates', onclick: () => { parent.remove(); render(parent.focusAfterRemove); } }, 'Remove') : null),
      renderNode(node.not, `${path}/not`, inner));
  }

  function renderRule(rule, path, parent) {
    const fields = ctx.fields();
    const known = fields.some((f) => f.path === rule.field);
    const fieldSel = h('select', {
      id: idFor(path, 'field'),
      onchange: (e) => {
        if (e.target.value === CUSTOM) {
          rule.field = known ? '' : rule.field;
          customMode.add(path);
          render(idFor(path, 'custom'));
          return;
        }
        customMode.delete(path);
        setField(rule, e.target.value);
        render(idFor(path, 'field'));
      },
    });
    fieldSel.append(...fieldOptions(fields, rule.field, !known || customMode.has(path)));
    const custom = (!known || customMode.has(path)) ? h('input', {
      id: idFor(path, 'custom'), type: 'text', value: rule.field || '', placeholder: 'event.my_field', spellcheck: 'false',
      onchange: (e) => { setField(rule, e.target.value.trim()); render(); },
    }) : null;

    const ops = opsFor(rule.field);
    const opSel = h('select', {
      id: idFor(path, 'operator'),
      onchange: (e) => { setOperator(rule, e.target.value); render(idFor(path, 'operator')); },
    }, ops.map((o) => h('option', { value: o, selected: o === rule.operator }, opLabel[o] || o)));
    if (!ops.includes(rule.operator)) opSel.prepend(h('option', { value: rule.operator, selected: true }, `${rule.operator} (not for this type)`));

    const type = typeOf(rule.field);
    const info = fieldInfo(rule.field);
    return h('div', { class: 'rule', 'data-path': path, role: 'group', 'aria-label': `Rule: ${rule.field || 'no field'} ${rule.operator}` },
      h('div', { class: 'rule-field', 'data-path': `${path}/field` },
        h('label', { for: fieldSel.id }, 'Field'), fieldSel,
        custom ? h('label', { for: custom.id, class: 'sr-only' }, 'Field path') : null, custom,
        h('span', { class: 'hint' }, `type: ${type}`)),
      h('div', { class: 'rule-op', 'data-path': `${path}/operator` }, h('label', { for: opSel.id }, 'Operator'), opSel),
      h('div', { class: 'rule-value' }, valueEditor(rule, path, type, info)),
      h('div', { class: 'rule-tools' }, nodeButtons(rule, path, parent, `rule on ${rule.field || 'a field'}`)));
  }

  const customMode = new Set();

  /** The options of a field picker: the fields by namespace, then "Other field". */
  function fieldOptions(fields, current, custom) {
    const groups = new Map();
    for (const f of fields) {
      const ns = f.path.split('.')[0];
      if (!groups.has(ns)) groups.set(ns, h('optgroup', { label: ns }));
      groups.get(ns).append(h('option', { value: f.path, selected: f.path === current && !custom }, `${f.label} (${f.path})`));
    }
    return [...groups.values(), h('option', { value: CUSTOM, selected: custom }, 'Other field (type its path)…')];
  }

  function setField(rule, field) {
    const before = typeOf(rule.field);
    rule.field = field;
    const ops = opsFor(field);
    if (!ops.includes(rule.operator)) rule.operator = ops[0];
    if (isFieldRef(rule.value)) return;
    if (typeOf(field) !== before || fieldInfo(field)?.options) setValue(rule, defaultValue(field, rule.operator));
  }

  function setOperator(rule, op) {
    const old = rule.operator;
    rule.operator = op;
    const v = rule.value;
    if (isFieldRef(v) && FIELD_OPS.has(op)) return;
    if (isFieldRef(v)) return setValue(rule, defaultValue(rule.field, op));
    if (NO_VALUE.has(op)) return setValue(rule, undefined);
    if (LIST_OPS.has(op)) return setValue(rule, Array.isArray(v) ? (LIST_OPS.has(old) ? v : v.filter((x) => x !== '')) : (v === undefined || v === '' ? [] : [v]));
    if (op === 'between') return setValue(rule, Array.isArray(v) ? [v[0] ?? '', v[1] ?? ''] : [v ?? '', '']);
    if (Array.isArray(v) || v === undefined) return setValue(rule, defaultValue(rule.field, op));
    if (NUMERIC_OPS.has(op) && typeof v === 'string') return setValue(rule, coerce(v, rule.field, op));
  }

  function setValue(rule, v) {
    if (v === undefined) delete rule.value;
    else rule.value = v;
  }

  // --- values --------------------------------------------------------------------------

  function scalarInput(get, set, path, type, info, label, id) {
    if (info?.options?.length) {
      const opts = info.options;
      const current = get();
      const sel = h('select', {
        id, 'data-path': path,
        onchange: (e) => set(e.target.value === '' ? '' : opts[Number(e.target.value)]?.value ?? e.target.value),
      }, h('option', { value: '' }, '— choose —'),
      opts.map((o, i) => h('option', { value: String(i), selected: o.value === current }, o.label === String(o.value) ? o.label : `${o.label} (${o.value})`)));
      if (current !== '' && current !== undefined && !opts.some((o) => o.value === current)) {
        sel.append(h('option', { value: `x:${current}`, selected: true }, `${current} (unknown here)`));
        sel.addEventListener('change', (e) => { if (e.target.value.startsWith('x:')) set(current); });
      }
      return [h('label', { for: id }, label), sel];
    }
    if (type === 'boolean') {
      const cur = get();
      const sel = h('select', { id, 'data-path': path, onchange: (e) => set(e.target.value === 'true') },
        h('option', { value: 'true', selected: cur === true }, 'true'),
        h('option', { value: 'false', selected: cur === false }, 'false'));
      return [h('label', { for: id }, label), sel];
    }
    const v = get();
    const input = h('input', {
      id, 'data-path': path, type: 'text', value: v === undefined ? '' : String(v), spellcheck: 'false',
      inputmode: type === 'number' ? 'decimal' : null,
      placeholder: type === 'number' ? 'a number' : type === 'datetime' ? '2026-01-31T00:00:00Z' : '',
      oninput: (e) => set(e.target.value),
    });
    return [h('label', { for: id }, label), input];
  }

  /** "Compare with a value / another field", where the tree allows it. */
  function valueKind(rule, path) {
    const sel = h('select', {
      id: idFor(path, 'value-kind'),
      onchange: (e) => {
        setValue(rule, e.target.value === 'field' ? { field: ctx.fields()[0]?.path || '' } : defaultValue(rule.field, rule.operator));
        render(idFor(path, 'value-kind'));
      },
    },
    h('option', { value: 'value', selected: !isFieldRef(rule.value) }, 'a value'),
    h('option', { value: 'field', selected: isFieldRef(rule.value) }, 'another field'));
    return [h('label', { for: sel.id }, 'Compare with'), sel];
  }

  /** The other field of a field-to-field rule: picked, or typed as "Other field". */
  function fieldRefEditor(rule, path) {
    const fields = ctx.fields();
    const ref = rule.value;
    const key = `${path}/value`;
    const custom = !fields.some((f) => f.path === ref.field) || customMode.has(key);
    const sel = h('select', {
      id: idFor(path, 'value-field'),
      onchange: (e) => {
        if (e.target.value === CUSTOM) customMode.add(key);
        else { customMode.delete(key); ref.field = e.target.value; }
        render(idFor(path, e.target.value === CUSTOM ? 'value-field-custom' : 'value-field'));
      },
    }, fieldOptions(fields, ref.field, custom));
    const typed = custom ? h('input', {
      id: idFor(path, 'value-field-custom'), type: 'text', value: ref.field, placeholder: 'trigger.transaction.id', spellcheck: 'false',
      'aria-label': 'Other field path', oninput: (e) => { ref.field = e.target.value.trim(); },
    }) : null;
    return h('div', { class: 'field-ref', 'data-path': `${key}/field` }, h('label', { for: sel.id }, 'Field'), sel, typed);
  }

  function valueEditor(rule, path, type, info) {
    const op = rule.operator;
    const vpath = `${path}/value`;
    if (NO_VALUE.has(op)) return h('p', { class: 'muted small', 'data-path': vpath }, 'no value needed');
    if (ctx.fieldValues && FIELD_OPS.has(op)) {
      return h('div', { class: 'scalar' }, valueKind(rule, path),
        isFieldRef(rule.value) ? fieldRefEditor(rule, path) : scalarEditor(rule, path, type, info));
    }
    if (isFieldRef(rule.value)) setValue(rule, defaultValue(rule.field, op));
    return scalarEditor(rule, path, type, info);
  }

  /** The value input of a rule whose value is a constant (or a list, or two bounds). */
  function scalarEditor(rule, path, type, info) {
    const op = rule.operator;
    const vpath = `${path}/value`;
    if (op === 'between') {
      if (!Array.isArray(rule.value)) rule.value = ['', ''];
      const parts = [0, 1].map((i) => h('div', { class: 'bound' }, scalarInput(
        () => rule.value[i], (x) => { rule.value[i] = coerce(x, rule.field, op); },
        `${vpath}/${i}`, type === 'any' ? 'number' : type, info, i === 0 ? 'From' : 'To (inclusive)', idFor(path, `value-${i}`))));
      return h('div', { class: 'between', 'data-path': vpath, role: 'group', 'aria-label': 'Between bounds' }, parts);
    }
    if (LIST_OPS.has(op)) {
      if (!Array.isArray(rule.value)) rule.value = [];
      const items = rule.value.map((item, i) => h('li', {},
        scalarInput(() => item, (x) => { rule.value[i] = coerce(x, rule.field, op); }, `${vpath}/${i}`, type, info, `Value ${i + 1}`, idFor(path, `value-${i}`)),
        h('button', {
          type: 'button', class: 'icon danger', 'aria-label': `Remove value ${i + 1}`, title: 'Remove',
          onclick: () => { rule.value.splice(i, 1); render(idFor(path, 'add-value')); },
        }, '×')));
      return h('div', { class: 'list-editor', 'data-path': vpath, role: 'group', 'aria-label': 'Values' },
        h('span', { class: 'label' }, op === 'in' ? 'Is one of' : 'Is none of'),
        h('ul', {}, items),
        h('button', {
          type: 'button', id: idFor(path, 'add-value'),
          onclick: () => { rule.value.push(''); render(idFor(path, `value-${rule.value.length - 1}`)); },
        }, 'Add value'));
    }
    return h('div', { class: 'scalar' }, scalarInput(
      () => rule.value, (x) => { rule.value = type === 'boolean' ? x : coerce(x, rule.field, op); },
      vpath, type, info, 'Value', idFor(path, 'value')));
  }

  render();
  return { el, render };
}

/** Drops values the operator does not take, before sending; a lone root goes back alone. */
export function cleanConditions(node) {
  if (isGroup(node) && node.__lone && node.match === 'all' && node.rules?.length === 1) return cleanConditions(node.rules[0]);
  if (isGroup(node)) return { match: node.match, rules: (node.rules || []).map(cleanConditions) };
  if (isNot(node)) return { not: cleanConditions(node.not) };
  const out = { field: node.field, operator: node.operator };
  if (!NO_VALUE.has(node.operator) && node.value !== undefined) out.value = node.value;
  return out;
}

export { newId };
