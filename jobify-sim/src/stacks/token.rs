//! Job acquisition tokens: `bkjat_` and a three-part JWT-shaped string whose payload's `sub`
//! is the job's uuid. The signature is random bytes; the simulator "verifies" a token by
//! finding it among those it issued, as Buildkite verifies its signature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use rand::RngCore as _;
use serde_json::json;
use uuid::Uuid;

/// The prefix every job acquisition token carries.
pub(crate) const PREFIX: &str = "bkjat_";

/// A fresh token for `job`, issued by stack `stack`, valid until `expires_at`.
pub(crate) fn mint(job: Uuid, stack: &str, issued_at: Timestamp, expires_at: Timestamp) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let payload = json!({
        "sub": job,
        "iss": "buildkite",
        "stack_key": stack,
        "iat": issued_at.as_second(),
        "exp": expires_at.as_second(),
        "jti": Uuid::new_v4(),
    });
    let mut signature = [0u8; 32];
    rand::rng().fill_bytes(&mut signature);
    format!(
        "{PREFIX}{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;

    #[test]
    fn the_payload_names_the_job() {
        let job = Uuid::new_v4();
        let now = Timestamp::now();
        let token = mint(job, "stack", now, now);
        let parts: Vec<&str> = token.strip_prefix(PREFIX).unwrap().split('.').collect();
        assert_eq!(parts.len(), 3);
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["sub"], job.to_string());
    }
}
