//! The filters, each with the largest output it can make from an input of a given size
//! ([`Filter::bound`]). Arguments are literals checked when the template is parsed, so a
//! filter's growth is known before anything renders; [`Filter::apply`] checks its result
//! against the same function, so the bound holds by construction, not by assumption.

use super::value::{Budget, Val};
use super::{Fail, MAX_VALUE_LEN};
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write;

/// The filters there are, for messages.
pub(crate) const NAMES: &str = "default, upper, lower, title, trim, truncate, round, number, date";

/// Most decimals `round` and `number` write.
pub(crate) const MAX_DECIMALS: u32 = 10;

/// Longest text of a rounded number: JSON writes a float in at most 24 bytes
/// (`-1.7976931348623157e308`), a whole number in at most 20.
const ROUNDED_LEN: usize = 24;

/// Longest text a date format item other than literal text writes (`%+` with nanoseconds
/// and a year past 9999 is under 40).
const DATE_ITEM_LEN: usize = 64;

/// Most bytes one character's case mapping takes, per byte of the character: `ΐ` (2
/// bytes) upper-cases to three characters of 2 bytes (checked over every char in tests).
pub(crate) const CASE_GROWTH: usize = 3;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    /// Replaces missing, none and empty text with the literal's text.
    Default(String),
    Upper,
    Lower,
    Title,
    Trim,
    /// At most this many characters; a cut text ends with `...` within them.
    Truncate(usize),
    /// A number rounded to this many decimals, written as JSON writes numbers.
    Round(u32),
    /// A number with thousands separators and exactly this many decimals.
    Number(u32),
    /// A date or time written with this chrono (strftime) format.
    Date(String),
}

impl Filter {
    /// The filter `name` with literal `args`, refusing unknown filters and bad arguments.
    pub fn new(name: &str, args: &[Value], at: usize) -> Result<Filter, Fail> {
        let bad = |what: &str| Fail::Syntax(at, format!("`{name}` takes {what}"));
        let no_args = |filter: Filter| {
            if args.is_empty() {
                Ok(filter)
            } else {
                Err(bad("no arguments"))
            }
        };
        let count = |n: u64, max: u64, what: &str| {
            match args {
                [] => Ok(None),
                [Value::Number(v)] => v.as_u64().filter(|v| *v <= max).map(Some).ok_or_else(|| bad(what)),
                _ => Err(bad(what)),
            }
            .map(|v| v.unwrap_or(n))
        };
        let decimals = format!("one whole number of decimals from 0 to {MAX_DECIMALS}");
        Ok(match name {
            "default" | "d" => match args {
                [] => Filter::Default(String::new()),
                [Value::String(s)] => Filter::Default(s.clone()),
                [v @ (Value::Number(_) | Value::Bool(_))] => Filter::Default(v.to_string()),
                _ => return Err(bad("one text, number or boolean")),
            },
            "upper" => no_args(Filter::Upper)?,
            "lower" => no_args(Filter::Lower)?,
            "title" => no_args(Filter::Title)?,
            "trim" => no_args(Filter::Trim)?,
            "truncate" => Filter::Truncate(count(255, MAX_VALUE_LEN as u64, "one length in characters")? as usize),
            "round" => Filter::Round(count(0, MAX_DECIMALS.into(), &decimals)? as u32),
            "number" => Filter::Number(count(0, MAX_DECIMALS.into(), &decimals)? as u32),
            "date" => match args {
                [] => Filter::Date("%Y-%m-%d".into()),
                [Value::String(format)] => {
                    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
                        return Err(Fail::Syntax(at, format!("invalid date format {format:?}")));
                    }
                    Filter::Date(format.clone())
                }
                _ => return Err(bad("one format text, like \"%Y-%m-%d\"")),
            },
            _ => {
                return Err(Fail::Forbidden(
                    at,
                    format!("the `{name}` filter is not available (filters: {NAMES})"),
                ))
            }
        })
    }

    /// The filter's name as written, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Filter::Default(_) => "default",
            Filter::Upper => "upper",
            Filter::Lower => "lower",
            Filter::Title => "title",
            Filter::Trim => "trim",
            Filter::Truncate(_) => "truncate",
            Filter::Round(_) => "round",
            Filter::Number(_) => "number",
            Filter::Date(_) => "date",
        }
    }

    /// The longest output this filter makes from an input of `input` bytes.
    pub fn bound(&self, input: usize) -> usize {
        match self {
            Filter::Default(text) => input.max(text.len()),
            Filter::Upper | Filter::Lower | Filter::Title => input.saturating_mul(CASE_GROWTH),
            Filter::Trim => input,
            Filter::Truncate(chars) => input.min(chars.saturating_mul(4)),
            Filter::Round(_) => ROUNDED_LEN,
            Filter::Number(decimals) => number_len(*decimals),
            Filter::Date(format) => date_len(format),
        }
    }

    /// Applies the filter. Missing and none pass through every filter but `default`, so a
    /// missing field still renders empty.
    pub fn apply<'a>(&'a self, value: Val<'a>, budget: &mut Budget, at: usize) -> Result<Val<'a>, Fail> {
        if let Filter::Default(text) = self {
            let empty = value.is_absent() || (value.is_text() && budget.text(&value, at)?.is_empty());
            return Ok(if empty { Val::Text(Cow::Borrowed(text)) } else { value });
        }
        if value.is_absent() {
            return Ok(value);
        }
        if let Filter::Round(decimals) = self {
            // A whole JSON number is already round, and stays as written (as minijinja did).
            if let Val::Json(Value::Number(n)) = &value {
                if n.is_i64() || n.is_u64() {
                    return Ok(value);
                }
            }
            return Ok(Val::Float(round(number(&value, "round", at)?, *decimals)));
        }
        let (input, made) = match self {
            Filter::Number(decimals) => (0, Cow::Owned(thousands(&value, *decimals, at)?)),
            Filter::Date(format) => (0, Cow::Owned(date(&value, format, at)?)),
            _ => {
                let text = budget.text(&value, at)?;
                let input = text.len();
                let made = match self {
                    Filter::Upper => Cow::Owned(text.to_uppercase()),
                    Filter::Lower => Cow::Owned(text.to_lowercase()),
                    Filter::Title => Cow::Owned(title(&text)),
                    Filter::Truncate(chars) => truncate(text, *chars),
                    Filter::Trim => match text {
                        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
                    },
                    // The other filters returned above; leaving the text as it is cannot
                    // break a bound (and `unreachable!` could panic on outside input).
                    _ => text,
                };
                (input, made)
            }
        };
        if made.len() > self.bound(input) {
            return Err(Fail::Render(at, format!("`{}` made more than its bound", self.name())));
        }
        budget.made(made, at)
    }
}

fn number(value: &Val<'_>, filter: &str, at: usize) -> Result<f64, Fail> {
    value
        .number()
        .ok_or_else(|| Fail::Render(at, format!("`{filter}` needs a number, got {}", value.describe())))
}

/// Rounds half away from zero; a number too large to scale is already whole.
fn round(value: f64, decimals: u32) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    let rounded = (value * scale).round() / scale;
    if rounded.is_finite() {
        rounded
    } else {
        value
    }
}

/// Longest `number` text: sign, 309 integer digits of the largest float, a separator per
/// three of them, the point and the decimals.
pub(crate) fn number_len(decimals: u32) -> usize {
    1 + 309 + 103 + 1 + decimals as usize
}

/// `1234567.891` with 2 decimals is `1,234,567.89`. Whole JSON numbers are written exactly.
fn thousands(value: &Val<'_>, decimals: u32, at: usize) -> Result<String, Fail> {
    let plain = match value {
        Val::Json(Value::Number(n)) if decimals == 0 && (n.is_i64() || n.is_u64()) => n.to_string(),
        _ => format!("{:.*}", decimals as usize, number(value, "number", at)?),
    };
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain.as_str()),
    };
    let (whole, fraction) = match digits.find('.') {
        Some(point) => digits.split_at(point),
        None => (digits, ""),
    };
    let mut out = String::with_capacity(plain.len() + whole.len() / 3);
    out.push_str(sign);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(fraction);
    Ok(out)
}

/// Upper-cases the first letter of each word and lower-cases the rest, as Jinja's `title`.
fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_word = false;
    for c in text.chars() {
        if in_word {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        in_word = c.is_alphanumeric();
    }
    out
}

/// At most `chars` characters; a text that was cut ends with `...` within them.
fn truncate(text: Cow<'_, str>, chars: usize) -> Cow<'_, str> {
    let Some((cut, _)) = text.char_indices().nth(chars) else {
        return text;
    };
    if chars < 3 {
        return match text {
            Cow::Borrowed(s) => Cow::Borrowed(&s[..cut]),
            Cow::Owned(s) => Cow::Owned(s[..cut].to_owned()),
        };
    }
    let keep = text.char_indices().nth(chars - 3).map_or(cut, |(i, _)| i);
    Cow::Owned(format!("{}...", &text[..keep]))
}

/// Longest text of `format`: its literal text, and [`DATE_ITEM_LEN`] per other item.
pub(crate) fn date_len(format: &str) -> usize {
    StrftimeItems::new(format)
        .map(|item| match item {
            Item::Literal(s) | Item::Space(s) => s.len(),
            Item::OwnedLiteral(s) | Item::OwnedSpace(s) => s.len(),
            _ => DATE_ITEM_LEN,
        })
        .sum()
}

/// A date or time from RFC 3339 text, `YYYY-MM-DD[ HH:MM:SS]` text (UTC), or epoch seconds.
fn parse_date(value: &Val<'_>) -> Option<DateTime<FixedOffset>> {
    let utc = FixedOffset::east_opt(0)?;
    if let Val::Json(Value::Number(n)) = value {
        return DateTime::from_timestamp(n.as_i64()?, 0).map(|t| t.with_timezone(&utc));
    }
    let text = value.short_text()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t);
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().with_timezone(&utc));
        }
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().with_timezone(&utc))
}

fn date(value: &Val<'_>, format: &str, at: usize) -> Result<String, Fail> {
    let time = parse_date(value)
        .ok_or_else(|| Fail::Render(at, format!("`date` needs a date or time, got {}", value.describe())))?;
    let mut out = String::new();
    // `write!` reports a format chrono cannot apply as an error; `to_string` would panic.
    write!(out, "{}", time.format_with_items(StrftimeItems::new(format)))
        .map_err(|_| Fail::Render(at, format!("cannot write the date with {format:?}")))?;
    Ok(out)
}
