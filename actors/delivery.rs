//! The delivery actor pool: sends email, SMS and webhook requests over HTTP (awc).
//!
//! What one delivery does (attempts, retries, signing, the outbound guard) is
//! [`crate::outbound::send`]; this file only keeps the actors that run it. Each member runs
//! many requests at once (bounded by request slots shared by the pool, taken per attempt
//! once its rate slot has come: [`Pace`]), so a slow or rate-limited endpoint holds up its
//! own requests, never the pool.

use crate::metrics::{Mailbox, Metrics};
use crate::outbound::guard::{self, Guard};
use crate::outbound::pace::Pace;
use crate::outbound::send::Deliver;
use crate::outbound::send::{deliver, DeliveryError, DeliveryPolicy, DeliveryReport, Jittered};
use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One member of the pool: an awc client (not `Send`, so one per arbiter thread).
pub struct Delivery {
    policy: Arc<DeliveryPolicy>,
    pace: Arc<Pace>,
    client: Option<awc::Client>,
    /// For requests to destinations the configuration names ([`DeliveryPolicy::trusts`]).
    trusted: Option<awc::Client>,
    mailbox: Mailbox,
}

impl Actor for Delivery {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.client = Some(guard::client(
            self.policy.timeout,
            Guard::new(self.policy.allowlist.clone(), guard::system_lookup()),
        ));
        self.trusted = Some(guard::client(
            self.policy.timeout,
            Guard::trusting(guard::system_lookup()),
        ));
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
        let client = if self.policy.trusts(&msg.request) {
            self.trusted
                .clone()
                .unwrap_or_else(|| guard::client(self.policy.timeout, Guard::trusting(guard::system_lookup())))
        } else {
            self.client.clone().unwrap_or_else(|| {
                guard::client(
                    self.policy.timeout,
                    Guard::new(self.policy.allowlist.clone(), guard::system_lookup()),
                )
            })
        };
        let (policy, pace) = (Arc::clone(&self.policy), Arc::clone(&self.pace));
        Box::pin(async move { deliver(&client, &policy, &Jittered::for_key(&msg.idempotency_key), &pace, &msg).await })
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
    /// Starts `size` members sharing `pace` (the request slots and the rate limits).
    pub fn start(size: usize, pace: Pace, policy: DeliveryPolicy) -> Self {
        let policy = Arc::new(policy);
        let pace = Arc::new(pace);
        let mailbox = Metrics::global().mailbox("delivery");
        mailbox.set_capacity(DELIVERY_MAILBOX);
        let members: Vec<Addr<Delivery>> = (0..size.max(1))
            .map(|_| {
                let (policy, pace, mailbox) = (Arc::clone(&policy), Arc::clone(&pace), mailbox.clone());
                Delivery::start_in_arbiter(&Arbiter::new().handle(), move |ctx| {
                    ctx.set_mailbox_capacity(DELIVERY_MAILBOX);
                    Delivery {
                        policy,
                        pace,
                        client: None,
                        trusted: None,
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
                response: None,
            },
        }
    }
}
