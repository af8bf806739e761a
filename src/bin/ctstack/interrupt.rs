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
