//! Investigator secret key files: an ed25519 seed, encrypted at rest with a
//! passphrase (Argon2id, then XChaCha20-Poly1305), or stored plain for
//! tests and demos. Written 0600; refused when others can read them.
//!
//! The format is TOML, so a person can see what a file is:
//!
//! ```toml
//! format = "mig-secret-key-v1"
//! public = "mig-ed25519 <hex> Alice <alice@example.org>"
//! fingerprint = "3097E2DE..."
//! [sealed]
//! kdf = "argon2id"
//! memory_kib = 65536
//! iterations = 3
//! parallelism = 1
//! salt = "<hex>"
//! nonce = "<hex>"
//! ciphertext = "<hex>"
//! ```
//!
//! The public line is bound to the ciphertext as associated data, so it
//! cannot be swapped for another key's.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use mig_proto::{Fingerprint, PublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const FORMAT: &str = "mig-secret-key-v1";

/// An investigator's signing key. Zeroized on drop; never printed.
pub struct SecretKey {
    signing: SigningKey,
    comment: String,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SecretKey(..)")
    }
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate(comment: &str) -> Result<Self, KeyFileError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|error| KeyFileError::Random(error.to_string()))?;
        Ok(Self::from_seed(&seed, comment))
    }

    pub fn from_seed(seed: &[u8; 32], comment: &str) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
            comment: comment.to_owned(),
        }
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.signing.verifying_key(),
            comment: self.comment.clone(),
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_key(&self.signing.verifying_key())
    }
}

/// Argon2id cost. The defaults follow OWASP's first recommended setting;
/// tests may use cheaper ones, which are recorded in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfCost {
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// Refuse files that would make decryption cost more than this, so a
/// crafted key file cannot exhaust memory.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error(
        "refusing to load secret key {path}: others can read it (mode {mode:o}); run: chmod 600 {path}"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path} is not a mig secret key file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("wrong passphrase for {path}, or the file was altered")]
    WrongPassphrase { path: PathBuf },
    #[error(
        "{path} is encrypted: give --passphrase-file, set MIG_KEY_PASSPHRASE, or run on a terminal"
    )]
    PassphraseNeeded { path: PathBuf },
    #[error("the passphrase is empty; use --no-passphrase for an unencrypted key")]
    EmptyPassphrase,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContents {
    format: String,
    public: String,
    fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plain: Option<PlainSeed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<SealedSeed>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainSeed {
    seed: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedSeed {
    kdf: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    cost: KdfCost,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let params = argon2::Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(32))
        .map_err(|error| KeyFileError::Kdf(error.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|error| KeyFileError::Kdf(error.to_string()))?;
    Ok(key)
}

/// Writes `key` to `path` (0600) and its public line to `path.pub`.
/// With a passphrase the seed is sealed; without, it is stored plain.
pub fn write_key_files(
    key: &SecretKey,
    path: &Path,
    passphrase: Option<&str>,
    cost: KdfCost,
    overwrite: bool,
) -> Result<PathBuf, KeyFileError> {
    let public = key.public().to_string();
    let seed = Zeroizing::new(key.signing.to_bytes());
    let (plain, sealed) = match passphrase {
        None => (
            Some(PlainSeed {
                seed: hex::encode(seed.as_ref()),
            }),
            None,
        ),
        Some("") => return Err(KeyFileError::EmptyPassphrase),
        Some(passphrase) => {
            let mut salt = [0u8; 16];
            let mut nonce = [0u8; 24];
            getrandom::fill(&mut salt).map_err(|error| KeyFileError::Random(error.to_string()))?;
            getrandom::fill(&mut nonce).map_err(|error| KeyFileError::Random(error.to_string()))?;
            let wrapping = derive_key(passphrase.as_bytes(), &salt, cost)?;
            let cipher = XChaCha20Poly1305::new(wrapping.as_ref().into());
            let ciphertext = cipher
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: seed.as_ref(),
                        aad: public.as_bytes(),
                    },
                )
                .map_err(|_| KeyFileError::Kdf("encryption failed".into()))?;
            let sealed = SealedSeed {
                kdf: "argon2id".into(),
                memory_kib: cost.memory_kib,
                iterations: cost.iterations,
                parallelism: cost.parallelism,
                salt: hex::encode(salt),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(ciphertext),
            };
            (None, Some(sealed))
        }
    };
    let contents = FileContents {
        format: FORMAT.into(),
        public: public.clone(),
        fingerprint: key.fingerprint().to_string(),
        plain,
        sealed,
    };
    let text = Zeroizing::new(format!(
        "# mig investigator secret key. Keep it private; share {}.pub instead.\n{}",
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        toml::to_string(&contents).map_err(|error| KeyFileError::Format {
            path: path.to_owned(),
            reason: error.to_string(),
        })?
    ));
    write_new_file(path, text.as_bytes(), 0o600, overwrite)?;
    let public_path = public_path_for(path);
    write_new_file(
        &public_path,
        format!("{public}\n").as_bytes(),
        0o644,
        overwrite,
    )?;
    Ok(public_path)
}

/// `KEY.pub` beside `KEY`.
pub fn public_path_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn write_new_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.to_owned(),
            }
        } else {
            io(error)
        }
    })?;
    // An existing file keeps its old mode when truncated; set it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io)?;
    }
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Where a passphrase comes from when a sealed key is loaded.
pub trait PassphraseSource {
    /// The passphrase for `path`, or `None` if there is no way to get one.
    fn passphrase(&self, path: &Path) -> Result<Option<Zeroizing<String>>, KeyFileError>;
}

/// A fixed passphrase (or none), for scripts and tests.
pub struct GivenPassphrase(pub Option<Zeroizing<String>>);

impl PassphraseSource for GivenPassphrase {
    fn passphrase(&self, _path: &Path) -> Result<Option<Zeroizing<String>>, KeyFileError> {
        Ok(self.0.clone())
    }
}

/// Largest key file read; a real one is under 1 KiB.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Loads a secret key, refusing files that others can read.
pub fn load_secret_key(
    path: &Path,
    source: &dyn PassphraseSource,
) -> Result<SecretKey, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let format_error = |reason: &str| KeyFileError::Format {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(format_error("the file is far too large"));
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
    let contents: FileContents =
        toml::from_str(&text).map_err(|error| format_error(&error.to_string()))?;
    if contents.format != FORMAT {
        return Err(format_error(&format!(
            "unknown format '{}'",
            contents.format
        )));
    }
    let public =
        PublicKey::parse(&contents.public).map_err(|error| format_error(&error.to_string()))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    match (&contents.plain, &contents.sealed) {
        (Some(plain), None) => {
            hex::decode_to_slice(&plain.seed, seed.as_mut())
                .map_err(|_| format_error("the seed is not 64 hexadecimal characters"))?;
        }
        (None, Some(sealed)) => {
            if sealed.kdf != "argon2id" {
                return Err(format_error(&format!("unknown kdf '{}'", sealed.kdf)));
            }
            if sealed.memory_kib > MAX_MEMORY_KIB
                || sealed.iterations > 64
                || sealed.parallelism > 64
            {
                return Err(format_error("the key derivation cost is out of range"));
            }
            let decode = |text: &str, what: &str| {
                hex::decode(text).map_err(|_| format_error(&format!("{what} is not hexadecimal")))
            };
            let salt = decode(&sealed.salt, "salt")?;
            let nonce = decode(&sealed.nonce, "nonce")?;
            let ciphertext = decode(&sealed.ciphertext, "ciphertext")?;
            if nonce.len() != 24 {
                return Err(format_error("the nonce is not 24 bytes"));
            }
            let passphrase =
                source
                    .passphrase(path)?
                    .ok_or_else(|| KeyFileError::PassphraseNeeded {
                        path: path.to_owned(),
                    })?;
            let cost = KdfCost {
                memory_kib: sealed.memory_kib,
                iterations: sealed.iterations,
                parallelism: sealed.parallelism,
            };
            let wrapping = derive_key(passphrase.as_bytes(), &salt, cost)?;
            let cipher = XChaCha20Poly1305::new(wrapping.as_ref().into());
            let plaintext = Zeroizing::new(
                cipher
                    .decrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: &ciphertext,
                            aad: contents.public.as_bytes(),
                        },
                    )
                    .map_err(|_| KeyFileError::WrongPassphrase {
                        path: path.to_owned(),
                    })?,
            );
            if plaintext.len() != 32 {
                return Err(format_error("the sealed seed is not 32 bytes"));
            }
            seed.copy_from_slice(&plaintext);
        }
        _ => return Err(format_error("expected exactly one of [plain] or [sealed]")),
    }
    let key = SecretKey::from_seed(&seed, &public.comment);
    if key.public().key != public.key {
        return Err(format_error(
            "the secret does not match the public key in the file",
        ));
    }
    if contents.fingerprint.parse::<Fingerprint>().ok() != Some(key.fingerprint()) {
        return Err(format_error("the fingerprint does not match the key"));
    }
    Ok(key)
}

/// `--passphrase-file`, then `MIG_KEY_PASSPHRASE`, then a prompt on the
/// terminal.
pub struct PromptingPassphrase {
    pub file: Option<PathBuf>,
}

impl PassphraseSource for PromptingPassphrase {
    fn passphrase(&self, path: &Path) -> Result<Option<Zeroizing<String>>, KeyFileError> {
        if let Some(file) = &self.file {
            let text =
                Zeroizing::new(fs::read_to_string(file).map_err(|source| KeyFileError::Io {
                    path: file.clone(),
                    source,
                })?);
            return Ok(Some(Zeroizing::new(
                text.lines().next().unwrap_or("").to_owned(),
            )));
        }
        if let Ok(value) = std::env::var("MIG_KEY_PASSPHRASE") {
            return Ok(Some(Zeroizing::new(value)));
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            let prompt = format!("passphrase for {}: ", path.display());
            return rpassword::prompt_password(prompt)
                .map(|text| Some(Zeroizing::new(text)))
                .map_err(|source| KeyFileError::Io {
                    path: path.to_owned(),
                    source,
                });
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfCost = KdfCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn given(text: &str) -> GivenPassphrase {
        GivenPassphrase(Some(Zeroizing::new(text.to_owned())))
    }

    #[test]
    fn sealed_keys_round_trip_and_refuse_wrong_passphrases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.key");
        let key = SecretKey::generate("Alice <alice@example.org>").unwrap();
        let public_path =
            write_key_files(&key, &path, Some("correct horse"), CHEAP, false).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("[sealed]") && !text.contains(&hex::encode(key.signing.to_bytes())));
        let loaded = load_secret_key(&path, &given("correct horse")).unwrap();
        assert_eq!(loaded.fingerprint(), key.fingerprint());
        assert_eq!(
            PublicKey::parse(&fs::read_to_string(public_path).unwrap()).unwrap(),
            key.public()
        );
        assert!(matches!(
            load_secret_key(&path, &given("wrong")),
            Err(KeyFileError::WrongPassphrase { .. })
        ));
        assert!(matches!(
            load_secret_key(&path, &GivenPassphrase(None)),
            Err(KeyFileError::PassphraseNeeded { .. })
        ));
        assert!(matches!(
            write_key_files(&key, &path, None, CHEAP, false),
            Err(KeyFileError::Exists { .. })
        ));
    }

    #[test]
    fn swapping_the_public_line_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_key_files(
            &SecretKey::generate("").unwrap(),
            &path,
            Some("pw"),
            CHEAP,
            false,
        )
        .unwrap();
        let other = SecretKey::generate("").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let line = text
            .lines()
            .find(|line| line.starts_with("public"))
            .unwrap()
            .to_owned();
        let swapped = text.replace(&line, &format!("public = \"{}\"", other.public()));
        fs::write(&path, swapped).unwrap();
        assert!(load_secret_key(&path, &given("pw")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn keys_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_key_files(&SecretKey::generate("").unwrap(), &path, None, CHEAP, false).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_secret_key(&path, &GivenPassphrase(None)).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", SecretKey::from_seed(&[1; 32], "x")),
            "SecretKey(..)"
        );
    }
}
