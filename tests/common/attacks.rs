//! The hostile inputs of security issue 22 that more than one test sends: the growing
//! templates and the workflow of many regexes.
#![allow(dead_code)]

use serde_json::{json, Value};

/// The first form: each nested loop re-binds `a` to itself concatenated with
/// itself, `depth` times, and prints only its length.
pub fn doubling_loops(depth: usize) -> String {
    let mut source = "{% for a in [event.x] %}".to_owned();
    source.push_str(&"{% for a in [a ~ a] %}".repeat(depth));
    source.push_str("{{ a | length }}");
    source.push_str(&"{% endfor %}".repeat(depth + 1));
    source
}

/// The second form: `list` then `string` grows a text about five times per pair,
/// with no loop and no `~`.
pub fn filter_chain(pairs: usize) -> String {
    format!("{{{{ event.x{} | length }}}}", " | list | string".repeat(pairs))
}

/// A draft of `rules` distinct regex rules, each well inside the per-regex limits.
pub fn regex_workflow(rules: usize) -> Value {
    let rules: Vec<Value> = (0..rules)
        .map(|i| json!({"field": "event.note", "operator": "regex", "value": format!("^(a|b)*x{i}[a-z]{{1,40}}$")}))
        .collect();
    json!({"name": "many regexes", "trigger_event": "customer.deposited",
           "conditions": {"match": "any", "rules": rules},
           "actions": [{"type": "add_note", "params": {"body": "hit"}}]})
}
