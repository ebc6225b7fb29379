//! GET /api/v1/schema: what a builder needs to render forms, all from data: triggers with
//! their fields (types, labels, options with statuses from the database), operators per
//! type, and every action with its param schema.

use super::{ApiError, AppState};
use crate::catalogue::catalogue;
use crate::conditions::Operator;
use crate::schema::{FieldType, TRIGGERS};
use crate::storage::statuses;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

#[utoipa::path(get, path = "/api/v1/schema", tag = "schema", responses(
    (status = 200, description = "triggers with their fields, operators (also per field type), actions with their param schemas")))]
pub async fn schema(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let fields = statuses::field_schema(state.db.connection()).await?;
    let triggers: Vec<Value> = TRIGGERS
        .iter()
        .map(|t| json!({"name": t.name, "label": t.label, "fields": fields.fields_for(t.name)}))
        .collect();
    let types = [
        FieldType::Number,
        FieldType::String,
        FieldType::Boolean,
        FieldType::Datetime,
        FieldType::List,
        FieldType::Any,
    ];
    let operators_by_type: serde_json::Map<String, Value> = types
        .iter()
        .map(|t| (t.name().to_owned(), json!(t.operators())))
        .collect();
    let operators: Vec<Value> = Operator::ALL
        .iter()
        .map(|o| json!({"name": o.name(), "label": o.label(), "takes_value": o.takes_value()}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "triggers": triggers,
        "other_trigger": {
            "description": "any other event type is a valid trigger; its payload is read as event.*",
            "fields": fields.fields_for(""),
        },
        "operators": operators,
        "operators_by_type": operators_by_type,
        "actions": catalogue(),
    })))
}
