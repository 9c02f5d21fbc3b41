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
        "a certificate from another CA was accepted"
    );

    let pinned =
        Connection::connect(addr, options(Trust::Pinned(fingerprint(&leaf_der)), "any")).await;
    assert!(pinned.is_ok(), "{:?}", pinned.err());
    let mismatch = Connection::connect(addr, options(Trust::Pinned([0; 32]), "any")).await;
    let error = mismatch.expect_err("a wrong pin is refused");
    assert!(matches!(error, ConnectError::Untrusted(_)), "{error}");
    assert!(error.to_string().contains("pinned fingerprint"), "{error}");
}
