//! The self-contained HTML report: one file, figures inlined as SVG, a small embedded
//! stylesheet, no script. Every piece of text from a file or a path goes through [`escape`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use fer_data::Emotion;
use fer_model::EpochRecord;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::evaluation::EvalReport;
use crate::plot::{
    ConfusionChart, CurvesChart, DistributionChart, PerClassChart, Plot, SampleGrid, thousands,
};
use crate::run::Run;
use crate::summary::DataSummary;

pub use crate::escape::escape;

/// The data shown once for the whole report (from `--data`).
pub struct DataSection {
    /// Where the data came from (a path), shown as text.
    pub source: String,
    pub summary: DataSummary,
    pub samples: Option<SampleGrid>,
}

/// A report of one or more runs, with an optional data section.
pub struct Report<'a> {
    pub title: String,
    pub runs: &'a [Run],
    pub data: Option<&'a DataSection>,
    /// The `manifest.json` of the pipeline that made the runs (commit, data checksum,
    /// machine, steps with wall times), shown once after the comparison.
    pub manifest: Option<&'a Value>,
}

const STYLE: &str = r#"
:root { --ink: #212529; --muted: #6c757d; --line: #dee2e6; --head: #f1f3f5; --accent: #1f77b4; }
* { box-sizing: border-box; }
body { margin: 0; background: #f8f9fa; color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 60px; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 22px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 17px; margin: 22px 0 8px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 18px 20px; margin: 22px 0; }
.muted, .path { color: var(--muted); }
.path { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; word-break: break-all; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
.table-wrap { max-width: 100%; overflow-x: auto; margin: 6px 0 10px; }
.table-wrap::-webkit-scrollbar { height: 10px; }
.table-wrap::-webkit-scrollbar-track { background: var(--head); border-radius: 5px; }
.table-wrap::-webkit-scrollbar-thumb { background: #adb5bd; border-radius: 5px; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 9px; vertical-align: top; }
th { background: var(--head); text-align: left; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
th.group { text-align: center; }
table.compact { font-size: 13px; }
table.compact th, table.compact td { padding: 4px 5px; }
th.long { min-width: 8em; }
table.compact td:first-child { white-space: nowrap; }
#comparison-table th { vertical-align: bottom; }
#comparison-table td:first-child, #comparison-table tr:first-child th:first-child {
  position: sticky; left: 0; z-index: 1; background: #fff; box-shadow: 1px 0 0 var(--line); }
#comparison-table tr:first-child th:first-child { background: var(--head); }
td.best { font-weight: 700; background: #e7f1fa; }
table.config-diff code { white-space: nowrap; word-break: normal; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 4px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.card .value { font-size: 22px; font-weight: 600; }
.card .label { color: var(--muted); font-size: 13px; }
figure { margin: 10px 0; }
figure > svg { display: block; max-width: 100%; height: auto; border: 1px solid var(--line);
  border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
pre { background: var(--head); padding: 10px 12px; border-radius: 6px; overflow-x: auto;
  font-size: 13px; max-height: 420px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; word-break: break-all; }
@media (max-width: 640px) {
  main { padding: 12px 8px 40px; }
  section { padding: 12px 10px; }
  h1 { font-size: 24px; }
  table.compact td:first-child { white-space: normal; }
}
"#;

/// `0.3839` -> `38.40%`.
fn percent(share: f64) -> String {
    format!("{:.2}%", 100.0 * share)
}

/// Seconds as `12.3 s`, `14 min 55 s` or `2 h 05 min`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".into();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// `plot` as inline SVG (crisp at any zoom, text set by the browser), with a caption.
fn figure(plot: &impl Plot, alt: &str, caption: &str) -> Result<String> {
    let svg = plot.svg()?;
    let svg = svg.trim_start().strip_prefix("<svg").unwrap_or(&svg);
    Ok(format!(
        "<figure><svg role=\"img\" aria-label=\"{}\"{svg}<figcaption>{}</figcaption></figure>\n",
        escape(alt),
        escape(caption)
    ))
}

/// A JSON value as HTML: objects as key/value tables, arrays of objects as tables.
fn json_html(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut out = String::from("<div class=\"table-wrap\"><table class=\"kv\">");
            for (key, v) in map {
                let _ = write!(
                    out,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape(key),
                    json_html(v)
                );
            }
            out + "</table></div>"
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut columns: Vec<&String> = Vec::new();
            for item in items {
                for key in item.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !columns.contains(&key) {
                        columns.push(key);
                    }
                }
            }
            let mut out = String::from("<div class=\"table-wrap\"><table><tr>");
            for c in &columns {
                let _ = write!(out, "<th>{}</th>", escape(c));
            }
            out.push_str("</tr>");
            for item in items {
                out.push_str("<tr>");
                for c in &columns {
                    let cell = item.get(c.as_str()).map_or(String::new(), json_html);
                    let _ = write!(out, "<td>{cell}</td>");
                }
                out.push_str("</tr>");
            }
            out + "</table></div>"
        }
        Value::Array(items) => items.iter().map(json_html).collect::<Vec<_>>().join(", "),
        Value::String(s) if s.len() >= 16 && !s.contains(' ') => {
            format!("<code>{}</code>", escape(s))
        }
        Value::String(s) => escape(s),
        Value::Number(n) => match n.as_f64() {
            // Three decimals read well for seconds and rates; tiny values (eps 1e-8) keep
            // their own short form rather than turning into 0.000.
            Some(f) if n.is_f64() && (f == 0.0 || f.abs() >= 1e-3) => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null => "–".into(),
    }
}

/// Every leaf of a JSON value by dotted path (`optimizer.lr`, `augmentation.transforms.0.type`).
fn flatten(value: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| flatten(v, &join(k), out)),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(v, &join(&i.to_string()), out)),
        leaf => {
            out.insert(prefix.to_string(), leaf.to_string());
        }
    }
}

/// `<td>` of a number, marked when it is the column's best.
fn num_cell(text: &str, best: bool) -> String {
    let class = if best { "num best" } else { "num" };
    format!("<td class=\"{class}\">{}</td>", escape(text))
}

/// The largest value among `values`, if any.
fn best_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values
        .flatten()
        .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
}

impl Report<'_> {
    /// The whole HTML document.
    pub fn render(&self) -> Result<String> {
        if self.runs.is_empty() && self.data.is_none() {
            return Err(Error::Empty("no run and no data to report".into()));
        }
        let mut body = String::new();
        let _ = writeln!(body, "<h1>{}</h1>", escape(&self.title));
        let _ = writeln!(
            body,
            "<p class=\"muted\">{} run(s){} · fer-report {}</p>",
            self.runs.len(),
            if self.data.is_some() { " and data" } else { "" },
            env!("CARGO_PKG_VERSION")
        );
        body.push_str("<nav>");
        if self.runs.len() > 1 {
            body.push_str("<a href=\"#comparison\">Comparison</a>");
        }
        if self.manifest.is_some() {
            body.push_str("<a href=\"#pipeline\">Pipeline</a>");
        }
        if self.data.is_some() {
            body.push_str("<a href=\"#data\">Data</a>");
        }
        for (k, run) in self.runs.iter().enumerate() {
            let _ = write!(body, "<a href=\"#run-{k}\">{}</a>", escape(&run.name));
        }
        body.push_str("</nav>\n");
        if self.runs.len() > 1 {
            body.push_str(&self.comparison());
        }
        if let Some(manifest) = self.manifest {
            body.push_str("<section id=\"pipeline\"><h2>Pipeline</h2>");
            body.push_str(&json_html(manifest));
            body.push_str("</section>\n");
        }
        if let Some(data) = self.data {
            body.push_str("<section id=\"data\"><h2>Data</h2>");
            let _ = writeln!(body, "<p class=\"path\">{}</p>", escape(&data.source));
            body.push_str(&data_html(&data.summary)?);
            if let Some(samples) = &data.samples {
                body.push_str(&figure(
                    samples,
                    "sample faces",
                    "The first faces of the split with their labels.",
                )?);
            }
            body.push_str("</section>\n");
        }
        for (k, run) in self.runs.iter().enumerate() {
            body.push_str(&run_html(k, run, self.data.is_none())?);
        }
        Ok(format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n\
             </body>\n</html>\n",
            escape(&self.title)
        ))
    }

    /// Renders the report into `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let html = self.render()?;
        std::fs::write(path, html).map_err(|e| Error::io(path, e))
    }

    /// The side-by-side table of all runs, and the config entries in which they differ.
    fn comparison(&self) -> String {
        let mut out = String::from("<section id=\"comparison\"><h2>Comparison</h2>");
        out.push_str(
            "<div class=\"table-wrap\"><table id=\"comparison-table\" class=\"compact\"><tr><th rowspan=\"2\">run</th>\
             <th rowspan=\"2\">evaluated on</th><th class=\"num\" rowspan=\"2\">accuracy</th>\
             <th class=\"num\" rowspan=\"2\">macro-F1</th>\
             <th class=\"num long\" rowspan=\"2\" title=\"the split without its images that have an exact copy in Training\">accuracy / macro-F1 without Training copies</th>\
             <th class=\"num\" rowspan=\"2\">epochs</th>\
             <th class=\"num\" rowspan=\"2\">best epoch</th><th class=\"num\" rowspan=\"2\">wall time</th>\
             <th class=\"group\" colspan=\"7\">recall per class</th></tr>\n<tr>",
        );
        for emotion in Emotion::ALL {
            let _ = write!(out, "<th class=\"num\">{}</th>", emotion.name());
        }
        out.push_str("</tr>\n");
        let evals: Vec<Option<&EvalReport>> = self.runs.iter().map(Run::evaluation).collect();
        let best_acc = best_of(evals.iter().map(|e| e.map(|e| e.accuracy)));
        let best_f1 = best_of(evals.iter().map(|e| e.map(|e| e.macro_f1)));
        let best_recall: Vec<Option<f64>> = (0..Emotion::COUNT)
            .map(|k| {
                best_of(
                    evals
                        .iter()
                        .map(|e| e.and_then(|e| e.per_class.get(k)).map(|c| c.recall)),
                )
            })
            .collect();
        let dash = "<td class=\"num\">–</td>";
        for (run, eval) in self.runs.iter().zip(&evals) {
            let _ = write!(out, "<tr><td>{}</td>", escape(&run.name));
            match eval {
                Some(e) => {
                    let _ = write!(out, "<td>{} ({})</td>", escape(&e.split), thousands(e.n));
                    out.push_str(&num_cell(
                        &percent(e.accuracy),
                        Some(e.accuracy) == best_acc,
                    ));
                    out.push_str(&num_cell(
                        &format!("{:.3}", e.macro_f1),
                        Some(e.macro_f1) == best_f1,
                    ));
                    match &e.without_training_copies {
                        Some(w) => out.push_str(&num_cell(
                            &format!(
                                "{} / {:.3} ({})",
                                percent(w.accuracy),
                                w.macro_f1,
                                thousands(w.n)
                            ),
                            false,
                        )),
                        None => out.push_str(dash),
                    }
                }
                None => {
                    let _ = write!(out, "<td>not evaluated</td>{dash}{dash}{dash}");
                }
            }
            let opt = |v: Option<String>| v.unwrap_or_else(|| "–".into());
            out.push_str(&num_cell(&opt(run.epochs().map(|e| e.to_string())), false));
            out.push_str(&num_cell(
                &opt(run.best_epoch().map(|e| e.to_string())),
                false,
            ));
            out.push_str(&num_cell(&opt(run.wall_seconds().map(duration)), false));
            for (k, best) in best_recall.iter().enumerate() {
                match eval.and_then(|e| e.per_class.get(k)) {
                    Some(c) => out.push_str(&num_cell(
                        &format!("{:.1}%", 100.0 * c.recall),
                        Some(c.recall) == *best,
                    )),
                    None => out.push_str(dash),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table></div>");
        out.push_str(
            "<p class=\"muted\">Best value of each column in bold. Accuracy, macro-F1 and recall \
             on the evaluated split (PrivateTest when the run has it); wall time is training \
             plus per-epoch validation.</p>",
        );
        out.push_str(&self.config_differences());
        out.push_str("</section>\n");
        out
    }

    /// The config entries in which runs differ, compared only among runs of the same
    /// [`ConfigKind`]: one table per kind with two or more runs, a sentence for the rest.
    fn config_differences(&self) -> String {
        let mut out = String::from("<h3>Configuration differences</h3>");
        let mut groups: Vec<(ConfigKind, Vec<(&Run, &Value)>)> = Vec::new();
        let mut without_config = Vec::new();
        for run in self.runs {
            let Some(config) = &run.config else {
                without_config.push(run.name.as_str());
                continue;
            };
            let kind = ConfigKind::of(config);
            match groups.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, members)) => members.push((run, config)),
                None => groups.push((kind, vec![(run, config)])),
            }
        }
        if groups.len() > 1 {
            out.push_str(
                "<p class=\"muted\">Runs of different kinds have different config.json \
                 entries, so configurations are compared only among runs of the same kind.</p>",
            );
        }
        let mut alone = Vec::new();
        for (kind, members) in &groups {
            if let [(run, _)] = members.as_slice() {
                alone.push(format!("{} is the only {}", run.name, kind.singular()));
                continue;
            }
            out.push_str(&differences_table(kind, members));
        }
        if !alone.is_empty() {
            let _ = write!(out, "<p>Not compared: {}.</p>", escape(&alone.join("; ")));
        }
        if !without_config.is_empty() {
            let _ = write!(
                out,
                "<p class=\"muted\">No config.json: {}.</p>",
                escape(&listing(&without_config))
            );
        }
        out
    }
}

/// The family of a run's `config.json`. Runs of different families have different config
/// schemas (a CNN's `TrainConfig` shares no entry with a HOG-SVM's), so their configurations
/// are compared only within a family.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfigKind {
    /// A CNN's `TrainConfig`: `model.architecture` (any architecture, one schema).
    Cnn,
    /// A model tagged by name in `model`, as HOG-SVM runs are (`{"model": "hog-svm"}`).
    Tagged(String),
    /// An ensemble's directory (`{"ensemble": {...}}`, written by `fer eval --out`).
    Ensemble,
    /// Any other JSON, known by its sorted top-level keys.
    Other(Vec<String>),
}

impl ConfigKind {
    fn of(config: &Value) -> ConfigKind {
        let model = config.get("model");
        if let Some(tag) = model.and_then(Value::as_str) {
            return ConfigKind::Tagged(tag.to_string());
        }
        if model.and_then(|m| m.get("architecture")).is_some() {
            return ConfigKind::Cnn;
        }
        if config.get("ensemble").is_some_and(Value::is_object) {
            return ConfigKind::Ensemble;
        }
        let mut keys: Vec<String> = config
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        ConfigKind::Other(keys)
    }

    /// "CNN run", "hog-svm run", "ensemble", ...
    fn singular(&self) -> String {
        self.noun(false)
    }

    /// "CNN runs", "hog-svm runs", "ensembles", ...
    fn plural(&self) -> String {
        self.noun(true)
    }

    fn noun(&self, plural: bool) -> String {
        let s = if plural { "s" } else { "" };
        match self {
            ConfigKind::Cnn => format!("CNN run{s}"),
            ConfigKind::Tagged(tag) => format!("{tag} run{s}"),
            ConfigKind::Ensemble => format!("ensemble{s}"),
            ConfigKind::Other(keys) if keys.is_empty() => {
                format!("run{s} whose config.json is not a JSON object or is empty")
            }
            ConfigKind::Other(keys) => {
                format!("run{s} with the config.json keys {}", keys.join(", "))
            }
        }
    }
}

/// `a`, `a and b`, `a, b and c`.
fn listing(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The sentence naming the runs of one kind that are compared, and the table of the config
/// entries whose values are not the same in all of them.
fn differences_table(kind: &ConfigKind, members: &[(&Run, &Value)]) -> String {
    let names: Vec<&str> = members.iter().map(|(run, _)| run.name.as_str()).collect();
    let who = escape(&format!(
        "the {} {} ({})",
        members.len(),
        kind.plural(),
        listing(&names)
    ));
    let flat: Vec<BTreeMap<String, String>> = members
        .iter()
        .map(|(_, config)| {
            let mut map = BTreeMap::new();
            flatten(config, "", &mut map);
            map
        })
        .collect();
    let keys: BTreeSet<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    let differing: Vec<&String> = keys
        .into_iter()
        .filter(|k| {
            let first = flat[0].get(*k);
            flat.iter().any(|m| m.get(*k) != first)
        })
        .collect();
    if differing.is_empty() {
        return format!("<p>The config.json files of {who} are identical.</p>");
    }
    let mut out = format!(
        "<p>Among {who}, these config entries differ:</p>\
         <div class=\"table-wrap\"><table class=\"config-diff\"><tr><th>config entry</th>"
    );
    for name in &names {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr>");
    for key in differing {
        let _ = write!(out, "<tr><td><code>{}</code></td>", escape(key));
        for m in &flat {
            let value = m.get(key).map_or("–", String::as_str);
            let _ = write!(out, "<td><code>{}</code></td>", escape(value));
        }
        out.push_str("</tr>");
    }
    out + "</table></div>"
}

/// The class-count table and distribution figure of a data summary.
fn data_html(summary: &DataSummary) -> Result<String> {
    let mut out = String::from(
        "<div class=\"table-wrap\"><table><tr><th>split</th><th class=\"num\">images</th>",
    );
    for emotion in Emotion::ALL {
        let _ = write!(out, "<th class=\"num\">{}</th>", emotion.name());
    }
    out.push_str("</tr>");
    for split in &summary.splits {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td>",
            escape(&split.name),
            thousands(split.total())
        );
        for count in split.per_class {
            let share = if split.total() == 0 {
                0.0
            } else {
                count as f64 / split.total() as f64
            };
            let _ = write!(
                out,
                "<td class=\"num\">{} <span class=\"muted\">({:.1}%)</span></td>",
                thousands(count),
                100.0 * share
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div>");
    let mut quirks = Vec::new();
    if let Some(n) = summary.black_images {
        quirks.push(format!("{} all-black images", thousands(n)));
    }
    if let Some(n) = summary.duplicate_groups {
        quirks.push(format!("{} groups of identical images", thousands(n)));
    }
    if !quirks.is_empty() {
        let _ = write!(out, "<p>{}.</p>", escape(&quirks.join(", ")));
    }
    out.push_str(&figure(
        &DistributionChart::new(&summary.splits)?,
        "class distribution per split",
        "Images per class in each split.",
    )?);
    Ok(out)
}

/// The headline figures of a run as cards.
fn cards(run: &Run) -> String {
    let mut items: Vec<(String, String)> = Vec::new();
    if let Some(e) = run.evaluation() {
        items.push((percent(e.accuracy), format!("accuracy ({})", e.split)));
        items.push((
            format!("{:.3}", e.macro_f1),
            format!("macro-F1 ({})", e.split),
        ));
    }
    if let Some(epochs) = run.epochs() {
        items.push((epochs.to_string(), "epochs".into()));
    }
    if let Some(best) = run.best_epoch() {
        items.push((best.to_string(), "best epoch (PublicTest)".into()));
    }
    if let Some(seconds) = run.wall_seconds() {
        items.push((duration(seconds), "wall time".into()));
    }
    let mut out = String::from("<div class=\"cards\">");
    for (value, label) in items {
        let _ = write!(
            out,
            "<div class=\"card\"><div class=\"value\">{}</div><div class=\"label\">{}</div></div>",
            escape(&value),
            escape(&label)
        );
    }
    out + "</div>"
}

/// One run's section: headline, manifest, data, curves, evaluations and config.
fn run_html(k: usize, run: &Run, show_run_data: bool) -> Result<String> {
    let mut out = format!(
        "<section id=\"run-{k}\"><h2>Run: {}</h2><p class=\"path\">{}</p>",
        escape(&run.name),
        escape(&run.dir.display().to_string())
    );
    out.push_str(&cards(run));
    if let Some(manifest) = &run.manifest {
        out.push_str("<h3>Pipeline manifest</h3>");
        out.push_str(&json_html(manifest));
    }
    if let (true, Some(data)) = (show_run_data, &run.data) {
        out.push_str("<h3>Data (stats.json)</h3>");
        out.push_str(&data_html(data)?);
    }
    out.push_str("<h3>Training</h3>");
    match run.history.as_deref() {
        Some(history) if !history.is_empty() => {
            out.push_str(&figure(
                &CurvesChart::new(history)?,
                "training curves",
                "Losses are sums over batches of each batch's mean loss, as the seed notebook \
                 prints them. After each epoch, validation accuracy and macro-F1 are measured \
                 on PublicTest and training accuracy on a fixed sample of as many Training \
                 images, both without augmentation or dropout.",
            )?);
            out.push_str(&history_table(history));
        }
        _ => out.push_str("<p class=\"muted\">No history.json: this run has no epochs.</p>"),
    }
    if run.evaluations.is_empty() {
        out.push_str(
            "<h3>Evaluation</h3><p class=\"muted\">No eval-*.json: run <code>fer eval --model \
             RUN --data CSV</code> to add one.</p>",
        );
    }
    for e in &run.evaluations {
        let _ = write!(
            out,
            "<h3>Evaluation on {}</h3><p>{} images, accuracy <b>{}</b>, macro-F1 <b>{:.3}</b>{}.</p>",
            escape(&e.split),
            thousands(e.n),
            percent(e.accuracy),
            e.macro_f1,
            e.loss
                .map_or_else(String::new, |loss| format!(", mean loss {loss:.4}"))
        );
        if let Some(w) = &e.without_training_copies {
            let _ = write!(
                out,
                "<p>Without the {} images that have an exact copy in Training ({} left): \
                 accuracy <b>{}</b>, macro-F1 <b>{:.3}</b>.</p>",
                thousands(w.excluded),
                thousands(w.n),
                percent(w.accuracy),
                w.macro_f1
            );
        }
        out.push_str(&per_class_table(e));
        out.push_str(&figure(
            &ConfusionChart::new(e),
            "confusion matrix",
            "Rows: true class; columns: predicted class. Colour and percentage: share of the \
             true class (the diagonal is each class's recall).",
        )?);
        out.push_str(&figure(
            &PerClassChart::new(e),
            "per-class precision, recall and F1",
            "n: images of the class in the split (support).",
        )?);
    }
    out.push_str("<h3>Configuration</h3>");
    match &run.config {
        Some(config) => {
            let pretty = serde_json::to_string_pretty(config).unwrap_or_default();
            let _ = write!(out, "<pre>{}</pre>", escape(&pretty));
        }
        None => out.push_str("<p class=\"muted\">No config.json.</p>"),
    }
    out.push_str("</section>\n");
    Ok(out)
}

fn history_table(history: &[EpochRecord]) -> String {
    let mut out = String::from(
        "<div class=\"table-wrap\"><table><tr><th class=\"num\">epoch</th>\
         <th class=\"num\">train loss</th><th class=\"num\">validation loss</th>\
         <th class=\"num\">val accuracy</th><th class=\"num\">val macro-F1</th>\
         <th class=\"num\">lr</th><th class=\"num\">train time</th>\
         <th class=\"num\">images/s</th></tr>",
    );
    for r in history {
        let best = r.epoch == r.best_epoch;
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td>{}\
             <td class=\"num\">{:.3}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.1}</td></tr>",
            r.epoch,
            r.train_loss,
            r.val_loss,
            num_cell(&percent(r.val_accuracy), best),
            r.val_macro_f1,
            r.lr,
            duration(r.train_seconds),
            r.train_images_per_second
        );
    }
    out + "</table></div>"
}

fn per_class_table(e: &EvalReport) -> String {
    let mut out = String::from(
        "<div class=\"table-wrap\"><table><tr><th>class</th><th class=\"num\">precision</th>\
         <th class=\"num\">recall</th><th class=\"num\">F1</th><th class=\"num\">support</th></tr>",
    );
    for c in &e.per_class {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td>\
             <td class=\"num\">{:.3}</td><td class=\"num\">{}</td></tr>",
            escape(&c.class),
            c.precision,
            c.recall,
            c.f1,
            thousands(c.support)
        );
    }
    out + "</table></div>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_keep_small_values_readable() {
        assert_eq!(json_html(&serde_json::json!(1e-8)), "1e-8");
        assert_eq!(json_html(&serde_json::json!(0.95)), "0.950");
        assert_eq!(json_html(&serde_json::json!(0.0)), "0.000");
        assert_eq!(json_html(&serde_json::json!(128)), "128");
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("Fear"), "Fear");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(895.0), "14 min 55 s");
        assert_eq!(duration(7500.0), "2 h 05 min");
        assert_eq!(duration(f64::NAN), "–");
    }

    #[test]
    fn config_kinds_follow_the_shape_of_config_json() {
        let cnn = serde_json::to_value(fer_model::TrainConfig::default()).unwrap();
        assert_eq!(ConfigKind::of(&cnn), ConfigKind::Cnn);
        let hog = serde_json::json!({"model": "hog-svm", "c_grid": [0.1]});
        assert_eq!(ConfigKind::of(&hog), ConfigKind::Tagged("hog-svm".into()));
        assert_eq!(
            ConfigKind::Tagged("hog-svm".into()).singular(),
            "hog-svm run"
        );
        let ensemble = serde_json::json!({"ensemble": {"members": ["a", "b"]}});
        assert_eq!(ConfigKind::of(&ensemble), ConfigKind::Ensemble);
        let other = serde_json::json!({"kind": "x", "c": 1.0});
        let kind = ConfigKind::of(&other);
        assert_eq!(kind, ConfigKind::Other(vec!["c".into(), "kind".into()]));
        assert_eq!(kind.plural(), "runs with the config.json keys c, kind");
        assert_eq!(
            ConfigKind::of(&serde_json::json!([1])).singular(),
            "run whose config.json is not a JSON object or is empty"
        );
        assert_eq!(listing(&["a", "b", "c"]), "a, b and c");
        assert_eq!(listing(&["a"]), "a");
    }

    #[test]
    fn flatten_names_every_leaf_by_path() {
        let config =
            serde_json::json!({"optimizer": {"lr": 0.1}, "t": [{"type": "flip"}], "e": []});
        let mut flat = BTreeMap::new();
        flatten(&config, "", &mut flat);
        assert_eq!(flat["optimizer.lr"], "0.1");
        assert_eq!(flat["t.0.type"], "\"flip\"");
        assert_eq!(flat["e"], "[]");
    }
}
