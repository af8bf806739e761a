//! Ctrl-C: the first one asks the run to stop cleanly, a second one ends the
//! process at once.

use std::sync::Arc;

use ctstack::CancelFlag;

/// A cancel flag that Ctrl-C (SIGINT on Unix, CTRL_C_EVENT on Windows) raises.
///
/// The run checks the flag at every slice, removes what it has not finished and
/// returns [`ctstack::Error::Cancelled`]. A second Ctrl-C, for a user who does not
/// want to wait, exits with status 130 right away: a temporary file may then stay
/// behind, and the next run on the same output removes it.
pub fn cancel_on_ctrl_c() -> Arc<CancelFlag> {
    let flag = Arc::new(CancelFlag::new());
    let raised = Arc::clone(&flag);
    let installed = ctrlc::set_handler(move || {
        if raised.is_cancelled() {
            eprintln!("\nctstack: interrupted again: stopping now");
            std::process::exit(i32::from(crate::EXIT_INTERRUPTED));
        }
        raised.cancel();
    });
    if let Err(e) = installed {
        eprintln!("ctstack: warning: Ctrl-C will end the run abruptly ({e})");
    }
    flag
}

/// Runs `run(progress, cancel)` with `progress` drawn and Ctrl-C asking the run
/// to stop ([`cancel_on_ctrl_c`]). A run stopped that way is a
/// [`Failure::Interrupted`](crate::Failure::Interrupted) whose message
/// `interrupted(done, total)` says how far it got and what is on disk.
///
/// Call it once the run's checks are done: until then nothing is written and
/// Ctrl-C may simply end the process.
pub fn run_with_progress<S>(
    progress: crate::progress::Progress,
    run: impl FnOnce(&mut dyn FnMut(u64, u64), &CancelFlag) -> Result<S, ctstack::Error>,
    interrupted: impl FnOnce(u64, u64) -> String,
) -> Result<S, crate::Failure> {
    let cancel = cancel_on_ctrl_c();
    let (mut done, mut total) = (0, 0);
    let result = run(
        &mut |d, t| {
            (done, total) = (d, t);
            progress.update(d, t);
        },
        &cancel,
    );
    progress.finish();
    match result {
        Err(ctstack::Error::Cancelled) => {
            Err(crate::Failure::Interrupted(interrupted(done, total)))
        }
        other => Ok(other?),
    }
}
