//! Colour statistics of the picture from a small sample grid: average luminance and the
//! dominant colours. Sampling a bounded number of pixels keeps this cheap next to decoding,
//! whatever the image size.

use image::{DynamicImage, GenericImageView};
use serde::Serialize;

/// A small RGBA picture sampled from a decoded image.
#[derive(Clone, Debug)]
pub struct Grid {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// RGBA8, row-major.
    pub rgba: Vec<u8>,
}

/// Most samples averaged per grid cell along each axis.
const SAMPLES_PER_CELL: u32 = 6;

/// Samples `image` into a `width`×`height` grid; each cell is the mean of up to
/// `SAMPLES_PER_CELL`² pixels evenly spread over the area it covers.
pub fn sample(image: &DynamicImage, width: u32, height: u32) -> Grid {
    let (iw, ih) = image.dimensions();
    let (width, height) = (width.max(1), height.max(1));
    let direct: Option<(&[u8], usize)> = match image {
        DynamicImage::ImageRgb8(b) => Some((b.as_raw(), 3)),
        DynamicImage::ImageRgba8(b) => Some((b.as_raw(), 4)),
        DynamicImage::ImageLuma8(b) => Some((b.as_raw(), 1)),
        DynamicImage::ImageLumaA8(b) => Some((b.as_raw(), 2)),
        _ => None,
    };
    let pixel = |x: u32, y: u32| -> [u8; 4] {
        match direct {
            Some((raw, channels)) => {
                let at = (y as usize * iw as usize + x as usize) * channels;
                match channels {
                    3 => [raw[at], raw[at + 1], raw[at + 2], 255],
                    4 => [raw[at], raw[at + 1], raw[at + 2], raw[at + 3]],
                    1 => [raw[at], raw[at], raw[at], 255],
                    _ => [raw[at], raw[at], raw[at], raw[at + 1]],
                }
            }
            None => image.get_pixel(x, y).0,
        }
    };
    let mut rgba = Vec::with_capacity((width * height * 4) as usize);
    for gy in 0..height {
        let (y0, y1) = span(gy, height, ih);
        for gx in 0..width {
            let (x0, x1) = span(gx, width, iw);
            let mut sum = [0u32; 4];
            let mut n = 0u32;
            for y in steps(y0, y1) {
                for x in steps(x0, x1) {
                    let p = pixel(x, y);
                    for c in 0..4 {
                        sum[c] += u32::from(p[c]);
                    }
                    n += 1;
                }
            }
            let n = n.max(1);
            rgba.extend(sum.iter().map(|s| ((s + n / 2) / n) as u8));
        }
    }
    Grid {
        width,
        height,
        rgba,
    }
}

/// The source pixel range `[start, end)` covered by cell `i` of `cells`.
fn span(i: u32, cells: u32, size: u32) -> (u32, u32) {
    let start = (u64::from(i) * u64::from(size) / u64::from(cells)) as u32;
    let end = (u64::from(i + 1) * u64::from(size) / u64::from(cells)) as u32;
    (start, end.max(start + 1).min(size))
}

/// Up to `SAMPLES_PER_CELL` positions evenly spread over `[start, end)`.
fn steps(start: u32, end: u32) -> impl Iterator<Item = u32> {
    let len = end - start;
    let n = len.min(SAMPLES_PER_CELL);
    (0..n).map(move |k| start + (2 * k + 1) * len / (2 * n))
}

/// `grid` averaged into `width`×`height` cells (each the mean of the cells it covers; a
/// larger target repeats cells).
pub fn resample(grid: &Grid, width: u32, height: u32) -> Grid {
    let (width, height) = (width.max(1), height.max(1));
    let mut rgba = Vec::with_capacity((width * height * 4) as usize);
    for gy in 0..height {
        let (y0, y1) = span(gy, height, grid.height);
        for gx in 0..width {
            let (x0, x1) = span(gx, width, grid.width);
            let mut sum = [0u32; 4];
            for y in y0..y1 {
                let row = (y * grid.width) as usize * 4;
                for x in x0..x1 {
                    let at = row + x as usize * 4;
                    for (c, total) in sum.iter_mut().enumerate() {
                        *total += u32::from(grid.rgba[at + c]);
                    }
                }
            }
            let n = (y1 - y0) * (x1 - x0);
            rgba.extend(sum.iter().map(|s| ((s + n / 2) / n) as u8));
        }
    }
    Grid {
        width,
        height,
        rgba,
    }
}

/// Rec. 709 luma of gamma-encoded sRGB, 0–255 scale.
fn luma(r: u8, g: u8, b: u8) -> f32 {
    0.2126 * f32::from(r) + 0.7152 * f32::from(g) + 0.0722 * f32::from(b)
}

/// Luma of every cell (alpha ignored), for the perceptual hash.
pub fn luma_grid(grid: &Grid) -> Vec<f32> {
    grid.rgba
        .chunks_exact(4)
        .map(|p| luma(p[0], p[1], p[2]))
        .collect()
}

/// Mean luma, 0 (black) to 1 (white), weighted by opacity; `None` for a fully transparent
/// picture.
pub fn average_luminance(grid: &Grid) -> Option<f64> {
    let (mut sum, mut weight) = (0f64, 0f64);
    for p in grid.rgba.chunks_exact(4) {
        let a = f64::from(p[3]) / 255.0;
        sum += f64::from(luma(p[0], p[1], p[2])) / 255.0 * a;
        weight += a;
    }
    (weight > 0.0).then(|| round3(sum / weight))
}

/// One dominant colour.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Swatch {
    /// `#rrggbb`.
    pub hex: String,
    /// Fraction of the opaque picture in this colour's bucket, 0–1.
    pub share: f64,
}

/// Up to `max` dominant colours, largest share first: k-means over the opaque cells of the grid
/// (deterministic farthest-point start, a few Lloyd iterations), clusters under 1 % left out.
pub fn dominant_colors(grid: &Grid, max: usize) -> Vec<Swatch> {
    let points: Vec<[f32; 3]> = grid
        .rgba
        .chunks_exact(4)
        .filter(|p| p[3] >= 128)
        .map(|p| [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])])
        .collect();
    if points.is_empty() || max == 0 {
        return Vec::new();
    }
    let distance = |a: &[f32; 3], b: &[f32; 3]| (0..3).map(|c| (a[c] - b[c]).powi(2)).sum::<f32>();
    let mean = points.iter().fold([0f32; 3], |acc, p| {
        [acc[0] + p[0], acc[1] + p[1], acc[2] + p[2]]
    });
    let n = points.len() as f32;
    let mut centers = vec![[mean[0] / n, mean[1] / n, mean[2] / n]];
    while centers.len() < max {
        let (far, d) = points
            .iter()
            .map(|p| {
                centers
                    .iter()
                    .map(|c| distance(p, c))
                    .fold(f32::MAX, f32::min)
            })
            .enumerate()
            .fold(
                (0, 0f32),
                |best, (i, d)| if d > best.1 { (i, d) } else { best },
            );
        if d < 64.0 {
            break; // every cell is within 8 levels of a centre: no further colour to find
        }
        centers.push(points[far]);
    }
    let mut assignment = vec![0usize; points.len()];
    for _ in 0..8 {
        for (slot, p) in assignment.iter_mut().zip(&points) {
            *slot = (0..centers.len())
                .min_by(|&a, &b| distance(p, &centers[a]).total_cmp(&distance(p, &centers[b])))
                .unwrap_or(0);
        }
        let mut sums = vec![([0f32; 3], 0u32); centers.len()];
        for (&k, p) in assignment.iter().zip(&points) {
            let (sum, count) = &mut sums[k];
            for (total, value) in sum.iter_mut().zip(p) {
                *total += value;
            }
            *count += 1;
        }
        for (center, (sum, count)) in centers.iter_mut().zip(&sums) {
            if *count > 0 {
                *center = sum.map(|v| v / *count as f32);
            }
        }
    }
    let mut counts = vec![0u32; centers.len()];
    for &k in &assignment {
        counts[k] += 1;
    }
    let mut swatches: Vec<(u32, [f32; 3])> = counts.into_iter().zip(centers).collect();
    swatches.sort_by_key(|s| std::cmp::Reverse(s.0));
    swatches
        .into_iter()
        .map(|(count, c)| {
            let byte = |v: f32| v.round().clamp(0.0, 255.0) as u8;
            Swatch {
                hex: format!("#{:02x}{:02x}{:02x}", byte(c[0]), byte(c[1]), byte(c[2])),
                share: round3(f64::from(count) / f64::from(points.len() as u32)),
            }
        })
        .filter(|s| s.share >= 0.01)
        .collect()
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn halves_of_two_colours() {
        let img = RgbImage::from_fn(200, 100, |x, _| {
            if x < 150 {
                Rgb([255, 0, 0])
            } else {
                Rgb([255, 255, 255])
            }
        });
        let grid = sample(&DynamicImage::ImageRgb8(img), 40, 20);
        assert_eq!((grid.width, grid.height), (40, 20));
        let colors = dominant_colors(&grid, 5);
        assert_eq!(
            colors[0],
            Swatch {
                hex: "#ff0000".into(),
                share: 0.75
            }
        );
        assert_eq!(
            colors[1],
            Swatch {
                hex: "#ffffff".into(),
                share: 0.25
            }
        );
        let expected = 0.75 * 0.2126 + 0.25;
        assert!((average_luminance(&grid).unwrap() - expected).abs() < 0.002);
    }

    #[test]
    fn resampling_averages_covered_cells() {
        let grid = Grid {
            width: 4,
            height: 2,
            rgba: [
                [0u8, 0, 0, 255],
                [100, 0, 0, 255],
                [0, 200, 0, 255],
                [0, 0, 50, 255],
            ]
            .repeat(2)
            .concat(),
        };
        let half = resample(&grid, 2, 1);
        assert_eq!(half.rgba, vec![50, 0, 0, 255, 0, 100, 25, 255]);
        let same = resample(&grid, 4, 2);
        assert_eq!(same.rgba, grid.rgba);
        let up = resample(&grid, 8, 4);
        assert_eq!((up.width, up.height), (8, 4));
        assert_eq!(&up.rgba[..8], &[0, 0, 0, 255, 0, 0, 0, 255]);
    }

    #[test]
    fn tiny_and_sixteen_bit_images() {
        let img = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            3,
            2,
            Rgb([65535u16, 65535, 65535]),
        ));
        let grid = sample(&img, 32, 32);
        assert_eq!((grid.width, grid.height), (32, 32));
        assert_eq!(average_luminance(&grid), Some(1.0));
    }
}
