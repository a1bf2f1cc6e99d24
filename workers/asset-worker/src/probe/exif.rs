//! The EXIF essentials users search by: orientation, camera, capture time and position.
//!
//! Input is the raw EXIF block (a TIFF structure) as the container holds it. A block that does
//! not parse yields `None`: bad EXIF never fails the probe of an otherwise good image.

use exif::{Field, In, Reader, Tag, Value};
use serde::Serialize;

/// EXIF fields worth indexing. Every field is optional; an empty block serialises to `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExifSummary {
    /// TIFF orientation 1–8 (1 = upright; 6 = rotate 90° clockwise to display).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<u16>,
    /// Camera maker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    /// Camera model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Lens model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lens: Option<String>,
    /// Software that wrote the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
    /// `DateTimeOriginal` (else `DateTime`) as ISO 8601, with the offset when the file records
    /// one (`2024-05-01T10:20:30+09:00`), local time without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    /// Position in decimal degrees (WGS 84), south and west negative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gps: Option<GpsPosition>,
}

/// A GPS fix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpsPosition {
    /// Latitude in degrees, −90…90.
    pub latitude: f64,
    /// Longitude in degrees, −180…180.
    pub longitude: f64,
    /// Altitude in metres above sea level, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altitude_m: Option<f64>,
}

/// Parses a raw EXIF block (TIFF header first).
pub fn summarize(mut raw: Vec<u8>) -> Option<ExifSummary> {
    // WebP's and PNG's EXIF chunks sometimes keep JPEG's APP1 prefix.
    if raw.starts_with(b"Exif\0\0") {
        raw.drain(..6);
    }
    let exif = Reader::new().read_raw(raw).ok()?;
    let field = |tag| exif.get_field(tag, In::PRIMARY);
    let text = |tag| field(tag).and_then(ascii);
    let captured_at = field(Tag::DateTimeOriginal)
        .map(|f| (f, field(Tag::OffsetTimeOriginal)))
        .or_else(|| field(Tag::DateTime).map(|f| (f, field(Tag::OffsetTime))))
        .and_then(|(date, offset)| date_time(date, offset));
    Some(ExifSummary {
        orientation: field(Tag::Orientation)
            .and_then(|f| f.value.get_uint(0))
            .and_then(|v| u16::try_from(v).ok())
            .filter(|v| (1..=8).contains(v)),
        make: text(Tag::Make),
        model: text(Tag::Model),
        lens: text(Tag::LensModel),
        software: text(Tag::Software),
        captured_at,
        gps: gps(&exif),
    })
}

/// The first IFD of a TIFF file: its image size and bits per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TiffHeader {
    pub width: u32,
    pub height: u32,
    pub bits_per_sample: Option<u8>,
}

/// Reads the first IFD of a (classic) TIFF file; `None` when it does not parse or has no size.
pub fn tiff_header(bytes: &[u8]) -> Option<TiffHeader> {
    let exif = Reader::new().read_raw(bytes.to_vec()).ok()?;
    let uint = |tag| {
        exif.get_field(tag, In::PRIMARY)
            .and_then(|f| f.value.get_uint(0))
    };
    let width = uint(Tag::ImageWidth).filter(|&w| w > 0)?;
    let height = uint(Tag::ImageLength).filter(|&h| h > 0)?;
    Some(TiffHeader {
        width,
        height,
        bits_per_sample: uint(Tag::BitsPerSample).and_then(|b| u8::try_from(b).ok()),
    })
}

fn ascii(field: &Field) -> Option<String> {
    match &field.value {
        Value::Ascii(parts) => {
            let first = parts.first()?;
            let text = String::from_utf8_lossy(first);
            let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            (!text.is_empty()).then(|| text.chars().take(256).collect())
        }
        _ => None,
    }
}

fn raw_ascii(field: &Field) -> Option<&[u8]> {
    match &field.value {
        Value::Ascii(parts) => parts.first().map(Vec::as_slice),
        _ => None,
    }
}

fn date_time(date: &Field, offset: Option<&Field>) -> Option<String> {
    let mut dt = exif::DateTime::from_ascii(raw_ascii(date)?).ok()?;
    if let Some(offset) = offset.and_then(raw_ascii) {
        let _ = dt.parse_offset(offset);
    }
    let valid = (1..=12).contains(&dt.month)
        && (1..=31).contains(&dt.day)
        && dt.hour < 24
        && dt.minute < 60
        && dt.second < 61;
    if !valid {
        return None;
    }
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
    );
    if let Some(offset) = dt.offset {
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs();
        out.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
    }
    Some(out)
}

fn gps(exif: &exif::Exif) -> Option<GpsPosition> {
    let degrees = |tag, reference, negative: u8| -> Option<f64> {
        let field = exif.get_field(tag, In::PRIMARY)?;
        let Value::Rational(parts) = &field.value else {
            return None;
        };
        let mut value = 0.0;
        for (part, scale) in parts.iter().zip([1.0, 60.0, 3600.0]) {
            value += part.to_f64() / scale;
        }
        let sign = match exif
            .get_field(reference, In::PRIMARY)
            .and_then(raw_ascii)
            .and_then(|r| r.first().copied())
        {
            Some(r) if r.eq_ignore_ascii_case(&negative) => -1.0,
            _ => 1.0,
        };
        Some(value * sign).filter(|v| v.is_finite())
    };
    let latitude = degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S')?;
    let longitude = degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W')?;
    if latitude.abs() > 90.0 || longitude.abs() > 180.0 {
        return None;
    }
    let altitude_m = exif
        .get_field(Tag::GPSAltitude, In::PRIMARY)
        .and_then(|f| match &f.value {
            Value::Rational(v) => v.first().map(|r| r.to_f64()),
            _ => None,
        })
        .filter(|v| v.is_finite())
        .map(|v| {
            let below = exif
                .get_field(Tag::GPSAltitudeRef, In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
                == Some(1);
            if below {
                -v
            } else {
                v
            }
        });
    Some(GpsPosition {
        latitude: round6(latitude),
        longitude: round6(longitude),
        altitude_m: altitude_m.map(|a| (a * 100.0).round() / 100.0),
    })
}

/// Six decimals (≈ 0.1 m) is what a GPS fix is worth.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
