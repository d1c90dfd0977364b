//! Reading a reply allocates nothing when it is one object of plain
//! members (`profile::doc::Doc`): every reply the built-in modes read from
//! wsnode is, so the load engine's steady state allocates nothing per reply.
//! Counted with a global allocator of this test binary's own; the one test
//! in this file is the only thread that classifies while counting.

use loadgen::Mode;
use loadgen::engine::reply::{Event, Reply, classify};
use loadgen::profile::builtin::{self, ChatAsk};
use loadgen::profile::classify::Keys;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations made while classifying `frame` 1,000 times, after one
/// classification to check what it reads as.
fn allocations(p: &loadgen::profile::rules::Profile, frame: &str, keys: &Keys<'_>) -> usize {
    let reply = classify(p, frame.as_bytes(), keys);
    assert!(
        matches!(reply, Reply::Message { .. } | Reply::Ignore),
        "{frame}: {reply:?}"
    );
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        black_box(classify(p, black_box(frame.as_bytes()), keys));
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn the_built_in_modes_read_wsnodes_replies_without_allocating() {
    let echo = builtin::profile(Mode::Echo, ChatAsk::default()).unwrap();
    let chat = builtin::profile(Mode::Chat, ChatAsk::default()).unwrap();
    let filler = "xxxxxxxxxxxxxxxx";
    let echo_keys = Keys {
        id_prefix: "",
        filler,
    };
    let reply = r#"{"type":"echo","id":42,"ts":1000,"payload":"1200.xxxxxxxxxxxxxxxx","node_id":"n1-8081"}"#;
    let whole = classify(&echo, reply.as_bytes(), &echo_keys);
    assert!(
        matches!(&whole, Reply::Message { seq: Some(42), event: Event::Whole { marker: Some(m) } } if m.intact && m.sent_us == 1200),
        "{whole:?}"
    );
    assert_eq!(allocations(&echo, reply, &echo_keys), 0, "the echo reply");

    let chat_keys = Keys {
        id_prefix: "ab12-7-",
        filler,
    };
    let text = protocol::chunk::chunk_text("ab12-7-3", 0, 12);
    let chunk = format!(r#"{{"type":"chunk","message_id":"ab12-7-3","index":0,"text":"{text}"}}"#);
    let part = classify(&chat, chunk.as_bytes(), &chat_keys);
    assert!(
        matches!(
            part,
            Reply::Message {
                seq: Some(3),
                event: Event::Part {
                    index: Some(0),
                    text_ok: true
                }
            }
        ),
        "{part:?}"
    );
    for frame in [
        chunk.as_str(),
        r#"{"type":"ack","message_id":"ab12-7-3"}"#,
        r#"{"type":"done","message_id":"ab12-7-3","chunks":5}"#,
        r#"{"type":"welcome","session_id":"s1","node_id":"n1","token":"t"}"#,
    ] {
        assert_eq!(allocations(&chat, frame, &chat_keys), 0, "{frame}");
    }

    // The count sees allocations: a nested reply is read as a tree.
    let nested =
        r#"{"type":"echo","id":42,"ts":1000,"payload":"1200.xxxxxxxxxxxxxxxx","meta":{"n":1}}"#;
    assert!(
        allocations(&echo, nested, &echo_keys) >= 1000,
        "a tree per nested reply"
    );
}
