#![allow(clippy::disallowed_methods)] // a test / benchmark: real time
//! The authorization matrix, generated from the façade's table
//! (`cairn_broker::acl::OPERATIONS`): every operation, run through
//! `Broker` on a real single-node cluster (RocksDB on disk), by a principal
//! with no ACL, with the ACLs it needs but one DENY, with exactly the ACLs
//! its rows name, and with them through a role. The first two must be
//! refused, the last two allowed.
//! An operation without a row fails `acl`'s own table test; one without an
//! arm in `run` below does not compile.

use std::collections::BTreeMap;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use anyhow::Result;
use bytes::Bytes;
use cairn_broker::acl::AclBinding;
use cairn_broker::acl::AclFilter;
use cairn_broker::acl::AclOperation;
use cairn_broker::acl::Check;
use cairn_broker::acl::Operation;
use cairn_broker::acl::PatternType;
use cairn_broker::acl::Permission;
use cairn_broker::acl::ResourceType;
use cairn_broker::acl::CLUSTER_RESOURCE;
use cairn_broker::scram::ScramMechanism;
use cairn_broker::views::Readiness;
use cairn_broker::views::Topics;
use cairn_broker::Acks;
use cairn_broker::Broker;
use cairn_broker::BrokerError;
use cairn_broker::JoinArgs;
use cairn_broker::Listener;
use cairn_broker::MemberRef;
use cairn_broker::NewTopic;
use cairn_broker::OffsetSpec;
use cairn_broker::OffsetToCommit;
use cairn_broker::Principal;
use cairn_broker::RequestContext;
use cairn_broker::RoleChange;
use cairn_broker::SaslStep;
use cairn_broker::ScramUpsertion;
use cairn_broker::ServerConfig;

const TOPIC: &str = "t";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn ctx(name: &str) -> RequestContext {
    RequestContext::anonymous(Listener::Kafka, Some("127.0.0.1:40000".parse().unwrap()))
        .with_principal(Principal::user(name))
}

/// The cases of the matrix for one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    NoAcl,
    Deny,
    Allow,
    /// The same bindings, through a role granted to the principal.
    AllowViaRole,
}

/// What an operation touches in one case.
struct Names {
    topic: String,
    group: String,
}

fn names(op: Operation, case: Case) -> Names {
    let topic = match op {
        Operation::CreateTopic => format!("new-{case:?}").to_lowercase(),
        Operation::DeleteTopic => format!("doomed-{case:?}").to_lowercase(),
        _ => TOPIC.to_string(),
    };
    Names {
        topic,
        group: format!("g-{op:?}-{case:?}").to_lowercase(),
    }
}

fn binding(
    principal: &str,
    t: ResourceType,
    name: &str,
    op: AclOperation,
    perm: Permission,
) -> AclBinding {
    AclBinding {
        principal: principal.to_string(),
        host: "*".into(),
        resource_type: t,
        resource_name: name.to_string(),
        pattern_type: PatternType::Literal,
        operation: op,
        permission: perm,
    }
}

/// The bindings the table's rows of `op` name (an `OrNext` row is skipped:
/// the row after it is what the principal gets).
fn grants(op: Operation, n: &Names) -> Vec<AclBinding> {
    cairn_broker::acl::rules(op)
        .filter(|r| r.check != Check::OrNext)
        .map(|r| {
            let name = match r.resource {
                ResourceType::Topic => n.topic.clone(),
                ResourceType::Group => n.group.clone(),
                ResourceType::Cluster => CLUSTER_RESOURCE.to_string(),
                other => panic!("no name for {other}"),
            };
            binding("User:alice", r.resource, &name, r.acl, Permission::Allow)
        })
        .collect()
}

fn unauthorized<T>(r: &Result<T, BrokerError>) -> bool {
    matches!(r, Err(BrokerError::Unauthorized { .. }))
}

/// Runs `op` as `who`; true when it was refused for authorization.
async fn run(b: &Broker, who: &RequestContext, op: Operation, n: &Names) -> Result<bool> {
    let (topic, group) = (n.topic.as_str(), n.group.as_str());
    let member = || MemberRef {
        group: group.to_string(),
        member_id: "nobody".into(),
        generation: 1,
        group_instance_id: None,
    };
    Ok(match op {
        Operation::Produce => unauthorized(
            &b.produce(who, topic, 0, Bytes::from_static(b"junk"), Acks::All, 1000)
                .await,
        ),
        Operation::InitProducerId => unauthorized(&b.init_producer_id(who, None).await),
        Operation::Fetch => unauthorized(&b.fetch(who, topic, 0, 0, 1024, Duration::ZERO).await),
        Operation::ListOffsets => {
            unauthorized(&b.list_offsets(who, topic, 0, OffsetSpec::Latest).await)
        }
        Operation::OffsetForLeaderEpoch => unauthorized(&b.reader(who, op, topic, 0)),
        Operation::Metadata => {
            let v = b.metadata(who, Topics::Named(vec![topic.to_string()]));
            let shown = v.topics.iter().any(|t| t.topic.name == topic);
            let denied = v.denied.iter().any(|t| t == topic);
            if shown == denied {
                bail!("metadata shows {topic} {shown} and denies it {denied}");
            }
            denied
        }
        Operation::CreateTopic => unauthorized(
            &b.create_topic(
                who,
                NewTopic {
                    name: topic.to_string(),
                    partitions: 1,
                    replication_factor: 1,
                    configs: BTreeMap::new(),
                    assignment: None,
                },
                false,
            )
            .await,
        ),
        Operation::DeleteTopic => unauthorized(&b.delete_topic(who, topic).await),
        Operation::CreatePartitions => {
            unauthorized(&b.create_partitions(who, topic, 2, None, true).await)
        }
        Operation::DeleteRecords => unauthorized(&b.delete_records(who, topic, 0, Some(0)).await),
        Operation::DescribeTopic => unauthorized(&b.describe_topic(who, topic)),
        Operation::DescribeTopicConfigs => unauthorized(&b.describe_topic_configs(who, topic)),
        Operation::AlterTopicConfigs => unauthorized(
            &b.alter_topic_configs(who, topic, BTreeMap::new(), vec![], true)
                .await,
        ),
        Operation::DescribeBrokerConfigs => unauthorized(&b.describe_broker_configs(who)),
        Operation::AlterBrokerConfigs => unauthorized(
            &b.alter_broker_configs(who, "", BTreeMap::new(), Vec::new(), false)
                .await,
        ),
        Operation::DescribeCluster => unauthorized(&b.cluster_status(who)),
        Operation::DescribeLogDirs => unauthorized(&b.describe_log_dirs(who, None)),
        Operation::FindCoordinator => unauthorized(&b.find_coordinator(who, group)),
        Operation::JoinGroup => unauthorized(
            &b.join_group(
                who,
                JoinArgs {
                    group: group.to_string(),
                    member_id: String::new(),
                    client_id: "matrix".into(),
                    client_host: "127.0.0.1".into(),
                    protocol_type: "consumer".into(),
                    protocols: vec![("range".into(), Bytes::new())],
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 0,
                    group_instance_id: None,
                },
            )
            .await,
        ),
        Operation::SyncGroup => unauthorized(&b.sync_group(who, member(), vec![]).await),
        Operation::Heartbeat => unauthorized(&b.heartbeat(who, member()).await),
        Operation::LeaveGroup => unauthorized(&b.leave_group(who, group, "nobody", None).await),
        Operation::OffsetCommit => {
            let r = b
                .commit_offsets(
                    who,
                    group,
                    None,
                    "",
                    None,
                    vec![OffsetToCommit {
                        topic: topic.to_string(),
                        partition: 0,
                        offset: 1,
                        metadata: String::new(),
                        leader_epoch: None,
                    }],
                    true,
                )
                .await;
            unauthorized(&r)
                || r.as_ref()
                    .is_ok_and(|ps| ps.iter().any(|(_, _, p)| unauthorized(p)))
        }
        Operation::OffsetFetch => {
            let r = b.fetch_offsets(who, group).await;
            match &r {
                Ok(offsets) if !offsets.iter().any(|o| o.topic == topic) => {
                    bail!("offset fetch allowed but {topic}'s offset left out")
                }
                _ => unauthorized(&r),
            }
        }
        Operation::ListGroups => {
            let groups = b.list_groups(who).await?;
            !groups.iter().any(|g| g.group == group)
        }
        Operation::DescribeGroup => unauthorized(&b.describe_group(who, group).await),
        Operation::DeleteGroup => unauthorized(&b.delete_group(who, group).await),
        Operation::OffsetDelete => {
            let r = b
                .delete_offsets(who, group, vec![(topic.to_string(), 0)])
                .await;
            unauthorized(&r)
                || r.as_ref()
                    .is_ok_and(|ps| ps.iter().any(|(_, _, p)| unauthorized(p)))
        }
        Operation::ReassignPartition => {
            unauthorized(&b.reassign_partition(who, topic, 0, vec![1]).await)
        }
        Operation::DecommissionNode => unauthorized(&b.decommission_node(who, 99).await),
        Operation::RemoveNode => unauthorized(&b.remove_node(who, 99).await),
        Operation::CreateAcls => unauthorized(
            &b.create_acls(
                who,
                vec![binding(
                    "User:bob",
                    ResourceType::Topic,
                    "bobs",
                    AclOperation::Read,
                    Permission::Allow,
                )],
            )
            .await,
        ),
        Operation::DescribeAcls => unauthorized(&b.describe_acls(who, &AclFilter::default())),
        Operation::DescribeUsers => unauthorized(&b.describe_users(who, None)),
        Operation::ExportUsers => unauthorized(&b.export_users(who)),
        Operation::DescribeRoles => unauthorized(&b.describe_roles(who)),
        Operation::DescribeMirrors => unauthorized(&b.describe_mirror_links(who)),
        Operation::AlterMirrors => unauthorized(&b.delete_mirror_link(who, "no-such-link").await),
        Operation::AlterRoles => unauthorized(
            &b.alter_role(
                who,
                RoleChange::Grant {
                    role: "no-such-role".into(),
                    principal: "User:bob".into(),
                },
            )
            .await,
        ),
        Operation::AlterUsers => unauthorized(
            &b.alter_users(who, vec![("nobody".into(), ScramMechanism::Sha256)], vec![])
                .await,
        ),
        Operation::DeleteAcls => unauthorized(
            &b.delete_acls(
                who,
                vec![AclFilter {
                    principal: Some("User:bob".into()),
                    ..AclFilter::default()
                }],
            )
            .await,
        ),
    })
}

async fn start() -> Result<(tempfile::TempDir, cairn_broker::Running)> {
    let dir = tempfile::tempdir()?;
    let config = ServerConfig {
        node_id: 1,
        data_dir: dir.path().join("node"),
        rpc_addr: format!("127.0.0.1:{}", free_port()),
        group_initial_rebalance_delay_ms: 0,
        acl_enabled: true,
        super_users: vec!["User:admin".into()],
        ..ServerConfig::default()
    };
    let running = cairn_broker::start(config).await?;
    let b = running.broker();
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.readiness() != Readiness::Ready || b.find_coordinator(&ctx("admin"), "x").is_err() {
        if Instant::now() > deadline {
            bail!("the node did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((dir, running))
}

async fn create(b: &Broker, name: &str) -> Result<()> {
    b.create_topic(
        &ctx("admin"),
        NewTopic {
            name: name.to_string(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: None,
        },
        false,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_refused_without_its_acls_and_allowed_with_them() -> Result<()> {
    let (_dir, running) = start().await?;
    let b = running.broker();
    let admin = ctx("admin");
    let alice = ctx("alice");
    create(&b, TOPIC).await?;
    let mut failures = Vec::new();
    for &op in Operation::ALL {
        for case in [Case::NoAcl, Case::Deny, Case::Allow, Case::AllowViaRole] {
            let n = names(op, case);
            if op == Operation::DeleteTopic {
                create(&b, &n.topic).await?;
            }
            // Every group starts with a committed offset of the topic.
            b.commit_offsets(
                &admin,
                &n.group,
                None,
                "",
                None,
                vec![OffsetToCommit {
                    topic: TOPIC.into(),
                    partition: 0,
                    offset: 0,
                    metadata: String::new(),
                    leader_epoch: None,
                }],
                true,
            )
            .await?;
            let mut acls = Vec::new();
            if case != Case::NoAcl {
                acls = grants(op, &n);
            }
            if case == Case::Deny {
                let mut deny = acls[0].clone();
                deny.permission = Permission::Deny;
                acls.push(deny);
            }
            let role = format!("role-{op:?}").to_lowercase();
            if case == Case::AllowViaRole {
                b.alter_role(
                    &admin,
                    RoleChange::AddAcls {
                        role: role.clone(),
                        acls: acls.clone(),
                    },
                )
                .await?;
                b.alter_role(
                    &admin,
                    RoleChange::Grant {
                        role: role.clone(),
                        principal: "User:alice".into(),
                    },
                )
                .await?;
            } else {
                for r in b.create_acls(&admin, acls.clone()).await? {
                    r?;
                }
            }
            let refused = run(&b, &alice, op, &n).await?;
            let want_refused = !matches!(case, Case::Allow | Case::AllowViaRole);
            if refused != want_refused {
                failures.push(format!(
                    "{op:?} {case:?}: refused={refused}, expected {want_refused} (acls {acls:?})"
                ));
            }
            for r in b
                .delete_acls(
                    &admin,
                    vec![AclFilter {
                        principal: Some("User:alice".into()),
                        ..AclFilter::default()
                    }],
                )
                .await?
            {
                r?;
            }
            if case == Case::AllowViaRole {
                b.alter_role(&admin, RoleChange::Delete { role }).await?;
            }
        }
    }
    // A super-user is allowed everything without any ACL.
    for &op in Operation::ALL {
        let n = names(op, Case::Allow);
        if op == Operation::DeleteTopic {
            create(&b, &n.topic).await?;
        }
        if op == Operation::CreateTopic {
            continue;
        }
        if run(&b, &admin, op, &n).await? {
            failures.push(format!("{op:?}: refused to the super-user"));
        }
    }
    running.shutdown().await;
    if !failures.is_empty() {
        bail!("{} failures:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}

/// SCRAM's client side, enough to drive the façade's exchange.
fn scram_client_final(
    m: ScramMechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut salt = None;
    let mut iterations = 0;
    let mut nonce = "";
    for attr in server_first.split(',') {
        if let Some(v) = attr.strip_prefix("s=") {
            salt = Some(b64.decode(v).unwrap());
        } else if let Some(v) = attr.strip_prefix("i=") {
            iterations = v.parse().unwrap();
        } else if let Some(v) = attr.strip_prefix("r=") {
            nonce = v;
        }
    }
    let salt = salt.unwrap();
    let cred = m.credential(password, &salt, iterations);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    // ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage); ClientKey
    // from the salted password.
    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = hmac(m, &salted, b"Client Key");
    let signature = hmac(m, &cred.stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    format!("{without_proof},p={}", b64.encode(proof))
}

fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    match m {
        ScramMechanism::Sha256 => {
            let mut h = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            h.update(data);
            h.finalize().into_bytes().to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut h = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            h.update(data);
            h.finalize().into_bytes().to_vec()
        }
    }
}

/// Users created through the façade authenticate with SCRAM and PLAIN;
/// a wrong password, an unknown user, and a disabled mechanism do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_authenticate_with_scram_and_plain_and_nothing_else() -> Result<()> {
    let (_dir, running) = start().await?;
    let b = running.broker();
    let admin = ctx("admin");
    let client = ctx("ANONYMOUS");
    let salt = b"0123456789abcdef".to_vec();
    let upsertions = ScramMechanism::ALL
        .into_iter()
        .map(|m| ScramUpsertion {
            user: "alice".into(),
            mechanism: m,
            iterations: 4096,
            salted_password: m.salted_password(b"s3cret", &salt, 4096),
            salt: salt.clone(),
        })
        .collect();
    for (_, r) in b.alter_users(&admin, vec![], upsertions).await? {
        r?;
    }
    let listed = b.describe_users(&admin, Some(vec!["alice".into(), "bob".into()]))?;
    assert_eq!(listed[0].1.as_ref().map(|c| c.len()), Some(2));
    assert!(listed[1].1.is_none(), "bob does not exist");

    for m in ScramMechanism::ALL {
        for (password, ok) in [("s3cret", true), ("wrong", false)] {
            let mut x = b.sasl_start(m.name())?;
            let bare = "n=alice,r=clientnonce";
            let SaslStep::Continue(first) = x.step(&client, format!("n,,{bare}").as_bytes())?
            else {
                bail!("SCRAM answered its first step with a result");
            };
            let first = String::from_utf8(first)?;
            let last = scram_client_final(m, password, bare, &first);
            match (x.step(&client, last.as_bytes()), ok) {
                (Ok(SaslStep::Authenticated { principal, .. }), true) => {
                    assert_eq!(principal.to_string(), "User:alice")
                }
                (Err(BrokerError::AuthenticationFailed(_)), false) => {}
                (other, _) => bail!("{} with {password}: {other:?}", m.name()),
            }
        }
        let mut x = b.sasl_start(m.name())?;
        assert!(matches!(
            x.step(&client, b"n,,n=bob,r=abc"),
            Err(BrokerError::AuthenticationFailed(_))
        ));
    }
    let plain = |token: &[u8]| -> Result<Result<SaslStep, BrokerError>> {
        Ok(b.sasl_start("PLAIN")?.step(&client, token))
    };
    assert!(matches!(
        plain(b"\0alice\0s3cret")?,
        Ok(SaslStep::Authenticated { .. })
    ));
    assert!(matches!(
        plain(b"\0alice\0wrong")?,
        Err(BrokerError::AuthenticationFailed(_))
    ));
    assert!(matches!(
        b.sasl_start("GSSAPI"),
        Err(BrokerError::UnsupportedSaslMechanism(_))
    ));
    // Deleting the user's credentials ends its logins.
    let deletions = ScramMechanism::ALL
        .into_iter()
        .map(|m| ("alice".to_string(), m))
        .collect();
    for (_, r) in b.alter_users(&admin, deletions, vec![]).await? {
        r?;
    }
    assert!(matches!(
        plain(b"\0alice\0s3cret")?,
        Err(BrokerError::AuthenticationFailed(_))
    ));
    running.shutdown().await;
    Ok(())
}
