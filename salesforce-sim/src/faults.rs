//! Fault injection: which requests misbehave, how, and how often.
//!
//! # Grammar
//!
//! ```text
//! spec     := rule (";" rule)*                 (empty spec = no faults)
//! rule     := selector ":" fault ("," fault)*
//! selector := "*"                              every route
//!           | RESOURCE                         oauth, sobjects, query, composite, tooling, limits
//!           | RESOURCE "." METHOD              e.g. sobjects.patch, composite.post
//!           | OPERATION                        e.g. sobject.update, query.more, oauth.token
//! fault    := "latency_ms=" N ["-" M]          added delay, always (uniform in N..=M)
//!           | STATUS "=" P                     answer with that status: 5xx (=500), 500, 502, 503, 504
//!           | "limit=" P                       403 REQUEST_LIMIT_EXCEEDED (TotalRequests)
//!           | "concurrent=" P                  403 REQUEST_LIMIT_EXCEEDED (ConcurrentPerOrgLongTxn)
//!           | "lock=" P                        400 UNABLE_TO_LOCK_ROW, nothing written (writes only)
//!           | "hang=" P                        never answer (the client times out)
//!           | "lost_answer=" P                 carry the request out, then never answer
//!           | "reset=" P                       close the connection without an answer
//! P        := probability in [0, 1]
//! ```
//!
//! A Composite call (`POST /composite`, operation `composite.composite`, resource `composite`)
//! draws its faults once, as one call; a `lock` then lands on its writing subrequests, each
//! answering 400 `UNABLE_TO_LOCK_ROW` inside the Composite answer.
//!
//! Latencies of all matching rules add up; the probabilistic faults are drawn in the order
//! written and the first hit wins. Draws come from one RNG seeded with `--seed`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

use crate::error::SfSimError;
use crate::ops::Op;

/// Which routes a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Every route.
    All,
    /// Every method on a resource (`sobjects`).
    Resource(String),
    /// One method on a resource (`sobjects.patch`).
    ResourceMethod(String, String),
    /// One operation (`sobject.update`).
    Operation(Op),
}

impl Selector {
    fn matches(&self, op: Op, method: &str) -> bool {
        match self {
            Selector::All => op != Op::Admin,
            Selector::Resource(r) => r == op.resource(),
            Selector::ResourceMethod(r, m) => r == op.resource() && m.eq_ignore_ascii_case(method),
            Selector::Operation(o) => *o == op,
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
    /// Added delay, uniform in `min_ms..=max_ms`.
    Latency {
        /// Lower bound.
        min_ms: u64,
        /// Upper bound.
        max_ms: u64,
    },
    /// Answer with this 5xx status with probability `p`.
    Status {
        /// 500, 502, 503 or 504.
        status: u16,
        /// Probability.
        p: f64,
    },
    /// 403 `REQUEST_LIMIT_EXCEEDED` "TotalRequests Limit exceeded.".
    Limit(f64),
    /// 403 `REQUEST_LIMIT_EXCEEDED` "ConcurrentPerOrgLongTxn Limit exceeded.".
    Concurrent(f64),
    /// 400 `UNABLE_TO_LOCK_ROW` on writes, nothing written.
    Lock(f64),
    /// Never answer.
    Hang(f64),
    /// Carry the request out, then never answer.
    LoseAnswer(f64),
    /// Close the connection without answering.
    Reset(f64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Latency { min_ms, max_ms } if min_ms == max_ms => {
                write!(f, "latency_ms={min_ms}")
            }
            Fault::Latency { min_ms, max_ms } => write!(f, "latency_ms={min_ms}-{max_ms}"),
            Fault::Status { status, p } => write!(f, "{status}={p}"),
            Fault::Limit(p) => write!(f, "limit={p}"),
            Fault::Concurrent(p) => write!(f, "concurrent={p}"),
            Fault::Lock(p) => write!(f, "lock={p}"),
            Fault::Hang(p) => write!(f, "hang={p}"),
            Fault::LoseAnswer(p) => write!(f, "lost_answer={p}"),
            Fault::Reset(p) => write!(f, "reset={p}"),
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

/// A parsed fault specification (see the module documentation for the grammar).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultSpec {
    /// The rules, in the order written.
    pub rules: Vec<FaultRule>,
}

/// What to do to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestAction {
    Status(u16),
    Limit,
    Concurrent,
    Lock,
    Hang,
    LoseAnswer,
    Reset,
}

impl FaultSpec {
    /// Parses the grammar in the module documentation.
    pub fn parse(spec: &str) -> Result<Self, SfSimError> {
        spec.parse()
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub(crate) fn decide(
        &self,
        op: Op,
        method: &str,
        rng: &mut impl Rng,
    ) -> (Duration, Option<RequestAction>) {
        let mut latency = 0u64;
        let mut action = None;
        for rule in self.rules.iter().filter(|r| r.selector.matches(op, method)) {
            for fault in &rule.faults {
                let (p, a) = match *fault {
                    Fault::Latency { min_ms, max_ms } => {
                        latency += if max_ms > min_ms {
                            rng.gen_range(min_ms..=max_ms)
                        } else {
                            min_ms
                        };
                        continue;
                    }
                    Fault::Status { status, p } => (p, RequestAction::Status(status)),
                    Fault::Limit(p) => (p, RequestAction::Limit),
                    Fault::Concurrent(p) => (p, RequestAction::Concurrent),
                    Fault::Lock(p) if op.writes() => (p, RequestAction::Lock),
                    Fault::Lock(_) => continue,
                    Fault::Hang(p) => (p, RequestAction::Hang),
                    Fault::LoseAnswer(p) => (p, RequestAction::LoseAnswer),
                    Fault::Reset(p) => (p, RequestAction::Reset),
                };
                if action.is_none() && rng.gen_bool(p) {
                    action = Some(a);
                }
            }
        }
        (Duration::from_millis(latency), action)
    }
}

fn probability(key: &str, value: &str) -> Result<f64, SfSimError> {
    let p: f64 = value
        .parse()
        .map_err(|_| SfSimError::FaultSpec(format!("{key}: {value:?} is not a number")))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(SfSimError::FaultSpec(format!(
            "{key}: probability {p} is not in [0, 1]"
        )));
    }
    Ok(p)
}

fn parse_selector(s: &str) -> Result<Selector, SfSimError> {
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
                Err(SfSimError::FaultSpec(format!(
                    "selector {s:?}: {m:?} is neither a method nor an operation"
                )))
            }
        }
        None if valid(s) => Ok(Selector::Resource(s.to_owned())),
        _ => Err(SfSimError::FaultSpec(format!("invalid selector {s:?}"))),
    }
}

fn parse_fault(s: &str) -> Result<Fault, SfSimError> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| SfSimError::FaultSpec(format!("fault {s:?} has no '='")))?;
    let (key, value) = (key.trim(), value.trim());
    Ok(match key {
        "latency_ms" => {
            let num = |v: &str| {
                v.trim().parse::<u64>().map_err(|_| {
                    SfSimError::FaultSpec(format!("latency_ms: {v:?} is not a number"))
                })
            };
            let (min_ms, max_ms) = match value.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(value)?, num(value)?),
            };
            if max_ms < min_ms {
                return Err(SfSimError::FaultSpec(format!(
                    "latency_ms: {value} is an empty range"
                )));
            }
            Fault::Latency { min_ms, max_ms }
        }
        "5xx" => Fault::Status {
            status: 500,
            p: probability(key, value)?,
        },
        "500" | "502" | "503" | "504" => Fault::Status {
            status: key
                .parse()
                .map_err(|_| SfSimError::FaultSpec(key.to_owned()))?,
            p: probability(key, value)?,
        },
        "limit" => Fault::Limit(probability(key, value)?),
        "concurrent" => Fault::Concurrent(probability(key, value)?),
        "lock" => Fault::Lock(probability(key, value)?),
        "hang" => Fault::Hang(probability(key, value)?),
        "lost_answer" => Fault::LoseAnswer(probability(key, value)?),
        "reset" => Fault::Reset(probability(key, value)?),
        other => return Err(SfSimError::FaultSpec(format!("unknown fault {other:?}"))),
    })
}

impl FromStr for FaultSpec {
    type Err = SfSimError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut rules = Vec::new();
        for rule in spec.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let (sel, faults) = rule
                .split_once(':')
                .ok_or_else(|| SfSimError::FaultSpec(format!("rule {rule:?} has no ':'")))?;
            let selector = parse_selector(sel.trim())?;
            let faults = faults
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(parse_fault)
                .collect::<Result<Vec<_>, _>>()?;
            if faults.is_empty() {
                return Err(SfSimError::FaultSpec(format!(
                    "rule {rule:?} names no fault"
                )));
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
    fn a_spec_parses_and_prints_back() {
        let s = "sobjects.patch:503=0.2,lock=0.1;*:latency_ms=5;query.more:lost_answer=1";
        let spec = FaultSpec::parse(s).unwrap();
        assert_eq!(spec.rules.len(), 3);
        assert_eq!(spec.to_string(), s);
        assert!(FaultSpec::parse("sobjects:5xx=2").is_err());
        assert!(FaultSpec::parse("sobjects:bogus=1").is_err());
    }

    #[test]
    fn the_lock_fault_only_hits_writes() {
        let spec = FaultSpec::parse("*:lock=1").unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(
            spec.decide(Op::Update, "PATCH", &mut rng).1,
            Some(RequestAction::Lock)
        );
        assert_eq!(spec.decide(Op::Get, "GET", &mut rng).1, None);
    }
}
