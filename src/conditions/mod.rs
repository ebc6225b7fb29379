//! Conditions: the source tree ([`ast`]), its operators, field references, the compiler and
//! the evaluator, and the form plans run: each rule's test specialised ([`check`]) and each
//! condition flattened into a program ([`program`]). Pure: no I/O, no actors.

pub mod ast;
pub mod check;
pub mod compile;
pub mod eval;
pub mod field;
pub mod journey;
pub mod operator;
pub mod program;

pub use ast::{ConditionNode, Group, Match, Not, Rule};
pub use compile::{compile, CompileError, Limits, Node, Test};
pub use eval::{evaluate, explain, may_hold, Trace};
pub use field::{Facts, FieldPath, FieldPathError, FieldTable, Journey, Namespace, Resolver, Slot};
pub use journey::{field_value, holds, reads_steps};
pub use operator::Operator;
pub use program::Program;
