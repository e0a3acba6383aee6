//! Static files served from memory: the web page of a one-port server.
//!
//! ```
//! use wsgrpc::serve::Assets;
//!
//! let assets = Assets::new()
//!     .file("/", "text/html; charset=utf-8", "<!doctype html><title>hi</title>")
//!     .file("/robots.txt", "text/plain", "User-agent: *\nDisallow: /\n");
//! assert_eq!(assets.len(), 2);
//! ```
//!
//! The files are `Bytes` the binary already holds (`include_str!`/`include_bytes!`), so serving
//! one clones a reference count and the page can never disagree with the binary that serves it.
//! Requests are answered by exact path: `GET` and `HEAD` get the file, other methods `405`,
//! unknown paths `404`. A [`generated`](Assets::generated) file is made anew for each request
//! instead (a metrics page, say).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

/// In-memory files by exact request path.
#[derive(Debug, Clone, Default)]
pub struct Assets {
    files: HashMap<String, Asset>,
}

#[derive(Debug, Clone)]
struct Asset {
    content_type: HeaderValue,
    body: Contents,
}

/// A file's bytes: fixed, or made for each request.
#[derive(Clone)]
enum Contents {
    Fixed(Bytes),
    Generated(Arc<dyn Fn() -> Bytes + Send + Sync>),
}

impl Contents {
    fn bytes(&self) -> Bytes {
        match self {
            Contents::Fixed(bytes) => bytes.clone(),
            Contents::Generated(generate) => generate(),
        }
    }
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contents::Fixed(bytes) => f.debug_tuple("Fixed").field(&bytes.len()).finish(),
            Contents::Generated(_) => f.write_str("Generated"),
        }
    }
}

impl Assets {
    /// No files: every request gets `404`.
    pub fn new() -> Self {
        Assets::default()
    }

    /// Serves `body` at `path` (e.g. `/` or `/app.js`) with the given `Content-Type`.
    ///
    /// # Panics
    ///
    /// If `content_type` is not a valid header value (a programming error, caught on first run).
    #[must_use]
    pub fn file(
        mut self,
        path: impl Into<String>,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Self {
        let content_type = HeaderValue::from_static(content_type);
        self.files.insert(
            path.into(),
            Asset {
                content_type,
                body: Contents::Fixed(body.into()),
            },
        );
        self
    }

    /// Serves what `generate` returns at `path`, calling it for every `GET` (and `HEAD`) request
    /// there: a page that changes while the server runs, such as the Prometheus text of
    /// [`crate::metrics`] at `/metrics`. It runs on the connection's task, so it should be quick.
    ///
    /// ```
    /// use wsgrpc::serve::Assets;
    ///
    /// let started = std::time::Instant::now();
    /// let assets = Assets::new().generated("/uptime", "text/plain", move || {
    ///     format!("{} s\n", started.elapsed().as_secs()).into()
    /// });
    /// assert_eq!(assets.len(), 1);
    /// ```
    ///
    /// # Panics
    ///
    /// If `content_type` is not a valid header value (a programming error, caught on first run).
    #[must_use]
    pub fn generated(
        mut self,
        path: impl Into<String>,
        content_type: &'static str,
        generate: impl Fn() -> Bytes + Send + Sync + 'static,
    ) -> Self {
        let content_type = HeaderValue::from_static(content_type);
        self.files.insert(
            path.into(),
            Asset {
                content_type,
                body: Contents::Generated(Arc::new(generate)),
            },
        );
        self
    }

    /// How many files there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether a file is served at exactly `path`.
    pub fn serves(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// The answer to `request`: the file, `404` or `405`.
    pub fn respond<B>(&self, request: &Request<B>) -> Response<Bytes> {
        let Some(asset) = self.files.get(request.uri().path()) else {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        };
        let head = request.method() == Method::HEAD;
        if request.method() != Method::GET && !head {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let body = asset.body.bytes();
        let length = body.len();
        let mut response = Response::new(if head { Bytes::new() } else { body });
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, asset.content_type.clone());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        // The files change with the binary, not on their own: revalidate rather than cache stale.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// A short plain-text response.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_paths_methods_and_head() {
        let assets = Assets::new().file("/", "text/html", "<p>hi</p>");
        let get = Request::get("/").body(()).expect("valid");
        let response = assets.respond(&get);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"<p>hi</p>");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html");

        let head = Request::head("/").body(()).expect("valid");
        let response = assets.respond(&head);
        assert!(response.body().is_empty());
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "9");

        let post = Request::post("/").body(()).expect("valid");
        assert_eq!(
            assets.respond(&post).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let missing = Request::get("/nope").body(()).expect("valid");
        assert_eq!(assets.respond(&missing).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn generated_files_are_made_per_request() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let assets = Assets::new().generated("/count", "text/plain", move || {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            Bytes::from(n.to_string())
        });
        let get = || Request::get("/count").body(()).expect("valid");
        assert_eq!(assets.respond(&get()).body().as_ref(), b"1");
        assert_eq!(assets.respond(&get()).body().as_ref(), b"2");
        let head = Request::head("/count").body(()).expect("valid");
        let response = assets.respond(&head);
        assert!(response.body().is_empty());
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "1");
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }
}
