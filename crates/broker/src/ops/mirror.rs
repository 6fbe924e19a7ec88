//! Mirror links: create, pause, resume, delete, status, promote, failback
//! (the pullers and the sync are `crate::mirror`).

use cairn_metadata::MetaCommand;
use cairn_metadata::MetaError;
use cairn_metadata::MetaResponse;
use cairn_metadata::MirrorLink;

use crate::error::ApiError;
use crate::mirror::MirrorPartitionStatus;
use crate::node::Node;
use crate::node::Proposal;

/// Mirror links a cluster may have (each costs a source client per node
/// and a sync round on the metadata leader every 2 s).
pub(crate) const MAX_MIRROR_LINKS: usize = 32;

/// How long a promotion waits for every live node to apply it.
const PROMOTE_SPREAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn meta_error(e: MetaError) -> ApiError {
    match e {
        MetaError::UnknownMirrorLink(l) => ApiError::UnknownMirrorLink(l),
        MetaError::UnknownTopic(t) => ApiError::UnknownTopic(t),
        MetaError::MirrorLinkInUse(m) => ApiError::NodeInUse(m),
        other => ApiError::InvalidArgument(other.to_string()),
    }
}

async fn propose(node: &Node, cmd: MetaCommand) -> Result<(), ApiError> {
    match node.propose(Proposal::Command(cmd)).await? {
        MetaResponse::Ok => Ok(()),
        MetaResponse::Error(e) => Err(meta_error(e)),
        other => Err(ApiError::Internal(format!("{other:?}"))),
    }
}

/// Creates a link; refused if one of that name exists.
pub(crate) async fn create_link(node: &Node, link: MirrorLink) -> Result<(), ApiError> {
    link.validate().map_err(ApiError::InvalidArgument)?;
    let links = node.meta_view.read(|s| s.mirror_links.len());
    if links >= MAX_MIRROR_LINKS {
        return Err(ApiError::InvalidArgument(format!(
            "a cluster has at most {MAX_MIRROR_LINKS} mirror links; delete one first"
        )));
    }
    if crate::mirror::link(node, &link.name).is_ok() {
        return Err(ApiError::InvalidArgument(format!(
            "mirror link {:?} already exists",
            link.name
        )));
    }
    propose(node, MetaCommand::PutMirrorLink(link.clone())).await?;
    tracing::info!(link = %link.name, source = ?link.source_bootstrap, "mirror link created");
    Ok(())
}

/// Pauses or resumes a link.
pub(crate) async fn set_paused(node: &Node, name: &str, paused: bool) -> Result<(), ApiError> {
    let mut link = crate::mirror::link(node, name)?;
    link.paused = paused;
    propose(node, MetaCommand::PutMirrorLink(link)).await?;
    tracing::info!(link = %name, paused, "mirror link paused or resumed");
    Ok(())
}

pub(crate) async fn delete_link(node: &Node, name: &str) -> Result<(), ApiError> {
    propose(
        node,
        MetaCommand::DeleteMirrorLink {
            name: name.to_string(),
        },
    )
    .await?;
    tracing::info!(link = %name, "mirror link deleted");
    Ok(())
}

/// Every link, the topics mirroring it, its last sync failure.
pub(crate) fn list_links(node: &Node) -> Vec<(MirrorLink, Vec<String>, String)> {
    let errors = node.mirrors.sync_errors();
    node.meta_view.read(|s| {
        s.mirror_links
            .values()
            .map(|l| {
                let topics = s
                    .mirror_topics
                    .iter()
                    .filter(|(_, link)| **link == l.name)
                    .map(|(t, _)| t.clone())
                    .collect();
                let error = errors.get(&l.name).map(|e| e.0.clone()).unwrap_or_default();
                (l.clone(), topics, error)
            })
            .collect()
    })
}

/// A mirror topic, its link, and its partitions' Raft groups.
type MirrorTopicGroups = (String, String, Vec<(u32, u64)>);

/// Every partition of every mirror topic (of `link`, or of all links): as
/// its leader reports it, else `paused` or `no-leader`.
pub(crate) async fn status(
    node: &Node,
    link: Option<&str>,
) -> Result<Vec<MirrorPartitionStatus>, ApiError> {
    if let Some(l) = link {
        crate::mirror::link(node, l)?;
    }
    let reported = crate::mirror::cluster_status(node).await;
    let (topics, links) = node.meta_view.read(|s| {
        let topics: Vec<MirrorTopicGroups> = s
            .mirror_topics
            .iter()
            .filter(|(_, l)| link.is_none_or(|want| want == l.as_str()))
            .filter_map(|(t, l)| {
                s.topics.get(t).map(|topic| {
                    (
                        t.clone(),
                        l.clone(),
                        topic
                            .partitions
                            .iter()
                            .map(|p| (p.partition, p.group))
                            .collect(),
                    )
                })
            })
            .collect();
        (topics, s.mirror_links.clone())
    });
    let mut out = Vec::new();
    for (topic, l, partitions) in topics {
        let paused = links.get(&l).is_some_and(|l| l.paused);
        for (partition, group) in partitions {
            match reported
                .iter()
                .find(|s| s.topic == topic && s.partition == partition)
            {
                Some(s) if !paused => out.push(s.clone()),
                _ => {
                    let g = node.group_status(group);
                    out.push(MirrorPartitionStatus {
                        link: l.clone(),
                        topic: topic.clone(),
                        partition,
                        node: g.leader.unwrap_or(0),
                        state: if paused {
                            "paused"
                        } else if g.leader.is_none() {
                            "no-leader"
                        } else {
                            "starting"
                        }
                        .into(),
                        high_watermark: g.high_watermark,
                        ..Default::default()
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Makes the link's mirror topics (`topics`, or all of them) writable; they
/// are mirrored no more. Answers the topics promoted.
pub(crate) async fn promote(
    node: &Node,
    link: &str,
    topics: &[String],
) -> Result<Vec<String>, ApiError> {
    crate::mirror::link(node, link)?;
    let mirrored: Vec<String> = node.meta_view.read(|s| {
        s.mirror_topics
            .iter()
            .filter(|(_, l)| l.as_str() == link)
            .map(|(t, _)| t.clone())
            .collect()
    });
    let chosen: Vec<String> = if topics.is_empty() {
        mirrored
    } else {
        if let Some(t) = topics.iter().find(|t| !mirrored.contains(t)) {
            return Err(ApiError::InvalidArgument(format!(
                "topic {t:?} is not a mirror of link {link:?}"
            )));
        }
        topics.to_vec()
    };
    if chosen.is_empty() {
        return Ok(chosen);
    }
    propose(
        node,
        MetaCommand::SetMirrorTopics {
            topics: chosen.clone(),
            link: None,
        },
    )
    .await?;
    tracing::warn!(link = %link, topics = ?chosen, "mirror topics promoted: writable, no longer mirrored");
    // Answer once every live node knows, so that a producer switching over
    // is not refused by a node whose view is a moment behind.
    if !crate::mirror::wait_promoted(node, &chosen, PROMOTE_SPREAD_WAIT).await {
        tracing::warn!(link = %link, "promotion committed, but not every live node had applied it within {} s", PROMOTE_SPREAD_WAIT.as_secs());
    }
    Ok(chosen)
}

/// Failback by re-seeding: each local topic the link selects (or each of
/// `topics`) that the source has is deleted here and created again as a
/// mirror of the source, which copies it whole from the source's log
/// start. Answers the topics and the records they held here.
pub(crate) async fn failback(
    node: &Node,
    link_name: &str,
    topics: &[String],
) -> Result<(Vec<String>, u64), ApiError> {
    let link = crate::mirror::link(node, link_name)?;
    let client = crate::mirror::source_client(node, &link)
        .await
        .map_err(|e| ApiError::LeaderNotAvailable { what: e })?;
    let source = client
        .list_topics()
        .await
        .map_err(|e| ApiError::LeaderNotAvailable {
            what: format!("the source's topics ({e})"),
        })?;
    let local = node.meta_view.read(|s| s.topics.clone());
    let mut reseeded = Vec::new();
    let mut discarded = 0u64;
    for t in source.iter().filter(|t| {
        local.contains_key(&t.name)
            && if topics.is_empty() {
                link.mirrors_topic(&t.name)
            } else {
                topics.contains(&t.name)
            }
    }) {
        let held: u64 = local[&t.name]
            .partitions
            .iter()
            .map(|p| {
                let g = node.group_status(p.group);
                g.high_watermark.saturating_sub(g.log_start)
            })
            .sum();
        super::topics::delete_topic(node, &t.name).await?;
        let proposal = Proposal::CreateMirrorTopic {
            link: link.name.clone(),
            name: t.name.clone(),
            partitions: t.partitions.len() as u32,
            replication_factor: local[&t.name].replication_factor,
            configs: t
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        // The old replicas go first (the reconciler deletes them); a new
        // topic of the same name gets new Raft groups.
        match node.propose(proposal).await? {
            MetaResponse::TopicCreated(_) => {}
            MetaResponse::Error(e) => return Err(meta_error(e)),
            other => return Err(ApiError::Internal(format!("{other:?}"))),
        }
        tracing::warn!(link = %link.name, topic = %t.name, records = held, "failback: topic re-seeded from the source");
        discarded += held;
        reseeded.push(t.name.clone());
    }
    Ok((reseeded, discarded))
}
