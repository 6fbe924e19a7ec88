//! Issue 2: bad input gets a clear error; the server keeps serving and
//! loses nothing already acknowledged.

use std::collections::HashMap;

use anyhow::ensure;
use anyhow::Result;
use cairn_client::Acks;
use cairn_client::ClientError;
use cairn_client::ErrorCode;
use cairn_record::RecordBatchBuilder;

use crate::cluster::TestCluster;
use crate::workload;

fn batch(value: &[u8]) -> bytes::Bytes {
    let mut b = RecordBatchBuilder::new();
    b.push(1_700_000_000_000, Some(b"k"), Some(value), &[]);
    b.build()
}

/// A one-record batch stamped with an idempotent producer's fields.
fn stamped(epoch: i16, sequence: i32) -> bytes::Bytes {
    let mut b = RecordBatchBuilder::new().with_producer(4242, epoch, sequence);
    b.push(1_700_000_000_000, None, Some(b"idem"), &[]);
    b.build()
}

fn code(r: Result<impl std::fmt::Debug, ClientError>) -> Option<ErrorCode> {
    match r {
        Err(ClientError::Server { code, .. }) => Some(code),
        Err(e) => panic!("expected a server error code, got {e}"),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_loses_nothing() -> Result<()> {
    let cluster = TestCluster::start(1).await?;
    let client = cluster.client().await?;
    let configs = HashMap::from([("max.message.bytes".to_string(), "2048".to_string())]);
    client.create_topic("t", 2, 1, configs).await?;
    let first = client.produce("t", 0, batch(b"first"), Acks::All).await?;
    ensure!(first.base_offset == 0);

    eprintln!("--- produce to a missing topic, a missing partition");
    ensure!(
        code(client.produce("missing", 0, batch(b"x"), Acks::All).await)
            == Some(ErrorCode::UnknownTopic)
    );
    ensure!(
        code(client.produce("t", 7, batch(b"x"), Acks::All).await)
            == Some(ErrorCode::UnknownPartition)
    );

    eprintln!("--- a record over max.message.bytes");
    let big = vec![b'x'; 4096];
    ensure!(
        code(client.produce("t", 0, batch(&big), Acks::All).await)
            == Some(ErrorCode::MessageTooLarge)
    );

    eprintln!("--- a batch with a bad CRC, and bytes that are no batch at all");
    let mut corrupt = batch(b"corrupt").to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    ensure!(
        code(client.produce("t", 0, corrupt.into(), Acks::All).await)
            == Some(ErrorCode::CorruptMessage)
    );
    ensure!(
        code(
            client
                .produce("t", 0, bytes::Bytes::from_static(b"hello"), Acks::All)
                .await
        ) == Some(ErrorCode::CorruptMessage)
    );

    eprintln!("--- bad topic requests");
    let bad_config = HashMap::from([("retention.ms".to_string(), "soon".to_string())]);
    ensure!(
        code(client.create_topic("u", 1, 1, bad_config).await) == Some(ErrorCode::InvalidConfig)
    );
    let unknown_config = HashMap::from([("no.such.key".to_string(), "1".to_string())]);
    ensure!(
        code(client.create_topic("u", 1, 1, unknown_config).await)
            == Some(ErrorCode::InvalidConfig)
    );
    ensure!(
        code(client.create_topic("bad name", 1, 1, HashMap::new()).await)
            == Some(ErrorCode::InvalidArgument)
    );
    ensure!(
        code(client.create_topic("u", 1, 3, HashMap::new()).await)
            == Some(ErrorCode::InvalidReplicationFactor)
    );
    ensure!(
        code(client.create_topic("t", 1, 1, HashMap::new()).await)
            == Some(ErrorCode::TopicAlreadyExists)
    );

    eprintln!("--- an idempotent producer's batches must follow one another (Kafka's rules)");
    let produced = |b| client.produce("t", 1, b, Acks::All);
    ensure!(
        produced(stamped(0, 5)).await?.base_offset == 0,
        "a new producer may start anywhere"
    );
    ensure!(produced(stamped(0, 6)).await?.base_offset == 1);
    let retry = produced(stamped(0, 6)).await?;
    ensure!(
        retry.duplicate && retry.base_offset == 1,
        "a retry is answered, not written: {retry:?}"
    );
    ensure!(
        code(produced(stamped(0, 8)).await) == Some(ErrorCode::OutOfOrderSequence),
        "a gap in the sequence"
    );
    ensure!(
        code(produced(stamped(1, 3)).await) == Some(ErrorCode::OutOfOrderSequence),
        "a new epoch not starting at 0"
    );
    ensure!(
        produced(stamped(1, 0)).await?.base_offset == 2,
        "a new epoch at 0"
    );
    ensure!(
        code(produced(stamped(0, 7)).await) == Some(ErrorCode::InvalidProducerEpoch),
        "the older epoch is fenced"
    );
    ensure!(produced(stamped(1, 1)).await?.base_offset == 3);

    eprintln!("--- the server still serves, and nothing was lost");
    let second = client.produce("t", 0, batch(b"second"), Acks::All).await?;
    ensure!(
        second.base_offset == 1,
        "the rejected batches must not take offsets"
    );
    let read = workload::read_all(&client, "t", 2).await?;
    let values: Vec<&str> = read[0].iter().map(|(_, v)| v.as_str()).collect();
    ensure!(
        values == ["first", "second"],
        "partition 0 holds {values:?}"
    );
    ensure!(
        read[1].iter().all(|(_, v)| v == "idem") && read[1].len() == 4,
        "partition 1 holds {:?}",
        read[1]
    );
    Ok(())
}
