//! A TLS endpoint for start-up tests: a throw-away certificate authority, a server
//! certificate for 127.0.0.1 signed by it, and a listener that takes TLS handshakes and
//! then closes the connection. It speaks no Kafka: tests use it only where the TLS
//! handshake itself is what is tested (a client that does not trust the server must
//! fail before any Kafka request), never as a broker.
#![allow(dead_code)]

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Name, X509NameBuilder, X509};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A certificate authority that lives for one test.
pub struct Ca {
    key: PKey<Private>,
    cert: X509,
}

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("ec key")).expect("pkey")
}

fn name(common_name: &str) -> X509Name {
    let mut name = X509NameBuilder::new().expect("name builder");
    name.append_entry_by_text("CN", common_name).expect("CN");
    name.build()
}

/// A certificate builder valid from now for a day, with a random serial.
fn builder(subject: &X509Name, key: &PKey<Private>) -> openssl::x509::X509Builder {
    let mut builder = X509::builder().expect("x509 builder");
    builder.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bignum");
    serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("serial");
    builder
        .set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    builder.set_subject_name(subject).expect("subject");
    builder.set_pubkey(key).expect("public key");
    builder
        .set_not_before(&Asn1Time::days_from_now(0).expect("now"))
        .expect("not before");
    builder
        .set_not_after(&Asn1Time::days_from_now(1).expect("tomorrow"))
        .expect("not after");
    builder
}

impl Ca {
    /// A self-signed CA named `common_name`.
    pub fn new(common_name: &str) -> Ca {
        let key = new_key();
        let subject = name(common_name);
        let mut builder = builder(&subject, &key);
        builder.set_issuer_name(&subject).expect("issuer");
        builder
            .append_extension(BasicConstraints::new().critical().ca().build().expect("ca"))
            .expect("basic constraints");
        builder
            .append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .expect("key usage"),
            )
            .expect("key usage");
        builder.sign(&key, MessageDigest::sha256()).expect("self-sign");
        Ca {
            key,
            cert: builder.build(),
        }
    }

    /// Writes the CA certificate as PEM, for a client's `ssl.ca.location`.
    pub fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.cert.to_pem().expect("pem")).expect("writing the CA certificate");
    }

    /// A server certificate for 127.0.0.1 and localhost, signed by this CA.
    fn issue_server(&self) -> (PKey<Private>, X509) {
        let key = new_key();
        let mut builder = builder(&name("127.0.0.1"), &key);
        builder.set_issuer_name(self.cert.subject_name()).expect("issuer");
        let san = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .dns("localhost")
            .build(&builder.x509v3_context(Some(&self.cert), None))
            .expect("subject alternative name");
        builder.append_extension(san).expect("san");
        builder.sign(&self.key, MessageDigest::sha256()).expect("sign");
        (key, builder.build())
    }
}

/// A TLS listener on 127.0.0.1 with a certificate from `ca`; stops when dropped.
pub struct Listener {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub fn start(ca: &Ca) -> Listener {
        let (key, cert) = ca.issue_server();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        acceptor.set_private_key(&key).expect("key");
        acceptor.set_certificate(&cert).expect("certificate");
        acceptor.check_private_key().expect("key matches certificate");
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (connections, stop) = (Arc::clone(&connections), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections.fetch_add(1, Ordering::Relaxed);
                            let acceptor = Arc::clone(&acceptor);
                            std::thread::spawn(move || {
                                // The handshake's outcome is the client's to report;
                                // the timeout only bounds a client that goes silent.
                                let _ = stream.set_nonblocking(false);
                                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                                drop(acceptor.accept(stream));
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Listener {
            addr,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, as a client's bootstrap servers.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
