//! A fully connected layer (`nn.Linear`): candle's product in training and for whole batches;
//! in evaluation on the CPU, fewer rows than threads (batch-1 inference) take the crate's
//! kernel, which splits the output features over every thread.

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor, bail};
use candle_nn::VarBuilder;

use super::init;
use super::storage::{contiguous_f32, is_cpu_f32};
use crate::cpu::linear as kernels;

/// `x W^T + b`, weights `weight` (outputs, inputs) and `bias` (outputs), PyTorch's names.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    /// Creates (or loads) `weight` and `bias` with PyTorch's default initialisation.
    pub fn new(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Linear {
            inner: init::linear(inputs, outputs, vb)?,
        })
    }

    /// The weight (outputs, inputs) and the bias (outputs), for a fused inference path.
    pub(crate) fn parts(&self) -> (&Tensor, Option<&Tensor>) {
        (self.inner.weight(), self.inner.bias())
    }

    /// `x` (rows, inputs) -> (rows, outputs). With `train`, always candle's product (it has
    /// the backward); without, few rows on the CPU take the split kernel.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let weight = self.inner.weight();
        let few_rows = x.rank() == 2 && x.dim(0)? < rayon::current_num_threads();
        let Some(bias) = self.inner.bias() else {
            return self.inner.forward(x);
        };
        if train || !few_rows || !is_cpu_f32(&[x, weight, bias]) {
            return self.inner.forward(x);
        }
        x.contiguous()?
            .apply_op3_no_bwd(&weight.contiguous()?, &bias.contiguous()?, &FewRows)
    }
}

/// (x, weight, bias) -> x W^T + b, evaluation only.
struct FewRows;

impl CustomOp3 for FewRows {
    fn name(&self) -> &'static str {
        "fer-linear-few-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (&[rows, k], &[n, wk], &[bn]) = (l1.dims(), l2.dims(), l3.dims()) else {
            bail!(
                "{}: input {:?}, weight {:?}, bias {:?}: expected (rows, k), (n, k), (n)",
                self.name(),
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        };
        if wk != k || bn != n {
            bail!(
                "{}: input {:?}, weight {:?}, bias {:?} do not match",
                self.name(),
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let b = contiguous_f32(s3, l3, self.name())?;
        let mut out = vec![0f32; rows * n];
        kernels::linear_forward(x, w, Some(b), (rows, k, n), &mut out);
        Ok((CpuStorage::F32(out), Shape::from((rows, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// One row in evaluation (the split kernel) against candle's product (training mode),
    /// within 1e-5 of the largest output.
    #[test]
    fn one_row_in_evaluation_matches_candles_product() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let layer = Linear::new(500, 130, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 500), &Device::Cpu).unwrap();
        let fast = layer.forward(&x, false).unwrap();
        let reference = layer.forward(&x, true).unwrap();
        assert_eq!(fast.dims(), [1, 130]);
        let (fast, reference) = (
            fast.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            reference.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        for (a, b) in fast.iter().zip(&reference) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
    }
}
