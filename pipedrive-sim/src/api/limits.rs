//! Rate limits and token costs: the per-token burst window (search has its own), the
//! company's daily token budget charged with each operation's `x-token-cost`, the counters of
//! spent tokens and refusals, and the `x-ratelimit-*` / `x-daily-*` headers of every answer.

use std::time::Instant;

use axum::http::HeaderValue;
use axum::response::Response;

use super::auth::Caller;
use crate::ops::Op;
use crate::state::State as SimState;

/// The rate-limit headers of one answer.
pub(super) struct RateHeaders(Vec<(&'static str, String)>);

impl RateHeaders {
    pub(super) fn apply(self, r: &mut Response) {
        for (k, v) in self.0 {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(k, v);
            }
        }
    }
}

/// Charges the call against the burst window and the company's daily budget.
pub(super) fn charge(
    st: &mut SimState,
    caller: &Caller,
    op: Op,
    now: i64,
    instant: Instant,
) -> (bool, RateHeaders) {
    let limits = st.limits.clone();
    let (key, limit) = if op.is_search() {
        (format!("search:{}", caller.token), limits.search_burst)
    } else if caller.oauth {
        (caller.token.clone(), limits.oauth_burst)
    } else {
        (caller.token.clone(), limits.api_token_burst)
    };
    let w = st.windows.entry(key).or_insert(crate::state::Window {
        start: instant,
        count: 0,
    });
    if instant.duration_since(w.start) >= limits.window {
        w.start = instant;
        w.count = 0;
    }
    let reset = limits
        .window
        .saturating_sub(instant.duration_since(w.start))
        .as_secs_f64()
        .ceil()
        .max(1.0) as u64;
    let burst_ok = w.count < limit;
    if burst_ok {
        w.count += 1;
    }
    let remaining = limit.saturating_sub(w.count);
    let cost = op.token_cost();
    let write = matches!(
        op,
        Op::AddPerson
            | Op::UpdatePerson
            | Op::AddDeal
            | Op::UpdateDeal
            | Op::AddActivity
            | Op::UpdateActivity
            | Op::AddWebhook
            | Op::AddPersonField
            | Op::AddPersonFieldV1
            | Op::AddOrganizationField
            | Op::DeletePersonField
            | Op::MergePersons
            | Op::AddOrganization
            | Op::UpdateOrganization
            | Op::AddProduct
            | Op::UpdateProduct
            | Op::AddLead
            | Op::UpdateLead
            | Op::AddNote
            | Op::UpdateNote
    );
    let day = now.div_euclid(86_400);
    let Some(c) = st.companies.get_mut(&caller.company_id) else {
        return (false, RateHeaders(Vec::new()));
    };
    if c.daily_day != day {
        c.daily_day = day;
        c.daily_spent = 0;
        c.daily_writes = 0;
    }
    let daily_ok = c.daily_spent + cost <= limits.daily_budget;
    let allowed = burst_ok && daily_ok;
    let traffic = st.traffic.entry(caller.company_id).or_default();
    traffic.requests += 1;
    if !allowed {
        traffic.rate_limited += 1;
    } else if !op.is_search() {
        while traffic
            .recent
            .front()
            .is_some_and(|t| instant.duration_since(*t) >= limits.window)
        {
            traffic.recent.pop_front();
        }
        traffic.recent.push_back(instant);
        traffic.max_in_window = traffic.max_in_window.max(traffic.recent.len() as u32);
    }
    let Some(c) = st.companies.get_mut(&caller.company_id) else {
        return (false, RateHeaders(Vec::new()));
    };
    if allowed {
        c.daily_spent += cost;
        if write {
            c.daily_writes += 1;
        }
    }
    let daily_left = limits.daily_budget.saturating_sub(c.daily_spent);
    let writes_left = limits.daily_write_requests.saturating_sub(c.daily_writes);
    let mut h = vec![
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            if allowed {
                remaining.to_string()
            } else {
                "0".to_owned()
            },
        ),
        ("x-ratelimit-reset", reset.to_string()),
        (
            "x-daily-ratelimit-token-limit",
            limits.daily_budget.to_string(),
        ),
        ("x-daily-ratelimit-token-remaining", daily_left.to_string()),
    ];
    if !caller.oauth {
        h.push(("x-daily-requests-left", writes_left.to_string()));
    }
    if allowed {
        st.counters.spent_total += cost;
        *st.counters
            .spent_by_token
            .entry(caller.token.clone())
            .or_default() += cost;
    } else {
        st.counters.rate_limited += 1;
    }
    (allowed, RateHeaders(h))
}
