//! The external data files an ONNX model names, found without reading its tensors: messages
//! with only the fields that lead to them (prost skips the others, `raw_data` included, without
//! copying), so the check costs one read of the file and no tensor's memory.
//!
//! These files are inputs of any command that reads the model: `convert model.onnx ext.bin`,
//! where `ext.bin` holds the model's weights, would replace them before they are read.

use std::path::{Component, Path, PathBuf};

use prost::Message;

use crate::error::{Error, Result};

#[derive(Clone, PartialEq, ::prost::Message)]
struct Model {
    #[prost(message, optional, tag = "7")]
    graph: Option<Graph>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct Graph {
    #[prost(message, repeated, tag = "1")]
    node: Vec<Node>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<Tensor>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct Node {
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<Attribute>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct Attribute {
    #[prost(message, optional, tag = "5")]
    t: Option<Tensor>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct Tensor {
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<Entry>,
    #[prost(int32, tag = "14")]
    data_location: i32,
}

#[derive(Clone, PartialEq, ::prost::Message)]
struct Entry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// The files (beside the model, as its `location`s name them; each once) that hold the
/// external data of the model at `path`. Locations that leave the model's folder are left out:
/// the loader refuses them.
pub fn external_data_files(path: &Path) -> Result<Vec<PathBuf>> {
    let bytes = crate::fsutil::read_regular_capped(path, super::read::MAX_FILE)?;
    let model = Model::decode(bytes.as_slice()).map_err(|e| {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            format!("not a readable ONNX model (protobuf): {e}"),
        )
    })?;
    let dir = crate::fsutil::parent_dir(path);
    let mut files: Vec<PathBuf> = Vec::new();
    let Some(graph) = model.graph else {
        return Ok(files);
    };
    let attributes = graph
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .filter_map(|a| a.t.as_ref());
    for t in graph.initializer.iter().chain(attributes) {
        if t.data_location != EXTERNAL {
            continue;
        }
        let Some(location) = t.external_data.iter().find(|e| e.key == "location") else {
            continue;
        };
        let rel = Path::new(&location.value);
        if rel.as_os_str().is_empty()
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
        {
            continue;
        }
        let file = dir.join(rel);
        if !files.contains(&file) {
            files.push(file);
        }
    }
    Ok(files)
}
