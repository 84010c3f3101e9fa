//! `fer serve` as a process: it answers what `fer predict --json` prints for the same photo,
//! and on SIGTERM stops accepting connections but finishes the request in flight.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fer, text};
use serde_json::Value;

fn astronaut() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fer-detect/tests/data/astronaut.png")
}

#[cfg(unix)]
#[test]
fn serve_answers_like_predict_and_finishes_the_request_in_flight_on_sigterm() {
    let mut server = Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = log
            .next()
            .expect("fer serve exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    let log = std::thread::spawn(move || log.map_while(Result::ok).collect::<Vec<_>>());

    // Half an upload, then SIGTERM, then the rest: the answer still comes.
    let photo = std::fs::read(astronaut()).unwrap();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "POST /v1/analyze HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        photo.len()
    )
    .unwrap();
    let half = photo.len() / 2;
    stream.write_all(&photo[..half]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // New connections are refused once shutdown has begun.
    let started = Instant::now();
    while TcpStream::connect(&addr).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still accepting connections after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    stream.write_all(&photo[half..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let served: Value = serde_json::from_str(body).unwrap();

    let exit = server.wait().unwrap();
    assert!(exit.success(), "fer serve exited with {exit}");
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("shutting down"), "{log}");

    // The same photo through `fer predict --json`: the same faces, to the last digit.
    let output = fer(&["predict", "--json", "-q", astronaut().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let predicted: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(served["model"], predicted["model"]);
    assert_eq!(
        served["images"][0]["faces"],
        predicted["images"][0]["faces"]
    );
    assert_eq!(served["images"][0]["faces"].as_array().unwrap().len(), 1);
}
