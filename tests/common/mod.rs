//! Test harness: runs the real binary and real servers on 127.0.0.1.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

pub const EXAMPLE: &str = "examples/acme/config";
pub const DATA: &str = "examples/acme/config/data";

/// The `mailrules` binary with a clean environment for its variables.
pub fn mailrules() -> Command {
    let mut command = Command::cargo_bin("mailrules").expect("the binary is built");
    command
        .env_remove("MAILRULES_CONFIG")
        .env_remove("MAILRULES_OUTBOX")
        .env_remove("MAILRULES_TRANSPORT_OVERRIDE");
    command
}

/// Output of a finished command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(command: &mut Command) -> Run {
    let output = command.output().expect("mailrules runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The example's invoice data (`data/sales_invoice.json`).
pub fn invoice_data() -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{DATA}/sales_invoice.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A request for one acme-nl invoice to `to`, as a batch line or an API
/// body; `extra` adds or replaces fields.
pub fn invoice_request(to: &str, extra: serde_json::Value) -> String {
    let mut request = serde_json::json!({
        "administration": "acme-nl",
        "user": "anna",
        "process": "sales_invoice",
        "to": [to],
        "data": invoice_data(),
    });
    if let (Some(request), serde_json::Value::Object(extra)) = (request.as_object_mut(), extra) {
        request.extend(extra);
    }
    request.to_string()
}

/// A batch file of `count` invoices (ids inv-1, inv-2, ...) in `dir`.
pub fn invoices(dir: &Path, count: usize) -> PathBuf {
    let lines: Vec<String> = (1..=count)
        .map(|n| {
            let extra = serde_json::json!({"id": format!("inv-{n}"), "language": "nl"});
            invoice_request(&format!("Klant {n} <klant{n}@example.com>"), extra)
        })
        .collect();
    let path = dir.join("invoices.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A copy of examples/acme (config, data, tests) to edit: `<dir>/acme`.
pub fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new("cp")
        .args(["-r", "examples/acme"])
        .arg(dir.path())
        .status()
        .expect("cp runs");
    assert!(status.success());
    dir
}

/// Replaces the first `from` in a file; the test fails if it is not there.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "`{from}` in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Received {
    /// The Message-ID header's value.
    pub fn message_id(&self) -> String {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .and_then(|m| m.message_id().map(|id| format!("<{id}>")))
            .expect("a Message-ID")
    }
}

/// A message the SMTP test server accepted.
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub auth_user: Option<String>,
    pub tls: bool,
    /// The server's number for the connection that carried the message.
    pub connection: u64,
    pub data: Vec<u8>,
}

/// `tests/servers/smtp_server.py` (aiosmtpd) on 127.0.0.1, stopped on drop.
pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

pub const SMTP_USER: &str = "mailer";
pub const SMTP_PASSWORD: &str = "correct-horse-42";

impl SmtpServer {
    /// `security`: `starttls` or `tls`.
    pub fn start(security: &str) -> SmtpServer {
        SmtpServer::start_with(security, &[])
    }

    /// With extra arguments of the server script (scripted replies).
    pub fn start_with(security: &str, extra: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        SmtpServer::start_in(dir, free_port(), security, extra)
    }

    /// In `dir` (its certificate is `dir/cert.pem`) on a given port: a
    /// server that comes up where a client already tried to connect.
    pub fn start_in(
        dir: tempfile::TempDir,
        port: u16,
        security: &str,
        extra: &[&str],
    ) -> SmtpServer {
        let child = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/smtp_server.py"))
            .args([
                "--port",
                &port.to_string(),
                "--security",
                security,
                "--user",
                SMTP_USER,
            ])
            .args(["--password-env", "TEST_SMTP_PASSWORD"])
            .args(extra)
            .arg("--spool")
            .arg(dir.path().join("spool"))
            .arg("--cert-dir")
            .arg(dir.path())
            .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs the SMTP test server (apt-get install python3-aiosmtpd)");
        let server = SmtpServer { port, dir, child };
        server.wait_ready(security);
        server
    }

    /// Ready means the 220 banner arrived, not just an open port.
    fn wait_ready(&self, security: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.dir.path().join("cert.pem").exists()
                && let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port))
            {
                if security == "tls" {
                    return; // the banner is inside TLS; the listener is up
                }
                stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("220") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the SMTP test server did not start on port {}", self.port);
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// A `--transport-override` file pointing at this server.
    pub fn override_file(&self, security: &str, password_env: &str) -> PathBuf {
        let path = self.dir.path().join("override.yaml");
        let text = format!(
            "smtp:\n  host: localhost\n  port: {}\n  security: {security}\n  ca_file: {}\n  auth:\n    username: {SMTP_USER}\n    password: {{env: {password_env}}}\n",
            self.port,
            self.ca_file().display()
        );
        std::fs::write(&path, text).expect("write override");
        path
    }

    /// Messages received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        let spool = self.dir.path().join("spool");
        let Ok(entries) = std::fs::read_dir(&spool) else {
            return Vec::new();
        };
        let mut metas: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        metas.sort();
        metas
            .into_iter()
            .map(|meta| {
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
                Received {
                    mail_from: json["mail_from"].as_str().unwrap().to_string(),
                    rcpt_to: json["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect(),
                    auth_user: json["auth_user"].as_str().map(str::to_string),
                    tls: json["tls"].as_bool().unwrap(),
                    connection: json["connection"].as_u64().unwrap(),
                    data: std::fs::read(meta.with_extension("eml")).unwrap(),
                }
            })
            .collect()
    }
}

impl SmtpServer {
    /// Stops the server at once (SIGKILL), as a crash would; the spool stays.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mailrules serve` on 127.0.0.1 (a free port), stopped on drop.
pub struct Daemon {
    pub url: String,
    child: Child,
    logs: tempfile::NamedTempFile,
    agent: ureq::Agent,
    token: Option<String>,
}

/// A response of the daemon: status and JSON body (`Null` for text).
pub struct Reply {
    pub status: u16,
    pub json: serde_json::Value,
    pub text: String,
}

impl Daemon {
    /// Starts the daemon on `config` and waits until it listens; extra
    /// arguments go after `serve`.
    pub fn start(config: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_with(config, extra, &[])
    }

    pub fn start_with(config: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn(config, extra, env, None)
    }

    /// Started in `dir`, so that a relative `config` is taken from there.
    pub fn start_in(dir: &Path, config: &Path, extra: &[&str]) -> Daemon {
        Daemon::spawn(config, extra, &[], Some(dir))
    }

    fn spawn(config: &Path, extra: &[&str], env: &[(&str, &str)], dir: Option<&Path>) -> Daemon {
        let logs = tempfile::NamedTempFile::new().expect("log file");
        let mut command = mailrules();
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .env("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(logs.reopen().expect("log file"))
            .spawn()
            .expect("mailrules serve runs");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        BufReader::new(stdout).read_line(&mut line).ok();
        let Some(url) = line.trim().strip_prefix("mailrules serve: listening on ") else {
            let _ = child.kill();
            panic!(
                "the daemon did not start: {line}\n{}",
                std::fs::read_to_string(logs.path()).unwrap_or_default()
            );
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let token = env
            .iter()
            .find(|(name, _)| *name == "TEST_API_TOKEN")
            .map(|(_, value)| value.to_string());
        Daemon {
            url: url.to_string(),
            child,
            logs,
            agent,
            token,
        }
    }

    fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("the daemon answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply { status, json, text }
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        let request = self.authorized(self.agent.get(format!("{}{path}", self.url)));
        Daemon::reply(request.call())
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        let request = self.authorized(self.agent.post(format!("{}{path}", self.url)));
        Daemon::reply(request.send(body))
    }

    /// A POST with an `Idempotency-Key` header.
    pub fn post_keyed(&self, path: &str, body: &str, key: &str) -> Reply {
        let request = self.authorized(self.agent.post(format!("{}{path}", self.url)));
        Daemon::reply(request.header("Idempotency-Key", key).send(body))
    }

    /// The same, but a refused connection (a daemon killed) is `None`.
    pub fn try_post_keyed(&self, path: &str, body: &str, key: &str) -> Option<Reply> {
        let request = self.authorized(self.agent.post(format!("{}{path}", self.url)));
        let response = request.header("Idempotency-Key", key).send(body);
        response.is_ok().then(|| Daemon::reply(response))
    }

    pub fn generation(&self) -> u64 {
        self.get("/v1/config").json["generation"]
            .as_u64()
            .expect("a generation")
    }

    /// Polls `GET /v1/config` until `done` holds (10 s at most).
    pub fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let config = self.get("/v1/config").json;
            if done(&config) {
                return config;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited 10 s for {what}; config: {config}\nlogs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.logs.path()).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// The exit code, once the daemon has stopped (10 s at most).
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/servers/token_server.py`: an OAuth 2.0 token endpoint on
/// 127.0.0.1 shaped like Microsoft's, stopped on drop.
pub struct TokenServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

pub const OAUTH_TENANT: &str = "contoso.onmicrosoft.com";
pub const OAUTH_CLIENT_ID: &str = "0b1c2d3e-mailrules-test";
pub const OAUTH_CLIENT_SECRET: &str = "client-s3cret-for-tests";
pub const OAUTH_REFRESH_TOKEN: &str = "refresh-t0ken-for-tests";

impl TokenServer {
    /// Tokens live `expires_in` seconds; `extra`: `--no-consent`, `--delay S`.
    pub fn start(expires_in: u32, extra: &[&str]) -> TokenServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/token_server.py"))
            .args(["--port", &port.to_string(), "--tenant", OAUTH_TENANT])
            .args(["--client-id", OAUTH_CLIENT_ID])
            .args(["--client-secret-env", "TEST_OAUTH_CLIENT_SECRET"])
            .args(["--refresh-token-env", "TEST_OAUTH_REFRESH_TOKEN"])
            .args(["--expires-in", &expires_in.to_string()])
            .arg("--tokens")
            .arg(dir.path().join("tokens.txt"))
            .arg("--log")
            .arg(dir.path().join("requests.log"))
            .args(extra)
            .env("TEST_OAUTH_CLIENT_SECRET", OAUTH_CLIENT_SECRET)
            .env("TEST_OAUTH_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the token test server");
        let mut server = TokenServer { port, dir, child };
        let mut line = String::new();
        let stdout = server.child.stdout.take().expect("piped");
        BufReader::new(stdout).read_line(&mut line).ok();
        assert!(
            line.starts_with("listening"),
            "the token server did not start: {line}"
        );
        server
    }

    /// The token endpoint of `tenant`.
    pub fn url(&self, tenant: &str) -> String {
        format!("http://127.0.0.1:{}/{tenant}/oauth2/v2.0/token", self.port)
    }

    /// The file of issued tokens, for the SMTP server's `--xoauth2-tokens`.
    pub fn tokens_file(&self) -> PathBuf {
        self.dir.path().join("tokens.txt")
    }

    /// The grant type of every request so far.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Every AUTH XOAUTH2 attempt: (`accepted` or `refused`, user, token).
    pub fn xoauth2_logins(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(self.dir.path().join("spool/xoauth2.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut parts = line.splitn(3, ' ').map(str::to_string);
                let mut next = || parts.next().unwrap_or_default();
                (next(), next(), next())
            })
            .collect()
    }

    /// A `--transport-override` file pointing at this server, logging in
    /// as `user` with the XOAUTH2 token source `token` (YAML flow text).
    pub fn xoauth2_override(&self, user: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join("xoauth2-override.yaml");
        let text = format!(
            "smtp:\n  host: localhost\n  port: {}\n  security: starttls\n  ca_file: {}\n  auth:\n    mechanism: xoauth2\n    username: {user}\n    token: {token}\n",
            self.port,
            self.ca_file().display()
        );
        std::fs::write(&path, text).expect("write override");
        path
    }
}

/// Dovecot IMAP on 127.0.0.1 (implicit TLS), run by the test itself with
/// its own configuration, one user and a Maildir; stopped on drop.
pub struct ImapServer {
    /// Implicit TLS (imaps).
    pub port: u16,
    /// Plain IMAP that requires STARTTLS before a login.
    pub starttls_port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

pub const IMAP_USER: &str = "facturen";
pub const IMAP_PASSWORD: &str = "imap-s3cret-for-tests";

impl ImapServer {
    pub fn start() -> ImapServer {
        let mut server = ImapServer::prepare();
        server.run();
        server
    }

    /// Configured on a free port, not yet running (see [`ImapServer::run`]).
    pub fn prepare() -> ImapServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, starttls_port) = (free_port(), free_port());
        let root = dir.path();
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "keyUsage=digitalSignature,keyEncipherment"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(root.join("key.pem"))
            .arg("-out")
            .arg(root.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success());
        // Mail processes may not run as root: the user is `nobody`, and
        // owns the mail home. The users file is read by the `dovecot` group.
        let home = root.join("home");
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
        let users = root.join("users");
        std::fs::write(
            &users,
            format!(
                "{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}:65534:65534::{}::\n",
                home.display()
            ),
        )
        .unwrap();
        std::os::unix::fs::chown(&users, None, Some(group_id("dovecot"))).unwrap();
        let r = root.display();
        let config = format!(
            "base_dir = {r}/run\nstate_dir = {r}/state\nlog_path = {r}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\n\
             ssl = required\nssl_cert = <{r}/cert.pem\nssl_key = <{r}/key.pem\n\
             ssl_dh = </usr/share/dovecot/dh.pem\n\
             auth_mechanisms = plain login\nauth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {r}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {r}/users\n}}\n\
             mail_location = maildir:~/Maildir:LAYOUT=fs\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {starttls_port}\n  }}\n  \
             inet_listener imaps {{\n    port = {port}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n}}\n"
        );
        std::fs::write(root.join("dovecot.conf"), config).unwrap();
        ImapServer {
            port,
            starttls_port,
            dir,
            child: None,
        }
    }

    /// Starts Dovecot and waits until it accepts connections.
    pub fn run(&mut self) {
        let root = self.dir.path();
        // A socket left from an earlier run stalls the start.
        let _ = std::fs::remove_dir_all(root.join("run"));
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot runs (apt-get install dovecot-imapd; see scripts/install-deps)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Dovecot did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The messages in `folder`: (IMAP flags as Maildir letters, bytes).
    pub fn messages(&self, folder: &str) -> Vec<(String, Vec<u8>)> {
        let maildir = self.dir.path().join("home/Maildir").join(folder);
        let mut found = Vec::new();
        for part in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(maildir.join(part)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let flags = name
                    .split_once(":2,")
                    .map(|(_, f)| f.to_string())
                    .unwrap_or_default();
                found.push((flags, std::fs::read(entry.path()).unwrap()));
            }
        }
        found
    }
}

impl Drop for ImapServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A group's id, from /etc/group.
fn group_id(name: &str) -> u32 {
    std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(name)).then(|| fields.nth(1)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no group `{name}` (is dovecot-imapd installed?)"))
}
