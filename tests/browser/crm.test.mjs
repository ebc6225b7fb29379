// Browser tests of the builder's CRM pieces (issue 14): pickers by name for teams, agents,
// statuses and endpoints in the action and condition editors, the webhook endpoint and
// SMS provider pages (the secret write-only), the dry run's rendered templates and
// round-robin pick, and a failed webhook run retried from the page after its endpoint is
// fixed there. The CRM records the pickers offer are created through the API (setup);
// every check of the page goes through the page, outcomes are read back from the API and
// from a webhook receiver run by the test. Run: ./run.sh

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startEngine, startBrowser, api, ruleId, unnamedControls } from './lib.mjs';

let engine;
let browser;
let page;
let receiver;
const received = [];
const seen = []; // every API response body the page received, to look for the secret
const problems = [];
const crm = {};
const SECRET = 'whsec_dGhpcyBpcyB0aGUgdGVzdCBzZWNyZXQ=';

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

/** The label of the option of `select` whose text starts with `prefix`. */
async function optionStarting(select, prefix) {
  return page.locator(`${select} option`).evaluateAll((opts, p) => opts.find((o) => o.textContent.startsWith(p))?.textContent, prefix);
}

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      received.push({ path: req.url, headers: req.headers, body });
      // only /ops is the real hook: anything else is a wrong URL, which the engine gives up on
      res.writeHead(req.url === '/ops' ? 200 : 404, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  engine = await startEngine({
    env: { WFE__SCHEDULER__POLL_INTERVAL_SECS: '1', WFE__DELIVERY__WEBHOOK_ALLOWLIST: '127.0.0.1', WFE__DELIVERY__BACKOFF_MAX_MS: '1000' },
  });
  browser = await startBrowser();
  page = browser.page;
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (400|409|422)/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.on('response', async (r) => { if (r.url().includes('/api/v1/')) seen.push(await r.text().catch(() => '')); });

  // the CRM a broker would have: two desks' teams, agents, statuses, a customer
  crm.sales = await must('POST', '/api/v1/teams', { name: 'Sales BR', desk: 'sales' });
  crm.retention = await must('POST', '/api/v1/teams', { name: 'Retention EU', desk: 'retention' });
  crm.ana = await must('POST', '/api/v1/agents', { name: 'Ana Costa', email: 'ana@broker.example', team_id: crm.retention.id, active: true });
  crm.rui = await must('POST', '/api/v1/agents', { name: 'Rui Lima', email: 'rui@broker.example', team_id: crm.sales.id, active: true });
  crm.vip = await must('POST', '/api/v1/status-types/sales/statuses', { name: 'premium' });
  await must('PUT', '/api/v1/customers/501', { first_name: 'Bruna', last_name: 'Alves', email: 'bruna@example.com', country: 'BR' });
  await page.goto(engine.base + '/');
});

after(async () => {
  await browser?.close();
  await engine?.stop();
  await new Promise((r) => receiver?.close(r));
});

test('webhook endpoints: added, edited and deleted on their page; the secret is never shown', async () => {
  await page.getByRole('link', { name: 'Webhook endpoints' }).click();
  await page.locator('h2', { hasText: 'Webhook endpoints' }).waitFor();
  await page.getByText('No endpoints yet').waitFor();
  // a bad URL is refused next to its field
  await page.fill('#rec-name', 'ops_alerts');
  await page.fill('#rec-url', 'not a url');
  await page.click('#rec-save');
  await page.locator('[data-path="/url"] .field-error, [data-path="/url"] + .field-error').first().waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'rec-url');

  await page.fill('#rec-url', `http://127.0.0.1:${receiver.address().port}/wrong`);
  await page.fill('#rec-secret', SECRET);
  await page.click('#rec-save');
  const row = page.locator('#rec-list tr', { hasText: 'ops_alerts' });
  await row.locator('.badge', { hasText: 'set' }).waitFor();
  const [stored] = (await must('GET', '/api/v1/webhook-endpoints')).webhook_endpoints ?? Object.values(await must('GET', '/api/v1/webhook-endpoints')).find(Array.isArray);
  assert.equal(stored.has_secret, true);
  assert.equal(JSON.stringify(stored).includes(SECRET), false, 'the API does not return the secret');

  // editing without typing a secret keeps it
  await row.getByRole('button', { name: 'Edit ops_alerts' }).click();
  assert.deepEqual(await unnamedControls(page), []);
  assert.equal(await page.inputValue('#rec-secret'), '');
  assert.match(await page.locator('#rec-secret').getAttribute('placeholder'), /leave empty to keep/);
  await page.fill('#rec-url', `http://127.0.0.1:${receiver.address().port}/still-wrong`);
  await page.click('#rec-save');
  await row.getByText('/still-wrong').waitFor();
  assert.equal((await must('GET', `/api/v1/webhook-endpoints/${stored.id}`)).has_secret, true);

  // a second one with the same name is refused, said on the form
  await page.fill('#rec-name', 'ops_alerts');
  await page.fill('#rec-url', 'https://hooks.example.com/x');
  await page.click('#rec-save');
  await page.locator('#rec-summary', { hasText: /already exists/ }).waitFor();

  // a throwaway one, deleted after a confirmation
  await page.fill('#rec-name', 'old_hook');
  await page.click('#rec-save');
  await page.locator('#rec-list tr', { hasText: 'old_hook' }).waitFor();
  await page.getByRole('button', { name: 'Delete old_hook' }).click();
  await page.click('#confirm-ok');
  await page.locator('#rec-list tr', { hasText: 'old_hook' }).waitFor({ state: 'detached' });

  assert.equal(seen.some((b) => b.includes(SECRET)), false, 'no answer to the page held the secret');
  assert.equal((await page.content()).includes(SECRET), false);
});

test('SMS providers: exactly one active, switched from the list', async () => {
  await page.getByRole('link', { name: 'SMS providers' }).click();
  await page.locator('h2', { hasText: 'SMS providers' }).waitFor();
  for (const [name, active] of [['twilio', true], ['vonage', false]]) {
    await page.fill('#rec-name', name);
    await page.fill('#rec-url', `https://${name}.example.com/send`);
    await page.setChecked('#rec-active', active);
    await page.click('#rec-save');
    await page.locator('#rec-list tr', { hasText: name }).waitFor();
  }
  const activeOf = async () => (Object.values(await must('GET', '/api/v1/sms-providers')).find(Array.isArray)).filter((p) => p.active).map((p) => p.name);
  assert.deepEqual(await activeOf(), ['twilio']);
  await page.getByRole('button', { name: 'Make vonage the active provider' }).click();
  await page.locator('#rec-list tr', { hasText: 'vonage' }).locator('.badge', { hasText: /^active$/ }).waitFor();
  await page.locator('#rec-list tr', { hasText: 'twilio' }).locator('.badge', { hasText: 'inactive' }).waitFor();
  assert.deepEqual(await activeOf(), ['vonage']);
  assert.deepEqual(await unnamedControls(page), []);
});

test('actions and conditions pick teams, agents, statuses and endpoints by name; the workflow keeps ids and names', async () => {
  await page.goto(`${engine.base}/#/new`);
  await page.fill('#wf-name', 'Pickers');
  await page.selectOption('#wf-trigger', 'customer.deposited');
  // a rule on the customer's team offers the teams by name
  await page.click(ruleId('/conditions', 'add-rule'));
  const rule = '/conditions/rules/0';
  await page.selectOption(ruleId(rule, 'field'), 'customer.team_id');
  const teamLabel = await optionStarting(ruleId(rule, 'value'), 'Sales BR');
  assert.ok(teamLabel, 'the team is offered by name');
  await page.selectOption(ruleId(rule, 'value'), { label: teamLabel });

  const add = async (type) => { await page.selectOption('#add-action-type', type); await page.click('#add-action'); };
  await add('assign_to_team');
  await page.selectOption('#a-0-p-team_id', { label: await optionStarting('#a-0-p-team_id', 'Retention EU') });
  await add('assign_to_agent');
  await page.selectOption('#a-1-p-agent_id', { label: await optionStarting('#a-1-p-agent_id', 'Ana Costa') });
  await add('set_status');
  await page.selectOption('#a-2-p-type', 'sales');
  // the statuses follow the chosen type
  assert.ok(await optionStarting('#a-2-p-status', 'premium'));
  await page.selectOption('#a-2-p-status', 'premium');
  await add('webhook');
  await page.selectOption('#a-3-p-endpoint', { label: 'ops_alerts' });
  // an agent not created yet: typed, kept, and warned about (not refused)
  await add('assign_to_agent');
  await page.selectOption('#a-4-p-agent_id', '__other__');
  await page.fill('#a-4-p-agent_id-other', '999');
  await page.click('#wf-save');
  await page.locator('#wf-summary', { hasText: 'Saved “Pickers”, version 1.' }).waitFor();
  await page.locator('[data-path="/actions/4/params/agent_id"] ~ .field-warning, [data-path="/actions/4/params/agent_id"] + .field-warning').first().waitFor();

  const { workflows } = await must('GET', '/api/v1/workflows');
  const saved = workflows.find((w) => w.name === 'Pickers');
  assert.deepEqual(saved.conditions, { match: 'all', rules: [{ field: 'customer.team_id', operator: 'eq', value: crm.sales.id }] });
  assert.deepEqual(saved.actions.map((a) => a.params), [
    { team_id: crm.retention.id }, { agent_id: crm.ana.id }, { type: 'sales', status: 'premium' }, { endpoint: 'ops_alerts' }, { agent_id: 999 },
  ]);

  // reopened, the pickers show the names again
  await page.goto(`${engine.base}/#/edit/${saved.id}`);
  await page.locator('#editor-title', { hasText: 'Pickers' }).waitFor();
  assert.match(await page.locator('#a-0-p-team_id option:checked').textContent(), /^Retention EU/);
  assert.match(await page.locator('#a-1-p-agent_id option:checked').textContent(), /^Ana Costa/);
  assert.match(await page.locator(`${ruleId(rule, 'value')} option:checked`).textContent(), /^Sales BR/);
  assert.equal(await page.inputValue('#a-4-p-agent_id-other'), '999');
  assert.deepEqual(await unnamedControls(page), []);
});

test('the dry run shows rendered templates and the agent a round-robin would pick', async () => {
  await page.goto(`${engine.base}/#/new`);
  await page.fill('#wf-name', 'Preview');
  await page.selectOption('#wf-trigger', 'customer.deposited');
  await page.selectOption('#add-action-type', 'send_email');
  await page.click('#add-action');
  await page.fill('#a-0-p-subject', 'Obrigado, {{customer.first_name}}: {{event.amount}} {{event.currency}} received');
  await page.selectOption('#add-action-type', 'assign_to_team');
  await page.click('#add-action');
  await page.selectOption('#a-1-p-team_id', { label: await optionStarting('#a-1-p-team_id', 'Retention EU') });
  await page.check('#t-raw');
  await page.fill('#t-event', JSON.stringify({ id: 'preview-1', type: 'customer.deposited', customer_id: 501, data: { amount: 700, currency: 'BRL' } }));
  await page.check('#t-mode-stored');
  await page.fill('#t-customer-id', '501');
  await page.click('#t-dry-run');
  const actions = page.locator('#t-result ol.plan-actions > li');
  await actions.nth(1).waitFor();
  assert.match(await actions.nth(0).locator('dl.rendered').textContent(), /subject\s*Obrigado, Bruna: 700 BRL received/);
  assert.match(await actions.nth(1).locator('.agent').textContent(), /Would go to agent Ana Costa/);
  assert.equal((await must('GET', '/api/v1/workflows')).workflows.some((w) => w.name === 'Preview'), false, 'a dry run saves nothing');
});

test('a failed webhook run is retried from the runs page once its endpoint is fixed, with no step repeated', async () => {
  const wf = await must('POST', '/api/v1/workflows', {
    name: 'Deposit alert to ops', trigger_event: 'customer.deposited',
    conditions: { match: 'all', rules: [{ field: 'event.amount', operator: 'gte', value: 10000 }] },
    actions: [{ type: 'add_note', params: { body: 'big deposit' } }, { type: 'webhook', params: { endpoint: 'ops_alerts', body: { text: 'deposit of {{event.amount}}' } } }],
  });
  await must('POST', '/api/v1/events', { id: 'retry-webhook-1', type: 'customer.deposited', customer_id: 501, data: { amount: 15000, currency: 'USD' } });
  const failed = await waitFor(async () => {
    const { runs } = await must('GET', `/api/v1/runs?workflow_id=${wf.id}`);
    return runs[0]?.status === 'failed' ? runs[0] : null;
  }, 'the webhook run to fail against the wrong URL');
  assert.deepEqual(failed.steps.map((s) => [s.type, s.status]), [['add_note', 'done'], ['webhook', 'failed']]);
  const noteAttempts = failed.steps[0].attempts;
  const before = received.length;
  const firstTry = received.find((r) => r.path === '/wrong' || r.path === '/still-wrong');
  assert.ok(firstTry, 'the first delivery went to the wrong URL');

  // fix the URL on the endpoints page
  await page.goto(`${engine.base}/#/endpoints`);
  await page.getByRole('button', { name: 'Edit ops_alerts' }).click();
  await page.fill('#rec-url', `http://127.0.0.1:${receiver.address().port}/ops`);
  await page.click('#rec-save');
  await page.locator('#rec-list tr', { hasText: '/ops' }).waitFor();

  // retry from the run's entry
  await page.goto(`${engine.base}/#/runs?workflow_id=${wf.id}`);
  const item = page.locator(`li.run[data-run="${failed.id}"]`);
  await item.locator('summary').click();
  await item.getByRole('button', { name: `Retry run ${failed.id}` }).click();
  await item.locator('summary .badge', { hasText: 'done' }).waitFor({ timeout: 30_000 });
  const run = await must('GET', `/api/v1/runs/${failed.id}`);
  assert.equal(run.status, 'done');
  assert.equal(run.steps[0].attempts, noteAttempts, 'the note was not added again');
  const delivered = received.slice(before).filter((r) => r.path === '/ops');
  assert.equal(delivered.length, 1);
  assert.match(delivered[0].headers['webhook-signature'], /^v1,/);
  // the same delivery as far as the receiver can tell: the idempotency key did not change
  assert.equal(delivered[0].headers['webhook-id'], firstTry.headers['webhook-id']);
  assert.deepEqual(JSON.parse(delivered[0].body), { text: 'deposit of 15000' });
});

test('the CRM pages logged no error', () => {
  assert.deepEqual(problems, []);
});
