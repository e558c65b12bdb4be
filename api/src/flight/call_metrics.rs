//! Counts every Flight call by gRPC method and final status code, and times it
//! until its last message, for `/metrics` (next to the REST request metrics).
//!
//! A gRPC status arrives either in the response headers (an error before any
//! message) or in the trailers after a stream; the response body is wrapped to
//! catch the trailers, and a stream dropped before them counts as `Cancelled`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::Frame;
use tonic::Code;
use tonic::body::Body;
use tower::Service;

use crate::flight::BoxFuture;
use crate::metrics::Metrics;
use crate::state::AppState;

/// The Flight service's methods, as metric labels (anything else is `unknown`).
const METHODS: [&str; 10] = [
    "Handshake",
    "ListFlights",
    "GetFlightInfo",
    "PollFlightInfo",
    "GetSchema",
    "DoGet",
    "DoPut",
    "DoExchange",
    "DoAction",
    "ListActions",
];

fn method_label(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or("");
    METHODS
        .iter()
        .find(|m| **m == name)
        .copied()
        .unwrap_or("unknown")
}

/// The name of a gRPC status code, as a metric label.
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.trim().parse::<i32>().ok().map(Code::from_i32)
}

/// Records one call once, when its status is known (or it is abandoned).
struct CallRecord {
    state: Arc<AppState>,
    method: &'static str,
    start: Instant,
    done: bool,
}

impl CallRecord {
    fn finish(&mut self, code: Code) {
        if !self.done {
            self.done = true;
            let metrics: &Metrics = &self.state.metrics;
            metrics.observe_flight(self.method, code_label(code), self.start.elapsed());
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// A response body that records the call when its trailers pass.
struct MeteredBody {
    inner: Body,
    record: CallRecord,
}

impl http_body::Body for MeteredBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.record
                        .finish(grpc_status(trailers).unwrap_or(Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(status))) => this.record.finish(status.code()),
            Poll::Ready(None) => this.record.finish(Code::Ok),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Records each call's method, status code and duration.
#[derive(Clone)]
pub struct CallMetrics<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> CallMetrics<S> {
    /// Records `inner`'s calls into `state`'s metrics.
    pub fn new(inner: S, state: Arc<AppState>) -> Self {
        Self { inner, state }
    }
}

impl<S> Service<http::Request<Body>> for CallMetrics<S>
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

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let mut record = CallRecord {
            state: self.state.clone(),
            method: method_label(req.uri().path()),
            start: Instant::now(),
            done: false,
        };
        Box::pin(async move {
            let resp = inner.call(req).await?;
            // An error before any message comes as a "trailers-only" response.
            if let Some(code) = grpc_status(resp.headers()) {
                record.finish(code);
                return Ok(resp);
            }
            let (parts, body) = resp.into_parts();
            let body = Body::new(MeteredBody {
                inner: body,
                record,
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}
