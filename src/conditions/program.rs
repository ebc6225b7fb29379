//! A compiled condition flattened into a short-circuit program: a loop over the rules it
//! reaches, instead of a recursive walk over boxed nodes. Profiling (docs/peers.md) put
//! most of a rule's cost in that walk: a call and a pointer chase per node.
//!
//! Each step is one rule with where to go when it holds and when it does not: the next
//! rule, or the result. `all`, `any` and `not` leave no step of their own (a `not` swaps
//! its operand's two exits), so a rule reached costs one memo lookup or one decision and
//! one data-dependent branch, as in hand-written `&&` / `||` code. The tree stays for
//! traces; plans run the program.

use super::compile::Node;
use super::field::{Resolver, RuleId};

/// Where a step goes when the condition's value is decided.
const TRUE: u32 = u32::MAX;
const FALSE: u32 = u32::MAX - 1;

/// One rule and the step to take after it: an index into the program, or [`TRUE`] /
/// [`FALSE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    rule: RuleId,
    on_true: u32,
    on_false: u32,
}

#[derive(Debug, Clone)]
pub struct Program {
    /// In document order: the first rule evaluated is the first step.
    steps: Box<[Step]>,
    /// The first step, or the result when the condition has no rule (`TRUE` for none).
    entry: u32,
}

impl Default for Program {
    fn default() -> Self {
        Self {
            steps: Box::default(),
            entry: TRUE,
        }
    }
}

impl Program {
    /// Flattens `node`. Its depth is bounded by the compiler's limit, so the recursion is.
    pub fn compile(node: &Node) -> Self {
        let mut steps = Vec::new();
        let entry = emit(node, TRUE, FALSE, &mut steps);
        // Emitted last rule first; reversed, the steps read in document order and the
        // entry, the last one emitted, becomes step 0.
        let last = steps.len().saturating_sub(1);
        let flip = |at: u32| if at >= FALSE { at } else { index(last - at as usize) };
        steps.reverse();
        for step in &mut steps {
            step.on_true = flip(step.on_true);
            step.on_false = flip(step.on_false);
        }
        Self {
            steps: steps.into(),
            entry: flip(entry),
        }
    }

    /// The condition's value for this evaluation; the same as [`super::evaluate`].
    #[inline]
    pub fn run(&self, fields: &mut Resolver<'_, '_>) -> bool {
        let mut at = self.entry;
        while let Some(step) = self.steps.get(at as usize) {
            at = if fields.rule(step.rule) {
                step.on_true
            } else {
                step.on_false
            };
        }
        at == TRUE
    }

    /// Number of rules in the program (a rule used twice counts twice).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A step's index. A workflow holds at most `Limits::max_rules` rules and a definition
/// with four billion would not fit in memory as JSON, so this never saturates; if it ever
/// did, the step would read as "false", not as another step.
fn index(i: usize) -> u32 {
    u32::try_from(i).ok().filter(|&i| i < FALSE).unwrap_or(FALSE)
}

/// Emits the steps of `node` given where its true and false exits go, and returns its
/// entry: the step of its first rule, or the exit it takes without reading any rule.
/// Children are emitted last first, because each one's exits are the entry of the next.
fn emit(node: &Node, on_true: u32, on_false: u32, steps: &mut Vec<Step>) -> u32 {
    match node {
        Node::True => on_true,
        Node::Rule(rule) => {
            steps.push(Step {
                rule: rule.id,
                on_true,
                on_false,
            });
            index(steps.len() - 1)
        }
        Node::Not(inner) => emit(inner, on_false, on_true, steps),
        // An empty `all` is true and an empty `any` false, as `evaluate` has it.
        Node::All(children) => children
            .iter()
            .rev()
            .fold(on_true, |next, child| emit(child, next, on_false, steps)),
        Node::Any(children) => children
            .iter()
            .rev()
            .fold(on_false, |next, child| emit(child, on_true, next, steps)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::{compile, evaluate, ConditionNode, Facts, FieldTable, Limits};
    use crate::envelope::EventEnvelope;
    use serde_json::{json, Map, Value};

    /// Every combination of three rule outcomes under nested all/any/not gives the same
    /// result through the program as through the tree.
    #[test]
    fn programs_agree_with_the_tree() {
        let leaf = |name: &str| json!({"field": format!("event.{name}"), "operator": "eq", "value": true});
        let trees = [
            json!({"match": "all", "rules": [leaf("a"), leaf("b"), leaf("c")]}),
            json!({"match": "any", "rules": [leaf("a"), leaf("b"), leaf("c")]}),
            json!({"match": "all", "rules": [leaf("a"), {"match": "any", "rules": [leaf("b"), {"not": leaf("c")}]}]}),
            json!({"match": "any", "rules": [{"match": "all", "rules": [leaf("a"), leaf("b")]}, {"not": {"match": "any", "rules": [leaf("c"), leaf("a")]}}]}),
            json!({"not": {"match": "all", "rules": [{"not": leaf("a")}, {"match": "any", "rules": []}, leaf("c")]}}),
        ];
        let schema = crate::schema::FieldSchema::default();
        let validator = crate::validate::Validator::new(&schema, Limits::default());
        for tree in trees {
            let definition = json!({"name": "t", "trigger_event": "t.x", "conditions": tree,
                "actions": [{"type": "add_note", "params": {"body": "x"}}]});
            let workflow = validator.workflow(&definition).unwrap().workflow;
            let condition: &ConditionNode = workflow.conditions.as_ref().unwrap();
            let mut table = FieldTable::default();
            let node = compile(Some(condition), &mut table, &Limits::default()).unwrap();
            let program = Program::compile(&node);
            for bits in 0..8u8 {
                let data: Map<String, Value> = ["a", "b", "c"]
                    .iter()
                    .enumerate()
                    .map(|(i, k)| ((*k).to_owned(), Value::Bool(bits & (1 << i) != 0)))
                    .collect();
                let event = EventEnvelope {
                    id: "e".into(),
                    event_type: "t.x".into(),
                    customer_id: 1,
                    occurred_at: None,
                    occurred_at_stamped: false,
                    data,
                    cause: None,
                    trace: None,
                };
                let customer = Map::new();
                let facts = Facts::new(&event, &customer);
                let by_tree = evaluate(&node, &mut table.resolver(facts));
                let by_program = program.run(&mut table.resolver(facts));
                assert_eq!(by_program, by_tree, "{condition:?} with bits {bits:03b}");
            }
        }
    }
}
