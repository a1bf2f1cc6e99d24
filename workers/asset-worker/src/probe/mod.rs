//! What an image file really is, from its bytes alone: format, dimensions, colour type and
//! bit depth, EXIF essentials, ICC presence, hashes, luminance, dominant colours and a
//! placeholder.
//!
//! Pure and synchronous: no file system, no clock other than the deadline it is given. It runs
//! on the worker's rayon pool. Hostile input is expected: every parser is bounded (pixel and
//! allocation limits before any pixel is decoded, node limits for SVG) and nothing panics on
//! bad bytes; failures come back as a [`ProbeError`] whose [`ProbeError::kind`] is a small,
//! fixed set fit for a metric label.
//!
//! Layout: [`format`] sniffs magic numbers; [`gif`], [`openexr`] and [`svg`] read structure the
//! pixel decoder does not report; [`exif`] summarises EXIF; [`color`] samples the decoded
//! picture into a small grid for [`hash`] (pHash), luminance, dominant colours and
//! [`placeholder`] (ThumbHash), all from one pass over the pixels.

pub mod color;
pub mod descriptive;
pub mod exif;
pub mod format;
pub mod gif;
pub mod hash;
pub mod heif;
pub mod jxl;
pub mod openexr;
pub mod placeholder;
pub mod structure;
pub mod svg;

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{ExtendedColorType, ImageDecoder, ImageError, ImageReader};
use serde::Serialize;

pub use format::Format;

/// Bounds on the work one file may cause.
#[derive(Clone, Copy, Debug)]
pub struct ProbeLimits {
    /// Most pixels (width × height) decoded; larger images are refused before decoding.
    pub max_pixels: u64,
    /// Give up (with [`ProbeError::Timeout`]) between stages once this instant has passed.
    pub deadline: Option<Instant>,
}

/// Why a file could not be probed. Each is a property of the file: retrying does not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Not one of the supported formats.
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// The data ends before the format says it should.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The data contradicts the format.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// Dimensions or structure beyond the configured limits (decompression bomb guard).
    #[error("too large: {0}")]
    TooLarge(String),
    /// The file took longer than the per-file timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl ProbeError {
    /// Stable machine-readable reason: `unsupported`, `truncated`, `corrupt`, `too_large`,
    /// `timeout`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeError::Unsupported(_) => "unsupported",
            ProbeError::Truncated(_) => "truncated",
            ProbeError::Corrupt(_) => "corrupt",
            ProbeError::TooLarge(_) => "too_large",
            ProbeError::Timeout(_) => "timeout",
        }
    }
}

/// Everything the bytes of one image say.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageFacts {
    /// Format from the magic number.
    pub format: Format,
    /// Media type of `format`.
    pub mime: &'static str,
    /// Width in pixels (SVG: CSS pixels from width/viewBox; absent if the document has none).
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Colour model of the stored samples: `gray`, `gray_alpha`, `rgb`, `rgba`, `cmyk`,
    /// `indexed`… (absent for SVG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_type: Option<String>,
    /// Bits per channel as stored (16 for a 16-bit PNG, 32 for float EXR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u8>,
    /// Whether the picture has an alpha channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_alpha: Option<bool>,
    /// Size as shown, after the EXIF orientation (5–8 swap width and height).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_width: Option<u32>,
    /// Height as shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_height: Option<u32>,
    /// Whether some pixel is not fully opaque (an alpha channel actually used); decoded
    /// rasters only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent: Option<bool>,
    /// Progressive encoding (JPEG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progressive: Option<bool>,
    /// Interlaced encoding (PNG Adam7, GIF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interlaced: Option<bool>,
    /// Frames, loop count and duration: GIF, APNG and animated WebP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub animation: Option<gif::Animation>,
    /// Pages of a TIFF (the first is the one probed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<u32>,
    /// Parts, channels and layers (OpenEXR only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exr: Option<openexr::ExrLayout>,
    /// viewBox (SVG only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svg: Option<svg::SvgSize>,
    /// EXIF essentials, when the file carries EXIF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exif: Option<exif::ExifSummary>,
    /// Size in bytes of the embedded ICC profile; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icc_profile_bytes: Option<usize>,
    /// The ICC profile's description, colour space and version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icc: Option<descriptive::Icc>,
    /// CMYK: stored samples or ICC colour space (print files, which browsers show poorly).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmyk: Option<bool>,
    /// XMP: Dublin Core fields and the packet itself when small.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xmp: Option<descriptive::Xmp>,
    /// IPTC IIM core fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iptc: Option<descriptive::Iptc>,
    /// Why the picture statistics (hashes, colours, placeholder) are absent, when the
    /// file's structure was read but its pixels were not decoded: HEVC and AV1 pictures, TIFF
    /// colour models and compressions the decoder lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecoded: Option<String>,
    /// Size of the file.
    pub file_size: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// 64-bit DCT perceptual hash, 16 hex digits (see [`hash::phash`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phash: Option<String>,
    /// Mean luma 0–1, opacity-weighted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_luminance: Option<f64>,
    /// Dominant colours, most frequent first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dominant_colors: Vec<color::Swatch>,
    /// ThumbHash placeholder, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbhash: Option<String>,
    /// Time spent decoding pixels (not serialised; for the decode-time histogram).
    #[serde(skip)]
    pub decode_time: Duration,
}

/// How many dominant colours are reported at most.
const MAX_SWATCHES: usize = 5;

/// Probes one file's bytes.
pub fn probe(bytes: &[u8], limits: &ProbeLimits) -> Result<ImageFacts, ProbeError> {
    let format = format::sniff(bytes).ok_or_else(|| {
        let shown: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        ProbeError::Unsupported(if bytes.is_empty() {
            "empty file".to_owned()
        } else {
            format!("unknown signature {shown}")
        })
    })?;
    let mut facts = ImageFacts {
        format,
        mime: format.mime(),
        width: None,
        height: None,
        color_type: None,
        bit_depth: None,
        has_alpha: None,
        display_width: None,
        display_height: None,
        transparent: None,
        progressive: None,
        interlaced: None,
        animation: None,
        pages: None,
        exr: None,
        svg: None,
        exif: None,
        icc_profile_bytes: None,
        icc: None,
        cmyk: None,
        xmp: None,
        iptc: None,
        undecoded: None,
        file_size: bytes.len() as u64,
        sha256: hash::sha256_hex(bytes),
        phash: None,
        avg_luminance: None,
        dominant_colors: Vec::new(),
        thumbhash: None,
        decode_time: Duration::ZERO,
    };
    if format == Format::Svg {
        let size = svg::size(bytes)?;
        facts.width = size.width;
        facts.height = size.height;
        facts.svg = Some(size);
        return Ok(facts);
    }
    match format {
        Format::Jpeg => {
            check_jpeg_end(bytes)?;
            facts.progressive = Some(structure::jpeg_progressive(bytes));
        }
        Format::Png => {
            let png = structure::png(bytes);
            facts.interlaced = Some(png.interlaced);
            facts.animation = png.animation;
        }
        Format::Webp => {
            check_riff_length(bytes)?;
            facts.animation = structure::webp_animation(bytes);
        }
        Format::Gif => {
            facts.animation = Some(gif::walk(bytes)?);
            facts.interlaced = Some(structure::gif_interlaced(bytes));
        }
        Format::Tiff => facts.pages = structure::tiff_pages(bytes),
        Format::Exr => facts.exr = Some(openexr::layout(bytes)?),
        Format::Heic | Format::Avif | Format::Heif => {
            heif_container(bytes, limits, &mut facts)?;
            return Ok(facts);
        }
        _ => {}
    }
    check_deadline(limits)?;
    raster(bytes, format, limits, &mut facts)?;
    Ok(facts)
}

/// Largest metadata item (EXIF, XMP, ICC) copied out of a HEIF container.
const MAX_HEIF_METADATA_BYTES: usize = 4 << 20;

/// HEIC, AVIF and other HEIF files: what the container says (see [`heif`]), then the
/// statistics of the picture libheif decodes.
fn heif_container(
    bytes: &[u8],
    limits: &ProbeLimits,
    facts: &mut ImageFacts,
) -> Result<(), ProbeError> {
    let container = heif::container(bytes, MAX_HEIF_METADATA_BYTES)?;
    within_limits(container.width, container.height, limits)?;
    facts.width = Some(container.width);
    facts.height = Some(container.height);
    let (display_width, display_height) = container.display();
    facts.display_width = Some(display_width);
    facts.display_height = Some(display_height);
    facts.bit_depth = container.bit_depth;
    facts.has_alpha = Some(container.has_alpha);
    facts.color_type = container.channels.map(|channels| {
        match (channels >= 3, container.has_alpha) {
            (true, true) => "rgba",
            (true, false) => "rgb",
            (false, true) => "gray_alpha",
            (false, false) => "gray",
        }
        .to_owned()
    });
    facts.pages = (container.images > 1).then_some(container.images);
    facts.animation = container
        .sequence
        .map(|(frames, duration_ms)| gif::Animation {
            frames,
            loop_count: None,
            duration_ms,
            separate_default_image: None,
        });
    facts.icc_profile_bytes = container.icc.as_ref().map(Vec::len);
    facts.icc = container.icc.as_deref().and_then(descriptive::icc);
    facts.cmyk = Some(
        facts
            .icc
            .as_ref()
            .is_some_and(|p| p.color_space.as_deref() == Some("CMYK")),
    );
    facts.exif = container.exif.and_then(exif::summarize);
    facts.xmp = container.xmp.as_deref().and_then(descriptive::xmp);
    check_deadline(limits)?;
    let started = Instant::now();
    match heif::decode(bytes)? {
        Ok(picture) => {
            facts.decode_time = started.elapsed();
            check_deadline(limits)?;
            let size = (picture.width(), picture.height());
            statistics(&picture, size, facts);
        }
        Err(unsupported) => facts.undecoded = Some(unsupported),
    }
    Ok(())
}

/// A TIFF whose pixels the decoder does not support (a colour model, sample format or
/// compression it lacks): its size, pages and EXIF from the first IFD, and why the pixels
/// were not decoded. The decoder's error stands when the IFD has no size.
fn tiff_header_only(
    bytes: &[u8],
    limits: &ProbeLimits,
    facts: &mut ImageFacts,
    error: ImageError,
) -> Result<(), ProbeError> {
    let reason = error.to_string();
    let Some(header) = exif::tiff_header(bytes) else {
        return Err(classify(Format::Tiff, error));
    };
    within_limits(header.width, header.height, limits)?;
    facts.bit_depth = header.bits_per_sample;
    facts.exif = exif::summarize(bytes.to_vec()).filter(|s| *s != Default::default());
    set_sizes(facts, header.width, header.height);
    facts.undecoded = Some(reason);
    Ok(())
}

/// Refuses a picture of more pixels than the limit, before anything is decoded.
fn within_limits(width: u32, height: u32, limits: &ProbeLimits) -> Result<(), ProbeError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ProbeError::TooLarge(format!(
            "{width}x{height} is {pixels} pixels, the limit is {}",
            limits.max_pixels
        )));
    }
    Ok(())
}

/// The stored size, and the size as shown: EXIF orientations 5-8 swap width and height.
fn set_sizes(facts: &mut ImageFacts, width: u32, height: u32) {
    let turned = facts
        .exif
        .as_ref()
        .and_then(|e| e.orientation)
        .is_some_and(|o| (5..=8).contains(&o));
    facts.width = Some(width);
    facts.height = Some(height);
    (facts.display_width, facts.display_height) = if turned {
        (Some(height), Some(width))
    } else {
        (Some(width), Some(height))
    };
}

fn check_deadline(limits: &ProbeLimits) -> Result<(), ProbeError> {
    match limits.deadline {
        Some(deadline) if Instant::now() > deadline => Err(ProbeError::Timeout(Duration::ZERO)),
        _ => Ok(()),
    }
}

/// Decodes the pixels (within the limits) and derives the picture statistics.
fn raster(
    bytes: &[u8],
    format: Format,
    limits: &ProbeLimits,
    facts: &mut ImageFacts,
) -> Result<(), ProbeError> {
    let image_format = match format {
        Format::Png => image::ImageFormat::Png,
        Format::Jpeg => image::ImageFormat::Jpeg,
        Format::Gif => image::ImageFormat::Gif,
        Format::Webp => image::ImageFormat::WebP,
        Format::Tiff => image::ImageFormat::Tiff,
        Format::Bmp => image::ImageFormat::Bmp,
        Format::Exr => image::ImageFormat::OpenExr,
        Format::Jxl => {
            let structure = jxl::structure(bytes)?;
            facts.animation = structure.animation;
            facts.icc_profile_bytes = structure.icc.as_ref().map(Vec::len);
            facts.icc = structure.icc.as_deref().and_then(descriptive::icc);
            facts.xmp = structure.xmp.as_deref().and_then(descriptive::xmp);
            // jxl-oxide's decoder for `image`, single-threaded (files run in parallel).
            let mut decoder = jxl_oxide::integration::JxlDecoder::new(Cursor::new(bytes))
                .map_err(|e| classify(format, e))?;
            decoder
                .set_limits(decode_limits(limits))
                .map_err(|e| classify(format, e))?;
            described(decoder, bytes, format, limits, facts)?;
            // The decoder gives the picture as shown (the codestream's orientation applied;
            // an EXIF orientation does not count for JPEG XL): stored is the other way round
            // for orientations 5-8.
            (facts.display_width, facts.display_height) = (facts.width, facts.height);
            if structure.orientation >= 5 {
                (facts.width, facts.height) = (facts.display_height, facts.display_width);
            }
            return Ok(());
        }
        Format::Svg | Format::Heic | Format::Avif | Format::Heif => return Ok(()),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    reader.limits(decode_limits(limits));
    let decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        Err(e @ ImageError::Unsupported(_)) if format == Format::Tiff => {
            return tiff_header_only(bytes, limits, facts, e);
        }
        Err(e) => return Err(classify(format, e)),
    };
    described(decoder, bytes, format, limits, facts)
}

/// Room for the largest allowed picture as RGBA float, plus the decoder's own buffers.
fn decode_limits(limits: &ProbeLimits) -> image::Limits {
    let mut decode_limits = image::Limits::default();
    decode_limits.max_alloc = Some(
        limits
            .max_pixels
            .saturating_mul(16)
            .saturating_add(64 << 20),
    );
    decode_limits
}

/// What a decoder says about the picture, then its pixels and the statistics.
fn described<D: ImageDecoder>(
    mut decoder: D,
    bytes: &[u8],
    format: Format,
    limits: &ProbeLimits,
    facts: &mut ImageFacts,
) -> Result<(), ProbeError> {
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ProbeError::Corrupt(format!("{width}x{height} image")));
    }
    within_limits(width, height, limits)?;
    let original = decoder.original_color_type();
    let (color_type, bit_depth) = describe(original);
    facts.color_type = Some(color_type.to_owned());
    facts.bit_depth = Some(bit_depth);
    facts.has_alpha = Some(has_alpha(original));
    // jxl-oxide renders a profile for every JPEG XL (most carry an enumerated colour
    // encoding, not an ICC profile): the embedded one was read with its structure.
    if format != Format::Jxl {
        let icc = decoder.icc_profile().ok().flatten();
        facts.icc_profile_bytes = icc.as_ref().map(Vec::len);
        facts.icc = icc.as_deref().and_then(descriptive::icc);
    }
    facts.cmyk = Some(
        color_type == "cmyk"
            || facts
                .icc
                .as_ref()
                .is_some_and(|p| p.color_space.as_deref() == Some("CMYK")),
    );
    let xmp = decoder
        .xmp_metadata()
        .ok()
        .flatten()
        .and_then(|raw| descriptive::xmp(&raw));
    facts.xmp = xmp.or(facts.xmp.take());
    facts.iptc = decoder
        .iptc_metadata()
        .ok()
        .flatten()
        .and_then(|raw| descriptive::iptc(&raw));
    let mut raw_exif = decoder.exif_metadata().ok().flatten();
    if format == Format::Jxl {
        // A JPEG XL `Exif` box starts with the offset of the TIFF header, as in HEIF.
        raw_exif = raw_exif.and_then(|raw| {
            let skip = u32::from_be_bytes(raw.get(..4)?.try_into().ok()?) as usize;
            raw.get(4 + skip..).map(<[u8]>::to_vec)
        });
    }
    facts.exif = raw_exif.and_then(exif::summarize);
    if facts.exif.is_none() && format == Format::Tiff {
        // A TIFF is itself an EXIF structure: its IFD0 holds make, model, orientation.
        facts.exif = exif::summarize(bytes.to_vec()).filter(|s| *s != Default::default());
    }
    set_sizes(facts, width, height);
    check_deadline(limits)?;

    let started = Instant::now();
    if format == Format::Jpeg {
        if let Some(picture) = jpeg_reduced(bytes, limits) {
            facts.decode_time = started.elapsed();
            check_deadline(limits)?;
            statistics(&picture, (width, height), facts);
            return Ok(());
        }
    }
    let picture = match image::DynamicImage::from_decoder(decoder) {
        Ok(picture) => picture,
        Err(e @ ImageError::Unsupported(_)) if format == Format::Tiff => {
            return tiff_header_only(bytes, limits, facts, e);
        }
        Err(e) => return Err(classify(format, e)),
    };
    facts.decode_time = started.elapsed();
    check_deadline(limits)?;
    statistics(&picture, (width, height), facts);
    Ok(())
}

/// What [`probe`] says of a JPEG with its statistics taken from a full decode instead of the
/// reduced one (the reference the reduced decode's tolerances are measured against; tests and
/// the benchmark only).
#[cfg(feature = "corpus")]
pub fn probe_with_full_jpeg_decode(
    bytes: &[u8],
    limits: &ProbeLimits,
) -> Result<ImageFacts, ProbeError> {
    let mut facts = probe(bytes, limits)?;
    if facts.format == Format::Jpeg {
        let picture = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
            .map_err(|e| classify(Format::Jpeg, e))?;
        let size = (picture.width(), picture.height());
        statistics(&picture, size, &mut facts);
    }
    Ok(facts)
}

/// Side (pixels) a reduced JPEG decode keeps at least along one axis: every cell of the
/// statistics grid then averages at least 2×2 decoded pixels, each the mean of its block.
const REDUCED_SIDE: u32 = hash::PHASH_GRID as u32 * 2;

/// The pixels of a JPEG decoded at a reduced scale, for the statistics: libjpeg-turbo's inverse
/// DCT computes 1/2, 1/4 or 1/8 of each 8×8 block (at 1/8 only its DC coefficient, the block's
/// mean), the smallest scale that keeps [`REDUCED_SIDE`] pixels along one axis, so the inverse
/// DCT, upsampling and colour conversion run on up to 64 times fewer pixels; only the entropy
/// decoding stays whole. Every pixel is the mean of the block it stands for, so the grid's
/// cells average the picture at least as well as the single pixels a full decode samples
/// (tolerances in the tests). `None` (then the picture is decoded in full) for a picture too
/// small to reduce, when libjpeg-turbo refuses the file or only warns about it (corrupt data it
/// would grey-fill), and for CMYK.
fn jpeg_reduced(bytes: &[u8], limits: &ProbeLimits) -> Option<image::DynamicImage> {
    use turbojpeg::{Colorspace, Decompressor, PixelFormat, ScalingFactor};
    let mut decompressor = Decompressor::new().ok()?;
    let header = decompressor.read_header(bytes).ok()?;
    if header.is_lossless || matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK) {
        return None;
    }
    let within = |f: &ScalingFactor| {
        f.scale(header.width).max(f.scale(header.height)) >= REDUCED_SIDE as usize
    };
    let factor = [
        ScalingFactor::ONE_EIGHTH,
        ScalingFactor::ONE_QUARTER,
        ScalingFactor::ONE_HALF,
    ]
    .into_iter()
    .find(within)?;
    decompressor.set_scaling_factor(factor).ok()?;
    let (width, height) = (factor.scale(header.width), factor.scale(header.height));
    if (width * height) as u64 > limits.max_pixels {
        return None;
    }
    let grey = header.colorspace == Colorspace::Gray;
    let (format, channels) = if grey {
        (PixelFormat::GRAY, 1)
    } else {
        (PixelFormat::RGB, 3)
    };
    let mut pixels = vec![0u8; width * height * channels];
    let image = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width,
        pitch: width * channels,
        height,
        format,
    };
    decompressor.decompress(bytes, image).ok()?;
    let (width, height) = (u32::try_from(width).ok()?, u32::try_from(height).ok()?);
    if grey {
        image::GrayImage::from_raw(width, height, pixels).map(image::DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(width, height, pixels).map(image::DynamicImage::ImageRgb8)
    }
}

/// The picture statistics, from one pass over the pixels: every statistic comes from this
/// grid. Its cells cover equal areas of the picture, so colour shares and luminance are
/// area-weighted; the placeholder gets it resampled to the picture's aspect ratio.
fn statistics(picture: &image::DynamicImage, (width, height): (u32, u32), facts: &mut ImageFacts) {
    facts.transparent = Some(uses_alpha(picture));
    let grid = color::sample(picture, hash::PHASH_GRID as u32, hash::PHASH_GRID as u32);
    facts.phash = hash::phash(&color::luma_grid(&grid));
    facts.avg_luminance = color::average_luminance(&grid);
    facts.dominant_colors = color::dominant_colors(&grid, MAX_SWATCHES);
    let (tw, th) = placeholder::grid_size(width, height);
    facts.thumbhash = placeholder::thumbhash(&color::resample(&grid, tw, th));
}

/// Maps a decoder error to the reason reported on the row.
fn classify(format: Format, error: ImageError) -> ProbeError {
    let name = format.name();
    match error {
        ImageError::Limits(e) => ProbeError::TooLarge(format!("{name}: {e}")),
        ImageError::Unsupported(e) => ProbeError::Unsupported(format!("{name}: {e}")),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ProbeError::Truncated(format!("{name}: {e}"))
        }
        ImageError::Decoding(e) => {
            let text = e.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("eof")
                || lower.contains("end of")
                || lower.contains("truncat")
                || lower.contains("no more bytes")
                || lower.contains("unexpected end")
            {
                ProbeError::Truncated(format!("{name}: {text}"))
            } else {
                ProbeError::Corrupt(format!("{name}: {text}"))
            }
        }
        other => ProbeError::Corrupt(format!("{name}: {other}")),
    }
}

/// A JPEG must close with an EOI marker after its first scan; decoders quietly grey-fill a
/// cut-off scan, so this is where truncation shows.
fn check_jpeg_end(bytes: &[u8]) -> Result<(), ProbeError> {
    let sos = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .ok_or_else(|| ProbeError::Truncated("JPEG has no scan".into()))?;
    let has_eoi = bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9]);
    if has_eoi {
        Ok(())
    } else {
        Err(ProbeError::Truncated(format!(
            "JPEG ends at byte {} without an end-of-image marker",
            bytes.len()
        )))
    }
}

/// The RIFF header of a WebP states the file's length.
fn check_riff_length(bytes: &[u8]) -> Result<(), ProbeError> {
    let declared = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize + 8;
    if bytes.len() < declared {
        return Err(ProbeError::Truncated(format!(
            "WebP declares {declared} bytes, the file has {}",
            bytes.len()
        )));
    }
    Ok(())
}

/// Colour model name and bits per channel of the stored samples.
fn describe(color: ExtendedColorType) -> (&'static str, u8) {
    use ExtendedColorType as C;
    match color {
        C::A8 => ("alpha", 8),
        C::L1 => ("gray", 1),
        C::La1 => ("gray_alpha", 1),
        C::Rgb1 => ("rgb", 1),
        C::Rgba1 => ("rgba", 1),
        C::L2 => ("gray", 2),
        C::La2 => ("gray_alpha", 2),
        C::Rgb2 => ("rgb", 2),
        C::Rgba2 => ("rgba", 2),
        C::L4 => ("gray", 4),
        C::La4 => ("gray_alpha", 4),
        C::Rgb4 => ("rgb", 4),
        C::Rgba4 => ("rgba", 4),
        C::L8 => ("gray", 8),
        C::La8 => ("gray_alpha", 8),
        C::Rgb8 | C::Bgr8 => ("rgb", 8),
        C::Rgba8 | C::Bgra8 => ("rgba", 8),
        C::L16 => ("gray", 16),
        C::La16 => ("gray_alpha", 16),
        C::Rgb16 => ("rgb", 16),
        C::Rgba16 => ("rgba", 16),
        C::Rgb32F => ("rgb", 32),
        C::Rgba32F => ("rgba", 32),
        C::Cmyk8 => ("cmyk", 8),
        C::Cmyk16 => ("cmyk", 16),
        other => {
            let channels = other.channel_count().max(1);
            let bits = (other.bits_per_pixel() / u16::from(channels)).min(255) as u8;
            ("other", bits)
        }
    }
}

/// Whether some pixel of `picture` is not fully opaque (stops at the first one).
fn uses_alpha(picture: &image::DynamicImage) -> bool {
    use image::DynamicImage as D;
    match picture {
        D::ImageLumaA8(i) => i.pixels().any(|p| p.0[1] < u8::MAX),
        D::ImageRgba8(i) => i.pixels().any(|p| p.0[3] < u8::MAX),
        D::ImageLumaA16(i) => i.pixels().any(|p| p.0[1] < u16::MAX),
        D::ImageRgba16(i) => i.pixels().any(|p| p.0[3] < u16::MAX),
        D::ImageRgba32F(i) => i.pixels().any(|p| p.0[3] < 1.0),
        _ => false,
    }
}

fn has_alpha(color: ExtendedColorType) -> bool {
    use ExtendedColorType as C;
    matches!(
        color,
        C::A8
            | C::La1
            | C::Rgba1
            | C::La2
            | C::Rgba2
            | C::La4
            | C::Rgba4
            | C::La8
            | C::Rgba8
            | C::Bgra8
            | C::La16
            | C::Rgba16
            | C::Rgba32F
    )
}

#[cfg(test)]
mod tests;
