//! Property tests (issue 16): what reaches the engine from outside (event envelopes,
//! workflow definitions with their conditions, templates) never panics and stays bounded,
//! whatever its shape: arbitrary JSON, arbitrary strings, deep nesting. Case counts are
//! modest (256) so the suite stays fast.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use workflow_engine::conditions::Limits;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::plan::WorkflowSet;
use workflow_engine::schema::FieldSchema;
use workflow_engine::template::{self, MAX_OUTPUT};
use workflow_engine::validate::Validator;

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        prop_oneof![
            Just("customer.deposited"),
            Just("event.amount"),
            Just("customer.country"),
            Just("gte"),
            Just("in"),
            Just("regex"),
            Just("all"),
            Just("any"),
            Just("{{ customer.first_name }}"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("customer_id".to_owned()),
                    Just("data".to_owned()),
                    Just("field".to_owned()),
                    Just("operator".to_owned()),
                    Just("value".to_owned()),
                    Just("match".to_owned()),
                    Just("rules".to_owned()),
                    Just("not".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A condition node: rules, groups and nots, nested up to `depth`.
fn condition(depth: u32) -> impl Strategy<Value = Value> {
    let rule = (
        known_or_any(
            &["event.amount", "customer.country", "customer.email", "x.y"],
            ".{0,12}",
        ),
        known_or_any(
            &[
                "eq",
                "neq",
                "gt",
                "gte",
                "between",
                "in",
                "not_in",
                "contains",
                "starts_with",
                "regex",
                "is_empty",
            ],
            ".{0,6}",
        ),
        json_value(),
    )
        .prop_map(|(field, operator, value)| json!({"field": field, "operator": operator, "value": value}));
    rule.prop_recursive(depth, 256, 8, |inner| {
        prop_oneof![
            (
                prop_oneof![Just("all"), Just("any"), Just("most")],
                prop::collection::vec(inner.clone(), 0..8)
            )
                .prop_map(|(m, rules)| json!({"match": m, "rules": rules})),
            inner.prop_map(|n| json!({"not": n})),
        ]
    })
}

/// One of `known`, or arbitrary text matching `regex`.
fn known_or_any(known: &[&'static str], regex: &'static str) -> BoxedStrategy<String> {
    prop_oneof![prop::sample::select(known.to_vec()).prop_map(str::to_owned), regex].boxed()
}

/// `{"not": ... {"not": rule}}` `depth` times: deeper than any limit.
fn deep_not(depth: usize) -> Value {
    let mut node = json!({"field": "event.amount", "operator": "gt", "value": 1});
    for _ in 0..depth {
        let mut not = Map::new();
        not.insert("not".to_owned(), node);
        node = Value::Object(not);
    }
    node
}

/// A template made of pieces of real template syntax and arbitrary text.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{ ".to_owned()),
        Just(" }}".to_owned()),
        Just("{% for i in range(50) %}".to_owned()),
        Just("{% endfor %}".to_owned()),
        Just("{% if event.amount > 10 %}".to_owned()),
        Just("{% endif %}".to_owned()),
        Just("customer.first_name".to_owned()),
        Just("event.text".to_owned()),
        Just(" ~ ".to_owned()),
        Just(" * ".to_owned()),
        Just(" | join(event.text) ".to_owned()),
        Just(" | replace('a', event.text) ".to_owned()),
        Just(" | upper ".to_owned()),
        Just("range(9999)".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("{#".to_owned()),
        Just("{% raw %}".to_owned()),
        ".{0,8}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn envelope_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), value in json_value()) {
        let _ = EventEnvelope::decode(&bytes);
        let _ = EventEnvelope::decode(value.to_string().as_bytes());
        let _ = EventEnvelope::from_value(value);
    }

    #[test]
    fn workflow_validation_and_compilation_never_panic(conditions in condition(6), junk in json_value(), deep in 0usize..1500) {
        let schema = FieldSchema::default();
        let limits = Limits::default();
        let validator = Validator::new(&schema, limits);
        for conditions in [conditions, junk.clone(), deep_not(deep)] {
            let mut workflow = json!({"name": "p", "trigger_event": "customer.deposited",
                                      "actions": [{"type": "add_note", "params": {"body": "x"}}]});
            workflow["conditions"] = conditions;
            if let Ok(valid) = validator.workflow(&workflow) {
                // What validates also compiles into a set.
                let _ = WorkflowSet::build([valid.workflow], &limits);
            }
        }
        let _ = validator.workflow(&junk);
    }

    #[test]
    fn templates_never_panic_and_stay_bounded(source in template_text(), text in ".{0,64}", repeat in 0usize..2000) {
        let context = json!({"event": {"amount": 12, "text": text.repeat(repeat)}, "customer": {"first_name": "Ana"}});
        let checked = template::check(&source);
        if let Ok(out) = template::render(&source, &context) {
            prop_assert!(checked.is_ok());
            prop_assert!(out.len() <= MAX_OUTPUT);
        }
    }
}

/// Nesting far past every limit (the HTTP parser stops at 128, a Value built in code does
/// not): refused with an error, no stack overflow.
#[test]
fn very_deep_conditions_are_refused_not_overflowed() {
    let schema = FieldSchema::default();
    let validator = Validator::new(&schema, Limits::default());
    // Inserted, not passed through json! (which would serialize it, recursively).
    let mut workflow = json!({"name": "deep", "trigger_event": "customer.deposited",
                              "actions": [{"type": "add_note", "params": {"body": "x"}}]});
    workflow["conditions"] = deep_not(3000);
    assert!(validator.workflow(&workflow).is_err());
    // serde_json drops a deep Value recursively; take it apart iteratively.
    let mut node = workflow;
    loop {
        let key = if node.get("conditions").is_some() {
            "conditions"
        } else {
            "not"
        };
        match node.get_mut(key).map(Value::take) {
            Some(inner) => node = inner,
            None => break,
        }
    }
}
