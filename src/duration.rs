//! Durations as operators write them: `{"minutes": n}`, `{"hours": n}` or `{"days": n}`.

use crate::problem::{json_type_name, Pointer, Problems};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest duration accepted (ten years): anything longer is a typo, and keeping it
/// bounded keeps due-time arithmetic far from overflow.
pub const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// A span of wall-clock time, kept in the unit the operator chose so it reads back as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Duration {
    Minutes(u64),
    Hours(u64),
    Days(u64),
}

impl Duration {
    pub const UNITS: [&'static str; 3] = ["minutes", "hours", "days"];

    pub fn as_secs(self) -> u64 {
        match self {
            Duration::Minutes(n) => n * 60,
            Duration::Hours(n) => n * 3600,
            Duration::Days(n) => n * 86_400,
        }
    }

    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.as_secs())
    }

    /// Reads a duration from the keys of `object` (a `delay` step's params hold them
    /// directly; `create_task.due_in` holds them in a nested object). Keys other than the
    /// units are left to the caller. Returns `None` after recording a problem.
    pub fn from_keys(object: &Map<String, Value>, path: &Pointer, problems: &mut Problems) -> Option<Self> {
        let present: Vec<&str> = Self::UNITS.into_iter().filter(|u| object.contains_key(*u)).collect();
        let unit = match present.as_slice() {
            [unit] => *unit,
            [] => {
                problems.error(
                    path,
                    "expected a duration: one of \"minutes\", \"hours\" or \"days\" with a whole number",
                );
                return None;
            }
            _ => {
                problems.error(
                    path,
                    format!("a duration takes one unit, got {}", present.join(" and ")),
                );
                return None;
            }
        };
        let at = path.key(unit);
        let value = &object[unit];
        let Some(n) = value.as_u64() else {
            problems.error(
                &at,
                format!("expected a whole number of {unit} (0 or more), got {}", describe(value)),
            );
            return None;
        };
        let duration = match unit {
            "minutes" => Duration::Minutes(n),
            "hours" => Duration::Hours(n),
            _ => Duration::Days(n),
        };
        if n.checked_mul(86_400).is_none() || duration.as_secs() > MAX_SECONDS {
            problems.error(&at, "duration is longer than ten years");
            return None;
        }
        Some(duration)
    }

    /// Reads a duration held in its own object, e.g. `{"days": 2}`.
    pub fn from_value(value: &Value, path: &Pointer, problems: &mut Problems) -> Option<Self> {
        let Some(object) = value.as_object() else {
            problems.error(
                path,
                format!(
                    "expected a duration object like {{\"days\": 2}}, got {}",
                    json_type_name(value)
                ),
            );
            return None;
        };
        for key in object.keys() {
            if !Self::UNITS.contains(&key.as_str()) {
                problems.error(
                    &path.key(key),
                    format!("unknown duration unit {key:?}: use minutes, hours or days"),
                );
            }
        }
        Self::from_keys(object, path, problems)
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => format!("{n}"),
        other => json_type_name(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Duration, Vec<String>> {
        let mut problems = Problems::default();
        Duration::from_value(&v, &Pointer::root().key("due_in"), &mut problems)
            .ok_or_else(|| problems.into_vec().into_iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn reads_each_unit() {
        assert_eq!(parse(json!({"minutes": 5})).unwrap().as_secs(), 300);
        assert_eq!(parse(json!({"hours": 2})).unwrap().as_secs(), 7200);
        assert_eq!(parse(json!({"days": 1})).unwrap().as_secs(), 86_400);
    }

    #[test]
    fn rejects_bad_durations_with_their_path() {
        assert_eq!(
            parse(json!({})).unwrap_err(),
            vec!["/due_in: expected a duration: one of \"minutes\", \"hours\" or \"days\" with a whole number"]
        );
        assert_eq!(
            parse(json!({"days": -1})).unwrap_err(),
            vec!["/due_in/days: expected a whole number of days (0 or more), got -1"]
        );
        assert_eq!(
            parse(json!({"days": 1.5})).unwrap_err(),
            vec!["/due_in/days: expected a whole number of days (0 or more), got 1.5"]
        );
        assert!(parse(json!({"days": 1, "hours": 2})).unwrap_err()[0].contains("one unit"));
        assert!(parse(json!({"weeks": 1})).unwrap_err()[0].starts_with("/due_in/weeks: unknown duration unit"));
        assert!(parse(json!({"days": 100_000})).unwrap_err()[0].contains("ten years"));
        assert!(parse(json!("2d")).unwrap_err()[0].contains("got a string"));
    }
}
