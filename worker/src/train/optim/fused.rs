//! Adam and AdamW on the CPU in one pass over each parameter: for each element, the operations
//! of the tensor rule ([`super::adam`]) in the same order, in `f32`, with the scalars rounded to
//! `f32` as libtorch rounds them, and the moment's interpolation as libtorch's vectorised `lerp`
//! computes it (one fused multiply-add). The tensor rule reads and writes every parameter's
//! memory about a dozen times a step, with a new tensor for most operations; this reads the
//! parameter, its gradient and both moments once and writes three of them once. On a model with
//! a large embedding most of a step's optimiser time was that memory traffic
//! (`bench/training/README.md`). PyTorch has the same idea as `torch.optim.Adam(fused=True)`,
//! which tch does not expose: hence written here (docs/decisions.md, "Fused Adam on the CPU").
#![allow(unsafe_code)]

use super::{BETA1, BETA2, EPSILON, OptimizerConfig, OptimizerKind};
use tch::{Device, Kind, Tensor};

/// A step's scalars, rounded to `f32` as libtorch rounds a `f64` scalar against a `f32` tensor.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rule {
    /// AdamW: the parameter is first multiplied by this (`1 - lr * weightDecay`).
    decay: Option<f32>,
    /// Adam with weight decay: `weightDecay`, the gradient gets `parameter * l2`.
    l2: Option<f32>,
    /// `1 - beta1`, the first moment's interpolation weight.
    first_weight: f32,
    beta2: f32,
    /// `1 - beta2`.
    second_weight: f32,
    /// `sqrt(1 - beta2^step)`.
    second_correction: f32,
    epsilon: f32,
    /// `lr / (1 - beta1^step)`.
    step_size: f32,
}

impl Rule {
    pub(super) fn new(config: &OptimizerConfig, learning_rate: f64, step: i64) -> Self {
        let (decay, l2) = match config.kind {
            OptimizerKind::Adamw => (
                Some((1.0 - learning_rate * config.weight_decay) as f32),
                None,
            ),
            _ if config.weight_decay > 0.0 => (None, Some(config.weight_decay as f32)),
            _ => (None, None),
        };
        let bias_correction1 = 1.0 - BETA1.powi(step as i32);
        let bias_correction2 = 1.0 - BETA2.powi(step as i32);
        Self {
            decay,
            l2,
            first_weight: (1.0 - BETA1) as f32,
            beta2: BETA2 as f32,
            second_weight: (1.0 - BETA2) as f32,
            second_correction: bias_correction2.sqrt() as f32,
            epsilon: EPSILON as f32,
            step_size: (learning_rate / bias_correction1) as f32,
        }
    }
}

/// One step of `rule` for one parameter. Each tensor must be contiguous `f32` on the CPU with the
/// parameter's number of elements, and the four must not share memory (the caller checks the
/// first; the optimiser's own tensors never share).
pub(super) fn adam(
    rule: &Rule,
    parameter: &Tensor,
    gradient: &Tensor,
    first: &Tensor,
    second: &Tensor,
) {
    let n = parameter.numel();
    for t in [parameter, gradient, first, second] {
        assert!(
            t.device() == Device::Cpu
                && t.kind() == Kind::Float
                && t.is_contiguous()
                && t.numel() == n,
            "fused Adam takes contiguous f32 CPU tensors of one size"
        );
    }
    if n == 0 {
        return;
    }
    // SAFETY: each tensor is contiguous f32 on the CPU with n elements (checked above), so its
    // data pointer addresses n f32s; the parameter, its gradient and its two moments are four
    // tensors of their own (no two share storage), and no other thread uses them during the
    // step (the training loop is this thread's), so the mutable slices alias nothing.
    let (parameter, gradient, first, second) = unsafe {
        (
            std::slice::from_raw_parts_mut(parameter.data_ptr().cast::<f32>(), n),
            std::slice::from_raw_parts(gradient.data_ptr().cast::<f32>().cast_const(), n),
            std::slice::from_raw_parts_mut(first.data_ptr().cast::<f32>(), n),
            std::slice::from_raw_parts_mut(second.data_ptr().cast::<f32>(), n),
        )
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { step_avx2(rule, parameter, gradient, first, second) };
        return;
    }
    step(rule, parameter, gradient, first, second);
}

/// [`step`] compiled for AVX2 with fused multiply-add: vectorised, and `mul_add` one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn step_avx2(
    rule: &Rule,
    parameter: &mut [f32],
    gradient: &[f32],
    first: &mut [f32],
    second: &mut [f32],
) {
    step(rule, parameter, gradient, first, second);
}

/// The step element by element, in the tensor rule's order.
#[inline(always)]
fn step(
    rule: &Rule,
    parameter: &mut [f32],
    gradient: &[f32],
    first: &mut [f32],
    second: &mut [f32],
) {
    let elements = parameter
        .iter_mut()
        .zip(gradient)
        .zip(first.iter_mut())
        .zip(second.iter_mut());
    for (((p, &g), m), v) in elements {
        let mut g = g;
        if let Some(l2) = rule.l2 {
            g += *p * l2;
        }
        if let Some(decay) = rule.decay {
            *p *= decay;
        }
        // libtorch's lerp for a weight under 0.5: start + weight * (end - start), fused.
        *m = (g - *m).mul_add(rule.first_weight, *m);
        *v = *v * rule.beta2 + g * g * rule.second_weight;
        let denominator = v.sqrt() / rule.second_correction + rule.epsilon;
        *p -= *m / denominator * rule.step_size;
    }
}
