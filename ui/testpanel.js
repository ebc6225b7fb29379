// The test panel of the editor: an event — a form built from the schema (the trigger's
// payload fields, typed), or its raw JSON under "Advanced" — and a customer (one from the
// database, searched by name or id, or a typed snapshot) → POST /api/v1/dry-run with the
// draft, shown as the plan in order, each step said in a sentence ("assigned to Ana Costa,
// retention desk") over its rendered templates and the agent a round-robin would pick, the
// destinations the outbound guard would refuse, what stop_after skipped, and each
// workflow's trace with the value every rule saw.
// "Send event" publishes the same event for real (POST /api/v1/events). "Backtest" judges
// the draft, and the saved version beside it, against the archived events of the last N
// days (POST /api/v1/backtest).

import { get, post } from './api.js';
import { h, announce, clearErrors, showErrors } from './dom.js';
import { exampleEvent, EXAMPLE_CUSTOMER } from './examples.js';
import { eventForm } from './eventform.js';
import { storedCustomer, typedCustomer } from './customerpick.js';
import { sayStep, sayArms } from './sentences.js';

/**
 * ctx: { trigger(), fields() → the trigger's fields (event.* and customer.*), draft() →
 *        {draft, problems}, workflowId(), form, crm (the CRM's lists, or null),
 *        testRun: a run id whose event (and stored customer) to load and dry-run, or null }
 */
export function testPanel(ctx) {
  // The event was edited by hand: choosing another trigger keeps it rather than prefill.
  let edited = false;
  const eventText = h('textarea', { id: 't-event', rows: 12, class: 'code', spellcheck: 'false', 'aria-describedby': 't-event-hint', oninput: () => { edited = true; } });
  const snapshot = h('textarea', { id: 't-customer-json', rows: 8, class: 'code', spellcheck: 'false', 'aria-label': 'Customer snapshot (JSON)' });
  const raw = h('input', { type: 'checkbox', id: 't-raw' });
  /** The JSON views follow the forms while the forms are what is edited. */
  const syncText = () => {
    if (raw.checked) return;
    eventText.value = JSON.stringify(evForm.value(), null, 2);
    snapshot.value = JSON.stringify(cuForm.value(), null, 2);
  };
  const evForm = eventForm({ fields: ctx.fields, changed: () => { edited = true; syncText(); } });
  const cuForm = typedCustomer({ fields: ctx.fields, changed: syncText });
  const stored = storedCustomer({ storedId: (id) => { if (id) setCustomerId(id); } });
  const customerId = stored.input;
  const setEvent = (ev) => {
    evForm.set(ev);
    eventText.value = JSON.stringify(ev, null, 2);
  };
  const prefill = () => {
    setEvent(exampleEvent(ctx.trigger(), Number(customerId.value) || 1));
    edited = false;
  };
  /** The stored customer chosen sets the event's customer_id. */
  function setCustomerId(id) {
    if (!raw.checked) {
      setEvent({ ...evForm.value(), customer_id: id });
      return;
    }
    try {
      const ev = JSON.parse(eventText.value);
      ev.customer_id = id;
      eventText.value = JSON.stringify(ev, null, 2);
    } catch { /* the event text is being edited: leave it */ }
  }
  const modeStored = h('input', { type: 'radio', name: 't-mode', id: 't-mode-stored', value: 'stored' });
  const modeTyped = h('input', { type: 'radio', name: 't-mode', id: 't-mode-typed', value: 'typed', checked: true });
  const others = h('input', { type: 'checkbox', id: 't-others' });
  const eventRaw = h('div', { class: 'field raw', hidden: true },
    h('label', { for: eventText.id }, 'Event (envelope JSON)'), eventText,
    h('span', { class: 'hint', id: 't-event-hint' }, 'id, type and customer_id are required; data holds the payload (event.*)'));
  const customerRaw = h('div', { class: 'field raw', hidden: true },
    h('label', { for: snapshot.id }, 'Customer snapshot (JSON)'), snapshot,
    h('span', { class: 'hint' }, 'the fields customer.* read; status fields by name, e.g. retention_status'));
  const typedBox = h('div', { 'data-path': '/customer' }, cuForm.el, customerRaw);
  const syncMode = () => {
    stored.el.hidden = !modeStored.checked;
    typedBox.hidden = !modeTyped.checked;
    if (modeStored.checked) stored.describe();
  };
  modeStored.addEventListener('change', syncMode);
  modeTyped.addEventListener('change', syncMode);

  /** Advanced: the event and the snapshot as JSON; back to the forms only from valid JSON. */
  raw.addEventListener('change', () => {
    clearErrors(el);
    if (raw.checked) {
      eventRaw.hidden = false;
      customerRaw.hidden = false;
      evForm.show(false);
      cuForm.show(false);
      return;
    }
    const ev = parse(eventText, '/event');
    const cu = ev && parse(snapshot, '/customer');
    if (!ev || !cu) { raw.checked = true; return; }
    eventRaw.hidden = true;
    customerRaw.hidden = true;
    evForm.set(ev);
    cuForm.set(cu);
    evForm.show(true);
    cuForm.show(true);
    syncText();
  });

  const result = h('div', { class: 'test-result', id: 't-result', 'aria-live': 'polite' });
  const dryBtn = h('button', { type: 'button', class: 'primary', id: 't-dry-run', onclick: () => dryRun() }, 'Dry run');
  const sendBtn = h('button', { type: 'button', id: 't-send', onclick: () => send() }, 'Send event');
  const resetBtn = h('button', { type: 'button', id: 't-reset', onclick: () => { prefill(); (raw.checked ? eventText : el.querySelector('#t-ev-id'))?.focus(); } }, 'New example event');
  const days = h('input', { id: 't-bt-days', type: 'number', min: '1', max: '365', step: '1', value: '7', inputmode: 'numeric' });
  const btBtn = h('button', { type: 'button', id: 't-backtest', onclick: () => backtest() }, 'Backtest');
  const btResult = h('div', { class: 'test-result', id: 't-bt-result', 'aria-live': 'polite' });

  const el = h('section', { class: 'panel test-panel', 'aria-labelledby': 't-title' },
    h('h3', { id: 't-title' }, 'Test'),
    h('p', { class: 'hint' }, 'Dry run: what the engine would do with this draft, with no side effect. Nothing is saved.'),
    h('fieldset', { class: 'test-part', 'data-path': '/event' }, h('legend', {}, 'Event'), evForm.el, eventRaw),
    h('fieldset', { class: 'test-part' }, h('legend', {}, 'Customer'),
      h('div', { class: 'mode' },
        h('div', { class: 'radio' }, modeTyped, h('label', { for: modeTyped.id }, 'Typed snapshot')),
        h('div', { class: 'radio' }, modeStored, h('label', { for: modeStored.id }, 'From the database'))),
      typedBox, stored.el),
    h('div', { class: 'checkbox' }, raw, h('label', { for: raw.id }, 'Advanced: edit the event and the snapshot as JSON')),
    h('div', { class: 'checkbox' }, others, h('label', { for: others.id }, 'Also evaluate the other active workflows of this trigger (priorities, stop_after)')),
    h('div', { class: 'buttons' }, dryBtn, sendBtn, resetBtn),
    h('div', { class: 'field-errors', 'data-path': '' }),
    result,
    h('h4', {}, 'Backtest'),
    h('p', { class: 'hint' }, 'How this draft would have judged the events the engine received (up to 100,000, newest first), each customer as stored now. Nothing runs.'),
    h('div', { class: 'field' }, h('label', { for: days.id }, 'Days back'), days),
    h('div', { class: 'buttons' }, btBtn),
    btResult);
  prefill();
  cuForm.set(structuredClone(EXAMPLE_CUSTOMER));
  syncText();
  syncMode();
  if (ctx.testRun) loadRun(ctx.testRun);

  /** The event a run started from, against its customer as stored now, dry-run at once. */
  async function loadRun(runId) {
    try {
      const run = await get(`/api/v1/runs/${encodeURIComponent(runId)}`);
      setEvent(run.event);
      edited = true;
      stored.set(run.customer_id);
      modeStored.checked = true;
      syncMode();
      result.replaceChildren();
      el.querySelector('h3').after(h('p', { class: 'notice', id: 't-from-run' }, `The event of run ${run.id} (${run.status}, ${run.trigger}), against customer ${run.customer_id} as stored now.`));
      announce(`Loaded the event of run ${run.id}.`);
      await dryRun();
      el.scrollIntoView({ block: 'start' });
    } catch (e) {
      result.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Could not load run ${runId}: ${e.message}`));
    }
  }

  /** The JSON of a textarea, or null with the problem shown at `path`. */
  function parse(textarea, path) {
    try {
      return JSON.parse(textarea.value);
    } catch (e) {
      showErrors(el, [{ path, message: `not valid JSON: ${e.message}` }]);
      textarea.focus();
      return null;
    }
  }

  /** The event as the form or the JSON holds it (a copy: the request must not change with the form). */
  function readEvent() {
    return raw.checked ? parse(eventText, '/event') : structuredClone(evForm.value());
  }

  async function dryRun() {
    clearErrors(el);
    clearErrors(ctx.form);
    const event = readEvent();
    if (!event) return;
    const built = ctx.draft();
    if (built.problems.length) {
      showErrors(ctx.form, built.problems);
      announce('Fix the marked fields of the workflow first.', 'error');
      return;
    }
    const body = { event, workflows: [built.draft] };
    if (modeTyped.checked) {
      body.customer = raw.checked ? parse(snapshot, '/customer') : structuredClone(cuForm.value());
      if (!body.customer) return;
    }
    if (others.checked) {
      const { workflows } = await get('/api/v1/workflows');
      for (const w of workflows) {
        if (w.active && w.trigger_event === event.type && w.id !== ctx.workflowId()) {
          // what the server keeps about versions is no part of a definition
          const { created_at, updated_at, version, live_version, draft_version, draft, ...def } = w;
          body.workflows.push(def);
        }
      }
    }
    dryBtn.disabled = true;
    result.replaceChildren(h('p', { class: 'muted' }, 'Running…'));
    try {
      const out = await post('/api/v1/dry-run', body);
      renderResult(out, built.draft);
      // the draft's refused destinations also under the params that name them, as a save shows them
      showErrors(ctx.form, (out.warnings || []).filter((w) => w.workflow_id === 'draft-0' || w.workflow_id === built.draft.id)
        .map((w) => ({ ...w, severity: 'warning' })));
      announce('Dry run done.');
    } catch (e) {
      result.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Dry run refused: ${e.message}`));
      showErrors(ctx.form, e.details, { prefix: '/workflows/0' });
      showErrors(el, e.details.filter((d) => !d.path?.startsWith('/workflows/0')), { fallback: el.querySelector('.field-errors') });
    } finally {
      dryBtn.disabled = false;
    }
  }

  async function backtest() {
    clearErrors(ctx.form);
    const built = ctx.draft();
    if (built.problems.length) {
      showErrors(ctx.form, built.problems);
      announce('Fix the marked fields of the workflow first.', 'error');
      return;
    }
    const n = Math.min(365, Math.max(1, Math.floor(Number(days.value) || 7)));
    const since = new Date(Date.now() - n * 86400000).toISOString();
    const { id, ...draft } = built.draft;
    const savedId = ctx.workflowId();
    btBtn.disabled = true;
    btResult.replaceChildren(h('p', { class: 'muted' }, 'Backtesting…'));
    try {
      // One call each, so each count has its own trigger's events as denominator (the
      // draft may have changed the trigger).
      const [mine, saved] = await Promise.all([
        post('/api/v1/backtest', { workflows: [draft], since, limit: 100000 }),
        savedId ? post('/api/v1/backtest', { workflow_ids: [savedId], since, limit: 100000 }) : null,
      ]);
      const d = mine.workflows[0];
      const noun = `${draft.trigger_event} event${mine.events === 1 ? '' : 's'}`;
      const period = `in the last ${n} day${n === 1 ? '' : 's'}`;
      const lines = [h('p', { id: 't-bt-summary' },
        `This draft would have matched ${d.matched.toLocaleString('en')} of ${mine.events.toLocaleString('en')} ${noun} ${period}`,
        saved ? `; the current version matched ${saved.workflows[0].matched.toLocaleString('en')} of ${saved.events.toLocaleString('en')}.` : '.')];
      if (d.limited) lines.push(h('p', {}, `${d.limited} of the matches would be held back by its limits.`));
      if (d.sample.length) {
        lines.push(h('details', {}, h('summary', {}, `Latest ${d.sample.length} matches`),
          h('ul', { class: 'bt-sample' }, d.sample.map((m) => h('li', {},
            h('code', {}, m.event_id), ` customer ${m.customer_id}: `,
            h('span', { class: 'muted small' }, m.actions.map((a) => a.type).join(', ')))))));
      }
      btResult.replaceChildren(h('div', { class: 'backtest-result', role: 'status' }, lines));
      announce('Backtest done.');
    } catch (e) {
      btResult.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Backtest refused: ${e.message}`));
      showErrors(ctx.form, e.details, { prefix: '/workflows/0' });
    } finally {
      btBtn.disabled = false;
    }
  }

  async function send() {
    clearErrors(el);
    const event = readEvent();
    if (!event) return;
    sendBtn.disabled = true;
    try {
      const out = await post('/api/v1/events', event);
      // the next send is another event, not a redelivery of this one
      if (raw.checked) eventText.value = JSON.stringify({ ...event, id: exampleEvent(event.type).id }, null, 2);
      else setEvent({ ...event, id: exampleEvent(event.type).id });
      result.replaceChildren(h('div', { class: 'sent', role: 'status' },
        h('p', {}, `Event ${out.id} (${out.type}) published to ${out.topic}, partition ${out.partition}, offset ${out.offset}.`),
        h('p', {}, 'Only saved, active workflows run on it. ',
          h('a', { href: `#/runs?customer_id=${encodeURIComponent(out.customer_id)}`, id: 't-runs-link' }, `See the runs of customer ${out.customer_id}`))));
      announce(`Event ${out.id} sent.`);
    } catch (e) {
      result.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Event refused: ${e.message}`));
      showErrors(el, e.details.map((d) => ({ ...d, path: `/event${d.path || ''}` })), { fallback: el.querySelector('.field-errors') });
    } finally {
      sendBtn.disabled = false;
    }
  }

  function renderResult(out, draft) {
    const names = Object.fromEntries(out.evaluated.map((e) => [e.workflow_id, e.name]));
    const said = { crm: ctx.crm, customer: out.customer };
    const step = (a, pv) => {
      const { text, arms } = sayStep(a, pv, said);
      return h('li', {},
        h('span', { class: 'sentence' }, text), ' ', h('span', { class: 'muted small' }, '(', h('code', {}, a.type), ')'),
        sayArms(arms, said),
        preview(pv),
        h('details', { class: 'as-json' }, h('summary', {}, 'as JSON'), h('pre', { class: 'json', tabindex: '0' }, JSON.stringify(a, null, 2))));
    };
    const plan = out.plan.length
      ? h('ol', { class: 'plan' }, out.plan.map((p) => h('li', {},
        h('strong', {}, p.name), ` (priority ${p.priority}${p.workflow_id.startsWith('draft-') || p.workflow_id === draft.id ? ', this draft' : ''})`,
        h('ol', { class: 'plan-actions' }, p.actions.map((a, k) => step(a, p.previews?.[k]))))))
      : h('p', {}, 'Nothing would run.');
    const skipped = out.evaluated.filter((e) => e.skipped_by);
    // destinations the outbound guard would refuse: said before the plan, which they spoil
    const warnings = out.warnings || [];
    result.replaceChildren(h('div', { class: 'dry-run-result' },
      warnings.length ? h('div', { class: 'warnings', id: 't-warnings', role: 'alert' },
        h('h4', {}, 'Would be refused'),
        h('ul', {}, warnings.map((w) => h('li', {}, h('strong', {}, names[w.workflow_id] || w.workflow_id), ` at ${w.path}: ${w.message}`)))) : null,
      h('h4', {}, 'Planned actions, in order'), plan,
      skipped.length ? h('div', {}, h('h4', {}, 'Skipped by stop_after'), h('ul', {}, skipped.map((e) => h('li', {},
        h('strong', {}, e.name), ` matched but was skipped by ${names[e.skipped_by] || e.skipped_by} (stop_after)`)))) : null,
      h('h4', {}, 'Conditions'),
      out.evaluated.length ? out.evaluated.map((e) => h('div', { class: 'evaluated', dataset: { workflow: e.workflow_id } },
        h('p', {}, h('strong', {}, e.name), ' ', e.matched ? h('span', { class: 'badge badge-done' }, 'matched') : h('span', { class: 'badge badge-failed' }, 'did not match'),
          e.skipped_by ? h('span', { class: 'badge badge-off' }, `skipped by ${names[e.skipped_by] || e.skipped_by}`) : null),
        h('div', { class: 'trace', role: 'tree', 'aria-label': `Trace of ${e.name}` }, traceNode(e.trace, 1))))
        : h('p', {}, 'No workflow listens to this event type.'),
      h('details', {}, h('summary', {}, 'Customer snapshot evaluated against'),
        h('pre', { class: 'json', tabindex: '0' }, JSON.stringify(out.customer, null, 2)))));
  }

  function traceNode(node, level) {
    const verdict = (ok) => h('span', { class: ok ? 'verdict pass' : 'verdict fail' }, ok ? '✓ passed' : '✗ failed');
    if (!node || (!('match' in node) && !('not' in node) && !('field' in node))) {
      return h('div', { class: 'trace-node', role: 'treeitem', 'aria-level': level, 'aria-selected': 'false' }, verdict(node?.result ?? true), ' no conditions (always true)');
    }
    if ('match' in node) {
      return h('div', { class: `trace-node t-group ${node.result ? 'pass' : 'fail'}`, role: 'treeitem', 'aria-level': level, 'aria-expanded': 'true', 'aria-selected': 'false' },
        h('div', {}, verdict(node.result), ' ', h('strong', {}, node.match === 'all' ? 'ALL of' : 'ANY of')),
        h('div', { role: 'group' }, (node.rules || []).map((r) => traceNode(r, level + 1))));
    }
    if ('not' in node) {
      return h('div', { class: `trace-node t-not ${node.result ? 'pass' : 'fail'}`, role: 'treeitem', 'aria-level': level, 'aria-expanded': 'true', 'aria-selected': 'false' },
        h('div', {}, verdict(node.result), ' ', h('strong', {}, 'NOT')),
        h('div', { role: 'group' }, traceNode(node.not, level + 1)));
    }
    const takes = !['is_empty', 'is_not_empty'].includes(node.operator);
    return h('div', { class: `trace-node t-rule ${node.result ? 'pass' : 'fail'}`, role: 'treeitem', 'aria-level': level, 'aria-selected': 'false', dataset: { field: node.field } },
      verdict(node.result), ' ',
      h('code', {}, node.field), ' ', h('span', { class: 'op' }, node.operator), ' ',
      takes ? h('code', {}, JSON.stringify(node.value)) : null,
      h('span', { class: 'saw' }, ' — saw ', node.missing ? h('em', {}, 'nothing (field missing)') : h('code', {}, JSON.stringify(node.saw))));
  }

  return {
    el,
    triggerChanged() {
      if (!edited) prefill();
      // an edited event keeps what was typed, as an event of the new trigger, with its fields
      else if (!raw.checked) setEvent({ ...evForm.value(), type: ctx.trigger() });
    },
  };
}

/**
 * What one planned action would do, as the dry run renders it: each template param with
 * the event and customer filled in, the agent a round-robin would pick (the cursor does
 * not move), or why it would fail (an unknown endpoint, team, status...).
 */
function preview(pv) {
  const rendered = Object.entries(pv?.rendered || {});
  if (!pv || (!pv.agent && !rendered.length && !pv.error)) return null;
  return h('div', { class: 'preview' },
    pv.agent ? h('p', { class: 'agent' }, 'Would go to agent ', h('strong', {}, pv.agent.name), ` (id ${pv.agent.id})`) : null,
    rendered.length ? h('dl', { class: 'rendered' }, rendered.map(([param, text]) => [
      h('dt', {}, param),
      h('dd', {}, typeof text === 'string' ? text : JSON.stringify(text)),
    ])) : null,
    pv.error ? h('p', { class: 'error-text preview-error' }, `Would fail: ${pv.error}`) : null);
}
