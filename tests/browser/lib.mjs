// Shared by the browser tests and the screenshot script: start the engine binary on a
// fresh SQLite file and the embedded broker, and a headless Chromium (Debian's package)
// driven by playwright-core.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, existsSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BINARY = process.env.WFE_BINARY || join(ROOT, 'target/debug/workflow-engine');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SEED_WORKFLOWS = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/seed_workflows.json'), 'utf8'));

/**
 * The registration journey of docs/workflow-language.md ("Journeys"), as the journey test
 * builds it through the page and the API then holds it; the screenshots show it too. A
 * task on timeout (not an SMS) keeps every step inside the engine, so its runs end done.
 */
export const REGISTRATION_JOURNEY = {
  name: 'First deposit journey',
  trigger_event: 'customer.registered',
  actions: [{
    type: 'wait_for_event',
    name: 'deposit',
    params: {
      event: 'customer.deposited',
      timeout: { days: 3 },
      conditions: { match: 'all', rules: [{ field: 'event.amount', operator: 'gt', value: 0 }] },
      on_event: [{
        type: 'branch',
        params: {
          paths: [
            {
              when: { match: 'all', rules: [{ field: 'steps.deposit.event.amount', operator: 'gte', value: 1000 }] },
              actions: [{ type: 'add_note', params: { body: 'Big first deposit: {{steps.deposit.event.amount}}' } }],
            },
            {
              when: { match: 'all', rules: [{ field: 'steps.deposit.event.amount', operator: 'lt', value: 1000 }] },
              actions: [{ type: 'add_note', params: { body: 'Small first deposit' } }],
            },
          ],
        },
      }],
      on_timeout: [{ type: 'create_task', params: { title: 'Call {{customer.first_name}}: no deposit yet', due_in: { days: 1 } } }],
    },
  }],
};

/**
 * Statuses, so status fields offer their options (as a broker's CRM has). A fresh database
 * already has the status types sales, kyc and retention; ids are looked up by name.
 */
const SEED_SQL = `
INSERT OR IGNORE INTO status_types(name) VALUES ('sales'), ('retention');
INSERT INTO statuses(status_type_id, name)
  SELECT t.id, s.name FROM status_types t JOIN (SELECT 'sales' AS type, 'new' AS name UNION ALL SELECT 'sales', 'vip'
    UNION ALL SELECT 'retention', 'active' UNION ALL SELECT 'retention', 'churning') s ON s.type = t.name;
`;

/**
 * Starts `workflow-engine serve` on 127.0.0.1:0 and resolves once it listens and /readyz
 * says the consumer owns its partitions. `env` adds settings (WFE__...). Returns
 * { base, stop(), dir, log() }.
 */
export async function startEngine({ token = '', seedStatuses = true, env: extraEnv = {} } = {}) {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run cargo build first`);
  const dir = mkdtempSync(join(tmpdir(), 'wfe-ui-'));
  const env = {
    ...process.env,
    WFE__HTTP__BIND: '127.0.0.1:0',
    WFE__HTTP__AUTH_TOKEN: token,
    WFE__DATABASE__URL: `sqlite://${dir}/ui.db`,
    WFE__SCHEDULER__DELAY_OVERRIDE_SECS: '2',
    WFE__LOG__LEVEL: process.env.WFE__LOG__LEVEL || 'warn',
    ...extraEnv,
  };
  if (seedStatuses) {
    execFileSync(BINARY, ['migrate'], { env, stdio: 'ignore' });
    try {
      execFileSync('sqlite3', [join(dir, 'ui.db')], { input: SEED_SQL, stdio: ['pipe', 'ignore', 'inherit'] });
    } catch (e) {
      console.warn(`# no statuses seeded (sqlite3: ${e.message}); status fields are typed as free text`);
    }
  }
  const child = spawn(BINARY, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const base = await new Promise((resolveBase, reject) => {
    const timer = setTimeout(() => reject(new Error(`engine did not start:\n${output}`)), 60_000);
    child.stdout.on('data', () => {
      const m = output.match(/listening on (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(timer); resolveBase(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`engine exited with ${code}:\n${output}`)); });
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await fetch(`${base}/readyz`).catch(() => null);
    if (r?.ok) break;
    if (Date.now() > deadline) throw new Error(`engine not ready:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    base,
    dir,
    log: () => output,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => { if (child.exitCode !== null) r(); else child.once('exit', r); setTimeout(r, 10_000); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A headless Chromium with a fresh profile, 1280x800. Returns { context, page, close() }. */
export async function startBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'wfe-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || await context.newPage();
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** JSON API call for setting up screenshots (tests go through the page). */
export async function api(base, method, path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** The id the condition editor gives a rule's control at JSON pointer `path`. */
export const ruleId = (path, part) => '#c' + path.replace(/\//g, '-') + '-' + part;

/**
 * Builds `wf` (a workflow definition like the seed's) in the editor through the page only:
 * it must be at #/new. Supports flat and nested groups, `not`, and every param kind the
 * fixtures use.
 */
export async function buildWorkflow(page, wf) {
  await page.fill('#wf-name', wf.name);
  if (wf.description) await page.fill('#wf-description', wf.description);
  const known = await page.locator(`#wf-trigger option[value="${wf.trigger_event}"]`).count();
  if (known) await page.selectOption('#wf-trigger', wf.trigger_event);
  else {
    await page.selectOption('#wf-trigger', '__other__');
    await page.fill('#wf-trigger-other', wf.trigger_event);
    await page.press('#wf-trigger-other', 'Tab');
  }
  await page.fill('#wf-priority', String(wf.priority ?? 100));
  await page.setChecked('#wf-stop-after', Boolean(wf.stop_after));
  if (wf.conditions) await buildGroup(page, wf.conditions, '/conditions');
  for (const [i, action] of wf.actions.entries()) {
    await page.selectOption('#add-action-type', action.type);
    await page.click('#add-action');
    if (action.type === 'delay') {
      const [unit, n] = Object.entries(action.params)[0];
      await page.fill(`#a-${i}-p-delay-n`, String(n));
      await page.selectOption(`#a-${i}-p-delay-unit`, unit);
      continue;
    }
    for (const [name, value] of Object.entries(action.params)) {
      const duration = value && typeof value === 'object' && ['minutes', 'hours', 'days'].find((u) => u in value);
      if (duration) {
        await page.fill(`#a-${i}-p-${name}-n`, String(value[duration]));
        await page.selectOption(`#a-${i}-p-${name}-unit`, duration);
      } else if (typeof value === 'object') {
        await page.fill(`#a-${i}-p-${name}`, JSON.stringify(value, null, 2));
      } else if (typeof value === 'boolean') {
        await page.selectOption(`#a-${i}-p-${name}`, String(value));
      } else if (await page.locator(`#a-${i}-p-${name}`).evaluate((el) => el.tagName) === 'SELECT') {
        await pick(page, `#a-${i}-p-${name}`, value);
      } else {
        await page.fill(`#a-${i}-p-${name}`, String(value));
      }
    }
  }
}

/**
 * Chooses `value` in a picker by name (ui/pickers.js): the option showing it (its label is
 * the value, or ends with "(value)"), else "Another value" and types it.
 */
export async function pick(page, sel, value) {
  const label = await page.locator(`${sel} option`).evaluateAll((opts, v) =>
    opts.find((o) => o.value !== '__other__' && (o.textContent === v || o.textContent.endsWith(`(${v})`)))?.textContent, String(value));
  if (label) {
    await page.selectOption(sel, { label });
  } else {
    await page.selectOption(sel, '__other__');
    await page.fill(`${sel}-other`, String(value));
  }
}

async function buildGroup(page, group, path) {
  await page.selectOption(ruleId(path, 'match'), group.match);
  for (const [i, node] of group.rules.entries()) {
    const child = `${path}/rules/${i}`;
    if ('match' in node) {
      await page.click(ruleId(path, 'add-group'));
      await buildGroup(page, node, child);
    } else if ('not' in node) {
      await page.click(ruleId(path, 'add-rule'));
      await setRule(page, node.not, child);
      await page.click(ruleId(child, 'negate'));
    } else {
      await page.click(ruleId(path, 'add-rule'));
      await setRule(page, node, child);
    }
  }
}

/** Picks the field (from the list, or typed), the operator and the value of one rule. */
export async function setRule(page, rule, path) {
  const field = ruleId(path, 'field');
  if (await page.locator(`${field} option[value="${rule.field}"]`).count()) await page.selectOption(field, rule.field);
  else {
    await page.selectOption(field, '__custom__');
    await page.fill(ruleId(path, 'custom'), rule.field);
    await page.press(ruleId(path, 'custom'), 'Tab');
  }
  await page.selectOption(ruleId(path, 'operator'), rule.operator);
  const values = rule.operator === 'between' ? rule.value.map((v, i) => [`value-${i}`, v])
    : ['in', 'not_in'].includes(rule.operator) ? rule.value.map((v, i) => [`value-${i}`, v])
    : 'value' in rule ? [['value', rule.value]] : [];
  for (const [i, [part, v]] of values.entries()) {
    if (['in', 'not_in'].includes(rule.operator)) await page.click(ruleId(path, 'add-value'));
    const sel = ruleId(path, part);
    const tag = await page.locator(sel).evaluate((el) => el.tagName);
    if (tag === 'SELECT') {
      const label = await page.locator(`${sel} option`).evaluateAll((opts, v) =>
        opts.find((o) => o.textContent === v || o.textContent.startsWith(`${v} (`) || o.textContent.endsWith(`(${v})`))?.textContent, String(v));
      await page.selectOption(sel, { label });
    } else {
      await page.fill(sel, String(v));
    }
    void i;
  }
}

/** The form controls of the page (outside dialogs) that have no accessible name. */
export async function unnamedControls(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => !el.closest('dialog') && !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim())))
    .map((el) => el.id || el.outerHTML.slice(0, 80)));
}
