//! Looking things up in an ONNX graph: its constant values by name (initializers, Constant
//! nodes, Transposes of either), a node's attributes, and a node's name for messages.

use std::collections::HashMap;

use super::proto::{AttributeProto, GraphProto, NodeProto, TensorProto};

/// A weight input by name: its initializer, and the perm of a Transpose it goes through.
pub(super) type WeightOf<'t, 'c> = dyn Fn(&str) -> Option<(&'t TensorProto, Option<Vec<i64>>)> + 'c;

/// An attribute by name.
pub(super) fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(super) fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("node {index} ({})", node.op_type)
    } else {
        format!("node '{}' ({})", node.name, node.op_type)
    }
}

/// An integer-list attribute.
pub(super) fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// An integer attribute, `default` when absent.
pub(super) fn int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

/// A float attribute, `default` when absent.
pub(super) fn float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

/// The graph's constant values by name.
pub(super) struct Constants<'g> {
    init: HashMap<&'g str, &'g TensorProto>,
    constants: HashMap<&'g str, &'g TensorProto>,
    transposed: HashMap<&'g str, (&'g str, Vec<i64>)>,
}

impl<'g> Constants<'g> {
    pub(super) fn of(graph: &'g GraphProto) -> Self {
        let init: HashMap<&str, &TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        // Constant nodes' tensors count as initializers (Reshape shapes, sometimes weights).
        let mut constants: HashMap<&str, &TensorProto> = HashMap::new();
        for n in &graph.node {
            if n.op_type == "Constant" {
                if let (Some(out), Some(t)) = (
                    n.output.first(),
                    attr(n, "value").and_then(|a| a.t.as_ref()),
                ) {
                    constants.insert(out.as_str(), t);
                }
            }
        }
        // Weights computed by a Transpose of an initializer: (its input, perm).
        let mut transposed: HashMap<&str, (&str, Vec<i64>)> = HashMap::new();
        for n in &graph.node {
            if let ([x], [y]) = (n.input.as_slice(), n.output.as_slice()) {
                if n.op_type == "Transpose"
                    && (init.contains_key(x.as_str()) || constants.contains_key(x.as_str()))
                {
                    let perm = attr(n, "perm").map(|a| a.ints.clone()).unwrap_or_default();
                    transposed.insert(y.as_str(), (x.as_str(), perm));
                }
            }
        }
        Constants {
            init,
            constants,
            transposed,
        }
    }

    pub(super) fn is_const(&self, name: &str) -> bool {
        self.init.contains_key(name)
            || self.constants.contains_key(name)
            || self.transposed.contains_key(name)
    }

    pub(super) fn tensor(&self, name: &str) -> Option<&'g TensorProto> {
        self.init.get(name).or(self.constants.get(name)).copied()
    }

    /// A weight input: an initializer, or a Transpose of one (returned with its perm).
    pub(super) fn weight(&self, name: &str) -> Option<(&'g TensorProto, Option<Vec<i64>>)> {
        match self.tensor(name) {
            Some(t) => Some((t, None)),
            None => {
                let (src, perm) = self.transposed.get(name)?;
                Some((self.tensor(src)?, Some(perm.clone())))
            }
        }
    }
}
