//! Where a loop thread runs: the CPUs a process may use, pinning a thread
//! to one of them, and the CPU a socket's packets were last taken in on.
//!
//! Why: on loopback, a packet is taken in on the CPU that sent it, and the
//! thread it wakes runs wherever the scheduler last put it. When a client
//! loop and the server loop owning the same connection sit on different
//! CPUs, every message wakes a thread across CPUs: about 8 µs of a 27 µs
//! round trip on this machine (docs/BENCHMARKS.md, "Placement"). Pinning
//! loop `i` of each side to CPU `i`, and giving each connection to the loop
//! on the CPU its packets arrive on (`SO_INCOMING_CPU`), keeps both ends of
//! a connection on one core. Shared by wsnode's loops and loadgen's.

use std::io;
use std::os::fd::AsRawFd;

/// The most CPUs looked at (a `cpu_set_t` holds 1,024).
const MAX_CPUS: usize = 256;

/// The CPUs this process may run on, by their numbers (under a cgroup or
/// `taskset` they need not be 0..n); at least one.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most its size into it; CPU_ISSET reads within it.
    let cpus: Vec<usize> = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .take(MAX_CPUS)
                .collect()
        } else {
            Vec::new()
        }
    };
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_CPUS));
        return (0..n).collect();
    }
    cpus
}

/// Pin the calling thread to `cpu`.
pub fn pin_current(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is past the largest CPU set"),
        ));
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set, CPU_SET writes
    // within it (checked above), and sched_setaffinity(0, ..) only reads
    // the set, for the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPU the socket's last packet was taken in on (`SO_INCOMING_CPU`);
/// `None` before any packet, or where the kernel does not say.
pub fn incoming_cpu(sock: &impl AsRawFd) -> Option<usize> {
    let mut cpu: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the option's value is an int, and `cpu` and `len` are valid
    // for the call; the descriptor is borrowed, not closed.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_INCOMING_CPU,
            (&mut cpu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && cpu >= 0).then_some(cpu as usize)
}

/// Where each of `n` loops is pinned, and which loop serves each CPU.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Loop `i`'s CPU.
    cpus: Vec<usize>,
}

impl Placement {
    /// With `first`, loop `i` of `n` on the `first + i`-th allowed CPU,
    /// wrapping (several processes on one machine, loadgen's workers, each
    /// start where the one before ended); without, no loop pinned.
    pub fn new(first: Option<usize>, n: usize) -> Placement {
        let Some(first) = first else {
            return Placement::default();
        };
        let allowed = allowed_cpus();
        Placement {
            cpus: (0..n)
                .map(|i| allowed[first.wrapping_add(i) % allowed.len()])
                .collect(),
        }
    }

    /// Loop `i`'s CPU; `None` when loops are not pinned.
    pub fn cpu(&self, i: usize) -> Option<usize> {
        self.cpus.get(i).copied()
    }

    /// The first loop pinned on `cpu`.
    pub fn loop_on(&self, cpu: usize) -> Option<usize> {
        self.cpus.iter().position(|&c| c == cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_pinned_thread_runs_where_it_was_put_and_its_packets_say_so() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let last = *cpus.last().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // The sender pinned on `last`: loopback takes its packet in there.
        std::thread::spawn(move || {
            pin_current(last).unwrap();
            // SAFETY: sched_getcpu has no preconditions.
            assert_eq!(unsafe { libc::sched_getcpu() }, last as i32);
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"x").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
        });
        let (s, _) = l.accept().unwrap();
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut &s, &mut b).unwrap();
        assert_eq!(incoming_cpu(&s), Some(last));
    }

    #[test]
    fn a_cpu_past_the_set_is_refused_and_loops_wrap_over_the_cpus() {
        assert!(pin_current(1 << 20).is_err());
        let cpus = allowed_cpus();
        let p = Placement::new(Some(0), cpus.len() + 1);
        assert_eq!(p.cpu(0), Some(cpus[0]));
        assert_eq!(p.cpu(cpus.len()), Some(cpus[0]));
        assert_eq!(p.loop_on(cpus[0]), Some(0));
        let from = Placement::new(Some(1), cpus.len());
        assert_eq!(from.cpu(0), Some(cpus[1 % cpus.len()]));
        assert_eq!(from.cpu(cpus.len() - 1), Some(cpus[0]));
        assert_eq!(Placement::new(None, 2).cpu(0), None);
        assert_eq!(Placement::new(None, 2).loop_on(cpus[0]), None);
    }
}
