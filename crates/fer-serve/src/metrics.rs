//! [`Metrics`]: what `GET /metrics` reports in Prometheus' text format: requests, errors and
//! latency per route, images and faces analysed, inference time and the queue's depth.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The routes metrics are kept for; any other path counts as `other`, so that scanners
/// cannot create unbounded label values.
const ROUTES: [&str; 5] = ["/", "/v1/analyze", "/v1/models", "/healthz", "/metrics"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The server's counters; cheap to share (every metric is an `Arc` inside).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    /// Images decoded and analysed.
    pub images: Counter,
    /// Faces classified.
    pub faces: Counter,
    /// Seconds a worker spent on one request (decode, detect, classify).
    pub inference_seconds: Histogram,
    /// Requests waiting for a worker.
    pub queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<RequestLabels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        let images = Counter::default();
        let faces = Counter::default();
        let inference_seconds = latency_histogram();
        let queue_depth = Gauge::default();
        let mut registry = Registry::with_prefix("fer");
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_errors",
            "HTTP requests answered with a 4xx or 5xx status, by route and status",
            errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route",
            latency.clone(),
        );
        registry.register("images", "Images analysed", images.clone());
        registry.register("faces", "Faces classified", faces.clone());
        registry.register(
            "inference_duration_seconds",
            "Time a worker spent on one request: decoding, detection, classification",
            inference_seconds.clone(),
        );
        registry.register(
            "inference_queue_depth",
            "Requests waiting for an inference worker",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            requests,
            errors,
            latency,
            images,
            faces,
            inference_seconds,
            queue_depth,
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, path: &str, status: u16, seconds: f64) {
        let route = ROUTES
            .iter()
            .find(|r| **r == path)
            .map_or("other", |r| r)
            .to_string();
        let labels = RequestLabels {
            route: route.clone(),
            status: status.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        if status >= 400 {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// Everything in the text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Middleware: records every request's route, status and latency.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    metrics.record(
        &path,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_errors_and_unknown_routes_are_counted() {
        let metrics = Metrics::default();
        metrics.record("/v1/analyze", 200, 0.05);
        metrics.record("/v1/analyze", 400, 0.001);
        metrics.record("/wp-admin.php", 404, 0.001);
        metrics.faces.inc_by(3);
        let text = metrics.encode();
        assert!(
            text.contains(r#"fer_http_requests_total{route="/v1/analyze",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fer_http_errors_total{route="/v1/analyze",status="400"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"fer_http_requests_total{route="other",status="404"} 1"#),
            "{text}"
        );
        assert!(!text.contains("wp-admin"), "{text}");
        assert!(text.contains("fer_faces_total 3"), "{text}");
        assert!(
            text.contains(r#"fer_http_request_duration_seconds_count{route="/v1/analyze"} 2"#),
            "{text}"
        );
        assert!(text.contains("fer_inference_queue_depth 0"), "{text}");
    }
}
