//! Descriptive metadata people search assets by: XMP (Dublin Core title, description,
//! keywords, creator, rights, and the packet itself when small), IPTC IIM core fields, and
//! the embedded ICC profile's description, colour space and version.
//!
//! All three arrive as raw bytes from the decoder's container parsing (JPEG APP1/APP13/APP2,
//! PNG iTXt/zTXt/iCCP, WebP chunks, TIFF tags). Each parser is bounded: XMP above
//! [`MAX_XMP_PARSE`] is not parsed, its node count is capped, IPTC datasets and ICC tags are
//! read within their declared lengths, and texts are capped at [`MAX_TEXT`] characters.
//! Nothing here fails a file: unreadable metadata is simply absent.

use serde::Serialize;

/// XMP packets up to this size are stored as they are (`xmp.packet`).
pub const MAX_XMP_STORED: usize = 16 * 1024;
/// XMP packets above this size are not parsed (their size is still reported).
const MAX_XMP_PARSE: usize = 1 << 20;
/// Longest text kept of one field, in characters.
const MAX_TEXT: usize = 2_000;
/// Most values kept of a repeated field (keywords, creators).
const MAX_VALUES: usize = 200;

/// What an XMP packet says.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Xmp {
    /// Size of the packet in bytes.
    pub bytes: usize,
    /// The packet itself, when at most [`MAX_XMP_STORED`] bytes of UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<String>,
    /// `dc:title` (the default language's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `dc:description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `dc:subject`: the keywords.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// `dc:creator`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub creator: Vec<String>,
    /// `dc:rights`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rights: Option<String>,
    /// `tiff:Orientation` (1–8), which some tools write here instead of in EXIF (browsers
    /// apply EXIF's only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<u16>,
}

/// Reads an XMP packet.
pub fn xmp(raw: &[u8]) -> Option<Xmp> {
    if raw.is_empty() {
        return None;
    }
    let mut out = Xmp {
        bytes: raw.len(),
        ..Xmp::default()
    };
    let text = std::str::from_utf8(raw).ok();
    if raw.len() <= MAX_XMP_STORED {
        out.packet = text.map(str::to_owned);
    }
    let Some(text) = text.filter(|_| raw.len() <= MAX_XMP_PARSE) else {
        return Some(out);
    };
    // The packet wrapper (`<?xpacket …?>`) and any bytes before the first element are not XML
    // roxmltree needs; start at the first `<x:xmpmeta` or `<rdf:RDF`.
    let start = text
        .find("<x:xmpmeta")
        .or_else(|| text.find("<rdf:RDF"))
        .unwrap_or(0);
    let end = text
        .rfind("</x:xmpmeta>")
        .map(|e| e + "</x:xmpmeta>".len())
        .or_else(|| text.rfind("</rdf:RDF>").map(|e| e + "</rdf:RDF>".len()))
        .unwrap_or(text.len());
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 50_000,
        ..Default::default()
    };
    let Ok(doc) = roxmltree::Document::parse_with_options(&text[start..end.max(start)], options)
    else {
        return Some(out);
    };
    const DC: &str = "http://purl.org/dc/elements/1.1/";
    const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
    let values = |name: &str| -> Vec<String> {
        let mut found = Vec::new();
        for node in doc
            .descendants()
            .filter(|n| n.is_element() && n.tag_name().namespace() == Some(DC))
            .filter(|n| n.tag_name().name() == name)
        {
            let items: Vec<_> = node
                .descendants()
                .filter(|n| {
                    n.is_element()
                        && n.tag_name().namespace() == Some(RDF)
                        && n.tag_name().name() == "li"
                })
                .collect();
            if items.is_empty() {
                found.extend(node.text().map(clean));
            } else {
                found.extend(items.iter().filter_map(|li| li.text()).map(clean));
            }
        }
        // Also the attribute form: <rdf:Description dc:title="…">.
        for node in doc.descendants().filter(|n| n.is_element()) {
            if let Some(value) = node.attribute((DC, name)) {
                found.push(clean(value));
            }
        }
        found.retain(|v| !v.is_empty());
        found.dedup();
        found.truncate(MAX_VALUES);
        found
    };
    out.title = values("title").into_iter().next();
    out.description = values("description").into_iter().next();
    out.keywords = values("subject");
    out.creator = values("creator");
    out.rights = values("rights").into_iter().next();
    const TIFF: &str = "http://ns.adobe.com/tiff/1.0/";
    out.orientation = doc
        .descendants()
        .filter(|n| n.is_element())
        .find_map(|n| {
            n.attribute((TIFF, "Orientation")).or_else(|| {
                (n.tag_name().namespace() == Some(TIFF) && n.tag_name().name() == "Orientation")
                    .then(|| n.text())
                    .flatten()
            })
        })
        .and_then(|v| v.trim().parse().ok())
        .filter(|v| (1..=8).contains(v));
    Some(out)
}

/// IPTC IIM core fields (record 2).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Iptc {
    /// 2:05 Object Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// 2:105 Headline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// 2:120 Caption/Abstract.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// 2:25 Keywords.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// 2:80 By-line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub creator: Vec<String>,
    /// 2:116 Copyright Notice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copyright: Option<String>,
    /// 2:90 City.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// 2:101 Country.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Reads IPTC IIM datasets, bare or inside a Photoshop resource block (`8BIM` 0x0404, as JPEG
/// APP13 carries them). `None` when there is no record-2 field.
pub fn iptc(raw: &[u8]) -> Option<Iptc> {
    let iim = photoshop_iptc(raw).unwrap_or(raw);
    let mut out = Iptc::default();
    let mut utf8 = false;
    let mut at = iim.iter().position(|&b| b == 0x1C)?;
    while let Some(&[0x1C, record, dataset, high, low]) = iim.get(at..at + 5) {
        if high & 0x80 != 0 {
            break; // extended datasets are not text fields
        }
        let len = usize::from(u16::from_be_bytes([high, low]));
        let Some(data) = iim.get(at + 5..at + 5 + len) else {
            break;
        };
        at += 5 + len;
        // 1:90 coded character set: ESC % G is UTF-8.
        if (record, dataset) == (1, 90) && data == b"\x1b%G" {
            utf8 = true;
            continue;
        }
        if record != 2 {
            continue;
        }
        let text = || -> String {
            let text = match std::str::from_utf8(data) {
                Ok(text) => text.to_owned(),
                // Not UTF-8 (and not declared so): ISO 8859-1, IIM's usual default.
                Err(_) if !utf8 => data.iter().map(|&b| char::from(b)).collect(),
                Err(_) => String::from_utf8_lossy(data).into_owned(),
            };
            clean(&text)
        };
        let push = |list: &mut Vec<String>, value: String| {
            if !value.is_empty() && list.len() < MAX_VALUES && !list.contains(&value) {
                list.push(value);
            }
        };
        match dataset {
            5 => out.title = Some(text()),
            25 => push(&mut out.keywords, text()),
            80 => push(&mut out.creator, text()),
            90 => out.city = Some(text()),
            101 => out.country = Some(text()),
            105 => out.headline = Some(text()),
            116 => out.copyright = Some(text()),
            120 => out.caption = Some(text()),
            _ => {}
        }
    }
    (out != Iptc::default()).then_some(out)
}

/// The IPTC-NAA resource (0x0404) of a Photoshop image resource block, if `raw` is one.
fn photoshop_iptc(raw: &[u8]) -> Option<&[u8]> {
    let mut at = if raw.starts_with(b"Photoshop 3.0\0") {
        14
    } else if raw.starts_with(b"8BIM") {
        0
    } else {
        return None;
    };
    while let Some(header) = raw.get(at..at + 6) {
        if &header[..4] != b"8BIM" {
            return None;
        }
        let id = u16::from_be_bytes([header[4], header[5]]);
        // A Pascal string name, padded to an even length (length byte included).
        let name_len = usize::from(*raw.get(at + 6)?);
        let name_total = (1 + name_len + 1) & !1;
        let size_at = at + 6 + name_total;
        let size = u32::from_be_bytes(raw.get(size_at..size_at + 4)?.try_into().ok()?) as usize;
        let data_at = size_at + 4;
        let data = raw.get(data_at..data_at.checked_add(size)?)?;
        if id == 0x0404 {
            return Some(data);
        }
        at = data_at + size + (size & 1);
    }
    None
}

/// What an ICC profile's header and `desc` tag say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Icc {
    /// Size of the profile in bytes.
    pub bytes: usize,
    /// Profile description (`desc`), e.g. `sRGB IEC61966-2.1`, `Display P3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Data colour space: `RGB`, `CMYK`, `GRAY`, `Lab`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_space: Option<String>,
    /// Profile version, e.g. `4.3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Reads an ICC profile's header and description. `None` when it is not an ICC profile.
pub fn icc(raw: &[u8]) -> Option<Icc> {
    if raw.len() < 132 || raw.get(36..40) != Some(b"acsp") {
        return None;
    }
    let signature = |at: usize| -> Option<String> {
        let text = std::str::from_utf8(raw.get(at..at + 4)?).ok()?;
        let text = text.trim_end_matches([' ', '\0']);
        (!text.is_empty() && text.chars().all(|c| c.is_ascii_graphic())).then(|| text.to_owned())
    };
    let version = Some(format!("{}.{}", raw[8], raw[9] >> 4));
    let count = u32::from_be_bytes(raw[128..132].try_into().ok()?) as usize;
    let mut description = None;
    for i in 0..count.min(1_000) {
        let entry = 132 + i * 12;
        let Some(tag) = raw.get(entry..entry + 12) else {
            break;
        };
        if &tag[..4] != b"desc" {
            continue;
        }
        let offset = u32::from_be_bytes(tag[4..8].try_into().ok()?) as usize;
        let size = u32::from_be_bytes(tag[8..12].try_into().ok()?) as usize;
        description = raw
            .get(offset..offset.checked_add(size)?)
            .and_then(description_text);
        break;
    }
    Some(Icc {
        bytes: raw.len(),
        description,
        color_space: signature(16),
        version,
    })
}

/// The text of a `desc` tag: `desc` (ICC v2, ASCII) or `mluc` (v4, UTF-16BE, first record).
fn description_text(tag: &[u8]) -> Option<String> {
    match tag.get(..4)? {
        b"desc" => {
            let len = u32::from_be_bytes(tag.get(8..12)?.try_into().ok()?) as usize;
            let text = tag.get(12..12 + len.min(tag.len().saturating_sub(12)))?;
            let text: String = text
                .iter()
                .take_while(|&&b| b != 0)
                .map(|&b| char::from(b))
                .collect();
            Some(clean(&text)).filter(|t| !t.is_empty())
        }
        b"mluc" => {
            let records = u32::from_be_bytes(tag.get(8..12)?.try_into().ok()?);
            if records == 0 {
                return None;
            }
            let len = u32::from_be_bytes(tag.get(20..24)?.try_into().ok()?) as usize;
            let offset = u32::from_be_bytes(tag.get(24..28)?.try_into().ok()?) as usize;
            let units: Vec<u16> = tag
                .get(offset..offset.checked_add(len)?)?
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(clean(&String::from_utf16_lossy(&units))).filter(|t| !t.is_empty())
        }
        _ => None,
    }
}

/// Trimmed, control characters dropped, at most [`MAX_TEXT`] characters.
fn clean(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(MAX_TEXT)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmp_orientation_as_attribute_or_element() {
        let wrap = |inner: &str| {
            format!(
                r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">{inner}</rdf:RDF></x:xmpmeta>"#
            )
        };
        let attribute = wrap(
            r#"<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="3"/>"#,
        );
        assert_eq!(xmp(attribute.as_bytes()).unwrap().orientation, Some(3));
        let element = wrap(
            r#"<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"><tiff:Orientation> 6 </tiff:Orientation></rdf:Description>"#,
        );
        assert_eq!(xmp(element.as_bytes()).unwrap().orientation, Some(6));
        let out_of_range = wrap(
            r#"<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="9"/>"#,
        );
        assert_eq!(xmp(out_of_range.as_bytes()).unwrap().orientation, None);
    }

    #[test]
    fn xmp_dublin_core() {
        let packet = crate::corpus::XMP_PACKET;
        let x = xmp(packet.as_bytes()).unwrap();
        assert_eq!(x.title.as_deref(), Some("Sunset over Seoul"));
        assert_eq!(x.description.as_deref(), Some("Namsan tower at dusk"));
        assert_eq!(x.keywords, ["sunset", "seoul", "노을"]);
        assert_eq!(x.creator, ["Kim Minji"]);
        assert_eq!(x.rights.as_deref(), Some("CC BY 4.0"));
        assert_eq!(x.bytes, packet.len());
        assert_eq!(x.packet.as_deref(), Some(packet));
        // Too big to store, still read; garbage is no XMP fields, not an error.
        let big = format!("{packet}{}", " ".repeat(MAX_XMP_STORED));
        let x = xmp(big.as_bytes()).unwrap();
        assert_eq!((x.packet, x.keywords.len()), (None, 3));
        let x = xmp(b"<x:xmpmeta><unclosed").unwrap();
        assert_eq!(x.title, None);
        assert_eq!(xmp(b""), None);
    }

    #[test]
    fn iptc_bare_and_in_photoshop_resources() {
        let iim = crate::corpus::iptc_iim();
        let i = iptc(&iim).unwrap();
        assert_eq!(i.title.as_deref(), Some("Hero shot"));
        assert_eq!(i.keywords, ["sunset", "tower"]);
        assert_eq!(i.creator, ["Kim Minji"]);
        assert_eq!(i.copyright.as_deref(), Some("© Studio"));
        assert_eq!(i.caption.as_deref(), Some("Seen from the river"));
        let wrapped = crate::corpus::photoshop_irb(&iim);
        assert_eq!(iptc(&wrapped), Some(i));
        assert_eq!(iptc(b"no iptc here"), None);
        // A dataset claiming more than there is ends the walk.
        assert_eq!(iptc(&[0x1C, 2, 5, 0x10, 0x00, b'x']), None);
    }

    #[test]
    fn icc_header_and_description() {
        let v2 = crate::corpus::icc_profile("CMYK", "US Web Coated (SWOP) v2");
        let p = icc(&v2).unwrap();
        assert_eq!(p.color_space.as_deref(), Some("CMYK"));
        assert_eq!(p.description.as_deref(), Some("US Web Coated (SWOP) v2"));
        assert_eq!(p.version.as_deref(), Some("2.1"));
        assert_eq!(icc(b"short"), None);
        assert_eq!(icc(&[0u8; 200]), None);
    }
}
