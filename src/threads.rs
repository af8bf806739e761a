//! The thread pool a run asks for (`threads`): its own, or rayon's global one.

use crate::Error;

/// A pool of `threads` threads, or `None` for rayon's global pool (one thread
/// per CPU). A pool the system refuses to start is an [`Error::Internal`].
pub(crate) fn pool(threads: Option<usize>) -> Result<Option<rayon::ThreadPool>, Error> {
    let Some(n) = threads else {
        return Ok(None);
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map(Some)
        .map_err(|e| Error::internal(format!("cannot start a pool of {n} threads: {e}")))
}
