//! The output bound, computed from the template alone: what docs/security.md states and
//! tests/properties.rs checks against real renderings.

use super::ast::{Base, Expr, Node};
use super::value::{Budget, Val};
use super::{Template, TemplateError, MAX_OUTPUT, MAX_VALUE_LEN};

/// The most bytes `source` can render to when no value of the context is longer than
/// `max_value_len` bytes as text (a list or an object as its JSON):
///
/// `min(MAX_OUTPUT, literal text + Σ over substitutions of min(MAX_VALUE_LEN, f(v)))`
///
/// where `v` is `max_value_len` for a field and the literal's own text length for a
/// literal, `f` applies each filter's growth (`Filter::bound`) in order, and an `if` block
/// counts its largest branch. So at most `literal text + substitutions × MAX_VALUE_LEN`,
/// and never over `MAX_OUTPUT`.
pub fn output_bound(source: &str, max_value_len: usize) -> Result<usize, TemplateError> {
    let template = Template::parse(source)?;
    Ok(sum(&template.nodes, max_value_len).min(MAX_OUTPUT))
}

fn sum(nodes: &[Node], max_value_len: usize) -> usize {
    nodes
        .iter()
        .map(|node| match node {
            Node::Text(text) => text.len(),
            Node::Substitute(expr) => substitution(expr, max_value_len),
            Node::If { branches, otherwise } => branches
                .iter()
                .map(|b| sum(&b.body, max_value_len))
                .chain([sum(otherwise, max_value_len)])
                .max()
                .unwrap_or(0),
        })
        .fold(0, usize::saturating_add)
}

fn substitution(expr: &Expr, max_value_len: usize) -> usize {
    let base = match &expr.base {
        Base::Path(_) => max_value_len,
        // A literal renders as its JSON text (a string as itself); it is short, and not
        // charged against anything a rendering could run out of.
        Base::Literal(v) => Budget::default()
            .text(&Val::Json(v), 0)
            .map_or(MAX_VALUE_LEN, |t| t.len()),
    };
    expr.filters
        .iter()
        .fold(base.min(MAX_VALUE_LEN), |v, (_, f)| f.bound(v).min(MAX_VALUE_LEN))
}
