//! The language, construct by construct: substitution, each filter, if/elif/else, raw,
//! comments, whitespace control, errors with their positions, the refused minijinja forms,
//! and the limits.

use super::*;
use crate::envelope::EventEnvelope;
use serde_json::json;

fn r(source: &str, context: &Value) -> String {
    render(source, context).unwrap_or_else(|e| panic!("{source}: {e}"))
}

fn at(line: usize, column: usize) -> Position {
    Position { line, column }
}

#[test]
fn renders_fields_and_missing_ones_as_empty() {
    let event = EventEnvelope::decode(br#"{"id":"1","type":"customer.deposited","customer_id":1,"data":{"amount":1500,"transaction":{"type":"deposit"}}}"#).unwrap();
    let customer = json!({"first_name": "Ana"}).as_object().cloned().unwrap();
    let ctx = context(&Facts::new(&event, &customer));
    let text = r(
        "Hi {{customer.first_name}}{{customer.nick.name}}, {{event.amount}} via {{transaction.type}}",
        &ctx,
    );
    assert_eq!(text, "Hi Ana, 1500 via deposit");
}

#[test]
fn values_render_as_text() {
    let ctx = json!({"e": {"n": null, "t": true, "f": 2.5, "i": -3, "list": [1, "a"], "obj": {"k": "v"},
                           "items": [{"name": "first"}], "odd key": "yes"}});
    assert_eq!(
        r("{{e.n}}|{{e.t}}|{{e.f}}|{{e.i}}|{{e.list}}|{{e.obj}}", &ctx),
        "|true|2.5|-3|[1,\"a\"]|{\"k\":\"v\"}"
    );
    assert_eq!(
        r("{{ e.items.0.name }} {{ e.items[0]['name'] }} {{ e['odd key'] }}", &ctx),
        "first first yes"
    );
    assert_eq!(r("{{ e.items.5.name }}{{ e.t.x }}", &ctx), "");
    assert_eq!(
        r("{{ 'it\\'s' }}{{ \"a\\\"b\" }} {{ 42 }} {{ none }}", &json!({})),
        "it'sa\"b 42 "
    );
}

#[test]
fn each_filter() {
    let ctx = json!({"c": {"name": "  ana MARIA  ", "empty": "", "n": 1234567.891, "i": 1234567, "neg": -1234.5,
                           "money": "1500.456", "day": "2024-03-05", "at": "2024-03-05T14:07:00+02:00", "epoch": 0}});
    for (source, expected) in [
        ("{{ c.missing | default('x') }}", "x"),
        ("{{ c.empty | default('x') }}", "x"),
        ("{{ c.name | default('x') }}", "  ana MARIA  "),
        ("{{ c.missing | d(0) }}", "0"),
        ("{{ c.missing | default }}", ""),
        ("{{ c.name | trim }}", "ana MARIA"),
        ("{{ c.name | trim | upper }}", "ANA MARIA"),
        ("{{ c.name | trim | lower }}", "ana maria"),
        ("{{ c.name | trim | title }}", "Ana Maria"),
        ("{{ 'o\\'neil-smith x2y' | title }}", "O'Neil-Smith X2y"),
        ("{{ c.name | trim | truncate(6) }}", "ana..."),
        ("{{ c.name | trim | truncate(9) }}", "ana MARIA"),
        ("{{ c.name | trim | truncate(2) }}", "an"),
        ("{{ 'ação' | truncate(4) }}", "ação"),
        ("{{ 'ação!' | truncate(4) }}", "a..."),
        ("{{ c.n | round(2) }}", "1234567.89"),
        ("{{ c.n | round }}", "1234568.0"),
        ("{{ c.money | round(2) }}", "1500.46"),
        ("{{ c.i | round(2) }}", "1234567"),
        ("{{ 2.5 | round }}", "3.0"),
        ("{{ c.i | number }}", "1,234,567"),
        ("{{ c.n | number(2) }}", "1,234,567.89"),
        ("{{ c.neg | number(1) }}", "-1,234.5"),
        ("{{ 999 | number }}", "999"),
        ("{{ c.day | date }}", "2024-03-05"),
        ("{{ c.day | date('%d/%m/%Y') }}", "05/03/2024"),
        ("{{ c.at | date('%Y-%m-%d %H:%M %z') }}", "2024-03-05 14:07 +0200"),
        ("{{ c.epoch | date('%Y') }}", "1970"),
        ("{{ c.missing | upper | round(2) | date }}", ""),
    ] {
        assert_eq!(r(source, &ctx), expected, "{source}");
    }
}

#[test]
fn filter_errors() {
    let ctx = json!({"c": {"name": "ana", "list": [1]}});
    for (source, message) in [
        ("{{ c.name | round(2) }}", "`round` needs a number, got text \"ana\""),
        ("{{ c.list | number }}", "`number` needs a number, got a list"),
        ("{{ c.name | date }}", "`date` needs a date or time"),
    ] {
        match render(source, &ctx) {
            Err(TemplateError::Render { at, message: m }) => {
                assert_eq!(at.line, 1);
                assert!(m.contains(message), "{source}: {m}");
            }
            other => panic!("{source}: {other:?}"),
        }
    }
    for source in [
        "{{ x | round(11) }}",
        "{{ x | round('2') }}",
        "{{ x | truncate(-1) }}",
        "{{ x | upper(1) }}",
        "{{ x | date('%Q') }}",
        "{{ x | default(1, 2) }}",
    ] {
        assert!(
            matches!(check(source), Err(TemplateError::Syntax { .. })),
            "{source}: {:?}",
            check(source)
        );
    }
}

#[test]
fn if_elif_else() {
    let source = "{% if e.amount >= 1000 and not e.test %}big{% elif e.amount > 0 or e.forced %}small\
                  {% else %}none{% endif %}";
    for (event, expected) in [
        (json!({"amount": 1500}), "big"),
        (json!({"amount": "1500.00"}), "big"),
        (json!({"amount": 1500, "test": true}), "small"),
        (json!({"amount": 5}), "small"),
        (json!({"amount": 0, "forced": "yes"}), "small"),
        (json!({"amount": 0}), "none"),
        (json!({}), "none"),
    ] {
        assert_eq!(r(source, &json!({"e": event})), expected, "{event}");
    }
    let ctx = json!({"e": {"a": "x", "b": "x", "c": "y", "n": 3, "z": 0, "t": true, "list": [], "obj": {"k": 1}}});
    for (condition, expected) in [
        ("e.a == e.b", true),
        ("e.a != e.c", true),
        ("e.a < e.c", true),
        ("e.a == 'x'", true),
        ("e.n == 3.0", true),
        ("e.n <= 3 and e.n >= 3 and e.n > -1", true),
        ("e.missing == none", true),
        ("e.missing != none", false),
        ("e.missing == ''", false),
        ("e.t == true", true),
        ("e.t == 1", false),
        ("e.z", false),
        ("e.list", false),
        ("e.obj", true),
        ("e.obj == '{\"k\":1}'", true),
        ("e.a < 3", false),
        ("not (e.a == 'x' or e.n > 10)", false),
        ("(e.z or e.t) and (e.a | upper == 'X')", true),
    ] {
        let source = format!("{{% if {condition} %}}yes{{% else %}}no{{% endif %}}");
        assert_eq!(r(&source, &ctx) == "yes", expected, "{condition}");
    }
    assert_eq!(
        r(
            "{% if a %}{% if b %}ab{% else %}a{% endif %}{% endif %}",
            &json!({"a": 1})
        ),
        "a"
    );
}

#[test]
fn raw_comments_and_whitespace_control() {
    let ctx = json!({"x": "X"});
    assert_eq!(r("a{# {{ not rendered }} {% for %} #}b", &ctx), "ab");
    assert_eq!(
        r("{% raw %}{{ x }} {% for i in y %}{% endraw %}{{ x }}", &ctx),
        "{{ x }} {% for i in y %}X"
    );
    assert_eq!(r("a  {{- x -}}  b {%- if x -%} c {%- endif %}", &ctx), "aXbc");
    assert_eq!(r("{%- raw -%}  {{x}}  {%- endraw %}", &ctx), "{{x}}");
    assert_eq!(r("{ x } }} {x}", &ctx), "{ x } }} {x}");
    assert_eq!(r("{{ '}}' }}", &ctx), "}}");
}

#[test]
fn errors_name_their_position() {
    for (source, expected) in [
        ("Hi {{customer.first_name", at(1, 4)),
        ("line\n  {% if x %}", at(2, 3)),
        ("{% endif %}", at(1, 1)),
        ("{% if x %}{% else %}{% else %}{% endif %}", at(1, 21)),
        ("{% if x %}{% else %}{% elif y %}{% endif %}", at(1, 21)),
        ("{% raw %}", at(1, 1)),
        ("{# open", at(1, 1)),
        ("{{ }}", at(1, 4)),
        ("{{ a. }}", at(1, 7)),
        ("{{ a b }}", at(1, 6)),
        ("{{ a == b }}", at(1, 6)),
        ("{{ 'open }}", at(1, 1)),
        ("ção\n{% wat %}", at(2, 1)),
        ("{% if (a %}{% endif %}", at(1, 9)),
        ("{% else x %}", at(1, 8)),
    ] {
        match check(source) {
            Err(TemplateError::Syntax { at, .. }) => assert_eq!(at, expected, "{source}"),
            other => panic!("{source}: {other:?}"),
        }
    }
    let e = check("ok\n{{ a | join(',') }}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "template not allowed at line 2, column 8: the `join` filter is not available (filters: \
         default, upper, lower, title, trim, truncate, round, number, date)"
    );
}

/// Every minijinja form that could build a value is refused when saved, naming it.
#[test]
fn minijinja_constructs_are_refused_by_name() {
    for (source, what) in [
        ("{% for i in range(3) %}{{ i }}{% endfor %}", "`for` statement"),
        ("{% set s = 'x' %}{{ s }}", "`set` statement"),
        ("{% with a = 1 %}{{ a }}{% endwith %}", "`with` statement"),
        ("{% macro m(s) %}{{ s }}{% endmacro %}", "`macro` statement"),
        ("{% filter upper %}x{% endfilter %}", "`filter` block"),
        ("{% include 'x' %}", "`include` statement"),
        ("{{ a ~ b }}", "`~` operator"),
        ("{{ a + b }}", "`+` operator"),
        ("{{ 'x' * 100000000 }}", "`*` operator"),
        ("{{ a - 1 }}", "`-` operator"),
        ("{{ [a, b] }}", "list literals"),
        ("{{ {'a': 1} }}", "dict literals"),
        ("{{ range(10) }}", "calling `range(...)`"),
        ("{{ namespace(s='x') }}", "calling `namespace(...)`"),
        ("{{ a | list | string }}", "`list` filter"),
        ("{{ a | join(',') }}", "`join` filter"),
        ("{{ a | replace('a', 'b') }}", "`replace` filter"),
        ("{{ a | length }}", "`length` filter"),
        ("{{ a | default(b) }}", "a field as an argument of `default`"),
        ("{% if a is defined %}{% endif %}", "tests (`is defined`"),
        ("{% if 'a' in b %}{% endif %}", "the `in` operator"),
        ("{{ a if b }}", "inline `if`"),
    ] {
        match check(source) {
            Err(TemplateError::Forbidden { message, .. }) => assert!(message.contains(what), "{source}: {message}"),
            other => panic!("{source}: {other:?}"),
        }
        // And at run time, the same error: a stored template fails its step.
        assert_eq!(render(source, &json!({})).unwrap_err(), check(source).unwrap_err());
    }
}

#[test]
fn limits() {
    assert_eq!(check(&"x".repeat(MAX_TEMPLATE_LEN + 1)), Err(TemplateError::TooLong));
    let deep = format!(
        "{}x{}",
        "{% if a %}".repeat(MAX_NESTING + 1),
        "{% endif %}".repeat(MAX_NESTING + 1)
    );
    assert!(
        matches!(check(&deep), Err(TemplateError::Forbidden { .. })),
        "{:?}",
        check(&deep)
    );
    let ok = format!(
        "{}x{}",
        "{% if a %}".repeat(MAX_NESTING),
        "{% endif %}".repeat(MAX_NESTING)
    );
    assert!(check(&ok).is_ok());
    let nots = format!("{{% if {}a %}}{{% endif %}}", "not ".repeat(MAX_NESTING + 1));
    assert!(matches!(check(&nots), Err(TemplateError::Forbidden { .. })));
    let parens = format!(
        "{{% if {}a{} %}}{{% endif %}}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    );
    assert!(matches!(check(&parens), Err(TemplateError::Forbidden { .. })));
    let long_path = format!("{{{{ a{} }}}}", ".b".repeat(MAX_PATH_LEN));
    assert!(matches!(check(&long_path), Err(TemplateError::Forbidden { .. })));
    // Only short text is read as a number or a date, so reading one costs nothing much.
    let digits = json!({"x": "1".repeat(65), "y": "1".repeat(64)});
    assert!(render("{{ x | round }}", &digits).is_err());
    assert_eq!(r("{{ y | number }}", &digits).len(), 64 + 21);
    // A long flat `and` chain is a list, not a deep tree.
    let chain = format!("{{% if a{} %}}x{{% endif %}}", " and a".repeat(2000));
    assert_eq!(r(&chain, &json!({"a": 1})), "x");
}

#[test]
fn rendered_output_and_values_are_capped() {
    // Each value fits; together they pass the output cap.
    let ctx = json!({"event": {"text": "y".repeat(60_000), "big": "z".repeat(MAX_VALUE_LEN + 1),
                               "list": vec!["w"; MAX_VALUE_LEN]}});
    assert_eq!(r("{{ event.text }}", &ctx).len(), 60_000);
    assert_eq!(
        render(&"{{ event.text }}".repeat(5), &ctx),
        Err(TemplateError::OutputTooLong)
    );
    for source in ["{{ event.big }}", "{{ event.big | truncate(1) }}", "{{ event.list }}"] {
        match render(source, &ctx) {
            Err(TemplateError::Render { message, .. }) => assert!(message.contains("longer than"), "{message}"),
            other => panic!("{source}: {other:?}"),
        }
    }
    // Reading big values and printing little runs out of work, not time.
    let source = "{{ event.text | upper | truncate(1) }}".repeat(100);
    match render(&source, &ctx) {
        Err(TemplateError::Render { message, .. }) => assert!(message.contains("bytes in all"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// The case filters' bound: no character's case mapping is more than three times longer.
#[test]
fn case_mapping_grows_at_most_threefold() {
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let len = c.len_utf8() * filters::CASE_GROWTH;
        assert!(c.to_uppercase().map(char::len_utf8).sum::<usize>() <= len, "{c:?}");
        assert!(c.to_lowercase().map(char::len_utf8).sum::<usize>() <= len, "{c:?}");
    }
    assert_eq!(r("{{ 'ΐ' | upper }}", &json!({})).len(), 6);
}

#[test]
fn the_bound_of_each_form() {
    assert_eq!(output_bound("Hi {{ a }}!", 10), Ok(3 + 10 + 1));
    assert_eq!(output_bound("{{ a | upper }}", 10), Ok(30));
    assert_eq!(output_bound("{{ a | truncate(5) }}", 1000), Ok(20));
    assert_eq!(output_bound("{{ a | default('long default') }}", 2), Ok(12));
    assert_eq!(output_bound("{{ 'abc' }}", 1000), Ok(3));
    assert_eq!(
        output_bound("{% if a %}12345{% elif b %}1{% else %}{{ a }}{% endif %}", 3),
        Ok(5)
    );
    assert_eq!(
        output_bound("{{ a | upper | upper | upper | upper }}", 1 << 20),
        Ok(MAX_VALUE_LEN)
    );
    assert_eq!(output_bound(&"{{ a }}".repeat(100), 1 << 20), Ok(MAX_OUTPUT));
    assert!(output_bound("{% for %}", 1).is_err());
}
