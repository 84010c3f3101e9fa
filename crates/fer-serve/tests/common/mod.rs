//! A server on 127.0.0.1 port 0 in its own runtime thread, and the test images.

#![allow(dead_code)] // each test file uses part of this module

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use fer::Recognizer;
use fer_serve::{ServeOptions, Server};
use tokio::sync::oneshot;

/// The built-in recognizer, opened once for all the tests of a file.
pub fn recognizer() -> Arc<Recognizer> {
    static RECOGNIZER: OnceLock<Arc<Recognizer>> = OnceLock::new();
    Arc::clone(RECOGNIZER.get_or_init(|| Arc::new(Recognizer::builtin().unwrap())))
}

/// A running server; dropping it shuts the server down.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(options: ServeOptions) -> Self {
        let server = Server::new(recognizer(), options).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound, addr) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                bound.send(listener.local_addr().unwrap()).unwrap();
                server
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        TestServer {
            addr: addr.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The astronaut portrait (one face, smiling), a real photo kept for the detector's tests.
pub fn astronaut_png() -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fer-detect/tests/data/astronaut.png");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The astronaut portrait as a JPEG.
pub fn astronaut_jpeg() -> Vec<u8> {
    let image = image::load_from_memory(&astronaut_png()).unwrap().to_rgb8();
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A PNG of `width` x `height` grey pixels.
pub fn blank_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::GrayImage::new(width, height);
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
