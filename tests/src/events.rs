//! Result events read back as a consumer would: a fresh EventBridge bus in moto, a rule on the
//! product's source, and an SQS queue as its target. Moto delivers to the queue while it
//! answers `PutEvents`, so what a test drains after an operation is everything it put.

use serde_json::Value;

/// A bus with a rule delivering every product event to a queue.
#[derive(Debug, Clone)]
pub struct ResultQueue {
    pub bus_name: String,
    pub queue_url: String,
    endpoint: String,
    sqs: aws_sdk_sqs::Client,
}

async fn shared(endpoint: &str) -> aws_types::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

impl ResultQueue {
    /// Creates the bus, the queue, the rule (source `orkv.key-vending`) and its target, in
    /// the moto (or proxy) at `endpoint`.
    ///
    /// # Panics
    /// When moto refuses any of it.
    pub async fn create(endpoint: &str) -> Self {
        let conf = shared(endpoint).await;
        let eb = aws_sdk_eventbridge::Client::new(&conf);
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let bus_name = crate::unique("orkv-results");
        eb.create_event_bus()
            .name(&bus_name)
            .send()
            .await
            .expect("bus");
        let queue_url = sqs
            .create_queue()
            .queue_name(&bus_name)
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("queue url");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("attributes")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue arn");
        eb.put_rule()
            .name("results")
            .event_bus_name(&bus_name)
            .event_pattern(r#"{"source":["orkv.key-vending"]}"#)
            .send()
            .await
            .expect("rule");
        eb.put_targets()
            .rule("results")
            .event_bus_name(&bus_name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("target");
        Self {
            bus_name,
            queue_url,
            endpoint: endpoint.to_owned(),
            sqs,
        }
    }

    /// The functions' bus, as `Deps::with_events` takes it, through the endpoint at `via`
    /// (the counting proxy, so `PutEvents` is counted).
    pub async fn bus_via(&self, via: &str) -> orkv_events::EventBus {
        orkv_events::EventBus::from_shared_config(
            &shared(via).await,
            &self.bus_name,
            "orkv.key-vending",
        )
    }

    /// The functions' bus through the endpoint the queue was created at.
    pub async fn bus(&self) -> orkv_events::EventBus {
        self.bus_via(&self.endpoint.clone()).await
    }

    /// Every event delivered since the last drain (each an EventBridge event as JSON), in
    /// delivery order; the queue is left empty.
    ///
    /// # Panics
    /// When SQS refuses, or a message is not an event.
    pub async fn drain(&self) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return events;
            }
            for m in messages {
                let body = m.body.as_deref().expect("body");
                events.push(serde_json::from_str(body).expect("an event"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle.expect("handle"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// Drains, and asserts exactly one event was delivered: its `(detail-type, detail)`.
    ///
    /// # Panics
    /// When not exactly one event arrived.
    pub async fn one(&self) -> (String, Value) {
        let events = self.drain().await;
        assert_eq!(events.len(), 1, "exactly one event: {events:#?}");
        let e = &events[0];
        (
            e["detail-type"].as_str().expect("detail-type").to_owned(),
            e["detail"].clone(),
        )
    }
}
