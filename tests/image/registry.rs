//! Debian's `docker-registry` (distribution 2.8.2) on 127.0.0.1 with htpasswd auth, for the
//! tests that push. The port is chosen by the OS; the credentials are made here, written to
//! htpasswd (bcrypt) and a docker config.json, and never printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const USER: &str = "releaser";

pub struct TestRegistry {
    pub host: String,
    password: String,
    dir: tempfile::TempDir,
    _child: Child,
}

impl TestRegistry {
    /// A directory for `DOCKER_CONFIG` whose config.json logs in to this registry.
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    pub fn auth(&self) -> oci_client::secrets::RegistryAuth {
        oci_client::secrets::RegistryAuth::Basic(USER.into(), self.password.clone())
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn client(&self) -> oci_client::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        oci_client::Client::new(oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::Http,
            ..Default::default()
        })
    }
}

/// One registry for the whole test binary. It runs under a shell that kills it when this
/// process's end of its stdin closes, so it never outlives the tests.
pub fn registry() -> &'static TestRegistry {
    static REGISTRY: OnceLock<TestRegistry> = OnceLock::new();
    REGISTRY.get_or_init(start)
}

fn start() -> TestRegistry {
    let dir = tempfile::tempdir().unwrap();
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let htpasswd = Command::new("htpasswd")
        .args(["-Bbn", USER, &password])
        .output()
        .expect("htpasswd is installed (apache2-utils, scripts/setup.sh)");
    assert!(htpasswd.status.success());
    std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let host = format!("127.0.0.1:{port}");
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n  secret: {}\nauth:\n  htpasswd:\n    realm: xrelease-test\n    path: {}\n",
        dir.path().join("data").display(),
        uuid::Uuid::new_v4().simple(),
        dir.path().join("htpasswd").display()
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("docker-registry serve \"$1\" >\"$2\" 2>&1 & pid=$!; read _ignored; kill $pid")
        .arg("sh")
        .arg(&config_path)
        .arg(dir.path().join("registry.log"))
        .stdin(Stdio::piped())
        .spawn()
        .expect("docker-registry is installed (scripts/setup.sh)");
    // Keep the write end open for the life of the process: closing it stops the registry.
    let stdin = child.stdin.take().unwrap();
    std::mem::forget(stdin);
    wait_ready(&host, dir.path());
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64_encode(format!("{USER}:{password}").as_bytes());
    let mut file = std::fs::File::create(docker.join("config.json")).unwrap();
    write!(file, "{{\"auths\":{{\"{host}\":{{\"auth\":\"{auth}\"}}}}}}").unwrap();
    TestRegistry {
        host,
        password,
        dir,
        _child: child,
    }
}

fn wait_ready(host: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(host) {
            let _ = write!(stream, "GET /v2/ HTTP/1.0\r\n\r\n");
            let mut head = [0u8; 12];
            if std::io::Read::read_exact(&mut stream, &mut head).is_ok() && &head[9..12] == b"401" {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "docker-registry did not start: {}",
        std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
