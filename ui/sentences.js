// What a dry run's planned steps would do, as sentences an operator reads at a glance:
// "assigned to Ana Costa, retention desk", "email “Welcome, Bruna” to bruna@example.com",
// "waits 2 days", "took path 2". Names come from the CRM's lists (the editor's pickers
// read them), texts from the dry run's rendered templates, the path a branch takes and a
// wait's two outcomes from its previews. The raw JSON stays one click away in the panel.
// What the contact policy's caps did or would do to a message is said here too, for the
// dry run ("would be deferred by the contact cap: …") and for a run's steps ("skipped:
// contact cap: …", "waits for the contact cap until 14:00").

import { h, fmtTime } from './dom.js';
import { durationText } from './words.js';

const cut = (s, n) => (typeof s === 'string' && s.length > n ? `${s.slice(0, n - 1)}…` : s);
const quoted = (s) => `“${cut(String(s ?? ''), 80)}”`;

function hostOf(url) {
  try { return new URL(url).host; } catch { return url || 'a URL'; }
}

/**
 * One step in words: { text, arms: [{ label, actions, previews }] } — arms are the lists a
 * branch or a wait goes on with (the taken path, or both outcomes of a wait). Why it would
 * fail (`pv.error`) is left to the caller, which shows it apart, in red.
 * ctx: { crm: { teams, agents, statusTypes } | null, customer: the snapshot judged }.
 */
export function sayStep(action, pv = {}, ctx) {
  const p = action.params || {};
  const r = pv.rendered || {};
  const agents = ctx.crm?.agents || [];
  const teams = ctx.crm?.teams || [];
  const team = (id) => teams.find((t) => t.id === id);
  const agent = (id) => agents.find((a) => a.id === id);
  /** "Ana Costa, retention desk": the agent's name and the desk of their team. */
  const who = (a) => {
    const known = agent(a.id) || a;
    const t = team(known.team_id);
    return `${a.name ?? known.name ?? `agent ${a.id}`}${t ? `, ${t.desk} desk` : ''}`;
  };
  const c = ctx.customer || {};
  let text;
  let arms = [];
  switch (action.type) {
    case 'assign_to_agent':
      text = agent(p.agent_id) ? `assigned to ${who(agent(p.agent_id))}` : `assigned to agent ${p.agent_id} (not in the CRM’s agents)`;
      break;
    case 'assign_to_team': {
      const name = team(p.team_id)?.name ?? `team ${p.team_id}`;
      text = pv.agent ? `assigned to ${who(pv.agent)} (round-robin in ${name})` : `assigned to team ${name}`;
      break;
    }
    case 'reassign_round_robin':
      text = pv.agent ? `reassigned round-robin to ${who(pv.agent)}` : 'reassigned round-robin within the customer’s team';
      break;
    case 'handover_to_retention':
      text = pv.agent ? `handed over to retention: ${who(pv.agent)}` : `handed over to the retention desk${team(p.team_id) ? ` (${team(p.team_id).name})` : ''}`;
      break;
    case 'set_status': {
      const status = p.status ?? (ctx.crm?.statusTypes || []).flatMap((t) => t.statuses).find((s) => s.id === p.status_id)?.name ?? `status ${p.status_id}`;
      text = `${p.type} status set to ${status}`;
      break;
    }
    case 'send_email': {
      const subject = r.subject ?? p.subject;
      const what = subject ? `email ${quoted(subject)}` : `email with template ${quoted(r.template ?? p.template)}`;
      text = `${what} to ${c.email || 'the customer (no email address)'}`;
      break;
    }
    case 'send_sms': {
      const body = r.text ?? p.text;
      text = `${body ? `SMS ${quoted(body)}` : `SMS with template ${quoted(r.template ?? p.template)}`} to ${c.phone || 'the customer (no phone number)'}`;
      break;
    }
    case 'create_task': {
      const owner = agent(c.agent_id);
      text = `task ${quoted(r.title ?? p.title)}, due in ${durationText(p.due_in)}${owner ? `, for ${owner.name}` : ''}`;
      break;
    }
    case 'add_note':
      text = `note added: ${quoted(r.body ?? p.body)}`;
      break;
    case 'increment_manager_counter':
      text = `the manager’s counter ${quoted(p.counter)} goes up by ${p.by ?? 1}`;
      break;
    case 'set_customer_active':
      text = p.active ? 'customer set active' : 'customer set inactive';
      break;
    case 'freeze_account':
      text = `account frozen: ${quoted(r.reason ?? p.reason)}`;
      break;
    case 'delay':
      text = `waits ${durationText(p)}`;
      break;
    case 'webhook':
      text = `webhook to ${p.endpoint ? `endpoint ${p.endpoint}` : hostOf(r.url ?? p.url)}`;
      break;
    case 'branch': {
      const paths = p.paths || [];
      if (pv.path === null || pv.path === undefined) {
        text = 'a branch the dry run cannot decide (a path reads steps.*, which only a run knows): every path shown';
        arms = [...paths.map((path, k) => ({ label: `path ${k + 1}`, actions: path.actions, previews: pv.every_path?.[k] })),
          { label: 'otherwise', actions: p.otherwise || [], previews: pv.every_path?.[paths.length] }];
      } else if (pv.path === 'otherwise') {
        text = p.otherwise?.length ? 'took otherwise' : 'no path held: goes on after the branch';
        arms = p.otherwise?.length ? [{ label: 'otherwise', actions: p.otherwise, previews: pv.actions }] : [];
      } else {
        text = `took path ${pv.path + 1}`;
        arms = [{ label: `path ${pv.path + 1}`, actions: paths[pv.path]?.actions || [], previews: pv.actions }];
      }
      break;
    }
    case 'split': {
      // the dry run knows the customer, so it may say which path the hash picks
      const paths = p.paths || [];
      if (typeof pv.path === 'number') {
        text = `took path ${pv.path + 1} of the split (${paths[pv.path]?.percent ?? '?'}% of the customers)`;
        arms = [{ label: `path ${pv.path + 1}`, actions: paths[pv.path]?.actions || [], previews: pv.actions }];
      } else {
        text = `splits the customers: ${paths.map((x, k) => `path ${k + 1} ${x.percent ?? '?'}%`).join(', ')}`;
        arms = paths.map((x, k) => ({ label: `path ${k + 1} (${x.percent ?? '?'}%)`, actions: x.actions || [], previews: pv.every_path?.[k] }));
      }
      break;
    }
    case 'wait_for_event':
      text = `waits up to ${durationText(p.timeout)} for ${p.event}`;
      arms = [
        { label: `if ${p.event} arrives`, actions: p.on_event || [], previews: pv.on_event },
        { label: `after ${durationText(p.timeout)} without it`, actions: p.on_timeout || [], previews: pv.on_timeout },
      ];
      break;
    default:
      text = action.type.replace(/_/g, ' ');
  }
  if (pv.skipped) text += `: not sent, the customer opted out (${pv.skipped})`;
  if (pv.waits_until) text += `, after waiting for the send window until ${fmtTime(pv.waits_until)}`;
  if (pv.capped) text += `; ${cappedText(pv.capped)}`;
  return { text, arms };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n) => String(n).padStart(2, '0');

/** "14:00" today, "Mar 4 14:00" on another day, in this browser's time zone. */
export function clockTime(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return String(iso ?? '?');
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  return d.toDateString() === new Date().toDateString() ? hm : `${MONTHS[d.getMonth()]} ${d.getDate()} ${hm}`;
}

/**
 * A dry run's `capped` preview: "would be deferred by the contact cap: at most 1 email
 * per 1 day" (or "skipped", as the policy's on_cap says).
 */
export function cappedText(capped) {
  const how = capped?.on_cap === 'defer' ? 'deferred' : 'skipped';
  return `would be ${how} by the ${capped?.cap || 'contact cap'}`;
}

/**
 * What a contact cap did to a run's message step, from its status and result, or null:
 * "skipped: contact cap: at most 2 email per 1 day", "waits for the contact cap until
 * 14:00 (at most 1 email per 1 day)".
 */
export function heldText(step) {
  const r = step?.result;
  if (!r || typeof r !== 'object') return null;
  if (r.waiting_for === 'contact_cap') {
    const cap = typeof r.cap === 'string' ? r.cap.replace(/^contact cap:\s*/, '') : '';
    return `waits for the contact cap until ${clockTime(r.until)}${cap ? ` (${cap})` : ''}`;
  }
  if (step.status === 'skipped' && typeof r.skipped === 'string') return `skipped: ${r.skipped}`;
  return null;
}

/** The lists a branch or a wait goes on with, each step said, nested as deep as they go. */
export function sayArms(arms, ctx) {
  if (!arms.length) return null;
  return h('ul', { class: 'arms' }, arms.map((arm) => h('li', {},
    h('span', { class: 'arm-label' }, `${arm.label}: `),
    arm.actions.length
      ? h('ol', { class: 'said' }, arm.actions.map((a, k) => {
        const said = sayStep(a, arm.previews?.[k], ctx);
        const error = arm.previews?.[k]?.error;
        return h('li', {}, h('span', { class: 'sentence' }, said.text),
          error ? h('span', { class: 'error-text' }, ` — would fail: ${error}`) : null, sayArms(said.arms, ctx));
      }))
      : h('span', { class: 'muted' }, 'nothing'))));
}
