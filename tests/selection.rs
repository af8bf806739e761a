//! Stack selection through the pyramid builder: a CTHarvester-style range over
//! the fixture stack, its gaps as the plan's warnings, and an empty selection.

mod common;

use ctstack::stack::Selection;
use ctstack::{ErrorKind, PyramidBuilder};

#[test]
fn a_range_selects_slices_and_its_missing_indices_are_warnings() {
    let dir = common::fixtures().join("stack");
    let selection = Selection::default()
        .prefix("slice_")
        .extension("tif")
        .range(3, 22)
        .index_width(4);
    let builder = PyramidBuilder::from_selection(&dir, &selection).unwrap();
    let listing = builder.listing().unwrap();
    assert_eq!(listing.files.len(), 18, "slice_0003 ..= slice_0020");
    assert!(listing.files[0].ends_with("slice_0003.tif"));
    assert_eq!(listing.skipped.len(), 3, "{:?}", listing.skipped);
    let plan = builder.min_size(8).plan().unwrap();
    assert_eq!(plan.levels()[0].count, 18);
    assert_eq!(
        plan.warnings(),
        [
            "gap in the slice numbering: the range 3..=22 goes on after slice_0020.tif: \
          numbers 21..=22 are missing (2 files)"
        ]
    );
    // The default selection is the whole folder, as before.
    let all = PyramidBuilder::from_dir(&dir).unwrap();
    assert_eq!(all.listing().unwrap().files.len(), 21);
    assert!(all.listing().unwrap().skipped.is_empty());
}

#[test]
fn an_empty_selection_is_a_state_error_that_says_what_was_left_out() {
    let dir = common::fixtures().join("stack");
    let err =
        PyramidBuilder::from_selection(&dir, &Selection::default().extension("bmp")).unwrap_err();
    // The folder holds no slice of the selection: not a wrong argument.
    assert_eq!(err.kind(), ErrorKind::State);
    assert_eq!(err.path(), Some(dir.as_path()));
    let text = err.to_string();
    assert!(
        text.contains("no slice files (.tif .tiff .bmp .png .jpg .jpeg) selected"),
        "{text}"
    );
    assert!(text.contains("21 image files left out"), "{text}");
    assert!(
        text.contains("extension .tif is not the selected .bmp"),
        "{text}"
    );
}
