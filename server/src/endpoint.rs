//! The QUIC endpoint: rustls with the ring provider and TLS 1.3 only, ALPN `banter/1`, and
//! every transport limit set on purpose (protocol-anchors R20, reliability §3.5). quinn's
//! default connection receive window is unbounded; here every per-connection buffer has a cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{IdleTimeout, TransportConfig, VarInt};

use crate::config::Config;
use crate::identity::Identity;

/// Binds the server's UDP socket with `buffer_bytes` of kernel buffer each way (as much as
/// the kernel grants) and starts the endpoint on it.
///
/// The stateless reset key comes from the identity's signing key and the bound address, so
/// it outlives the process: after a crash (kill -9), the node restarted on that address
/// answers the dead connections' packets with a stateless reset that their clients
/// recognise, and they reconnect at once instead of waiting out the idle timeout. Nodes on
/// other addresses have other keys, so none of them can be asked for a valid reset of a
/// connection it does not hold (RFC 9000 §21.11).
pub(crate) fn bind(
    addr: SocketAddr,
    buffer_bytes: usize,
    server: quinn::ServerConfig,
    identity: &Identity,
) -> std::io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer than asked is still a working server.
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    let _ = socket.set_send_buffer_size(buffer_bytes);
    socket.bind(&addr.into())?;
    let bound = socket.local_addr()?.as_socket().unwrap_or(addr).to_string();
    tracing::debug!(
        receive = socket.recv_buffer_size().unwrap_or(0),
        send = socket.send_buffer_size().unwrap_or(0),
        "UDP socket buffers"
    );
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for the endpoint"))?;
    let mut endpoint = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &derived_secret(identity, "banter/1 stateless reset key", &bound),
    )));
    // Connection ids carry a check keyed the same way, so that a successor recognises its
    // predecessor's ids as valid and resets them rather than dropping the packets.
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&derived_secret(identity, "banter/1 connection id key", &bound)[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    endpoint.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    quinn::Endpoint::new(endpoint, Some(server), socket.into(), runtime)
}

/// HMAC-SHA256(signing key, label ‖ NUL ‖ address): a secret of its own for each use and
/// address, tied to the identity without exposing the signing key.
fn derived_secret(identity: &Identity, label: &str, address: &str) -> [u8; 32] {
    let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &identity.signing_key.to_bytes());
    let input = format!("{label}\0{address}");
    let mut derived = [0u8; 32];
    derived.copy_from_slice(ring::hmac::sign(&secret, input.as_bytes()).as_ref());
    derived
}

/// Builds the quinn server configuration.
pub(crate) fn server_config(
    config: &Config,
    identity: &Identity,
) -> anyhow::Result<quinn::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.cert_chain.clone(), identity.cert_key.clone_key())?;
    tls.alpn_protocols = vec![banter_protocol::ALPN.to_vec()];
    // TLS secrets go to $SSLKEYLOGFILE when it is set (for Wireshark), never otherwise.
    tls.key_log = Arc::new(rustls::KeyLogFile::new());
    // spec §2.4: no 0-RTT in v1.
    tls.max_early_data_size = 0;
    // Session tickets (spec §2.4): a reconnecting client resumes its TLS session, skipping
    // the certificate and its signature (a reconnect storm costs the server less). Stateless:
    // sealed with keys that live in this process and rotate every 6 hours, so nothing is
    // stored per client; after a restart, or on another node, clients do a full handshake.
    tls.ticketer = rustls::crypto::ring::Ticketer::new()?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;

    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport(config)));
    // Clients that change networks keep their connection (and their call).
    server.migration(true);
    server.max_incoming(config.max_connections.max(1) as usize);
    server.incoming_buffer_size(64 * 1024);
    server.incoming_buffer_size_total(16 * 1024 * 1024);
    Ok(server)
}

/// Transport limits, shared by server and (through `banter-client`) client.
pub(crate) fn transport(config: &Config) -> TransportConfig {
    let mut transport = TransportConfig::default();
    // A few dozen requests in flight; one control, events, ephemeral and voice-tunnel stream
    // each way, plus room for GREASE.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(32));
    transport.max_concurrent_uni_streams(VarInt::from_u32(8));
    transport.stream_receive_window(VarInt::from_u32(256 * 1024));
    transport.receive_window(VarInt::from_u32(1024 * 1024));
    transport.send_window(2 * 1024 * 1024);
    // About 200 ms of voice each way; voice is loss-tolerant, so older datagrams are dropped.
    transport.datagram_receive_buffer_size(Some(32 * 1024));
    transport.datagram_send_buffer_size(32 * 1024);
    // With a key log someone reads the wire: send each packet alone, since a capture on the
    // sending host sees a segmentation-offload batch as one oversized datagram that
    // Wireshark cannot split.
    transport.enable_segmentation_offload(std::env::var_os("SSLKEYLOGFILE").is_none());
    transport.keep_alive_interval(Some(Duration::from_millis(config.keep_alive_ms)));
    transport.max_idle_timeout(Some(
        IdleTimeout::try_from(Duration::from_millis(config.idle_timeout_ms))
            .unwrap_or_else(|_| IdleTimeout::from(VarInt::from_u32(30_000))),
    ));
    transport
}
