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
///
/// Until the run reports its first progress (after it has taken the output
/// folder's lock and checked what an earlier run left), the line says what it
/// waits for instead of showing "0/N ETA 0s".
pub struct Progress {
    bar: ProgressBar,
    /// The bar's style once counting starts; `None` once set (or when hidden).
    counting: std::cell::Cell<Option<ProgressStyle>>,
}

impl Progress {
    pub fn new(plan: &Plan, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                counting: None.into(),
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
        let waiting = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .expect("the template is valid");
        let bar = ProgressBar::new(plan.total_units()).with_style(waiting);
        bar.set_message(waiting_message(plan.output_dir()));
        bar.enable_steady_tick(TICK);
        Progress {
            bar,
            counting: Some(style).into(),
        }
    }

    /// A bar of `total` files written by a crop, with files/s and the ETA.
    pub fn files(total: u64, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                counting: None.into(),
            };
        }
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} written | {per_sec} | ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        let bar = ProgressBar::new(total).with_style(style);
        bar.enable_steady_tick(TICK);
        Progress {
            bar,
            counting: None.into(),
        }
    }

    /// After each output slice: `done` of `total`.
    pub fn update(&self, done: u64, total: u64) {
        if let Some(style) = self.counting.take() {
            // Counting starts now: the elapsed time and rates count from here.
            self.bar.set_style(style);
            self.bar.reset();
        }
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    /// Removes the bar (the summary line follows it).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// What a run does before its first output slice: wait for another run that
/// holds the output folder's lock (its lock file exists), or check the folder.
fn waiting_message(out: &std::path::Path) -> String {
    if out.join(ctstack::LOCK_FILE).exists() {
        format!(
            "waiting for another ctstack run writing {} to finish (it holds {})",
            out.display(),
            ctstack::LOCK_FILE
        )
    } else {
        format!("checking {} for outputs of an earlier run", out.display())
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
    use super::{rate, waiting_message};

    #[test]
    fn rates_read_well() {
        assert_eq!(rate(2151.0036), "2151");
        assert_eq!(rate(9.94), "9.9");
        assert_eq!(rate(0.0), "0.0");
    }

    #[test]
    fn a_held_lock_is_said_to_be_waited_for() {
        let dir = std::env::temp_dir().join(format!("ctstack-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(waiting_message(&dir).starts_with("checking "));
        std::fs::write(dir.join(ctstack::LOCK_FILE), b"").unwrap();
        let message = waiting_message(&dir);
        assert!(
            message.starts_with("waiting for another ctstack run"),
            "{message}"
        );
        assert!(message.contains(&dir.display().to_string()), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
