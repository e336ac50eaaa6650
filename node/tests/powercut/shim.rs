//! A power cut for one process, preloaded with `LD_PRELOAD` (built by
//! `node/tests/powercut.rs` with plain `rustc`; no dependencies).
//!
//! It follows the writes (`pwrite64`, `ftruncate64`) SQLite makes to files in
//! `BANMESH_POWERCUT_DIR` (the `-shm` index aside: SQLite rebuilds it) and
//! forgets a file's writes once `fsync` made them durable. Once the file
//! `DIR/powercut-arm` exists, holding a number N, the Nth write after it is
//! not made: instead each followed file loses a random suffix of its writes
//! since its last `fsync` (what a disk that persists each file's writes in
//! order may hold after a cut; the files are cut independently), chosen
//! from `BANMESH_POWERCUT_SEED`, and the process is killed with SIGKILL.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void};
use std::fs::{File, OpenOptions};
use std::mem::ManuallyDrop;
use std::os::unix::fs::FileExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

unsafe extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn getpid() -> c_int;
}

const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;
const SIGKILL: c_int = 9;

type PwriteFn = unsafe extern "C" fn(c_int, *const c_void, usize, i64) -> isize;
type FsyncFn = unsafe extern "C" fn(c_int) -> c_int;
type FtruncateFn = unsafe extern "C" fn(c_int, i64) -> c_int;

/// What a write replaced: the bytes at its offset before, and the size.
struct Undo {
    offset: u64,
    old: Vec<u8>,
    old_size: u64,
}

struct State {
    dir: Option<PathBuf>,
    seed: u64,
    /// Writes left before the cut, once armed.
    left: Option<u64>,
    pending: BTreeMap<PathBuf, Vec<Undo>>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// Set while the cut rewinds files: those writes go straight through.
static CUTTING: AtomicBool = AtomicBool::new(false);

unsafe fn next<T>(name: &[u8]) -> T {
    let f = unsafe { dlsym(RTLD_NEXT, name.as_ptr().cast()) };
    assert!(!f.is_null(), "powercut: no next symbol");
    unsafe { std::mem::transmute_copy(&f) }
}

fn state() -> std::sync::MutexGuard<'static, Option<State>> {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let seed = std::env::var("BANMESH_POWERCUT_SEED").ok().and_then(|s| s.parse().ok());
        *guard = Some(State {
            dir: std::env::var_os("BANMESH_POWERCUT_DIR").map(PathBuf::from),
            seed: seed.unwrap_or(1),
            left: None,
            pending: BTreeMap::new(),
        });
    }
    guard
}

/// The followed file `fd` is open on, if any.
fn followed(state: &State, fd: c_int) -> Option<PathBuf> {
    let dir = state.dir.as_ref()?;
    let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let name = path.file_name()?.to_string_lossy();
    (path.starts_with(dir) && !name.ends_with("-shm") && !name.starts_with("powercut"))
        .then_some(path)
}

/// The bytes of `fd` in `offset..offset+len` (fewer past the end), and its size.
fn before(fd: c_int, path: &Path, offset: u64, len: u64) -> Undo {
    let old_size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let len = old_size.saturating_sub(offset).min(len);
    let mut old = vec![0; len as usize];
    // A borrowed File: never closed here.
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let read = file.read_at(&mut old, offset).unwrap_or(0);
    old.truncate(read);
    Undo { offset, old, old_size }
}

/// Counts one write; true when it is the one to cut at.
fn armed_and_due(state: &mut State) -> bool {
    if state.left.is_none() {
        let arm = state.dir.as_ref().map(|d| d.join("powercut-arm"));
        let n = arm.and_then(|a| std::fs::read_to_string(a).ok());
        state.left = n.and_then(|n| n.trim().parse().ok());
    }
    match &mut state.left {
        Some(0) => true,
        Some(n) => {
            *n -= 1;
            *n == 0
        }
        None => false,
    }
}

/// Rewinds each followed file by a random suffix of its unsynced writes,
/// then dies.
fn cut(state: &mut State) -> ! {
    CUTTING.store(true, Ordering::SeqCst);
    let mut rng = state.seed | 1;
    for (path, undos) in &mut state.pending {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let keep = (rng % (undos.len() as u64 + 1)) as usize;
        if let Ok(file) = OpenOptions::new().write(true).open(path) {
            for undo in undos.drain(keep..).rev() {
                let _ = file.write_at(&undo.old, undo.offset);
                let _ = file.set_len(undo.old_size);
            }
        }
    }
    unsafe {
        kill(getpid(), SIGKILL);
    }
    std::process::abort()
}

/// # Safety
/// As `pwrite64(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwrite64(fd: c_int, buf: *const c_void, n: usize, off: i64) -> isize {
    let real: PwriteFn = unsafe { next(b"pwrite64\0") };
    if !CUTTING.load(Ordering::SeqCst) {
        let mut guard = state();
        if let Some(state) = guard.as_mut()
            && let Some(path) = followed(state, fd)
        {
            if armed_and_due(state) {
                cut(state);
            }
            let undo = before(fd, &path, off as u64, n as u64);
            state.pending.entry(path).or_default().push(undo);
        }
    }
    unsafe { real(fd, buf, n, off) }
}

/// # Safety
/// As `ftruncate64(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ftruncate64(fd: c_int, len: i64) -> c_int {
    let real: FtruncateFn = unsafe { next(b"ftruncate64\0") };
    if !CUTTING.load(Ordering::SeqCst) {
        let mut guard = state();
        if let Some(state) = guard.as_mut()
            && let Some(path) = followed(state, fd)
        {
            let undo = before(fd, &path, len as u64, u64::MAX);
            state.pending.entry(path).or_default().push(undo);
        }
    }
    unsafe { real(fd, len) }
}

/// # Safety
/// As `fsync(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fsync(fd: c_int) -> c_int {
    let real: FsyncFn = unsafe { next(b"fsync\0") };
    let done = unsafe { real(fd) };
    if done == 0 && !CUTTING.load(Ordering::SeqCst) {
        let mut guard = state();
        if let Some(state) = guard.as_mut()
            && let Some(path) = followed(state, fd)
        {
            state.pending.remove(&path);
        }
    }
    done
}
