//! The web page in a real headless Chromium (driven through chromedriver): a photo uploaded
//! and its result read from the DOM, a bad file's error shown, and the live camera view fed
//! by Chromium's fake capture device playing a face video made from a test photo.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! tests say so on stderr and pass, except under CI (`CI` set), where they fail.

mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, astronaut_png};
use fantoccini::{Client, ClientBuilder, Locator};
use fer_serve::ServeOptions;
use serde_json::{Value, json};

/// Chromium and chromedriver, or why the tests cannot run.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|path| path.is_file())
            })
        })
    };
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["chromedriver"]);
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            let message = "BROWSER TESTS NOT RUN: chromium and chromedriver are not on PATH \
                           (Debian: apt-get install chromium chromium-driver; .ci/run does it)";
            assert!(std::env::var_os("CI").is_none(), "{message}");
            // Straight to stderr: the test harness would swallow eprintln! of a passing test.
            let _ = writeln!(std::io::stderr(), "\n*** {message} ***\n");
            None
        }
    }
}

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(binary: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }

    async fn connect(&self, chromium: &Path, extra_args: &[String]) -> Client {
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1200,900".into(),
        ];
        args.extend_from_slice(extra_args);
        let capabilities = json!({
            "goog:chromeOptions": {"binary": chromium, "args": args}
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("cannot open a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Evaluates `expression` in the page until it is truthy (returning its value) or `timeout`.
async fn wait_for(client: &Client, expression: &str, timeout: Duration) -> Value {
    let started = Instant::now();
    loop {
        let value = client
            .execute(&format!("return {expression};"), vec![])
            .await
            .unwrap();
        let truthy = match &value {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return value;
        }
        if started.elapsed() > timeout {
            let state = client
                .execute(
                    "return [document.body.dataset.state, document.getElementById('error').textContent, document.getElementById('status').textContent];",
                    vec![],
                )
                .await
                .unwrap();
            panic!("`{expression}` still false after {timeout:?}; page state {state}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves a screenshot as `DIR/name.png` when `FER_SCREENSHOTS=DIR` is set (to look at the page).
async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("FER_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

async fn text(client: &Client, selector: &str) -> String {
    client
        .find(Locator::Css(selector))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_uploaded_in_the_page_shows_its_face_and_bars() {
    let Some((chromium, driver)) = browser_binaries() else {
        return;
    };
    let server = TestServer::start(ServeOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("astronaut.png");
    std::fs::write(&photo, astronaut_png()).unwrap();
    let not_an_image = dir.path().join("notes.png");
    std::fs::write(&not_an_image, "these are notes, not pixels").unwrap();

    let driver = Driver::start(&driver);
    let client = driver.connect(&chromium, &[]).await;
    client.goto(&server.url("/")).await.unwrap();
    let model = wait_for(
        &client,
        "document.getElementById('model-name').textContent.includes('builtin:')",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(model, true);
    assert_eq!(
        text(&client, "#model-name").await,
        format!("builtin:{}", fer::DEFAULT_BUILTIN)
    );

    let input = client.find(Locator::Css("#file-input")).await.unwrap();
    input.send_keys(photo.to_str().unwrap()).await.unwrap();
    wait_for(
        &client,
        "document.body.dataset.state === 'done'",
        Duration::from_secs(60),
    )
    .await;
    let result = client
        .execute(
            "const faces = [...document.querySelectorAll('#result .face')];
             return {
               count: document.getElementById('result').dataset.faces,
               emotions: faces.map(f => f.dataset.emotion),
               bars: faces.map(f => f.querySelectorAll('.bar').length),
               top: faces.map(f => f.querySelector('.bar.top').dataset.emotion),
               probability: faces.map(f => Number(f.querySelector('.bar.top').dataset.probability)),
               heading: faces.map(f => f.querySelector('h3').textContent),
               overlay: document.getElementById('photo-overlay').width,
               error: document.getElementById('error').textContent,
             };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(result["count"], "1", "{result}");
    assert_eq!(result["emotions"], json!(["happy"]), "{result}");
    assert_eq!(result["bars"], json!([7]), "{result}");
    assert_eq!(result["top"], json!(["happy"]), "{result}");
    assert!(result["probability"][0].as_f64().unwrap() > 0.5, "{result}");
    assert!(
        result["heading"][0].as_str().unwrap().contains("Happy"),
        "{result}"
    );
    assert!(result["overlay"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(result["error"], "", "{result}");
    screenshot(&client, "photo").await;

    // The server's error for a file that is not an image is shown, not swallowed.
    let input = client.find(Locator::Css("#file-input")).await.unwrap();
    input
        .send_keys(not_an_image.to_str().unwrap())
        .await
        .unwrap();
    wait_for(
        &client,
        "document.body.dataset.state === 'error'",
        Duration::from_secs(30),
    )
    .await;
    let error = text(&client, "#error").await;
    assert!(error.contains("not an image"), "{error}");
    client.close().await.unwrap();
}

/// A Y4M video (4:2:0) of `frames` frames, 320x240 at 30 frames/s: the photo centred on grey,
/// shifted by a few pixels from frame to frame as a face moves.
fn face_video(photo: &image::GrayImage, frames: u32) -> Vec<u8> {
    let (width, height) = (320u32, 240u32);
    let mut video = format!("YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for frame in 0..frames {
        let shift = (frame % 5) * 2;
        let mut luma = image::GrayImage::from_pixel(width, height, image::Luma([128]));
        let x = i64::from((width - photo.width()) / 2 + shift);
        let y = i64::from((height - photo.height()) / 2);
        image::imageops::replace(&mut luma, photo, x, y);
        video.extend_from_slice(b"FRAME\n");
        video.extend_from_slice(luma.as_raw());
        // Grey chroma: both planes at 128, a quarter of the pixels each.
        video.extend(std::iter::repeat_n(128u8, (width * height / 2) as usize));
    }
    video
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_camera_view_labels_a_face_in_live_video() {
    let Some((chromium, driver)) = browser_binaries() else {
        return;
    };
    let server = TestServer::start(ServeOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let photo = image::load_from_memory(&astronaut_png())
        .unwrap()
        .to_luma8();
    let photo = image::imageops::resize(&photo, 200, 200, image::imageops::FilterType::Triangle);
    let video_path = dir.path().join("face.y4m");
    std::fs::File::create(&video_path)
        .unwrap()
        .write_all(&face_video(&photo, 10))
        .unwrap();

    let driver = Driver::start(&driver);
    let client = driver
        .connect(
            &chromium,
            &[
                "--use-fake-device-for-media-stream".into(),
                "--use-fake-ui-for-media-stream".into(),
                format!("--use-file-for-fake-video-capture={}", video_path.display()),
            ],
        )
        .await;
    client.goto(&server.url("/")).await.unwrap();
    let button = client.find(Locator::Css("#camera-button")).await.unwrap();
    button.click().await.unwrap();
    let updates = 5;
    wait_for(
        &client,
        &format!("Number(document.getElementById('camera-overlay').dataset.updates) >= {updates}"),
        Duration::from_secs(90),
    )
    .await;
    let overlay = client
        .execute(
            "const o = document.getElementById('camera-overlay');
             return {updates: Number(o.dataset.updates), faces: o.dataset.faces,
                     emotions: o.dataset.emotions,
                     fps: document.getElementById('fps').textContent,
                     pressed: document.getElementById('camera-button').getAttribute('aria-pressed'),
                     error: document.getElementById('error').textContent};",
            vec![],
        )
        .await
        .unwrap();
    assert!(overlay["updates"].as_u64().unwrap() >= updates, "{overlay}");
    assert_eq!(overlay["faces"], "1", "{overlay}");
    assert_eq!(overlay["emotions"], "happy", "{overlay}");
    assert!(
        overlay["fps"].as_str().unwrap().ends_with("frames/s"),
        "{overlay}"
    );
    assert_eq!(overlay["pressed"], "true", "{overlay}");
    assert_eq!(overlay["error"], "", "{overlay}");
    screenshot(&client, "camera").await;

    // The overlay keeps updating while the camera runs, and stops when it is stopped.
    let before = overlay["updates"].as_u64().unwrap();
    wait_for(
        &client,
        &format!(
            "Number(document.getElementById('camera-overlay').dataset.updates) >= {}",
            before + 3
        ),
        Duration::from_secs(60),
    )
    .await;
    // FER_CAMERA_SECONDS=N keeps the camera running N seconds more and prints the page's
    // frames/s (the end-to-end rate: capture, JPEG encoding, upload, analysis, drawing).
    if let Some(seconds) = std::env::var("FER_CAMERA_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        let first = client
            .execute(
                "return Number(document.getElementById('camera-overlay').dataset.updates);",
                vec![],
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let last = client
            .execute(
                "return [Number(document.getElementById('camera-overlay').dataset.updates), document.getElementById('fps').textContent];",
                vec![],
            )
            .await
            .unwrap();
        let frames = last[0].as_f64().unwrap() - first.as_f64().unwrap();
        let _ = writeln!(
            std::io::stderr(),
            "camera 320x240: {frames} overlay updates in {seconds} s = {:.1} frames/s (the page shows {})",
            frames / seconds as f64,
            last[1]
        );
    }
    button.click().await.unwrap();
    wait_for(
        &client,
        "document.getElementById('camera-button').getAttribute('aria-pressed') === 'false'",
        Duration::from_secs(10),
    )
    .await;
    client.close().await.unwrap();
}
