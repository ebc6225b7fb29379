//! Field references (`event.amount`, `customer.country`) and how they resolve against an
//! event and a customer snapshot.
//!
//! A workflow set interns every distinct field path once into a [`FieldTable`], and every
//! distinct rule (field, operator, value) once too: rules refer to fields by slot and to
//! their test by rule id, and each evaluation resolves a slot and decides a rule at most
//! once, however many workflows share it. Operators copy conditions between workflows, so
//! the cost of an event follows the distinct rules of its trigger, not the workflow count,
//! and a regex shared by many workflows is compiled and held once.

use super::check::{Check, Seen};
use super::compile::Test;
use super::operator::Operator;
use crate::envelope::EventEnvelope;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Where a field's first segment points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// `event.x` = `data.x`
    Event,
    /// `transaction.x` = `data.transaction.x`
    Transaction,
    /// `order.x` = `data.order.x`
    Order,
    /// `call.x` = `data.call.x`
    Call,
    /// `task.x` = `data.task.x`
    Task,
    /// `customer.x` = the customer snapshot taken when the event's turn came.
    Customer,
    /// `steps.<name>.x` = what the named step of the run produced (journeys only).
    Steps,
    /// `trigger.x` = `data.x` of the run's triggering event, where `event` is another one
    /// (a wait's conditions; journeys only).
    Trigger,
}

impl Namespace {
    pub const ALL: [Namespace; 8] = [
        Namespace::Event,
        Namespace::Transaction,
        Namespace::Order,
        Namespace::Call,
        Namespace::Task,
        Namespace::Customer,
        Namespace::Steps,
        Namespace::Trigger,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Namespace::Event => "event",
            Namespace::Transaction => "transaction",
            Namespace::Order => "order",
            Namespace::Call => "call",
            Namespace::Task => "task",
            Namespace::Customer => "customer",
            Namespace::Steps => "steps",
            Namespace::Trigger => "trigger",
        }
    }

    /// Whether the namespace exists only inside a journey's branch or wait conditions.
    pub fn is_journey(self) -> bool {
        matches!(self, Namespace::Steps | Namespace::Trigger)
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|ns| ns.name() == name)
    }
}

/// A parsed field reference: a namespace and the keys below it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    pub namespace: Namespace,
    pub keys: Box<[Box<str>]>,
}

/// Why a field reference is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    #[error(
        "unknown field namespace {0:?}: fields start with event., transaction., order., call., task., customer. (in a journey's conditions also steps. or trigger.)"
    )]
    UnknownNamespace(String),
    #[error("field {0:?} names no key after its namespace, e.g. event.amount")]
    NoKey(String),
    #[error("field {0:?} has an empty segment")]
    EmptySegment(String),
}

impl FieldPath {
    pub fn parse(path: &str) -> Result<Self, FieldPathError> {
        let mut parts = path.split('.');
        let head = parts.next().unwrap_or_default();
        let namespace = Namespace::from_name(head).ok_or_else(|| FieldPathError::UnknownNamespace(head.to_owned()))?;
        let keys: Vec<Box<str>> = parts.map(Box::from).collect();
        if keys.is_empty() {
            return Err(FieldPathError::NoKey(path.to_owned()));
        }
        if keys.iter().any(|k| k.is_empty()) {
            return Err(FieldPathError::EmptySegment(path.to_owned()));
        }
        Ok(Self {
            namespace,
            keys: keys.into_boxed_slice(),
        })
    }

    /// Looks the field up; `None` when any step is missing.
    pub fn resolve<'a>(&self, facts: &Facts<'a>) -> Option<&'a Value> {
        let (root, prefix): (&'a Map<String, Value>, Option<&str>) = match self.namespace {
            Namespace::Event => (&facts.event.data, None),
            Namespace::Transaction => (&facts.event.data, Some("transaction")),
            Namespace::Order => (&facts.event.data, Some("order")),
            Namespace::Call => (&facts.event.data, Some("call")),
            Namespace::Task => (&facts.event.data, Some("task")),
            Namespace::Customer => (facts.customer, None),
            Namespace::Steps => (facts.journey?.steps, None),
            Namespace::Trigger => (&facts.journey?.trigger.data, None),
        };
        let mut keys = self.keys.iter();
        let mut current = match prefix {
            Some(p) => root.get(p)?,
            None => root.get(&**keys.next()?)?,
        };
        for key in keys {
            current = match current {
                Value::Object(map) => map.get(&**key)?,
                Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

/// What conditions are evaluated against: one event and the customer as it was when the
/// event's turn came.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub event: &'a EventEnvelope,
    pub customer: &'a Map<String, Value>,
    /// A run's own facts, for a journey's branch and wait conditions; `None` when a
    /// workflow's entry is judged, where `steps.*` and `trigger.*` are never written.
    pub journey: Option<Journey<'a>>,
}

impl<'a> Facts<'a> {
    /// The facts of an event and its customer, as a workflow's entry is judged.
    pub fn new(event: &'a EventEnvelope, customer: &'a Map<String, Value>) -> Self {
        Self {
            event,
            customer,
            journey: None,
        }
    }
}

/// What a run adds to the facts of its branch and wait conditions.
#[derive(Debug, Clone, Copy)]
pub struct Journey<'a> {
    /// The run's triggering event (`trigger.*`).
    pub trigger: &'a EventEnvelope,
    /// What the run's named steps produced, by name (`steps.<name>.*`).
    pub steps: &'a Map<String, Value>,
}

/// Slot number of an interned field path.
pub type Slot = u32;

/// Id of an interned rule.
pub type RuleId = u32;

/// The distinct field paths and rules of a workflow set.
#[derive(Debug, Default, Clone)]
pub struct FieldTable {
    paths: Vec<FieldPath>,
    slots: HashMap<FieldPath, Slot>,
    rules: Vec<(Slot, Check)>,
    rule_ids: HashMap<(Slot, Operator, String), RuleId>,
}

impl FieldTable {
    pub fn intern(&mut self, path: FieldPath) -> Slot {
        if let Some(&slot) = self.slots.get(&path) {
            return slot;
        }
        let slot = Slot::try_from(self.paths.len()).unwrap_or(Slot::MAX);
        self.paths.push(path.clone());
        self.slots.insert(path, slot);
        slot
    }

    /// The id of the rule testing `slot` with `operator` and `value`, compiling its test
    /// with `compile` only the first time it is seen.
    pub fn intern_rule<E>(
        &mut self,
        slot: Slot,
        operator: Operator,
        value: Option<&Value>,
        compile: impl FnOnce() -> Result<Test, E>,
    ) -> Result<RuleId, E> {
        let key = (slot, operator, value.map(Value::to_string).unwrap_or_default());
        if let Some(&id) = self.rule_ids.get(&key) {
            return Ok(id);
        }
        let id = RuleId::try_from(self.rules.len()).unwrap_or(RuleId::MAX);
        self.rules.push((slot, Check::new(compile()?)));
        self.rule_ids.insert(key, id);
        Ok(id)
    }

    /// Number of distinct field paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Number of distinct rules.
    pub fn rules(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// A resolver for one evaluation.
    pub fn resolver<'t, 'a>(&'t self, facts: Facts<'a>) -> Resolver<'t, 'a> {
        Resolver {
            table: self,
            facts,
            cache: vec![Cached::Unresolved; self.paths.len()],
            decided: vec![Decided::Unknown; self.rules.len()],
        }
    }
}

#[derive(Clone, Copy)]
enum Cached<'a> {
    Unresolved,
    Resolved(Seen<'a>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decided {
    Unknown,
    False,
    True,
}

/// Resolves fields and decides rules of one evaluation, each at most once.
pub struct Resolver<'t, 'a> {
    table: &'t FieldTable,
    facts: Facts<'a>,
    cache: Vec<Cached<'a>>,
    decided: Vec<Decided>,
}

impl<'a> Resolver<'_, 'a> {
    /// The field's value; `None` when it is missing.
    #[inline]
    pub fn get(&mut self, slot: Slot) -> Option<&'a Value> {
        self.seen(slot).value
    }

    /// The field as the checks see it, resolved on first use.
    #[inline]
    fn seen(&mut self, slot: Slot) -> Seen<'a> {
        let i = slot as usize;
        match self.cache.get(i) {
            Some(Cached::Resolved(seen)) => *seen,
            Some(Cached::Unresolved) => {
                let seen = Seen::new(self.table.paths[i].resolve(&self.facts));
                self.cache[i] = Cached::Resolved(seen);
                seen
            }
            None => Seen::new(None),
        }
    }

    /// The result of rule `id`, or `None` when it reads the customer, whose snapshot a
    /// pre-filter does not have.
    #[inline]
    pub fn rule_without_customer(&mut self, id: RuleId, slot: Slot) -> Option<bool> {
        let reads_customer = self
            .table
            .paths
            .get(slot as usize)
            .is_none_or(|p| p.namespace == Namespace::Customer);
        (!reads_customer).then(|| self.rule(id))
    }

    /// The result of rule `id` for this evaluation.
    #[inline]
    pub fn rule(&mut self, id: RuleId) -> bool {
        let i = id as usize;
        match self.decided.get(i) {
            Some(Decided::True) => true,
            Some(Decided::False) => false,
            Some(Decided::Unknown) => {
                let (slot, check) = &self.table.rules[i];
                let result = check.holds(&self.seen(*slot));
                self.decided[i] = if result { Decided::True } else { Decided::False };
                result
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(data: Value) -> EventEnvelope {
        EventEnvelope {
            id: "e1".into(),
            event_type: "customer.deposited".into(),
            customer_id: 1,
            occurred_at: None,
            occurred_at_stamped: false,
            data: data.as_object().cloned().unwrap(),
            cause: None,
            trace: None,
        }
    }

    #[test]
    fn namespaces_map_into_the_envelope_and_the_customer() {
        let event = envelope(
            json!({"amount": 5, "transaction": {"type": "deposit"}, "order": {"legs": [{"symbol": "EURUSD"}]}}),
        );
        let customer = json!({"country": "BR"}).as_object().cloned().unwrap();
        let facts = Facts::new(&event, &customer);
        let get = |p: &str| FieldPath::parse(p).unwrap().resolve(&facts).cloned();
        assert_eq!(get("event.amount"), Some(json!(5)));
        assert_eq!(get("event.transaction.type"), Some(json!("deposit")));
        assert_eq!(get("transaction.type"), Some(json!("deposit")));
        assert_eq!(get("order.legs.0.symbol"), Some(json!("EURUSD")));
        assert_eq!(get("customer.country"), Some(json!("BR")));
        assert_eq!(get("customer.email"), None);
        assert_eq!(get("call.duration"), None);
        assert_eq!(get("event.amount.x"), None);
    }

    #[test]
    fn bad_paths_are_explained() {
        assert!(matches!(
            FieldPath::parse("amount"),
            Err(FieldPathError::UnknownNamespace(_))
        ));
        assert!(matches!(FieldPath::parse("event"), Err(FieldPathError::NoKey(_))));
        assert!(matches!(
            FieldPath::parse("event..x"),
            Err(FieldPathError::EmptySegment(_))
        ));
    }
}
