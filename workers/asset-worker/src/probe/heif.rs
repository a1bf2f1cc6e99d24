//! HEIF, HEIC and AVIF from the container alone (ISO/IEC 23008-12 on ISO-BMFF): the primary
//! image's stored size (`ispe`), rotation and mirroring (`irot`, `imir`), bit depth (`pixi`),
//! alpha (an `auxl` image whose `auxC` says alpha), the ICC profile (`colr`), the EXIF and XMP
//! items it carries (`cdsc` references, `iloc` extents) and how many top-level images the file
//! holds (bursts, stereo pairs).
//!
//! The pixels are decoded by libheif ([`decode`]: built from the source `libheif-sys` vendors,
//! against Debian's libde265 for HEVC and dav1d for AV1), as shown: clean aperture, rotation
//! and mirroring applied. Every read of the container is bounds-checked; a box that runs past
//! its parent or the file is reported as truncated, one that contradicts the format as
//! corrupt.

use std::collections::{HashMap, HashSet};

use super::ProbeError;

/// What the container says about its primary image.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Container {
    /// Stored size of the primary image (before rotation).
    pub width: u32,
    /// Stored height.
    pub height: u32,
    /// The clean aperture (`clap`): the part of the coded picture shown, when cropped.
    pub crop: Option<(u32, u32)>,
    /// Quarter turns anticlockwise applied for display (`irot`).
    pub quarter_turns: u8,
    /// Bits per channel of the first channel (`pixi`), when given.
    pub bit_depth: Option<u8>,
    /// Channels (`pixi`), when given.
    pub channels: Option<u8>,
    /// Whether an alpha plane belongs to the primary image.
    pub has_alpha: bool,
    /// The ICC profile (`colr` of type `prof` or `rICC`).
    pub icc: Option<Vec<u8>>,
    /// EXIF as a TIFF structure (the item's offset prefix removed).
    pub exif: Option<Vec<u8>>,
    /// The XMP packet.
    pub xmp: Option<Vec<u8>>,
    /// Top-level images (not hidden, not a thumbnail, auxiliary image or grid tile).
    pub images: u32,
    /// An image sequence (AVIF `avis`, HEIF `msf1`): its frames and total duration, from the
    /// first picture track.
    pub sequence: Option<(u32, u64)>,
}

impl Container {
    /// Size as shown: cropped to the clean aperture, then width and height swapped by an odd
    /// number of quarter turns.
    pub fn display(&self) -> (u32, u32) {
        let (width, height) = self.crop.unwrap_or((self.width, self.height));
        if self.quarter_turns % 2 == 1 {
            (height, width)
        } else {
            (width, height)
        }
    }
}

/// A box: its type and payload (after the header), as offsets into the file.
#[derive(Clone, Copy, Debug)]
struct BoxRef {
    kind: [u8; 4],
    start: usize,
    end: usize,
}

/// The boxes inside `bytes[start..end]`.
fn children(bytes: &[u8], start: usize, end: usize) -> Result<Vec<BoxRef>, ProbeError> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let header = bytes
            .get(at..at + 8)
            .filter(|_| at + 8 <= end)
            .ok_or_else(|| truncated(format!("box header at byte {at}")))?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
        let kind = [header[4], header[5], header[6], header[7]];
        let (size, header_len) = match size32 {
            0 => ((end - at) as u64, 8),
            1 => {
                let large = bytes
                    .get(at + 8..at + 16)
                    .ok_or_else(|| truncated(format!("box size at byte {at}")))?;
                (u64::from_be_bytes(large.try_into().expect("8 bytes")), 16)
            }
            n => (n, 8),
        };
        if size < header_len as u64 {
            return Err(corrupt(format!(
                "box {} at byte {at} claims {size} bytes",
                fourcc(&kind)
            )));
        }
        let box_end = (at as u64).saturating_add(size);
        if box_end > end as u64 {
            return Err(truncated(format!(
                "box {} at byte {at} needs {size} bytes, {} remain",
                fourcc(&kind),
                end - at
            )));
        }
        out.push(BoxRef {
            kind,
            start: at + header_len,
            end: box_end as usize,
        });
        at = box_end as usize;
    }
    Ok(out)
}

fn fourcc(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

fn truncated(what: String) -> ProbeError {
    ProbeError::Truncated(format!("HEIF: {what}"))
}

fn corrupt(what: String) -> ProbeError {
    ProbeError::Corrupt(format!("HEIF: {what}"))
}

/// A big-endian reader over one box's payload.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    end: usize,
    kind: [u8; 4],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], b: BoxRef) -> Self {
        Self {
            bytes,
            at: b.start,
            end: b.end,
            kind: b.kind,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProbeError> {
        if self.at + n > self.end {
            return Err(truncated(format!("box {} ends early", fourcc(&self.kind))));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ProbeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ProbeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ProbeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned integer of `size` bytes (0, 4 or 8 in `iloc`).
    fn sized(&mut self, size: u8) -> Result<u64, ProbeError> {
        match size {
            0 => Ok(0),
            4 => self.u32().map(u64::from),
            8 => {
                let b = self.take(8)?;
                Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
            }
            other => Err(corrupt(format!("iloc field of {other} bytes"))),
        }
    }

    /// Version and flags of a full box.
    fn full(&mut self) -> Result<(u8, u32), ProbeError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }

    /// A NUL-terminated string (the rest of the box when it has no NUL).
    fn cstr(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..self.end];
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        self.at = (self.at + len + 1).min(self.end);
        &rest[..len]
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..self.end]
    }
}

/// One item of `iinf`.
#[derive(Debug, Clone)]
struct Item {
    kind: [u8; 4],
    hidden: bool,
    content_type: Vec<u8>,
}

/// Where an item's bytes are (`iloc`).
#[derive(Debug, Clone, Default)]
struct Location {
    /// 0: file offsets; 1: offsets into `idat`.
    method: u8,
    extents: Vec<(u64, u64)>,
}

const IMAGE_ITEMS: [&[u8; 4]; 8] = [
    b"hvc1", b"av01", b"grid", b"iden", b"iovl", b"jpeg", b"unci", b"vvc1",
];

/// Reads the container of a HEIF file (HEIC, AVIF…). `max_item_bytes` bounds the metadata
/// copied out (EXIF, XMP, ICC).
pub fn container(bytes: &[u8], max_item_bytes: usize) -> Result<Container, ProbeError> {
    let top = children(bytes, 0, bytes.len())?;
    let meta = top
        .iter()
        .find(|b| &b.kind == b"meta")
        .ok_or_else(|| corrupt("no meta box".into()))?;
    let mut r = Reader::new(bytes, *meta);
    r.full()?;
    let meta_boxes = children(bytes, r.at, meta.end)?;
    let find = |kind: &[u8; 4]| meta_boxes.iter().find(|b| &b.kind == kind).copied();

    let primary = {
        let b = find(b"pitm").ok_or_else(|| corrupt("no primary item (pitm)".into()))?;
        let mut r = Reader::new(bytes, b);
        let (version, _) = r.full()?;
        if version == 0 {
            u32::from(r.u16()?)
        } else {
            r.u32()?
        }
    };

    let mut items: HashMap<u32, Item> = HashMap::new();
    if let Some(iinf) = find(b"iinf") {
        let mut r = Reader::new(bytes, iinf);
        let (version, _) = r.full()?;
        if version == 0 {
            r.u16()?;
        } else {
            r.u32()?;
        }
        for infe in children(bytes, r.at, iinf.end)? {
            if &infe.kind != b"infe" {
                continue;
            }
            let mut r = Reader::new(bytes, infe);
            let (version, flags) = r.full()?;
            if version < 2 {
                continue; // item types arrived with version 2
            }
            let id = if version == 2 {
                u32::from(r.u16()?)
            } else {
                r.u32()?
            };
            r.u16()?; // protection index
            let kind: [u8; 4] = r.take(4)?.try_into().expect("4 bytes");
            r.cstr(); // item name
            let content_type = if &kind == b"mime" {
                r.cstr().to_vec()
            } else {
                Vec::new()
            };
            items.insert(
                id,
                Item {
                    kind,
                    hidden: flags & 1 == 1,
                    content_type,
                },
            );
        }
    }
    let primary_item = items
        .get(&primary)
        .ok_or_else(|| corrupt(format!("primary item {primary} is not described (iinf)")))?;
    if !IMAGE_ITEMS.contains(&&primary_item.kind) {
        return Err(ProbeError::Unsupported(format!(
            "HEIF: primary item of type {}",
            fourcc(&primary_item.kind)
        )));
    }

    // References: (type, from) -> to.
    let mut references: Vec<([u8; 4], u32, Vec<u32>)> = Vec::new();
    if let Some(iref) = find(b"iref") {
        let mut r = Reader::new(bytes, iref);
        let (version, _) = r.full()?;
        for reference in children(bytes, r.at, iref.end)? {
            let mut r = Reader::new(bytes, reference);
            let id = |r: &mut Reader<'_>| -> Result<u32, ProbeError> {
                if version == 0 {
                    r.u16().map(u32::from)
                } else {
                    r.u32()
                }
            };
            let from = id(&mut r)?;
            let count = r.u16()?;
            let mut to = Vec::with_capacity(usize::from(count).min(1024));
            for _ in 0..count {
                to.push(id(&mut r)?);
            }
            references.push((reference.kind, from, to));
        }
    }

    // Properties and which items they belong to.
    let mut properties: Vec<BoxRef> = Vec::new();
    let mut associations: HashMap<u32, Vec<usize>> = HashMap::new();
    if let Some(iprp) = find(b"iprp") {
        for b in children(bytes, iprp.start, iprp.end)? {
            match &b.kind {
                b"ipco" => properties = children(bytes, b.start, b.end)?,
                b"ipma" => {
                    let mut r = Reader::new(bytes, b);
                    let (version, flags) = r.full()?;
                    let entries = r.u32()?;
                    for _ in 0..entries {
                        let id = if version < 1 {
                            u32::from(r.u16()?)
                        } else {
                            r.u32()?
                        };
                        let count = r.u8()?;
                        let list = associations.entry(id).or_default();
                        for _ in 0..count {
                            let index = if flags & 1 == 1 {
                                usize::from(r.u16()? & 0x7FFF)
                            } else {
                                usize::from(r.u8()? & 0x7F)
                            };
                            // Index 0 means "no property"; the others count from 1.
                            if index > 0 {
                                list.push(index - 1);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let properties_of = |id: u32| -> Vec<BoxRef> {
        associations
            .get(&id)
            .map(|list| {
                list.iter()
                    .filter_map(|&i| properties.get(i).copied())
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut out = Container::default();
    let mut has_size = false;
    for property in properties_of(primary) {
        let mut r = Reader::new(bytes, property);
        match &property.kind {
            b"ispe" => {
                r.full()?;
                out.width = r.u32()?;
                out.height = r.u32()?;
                has_size = true;
            }
            b"irot" => out.quarter_turns = r.u8()? & 3,
            b"clap" => {
                // Width and height as fractions, rounded as readers do.
                let mut fraction = || -> Result<Option<u32>, ProbeError> {
                    let (n, d) = (r.u32()?, r.u32()?);
                    Ok((d > 0).then(|| ((u64::from(n) + u64::from(d) / 2) / u64::from(d)) as u32))
                };
                if let (Some(w), Some(h)) = (fraction()?, fraction()?) {
                    out.crop = Some((w, h)).filter(|&(w, h)| w > 0 && h > 0);
                }
            }
            b"pixi" => {
                r.full()?;
                let channels = r.u8()?;
                out.channels = Some(channels);
                if channels > 0 {
                    out.bit_depth = Some(r.u8()?);
                }
            }
            b"colr" => {
                let kind = r.take(4)?;
                if (kind == b"prof" || kind == b"rICC") && out.icc.is_none() {
                    let profile = r.rest();
                    if !profile.is_empty() && profile.len() <= max_item_bytes {
                        out.icc = Some(profile.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    if !has_size {
        return Err(corrupt(format!(
            "primary item {primary} has no size (ispe)"
        )));
    }
    if out.width == 0 || out.height == 0 {
        return Err(corrupt(format!("{}x{} image", out.width, out.height)));
    }
    // A clean aperture larger than the picture is no crop.
    out.crop = out
        .crop
        .filter(|&(w, h)| w <= out.width && h <= out.height && (w, h) != (out.width, out.height));

    // Alpha: an auxiliary image of the primary whose auxC names the alpha plane.
    out.has_alpha = references
        .iter()
        .filter(|(kind, _, to)| kind == b"auxl" && to.contains(&primary))
        .any(|(_, from, _)| {
            properties_of(*from).iter().any(|p| {
                if &p.kind != b"auxC" {
                    return false;
                }
                let mut r = Reader::new(bytes, *p);
                r.full().is_ok() && {
                    let urn = r.cstr();
                    urn == b"urn:mpeg:hevc:2015:auxid:1"
                        || urn == b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha"
                }
            })
        });

    // Top-level images, counted as libheif does: not hidden, not a thumbnail or an auxiliary
    // image (grid tiles are hidden by their writers).
    let not_top: HashSet<u32> = references
        .iter()
        .filter(|(kind, _, _)| kind == b"thmb" || kind == b"auxl")
        .map(|(_, from, _)| *from)
        .collect();
    out.images = items
        .iter()
        .filter(|(id, item)| {
            IMAGE_ITEMS.contains(&&item.kind) && !item.hidden && !not_top.contains(id)
        })
        .count()
        .max(1) as u32;

    if let Some(moov) = top.iter().find(|b| &b.kind == b"moov") {
        out.sequence = sequence(bytes, *moov).ok().flatten();
    }

    // Metadata items: those describing the primary image first, then any.
    let locations = match find(b"iloc") {
        Some(iloc) => locations(bytes, iloc)?,
        None => HashMap::new(),
    };
    let idat = find(b"idat");
    let describes_primary = |id: u32| {
        references
            .iter()
            .any(|(kind, from, to)| kind == b"cdsc" && *from == id && to.contains(&primary))
    };
    let mut metadata: Vec<(&u32, &Item)> = items
        .iter()
        .filter(|(_, item)| {
            &item.kind == b"Exif"
                || (&item.kind == b"mime" && item.content_type == b"application/rdf+xml")
        })
        .collect();
    metadata.sort_by_key(|(id, _)| (!describes_primary(**id), **id));
    for (id, item) in metadata {
        let Some(location) = locations.get(id) else {
            continue;
        };
        let Some(data) = item_data(bytes, location, idat, max_item_bytes)? else {
            continue;
        };
        if &item.kind == b"Exif" {
            if out.exif.is_none() && data.len() >= 4 {
                let skip = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
                if let Some(tiff) = data.get(4 + skip..).filter(|t| t.len() >= 8) {
                    out.exif = Some(tiff.to_vec());
                }
            }
        } else if out.xmp.is_none() {
            out.xmp = Some(data);
        }
    }
    Ok(out)
}

/// Frames and duration (ms) of the first picture track of a `moov`: sample count (`stsz`) and
/// media duration (`mdhd`).
fn sequence(bytes: &[u8], moov: BoxRef) -> Result<Option<(u32, u64)>, ProbeError> {
    let child = |parent: BoxRef, kind: &[u8; 4]| -> Result<Option<BoxRef>, ProbeError> {
        Ok(children(bytes, parent.start, parent.end)?
            .into_iter()
            .find(|b| &b.kind == kind))
    };
    for trak in children(bytes, moov.start, moov.end)? {
        if &trak.kind != b"trak" {
            continue;
        }
        let Some(mdia) = child(trak, b"mdia")? else {
            continue;
        };
        let Some(hdlr) = child(mdia, b"hdlr")? else {
            continue;
        };
        let mut r = Reader::new(bytes, hdlr);
        r.full()?;
        r.u32()?; // pre_defined
        if !matches!(r.take(4)?, b"pict" | b"vide") {
            continue;
        }
        let duration_ms = match child(mdia, b"mdhd")? {
            Some(mdhd) => {
                let mut r = Reader::new(bytes, mdhd);
                let (version, _) = r.full()?;
                let (timescale, duration) = if version == 1 {
                    r.take(16)?;
                    (r.u32()?, r.sized(8)?)
                } else {
                    r.take(8)?;
                    (r.u32()?, u64::from(r.u32()?))
                };
                if timescale == 0 {
                    0
                } else {
                    duration.saturating_mul(1000) / u64::from(timescale)
                }
            }
            None => 0,
        };
        let stsz = match child(mdia, b"minf")? {
            Some(minf) => match child(minf, b"stbl")? {
                Some(stbl) => child(stbl, b"stsz")?,
                None => None,
            },
            None => None,
        };
        let Some(stsz) = stsz else {
            continue;
        };
        let mut r = Reader::new(bytes, stsz);
        r.full()?;
        r.u32()?; // sample size
        return Ok(Some((r.u32()?, duration_ms)));
    }
    Ok(None)
}

/// The primary image's pixels as shown (RGBA, 8 bits), decoded by libheif; `Ok(Err(reason))`
/// when libheif cannot decode this coding (VVC, an uncompressed variant, a codec it was built
/// without), an error when the coded data is damaged.
pub fn decode(bytes: &[u8]) -> Result<Result<image::DynamicImage, String>, ProbeError> {
    use libheif_rs::{ColorSpace, HeifContext, HeifErrorCode, LibHeif, RgbChroma};
    static LIBHEIF: std::sync::OnceLock<LibHeif> = std::sync::OnceLock::new();
    let lib = LIBHEIF.get_or_init(LibHeif::new);
    let failed =
        |e: libheif_rs::HeifError| -> Result<Result<image::DynamicImage, String>, ProbeError> {
            let text = format!("HEIF: {}", e.message);
            match e.code {
                HeifErrorCode::UnsupportedFeature
                | HeifErrorCode::UnsupportedFileType
                | HeifErrorCode::PluginLoadingError => Ok(Err(text)),
                HeifErrorCode::MemoryAllocationError => Err(ProbeError::TooLarge(text)),
                _ if text.contains("End of data") || text.contains("end of data") => {
                    Err(ProbeError::Truncated(text))
                }
                _ => Err(ProbeError::Corrupt(text)),
            }
        };
    let context = match HeifContext::read_from_bytes(bytes) {
        Ok(context) => context,
        Err(e) => return failed(e),
    };
    let handle = match context.primary_image_handle() {
        Ok(handle) => handle,
        Err(e) => return failed(e),
    };
    let decoded = match lib.decode(&handle, ColorSpace::Rgb(RgbChroma::Rgba), None) {
        Ok(decoded) => decoded,
        Err(e) => return failed(e),
    };
    let Some(plane) = decoded.planes().interleaved else {
        return Ok(Err("HEIF: libheif gave no interleaved RGBA plane".into()));
    };
    let (width, height) = (plane.width, plane.height);
    let row = width as usize * 4;
    let mut pixels = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        let start = y * plane.stride;
        pixels.extend_from_slice(
            plane
                .data
                .get(start..start + row)
                .ok_or_else(|| ProbeError::Corrupt("HEIF: short decoded plane".into()))?,
        );
    }
    let picture = image::RgbaImage::from_raw(width, height, pixels)
        .ok_or_else(|| ProbeError::Corrupt("HEIF: decoded plane of the wrong size".into()))?;
    Ok(Ok(image::DynamicImage::ImageRgba8(picture)))
}

/// The `iloc` box: each item's extents.
fn locations(bytes: &[u8], iloc: BoxRef) -> Result<HashMap<u32, Location>, ProbeError> {
    let mut r = Reader::new(bytes, iloc);
    let (version, _) = r.full()?;
    let sizes = r.u16()?;
    let offset_size = (sizes >> 12) as u8;
    let length_size = ((sizes >> 8) & 0xF) as u8;
    let base_offset_size = ((sizes >> 4) & 0xF) as u8;
    let index_size = if version >= 1 { (sizes & 0xF) as u8 } else { 0 };
    let count = if version < 2 {
        u32::from(r.u16()?)
    } else {
        r.u32()?
    };
    let mut out = HashMap::new();
    for _ in 0..count {
        let id = if version < 2 {
            u32::from(r.u16()?)
        } else {
            r.u32()?
        };
        let method = if version >= 1 {
            (r.u16()? & 0xF) as u8
        } else {
            0
        };
        r.u16()?; // data reference index
        let base = r.sized(base_offset_size)?;
        let extents_count = r.u16()?;
        let mut extents = Vec::with_capacity(usize::from(extents_count).min(64));
        for _ in 0..extents_count {
            r.sized(index_size)?;
            let offset = r.sized(offset_size)?;
            let length = r.sized(length_size)?;
            extents.push((base.saturating_add(offset), length));
        }
        out.insert(id, Location { method, extents });
    }
    Ok(out)
}

/// An item's bytes (its extents joined), or `None` when it is larger than `max` or stored in a
/// way this reader does not follow (another file, item-relative construction).
fn item_data(
    bytes: &[u8],
    location: &Location,
    idat: Option<BoxRef>,
    max: usize,
) -> Result<Option<Vec<u8>>, ProbeError> {
    let (base, limit) = match (location.method, idat) {
        (0, _) => (0usize, bytes.len()),
        (1, Some(idat)) => (idat.start, idat.end),
        _ => return Ok(None),
    };
    let total = location
        .extents
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(e.1));
    if total > max as u64 {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(total as usize);
    for &(offset, length) in &location.extents {
        let start = (base as u64).saturating_add(offset);
        let end = start.saturating_add(length);
        if end > limit as u64 {
            return Err(truncated(format!(
                "item data at bytes {start}..{end}, the file has {limit}"
            )));
        }
        out.extend_from_slice(&bytes[start as usize..end as usize]);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn full(kind: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
        let mut body = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
        body.extend_from_slice(payload);
        boxed(kind, &body)
    }

    fn infe(id: u16, kind: &[u8; 4], flags: u32, extra: &[u8]) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(kind);
        p.push(0); // empty name
        p.extend_from_slice(extra);
        full(b"infe", 2, flags, &p)
    }

    /// A HEIC with a 640x480 primary image turned a quarter, an alpha plane, a hidden
    /// thumbnail, a second top-level image, an ICC profile and an EXIF item in the file.
    fn sample() -> Vec<u8> {
        let ftyp = boxed(b"ftyp", b"heic\0\0\0\0mif1heic");
        let exif_payload = {
            let mut p = 0u32.to_be_bytes().to_vec();
            p.extend_from_slice(b"MM\0*\0\0\0\x08\0\0");
            p
        };
        let mut iinf_payload = 4u16.to_be_bytes().to_vec();
        iinf_payload.extend(infe(1, b"hvc1", 0, &[]));
        iinf_payload.extend(infe(2, b"hvc1", 0, &[])); // alpha
        iinf_payload.extend(infe(3, b"hvc1", 0, &[])); // thumbnail
        iinf_payload.extend(infe(4, b"hvc1", 0, &[])); // second image
        iinf_payload.extend(infe(5, b"Exif", 0, &[]));
        let iinf = full(b"iinf", 0, 0, &iinf_payload);
        let mut iref_payload = Vec::new();
        iref_payload.extend(boxed(b"auxl", &[0, 2, 0, 1, 0, 1]));
        iref_payload.extend(boxed(b"thmb", &[0, 3, 0, 1, 0, 1]));
        iref_payload.extend(boxed(b"cdsc", &[0, 5, 0, 1, 0, 1]));
        let iref = full(b"iref", 0, 0, &iref_payload);
        let mut ispe = Vec::new();
        ispe.extend(640u32.to_be_bytes());
        ispe.extend(480u32.to_be_bytes());
        let mut ipco_payload = Vec::new();
        ipco_payload.extend(full(b"ispe", 0, 0, &ispe)); // 1
        ipco_payload.extend(boxed(b"irot", &[1])); // 2
        ipco_payload.extend(full(b"pixi", 0, 0, &[3, 10, 10, 10])); // 3
        ipco_payload.extend(boxed(b"colr", b"profICCDATA")); // 4
        ipco_payload.extend(full(b"auxC", 0, 0, b"urn:mpeg:hevc:2015:auxid:1\0")); // 5
        let clap: Vec<u8> = [639u32, 2, 480, 1, 0, 1, 0, 1]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        ipco_payload.extend(boxed(b"clap", &clap)); // 6
        let ipco = boxed(b"ipco", &ipco_payload);
        let ipma_payload = [
            0, 0, 0, 2, // entries
            0, 1, 5, 0x81, 0x86, 0x82, 3,
            4, // item 1: ispe, clap, irot (essential), pixi, colr
            0, 2, 1, 5, // item 2: auxC
        ];
        let ipma = full(b"ipma", 0, 0, &ipma_payload);
        let iprp = boxed(b"iprp", &[ipco, ipma].concat());
        let pitm = full(b"pitm", 0, 0, &[0, 1]);
        // iloc v0, offset 4 bytes, length 4 bytes; the EXIF item's offset is patched below.
        let iloc_for = |offset: u32| {
            let mut p = vec![0x44, 0x00, 0, 1, 0, 5, 0, 0, 0, 1];
            p.extend(offset.to_be_bytes());
            p.extend((exif_payload.len() as u32).to_be_bytes());
            full(b"iloc", 0, 0, &p)
        };
        let assemble = |offset: u32| {
            let meta = full(
                b"meta",
                0,
                0,
                &[
                    full(b"hdlr", 0, 0, b"\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0"),
                    pitm.clone(),
                    iinf.clone(),
                    iref.clone(),
                    iprp.clone(),
                    iloc_for(offset),
                ]
                .concat(),
            );
            [ftyp.clone(), meta, boxed(b"mdat", &exif_payload)].concat()
        };
        let draft = assemble(0);
        let offset = (draft.len() - exif_payload.len()) as u32;
        assemble(offset)
    }

    #[test]
    fn reads_the_primary_image_and_its_metadata() {
        let file = sample();
        let c = container(&file, 1 << 20).unwrap();
        assert_eq!((c.width, c.height), (640, 480));
        assert_eq!(c.crop, Some((320, 480)), "639/2 rounds to 320");
        assert_eq!(c.display(), (480, 320));
        assert_eq!(c.bit_depth, Some(10));
        assert_eq!(c.channels, Some(3));
        assert!(c.has_alpha);
        assert_eq!(c.icc.as_deref(), Some(&b"ICCDATA"[..]));
        assert_eq!(c.exif.as_deref(), Some(&b"MM\0*\0\0\0\x08\0\0"[..]));
        assert_eq!(c.images, 2, "the primary and the second image");
    }

    #[test]
    fn truncated_and_corrupt_files_are_told_apart() {
        let file = sample();
        for cut in [20, file.len() / 2, file.len() - 3] {
            let err = container(&file[..cut], 1 << 20).unwrap_err();
            assert_eq!(err.kind(), "truncated", "cut at {cut}: {err}");
        }
        let mut bad = file.clone();
        // The meta box claims fewer bytes than its header.
        let meta = bad.windows(4).position(|w| w == b"meta").unwrap() - 4;
        bad[meta..meta + 4].copy_from_slice(&4u32.to_be_bytes());
        let err = container(&bad, 1 << 20).unwrap_err();
        assert_eq!(err.kind(), "corrupt", "{err}");
        assert!(container(&sample()[..0], 1 << 20).is_err());
    }

    #[test]
    fn never_panics_on_any_prefix_or_flipped_byte() {
        let file = sample();
        for n in 0..file.len() {
            let _ = container(&file[..n], 1 << 20);
            let mut flipped = file.clone();
            flipped[n] ^= 0xFF;
            let _ = container(&flipped, 1 << 20);
        }
    }
}
