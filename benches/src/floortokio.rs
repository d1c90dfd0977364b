//! tcp_floor's sides written the plain tokio way: one task per connection
//! (`--tokio-client`, `--tokio-server`).
//!
//! The epoll floor says what the machine allows; these say what the
//! runtime loadgen and wsnode are built on costs at best, with the same
//! wire work (`floorwire`) and nothing else: no profiles, no stats shards,
//! no queues. The client is one current-thread runtime (like the floor's
//! one epoll loop) whose task per connection waits for its next due time
//! with a tokio timer and reads its replies in the same `select!`; the
//! server is a multi-threaded runtime with a worker per core (as wsnode
//! runs) and a task per connection that reads, answers and writes.

use crate::floorrun::{Outcome, Schedule, Window};
use crate::floorwire::{MaskKeys, ServerConn, Wire};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serve `listener` until the process ends.
pub fn serve(listener: std::net::TcpListener, wire: Wire) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        listener.set_nonblocking(true)?;
        let l = tokio::net::TcpListener::from_std(listener)?;
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(serve_conn(s, wire));
                }
                // Out of descriptors or a connection reset before accept:
                // the others go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
}

async fn serve_conn(mut s: TcpStream, wire: Wire) {
    let mut sc = ServerConn::new(wire);
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = match s.read(sc.spare(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        out.clear();
        if sc.filled(&buf, n, &mut out).is_err() || s.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Drive connected (and handshaken) sockets on the schedule; `leftover`
/// is what each handshake read past its end.
pub fn drive(
    conns: Vec<(std::net::TcpStream, Vec<u8>)>,
    wire: Wire,
    sched: Schedule,
    server_pid: u32,
) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let out = Rc::new(RefCell::new(Outcome::new()?));
    let t0 = Instant::now();
    let res: Result<(), String> = local.block_on(&rt, async {
        let mut tasks = Vec::with_capacity(conns.len());
        for (i, (s, leftover)) in conns.into_iter().enumerate() {
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            let s = TcpStream::from_std(s).map_err(|e| e.to_string())?;
            let out = out.clone();
            tasks.push(tokio::task::spawn_local(conn(
                i as u64, s, leftover, wire, sched, t0, out,
            )));
        }
        let window = {
            let out = out.clone();
            tokio::task::spawn_local(async move {
                tokio::time::sleep_until((t0 + Duration::from_nanos(sched.warmup_ns)).into()).await;
                let answered = out.borrow().answered;
                let w = Window::open(server_pid, answered)?;
                out.borrow_mut().window = Some(w);
                Ok::<(), String>(())
            })
        };
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        if window.is_finished() {
            // A CPU reading that failed at the warm-up's end is the run's
            // error, as in the epoll client.
            window.await.map_err(|e| e.to_string())??;
        } else {
            window.abort();
        }
        Ok(())
    });
    res?;
    Rc::try_unwrap(out)
        .map_err(|_| "a connection task outlived the run".to_string())
        .map(RefCell::into_inner)
}

/// One connection: send on schedule, read replies, until every message
/// was answered or the run gave up.
async fn conn(
    i: u64,
    mut s: TcpStream,
    leftover: Vec<u8>,
    wire: Wire,
    sched: Schedule,
    t0: Instant,
    out: Rc<RefCell<Outcome>>,
) -> Result<(), String> {
    let mut rx = wire.rx(&leftover);
    let (mut k, mut mine) = (0u64, 0u64);
    let mut buf = [0u8; 4096];
    let (mut msg, mut ctl) = (Vec::with_capacity(256), Vec::new());
    let mut keys = MaskKeys::new(0x9e37_79b9_7f4a_7c15 ^ i);
    let give_up = t0 + Duration::from_nanos(sched.give_up_ns());
    loop {
        let at = sched.due(i, k);
        let sending = at < sched.end_ns;
        if !sending && mine == k {
            return Ok(());
        }
        let wake = if sending {
            t0 + Duration::from_nanos(at)
        } else {
            give_up
        };
        tokio::select! {
            biased;
            r = s.read(rx.spare(&mut buf)) => {
                let n = r.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("the server closed a connection".into());
                }
                let got = t0.elapsed().as_nanos() as u64;
                {
                    let mut o = out.borrow_mut();
                    rx.filled(&buf, n, &mut ctl, |at| {
                        mine += 1;
                        o.answered(&sched, at, got);
                    })?;
                }
                if !ctl.is_empty() {
                    s.write_all(&ctl).await.map_err(|e| format!("write: {e}"))?;
                    ctl.clear();
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if !sending {
                    return Ok(());
                }
                let now = t0.elapsed().as_nanos() as u64;
                wire.message(k, at, now, keys.next_key(), &mut msg);
                s.write_all(&msg).await.map_err(|e| format!("write: {e}"))?;
                out.borrow_mut().sent(&sched, at);
                k += 1;
            }
        }
    }
}
