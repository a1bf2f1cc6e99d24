//! JPEG XL structure, read with jxl-oxide before the pixels are decoded: whether the whole
//! codestream is there (a cut-off file still renders, progressively, as a blurred or black
//! picture), the orientation, the embedded ICC profile (most files carry an enumerated colour
//! encoding instead), the XMP box and the animation's frames, loops and duration.

use std::io::Cursor;

use jxl_oxide::{AuxBoxData, JxlImage};

use super::gif::Animation;
use super::ProbeError;

/// What the codestream and its container say beside the pixels.
#[derive(Debug, Default)]
pub struct JxlStructure {
    /// EXIF-style orientation 1–8 of the codestream (decoders apply it).
    pub orientation: u16,
    /// The embedded ICC profile, when the file has one instead of an enumerated encoding.
    pub icc: Option<Vec<u8>>,
    /// The `xml ` box.
    pub xmp: Option<Vec<u8>>,
    /// Frames, loops and duration of an animation.
    pub animation: Option<Animation>,
}

/// Reads the whole file's structure; a codestream that ends before its last frame is
/// truncated, one that does not parse is corrupt.
pub fn structure(bytes: &[u8]) -> Result<JxlStructure, ProbeError> {
    let image = JxlImage::builder().read(Cursor::new(bytes)).map_err(|e| {
        let text = e.to_string();
        if text.contains("ended") || text.contains("EOF") || text.contains("eof") {
            ProbeError::Truncated(format!("JXL: {text}"))
        } else {
            ProbeError::Corrupt(format!("JXL: {text}"))
        }
    })?;
    if !image.is_loading_done() {
        return Err(ProbeError::Truncated(format!(
            "JXL: the file ends ({} bytes) before its last frame",
            bytes.len()
        )));
    }
    let metadata = &image.image_header().metadata;
    let animation = metadata.animation.as_ref().map(|header| {
        let frames = image.num_loaded_keyframes();
        let ticks: u64 = (0..frames)
            .filter_map(|i| image.frame_header(i))
            .map(|f| u64::from(f.duration))
            .sum();
        let duration_ms = if header.tps_numerator == 0 {
            0
        } else {
            ticks * 1000 * u64::from(header.tps_denominator) / u64::from(header.tps_numerator)
        };
        Animation {
            frames: u32::try_from(frames).unwrap_or(u32::MAX),
            loop_count: Some(u16::try_from(header.num_loops).unwrap_or(u16::MAX)),
            duration_ms,
            separate_default_image: None,
        }
    });
    Ok(JxlStructure {
        orientation: u16::try_from(metadata.orientation).unwrap_or(1),
        icc: image.original_icc().map(<[u8]>::to_vec),
        xmp: match image.aux_boxes().first_xml() {
            AuxBoxData::Data(xml) => Some(xml.to_vec()),
            _ => None,
        },
        animation,
    })
}
