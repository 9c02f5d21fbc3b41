//! Certificate trust over real QUIC (spec §2.2): a pinned fingerprint, and a CA-issued
//! certificate checked against a custom CA.

use banter_client::tls::fingerprint;
use banter_client::{ConnectError, Connection, Options, Trust};
use banter_tests::TestServer;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

fn options(trust: Trust, name: &str) -> Options {
    Options::new(trust, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_issued_certificate_is_checked_against_the_custom_ca_and_pins_are_enforced() {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_der = ca.der().to_vec();
    let leaf_der = leaf.der().to_vec();
    let server = TestServer::start_with(|config| {
        std::fs::write(config.data_dir.join("cert.pem"), leaf.pem() + &ca.pem()).unwrap();
        std::fs::write(config.data_dir.join("cert-key.pem"), leaf_key.serialize_pem()).unwrap();
    })
    .await;
    let addr = server.addr();

    let ok = Connection::connect(addr, options(Trust::CustomCa(vec![ca_der.clone()]), "localhost"))
        .await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    let wrong_name =
        Connection::connect(addr, options(Trust::CustomCa(vec![ca_der]), "chat.example.org")).await;
    assert!(
        matches!(wrong_name, Err(ConnectError::Untrusted(_))),
        "a certificate for another name was accepted"
    );
    let mut other_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other_ca =
        CertifiedIssuer::self_signed(other_params, KeyPair::generate().unwrap()).unwrap();
    let wrong_ca = Connection::connect(
        addr,
        options(Trust::CustomCa(vec![other_ca.der().to_vec()]), "localhost"),
    )
    .await;
    assert!(
        matches!(wrong_ca, Err(ConnectError::Untrusted(_))),
        "a certificate from another CA was accepted: {:?}",
        wrong_ca.err()
    );

    let pinned =
        Connection::connect(addr, options(Trust::Pinned(fingerprint(&leaf_der)), "any")).await;
    assert!(pinned.is_ok(), "{:?}", pinned.err());
    let mismatch = Connection::connect(addr, options(Trust::Pinned([0; 32]), "any")).await;
    let error = mismatch.expect_err("a wrong pin is refused");
    assert!(matches!(error, ConnectError::Untrusted(_)), "{error}");
    assert!(error.to_string().contains("pinned fingerprint"), "{error}");
}

/// A reconnect resumes its TLS session (no certificate sent or checked) with the tickets its
/// options keep, and reports the same fingerprint; a ticket taken under one trust never
/// resumes a connection under another (resumption skips the certificate check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resumes_its_tls_session_but_never_under_another_trust() {
    let server = TestServer::start().await;
    let addr = server.addr();
    let any = options(Trust::AcceptAny, "localhost");
    let (first, _events) = Connection::connect(addr, any.clone()).await.unwrap();
    let pin = first.fingerprint().expect("a full handshake sees the certificate");
    // One request answered: the server has taken the handshake's end and sent its tickets
    // before the answer.
    first.register("resumer", "resumer password").await.unwrap();
    assert_eq!(any.tls_sessions.certificates_checked(), 1);

    let (second, _events) = Connection::connect(addr, any.clone()).await.unwrap();
    assert_eq!(any.tls_sessions.certificates_checked(), 1, "the reconnect checked a certificate");
    assert_eq!(second.fingerprint(), Some(pin), "a resumed session names its certificate");

    // Same tickets, a pin the server does not match: no resumption around the check.
    let wrong_pin = Options { trust: Trust::Pinned([0; 32]), ..any.clone() };
    let error = Connection::connect(addr, wrong_pin).await.expect_err("a wrong pin is refused");
    assert!(matches!(error, ConnectError::Untrusted(_)), "{error}");
    assert!(error.to_string().contains("pinned fingerprint"), "{error}");

    let right_pin = Options { trust: Trust::Pinned(pin), ..any.clone() };
    let (third, _events) = Connection::connect(addr, right_pin.clone()).await.unwrap();
    assert_eq!(
        right_pin.tls_sessions.certificates_checked(),
        3,
        "a new trust starts with a full handshake (the wrong pin's and this one)"
    );
    third.register("resumer2", "resumer password").await.unwrap();
    // The CLI's usual path: the pinned trust resumes its own sessions.
    let (fourth, _events) = Connection::connect(addr, right_pin.clone()).await.unwrap();
    assert_eq!(right_pin.tls_sessions.certificates_checked(), 3, "the pinned reconnect resumed");
    assert_eq!(fourth.fingerprint(), Some(pin));
}
