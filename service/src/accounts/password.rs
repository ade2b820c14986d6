//! Argon2id with OWASP's parameters (m=19 MiB, t=2, p=1), always off the async runtime.
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use crate::{Error, Result};

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19 * 1024, 2, 1, None).expect("valid argon2 params"))
}

/// Verified against when the account does not exist, so both paths take the same time (same
/// algorithm and parameters as real hashes; a constant, so the first unknown login is not
/// slower either). Its password was random and thrown away.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$RVFqRSu3njlsYOhVAc2CTQ$1C0dVHgbom2a49fHiAERS7htju7lsiNAuala0hMMTOg";

pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        hasher()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(Error::internal)?
}

/// True when `password` matches `hash` (None: compares against a dummy hash and says no).
pub async fn verify(password: String, hash: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let h = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = hasher().verify_password(password.as_bytes(), h.as_str()).is_ok();
        ok && known
    })
    .await
    .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse".into(), Some(h.clone())).await.unwrap());
        assert!(!verify("wrong horse".into(), Some(h.clone())).await.unwrap());
        assert!(!verify("an unguessable dummy password".into(), None).await.unwrap());
        // The dummy costs what a real verification costs.
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(DUMMY_HASH), params(&h));
        assert!(argon2::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
