//! `mailrules test`: the example's own test file passes; a broken
//! expectation and a changed message fail with a readable report.

mod common;

use std::path::Path;

use common::*;

fn mailrules_test(root: &Path, extra: &[&str]) -> Run {
    run(mailrules()
        .arg("test")
        .arg("--config")
        .arg(root.join("config"))
        .arg(root.join("tests"))
        .args(extra))
}

#[test]
fn the_example_test_file_passes() {
    let result = run(mailrules().args(["test", "--config", EXAMPLE, "examples/acme/tests"]));
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);
    assert!(
        result.stdout.ends_with("7 passed, 0 failed\n"),
        "{}",
        result.stdout
    );
}

#[test]
fn a_broken_expectation_fails_naming_the_line_that_states_it() {
    let dir = example_copy();
    let root = dir.path().join("acme");
    edit(
        &root.join("tests/routing.yaml"),
        "      profile: acme-be\n",
        "      profile: general\n",
    );
    let result = mailrules_test(&root, &[]);
    assert_eq!(result.code, 1);
    assert!(
        result
            .stdout
            .contains("FAIL the Belgian company confirms orders as itself"),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains("routing.yaml:39:7: profile: expected `general`, got `acme-be`"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.ends_with("6 passed, 1 failed\n"),
        "{}",
        result.stdout
    );
}

#[test]
fn a_changed_message_shows_a_diff_until_the_snapshot_is_updated() {
    let dir = example_copy();
    let root = dir.path().join("acme");
    edit(
        &root.join("config/profiles.yaml"),
        "        Acme Inkoop\n",
        "        Acme Inkoop en Logistiek\n",
    );
    let result = mailrules_test(&root, &[]);
    assert_eq!(result.code, 1);
    assert!(
        result
            .stdout
            .contains("FAIL purchase orders are plain text from purchasing"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains("-Acme Inkoop\n"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains("+Acme Inkoop en Logistiek\n"),
        "{}",
        result.stdout
    );

    let updated = mailrules_test(&root, &["--update-snapshots"]);
    assert_eq!(updated.code, 0, "{}", updated.stdout);
    let stored =
        std::fs::read_to_string(root.join("tests/snapshots/purchase-order-nl.eml")).unwrap();
    assert!(stored.contains("Acme Inkoop en Logistiek\r\n"));
    assert_eq!(mailrules_test(&root, &[]).code, 0);
}

#[test]
fn a_malformed_test_file_is_a_usage_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yaml");
    std::fs::write(&file, "cases:\n  - name: x\n    administration: acme-nl\n    user: anna\n    process: sales_invoice\n    expect: {sender: a@b.example}\n").unwrap();
    let result = run(mailrules().args(["test", "--config", EXAMPLE]).arg(&file));
    assert_eq!(result.code, 2);
    assert!(
        result
            .stderr
            .contains("t.yaml:6:14: cannot expect `sender`"),
        "{}",
        result.stderr
    );
}

#[test]
fn malformed_test_files_are_refused_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let case = "cases:\n  - name: x\n    administration: acme-nl\n    user: anna\n    process: sales_invoice\n";
    for (extra, expected) in [
        ("defaults: {}\n", "unknown key `defaults`"),
        (
            "    expect: {bcc: [archief@acme.nl, garbage]}\n",
            "`garbage` is not a valid e-mail address",
        ),
        ("    expect: {level: top}\n", "`level` is one of"),
        ("    expect: {profile: 5}\n", "`profile` expects text"),
        (
            "    preview: {to: a@b.example, snapshot: ../outside.eml}\n",
            "`snapshot` is an `.eml` file in the test file's directory",
        ),
        (
            "    preview: {to: a@b.example, snapshot: s.eml, dta: x.json}\n",
            "unknown key `dta`",
        ),
        (
            "    language: en\n    template: sales_invoice-nl\n",
            "a case names either",
        ),
    ] {
        let file = dir.path().join("t.yaml");
        std::fs::write(&file, format!("{case}{extra}")).unwrap();
        let result = run(mailrules().args(["test", "--config", EXAMPLE]).arg(&file));
        assert_eq!(
            result.code, 2,
            "{extra}: {}{}",
            result.stdout, result.stderr
        );
        assert!(
            result.stderr.contains(expected),
            "{extra}: {}",
            result.stderr
        );
        assert!(
            result.stderr.contains("t.yaml:"),
            "a place: {}",
            result.stderr
        );
    }
    std::fs::write(dir.path().join("empty.yaml"), "cases: []\n").unwrap();
    let empty = run(mailrules()
        .args(["test", "--config", EXAMPLE])
        .arg(dir.path().join("empty.yaml")));
    assert_eq!(empty.code, 2);
    assert!(
        empty.stderr.contains("`cases` is empty"),
        "{}",
        empty.stderr
    );
}

#[test]
fn a_fifo_is_not_read_as_a_test_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let result = run(mailrules().args(["test", "--config", EXAMPLE]).arg(&fifo));
    assert_eq!(result.code, 2);
    assert!(
        result.stderr.contains("not a regular file"),
        "{}",
        result.stderr
    );
}
