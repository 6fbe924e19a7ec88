//! DescribeUserScramCredentials and AlterUserScramCredentials: the users
//! SASL/SCRAM (and PLAIN) authenticate against, kept in the metadata group.
//! Clients send the salted password, never the password.

use cairn_broker::scram::ScramMechanism;
use cairn_broker::Broker;
use cairn_broker::RequestContext;
use cairn_broker::ScramUpsertion;
use cairn_kafka::kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use cairn_kafka::kafka_protocol::messages::describe_user_scram_credentials_response::CredentialInfo;
use cairn_kafka::kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use cairn_kafka::kafka_protocol::messages::*;
use cairn_kafka::kafka_protocol::ResponseError;

use super::code;
use super::str_bytes;

pub(crate) fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    r: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let users = r
        .users
        .map(|us| us.into_iter().map(|u| u.name.to_string()).collect());
    match broker.describe_users(ctx, users) {
        Err(e) => DescribeUserScramCredentialsResponse::default()
            .with_error_code(e.kafka_code())
            .with_error_message(Some(str_bytes(e.to_string()))),
        Ok(found) => DescribeUserScramCredentialsResponse::default().with_results(
            found
                .into_iter()
                .map(|(user, creds)| {
                    let answer =
                        DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
                    match creds {
                        None => answer
                            .with_error_code(code(ResponseError::ResourceNotFound))
                            .with_error_message(Some(str_bytes("no such user"))),
                        Some(creds) => answer.with_credential_infos(
                            creds
                                .into_iter()
                                .map(|(m, iterations)| {
                                    CredentialInfo::default()
                                        .with_mechanism(m.code())
                                        .with_iterations(iterations as i32)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect(),
        ),
    }
}

pub(crate) async fn alter(
    broker: &Broker,
    ctx: &RequestContext,
    r: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut results = Vec::new();
    let mut deletions = Vec::new();
    let mut upsertions = Vec::new();
    let bad_mechanism = |user: &str, m: i8| {
        AlterUserScramCredentialsResult::default()
            .with_user(str_bytes(user))
            .with_error_code(code(ResponseError::UnsupportedSaslMechanism))
            .with_error_message(Some(str_bytes(format!("unknown SCRAM mechanism {m}"))))
    };
    for d in r.deletions {
        match ScramMechanism::from_code(d.mechanism) {
            Some(m) => deletions.push((d.name.to_string(), m)),
            None => results.push(bad_mechanism(d.name.as_str(), d.mechanism)),
        }
    }
    for u in r.upsertions {
        match ScramMechanism::from_code(u.mechanism) {
            Some(m) => upsertions.push(ScramUpsertion {
                user: u.name.to_string(),
                mechanism: m,
                iterations: u32::try_from(u.iterations).unwrap_or(0),
                salt: u.salt.to_vec(),
                salted_password: u.salted_password.to_vec(),
            }),
            None => results.push(bad_mechanism(u.name.as_str(), u.mechanism)),
        }
    }
    let users: Vec<String> = deletions
        .iter()
        .map(|(u, _)| u.clone())
        .chain(upsertions.iter().map(|u| u.user.clone()))
        .collect();
    match broker.alter_users(ctx, deletions, upsertions).await {
        Err(e) => {
            for user in users {
                results.push(
                    AlterUserScramCredentialsResult::default()
                        .with_user(str_bytes(user))
                        .with_error_code(e.kafka_code())
                        .with_error_message(Some(str_bytes(e.to_string()))),
                );
            }
        }
        Ok(done) => {
            for (user, r) in done {
                let answer = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
                results.push(match r {
                    Ok(()) => answer,
                    Err(e) => answer
                        .with_error_code(e.kafka_code())
                        .with_error_message(Some(str_bytes(e.to_string()))),
                });
            }
        }
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}
