//! A small convolutional network for images given as flat feature rows (such as 8×8 digits):
//! convolution blocks (convolution, activation, 2×2 max-pooling while the image is large
//! enough), then dense layers.

use super::{Activation, ActivationExt, CnnOptions, Network};
use anyhow::{Result, bail};
use tch::{Tensor, nn};

/// Convolution blocks → dense layers → output.
#[derive(Debug)]
pub struct Cnn {
    shape: [i64; 3],
    blocks: Vec<(nn::Conv2D, bool)>,
    dense: Vec<nn::Linear>,
    output: nn::Linear,
    activation: Activation,
    dropout: f64,
}

impl Cnn {
    /// Creates the layers under `path` (`conv0`…, `dense0`…, `output`); `inputs` (the feature
    /// count) must equal the product of `options.input_shape` (channels × height × width).
    pub fn new(path: &nn::Path, inputs: i64, outputs: i64, options: &CnnOptions) -> Result<Self> {
        let [channels, height, width] = match options.input_shape.as_slice() {
            &[c, h, w] if c > 0 && h > 0 && w > 0 => [c, h, w],
            other => bail!(
                "cnn.inputShape must be [channels, height, width] with positive sizes, got {other:?}"
            ),
        };
        if channels * height * width != inputs {
            bail!(
                "cnn.inputShape {:?} holds {} values but the data set has {inputs} features",
                options.input_shape,
                channels * height * width
            );
        }
        let kernel = options.kernel_size.max(1);
        // "Same" padding for odd kernels keeps the image size through a convolution.
        let config = nn::ConvConfig {
            padding: kernel / 2,
            ..Default::default()
        };
        let mut blocks = Vec::new();
        let (mut depth, mut h, mut w) = (channels, height, width);
        for (index, &filters) in options.conv_channels.iter().enumerate() {
            let convolution = nn::conv2d(
                path / format!("conv{index}"),
                depth,
                filters,
                kernel,
                config,
            );
            depth = filters;
            h = h + 2 * (kernel / 2) - kernel + 1;
            w = w + 2 * (kernel / 2) - kernel + 1;
            if h < 1 || w < 1 {
                bail!("cnn.kernelSize {kernel} is too large for the image size {height}×{width}");
            }
            let pool = h >= 2 && w >= 2;
            if pool {
                h /= 2;
                w /= 2;
            }
            blocks.push((convolution, pool));
        }
        let mut dense = Vec::new();
        let mut width_in = depth * h * w;
        for (index, &size) in options.hidden_layers.iter().enumerate() {
            dense.push(nn::linear(
                path / format!("dense{index}"),
                width_in,
                size,
                Default::default(),
            ));
            width_in = size;
        }
        let output = nn::linear(path / "output", width_in, outputs, Default::default());
        Ok(Self {
            shape: [channels, height, width],
            blocks,
            dense,
            output,
            activation: options.activation,
            dropout: options.dropout,
        })
    }
}

impl Network for Cnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> anyhow::Result<Tensor> {
        let [c, h, w] = self.shape;
        let mut x = xs.view([-1, c, h, w]);
        for (convolution, pool) in &self.blocks {
            x = self.activation.apply(&x.apply(convolution));
            if *pool {
                x = x.max_pool2d_default(2);
            }
        }
        x = x.flatten(1, -1);
        for layer in &self.dense {
            x = self
                .activation
                .apply(&x.dropout(self.dropout, train).apply(layer));
        }
        Ok(x.dropout(self.dropout, train).apply(&self.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_shaped_inputs_give_one_logit_per_class() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let options = CnnOptions {
            input_shape: vec![1, 8, 8],
            ..CnnOptions::default()
        };
        let cnn = Cnn::new(&vs.root(), 64, 10, &options).unwrap();
        assert_eq!(
            cnn.forward_t(&Tensor::zeros([3, 64], tch::kind::FLOAT_CPU), true)
                .unwrap()
                .size(),
            [3, 10]
        );
    }

    #[test]
    fn a_shape_that_does_not_match_the_features_is_refused() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let options = CnnOptions {
            input_shape: vec![1, 8, 8],
            ..CnnOptions::default()
        };
        let error = Cnn::new(&vs.root(), 63, 10, &options)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("holds 64 values but the data set has 63 features"),
            "{error}"
        );
        let tiny = CnnOptions {
            input_shape: vec![1, 1, 4],
            hidden_layers: vec![],
            ..CnnOptions::default()
        };
        let cnn = Cnn::new(&vs.root().sub("tiny"), 4, 2, &tiny).unwrap();
        assert_eq!(
            cnn.forward_t(&Tensor::zeros([2, 4], tch::kind::FLOAT_CPU), false)
                .unwrap()
                .size(),
            [2, 2]
        );
    }
}
