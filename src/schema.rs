//! The field schema: which fields each trigger offers, their types, labels and options, and
//! which operators apply to each type.
//!
//! Built-in fields are static tables. Status fields are discovered from the status types
//! and statuses supplied at run time (the statuses table), so a status type a broker creates
//! shows up as `customer.<type>_status` and `customer.<type>_status_id`, with its statuses as
//! options, without a code change. Triggers outside the known eleven are allowed and get
//! the generic `event.*` namespace.

use crate::conditions::{FieldPath, Namespace, Operator};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// The type of a field's values, which decides the operators and values a rule may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Number,
    String,
    Boolean,
    /// RFC 3339 timestamps, compared as instants.
    Datetime,
    /// A list of strings or numbers (tags).
    List,
    /// Not described by the schema (a field of a new event type): every operator is
    /// allowed and values are checked only for shape.
    Any,
}

impl FieldType {
    pub fn operators(self) -> &'static [Operator] {
        use Operator::*;
        match self {
            FieldType::Number => &[Eq, Neq, Gt, Gte, Lt, Lte, Between, In, NotIn, IsEmpty, IsNotEmpty],
            FieldType::String => &[
                Eq,
                Neq,
                In,
                NotIn,
                Contains,
                NotContains,
                StartsWith,
                EndsWith,
                Regex,
                IsEmpty,
                IsNotEmpty,
            ],
            FieldType::Boolean => &[Eq, Neq, IsEmpty, IsNotEmpty],
            FieldType::Datetime => &[Eq, Neq, Gt, Gte, Lt, Lte, Between, IsEmpty, IsNotEmpty],
            FieldType::List => &[Contains, NotContains, IsEmpty, IsNotEmpty],
            FieldType::Any => &Operator::ALL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FieldType::Number => "number",
            FieldType::String => "string",
            FieldType::Boolean => "boolean",
            FieldType::Datetime => "datetime",
            FieldType::List => "list",
            FieldType::Any => "any",
        }
    }
}

/// One value a field may take, for pickers (statuses, desks).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldOption {
    pub value: Value,
    pub label: String,
}

/// A field a rule can read.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldSpec {
    pub path: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<FieldOption>,
}

/// A known trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TriggerSpec {
    pub name: &'static str,
    pub label: &'static str,
}

/// The eleven triggers of the product. Any other event type is a valid trigger too.
pub const TRIGGERS: [TriggerSpec; 11] = [
    TriggerSpec {
        name: "customer.registered",
        label: "New customer signed up",
    },
    TriggerSpec {
        name: "customer.deposited",
        label: "Deposit approved",
    },
    TriggerSpec {
        name: "customer.ftd",
        label: "First-time deposit confirmed",
    },
    TriggerSpec {
        name: "customer.withdrew",
        label: "Withdrawal processed",
    },
    TriggerSpec {
        name: "customer.traded",
        label: "Trade opened",
    },
    TriggerSpec {
        name: "customer.status_changed",
        label: "Sales/KYC status updated",
    },
    TriggerSpec {
        name: "customer.retention_changed",
        label: "Retention classification changed",
    },
    TriggerSpec {
        name: "call.no_answer",
        label: "VoIP call not answered",
    },
    TriggerSpec {
        name: "call.completed",
        label: "VoIP call completed",
    },
    TriggerSpec {
        name: "task.overdue",
        label: "Task past due date",
    },
    TriggerSpec {
        name: "customer.inactive_days",
        label: "No activity for N days",
    },
];

pub fn is_known_trigger(name: &str) -> bool {
    TRIGGERS.iter().any(|t| t.name == name)
}

type Static = (&'static str, &'static str, FieldType);

const CUSTOMER_FIELDS: &[Static] = &[
    ("customer.id", "Customer id", FieldType::Number),
    ("customer.first_name", "First name", FieldType::String),
    ("customer.last_name", "Last name", FieldType::String),
    ("customer.email", "Email", FieldType::String),
    ("customer.phone", "Phone", FieldType::String),
    ("customer.country", "Country (ISO 3166 alpha-2)", FieldType::String),
    ("customer.language", "Language", FieldType::String),
    ("customer.balance", "Balance", FieldType::Number),
    ("customer.registered_at", "Registered at", FieldType::Datetime),
    ("customer.last_activity_at", "Last activity at", FieldType::Datetime),
    ("customer.agent_id", "Assigned agent id", FieldType::Number),
    ("customer.team_id", "Assigned team id", FieldType::Number),
    ("customer.desk", "Desk", FieldType::String),
    ("customer.active", "Active", FieldType::Boolean),
    ("customer.frozen", "Frozen by compliance", FieldType::Boolean),
    ("customer.timezone", "Time zone (IANA name)", FieldType::String),
    ("customer.email_opt_out", "Opted out of email", FieldType::Boolean),
    ("customer.sms_opt_out", "Opted out of SMS", FieldType::Boolean),
];

const MONEY_FIELDS: &[Static] = &[
    ("event.amount", "Amount", FieldType::Number),
    ("event.currency", "Currency", FieldType::String),
    ("event.method", "Payment method", FieldType::String),
    ("transaction.id", "Transaction id", FieldType::String),
    ("transaction.type", "Transaction type", FieldType::String),
    ("transaction.amount", "Transaction amount", FieldType::Number),
    ("transaction.currency", "Transaction currency", FieldType::String),
    ("transaction.status", "Transaction status", FieldType::String),
];

const CALL_FIELDS: &[Static] = &[
    ("call.id", "Call id", FieldType::String),
    ("call.agent_id", "Agent id", FieldType::Number),
    ("call.direction", "Direction (inbound/outbound)", FieldType::String),
    ("call.duration_seconds", "Duration in seconds", FieldType::Number),
    ("call.attempt", "Attempt number", FieldType::Number),
];

fn trigger_fields(trigger: &str) -> &'static [Static] {
    match trigger {
        "customer.deposited" | "customer.ftd" | "customer.withdrew" => MONEY_FIELDS,
        "customer.registered" => &[
            ("event.source", "Registration source", FieldType::String),
            ("event.campaign", "Campaign", FieldType::String),
            ("event.affiliate_id", "Affiliate id", FieldType::String),
        ],
        "customer.traded" => &[
            ("order.id", "Order id", FieldType::String),
            ("order.symbol", "Symbol", FieldType::String),
            ("order.side", "Side (buy/sell)", FieldType::String),
            ("order.volume", "Volume", FieldType::Number),
            ("order.open_price", "Open price", FieldType::Number),
            ("order.amount", "Order amount", FieldType::Number),
        ],
        "customer.status_changed" | "customer.retention_changed" => &[
            ("event.status_type", "Status type", FieldType::String),
            ("event.old_status_id", "Previous status id", FieldType::Number),
            ("event.old_status", "Previous status", FieldType::String),
            ("event.new_status_id", "New status id", FieldType::Number),
            ("event.new_status", "New status", FieldType::String),
        ],
        "call.no_answer" | "call.completed" => CALL_FIELDS,
        "task.overdue" => &[
            ("task.id", "Task id", FieldType::Number),
            ("task.type", "Task type", FieldType::String),
            ("task.title", "Task title", FieldType::String),
            ("task.due_at", "Due at", FieldType::Datetime),
            ("task.assignee_id", "Assignee id", FieldType::Number),
        ],
        "customer.inactive_days" => &[("event.days", "Days without activity", FieldType::Number)],
        _ => &[],
    }
}

/// A status of one type, as the statuses table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub id: i64,
    pub name: String,
}

/// A status type (sales, kyc, retention, or one a broker created) and its statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusType {
    pub name: String,
    pub statuses: Vec<Status>,
}

/// A broker-defined customer field, kept in the customer's custom fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomField {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
}

/// The built-in status types, present even before the statuses table is read (e.g. for
/// `workflow-engine check` with no database).
pub const BUILTIN_STATUS_TYPES: [&str; 3] = ["sales", "kyc", "retention"];

/// How a field was found, which decides whether its type can be trusted.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<'a> {
    /// Listed in the schema.
    Known(&'a FieldSpec),
    /// Not listed: allowed (a payload key of a new event type, a custom customer field),
    /// typed as any. `warn` asks validation to point it out, as it may be a typo.
    Open { warn: bool },
}

/// Fields per trigger, with status fields from the runtime status catalogue.
#[derive(Debug, Clone)]
pub struct FieldSchema {
    common: Vec<FieldSpec>,
    per_trigger: HashMap<&'static str, Vec<FieldSpec>>,
    by_path: HashMap<String, usize>,
}

fn spec((path, label, field_type): &Static) -> FieldSpec {
    FieldSpec {
        path: (*path).to_owned(),
        label: (*label).to_owned(),
        field_type: *field_type,
        options: Vec::new(),
    }
}

impl Default for FieldSchema {
    /// The schema with the built-in status types and no statuses known.
    fn default() -> Self {
        let types: Vec<StatusType> = BUILTIN_STATUS_TYPES
            .iter()
            .map(|name| StatusType {
                name: (*name).to_owned(),
                statuses: Vec::new(),
            })
            .collect();
        Self::new(&types, &[])
    }
}

impl FieldSchema {
    pub fn new(status_types: &[StatusType], custom_fields: &[CustomField]) -> Self {
        let mut common: Vec<FieldSpec> = CUSTOMER_FIELDS.iter().map(spec).collect();
        if let Some(desk) = common.iter_mut().find(|f| f.path == "customer.desk") {
            desk.options = ["sales", "retention"]
                .map(|d| FieldOption {
                    value: Value::from(d),
                    label: d.to_owned(),
                })
                .to_vec();
        }
        for st in status_types {
            common.push(FieldSpec {
                path: format!("customer.{}_status_id", st.name),
                label: format!("{} status id", st.name),
                field_type: FieldType::Number,
                options: st
                    .statuses
                    .iter()
                    .map(|s| FieldOption {
                        value: Value::from(s.id),
                        label: s.name.clone(),
                    })
                    .collect(),
            });
            common.push(FieldSpec {
                path: format!("customer.{}_status", st.name),
                label: format!("{} status", st.name),
                field_type: FieldType::String,
                options: st
                    .statuses
                    .iter()
                    .map(|s| FieldOption {
                        value: Value::from(s.name.clone()),
                        label: s.name.clone(),
                    })
                    .collect(),
            });
        }
        for cf in custom_fields {
            let path = format!("customer.{}", cf.name);
            if !common.iter().any(|f| f.path == path) {
                common.push(FieldSpec {
                    label: cf.name.clone(),
                    path,
                    field_type: cf.field_type,
                    options: Vec::new(),
                });
            }
        }
        let per_trigger = TRIGGERS
            .iter()
            .map(|t| (t.name, trigger_fields(t.name).iter().map(spec).collect()))
            .collect();
        let by_path = common.iter().enumerate().map(|(i, f)| (f.path.clone(), i)).collect();
        Self {
            common,
            per_trigger,
            by_path,
        }
    }

    /// Every field a workflow on `trigger` can read: the trigger's own, then the customer's.
    pub fn fields_for(&self, trigger: &str) -> Vec<&FieldSpec> {
        let own = self.per_trigger.get(trigger).map(Vec::as_slice).unwrap_or_default();
        own.iter().chain(self.common.iter()).collect()
    }

    /// What the schema knows of `path` for a workflow on `trigger`.
    pub fn lookup(&self, trigger: &str, path: &FieldPath, text: &str) -> Lookup<'_> {
        if let Some(&i) = self.by_path.get(text) {
            return Lookup::Known(&self.common[i]);
        }
        let own = self.per_trigger.get(trigger);
        if let Some(f) = own.and_then(|fs| fs.iter().find(|f| f.path == text)) {
            return Lookup::Known(f);
        }
        // An unlisted customer field may be a custom field or a status type created later;
        // an unlisted event field of a known trigger is more likely a typo than new data.
        let warn = path.namespace == Namespace::Customer || own.is_some();
        Lookup::Open { warn }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_trigger_has_fields_and_customer_fields() {
        let schema = FieldSchema::default();
        for t in TRIGGERS {
            let fields = schema.fields_for(t.name);
            assert!(fields.iter().any(|f| f.path == "customer.country"), "{}", t.name);
            assert!(
                fields.iter().any(|f| !f.path.starts_with("customer.")),
                "{} has no own fields",
                t.name
            );
        }
        assert!(schema
            .fields_for("kyc.document_uploaded")
            .iter()
            .all(|f| f.path.starts_with("customer.")));
    }

    #[test]
    fn status_types_added_at_run_time_appear_with_their_options() {
        let types = vec![StatusType {
            name: "vip".into(),
            statuses: vec![
                Status {
                    id: 7,
                    name: "gold".into(),
                },
                Status {
                    id: 8,
                    name: "platinum".into(),
                },
            ],
        }];
        let schema = FieldSchema::new(&types, &[]);
        let path = FieldPath::parse("customer.vip_status").unwrap();
        let Lookup::Known(f) = schema.lookup("customer.deposited", &path, "customer.vip_status") else {
            panic!("vip status not found")
        };
        assert_eq!(f.field_type, FieldType::String);
        assert_eq!(f.options.len(), 2);
        let id = FieldPath::parse("customer.vip_status_id").unwrap();
        assert!(
            matches!(schema.lookup("x", &id, "customer.vip_status_id"), Lookup::Known(f) if f.options[0].value == 7)
        );
    }

    #[test]
    fn unknown_fields_are_open_and_flagged_where_likely_a_typo() {
        let schema = FieldSchema::default();
        let p = |s: &str| FieldPath::parse(s).unwrap();
        assert_eq!(
            schema.lookup(
                "kyc.document_uploaded",
                &p("event.document.type"),
                "event.document.type"
            ),
            Lookup::Open { warn: false }
        );
        assert_eq!(
            schema.lookup("customer.deposited", &p("event.amout"), "event.amout"),
            Lookup::Open { warn: true }
        );
        assert_eq!(
            schema.lookup("kyc.document_uploaded", &p("customer.nickname"), "customer.nickname"),
            Lookup::Open { warn: true }
        );
    }
}
