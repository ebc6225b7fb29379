//! Sending one request: its policy (timeout, attempts, backoff, allowlist, secrets), one
//! attempt, the retries around it and what became of it.
//!
//! A request is built when its step runs and kept in the durable outbox; [`deliver`] sends
//! it with a per-request timeout, retries by [`crate::retry`] (capped exponential backoff;
//! a 429 or 503 `Retry-After` is honoured, capped by the backoff maximum), a maximum of
//! attempts, and the idempotency key (run id + step) on every attempt so the receiver can
//! drop duplicates. Signed requests are signed here, per attempt (Standard Webhooks, see
//! [`super::signing`]), so the timestamp is fresh even on a replay. Connections go through
//! the outbound guard's resolver ([`super::guard`]): internal and special-purpose addresses
//! are refused unless allowlisted, and a name is resolved once, so DNS rebinding cannot
//! slip past the check. Plain async code over an injected clock: the delivery actor pool
//! runs it, tests run it with a manual clock.

pub use super::error::DeliveryError;
use super::guard::{self, check_target};
use super::pace::Pace;
use super::signing::{Keyring, ID_HEADER, TIMESTAMP_HEADER};
use super::{is_reserved_header, OutboundRequest, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::retry::{retry, Backoff, Retried};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How requests are sent and retried.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    /// Also caps a server's `Retry-After`.
    pub backoff_max: Duration,
    /// Hosts (names or IPs) allowed although internal (see [`is_internal`]).
    pub allowlist: Vec<String>,
    /// URLs the engine's configuration file names as destinations (`delivery.email_url`):
    /// the operator chose them, so requests built for them pass the outbound guard, which
    /// is there for destinations API callers and workflows choose. A fresh install's
    /// local email service is one.
    pub trusted: Vec<String>,
    /// The secrets queued requests refer to (shared with the request builder).
    pub keyring: Arc<Keyring>,
}

impl DeliveryPolicy {
    /// Whether `request` goes to a destination of the configuration: built for one, and
    /// still named by it (a request queued before the configuration changed is not).
    pub fn trusts(&self, request: &OutboundRequest) -> bool {
        request.configured && self.trusted.contains(&request.url)
    }

    /// The longest a delivery can take: every attempt timing out, and the longest wait
    /// before each retry (the backoff's maximum, which also caps a `Retry-After`).
    pub fn longest(&self) -> Duration {
        let attempts = self.max_attempts.max(1);
        self.timeout
            .saturating_mul(attempts)
            .saturating_add(self.backoff_max.saturating_mul(attempts - 1))
    }

    /// The lease a sender takes on a delivery: [`longest`](Self::longest) and
    /// [`LEASE_SLACK`]. Without the slack the last attempt never fit: the pool starts no
    /// attempt that could outlast the lease, and the lease was taken a moment before the
    /// pool looked, so with `max_attempts = 1` a new owner renewed the lease and was told
    /// "lease over" in a loop, sending nothing.
    pub fn lease(&self) -> Duration {
        self.longest().saturating_add(LEASE_SLACK)
    }
}

/// Room in a delivery lease for the hand-off from the chain to the pool (a queue for a
/// request slot, the database write that takes the lease).
pub const LEASE_SLACK: Duration = Duration::from_secs(5);

/// The system clock, with every wait stretched by a deterministic 0-20% per idempotency
/// key, so many requests that failed together (an endpoint's outage) do not retry in
/// lockstep. Only stretched, never shortened, so a server's `Retry-After` still holds.
pub struct Jittered {
    stretch: f64,
}

impl Jittered {
    pub fn for_key(key: &str) -> Self {
        let hash = key
            .bytes()
            .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        Self {
            stretch: 1.0 + f64::from(hash % 21) / 100.0,
        }
    }
}

impl Clock for Jittered {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now()
    }

    fn sleep(&self, duration: Duration) -> crate::clock::Sleep {
        SystemClock.sleep(duration.mul_f64(self.stretch))
    }
}

/// Sends `msg` through `client` until it is accepted, fails permanently or the attempts
/// run out; waits on `clock` (a manual one in tests).
pub async fn deliver(
    client: &awc::Client,
    policy: &DeliveryPolicy,
    clock: &dyn Clock,
    pace: &Pace,
    msg: &Deliver,
) -> DeliveryReport {
    let metrics = Metrics::global();
    let kind = msg.request.kind.as_str();
    let backoff = Backoff {
        initial: policy.backoff_initial,
        max: policy.backoff_max,
    };
    // A replay continues the count, but always makes at least one attempt.
    let allowed = policy.max_attempts.saturating_sub(msg.attempts_before).max(1);
    // Attempts that left (a wait for a slot that failed is not one).
    let made = std::cell::Cell::new(0u32);
    let timeout = chrono::Duration::from_std(policy.timeout).unwrap_or_default();
    // The last moment an attempt may leave: none may still be out when the lease ends.
    let latest = msg.send_until.map(|until| until - timeout);
    let outcome = retry(
        clock,
        backoff,
        Some(allowed),
        || false,
        |e: &DeliveryError, n, wait| {
            metrics.delivery_attempts.with_label_values(&[kind, "retry"]).inc();
            tracing::warn!(idempotency_key = %msg.idempotency_key, kind, attempts = msg.attempts_before + n, error = %e, retry_in_ms = wait.as_millis() as u64, "delivery failed, retrying");
        },
        || async {
            if latest.is_some_and(|latest| clock.now() > latest) {
                return Err(DeliveryError::LeaseOver);
            }
            let _slot = pace.admit(msg.request.rate.as_ref(), latest).await?;
            if latest.is_some_and(|latest| clock.now() > latest) {
                return Err(DeliveryError::LeaseOver);
            }
            made.set(made.get() + 1);
            attempt(client, policy, clock, msg).await
        },
    )
    .await;
    let attempts = msg.attempts_before + made.get();
    match outcome {
        Retried::Ok((status, response)) => {
            metrics.delivery_attempts.with_label_values(&[kind, "ok"]).inc();
            DeliveryReport {
                attempts,
                outcome: Ok(status),
                response,
            }
        }
        Retried::Failed { error, .. } => {
            metrics.delivery_attempts.with_label_values(&[kind, "failed"]).inc();
            DeliveryReport {
                attempts,
                outcome: Err(error),
                response: None,
            }
        }
    }
}

/// The largest answer body kept for a step that reads it.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// What an accepted attempt answered: its status, and its body when the request keeps it
/// (JSON of at most [`MAX_RESPONSE`] bytes, or why it is not).
type Accepted = (u16, Option<Result<Value, String>>);

/// One attempt: the target checked, the workflow's headers then the engine's (which win),
/// signed now, sent, and the answer classified.
async fn attempt(
    client: &awc::Client,
    policy: &DeliveryPolicy,
    clock: &dyn Clock,
    msg: &Deliver,
) -> Result<Accepted, DeliveryError> {
    let request = &msg.request;
    // Every message names the target redacted: it becomes the step's error, which the
    // runs API shows, and a log line (issue 22, finding 5).
    let shown = || crate::redact::url(&request.url);
    let scrub = |message: String| crate::redact::text(&message, &request.url);
    if !policy.trusts(request) {
        check_target(&request.url, &policy.allowlist).map_err(|e| DeliveryError::Permanent(scrub(e.to_string())))?;
    }
    let key = msg.idempotency_key.as_str();
    let mut builder = client.post(&request.url);
    for (name, value) in &request.headers {
        // A request queued before signing moved here keeps its body-only signature.
        let legacy_signature = request.signing_key.is_none() && name.eq_ignore_ascii_case("x-signature");
        // The trace context is reserved so that only the engine sets it, when it builds
        // the request (see `outbound::build`).
        let trace = name.eq_ignore_ascii_case(crate::trace::HEADER);
        if is_reserved_header(name) && !legacy_signature && !trace {
            continue;
        }
        crate::outbound::check_header_value(name, value).map_err(DeliveryError::Permanent)?;
        builder = builder.insert_header((name.as_str(), value.as_str()));
    }
    builder = builder
        .insert_header(("Content-Type", "application/json"))
        .insert_header((IDEMPOTENCY_HEADER, key));
    if let Some(id) = &request.auth_key {
        // After the workflow's headers, so a workflow's `Authorization` cannot replace it.
        let credentials = policy.keyring.credentials(id).ok_or_else(|| {
            DeliveryError::Permanent("the credentials of this request are no longer configured".to_owned())
        })?;
        let (name, value) = credentials.header();
        builder = builder.insert_header((name, value));
    }
    if let Some(id) = &request.signing_key {
        let secrets = policy.keyring.get(id).ok_or_else(|| {
            DeliveryError::Permanent("the signing secret of this request is no longer configured".to_owned())
        })?;
        let timestamp = clock.now().timestamp();
        builder = builder
            .insert_header((ID_HEADER, key))
            .insert_header((TIMESTAMP_HEADER, timestamp.to_string()))
            .insert_header((SIGNATURE_HEADER, secrets.sign(key, timestamp, request.body.as_bytes())));
    }
    let mut response = builder
        .send_body(request.body.clone())
        .await
        .map_err(|e| match guard::refusal(&e) {
            Some(refused) if refused.is_permanent() => DeliveryError::Permanent(scrub(refused.to_string())),
            _ => DeliveryError::Transient(scrub(format!("request to {} failed: {e}", shown()))),
        })?;
    let status = response.status();
    let answered = || format!("{} answered {status}", shown());
    match status.as_u16() {
        200..=299 => {
            let kept = match request.keep_response {
                false => None,
                true => Some(match response.body().limit(MAX_RESPONSE).await {
                    Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                        .map_err(|e| format!("{} answered with a body that is not JSON: {e}", shown())),
                    Err(awc::error::PayloadError::Overflow) => Err(format!(
                        "{} answered with a body over {} KiB",
                        shown(),
                        MAX_RESPONSE / 1024
                    )),
                    Err(e) => Err(format!("{}'s answer could not be read: {e}", shown())),
                }),
            };
            Ok((status.as_u16(), kept))
        }
        429 | 503 => {
            let after = response
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, clock.now()));
            Err(match after {
                Some(after) => DeliveryError::RetryAfter(answered(), after),
                None => DeliveryError::Transient(answered()),
            })
        }
        408 | 500..=599 => Err(DeliveryError::Transient(answered())),
        _ => Err(DeliveryError::Permanent(answered())),
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (a date in the past is 0). The cap
/// is the backoff maximum, applied by [`Backoff::wait`].
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Send `request` until it is accepted or the attempts (counted from `attempts_before`)
/// run out: a chain's external step. The actors' protocol makes it the delivery pool's
/// message.
#[derive(Debug, Clone)]
pub struct Deliver {
    pub request: OutboundRequest,
    pub idempotency_key: String,
    pub attempts_before: u32,
    /// The end of the sender's lease on this delivery: no attempt starts that could still
    /// be out after it, since the partition's next owner may send the request then
    /// ([`crate::storage::steps::begin_external`]).
    pub send_until: Option<DateTime<Utc>>,
}

/// What became of a [`Deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempts: u32,
    /// The HTTP status of the accepted attempt, or the last error.
    pub outcome: Result<u16, DeliveryError>,
    /// The accepted attempt's body, when the request keeps it
    /// ([`OutboundRequest::keep_response`](crate::storage::outbox::OutboundRequest)).
    pub response: Option<Result<Value, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::outbound::guard::{Guard, Lookup};
    use crate::outbound::signing;
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    use chrono::TimeZone;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::sync::Mutex;

    /// What the test server got, and what it answers next (then 200).
    #[derive(Default)]
    struct Script {
        answers: Mutex<Vec<(u16, Option<String>)>>,
        got: Mutex<Vec<(BTreeMap<String, String>, String)>>,
    }

    async fn receive(req: HttpRequest, body: web::Bytes, script: web::Data<Arc<Script>>) -> HttpResponse {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        script
            .got
            .lock()
            .unwrap()
            .push((headers, String::from_utf8_lossy(&body).into_owned()));
        let next = {
            let mut answers = script.answers.lock().unwrap();
            (!answers.is_empty()).then(|| answers.remove(0))
        };
        match next {
            Some((status, retry_after)) => {
                let mut r = HttpResponse::build(awc::http::StatusCode::from_u16(status).unwrap());
                if let Some(v) = retry_after {
                    r.insert_header(("Retry-After", v));
                }
                r.finish()
            }
            None => HttpResponse::Ok().finish(),
        }
    }

    fn serve(answers: Vec<(u16, Option<String>)>) -> (Arc<Script>, u16, actix_web::dev::ServerHandle) {
        let script = Arc::new(Script {
            answers: Mutex::new(answers),
            ..Default::default()
        });
        let data = web::Data::new(Arc::clone(&script));
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        (script, port, handle)
    }

    fn policy(allowlist: &[&str]) -> DeliveryPolicy {
        DeliveryPolicy {
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(60),
            allowlist: allowlist.iter().map(|s| s.to_string()).collect(),
            trusted: Vec::new(),
            keyring: Arc::default(),
        }
    }

    fn lookup_to(answer: &'static str) -> Lookup {
        Rc::new(move |_host, port| Box::pin(async move { Ok(vec![SocketAddr::new(answer.parse().unwrap(), port)]) }))
    }

    fn client(policy: &DeliveryPolicy) -> awc::Client {
        guard::client(
            policy.timeout,
            Guard::new(policy.allowlist.clone(), guard::system_lookup()),
        )
    }

    fn msg(url: String, headers: &[(&str, &str)], signing_key: Option<String>) -> Deliver {
        Deliver {
            request: OutboundRequest {
                kind: "webhook".into(),
                url,
                headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                body: r#"{"n":1}"#.into(),
                signing_key,
                auth_key: None,
                configured: false,
                keep_response: false,
                rate: None,
            },
            idempotency_key: "run-1-step-0".into(),
            attempts_before: 0,
            send_until: None,
        }
    }

    fn unpaced() -> Pace {
        Pace::new(4, None, crate::clock::system())
    }

    fn clock() -> ManualClock {
        ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap())
    }

    #[actix_rt::test]
    async fn retry_after_is_honoured_and_capped() {
        let clock = clock();
        let start = clock.now();
        let date = (start + chrono::Duration::seconds(20))
            .to_rfc2822()
            .replace("+0000", "GMT");
        let (script, port, server) = serve(vec![
            (429, Some("7".into())),
            (503, Some(date)),
            (503, Some("86400".into())),
        ]);
        let policy = policy(&["127.0.0.1"]);
        let report = deliver(
            &client(&policy),
            &policy,
            &clock,
            &unpaced(),
            &msg(format!("http://127.0.0.1:{port}/h"), &[], None),
        )
        .await;
        assert_eq!(
            report,
            DeliveryReport {
                attempts: 4,
                outcome: Ok(200),
                response: None,
            }
        );
        // 7 s, then until the date (start + 20 s), then a day capped to the backoff
        // maximum (60 s).
        assert_eq!((clock.now() - start).num_seconds(), 20 + 60);
        assert_eq!(script.got.lock().unwrap().len(), 4);
        server.stop(false).await;
    }

    /// A sender whose partition may have moved must have no request out once its lease
    /// on the delivery ends: it starts no attempt that could outlast the lease, and the
    /// lease is long enough for every attempt the policy allows.
    #[actix_rt::test]
    async fn no_attempt_starts_that_could_outlast_the_lease() {
        let clock = clock();
        let start = clock.now();
        let (script, port, server) = serve(vec![(503, None); 5]);
        let policy = policy(&["127.0.0.1"]);
        assert_eq!(policy.longest(), Duration::from_secs(5 * 10 + 4 * 60));
        // Attempts at 0 s and 0.1 s end by 10.1 s; the third, at 0.3 s, could end at 10.3 s.
        let leased = Deliver {
            send_until: Some(start + chrono::Duration::milliseconds(10_250)),
            ..msg(format!("http://127.0.0.1:{port}/h"), &[], None)
        };
        let report = deliver(&client(&policy), &policy, &clock, &unpaced(), &leased).await;
        assert_eq!(
            report,
            DeliveryReport {
                attempts: 2,
                outcome: Err(DeliveryError::LeaseOver),
                response: None,
            }
        );
        assert_eq!(script.got.lock().unwrap().len(), 2);
        server.stop(false).await;
    }

    #[actix_rt::test]
    async fn client_errors_are_permanent_except_408_and_429() {
        for (status, attempts, permanent) in [
            (400, 1, true),
            (401, 1, true),
            (404, 1, true),
            (410, 1, true),
            (408, 2, false),
            (429, 2, false),
            (500, 2, false),
        ] {
            let (_script, port, server) = serve(vec![(status, None); 5]);
            let policy = DeliveryPolicy {
                max_attempts: 2,
                ..policy(&["127.0.0.1"])
            };
            let report = deliver(
                &client(&policy),
                &policy,
                &clock(),
                &unpaced(),
                &msg(format!("http://127.0.0.1:{port}/h"), &[], None),
            )
            .await;
            assert_eq!(report.attempts, attempts, "{status}");
            assert_eq!(report.outcome.unwrap_err().is_permanent(), permanent, "{status}");
            server.stop(false).await;
        }
    }

    #[actix_rt::test]
    async fn engine_headers_win_and_requests_are_signed_when_sent() {
        let (script, port, server) = serve(vec![]);
        let policy = policy(&["127.0.0.1"]);
        let key = policy
            .keyring
            .register("endpoint:delivery-test", "whsec_c2VjcmV0LW9uZQ== second-secret");
        let evil = [
            ("idempotency-key", "evil"),
            ("Webhook-Signature", "v1,evil"),
            ("webhook-id", "evil"),
            ("webhook-timestamp", "1"),
            ("CONTENT-TYPE", "text/plain"),
            ("x-signature", "evil"),
            ("x-tenant", "acme"),
        ];
        let clock = clock();
        let report = deliver(
            &client(&policy),
            &policy,
            &clock,
            &unpaced(),
            &msg(format!("http://127.0.0.1:{port}/h"), &evil, key),
        )
        .await;
        assert_eq!(report.outcome, Ok(200));
        let (headers, body) = script.got.lock().unwrap()[0].clone();
        assert_eq!(headers["idempotency-key"], "run-1-step-0");
        assert_eq!(headers["webhook-id"], "run-1-step-0");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-tenant"], "acme");
        assert!(!headers.contains_key("x-signature"));
        let timestamp: i64 = headers["webhook-timestamp"].parse().unwrap();
        assert_eq!(timestamp, clock.now().timestamp());
        let signature = &headers["webhook-signature"];
        assert!(signing::verify(
            "whsec_c2VjcmV0LW9uZQ==",
            "run-1-step-0",
            timestamp,
            body.as_bytes(),
            signature
        ));
        assert!(signing::verify(
            "second-secret",
            "run-1-step-0",
            timestamp,
            body.as_bytes(),
            signature
        ));
        assert!(!signature.contains("evil"));
        server.stop(false).await;
    }

    #[actix_rt::test]
    async fn an_invalid_header_fails_at_once() {
        let (script, port, server) = serve(vec![]);
        let policy = policy(&["127.0.0.1"]);
        for headers in [[("x-bad", "a\nb")], [("bad header", "x")]] {
            let report = deliver(
                &client(&policy),
                &policy,
                &clock(),
                &unpaced(),
                &msg(format!("http://127.0.0.1:{port}/h"), &headers, None),
            )
            .await;
            assert_eq!(report.attempts, 1);
            assert!(report.outcome.unwrap_err().is_permanent());
        }
        assert!(script.got.lock().unwrap().is_empty());
        server.stop(false).await;
    }

    /// DNS rebinding: whatever a name resolves to at connect time is checked, and the
    /// connection goes to exactly the checked address.
    #[actix_rt::test]
    async fn a_name_that_resolves_inside_is_refused_at_connect_time() {
        let (script, port, server) = serve(vec![]);
        let url = format!("http://rebind.example:{port}/h");
        let policy_open = policy(&[]);
        let refused = guard::client(policy_open.timeout, Guard::new(vec![], lookup_to("127.0.0.1")));
        let report = deliver(
            &refused,
            &policy_open,
            &clock(),
            &unpaced(),
            &msg(url.clone(), &[], None),
        )
        .await;
        assert_eq!(report.attempts, 1);
        let error = report.outcome.unwrap_err();
        assert!(
            error.is_permanent() && error.to_string().contains("127.0.0.1"),
            "{error}"
        );
        assert!(script.got.lock().unwrap().is_empty());
        // Allowlisted, the same name reaches the address the guard resolved (the name does
        // not exist in real DNS).
        let allowed = guard::client(
            policy_open.timeout,
            Guard::new(vec!["rebind.example".into()], lookup_to("127.0.0.1")),
        );
        let report = deliver(
            &allowed,
            &policy(&["rebind.example"]),
            &clock(),
            &unpaced(),
            &msg(url, &[], None),
        )
        .await;
        assert_eq!(report.outcome, Ok(200));
        assert_eq!(script.got.lock().unwrap().len(), 1);
        server.stop(false).await;
    }

    /// Issue 25: the configuration's own destinations (a fresh install's local email
    /// service) pass the guard; the same URL from anywhere else does not, nor does a
    /// request built for a URL the configuration no longer names.
    #[actix_rt::test]
    async fn only_a_destination_the_configuration_names_passes_the_guard() {
        let (script, port, server) = serve(vec![]);
        let url = format!("http://127.0.0.1:{port}/email");
        let policy = DeliveryPolicy {
            trusted: vec![url.clone()],
            ..policy(&[])
        };
        let trusting = guard::client(policy.timeout, Guard::trusting(guard::system_lookup()));
        let mut configured = msg(url.clone(), &[], None);
        configured.request.configured = true;
        assert!(policy.trusts(&configured.request));
        let report = deliver(&trusting, &policy, &clock(), &unpaced(), &configured).await;
        assert_eq!(report.outcome, Ok(200));

        let chosen = msg(url.clone(), &[], None);
        assert!(!policy.trusts(&chosen.request), "the same URL chosen by a workflow");
        let report = deliver(&client(&policy), &policy, &clock(), &unpaced(), &chosen).await;
        assert!(report.outcome.unwrap_err().is_permanent());

        let mut stale = msg(format!("http://127.0.0.1:{port}/old"), &[], None);
        stale.request.configured = true;
        assert!(
            !policy.trusts(&stale.request),
            "a URL the configuration no longer names"
        );
        assert_eq!(script.got.lock().unwrap().len(), 1);
        server.stop(false).await;
    }

    #[test]
    fn jitter_only_stretches_and_differs_by_key() {
        let stretches: Vec<f64> = (0..50)
            .map(|i| Jittered::for_key(&format!("run-{i}-step-0")).stretch)
            .collect();
        assert!(stretches.iter().all(|s| (1.0..=1.2).contains(s)), "{stretches:?}");
        assert!(stretches.iter().any(|s| *s != stretches[0]), "keys spread out");
        assert_eq!(Jittered::for_key("k").stretch, Jittered::for_key("k").stretch);
    }

    #[test]
    fn retry_after_values() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 25 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after("Wed, 25 Nov 2026 09:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }
}
