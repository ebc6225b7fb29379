//! Per-customer entry limits: `"limits": {"once_per_customer": true}` or
//! `{"cooldown": duration}`.
//!
//! A run held back by its limit is not created at all. The check and the entry are one
//! conditional statement in the transaction that records the run
//! ([`crate::storage::entries::enter`]), so concurrent events of one customer, in one
//! process or several, give exactly one run.

use crate::duration::Duration;
use crate::problem::{json_type_name, Pointer, Problems};
use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// How often a customer may enter a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryLimit {
    /// Once ever (an onboarding welcome).
    OncePerCustomer,
    /// Once per period, counted from the last entry.
    Cooldown(Duration),
}

impl EntryLimit {
    /// The name the dry run reports in `limited_by`.
    pub fn name(self) -> &'static str {
        match self {
            EntryLimit::OncePerCustomer => "once_per_customer",
            EntryLimit::Cooldown(_) => "cooldown",
        }
    }

    /// Whether a customer who last entered at `last_entered` (`None`: never) is held back
    /// at `now`. The database applies the same rule in one statement.
    pub fn held_back(self, last_entered: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match (self, last_entered) {
            (_, None) => false,
            (EntryLimit::OncePerCustomer, Some(_)) => true,
            (EntryLimit::Cooldown(period), Some(at)) => at > cooldown_cutoff(period, now),
        }
    }

    /// Reads `"limits"`: an object with exactly one of `once_per_customer: true` or
    /// `cooldown: duration`.
    pub fn from_value(value: &Value, at: &Pointer, problems: &mut Problems) -> Option<Self> {
        let Some(object) = value.as_object() else {
            problems.error(
                at,
                format!(
                    "expected {{\"once_per_customer\": true}} or {{\"cooldown\": {{\"days\": n}}}}, got {}",
                    json_type_name(value)
                ),
            );
            return None;
        };
        for key in object.keys() {
            if key != "once_per_customer" && key != "cooldown" {
                problems.error(
                    &at.key(key),
                    format!("unknown key {key:?}: expected once_per_customer or cooldown"),
                );
            }
        }
        match (object.get("once_per_customer"), object.get("cooldown")) {
            (Some(_), Some(_)) => {
                problems.error(at, "give once_per_customer or cooldown, not both");
                None
            }
            (Some(Value::Bool(true)), None) => Some(EntryLimit::OncePerCustomer),
            (Some(other), None) => {
                problems.error(
                    &at.key("once_per_customer"),
                    format!("expected true (leave the key out for no limit), got {other}"),
                );
                None
            }
            (None, Some(period)) => {
                let at = at.key("cooldown");
                let period = Duration::from_value(period, &at, problems)?;
                if period.as_secs() == 0 {
                    problems.error(&at, "a cooldown must be longer than zero");
                    return None;
                }
                Some(EntryLimit::Cooldown(period))
            }
            (None, None) if object.is_empty() => {
                problems.error(at, "expected once_per_customer or cooldown");
                None
            }
            (None, None) => None,
        }
    }
}

/// Entries at or before this time no longer hold a customer back.
pub fn cooldown_cutoff(period: Duration, now: DateTime<Utc>) -> DateTime<Utc> {
    // Durations are capped at ten years, so this never overflows.
    now - chrono::Duration::seconds(i64::try_from(period.as_secs()).unwrap_or(i64::MAX / 1000))
}

impl Serialize for EntryLimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            EntryLimit::OncePerCustomer => map.serialize_entry("once_per_customer", &true)?,
            EntryLimit::Cooldown(period) => map.serialize_entry("cooldown", period)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<EntryLimit, Vec<String>> {
        let mut problems = Problems::default();
        let at = Pointer::root().key("limits");
        match EntryLimit::from_value(&v, &at, &mut problems) {
            Some(l) if !problems.has_errors() => Ok(l),
            _ => Err(problems.into_vec().into_iter().map(|p| p.to_string()).collect()),
        }
    }

    #[test]
    fn reads_and_writes_both_shapes() {
        let once = parse(json!({"once_per_customer": true})).unwrap();
        assert_eq!(once, EntryLimit::OncePerCustomer);
        assert_eq!(serde_json::to_value(once).unwrap(), json!({"once_per_customer": true}));
        let cool = parse(json!({"cooldown": {"days": 7}})).unwrap();
        assert_eq!(cool, EntryLimit::Cooldown(Duration::Days(7)));
        assert_eq!(serde_json::to_value(cool).unwrap(), json!({"cooldown": {"days": 7}}));
    }

    #[test]
    fn rejects_bad_limits_with_their_path() {
        assert_eq!(
            parse(json!({"once_per_customer": false})).unwrap_err(),
            vec!["/limits/once_per_customer: expected true (leave the key out for no limit), got false"]
        );
        assert!(parse(json!({"cooldown": {"days": 0}})).unwrap_err()[0].starts_with("/limits/cooldown:"));
        assert!(parse(json!({"cooldown": {"weeks": 1}})).unwrap_err()[0].starts_with("/limits/cooldown/weeks:"));
        assert!(parse(json!({"per_day": 1})).unwrap_err()[0].starts_with("/limits/per_day: unknown key"));
        assert!(
            parse(json!({"once_per_customer": true, "cooldown": {"days": 1}})).unwrap_err()[0].contains("not both")
        );
        assert!(parse(json!([])).unwrap_err()[0].starts_with("/limits: expected"));
    }

    #[test]
    fn holds_back_as_the_database_does() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let hour = chrono::Duration::hours(1);
        assert!(!EntryLimit::OncePerCustomer.held_back(None, now));
        assert!(EntryLimit::OncePerCustomer.held_back(Some(now - hour * 10_000), now));
        let day = EntryLimit::Cooldown(Duration::Days(1));
        assert!(day.held_back(Some(now - hour * 23), now));
        assert!(!day.held_back(Some(now - hour * 24), now));
        assert!(!day.held_back(None, now));
    }
}
