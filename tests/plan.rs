//! `mailrules plan`: exactly the contexts an edit changes, from a second
//! directory or from a git revision.

mod common;

use std::process::Command;

use common::*;

#[test]
fn a_changed_sender_shows_exactly_the_contexts_it_affects() {
    let dir = example_copy();
    let config = dir.path().join("acme/config");
    edit(
        &config.join("profiles.yaml"),
        "from: \"Acme Inkoop <inkoop@acme.nl>\"",
        "from: \"Acme Inkoop <purchasing@acme.nl>\"",
    );
    let result = run(mailrules()
        .args(["plan", "--base", EXAMPLE, "--format", "json", "--config"])
        .arg(&config));
    assert_eq!(result.code, 1, "changes exit 1: {}", result.stderr);
    let changes: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    let contexts: Vec<String> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let x = &c["context"];
            format!(
                "{}/{}/{}/{}",
                x["administration"], x["process"], x["language"], x["user"]
            )
            .replace('"', "")
        })
        .collect();
    // Purchase orders of acme-nl in both languages, and acme-be's English
    // one (acme-be has no Dutch purchase order template), for all 3 users.
    assert_eq!(contexts.len(), 9, "{contexts:?}");
    assert!(
        contexts.iter().all(|c| c.contains("/purchase_order/")),
        "{contexts:?}"
    );
    let first = &changes[0]["change"];
    assert_eq!(first["kind"], "changed");
    assert_eq!(first["fields"][0]["field"], "from");
    assert_eq!(first["fields"][0]["old"], "Acme Inkoop <inkoop@acme.nl>");
    assert_eq!(
        first["fields"][0]["new"],
        "Acme Inkoop <purchasing@acme.nl>"
    );
    let source = first["fields"][0]["new_source"].as_str().unwrap();
    assert!(
        source.contains("profiles.yaml:"),
        "file:line:column of the edit: {source}"
    );
}

#[test]
fn no_change_exits_0_and_exit_zero_reports_without_failing() {
    let unchanged = run(mailrules().args(["plan", "--base", EXAMPLE, "--config", EXAMPLE]));
    assert_eq!(unchanged.code, 0, "{}", unchanged.stderr);
    assert!(
        unchanged.stdout.contains("no context changes"),
        "{}",
        unchanged.stdout
    );

    let dir = example_copy();
    let config = dir.path().join("acme/config");
    edit(
        &config.join("administrations.yaml"),
        "profile: acme-be ",
        "profile: null    ",
    );
    let result = run(mailrules()
        .args([
            "plan",
            "--base",
            EXAMPLE,
            "--exit-zero",
            "--format",
            "markdown",
            "--config",
        ])
        .arg(&config));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.stdout.starts_with("### mailrules plan against"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains(
            "| acme-be / order_confirmation / nl / anna | profile | `acme-be` | `sales` |"
        ),
        "{}",
        result.stdout
    );
}

#[test]
fn the_base_can_be_a_git_revision() {
    let dir = example_copy();
    let repo = dir.path().join("acme");
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "base"]);
    edit(
        &repo.join("config/users.yaml"),
        "reply_to: \"Kees Jansen <kees.jansen@acme.nl>\"",
        "reply_to: \"Kees <kees@acme.nl>\"",
    );
    let result = run(mailrules()
        .args(["plan", "--base", "HEAD", "--config"])
        .arg(repo.join("config")));
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result
            .stdout
            .contains("~ acme-nl / order_confirmation / nl / kees"),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains("reply_to: Kees Jansen <kees.jansen@acme.nl> -> Kees <kees@acme.nl>"),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains("was set at HEAD:config/users.yaml:25:17"),
        "{}",
        result.stdout
    );

    let missing = run(mailrules()
        .args(["plan", "--base", "no-such-rev", "--config"])
        .arg(repo.join("config")));
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("neither a path nor a git revision"),
        "{}",
        missing.stderr
    );
}

#[test]
fn every_effective_field_counts_as_a_change() {
    let dir = example_copy();
    let config = dir.path().join("acme/config");
    let profiles = config.join("profiles.yaml");
    edit(
        &profiles,
        "username: info@acme.nl",
        "username: info2@acme.nl",
    );
    edit(
        &profiles,
        "    html: true\n    signature:\n      text: |\n        Acme Nederland",
        "    html: false\n    signature:\n      text: |\n        Acme Nederland",
    );
    edit(
        &profiles,
        "        Acme Debiteurenbeheer\n",
        "        Acme Debiteuren\n",
    );
    let result = run(mailrules()
        .args(["plan", "--base", EXAMPLE, "--config"])
        .arg(&config));
    assert_eq!(result.code, 1, "{}", result.stderr);
    for expected in [
        "account: info@acme.nl (password from env:ACME_INFO_SMTP_PASSWORD) -> info2@acme.nl",
        "html: true -> false",
        "signature: text (#",
    ] {
        assert!(
            result.stdout.contains(expected),
            "`{expected}` in\n{}",
            result.stdout
        );
    }
}

#[test]
fn an_invalid_configuration_exits_2_not_1() {
    let dir = example_copy();
    let config = dir.path().join("acme/config");
    edit(
        &config.join("profiles.yaml"),
        "    reply_to: \"Acme Debiteurenbeheer",
        "    reply_too: \"Acme Debiteurenbeheer",
    );
    let broken_new = run(mailrules()
        .args(["plan", "--base", EXAMPLE, "--exit-zero", "--config"])
        .arg(&config));
    assert_eq!(broken_new.code, 2, "{}", broken_new.stderr);
    assert!(
        broken_new.stderr.contains("unknown key `reply_too`"),
        "{}",
        broken_new.stderr
    );
    let broken_base = run(mailrules()
        .args(["plan", "--config", EXAMPLE, "--base"])
        .arg(&config));
    assert_eq!(broken_base.code, 2, "{}", broken_base.stderr);
}

#[test]
fn a_base_that_looks_like_an_option_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep").unwrap();
    let result = run(mailrules()
        .args(["plan", "--config", EXAMPLE])
        .arg(format!("--base=--output={}", victim.display())));
    assert_eq!(result.code, 2);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "keep",
        "git did not write the file"
    );
}

#[test]
fn too_many_contexts_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let languages: Vec<String> = (0..50)
        .map(|i| format!("{}{}", (b'a' + i / 26) as char, (b'a' + i % 26) as char))
        .collect();
    let processes: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    let mut yaml = format!(
        "system: {{profile: out, default_language: aa, languages: [{}], processes: [{}]}}\nprofiles:\n  out: {{file: {{dir: o}}, from: a@example.com}}\nadministrations:\n",
        languages.join(", "),
        processes.join(", ")
    );
    for a in 0..200 {
        yaml.push_str(&format!("  a{a}: {{name: A}}\n"));
    }
    yaml.push_str("users:\n  u1: {personal: {enabled: true}}\n  u2: {personal: {enabled: true}}\n");
    let file = dir.path().join("big.yaml");
    std::fs::write(&file, yaml).unwrap();
    for args in [vec!["explain", "--all"], vec!["plan", "--base"]] {
        let mut command = mailrules();
        command.args(&args);
        if args[0] == "plan" {
            command.arg(&file);
        }
        let result = run(command.arg("--config").arg(&file));
        assert_eq!(result.code, 2, "{args:?}: {}", result.stderr);
        assert!(
            result.stderr.contains("6000000 contexts"),
            "{}",
            result.stderr
        );
    }
}
