// A workflow's results: GET /api/v1/workflows/{id}/stats over a time range, drawn by the
// page itself (charts.js): runs entered, done, failed and goal reached per hour or day;
// the headline counts; the customers treated against those held out (their goal rates
// side by side and the difference with its 95% interval, said in a sentence); each
// split's paths side by side; and, when the stats carry `steps`, how many runs reached
// each step. Every number drawn carries its value in `data-value`.

import { get, schema } from './api.js';
import { h } from './dom.js';
import { timeChart, columnChart, barRows, intervalChart, niceMax, bucketsOf, utcDay, utcHour } from './charts.js';
import { allLists, childPath, labelOf } from './tree.js';

const SERIES = [
  { key: 'entered', label: 'entered' },
  { key: 'done', label: 'done' },
  { key: 'failed', label: 'failed' },
  { key: 'goal_reached', label: 'goal reached' },
];
const HEADLINE = [
  ['entered', 'entered'], ['done', 'done'], ['failed', 'failed'], ['cancelled', 'cancelled'],
  ['waiting', 'waiting'], ['held_out', 'held out'], ['goal_reached', 'goal reached'],
];
const WEEK = 7 * 24 * 3_600_000;

/** An RFC 3339 time as the value of a datetime-local input (local time, minutes). */
function toLocalInput(ms) {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value (local time) as RFC 3339 UTC, or '' when empty or invalid. */
function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/** 0.12 → "12.0%". */
export const pct = (f) => `${(Number(f) * 100).toFixed(1)}%`;
/** A difference of two shares in percentage points, signed: 0.04 → "+4.0", -0.012 → "−1.2". */
export function signedPoints(f) {
  const v = Number(f) * 100;
  const text = Math.abs(v).toFixed(1);
  return `${v < 0 && text !== '0.0' ? '−' : '+'}${text}`;
}

/**
 * The sentence under the lift chart: "Goal reached by 12.0% of treated vs 8.0% of
 * held-out customers: +4.0 points (95% interval +1.2 to +6.8)".
 */
export function liftSentence(lift) {
  const [lo, hi] = lift.ci95 || [];
  return `Goal reached by ${pct(lift.treated_rate)} of treated vs ${pct(lift.holdout_rate)} of held-out customers: `
    + `${signedPoints(lift.difference)} points (95% interval ${signedPoints(lo)} to ${signedPoints(hi)})`;
}

/** Every step of a definition by its path, in the order the tree reads (pre-order). */
function stepsByPath(actions) {
  const out = new Map();
  for (const { path, list } of allLists(actions || [])) list.forEach((step, i) => out.set(childPath(path, i), step));
  return new Map([...out.entries()].sort((a, b) => comparePaths(a[0], b[0])));
}

/** Orders step paths as the tree reads: "1" < "1.paths.0.0" < "1.paths.1.0" < "2". */
function comparePaths(a, b) {
  const ta = a.split('.');
  const tb = b.split('.');
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    if (ta[i] === tb[i]) continue;
    const na = /^\d+$/.test(ta[i]);
    const nb = /^\d+$/.test(tb[i]);
    if (na && nb) return Number(ta[i]) - Number(tb[i]);
    const order = ['paths', 'otherwise', 'on_event', 'on_timeout'];
    return (order.indexOf(ta[i]) - order.indexOf(tb[i])) || ta[i].localeCompare(tb[i]);
  }
  return ta.length - tb.length;
}

export async function renderResults(view, id, params) {
  const [s, wf] = await Promise.all([
    schema().catch(() => null),
    get(`/api/v1/workflows/${encodeURIComponent(id)}`).catch(() => null),
  ]);
  const labels = Object.fromEntries((s?.actions || []).map((a) => [a.type, a.label]));
  const steps = stepsByPath(wf?.actions);
  const name = wf?.name || id;

  // --- the range and bucket ------------------------------------------------------------
  const sinceWanted = params.get('since') ? Date.parse(params.get('since')) : Date.now() - WEEK;
  const since = h('input', { id: 'res-since', type: 'datetime-local', value: toLocalInput(sinceWanted), 'aria-describedby': 'res-time-hint' });
  const until = h('input', { id: 'res-until', type: 'datetime-local', value: params.get('until') ? toLocalInput(Date.parse(params.get('until'))) : '', 'aria-describedby': 'res-time-hint' });
  let bucket = params.get('bucket') === 'hour' ? 'hour' : 'day';
  const radio = (value, text) => {
    const input = h('input', {
      type: 'radio', name: 'res-bucket', id: `res-bucket-${value}`, value, checked: bucket === value,
      onchange: () => { bucket = value; load(); },
    });
    return h('span', { class: 'radio' }, input, h('label', { for: input.id }, text));
  };
  const form = h('form', { class: 'filters', 'aria-label': 'Time range of the results' },
    h('div', { class: 'field' }, h('label', { for: since.id }, 'From'), since),
    h('div', { class: 'field' }, h('label', { for: until.id }, 'Until'), until),
    h('fieldset', { class: 'bucket' }, h('legend', {}, 'Per'), radio('hour', 'hour'), radio('day', 'day')),
    h('button', { type: 'submit', class: 'primary', id: 'res-show' }, 'Show'),
    h('p', { class: 'hint', id: 'res-time-hint' }, 'In this browser’s time zone; “Until” empty means now. The charts count in UTC hours and days.'));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });

  const out = h('div', { id: 'res-out', 'aria-live': 'polite', 'aria-busy': 'true' });
  view.replaceChildren(
    h('div', { class: 'view-head' },
      h('h2', { id: 'res-title' }, `Results: ${name}`),
      h('a', { class: 'button', href: `#/edit/${encodeURIComponent(id)}` }, 'Edit'),
      h('a', { class: 'button', href: `#/runs?workflow_id=${encodeURIComponent(id)}` }, 'Runs'),
      h('a', { class: 'button', href: '#/workflows' }, 'Back to the list')),
    experimentLine(wf),
    form,
    out);

  function query() {
    const q = new URLSearchParams();
    const a = fromLocalInput(since.value);
    const b = fromLocalInput(until.value);
    if (a) q.set('since', a);
    if (b) q.set('until', b);
    q.set('bucket', bucket);
    return q;
  }

  let seq = 0;
  async function load() {
    const q = query();
    const hash = `#/results/${encodeURIComponent(id)}?${q}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
    const mine = ++seq;
    out.setAttribute('aria-busy', 'true');
    try {
      const stats = await get(`/api/v1/workflows/${encodeURIComponent(id)}/stats?${q}`);
      if (mine !== seq) return;
      const from = Date.parse(q.get('since') || '') || Date.now() - WEEK;
      const to = Date.parse(q.get('until') || '') || Date.now();
      out.replaceChildren(...draw(stats, { from, to, bucket: q.get('bucket') }));
      out.dataset.bucket = q.get('bucket');
    } catch (e) {
      if (mine !== seq) return;
      out.replaceChildren(h('p', { class: 'error-text', role: 'alert' },
        e.status === 404 && !wf ? `No workflow ${id}.` : `Could not load the results: ${e.message}`));
    } finally {
      if (mine === seq) out.setAttribute('aria-busy', 'false');
    }
  }

  function draw(stats, { from, to, bucket: per }) {
    return [
      headline(stats),
      overTime(stats, from, to, per),
      liftSection(stats),
      pathsSection(stats),
      funnelSection(stats),
    ].filter(Boolean);
  }

  // --- sections ------------------------------------------------------------------------

  function headline(stats) {
    return h('section', { class: 'panel', 'aria-labelledby': 'res-head-title' },
      h('h3', { id: 'res-head-title' }, 'Runs in this range'),
      h('dl', { class: 'tiles', id: 'res-headline' }, HEADLINE.map(([key, label]) => h('div', { class: `tile t-${key}`, dataset: { stat: key, value: String(stats[key] ?? 0) } },
        h('dt', {}, label), h('dd', {}, String(stats[key] ?? 0))))));
  }

  function overTime(stats, from, to, per) {
    const series = Array.isArray(stats.series) ? stats.series : [];
    const total = (key) => series.reduce((a, b) => a + (Number(b[key]) || 0), 0);
    const title = `Runs per ${per} (UTC): ${SERIES.map(({ key, label }) => `${total(key)} ${label}`).join(', ')}`;
    const rows = bucketsOf(series, SERIES, per).filter((b) => !b.filled);
    return h('section', { class: 'panel', 'aria-labelledby': 'res-time-title' },
      h('h3', { id: 'res-time-title' }, `Over time, per ${per}`),
      h('div', { class: 'chart-box', id: 'res-time-chart' }, timeChart({ series, keys: SERIES, bucket: per, from, to, title })),
      h('ul', { class: 'legend', 'aria-label': 'Legend' }, SERIES.map(({ key, label }) => h('li', { dataset: { series: key } },
        h('span', { class: `swatch s-${key}`, 'aria-hidden': 'true' }), `${label} (${total(key)})`))),
      h('details', { class: 'as-table' },
        h('summary', {}, 'The numbers as a table'),
        h('table', { class: 'list compact' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, `${per} (UTC)`), SERIES.map(({ label }) => h('th', { scope: 'col', class: 'num' }, label)))),
          h('tbody', {}, rows.map((b) => h('tr', {},
            h('th', { scope: 'row' }, per === 'hour' ? utcHour(b.at) : utcDay(b.at)),
            SERIES.map(({ key }) => h('td', { class: 'num' }, String(b.values[key] ?? 0)))))))));
  }

  function liftSection(stats) {
    const lift = stats.lift;
    const body = [];
    if (lift && typeof lift === 'object') {
      const top = niceMax(Math.max(Number(lift.treated_rate) || 0, Number(lift.holdout_rate) || 0, 0.01), 0.01);
      const treated = (stats.entered ?? 0) - (stats.held_out ?? 0);
      body.push(
        h('div', { class: 'lift-charts' },
          h('figure', { id: 'res-lift-rates' },
            columnChart({
              title: `Goal rate: treated ${pct(lift.treated_rate)}, held out ${pct(lift.holdout_rate)}`,
              max: top, format: (v) => `${Math.round(v * 1000) / 10}%`,
              bars: [
                { label: 'treated', sub: `${treated} runs`, value: lift.treated_rate, text: pct(lift.treated_rate), cls: 'treated', data: { group: 'treated' } },
                { label: 'held out', sub: `${stats.held_out ?? 0} runs`, value: lift.holdout_rate, text: pct(lift.holdout_rate), cls: 'holdout', data: { group: 'holdout' } },
              ],
            }),
            h('figcaption', {}, 'Share of runs that reached the goal')),
          h('figure', { id: 'res-lift-diff' },
            intervalChart({
              title: `Difference ${signedPoints(lift.difference)} points, 95% interval ${signedPoints(lift.ci95?.[0])} to ${signedPoints(lift.ci95?.[1])}`,
              value: Number(lift.difference), lo: Number(lift.ci95?.[0]), hi: Number(lift.ci95?.[1]),
              format: (v) => `${signedPoints(v)} pts`, caption: 'treated − held out',
            }),
            h('figcaption', {}, 'Treated minus held out, in percentage points, with its 95% interval'))),
        h('p', { class: 'lead', id: 'res-lift-sentence' }, liftSentence(lift)));
    } else {
      body.push(h('p', { id: 'res-lift-note', class: 'muted' }, stats.lift_note || 'No lift can be computed for this range.'));
    }
    return h('section', { class: 'panel', 'aria-labelledby': 'res-lift-title', id: 'res-lift' },
      h('h3', { id: 'res-lift-title' }, 'Treated vs held out'), body);
  }

  function pathsSection(stats) {
    const entries = Object.entries(stats.paths || {});
    if (!entries.length) {
      return h('section', { class: 'panel', 'aria-labelledby': 'res-paths-title', id: 'res-paths' },
        h('h3', { id: 'res-paths-title' }, 'Split paths'),
        h('p', { class: 'muted' }, 'No run went through a split in this range.'));
    }
    // "<step path>:<index>" → the split's step path and the path's index
    const bySplit = new Map();
    for (const [key, v] of entries) {
      const cut = key.lastIndexOf(':');
      const at = key.slice(0, cut);
      const k = Number(key.slice(cut + 1));
      if (!bySplit.has(at)) bySplit.set(at, []);
      bySplit.get(at).push({ key, k, entered: Number(v?.entered) || 0, goal: Number(v?.goal_reached) || 0 });
    }
    const splits = [...bySplit.entries()].sort((a, b) => comparePaths(a[0], b[0]));
    return h('section', { class: 'panel', 'aria-labelledby': 'res-paths-title', id: 'res-paths' },
      h('h3', { id: 'res-paths-title' }, 'Split paths'),
      splits.map(([at, paths]) => {
        paths.sort((a, b) => a.k - b.k);
        const step = steps.get(at);
        const share = (k) => {
          const p = step?.type === 'split' ? step.params?.paths?.[k]?.percent : undefined;
          return p === undefined ? null : `${p}%`;
        };
        const rate = (p) => (p.entered ? p.goal / p.entered : 0);
        const top = niceMax(Math.max(0.01, ...paths.map(rate)), 0.01);
        return h('div', { class: 'split-result', dataset: { split: at } },
          h('h4', {}, `Split at step ${labelOf(at)}${step?.name ? ` · ${step.name}` : ''}${step && step.type !== 'split' ? ' (not a split in the current version)' : ''}`),
          h('div', { class: 'lift-charts' },
            h('figure', {},
              columnChart({
                title: `Runs that entered each path: ${paths.map((p) => `path ${p.k + 1} ${p.entered}`).join(', ')}`,
                bars: paths.map((p) => ({ label: `path ${p.k + 1}`, sub: share(p.k), value: p.entered, text: String(p.entered), cls: 'entered', data: { key: p.key, measure: 'entered' } })),
                format: (v) => String(v),
              }),
              h('figcaption', {}, 'Entered')),
            h('figure', {},
              columnChart({
                title: `Goal rate per path: ${paths.map((p) => `path ${p.k + 1} ${pct(rate(p))}`).join(', ')}`,
                max: top, format: (v) => `${Math.round(v * 1000) / 10}%`,
                bars: paths.map((p) => ({
                  label: `path ${p.k + 1}`, sub: `${p.goal} of ${p.entered}`, value: rate(p), text: p.entered ? pct(rate(p)) : '—', cls: 'goal',
                  data: { key: p.key, measure: 'goal_rate', 'goal-reached': p.goal, entered: p.entered },
                })),
              }),
              h('figcaption', {}, 'Goal reached'))));
      }));
  }

  function funnelSection(stats) {
    // Drawn only when the stats carry `steps`: {"<step path>": runs that reached it}.
    if (!stats.steps || typeof stats.steps !== 'object' || Array.isArray(stats.steps)) return null;
    const counts = Object.entries(stats.steps).sort((a, b) => comparePaths(a[0], b[0]));
    const rows = counts.map(([path, n]) => {
      const step = steps.get(path);
      const what = step ? `${labels[step.type] || step.type}${step.name ? ` · ${step.name}` : ''}` : 'not in the current version';
      return { label: `Step ${labelOf(path)} · ${what}`, value: n, text: String(n), data: { step: path } };
    });
    return h('section', { class: 'panel', 'aria-labelledby': 'res-funnel-title', id: 'res-funnel' },
      h('h3', { id: 'res-funnel-title' }, 'Steps reached'),
      rows.length
        ? barRows({ rows, title: `Runs that reached each step: ${rows.map((r) => `${r.label} ${r.text}`).join(', ')}` })
        : h('p', { class: 'muted' }, 'No run reached a step in this range.'));
  }

  await load();
  return null;
}

/** The workflow's holdout and goal in a line, so the numbers below can be read. */
function experimentLine(wf) {
  if (!wf) return null;
  const goal = wf.goal;
  const within = goal?.within ? Object.entries(goal.within)[0] : null;
  const parts = [
    wf.holdout?.percent ? `${wf.holdout.percent}% of entering customers are held out` : 'No holdout',
    goal ? `the goal is ${goal.event}${goal.conditions ? ' (with conditions)' : ''} within ${within ? `${within[1]} ${within[0]}` : '?'} of entering${goal.exit ? ', and reaching it ends the run' : ''}` : 'no goal is set',
  ];
  return h('p', { class: 'meta', id: 'res-setup' }, `${parts.join('; ')} (version ${wf.version} of the workflow).`);
}
