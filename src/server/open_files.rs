//! The open-file limit, and the bound on connections derived from it.
//!
//! Every connection holds a descriptor, and so does every session's store (its
//! SQLite database, journal and shared memory) and WebSocket. The connections get
//! half of the limit by default, so that no number of sockets opened by anyone
//! can take the descriptors the sessions need.

use std::io;

/// Descriptors always left to the rest of the daemon, whatever the bound.
pub const RESERVED: u64 = 64;
/// The smallest and largest bound on connections.
pub const MIN_CONNECTIONS: u64 = 16;
pub const MAX_CONNECTIONS: u64 = 1_048_576;

/// This process's soft `RLIMIT_NOFILE` (what `LimitNOFILE=` or `ulimit -n` set).
pub fn soft_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// The default bound for an open-file limit: half of it, within the bounds.
pub fn default_max_connections(open_files: u64) -> usize {
    (open_files / 2).clamp(MIN_CONNECTIONS, MAX_CONNECTIONS) as usize
}

/// Whether `max` connections leave [`RESERVED`] descriptors under the limit.
pub fn fits(max: usize, open_files: u64) -> bool {
    (max as u64).saturating_add(RESERVED) <= open_files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_half_the_limit_within_bounds() {
        assert_eq!(default_max_connections(1024), 512);
        assert_eq!(default_max_connections(65_536), 32_768);
        assert_eq!(default_max_connections(20), 16);
        // RLIM_INFINITY
        assert_eq!(default_max_connections(u64::MAX), 1_048_576);
        assert!(fits(default_max_connections(1024), 1024));
        assert!(fits(960, 1024));
        assert!(!fits(961, 1024));
        assert!(!fits(usize::MAX, u64::MAX - 1));
    }

    #[test]
    fn the_limit_of_this_process_is_readable() {
        assert!(soft_limit().unwrap() > 0);
    }
}
