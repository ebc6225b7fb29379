// The flow diagram: a workflow drawn top to bottom as an SVG the page builds itself —
// trigger, conditions, each step; a branch splits into an arm per path (labelled with its
// `when`) plus `otherwise`, a split into an arm per path (labelled with its percent), a
// wait into "on event <type>" and "after <timeout>", and the arms join again after it. Given a run, it marks the steps the run went through (by each
// step's `path`, as the runs API reports it), greys the arms it did not take and shows
// where a waiting run waits. Every label is set as text (textContent), never as markup:
// names, templates and values come from users.

import { childPath, listPathOf } from './tree.js';
import { conditionsText, durationText } from './words.js';

const SVG = 'http://www.w3.org/2000/svg';
/** Node size and spacing, in px; a title line holds about CHARS characters at 11px (app.css). */
const NODE_W = 160;
const NODE_H = 42;
const GAP = 22;
const LABEL_H = 18;
const ARM_GAP = 14;
/** An arm with no step needs room for its label only. */
const EMPTY_ARM_W = 112;
const PAD = 12;
const CHARS = 25;
const CHAR_W = 6.4;

/** What a step does, in a few words, under its title. */
function stepText(step) {
  const p = step.params || {};
  switch (step.type) {
    case 'branch': return `${(p.paths || []).length} path(s)${Array.isArray(p.otherwise) ? ' and otherwise' : ''}`;
    case 'split': return (p.paths || []).map((x) => percentText(x?.percent)).join(' / ');
    case 'wait_for_event': return `${p.event || '?'} · ${durationText(p.timeout)}`;
    case 'delay': return durationText(p);
    case 'webhook': return p.endpoint || p.url || '';
    case 'set_status': return `${p.type ?? '?'} → ${p.status ?? p.status_id ?? '?'}`;
    default: {
      const first = Object.entries(p).find(([, v]) => v !== null && typeof v !== 'object');
      return first ? `${first[0].replace(/_/g, ' ')}: ${first[1]}` : '';
    }
  }
}

/** A split path's share: "50%" ("?%" while it is not set). */
const percentText = (v) => `${v === undefined || v === null || v === '' ? '?' : v}%`;

const fit = (text, chars) => (text.length > chars ? `${text.slice(0, Math.max(1, chars - 1))}…` : text);

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined && v !== '') el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * What a run says about each step and arm. `state(path)` of a step: its run status class
 * (`run-done`, `run-waiting`, ...), or `not-reached`; `chosen(step, path)` the arm key a
 * branch or a wait went down (undefined while undecided).
 */
function runFacts(run) {
  const byPath = new Map((run?.steps || []).map((s) => [s.path, s]));
  return {
    step: (path) => byPath.get(path),
    chosen(step, path) {
      const st = byPath.get(path);
      const r = st?.result;
      if (!r || typeof r !== 'object') return undefined;
      if (step.type === 'split' && 'path' in r) return listPathOf(path, `paths.${r.path}`);
      if (step.type === 'branch' && 'path' in r) return r.path === 'otherwise' ? listPathOf(path, 'otherwise') : listPathOf(path, `paths.${r.path}`);
      if (step.type === 'wait_for_event' && typeof r.timed_out === 'boolean') return listPathOf(path, r.timed_out ? 'on_timeout' : 'on_event');
      return undefined;
    },
  };
}

/**
 * The SVG of `def` (a workflow definition as the API takes it). opts: { labels: {type:
 * label} of the actions, run: a run as the runs API lists it (its steps' paths are marked) }.
 */
export function drawFlow(def, { labels = {}, run = null } = {}) {
  const facts = run ? runFacts(run) : null;
  const reached = run ? 'run-done' : '';

  const node = (kind, title, sub, state, path) => ({ kind: 'node', cls: kind, title, sub, state, path, w: NODE_W, h: NODE_H });
  const seq = (items) => ({
    kind: 'seq', items,
    w: Math.max(0, ...items.map((b) => b.w)),
    h: items.reduce((s, b) => s + b.h, 0) + GAP * Math.max(0, items.length - 1),
  });

  function list(steps, listPath, dim) {
    return seq((steps || []).map((step, i) => stepBlock(step, childPath(listPath, i), dim)));
  }

  function stepBlock(step, path, dim) {
    const st = facts?.step(path);
    const waiting = st && (st.status === 'waiting' || st.result?.waiting_for);
    const state = !facts ? '' : st ? `run-${st.status}` : dim ? 'not-taken' : 'not-reached';
    const title = `${labels[step.type] || step.type}${step.name ? ` · ${step.name}` : ''}`;
    const sub = waiting ? `waiting here until ${st.result?.until ? new Date(st.result.until).toLocaleString() : 'the timeout'}` : stepText(step);
    const head = node(`step kind-${step.type}`, title, sub, state, path);
    const p = step.params || {};
    let arms = null;
    if (step.type === 'branch') {
      arms = [
        ...(p.paths || []).map((b, k) => ({ key: listPathOf(path, `paths.${k}`), label: `when ${conditionsText(b.when)}`, steps: b.actions })),
        { key: listPathOf(path, 'otherwise'), label: 'otherwise', steps: p.otherwise },
      ];
    } else if (step.type === 'split') {
      arms = (p.paths || []).map((b, k) => ({ key: listPathOf(path, `paths.${k}`), label: percentText(b?.percent), steps: b?.actions }));
    } else if (step.type === 'wait_for_event') {
      arms = [
        { key: listPathOf(path, 'on_event'), label: `on event ${p.event || '?'}`, steps: p.on_event },
        { key: listPathOf(path, 'on_timeout'), label: `after ${durationText(p.timeout)}`, steps: p.on_timeout },
      ];
    }
    if (!arms) return head;
    const chosen = facts?.chosen(step, path);
    for (const arm of arms) {
      arm.state = !facts ? '' : dim ? 'not-taken' : chosen === undefined ? 'not-reached' : chosen === arm.key ? 'taken' : 'not-taken';
      arm.body = list(arm.steps, arm.key, arm.state === 'not-taken');
      arm.w = arm.body.items.length ? Math.max(NODE_W, arm.body.w) : EMPTY_ARM_W;
    }
    const armsW = arms.reduce((s, a) => s + a.w, 0) + ARM_GAP * (arms.length - 1);
    const bodyH = Math.max(0, ...arms.map((a) => a.body.h));
    return { kind: 'fork', head, arms, armsW, bodyH, w: Math.max(NODE_W, armsW), h: NODE_H + GAP + LABEL_H + bodyH + GAP };
  }

  const root = seq([
    node('trigger', 'Trigger', def.trigger_event || '?', reached),
    node('conditions', 'Conditions', conditionsText(def.conditions), reached),
    list(def.actions, '', false),
    node('end', 'End', run ? `run ${run.status}` : '', run?.status === 'done' ? 'run-done' : run ? 'not-reached' : ''),
  ].filter((b) => b.kind !== 'seq' || b.items.length));

  // --- drawing -------------------------------------------------------------------------
  const entry = (b) => (b.kind === 'node' ? b.state : b.kind === 'fork' ? b.head.state : b.items[0] ? entry(b.items[0]) : '');
  const taken = (state) => Boolean(state) && state.startsWith('run-');
  const line = (points, cls) => svg('polyline', { points: points.map((p) => p.join(',')).join(' '), class: `flow-edge ${cls}` });

  function draw(b, cx, top, into) {
    if (b.kind === 'node') return drawNode(b, cx, top, into);
    if (b.kind === 'seq') {
      let y = top;
      b.items.forEach((item, k) => {
        draw(item, cx, y, into);
        y += item.h;
        if (k < b.items.length - 1) {
          into.append(line([[cx, y], [cx, y + GAP]], taken(entry(b.items[k + 1])) ? 'taken' : ''));
          y += GAP;
        }
      });
      return undefined;
    }
    drawNode(b.head, cx, top, into);
    const split = top + NODE_H + GAP / 2;
    const bodyTop = top + NODE_H + GAP + LABEL_H;
    const join = bodyTop + b.bodyH + GAP / 2;
    let x = cx - b.armsW / 2;
    for (const arm of b.arms) {
      const ax = x + arm.w / 2;
      const g = svg('g', { class: `flow-arm ${arm.state}`, 'data-arm': arm.key });
      const edge = arm.state === 'taken' ? 'taken' : '';
      g.append(
        line([[cx, top + NODE_H], [cx, split], [ax, split], [ax, bodyTop]], edge),
        line([[ax, bodyTop + arm.body.h], [ax, join], [cx, join]], edge),
        svg('text', { x: ax, y: split + 14, class: 'flow-arm-label' }, fit(arm.label, Math.floor(arm.w / CHAR_W))),
        svg('title', {}, arm.label));
      draw(arm.body, ax, bodyTop, g);
      into.append(g);
      x += arm.w + ARM_GAP;
    }
    into.append(line([[cx, join], [cx, top + b.h]], b.arms.some((a) => a.state === 'taken') ? 'taken' : ''));
    return undefined;
  }

  function drawNode(n, cx, top, into) {
    const g = svg('g', { class: `flow-node ${n.cls} ${n.state}`, 'data-path': n.path });
    g.append(
      svg('rect', { x: cx - NODE_W / 2, y: top, width: NODE_W, height: NODE_H, rx: n.cls === 'trigger' || n.cls === 'end' ? NODE_H / 2 : 6 }),
      svg('text', { x: cx, y: top + (n.sub ? 17 : 26), class: 'flow-title' }, fit(n.title, CHARS)),
      svg('title', {}, n.sub ? `${n.title}: ${n.sub}` : n.title));
    if (n.sub) g.append(svg('text', { x: cx, y: top + 33, class: 'flow-sub' }, fit(n.sub, CHARS + 3)));
    into.append(g);
  }

  const width = root.w + 2 * PAD;
  const height = root.h + 2 * PAD;
  const steps = (def.actions || []).length;
  const out = svg('svg', {
    viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', class: 'flow',
    'aria-label': run ? `Flow of run ${run.id}: the path it took is highlighted` : `Flow of the workflow: ${steps} step(s) at the top level`,
  });
  draw(root, PAD + root.w / 2, PAD, out);
  // The stylesheet shrinks a wide drawing to its box, down to 72% of its size (then it
  // scrolls): it needs the natural width, set through the CSSOM, which the CSP allows.
  out.style.setProperty('--flow-w', String(width));
  return out;
}
