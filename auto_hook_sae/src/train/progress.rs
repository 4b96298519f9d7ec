//! The training progress bar (indicatif), hidden when not asked for.

use super::sae::StepMetrics;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

pub(crate) struct Progress {
    bar: ProgressBar,
    start: Instant,
}

impl Progress {
    pub(crate) fn new(show: bool, total: usize, done: usize) -> Self {
        let bar = if show {
            ProgressBar::new(total as u64)
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template("{bar:30} {pos}/{len} steps | {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_position(done as u64);
        Self {
            bar,
            start: Instant::now(),
        }
    }

    pub(crate) fn update(&self, step: usize, tokens: u64, metrics: &[StepMetrics]) {
        if self.bar.is_hidden() {
            return;
        }
        let rate = tokens as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let mut msg = format!("{:.0} tok/s", rate);
        for m in metrics {
            msg.push_str(&format!(
                " | loss {:.4} L0 {:.1} EV {:.3} dead {}",
                m.loss, m.l0, m.explained_variance, m.dead
            ));
        }
        self.bar.set_position(step as u64);
        self.bar.set_message(msg);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish();
    }
}
