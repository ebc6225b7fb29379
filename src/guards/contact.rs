//! The contact policy: caps on how many messages one customer gets per channel across all
//! workflows, `{"caps": [{"channel": "email"|"sms", "max": n, "per": duration}], "on_cap":
//! "skip"|"defer"}` (`GET|PUT /api/v1/contact-policy`).
//!
//! A cap counts the customer's non-transactional sends of its channel over a sliding
//! period. The count and the entry of a send are one conditional statement in the fenced
//! transaction that decides the step ([`crate::storage::contact::take`]), so two nodes, a
//! partition moving and a replay never count a send twice or miss one. A send past a cap
//! is skipped (its step records the cap) or deferred, parked like a delay until the period
//! has room. Transactional steps are never capped and never counted.

use crate::catalogue::ActionKind;
use crate::duration::Duration;
use crate::problem::{json_type_name, Pointer, Problems};
use serde::Serialize;
use serde_json::Value;

/// The longest period a cap may count over: a year and a day.
pub const MAX_PER_SECS: u64 = 366 * 24 * 3600;
/// Most caps in a policy: each is a count in the transaction of every capped send.
pub const MAX_CAPS: usize = 10;

/// A channel the policy caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The channel an action sends on, if it is a message.
    pub fn of(kind: ActionKind) -> Option<Self> {
        match kind {
            ActionKind::SendEmail => Some(Channel::Email),
            ActionKind::SendSms => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// What happens to a send past a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCap {
    /// The step is skipped, its result naming the cap, and the run goes on.
    #[default]
    Skip,
    /// The step waits, parked like a delay, until the cap's period has room.
    Defer,
}

/// One cap: at most `max` sends on `channel` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cap {
    pub channel: Channel,
    pub max: u32,
    pub per: Duration,
}

impl Cap {
    /// What a capped step's result and the run's reason say.
    pub fn describe(&self) -> String {
        let per = serde_json::to_value(self.per).unwrap_or_default();
        let (unit, n) = per
            .as_object()
            .and_then(|o| o.iter().next())
            .map(|(unit, n)| (unit.clone(), n.as_u64().unwrap_or(0)))
            .unwrap_or_default();
        let unit = if n == 1 {
            unit.trim_end_matches('s').to_owned()
        } else {
            unit
        };
        format!(
            "contact cap: at most {} {} per {n} {unit}",
            self.max,
            self.channel.name()
        )
    }
}

/// The policy as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ContactPolicy {
    pub caps: Vec<Cap>,
    pub on_cap: OnCap,
}

impl ContactPolicy {
    /// The caps of one channel, in the order written.
    pub fn caps_of(&self, channel: Channel) -> impl Iterator<Item = &Cap> {
        self.caps.iter().filter(move |c| c.channel == channel)
    }

    /// Reads a policy, every problem at once, each at its pointer.
    pub fn from_value(value: &Value, problems: &mut Problems) -> Option<Self> {
        Self::at(value, &Pointer::root(), problems)
    }

    /// [`ContactPolicy::from_value`] of a policy found at `root` in a larger body (the
    /// backtest's `contact_policy`), so pointers point into the whole body.
    pub fn at(value: &Value, root: &Pointer, problems: &mut Problems) -> Option<Self> {
        let root = root.clone();
        let Some(object) = value.as_object() else {
            problems.error(
                &root,
                format!(
                    "expected {{\"caps\": [...], \"on_cap\": \"skip\"|\"defer\"}}, got {}",
                    json_type_name(value)
                ),
            );
            return None;
        };
        for key in object.keys().filter(|k| !["caps", "on_cap"].contains(&k.as_str())) {
            problems.error(&root.key(key), format!("unknown key {key:?}: expected caps or on_cap"));
        }
        let on_cap = match object.get("on_cap") {
            None | Some(Value::Null) => Some(OnCap::default()),
            Some(Value::String(s)) if s == "skip" => Some(OnCap::Skip),
            Some(Value::String(s)) if s == "defer" => Some(OnCap::Defer),
            Some(other) => {
                problems.error(
                    &root.key("on_cap"),
                    format!("expected \"skip\" or \"defer\", got {other}"),
                );
                None
            }
        };
        let at = root.key("caps");
        let caps = match object.get("caps") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Array(items)) if items.len() > MAX_CAPS => {
                problems.error(
                    &at,
                    format!("has {} caps, more than the maximum of {MAX_CAPS}", items.len()),
                );
                None
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| cap(item, &at.index(i), problems))
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Option<Vec<_>>>(),
            Some(other) => {
                problems.error(&at, format!("expected a list of caps, got {}", json_type_name(other)));
                None
            }
        };
        Some(Self {
            caps: caps?,
            on_cap: on_cap?,
        })
    }
}

fn cap(value: &Value, at: &Pointer, problems: &mut Problems) -> Option<Cap> {
    let Some(object) = value.as_object() else {
        problems.error(
            at,
            format!(
                "expected {{\"channel\", \"max\", \"per\"}}, got {}",
                json_type_name(value)
            ),
        );
        return None;
    };
    for key in object
        .keys()
        .filter(|k| !["channel", "max", "per"].contains(&k.as_str()))
    {
        problems.error(
            &at.key(key),
            format!("unknown key {key:?}: expected channel, max or per"),
        );
    }
    let channel = match object.get("channel") {
        Some(Value::String(name)) => Channel::from_name(name).or_else(|| {
            problems.error(
                &at.key("channel"),
                format!("unknown channel {name:?}: expected email or sms"),
            );
            None
        }),
        Some(other) => {
            problems.error(
                &at.key("channel"),
                format!("expected \"email\" or \"sms\", got {other}"),
            );
            None
        }
        None => {
            problems.error(&at.key("channel"), "is required");
            None
        }
    };
    let max = match object.get("max") {
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(u32::MAX) => Some(n as u32),
            _ => {
                problems.error(
                    &at.key("max"),
                    format!("expected a whole number of at least 1, got {v}"),
                );
                None
            }
        },
        None => {
            problems.error(&at.key("max"), "is required");
            None
        }
    };
    let per = match object.get("per") {
        Some(v) => Duration::from_value(v, &at.key("per"), problems).and_then(|per| {
            if per.as_secs() > MAX_PER_SECS {
                problems.error(&at.key("per"), "a cap's period is at most 366 days");
                return None;
            }
            Some(per)
        }),
        None => {
            problems.error(&at.key("per"), "is required");
            None
        }
    };
    Some(Cap {
        channel: channel?,
        max: max?,
        per: per?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems_of(value: Value) -> Vec<(String, String)> {
        let mut problems = Problems::default();
        let policy = ContactPolicy::from_value(&value, &mut problems);
        let out: Vec<(String, String)> = problems.into_vec().into_iter().map(|p| (p.path, p.message)).collect();
        assert!(policy.is_none() || out.is_empty());
        out
    }

    #[test]
    fn a_policy_reads_back_as_written() {
        let written = json!({"caps": [{"channel": "sms", "max": 2, "per": {"days": 1}},
                                      {"channel": "email", "max": 5, "per": {"days": 7}}], "on_cap": "defer"});
        let mut problems = Problems::default();
        let policy = ContactPolicy::from_value(&written, &mut problems).expect("valid");
        assert_eq!(serde_json::to_value(&policy).unwrap(), written);
        assert_eq!(policy.caps_of(Channel::Sms).count(), 1);
        assert_eq!(policy.caps[0].describe(), "contact cap: at most 2 sms per 1 day");
        assert_eq!(policy.caps[1].describe(), "contact cap: at most 5 email per 7 days");
    }

    #[test]
    fn bad_policies_name_each_bad_field() {
        let found = problems_of(json!({"caps": [
            {"channel": "fax", "max": 1, "per": {"days": 1}},
            {"channel": "sms", "max": -1, "per": {"days": 400}},
            {"channel": "email", "max": 0, "per": {"hours": 1}, "extra": true}
        ], "on_cap": "drop"}));
        for (path, words) in [
            ("/caps/0/channel", "unknown channel \"fax\""),
            ("/caps/1/max", "at least 1"),
            ("/caps/1/per", "at most 366 days"),
            ("/caps/2/max", "at least 1"),
            ("/caps/2/extra", "unknown key"),
            ("/on_cap", "\"skip\" or \"defer\""),
        ] {
            assert!(
                found.iter().any(|(p, m)| p == path && m.contains(words)),
                "no {path} problem with {words:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn more_than_ten_caps_are_refused_at_the_list() {
        let cap = json!({"channel": "email", "max": 1, "per": {"days": 1}});
        let ten = json!({"caps": vec![cap.clone(); MAX_CAPS], "on_cap": "skip"});
        assert!(problems_of(ten).is_empty());
        let found = problems_of(json!({"caps": vec![cap; MAX_CAPS + 1], "on_cap": "skip"}));
        assert_eq!(
            found,
            [(
                "/caps".to_owned(),
                format!("has 11 caps, more than the maximum of {MAX_CAPS}")
            )]
        );
    }
}
