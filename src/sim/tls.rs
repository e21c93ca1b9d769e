//! TLS material for the simulator: a throw-away CA generated at start and a
//! server certificate for `localhost` / `127.0.0.1` (and the bind IP) signed by it.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Generated CA plus the server configuration that presents a leaf signed by it.
#[derive(Debug)]
pub(crate) struct TlsMaterial {
    /// PEM of the CA certificate (what clients must trust).
    pub ca_pem: String,
    /// rustls server configuration (ring provider, no client auth).
    pub server_config: Arc<ServerConfig>,
}

fn other<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> io::Error {
    move |e| io::Error::other(format!("sim tls: {what}: {e}"))
}

/// Generates a fresh CA and server certificate (also valid for `bind` when it is
/// a specific address) and builds the server config.
pub(crate) fn generate(bind: IpAddr) -> io::Result<TlsMaterial> {
    let ca_key = KeyPair::generate().map_err(other("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(other("CA params"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wsfeed sim CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "wsfeed");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(other("CA cert"))?;

    let srv_key = KeyPair::generate().map_err(other("server key"))?;
    let mut srv_params =
        CertificateParams::new(vec!["localhost".to_string()]).map_err(other("server params"))?;
    srv_params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    if !bind.is_unspecified() && bind != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        srv_params.subject_alt_names.push(SanType::IpAddress(bind));
    }
    srv_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    srv_params.is_ca = IsCa::NoCa;
    srv_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    srv_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv_cert = srv_params
        .signed_by(&srv_key, &ca)
        .map_err(other("server cert"))?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(srv_key.serialize_der()));
    let chain = vec![srv_cert.der().clone(), ca.der().clone()];
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other("protocol versions"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(other("server config"))?;

    Ok(TlsMaterial {
        ca_pem: ca.pem(),
        server_config: Arc::new(server_config),
    })
}
