//! Container structure the pixel decoder does not report, read without decoding: APNG and
//! animated WebP frames, loop count and duration; TIFF pages; progressive JPEG; interlaced PNG
//! and GIF. Every walk is bounded by the data (each step moves forward or stops) and by a cap
//! on what it counts; a structure that runs past the end simply ends the walk, the pixel
//! decoder reports the truncation.

use super::gif::Animation;

/// Most frames or pages counted (a file claiming more is still probed; the count stops).
const MAX_COUNT: u32 = 100_000;

/// What the chunks of a PNG say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PngStructure {
    /// Adam7 interlacing (IHDR).
    pub interlaced: bool,
    /// APNG: frames (fcTL chunks), plays (acTL; 0 = forever) and the sum of frame delays.
    pub animation: Option<Animation>,
}

/// Walks the chunks of a PNG (after its 8-byte signature).
pub fn png(bytes: &[u8]) -> PngStructure {
    let mut out = PngStructure::default();
    let mut at = 8usize;
    let mut frames = 0u32;
    let mut plays = None;
    let mut duration_ms = 0u64;
    let mut separate_default_image = false;
    while let Some(header) = bytes.get(at..at + 8) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let Some(data) = at
            .checked_add(8 + length)
            .and_then(|end| bytes.get(at + 8..end))
        else {
            break;
        };
        match kind {
            b"IHDR" if data.len() >= 13 => out.interlaced = data[12] == 1,
            b"acTL" if data.len() >= 8 => {
                plays = Some(u32::from_be_bytes([data[4], data[5], data[6], data[7]]));
            }
            b"fcTL" if data.len() >= 26 => {
                frames = (frames + 1).min(MAX_COUNT);
                let numerator = u16::from_be_bytes([data[20], data[21]]);
                let denominator = match u16::from_be_bytes([data[22], data[23]]) {
                    0 => 100, // the APNG specification: 0 means hundredths
                    d => d,
                };
                duration_ms += u64::from(numerator) * 1000 / u64::from(denominator);
            }
            // The first IDAT before any fcTL: the default image is no animation frame.
            b"IDAT" if frames == 0 => separate_default_image = true,
            b"IEND" => break,
            _ => {}
        }
        at += 12 + length; // length, type, data, CRC
    }
    if let Some(plays) = plays {
        out.animation = Some(Animation {
            frames,
            loop_count: Some(plays.min(u32::from(u16::MAX)) as u16),
            duration_ms,
            separate_default_image: Some(separate_default_image),
        });
    }
    out
}

/// Frames, loop count and duration of an animated WebP (VP8X with ANIM and ANMF chunks);
/// `None` for a still one.
pub fn webp_animation(bytes: &[u8]) -> Option<Animation> {
    let mut at = 12usize;
    let mut animated = false;
    let mut animation = Animation {
        separate_default_image: None,
        frames: 0,
        loop_count: None,
        duration_ms: 0,
    };
    while let Some(header) = bytes.get(at..at + 8) {
        let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let Some(data) = at
            .checked_add(8 + length)
            .and_then(|end| bytes.get(at + 8..end))
        else {
            break;
        };
        match &header[..4] {
            b"VP8X" if !data.is_empty() => animated = data[0] & 0x02 != 0,
            b"ANIM" if data.len() >= 6 => {
                animation.loop_count = Some(u16::from_le_bytes([data[4], data[5]]));
            }
            b"ANMF" if data.len() >= 16 => {
                animation.frames = (animation.frames + 1).min(MAX_COUNT);
                let duration = u32::from_le_bytes([data[12], data[13], data[14], 0]);
                animation.duration_ms += u64::from(duration);
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at += 8 + length + (length & 1);
    }
    (animated && animation.frames > 0).then_some(animation)
}

/// How many pages (IFDs in the main chain) a TIFF or BigTIFF has; `None` when the header
/// cannot be read. A chain that loops or leaves the file ends the count.
pub fn tiff_pages(bytes: &[u8]) -> Option<u32> {
    let little = match bytes.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u64> {
        let b = bytes.get(at..at + 2)?;
        Some(u64::from(if little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        }))
    };
    let u32_at = |at: usize| -> Option<u64> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(u64::from(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }))
    };
    let u64_at = |at: usize| -> Option<u64> {
        let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
        Some(if little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let big = match u16_at(2)? {
        42 => false,
        43 => true,
        _ => return None,
    };
    let mut offset = if big { u64_at(8)? } else { u32_at(4)? };
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0u32;
    while offset != 0 && pages < MAX_COUNT && seen.insert(offset) {
        let at = usize::try_from(offset).ok()?;
        let (entries, entry_size, count_size) = if big {
            (u64_at(at), 20, 8)
        } else {
            (u16_at(at), 12, 2)
        };
        let Some(entries) = entries else { break };
        let next_at = usize::try_from(entries)
            .ok()
            .and_then(|n| n.checked_mul(entry_size))
            .and_then(|n| n.checked_add(at + count_size));
        let Some(next_at) = next_at else { break };
        pages += 1;
        offset = match if big {
            u64_at(next_at)
        } else {
            u32_at(next_at)
        } {
            Some(next) => next,
            None => break,
        };
    }
    (pages > 0).then_some(pages)
}

/// Whether a JPEG's first frame header is progressive (SOF2, or SOF6/10/14), read by walking
/// the marker segments up to the first scan.
pub fn jpeg_progressive(bytes: &[u8]) -> bool {
    let mut at = 2usize; // after SOI
    while let Some(&[0xFF, marker]) = bytes.get(at..at + 2) {
        match marker {
            // Fill bytes before a marker.
            0xFF => {
                at += 1;
                continue;
            }
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => {
                at += 2;
                continue;
            }
            0xC2 | 0xC6 | 0xCA | 0xCE => return true,
            0xC0 | 0xC1 | 0xC3 | 0xC5 | 0xC7 | 0xC9 | 0xCB | 0xCD | 0xCF | 0xDA | 0xD9 => {
                return false
            }
            _ => {}
        }
        let Some(length) = bytes.get(at + 2..at + 4) else {
            return false;
        };
        at += 2 + usize::from(u16::from_be_bytes([length[0], length[1]]));
    }
    false
}

/// Whether the first image of a GIF is interlaced.
pub fn gif_interlaced(bytes: &[u8]) -> bool {
    let Some(screen) = bytes.get(6..13) else {
        return false;
    };
    let mut at = 13usize;
    if screen[4] & 0x80 != 0 {
        at += 3 << ((screen[4] & 0x07) + 1);
    }
    loop {
        match bytes.get(at) {
            Some(0x21) => {
                at += 2;
                // Sub-blocks until the empty one.
                while let Some(&size) = bytes.get(at) {
                    at += 1 + usize::from(size);
                    if size == 0 {
                        break;
                    }
                }
            }
            Some(0x2C) => return bytes.get(at + 9).is_some_and(|flags| flags & 0x40 != 0),
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_frames() {
        // SOI, APP0 (length 4), SOF2.
        let progressive = [0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC2, 0, 2];
        assert!(jpeg_progressive(&progressive));
        let mut baseline = progressive;
        baseline[9] = 0xC0;
        assert!(!jpeg_progressive(&baseline));
        assert!(!jpeg_progressive(&progressive[..9]));
        assert!(!jpeg_progressive(&[0xFF, 0xD8]));
    }

    #[test]
    fn tiff_chains_that_loop_or_leave_the_file_end_the_count() {
        // Little-endian, first IFD at 8 with no entries whose next IFD is itself.
        let looping = [b'I', b'I', 42, 0, 8, 0, 0, 0, 0, 0, 8, 0, 0, 0];
        assert_eq!(tiff_pages(&looping), Some(1));
        let leaving = [b'I', b'I', 42, 0, 8, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        assert_eq!(tiff_pages(&leaving), Some(1));
        assert_eq!(tiff_pages(b"II*\0"), None);
        assert_eq!(tiff_pages(b"XX*\0\x08\0\0\0"), None);
    }

    #[test]
    fn garbage_ends_every_walk() {
        for bytes in [
            &b""[..],
            b"\x89PNG\r\n\x1a\n\xff\xff\xff\xff",
            b"RIFF\0\0\0\0WEBPVP8X",
        ] {
            assert_eq!(png(bytes).animation, None);
            assert_eq!(webp_animation(bytes), None);
            assert!(!gif_interlaced(bytes));
        }
    }
}
