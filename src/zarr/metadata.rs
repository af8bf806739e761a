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

use super::{BloscCompressor, BloscShuffle, ChunkCompression, Ngff, ZarrPlan};
use crate::{Error, SampleType};

/// The key of ctstack's attribute in the root group's attributes.
pub(crate) const CTSTACK_KEY: &str = "ctstack";

/// How each level is made, for the `metadata` of `multiscales`.
const METHOD: &str = "exact 2x2x2 mean (ctstack): level k+1 sample = mean of a 2x2x2 block of \
                      level k, integers rounded half up once (sum + 4) / 8, floats summed in \
                      f64; y and x as floor(n / 2), an odd last row or column left out; in z \
                      level k keeps the floor(n / 2^k) planes that each average exactly 2^k \
                      slices (at least one plane: then it averages the whole stack and spans \
                      it), so that every voxel sits at the centre of the slices it averages";

/// The axes, z y x, all of type space, in `unit` (none when unknown: the
/// NGFF specification makes the unit optional, and a reader then takes the
/// coordinates as plain voxel units).
fn axes(unit: Option<AxisUnitSpace>) -> Vec<Axis> {
    ["z", "y", "x"]
        .into_iter()
        .map(|name| Axis {
            name: name.to_string(),
            r#type: Some(AxisType::Space),
            unit: unit.map(AxisUnit::Space),
        })
        .collect()
}

/// Level `k`'s scale and translation (z, y, x) for level-0 voxel size `s0`
/// and an `n`-slice stack, so that each voxel's centre is the centre of the
/// level-0 voxels it averages: `s0 * 2^k` and `s0 * (2^k - 1) / 2`; in z, when
/// the level's one plane averages the whole stack (`n < 2^k`), `s0 * n` and
/// `s0 * (n - 1) / 2` (see the module docs of `zarr`).
pub(crate) fn level_transform(s0: [f64; 3], n: usize, k: usize) -> ([f64; 3], [f64; 3]) {
    let f = (1u64 << k.min(62)) as f64;
    let mut scale = s0.map(|s| s * f);
    let mut translation = s0.map(|s| s * (f - 1.0) / 2.0);
    if n.checked_shr(k as u32).unwrap_or(0) == 0 {
        let n = n as f64;
        scale[0] = s0[0] * n;
        translation[0] = s0[0] * (n - 1.0) / 2.0;
    }
    (scale, translation)
}

/// The multiscales entry: one dataset per level, path `k`, with the
/// transforms as f32 (the NGFF types' number, for their checks); the file
/// gets the f64 values ([`exact_transforms`]).
fn datasets(plan: &ZarrPlan) -> Vec<MultiscaleImageDataset> {
    let n = plan.levels()[0].count;
    (0..plan.levels().len())
        .map(|k| {
            let (scale, translation) = level_transform(plan.voxel_size, n, k);
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

/// Replaces the f32 transforms of the serialised `multiscales` entry with
/// the f64 values, so the file holds the voxel size exactly as given.
fn exact_transforms(plan: &ZarrPlan, image: &mut Value) {
    let n = plan.levels()[0].count;
    let Some(datasets) = image.get_mut("datasets").and_then(Value::as_array_mut) else {
        return;
    };
    for (k, dataset) in datasets.iter_mut().enumerate() {
        let (scale, translation) = level_transform(plan.voxel_size, n, k);
        dataset["coordinateTransformations"] = json!([
            {"type": "scale", "scale": scale},
            {"type": "translation", "translation": translation},
        ]);
    }
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
    let mut attrs = ctstack_attributes(plan, true)?;
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
            let mut image = to_value(&image)?;
            exact_transforms(plan, &mut image);
            attrs.insert("multiscales".into(), json!([image]));
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
            let mut ome = to_value(&ome)?;
            if let Some(images) = ome.get_mut("multiscales").and_then(Value::as_array_mut) {
                images.iter_mut().for_each(|i| exact_transforms(plan, i));
            }
            attrs.insert("ome".into(), ome);
        }
    }
    Ok(attrs)
}

/// ctstack's attribute: who wrote the store, whether it is complete, what
/// the levels are made of, and each level's array layout (its metadata, so a
/// rerun with other options is told apart while the arrays' own metadata is
/// not there yet); for a MinIsWhite stack, how the values were inverted.
pub(crate) fn ctstack_attributes(
    plan: &ZarrPlan,
    complete: bool,
) -> Result<Map<String, Value>, Error> {
    let arrays = (0..plan.levels().len())
        .map(|k| array_record(plan, k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut value = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "complete": complete,
        "levels": plan.levels().len(),
        "sample_type": plan.sample_type().name(),
        "photometric": format!("{:?}", plan.pyramid.photometric()),
        "arrays": arrays,
    });
    if let Some(note) = plan.inversion_note() {
        value["values"] = json!(note);
    }
    let mut attrs = Map::new();
    attrs.insert(CTSTACK_KEY.into(), value);
    Ok(attrs)
}

/// Level `k`'s array metadata as JSON: what the root group records as the
/// level's layout.
pub(crate) fn array_record(plan: &ZarrPlan, k: usize) -> Result<Value, Error> {
    to_value(&array_metadata(plan, k)?)
}

/// Level `k`'s own metadata files, `(key, bytes)`, in the order they are
/// written: `k/zarr.json` (v3); `k/.zattrs` then `k/.zarray` (v2, the file
/// that makes the folder an array last; without v3's `node_type`, which the v2
/// specification does not have).
pub(crate) fn array_files(plan: &ZarrPlan, k: usize) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut doc = array_record(plan, k)?;
    Ok(match plan.ngff {
        Ngff::V0_5 => vec![(format!("{k}/zarr.json"), pretty(&doc)?)],
        Ngff::V0_4 => {
            let object = doc
                .as_object_mut()
                .ok_or_else(|| Error::internal("array metadata is not a JSON object"))?;
            object.remove("node_type");
            let attributes = object.remove("attributes").unwrap_or_else(|| json!({}));
            vec![
                (format!("{k}/.zattrs"), pretty(&attributes)?),
                (format!("{k}/.zarray"), pretty(&doc)?),
            ]
        }
    })
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
/// Exhaustive: a new sample type must choose its Zarr type here.
fn data_type(t: SampleType) -> (&'static str, &'static str) {
    match t {
        SampleType::U8 => ("uint8", "|u1"),
        SampleType::U16 => ("uint16", "<u2"),
        SampleType::I16 => ("int16", "<i2"),
        SampleType::F32 => ("float32", "<f4"),
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
            match plan.compression {
                ChunkCompression::None => {}
                ChunkCompression::Zstd(level) => inner.push(
                    json!({"name": "zstd", "configuration": {"level": level, "checksum": false}}),
                ),
                ChunkCompression::Blosc {
                    compressor,
                    shuffle,
                    level,
                } => inner.push(json!({"name": "blosc", "configuration": {
                    "cname": blosc_cname(compressor),
                    "clevel": level,
                    "shuffle": match shuffle {
                        BloscShuffle::Byte => "shuffle",
                        BloscShuffle::Bit => "bitshuffle",
                    },
                    "typesize": plan.sample_type().bytes(),
                    "blocksize": 0,
                }})),
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
                // numcodecs' Blosc: the shuffle by number, the type size from the dtype.
                ChunkCompression::Blosc {
                    compressor,
                    shuffle,
                    level,
                } => json!({
                    "id": "blosc",
                    "cname": blosc_cname(compressor),
                    "clevel": level,
                    "shuffle": match shuffle {
                        BloscShuffle::Byte => 1,
                        BloscShuffle::Bit => 2,
                    },
                    "blocksize": 0,
                }),
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
        // Any folder may be named as --out: its metadata is read bounded.
        let Some(bytes) = crate::pyramid::read_small(&path, "Zarr group's metadata")? else {
            continue;
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

/// Blosc's name for `compressor` (its `cname`).
fn blosc_cname(compressor: BloscCompressor) -> &'static str {
    match compressor {
        BloscCompressor::Lz4 => "lz4",
        BloscCompressor::Zstd => "zstd",
    }
}
