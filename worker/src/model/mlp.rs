//! The multilayer perceptron: dense layers with an activation and dropout between them.

use super::{Activation, ActivationExt, MlpOptions, Network};
use tch::{Tensor, nn};

/// Dense layers `inputs → hidden… → outputs`.
#[derive(Debug)]
pub struct Mlp {
    hidden: Vec<nn::Linear>,
    output: nn::Linear,
    activation: Activation,
    dropout: f64,
}

impl Mlp {
    /// Creates the layers under `path` (`hidden0`, `hidden1`, …, `output`).
    pub fn new(path: &nn::Path, inputs: i64, outputs: i64, options: &MlpOptions) -> Self {
        let mut hidden = Vec::new();
        let mut width = inputs;
        for (index, &size) in options.hidden_layers.iter().enumerate() {
            hidden.push(nn::linear(
                path / format!("hidden{index}"),
                width,
                size,
                Default::default(),
            ));
            width = size;
        }
        let output = nn::linear(path / "output", width, outputs, Default::default());
        Self {
            hidden,
            output,
            activation: options.activation,
            dropout: options.dropout,
        }
    }
}

impl Network for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> anyhow::Result<Tensor> {
        let mut x = xs.shallow_clone();
        for layer in &self.hidden {
            x = self.activation.apply(&x.apply(layer));
            // Dropout is the identity outside training: not even a call into libtorch then.
            if train {
                x = x.dropout(self.dropout, train);
            }
        }
        Ok(x.apply(&self.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_has_one_column_per_class() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        for activation in [Activation::Relu, Activation::Tanh, Activation::Gelu] {
            let options = MlpOptions {
                hidden_layers: vec![8, 4],
                activation,
                dropout: 0.5,
            };
            let mlp = Mlp::new(&vs.root().sub(format!("{activation:?}")), 5, 3, &options);
            assert_eq!(
                mlp.forward_t(&Tensor::zeros([7, 5], tch::kind::FLOAT_CPU), true)
                    .unwrap()
                    .size(),
                [7, 3]
            );
        }
        let linear = Mlp::new(
            &vs.root().sub("linear"),
            5,
            1,
            &MlpOptions {
                hidden_layers: vec![],
                ..MlpOptions::default()
            },
        );
        assert_eq!(
            linear
                .forward_t(&Tensor::zeros([2, 5], tch::kind::FLOAT_CPU), false)
                .unwrap()
                .size(),
            [2, 1]
        );
    }
}
