//! The workflow language through its public API: parse, validate, compile, plan, explain.
//! Tables live in tests/fixtures/ and are shared with benches/matcher.rs.

use serde_json::{json, Map, Value};
use workflow_engine::conditions::{Facts, Limits, Trace};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::plan::WorkflowSet;
use workflow_engine::problem::Severity;
use workflow_engine::schema::{FieldSchema, Status, StatusType};
use workflow_engine::validate::{parse_json, Invalid, Validator};
use workflow_engine::workflow::Workflow;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn validate(definition: &Value) -> Result<Workflow, Invalid> {
    let schema = FieldSchema::default();
    Validator::new(&schema, Limits::default())
        .workflow(definition)
        .map(|v| v.workflow)
}

fn workflow(definition: Value) -> Workflow {
    validate(&definition).unwrap_or_else(|e| panic!("{e}"))
}

fn event(value: Value) -> EventEnvelope {
    EventEnvelope::from_value(value).unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// Names of the planned workflows, checking plan() and explain() agree.
fn plan_names(set: &WorkflowSet, event: &EventEnvelope, customer: &Map<String, Value>) -> Vec<String> {
    let facts = Facts::new(event, customer);
    let fast: Vec<String> = set.plan(facts).iter().map(|w| w.workflow.name.clone()).collect();
    let explained: Vec<String> = set.explain(facts).plan.iter().map(|p| p.name.clone()).collect();
    assert_eq!(fast, explained, "plan and explain disagree");
    fast
}

fn errors(definition: Value) -> Vec<(String, String)> {
    let invalid = validate(&definition).expect_err("definition should be invalid");
    invalid
        .problems
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| (p.path, p.message))
        .collect()
}

#[test]
fn every_operator_case_of_the_table() {
    let table = fixture("operators.json");
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for (i, case) in cases.iter().enumerate() {
        let mut rule = json!({"field": "event.v", "operator": case["operator"]});
        if let Some(v) = case.get("value") {
            rule["value"] = v.clone();
        }
        let negated = workflow(json!({"id": "not", "name": "n", "trigger_event": "test.event",
            "conditions": {"not": rule.clone()}, "actions": [{"type": "add_note", "params": {"body": "x"}}]}));
        let plain = workflow(json!({"id": "rule", "name": "r", "trigger_event": "test.event",
            "conditions": rule, "actions": [{"type": "add_note", "params": {"body": "x"}}]}));
        let (set, build_errors) = WorkflowSet::build([plain, negated], &Limits::default());
        assert!(build_errors.is_empty());
        let mut data = Map::new();
        if let Some(input) = case.get("input") {
            data.insert("v".into(), input.clone());
        }
        let e = event(json!({"id": "e", "type": "test.event", "customer_id": 1, "data": data}));
        let customer = Map::new();
        let explanation = set.explain(Facts::new(&e, &customer));
        let result = |id: &str| {
            explanation
                .evaluated
                .iter()
                .find(|x| x.workflow_id == id)
                .unwrap()
                .matched
        };
        let expect = case["expect"].as_bool().unwrap();
        assert_eq!(result("rule"), expect, "case {i}: {case}");
        assert_eq!(result("not"), !expect, "case {i} negated: {case}");
        let planned: Vec<String> = set
            .plan(Facts::new(&e, &customer))
            .iter()
            .map(|w| w.id.clone())
            .collect();
        assert_eq!(
            planned.contains(&"rule".to_owned()),
            expect,
            "case {i} through the plan: {case}"
        );
        assert_eq!(
            planned.contains(&"not".to_owned()),
            !expect,
            "case {i} negated through the plan: {case}"
        );
        let Trace::Rule { saw, missing, .. } = &explanation
            .evaluated
            .iter()
            .find(|x| x.workflow_id == "rule")
            .unwrap()
            .trace
        else {
            panic!("case {i}: a lone rule traces as a rule")
        };
        assert_eq!(*missing, case.get("input").is_none(), "case {i}");
        assert_eq!(saw, case.get("input").unwrap_or(&Value::Null), "case {i}");
    }
}

#[test]
fn the_seed_workflows_validate_round_trip_and_plan_as_the_seed_describes() {
    let definitions = fixture("seed_workflows.json");
    let workflows: Vec<Workflow> = definitions
        .as_array()
        .unwrap()
        .iter()
        .map(|d| workflow(d.clone()))
        .collect();
    for (w, d) in workflows.iter().zip(definitions.as_array().unwrap()) {
        let back = serde_json::to_value(w).unwrap();
        for key in [
            "name",
            "trigger_event",
            "conditions",
            "actions",
            "priority",
            "stop_after",
        ] {
            assert_eq!(back[key], d[key], "{}: {key} reads back as written", w.name);
        }
        assert_eq!(workflow(back), *w, "serialised form validates to the same workflow");
    }
    let (set, build_errors) = WorkflowSet::build(workflows, &Limits::default());
    assert!(build_errors.is_empty());
    assert_eq!(set.len(), 4);
    for case in fixture("seed_events.json")["cases"].as_array().unwrap() {
        let e = event(case["event"].clone());
        let names = plan_names(&set, &e, &object(case["customer"].clone()));
        let expected: Vec<String> = serde_json::from_value(case["plan"].clone()).unwrap();
        assert_eq!(names, expected, "{}", case["name"]);
    }
}

#[test]
fn the_seed_example_plans_its_three_actions_in_order() {
    let definitions = fixture("seed_workflows.json");
    let (set, _) = WorkflowSet::build([workflow(definitions[0].clone())], &Limits::default());
    let e = event(json!({"id": "x", "type": "customer.deposited", "customer_id": 9, "data": {"amount": 1000}}));
    let customer = object(json!({"retention_status": "churning"}));
    let explanation = set.explain(Facts::new(&e, &customer));
    let types: Vec<&str> = explanation.plan[0]
        .actions
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["handover_to_retention", "send_email", "add_note"]);
    assert_eq!(explanation.plan[0].workflow_id, "draft-0");
    let trace = serde_json::to_value(&explanation.evaluated[0].trace).unwrap();
    assert_eq!(
        trace,
        json!({"match": "all", "result": true, "rules": [
            {"field": "event.amount", "operator": "gte", "value": 1000, "saw": 1000, "result": true},
            {"field": "customer.retention_status", "operator": "eq", "value": "churning", "saw": "churning", "result": true}]})
    );
}

fn rule(field: &str, operator: &str, value: Value) -> Value {
    json!({"field": field, "operator": operator, "value": value})
}

fn matches(conditions: Value, data: Value, customer: Value) -> bool {
    let w = workflow(
        json!({"name": "t", "trigger_event": "customer.deposited", "conditions": conditions,
        "actions": [{"type": "add_note", "params": {"body": "x"}}]}),
    );
    let (set, _) = WorkflowSet::build([w], &Limits::default());
    let e = event(json!({"id": "e", "type": "customer.deposited", "customer_id": 1, "data": data}));
    !plan_names(&set, &e, &object(customer)).is_empty()
}

#[test]
fn groups_nest_with_all_any_and_not() {
    let tree = json!({"match": "all", "rules": [
        rule("event.amount", "gte", json!(1000)),
        {"match": "any", "rules": [
            rule("customer.country", "in", json!(["BR", "AR"])),
            {"not": {"field": "customer.email", "operator": "ends_with", "value": "@test.com"}}]}]});
    assert!(matches(
        tree.clone(),
        json!({"amount": 1000}),
        json!({"country": "BR", "email": "a@test.com"})
    ));
    assert!(matches(
        tree.clone(),
        json!({"amount": 1000}),
        json!({"country": "DE", "email": "a@real.com"})
    ));
    assert!(!matches(
        tree.clone(),
        json!({"amount": 1000}),
        json!({"country": "DE", "email": "a@test.com"})
    ));
    assert!(!matches(tree.clone(), json!({"amount": 999}), json!({"country": "BR"})));
    // A missing email: ends_with is false, so its `not` is true.
    assert!(matches(tree, json!({"amount": 5000}), json!({"country": "DE"})));
    let any = json!({"match": "any", "rules": [rule("event.amount", "lt", json!(10)), rule("event.amount", "gt", json!(100))]});
    assert!(matches(any.clone(), json!({"amount": 5}), json!({})));
    assert!(!matches(any.clone(), json!({"amount": 50}), json!({})));
    assert!(matches(json!({"not": any}), json!({"amount": 50}), json!({})));
    assert!(matches(
        json!({"not": {"not": rule("event.amount", "eq", json!(1))}}),
        json!({"amount": 1}),
        json!({})
    ));
}

#[test]
fn empty_or_missing_conditions_always_match() {
    for conditions in [
        json!(null),
        json!({}),
        json!({"match": "all", "rules": []}),
        json!({"match": "any", "rules": []}),
    ] {
        assert!(matches(conditions.clone(), json!({}), json!({})), "{conditions}");
    }
    let w = workflow(json!({"name": "t", "trigger_event": "x.y", "actions": [{"type": "reassign_round_robin"}]}));
    assert!(w.conditions.is_none());
}

#[test]
fn priority_orders_ties_break_by_id_and_stop_after_skips_lower_priorities() {
    let def = |id: &str, priority: i32, stop_after: bool, min: i64| {
        workflow(
            json!({"id": id, "name": id, "trigger_event": "customer.deposited", "priority": priority,
            "stop_after": stop_after, "conditions": {"match": "all", "rules": [rule("event.amount", "gte", json!(min))]},
            "actions": [{"type": "add_note", "params": {"body": id}}]}),
        )
    };
    let set = |defs: Vec<Workflow>| WorkflowSet::build(defs, &Limits::default()).0;
    let e = |amount: i64| {
        event(json!({"id": "e", "type": "customer.deposited", "customer_id": 1, "data": {"amount": amount}}))
    };
    let none = Map::new();

    let s = set(vec![
        def("c", 30, false, 0),
        def("b", 10, false, 0),
        def("a", 10, false, 0),
        def("d", -5, false, 0),
    ]);
    assert_eq!(plan_names(&s, &e(1), &none), ["d", "a", "b", "c"]);

    // "b" stops: "a" and "b" share priority 10 and both run; 30 and 40 are skipped.
    let s = set(vec![
        def("a", 10, false, 0),
        def("b", 10, true, 100),
        def("c", 30, false, 0),
        def("d", 40, false, 0),
    ]);
    assert_eq!(plan_names(&s, &e(500), &none), ["a", "b", "c", "d"][..2].to_vec());
    // Below its threshold "b" does not match, so it stops nothing.
    assert_eq!(plan_names(&s, &e(50), &none), ["a", "c", "d"]);

    let explanation = s.explain(Facts::new(&e(500), &none));
    let skipped: Vec<(&str, Option<&str>, bool)> = explanation
        .evaluated
        .iter()
        .map(|x| (x.workflow_id.as_str(), x.skipped_by.as_deref(), x.matched))
        .collect();
    assert_eq!(
        skipped,
        [
            ("a", None, true),
            ("b", None, true),
            ("c", Some("b"), true),
            ("d", Some("b"), true)
        ]
    );

    // A stop_after workflow that matches stops; a higher one that matches first does not.
    let s = set(vec![
        def("hi", 1, false, 0),
        def("stop", 2, true, 0),
        def("lo", 3, false, 0),
    ]);
    assert_eq!(plan_names(&s, &e(1), &none), ["hi", "stop"]);
}

#[test]
fn inactive_workflows_and_other_triggers_are_not_looked_at() {
    let mut defs = Vec::new();
    for (i, t) in workflow_engine::schema::TRIGGERS.iter().enumerate() {
        defs.push(workflow(
            json!({"id": format!("w{i}"), "name": t.name, "trigger_event": t.name,
            "actions": [{"type": "add_note", "params": {"body": "x"}}]}),
        ));
    }
    defs.push(workflow(
        json!({"id": "off", "name": "off", "trigger_event": "customer.deposited", "active": false,
        "actions": [{"type": "add_note", "params": {"body": "x"}}]}),
    ));
    let (set, _) = WorkflowSet::build(defs, &Limits::default());
    assert_eq!(set.len(), 11);
    assert_eq!(set.workflows_for("customer.deposited").len(), 1);
    assert!(set.listens_to("call.completed"));
    assert!(!set.listens_to("kyc.document_uploaded"));
    let e = event(json!({"id": "e", "type": "customer.deposited", "customer_id": 1}));
    assert_eq!(plan_names(&set, &e, &Map::new()), ["customer.deposited"]);
}

#[test]
fn every_error_of_a_definition_is_reported_with_its_path() {
    let got = errors(json!({
        "name": "",
        "trigger_event": "customer.deposited",
        "colour": "red",
        "conditions": {"match": "all", "rules": [
            {"field": "customer.country", "operator": "gte", "value": 5},
            {"field": "event.amount", "operator": "between", "value": [1]},
            {"field": "customer.country", "operator": "in", "value": "BR"},
            {"field": "customer.email", "operator": "regex", "value": "([a-z"},
            {"field": "event.amount", "operator": "eq", "value": "lots"},
            {"field": "amount", "operator": "eq", "value": 1},
            {"field": "event.amount", "operator": "like", "value": 1},
            {"match": "most", "rules": []}
        ]},
        "actions": [
            {"type": "delay", "params": {}},
            {"type": "teleport", "params": {}},
            {"type": "create_task", "params": {"title": "t", "due_in": {"weeks": 1}, "colour": 1}},
            {"type": "set_status", "params": {"type": "sales", "status_id": 3, "status": "vip"}},
            {"type": "webhook", "params": {"url": "ftp://x"}},
            {"type": "webhook", "params": {"url": "https://hooks.example.com/x",
                "headers": {"X-Tenant": "acme", "idempotency-key": "mine", "Webhook-Signature": "v1,forged"}}}
        ],
        "priority": "high"
    }));
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/colour",
            "/name",
            "/conditions/rules/0/operator",
            "/conditions/rules/1/value",
            "/conditions/rules/2/value",
            "/conditions/rules/3/value",
            "/conditions/rules/4/value",
            "/conditions/rules/5/field",
            "/conditions/rules/6/operator",
            "/conditions/rules/7/match",
            "/actions/0/params",
            "/actions/1/type",
            "/actions/2/params/colour",
            "/actions/2/params/due_in/weeks",
            "/actions/2/params/due_in",
            "/actions/3/params",
            "/actions/4/params/url",
            "/actions/5/params/headers/Webhook-Signature",
            "/actions/5/params/headers/idempotency-key",
            "/priority",
        ],
        "{got:#?}"
    );
    let message = |path: &str| got.iter().find(|(p, _)| p == path).map(|(_, m)| m.as_str()).unwrap();
    assert_eq!(message("/conditions/rules/0/operator"), "gte does not apply to the string field customer.country; use one of: eq, neq, in, not_in, contains, not_contains, starts_with, ends_with, regex, is_empty, is_not_empty");
    assert_eq!(
        message("/conditions/rules/1/value"),
        "between needs a list of two bounds [low, high], got a list of 1"
    );
    assert_eq!(
        message("/conditions/rules/2/value"),
        "in needs a list of values, got a string"
    );
    assert!(message("/conditions/rules/3/value").starts_with("invalid regex: "));
    assert_eq!(
        message("/conditions/rules/4/value"),
        "expected a number for event.amount, got a string"
    );
    assert!(message("/actions/0/params").contains("delay needs one of \"minutes\", \"hours\", \"days\""));
    assert!(message("/actions/1/type").starts_with("unknown action type \"teleport\": expected one of assign_to_team"));
    assert!(message("/actions/3/params").contains("takes only one of"));
    assert!(message("/actions/4/params/url").contains("http or https"));
    assert_eq!(
        message("/actions/5/params/headers/idempotency-key"),
        "header \"idempotency-key\" is set by the engine and cannot be given"
    );
}

#[test]
fn missing_required_parts_and_wrong_shapes() {
    assert_eq!(
        errors(json!({})).iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["/name", "/trigger_event", "/actions"]
    );
    assert_eq!(
        errors(json!([])),
        [("".to_owned(), "expected a workflow object, got a list".to_owned())]
    );
    let base = |actions: Value| json!({"name": "n", "trigger_event": "t.x", "actions": actions});
    assert_eq!(
        errors(base(json!([]))),
        [("/actions".to_owned(), "a workflow needs at least one action".to_owned())]
    );
    assert_eq!(
        errors(base(
            json!([{"type": "assign_to_team", "params": {"team_id": "sales"}}])
        ))[0]
            .0,
        "/actions/0/params/team_id"
    );
    assert_eq!(
        errors(base(json!([{"type": "assign_to_team"}])))[0],
        (
            "/actions/0/params/team_id".to_owned(),
            "assign_to_team needs \"team_id\"".to_owned()
        )
    );
    assert_eq!(
        errors(base(json!([{"type": "add_note", "params": {"body": "{{ oops"}}])))[0].0,
        "/actions/0/params/body"
    );
    assert_eq!(
        errors(base(json!([{"type": "delay", "params": {"minutes": 0}}])))[0].1,
        "delay must wait longer than zero"
    );
    assert_eq!(
        errors(base(json!([{"type": "add_note", "params": {"body": "x"}, "when": 1}])))[0].0,
        "/actions/0/when"
    );
}

#[test]
fn warnings_do_not_reject() {
    let schema = FieldSchema::new(
        &[StatusType {
            name: "retention".into(),
            statuses: vec![Status {
                id: 1,
                name: "churning".into(),
            }],
        }],
        &[],
    );
    let validated = Validator::new(&schema, Limits::default())
        .workflow(&json!({"name": "n", "trigger_event": "customer.deposited",
            "conditions": {"match": "all", "rules": [
                rule("customer.retention_status", "eq", json!("dormant")),
                rule("event.amout", "gt", json!(5)),
                rule("customer.favourite_colour", "eq", json!("red"))]},
            "actions": [{"type": "add_note", "params": {"body": "x"}}, {"type": "delay", "params": {"days": 1}}]}))
        .unwrap();
    let paths: Vec<&str> = validated.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/conditions/rules/0/value",
            "/conditions/rules/1/field",
            "/conditions/rules/2/field",
            "/actions/1"
        ]
    );
    assert!(validated.warnings.iter().all(|w| w.severity == Severity::Warning));
}

fn nested_nots(depth: usize) -> String {
    let mut text = String::new();
    for _ in 1..depth {
        text.push_str("{\"not\": ");
    }
    text.push_str(r#"{"field": "event.amount", "operator": "gt", "value": 1}"#);
    for _ in 1..depth {
        text.push('}');
    }
    format!(
        r#"{{"name": "deep", "trigger_event": "t.x", "conditions": {text}, "actions": [{{"type": "add_note", "params": {{"body": "x"}}}}]}}"#
    )
}

#[test]
fn a_100_000_deep_tree_is_a_clear_error_not_a_stack_overflow() {
    let err = parse_json(&nested_nots(100_000)).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(
        err.problems[0].message.starts_with("the document is nested too deeply"),
        "{}",
        err.problems[0].message
    );
}

#[test]
fn depth_past_the_configured_maximum_is_rejected_at_the_node() {
    let schema = FieldSchema::default();
    let value = parse_json(&nested_nots(33)).unwrap();
    let err = Validator::new(&schema, Limits::default()).workflow(&value).unwrap_err();
    let expected_path = format!("/conditions{}", "/not".repeat(32));
    assert_eq!(err.problems[0].path, expected_path);
    assert_eq!(
        err.problems[0].message,
        "conditions nest deeper than the maximum of 32 levels"
    );
    assert!(Validator::new(&schema, Limits::default())
        .workflow(&parse_json(&nested_nots(32)).unwrap())
        .is_ok());
    let deeper = Limits {
        max_condition_depth: 100,
        ..Limits::default()
    };
    let w = Validator::new(&schema, deeper)
        .workflow(&parse_json(&nested_nots(100)).unwrap())
        .unwrap()
        .workflow;
    let (set, errs) = WorkflowSet::build([w], &deeper);
    assert!(errs.is_empty());
    let e = event(json!({"id": "e", "type": "t.x", "customer_id": 1, "data": {"amount": 5}}));
    // 99 nots over a true rule: false.
    assert!(plan_names(&set, &e, &Map::new()).is_empty());
}

#[test]
fn the_check_command_reports_paths_and_fails_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::copy(
        format!("{}/tests/fixtures/seed_workflows.json", env!("CARGO_MANIFEST_DIR")),
        &good,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workflow-engine"))
        .arg("check")
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("4 of 4 workflow(s) valid, 0 error(s)"), "{stdout}");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"name": "ok", "trigger_event": "t.x", "actions": [{"type": "add_note", "params": {"body": "x"}}]},
        {"name": "bad", "trigger_event": "t.x", "conditions": {"field": "event.x", "operator": "between", "value": 3}, "actions": []}]"#).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workflow-engine"))
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("bad.json:/1/conditions/value: error: between needs a list of two bounds"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad.json:/1/actions: error: a workflow needs at least one action"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 2 workflow(s) valid, 2 error(s)"), "{stdout}");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"name\": ").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workflow-engine"))
        .arg("check")
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("invalid JSON"));
}

#[test]
fn identical_rules_are_compiled_once_and_decided_once_per_event() {
    let defs: Vec<Workflow> = (0..50)
        .map(|i| {
            workflow(
                json!({"id": format!("w{i:02}"), "name": "n", "trigger_event": "customer.deposited",
                "conditions": {"match": "all", "rules": [
                    rule("event.amount", "gte", json!(1000 * (i % 2))),
                    rule("customer.email", "regex", json!("^[a-z]+@example\\.com$"))]},
                "actions": [{"type": "add_note", "params": {"body": "x"}}]}),
            )
        })
        .collect();
    let (set, _) = WorkflowSet::build(defs, &Limits::default());
    assert_eq!(set.len(), 50);
    assert_eq!(
        set.distinct_rules(),
        3,
        "two thresholds and one regex, shared by 50 workflows"
    );
    let e = event(json!({"id": "e", "type": "customer.deposited", "customer_id": 1, "data": {"amount": 500}}));
    let names = plan_names(&set, &e, &object(json!({"email": "ana@example.com"})));
    assert_eq!(names.len(), 25, "only the workflows with the 0 threshold match");
}

#[test]
fn events_no_workflow_can_match_are_known_without_the_customer() {
    let def = |id: &str, conditions: Value| {
        workflow(
            json!({"id": id, "name": id, "trigger_event": "customer.deposited", "conditions": conditions,
            "actions": [{"type": "add_note", "params": {"body": "x"}}]}),
        )
    };
    let big_and_br = json!({"match": "all", "rules": [rule("event.amount", "gt", json!(1_000_000)), rule("customer.country", "eq", json!("BR"))]});
    let e = |amount: i64| {
        event(json!({"id": "e", "type": "customer.deposited", "customer_id": 1, "data": {"amount": amount}}))
    };
    let (set, _) = WorkflowSet::build([def("a", big_and_br.clone())], &Limits::default());
    assert!(!set.may_match(&e(5)), "the event rule alone rules it out");
    assert!(set.may_match(&e(2_000_000)), "the customer decides");

    let either = json!({"match": "any", "rules": [rule("event.amount", "gt", json!(1_000_000)), rule("customer.country", "eq", json!("BR"))]});
    let (set, _) = WorkflowSet::build([def("b", either)], &Limits::default());
    assert!(set.may_match(&e(5)), "an any-group with a customer rule may still hold");

    let negated = json!({"not": big_and_br});
    let (set, _) = WorkflowSet::build([def("c", negated)], &Limits::default());
    assert!(set.may_match(&e(5)));
    let (set, _) = WorkflowSet::build(
        [def("d", json!({"not": rule("event.amount", "lt", json!(10))}))],
        &Limits::default(),
    );
    assert!(!set.may_match(&e(5)));
    // The pre-filter never drops what the full plan would run.
    for case in fixture("seed_events.json")["cases"].as_array().unwrap() {
        let (seed, _) = WorkflowSet::build(
            fixture("seed_workflows.json")
                .as_array()
                .unwrap()
                .iter()
                .map(|d| workflow(d.clone())),
            &Limits::default(),
        );
        let ev = event(case["event"].clone());
        if !plan_names(&seed, &ev, &object(case["customer"].clone())).is_empty() {
            assert!(seed.may_match(&ev), "{}", case["name"]);
        }
    }
}

/// Issue 14: `on_error` beside type and params, "fail" by default, written back only when
/// it is "continue"; anything else is an error at its pointer.
#[test]
fn on_error_is_fail_or_continue_and_round_trips() {
    use workflow_engine::workflow::OnError;
    let definition = json!({"name": "x", "trigger_event": "customer.deposited", "actions": [
        {"type": "add_note", "params": {"body": "a"}},
        {"type": "add_note", "params": {"body": "b"}, "on_error": "continue"},
        {"type": "add_note", "params": {"body": "c"}, "on_error": "fail"}]});
    let w = workflow(definition);
    let on_error: Vec<OnError> = w.actions.iter().map(|s| s.on_error).collect();
    assert_eq!(on_error, [OnError::Fail, OnError::Continue, OnError::Fail]);
    let written = serde_json::to_value(&w).unwrap();
    assert_eq!(written["actions"][0].get("on_error"), None);
    assert_eq!(written["actions"][1]["on_error"], "continue");
    assert_eq!(workflow(written.clone()), w, "round trip");

    let bad = errors(json!({"name": "x", "trigger_event": "customer.deposited", "actions": [
        {"type": "add_note", "params": {"body": "a"}, "on_error": "retry"}]}));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].0, "/actions/0/on_error");
    assert!(bad[0].1.contains("fail, continue"), "{bad:?}");
}
