//! What a parsed template is. Every node either copies its literal text or substitutes one
//! value; there is no node that repeats, stores or combines values, which is what makes
//! the output bound in [`super::bound`] hold.

use super::filters::Filter;
use serde_json::Value;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Literal text (after `-` whitespace control), raw blocks included.
    Text(String),
    /// `{{ expr }}`.
    Substitute(Expr),
    /// `{% if %}` with its `elif`s, then the `else` (empty when there is none).
    If {
        branches: Vec<Branch>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub condition: Condition,
    pub body: Vec<Node>,
}

/// A value and the filters it goes through, left to right.
#[derive(Debug, Clone)]
pub(crate) struct Expr {
    /// Byte offset in the source, for errors at render time.
    pub at: usize,
    pub base: Base,
    pub filters: Vec<(usize, Filter)>,
}

#[derive(Debug, Clone)]
pub(crate) enum Base {
    /// A field of the context, `customer.address.city` or `event.items[0]`.
    Path(Vec<Segment>),
    /// A string, number, `true`, `false` or `none` written in the template.
    Literal(Value),
}

#[derive(Debug, Clone)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Segment::Key(k) => f.write_str(k),
            Segment::Index(i) => write!(f, "{i}"),
        }
    }
}

/// The condition of an `if` or `elif`. `and` and `or` are flat lists, so a long chain is
/// not a deep tree; only parentheses and `not` nest, up to [`super::MAX_NESTING`].
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    /// True unless missing, none, false, zero, empty text, an empty list or object.
    Truthy(Expr),
    Compare(Expr, Comparison, Expr),
    Not(Box<Condition>),
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}
