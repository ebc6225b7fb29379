// The workflow-level keys in the builder. Guard rails: the per-customer limit, the send
// window, the exit rules and which messages are transactional. Experiment: the holdout
// (a share of customers held out to measure the workflow against) and the goal (the
// event that counts as success, within a window after the run started). One panel each;
// the editor hands them the workflow being edited and asks them to add their keys to the
// draft it saves or tests, as they came when they were not touched.
// Shapes: docs/workflow-language.md, "Guard rails" and "Experiments and goals".

import { h, labelled, newId } from './dom.js';
import { allLists, childPath, labelOf, pointerOf } from './tree.js';
import { conditionsEditor, normalizeRoot, cleanConditions } from './conditions.js';
import { eventTypePicker, fieldsOf } from './journey.js';
import { withCrmOptions } from './pickers.js';

const DAYS = [['mon', 'Mon'], ['tue', 'Tue'], ['wed', 'Wed'], ['thu', 'Thu'], ['fri', 'Fri'], ['sat', 'Sat'], ['sun', 'Sun']];
const UNITS = ['minutes', 'hours', 'days'];
const MESSAGES = ['send_email', 'send_sms'];

/** The guard keys of a stored definition, as the panel edits them. */
export function guardState(source) {
  const limits = source?.limits ?? null;
  const cooldown = limits?.cooldown ?? null;
  const unit = cooldown ? UNITS.find((u) => u in cooldown) ?? 'days' : 'days';
  const win = source?.send_window ?? null;
  return {
    limit: limits?.once_per_customer ? 'once' : cooldown ? 'cooldown' : 'none',
    cooldownUnit: unit,
    cooldownValue: cooldown ? String(cooldown[unit]) : '7',
    window: Boolean(win),
    from: win?.from ?? '09:00',
    to: win?.to ?? '20:00',
    days: new Set(win?.days ?? []),
    exits: (source?.exit_when ?? []).map((r) => ({
      trigger_event: r.trigger_event,
      conditions: r.conditions ? JSON.stringify(r.conditions, null, 2) : '',
    })),
  };
}

/**
 * The panel. `g` is guardState(...); `actions()` the editor's steps (their `transactional`
 * flag is kept on them); `triggers` the schema's triggers for the exit rule's event list.
 * Returns { el, apply(draft, problems), refresh() }: apply adds the guard keys to a draft
 * built by the editor, with problems at JSON pointers; refresh redraws the message list
 * after the actions changed.
 */
export function guardsEditor({ g, actions, triggers }) {
  // --- limits ----------------------------------------------------------------------------
  const limitSel = h('select', { id: 'wf-limit', onchange: (e) => { g.limit = e.target.value; cooldownBox.hidden = g.limit !== 'cooldown'; } },
    h('option', { value: 'none', selected: g.limit === 'none' }, 'Every time it matches'),
    h('option', { value: 'once', selected: g.limit === 'once' }, 'Once per customer, ever'),
    h('option', { value: 'cooldown', selected: g.limit === 'cooldown' }, 'At most once per period'));
  const cooldownValue = h('input', { id: 'wf-cooldown-value', type: 'number', min: '1', step: '1', value: g.cooldownValue, inputmode: 'numeric', oninput: (e) => { g.cooldownValue = e.target.value; } });
  const cooldownUnit = h('select', { id: 'wf-cooldown-unit', 'aria-label': 'Cooldown unit', onchange: (e) => { g.cooldownUnit = e.target.value; } },
    UNITS.map((u) => h('option', { value: u, selected: u === g.cooldownUnit }, u)));
  const cooldownBox = h('div', { class: 'field', 'data-path': '/limits/cooldown', hidden: g.limit !== 'cooldown' },
    h('label', { for: cooldownValue.id }, 'Period'), h('div', { class: 'inline' }, cooldownValue, cooldownUnit));

  // --- send window -----------------------------------------------------------------------
  const windowOn = h('input', { id: 'wf-window', type: 'checkbox', checked: g.window, onchange: (e) => { g.window = e.target.checked; windowBox.hidden = !g.window; } });
  const from = h('input', { id: 'wf-window-from', type: 'time', value: g.from, oninput: (e) => { g.from = e.target.value; } });
  const to = h('input', { id: 'wf-window-to', type: 'time', value: g.to, oninput: (e) => { g.to = e.target.value; } });
  const days = h('fieldset', { class: 'days', 'data-path': '/send_window/days' },
    h('legend', {}, 'Days (none ticked: every day)'),
    DAYS.map(([d, label]) => {
      const box = h('input', { type: 'checkbox', id: newId('day'), checked: g.days.has(d), onchange: (e) => { if (e.target.checked) g.days.add(d); else g.days.delete(d); } });
      return h('span', { class: 'checkbox' }, box, h('label', { for: box.id }, label));
    }));
  const windowBox = h('div', { hidden: !g.window },
    h('div', { class: 'grid2' },
      h('div', { 'data-path': '/send_window/from' }, labelled('From', from, 'customer\'s local time')),
      h('div', { 'data-path': '/send_window/to' }, labelled('To', to, 'before From: over midnight'))),
    days);

  // --- transactional messages ------------------------------------------------------------
  const messages = h('div', { class: 'transactional', id: 'wf-transactional' });
  function refresh() {
    // every message of the tree, a journey's nested ones too
    const rows = allLists(actions())
      .flatMap(({ path, list }) => list.map((a, i) => [a, childPath(path, i)]))
      .filter(([a]) => MESSAGES.includes(a.type))
      .map(([a, path]) => {
        const box = h('input', { type: 'checkbox', id: newId('tx'), checked: Boolean(a.transactional), onchange: (e) => { a.transactional = e.target.checked; } });
        return h('div', { class: 'checkbox', 'data-path': `${pointerOf(path)}/transactional` }, box,
          h('label', { for: box.id }, `Step ${labelOf(path)} (${a.type}) is transactional: sent even to customers who opted out`));
      });
    messages.replaceChildren(...(rows.length ? rows : [h('p', { class: 'hint' }, 'No email or SMS steps.')]));
  }
  refresh();

  // --- exit rules ------------------------------------------------------------------------
  const listId = newId('triggers');
  const exitList = h('div', { class: 'exits' });
  function renderExits() {
    exitList.replaceChildren(...g.exits.map((rule, i) => {
      const trig = h('input', { type: 'text', id: newId('exit'), list: listId, value: rule.trigger_event, placeholder: 'e.g. customer.deposited', spellcheck: 'false', oninput: (e) => { rule.trigger_event = e.target.value.trim(); } });
      const cond = h('textarea', { id: newId('exit-cond'), rows: 3, value: rule.conditions, spellcheck: 'false', placeholder: '{"match": "all", "rules": [...]} (empty: every such event)', oninput: (e) => { rule.conditions = e.target.value; } });
      return h('div', { class: 'exit-rule', 'data-path': `/exit_when/${i}` },
        h('div', { 'data-path': `/exit_when/${i}/trigger_event` }, labelled(`Exit event ${i + 1}`, trig)),
        h('div', { 'data-path': `/exit_when/${i}/conditions` }, labelled('Only when (conditions, JSON)', cond)),
        h('button', { type: 'button', onclick: () => { g.exits.splice(i, 1); renderExits(); } }, 'Remove'));
    }));
  }
  renderExits();
  const addExit = h('button', { type: 'button', id: 'wf-add-exit', onclick: () => { g.exits.push({ trigger_event: '', conditions: '' }); renderExits(); } }, 'Add exit event');

  const el = h('section', { class: 'panel', 'aria-labelledby': 'guards-title', id: 'wf-guards' },
    h('h3', { id: 'guards-title' }, 'Guard rails'),
    h('div', { class: 'grid2' },
      h('div', { 'data-path': '/limits' }, labelled('Customers enter', limitSel, 'a held-back run is not created')),
      cooldownBox),
    h('div', { class: 'checkbox', 'data-path': '/send_window' }, windowOn, h('label', { for: windowOn.id }, 'Send email and SMS only inside a window of the customer\'s local time')),
    windowBox,
    h('h4', {}, 'Consent'),
    messages,
    h('h4', {}, 'Exit when'),
    h('p', { class: 'hint' }, 'An event of the customer that cancels this workflow\'s waiting runs (e.g. a deposit ends a churn rescue).'),
    h('datalist', { id: listId }, triggers.map((t) => h('option', { value: t.name }, t.label))),
    exitList, addExit);

  /** Adds the guard keys to `draft` (built by the editor); bad input goes to `problems`. */
  function apply(draft, problems) {
    if (g.limit === 'once') draft.limits = { once_per_customer: true };
    if (g.limit === 'cooldown') {
      const n = String(g.cooldownValue).trim();
      draft.limits = { cooldown: { [g.cooldownUnit]: /^\d+$/.test(n) ? Number(n) : n } };
    }
    if (g.window) {
      draft.send_window = { from: g.from, to: g.to };
      const picked = DAYS.map(([d]) => d).filter((d) => g.days.has(d));
      if (picked.length) draft.send_window.days = picked;
    }
    if (g.exits.length) {
      draft.exit_when = g.exits.map((rule, i) => {
        const out = { trigger_event: rule.trigger_event };
        if (rule.conditions.trim()) {
          try {
            out.conditions = JSON.parse(rule.conditions);
          } catch (e) {
            problems.push({ path: `/exit_when/${i}/conditions`, message: `not valid JSON: ${e.message}` });
          }
        }
        return out;
      });
    }
    actions().forEach((a, i) => {
      if (a.transactional && MESSAGES.includes(a.type) && draft.actions[i]) draft.actions[i].transactional = true;
    });
  }

  return { el, apply, refresh };
}

// --- experiment: holdout and goal ----------------------------------------------------------

const whole = (t) => (/^\s*-?\d+\s*$/.test(t) ? Number(t) : t.trim());

/** The holdout and goal of a stored definition, as the experiment panel edits them. */
export function experimentState(source) {
  const goal = source?.goal ?? null;
  const within = goal?.within && typeof goal.within === 'object' ? goal.within : null;
  const unit = within ? UNITS.find((u) => u in within) ?? 'days' : 'days';
  return {
    holdout: source?.holdout?.percent === undefined || source?.holdout?.percent === null ? '' : String(source.holdout.percent),
    goal: Boolean(goal),
    event: goal?.event ?? '',
    // absent conditions stay absent while no rule is added (the wait step does the same)
    conditions: goal?.conditions === undefined ? { match: 'all', rules: [], __optional: true } : normalizeRoot(structuredClone(goal.conditions)),
    withinUnit: unit,
    withinValue: within ? String(within[unit]) : '7',
    exit: goal?.exit === true,
    exitStored: goal ? 'exit' in goal : false,
  };
}

/**
 * The experiment panel: the holdout percent (0 to 50, empty for none) and the goal (its
 * event type from the triggers or typed, conditions on that event as `event.*` and on the
 * customer, the window after the run started, and whether reaching it ends a waiting
 * run). `x` is experimentState(...); returns { el, apply(draft, problems) }.
 */
export function experimentEditor({ x, schema, crm }) {
  const holdout = h('input', {
    id: 'wf-holdout', type: 'number', min: '0', max: '50', step: '1', inputmode: 'numeric', value: x.holdout, placeholder: 'none',
    oninput: (e) => { x.holdout = e.target.value; },
  });

  const goalOn = h('input', { id: 'wf-goal', type: 'checkbox', checked: x.goal, onchange: (e) => { x.goal = e.target.checked; goalBox.hidden = !x.goal; } });
  const conditionsBox = h('div', { 'data-path': '/goal/conditions' });
  const drawConditions = () => {
    const fields = () => withCrmOptions(fieldsOf(schema, x.event), crm);
    conditionsBox.replaceChildren(conditionsEditor({
      root: () => x.conditions, fields, schema, path: '/goal/conditions',
      label: 'The goal event counts when', empty: `No conditions: any ${x.event || 'such event'} of the customer counts.`,
    }).el);
  };
  const eventPicker = eventTypePicker({
    id: 'wf-goal-event', value: x.event || undefined, triggers: schema.triggers, typedLabel: 'Goal event type (typed)',
    set: (v) => { x.event = v ?? ''; }, redraw: drawConditions,
  });
  const withinValue = h('input', { id: 'wf-goal-within-n', type: 'number', min: '1', step: '1', inputmode: 'numeric', value: x.withinValue, 'aria-label': 'Within: amount', oninput: (e) => { x.withinValue = e.target.value; } });
  const withinUnit = h('select', { id: 'wf-goal-within-unit', 'aria-label': 'Within: unit', onchange: (e) => { x.withinUnit = e.target.value; } },
    UNITS.map((u) => h('option', { value: u, selected: u === x.withinUnit }, u)));
  const exit = h('input', { id: 'wf-goal-exit', type: 'checkbox', checked: x.exit, onchange: (e) => { x.exit = e.target.checked; } });
  const goalBox = h('div', { class: 'goal', hidden: !x.goal },
    h('div', { class: 'grid2' },
      h('div', { class: 'field', 'data-path': '/goal/event' },
        h('label', { for: 'wf-goal-event' }, 'Goal event'), eventPicker,
        h('span', { class: 'hint' }, 'the customer’s event that counts as success; its data is event.* below')),
      h('div', { class: 'field', 'data-path': '/goal/within' },
        h('span', { class: 'label', id: 'wf-goal-within-label' }, 'Within'),
        h('div', { class: 'duration', role: 'group', 'aria-labelledby': 'wf-goal-within-label' }, withinValue, withinUnit),
        h('span', { class: 'hint' }, 'after the run started; a later event does not count'))),
    conditionsBox,
    h('div', { class: 'checkbox', 'data-path': '/goal/exit' }, exit, h('label', { for: exit.id }, 'Exit on goal: reaching it cancels the customer’s waiting run of this workflow')));
  drawConditions();

  const el = h('section', { class: 'panel', 'aria-labelledby': 'experiment-title', id: 'wf-experiment' },
    h('h3', { id: 'experiment-title' }, 'Experiment: holdout and goal'),
    h('div', { class: 'holdout', 'data-path': '/holdout' },
      h('div', { 'data-path': '/holdout/percent' }, labelled('Holdout (% of entering customers)', holdout,
        '0 to 50, empty for none: that share of customers (a stable hash) get a run that does nothing (held_out), the baseline the Results page compares with'))),
    h('div', { class: 'checkbox', 'data-path': '/goal' }, goalOn, h('label', { for: goalOn.id }, 'This workflow has a goal: an event of the customer that counts as success')),
    goalBox);

  /** Adds `holdout` and `goal` to `draft`, in the order the language gives their keys. */
  function apply(draft) {
    if (String(x.holdout).trim() !== '') draft.holdout = { percent: whole(String(x.holdout)) };
    if (x.goal) {
      const goal = { event: x.event };
      const c = x.conditions;
      if (!(c.__optional && !c.rules.length)) goal.conditions = cleanConditions(c);
      const n = String(x.withinValue).trim();
      if (n !== '') goal.within = { [x.withinUnit]: whole(n) };
      if (x.exit) goal.exit = true;
      else if (x.exitStored) goal.exit = false;
      draft.goal = goal;
    }
  }

  return { el, apply };
}
