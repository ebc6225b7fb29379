// Browser tests of the workflow builder page (GET /): a real headless Chromium drives the
// page served by the engine binary; every check goes through the page. Run: ./run.sh
// (or `npm test` here once `npm ci` ran and target/debug/workflow-engine is built).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngine, startBrowser, buildWorkflow, ruleId, SEED_WORKFLOWS } from './lib.mjs';

let engine;
let browser;
let page;
const requests = [];
const problems = [];

before(async () => {
  engine = await startEngine();
  browser = await startBrowser();
  page = browser.page;
  page.setDefaultTimeout(15_000);
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (409|422)/.test(m.text())) problems.push(`console: ${m.text()}`); });
  await page.goto(engine.base + '/');
});

after(async () => {
  await browser?.close();
  await engine?.stop();
});

/** The workflows the page's API reports, by name (a check of what the page saved). */
async function stored() {
  const r = await fetch(`${engine.base}/api/v1/workflows`);
  const { workflows } = await r.json();
  return Object.fromEntries(workflows.map((w) => [w.name, w]));
}

async function openEditorOf(name) {
  await page.goto(`${engine.base}/#/workflows`);
  await page.getByRole('link', { name: `Edit ${name}` }).click();
  await page.locator('#editor-title', { hasText: name }).waitFor();
}

test('the page and its assets come from the engine, with a strict CSP', async () => {
  const r = await fetch(engine.base + '/');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
  const js = await fetch(engine.base + '/ui/app.js');
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  await page.locator('h2', { hasText: 'Workflows' }).waitFor();
  await page.getByText('No workflows yet').waitFor();
});

test("builds the seed's workflows through the page alone", async () => {
  for (const wf of SEED_WORKFLOWS) {
    await page.getByRole('link', { name: 'New workflow' }).first().click();
    await page.locator('#editor-title', { hasText: 'New workflow' }).waitFor();
    await buildWorkflow(page, wf);
    await page.click('#wf-save');
    await page.locator('#wf-summary', { hasText: `Saved “${wf.name}”, version 1.` }).waitFor();
    await page.goto(`${engine.base}/#/workflows`);
    await page.locator('tr', { hasText: wf.name }).waitFor();
  }
  const saved = await stored();
  for (const wf of SEED_WORKFLOWS) {
    const got = saved[wf.name];
    assert.ok(got, `${wf.name} saved`);
    for (const key of ['trigger_event', 'conditions', 'actions', 'priority', 'stop_after']) {
      assert.deepEqual(got[key], wf[key], `${wf.name}: ${key}`);
    }
    assert.equal(got.description, wf.description, `${wf.name}: description`);
    assert.equal(got.active, true);
  }
  // the list shows trigger, priority, stop_after, active, version and the last run
  const row = page.locator('tr', { hasText: 'Churning customer rescue' });
  await row.getByText('customer.retention_changed').waitFor();
  assert.equal(await row.locator('td.num').first().textContent(), '10');
  await row.getByText('never ran').waitFor();
});

test('validation errors land next to the field their path names', async () => {
  await page.goto(`${engine.base}/#/new`);
  await page.fill('#wf-name', 'Broken on purpose');
  await page.selectOption('#wf-trigger', 'customer.deposited');
  await page.click(ruleId('/conditions', 'add-rule'));
  const rule = '/conditions/rules/0';
  await page.selectOption(ruleId(rule, 'field'), 'event.amount');
  await page.selectOption(ruleId(rule, 'operator'), 'gte');
  await page.fill(ruleId(rule, 'value'), 'lots');
  await page.selectOption('#add-action-type', 'create_task');
  await page.click('#add-action');
  await page.fill('#a-0-p-title', 'Call them');
  await page.click('#wf-save');

  const valueError = page.locator(`[data-path="${rule}/value"] + .field-error`);
  await valueError.waitFor();
  assert.match(await valueError.textContent(), /expected a number/);
  assert.equal(await page.getAttribute(ruleId(rule, 'value'), 'aria-invalid'), 'true');
  const dueError = page.locator('[data-path="/actions/0/params/due_in"] + .field-error');
  assert.match(await dueError.textContent(), /due_in/);
  // focus went to the first bad field, and nothing was saved
  assert.equal(await page.evaluate(() => document.activeElement.id), ruleId(rule, 'value').slice(1));
  assert.equal((await stored())['Broken on purpose'], undefined);

  // fixing both and checking clears the errors
  await page.fill(ruleId(rule, 'value'), '1000');
  await page.fill('#a-0-p-due_in-n', '2');
  await page.click('#wf-check');
  await page.locator('#wf-summary p', { hasText: /^(Valid|Not valid)\./ }).waitFor();
  assert.deepEqual(await page.locator('#wf-form .field-error').allTextContents(), []);
  assert.match(await page.locator('#wf-summary p').textContent(), /^Valid\./);
});

test('a dry run shows the trace with the value each rule saw, the plan and what stop_after skipped', async () => {
  await openEditorOf('Auto-assign high-value deposits');
  const event = { id: 'ui-dry-1', type: 'customer.deposited', customer_id: 2, data: { amount: 1500, currency: 'USD' } };
  await page.check('#t-raw'); // the event and the snapshot as JSON ("Advanced")
  await page.fill('#t-event', JSON.stringify(event));
  await page.check('#t-mode-typed');
  await page.fill('#t-customer-json', JSON.stringify({ id: 2, first_name: 'Bruno', country: 'BR', retention_status: 'churning' }));
  await page.click('#t-dry-run');

  const result = page.locator('#t-result .dry-run-result');
  await result.waitFor();
  const amount = result.locator('.trace-node.t-rule[data-field="event.amount"]');
  assert.match(await amount.textContent(), /passed.*event\.amount.*gte.*1000.*saw.*1500/s);
  const status = result.locator('.trace-node.t-rule[data-field="customer.retention_status"]');
  assert.match(await status.textContent(), /passed.*saw.*"churning"/s);
  assert.deepEqual(await result.locator('ol.plan > li').count(), 1);
  assert.deepEqual(await result.locator('ol.plan-actions code').allTextContents(), ['handover_to_retention', 'send_email', 'add_note']);

  // a rule that fails shows what it saw
  await page.fill('#t-event', JSON.stringify({ ...event, data: { amount: 400 } }));
  await page.click('#t-dry-run');
  await result.getByText('Nothing would run.').waitFor();
  assert.match(await amount.textContent(), /failed.*saw.*400/s);

  // with the other stored workflows, the plan is in priority order ...
  await page.fill('#t-event', JSON.stringify({ ...event, data: { amount: 12000, currency: 'USD' } }));
  await page.check('#t-others');
  await page.click('#t-dry-run');
  await result.locator('ol.plan > li').nth(2).waitFor();
  const order = await result.locator('ol.plan > li > strong').allTextContents();
  assert.deepEqual(order, ['High-value deposit alert', 'Auto-assign high-value deposits', 'New depositor onboarding']);

  // ... and the unsaved draft with stop_after skips the lower-priority one
  await page.check('#wf-stop-after');
  await page.click('#t-dry-run');
  const skipped = result.locator('h4', { hasText: 'Skipped by stop_after' });
  await skipped.waitFor();
  assert.match(await result.textContent(), /New depositor onboarding matched but was skipped by Auto-assign high-value deposits/);
  assert.deepEqual(await result.locator('ol.plan > li > strong').allTextContents(), ['High-value deposit alert', 'Auto-assign high-value deposits']);
  assert.equal((await stored())['Auto-assign high-value deposits'].stop_after, false, 'a dry run saves nothing');
});

test('a sent event shows up in the runs view with its steps and errors', async () => {
  await openEditorOf('High-value deposit alert');
  // customer 4242 has no row: the snapshot is only its id, so only the workflow that looks
  // at the event alone matches; its internal steps then fail on the missing customer.
  const event = { id: 'ui-sent-1', type: 'customer.deposited', customer_id: 4242, data: { amount: 12000, currency: 'USD' } };
  await page.check('#t-raw');
  await page.fill('#t-event', JSON.stringify(event, null, 2));
  await page.click('#t-send');
  await page.locator('#t-result', { hasText: 'Event ui-sent-1 (customer.deposited) published' }).waitFor();
  await page.click('#t-runs-link');
  await page.locator('h2', { hasText: 'Runs of customer 4242' }).waitFor();
  // the page refreshes every 3 s; the engine consumes, matches and runs meanwhile
  const run = page.locator('li.run', { hasText: 'High-value deposit alert' });
  await run.waitFor({ timeout: 30_000 });
  await page.waitForFunction(() => {
    const li = document.querySelector('#r-list li.run');
    return li && /run-(done|failed|waiting)/.test(li.className) && li.querySelectorAll('tbody tr').length > 0;
  }, null, { timeout: 30_000 });
  await run.locator('summary').click();
  const steps = run.locator('table.steps tbody tr');
  assert.ok(await steps.count() >= 1);
  const first = await steps.first().locator('td').allTextContents();
  assert.equal(first[1], 'webhook');
  const status = await run.locator('summary .badge').first().textContent();
  const text = await run.textContent();
  console.log(`# run of customer 4242: ${status}; step 1: ${first.slice(1, 5).join(' | ')}`);
  if (status === 'failed') assert.match(text, /Error|failed/, 'a failed run shows its error');
  assert.match(text, /Attempts/);

  // the same run from the workflow's side
  await page.goto(`${engine.base}/#/workflows`);
  const row = page.locator('tr', { hasText: 'High-value deposit alert' });
  await row.locator('.last-run .badge').waitFor();
  await row.getByRole('link', { name: 'Runs of High-value deposit alert' }).click();
  await page.locator('h2', { hasText: 'Runs of High-value deposit alert' }).waitFor();
  await page.locator('li.run', { hasText: 'customer 4242' }).waitFor();
});

test('a backtest shows how many archived events the draft and the current version match', async () => {
  // Three more deposits for the archive, beside the 12,000 one sent above (consumed events
  // are archived whether or not a workflow runs on them).
  for (const [id, amount] of [['ui-bt-1', 500], ['ui-bt-2', 25000], ['ui-bt-3', 9000]]) {
    const r = await fetch(`${engine.base}/api/v1/events`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, type: 'customer.deposited', customer_id: 4243, data: { amount, currency: 'USD' } }),
    });
    assert.equal(r.status, 202);
  }
  const archived = async () => {
    const r = await fetch(`${engine.base}/api/v1/backtest`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workflows: [{ name: 'all deposits', trigger_event: 'customer.deposited', actions: [{ type: 'add_note', params: { body: 'x' } }] }] }),
    });
    return (await r.json()).events;
  };
  const deadline = Date.now() + 30_000;
  while ((await archived()) < 4) {
    assert.ok(Date.now() < deadline, 'the deposits were not archived in time');
    await new Promise((r) => setTimeout(r, 250));
  }

  await openEditorOf('High-value deposit alert');
  await page.click('#t-backtest');
  const summary = page.locator('#t-bt-summary');
  await summary.waitFor();
  // gte 10000: 12,000 and 25,000.
  assert.match(await summary.textContent(),
    /^This draft would have matched 2 of (\d+) customer\.deposited events in the last 7 days; the current version matched 2 of \1\.$/);
  // The draft lowers its threshold: 9,000 matches too, the saved version is unchanged.
  await page.fill(ruleId('/conditions/rules/0', 'value'), '5000');
  await page.click('#t-backtest');
  await page.locator('#t-bt-summary', { hasText: 'matched 3 of' }).waitFor();
  assert.match(await summary.textContent(), /draft would have matched 3 of \d+ .*current version matched 2 of/);
  await page.locator('#t-bt-result summary').click();
  assert.ok((await page.locator('#t-bt-result .bt-sample li').allTextContents()).some((t) => t.includes('ui-bt-3')));
  assert.equal((await stored())['High-value deposit alert'].conditions.rules[0].value, 10000, 'a backtest saves nothing');
});

test('enable/disable, version history and delete with confirmation', async () => {
  await page.goto(`${engine.base}/#/workflows`);
  const row = () => page.locator('tr', { hasText: 'High-value deposit alert' });
  await row().getByRole('button', { name: 'Disable High-value deposit alert' }).click();
  await row().getByRole('button', { name: 'Enable High-value deposit alert' }).waitFor();
  assert.equal((await stored())['High-value deposit alert'].active, false);
  assert.equal((await stored())['High-value deposit alert'].version, 2);
  await row().getByRole('link', { name: 'History of High-value deposit alert' }).click();
  await page.locator('h2', { hasText: 'History: High-value deposit alert' }).waitFor();
  assert.deepEqual(await page.locator('ol.history summary strong').allTextContents(), ['Version 2', 'Version 1']);
  assert.match(await page.locator('ol.history summary').first().textContent(), /updated by builder page/);

  await page.goto(`${engine.base}/#/workflows`);
  await row().getByRole('button', { name: 'Delete High-value deposit alert' }).click();
  await page.locator('#confirm-dialog[open]').waitFor();
  await page.keyboard.press('Escape'); // cancel keeps it
  await page.locator('#confirm-dialog[open]').waitFor({ state: 'detached' }).catch(() => {});
  assert.ok((await stored())['High-value deposit alert']);
  await row().getByRole('button', { name: 'Delete High-value deposit alert' }).click();
  await page.click('#confirm-ok');
  await row().waitFor({ state: 'detached' });
  assert.equal((await stored())['High-value deposit alert'], undefined);
});

test('guard rails are set through the page: limit, send window, exit event, transactional', async () => {
  await page.goto(`${engine.base}/#/new`);
  await page.fill('#wf-name', 'Guarded welcome');
  await page.selectOption('#wf-trigger', 'customer.deposited');
  await page.selectOption('#add-action-type', 'send_email');
  await page.click('#add-action');
  await page.fill('#a-0-p-subject', 'Your receipt');
  await page.selectOption('#wf-limit', 'cooldown');
  await page.fill('#wf-cooldown-value', '7');
  await page.selectOption('#wf-cooldown-unit', 'days');
  await page.check('#wf-window');
  await page.fill('#wf-window-from', '09:00');
  await page.fill('#wf-window-to', '20:00');
  await page.getByLabel('Mon', { exact: true }).check();
  await page.getByLabel('Fri', { exact: true }).check();
  await page.getByLabel(/Step 1 \(send_email\) is transactional/).check();
  await page.click('#wf-add-exit');
  await page.getByLabel('Exit event 1').fill('customer.withdrawal_requested');
  await page.click('#wf-save');
  await page.locator('#wf-summary', { hasText: 'Saved “Guarded welcome”, version 1.' }).waitFor();
  const got = (await stored())['Guarded welcome'];
  assert.deepEqual(got.limits, { cooldown: { days: 7 } });
  assert.deepEqual(got.send_window, { from: '09:00', to: '20:00', days: ['mon', 'fri'] });
  assert.deepEqual(got.exit_when, [{ trigger_event: 'customer.withdrawal_requested' }]);
  assert.equal(got.actions[0].transactional, true);
  // reopened, the panel shows what was stored
  await openEditorOf('Guarded welcome');
  assert.equal(await page.inputValue('#wf-limit'), 'cooldown');
  assert.equal(await page.isChecked('#wf-window'), true);
  assert.equal(await page.getByLabel('Exit event 1').inputValue(), 'customer.withdrawal_requested');
});

test('the editor works from the keyboard', async () => {
  await page.goto(`${engine.base}/#/new`);
  await page.locator('#wf-name').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'wf-name');
  await page.focus(ruleId('/conditions', 'add-rule'));
  await page.keyboard.press('Enter');
  // focus lands on the new rule's field picker; arrow keys change it
  assert.equal(await page.evaluate(() => document.activeElement.id), ruleId('/conditions/rules/0', 'field').slice(1));
  await page.focus('#add-action-type');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'add-action');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'a-0-type');
  // every form control has an accessible name
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => !el.closest('dialog') && !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim())))
    .map((el) => el.id || el.outerHTML.slice(0, 80)));
  assert.deepEqual(unnamed, []);
});

test('with http.auth_token set, the page asks for the token once', async () => {
  const secured = await startEngine({ token: 's3cret', seedStatuses: false });
  const other = await startBrowser();
  try {
    const p = other.page;
    await p.goto(secured.base + '/');
    await p.locator('#token-dialog[open]').waitFor();
    await p.fill('#token-input', 'wrong');
    await p.click('#token-dialog button[value="ok"]');
    await p.locator('#token-error', { hasText: 'refused' }).waitFor();
    await p.fill('#token-input', 's3cret');
    await p.click('#token-dialog button[value="ok"]');
    await p.getByText('No workflows yet').waitFor();
    assert.equal(await p.evaluate(() => sessionStorage.getItem('wfe-token')), 's3cret');
    await p.getByRole('link', { name: 'Runs' }).click();
    await p.getByText('No runs match.').waitFor();
    assert.equal(await p.locator('#token-dialog[open]').count(), 0);
  } finally {
    await other.close();
    await secured.stop();
  }
});

test('no request left the engine and the page logged no error', () => {
  const foreign = requests.filter((u) => !u.startsWith(engine.base));
  assert.deepEqual(foreign, []);
  assert.deepEqual(problems, []);
});
