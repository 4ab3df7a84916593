//! Writing to the API server the one way every controller does: server-side apply with the field
//! manager `modelops` for children, and a whole-status apply that is skipped when nothing changed.

use super::error::{ApiContext, Error, Result};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "modelops";

/// The label every child carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The labels of a child of `owner`: `app.kubernetes.io/managed-by: modelops` and
/// `modelops.dev/<kind>: <name>`.
pub fn child_labels<K: Resource<DynamicType = ()>>(owner: &K) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned()),
        (owner_label_key::<K>(), owner.name_any()),
    ])
}

/// `modelops.dev/<kind>`, lower case: the label naming a child's owner.
pub fn owner_label_key<K: Resource<DynamicType = ()>>() -> String {
    format!("modelops.dev/{}", K::kind(&()).to_lowercase())
}

/// Server-side applies a child object (forced: the operator owns every field it sets). An
/// object of that name that the child's controlling owner does not control is left alone
/// ([`Error::NotOurs`]): forced apply would otherwise take it over.
pub async fn apply<K>(api: &Api<K>, object: &K) -> Result<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let kind = K::kind(&Default::default()).into_owned();
    let existing = api
        .get_opt(&name)
        .await
        .action(|| format!("reading {kind} {name}"))?;
    apply_over(api, object, existing.as_ref()).await
}

/// [`apply`] for a caller that has just read the object: `existing` is what it read (`None`
/// when there was none), so the API server is not asked again.
pub async fn apply_over<K>(api: &Api<K>, object: &K, existing: Option<&K>) -> Result<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let kind = K::kind(&Default::default()).into_owned();
    if let (Some(existing), Some(owner)) = (existing, controller_of(object.meta()))
        && !controlled_by(existing, &owner.uid)
    {
        return Err(Error::NotOurs {
            kind,
            name,
            owner: format!("{} {}", owner.kind, owner.name),
            owner_kind: owner.kind.clone(),
        });
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .action(|| format!("applying {} {name}", K::kind(&Default::default())))
}

/// Server-side applies a Secret, not forced and without reading it first (the operator may
/// create and patch Secrets, never read them): a Secret of that name whose fields another
/// manager set (a conflict), or that does not carry the operator's label (refused by the chart's
/// admission policy), is reported as [`Error::NotOurs`] rather than taken over.
pub async fn apply_secret(
    api: &Api<k8s_openapi::api::core::v1::Secret>,
    secret: &k8s_openapi::api::core::v1::Secret,
) -> Result<()> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    match api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(secret),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if matches!(status.code, 403 | 409 | 422) => {
            let owner = controller_of(&secret.metadata);
            let owner_kind = owner.map_or("owner".to_owned(), |o| o.kind.clone());
            Err(Error::NotOurs {
                kind: "Secret".into(),
                name,
                owner: owner.map_or(owner_kind.clone(), |o| format!("{} {}", o.kind, o.name)),
                owner_kind,
            })
        }
        Err(source) => Err(Error::Api {
            action: format!("applying Secret {name}"),
            source,
        }),
    }
}

/// Whether `child`'s controlling owner is the object of uid `owner_uid`.
pub fn controlled_by<K: Resource>(child: &K, owner_uid: &str) -> bool {
    controller_of(child.meta()).is_some_and(|r| r.uid == owner_uid)
}

/// `child` if `owner` controls it, else [`Error::NotOurs`]: what a controller does with an
/// object it found under the name its child would have.
pub fn ours<K, O>(child: K, owner: &O) -> Result<K>
where
    K: Resource,
    K::DynamicType: Default,
    O: Resource<DynamicType = ()>,
{
    if owner
        .meta()
        .uid
        .as_deref()
        .is_some_and(|uid| controlled_by(&child, uid))
    {
        return Ok(child);
    }
    let owner_kind = O::kind(&()).into_owned();
    Err(Error::NotOurs {
        kind: K::kind(&Default::default()).into_owned(),
        name: child.meta().name.clone().unwrap_or_default(),
        owner: format!(
            "{owner_kind} {}",
            owner.meta().name.as_deref().unwrap_or_default()
        ),
        owner_kind,
    })
}

/// The controlling owner reference of an object, if it has one.
fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The body of a status apply: the object's type and its whole status, nothing else (the spec
/// belongs to the user's field manager).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a, S> {
    api_version: String,
    kind: String,
    status: &'a S,
}

impl<'a, S> StatusPatch<'a, S> {
    /// The status patch of an object of kind `K`.
    fn new<K: Resource<DynamicType = ()>>(status: &'a S) -> Self {
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            status,
        }
    }
}

/// Applies `status` as the whole status of `object`, unless it equals the status the object has.
/// Returns whether it wrote.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    S: Serialize + PartialEq + Debug,
{
    if current == Some(status) {
        return Ok(false);
    }
    let name = object.name_any();
    let patch = StatusPatch::new::<K>(status);
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .action(|| format!("writing the status of {} {name}", K::kind(&())))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::Dataset;
    use serde_json::json;

    #[test]
    fn the_status_patch_serialises_as_before() {
        let status = json!({"observedGeneration": 3, "conditions": [{"type": "Ready"}]});
        let before = json!({
            "apiVersion": Dataset::api_version(&()),
            "kind": Dataset::kind(&()),
            "status": status,
        });
        assert_eq!(
            serde_json::to_value(StatusPatch::new::<Dataset>(&status)).unwrap(),
            before
        );
    }
}
