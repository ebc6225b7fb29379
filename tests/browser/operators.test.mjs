// Browser tests of the operator's pages of the builder (issue 25): teams and agents set up
// from a fresh database through the page (and offered by the editor's pickers after), the
// event inspector ("why didn't workflow W run for event E"), a customer's page ("what did
// we do to customer C this week": activity, tasks, events, the edit form), an agent's task
// list, and the test panel as a form built from the schema with a customer picker, its
// raw JSON round-tripping, the dry run's steps said in sentences and its refused
// destinations. Workflows, customers and events are set up through the API; every check
// goes through the page, outcomes are read back from the API. Run: ./run.sh

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngine, startBrowser, api, unnamedControls } from './lib.mjs';

let engine;
let browser;
let page;
const problems = [];
const crm = {};
const wf = {};

async function must(method, path, body) {
  const r = await api(engine.base, method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function waitFor(check, what) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The option of `select` whose label starts with `prefix`. */
const optionStarting = (select, prefix) => page.locator(`${select} option`)
  .evaluateAll((opts, p) => opts.find((o) => o.textContent.startsWith(p))?.textContent, prefix);

before(async () => {
  engine = await startEngine({ env: { WFE__SCHEDULER__POLL_INTERVAL_SECS: '1' } });
  browser = await startBrowser();
  page = browser.page;
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // 404 (an unknown event id, asked on purpose), 409 and 422 (refusals the page shows) are answers, not faults
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (404|409|422)/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.on('request', (r) => { if (!r.url().startsWith(engine.base) && !r.url().startsWith('data:')) problems.push(`request to ${r.url()}`); });
  await page.goto(engine.base + '/');
});

after(async () => {
  await browser?.close();
  await engine?.stop();
});

test('teams and agents are set up from a fresh database through their pages; the editor then offers them', async () => {
  await page.getByRole('link', { name: 'Teams', exact: true }).click();
  await page.locator('h2', { hasText: 'Teams' }).waitFor();
  await page.getByText('No teams yet').waitFor();
  const addTeam = async (name, desk, parent) => {
    await page.fill('#rec-name', name);
    await page.selectOption('#rec-desk', { label: desk });
    if (parent) await page.selectOption('#rec-parent_id', { label: await optionStarting('#rec-parent_id', parent) });
    await page.click('#rec-save');
    await page.locator('#rec-list tr', { hasText: name }).waitFor();
  };
  await addTeam('Brokers', 'sales');
  await addTeam('Sales BR', 'sales', 'Brokers');
  await addTeam('Retention EU', 'retention', 'Brokers');
  const teams = (await must('GET', '/api/v1/teams')).teams;
  for (const t of teams) crm[t.name] = t;
  assert.deepEqual(teams.map((t) => [t.name, t.desk, t.parent_id]), [
    ['Brokers', 'sales', null], ['Sales BR', 'sales', crm.Brokers.id], ['Retention EU', 'retention', crm.Brokers.id]]);
  assert.match(await page.locator('#rec-list tr', { hasText: 'Sales BR' }).textContent(), /Brokers/);

  // a cycle is refused at the parent's field, which gets the focus
  await page.getByRole('button', { name: 'Edit Brokers' }).click();
  await page.selectOption('#rec-parent_id', { label: await optionStarting('#rec-parent_id', 'Sales BR') });
  await page.click('#rec-save');
  await page.locator('[data-path="/parent_id"] .field-error, [data-path="/parent_id"] + .field-error').first().waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'rec-parent_id');
  assert.equal((await must('GET', `/api/v1/teams/${crm.Brokers.id}`)).parent_id, null);
  await page.click('#rec-new');
  // a team with sub-teams cannot be deleted: said, and it stays
  await page.getByRole('button', { name: 'Delete Brokers' }).click();
  await page.click('#confirm-ok');
  await page.locator('#status[data-kind="error"]', { hasText: 'Could not delete Brokers' }).waitFor();
  assert.deepEqual(await unnamedControls(page), []);

  await page.getByRole('link', { name: 'Agents', exact: true }).click();
  await page.locator('h2', { hasText: 'Agents' }).waitFor();
  // without a team: refused at the team's field
  await page.fill('#rec-name', 'Ana Costa');
  await page.fill('#rec-email', 'ana@broker.example');
  await page.click('#rec-save');
  await page.locator('[data-path="/team_id"] .field-error, [data-path="/team_id"] + .field-error').first().waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'rec-team_id');
  await page.selectOption('#rec-team_id', { label: 'Retention EU · retention desk' });
  await page.click('#rec-save');
  await page.locator('#rec-list tr', { hasText: 'Ana Costa' }).waitFor();
  const addAgent = async (name, team, manager) => {
    await page.fill('#rec-name', name);
    await page.selectOption('#rec-team_id', { label: team });
    if (manager) await page.selectOption('#rec-manager_id', { label: await optionStarting('#rec-manager_id', manager) });
    await page.click('#rec-save');
    await page.locator('#rec-list tr', { hasText: name }).waitFor();
  };
  await addAgent('Rui Lima', 'Sales BR · sales desk', 'Ana Costa');
  await addAgent('Temp Agent', 'Sales BR · sales desk');
  await page.getByRole('button', { name: 'Delete Temp Agent' }).click();
  await page.click('#confirm-ok');
  await page.locator('#rec-list tr', { hasText: 'Temp Agent' }).waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Deactivate Rui Lima' }).click();
  await page.locator('#rec-list tr', { hasText: 'Rui Lima' }).locator('.badge', { hasText: 'inactive' }).waitFor();
  const agents = (await must('GET', '/api/v1/agents')).agents;
  for (const a of agents) crm[a.name] = a;
  assert.deepEqual(agents.map((a) => [a.name, a.email, a.team_id, a.manager_id, a.active]), [
    ['Ana Costa', 'ana@broker.example', crm['Retention EU'].id, null, true],
    ['Rui Lima', '', crm['Sales BR'].id, crm['Ana Costa'].id, false]]);
  assert.deepEqual(await unnamedControls(page), []);

  // the editor's "assign to agent" offers them by name, the inactive one marked
  await page.goto(`${engine.base}/#/new`);
  await page.selectOption('#add-action-type', 'assign_to_agent');
  await page.click('#add-action');
  const options = await page.locator('#a-0-p-agent_id option').allTextContents();
  assert.ok(options.some((o) => o.startsWith('Ana Costa <ana@broker.example>')), options.join('\n'));
  assert.ok(options.some((o) => o.startsWith('Rui Lima') && o.includes('(inactive)')), options.join('\n'));
});

test('the event inspector says why each workflow did or did not run, and leads to the runs', async () => {
  await must('PUT', '/api/v1/customers/5', { first_name: 'Bruna', last_name: 'Alves', email: 'bruna@example.com', country: 'PT', agent_id: crm['Ana Costa'].id, statuses: { sales: 'new' } });
  const post = async (def) => (await must('POST', '/api/v1/workflows', { trigger_event: 'customer.deposited', ...def })).id;
  wf.once = await post({ name: 'Welcome once', priority: 5, limits: { once_per_customer: true }, actions: [{ type: 'add_note', params: { body: 'first deposit seen' } }] });
  wf.big = await post({
    name: 'Big BR deposits', priority: 10,
    conditions: { match: 'all', rules: [{ field: 'event.amount', operator: 'gte', value: 1000 }, { field: 'customer.country', operator: 'eq', value: 'BR' }] },
    actions: [{ type: 'add_note', params: { body: 'big' } }],
  });
  wf.call = await post({
    name: 'Retention call', priority: 20, stop_after: true,
    actions: [{ type: 'create_task', params: { title: 'Call {{customer.first_name}}', due_in: { days: 1 } } }, { type: 'assign_to_team', params: { team_id: crm['Retention EU'].id } }],
  });
  wf.low = await post({ name: 'Low priority note', priority: 30, actions: [{ type: 'add_note', params: { body: 'low' } }] });
  await must('POST', '/api/v1/events', { id: 'ev-1', type: 'customer.deposited', customer_id: 5, data: { amount: 700, currency: 'EUR' } });
  await must('POST', '/api/v1/events', { id: 'ev-2', type: 'customer.deposited', customer_id: 5, data: { amount: 1700, currency: 'EUR' } });
  for (const id of ['ev-1', 'ev-2']) {
    await waitFor(async () => {
      const r = await api(engine.base, 'GET', `/api/v1/events/${id}`);
      return r.status === 200 && r.body.planned && r.body.archived_at && r.body.runs.every((run) => ['done', 'failed'].includes(run.status));
    }, `${id} planned, archived and run`);
  }

  await page.getByRole('link', { name: 'Events', exact: true }).click();
  await page.fill('#ev-id', 'ev-1');
  await page.click('#ev-inspect');
  await page.locator('#ev-explanation', { hasText: 'Planned: 2 of the 4 workflows of its trigger started a run.' }).waitFor();
  const row = (id) => page.locator(`#ev-verdicts tr[data-workflow="${id}"]`);
  assert.deepEqual(await page.locator('#ev-verdicts tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.verdict)), ['matched', 'no_match', 'matched', 'skipped']);
  // why didn't "Big BR deposits" run for ev-1: both of its rules, with what they saw
  const big = await row(wf.big).textContent();
  assert.match(big, /did not match/);
  assert.match(big, /event\.amount ≥ 1000 was false: it saw 700/);
  assert.match(big, /customer\.country = "BR" was false: it saw "PT"/);
  // ... and "Low priority note": the stop_after workflow before it, linked
  assert.match(await row(wf.low).textContent(), /skipped by stop_after.*Retention call matched first and has stop_after/s);
  assert.equal(await row(wf.low).getByRole('link', { name: 'Retention call' }).getAttribute('href'), `#/edit/${wf.call}`);
  assert.match(await page.locator('#ev-data').textContent(), /"amount": 700/);
  assert.deepEqual(await unnamedControls(page), []);

  // ev-2: the once-per-customer workflow held the customer back this time
  await page.fill('#ev-id', 'ev-2');
  await page.click('#ev-inspect');
  await page.locator('#ev-explanation', { hasText: '1 of the 4' }).waitFor();
  assert.match(await row(wf.once).textContent(), /held back by its limit.*enters it once/s);

  // to the run it started, opened in the runs view, and back with "why"
  const [run] = (await must('GET', `/api/v1/runs?event_id=ev-2&workflow_id=${wf.call}`)).runs;
  await row(wf.call).getByRole('link', { name: `run ${run.id}` }).click();
  await page.locator(`#r-list details[data-run="${run.id}"][open]`).waitFor();
  await page.getByRole('link', { name: `Why: inspect event ev-2 of run ${run.id}` }).click();
  await page.locator('h2', { hasText: 'Event ev-2' }).waitFor();
  await page.click('#ev-customer-link');
  await page.locator('h2', { hasText: 'Customer 5: Bruna Alves' }).waitFor();

  // an id the engine does not know
  await page.goto(`${engine.base}/#/events/no-such-event`);
  await page.locator('#ev-unknown', { hasText: 'knows no event “no-such-event”' }).waitFor();
});

test("a customer's page: what the workflows did this week, their tasks and events, and the form that edits them", async () => {
  await page.goto(`${engine.base}/#/customers/5`);
  await page.locator('h2', { hasText: 'Customer 5: Bruna Alves' }).waitFor();
  // ev-1 ran the welcome note and the call; ev-2 the call again
  const week = page.locator('#act-week');
  await week.filter({ hasText: 'In the last 7 days' }).waitFor();
  const weekText = await week.textContent();
  for (const part of ['3 runs', '2 tasks created', '2 assignments', '1 note']) assert.ok(weekText.includes(part), weekText);
  const runEntry = page.locator('#act-list li[data-kind="run"]', { hasText: 'Retention call' }).first();
  assert.ok(await runEntry.getByRole('link', { name: 'its event (why)' }).count());
  assert.match(await page.locator('#act-list li[data-kind="assignment"]').first().textContent(), /assigned to Ana Costa \(retention desk\).*agent Ana Costa/s);

  // its open tasks: one marked done from here
  const tasks = page.locator('section[aria-labelledby="cu-tasks-title"]');
  await tasks.locator('tbody tr').nth(1).waitFor();
  const [newest] = (await must('GET', '/api/v1/tasks?customer_id=5')).tasks;
  await tasks.locator(`tr[data-task="${newest.id}"]`).getByRole('button', { name: 'Mark done: Call Bruna' }).click();
  await tasks.locator(`tr[data-task="${newest.id}"] .badge`, { hasText: 'done' }).waitFor();
  assert.equal((await must('GET', `/api/v1/tasks?customer_id=5&status=done`)).tasks.map((t) => t.id).join(), String(newest.id));
  // an activity entry's task link shows it in the list, whatever its status
  await page.locator('#act-list li[data-kind="task_created"]').first().getByRole('button', { name: /^task \d+$/ }).click();
  await page.locator('tr.highlight[data-task]').waitFor();

  // its events, newest first, each opening the inspector
  const events = page.locator('section[aria-labelledby="cu-events-title"] tbody tr');
  await events.nth(1).waitFor();
  assert.deepEqual(await events.evaluateAll((trs) => trs.map((tr) => tr.dataset.event)), ['ev-2', 'ev-1']);

  // the form: a name, a status, a custom field; only what changed is sent
  await page.fill('#cu-last_name', 'Alves Souza');
  await page.selectOption('#cu-status-sales', 'vip');
  await page.click('#cu-custom-add');
  await page.fill('#cu-custom-0-key', 'vip_score');
  await page.fill('#cu-custom-0-value', '7');
  await page.click('#cu-save');
  await page.locator('#cu-saved', { hasText: 'Saved: last_name, statuses, custom.' }).waitFor();
  const stored = await must('GET', '/api/v1/customers/5');
  assert.equal(stored.last_name, 'Alves Souza');
  assert.deepEqual(stored.statuses, { sales: 'vip' });
  assert.deepEqual(stored.custom, { vip_score: 7 });
  assert.equal(stored.country, 'PT');
  await page.locator('#cu-facts .badge', { hasText: 'sales: vip' }).waitFor();
  assert.match(await page.locator('#view h2').textContent(), /Bruna Alves Souza/);
  // a bad time zone is refused at its field
  await page.fill('#cu-timezone', 'Mars/Olympus');
  await page.click('#cu-save');
  await page.locator('[data-path="/timezone"] + .field-error').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'cu-timezone');
  assert.equal((await must('GET', '/api/v1/customers/5')).timezone, 'UTC');
  assert.deepEqual(await unnamedControls(page), []);

  // an unknown id opens the form that creates it
  await page.goto(`${engine.base}/#/customers/77`);
  await page.locator('#cu-missing').waitFor();
  await page.fill('#cu-first_name', 'Nora');
  await page.fill('#cu-country', 'DE');
  await page.click('#cu-save');
  await page.locator('h2', { hasText: 'Customer 77: Nora' }).waitFor();
  const created = await must('GET', '/api/v1/customers/77');
  assert.deepEqual([created.first_name, created.country], ['Nora', 'DE']);
});

test('customers are found by name, email or id, and a customer’s events listed on the Events page', async () => {
  await must('PUT', '/api/v1/customers/6', { first_name: 'Bruno', last_name: 'Souza', email: 'bruno@example.com', country: 'BR' });
  await page.getByRole('link', { name: 'Customers', exact: true }).click();
  await page.locator('#cu-list tbody tr').first().waitFor();
  // without a search, newest first by id
  assert.deepEqual(await page.locator('#cu-list tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.id)), ['77', '6', '5']);
  const search = async (q) => {
    await page.fill('#cu-q', q);
    await page.click('#cu-search');
    await page.locator('#cu-list caption', { hasText: `“${q}”` }).waitFor();
    return page.locator('#cu-list tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  };
  assert.deepEqual(await search('bru'), ['6', '5']);
  assert.deepEqual(await search('SOUZA'), ['6']);
  assert.deepEqual(await search('bruno@'), ['6']);
  assert.deepEqual(await search('5'), ['5']);
  assert.match(page.url(), /#\/customers\?q=5$/);
  await page.getByRole('link', { name: 'Bruna Alves Souza' }).click();
  await page.locator('h2', { hasText: 'Customer 5:' }).waitFor();

  await page.getByRole('link', { name: 'Events', exact: true }).click();
  await page.fill('#ev-customer', '5');
  await page.click('#ev-list');
  await page.locator('h2', { hasText: 'Events of customer 5' }).waitFor();
  await page.getByRole('link', { name: 'Why: event ev-1' }).click();
  await page.locator('#ev-explanation', { hasText: '2 of the 4' }).waitFor();
});

test("an agent's page lists their tasks, and marks them done", async () => {
  await page.goto(`${engine.base}/#/agents`);
  await page.getByRole('link', { name: 'Ana Costa' }).click();
  await page.locator('h2', { hasText: 'Agent: Ana Costa' }).waitFor();
  const rows = page.locator('.task-list tbody tr');
  await rows.first().waitFor();
  // open ones by default: the one left open on the customer's page
  const open = (await must('GET', `/api/v1/tasks?agent_id=${crm['Ana Costa'].id}&status=open`)).tasks;
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.dataset.task))), open.map((t) => t.id));
  assert.match(await rows.first().textContent(), /Call Bruna.*customer 5.*open/s);
  await rows.first().getByRole('button', { name: 'Mark done: Call Bruna' }).click();
  await rows.first().locator('.badge', { hasText: 'done' }).waitFor();
  assert.deepEqual((await must('GET', `/api/v1/tasks?agent_id=${crm['Ana Costa'].id}&status=open`)).tasks, []);
  await page.selectOption('.task-list select', '');
  await rows.nth(1).waitFor();
  assert.deepEqual(await unnamedControls(page), []);
});

test('the test panel: an event form from the schema, a customer picked from the database, steps said in sentences', async () => {
  const journey = await must('POST', '/api/v1/workflows', {
    name: 'Deposit follow-up', trigger_event: 'customer.deposited', priority: 50,
    conditions: { match: 'all', rules: [{ field: 'event.amount', operator: 'gte', value: 100 }] },
    actions: [
      { type: 'assign_to_agent', params: { agent_id: crm['Ana Costa'].id } },
      { type: 'add_note', params: { body: 'Deposit of {{event.amount}} {{event.currency}}' } },
      { type: 'send_email', params: { subject: 'Welcome, {{customer.first_name}}' } },
      { type: 'delay', params: { days: 2 } },
      { type: 'branch', params: { paths: [
        { when: { match: 'all', rules: [{ field: 'event.amount', operator: 'gte', value: 1000 }] }, actions: [{ type: 'add_note', params: { body: 'big' } }] },
        { when: { match: 'all', rules: [{ field: 'event.amount', operator: 'lt', value: 1000 }] }, actions: [{ type: 'create_task', params: { title: 'Call {{customer.first_name}}', due_in: { hours: 4 } } }] },
      ] } },
      { type: 'webhook', params: { url: 'http://127.0.0.1:9/hook', body: { amount: '{{event.amount}}' } } },
    ],
  });
  await page.goto(`${engine.base}/#/edit/${journey.id}`);
  await page.locator('#editor-title', { hasText: 'Deposit follow-up' }).waitFor();
  // the trigger's payload fields, typed, from the schema
  assert.equal(await page.getAttribute('#t-ev-data-amount', 'type'), 'number');
  assert.equal(await page.locator('label[for="t-ev-data-currency"]').textContent(), 'Currency');
  assert.equal(await page.locator('#t-ev-type').textContent(), 'customer.deposited');
  await page.fill('#t-ev-data-amount', '700');
  await page.fill('#t-ev-data-currency', 'BRL');
  // the customer, found in the database by name
  await page.check('#t-mode-stored');
  await page.fill('#t-customer-search', 'bruna');
  await page.click('#t-customer-find');
  await page.getByRole('button', { name: 'Use customer 5: Bruna Alves Souza' }).click();
  assert.equal(await page.inputValue('#t-customer-id'), '5');
  assert.equal(await page.inputValue('#t-ev-customer_id'), '5');
  await page.locator('#t-customer-info', { hasText: 'Bruna Alves Souza · bruna@example.com · PT' }).waitFor();
  assert.deepEqual(await unnamedControls(page), []);

  await page.click('#t-dry-run');
  const result = page.locator('#t-result .dry-run-result');
  await result.waitFor();
  const plan = result.locator('ol.plan > li', { hasText: 'Deposit follow-up' });
  const said = await plan.locator('ol.plan-actions > li > .sentence').allTextContents();
  assert.deepEqual(said, [
    'assigned to Ana Costa, retention desk',
    'note added: “Deposit of 700 BRL”',
    'email “Welcome, Bruna” to bruna@example.com',
    'waits 2 days',
    'took path 2',
    'webhook to 127.0.0.1:9',
  ]);
  assert.match(await plan.locator('ol.plan-actions > li').nth(4).locator('ul.arms').textContent(), /path 2:.*task “Call Bruna”, due in 4 hours, for Ana Costa/s);
  // the raw JSON is still there, per step
  assert.match(await plan.locator('ol.plan-actions > li').nth(0).locator('details.as-json pre').textContent(), /"agent_id": \d+/);
  // the destination the outbound guard would refuse, above the plan and under its param
  assert.match(await result.locator('#t-warnings').textContent(), /Deposit follow-up at \/actions\/5\/params\/url: .*refused/s);
  await page.locator('#wf-form [data-path="/actions/5/params/url"] ~ .field-warning, #wf-form [data-path="/actions/5/params/url"] + .field-warning').first().waitFor();

  // Advanced: the JSON of the form, edited, back into the form, and the same JSON again
  const formEvent = JSON.parse(await page.inputValue('#t-event'));
  assert.deepEqual([formEvent.customer_id, formEvent.data.amount, formEvent.data.currency], [5, 700, 'BRL']);
  await page.check('#t-raw');
  assert.equal(await page.locator('#t-ev-data-amount').count(), 0, 'the form is put away while the JSON is edited');
  const typed = { ...formEvent, data: { amount: 2500, currency: 'USD', campaign: 'spring', transaction: { id: 'tx-9' } } };
  await page.fill('#t-event', JSON.stringify(typed));
  await page.uncheck('#t-raw');
  assert.equal(await page.inputValue('#t-ev-data-amount'), '2500');
  assert.equal(await page.inputValue('#t-ev-data-campaign'), 'spring');
  assert.equal(await page.inputValue('#t-ev-data-transaction'), '{"id":"tx-9"}');
  await page.check('#t-raw');
  assert.deepEqual(JSON.parse(await page.inputValue('#t-event')), typed);
  // invalid JSON keeps the JSON open, with the problem at the event
  await page.fill('#t-event', '{"id": ');
  await page.click('#t-raw');
  assert.equal(await page.isChecked('#t-raw'), true);
  await page.locator('fieldset[data-path="/event"] + .field-error', { hasText: 'not valid JSON' }).waitFor();
  await page.fill('#t-event', JSON.stringify(typed));
  await page.uncheck('#t-raw');

  // a typed customer: fields from the schema, a status and an agent by name among their options
  await page.check('#t-mode-typed');
  await page.fill('#t-cu-first_name', 'Carla');
  await page.selectOption('#t-cu-retention_status', { label: 'active' });
  await page.selectOption('#t-cu-add', 'agent_id');
  await page.selectOption('#t-cu-agent_id', { label: await optionStarting('#t-cu-agent_id', 'Rui Lima') });
  await page.click('#t-dry-run');
  await result.locator('.sentence', { hasText: 'email “Welcome, Carla” to ana@example.com' }).waitFor();
  assert.equal(await result.locator('.sentence', { hasText: 'took path 1' }).count(), 1);
  const snapshot = JSON.parse(await page.inputValue('#t-customer-json'));
  assert.deepEqual([snapshot.first_name, snapshot.retention_status, snapshot.agent_id], ['Carla', 'active', crm['Rui Lima'].id]);
  assert.deepEqual(await unnamedControls(page), []);
});

test('"Saved" is shown where the user is, however long the workflow', async () => {
  const { workflows } = await must('GET', '/api/v1/workflows');
  await page.goto(`${engine.base}/#/edit/${workflows.find((w) => w.name === 'Deposit follow-up').id}`);
  await page.locator('#editor-title', { hasText: 'Deposit follow-up' }).waitFor();
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.fill('#wf-priority', '45');
  await page.click('#wf-save');
  const outcome = page.locator('#wf-outcome', { hasText: 'Saved “Deposit follow-up”, version 2' });
  await outcome.waitFor();
  const box = await outcome.boundingBox();
  assert.ok(box && box.y >= 0 && box.y + box.height <= 800, `the confirmation is on screen: ${JSON.stringify(box)}`);
  assert.ok(await page.locator('#status', { hasText: 'Saved Deposit follow-up' }).isVisible());
});

test('the operator pages logged no error and asked nothing of another origin', () => {
  assert.deepEqual(problems, []);
});
