//! The condition tree as written in a workflow: rules, `all`/`any` groups and `not`.
//!
//! This is the source form, kept so a workflow reads back exactly as it was saved and so
//! a trace can show each rule as the operator wrote it. Evaluation uses the compiled form
//! in [`super::compile`]. It deserialises only to read back what was serialised from a
//! validated tree (a waiting run's conditions): untrusted JSON goes through validation.

use super::operator::Operator;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConditionNode {
    Rule(Rule),
    Group(Group),
    Not(Not),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub field: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    All,
    Any,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    #[serde(rename = "match")]
    pub match_: Match,
    pub rules: Vec<ConditionNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Not {
    pub not: Box<ConditionNode>,
}

impl ConditionNode {
    /// Nesting depth, a lone rule being 1. Iterative so that measuring a hostile tree cannot
    /// itself overflow the stack.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((node, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            match node {
                ConditionNode::Rule(_) => {}
                ConditionNode::Group(g) => stack.extend(g.rules.iter().map(|n| (n, depth + 1))),
                ConditionNode::Not(n) => stack.push((&n.not, depth + 1)),
            }
        }
        deepest
    }

    /// Every rule of the tree, in document order.
    pub fn rules(&self) -> Vec<&Rule> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            match node {
                ConditionNode::Rule(r) => out.push(r),
                ConditionNode::Group(g) => stack.extend(g.rules.iter().rev()),
                ConditionNode::Not(n) => stack.push(&n.not),
            }
        }
        out
    }
}
