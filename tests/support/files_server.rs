//! Test support: a static file server on 127.0.0.1 (an OS-chosen port) over one directory,
//! standing in for a GitHub Release's download URL. `GET /NAME` answers the file's bytes,
//! 404 when there is none; every request path is logged.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct FilesServer {
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FilesServer {
    /// Serves the files of `root` (read at each request, so a test may change them).
    pub fn start(root: &Path) -> FilesServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, log) = (root.to_path_buf(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, log) = (root.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, &log);
                });
            }
        });
        FilesServer { url, requests }
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, root: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // The rest of the head is read and ignored (one request per connection).
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    log.lock().unwrap().push(path.to_string());
    let name = path.trim_start_matches('/');
    let file: Option<PathBuf> =
        (method == "GET" && !name.is_empty() && !name.contains('/') && !name.contains(".."))
            .then(|| root.join(name))
            .filter(|p| p.is_file());
    let mut stream = stream;
    match file.and_then(|p| std::fs::read(p).ok()) {
        Some(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        None => {
            let body = b"not found\n";
            write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
    }
    stream.flush()
}
