//! Pure checks of what clients and Redis show: chunk sequences (order,
//! gaps, duplicates) and the chunk frames cached under `stream:chunks:{id}`.

use protocol::ServerMsg;

/// What a sequence of chunk indices looks like against `0..expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// Each index greater than the one before.
    pub in_order: bool,
    /// Indices of `0..expected` never seen.
    pub missing: Vec<u32>,
    /// Indices seen more than once.
    pub duplicates: Vec<u32>,
}

impl Sequence {
    pub fn of(indices: &[u32], expected: u32) -> Sequence {
        let in_order = indices.windows(2).all(|w| w[0] < w[1]);
        let mut seen = vec![0u32; expected as usize];
        let mut duplicates = Vec::new();
        for &i in indices {
            if let Some(n) = seen.get_mut(i as usize) {
                *n += 1;
                if *n == 2 {
                    duplicates.push(i);
                }
            }
        }
        let missing = (0..expected).filter(|&i| seen[i as usize] == 0).collect();
        Sequence {
            in_order,
            missing,
            duplicates,
        }
    }

    /// In order, nothing missing, nothing twice.
    pub fn whole(&self) -> bool {
        self.in_order && self.missing.is_empty() && self.duplicates.is_empty()
    }

    /// One line for the evidence.
    pub fn describe(&self, count: usize) -> String {
        format!(
            "{count} chunks, {}, missing {}, duplicated {}",
            if self.in_order {
                "in order"
            } else {
                "OUT OF ORDER"
            },
            short_list(&self.missing),
            short_list(&self.duplicates)
        )
    }
}

/// `none`, or the first few values.
pub fn short_list(v: &[u32]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let head: Vec<String> = v.iter().take(8).map(u32::to_string).collect();
    let more = if v.len() > 8 {
        format!(" (+{} more)", v.len() - 8)
    } else {
        String::new()
    };
    format!("[{}]{more}", head.join(", "))
}

/// The chunk indices of the frames an `LRANGE stream:chunks:{id} 0 -1`
/// returned, and how many entries were not chunk frames of `message_id`.
pub fn cached_indices(frames: &[String], message_id: &str) -> (Vec<u32>, usize) {
    let mut indices = Vec::with_capacity(frames.len());
    let mut other = 0;
    for f in frames {
        match serde_json::from_str::<ServerMsg>(f) {
            Ok(ServerMsg::Chunk {
                message_id: m,
                index,
                ..
            }) if m == message_id => indices.push(index),
            _ => other += 1,
        }
    }
    (indices, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences() {
        assert!(Sequence::of(&[0, 1, 2], 3).whole());
        let gap = Sequence::of(&[0, 2], 3);
        assert_eq!(gap.missing, vec![1]);
        assert!(gap.in_order && !gap.whole());
        let dup = Sequence::of(&[0, 1, 1, 2], 3);
        assert_eq!(dup.duplicates, vec![1]);
        assert!(!dup.in_order);
        assert!(!Sequence::of(&[1, 0], 2).in_order);
        assert_eq!(short_list(&[]), "none");
        assert_eq!(
            short_list(&(0..10).collect::<Vec<_>>()),
            "[0, 1, 2, 3, 4, 5, 6, 7] (+2 more)"
        );
    }

    #[test]
    fn cached_frames_are_read_as_indices() {
        let frames = vec![
            r#"{"type":"chunk","message_id":"m","index":0,"text":"a"}"#.to_string(),
            r#"{"type":"chunk","message_id":"m","index":1,"text":"b"}"#.to_string(),
            "garbage".to_string(),
        ];
        assert_eq!(cached_indices(&frames, "m"), (vec![0, 1], 1));
    }
}
