//! Buildkite's opaque identifiers: GraphQL node ids (base64 of `Type---uuid`) and the
//! connection cursors the simulator hands out.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;

/// The kind of node a GraphQL id names, spelled as Buildkite spells it inside the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// `Organization---<uuid>`.
    Organization,
    /// `Pipeline---<uuid>`.
    Pipeline,
    /// `Build---<uuid>`.
    Build,
    /// `JobTypeCommand---<uuid>`.
    CommandJob,
    /// `Agent---<uuid>`.
    Agent,
    /// `Cluster---<uuid>`.
    Cluster,
    /// `Annotation---<uuid>`.
    Annotation,
}

impl NodeKind {
    fn prefix(self) -> &'static str {
        match self {
            NodeKind::Organization => "Organization",
            NodeKind::Pipeline => "Pipeline",
            NodeKind::Build => "Build",
            NodeKind::CommandJob => "JobTypeCommand",
            NodeKind::Agent => "Agent",
            NodeKind::Cluster => "Cluster",
            NodeKind::Annotation => "Annotation",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        Some(match prefix {
            "Organization" => NodeKind::Organization,
            "Pipeline" => NodeKind::Pipeline,
            "Build" => NodeKind::Build,
            "JobTypeCommand" => NodeKind::CommandJob,
            "Agent" => NodeKind::Agent,
            "Cluster" => NodeKind::Cluster,
            "Annotation" => NodeKind::Annotation,
            _ => return None,
        })
    }
}

/// The GraphQL id of a node, e.g. `Pipeline---0184...` in base64.
pub(crate) fn node_id(kind: NodeKind, uuid: Uuid) -> String {
    STANDARD.encode(format!("{}---{uuid}", kind.prefix()))
}

/// Decodes a GraphQL node id; `None` for anything that is not one of ours.
pub(crate) fn parse_node_id(id: &str) -> Option<(NodeKind, Uuid)> {
    let raw = STANDARD.decode(id).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (prefix, uuid) = text.split_once("---")?;
    Some((NodeKind::from_prefix(prefix)?, Uuid::parse_str(uuid).ok()?))
}

/// The opaque cursor of the item at `offset` (0-based) in a connection.
pub(crate) fn cursor(offset: usize) -> String {
    STANDARD.encode(format!("cursor:{offset}"))
}

/// The offset a cursor from [`cursor`] stands for.
pub(crate) fn parse_cursor(cursor: &str) -> Option<usize> {
    let raw = STANDARD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.strip_prefix("cursor:")?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap fails the test")]
mod tests {
    use super::*;

    #[test]
    fn node_ids_round_trip_and_look_like_buildkite_ids() {
        let uuid = Uuid::parse_str("01846274-09bc-4c7a-bb90-cb317e569fe7").unwrap();
        let id = node_id(NodeKind::Pipeline, uuid);
        // The id of the seed's real GetBuilds query.
        assert_eq!(
            id,
            "UGlwZWxpbmUtLS0wMTg0NjI3NC0wOWJjLTRjN2EtYmI5MC1jYjMxN2U1NjlmZTc="
        );
        assert_eq!(parse_node_id(&id), Some((NodeKind::Pipeline, uuid)));
        assert_eq!(parse_node_id("not base64!"), None);
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(parse_cursor(&cursor(42)), Some(42));
        assert_eq!(parse_cursor("bogus"), None);
    }
}
