//! The frame reader wsnode and loadgen share (`protocol::wsframe::FrameBuf`),
//! fed a byte stream in pieces of pseudo-random sizes, as short reads
//! deliver it. Every frame it returns must be the frame a parse of the
//! whole stream finds at the same offset, unmasked; every error the one
//! that parse implies; and its buffer must stay within the bound the frame
//! limit sets, and shrink back when empty. A frame put back
//! (`FrameBuf::put_back`, as wsnode's connection loops do before handing a
//! connection to its task) must be buffered again whole and returned again
//! the same.
//!
//! Input: byte 0 picks the masking, the frame limit, whether the first
//! piece arrives through `seed` (as handshake leftovers do), whether the
//! buffer is released whenever it is empty and whether every frame is put
//! back once; byte 1 seeds the piece sizes; the rest is the stream.

use protocol::wsframe::{FrameBuf, FrameError, Masking, SMALL, apply_mask, parse_header};

/// Frame limits to try: around the header's length encodings, the buffer
/// sizes, and a limit no fuzz input can fill.
const MAXES: [usize; 8] = [0, 1, 125, 126, 512, 4096, 65_536, 1 << 20];
/// wsframe gives a buffer above this back once it is empty (its
/// `SHRINK_ABOVE`, private there).
const SHRINK_ABOVE: usize = 4096;
/// Longest frame header: 2 + 8 (length) + 4 (mask).
const MAX_HEADER: usize = 14;

pub fn run(data: &[u8]) {
    let [flags, piece_seed, stream @ ..] = data else {
        return;
    };
    let masking = if flags & 1 == 0 {
        Masking::Either
    } else {
        Masking::Required
    };
    let seed_first = flags & 2 != 0;
    let release_idle = flags & 4 != 0;
    let max = MAXES[usize::from(flags >> 3) & 7];
    let put_back_each = flags & 0x40 != 0;
    // A buffer grows to what the pending frame needs, rounded up.
    let bound = (max + MAX_HEADER).max(SMALL).next_power_of_two();
    let mut pieces = Pieces(u32::from(*piece_seed) | 0x100);
    let mut fb = FrameBuf::new(max, masking);
    // Bytes of the stream given to the reader, and the offset of the next frame.
    let (mut fed, mut off) = (0, 0);
    if seed_first {
        fed = pieces.next().min(SMALL).min(stream.len());
        fb.seed(&stream[..fed]);
        assert_eq!(fb.buffered(), fed);
    }
    loop {
        match fb.next_frame() {
            Ok(Some(f)) => {
                let f = if put_back_each {
                    let (op, fin, payload) = (f.opcode, f.fin, fb.payload(&f).to_vec());
                    fb.put_back(&f);
                    assert_eq!(fb.buffered(), fed - off, "a frame put back is whole again");
                    let again = fb
                        .next_frame()
                        .expect("a frame put back parses again")
                        .expect("a frame put back is whole");
                    assert_eq!((again.opcode, again.fin), (op, fin));
                    assert_eq!(fb.payload(&again), &payload[..], "the same payload again");
                    again
                } else {
                    f
                };
                let h = parse_header(&stream[off..])
                    .expect("the whole stream parses where the reader read a frame")
                    .expect("the whole stream has the header");
                assert_eq!((f.opcode, f.fin), (h.opcode, h.fin));
                assert_eq!(
                    f.range.len() as u64,
                    h.payload,
                    "payload length is the header's"
                );
                assert!(f.range.len() <= max, "payload within the limit");
                assert!(masking == Masking::Either || h.mask.is_some());
                let start = off + h.len;
                let mut want = stream[start..start + f.range.len()].to_vec();
                if let Some(key) = h.mask {
                    apply_mask(&mut want, key);
                }
                assert_eq!(fb.payload(&f), &want[..], "payload unmasked");
                off = start + f.range.len();
            }
            Ok(None) if fed == stream.len() => {
                assert_eq!(fb.buffered(), fed - off);
                // What is left is the start of a frame the reader would accept.
                match parse_header(&stream[off..]) {
                    Ok(None) => {}
                    Ok(Some(h)) => {
                        assert!(h.payload <= max as u64);
                        assert!(masking == Masking::Either || h.mask.is_some());
                        assert!(h.len as u64 + h.payload > (stream.len() - off) as u64);
                    }
                    Err(e) => panic!("the reader waits for more after {e:?}"),
                }
                return;
            }
            Ok(None) => {
                assert_eq!(fb.buffered(), fed - off);
                let idle = fb.buffered() == 0;
                if idle && release_idle {
                    fb.release();
                    assert_eq!(fb.capacity(), 0, "an idle reader holds no buffer");
                }
                let spare = fb.spare();
                assert!(!spare.is_empty(), "room for at least one byte");
                let n = pieces.next().min(spare.len()).min(stream.len() - fed);
                spare[..n].copy_from_slice(&stream[fed..fed + n]);
                fb.filled(n);
                fed += n;
                if idle {
                    assert!(fb.capacity() <= SHRINK_ABOVE, "shrinks back when empty");
                }
            }
            Err(e) => {
                let want = match parse_header(&stream[off..]) {
                    Err(e) => e,
                    Ok(Some(h)) if h.payload > max as u64 => FrameError::TooLarge(h.payload, max),
                    Ok(Some(h)) if masking == Masking::Required && h.mask.is_none() => {
                        FrameError::Protocol("unmasked client frame")
                    }
                    other => {
                        panic!("the reader refused ({e:?}) what the whole stream has: {other:?}")
                    }
                };
                assert_eq!(e, want);
                assert!(e.to_string().len() < 128, "error text is bounded");
                return;
            }
        }
        assert!(
            fb.capacity() <= bound,
            "capacity {} over {bound} for a {max}-byte limit",
            fb.capacity()
        );
    }
}

/// Read sizes: mostly short, sometimes one byte, sometimes large (xorshift32).
struct Pieces(u32);

impl Pieces {
    fn next(&mut self) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        let r = x as usize >> 2;
        match x & 3 {
            0 => 1,
            1 => 1 + r % 8,
            2 => 1 + r % 64,
            _ => 1 + r % 2048,
        }
    }
}
