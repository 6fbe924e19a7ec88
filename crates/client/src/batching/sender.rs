//! Sending one drained batch: stamp it with the producer id and the
//! partition's next sequences, compress it, produce it (retrying until the
//! delivery deadline), and resolve its records' futures.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cairn_proto::v1::ProduceResponse;
use tokio::sync::oneshot;
use tracing::debug;

use super::accumulator::Drained;
use super::{Outcome, ProducerError, RecordMetadata, Shared};
use crate::owned_record::{build_batch, now_ms};
use crate::producer::{reserve_sequences, settle};
use crate::{ClientError, OwnedRecord};

/// Sends `batch`, then completes its records and frees their bytes.
pub(super) async fn send_batch(shared: Arc<Shared>, batch: Drained<oneshot::Sender<Outcome>>) {
    let Drained {
        topic,
        partition,
        records,
        bytes,
    } = batch;
    let timeout = shared.config.delivery_timeout;
    // The oldest record's deadline is the batch's.
    let deadline = records
        .first()
        .map_or_else(Instant::now, |r| r.enqueued + timeout);
    let mut done = Vec::with_capacity(records.len());
    let mut owned = Vec::with_capacity(records.len());
    for r in records {
        done.push(r.done);
        owned.push(r.record);
    }
    let result = match tokio::time::timeout_at(
        deadline.into(),
        deliver(&shared, &topic, partition, &owned, bytes),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ProducerError::DeliveryTimeout(timeout)),
    };
    drop(owned);
    shared.lock().acc.complete(&topic, partition, bytes);
    match result {
        Ok(resp) => {
            let base = u64::try_from(resp.base_offset).ok();
            for (i, tx) in (0u64..).zip(done) {
                let _ = tx.send(Ok(RecordMetadata {
                    partition,
                    offset: base.map(|b| b + i),
                }));
            }
        }
        Err(e) => {
            debug!(topic, partition, records = done.len(), error = %e, "batch failed");
            for tx in done {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
    shared.completed();
}

/// Produces `records` as one batch to the partition, retrying transient
/// failures with the same producer id and sequences (so the partition drops
/// a copy it already has) until cancelled by the delivery deadline.
async fn deliver(
    shared: &Shared,
    topic: &str,
    partition: u32,
    records: &[OwnedRecord],
    bytes: usize,
) -> Result<ProduceResponse, ProducerError> {
    let client = &shared.client;
    // Held until the batch is done: the partition's next batch (from this
    // producer or from `produce_records` on the same client) gets the
    // following sequences and goes out after it.
    let (stamp, reservation) =
        reserve_sequences(client.producer_session(), topic, partition, records.len()).await;
    let indices: Vec<usize> = (0..records.len()).collect();
    let batch = build_batch(
        records,
        &indices,
        now_ms(),
        stamp,
        shared.config.compression,
    );
    let result = send_until_settled(
        shared,
        topic,
        partition,
        records.len(),
        bytes,
        &batch,
        stamp.is_some(),
    )
    .await;
    // A batch that failed for good leaves a hole in the sequences: the
    // partition's next batch starts a new producer epoch.
    settle(reservation, &result);
    result
}

/// Sends one built batch, retrying as [`deliver`] describes.
async fn send_until_settled(
    shared: &Shared,
    topic: &str,
    partition: u32,
    record_count: usize,
    bytes: usize,
    batch: &Bytes,
    idempotent: bool,
) -> Result<ProduceResponse, ProducerError> {
    let client = &shared.client;
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let sent = client
            .produce(topic, partition, batch.clone(), shared.config.acks)
            .await;
        match sent {
            Ok(resp) => {
                debug!(
                    topic,
                    partition,
                    records = record_count,
                    bytes,
                    batch_bytes = batch.len(),
                    attempts,
                    duplicate = resp.duplicate,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "batch sent"
                );
                return Ok(resp);
            }
            // The client retried a transient failure until its own retry
            // deadline; the delivery timeout may allow more.
            Err(ClientError::RetriesExhausted { ref last, .. })
                if last.is_retriable() && idempotent =>
            {
                debug!(topic, partition, attempts, error = %last, "batch still failing, retrying");
            }
            Err(e) => return Err(e.into()),
        }
    }
}
