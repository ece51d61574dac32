//! Speed of resolution and of the whole-configuration commands on a large
//! generated configuration: 1,000 administrations × 3 languages × 6
//! processes, 5,000 users (50 with enabled personal settings), 500
//! profiles. Targets (issue: "Explain everything"): one resolution with its
//! trace under 2 µs; `plan` over this configuration under 2 s on one core.
//!
//! Run: `cargo bench --bench resolution`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use mailrules::config::Config;
use mailrules::resolve::{Request, TemplateSelector, matrix, resolve};

const ADMINISTRATIONS: usize = 1_000;
const LANGUAGES: [&str; 3] = ["nl", "en", "de"];
const PROCESSES: usize = 6;
const USERS: usize = 5_000;
const ENABLED_USERS: usize = 50;
const PROFILES: usize = 500;

/// The generated configuration as YAML; `sender_of_profile_7` varies it.
fn generated_yaml(sender_of_profile_7: &str) -> String {
    let mut y = String::new();
    let processes: Vec<String> = (0..PROCESSES).map(|p| format!("p{p}")).collect();
    let _ = writeln!(
        y,
        "system: {{profile: profile-0, default_language: nl, languages: [nl, en, de], processes: [{}]}}",
        processes.join(", ")
    );
    y.push_str("profiles:\n");
    for i in 0..PROFILES {
        let from = if i == 7 {
            sender_of_profile_7.to_string()
        } else {
            format!("Sender {i} <sender{i}@example.com>")
        };
        let _ = writeln!(
            y,
            "  profile-{i}: {{smtp: {{host: smtp{}.example.com}}, from: \"{from}\", reply_to: \"desk{i}@example.com\", bcc: [\"archive{i}@example.com\"]}}",
            i % 10
        );
    }
    y.push_str("templates:\n");
    for p in 0..PROCESSES {
        for language in LANGUAGES {
            // Two processes pin their profile (like invoices and reminders).
            let profile = if p < 2 {
                format!(", profile: profile-{p}")
            } else {
                String::new()
            };
            let _ = writeln!(
                y,
                "  t-p{p}-{language}: {{process: p{p}, language: {language}, subject: \"S {{{{ n }}}}\", text: \"T {{{{ n }}}}\"{profile}}}"
            );
        }
    }
    y.push_str("administrations:\n");
    for a in 0..ADMINISTRATIONS {
        // One in three administrations pins its own profile.
        let profile = if a % 3 == 0 {
            format!("profile-{}", a % PROFILES)
        } else {
            "null".into()
        };
        let _ = write!(
            y,
            "  admin-{a}: {{name: Admin {a}, profile: {profile}, default_language: nl, languages: {{"
        );
        let tables: Vec<String> = LANGUAGES
            .iter()
            .map(|l| {
                let row: Vec<String> = (0..PROCESSES)
                    .map(|p| format!("p{p}: t-p{p}-{l}"))
                    .collect();
                format!("{l}: {{{}}}", row.join(", "))
            })
            .collect();
        let _ = writeln!(y, "{}}}}}", tables.join(", "));
    }
    y.push_str("users:\n");
    for u in 0..USERS {
        if u < ENABLED_USERS {
            let _ = writeln!(
                y,
                "  user-{u}: {{personal: {{enabled: true, profile: profile-{}, from: \"user{u}@example.com\"}}}}",
                7 + u
            );
        } else {
            let _ = writeln!(y, "  user-{u}: {{}}");
        }
    }
    y
}

fn load(yaml: String) -> Config {
    let files = vec![(PathBuf::from("generated.yaml"), yaml)];
    mailrules::load::load_texts(files, Path::new("."), Default::default())
        .expect("the generated configuration is valid")
        .config
}

fn benches(c: &mut Criterion) {
    let old = load(generated_yaml("Sender 7 <sender7@example.com>"));
    let new = load(generated_yaml("Sender Seven <seven@example.com>"));

    c.bench_function("resolve one context with its trace (personal level)", |b| {
        let request = Request {
            administration: "admin-1",
            user: "user-3",
            selector: TemplateSelector::Process {
                process: "p4",
                language: Some("en"),
            },
            transport_override: None,
        };
        b.iter(|| resolve(&old, &request).expect("resolves"))
    });

    let mut slow = c.benchmark_group("whole configuration");
    slow.sample_size(10);
    slow.bench_function("explain --all (matrix of 918,000 contexts)", |b| {
        b.iter(|| matrix::matrix(&old).expect("within the limit"))
    });
    slow.bench_function("plan (two matrices and their difference)", |b| {
        b.iter(|| {
            mailrules::plan::plan(
                &matrix::matrix(&old).unwrap(),
                &matrix::matrix(&new).unwrap(),
            )
        })
    });
    slow.finish();
}

criterion_group!(resolution, benches);
criterion_main!(resolution);
