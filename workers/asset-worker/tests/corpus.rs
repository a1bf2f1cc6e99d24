//! Real image files, as users upload them: the test images and data sets shipped in the source
//! distributions of Pillow, pillow-heif and scikit-image (`scripts/reference/setup-images`
//! fetches them, pinned by SHA-256, into `.cache/image-corpus`). For every file an independent
//! decoder (Pillow with pillow-heif, `scripts/reference/image_facts.py`) decodes in a format the
//! worker supports, the worker's probe must agree on the format, the size, the frames or pages
//! and the EXIF orientation — or refuse it only for being beyond `--max-pixels`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use asset_worker::probe::{probe, Format, ImageFacts, ProbeError, ProbeLimits};
use serde_json::Value;

const MAX_PIXELS: u64 = 16384 * 8192;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// The formats Pillow names that the worker supports, as the worker names them.
fn ours(pillow: &str) -> Option<&'static [Format]> {
    Some(match pillow {
        "JPEG" | "MPO" => &[Format::Jpeg],
        "PNG" => &[Format::Png],
        "GIF" => &[Format::Gif],
        "WEBP" => &[Format::Webp],
        "TIFF" => &[Format::Tiff],
        "BMP" | "DIB" => &[Format::Bmp],
        // pillow-heif says HEIF for every brand it opens.
        "HEIF" => &[Format::Heic, Format::Heif, Format::Avif],
        "AVIF" => &[Format::Avif],
        _ => return None,
    })
}

/// Frames as Pillow counts them: an animation's (plus an APNG's default image when it is not
/// one of them), a TIFF's pages, a HEIF's top-level images; 1 otherwise.
fn frames(facts: &ImageFacts) -> u64 {
    if let Some(animation) = &facts.animation {
        let default_image = animation.separate_default_image == Some(true);
        return u64::from(animation.frames) + u64::from(default_image);
    }
    facts.pages.map_or(1, u64::from)
}

/// Files where Pillow and the worker disagree for a reason that is not a worker bug, each
/// with the reason (the first entry whose prefix matches counts). Every entry must still
/// disagree: a fixed one is taken off the list.
const KNOWN: &[(&str, &str)] = &[
    // TIFFs whose structure the decoder refuses (a TIFF it merely cannot decode the pixels of
    // is reported from its first IFD, with `undecoded` saying why).
    (
        "pillow/Tests/images/multipage_single_frame_loop.tiff",
        "the IFD chain loops; Pillow stops at the loop",
    ),
    (
        "pillow/Tests/images/multipage_multiple_frame_loop.tiff",
        "the IFD chain loops, so no header is read either; Pillow stops at the loop",
    ),
    (
        "pillow/Tests/images/old-style-jpeg-compression",
        "old-style JPEG-in-TIFF is not decoded",
    ),
    (
        "pillow/Tests/images/g4-fillorder-test.tif",
        "FillOrder 2 Fax4 TIFF is not decoded",
    ),
    (
        "pillow/Tests/images/tiff_wrong_bits_per_sample_2.tiff",
        "TIFF tags contradict the data; Pillow guesses",
    ),
    (
        "pillow/Tests/images/bmp/q/pal8os2v2",
        "OS/2 2.x bitmap headers are not decoded",
    ),
    // Damaged files Pillow decodes leniently and the worker reports as damaged.
    (
        "pillow/Tests/images/bmp/b/",
        "the BMP test suite's invalid files",
    ),
    (
        "pillow/Tests/images/broken_data_stream.png",
        "CRC mismatch in IDAT (Pillow ignores CRCs)",
    ),
    (
        "pillow/Tests/images/truncated_end_chunk.png",
        "the last chunk is cut short",
    ),
    (
        "pillow/Tests/images/truncated_app14.jpg",
        "an APP14 segment shorter than its length",
    ),
    (
        "pillow/Tests/images/no_palette.gif",
        "a frame without any colour table",
    ),
    (
        "pillow/Tests/images/test_extents_transparency.gif",
        "a block the GIF grammar does not have",
    ),
    (
        "pillow-heif/tests/images/heif_truncated/truncated.heic",
        "the mdat box is one byte short",
    ),
    // Malformed APNG sequences (the APNG test suite), counted differently by design.
    (
        "pillow/Tests/images/apng/chunk_no_fctl.png",
        "an animation without fcTL chunks",
    ),
    (
        "pillow/Tests/images/apng/syntax_num_frames",
        "acTL's frame count contradicts the fcTL chunks",
    ),
    (
        "pillow/Tests/images/apng/chunk_actl_after_idat.png",
        "acTL after the image data: Pillow ignores the animation",
    ),
    (
        "pillow/Tests/images/apng/chunk_multi_actl.png",
        "two acTL chunks: Pillow ignores the animation",
    ),
    (
        "pillow/Tests/images/apng/chunk_repeat_fctl.png",
        "an fcTL repeated: Pillow counts it once",
    ),
    // EXIF blocks Pillow's reader accepts and the worker's (kamadak-exif) refuses, and EXIF
    // where the worker does not look for it.
    (
        "pillow/Tests/images/exif-72dpi-int.jpg",
        "an EXIF IFD Pillow reads leniently",
    ),
    (
        "pillow/Tests/images/exif-ifd-offset.jpg",
        "an EXIF IFD offset past the block",
    ),
    (
        "pillow/Tests/images/hopper_bad_exif.jpg",
        "a damaged EXIF block",
    ),
    (
        "pillow/Tests/images/exif.png",
        "an eXIf chunk the PNG decoder does not return",
    ),
    ("pillow/Tests/images/exif_text.png", "EXIF in a tEXt chunk"),
    (
        "pillow/Tests/images/exif_imagemagick",
        "EXIF as ImageMagick's hex text chunk",
    ),
    (
        "pillow/Tests/images/hopper_bigtiff.tif",
        "BigTIFF IFDs are not read for EXIF",
    ),
    // Other formats' cousins.
    (
        "pillow/Tests/images/clipboard.dib",
        "a headerless DIB (the clipboard format)",
    ),
    // HEIF files whose items contradict each other; libheif resolves them its own way.
    (
        "pillow-heif/tests/images/heif_other/invalid_id.heic",
        "the primary item is declared a thumbnail of another image; libheif shows that one",
    ),
];

fn known(shown: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(prefix, _)| shown.starts_with(prefix))
        .map(|(_, reason)| *reason)
}

/// How the worker's facts differ from Pillow's, if they do.
fn differences(reference: &Value, facts: &ImageFacts) -> Vec<String> {
    let mut out = Vec::new();
    let format = reference["format"].as_str().unwrap_or_default();
    if !ours(format).is_some_and(|f| f.contains(&facts.format)) {
        out.push(format!(
            "format {} vs Pillow's {format}",
            facts.format.name()
        ));
    }
    let size = (
        reference["width"].as_u64().unwrap_or(0),
        reference["height"].as_u64().unwrap_or(0),
    );
    let pair =
        |w: Option<u32>, h: Option<u32>| (u64::from(w.unwrap_or(0)), u64::from(h.unwrap_or(0)));
    let stored = pair(facts.width, facts.height);
    let shown = pair(facts.display_width, facts.display_height);
    let orientation = reference["orientation"].as_u64();
    // Pillow's sizes: pillow-heif's HEIF as shown (the container's rotation and crop
    // applied); its AVIF plugin's as stored (the rotation becomes an EXIF orientation); a TIFF
    // it reads through libtiff's RGBA interface as shown; everything else as stored.
    let size_matches = match format {
        "HEIF" => shown == size,
        "TIFF" => stored == size || (shown == size && orientation.is_some_and(|o| o >= 5)),
        _ => stored == size,
    };
    if !size_matches {
        out.push(format!(
            "size {stored:?} (shown {shown:?}) vs Pillow's {size:?}"
        ));
    }
    let pillow_frames = reference["frames"].as_u64().unwrap_or(1);
    // pillow-heif counts a HEIF's top-level images, not the frames of a sequence track.
    let ours_frames = match format {
        "HEIF" => facts.pages.map_or(1, u64::from),
        _ => frames(facts),
    };
    if ours_frames != pillow_frames {
        out.push(format!("frames {ours_frames} vs Pillow's {pillow_frames}"));
    }
    // Pillow reads the orientation from EXIF, else from XMP (`tiff:Orientation`); for HEIF
    // and AVIF it stands for the container's rotation instead (pillow-heif sets 1 once it
    // applied it; the AVIF plugin derives it from irot and imir), compared above as sizes.
    let ours_orientation = facts
        .exif
        .as_ref()
        .and_then(|e| e.orientation)
        .or_else(|| facts.xmp.as_ref().and_then(|x| x.orientation))
        .map(u64::from);
    let container_rotation = matches!(format, "HEIF" | "AVIF");
    if orientation.is_some() && !container_rotation && ours_orientation != orientation {
        out.push(format!(
            "EXIF orientation {ours_orientation:?} vs Pillow's {orientation:?}"
        ));
    }
    out
}

/// Every JPEG of the corpus: the statistics from the reduced-scale decode the worker uses stay
/// within the documented tolerances of those from a full decode (README, "Asset statistics
/// from a reduced decode"): average luminance within 0.01, pHash within 8 of 64 bits, the
/// full decode's largest dominant colour within 24 (RGB distance) of one of the reduced
/// decode's, whose share is within 0.1 of its own.
#[test]
fn real_jpegs_reduced_statistics_match_a_full_decode() {
    let corpus = repo_root().join(".cache/image-corpus");
    assert!(
        corpus.is_dir(),
        "no image corpus at {}: run scripts/reference/setup-images",
        corpus.display()
    );
    let mut files = Vec::new();
    files_under(&corpus, &mut files);
    files.sort();
    let limits = ProbeLimits {
        max_pixels: MAX_PIXELS,
        deadline: None,
    };
    let rgb = |hex: &str| -> [f64; 3] {
        let v = u32::from_str_radix(&hex[1..], 16).unwrap();
        [
            f64::from(v >> 16),
            f64::from((v >> 8) & 255),
            f64::from(v & 255),
        ]
    };
    let (mut compared, mut worst_phash, mut worst_luminance) = (0, 0, 0.0f64);
    let (mut worst_colour, mut worst_share) = (0.0f64, 0.0f64);
    let mut reducible = 0;
    let mut failures = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let Ok(got) = probe(&bytes, &limits) else {
            continue;
        };
        if got.format != Format::Jpeg || got.phash.is_none() {
            continue;
        }
        let expected = asset_worker::probe::probe_with_full_jpeg_decode(&bytes, &limits).unwrap();
        compared += 1;
        // Pictures under 128 pixels on both sides are decoded in full anyway.
        reducible += usize::from(got.width.max(got.height).unwrap_or(0) >= 128);
        let luminance = (expected.avg_luminance.unwrap() - got.avg_luminance.unwrap()).abs();
        let phash = asset_worker::probe::hash::phash_distance(
            expected.phash.as_deref().unwrap(),
            got.phash.as_deref().unwrap(),
        )
        .unwrap();
        // The full decode's largest colour, and the nearest of the reduced decode's colours.
        let top = &expected.dominant_colors[0];
        let distance = |a: [f64; 3], b: [f64; 3]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let (colour, share) = got
            .dominant_colors
            .iter()
            .map(|g| {
                (
                    distance(rgb(&top.hex), rgb(&g.hex)),
                    (top.share - g.share).abs(),
                )
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        worst_phash = worst_phash.max(phash);
        worst_luminance = worst_luminance.max(luminance);
        worst_colour = worst_colour.max(colour);
        worst_share = worst_share.max(share);
        if luminance > 0.01 || phash > 8 || colour > 24.0 || share > 0.1 {
            failures.push(format!(
                "{}: luminance {luminance:.4}, pHash {phash} bits, top colour {colour:.1}, share {share:.3}",
                file.display()
            ));
        }
    }
    eprintln!(
        "{compared} JPEGs ({reducible} of at least 128 pixels on a side): reduced vs full decode, worst pHash {worst_phash} bits, worst \
         luminance {worst_luminance:.4}, worst top colour {worst_colour:.1}, share {worst_share:.3}"
    );
    assert!(
        reducible >= 20,
        "only {reducible} JPEGs to reduce in the corpus"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn real_image_files_agree_with_pillow() {
    let corpus = repo_root().join(".cache/image-corpus");
    assert!(
        corpus.is_dir(),
        "no image corpus at {}: run scripts/reference/setup-images",
        corpus.display()
    );
    let mut files = Vec::new();
    files_under(&corpus, &mut files);
    files.sort();
    let listing = std::env::temp_dir().join(format!("image-corpus-{}.txt", std::process::id()));
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    std::fs::write(&listing, names.join("\n")).unwrap();
    let run = std::process::Command::new(repo_root().join(".cache/imgvenv/bin/python"))
        .arg(repo_root().join("scripts/reference/image_facts.py"))
        .arg(format!("@{}", listing.display()))
        .output()
        .expect("run Pillow (scripts/reference/setup-images)");
    assert!(
        run.status.success(),
        "image_facts.py: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let references: HashMap<String, Value> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            (value["file"].as_str().unwrap().to_owned(), value)
        })
        .collect();
    assert_eq!(
        references.len(),
        files.len(),
        "Pillow's answer for every file"
    );

    let limits = ProbeLimits {
        max_pixels: MAX_PIXELS,
        deadline: None,
    };
    let (mut compared, mut too_large, mut other_formats, mut pillow_refuses) = (0, 0, 0, 0);
    let mut by_format: HashMap<&'static str, usize> = HashMap::new();
    let mut mismatches = Vec::new();
    let mut known_seen = std::collections::HashSet::new();
    for (file, name) in files.iter().zip(&names) {
        let reference = &references[name];
        let bytes = std::fs::read(file).unwrap();
        let result = probe(&bytes, &limits);
        let shown = name.split("image-corpus/").nth(1).unwrap_or(name);
        if !reference["load"].as_bool().unwrap_or(false) {
            pillow_refuses += 1;
            continue;
        }
        if ours(reference["format"].as_str().unwrap_or_default()).is_none() {
            other_formats += 1;
            continue;
        }
        let mut mismatch = |text: String| match known(shown) {
            Some(reason) => {
                println!("known difference, {reason}: {text}");
                known_seen.insert(KNOWN.iter().position(|k| shown.starts_with(k.0)).unwrap());
            }
            None => mismatches.push(text),
        };
        match result {
            Ok(facts) => {
                compared += 1;
                *by_format.entry(facts.format.name()).or_default() += 1;
                let mut found = differences(reference, &facts);
                // What Pillow decodes, the worker decodes too (statistics), unless it says why
                // not (a TIFF its decoder lacks).
                let undecoded_ok = facts.format == Format::Tiff && facts.undecoded.is_some();
                if facts.phash.is_none() && !undecoded_ok {
                    found.push(format!("no picture statistics ({:?})", facts.undecoded));
                }
                if !found.is_empty() {
                    mismatch(format!("{shown}: {}", found.join("; ")));
                }
            }
            Err(ProbeError::TooLarge(_))
                if reference["width"].as_u64().unwrap_or(0)
                    * reference["height"].as_u64().unwrap_or(0)
                    > MAX_PIXELS =>
            {
                too_large += 1;
            }
            Err(e) => mismatch(format!("{shown}: Pillow decodes it, the worker says {e}")),
        }
    }
    let stale: Vec<_> = KNOWN
        .iter()
        .enumerate()
        .filter(|(i, _)| !known_seen.contains(i))
        .map(|(_, (prefix, reason))| format!("{prefix} ({reason})"))
        .collect();
    println!(
        "{} files: {compared} compared ({by_format:?}), {too_large} beyond --max-pixels, \
         {other_formats} in formats the worker does not take, {pillow_refuses} Pillow refuses; \
         {} known differences",
        files.len(),
        known_seen.len()
    );
    assert!(compared >= 700, "only {compared} files compared");
    for format in ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "HEIC", "AVIF"] {
        assert!(
            by_format.get(format).copied().unwrap_or(0) > 0,
            "no {format} compared"
        );
    }
    assert!(
        stale.is_empty(),
        "known differences that no longer occur (take them off KNOWN):\n{}",
        stale.join("\n")
    );
    assert!(
        mismatches.is_empty(),
        "{} of {compared} files differ from Pillow:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// JPEG XL files made from corpus files with Debian's cjxl (`scripts/reference/setup-images`;
/// no package ships JPEG XL test files, and Pillow does not read them): a lossless one has
/// exactly its source's statistics, a lossy one and a recompressed JPEG close ones, an
/// animation its source's frames and loops; a cut-off file is truncated, not a black picture.
#[test]
fn jpeg_xl_files_agree_with_their_sources() {
    let corpus = repo_root().join(".cache/image-corpus");
    let jxl = repo_root().join(".cache/jxl-corpus");
    let sources = std::fs::read_to_string(jxl.join("sources.tsv"))
        .expect("no .cache/jxl-corpus/sources.tsv: run scripts/reference/setup-images");
    let limits = ProbeLimits {
        max_pixels: MAX_PIXELS,
        deadline: None,
    };
    let probe_file = |path: &Path| probe(&std::fs::read(path).unwrap(), &limits).unwrap();
    let mut modes = std::collections::BTreeSet::new();
    for line in sources.lines() {
        let [name, source, mode] = line.split('\t').collect::<Vec<_>>()[..] else {
            panic!("sources.tsv: {line}");
        };
        modes.insert(mode.to_owned());
        let ours = probe_file(&jxl.join(name));
        let original = probe_file(&corpus.join(source));
        assert_eq!(ours.format, Format::Jxl, "{name}");
        assert_eq!(
            (ours.display_width, ours.display_height),
            (original.width, original.height),
            "{name}: size"
        );
        let luminance = (ours.avg_luminance.unwrap() - original.avg_luminance.unwrap()).abs();
        let hex = |f: &ImageFacts| -> Vec<String> {
            f.dominant_colors.iter().map(|s| s.hex.clone()).collect()
        };
        match mode {
            "lossless" => {
                assert_eq!(ours.phash, original.phash, "{name}: pHash");
                assert_eq!(ours.thumbhash, original.thumbhash, "{name}: ThumbHash");
                assert_eq!(hex(&ours), hex(&original), "{name}: colours");
                assert_eq!(ours.transparent, original.transparent, "{name}: alpha");
                assert!(luminance < 1e-9, "{name}: luminance");
            }
            "animation" => {
                let (a, b) = (ours.animation.unwrap(), original.animation.unwrap());
                // The source's first frame has no delay: cjxl folds it into the next one.
                assert_eq!(
                    (a.frames + 1, a.loop_count, a.duration_ms),
                    (b.frames, b.loop_count, b.duration_ms),
                    "{name}: frames, loops and duration"
                );
                assert_eq!(ours.phash, original.phash, "{name}: first frame's pHash");
            }
            // Different decoders and (for orientation 6) the codestream's rotation applied.
            "lossy" | "jpeg" => assert!(luminance <= 0.01, "{name}: luminance {luminance}"),
            other => panic!("unknown mode {other}"),
        }
    }
    assert_eq!(modes.len(), 4, "every mode: {modes:?}");
    let whole = std::fs::read(jxl.join("chelsea.jxl")).unwrap();
    for cut in [20, whole.len() / 3, whole.len() - 10] {
        let err = probe(&whole[..cut], &limits).unwrap_err();
        assert_eq!(err.kind(), "truncated", "cut at {cut}: {err}");
    }
}
