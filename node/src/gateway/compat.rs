//! The compatibility API's routes (`/get_ips`, `/get_allowed_ips`,
//! `/get_known_ips`, `/add_ips`, `/allow_ip`; [`handlers`] does the work)
//! and their OpenAPI description: each route's `#[utoipa::path]`, the
//! bodies as schemas. [`CompatDoc`] is merged into the one document at
//! `/openapi.json` (see [`super::v1::openapi`]). The list items' schema is
//! derived from the very struct that renders them
//! ([`ItemJson`]); the list bodies, written by
//! hand for speed, are described by [`ListAll`] and [`ListPage`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::Shared;
use super::error::ApiError;
use super::handlers::{self, Params};
use super::lifecycle::Status;
use super::listener::Peer;

type S = State<Arc<Shared>>;
type P = ConnectInfo<Peer>;

/// Every error of this API: `{"error": "what went wrong"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatError {
    /// What went wrong, for people.
    pub error: String,
}

/// A list without `page`: every matching item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListAll {
    /// The items, in address order.
    pub items: Vec<ItemJson<'static>>,
    /// How many items match.
    pub total_items: u64,
    /// The search, lowercased (empty: none).
    pub search_ip: String,
    /// Matching items per jail (`unknown`: no jail).
    pub jail_counts: BTreeMap<String, u64>,
    /// `total_items` again, for the earlier client.
    pub total: u64,
}

/// A list with `page`: one page of the matching items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListPage {
    /// The page's items, in address order.
    pub items: Vec<ItemJson<'static>>,
    /// Where the page stands.
    pub pagination: Pagination,
    /// Matching items per jail (`unknown`: no jail).
    pub jail_counts: BTreeMap<String, u64>,
    /// How many items match, for the earlier client.
    pub total: u64,
}

/// Where a page stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    /// How many items match.
    pub total_items: u64,
    /// Pages of `items_per_page`.
    pub total_pages: u64,
    /// This page, from 1.
    pub current_page: u64,
    /// Items per page (at most 1000).
    pub items_per_page: u64,
    /// The search, lowercased.
    pub search_ip: String,
}

/// A list answer: unpaged without `page`, paged with it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ListAnswer {
    /// Without `page`.
    All(ListAll),
    /// With `page`.
    Page(ListPage),
}

/// The body of `POST /add_ips` (`status` and `reported_by`, which the old
/// client may send, are ignored: the gateway records `NAME@ADDRESS`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AddIps {
    /// Addresses to ban; an entry that is not one address (a network, a
    /// number, text) is reported in `invalid_ips`, not refused.
    #[schema(min_items = 1)]
    pub ips: Vec<Value>,
    /// Why (the records' reason).
    pub description: Option<String>,
    /// The jail.
    pub jail: Option<String>,
}

/// The answer to `POST /add_ips`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedIps {
    /// `N addresses added`.
    pub message: String,
    /// The addresses banned now or already banned by this request's
    /// records (allowed addresses and current bans are left alone).
    pub added_ips: Vec<String>,
    /// The entries that were not banned, and why.
    pub invalid_ips: Vec<InvalidIp>,
}

/// An `ips` entry not banned.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidIp {
    /// The entry as sent.
    pub ip: Value,
    /// Why it was not banned.
    pub error: String,
}

/// The body of `POST /allow_ip`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllowIp {
    /// One blocked address (any IPv6 spelling; the pattern gives the two
    /// plain forms).
    #[schema(
        pattern = "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$|^[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){7}$"
    )]
    pub ip: String,
}

/// The answer to `POST /allow_ip`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllowedIp {
    /// `ADDRESS is allowed`.
    pub message: String,
    /// The address, normalised.
    pub ip: String,
    /// `allowed`.
    pub status: String,
}

/// The compatibility API's part of the document.
#[derive(OpenApi)]
#[openapi(
    paths(get_ips, get_allowed_ips, get_known_ips, add_ips, allow_ip),
    components(schemas(
        CompatError, ListAll, ListPage, Pagination, ListAnswer, ItemJson, AddIps, AddedIps,
        InvalidIp, AllowIp, AllowedIp
    )),
    tags((name = "compat", description = "the Fail2BanSync API, as its clients use it"))
)]
pub struct CompatDoc;

/// The routes, at the root.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/get_ips", get(get_ips))
        .route("/get_allowed_ips", get(get_allowed_ips))
        .route("/get_known_ips", get(get_known_ips))
        .route("/add_ips", post(add_ips))
        .route("/allow_ip", post(allow_ip))
}

/// Blocked addresses: every match without `page`, one page with it.
#[utoipa::path(get, path = "/get_ips", tag = "compat",
    params(ListQuery),
    responses(
        (status = 200, body = ListAnswer),
        (status = 400, body = CompatError), (status = 401, body = CompatError),
        (status = 503, body = CompatError),
    ),
    security(("bearer" = [])))]
async fn get_ips(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, q: Params) -> Response {
    handlers::list(s, Status::Blocked, headers, peer, q).await.unwrap_or_else(into_response)
}

/// Allowed addresses (released by hand, or in the window after a ban).
#[utoipa::path(get, path = "/get_allowed_ips", tag = "compat",
    params(ListQuery),
    responses(
        (status = 200, body = ListAnswer),
        (status = 400, body = CompatError), (status = 401, body = CompatError),
        (status = 503, body = CompatError),
    ),
    security(("bearer" = [])))]
async fn get_allowed_ips(
    State(s): S,
    ConnectInfo(peer): P,
    headers: HeaderMap,
    q: Params,
) -> Response {
    handlers::list(s, Status::Allowed, headers, peer, q).await.unwrap_or_else(into_response)
}

/// Known addresses (banned before; a new ban escalates).
#[utoipa::path(get, path = "/get_known_ips", tag = "compat",
    params(ListQuery),
    responses(
        (status = 200, body = ListAnswer),
        (status = 400, body = CompatError), (status = 401, body = CompatError),
        (status = 503, body = CompatError),
    ),
    security(("bearer" = [])))]
async fn get_known_ips(
    State(s): S,
    ConnectInfo(peer): P,
    headers: HeaderMap,
    q: Params,
) -> Response {
    handlers::list(s, Status::Known, headers, peer, q).await.unwrap_or_else(into_response)
}

/// Bans addresses (body may be gzip-compressed, `Content-Encoding: gzip`).
#[utoipa::path(post, path = "/add_ips", tag = "compat", request_body = AddIps,
    responses(
        (status = 201, body = AddedIps),
        (status = 400, body = CompatError), (status = 401, body = CompatError),
        (status = 403, body = CompatError), (status = 408, body = CompatError),
        (status = 413, body = CompatError), (status = 415, body = CompatError),
        (status = 503, body = CompatError),
    ),
    security(("bearer" = [])))]
async fn add_ips(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, body: Body) -> Response {
    handlers::add_ips(s, headers, peer, body).await.unwrap_or_else(into_response)
}

/// Releases a blocked address: allowed for `allowed_duration`.
#[utoipa::path(post, path = "/allow_ip", tag = "compat", request_body = AllowIp,
    responses(
        (status = 200, body = AllowedIp),
        (status = 400, body = CompatError), (status = 401, body = CompatError),
        (status = 403, body = CompatError), (status = 404, body = CompatError),
        (status = 408, body = CompatError), (status = 413, body = CompatError),
        (status = 415, body = CompatError), (status = 503, body = CompatError),
    ),
    security(("bearer" = [])))]
async fn allow_ip(State(s): S, ConnectInfo(peer): P, headers: HeaderMap, body: Body) -> Response {
    handlers::allow_ip(s, headers, peer, body).await.unwrap_or_else(into_response)
}

fn into_response(error: ApiError) -> Response {
    axum::response::IntoResponse::into_response(error)
}

/// The lists' query (documentation only: the handler reads the pairs
/// itself, so that an empty value reads as absent).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// Only addresses containing this text (case-insensitive; at most 100
    /// characters).
    #[param(max_length = 100)]
    search_ip: Option<String>,
    /// The page, from 1; given empty, page 1. Without it, every match.
    #[param(schema_with = positive_integer)]
    page: Option<u64>,
    /// Items per page (default 50, at most 1000: more is cut to 1000).
    #[param(schema_with = positive_integer)]
    per_page: Option<u64>,
    /// `per_page`, as the earlier client names it.
    #[param(schema_with = positive_integer)]
    page_size: Option<u64>,
}

/// A whole number of at least 1, of any size (the handler reads numbers
/// beyond its range as the largest it has, as the old server's Python did),
/// or nothing (`page=`: page 1; `per_page=`: the default).
fn positive_integer() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^\\s*$")))
        .build();
    Schema::OneOf(one_of)
}

/// One listed address, as the old server wrote its rows: the schema of what
/// `snapshot::Item::write_json` writes by hand (`snapshot/tests.rs` checks the
/// writer against these fields serialised by serde).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CompatItem)]
pub struct ItemJson<'a> {
    /// A number stable for the address (the old server's row id).
    pub id: u64,
    /// The address, normalised.
    pub ip_address: &'a str,
    /// The ban's reason.
    pub description: Option<&'a str>,
    /// `blocked`, `allowed` or `known`.
    #[schema(pattern = "^(blocked|allowed|known)$")]
    pub status: &'static str,
    /// Who reported it, `NAME@ADDRESS` (gateway) or the node's name.
    pub reported_by: Option<&'a str>,
    /// When the ban ends (or ended), local time: `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    pub blocked_until: Option<String>,
    /// Since when it is allowed, in the same form.
    pub allowed_since: Option<String>,
    /// How many bans it has had.
    pub block_count: u32,
    /// The ban's jail.
    pub jail: Option<&'a str>,
}
