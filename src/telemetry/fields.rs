//! How the human-readable log lines write field values: with control characters escaped.
//!
//! Values that come from outside (an event's id or type, a customer's name in an error, a
//! URL) are logged as fields. tracing-subscriber's text format escapes ANSI sequences but
//! writes a newline as it is, so an event id of `"x\n2026-12-07T10:00:00Z  INFO ..."`
//! printed a second, forged log line. Here every value (and the message, which may carry
//! formatted values) is written with `\n`, `\r`, `\t` and every other control character
//! escaped, so one event is one line whatever it holds. The JSON format escapes by itself.

use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::format::{debug_fn, FormatFields};

/// The text format's field formatter: `name=value`, space-separated, values escaped.
pub fn escaped() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(|writer, field, value| {
        let raw = format!("{value:?}");
        let text = escape(&raw);
        if field.name() == "message" {
            writer.write_str(&text)
        } else {
            write!(writer, "{}={}", field.name(), text)
        }
    })
    .delimited(" ")
}

/// `text` with each control character written as an escape (`\n`, `\r`, `\t`, `\u{1b}`).
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A field value (and a formatted message) with a newline and an ANSI sequence stays on
    /// its line: no forged line follows, and the escapes are visible.
    #[test]
    fn an_outside_value_cannot_forge_a_log_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_target(false)
            .fmt_fields(escaped())
            .with_writer(move || writer.clone())
            .finish();
        let forged = "e1\n2026-12-07T10:00:00.000000Z  INFO partition owned partition=0\x1b[31m";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("run", run_id = 7, event_id = %forged);
            let _entered = span.enter();
            tracing::warn!(event_id = %forged, trigger = ?forged, "event refused: {}", forged);
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(r"event_id=e1\n2026-12-07T10:00:00.000000Z"), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("run{run_id=7"), "{text}");
    }

    #[test]
    fn plain_text_is_left_as_it_is() {
        assert!(matches!(escape("Ana Costa, desk 3"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(escape("a\tb\r\n"), r"a\tb\r\n");
    }
}
