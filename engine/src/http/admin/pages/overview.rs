//! The overview: every connection in one table (state, last sync, pending writes, dead
//! letters, daily budget), sortable, filterable and paged by query parameters, so it works
//! without JavaScript and a view can be bookmarked.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::sync::connections::admin::{self, ConnectionStatus};

/// Rows per page.
const PAGE_SIZE: usize = 25;

/// The view, as query parameters: `q` (name, id or API domain contains), `state`, `sort`
/// (`name`, `state`, `last_sync`, `pending`, `dead`, `budget`), `dir` (`asc`, `desc`), `page`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(super) struct View {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

impl View {
    fn sort(&self) -> &str {
        self.sort.as_deref().unwrap_or("name")
    }

    fn descending(&self) -> bool {
        self.dir.as_deref() == Some("desc")
    }

    fn page(&self) -> usize {
        self.page.unwrap_or(1).max(1)
    }

    /// This view's URL with some parameters changed.
    fn href(&self, sort: Option<&str>, descending: bool, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(q) = self.q.as_deref().filter(|q| !q.is_empty()) {
            query.append_pair("q", q);
        }
        if let Some(state) = self.state.as_deref().filter(|s| !s.is_empty()) {
            query.append_pair("state", state);
        }
        query.append_pair("sort", sort.unwrap_or(self.sort()));
        query.append_pair("dir", if descending { "desc" } else { "asc" });
        query.append_pair("page", &page.to_string());
        format!("/admin/overview?{}", query.finish())
    }
}

/// One connection's row.
pub(super) struct Row {
    status: ConnectionStatus,
    last_sync: String,
    budget_left: Option<i64>,
    budget_total: Option<i64>,
}

impl Row {
    fn budget(&self) -> String {
        match (self.budget_left, self.budget_total) {
            (Some(left), Some(total)) => format!("{left} of {total} tokens left"),
            (Some(left), None) => format!("{left} tokens left"),
            _ => "not reported yet".to_owned(),
        }
    }
}

/// A sortable column's header.
struct Column {
    key: &'static str,
    label: &'static str,
    href: String,
    /// `▲`/`▼` on the column the view is sorted by.
    mark: &'static str,
}

#[derive(askama::Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage<'a> {
    chrome: Chrome<'a>,
    view: &'a View,
    columns: Vec<Column>,
    rows: &'a [Row],
    total: usize,
    page: usize,
    pages: usize,
    previous: Option<String>,
    next: Option<String>,
    states: &'static [&'static str],
}

const STATES: &[&str] = &[
    "connected",
    "syncing",
    "stuck",
    "token_expired",
    "not_authorised",
    "app_removed",
    "disconnected",
];

/// Filters, sorts and pages `rows`; returns the page's rows and how many matched.
fn arrange(mut rows: Vec<Row>, view: &View) -> (Vec<Row>, usize) {
    let needle = view.q.as_deref().unwrap_or("").trim().to_lowercase();
    rows.retain(|r| {
        let s = &r.status;
        (needle.is_empty()
            || s.name.to_lowercase().contains(&needle)
            || s.id.to_string().contains(&needle)
            || s.api_domain.to_lowercase().contains(&needle))
            && view
                .state
                .as_deref()
                .filter(|w| !w.is_empty())
                .is_none_or(|wanted| s.state == wanted)
    });
    rows.sort_by(|a, b| {
        let (x, y) = (&a.status, &b.status);
        let order = match view.sort() {
            "state" => x.state.cmp(&y.state),
            "last_sync" => x.last_success_at.cmp(&y.last_success_at),
            "pending" => x.pending.cmp(&y.pending),
            "dead" => x.dead.cmp(&y.dead),
            "budget" => a.budget_left.cmp(&b.budget_left),
            _ => x.name.to_lowercase().cmp(&y.name.to_lowercase()),
        };
        order.then_with(|| x.id.cmp(&y.id))
    });
    if view.descending() {
        rows.reverse();
    }
    let total = rows.len();
    let page: Vec<Row> = rows
        .into_iter()
        .skip((view.page() - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    (page, total)
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(view): Query<View>,
) -> Response {
    let list = match admin::list_connections(&state.engine).await {
        Ok(list) => list,
        Err(e) => return error_page(&api_error(e)),
    };
    let limiters = state.engine.crm.limiters();
    let rows = list
        .into_iter()
        .map(|status| {
            let budget = limiters.get(status.id);
            Row {
                last_sync: status.last_success_at.map_or_else(
                    || "never".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
                ),
                budget_left: budget.as_ref().and_then(|b| b.daily_left()),
                budget_total: budget.as_ref().and_then(|b| b.daily_total()),
                status,
            }
        })
        .collect();
    let (rows, total) = arrange(rows, &view);
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = view.page();
    let columns = [
        ("name", "Connection"),
        ("state", "State"),
        ("last_sync", "Last sync"),
        ("pending", "Pending writes"),
        ("dead", "Dead letters"),
        ("budget", "Daily budget"),
    ]
    .into_iter()
    .map(|(key, label)| {
        let current = view.sort() == key;
        Column {
            key,
            label,
            href: view.href(Some(key), current && !view.descending(), 1),
            mark: match (current, view.descending()) {
                (true, false) => " ▲",
                (true, true) => " ▼",
                _ => "",
            },
        }
    })
    .collect();
    render(
        StatusCode::OK,
        &OverviewPage {
            chrome: Chrome::new("Overview", admin.csrf.as_deref(), None),
            view: &view,
            columns,
            rows: &rows,
            total,
            page,
            pages,
            previous: (page > 1).then(|| view.href(None, view.descending(), page - 1)),
            next: (page < pages).then(|| view.href(None, view.descending(), page + 1)),
            states: STATES,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: &str, pending: u64) -> Row {
        Row {
            status: ConnectionStatus {
                id: uuid::Uuid::new_v4().into(),
                crm: "pipedrive".to_owned(),
                name: name.to_owned(),
                state: state.to_owned(),
                label: String::new(),
                auth_kind: "api_token".to_owned(),
                api_domain: format!("https://{name}.pipedrive.com"),
                company_id: None,
                user_id: None,
                paused: false,
                receives_list: true,
                tenant: "default".to_owned(),
                apid_field_key: None,
                last_success_at: None,
                last_error: None,
                token_expires_at: None,
                pending,
                failed: 0,
                dead: 0,
                initial_sync_done: None,
                linked_persons: 0,
                webhooks_paused: Vec::new(),
                owner: None,
                mirror: None,
                created_at: chrono::Utc::now(),
            },
            last_sync: String::new(),
            budget_left: None,
            budget_total: None,
        }
    }

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.status.name.as_str()).collect()
    }

    #[test]
    fn the_overview_filters_sorts_and_pages() {
        let rows = vec![
            row("beta", "connected", 3),
            row("alpha", "stuck", 9),
            row("gamma", "connected", 1),
        ];
        let view = View {
            sort: Some("pending".into()),
            dir: Some("desc".into()),
            ..View::default()
        };
        let (page, total) = arrange(rows, &view);
        assert_eq!((names(&page), total), (vec!["alpha", "beta", "gamma"], 3));
        let view = View {
            state: Some("connected".into()),
            q: Some("GAM".into()),
            ..View::default()
        };
        let (page, total) = arrange(page, &view);
        assert_eq!((names(&page), total), (vec!["gamma"], 1));
        let many: Vec<Row> = (0..60)
            .map(|i| row(&format!("c{i:02}"), "connected", 0))
            .collect();
        let view = View {
            page: Some(3),
            ..View::default()
        };
        let (page, total) = arrange(many, &view);
        assert_eq!((page.len(), total), (10, 60));
        assert_eq!(page[0].status.name, "c50");
    }

    #[test]
    fn links_keep_the_view_and_encode_its_values() {
        let view = View {
            q: Some("a&b <c>".into()),
            sort: Some("dead".into()),
            ..View::default()
        };
        assert_eq!(
            view.href(None, true, 2),
            "/admin/overview?q=a%26b+%3Cc%3E&sort=dead&dir=desc&page=2"
        );
    }
}
