//! The feature-density histogram as a self-contained SVG.

use super::escape_html;

const W: f64 = 640.0;
const H: f64 = 280.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 15.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;
/// Bins per decade of firing frequency.
const PER_DECADE: usize = 5;

/// A histogram of latents by log10 firing frequency (`density`: the fraction of tokens
/// each latent fires on), with latents that never fired as a separate grey bar on the
/// left: one standalone `<svg>` element (usable inline in HTML or as an `.svg` file).
///
/// ```
/// let svg = auto_hook_sae::density_histogram_svg(&[0.0, 0.001, 0.002, 0.05, 0.5], "5 latents");
/// assert!(svg.starts_with("<svg") && svg.contains("never: 1") && svg.ends_with("</svg>\n"));
/// ```
pub fn density_histogram_svg(density: &[f64], title: &str) -> String {
    let never = density.iter().filter(|&&d| d <= 0.0).count();
    let logs: Vec<f64> = density
        .iter()
        .filter(|&&d| d > 0.0)
        .map(|d| d.log10())
        .collect();
    let lo = logs.iter().copied().fold(0f64, f64::min).floor().max(-10.0);
    let decades = (-lo).max(1.0) as usize;
    let n_bins = decades * PER_DECADE;
    let mut bins = vec![0usize; n_bins];
    for l in &logs {
        let i = ((l - lo) * PER_DECADE as f64).floor().max(0.0) as usize;
        bins[i.min(n_bins - 1)] += 1;
    }
    let max = bins.iter().copied().max().unwrap_or(0).max(never).max(1);
    // One slot for the "never" bar, a gap slot, then the bins.
    let slot = (W - LEFT - RIGHT) / (n_bins + 2) as f64;
    let y = |count: usize| H - BOTTOM - (H - TOP - BOTTOM) * count as f64 / max as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    s.push_str(&format!(
        "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n",
        W / 2.0,
        escape_html(title)
    ));
    let bar = |x: f64, count: usize, fill: &str, tip: String| {
        format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\">\
             <title>{tip}</title></rect>\n",
            y(count),
            slot * 0.9,
            H - BOTTOM - y(count)
        )
    };
    s.push_str(&bar(LEFT, never, "#999", format!("never fired: {never}")));
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">never: {never}</text>\n",
        LEFT + slot * 0.45,
        H - BOTTOM + 14.0
    ));
    for (i, &count) in bins.iter().enumerate() {
        let from = lo + i as f64 / PER_DECADE as f64;
        let tip = format!(
            "{count} latents at 10^{from:.1} to 10^{:.1}",
            from + 1.0 / PER_DECADE as f64
        );
        s.push_str(&bar(LEFT + slot * (i + 2) as f64, count, "#e8731a", tip));
    }
    for d in 0..=decades {
        let x = LEFT + slot * (2 + d * PER_DECADE) as f64;
        s.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{0}\" x2=\"{x:.1}\" y2=\"{1}\" stroke=\"#333\"/>\
             <text x=\"{x:.1}\" y=\"{2}\" text-anchor=\"middle\">1e{3}</text>\n",
            H - BOTTOM,
            H - BOTTOM + 5.0,
            H - BOTTOM + 14.0,
            lo as i64 + d as i64
        ));
    }
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#333\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{0}\" stroke=\"#333\"/>\n\
         <text x=\"{2}\" y=\"{3}\" text-anchor=\"end\">{max}</text>\n\
         <text x=\"{2}\" y=\"{0}\" text-anchor=\"end\">0</text>\n\
         <text x=\"{4}\" y=\"{5}\" text-anchor=\"middle\">firing frequency (fraction of tokens, log scale); \
         bars: number of latents</text>\n",
        H - BOTTOM,
        W - RIGHT,
        LEFT - 4.0,
        TOP + 4.0,
        (LEFT + W - RIGHT) / 2.0,
        H - 8.0
    ));
    s.push_str("</svg>\n");
    s
}
