//! `skiff-init`: the PID 1 that `skiff run --init` puts in front of the user's command (mounted at
//! /sbin/docker-init, as docker does with tini).
//!
//! Usage: `skiff-init [--] CMD [ARG...]`. It blocks every asynchronous signal, forks CMD into its
//! own process group (made the terminal's foreground group when stdin is a tty), then loops on
//! `sigtimedwait`: SIGCHLD (or a 1 s tick) reaps every exited child — orphans reparented to PID 1
//! included — and any other signal is forwarded to CMD's process group. When CMD exits, so does
//! skiff-init, with CMD's exit code, or 128+N when CMD was killed by signal N. An exec failure
//! exits 127 (not found) or 126 (cannot execute), like a shell.
//!
//! `skiff-init --pause` runs no command: it reaps whatever is reparented to it and exits 0 on
//! SIGTERM, SIGINT or SIGHUP (the idle PID 1 of `skiff debug`'s temporary containers, which may
//! hold nothing else that can run).
//!
//! This file must build alone with `rustc` (no crates), because the engine's build script compiles
//! it as a fully static binary; hence the handful of libc declarations below (Linux, 64-bit glibc
//! or musl layouts).

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

type Pid = i32;

/// glibc/musl `sigset_t` (1024 bits).
#[repr(C)]
#[derive(Clone, Copy)]
struct SigSet([u64; 16]);

/// `siginfo_t` is 128 bytes; `si_signo` is the first int.
#[repr(C)]
struct SigInfo([i32; 32]);

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn fork() -> Pid;
    fn execvp(file: *const u8, argv: *const *const u8) -> i32;
    fn setpgid(pid: Pid, pgid: Pid) -> i32;
    fn getpid() -> Pid;
    fn isatty(fd: i32) -> i32;
    fn tcsetpgrp(fd: i32, pgrp: Pid) -> i32;
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigdelset(set: *mut SigSet, sig: i32) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const Timespec) -> i32;
    fn waitpid(pid: Pid, status: *mut i32, options: i32) -> Pid;
    fn kill(pid: Pid, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    fn _exit(code: i32) -> !;
}

const SIG_SETMASK: i32 = 2;
const SIGCHLD: i32 = 17;
const WNOHANG: i32 = 1;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EINTR: i32 = 4;
const EAGAIN: i32 = 11;
const ECHILD: i32 = 10;
const PR_SET_CHILD_SUBREAPER: i32 = 36;
/// Synchronous signals stay deliverable (a fault in the init must not be blocked).
const SYNCHRONOUS: [i32; 7] = [4, 5, 6, 7, 8, 11, 31]; // ILL TRAP ABRT BUS FPE SEGV SYS

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn die(msg: &str, code: i32) -> ! {
    let _ = writeln!(io::stderr(), "skiff-init: {msg}");
    // SAFETY: _exit has no preconditions.
    unsafe { _exit(code) }
}

/// Exit code of a wait status: the code, or 128+signal.
fn exit_code(status: i32) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

/// `--pause`: reap and wait for a stop signal.
fn pause() -> ! {
    // SAFETY: plain syscalls on valid local storage; single-threaded.
    unsafe {
        if getpid() != 1 {
            prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        let mut all = SigSet([0; 16]);
        sigfillset(&mut all);
        for s in SYNCHRONOUS {
            sigdelset(&mut all, s);
        }
        sigprocmask(SIG_SETMASK, &all, std::ptr::null_mut());
        let tick = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        let mut info = SigInfo([0; 32]);
        loop {
            let sig = sigtimedwait(&all, &mut info, &tick);
            if sig == 1 || sig == 2 || sig == 15 {
                _exit(0);
            }
            let mut status = 0;
            while waitpid(-1, &mut status, WNOHANG) > 0 {}
        }
    }
}

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.len() == 1 && args[0] == "--pause" {
        pause();
    }
    if args.is_empty() {
        die("usage: skiff-init [--] CMD [ARG...]", 1);
    }
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| {
            CString::new(a.as_bytes()).unwrap_or_else(|_| die("argument contains a NUL byte", 1))
        })
        .collect();
    let mut argv: Vec<*const u8> = cargs.iter().map(|c| c.as_ptr().cast()).collect();
    argv.push(std::ptr::null());

    // SAFETY: plain syscalls on valid local storage; the init is single-threaded, so fork is safe.
    unsafe {
        if getpid() != 1 {
            // Not PID 1 (e.g. --pid=host): become a subreaper so orphans still come to us.
            prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        let mut all = SigSet([0; 16]);
        let mut orig = SigSet([0; 16]);
        sigfillset(&mut all);
        for s in SYNCHRONOUS {
            sigdelset(&mut all, s);
        }
        if sigprocmask(SIG_SETMASK, &all, &mut orig) != 0 {
            die(&format!("sigprocmask: {}", io::Error::last_os_error()), 1);
        }
        let child = fork();
        if child < 0 {
            die(&format!("fork: {}", io::Error::last_os_error()), 1);
        }
        if child == 0 {
            setpgid(0, 0);
            // SIGTTOU is still blocked here, so a background group may take the terminal.
            if isatty(0) == 1 {
                tcsetpgrp(0, getpid());
            }
            sigprocmask(SIG_SETMASK, &orig, std::ptr::null_mut());
            execvp(argv[0], argv.as_ptr());
            let e = errno();
            let code = if e == ENOENT { 127 } else { 126 };
            die(
                &format!(
                    "exec {}: {}",
                    args[0].to_string_lossy(),
                    io::Error::from_raw_os_error(e)
                ),
                code,
            );
        }
        // Also from the parent, so the group exists before we ever forward to it.
        setpgid(child, child);
        let tick = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        let mut info = SigInfo([0; 32]);
        loop {
            let sig = sigtimedwait(&all, &mut info, &tick);
            if sig < 0 {
                let e = errno();
                if e != EAGAIN && e != EINTR {
                    die(
                        &format!("sigtimedwait: {}", io::Error::from_raw_os_error(e)),
                        1,
                    );
                }
            } else if sig != SIGCHLD {
                // The whole group first (shell pipelines, `sh -c`), the child alone if it left it.
                if kill(-child, sig) != 0 && errno() == ESRCH {
                    kill(child, sig);
                }
                continue;
            }
            // Reap everything that has exited, ours or reparented orphans.
            loop {
                let mut status = 0;
                let pid = waitpid(-1, &mut status, WNOHANG);
                if pid == child {
                    _exit(exit_code(status));
                }
                if pid == 0 {
                    break;
                }
                if pid < 0 {
                    if errno() == ECHILD {
                        // Our child is gone without us seeing it: nothing left to wait for.
                        _exit(1);
                    }
                    break;
                }
            }
        }
    }
}
