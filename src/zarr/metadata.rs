//! What the store says about itself: each level's array metadata (zarrs'
//! types), the root group's `multiscales` (ome_zarr_metadata's types), and
//! ctstack's own attribute, by which a rerun recognises its store.

use serde_json::{Map, Value, json};

use ome_zarr_metadata::Validate;
use ome_zarr_metadata::v0_4::{
    Axis, AxisType, AxisUnit, AxisUnitSpace, CoordinateTransform, MultiscaleImageDataset,
    MultiscaleImageMetadata,
};
use zarrs::array::{ArrayMetadata, ArrayMetadataV2};
use zarrs::metadata::v3::ArrayMetadataV3;

use super::{ChunkCompression, Ngff, ZarrPlan};
use crate::{Error, SampleType};

/// The key of ctstack's attribute in the root group's attributes.
pub(crate) const CTSTACK_KEY: &str = "ctstack";

/// How each level is made, for the `metadata` of `multiscales`.
const METHOD: &str = "exact 2x2x2 mean (ctstack): level k+1 sample = mean of a 2x2x2 block of \
                      level k, integers rounded half up once (sum + 4) / 8, floats summed in \
                      f32 pairs; z halves as ceil(n / 2), an odd last slice averaged with \
                      itself; y and x as floor(n / 2), an odd last row or column left out";

/// The axes, z y x, all of type space, in `unit`.
fn axes(unit: AxisUnitSpace) -> Vec<Axis> {
    ["z", "y", "x"]
        .into_iter()
        .map(|name| Axis {
            name: name.to_string(),
            r#type: Some(AxisType::Space),
            unit: Some(AxisUnit::Space(unit)),
        })
        .collect()
}

/// Level `k`'s scale and translation for level-0 voxel size `s0`: `s0 * 2^k`
/// and `s0 * (2^k - 1) / 2` (voxel centres: a level-k voxel's centre is the
/// centre of the 2^k level-0 voxels it averages).
pub(crate) fn level_transform(s0: [f64; 3], k: usize) -> ([f64; 3], [f64; 3]) {
    let f = (1u64 << k.min(62)) as f64;
    (s0.map(|s| s * f), s0.map(|s| s * (f - 1.0) / 2.0))
}

/// The multiscales entry: one dataset per level, path `k`.
fn datasets(plan: &ZarrPlan) -> Vec<MultiscaleImageDataset> {
    (0..plan.levels().len())
        .map(|k| {
            let (scale, translation) = level_transform(plan.voxel_size, k);
            let f32s = |v: [f64; 3]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            MultiscaleImageDataset {
                path: k.to_string(),
                coordinate_transformations: vec![
                    CoordinateTransform::Scale(f32s(scale).into()),
                    CoordinateTransform::Translation(f32s(translation).into()),
                ],
            }
        })
        .collect()
}

/// `metadata` of the multiscales entry: the method and who made it.
fn method_metadata() -> MultiscaleImageMetadata {
    let mut map = Map::new();
    map.insert("method".into(), json!(METHOD));
    map.insert("software".into(), json!("ctstack"));
    map.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    MultiscaleImageMetadata(map)
}

/// The root group's attributes once the store is complete: ctstack's and the
/// OME ones (`ome` for 0.5, `multiscales` for 0.4), checked by ome_zarr_metadata.
pub(crate) fn complete_attributes(plan: &ZarrPlan) -> Result<Map<String, Value>, Error> {
    let name = plan
        .store()
        .file_stem()
        .map(|n| n.to_string_lossy().trim_end_matches(".ome").to_string());
    let unit = plan.unit;
    let mut attrs = ctstack_attributes(plan, true);
    match plan.ngff {
        Ngff::V0_4 => {
            let image = ome_zarr_metadata::v0_4::MultiscaleImage {
                version: Default::default(),
                name,
                axes: axes(unit),
                datasets: datasets(plan),
                coordinate_transformations: None,
                r#type: Some("mean".into()),
                metadata: Some(method_metadata()),
            };
            image.validate().map_err(invalid)?;
            attrs.insert("multiscales".into(), json!([to_value(&image)?]));
        }
        Ngff::V0_5 => {
            let image = ome_zarr_metadata::v0_5::MultiscaleImage {
                name,
                axes: axes(unit),
                datasets: datasets(plan),
                coordinate_transformations: None,
                r#type: Some("mean".into()),
                metadata: Some(method_metadata()),
            };
            let ome = ome_zarr_metadata::v0_5::OmeFields {
                multiscales: Some(vec![image]),
                ..Default::default()
            };
            ome.validate().map_err(invalid)?;
            attrs.insert("ome".into(), to_value(&ome)?);
        }
    }
    Ok(attrs)
}

/// ctstack's attribute: who wrote the store, whether it is complete, and what
/// the levels are made of (so a rerun with other options is told apart).
pub(crate) fn ctstack_attributes(plan: &ZarrPlan, complete: bool) -> Map<String, Value> {
    let mut attrs = Map::new();
    attrs.insert(
        CTSTACK_KEY.into(),
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "complete": complete,
            "levels": plan.levels().len(),
            "sample_type": plan.sample_type().name(),
            "photometric": format!("{:?}", plan.pyramid.photometric()),
        }),
    );
    attrs
}

fn to_value(v: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::usage(format!("cannot serialise metadata: {e}")))
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::usage(format!("the OME-Zarr metadata would not be valid: {e}"))
}

/// The root group's metadata files: `(key, bytes)` pairs.
pub(crate) fn group_files(
    ngff: Ngff,
    attributes: Map<String, Value>,
) -> Result<Vec<(&'static str, Vec<u8>)>, Error> {
    Ok(match ngff {
        Ngff::V0_5 => {
            let group = zarrs::metadata::v3::GroupMetadataV3::new().with_attributes(attributes);
            vec![("zarr.json", pretty(&group)?)]
        }
        Ngff::V0_4 => {
            let group = zarrs::metadata::v2::GroupMetadataV2::new();
            vec![
                (".zgroup", pretty(&group)?),
                (".zattrs", pretty(&attributes)?),
            ]
        }
    })
}

/// `v` as pretty-printed JSON, as zarrs writes metadata.
fn pretty(v: &impl serde::Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(v)
        .map_err(|e| Error::usage(format!("cannot serialise metadata: {e}")))
}

/// The Zarr data type of `t`, as v3 names it and as v2 does (little-endian).
fn data_type(t: SampleType) -> (&'static str, &'static str) {
    match t {
        SampleType::U8 => ("uint8", "|u1"),
        SampleType::U16 => ("uint16", "<u2"),
        SampleType::I16 => ("int16", "<i2"),
        _ => ("float32", "<f4"),
    }
}

/// Level `k`'s array metadata: shape z y x, the chunk (or shard) grid, the
/// codecs, fill value 0, dimension names z y x.
pub(crate) fn array_metadata(plan: &ZarrPlan, k: usize) -> Result<ArrayMetadata, Error> {
    let level = plan.levels()[k];
    let shape = [level.count as u64, level.height.into(), level.width.into()];
    let (v3_type, v2_type) = data_type(plan.sample_type());
    let fill = if plan.sample_type() == SampleType::F32 {
        json!(0.0)
    } else {
        json!(0)
    };
    let bad = |e: serde_json::Error| Error::usage(format!("invalid array metadata: {e}"));
    match plan.ngff {
        Ngff::V0_5 => {
            let bytes = json!({"name": "bytes", "configuration": {"endian": "little"}});
            let mut inner = vec![bytes.clone()];
            if let ChunkCompression::Zstd(level) = plan.compression {
                inner.push(
                    json!({"name": "zstd", "configuration": {"level": level, "checksum": false}}),
                );
            }
            let (grid, codecs) = match plan.shard {
                Some(shard) => (
                    shard,
                    vec![json!({
                        "name": "sharding_indexed",
                        "configuration": {
                            "chunk_shape": plan.chunks,
                            "codecs": inner,
                            "index_codecs": [bytes, {"name": "crc32c"}],
                            "index_location": "end",
                        }
                    })],
                ),
                None => (plan.chunks, inner),
            };
            let doc = json!({
                "zarr_format": 3,
                "node_type": "array",
                "shape": shape,
                "data_type": v3_type,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": fill,
                "codecs": codecs,
                "attributes": {},
                "dimension_names": ["z", "y", "x"],
            });
            let meta: ArrayMetadataV3 = serde_json::from_value(doc).map_err(bad)?;
            Ok(ArrayMetadata::V3(meta))
        }
        Ngff::V0_4 => {
            let compressor = match plan.compression {
                ChunkCompression::Zstd(level) => json!({"id": "zstd", "level": level}),
                ChunkCompression::None => Value::Null,
            };
            let doc = json!({
                "zarr_format": 2,
                "shape": shape,
                "chunks": plan.chunks,
                "dtype": v2_type,
                "compressor": compressor,
                "fill_value": fill,
                "order": "C",
                "filters": null,
                "dimension_separator": "/",
                // xarray's convention for dimension names in Zarr v2.
                "attributes": {"_ARRAY_DIMENSIONS": ["z", "y", "x"]},
            });
            let meta: ArrayMetadataV2 = serde_json::from_value(doc).map_err(bad)?;
            Ok(ArrayMetadata::V2(meta))
        }
    }
}

/// Reads ctstack's attribute from the root group of the store at `root`, in
/// either format: `Ok(None)` when there is no root group metadata.
pub(crate) fn read_ctstack_attribute(root: &std::path::Path) -> Result<Option<Value>, Error> {
    for (file, pointer) in [("zarr.json", "/attributes"), (".zattrs", "")] {
        let path = root.join(file);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, "cannot read", e)),
        };
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        return Ok(doc
            .pointer(pointer)
            .and_then(|a| a.get(CTSTACK_KEY))
            .cloned()
            .or(Some(Value::Null)));
    }
    Ok(None)
}
