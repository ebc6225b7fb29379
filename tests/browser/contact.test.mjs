// Browser tests of the contact policy page (#/contact-policy): a policy of caps is built
// and saved through the page without JSON, a bad value is refused at its field and nothing
// is stored; then real sends are capped (email goes to a receiver run by the test;
// customers, workflows and events through the API) and the page's chart and sentence draw
// what GET /api/v1/contact-policy/held answers; the runs page says what a cap did to a
// step ("waits for the contact cap until …", "skipped: contact cap: …") and the dry run
// what it would do ("would be deferred by the contact cap: …").
// Run: ./run.sh

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startEngine, startBrowser, api, unnamedControls } from './lib.mjs';

let engine;
let browser;
let page;
let receiver;
const emails = [];
const requests = [];
const problems = [];

/** What test 1 builds through the page, as the API must then hold it. */
const BUILT = {
  caps: [
    { channel: 'email', max: 3, per: { days: 7 } },
    { channel: 'sms', max: 1, per: { hours: 12 } },
  ],
  on_cap: 'defer',
};
const CAP = 'contact cap: at most 1 email per 1 day';
const CUSTOMERS = [7001, 7002, 7003];
/** The order the page says the totals in. */
const SERIES = ['email_skipped', 'email_deferred', 'sms_skipped', 'sms_deferred'];

before(async () => {
  // the integration service that sends email: every request answered 200
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      emails.push({ path: req.url, body: JSON.parse(body || 'null') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  engine = await startEngine({
    env: {
      WFE__SCHEDULER__POLL_INTERVAL_SECS: '1',
      WFE__DELIVERY__EMAIL_URL: `http://127.0.0.1:${receiver.address().port}/email`,
    },
  });
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
  await new Promise((r) => receiver?.close(r));
});

async function must(method, path, body) {
  const r = await api(engine.base, method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function publish(event) {
  const r = await api(engine.base, 'POST', '/api/v1/events', event);
  assert.equal(r.status, 202, JSON.stringify(r.body));
}

/** Polls the runs of `workflowId` until `check(runs)` holds. */
async function waitRuns(workflowId, check, what) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { body } = await api(engine.base, 'GET', `/api/v1/runs?workflow_id=${workflowId}&limit=1000`);
    if (check(body.runs)) return body.runs;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(body.runs.map((r) => [r.customer_id, r.status, r.steps.map((s) => [s.status, s.result])]))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The runs of one customer, oldest first. */
const ofCustomer = (runs, id) => runs.filter((r) => r.customer_id === id).sort((a, b) => a.id - b.id);

/** The values of every cap row the page shows. */
async function rowsShown() {
  return page.locator('.cap-row').evaluateAll((rows) => rows.map((row) => {
    const i = row.dataset.cap;
    const v = (part) => row.querySelector(`#cp-cap-${i}-${part}`).value;
    return { channel: v('channel'), max: v('max'), per: `${v('per-n')} ${v('per-unit')}` };
  }));
}

/** Fills cap row `i` through its controls. */
async function fillCap(i, { channel, max, n, unit }) {
  await page.selectOption(`#cp-cap-${i}-channel`, channel);
  await page.fill(`#cp-cap-${i}-max`, String(max));
  await page.fill(`#cp-cap-${i}-per-n`, String(n));
  await page.selectOption(`#cp-cap-${i}-per-unit`, unit);
}

/** Opens the page and returns the held answer it drew, once drawn. */
async function openPolicyPage() {
  const answer = page.waitForResponse((r) => r.url().includes('/api/v1/contact-policy/held') && r.request().method() === 'GET');
  const url = `${engine.base}/#/contact-policy`;
  if (page.url() === url) await page.reload();
  else await page.goto(url);
  const resp = await answer;
  assert.equal(resp.status(), 200, await resp.text());
  assert.equal(new URL(resp.url()).searchParams.get('hours'), '24');
  await page.locator('#cp-held[aria-busy="false"] #cp-held-sentence').waitFor();
  return resp.json();
}

/** The sentence the page must say for a held answer: "3 email skipped, 3 email deferred in the last 24 hours." */
function expectedSentence(held) {
  const totals = new Map();
  for (const e of held) totals.set(`${e.channel}_${e.outcome}`, (totals.get(`${e.channel}_${e.outcome}`) || 0) + e.count);
  const parts = SERIES.filter((k) => totals.get(k) > 0).map((k) => `${totals.get(k)} ${k.replace('_', ' ')}`);
  return parts.length ? `${parts.join(', ')} in the last 24 hours.` : 'Nothing was held back in the last 24 hours.';
}

test('a policy of two caps is built on the page without JSON, saved, and shown again', async () => {
  assert.deepEqual(await must('GET', '/api/v1/contact-policy'), { caps: [], on_cap: 'skip' });
  await openPolicyPage();
  assert.equal(await page.locator('#view h2').textContent(), 'Contact policy');
  assert.equal(await page.getAttribute('[data-nav="contact-policy"]', 'aria-current'), 'page');
  await page.locator('#cp-no-caps').waitFor();
  assert.equal(await page.isChecked('#cp-on-cap-skip'), true);
  // each choice says what happens; transactional messages are never capped
  assert.match(await page.locator('#cp-on-cap-skip-says').textContent(), /not sent.*skipped.*goes on/);
  assert.match(await page.locator('#cp-on-cap-defer-says').textContent(), /waits.*until the cap’s period has room/);
  assert.match(await page.locator('#cp-transactional').textContent(), /Transactional messages are never capped/);
  // nothing held on a fresh engine: no chart, the empty state
  assert.equal(await page.locator('#cp-held-sentence').textContent(), 'Nothing was held back in the last 24 hours.');
  await page.locator('#cp-held-empty').waitFor();
  assert.equal(await page.locator('#cp-held-chart').count(), 0);

  // three caps, the first removed again: the others move up
  await page.click('#cp-add-cap');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'cp-cap-0-channel', 'focus on the new cap');
  await fillCap(0, { channel: 'sms', max: 9, n: 1, unit: 'days' });
  await page.click('#cp-add-cap');
  await fillCap(1, { channel: 'email', max: 3, n: 7, unit: 'days' });
  assert.equal(await page.locator('#cp-cap-1-says').textContent(), 'At most 3 emails to one customer in any 7 days, over all workflows.');
  await page.click('#cp-add-cap');
  await fillCap(2, { channel: 'sms', max: 1, n: 12, unit: 'hours' });
  await page.click('#cp-cap-0-remove');
  assert.deepEqual(await rowsShown(), [
    { channel: 'email', max: '3', per: '7 days' },
    { channel: 'sms', max: '1', per: '12 hours' },
  ]);
  assert.equal(await page.locator('#cp-cap-1-says').textContent(), 'At most 1 SMS to one customer in any 12 hours, over all workflows.');
  await page.check('#cp-on-cap-defer');
  assert.deepEqual(await unnamedControls(page), []);

  const sent = page.waitForRequest((r) => r.method() === 'PUT' && r.url().endsWith('/api/v1/contact-policy'));
  await page.click('#cp-save');
  assert.deepEqual((await sent).postDataJSON(), BUILT, 'the page sent what was built');
  await page.locator('#cp-saved', { hasText: 'Saved: 2 caps; a message past one is deferred.' }).waitFor();
  assert.deepEqual(await must('GET', '/api/v1/contact-policy'), BUILT);

  // reloaded, the page shows what is stored
  await page.reload();
  await page.locator('#cp-cap-1-max').waitFor();
  assert.deepEqual(await rowsShown(), [
    { channel: 'email', max: '3', per: '7 days' },
    { channel: 'sms', max: '1', per: '12 hours' },
  ]);
  assert.equal(await page.isChecked('#cp-on-cap-defer'), true);
  assert.equal(await page.isChecked('#cp-on-cap-skip'), false);
});

test('bad values are refused at their fields and nothing is stored', async () => {
  await openPolicyPage();
  await page.locator('#cp-cap-1-max').waitFor();
  await page.fill('#cp-cap-0-max', '0');
  await page.fill('#cp-cap-1-per-n', '400');
  await page.selectOption('#cp-cap-1-per-unit', 'days');
  const answer = page.waitForResponse((r) => r.request().method() === 'PUT' && r.url().endsWith('/api/v1/contact-policy'));
  await page.click('#cp-save');
  const resp = await answer;
  assert.equal(resp.status(), 422);
  const { error } = await resp.json();
  assert.deepEqual(error.details.map((d) => d.path).sort(), ['/caps/0/max', '/caps/1/per']);

  // each problem under its own input, in its own row, the input marked; focus on the first
  const maxError = page.locator('.cap-row[data-cap="0"] .field-error[data-for="/caps/0/max"]');
  await maxError.waitFor();
  assert.equal(await maxError.textContent(), error.details.find((d) => d.path === '/caps/0/max').message);
  assert.match(await maxError.textContent(), /at least 1/);
  assert.equal(await page.evaluate(() => document.querySelector('#cp-cap-0-max').nextElementSibling?.dataset.for), '/caps/0/max', 'the message is right under the max input');
  assert.equal(await page.getAttribute('#cp-cap-0-max', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'cp-cap-0-max');
  const perError = page.locator('.cap-row[data-cap="1"] .field-error[data-for="/caps/1/per"]');
  assert.match(await perError.textContent(), /at most 366 days/);
  assert.equal(await page.getAttribute('#cp-cap-1-per-n', 'aria-invalid'), 'true');
  assert.equal(await page.locator('.cap-row[data-cap="1"] .field-error[data-for="/caps/0/max"]').count(), 0, 'no problem in the wrong row');
  assert.match(await page.locator('#cp-summary').textContent(), /Not saved/);
  assert.equal(await page.locator('#cp-saved').textContent(), '');
  assert.deepEqual(await must('GET', '/api/v1/contact-policy'), BUILT, 'nothing stored');

  // a policy takes at most ten caps: "Add cap" stops there; discarding gives back the stored one
  for (let n = 2; n < 10; n++) await page.click('#cp-add-cap');
  assert.equal(await page.locator('.cap-row').count(), 10);
  assert.equal(await page.isDisabled('#cp-add-cap'), true);
  assert.equal(await page.locator('#cp-add-hint').textContent(), 'At most 10 caps.');
  await page.click('#cp-discard');
  assert.deepEqual(await rowsShown(), [
    { channel: 'email', max: '3', per: '7 days' },
    { channel: 'sms', max: '1', per: '12 hours' },
  ]);
  assert.equal(await page.locator('.cap-row .field-error').count(), 0);
  assert.deepEqual(await must('GET', '/api/v1/contact-policy'), BUILT);
});

let workflowId;

test('messages held by a real cap are drawn as the held API answers them', async () => {
  const policy = { caps: [{ channel: 'email', max: 1, per: { days: 1 } }], on_cap: 'defer' };
  assert.deepEqual(await must('PUT', '/api/v1/contact-policy', policy), policy);
  workflowId = (await must('POST', '/api/v1/workflows', {
    name: 'Thanks for the deposit', trigger_event: 'customer.deposited',
    actions: [{ type: 'send_email', params: { subject: 'Thanks, {{customer.first_name}}' } }],
  })).id;
  for (const id of CUSTOMERS) await must('PUT', `/api/v1/customers/${id}`, { first_name: `Cliente ${id}`, email: `c${id}@example.com`, country: 'BR' });

  // two deposits each: the first email goes, the second is deferred by the cap
  for (const id of CUSTOMERS) {
    for (const n of [1, 2]) await publish({ id: `cap-${id}-${n}`, type: 'customer.deposited', customer_id: id, data: { amount: 100 * n, currency: 'BRL' } });
  }
  await waitRuns(workflowId, (runs) => CUSTOMERS.every((id) => {
    const two = ofCustomer(runs, id);
    return two.length === 2 && two.some((r) => r.status === 'done')
      && two.some((r) => r.status === 'waiting' && r.steps[0]?.result?.waiting_for === 'contact_cap');
  }), 'one email sent and one deferred for each customer');
  assert.equal(emails.length, CUSTOMERS.length, 'one email each');
  assert.deepEqual(emails.map((e) => e.body.to).sort(), CUSTOMERS.map((id) => `c${id}@example.com`).sort());

  // now past the cap a message is skipped: a third deposit each
  await must('PUT', '/api/v1/contact-policy', { ...policy, on_cap: 'skip' });
  for (const id of CUSTOMERS) await publish({ id: `cap-${id}-3`, type: 'customer.deposited', customer_id: id, data: { amount: 300, currency: 'BRL' } });
  const runs = await waitRuns(workflowId, (all) => CUSTOMERS.every((id) => {
    const third = ofCustomer(all, id)[2];
    return third?.status === 'done' && third.steps[0]?.status === 'skipped';
  }), 'the third email skipped for each customer');
  for (const id of CUSTOMERS) {
    const mine = ofCustomer(runs, id);
    const deferred = mine.find((r) => r.status === 'waiting');
    assert.equal(deferred.steps[0].status, 'waiting');
    assert.equal(deferred.steps[0].result.cap, CAP);
    assert.match(deferred.reason, new RegExp(`^${CAP}: waiting until `));
    assert.deepEqual(mine[2].steps[0].result, { skipped: CAP });
  }
  assert.equal(emails.length, CUSTOMERS.length, 'no email past the cap');

  const api24 = await must('GET', '/api/v1/contact-policy/held?hours=24');
  const total = (outcome) => api24.held.filter((e) => e.outcome === outcome).reduce((a, e) => a + e.count, 0);
  assert.equal(total('deferred'), CUSTOMERS.length);
  assert.equal(total('skipped'), CUSTOMERS.length);
  assert.ok(api24.held.every((e) => e.channel === 'email'));

  // the page draws that answer
  const drawn = await openPolicyPage();
  assert.deepEqual(drawn, api24, 'the page drew the API’s answer');
  assert.equal(await page.locator('#cp-held-sentence').textContent(), expectedSentence(api24.held));
  assert.equal(await page.locator('#cp-held-sentence').textContent(), '3 email skipped, 3 email deferred in the last 24 hours.');
  const chart = '#cp-held-chart svg';
  await page.locator(chart).waitFor();
  const expected = new Map(api24.held.map((e) => [`${e.channel}_${e.outcome}@${e.at}`, e.count]));
  const points = await page.locator(`${chart} circle.point:not([data-filled])`).evaluateAll((els) => els.map((el) => ({ series: el.dataset.series, at: el.dataset.at, value: Number(el.dataset.value) })));
  for (const [key, count] of expected) {
    const [series, at] = key.split('@');
    const point = points.find((p) => p.series === series && p.at === at);
    assert.ok(point, `a point for ${key}`);
    assert.equal(point.value, count, `${key}`);
  }
  for (const p of points) assert.equal(p.value, expected.get(`${p.series}@${p.at}`) ?? 0, `${p.series} at ${p.at}`);
  assert.deepEqual([...new Set(points.map((p) => p.series))].sort(), ['email_deferred', 'email_skipped']);
  const filled = await page.locator(`${chart} circle.point[data-filled]`).evaluateAll((els) => els.map((el) => Number(el.dataset.value)));
  assert.ok(filled.every((v) => v === 0), 'hours the API left out are zeros');
  // the legend's totals, the axes
  assert.deepEqual(await page.locator('#cp-held-legend li').evaluateAll((lis) => lis.map((li) => [li.dataset.series, Number(li.dataset.value)])),
    [['email_skipped', total('skipped')], ['email_deferred', total('deferred')]]);
  assert.ok(await page.locator(`${chart} .x-axis text.tick`).count() > 0, 'an x axis with ticks');
  assert.equal(await page.locator(`${chart} .y-axis .axis-title`).textContent(), 'messages');
});

test('the runs page and the dry run say what the cap did and would do', async () => {
  assert.ok(workflowId, 'the workflow exists');
  const runs = ofCustomer((await must('GET', `/api/v1/runs?workflow_id=${workflowId}&customer_id=${CUSTOMERS[0]}`)).runs, CUSTOMERS[0]);
  const deferred = runs.find((r) => r.status === 'waiting');
  const skipped = runs.find((r) => r.steps[0]?.status === 'skipped');
  await page.goto(`${engine.base}/#/runs?customer_id=${CUSTOMERS[0]}&workflow_id=${workflowId}`);
  const waiting = page.locator(`li.run[data-run="${deferred.id}"]`);
  await waiting.locator('summary').click();
  const said = await waiting.locator('tr[data-path="0"] .step-outcome').textContent();
  const m = said.match(/^waits for the contact cap until (?:[A-Z][a-z]{2} \d{1,2} )?(\d{2}:\d{2}) \(at most 1 email per 1 day\)$/);
  assert.ok(m, `the deferral said: ${said}`);
  const localHm = await page.evaluate((iso) => { const d = new Date(iso); return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`; }, deferred.steps[0].result.until);
  assert.equal(m[1], localHm, 'the time the cap has room, in this browser’s time zone');
  await waiting.locator('p', { hasText: 'its message is held by the contact cap (at most 1 email per 1 day) until' }).waitFor();

  const skippedRun = page.locator(`li.run[data-run="${skipped.id}"]`);
  await skippedRun.locator('summary').click();
  assert.equal(await skippedRun.locator('tr[data-path="0"] .step-outcome').textContent(), `skipped: ${CAP}`);
  assert.equal(await skippedRun.locator('tr[data-path="0"] .badge').textContent(), 'skipped');

  // the dry run: the customer who had an email today would be deferred; one who had none would not
  await must('PUT', '/api/v1/contact-policy', { caps: [{ channel: 'email', max: 1, per: { days: 1 } }], on_cap: 'defer' });
  await must('PUT', '/api/v1/customers/7009', { first_name: 'Nova', email: 'nova@example.com' });
  await page.goto(`${engine.base}/#/edit/${workflowId}`);
  await page.locator('#editor-title', { hasText: 'Thanks for the deposit' }).waitFor();
  await page.fill('#t-ev-data-amount', '100');
  await page.fill('#t-ev-data-currency', 'BRL');
  await page.check('#t-mode-stored');
  /** Dry-runs the draft for customer `id` (whose email is `email`): the answer and the steps said. */
  const dryRun = async (id, email) => {
    await page.fill('#t-customer-id', String(id));
    assert.equal(await page.inputValue('#t-ev-customer_id'), String(id));
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/dry-run') && r.request().method() === 'POST');
    await page.click('#t-dry-run');
    const resp = await answer;
    assert.equal(resp.status(), 200, await resp.text());
    await page.locator('#t-result ol.plan-actions > li > .sentence', { hasText: email }).waitFor();
    return { body: await resp.json(), said: await page.locator('#t-result ol.plan-actions > li > .sentence').allTextContents() };
  };
  const capped = await dryRun(CUSTOMERS[0], `c${CUSTOMERS[0]}@example.com`);
  assert.deepEqual(capped.body.plan[0].previews[0].capped, { cap: CAP, on_cap: 'defer' });
  assert.deepEqual(capped.said, [`email “Thanks, Cliente ${CUSTOMERS[0]}” to c${CUSTOMERS[0]}@example.com; would be deferred by the ${CAP}`]);
  const free = await dryRun(7009, 'nova@example.com');
  assert.equal(free.body.plan[0].previews[0].capped, undefined);
  assert.deepEqual(free.said, ['email “Thanks, Nova” to nova@example.com']);
});

test('each provider\'s rate is shown, saved on its own and refused at its field', async () => {
  const sms = await must('POST', '/api/v1/sms-providers', { name: 'gateway', url: 'https://sms.example/send', active: true, auth: { type: 'bearer', token: 's3cret' } });
  const hook = await must('POST', '/api/v1/webhook-endpoints', { name: 'partner', url: 'https://partner.example/hook', rate_per_sec: 20 });
  await openPolicyPage();
  const input = (p, id) => `#cp-rate-${p}-${id}-input`;
  await page.locator(input('sms', sms.id)).waitFor();
  assert.equal(await page.inputValue(input('sms', sms.id)), '');
  assert.match(await page.locator(`#cp-rate-sms-${sms.id}-says`).textContent(), /^Unlimited/);
  assert.equal(await page.inputValue(input('endpoint', hook.id)), '20');
  assert.match(await page.locator(`#cp-rate-endpoint-${hook.id}-says`).textContent(), /At most 20 requests a second/);

  // a rate of 0 is refused at its field and nothing is stored
  await page.fill(input('sms', sms.id), '0');
  await page.click(`#cp-rate-sms-${sms.id}-save`);
  await page.locator(`#cp-rate-sms-${sms.id}-row [aria-invalid="true"][data-path="/rate_per_sec"]`).waitFor();
  assert.match(await page.locator(`#cp-rate-sms-${sms.id}-saved`).textContent(), /^Not saved/);
  assert.equal((await must('GET', `/api/v1/sms-providers/${sms.id}`)).rate_per_sec, null);

  // 50 a second is saved, the provider's credentials and URL kept; the other row untouched
  await page.fill(input('sms', sms.id), '50');
  await page.click(`#cp-rate-sms-${sms.id}-save`);
  await page.locator(`#cp-rate-sms-${sms.id}-saved:text("Saved.")`).waitFor();
  const stored = await must('GET', `/api/v1/sms-providers/${sms.id}`);
  assert.equal(stored.rate_per_sec, 50);
  assert.equal(stored.url, 'https://sms.example/send');
  assert.deepEqual(stored.auth, { type: 'bearer', token_set: true });
  assert.equal(stored.active, true);
  assert.equal((await must('GET', `/api/v1/webhook-endpoints/${hook.id}`)).rate_per_sec, 20);

  // emptied, the endpoint is unlimited again
  await page.fill(input('endpoint', hook.id), '');
  await page.click(`#cp-rate-endpoint-${hook.id}-save`);
  await page.locator(`#cp-rate-endpoint-${hook.id}-saved:text("Saved.")`).waitFor();
  assert.equal((await must('GET', `/api/v1/webhook-endpoints/${hook.id}`)).rate_per_sec, null);
  await openPolicyPage();
  assert.equal(await page.inputValue(input('sms', sms.id)), '50');
});

test('the contact policy pages logged no error and asked nothing of another origin', () => {
  assert.deepEqual(requests.filter((u) => !u.startsWith(engine.base)), []);
  assert.deepEqual(problems, []);
});
