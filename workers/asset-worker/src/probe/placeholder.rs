//! A compact placeholder for the picture: a ThumbHash (≈ 25 bytes, base64) that clients
//! decode into a blurred preview with the right aspect ratio and average colour while the
//! real file loads.

use super::color::Grid;

/// Largest side of the grid a ThumbHash is computed from (the format's limit is 100). Its
/// seven lowest frequencies per axis need far fewer samples; this is the side of the grid
/// the other statistics are sampled into, which the placeholder's grid is resampled from.
pub const MAX_SIDE: u32 = 32;

/// ThumbHash of `grid` (at most [`MAX_SIDE`] per side), standard base64 with padding.
pub fn thumbhash(grid: &Grid) -> Option<String> {
    if grid.width > 100 || grid.height > 100 || grid.width == 0 || grid.height == 0 {
        return None;
    }
    let hash = thumbhash::rgba_to_thumb_hash(grid.width as usize, grid.height as usize, &grid.rgba);
    Some(base64(&hash))
}

/// Grid size keeping the aspect ratio of a `width`×`height` image, longest side [`MAX_SIDE`].
pub fn grid_size(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let side = u64::from(MAX_SIDE);
    if w >= h {
        (
            side.min(w) as u32,
            ((h * side.min(w)).div_ceil(w)).max(1) as u32,
        )
    } else {
        (
            ((w * side.min(h)).div_ceil(h)).max(1) as u32,
            side.min(h) as u32,
        )
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn grid_keeps_aspect() {
        assert_eq!(grid_size(1000, 500), (32, 16));
        assert_eq!(grid_size(500, 1000), (16, 32));
        assert_eq!(grid_size(10, 3), (10, 3));
        assert_eq!(grid_size(10000, 1), (32, 1));
    }

    #[test]
    fn hash_of_a_flat_grid() {
        let grid = Grid {
            width: 8,
            height: 4,
            rgba: [10, 200, 30, 255].repeat(32),
        };
        let hash = thumbhash(&grid).unwrap();
        assert!(hash.len() > 8 && hash.len() < 60, "{hash}");
    }
}
