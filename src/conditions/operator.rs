//! The 16 comparison operators a rule can use.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a rule compares a field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    /// `[lo, hi]`, both ends included.
    Between,
    In,
    NotIn,
    /// Substring of a string, or element of a list.
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Regex,
    /// Missing, null, `""` or `[]`.
    IsEmpty,
    IsNotEmpty,
}

impl Operator {
    pub const ALL: [Operator; 16] = [
        Operator::Eq,
        Operator::Neq,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::Between,
        Operator::In,
        Operator::NotIn,
        Operator::Contains,
        Operator::NotContains,
        Operator::StartsWith,
        Operator::EndsWith,
        Operator::Regex,
        Operator::IsEmpty,
        Operator::IsNotEmpty,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Between => "between",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Contains => "contains",
            Operator::NotContains => "not_contains",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::Regex => "regex",
            Operator::IsEmpty => "is_empty",
            Operator::IsNotEmpty => "is_not_empty",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// What a user reads in the builder's operator list.
    pub fn label(self) -> &'static str {
        match self {
            Operator::Eq => "equals",
            Operator::Neq => "does not equal",
            Operator::Gt => "greater than",
            Operator::Gte => "greater than or equal to",
            Operator::Lt => "less than",
            Operator::Lte => "less than or equal to",
            Operator::Between => "between (inclusive)",
            Operator::In => "is one of",
            Operator::NotIn => "is none of",
            Operator::Contains => "contains",
            Operator::NotContains => "does not contain",
            Operator::StartsWith => "starts with",
            Operator::EndsWith => "ends with",
            Operator::Regex => "matches regex",
            Operator::IsEmpty => "is empty",
            Operator::IsNotEmpty => "is not empty",
        }
    }

    /// Whether the rule carries a `value`.
    pub fn takes_value(self) -> bool {
        !matches!(self, Operator::IsEmpty | Operator::IsNotEmpty)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for op in Operator::ALL {
            assert_eq!(Operator::from_name(op.name()), Some(op));
            assert_eq!(serde_json::to_value(op).unwrap(), op.name());
        }
        assert_eq!(Operator::from_name("like"), None);
    }
}
