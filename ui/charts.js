// Small charts drawn as SVG by the page itself (no library, nothing loaded from
// elsewhere): a time chart of several counts per bucket, columns, horizontal bars and a
// difference with its interval. Every mark that stands for a number carries it in
// `data-value` (and what it is in other data- attributes), so the numbers drawn can be
// read back and compared with the API's; every label is set as text, never as markup.

const SVG = 'http://www.w3.org/2000/svg';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === '') continue;
    if (k === 'data') for (const [dk, dv] of Object.entries(v)) el.setAttribute(`data-${dk}`, String(dv));
    else el.setAttribute(k, String(v));
  }
  if (text !== undefined) el.textContent = text;
  return el;
}

/** The smallest 1, 2 or 5 × 10^k at or above `v` (at least `min`). */
export function niceMax(v, min = 1) {
  const x = Math.max(v, min);
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x - 1e-12) return m * p;
  return 10 * p;
}

/** About `n` round ticks from 0 to `max` (a niceMax). */
function ticks(max, n = 4) {
  const step = niceMax(max / n, max >= n ? 1 : max / n);
  const out = [];
  for (let t = 0; t <= max + 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

const pad2 = (n) => String(n).padStart(2, '0');
/** "Mar 3" of a UTC time. */
export const utcDay = (ms) => { const d = new Date(ms); return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`; };
/** "Mar 3 14:00" of a UTC time. */
export const utcHour = (ms) => { const d = new Date(ms); return `${utcDay(ms)} ${pad2(d.getUTCHours())}:00`; };

export const bucketMs = (bucket) => (bucket === 'hour' ? HOUR : DAY);

/**
 * The buckets of a series as the chart draws them: the API's, and between two of them
 * that are more than one bucket apart the empty buckets as zeros (marked `filled`), so a
 * line never skips over a quiet stretch. [{ at (ms), iso, values, filled }]
 */
export function bucketsOf(series, keys, bucket) {
  const step = bucketMs(bucket);
  const known = (series || []).map((s) => ({ at: Date.parse(s.at), iso: s.at, values: s, filled: false }))
    .filter((b) => !Number.isNaN(b.at)).sort((a, b) => a.at - b.at);
  const out = [];
  for (const [i, b] of known.entries()) {
    const prev = known[i - 1];
    if (prev) {
      const gap = Math.round((b.at - prev.at) / step);
      if (gap > 1 && Math.abs(prev.at + gap * step - b.at) < 1000) {
        for (let k = 1; k < gap && k < 2000; k++) {
          const at = prev.at + k * step;
          out.push({ at, iso: new Date(at).toISOString(), values: Object.fromEntries(keys.map(({ key }) => [key, 0])), filled: true });
        }
      }
    }
    out.push(b);
  }
  return out;
}

/**
 * Counts per time bucket as lines with a point per bucket. opts: { series: the API's
 * [{at, <key>: n}], keys: [{key, label}], bucket: 'hour'|'day', from, to (ms): the range
 * asked for, title, unit: what is counted (the y axis' title, "runs" unless given), empty:
 * the note drawn when there is no bucket }. Points: `circle.point[data-series][data-at][data-value]`
 * (`data-filled` on the zeros between buckets the API left out).
 */
export function timeChart({ series, keys, bucket, from, to, title, unit = 'runs', empty = 'No runs in this range.' }) {
  const W = 760;
  const H = 240;
  const M = { left: 52, right: 18, top: 14, bottom: 52 };
  const step = bucketMs(bucket);
  const buckets = bucketsOf(series, keys, bucket);
  const lo = Math.min(from ?? Infinity, ...buckets.map((b) => b.at));
  const hi = Math.max(to ?? -Infinity, ...buckets.map((b) => b.at + step));
  const x0 = Number.isFinite(lo) ? lo : Date.now() - 7 * DAY;
  const x1 = Number.isFinite(hi) && hi > x0 ? hi : x0 + step;
  // the top is the first round tick at or above the largest count
  const most = Math.max(0, ...buckets.flatMap((b) => keys.map(({ key }) => Number(b.values[key]) || 0)));
  const yStep = Math.max(1, niceMax(most / 4, 1e-9));
  const maxV = Math.max(yStep, Math.ceil(most / yStep) * yStep);
  const px = (ms) => M.left + ((ms - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (v) => H - M.bottom - (v / maxV) * (H - M.top - M.bottom);
  const mid = (b) => px(b.at + step / 2);

  const out = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart time-chart', role: 'img', 'aria-label': title });
  out.append(svg('title', {}, title));
  // y axis: round ticks, grid lines, "runs"
  const yAxis = svg('g', { class: 'axis y-axis' });
  for (let t = 0; t <= maxV; t += yStep) {
    yAxis.append(svg('line', { x1: M.left, x2: W - M.right, y1: py(t), y2: py(t), class: 'grid' }),
      svg('text', { x: M.left - 6, y: py(t) + 4, class: 'tick', 'text-anchor': 'end' }, String(t)));
  }
  yAxis.append(svg('text', { x: 14, y: (M.top + H - M.bottom) / 2, class: 'axis-title', transform: `rotate(-90 14 ${(M.top + H - M.bottom) / 2})`, 'text-anchor': 'middle' }, unit));
  out.append(yAxis);
  // x axis: bucket starts at round times, in UTC
  const xAxis = svg('g', { class: 'axis x-axis' });
  xAxis.append(svg('line', { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: 'baseline' }));
  const span = x1 - x0;
  const every = bucket === 'hour'
    ? [1, 2, 3, 6, 12, 24, 48, 72, 168].map((n) => n * HOUR).find((d) => span / d <= 9) ?? 168 * HOUR
    : [1, 2, 3, 7, 14, 28, 56].map((n) => n * DAY).find((d) => span / d <= 9) ?? 56 * DAY;
  for (let t = Math.ceil(x0 / every) * every; t <= x1; t += every) {
    const x = px(t);
    const label = every >= DAY ? utcDay(t) : new Date(t).getUTCHours() === 0 ? utcHour(t) : `${pad2(new Date(t).getUTCHours())}:00`;
    xAxis.append(svg('line', { x1: x, x2: x, y1: H - M.bottom, y2: H - M.bottom + 5, class: 'tick-mark' }),
      svg('text', { x, y: H - M.bottom + 18, class: 'tick', 'text-anchor': 'middle' }, label));
  }
  xAxis.append(svg('text', { x: (M.left + W - M.right) / 2, y: H - 8, class: 'axis-title', 'text-anchor': 'middle' },
    `${bucket === 'hour' ? 'hour' : 'day'} (UTC)`));
  out.append(xAxis);
  // a line and points per count
  for (const { key, label } of keys) {
    const g = svg('g', { class: `series s-${key}`, data: { series: key } });
    if (buckets.length > 1) g.append(svg('polyline', { class: 'line', points: buckets.map((b) => `${mid(b).toFixed(1)},${py(Number(b.values[key]) || 0).toFixed(1)}`).join(' ') }));
    for (const b of buckets) {
      const v = Number(b.values[key]) || 0;
      const when = bucket === 'hour' ? utcHour(b.at) : utcDay(b.at);
      const c = svg('circle', {
        class: 'point', cx: mid(b).toFixed(1), cy: py(v).toFixed(1), r: buckets.length > 60 ? 2 : 3.5,
        data: { series: key, at: b.iso, value: b.values[key] ?? 0, ...(b.filled ? { filled: 'true' } : {}) },
      });
      c.append(svg('title', {}, `${label}, ${when} UTC: ${v}`));
      g.append(c);
    }
    out.append(g);
  }
  if (!buckets.length) out.append(svg('text', { x: W / 2, y: H / 2, class: 'empty-note', 'text-anchor': 'middle' }, empty));
  return out;
}

/**
 * Vertical columns side by side, one scale from 0. opts: { bars: [{ label, sub?, value,
 * text, cls?, data? }], max?, title, format(v): the axis labels }. Each column is
 * `rect.bar[data-value]` with `bar.data` as further data- attributes.
 */
export function columnChart({ bars, max, title, format = String, width }) {
  const colW = 64;
  const gap = 36;
  const M = { left: 52, right: 12, top: 22, bottom: 44 };
  const W = width || Math.max(260, M.left + M.right + bars.length * colW + (bars.length - 1) * gap + 24);
  const H = 220;
  const top = max ?? niceMax(Math.max(0, ...bars.map((b) => Number(b.value) || 0)), 1e-9);
  const py = (v) => H - M.bottom - (Math.max(0, v) / (top || 1)) * (H - M.top - M.bottom);
  const out = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart column-chart', role: 'img', 'aria-label': title });
  out.append(svg('title', {}, title));
  const axis = svg('g', { class: 'axis y-axis' });
  for (const t of ticks(top, 4)) {
    axis.append(svg('line', { x1: M.left, x2: W - M.right, y1: py(t), y2: py(t), class: 'grid' }),
      svg('text', { x: M.left - 6, y: py(t) + 4, class: 'tick', 'text-anchor': 'end' }, format(t)));
  }
  out.append(axis);
  const used = bars.length * colW + (bars.length - 1) * gap;
  let x = M.left + Math.max(12, (W - M.left - M.right - used) / 2);
  for (const b of bars) {
    const v = Number(b.value) || 0;
    const g = svg('g', { class: `column ${b.cls || ''}` });
    const rect = svg('rect', {
      class: 'bar', x, y: py(v), width: colW, height: Math.max(0, H - M.bottom - py(v)),
      data: { value: b.value, ...(b.data || {}) },
    });
    rect.append(svg('title', {}, `${b.label}${b.sub ? ` (${b.sub})` : ''}: ${b.text}`));
    g.append(rect,
      svg('text', { x: x + colW / 2, y: py(v) - 6, class: 'bar-value', 'text-anchor': 'middle' }, b.text),
      svg('text', { x: x + colW / 2, y: H - M.bottom + 16, class: 'bar-label', 'text-anchor': 'middle' }, b.label));
    if (b.sub) g.append(svg('text', { x: x + colW / 2, y: H - M.bottom + 31, class: 'bar-sub', 'text-anchor': 'middle' }, b.sub));
    out.append(g);
    x += colW + gap;
  }
  out.append(svg('line', { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: 'baseline' }));
  return out;
}

/**
 * Horizontal bars, one a row with its label on the left (the funnel). opts: { rows: [{
 * label, value, text, data? }], title }. Each bar is `rect.bar[data-value]`.
 */
export function barRows({ rows, title }) {
  const W = 760;
  const rowH = 26;
  const labelW = 300;
  const M = { top: 6, right: 70, bottom: 6 };
  const H = M.top + M.bottom + rows.length * rowH;
  const max = Math.max(1, ...rows.map((r) => Number(r.value) || 0));
  const out = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart bar-rows', role: 'img', 'aria-label': title });
  out.append(svg('title', {}, title));
  rows.forEach((r, i) => {
    const y = M.top + i * rowH;
    const v = Number(r.value) || 0;
    const w = (v / max) * (W - labelW - M.right);
    const label = r.label.length > 48 ? `${r.label.slice(0, 47)}…` : r.label;
    const rect = svg('rect', { class: 'bar', x: labelW, y: y + 4, width: Math.max(0, w), height: rowH - 8, data: { value: r.value, ...(r.data || {}) } });
    rect.append(svg('title', {}, `${r.label}: ${r.text}`));
    out.append(svg('text', { x: labelW - 8, y: y + rowH / 2 + 4, class: 'bar-label', 'text-anchor': 'end' }, label),
      rect,
      svg('text', { x: labelW + Math.max(0, w) + 6, y: y + rowH / 2 + 4, class: 'bar-value' }, r.text));
  });
  return out;
}

/**
 * A difference with its interval on a horizontal axis through zero: the interval as a
 * range with caps (`line.ci[data-lo][data-hi]`), the difference as a dot
 * (`circle.estimate[data-value]`). Values in the unit `format` writes (e.g. points).
 */
export function intervalChart({ value, lo, hi, title, format = String, caption }) {
  const W = 520;
  const H = 96;
  const M = { left: 24, right: 24 };
  const yLine = 40;
  const extent = Math.max(Math.abs(lo), Math.abs(hi), Math.abs(value), 1e-9);
  const reach = niceMax(extent * 1.1, 1e-9);
  const left = Math.min(lo, 0) < 0 ? -reach : 0;
  const right = Math.max(hi, 0) > 0 ? reach : 0;
  const span = right - left || 1;
  const px = (v) => M.left + ((v - left) / span) * (W - M.left - M.right);
  const out = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart interval-chart', role: 'img', 'aria-label': title });
  out.append(svg('title', {}, title));
  out.append(svg('line', { x1: M.left, x2: W - M.right, y1: yLine + 24, y2: yLine + 24, class: 'baseline' }));
  for (const t of [left, left / 2, 0, right / 2, right].filter((t, i, a) => a.indexOf(t) === i)) {
    out.append(svg('line', { x1: px(t), x2: px(t), y1: yLine + 24, y2: yLine + 29, class: 'tick-mark' }),
      svg('text', { x: px(t), y: yLine + 42, class: 'tick', 'text-anchor': t === left ? 'start' : t === right ? 'end' : 'middle' }, format(t)));
  }
  const zeroAnchor = left === 0 ? 'start' : right === 0 ? 'end' : 'middle';
  out.append(svg('line', { x1: px(0), x2: px(0), y1: 14, y2: yLine + 24, class: 'zero' }),
    svg('text', { x: px(0), y: 10, class: 'tick', 'text-anchor': zeroAnchor }, 'no difference'));
  const ci = svg('g', { class: 'ci-range' });
  const range = svg('line', { class: 'ci', x1: px(lo), x2: px(hi), y1: yLine, y2: yLine, data: { lo, hi } });
  range.append(svg('title', {}, `95% interval: ${format(lo)} to ${format(hi)}`));
  ci.append(range,
    svg('line', { class: 'ci-cap', x1: px(lo), x2: px(lo), y1: yLine - 8, y2: yLine + 8 }),
    svg('line', { class: 'ci-cap', x1: px(hi), x2: px(hi), y1: yLine - 8, y2: yLine + 8 }));
  const dot = svg('circle', { class: 'estimate', cx: px(value), cy: yLine, r: 6, data: { value } });
  dot.append(svg('title', {}, `${caption || 'difference'}: ${format(value)}`));
  ci.append(dot);
  out.append(ci);
  return out;
}
