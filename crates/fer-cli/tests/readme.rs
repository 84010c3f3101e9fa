//! README.md's example outputs are what `fer` prints today: `fer predict` on the astronaut
//! photo, and `fer serve`'s JSON for it (the JSON of `fer predict --json`, which
//! tests/serve.rs checks the server against), so that a new built-in model cannot leave them
//! stale. Numbers are compared within what the kernels' rounding may move (AVX-512, AVX2 and
//! the portable loops differ in the last bits).

mod common;

use std::path::PathBuf;

use common::{assert_ok, fer_in, text};
use serde_json::Value;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The line of README.md right after the line `command`, inside an example block.
fn readme_output(command: &str) -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|line| *line == command)
        .unwrap_or_else(|| panic!("README.md has no line {command:?}"));
    lines.next().expect("an output line").to_string()
}

/// `fer predict` run from the workspace root (the README's paths are relative to it).
fn predict_in_workspace(args: &[&str]) -> String {
    let mut all = vec!["predict"];
    all.extend_from_slice(args);
    let out = fer_in(&workspace(), &all);
    assert_ok(&out);
    text(&out.stdout)
}

/// "file: Happy 88.0%, Neutral 3.8%, ..." as (file, [(emotion, percent)]).
fn parse_text_line(line: &str) -> (String, Vec<(String, f64)>) {
    let (file, rest) = line.rsplit_once(": ").expect("file: emotions");
    let emotions = rest
        .split(", ")
        .map(|item| {
            let (emotion, percent) = item.rsplit_once(' ').expect("emotion percent");
            let percent = percent.trim_end_matches('%').parse().expect("a percentage");
            (emotion.to_string(), percent)
        })
        .collect();
    (file.to_string(), emotions)
}

#[test]
fn the_readme_predict_example_is_what_fer_predict_prints() {
    let photo = "crates/fer-detect/tests/data/astronaut.png";
    let shown = readme_output(&format!("$ fer predict {photo}"));
    let printed = predict_in_workspace(&[photo]);
    let (shown_file, shown) = parse_text_line(&shown);
    let (printed_file, printed) = parse_text_line(printed.trim_end());
    assert_eq!(shown_file, printed_file);
    assert_eq!(shown.len(), printed.len(), "{shown:?} against {printed:?}");
    for ((a, p), (b, q)) in shown.iter().zip(&printed) {
        assert!(
            a == b && (p - q).abs() <= 0.1,
            "README shows {shown:?}, fer prints {printed:?}"
        );
    }
}

/// Same structure, same strings, integers equal, floats within `tolerance`.
fn assert_close(shown: &Value, printed: &Value, path: &str, tolerance: f64) {
    match (shown, printed) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= tolerance, "{path}: README {a}, fer {b}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_close(x, y, &format!("{path}[{i}]"), tolerance);
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(b), "{path}: keys");
            for (key, x) in a {
                assert_close(x, &b[key], &format!("{path}.{key}"), tolerance);
            }
        }
        _ => assert_eq!(shown, printed, "{path}"),
    }
}

#[test]
fn the_readme_serve_example_is_what_the_server_answers() {
    let photo = "crates/fer-detect/tests/data/astronaut.png";
    let shown = readme_output(&format!(
        "$ curl -s -H 'Content-Type: image/png' --data-binary @{photo} 'localhost:8080/v1/analyze?top=2'"
    ));
    let mut shown: Value = serde_json::from_str(&shown).expect("README's answer is JSON");
    // A raw body is named `upload` by the server, the file by `fer predict`.
    assert_eq!(shown["images"][0]["file"], "upload");
    shown["images"][0]["file"] = Value::from(photo);
    let printed: Value =
        serde_json::from_str(&predict_in_workspace(&["--json", "--top", "2", photo])).unwrap();
    assert_close(&shown, &printed, "", 1e-4);
}

/// The comparison can fail: another probability or another emotion is caught.
#[test]
fn a_stale_example_is_caught() {
    let shown: Value = serde_json::json!({"emotion": "happy", "score": 0.8418});
    let printed: Value = serde_json::json!({"emotion": "happy", "score": 0.8804});
    assert!(std::panic::catch_unwind(|| assert_close(&shown, &printed, "", 1e-4)).is_err());
    let printed: Value = serde_json::json!({"emotion": "sad", "score": 0.8418});
    assert!(std::panic::catch_unwind(|| assert_close(&shown, &printed, "", 1e-4)).is_err());
    assert_close(&shown, &shown, "", 1e-4);
    let (_, old) = parse_text_line("a.png: Happy 84.2%, Neutral 4.3%");
    assert_eq!(old, [("Happy".into(), 84.2), ("Neutral".into(), 4.3)]);
}

/// Every flag README.md's synopsis of the `fer` command names is one `fer CMD --help` lists
/// (the synopsis may leave flags out, but never names one that is gone or renamed).
#[test]
fn every_flag_of_the_readme_synopsis_exists() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let section = readme
        .split("## The `fer` command")
        .nth(1)
        .expect("README.md has the `fer` command's section");
    let synopsis: Vec<&str> = section
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("fer "))
        .take_while(|line| !line.trim().is_empty())
        .collect();
    let flags = |text: &str| -> Vec<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|word| {
                word.starts_with("--") && word[2..].starts_with(|c: char| c.is_ascii_lowercase())
            })
            .map(str::to_string)
            .collect()
    };
    let mut command = String::new();
    let mut checked = 0;
    for line in synopsis {
        let line = line.split('#').next().unwrap_or("");
        if let Some(rest) = line.trim_start().strip_prefix("fer ") {
            command = rest.split_whitespace().next().unwrap().to_string();
        }
        let help = common::fer(&[command.as_str(), "--help"]);
        assert_ok(&help);
        let listed = flags(&text(&help.stdout));
        for flag in flags(line) {
            assert!(
                listed.contains(&flag),
                "README.md's synopsis gives `fer {command}` the flag {flag}, which its --help does not list"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} flags found in the synopsis");
}
