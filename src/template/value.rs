//! The values a rendering handles, and the budget every one of them is charged to. A value
//! is borrowed from the context or the template where it can be, and becomes text only
//! through [`Budget::text`], which refuses text over [`MAX_VALUE_LEN`] and counts it
//! against [`MAX_WORK`]: that one function is where both limits hold.

use super::{Fail, MAX_VALUE_LEN, MAX_WORK};
use serde_json::Value;
use std::borrow::Cow;

/// Longest text read as a number or a date (`"2024-03-05T14:07:00.123456789+02:00"` is 35).
pub(crate) const SHORT_TEXT: usize = 64;

#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    /// A path that leads nowhere: renders empty, like a missing field in a condition.
    Missing,
    /// A value of the context or a literal of the template.
    Json(&'a Value),
    /// A filter's text.
    Text(Cow<'a, str>),
    /// `round`'s result: a number that renders as JSON does (`1500.5`, `1500.0`).
    Float(f64),
}

impl Val<'_> {
    /// Missing or none: what `default` replaces (with empty text) and filters pass through.
    pub fn is_absent(&self) -> bool {
        matches!(self, Val::Missing | Val::Json(Value::Null))
    }

    /// Jinja's truthiness: missing, none, false, zero, empty text, list or object are false.
    pub fn truthy(&self) -> bool {
        match self {
            Val::Missing => false,
            Val::Json(v) => match v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
            },
            Val::Text(t) => !t.is_empty(),
            Val::Float(f) => *f != 0.0,
        }
    }

    /// The value as a number: a JSON number, or text that reads as one (`"1500.00"`, common
    /// for money), as the condition language compares them.
    pub fn number(&self) -> Option<f64> {
        if let Val::Json(Value::Number(n)) = self {
            return n.as_f64();
        }
        if let Val::Float(f) = self {
            return Some(*f);
        }
        self.short_text()?.parse::<f64>().ok().filter(|f| f.is_finite())
    }

    /// Text of at most [`SHORT_TEXT`] bytes, trimmed: what may be read as a number or a
    /// date. Longer text is neither, which keeps reading it as one free of charge.
    pub fn short_text(&self) -> Option<&str> {
        let text = match self {
            Val::Json(Value::String(s)) => s.as_str(),
            Val::Text(t) => t,
            _ => return None,
        };
        (text.len() <= SHORT_TEXT).then(|| text.trim())
    }

    /// Whether the value is a string (a JSON string or a filter's text).
    pub fn is_text(&self) -> bool {
        matches!(self, Val::Text(_) | Val::Json(Value::String(_)))
    }

    /// A short description for error messages: the type, and text's first characters.
    pub fn describe(&self) -> String {
        match self {
            Val::Missing => "nothing".into(),
            Val::Json(Value::Null) => "none".into(),
            Val::Json(Value::Bool(_)) => "true or false".into(),
            Val::Json(Value::Number(_)) | Val::Float(_) => "a number".into(),
            Val::Json(Value::Array(_)) => "a list".into(),
            Val::Json(Value::Object(_)) => "an object".into(),
            Val::Json(Value::String(s)) => quote(s),
            Val::Text(t) => quote(t),
        }
    }
}

fn quote(s: &str) -> String {
    let head: String = s.chars().take(20).collect();
    if head.len() < s.len() {
        format!("text {head:?}...")
    } else {
        format!("text {head:?}")
    }
}

/// Bytes read and made so far in one rendering.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    spent: usize,
}

impl Budget {
    /// Charges `len` bytes, refusing past [`MAX_WORK`].
    pub fn charge(&mut self, len: usize, at: usize) -> Result<(), Fail> {
        self.spent = self.spent.saturating_add(len);
        if self.spent > MAX_WORK {
            return Err(Fail::Render(
                at,
                format!("the template reads or makes more than {MAX_WORK} bytes in all"),
            ));
        }
        Ok(())
    }

    /// A value made by a filter: refused over [`MAX_VALUE_LEN`], charged otherwise.
    pub fn made<'a>(&mut self, text: Cow<'a, str>, at: usize) -> Result<Val<'a>, Fail> {
        fits(text.len(), at)?;
        self.charge(text.len(), at)?;
        Ok(Val::Text(text))
    }

    /// The value as text: empty for missing and none, `true`/`false`, a number as JSON
    /// writes it, a list or object as compact JSON (serialized into a buffer that stops at
    /// the cap, so a big object costs no more than the cap).
    pub fn text<'a>(&mut self, value: &Val<'a>, at: usize) -> Result<Cow<'a, str>, Fail> {
        let text: Cow<'a, str> = match value {
            Val::Missing | Val::Json(Value::Null) => Cow::Borrowed(""),
            Val::Json(Value::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Val::Json(Value::Number(n)) => Cow::Owned(n.to_string()),
            Val::Json(Value::String(s)) => Cow::Borrowed(s.as_str()),
            Val::Json(v @ (Value::Array(_) | Value::Object(_))) => {
                let mut buffer = Capped::default();
                if serde_json::to_writer(&mut buffer, v).is_err() {
                    return Err(too_long(at));
                }
                // serde_json writes UTF-8; the buffer is never cut short on success.
                Cow::Owned(String::from_utf8(buffer.bytes).map_err(|e| Fail::Render(at, e.to_string()))?)
            }
            Val::Text(t) => t.clone(),
            Val::Float(f) => Cow::Owned(
                serde_json::Number::from_f64(*f)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
        };
        fits(text.len(), at)?;
        self.charge(text.len(), at)?;
        Ok(text)
    }
}

fn fits(len: usize, at: usize) -> Result<(), Fail> {
    if len > MAX_VALUE_LEN {
        return Err(too_long(at));
    }
    Ok(())
}

fn too_long(at: usize) -> Fail {
    Fail::Render(at, format!("a value is longer than {MAX_VALUE_LEN} bytes"))
}

/// A byte sink that refuses to grow past [`MAX_VALUE_LEN`].
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_VALUE_LEN {
            return Err(std::io::Error::other("value too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
