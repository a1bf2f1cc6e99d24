//! Synthetic sample files, written with real encoders, for the tests and the benchmark: every
//! supported format, JPEGs with an EXIF block built byte by byte, a 16-bit PNG, an animated
//! GIF, a multi-layer OpenEXR, SVG, and the damaged files the worker must reject.
//!
//! Compiled for tests and with the `corpus` feature only; never part of the worker itself.

use std::io::Cursor;

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, Frame, ImageBuffer, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// A photo-like RGB picture: smooth gradients, a few shapes and fine noise, so encoders do
/// realistic work. `seed` varies the content.
pub fn picture(width: u32, height: u32, seed: u32) -> RgbImage {
    let (fw, fh) = (width.max(1) as f32, height.max(1) as f32);
    let phase = seed as f32 * 0.7;
    ImageBuffer::from_fn(width, height, |x, y| {
        let (u, v) = (x as f32 / fw, y as f32 / fh);
        let mut h = x.wrapping_mul(374_761_393)
            ^ y.wrapping_mul(668_265_263)
            ^ seed.wrapping_mul(2_246_822_519);
        h = (h ^ (h >> 13)).wrapping_mul(1_274_126_177);
        let noise = ((h >> 24) & 0x0F) as f32 - 8.0;
        let disc = if (u - 0.6).powi(2) + (v - 0.4).powi(2) < 0.04 {
            60.0
        } else {
            0.0
        };
        let r = 200.0 * u + 40.0 * (v * 9.0 + phase).sin() + disc + noise;
        let g = 180.0 * v + 30.0 * (u * 7.0 - phase).cos() + noise;
        let b = 120.0 + 80.0 * ((u + v) * 5.0 + phase).sin() - disc + noise;
        Rgb([clamp(r), clamp(g), clamp(b)])
    })
}

fn clamp(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .unwrap_or_else(|e| panic!("encoding {format:?}: {e}"));
    out.into_inner()
}

/// 8-bit RGB PNG.
pub fn png_rgb8(width: u32, height: u32, seed: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(picture(width, height, seed)),
        ImageFormat::Png,
    )
}

/// 16-bit RGBA PNG (alpha fades left to right).
pub fn png_rgba16(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let base = picture(width, height, seed);
    let wide = ImageBuffer::from_fn(width, height, |x, y| {
        let p = base.get_pixel(x, y).0;
        let alpha = (65535 * (x + 1) / width.max(1)) as u16;
        Rgba([
            u16::from(p[0]) * 257,
            u16::from(p[1]) * 257,
            u16::from(p[2]) * 257,
            alpha,
        ])
    });
    encode(&DynamicImage::ImageRgba16(wide), ImageFormat::Png)
}

/// Baseline JPEG at `quality`.
pub fn jpeg(width: u32, height: u32, seed: u32, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&picture(width, height, seed))
        .unwrap_or_else(|e| panic!("encoding JPEG: {e}"));
    out
}

/// Animated GIF of `frames` frames, 100 ms each, looping forever.
pub fn gif_animated(width: u32, height: u32, frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, 30);
        encoder
            .set_repeat(Repeat::Infinite)
            .unwrap_or_else(|e| panic!("GIF repeat: {e}"));
        for i in 0..frames {
            let rgb = picture(width, height, i);
            let rgba: RgbaImage = DynamicImage::ImageRgb8(rgb).to_rgba8();
            let frame = Frame::from_parts(rgba, 0, 0, image::Delay::from_numer_denom_ms(100, 1));
            encoder
                .encode_frame(frame)
                .unwrap_or_else(|e| panic!("GIF frame: {e}"));
        }
    }
    out
}

/// Lossless WebP.
pub fn webp(width: u32, height: u32, seed: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(picture(width, height, seed)).to_rgba8()),
        ImageFormat::WebP,
    )
}

/// 8-bit RGB TIFF.
pub fn tiff(width: u32, height: u32, seed: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(picture(width, height, seed)),
        ImageFormat::Tiff,
    )
}

/// An APNG of `frames` RGBA frames, each shown `delay_ms`, played `plays` times (0 = forever);
/// the first frame is half transparent.
pub fn apng(width: u32, height: u32, frames: u32, delay_ms: u16, plays: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_animated(frames, plays).expect("acTL");
        encoder.set_frame_delay(delay_ms, 1000).expect("fcTL");
        let mut writer = encoder.write_header().expect("PNG header");
        for frame in 0..frames {
            let alpha = if frame == 0 { 128 } else { 255 };
            let data: Vec<u8> = picture(width, height, frame)
                .pixels()
                .flat_map(|p| [p.0[0], p.0[1], p.0[2], alpha])
                .collect();
            writer.write_image_data(&data).expect("APNG frame");
        }
        writer.finish().expect("APNG end");
    }
    out
}

/// A 1×1 Adam7-interlaced PNG (a single pixel is laid out the same in both encodings, so
/// only the IHDR flag and its CRC differ from a plain one).
pub fn png_interlaced_pixel() -> Vec<u8> {
    let mut bytes = png_rgb8(1, 1, 0);
    // Signature (8), IHDR length and type (8), then width, height, depth, colour,
    // compression, filter and interlace: the flag is byte 28, the CRC follows the 13 bytes.
    bytes[28] = 1;
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// An animated lossless WebP: `frames` frames of `width`×`height`, each `duration_ms`,
/// looping `loops` times (0 = forever), built around the bitstream of [`webp`].
pub fn webp_animated(
    width: u32,
    height: u32,
    frames: u32,
    duration_ms: u32,
    loops: u16,
) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| -> Vec<u8> {
        let mut out = kind.to_vec();
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        out
    };
    let u24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x02 | 0x10, 0, 0, 0]; // animation, alpha
    vp8x.extend(u24(width - 1));
    vp8x.extend(u24(height - 1));
    body.extend(chunk(b"VP8X", &vp8x));
    let mut anim = vec![0, 0, 0, 0];
    anim.extend_from_slice(&loops.to_le_bytes());
    body.extend(chunk(b"ANIM", &anim));
    for frame in 0..frames {
        let still = webp(width, height, frame);
        // The still file's only chunk after "RIFF", size, "WEBP" is its VP8L bitstream.
        let bitstream = &still[12..];
        let mut anmf = Vec::new();
        anmf.extend(u24(0));
        anmf.extend(u24(0));
        anmf.extend(u24(width - 1));
        anmf.extend(u24(height - 1));
        anmf.extend(u24(duration_ms));
        anmf.push(0);
        anmf.extend_from_slice(bitstream);
        body.extend(chunk(b"ANMF", &anmf));
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// A TIFF of `pages` 8-bit RGB pages.
pub fn tiff_pages(width: u32, height: u32, pages: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    {
        let mut encoder = tiff::encoder::TiffEncoder::new(&mut out).expect("TIFF header");
        for page in 0..pages {
            let data = picture(width, height, page).into_raw();
            encoder
                .write_image::<tiff::encoder::colortype::RGB8>(width, height, &data)
                .expect("TIFF page");
        }
    }
    out.into_inner()
}

/// 24-bit BMP.
pub fn bmp(width: u32, height: u32, seed: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(picture(width, height, seed)),
        ImageFormat::Bmp,
    )
}

/// Channel names of [`exr_layers`]: a base RGBA layer, depth, and two named layers.
pub const EXR_CHANNELS: [&str; 11] = [
    "A",
    "B",
    "G",
    "R",
    "Z",
    "diffuse.B",
    "diffuse.G",
    "diffuse.R",
    "normal.X",
    "normal.Y",
    "normal.Z",
];

/// Single-part OpenEXR with the channels of [`EXR_CHANNELS`]: RGBA and depth as 32-bit
/// floats, the `diffuse` and `normal` layers as 16-bit floats.
pub fn exr_layers(width: u32, height: u32) -> Vec<u8> {
    use exr::prelude::*;
    let base = picture(width, height, 3);
    let (w, h) = (width as usize, height as usize);
    let plane =
        |c: usize| -> Vec<f32> { base.pixels().map(|p| f32::from(p.0[c]) / 255.0).collect() };
    let half = |values: Vec<f32>| FlatSamples::F16(values.into_iter().map(f16::from_f32).collect());
    let mut channels: Vec<AnyChannel<FlatSamples>> = vec![
        AnyChannel::new("R", FlatSamples::F32(plane(0))),
        AnyChannel::new("G", FlatSamples::F32(plane(1))),
        AnyChannel::new("B", FlatSamples::F32(plane(2))),
        AnyChannel::new("A", FlatSamples::F32(vec![1.0; w * h])),
        AnyChannel::new(
            "Z",
            FlatSamples::F32((0..w * h).map(|i| i as f32 / (w * h) as f32).collect()),
        ),
    ];
    for (name, c) in [("diffuse.R", 0), ("diffuse.G", 1), ("diffuse.B", 2)] {
        channels.push(AnyChannel::new(name, half(plane(c))));
    }
    for name in ["normal.X", "normal.Y", "normal.Z"] {
        channels.push(AnyChannel::new(name, half(vec![0.5; w * h])));
    }
    let layer = Layer::new(
        (w, h),
        LayerAttributes::default(),
        Encoding::FAST_LOSSLESS,
        AnyChannels::sort(channels.into()),
    );
    let mut out = Cursor::new(Vec::new());
    Image::from_layer(layer)
        .write()
        .to_buffered(&mut out)
        .unwrap_or_else(|e| panic!("encoding EXR: {e}"));
    out.into_inner()
}

/// An SVG document with a viewBox and no width/height attributes.
pub fn svg(view_width: u32, view_height: u32) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {view_width} {view_height}\">\n  <rect width=\"50%\" height=\"50%\" fill=\"#c33\"/>\n</svg>\n"
    )
    .into_bytes()
}

/// EXIF fields to put in a JPEG.
#[derive(Clone, Debug)]
pub struct ExifFields {
    /// TIFF orientation 1–8.
    pub orientation: u16,
    /// Camera maker.
    pub make: &'static str,
    /// Camera model.
    pub model: &'static str,
    /// `YYYY:MM:DD HH:MM:SS`.
    pub date_time_original: &'static str,
    /// `+HH:MM`.
    pub offset_time_original: &'static str,
    /// Degrees, minutes, seconds; south when negative degrees.
    pub latitude: (i32, u32, f64),
    /// Degrees, minutes, seconds; west when negative degrees.
    pub longitude: (i32, u32, f64),
    /// Metres above sea level.
    pub altitude_m: f64,
}

impl Default for ExifFields {
    fn default() -> Self {
        Self {
            orientation: 6,
            make: "Canon",
            model: "Canon EOS R5",
            date_time_original: "2024:05:01 10:20:30",
            offset_time_original: "+09:00",
            latitude: (37, 33, 59.4),
            longitude: (126, 58, 40.8),
            altitude_m: 38.5,
        }
    }
}

/// A JPEG whose APP1 segment carries `fields` (spliced right after SOI).
pub fn jpeg_with_exif(width: u32, height: u32, seed: u32, fields: &ExifFields) -> Vec<u8> {
    let plain = jpeg(width, height, seed, 85);
    let tiff = exif_tiff(fields);
    let mut out = Vec::with_capacity(plain.len() + tiff.len() + 16);
    out.extend_from_slice(&plain[..2]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&plain[2..]);
    out
}

/// An XMP packet with Dublin Core title, description, keywords (one in Korean), creator and
/// rights, as Lightroom or Bridge write them.
pub const XMP_PACKET: &str = r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Sunset over Seoul</rdf:li></rdf:Alt></dc:title>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">Namsan tower at dusk</rdf:li></rdf:Alt></dc:description>
   <dc:subject><rdf:Bag><rdf:li>sunset</rdf:li><rdf:li>seoul</rdf:li><rdf:li>노을</rdf:li></rdf:Bag></dc:subject>
   <dc:creator><rdf:Seq><rdf:li>Kim Minji</rdf:li></rdf:Seq></dc:creator>
   <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">CC BY 4.0</rdf:li></rdf:Alt></dc:rights>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"#;

/// IPTC IIM datasets: UTF-8 declared, title, two keywords, by-line, copyright, caption.
pub fn iptc_iim() -> Vec<u8> {
    let mut out = Vec::new();
    let mut dataset = |record: u8, number: u8, data: &[u8]| {
        out.extend_from_slice(&[0x1C, record, number]);
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    };
    dataset(1, 90, b"\x1b%G");
    dataset(2, 0, &[0, 4]);
    dataset(2, 5, b"Hero shot");
    dataset(2, 25, b"sunset");
    dataset(2, 25, b"tower");
    dataset(2, 80, b"Kim Minji");
    dataset(2, 116, "© Studio".as_bytes());
    dataset(2, 120, b"Seen from the river");
    out
}

/// A Photoshop image resource block (JPEG APP13 payload) holding `iim` as resource 0x0404,
/// after an unrelated resource.
pub fn photoshop_irb(iim: &[u8]) -> Vec<u8> {
    let mut out = b"Photoshop 3.0\0".to_vec();
    let mut resource = |id: u16, data: &[u8]| {
        out.extend_from_slice(b"8BIM");
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // empty name, padded
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
    };
    resource(0x03ED, &[0; 15]);
    resource(0x0404, iim);
    out
}

/// A minimal ICC v2.1 profile of colour space `space` (`RGB `, `CMYK`…) with a `desc` tag.
pub fn icc_profile(space: &str, description: &str) -> Vec<u8> {
    let mut desc = b"desc\0\0\0\0".to_vec();
    desc.extend_from_slice(&(description.len() as u32 + 1).to_be_bytes());
    desc.extend_from_slice(description.as_bytes());
    desc.push(0);
    desc.extend_from_slice(&[0; 12]); // empty Unicode and ScriptCode parts
    let mut header = vec![0u8; 128];
    let size = 128 + 4 + 12 + desc.len();
    header[..4].copy_from_slice(&(size as u32).to_be_bytes());
    header[8] = 2;
    header[9] = 0x10;
    header[12..16].copy_from_slice(b"mntr");
    let space = format!("{space:<4}");
    header[16..20].copy_from_slice(&space.as_bytes()[..4]);
    header[20..24].copy_from_slice(b"XYZ ");
    header[36..40].copy_from_slice(b"acsp");
    let mut out = header;
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(b"desc");
    out.extend_from_slice(&(128u32 + 4 + 12).to_be_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_be_bytes());
    out.extend_from_slice(&desc);
    out
}

/// A progressive-free JPEG carrying XMP (APP1), IPTC (APP13) and an ICC profile (APP2) of
/// colour space `icc_space`.
pub fn jpeg_with_metadata(width: u32, height: u32, icc_space: &str) -> Vec<u8> {
    let plain = jpeg(width, height, 3, 85);
    let segment = |marker: u8, header: &[u8], data: &[u8]| -> Vec<u8> {
        let mut out = vec![0xFF, marker];
        out.extend_from_slice(&((2 + header.len() + data.len()) as u16).to_be_bytes());
        out.extend_from_slice(header);
        out.extend_from_slice(data);
        out
    };
    let mut out = plain[..2].to_vec();
    out.extend(segment(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0",
        XMP_PACKET.as_bytes(),
    ));
    out.extend(segment(0xED, b"", &photoshop_irb(&iptc_iim())));
    out.extend(segment(
        0xE2,
        b"ICC_PROFILE\0\x01\x01",
        &icc_profile(icc_space, "Test profile"),
    ));
    out.extend_from_slice(&plain[2..]);
    out
}

/// A PNG carrying [`XMP_PACKET`] in an `iTXt` chunk.
pub fn png_with_xmp(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .add_itxt_chunk("XML:com.adobe.xmp".into(), XMP_PACKET.into())
            .expect("iTXt");
        let mut writer = encoder.write_header().expect("PNG header");
        writer
            .write_image_data(&picture(width, height, 5).into_raw())
            .expect("PNG data");
    }
    out
}

/// One IFD entry's type and value bytes (little-endian).
enum Entry {
    Ascii(String),
    Short(u16),
    Long(u32),
    Byte(u8),
    Rationals(Vec<(u32, u32)>),
}

impl Entry {
    fn encode(&self) -> (u16, u32, Vec<u8>) {
        match self {
            Entry::Ascii(s) => {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                (2, b.len() as u32, b)
            }
            Entry::Short(v) => (3, 1, v.to_le_bytes().to_vec()),
            Entry::Long(v) => (4, 1, v.to_le_bytes().to_vec()),
            Entry::Byte(v) => (1, 1, vec![*v]),
            Entry::Rationals(v) => (
                5,
                v.len() as u32,
                v.iter()
                    .flat_map(|(n, d)| n.to_le_bytes().into_iter().chain(d.to_le_bytes()))
                    .collect(),
            ),
        }
    }
}

/// Serialises one IFD at `offset` (from the TIFF header): entries, next-IFD 0, then the values
/// that do not fit in four bytes.
fn ifd(entries: &mut [(u16, Entry)], offset: u32) -> Vec<u8> {
    entries.sort_by_key(|(tag, _)| *tag);
    let table = 2 + 12 * entries.len() as u32 + 4;
    let mut head = (entries.len() as u16).to_le_bytes().to_vec();
    let mut data = Vec::new();
    for (tag, entry) in entries.iter() {
        let (kind, count, bytes) = entry.encode();
        head.extend_from_slice(&tag.to_le_bytes());
        head.extend_from_slice(&kind.to_le_bytes());
        head.extend_from_slice(&count.to_le_bytes());
        if bytes.len() <= 4 {
            let mut inline = bytes.clone();
            inline.resize(4, 0);
            head.extend_from_slice(&inline);
        } else {
            head.extend_from_slice(&(offset + table + data.len() as u32).to_le_bytes());
            data.extend_from_slice(&bytes);
            if data.len() % 2 == 1 {
                data.push(0);
            }
        }
    }
    head.extend_from_slice(&0u32.to_le_bytes());
    head.extend_from_slice(&data);
    head
}

fn dms(degrees: u32, minutes: u32, seconds: f64) -> Entry {
    Entry::Rationals(vec![
        (degrees, 1),
        (minutes, 1),
        ((seconds * 100.0).round() as u32, 100),
    ])
}

/// A little-endian TIFF structure with IFD0, the Exif IFD and the GPS IFD.
fn exif_tiff(f: &ExifFields) -> Vec<u8> {
    let header = 8u32;
    // IFD0 has 5 entries; its size is fixed by its contents, so lay it out twice: once to
    // learn its length, once with the real sub-IFD offsets.
    let ifd0 = |exif_at: u32, gps_at: u32| {
        ifd(
            &mut [
                (0x010F, Entry::Ascii(f.make.to_owned())),
                (0x0110, Entry::Ascii(f.model.to_owned())),
                (0x0112, Entry::Short(f.orientation)),
                (0x8769, Entry::Long(exif_at)),
                (0x8825, Entry::Long(gps_at)),
            ],
            header,
        )
    };
    let exif_at = header + ifd0(0, 0).len() as u32;
    let exif = |at| {
        ifd(
            &mut [
                (0x9003, Entry::Ascii(f.date_time_original.to_owned())),
                (0x9011, Entry::Ascii(f.offset_time_original.to_owned())),
            ],
            at,
        )
    };
    let gps_at = exif_at + exif(exif_at).len() as u32;
    let lat_ref = if f.latitude.0 < 0 { "S" } else { "N" };
    let lon_ref = if f.longitude.0 < 0 { "W" } else { "E" };
    let gps = ifd(
        &mut [
            (0x0001, Entry::Ascii(lat_ref.to_owned())),
            (
                0x0002,
                dms(f.latitude.0.unsigned_abs(), f.latitude.1, f.latitude.2),
            ),
            (0x0003, Entry::Ascii(lon_ref.to_owned())),
            (
                0x0004,
                dms(f.longitude.0.unsigned_abs(), f.longitude.1, f.longitude.2),
            ),
            (0x0005, Entry::Byte(u8::from(f.altitude_m < 0.0))),
            (
                0x0006,
                Entry::Rationals(vec![((f.altitude_m.abs() * 10.0).round() as u32, 10)]),
            ),
        ],
        gps_at,
    );
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&header.to_le_bytes());
    out.extend_from_slice(&ifd0(exif_at, gps_at));
    out.extend_from_slice(&exif(exif_at));
    out.extend_from_slice(&gps);
    out
}

/// The first `keep` of `bytes`: a file cut short.
pub fn truncated(bytes: &[u8], keep: usize) -> Vec<u8> {
    bytes[..keep.min(bytes.len())].to_vec()
}

/// `bytes` with `len` bytes from `at` overwritten by a fixed garbage pattern.
pub fn corrupted(bytes: &[u8], at: usize, len: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (i, b) in out.iter_mut().skip(at).take(len).enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(0x5A);
    }
    out
}

/// A PNG whose header claims `width`×`height` but holds almost no data: a decompression bomb
/// as far as the header is concerned.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let small = png_rgb8(4, 4, 1);
    // IHDR data starts at byte 16: width, height (big-endian); the CRC follows at 29.
    let mut out = small;
    out[16..20].copy_from_slice(&width.to_be_bytes());
    out[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
