//! Text params are templates over the condition fields: `Hello {{customer.first_name}}`.
//!
//! A small language of our own rather than a general one (minijinja until issue 22): a
//! template author is not trusted with the engine's memory, and every general language we
//! tried to fence in kept a way to make a value grow (issue 16: `"x" * 100000000`; issue
//! 22: a loop variable re-bound through nested `for` loops, or a `list | string` filter
//! chain, doubling a string per level while printing only its length). Refusing forms one
//! at a time lost that race, so here the cost is bounded by what the language *has*:
//!
//! - `{{ path.to.field | filter | ... }}` substitutes one value from the context; filters
//!   take literal arguments only and each one's output size is a fixed function of its
//!   input size (`filters`);
//! - `{% if %}`/`{% elif %}`/`{% else %}`/`{% endif %}` choose text, `{% raw %}` keeps text
//!   as written, `{# ... #}` is a comment;
//! - nothing else: no loops, no variables, no macros, no operators that build values.
//!
//! So the rendered text is at most the literal text plus, per substitution, one value
//! passed through its filters, and no value is ever larger than [`MAX_VALUE_LEN`]. The
//! bound is [`output_bound`]; it and the work bound are written down in docs/security.md
//! ("Templates"). Every limit is enforced where a value is made (`value`, `filters`, the
//! output buffer in `render`), not guessed from the template's shape.
//!
//! Layout: `ast` (what a parsed template is), `parse` (the text and its tags), `lex` and
//! `expr` (expressions and conditions inside tags), `filters`, `value` (values and the
//! budget they are charged to), `render`, `bound` (the output bound).

mod ast;
mod bound;
mod expr;
mod filters;
mod lex;
mod parse;
mod render;
#[cfg(test)]
mod tests;
mod value;

pub use bound::output_bound;

use crate::conditions::Facts;
use serde_json::{Map, Value};

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 16 * 1024;

/// Longest rendered text, in bytes: an email body or a webhook field, with room to spare.
pub const MAX_OUTPUT: usize = 256 * 1024;

/// Longest text one value may have, in bytes: a field as read from the context (a list or
/// an object counts as its JSON text) and every filter's result. A longer one fails the
/// rendering; it is what makes a substitution's size independent of the event's.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Most bytes one rendering may read from fields and produce in filters, together. Output
/// is at most [`MAX_OUTPUT`], so this leaves sixteen times that for `if` comparisons and
/// filter chains; it bounds the time of a template that reads big values and prints little
/// (`{{ event.text | upper | truncate(1) }}` many times over).
pub const MAX_WORK: usize = 16 * MAX_OUTPUT;

/// Deepest nesting of `if` blocks, and of parentheses and `not` in a condition.
pub const MAX_NESTING: usize = 16;

/// Most parts in a field path (`customer.address.city` has three).
pub const MAX_PATH_LEN: usize = 16;

/// Where in a template something is, counted from 1; the column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` of `source` (a char boundary, or the end).
    fn of(source: &str, offset: usize) -> Position {
        let before = source.get(..offset).unwrap_or(source);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is longer than {MAX_TEMPLATE_LEN} bytes")]
    TooLong,
    #[error("invalid template at {at}: {message}")]
    Syntax { at: Position, message: String },
    /// A construct the language does not have (most of them came from minijinja, and could
    /// build unbounded values); the message names it and says what to write instead.
    #[error("template not allowed at {at}: {message}")]
    Forbidden { at: Position, message: String },
    #[error("template output is longer than {MAX_OUTPUT} bytes")]
    OutputTooLong,
    #[error("template failed to render at {at}: {message}")]
    Render { at: Position, message: String },
}

/// A failure inside the module, at a byte offset; [`Fail::locate`] turns the offset into a
/// line and column once, at the edge, so the parsers never count lines.
#[derive(Debug)]
pub(crate) enum Fail {
    Syntax(usize, String),
    Forbidden(usize, String),
    Render(usize, String),
    OutputTooLong,
}

impl Fail {
    fn locate(self, source: &str) -> TemplateError {
        let at = |offset| Position::of(source, offset);
        match self {
            Fail::Syntax(o, message) => TemplateError::Syntax { at: at(o), message },
            Fail::Forbidden(o, message) => TemplateError::Forbidden { at: at(o), message },
            Fail::Render(o, message) => TemplateError::Render { at: at(o), message },
            Fail::OutputTooLong => TemplateError::OutputTooLong,
        }
    }
}

/// A parsed template: immutable, rendered any number of times.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<ast::Node>,
}

impl Template {
    /// Parses `source`, refusing what the language does not have.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if source.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong);
        }
        let nodes = parse::parse(source).map_err(|e| e.locate(source))?;
        Ok(Template { nodes })
    }

    /// Renders with `context` (see [`context`]); positions in errors refer to `source`, the
    /// text this template was parsed from.
    fn render_in(&self, source: &str, context: &Value) -> Result<String, TemplateError> {
        render::render(&self.nodes, context).map_err(|e| e.locate(source))
    }
}

/// Checks a template at save time, and again before every rendering, so a template stored
/// before a rule existed (a minijinja `for` loop, say) fails its step instead of running.
pub fn check(source: &str) -> Result<(), TemplateError> {
    Template::parse(source).map(drop)
}

/// The variables a template sees: the same namespaces as conditions.
pub fn context(facts: &Facts<'_>) -> Value {
    let data = &facts.event.data;
    let part = |key: &str| data.get(key).cloned().unwrap_or(Value::Object(Map::new()));
    serde_json::json!({
        "event": data,
        "transaction": part("transaction"),
        "order": part("order"),
        "call": part("call"),
        "task": part("task"),
        "customer": facts.customer,
    })
}

/// Renders `source` with `context` (see [`context`]) into at most [`MAX_OUTPUT`] bytes.
pub fn render(source: &str, context: &Value) -> Result<String, TemplateError> {
    Template::parse(source)?.render_in(source, context)
}
