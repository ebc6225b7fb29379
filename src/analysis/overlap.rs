//! Can two condition trees hold for the same event? A conservative answer: "no" only when
//! it is proven, "maybe" otherwise.
//!
//! Each tree is summarised by what it *requires*: the equality (`eq`, `in`) and numeric
//! range (`gt`, `gte`, `lt`, `lte`, `between`) rules reached from the root through `all`
//! groups only. Rules under `any` or `not`, and every other operator, require nothing the
//! summary can use, so they never make two trees look disjoint. Two trees are disjoint
//! when, on some field written the same way in both, their requirements together admit no
//! value: `eq "gold"` and `in ["silver", "bronze"]`, or `gte 1000` and `lt 500`. The
//! comparison follows the evaluator (src/conditions/eval.rs): a number constant also
//! equals a string holding that number, and a boolean equals only a boolean.

use crate::conditions::{ConditionNode, Match, Operator};
use serde_json::Value;
use std::collections::BTreeMap;

/// What a condition tree requires of single fields, by field as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    fields: BTreeMap<String, Vec<Need>>,
}

/// One requirement on a field.
#[derive(Debug, Clone, PartialEq)]
enum Need {
    /// Equal to one of these constants (numbers, strings or booleans).
    OneOf(Vec<Value>),
    /// A number (or a string holding one) inside this range.
    Range(Range),
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Range {
    /// `(bound, inclusive)`
    lo: Option<(f64, bool)>,
    hi: Option<(f64, bool)>,
}

impl Range {
    fn contains(&self, x: f64) -> bool {
        let above = self.lo.is_none_or(|(lo, inc)| if inc { x >= lo } else { x > lo });
        let below = self.hi.is_none_or(|(hi, inc)| if inc { x <= hi } else { x < hi });
        above && below
    }

    fn intersect(self, other: Range) -> Range {
        let lo = match (self.lo, other.lo) {
            (Some(a), Some(b)) => Some(if a.0 > b.0 || (a.0 == b.0 && !a.1) { a } else { b }),
            (a, b) => a.or(b),
        };
        let hi = match (self.hi, other.hi) {
            (Some(a), Some(b)) => Some(if a.0 < b.0 || (a.0 == b.0 && !a.1) { a } else { b }),
            (a, b) => a.or(b),
        };
        Range { lo, hi }
    }

    fn is_empty(&self) -> bool {
        match (self.lo, self.hi) {
            (Some((lo, lo_inc)), Some((hi, hi_inc))) => lo > hi || (lo == hi && !(lo_inc && hi_inc)),
            _ => false,
        }
    }
}

impl Requirements {
    /// The requirements of a tree (`None` = always true: no requirement).
    pub fn of(tree: Option<&ConditionNode>) -> Self {
        let mut out = Self::default();
        // Iterative: trees are bounded by the validator's depth limit, but a walk that
        // cannot overflow costs nothing.
        let mut stack: Vec<&ConditionNode> = tree.into_iter().collect();
        while let Some(node) = stack.pop() {
            match node {
                ConditionNode::Group(g) if g.match_ == Match::All => stack.extend(g.rules.iter()),
                // A one-branch `any` requires what its branch requires.
                ConditionNode::Group(g) if g.rules.len() == 1 => stack.extend(g.rules.iter()),
                ConditionNode::Group(_) | ConditionNode::Not(_) => {}
                ConditionNode::Rule(rule) => {
                    if let Some(need) = need(rule.operator, rule.value.as_ref()) {
                        out.fields.entry(rule.field.clone()).or_default().push(need);
                    }
                }
            }
        }
        out
    }

    /// Facts known of an event: `field` equals `value`.
    pub fn equal(mut self, field: &str, value: Value) -> Self {
        if is_scalar(&value) {
            self.fields
                .entry(field.to_owned())
                .or_default()
                .push(Need::OneOf(vec![value]));
        }
        self
    }

    /// Whether no event can meet both `self` and `other`, proven on one field; the field
    /// is returned to explain it.
    pub fn disjoint_from(&self, other: &Requirements) -> Option<&str> {
        self.fields.iter().find_map(|(field, mine)| {
            let theirs = other.fields.get(field)?;
            let all: Vec<&Need> = mine.iter().chain(theirs).collect();
            (!satisfiable(&all)).then_some(field.as_str())
        })
    }

    /// Whether the tree alone can never hold (e.g. `eq 1` and `eq 2` under one `all`).
    pub fn impossible(&self) -> bool {
        self.fields
            .values()
            .any(|needs| !satisfiable(&needs.iter().collect::<Vec<_>>()))
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

fn need(operator: Operator, value: Option<&Value>) -> Option<Need> {
    let value = value?;
    let bound = |inclusive: bool| number(value).map(|b| (b, inclusive));
    match operator {
        Operator::Eq => is_scalar(value).then(|| Need::OneOf(vec![value.clone()])),
        Operator::In => {
            let items = value.as_array()?;
            items.iter().all(is_scalar).then(|| Need::OneOf(items.clone()))
        }
        Operator::Gt => Some(Need::Range(Range {
            lo: Some(bound(false)?),
            hi: None,
        })),
        Operator::Gte => Some(Need::Range(Range {
            lo: Some(bound(true)?),
            hi: None,
        })),
        Operator::Lt => Some(Need::Range(Range {
            lo: None,
            hi: Some(bound(false)?),
        })),
        Operator::Lte => Some(Need::Range(Range {
            lo: None,
            hi: Some(bound(true)?),
        })),
        Operator::Between => {
            let [lo, hi] = value.as_array()?.as_slice() else {
                return None;
            };
            Some(Need::Range(Range {
                lo: Some((number(lo)?, true)),
                hi: Some((number(hi)?, true)),
            }))
        }
        _ => None,
    }
}

/// Whether one field value can equal both constants (as the evaluator compares them).
fn can_equal_both(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(_), Value::Number(_)) => number(a) == number(b),
        // The value "5" equals both "5" and 5.
        (Value::String(s), n @ Value::Number(_)) | (n @ Value::Number(_), Value::String(s)) => {
            s.trim().parse::<f64>().ok() == number(n)
        }
        _ => false,
    }
}

/// Whether a value equal to `constant` can lie in `range`.
fn can_be_in(constant: &Value, range: &Range) -> bool {
    match constant {
        Value::Number(_) => number(constant).is_some_and(|x| range.contains(x)),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .is_some_and(|x| range.contains(x)),
        _ => false,
    }
}

fn satisfiable(needs: &[&Need]) -> bool {
    let mut range: Option<Range> = None;
    let mut candidates: Option<Vec<Value>> = None;
    for need in needs {
        match need {
            Need::Range(r) => range = Some(range.map_or(*r, |acc| acc.intersect(*r))),
            Need::OneOf(values) => {
                candidates = Some(match candidates {
                    None => values.clone(),
                    Some(kept) => kept
                        .into_iter()
                        .filter(|k| values.iter().any(|v| can_equal_both(k, v)))
                        .collect(),
                });
            }
        }
    }
    if range.is_some_and(|r| r.is_empty()) {
        return false;
    }
    match (candidates, range) {
        (Some(c), Some(r)) => c.iter().any(|v| can_be_in(v, &r)),
        (Some(c), None) => !c.is_empty(),
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(value: Value) -> ConditionNode {
        crate::analysis::tests::node(value)
    }

    fn disjoint(a: Value, b: Value) -> bool {
        let (a, b) = (tree(a), tree(b));
        Requirements::of(Some(&a))
            .disjoint_from(&Requirements::of(Some(&b)))
            .is_some()
    }

    fn rule(field: &str, op: &str, value: Value) -> Value {
        json!({"field": field, "operator": op, "value": value})
    }

    #[test]
    fn equality_and_membership_on_one_field() {
        assert!(disjoint(
            rule("event.currency", "eq", json!("USD")),
            rule("event.currency", "eq", json!("EUR"))
        ));
        assert!(!disjoint(
            rule("event.currency", "eq", json!("USD")),
            rule("event.currency", "in", json!(["EUR", "USD"]))
        ));
        assert!(disjoint(
            rule("event.currency", "in", json!(["GBP"])),
            rule("event.currency", "in", json!(["EUR", "USD"]))
        ));
        // Different fields prove nothing.
        assert!(!disjoint(
            rule("event.currency", "eq", json!("USD")),
            rule("customer.country", "eq", json!("BR"))
        ));
        // "5" and 5 can be the same value.
        assert!(!disjoint(
            rule("event.x", "eq", json!("5")),
            rule("event.x", "eq", json!(5))
        ));
        assert!(disjoint(
            rule("event.x", "eq", json!(true)),
            rule("event.x", "eq", json!("true"))
        ));
    }

    #[test]
    fn ranges_meet_or_not() {
        assert!(disjoint(
            rule("event.amount", "gte", json!(1000)),
            rule("event.amount", "lt", json!(500))
        ));
        assert!(disjoint(
            rule("event.amount", "gte", json!(1000)),
            rule("event.amount", "lt", json!(1000))
        ));
        assert!(!disjoint(
            rule("event.amount", "gte", json!(1000)),
            rule("event.amount", "lte", json!(1000))
        ));
        assert!(disjoint(
            rule("event.amount", "between", json!([0, 99])),
            rule("event.amount", "gt", json!(99))
        ));
        assert!(disjoint(
            rule("event.amount", "eq", json!(50)),
            rule("event.amount", "gt", json!(100))
        ));
        assert!(!disjoint(
            rule("event.amount", "in", json!([50, 150])),
            rule("event.amount", "gt", json!(100))
        ));
    }

    #[test]
    fn only_what_all_groups_require_counts() {
        let all = json!({"match": "all", "rules": [rule("event.amount", "gte", json!(1000)), rule("customer.country", "eq", json!("BR"))]});
        let any = json!({"match": "any", "rules": [rule("event.amount", "lt", json!(10)), rule("customer.country", "eq", json!("AR"))]});
        let not = json!({"not": rule("customer.country", "eq", json!("BR"))});
        assert!(!disjoint(all.clone(), any));
        // `not` proves nothing either (conservative), though this pair cannot both hold.
        assert!(!disjoint(all.clone(), not));
        let other = json!({"match": "all", "rules": [{"match": "all", "rules": [rule("customer.country", "eq", json!("AR"))]}]});
        assert!(disjoint(all, other));
    }

    #[test]
    fn facts_of_an_emitted_event_meet_a_tree() {
        let wants_b = Requirements::of(Some(&tree(rule("event.new_status", "eq", json!("B")))));
        let emits_a = Requirements::default().equal("event.new_status", json!("A"));
        let emits_b = Requirements::default().equal("event.new_status", json!("B"));
        assert_eq!(wants_b.disjoint_from(&emits_a), Some("event.new_status"));
        assert_eq!(wants_b.disjoint_from(&emits_b), None);
    }
}
