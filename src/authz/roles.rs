//! Identity-provider roles as Floe roles: values of a provider's `roles-claim` (groups, realm
//! roles) map to Floe roles by configuration (`authz.role_mappings`), evaluated from the token on
//! every request, so a group change at the IdP takes effect at the caller's next token, with no
//! sync job.

use serde::{Deserialize, Serialize};

/// One mapping: IdP role values that match `matches` (an exact name, or a pattern where `*`
/// stands for any run of characters) make the caller an assignee of the Floe role `role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    /// Only values from this provider's tokens; any provider when unset.
    #[serde(default)]
    pub provider: Option<String>,
    pub matches: String,
    /// The Floe role's name.
    pub role: String,
}

impl RoleMapping {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.matches.is_empty() || self.matches.len() > 256 {
            anyhow::bail!("authz.role_mappings: `matches` must be 1 to 256 characters");
        }
        if self.role.is_empty()
            || self.role.len() > 128
            || !self
                .role
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            anyhow::bail!(
                "authz.role_mappings: role {:?} is not a role name (letters, digits, '-', '_', '.')",
                self.role
            );
        }
        Ok(())
    }

    /// Whether an IdP role value of `provider`'s token matches.
    pub fn applies(&self, provider: &str, value: &str) -> bool {
        self.provider.as_deref().is_none_or(|p| p == provider) && glob(&self.matches, value)
    }
}

/// The Floe role names a caller's IdP roles map to, each once, in mapping order.
pub fn mapped_roles(mappings: &[RoleMapping], provider: &str, values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for mapping in mappings {
        if values.iter().any(|v| mapping.applies(provider, v)) && !out.contains(&mapping.role) {
            out.push(mapping.role.clone());
        }
    }
    out
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(provider: Option<&str>, matches: &str, role: &str) -> RoleMapping {
        RoleMapping {
            provider: provider.map(str::to_string),
            matches: matches.into(),
            role: role.into(),
        }
    }

    #[test]
    fn patterns_match_whole_values() {
        assert!(glob("eng", "eng"));
        assert!(!glob("eng", "engineering"));
        assert!(glob("team-*", "team-analytics"));
        assert!(glob("team-*", "team-"));
        assert!(!glob("team-*", "teams"));
        assert!(glob("*-admins", "data-admins"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-x-c-y-b"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("*", "anything"));
    }

    #[test]
    fn roles_map_per_provider_once_each() {
        let mappings = [
            mapping(None, "team-*", "analysts"),
            mapping(Some("corp"), "admins", "operators"),
            mapping(None, "data-eng", "analysts"),
        ];
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            mapped_roles(
                &mappings,
                "corp",
                &values(&["team-x", "admins", "data-eng"])
            ),
            ["analysts", "operators"]
        );
        assert_eq!(
            mapped_roles(&mappings, "k8s", &values(&["admins"])),
            Vec::<String>::new()
        );
        assert!(mapping(None, "x", "bad name").validate().is_err());
        assert!(mapping(None, "", "ok").validate().is_err());
        assert!(mapping(None, "x", "ok").validate().is_ok());
    }
}
