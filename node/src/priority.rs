//! Lowering the CPU and I/O priority of the threads that run modules, so
//! an investigation never competes with the host's real work.
//!
//! On Linux, `setpriority(PRIO_PROCESS, tid, ..)` and `ioprio_set` with a
//! thread id change only that thread. Elsewhere this does nothing.

/// The niceness module threads run at (the lowest priority).
pub const MODULE_NICENESS: i32 = 19;

/// Lowers the calling thread to [`MODULE_NICENESS`] and the lowest
/// best-effort I/O priority. Failure is harmless (the thread just keeps its
/// priority), so it is reported, not fatal.
pub fn lower_current_thread() -> Result<(), std::io::Error> {
    imp::lower_current_thread()
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod imp {
    use super::MODULE_NICENESS;

    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_BEST_EFFORT: libc::c_int = 2;
    const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
    const IOPRIO_LOWEST_LEVEL: libc::c_int = 7;

    pub(super) fn lower_current_thread() -> Result<(), std::io::Error> {
        // SAFETY: gettid has no preconditions and cannot fail.
        let thread_id = unsafe { libc::gettid() };
        let who = libc::id_t::try_from(thread_id).map_err(std::io::Error::other)?;
        // SAFETY: plain syscalls on our own thread id with integer arguments;
        // no memory is passed.
        let nice_result = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, MODULE_NICENESS) };
        if nice_result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let priority = (IOPRIO_CLASS_BEST_EFFORT << IOPRIO_CLASS_SHIFT) | IOPRIO_LOWEST_LEVEL;
        // SAFETY: as above; ioprio_set takes three integers.
        let io_result = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                thread_id,
                priority,
            )
        };
        if io_result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The calling thread's niceness.
    #[cfg(test)]
    pub(crate) fn current_niceness() -> i32 {
        // SAFETY: as above.
        let thread_id = unsafe { libc::gettid() } as libc::id_t;
        // SAFETY: getpriority takes two integers.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, thread_id) }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_lowered_thread_reports_the_lowest_niceness() {
            std::thread::spawn(|| {
                super::lower_current_thread().unwrap();
                assert_eq!(super::current_niceness(), super::MODULE_NICENESS);
            })
            .join()
            .unwrap();
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) use imp::current_niceness;

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn lower_current_thread() -> Result<(), std::io::Error> {
        Ok(())
    }
}
