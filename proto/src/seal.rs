//! Sealing reports to the console: X25519 key agreement, HKDF-SHA256 and
//! ChaCha20-Poly1305, so the hops a report crosses on its way home (relays,
//! other agents) route it by its header but cannot read what it says.
//!
//! The console makes one key pair per action and puts the public half in
//! the signed `reply_to`; only the console keeps the secret. An agent makes
//! one ephemeral key per action it answers, agrees a key with the console's
//! and seals each report of that action with it under a fresh nonce. The
//! associated data binds a sealed report to its action and agent, so a
//! sealed statement moved into another report does not open.
//!
//! ```text
//! agent: e = random, E = e·G           console: s (secret), S = s·G (in reply_to)
//!        k = HKDF(salt = E ‖ S, ikm = e·S, info = SEAL_INFO)
//!        sealed = (E, n, ChaCha20-Poly1305(k, n, plaintext, aad = domain ‖ action ‖ agent))
//! ```

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::Zeroizing;

/// HKDF `info`: what the derived key is for, and the format's version.
const SEAL_INFO: &[u8] = b"mig-mesh/report-seal/v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("not a seal key: {0}")]
    BadKey(String),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error("the sealed report does not open with this console's key")]
    DoesNotOpen,
    #[error("the sealed report names a weak ephemeral key")]
    WeakKey,
    #[error("too large to seal")]
    TooLarge,
}

/// The console's secret for one action (wiped when dropped), with its
/// public half, which every report opened needs: derived once, not per
/// report (a scalar multiplication, about a twentieth of the console's
/// CPU while results came home in the simulator).
pub struct SealSecret {
    secret: StaticSecret,
    public: SealPublic,
}

impl SealSecret {
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|error| SealError::Random(error.to_string()))?;
        Ok(Self::from_bytes(*bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = SealPublic(X25519Public::from(&secret).to_bytes());
        Self { secret, public }
    }

    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    pub fn public(&self) -> SealPublic {
        self.public
    }

    /// Opens `sealed`, which must have been sealed for `context`.
    pub fn open(&self, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        let shared = self
            .secret
            .diffie_hellman(&X25519Public::from(sealed.ephemeral));
        // An ephemeral key of small order makes the shared secret known to
        // anyone; no honest agent sends one.
        if !shared.was_contributory() {
            return Err(SealError::WeakKey);
        }
        let cipher = cipher(shared.as_bytes(), &sealed.ephemeral, &self.public.0);
        cipher
            .decrypt(
                &nonce(sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::DoesNotOpen)
    }
}

/// The key results are sealed to, as it travels in `reply_to` (hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPublic([u8; 32]);

impl SealPublic {
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let bytes = hex::decode(text).map_err(|error| SealError::BadKey(error.to_string()))?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| SealError::BadKey(format!("{} bytes, not 32", bytes.len())))?;
        Ok(Self(bytes))
    }
}

impl std::fmt::Display for SealPublic {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&hex::encode(self.0))
    }
}

/// A sealed statement: the agent's ephemeral public key, the nonce, and
/// the ciphertext with its tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub ephemeral: [u8; 32],
    pub nonce: u64,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// An agent's sealing key for one action: agreed once, then used for each
/// of the action's reports under the next nonce, so an agent pays for one
/// key agreement per action rather than one per report.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    ephemeral: [u8; 32],
    next_nonce: std::sync::atomic::AtomicU64,
}

impl Sealer {
    pub fn new(to: &SealPublic) -> Result<Self, SealError> {
        let secret = SealSecret::generate()?;
        let ephemeral = secret.public().0;
        let shared = secret.secret.diffie_hellman(&X25519Public::from(to.0));
        if !shared.was_contributory() {
            return Err(SealError::WeakKey);
        }
        Ok(Self {
            cipher: cipher(shared.as_bytes(), &ephemeral, &to.0),
            ephemeral,
            next_nonce: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Seals `plaintext` for `context`. Each call takes a nonce of its own.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Sealed, SealError> {
        let nonce_value = self
            .next_nonce
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce(nonce_value),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // Only a plaintext past ChaCha20's 256 GiB limit fails.
            .map_err(|_| SealError::TooLarge)?;
        Ok(Sealed {
            ephemeral: self.ephemeral,
            nonce: nonce_value,
            ciphertext,
        })
    }
}

fn cipher(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> ChaCha20Poly1305 {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's output limit.
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared).expand(SEAL_INFO, key.as_mut());
    ChaCha20Poly1305::new(Key::from_slice(key.as_ref()))
}

fn nonce(value: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&value.to_le_bytes());
    *Nonce::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_statement_opens_only_with_the_consoles_key_and_its_own_context() {
        let console = SealSecret::generate().unwrap();
        let public = SealPublic::parse(&console.public().to_string()).unwrap();
        let sealer = Sealer::new(&public).unwrap();
        let first = sealer.seal(b"action a, agent 1", b"found nothing").unwrap();
        let second = sealer.seal(b"action a, agent 1", b"found nothing").unwrap();
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_eq!(
            console.open(b"action a, agent 1", &first).unwrap(),
            b"found nothing"
        );
        assert_eq!(
            console.open(b"action a, agent 1", &second).unwrap(),
            b"found nothing"
        );

        let stranger = SealSecret::generate().unwrap();
        assert_eq!(
            stranger.open(b"action a, agent 1", &first),
            Err(SealError::DoesNotOpen)
        );
        assert_eq!(
            console.open(b"action a, agent 2", &first),
            Err(SealError::DoesNotOpen)
        );
        let mut tampered = first.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(
            console.open(b"action a, agent 1", &tampered),
            Err(SealError::DoesNotOpen)
        );
        let mut renumbered = first;
        renumbered.nonce = 7;
        assert_eq!(
            console.open(b"action a, agent 1", &renumbered),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn weak_keys_and_bad_text_are_refused() {
        let console = SealSecret::generate().unwrap();
        let weak = Sealed {
            ephemeral: [0; 32],
            nonce: 0,
            ciphertext: vec![0; 16],
        };
        assert_eq!(console.open(b"", &weak), Err(SealError::WeakKey));
        assert!(matches!(
            Sealer::new(&SealPublic([0; 32])),
            Err(SealError::WeakKey)
        ));
        assert!(SealPublic::parse("abcd").is_err());
        assert!(SealPublic::parse(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn the_public_half_kept_with_a_secret_is_its_x25519_public_key() {
        // RFC 7748, section 6.1: Alice's key pair.
        let secret: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            SealSecret::from_bytes(secret).public().to_string(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn a_secret_survives_a_round_trip_through_its_bytes() {
        let console = SealSecret::generate().unwrap();
        let again = SealSecret::from_bytes(*console.to_bytes());
        assert_eq!(again.public(), console.public());
        let sealed = Sealer::new(&console.public())
            .unwrap()
            .seal(b"c", b"p")
            .unwrap();
        assert_eq!(again.open(b"c", &sealed).unwrap(), b"p");
    }
}
