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

const ORG_FIRST: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Wonka",
    "Aperture",
    "Gringotts",
    "Oscorp",
    "Nakatomi",
];
const ORG_SECOND: &[&str] = &[
    "Industries",
    "Systems",
    "Labs",
    "Logistics",
    "Foods",
    "Consulting",
    "Software",
    "Energy",
    "Health",
    "Media",
    "Robotics",
    "Capital",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Tallinn", "Estonia", "10111"),
    ("London", "United Kingdom", "N1 9GU"),
    ("New York", "United States", "10001"),
    ("Berlin", "Germany", "10115"),
    ("Paris", "France", "75001"),
    ("Tokyo", "Japan", "100-0001"),
    ("São Paulo", "Brazil", "01000-000"),
    ("Lagos", "Nigeria", "100001"),
];
const DEAL_WORDS: &[&str] = &[
    "Renewal",
    "Expansion",
    "Pilot",
    "Onboarding",
    "Licences",
    "Support plan",
    "Migration",
    "Training",
    "Upgrade",
    "Integration",
];
const PRODUCTS: &[(&str, &str)] = &[
    ("Starter plan", "seat"),
    ("Growth plan", "seat"),
    ("Enterprise plan", "seat"),
    ("Onboarding package", "package"),
    ("Premium support", "month"),
    ("Training day", "day"),
    ("API add-on", "month"),
    ("Data migration", "project"),
];
const NOTE_TEXTS: &[&str] = &[
    "Called, left a voicemail.",
    "<p>Discussed pricing; they want a proposal by Friday.</p>",
    "Met at the conference booth, interested in the API.",
    "Sent the contract for review.",
    "Follow up after their board meeting.",
    "Asked for a reference customer in their industry.",
];
const SUBJECTS: &[(&str, &str)] = &[
    ("call", "Intro call"),
    ("meeting", "Demo"),
    ("task", "Send proposal"),
    ("email", "Follow-up e-mail"),
    ("deadline", "Contract deadline"),
    ("lunch", "Lunch with the team"),
];

fn pick<'a, T>(rng: &mut impl Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

/// A realistic organization name (unique thanks to `n`).
pub(crate) fn org_name(rng: &mut impl Rng, n: i64) -> String {
    format!("{} {} {n}", pick(rng, ORG_FIRST), pick(rng, ORG_SECOND))
}

/// An address value in API v2's shape.
pub(crate) fn address(rng: &mut impl Rng) -> serde_json::Map<String, Value> {
    let (city, country, postal) = *pick(rng, CITIES);
    let number = rng.gen_range(1..200).to_string();
    let route = format!("{} Street", pick(rng, LAST));
    let mut m = serde_json::Map::new();
    m.insert(
        "value".into(),
        json!(format!("{number} {route}, {city}, {country}")),
    );
    m.insert("street_number".into(), json!(number));
    m.insert("route".into(), json!(route));
    m.insert("locality".into(), json!(city));
    m.insert("country".into(), json!(country));
    m.insert("postal_code".into(), json!(postal));
    m
}

pub(crate) fn deal_title(rng: &mut impl Rng, org: Option<&str>) -> String {
    let word = pick(rng, DEAL_WORDS);
    match org {
        Some(o) => format!("{o} {word}"),
        None => format!("{word} deal"),
    }
}

pub(crate) fn product(rng: &mut impl Rng) -> (&'static str, &'static str) {
    *pick(rng, PRODUCTS)
}

pub(crate) fn note_text(rng: &mut impl Rng) -> &'static str {
    NOTE_TEXTS[rng.gen_range(0..NOTE_TEXTS.len())]
}

pub(crate) fn activity_subject(rng: &mut impl Rng) -> (&'static str, &'static str) {
    *pick(rng, SUBJECTS)
}

fn date(ts: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(ts, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// A random date string within `days` of `now`.
pub(crate) fn near_date(rng: &mut impl Rng, now: i64, days: i64) -> String {
    date(now + rng.gen_range(-days..=days) * 86_400)
}

/// A value of the right API v2 shape for a custom field of this type and options;
/// `ids = (users, max org id, max person id)` for the link types.
pub(crate) fn custom_value(
    rng: &mut impl Rng,
    field_type: &str,
    options: &[(i64, String)],
    now: i64,
    ids: (&[i64], i64, i64),
) -> Option<Value> {
    let (users, max_org, max_person) = ids;
    Some(match field_type {
        "varchar" | "varchar_auto" => {
            json!(pick(rng, &["North", "South", "EMEA", "APAC", "LATAM"]))
        }
        "text" => json!(format!(
            "Customer since {}; prefers e-mail.",
            rng.gen_range(2010..2026)
        )),
        "double" => json!(f64::from(rng.gen_range(0..1000)) / 10.0),
        "monetary" => {
            json!({"value": rng.gen_range(1_000..250_000), "currency": pick(rng, &["EUR", "USD", "GBP"])})
        }
        "date" => json!(near_date(rng, now, 365)),
        "daterange" => {
            let start = now + rng.gen_range(-365..0) * 86_400;
            json!({"value": date(start), "until": date(start + rng.gen_range(30..730) * 86_400)})
        }
        "time" => {
            json!({"value": format!("{:02}:{:02}:00", rng.gen_range(8..18), rng.gen_range(0..4) * 15)})
        }
        "timerange" => json!({"value": "09:00:00", "until": "17:00:00"}),
        "enum" if !options.is_empty() => json!(pick(rng, options).0),
        "set" if !options.is_empty() => {
            let mut chosen: Vec<i64> = options
                .iter()
                .filter(|_| rng.gen_ratio(1, 2))
                .map(|o| o.0)
                .collect();
            if chosen.is_empty() {
                chosen.push(options[0].0);
            }
            json!(chosen)
        }
        "phone" => json!(format!(
            "+44 20 {:04} {:04}",
            rng.gen_range(0..10_000),
            rng.gen_range(0..10_000)
        )),
        "address" => Value::Object(address(rng)),
        "user" if !users.is_empty() => json!(pick(rng, users)),
        "org" if max_org > 0 => json!(rng.gen_range(1..=max_org)),
        "people" if max_person > 0 => json!(rng.gen_range(1..=max_person)),
        _ => return None,
    })
}
