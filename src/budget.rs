//! What one user-sized request may spend: a backtest, a dry run or a validation compiles
//! and evaluates what the caller sends, so its cost grows with the body and the archive,
//! not with anything the engine chose. Style principle 12: the cost is bounded by
//! construction and the bound is written down (docs/security.md, "Heavy requests").
//!
//! Two budgets. The [`WorkBudget`] is checked before anything is compiled, from the raw
//! definitions ([`Tally`]): rules across the workflows, and the memory their regexes may
//! take, each regex charged what the regex crate lets it grow to. The time budget
//! ([`Deadline`]) is checked cooperatively between workflows and between events, on the
//! injected clock, so a run that is slow for reasons the work budget does not see (a large
//! archive, a slow disk) still ends.

use crate::clock::SharedClock;
use crate::conditions::Limits;
use crate::problem::Pointer;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

/// How much one request may ask the engine to compile and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkBudget {
    /// Most condition rules (conditions and exit rules) across the workflows judged.
    pub max_rules: usize,
    /// Most memory, in bytes, the distinct regexes of the workflows may compile to, each
    /// charged [`WorkBudget::regex_charge`].
    pub max_regex_bytes: usize,
    /// Most archived events one backtest reads.
    pub max_events: u64,
}

impl WorkBudget {
    /// What one distinct regex may cost: the regex crate caps its compiled program at
    /// `size_limit` and its lazy DFA cache at `dfa_size_limit`, both set to
    /// `limits.regex_size_limit` when a rule is compiled. Charging the cap rather than the
    /// real size makes the total a bound, whatever the patterns are.
    pub fn regex_charge(limits: &Limits) -> usize {
        limits.regex_size_limit.saturating_mul(2).max(1)
    }
}

/// Why a request was stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("time budget exceeded: the work ran past its {budget_ms} ms; judge fewer workflows or events")]
    Time { budget_ms: u64 },
    #[error("work budget exceeded: more than {max} rules across the workflows of one request")]
    Rules { max: usize, path: String },
    #[error(
        "work budget exceeded: {regexes} distinct regexes may compile to {bytes} bytes, more than the {max} one request may use"
    )]
    Regex {
        regexes: usize,
        bytes: usize,
        max: usize,
        path: String,
    },
    #[error("work budget exceeded: {asked} events asked for, at most {max} in one request")]
    Events { asked: u64, max: u64, path: String },
}

impl BudgetError {
    /// The JSON pointer of what crossed the budget, when it is in the request.
    pub fn path(&self) -> Option<&str> {
        match self {
            BudgetError::Time { .. } => None,
            BudgetError::Rules { path, .. } | BudgetError::Regex { path, .. } | BudgetError::Events { path, .. } => {
                Some(path)
            }
        }
    }

    /// The same error pointing at `at` instead: for a stored definition counted against
    /// the budget, the place in the request that named it.
    pub fn at(mut self, at: &str) -> Self {
        if let BudgetError::Rules { path, .. } | BudgetError::Regex { path, .. } | BudgetError::Events { path, .. } =
            &mut self
        {
            at.clone_into(path);
        }
        self
    }
}

/// When a request's time is up, on the injected clock. Cheap to check: one clock read.
#[derive(Clone)]
pub struct Deadline {
    clock: SharedClock,
    at: DateTime<Utc>,
    budget: Duration,
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("at", &self.at)
            .field("budget", &self.budget)
            .finish()
    }
}

impl Deadline {
    /// `budget` from the clock's now.
    pub fn after(clock: SharedClock, budget: Duration) -> Self {
        let at = clock.now() + chrono::Duration::from_std(budget).unwrap_or(chrono::Duration::MAX);
        Self { clock, at, budget }
    }

    /// An error once the time is up; called between workflows and between events.
    pub fn check(&self) -> Result<(), BudgetError> {
        if self.clock.now() > self.at {
            return Err(BudgetError::Time {
                budget_ms: u64::try_from(self.budget.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Ok(())
    }
}

/// The work of the definitions of one request, counted from their JSON before any is
/// validated or compiled: counting is linear in the body, compiling is what the budget
/// guards.
#[derive(Debug)]
pub struct Tally {
    budget: WorkBudget,
    charge: usize,
    rules: usize,
    regexes: HashSet<String>,
}

impl Tally {
    pub fn new(budget: WorkBudget, limits: &Limits) -> Self {
        Self {
            budget,
            charge: WorkBudget::regex_charge(limits),
            rules: 0,
            regexes: HashSet::new(),
        }
    }

    /// Counts the rules of one workflow definition found at `at`; an error names the rule
    /// that crossed the budget.
    pub fn add(&mut self, definition: &Value, at: &Pointer) -> Result<(), BudgetError> {
        if let Some(conditions) = definition.get("conditions") {
            self.walk(conditions, &at.key("conditions"))?;
        }
        if let Some(Value::Array(exits)) = definition.get("exit_when") {
            for (i, exit) in exits.iter().enumerate() {
                if let Some(conditions) = exit.get("conditions") {
                    self.walk(conditions, &at.key("exit_when").index(i).key("conditions"))?;
                }
            }
        }
        Ok(())
    }

    /// Rules counted so far.
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Recursion follows the document's nesting, which the JSON parser already bounds
    /// (serde_json refuses documents nested deeper than 128).
    fn walk(&mut self, node: &Value, at: &Pointer) -> Result<(), BudgetError> {
        let Value::Object(map) = node else { return Ok(()) };
        if let Some(Value::Array(rules)) = map.get("rules") {
            for (i, rule) in rules.iter().enumerate() {
                self.walk(rule, &at.key("rules").index(i))?;
            }
            return Ok(());
        }
        if let Some(inner) = map.get("not") {
            return self.walk(inner, &at.key("not"));
        }
        if !map.contains_key("field") && !map.contains_key("operator") {
            return Ok(());
        }
        self.rules += 1;
        if self.rules > self.budget.max_rules {
            return Err(BudgetError::Rules {
                max: self.budget.max_rules,
                path: at.as_str().to_owned(),
            });
        }
        if let (Some("regex"), Some(Value::String(pattern))) =
            (map.get("operator").and_then(Value::as_str), map.get("value"))
        {
            if !self.regexes.contains(pattern.as_str()) {
                self.regexes.insert(pattern.clone());
                let bytes = self.regexes.len().saturating_mul(self.charge);
                if bytes > self.budget.max_regex_bytes {
                    return Err(BudgetError::Regex {
                        regexes: self.regexes.len(),
                        bytes,
                        max: self.budget.max_regex_bytes,
                        path: at.key("value").as_str().to_owned(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::json;
    use std::sync::Arc;

    const BUDGET: WorkBudget = WorkBudget {
        max_rules: 3,
        max_regex_bytes: 2 * 1024 * 1024,
        max_events: 10,
    };

    fn rule(op: &str, value: &str) -> Value {
        json!({"field": "event.note", "operator": op, "value": value})
    }

    #[test]
    fn rules_are_counted_across_workflows_in_conditions_and_exit_rules() {
        let mut tally = Tally::new(BUDGET, &Limits::default());
        let one = json!({"conditions": {"match": "all", "rules": [rule("eq", "a"), {"not": rule("eq", "b")}]}});
        tally.add(&one, &Pointer::root().key("workflows").index(0)).unwrap();
        assert_eq!(tally.rules(), 2);
        let two = json!({"exit_when": [{"trigger_event": "x"}, {"trigger_event": "y", "conditions": {"match": "any", "rules": [rule("eq", "c"), rule("eq", "d")]}}]});
        let e = tally.add(&two, &Pointer::root().key("workflows").index(1)).unwrap_err();
        assert_eq!(e.path(), Some("/workflows/1/exit_when/1/conditions/rules/1"));
        assert!(e.to_string().starts_with("work budget exceeded"), "{e}");
    }

    #[test]
    fn each_distinct_regex_is_charged_its_cap_once() {
        // 256 KiB program + 256 KiB DFA cache each: four fit in 2 MiB, the fifth does not.
        let limits = Limits::default();
        assert_eq!(WorkBudget::regex_charge(&limits), 512 * 1024);
        let budget = WorkBudget {
            max_rules: 100,
            ..BUDGET
        };
        let mut tally = Tally::new(budget, &limits);
        let same: Vec<Value> = (0..10).map(|_| rule("regex", "^a+$")).collect();
        tally
            .add(
                &json!({"conditions": {"match": "any", "rules": same}}),
                &Pointer::root(),
            )
            .unwrap();
        let distinct: Vec<Value> = (0..5).map(|i| rule("regex", &format!("^a{i}$"))).collect();
        let e = tally
            .add(
                &json!({"conditions": {"match": "any", "rules": distinct}}),
                &Pointer::root(),
            )
            .unwrap_err();
        assert!(matches!(e, BudgetError::Regex { regexes: 5, .. }), "{e:?}");
        assert_eq!(e.path(), Some("/conditions/rules/3/value"));
    }

    #[test]
    fn the_deadline_follows_the_injected_clock() {
        let clock = ManualClock::new(DateTime::<Utc>::UNIX_EPOCH);
        let deadline = Deadline::after(Arc::new(clock.clone()), Duration::from_millis(500));
        assert!(deadline.check().is_ok());
        clock.advance(Duration::from_millis(500));
        assert!(deadline.check().is_ok(), "the budget itself is still inside");
        clock.advance(Duration::from_millis(1));
        assert_eq!(deadline.check(), Err(BudgetError::Time { budget_ms: 500 }));
    }
}
