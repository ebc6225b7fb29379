//! Rendering a parsed template: each node once, in order, into a buffer that refuses to
//! grow past [`MAX_OUTPUT`]. Nothing is repeated and nothing is stored between nodes, so
//! the work is one pass over the nodes plus the values they read ([`Budget`]).

use super::ast::{Base, Comparison, Condition, Expr, Node, Segment};
use super::value::{Budget, Val};
use super::{Fail, MAX_OUTPUT};
use serde_json::Value;
use std::cmp::Ordering;

pub(crate) fn render(nodes: &[Node], context: &Value) -> Result<String, Fail> {
    let mut r = Renderer {
        context,
        out: String::new(),
        budget: Budget::default(),
    };
    r.nodes(nodes)?;
    Ok(r.out)
}

struct Renderer<'c> {
    context: &'c Value,
    out: String,
    budget: Budget,
}

impl<'c> Renderer<'c> {
    /// Recursion here follows `if` nesting, which the parser caps.
    fn nodes<'t: 'c>(&mut self, nodes: &'t [Node]) -> Result<(), Fail> {
        for node in nodes {
            match node {
                Node::Text(text) => self.write(text)?,
                Node::Substitute(expr) => {
                    let value = self.eval(expr)?;
                    let text = self.budget.text(&value, expr.at)?;
                    self.write(&text)?;
                }
                Node::If { branches, otherwise } => {
                    let mut chosen = otherwise;
                    for branch in branches {
                        if self.holds(&branch.condition)? {
                            chosen = &branch.body;
                            break;
                        }
                    }
                    self.nodes(chosen)?;
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, text: &str) -> Result<(), Fail> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return Err(Fail::OutputTooLong);
        }
        self.out.push_str(text);
        Ok(())
    }

    fn eval<'t: 'c>(&mut self, expr: &'t Expr) -> Result<Val<'c>, Fail> {
        let mut value = match &expr.base {
            Base::Literal(v) => Val::Json(v),
            Base::Path(segments) => lookup(self.context, segments),
        };
        for (at, filter) in &expr.filters {
            value = filter.apply(value, &mut self.budget, *at)?;
        }
        Ok(value)
    }

    /// Recursion here follows parentheses and `not`, which the parser caps.
    fn holds<'t: 'c>(&mut self, condition: &'t Condition) -> Result<bool, Fail> {
        Ok(match condition {
            Condition::Truthy(expr) => self.eval(expr)?.truthy(),
            Condition::Not(inner) => !self.holds(inner)?,
            Condition::All(all) => {
                for c in all {
                    if !self.holds(c)? {
                        return Ok(false);
                    }
                }
                true
            }
            Condition::Any(any) => {
                for c in any {
                    if self.holds(c)? {
                        return Ok(true);
                    }
                }
                false
            }
            Condition::Compare(left, op, right) => {
                let l = self.eval(left)?;
                let r = self.eval(right)?;
                let ordering = self.compare(&l, &r, left.at)?;
                match op {
                    Comparison::Eq => ordering == Some(Ordering::Equal),
                    Comparison::Ne => ordering != Some(Ordering::Equal),
                    Comparison::Lt => ordering == Some(Ordering::Less),
                    Comparison::Gt => ordering == Some(Ordering::Greater),
                    Comparison::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
                    Comparison::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
                }
            }
        })
    }

    /// How two values order, as the condition language compares them: as numbers when both
    /// are numbers (or text that reads as one), missing equals none, booleans only equal
    /// booleans, anything else as its text. `None`: they do not order (neither equal).
    fn compare(&mut self, l: &Val<'_>, r: &Val<'_>, at: usize) -> Result<Option<Ordering>, Fail> {
        if l.is_absent() || r.is_absent() {
            return Ok((l.is_absent() && r.is_absent()).then_some(Ordering::Equal));
        }
        if let (Some(a), Some(b)) = (l.number(), r.number()) {
            return Ok(a.partial_cmp(&b));
        }
        match (l, r) {
            (Val::Json(Value::Bool(a)), Val::Json(Value::Bool(b))) => Ok(Some(a.cmp(b))),
            (Val::Json(Value::Bool(_)), _) | (_, Val::Json(Value::Bool(_))) => Ok(None),
            _ if l.is_text() && r.is_text() => {
                let a = self.budget.text(l, at)?;
                let b = self.budget.text(r, at)?;
                Ok(Some(a.as_ref().cmp(b.as_ref())))
            }
            // A list, an object or a number against something else: equal only as text.
            _ => {
                let a = self.budget.text(l, at)?;
                let b = self.budget.text(r, at)?;
                Ok((a == b).then_some(Ordering::Equal))
            }
        }
    }
}

/// Follows `segments` from the context's root; a step that leads nowhere is missing, so
/// `customer.address.city` on a customer without an address renders empty.
fn lookup<'c>(context: &'c Value, segments: &[Segment]) -> Val<'c> {
    let mut value = context;
    for segment in segments {
        let next = match (segment, value) {
            (Segment::Key(k), Value::Object(map)) => map.get(k),
            (Segment::Index(i), Value::Array(items)) => items.get(*i),
            (Segment::Index(i), Value::Object(map)) => map.get(&i.to_string()),
            (Segment::Key(k), Value::Array(items)) => k.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => value = v,
            None => return Val::Missing,
        }
    }
    Val::Json(value)
}
