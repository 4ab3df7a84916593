//! The text classifier: token embedding → LSTM (stacked, optionally bidirectional) → dense
//! output, read from the LSTM's final state after each text's own tokens.
//!
//! Batches are padded on the right with id 0, and a text's state is read after its own last token,
//! so it never depends on padding: a text gets the same output whatever it is batched with. A
//! unidirectional LSTM runs on the padded batch and reads each text's state at its last token; a
//! bidirectional one runs on the packed batch (sorted by length, as PyTorch's
//! `pack_padded_sequence`), so that its reverse direction starts at each text's last token.
//! Weights are named and initialised as PyTorch's `nn.LSTM` (`weight_ih_l0`, … uniform in
//! ±1/√hidden).

use super::{Network, TextLstmOptions};
use crate::tokenize::PAD;
use anyhow::Context;
use tch::{Device, Kind, Tensor, nn};

/// Embedding → LSTM → dense.
#[derive(Debug)]
pub struct TextLstm {
    embedding: nn::Embedding,
    weights: Vec<Tensor>,
    layers: i64,
    hidden: i64,
    bidirectional: bool,
    output: nn::Linear,
    dropout: f64,
}

impl TextLstm {
    /// Creates the layers under `path` for a vocabulary of `vocabulary` ids.
    pub fn new(path: &nn::Path, vocabulary: i64, outputs: i64, options: &TextLstmOptions) -> Self {
        let embedding_config = nn::EmbeddingConfig {
            padding_idx: PAD,
            // On the CPU the embedding's gradient holds only the rows a batch used, which the
            // fused Adam reads as they are (train/optim/fused.rs); a dense one would be the whole
            // table, zeroed and filled at every step. On a GPU it stays dense.
            sparse: !path.device().is_cuda(),
            ..Default::default()
        };
        let embedding = nn::embedding(
            path / "embedding",
            vocabulary,
            options.embedding_dim,
            embedding_config,
        );
        let hidden = options.hidden_size;
        let directions = if options.bidirectional { 2 } else { 1 };
        let lstm = path / "lstm";
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let mut weights = Vec::new();
        for layer in 0..options.layers.max(1) {
            let input = if layer == 0 {
                options.embedding_dim
            } else {
                hidden * directions
            };
            for direction in 0..directions {
                let suffix = if direction == 1 { "_reverse" } else { "" };
                weights.push(lstm.var(
                    &format!("weight_ih_l{layer}{suffix}"),
                    &[4 * hidden, input],
                    init,
                ));
                weights.push(lstm.var(
                    &format!("weight_hh_l{layer}{suffix}"),
                    &[4 * hidden, hidden],
                    init,
                ));
                weights.push(lstm.var(&format!("bias_ih_l{layer}{suffix}"), &[4 * hidden], init));
                weights.push(lstm.var(&format!("bias_hh_l{layer}{suffix}"), &[4 * hidden], init));
            }
        }
        if path.device().is_cuda() && tch::Cuda::cudnn_is_available() {
            // cuDNN wants the weights in one block; without this it copies them on every call.
            let _ = Tensor::internal_cudnn_rnn_flatten_weight(
                &weights,
                4,
                options.embedding_dim,
                2, // LSTM, in cuDNN's numbering (as tch's own LSTM passes it)
                hidden,
                0, // no projections
                options.layers.max(1),
                true,
                options.bidirectional,
            );
        }
        let output = nn::linear(
            path / "output",
            hidden * directions,
            outputs,
            Default::default(),
        );
        Self {
            embedding,
            weights,
            layers: options.layers.max(1),
            hidden,
            bidirectional: options.bidirectional,
            output,
            dropout: options.dropout,
        }
    }
}

impl TextLstm {
    fn directions(&self) -> i64 {
        if self.bidirectional { 2 } else { 1 }
    }

    fn zero_state(&self, batch: i64, device: Device) -> Tensor {
        Tensor::zeros(
            [self.layers * self.directions(), batch, self.hidden],
            (Kind::Float, device),
        )
    }

    /// Each text's feature vector, read from the packed batch: what a bidirectional LSTM needs,
    /// since its reverse direction must start at each text's own last token.
    fn packed_features(&self, ids: &Tensor, lengths: &Tensor, train: bool) -> Tensor {
        let (batch, _) = ids.size2().expect("checked by forward_t");
        // Packing wants the longest text first.
        let (sorted_lengths, order) = lengths.to_device(Device::Cpu).sort(0, true);
        let order_on_device = order.to_device(ids.device());
        let embedded = ids.index_select(0, &order_on_device).apply(&self.embedding);
        let (data, batch_sizes) = embedded.internal_pack_padded_sequence(&sorted_lengths, true);
        let zeros = self.zero_state(batch, ids.device());
        let (_, final_hidden, _) = Tensor::lstm_data(
            &data,
            &batch_sizes,
            &[&zeros, &zeros],
            &self.weights.iter().collect::<Vec<_>>(),
            true,
            self.layers,
            self.dropout,
            train,
            self.bidirectional,
        );
        // The last layer's final state of each direction, back in the batch's own order.
        let directions = self.directions();
        let last_layer = final_hidden.narrow(0, (self.layers - 1) * directions, directions);
        let features = last_layer
            .permute([1, 0, 2])
            .reshape([batch, directions * self.hidden]);
        features.index_select(0, &order_on_device.argsort(0, false))
    }

    /// Each text's feature vector for a unidirectional LSTM: the LSTM runs over the padded batch
    /// and each text's state is read at its own last token. Padding is on the right, so that state
    /// never saw padding, as in the packed run; but the padded run is one fused call (oneDNN on the
    /// CPU, cuDNN on a GPU) instead of a slice of the packed input per time step, about three
    /// times faster to train (bench/training/README.md).
    fn padded_features(&self, ids: &Tensor, lengths: &Tensor, train: bool) -> Tensor {
        let (batch, _) = ids.size2().expect("checked by forward_t");
        let embedded = ids.apply(&self.embedding);
        let zeros = self.zero_state(batch, ids.device());
        let (output, _, _) = embedded.lstm(
            &[&zeros, &zeros],
            &self.weights.iter().collect::<Vec<_>>(),
            true,
            self.layers,
            self.dropout,
            train,
            false,
            true,
        );
        let last = (lengths - 1)
            .view([batch, 1, 1])
            .expand([batch, 1, self.hidden], false);
        output.gather(1, &last, false).squeeze_dim(1)
    }
}

impl Network for TextLstm {
    fn forward_t(&self, ids: &Tensor, train: bool) -> anyhow::Result<Tensor> {
        ids.size2().context("token ids must be [batch, length]")?;
        let lengths = ids
            .ne(PAD)
            .sum_dim_intlist(1, false, Kind::Int64)
            .clamp_min(1);
        let features = if self.bidirectional {
            self.packed_features(ids, &lengths, train)
        } else {
            self.padded_features(ids, &lengths, train)
        };
        Ok(features.dropout(self.dropout, train).apply(&self.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(bidirectional: bool, layers: i64) -> (nn::VarStore, TextLstm) {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let options = TextLstmOptions {
            embedding_dim: 6,
            hidden_size: 4,
            layers,
            bidirectional,
            ..TextLstmOptions::default()
        };
        let model = TextLstm::new(&vs.root(), 10, 2, &options);
        (vs, model)
    }

    #[test]
    fn a_text_gets_the_same_output_whatever_its_batch() {
        for (bidirectional, layers) in [(false, 1), (false, 2), (true, 2)] {
            let (_vs, model) = model(bidirectional, layers);
            let alone = model
                .forward_t(&Tensor::from_slice(&[3i64, 4]).view([1, 2]), false)
                .unwrap();
            let batched = Tensor::from_slice(&[5i64, 6, 7, 8, 3, 4, PAD, PAD]).view([2, 4]);
            let outputs = model.forward_t(&batched, false).unwrap();
            assert_eq!(outputs.size(), [2, 2]);
            let difference = (alone.get(0) - outputs.get(1))
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                difference < 1e-6,
                "bidirectional {bidirectional}: {difference}"
            );
        }
    }

    #[test]
    fn the_padded_run_matches_the_packed_run_with_its_gradients() {
        for layers in [1, 2] {
            let (vs, model) = model(false, layers);
            let ids = Tensor::from_slice(&[
                5i64, 6, 7, 8, 9, 3, //
                3, 4, PAD, PAD, PAD, PAD, //
                9, PAD, PAD, PAD, PAD, PAD, //
                PAD, PAD, PAD, PAD, PAD, PAD, //
                2, 8, 1, 7, PAD, PAD,
            ])
            .view([5, 6]);
            let lengths = ids
                .ne(PAD)
                .sum_dim_intlist(1, false, Kind::Int64)
                .clamp_min(1);
            let gradients = |features: Tensor| {
                for variable in vs.trainable_variables() {
                    let mut grad = variable.grad();
                    if grad.defined() {
                        let _ = grad.zero_();
                    }
                }
                (features.square().sum(Kind::Float)).backward();
                let mut all: Vec<(String, Tensor)> = vs
                    .variables()
                    .into_iter()
                    .filter(|(name, _)| !name.starts_with("output."))
                    .map(|(name, variable)| {
                        let grad = variable.grad();
                        let dense = if grad.is_sparse() {
                            grad.to_dense(None, false)
                        } else {
                            grad.copy()
                        };
                        (name, dense)
                    })
                    .collect();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            };
            let packed = model.packed_features(&ids, &lengths, false);
            let padded = model.padded_features(&ids, &lengths, false);
            let difference = (&packed - &padded).abs().max().double_value(&[]);
            assert!(
                difference < 1e-6,
                "layers {layers}: outputs differ by {difference}"
            );
            let packed_gradients = gradients(packed);
            let padded_gradients = gradients(padded);
            for ((name, a), (_, b)) in packed_gradients.iter().zip(&padded_gradients) {
                let difference = (a - b).abs().max().double_value(&[]);
                assert!(
                    difference < 1e-5,
                    "layers {layers}: {name} differs by {difference}"
                );
            }
            assert!(
                packed_gradients[0]
                    .1
                    .abs()
                    .sum(Kind::Float)
                    .double_value(&[])
                    > 0.0,
                "the test must compare non-zero gradients"
            );
        }
    }

    #[test]
    fn the_weights_have_pytorch_names() {
        let (vs, _model) = model(true, 1);
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        assert!(names.contains("lstm.weight_ih_l0_reverse"), "{names:?}");
        assert!(names.contains("embedding.weight"));
    }
}
