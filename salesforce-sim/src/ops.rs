//! The operations the simulator serves, named as the call counters and fault selectors name
//! them, and the router from (method, path) to an operation and its path parameters.

use axum::http::Method;

macro_rules! ops {
    ($($v:ident => $name:literal, $res:literal, $write:literal;)*) => {
        /// One served operation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op { $(#[doc = $name] $v,)* }

        impl Op {
            /// Every operation.
            pub const ALL: &'static [Op] = &[$(Op::$v,)*];

            /// Its name, e.g. `sobject.create`.
            pub fn name(self) -> &'static str { match self { $(Op::$v => $name,)* } }

            /// Its resource (fault selectors): `oauth`, `sobjects`, `query`, `composite`, ...
            pub fn resource(self) -> &'static str { match self { $(Op::$v => $res,)* } }

            /// Whether it writes records (the `lock` fault applies to these only).
            pub fn writes(self) -> bool { match self { $(Op::$v => $write,)* } }
        }
    };
}

ops! {
    OauthAuthorize => "oauth.authorize", "oauth", false;
    OauthToken => "oauth.token", "oauth", false;
    OauthRevoke => "oauth.revoke", "oauth", false;
    OauthUserinfo => "oauth.userinfo", "oauth", false;
    Identity => "identity", "oauth", false;
    Versions => "versions", "versions", false;
    Resources => "resources", "versions", false;
    Limits => "limits", "limits", false;
    DescribeGlobal => "sobjects.describeGlobal", "sobjects", false;
    SObjectBasic => "sobject.basic", "sobjects", false;
    Describe => "sobject.describe", "sobjects", false;
    Create => "sobject.create", "sobjects", true;
    Get => "sobject.get", "sobjects", false;
    Update => "sobject.update", "sobjects", true;
    Delete => "sobject.delete", "sobjects", true;
    GetByExternalId => "sobject.getByExternalId", "sobjects", false;
    Upsert => "sobject.upsert", "sobjects", true;
    Updated => "sobject.updated", "sobjects", false;
    Deleted => "sobject.deleted", "sobjects", false;
    Query => "query", "query", false;
    QueryAll => "queryAll", "query", false;
    QueryMore => "query.more", "query", false;
    CompositeCreate => "composite.create", "composite", true;
    CompositeUpdate => "composite.update", "composite", true;
    CompositeDelete => "composite.delete", "composite", true;
    CompositeRetrieve => "composite.retrieve", "composite", false;
    CompositeUpsert => "composite.upsert", "composite", true;
    Composite => "composite.composite", "composite", true;
    ToolingCreate => "tooling.create", "tooling", true;
    ToolingGet => "tooling.get", "tooling", false;
    Admin => "admin", "admin", false;
}

impl Op {
    /// Looks an operation up by its name.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// OAuth and identity endpoints: no session, no API usage.
    pub(crate) fn is_oauth(self) -> bool {
        self.resource() == "oauth"
    }
}

/// Path parameters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params {
    /// `59.0`
    pub(crate) version: String,
    pub(crate) object: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) field: Option<String>,
    /// Remaining segments of an admin path.
    pub(crate) rest: Vec<String>,
}

/// Where a request was routed.
#[derive(Debug)]
pub(crate) enum Route {
    Op(Op, Params),
    MethodNotAllowed(&'static str),
    NotFound,
}

/// Oldest and newest API versions served.
pub(crate) const MIN_VERSION: u32 = 20;
pub(crate) const MAX_VERSION: u32 = 64;

fn version(seg: &str) -> Option<String> {
    let n: u32 = seg.strip_prefix('v')?.strip_suffix(".0")?.parse().ok()?;
    (MIN_VERSION..=MAX_VERSION)
        .contains(&n)
        .then(|| format!("{n}.0"))
}

/// Routes a request. `login_host`: the request came to a login listener, which serves OAuth
/// and identity only.
pub(crate) fn route(method: &Method, path: &str, login_host: bool) -> Route {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').skip(1).collect();
    let m = method.as_str();
    let op = |op: Op| Route::Op(op, Params::default());
    match segs.as_slice() {
        ["services", "oauth2", "authorize"] => match m {
            "GET" | "POST" => op(Op::OauthAuthorize),
            _ => Route::MethodNotAllowed("GET,POST"),
        },
        ["services", "oauth2", "token"] => match m {
            "POST" => op(Op::OauthToken),
            _ => Route::MethodNotAllowed("POST"),
        },
        ["services", "oauth2", "revoke"] => match m {
            "GET" | "POST" => op(Op::OauthRevoke),
            _ => Route::MethodNotAllowed("GET,POST"),
        },
        ["services", "oauth2", "userinfo"] => match m {
            "GET" | "POST" => op(Op::OauthUserinfo),
            _ => Route::MethodNotAllowed("GET,POST"),
        },
        ["id", org, user] if m == "GET" => Route::Op(
            Op::Identity,
            Params {
                id: Some((*user).to_owned()),
                object: Some((*org).to_owned()),
                ..Params::default()
            },
        ),
        _ if login_host => Route::NotFound,
        ["__sim", rest @ ..] => Route::Op(
            Op::Admin,
            Params {
                rest: rest.iter().map(|s| (*s).to_owned()).collect(),
                ..Params::default()
            },
        ),
        ["services", "data"] => match m {
            "GET" => op(Op::Versions),
            _ => Route::MethodNotAllowed("GET"),
        },
        ["services", "data", v, rest @ ..] => {
            let Some(version) = version(v) else {
                return Route::NotFound;
            };
            let p = |object: Option<&str>, id: Option<&str>, field: Option<&str>| Params {
                version: version.clone(),
                object: object.map(str::to_owned),
                id: id.map(str::to_owned),
                field: field.map(str::to_owned),
                rest: Vec::new(),
            };
            let r = |op: Op, params: Params| Route::Op(op, params);
            match (m, rest) {
                ("GET", []) => r(Op::Resources, p(None, None, None)),
                (_, []) => Route::MethodNotAllowed("GET"),
                ("GET", ["limits"]) => r(Op::Limits, p(None, None, None)),
                ("GET", ["sobjects"]) => r(Op::DescribeGlobal, p(None, None, None)),
                ("GET", ["sobjects", t]) => r(Op::SObjectBasic, p(Some(t), None, None)),
                ("POST", ["sobjects", t]) => r(Op::Create, p(Some(t), None, None)),
                ("GET", ["sobjects", t, "describe"]) => r(Op::Describe, p(Some(t), None, None)),
                ("GET", ["sobjects", t, "updated"]) => r(Op::Updated, p(Some(t), None, None)),
                ("GET", ["sobjects", t, "deleted"]) => r(Op::Deleted, p(Some(t), None, None)),
                ("GET", ["sobjects", t, id]) => r(Op::Get, p(Some(t), Some(id), None)),
                ("PATCH", ["sobjects", t, id]) => r(Op::Update, p(Some(t), Some(id), None)),
                ("DELETE", ["sobjects", t, id]) => r(Op::Delete, p(Some(t), Some(id), None)),
                ("GET", ["sobjects", t, f, v]) => {
                    r(Op::GetByExternalId, p(Some(t), Some(v), Some(f)))
                }
                ("PATCH", ["sobjects", t, f, v]) => r(Op::Upsert, p(Some(t), Some(v), Some(f))),
                (_, ["sobjects", ..]) => Route::MethodNotAllowed("GET,PATCH,DELETE"),
                ("GET", ["query"]) => r(Op::Query, p(None, None, None)),
                ("GET", ["queryAll"]) => r(Op::QueryAll, p(None, None, None)),
                ("GET", ["query" | "queryAll", loc]) => r(Op::QueryMore, p(None, Some(loc), None)),
                (_, ["query" | "queryAll", ..]) => Route::MethodNotAllowed("GET"),
                ("POST", ["composite"]) => r(Op::Composite, p(None, None, None)),
                (_, ["composite"]) => Route::MethodNotAllowed("POST"),
                ("POST", ["composite", "sobjects"]) => r(Op::CompositeCreate, p(None, None, None)),
                ("PATCH", ["composite", "sobjects"]) => r(Op::CompositeUpdate, p(None, None, None)),
                ("DELETE", ["composite", "sobjects"]) => {
                    r(Op::CompositeDelete, p(None, None, None))
                }
                ("GET", ["composite", "sobjects", t]) => {
                    r(Op::CompositeRetrieve, p(Some(t), None, None))
                }
                ("PATCH", ["composite", "sobjects", t, f]) => {
                    r(Op::CompositeUpsert, p(Some(t), None, Some(f)))
                }
                (_, ["composite", "sobjects", ..]) => {
                    Route::MethodNotAllowed("GET,POST,PATCH,DELETE")
                }
                ("POST", ["tooling", "sobjects", t]) => {
                    r(Op::ToolingCreate, p(Some(t), None, None))
                }
                ("GET", ["tooling", "sobjects", t, id]) => {
                    r(Op::ToolingGet, p(Some(t), Some(id), None))
                }
                _ => Route::NotFound,
            }
        }
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slashes_and_versions_route_alike() {
        let a = route(&Method::POST, "/services/data/v59.0/sobjects/Lead/", false);
        let b = route(&Method::POST, "/services/data/v50.0/sobjects/Lead", false);
        assert!(matches!(a, Route::Op(Op::Create, _)));
        assert!(matches!(b, Route::Op(Op::Create, _)));
        assert!(matches!(
            route(&Method::GET, "/services/data/v99.0/sobjects", false),
            Route::NotFound
        ));
    }

    #[test]
    fn login_hosts_serve_oauth_only() {
        assert!(matches!(
            route(&Method::POST, "/services/oauth2/token", true),
            Route::Op(Op::OauthToken, _)
        ));
        assert!(matches!(
            route(&Method::GET, "/services/data/v59.0/limits", true),
            Route::NotFound
        ));
    }
}
