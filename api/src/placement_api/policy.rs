//! Placement's policy rules (placement/policies/*.py) and the noauth2
//! credentials they are checked against: legacy defaults (each rule also
//! passes on its deprecated `role:admin`), secure RBAC defaults
//! (`enforce_new_defaults`), project scope, and overrides from config.

use std::collections::HashMap;

pub use crate::auth::Credentials;

/// (name, check string, deprecated check string)
const BASE_RULES: &[(&str, &str, Option<&str>)] = &[
    ("admin_api", "role:admin", None),
    ("service_api", "role:service", Some("role:admin")),
    ("admin_or_service_api", "role:admin or role:service", Some("role:admin")),
    ("project_reader_api", "role:reader and project_id:%(project_id)s", Some("role:admin")),
    (
        "admin_or_project_reader_or_service_api",
        "role:admin or rule:project_reader_api or role:service",
        Some("role:admin"),
    ),
];

/// Every API rule and its default.
pub const API_RULES: &[(&str, &str)] = &[
    ("placement:resource_providers:list", "rule:admin_or_service_api"),
    ("placement:resource_providers:create", "rule:admin_or_service_api"),
    ("placement:resource_providers:show", "rule:admin_or_service_api"),
    ("placement:resource_providers:update", "rule:admin_or_service_api"),
    ("placement:resource_providers:delete", "rule:admin_or_service_api"),
    ("placement:resource_classes:list", "rule:admin_or_service_api"),
    ("placement:resource_classes:create", "rule:admin_or_service_api"),
    ("placement:resource_classes:show", "rule:admin_or_service_api"),
    ("placement:resource_classes:update", "rule:admin_or_service_api"),
    ("placement:resource_classes:delete", "rule:admin_or_service_api"),
    ("placement:resource_providers:inventories:list", "rule:admin_or_service_api"),
    ("placement:resource_providers:inventories:create", "rule:admin_or_service_api"),
    ("placement:resource_providers:inventories:show", "rule:admin_or_service_api"),
    ("placement:resource_providers:inventories:update", "rule:admin_or_service_api"),
    ("placement:resource_providers:inventories:delete", "rule:admin_or_service_api"),
    ("placement:resource_providers:aggregates:list", "rule:admin_or_service_api"),
    ("placement:resource_providers:aggregates:update", "rule:admin_or_service_api"),
    ("placement:resource_providers:usages", "rule:admin_or_service_api"),
    ("placement:usages", "rule:admin_or_project_reader_or_service_api"),
    ("placement:traits:list", "rule:admin_or_service_api"),
    ("placement:traits:show", "rule:admin_or_service_api"),
    ("placement:traits:update", "rule:admin_or_service_api"),
    ("placement:traits:delete", "rule:admin_or_service_api"),
    ("placement:resource_providers:traits:list", "rule:admin_or_service_api"),
    ("placement:resource_providers:traits:update", "rule:admin_or_service_api"),
    ("placement:resource_providers:traits:delete", "rule:admin_or_service_api"),
    ("placement:allocations:manage", "rule:admin_or_service_api"),
    ("placement:allocations:list", "rule:admin_or_service_api"),
    ("placement:allocations:update", "rule:admin_or_service_api"),
    ("placement:allocations:delete", "rule:admin_or_service_api"),
    ("placement:resource_providers:allocations:list", "rule:admin_or_service_api"),
    ("placement:allocation_candidates:list", "rule:admin_or_service_api"),
    ("placement:reshaper:reshape", "rule:service_api"),
];

/// The policy enforcer.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `[oslo_policy] enforce_new_defaults`: when false, each base rule
    /// also passes on its deprecated check (`role:admin`).
    pub enforce_new_defaults: bool,
    /// Rule overrides (a policy file's content), name to check string.
    pub overrides: HashMap<String, String>,
}

impl Policy {
    /// Whether `creds` may perform `action` on a target owned by
    /// `target_project`.
    pub fn allows(&self, action: &str, creds: &Credentials, target_project: Option<&str>) -> bool {
        // Every Placement rule is project-scoped: a system-scoped token is
        // refused (oslo.policy's InvalidScope) unless a rule is opened.
        if creds.system_scope.is_some() && self.overrides.get(action).map(String::as_str) != Some("@") {
            return false;
        }
        self.rule(action, creds, target_project, 0)
    }

    fn rule(&self, name: &str, creds: &Credentials, target: Option<&str>, depth: usize) -> bool {
        if depth > 16 {
            return false;
        }
        if let Some(check) = self.overrides.get(name) {
            return self.check(check, creds, target, depth);
        }
        if let Some((_, check, deprecated)) = BASE_RULES.iter().find(|(n, _, _)| *n == name) {
            let new = self.check(check, creds, target, depth);
            return match deprecated {
                Some(old) if !self.enforce_new_defaults => new || self.check(old, creds, target, depth),
                _ => new,
            };
        }
        if let Some((_, check)) = API_RULES.iter().find(|(n, _)| *n == name) {
            return self.check(check, creds, target, depth);
        }
        false
    }

    fn check(&self, expr: &str, creds: &Credentials, target: Option<&str>, depth: usize) -> bool {
        let expr = expr.trim();
        if expr.is_empty() || expr == "@" {
            return true;
        }
        if expr == "!" {
            return false;
        }
        if expr.contains(" or ") {
            return expr.split(" or ").any(|e| self.check(e, creds, target, depth));
        }
        if expr.contains(" and ") {
            return expr.split(" and ").all(|e| self.check(e, creds, target, depth));
        }
        let expr = expr.trim_matches(|c| c == '(' || c == ')');
        if let Some(expr) = expr.strip_prefix("not ") {
            return !self.check(expr, creds, target, depth);
        }
        match expr.split_once(':') {
            Some(("role", r)) => creds.has_role(r),
            Some(("rule", r)) => self.rule(r, creds, target, depth + 1),
            Some(("project_id", "%(project_id)s")) => {
                creds.project_id.is_some() && creds.project_id.as_deref() == target
            }
            _ => false,
        }
    }
}
