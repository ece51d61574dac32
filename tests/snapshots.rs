//! Reviewed snapshots of what a user sees: `explain` for each level of the
//! precedence chain and `preview` of the example's messages.

mod common;

use common::*;

fn explain(args: &[&str]) -> String {
    let result = run(mailrules()
        .args(["explain", "--config", EXAMPLE])
        .args(args));
    assert_eq!(result.code, 0, "{}", result.stderr);
    result.stdout
}

fn preview(args: &[&str], data: &str) -> String {
    let result = run(mailrules()
        .args(["preview", "--config", EXAMPLE])
        .args(args)
        .args(["--data", &format!("{DATA}/{data}.json")])
        .args([
            "--date",
            "2026-12-01T09:00:00Z",
            "--message-id",
            "<snapshot-1@acme.nl>",
        ]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    // CRLF is what goes on the wire; show it as text for review.
    result.stdout.replace("\r\n", "\n")
}

#[test]
fn explain_template_level_wins_invoice() {
    insta::assert_snapshot!(explain(&[
        "-a",
        "acme-be",
        "-u",
        "anna",
        "-p",
        "sales_invoice",
        "-l",
        "nl-BE"
    ]));
}

#[test]
fn explain_administration_level_wins() {
    insta::assert_snapshot!(explain(&[
        "-a",
        "acme-be",
        "-u",
        "piet",
        "-p",
        "order_confirmation"
    ]));
}

#[test]
fn explain_personal_level_wins() {
    insta::assert_snapshot!(explain(&[
        "-a",
        "acme-nl",
        "-u",
        "anna",
        "-p",
        "order_confirmation",
        "-l",
        "en"
    ]));
}

#[test]
fn explain_system_level_wins_with_personal_reply_to() {
    insta::assert_snapshot!(explain(&[
        "-a",
        "acme-nl",
        "-u",
        "kees",
        "-p",
        "order_confirmation"
    ]));
}

#[test]
fn explain_json_personal_level() {
    let json: serde_json::Value = serde_json::from_str(&explain(&[
        "-a",
        "acme-nl",
        "-u",
        "anna",
        "-p",
        "order_confirmation",
        "--format",
        "json",
    ]))
    .unwrap();
    insta::assert_json_snapshot!(json);
}

#[test]
fn preview_invoice_nl_html_with_terms_attached() {
    insta::assert_snapshot!(preview(
        &[
            "-a",
            "acme-nl",
            "-u",
            "anna",
            "-p",
            "sales_invoice",
            "-l",
            "nl",
            "--to",
            "Bakkerij De Korenschoof <administratie@korenschoof.example>"
        ],
        "sales_invoice"
    ));
}

#[test]
fn preview_purchase_order_en_plain_text() {
    insta::assert_snapshot!(preview(
        &[
            "-a",
            "acme-nl",
            "-u",
            "batch",
            "-p",
            "purchase_order",
            "-l",
            "en",
            "--to",
            "Groothandel Noord <orders@groothandel-noord.example>"
        ],
        "purchase_order"
    ));
}

#[test]
fn preview_order_confirmation_with_personal_sender_and_signature() {
    insta::assert_snapshot!(preview(
        &[
            "-a",
            "acme-nl",
            "-u",
            "anna",
            "-p",
            "order_confirmation",
            "--to",
            "Fietsenmakerij Van Dijk <inkoop@vandijk.example>"
        ],
        "order_confirmation"
    ));
}
