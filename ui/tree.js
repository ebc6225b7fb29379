// A journey's actions as a tree. A branch holds a list per path (and `otherwise`), a split
// a list per path, a wait holds `on_event` and `on_timeout`; every step and list is named by its path in the form
// the runs API reports it ("0", "2.paths.0.1", "3.on_timeout.0"), so the editor, the flow
// diagram and a run's steps all point at the same places. A list's path is its step's
// path and the list's key ("2.paths.0", "3.on_timeout"); the workflow's own list is "".

/** The nested lists of a step, in the engine's order: each path, then `otherwise`; `on_event`, then `on_timeout`. */
export function blocks(step) {
  const p = step?.params || {};
  if (step?.type === 'split') {
    return (Array.isArray(p.paths) ? p.paths : []).map((path, k) => ({ key: `paths.${k}`, list: path?.actions }));
  }
  if (step?.type === 'branch') {
    return [
      ...(Array.isArray(p.paths) ? p.paths : []).map((path, k) => ({ key: `paths.${k}`, list: path?.actions })),
      { key: 'otherwise', list: p.otherwise },
    ];
  }
  if (step?.type === 'wait_for_event') return [{ key: 'on_event', list: p.on_event }, { key: 'on_timeout', list: p.on_timeout }];
  return [];
}

/** The path of item `i` of the list at `listPath`. */
export const childPath = (listPath, i) => (listPath === '' ? String(i) : `${listPath}.${i}`);

/** The path of a list of the step at `stepPath` ("3" + "on_timeout" → "3.on_timeout"). */
export const listPathOf = (stepPath, key) => `${stepPath}.${key}`;

/** The JSON pointer of a step or list path in the definition ("2.paths.0.1" → /actions/2/params/paths/0/actions/1). */
export function pointerOf(path) {
  let out = '/actions';
  if (path === '') return out;
  const t = path.split('.');
  out += `/${t[0]}`;
  for (let i = 1; i < t.length; i++) {
    if (t[i] === 'paths') { out += `/params/paths/${t[i + 1]}/actions`; i++; }
    else if (/^\d+$/.test(t[i])) out += `/${t[i]}`;
    else out += `/params/${t[i]}`;
  }
  return out;
}

const KEY_LABELS = { otherwise: 'otherwise', on_event: 'on event', on_timeout: 'on timeout' };

/** A readable place: "1 › on event › 1 › path 2 › 1" (counting from 1); "" for the workflow's list. */
export function labelOf(path) {
  if (path === '') return '';
  const t = path.split('.');
  const parts = [];
  for (let i = 0; i < t.length; i++) {
    if (t[i] === 'paths') { parts.push(`path ${Number(t[i + 1]) + 1}`); i++; }
    else if (/^\d+$/.test(t[i])) parts.push(String(Number(t[i]) + 1));
    else parts.push(KEY_LABELS[t[i]] || t[i]);
  }
  return parts.join(' › ');
}

/** Every list of the tree, pre-order: [{path, list}], the workflow's own first. */
export function allLists(actions) {
  const out = [];
  const walk = (list, path) => {
    out.push({ path, list });
    list.forEach((step, i) => {
      for (const b of blocks(step)) if (Array.isArray(b.list)) walk(b.list, listPathOf(childPath(path, i), b.key));
    });
  };
  walk(actions, '');
  return out;
}

/** The path of `step` (the object itself) in the tree, or null. */
export function pathOf(actions, step) {
  for (const { path, list } of allLists(actions)) {
    const i = list.indexOf(step);
    if (i >= 0) return childPath(path, i);
  }
  return null;
}

/**
 * The named steps that have run before the step at `stepPath` on every way to it, as the
 * engine lets `steps.<name>` read them: earlier steps of each enclosing list, and a wait's
 * own name inside its outcomes (not a branch's inside its paths). [{name, step}]
 */
export function namedBefore(actions, stepPath) {
  const out = [];
  const t = stepPath.split('.');
  let list = actions;
  let i = 0;
  for (;;) {
    const index = Number(t[i]);
    for (const s of list.slice(0, index)) if (s?.name) out.push({ name: s.name, step: s });
    const step = list[index];
    if (i === t.length - 1 || !step) return out;
    const key = t[i + 1] === 'paths' ? `paths.${t[i + 2]}` : t[i + 1];
    if (step.type === 'wait_for_event' && step.name) out.push({ name: step.name, step });
    list = blocks(step).find((b) => b.key === key)?.list || [];
    i += key.startsWith('paths.') ? 3 : 2;
  }
}
