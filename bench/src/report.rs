//! Tables, the machine description, and writing a section of `docs/benchmarks.md`.

use std::path::{Path, PathBuf};

/// One benchmark's result: a markdown table plus notes, under a stable id.
pub(crate) struct Section {
    pub(crate) id: &'static str,
    pub(crate) title: String,
    pub(crate) command: String,
    pub(crate) header: Vec<&'static str>,
    pub(crate) rows: Vec<Vec<String>>,
    pub(crate) notes: Vec<String>,
}

impl Section {
    pub(crate) fn table(&self) -> String {
        let mut out = format!("| {} |\n|", self.header.join(" | "));
        for (i, _) in self.header.iter().enumerate() {
            out.push_str(if i == 0 { "---|" } else { "---:|" });
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }

    pub(crate) fn print(&self) {
        println!("\n## {}\n", self.title);
        print!("{}", self.table());
        for note in &self.notes {
            println!("- {note}");
        }
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "<!-- bench:{id} -->\n### {title}\n\n- Date: {date}; machine: {machine}; {profile} build.\n- Reproduce: `{command}`\n\n{table}",
            id = self.id,
            title = self.title,
            date = chrono::Utc::now().format("%Y-%m-%d"),
            machine = machine(),
            profile = if cfg!(debug_assertions) { "debug (not representative)" } else { "release" },
            command = self.command,
            table = self.table(),
        );
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        out.push_str(&format!("<!-- /bench:{} -->\n", self.id));
        out
    }
}

/// `N cores (nproc), CPU model, RAM, load` from /proc.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kb| format!(", {} GiB", kb / 1024 / 1024));
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .map_or_else(String::new, |l| {
            format!(", load average {l} at the end (the run's own processes included)")
        });
    format!("{cores} cores (`nproc`), `{cpu}`{mem}{load}")
}

/// The repository's docs/benchmarks.md (found from the working directory upwards).
fn benchmarks_file() -> PathBuf {
    let mut dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    loop {
        let candidate = dir.join("docs/benchmarks.md");
        if candidate.is_file() {
            return candidate;
        }
        if !dir.pop() {
            return PathBuf::from("docs/benchmarks.md");
        }
    }
}

/// Replaces (or appends) the section's block in docs/benchmarks.md, under the
/// "Sync engine" heading.
pub(crate) fn write(section: &Section) -> anyhow::Result<PathBuf> {
    let path = benchmarks_file();
    write_to(&path, section)?;
    Ok(path)
}

fn write_to(path: &Path, section: &Section) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    let start = format!("<!-- bench:{} -->", section.id);
    let end = format!("<!-- /bench:{} -->\n", section.id);
    let block = section.markdown();
    match (text.find(&start), text.find(&end)) {
        (Some(s), Some(e)) if e > s => text.replace_range(s..e + end.len(), &block),
        _ => {
            const HEADING: &str = "## Sync engine (issues 6, 7, 12): `bench`";
            if !text.contains(HEADING) {
                text.push_str(&format!(
                    "\n{HEADING}\n\nMeasured by `cargo run --release -p tandem-bench -- <benchmark> --write` \
                     (`bench all` runs every one at moderate sizes). Each block below is rewritten by its run.\n"
                ));
            }
            text.push('\n');
            text.push_str(&block);
        }
    }
    std::fs::write(path, text)?;
    Ok(())
}

pub(crate) fn ms(d: std::time::Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The q-quantile (0..=1) of sorted durations.
pub(crate) fn quantile(sorted: &[std::time::Duration], q: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn verdict(met: bool) -> String {
    if met { "**met**" } else { "**not met**" }.to_owned()
}
