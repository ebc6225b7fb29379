// Browser tests of the operators' pages of the builder (issue 14): runs paged and filtered
// by time, retried and cancelled one by one and by filter, "test with this run's event",
// two versions compared, and option labels shown whole. Setup goes through the API (it
// is not what is tested); every check of the page goes through the page, and outcomes are
// read back from the API. Run: ./run.sh

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngine, startBrowser, api, ruleId, unnamedControls, SEED_WORKFLOWS } from './lib.mjs';

let engine;
let browser;
let page;
const problems = [];
const ids = {};

/** Runs the API lists for a query, every page (the API's own cursor). */
async function allRuns(query) {
  const out = [];
  let cursor = null;
  for (;;) {
    const q = new URLSearchParams({ ...query, limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const r = await api(engine.base, 'GET', `/api/v1/runs?${q}`);
    out.push(...r.body.runs);
    cursor = r.body.next_cursor;
    if (!cursor) return out;
  }
}

/** Waits (polling the API) until `check(runs)` holds for the runs of `query`. */
async function waitRuns(query, check, what) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const runs = await allRuns(query);
    if (check(runs)) return runs;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(runs.map((r) => [r.id, r.status]))}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The selects of the view whose chosen option's label does not fit: each is compared
 * with a copy that holds only that option and takes its natural width, styled alike.
 */
async function cutOffSelects() {
  return page.evaluate(() => {
    const cut = [];
    for (const sel of document.querySelectorAll('#view select')) {
      const opt = sel.selectedOptions[0];
      if (!opt || !sel.offsetParent) continue;
      const probe = document.createElement('select');
      const cs = getComputedStyle(sel);
      for (const p of ['font', 'letter-spacing', 'padding', 'border', 'box-sizing', 'appearance']) probe.style.setProperty(p, cs.getPropertyValue(p));
      Object.assign(probe.style, { position: 'absolute', left: '0', top: '0', width: 'auto', maxWidth: 'none', visibility: 'hidden' });
      probe.append(new Option(opt.textContent));
      document.body.append(probe);
      const need = probe.getBoundingClientRect().width;
      probe.remove();
      const have = sel.getBoundingClientRect().width;
      if (need > have + 0.5) cut.push(`${sel.id}: “${opt.textContent}” needs ${need.toFixed(0)}px, has ${have.toFixed(0)}px`);
    }
    return cut;
  });
}

before(async () => {
  // The scheduler looks for due work every second, so a retried run resumes at once.
  engine = await startEngine({ env: { WFE__SCHEDULER__POLL_INTERVAL_SECS: '1' } });
  browser = await startBrowser();
  page = browser.page;
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (409|422)/.test(m.text())) problems.push(`console: ${m.text()}`); });
  for (const wf of SEED_WORKFLOWS) {
    const r = await api(engine.base, 'POST', '/api/v1/workflows', wf);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ids[wf.name] = r.body.id;
  }
  await page.goto(engine.base + '/');
});

after(async () => {
  await browser?.close();
  await engine?.stop();
});

test('option labels are shown whole: operators, fields, actions', async () => {
  for (const wf of SEED_WORKFLOWS) {
    await page.goto(`${engine.base}/#/edit/${ids[wf.name]}`);
    await page.locator('#editor-title', { hasText: wf.name }).waitFor();
    assert.deepEqual(await cutOffSelects(), [], wf.name);
  }
  // the label this issue names, in a nested group, beside the test panel
  await page.goto(`${engine.base}/#/new`);
  await page.selectOption('#wf-trigger', 'customer.retention_changed');
  await page.click(ruleId('/conditions', 'add-group'));
  await page.click(ruleId('/conditions/rules/0', 'add-group'));
  await page.click(ruleId('/conditions/rules/0/rules/0', 'add-rule'));
  const rule = '/conditions/rules/0/rules/0/rules/0';
  await page.selectOption(ruleId(rule, 'field'), 'customer.retention_status');
  await page.selectOption(ruleId(rule, 'operator'), 'is_not_empty');
  await page.selectOption(ruleId(rule, 'field'), 'customer.last_activity_at');
  await page.selectOption(ruleId(rule, 'operator'), 'lte');
  assert.equal(await page.locator(`${ruleId(rule, 'operator')} option:checked`).textContent(), 'less than or equal to');
  await page.click(ruleId('/conditions', 'add-rule'));
  await page.selectOption(ruleId('/conditions/rules/1', 'field'), 'customer.balance');
  await page.selectOption(ruleId('/conditions/rules/1', 'operator'), 'gte');
  assert.deepEqual(await cutOffSelects(), []);
  // the check itself sees a select narrower than its label
  await page.locator(ruleId(rule, 'operator')).evaluate((el) => { el.style.width = '7rem'; });
  assert.match((await cutOffSelects()).join('\n'), /less than or equal to/);
});

test('runs are paged past the newest 50 and filtered by time', async () => {
  const wf = await api(engine.base, 'POST', '/api/v1/workflows', {
    name: 'Paging probe', trigger_event: 'ui.paging', actions: [{ type: 'add_note', params: { body: 'probe' } }],
  });
  ids.paging = wf.body.id;
  // 55 customers without a row: each run fails at its note, which is all this needs.
  for (let i = 0; i < 55; i++) {
    const r = await api(engine.base, 'POST', '/api/v1/events', { id: `paging-${i}`, type: 'ui.paging', customer_id: 7000 + i, data: {} });
    assert.equal(r.status, 202, JSON.stringify(r.body));
  }
  const runs = await waitRuns({ workflow_id: ids.paging }, (rs) => rs.length === 55 && rs.every((r) => r.status === 'failed'), '55 failed runs');

  await page.goto(`${engine.base}/#/runs?workflow_id=${ids.paging}`);
  await page.locator('#r-page', { hasText: 'runs 1–50' }).waitFor();
  assert.equal(await page.locator('#r-list li.run').count(), 50);
  assert.equal(await page.isDisabled('#r-newer'), true);
  const first = await page.locator('#r-list li.run').evaluateAll((els) => els.map((e) => Number(e.dataset.run)));
  await page.click('#r-older');
  await page.locator('#r-page', { hasText: 'runs 51–55' }).waitFor();
  const second = await page.locator('#r-list li.run').evaluateAll((els) => els.map((e) => Number(e.dataset.run)));
  assert.equal(second.length, 5);
  assert.equal(await page.isDisabled('#r-older'), true);
  assert.match(page.url(), /cursor=/);
  // the two pages are every run once, newest first
  assert.deepEqual([...first, ...second], runs.map((r) => r.id));
  await page.click('#r-newer');
  await page.locator('#r-page', { hasText: 'runs 1–50' }).waitFor();
  await page.locator('#r-list li.run summary').first().click();
  assert.deepEqual(await unnamedControls(page), []);

  // a time range: nothing was created after tomorrow, everything before it
  const tomorrow = new Date(Date.now() + 86_400_000);
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  await page.fill('#r-since', local(tomorrow));
  await page.click('#r-refresh');
  await page.locator('#r-list', { hasText: 'No runs match.' }).waitFor();
  assert.match(decodeURIComponent(page.url()), /since=\d{4}-\d\d-\d\dT/);
  await page.fill('#r-since', '');
  await page.fill('#r-until', local(tomorrow));
  await page.click('#r-refresh');
  await page.locator('#r-page', { hasText: 'runs 1–50' }).waitFor();
  assert.match(decodeURIComponent(page.url()), /until=\d{4}-\d\d-\d\dT/);
  await page.fill('#r-until', '');
});

test('retry and cancel one run from its entry', async () => {
  const [failed, other] = await allRuns({ workflow_id: ids.paging });
  await page.goto(`${engine.base}/#/runs?workflow_id=${ids.paging}`);
  const item = page.locator(`li.run[data-run="${failed.id}"]`);
  await item.locator('summary').click();
  await item.getByRole('button', { name: `Retry run ${failed.id}` }).click();
  await page.locator('#status', { hasText: `Run ${failed.id} is waiting: it goes on from step 1.` }).waitFor();
  // the engine ran the failed step again (the customer is still missing: it fails again)
  await waitRuns({ workflow_id: ids.paging }, (rs) => {
    const r = rs.find((x) => x.id === failed.id);
    return r.status === 'failed' && r.steps[0].attempts === 2;
  }, 'the retried step attempted a second time');

  const item2 = page.locator(`li.run[data-run="${other.id}"]`);
  await item2.locator('summary').click();
  await item2.getByRole('button', { name: `Cancel run ${other.id}` }).click();
  await page.locator('#confirm-dialog[open]').waitFor();
  await page.click('#confirm-ok');
  await page.locator('#status', { hasText: `Run ${other.id} is cancelled.` }).waitFor();
  await item2.locator('summary .badge', { hasText: 'cancelled' }).waitFor();
  assert.equal((await api(engine.base, 'GET', `/api/v1/runs/${other.id}`)).body.status, 'cancelled');
  // a cancelled run offers neither button
  assert.equal(await item2.getByRole('button', { name: /run/ }).count(), 0);
});

test('retry and cancel every run of a filter', async () => {
  await page.goto(`${engine.base}/#/runs?customer_id=7003`);
  await page.locator('#r-list li.run').first().waitFor();
  // the bulk calls cannot filter by customer: they are not offered with one
  assert.equal(await page.isDisabled('#r-retry-all'), true);
  assert.match(await page.locator('#r-bulk-hint').textContent(), /not by customer/);

  await page.goto(`${engine.base}/#/runs?workflow_id=${ids.paging}&status=failed`);
  await page.locator('#r-page', { hasText: 'runs 1–50' }).waitFor();
  const before = (await allRuns({ workflow_id: ids.paging, status: 'failed' })).length;
  assert.equal(before, 54);
  await page.click('#r-retry-all');
  await page.locator('#confirm-text', { hasText: 'Every failed run of “Paging probe”, with status failed' }).waitFor();
  await page.click('#confirm-ok');
  await page.locator('#status', { hasText: `${before} failed runs queued for retry.` }).waitFor();
  await waitRuns({ workflow_id: ids.paging, status: 'failed' }, (rs) => rs.length === before && rs.every((r) => r.steps[0].attempts >= 2), 'every failed run attempted again');

  await page.click('#r-cancel-all');
  await page.locator('#confirm-dialog[open]').waitFor();
  await page.click('#confirm-ok');
  await page.locator('#status', { hasText: `${before} runs cancelled.` }).waitFor();
  await page.locator('#r-list', { hasText: 'No runs match.' }).waitFor();
  const after = await allRuns({ workflow_id: ids.paging });
  assert.deepEqual([...new Set(after.map((r) => r.status))], ['cancelled']);
  // other workflows' runs were not touched
  assert.equal((await allRuns({ status: 'cancelled' })).length, 55);
});

test("a run's event opens in the test panel of its workflow and is dry-run", async () => {
  const r = await api(engine.base, 'POST', '/api/v1/events', { id: 'from-run-1', type: 'customer.deposited', customer_id: 9100, data: { amount: 25000, currency: 'EUR' } });
  assert.equal(r.status, 202);
  const alert = ids['High-value deposit alert'];
  const [run] = await waitRuns({ customer_id: '9100', workflow_id: alert }, (rs) => rs.length === 1 && ['failed', 'done'].includes(rs[0].status), 'the deposit alert run');
  await page.goto(`${engine.base}/#/runs?customer_id=9100`);
  const item = page.locator(`li.run[data-run="${run.id}"]`);
  await item.locator('summary').click();
  await item.getByRole('link', { name: `Test with the event of run ${run.id}` }).click();
  await page.locator('#editor-title', { hasText: 'High-value deposit alert' }).waitFor();
  await page.locator('#t-from-run', { hasText: `The event of run ${run.id}` }).waitFor();
  const event = JSON.parse(await page.inputValue('#t-event'));
  assert.equal(event.id, 'from-run-1');
  assert.deepEqual(event.data, { amount: 25000, currency: 'EUR' });
  assert.equal(await page.isChecked('#t-mode-stored'), true);
  assert.equal(await page.inputValue('#t-customer-id'), '9100');
  const result = page.locator('#t-result .dry-run-result');
  await result.waitFor();
  assert.match(await result.locator('.trace-node.t-rule[data-field="event.amount"]').textContent(), /passed.*saw.*25000/s);
});

test('two versions of a workflow, compared', async () => {
  const id = ids['Churning customer rescue'];
  const v1 = (await api(engine.base, 'GET', `/api/v1/workflows/${id}`)).body;
  const { id: _, created_at: _c, updated_at: _u, ...def } = v1;
  const v2 = await api(engine.base, 'PUT', `/api/v1/workflows/${id}`, { ...def, priority: 20, actions: [...def.actions, { type: 'add_note', params: { body: 'rescued' } }] });
  assert.equal(v2.status, 200, JSON.stringify(v2.body));

  await page.goto(`${engine.base}/#/history/${id}`);
  await page.locator('h2', { hasText: 'History: Churning customer rescue' }).waitFor();
  assert.equal(await page.locator('#h-from option:checked').textContent().then((t) => t.startsWith('Version 1')), true);
  assert.equal(await page.locator('#h-to option:checked').textContent().then((t) => t.startsWith('Version 2')), true);
  await page.click('#h-compare');
  const diff = page.locator('#h-diff .diff');
  await diff.locator('h3', { hasText: 'Version 1 → Version 2: 2 changes' }).waitFor();
  const changes = await diff.locator('ul.diff-changes li').allTextContents();
  assert.ok(changes.includes('/priority changed 10 → 20'), changes.join('\n'));
  assert.ok(changes.some((c) => c.startsWith(`/actions/${def.actions.length} added`) && c.includes('rescued')), changes.join('\n'));
  assert.ok(!changes.some((c) => c.startsWith('/version')), 'the version number itself is not a change');
  // the line diff marks both sides in words, not only colour
  assert.match(await diff.locator('tr.diff-removed').first().textContent(), /removed.*"priority": 10/);
  assert.match(await diff.locator('tr.diff-added', { hasText: 'rescued' }).textContent(), /added/);
  assert.match(page.url(), /from=1&to=2/);
  assert.deepEqual(await unnamedControls(page), []);
  // the same from a version's own entry, and a version against itself
  await page.locator('ol.history summary').first().click();
  await page.getByRole('button', { name: 'Compare version 2 with version 1' }).click();
  await diff.locator('h3', { hasText: 'Version 1 → Version 2' }).waitFor();
  await page.selectOption('#h-from', '2');
  await page.click('#h-compare');
  await diff.getByText('The two versions are the same.').waitFor();
});

test('the new pages logged no error', () => {
  assert.deepEqual(problems, []);
});
