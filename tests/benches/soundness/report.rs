//! The study's output: the pairs as CSV, the tables as Markdown, and the two
//! models' histograms as one PNG.

use crate::study::{scheduler_name, Pair};
use hydrogen_sdk::phash::DEFAULT_DISTANCE_THRESHOLD;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Thresholds the table lists (bits).
const THRESHOLDS: std::ops::RangeInclusive<u32> = 0..=16;

const CSV_HEADER: &str = "model,task,image,scheduler,honest,variant,distance\n";

fn csv_rows(text: &mut String, pairs: &[Pair]) {
    for p in pairs {
        let _ = writeln!(
            text,
            "{},{},{},{},{},\"{}\",{}",
            p.model, p.task, p.image, p.scheduler, p.honest, p.variant, p.distance
        );
    }
}

pub fn write_csv(path: &Path, pairs: &[Pair]) -> std::io::Result<()> {
    let mut text = String::from(CSV_HEADER);
    csv_rows(&mut text, pairs);
    std::fs::write(path, text)
}

/// Appends `pairs` to the CSV at `path`, writing the header first if the
/// file is new: the study's record of the tasks finished so far.
pub fn append_csv(path: &Path, pairs: &[Pair]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::new();
    if file.metadata()?.len() == 0 {
        text.push_str(CSV_HEADER);
    }
    csv_rows(&mut text, pairs);
    file.write_all(text.as_bytes())
}

/// Reads back what [`write_csv`] wrote, so the tables and the figure can be
/// redone without rendering again.
pub fn read_csv(path: &Path) -> Result<Vec<Pair>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let bad = || {
            format!(
                "{}:{}: not a row of distances.csv: {line}",
                path.display(),
                n + 1
            )
        };
        // The variant is the only quoted field and holds no quotes itself.
        let (head, rest) = line.split_once(",\"").ok_or_else(bad)?;
        let (variant, distance) = rest.split_once("\",").ok_or_else(bad)?;
        let f: Vec<&str> = head.split(',').collect();
        let [model, task, image, scheduler, honest] = f[..] else {
            return Err(bad());
        };
        pairs.push(Pair {
            model: model.to_owned(),
            task: task.parse().map_err(|_| bad())?,
            image: image.parse().map_err(|_| bad())?,
            scheduler: scheduler_name(scheduler).ok_or_else(bad)?,
            honest: honest.parse().map_err(|_| bad())?,
            variant: variant.to_owned(),
            distance: distance.parse().map_err(|_| bad())?,
        });
    }
    Ok(pairs)
}

fn models(pairs: &[Pair]) -> Vec<String> {
    let mut m: Vec<String> = pairs.iter().map(|p| p.model.clone()).collect();
    m.dedup();
    m
}

/// The smallest threshold at which no honest pair of any model disagrees.
pub fn zero_failure_threshold(pairs: &[Pair]) -> u32 {
    pairs
        .iter()
        .filter(|p| p.honest)
        .map(|p| p.distance)
        .max()
        .unwrap_or(0)
}

/// Per (model, task, variant): whether the whole result (every image) agrees at `t`.
fn task_agreement<'a>(pairs: impl Iterator<Item = &'a Pair>, t: u32) -> (usize, usize) {
    let mut tasks: BTreeMap<(&str, usize, &str), bool> = BTreeMap::new();
    for p in pairs {
        let agree = tasks.entry((&p.model, p.task, &p.variant)).or_insert(true);
        *agree &= p.distance <= t;
    }
    (tasks.values().filter(|a| **a).count(), tasks.len())
}

/// (min, 5th percentile, median, mean, max) of `d`.
fn stats(d: &mut [u32]) -> (u32, u32, u32, f64, u32) {
    d.sort_unstable();
    let pct = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
    let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / d.len() as f64;
    (d[0], pct(0.05), pct(0.5), mean, d[d.len() - 1])
}

pub fn markdown(pairs: &[Pair]) -> String {
    let mut s = String::new();
    let chosen = zero_failure_threshold(pairs);
    for model in models(pairs) {
        let of: Vec<&Pair> = pairs.iter().filter(|p| p.model == model).collect();
        let (h, c) = (
            of.iter().filter(|p| p.honest).count(),
            of.iter().filter(|p| !p.honest).count(),
        );
        let _ = writeln!(s, "### {model}: {h} honest and {c} cheat image pairs\n");
        let _ = writeln!(
            s,
            "| pair | kind | pairs | min | 5th pct | median | mean | max |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
        let mut variants: Vec<(bool, &str)> =
            of.iter().map(|p| (p.honest, p.variant.as_str())).collect();
        variants.sort_by_key(|(honest, v)| (!honest, *v));
        variants.dedup();
        for (honest, v) in variants {
            let mut d: Vec<u32> = of
                .iter()
                .filter(|p| p.variant == v)
                .map(|p| p.distance)
                .collect();
            let (min, p5, median, mean, max) = stats(&mut d);
            let kind = if honest { "honest" } else { "cheat" };
            let _ = writeln!(
                s,
                "| {v} | {kind} | {} | {min} | {p5} | {median} | {mean:.1} | {max} |",
                d.len()
            );
        }
        let mut per_sched: BTreeMap<&str, u32> = BTreeMap::new();
        for p in of.iter().filter(|p| p.honest) {
            let m = per_sched.entry(p.scheduler).or_default();
            *m = (*m).max(p.distance);
        }
        let list: Vec<String> = per_sched.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            s,
            "\nLargest honest distance per scheduler: {}.\n",
            list.join(", ")
        );
        let default = u32::from(DEFAULT_DISTANCE_THRESHOLD);
        let _ = writeln!(
            s,
            "Cheats caught at the network's threshold ({default} bits) and at {chosen}:\n"
        );
        let _ = writeln!(
            s,
            "| cheat | images at {default} | tasks at {default} | images at {chosen} | tasks at {chosen} |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        let mut cheats: Vec<&str> = of
            .iter()
            .filter(|p| !p.honest)
            .map(|p| p.variant.as_str())
            .collect();
        cheats.sort_unstable();
        cheats.dedup();
        for v in cheats {
            let these: Vec<&Pair> = of.iter().copied().filter(|p| p.variant == v).collect();
            let rates = |t: u32| {
                let caught = these.iter().filter(|p| p.distance > t).count();
                let (agree, tasks) = task_agreement(these.iter().copied(), t);
                (
                    100.0 * caught as f64 / these.len().max(1) as f64,
                    100.0 * (tasks - agree) as f64 / tasks.max(1) as f64,
                )
            };
            let ((i_d, t_d), (i_c, t_c)) = (rates(default), rates(chosen));
            let _ = writeln!(s, "| {v} | {i_d:.1}% | {t_d:.1}% | {i_c:.1}% | {t_c:.1}% |");
        }
        s.push('\n');
        let _ = writeln!(s, "| threshold | honest images failed | honest tasks failed | cheat images caught | cheat tasks caught |");
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
        for t in THRESHOLDS {
            let honest = of.iter().filter(|p| p.honest);
            let failed = honest.clone().filter(|p| p.distance > t).count();
            let (agree, tasks) = task_agreement(honest.copied(), t);
            let cheats = of.iter().filter(|p| !p.honest);
            let caught = cheats.clone().filter(|p| p.distance > t).count();
            let (c_agree, c_tasks) = task_agreement(cheats.copied(), t);
            let mark = match (t == chosen, t == default) {
                (true, true) => " **(zero-failure, network default)**",
                (true, false) => " **(zero-failure)**",
                (false, true) => " **(network default)**",
                (false, false) => "",
            };
            let _ = writeln!(
                s,
                "| {t}{mark} | {failed} of {h} | {} of {tasks} | {:.1}% | {:.1}% |",
                tasks - agree,
                100.0 * caught as f64 / c.max(1) as f64,
                100.0 * (c_tasks - c_agree) as f64 / c_tasks.max(1) as f64
            );
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "Smallest threshold with no honest failure over every model studied: **{chosen} bits** \
         (a task is {} images; it agrees when every image is within the threshold).",
        pairs.iter().map(|p| p.image + 1).max().unwrap_or(0)
    );
    s
}

/// Side-by-side histograms (one per model): the share of honest and of
/// cheat pairs at each distance, with the chosen threshold marked.
pub fn plot(path: &Path, pairs: &[Pair]) -> Result<(), Box<dyn std::error::Error>> {
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").map_err(|e| {
        format!("the plot's font /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf (Debian fonts-dejavu-core): {e}")
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| "the font file is not a TrueType font")?;
    let ms = models(pairs);
    let chosen = zero_failure_threshold(pairs);
    let root = BitMapBackend::new(path, (640 * ms.len().max(1) as u32, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, model) in root.split_evenly((1, ms.len().max(1))).iter().zip(&ms) {
        let share = |honest: bool| {
            let d: Vec<u32> = pairs
                .iter()
                .filter(|p| &p.model == model && p.honest == honest)
                .map(|p| p.distance)
                .collect();
            let mut bins = vec![0.0f64; 65];
            for &v in &d {
                bins[v as usize] += 1.0 / d.len().max(1) as f64;
            }
            bins
        };
        let (honest, cheat) = (share(true), share(false));
        let top = honest.iter().chain(&cheat).cloned().fold(0.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{model}: pHash distance of image pairs"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(-1f64..48f64, 0f64..top.max(0.01))?;
        chart
            .configure_mesh()
            .x_desc("Hamming distance (bits of 64)")
            .y_desc("share of pairs")
            .draw()?;
        for (bins, color, offset, label) in
            [(honest, BLUE, 0.0, "honest"), (cheat, RED, 0.45, "cheat")]
        {
            chart
                .draw_series(
                    bins.iter()
                        .enumerate()
                        .filter(|(_, v)| **v > 0.0)
                        .map(|(d, v)| {
                            let x = d as f64 + offset - 0.45;
                            Rectangle::new([(x, 0.0), (x + 0.45, *v)], color.mix(0.7).filled())
                        }),
                )?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        let t = f64::from(chosen) + 0.5;
        chart
            .draw_series(LineSeries::new([(t, 0.0), (t, top)], BLACK.stroke_width(2)))?
            .label(format!("no honest failure from {chosen}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK.stroke_width(2)));
        let d = f64::from(DEFAULT_DISTANCE_THRESHOLD) + 0.5;
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series(LineSeries::new([(d, 0.0), (d, top)], red.stroke_width(2)))?
            .label(format!("network threshold {DEFAULT_DISTANCE_THRESHOLD}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], red.stroke_width(2)));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
