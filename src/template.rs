//! Text params are templates over the condition fields: `Hello {{customer.first_name}}`.
//!
//! Built on minijinja (Jinja2 syntax, which operators know from other tools) rather than a
//! hand-written substitution: it gives filters (`{{event.amount | round(2)}}`), clear syntax
//! errors at save time, and a fuel limit so no template can run away.
//!
//! Templates are written by workflow authors and rendered inside the engine's process,
//! so a template must not be able to exhaust its memory or time (issue 16: `{{ "x" *
//! 100000000 }}` in a loop aborted the process inside a transaction, on every restart).
//! Fuel bounds time, but one minijinja instruction can build a 100 MB string, so sizes are
//! bounded separately:
//! - the rendered text goes into a writer that refuses more than [`MAX_OUTPUT`] bytes;
//! - nothing can accumulate a value across instructions: `set`, `with`, macros, `filter`
//!   blocks, includes and recursive loops are refused (statically, see [`check`]), and
//!   `namespace` and `debug` are removed;
//! - the operators and filters that multiply a size are refused or capped: `*` is refused,
//!   at most [`MAX_CONCATS`] `~`/`+` per template, `join` and `replace` are replaced by
//!   versions that refuse results over [`MAX_VALUE`], `indent`, `format`, `pprint` and
//!   `tojson` are removed, `range` yields at most [`MAX_RANGE`] numbers.
//!
//! What remains is linear in the template and its context: at most `MAX_CONCATS + 1`
//! copies of the largest context string in one value, and the context comes from an event
//! and a customer whose sizes the API and the broker bound.

use crate::conditions::Facts;
use minijinja::value::Value as JinjaValue;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// Instruction budget of one rendering. Sized for real templates: a message that loops
/// over a 500-element list with a few fields per element uses about 10,000; the rest of a
/// 16 KiB template cannot use more than a few thousand without a loop.
const FUEL: u64 = 50_000;

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 16 * 1024;

/// Longest rendered text, in bytes: an email body or a webhook field, with room to spare.
pub const MAX_OUTPUT: usize = 256 * 1024;

/// Largest value `join` and `replace` may build, in bytes.
pub const MAX_VALUE: usize = MAX_OUTPUT;

/// Most numbers `range` yields (minijinja's own limit is 100,000).
pub const MAX_RANGE: usize = 10_000;

/// Most string concatenations (`~` or `+`) in one template.
pub const MAX_CONCATS: usize = 64;

/// Deepest nesting of loops and blocks.
const RECURSION_LIMIT: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is longer than {MAX_TEMPLATE_LEN} bytes")]
    TooLong,
    #[error("invalid template: {0}")]
    Syntax(String),
    /// A construct refused because it can build unbounded values (see the module doc).
    #[error("template not allowed: {0}")]
    Forbidden(String),
    #[error("template output is longer than {MAX_OUTPUT} bytes")]
    OutputTooLong,
    #[error("template failed to render: {0}")]
    Render(String),
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A field missing from one event renders empty instead of failing the whole step,
        // and `customer.address.city` on a missing address is empty too.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        // Filters whose output size is set by an argument (or, for tojson and pprint,
        // doubles when chained) are removed; `map("indent", ..)` cannot reach them either.
        for filter in REMOVED_FILTERS {
            env.remove_filter(filter);
        }
        env.add_filter("join", capped_join);
        env.add_filter("replace", capped_replace);
        // `namespace` is the only mutable state across loop iterations; `debug` dumps the
        // whole context.
        env.remove_global("namespace");
        env.remove_global("debug");
        env.add_function("range", capped_range);
        env
    })
}

fn too_big(what: &str) -> minijinja::Error {
    minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("{what} would be longer than {MAX_VALUE} bytes"),
    )
}

/// `join` that refuses a result over [`MAX_VALUE`] before building it further.
fn capped_join(value: JinjaValue, joiner: Option<String>) -> Result<String, minijinja::Error> {
    let joiner = joiner.unwrap_or_default();
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        let text = match item.as_str() {
            Some(s) => s.to_owned(),
            None => item.to_string(),
        };
        let extra = if i > 0 { joiner.len() } else { 0 };
        if out.len() + extra + text.len() > MAX_VALUE {
            return Err(too_big("join"));
        }
        if i > 0 {
            out.push_str(&joiner);
        }
        out.push_str(&text);
    }
    Ok(out)
}

/// `replace` that computes the result's length first and refuses one over [`MAX_VALUE`].
fn capped_replace(value: String, from: String, to: String) -> Result<String, minijinja::Error> {
    if to.len() > from.len() {
        let hits = if from.is_empty() {
            value.chars().count() + 1
        } else {
            value.matches(from.as_str()).count()
        };
        let grown = hits.saturating_mul(to.len() - from.len());
        if value.len().saturating_add(grown) > MAX_VALUE {
            return Err(too_big("replace"));
        }
    }
    Ok(value.replace(from.as_str(), &to))
}

/// `range` with at most [`MAX_RANGE`] numbers.
fn capped_range(lower: i64, upper: Option<i64>, step: Option<i64>) -> Result<JinjaValue, minijinja::Error> {
    let (lo, hi) = match upper {
        Some(hi) => (lower, hi),
        None => (0, lower),
    };
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "range step cannot be 0",
        ));
    }
    let span = if step > 0 {
        hi.saturating_sub(lo)
    } else {
        lo.saturating_sub(hi)
    };
    let len = if span <= 0 {
        0
    } else {
        (span.unsigned_abs()).div_ceil(step.unsigned_abs())
    };
    if len > MAX_RANGE as u64 {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("range has more than {MAX_RANGE} elements"),
        ));
    }
    let items: Vec<i64> = (0..len as i64).map(|i| lo + i * step).collect();
    Ok(JinjaValue::from(items))
}

/// Checks a template's syntax and that it uses only bounded constructs (at save time, and
/// again before every rendering, so a template stored before a rule existed fails its
/// step instead of running).
pub fn check(source: &str) -> Result<(), TemplateError> {
    if source.len() > MAX_TEMPLATE_LEN {
        return Err(TemplateError::TooLong);
    }
    scan(source)?;
    environment()
        .template_from_str(source)
        .map(drop)
        .map_err(|e| TemplateError::Syntax(describe(&e)))
}

/// Filters whose output size is set by an argument, or doubles when chained.
const REMOVED_FILTERS: [&str; 4] = ["indent", "format", "pprint", "tojson"];

/// Statements a template may use: conditions and loops over data.
const STATEMENTS: [&str; 9] = ["if", "elif", "else", "endif", "for", "endfor", "raw", "endraw", ""];

/// A lexical pass over the tags (`{{ }}`, `{% %}`; comments and raw blocks skipped) that
/// refuses what the module doc lists. String literals are skipped, so `"a * b"` is text.
fn scan(source: &str) -> Result<(), TemplateError> {
    let forbid = |what: String| Err(TemplateError::Forbidden(what));
    let mut concats = 0usize;
    let mut rest = source;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let (close, is_statement) = match after.as_bytes().first() {
            Some(b'{') => ("}}", false),
            Some(b'%') => ("%}", true),
            Some(b'#') => {
                match after.find("#}") {
                    Some(end) => rest = &after[end + 2..],
                    None => return Ok(()),
                }
                continue;
            }
            _ => {
                rest = after;
                continue;
            }
        };
        let body_start = &after[1..];
        let Some(end) = tag_end(body_start, close) else {
            return Ok(()); // unterminated: the parser reports it
        };
        let body = &body_start[..end];
        rest = &body_start[end + 2..];
        let code = code_of(body);
        let code = code.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        if is_statement {
            let keyword: String = code
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !STATEMENTS.contains(&keyword.as_str()) {
                return forbid(format!(
                    "the {{% {keyword} %}} statement (only if, for and raw are allowed in templates)"
                ));
            }
            if keyword == "raw" {
                // Everything up to {% endraw %} is text.
                match rest.find("endraw") {
                    Some(at) => rest = &rest[at..],
                    None => return Ok(()),
                }
                continue;
            }
        }
        if code.contains('*') {
            return forbid("the * operator (it can build huge strings)".to_owned());
        }
        concats += code.matches(['~', '+']).count();
        if concats > MAX_CONCATS {
            return forbid(format!("more than {MAX_CONCATS} concatenations (~ or +)"));
        }
        if identifiers(code).contains(&"recursive") {
            return forbid("recursive loops".to_owned());
        }
        for (at, _) in code.match_indices('|') {
            let name: String = code[at + 1..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if REMOVED_FILTERS.contains(&name.as_str()) {
                return forbid(format!("the {name} filter (its output size has no bound)"));
            }
        }
        check_range_literals(code)?;
    }
    Ok(())
}

/// Where `close` ends a tag body, skipping string literals.
fn tag_end(body: &str, close: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut quote = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if bytes[i..].starts_with(close.as_bytes()) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// A tag body with every string literal emptied, so operators inside text are not seen.
fn code_of(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut quote = None;
    let mut escaped = false;
    for c in body.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
            None => {
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

fn identifiers(code: &str) -> Vec<&str> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// `range(N)` with a literal bound over [`MAX_RANGE`] is refused at save time with the
/// number, rather than failing every run.
fn check_range_literals(code: &str) -> Result<(), TemplateError> {
    let mut rest = code;
    while let Some(at) = rest.find("range") {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'));
        let after = rest[at + 5..].trim_start();
        rest = &rest[at + 5..];
        if !before_ok || !after.starts_with('(') {
            continue;
        }
        let args = &after[1..after.find(')').unwrap_or(after.len())];
        let bounds: Vec<i128> = args
            .split(',')
            .filter_map(|a| a.trim().replace('_', "").parse().ok())
            .collect();
        let len = match bounds.as_slice() {
            [hi] => *hi,
            [lo, hi] => hi - lo,
            [lo, hi, step] if *step != 0 => (hi - lo) / step,
            _ => 0,
        };
        if len > MAX_RANGE as i128 {
            return Err(TemplateError::Forbidden(format!(
                "range({args}) has more than {MAX_RANGE} elements"
            )));
        }
    }
    Ok(())
}

/// A `String` sink that refuses to grow past [`MAX_OUTPUT`].
struct CappedWriter {
    out: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_OUTPUT {
            self.overflowed = true;
            return Err(std::io::Error::other("template output too long"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The variables a template sees: the same namespaces as conditions.
pub fn context(facts: &Facts<'_>) -> Value {
    let data = &facts.event.data;
    let part = |key: &str| data.get(key).cloned().unwrap_or(Value::Object(Map::new()));
    serde_json::json!({
        "event": data,
        "transaction": part("transaction"),
        "order": part("order"),
        "call": part("call"),
        "task": part("task"),
        "customer": facts.customer,
    })
}

/// Renders `source` with `context` (see [`context`]), into at most [`MAX_OUTPUT`] bytes.
pub fn render(source: &str, context: &Value) -> Result<String, TemplateError> {
    check(source)?;
    let template = environment()
        .template_from_str(source)
        .map_err(|e| TemplateError::Syntax(describe(&e)))?;
    let mut writer = CappedWriter {
        out: Vec::new(),
        overflowed: false,
    };
    match template.render_captured_to(context, &mut writer) {
        Ok(_) => String::from_utf8(writer.out).map_err(|e| TemplateError::Render(e.to_string())),
        Err(_) if writer.overflowed => Err(TemplateError::OutputTooLong),
        Err(e) => Err(TemplateError::Render(describe(&e))),
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{detail} (line {})", e.line().unwrap_or(1)),
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EventEnvelope;
    use serde_json::json;

    #[test]
    fn renders_fields_and_missing_ones_as_empty() {
        let event = EventEnvelope::decode(br#"{"id":"1","type":"customer.deposited","customer_id":1,"data":{"amount":1500,"transaction":{"type":"deposit"}}}"#).unwrap();
        let customer = json!({"first_name": "Ana"}).as_object().cloned().unwrap();
        let ctx = context(&Facts {
            event: &event,
            customer: &customer,
        });
        let text = render(
            "Hi {{customer.first_name}}{{customer.nick.name}}, {{event.amount}} via {{transaction.type}}",
            &ctx,
        )
        .unwrap();
        assert_eq!(text, "Hi Ana, 1500 via deposit");
    }

    #[test]
    fn syntax_errors_and_runaway_templates_are_errors() {
        assert!(matches!(
            check("Hi {{customer.first_name"),
            Err(TemplateError::Syntax(_))
        ));
        // Within every size cap, but past the fuel.
        let looping = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}";
        assert!(matches!(render(looping, &json!({})), Err(TemplateError::Render(_))));
    }

    /// Issue 16's bomb: refused before it runs, at save time and at run time.
    #[test]
    fn the_issue_bomb_is_an_error_not_an_abort() {
        let bomb = r#"{% for i in range(1000) %}{{ "x" * 100000000 }}{% endfor %}"#;
        assert!(
            matches!(check(bomb), Err(TemplateError::Forbidden(_))),
            "{:?}",
            check(bomb)
        );
        assert!(matches!(render(bomb, &json!({})), Err(TemplateError::Forbidden(_))));
    }

    #[test]
    fn rendered_output_is_capped() {
        // Each piece is small; together they pass the cap.
        let ctx = json!({"event": {"text": "y".repeat(10_000)}});
        let looping = "{% for i in range(100) %}{{ event.text }}{% endfor %}";
        assert_eq!(render(looping, &ctx), Err(TemplateError::OutputTooLong));
        let one = "{{ event.text }}";
        assert_eq!(render(one, &ctx).unwrap().len(), 10_000);
    }

    #[test]
    fn values_cannot_be_accumulated_or_multiplied() {
        for (source, what) in [
            ("{% set s = 'x' %}{{ s }}", "set"),
            (
                "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                "set",
            ),
            ("{% macro m(s) %}{{ s ~ s }}{% endmacro %}{{ m('x') }}", "macro"),
            ("{% filter upper %}x{% endfilter %}", "filter"),
            ("{% with a = 1 %}{{ a }}{% endwith %}", "with"),
            (
                "{% for s in ['x'] recursive %}{{ loop([s ~ s]) }}{% endfor %}",
                "recursive",
            ),
            ("{{ [event.x] * 1000 }}", "*"),
            ("{{ range(100000000) | join }}", "range"),
            (
                &format!("{{{{ {} }}}}", vec!["event.x"; MAX_CONCATS + 2].join(" ~ ")),
                "concatenations",
            ),
        ] {
            match check(source) {
                Err(TemplateError::Forbidden(message)) => assert!(message.contains(what), "{source}: {message}"),
                other => panic!("{source}: {other:?}"),
            }
        }
        // Operators inside string literals are text.
        assert_eq!(
            render("{{ 'a * b ~ {% set %}' }}", &json!({})).unwrap(),
            "a * b ~ {% set %}"
        );
    }

    #[test]
    fn amplifying_filters_are_capped_or_removed() {
        let ctx = json!({"event": {"text": "y".repeat(1000)}});
        assert!(render("{{ range(1000) | join(event.text) }}", &ctx).is_err());
        assert!(render("{{ event.text | replace('y', event.text) }}", &ctx).is_err());
        assert!(check("{{ event.text | indent(100000000) }}").is_err());
        assert!(check("{{ event.text | tojson | tojson }}").is_err());
        assert!(render("{{ range(100) | map('indent', 100000000) | join }}", &ctx).is_err());
        assert!(render("{{ x }}", &json!({"x": 1})).is_ok());
        // Within the caps they behave as before.
        assert_eq!(render("{{ [1, 2, 3] | join(', ') }}", &json!({})).unwrap(), "1, 2, 3");
        assert_eq!(
            render("{{ 'a-b' | replace('-', ' and ') }}", &json!({})).unwrap(),
            "a and b"
        );
        assert_eq!(
            render("{% for i in range(2, 8, 2) %}{{ i }}{% endfor %}", &json!({})).unwrap(),
            "246"
        );
        assert_eq!(
            render("{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}", &json!({})).unwrap(),
            "321"
        );
    }

    #[test]
    fn real_templates_still_render() {
        let ctx = json!({"customer": {"first_name": "ana", "tags": ["vip", "br"]}, "event": {"amount": 1500.456}});
        let source = "{% if event.amount >= 1000 %}Dear {{ customer.first_name | title }}{% else %}Hi{% endif %}, \
                      {{ event.amount | round(2) }}{% for t in customer.tags %} #{{ t | upper }}{% endfor %}\
                      {# a note #}{% raw %}{{ literal }}{% endraw %} {{ customer.first_name ~ '!' }}";
        assert_eq!(
            render(source, &ctx).unwrap(),
            "Dear Ana, 1500.46 #VIP #BR{{ literal }} ana!"
        );
    }
}
