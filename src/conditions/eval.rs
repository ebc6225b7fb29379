//! Evaluates compiled conditions against resolved fields.
//!
//! Semantics, in one place:
//! - a missing or null field makes every operator false except `is_empty`;
//! - numbers compare as numbers (`1000` equals `1000.0`; integers exactly), and a field
//!   holding a numeric string (`"1500.00"`, common for money) compares as that number;
//! - `neq`, `not_in` and `not_contains` are the negations of `eq`, `in` and `contains` on a
//!   present value, so a value of another type is "not equal";
//! - `contains` is a substring test on strings and an element test on lists;
//! - ordering operators on a timestamp bound compare instants (RFC 3339 values).

use super::ast::Match;
use super::compile::{Bound, CompiledRule, Node, Num, Scalar, Test};
use super::field::Resolver;
use super::operator::Operator;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;

/// Evaluates `node`, short-circuiting groups.
pub fn evaluate(node: &Node, fields: &mut Resolver<'_, '_>) -> bool {
    match node {
        Node::True => true,
        Node::Rule(rule) => fields.rule(rule.id),
        Node::All(children) => children.iter().all(|c| evaluate(c, fields)),
        Node::Any(children) => children.iter().any(|c| evaluate(c, fields)),
        Node::Not(inner) => !evaluate(inner, fields),
    }
}

/// Whether `node` can hold whatever the customer's fields are: false only when rules on the
/// event alone already decide it false (three-valued: a customer rule is unknown). Lets
/// the matcher drop an event that no workflow can match before any database access.
pub fn may_hold(node: &Node, fields: &mut Resolver<'_, '_>) -> bool {
    decide(node, fields) != Some(false)
}

fn decide(node: &Node, fields: &mut Resolver<'_, '_>) -> Option<bool> {
    match node {
        Node::True => Some(true),
        Node::Rule(rule) => fields.rule_without_customer(rule.id, rule.slot),
        Node::All(children) => {
            let mut all = Some(true);
            for child in children.iter() {
                match decide(child, fields) {
                    Some(false) => return Some(false),
                    None => all = None,
                    Some(true) => {}
                }
            }
            all
        }
        Node::Any(children) => {
            let mut any = Some(false);
            for child in children.iter() {
                match decide(child, fields) {
                    Some(true) => return Some(true),
                    None => any = None,
                    Some(false) => {}
                }
            }
            any
        }
        Node::Not(inner) => decide(inner, fields).map(|v| !v),
    }
}

/// One node of an explanation: its result, and for rules the value the rule saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Trace {
    Rule {
        field: String,
        operator: Operator,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
        /// The field's value at evaluation time; null when missing.
        saw: Value,
        /// Set when the field was absent, which `saw: null` alone cannot tell from null.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        missing: bool,
        result: bool,
    },
    Group {
        #[serde(rename = "match")]
        match_: Match,
        result: bool,
        rules: Vec<Trace>,
    },
    Not {
        result: bool,
        not: Box<Trace>,
    },
    /// No conditions.
    Always {
        result: bool,
    },
}

impl Trace {
    pub fn result(&self) -> bool {
        match self {
            Trace::Rule { result, .. }
            | Trace::Group { result, .. }
            | Trace::Not { result, .. }
            | Trace::Always { result } => *result,
        }
    }
}

/// Evaluates every node (no short-circuit, so the trace shows every rule) and records what
/// each saw. Gives the same result as [`evaluate`].
pub fn explain(node: &Node, fields: &mut Resolver<'_, '_>) -> Trace {
    match node {
        Node::True => Trace::Always { result: true },
        Node::Rule(rule) => explain_rule(rule, fields),
        Node::All(children) | Node::Any(children) => {
            let rules: Vec<Trace> = children.iter().map(|c| explain(c, fields)).collect();
            let (match_, result) = match node {
                Node::All(_) => (Match::All, rules.iter().all(Trace::result)),
                _ => (Match::Any, rules.iter().any(Trace::result)),
            };
            Trace::Group { match_, result, rules }
        }
        Node::Not(inner) => {
            let inner = explain(inner, fields);
            Trace::Not {
                result: !inner.result(),
                not: Box::new(inner),
            }
        }
    }
}

fn explain_rule(rule: &CompiledRule, fields: &mut Resolver<'_, '_>) -> Trace {
    let seen = fields.get(rule.slot);
    Trace::Rule {
        field: rule.source.field.clone(),
        operator: rule.source.operator,
        value: rule.source.value.clone(),
        saw: seen.cloned().unwrap_or(Value::Null),
        missing: seen.is_none(),
        result: fields.rule(rule.id),
    }
}

/// Applies one test to a field's value.
#[inline]
pub fn test(test: &Test, field: Option<&Value>) -> bool {
    let value = match field {
        None | Some(Value::Null) => return matches!(test, Test::IsEmpty),
        Some(v) => v,
    };
    match test {
        Test::IsEmpty => is_empty(value),
        Test::IsNotEmpty => !is_empty(value),
        Test::Eq(c) => equals(value, c),
        Test::Neq(c) => !equals(value, c),
        Test::Gt(b) => compare(value, b) == Some(Ordering::Greater),
        Test::Gte(b) => matches!(compare(value, b), Some(Ordering::Greater | Ordering::Equal)),
        Test::Lt(b) => compare(value, b) == Some(Ordering::Less),
        Test::Lte(b) => matches!(compare(value, b), Some(Ordering::Less | Ordering::Equal)),
        Test::Between(lo, hi) => {
            matches!(compare(value, lo), Some(Ordering::Greater | Ordering::Equal))
                && matches!(compare(value, hi), Some(Ordering::Less | Ordering::Equal))
        }
        Test::In(set) => set.iter().any(|c| equals(value, c)),
        Test::NotIn(set) => !set.iter().any(|c| equals(value, c)),
        Test::Contains(c) => contains(value, c),
        Test::NotContains(c) => !contains(value, c),
        Test::StartsWith(p) => value.as_str().is_some_and(|s| s.starts_with(&**p)),
        Test::EndsWith(p) => value.as_str().is_some_and(|s| s.ends_with(&**p)),
        Test::Regex(re) => value.as_str().is_some_and(|s| re.is_match(s)),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn equals(value: &Value, constant: &Scalar) -> bool {
    match (constant, value) {
        (Scalar::Str(c), Value::String(s)) => **c == **s,
        (Scalar::Bool(c), Value::Bool(b)) => c == b,
        (Scalar::Num(c), v) => cmp_num(v, c) == Some(Ordering::Equal),
        _ => false,
    }
}

fn contains(value: &Value, constant: &Scalar) -> bool {
    match (value, constant) {
        (Value::String(s), Scalar::Str(c)) => s.contains(&**c),
        (Value::Array(items), c) => items.iter().any(|i| equals(i, c)),
        _ => false,
    }
}

fn compare(value: &Value, bound: &Bound) -> Option<Ordering> {
    match bound {
        Bound::Num(n) => cmp_num(value, n),
        Bound::Time(t) => cmp_time(value, t),
    }
}

/// Compares a field value with a number constant; `None` when the value is not a number
/// (nor a string holding a finite one).
#[inline]
pub(super) fn cmp_num(value: &Value, constant: &Num) -> Option<Ordering> {
    match value {
        Value::Number(n) => {
            if let (Some(a), Some(b)) = (n.as_i64(), constant.int) {
                return Some(a.cmp(&b));
            }
            n.as_f64()?.partial_cmp(&constant.float)
        }
        Value::String(s) => {
            let f = s.trim().parse::<f64>().ok().filter(|f| f.is_finite())?;
            f.partial_cmp(&constant.float)
        }
        _ => None,
    }
}

fn cmp_time(value: &Value, constant: &DateTime<Utc>) -> Option<Ordering> {
    let t = DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
    Some(t.with_timezone(&Utc).cmp(constant))
}
