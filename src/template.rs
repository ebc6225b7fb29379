//! Text params are templates over the condition fields: `Hello {{customer.first_name}}`.
//!
//! Built on minijinja (Jinja2 syntax, which operators know from other tools) rather than a
//! hand-written substitution: it gives filters (`{{event.amount | round(2)}}`), clear syntax
//! errors at save time, and a fuel limit so no template can run away.

use crate::conditions::Facts;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// Instruction budget of one rendering: ample for text, fatal for accidental loops.
const FUEL: u64 = 50_000;

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is longer than {MAX_TEMPLATE_LEN} bytes")]
    TooLong,
    #[error("invalid template: {0}")]
    Syntax(String),
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
        env
    })
}

/// Checks a template's syntax (at save time).
pub fn check(source: &str) -> Result<(), TemplateError> {
    if source.len() > MAX_TEMPLATE_LEN {
        return Err(TemplateError::TooLong);
    }
    environment()
        .template_from_str(source)
        .map(drop)
        .map_err(|e| TemplateError::Syntax(describe(&e)))
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

/// Renders `source` with `context` (see [`context`]).
pub fn render(source: &str, context: &Value) -> Result<String, TemplateError> {
    check(source)?;
    environment()
        .render_str(source, context)
        .map_err(|e| TemplateError::Render(describe(&e)))
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
        let looping = "{% for i in range(100000) %}{{i}}{% endfor %}";
        assert!(matches!(render(looping, &json!({})), Err(TemplateError::Render(_))));
    }
}
