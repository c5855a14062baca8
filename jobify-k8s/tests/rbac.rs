//! The permissions in the code, docs/kubernetes.md and examples/deploy/rbac.yaml agree.

use jobify_k8s::rbac::PERMISSIONS;
use serde::Deserialize;

const RBAC: &str = include_str!("../../examples/deploy/rbac.yaml");
const DOCS: &str = include_str!("../../docs/kubernetes.md");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

fn role_rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for document in serde_yaml::Deserializer::from_str(RBAC) {
        let value = serde_yaml::Value::deserialize(document).expect("yaml document");
        if value["kind"] == "Role" {
            rules = serde_yaml::from_value(value["rules"].clone()).expect("rules");
        }
        assert_ne!(value["kind"], "ClusterRole", "nothing cluster-scoped");
    }
    rules
}

#[test]
fn rbac_yaml_grants_exactly_the_permissions_jobify_uses() {
    let rules = role_rules();
    assert_eq!(rules.len(), PERMISSIONS.len());
    for (rule, permission) in rules.iter().zip(PERMISSIONS) {
        assert_eq!(rule.api_groups, [permission.api_group]);
        assert_eq!(rule.resources, [permission.resource]);
        assert_eq!(rule.verbs, permission.verbs, "{}", permission.resource);
    }
}

#[test]
fn the_docs_list_the_same_verbs() {
    for permission in PERMISSIONS {
        let verbs: Vec<String> = permission.verbs.iter().map(|v| format!("`{v}`")).collect();
        let row = format!("| `{}` | {} |", permission.resource, verbs.join(", "));
        assert!(
            DOCS.contains(&row),
            "docs/kubernetes.md lacks the row {row}"
        );
    }
}
