//! Credentials and the signatures the venues ask of private (account) connections.
//!
//! A secret is read from the environment variable a config names, never from a file, and never
//! printed: [`Secret`]'s `Debug` and `Display` say `<redacted>`, it has no `Serialize`, and
//! the only way to its text is [`Secret::expose`], called where a signature is computed. The
//! HMAC-SHA256 is `ring`'s (already in the tree under rustls), the base64 is the `base64`
//! crate's: no hand-written cryptography.
//!
//! What each venue signs (late 2026):
//! - Binance (REST and the WebSocket API): hex HMAC-SHA256 of the request's query string.
//! - Bybit v5 private WebSocket: `{"op":"auth","args":[key, expires, signature]}` where the
//!   signature is hex HMAC-SHA256 of `GET/realtime{expires}` (`expires` in Unix ms).
//! - OKX v5 `/ws/v5/private`: `op: login` with `sign` = base64 HMAC-SHA256 of
//!   `{timestamp}GET/users/self/verify` (`timestamp` in Unix seconds) and the passphrase.

use std::fmt;

use base64::Engine as _;
use ring::hmac;

/// A secret value: shown nowhere.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for computing a signature. Never log or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An account's API credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The API key (sent to the venue, but kept out of logs all the same).
    pub key: Secret,
    /// The signing secret.
    pub secret: Secret,
    /// OKX's passphrase.
    pub passphrase: Option<Secret>,
}

impl Credentials {
    /// Reads the credentials from the environment variables named (their values never appear
    /// in an error: only the variable's name does).
    pub fn from_env(
        key_env: &str,
        secret_env: &str,
        passphrase_env: Option<&str>,
    ) -> Result<Credentials, String> {
        let var = |name: &str| -> Result<Secret, String> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable {name} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable {name} is not valid UTF-8"))
                }
            }
        };
        Ok(Credentials {
            key: var(key_env)?,
            secret: var(secret_env)?,
            passphrase: passphrase_env.map(var).transpose()?,
        })
    }

    /// A hint of the key for messages: its first four characters.
    pub fn key_hint(&self) -> String {
        let shown: String = self.key.expose().chars().take(4).collect();
        format!("{shown}…")
    }
}

fn hmac_sha256(secret: &Secret, message: &str) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    hmac::sign(&key, message.as_bytes())
}

/// Lower-case hex of HMAC-SHA256(`secret`, `message`).
pub fn hmac_sha256_hex(secret: &Secret, message: &str) -> String {
    let tag = hmac_sha256(secret, message);
    let mut out = String::with_capacity(64);
    for b in tag.as_ref() {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Standard base64 of HMAC-SHA256(`secret`, `message`).
pub fn hmac_sha256_base64(secret: &Secret, message: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, message).as_ref())
}

/// The Ed25519 key pair in `secret`: PKCS#8, as PEM (`-----BEGIN PRIVATE KEY-----`) or as
/// base64 DER. The error never shows the key.
fn ed25519_key(secret: &Secret) -> Result<ring::signature::Ed25519KeyPair, String> {
    let text = secret.expose();
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.trim().chars())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the Ed25519 private key is neither PEM nor base64".to_string())?;
    ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
        .map_err(|_| "the Ed25519 private key is not a PKCS#8 Ed25519 key".to_string())
}

/// Checks that `secret` holds a usable Ed25519 private key.
pub fn check_ed25519(secret: &Secret) -> Result<(), String> {
    ed25519_key(secret).map(|_| ())
}

/// Standard base64 of the Ed25519 signature of `message` with the private key in `secret`.
pub fn ed25519_base64(secret: &Secret, message: &str) -> Result<String, String> {
    let key = ed25519_key(secret)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key.sign(message.as_bytes()).as_ref()))
}

/// Binance: the `signature` parameter of a signed request with this query string.
pub fn binance_signature(creds: &Credentials, query: &str) -> String {
    hmac_sha256_hex(&creds.secret, query)
}

/// Bybit v5: the signature of the private WebSocket's `auth` operation.
pub fn bybit_ws_signature(secret: &Secret, expires_ms: u64) -> String {
    hmac_sha256_hex(secret, &format!("GET/realtime{expires_ms}"))
}

/// Bybit v5: the `auth` operation (request `id`), valid until `expires_ms` (Unix ms).
pub fn bybit_auth_request(creds: &Credentials, id: u64, expires_ms: u64) -> String {
    format!(
        r#"{{"req_id":"{id}","op":"auth","args":["{}",{expires_ms},"{}"]}}"#,
        creds.key.expose(),
        bybit_ws_signature(&creds.secret, expires_ms)
    )
}

/// OKX v5: the `sign` of a `login` at `timestamp_s` (Unix seconds).
pub fn okx_login_signature(secret: &Secret, timestamp_s: u64) -> String {
    hmac_sha256_base64(secret, &format!("{timestamp_s}GET/users/self/verify"))
}

/// OKX v5: the `login` operation at `timestamp_s`. Needs the passphrase.
pub fn okx_login_request(creds: &Credentials, timestamp_s: u64) -> Result<String, String> {
    let passphrase = creds
        .passphrase
        .as_ref()
        .ok_or("OKX needs a passphrase (passphrase_env)")?;
    Ok(format!(
        r#"{{"op":"login","args":[{{"apiKey":"{}","passphrase":"{}","timestamp":"{timestamp_s}","sign":"{}"}}]}}"#,
        creds.key.expose(),
        passphrase.expose(),
        okx_login_signature(&creds.secret, timestamp_s)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_and_binance_documentation() {
        // RFC 4231, test case 2.
        let jefe = Secret::new("Jefe");
        assert_eq!(
            hmac_sha256_hex(&jefe, "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hmac_sha256_base64(&jefe, "what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
        // Binance's documented example of a signed request.
        let creds = Credentials {
            key: Secret::new("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"),
            secret: Secret::new("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"),
            passphrase: None,
        };
        assert_eq!(
            binance_signature(
                &creds,
                "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
            ),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn venue_requests_carry_the_signature_of_their_own_message() {
        let creds = Credentials {
            key: Secret::new("KEY"),
            secret: Secret::new("SECRET"),
            passphrase: Some(Secret::new("PASS")),
        };
        let bybit: serde_json::Value =
            serde_json::from_str(&bybit_auth_request(&creds, 7, 1_700_000_000_000)).unwrap();
        assert_eq!(bybit["op"], "auth");
        assert_eq!(bybit["args"][0], "KEY");
        assert_eq!(
            bybit["args"][2],
            hmac_sha256_hex(&creds.secret, "GET/realtime1700000000000")
        );
        let okx: serde_json::Value =
            serde_json::from_str(&okx_login_request(&creds, 1_700_000_000).unwrap()).unwrap();
        assert_eq!(okx["op"], "login");
        assert_eq!(okx["args"][0]["passphrase"], "PASS");
        assert_eq!(okx["args"][0]["timestamp"], "1700000000");
        assert_eq!(
            okx["args"][0]["sign"],
            hmac_sha256_base64(&creds.secret, "1700000000GET/users/self/verify")
        );
        let no_pass = Credentials {
            passphrase: None,
            ..creds
        };
        assert!(okx_login_request(&no_pass, 1)
            .unwrap_err()
            .contains("passphrase"));
    }

    #[test]
    fn secrets_never_print_and_errors_name_only_the_variable() {
        let creds = Credentials {
            key: Secret::new("AKIA-visible-key"),
            secret: Secret::new("s3cr3t-value"),
            passphrase: Some(Secret::new("pass-value")),
        };
        let shown = format!("{creds:?} {} {}", creds.secret, creds.key);
        for value in ["AKIA-visible-key", "s3cr3t-value", "pass-value"] {
            assert!(!shown.contains(value), "{shown}");
        }
        assert_eq!(creds.key_hint(), "AKIA…");
        let e = Credentials::from_env("WSFEED_TEST_NO_SUCH_KEY", "X", None).unwrap_err();
        assert_eq!(e, "environment variable WSFEED_TEST_NO_SUCH_KEY is not set");
    }
}
