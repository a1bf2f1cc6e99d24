//! What a file really is, from its first bytes: the magic numbers of the supported formats.
//!
//! The name a user gave the file says nothing trustworthy; the bytes do. Sniffing never reads
//! past the slice it is given and never fails: an unknown signature is `None`.

use serde::Serialize;

/// A file format the worker can probe. Serialised by its [`Format::name`] (`PNG`, `EXR`…),
/// the spelling users already query `metadata` with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Portable Network Graphics.
    Png,
    /// JPEG (JFIF or Exif).
    Jpeg,
    /// GIF 87a or 89a, possibly animated.
    Gif,
    /// WebP (lossy, lossless or extended).
    Webp,
    /// TIFF, little- or big-endian, classic or BigTIFF.
    Tiff,
    /// Windows bitmap.
    Bmp,
    /// OpenEXR, single or multi-part.
    Exr,
    /// SVG: an XML document whose root element is `svg`.
    Svg,
    /// HEIC: HEIF (ISO-BMFF) with HEVC-coded images, what phones save.
    Heic,
    /// AVIF: HEIF with AV1-coded images.
    Avif,
    /// Another HEIF brand (`mif1`, `msf1`…: JPEG, uncompressed or unknown codings).
    Heif,
    /// JPEG XL, bare codestream or ISO-BMFF container.
    Jxl,
}

impl Format {
    /// Every supported format, for metric labels and tests.
    pub const ALL: [Format; 12] = [
        Format::Png,
        Format::Jpeg,
        Format::Gif,
        Format::Webp,
        Format::Tiff,
        Format::Bmp,
        Format::Exr,
        Format::Svg,
        Format::Heic,
        Format::Avif,
        Format::Heif,
        Format::Jxl,
    ];

    /// The format's usual name, as users write it in `metadata.format` (`PNG`, `EXR`, …).
    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::Gif => "GIF",
            Format::Webp => "WEBP",
            Format::Tiff => "TIFF",
            Format::Bmp => "BMP",
            Format::Exr => "EXR",
            Format::Svg => "SVG",
            Format::Heic => "HEIC",
            Format::Avif => "AVIF",
            Format::Heif => "HEIF",
            Format::Jxl => "JXL",
        }
    }

    /// Lowercase label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Tiff => "tiff",
            Format::Bmp => "bmp",
            Format::Exr => "exr",
            Format::Svg => "svg",
            Format::Heic => "heic",
            Format::Avif => "avif",
            Format::Heif => "heif",
            Format::Jxl => "jxl",
        }
    }

    /// IANA media type.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Tiff => "image/tiff",
            Format::Bmp => "image/bmp",
            Format::Exr => "image/x-exr",
            Format::Svg => "image/svg+xml",
            Format::Heic => "image/heic",
            Format::Avif => "image/avif",
            Format::Heif => "image/heif",
            Format::Jxl => "image/jxl",
        }
    }

    /// File-name extensions that announce this format (lowercase, no dot).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::Png => &["png"],
            Format::Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            Format::Gif => &["gif"],
            Format::Webp => &["webp"],
            Format::Tiff => &["tif", "tiff"],
            Format::Bmp => &["bmp", "dib"],
            Format::Exr => &["exr"],
            Format::Svg => &["svg"],
            Format::Heic => &["heic", "heif", "hif"],
            Format::Avif => &["avif"],
            Format::Heif => &["heif", "heic", "hif"],
            Format::Jxl => &["jxl"],
        }
    }

    /// Whether `file_name`'s extension is one of this format's. `None` when the name has no
    /// extension (nothing to contradict).
    pub fn matches_extension(self, file_name: &str) -> Option<bool> {
        let (_, ext) = file_name.rsplit_once('.')?;
        if ext.is_empty() {
            return None;
        }
        let ext = ext.to_ascii_lowercase();
        Some(self.extensions().iter().any(|e| *e == ext))
    }
}

impl Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The format announced by the first bytes of `bytes`, if any.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(PNG) {
        return Some(Format::Png);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Format::Jpeg);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some(Format::Gif);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some(Format::Webp);
    }
    // Classic TIFF (42) and BigTIFF (43), both byte orders.
    if bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"II+\0")
        || bytes.starts_with(b"MM\0+")
    {
        return Some(Format::Tiff);
    }
    if bytes.starts_with(&[0x76, 0x2F, 0x31, 0x01]) {
        return Some(Format::Exr);
    }
    // JPEG XL: a bare codestream, or the container's signature box.
    if bytes.starts_with(&[0xFF, 0x0A]) || bytes.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return Some(Format::Jxl);
    }
    if let Some(format) = heif_brand(bytes) {
        return Some(format);
    }
    // "BM" plus a header size field that a real BITMAPINFOHEADER family would have.
    if bytes.len() >= 18 && bytes.starts_with(b"BM") {
        let dib = u32::from_le_bytes([bytes[14], bytes[15], bytes[16], bytes[17]]);
        if matches!(dib, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124) {
            return Some(Format::Bmp);
        }
    }
    if looks_like_svg(bytes) {
        return Some(Format::Svg);
    }
    None
}

/// An ISO-BMFF `ftyp` box first whose brands name a HEIF image file: AVIF when an AVIF brand
/// is there, HEIC for the HEVC brands, HEIF for the generic image brands.
fn heif_brand(bytes: &[u8]) -> Option<Format> {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if !(16..=4096).contains(&size) {
        return None;
    }
    // The major brand, then (after the minor version) the compatible brands.
    let end = size.min(bytes.len());
    let brands = std::iter::once(&bytes[8..12]).chain(bytes[16..end].chunks_exact(4));
    let mut found = None;
    for brand in brands {
        found = match (found, brand) {
            (_, b"avif" | b"avis") => return Some(Format::Avif),
            (_, b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx") => Some(Format::Heic),
            (None, b"mif1" | b"msf1" | b"mif2" | b"miaf") => Some(Format::Heif),
            (found, _) => found,
        };
    }
    found
}

/// An XML prologue (declaration, comments, doctype) followed by an `<svg` root element within
/// the first few kilobytes.
fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    // A cut in the middle of a multi-byte character at the end of the window is fine.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("<?") {
            match after.find("?>") {
                Some(end) => rest = after[end + 2..].trim_start(),
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix("<!--") {
            match after.find("-->") {
                Some(end) => rest = after[end + 3..].trim_start(),
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix("<!DOCTYPE") {
            match after.find('>') {
                Some(end) => rest = after[end + 1..].trim_start(),
                None => return false,
            }
        } else {
            return rest.starts_with("<svg")
                && rest[4..].starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some(Format::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(sniff(b"GIF89a\x01\0"), Some(Format::Gif));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8L"), Some(Format::Webp));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(Format::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Some(Format::Tiff));
        assert_eq!(
            sniff(&[0x76, 0x2F, 0x31, 0x01, 2, 0, 0, 0]),
            Some(Format::Exr)
        );
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 12]);
        bmp.extend_from_slice(&40u32.to_le_bytes());
        assert_eq!(sniff(&bmp), Some(Format::Bmp));
        assert_eq!(sniff(b"BMX is not a bitmap"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"hello"), None);
        let ftyp = |brands: &[&[u8; 4]]| {
            let mut b = ((16 + 4 * brands.len()) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(b"ftyp");
            b.extend_from_slice(brands[0]);
            b.extend_from_slice(&[0; 4]);
            for brand in &brands[1..] {
                b.extend_from_slice(*brand);
            }
            b
        };
        assert_eq!(
            sniff(&ftyp(&[b"heic", b"mif1", b"heic"])),
            Some(Format::Heic)
        );
        assert_eq!(
            sniff(&ftyp(&[b"mif1", b"avif", b"miaf"])),
            Some(Format::Avif)
        );
        assert_eq!(sniff(&ftyp(&[b"mif1", b"mif1"])), Some(Format::Heif));
        assert_eq!(
            sniff(&ftyp(&[b"isom", b"mp41"])),
            None,
            "a video is no image"
        );
        assert_eq!(sniff(&[0xFF, 0x0A, 0xFA, 0x7F]), Some(Format::Jxl));
        assert_eq!(sniff(b"\0\0\0\x0cJXL \r\n\x87\n\0\0"), Some(Format::Jxl));
    }

    #[test]
    fn svg_after_prologue() {
        let doc = "\u{feff}<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<!DOCTYPE svg>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        assert_eq!(sniff(doc.as_bytes()), Some(Format::Svg));
        assert_eq!(sniff(b"<svgfoo/>"), None);
        assert_eq!(sniff(b"<html><svg/></html>"), None);
        assert_eq!(sniff(b"<?xml version=\"1.0\""), None);
    }

    #[test]
    fn extensions() {
        assert_eq!(Format::Jpeg.matches_extension("a.JPG"), Some(true));
        assert_eq!(Format::Png.matches_extension("a.jpg"), Some(false));
        assert_eq!(Format::Png.matches_extension("noext"), None);
        assert_eq!(Format::Png.matches_extension("trailing."), None);
    }
}
