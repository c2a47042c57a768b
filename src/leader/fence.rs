//! Fencing: every write the controller sends ends before this replica's leadership does.
//!
//! A [`Fence`] is a layer of the controller's API client. Reads (GET, LIST, WATCH) pass. A write
//! (POST, PUT, PATCH, DELETE) is refused at once unless this replica leads, and is otherwise
//! cut off when the first of two moments comes: [`WRITE_BUDGET`] after it was sent, or the
//! renew deadline of the current leadership ([`Leadership::remaining`]). A write the API server
//! throttles (429) or cannot take now (503, 504) is tried again, honouring `Retry-After`, only
//! while this replica still leads and only if the next attempt can start before the cut-off;
//! leadership is checked again before each retry. kube's own retry layer, which would retry for
//! up to 15 attempts and 1,000 s regardless of leadership, is switched off for this client.
//!
//! Why that keeps two replicas from acting on the same Release: the leader stops writing at its
//! renew deadline (10 s after the start of its last renewal); another replica takes the Lease
//! only after it has seen it unchanged for the lease duration (15 s). So every write of the old
//! leader has ended, on the client's side, at least 5 s before the new one can begin. The
//! remaining risk, a write the API server holds in its queue past that margin, is closed by
//! preconditions: Deployment patches carry the resourceVersion they were planned from, status
//! writes the Release's, and Jobs have deterministic names (docs/design-decisions.md).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::leadership::Leadership;

/// The longest one write may take, retries included, even with a fresh leadership.
pub const WRITE_BUDGET: Duration = Duration::from_secs(8);

/// How many times a throttled write is tried again.
const MAX_RETRIES: u32 = 3;

/// The first wait before a retry; it doubles each time (unless `Retry-After` says more).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Why a write was not sent or not finished.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FenceError {
    /// This replica does not lead (any more): nothing was sent.
    #[error("this replica is not the leader: the write was not sent")]
    NotLeader,
    /// The write did not finish before the cut-off; the API server may or may not have
    /// applied it (preconditions make a late one fail).
    #[error("the write did not finish within {0:?} (its share of this replica's leadership)")]
    TimedOut(Duration),
}

/// The fencing layer for the controller's client.
#[derive(Clone, Debug)]
pub struct Fence {
    leadership: Leadership,
    budget: Duration,
}

impl Fence {
    /// Fences writes by `leadership`, each within [`WRITE_BUDGET`].
    pub fn new(leadership: Leadership) -> Self {
        Self {
            leadership,
            budget: WRITE_BUDGET,
        }
    }

    /// The same fence with another per-write budget (tests).
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// How long the next write may take, or `None` when this replica may not write.
    fn allowance(&self) -> Option<Duration> {
        self.leadership
            .remaining()
            .filter(|left| !left.is_zero())
            .map(|left| left.min(self.budget))
    }
}

impl Fence {
    /// `client` with its writes fenced: a client that sends every request through `client`,
    /// writes only within this fence.
    pub fn client(&self, client: kube::Client) -> kube::Client {
        let namespace = client.default_namespace().to_owned();
        kube::Client::new(self.layer(Sender(client)), namespace)
    }
}

/// A kube client as a service (it is cheap to clone, which retries need).
#[derive(Clone)]
pub struct Sender(kube::Client);

impl Service<Request<Body>> for Sender {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move { client.send(request).await.map_err(BoxError::from) })
    }
}

impl<S> Layer<S> for Fence {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fenced {
            inner,
            fence: self.clone(),
        }
    }
}

/// A client service whose writes are fenced (see the module docs).
#[derive(Clone, Debug)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

/// Whether a request changes nothing on the server.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A copy of `request` to send again, when its body can be copied.
fn copy(request: &Request<Body>) -> Option<Request<Body>> {
    let body = request.body().try_clone()?;
    let mut copy = Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version())
        .body(body)
        .ok()?;
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// `future`'s output, or `None` once `cut_off` has passed. Unlike `tokio::time::timeout`, the
/// clock is read before `future` is polled: a process that was paused (SIGSTOP, a frozen node)
/// and wakes up after the cut-off does not get to send the request it was about to send.
async fn before<F: Future>(cut_off: Instant, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(tokio::time::sleep_until(cut_off));
    std::future::poll_fn(|cx| {
        if Instant::now() >= cut_off || timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        future.as_mut().poll(cx).map(Some)
    })
    .await
}

/// How long to wait before retry `attempt` (0-based) of a response that asked for one.
fn backoff(attempt: u32, response: &Response<Body>) -> Duration {
    let asked = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let own = FIRST_BACKOFF * 2u32.saturating_pow(attempt);
    asked.map_or(own, |asked| asked.max(own))
}

impl<S> Service<Request<Body>> for Fenced<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if is_read(request.method()) {
            return Box::pin(self.inner.call(request));
        }
        // The service that was made ready goes with this call; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fence = self.fence.clone();
        Box::pin(async move {
            let Some(allowance) = fence.allowance() else {
                return Err(FenceError::NotLeader.into());
            };
            let cut_off = Instant::now() + allowance;
            let mut request = request;
            let mut attempt = 0;
            loop {
                let again = (attempt < MAX_RETRIES).then(|| copy(&request)).flatten();
                let response = before(cut_off, inner.call(request))
                    .await
                    .ok_or(FenceError::TimedOut(allowance))??;
                let throttled = matches!(
                    response.status(),
                    StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                );
                let Some(next) = again.filter(|_| throttled) else {
                    return Ok(response);
                };
                let wait = backoff(attempt, &response);
                if Instant::now() + wait >= cut_off {
                    // No time left for another attempt: the caller sees the refusal.
                    return Ok(response);
                }
                tokio::time::sleep(wait).await;
                if !fence.leadership.is_leader() {
                    return Err(FenceError::NotLeader.into());
                }
                inner = inner.ready_oneshot().await?;
                request = next;
                attempt += 1;
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A fake API server: answers each request with the next of `answers` after `delay`, and
    /// records the methods it received, in order.
    /// A status and the `Retry-After` header, if any.
    type Answer = (StatusCode, Option<&'static str>);

    #[derive(Clone)]
    struct Server {
        answers: Arc<Mutex<Vec<Answer>>>,
        delay: Duration,
        seen: Arc<Mutex<Vec<Method>>>,
    }

    impl Server {
        fn new(answers: &[Answer], delay: Duration) -> Self {
            Self {
                answers: Arc::new(Mutex::new(answers.iter().rev().copied().collect())),
                delay,
                seen: Arc::default(),
            }
        }

        fn seen(&self) -> Vec<Method> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Service<Request<Body>> for Server {
        type Response = Response<Body>;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<Body>) -> Self::Future {
            self.seen.lock().unwrap().push(request.method().clone());
            let (status, retry_after) = self
                .answers
                .lock()
                .unwrap()
                .pop()
                .unwrap_or((StatusCode::OK, None));
            let delay = self.delay;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let mut response = Response::builder().status(status);
                if let Some(after) = retry_after {
                    response = response.header(http::header::RETRY_AFTER, after);
                }
                Ok(response.body(Body::empty()).unwrap())
            })
        }
    }

    fn request(method: Method) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri("/apis/apps/v1/namespaces/shop/deployments/api")
            .body(Body::from(b"{}".to_vec()))
            .unwrap()
    }

    async fn send(
        leadership: Leadership,
        server: &Server,
        method: Method,
    ) -> Result<StatusCode, String> {
        let fenced = Fence::new(leadership).layer(server.clone());
        fenced
            .oneshot(request(method))
            .await
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    }

    fn leading_for(secs: u64) -> Leadership {
        Leadership::fixed(Some(Instant::now() + Duration::from_secs(secs)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_sends_no_write_but_still_reads() {
        let server = Server::new(&[], Duration::ZERO);
        let follower = Leadership::fixed(None);
        let refused = send(follower.clone(), &server, Method::PATCH).await;
        assert_eq!(refused, Err(FenceError::NotLeader.to_string()));
        assert_eq!(
            send(follower, &server, Method::GET).await,
            Ok(StatusCode::OK)
        );
        assert_eq!(server.seen(), vec![Method::GET], "the PATCH never left");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_is_cut_off_at_the_end_of_the_leadership() {
        // The API server takes 20 s to answer; this replica leads for 3 s more.
        let server = Server::new(&[], Duration::from_secs(20));
        let started = Instant::now();
        let cut = send(leading_for(3), &server, Method::POST).await;
        assert!(
            cut.unwrap_err().contains("did not finish within 3"),
            "cut at 3 s"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_never_outlasts_the_budget_even_with_a_long_leadership() {
        let server = Server::new(&[], Duration::from_secs(60));
        let started = Instant::now();
        let cut = send(Leadership::always(), &server, Method::PUT).await;
        assert!(cut.is_err());
        assert_eq!(started.elapsed(), WRITE_BUDGET);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_write_is_retried_while_there_is_time() {
        let server = Server::new(
            &[
                (StatusCode::TOO_MANY_REQUESTS, Some("1")),
                (StatusCode::SERVICE_UNAVAILABLE, None),
            ],
            Duration::from_millis(10),
        );
        let answer = send(leading_for(30), &server, Method::PATCH).await;
        assert_eq!(answer, Ok(StatusCode::OK));
        assert_eq!(
            server.seen().len(),
            3,
            "two retries, then the write went through"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_starts_after_the_cut_off() {
        // Retry-After 5 s, but this replica leads for 2 s: the refusal is the answer.
        let server = Server::new(
            &[(StatusCode::TOO_MANY_REQUESTS, Some("5"))],
            Duration::from_millis(10),
        );
        let answer = send(leading_for(2), &server, Method::PATCH).await;
        assert_eq!(answer, Ok(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(server.seen().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_is_not_sent_once_its_cut_off_has_passed() {
        // A process paused past its cut-off wakes up with the request unsent: it stays unsent.
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = sent.clone();
        let cut_off = Instant::now() + Duration::from_secs(1);
        tokio::time::advance(Duration::from_secs(2)).await;
        let answer = before(cut_off, async move {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        })
        .await;
        assert_eq!(answer, None);
        assert!(
            !sent.load(std::sync::atomic::Ordering::SeqCst),
            "never polled"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_three() {
        let throttled = (StatusCode::TOO_MANY_REQUESTS, None);
        let server = Server::new(&[throttled; 6], Duration::ZERO);
        let answer = send(Leadership::always(), &server, Method::DELETE).await;
        assert_eq!(answer, Ok(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(
            server.seen().len(),
            4,
            "the first attempt and three retries"
        );
    }
}
