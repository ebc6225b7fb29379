//! The form a rule's test takes in a compiled workflow set: each [`Test`] specialised for
//! the value shapes that dominate real conditions, so deciding a rule is a compare or two
//! instead of a walk through generic JSON matches.
//!
//! Profiling the matcher (docs/peers.md) put a rule's cost in three places besides the tree
//! walk: string equality through a libc `memcmp` call even for two-letter country codes
//! (`in` paid one per list element), ordering tests that tried the integer form of every
//! number before the float one, and the nested `Test` / `Scalar` / `Bound` matches around
//! both. Here:
//! - a string of at most [`ShortKey::MAX_LEN`] bytes is packed with its length into one
//!   `u128` ([`ShortKey`]); the field's key is computed once per evaluation (see
//!   [`Seen`]), so `eq` is one integer compare and `in` a scan of a few integers;
//! - ordering tests on a float field compare the `f64` directly; integers keep their exact
//!   comparison and numeric strings their parse, through the general path;
//! - everything else runs the general [`super::eval::test`], which stays the one reference
//!   of the semantics: the property test in tests/properties.rs holds every check equal to
//!   it on arbitrary values.

use super::compile::{Bound, Num, Scalar, Test};
use super::eval;
use regex::Regex;
use serde_json::{Number, Value};
use std::cmp::Ordering;

/// A string of at most [`ShortKey::MAX_LEN`] bytes packed into an integer: its bytes,
/// zero-padded, with `length + 1` in the top byte. Distinct strings have distinct keys, and
/// no string has key [`ShortKey::NONE`], which stands for "not a short string" (a long
/// string, another type, missing or null).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortKey(u128);

impl ShortKey {
    /// Longest string with a key: 15 bytes and the length byte fill 128 bits.
    pub const MAX_LEN: usize = 15;
    pub const NONE: ShortKey = ShortKey(0);

    /// The key of `s`, or [`ShortKey::NONE`] when it is longer than [`ShortKey::MAX_LEN`].
    #[inline]
    pub fn of(s: &str) -> Self {
        let bytes = s.as_bytes();
        if bytes.len() > Self::MAX_LEN {
            return Self::NONE;
        }
        let mut buf = [0u8; 16];
        buf[..bytes.len()].copy_from_slice(bytes);
        // At most 16, so the cast is exact.
        buf[15] = bytes.len() as u8 + 1;
        Self(u128::from_le_bytes(buf))
    }

    /// The key of a field's value: the string's key, or NONE for any other value.
    #[inline]
    pub fn of_value(value: Option<&Value>) -> Self {
        match value {
            Some(Value::String(s)) => Self::of(s),
            _ => Self::NONE,
        }
    }

    pub fn is_none(self) -> bool {
        self == Self::NONE
    }
}

/// A field as one evaluation sees it: the value (`None` when missing) and, for a short
/// string, its key, computed once when the field is first resolved.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub value: Option<&'a Value>,
    pub key: ShortKey,
}

impl<'a> Seen<'a> {
    #[inline]
    pub fn new(value: Option<&'a Value>) -> Self {
        Self {
            value,
            key: ShortKey::of_value(value),
        }
    }

    /// Present and not null: what every operator but `is_empty` needs to hold.
    #[inline]
    fn present(&self) -> bool {
        !matches!(self.value, None | Some(Value::Null))
    }
}

/// A string constant of `contains` / `not_contains`: the text for a substring test on a
/// string field, the key for an element test on a list.
#[derive(Debug, Clone)]
pub struct Needle {
    text: Box<str>,
    key: ShortKey,
}

/// One end of a [`Check::NumRange`].
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub num: Num,
    pub inclusive: bool,
}

impl Limit {
    /// Whether a value ordered `ord` against this limit is on the inside, `inside` being
    /// the side that passes without equality (`Greater` for a low limit).
    #[inline]
    fn admits(&self, ord: Option<Ordering>, inside: Ordering) -> bool {
        ord.is_some_and(|o| o == inside || self.inclusive && o == Ordering::Equal)
    }
}

/// A rule's test ready to decide. Built from a [`Test`] by [`Check::new`]; decides exactly
/// what [`super::eval::test`] decides for that test.
#[derive(Debug, Clone)]
pub enum Check {
    /// `eq` a string of at most [`ShortKey::MAX_LEN`] bytes.
    EqKey(ShortKey),
    NeqKey(ShortKey),
    /// `in` a list made only of short strings.
    InKeys(Box<[ShortKey]>),
    NotInKeys(Box<[ShortKey]>),
    /// Ordering against a number (`gte` 1000, `between` [0, 10]).
    NumRange {
        lo: Option<Limit>,
        hi: Option<Limit>,
    },
    Contains(Needle),
    NotContains(Needle),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Regex(Regex),
    /// Every other test, decided by the general evaluator.
    General(Box<Test>),
}

impl Check {
    pub fn new(test: Test) -> Self {
        let keys = |set: &[Scalar]| -> Option<Box<[ShortKey]>> {
            set.iter()
                .map(|c| match c {
                    Scalar::Str(s) => Some(ShortKey::of(s)).filter(|k| !k.is_none()),
                    _ => None,
                })
                .collect()
        };
        let short = |c: &Scalar| match c {
            Scalar::Str(s) => Some(ShortKey::of(s)).filter(|k| !k.is_none()),
            _ => None,
        };
        let needle = |c: &Scalar| match c {
            Scalar::Str(s) => Some(Needle {
                key: ShortKey::of(s),
                text: s.clone(),
            }),
            _ => None,
        };
        let range = |lo: Option<(&Bound, bool)>, hi: Option<(&Bound, bool)>| {
            let num = |b: Option<(&Bound, bool)>| match b {
                None => Some(None),
                Some((Bound::Num(num), inclusive)) => Some(Some(Limit { num: *num, inclusive })),
                Some((Bound::Time(_), _)) => None,
            };
            Some(Check::NumRange {
                lo: num(lo)?,
                hi: num(hi)?,
            })
        };
        let special = match &test {
            Test::Eq(c) => short(c).map(Check::EqKey),
            Test::Neq(c) => short(c).map(Check::NeqKey),
            Test::In(set) => keys(set).map(Check::InKeys),
            Test::NotIn(set) => keys(set).map(Check::NotInKeys),
            Test::Gt(b) => range(Some((b, false)), None),
            Test::Gte(b) => range(Some((b, true)), None),
            Test::Lt(b) => range(None, Some((b, false))),
            Test::Lte(b) => range(None, Some((b, true))),
            Test::Between(lo, hi) => range(Some((lo, true)), Some((hi, true))),
            Test::Contains(c) => needle(c).map(Check::Contains),
            Test::NotContains(c) => needle(c).map(Check::NotContains),
            Test::StartsWith(p) => Some(Check::StartsWith(p.clone())),
            Test::EndsWith(p) => Some(Check::EndsWith(p.clone())),
            Test::Regex(re) => Some(Check::Regex(re.clone())),
            Test::IsEmpty | Test::IsNotEmpty => None,
        };
        special.unwrap_or_else(|| Check::General(Box::new(test)))
    }

    /// Whether the rule holds for the field as seen.
    #[inline]
    pub fn holds(&self, seen: &Seen<'_>) -> bool {
        match self {
            Check::EqKey(k) => seen.key == *k,
            Check::NeqKey(k) => seen.present() && seen.key != *k,
            // No constant has the NONE key, so a value without a key is in no list.
            Check::InKeys(keys) => keys.contains(&seen.key),
            Check::NotInKeys(keys) => seen.present() && !keys.contains(&seen.key),
            Check::NumRange { lo, hi } => match seen.value {
                Some(Value::Number(n)) => number_in_range(n, lo, hi),
                value => other_in_range(value, lo, hi),
            },
            Check::Contains(n) => contains(seen.value, n),
            Check::NotContains(n) => seen.present() && !contains(seen.value, n),
            Check::StartsWith(p) => as_str(seen.value).is_some_and(|s| s.starts_with(&**p)),
            Check::EndsWith(p) => as_str(seen.value).is_some_and(|s| s.ends_with(&**p)),
            Check::Regex(re) => as_str(seen.value).is_some_and(|s| re.is_match(s)),
            Check::General(test) => eval::test(test, seen.value),
        }
    }
}

#[inline]
fn as_str(value: Option<&Value>) -> Option<&str> {
    value?.as_str()
}

/// The general comparison on a number (see `eval::cmp_num`), with a float field compared
/// as `f64` directly: amounts with cents never have an integer form, and this is their path.
#[inline]
fn number_in_range(n: &Number, lo: &Option<Limit>, hi: &Option<Limit>) -> bool {
    match n.as_i64() {
        None => n.as_f64().is_some_and(|f| {
            lo.is_none_or(|l| if l.inclusive { f >= l.num.float } else { f > l.num.float })
                && hi.is_none_or(|l| if l.inclusive { f <= l.num.float } else { f < l.num.float })
        }),
        Some(i) => {
            let ord = |l: &Limit| match l.num.int {
                Some(c) => Some(i.cmp(&c)),
                None => n.as_f64().and_then(|f| f.partial_cmp(&l.num.float)),
            };
            lo.is_none_or(|l| l.admits(ord(&l), Ordering::Greater))
                && hi.is_none_or(|l| l.admits(ord(&l), Ordering::Less))
        }
    }
}

/// Ordering on anything but a number (a numeric string, another type, missing), through
/// the general comparison.
#[cold]
fn other_in_range(value: Option<&Value>, lo: &Option<Limit>, hi: &Option<Limit>) -> bool {
    let Some(value) = value else { return false };
    lo.is_none_or(|l| l.admits(eval::cmp_num(value, &l.num), Ordering::Greater))
        && hi.is_none_or(|l| l.admits(eval::cmp_num(value, &l.num), Ordering::Less))
}

#[inline]
fn contains(value: Option<&Value>, needle: &Needle) -> bool {
    match value {
        Some(Value::String(s)) => s.contains(&*needle.text),
        Some(Value::Array(items)) if needle.key.is_none() => {
            items.iter().any(|i| i.as_str().is_some_and(|s| s == &*needle.text))
        }
        // Equal lengths first: most elements differ there, before any byte is read.
        Some(Value::Array(items)) => items.iter().any(|i| match i {
            Value::String(s) => s.len() == needle.text.len() && ShortKey::of(s) == needle.key,
            _ => false,
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::compile::Limits;
    use crate::conditions::Operator;
    use serde_json::json;

    fn check(op: Operator, value: Value) -> (Check, Test) {
        let test = Test::compile(op, Some(&value), &Limits::default()).unwrap();
        (Check::new(test.clone()), test)
    }

    #[test]
    fn short_keys_are_distinct_and_none_is_no_string() {
        let strings = [
            "",
            "a",
            "a\0",
            "\0",
            "BR",
            "br",
            "approved",
            "123456789012345",
            "x\u{e9}",
        ];
        for (i, a) in strings.iter().enumerate() {
            assert!(!ShortKey::of(a).is_none(), "{a:?} has a key");
            for b in &strings[i + 1..] {
                assert_ne!(ShortKey::of(a), ShortKey::of(b), "{a:?} vs {b:?}");
            }
        }
        assert!(ShortKey::of("1234567890123456").is_none());
        assert!(ShortKey::of_value(Some(&json!(5))).is_none());
        assert!(ShortKey::of_value(None).is_none());
    }

    #[test]
    fn the_common_shapes_take_the_fast_forms() {
        assert!(matches!(check(Operator::Eq, json!("BR")).0, Check::EqKey(_)));
        assert!(matches!(check(Operator::In, json!(["BR", "AR"])).0, Check::InKeys(_)));
        assert!(matches!(check(Operator::Gte, json!(1000)).0, Check::NumRange { .. }));
        assert!(matches!(
            check(Operator::Between, json!([1, 2.5])).0,
            Check::NumRange { .. }
        ));
        assert!(matches!(check(Operator::Contains, json!("vip")).0, Check::Contains(_)));
        // Shapes left to the general evaluator.
        assert!(matches!(check(Operator::Eq, json!(5)).0, Check::General(_)));
        assert!(matches!(check(Operator::In, json!(["BR", 5])).0, Check::General(_)));
        assert!(matches!(
            check(Operator::Eq, json!("a sixteen byte s")).0,
            Check::General(_)
        ));
        assert!(matches!(
            check(Operator::Gte, json!("2024-01-01T00:00:00Z")).0,
            Check::General(_)
        ));
    }

    /// A few values per fast form, against the general evaluator (tests/properties.rs does
    /// the same on arbitrary values).
    #[test]
    fn fast_forms_agree_with_the_general_evaluator() {
        let values = [
            None,
            Some(json!(null)),
            Some(json!("BR")),
            Some(json!("br")),
            Some(json!("")),
            Some(json!("a sixteen byte s")),
            Some(json!(1000)),
            Some(json!(999.99)),
            Some(json!(1000.0)),
            Some(json!(" 1000.5 ")),
            Some(json!(u64::MAX)),
            Some(json!(i64::MIN)),
            Some(json!(["vip", "BR"])),
            Some(json!([])),
            Some(json!({"a": 1})),
            Some(json!(true)),
        ];
        let rules = [
            (Operator::Eq, json!("BR")),
            (Operator::Neq, json!("BR")),
            (Operator::Neq, json!("")),
            (Operator::In, json!(["AR", "BR"])),
            (Operator::NotIn, json!(["AR", "BR"])),
            (Operator::Gt, json!(1000)),
            (Operator::Gte, json!(1000)),
            (Operator::Lt, json!(1000.5)),
            (Operator::Lte, json!(1000.5)),
            (Operator::Between, json!([999.99, 1000])),
            (Operator::Gte, json!(i64::MAX)),
            (Operator::Contains, json!("BR")),
            (Operator::NotContains, json!("vip")),
            (Operator::Contains, json!("a sixteen byte s")),
            (Operator::StartsWith, json!("B")),
            (Operator::EndsWith, json!("R")),
            (Operator::Regex, json!("^[A-Z]+$")),
        ];
        for (op, constant) in rules {
            let (fast, test) = check(op, constant.clone());
            for value in &values {
                assert_eq!(
                    fast.holds(&Seen::new(value.as_ref())),
                    eval::test(&test, value.as_ref()),
                    "{op} {constant} on {value:?}"
                );
            }
        }
    }
}
