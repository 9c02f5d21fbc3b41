//! `banter_config`: where to connect and how to trust the server.

use std::ffi::c_char;

use ::banter_client::Trust;

use crate::status::*;

/// Connection settings. Create with banter_config_new(), free with banter_config_free().
#[derive(Debug)]
pub struct banter_config {
    pub(crate) server: String,
    /// None until the embedder chooses: connecting without a choice is refused, so that a
    /// client that never set a pin or a CA cannot send a password to whoever answers.
    pub(crate) trust: Option<Trust>,
}

/// A new configuration: server `127.0.0.1:4433`, and no certificate trust yet: connecting
/// fails with BANTER_CERTIFICATE_UNTRUSTED until one of banter_config_set_pinned_fingerprint(),
/// banter_config_set_ca_file() or (explicitly, for development or trust on first use)
/// banter_config_accept_any_certificate() is called. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn banter_config_new() -> *mut banter_config {
    Box::into_raw(Box::new(banter_config { server: "127.0.0.1:4433".into(), trust: None }))
}

/// Frees a configuration. NULL is ignored.
///
/// # Safety
/// `config` is NULL or from banter_config_new(), not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_config_free(config: *mut banter_config) {
    if !config.is_null() {
        // SAFETY: from Box::into_raw in banter_config_new, freed once (caller's contract).
        drop(unsafe { Box::from_raw(config) });
    }
}

fn config_mut<'a>(config: *mut banter_config) -> Result<&'a mut banter_config, Failure> {
    // SAFETY: the exported setters require a live handle or NULL.
    unsafe { config.as_mut() }
        .ok_or_else(|| Failure::new(banter_status::BANTER_NULL_ARGUMENT, "NULL config"))
}

/// Sets the server: `HOST:PORT`, or a cluster's nodes as `HOST:PORT,HOST:PORT,...` (a name may
/// also resolve to several addresses). Clients spread over them and fail over to the next.
///
/// # Safety
/// `config` is a live handle; `server` points to `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_config_set_server(
    config: *mut banter_config,
    server: *const c_char,
    len: usize,
) -> banter_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let server = unsafe { str_arg(server, len) }?;
        if server.is_empty() {
            return Err(Failure::new(banter_status::BANTER_INVALID_ARGUMENT, "empty server"));
        }
        config_mut(config)?.server = server.to_owned();
        Ok(())
    })
}

/// Trusts only a certificate with this SHA-256 fingerprint (32 bytes): the pin banterd
/// prints at start.
///
/// # Safety
/// `config` is a live handle; `fingerprint` points to 32 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_config_set_pinned_fingerprint(
    config: *mut banter_config,
    fingerprint: *const u8,
) -> banter_status {
    guard(|| {
        if fingerprint.is_null() {
            return Err(Failure::new(banter_status::BANTER_NULL_ARGUMENT, "NULL fingerprint"));
        }
        let mut pin = [0u8; 32];
        // SAFETY: the caller guarantees 32 readable bytes.
        pin.copy_from_slice(unsafe { std::slice::from_raw_parts(fingerprint, 32) });
        config_mut(config)?.trust = Some(Trust::Pinned(pin));
        Ok(())
    })
}

/// Verifies the server's certificate against the CA certificates in a PEM file.
///
/// # Safety
/// `config` is a live handle; `path` points to `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_config_set_ca_file(
    config: *mut banter_config,
    path: *const c_char,
    len: usize,
) -> banter_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let path = unsafe { str_arg(path, len) }?;
        let roots = ::banter_client::tls::load_pem_certificates(std::path::Path::new(path))
            .map_err(|e| Failure::new(banter_status::BANTER_INVALID_ARGUMENT, e.to_string()))?;
        config_mut(config)?.trust = Some(Trust::CustomCa(roots));
        Ok(())
    })
}

/// Accepts any certificate (for local development only). The fingerprint seen is available
/// from banter_client_fingerprint() to pin it.
///
/// # Safety
/// `config` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_config_accept_any_certificate(
    config: *mut banter_config,
) -> banter_status {
    guard(|| {
        config_mut(config)?.trust = Some(Trust::AcceptAny);
        Ok(())
    })
}
