//! The `Authorization: Bearer <token>` header (REST) and metadata (Flight SQL).

/// Why an `Authorization` value carries no bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// The scheme is not `Bearer` (or there is no token after it).
    #[error("the Authorization scheme must be Bearer")]
    NotBearer,
}

/// The token of an `Authorization` value: the scheme `Bearer` in any case, one
/// space, then the token (surrounding white space trimmed).
pub fn bearer_token(authorization: &str) -> Result<&str, BearerError> {
    match authorization.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(BearerError::NotBearer)
            } else {
                Ok(token)
            }
        }
        _ => Err(BearerError::NotBearer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token() {
        assert_eq!(bearer_token("Bearer abc.def"), Ok("abc.def"));
        assert_eq!(bearer_token("bearer  abc "), Ok("abc"));
        assert_eq!(bearer_token("BEARER x"), Ok("x"));
        for bad in ["Basic dXNlcjpwdw==", "Bearer", "Bearer ", "abc", ""] {
            assert_eq!(bearer_token(bad), Err(BearerError::NotBearer), "{bad}");
        }
    }
}
