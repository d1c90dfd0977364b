//! The in-memory broker's tests, in their own file so `memory.rs` holds
//! only the broker (and stays under the 600-line rule).

use super::*;

fn plan() -> AnswerPlan {
    AnswerPlan {
        chunks: 3,
        interval: Duration::ZERO,
        chunk_size: 8,
        prompt: "q".into(),
    }
}

fn broker(ttl: Duration) -> MemoryBroker {
    MemoryBroker::new(MemoryLimits {
        max_sessions: 2,
        max_cached_streams: 2,
        max_cached_bytes: 1 << 20,
        session_ttl: ttl,
        stream_ttl: ttl,
        streams_in_welcome: 4,
    })
}

fn req(id: &str, token: Option<&str>) -> AttachRequest {
    AttachRequest {
        session_id: id.into(),
        token: token.map(Into::into),
    }
}

#[tokio::test]
async fn token_guards_reattach_and_sessions_are_bounded() {
    let b = broker(Duration::from_secs(60));
    let (s1, _r1, _) = ConnSink::new(1, 8);
    let a = b.attach(req("s", None), s1.clone()).await.unwrap();
    let (s2, _r2, _) = ConnSink::new(2, 8);
    assert_eq!(
        b.attach(req("s", None), s2.clone()).await.unwrap_err(),
        BrokerError::Unauthorized
    );
    assert_eq!(
        b.attach(req("s", Some("nope")), s2.clone())
            .await
            .unwrap_err(),
        BrokerError::Unauthorized
    );
    b.attach(req("s", Some(&a.session.token)), s2.clone())
        .await
        .unwrap();
    b.attach(req("t", None), s2.clone()).await.unwrap();
    assert_eq!(
        b.attach(req("u", None), s2).await.unwrap_err(),
        BrokerError::Overloaded("max sessions")
    );
}

#[tokio::test]
async fn append_enforces_order_and_owner() {
    let b = broker(Duration::from_secs(60));
    let (sink, mut rx, _) = ConnSink::new(1, 8);
    let a = b.attach(req("s", None), sink).await.unwrap();
    let lease = b
        .open_stream(&a.session, "m".into(), &plan())
        .await
        .unwrap();
    assert_eq!(
        b.open_stream(&a.session, "m".into(), &plan())
            .await
            .unwrap_err(),
        BrokerError::Conflict
    );
    b.append_chunk(&lease, 0, Bytes::from_static(b"c0"))
        .await
        .unwrap();
    assert_eq!(
        b.append_chunk(&lease, 2, Bytes::from_static(b"c2"))
            .await
            .unwrap_err(),
        BrokerError::OutOfOrder {
            expected: 1,
            got: 2
        }
    );
    assert!(matches!(rx.recv().await, Out::Chunk(c) if c.index == 0));
    let stranger = Owner {
        session_id: "s".into(),
        token: "other".into(),
    };
    assert_eq!(
        b.read_stream(&stranger, "m", 0).await.unwrap_err(),
        BrokerError::NotFound
    );
    let r = b.read_stream(&a.session, "m", 0).await.unwrap();
    assert_eq!((r.from, r.total, r.status), (0, 1, StreamStatus::Streaming));
}

#[tokio::test]
async fn cache_evicts_only_finished_streams() {
    let b = broker(Duration::from_secs(60));
    let (sink, _rx, _) = ConnSink::new(1, 64);
    let a = b.attach(req("s", None), sink).await.unwrap();
    let l1 = b
        .open_stream(&a.session, "m1".into(), &plan())
        .await
        .unwrap();
    b.open_stream(&a.session, "m2".into(), &plan())
        .await
        .unwrap();
    assert!(matches!(
        b.open_stream(&a.session, "m3".into(), &plan())
            .await
            .unwrap_err(),
        BrokerError::Overloaded(_)
    ));
    b.finish_stream(&l1, StreamStatus::Done, Bytes::from_static(b"done"))
        .await
        .unwrap();
    b.open_stream(&a.session, "m3".into(), &plan())
        .await
        .unwrap();
    assert_eq!(
        b.read_stream(&a.session, "m1", 0).await.unwrap_err(),
        BrokerError::NotFound
    );
}

#[tokio::test]
async fn cache_stays_within_its_byte_budget() {
    let b = MemoryBroker::new(MemoryLimits {
        max_sessions: 2,
        max_cached_streams: 100,
        max_cached_bytes: 2550,
        session_ttl: Duration::from_secs(60),
        stream_ttl: Duration::from_millis(30),
        streams_in_welcome: 4,
    });
    let (sink, _rx, _) = ConnSink::new(1, 64);
    let a = b.attach(req("s", None), sink).await.unwrap();
    let chunk = Bytes::from(vec![b'x'; 400]);
    let l1 = b
        .open_stream(&a.session, "m1".into(), &plan())
        .await
        .unwrap();
    for i in 0..3 {
        b.append_chunk(&l1, i, chunk.clone()).await.unwrap();
    }
    b.finish_stream(&l1, StreamStatus::Done, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    // Counted as allocated: 400 B in jemalloc's 448 class plus the shared
    // header, and four list slots (the list's first allocation).
    assert_eq!(frame_cost(400), 448 + 32);
    assert_eq!(frame_cost(10), 16 + 32);
    let slots = 4 * size_of::<Bytes>();
    assert_eq!(
        b.status().cached_bytes,
        ENTRY_BYTES + 2 + slots + 3 * 480 + 48
    );
    let l2 = b
        .open_stream(&a.session, "m2".into(), &plan())
        .await
        .unwrap();
    b.append_chunk(&l2, 0, chunk.clone()).await.unwrap();
    // The next chunk does not fit beside m1: the finished m1 is evicted.
    b.append_chunk(&l2, 1, chunk.clone()).await.unwrap();
    assert_eq!(
        b.read_stream(&a.session, "m1", 0).await.unwrap_err(),
        BrokerError::NotFound
    );
    b.append_chunk(&l2, 2, chunk.clone()).await.unwrap();
    b.append_chunk(&l2, 3, chunk.clone()).await.unwrap();
    assert_eq!(b.status().cached_bytes, ENTRY_BYTES + 2 + slots + 4 * 480);
    // Nothing finished is left to evict: the stream cannot grow...
    assert_eq!(
        b.append_chunk(&l2, 4, chunk.clone()).await.unwrap_err(),
        BrokerError::Overloaded("stream cache full")
    );
    // ...one more empty stream still fits, a second does not.
    let l3 = b
        .open_stream(&a.session, "m3".into(), &plan())
        .await
        .unwrap();
    assert_eq!(
        b.open_stream(&a.session, "m4-with-an-id-of-30-characters".into(), &plan())
            .await
            .unwrap_err(),
        BrokerError::Overloaded("stream cache full")
    );
    assert!(b.status().cached_bytes <= 2550);
    // The accounting returns to zero once everything has expired.
    for l in [&l2, &l3] {
        b.finish_stream(l, StreamStatus::Interrupted, Bytes::from_static(b"end"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(b.cleanup().await.streams, 2);
    assert_eq!((b.status().cached_streams, b.status().cached_bytes), (0, 0));
}

#[tokio::test]
async fn cleanup_removes_idle_sessions_after_ttl_only() {
    let b = broker(Duration::from_millis(50));
    let (sink, rx, _) = ConnSink::new(1, 8);
    b.attach(req("s", None), sink).await.unwrap();
    assert_eq!(b.cleanup().await.sessions, 0, "connected session stays");
    drop(rx);
    b.detach("s", 1).await;
    assert_eq!(b.cleanup().await.sessions, 0, "within its TTL");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(b.cleanup().await.sessions, 1);
    assert_eq!(b.status().sessions, 0);
}
