//! Mirror-link requests of [`Client`] (cross-cluster DR, docs/dr.md): any
//! node answers them.

use cairn_proto::v1::{
    AlterMirrorLinkRequest, CreateMirrorLinkRequest, DeleteMirrorLinkRequest,
    FailbackMirrorLinkRequest, FailbackMirrorLinkResponse, ListMirrorLinksRequest,
    MirrorLinkConfig, MirrorLinkDescription, MirrorPartitionState, MirrorStatusRequest,
    PromoteMirrorTopicsRequest,
};

use crate::client::{request, Rpc};
use crate::{Client, ClientError};

impl Client {
    /// Creates a mirror link: this cluster starts copying the topics it
    /// selects from the source (ALTER on the cluster).
    pub async fn create_mirror_link(&self, link: MirrorLinkConfig) -> Result<(), ClientError> {
        let timeout = self.config().request_timeout;
        self.call_any("create_mirror_link", &mut self.backoff(), |mut c: Rpc| {
            let link = link.clone();
            async move {
                c.create_mirror_link(request(
                    CreateMirrorLinkRequest { link: Some(link) },
                    timeout,
                ))
                .await
            }
        })
        .await?;
        Ok(())
    }

    /// Every mirror link, with the topics mirroring it.
    pub async fn list_mirror_links(&self) -> Result<Vec<MirrorLinkDescription>, ClientError> {
        let timeout = self.config().request_timeout;
        let reply = self
            .call_any(
                "list_mirror_links",
                &mut self.backoff(),
                |mut c: Rpc| async move {
                    c.list_mirror_links(request(ListMirrorLinksRequest {}, timeout))
                        .await
                },
            )
            .await?;
        Ok(reply.links)
    }

    /// Pauses (`true`) or resumes a link.
    pub async fn pause_mirror_link(&self, name: &str, paused: bool) -> Result<(), ClientError> {
        let timeout = self.config().request_timeout;
        let req = AlterMirrorLinkRequest {
            name: name.to_string(),
            paused,
        };
        self.call_any("alter_mirror_link", &mut self.backoff(), |mut c: Rpc| {
            let req = req.clone();
            async move { c.alter_mirror_link(request(req, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Deletes a link (refused while topics still mirror it).
    pub async fn delete_mirror_link(&self, name: &str) -> Result<(), ClientError> {
        let timeout = self.config().request_timeout;
        let req = DeleteMirrorLinkRequest {
            name: name.to_string(),
        };
        self.call_any("delete_mirror_link", &mut self.backoff(), |mut c: Rpc| {
            let req = req.clone();
            async move { c.delete_mirror_link(request(req, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Every mirrored partition (of `link`; empty: of every link) with its
    /// lag.
    pub async fn mirror_status(
        &self,
        link: &str,
    ) -> Result<Vec<MirrorPartitionState>, ClientError> {
        let timeout = self.config().request_timeout;
        let req = MirrorStatusRequest {
            link: link.to_string(),
        };
        let reply = self
            .call_any("mirror_status", &mut self.backoff(), |mut c: Rpc| {
                let req = req.clone();
                async move { c.mirror_status(request(req, timeout)).await }
            })
            .await?;
        Ok(reply.partitions)
    }

    /// Promotes the link's mirror topics (`topics`; empty: all of them):
    /// they become writable and are mirrored no more. Answers the topics.
    pub async fn promote_mirror_topics(
        &self,
        link: &str,
        topics: &[String],
    ) -> Result<Vec<String>, ClientError> {
        let timeout = self.config().request_timeout;
        let req = PromoteMirrorTopicsRequest {
            link: link.to_string(),
            topics: topics.to_vec(),
        };
        let reply = self
            .call_any(
                "promote_mirror_topics",
                &mut self.backoff(),
                |mut c: Rpc| {
                    let req = req.clone();
                    async move { c.promote_mirror_topics(request(req, timeout)).await }
                },
            )
            .await?;
        Ok(reply.promoted)
    }

    /// Failback by re-seeding: the link's topics here are deleted and
    /// mirrored again from the source.
    pub async fn failback_mirror_link(
        &self,
        link: &str,
        topics: &[String],
    ) -> Result<FailbackMirrorLinkResponse, ClientError> {
        let timeout = self.config().request_timeout;
        let req = FailbackMirrorLinkRequest {
            link: link.to_string(),
            topics: topics.to_vec(),
        };
        self.call_any("failback_mirror_link", &mut self.backoff(), |mut c: Rpc| {
            let req = req.clone();
            async move { c.failback_mirror_link(request(req, timeout)).await }
        })
        .await
    }
}
