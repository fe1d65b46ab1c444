//! Fault injection: which requests (or webhook deliveries) misbehave, how, and how often.
//!
//! # Grammar
//!
//! ```text
//! spec     := rule (";" rule)*                 (empty spec = no faults)
//! rule     := selector ":" fault ("," fault)*
//! selector := "*"                              every route
//!           | RESOURCE                         e.g. persons, deals, webhooks, oauth
//!           | RESOURCE "." METHOD              e.g. persons.patch, persons.get
//!           | OPERATION                        e.g. v2.updatePerson, v1.addWebhook, oauth.token
//! fault    := "latency_ms=" N ["-" M]          added delay, always (uniform in N..=M)
//!           | STATUS "=" P                     answer with that status: 5xx (=500), 500, 502,
//!                                              503, 504, 429
//!           | "hang=" P                        never answer (the client times out)
//!           | "lost_answer=" P                 carry the request out, then never answer
//!           | "reset=" P                       close the connection without an answer
//!           | "drop=" P                        webhook deliveries: never sent
//!           | "duplicate=" P                   webhook deliveries: sent twice
//!           | "reorder=" P                     webhook deliveries: held back behind the next one
//! P        := probability in [0, 1]
//! ```
//!
//! RESOURCE is the first path segment after `/api/v2/`, `/v1/` or `/oauth/`; METHOD is the
//! lower-case HTTP method. Request faults (latency, statuses, hang, reset) apply to API
//! requests on matching routes; delivery faults (drop, duplicate, reorder) apply to outgoing
//! webhook deliveries and match the selectors `*` and `webhooks`. Latencies of all matching
//! rules add up; for the probabilistic faults, every matching fault is drawn in the order
//! written and the first hit wins. Draws come from one RNG seeded with `--seed`, so a
//! sequential test sees the same faults on every run.
//!
//! Example: `persons.patch:5xx=0.2,429=0.1;*:latency_ms=5;webhooks:drop=0.1,duplicate=0.1`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

use crate::error::SimError;
use crate::ops::Op;

/// Which routes a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Every route (and webhook deliveries).
    All,
    /// Every method on a resource (`persons`).
    Resource(String),
    /// One method on a resource (`persons.patch`).
    ResourceMethod(String, String),
    /// One operation (`v2.updatePerson`).
    Operation(Op),
}

impl Selector {
    fn matches(&self, op: Op, method: &str) -> bool {
        match self {
            Selector::All => true,
            Selector::Resource(r) => r == op.resource(),
            Selector::ResourceMethod(r, m) => r == op.resource() && m.eq_ignore_ascii_case(method),
            Selector::Operation(o) => *o == op,
        }
    }

    fn matches_deliveries(&self) -> bool {
        match self {
            Selector::All => true,
            Selector::Resource(r) => r == "webhooks",
            _ => false,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("*"),
            Selector::Resource(r) => f.write_str(r),
            Selector::ResourceMethod(r, m) => write!(f, "{r}.{m}"),
            Selector::Operation(op) => f.write_str(op.name()),
        }
    }
}

/// One fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Added delay, uniform in `min..=max` milliseconds.
    Latency {
        /// Lower bound.
        min_ms: u64,
        /// Upper bound.
        max_ms: u64,
    },
    /// Answer with this status (and the documented envelope) with probability `p`.
    Status {
        /// 429 or a 5xx.
        status: u16,
        /// Probability.
        p: f64,
    },
    /// Never answer.
    Hang(f64),
    /// Carry the request out, then never answer.
    LoseAnswer(f64),
    /// Close the connection without answering.
    Reset(f64),
    /// Do not send a webhook delivery.
    Drop(f64),
    /// Send a webhook delivery twice.
    Duplicate(f64),
    /// Hold a webhook delivery back until the next one has been sent.
    Reorder(f64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Latency { min_ms, max_ms } if min_ms == max_ms => {
                write!(f, "latency_ms={min_ms}")
            }
            Fault::Latency { min_ms, max_ms } => write!(f, "latency_ms={min_ms}-{max_ms}"),
            Fault::Status { status, p } => write!(f, "{status}={p}"),
            Fault::Hang(p) => write!(f, "hang={p}"),
            Fault::LoseAnswer(p) => write!(f, "lost_answer={p}"),
            Fault::Reset(p) => write!(f, "reset={p}"),
            Fault::Drop(p) => write!(f, "drop={p}"),
            Fault::Duplicate(p) => write!(f, "duplicate={p}"),
            Fault::Reorder(p) => write!(f, "reorder={p}"),
        }
    }
}

/// A selector and its faults.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// Where.
    pub selector: Selector,
    /// What.
    pub faults: Vec<Fault>,
}

/// A parsed `--faults` specification (see the module documentation for the grammar).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultSpec {
    /// The rules, in the order written.
    pub rules: Vec<FaultRule>,
}

/// What to do to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestAction {
    Status(u16),
    Hang,
    LoseAnswer,
    Reset,
}

/// What to do to one webhook delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeliveryFaults {
    pub(crate) drop: bool,
    pub(crate) duplicate: bool,
    pub(crate) reorder: bool,
}

impl FaultSpec {
    /// No faults.
    pub fn none() -> Self {
        FaultSpec::default()
    }

    /// Parses the grammar in the module documentation.
    pub fn parse(spec: &str) -> Result<Self, SimError> {
        spec.parse()
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub(crate) fn decide_request(
        &self,
        op: Op,
        method: &str,
        rng: &mut impl Rng,
    ) -> (Duration, Option<RequestAction>) {
        let mut latency = 0u64;
        let mut action = None;
        for rule in self.rules.iter().filter(|r| r.selector.matches(op, method)) {
            for fault in &rule.faults {
                match *fault {
                    Fault::Latency { min_ms, max_ms } => {
                        latency += if max_ms > min_ms {
                            rng.gen_range(min_ms..=max_ms)
                        } else {
                            min_ms
                        };
                    }
                    Fault::Status { status, p } => {
                        if action.is_none() && rng.gen_bool(p) {
                            action = Some(RequestAction::Status(status));
                        }
                    }
                    Fault::Hang(p) => {
                        if action.is_none() && rng.gen_bool(p) {
                            action = Some(RequestAction::Hang);
                        }
                    }
                    Fault::Reset(p) => {
                        if action.is_none() && rng.gen_bool(p) {
                            action = Some(RequestAction::Reset);
                        }
                    }
                    Fault::LoseAnswer(p) => {
                        if action.is_none() && rng.gen_bool(p) {
                            action = Some(RequestAction::LoseAnswer);
                        }
                    }
                    Fault::Drop(_) | Fault::Duplicate(_) | Fault::Reorder(_) => {}
                }
            }
        }
        (Duration::from_millis(latency), action)
    }

    pub(crate) fn decide_delivery(&self, rng: &mut impl Rng) -> DeliveryFaults {
        let mut out = DeliveryFaults::default();
        for rule in self
            .rules
            .iter()
            .filter(|r| r.selector.matches_deliveries())
        {
            for fault in &rule.faults {
                match *fault {
                    Fault::Drop(p) => out.drop |= rng.gen_bool(p),
                    Fault::Duplicate(p) => out.duplicate |= rng.gen_bool(p),
                    Fault::Reorder(p) => out.reorder |= rng.gen_bool(p),
                    _ => {}
                }
            }
        }
        out
    }
}

fn probability(key: &str, value: &str) -> Result<f64, SimError> {
    let p: f64 = value
        .parse()
        .map_err(|_| SimError::FaultSpec(format!("{key}: {value:?} is not a number")))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(SimError::FaultSpec(format!(
            "{key}: probability {p} is not in [0, 1]"
        )));
    }
    Ok(p)
}

fn parse_selector(s: &str) -> Result<Selector, SimError> {
    if s == "*" {
        return Ok(Selector::All);
    }
    if let Some(op) = Op::from_name(s) {
        return Ok(Selector::Operation(op));
    }
    let valid = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match s.split_once('.') {
        Some((r, m)) if valid(r) => {
            let m = m.to_ascii_lowercase();
            if ["get", "post", "put", "patch", "delete"].contains(&m.as_str()) {
                Ok(Selector::ResourceMethod(r.to_owned(), m))
            } else {
                Err(SimError::FaultSpec(format!(
                    "selector {s:?}: {m:?} is neither a method nor an operation"
                )))
            }
        }
        None if valid(s) => Ok(Selector::Resource(s.to_owned())),
        _ => Err(SimError::FaultSpec(format!("invalid selector {s:?}"))),
    }
}

fn parse_fault(s: &str) -> Result<Fault, SimError> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| SimError::FaultSpec(format!("fault {s:?} has no '='")))?;
    let (key, value) = (key.trim(), value.trim());
    Ok(match key {
        "latency_ms" => {
            let num = |v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| SimError::FaultSpec(format!("latency_ms: {v:?} is not a number")))
            };
            let (min_ms, max_ms) = match value.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(value)?, num(value)?),
            };
            if max_ms < min_ms {
                return Err(SimError::FaultSpec(format!(
                    "latency_ms: {value} is an empty range"
                )));
            }
            Fault::Latency { min_ms, max_ms }
        }
        "5xx" => Fault::Status {
            status: 500,
            p: probability(key, value)?,
        },
        "500" | "502" | "503" | "504" | "429" => Fault::Status {
            status: key
                .parse()
                .map_err(|_| SimError::FaultSpec(key.to_owned()))?,
            p: probability(key, value)?,
        },
        "hang" | "timeout" => Fault::Hang(probability(key, value)?),
        "lost_answer" => Fault::LoseAnswer(probability(key, value)?),
        "reset" => Fault::Reset(probability(key, value)?),
        "drop" => Fault::Drop(probability(key, value)?),
        "duplicate" => Fault::Duplicate(probability(key, value)?),
        "reorder" => Fault::Reorder(probability(key, value)?),
        other => return Err(SimError::FaultSpec(format!("unknown fault {other:?}"))),
    })
}

impl FromStr for FaultSpec {
    type Err = SimError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut rules = Vec::new();
        for rule in spec.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let (sel, faults) = rule
                .split_once(':')
                .ok_or_else(|| SimError::FaultSpec(format!("rule {rule:?} has no ':'")))?;
            let selector = parse_selector(sel.trim())?;
            let faults = faults
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(parse_fault)
                .collect::<Result<Vec<_>, _>>()?;
            if faults.is_empty() {
                return Err(SimError::FaultSpec(format!("rule {rule:?} names no fault")));
            }
            rules.push(FaultRule { selector, faults });
        }
        Ok(FaultSpec { rules })
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{}:", rule.selector)?;
            for (j, fault) in rule.faults.iter().enumerate() {
                if j > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{fault}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_example_spec_parses_and_prints_back() {
        let s = "persons.patch:5xx=0.2,429=0.1;*:latency_ms=5;webhooks:drop=0.1,duplicate=0.1,reorder=0.1";
        let spec = FaultSpec::parse(s).unwrap();
        assert_eq!(spec.rules.len(), 3);
        assert_eq!(
            spec.rules[0].selector,
            Selector::ResourceMethod("persons".into(), "patch".into())
        );
        assert_eq!(spec.to_string().replace("500=", "5xx="), s);
    }

    #[test]
    fn operations_ranges_and_errors_are_understood() {
        let spec = FaultSpec::parse("v2.updatePerson:hang=1; persons:latency_ms=1-3").unwrap();
        assert_eq!(
            spec.rules[0].selector,
            Selector::Operation(Op::UpdatePerson)
        );
        assert_eq!(
            spec.rules[1].faults[0],
            Fault::Latency {
                min_ms: 1,
                max_ms: 3
            }
        );
        assert!(FaultSpec::parse("persons:5xx=2").is_err());
        assert!(FaultSpec::parse("persons").is_err());
        assert!(FaultSpec::parse("persons:bogus=1").is_err());
        assert!(FaultSpec::parse("persons.fly:5xx=1").is_err());
        assert!(FaultSpec::parse("").unwrap().is_empty());
    }

    #[test]
    fn a_certain_fault_always_fires_and_only_on_its_route() {
        let spec = FaultSpec::parse("persons.patch:503=1").unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (_, a) = spec.decide_request(Op::UpdatePerson, "PATCH", &mut rng);
        assert_eq!(a, Some(RequestAction::Status(503)));
        let (_, b) = spec.decide_request(Op::GetPerson, "GET", &mut rng);
        assert_eq!(b, None);
    }
}
