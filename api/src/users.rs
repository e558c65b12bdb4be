//! The users file (`username:argon2id-hash:role` lines) and password checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

pub use aurum_gold::Role;

/// Errors reading the users file or hashing a password.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The users file could not be read.
    #[error("cannot read users file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the users file is malformed.
    #[error("users file {path}, line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Hashing failed.
    #[error("cannot hash password: {0}")]
    Hash(String),
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    /// The PHC string of the argon2id hash.
    pub hash: String,
    /// The user's role.
    pub role: Role,
}

/// The set of users allowed to log in, plus a dummy hash so that checking an
/// unknown user costs as much as checking a known one.
#[derive(Debug, Clone)]
pub struct UserStore {
    users: HashMap<String, User>,
    dummy_hash: String,
}

/// Hashes `password` with argon2id and a random salt (default parameters unless given).
pub fn hash_password(password: &str, params: Option<Params>) -> Result<String, UsersError> {
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes);
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        params.unwrap_or_default(),
    );
    argon
        .hash_password_with_salt(password.as_bytes(), &salt_bytes)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

impl UserStore {
    /// Parses the content of a users file. Blank lines and lines starting with `#` are skipped.
    pub fn parse(path: &Path, content: &str) -> Result<Self, UsersError> {
        let mut users = HashMap::new();
        for (i, raw) in content.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| UsersError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let (name, rest) = line
                .split_once(':')
                .ok_or_else(|| err("expected username:argon2id-hash:role".into()))?;
            let (hash, role) = rest
                .rsplit_once(':')
                .ok_or_else(|| err("expected username:argon2id-hash:role".into()))?;
            if name.is_empty() {
                return Err(err("empty username".into()));
            }
            let role: Role = role
                .trim()
                .parse()
                .map_err(|e: aurum_gold::role::UnknownRole| err(e.to_string()))?;
            let parsed = PasswordHash::new(hash).map_err(|e| err(format!("bad hash: {e}")))?;
            if parsed.algorithm.as_str() != "argon2id" {
                return Err(err(format!(
                    "hash algorithm is {}, expected argon2id",
                    parsed.algorithm
                )));
            }
            if users
                .insert(
                    name.to_string(),
                    User {
                        hash: hash.to_string(),
                        role,
                    },
                )
                .is_some()
            {
                return Err(err(format!("duplicate user `{name}`")));
            }
        }
        Self::from_users(users)
    }

    /// Reads and parses a users file.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let content = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &content)
    }

    /// Builds a store from users; the dummy hash copies the parameters of the first user's hash.
    pub fn from_users(users: HashMap<String, User>) -> Result<Self, UsersError> {
        let params = users
            .values()
            .next()
            .and_then(|u| PasswordHash::new(&u.hash).ok())
            .and_then(|h| Params::try_from(&h).ok());
        let mut secret = [0u8; 24];
        rand::fill(&mut secret);
        let dummy_hash = hash_password(&format!("{secret:?}"), params)?;
        Ok(Self { users, dummy_hash })
    }

    /// Adds users (e.g. the dev user); existing names are kept.
    pub fn with_extra(mut self, extra: HashMap<String, User>) -> Result<Self, UsersError> {
        for (k, v) in extra {
            self.users.entry(k).or_insert(v);
        }
        Ok(self)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there is no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a password. Runs a full argon2 verification whether or not the user
    /// exists, so the time taken does not reveal which names exist. CPU-heavy: call
    /// from a blocking thread.
    pub fn verify(&self, username: &str, password: &str) -> Option<Role> {
        let (hash, role) = match self.users.get(username) {
            Some(u) => (u.hash.as_str(), Some(u.role)),
            None => (self.dummy_hash.as_str(), None),
        };
        let ok = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        if ok { role } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn light() -> Option<Params> {
        Params::new(1024, 1, 1, None).ok()
    }

    #[test]
    fn parses_and_verifies() {
        let h = hash_password("s3cret", light()).unwrap();
        let content = format!("# comment\n\nalice:{h}:admin\nbob:{h}:viewer\n");
        let store = UserStore::parse(Path::new("users"), &content).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.verify("alice", "s3cret"), Some(Role::Admin));
        assert_eq!(store.verify("bob", "s3cret"), Some(Role::Viewer));
        assert_eq!(store.verify("bob", "wrong"), None);
        assert_eq!(store.verify("nobody", "s3cret"), None);
    }

    #[test]
    fn rejects_bad_lines() {
        let h = hash_password("x", light()).unwrap();
        for bad in [
            "alice".to_string(),
            format!("alice:{h}:root"),
            "alice:notahash:viewer".to_string(),
            format!(":{h}:viewer"),
            format!("a:{h}:viewer\na:{h}:admin"),
        ] {
            assert!(UserStore::parse(Path::new("u"), &bad).is_err(), "{bad}");
        }
    }
}
