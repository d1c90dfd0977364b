//! File-descriptor limit: every connection is one fd, and the default soft
//! limit (often 1024) is far below what a load test needs, while the hard
//! limit usually allows more. Raising soft to hard is always permitted.

/// Raise RLIMIT_NOFILE's soft limit to the hard limit; returns (soft, hard)
/// as they are afterwards.
#[cfg(unix)]
pub fn raise_nofile() -> (u64, u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return (1024, 1024);
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
    (rl.rlim_cur as u64, rl.rlim_max as u64)
}

#[cfg(not(unix))]
pub fn raise_nofile() -> (u64, u64) {
    (u64::MAX, u64::MAX)
}
