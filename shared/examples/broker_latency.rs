//! The broker's own produce → consume latency, as a baseline for end-to-end latency figures:
//! one message at a time (acks=all, the pipeline's producer and consumer settings), timed from
//! send until a group consumer receives it.
//!
//! ```text
//! cargo run --release -p shared --example broker_latency -- <brokers> [messages]
//! ```
//! Last lines: `broker_hop_p50_ms=<x>` and `broker_hop_p99_ms=<y>`.

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared::config::{ConsumerArgs, KafkaArgs};
use shared::kafka::{consumer_config, ensure_topics, producer_config, TopicSpec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: broker_latency <brokers> [messages]"))?;
    let messages: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);
    let topic = format!("broker-latency-{}", std::process::id());
    let kafka = KafkaArgs {
        brokers,
        topic_prefix: "cdc".into(),
        properties: Vec::new(),
    };
    ensure_topics(
        &kafka,
        &[TopicSpec {
            name: topic.clone(),
            partitions: 1,
            configs: Vec::new(),
        }],
    )
    .await?;
    let consumer_args = ConsumerArgs {
        max_poll_interval: Duration::from_secs(7),
        session_timeout: Duration::from_secs(6),
        fetch_wait_max: Duration::from_millis(20),
        publish_timeout: Duration::from_secs(30),
        max_in_flight: None,
        shutdown_timeout: Duration::from_secs(30),
    };
    let consumer: StreamConsumer =
        consumer_config(&kafka, &consumer_args, &topic, "broker-latency").create()?;
    consumer.subscribe(&[&topic])?;
    let producer: FutureProducer = producer_config(&kafka, "broker-latency").create()?;
    let send = |i: usize| {
        let payload = i.to_string();
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key("k").payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
        }
    };
    // The first message also waits for the group join; it is not counted.
    send(0).await?;
    tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
    let mut hops = Vec::with_capacity(messages);
    for i in 1..=messages {
        let started = Instant::now();
        send(i).await?;
        tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
        hops.push(started.elapsed().as_secs_f64() * 1000.0);
        if i % 50 == 0 {
            eprintln!("broker latency: {i} / {messages}");
        }
        // Spread sends out so each one meets an idle consumer, as steady traffic does.
        tokio::time::sleep(Duration::from_millis(13)).await;
    }
    hops.sort_by(f64::total_cmp);
    let at = |q: f64| hops[((hops.len() - 1) as f64 * q).round() as usize];
    println!("broker_hop_p50_ms={:.1}", at(0.5));
    println!("broker_hop_p99_ms={:.1}", at(0.99));
    Ok(())
}
