//! Building an external step's request (email, SMS, webhook): templates rendered, target
//! looked up, headers checked. Moved out of storage so everything about what leaves the
//! engine (building, guarding, signing, sending) sits in one module.

use crate::catalogue::{Action, WebhookTarget};
use crate::conditions::Facts;
use crate::outbound::auth::Credentials;
use crate::outbound::signing::Keyring;
use crate::outbound::{is_reserved_header, OutboundRequest};
use crate::storage::entities::{runs as run_rows, sms_providers, webhook_endpoints};
use crate::storage::rates::Rate;
use crate::storage::{secrets, Database, StorageError};
use crate::template;
use crate::trace::TraceParent;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Where email, SMS and webhook requests go.
#[derive(Debug, Clone)]
pub struct Integrations {
    /// The integration service that sends email.
    pub email_url: String,
    /// Its limit in requests per second across the cluster (`delivery.email_rate_per_sec`).
    pub email_rate_per_sec: Option<u32>,
    /// Signs webhooks without an endpoint secret of their own; empty = unsigned. Several
    /// whitespace-separated secrets all sign (rotation); `whsec_<base64>` is decoded.
    pub webhook_secret: String,
    /// Where the secrets a request is signed with are registered for the delivery pool.
    pub keyring: std::sync::Arc<Keyring>,
}

impl Integrations {
    /// Builds the request of an external step: templates rendered, target resolved, body
    /// signed. `Ok(Err(_))` for a step that cannot be sent (no email address, no active SMS
    /// provider, unknown endpoint, a template that fails): a permanent failure.
    pub async fn request(
        &self,
        db: &Database,
        run: &run_rows::Model,
        action: &Action,
        facts: &Facts<'_>,
        context: &Value,
    ) -> Result<Result<OutboundRequest, String>, StorageError> {
        // The database lookups first (their failures are transient), then the rest, whose
        // failures are permanent, with `?`.
        let conn = db.connection();
        let mut target = match action {
            Action::SendSms { .. } => Target::Sms(crate::storage::sms_providers::active(conn).await?),
            Action::Webhook {
                target: WebhookTarget::Endpoint(name),
                ..
            } => Target::Endpoint(crate::storage::endpoints::by_name(conn, name).await?),
            _ => Target::None,
        };
        // Sealed secrets opened ([`secrets`]); a value that does not open fails the step for
        // good, as it would on every retry.
        let opened = match &mut target {
            Target::Sms(Some(provider)) => open_auth(db, secrets::PROVIDER_AUTH, &mut provider.auth),
            Target::Endpoint(Some(endpoint)) => {
                open_auth(db, secrets::ENDPOINT_AUTH, &mut endpoint.auth).and_then(|()| {
                    match endpoint.secret.as_deref().filter(|s| !s.is_empty()) {
                        Some(stored) => {
                            endpoint.secret = Some(secrets::open(db, secrets::ENDPOINT_SECRET, stored)?);
                            Ok(())
                        }
                        None => Ok(()),
                    }
                })
            }
            _ => Ok(()),
        };
        if let Err(e) = opened {
            return Ok(Err(e.to_string()));
        }
        Ok(self.build(run, action, facts, context, target))
    }

    fn build(
        &self,
        run: &run_rows::Model,
        action: &Action,
        facts: &Facts<'_>,
        context: &Value,
        target: Target,
    ) -> Result<OutboundRequest, String> {
        let render = |text: &Option<String>| -> Result<Value, String> {
            match text {
                Some(t) => template::render(t, context).map(Value::from).map_err(|e| e.to_string()),
                None => Ok(Value::Null),
            }
        };
        let customer = facts.customer;
        let field = |name: &str, what: &str| {
            customer
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("customer {} has no {what}", run.customer_id))
        };
        let mut body = json!({"kind": action.kind().name(), "customer_id": run.customer_id, "run_id": run.id,
            "workflow_id": run.workflow_id, "event_id": run.event_id, "language": customer.get("language")});
        let mut headers = BTreeMap::new();
        let mut secret = None;
        // The target's credentials, with the source the keyring knows them by.
        let mut auth: Option<(String, Option<String>)> = None;
        let mut configured = false;
        // The destination's limit, by a key naming it whatever it is called later.
        let mut rate = None;
        let limit = |key: String, per_sec: Option<i32>| {
            per_sec
                .and_then(|n| u32::try_from(n).ok())
                .map(|per_sec| Rate { key, per_sec })
        };
        let (kind, url) = match (action, target) {
            (
                Action::SendEmail {
                    template,
                    subject,
                    body: text,
                },
                _,
            ) => {
                body["kind"] = json!("email");
                body["to"] = json!(field("email", "email address")?);
                body["template"] = json!(template);
                body["subject"] = render(subject)?;
                body["body"] = render(text)?;
                configured = true;
                rate = self.email_rate_per_sec.map(|per_sec| Rate {
                    key: "email".to_owned(),
                    per_sec,
                });
                ("email", self.email_url.clone())
            }
            (Action::SendSms { template, text }, Target::Sms(provider)) => {
                let provider = provider.ok_or("no active sms provider")?;
                body["kind"] = json!("sms");
                body["to"] = json!(field("phone", "phone number")?);
                body["provider"] = json!(provider.name);
                body["template"] = json!(template);
                body["text"] = render(text)?;
                auth = Some((format!("sms:{}", provider.name), provider.auth));
                rate = limit(format!("sms_provider:{}", provider.id), provider.rate_per_sec);
                ("sms", provider.url)
            }
            (
                Action::Webhook {
                    target,
                    body: given,
                    headers: given_headers,
                },
                found,
            ) => {
                let url = match (target, found) {
                    (WebhookTarget::Url(url), _) => url.clone(),
                    (WebhookTarget::Endpoint(_), Target::Endpoint(Some(endpoint))) => {
                        secret = endpoint
                            .secret
                            .filter(|s| !s.is_empty())
                            .map(|s| (format!("endpoint:{}", endpoint.name), s));
                        auth = Some((format!("endpoint:{}", endpoint.name), endpoint.auth));
                        rate = limit(format!("webhook_endpoint:{}", endpoint.id), endpoint.rate_per_sec);
                        endpoint.url
                    }
                    (WebhookTarget::Endpoint(name), _) => return Err(format!("no webhook endpoint named {name:?}")),
                };
                body = match given {
                    Some(given) => render_json(given, context)?,
                    None => {
                        json!({"event": facts.event, "customer": customer, "workflow_id": run.workflow_id, "run_id": run.id})
                    }
                };
                for (name, value) in given_headers {
                    let value = template::render(value, context).map_err(|e| e.to_string())?;
                    check_header(name, &value)?;
                    headers.insert(name.clone(), value);
                }
                secret = secret.or_else(|| {
                    Some(("default".to_owned(), self.webhook_secret.clone())).filter(|(_, s)| !s.is_empty())
                });
                ("webhook", url)
            }
            (other, _) => return Err(format!("{} is not an external action", other.kind().name())),
        };
        if let Value::Object(map) = &mut body {
            map.retain(|_, v| !v.is_null());
        }
        let body = body.to_string();
        // The run's trace goes on, as a hop of its own named by what is sent.
        if let Some(trace) = run.traceparent.as_deref().and_then(|t| t.parse::<TraceParent>().ok()) {
            headers.insert(crate::trace::HEADER.to_owned(), trace.child(&body).to_string());
        }
        // Signed when sent (fresh timestamp on every attempt); registering here makes the
        // secrets findable by the sender, also for a replayed request built before.
        let signing_key = secret.and_then(|(source, s)| self.keyring.register(&source, &s));
        // The same for credentials: the request refers to them, the sender applies them.
        let auth_key = match auth {
            Some((source, Some(stored))) if !stored.is_empty() => {
                let credentials = Credentials::from_stored(&stored)
                    .ok_or_else(|| format!("the credentials of {source} cannot be read: write them again"))?;
                Some(self.keyring.register_auth(&source, &credentials))
            }
            _ => None,
        };
        Ok(OutboundRequest {
            kind: kind.to_owned(),
            url,
            headers,
            body,
            signing_key,
            auth_key,
            configured,
            keep_response: false,
            rate,
        })
    }
}

/// A workflow header may not replace an engine header, and must be valid HTTP: either
/// failure is permanent (the same template renders the same way on a retry).
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if is_reserved_header(name) {
        return Err(format!(
            "header {name:?} is set by the engine and cannot be set by a workflow"
        ));
    }
    check_header_value(name, value)
}

/// `name: value` is valid HTTP.
pub fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    if awc::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("invalid header name {name:?}"));
    }
    if awc::http::header::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "header {name:?} has an invalid value (control characters or non-ascii)"
        ));
    }
    Ok(())
}

/// Opens a sealed `auth` in place.
fn open_auth(db: &Database, column: &str, auth: &mut Option<String>) -> Result<(), StorageError> {
    if let Some(stored) = auth.as_deref().filter(|s| !s.is_empty()) {
        *auth = Some(secrets::open(db, column, stored)?);
    }
    Ok(())
}

/// What an external step's target needed from the database.
enum Target {
    None,
    /// The active SMS provider, if any.
    Sms(Option<sms_providers::Model>),
    /// A named webhook endpoint, if it exists.
    Endpoint(Option<webhook_endpoints::Model>),
}

/// Renders every string of a JSON body as a template. Bounded by the JSON parser's
/// nesting limit, as the body came through it.
fn render_json(value: &Value, context: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(template::render(s, context).map_err(|e| e.to_string())?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json(i, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, context)?)))
                .collect::<Result<Map<_, _>, String>>()?,
        ),
        other => other.clone(),
    })
}
