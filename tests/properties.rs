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
        // The current language's pieces, so the soups reach deep into its parser.
        Just("{% elif customer.first_name == 'Ana' and not event.x %}".to_owned()),
        Just("{% else %}".to_owned()),
        Just("{%- endraw -%}".to_owned()),
        Just("{{- ".to_owned()),
        Just(" -}}".to_owned()),
        Just("#}".to_owned()),
        Just(" | truncate(3) ".to_owned()),
        Just(" | default('-') | title ".to_owned()),
        Just(" | date('%A %+') ".to_owned()),
        Just(" | number(2) ".to_owned()),
        Just("event.items[0]['a'].0".to_owned()),
        Just(" (".to_owned()),
        Just(") ".to_owned()),
        Just(" or ".to_owned()),
        Just(" >= -1.5 ".to_owned()),
        ".{0,8}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

/// Literal text between tags: anything but `{`, so it never opens a tag.
fn plain_text() -> impl Strategy<Value = String> {
    "[^{]{0,12}"
}

/// A field path of the bound test's context, or one that leads nowhere.
fn field_path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "event.a",
        "event.b",
        "event.n",
        "event.day",
        "event.list",
        "event.obj",
        "customer.name",
        "customer",
        "event.missing",
        "event.obj.inner",
        "event.list.0",
    ])
    .prop_map(str::to_owned)
}

/// One filter of the language, with literal arguments.
fn filter_call() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,10}".prop_map(|d| format!("default('{d}')")),
        Just("upper".to_owned()),
        Just("lower".to_owned()),
        Just("title".to_owned()),
        Just("trim".to_owned()),
        (0usize..40).prop_map(|n| format!("truncate({n})")),
        (0u32..4).prop_map(|n| format!("round({n})")),
        (0u32..3).prop_map(|n| format!("number({n})")),
        prop::sample::select(vec![
            "date",
            "date('%d/%m/%Y')",
            "date('%A %e %B %Y, %H:%M')",
            "date('%+')"
        ])
        .prop_map(str::to_owned),
    ]
}

/// `{{ base | filters }}`: a field or a literal through up to four filters.
fn substitution() -> impl Strategy<Value = String> {
    let base = prop_oneof![4 => field_path(), 1 => "[a-z ]{0,10}".prop_map(|s| format!("'{s}'"))];
    (base, prop::collection::vec(filter_call(), 0..5), any::<(bool, bool)>()).prop_map(|(base, filters, (l, r))| {
        let mut expr = base;
        for f in filters {
            expr.push_str(" | ");
            expr.push_str(&f);
        }
        format!(
            "{{{{{} {expr} {}}}}}",
            if l { "-" } else { "" },
            if r { "-" } else { "" }
        )
    })
}

/// A condition: a field, a comparison, `not`, `and`/`or`.
fn if_condition() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        field_path(),
        (
            field_path(),
            prop::sample::select(vec!["==", "!=", "<", ">", "<=", ">="]),
            prop_oneof![
                field_path(),
                (-5i32..2000).prop_map(|n| n.to_string()),
                "[a-z]{0,3}".prop_map(|s| format!("'{s}'")),
            ]
        )
            .prop_map(|(l, op, r)| format!("{l} {op} {r}")),
    ];
    (
        atom.clone(),
        prop::option::of((prop::sample::select(vec!["and", "or"]), any::<bool>(), atom)),
    )
        .prop_map(|(a, rest)| match rest {
            None => a,
            Some((join, not, b)) => format!("{a} {join} {}({b})", if not { "not " } else { "" }),
        })
}

/// A template of the language: text, substitutions and if blocks nested a few deep.
fn language_template() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        plain_text(),
        substitution(),
        Just("{# note #}".to_owned()),
        Just("{% raw %}{{ a }}{% endraw %}".to_owned())
    ];
    let node = leaf.prop_recursive(3, 24, 4, |inner| {
        let body = prop::collection::vec(inner, 0..4).prop_map(|n| n.concat());
        (
            if_condition(),
            body.clone(),
            prop::option::of((if_condition(), body.clone())),
            prop::option::of(body),
        )
            .prop_map(|(c, then, elif, otherwise)| {
                let mut s = format!("{{% if {c} %}}{then}");
                if let Some((c, b)) = elif {
                    s.push_str(&format!("{{% elif {c} %}}{b}"));
                }
                if let Some(b) = otherwise {
                    s.push_str(&format!("{{% else %}}{b}"));
                }
                s + "{% endif %}"
            })
    });
    prop::collection::vec(node, 0..12).prop_map(|n| n.concat())
}

/// Text of `len` bytes at most, made of `unit` repeated (cut at a char boundary).
fn sized(unit: &str, len: usize) -> String {
    let mut s = unit.repeat(len / unit.len().max(1) + 1);
    let mut cut = len.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

/// The longest text any value under the root renders to (a list or object as its JSON).
fn longest_value(value: &Value) -> usize {
    let children = match value {
        Value::Array(items) => items.iter().map(longest_value).max().unwrap_or(0),
        Value::Object(map) => map.values().map(longest_value).max().unwrap_or(0),
        _ => 0,
    };
    let own = match value {
        Value::Null => 0,
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    };
    own.max(children)
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

    /// The bound docs/security.md states, `template::output_bound`, holds for every
    /// template of the grammar over fields of any size up to the value cap.
    #[test]
    fn rendered_text_is_within_the_stated_bound(
        source in language_template(),
        units in prop::collection::vec(".{1,4}", 3),
        sizes in prop::collection::vec(0usize..=template::MAX_VALUE_LEN, 3),
        n in prop_oneof![any::<i64>().prop_map(Value::from), (-1e12f64..1e12).prop_map(Value::from), Just(json!("1500.50"))],
    ) {
        let context = json!({
            "event": {"a": sized(&units[0], sizes[0]), "b": sized(&units[1], sizes[1] / 64), "n": n,
                      "day": "2024-02-29T23:59:59+03:00", "list": [1, "two", null], "obj": {"inner": sized(&units[2], 40)}},
            "customer": {"name": sized(&units[2], sizes[2] / 8)},
        });
        prop_assert!(template::check(&source).is_ok(), "{source}: {:?}", template::check(&source));
        // Paths start below the root, so the root's own JSON is not a value they can reach.
        let longest = context.as_object().map_or(0, |m| m.values().map(longest_value).max().unwrap_or(0));
        let bound = template::output_bound(&source, longest).unwrap();
        prop_assert!(bound <= MAX_OUTPUT);
        if let Ok(out) = template::render(&source, &context) {
            prop_assert!(out.len() <= bound, "{} > {bound}: {source}", out.len());
        }
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

// ---------------------------------------------------------------------------------------
// The matcher's fast paths (issue 12) against a straightforward reference evaluation.
//
// Plans decide rules through specialised checks (short strings packed into integers, `in`
// as a scan of those, ordering on a float field as an f64 compare) and run each condition as
// a flat program. The reference below reads the semantics off the condition as written
// (docs/workflow-language.md, src/conditions/eval.rs) and walks it recursively on the raw
// JSON: every plan, explanation and pre-filter must agree with it.

/// Values a field may hold: the shapes the fast paths specialise on and their edges (the
/// 15/16-byte boundary of packed strings, numeric strings, integers past 2^53, fractions).
fn scalar_value() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(edge_values()),
        1 => any::<i32>().prop_map(Value::from),
        1 => (-2000.0f64..2000.0).prop_map(Value::from),
        1 => "[a-zA-Z0-9 ]{0,18}".prop_map(Value::from),
    ]
    .boxed()
}

fn edge_values() -> Vec<Value> {
    vec![
        json!(""),
        json!("BR"),
        json!("br"),
        json!("AR"),
        json!("vip"),
        json!("approved"),
        json!("x"),
        json!("x\u{0}"),
        json!("\u{e9}t\u{e9}"),
        json!("fifteen bytes.."),
        json!("sixteen bytes..."),
        json!("1000"),
        json!(" 1000.5 "),
        json!("2024-05-01T12:00:00Z"),
        json!("2024-05-01T14:00:00+02:00"),
        json!(0),
        json!(1000),
        json!(1000.0),
        json!(1000.5),
        json!(-3),
        json!(9_007_199_254_740_992i64),
        json!(9_007_199_254_740_993i64),
        json!(9_007_199_254_740_992.0),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(true),
        json!(false),
    ]
}

/// A field's value or its absence (`None`).
fn field_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        6 => scalar_value().prop_map(Some),
        2 => prop::collection::vec(scalar_value(), 0..4).prop_map(|v| Some(Value::Array(v))),
        1 => Just(Some(json!({"a": 1}))),
    ]
}

/// A constant of eq, neq, contains, in: a number, string or boolean.
fn constant() -> BoxedStrategy<Value> {
    scalar_value()
        .prop_filter("a scalar constant", |v| !v.is_null())
        .boxed()
}

/// A bound of an ordering test: a number or an RFC 3339 timestamp.
fn bound() -> BoxedStrategy<Value> {
    prop_oneof![
        scalar_value().prop_filter("a number", Value::is_number),
        prop::sample::select(vec![
            json!("2024-05-01T12:00:00Z"),
            json!("2024-05-01T11:59:59Z"),
            json!("2030-01-01T00:00:00+05:00"),
        ]),
    ]
    .boxed()
}

/// A valid rule on one of three fields, with a value of the shape its operator takes.
fn matcher_rule() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec!["event.a", "event.b", "customer.c"]);
    let value = prop_oneof![
        (
            prop::sample::select(vec!["eq", "neq", "contains", "not_contains"]),
            constant()
        )
            .prop_map(|(op, v)| (op, Some(v))),
        (prop::sample::select(vec!["gt", "gte", "lt", "lte"]), bound()).prop_map(|(op, v)| (op, Some(v))),
        (bound(), bound()).prop_filter_map("bounds of one kind", |(a, b)| {
            let key = |v: &Value| {
                v.as_f64()
                    .map(|f| (0, f, String::new()))
                    .unwrap_or((1, 0.0, v.to_string()))
            };
            let (ka, kb) = (key(&a), key(&b));
            (ka.0 == kb.0).then(|| {
                let ordered = if ka.1 < kb.1 || ka.0 == 1 && ka.2 <= kb.2 {
                    [a, b]
                } else {
                    [b, a]
                };
                ("between", Some(json!(ordered)))
            })
        }),
        (
            prop::sample::select(vec!["in", "not_in"]),
            prop::collection::vec(constant(), 1..6)
        )
            .prop_map(|(op, v)| (op, Some(Value::Array(v)))),
        (
            prop::sample::select(vec!["starts_with", "ends_with"]),
            prop::sample::select(vec!["", "B", "R", "vip", "bytes...", "00"])
        )
            .prop_map(|(op, v)| (op, Some(json!(v)))),
        prop::sample::select(vec!["^B", "R$", "^[a-z]+$", "[0-9]", "^$", "\u{e9}"])
            .prop_map(|p| ("regex", Some(json!(p)))),
        prop::sample::select(vec!["is_empty", "is_not_empty"]).prop_map(|op| (op, None)),
    ];
    (field, value).prop_map(|(field, (op, value))| match value {
        Some(value) => json!({"field": field, "operator": op, "value": value}),
        None => json!({"field": field, "operator": op}),
    })
}

fn matcher_condition() -> impl Strategy<Value = Value> {
    matcher_rule().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            (
                prop::sample::select(vec!["all", "any"]),
                prop::collection::vec(inner.clone(), 0..5)
            )
                .prop_map(|(m, rules)| json!({"match": m, "rules": rules})),
            inner.prop_map(|n| json!({"not": n})),
        ]
    })
}

/// The reference: the condition as written, walked recursively on the raw values.
fn reference(node: &Value, event: &Map<String, Value>, customer: &Map<String, Value>) -> bool {
    if let Some(group) = node.get("rules").and_then(Value::as_array) {
        // An empty group, `all` or `any`, holds (docs/workflow-language.md).
        let mut results = group.iter().map(|n| reference(n, event, customer));
        return match node["match"].as_str() {
            Some("all") => results.all(|r| r),
            _ => group.is_empty() || results.any(|r| r),
        };
    }
    if let Some(inner) = node.get("not") {
        return !reference(inner, event, customer);
    }
    let field = node["field"].as_str().unwrap_or_default();
    let seen = match field.split_once('.') {
        Some(("event", key)) => event.get(key),
        Some(("customer", key)) => customer.get(key),
        _ => None,
    };
    let op = node["operator"].as_str().unwrap_or_default();
    let c = node.get("value").unwrap_or(&Value::Null);
    let v = match seen {
        None | Some(Value::Null) => return op == "is_empty",
        Some(v) => v,
    };
    let geq =
        |o: Option<std::cmp::Ordering>| matches!(o, Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal));
    let leq = |o: Option<std::cmp::Ordering>| matches!(o, Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal));
    match op {
        "is_empty" => v == &json!("") || v == &json!([]),
        "is_not_empty" => !(v == &json!("") || v == &json!([])),
        "eq" => equal(v, c),
        "neq" => !equal(v, c),
        "gt" => order(v, c) == Some(std::cmp::Ordering::Greater),
        "gte" => geq(order(v, c)),
        "lt" => order(v, c) == Some(std::cmp::Ordering::Less),
        "lte" => leq(order(v, c)),
        "between" => geq(order(v, &c[0])) && leq(order(v, &c[1])),
        "in" => c.as_array().into_iter().flatten().any(|c| equal(v, c)),
        "not_in" => !c.as_array().into_iter().flatten().any(|c| equal(v, c)),
        "contains" => contains(v, c),
        "not_contains" => !contains(v, c),
        "starts_with" => v
            .as_str()
            .is_some_and(|s| s.starts_with(c.as_str().unwrap_or_default())),
        "ends_with" => v.as_str().is_some_and(|s| s.ends_with(c.as_str().unwrap_or_default())),
        "regex" => v
            .as_str()
            .is_some_and(|s| regex::Regex::new(c.as_str().unwrap_or_default()).is_ok_and(|re| re.is_match(s))),
        other => panic!("the strategy made no {other} rule"),
    }
}

/// Numbers as numbers (integers exactly), a numeric string as its number.
fn number_order(v: &Value, c: &Value) -> Option<std::cmp::Ordering> {
    match v {
        Value::Number(n) => match (n.as_i64(), c.as_i64()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => n.as_f64()?.partial_cmp(&c.as_f64()?),
        },
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())?
            .partial_cmp(&c.as_f64()?),
        _ => None,
    }
}

/// Against a number bound as a number, against a timestamp bound as an instant.
fn order(v: &Value, bound: &Value) -> Option<std::cmp::Ordering> {
    match bound {
        Value::String(t) => {
            let instant = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
            Some(instant(v.as_str()?)?.cmp(&instant(t)?))
        }
        _ => number_order(v, bound),
    }
}

fn equal(v: &Value, c: &Value) -> bool {
    match c {
        Value::Number(_) => number_order(v, c) == Some(std::cmp::Ordering::Equal),
        _ => v == c,
    }
}

fn contains(v: &Value, c: &Value) -> bool {
    match (v, c) {
        (Value::String(s), Value::String(c)) => s.contains(c.as_str()),
        (Value::Array(items), c) => items.iter().any(|i| equal(i, c)),
        _ => false,
    }
}

type FieldValues = (Option<Value>, Option<Value>, Option<Value>);

/// Builds one set of the workflows with these conditions and checks, for every event (the
/// fields `event.a`, `event.b`, `customer.c`), that a workflow is in the plan, that its
/// explanation says it matched, and that the pre-filter lets the event through exactly when
/// the reference holds.
fn agrees_with_reference(
    conditions: &[Value],
    facts: impl IntoIterator<Item = FieldValues>,
) -> Result<(), TestCaseError> {
    let schema = FieldSchema::default();
    let limits = Limits::default();
    let validator = Validator::new(&schema, limits);
    let workflows: Vec<_> = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let definition = json!({"id": format!("w{i}"), "name": "p", "trigger_event": "t.x", "conditions": c,
                                    "actions": [{"type": "add_note", "params": {"body": "x"}}]});
            validator
                .workflow(&definition)
                .map(|v| v.workflow)
                .map_err(|e| format!("{c}: {e:?}"))
        })
        .collect::<Result<_, _>>()
        .map_err(TestCaseError::fail)?;
    let (set, errors) = WorkflowSet::build(workflows, &limits);
    prop_assert!(errors.is_empty());
    for (a, b, c) in facts {
        let object = |fields: Vec<(&str, Option<Value>)>| -> Map<String, Value> {
            fields
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect()
        };
        let data = object(vec![("a", a), ("b", b)]);
        let customer = object(vec![("c", c)]);
        let event = EventEnvelope::from_value(json!({"id": "e", "type": "t.x", "customer_id": 1, "data": data}))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let facts = workflow_engine::conditions::Facts::new(&event, &customer);
        let mut planned: Vec<String> = set.plan(facts).iter().map(|w| w.id.clone()).collect();
        planned.sort();
        let expected: Vec<String> = conditions
            .iter()
            .enumerate()
            .filter(|(_, c)| reference(c, &data, &customer))
            .map(|(i, _)| format!("w{i}"))
            .collect();
        prop_assert_eq!(&planned, &expected, "data {:?} customer {:?}", data, customer);
        for e in &set.explain(facts).evaluated {
            prop_assert_eq!(e.matched, expected.contains(&e.workflow_id), "{}", e.workflow_id);
        }
        if !expected.is_empty() {
            prop_assert!(set.may_match(&event));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// One rule, alone and negated, on `event.a`, `event.b` or `customer.c` holding each of the
    /// edge values, the same in a one-element list, missing, null, and one arbitrary value.
    #[test]
    fn rules_agree_with_a_reference_evaluation(rule in matcher_rule(), extra in field_value()) {
        let mut values: Vec<Option<Value>> = edge_values().into_iter().map(Some).collect();
        values.extend(edge_values().into_iter().map(|v| Some(json!([v]))));
        values.extend([None, Some(Value::Null), Some(json!([])), extra]);
        let conditions = [rule.clone(), json!({"not": rule})];
        agrees_with_reference(&conditions, values.into_iter().map(|v| (v.clone(), v.clone(), v)))?;
    }

    /// Several workflows over the same three fields (so rules are interned and decided once
    /// per event across them), each against several events.
    #[test]
    fn plans_agree_with_a_reference_evaluation(
        conditions in prop::collection::vec(matcher_condition(), 1..5),
        facts in prop::collection::vec((field_value(), field_value(), field_value()), 1..6),
    ) {
        agrees_with_reference(&conditions, facts)?;
    }
}
