//! OpenEXR structure from the headers alone: parts, channels with their sample types, and the
//! layers the channel names spell (`diffuse.R`, `diffuse.G` → layer `diffuse`).

use std::collections::BTreeSet;

use exr::meta::attribute::SampleType;
use exr::meta::MetaData;
use serde::Serialize;

use super::ProbeError;

/// The channels and layers of an EXR file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExrLayout {
    /// Number of parts (headers); 1 for single-part files.
    pub parts: usize,
    /// Every channel, part name prefixed for named parts (`beauty.diffuse.R`).
    pub channels: Vec<ExrChannel>,
    /// Distinct layer names in channel order: everything before a channel name's last dot;
    /// channels without a dot form the unnamed base layer, listed as `""`.
    pub layers: Vec<String>,
    /// Width and height of the first part's data window.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Whether any part holds deep data (several samples per pixel).
    pub deep: bool,
    /// Compression of the first part, e.g. `ZIP`, `PIZ`.
    pub compression: String,
}

/// One channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExrChannel {
    /// Full name, e.g. `specular.G`.
    pub name: String,
    /// `f16`, `f32` or `u32`.
    #[serde(rename = "type")]
    pub sample_type: &'static str,
}

/// Reads the headers of an EXR file.
pub fn layout(bytes: &[u8]) -> Result<ExrLayout, ProbeError> {
    let meta = MetaData::read_from_buffered(std::io::Cursor::new(bytes), false)
        .map_err(|e| classify(&e))?;
    let first = meta
        .headers
        .first()
        .ok_or_else(|| ProbeError::Corrupt("EXR without a header".into()))?;
    let mut channels = Vec::new();
    let mut layers = Vec::new();
    let mut seen = BTreeSet::new();
    for header in &meta.headers {
        let part = header
            .own_attributes
            .layer_name
            .as_ref()
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty());
        for channel in &header.channels.list {
            let name = match &part {
                Some(part) => format!("{part}.{}", channel.name),
                None => channel.name.to_string(),
            };
            let layer = name.rsplit_once('.').map(|(l, _)| l).unwrap_or("");
            if seen.insert(layer.to_owned()) {
                layers.push(layer.to_owned());
            }
            channels.push(ExrChannel {
                sample_type: match channel.sample_type {
                    SampleType::F16 => "f16",
                    SampleType::F32 => "f32",
                    SampleType::U32 => "u32",
                },
                name,
            });
        }
    }
    let size = first.layer_size;
    Ok(ExrLayout {
        parts: meta.headers.len(),
        channels,
        layers,
        width: u32::try_from(size.0).unwrap_or(u32::MAX),
        height: u32::try_from(size.1).unwrap_or(u32::MAX),
        deep: meta.headers.iter().any(|h| h.deep),
        compression: format!("{:?}", first.compression).to_uppercase(),
    })
}

fn classify(error: &exr::error::Error) -> ProbeError {
    match error {
        exr::error::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ProbeError::Truncated(format!("EXR header: {error}"))
        }
        exr::error::Error::Invalid(message) if message.contains("missing bytes") => {
            ProbeError::Truncated(format!("EXR: {error}"))
        }
        exr::error::Error::NotSupported(_) => {
            ProbeError::Unsupported(format!("EXR feature: {error}"))
        }
        _ => ProbeError::Corrupt(format!("EXR header: {error}")),
    }
}
