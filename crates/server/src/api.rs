//! The client gRPC API (`cairn.v1.Cairn`).

use std::time::Duration;

use cairn_broker::acl;
use cairn_broker::scram::ScramMechanism;
use cairn_broker::views::ClusterView;
use cairn_broker::views::NodeView;
use cairn_broker::views::TopicView;
use cairn_broker::views::Topics;
use cairn_broker::Broker;
use cairn_broker::BrokerError as ApiError;
use cairn_broker::JoinArgs;
use cairn_broker::Listener;
use cairn_broker::MemberRef;
use cairn_broker::OffsetToCommit;
use cairn_broker::RequestContext;
use cairn_broker::StoredOffset;
use cairn_proto::v1::cairn_server::Cairn;
use cairn_proto::v1::list_offsets_request::Spec;
use cairn_proto::v1::*;
use tonic::Request;
use tonic::Response;
use tonic::Status;

const DEFAULT_PRODUCE_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_FETCH_MAX_BYTES: usize = 1 << 20;

pub(crate) struct CairnService {
    pub(crate) broker: Broker,
}

impl CairnService {
    /// The context of a gRPC request: the principal of its bearer token
    /// (`authorization: Bearer <JWT>`, refused UNAUTHENTICATED if the token
    /// is not good), else the one its client certificate maps to (mTLS),
    /// else `User:ANONYMOUS`.
    #[allow(clippy::result_large_err)]
    fn ctx<T>(&self, request: &Request<T>) -> Result<RequestContext, Status> {
        let info = request.extensions().get::<cairn_tls::ConnInfo>();
        let ctx = RequestContext::anonymous(Listener::Grpc, info.and_then(|i| i.remote));
        if let Some(auth) = request.metadata().get("authorization") {
            let token = auth
                .to_str()
                .ok()
                .and_then(|a| {
                    a.strip_prefix("Bearer ")
                        .or_else(|| a.strip_prefix("bearer "))
                })
                .ok_or_else(|| Status::unauthenticated("authorization: expected Bearer <token>"))?;
            let principal = self
                .broker
                .bearer_principal(&ctx, token.trim())
                .map_err(|e| Status::unauthenticated(e.to_string()))?;
            return Ok(ctx.with_principal(principal));
        }
        Ok(match info.and_then(|i| i.principal.as_deref()) {
            Some(name) => ctx.with_principal(cairn_broker::Principal::user(name)),
            None => ctx,
        })
    }
}

/// A stored offset as the gRPC API answers it.
fn offset_commit(o: StoredOffset) -> OffsetCommit {
    OffsetCommit {
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        metadata: o.metadata,
    }
}

fn topic_metadata(t: &TopicView) -> TopicMetadata {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let s = &p.status;
            PartitionMetadata {
                partition: p.assignment.partition,
                leader: s.leader,
                leader_epoch: s.term,
                replicas: p.assignment.replicas.clone(),
                healthy_replicas: s.healthy.clone(),
                log_start_offset: s.log_start,
                high_watermark: s.high_watermark,
                raft_group: p.assignment.group,
                reassignment: s.reassignment.clone(),
                voters: s.voters.clone(),
            }
        })
        .collect();
    TopicMetadata {
        name: t.topic.name.clone(),
        topic_id: t.topic.id,
        replication_factor: t.topic.replication_factor,
        partitions,
        configs: t.topic.configs.clone().into_iter().collect(),
    }
}

fn nodes(view: &ClusterView) -> Vec<cairn_proto::v1::Node> {
    view.nodes
        .iter()
        .map(|n: &NodeView| cairn_proto::v1::Node {
            id: n.info.id,
            grpc_addr: n.info.grpc_addr.clone(),
            rpc_addr: n.info.rpc_addr.clone(),
            admin_addr: n.info.admin_addr.clone(),
            kafka_addr: n.info.kafka_addr.clone(),
            rack: n.info.rack.clone().unwrap_or_default(),
            alive: n.alive,
            metadata_voter: n.metadata_voter,
            draining: n.draining,
        })
        .collect()
}

fn acl_binding(b: acl::AclBinding) -> AclBinding {
    AclBinding {
        principal: b.principal,
        host: b.host,
        resource_type: b.resource_type.name().to_string(),
        resource_name: b.resource_name,
        pattern_type: b.pattern_type.name().to_string(),
        operation: b.operation.name().to_string(),
        permission: b.permission.name().to_string(),
    }
}

fn parse_binding(b: AclBinding) -> Result<acl::AclBinding, ApiError> {
    let entry = cairn_metadata::AclEntry {
        principal: b.principal,
        host: if b.host.is_empty() {
            "*".into()
        } else {
            b.host
        },
        resource_type: b.resource_type,
        resource_name: b.resource_name,
        pattern_type: if b.pattern_type.is_empty() {
            "LITERAL".into()
        } else {
            b.pattern_type
        },
        operation: b.operation,
        permission: if b.permission.is_empty() {
            "ALLOW".into()
        } else {
            b.permission
        },
    };
    acl::AclBinding::from_entry(&entry).map_err(|e| ApiError::InvalidArgument(e.to_string()))
}

fn parse_filter(f: Option<AclFilter>) -> Result<acl::AclFilter, ApiError> {
    let f = f.unwrap_or_default();
    fn opt<T>(what: &str, v: String, parse: fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
        if v.is_empty() {
            return Ok(None);
        }
        parse(&v)
            .map(Some)
            .ok_or_else(|| ApiError::InvalidArgument(format!("unknown {what} {v:?}")))
    }
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    let pattern = match f.pattern_type.to_ascii_uppercase().as_str() {
        "" | "ANY" => acl::PatternFilter::Any,
        "MATCH" => acl::PatternFilter::Match,
        other => {
            acl::PatternFilter::Exactly(acl::PatternType::parse(other).ok_or_else(|| {
                ApiError::InvalidArgument(format!("unknown pattern type {other:?}"))
            })?)
        }
    };
    Ok(acl::AclFilter {
        principal: nonempty(f.principal),
        host: nonempty(f.host),
        resource_type: opt("resource type", f.resource_type, acl::ResourceType::parse)?,
        resource_name: nonempty(f.resource_name),
        pattern,
        operation: opt("operation", f.operation, acl::AclOperation::parse)?,
        permission: opt("permission", f.permission, acl::Permission::parse)?,
    })
}

#[tonic::async_trait]
impl Cairn for CairnService {
    async fn metadata(
        &self,
        request: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let wanted = if req.topics.is_empty() {
            Topics::All
        } else {
            Topics::Named(req.topics.clone())
        };
        let view = self.broker.metadata(&ctx, wanted);
        if let Some(denied) = view.denied.first() {
            return Err(ApiError::Unauthorized {
                principal: ctx.principal.to_string(),
                acl: acl::AclOperation::Describe,
                resource_type: acl::ResourceType::Topic,
                resource: denied.clone(),
            }
            .into());
        }
        if let Some(missing) = req
            .topics
            .iter()
            .find(|n| !view.topics.iter().any(|t| &t.topic.name == *n))
        {
            return Err(ApiError::UnknownTopic(missing.clone()).into());
        }
        Ok(Response::new(MetadataResponse {
            cluster_id: view.cluster_id.clone(),
            metadata_leader: view.metadata_leader,
            nodes: nodes(&view),
            topics: view.topics.iter().map(topic_metadata).collect(),
        }))
    }

    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let t = self
            .broker
            .create_topic(
                &ctx,
                cairn_broker::NewTopic {
                    name: req.name,
                    partitions: req.partitions,
                    replication_factor: req.replication_factor,
                    configs: req.configs.into_iter().collect(),
                    assignment: None,
                },
                false,
            )
            .await?;
        Ok(Response::new(CreateTopicResponse {
            topic: t.as_ref().map(topic_metadata),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        let ctx = self.ctx(&request)?;
        self.broker
            .delete_topic(&ctx, &request.into_inner().name)
            .await?;
        Ok(Response::new(DeleteTopicResponse {}))
    }

    async fn alter_topic_config(
        &self,
        request: Request<AlterTopicConfigRequest>,
    ) -> Result<Response<AlterTopicConfigResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let configs = self
            .broker
            .alter_topic_configs(
                &ctx,
                &req.name,
                req.set.into_iter().collect(),
                req.delete,
                false,
            )
            .await?;
        Ok(Response::new(AlterTopicConfigResponse {
            configs: configs.into_iter().collect(),
        }))
    }

    async fn create_partitions(
        &self,
        request: Request<CreatePartitionsRequest>,
    ) -> Result<Response<CreatePartitionsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let t = self
            .broker
            .create_partitions(&ctx, &req.topic, req.count, None, false)
            .await?;
        Ok(Response::new(CreatePartitionsResponse {
            topic: t.as_ref().map(topic_metadata),
        }))
    }

    async fn reassign_partition(
        &self,
        request: Request<ReassignPartitionRequest>,
    ) -> Result<Response<ReassignPartitionResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        self.broker
            .reassign_partition(&ctx, &req.topic, req.partition, req.replicas)
            .await?;
        Ok(Response::new(ReassignPartitionResponse {}))
    }

    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<DescribeTopicResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let t = self
            .broker
            .describe_topic(&ctx, &request.into_inner().name)?;
        Ok(Response::new(DescribeTopicResponse {
            topic: Some(topic_metadata(&t)),
        }))
    }

    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let acks = match Acks::try_from(req.acks).unwrap_or(Acks::All) {
            Acks::All => cairn_broker::Acks::All,
            Acks::Leader | Acks::None => cairn_broker::Acks::Leader,
        };
        let timeout_ms = if req.timeout_ms == 0 {
            DEFAULT_PRODUCE_TIMEOUT_MS
        } else {
            u64::from(req.timeout_ms)
        };
        let p = self
            .broker
            .produce(
                &ctx,
                &req.topic,
                req.partition,
                req.records,
                acks,
                timeout_ms,
            )
            .await?;
        Ok(Response::new(ProduceResponse {
            base_offset: p.base_offset.map_or(-1, |o| o as i64),
            high_watermark: p.high_watermark,
            duplicate: p.duplicate,
        }))
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let max_bytes = match req.max_bytes as usize {
            0 => DEFAULT_FETCH_MAX_BYTES,
            n => n,
        };
        let r = self
            .broker
            .fetch(
                &ctx,
                &req.topic,
                req.partition,
                req.offset,
                max_bytes,
                Duration::from_millis(u64::from(req.max_wait_ms)),
            )
            .await?;
        Ok(Response::new(FetchResponse {
            high_watermark: r.high_watermark,
            log_start_offset: r.log_start,
            records: r.records,
        }))
    }

    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let spec = match req.spec {
            Some(Spec::Earliest(_)) => cairn_broker::OffsetSpec::Earliest,
            Some(Spec::Latest(_)) | None => cairn_broker::OffsetSpec::Latest,
            Some(Spec::TimestampMs(ts)) => cairn_broker::OffsetSpec::Timestamp(ts),
        };
        let (offset, timestamp_ms, _) = self
            .broker
            .list_offsets(&ctx, &req.topic, req.partition, spec)
            .await?;
        Ok(Response::new(ListOffsetsResponse {
            offset,
            timestamp_ms,
        }))
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let view = self.broker.cluster_status(&ctx)?;
        let mut leaderless = Vec::new();
        let mut under = Vec::new();
        let mut partition_count = 0;
        for t in &view.topics {
            for p in &t.partitions {
                partition_count += 1;
                let s = &p.status;
                let r = PartitionRef {
                    topic: t.topic.name.clone(),
                    partition: p.assignment.partition,
                    replicas: p.assignment.replicas.clone(),
                    healthy_replicas: s.healthy.clone(),
                    leader: s.leader,
                };
                if s.leader.is_none() {
                    leaderless.push(r);
                } else if s.healthy.len() < p.assignment.replicas.len() {
                    under.push(r);
                }
            }
        }
        Ok(Response::new(ClusterStatusResponse {
            cluster_id: view.cluster_id.clone(),
            metadata_leader: view.metadata_leader,
            nodes: nodes(&view),
            leaderless_partitions: leaderless,
            under_replicated_partitions: under,
            topic_count: view.topics.len() as u32,
            partition_count,
            answered_by: view.answered_by,
            removed_nodes: view.removed.clone(),
        }))
    }

    async fn decommission_node(
        &self,
        request: Request<DecommissionNodeRequest>,
    ) -> Result<Response<DecommissionNodeResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let moves = self
            .broker
            .decommission_node(&ctx, request.into_inner().node)
            .await?;
        Ok(Response::new(DecommissionNodeResponse {
            moves: moves
                .into_iter()
                .map(|m| PartitionMove {
                    topic: m.topic,
                    partition: m.partition,
                    replicas: m.replicas,
                })
                .collect(),
        }))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        let ctx = self.ctx(&request)?;
        self.broker
            .remove_node(&ctx, request.into_inner().node)
            .await?;
        Ok(Response::new(RemoveNodeResponse {}))
    }

    async fn commit_offsets(
        &self,
        request: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let offsets = req
            .offsets
            .into_iter()
            .map(|o| OffsetToCommit {
                topic: o.topic,
                partition: i32::try_from(o.partition).unwrap_or(i32::MAX),
                offset: o.offset,
                metadata: o.metadata,
                leader_epoch: None,
            })
            .collect();
        let results = self
            .broker
            .commit_offsets(
                &ctx,
                &req.group,
                req.generation,
                &req.member_id,
                None,
                offsets,
                false,
            )
            .await?;
        // The gRPC API commits all or nothing: the first refusal answers.
        if let Some((_, _, Err(e))) = results.into_iter().find(|r| r.2.is_err()) {
            return Err(e.into());
        }
        Ok(Response::new(CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<FetchOffsetsRequest>,
    ) -> Result<Response<FetchOffsetsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let group = request.into_inner().group;
        let offsets = self
            .broker
            .fetch_offsets(&ctx, &group)
            .await?
            .into_iter()
            .map(offset_commit)
            .collect();
        Ok(Response::new(FetchOffsetsResponse { offsets }))
    }

    async fn join_group(
        &self,
        request: Request<JoinGroupRequest>,
    ) -> Result<Response<JoinGroupResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let host = ctx.host().map(|a| a.to_string()).unwrap_or_default();
        let req = request.into_inner();
        let joined = self
            .broker
            .join_group(
                &ctx,
                JoinArgs {
                    group: req.group,
                    member_id: req.member_id,
                    client_id: req.client_id,
                    client_host: host,
                    protocol_type: req.protocol_type,
                    protocols: req
                        .protocols
                        .into_iter()
                        .map(|p| (p.name, p.metadata))
                        .collect(),
                    session_timeout_ms: req.session_timeout_ms,
                    rebalance_timeout_ms: req.rebalance_timeout_ms,
                    group_instance_id: None,
                },
            )
            .await?;
        Ok(Response::new(JoinGroupResponse {
            generation: joined.generation,
            protocol: joined.protocol,
            leader: joined.leader,
            member_id: joined.member_id,
            members: joined
                .members
                .into_iter()
                .map(|(member_id, metadata)| GroupMemberMetadata {
                    member_id,
                    metadata,
                })
                .collect(),
        }))
    }

    async fn sync_group(
        &self,
        request: Request<SyncGroupRequest>,
    ) -> Result<Response<SyncGroupResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let assignment = self
            .broker
            .sync_group(
                &ctx,
                MemberRef {
                    group: req.group,
                    member_id: req.member_id,
                    generation: req.generation,
                    group_instance_id: None,
                },
                req.assignments
                    .into_iter()
                    .map(|a| (a.member_id, a.assignment))
                    .collect(),
            )
            .await?;
        Ok(Response::new(SyncGroupResponse {
            assignment: assignment.into(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        self.broker
            .heartbeat(
                &ctx,
                MemberRef {
                    group: req.group,
                    member_id: req.member_id,
                    generation: req.generation,
                    group_instance_id: None,
                },
            )
            .await?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn leave_group(
        &self,
        request: Request<LeaveGroupRequest>,
    ) -> Result<Response<LeaveGroupResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        self.broker
            .leave_group(&ctx, &req.group, &req.member_id, None)
            .await?;
        Ok(Response::new(LeaveGroupResponse {}))
    }

    async fn list_groups(
        &self,
        request: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let groups = self
            .broker
            .list_groups(&ctx)
            .await?
            .into_iter()
            .map(|g| GroupListing {
                group: g.group,
                state: g.state,
                protocol_type: g.protocol_type,
                members: g.members,
            })
            .collect();
        Ok(Response::new(ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<DescribeGroupRequest>,
    ) -> Result<Response<DescribeGroupResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let d = self
            .broker
            .describe_group(&ctx, &request.into_inner().group)
            .await?;
        Ok(Response::new(DescribeGroupResponse {
            group: d.group,
            state: d.state,
            protocol_type: d.protocol_type,
            protocol: d.protocol,
            generation: d.generation,
            leader: d.leader,
            members: d
                .members
                .into_iter()
                .map(|m| GroupMemberDescription {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    metadata: m.metadata,
                    assignment: m.assignment,
                })
                .collect(),
            offsets: d.offsets.into_iter().map(offset_commit).collect(),
        }))
    }

    async fn delete_group(
        &self,
        request: Request<DeleteGroupRequest>,
    ) -> Result<Response<DeleteGroupResponse>, Status> {
        let ctx = self.ctx(&request)?;
        self.broker
            .delete_group(&ctx, &request.into_inner().group)
            .await?;
        Ok(Response::new(DeleteGroupResponse {}))
    }

    async fn create_acls(
        &self,
        request: Request<CreateAclsRequest>,
    ) -> Result<Response<CreateAclsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let bindings = request
            .into_inner()
            .acls
            .into_iter()
            .map(parse_binding)
            .collect::<Result<Vec<_>, _>>()?;
        for r in self.broker.create_acls(&ctx, bindings).await? {
            r?;
        }
        Ok(Response::new(CreateAclsResponse {}))
    }

    async fn list_acls(
        &self,
        request: Request<ListAclsRequest>,
    ) -> Result<Response<ListAclsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let filter = parse_filter(request.into_inner().filter)?;
        let acls = self
            .broker
            .describe_acls(&ctx, &filter)?
            .into_iter()
            .map(acl_binding)
            .collect();
        Ok(Response::new(ListAclsResponse { acls }))
    }

    async fn delete_acls(
        &self,
        request: Request<DeleteAclsRequest>,
    ) -> Result<Response<DeleteAclsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let filter = parse_filter(request.into_inner().filter)?;
        let mut deleted = Vec::new();
        for r in self.broker.delete_acls(&ctx, vec![filter]).await? {
            deleted.extend(r?.into_iter().map(acl_binding));
        }
        Ok(Response::new(DeleteAclsResponse { deleted }))
    }

    async fn alter_users(
        &self,
        request: Request<AlterUsersRequest>,
    ) -> Result<Response<AlterUsersResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let mechanism = |m: &str| {
            ScramMechanism::parse(m)
                .ok_or_else(|| ApiError::InvalidArgument(format!("unknown SCRAM mechanism {m:?}")))
        };
        let deletions = req
            .deletions
            .into_iter()
            .map(|d| Ok((d.user, mechanism(&d.mechanism)?)))
            .collect::<Result<Vec<_>, ApiError>>()?;
        let upsertions = req
            .upsertions
            .into_iter()
            .map(|u| {
                Ok(cairn_broker::ScramUpsertion {
                    mechanism: mechanism(&u.mechanism)?,
                    user: u.user,
                    iterations: u.iterations,
                    salt: u.salt.to_vec(),
                    salted_password: u.salted_password.to_vec(),
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        for (_, r) in self.broker.alter_users(&ctx, deletions, upsertions).await? {
            r?;
        }
        Ok(Response::new(AlterUsersResponse {}))
    }

    async fn describe_users(
        &self,
        request: Request<DescribeUsersRequest>,
    ) -> Result<Response<DescribeUsersResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let wanted = (!req.users.is_empty()).then_some(req.users);
        let users = self
            .broker
            .describe_users(&ctx, wanted)?
            .into_iter()
            .filter_map(|(user, creds)| {
                Some(UserDescription {
                    user,
                    credentials: creds?
                        .into_iter()
                        .map(|(m, iterations)| UserCredential {
                            mechanism: m.name().to_string(),
                            iterations,
                        })
                        .collect(),
                })
            })
            .collect();
        Ok(Response::new(DescribeUsersResponse { users }))
    }

    async fn export_users(
        &self,
        request: Request<ExportUsersRequest>,
    ) -> Result<Response<ExportUsersResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let credentials = self
            .broker
            .export_users(&ctx)?
            .into_iter()
            .flat_map(|(user, creds)| {
                creds
                    .into_iter()
                    .map(move |(mechanism, c)| StoredScramCredential {
                        user: user.clone(),
                        mechanism,
                        iterations: c.iterations,
                        salt: c.salt.into(),
                        stored_key: c.stored_key.into(),
                        server_key: c.server_key.into(),
                    })
            })
            .collect();
        Ok(Response::new(ExportUsersResponse { credentials }))
    }

    async fn alter_role(
        &self,
        request: Request<AlterRoleRequest>,
    ) -> Result<Response<AlterRoleResponse>, Status> {
        use cairn_broker::RoleChange;
        use cairn_proto::v1::alter_role_request::Change;
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let acls = |l: AclList| {
            l.acls
                .into_iter()
                .map(|mut b| {
                    // A role's bindings name no principal.
                    b.principal = "User:role".into();
                    parse_binding(b)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let role = req.role;
        let change = match req.change {
            Some(Change::AddAcls(l)) => RoleChange::AddAcls {
                role,
                acls: acls(l)?,
            },
            Some(Change::RemoveAcls(l)) => RoleChange::RemoveAcls {
                role,
                acls: acls(l)?,
            },
            Some(Change::Grant(principal)) => RoleChange::Grant { role, principal },
            Some(Change::Revoke(principal)) => RoleChange::Revoke { role, principal },
            Some(Change::Delete(true)) => RoleChange::Delete { role },
            Some(Change::Delete(false)) | None => {
                return Err(ApiError::InvalidArgument("no change named".into()).into())
            }
        };
        self.broker.alter_role(&ctx, change).await?;
        Ok(Response::new(AlterRoleResponse {}))
    }

    async fn list_roles(
        &self,
        request: Request<ListRolesRequest>,
    ) -> Result<Response<ListRolesResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let roles = self
            .broker
            .describe_roles(&ctx)?
            .into_iter()
            .map(|(role, acls, members)| RoleDescription {
                role,
                acls: acls
                    .into_iter()
                    .map(|mut b| {
                        b.principal.clear();
                        acl_binding(b)
                    })
                    .collect(),
                members,
            })
            .collect();
        Ok(Response::new(ListRolesResponse { roles }))
    }

    async fn create_mirror_link(
        &self,
        request: Request<CreateMirrorLinkRequest>,
    ) -> Result<Response<CreateMirrorLinkResponse>, Status> {
        let ctx = self.ctx(&request)?;
        // No link: an empty one, refused after authorization (no name).
        let link = request.into_inner().link.unwrap_or_default();
        self.broker
            .create_mirror_link(&ctx, mirror_link_from(link))
            .await?;
        Ok(Response::new(CreateMirrorLinkResponse {}))
    }

    async fn list_mirror_links(
        &self,
        request: Request<ListMirrorLinksRequest>,
    ) -> Result<Response<ListMirrorLinksResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let links = self
            .broker
            .describe_mirror_links(&ctx)?
            .into_iter()
            .map(|(link, topics, sync_error)| MirrorLinkDescription {
                link: Some(mirror_link_to(link)),
                topics,
                sync_error,
            })
            .collect();
        Ok(Response::new(ListMirrorLinksResponse { links }))
    }

    async fn alter_mirror_link(
        &self,
        request: Request<AlterMirrorLinkRequest>,
    ) -> Result<Response<AlterMirrorLinkResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        self.broker
            .pause_mirror_link(&ctx, &req.name, req.paused)
            .await?;
        Ok(Response::new(AlterMirrorLinkResponse {}))
    }

    async fn delete_mirror_link(
        &self,
        request: Request<DeleteMirrorLinkRequest>,
    ) -> Result<Response<DeleteMirrorLinkResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        self.broker.delete_mirror_link(&ctx, &req.name).await?;
        Ok(Response::new(DeleteMirrorLinkResponse {}))
    }

    async fn mirror_status(
        &self,
        request: Request<MirrorStatusRequest>,
    ) -> Result<Response<MirrorStatusResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let link = (!req.link.is_empty()).then_some(req.link.as_str());
        let partitions = self
            .broker
            .mirror_status(&ctx, link)
            .await?
            .into_iter()
            .map(|s| MirrorPartitionState {
                link: s.link,
                topic: s.topic,
                partition: s.partition,
                node: s.node,
                state: s.state,
                error: s.error,
                source_log_start: s.source_log_start,
                source_high_watermark: s.source_high_watermark,
                high_watermark: s.high_watermark,
                lag_records: s.lag_records,
                lag_bytes: s.lag_bytes,
                lag_ms: s.lag_ms,
                replication_latency_ms: s.replication_latency_ms,
                records_mirrored: s.records_mirrored,
                bytes_mirrored: s.bytes_mirrored,
                records_skipped: s.records_skipped,
                updated_ms: s.updated_ms,
            })
            .collect();
        Ok(Response::new(MirrorStatusResponse { partitions }))
    }

    async fn promote_mirror_topics(
        &self,
        request: Request<PromoteMirrorTopicsRequest>,
    ) -> Result<Response<PromoteMirrorTopicsResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let promoted = self
            .broker
            .promote_mirror_topics(&ctx, &req.link, &req.topics)
            .await?;
        Ok(Response::new(PromoteMirrorTopicsResponse { promoted }))
    }

    async fn failback_mirror_link(
        &self,
        request: Request<FailbackMirrorLinkRequest>,
    ) -> Result<Response<FailbackMirrorLinkResponse>, Status> {
        let ctx = self.ctx(&request)?;
        let req = request.into_inner();
        let (reseeded, records_discarded) = self
            .broker
            .failback_mirror_link(&ctx, &req.link, &req.topics)
            .await?;
        Ok(Response::new(FailbackMirrorLinkResponse {
            reseeded,
            records_discarded,
        }))
    }
}

fn mirror_link_from(l: MirrorLinkConfig) -> cairn_broker::MirrorLink {
    cairn_broker::MirrorLink {
        name: l.name,
        source_bootstrap: l.source_bootstrap,
        topics_include: l.topics_include,
        topics_exclude: l.topics_exclude,
        groups_include: l.groups_include,
        groups_exclude: l.groups_exclude,
        sync_acls: l.sync_acls,
        tls_ca_file: l.tls_ca_file,
        token_file: l.token_file,
        tls_cert_file: l.tls_cert_file,
        tls_key_file: l.tls_key_file,
        paused: l.paused,
        source_address_map: l.source_address_map.into_iter().collect(),
    }
}

fn mirror_link_to(l: cairn_broker::MirrorLink) -> MirrorLinkConfig {
    MirrorLinkConfig {
        name: l.name,
        source_bootstrap: l.source_bootstrap,
        topics_include: l.topics_include,
        topics_exclude: l.topics_exclude,
        groups_include: l.groups_include,
        groups_exclude: l.groups_exclude,
        sync_acls: l.sync_acls,
        tls_ca_file: l.tls_ca_file,
        token_file: l.token_file,
        tls_cert_file: l.tls_cert_file,
        tls_key_file: l.tls_key_file,
        paused: l.paused,
        source_address_map: l.source_address_map.into_iter().collect(),
    }
}
