//! Running a plan: the whole stack ([`whole`]: the folder's lock, the
//! manifest's reconciliation, stale outputs removed) and the step it shares
//! with a slab task (`slab.rs`): the cascade run over a span of inputs with a
//! journal that is saved whatever happens, ending in the run's [`Summary`].

use std::ops::Range;
use std::time::Instant;

use super::cascade::{self, Counts};
use super::lock::OutputLock;
use super::manifest::{Document, InputRecord, Journal};
use super::plan::Plan;
use super::resume::{self, KeepTable, Reconciled};
use super::{CancelFlag, Summary};
use crate::Error;

/// Builds the whole stack of `plan`: see [`Plan::run`].
pub(super) fn whole(
    plan: &Plan,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &CancelFlag,
) -> Result<Summary, Error> {
    let out = plan.output_dir();
    resume::refuse_inputs_in_level_folders(plan)?;
    std::fs::create_dir_all(out)
        .map_err(|e| Error::io(out, "cannot create output directory", e))?;
    let _lock = OutputLock::acquire(out, cancel)?;
    // The run's time starts once the folder is ours: waiting for another run
    // is not work, and would skew the throughput callers compute from it.
    let started = Instant::now();
    let inputs = InputRecord::stat_all(plan.inputs(), plan.levels[0], plan.sample_type)?;
    let Reconciled {
        keep,
        removed,
        warnings,
        mut journal,
    } = resume::reconcile(plan, inputs, plan.builder.force)?;
    // Before any output is overwritten, the manifest stops vouching for the
    // ones to rebuild (a no-op when nothing changes).
    journal.save()?;
    plan.create_dirs()?;
    let span = 0..plan.levels[0].count;
    let run = Run {
        started,
        removed,
        warnings,
    };
    build(
        plan,
        (&keep, span),
        &mut journal,
        (progress, cancel),
        run,
        |_, _| {},
    )
}

/// What a run adds to its summary besides the cascade's counts.
pub(super) struct Run {
    pub started: Instant,
    /// Stale outputs removed.
    pub removed: usize,
    /// The run's own warnings (the plan's come first in the summary).
    pub warnings: Vec<String>,
}

/// Builds the outputs of `plan` that depend on inputs `span`, keeping what
/// `keep` says and listing what it writes in `journal`, on the plan's thread
/// pool. `done` updates the journal's document from the counts of a run that
/// succeeded; the journal is saved whatever happened, so that what was written
/// stays usable by the next run or a retry.
pub(super) fn build<D: Document + Send>(
    plan: &Plan,
    (keep, span): (&KeepTable, Range<usize>),
    journal: &mut Journal<D>,
    (progress, cancel): (&mut dyn FnMut(u64, u64), &CancelFlag),
    run: Run,
    done: impl FnOnce(&mut D, &Counts),
) -> Result<Summary, Error> {
    let pool = plan.thread_pool()?;
    let built = cascade::run(plan, keep, span, pool.as_ref(), journal, progress, cancel);
    if let Ok(counts) = &built {
        done(journal.doc_mut(), counts);
    }
    let saved = journal.save();
    let counts = built?;
    saved?;
    Ok(Summary {
        output_dir: plan.output_dir().to_path_buf(),
        levels: plan.levels.clone(),
        kept: counts.kept,
        rebuilt: counts.rebuilt,
        removed: run.removed,
        warnings: plan.warnings.iter().cloned().chain(run.warnings).collect(),
        input_bytes: counts.input_bytes,
        elapsed: run.started.elapsed(),
    })
}
