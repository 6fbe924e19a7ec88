//! The APIs and versions Cairn speaks.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::ApiVersionsResponse;

/// One API: the versions Cairn implements, and whether ApiVersions names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    /// Advertised in ApiVersions. The unadvertised ones (transactions)
    /// are decoded only to answer them with a clear error.
    pub advertised: bool,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi {
        key,
        min_version,
        max_version,
        advertised: true,
    }
}

const fn refused(key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi {
        key,
        min_version,
        max_version,
        advertised: false,
    }
}

/// Every API a request may name. The version caps are where Cairn's
/// semantics stop; see docs/ops/kafka.md.
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 13),
    api(ApiKey::Fetch, 4, 17),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 12),
    // librdkafka enables SASL only if version 0 is listed. The tokens must
    // then come in SaslAuthenticate requests (every client since Kafka 1.0
    // sends them so when SaslAuthenticate is advertised); raw token frames
    // after a version 0 handshake are refused.
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 4),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    refused(ApiKey::AddPartitionsToTxn, 0, 3),
    refused(ApiKey::AddOffsetsToTxn, 0, 3),
    refused(ApiKey::EndTxn, 0, 3),
    refused(ApiKey::TxnOffsetCommit, 0, 3),
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The versions of `api_key` that Cairn decodes, if any.
pub fn supported_range(api_key: i16) -> Option<SupportedApi> {
    SUPPORTED_APIS
        .iter()
        .find(|a| a.key as i16 == api_key)
        .copied()
}

/// The ApiVersions answer: every advertised API with its versions, and
/// `error_code` (0, or 35 UNSUPPORTED_VERSION for a request version Cairn
/// does not speak; that answer is encoded as version 0, as Kafka does).
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED_APIS
                .iter()
                .filter(|a| a.advertised)
                .map(|a| {
                    ApiVersion::default()
                        .with_api_key(a.key as i16)
                        .with_min_version(a.min_version)
                        .with_max_version(a.max_version)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;

    /// docs/ops/kafka.md's "APIs and versions" table is what ApiVersions
    /// answers: one row per advertised API, with its key and versions.
    #[test]
    fn the_docs_version_table_is_the_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ops/kafka.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let table = &doc[doc.find("## APIs and versions").expect("the section")..];
        let rows: Vec<(String, i16, String)> = table
            .lines()
            .skip_while(|l| !l.starts_with("| API |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    cells[1].to_string(),
                    cells[2].parse().expect("an API key"),
                    cells[3].to_string(),
                )
            })
            .collect();
        let want: Vec<(String, i16, String)> = SUPPORTED_APIS
            .iter()
            .filter(|a| a.advertised)
            .map(|a| {
                let versions = if a.min_version == a.max_version {
                    a.min_version.to_string()
                } else {
                    format!("{}\u{2013}{}", a.min_version, a.max_version)
                };
                (format!("{:?}", a.key), a.key as i16, versions)
            })
            .collect();
        let mut got = rows.clone();
        got.sort_by_key(|r| r.1);
        let mut want_sorted = want.clone();
        want_sorted.sort_by_key(|r| r.1);
        assert_eq!(
            got, want_sorted,
            "docs/ops/kafka.md's version table differs"
        );
    }

    #[test]
    fn every_supported_version_is_one_the_codec_knows() {
        for a in SUPPORTED_APIS {
            let codec = a.key.valid_versions();
            assert!(
                codec.min <= a.min_version && a.max_version <= codec.max,
                "{:?} {}..{} outside the codec's {codec}",
                a.key,
                a.min_version,
                a.max_version
            );
        }
        let versions = ApiVersionsResponse::VERSIONS;
        assert_eq!(versions.min, 0);
    }

    #[test]
    fn group_and_acl_apis_are_advertised_and_transactions_are_not() {
        let r = api_versions_response(0);
        for key in [
            ApiKey::JoinGroup,
            ApiKey::FindCoordinator,
            ApiKey::OffsetCommit,
            ApiKey::OffsetDelete,
            ApiKey::CreateAcls,
            ApiKey::DescribeAcls,
            ApiKey::DeleteAcls,
        ] {
            assert!(
                r.api_keys.iter().any(|a| a.api_key == key as i16),
                "{key:?}"
            );
        }
        assert!(!r
            .api_keys
            .iter()
            .any(|a| a.api_key == ApiKey::EndTxn as i16));
    }
}
