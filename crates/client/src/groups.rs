//! Consumer-group requests of [`Client`]: the group membership protocol and
//! group administration. They go to the group coordinator (the metadata
//! leader); a node that is not answers `NOT_COORDINATOR` naming it, and the
//! call follows.

use std::time::Duration;

use cairn_proto::v1::{
    CommitOffsetsRequest, DeleteGroupRequest, DescribeGroupRequest, DescribeGroupResponse,
    GroupListing, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    ListGroupsRequest, MemberAssignment, OffsetCommit, SyncGroupRequest,
};

use crate::client::{request, Rpc};
use crate::{Client, ClientError};

impl Client {
    /// Joins `req.group` and waits until the rebalance completes (up to the
    /// request's rebalance timeout).
    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
    ) -> Result<JoinGroupResponse, ClientError> {
        let timeout = Duration::from_millis(u64::from(
            req.rebalance_timeout_ms.max(req.session_timeout_ms),
        )) + self.config().request_timeout;
        self.call_any("join_group", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.join_group(request(r, timeout)).await }
        })
        .await
    }

    /// Sends (as the leader) the members' assignments, or waits (as a
    /// follower) for the leader's; answers this member's assignment.
    pub async fn sync_group(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<MemberAssignment>,
        wait: Duration,
    ) -> Result<bytes::Bytes, ClientError> {
        let req = SyncGroupRequest {
            group: group.to_owned(),
            generation,
            member_id: member_id.to_owned(),
            assignments,
        };
        let timeout = wait + self.config().request_timeout;
        let resp = self
            .call_any("sync_group", &mut self.backoff(), |mut c: Rpc| {
                let r = req.clone();
                async move { c.sync_group(request(r, timeout)).await }
            })
            .await?;
        Ok(resp.assignment)
    }

    /// One heartbeat. `REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION` and
    /// `UNKNOWN_MEMBER_ID` tell the member to join again.
    pub async fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
    ) -> Result<(), ClientError> {
        let req = HeartbeatRequest {
            group: group.to_owned(),
            generation,
            member_id: member_id.to_owned(),
        };
        let timeout = self.config().request_timeout;
        self.call_any("heartbeat", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.heartbeat(request(r, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Leaves a group at once (no wait for the session timeout).
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<(), ClientError> {
        let req = LeaveGroupRequest {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
        };
        let timeout = self.config().request_timeout;
        self.call_any("leave_group", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.leave_group(request(r, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// A member's commit, fenced by its generation: `ILLEGAL_GENERATION` /
    /// `UNKNOWN_MEMBER_ID` when the member was rebalanced out.
    pub async fn commit_member_offsets(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(), ClientError> {
        let req = CommitOffsetsRequest {
            group: group.to_owned(),
            offsets,
            generation: Some(generation),
            member_id: member_id.to_owned(),
        };
        let timeout = self.config().request_timeout;
        self.call_any("commit_offsets", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.commit_offsets(request(r, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Every group: with members, or with committed offsets only.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let timeout = self.config().request_timeout;
        let resp = self
            .call_any("list_groups", &mut self.backoff(), |mut c: Rpc| async move {
                c.list_groups(request(ListGroupsRequest {}, timeout)).await
            })
            .await?;
        Ok(resp.groups)
    }

    /// A group's state, members (with their metadata and assignment bytes)
    /// and committed offsets; `UNKNOWN_GROUP` if there is no such group.
    pub async fn describe_group(&self, group: &str) -> Result<DescribeGroupResponse, ClientError> {
        let req = DescribeGroupRequest {
            group: group.to_owned(),
        };
        let timeout = self.config().request_timeout;
        self.call_any("describe_group", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.describe_group(request(r, timeout)).await }
        })
        .await
    }

    /// Deletes an empty group and its committed offsets.
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let req = DeleteGroupRequest {
            group: group.to_owned(),
        };
        let timeout = self.config().request_timeout;
        self.call_any("delete_group", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.delete_group(request(r, timeout)).await }
        })
        .await?;
        Ok(())
    }
}
