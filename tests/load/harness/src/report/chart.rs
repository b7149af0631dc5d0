//! The SVG chart of fan-out completion p99 against stream count.

use std::path::Path;

use plotters::prelude::*;

use super::{fanout_runs, med, sizes, windows};
use crate::suite::Results;

/// Draw the chart of `results` into `path`.
pub fn draw_chart(results: &Results, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let streams = sizes(&results.fanout, |r| r.streams);
    let rates = results.fanout.first().map_or(0, |r| r.windows.len());
    let mut series = Vec::new();
    let mut top = 1.0f64;
    let mut bottom = f64::MAX;
    for (k, &kind) in results.servers.iter().enumerate() {
        for i in 0..rates {
            let points: Vec<(f64, f64)> = streams
                .iter()
                .filter_map(|&n| {
                    let runs = fanout_runs(results, kind, n);
                    med(&windows(&runs, i), |w| w.completion_p99_ms).map(|p| (n as f64, p.max(0.1)))
                })
                .collect();
            let rate = results.fanout.iter().find_map(|r| r.windows.get(i)).map_or(0.0, |w| w.rate);
            top = points.iter().map(|p| p.1).fold(top, f64::max);
            bottom = points.iter().map(|p| p.1).fold(bottom, f64::min);
            series.push((kind, k, i, rate, points));
        }
    }
    let max_streams = streams.iter().copied().max().unwrap_or(1) as f64 * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption("Fan-out completion p99 (publish → last subscriber)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            0f64..max_streams,
            ((bottom.min(top) / 2.0).max(0.1)..top * 3.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("concurrent streams")
        .y_desc("ms (log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()?;
    let palette =
        [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0x2c, 0xa0, 0x2c), RGBColor(0xd6, 0x27, 0x28)];
    for (kind, k, i, rate, points) in series {
        let color = palette[k % palette.len()];
        let style = if i == 0 { color.stroke_width(2) } else { color.mix(0.55).stroke_width(2) };
        let label = format!("{} at {rate} event/s", kind.name());
        let legend = move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 18, y)], style);
        // Solid for the first rate, dashed for the second.
        if i == 0 {
            chart.draw_series(LineSeries::new(points.clone(), style))?.label(label).legend(legend);
        } else {
            chart
                .draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))?
                .label(label)
                .legend(legend);
        }
        if i == 0 {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        } else {
            chart.draw_series(
                points.iter().map(|&p| TriangleMarker::new(p, 5, color.mix(0.55).filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
