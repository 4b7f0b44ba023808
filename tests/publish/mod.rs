//! Publishing to GitHub against a local GitHub API server (127.0.0.1, OS-chosen ports): the
//! client with a fault at every request, and releases through the real binary.

mod client;
pub(crate) mod release;
