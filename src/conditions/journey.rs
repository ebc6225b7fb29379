//! A journey's conditions (a branch's `when`, a wait's `conditions`), judged once when
//! their step's turn comes.
//!
//! They are not part of the compiled workflow set: they read the run's own facts
//! (`steps.*`, `trigger.*`) and may compare two fields (`"value": {"field": path}`), so
//! each judgement compiles its tree with that run's values in place. That costs
//! microseconds, once per branch taken or awaited event seen, never per event planned.

use super::ast::{ConditionNode, Group, Match, Not};
use super::compile::{compile, CompileError, Limits};
use super::eval::{evaluate, explain as explain_node, Trace};
use super::field::{Facts, FieldPath, FieldTable};
use serde_json::Value;

/// The other field of a field-to-field rule's value (`{"field": "trigger.transaction.id"}`).
pub fn field_value(value: &Value) -> Option<&str> {
    match value.as_object() {
        Some(o) if o.len() == 1 => o.get("field").and_then(Value::as_str),
        _ => None,
    }
}

/// Whether `node` holds for `facts`. A field-to-field rule whose other field is missing
/// does not hold.
pub fn holds(node: &ConditionNode, facts: Facts<'_>, limits: &Limits) -> Result<bool, CompileError> {
    let node = with_values(node, &facts);
    let mut table = FieldTable::default();
    let compiled = compile(Some(&node), &mut table, limits)?;
    Ok(evaluate(&compiled, &mut table.resolver(facts)))
}

/// The trace of `node` for `facts` (what the dry run shows of a branch path), with
/// field-to-field values read as [`holds`] reads them.
pub fn explain(node: &ConditionNode, facts: Facts<'_>, limits: &Limits) -> Result<Trace, CompileError> {
    let node = with_values(node, &facts);
    let mut table = FieldTable::default();
    let compiled = compile(Some(&node), &mut table, limits)?;
    Ok(explain_node(&compiled, &mut table.resolver(facts)))
}

/// Whether `node` reads a step's result (`steps.*`, as a field or a field-to-field
/// value): what a dry run, which runs no step, cannot know.
pub fn reads_steps(node: &ConditionNode) -> bool {
    let steps = |path: &str| path.starts_with("steps.");
    match node {
        ConditionNode::Rule(rule) => steps(&rule.field) || rule.value.as_ref().and_then(field_value).is_some_and(steps),
        ConditionNode::Group(group) => group.rules.iter().any(reads_steps),
        ConditionNode::Not(not) => reads_steps(&not.not),
    }
}

/// `node` with every field-to-field value replaced by the other field's value in `facts`.
fn with_values(node: &ConditionNode, facts: &Facts<'_>) -> ConditionNode {
    match node {
        ConditionNode::Rule(rule) => match rule.value.as_ref().and_then(field_value) {
            None => node.clone(),
            Some(other) => match FieldPath::parse(other).ok().and_then(|p| p.resolve(facts)) {
                Some(value) => {
                    let mut rule = rule.clone();
                    rule.value = Some(value.clone());
                    ConditionNode::Rule(rule)
                }
                None => never(),
            },
        },
        ConditionNode::Group(group) => ConditionNode::Group(Group {
            match_: group.match_,
            rules: group.rules.iter().map(|n| with_values(n, facts)).collect(),
        }),
        ConditionNode::Not(not) => ConditionNode::Not(Not {
            not: Box::new(with_values(&not.not, facts)),
        }),
    }
}

/// A node that never holds: not (all of nothing).
fn never() -> ConditionNode {
    ConditionNode::Not(Not {
        not: Box::new(ConditionNode::Group(Group {
            match_: Match::All,
            rules: Vec::new(),
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::{Journey, Operator, Rule};
    use crate::envelope::EventEnvelope;
    use serde_json::{json, Map};

    fn event(data: Value) -> EventEnvelope {
        EventEnvelope::from_value(json!({
            "id": "e", "type": "customer.deposited", "customer_id": 1, "data": data
        }))
        .expect("an envelope")
    }

    fn rule(field: &str, operator: Operator, other: &str) -> ConditionNode {
        ConditionNode::Rule(Rule {
            field: field.to_owned(),
            operator,
            value: Some(json!({ "field": other })),
        })
    }

    #[test]
    fn a_field_to_field_rule_compares_the_awaited_event_with_the_trigger() {
        let trigger = event(json!({"transaction": {"id": "t-1"}}));
        let steps = Map::new();
        let customer = Map::new();
        let rule = rule("transaction.id", Operator::Eq, "trigger.transaction.id");
        let judge = |awaited: &EventEnvelope| {
            let facts = Facts {
                journey: Some(Journey {
                    trigger: &trigger,
                    steps: &steps,
                }),
                ..Facts::new(awaited, &customer)
            };
            holds(&rule, facts, &Limits::default()).expect("compiles")
        };
        assert!(judge(&event(json!({"transaction": {"id": "t-1"}}))));
        assert!(!judge(&event(json!({"transaction": {"id": "t-2"}}))));
    }

    #[test]
    fn a_missing_other_field_never_holds_even_under_not_equal() {
        let trigger = event(json!({}));
        let steps = Map::new();
        let customer = Map::new();
        let rule = rule("event.amount", Operator::Neq, "steps.ask.response.amount");
        let awaited = event(json!({"amount": 5}));
        let facts = Facts {
            journey: Some(Journey {
                trigger: &trigger,
                steps: &steps,
            }),
            ..Facts::new(&awaited, &customer)
        };
        assert!(!holds(&rule, facts, &Limits::default()).expect("compiles"));
    }
}
