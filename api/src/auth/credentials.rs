//! Who is calling: the user, project, roles and scope a request's token
//! carries, whether noauth2 derived them from headers or Keystone from a
//! validated token. Both APIs check their policies against it.

use axum::http::HeaderMap;

/// Who is calling, as noauth2 and oslo.context derive it from headers.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub roles: Vec<String>,
    pub system_scope: Option<String>,
    /// Roles of a valid `X-Service-Token` (service-to-service calls).
    pub service_roles: Vec<String>,
    /// Whether Keystone vouched for these (not noauth2's headers): role
    /// checks then apply to every call, as Nova's policies do.
    pub from_keystone: bool,
}

impl Credentials {
    pub fn anonymous() -> Credentials {
        Credentials::default()
    }

    /// `X-Auth-Token: user[:project]`, roles from `X-Roles` (or admin for
    /// user `admin`), `X-Project-Id` and `OpenStack-System-Scope`.
    pub fn from_noauth(token: &str, headers: &HeaderMap) -> Credentials {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (user, project) = match token.split_once(':') {
            Some((u, p)) if !p.is_empty() => (u.to_string(), p.to_string()),
            Some((u, _)) => (u.to_string(), u.to_string()),
            None => (token.to_string(), token.to_string()),
        };
        let roles = match h("x-roles") {
            Some(r) => r.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect(),
            None if user == "admin" => vec!["admin".to_string()],
            None => vec![],
        };
        let system_scope = h("openstack-system-scope").filter(|s| !s.is_empty());
        let project_id = h("x-project-id").or_else(|| h("x-tenant-id")).or(if system_scope.is_none() {
            Some(project)
        } else {
            None
        });
        Credentials { user_id: Some(user), project_id, roles, system_scope, ..Credentials::default() }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}
