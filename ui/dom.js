// Small DOM helpers: element creation, the status line, the confirmation dialog, and
// validation messages placed next to the input their JSON pointer names.

/** h('button', {class: 'x', onclick: f}, 'text', child, ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

let uid = 0;
/** A unique element id with a readable prefix. */
export const newId = (prefix = 'f') => `${prefix}-${++uid}`;

/** A labelled control: returns [label, control] wired by id. */
export function labelled(text, control, hint) {
  if (!control.id) control.id = newId('in');
  const label = h('label', { for: control.id }, text);
  let help = null;
  if (hint) {
    help = h('span', { class: 'hint', id: newId('hint') }, hint);
    control.setAttribute('aria-describedby', help.id);
  }
  return h('div', { class: 'field' }, label, control, help);
}

export function announce(message, kind = 'info') {
  const el = document.getElementById('status');
  el.textContent = message;
  el.dataset.kind = kind;
  clearTimeout(announce.timer);
  if (kind !== 'error') announce.timer = setTimeout(() => { el.textContent = ''; }, 8000);
}

/** The confirmation dialog; resolves true when confirmed. */
export function confirmDialog(title, text, okLabel = 'Confirm') {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

/** Removes every message showErrors placed inside root. */
export function clearErrors(root) {
  for (const el of root.querySelectorAll('.field-error.api, .field-warning.api')) el.remove();
  for (const el of root.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
  for (const el of root.querySelectorAll('.has-error')) el.classList.remove('has-error');
}

/** The element of root whose data-path is `path` or its nearest ancestor path. */
export function elementForPath(root, path) {
  let p = path;
  for (;;) {
    const el = root.querySelector(`[data-path="${CSS.escape(p)}"]`);
    if (el) return el;
    if (!p) return null;
    p = p.slice(0, Math.max(0, p.lastIndexOf('/')));
  }
}

/**
 * Puts each problem next to the element whose data-path its pointer names (or the nearest
 * enclosing one), after stripping `prefix` (e.g. "/workflows/0" for a dry run). Problems
 * with no place go to `fallback`. Returns the first element that got an error.
 */
export function showErrors(root, details, { prefix = '', fallback = null } = {}) {
  let first = null;
  for (const d of details) {
    let path = d.path || '';
    if (prefix) {
      if (!path.startsWith(prefix)) continue;
      path = path.slice(prefix.length);
    }
    const warning = d.severity === 'warning';
    const target = elementForPath(root, path) || fallback;
    const msg = h('p', {
      class: (warning ? 'field-warning' : 'field-error') + ' api',
      id: newId('err'),
      dataset: { for: path },
    }, (warning ? 'Warning: ' : '') + d.message);
    if (!target) continue;
    if (target === fallback && elementForPath(root, path) === null) {
      msg.prepend(h('code', {}, path || '(document)'), ' ');
      fallback.append(msg);
    } else {
      target.after(msg);
      const control = target.matches('input, select, textarea') ? target : target.querySelector('input, select, textarea');
      if (control && !warning) {
        control.setAttribute('aria-invalid', 'true');
        const described = (control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
        control.setAttribute('aria-describedby', [...described, msg.id].join(' '));
      }
      if (!warning) target.classList.add('has-error');
    }
    if (!warning && !first) first = target;
  }
  return first;
}

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function relTime(iso) {
  const ms = new Date(iso).getTime() - Date.now();
  const s = Math.round(Math.abs(ms) / 1000);
  const span = s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} days`;
  return ms >= 0 ? `in ${span}` : `${span} ago`;
}

export const json = (v) => JSON.stringify(v);

/** A status badge whose meaning is in its text, not only its colour. */
export function badge(text, kind = text) {
  return h('span', { class: `badge badge-${kind}` }, text);
}
