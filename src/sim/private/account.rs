//! Simulated accounts ([`SimAccount`]) and the signature checks of the
//! venues' private endpoints, done with `ring::hmac` and `base64` directly
//! (never with the engine's `auth.rs`), so that the simulator checks the
//! engine's signing independently.

use base64::Engine as _;
use ring::hmac;

/// One simulated account: its name (how tests refer to it) and its API
/// credentials. Every private request is checked against these: an unknown
/// `api_key` gets the venue's invalid-key error, a signature not made with
/// `secret` the venue's signature error, and on OKX a `passphrase` other
/// than this one the wrong-passphrase error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAccount {
    /// Name in the ground truth (`Sim::account_sent`) and the faults
    /// (`Sim::revoke_account`, `Sim::expire_listen_key`), e.g. `"alice"`.
    pub name: String,
    /// The API key the client presents (Binance `X-MBX-APIKEY` / `apiKey`,
    /// Bybit `args[0]`, OKX `apiKey`).
    pub api_key: String,
    /// The secret the client signs with (HMAC-SHA256).
    pub secret: String,
    /// OKX's passphrase; `None` for an account that never logs in to OKX
    /// (an OKX login naming it then fails with the wrong-passphrase error).
    pub passphrase: Option<String>,
}

impl SimAccount {
    /// An account named `name` with key `<name>-key`, secret `<name>-secret`
    /// and passphrase `<name>-pass`.
    pub fn named(name: &str) -> SimAccount {
        SimAccount {
            name: name.to_string(),
            api_key: format!("{name}-key"),
            secret: format!("{name}-secret"),
            passphrase: Some(format!("{name}-pass")),
        }
    }
}

/// HMAC-SHA256 of `message` with `secret`.
#[cfg(test)]
fn mac(secret: &str, message: &str) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::sign(&key, message.as_bytes())
}

/// Lowercase hex HMAC-SHA256 (Binance `signature`, Bybit auth signature):
/// how a client signs (tests).
#[cfg(test)]
pub(crate) fn hex_sign(secret: &str, message: &str) -> String {
    mac(secret, message)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Base64 HMAC-SHA256 (OKX `sign`): how a client signs (tests).
#[cfg(test)]
pub(crate) fn base64_sign(secret: &str, message: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, message).as_ref())
}

/// Whether `signature` is the hex HMAC-SHA256 of `message` (case-insensitive,
/// as Binance and Bybit accept).
pub(crate) fn hex_ok(secret: &str, message: &str, signature: &str) -> bool {
    let Some(bytes) = decode_hex(signature) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, message.as_bytes(), &bytes).is_ok()
}

/// Whether `signature` is the base64 HMAC-SHA256 of `message`.
pub(crate) fn base64_ok(secret: &str, message: &str, signature: &str) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, message.as_bytes(), &bytes).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Binance's signed payload: the parameters other than `signature`, sorted by
/// name, as `k=v&k=v` (WebSocket API, "SIGNED request security": "sort all
/// other parameters alphabetically by name"). REST signs the query string as
/// sent instead (see `rest.rs`).
pub(crate) fn binance_payload(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> =
        params.iter().filter(|(k, _)| k != "signature").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_reject_tampering() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex_sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = hex_sign("s", "GET/realtime123");
        assert!(hex_ok("s", "GET/realtime123", &sig));
        assert!(hex_ok("s", "GET/realtime123", &sig.to_uppercase()));
        assert!(!hex_ok("s", "GET/realtime124", &sig));
        assert!(!hex_ok("t", "GET/realtime123", &sig));
        assert!(!hex_ok("s", "GET/realtime123", "zz"));
        let b = base64_sign("s", "1GET/users/self/verify");
        assert!(base64_ok("s", "1GET/users/self/verify", &b));
        assert!(!base64_ok("s", "2GET/users/self/verify", &b));
        assert!(!base64_ok("s", "1GET/users/self/verify", "%%"));
    }

    #[test]
    fn binance_payload_sorts_and_drops_the_signature() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            binance_payload(&[p("timestamp", "5"), p("signature", "x"), p("apiKey", "k")]),
            "apiKey=k&timestamp=5"
        );
    }
}
