//! A compiled condition flattened into a short-circuit program: a loop over a slice of ops
//! with one boolean accumulator, instead of a recursive walk over boxed nodes. Profiling
//! (docs/peers.md) put most of a rule's cost in that walk: a call and a pointer chase per
//! node. The tree stays for traces; plans run the program.

use super::compile::Node;
use super::field::{Resolver, RuleId};

/// One step; jumps leave the accumulator as the value of the group they leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// acc = the rule's result
    Rule(RuleId),
    /// acc = constant
    Const(bool),
    /// acc = !acc
    Not,
    /// if !acc, go to the target (the end of an `all` group)
    JumpIfFalse(u32),
    /// if acc, go to the target (the end of an `any` group)
    JumpIfTrue(u32),
}

#[derive(Debug, Clone, Default)]
pub struct Program {
    ops: Box<[Op]>,
}

impl Program {
    /// Flattens `node`. Its depth is bounded by the compiler's limit, so the recursion is.
    pub fn compile(node: &Node) -> Self {
        let mut ops = Vec::new();
        emit(node, &mut ops);
        Self { ops: ops.into() }
    }

    /// The condition's value for this evaluation; the same as [`super::evaluate`].
    #[inline]
    pub fn run(&self, fields: &mut Resolver<'_, '_>) -> bool {
        let ops = &*self.ops;
        let mut acc = true;
        let mut pc = 0;
        while let Some(op) = ops.get(pc) {
            pc += 1;
            match *op {
                Op::Rule(id) => acc = fields.rule(id),
                Op::Const(value) => acc = value,
                Op::Not => acc = !acc,
                Op::JumpIfFalse(target) if !acc => pc = target as usize,
                Op::JumpIfTrue(target) if acc => pc = target as usize,
                Op::JumpIfFalse(_) | Op::JumpIfTrue(_) => {}
            }
        }
        acc
    }
}

fn emit(node: &Node, ops: &mut Vec<Op>) {
    match node {
        Node::True => ops.push(Op::Const(true)),
        Node::Rule(rule) => ops.push(Op::Rule(rule.id)),
        Node::Not(inner) => {
            emit(inner, ops);
            ops.push(Op::Not);
        }
        Node::All(children) | Node::Any(children) => {
            let all = matches!(node, Node::All(_));
            let Some((last, rest)) = children.split_last() else {
                // An empty group is true (an empty `any` compiles to Node::True already).
                ops.push(Op::Const(true));
                return;
            };
            let mut jumps = Vec::with_capacity(rest.len());
            for child in rest {
                emit(child, ops);
                jumps.push(ops.len());
                ops.push(if all { Op::JumpIfFalse(0) } else { Op::JumpIfTrue(0) });
            }
            emit(last, ops);
            let end = u32::try_from(ops.len()).unwrap_or(u32::MAX);
            for at in jumps {
                ops[at] = if all { Op::JumpIfFalse(end) } else { Op::JumpIfTrue(end) };
            }
        }
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
                    data,
                    cause: None,
                    trace: None,
                };
                let customer = Map::new();
                let facts = Facts {
                    event: &event,
                    customer: &customer,
                };
                let by_tree = evaluate(&node, &mut table.resolver(facts));
                let by_program = program.run(&mut table.resolver(facts));
                assert_eq!(by_program, by_tree, "{condition:?} with bits {bits:03b}");
            }
        }
    }
}
