//! Generated data: realistic names, companies, e-mails and phones, deterministic for a seed.
//! Inserts go straight into the tables (no rules), so 100,000 records take well under a
//! second in a release build.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::state::Org;

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Linus",
    "Ken",
    "Radia",
    "Frances",
    "John",
    "Katherine",
    "Tim",
    "Hedy",
    "Dennis",
    "Sophie",
    "Niklaus",
    "Leslie",
    "Anita",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Torvalds",
    "Thompson",
    "Perlman",
    "Allen",
    "McCarthy",
    "Johnson",
    "Berners-Lee",
    "Lamarr",
    "Ritchie",
    "Wilson",
    "Wirth",
    "Lamport",
    "Borg",
];
const COMPANIES: &[&str] = &[
    "Analytical Engines",
    "Cobol Works",
    "Enigma Labs",
    "Semaphore Inc",
    "Abstraction Co",
    "TeX Press",
    "Apollo Guidance",
    "Kernel Org",
    "Unix Systems",
    "Spanning Tree Ltd",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "example.net", "mail.example"];
const SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

/// Seeds accounts, then contacts (spread over the accounts), then leads.
pub(crate) fn seed(
    org: &mut Org,
    leads: usize,
    contacts: usize,
    accounts: usize,
    seed: u64,
    now_ms: i64,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ if org.sandbox { 0x5a5a } else { 0 });
    let ago = |rng: &mut StdRng| now_ms - rng.gen_range(0..30 * 86_400_000i64);
    let mut account_ids = Vec::with_capacity(accounts);
    for i in 0..accounts {
        let name = format!("{} {}", COMPANIES[i % COMPANIES.len()], i + 1);
        let at = ago(&mut rng);
        account_ids.push(org.seed_insert(
            "Account",
            &[
                ("Name", json!(name)),
                ("Industry", json!("Technology")),
                (
                    "Website",
                    json!(format!("https://acct{}.example.com", i + 1)),
                ),
            ],
            at,
        ));
    }
    let person = |rng: &mut StdRng, i: usize, kind: &str| {
        let first = FIRST[rng.gen_range(0..FIRST.len())];
        let last = LAST[rng.gen_range(0..LAST.len())];
        let domain = DOMAINS[rng.gen_range(0..DOMAINS.len())];
        let email = format!(
            "{}.{}.{kind}{i}@{domain}",
            first.to_lowercase(),
            last.to_lowercase()
        );
        let phone = format!(
            "+1 555 {:03} {:04}",
            rng.gen_range(0..1000),
            rng.gen_range(0..10_000)
        );
        (first, last, email, phone)
    };
    for i in 0..contacts {
        let (first, last, email, phone) = person(&mut rng, i, "c");
        let at = ago(&mut rng);
        let mut fields = vec![
            ("FirstName", json!(first)),
            ("LastName", json!(last)),
            ("Email", json!(email)),
            ("Phone", json!(phone)),
            ("LeadSource", json!(SOURCES[i % SOURCES.len()])),
        ];
        if !account_ids.is_empty() {
            fields.push(("AccountId", json!(account_ids[i % account_ids.len()])));
        }
        org.seed_insert("Contact", &fields, at);
    }
    for i in 0..leads {
        let (first, last, email, phone) = person(&mut rng, i, "l");
        let at = ago(&mut rng);
        org.seed_insert(
            "Lead",
            &[
                ("FirstName", json!(first)),
                ("LastName", json!(last)),
                ("Email", json!(email)),
                ("Phone", json!(phone)),
                ("Company", json!(COMPANIES[i % COMPANIES.len()])),
                ("LeadSource", json!(SOURCES[i % SOURCES.len()])),
            ],
            at,
        );
    }
}
