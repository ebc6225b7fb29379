// Browser tests of journeys in the builder page: the registration journey of
// docs/workflow-language.md built from an empty page through the action tree editor
// (no JSON typed), saved, and run: a customer who deposits goes down `on_event` and the
// branch path of their amount, one who does not goes down `on_timeout`; the runs view
// draws the way each run went. A workflow with nested journeys survives being loaded and
// saved unchanged, and its journey parts (field-to-field rules, `save`, "Move to…") are
// edited through the page. Customers and events are set up through the API; what the page
// saved and what the runs did are read back from the API. Run: ./run.sh

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngine, startBrowser, api, ruleId, setRule, unnamedControls, REGISTRATION_JOURNEY as JOURNEY } from './lib.mjs';

let engine;
let browser;
let page;
const problems = [];

/** A journey with every shape the editor must give back as it came (lone rules, a field-to-field rule, empty lists, save, on_error). */
const NESTED = {
  name: 'Withdrawal watch',
  trigger_event: 'customer.deposited',
  priority: 50,
  conditions: { field: 'event.amount', operator: 'gte', value: 500 },
  actions: [
    {
      type: 'webhook', name: 'crm_sync',
      params: { url: 'https://crm.example/accounts', body: { id: '{{customer.id}}' } },
      save: { 'customer.custom.crm_account': '/account/id' },
    },
    {
      type: 'wait_for_event', name: 'withdrawal',
      params: {
        event: 'customer.withdrew',
        timeout: { hours: 12 },
        conditions: {
          match: 'any',
          rules: [
            { field: 'transaction.id', operator: 'eq', value: { field: 'trigger.transaction.id' } },
            { not: { field: 'event.amount', operator: 'lt', value: 100 } },
          ],
        },
        on_event: [{
          type: 'branch', name: 'size',
          params: {
            paths: [
              {
                when: { field: 'steps.withdrawal.event.amount', operator: 'gte', value: 1000 },
                actions: [{ type: 'create_task', params: { title: 'Big withdrawal', due_in: { hours: 2 } } }],
              },
              { when: { match: 'all', rules: [] }, actions: [] },
            ],
            otherwise: [],
          },
        }],
      },
    },
    { type: 'add_note', params: { body: 'watched' }, on_error: 'continue' },
  ],
};

before(async () => {
  // A wait's timeout counts as a delay; 6 s (not the usual 2) leaves the deposit test
  // room to publish the deposit while the wait is open on a busy machine.
  engine = await startEngine({ env: { WFE__SCHEDULER__DELAY_OVERRIDE_SECS: '6', WFE__SCHEDULER__POLL_INTERVAL_SECS: '1' } });
  browser = await startBrowser();
  page = browser.page;
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (409|422)/.test(m.text())) problems.push(`console: ${m.text()}`); });
  for (const id of [7001, 7002]) {
    const r = await api(engine.base, 'PUT', `/api/v1/customers/${id}`, { first_name: `Customer ${id}`, country: 'BR' });
    assert.ok([200, 201].includes(r.status), JSON.stringify(r.body));
  }
  // the custom fields a webhook may save into exist once a customer has them
  await api(engine.base, 'PUT', '/api/v1/customers/7003', { first_name: 'Fields', custom: { crm_account: 'none', crm_status: 'none' } });
  await page.goto(engine.base + '/');
});

after(async () => {
  await browser?.close();
  await engine?.stop();
});

/** The stored workflow named `name`. */
async function stored(name) {
  const { body } = await api(engine.base, 'GET', '/api/v1/workflows');
  const found = body.workflows.find((w) => w.name === name);
  return found && (await api(engine.base, 'GET', `/api/v1/workflows/${found.id}`)).body;
}

/** Polls the API until the customer's run of `workflowId` satisfies `check`. */
async function waitRun(customerId, workflowId, check, what) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { body } = await api(engine.base, 'GET', `/api/v1/runs?customer_id=${customerId}&workflow_id=${workflowId}`);
    const run = body.runs[0];
    if (run && check(run)) return run;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function publish(event) {
  const r = await api(engine.base, 'POST', '/api/v1/events', event);
  assert.equal(r.status, 202, JSON.stringify(r.body));
}

/** Adds an action of `type` at the end of the list at `listPath` ("" is the workflow's own). */
async function addStep(listPath, type) {
  const suffix = listPath === '' ? '' : `-${listPath.replace(/\./g, '-')}`;
  await page.selectOption(`#add-action-type${suffix}`, type);
  await page.click(`#add-action${suffix}`);
}

/** Opens the run of `name` in the runs view of a customer and returns its list item. */
async function openRun(customerId, name) {
  await page.goto(`${engine.base}/#/runs?customer_id=${customerId}`);
  const run = page.locator('li.run', { hasText: name });
  await run.locator('summary').click();
  await run.locator('.run-flow svg').waitFor();
  return run;
}

let journeyId;

test('the registration journey is built from an empty page through the tree editor', async () => {
  await page.getByRole('link', { name: 'New workflow' }).first().click();
  await page.locator('#editor-title', { hasText: 'New workflow' }).waitFor();
  await page.fill('#wf-name', JOURNEY.name);
  await page.selectOption('#wf-trigger', 'customer.registered');

  // the wait: name, awaited event, timeout, a condition on the awaited event
  await addStep('', 'wait_for_event');
  await page.fill('#a-0-name', 'deposit');
  await page.selectOption('#a-0-p-event', 'customer.deposited');
  await page.fill('#a-0-p-timeout-n', '3');
  await page.selectOption('#a-0-p-timeout-unit', 'days');
  const waitCond = '/actions/0/params/conditions';
  await page.click(ruleId(waitCond, 'add-rule'));
  await setRule(page, { field: 'event.amount', operator: 'gt', value: 0 }, `${waitCond}/rules/0`);

  // on event: a branch on the deposit's amount, read from the wait as steps.deposit.*
  await addStep('0.on_event', 'branch');
  const branch = '/actions/0/params/on_event/0/params/paths';
  await page.click(ruleId(`${branch}/0/when`, 'add-rule'));
  await setRule(page, { field: 'steps.deposit.event.amount', operator: 'gte', value: 1000 }, `${branch}/0/when/rules/0`);
  await addStep('0.on_event.0.paths.0', 'add_note');
  await page.fill('#a-0-on_event-0-paths-0-0-p-body', 'Big first deposit: {{steps.deposit.event.amount}}');
  await page.click('#a-0-on_event-0-add-path');
  await page.click(ruleId(`${branch}/1/when`, 'add-rule'));
  await setRule(page, { field: 'steps.deposit.event.amount', operator: 'lt', value: 1000 }, `${branch}/1/when/rules/0`);
  await addStep('0.on_event.0.paths.1', 'add_note');
  await page.fill('#a-0-on_event-0-paths-1-0-p-body', 'Small first deposit');

  // on timeout: a task for the agent
  await addStep('0.on_timeout', 'create_task');
  await page.fill('#a-0-on_timeout-0-p-title', 'Call {{customer.first_name}}: no deposit yet');
  await page.fill('#a-0-on_timeout-0-p-due_in-n', '1');

  // the diagram follows the tree: the wait's two arms, the branch's two paths and otherwise
  const flow = page.locator('#wf-flow svg');
  await flow.locator('[data-arm="0.on_event.0.paths.1"]').waitFor();
  assert.equal(await flow.locator('[data-arm="0.on_event"] > title').textContent(), 'on event customer.deposited');
  assert.equal(await flow.locator('[data-arm="0.on_timeout"] > title').textContent(), 'after 3 days');
  assert.equal(await flow.locator('[data-arm="0.on_event.0.paths.0"] > title').textContent(), 'when steps.deposit.event.amount ≥ 1000');
  assert.equal(await flow.locator('[data-arm="0.on_event.0.paths.1"] > title').textContent(), 'when steps.deposit.event.amount < 1000');
  assert.equal(await flow.locator('[data-arm="0.on_event.0.otherwise"] > title').textContent(), 'otherwise');
  assert.match(await flow.locator('[data-path="0.on_timeout.0"]').textContent(), /Create task/);

  assert.deepEqual(await unnamedControls(page), []);
  await page.click('#wf-save');
  await page.locator('#wf-summary', { hasText: `Saved “${JOURNEY.name}”, version 1.` }).waitFor();
  const saved = await stored(JOURNEY.name);
  assert.equal(saved.trigger_event, JOURNEY.trigger_event);
  assert.deepEqual(saved.actions, JOURNEY.actions);
  journeyId = saved.id;
});

test('a customer who deposits goes down on_event and the branch path of the amount, drawn in the runs view', async () => {
  assert.ok(journeyId, 'the journey was saved');
  await publish({ id: 'j-reg-7001', type: 'customer.registered', customer_id: 7001, data: { source: 'landing_page' } });
  await waitRun(7001, journeyId, (r) => r.status === 'waiting', 'the run to wait for the deposit');
  await publish({ id: 'j-dep-7001', type: 'customer.deposited', customer_id: 7001, data: { amount: 2500, currency: 'USD' } });
  const done = await waitRun(7001, journeyId, (r) => r.status === 'done', 'the run to finish');
  assert.deepEqual(done.steps.map((s) => s.path), ['0', '0.on_event.0', '0.on_event.0.paths.0.0']);

  const run = await openRun(7001, JOURNEY.name);
  // the step list: where each step sits and what the wait and the branch decided
  const rows = run.locator('table.steps tbody tr');
  assert.deepEqual(await rows.locator('td.step-path').allTextContents(), ['1', '1 › on event › 1', '1 › on event › 1 › path 1 › 1']);
  assert.equal(await run.locator('tr[data-path="0"] .step-outcome').textContent(), 'customer.deposited arrived: went on event');
  assert.equal(await run.locator('tr[data-path="0.on_event.0"] .step-outcome').textContent(), 'took path 1');
  // the diagram: the path taken in colour, the arms not taken greyed
  const flow = run.locator('.run-flow svg');
  for (const path of ['0', '0.on_event.0', '0.on_event.0.paths.0.0']) {
    assert.equal(await flow.locator(`.flow-node.run-done[data-path="${path}"]`).count(), 1, `step ${path} highlighted`);
  }
  for (const arm of ['0.on_event', '0.on_event.0.paths.0']) assert.equal(await flow.locator(`.flow-arm.taken[data-arm="${arm}"]`).count(), 1, `${arm} taken`);
  for (const arm of ['0.on_timeout', '0.on_event.0.paths.1', '0.on_event.0.otherwise']) {
    assert.equal(await flow.locator(`.flow-arm.not-taken[data-arm="${arm}"]`).count(), 1, `${arm} greyed`);
  }
  assert.equal(await flow.locator('.flow-node.not-taken[data-path="0.on_event.0.paths.1.0"]').count(), 1);
  assert.equal(await flow.locator('.flow-node.not-taken[data-path="0.on_timeout.0"]').count(), 1);
});

test('a customer who never deposits waits, then goes down on_timeout, as the runs view shows', async () => {
  assert.ok(journeyId, 'the journey was saved');
  await publish({ id: 'j-reg-7002', type: 'customer.registered', customer_id: 7002, data: { source: 'landing_page' } });
  await waitRun(7002, journeyId, (r) => r.status === 'waiting', 'the run to wait for the deposit');

  // while it waits, the page shows where
  const run = await openRun(7002, JOURNEY.name);
  const flow = run.locator('.run-flow svg');
  await flow.locator('.flow-node.run-waiting[data-path="0"]').waitFor();
  assert.match(await flow.locator('[data-path="0"]').textContent(), /waiting here/);
  assert.match(await run.locator('.run-body').textContent(), /Waiting at step 1 for customer\.deposited until/);

  // the timeout fires (a delay of a few seconds here); the page refreshes itself
  await flow.locator('.flow-arm.taken[data-arm="0.on_timeout"]').waitFor({ timeout: 60_000 });
  const done = await waitRun(7002, journeyId, (r) => r.status === 'done', 'the run to finish');
  assert.deepEqual(done.steps.map((s) => s.path), ['0', '0.on_timeout.0']);
  await run.locator('tr[data-path="0.on_timeout.0"]').waitFor();
  assert.equal(await run.locator('tr[data-path="0"] .step-outcome').textContent(), 'timed out: went on timeout');
  assert.deepEqual(await run.locator('table.steps td.step-path').allTextContents(), ['1', '1 › on timeout › 1']);
  const drawn = run.locator('.run-flow svg');
  assert.equal(await drawn.locator('.flow-node.run-done[data-path="0.on_timeout.0"]').count(), 1);
  assert.equal(await drawn.locator('.flow-arm.not-taken[data-arm="0.on_event"]').count(), 1);
  assert.equal(await drawn.locator('.flow-node.not-taken[data-path="0.on_event.0"]').count(), 1);
});

let nestedId;

test('a workflow with nested journeys is saved unchanged as it was loaded', async () => {
  const created = await api(engine.base, 'POST', '/api/v1/workflows', NESTED);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  nestedId = created.body.id;
  await page.goto(`${engine.base}/#/edit/${nestedId}`);
  await page.locator('#editor-title', { hasText: NESTED.name }).waitFor();
  await page.locator('#a-1-on_event-0-type').waitFor();
  await page.click('#wf-save');
  await page.locator('#wf-summary', { hasText: `Saved “${NESTED.name}”, version 2.` }).waitFor();
  const saved = (await api(engine.base, 'GET', `/api/v1/workflows/${nestedId}`)).body;
  for (const key of Object.keys(NESTED)) assert.deepEqual(saved[key], NESTED[key], key);
  const { versions } = (await api(engine.base, 'GET', `/api/v1/workflows/${nestedId}/versions`)).body;
  assert.deepEqual(versions[1].definition.actions, versions[0].definition.actions);
});

test('journey parts are edited through the page: field-to-field rules, save, move to another list', async () => {
  assert.ok(nestedId, 'the nested workflow exists');
  await page.goto(`${engine.base}/#/edit/${nestedId}`);
  await page.locator('#a-1-on_event-0-type').waitFor();

  // what was loaded is shown in the pickers, not as JSON
  const waitCond = '/actions/1/params/conditions';
  assert.equal(await page.inputValue(ruleId(`${waitCond}/rules/0`, 'value-kind')), 'field');
  assert.equal(await page.inputValue(ruleId(`${waitCond}/rules/0`, 'value-field')), 'trigger.transaction.id');
  const when = '/actions/1/params/on_event/0/params/paths/0/when/rules/0';
  assert.equal(await page.inputValue(ruleId(when, 'field')), 'steps.withdrawal.event.amount');
  assert.equal(await page.inputValue('#a-0-save-0-field'), 'crm_account');
  assert.equal(await page.inputValue('#a-0-save-0-pointer'), '/account/id');
  assert.equal(await page.inputValue('#a-1-p-event'), 'customer.withdrew');
  assert.equal(await page.inputValue('#a-1-p-timeout-n'), '12');
  assert.equal(await page.inputValue('#a-1-p-timeout-unit'), 'hours');

  // a second field saved from the webhook's answer
  await page.click('#a-0-save-add');
  await page.fill('#a-0-save-1-field', 'crm_status');
  await page.fill('#a-0-save-1-pointer', '/account/status');
  // the awaited withdrawal in the deposit's currency: a field compared with a trigger field
  await page.click(ruleId(waitCond, 'add-rule'));
  const rule = `${waitCond}/rules/2`;
  await page.selectOption(ruleId(rule, 'field'), 'event.currency');
  await page.selectOption(ruleId(rule, 'operator'), 'eq');
  await page.selectOption(ruleId(rule, 'value-kind'), 'field');
  await page.selectOption(ruleId(rule, 'value-field'), 'trigger.currency');
  // the note moves into the branch's second path; otherwise goes; an SMS on timeout
  await page.selectOption('#a-2-move-to', { label: 'step 2 › on event › 1 › path 2' });
  await page.locator('#a-1-on_event-0-paths-1-0-type').waitFor();
  assert.equal(await page.locator('#a-2-type').count(), 0, 'the note left the workflow’s own list');
  await page.click('#a-1-on_event-0-remove-otherwise');
  await addStep('1.on_timeout', 'send_sms');
  await page.fill('#a-1-on_timeout-0-p-text', 'We noticed a withdrawal');
  await page.locator('#wf-flow [data-path="1.on_event.0.paths.1.0"]').waitFor();
  assert.equal(await page.locator('#wf-flow [data-arm="1.on_event.0.otherwise"]').count(), 1, 'a branch without otherwise still goes on');

  await page.click('#wf-save');
  await page.locator('#wf-summary', { hasText: `Saved “${NESTED.name}”, version 3.` }).waitFor();
  const expected = structuredClone(NESTED.actions);
  const note = expected.pop();
  expected[0].save['customer.custom.crm_status'] = '/account/status';
  expected[1].params.conditions.rules.push({ field: 'event.currency', operator: 'eq', value: { field: 'trigger.currency' } });
  expected[1].params.on_event[0].params.paths[1].actions.push(note);
  delete expected[1].params.on_event[0].params.otherwise;
  expected[1].params.on_timeout = [{ type: 'send_sms', params: { text: 'We noticed a withdrawal' } }];
  assert.deepEqual((await api(engine.base, 'GET', `/api/v1/workflows/${nestedId}`)).body.actions, expected);
});

test('problems inside a journey land next to the nested input their path names', async () => {
  await page.goto(`${engine.base}/#/new`);
  await page.fill('#wf-name', 'Unfinished journey');
  await addStep('', 'wait_for_event');
  await page.selectOption('#a-0-p-event', 'customer.deposited');
  await addStep('0.on_timeout', 'create_task');
  await page.fill('#a-0-on_timeout-0-p-title', 'Call them');
  await page.click('#wf-check');
  const nameError = page.locator('[data-path="/actions/0/name"] + .field-error');
  await nameError.waitFor();
  assert.match(await nameError.textContent(), /needs a name/);
  assert.match(await page.locator('[data-path="/actions/0/params/timeout"] + .field-error').textContent(), /required/);
  assert.match(await page.locator('[data-path="/actions/0/params/on_timeout/0/params/due_in"] + .field-error').textContent(), /due_in|required/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'a-0-name');
});

test('the journey pages logged no error', () => {
  assert.deepEqual(problems, []);
});
