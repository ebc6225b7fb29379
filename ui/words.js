// Conditions, values and durations in words, for every place that says them to a person
// rather than edits them: the flow diagram's labels, the event inspector's failing rules,
// the test panel's step sentences.

const OPS = {
  eq: '=', neq: '≠', gt: '>', gte: '≥', lt: '<', lte: '≤', contains: 'contains', not_contains: 'does not contain',
  starts_with: 'starts with', ends_with: 'ends with', in: 'in', not_in: 'not in', between: 'between',
  is_empty: 'is empty', is_not_empty: 'is not empty',
};

/** "3 days" for {"days": 3}. */
export function durationText(d) {
  if (!d || typeof d !== 'object') return '?';
  const [unit, n] = Object.entries(d)[0] || ['', '?'];
  return `${n} ${Number(n) === 1 ? unit.replace(/s$/, '') : unit}`;
}

/** A rule's value as written in a condition: strings quoted, a field reference by its path. */
const valueText = (v) => {
  if (v && typeof v === 'object' && !Array.isArray(v) && typeof v.field === 'string') return v.field;
  if (Array.isArray(v)) return `[${v.map(valueText).join(', ')}]`;
  return typeof v === 'string' ? `"${v}"` : String(v);
};

/** One rule in one line: `event.amount ≥ 1000`. */
function ruleText(rule) {
  const op = OPS[rule.operator] || rule.operator;
  if (rule.operator === 'between' && Array.isArray(rule.value)) return `${rule.field} ${op} ${valueText(rule.value[0])} and ${valueText(rule.value[1])}`;
  return rule.value !== undefined ? `${rule.field} ${op} ${valueText(rule.value)}` : `${rule.field} ${op}`;
}

/** A condition tree in one line: `event.amount ≥ 1000 and customer.country = "BR"`; "always" when empty. */
export function conditionsText(node, nested = false) {
  if (!node || typeof node !== 'object' || !Object.keys(node).length) return 'always';
  if ('not' in node) return `not (${conditionsText(node.not, false)})`;
  if ('match' in node) {
    const rules = node.rules || [];
    if (!rules.length) return 'always';
    const text = rules.map((r) => conditionsText(r, true)).join(node.match === 'any' ? ' or ' : ' and ');
    return nested && rules.length > 1 ? `(${text})` : text;
  }
  return ruleText(node);
}

/**
 * A judged rule as a sentence: "event.amount ≥ 1000 was false: it saw 700". `missing`
 * says the field was absent, which reads differently from an empty value.
 */
export function judgedRuleText(rule) {
  const saw = rule.missing ? 'nothing (the field was missing)' : rule.saw === '' ? 'an empty text ("")' : valueText(rule.saw ?? null);
  return `${ruleText(rule)} was ${rule.result ? 'true' : 'false'}: it saw ${saw}`;
}

/** "1 run", "3 runs". */
export const plural = (n, noun, many = `${noun}s`) => `${n} ${n === 1 ? noun : many}`;
