//! Adam and AdamW on the CPU in one pass over each parameter: for each element, the operations
//! of the tensor rule ([`super::adam`]) in the same order, in `f32`, with the scalars rounded to
//! `f32` as libtorch rounds them, and the moment's interpolation as libtorch's vectorised `lerp`
//! computes it (one fused multiply-add). The tensor rule reads and writes every parameter's
//! memory about a dozen times a step, with a new tensor for most operations; this reads the
//! parameter, its gradient and both moments once and writes three of them once. On a model with
//! a large embedding most of a step's optimiser time was that memory traffic
//! (`bench/training/README.md`). A gradient sparse by rows (an embedding's, with `sparse`) is read
//! row by row, zero for the rows a batch did not use: the dense rule's result, without a dense
//! gradient of the whole table to zero, fill and read at every step. PyTorch has the same idea as `torch.optim.Adam(fused=True)`,
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

/// Whether [`adam`] takes `gradient` for `parameter`: a contiguous `f32` CPU parameter, and a
/// gradient of its size that is either contiguous `f32` on the CPU too, or sparse by rows (an
/// embedding's gradient with `sparse`: the rows a batch used, each with its values).
pub(super) fn takes(parameter: &Tensor, gradient: &Tensor) -> bool {
    let cpu_f32 = |t: &Tensor| t.defined() && t.device() == Device::Cpu && t.kind() == Kind::Float;
    if !(cpu_f32(parameter) && cpu_f32(gradient) && parameter.is_contiguous()) {
        return false;
    }
    if gradient.is_sparse() {
        parameter.dim() >= 1
            && gradient.size() == parameter.size()
            && gradient.sparse_dim() == 1
            && gradient.dense_dim() == parameter.dim() as i64 - 1
    } else {
        gradient.is_contiguous() && gradient.numel() == parameter.numel()
    }
}

/// The gradient as [`step`] reads it.
enum Rows<'a> {
    /// One value per element.
    Dense(&'a [f32]),
    /// Rows by index, ascending, each `width` values; the other rows' gradient is zero.
    Sparse {
        indices: &'a [i64],
        values: &'a [f32],
    },
}

/// One step of `rule` for one parameter, which [`takes`] `gradient`; `first` and `second` are
/// contiguous `f32` CPU tensors of the parameter's size. The four do not share memory (the
/// optimiser's own tensors never do).
pub(super) fn adam(
    rule: &Rule,
    parameter: &Tensor,
    gradient: &Tensor,
    first: &Tensor,
    second: &Tensor,
) {
    assert!(takes(parameter, gradient), "fused Adam takes this gradient");
    let n = parameter.numel();
    for t in [first, second] {
        assert!(
            t.device() == Device::Cpu
                && t.kind() == Kind::Float
                && t.is_contiguous()
                && t.numel() == n,
            "fused Adam's moments are contiguous f32 CPU tensors of the parameter's size"
        );
    }
    if n == 0 {
        return;
    }
    // Sparse rows summed (duplicates added up, rows in ascending order), both parts contiguous.
    let sparse = gradient.is_sparse().then(|| {
        let coalesced = gradient.coalesce();
        (
            coalesced.internal_indices().contiguous(),
            coalesced.internal_values().contiguous(),
        )
    });
    let width = n / usize::try_from(parameter.size()[0]).unwrap_or(1).max(1);
    // SAFETY: the parameter, its moments and a dense gradient are contiguous f32 CPU tensors of
    // n elements (checked above and by `takes`), so each data pointer addresses n f32s; the
    // sparse parts are contiguous, nnz i64 indices and nnz * width f32 values. The parameter,
    // its gradient and its two moments are tensors of their own (no two share storage), and no
    // other thread uses them during the step (the training loop is this thread's), so the
    // mutable slices alias nothing.
    let (parameter, first, second, gradient) = unsafe {
        let gradient = match &sparse {
            Some((indices, values)) => {
                let nnz = indices.numel();
                Rows::Sparse {
                    indices: std::slice::from_raw_parts(indices.data_ptr().cast::<i64>(), nnz),
                    values: std::slice::from_raw_parts(
                        values.data_ptr().cast::<f32>(),
                        nnz * width,
                    ),
                }
            }
            None => Rows::Dense(std::slice::from_raw_parts(
                gradient.data_ptr().cast::<f32>(),
                n,
            )),
        };
        (
            std::slice::from_raw_parts_mut(parameter.data_ptr().cast::<f32>(), n),
            std::slice::from_raw_parts_mut(first.data_ptr().cast::<f32>(), n),
            std::slice::from_raw_parts_mut(second.data_ptr().cast::<f32>(), n),
            gradient,
        )
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { run_avx2(rule, parameter, &gradient, width, first, second) };
        return;
    }
    run(rule, parameter, &gradient, width, first, second);
}

/// [`run`] compiled for AVX2 with fused multiply-add: vectorised, and `mul_add` one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    rule: &Rule,
    parameter: &mut [f32],
    gradient: &Rows,
    width: usize,
    first: &mut [f32],
    second: &mut [f32],
) {
    run(rule, parameter, gradient, width, first, second);
}

/// The step over every element; a sparse gradient row by row, zero where it has no row.
#[inline(always)]
fn run(
    rule: &Rule,
    parameter: &mut [f32],
    gradient: &Rows,
    width: usize,
    first: &mut [f32],
    second: &mut [f32],
) {
    match *gradient {
        Rows::Dense(gradient) => step(rule, parameter, gradient, first, second),
        Rows::Sparse { indices, values } => {
            let zeros = vec![0.0f32; width];
            let mut given = indices.iter().zip(values.chunks_exact(width)).peekable();
            let rows = parameter
                .chunks_exact_mut(width)
                .zip(first.chunks_exact_mut(width))
                .zip(second.chunks_exact_mut(width));
            for (row, ((p, m), v)) in rows.enumerate() {
                let g = match given.peek() {
                    Some(&(&index, values)) if index == row as i64 => {
                        given.next();
                        values
                    }
                    _ => &zeros,
                };
                step(rule, p, g, m, v);
            }
        }
    }
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
