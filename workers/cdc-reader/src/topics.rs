//! Where each captured table's changes go: its topic, partition count and metric handles
//! (resolved once, so the hot path does no label lookups).

use prometheus::IntCounter;
use shared::config::KafkaArgs;
use shared::envelope::Op;
use shared::kafka::TopicSpec;

use crate::config::TableName;
use crate::metrics::Metrics;

/// One captured table.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its position among the routes (0-based).
    pub index: usize,
    /// The table.
    pub table: TableName,
    /// `schema.table`.
    pub label: String,
    /// Its topic, `<prefix>.<schema>.<table>`.
    pub topic: String,
    /// Partitions of the topic (a truncate is sent to each).
    pub partitions: i32,
    /// `cdc_events_total{table, op}` for c, u, d, r, t.
    events: [IntCounter; 5],
    /// `cdc_produced_bytes_total{table}`.
    pub bytes: IntCounter,
}

impl Route {
    /// The events counter of an op.
    pub fn events(&self, op: Op) -> &IntCounter {
        &self.events[match op {
            Op::Create => 0,
            Op::Update => 1,
            Op::Delete => 2,
            Op::Read => 3,
            Op::Truncate => 4,
        }]
    }
}

/// The routes of all captured tables.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Routes for `tables`, with one partition each until [`Routes::set_partitions`].
    pub fn new(tables: &[TableName], kafka: &KafkaArgs, metrics: &Metrics) -> Self {
        let routes = tables
            .iter()
            .enumerate()
            .map(|(index, t)| {
                let label = t.to_string();
                let events =
                    [Op::Create, Op::Update, Op::Delete, Op::Read, Op::Truncate].map(|op| {
                        metrics
                            .events
                            .with_label_values(&[label.as_str(), op.as_str()])
                    });
                Route {
                    index,
                    table: t.clone(),
                    label: label.clone(),
                    topic: kafka.cdc_topic(&t.schema, &t.table),
                    partitions: 1,
                    events,
                    bytes: metrics.produced_bytes.with_label_values(&[label.as_str()]),
                }
            })
            .collect();
        Self { routes }
    }

    /// The topics to create.
    pub fn topic_specs(&self, partitions: i32) -> Vec<TopicSpec> {
        self.routes
            .iter()
            .map(|r| TopicSpec {
                name: r.topic.clone(),
                partitions,
                configs: Vec::new(),
            })
            .collect()
    }

    /// Records the partition count of each topic.
    pub fn set_partitions(&mut self, topic: &str, partitions: i32) {
        if let Some(route) = self.routes.iter_mut().find(|r| r.topic == topic) {
            route.partitions = partitions;
        }
    }

    /// The route of `schema.table`, if captured.
    pub fn get(&self, schema: &str, table: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.table.schema == schema && r.table.table == table)
    }

    /// How many tables are captured.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// No table is captured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// All routes.
    pub fn iter(&self) -> std::slice::Iter<'_, Route> {
        self.routes.iter()
    }
}
