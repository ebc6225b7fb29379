//! The delivery actor pool: email, SMS and webhook requests over HTTP (awc).
//!
//! A request is built and signed when its step runs and kept in the durable outbox; this
//! pool only sends it: with a per-request timeout, capped exponential backoff between
//! attempts, a maximum of attempts, and the idempotency key (run id + step) on every
//! attempt so the receiver can drop duplicates. Targets in private, loopback and link-local
//! ranges are refused unless the allowlist names them. Each member runs many requests at
//! once (bounded by a semaphore), so a slow endpoint holds one slot, never the pool.

use super::metrics::{Mailbox, Metrics};
use actix::prelude::*;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub use crate::outbound::{sign, OutboundRequest, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};

/// How requests are sent and retried.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Hosts (names or IPs) allowed although private, loopback or link-local.
    pub allowlist: Vec<String>,
}

impl DeliveryPolicy {
    /// The wait before attempt `attempt + 1` (attempts count from 1): doubling from the
    /// initial backoff, capped, with a deterministic ±20% spread per key so retries of many
    /// failed requests do not arrive in lockstep.
    pub fn backoff(&self, attempt: u32, key: &str) -> Duration {
        let base = self
            .backoff_initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = base.min(self.backoff_max);
        let spread = key.bytes().fold(u32::from(attempt as u8), |h, b| {
            h.wrapping_mul(31).wrapping_add(u32::from(b))
        }) % 41;
        capped.mul_f64(0.8 + f64::from(spread) / 100.0)
    }
}

/// Why a request was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Will not be retried: a 4xx other than 408/429, a refused or malformed target.
    #[error("{0}")]
    Permanent(String),
    /// Retried until the attempts run out.
    #[error("{0}")]
    Transient(String),
}

impl DeliveryError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent(_))
    }
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempts: u32,
    /// The HTTP status of the accepted attempt, or the last error.
    pub outcome: Result<u16, DeliveryError>,
}

/// Send `request` until it is accepted or the attempts (counted from `attempts_before`) run
/// out.
#[derive(Debug, Clone, Message)]
#[rtype(result = "DeliveryReport")]
pub struct Deliver {
    pub request: OutboundRequest,
    pub idempotency_key: String,
    pub attempts_before: u32,
}

/// Checks that `url` may be requested: http(s), and not into a private, loopback or
/// link-local range unless allowlisted. Names are resolved and every address checked.
pub async fn check_target(url: &str, allowlist: &[String]) -> Result<(), DeliveryError> {
    let parsed = url::Url::parse(url).map_err(|e| DeliveryError::Permanent(format!("invalid url {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(DeliveryError::Permanent(format!(
            "refused scheme {:?}",
            parsed.scheme()
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| DeliveryError::Permanent(format!("url {url:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if allowlist.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| DeliveryError::Transient(format!("cannot resolve {host}: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    for ip in addresses {
        if is_internal(ip) && !allowlist.iter().any(|a| a.parse::<IpAddr>().ok() == Some(ip)) {
            return Err(DeliveryError::Permanent(format!(
                "refused {host} ({ip}): private, loopback or link-local address not in the webhook allowlist"
            )));
        }
    }
    Ok(())
}

/// Private, loopback, link-local, unspecified, shared (CGNAT) and unique-local addresses.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// One member of the pool: an awc client (not `Send`, so one per arbiter thread).
pub struct Delivery {
    policy: Arc<DeliveryPolicy>,
    slots: Arc<Semaphore>,
    client: Option<awc::Client>,
    mailbox: Mailbox,
}

impl Actor for Delivery {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.client = Some(
            awc::Client::builder()
                .timeout(self.policy.timeout)
                .disable_redirects()
                .finish(),
        );
        Metrics::global().actors.with_label_values(&["delivery"]).inc();
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["delivery"]).dec();
    }
}

impl Handler<Deliver> for Delivery {
    type Result = ResponseFuture<DeliveryReport>;

    fn handle(&mut self, msg: Deliver, _ctx: &mut Context<Self>) -> Self::Result {
        self.mailbox.handled();
        let client = self.client.clone().unwrap_or_default();
        let policy = Arc::clone(&self.policy);
        let slots = Arc::clone(&self.slots);
        Box::pin(async move {
            let _slot = slots.acquire_owned().await;
            deliver(&client, &policy, msg).await
        })
    }
}

async fn deliver(client: &awc::Client, policy: &DeliveryPolicy, msg: Deliver) -> DeliveryReport {
    let metrics = Metrics::global();
    let kind = msg.request.kind.as_str();
    let mut attempts = msg.attempts_before;
    loop {
        attempts += 1;
        let outcome = attempt(client, policy, &msg).await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(DeliveryError::Permanent(_)) => "failed",
            Err(DeliveryError::Transient(_)) if attempts >= policy.max_attempts => "failed",
            Err(DeliveryError::Transient(_)) => "retry",
        };
        metrics.delivery_attempts.with_label_values(&[kind, label]).inc();
        match outcome {
            Err(DeliveryError::Transient(e)) if attempts < policy.max_attempts => {
                let wait = policy.backoff(attempts, &msg.idempotency_key);
                tracing::warn!(idempotency_key = %msg.idempotency_key, kind, attempts, error = %e, retry_in_ms = wait.as_millis() as u64, "delivery failed, retrying");
                actix_rt::time::sleep(wait).await;
            }
            outcome => return DeliveryReport { attempts, outcome },
        }
    }
}

async fn attempt(client: &awc::Client, policy: &DeliveryPolicy, msg: &Deliver) -> Result<u16, DeliveryError> {
    let request = &msg.request;
    check_target(&request.url, &policy.allowlist).await?;
    let mut builder = client
        .post(&request.url)
        .insert_header(("Content-Type", "application/json"))
        .insert_header((IDEMPOTENCY_HEADER, msg.idempotency_key.as_str()));
    for (name, value) in &request.headers {
        builder = builder.insert_header((name.as_str(), value.as_str()));
    }
    let response = builder
        .send_body(request.body.clone())
        .await
        .map_err(|e| DeliveryError::Transient(format!("request to {} failed: {e}", request.url)))?;
    let status = response.status();
    match status.as_u16() {
        200..=299 => Ok(status.as_u16()),
        408 | 429 | 500..=599 => Err(DeliveryError::Transient(format!("{} answered {status}", request.url))),
        _ => Err(DeliveryError::Permanent(format!("{} answered {status}", request.url))),
    }
}

/// Mailbox capacity of a pool member: requests wait here only while being handed to a
/// spawned attempt loop, so a small bound suffices.
const DELIVERY_MAILBOX: usize = 256;

/// The pool: members on their own arbiters, taken in turn.
#[derive(Clone)]
pub struct DeliveryPool {
    members: Arc<[Addr<Delivery>]>,
    next: Arc<AtomicUsize>,
    mailbox: Mailbox,
}

impl DeliveryPool {
    /// Starts `size` members sharing `concurrency` request slots.
    pub fn start(size: usize, concurrency: usize, policy: DeliveryPolicy) -> Self {
        let policy = Arc::new(policy);
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let mailbox = Metrics::global().mailbox("delivery");
        mailbox.set_capacity(DELIVERY_MAILBOX);
        let members: Vec<Addr<Delivery>> = (0..size.max(1))
            .map(|_| {
                let (policy, slots, mailbox) = (Arc::clone(&policy), Arc::clone(&slots), mailbox.clone());
                Delivery::start_in_arbiter(&Arbiter::new().handle(), move |ctx| {
                    ctx.set_mailbox_capacity(DELIVERY_MAILBOX);
                    Delivery {
                        policy,
                        slots,
                        client: None,
                        mailbox,
                    }
                })
            })
            .collect();
        Self {
            members: members.into(),
            next: Arc::new(AtomicUsize::new(0)),
            mailbox,
        }
    }

    /// Sends `msg` through the next member and waits for the report.
    pub async fn deliver(&self, msg: Deliver) -> DeliveryReport {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.members.len();
        let attempts_before = msg.attempts_before;
        self.mailbox.sent();
        match self.members[i].send(msg).await {
            Ok(report) => report,
            Err(e) => DeliveryReport {
                attempts: attempts_before,
                outcome: Err(DeliveryError::Transient(format!("delivery actor unavailable: {e}"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_recognised() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[actix_rt::test]
    async fn targets_are_checked_against_the_allowlist() {
        assert!(check_target("http://127.0.0.1:9/x", &[])
            .await
            .unwrap_err()
            .is_permanent());
        assert!(check_target("http://localhost:9/x", &[])
            .await
            .unwrap_err()
            .is_permanent());
        assert!(check_target("http://[::1]:9/x", &[]).await.unwrap_err().is_permanent());
        assert!(check_target("http://169.254.169.254/latest/meta-data", &[])
            .await
            .is_err());
        assert!(check_target("ftp://example.com/x", &[]).await.is_err());
        assert!(check_target("http://127.0.0.1:9/x", &["127.0.0.1".into()])
            .await
            .is_ok());
        assert!(check_target("http://localhost:9/x", &["localhost".into()])
            .await
            .is_ok());
        assert!(check_target("http://93.184.215.14/x", &[]).await.is_ok());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = DeliveryPolicy {
            timeout: Duration::from_secs(1),
            max_attempts: 10,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            allowlist: vec![],
        };
        let within = |d: Duration, ms: u64| {
            let (lo, hi) = (
                Duration::from_millis(ms * 8 / 10),
                Duration::from_millis(ms * 12 / 10 + 1),
            );
            d >= lo && d <= hi
        };
        assert!(within(policy.backoff(1, "k"), 100));
        assert!(within(policy.backoff(2, "k"), 200));
        assert!(within(policy.backoff(3, "k"), 400));
        assert!(within(policy.backoff(9, "k"), 2000));
        assert!(within(policy.backoff(40, "k"), 2000));
    }
}
