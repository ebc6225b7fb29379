// The differences between two versions of a workflow (GET /workflows/{id}/versions):
// what changed, by JSON pointer (so it reads like the API's error paths), and the two
// definitions side by side as a line diff of their pretty-printed JSON, keys sorted so
// that only real changes show.

import { h } from './dom.js';

/** `v` with every object's keys sorted, so two equal definitions print the same. */
export function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  }
  return v;
}

const pointer = (path, key) => `${path}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;
const isObject = (v) => v && typeof v === 'object' && !Array.isArray(v);

/**
 * Every leaf that differs: [{path, kind: 'added'|'removed'|'changed', from?, to?}].
 * Arrays are compared position by position (a moved step shows as changed positions; the
 * line diff beside it shows the move).
 */
export function changes(a, b, path = '') {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a === undefined) return [{ path: path || '/', kind: 'added', to: b }];
  if (b === undefined) return [{ path: path || '/', kind: 'removed', from: a }];
  if (Array.isArray(a) && Array.isArray(b)) {
    const out = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) out.push(...changes(a[i], b[i], pointer(path, i)));
    return out;
  }
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => changes(a[k], b[k], pointer(path, k)));
  }
  return [{ path: path || '/', kind: 'changed', from: a, to: b }];
}

/** Past this many line pairs the longest-common-subsequence table is not built. */
const MAX_CELLS = 4_000_000;

/**
 * A line diff: [{op: ' ' | '-' | '+', text, a?, b?}] (a/b: 1-based line numbers in the old
 * and new text), by longest common subsequence.
 */
export function lineDiff(aLines, bLines) {
  const n = aLines.length;
  const m = bLines.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) {
    return [...aLines.map((text, i) => ({ op: '-', text, a: i + 1 })), ...bLines.map((text, j) => ({ op: '+', text, b: j + 1 }))];
  }
  // lcs[i][j]: length of the LCS of aLines[i..] and bLines[j..]
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = aLines[i] === bLines[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (aLines[i] === bLines[j]) { out.push({ op: ' ', text: aLines[i], a: i + 1, b: j + 1 }); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) { out.push({ op: '-', text: aLines[i], a: i + 1 }); i++; }
    else { out.push({ op: '+', text: bLines[j], b: j + 1 }); j++; }
  }
  for (; i < n; i++) out.push({ op: '-', text: aLines[i], a: i + 1 });
  for (; j < m; j++) out.push({ op: '+', text: bLines[j], b: j + 1 });
  return out;
}

/** Unchanged lines kept around each change; longer unchanged stretches are folded. */
const CONTEXT = 3;

const short = (v) => {
  const s = JSON.stringify(v);
  return s.length > 80 ? s.slice(0, 77) + '…' : s;
};

/** Keys every stored version differs in by construction; the headings name the versions. */
const META = ['version', 'created_at', 'updated_at'];

function definitionOf(v) {
  if (!v || typeof v !== 'object') return v ?? null;
  const out = { ...v };
  for (const k of META) delete out[k];
  return canonical(out);
}

/** The rendered comparison of two definitions, `from` (older) and `to`. */
export function renderDiff(from, to, fromLabel, toLabel) {
  const a = definitionOf(from);
  const b = definitionOf(to);
  const list = changes(a, b);
  const summary = list.length
    ? h('ul', { class: 'diff-changes' }, list.map((c) => h('li', { class: `diff-${c.kind}` },
      h('code', {}, c.path), ' ',
      c.kind === 'added' ? [h('span', { class: 'badge badge-done' }, 'added'), ' ', h('code', {}, short(c.to))]
        : c.kind === 'removed' ? [h('span', { class: 'badge badge-failed' }, 'removed'), ' ', h('code', {}, short(c.from))]
          : [h('span', { class: 'badge badge-info' }, 'changed'), ' ', h('code', {}, short(c.from)), ' → ', h('code', {}, short(c.to))])))
    : h('p', {}, 'The two versions are the same.');

  const lines = lineDiff(JSON.stringify(a, null, 2).split('\n'), JSON.stringify(b, null, 2).split('\n'));
  // Fold unchanged stretches far from any change.
  const near = lines.map(() => false);
  lines.forEach((l, k) => {
    if (l.op === ' ') return;
    for (let d = -CONTEXT; d <= CONTEXT; d++) if (lines[k + d]) near[k + d] = true;
  });
  const rows = [];
  for (let k = 0; k < lines.length;) {
    if (!near[k]) {
      let e = k;
      while (e < lines.length && !near[e]) e++;
      rows.push(h('tr', { class: 'diff-fold' }, h('td', { colspan: '4', class: 'muted small' }, `… ${e - k} unchanged line${e - k === 1 ? '' : 's'}`)));
      k = e;
      continue;
    }
    const l = lines[k];
    const kind = l.op === '+' ? 'added' : l.op === '-' ? 'removed' : 'same';
    rows.push(h('tr', { class: `diff-line diff-${kind}` },
      h('td', { class: 'num muted' }, l.a ? String(l.a) : ''),
      h('td', { class: 'num muted' }, l.b ? String(l.b) : ''),
      h('td', { class: 'diff-op' }, l.op === ' ' ? '' : h('span', { 'aria-hidden': 'true' }, l.op === '+' ? '+' : '−'),
        l.op === ' ' ? '' : h('span', { class: 'sr-only' }, kind)),
      h('td', {}, h('code', {}, l.text))));
    k++;
  }
  return h('div', { class: 'diff' },
    h('h3', { tabindex: '-1' }, `${fromLabel} → ${toLabel}: ${list.length} change${list.length === 1 ? '' : 's'}`),
    summary,
    list.length ? h('table', { class: 'diff-lines' },
      h('caption', { class: 'sr-only' }, `Definition lines, ${fromLabel} against ${toLabel}`),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', class: 'num' }, fromLabel), h('th', { scope: 'col', class: 'num' }, toLabel),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Change')), h('th', { scope: 'col' }, 'Definition'))),
      h('tbody', {}, rows)) : null);
}
