//! The HTTP API against a real server on 127.0.0.1: real photos, every kind of bad input the
//! server must survive, the busy queue, the token, CORS, time limits and metrics.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{TestServer, astronaut_jpeg, astronaut_png, blank_png};
use fer_serve::ServeOptions;
use reqwest::StatusCode;
use reqwest::blocking::{Client, multipart};
use serde_json::Value;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs `body` to /v1/analyze`query` with `content_type`; the status and the JSON answer.
fn analyze(
    server: &TestServer,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let response = client()
        .post(server.url(&format!("/v1/analyze{query}")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let status = response.status();
    let text = response.text().unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text:?}"));
    (status, json)
}

/// The answer for the astronaut photo must be one smiling face: proves the server still works.
fn assert_answers_a_photo(server: &TestServer) {
    let (status, json) = analyze(server, "", "image/png", astronaut_png());
    assert_eq!(status, StatusCode::OK, "{json}");
    let faces = json["images"][0]["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1, "{json}");
    assert_eq!(faces[0]["emotion"], "happy", "{json}");
}

fn error_code(json: &Value) -> &str {
    json["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {json}"))
}

/// Sends `head` then `body` (ignoring a connection the server closed early) and reads the
/// answer's status line and body.
fn raw_exchange(server: &TestServer, head: &[u8], body: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head).unwrap();
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_photo_gets_its_faces_boxes_and_probabilities() {
    let server = TestServer::start(ServeOptions::default());
    let (status, json) = analyze(&server, "", "image/png", astronaut_png());
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["model"], format!("builtin:{}", fer::DEFAULT_BUILTIN));
    let image = &json["images"][0];
    assert_eq!(image["file"], "upload");
    assert_eq!(image["error"], Value::Null);
    let face = &image["faces"][0];
    assert_eq!(face["emotion"], "happy");
    assert!(face["score"].as_f64().unwrap() > 0.5, "{face}");
    assert_eq!(face["top"].as_array().unwrap().len(), 3, "top 3 by default");
    let b = &face["box"];
    // The face is in the upper middle of the 512x512 portrait.
    let (x, y, w) = (
        b["x"].as_u64().unwrap(),
        b["y"].as_u64().unwrap(),
        b["width"].as_u64().unwrap(),
    );
    assert!(
        (100..300).contains(&x) && y < 200 && (50..200).contains(&w),
        "{b}"
    );
    assert!(b["detection_score"].as_f64().unwrap() > 3.85, "{b}");
    let sum: f64 = face["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-4, "{sum}");

    // The same photo as JPEG finds the same face.
    let (status, jpeg) = analyze(&server, "?top=1", "image/jpeg", astronaut_jpeg());
    assert_eq!(status, StatusCode::OK, "{jpeg}");
    let jpeg_face = &jpeg["images"][0]["faces"][0];
    assert_eq!(jpeg_face["emotion"], "happy");
    assert_eq!(jpeg_face["top"].as_array().unwrap().len(), 1);
    assert!(
        jpeg_face["box"]["x"].as_i64().unwrap().abs_diff(x as i64) <= 4,
        "{jpeg}"
    );

    // Without detection the whole image is one face, with no detector score.
    let (status, whole) = analyze(&server, "?detect=false&top=7", "image/png", astronaut_png());
    assert_eq!(status, StatusCode::OK, "{whole}");
    let whole_face = &whole["images"][0]["faces"][0];
    assert_eq!(whole_face["box"]["width"], whole_face["box"]["height"]);
    assert!(
        whole_face["box"].get("detection_score").is_none(),
        "{whole}"
    );
    assert_eq!(whole_face["top"].as_array().unwrap().len(), 7);

    // No face in a blank photo is an answer, not an error.
    let (status, blank) = analyze(&server, "", "image/png", blank_png(320, 240));
    assert_eq!(status, StatusCode::OK, "{blank}");
    assert_eq!(blank["images"][0]["faces"].as_array().unwrap().len(), 0);
}

#[test]
fn multipart_batches_several_images_and_reports_each_error() {
    let server = TestServer::start(ServeOptions::default());
    let part = |bytes: Vec<u8>, name: &str, mime: &str| {
        multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(mime)
            .unwrap()
    };
    let form = multipart::Form::new()
        .part("image", part(astronaut_png(), "astronaut.png", "image/png"))
        .text("note", "form fields that are not files are ignored")
        .part(
            "image",
            part(astronaut_jpeg(), "astronaut.jpg", "image/jpeg"),
        )
        .part(
            "image",
            part(b"not an image".to_vec(), "notes.png", "image/png"),
        );
    let response = client()
        .post(server.url("/v1/analyze"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let json: Value = response.json().unwrap();
    let images = json["images"].as_array().unwrap();
    let files: Vec<&str> = images.iter().map(|i| i["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["astronaut.png", "astronaut.jpg", "notes.png"]);
    assert_eq!(images[0]["faces"].as_array().unwrap().len(), 1);
    assert_eq!(images[1]["faces"].as_array().unwrap().len(), 1);
    let error = images[2]["error"].as_str().unwrap();
    assert!(error.starts_with("notes.png: not an image"), "{error}");

    // A face classified in a batch gets the probabilities it gets alone.
    let (_, alone) = analyze(&server, "", "image/png", astronaut_png());
    let batched = &images[0]["faces"][0]["probabilities"];
    let single = &alone["images"][0]["faces"][0]["probabilities"];
    for (emotion, p) in batched.as_object().unwrap() {
        let q = single[emotion].as_f64().unwrap();
        assert!(
            (p.as_f64().unwrap() - q).abs() < 1e-5,
            "{emotion}: {p} vs {q}"
        );
    }
}

#[test]
fn bad_input_gets_a_json_error_and_the_server_keeps_answering() {
    let server = TestServer::start(ServeOptions {
        max_body_bytes: 8 << 20,
        max_faces: 1,
        ..ServeOptions::default()
    });
    let jpeg = astronaut_jpeg();
    let truncated = jpeg[..jpeg.len() / 3].to_vec();
    let two_faces = {
        let face = image::load_from_memory(&astronaut_png()).unwrap().to_rgb8();
        let mut pair = image::RgbImage::new(face.width() * 2, face.height());
        image::imageops::replace(&mut pair, &face, 0, 0);
        image::imageops::replace(&mut pair, &face, i64::from(face.width()), 0);
        let mut out = std::io::Cursor::new(Vec::new());
        pair.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    /// What is sent (description, query, content type, body) and the status and code expected.
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<u8>,
        StatusCode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("an empty body", "", "image/png", vec![], StatusCode::BAD_REQUEST, "bad_request"),
        ("a text file", "", "image/png", b"hello, world\n".to_vec(), StatusCode::BAD_REQUEST, "bad_image"),
        ("a truncated JPEG", "", "image/jpeg", truncated, StatusCode::BAD_REQUEST, "bad_image"),
        ("a 1x1 image", "", "image/png", blank_png(1, 1), StatusCode::UNPROCESSABLE_ENTITY, "image_too_small"),
        (
            "a PNG claiming 60000x60000",
            "",
            "image/png",
            fer_data::synthetic::decompression_bomb_png(60_000),
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
        ),
        ("a wrong content type", "", "text/plain", astronaut_png(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("JSON", "", "application/json", b"{\"image\": 1}".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (
            "a malformed multipart body",
            "",
            "multipart/form-data; boundary=XYZ",
            b"--XYZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\nabc".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        ("multipart without a boundary", "", "multipart/form-data", b"abc".to_vec(), StatusCode::BAD_REQUEST, "bad_request"),
        ("top out of range", "?top=9", "image/png", astronaut_png(), StatusCode::BAD_REQUEST, "bad_request"),
        ("an unknown option", "?detcet=false", "image/png", astronaut_png(), StatusCode::BAD_REQUEST, "bad_request"),
        ("a tiny minimum face", "?min_face=5", "image/png", astronaut_png(), StatusCode::BAD_REQUEST, "bad_request"),
        ("more faces than allowed", "", "image/png", two_faces, StatusCode::UNPROCESSABLE_ENTITY, "too_many_faces"),
    ];
    for (what, query, content_type, body, status, code) in cases {
        let (got, json) = analyze(&server, query, content_type, body);
        assert_eq!((got, error_code(&json)), (status, code), "{what}: {json}");
        assert!(
            !json["error"]["message"].as_str().unwrap().is_empty(),
            "{what}"
        );
        assert_answers_a_photo(&server);
    }

    // A request refused for its query or content type is answered while its client is still
    // sending a large upload (the upload is read and dropped first, not left to reset the
    // connection); three times each, since a reset depends on timing.
    let large = vec![7u8; 7 << 20];
    let refused = [
        (
            "?min_face=5",
            "image/png",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "?detcet=false",
            "image/png",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "",
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for _ in 0..3 {
        for (query, content_type, status, code) in refused {
            let (got, json) = analyze(&server, query, content_type, large.clone());
            assert_eq!(
                (got, error_code(&json)),
                (status, code),
                "{query} {content_type}: {json}"
            );
        }
    }
    assert_answers_a_photo(&server);

    // An oversized upload is refused before it is read: from its Content-Length, or, sent in
    // chunks without one, when the limit is crossed. (Over a raw socket: the server may close
    // the connection while a client is still sending the rest, which HTTP allows.)
    let declared = "POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n\
                    Content-Length: 9437184\r\n\r\n";
    let answer = raw_exchange(&server, declared.as_bytes(), &[]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"too_large""#), "{answer}");
    let chunked = "POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n\
                   Transfer-Encoding: chunked\r\n\r\n";
    let chunk = [
        format!("{:x}\r\n", 1 << 20).into_bytes(),
        vec![0u8; 1 << 20],
        b"\r\n".to_vec(),
    ]
    .concat();
    let answer = raw_exchange(&server, chunked.as_bytes(), &chunk.repeat(9));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"too_large""#), "{answer}");
    assert_answers_a_photo(&server);

    // A wrong method and an unknown route get JSON too.
    let response = client().get(server.url("/v1/analyze")).send().unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&response.json().unwrap()), "method_not_allowed");
    let response = client()
        .get(server.url("/../../etc/passwd"))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(&response.json().unwrap()), "not_found");

    // A client that goes away in the middle of its upload gets nothing, and harms nothing.
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        write!(
            stream,
            "POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 500000\r\n\r\n"
        )
        .unwrap();
        stream.write_all(&astronaut_png()[..20_000]).unwrap();
        drop(stream);
    }
    assert_answers_a_photo(&server);
}

#[test]
fn a_full_queue_is_answered_503_with_retry_after() {
    let server = TestServer::start(ServeOptions {
        workers: 1,
        queue_capacity: 1,
        ..ServeOptions::default()
    });
    let photo = astronaut_png();
    let requests = 12;
    let barrier = std::sync::Barrier::new(requests);
    let answers: Vec<(StatusCode, Option<String>, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..requests)
            .map(|_| {
                scope.spawn(|| {
                    let request = client()
                        .post(server.url("/v1/analyze?detect=false"))
                        .header("content-type", "image/png")
                        .body(photo.clone());
                    barrier.wait();
                    let response = request.send().unwrap();
                    let retry = response
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    (response.status(), retry, response.json().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let ok = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::OK)
        .count();
    assert_eq!(ok + busy.len(), requests, "{answers:?}");
    assert!(
        ok >= 2,
        "the worker and the queue slot are served: {answers:?}"
    );
    assert!(
        !busy.is_empty(),
        "12 at once on 1 worker + 1 queue slot: {answers:?}"
    );
    for (_, retry, json) in &busy {
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(error_code(json), "busy");
    }
    assert_answers_a_photo(&server);
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let line = format!(
        r#"fer_http_errors_total{{route="/v1/analyze",status="503"}} {}"#,
        busy.len()
    );
    assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    assert!(metrics.contains("fer_inference_queue_depth 0"), "{metrics}");
}

#[test]
fn a_token_guards_the_api_and_the_metrics_but_not_the_page() {
    let server = TestServer::start(ServeOptions {
        token: Some("correct-horse".into()),
        ..ServeOptions::default()
    });
    let get = |path: &str, token: Option<&str>| {
        let mut request = client().get(server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap()
    };
    for path in ["/v1/models", "/metrics"] {
        let response = get(path, None);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(error_code(&response.json().unwrap()), "unauthorized");
        assert_eq!(
            get(path, Some("wrong-horse")).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(path, Some("correct-horse")).status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let (status, json) = analyze(&server, "", "image/png", astronaut_png());
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    // A large upload without the token still gets its 401, not a reset while it is sending:
    // the server reads the refused body (up to its body limit) before it answers.
    for _ in 0..3 {
        let (status, json) = analyze(&server, "", "image/png", vec![7; 8 << 20]);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
        assert_eq!(error_code(&json), "unauthorized");
    }
    let response = client()
        .post(server.url("/v1/analyze"))
        .bearer_auth("correct-horse")
        .header("content-type", "image/png")
        .body(astronaut_png())
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(get("/", None).status(), StatusCode::OK);
    assert_eq!(get("/healthz", None).status(), StatusCode::OK);
}

#[test]
fn cross_origin_calls_are_refused_unless_an_origin_is_given() {
    let preflight = |server: &TestServer| {
        client()
            .request(reqwest::Method::OPTIONS, server.url("/v1/analyze"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .unwrap()
    };
    let closed = TestServer::start(ServeOptions::default());
    let response = preflight(&closed);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let open = TestServer::start(ServeOptions {
        cors_origin: Some("https://app.example".into()),
        ..ServeOptions::default()
    });
    let response = preflight(&open);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let response = client()
        .get(open.url("/v1/models"))
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    // Only the configured origin is ever named: a browser on another origin is refused.
    let allowed = response.headers().get("access-control-allow-origin");
    assert!(
        allowed.is_none_or(|origin| origin == "https://app.example"),
        "{allowed:?}"
    );
}

#[test]
fn a_stalled_upload_is_cut_off_at_the_time_limit() {
    let server = TestServer::start(ServeOptions {
        request_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    });
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    write!(
        stream,
        "POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    )
    .unwrap();
    stream.write_all(&astronaut_png()[..1000]).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buffer[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"timeout""#), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert_answers_a_photo(&server);
}

#[test]
fn models_health_metrics_and_the_page_answer() {
    let server = TestServer::start(ServeOptions::default());
    let models: Value = client()
        .get(server.url("/v1/models"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        models["serving"],
        format!("builtin:{}", fer::DEFAULT_BUILTIN)
    );
    assert_eq!(models["models"], fer::json::builtin_models().unwrap());
    let health: Value = client()
        .get(server.url("/healthz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok");

    assert_answers_a_photo(&server);
    assert_answers_a_photo(&server);
    let response = client().get(server.url("/metrics")).send().unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("text")
    );
    let metrics = response.text().unwrap();
    for line in [
        r#"fer_http_requests_total{route="/v1/analyze",status="200"} 2"#,
        r#"fer_http_requests_total{route="/v1/models",status="200"} 1"#,
        r#"fer_http_request_duration_seconds_count{route="/v1/analyze"} 2"#,
        "fer_images_total 2",
        "fer_faces_total 2",
        "fer_inference_duration_seconds_count 2",
        "fer_inference_queue_depth 0",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }

    let response = client().get(server.url("/")).send().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("script-src 'sha256-") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    let html = response.text().unwrap();
    assert_eq!(html, fer_serve::page::PAGE_HTML);
    assert!(html.contains("id=\"camera-button\""));
}
