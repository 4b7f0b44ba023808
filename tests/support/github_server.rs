//! Test support: an in-process fake of GitHub's Releases REST API and attestation store (api +
//! uploads listeners on 127.0.0.1) with a request log and fault injection.

// It speaks just enough HTTP/1.1 (keep-alive, Content-Length and chunked
// bodies, `Expect: 100-continue`) over `std::net` threads that no test
// depends on a real network or an async runtime. State changes happen only
// when a request is handled; an injected fault decides, per request number,
// whether the handler runs at all (`ResetAfterEffect` is the one fault that
// applies the change and then loses the response, as real GitHub can).

#![allow(dead_code)] // tests use different subsets

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The token `GitHubServer::start` accepts, with push access.
pub const TOKEN: &str = "ghp_mockTOKEN_0123456789abcdefXYZ";
/// The repository `GitHubServer::start` serves.
pub const OWNER: &str = "acme";
pub const REPO: &str = "widgets";

/// Request heads larger than this are refused, like any real front end would.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// JSON bodies are kept in memory; uploads are only hashed, so they may be large.
const MAX_JSON_BODY: usize = 1024 * 1024;
/// Bounds the number of live connections so a misbehaving client cannot make
/// the test process spawn threads without limit.
const MAX_CONNECTIONS: usize = 128;
/// GitHub's per-page limits for list endpoints.
const DEFAULT_PER_PAGE: usize = 30;
const MAX_PER_PAGE: usize = 100;
/// Fake clock origin (2025-01-01T00:00:00Z), advanced one second per request,
/// so timestamps are deterministic.
const EPOCH_START: u64 = 1_735_689_600;

/// Which listener a request arrived on, like api.github.com vs uploads.github.com.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Api,
    Uploads,
}

/// What the server does instead of (or after) handling request number k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 with GitHub's JSON error body; no state change.
    ServerError,
    /// 502 with an HTML body, like GitHub's front end; no state change.
    BadGateway,
    /// 429 with `Retry-After: 1`; no state change.
    RateLimited,
    /// 403 with `x-ratelimit-remaining: 0` and a reset one second ahead; no state change.
    RateLimitExhausted,
    /// Close the connection without any response; no state change.
    Reset,
    /// Handle the request (the state changes) and then close the connection
    /// without sending the response: the client cannot know it worked.
    ResetAfterEffect,
    /// Say nothing for the configured hang time (longer than the client's
    /// timeout), then close; no state change.
    Hang,
}

impl Fault {
    /// Every fault kind, for sweeps.
    pub const ALL: [Fault; 7] = [
        Fault::ServerError,
        Fault::BadGateway,
        Fault::RateLimited,
        Fault::RateLimitExhausted,
        Fault::Reset,
        Fault::ResetAfterEffect,
        Fault::Hang,
    ];
}

/// One line of the request log.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// 1-based, counting every request on both listeners.
    pub number: u64,
    pub listener: Listener,
    pub method: String,
    /// Path and query as sent (including any API prefix).
    pub path: String,
    /// Status the client received; `None` when the connection was closed without one.
    pub status: Option<u16>,
    /// Status the handler produced, i.e. whether the request took effect;
    /// `None` when a fault stopped it before handling.
    pub handled: Option<u16>,
    pub fault: Option<Fault>,
}

/// A snapshot of a release, for assertions.
#[derive(Clone, Debug)]
pub struct ReleaseView {
    pub id: u64,
    pub tag: String,
    pub name: String,
    pub body: String,
    pub draft: bool,
    pub prerelease: bool,
    pub assets: Vec<AssetView>,
}

/// A snapshot of an asset, for assertions.
#[derive(Clone, Debug)]
pub struct AssetView {
    pub id: u64,
    pub name: String,
    pub size: u64,
    /// `sha256:<hex>` as GitHub reports it.
    pub digest: String,
}

/// Builder for a server with chosen repositories, tokens and URL prefixes.
pub struct ServerBuilder {
    repos: Vec<(String, String)>,
    tokens: Vec<(String, bool)>,
    api_prefix: String,
    upload_prefix: String,
    immutable: bool,
    hang: Duration,
    advertised_upload: Option<String>,
    public: bool,
}

impl ServerBuilder {
    pub fn repo(mut self, owner: &str, name: &str) -> Self {
        self.repos.push((owner.to_string(), name.to_string()));
        self
    }

    /// A token the server accepts; `push` decides write access to every repo.
    pub fn token(mut self, token: &str, push: bool) -> Self {
        self.tokens.push((token.to_string(), push));
        self
    }

    /// Serve the API under a path prefix, like GitHub Enterprise's `/api/v3`.
    pub fn api_prefix(mut self, prefix: &str) -> Self {
        self.api_prefix = prefix.trim_end_matches('/').to_string();
        self
    }

    /// Serve uploads under a path prefix, like GitHub Enterprise's `/api/uploads`.
    pub fn upload_prefix(mut self, prefix: &str) -> Self {
        self.upload_prefix = prefix.trim_end_matches('/').to_string();
        self
    }

    /// Published releases refuse asset uploads and deletes (GitHub's immutable releases).
    pub fn immutable(mut self, on: bool) -> Self {
        self.immutable = on;
        self
    }

    /// How long a `Fault::Hang` holds the connection before closing it.
    pub fn hang_for(mut self, hang: Duration) -> Self {
        self.hang = hang;
        self
    }

    /// Put this base in releases' `upload_url` instead of the real uploads
    /// listener (to test `GITHUB_UPLOAD_URL` overrides and refusals).
    pub fn advertise_upload_base(mut self, base: &str) -> Self {
        self.advertised_upload = Some(base.trim_end_matches('/').to_string());
        self
    }

    /// Public repositories: reads without a token are answered (published releases only).
    pub fn public(mut self, on: bool) -> Self {
        self.public = on;
        self
    }

    pub fn start(self) -> GitHubServer {
        GitHubServer::launch(self)
    }
}

/// The running fake. Stops (closes listeners and connections, joins threads) when dropped.
pub struct GitHubServer {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    upload_addr: SocketAddr,
    listeners: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    conns: Mutex<Conns>,
    /// Wakes hanging handlers early when the server is dropped.
    stop: Condvar,
    api_base: String,
    upload_base: String,
    /// What releases name as their upload host (normally `upload_base`).
    advertised_upload: String,
    api_prefix: String,
    upload_prefix: String,
}

#[derive(Default)]
struct Conns {
    stopping: bool,
    next_id: u64,
    streams: HashMap<u64, TcpStream>,
    handles: Vec<JoinHandle<()>>,
}

struct State {
    requests: u64,
    faults: HashMap<u64, Fault>,
    log: Vec<LoggedRequest>,
    tokens: HashMap<String, bool>,
    repos: Vec<RepoState>,
    next_id: u64,
    immutable: bool,
    hang: Duration,
    /// What the attestation endpoints answer when the repository's plan lacks the feature.
    attestations_refused: Option<u16>,
    /// Reads without a token are answered.
    public: bool,
}

struct RepoState {
    id: u64,
    owner: String,
    name: String,
    releases: Vec<ReleaseState>,
    attestations: Vec<AttestationState>,
}

/// A stored attestation: the bundle as sent, found by any of its statement's subject digests.
#[derive(Clone)]
struct AttestationState {
    id: u64,
    bundle: Value,
    /// `sha256:<hex>` of each subject.
    subjects: Vec<String>,
    predicate_type: String,
}

/// A snapshot of a stored attestation, for assertions.
#[derive(Clone, Debug)]
pub struct AttestationView {
    pub id: u64,
    pub subjects: Vec<String>,
    pub predicate_type: String,
    pub bundle: Value,
}

#[derive(Clone)]
struct ReleaseState {
    id: u64,
    tag: String,
    target: String,
    name: String,
    body: String,
    draft: bool,
    prerelease: bool,
    created_at: u64,
    published_at: Option<u64>,
    assets: Vec<AssetState>,
}

#[derive(Clone)]
struct AssetState {
    id: u64,
    name: String,
    label: String,
    size: u64,
    digest: String,
    content_type: String,
    created_at: u64,
    /// The bytes, for downloads (kept up to 1 MiB: link and metadata files, not binaries).
    content: Option<Vec<u8>>,
}

impl GitHubServer {
    /// A server with repo `acme/widgets`, token [`TOKEN`] with push access,
    /// mutable releases and a 2 s hang.
    pub fn start() -> Self {
        Self::builder().repo(OWNER, REPO).token(TOKEN, true).start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            repos: Vec::new(),
            tokens: Vec::new(),
            api_prefix: String::new(),
            upload_prefix: String::new(),
            immutable: false,
            hang: Duration::from_secs(2),
            advertised_upload: None,
            public: false,
        }
    }

    fn launch(b: ServerBuilder) -> Self {
        let api = TcpListener::bind("127.0.0.1:0").expect("bind api listener");
        let uploads = TcpListener::bind("127.0.0.1:0").expect("bind uploads listener");
        let api_addr = api.local_addr().expect("api addr");
        let upload_addr = uploads.local_addr().expect("upload addr");
        let mut next_id = 1000;
        let repos = b
            .repos
            .iter()
            .map(|(owner, name)| {
                next_id += 1;
                RepoState {
                    id: next_id,
                    owner: owner.clone(),
                    name: name.clone(),
                    releases: Vec::new(),
                    attestations: Vec::new(),
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                requests: 0,
                faults: HashMap::new(),
                log: Vec::new(),
                tokens: b.tokens.into_iter().collect(),
                repos,
                next_id,
                immutable: b.immutable,
                hang: b.hang,
                attestations_refused: None,
                public: b.public,
            }),
            conns: Mutex::new(Conns::default()),
            stop: Condvar::new(),
            api_base: format!("http://{api_addr}{}", b.api_prefix),
            upload_base: format!("http://{upload_addr}{}", b.upload_prefix),
            advertised_upload: b
                .advertised_upload
                .unwrap_or_else(|| format!("http://{upload_addr}{}", b.upload_prefix)),
            api_prefix: b.api_prefix,
            upload_prefix: b.upload_prefix,
        });
        let listeners = vec![
            spawn_listener(shared.clone(), api, Listener::Api),
            spawn_listener(shared.clone(), uploads, Listener::Uploads),
        ];
        GitHubServer {
            shared,
            api_addr,
            upload_addr,
            listeners,
        }
    }

    /// Base URL of the API listener (what `GITHUB_API_URL` would be).
    pub fn api_url(&self) -> String {
        self.shared.api_base.clone()
    }

    /// Base URL of the uploads listener (what `GITHUB_UPLOAD_URL` would be).
    pub fn upload_url(&self) -> String {
        self.shared.upload_base.clone()
    }

    /// Make request number `k` (1-based, both listeners) fail with `fault`.
    pub fn fail_request(&self, k: u64, fault: Fault) {
        self.state().faults.insert(k, fault);
    }

    /// Answer the attestation endpoints with `status` (404 or 403), as GitHub does for a
    /// private repository on a plan without artifact attestations; `None` serves them.
    pub fn refuse_attestations(&self, status: Option<u16>) {
        self.state().attestations_refused = status;
    }

    /// The attestations stored for a repository, oldest first.
    pub fn attestations(&self, owner: &str, name: &str) -> Vec<AttestationView> {
        let st = self.state();
        let repo = st
            .repos
            .iter()
            .find(|r| r.owner == owner && r.name == name)
            .expect("unknown repo in test");
        repo.attestations
            .iter()
            .map(|a| AttestationView {
                id: a.id,
                subjects: a.subjects.clone(),
                predicate_type: a.predicate_type.clone(),
                bundle: a.bundle.clone(),
            })
            .collect()
    }

    pub fn set_immutable(&self, on: bool) {
        self.state().immutable = on;
    }

    pub fn add_token(&self, token: &str, push: bool) {
        self.state().tokens.insert(token.to_string(), push);
    }

    /// Requests received so far on both listeners.
    pub fn request_count(&self) -> u64 {
        self.state().requests
    }

    pub fn log(&self) -> Vec<LoggedRequest> {
        self.state().log.clone()
    }

    /// Releases of a repository, newest first (as GitHub lists them).
    pub fn releases(&self, owner: &str, name: &str) -> Vec<ReleaseView> {
        let st = self.state();
        let repo = st
            .repos
            .iter()
            .find(|r| r.owner == owner && r.name == name)
            .expect("unknown repo in test");
        repo.releases.iter().rev().map(release_view).collect()
    }

    /// Put a release straight into the state (no request is logged or counted).
    pub fn seed_release(
        &self,
        owner: &str,
        name: &str,
        tag: &str,
        draft: bool,
        assets: &[(&str, &[u8])],
    ) -> u64 {
        let mut st = self.state();
        let mut ids: Vec<u64> = (0..=assets.len()).map(|_| st.fresh_id()).collect();
        let release_id = ids.remove(0);
        let assets = assets
            .iter()
            .zip(ids)
            .map(|((asset_name, data), id)| AssetState {
                id,
                name: asset_name.to_string(),
                label: String::new(),
                size: data.len() as u64,
                digest: format!("sha256:{}", xrelease::digest::hex(&Sha256::digest(data))),
                content_type: "application/octet-stream".to_string(),
                created_at: EPOCH_START,
                content: Some(data.to_vec()),
            })
            .collect();
        let repo = st
            .repos
            .iter_mut()
            .find(|r| r.owner == owner && r.name == name)
            .expect("unknown repo in test");
        repo.releases.push(ReleaseState {
            id: release_id,
            tag: tag.to_string(),
            target: "main".to_string(),
            name: tag.to_string(),
            body: String::new(),
            draft,
            prerelease: false,
            created_at: EPOCH_START,
            published_at: (!draft).then_some(EPOCH_START),
            assets,
        });
        release_id
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }
}

impl Drop for GitHubServer {
    fn drop(&mut self) {
        {
            let mut conns = lock(&self.shared.conns);
            conns.stopping = true;
            for stream in conns.streams.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        self.shared.stop.notify_all();
        // The accept loops block in accept(): a connection wakes them, and
        // they see `stopping` before serving it.
        for addr in [self.api_addr, self.upload_addr] {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
        for handle in self.listeners.drain(..) {
            let _ = handle.join();
        }
        let handles = std::mem::take(&mut lock(&self.shared.conns).handles);
        for handle in handles {
            let _ = handle.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not turn every later assertion into a
    // poison error: the state is still consistent between requests.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn spawn_listener(shared: Arc<Shared>, listener: TcpListener, which: Listener) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else {
                // Persistent accept errors (e.g. out of descriptors) must not spin a core.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let mut conns = lock(&shared.conns);
            if conns.stopping {
                break;
            }
            conns.handles.retain(|h| !h.is_finished());
            if conns.streams.len() >= MAX_CONNECTIONS {
                drop(conns);
                let mut s = stream;
                let _ = write_response(&mut s, &Response::error(503, "Too many connections"), true);
                continue;
            }
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            conns.next_id += 1;
            let id = conns.next_id;
            conns.streams.insert(id, clone);
            let shared2 = shared.clone();
            let handle = std::thread::spawn(move || {
                serve_connection(&shared2, stream, which);
                lock(&shared2.conns).streams.remove(&id);
            });
            conns.handles.push(handle);
        }
    })
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    http10: bool,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn wants_close(&self) -> bool {
        match self.header("connection") {
            Some(v) if v.eq_ignore_ascii_case("close") => true,
            Some(v) if v.eq_ignore_ascii_case("keep-alive") => false,
            _ => self.http10,
        }
    }
}

enum HeadError {
    Io,
    Malformed(&'static str),
}

fn read_head(reader: &mut BufReader<TcpStream>) -> Result<Option<Head>, HeadError> {
    let mut total = 0usize;
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD_BYTES - total + 1) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|_| HeadError::Io)?;
        if n == 0 {
            // EOF: clean between requests, an error in the middle of a head.
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(HeadError::Io)
            };
        }
        total += n;
        if total > MAX_HEAD_BYTES {
            return Err(HeadError::Malformed("request head too large"));
        }
        if !line.ends_with(b"\n") {
            return Err(HeadError::Io);
        }
        let text = String::from_utf8(line).map_err(|_| HeadError::Malformed("non-UTF-8 head"))?;
        let text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray CRLF between requests (RFC 9112 §2.2)
            }
            break;
        }
        lines.push(text);
    }
    let mut parts = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed("unsupported HTTP version"));
    }
    let mut headers = Vec::new();
    for line in &lines[1..] {
        let Some((k, v)) = line.split_once(':') else {
            return Err(HeadError::Malformed("bad header line"));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        http10: version == "HTTP/1.0",
    }))
}

/// A request body as the handlers see it: small JSON bodies are kept, large
/// upload bodies only measured and hashed.
struct Body {
    bytes: Vec<u8>,
    size: u64,
    sha256: String,
    too_large: bool,
}

enum Framing {
    None,
    Length(u64),
    Chunked,
}

fn read_body(reader: &mut BufReader<TcpStream>, framing: Framing, keep: bool) -> io::Result<Body> {
    let mut hasher = Sha256::new();
    let mut body = Body {
        bytes: Vec::new(),
        size: 0,
        sha256: String::new(),
        too_large: false,
    };
    let mut take = |chunk: &[u8], body: &mut Body| {
        hasher.update(chunk);
        body.size += chunk.len() as u64;
        if keep && !body.too_large {
            if body.bytes.len() + chunk.len() > MAX_JSON_BODY {
                body.too_large = true;
                body.bytes.clear();
            } else {
                body.bytes.extend_from_slice(chunk);
            }
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut copy = |reader: &mut BufReader<TcpStream>, mut left: u64, body: &mut Body| {
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "body cut short",
                ));
            }
            take(&buf[..n], body);
            left -= n as u64;
        }
        Ok(())
    };
    match framing {
        Framing::None => {}
        Framing::Length(n) => copy(reader, n, &mut body)?,
        Framing::Chunked => loop {
            let mut line = String::new();
            reader.by_ref().take(1024).read_line(&mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers end with an empty line; they are bounded like a head.
                for _ in 0..64 {
                    let mut t = String::new();
                    reader.by_ref().take(8192).read_line(&mut t)?;
                    if t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            copy(reader, size, &mut body)?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        },
    }
    body.sha256 = xrelease::digest::hex(&hasher.finalize());
    Ok(body)
}

fn serve_connection(shared: &Shared, stream: TcpStream, which: Listener) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let head = match read_head(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) | Err(HeadError::Io) => return,
            Err(HeadError::Malformed(why)) => {
                let _ = write_response(&mut out, &Response::error(400, why), true);
                return;
            }
        };
        // Number and fault are fixed when the head arrives, so numbering
        // follows arrival order even for large concurrent uploads.
        let (number, fault) = {
            let mut st = lock(&shared.state);
            st.requests += 1;
            let n = st.requests;
            (n, st.faults.remove(&n))
        };
        let close = head.wants_close();
        let framing = if head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(len) = head.header("content-length") {
            match len.parse::<u64>() {
                Ok(n) => Framing::Length(n),
                Err(_) => {
                    let _ =
                        write_response(&mut out, &Response::error(400, "bad Content-Length"), true);
                    return;
                }
            }
        } else {
            Framing::None
        };
        let has_length = matches!(framing, Framing::Length(_));
        if head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let Ok(body) = read_body(&mut reader, framing, true) else {
            return;
        };
        let mut entry = LoggedRequest {
            number,
            listener: which,
            method: head.method.clone(),
            path: head.target.clone(),
            status: None,
            handled: None,
            fault,
        };
        let response = match fault {
            Some(Fault::ServerError) => Some(Response::error(500, "Server Error")),
            Some(Fault::BadGateway) => Some(Response {
                status: 502,
                headers: vec![("Content-Type".into(), "text/html".into())],
                body: b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
            }),
            Some(Fault::RateLimited) => {
                let mut r = Response::error(
                    429,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                );
                r.headers.push(("Retry-After".into(), "1".into()));
                Some(r)
            }
            Some(Fault::RateLimitExhausted) => {
                let mut r = Response::error(403, "API rate limit exceeded for user.");
                let reset = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() + 1)
                    .unwrap_or(0);
                r.headers.push(("x-ratelimit-remaining".into(), "0".into()));
                r.headers
                    .push(("x-ratelimit-reset".into(), reset.to_string()));
                Some(r)
            }
            Some(Fault::Reset) | Some(Fault::Hang) => None,
            Some(Fault::ResetAfterEffect) | None => {
                let r = handle(shared, which, &head, &body, has_length);
                entry.handled = Some(r.status);
                (fault.is_none()).then_some(r)
            }
        };
        entry.status = response.as_ref().map(|r| r.status);
        // Logged before the response leaves, so a client that has its answer
        // always finds the request in the log.
        lock(&shared.state).log.push(entry);
        match response {
            Some(r) => {
                if write_response(&mut out, &r, close).is_err() || close {
                    return;
                }
            }
            None => {
                if fault == Some(Fault::Hang) {
                    let hang = lock(&shared.state).hang;
                    wait_or_stop(shared, hang);
                }
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Sleeps up to `d`, returning early when the server is dropped.
fn wait_or_stop(shared: &Shared, d: Duration) {
    let deadline = Instant::now() + d;
    let mut conns = lock(&shared.conns);
    while !conns.stopping {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        conns = shared
            .stop
            .wait_timeout(conns, deadline - now)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, v: Value) -> Self {
        Response {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: serde_json::to_vec(&v).expect("json"),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
        )
    }

    fn validation(resource: &str, code: &str, field: &str) -> Self {
        Self::json(
            422,
            json!({
                "message": "Validation Failed",
                "errors": [{"resource": resource, "code": code, "field": field}],
                "documentation_url": "https://docs.github.com/rest",
                "status": "422"
            }),
        )
    }

    fn no_content() -> Self {
        Response {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn write_response(out: &mut TcpStream, r: &Response, close: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !r.headers.iter().any(|(k, _)| k == "x-ratelimit-remaining") {
        head.push_str("x-ratelimit-limit: 5000\r\nx-ratelimit-remaining: 4999\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
    head.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    out.write_all(head.as_bytes())?;
    out.write_all(&r.body)?;
    out.flush()
}

/// Splits `path?query` and decodes the query into pairs.
fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect();
    (path.to_string(), pairs)
}

fn percent_decode(s: &str) -> String {
    decode(s, false)
}

/// Percent-decoding; `plus_as_space` only for query strings (form encoding).
fn decode(s: &str, plus_as_space: bool) -> String {
    let b = s.as_bytes();
    let hexval = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = if b[i] == b'%' && i + 2 < b.len() {
            hexval(b[i + 1])
                .zip(hexval(b[i + 2]))
                .map(|(h, l)| h * 16 + l)
        } else {
            None
        };
        match (escaped, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
            }
            (None, b'+') if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            (None, c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// GitHub renames assets whose names have characters outside a safe set; the
/// fake does the same so a client that trusts its local name notices.
fn sanitize_asset_name(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+') {
                c
            } else {
                '.'
            }
        })
        .collect();
    replaced.trim_matches('.').to_string()
}

/// RFC 3339 UTC timestamp for the fake clock.
fn timestamp(secs: u64) -> String {
    jiff::Timestamp::from_second(secs as i64)
        .expect("the fake clock is in range")
        .to_string()
}

fn release_view(r: &ReleaseState) -> ReleaseView {
    ReleaseView {
        id: r.id,
        tag: r.tag.clone(),
        name: r.name.clone(),
        body: r.body.clone(),
        draft: r.draft,
        prerelease: r.prerelease,
        assets: r
            .assets
            .iter()
            .map(|a| AssetView {
                id: a.id,
                name: a.name.clone(),
                size: a.size,
                digest: a.digest.clone(),
            })
            .collect(),
    }
}

impl State {
    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn now(&self) -> u64 {
        EPOCH_START + self.requests
    }
}

struct Urls<'a> {
    api: &'a str,
    upload: &'a str,
    owner: &'a str,
    repo: &'a str,
}

fn user_json() -> Value {
    json!({"login": "octo-bot", "id": 1, "type": "User", "site_admin": false})
}

fn asset_json(u: &Urls, r: &ReleaseState, a: &AssetState) -> Value {
    json!({
        "url": format!("{}/repos/{}/{}/releases/assets/{}", u.api, u.owner, u.repo, a.id),
        "id": a.id,
        "node_id": format!("RA_{}", a.id),
        "name": a.name,
        "label": a.label,
        "uploader": user_json(),
        "content_type": a.content_type,
        "state": "uploaded",
        "size": a.size,
        "digest": a.digest,
        "download_count": 0,
        "created_at": timestamp(a.created_at),
        "updated_at": timestamp(a.created_at),
        "browser_download_url": format!("https://github.com/{}/{}/releases/download/{}/{}", u.owner, u.repo, r.tag, a.name),
    })
}

fn release_json(u: &Urls, r: &ReleaseState) -> Value {
    // GitHub shows drafts under an "untagged-…" URL until they are published.
    let html_url = if r.draft {
        format!(
            "https://github.com/{}/{}/releases/tag/untagged-{}",
            u.owner, u.repo, r.id
        )
    } else {
        format!(
            "https://github.com/{}/{}/releases/tag/{}",
            u.owner, u.repo, r.tag
        )
    };
    json!({
        "url": format!("{}/repos/{}/{}/releases/{}", u.api, u.owner, u.repo, r.id),
        "assets_url": format!("{}/repos/{}/{}/releases/{}/assets", u.api, u.owner, u.repo, r.id),
        "upload_url": format!("{}/repos/{}/{}/releases/{}/assets{{?name,label}}", u.upload, u.owner, u.repo, r.id),
        "html_url": html_url,
        "id": r.id,
        "node_id": format!("RE_{}", r.id),
        "author": user_json(),
        "tag_name": r.tag,
        "target_commitish": r.target,
        "name": r.name,
        "body": r.body,
        "draft": r.draft,
        "prerelease": r.prerelease,
        "created_at": timestamp(r.created_at),
        "published_at": r.published_at.map(timestamp),
        "assets": r.assets.iter().map(|a| asset_json(u, r, a)).collect::<Vec<_>>(),
        "tarball_url": format!("{}/repos/{}/{}/tarball/{}", u.api, u.owner, u.repo, r.tag),
        "zipball_url": format!("{}/repos/{}/{}/zipball/{}", u.api, u.owner, u.repo, r.tag),
    })
}

/// Applies GitHub's pagination (`per_page`, `page`, `Link`) to a list.
fn paginate(items: Vec<Value>, query: &[(String, String)], link_base: &str) -> Response {
    let get = |k: &str| {
        query
            .iter()
            .find(|(q, _)| q == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = get("per_page")
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let page = get("page").unwrap_or(1).max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let mut r = Response::json(200, Value::Array(slice));
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "<{link_base}?per_page={per_page}&page={}>; rel=\"next\"",
            page + 1
        ));
        links.push(format!(
            "<{link_base}?per_page={per_page}&page={last}>; rel=\"last\""
        ));
    }
    if page > 1 {
        links.push(format!(
            "<{link_base}?per_page={per_page}&page={}>; rel=\"prev\"",
            page - 1
        ));
    }
    if !links.is_empty() {
        r.headers.push(("Link".into(), links.join(", ")));
    }
    r
}

/// The subject digests (`sha256:<hex>`) and predicate type of a bundle's DSSE statement, as
/// GitHub indexes them; `None` when the bundle holds no in-toto statement.
fn attestation_subjects(bundle: &Value) -> Option<(Vec<String>, String)> {
    use base64::Engine as _;
    let payload = bundle["dsseEnvelope"]["payload"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let statement: Value = serde_json::from_slice(&bytes).ok()?;
    let subjects: Vec<String> = statement["subject"]
        .as_array()?
        .iter()
        .filter_map(|s| s["digest"]["sha256"].as_str())
        .map(|d| format!("sha256:{d}"))
        .collect();
    let predicate_type = statement["predicateType"].as_str()?.to_string();
    (!subjects.is_empty()).then_some((subjects, predicate_type))
}

/// Routes one request and applies its effect to the state.
fn handle(
    shared: &Shared,
    which: Listener,
    head: &Head,
    body: &Body,
    has_length: bool,
) -> Response {
    let mut st = lock(&shared.state);
    let token = head.header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("token "))
            .map(str::trim)
    });
    // Public repositories answer reads without a token, as GitHub does (the storage redirect
    // target needs none either); a token it does not know is refused even for reads.
    let push = match token.map(|t| st.tokens.get(t).copied()) {
        Some(Some(push)) => push,
        Some(None) => return Response::error(401, "Bad credentials"),
        None if (st.public || which == Listener::Uploads) && head.method == "GET" => false,
        None => return Response::error(401, "Bad credentials"),
    };
    // A client sent through a proxy (gh with `HTTP_PROXY`) names the absolute URL.
    let target = match head.target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => head.target.as_str(),
    };
    let (full_path, query) = split_target(target);
    let prefix = match which {
        Listener::Api => &shared.api_prefix,
        Listener::Uploads => &shared.upload_prefix,
    };
    let Some(path) = full_path.strip_prefix(prefix.as_str()) else {
        return Response::error(404, "Not Found");
    };
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    if segs.len() < 3 || segs[0] != "repos" {
        return Response::error(404, "Not Found");
    }
    let (owner, repo_name) = (segs[1].clone(), segs[2].clone());
    let Some(repo_idx) = st.repos.iter().position(|r| {
        r.owner.eq_ignore_ascii_case(&owner) && r.name.eq_ignore_ascii_case(&repo_name)
    }) else {
        return Response::error(404, "Not Found");
    };
    let now = st.now();
    let immutable = st.immutable;
    let method = head.method.as_str();
    let rest: Vec<&str> = segs[3..].iter().map(String::as_str).collect();
    let mutating = matches!(method, "POST" | "PATCH" | "DELETE" | "PUT");
    // Taken before borrowing the repo mutably; at most one id per request.
    let new_id = if mutating { st.fresh_id() } else { 0 };
    let (owner, repo_name) = (
        st.repos[repo_idx].owner.clone(),
        st.repos[repo_idx].name.clone(),
    );
    let repo_id = st.repos[repo_idx].id;
    let urls = Urls {
        api: &shared.api_base,
        upload: &shared.advertised_upload,
        owner: &owner,
        repo: &repo_name,
    };
    let attestations_refused = st.attestations_refused;
    let repo = &mut st.repos[repo_idx];
    if mutating && !push {
        return Response::error(403, "Resource not accessible by personal access token");
    }
    let parse_json = || -> Result<Value, Response> {
        if body.too_large {
            return Err(Response::error(413, "Payload too large"));
        }
        if body.bytes.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&body.bytes)
            .map_err(|_| Response::error(400, "Problems parsing JSON"))
    };

    if which == Listener::Uploads && method == "GET" {
        // Where an asset download redirects to (GitHub's object storage): no token needed, as
        // GitHub's redirect is a signed URL that only a reader allowed to see the asset (a
        // draft's too, for a token with push access) is given.
        let ["releases", "assets", id, "content"] = rest.as_slice() else {
            return Response::error(404, "Not Found");
        };
        let id = id.parse::<u64>().unwrap_or(0);
        let asset = repo
            .releases
            .iter()
            .flat_map(|r| &r.assets)
            .find(|a| a.id == id);
        return match asset.and_then(|a| a.content.clone()) {
            Some(bytes) => Response {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: bytes,
            },
            None => Response::error(404, "Not Found"),
        };
    }
    if which == Listener::Uploads {
        // POST /repos/o/r/releases/{id}/assets?name=N[&label=L]
        let (["releases", id, "assets"], "POST") = (rest.as_slice(), method) else {
            return Response::error(404, "Not Found");
        };
        let Ok(id) = id.parse::<u64>() else {
            return Response::error(404, "Not Found");
        };
        let Some(rel) = repo.releases.iter_mut().find(|r| r.id == id) else {
            return Response::error(404, "Not Found");
        };
        if !has_length {
            return Response::error(411, "Length Required: Content-Length header is required");
        }
        if immutable && !rel.draft {
            return Response::error(422, "Cannot upload assets to an immutable release.");
        }
        let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
        let Some(raw_name) = get("name").filter(|n| !n.is_empty()) else {
            return Response::validation("ReleaseAsset", "missing_field", "name");
        };
        let name = sanitize_asset_name(&raw_name);
        if rel.assets.iter().any(|a| a.name == name) {
            return Response::validation("ReleaseAsset", "already_exists", "name");
        }
        let asset = AssetState {
            id: new_id,
            name,
            label: get("label").unwrap_or_default(),
            size: body.size,
            digest: format!("sha256:{}", body.sha256),
            content_type: head
                .header("content-type")
                .unwrap_or("application/octet-stream")
                .to_string(),
            created_at: now,
            content: (!body.too_large).then(|| body.bytes.clone()),
        };
        rel.assets.push(asset.clone());
        return Response::json(201, asset_json(&urls, rel, &asset));
    }

    if rest.first() == Some(&"attestations") {
        if let Some(status) = attestations_refused {
            // GitHub's answers for a repository whose plan lacks the feature.
            return match status {
                403 => Response::error(
                    403,
                    "Feature not available for user-owned private repositories on this plan.",
                ),
                _ => Response::error(404, "Not Found"),
            };
        }
        return match (method, &rest[1..]) {
            ("POST", []) => {
                let v = match parse_json() {
                    Ok(v) => v,
                    Err(r) => return r,
                };
                match attestation_subjects(&v["bundle"]) {
                    Some((subjects, predicate_type)) => {
                        repo.attestations.push(AttestationState {
                            id: new_id,
                            bundle: v["bundle"].clone(),
                            subjects,
                            predicate_type,
                        });
                        Response::json(201, json!({ "id": new_id }))
                    }
                    None => Response::validation("Attestation", "invalid", "bundle"),
                }
            }
            ("GET", [digest]) => {
                let wanted_type = query
                    .iter()
                    .find(|(k, _)| k == "predicate_type")
                    .map(|(_, v)| v.clone());
                let items: Vec<Value> = repo
                    .attestations
                    .iter()
                    .filter(|a| a.subjects.iter().any(|s| s == digest))
                    .filter(|a| wanted_type.as_ref().is_none_or(|t| *t == a.predicate_type))
                    // Uploaded through the API, so initiated by a user (gh 2.103 only
                    // considers those: an answer without it reads as "no attestations").
                    .map(|a| {
                        json!({
                            "bundle": a.bundle,
                            "repository_id": repo_id,
                            "bundle_url": null,
                            "initiator": "user",
                        })
                    })
                    .collect();
                if items.is_empty() {
                    return Response::error(404, "Not Found");
                }
                let mut page = paginate(
                    items,
                    &query,
                    &format!(
                        "{}/repos/{owner}/{repo_name}/attestations/{digest}",
                        urls.api
                    ),
                );
                let list: Value = serde_json::from_slice(&page.body).expect("json");
                page.body = serde_json::to_vec(&json!({ "attestations": list })).expect("json");
                page
            }
            _ => Response::error(404, "Not Found"),
        };
    }

    match (method, rest.as_slice()) {
        ("GET", []) => Response::json(
            200,
            json!({
                "id": repo_id,
                "node_id": format!("R_{repo_id}"),
                "name": repo_name,
                "full_name": format!("{owner}/{repo_name}"),
                "private": false,
                "owner": {"login": owner, "id": 2, "type": "Organization"},
                "html_url": format!("https://github.com/{owner}/{repo_name}"),
                "default_branch": "main",
                "permissions": {"admin": false, "maintain": push, "push": push, "triage": push, "pull": true},
            }),
        ),
        ("GET", ["releases"]) => {
            // Drafts are visible only to users with push access.
            let items = repo
                .releases
                .iter()
                .rev()
                .filter(|r| push || !r.draft)
                .map(|r| release_json(&urls, r))
                .collect();
            paginate(
                items,
                &query,
                &format!("{}/repos/{owner}/{repo_name}/releases", urls.api),
            )
        }
        ("POST", ["releases"]) => {
            let v = match parse_json() {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(tag) = v["tag_name"].as_str().filter(|t| !t.is_empty()) else {
                return Response::validation("Release", "missing_field", "tag_name");
            };
            let draft = v["draft"].as_bool().unwrap_or(false);
            // Drafts may share a tag; only a published release holds it.
            if !draft && repo.releases.iter().any(|r| !r.draft && r.tag == tag) {
                return Response::validation("Release", "already_exists", "tag_name");
            }
            let rel = ReleaseState {
                id: new_id,
                tag: tag.to_string(),
                target: v["target_commitish"].as_str().unwrap_or("main").to_string(),
                name: v["name"].as_str().unwrap_or(tag).to_string(),
                body: v["body"].as_str().unwrap_or("").to_string(),
                draft,
                prerelease: v["prerelease"].as_bool().unwrap_or(false),
                created_at: now,
                published_at: (!draft).then_some(now),
                assets: Vec::new(),
            };
            let out = release_json(&urls, &rel);
            repo.releases.push(rel);
            Response::json(201, out)
        }
        ("GET", ["releases", "tags", tag @ ..]) if !tag.is_empty() => {
            // Drafts are never found by tag, exactly as on GitHub.
            let tag = tag.join("/");
            match repo
                .releases
                .iter()
                .rev()
                .find(|r| !r.draft && r.tag == tag)
            {
                Some(r) => Response::json(200, release_json(&urls, r)),
                None => Response::error(404, "Not Found"),
            }
        }
        ("GET", ["releases", "assets", id]) => {
            let id = id.parse::<u64>().unwrap_or(0);
            let download = head
                .header("accept")
                .is_some_and(|a| a.contains("application/octet-stream"));
            for r in repo.releases.iter().filter(|r| push || !r.draft) {
                if let Some(a) = r.assets.iter().find(|a| a.id == id) {
                    if download {
                        // GitHub redirects a download to its object storage, another host.
                        return Response {
                            status: 302,
                            headers: vec![(
                                "Location".into(),
                                format!(
                                    "{}/repos/{owner}/{repo_name}/releases/assets/{id}/content",
                                    shared.upload_base
                                ),
                            )],
                            body: Vec::new(),
                        };
                    }
                    return Response::json(200, asset_json(&urls, r, a));
                }
            }
            Response::error(404, "Not Found")
        }
        ("DELETE", ["releases", "assets", id]) => {
            let id = id.parse::<u64>().unwrap_or(0);
            for r in repo.releases.iter_mut() {
                if let Some(pos) = r.assets.iter().position(|a| a.id == id) {
                    if immutable && !r.draft {
                        return Response::error(
                            422,
                            "Cannot delete assets from an immutable release.",
                        );
                    }
                    r.assets.remove(pos);
                    return Response::no_content();
                }
            }
            Response::error(404, "Not Found")
        }
        ("GET", ["releases", id]) => {
            let id = id.parse::<u64>().unwrap_or(0);
            match repo
                .releases
                .iter()
                .find(|r| r.id == id && (push || !r.draft))
            {
                Some(r) => Response::json(200, release_json(&urls, r)),
                None => Response::error(404, "Not Found"),
            }
        }
        ("PATCH", ["releases", id]) => {
            let id = id.parse::<u64>().unwrap_or(0);
            let v = match parse_json() {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(pos) = repo.releases.iter().position(|r| r.id == id) else {
                return Response::error(404, "Not Found");
            };
            let current = repo.releases[pos].clone();
            let new_tag = v["tag_name"].as_str().unwrap_or(&current.tag).to_string();
            let new_draft = v["draft"].as_bool().unwrap_or(current.draft);
            if immutable && !current.draft && (new_draft || new_tag != current.tag) {
                return Response::error(
                    422,
                    "Cannot modify the tag or draft state of an immutable release.",
                );
            }
            if !new_draft
                && repo
                    .releases
                    .iter()
                    .any(|r| r.id != id && !r.draft && r.tag == new_tag)
            {
                return Response::validation("Release", "already_exists", "tag_name");
            }
            let rel = &mut repo.releases[pos];
            rel.tag = new_tag;
            if let Some(n) = v["name"].as_str() {
                rel.name = n.to_string();
            }
            if let Some(b) = v["body"].as_str() {
                rel.body = b.to_string();
            }
            if let Some(p) = v["prerelease"].as_bool() {
                rel.prerelease = p;
            }
            if rel.draft && !new_draft {
                rel.published_at = Some(now);
            }
            rel.draft = new_draft;
            Response::json(200, release_json(&urls, rel))
        }
        ("GET", ["releases", id, "assets"]) => {
            let id = id.parse::<u64>().unwrap_or(0);
            match repo
                .releases
                .iter()
                .find(|r| r.id == id && (push || !r.draft))
            {
                Some(r) => {
                    let items = r.assets.iter().map(|a| asset_json(&urls, r, a)).collect();
                    paginate(
                        items,
                        &query,
                        &format!(
                            "{}/repos/{owner}/{repo_name}/releases/{id}/assets",
                            urls.api
                        ),
                    )
                }
                None => Response::error(404, "Not Found"),
            }
        }
        _ => Response::error(404, "Not Found"),
    }
}
