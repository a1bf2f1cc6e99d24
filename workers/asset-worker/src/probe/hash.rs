//! Fingerprints: SHA-256 of the file for exact duplicates, and a 64-bit DCT perceptual hash
//! (pHash) of the picture for near duplicates: resized, recompressed or lightly edited copies
//! differ in few bits (compare with the Hamming distance; ≤ 10 of 64 is a near duplicate).

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Side of the luma grid the pHash is computed on.
pub const PHASH_GRID: usize = 32;

/// pHash of a `PHASH_GRID`×`PHASH_GRID` luma grid (row-major, any scale): the 8×8 lowest
/// frequencies of its 2-D DCT-II, each bit set when the coefficient exceeds their median
/// (the DC term left out of the median). Returned as 16 hex digits, most significant first.
pub fn phash(luma: &[f32]) -> Option<String> {
    const N: usize = PHASH_GRID;
    const K: usize = 8;
    if luma.len() != N * N {
        return None;
    }
    // cos((2x+1)uπ / 2N) for the K lowest frequencies.
    let mut basis = [[0f32; N]; K];
    for (u, row) in basis.iter_mut().enumerate() {
        for (x, value) in row.iter_mut().enumerate() {
            *value = (((2 * x + 1) * u) as f32 * std::f32::consts::PI / (2 * N) as f32).cos();
        }
    }
    // Rows first (N×K), then columns (K×K).
    let mut rows = [[0f32; K]; N];
    for (y, out) in rows.iter_mut().enumerate() {
        let line = &luma[y * N..(y + 1) * N];
        for (u, coefficient) in out.iter_mut().enumerate() {
            *coefficient = line.iter().zip(basis[u]).map(|(a, b)| a * b).sum();
        }
    }
    let mut dct = [0f32; K * K];
    for v in 0..K {
        for u in 0..K {
            dct[v * K + u] = (0..N).map(|y| rows[y][u] * basis[v][y]).sum();
        }
    }
    let mut ac: Vec<f32> = dct[1..].to_vec();
    ac.sort_by(|a, b| a.total_cmp(b));
    let median = (ac[ac.len() / 2 - 1] + ac[ac.len() / 2]) / 2.0;
    let bits = dct
        .iter()
        .fold(0u64, |acc, c| (acc << 1) | u64::from(*c > median));
    Some(format!("{bits:016x}"))
}

/// Hamming distance of two hashes from [`phash`].
pub fn phash_distance(a: &str, b: &str) -> Option<u32> {
    let a = u64::from_str_radix(a, 16).ok()?;
    let b = u64::from_str_radix(b, 16).ok()?;
    Some((a ^ b).count_ones())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xF)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn gradient(scale: f32, offset: f32) -> Vec<f32> {
        (0..PHASH_GRID * PHASH_GRID)
            .map(|i| {
                let (x, y) = ((i % PHASH_GRID) as f32, (i / PHASH_GRID) as f32);
                scale * ((x * 0.2).sin() * 40.0 + (x * y * 0.01).cos() * 30.0 + 0.1 * x * y)
                    + offset
            })
            .collect()
    }

    #[test]
    fn near_duplicates_are_close_and_different_images_are_far() {
        let a = phash(&gradient(1.0, 0.0)).unwrap();
        let brighter = phash(&gradient(1.2, 7.0)).unwrap();
        let flipped: Vec<f32> = gradient(1.0, 0.0).into_iter().rev().collect();
        let other = phash(&flipped).unwrap();
        assert_eq!(a.len(), 16);
        assert!(
            phash_distance(&a, &brighter).unwrap() <= 2,
            "{a} vs {brighter}"
        );
        assert!(phash_distance(&a, &other).unwrap() > 16, "{a} vs {other}");
        assert_eq!(phash(&[0.0; 3]), None);
    }
}
