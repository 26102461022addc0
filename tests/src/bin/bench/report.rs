//! The results: statistics, the printed table, and the JSON file.

use std::fmt::Write as _;

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

pub(crate) fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    };
    Stats {
        median,
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

pub(crate) fn js(s: Stats) -> Value {
    json!({"median": s.median, "min": s.min, "max": s.max})
}

/// One line of the printed table.
pub(crate) struct Row {
    scenario: String,
    stats: Option<Stats>,
    unit: &'static str,
    target: String,
    met: Option<bool>,
}

pub(crate) struct Report {
    pub(crate) rows: Vec<Row>,
    pub(crate) json: serde_json::Map<String, Value>,
}

impl Report {
    pub(crate) fn row(
        &mut self,
        scenario: impl Into<String>,
        stats: Option<Stats>,
        unit: &'static str,
        target: impl Into<String>,
        met: Option<bool>,
    ) {
        let row = Row {
            scenario: scenario.into(),
            stats,
            unit,
            target: target.into(),
            met,
        };
        println!("{}", format_row(&row));
        self.rows.push(row);
    }
}

pub(crate) fn num(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if (x.fract() == 0.0 && x.abs() < 1e9) || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

pub(crate) fn format_row(r: &Row) -> String {
    let (med, min, max) = r.stats.map_or(("–".into(), "–".into(), "–".into()), |s| {
        (num(s.median), num(s.min), num(s.max))
    });
    let met = match r.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    };
    format!(
        "| {} | {med} | {min} | {max} | {} | {} | {met} |",
        r.scenario, r.unit, r.target
    )
}

impl Report {
    /// A single count as a row's figures.
    pub(crate) fn count(n: f64) -> Stats {
        Stats {
            median: n,
            min: n,
            max: n,
        }
    }

    /// The table as markdown, the machine, and every figure, as JSON at `out_path`.
    pub(crate) fn write(mut self, out_path: &std::path::Path, runs: usize) {
        let mut md = String::from(
            "| scenario | median | min | max | unit | target | |\n|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(md, "{}", format_row(r));
        }
        self.json.insert(
        "machine".into(),
        json!({"cores": std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1), "runs": runs}),
    );
        self.json.insert("table_markdown".into(), Value::String(md));
        if let Some(dir) = out_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(
            out_path,
            serde_json::to_string_pretty(&Value::Object(self.json)).unwrap_or_default(),
        )
        .expect("write results");
        println!("\nwritten to {}", out_path.display());
    }
}
