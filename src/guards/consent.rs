//! Consent: a customer who opted out of email or SMS gets none from a workflow, unless the
//! step is `"transactional": true` (a statement, a security notice: what a customer gets
//! whatever their marketing choice). The skip is recorded on the step.

use crate::catalogue::ActionKind;
use serde_json::{Map, Value};

/// Why a step is skipped for this customer, or `None` when it goes out. The reason is the
/// opt-out field that decided it, as the step's `skipped` result and the dry run show it.
pub fn skip_reason(kind: ActionKind, transactional: bool, customer: &Map<String, Value>) -> Option<&'static str> {
    if transactional {
        return None;
    }
    let field = match kind {
        ActionKind::SendEmail => "email_opt_out",
        ActionKind::SendSms => "sms_opt_out",
        _ => return None,
    };
    (customer.get(field) == Some(&Value::Bool(true))).then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skips_only_opted_out_channels() {
        let c = |v: Value| v.as_object().cloned().unwrap();
        let out = c(json!({"email_opt_out": true, "sms_opt_out": false}));
        assert_eq!(skip_reason(ActionKind::SendEmail, false, &out), Some("email_opt_out"));
        assert_eq!(skip_reason(ActionKind::SendSms, false, &out), None);
        assert_eq!(skip_reason(ActionKind::SendEmail, true, &out), None);
        assert_eq!(skip_reason(ActionKind::Webhook, false, &out), None);
        assert_eq!(
            skip_reason(ActionKind::SendSms, false, &c(json!({"sms_opt_out": true}))),
            Some("sms_opt_out")
        );
        assert_eq!(skip_reason(ActionKind::SendEmail, false, &Map::new()), None);
    }
}
