//! CreateAcls, DescribeAcls, DeleteAcls: Kafka's ACL admin, on the ACLs the
//! metadata group stores and the broker enforces (`cairn_broker::acl`).

use std::collections::BTreeMap;

use cairn_broker::acl::AclBinding;
use cairn_broker::acl::AclFilter;
use cairn_broker::acl::AclOperation;
use cairn_broker::acl::PatternFilter;
use cairn_broker::acl::PatternType;
use cairn_broker::acl::Permission;
use cairn_broker::acl::ResourceType;
use cairn_broker::Broker;
use cairn_broker::RequestContext;
use cairn_kafka::kafka_protocol::messages::create_acls_response::AclCreationResult;
use cairn_kafka::kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use cairn_kafka::kafka_protocol::messages::delete_acls_response::DeleteAclsMatchingAcl;
use cairn_kafka::kafka_protocol::messages::describe_acls_response::AclDescription;
use cairn_kafka::kafka_protocol::messages::describe_acls_response::DescribeAclsResource;
use cairn_kafka::kafka_protocol::messages::*;
use cairn_kafka::kafka_protocol::protocol::StrBytes;
use cairn_kafka::kafka_protocol::ResponseError;

use super::code;
use super::str_bytes;

/// Kafka's ANY (filters) and MATCH (pattern filters) codes.
const ANY: i8 = 1;
const MATCH: i8 = 2;

fn invalid(what: &str, value: i8) -> (i16, String) {
    (
        code(ResponseError::InvalidRequest),
        format!("unknown {what} {value}"),
    )
}

fn binding(c: &create_acls_request::AclCreation) -> Result<AclBinding, (i16, String)> {
    let b = AclBinding {
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        resource_type: ResourceType::from_code(c.resource_type)
            .ok_or_else(|| invalid("resource type", c.resource_type))?,
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type)
            .ok_or_else(|| invalid("pattern type", c.resource_pattern_type))?,
        operation: AclOperation::from_code(c.operation)
            .ok_or_else(|| invalid("operation", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| invalid("permission", c.permission_type))?,
    };
    b.validate()
        .map_err(|e| (code(ResponseError::InvalidRequest), e.to_string()))?;
    Ok(b)
}

/// An ANY-or-value filter field.
fn any_of<T>(
    what: &str,
    value: i8,
    parse: fn(i8) -> Option<T>,
) -> Result<Option<T>, (i16, String)> {
    if value == ANY {
        return Ok(None);
    }
    parse(value).map(Some).ok_or_else(|| invalid(what, value))
}

#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    resource_name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, (i16, String)> {
    let pattern = match pattern_type {
        ANY => PatternFilter::Any,
        MATCH => PatternFilter::Match,
        p => PatternFilter::Exactly(
            PatternType::from_code(p).ok_or_else(|| invalid("pattern type", p))?,
        ),
    };
    Ok(AclFilter {
        principal: principal.as_ref().map(|s| s.to_string()),
        host: host.as_ref().map(|s| s.to_string()),
        resource_type: any_of("resource type", resource_type, ResourceType::from_code)?,
        resource_name: resource_name.as_ref().map(|s| s.to_string()),
        pattern,
        operation: any_of("operation", operation, AclOperation::from_code)?,
        permission: any_of("permission", permission, Permission::from_code)?,
    })
}

pub(crate) async fn create_acls(
    broker: &Broker,
    ctx: &RequestContext,
    r: CreateAclsRequest,
) -> CreateAclsResponse {
    let parsed: Vec<Result<AclBinding, (i16, String)>> = r.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = parsed
        .iter()
        .filter_map(|b| b.as_ref().ok())
        .cloned()
        .collect();
    let outcome = broker.create_acls(ctx, valid).await;
    let mut stored = match &outcome {
        Ok(results) => results.iter().cloned().map(Some).collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    }
    .into_iter();
    let results = parsed
        .into_iter()
        .map(|p| {
            let answer = AclCreationResult::default();
            let refused = match (p, &outcome) {
                (Err(e), _) => Some(e),
                (Ok(_), Err(e)) => Some((e.kafka_code(), e.to_string())),
                (Ok(_), Ok(_)) => match stored.next().flatten() {
                    Some(Ok(())) | None => None,
                    Some(Err(e)) => Some((e.kafka_code(), e.to_string())),
                },
            };
            match refused {
                None => answer,
                Some((error, message)) => answer
                    .with_error_code(error)
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub(crate) fn describe_acls(
    broker: &Broker,
    ctx: &RequestContext,
    r: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let f = match filter(
        r.resource_type_filter,
        &r.resource_name_filter,
        r.pattern_type_filter,
        &r.principal_filter,
        &r.host_filter,
        r.operation,
        r.permission_type,
    ) {
        Ok(f) => f,
        Err((error, message)) => {
            return DescribeAclsResponse::default()
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message)))
        }
    };
    let bindings = match broker.describe_acls(ctx, &f) {
        Ok(b) => b,
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(e.kafka_code())
                .with_error_message(Some(str_bytes(e.to_string())))
        }
    };
    let mut by_resource: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for b in bindings {
        by_resource
            .entry((b.resource_type, b.resource_name, b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(b.principal))
                    .with_host(str_bytes(b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    DescribeAclsResponse::default().with_resources(
        by_resource
            .into_iter()
            .map(|((t, name, pattern), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(t.code())
                    .with_resource_name(str_bytes(name))
                    .with_pattern_type(pattern.code())
                    .with_acls(acls)
            })
            .collect(),
    )
}

pub(crate) async fn delete_acls(
    broker: &Broker,
    ctx: &RequestContext,
    r: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let parsed: Vec<Result<AclFilter, (i16, String)>> = r
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed
        .iter()
        .filter_map(|f| f.as_ref().ok())
        .cloned()
        .collect();
    let outcome = broker.delete_acls(ctx, valid).await;
    let mut deleted = match &outcome {
        Ok(results) => results.clone(),
        Err(_) => Vec::new(),
    }
    .into_iter();
    let results = parsed
        .into_iter()
        .map(|p| {
            let answer = DeleteAclsFilterResult::default();
            let result = match (p, &outcome) {
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err((e.kafka_code(), e.to_string())),
                (Ok(_), Ok(_)) => match deleted.next() {
                    Some(Ok(bindings)) => Ok(bindings),
                    Some(Err(e)) => Err((e.kafka_code(), e.to_string())),
                    None => Ok(Vec::new()),
                },
            };
            match result {
                Err((error, message)) => answer
                    .with_error_code(error)
                    .with_error_message(Some(str_bytes(message))),
                Ok(bindings) => answer.with_matching_acls(
                    bindings
                        .into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type.code())
                                .with_resource_name(str_bytes(b.resource_name))
                                .with_pattern_type(b.pattern_type.code())
                                .with_principal(str_bytes(b.principal))
                                .with_host(str_bytes(b.host))
                                .with_operation(b.operation.code())
                                .with_permission_type(b.permission.code())
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
