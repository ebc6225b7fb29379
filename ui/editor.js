// The workflow editor: basics (name, description, trigger, priority, stop_after, active),
// the condition tree, the action chain, Save (POST, or PUT with the version read) and
// Check (POST /validate), with every API problem shown next to the field its pointer
// names; beside it the test panel (dry run, send event).

import { get, post, put, schema } from './api.js';
import { h, announce, clearErrors, showErrors, labelled, badge } from './dom.js';
import { conditionsEditor, normalizeRoot, cleanConditions } from './conditions.js';
import { actionsEditor, buildActions } from './actions.js';
import { drawFlow } from './flow.js';
import { testPanel } from './testpanel.js';
import { guardState, guardsEditor, experimentState, experimentEditor } from './guards.js';
import { loadCrm, withCrmOptions } from './pickers.js';

const OTHER = '__other__';

export async function renderEditor(view, id, params) {
  // fresh: statuses, teams, agents and endpoints may have been created since
  const [s, crm] = await Promise.all([schema(true), loadCrm()]);
  let stored = null;
  if (id) stored = await get(`/api/v1/workflows/${encodeURIComponent(id)}`);
  let source = stored;
  const fromVersion = params?.get('from_version');
  if (stored && fromVersion) {
    const { versions } = await get(`/api/v1/workflows/${encodeURIComponent(id)}/versions`);
    const v = versions.find((x) => String(x.version) === fromVersion);
    if (v?.definition) source = { ...v.definition, id: stored.id, version: stored.version, active: stored.active };
  }
  const wf = {
    name: source?.name ?? '',
    description: source?.description ?? '',
    trigger_event: source?.trigger_event ?? s.triggers[0]?.name ?? 'customer.registered',
    priority: source?.priority ?? 100,
    stop_after: source?.stop_after ?? false,
    active: source?.active ?? true,
    conditions: normalizeRoot(structuredClone(source?.conditions ?? null)),
    // no `conditions` (always true) stays absent while no rule is added: saved unchanged,
    // a workflow gives back the JSON it was loaded with
    noConditions: source?.conditions === undefined || source?.conditions === null,
    actions: structuredClone(source?.actions ?? []),
  };
  const state = { id: stored?.id ?? null, version: stored?.version ?? null };

  const fields = () => withCrmOptions((s.triggers.find((t) => t.name === wf.trigger_event) || s.other_trigger).fields, crm);

  // --- basics ----------------------------------------------------------------------------
  const name = h('input', { id: 'wf-name', type: 'text', value: wf.name, required: true, maxlength: '200', oninput: (e) => { wf.name = e.target.value; } });
  const description = h('textarea', { id: 'wf-description', rows: 2, value: wf.description, oninput: (e) => { wf.description = e.target.value; } });
  const known = s.triggers.some((t) => t.name === wf.trigger_event);
  const triggerSel = h('select', { id: 'wf-trigger' },
    s.triggers.map((t) => h('option', { value: t.name, selected: t.name === wf.trigger_event }, `${t.label} (${t.name})`)),
    h('option', { value: OTHER, selected: !known }, 'Another event type (type its name)…'));
  const triggerText = h('input', { id: 'wf-trigger-other', type: 'text', value: known ? '' : wf.trigger_event, placeholder: 'e.g. bonus.granted', spellcheck: 'false', pattern: '[A-Za-z0-9._-]+' });
  const triggerOther = h('div', { class: 'field', hidden: known },
    h('label', { for: triggerText.id }, 'Event type'), triggerText,
    h('span', { class: 'hint' }, 'letters, digits, “.”, “-”, “_”; its payload is read as event.*'));
  const onTrigger = () => {
    wf.trigger_event = triggerSel.value === OTHER ? triggerText.value.trim() : triggerSel.value;
    triggerOther.hidden = triggerSel.value !== OTHER;
    cond.render();
    acts.render(); // journey conditions read the trigger's fields
    panel.triggerChanged();
  };
  triggerSel.addEventListener('change', () => { onTrigger(); if (triggerSel.value === OTHER) triggerText.focus(); });
  triggerText.addEventListener('change', onTrigger);
  const priority = h('input', { id: 'wf-priority', type: 'number', step: '1', value: String(wf.priority), inputmode: 'numeric', oninput: (e) => { wf.priority = e.target.value; } });
  const stopAfter = h('input', { id: 'wf-stop-after', type: 'checkbox', checked: wf.stop_after, onchange: (e) => { wf.stop_after = e.target.checked; } });
  const active = h('input', { id: 'wf-active', type: 'checkbox', checked: wf.active, onchange: (e) => { wf.active = e.target.checked; } });

  const cond = conditionsEditor({ root: () => wf.conditions, fields, schema: s });
  const acts = actionsEditor({ actions: () => wf.actions, schema: s, crm, trigger: () => wf.trigger_event });
  const guards = guardsEditor({ g: guardState(source), actions: () => wf.actions, triggers: s.triggers });
  const experiment = experimentEditor({ x: experimentState(source), schema: s, crm });
  acts.el.addEventListener('change', () => guards.refresh());
  acts.el.addEventListener('click', () => queueMicrotask(() => guards.refresh()));

  function buildDraft() {
    const { actions, problems } = buildActions(wf.actions);
    const draft = {
      name: wf.name.trim(),
      trigger_event: wf.trigger_event,
      conditions: cleanConditions(wf.conditions),
      actions,
      stop_after: wf.stop_after,
      active: wf.active,
    };
    if (wf.noConditions && !wf.conditions.rules.length) delete draft.conditions;
    if (wf.description.trim()) draft.description = wf.description.trim();
    const p = String(wf.priority).trim();
    if (p !== '') draft.priority = /^-?\d+$/.test(p) ? Number(p) : p;
    if (state.id) { draft.id = state.id; draft.version = state.version; }
    guards.apply(draft, problems);
    experiment.apply(draft, problems);
    return { draft, problems };
  }

  const summary = h('div', { class: 'form-summary', 'data-path': '', tabindex: '-1', id: 'wf-summary' });
  const saveBtn = h('button', { type: 'submit', class: 'primary', id: 'wf-save' }, 'Save');
  const checkBtn = h('button', { type: 'button', id: 'wf-check', onclick: () => check() }, 'Check');
  // Beside the buttons, which stay in sight (sticky): the summary above them may be far
  // off-screen on a long workflow, and "Saved" must be seen where the user pressed Save.
  const outcome = h('span', { id: 'wf-outcome', class: 'saved', role: 'status' });

  const form = h('form', { class: 'editor', id: 'wf-form', novalidate: true, 'aria-labelledby': 'editor-title' },
    h('section', { class: 'panel', 'aria-labelledby': 'basics-title' },
      h('h3', { id: 'basics-title' }, 'Workflow'),
      h('div', { class: 'grid2' },
        h('div', { 'data-path': '/name' }, labelled('Name', name)),
        h('div', { 'data-path': '/trigger_event' }, labelled('Trigger', triggerSel, 'the event type that starts it'), triggerOther)),
      h('div', { 'data-path': '/description' }, labelled('Description', description)),
      h('div', { class: 'grid3' },
        h('div', { 'data-path': '/priority' }, labelled('Priority', priority, 'lower runs first (default 100)')),
        h('div', { class: 'checkbox', 'data-path': '/stop_after' }, stopAfter, h('label', { for: stopAfter.id }, 'Stop after: when it matches, skip workflows of lower priority')),
        h('div', { class: 'checkbox', 'data-path': '/active' }, active, h('label', { for: active.id }, 'Active')))),
    h('section', { class: 'panel', 'aria-labelledby': 'cond-title' },
      h('h3', { id: 'cond-title' }, 'Conditions'),
      cond.el),
    h('section', { class: 'panel', 'aria-labelledby': 'actions-title' },
      h('h3', { id: 'actions-title' }, 'Actions, in order'),
      acts.el),
    guards.el,
    experiment.el,
    summary,
    h('div', { class: 'buttons sticky' }, saveBtn, checkBtn, h('a', { class: 'button', href: '#/workflows' }, 'Back to the list'), outcome));

  const panel = testPanel({
    trigger: () => wf.trigger_event,
    fields,
    crm,
    draft: buildDraft,
    workflowId: () => state.id,
    form,
    testRun: params?.get('test_run') || null, // "test with this run's event" on the runs page
  });

  form.addEventListener('submit', (e) => { e.preventDefault(); save(); });

  // The flow diagram follows the draft: redrawn (once a frame at most) after any edit.
  const labels = Object.fromEntries(s.actions.map((a) => [a.type, a.label]));
  const flowBox = h('div', { class: 'flow-box', id: 'wf-flow' });
  let drawing = false;
  const redrawFlow = () => {
    if (drawing) return;
    drawing = true;
    requestAnimationFrame(() => {
      drawing = false;
      flowBox.replaceChildren(drawFlow(buildDraft().draft, { labels }));
    });
  };
  for (const kind of ['input', 'change', 'click']) form.addEventListener(kind, redrawFlow);
  const flowPanel = h('section', { class: 'panel flow-panel', 'aria-labelledby': 'flow-title' },
    h('h3', { id: 'flow-title' }, 'Flow'),
    h('p', { class: 'hint' }, 'Redrawn as you edit; hover a box or an arm for its whole text.'),
    flowBox);
  redrawFlow();

  function showProblems(details, headline) {
    clearErrors(form);
    summary.replaceChildren();
    outcome.textContent = '';
    const first = showErrors(form, details, { fallback: summary });
    const errors = details.filter((d) => d.severity !== 'warning');
    const warnings = details.length - errors.length;
    summary.prepend(h('p', { class: errors.length ? 'error-text' : 'warning-text', role: errors.length ? 'alert' : 'status' },
      headline, errors.length ? ` ${errors.length} problem${errors.length > 1 ? 's' : ''} marked below the fields.` : '',
      warnings ? ` ${warnings} warning${warnings > 1 ? 's' : ''}.` : ''));
    return first;
  }

  function focusFirst(el) {
    if (!el) return;
    const control = el.matches('input, select, textarea, button') ? el : el.querySelector('input, select, textarea, button');
    (control || el).focus();
    el.scrollIntoView({ block: 'center' });
  }

  async function check() {
    const { draft, problems } = buildDraft();
    if (problems.length) return focusFirst(showProblems(problems, 'Not valid.'));
    try {
      const out = await post('/api/v1/workflows/validate', draft);
      showProblems(out.warnings || [], 'Valid.');
      outcome.textContent = out.warnings?.length ? `Valid, with ${out.warnings.length} warning(s) under the fields.` : 'Valid.';
      announce(out.warnings?.length ? `Valid, with ${out.warnings.length} warning(s).` : 'Valid.');
    } catch (e) {
      focusFirst(showProblems(e.details, e.status === 422 ? 'Not valid.' : e.message));
    }
  }

  async function save() {
    const { draft, problems } = buildDraft();
    if (problems.length) return focusFirst(showProblems(problems, 'Not saved.'));
    saveBtn.disabled = true;
    try {
      const out = state.id
        ? await put(`/api/v1/workflows/${encodeURIComponent(state.id)}`, draft)
        : await post('/api/v1/workflows', draft);
      state.id = out.id;
      state.version = out.version;
      showProblems(out.warnings || [], `Saved “${out.name}”, version ${out.version}.`);
      outcome.textContent = `Saved “${out.name}”, version ${out.version}${out.warnings?.length ? `, with ${out.warnings.length} warning(s) under the fields` : ''}.`;
      title.textContent = `Edit: ${out.name}`;
      meta.replaceChildren(...metaLine(out));
      history.replaceState(null, '', `#/edit/${encodeURIComponent(out.id)}`);
      announce(`Saved ${out.name} (version ${out.version}).`);
    } catch (e) {
      const msg = e.status === 409 ? `Not saved: ${e.message}` : e.status === 422 ? 'Not saved.' : `Not saved: ${e.message}`;
      focusFirst(showProblems(e.details, msg));
      if (e.status !== 422) announce(msg, 'error');
    } finally {
      saveBtn.disabled = false;
    }
  }

  function metaLine(w) {
    if (!w) return [h('span', { class: 'muted' }, 'not saved yet')];
    return [h('span', {}, `id `, h('code', {}, w.id)), ` · version ${w.version} · `, w.active ? badge('active', 'done') : badge('disabled', 'off'), ' · ',
      h('a', { href: `#/history/${encodeURIComponent(w.id)}` }, 'history'), ' · ',
      h('a', { href: `#/runs?workflow_id=${encodeURIComponent(w.id)}` }, 'runs'), ' ',
      h('a', { class: 'button', href: `#/results/${encodeURIComponent(w.id)}`, id: 'wf-results' }, 'Results')];
  }

  const title = h('h2', { id: 'editor-title' }, stored ? `Edit: ${stored.name}` : 'New workflow');
  const meta = h('p', { class: 'meta' }, ...metaLine(stored));
  view.replaceChildren(...[
    h('div', { class: 'view-head' }, title, meta),
    fromVersion && source !== stored ? h('p', { class: 'notice' }, `Showing version ${fromVersion}. Saving makes it the current version (${stored.version + 1}).`) : null,
    h('div', { class: 'editor-grid' }, form, h('aside', { 'aria-label': 'Flow and test of the draft' }, flowPanel, panel.el)),
  ].filter(Boolean));
  if (!stored) name.focus();
  return null;
}
