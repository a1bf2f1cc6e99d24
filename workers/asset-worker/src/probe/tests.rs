//! The probe against files written by real encoders (see [`crate::corpus`]).

use super::*;
use crate::corpus;

fn limits() -> ProbeLimits {
    ProbeLimits {
        max_pixels: 50_000_000,
        deadline: None,
    }
}

fn ok(bytes: &[u8]) -> ImageFacts {
    probe(bytes, &limits()).unwrap_or_else(|e| panic!("probe failed: {e}"))
}

#[test]
fn png_8_and_16_bit() {
    let facts = ok(&corpus::png_rgb8(64, 48, 1));
    assert_eq!(facts.format, Format::Png);
    assert_eq!((facts.width, facts.height), (Some(64), Some(48)));
    assert_eq!(
        (facts.color_type.as_deref(), facts.bit_depth),
        (Some("rgb"), Some(8))
    );
    assert_eq!(facts.has_alpha, Some(false));
    assert_eq!(facts.phash.as_ref().map(String::len), Some(16));
    assert!(facts.thumbhash.is_some());
    assert!(!facts.dominant_colors.is_empty());
    let lum = facts.avg_luminance.unwrap();
    assert!((0.0..=1.0).contains(&lum));

    let facts = ok(&corpus::png_rgba16(40, 30, 2));
    assert_eq!(
        (facts.color_type.as_deref(), facts.bit_depth),
        (Some("rgba"), Some(16))
    );
    assert_eq!(facts.has_alpha, Some(true));
}

#[test]
fn jpeg_with_exif() {
    let bytes = corpus::jpeg_with_exif(80, 60, 4, &corpus::ExifFields::default());
    let facts = ok(&bytes);
    assert_eq!(facts.format, Format::Jpeg);
    assert_eq!((facts.width, facts.height), (Some(80), Some(60)));
    assert_eq!(
        (facts.color_type.as_deref(), facts.bit_depth),
        (Some("rgb"), Some(8))
    );
    let exif = facts.exif.expect("EXIF read");
    assert_eq!(exif.orientation, Some(6));
    assert_eq!(exif.make.as_deref(), Some("Canon"));
    assert_eq!(exif.model.as_deref(), Some("Canon EOS R5"));
    assert_eq!(
        exif.captured_at.as_deref(),
        Some("2024-05-01T10:20:30+09:00")
    );
    let gps = exif.gps.expect("GPS read");
    assert!((gps.latitude - 37.5665).abs() < 1e-4, "{gps:?}");
    assert!((gps.longitude - 126.978).abs() < 1e-4, "{gps:?}");
    assert_eq!(gps.altitude_m, Some(38.5));
    assert_eq!(facts.file_size, bytes.len() as u64);
    assert_eq!(facts.sha256, hash::sha256_hex(&bytes));

    let south_west = corpus::ExifFields {
        latitude: (-33, 52, 4.0),
        longitude: (-70, 40, 0.0),
        altitude_m: -12.0,
        ..Default::default()
    };
    let gps = ok(&corpus::jpeg_with_exif(16, 16, 1, &south_west))
        .exif
        .unwrap()
        .gps
        .unwrap();
    assert!(gps.latitude < -33.0 && gps.longitude < -70.0, "{gps:?}");
    assert_eq!(gps.altitude_m, Some(-12.0));
    assert_eq!(ok(&corpus::jpeg(16, 16, 1, 80)).exif, None);
}

#[test]
fn animated_gif() {
    let facts = ok(&corpus::gif_animated(24, 16, 4));
    assert_eq!(facts.format, Format::Gif);
    assert_eq!((facts.width, facts.height), (Some(24), Some(16)));
    let animation = facts.animation.unwrap();
    assert_eq!(animation.frames, 4);
    assert_eq!(animation.loop_count, Some(0));
    assert_eq!(animation.duration_ms, 400);
}

#[test]
fn webp_tiff_bmp() {
    for (bytes, format) in [
        (corpus::webp(33, 21, 1), Format::Webp),
        (corpus::tiff(33, 21, 1), Format::Tiff),
        (corpus::bmp(33, 21, 1), Format::Bmp),
    ] {
        let facts = ok(&bytes);
        assert_eq!(facts.format, format);
        assert_eq!(
            (facts.width, facts.height),
            (Some(33), Some(21)),
            "{format:?}"
        );
        assert!(facts.phash.is_some(), "{format:?}");
    }
}

#[test]
fn exr_channels_and_layers() {
    let facts = ok(&corpus::exr_layers(32, 16));
    assert_eq!(facts.format, Format::Exr);
    assert_eq!((facts.width, facts.height), (Some(32), Some(16)));
    let exr = facts.exr.unwrap();
    assert_eq!(exr.parts, 1);
    let names: Vec<&str> = exr.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, corpus::EXR_CHANNELS);
    assert_eq!(exr.layers, ["", "diffuse", "normal"]);
    assert_eq!(exr.channels[0].sample_type, "f32");
    assert_eq!(exr.channels[5].sample_type, "f16");
    assert_eq!(facts.bit_depth, Some(32));
    assert!(facts.avg_luminance.is_some());
}

#[test]
fn svg_from_view_box() {
    let facts = ok(&corpus::svg(300, 150));
    assert_eq!(facts.format, Format::Svg);
    assert_eq!((facts.width, facts.height), (Some(300), Some(150)));
    assert_eq!(facts.phash, None);
}

#[test]
fn near_duplicates_share_a_phash() {
    let a = ok(&corpus::png_rgb8(200, 150, 9)).phash.unwrap();
    let b = ok(&corpus::jpeg(400, 300, 9, 70)).phash.unwrap();
    let c = ok(&corpus::png_rgb8(200, 150, 1)).phash.unwrap();
    let near = hash::phash_distance(&a, &b).unwrap();
    let far = hash::phash_distance(&a, &c).unwrap();
    assert!(near <= 10, "resized JPEG copy differs in {near} bits");
    assert!(far > near, "different picture differs in {far} bits only");
}

#[test]
fn bad_files_are_rejected_with_their_reason() {
    let jpeg = corpus::jpeg(64, 64, 1, 90);
    let png = corpus::png_rgb8(64, 64, 1);
    let gif = corpus::gif_animated(8, 8, 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "unsupported"),
        ("text", b"just some text".to_vec(), "unsupported"),
        (
            "jpeg cut",
            corpus::truncated(&jpeg, jpeg.len() / 2),
            "truncated",
        ),
        (
            "png cut",
            corpus::truncated(&png, png.len() / 2),
            "truncated",
        ),
        (
            "gif cut",
            corpus::truncated(&gif, gif.len() - 3),
            "truncated",
        ),
        (
            "webp cut",
            corpus::truncated(&corpus::webp(32, 32, 1), 40),
            "truncated",
        ),
        ("png garbage", corpus::corrupted(&png, 40, 200), "corrupt"),
        (
            "exr cut",
            corpus::truncated(&corpus::exr_layers(16, 16), 30),
            "truncated",
        ),
        ("bomb", corpus::png_claiming(100_000, 100_000), "too_large"),
        (
            "svg cut",
            corpus::truncated(&corpus::svg(10, 10), 60),
            "truncated",
        ),
    ];
    for (name, bytes, kind) in cases {
        match probe(&bytes, &limits()) {
            Ok(facts) => panic!("{name}: accepted as {facts:?}"),
            Err(e) => assert_eq!(e.kind(), kind, "{name}: {e}"),
        }
    }
}

#[test]
fn deadline_in_the_past_times_out() {
    let limits = ProbeLimits {
        max_pixels: 1 << 30,
        deadline: Some(Instant::now() - Duration::from_millis(1)),
    };
    let err = probe(&corpus::png_rgb8(8, 8, 1), &limits).unwrap_err();
    assert_eq!(err.kind(), "timeout");
}

#[test]
fn garbage_never_panics() {
    let seeds = [
        corpus::jpeg(32, 32, 1, 80),
        corpus::png_rgba16(16, 16, 1),
        corpus::gif_animated(8, 8, 2),
        corpus::webp(16, 16, 1),
        corpus::tiff(16, 16, 1),
        corpus::bmp(16, 16, 1),
        corpus::exr_layers(8, 8),
    ];
    for seed in &seeds {
        for step in [7usize, 31, 97] {
            let mut at = 0;
            while at < seed.len() {
                let _ = probe(&corpus::corrupted(seed, at, 9), &limits());
                let _ = probe(&corpus::truncated(seed, at), &limits());
                at += step * 3;
            }
        }
    }
}

#[test]
fn apng_frames_loops_and_transparency() {
    let facts = ok(&corpus::apng(16, 12, 3, 120, 2));
    assert_eq!(facts.format, Format::Png);
    let animation = facts.animation.expect("APNG animation");
    assert_eq!(
        (
            animation.frames,
            animation.loop_count,
            animation.duration_ms
        ),
        (3, Some(2), 360)
    );
    assert_eq!(
        facts.transparent,
        Some(true),
        "the first frame is half transparent"
    );
    assert_eq!(facts.interlaced, Some(false));
    // A plain PNG is no animation; an opaque alpha channel is no transparency.
    let facts = ok(&corpus::png_rgb8(8, 8, 1));
    assert_eq!((facts.animation, facts.transparent), (None, Some(false)));
}

#[test]
fn interlaced_png_and_baseline_jpeg() {
    let facts = ok(&corpus::png_interlaced_pixel());
    assert_eq!(facts.interlaced, Some(true));
    assert_eq!((facts.width, facts.height), (Some(1), Some(1)));
    let facts = ok(&corpus::jpeg(32, 16, 1, 90));
    assert_eq!(facts.progressive, Some(false));
    assert_eq!(facts.interlaced, None);
}

#[test]
fn animated_webp_frames_loops_and_duration() {
    let facts = ok(&corpus::webp_animated(10, 8, 4, 50, 3));
    assert_eq!(facts.format, Format::Webp);
    let animation = facts.animation.expect("WebP animation");
    assert_eq!(
        (
            animation.frames,
            animation.loop_count,
            animation.duration_ms
        ),
        (4, Some(3), 200)
    );
    assert_eq!((facts.width, facts.height), (Some(10), Some(8)));
    assert!(facts.phash.is_some(), "the first frame is enriched");
    // A still WebP has none.
    assert_eq!(ok(&corpus::webp(10, 8, 1)).animation, None);
}

#[test]
fn multipage_tiff_counts_pages_and_enriches_the_first() {
    let facts = ok(&corpus::tiff_pages(24, 16, 3));
    assert_eq!(facts.pages, Some(3));
    assert_eq!((facts.width, facts.height), (Some(24), Some(16)));
    assert!(facts.thumbhash.is_some());
    assert_eq!(ok(&corpus::tiff(24, 16, 1)).pages, Some(1));
}

#[test]
fn display_size_follows_the_exif_orientation() {
    // Orientation 6: stored 80×60, shown 60×80.
    let bytes = corpus::jpeg_with_exif(80, 60, 4, &corpus::ExifFields::default());
    let facts = ok(&bytes);
    assert_eq!((facts.width, facts.height), (Some(80), Some(60)));
    assert_eq!(
        (facts.display_width, facts.display_height),
        (Some(60), Some(80))
    );
    let facts = ok(&corpus::jpeg(80, 60, 4, 90));
    assert_eq!(
        (facts.display_width, facts.display_height),
        (Some(80), Some(60))
    );
}

#[test]
fn jpeg_xmp_iptc_and_icc() {
    let facts = ok(&corpus::jpeg_with_metadata(40, 30, "CMYK"));
    let xmp = facts.xmp.expect("XMP read");
    assert_eq!(xmp.keywords, ["sunset", "seoul", "노을"]);
    assert_eq!(xmp.title.as_deref(), Some("Sunset over Seoul"));
    let iptc = facts.iptc.expect("IPTC read");
    assert_eq!(iptc.keywords, ["sunset", "tower"]);
    assert_eq!(iptc.title.as_deref(), Some("Hero shot"));
    let icc = facts.icc.expect("ICC read");
    assert_eq!(icc.description.as_deref(), Some("Test profile"));
    assert_eq!(icc.color_space.as_deref(), Some("CMYK"));
    assert_eq!(facts.cmyk, Some(true), "a CMYK profile is flagged");
    let facts = ok(&corpus::jpeg_with_metadata(40, 30, "RGB"));
    assert_eq!(facts.cmyk, Some(false));
    assert_eq!(facts.icc.unwrap().color_space.as_deref(), Some("RGB"));
    // None of it in a plain file.
    let facts = ok(&corpus::jpeg(40, 30, 1, 90));
    assert_eq!((facts.xmp, facts.iptc, facts.icc), (None, None, None));
}

#[test]
fn png_xmp() {
    let facts = ok(&corpus::png_with_xmp(12, 10));
    let xmp = facts.xmp.expect("XMP read from iTXt");
    assert_eq!(xmp.creator, ["Kim Minji"]);
    assert_eq!(xmp.rights.as_deref(), Some("CC BY 4.0"));
}

/// The statistics of a JPEG come from a reduced-scale decode ([`jpeg_reduced`]); they stay
/// within these tolerances of the same statistics computed from a full decode (README, "Asset
/// statistics from a reduced decode"): the 32×32 sample grid within 3 per channel on average
/// (0–255) and 32 in any cell (where an edge crosses it), average luminance within 0.01, pHash within 8 of 64 bits, the
/// full decode's largest dominant colour within 24 (RGB distance) of one of the reduced
/// decode's, whose share is within 0.1 of its own.
#[test]
fn reduced_jpeg_statistics_match_a_full_decode() {
    let grey = |w, h, seed| {
        let luma = image::DynamicImage::ImageRgb8(corpus::picture(w, h, seed)).to_luma8();
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&luma)
            .unwrap();
        out
    };
    let files = [
        ("200x150 q90", corpus::jpeg(200, 150, 1, 90)),
        ("640x480 q85", corpus::jpeg(640, 480, 2, 85)),
        ("1600x1200 q85", corpus::jpeg(1600, 1200, 3, 85)),
        ("3000x2000 q75", corpus::jpeg(3000, 2000, 4, 75)),
        ("1024x4000 q92", corpus::jpeg(1024, 4000, 5, 92)),
        ("97x61 q80", corpus::jpeg(97, 61, 6, 80)),
        ("grey 1800x1200", grey(1800, 1200, 7)),
    ];
    for (name, bytes) in files {
        let full = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
        let (w, h) = (full.width(), full.height());
        let Some(reduced) = jpeg_reduced(&bytes, &limits()) else {
            assert!(w.max(h) < 2 * REDUCED_SIDE, "{name}: not reduced");
            continue;
        };
        // The smallest scale (1/8, 1/4 or 1/2) that keeps REDUCED_SIDE pixels along one axis.
        let (long, reduced_long) = (w.max(h), reduced.width().max(reduced.height()));
        assert!(
            reduced_long >= REDUCED_SIDE
                && (reduced_long < 2 * REDUCED_SIDE || long / reduced_long == 8),
            "{name}: decoded at {}x{}",
            reduced.width(),
            reduced.height()
        );

        let grid = |p: &image::DynamicImage| {
            color::sample(p, hash::PHASH_GRID as u32, hash::PHASH_GRID as u32)
        };
        let (a, b) = (grid(&full), grid(&reduced));
        let diffs: Vec<u32> = a
            .rgba
            .iter()
            .zip(&b.rgba)
            .map(|(x, y)| u32::from(x.abs_diff(*y)))
            .collect();
        let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
        let worst = diffs.iter().copied().max().unwrap();

        let mut expected = ok(&bytes);
        statistics(&full, (w, h), &mut expected);
        let got = ok(&bytes);
        let luminance = (expected.avg_luminance.unwrap() - got.avg_luminance.unwrap()).abs();
        let phash = hash::phash_distance(
            expected.phash.as_deref().unwrap(),
            got.phash.as_deref().unwrap(),
        )
        .unwrap();
        let rgb = |hex: &str| -> [f64; 3] {
            let v = u32::from_str_radix(&hex[1..], 16).unwrap();
            [(v >> 16) as f64, ((v >> 8) & 255) as f64, (v & 255) as f64]
        };
        // The full decode's largest colour, and the nearest of the reduced decode's colours.
        let top = &expected.dominant_colors[0];
        let (colour, share) = got
            .dominant_colors
            .iter()
            .map(|g| {
                let (a, b) = (rgb(&top.hex), rgb(&g.hex));
                let d = (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt();
                (d, (top.share - g.share).abs())
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        eprintln!(
            "{name}: grid mean {mean:.2} worst {worst}, luminance {luminance:.4}, pHash {phash} bits, \
             top colour {colour:.1} share {share:.3}, thumbhash {} vs {}",
            expected.thumbhash.as_deref().unwrap(),
            got.thumbhash.as_deref().unwrap()
        );
        assert!(
            mean <= 3.0 && worst <= 32,
            "{name}: grid mean {mean:.2}, worst {worst}"
        );
        assert!(
            luminance <= 0.01,
            "{name}: luminance differs by {luminance}"
        );
        assert!(phash <= 8, "{name}: pHash differs in {phash} bits");
        assert!(
            colour <= 24.0 && share <= 0.1,
            "{name}: top colour {colour}, share {share}"
        );
    }
}
