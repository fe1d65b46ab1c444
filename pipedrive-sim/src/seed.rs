//! Realistic seed data.

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

const FIRST: &[&str] = &[
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Oliver",
    "Ava",
    "Elijah",
    "Sophia",
    "Lucas",
    "Mia",
    "Mateo",
    "Isabella",
    "Leo",
    "Charlotte",
    "Ethan",
    "Harper",
    "Aiden",
    "Evelyn",
    "James",
    "Chloé",
    "Jörg",
    "Zoë",
    "Søren",
    "Ana",
    "Diego",
    "Priya",
    "Arjun",
    "Mei",
    "Hiroshi",
    "Fatima",
    "Omar",
    "Ingrid",
    "Lars",
    "Aisha",
    "Kwame",
    "Élodie",
    "François",
    "Marta",
    "Tomasz",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Müller",
    "Schmidt",
    "Dubois",
    "Rossi",
    "Nowak",
    "Kowalski",
    "Tanaka",
    "Sato",
    "Kim",
    "Nguyen",
    "Patel",
    "Singh",
    "O'Brien",
    "van der Berg",
    "Andersen",
    "Hansen",
    "Silva",
    "Costa",
    "Okafor",
    "Mensah",
    "Haddad",
    "Cohen",
    "Ivanova",
    "Novák",
    "Larsen",
    "Fischer",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "acme.test",
    "globex.test",
    "initech.test",
    "umbrella.test",
    "mail.test",
    "contoso.test",
];
const TIERS: &[&str] = &["Bronze", "Silver", "Gold", "Platinum"];

/// A generated person: name, e-mails, phones and custom values keyed by field name.
pub(crate) struct SeedPerson {
    pub(crate) first: String,
    pub(crate) last: String,
    pub(crate) email: String,
    pub(crate) second_email: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) tier: Option<&'static str>,
    pub(crate) source_option: Option<usize>,
    pub(crate) value: Option<Value>,
    pub(crate) age_secs: i64,
    pub(crate) touched_secs: i64,
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'é' | 'É' => 'e',
            'ö' | 'ø' | 'Ø' => 'o',
            'ü' => 'u',
            'á' => 'a',
            'ç' => 'c',
            'ë' => 'e',
            other => other,
        })
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

pub(crate) fn person(rng: &mut impl Rng, n: u64, previous_emails: &[String]) -> SeedPerson {
    let first = (*FIRST.choose(rng).unwrap_or(&"Alex")).to_owned();
    let last = (*LAST.choose(rng).unwrap_or(&"Doe")).to_owned();
    let domain = DOMAINS.choose(rng).unwrap_or(&"example.com");
    // About 2 % reuse an earlier person's e-mail: same-email duplicates exist in real CRMs.
    let email = if !previous_emails.is_empty() && rng.gen_ratio(1, 50) {
        previous_emails[rng.gen_range(0..previous_emails.len())].clone()
    } else {
        format!("{}.{}{}@{}", ascii(&first), ascii(&last), n, domain)
    };
    let second_email = rng
        .gen_ratio(1, 10)
        .then(|| format!("{}{}@home.test", ascii(&first), n));
    let phone = rng.gen_ratio(4, 5).then(|| {
        format!(
            "+1 555 {:04} {:04}",
            rng.gen_range(0..10_000),
            rng.gen_range(0..10_000)
        )
    });
    let tier = rng
        .gen_ratio(1, 2)
        .then(|| *TIERS.choose(rng).unwrap_or(&"Bronze"));
    let source_option = rng.gen_ratio(2, 3).then(|| rng.gen_range(0..4));
    let value = rng
        .gen_ratio(1, 3)
        .then(|| json!({"value": rng.gen_range(100..50_000), "currency": "EUR"}));
    let age_secs = rng.gen_range(86_400..90 * 86_400);
    let touched_secs = rng.gen_range(0..age_secs);
    SeedPerson {
        first,
        last,
        email,
        second_email,
        phone,
        tier,
        source_option,
        value,
        age_secs,
        touched_secs,
    }
}

/// A random 40-hex custom field key.
pub(crate) fn field_key(rng: &mut impl Rng) -> String {
    (0..40)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect()
}

/// A random token of `len` URL-safe characters.
pub(crate) fn token(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

/// Custom fields of every type the API lets users create: `(name, field_type, options)`.
pub(crate) const EVERY_TYPE: &[(&str, &str, &[&str])] = &[
    ("Region", "varchar", &[]),
    ("Background", "text", &[]),
    ("Score", "double", &[]),
    ("Budget", "monetary", &[]),
    ("Renewal date", "date", &[]),
    ("Contract period", "daterange", &[]),
    ("Preferred call time", "time", &[]),
    ("Segment", "enum", &["SMB", "Mid-market", "Enterprise"]),
    (
        "Interests",
        "set",
        &["Analytics", "Automation", "Integrations", "Support"],
    ),
    ("Hotline", "phone", &[]),
    ("Billing address", "address", &[]),
    ("Account manager", "user", &[]),
    ("Partner organization", "org", &[]),
    ("Champion", "people", &[]),
];
