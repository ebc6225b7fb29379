// Regenerates docs/screenshots/*.png: the main screens of the builder page at 1280x800.
// Usage (from the repository root, after `cargo build` and `npm ci` in tests/browser):
//   node tests/browser/screenshots.mjs            # every screenshot
//   node tests/browser/screenshots.mjs 18 19      # only those whose names start so
// Workflows and CRM records are created through the API here (the tests build them
// through the page).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine, startBrowser, api, ruleId, ROOT, SEED_WORKFLOWS, REGISTRATION_JOURNEY } from './lib.mjs';

const OUT = join(ROOT, 'docs/screenshots');
mkdirSync(OUT, { recursive: true });
// A wait's timeout counts as a delay: 6 s leaves the journey's deposit time to arrive.
const engine = await startEngine({ env: { WFE__SCHEDULER__DELAY_OVERRIDE_SECS: '6' } });
const browser = await startBrowser();
const { page } = browser;
page.setDefaultTimeout(20_000);
const only = process.argv.slice(2);
const shot = async (name, options = {}) => {
  if (only.length && !only.some((prefix) => name.startsWith(prefix))) return;
  await page.screenshot({ path: join(OUT, name), ...options });
  console.log(`docs/screenshots/${name}`);
};
/** Polls the API until the newest run of `query` (customer, workflow) has `status` (any, when null). */
const runOf = async (query, status) => {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const run = (await api(engine.base, 'GET', `/api/v1/runs?${new URLSearchParams(query)}`)).body.runs[0];
    if (run && (status === null || run.status === status)) return run;
    if (Date.now() > deadline) throw new Error(`run of ${JSON.stringify(query)} not ${status}: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
try {
  const ids = {};
  for (const wf of SEED_WORKFLOWS) {
    const r = await api(engine.base, 'POST', '/api/v1/workflows', wf);
    ids[wf.name] = r.body.id;
  }
  // version 2 of the onboarding: another priority, a reworded subject, one more step
  const onboarding = SEED_WORKFLOWS[1];
  await api(engine.base, 'PUT', `/api/v1/workflows/${ids['New depositor onboarding']}`, {
    ...onboarding, priority: 15, version: 1,
    actions: [
      ...onboarding.actions.map((a) => (a.type === 'send_email' ? { ...a, params: { ...a.params, subject: 'Bem-vindo à corretora, {{customer.first_name}}!' } } : a)),
      { type: 'add_note', params: { body: 'Onboarding started' } },
    ],
  });
  // the CRM the pickers offer
  const sales = (await api(engine.base, 'POST', '/api/v1/teams', { name: 'Sales BR', desk: 'sales' })).body;
  const retention = (await api(engine.base, 'POST', '/api/v1/teams', { name: 'Retention EU', desk: 'retention' })).body;
  const ana = (await api(engine.base, 'POST', '/api/v1/agents', { name: 'Ana Costa', email: 'ana@broker.example', team_id: retention.id, active: true })).body;
  await api(engine.base, 'POST', '/api/v1/agents', { name: 'Rui Lima', email: 'rui@broker.example', team_id: sales.id, active: true });
  await api(engine.base, 'POST', '/api/v1/webhook-endpoints', { name: 'slack_notification', url: 'https://hooks.slack.example/T000/B000', secret: 'whsec_c2NyZWVuc2hvdA==' });
  await api(engine.base, 'POST', '/api/v1/webhook-endpoints', { name: 'ops_alerts', url: 'https://ops.example.com/hooks/deposits', rate_per_sec: 20 });
  await api(engine.base, 'POST', '/api/v1/sms-providers', { name: 'twilio', url: 'https://sms.twilio.example/send', active: true, rate_per_sec: 50 });
  await api(engine.base, 'POST', '/api/v1/sms-providers', { name: 'vonage', url: 'https://sms.vonage.example/send', active: false });
  await api(engine.base, 'PUT', '/api/v1/customers/2', { first_name: 'Bruno', last_name: 'Souza', email: 'bruno@example.com', country: 'BR', team_id: sales.id, statuses: { retention: 'churning' } });
  const picked = (await api(engine.base, 'POST', '/api/v1/workflows', {
    name: 'Hand big BR deposits to retention', trigger_event: 'customer.deposited', priority: 30,
    conditions: { match: 'all', rules: [{ field: 'customer.team_id', operator: 'eq', value: sales.id }, { field: 'event.amount', operator: 'gte', value: 5000 }] },
    actions: [
      { type: 'assign_to_team', params: { team_id: retention.id } },
      { type: 'set_status', params: { type: 'retention', status: 'churning' } },
      { type: 'send_email', params: { subject: 'Obrigado, {{customer.first_name}}: {{event.amount}} {{event.currency}} received' } },
      { type: 'webhook', params: { endpoint: 'ops_alerts', body: { text: 'Deposit {{event.amount}} by {{customer.id}}' } } },
    ],
  })).body;
  await api(engine.base, 'POST', '/api/v1/events', { id: 'shot-1', type: 'customer.deposited', customer_id: 1042, data: { amount: 12500, currency: 'USD' } });
  await runOf({ customer_id: 1042 }, null); // the list reads each workflow's last run once

  await page.goto(`${engine.base}/#/workflows`);
  await page.locator('tr', { hasText: 'High-value deposit alert' }).locator('.last-run .badge').waitFor({ timeout: 30_000 });
  await shot('01-workflows.png');

  await page.goto(`${engine.base}/#/edit/${ids['Auto-assign high-value deposits']}`);
  await page.locator('#t-raw').waitFor();
  await page.check('#t-raw');
  await page.fill('#t-event', JSON.stringify({ id: 'try-1', type: 'customer.deposited', customer_id: 2, data: { amount: 12000, currency: 'USD' } }, null, 2));
  await page.fill('#t-customer-json', JSON.stringify({ id: 2, first_name: 'Bruno', country: 'BR', retention_status: 'churning' }, null, 2));
  await page.check('#t-others');
  await page.click('#t-dry-run');
  await page.locator('#t-result .dry-run-result').waitFor();
  // the page from its top, the side panel from the test panel (the flow panel is above it)
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.locator('aside').evaluate((el) => { el.scrollTop = el.querySelector('.test-panel').offsetTop - 8; });
  await shot('02-editor.png');
  await page.locator('#t-result h4', { hasText: 'Conditions' }).scrollIntoViewIfNeeded();
  await page.locator('aside').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await shot('03-dry-run-trace.png');

  await page.goto(`${engine.base}/#/new`);
  await page.fill('#wf-name', 'Large withdrawal follow-up');
  await page.selectOption('#wf-trigger', 'customer.withdrew');
  await page.click(ruleId('/conditions', 'add-rule'));
  await page.selectOption(ruleId('/conditions/rules/0', 'field'), 'event.amount');
  await page.selectOption(ruleId('/conditions/rules/0', 'operator'), 'gte');
  await page.fill(ruleId('/conditions/rules/0', 'value'), 'a lot');
  await page.click(ruleId('/conditions', 'add-group'));
  await page.selectOption(ruleId('/conditions/rules/1', 'match'), 'any');
  await page.click(ruleId('/conditions/rules/1', 'add-rule'));
  await page.selectOption(ruleId('/conditions/rules/1/rules/0', 'field'), 'customer.country');
  await page.selectOption(ruleId('/conditions/rules/1/rules/0', 'operator'), 'in');
  await page.click(ruleId('/conditions/rules/1/rules/0', 'add-value'));
  await page.fill(ruleId('/conditions/rules/1/rules/0', 'value-0'), 'BR');
  await page.click(ruleId('/conditions/rules/1/rules/0', 'add-value'));
  await page.fill(ruleId('/conditions/rules/1/rules/0', 'value-1'), 'AR');
  await page.click(ruleId('/conditions/rules/1', 'add-rule'));
  await page.selectOption(ruleId('/conditions/rules/1/rules/1', 'field'), 'customer.retention_status');
  await page.selectOption(ruleId('/conditions/rules/1/rules/1', 'value'), { label: 'churning' });
  await page.click(ruleId('/conditions/rules/1/rules/1', 'negate'));
  await page.selectOption('#add-action-type', 'create_task');
  await page.click('#add-action');
  await page.fill('#a-0-p-title', 'Call {{customer.first_name}} about the withdrawal');
  await page.click('#wf-save');
  await page.locator('#wf-form .field-error').first().waitFor();
  await page.locator('#cond-title').evaluate((el) => el.scrollIntoView());
  await shot('04-validation-errors.png');

  await page.goto(`${engine.base}/#/runs`);
  await page.locator('li.run.run-failed summary').first().click();
  await shot('05-runs.png');

  await page.goto(`${engine.base}/#/history/${ids['New depositor onboarding']}`);
  await page.locator('ol.history summary').first().click();
  await shot('06-history.png');

  await page.goto(`${engine.base}/#/history/${ids['New depositor onboarding']}?from=1&to=2`);
  await page.locator('#h-diff .diff').waitFor();
  await shot('07-version-diff.png');

  await page.goto(`${engine.base}/#/edit/${picked.id}`);
  await page.locator('#a-0-p-team_id').waitFor();
  await page.check('#t-raw');
  await page.fill('#t-event', JSON.stringify({ id: 'try-2', type: 'customer.deposited', customer_id: 2, data: { amount: 7000, currency: 'BRL' } }, null, 2));
  await page.check('#t-mode-stored');
  await page.fill('#t-customer-id', '2');
  await page.click('#t-dry-run');
  await page.locator('#t-result .dry-run-result').waitFor();
  await page.locator('#actions-title').evaluate((el) => el.scrollIntoView());
  // the plan at the top of the test panel (which scrolls on its own)
  await page.locator('aside').evaluate((el) => { el.scrollTop = el.querySelector('#t-result h4').offsetTop - 8; });
  await shot('08-pickers-and-previews.png');

  await page.goto(`${engine.base}/#/endpoints`);
  await page.getByRole('button', { name: 'Edit slack_notification' }).click();
  await shot('09-webhook-endpoints.png');

  await page.goto(`${engine.base}/#/sms-providers`);
  await page.locator('#rec-list tr', { hasText: 'vonage' }).waitFor();
  await shot('10-sms-providers.png');

  // a journey: the action tree beside its flow diagram, then a run and the way it went
  const journey = (await api(engine.base, 'POST', '/api/v1/workflows', REGISTRATION_JOURNEY)).body;
  await page.goto(`${engine.base}/#/edit/${journey.id}`);
  await page.locator('#wf-flow svg').waitFor();
  await page.locator('#a-0-heading').evaluate((el) => { el.scrollIntoView(); window.scrollBy(0, -16); });
  await page.locator('#wf-flow').evaluate((el) => { el.scrollLeft = (el.scrollWidth - el.clientWidth) / 2; });
  await shot('11-journey-flow.png');

  await api(engine.base, 'PUT', '/api/v1/customers/1101', { first_name: 'Marta', last_name: 'Lima', country: 'BR' });
  await api(engine.base, 'POST', '/api/v1/events', { id: 'shot-reg-1', type: 'customer.registered', customer_id: 1101, data: { source: 'landing_page' } });
  const ofJourney = { customer_id: 1101, workflow_id: journey.id };
  await runOf(ofJourney, 'waiting');
  await api(engine.base, 'POST', '/api/v1/events', { id: 'shot-dep-1', type: 'customer.deposited', customer_id: 1101, data: { amount: 2500, currency: 'BRL' } });
  await runOf(ofJourney, 'done');
  await page.goto(`${engine.base}/#/runs?customer_id=1101&workflow_id=${journey.id}`);
  const run = page.locator('li.run', { hasText: REGISTRATION_JOURNEY.name });
  await run.locator('summary').click();
  await run.locator('.run-flow svg').waitFor();
  await run.locator('table.steps').evaluate((el) => el.scrollIntoView());
  await shot('12-run-path.png');

  // the test panel as a form: the event's fields from the schema, the customer found by name
  await page.goto(`${engine.base}/#/edit/${picked.id}`);
  await page.locator('#t-ev-data-amount').waitFor();
  await page.fill('#t-ev-data-amount', '7000');
  await page.fill('#t-ev-data-currency', 'BRL');
  await page.check('#t-mode-stored');
  await page.fill('#t-customer-search', 'bruno');
  await page.click('#t-customer-find');
  await page.getByRole('button', { name: /^Use customer 2:/ }).click();
  await page.locator('#t-customer-info', { hasText: 'Bruno' }).waitFor();
  await page.click('#t-dry-run');
  await page.locator('#t-result .dry-run-result').waitFor();
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.locator('aside').evaluate((el) => { el.scrollTop = el.querySelector('.test-panel').offsetTop - 8; });
  await shot('16-test-panel-form.png');
  await page.locator('aside').evaluate((el) => { el.scrollTop = el.querySelector('#t-result').offsetTop - 8; });
  await shot('17-dry-run-sentences.png');

  // the operator's view: why an event ran what it ran, a customer's week, an agent's tasks
  await api(engine.base, 'PUT', '/api/v1/customers/2', { last_name: 'Souza', agent_id: ana.id, custom: { vip_score: 4 } });
  const call = (await api(engine.base, 'POST', '/api/v1/workflows', {
    name: 'Call after a big deposit', trigger_event: 'customer.deposited', priority: 40,
    conditions: { match: 'all', rules: [{ field: 'event.amount', operator: 'gte', value: 5000 }] },
    actions: [{ type: 'create_task', params: { title: 'Call {{customer.first_name}} about the {{event.amount}} {{event.currency}} deposit', due_in: { days: 1 } } }],
  })).body;
  await api(engine.base, 'POST', '/api/v1/events', { id: 'dep-7000', type: 'customer.deposited', customer_id: 2, data: { amount: 7000, currency: 'BRL', method: 'pix' } });
  await runOf({ customer_id: 2, workflow_id: call.id }, 'done'); // its task is created
  for (const deadline = Date.now() + 30_000; ;) {
    const ev = (await api(engine.base, 'GET', '/api/v1/events/dep-7000')).body;
    if (ev?.planned && ev.archived_at) break;
    if (Date.now() > deadline) throw new Error(`event dep-7000 not archived: ${JSON.stringify(ev)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await page.goto(`${engine.base}/#/events/dep-7000`);
  await page.locator('#ev-verdicts').waitFor();
  await shot('13-events-inspector.png');

  await page.goto(`${engine.base}/#/customers/2`);
  await page.locator('#act-week', { hasText: 'In the last 7 days' }).waitFor();
  await page.locator('section[aria-labelledby="cu-events-title"] tbody tr').first().waitFor();
  await shot('14-customer.png');

  await page.goto(`${engine.base}/#/agents/${ana.id}`);
  await page.locator('.task-list tbody tr').first().waitFor();
  await shot('15-agent-tasks.png');

  // an experiment: a holdout, a goal and a three-way split, its runs, its Results page
  const experiment = (await api(engine.base, 'POST', '/api/v1/workflows', {
    name: 'Welcome offer test', trigger_event: 'customer.registered', priority: 60,
    holdout: { percent: 20 },
    goal: { event: 'customer.ftd', within: { days: 7 }, exit: true },
    actions: [
      { type: 'add_note', params: { body: 'Entered the welcome offer test' } },
      {
        type: 'split', name: 'welcome_offer',
        params: {
          paths: [
            { percent: 40, actions: [{ type: 'send_email', params: { subject: 'Welcome, {{customer.first_name}}: your first deposit is matched' } }] },
            { percent: 40, actions: [{ type: 'send_sms', params: { text: 'Welcome! Deposit today and get free trades' } }] },
            { percent: 20, actions: [{ type: 'create_task', params: { title: 'Welcome call for {{customer.first_name}}', due_in: { days: 1 } } }] },
          ],
        },
      },
    ],
  })).body;
  await page.goto(`${engine.base}/#/edit/${experiment.id}`);
  await page.locator('#a-1-path-2-percent').waitFor();
  await page.fill('#a-1-path-2-percent', '30'); // the running sum says what is wrong
  await page.locator('#a-1-split-sum.error-text').waitFor();
  await page.locator('#a-1-heading').evaluate((el) => { el.scrollIntoView(); window.scrollBy(0, -16); });
  await page.locator('#wf-flow').evaluate((el) => { el.scrollLeft = (el.scrollWidth - el.clientWidth) / 2; el.scrollTop = el.scrollHeight; });
  await shot('19-split-editor.png');

  // The Results page draws GET .../stats. A screenshot run cannot make a week of runs, so
  // the page is given a week's answer of the same shape (its runs are made for real in
  // experiments.test.mjs, which compares every number drawn with the engine's).
  const day = (d) => new Date(Date.UTC(2026, 2, 2 + d)).toISOString().replace('.000Z', 'Z');
  const entered = [182, 240, 231, 205, 260, 148, 121, 96];
  const series = entered.map((n, d) => ({ at: day(d), entered: n, done: Math.round(n * 0.78), failed: Math.round(n * 0.02), goal_reached: Math.round(n * 0.11) }));
  const sum = (k) => series.reduce((a, b) => a + b[k], 0);
  await page.route(`**/api/v1/workflows/${experiment.id}/stats**`, (r) => r.fulfill({
    json: {
      entered: sum('entered'), done: sum('done'), failed: sum('failed'), cancelled: 12, waiting: 9, held_out: 295, goal_reached: sum('goal_reached'),
      paths: { '1:0': { entered: 473, goal_reached: 62 }, '1:1': { entered: 468, goal_reached: 49 }, '1:2': { entered: 247, goal_reached: 36 } },
      steps: { 0: 1188, 1: 1188, '1.paths.0.0': 473, '1.paths.1.0': 468, '1.paths.2.0': 247 },
      lift: { treated_rate: 0.1237, holdout_rate: 0.0847, difference: 0.039, ci95: [0.0012, 0.0768] },
      series,
    },
  }));
  await page.goto(`${engine.base}/#/results/${experiment.id}?since=2026-03-02T00:00:00Z&until=2026-03-10T00:00:00Z&bucket=day`);
  await page.locator('#res-lift-sentence').waitFor();
  await page.locator('#res-time-title').evaluate((el) => { el.scrollIntoView(); window.scrollBy(0, -24); });
  await shot('18-experiment-results.png');

  // The contact policy: two caps, deferring past them, and what they held back in the last
  // 24 hours. Its chart is given a day's answer of the same shape (contact.test.mjs makes
  // held messages for real and compares every number drawn with the engine's).
  await api(engine.base, 'PUT', '/api/v1/contact-policy', {
    caps: [{ channel: 'email', max: 2, per: { days: 1 } }, { channel: 'sms', max: 3, per: { days: 7 } }],
    on_cap: 'defer',
  });
  const hourNow = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const at = (h) => new Date(hourNow - h * 3_600_000).toISOString().replace('.000Z', 'Z');
  const heldDay = [];
  const emailDeferred = [0, 0, 2, 5, 9, 12, 8, 4, 0, 0, 0, 1, 3, 6, 11, 14, 10, 6, 3, 0, 0, 0, 0, 1];
  const smsDeferred = [0, 0, 0, 1, 2, 3, 2, 0, 0, 0, 0, 0, 1, 2, 4, 3, 1, 0, 0, 0, 0, 0, 0, 0];
  for (let h = 23; h >= 0; h--) {
    const k = 23 - h;
    if (emailDeferred[k]) heldDay.push({ at: at(h), channel: 'email', outcome: 'deferred', count: emailDeferred[k] });
    if (smsDeferred[k]) heldDay.push({ at: at(h), channel: 'sms', outcome: 'deferred', count: smsDeferred[k] });
  }
  await page.route('**/api/v1/contact-policy/held**', (r) => r.fulfill({ json: { held: heldDay } }));
  await page.goto(`${engine.base}/#/contact-policy`);
  await page.locator('#cp-held-chart svg').waitFor();
  // The whole page: the caps, the choice and the chart in one picture.
  await shot('20-contact-policy.png', { fullPage: true });
} finally {
  await browser.close();
  await engine.stop();
}
