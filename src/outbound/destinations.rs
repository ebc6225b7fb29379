//! Where a workflow's requests would go, judged before they are sent: at save and in the
//! dry run, a webhook URL, a named endpoint's URL or the active SMS provider's URL that
//! the outbound guard would refuse is a warning with the step's pointer, so the operator
//! learns it now rather than from a failed run. Destinations named in the engine's own
//! configuration (`delivery.email_url`) are trusted and not judged.
//!
//! What can be known beforehand is judged: the scheme, an IP-literal host against the
//! guard's ranges, and a host that is a local name (`localhost`, `*.local`, one label),
//! which resolves to an internal address on any sane network. Any other name is checked
//! by the guard when it resolves it, at send time; a URL with a template is checked then too.

use super::guard::check_target;
use crate::catalogue::{Action, WebhookTarget};
use crate::problem::{Problem, Severity};
use crate::storage::{endpoints, sms_providers, StorageError};
use crate::workflow::Workflow;
use sea_orm::ConnectionTrait;

/// A warning for each step of `workflow` (nested ones included) whose destination the
/// guard would refuse under `allowlist` (`delivery.webhook_allowlist`).
pub async fn warnings<C: ConnectionTrait>(
    conn: &C,
    workflow: &Workflow,
    allowlist: &[String],
) -> Result<Vec<Problem>, StorageError> {
    let mut out = Vec::new();
    // The active provider's URL, read once however many SMS steps the tree has.
    let mut provider: Option<Option<String>> = None;
    for slot in workflow.flow().slots() {
        let (key, url, what) = match &slot.step.action {
            Action::Webhook {
                target: WebhookTarget::Url(url),
                ..
            } => ("url", Some(url.clone()), String::new()),
            Action::Webhook {
                target: WebhookTarget::Endpoint(name),
                ..
            } => (
                "endpoint",
                endpoints::by_name(conn, name).await?.map(|e| e.url),
                format!("endpoint {name:?}: "),
            ),
            Action::SendSms { .. } => {
                if provider.is_none() {
                    provider = Some(sms_providers::active(conn).await?.map(|p| p.url));
                }
                ("", provider.clone().flatten(), "the active SMS provider: ".to_owned())
            }
            _ => continue,
        };
        let Some(reason) = url.as_deref().and_then(|url| refusal(url, allowlist)) else {
            continue;
        };
        let path = match key {
            "" => format!("{}/type", slot.pointer),
            key => format!("{}/params/{key}", slot.pointer),
        };
        out.push(Problem {
            path,
            message: format!("{what}{reason}"),
            severity: Severity::Warning,
        });
    }
    Ok(out)
}

/// Why the guard would refuse a request to `url`, when that can be told before sending.
pub fn refusal(url: &str, allowlist: &[String]) -> Option<String> {
    if url.contains("{{") {
        return None;
    }
    if let Err(e) = check_target(url, allowlist) {
        return Some(format!(
            "would be refused when sent: {e}; if it is yours, add its host to delivery.webhook_allowlist"
        ));
    }
    let host = url::Url::parse(url).ok()?.host_str()?.to_ascii_lowercase();
    let allowed = allowlist.iter().any(|a| a.eq_ignore_ascii_case(&host));
    let local = host == "localhost"
        || [".localhost", ".local", ".internal", ".lan", ".home.arpa"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
        || (!host.contains('.') && !host.contains(':'));
    (local && !allowed).then(|| {
        format!(
            "{host} is a local name: the outbound guard refuses it when it resolves to an internal \
             address, unless delivery.webhook_allowlist names it"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn what_the_guard_would_refuse_is_told_before_sending() {
        assert!(refusal("http://127.0.0.1:9/x", &[])
            .unwrap()
            .contains("would be refused"));
        assert!(refusal("http://169.254.169.254/latest", &[]).is_some());
        assert!(refusal("ftp://example.com/x", &[]).is_some());
        assert!(refusal("http://localhost:8025/mail", &[])
            .unwrap()
            .contains("local name"));
        assert!(refusal("http://crm-hooks/x", &[]).is_some(), "one label");
        assert!(refusal("http://hooks.internal/x", &[]).is_some());
        assert!(refusal("http://localhost:8025/mail", &["localhost".into()]).is_none());
        assert!(refusal("http://127.0.0.1:9/x", &["127.0.0.1".into()]).is_none());
        assert!(refusal("https://hooks.example.com/x", &[]).is_none());
        assert!(
            refusal("https://{{customer.custom.host}}/x", &[]).is_none(),
            "judged when rendered"
        );
    }
}
