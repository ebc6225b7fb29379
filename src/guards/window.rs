//! Send windows: `"send_window": {"from": "09:00", "to": "20:00", "days": ["mon", ...]?}`.
//!
//! Email and SMS steps of the workflow go out only while the window is open in the
//! customer's local time (`customer.timezone`, an IANA name; UTC when missing or unknown).
//! Outside it the step waits, parked like a delay, until the window next opens. Time zone
//! rules and DST come from chrono-tz (the IANA database compiled in), not from code here.

use crate::problem::{json_type_name, Pointer, Problems};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Day names as written in `days`, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// When a workflow's messages may go out, in the customer's local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    /// Opens at this local time.
    pub from: NaiveTime,
    /// Closes at this local time; before `from` for a window over midnight.
    pub to: NaiveTime,
    /// The days the window opens on (local dates); every day when empty.
    pub days: Vec<Weekday>,
}

impl SendWindow {
    /// Reads `"send_window"`.
    pub fn from_value(value: &Value, at: &Pointer, problems: &mut Problems) -> Option<Self> {
        let Some(object) = value.as_object() else {
            problems.error(
                at,
                format!(
                    "expected {{\"from\": \"09:00\", \"to\": \"20:00\", \"days\"?: [...]}}, got {}",
                    json_type_name(value)
                ),
            );
            return None;
        };
        for key in object.keys() {
            if !["from", "to", "days"].contains(&key.as_str()) {
                problems.error(&at.key(key), format!("unknown key {key:?}: expected from, to or days"));
            }
        }
        let from = clock_time(object, "from", at, problems);
        let to = clock_time(object, "to", at, problems);
        let days = match object.get("days") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Array(items)) if items.is_empty() => {
                problems.error(
                    &at.key("days"),
                    "name at least one day, or leave days out for every day",
                );
                None
            }
            Some(Value::Array(items)) if items.len() > DAYS.len() => {
                problems.error(&at.key("days"), "has more than seven days");
                None
            }
            Some(Value::Array(items)) => {
                let mut days = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().and_then(day_from_name) {
                        Some(day) if days.contains(&day) => {
                            problems.error(&at.key("days").index(i), format!("{item} is listed twice"))
                        }
                        Some(day) => days.push(day),
                        None => problems.error(
                            &at.key("days").index(i),
                            format!("expected one of {}, got {item}", DAYS.join(", ")),
                        ),
                    }
                }
                Some(days)
            }
            Some(other) => {
                problems.error(
                    &at.key("days"),
                    format!("expected a list of days, got {}", json_type_name(other)),
                );
                None
            }
        };
        let (from, to) = (from?, to?);
        if from == to {
            problems.error(&at.key("to"), "a window closes at another time than it opens");
            return None;
        }
        Some(Self { from, to, days: days? })
    }

    /// The first instant at or after `now` when the window is open in `tz`: `now` itself
    /// when it is open now.
    pub fn next_open(&self, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        if self.is_open(now, tz) {
            return now;
        }
        let today = now.with_timezone(&tz).date_naive();
        // The window opens within eight local days whatever `days` says (one of the seven
        // weekdays at least), and its next opening is after `now` since it is closed now.
        (0..=8)
            .filter_map(|n| today.checked_add_signed(Duration::days(n)))
            .filter(|date| self.opens_on(*date))
            .map(|date| opening(date, self.from, tz))
            .find(|at| *at > now)
            .unwrap_or(now)
    }

    /// Whether the window is open at `now` in `tz`.
    pub fn is_open(&self, now: DateTime<Utc>, tz: Tz) -> bool {
        let local = now.with_timezone(&tz);
        let (date, time) = (local.date_naive(), local.time());
        if self.from < self.to {
            self.opens_on(date) && time >= self.from && time < self.to
        } else {
            // Over midnight: open from `from` on an opening day until `to` the next day.
            (self.opens_on(date) && time >= self.from)
                || (time < self.to && date.pred_opt().is_some_and(|d| self.opens_on(d)))
        }
    }

    fn opens_on(&self, date: NaiveDate) -> bool {
        self.days.is_empty() || self.days.contains(&date.weekday())
    }
}

/// The instant `date` at local `time` in `tz`. A time that occurs twice (clocks turned back)
/// is its first occurrence; a time that does not occur (clocks turned forward) is the first
/// local time after the gap.
fn opening(date: NaiveDate, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let mut local = date.and_time(time);
    // Gaps are at most a few hours; step through one a quarter of an hour at a time.
    for _ in 0..32 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => {
                local += Duration::minutes(15);
                // Back to the quarter hour, so 02:30 in a 02:00-03:00 gap gives 03:00.
                local = local.with_minute(local.minute() / 15 * 15).unwrap_or(local);
            }
        }
    }
    Utc.from_utc_datetime(&date.and_time(time))
}

/// The customer's time zone: `customer.timezone` when it names an IANA zone, else UTC.
pub fn customer_zone(customer: &Map<String, Value>) -> Tz {
    customer
        .get("timezone")
        .and_then(Value::as_str)
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

fn day_from_name(name: &str) -> Option<Weekday> {
    DAYS.iter()
        .position(|d| *d == name)
        .and_then(|i| Weekday::try_from(u8::try_from(i).ok()?).ok())
}

fn clock_time(object: &Map<String, Value>, key: &str, at: &Pointer, problems: &mut Problems) -> Option<NaiveTime> {
    let at = at.key(key);
    match object.get(key) {
        None | Some(Value::Null) => problems.error(&at, "is required"),
        Some(Value::String(s)) if s.len() == 5 => match NaiveTime::parse_from_str(s, "%H:%M") {
            Ok(t) => return Some(t),
            Err(_) => problems.error(
                &at,
                format!("expected a time of day HH:MM from 00:00 to 23:59, got {s:?}"),
            ),
        },
        Some(other) => problems.error(&at, format!("expected a time of day HH:MM, got {other}")),
    }
    None
}

impl Serialize for SendWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(if self.days.is_empty() { 2 } else { 3 }))?;
        map.serialize_entry("from", &self.from.format("%H:%M").to_string())?;
        map.serialize_entry("to", &self.to.format("%H:%M").to_string())?;
        if !self.days.is_empty() {
            let days: Vec<&str> = self
                .days
                .iter()
                .map(|d| DAYS[d.num_days_from_monday() as usize])
                .collect();
            map.serialize_entry("days", &days)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn window(v: Value) -> Result<SendWindow, Vec<String>> {
        let mut problems = Problems::default();
        let at = Pointer::root().key("send_window");
        match SendWindow::from_value(&v, &at, &mut problems) {
            Some(w) if !problems.has_errors() => Ok(w),
            _ => Err(problems.into_vec().into_iter().map(|p| p.to_string()).collect()),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn reads_and_writes_back() {
        let v = json!({"from": "09:00", "to": "20:00", "days": ["mon", "fri"]});
        assert_eq!(serde_json::to_value(window(v.clone()).unwrap()).unwrap(), v);
        let every = json!({"from": "21:30", "to": "06:00"});
        assert_eq!(serde_json::to_value(window(every.clone()).unwrap()).unwrap(), every);
    }

    #[test]
    fn rejects_bad_windows_with_their_path() {
        assert!(window(json!({"from": "9:00", "to": "20:00"})).unwrap_err()[0].starts_with("/send_window/from:"));
        assert!(window(json!({"from": "09:00", "to": "24:00"})).unwrap_err()[0].starts_with("/send_window/to:"));
        assert!(window(json!({"from": "09:00"})).unwrap_err()[0].starts_with("/send_window/to: is required"));
        assert!(window(json!({"from": "09:00", "to": "09:00"})).unwrap_err()[0].starts_with("/send_window/to:"));
        assert!(
            window(json!({"from": "09:00", "to": "20:00", "days": ["monday"]})).unwrap_err()[0]
                .starts_with("/send_window/days/0:")
        );
        assert!(
            window(json!({"from": "09:00", "to": "20:00", "days": ["mon", "mon"]})).unwrap_err()[0]
                .starts_with("/send_window/days/1:")
        );
        assert!(
            window(json!({"from": "09:00", "to": "20:00", "days": []})).unwrap_err()[0]
                .starts_with("/send_window/days:")
        );
        assert!(window(json!({"from": "09:00", "to": "20:00", "at": 1})).unwrap_err()[0]
            .starts_with("/send_window/at: unknown key"));
    }

    #[test]
    fn opens_in_the_customers_zone() {
        let w = window(json!({"from": "09:00", "to": "20:00"})).unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 03:00 in Berlin (02:00 UTC in winter): wait until 09:00 Berlin = 08:00 UTC.
        assert_eq!(
            w.next_open(utc("2026-01-15T02:00:00Z"), berlin),
            utc("2026-01-15T08:00:00Z")
        );
        // Open now: no wait.
        assert_eq!(
            w.next_open(utc("2026-01-15T10:00:00Z"), berlin),
            utc("2026-01-15T10:00:00Z")
        );
        // 20:30 Berlin: the next morning.
        assert_eq!(
            w.next_open(utc("2026-01-15T19:30:00Z"), berlin),
            utc("2026-01-16T08:00:00Z")
        );
    }

    #[test]
    fn follows_dst_changes() {
        let w = window(json!({"from": "09:00", "to": "20:00"})).unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Clocks go forward on 2026-03-29: 09:00 is 07:00 UTC that day, 08:00 UTC the day before.
        assert_eq!(
            w.next_open(utc("2026-03-28T20:00:00Z"), berlin),
            utc("2026-03-29T07:00:00Z")
        );
        assert_eq!(
            w.next_open(utc("2026-03-27T20:00:00Z"), berlin),
            utc("2026-03-28T08:00:00Z")
        );
        // A window opening inside the gap (02:30 does not exist that night) opens at 03:00.
        let night = window(json!({"from": "02:30", "to": "05:00"})).unwrap();
        assert_eq!(
            night.next_open(utc("2026-03-28T23:00:00Z"), berlin),
            utc("2026-03-29T01:00:00Z")
        );
        // Clocks go back on 2026-10-25: 02:30 happens twice; the window opens at the first.
        let early = window(json!({"from": "02:30", "to": "05:00"})).unwrap();
        assert_eq!(
            early.next_open(utc("2026-10-24T22:00:00Z"), berlin),
            utc("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn keeps_to_its_days_and_over_midnight() {
        let weekdays =
            window(json!({"from": "09:00", "to": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]})).unwrap();
        // Saturday 2026-01-17 noon UTC: wait for Monday 09:00.
        assert_eq!(
            weekdays.next_open(utc("2026-01-17T12:00:00Z"), Tz::UTC),
            utc("2026-01-19T09:00:00Z")
        );
        let night = window(json!({"from": "22:00", "to": "06:00", "days": ["fri"]})).unwrap();
        // Friday 2026-01-16 23:00 and Saturday 05:00 are open; Saturday 07:00 waits a week.
        assert!(night.is_open(utc("2026-01-16T23:00:00Z"), Tz::UTC));
        assert!(night.is_open(utc("2026-01-17T05:00:00Z"), Tz::UTC));
        assert_eq!(
            night.next_open(utc("2026-01-17T07:00:00Z"), Tz::UTC),
            utc("2026-01-23T22:00:00Z")
        );
    }

    #[test]
    fn unknown_zones_are_utc() {
        let c = |tz: Value| Map::from_iter([("timezone".to_owned(), tz)]);
        assert_eq!(customer_zone(&c(json!("America/New_York"))), Tz::America__New_York);
        assert_eq!(customer_zone(&c(json!("Mars/Olympus"))), Tz::UTC);
        assert_eq!(customer_zone(&Map::new()), Tz::UTC);
    }
}
