// The HTTP API client: JSON in and out, the bearer token when the engine asks for one
// (asked once, kept in sessionStorage), and errors as ApiError with the API's details.

const TOKEN_KEY = 'wfe-token';

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.path = e.path ?? null;
    // Every problem with its JSON pointer; a single error becomes one detail.
    this.details = Array.isArray(e.details) && e.details.length
      ? e.details
      : [{ path: e.path ?? '', message: this.message }];
  }
}

let pendingToken = null;

function askToken(wrong) {
  if (pendingToken) return pendingToken;
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  error.hidden = !wrong;
  error.textContent = wrong ? 'The engine refused that token. Try again.' : '';
  input.value = '';
  pendingToken = new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      pendingToken = null;
      if (dialog.returnValue === 'ok' && input.value) {
        sessionStorage.setItem(TOKEN_KEY, input.value);
        resolve(true);
      } else {
        resolve(false);
      }
    }, { once: true });
  });
  dialog.showModal();
  input.focus();
  return pendingToken;
}

export async function api(method, path, body) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const headers = { Accept: 'application/json', 'X-Changed-By': 'builder page' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      if (await askToken(Boolean(token))) continue;
    }
    if (resp.status === 204) return null;
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: { code: 'bad_response', message: text.slice(0, 300) } };
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }
  throw new ApiError(401, { error: { code: 'unauthorized', message: 'no valid API token' } });
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

let schemaPromise = null;
/** GET /api/v1/schema, once per page load (reload() to refetch statuses). */
export function schema(reload = false) {
  if (!schemaPromise || reload) schemaPromise = get('/api/v1/schema').catch((e) => { schemaPromise = null; throw e; });
  return schemaPromise;
}
