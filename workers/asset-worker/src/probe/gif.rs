//! GIF structure without decoding pixels: frame count, loop count and total duration, read by
//! walking the block stream. The walk also proves the stream is complete (it must reach the
//! trailer), which the pixel decoder, reading only the first frame, would not notice.

use serde::Serialize;

use super::ProbeError;

/// What the block stream of a GIF says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Animation {
    /// Image descriptors in the stream (1 for a still image).
    pub frames: u32,
    /// NETSCAPE2.0 loop count: 0 loops forever; absent when the file does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loop_count: Option<u16>,
    /// Sum of the frames' delays.
    pub duration_ms: u64,
    /// APNG: the still image (what viewers without APNG support show) is not one of the
    /// animation's frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separate_default_image: Option<bool>,
}

/// Walks the blocks of a GIF. Fails with `Truncated` when the data ends before the trailer and
/// `Corrupt` on an unknown block.
pub fn walk(bytes: &[u8]) -> Result<Animation, ProbeError> {
    let mut cursor = Cursor { bytes, at: 0 };
    cursor.take(6)?; // GIF87a / GIF89a
    let screen = cursor.take(7)?;
    if screen[4] & 0x80 != 0 {
        cursor.take(3 << ((screen[4] & 0x07) + 1))?;
    }
    let mut animation = Animation {
        separate_default_image: None,
        frames: 0,
        loop_count: None,
        duration_ms: 0,
    };
    loop {
        match cursor.byte()? {
            0x21 => {
                let label = cursor.byte()?;
                let mut first = true;
                let mut netscape = false;
                loop {
                    let size = cursor.byte()? as usize;
                    if size == 0 {
                        break;
                    }
                    let block = cursor.take(size)?;
                    match label {
                        // Graphic control extension: delay in centiseconds.
                        0xF9 if first && block.len() >= 3 => {
                            let delay = u16::from_le_bytes([block[1], block[2]]);
                            animation.duration_ms += u64::from(delay) * 10;
                        }
                        0xFF if first => {
                            netscape = block == b"NETSCAPE2.0" || block == b"ANIMEXTS1.0";
                        }
                        0xFF if netscape && block.len() >= 3 && block[0] == 1 => {
                            animation.loop_count = Some(u16::from_le_bytes([block[1], block[2]]));
                        }
                        _ => {}
                    }
                    first = false;
                }
            }
            0x2C => {
                animation.frames = animation.frames.saturating_add(1);
                let descriptor = cursor.take(9)?;
                if descriptor[8] & 0x80 != 0 {
                    cursor.take(3 << ((descriptor[8] & 0x07) + 1))?;
                }
                cursor.byte()?; // LZW minimum code size
                loop {
                    let size = cursor.byte()? as usize;
                    if size == 0 {
                        break;
                    }
                    cursor.take(size)?;
                }
            }
            0x3B => break,
            other => {
                return Err(ProbeError::Corrupt(format!(
                    "unknown GIF block 0x{other:02X} at byte {}",
                    cursor.at - 1
                )))
            }
        }
    }
    if animation.frames == 0 {
        return Err(ProbeError::Corrupt("GIF has no image".into()));
    }
    Ok(animation)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProbeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        match end {
            Some(end) => {
                let slice = &self.bytes[self.at..end];
                self.at = end;
                Ok(slice)
            }
            None => Err(ProbeError::Truncated(format!(
                "GIF ends at byte {} before its trailer",
                self.bytes.len()
            ))),
        }
    }

    fn byte(&mut self) -> Result<u8, ProbeError> {
        Ok(self.take(1)?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1×1 GIF with `frames` frames of 10 cs each, looping forever.
    fn animated(frames: usize) -> Vec<u8> {
        let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec();
        gif.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
        gif.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00");
        for _ in 0..frames {
            gif.extend_from_slice(&[0x21, 0xF9, 4, 0, 10, 0, 0, 0]);
            gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
            gif.extend_from_slice(&[2, 2, 0x4C, 0x01, 0]);
        }
        gif.push(0x3B);
        gif
    }

    #[test]
    fn counts_frames_loops_and_time() {
        let info = walk(&animated(3)).unwrap();
        assert_eq!(info.frames, 3);
        assert_eq!(info.loop_count, Some(0));
        assert_eq!(info.duration_ms, 300);
    }

    #[test]
    fn truncation_and_garbage() {
        let gif = animated(2);
        for cut in [5, 13, 20, gif.len() - 1] {
            assert!(
                matches!(walk(&gif[..cut]), Err(ProbeError::Truncated(_))),
                "cut at {cut}"
            );
        }
        let mut bad = gif.clone();
        let at = bad.len() - 1;
        bad[at] = 0x99;
        assert!(matches!(walk(&bad), Err(ProbeError::Corrupt(_))));
    }
}
