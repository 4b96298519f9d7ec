//! Figures are real PNG and SVG files with the labels they were given.

use auto_hook_analysis::{Axis, Heatmap, Labelled, LinePlot};
use candle_core::{Device, Tensor};

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("auto_hook_figures_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_heatmap_is_written_as_png_and_svg_with_its_token_labels() {
    let values = Tensor::new(&[[0.5f32, -1.0, 2.0], [0.0, 1.5, -0.25]], &Device::Cpu).unwrap();
    let grid = Labelled::new(
        values,
        vec![
            Axis::indices("layer", 2),
            Axis::new("pos", vec!["<bos>".into(), " Paris".into(), " is".into()]),
        ],
    )
    .unwrap();
    let dir = out_dir("heatmap");
    let map = Heatmap::from_labelled(&grid, "restored logit difference").unwrap();
    map.write(dir.join("map.png")).unwrap();
    map.write(dir.join("map.svg")).unwrap();
    let png = std::fs::read(dir.join("map.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(dir.join("map.svg")).unwrap();
    for label in ["Paris", "restored logit difference", "layer", "pos"] {
        assert!(svg.contains(label), "the SVG lacks `{label}`");
    }
    // Six cells, each a filled rectangle of its own colour: the largest value is red.
    assert!(
        svg.contains("#B2182B"),
        "the largest value is not drawn in the top colour"
    );
    let err = map.write(dir.join("map.jpg")).unwrap_err().to_string();
    assert!(err.contains(".png or .svg"), "{err}");
}

#[test]
fn a_line_plot_has_a_legend_entry_per_series_and_rejects_ragged_series() {
    let dir = out_dir("lines");
    let mut plot = LinePlot {
        title: "logit lens".into(),
        x: (0..4).map(|l| format!("L{l}")).collect(),
        x_name: "layer".into(),
        y_name: "probability".into(),
        series: vec![
            ("Paris".into(), vec![0.0, 0.1, 0.5, 0.9]),
            ("Rome".into(), vec![0.0, 0.2, 0.1, 0.05]),
        ],
    };
    plot.write(dir.join("lens.svg")).unwrap();
    plot.write(dir.join("lens.png")).unwrap();
    let svg = std::fs::read_to_string(dir.join("lens.svg")).unwrap();
    assert!(svg.contains("Paris") && svg.contains("Rome") && svg.contains("L3"));
    plot.series[1].1.pop();
    assert!(plot.write(dir.join("bad.svg")).is_err());
}
