//! The bearer-token guard in front of every Flight call but `Handshake`: the token
//! is verified exactly as the REST API verifies it (same keys, algorithm, issuer,
//! audience, expiry and role rules, via [`JwtKeys::verify_cached`]) and its claims
//! are handed to the call in the request extensions.

use std::sync::Arc;
use std::task::{Context, Poll};

use aurum_gold::bearer::bearer_token;
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use crate::auth::{Claims, JwtKeys};
use crate::flight::BoxFuture;
use crate::state::AppState;

/// The gRPC path suffix of the handshake, the one call that needs no token.
const HANDSHAKE_SUFFIX: &str = "/Handshake";

/// Extracts and verifies `authorization: Bearer <jwt>`.
pub fn verify_bearer(headers: &http::HeaderMap, keys: &JwtKeys) -> Result<Arc<Claims>, Status> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| {
            Status::unauthenticated(
                "a bearer token is required: call Handshake with basic credentials first",
            )
        })?
        .to_str()
        .map_err(|_| Status::unauthenticated("malformed authorization metadata"))?;
    let token = bearer_token(value).map_err(|e| Status::unauthenticated(e.to_string()))?;
    keys.verify_cached(token).map_err(Status::unauthenticated)
}

/// The claims a guarded call was made with.
pub fn claims_of<T>(request: &tonic::Request<T>) -> Result<Arc<Claims>, Status> {
    request
        .extensions()
        .get::<Arc<Claims>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("a bearer token is required"))
}

/// Refuses calls without a valid bearer token with `Unauthenticated`.
#[derive(Clone)]
pub struct BearerGuard<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> BearerGuard<S> {
    /// Guards `inner` with `state`'s keys.
    pub fn new(inner: S, state: Arc<AppState>) -> Self {
        Self { inner, state }
    }
}

impl<S> Service<http::Request<Body>> for BearerGuard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The clone is not ready; the ready one serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !req.uri().path().ends_with(HANDSHAKE_SUFFIX) {
            match verify_bearer(req.headers(), &self.state.keys) {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                }
                Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
            }
        }
        Box::pin(inner.call(req))
    }
}
