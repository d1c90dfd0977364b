//! The bytes the attack clients put on the wire, written by hand (RFC 6455
//! 5.2) so that they can say what no well-behaved library would: a text
//! frame that is not UTF-8, a header announcing 1 GiB, continuations that
//! never end. Client frames are masked, as a server must require; the
//! node's frames (unmasked) are read back only far enough to count pongs
//! and learn the close code.

use protocol::wsframe::parse_header;
pub use protocol::wsframe::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};

/// A fixed masking key: the node must unmask whatever key it gets.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The header of a masked client frame announcing `len` payload bytes
/// (the payload itself may never follow: the oversized attack).
pub fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out
}

/// `payload` masked with [`MASK`], starting at byte `offset` of the payload.
pub fn masked(payload: &[u8], offset: usize) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ MASK[(offset + i) % 4])
        .collect()
}

/// A whole masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(fin, opcode, payload.len() as u64);
    out.extend_from_slice(&masked(payload, 0));
    out
}

/// The HTTP upgrade request for `/ws/chat`; the slowloris attack sends all
/// of it but the blank line that ends it.
pub fn upgrade_request(host: &str) -> String {
    format!(
        "GET /ws/chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Where the response's header ends in `buf`, and whether it is a 101.
pub fn upgrade_response(buf: &[u8]) -> Option<(usize, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((end, buf.starts_with(b"HTTP/1.1 101")))
}

/// One frame from the node.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub opcode: u8,
    /// Bytes the frame took in the buffer (header and payload).
    pub len: usize,
    /// A close frame's status code, when it has one.
    pub close_code: Option<u16>,
}

/// The frame at the start of `buf`: `Ok(None)` until it is complete;
/// `Err` for a masked frame or a length no server frame should have.
pub fn server_frame(buf: &[u8]) -> Result<Option<ServerFrame>, String> {
    let Some(h) = parse_header(buf).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if h.mask.is_some() {
        return Err("the node sent a masked frame".into());
    }
    if h.payload > 16 << 20 {
        return Err(format!("the node announced a {}-byte frame", h.payload));
    }
    let total = h.len + h.payload as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let close_code = (h.opcode == OP_CLOSE && h.payload >= 2)
        .then(|| u16::from_be_bytes([buf[h.len], buf[h.len + 1]]));
    Ok(Some(ServerFrame {
        opcode: h.opcode,
        len: total,
        close_code,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8], head: usize) -> Vec<u8> {
        let key = &frame[head - 4..head];
        frame[head..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect()
    }

    #[test]
    fn client_frames_are_masked_with_the_right_length_encoding() {
        let f = client_frame(true, OP_TEXT, b"hi");
        assert_eq!(&f[..2], &[0x81, 0x82]);
        assert_eq!(&f[2..6], &MASK);
        assert_eq!(unmask(&f, 6), b"hi");
        assert_ne!(&f[6..], b"hi", "the payload is masked on the wire");

        let f = client_frame(false, OP_CONTINUATION, &[7u8; 300]);
        assert_eq!(&f[..4], &[0x00, 0x80 | 126, 0x01, 0x2c]);
        assert_eq!(unmask(&f, 8), vec![7u8; 300]);

        let h = header(true, OP_BINARY, 1 << 30);
        assert_eq!(h.len(), 14);
        assert_eq!(&h[..2], &[0x82, 0xff]);
        assert_eq!(&h[2..10], &(1u64 << 30).to_be_bytes());
        assert_eq!(header(true, OP_PING, 125)[1], 0x80 | 125);
        assert_eq!(header(true, OP_PING, 126)[1], 0x80 | 126);
    }

    #[test]
    fn masking_continues_from_an_offset() {
        let whole = masked(b"abcdefg", 0);
        let mut split = masked(b"abc", 0);
        split.extend(masked(b"defg", 3));
        assert_eq!(whole, split);
    }

    #[test]
    fn server_frames_and_close_codes_are_read() {
        assert_eq!(server_frame(&[0x81]).unwrap(), None);
        assert_eq!(server_frame(&[0x81, 3, b'a']).unwrap(), None);
        let f = server_frame(&[0x81, 1, b'a', 0x88]).unwrap().unwrap();
        assert_eq!((f.opcode, f.len, f.close_code), (OP_TEXT, 3, None));
        let f = server_frame(&[0x88, 4, 0x03, 0xf1, b'x', b'y'])
            .unwrap()
            .unwrap();
        assert_eq!((f.opcode, f.len, f.close_code), (OP_CLOSE, 6, Some(1009)));
        let f = server_frame(&[0x8a, 0]).unwrap().unwrap();
        assert_eq!((f.opcode, f.close_code), (OP_PONG, None));
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend(vec![b'z'; 256]);
        assert_eq!(server_frame(&long).unwrap().unwrap().len, 260);
        assert_eq!(server_frame(&long[..100]).unwrap(), None);
        assert!(server_frame(&[0x81, 0x81, 0, 0, 0, 0, 0]).is_err());
        let mut huge = vec![0x82, 127];
        huge.extend((1u64 << 40).to_be_bytes());
        assert!(server_frame(&huge).is_err());
    }

    #[test]
    fn upgrade_request_and_response() {
        let r = upgrade_request("127.0.0.1:9");
        assert!(r.starts_with("GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        assert!(r.ends_with("\r\n\r\n") && r.matches("\r\n\r\n").count() == 1);
        assert_eq!(upgrade_response(b"HTTP/1.1 101 Switching"), None);
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x01a";
        assert_eq!(upgrade_response(resp), Some((resp.len() - 3, true)));
        let refused = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert_eq!(upgrade_response(refused), Some((refused.len(), false)));
    }
}
