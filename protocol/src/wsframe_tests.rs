use super::*;

fn frame(op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = vec![0x80 | op];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => v.push(m | n as u8),
        n if n < 65536 => {
            v.push(m | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(m | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            v.extend_from_slice(&k);
            v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i & 3]));
        }
        None => v.extend_from_slice(payload),
    }
    v
}

/// Feed `wire` in pieces of at most `piece` bytes (as short reads would
/// deliver it) and collect (opcode, payload) of every frame.
fn drive(fb: &mut FrameBuf, wire: &[u8], piece: usize) -> Result<Vec<(u8, Vec<u8>)>, FrameError> {
    let mut out = Vec::new();
    let mut rest = wire;
    loop {
        while let Some(f) = fb.next_frame()? {
            out.push((f.opcode, fb.payload(&f).to_vec()));
        }
        if rest.is_empty() {
            return Ok(out);
        }
        let spare = fb.spare();
        assert!(!spare.is_empty());
        let n = spare.len().min(piece).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        fb.filled(n);
        rest = &rest[n..];
    }
}

#[test]
fn reads_small_big_and_masked_frames_split_anywhere() {
    let big = vec![b'z'; 70_000];
    let mut wire = frame(OP_TEXT, b"hello", None);
    wire.extend(frame(OP_BINARY, &big, None));
    wire.extend(frame(OP_TEXT, b"masked!", Some([1, 2, 3, 4])));
    wire.extend(frame(OP_PING, b"p", None));
    wire.extend(frame(OP_TEXT, &[b'a'; 300], None));
    for piece in [1, 7, 100, 1 << 20] {
        let mut fb = FrameBuf::new(1 << 20, Masking::Either);
        let got = drive(&mut fb, &wire, piece).unwrap();
        assert_eq!(got.len(), 5, "piece {piece}");
        assert_eq!(got[0], (OP_TEXT, b"hello".to_vec()));
        assert_eq!(got[1].1, big);
        assert_eq!(got[2].1, b"masked!");
        assert_eq!(got[3], (OP_PING, b"p".to_vec()));
        assert_eq!(got[4].1, vec![b'a'; 300]);
        fb.spare();
        assert!(fb.capacity() <= SMALL, "shrunk back: {}", fb.capacity());
        fb.release();
        assert_eq!(fb.capacity(), 0, "released while idle");
    }
}

#[test]
fn seeded_bytes_come_first() {
    let mut wire = frame(OP_TEXT, b"welcome", None);
    wire.extend(frame(OP_TEXT, b"next", None));
    let (seed, rest) = wire.split_at(5);
    let mut fb = FrameBuf::new(100, Masking::Either);
    fb.seed(seed);
    let got = drive(&mut fb, rest, 3).unwrap();
    assert_eq!(
        got,
        vec![(OP_TEXT, b"welcome".to_vec()), (OP_TEXT, b"next".to_vec())]
    );
    // A seed longer than the small buffer is kept whole.
    let long = frame(OP_TEXT, &[b'q'; 2000], None);
    let mut fb = FrameBuf::new(4000, Masking::Either);
    fb.seed(&long);
    assert_eq!(drive(&mut fb, &[], 1).unwrap()[0].1.len(), 2000);
}

#[test]
fn rejects_bad_frames() {
    for (wire, masking) in [
        (vec![0xf1, 0x00], Masking::Either), // reserved bits
        (vec![0x83, 0x00], Masking::Either), // unknown opcode
        (vec![0x09, 0x00], Masking::Either), // fragmented ping
        (frame(OP_PING, &[0; 126], None), Masking::Either), // oversized control frame
        (frame(OP_TEXT, &[0; 2000], None), Masking::Either), // above the limit
        (frame(OP_TEXT, b"hi", None), Masking::Required), // a client must mask
    ] {
        let mut fb = FrameBuf::new(1000, masking);
        assert!(drive(&mut fb, &wire, 64).is_err(), "{:?}", &wire[..2]);
    }
    // The limit is checked from the header, before the payload arrives.
    let mut fb = FrameBuf::new(1000, Masking::Either);
    let header = &frame(OP_TEXT, &[0; 70_000], None)[..10];
    assert_eq!(
        drive(&mut fb, header, 64),
        Err(FrameError::TooLarge(70_000, 1000))
    );
}

#[test]
fn a_huge_length_is_refused_without_allocating_it() {
    let mut wire = vec![0x82, 0xff];
    wire.extend_from_slice(&u64::MAX.to_be_bytes());
    wire.extend_from_slice(&[1, 2, 3, 4]);
    let mut fb = FrameBuf::new(1 << 16, Masking::Required);
    assert!(matches!(
        drive(&mut fb, &wire, 64),
        Err(FrameError::TooLarge(u64::MAX, _))
    ));
    assert!(fb.capacity() <= SMALL);
}

#[test]
fn mask_round_trips_at_every_length_and_offset() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len as u8).collect();
        let mut d = data.clone();
        apply_mask(&mut d, [9, 8, 7, 6]);
        let expect: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [9, 8, 7, 6][i & 3])
            .collect();
        assert_eq!(d, expect, "len {len}");
        apply_mask(&mut d, [9, 8, 7, 6]);
        assert_eq!(d, data);
    }
}

#[test]
fn poll_fill_holds_no_buffer_while_waiting() {
    use std::task::Poll;
    let wire = frame(OP_TEXT, b"hi", Some([1, 2, 3, 4]));
    let mut fb = FrameBuf::new(100, Masking::Required);
    // Nothing there: nothing allocated.
    assert!(fb.poll_fill(|_| Poll::Pending).is_pending());
    assert_eq!(fb.capacity(), 0);
    // Data arrives in two reads: the first lands on the stack, then is kept.
    let (a, b) = wire.split_at(3);
    let read = |part: &[u8]| {
        let part = part.to_vec();
        move |room: &mut [u8]| {
            room[..part.len()].copy_from_slice(&part);
            Poll::Ready(Ok(part.len()))
        }
    };
    assert!(matches!(fb.poll_fill(read(a)), Poll::Ready(Ok(3))));
    assert_eq!(fb.next_frame().unwrap(), None);
    assert!(fb.poll_fill(read(b)).is_ready());
    let f = fb.next_frame().unwrap().unwrap();
    assert_eq!(fb.payload(&f), b"hi");
    // Drained, then pending: the buffer goes back.
    assert!(fb.capacity() > 0);
    assert!(fb.poll_fill(|_| Poll::Pending).is_pending());
    assert_eq!(fb.capacity(), 0);
    assert!(matches!(
        fb.poll_fill(|_| Poll::Ready(Ok(0))),
        Poll::Ready(Ok(0))
    ));
}

#[test]
fn a_frame_put_back_is_returned_again_as_it_came() {
    let key = [0x11, 0x5a, 0xc3, 0x07];
    let mut wire = frame(OP_TEXT, b"hello, put back", Some(key));
    wire.extend(frame(OP_PING, b"p", Some([1, 2, 3, 4])));
    let mut fb = FrameBuf::new(1000, Masking::Required);
    fb.seed(&wire);
    let first = fb.next_frame().unwrap().unwrap();
    assert_eq!(fb.payload(&first), b"hello, put back");
    fb.put_back(&first);
    assert_eq!(fb.buffered(), wire.len(), "the frame's bytes are back");
    // Masked again: another reader given these bytes unmasks them once.
    let mut copy = FrameBuf::new(1000, Masking::Required);
    copy.seed(&wire);
    let again = fb.next_frame().unwrap().unwrap();
    let theirs = copy.next_frame().unwrap().unwrap();
    assert_eq!(fb.payload(&again), copy.payload(&theirs));
    assert_eq!(fb.payload(&again), b"hello, put back");
    // Only the last frame returned can be put back, and only once.
    let ping = fb.next_frame().unwrap().unwrap();
    fb.put_back(&again);
    fb.put_back(&ping);
    fb.put_back(&ping);
    let ping_again = fb.next_frame().unwrap().unwrap();
    assert_eq!(
        (ping_again.opcode, fb.payload(&ping_again)),
        (OP_PING, &b"p"[..])
    );
    assert!(fb.next_frame().unwrap().is_none());
}
