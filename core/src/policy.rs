//! The workload policy: which images, ServiceAccounts and priority classes a `spec.template`
//! (TrainingJob, ModelDeployment) may name. Whoever may create these kinds may run pods in their
//! namespace, so the cluster's administrator decides what those pods may be (docs/security.md).
//! The chart writes the same lists into a ValidatingAdmissionPolicy that refuses a spec at
//! `kubectl apply`; the operator checks again, so a spec that got through (an older API server,
//! a policy tightened after the object was made) is Stalled, not run.

use modelops_api::common::PodTemplate;

/// What a pod template may name. An unset field is always allowed: the operator's own worker
/// images, the namespace's default ServiceAccount (with no token mounted) and no priority class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadPolicy {
    /// Allowed images: an entry that ends in `/`, `:` or `@` allows every image that starts with
    /// it (`registry.example/ml/`, `registry.example/ml/serve:`); any other entry allows that
    /// image only. `*` allows any image.
    pub images: Vec<String>,
    /// Allowed `serviceAccountName`s; `*` allows any.
    pub service_accounts: Vec<String>,
    /// Allowed `priorityClassName`s; `*` allows any.
    pub priority_classes: Vec<String>,
    /// The Prometheus addresses a Monitor's `prometheus` metric may query: an entry allows that
    /// URL and every path below it (`http://prometheus.monitoring:9090` allows
    /// `http://prometheus.monitoring:9090/tenant-a`); `*` allows any. None by default: a query
    /// is an HTTP request from the operator's network position, and its answer shows in the
    /// Monitor's status.
    pub prometheus_addresses: Vec<String>,
}

/// Whether `address` (a Monitor's `prometheus.address`) is one `entry` allows: the same URL, or
/// one below it on a path boundary. A trailing `/` on either side is ignored.
pub fn prometheus_address_allowed(entry: &str, address: &str) -> bool {
    if entry == "*" {
        return true;
    }
    let entry = entry.trim_end_matches('/');
    let address = address.trim_end_matches('/');
    !entry.is_empty()
        && (address == entry
            || address
                .strip_prefix(entry)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// Whether `image` is one `entry` allows.
pub fn image_allowed(entry: &str, image: &str) -> bool {
    entry == "*"
        || image == entry
        || (entry.ends_with(['/', ':', '@'])
            && image.starts_with(entry)
            && image.len() > entry.len())
}

impl WorkloadPolicy {
    /// Checks the template at `field` (e.g. `spec.template`); the error names the field, what is
    /// allowed and where that is set.
    pub fn check(&self, field: &str, template: &PodTemplate) -> Result<(), String> {
        if let Some(image) = &template.image
            && !self.images.iter().any(|entry| image_allowed(entry, image))
        {
            return Err(format!(
                "{field}.image: {image:?} is not allowed by the cluster's workload policy (allowed: {}); leave it unset for the operator's worker image, or ask the cluster's administrator to add it to the chart's policy.images",
                list(&self.images)
            ));
        }
        let named = [
            (
                "serviceAccountName",
                &template.service_account_name,
                &self.service_accounts,
                "policy.serviceAccounts",
            ),
            (
                "priorityClassName",
                &template.priority_class_name,
                &self.priority_classes,
                "policy.priorityClasses",
            ),
        ];
        for (key, value, allowed, value_name) in named {
            if let Some(value) = value
                && !allowed.iter().any(|a| a == "*" || a == value)
            {
                return Err(format!(
                    "{field}.{key}: {value:?} is not allowed by the cluster's workload policy (allowed: {}); leave it unset, or ask the cluster's administrator to add it to the chart's {value_name}",
                    list(allowed)
                ));
            }
        }
        Ok(())
    }
}

impl WorkloadPolicy {
    /// Checks a Monitor's `prometheus.address` at `field`; the error names the field, what is
    /// allowed and where that is set.
    pub fn check_prometheus(&self, field: &str, address: &str) -> Result<(), String> {
        if self
            .prometheus_addresses
            .iter()
            .any(|entry| prometheus_address_allowed(entry, address))
        {
            return Ok(());
        }
        Err(format!(
            "{field}: {address:?} is not a Prometheus this operator may query (allowed: {}); use one of those, or ask the cluster's administrator to add it to the chart's policy.prometheusAddresses",
            list(&self.prometheus_addresses)
        ))
    }
}

fn list(entries: &[String]) -> String {
    if entries.is_empty() {
        "none".into()
    } else {
        entries.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> WorkloadPolicy {
        WorkloadPolicy {
            images: vec!["modelops/worker:dev".into(), "registry.example/ml/".into()],
            service_accounts: vec!["trainer".into()],
            priority_classes: vec![],
            prometheus_addresses: vec![],
        }
    }

    fn template(image: Option<&str>, sa: Option<&str>, pc: Option<&str>) -> PodTemplate {
        PodTemplate {
            image: image.map(Into::into),
            service_account_name: sa.map(Into::into),
            priority_class_name: pc.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn unset_fields_are_always_allowed() {
        assert_eq!(
            WorkloadPolicy::default().check("spec.template", &PodTemplate::default()),
            Ok(())
        );
    }

    #[test]
    fn images_match_exactly_or_below_a_prefix_that_ends_in_a_separator() {
        let p = policy();
        for ok in [
            "modelops/worker:dev",
            "registry.example/ml/serve:1",
            "registry.example/ml/a/b@sha256:00",
        ] {
            assert_eq!(
                p.check("spec.template", &template(Some(ok), None, None)),
                Ok(()),
                "{ok}"
            );
        }
        for refused in [
            "modelops/worker:dev-evil",
            "modelops/worker:devx",
            "registry.example/ml",
            "registry.example/ml-evil/x:1",
            "docker.io/modelops/worker:dev",
        ] {
            let e = p
                .check("spec.template", &template(Some(refused), None, None))
                .unwrap_err();
            assert!(e.starts_with("spec.template.image: "), "{e}");
            assert!(
                e.contains("modelops/worker:dev, registry.example/ml/"),
                "{e}"
            );
            assert!(e.contains("policy.images"), "{e}");
        }
        assert!(image_allowed("*", "anything:1"));
    }

    #[test]
    fn service_accounts_and_priority_classes_must_be_listed() {
        let p = policy();
        assert_eq!(
            p.check("spec.template", &template(None, Some("trainer"), None)),
            Ok(())
        );
        let e = p
            .check("spec.template", &template(None, Some("admin"), None))
            .unwrap_err();
        assert!(
            e.starts_with("spec.template.serviceAccountName: \"admin\""),
            "{e}"
        );
        assert!(e.contains("policy.serviceAccounts"), "{e}");
        let e = p
            .check(
                "spec.template",
                &template(None, None, Some("system-cluster-critical")),
            )
            .unwrap_err();
        assert!(e.starts_with("spec.template.priorityClassName: "), "{e}");
        assert!(e.contains("(allowed: none)"), "{e}");
        let any = WorkloadPolicy {
            priority_classes: vec!["*".into()],
            ..policy()
        };
        assert_eq!(
            any.check("spec.template", &template(None, None, Some("high"))),
            Ok(())
        );
    }

    #[test]
    fn prometheus_addresses_match_exactly_or_below_on_a_path_boundary() {
        let policy = WorkloadPolicy {
            prometheus_addresses: vec!["http://prom.monitoring:9090/".into()],
            ..policy()
        };
        for allowed in [
            "http://prom.monitoring:9090",
            "http://prom.monitoring:9090/",
            "http://prom.monitoring:9090/tenant-a",
        ] {
            assert_eq!(policy.check_prometheus("f", allowed), Ok(()), "{allowed}");
        }
        for refused in [
            "http://prom.monitoring:90901",
            "http://prom.monitoring:9090.evil.example",
            "https://prom.monitoring:9090",
            "http://prom.monitoring",
        ] {
            let e = policy.check_prometheus("spec.metrics[0].prometheus.address", refused);
            let e = e.unwrap_err();
            assert!(
                e.starts_with("spec.metrics[0].prometheus.address: ")
                    && e.contains("(allowed: http://prom.monitoring:9090/)")
                    && e.contains("policy.prometheusAddresses"),
                "{e}"
            );
        }
        let e = WorkloadPolicy::default()
            .check_prometheus("f", "http://x:9090")
            .unwrap_err();
        assert!(e.contains("(allowed: none)"), "{e}");
        assert!(prometheus_address_allowed("*", "https://anything"));
        assert!(!prometheus_address_allowed("", "http://x"));
    }
}
