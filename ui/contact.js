// The contact policy page (#/contact-policy): caps on how many messages one customer gets
// per channel across all workflows (GET and PUT /api/v1/contact-policy), edited as rows
// (channel, at most how many, per how long), and what happens to a message past a cap
// (skip or defer). Every problem of a 422 lands at the row and field its JSON pointer
// names. Below, what the caps held back in the last 24 hours
// (GET /api/v1/contact-policy/held), drawn per hour by charts.js, one series per channel
// and outcome, each point carrying its count in data-value, and said in a sentence.
// Last, each provider's rate: the SMS providers and webhook endpoints with their
// `rate_per_sec` (requests per second across the cluster, empty = unlimited), each saved
// on its own by reading the provider and writing it back with the new rate
// (GET then PUT /api/v1/sms-providers/{id} or /api/v1/webhook-endpoints/{id}).

import { get, put } from './api.js';
import { h, announce, clearErrors, showErrors } from './dom.js';
import { timeChart, bucketsOf, utcHour } from './charts.js';
import { durationText, plural } from './words.js';

const CHANNELS = [['email', 'email'], ['sms', 'SMS']];
const UNITS = ['minutes', 'hours', 'days'];
/** The engine takes at most this many caps. */
const MAX_CAPS = 10;
const HOURS = 24;
const HOUR = 3_600_000;
const NUMBER_RE = /^\s*-?\d+(\.\d+)?\s*$/;
/** The chart's series, one per channel and outcome, in the order the totals are said. */
const SERIES = ['email', 'sms'].flatMap((channel) => ['skipped', 'deferred'].map((outcome) => ({
  key: `${channel}_${outcome}`, label: `${channel} ${outcome}`, channel, outcome,
})));
const seriesKey = (entry) => `${entry.channel}_${entry.outcome}`;

/** A cap as its row edits it (texts, so what is typed is sent as typed). */
function capState(cap) {
  const per = cap?.per && typeof cap.per === 'object' ? cap.per : null;
  const unit = per ? UNITS.find((u) => u in per) ?? 'days' : 'days';
  return {
    channel: cap?.channel ?? 'email',
    max: cap?.max === undefined || cap?.max === null ? '' : String(cap.max),
    n: per ? String(per[unit]) : '1',
    unit,
  };
}

/** A typed number as a JSON number when it is one; anything else as typed, for the engine to refuse at its field. */
const numberOf = (t) => (NUMBER_RE.test(t) ? Number(t) : t.trim());

/** The body of PUT /api/v1/contact-policy from the rows; empty inputs are left out (the engine says they are required). */
function policyBody(caps, onCap) {
  return {
    caps: caps.map((c) => {
      const out = { channel: c.channel };
      if (String(c.max).trim() !== '') out.max = numberOf(String(c.max));
      if (String(c.n).trim() !== '') out.per = { [c.unit]: numberOf(String(c.n)) };
      return out;
    }),
    on_cap: onCap,
  };
}

/** "At most 2 email per customer in any 1 day." for a row, or what is missing. */
function capSentence(c) {
  const max = String(c.max).trim();
  const n = String(c.n).trim();
  if (!/^\d+$/.test(max) || Number(max) < 1 || !/^\d+$/.test(n) || Number(n) < 1) return 'A whole number of messages (at least 1) and a period are needed.';
  const what = c.channel === 'sms' ? plural(Number(max), 'SMS', 'SMS') : plural(Number(max), 'email', 'emails');
  return `At most ${what} to one customer in any ${durationText({ [c.unit]: Number(n) })}, over all workflows.`;
}

/** "Saved: 2 caps, deferred past them." */
function savedText(policy) {
  const caps = policy.caps || [];
  if (!caps.length) return 'Saved: no caps, every message is sent.';
  return `Saved: ${plural(caps.length, 'cap')}; a message past one is ${policy.on_cap === 'defer' ? 'deferred' : 'skipped'}.`;
}

/**
 * The totals of the held answer said in a sentence: "12 email skipped, 3 sms deferred in
 * the last 24 hours." (channels email then sms, skipped before deferred; zeros left out).
 */
export function heldSentence(held, hours = HOURS) {
  const totals = new Map();
  for (const e of held || []) totals.set(seriesKey(e), (totals.get(seriesKey(e)) || 0) + (Number(e.count) || 0));
  const known = SERIES.map((s) => s.key);
  const keys = [...known, ...[...totals.keys()].filter((k) => !known.includes(k)).sort()];
  const parts = keys.filter((k) => totals.get(k) > 0).map((k) => `${totals.get(k)} ${k.replace('_', ' ')}`);
  return parts.length ? `${parts.join(', ')} in the last ${hours} hours.` : `Nothing was held back in the last ${hours} hours.`;
}

/** The kinds of provider that take a rate, as the API lists them. */
const PROVIDERS = [
  { path: '/api/v1/sms-providers', list: 'sms_providers', kind: 'SMS provider', slug: 'sms' },
  { path: '/api/v1/webhook-endpoints', list: 'webhook_endpoints', kind: 'Webhook endpoint', slug: 'endpoint' },
];

/** "At most 50 requests a second, across all nodes; more wait their turn." or unlimited. */
export function rateSentence(rate) {
  const t = String(rate ?? '').trim();
  if (t === '') return 'Unlimited: requests leave as soon as they are ready.';
  if (!/^\d+$/.test(t) || Number(t) < 1) return 'A whole number of requests per second (at least 1), or empty for unlimited.';
  return `At most ${plural(Number(t), 'request')} a second, across all nodes; more wait their turn, none is dropped.`;
}

/** The section listing each provider with its rate, each row saved on its own. */
async function providerRates() {
  const rows = h('div', { class: 'rates', id: 'cp-rates' });
  const section = h('section', { class: 'panel', 'aria-labelledby': 'cp-rates-title', id: 'cp-rates-section' },
    h('h3', { id: 'cp-rates-title' }, 'Provider rates'),
    h('p', { class: 'hint' }, 'How many requests per second each provider takes, held across the whole cluster: past it, messages and webhooks queue and leave in their turn, each customer’s in order. The email service’s rate is set in the engine’s configuration (delivery.email_rate_per_sec).'),
    rows);
  const found = [];
  for (const p of PROVIDERS) {
    try {
      const page = await get(`${p.path}?limit=100`);
      for (const item of page[p.list] || []) found.push({ p, item });
    } catch (e) {
      rows.append(h('p', { class: 'error-text', role: 'alert' }, `Could not load the ${p.kind.toLowerCase()}s: ${e.message}`));
    }
  }
  if (!found.length) rows.append(h('p', { class: 'muted', id: 'cp-no-providers' }, 'No SMS provider or webhook endpoint yet: add them on the Webhook endpoints and SMS providers pages.'));
  for (const { p, item } of found) rows.append(rateRow(p, item));
  return section;
}

function rateRow(p, item) {
  const id = (part) => `cp-rate-${p.slug}-${item.id}-${part}`;
  let value = item.rate_per_sec == null ? '' : String(item.rate_per_sec);
  const says = h('p', { class: 'hint', id: id('says') }, rateSentence(value));
  const status = h('span', { class: 'muted', id: id('saved'), role: 'status' });
  const input = h('input', {
    id: id('input'), type: 'number', min: '1', step: '1', inputmode: 'numeric', value, placeholder: 'unlimited',
    'data-path': '/rate_per_sec', 'aria-describedby': says.id,
    oninput: (e) => { value = e.target.value; says.textContent = rateSentence(value); status.textContent = ''; },
  });
  const row = h('form', { class: 'rate-row', novalidate: true, id: id('row'), dataset: { provider: `${p.slug}:${item.id}` } },
    h('div', { class: 'cap-fields' },
      h('strong', { class: 'cap-title' }, `${p.kind}: ${item.name}`),
      h('div', { class: 'field' }, h('label', { for: input.id }, 'Requests per second'), input),
      h('div', { class: 'cap-tools' }, h('button', { type: 'submit', id: id('save') }, 'Save rate'), status)),
    says);
  row.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(row);
    status.textContent = '';
    try {
      // written back as read: the API keeps the secrets and the URL a read shows redacted
      const current = await get(`${p.path}/${item.id}`);
      const t = value.trim();
      current.rate_per_sec = t === '' ? null : (/^\d+$/.test(t) ? Number(t) : t);
      const stored = await put(`${p.path}/${item.id}`, current);
      value = stored.rate_per_sec == null ? '' : String(stored.rate_per_sec);
      input.value = value;
      says.textContent = rateSentence(value);
      status.textContent = 'Saved.';
      announce(`${p.kind} ${item.name}: ${rateSentence(value)}`);
    } catch (err) {
      showErrors(row, err.details, { fallback: says });
      status.textContent = `Not saved: ${err.message}`;
      announce(`Rate of ${item.name} not saved: ${err.message}`, 'error');
      input.focus();
    }
  });
  return row;
}

export async function renderContactPolicy(view) {
  let stored = await get('/api/v1/contact-policy');
  let caps = [];
  let onCap = 'skip';
  const reset = (policy) => {
    caps = (policy?.caps || []).map(capState);
    onCap = policy?.on_cap === 'defer' ? 'defer' : 'skip';
  };
  reset(stored);

  // --- the caps ------------------------------------------------------------------------
  const rows = h('div', { class: 'caps', id: 'cp-caps', 'data-path': '/caps' });
  const addBtn = h('button', { type: 'button', id: 'cp-add-cap', 'aria-describedby': 'cp-add-hint', onclick: () => addCap() }, 'Add cap');
  const addHint = h('span', { class: 'hint', id: 'cp-add-hint' });

  function drawCaps(focusId) {
    rows.replaceChildren(...(caps.length ? caps.map(capRow) : [h('p', { class: 'muted', id: 'cp-no-caps' }, 'No caps: every message is sent, however many a customer got already.')]));
    addBtn.disabled = caps.length >= MAX_CAPS;
    addHint.textContent = caps.length >= MAX_CAPS ? `At most ${MAX_CAPS} caps.` : `${caps.length} of at most ${MAX_CAPS} caps.`;
    if (focusId) document.getElementById(focusId)?.focus();
  }

  function capRow(c, i) {
    const id = (part) => `cp-cap-${i}-${part}`;
    const says = h('p', { class: 'hint cap-says', id: id('says') }, capSentence(c));
    const update = () => { says.textContent = capSentence(c); };
    const channel = h('select', {
      id: id('channel'), 'data-path': `/caps/${i}/channel`,
      onchange: (e) => { c.channel = e.target.value; update(); },
    }, CHANNELS.map(([v, label]) => h('option', { value: v, selected: v === c.channel }, label)));
    if (!CHANNELS.some(([v]) => v === c.channel)) channel.append(h('option', { value: c.channel, selected: true }, `${c.channel} (unknown)`));
    const max = h('input', {
      id: id('max'), type: 'number', min: '1', step: '1', inputmode: 'numeric', value: c.max, placeholder: 'e.g. 3',
      'data-path': `/caps/${i}/max`, 'aria-describedby': says.id,
      oninput: (e) => { c.max = e.target.value; update(); },
    });
    const n = h('input', {
      id: id('per-n'), type: 'number', min: '1', step: '1', inputmode: 'numeric', value: c.n, 'aria-label': `Cap ${i + 1}, per: amount`,
      oninput: (e) => { c.n = e.target.value; update(); },
    });
    const unit = h('select', { id: id('per-unit'), 'aria-label': `Cap ${i + 1}, per: unit`, onchange: (e) => { c.unit = e.target.value; update(); } },
      UNITS.map((u) => h('option', { value: u, selected: u === c.unit }, u)));
    const remove = h('button', {
      type: 'button', class: 'danger', id: id('remove'), 'aria-label': `Remove cap ${i + 1}`,
      onclick: () => {
        caps.splice(i, 1);
        drawCaps(caps.length ? `cp-cap-${Math.min(i, caps.length - 1)}-remove` : addBtn.id);
      },
    }, 'Remove');
    return h('div', { class: 'cap-row', role: 'group', 'aria-labelledby': id('title'), 'data-path': `/caps/${i}`, dataset: { cap: String(i) } },
      h('div', { class: 'cap-fields' },
        h('strong', { class: 'cap-title', id: id('title') }, `Cap ${i + 1}`),
        h('div', { class: 'field' }, h('label', { for: channel.id }, 'Channel'), channel),
        h('div', { class: 'field' }, h('label', { for: max.id }, 'At most (messages)'), max),
        h('div', { class: 'field' },
          h('span', { class: 'label', id: id('per-label') }, 'Per'),
          h('div', { class: 'duration', role: 'group', 'aria-labelledby': id('per-label'), 'data-path': `/caps/${i}/per` }, n, unit)),
        h('div', { class: 'cap-tools' }, remove)),
      says);
  }

  function addCap() {
    if (caps.length >= MAX_CAPS) return;
    caps.push(capState(null));
    drawCaps(`cp-cap-${caps.length - 1}-channel`);
  }

  // --- what happens past a cap ---------------------------------------------------------
  const radio = (value, label, sentence) => {
    const input = h('input', {
      type: 'radio', name: 'cp-on-cap', id: `cp-on-cap-${value}`, value, checked: onCap === value,
      'aria-describedby': `cp-on-cap-${value}-says`,
      onchange: () => { onCap = value; },
    });
    return h('div', { class: 'on-cap-choice' },
      h('span', { class: 'radio' }, input, h('label', { for: input.id }, label)),
      h('p', { class: 'hint', id: `cp-on-cap-${value}-says` }, sentence));
  };
  const onCapBox = h('fieldset', { class: 'on-cap', 'data-path': '/on_cap', id: 'cp-on-cap' });
  function drawOnCap() {
    onCapBox.replaceChildren(
      h('legend', {}, 'When a message would pass a cap'),
      radio('skip', 'Skip it', 'The message is not sent: its step is marked skipped, with the cap as the reason, and the run goes on with its next step.'),
      radio('defer', 'Defer it', 'The message waits: the run pauses at its step until the cap’s period has room again, then sends it and goes on.'));
  }

  // --- save ----------------------------------------------------------------------------
  const summary = h('div', { class: 'form-summary', id: 'cp-summary', 'data-path': '' });
  const saved = h('span', { id: 'cp-saved', class: 'muted', role: 'status' });
  const saveBtn = h('button', { type: 'submit', class: 'primary', id: 'cp-save' }, 'Save policy');
  const discard = h('button', {
    type: 'button', id: 'cp-discard',
    onclick: () => { reset(stored); clearErrors(form); summary.replaceChildren(); saved.textContent = ''; drawCaps(); drawOnCap(); },
  }, 'Discard changes');
  const form = h('form', { class: 'panel contact-form', id: 'cp-form', novalidate: true, 'aria-labelledby': 'cp-caps-title' },
    h('h3', { id: 'cp-caps-title' }, 'Caps'),
    h('p', { class: 'hint' }, 'A cap counts the messages one customer got on one channel over a sliding period, from every workflow together: with “at most 2 email per 1 day”, no customer gets a third email within 24 hours of the first two.'),
    rows,
    h('div', { class: 'buttons' }, addBtn, addHint),
    onCapBox,
    h('p', { class: 'notice', id: 'cp-transactional' }, 'Transactional messages are never capped and never counted: a step marked transactional in a workflow’s guard rails (a receipt, a password reset) is always sent.'),
    summary,
    h('div', { class: 'buttons' }, saveBtn, discard, saved));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    summary.replaceChildren();
    saved.textContent = '';
    saveBtn.disabled = true;
    try {
      stored = await put('/api/v1/contact-policy', policyBody(caps, onCap));
      reset(stored);
      drawCaps();
      drawOnCap();
      saved.textContent = savedText(stored);
      announce(savedText(stored));
    } catch (err) {
      const first = showErrors(form, err.details, { fallback: summary });
      summary.prepend(h('p', { class: 'error-text', role: 'alert' }, `Not saved: ${err.message}`));
      announce(`Contact policy not saved: ${err.message}`, 'error');
      (first?.matches?.('input, select') ? first : first?.querySelector?.('input, select') || first)?.focus?.();
    } finally {
      saveBtn.disabled = false;
    }
  });

  // --- held back -----------------------------------------------------------------------
  const heldBox = h('div', { id: 'cp-held', 'aria-live': 'polite', 'aria-busy': 'true' });
  const refresh = h('button', { type: 'button', id: 'cp-held-refresh', onclick: () => loadHeld() }, 'Refresh');

  let seq = 0;
  async function loadHeld() {
    const mine = ++seq;
    heldBox.setAttribute('aria-busy', 'true');
    try {
      const { held } = await get(`/api/v1/contact-policy/held?hours=${HOURS}`);
      if (mine !== seq) return;
      heldBox.replaceChildren(...drawHeld(held || [], Date.now()));
    } catch (e) {
      if (mine !== seq) return;
      heldBox.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Could not load what the caps held back: ${e.message}`));
    } finally {
      if (mine === seq) heldBox.setAttribute('aria-busy', 'false');
    }
  }

  function drawHeld(held, now) {
    const sentence = h('p', { class: 'lead', id: 'cp-held-sentence' }, heldSentence(held));
    const totals = new Map();
    for (const e of held) totals.set(seriesKey(e), (totals.get(seriesKey(e)) || 0) + (Number(e.count) || 0));
    // the series with something held; a combination the page does not know is drawn too
    const keys = [
      ...SERIES.filter((s) => totals.get(s.key) > 0),
      ...[...totals.keys()].filter((k) => totals.get(k) > 0 && !SERIES.some((s) => s.key === k)).sort()
        .map((key) => ({ key, label: key.replace('_', ' ') })),
    ];
    if (!keys.length) {
      return [sentence, h('p', { class: 'empty', id: 'cp-held-empty' }, 'No message passed a cap: nothing was skipped or deferred.')];
    }
    // one row per hour: {at, email_skipped: n, ...}
    const byHour = new Map();
    for (const e of held) {
      const row = byHour.get(e.at) || { at: e.at };
      row[seriesKey(e)] = (row[seriesKey(e)] || 0) + (Number(e.count) || 0);
      byHour.set(e.at, row);
    }
    const series = [...byHour.values()];
    const title = `Messages held back per hour (UTC), last ${HOURS} hours: ${keys.map((k) => `${totals.get(k.key)} ${k.label}`).join(', ')}`;
    const table = bucketsOf(series, keys, 'hour').filter((b) => !b.filled);
    return [
      sentence,
      h('div', { class: 'chart-box', id: 'cp-held-chart' }, timeChart({
        series, keys, bucket: 'hour', from: now - HOURS * HOUR, to: now, title, unit: 'messages', empty: 'Nothing held back.',
      })),
      h('ul', { class: 'legend', 'aria-label': 'Legend', id: 'cp-held-legend' }, keys.map(({ key, label }) => h('li', { dataset: { series: key, value: String(totals.get(key)) } },
        h('span', { class: `swatch s-${key}`, 'aria-hidden': 'true' }), `${label} (${totals.get(key)})`))),
      h('details', { class: 'as-table' },
        h('summary', {}, 'The numbers as a table'),
        h('table', { class: 'list compact' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'hour (UTC)'), keys.map(({ label }) => h('th', { scope: 'col', class: 'num' }, label)))),
          h('tbody', {}, table.map((b) => h('tr', {},
            h('th', { scope: 'row' }, utcHour(b.at)),
            keys.map(({ key }) => h('td', { class: 'num' }, String(b.values[key] ?? 0)))))))),
    ];
  }

  view.replaceChildren(
    h('div', { class: 'view-head' }, h('h2', {}, 'Contact policy')),
    h('p', { class: 'muted' }, 'Caps on how many messages one customer gets per channel, across all workflows, so customers in several workflows at once are not flooded. Every email and SMS step of every workflow counts, and is held back past a cap.'),
    form,
    h('section', { class: 'panel', 'aria-labelledby': 'cp-held-title', id: 'cp-held-section' },
      h('div', { class: 'view-head' }, h('h3', { id: 'cp-held-title' }, `Held back in the last ${HOURS} hours`), refresh),
      h('p', { class: 'hint' }, 'Messages a cap skipped or deferred, per hour (UTC), by channel. A deferred message that is held again when it tries again counts again.'),
      heldBox),
    await providerRates());
  drawCaps();
  drawOnCap();
  await loadHeld();
  return () => { seq++; };
}
