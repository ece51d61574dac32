//! `mailrules serve` as a real daemon on 127.0.0.1, with real files changed
//! the ways editors, git and orchestrators change them. Every scenario
//! checks the config that ends up serving, and an observer asks the daemon
//! all the while which config serves, to prove no invalid one ever did.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Daemon, EXAMPLE, SmtpServer, invoice_request, mailrules, run};
use serde_json::json;

/// Short enough for quick tests, long enough that one save is one reload.
const DEBOUNCE: &str = "300ms";
/// Comfortably more than the debounce: time for a second reload to show.
const SETTLE: Duration = Duration::from_millis(900);

const EXPLAIN: &str =
    r#"{"administration": "acme-nl", "user": "anna", "process": "sales_invoice"}"#;

/// A copy of the example's config directory, in version `n`: the billing
/// sender reads `Acme Facturatie vN` and the invoice subject `Factuur vN`.
struct Config {
    _dir: tempfile::TempDir,
    path: PathBuf,
    profiles: String,
    invoice: String,
}

impl Config {
    fn new() -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        copy_dir(Path::new(EXAMPLE), &path);
        let profiles = std::fs::read_to_string(path.join("profiles.yaml")).unwrap();
        let invoice = std::fs::read_to_string(path.join("templates/sales_invoice.yaml")).unwrap();
        let config = Config {
            _dir: dir,
            path,
            profiles,
            invoice,
        };
        config.write_version(&config.path, 1);
        config
    }

    fn profiles_text(&self, version: u32) -> String {
        let from = "Acme Facturatie <facturen@acme.nl>";
        assert!(self.profiles.contains(from));
        self.profiles.replace(
            from,
            &format!("Acme Facturatie v{version} <facturen@acme.nl>"),
        )
    }

    fn invoice_text(&self, version: u32) -> String {
        let subject = "subject: \"Factuur {{";
        assert!(self.invoice.contains(subject));
        self.invoice
            .replacen(subject, &format!("subject: \"Factuur v{version} {{{{"), 1)
    }

    /// Both files of version `n` into `dir` (plain writes).
    fn write_version(&self, dir: &Path, version: u32) {
        std::fs::write(dir.join("profiles.yaml"), self.profiles_text(version)).unwrap();
        std::fs::write(
            dir.join("templates/sales_invoice.yaml"),
            self.invoice_text(version),
        )
        .unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The sender of the serving config, as `explain` tells it.
fn served_from(daemon: &Daemon) -> String {
    let reply = daemon.post("/v1/explain", EXPLAIN);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["fields"]["from"]["value"]
        .as_str()
        .unwrap()
        .to_string()
}

fn version_name(version: u32) -> String {
    format!("Acme Facturatie v{version} <facturen@acme.nl>")
}

/// Asks the daemon which config serves, as fast as it answers, until
/// stopped; returns every sender seen. A failed explain is recorded too.
struct Observer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<BTreeSet<String>>,
}

impl Observer {
    fn start(url: &str) -> Observer {
        let stop = Arc::new(AtomicBool::new(false));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{url}/v1/explain");
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !stopped.load(Ordering::Relaxed) {
                let mut response = agent.post(&url).send(EXPLAIN).unwrap();
                let text = response.body_mut().read_to_string().unwrap();
                let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                match json["fields"]["from"]["value"].as_str() {
                    Some(from) => seen.insert(from.to_string()),
                    None => seen.insert(format!("explain failed: {text}")),
                };
            }
            seen
        });
        Observer { stop, thread }
    }

    /// Stops, and checks that every config seen was one of the valid ones.
    fn assert_only(self, versions: &[u32]) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().unwrap();
        let allowed: BTreeSet<String> = versions.iter().map(|&v| version_name(v)).collect();
        assert!(!seen.is_empty(), "the observer saw no answer at all");
        assert!(
            seen.is_subset(&allowed),
            "served something else than versions {versions:?}: {seen:?}"
        );
    }
}

fn wait_for_generation(daemon: &Daemon, generation: u64) -> serde_json::Value {
    daemon.wait_for(&format!("generation {generation}"), |c| {
        c["generation"] == generation
    })
}

/// The generation stays as it is for a while: one change was one reload.
fn assert_stays(daemon: &Daemon, generation: u64) {
    std::thread::sleep(SETTLE);
    assert_eq!(daemon.generation(), generation, "{}", daemon.logs());
}

/// Reloads so far with `outcome` (applied, rejected, unchanged), from
/// `/metrics`.
fn reloads_with(daemon: &Daemon, outcome: &str) -> u64 {
    let metrics = daemon.get("/metrics").text;
    let prefix = format!("mailrules_config_reloads_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{prefix} in\n{metrics}"))
        .parse()
        .unwrap()
}

/// Every reload so far, whatever its outcome: an event burst that caused
/// two reloads (the second one `unchanged`) shows here.
fn reloads(daemon: &Daemon) -> u64 {
    ["applied", "rejected", "unchanged"]
        .iter()
        .map(|outcome| reloads_with(daemon, outcome))
        .sum()
}

/// The configuration files under `dir` (not hidden), as `/v1/config`
/// counts them.
fn config_files(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            count += config_files(&entry.path());
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            count += 1;
        }
    }
    count
}

fn start(config: &Path, extra: &[&str]) -> Daemon {
    Daemon::start(config, &[&["--debounce", DEBOUNCE], extra].concat())
}

#[test]
fn an_invalid_config_is_refused_at_start() {
    let config = Config::new();
    std::fs::write(config.path.join("profiles.yaml"), "profiles: [\n").unwrap();
    let result = run(mailrules().arg("--config").arg(&config.path).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stdout.is_empty(),
        "never listened: {}",
        result.stdout
    );
    assert!(
        result.stderr.contains("profiles.yaml:2:1"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains("error: the configuration has"));
}

#[test]
fn editor_saves_apply_once_each_and_editor_files_are_ignored() {
    let config = Config::new();
    let daemon = start(&config.path, &[]);
    assert_eq!(served_from(&daemon), version_name(1));
    let observer = Observer::start(&daemon.url);
    let profiles = config.path.join("profiles.yaml");

    // Write a temporary file, then rename it over the real one (vim's
    // `backupcopy=no`, most IDEs, configuration management tools).
    let temporary = config.path.join("profiles.yaml.tmp");
    std::fs::write(&temporary, config.profiles_text(2)).unwrap();
    std::fs::rename(&temporary, &profiles).unwrap();
    wait_for_generation(&daemon, 2);
    assert_eq!(served_from(&daemon), version_name(2));
    assert_stays(&daemon, 2);
    assert_eq!(reloads(&daemon), 1, "one save, one reload");

    // Truncate, then write (nano, `>` in a shell): the empty file in
    // between is no config and must never serve.
    let mut file = std::fs::File::create(&profiles).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::io::Write::write_all(&mut file, config.profiles_text(3).as_bytes()).unwrap();
    drop(file);
    wait_for_generation(&daemon, 3);
    assert_eq!(served_from(&daemon), version_name(3));
    assert_stays(&daemon, 3);
    assert_eq!(reloads(&daemon), 2, "one save, one reload");

    // Delete, then create.
    std::fs::remove_file(&profiles).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&profiles, config.profiles_text(4)).unwrap();
    wait_for_generation(&daemon, 4);
    assert_eq!(served_from(&daemon), version_name(4));
    assert_stays(&daemon, 4);
    assert_eq!(reloads(&daemon), 3, "one save, one reload");

    // Swap, backup and probe files of editors are not config: no reload.
    let last_reload = daemon.get("/v1/config").json["last_reload"].clone();
    for name in [
        ".profiles.yaml.swp",
        "profiles.yaml~",
        "4913",
        "#profiles.yaml#",
    ] {
        std::fs::write(config.path.join(name), "profiles: [\n").unwrap();
    }
    std::thread::sleep(SETTLE);
    let now = daemon.get("/v1/config").json;
    assert_eq!(now["last_reload"], last_reload, "no reload at all");
    assert_eq!(now["generation"], 4);
    assert_eq!(reloads(&daemon), 3);
    assert_eq!(reloads_with(&daemon, "rejected"), 0, "never a broken one");
    observer.assert_only(&[1, 2, 3, 4]);
}

/// The layout Kubernetes gives a mounted ConfigMap: the files are symlinks
/// into `..data`, itself a symlink to a hidden timestamped directory; an
/// update writes a new directory and swaps `..data` in one rename.
#[test]
fn a_swapped_volume_directory_is_picked_up_and_its_hidden_directories_are_not_config() {
    let config = Config::new();
    let volume = tempfile::tempdir().unwrap();
    let root = volume.path();
    let first = root.join("..2026_12_03_10_00_00.1");
    copy_dir(&config.path, &first);
    std::os::unix::fs::symlink(first.file_name().unwrap(), root.join("..data")).unwrap();
    let mut entries: Vec<String> = std::fs::read_dir(&config.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    for name in &entries {
        std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
    }
    let daemon = start(root, &[]);
    let files = daemon.get("/v1/config").json["files"].clone();
    assert_eq!(
        files,
        config_files(&config.path),
        "each file once, through its symlink; the hidden directories are not read"
    );
    let observer = Observer::start(&daemon.url);

    let second = root.join("..2026_12_03_10_05_00.2");
    copy_dir(&config.path, &second);
    config.write_version(&second, 2);
    std::os::unix::fs::symlink(second.file_name().unwrap(), root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();

    let served = wait_for_generation(&daemon, 2);
    assert_eq!(served_from(&daemon), version_name(2));
    assert_eq!(
        served["files"], files,
        "the hidden directories are not read as more config"
    );
    assert_stays(&daemon, 2);
    assert_eq!(reloads(&daemon), 1, "one swap, one reload");
    observer.assert_only(&[1, 2]);
}

fn git(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_git_checkout_of_many_files_is_one_reload() {
    let config = Config::new();
    let dir = &config.path;
    git(dir, &["init", "-q", "-b", "v1"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "v1"]);
    git(dir, &["checkout", "-qb", "v2"]);
    config.write_version(dir, 2);
    // More files change in the same checkout.
    for file in ["users.yaml", "administrations.yaml", "system.yaml"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n# changed with v2\n")).unwrap();
    }
    git(dir, &["commit", "-qam", "v2"]);
    git(dir, &["checkout", "-q", "v1"]);

    let daemon = start(dir, &[]);
    let observer = Observer::start(&daemon.url);
    git(dir, &["checkout", "-q", "v2"]);
    wait_for_generation(&daemon, 2);
    assert_eq!(served_from(&daemon), version_name(2));
    assert_stays(&daemon, 2);
    assert_eq!(
        reloads(&daemon),
        1,
        "five files in one checkout, one reload"
    );
    observer.assert_only(&[1, 2]);
}

#[test]
fn a_broken_edit_keeps_the_running_config_until_it_is_fixed() {
    let config = Config::new();
    let daemon = Daemon::start(
        &config.path,
        &["--debounce", DEBOUNCE, "--log-format", "json"],
    );
    let observer = Observer::start(&daemon.url);
    let profiles = config.path.join("profiles.yaml");
    let broken = config.profiles_text(2).replace("billing:", "billing: [");
    std::fs::write(&profiles, &broken).unwrap();

    let rejected = daemon.wait_for("a rejection", |c| c["last_reload"]["outcome"] == "rejected");
    assert_eq!(rejected["generation"], 1, "the running config stays");
    let diagnostic = &rejected["last_reload"]["diagnostics"][0];
    assert!(
        diagnostic["location"]["file"]
            .as_str()
            .unwrap()
            .ends_with("profiles.yaml"),
        "{diagnostic}"
    );
    assert!(diagnostic["location"]["line"].as_u64().unwrap() > 0);
    assert_eq!(served_from(&daemon), version_name(1));

    // Saving the same broken text again is not reported again.
    std::fs::write(&profiles, &broken).unwrap();
    std::thread::sleep(SETTLE);
    std::fs::write(&profiles, config.profiles_text(2)).unwrap();
    wait_for_generation(&daemon, 2);
    assert_eq!(served_from(&daemon), version_name(2));
    observer.assert_only(&[1, 2]);

    let logs = daemon.logs();
    let events: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).expect("each log line is JSON"))
        .collect();
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with("configuration"))
        .collect();
    assert_eq!(
        messages,
        [
            "configuration loaded",
            "configuration rejected; the previous one keeps serving",
            "configuration applied"
        ],
        "{logs}"
    );
    let rejection = events
        .iter()
        .find(|e| e["level"] == "ERROR")
        .expect("the rejection is logged");
    let errors = rejection["errors"].as_str().unwrap();
    assert!(errors.contains("profiles.yaml:"), "{rejection}");
    assert!(
        !errors.contains("warning:"),
        "only the errors, the warnings are counted: {rejection}"
    );
    assert!(rejection["warnings"].is_u64(), "{rejection}");
}

#[test]
fn the_reload_endpoint_and_sighup_reload_on_demand() {
    let config = Config::new();
    let daemon = Daemon::start(&config.path, &["--watch", "off", "--recheck-interval", "0"]);
    // Right after the listening line: a reload, not the end of the daemon.
    daemon.signal("HUP");
    let unchanged = daemon.wait_for("the SIGHUP reload", |c| {
        c["last_reload"]["trigger"] == "signal"
    });
    assert_eq!(unchanged["last_reload"]["outcome"], "unchanged");
    config.write_version(&config.path, 2);
    std::thread::sleep(SETTLE);
    assert_eq!(daemon.generation(), 1, "not watching");

    let applied = daemon.post("/v1/reload", "");
    assert_eq!(applied.status, 200, "{}", applied.text);
    assert_eq!(applied.json["outcome"], "applied");
    assert_eq!(applied.json["generation"], 2);
    let hash = applied.json["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64, "a SHA-256");
    assert_eq!(served_from(&daemon), version_name(2));

    let unchanged = daemon.post("/v1/reload", "");
    assert_eq!(
        unchanged.json,
        json!({"outcome": "unchanged", "generation": 2, "hash": hash})
    );

    std::fs::write(config.path.join("users.yaml"), "users:\n  anna: 42\n").unwrap();
    let rejected = daemon.post("/v1/reload", "");
    assert_eq!(rejected.status, 422, "{}", rejected.text);
    assert_eq!(rejected.json["outcome"], "rejected");
    assert_eq!(rejected.json["serving"], 2);
    assert!(
        rejected.text.contains("users.yaml"),
        "diagnostics name the file: {}",
        rejected.text
    );
    let diagnostics = rejected.json["diagnostics"].as_array().unwrap();
    assert!(
        diagnostics.iter().any(|d| d["severity"] == "warning"),
        "the example's unset secrets warn too: {}",
        rejected.text
    );
    assert_eq!(
        diagnostics[0]["severity"], "error",
        "the reason comes first, before the warnings: {}",
        rejected.text
    );

    copy_dir(
        Path::new(&format!("{EXAMPLE}/users.yaml")),
        &config.path.join("users.yaml"),
    );
    config.write_version(&config.path, 3);
    daemon.signal("HUP");
    let config_now = wait_for_generation(&daemon, 3);
    assert_eq!(config_now["last_reload"]["trigger"], "signal");
    assert_eq!(served_from(&daemon), version_name(3));
}

/// Regression: events name absolute paths, and a relative --config once
/// matched none of them.
#[test]
fn a_relative_config_path_is_watched() {
    let config = Config::new();
    let parent = config.path.parent().unwrap();
    let daemon = Daemon::start_in(parent, Path::new("config"), &["--debounce", DEBOUNCE]);
    config.write_version(&config.path, 2);
    wait_for_generation(&daemon, 2);
    assert_eq!(served_from(&daemon), version_name(2));
}

#[test]
fn polling_and_the_periodic_check_see_changes_without_file_events() {
    let config = Config::new();
    let polling = start(
        &config.path,
        &["--watch", "poll", "--poll-interval", "100ms"],
    );
    let checking = Daemon::start(
        &config.path,
        &["--watch", "off", "--recheck-interval", "300ms"],
    );
    config.write_version(&config.path, 2);
    let polled = wait_for_generation(&polling, 2);
    assert_eq!(polled["last_reload"]["trigger"], "watch");
    assert_eq!(served_from(&polling), version_name(2));
    let checked = wait_for_generation(&checking, 2);
    assert_eq!(checked["last_reload"]["trigger"], "recheck");
    assert_eq!(served_from(&checking), version_name(2));

    // A broken file, then the serving one back: the rejection (and its
    // alert) clears without a new generation.
    let profiles = config.path.join("profiles.yaml");
    std::fs::write(&profiles, "profiles: [\n").unwrap();
    checking.wait_for("a rejection", |c| c["last_reload"]["outcome"] == "rejected");
    let gauge = "mailrules_config_last_reload_successful";
    assert!(
        checking
            .get("/metrics")
            .text
            .contains(&format!("{gauge} 0"))
    );
    std::fs::write(&profiles, config.profiles_text(2)).unwrap();
    let cleared = checking.wait_for("the all-clear", |c| {
        c["last_reload"]["outcome"] == "unchanged"
    });
    assert_eq!(cleared["generation"], 2);
    assert!(
        checking
            .get("/metrics")
            .text
            .contains(&format!("{gauge} 1"))
    );
}

/// A deploy tool that unpacks each release into its own directory and
/// points `current` at it.
#[test]
fn a_config_path_that_is_a_symlink_follows_its_swap() {
    let config = Config::new();
    let releases = tempfile::tempdir().unwrap();
    let (one, two) = (releases.path().join("r1"), releases.path().join("r2"));
    copy_dir(&config.path, &one);
    copy_dir(&config.path, &two);
    config.write_version(&two, 2);
    let current = releases.path().join("current");
    std::os::unix::fs::symlink(&one, &current).unwrap();
    let daemon = start(&current, &["--recheck-interval", "0"]);

    let next = releases.path().join("current.next");
    std::os::unix::fs::symlink(&two, &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    wait_for_generation(&daemon, 2);
    assert_eq!(served_from(&daemon), version_name(2));

    // The watch moved with the link: an edit in the new release is seen,
    // one in the old release is not.
    std::fs::write(one.join("profiles.yaml"), config.profiles_text(4)).unwrap();
    assert_stays(&daemon, 2);
    std::fs::write(two.join("profiles.yaml"), config.profiles_text(3)).unwrap();
    wait_for_generation(&daemon, 3);
    assert_eq!(served_from(&daemon), version_name(3));
}

#[test]
fn sends_during_reloads_each_use_one_config_from_start_to_end() {
    let config = Config::new();
    let server = SmtpServer::start("starttls");
    let daemon = start(
        &config.path,
        &[
            "--transport-override",
            server
                .override_file("starttls", "TEST_SMTP_PASSWORD")
                .to_str()
                .unwrap(),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flipping = {
        let stop = Arc::clone(&stop);
        let dir = config.path.clone();
        let versions: Vec<(String, String)> = (1..=3)
            .map(|v| (config.profiles_text(v), config.invoice_text(v)))
            .collect();
        std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let (profiles, invoice) = &versions[round % versions.len()];
                std::fs::write(dir.join("profiles.yaml"), profiles).unwrap();
                std::fs::write(dir.join("templates/sales_invoice.yaml"), invoice).unwrap();
                if round % 4 == 3 {
                    std::fs::write(dir.join("system.yaml"), "system: [\n").unwrap();
                    std::thread::sleep(Duration::from_millis(400));
                    std::fs::copy(format!("{EXAMPLE}/system.yaml"), dir.join("system.yaml"))
                        .unwrap();
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(350));
            }
        })
    };
    let observer = Observer::start(&daemon.url);
    let mut generations = BTreeSet::new();
    for n in 0..40 {
        let request = invoice_request(&format!("klant{n}@example.com"), json!({}));
        let reply = daemon.post("/v1/send", &request);
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["status"], "sent");
        generations.insert(reply.json["generation"].as_u64().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    flipping.join().unwrap();
    assert!(
        generations.len() > 2,
        "sent under several generations: {generations:?}"
    );
    // The last edit: version 3, with a valid system.yaml. It serves.
    std::fs::copy(
        format!("{EXAMPLE}/system.yaml"),
        config.path.join("system.yaml"),
    )
    .unwrap();
    config.write_version(&config.path, 3);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while served_from(&daemon) != version_name(3) {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(SETTLE);
    assert_eq!(served_from(&daemon), version_name(3), "and stays");
    assert!(
        reloads_with(&daemon, "rejected") > 0,
        "broken edits happened"
    );
    observer.assert_only(&[1, 2, 3]);

    let received = server.received();
    assert_eq!(received.len(), 40);
    for message in received {
        let text = String::from_utf8_lossy(&message.data);
        let from = text
            .lines()
            .find_map(|l| l.strip_prefix("From: "))
            .unwrap()
            .to_string();
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap()
            .to_string();
        let version = (1..=3)
            .find(|v| from.contains(&format!("Facturatie v{v}")))
            .unwrap_or_else(|| panic!("a known sender: {from}"));
        assert!(
            subject.starts_with(&format!("Factuur v{version} ")),
            "sender and subject from one config: {from} / {subject}"
        );
    }
}

#[test]
fn bad_requests_get_a_json_error_naming_the_field() {
    let config = Config::new();
    let daemon = start(&config.path, &[]);
    let cases = [
        (
            "/v1/explain",
            r#"{"administration": "acme-nl", "user": "anna", "proces": "sales_invoice"}"#,
            400,
            "proces",
            "unknown field `proces`",
        ),
        (
            "/v1/send",
            r#"{"administration": "acme-nl", "user": "anna", "process": "sales_invoice", "to": "a@example.com"}"#,
            400,
            "to",
            "`to`: invalid type: string",
        ),
        (
            "/v1/send",
            r#"{"administration": "acme-nl", "user": "anna", "process": "sales_invoice", "to": ["a@example.com"], "attach": ["/etc/passwd"]}"#,
            400,
            "attach",
            "the daemon does not read files",
        ),
        (
            "/v1/preview",
            r#"{"administration": "acme-de", "user": "anna", "process": "sales_invoice", "to": ["a@example.com"]}"#,
            422,
            "administration",
            "unknown administration `acme-de`",
        ),
        (
            "/v1/explain",
            r#"{"administration": "acme-nl", "user": "anna", "process": "sales_invoice", "template": "x"}"#,
            400,
            "template",
            "give `process` or `template`, not both",
        ),
    ];
    for (path, body, status, field, error) in cases {
        let reply = daemon.post(path, body);
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.text);
        assert_eq!(reply.json["field"], field, "{}", reply.text);
        assert!(
            reply.json["error"].as_str().unwrap().contains(error),
            "{}",
            reply.text
        );
    }
    let long_id = format!("<{}@acme.nl>", "x".repeat(300));
    let long = daemon.post(
        "/v1/send",
        &invoice_request("klant@example.com", json!({ "message_id": long_id })),
    );
    assert_eq!(long.status, 400, "{}", long.text);
    assert_eq!(long.json["field"], "message_id");
    assert!(
        long.text.contains("at most 200 characters"),
        "{}",
        long.text
    );
    // Without an outbox no key is remembered: refused, nothing sent.
    let keyed = daemon.post_keyed(
        "/v1/send",
        &invoice_request("klant@example.com", json!({})),
        "INV-1",
    );
    assert_eq!(keyed.status, 400, "{}", keyed.text);
    assert_eq!(keyed.json["field"], "Idempotency-Key");
    assert!(
        keyed.json["hint"].as_str().unwrap().contains("--outbox"),
        "{}",
        keyed.text
    );
    let syntax = daemon.post("/v1/send", "{oops");
    assert_eq!(syntax.status, 400);
    assert!(
        syntax.json["error"]
            .as_str()
            .unwrap()
            .contains("JSON object")
    );
    let unknown = daemon.get("/v2/send");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json["error"], "no such endpoint");
    let wrong_method = daemon.get("/v1/send");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.json["error"],
        "this endpoint does not take this method"
    );
    // A body over the limit is refused from its Content-Length, before it
    // is read (a test client that wrote it all would race the refusal).
    let address = daemon.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /v1/send HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        3 << 20
    );
    std::io::Write::write_all(&mut stream, head.as_bytes()).unwrap();
    let mut answer = vec![0; 4096];
    let read = std::io::Read::read(&mut stream, &mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("at most 2 MiB"), "{answer}");
}

#[test]
fn a_token_guards_the_api_and_listening_beyond_loopback_needs_one() {
    let config = Config::new();
    let refused =
        run(mailrules()
            .arg("--config")
            .arg(&config.path)
            .args(["serve", "--listen", "0.0.0.0:0"]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "never listened");
    assert!(
        refused.stderr.contains("needs a bearer token")
            && refused.stderr.contains("--token env:NAME"),
        "{}",
        refused.stderr
    );

    let token = "t0ken-for-this-test-only";
    let daemon = Daemon::start_with(
        &config.path,
        &["--token", "env:TEST_API_TOKEN"],
        &[("TEST_API_TOKEN", token)],
    );
    assert_eq!(daemon.post("/v1/explain", EXPLAIN).status, 200);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for authorization in [None, Some("Bearer wrong"), Some(token)] {
        let mut request = agent.post(format!("{}/v1/explain", daemon.url));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request.send(EXPLAIN).unwrap();
        assert_eq!(response.status(), 401, "{authorization:?}");
        let text = response.body_mut().read_to_string().unwrap();
        assert!(text.contains("bearer token"), "{text}");
        assert!(!text.contains(token), "the token is never echoed");
    }
    // The scheme's name is case-insensitive.
    let lowercase = agent
        .post(format!("{}/v1/explain", daemon.url))
        .header("Authorization", format!("bearer {token}"))
        .send(EXPLAIN)
        .unwrap();
    assert_eq!(lowercase.status(), 200);
    let health = agent.get(format!("{}/healthz", daemon.url)).call().unwrap();
    assert_eq!(health.status(), 200, "probes need no token");
    assert!(!daemon.logs().contains(token), "the token is never logged");
}

#[test]
fn send_preview_and_metrics() {
    let config = Config::new();
    let server = SmtpServer::start("starttls");
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = start(
        &config.path,
        &["--transport-override", override_file.to_str().unwrap()],
    );
    let request = invoice_request(
        "Klant <klant@example.com>",
        json!({"message_id": "<inv-1@acme.nl>", "date": "2026-12-01T09:00:00Z"}),
    );

    let preview = daemon.post("/v1/preview", &request);
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert_eq!(preview.json["profile"], "billing");
    assert_eq!(preview.json["message_id"], "<inv-1@acme.nl>");
    let message = preview.json["message"].as_str().unwrap();
    assert!(
        message.contains("Subject: Factuur v1 2026-10482"),
        "{message}"
    );
    assert!(server.received().is_empty(), "a preview sends nothing");

    let with_id = invoice_request(
        "Klant <klant@example.com>",
        json!({"id": "inv-1", "message_id": "<inv-1@acme.nl>", "date": "2026-12-01T09:00:00Z"}),
    );
    let sent = daemon.post("/v1/send", &with_id);
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(sent.json["status"], "sent");
    assert_eq!(sent.json["generation"], 1);
    assert_eq!(
        sent.json["id"], "inv-1",
        "the caller's reference comes back"
    );
    assert_eq!(sent.json["message_id"], "<inv-1@acme.nl>");
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].rcpt_to,
        ["klant@example.com", "archief@acme.nl"],
        "the billing profile's BCC too"
    );
    let sent_text = String::from_utf8_lossy(&received[0].data).into_owned();
    for header in ["From: ", "To: ", "Subject: ", "Message-ID: ", "Date: "] {
        let line = |text: &str| {
            text.lines()
                .find(|l| l.starts_with(header))
                .map(str::to_string)
        };
        assert_eq!(
            line(message),
            line(&sent_text),
            "the preview shows what is sent"
        );
    }

    let transport = format!("smtp localhost:{} (STARTTLS)", server.port);
    let metrics = daemon.get("/metrics").text;
    for line in [
        format!(
            "mailrules_messages_total{{profile=\"billing\",transport=\"{transport}\",status=\"sent\"}} 1"
        ),
        "mailrules_send_duration_seconds_count 1".to_string(),
        "mailrules_config_last_reload_successful 1".to_string(),
        "mailrules_config_generation 1".to_string(),
        "mailrules_config_reloads_total{outcome=\"rejected\"} 0".to_string(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let health = daemon.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json, json!({"status": "ok", "generation": 1}));

    // A reload is counted, and /v1/config tells when it was loaded.
    let first = daemon.get("/v1/config").json;
    let loaded_at =
        |c: &serde_json::Value| humantime::parse_rfc3339(c["loaded_at"].as_str().unwrap()).unwrap();
    config.write_version(&config.path, 2);
    let second = wait_for_generation(&daemon, 2);
    assert!(loaded_at(&second) > loaded_at(&first), "{first} / {second}");
    assert_eq!(second["last_reload"]["outcome"], "applied");
    assert_eq!(reloads_with(&daemon, "applied"), 1);
    let metrics = daemon.get("/metrics").text;
    assert!(
        metrics
            .lines()
            .any(|l| l == "mailrules_config_generation 2"),
        "{metrics}"
    );

    // A refused message is counted as failed, with the server's reply.
    drop(daemon);
    let refusing = SmtpServer::start_with("starttls", &["--data-reply", "554 5.7.1 spam"]);
    let override_file = refusing.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = start(
        &config.path,
        &["--transport-override", override_file.to_str().unwrap()],
    );
    let failed = daemon.post("/v1/send", &request);
    assert_eq!(failed.status, 502, "{}", failed.text);
    assert_eq!(failed.json["status"], "failed");
    assert_eq!(failed.json["temporary"], false);
    assert_eq!(failed.json["reply"], "554 5.7.1 spam");
    let transport = format!("smtp localhost:{} (STARTTLS)", refusing.port);
    let line = format!(
        "mailrules_messages_total{{profile=\"billing\",transport=\"{transport}\",status=\"failed\"}} 1"
    );
    assert!(daemon.get("/metrics").text.lines().any(|l| l == line));
    assert!(!daemon.logs().contains(common::SMTP_PASSWORD));
}

#[test]
fn sigterm_lets_the_send_in_flight_finish() {
    let config = Config::new();
    let server = SmtpServer::start_with("starttls", &["--data-delay", "2"]);
    let override_file = server.override_file("starttls", "TEST_SMTP_PASSWORD");
    let daemon = start(
        &config.path,
        &["--transport-override", override_file.to_str().unwrap()],
    );
    let request = invoice_request("klant@example.com", json!({}));
    let daemon = Arc::new(daemon);
    let sending = {
        let daemon = Arc::clone(&daemon);
        std::thread::spawn(move || daemon.post("/v1/send", &request))
    };
    std::thread::sleep(Duration::from_millis(700));
    daemon.signal("TERM");
    let reply = sending.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "sent");
    assert_eq!(server.received().len(), 1);
    let mut daemon = Arc::into_inner(daemon).unwrap();
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.logs());
}

/// The OS limit of inotify watches, made tiny in a user namespace of its
/// own (the limit is counted per namespace; the machine's stays as it is).
#[test]
fn the_watch_limit_stops_the_start_with_the_fix() {
    let namespaces = std::process::Command::new("unshare")
        .args(["-Ur", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !namespaces {
        eprintln!("skipped: this machine allows no user namespaces (unshare -Ur)");
        return;
    }
    let config = Config::new();
    let binary = assert_cmd::cargo::cargo_bin("mailrules");
    let script = format!(
        "echo 2 > /proc/sys/user/max_inotify_watches && exec {} --config {} serve --listen 127.0.0.1:0",
        binary.display(),
        config.path.display()
    );
    let result = run(std::process::Command::new("unshare").args(["-Ur", "sh", "-c", &script]));
    assert_eq!(result.code, 2, "{}", result.stderr);
    assert!(
        result.stdout.is_empty(),
        "never listened: {}",
        result.stdout
    );
    assert!(
        result
            .stderr
            .contains("the operating system's limit of file watches is reached"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains(
            "hint: raise it (sysctl fs.inotify.max_user_watches=524288), or run with --watch poll"
        ),
        "{}",
        result.stderr
    );
}

/// The transport override file is part of what serves: an edit to it is
/// applied by the next reload.
#[test]
fn an_edited_transport_override_is_applied_by_a_reload() {
    let config = Config::new();
    let (first, second) = (SmtpServer::start("starttls"), SmtpServer::start("starttls"));
    let dir = tempfile::tempdir().unwrap();
    let override_file = dir.path().join("override.yaml");
    std::fs::copy(
        first.override_file("starttls", "TEST_SMTP_PASSWORD"),
        &override_file,
    )
    .unwrap();
    let daemon = start(
        &config.path,
        &["--transport-override", override_file.to_str().unwrap()],
    );
    let request = invoice_request("klant@example.com", json!({}));
    assert_eq!(daemon.post("/v1/send", &request).status, 200);
    assert_eq!(first.received().len(), 1);

    std::fs::copy(
        second.override_file("starttls", "TEST_SMTP_PASSWORD"),
        &override_file,
    )
    .unwrap();
    let reloaded = daemon.post("/v1/reload", "");
    assert_eq!(reloaded.json["outcome"], "applied", "{}", reloaded.text);
    assert_eq!(daemon.post("/v1/send", &request).status, 200);
    assert_eq!(second.received().len(), 1, "sent through the new override");
    assert_eq!(first.received().len(), 1);
}

/// `GET /v1/messages` returns at most 10,000 messages: a larger `limit`
/// is refused naming it, not quietly cut down to a list that looks whole.
#[test]
fn a_message_list_limit_over_the_maximum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let daemon = Daemon::start(Path::new(EXAMPLE), &["--outbox", outbox.to_str().unwrap()]);
    let most = daemon.get("/v1/messages?limit=10000");
    assert_eq!(most.status, 200, "{}", most.text);
    let over = daemon.get("/v1/messages?limit=10001");
    assert_eq!(over.status, 400, "{}", over.text);
    assert_eq!(over.json["field"], "limit", "{}", over.text);
    assert!(
        over.json["error"].as_str().unwrap().contains("10000"),
        "{}",
        over.text
    );
}

/// A request with more than 1,000 recipients (`to` and `cc` together) is
/// refused with 400 naming `to`, before anything is rendered or queued:
/// rendering time grows with the square of the list.
#[test]
fn more_than_a_thousand_recipients_are_refused_naming_to() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let daemon = Daemon::start(Path::new(EXAMPLE), &["--outbox", outbox.to_str().unwrap()]);
    let to: Vec<String> = (1..=1000)
        .map(|n| format!("klant{n}@example.com"))
        .collect();
    let body = invoice_request(
        "klant@example.com",
        json!({"to": to, "cc": ["cc@example.com"]}),
    );
    for path in ["/v1/send", "/v1/preview"] {
        let reply = daemon.post(path, &body);
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert_eq!(reply.json["field"], "to", "{}", reply.text);
        assert!(
            reply.json["error"]
                .as_str()
                .unwrap()
                .contains("1001 recipients (`to` and `cc` together), more than the limit of 1000"),
            "{}",
            reply.text
        );
    }
    let counts = daemon.get("/v1/messages?limit=0").json["counts"].clone();
    assert_eq!(counts["queued"], 0, "nothing was queued: {counts}");
}
