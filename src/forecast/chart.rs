//! A PNG chart of a forecast: the recent history, the point forecast and its interval band,
//! because people and multimodal agents read a chart faster than hundreds of numbers.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Chart size in pixels.
pub const SIZE: (u32, u32) = (960, 480);

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // DejaVu Sans, embedded by the `dejavu` crate: charts render the same everywhere
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draw `history` (unix seconds, value) and the forecast (t, point, lower, upper) as a PNG.
pub fn render(
    title: &str,
    history: &[(i64, f64)],
    forecast: &[(i64, f64, f64, f64)],
) -> Result<Vec<u8>, String> {
    register_font();
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let t0 = history
            .first()
            .map(|p| p.0)
            .or(forecast.first().map(|p| p.0))
            .ok_or("nothing to draw")?;
        let t1 = forecast
            .last()
            .map(|p| p.0)
            .or(history.last().map(|p| p.0))
            .unwrap_or(t0 + 1)
            .max(t0 + 1);
        let values = history
            .iter()
            .map(|p| p.1)
            .chain(forecast.iter().flat_map(|p| [p.2, p.3]));
        let (lo, hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo).abs() * 0.08).max(1e-9);
        let hours = |t: i64| (t - t0) as f64 / 3600.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..hours(t1), (lo - pad)..(hi + pad))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "hours since {}",
                jiff::Timestamp::from_second(t0)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ))
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        let band = RGBColor(66, 133, 244).mix(0.2);
        chart
            .draw_series(std::iter::once(Polygon::new(
                forecast
                    .iter()
                    .map(|p| (hours(p.0), p.3))
                    .chain(forecast.iter().rev().map(|p| (hours(p.0), p.2)))
                    .collect::<Vec<_>>(),
                band.filled(),
            )))
            .map_err(|e| e.to_string())?
            .label("interval")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], band.filled()));
        chart
            .draw_series(LineSeries::new(
                history.iter().map(|p| (hours(p.0), p.1)),
                BLACK.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label("history")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
        let blue = RGBColor(25, 103, 210);
        chart
            .draw_series(LineSeries::new(
                forecast.iter().map(|p| (hours(p.0), p.1)),
                blue.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("forecast")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], blue.stroke_width(2))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or("chart buffer has the wrong size")?;
    let mut png = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut png),
        image::ImageOutputFormat::Png,
    )
    .map_err(|e| e.to_string())?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_png() {
        let history: Vec<(i64, f64)> = (0..288)
            .map(|i| (i * 300, 100.0 + 30.0 * (i as f64 / 20.0).sin()))
            .collect();
        let forecast: Vec<(i64, f64, f64, f64)> =
            (288..312).map(|i| (i * 300, 100.0, 90.0, 110.0)).collect();
        let png = render("checkout requests/s", &history, &forecast).unwrap();
        assert_eq!(&png[..8], &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), SIZE);
        // not blank: the history line is drawn in black somewhere
        let rgb = img.to_rgb8();
        assert!(rgb.pixels().any(|p| p.0 == [0, 0, 0]));
        assert!(render("x", &[], &[]).is_err());
    }
}
