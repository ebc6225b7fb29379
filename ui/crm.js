// The pages that manage where external actions go: webhook endpoints (a workflow's
// `"endpoint": "<name>"`: fixing the URL here fixes every workflow using it, and a
// retried run) and SMS providers (send_sms goes through the one active provider).
// A list, and one form that creates or edits; every API problem lands next to its field.
// An endpoint's secret is write-only: the API never returns it, only `has_secret`.

import { put } from './api.js';
import { h, announce, labelled, badge } from './dom.js';
import { recordsPage, textField } from './records.js';

export function renderEndpoints(view) {
  return recordsPage(view, {
    title: 'Webhook endpoints',
    path: '/api/v1/webhook-endpoints',
    key: 'webhook_endpoints',
    noun: 'endpoint',
    intro: 'A webhook action names an endpoint ("endpoint": "slack_notification"); its URL and signing secret live here, so a fixed URL serves every workflow, and a retried run, at once. Deliveries are signed with the secret (Standard Webhooks).',
    deleteNote: 'Workflows that name it fail their webhook step until an endpoint of that name exists again.',
    columns: [
      ['Name', (r) => h('code', {}, r.name)],
      ['URL', (r) => h('span', { class: 'url' }, r.url)],
      ['Secret', (r) => (r.has_secret ? badge('set', 'done') : badge('none', 'off'))],
    ],
    blank: (r) => ({ name: r?.name ?? '', url: r?.url ?? '', secret: '', clearSecret: false }),
    fields(editing, draft) {
      const secret = h('input', {
        id: 'rec-secret', type: 'password', autocomplete: 'new-password', value: '', spellcheck: 'false',
        placeholder: editing?.has_secret ? 'set: leave empty to keep it' : 'none',
        oninput: (e) => { draft.secret = e.target.value; },
      });
      const clear = editing?.has_secret ? h('input', { id: 'rec-clear-secret', type: 'checkbox', onchange: (e) => { draft.clearSecret = e.target.checked; secret.disabled = e.target.checked; } }) : null;
      return [
        textField(draft, 'name', 'Name', { required: true, placeholder: 'slack_notification' }, 'what workflows write as "endpoint"'),
        textField(draft, 'url', 'URL', { type: 'url', required: true, placeholder: 'https://hooks.example.com/…' }),
        h('div', { 'data-path': '/secret' },
          labelled('Signing secret', secret, editing
            ? `write-only: never shown; ${editing.has_secret ? 'one is set, typing a new one replaces it' : 'none is set'}`
            : 'write-only: never shown again; optional')),
        clear ? h('div', { class: 'checkbox' }, clear, h('label', { for: clear.id }, 'Remove the secret (deliveries go unsigned)')) : null,
      ].filter(Boolean);
    },
    body(draft, editing) {
      const body = { name: draft.name.trim(), url: draft.url.trim() };
      // Absent keeps the stored secret, null removes it, a string replaces it.
      if (draft.clearSecret) body.secret = null;
      else if (draft.secret !== '') body.secret = draft.secret;
      else if (!editing) delete body.secret;
      return body;
    },
  });
}

export function renderProviders(view) {
  return recordsPage(view, {
    title: 'SMS providers',
    path: '/api/v1/sms-providers',
    key: 'sms_providers',
    noun: 'provider',
    intro: 'send_sms goes through the one active provider. Activating one deactivates the one before, in the same change.',
    deleteNote: 'With no active provider, send_sms steps fail until one is activated.',
    columns: [
      ['Name', (r) => h('span', {}, r.name)],
      ['URL', (r) => h('span', { class: 'url' }, r.url)],
      ['Active', (r) => (r.active ? badge('active', 'done') : badge('inactive', 'off'))],
    ],
    blank: (r) => ({ name: r?.name ?? '', url: r?.url ?? '', active: r ? Boolean(r.active) : false }),
    fields(editing, draft) {
      const active = h('input', { id: 'rec-active', type: 'checkbox', checked: draft.active, onchange: (e) => { draft.active = e.target.checked; } });
      return [
        textField(draft, 'name', 'Name', { required: true, placeholder: 'twilio' }),
        textField(draft, 'url', 'URL', { type: 'url', required: true, placeholder: 'https://sms.example.com/send' }),
        h('div', { class: 'checkbox', 'data-path': '/active' }, active, h('label', { for: active.id }, 'Active: send_sms uses this one (the active one before is deactivated)')),
      ];
    },
    body: (draft) => ({ name: draft.name.trim(), url: draft.url.trim(), active: draft.active }),
    rowTools: (r, reload) => (r.active ? null : h('button', {
      type: 'button', 'aria-label': `Make ${r.name} the active provider`,
      onclick: async () => {
        try {
          await put(`/api/v1/sms-providers/${encodeURIComponent(r.id)}`, { name: r.name, url: r.url, active: true });
          announce(`${r.name} is now the active SMS provider.`);
          await reload();
          document.querySelector(`#rec-list tr[data-id="${CSS.escape(String(r.id))}"] button`)?.focus();
        } catch (e) {
          announce(`Could not activate ${r.name}: ${e.message}`, 'error');
        }
      },
    }, 'Make active')),
  });
}
