//! Progress bars on stderr, drawn only on a terminal so that piped output stays parseable.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `total` items called `what` on stderr when it is a terminal (hidden
/// otherwise, with `-q`, or for fewer than two items).
pub fn progress_bar(total: usize, quiet: bool, what: &str) -> ProgressBar {
    if quiet || total < 2 || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "[{{bar:30}}] {{pos}}/{{len}} {what} ({{per_sec}}, ETA {{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The bar of one training epoch: `total` batches, the running loss as its message.
pub fn epoch_bar(epoch: usize, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix:>3} [{bar:30}] {pos}/{len} batches, loss {msg} ({per_sec}, ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(epoch.to_string());
    bar
}
