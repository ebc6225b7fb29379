// The workflow list (with enable/disable, delete, last run) and one workflow's history,
// with any two of its versions compared.

import { get, put, del, schema } from './api.js';
import { h, announce, confirmDialog, fmtTime, relTime, badge } from './dom.js';
import { renderDiff } from './diff.js';

function triggerLabel(s, name) {
  const t = s.triggers.find((t) => t.name === name);
  return t ? h('span', {}, h('code', {}, name), h('span', { class: 'muted small' }, ' ' + t.label)) : h('code', {}, name);
}

export async function renderList(view) {
  const [s, { workflows }] = await Promise.all([schema(), get('/api/v1/workflows')]);
  workflows.sort((a, b) => (a.trigger_event.localeCompare(b.trigger_event)) || ((a.priority ?? 100) - (b.priority ?? 100)) || a.id.localeCompare(b.id));
  const body = h('tbody');
  const table = h('table', { class: 'list', 'aria-describedby': 'wf-caption' },
    h('caption', { id: 'wf-caption', class: 'sr-only' }, 'Workflows: lower priority numbers run first'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Trigger'),
      h('th', { scope: 'col', class: 'num' }, 'Priority'), h('th', { scope: 'col' }, 'Stop after'),
      h('th', { scope: 'col' }, 'Active'), h('th', { scope: 'col', class: 'num' }, 'Version'),
      h('th', { scope: 'col' }, 'Last run'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
    body);
  view.replaceChildren(
    h('div', { class: 'view-head' },
      h('h2', {}, 'Workflows'),
      h('a', { class: 'button primary', href: '#/new' }, 'New workflow')),
    workflows.length ? table : h('p', { class: 'empty' }, 'No workflows yet. ', h('a', { href: '#/new' }, 'Create the first one'), '.'));

  for (const wf of workflows) {
    const lastRun = h('td', { class: 'last-run' }, h('span', { class: 'muted' }, '…'));
    const activeCell = h('td', {}, wf.active ? badge('active', 'done') : badge('disabled', 'off'));
    const toggle = h('button', {
      type: 'button',
      'aria-label': `${wf.active ? 'Disable' : 'Enable'} ${wf.name}`,
      onclick: async () => {
        toggle.disabled = true;
        try {
          const updated = await put(`/api/v1/workflows/${encodeURIComponent(wf.id)}`, { ...wf, active: !wf.active, version: wf.version });
          announce(`${updated.name} is now ${updated.active ? 'active' : 'disabled'} (version ${updated.version}).`);
          await renderList(view);
          view.querySelector(`[data-id="${CSS.escape(wf.id)}"] button.toggle`)?.focus();
        } catch (e) {
          announce(`Could not change ${wf.name}: ${e.message}`, 'error');
          toggle.disabled = false;
        }
      },
      class: 'toggle',
    }, wf.active ? 'Disable' : 'Enable');
    const remove = h('button', {
      type: 'button', class: 'danger', 'aria-label': `Delete ${wf.name}`,
      onclick: async () => {
        const ok = await confirmDialog('Delete workflow?', `“${wf.name}” stops running at once. Its history and past runs stay.`, 'Delete');
        if (!ok) return;
        try {
          await del(`/api/v1/workflows/${encodeURIComponent(wf.id)}`);
          announce(`Deleted ${wf.name}.`);
          await renderList(view);
          view.querySelector('h2')?.focus?.();
        } catch (e) { announce(`Could not delete ${wf.name}: ${e.message}`, 'error'); }
      },
    }, 'Delete');
    body.append(h('tr', { dataset: { id: wf.id } },
      h('th', { scope: 'row' }, h('a', { href: `#/edit/${encodeURIComponent(wf.id)}` }, wf.name),
        wf.description ? h('div', { class: 'muted small' }, wf.description) : null),
      h('td', {}, triggerLabel(s, wf.trigger_event)),
      h('td', { class: 'num' }, String(wf.priority ?? 100)),
      h('td', {}, wf.stop_after ? 'yes' : 'no'),
      activeCell,
      h('td', { class: 'num' }, String(wf.version)),
      lastRun,
      h('td', { class: 'row-actions' },
        h('a', { class: 'button', href: `#/edit/${encodeURIComponent(wf.id)}`, 'aria-label': `Edit ${wf.name}` }, 'Edit'),
        toggle,
        h('a', { class: 'button', href: `#/history/${encodeURIComponent(wf.id)}`, 'aria-label': `History of ${wf.name}` }, 'History'),
        h('a', { class: 'button', href: `#/runs?workflow_id=${encodeURIComponent(wf.id)}`, 'aria-label': `Runs of ${wf.name}` }, 'Runs'),
        h('a', { class: 'button', href: `#/results/${encodeURIComponent(wf.id)}`, 'aria-label': `Results of ${wf.name}` }, 'Results'),
        remove)));
    get(`/api/v1/runs?workflow_id=${encodeURIComponent(wf.id)}&limit=1`).then(({ runs }) => {
      const run = runs[0];
      lastRun.replaceChildren(run
        ? h('a', { href: `#/runs?workflow_id=${encodeURIComponent(wf.id)}`, title: fmtTime(run.created_at) },
          badge(run.status), ' ', h('span', { class: 'small' }, relTime(run.created_at)),
          run.error ? h('div', { class: 'small error-text' }, run.error) : null)
        : h('span', { class: 'muted' }, 'never ran'));
    }).catch((e) => lastRun.replaceChildren(h('span', { class: 'muted' }, `unknown (${e.message})`)));
  }
}

export async function renderHistory(view, id, params) {
  const [current, { versions }] = await Promise.all([
    get(`/api/v1/workflows/${encodeURIComponent(id)}`).catch(() => null),
    get(`/api/v1/workflows/${encodeURIComponent(id)}/versions`),
  ]);
  versions.sort((a, b) => b.version - a.version);
  const name = current?.name || versions[0]?.definition?.name || id;
  const byVersion = new Map(versions.map((v) => [String(v.version), v]));

  // Compare two versions: by default the newest against the one before it.
  const option = (v, selected) => h('option', { value: String(v.version), selected: String(v.version) === selected },
    `Version ${v.version} (${v.change}, ${fmtTime(v.changed_at)})`);
  const wantFrom = params?.get('from') || String(versions[1]?.version ?? '');
  const wantTo = params?.get('to') || String(versions[0]?.version ?? '');
  const fromSel = h('select', { id: 'h-from' }, versions.map((v) => option(v, wantFrom)));
  const toSel = h('select', { id: 'h-to' }, versions.map((v) => option(v, wantTo)));
  const out = h('div', { id: 'h-diff', 'aria-live': 'polite' });
  const compare = (from, to) => {
    fromSel.value = String(from);
    toSel.value = String(to);
    const a = byVersion.get(fromSel.value);
    const b = byVersion.get(toSel.value);
    if (!a || !b) return;
    out.replaceChildren(renderDiff(a.definition, b.definition, `Version ${a.version}`, `Version ${b.version}`));
    history.replaceState(null, '', `#/history/${encodeURIComponent(id)}?from=${a.version}&to=${b.version}`);
  };
  const compareForm = versions.length > 1
    ? h('form', { class: 'filters compare', 'aria-label': 'Compare two versions', onsubmit: (e) => { e.preventDefault(); compare(fromSel.value, toSel.value); out.querySelector('h3')?.focus?.(); } },
      h('div', { class: 'field' }, h('label', { for: fromSel.id }, 'Compare'), fromSel),
      h('div', { class: 'field' }, h('label', { for: toSel.id }, 'with'), toSel),
      h('button', { type: 'submit', class: 'primary', id: 'h-compare' }, 'Show the differences'))
    : null;

  view.replaceChildren(
    h('div', { class: 'view-head' },
      h('h2', {}, `History: ${name}`),
      current ? h('a', { class: 'button', href: `#/edit/${encodeURIComponent(id)}` }, 'Edit current version') : badge('deleted', 'failed'),
      h('a', { class: 'button', href: '#/workflows' }, 'Back to the list')),
    compareForm,
    out,
    h('ol', { class: 'history', reversed: true },
      versions.map((v, i) => h('li', {},
        h('details', {},
          h('summary', {}, h('strong', {}, `Version ${v.version}`), ' ', badge(v.change, v.change === 'deleted' ? 'failed' : 'info'),
            ` by ${v.changed_by}, ${fmtTime(v.changed_at)}`),
          h('pre', { class: 'json', tabindex: '0', 'aria-label': `Definition of version ${v.version}` }, JSON.stringify(v.definition, null, 2)),
          h('div', { class: 'buttons' },
            versions[i + 1] ? h('button', {
              type: 'button', 'aria-label': `Compare version ${v.version} with version ${versions[i + 1].version}`,
              onclick: () => { compare(versions[i + 1].version, v.version); out.scrollIntoView({ block: 'start' }); },
            }, `Differences from version ${versions[i + 1].version}`) : null,
            current && v.version !== current.version && v.definition
              ? h('a', { class: 'button', href: `#/edit/${encodeURIComponent(id)}?from_version=${v.version}` }, `Open version ${v.version} in the editor (saving makes it current)`)
              : null))))));
  if (params?.get('from') && params?.get('to')) compare(params.get('from'), params.get('to'));
}
