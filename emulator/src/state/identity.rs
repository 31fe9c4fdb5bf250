//! Identity: the emulator's token issuer, standing in for Google's.
//!
//! It signs OIDC ID tokens with RS256, as Google does, using one RSA key per data directory (kept
//! in memory without one), publishes the public key as a JWKS, mints opaque access tokens, and
//! verifies ID tokens for the ingress, remembering each verified token until it expires so that
//! a caller reusing its token costs one map look-up. Who may invoke a Cloud Run service is also
//! decided here, from the service's IAM policy.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use parking_lot::RwLock;
use serde_json::{Value, json};

use super::iam::Policy;
use super::{Record, StateError, StateResult, Store};

/// The `iss` of every ID token, as in tokens Google signs; Cloud Run accepts no other.
pub const ISSUER: &str = "https://accounts.google.com";
/// How long an ID or access token is valid, in seconds (Google's hour).
pub const TOKEN_LIFETIME_SECS: i64 = 3600;
/// Roles whose permissions include `run.routes.invoke`.
const INVOKER_ROLES: &[&str] = &[
    "roles/run.invoker",
    "roles/run.admin",
    "roles/owner",
    "roles/editor",
];
/// The member any valid ID token matches.
pub const ALL_AUTHENTICATED_USERS: &str = "allAuthenticatedUsers";
/// Verified tokens remembered at most; beyond it expired ones are dropped, then all.
const VERIFIED_CACHE_LIMIT: usize = 4096;

/// Why a token was not accepted as an ID token signed by the emulator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is not signed with RS256 by this emulator's key")]
    BadSignature,
    #[error("the token's issuer is not {ISSUER}")]
    WrongIssuer,
    #[error("the token expired")]
    Expired,
}

/// What a verified ID token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The `email` claim: who the caller is.
    pub email: String,
    /// The `aud` claim: whom the token is for.
    pub audience: String,
    /// The `exp` claim, in seconds since the epoch.
    pub expires_at: i64,
}

impl VerifiedToken {
    /// The IAM member naming the bearer (`serviceAccount:` or `user:`).
    pub fn member(&self) -> String {
        member_of(&self.email)
    }
}

/// An opaque OAuth access token, as the metadata server hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: i64,
}

/// The IAM member of an email: service accounts end in `gserviceaccount.com`, others are users.
pub fn member_of(email: &str) -> String {
    if email.ends_with(".gserviceaccount.com") {
        format!("serviceAccount:{email}")
    } else {
        format!("user:{email}")
    }
}

/// The stable numeric id Google gives an account (the `sub` and `azp` of its tokens).
pub fn account_id(email: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in email.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("1{:020}", hash)
}

/// The members a policy lets invoke a Cloud Run service (unconditional bindings of roles that
/// grant `run.routes.invoke`); `allUsers` among them makes the service public.
pub fn run_invokers(policy: &Policy) -> BTreeSet<String> {
    policy
        .bindings
        .iter()
        .filter(|b| b.condition.is_none() && INVOKER_ROLES.contains(&b.role.as_str()))
        .flat_map(|b| b.members.iter().cloned())
        .collect()
}

/// Signs and verifies the emulator's tokens; shared by the metadata server and the ingress.
pub struct TokenIssuer {
    key: RsaKeyPair,
    /// The key id (`kid`) in token headers and the JWKS.
    kid: String,
    public: PublicKeyComponents<Vec<u8>>,
    rng: SystemRandom,
    verified: RwLock<HashMap<String, Arc<VerifiedToken>>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    fn from_pkcs8(pkcs8: &[u8]) -> StateResult<Self> {
        let key = RsaKeyPair::from_pkcs8(pkcs8)
            .map_err(|e| StateError::Internal(format!("the stored signing key is invalid: {e}")))?;
        let public = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public.n);
        let kid: String = digest.as_ref()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            key,
            kid,
            public,
            rng: SystemRandom::new(),
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// The public key as a JSON Web Key Set, as Google serves at `/oauth2/v3/certs`.
    pub fn jwks(&self) -> Value {
        json!({
            "keys": [{
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": self.kid,
                "n": URL_SAFE_NO_PAD.encode(&self.public.n),
                "e": URL_SAFE_NO_PAD.encode(&self.public.e),
            }]
        })
    }

    /// An ID token for `email`, addressed to `audience`, valid for an hour; `extra` claims (an
    /// object) are added, as the metadata server's `format=full` adds the instance's.
    pub fn id_token(
        &self,
        email: &str,
        audience: &str,
        extra: Option<&Value>,
    ) -> StateResult<String> {
        let now = Utc::now().timestamp();
        let id = account_id(email);
        let mut claims = json!({
            "iss": ISSUER,
            "aud": audience,
            "azp": id,
            "sub": id,
            "email": email,
            "email_verified": true,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
        });
        if let (Some(Value::Object(extra)), Value::Object(claims)) = (extra, &mut claims) {
            for (k, v) in extra {
                claims.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let header = json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|e| StateError::Internal(format!("signing an ID token failed: {e}")))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// An opaque access token (`ya29.` like Google's); nothing the emulator serves checks it.
    pub fn access_token(&self) -> AccessToken {
        let random: [u8; 24] = rand::random();
        AccessToken {
            token: format!("ya29.emulator-{}", URL_SAFE_NO_PAD.encode(random)),
            expires_in: TOKEN_LIFETIME_SECS - 1,
        }
    }

    /// Verifies an ID token: RS256 by this emulator's key, Google's issuer, not expired. The
    /// caller checks the audience. A token verified once is remembered until it expires.
    pub fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let now = Utc::now().timestamp();
        if let Some(known) = self.verified.read().get(token) {
            return if known.expires_at > now {
                Ok(Arc::clone(known))
            } else {
                Err(TokenError::Expired)
            };
        }
        let verified = Arc::new(self.verify_signed(token, now)?);
        let mut cache = self.verified.write();
        if cache.len() >= VERIFIED_CACHE_LIMIT {
            cache.retain(|_, v| v.expires_at > now);
            if cache.len() >= VERIFIED_CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(token.to_string(), Arc::clone(&verified));
        Ok(verified)
    }

    fn verify_signed(&self, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| -> Result<Value, TokenError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)?;
            serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
        };
        let header = decode(header)?;
        if header["alg"] != "RS256" || header["kid"] != self.kid.as_str() {
            return Err(TokenError::BadSignature);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let signed = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
        self.public
            .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims = decode(claims)?;
        if claims["iss"] != ISSUER {
            return Err(TokenError::WrongIssuer);
        }
        let expires_at = claims["exp"].as_i64().ok_or(TokenError::Malformed)?;
        if expires_at <= now {
            return Err(TokenError::Expired);
        }
        let text = |name: &str| {
            claims[name]
                .as_str()
                .map(str::to_string)
                .ok_or(TokenError::Malformed)
        };
        Ok(VerifiedToken {
            email: text("email")?,
            audience: text("aud")?,
            expires_at,
        })
    }
}

impl Store {
    /// The emulator's token issuer; its key is made on first use and, with a data directory,
    /// kept there, so tokens stay valid across restarts.
    pub fn token_issuer(&self) -> StateResult<Arc<TokenIssuer>> {
        if let Some(issuer) = self.inner.issuer.get() {
            return Ok(Arc::clone(issuer));
        }
        let _making = self.inner.issuer_init.lock();
        if let Some(issuer) = self.inner.issuer.get() {
            return Ok(Arc::clone(issuer));
        }
        let stored = self.read(|data| data.signing_key.clone());
        let pkcs8 = match stored {
            Some(text) => STANDARD.decode(text).map_err(|e| {
                StateError::Internal(format!("the stored signing key is not base64: {e}"))
            })?,
            None => {
                let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| {
                    StateError::Internal(format!("generating the signing key failed: {e}"))
                })?;
                let der = key.as_der().map_err(|e| {
                    StateError::Internal(format!("encoding the signing key failed: {e}"))
                })?;
                let pkcs8 = der.as_ref().to_vec();
                let encoded = STANDARD.encode(&pkcs8);
                self.commit(|_| Ok(((), vec![Record::PutSigningKey { pkcs8: encoded }])))?;
                pkcs8
            }
        };
        let issuer = Arc::new(TokenIssuer::from_pkcs8(&pkcs8)?);
        let _ = self.inner.issuer.set(Arc::clone(&issuer));
        Ok(issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_and_a_tampered_one_does_not() {
        let store = Store::in_memory();
        let issuer = store.token_issuer().expect("issuer");
        let token = issuer
            .id_token(
                "caller@demo.iam.gserviceaccount.com",
                "http://127.0.0.1:1",
                None,
            )
            .expect("token");
        let verified = issuer.verify(&token).expect("valid");
        assert_eq!(verified.audience, "http://127.0.0.1:1");
        assert_eq!(
            verified.member(),
            "serviceAccount:caller@demo.iam.gserviceaccount.com"
        );
        assert!(issuer.verify(&token).is_ok(), "again, from the cache");

        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            json!({"iss": ISSUER, "aud": "x", "email": "evil@example.com", "exp": i64::MAX})
                .to_string(),
        );
        parts[1] = &forged;
        assert_eq!(
            issuer.verify(&parts.join(".")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(issuer.verify("ya29.opaque"), Err(TokenError::Malformed));

        let other = Store::in_memory().token_issuer().expect("other issuer");
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn the_key_survives_a_restart_of_a_persistent_store() {
        let dir = tempfile::tempdir().expect("dir");
        let token = {
            let store = Store::open(dir.path()).expect("open");
            let issuer = store.token_issuer().expect("issuer");
            issuer
                .id_token("alice@example.com", "aud", None)
                .expect("token")
        };
        let reopened = Store::open(dir.path()).expect("reopen");
        let verified = reopened
            .token_issuer()
            .expect("issuer")
            .verify(&token)
            .expect("still valid");
        assert_eq!(verified.member(), "user:alice@example.com");
    }

    #[test]
    fn invokers_come_from_unconditional_bindings_of_invoking_roles() {
        let policy = Policy {
            bindings: vec![
                super::super::iam::Binding {
                    role: "roles/run.invoker".into(),
                    members: vec!["serviceAccount:a@p.iam.gserviceaccount.com".into()],
                    condition: None,
                },
                super::super::iam::Binding {
                    role: "roles/run.viewer".into(),
                    members: vec!["user:b@example.com".into()],
                    condition: None,
                },
            ],
            ..Policy::default()
        };
        let invokers = run_invokers(&policy);
        assert!(invokers.contains("serviceAccount:a@p.iam.gserviceaccount.com"));
        assert!(!invokers.contains("user:b@example.com"));
    }
}
