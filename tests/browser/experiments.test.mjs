// Browser tests of experiments in the builder page: a workflow with a holdout, a goal and
// a split runs for 100 customers (events through the API), a third of whom then reach the
// goal (enough runs on each side for the engine to give a lift); its Results page draws what GET /api/v1/workflows/{id}/stats answers, and every
// number drawn (data-value) is compared with that answer. The lift, its interval and the
// steps reached are checked on stats given to the page as they are (a fixed answer), so
// their sentence and marks are exact. A split, a holdout and a goal are built in the tree
// editor without JSON; workflows that use them are saved unchanged as they were loaded.
// Run: ./run.sh

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngine, startBrowser, api, ruleId, setRule, unnamedControls } from './lib.mjs';

let engine;
let browser;
let page;
const requests = [];
const problems = [];

/** Half held out; the rest split 50/50 after a first note; the goal is a deposit within a week. */
const EXPERIMENT = {
  name: 'Welcome experiment',
  trigger_event: 'customer.registered',
  holdout: { percent: 50 },
  goal: { event: 'customer.deposited', within: { days: 7 } },
  actions: [
    { type: 'add_note', params: { body: 'Registered' } },
    {
      type: 'split', name: 'welcome_test',
      params: {
        paths: [
          { percent: 50, actions: [{ type: 'add_note', params: { body: 'Welcome, variant A' } }] },
          { percent: 50, actions: [{ type: 'add_note', params: { body: 'Welcome, variant B' } }] },
        ],
      },
    },
  ],
};
const CUSTOMERS = Array.from({ length: 100 }, (_, i) => 8001 + i);
/** Every third customer deposits after entering: 34 goals, held out or not. */
const DEPOSITORS = CUSTOMERS.filter((_, i) => i % 3 === 0);

/** Workflows whose split, holdout and goal must come back as they were saved. */
const ROUND_TRIPS = [
  {
    name: 'Experiment round trip',
    trigger_event: 'customer.deposited',
    priority: 40,
    conditions: { field: 'event.amount', operator: 'gt', value: 0 },
    holdout: { percent: 20 },
    goal: {
      event: 'customer.traded',
      conditions: { field: 'event.amount', operator: 'gte', value: 50 },
      within: { hours: 48 },
      exit: true,
    },
    actions: [
      {
        type: 'wait_for_event', name: 'trade',
        params: {
          event: 'customer.traded',
          timeout: { days: 2 },
          on_event: [{
            type: 'split', name: 'offer',
            params: {
              paths: [
                { percent: 34, actions: [{ type: 'add_note', params: { body: 'Offer A' } }] },
                {
                  percent: 33,
                  actions: [{
                    type: 'branch',
                    params: { paths: [{ when: { field: 'steps.trade.event.amount', operator: 'gte', value: 10 }, actions: [{ type: 'add_note', params: { body: 'Offer B, big trade' } }] }] },
                  }],
                },
                { percent: 33, actions: [{ type: 'add_note', params: { body: 'Offer C' } }] },
              ],
            },
          }],
        },
      },
      { type: 'split', params: { paths: [{ percent: 100, actions: [{ type: 'add_note', params: { body: 'everyone' }, on_error: 'continue' }] }] } },
    ],
  },
  {
    name: 'Goal without conditions',
    trigger_event: 'customer.registered',
    goal: { event: 'customer.ftd', within: { days: 14 } },
    actions: [{ type: 'add_note', params: { body: 'Registered' } }],
  },
];

before(async () => {
  engine = await startEngine();
  browser = await startBrowser();
  page = browser.page;
  page.setDefaultTimeout(15_000);
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of (409|422)/.test(m.text())) problems.push(`console: ${m.text()}`); });
  for (const id of CUSTOMERS) {
    const r = await api(engine.base, 'PUT', `/api/v1/customers/${id}`, { first_name: `Customer ${id}`, country: 'BR' });
    assert.ok([200, 201].includes(r.status), JSON.stringify(r.body));
  }
  await page.goto(engine.base + '/');
});

after(async () => {
  await browser?.close();
  await engine?.stop();
});

async function publish(event) {
  const r = await api(engine.base, 'POST', '/api/v1/events', event);
  assert.equal(r.status, 202, JSON.stringify(r.body));
}

/** Polls the runs of `workflowId` until `check(runs)` holds. */
async function waitRuns(workflowId, check, what) {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const { body } = await api(engine.base, 'GET', `/api/v1/runs?workflow_id=${workflowId}&limit=1000`);
    if (check(body.runs)) return body.runs;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(body.runs.map((r) => [r.customer_id, r.status, r.goal_reached_at]))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Adds an action of `type` at the end of the list at `listPath` ("" is the workflow's own). */
async function addStep(listPath, type) {
  const suffix = listPath === '' ? '' : `-${listPath.replace(/\./g, '-')}`;
  await page.selectOption(`#add-action-type${suffix}`, type);
  await page.click(`#add-action${suffix}`);
}

/** The number in a data- attribute of every element `selector` finds. */
const numbers = (selector, attr = 'value') => page.locator(selector).evaluateAll((els, a) => els.map((el) => Number(el.dataset[a])), attr);
const number = async (selector, attr = 'value') => {
  const all = await numbers(selector, attr);
  assert.equal(all.length, 1, `one ${selector}`);
  return all[0];
};

/** Opens the results page by `open()` and returns the stats answer the page drew. */
async function statsDrawnAfter(workflowId, open) {
  const answer = page.waitForResponse((r) => r.url().includes(`/api/v1/workflows/${workflowId}/stats`) && r.request().method() === 'GET');
  await open();
  const resp = await answer;
  assert.equal(resp.status(), 200, await resp.text());
  const body = await resp.json();
  await page.locator('#res-out[aria-busy="false"] #res-headline').waitFor();
  return { body, search: new URL(resp.url()).search };
}

/** Every number the results page drew equals the stats answer `s`. */
async function assertDrawn(s) {
  for (const key of ['entered', 'done', 'failed', 'cancelled', 'waiting', 'held_out', 'goal_reached']) {
    assert.equal(await number(`#res-headline [data-stat="${key}"]`), s[key], `headline ${key}`);
  }
  // the time chart: a point per bucket and count, at the bucket the API names
  const chart = '#res-time-chart';
  for (const key of ['entered', 'done', 'failed', 'goal_reached']) {
    assert.equal((await numbers(`${chart} circle.point[data-series="${key}"]:not([data-filled])`)).length, s.series.length, `${key}: a point per bucket`);
    for (const b of s.series) {
      assert.equal(await number(`${chart} circle.point[data-series="${key}"][data-at="${b.at}"]`), b[key], `${key} at ${b.at}`);
    }
    const filled = await numbers(`${chart} circle.point[data-series="${key}"][data-filled]`);
    assert.ok(filled.every((v) => v === 0), 'buckets the API left out are drawn as zeros');
  }
  // each split's paths
  for (const [key, p] of Object.entries(s.paths)) {
    assert.equal(await number(`#res-paths rect[data-key="${key}"][data-measure="entered"]`), p.entered, `path ${key} entered`);
    assert.equal(await number(`#res-paths rect[data-key="${key}"][data-measure="goal_rate"]`, 'goalReached'), p.goal_reached, `path ${key} goal reached`);
    const rate = await number(`#res-paths rect[data-key="${key}"][data-measure="goal_rate"]`);
    assert.ok(Math.abs(rate - (p.entered ? p.goal_reached / p.entered : 0)) < 1e-9, `path ${key} goal rate`);
  }
  // the steps reached
  if (s.steps) {
    for (const [path, n] of Object.entries(s.steps)) assert.equal(await number(`#res-funnel rect[data-step="${path}"]`), n, `step ${path} reached`);
    assert.equal((await numbers('#res-funnel rect[data-step]')).length, Object.keys(s.steps).length);
  } else {
    assert.equal(await page.locator('#res-funnel').count(), 0);
  }
  // treated against held out
  if (s.lift) {
    assert.equal(await number('#res-lift rect[data-group="treated"]'), s.lift.treated_rate);
    assert.equal(await number('#res-lift rect[data-group="holdout"]'), s.lift.holdout_rate);
    assert.equal(await number('#res-lift circle.estimate'), s.lift.difference);
    assert.equal(await number('#res-lift line.ci', 'lo'), s.lift.ci95[0]);
    assert.equal(await number('#res-lift line.ci', 'hi'), s.lift.ci95[1]);
    await page.locator('#res-lift-sentence').waitFor();
  } else {
    assert.equal(await page.locator('#res-lift-note').textContent(), s.lift_note);
    assert.equal(await page.locator('#res-lift rect').count(), 0);
  }
}

let experimentId;

test("an experiment's Results page draws the numbers of the stats API", async () => {
  const created = await api(engine.base, 'POST', '/api/v1/workflows', EXPERIMENT);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  experimentId = created.body.id;

  for (const id of CUSTOMERS) await publish({ id: `x-reg-${id}`, type: 'customer.registered', customer_id: id, data: { source: 'landing_page' } });
  const entered = await waitRuns(experimentId, (runs) => runs.length === CUSTOMERS.length && runs.every((r) => ['done', 'held_out'].includes(r.status)), 'every customer’s run to finish or be held out');
  const heldOut = entered.filter((r) => r.status === 'held_out');
  assert.ok(heldOut.length > 0 && heldOut.length < CUSTOMERS.length, `some held out, some treated: ${heldOut.length}`);
  for (const r of heldOut) assert.deepEqual(r.steps, [], 'a held-out run performs nothing');

  for (const id of DEPOSITORS) await publish({ id: `x-dep-${id}`, type: 'customer.deposited', customer_id: id, data: { amount: 100, currency: 'USD' } });
  const runs = await waitRuns(experimentId, (all) => all.filter((r) => r.goal_reached_at).length === DEPOSITORS.length, 'the depositors’ goals');
  assert.deepEqual(runs.filter((r) => r.goal_reached_at).map((r) => r.customer_id).sort(), [...DEPOSITORS].sort());

  // the stats agree with the runs
  const { body: stats } = await api(engine.base, 'GET', `/api/v1/workflows/${experimentId}/stats`);
  assert.equal(stats.entered, CUSTOMERS.length);
  assert.equal(stats.held_out, heldOut.length);
  assert.equal(stats.goal_reached, DEPOSITORS.length);
  assert.ok(stats.lift, `a lift over the holdout: ${stats.lift_note}`);
  const treated = CUSTOMERS.length - heldOut.length;
  assert.equal(stats.paths['1:0'].entered + stats.paths['1:1'].entered, treated);
  assert.deepEqual([stats.steps['0'], stats.steps['1'], stats.steps['1.paths.0.0'] + stats.steps['1.paths.1.0']], [treated, treated, treated]);

  // from the editor to the results, per day
  await page.goto(`${engine.base}/#/edit/${experimentId}`);
  await page.locator('#editor-title', { hasText: EXPERIMENT.name }).waitFor();
  const day = await statsDrawnAfter(experimentId, () => page.click('#wf-results'));
  assert.match(await page.evaluate(() => location.hash), new RegExp(`^#/results/${experimentId}\\?.*bucket=day`));
  assert.equal(await page.locator('#res-title').textContent(), `Results: ${EXPERIMENT.name}`);
  assert.deepEqual(day.body, (await api(engine.base, 'GET', `/api/v1/workflows/${experimentId}/stats${day.search}`)).body, 'the page drew the API’s answer');
  assert.equal(day.body.entered, CUSTOMERS.length);
  assert.equal(day.body.series.reduce((a, b) => a + b.entered, 0), CUSTOMERS.length, 'every run entered in one of the buckets');
  await assertDrawn(day.body);
  assert.match(await page.locator('#res-time-chart svg').getAttribute('aria-label'), new RegExp(`${CUSTOMERS.length} entered`));

  // per hour: the bucket toggle asks again and redraws
  const hour = await statsDrawnAfter(experimentId, () => page.check('#res-bucket-hour'));
  assert.match(new URLSearchParams(hour.search).get('bucket'), /^hour$/);
  await page.locator('#res-out[data-bucket="hour"]').waitFor();
  assert.equal(hour.body.series.reduce((a, b) => a + b.goal_reached, 0), DEPOSITORS.length);
  await assertDrawn(hour.body);
  assert.match(await page.evaluate(() => location.hash), /bucket=hour/);

  // the address holds the range: reloading it draws the same
  const again = await statsDrawnAfter(experimentId, () => page.reload());
  assert.equal(new URLSearchParams(again.search).get('bucket'), 'hour');
  assert.equal(new URLSearchParams(again.search).get('since'), new URLSearchParams(hour.search).get('since'));
});

test('the lift with its interval, the split paths and the steps reached are drawn from the stats as given', async () => {
  assert.ok(experimentId, 'the experiment exists');
  const at = (h) => `2026-03-0${h < 24 ? 2 : 3}T${String(h % 24).padStart(2, '0')}:00:00Z`;
  const given = {
    entered: 500, done: 230, failed: 10, cancelled: 5, waiting: 5, held_out: 250, goal_reached: 50,
    paths: { '1:0': { entered: 120, goal_reached: 18 }, '1:1': { entered: 130, goal_reached: 12 } },
    lift: { treated_rate: 0.12, holdout_rate: 0.08, difference: 0.04, ci95: [0.012, 0.068] },
    // hour buckets with a quiet stretch (03:00 to 05:00) the chart draws as zeros
    series: [
      { at: at(1), entered: 200, done: 90, failed: 4, goal_reached: 20 },
      { at: at(2), entered: 100, done: 50, failed: 2, goal_reached: 10 },
      { at: at(6), entered: 200, done: 90, failed: 4, goal_reached: 20 },
    ],
    steps: { 0: 250, 1: 250, '1.paths.0.0': 120, '1.paths.1.0': 130 },
  };
  const route = `**/api/v1/workflows/${experimentId}/stats**`;
  await page.route(route, (r) => r.fulfill({ json: given }));
  try {
    await page.goto(`${engine.base}/#/results/${experimentId}?since=2026-03-02T00:00:00Z&until=2026-03-02T08:00:00Z&bucket=hour`);
    await page.locator('#res-out[aria-busy="false"] [data-stat="entered"][data-value="500"]').waitFor();
    assert.equal(await page.locator('#res-lift-sentence').textContent(),
      'Goal reached by 12.0% of treated vs 8.0% of held-out customers: +4.0 points (95% interval +1.2 to +6.8)');
    await assertDrawn(given);
    assert.equal((await numbers('#res-time-chart circle.point[data-series="entered"][data-filled]')).length, 3, '03:00, 04:00 and 05:00 drawn as zeros');
    // the bars compare the two rates; the interval lies right of zero, the estimate inside it
    const [treatedH, holdoutH] = await page.locator('#res-lift rect.bar').evaluateAll((els) => els.map((el) => Number(el.getAttribute('height'))));
    assert.ok(Math.abs(treatedH / holdoutH - 1.5) < 0.01, `bar heights in the ratio of the rates: ${treatedH} / ${holdoutH}`);
    const ci = await page.locator('#res-lift line.ci').evaluate((el) => [Number(el.getAttribute('x1')), Number(el.getAttribute('x2'))]);
    const zero = Number(await page.locator('#res-lift line.zero').getAttribute('x1'));
    const dot = Number(await page.locator('#res-lift circle.estimate').getAttribute('cx'));
    assert.ok(zero < ci[0] && ci[0] < dot && dot < ci[1], `zero ${zero} < ${ci[0]} < ${dot} < ${ci[1]}`);
    // the steps reached, in the order of the tree, named by place and action
    assert.deepEqual(await numbers('#res-funnel rect.bar[data-step]'), [250, 250, 120, 130]);
    assert.deepEqual(await page.locator('#res-funnel rect.bar').evaluateAll((els) => els.map((el) => el.dataset.step)), ['0', '1', '1.paths.0.0', '1.paths.1.0']);
    assert.match(await page.locator('#res-funnel').textContent(), /Step 2 › path 1 › 1/);
    // the split's paths are labelled with their share
    assert.match(await page.locator('#res-paths [data-split="1"]').textContent(), /path 1.*50%/);

    // no lift: the note says why; no steps: no funnel
    const bare = { ...given, lift: null, lift_note: 'too few runs: 3 held out, at least 30 needed' };
    delete bare.steps;
    await page.unroute(route);
    await page.route(route, (r) => r.fulfill({ json: bare }));
    await page.click('#res-show');
    await page.locator('#res-lift-note').waitFor();
    await assertDrawn(bare);
    assert.equal(await page.locator('#res-funnel').count(), 0);
  } finally {
    await page.unroute(route);
  }
});

test('a split, a holdout and a goal are built in the tree editor without JSON', async () => {
  await page.goto(`${engine.base}/#/new`);
  await page.locator('#editor-title', { hasText: 'New workflow' }).waitFor();
  const name = 'Split built by hand';
  await page.fill('#wf-name', name);
  await page.selectOption('#wf-trigger', 'customer.registered');

  // a new split is an even A/B test
  await addStep('', 'split');
  assert.equal(await page.inputValue('#a-0-path-0-percent'), '50');
  assert.equal(await page.inputValue('#a-0-path-1-percent'), '50');
  assert.equal(await page.locator('#a-0-split-sum').textContent(), 'Total: 100%.');
  await page.fill('#a-0-name', 'welcome_test');
  await addStep('0.paths.0', 'add_note');
  await page.fill('#a-0-paths-0-0-p-body', 'Variant A');
  await addStep('0.paths.1', 'send_email');
  await page.fill('#a-0-paths-1-0-p-subject', 'Variant B');

  // the running sum says when the percents do not add up to 100
  await page.fill('#a-0-path-0-percent', '70');
  await page.fill('#a-0-path-1-percent', '20');
  assert.equal(await page.locator('#a-0-split-sum').textContent(), 'The percents add up to 90%, not 100%: 10 left to give.');
  assert.equal(await page.getAttribute('#a-0-path-0-percent', 'aria-invalid'), 'true');
  // a third path takes what is left
  await page.click('#a-0-add-path');
  assert.equal(await page.inputValue('#a-0-path-2-percent'), '10');
  assert.equal(await page.locator('#a-0-split-sum').textContent(), 'Total: 100%.');
  assert.equal(await page.getAttribute('#a-0-path-0-percent', 'aria-invalid'), null);
  await addStep('0.paths.2', 'add_note');
  await page.fill('#a-0-paths-2-0-p-body', 'Variant C');

  // the diagram draws it like a branch, each arm labelled with its share
  const flow = page.locator('#wf-flow svg');
  await flow.locator('[data-arm="0.paths.2"]').waitFor();
  assert.deepEqual(await Promise.all([0, 1, 2].map((k) => flow.locator(`[data-arm="0.paths.${k}"] > title`).textContent())), ['70%', '20%', '10%']);
  assert.match(await flow.locator('[data-path="0.paths.1.0"]').textContent(), /email/i);

  // the workflow's holdout and goal
  await page.fill('#wf-holdout', '10');
  await page.check('#wf-goal');
  await page.selectOption('#wf-goal-event', 'customer.deposited');
  await page.click(ruleId('/goal/conditions', 'add-rule'));
  await setRule(page, { field: 'event.amount', operator: 'gte', value: 100 }, '/goal/conditions/rules/0');
  await page.fill('#wf-goal-within-n', '3');
  await page.selectOption('#wf-goal-within-unit', 'days');
  await page.check('#wf-goal-exit');

  assert.deepEqual(await unnamedControls(page), []);
  await page.click('#wf-save');
  await page.locator('#wf-summary', { hasText: `Saved “${name}”, version 1.` }).waitFor();
  const { workflows } = (await api(engine.base, 'GET', '/api/v1/workflows')).body;
  const saved = (await api(engine.base, 'GET', `/api/v1/workflows/${workflows.find((w) => w.name === name).id}`)).body;
  assert.deepEqual(saved.actions, [{
    type: 'split', name: 'welcome_test',
    params: {
      paths: [
        { percent: 70, actions: [{ type: 'add_note', params: { body: 'Variant A' } }] },
        { percent: 20, actions: [{ type: 'send_email', params: { subject: 'Variant B' } }] },
        { percent: 10, actions: [{ type: 'add_note', params: { body: 'Variant C' } }] },
      ],
    },
  }]);
  assert.deepEqual(saved.holdout, { percent: 10 });
  assert.deepEqual(saved.goal, {
    event: 'customer.deposited',
    conditions: { match: 'all', rules: [{ field: 'event.amount', operator: 'gte', value: 100 }] },
    within: { days: 3 },
    exit: true,
  });

  // reopened, the form shows what was saved
  await page.reload();
  await page.locator('#a-0-path-2-percent').waitFor();
  assert.equal(await page.inputValue('#a-0-path-0-percent'), '70');
  assert.equal(await page.inputValue('#wf-holdout'), '10');
  assert.equal(await page.isChecked('#wf-goal-exit'), true);
  assert.equal(await page.inputValue(ruleId('/goal/conditions/rules/0', 'field')), 'event.amount');
});

test('workflows with a split, a holdout and a goal are saved unchanged as they were loaded', async () => {
  for (const wf of ROUND_TRIPS) {
    const created = await api(engine.base, 'POST', '/api/v1/workflows', wf);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const loaded = (await api(engine.base, 'GET', `/api/v1/workflows/${id}`)).body;
    for (const key of Object.keys(wf)) assert.deepEqual(loaded[key], wf[key], `${wf.name}: the engine holds ${key} as sent`);
    const sent = [];
    const listen = (r) => { if (r.method() === 'PUT' && r.url().endsWith(`/api/v1/workflows/${id}`)) sent.push(r.postDataJSON()); };
    page.on('request', listen);
    await page.goto(`${engine.base}/#/edit/${id}`);
    await page.locator('#editor-title', { hasText: wf.name }).waitFor();
    await page.locator('#a-0-type').waitFor();
    await page.click('#wf-save');
    await page.locator('#wf-summary', { hasText: `Saved “${wf.name}”, version 2.` }).waitFor();
    page.off('request', listen);
    // what the page sent holds every key as it was loaded
    assert.equal(sent.length, 1);
    for (const key of Object.keys(wf)) assert.deepEqual(sent[0][key], loaded[key], `${wf.name}: the page sent ${key} as loaded`);
    const saved = (await api(engine.base, 'GET', `/api/v1/workflows/${id}`)).body;
    for (const key of Object.keys(wf)) assert.deepEqual(saved[key], wf[key], `${wf.name}: ${key}`);
    const { versions } = (await api(engine.base, 'GET', `/api/v1/workflows/${id}/versions`)).body;
    const [v1, v2] = [1, 2].map((n) => versions.find((v) => v.version === n).definition);
    const strip = ({ version, ...rest }) => { void version; return rest; };
    assert.equal(JSON.stringify(strip(v2)), JSON.stringify(strip(v1)), `${wf.name}: version 2 is version 1, byte for byte`);
  }
});

test('the experiment pages logged no error and asked nothing of another origin', () => {
  assert.deepEqual(requests.filter((u) => !u.startsWith(engine.base)), []);
  assert.deepEqual(problems, []);
});
