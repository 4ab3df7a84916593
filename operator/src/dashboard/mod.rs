//! The read-only web dashboard (`--dashboard-address`, off by default; the chart's
//! `dashboard.enabled`): a page per namespace with every object, its conditions and how they
//! link, and a page per Dataset, TrainingJob and ModelDeployment (its revisions and Monitors).
//! It reads the leader's controller caches (another replica, which has none, lists from the API
//! server) and never writes.
//!
//! Who may see what (`--dashboard-auth`):
//! - `none` (default): anyone who reaches the port sees every namespace the operator watches; it
//!   is meant to be reached through `kubectl port-forward`, which the cluster's RBAC guards.
//! - `kubernetes`: every request carries a Kubernetes bearer token (an `Authorization` header,
//!   or the cookie `/login` sets); the operator asks the API server who it is (TokenReview) and
//!   whether that user may `list` each of the four kinds in the namespace
//!   (SubjectAccessReview). A namespace it may not list is a 403 that says which kind; the list
//!   of namespaces shows only those it may.

pub mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use modelops_api::{Dataset, ModelDeployment, Monitor, TrainingJob};
use pages::View;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::controllers::Context;
use crate::metrics::{CachedObjects, Metrics};

/// The cookie `/login` sets: the caller's token, sent back with each request.
pub const TOKEN_COOKIE: &str = "modelops_dashboard_token";

/// The four kinds, as RBAC names them (`<plural>.modelops.dev`).
const PLURALS: [&str; 4] = ["datasets", "trainingjobs", "modeldeployments", "monitors"];

/// Who may see the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Auth {
    /// Anyone who reaches the port (through `kubectl port-forward`).
    #[default]
    None,
    /// Kubernetes bearer tokens, checked by TokenReview and SubjectAccessReview.
    Kubernetes,
}

/// The dashboard's state.
#[derive(Clone)]
pub struct Dashboard {
    client: Client,
    metrics: Metrics,
    /// The controllers' context: the profiles the Monitors read, and how they read them.
    ctx: Arc<Context>,
    auth: Auth,
    /// The namespaces the operator watches (`--watch-namespaces`); empty: all.
    scope: Arc<Vec<String>>,
}

impl Dashboard {
    /// A dashboard over the controllers' context: its client and caches.
    pub fn new(ctx: Arc<Context>, auth: Auth, scope: Vec<String>) -> Self {
        Self {
            client: ctx.client.clone(),
            metrics: ctx.metrics.clone(),
            ctx,
            auth,
            scope: Arc::new(scope),
        }
    }
}

/// How many revisions' pods a Dataset page asks for the profile before it gives up.
const PROFILE_TRIES: usize = 3;

/// The profile of `ds` as the Monitor reads it: from a pod serving a model trained on it (the
/// newest revision first), through the same cache. None while none serves.
async fn served_profile(d: &Dashboard, view: &View, ds: &Dataset) -> Option<pages::ServedProfile> {
    let name = ds.name_any();
    let digest = ds.status.as_ref().and_then(|s| s.digest.clone());
    let mut candidates = Vec::new();
    for md in &view.deployments {
        for revision in md.status.iter().flat_map(|s| s.revisions.iter()) {
            let Some(job) = revision
                .training_job
                .as_ref()
                .and_then(|j| view.jobs.iter().find(|o| &o.name_any() == j))
            else {
                continue;
            };
            if job.spec.dataset_ref.name != name {
                continue;
            }
            let trained = job.status.as_ref().and_then(|s| s.dataset_digest.clone());
            // The data as it is now first, then the newest revision.
            let current = trained.is_some() && trained == digest;
            candidates.push((current, revision.revision, md, trained));
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse((c.0, c.1)));
    for (_, revision, md, trained) in candidates.into_iter().take(PROFILE_TRIES) {
        let found =
            crate::controllers::monitor::profile(&d.ctx, &view.namespace, md, Some(revision)).await;
        if let Ok(Some(profile)) = found {
            return Some(pages::ServedProfile {
                profile,
                deployment: md.name_any(),
                revision,
                data_digest: trained,
            });
        }
    }
    None
}

/// Serves the dashboard until the task is dropped.
pub async fn serve(listener: TcpListener, dashboard: Dashboard) {
    let app = Router::new()
        .route("/", get(namespaces))
        .route("/style.css", get(style))
        .route("/login", get(login_form).post(login))
        .route("/namespaces/{namespace}", get(overview))
        .route("/namespaces/{namespace}/{kind}/{name}", get(object))
        .with_state(dashboard);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("dashboard: {e}");
    }
}

/// An answer that is not a page: its status and what to tell the person.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = pages::layout(
            &format!(
                "{} {}",
                self.0.as_u16(),
                self.0.canonical_reason().unwrap_or("")
            ),
            &[],
            &format!("<p class=\"refusal\">{}</p>", pages::esc(&self.1)),
            false,
        );
        let mut response = (self.0, Html(body)).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn unavailable(what: &str, error: kube::Error) -> Refusal {
    tracing::warn!("dashboard: {what}: {error}");
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{what}: the API server did not answer ({error}); try again"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::STYLE,
    )
}

/// A namespace name as Kubernetes allows it (a DNS label), else `None`: nothing else reaches
/// an API path.
fn namespace_name(text: &str) -> Option<&str> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    ok.then_some(text)
}

/// The bearer token of a request: its `Authorization` header, else the login cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Who makes the request, or `None` when anyone may (`--dashboard-auth none`).
async fn caller(d: &Dashboard, headers: &HeaderMap) -> Result<Option<UserInfo>, Refusal> {
    if d.auth == Auth::None {
        return Ok(None);
    }
    let login = "log in at /login with a Kubernetes token (kubectl create token <serviceaccount>), or send it as Authorization: Bearer";
    let token = token(headers)
        .ok_or_else(|| Refusal(StatusCode::UNAUTHORIZED, format!("no token: {login}")))?;
    let review = TokenReview {
        spec: TokenReviewSpec {
            token,
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<TokenReview> = Api::all(d.client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("checking the token", e))?;
    let status = answer.status.unwrap_or_default();
    match (status.authenticated, status.user) {
        (Some(true), Some(user)) => Ok(Some(user)),
        _ => Err(Refusal(
            StatusCode::UNAUTHORIZED,
            format!("the API server did not accept the token: {login}"),
        )),
    }
}

/// The first of the four kinds `user` may not list in `namespace`, if any.
async fn forbidden_kind(
    d: &Dashboard,
    user: &UserInfo,
    namespace: &str,
) -> Result<Option<&'static str>, Refusal> {
    let api: Api<SubjectAccessReview> = Api::all(d.client.clone());
    for plural in PLURALS {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                uid: user.uid.clone(),
                groups: user.groups.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_owned()),
                    verb: Some("list".into()),
                    group: Some("modelops.dev".into()),
                    resource: Some(plural.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| unavailable("checking what the caller may list", e))?;
        if !answer.status.is_some_and(|s| s.allowed) {
            return Ok(Some(plural));
        }
    }
    Ok(None)
}

/// Refuses a caller who may not list all four kinds in `namespace`.
async fn authorize(d: &Dashboard, headers: &HeaderMap, namespace: &str) -> Result<(), Refusal> {
    let Some(user) = caller(d, headers).await? else {
        return Ok(());
    };
    match forbidden_kind(d, &user, namespace).await? {
        None => Ok(()),
        Some(plural) => Err(Refusal(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not list {plural}.modelops.dev in namespace {namespace}: ask for a Role there that allows get and list on datasets, trainingjobs, modeldeployments and monitors of modelops.dev",
                user.username.as_deref().unwrap_or("this user")
            ),
        )),
    }
}

/// The operator's objects of `namespace` (or of every watched namespace): the leader's caches,
/// else lists from the API server.
async fn objects(d: &Dashboard, namespace: Option<&str>) -> Result<CachedObjects, Refusal> {
    if let Some(cached) = d.metrics.cached(namespace) {
        return Ok(scoped(d, cached));
    }
    async fn list<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<K>, kube::Error>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        Ok(api.list(&ListParams::default()).await?.items)
    }
    // One list per namespace when the operator watches some only (it has Roles there, and no
    // right to list cluster-wide).
    let scopes: Vec<Option<&str>> = match (namespace, d.scope.is_empty()) {
        (Some(ns), _) => vec![Some(ns)],
        (None, true) => vec![None],
        (None, false) => d.scope.iter().map(|ns| Some(ns.as_str())).collect(),
    };
    let c = &d.client;
    let mut all = CachedObjects {
        datasets: Vec::new(),
        jobs: Vec::new(),
        deployments: Vec::new(),
        monitors: Vec::new(),
    };
    for scope in scopes {
        let listed = futures::try_join!(
            list::<Dataset>(c, scope),
            list::<TrainingJob>(c, scope),
            list::<ModelDeployment>(c, scope),
            list::<Monitor>(c, scope),
        )
        .map_err(|e| unavailable("listing the modelops objects", e))?;
        all.datasets.extend(listed.0);
        all.jobs.extend(listed.1);
        all.deployments.extend(listed.2);
        all.monitors.extend(listed.3);
    }
    Ok(scoped(d, all))
}

/// Only the objects of the namespaces the operator watches.
fn scoped(d: &Dashboard, mut objects: CachedObjects) -> CachedObjects {
    if d.scope.is_empty() {
        return objects;
    }
    let keep = |ns: Option<String>| ns.is_some_and(|ns| d.scope.contains(&ns));
    objects.datasets.retain(|o| keep(o.namespace()));
    objects.jobs.retain(|o| keep(o.namespace()));
    objects.deployments.retain(|o| keep(o.namespace()));
    objects.monitors.retain(|o| keep(o.namespace()));
    objects
}

async fn view(d: &Dashboard, namespace: &str) -> Result<View, Refusal> {
    let o = objects(d, Some(namespace)).await?;
    let by_name = |a: &String, b: &String| a.cmp(b);
    let mut view = View {
        namespace: namespace.to_owned(),
        now: Some(k8s_openapi::jiff::Timestamp::now()),
        datasets: o.datasets,
        jobs: o.jobs,
        deployments: o.deployments,
        monitors: o.monitors,
    };
    view.datasets
        .sort_by(|a, b| by_name(&a.name_any(), &b.name_any()));
    view.jobs
        .sort_by(|a, b| by_name(&a.name_any(), &b.name_any()));
    view.deployments
        .sort_by(|a, b| by_name(&a.name_any(), &b.name_any()));
    view.monitors
        .sort_by(|a, b| by_name(&a.name_any(), &b.name_any()));
    Ok(view)
}

async fn namespaces(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    let result = async {
        let user = caller(&d, &headers).await?;
        let o = objects(&d, None).await?;
        let mut counts: std::collections::BTreeMap<String, [usize; 4]> = Default::default();
        let mut count = |ns: Option<String>, kind: usize| {
            if let Some(ns) = ns {
                counts.entry(ns).or_default()[kind] += 1;
            }
        };
        o.datasets.iter().for_each(|x| count(x.namespace(), 0));
        o.jobs.iter().for_each(|x| count(x.namespace(), 1));
        o.deployments.iter().for_each(|x| count(x.namespace(), 2));
        o.monitors.iter().for_each(|x| count(x.namespace(), 3));
        let mut list = Vec::new();
        for (ns, c) in counts {
            let visible = match &user {
                None => true,
                Some(user) => forbidden_kind(&d, user, &ns).await?.is_none(),
            };
            if visible {
                list.push((ns, c));
            }
        }
        Ok::<_, Refusal>(Html(pages::namespaces(&list)).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The objects of a namespace the request may see: 404 for a name that is no namespace's, 401
/// or 403 as `authorize` decides.
async fn namespace_view(
    d: &Dashboard,
    headers: &HeaderMap,
    namespace: &str,
) -> Result<View, Refusal> {
    let ns = namespace_name(namespace)
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, "no such namespace".into()))?;
    authorize(d, headers, ns).await?;
    view(d, ns).await
}

async fn overview(
    State(d): State<Dashboard>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let view = namespace_view(&d, &headers, &namespace).await?;
        Ok::<_, Refusal>(Html(pages::overview(&view)).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn object(
    State(d): State<Dashboard>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let view = namespace_view(&d, &headers, &namespace).await?;
        let ns = view.namespace.as_str();
        let missing = || {
            Refusal(
                StatusCode::NOT_FOUND,
                format!("no {kind} named {name:?} in namespace {ns}"),
            )
        };
        let page = match kind.as_str() {
            "datasets" => {
                let ds = named(&view.datasets, &name).ok_or_else(missing)?;
                let served = served_profile(&d, &view, ds).await;
                pages::dataset(&view, ds, served.as_ref())
            }
            "trainingjobs" => {
                let job = named(&view.jobs, &name).ok_or_else(missing)?;
                pages::trainingjob(&view, job)
            }
            "modeldeployments" => {
                let md = named(&view.deployments, &name).ok_or_else(missing)?;
                pages::modeldeployment(&view, md)
            }
            _ => return Err(missing()),
        };
        Ok::<_, Refusal>(Html(page).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// The object of `objects` named `name`.
fn named<'a, K: ResourceExt>(objects: &'a [K], name: &str) -> Option<&'a K> {
    objects.iter().find(|o| o.name_any() == name)
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only a path of this site: no scheme, no host, no `//` (which a browser reads as a host).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => "/".to_owned(),
    }
}

async fn login_form(State(d): State<Dashboard>, Query(next): Query<Next>) -> Response {
    if d.auth == Auth::None {
        return Redirect::to("/").into_response();
    }
    let next = local_path(next.next.as_deref());
    let body = format!(
        "<form method=\"post\" action=\"/login\"><p>A Kubernetes token (<code>kubectl create token &lt;serviceaccount&gt; -n &lt;namespace&gt;</code>); it is kept in a cookie of this site only.</p>\
         <textarea name=\"token\" required></textarea><input type=\"hidden\" name=\"next\" value=\"{}\"><p><button type=\"submit\">Log in</button></p></form>",
        pages::esc(&next)
    );
    Html(pages::layout("Log in", &[], &body, false)).into_response()
}

#[derive(Deserialize)]
struct Login {
    token: String,
    next: Option<String>,
}

async fn login(State(d): State<Dashboard>, Form(form): Form<Login>) -> Response {
    if d.auth == Auth::None {
        return Redirect::to("/").into_response();
    }
    let token = form.token.trim().to_owned();
    let valid = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    let mut headers = HeaderMap::new();
    if valid {
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("checked above"),
        );
    }
    if !valid || caller(&d, &headers).await.is_err() {
        return Refusal(
            StatusCode::UNAUTHORIZED,
            "the API server did not accept the token; log in at /login with another".into(),
        )
        .into_response();
    }
    // Lax, not Strict: sent on top-level navigations (a link from elsewhere, the redirect after
    // this login), never with another site's requests for images or forms.
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");
    let mut response = Redirect::to(&local_path(form.next.as_deref())).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dns_labels_name_a_namespace() {
        assert_eq!(namespace_name("team-a"), Some("team-a"));
        for bad in ["", "-a", "a-", "A", "a/b", "a..b", "..", &"a".repeat(64)] {
            assert_eq!(namespace_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(token(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; modelops_dashboard_token=t1"),
        );
        assert_eq!(token(&headers).as_deref(), Some("t1"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t2"));
        assert_eq!(token(&headers).as_deref(), Some("t2"));
    }

    #[test]
    fn login_redirects_only_within_the_site() {
        assert_eq!(local_path(Some("/namespaces/a")), "/namespaces/a");
        for bad in [
            None,
            Some("https://evil"),
            Some("//evil"),
            Some("/\\evil"),
            Some("x"),
        ] {
            assert_eq!(local_path(bad), "/");
        }
    }
}
