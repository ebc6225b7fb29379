//! GET /api/v1/schema: what a builder needs to render forms, all from data: triggers with
//! their fields (types, labels, options with statuses from the database), operators per
//! type, and every action with its param schema.

use super::{ApiError, AppState};
use crate::catalogue::catalogue;
use crate::conditions::Operator;
use crate::schema::{FieldType, TRIGGERS};
use crate::storage::statuses;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// What a builder needs to render forms.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BuilderSchema {
    /// Every action with its param schema.
    #[schema(value_type = Vec<crate::catalogue::ActionSchema>)]
    actions: Value,
    operators: Vec<OperatorInfo>,
    /// Field type name to the operators a rule on such a field may use.
    #[schema(value_type = std::collections::BTreeMap<String, Vec<Operator>>)]
    operators_by_type: Map<String, Value>,
    other_trigger: OtherTrigger,
    /// The known triggers with their fields.
    triggers: Vec<TriggerFields>,
}

/// An operator of a rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OperatorInfo {
    label: &'static str,
    name: &'static str,
    /// Whether a rule with it needs a `value`.
    takes_value: bool,
}

/// Any event type that is not a known trigger.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OtherTrigger {
    description: &'static str,
    /// The fields every trigger offers (the customer's).
    #[schema(value_type = Vec<crate::schema::FieldSpec>)]
    fields: Value,
}

/// A known trigger and the fields a workflow on it can read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggerFields {
    #[schema(value_type = Vec<crate::schema::FieldSpec>)]
    fields: Value,
    label: &'static str,
    name: &'static str,
}

#[utoipa::path(get, path = "/api/v1/schema", tag = "schema", responses(
    (status = 200, description = "triggers with their fields, operators (also per field type), actions with their param schemas", body = BuilderSchema)))]
pub async fn schema(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let fields = statuses::field_schema(state.db.connection()).await?;
    let triggers = TRIGGERS
        .iter()
        .map(|t| TriggerFields {
            fields: json!(fields.fields_for(t.name)),
            label: t.label,
            name: t.name,
        })
        .collect();
    let types = [
        FieldType::Number,
        FieldType::String,
        FieldType::Boolean,
        FieldType::Datetime,
        FieldType::List,
        FieldType::Any,
    ];
    let operators_by_type = types
        .iter()
        .map(|t| (t.name().to_owned(), json!(t.operators())))
        .collect();
    let operators = Operator::ALL
        .iter()
        .map(|o| OperatorInfo {
            label: o.label(),
            name: o.name(),
            takes_value: o.takes_value(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(BuilderSchema {
        actions: json!(catalogue()),
        operators,
        operators_by_type,
        other_trigger: OtherTrigger {
            description: "any other event type is a valid trigger; its payload is read as event.*",
            fields: json!(fields.fields_for("")),
        },
        triggers,
    }))
}
