//! `fer serve`: the HTTP API and the web page (`fer-serve`), with its limits as flags.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fer_serve::{ServeOptions, Server};

use crate::shared::recognizer::RecognizerArgs;

/// Serve emotions over HTTP and in a web page: POST /v1/analyze (an image as the body, or
/// several as multipart form-data) answers the JSON of `fer predict --json`; GET / is a page
/// for photos and a live camera view; GET /v1/models, /healthz, /metrics (Prometheus).
///
/// Listens on loopback unless told otherwise. Uploaded images are analysed in memory and
/// never written to disk. Ctrl-C or SIGTERM stops accepting connections and lets the
/// requests in flight finish.
///
/// Example: fer serve --addr 127.0.0.1:8080
///
/// Example: curl -H 'Content-Type: image/jpeg' --data-binary @photo.jpg localhost:8080/v1/analyze
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one). Other machines can reach
    /// the server only on a non-loopback address such as 0.0.0.0:8080; set --token then.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub recognizer: RecognizerArgs,
    /// Require `Authorization: Bearer TOKEN` on /v1/* and /metrics (at least 8 characters).
    #[arg(long, env = "FER_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Let web pages on this origin call the API (CORS), e.g. <https://example.org>; off by
    /// default.
    #[arg(long, value_name = "ORIGIN")]
    pub cors_origin: Option<String>,
    /// Largest request body, in MiB (all images of a request together).
    #[arg(long, default_value_t = 20, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..=2048))]
    pub max_body_mb: u64,
    /// Largest image, in megapixels (checked before decoding: decompression bombs are refused).
    #[arg(long, default_value_t = 40, value_name = "MP", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_megapixels: u64,
    /// Most images in one multipart request.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_images: u32,
    /// Most faces in one image.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_faces: u32,
    /// Time limit for a request (upload, queue, inference), in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Inference threads (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: Option<u32>,
    /// Requests that may wait for an inference thread; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue: u32,
}

impl ServeArgs {
    fn options(&self) -> ServeOptions {
        let defaults = ServeOptions::default();
        ServeOptions {
            max_body_bytes: (self.max_body_mb << 20) as usize,
            max_image_pixels: self.max_megapixels * 1_000_000,
            max_images: self.max_images as usize,
            max_faces: self.max_faces as usize,
            request_timeout: Duration::from_secs(self.timeout),
            workers: self.workers.map_or(defaults.workers, |w| w as usize),
            queue_capacity: self.queue as usize,
            token: self.token.clone(),
            cors_origin: self.cors_origin.clone(),
            ..defaults
        }
    }
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let recognizer = Arc::new(args.recognizer.open()?);
    let server = Server::new(recognizer, args.options())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let local = listener.local_addr()?;
        // Tests and scripts read this line to learn the port.
        eprintln!(
            "fer serve: listening on http://{local}/ (model {})",
            args.recognizer.model
        );
        if !local.ip().is_loopback() && args.token.is_none() {
            tracing::warn!(
                "listening on {local} without --token: anyone who can reach it can use it"
            );
        }
        server
            .serve(listener, fer_serve::shutdown_signal())
            .await
            .context("the server stopped with an error")
    })
}
