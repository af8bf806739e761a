//! The progress bar: output slices written, input slices/s and MB/s, ETA.

use std::fmt::Write;
use std::io::IsTerminal;
use std::time::Duration;

use ctstack::Plan;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// How often the spinner and the rates are redrawn, even between slices.
const TICK: Duration = Duration::from_millis(100);

/// A progress bar on stderr, hidden when stderr is not a terminal (a log file, a
/// pipe, a test) or when the user asked for quiet.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(plan: &Plan, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let input = &plan.levels()[0];
        let input_slices = input.count as f64;
        let input_bytes = input_slices
            * f64::from(input.width)
            * f64::from(input.height)
            * f64::from(plan.sample_type().bits() / 8);
        // Progress counts output slices; the input is consumed in step with them
        // (the cascade makes a level-k+1 slice as soon as its two level-k slices
        // exist), so the fraction done is also the fraction of the input read.
        let input_rate = move |state: &ProgressState, w: &mut dyn Write| {
            let secs = state.elapsed().as_secs_f64();
            let fraction = state.fraction() as f64;
            if secs < 0.05 || fraction == 0.0 {
                let _ = w.write_str("- slices/s, - MB/s in");
                return;
            }
            let slices = input_slices * fraction / secs;
            let mb = input_bytes * fraction / secs / 1e6;
            let _ = write!(w, "{} slices/s, {} MB/s in", rate(slices), rate(mb));
        };
        let style = ProgressStyle::with_template(
            // The bar takes what the terminal width leaves, so the line never wraps.
            "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} written | {input_rate} | ETA {eta}",
        )
        .expect("the template is valid")
        .with_key("input_rate", input_rate)
        .progress_chars("=> ");
        let bar = ProgressBar::new(plan.total_units()).with_style(style);
        bar.enable_steady_tick(TICK);
        Progress { bar }
    }

    /// A bar of `total` files written by a crop, with files/s and the ETA.
    pub fn files(total: u64, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} written | {per_sec} | ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        let bar = ProgressBar::new(total).with_style(style);
        bar.enable_steady_tick(TICK);
        Progress { bar }
    }

    /// After each output slice: `done` of `total`.
    pub fn update(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    /// Removes the bar (the summary line follows it).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A rate for people: no digit grouping, one decimal below 10, none above.
fn rate(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_read_well() {
        assert_eq!(rate(2151.0036), "2151");
        assert_eq!(rate(9.94), "9.9");
        assert_eq!(rate(0.0), "0.0");
    }
}
