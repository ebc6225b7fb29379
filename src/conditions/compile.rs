//! Compiles a condition tree into the immutable form the matcher evaluates: field paths
//! interned to slots, constants converted once (numbers, instants), regexes built once with
//! a size limit. The result is `Send + Sync` and shared by every event.

use super::ast::{ConditionNode, Match, Rule};
use super::field::{FieldPath, FieldPathError, FieldTable, RuleId, Slot};
use super::operator::Operator;
use crate::problem::json_type_name;
use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::{Number, Value};

/// Bounds that keep hostile definitions cheap to reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deepest nesting of groups and `not` accepted (a lone rule is depth 1). Clamped to
    /// [`Limits::DEPTH_CEILING`] so evaluation can never exhaust a thread's stack.
    pub max_condition_depth: usize,
    /// Most rules in one workflow.
    pub max_rules: usize,
    /// Most actions in one workflow.
    pub max_actions: usize,
    /// Longest regex pattern, in bytes.
    pub max_regex_len: usize,
    /// Compiled size limit of one regex, in bytes (the regex crate's `size_limit`).
    pub regex_size_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_condition_depth: 32,
            max_rules: 1_000,
            max_actions: 50,
            max_regex_len: 1_000,
            regex_size_limit: 256 * 1024,
        }
    }
}

impl Limits {
    /// Limits for definitions validated when they were saved (a stored version, a waiting
    /// run's conditions): the limits may have been lowered since, and what was accepted
    /// then must still load.
    pub fn saved() -> Self {
        Self {
            max_condition_depth: Self::DEPTH_CEILING,
            max_rules: usize::MAX,
            max_actions: usize::MAX,
            ..Self::default()
        }
    }

    /// No configuration may raise the depth past this: at a few hundred bytes a frame the
    /// recursive evaluator stays far inside the smallest (2 MiB) thread stack.
    pub const DEPTH_CEILING: usize = 1_000;

    pub fn max_depth(&self) -> usize {
        self.max_condition_depth.clamp(1, Self::DEPTH_CEILING)
    }
}

/// A number constant, keeping the integer form so large ids compare exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num {
    pub float: f64,
    pub int: Option<i64>,
}

impl Num {
    pub fn from_json(n: &Number) -> Option<Self> {
        Some(Self {
            float: n.as_f64().filter(|f| f.is_finite())?,
            int: n.as_i64(),
        })
    }
}

/// A constant compared for equality.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Num(Num),
    Str(Box<str>),
    Bool(bool),
}

impl Scalar {
    fn from_json(value: &Value) -> Result<Self, String> {
        match value {
            Value::Number(n) => Num::from_json(n)
                .map(Scalar::Num)
                .ok_or_else(|| "number out of range".to_owned()),
            Value::String(s) => Ok(Scalar::Str(s.as_str().into())),
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            other => Err(format!(
                "expected a number, string or boolean, got {}",
                json_type_name(other)
            )),
        }
    }
}

/// A bound of an ordering comparison: a number, or an instant for datetime fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Num(Num),
    Time(DateTime<Utc>),
}

impl Bound {
    fn from_json(value: &Value) -> Result<Self, String> {
        match value {
            Value::Number(n) => Num::from_json(n)
                .map(Bound::Num)
                .ok_or_else(|| "number out of range".to_owned()),
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Bound::Time(t.with_timezone(&Utc)))
                .map_err(|_| format!("expected a number or an RFC 3339 timestamp, got {s:?}")),
            other => Err(format!(
                "expected a number or an RFC 3339 timestamp, got {}",
                json_type_name(other)
            )),
        }
    }
}

/// What a rule checks, with its constant ready to compare.
#[derive(Debug, Clone)]
pub enum Test {
    Eq(Scalar),
    Neq(Scalar),
    Gt(Bound),
    Gte(Bound),
    Lt(Bound),
    Lte(Bound),
    Between(Bound, Bound),
    In(Box<[Scalar]>),
    NotIn(Box<[Scalar]>),
    Contains(Scalar),
    NotContains(Scalar),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Regex(Regex),
    IsEmpty,
    IsNotEmpty,
}

/// Why a rule's value cannot be compiled. The message is written for the operator who
/// typed the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl Test {
    /// Checks `value` against what `op` needs and prepares it. This is the one place a
    /// rule's value shape is decided; validation reports its errors.
    pub fn compile(op: Operator, value: Option<&Value>, limits: &Limits) -> Result<Self, ValueError> {
        let err = |m: String| ValueError(m);
        if !op.takes_value() {
            return match value {
                None | Some(Value::Null) => Ok(if op == Operator::IsEmpty {
                    Test::IsEmpty
                } else {
                    Test::IsNotEmpty
                }),
                Some(_) => Err(err(format!("{op} takes no value; remove \"value\""))),
            };
        }
        let value = match value {
            None | Some(Value::Null) => return Err(err(format!("{op} needs a value"))),
            Some(v) => v,
        };
        let list = |v: &Value| -> Result<Box<[Scalar]>, ValueError> {
            let items = v
                .as_array()
                .ok_or_else(|| err(format!("{op} needs a list of values, got {}", json_type_name(v))))?;
            if items.is_empty() {
                return Err(err(format!("{op} needs at least one value in the list")));
            }
            items.iter().map(|i| Scalar::from_json(i).map_err(err)).collect()
        };
        let text = |v: &Value| -> Result<Box<str>, ValueError> {
            v.as_str()
                .map(Box::from)
                .ok_or_else(|| err(format!("{op} needs a string, got {}", json_type_name(v))))
        };
        Ok(match op {
            Operator::Eq => Test::Eq(Scalar::from_json(value).map_err(err)?),
            Operator::Neq => Test::Neq(Scalar::from_json(value).map_err(err)?),
            Operator::Gt => Test::Gt(Bound::from_json(value).map_err(err)?),
            Operator::Gte => Test::Gte(Bound::from_json(value).map_err(err)?),
            Operator::Lt => Test::Lt(Bound::from_json(value).map_err(err)?),
            Operator::Lte => Test::Lte(Bound::from_json(value).map_err(err)?),
            Operator::Between => {
                let bounds = match value.as_array().map(Vec::as_slice) {
                    Some([lo, hi]) => (Bound::from_json(lo).map_err(err)?, Bound::from_json(hi).map_err(err)?),
                    _ => {
                        return Err(err(format!(
                            "between needs a list of two bounds [low, high], got {}",
                            shape(value)
                        )))
                    }
                };
                match bounds {
                    (Bound::Num(lo), Bound::Num(hi)) if lo.float > hi.float => {
                        return Err(err(format!("between bounds are reversed: {} > {}", lo.float, hi.float)))
                    }
                    (Bound::Time(lo), Bound::Time(hi)) if lo > hi => {
                        return Err(err(
                            "between bounds are reversed: the first timestamp is later".to_owned()
                        ))
                    }
                    (Bound::Num(_), Bound::Time(_)) | (Bound::Time(_), Bound::Num(_)) => {
                        return Err(err("between bounds must both be numbers or both timestamps".to_owned()))
                    }
                    (lo, hi) => Test::Between(lo, hi),
                }
            }
            Operator::In => Test::In(list(value)?),
            Operator::NotIn => Test::NotIn(list(value)?),
            Operator::Contains => Test::Contains(Scalar::from_json(value).map_err(err)?),
            Operator::NotContains => Test::NotContains(Scalar::from_json(value).map_err(err)?),
            Operator::StartsWith => Test::StartsWith(text(value)?),
            Operator::EndsWith => Test::EndsWith(text(value)?),
            Operator::Regex => {
                let pattern = text(value)?;
                if pattern.len() > limits.max_regex_len {
                    return Err(err(format!("regex is longer than {} bytes", limits.max_regex_len)));
                }
                let regex = regex::RegexBuilder::new(&pattern)
                    .size_limit(limits.regex_size_limit)
                    .dfa_size_limit(limits.regex_size_limit)
                    .build()
                    .map_err(|e| err(format!("invalid regex: {}", one_line(&e.to_string()))))?;
                Test::Regex(regex)
            }
            Operator::IsEmpty | Operator::IsNotEmpty => unreachable_value_free(op),
        })
    }
}

/// `is_empty` and `is_not_empty` return before the match above; kept total without a panic.
fn unreachable_value_free(op: Operator) -> Test {
    if op == Operator::IsEmpty {
        Test::IsEmpty
    } else {
        Test::IsNotEmpty
    }
}

fn shape(value: &Value) -> String {
    match value.as_array() {
        Some(items) => format!("a list of {}", items.len()),
        None => json_type_name(value).to_owned(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A compiled rule: its interned id (the test lives in the set's table, shared by every
/// workflow with the same rule) and, for traces, its field slot and source.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub id: RuleId,
    pub slot: Slot,
    pub source: Rule,
}

/// A compiled condition tree.
#[derive(Debug, Clone)]
pub enum Node {
    /// No conditions: always true.
    True,
    Rule(Box<CompiledRule>),
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
}

/// Why a validated tree could not be compiled (only on definitions that skipped validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("conditions are nested {depth} deep, more than the maximum of {max}")]
    TooDeep { depth: usize, max: usize },
    #[error("field {field:?}: {source}")]
    Field { field: String, source: FieldPathError },
    #[error("rule on {field:?}: {source}")]
    Value { field: String, source: ValueError },
}

/// Compiles `conditions` (`None` = always true), interning fields into `table`.
pub fn compile(
    conditions: Option<&ConditionNode>,
    table: &mut FieldTable,
    limits: &Limits,
) -> Result<Node, CompileError> {
    let Some(root) = conditions else { return Ok(Node::True) };
    let depth = root.depth();
    if depth > limits.max_depth() {
        return Err(CompileError::TooDeep {
            depth,
            max: limits.max_depth(),
        });
    }
    compile_node(root, table, limits)
}

fn compile_node(node: &ConditionNode, table: &mut FieldTable, limits: &Limits) -> Result<Node, CompileError> {
    Ok(match node {
        ConditionNode::Rule(rule) => {
            let path = FieldPath::parse(&rule.field).map_err(|source| CompileError::Field {
                field: rule.field.clone(),
                source,
            })?;
            let slot = table.intern(path);
            let id = table
                .intern_rule(slot, rule.operator, rule.value.as_ref(), || {
                    Test::compile(rule.operator, rule.value.as_ref(), limits)
                })
                .map_err(|source| CompileError::Value {
                    field: rule.field.clone(),
                    source,
                })?;
            Node::Rule(Box::new(CompiledRule {
                id,
                slot,
                source: rule.clone(),
            }))
        }
        ConditionNode::Group(group) => {
            let children = group
                .rules
                .iter()
                .map(|n| compile_node(n, table, limits))
                .collect::<Result<Box<[Node]>, _>>()?;
            match group.match_ {
                Match::All => Node::All(children),
                Match::Any if children.is_empty() => Node::True,
                Match::Any => Node::Any(children),
            }
        }
        ConditionNode::Not(not) => Node::Not(Box::new(compile_node(&not.not, table, limits)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile_err(op: Operator, value: Value) -> String {
        Test::compile(op, Some(&value), &Limits::default()).unwrap_err().0
    }

    #[test]
    fn value_shapes_are_checked_per_operator() {
        assert_eq!(
            compile_err(Operator::Between, json!([1])),
            "between needs a list of two bounds [low, high], got a list of 1"
        );
        assert_eq!(
            compile_err(Operator::Between, json!([5, 1])),
            "between bounds are reversed: 5 > 1"
        );
        assert_eq!(
            compile_err(Operator::In, json!("BR")),
            "in needs a list of values, got a string"
        );
        assert_eq!(
            compile_err(Operator::NotIn, json!([])),
            "not_in needs at least one value in the list"
        );
        assert_eq!(
            compile_err(Operator::Gte, json!("lots")),
            "expected a number or an RFC 3339 timestamp, got \"lots\""
        );
        assert_eq!(
            compile_err(Operator::StartsWith, json!(5)),
            "starts_with needs a string, got a number"
        );
        assert_eq!(
            compile_err(Operator::IsEmpty, json!(1)),
            "is_empty takes no value; remove \"value\""
        );
        assert!(compile_err(Operator::Regex, json!("(unclosed")).starts_with("invalid regex: "));
        assert_eq!(
            Test::compile(Operator::Eq, None, &Limits::default()).unwrap_err().0,
            "eq needs a value"
        );
    }

    #[test]
    fn regexes_have_a_size_limit() {
        let limits = Limits::default();
        let huge = "\\w{1000}".repeat(20);
        assert!(huge.len() <= limits.max_regex_len);
        assert!(compile_err(Operator::Regex, json!(huge)).contains("invalid regex"));
        assert!(compile_err(Operator::Regex, json!("a".repeat(2000))).contains("longer than"));
    }

    #[test]
    fn depth_is_checked_before_recursing() {
        let mut node = ConditionNode::Rule(Rule {
            field: "event.amount".into(),
            operator: Operator::IsEmpty,
            value: None,
        });
        for _ in 0..40 {
            node = ConditionNode::Not(super::super::ast::Not { not: Box::new(node) });
        }
        let err = compile(Some(&node), &mut FieldTable::default(), &Limits::default()).unwrap_err();
        assert_eq!(err, CompileError::TooDeep { depth: 41, max: 32 });
    }
}
