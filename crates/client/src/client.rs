//! [`Client`]: a connection to a Cairn cluster with leader routing.
//!
//! Requests for a partition (produce, fetch, list offsets) go to the
//! partition's leader as known from cached metadata. Cluster-wide requests
//! (metadata, topics, status, group offsets) go to any node, preferring the
//! one that answered last. Transient failures are retried as described in
//! [`crate::retry`]: on `NOT_LEADER` the leader named in the failure (if any)
//! is used at once; otherwise metadata is refreshed from any reachable node
//! (every known node is tried, then the bootstrap addresses).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_proto::v1::cairn_client::CairnClient;
use cairn_proto::v1::{
    Acks, AclBinding, AclFilter, AlterRoleRequest, AlterTopicConfigRequest, AlterUsersRequest,
    ClusterStatusRequest, ClusterStatusResponse, CommitOffsetsRequest, CreateAclsRequest,
    CreatePartitionsRequest, CreateTopicRequest, DecommissionNodeRequest, DeleteAclsRequest,
    DeleteTopicRequest, DescribeTopicRequest, DescribeUsersRequest, ErrorCode, ExportUsersRequest,
    FetchOffsetsRequest, FetchRequest, FetchResponse, ListAclsRequest, ListOffsetsRequest,
    ListOffsetsResponse, ListRolesRequest, MetadataRequest, MetadataResponse, OffsetCommit,
    PartitionMove, ProduceRequest, ProduceResponse, ReassignPartitionRequest, RemoveNodeRequest,
    RoleDescription, ScramDeletion, ScramUpsertion, StoredScramCredential, TopicMetadata,
    UserDescription,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info};

use crate::addr::{normalize_addr, uri_for};
use crate::cache::{MetadataCache, Route};
use crate::error::LeaderHint;
use crate::owned_record::{build_batch, group_by_partition, now_ms};
use crate::partitioner::StickyCounter;
use crate::producer::{reserve_sequences, settle, ProducerSession};
use crate::retry::{classify, Backoff, Disposition};
use crate::{ClientConfig, ClientError, FetchedRecords, OffsetSpec, OwnedRecord, PartitionOutcome};

pub(crate) type Rpc = CairnClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to each request when a token is set.
#[derive(Clone)]
pub(crate) struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

/// A handle to a Cairn cluster. Cheap to clone; clones share connections and
/// the metadata cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    bootstrap: Vec<String>,
    cache: RwLock<MetadataCache>,
    /// One channel (HTTP/2 connection) per node address.
    channels: Mutex<HashMap<String, Channel>>,
    /// The address that last answered a cluster-wide request.
    preferred: Mutex<Option<String>>,
    sticky: StickyCounter,
    /// Present when `config.idempotent`.
    producer: Option<ProducerSession>,
    /// Present when `config.tls` is.
    tls: Option<cairn_tls::TlsConnector>,
    /// The `authorization` header of `config.token`.
    bearer: Bearer,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.bootstrap)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A failed attempt against one node.
struct Failure {
    error: ClientError,
    hint: Option<LeaderHint>,
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure { error, hint: None }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout);
    r
}

impl Client {
    /// Connects with the default [`ClientConfig`]; see [`Client::connect_with`].
    pub async fn connect(bootstrap: &[String]) -> Result<Client, ClientError> {
        Self::connect_with(bootstrap, ClientConfig::default()).await
    }

    /// Connects to the first bootstrap address (`host:port` or
    /// `http://host:port`) that answers a `Metadata` request, and caches the
    /// answer. Keeps trying the addresses in order for
    /// `config.bootstrap_deadline`.
    pub async fn connect_with(
        bootstrap: &[String],
        config: ClientConfig,
    ) -> Result<Client, ClientError> {
        let mut addrs = Vec::with_capacity(bootstrap.len());
        for a in bootstrap {
            let a = normalize_addr(a)?;
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        if addrs.is_empty() {
            return Err(ClientError::NoBootstrap);
        }
        let tls = match &config.tls {
            None => None,
            Some(t) => {
                let identity = t.identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
                let client = cairn_tls::ClientTls::from_files(&t.ca_file, identity)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                Some(cairn_tls::TlsConnector::new(client))
            }
        };
        let bearer = match &config.token {
            None => Bearer(None),
            Some(t) => Bearer(Some(format!("Bearer {}", t.0).parse().map_err(|_| {
                ClientError::InvalidConfig(
                    "the bearer token holds characters a header cannot".into(),
                )
            })?)),
        };
        let client = Client {
            inner: Arc::new(Inner {
                bearer,
                bootstrap: addrs,
                cache: RwLock::new(MetadataCache::default()),
                channels: Mutex::new(HashMap::new()),
                preferred: Mutex::new(None),
                sticky: StickyCounter::new(),
                producer: config.idempotent.then(ProducerSession::new),
                tls,
                config,
            }),
        };
        let start = Instant::now();
        let deadline = start + client.inner.config.bootstrap_deadline;
        let resp = client.refresh_metadata(&[], deadline).await?;
        info!(
            cluster_id = %resp.cluster_id,
            nodes = resp.nodes.len(),
            topics = resp.topics.len(),
            "connected to cairn cluster"
        );
        Ok(client)
    }

    /// The configuration this client was created with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The idempotent-producer session (producer id, per-partition
    /// sequences), shared with the batching [`crate::Producer`].
    pub(crate) fn producer_session(&self) -> Option<&ProducerSession> {
        self.inner.producer.as_ref()
    }

    // ----- cluster-wide requests -------------------------------------------

    /// Cluster nodes and the given topics (all topics when empty). Also
    /// refreshes the client's routing cache.
    pub async fn metadata(&self, topics: &[String]) -> Result<MetadataResponse, ClientError> {
        let deadline = Instant::now() + self.inner.config.retry.deadline;
        self.refresh_metadata(topics, deadline).await
    }

    /// All topics, with partitions and leaders.
    pub async fn list_topics(&self) -> Result<Vec<TopicMetadata>, ClientError> {
        Ok(self.metadata(&[]).await?.topics)
    }

    /// Creates a topic and returns it as created.
    ///
    /// Retried on transient failures, so a create whose answer was lost may
    /// be reported as `TOPIC_ALREADY_EXISTS` by the retry.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: HashMap<String, String>,
    ) -> Result<TopicMetadata, ClientError> {
        let req = CreateTopicRequest {
            name: name.to_owned(),
            partitions,
            replication_factor,
            configs,
        };
        let timeout = self.inner.config.request_timeout;
        let resp = self
            .call_any("create_topic", &mut self.backoff(), |mut c: Rpc| {
                let r = req.clone();
                async move { c.create_topic(request(r, timeout)).await }
            })
            .await?;
        resp.topic
            .ok_or_else(|| ClientError::Protocol("CreateTopic answer without a topic".into()))
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let req = DeleteTopicRequest {
            name: name.to_owned(),
        };
        let timeout = self.inner.config.request_timeout;
        self.call_any("delete_topic", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.delete_topic(request(r, timeout)).await }
        })
        .await?;
        self.write_cache().forget_topic(name);
        Ok(())
    }

    /// Alters a topic's configs: removes the `delete` keys, then sets `set`.
    /// Returns the topic's configs afterwards. An unknown key or a bad value
    /// fails with `INVALID_CONFIG` and changes nothing.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        set: HashMap<String, String>,
        delete: Vec<String>,
    ) -> Result<HashMap<String, String>, ClientError> {
        let req = AlterTopicConfigRequest {
            name: name.to_owned(),
            set,
            delete,
        };
        let timeout = self.inner.config.request_timeout;
        let resp = self
            .call_any("alter_topic_config", &mut self.backoff(), |mut c: Rpc| {
                let r = req.clone();
                async move { c.alter_topic_config(request(r, timeout)).await }
            })
            .await?;
        // Cached topic metadata carries the configs: refresh on next use.
        self.write_cache().forget_topic(name);
        Ok(resp.configs)
    }

    /// Grows a topic to `count` partitions and returns it afterwards. Fails
    /// with `INVALID_ARGUMENT` unless the count grows (partitions are never
    /// removed). A retry whose first attempt was applied fails that way too.
    pub async fn create_partitions(
        &self,
        topic: &str,
        count: u32,
    ) -> Result<TopicMetadata, ClientError> {
        let req = CreatePartitionsRequest {
            topic: topic.to_owned(),
            count,
        };
        let timeout = self.inner.config.request_timeout;
        let resp = self
            .call_any("create_partitions", &mut self.backoff(), |mut c: Rpc| {
                let r = req.clone();
                async move { c.create_partitions(request(r, timeout)).await }
            })
            .await?;
        // The cached partition count is stale now.
        self.write_cache().forget_topic(topic);
        resp.topic
            .ok_or_else(|| ClientError::Protocol("CreatePartitions answer without a topic".into()))
    }

    /// Moves a partition to `replicas` (preferred leader first). Returns once
    /// the metadata holds the new assignment; the partition's leader then
    /// carries the change out (watch it with [`Client::describe_topic`]).
    pub async fn reassign_partition(
        &self,
        topic: &str,
        partition: u32,
        replicas: &[u64],
    ) -> Result<(), ClientError> {
        let req = ReassignPartitionRequest {
            topic: topic.to_owned(),
            partition,
            replicas: replicas.to_vec(),
        };
        let timeout = self.inner.config.request_timeout;
        self.call_any("reassign_partition", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.reassign_partition(request(r, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// A topic's configuration and per-partition state.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicMetadata, ClientError> {
        let req = DescribeTopicRequest {
            name: name.to_owned(),
        };
        let timeout = self.inner.config.request_timeout;
        let resp = self
            .call_any("describe_topic", &mut self.backoff(), |mut c: Rpc| {
                let r = req.clone();
                async move { c.describe_topic(request(r, timeout)).await }
            })
            .await?;
        resp.topic
            .ok_or_else(|| ClientError::Protocol("DescribeTopic answer without a topic".into()))
    }

    /// Cluster health as seen by one node.
    pub async fn cluster_status(&self) -> Result<ClusterStatusResponse, ClientError> {
        let timeout = self.inner.config.request_timeout;
        self.call_any(
            "cluster_status",
            &mut self.backoff(),
            |mut c: Rpc| async move {
                c.cluster_status(request(ClusterStatusRequest {}, timeout))
                    .await
            },
        )
        .await
    }

    /// Starts decommissioning a node: every partition on it is moved to
    /// other live nodes (the answer lists the moves) and no new replica is
    /// placed on it. Call [`Client::remove_node`] once the moves are done.
    pub async fn decommission_node(&self, node: u64) -> Result<Vec<PartitionMove>, ClientError> {
        let timeout = self.inner.config.request_timeout;
        let reply = self
            .call_any(
                "decommission_node",
                &mut self.backoff(),
                |mut c: Rpc| async move {
                    c.decommission_node(request(DecommissionNodeRequest { node }, timeout))
                        .await
                },
            )
            .await?;
        Ok(reply.moves)
    }

    /// Removes a drained node for good (its id is never used again);
    /// `NODE_IN_USE` while a partition's Raft membership still holds it.
    pub async fn remove_node(&self, node: u64) -> Result<(), ClientError> {
        let timeout = self.inner.config.request_timeout;
        self.call_any(
            "remove_node",
            &mut self.backoff(),
            |mut c: Rpc| async move {
                c.remove_node(request(RemoveNodeRequest { node }, timeout))
                    .await
            },
        )
        .await?;
        Ok(())
    }

    /// Sets and deletes users' SCRAM credentials (ALTER on the cluster).
    pub async fn alter_users(
        &self,
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
    ) -> Result<(), ClientError> {
        let timeout = self.inner.config.request_timeout;
        self.call_any("alter_users", &mut self.backoff(), |mut c: Rpc| {
            let req = AlterUsersRequest {
                deletions: deletions.clone(),
                upsertions: upsertions.clone(),
            };
            async move { c.alter_users(request(req, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// The users named (all when empty) and their SCRAM mechanisms.
    pub async fn describe_users(
        &self,
        users: Vec<String>,
    ) -> Result<Vec<UserDescription>, ClientError> {
        let timeout = self.inner.config.request_timeout;
        let reply = self
            .call_any("describe_users", &mut self.backoff(), |mut c: Rpc| {
                let users = users.clone();
                async move {
                    c.describe_users(request(DescribeUsersRequest { users }, timeout))
                        .await
                }
            })
            .await?;
        Ok(reply.users)
    }

    /// Every user's stored SCRAM credentials (CLUSTER_ACTION on the
    /// cluster): what a mirror link copies.
    pub async fn export_users(&self) -> Result<Vec<StoredScramCredential>, ClientError> {
        let timeout = self.inner.config.request_timeout;
        let reply = self
            .call_any(
                "export_users",
                &mut self.backoff(),
                |mut c: Rpc| async move {
                    c.export_users(request(ExportUsersRequest {}, timeout))
                        .await
                },
            )
            .await?;
        Ok(reply.credentials)
    }

    /// Changes a role (ALTER on the cluster).
    pub async fn alter_role(&self, req: AlterRoleRequest) -> Result<(), ClientError> {
        let timeout = self.inner.config.request_timeout;
        self.call_any("alter_role", &mut self.backoff(), |mut c: Rpc| {
            let req = req.clone();
            async move { c.alter_role(request(req, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Every role, its bindings and members (DESCRIBE on the cluster).
    pub async fn list_roles(&self) -> Result<Vec<RoleDescription>, ClientError> {
        let timeout = self.inner.config.request_timeout;
        let reply = self
            .call_any("list_roles", &mut self.backoff(), |mut c: Rpc| async move {
                c.list_roles(request(ListRolesRequest {}, timeout)).await
            })
            .await?;
        Ok(reply.roles)
    }

    /// Stores ACL bindings (ALTER on the cluster).
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<(), ClientError> {
        let timeout = self.inner.config.request_timeout;
        self.call_any("create_acls", &mut self.backoff(), |mut c: Rpc| {
            let acls = acls.clone();
            async move {
                c.create_acls(request(CreateAclsRequest { acls }, timeout))
                    .await
            }
        })
        .await?;
        Ok(())
    }

    /// The ACL bindings matching `filter` (DESCRIBE on the cluster).
    pub async fn list_acls(&self, filter: AclFilter) -> Result<Vec<AclBinding>, ClientError> {
        let timeout = self.inner.config.request_timeout;
        let reply = self
            .call_any("list_acls", &mut self.backoff(), |mut c: Rpc| {
                let filter = Some(filter.clone());
                async move {
                    c.list_acls(request(ListAclsRequest { filter }, timeout))
                        .await
                }
            })
            .await?;
        Ok(reply.acls)
    }

    /// Deletes the ACL bindings matching `filter`; answers them.
    pub async fn delete_acls(&self, filter: AclFilter) -> Result<Vec<AclBinding>, ClientError> {
        let timeout = self.inner.config.request_timeout;
        let reply = self
            .call_any("delete_acls", &mut self.backoff(), |mut c: Rpc| {
                let filter = Some(filter.clone());
                async move {
                    c.delete_acls(request(DeleteAclsRequest { filter }, timeout))
                        .await
                }
            })
            .await?;
        Ok(reply.deleted)
    }

    /// Stores committed offsets of a consumer group that has no active
    /// members (tools, or a consumer that assigns partitions itself);
    /// `GROUP_NOT_EMPTY` otherwise. Members commit through
    /// [`crate::Consumer`], which fences commits by generation.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(), ClientError> {
        let req = CommitOffsetsRequest {
            group: group.to_owned(),
            offsets,
            generation: None,
            member_id: String::new(),
        };
        let timeout = self.inner.config.request_timeout;
        self.call_any("commit_offsets", &mut self.backoff(), |mut c: Rpc| {
            let r = req.clone();
            async move { c.commit_offsets(request(r, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// The committed offsets of a consumer group.
    pub async fn fetch_offsets(&self, group: &str) -> Result<Vec<OffsetCommit>, ClientError> {
        let req = FetchOffsetsRequest {
            group: group.to_owned(),
        };
        let timeout = self.inner.config.request_timeout;
        let resp = self
            .call_any("fetch_offsets", &mut self.backoff(), |mut c: Rpc| {
                let r = req.clone();
                async move { c.fetch_offsets(request(r, timeout)).await }
            })
            .await?;
        Ok(resp.offsets)
    }

    /// The number of partitions of `topic`: from the cache while it is
    /// younger than `ClientConfig::metadata_max_age`, else from fresh
    /// metadata. If a stale entry cannot be refreshed (the cluster is
    /// unreachable), the stale count is used, as Kafka clients do.
    pub async fn partition_count(&self, topic: &str) -> Result<u32, ClientError> {
        let max_age = self.inner.config.metadata_max_age;
        if let Some(n) = self.read_cache().fresh_partition_count(topic, max_age) {
            return Ok(n);
        }
        let stale = self.read_cache().partition_count(topic);
        let wait = match stale {
            Some(_) => self.inner.config.request_timeout,
            None => self.inner.config.retry.deadline,
        };
        match self
            .refresh_metadata(&[topic.to_owned()], Instant::now() + wait)
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => return Err(e),
            Err(e) => match stale {
                Some(n) => {
                    debug!(topic, error = %e, "metadata refresh failed; using the cached partition count");
                    return Ok(n);
                }
                None => return Err(e),
            },
        }
        self.read_cache()
            .partition_count(topic)
            .ok_or_else(|| unknown_topic(topic))
    }

    // ----- partition requests ----------------------------------------------

    /// Appends `records` (one or more concatenated RecordBatch v2 batches) to
    /// a partition.
    ///
    /// **May duplicate** unless the batches carry a producer id and sequence
    /// numbers (see [`Client::produce_records`]): when an attempt fails with a
    /// transport error or a timeout, the batch may have been appended anyway,
    /// and the retry appends it again.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        records: Bytes,
        acks: Acks,
    ) -> Result<ProduceResponse, ClientError> {
        let produce_timeout = self.inner.config.produce_timeout;
        let timeout = produce_timeout + self.inner.config.request_timeout;
        let timeout_ms = u32::try_from(produce_timeout.as_millis()).unwrap_or(u32::MAX);
        let topic_owned = topic.to_owned();
        self.call_leader("produce", topic, partition, |mut c: Rpc| {
            let r = ProduceRequest {
                topic: topic_owned.clone(),
                partition,
                acks: acks as i32,
                records: records.clone(),
                timeout_ms,
            };
            async move { c.produce(request(r, timeout)).await }
        })
        .await
    }

    /// Produces records to a topic, choosing each record's partition like
    /// Kafka's default partitioner: the record's explicit partition, else
    /// murmur2 of its key, else one partition for all keyless records of
    /// this call (round-robin from call to call). One batch per partition is
    /// sent, all partitions concurrently.
    ///
    /// Returns one outcome per partition; the outer error is only for
    /// failures before anything was sent (unknown topic, no metadata).
    ///
    /// With `ClientConfig::idempotent` (the default) the batches carry this
    /// client's producer id and per-partition sequence numbers, so a retry of
    /// a batch that was in fact written is answered with the original offset
    /// instead of being written twice; concurrent calls are serialised per
    /// partition to keep sequences in order. Without it, the duplication
    /// caveat of [`Client::produce`] applies.
    pub async fn produce_records(
        &self,
        topic: &str,
        records: &[OwnedRecord],
        acks: Acks,
    ) -> Result<Vec<PartitionOutcome>, ClientError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.partition_count(topic).await?;
        if n == 0 {
            return Err(ClientError::server(
                ErrorCode::UnknownPartition,
                format!("topic {topic} has no partitions"),
            ));
        }
        let sticky = self.inner.sticky.next(n);
        let now = now_ms();
        let sends = group_by_partition(records, n, sticky).into_iter().map(
            |(partition, record_indices)| async move {
                let (stamp, reservation) = reserve_sequences(
                    self.inner.producer.as_ref(),
                    topic,
                    partition,
                    record_indices.len(),
                )
                .await;
                let batch = build_batch(
                    records,
                    &record_indices,
                    now,
                    stamp,
                    self.inner.config.compression,
                );
                let result = self.produce(topic, partition, batch, acks).await;
                // Only now may the next batch for this partition go out.
                settle(reservation, &result);
                PartitionOutcome {
                    partition,
                    record_indices,
                    result,
                }
            },
        );
        Ok(futures::future::join_all(sends).await)
    }

    /// Reads record batches from `offset`, waiting up to `max_wait_ms` for
    /// data. The first batch may start before `offset`; see
    /// [`Client::fetch_records`] for decoded records.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchResponse, ClientError> {
        let timeout =
            Duration::from_millis(u64::from(max_wait_ms)) + self.inner.config.request_timeout;
        let req = FetchRequest {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes,
            max_wait_ms,
        };
        self.call_leader("fetch", topic, partition, |mut c: Rpc| {
            let r = req.clone();
            async move { c.fetch(request(r, timeout)).await }
        })
        .await
    }

    /// [`Client::fetch`], decoded: records at or after `offset` and the next
    /// offset to fetch.
    pub async fn fetch_records(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchedRecords, ClientError> {
        let resp = self
            .fetch(topic, partition, offset, max_bytes, max_wait_ms)
            .await?;
        FetchedRecords::decode(resp, offset)
    }

    /// Looks up an offset of a partition.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<ListOffsetsResponse, ClientError> {
        let timeout = self.inner.config.request_timeout;
        let req = ListOffsetsRequest {
            topic: topic.to_owned(),
            partition,
            spec: Some(spec.into()),
        };
        self.call_leader("list_offsets", topic, partition, |mut c: Rpc| {
            let r = req.clone();
            async move { c.list_offsets(request(r, timeout)).await }
        })
        .await
    }

    // ----- plumbing ---------------------------------------------------------

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(self.inner.config.retry)
    }

    fn read_cache(&self) -> RwLockReadGuard<'_, MetadataCache> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_cache(&self) -> RwLockWriteGuard<'_, MetadataCache> {
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The (shared, lazily connecting) channel to `addr`.
    fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        let mut channels = lock(&self.inner.channels);
        if let Some(ch) = channels.get(addr) {
            return Ok(ch.clone());
        }
        let reach = self
            .inner
            .config
            .address_map
            .get(addr)
            .map_or(addr, String::as_str);
        let endpoint =
            Endpoint::from_shared(uri_for(reach)).map_err(|e| ClientError::InvalidAddress {
                addr: addr.to_owned(),
                reason: e.to_string(),
            })?;
        let endpoint = endpoint
            .connect_timeout(self.inner.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(16 << 20));
        let channel = match &self.inner.tls {
            Some(tls) => endpoint.connect_with_connector_lazy(tls.clone()),
            None => endpoint.connect_lazy(),
        };
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// One attempt of a call against `addr`.
    async fn attempt<T, F, Fut>(&self, addr: &str, f: &mut F) -> Result<T, Failure>
    where
        F: FnMut(Rpc) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let limit = self.inner.config.max_message_size;
        let rpc = CairnClient::with_interceptor(self.channel(addr)?, self.inner.bearer.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        match f(rpc).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(status) => Err(Failure {
                error: ClientError::from_status(&status, addr),
                hint: LeaderHint::from_status(&status),
            }),
        }
    }

    /// Addresses for cluster-wide requests: the last one that answered, then
    /// every known node (metadata leader first), then the bootstrap list.
    fn any_candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(p) = lock(&self.inner.preferred).clone() {
            out.push(p);
        }
        let known = self.read_cache().node_addrs();
        for a in known
            .into_iter()
            .chain(self.inner.bootstrap.iter().cloned())
        {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// Moves the metadata source on to the next known node (cyclically),
    /// so that a node with a stale view — one cut off from the cluster
    /// still names itself leader — is not asked again and again.
    fn rotate_preferred(&self) {
        let mut known = self.read_cache().node_addrs();
        for b in &self.inner.bootstrap {
            if !known.contains(b) {
                known.push(b.clone());
            }
        }
        if known.len() < 2 {
            return;
        }
        let mut preferred = lock(&self.inner.preferred);
        let next = match preferred
            .as_ref()
            .and_then(|p| known.iter().position(|a| a == p))
        {
            Some(i) => known[(i + 1) % known.len()].clone(),
            None => known[0].clone(),
        };
        *preferred = Some(next);
    }

    /// Runs a cluster-wide call against any node, moving on to the next
    /// known node when one is unreachable or not the right one, and
    /// retrying with backoff (per `backoff`) once every node was tried.
    pub(crate) async fn call_any<T, F, Fut>(
        &self,
        op: &'static str,
        backoff: &mut Backoff,
        mut f: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Rpc) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut candidates = self.any_candidates();
        let mut next = 0usize;
        let mut tried_this_round = 0usize;
        let mut redirect: Option<String> = None;
        loop {
            let addr = match redirect.take() {
                Some(a) => a,
                None => {
                    let a = candidates[next % candidates.len()].clone();
                    next += 1;
                    tried_this_round += 1;
                    a
                }
            };
            let failure = match self.attempt(&addr, &mut f).await {
                Ok(v) => {
                    *lock(&self.inner.preferred) = Some(addr);
                    return Ok(v);
                }
                Err(failure) => failure,
            };
            let disposition = classify(&failure.error);
            if disposition == Disposition::Fail {
                return Err(failure.error);
            }
            debug!(op, %addr, error = %failure.error, "request failed, retrying");
            let now = Instant::now();
            if now >= backoff.deadline() {
                return Err(backoff.exhausted(failure.error, now));
            }
            if disposition == Disposition::Retry {
                redirect = Some(addr);
            } else if let Some(hinted) = failure.hint.and_then(|h| {
                h.addr.or_else(|| {
                    h.id.and_then(|id| self.read_cache().node_addr(id).map(str::to_owned))
                })
            }) {
                if hinted != addr {
                    redirect = Some(hinted);
                }
            } else if tried_this_round < candidates.len() {
                // Another node may answer right away: no need to wait.
                continue;
            }
            let Some(delay) = backoff.next_delay(now) else {
                return Err(backoff.exhausted(failure.error, now));
            };
            tokio::time::sleep(delay).await;
            if redirect.is_none() && tried_this_round >= candidates.len() {
                candidates = self.any_candidates();
                next = 0;
                tried_this_round = 0;
            }
        }
    }

    /// Fetches metadata for `topics` (all when empty) from any node and
    /// merges it into the cache. An `UNKNOWN_TOPIC` answer drops the topics
    /// from the cache.
    async fn refresh_metadata(
        &self,
        topics: &[String],
        deadline: Instant,
    ) -> Result<MetadataResponse, ClientError> {
        let req = MetadataRequest {
            topics: topics.to_vec(),
        };
        let timeout = self.inner.config.request_timeout;
        let mut backoff = Backoff::until(self.inner.config.retry, Instant::now(), deadline);
        let result = self
            .call_any("metadata", &mut backoff, |mut c: Rpc| {
                let r = req.clone();
                async move { c.metadata(request(r, timeout)).await }
            })
            .await;
        match result {
            Ok(resp) => {
                self.write_cache().apply(&resp, topics);
                Ok(resp)
            }
            Err(e) => {
                if e.code() == Some(ErrorCode::UnknownTopic) {
                    let mut cache = self.write_cache();
                    for t in topics {
                        cache.forget_topic(t);
                    }
                }
                Err(e)
            }
        }
    }

    /// Runs a call against the leader of `topic`/`partition`, following
    /// leader changes until the retry deadline.
    async fn call_leader<T, F, Fut>(
        &self,
        op: &'static str,
        topic: &str,
        partition: u32,
        mut f: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Rpc) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut backoff = self.backoff();
        let mut refreshed_unknown = false;
        let mut redirect: Option<String> = None;
        let topics = [topic.to_owned()];
        loop {
            let (generation, route) = {
                let cache = self.read_cache();
                (cache.generation(), cache.route(topic, partition))
            };
            let target = match (redirect.take(), route) {
                (Some(addr), _) | (None, Route::Leader { addr, .. }) => Ok(addr),
                (None, Route::NoLeader) => Err(ClientError::server(
                    ErrorCode::LeaderNotAvailable,
                    format!("no leader known for partition {partition} of {topic}"),
                )),
                (None, Route::UnknownTopic | Route::UnknownPartition { .. })
                    if !refreshed_unknown =>
                {
                    refreshed_unknown = true;
                    match self.refresh_metadata(&topics, backoff.deadline()).await {
                        Ok(_) => continue,
                        Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => {
                            return Err(e);
                        }
                        Err(e) => Err(e),
                    }
                }
                (None, Route::UnknownTopic) => return Err(unknown_topic(topic)),
                (None, Route::UnknownPartition { partitions }) => {
                    return Err(ClientError::server(
                        ErrorCode::UnknownPartition,
                        format!(
                            "topic {topic} has {partitions} partitions, no partition {partition}"
                        ),
                    ))
                }
            };
            let failure = match target {
                Ok(addr) => match self.attempt(&addr, &mut f).await {
                    Ok(v) => return Ok(v),
                    Err(failure) => failure,
                },
                Err(error) => Failure::from(error),
            };
            let disposition = match failure.error {
                // A nested metadata refresh already retried until the deadline.
                ClientError::RetriesExhausted { .. } => return Err(failure.error),
                ref e => classify(e),
            };
            if disposition == Disposition::Fail {
                return Err(failure.error);
            }
            let mut refresh = disposition == Disposition::Refresh;
            if let Some(hint) = &failure.hint {
                self.write_cache().apply_hint(topic, partition, hint);
                if hint.id.is_none() {
                    redirect = hint.addr.clone();
                }
                refresh = false;
            }
            let now = Instant::now();
            let Some(delay) = backoff.next_delay(now) else {
                return Err(backoff.exhausted(failure.error, now));
            };
            debug!(
                op,
                topic,
                partition,
                error = %failure.error,
                delay_ms = delay.as_millis() as u64,
                "partition request failed, retrying"
            );
            tokio::time::sleep(delay).await;
            // Skip the refresh if another caller already updated the cache.
            if refresh && self.read_cache().generation() == generation {
                self.rotate_preferred();
                if let Err(e) = self.refresh_metadata(&topics, backoff.deadline()).await {
                    debug!(op, topic, error = %e, "metadata refresh failed");
                }
            }
        }
    }
}

fn unknown_topic(topic: &str) -> ClientError {
    ClientError::server(
        ErrorCode::UnknownTopic,
        format!("topic {topic} does not exist"),
    )
}
